"""Staged training of SPINNet on simulated pairs (seed section 2.2).

Stage 1 trains pyramid levels 6..3; stage 2 adds level 2, its estimators initialised from
level 3; stage 3 adds the PhaseRefiner and TRefiner.  Loss: Eq. 4 with supervision at every
level (:func:`spinnet_lite.model.loss.multilevel_loss`); Adam at 1e-4, halved every
``halve_every`` epochs within a stage.  Everything a run produces goes into one folder:
``checkpoint.pt`` (resumable), ``model.pt`` (the trained network: its last weights, or with
``ema_decay`` their exponential moving average), ``history.csv`` and
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

from .checks import resolve_device
from .data import VALIDATION_BANK_BASE, VALIDATION_SEED_BASE, PairSpec, SimulatedPairs, load_or_make_bank
from .io import atomic_write, write_text
from .model.config import get_config
from .model.loss import DEFAULT_WEIGHTS, multilevel_loss, pair_error
from .model.predict import read_checkpoint, save_checkpoint, save_torch
from .model.spinnet import SPINNet

#: (last pyramid level, refiners on) for stages 1, 2, 3.
STAGES = {1: (3, False), 2: (2, False), 3: (2, True)}
LR_SCHEDULES = ("step", "cosine")
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
    # "step": halve the lr every ``halve_every`` epochs of a stage; "cosine": cosine decay from lr to
    # lr * lr_floor over the stage's time budget (``minutes``) or, without one, over its epochs
    lr_schedule: str = "step"
    lr_floor: float = 0.05
    # the first optimiser steps of a run (counted from step 0) ramp the lr up linearly: a fresh
    # Adam state's first steps are full-size in every weight and would shake trained weights
    warmup_steps: int = 0
    stage_lr_scale: tuple[float, float, float] = (1.0, 0.5, 0.5)  # stages 2-3 fine-tune from a trained stage 1
    loss_eps: float = 1e-2  # floor (px^2) on the mean square of each ground-truth map in Eq. 4
    # factor on the loss weights of the pyramid levels (model.loss.DEFAULT_WEIGHTS); the final,
    # evaluated output keeps weight 1. Below 1 a fine-tuning run leans on the final output
    level_loss_scale: float = 1.0
    clip_grad: float | None = 5.0  # gradient-norm clipping: one odd batch must not undo the run
    seed: int = 0
    workers: int = 1
    threads: int | None = None
    device: str = "cpu"
    spec: PairSpec = field(default_factory=PairSpec)
    init_from: str | None = None  # start from these weights (a checkpoint; matching tensors are copied)
    start_stage: int = 1  # 3 fine-tunes the whole network at once
    freeze_bn: bool = False  # BatchNorm statistics fixed during training (eval-mode BatchNorm) ...
    # ... and, with init_from, first re-estimated on the new data: right for a new input
    # distribution, wrong for weights trained with frozen statistics (measured on the bundled
    # weights: validation loss 0.22 -> 31-43 after re-estimation on 32 or 256 pairs)
    recalibrate_bn: bool = True
    # An exponential moving average of the weights (torch.optim.swa_utils.AveragedModel), updated
    # after every optimiser step with this decay (None: off). When on, validation and model.pt
    # use the averaged weights; the raw ones go on training (and are kept in checkpoint.pt).
    ema_decay: float | None = None
    val_bank_size: int = 8
    # passes of the network's finest level (model config ``finest_iterations``; None: the model
    # preset's). 2: level 2 runs twice with shared weights and the loss sees both passes
    finest_iterations: int | None = None

    def __post_init__(self):
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(map(repr, LR_SCHEDULES))}, got {self.lr_schedule!r}")
        if not 0.0 <= self.lr_floor <= 1.0:
            raise ValueError(f"lr_floor must be in [0, 1], got {self.lr_floor!r}")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be a non-negative integer, got {self.warmup_steps!r}")
        if self.ema_decay is not None and (isinstance(self.ema_decay, bool) or not isinstance(self.ema_decay, (int, float))
                                           or not 0.0 < self.ema_decay < 1.0):
            raise ValueError(f"ema_decay must be None or a number in (0, 1), got {self.ema_decay!r}")
        if (isinstance(self.level_loss_scale, bool) or not isinstance(self.level_loss_scale, (int, float))
                or not 0.0 <= self.level_loss_scale < float("inf")):
            raise ValueError(f"level_loss_scale must be a finite number >= 0, got {self.level_loss_scale!r}")
        if self.finest_iterations is not None:
            self.model_config()  # a clear ValueError if out of range

    def loss_weights(self) -> dict:
        """The multi-level loss weights of this run: the levels' defaults times ``level_loss_scale``."""
        return {k: (v if k == "final" else v * self.level_loss_scale) for k, v in DEFAULT_WEIGHTS.items()}

    def model_config(self):
        """The :class:`SPINNetConfig` this run trains: the model preset, with ``finest_iterations`` if set."""
        changes = {} if self.finest_iterations is None else {"finest_iterations": self.finest_iterations}
        return get_config(self.preset, **changes)

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("stage_epochs", "stage_share", "stage_lr_scale"):
            d[key] = list(d[key])
        d["spec"] = self.spec.to_dict()
        return d


