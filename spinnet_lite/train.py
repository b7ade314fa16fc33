"""Staged training of SPINNet on simulated pairs (seed section 2.2).

Stage 1 trains pyramid levels 6..3; stage 2 adds level 2, its estimators initialised from
level 3; stage 3 adds the PhaseRefiner and TRefiner.  Loss: Eq. 4 with supervision at every
level (:func:`spinnet_lite.model.loss.multilevel_loss`); Adam at 1e-4, halved every
``halve_every`` epochs within a stage.  Everything a run produces goes into one folder:
``checkpoint.pt`` (resumable), ``model.pt`` (the trained network), ``history.csv`` and
``history.png`` (train/validation loss per epoch) and ``record.json`` (command, configuration,
seeds, time).
"""
from __future__ import annotations

import csv
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .data import VALIDATION_SEED_BASE, PairSpec, SimulatedPairs
from .model.config import get_config
from .model.loss import multilevel_loss, pair_error
from .model.predict import save_checkpoint
from .model.spinnet import SPINNet

#: (last pyramid level, refiners on) for stages 1, 2, 3.
STAGES = {1: (3, False), 2: (2, False), 3: (2, True)}
HISTORY_FIELDS = ("stage", "epoch", "step", "patch", "lr", "train_loss", "val_loss", "val_pair_error", "elapsed_s")


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in ``record.json`` and every checkpoint).

    ``stage_epochs`` are the epochs of stages 1-3; ``minutes``, when given, is a time budget
    shared out between the stages by ``stage_share`` (a stage ends at its epoch count or its
    share of the time, whichever comes first; the last stage uses what is left).
    """

    preset: str = "lite"
    patch: int = 128
    batch_size: int = 8
    epoch_pairs: int = 512
    val_pairs: int = 32
    stage_epochs: tuple[int, int, int] = (40, 20, 20)
    stage_share: tuple[float, float, float] = (0.5, 0.25, 0.25)
    minutes: float | None = None
    lr: float = 1e-4
    halve_every: int = 10
    stage_lr_scale: tuple[float, float, float] = (1.0, 0.5, 0.5)  # stages 2-3 fine-tune from a trained stage 1
    loss_eps: float = 1e-2  # floor (px^2) on the mean square of each ground-truth map in Eq. 4
    clip_grad: float | None = 5.0  # gradient-norm clipping: one odd batch must not undo the run
    seed: int = 0
    workers: int = 1
    threads: int | None = None
    device: str = "cpu"
    spec: PairSpec = field(default_factory=PairSpec)

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("stage_epochs", "stage_share", "stage_lr_scale"):
            d[key] = list(d[key])
        d["spec"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in d["spec"].items()}
        return d


PRESETS = {
    # a few seconds: tests and the quick notebooks
    "tiny": dict(preset="tiny", patch=64, batch_size=4, epoch_pairs=16, val_pairs=4, stage_epochs=(2, 1, 1), halve_every=2,
                 threads=1),  # one thread: a small net gains nothing from two, and loses 10x on a busy CPU
    # the bundled weights: about an hour or two on a 2-core CPU
    # Stage 1 (levels 6..3) gets a small share: the training displacements (<= ~5.5 px) are
    # sub-pixel at levels 4-6, and only level 2 resolves them (measured: after 150 steps the
    # stage-1 path still predicted ~0, the stage-2 path had cut the displacement error by 25 %).
    "lite": dict(preset="lite", patch=128, batch_size=8, epoch_pairs=256, val_pairs=32, stage_epochs=(30, 200, 200),
                 stage_share=(0.15, 0.45, 0.40), halve_every=25),
    # the seed's sizes: for a GPU
    "full": dict(preset="full", patch=256, batch_size=8, epoch_pairs=2048, val_pairs=64, stage_epochs=(100, 50, 50), halve_every=20),
}


def preset_config(name: str, **overrides) -> TrainConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(map(repr, PRESETS))}")
    cfg = replace(TrainConfig(**PRESETS[name]), **{k: v for k, v in overrides.items() if v is not None})
    if cfg.patch % 32 or cfg.patch < 64:
        raise ValueError(f"patch must be a multiple of 32 and at least 64 px, got {cfg.patch}")
    return replace(cfg, spec=replace(cfg.spec, size=cfg.patch))


def _loaders(cfg: TrainConfig, epoch: int, stage: int):
    # Every epoch sees fresh pairs: epoch e of stage s starts at seed (s * 1000 + e) * epoch_pairs.
    base = cfg.seed * 10_000_000 + ((stage * 1000 + epoch) * cfg.epoch_pairs)
    train = SimulatedPairs(cfg.epoch_pairs, base=base, spec=cfg.spec)
    gen = torch.Generator().manual_seed(base)
    kw = dict(num_workers=cfg.workers, persistent_workers=False) if cfg.workers else {}
    return DataLoader(train, batch_size=cfg.batch_size, shuffle=True, generator=gen, drop_last=True, **kw)


def _validation(cfg: TrainConfig):
    val = SimulatedPairs(cfg.val_pairs, base=VALIDATION_SEED_BASE + cfg.seed * 10_000, spec=cfg.spec)
    return [val[i] for i in range(len(val))]


@torch.no_grad()
def evaluate_loss(model: SPINNet, pairs, stage: int, device, loss_eps: float = 1e-2) -> tuple[float, float]:
    """Mean multi-level loss and mean final pair error (Eq. 4, no floor) over ``pairs`` in eval mode."""
    model.eval()
    last, refine = STAGES[stage]
    losses, errors = [], []
    for i in range(0, len(pairs), 8):
        chunk = pairs[i : i + 8]
        batch = {k: torch.stack([p[k] for p in chunk]).to(device) for k in chunk[0]}
        out = model(batch["reference"], batch["sample"], last_level=last, refine=refine)
        loss, _ = multilevel_loss(out, batch["displacement"], batch["transmission"], eps=loss_eps)
        losses.append(float(loss) * len(chunk))
        pe = pair_error((out["displacement"], out["transmission"]), (batch["displacement"], batch["transmission"]))
        errors.append(float(pe.sum()))
    n = len(pairs)
    return sum(losses) / n, sum(errors) / n


def _save_state(path: Path, model, optimizer, cfg, stage, epoch, step, history, elapsed, segments):
    tmp = path.with_suffix(".tmp")
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                "train_config": cfg.to_dict(), "stage": stage, "epoch": epoch, "step": step, "history": history,
                "elapsed_s": elapsed, "segments": segments}, tmp)
    tmp.replace(path)


def write_history(history: list[dict], out_dir: Path):
    with open(out_dir / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(history)


def read_history(path) -> list[dict]:
    """A run's ``history.csv`` (inverse of :func:`write_history`): stage/epoch/step as int, the rest float."""
    ints = ("stage", "epoch", "step", "patch")
    with open(path, newline="") as f:
        return [{k: int(v) if k in ints else float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def plot_history(history: list[dict], path=None):
    """Train/validation loss per epoch, stages shaded (as seed Fig. 4); returns the Figure."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    x = list(range(1, len(history) + 1))
    ax.semilogy(x, [h["train_loss"] for h in history], label="train loss")
    ax.semilogy(x, [h["val_loss"] for h in history], label="validation loss")
    ax.semilogy(x, [h["val_pair_error"] for h in history], ":", label="validation pair error (final output)")
    for s, colour in zip((1, 2, 3), ("#eef", "#efe", "#fee")):
        idx = [i + 1 for i, h in enumerate(history) if int(h["stage"]) == s]
        if idx:
            ax.axvspan(idx[0] - 0.5, idx[-1] + 0.5, color=colour, zorder=0)
            ax.text((idx[0] + idx[-1]) / 2, 1.0, f"stage {s}", transform=ax.get_xaxis_transform(), ha="center", va="bottom")
    ax.set_xlabel("epoch (all stages)")
    ax.set_ylabel("loss (multi-level Eq. 4) / pair error")
    ax.legend()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig


def train(cfg: TrainConfig, out_dir, resume: bool = False, overwrite: bool = False, command: str | None = None,
          progress: bool = True) -> dict:
    """Run the three stages; returns the ``record.json`` content.

    Raises:
        ValueError: ``out_dir`` already holds a run and neither ``resume`` nor ``overwrite``
            was asked for, or ``resume`` was asked for with no checkpoint there.
    """
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "checkpoint.pt"
    if out_dir.exists() and any(out_dir.iterdir()) and not (resume or overwrite):
        raise ValueError(f"{out_dir}: holds an earlier run; pass --resume to continue it or --overwrite to start again")
    if resume and not ckpt_path.exists():
        raise ValueError(f"{ckpt_path}: no checkpoint to resume from")
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    model = SPINNet(get_config(cfg.preset)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    stage, epoch, step, history, elapsed0 = 1, 0, 0, [], 0.0
    segments = []  # one entry per invocation: a run resumed with other settings keeps them all
    if resume:
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        if state["config"] != model.config.to_dict():
            raise ValueError(f"{ckpt_path}: checkpoint is of config {state['config'].get('name')!r}, not {cfg.preset!r}")
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        stage, epoch, step, history, elapsed0 = state["stage"], state["epoch"], state["step"], state["history"], state["elapsed_s"]
        earlier = state["train_config"]
        segments = state.get("segments") or [{"command": "(not recorded)", "train_config": earlier, "from_stage": 1,
                                              "from_epoch": 0}]
        for row in history:
            row.setdefault("patch", earlier["patch"])
    segments.append({"command": command or "spinnet_lite.train.train(...)", "train_config": cfg.to_dict(),
                     "from_stage": stage, "from_epoch": epoch})
    val_pairs = _validation(cfg)
    t0 = time.perf_counter() - elapsed0
    budget = None if cfg.minutes is None else cfg.minutes * 60.0
    stage_start = {1: 0.0}
    for s in (1, 2, 3):
        stage_start[s + 1] = stage_start[s] + (budget * cfg.stage_share[s - 1] if budget else 0.0)
    while stage <= 3:
        last, refine = STAGES[stage]
        if epoch == 0 and stage == 2:
            model.init_level_from(src=3, dst=2)  # stage 2: level 2 starts from level 3's estimators
        n_epochs = cfg.stage_epochs[stage - 1]
        bar = tqdm(total=n_epochs, initial=epoch, desc=f"stage {stage}", disable=not progress, file=sys.stderr)
        while epoch < n_epochs:
            if budget is not None and time.perf_counter() - t0 > (budget if stage == 3 else stage_start[stage + 1]):
                break  # this stage's share of the time is spent
            lr = cfg.lr * cfg.stage_lr_scale[stage - 1] * 0.5 ** (epoch // cfg.halve_every)
            for group in optimizer.param_groups:
                group["lr"] = lr
            model.train()
            total, count = 0.0, 0
            for batch in _loaders(cfg, epoch, stage):
                batch = {k: v.to(device) for k, v in batch.items()}
                out = model(batch["reference"], batch["sample"], last_level=last, refine=refine)
                loss, _ = multilevel_loss(out, batch["displacement"], batch["transmission"], eps=cfg.loss_eps)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.clip_grad:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                optimizer.step()
                total += float(loss.detach()) * len(batch["reference"])
                count += len(batch["reference"])
                step += 1
            val_loss, val_pe = evaluate_loss(model, val_pairs, stage, device, cfg.loss_eps)
            epoch += 1
            history.append(dict(stage=stage, epoch=epoch, step=step, patch=cfg.patch, lr=lr, train_loss=total / max(count, 1),
                                val_loss=val_loss, val_pair_error=val_pe, elapsed_s=round(time.perf_counter() - t0, 1)))
            bar.update(1)
            bar.set_postfix(train=f"{total / max(count, 1):.4f}", val=f"{val_loss:.4f}")
            print(f"stage {stage} epoch {epoch}/{n_epochs} lr {lr:.2e} train {total / max(count, 1):.5f} "
                  f"val {val_loss:.5f} val_pair_error {val_pe:.5f} t {time.perf_counter() - t0:.0f}s", flush=True)
            write_history(history, out_dir)
            _save_state(ckpt_path, model, optimizer, cfg, stage, epoch, step, history, time.perf_counter() - t0, segments)
        bar.close()
        stage, epoch = stage + 1, 0
        _save_state(ckpt_path, model, optimizer, cfg, stage, epoch, step, history, time.perf_counter() - t0, segments)
    elapsed = time.perf_counter() - t0
    model.eval()
    record = {
        "command": command or "spinnet_lite.train.train(...)",
        "segments": segments,
        "train_config": cfg.to_dict(),
        "model_config": model.config.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": {"training_seeds": f"{cfg.seed * 10_000_000} + (stage * 1000 + epoch) * epoch_pairs + i",
                 "validation_seeds": f"{VALIDATION_SEED_BASE + cfg.seed * 10_000} .. +{cfg.val_pairs}",
                 "geometry": "Geometry.training()", "phantom": "random"},
        "training_time_s": round(elapsed, 1),
        "steps": step,
        "epochs_per_stage": [sum(1 for h in history if h["stage"] == s) for s in (1, 2, 3)],
        "final_val_loss": history[-1]["val_loss"] if history else None,
        "final_val_pair_error": history[-1]["val_pair_error"] if history else None,
        "torch": str(torch.__version__),
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    save_checkpoint(model, out_dir / "model.pt", extra={"record": record})
    write_history(history, out_dir)
    if history:
        plot_history(history, out_dir / "history.png")
    (out_dir / "record.json").write_text(json.dumps(record, indent=2))
    return record