# The third segment, the second fine-tuning one (from the bundled fine-tuned weights): a lower
# loss floor (0.1 px^2), half of the seed's random phantoms at their own scale (the held-out
# set's kind), and shifts to 16 px so that 12 px lies inside the trained range.
_LITE_CONTINUE = dict(preset="lite", patch=256, batch_size=2, epoch_pairs=64, val_pairs=24, stage_epochs=(0, 0, 600),
                      stage_share=(0.0, 0.0, 1.0), halve_every=75, lr=1.5e-4, stage_lr_scale=(1.0, 1.0, 1.0),
                      start_stage=3, freeze_bn=True, threads=2, loss_eps=0.1, seed=1,
                      spec=PairSpec(phantom_weights=(0.45, 0.15, 0.13, 0.12, 0.15), max_shift_px=(0.0, 16.0),
                                    natural_fraction=0.5))

_LITE_SUBPIXEL = {**_LITE_CONTINUE, "halve_every": 60, "lr": 1e-4, "loss_eps": 0.05, "seed": 2,
                  "spec": replace(_LITE_CONTINUE["spec"], small_shift_fraction=0.25)}

_LITE_GPU = {**_LITE_SUBPIXEL, "batch_size": 16, "epoch_pairs": 4096, "val_pairs": 64, "lr": 2e-4,
             "lr_schedule": "cosine", "lr_floor": 0.05, "warmup_steps": 200, "recalibrate_bn": False,
             "seed": 3, "threads": None, "workers": 14, "device": "cuda", "stage_epochs": (0, 0, 100_000),
             "spec": replace(_LITE_SUBPIXEL["spec"], bank_size=128)}

_LITE_GPU2 = {**_LITE_GPU, "lr": 1e-4, "seed": 7, "ema_decay": 0.998,
              "spec": replace(_LITE_GPU["spec"], grains=(1.0, 6.0))}

_LITE_CPU = {**_LITE_SUBPIXEL, "batch_size": 4, "epoch_pairs": 64, "lr": 6e-5, "lr_schedule": "cosine",
             "lr_floor": 0.1, "warmup_steps": 100, "recalibrate_bn": False, "seed": 4, "ema_decay": 0.998,
             "stage_epochs": (0, 0, 100_000), "spec": replace(_LITE_SUBPIXEL["spec"], bank_size=128)}

_LITE_CPU2 = {**_LITE_CPU, "lr": 3e-5, "seed": 9, "spec": replace(_LITE_CPU["spec"], grains=(1.0, 6.0))}

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
    # Fine-tuning of the bundled weights on the wide distribution of issue 8 (data.PairSpec):
    # the whole network at once (stage 3), BatchNorm statistics re-estimated on the new data and
    # then frozen (with batches of 2, BatchNorm in training mode made fine-tuning worse).
    "lite-finetune": dict(preset="lite", patch=256, batch_size=2, epoch_pairs=64, val_pairs=24, stage_epochs=(0, 0, 600),
                          stage_share=(0.0, 0.0, 1.0), halve_every=90, lr=3e-4, stage_lr_scale=(1.0, 1.0, 1.0),
                          start_stage=3, freeze_bn=True, threads=2,
                          # Eq. 4 divides by |d_gt|^2: with 0-12 px fields a 10 px pair would weigh
                          # 1/1000 of a still one; a floor of 1 px^2 (mean square) keeps large shifts in play
                          loss_eps=1.0),
    # the third segment (see _LITE_CONTINUE)
    "lite-continue": _LITE_CONTINUE,
    # The fourth segment (from the weights of the third): the third's settings, plus a quarter of
    # the pairs with sub-pixel fields (largest shift log-uniform in 0.02-1 px), which the uniform
    # 0-16 px draw almost never gives and which the network shrank (a 0.08 px drift came out at
    # 0.6 of its size); the loss floor lowered to 0.05 px^2 so that their errors count; fresh
    # pairs (seed 2), a lower lr. (The bundled runs of this preset and of lite-continue used
    # seed 0: the CLI's --seed default overrode the presets' seeds then.)
    "lite-subpixel": _LITE_SUBPIXEL,
    # The fifth segment, for a lent GPU (about 8 minutes on one H100, data simulated by 14 worker
    # processes): the fourth's distribution with a bank of 128 references instead of 48, batches of
    # 16 pairs, a warm-up over the first 200 steps, a cosine lr decay over the time budget (the
    # steps a budget buys are not known before the run starts), and the BatchNorm statistics of
    # the weights it starts from kept as they are (segments 2-4 re-estimated them first).
    "lite-gpu": _LITE_GPU,
    # The sixth segment, for this 2-core CPU (about 100 minutes): the fifth's distribution and
    # schedule at the batch size of the CPU segments, a lower peak lr (the fifth ended at 1e-5),
    # and an exponential moving average of the weights (decay 0.998: about the last 500 steps),
    # which model.pt holds.
    "lite-cpu": _LITE_CPU,
    # The ninth segment, for a lent GPU (about 8 minutes on one H100): the fifth's batches and
    # workers from the eighth's weights, at half the fifth's peak lr (the CPU segments ended at
    # 4e-6), with the moving average of the CPU segments, fresh pairs (seed 7), and diffuser grains
    # down to 1.0 px (a membrane finer than the 1.5 px trained so far was the weak spot of the
    # applied-shift probe: 0.82-1.61x XST where coarser ones give 0.33-0.89x).
    "lite-gpu2": _LITE_GPU2,
    # An eleventh segment, for this 2-core CPU (about 100 minutes): lite-cpu's batches and
    # schedule with the ninth's distribution (diffuser grains down to 1.0 px), a lower peak lr,
    # fresh pairs (seed 9). From the tenth's weights for 95 minutes (4448 steps): held-out
    # median 0.0468 / 0.0485 px on 24 / 96 pairs against the tenth's 0.0472 / 0.0486 (make
    # cpu-lite4). The twelfth segment ran it again (seed 10, 45 minutes) in the network with the
    # level-2 image warp (model config image_warp_levels): 0.0412 / 0.0427 px (make cpu-lite5);
    # the thirteenth from the twelfth's (seed 11, 95 minutes, 2880 steps): 0.0400 / 0.0416 px
    # (make cpu-lite6).
    "lite-cpu2": _LITE_CPU2,
    # The fourteenth segment, for this 2-core CPU: lite-cpu2 in a network whose level 2 runs
    # twice (model config finest_iterations=2, shared weights, the loss on both passes), fresh
    # pairs (seed 12). A 20-minute trial from the thirteenth's weights gave 0.0381 px on the 24
    # held-out pairs (one pass of the same weights 0.0404), with 6 of 24 below 1 % Eq. 4 (3);
    # the fourteenth segment, 120 minutes (2528 steps, make cpu-lite7): 0.0358 px, 7 of 24.
    "lite-cpu3": {**_LITE_CPU2, "seed": 12, "finest_iterations": 2},
    # The fifteenth segment, for a lent GPU (about 8 minutes on one H100): lite-gpu2's batches of
    # 16 and workers (the distribution of lite-cpu2 and lite-cpu3) in the network whose level 2
    # runs twice, from the fourteenth's weights, a peak lr between lite-gpu2's and lite-cpu3's
    # (larger batches than the CPU's), fresh pairs (seed 13). 7.5 minutes (3328 steps, 53 248
    # pairs, make gpu-lite4): 0.0352 / 0.0362 px on 24 / 96 held-out pairs
    # (the fourteenth's 0.0358 / 0.0373), 8 of 24 below 1 % Eq. 4 (7).
    "lite-gpu3": {**_LITE_GPU2, "lr": 6e-5, "seed": 13, "finest_iterations": 2},
    # Issue 8, session 20: the seed's lens has a rim, where its field drops to 0 within a few
    # pixels, and no training field had one (the quadratic fields filled the frame); the four
    # held-out lens pairs stayed at 2.6 % Eq. 4 with their error at the rim. These continue the
    # sixteenth bundle (--loss-eps 0.01 as it was trained) with 60 % of the quadratic fields given
    # an aperture and rim (PairSpec.aperture_fraction): lite-rim-gpu on a lent GPU, lite-rim-cpu on
    # this CPU.
    "lite-rim-gpu": {**_LITE_GPU2, "lr": 6e-5, "seed": 17, "finest_iterations": 2, "loss_eps": 0.01,
                     "spec": replace(_LITE_GPU2["spec"], aperture_fraction=0.6)},
    "lite-rim-cpu": {**_LITE_CPU2, "seed": 18, "finest_iterations": 2, "loss_eps": 0.01,
                     "spec": replace(_LITE_CPU2["spec"], aperture_fraction=0.6)},
    # the seed's sizes: for a GPU
    "full": dict(preset="full", patch=256, batch_size=8, epoch_pairs=2048, val_pairs=64, stage_epochs=(100, 50, 50), halve_every=20),
}


def preset_config(name: str, **overrides) -> TrainConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(map(repr, PRESETS))}")
    cfg = replace(TrainConfig(**PRESETS[name]), **{k: v for k, v in overrides.items() if v is not None})
    if cfg.patch % 32 or cfg.patch < 64:
        raise ValueError(f"patch must be a multiple of 32 and at least 64 px, got {cfg.patch}")
    spec = replace(cfg.spec, size=cfg.patch, bank_px=max(cfg.spec.bank_px, cfg.patch + 64))
    if cfg.preset == "tiny":  # tests and quick notebooks: a two-reference bank
        spec = replace(spec, bank_size=2, bank_px=cfg.patch + 64)
    return replace(cfg, spec=spec)


def learning_rate(cfg: TrainConfig, stage: int, epoch: int, progress: float) -> float:
    """The learning rate of ``epoch`` (0-based) of ``stage``, ``progress`` (0..1) into the stage.

    ``step``: ``lr * stage_lr_scale * 0.5 ** (epoch // halve_every)``; ``cosine``: from
    ``lr * stage_lr_scale`` down to ``lr_floor`` times that along half a cosine of ``progress``
    (the share of the stage's time budget spent, or of its epochs without a budget).
    """
    base = cfg.lr * cfg.stage_lr_scale[stage - 1]
    if cfg.lr_schedule == "cosine":
        p = min(max(float(progress), 0.0), 1.0)
        return base * (cfg.lr_floor + (1.0 - cfg.lr_floor) * 0.5 * (1.0 + math.cos(math.pi * p)))
    return base * 0.5 ** (epoch // cfg.halve_every)


def stage_window(budget_s: float, stage_share, stage: int) -> tuple[float, float]:
    """Seconds into a run at which ``stage`` starts and ends under a time budget of ``budget_s``:
    the stages take their ``stage_share`` of it in order, and the last one ends at the budget."""
    start = budget_s * sum(stage_share[:stage - 1])
    end = budget_s if stage == 3 else start + budget_s * stage_share[stage - 1]
    return start, end


def epoch_progress(history: list[dict], train_config: dict) -> list[float]:
    """For each row of a run's ``history``: how far into its stage (0..1) the epoch started.

    The share of the stage's time budget spent (``train_config["minutes"]`` shared out by
    ``stage_share``), read from the previous row's ``elapsed_s``; without a budget, the share of
    the stage's epochs. This is the ``progress`` that :func:`learning_rate` was given (to the
    0.1 s that ``elapsed_s`` is rounded to).
    """
    budget = train_config["minutes"] * 60.0 if train_config.get("minutes") else None
    shares = tuple(train_config["stage_share"])
    out = []
    for i, row in enumerate(history):
        stage = int(row["stage"])
        if budget is None:
            out.append((int(row["epoch"]) - 1) / train_config["stage_epochs"][stage - 1])
            continue
        start, end = stage_window(budget, shares, stage)
        started = float(history[i - 1]["elapsed_s"]) if i else 0.0
        out.append((started - start) / max(end - start, 1e-9))
    return out


def _loaders(cfg: TrainConfig, epoch: int, stage: int, bank):
    # Every epoch sees fresh pairs: epoch e of stage s starts at seed (s * 1000 + e) * epoch_pairs.
    base = cfg.seed * 10_000_000 + ((stage * 1000 + epoch) * cfg.epoch_pairs)
    train = SimulatedPairs(cfg.epoch_pairs, base=base, spec=cfg.spec, bank=bank)
    gen = torch.Generator().manual_seed(base)
    kw = dict(num_workers=cfg.workers, persistent_workers=False) if cfg.workers else {}
    return DataLoader(train, batch_size=cfg.batch_size, shuffle=True, generator=gen, drop_last=True, **kw)


def _banks(cfg: TrainConfig, out_dir: Path, progress: bool):
    """The training and validation reference banks, cached in the run folder (made once)."""
    train_bank = load_or_make_bank(out_dir / "bank_train.nc", cfg.spec.bank_size, cfg.seed * 100_000, cfg.spec, progress)
    n_val = min(cfg.val_bank_size, cfg.spec.bank_size)
    val_bank = load_or_make_bank(out_dir / "bank_val.nc", n_val, VALIDATION_BANK_BASE + cfg.seed * 100_000, cfg.spec,
                                 progress)
    return train_bank, val_bank


def _validation(cfg: TrainConfig, val_bank):
    val = SimulatedPairs(cfg.val_pairs, base=VALIDATION_SEED_BASE + cfg.seed * 10_000, spec=cfg.spec, bank=val_bank)
    return [val[i] for i in range(len(val))]


def transfer_weights(model: SPINNet, path) -> dict:
    """Copy every tensor of the checkpoint at ``path`` whose name and shape match into ``model``.

    For fine-tuning across configurations (e.g. a 6-level network into the 4-level lite one).
    Returns ``{"copied": n, "skipped": [names of the model's tensors left as initialised]}``.
    """
    checkpoint = read_checkpoint(path)
    source = checkpoint["state_dict"]
    own = model.state_dict()
    copied, skipped = 0, []
    with torch.no_grad():
        for name, tensor in own.items():
            if name in source and tuple(source[name].shape) == tuple(tensor.shape):
                tensor.copy_(source[name])
                copied += 1
            else:
                skipped.append(name)
    return {"copied": copied, "skipped": skipped}


def _bn_modules(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_batchnorm(model: SPINNet, batches, last_level=None, refine=None) -> None:
    """Re-estimate every BatchNorm's running mean and variance on ``batches`` (cumulative average).

    Used before fine-tuning on a new input distribution (here: the input normalisation and the
    wide data), since the statistics of the old inputs no longer hold.
    """
    bns = _bn_modules(model)
    saved = [(m.momentum,) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over all batches
    model.train()
    for batch in batches:
        model(batch["reference"], batch["sample"], last_level=last_level, refine=refine)
    for m, (momentum,) in zip(bns, saved):
        m.momentum = momentum


def _train_mode(model: SPINNet, freeze_bn: bool) -> None:
    model.train()
    if freeze_bn:
        for m in _bn_modules(model):
            m.eval()


@torch.no_grad()
def evaluate_loss(model: SPINNet, pairs, stage: int, device, loss_eps: float = 1e-2,
                  weights: dict | None = None) -> tuple[float, float]:
    """Mean multi-level loss (``weights``: default ``DEFAULT_WEIGHTS``) and mean final pair error
    (Eq. 4, no floor) over ``pairs`` in eval mode."""
    model.eval()
    last, refine = STAGES[stage]
    losses, errors = [], []
    for i in range(0, len(pairs), 8):
        chunk = pairs[i : i + 8]
        batch = {k: torch.stack([p[k] for p in chunk]).to(device) for k in chunk[0]}
        out = model(batch["reference"], batch["sample"], last_level=last, refine=refine)
        loss, _ = multilevel_loss(out, batch["displacement"], batch["transmission"], weights=weights, eps=loss_eps)
        losses.append(float(loss) * len(chunk))
        pe = pair_error((out["displacement"], out["transmission"]), (batch["displacement"], batch["transmission"]))
        errors.append(float(pe.sum()))
    n = len(pairs)
    return sum(losses) / n, sum(errors) / n


def weight_average(model: SPINNet, decay: float):
    """An exponential moving average of ``model``'s weights (``AveragedModel``, EMA update).

    Its ``.module`` is a copy of ``model``; :func:`update_average` folds in each new step.
    """
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)


@torch.no_grad()
def update_average(average, model: SPINNet) -> None:
    """Fold ``model``'s current weights into ``average``; buffers (BatchNorm statistics) are copied,
    not averaged: they are statistics of the data, and frozen ones stay as they are."""
    average.update_parameters(model)
    for mine, theirs in zip(average.module.buffers(), model.buffers()):
        mine.copy_(theirs)


def _save_state(path: Path, model, optimizer, cfg, stage, epoch, step, history, elapsed, segments, average=None):
    # Plain types and tensors only, so that resuming loads it with weights_only=True; atomic.
    state = {"config": model.config.to_dict(), "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
             "train_config": cfg.to_dict(), "stage": int(stage), "epoch": int(epoch), "step": int(step),
             "history": history, "elapsed_s": float(elapsed), "segments": segments}
    if average is not None:
        state["average_state_dict"] = average.module.state_dict()
        state["average_count"] = int(average.n_averaged)
    save_torch(state, path)


#: The file of a run folder that a run resumes from (written after every epoch, atomically).
CHECKPOINT_NAME = "checkpoint.pt"

#: What a resumable ``checkpoint.pt`` holds besides the config and the weights.
_STATE_KEYS = ("optimizer", "train_config", "stage", "epoch", "step", "history", "elapsed_s")


def _check_train_args(cfg: TrainConfig, out_dir, resume: bool) -> None:
    """Refuse, before anything is written, a run that cannot work or would take no optimiser step."""
    from .io import check_output_dir

    check_output_dir(out_dir, what="run folder")
    resolve_device(cfg.device, what="device")
    for name in ("batch_size", "epoch_pairs", "val_pairs", "patch"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if cfg.minutes is not None and not (isinstance(cfg.minutes, (int, float)) and math.isfinite(cfg.minutes)
                                        and cfg.minutes > 0):
        raise ValueError(f"minutes must be a positive number, got {cfg.minutes!r}")
    if cfg.batch_size > cfg.epoch_pairs:
        raise ValueError(f"batch size {cfg.batch_size} is larger than the {cfg.epoch_pairs} pairs of an epoch: "
                         "incomplete batches are dropped, so no optimiser step would be taken; "
                         "lower the batch size or raise the pairs per epoch")
    if not resume and sum(cfg.stage_epochs[int(cfg.start_stage) - 1:]) < 1:
        raise ValueError(f"stage_epochs {tuple(cfg.stage_epochs)} from stage {cfg.start_stage} on add up to no epoch: "
                         "no optimiser step would be taken")


def write_history(history: list[dict], out_dir: Path):
    with atomic_write(Path(out_dir) / "history.csv", "w", newline="") as f:
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
        with atomic_write(path, "wb") as handle:
            fig.savefig(handle, format=Path(path).suffix.lstrip(".").lower() or "png", dpi=100)
        plt.close(fig)
    return fig


def train(cfg: TrainConfig, out_dir, resume: bool = False, overwrite: bool = False, command: str | None = None,
          progress: bool = True) -> dict:
    """Run the three stages; returns the ``record.json`` content.

    Raises:
        ValueError: ``out_dir`` already holds a run and neither ``resume`` nor ``overwrite``
            was asked for, or ``resume`` was asked for with no checkpoint there.
    """
    _check_train_args(cfg, out_dir, resume)
    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME
    if out_dir.exists() and any(out_dir.iterdir()) and not (resume or overwrite):
        raise ValueError(f"{out_dir}: holds an earlier run; pass --resume to continue it or --overwrite to start again")
    if resume and not ckpt_path.exists():
        raise ValueError(f"{ckpt_path}: no checkpoint to resume from")
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device, what="device")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed patch size: let cuDNN pick its fastest convolutions
    model = SPINNet(cfg.model_config()).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    stage, epoch, step, history, elapsed0 = int(cfg.start_stage), 0, 0, [], 0.0
    resumed_average = None  # (weights, steps averaged) of a resumed run's moving average
    segments = []  # one entry per invocation: a run resumed with other settings keeps them all
    if resume:
        state = read_checkpoint(ckpt_path, map_location=device)  # weights_only=True, checksums, finite weights
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise ValueError(f"{ckpt_path}: not a resumable training checkpoint (no {', '.join(missing)})")
        if state["config"] != model.config.to_dict():
            raise ValueError(f"{ckpt_path}: checkpoint is of config {state['config'].get('name')!r}, not {cfg.preset!r}")
        try:
            model.load_state_dict(state["state_dict"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"{ckpt_path}: the checkpoint does not fit this run ({first})") from None
        stage, epoch, step, history, elapsed0 = state["stage"], state["epoch"], state["step"], state["history"], state["elapsed_s"]
        earlier = state["train_config"]
        segments = state.get("segments") or [{"command": "(not recorded)", "train_config": earlier, "from_stage": 1,
                                              "from_epoch": 0}]
        for row in history:
            row.setdefault("patch", earlier["patch"])
        if "average_state_dict" in state:
            resumed_average = state["average_state_dict"], state["average_count"]
    # the banks after the checkpoint checks: a run that cannot resume says so before minutes of simulation
    train_bank, val_bank = _banks(cfg, out_dir, progress)
    init_note = None
    if cfg.init_from and not resume:
        init_note = transfer_weights(model, cfg.init_from)
        init_note = {"from": str(cfg.init_from), "copied": init_note["copied"], "skipped": init_note["skipped"]}
        print(f"initialised from {cfg.init_from}: {init_note['copied']} tensors copied, "
              f"{len(init_note['skipped'])} left as initialised", flush=True)
        if cfg.freeze_bn and cfg.recalibrate_bn:
            last, refine = STAGES[stage]
            calib = SimulatedPairs(32, base=cfg.seed * 10_000_000 + 999 * cfg.epoch_pairs, spec=cfg.spec, bank=train_bank)
            items = [calib[i] for i in range(len(calib))]
            batches = [{k: torch.stack([p[k] for p in items[i:i + 4]]).to(device) for k in items[0]}
                       for i in range(0, len(items), 4)]
            recalibrate_batchnorm(model, batches, last, refine)
    segments.append({"command": command or "spinnet_lite.train.train(...)", "train_config": cfg.to_dict(),
                     "from_stage": stage, "from_epoch": epoch, "init": init_note})
    average = None
    if cfg.ema_decay is not None:
        average = weight_average(model, cfg.ema_decay)  # starts as the weights trained so far
        if resumed_average is not None:
            average.module.load_state_dict(resumed_average[0])
            average.n_averaged.fill_(resumed_average[1])
    output = model if average is None else average.module  # what is validated and saved as model.pt
    val_pairs = _validation(cfg, val_bank)
    t0 = time.perf_counter() - elapsed0
    budget = None if cfg.minutes is None else cfg.minutes * 60.0
    first_step = step  # the time budget never stops a run before its first epoch: no step-less runs
    while stage <= 3:
        last, refine = STAGES[stage]
        if epoch == 0 and stage == 2 and not cfg.init_from:
            model.init_level_from(src=3, dst=2)  # stage 2: level 2 starts from level 3's estimators
            if average is not None:  # the average starts again from the re-initialised weights
                average.module.load_state_dict(model.state_dict())
                average.n_averaged.zero_()
        n_epochs = cfg.stage_epochs[stage - 1]
        bar = tqdm(total=n_epochs, initial=epoch, desc=f"stage {stage}", disable=not progress, file=sys.stderr)
        while epoch < n_epochs:
            if budget is not None:
                stage_start, stage_end = stage_window(budget, cfg.stage_share, stage)
                now = time.perf_counter() - t0
                if step > first_step and now > stage_end:
                    break  # this stage's share of the time is spent
                progress_frac = (now - stage_start) / max(stage_end - stage_start, 1e-9)
            else:
                progress_frac = epoch / n_epochs
            lr = learning_rate(cfg, stage, epoch, progress_frac)
            for group in optimizer.param_groups:
                group["lr"] = lr
            _train_mode(model, cfg.freeze_bn)
            total, count = 0.0, 0
            for batch in _loaders(cfg, epoch, stage, train_bank):
                batch = {k: v.to(device) for k, v in batch.items()}
                out = model(batch["reference"], batch["sample"], last_level=last, refine=refine)
                loss, _ = multilevel_loss(out, batch["displacement"], batch["transmission"], weights=cfg.loss_weights(),
                                          eps=cfg.loss_eps)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if step < cfg.warmup_steps:  # the warm-up's last step is back at the schedule's lr
                    for group in optimizer.param_groups:
                        group["lr"] = lr * (step + 1) / cfg.warmup_steps
                if cfg.clip_grad:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                optimizer.step()
                if average is not None:
                    update_average(average, model)
                total += float(loss.detach()) * len(batch["reference"])
                count += len(batch["reference"])
                step += 1
            val_loss, val_pe = evaluate_loss(output, val_pairs, stage, device, cfg.loss_eps, cfg.loss_weights())
            epoch += 1
            history.append(dict(stage=stage, epoch=epoch, step=step, patch=cfg.patch, lr=lr, train_loss=total / max(count, 1),
                                val_loss=val_loss, val_pair_error=val_pe, elapsed_s=round(time.perf_counter() - t0, 1)))
            bar.update(1)
            bar.set_postfix(train=f"{total / max(count, 1):.4f}", val=f"{val_loss:.4f}")
            print(f"stage {stage} epoch {epoch}/{n_epochs} lr {lr:.2e} train {total / max(count, 1):.5f} "
                  f"val {val_loss:.5f} val_pair_error {val_pe:.5f} t {time.perf_counter() - t0:.0f}s", flush=True)
            write_history(history, out_dir)
            _save_state(ckpt_path, model, optimizer, cfg, stage, epoch, step, history, time.perf_counter() - t0, segments,
                        average)
        bar.close()
        stage, epoch = stage + 1, 0
        _save_state(ckpt_path, model, optimizer, cfg, stage, epoch, step, history, time.perf_counter() - t0, segments,
                    average)
    elapsed = time.perf_counter() - t0
    model.eval()
    output.eval()
    record = {
        "command": command or "spinnet_lite.train.train(...)",
        "segments": segments,
        "train_config": cfg.to_dict(),
        "model_config": model.config.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights": "raw" if average is None else f"exponential moving average, decay {cfg.ema_decay}, "
                                                 f"{int(average.n_averaged)} steps averaged",
        "data": {"training_seeds": f"{cfg.seed * 10_000_000} + (stage * 1000 + epoch) * epoch_pairs + i",
                 "validation_seeds": f"{VALIDATION_SEED_BASE + cfg.seed * 10_000} .. +{cfg.val_pairs}",
                 "training_bank_seeds": f"{cfg.seed * 100_000} .. +{cfg.spec.bank_size}",
                 "validation_bank_seeds": f"{VALIDATION_BANK_BASE + cfg.seed * 100_000} .. +{min(cfg.val_bank_size, cfg.spec.bank_size)}",
                 "distribution": "spinnet_lite.data.PairSpec (train_config.spec)",
                 "displacement_geometry": "Geometry.training()"},
        "training_time_s": round(elapsed, 1),
        "steps": step,
        "epochs_per_stage": [sum(1 for h in history if h["stage"] == s) for s in (1, 2, 3)],
        "final_val_loss": history[-1]["val_loss"] if history else None,
        "final_val_pair_error": history[-1]["val_pair_error"] if history else None,
        "torch": str(torch.__version__),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }
    save_checkpoint(output, out_dir / "model.pt", extra={"record": record})
    write_history(history, out_dir)
    if history:
        plot_history(history, out_dir / "history.png")
    write_text(out_dir / "record.json", json.dumps(record, indent=2))
    return record
