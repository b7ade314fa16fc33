# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Staged training
#
# Notebook 03 built SPINNet with random weights. Here it learns, in the three stages of the
# seed (section 2.2):
#
# | stage | what is trained | forward path |
# |---|---|---|
# | 1 | pyramid levels 6..3: extractors, PhaseNet and TNet at levels 6, 5, 4, 3 | `forward(last_level=3, refine=False)` |
# | 2 | adds level 2, its PhaseNet and TNet **initialised from level 3's** | `forward(last_level=2, refine=False)` |
# | 3 | adds the PhaseRefiner and TRefiner | `forward(last_level=2, refine=True)` |
#
# The loss is Eq. 4 applied at every level of the path (the ground truth average-pooled to the
# level) and to the final, full-size output, with the weights of
# `spinnet_lite.model.loss.DEFAULT_WEIGHTS`; Adam with a learning rate scaled per stage and
# halved every few epochs. Every epoch draws fresh simulated pairs from new seeds; the
# validation pairs are fixed and never trained on.
#
# The notebook shows the loss curves of the three stages (as the seed's Fig. 4) and what
# each stage's path predicts for one held-out pair (as the seed's Fig. S3). With
# `QUICK = True` a tiny network trains for a few steps; otherwise the notebook reads the
# loss history and weights bundled with `spinnet_lite` (or retrains `lite` with
# `RETRAIN = True` and a time budget of `MINUTES`). Figures and a `summary.json` go to
# `OUTPUT_DIR`.

# %% tags=["parameters"]
QUICK = False  # True: train the tiny network for a few steps (the tests run this)
RETRAIN = False  # True: train the lite network here instead of reading the bundled run
MINUTES = 90.0  # time budget of a retraining run (shared out between the stages)
PAIR_INDEX = 0  # which held-out pair to predict (spinnet_lite.evalset; index 0 is a "clean" one)
PAIR_SIZE = 256  # its size, px (a multiple of 32)
OUTPUT_DIR = "../output/04"

# %%
if QUICK:  # every code path still runs, on less data
    PAIR_SIZE = 128

# %%
# %matplotlib inline
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from spinnet_lite import load_pretrained, plots
from spinnet_lite.data import to_tensors
from spinnet_lite.evalset import heldout_specs, simulate_spec
from spinnet_lite.metrics import displacement_rmse, pair_error_terms
from spinnet_lite.model import DEFAULT_WEIGHTS, SPINNet, load_checkpoint, pair_error
from spinnet_lite.pretrained import HISTORY
from spinnet_lite.train import HISTORY_FIELDS, STAGES, plot_history, preset_config, read_history, train

out = Path(OUTPUT_DIR)
out.mkdir(parents=True, exist_ok=True)
summary = {"quick": QUICK, "retrain": RETRAIN, "pair_index": PAIR_INDEX, "pair_size": PAIR_SIZE}


def save(fig, name):
    """Save a figure into OUTPUT_DIR (PNG) and keep it displayed inline."""
    fig.savefig(out / name, dpi=110, bbox_inches="tight")



# %% [markdown]
# ## 1 · The stages in code
#
# `spinnet_lite.train.STAGES` maps each stage to its forward path `(last_level, refine)`.
# Before stage 2, `SPINNet.init_level_from(3, 2)` copies level 3's PhaseNet and TNet into level
# 2: both see inputs of the same width (notebook 03), and level 3 has just learnt what level 2
# has to do at twice the resolution, so level 2 starts from a working estimator instead of
# from scratch. Below: the loss weights per level, the copy checked on a fresh network, and
# the training presets (`preset_config`): epochs per stage, the share of a time budget each
# stage gets, the learning rate and its per-stage scale and halving period. In the training
# loss each denominator of Eq. 4 has a small floor (`loss_eps`, px²), so that a pair with
# almost no displacement cannot dominate a batch; the validation pair error is Eq. 4 without
# it.

# %%
print("STAGES (stage: (last_level, refine)):", STAGES)
print("loss weights per level:", DEFAULT_WEIGHTS)
demo = SPINNet("tiny")
before = all(torch.equal(a, b) for a, b in zip(demo.phase_nets["2"].state_dict().values(),
                                             demo.phase_nets["3"].state_dict().values()))
demo.init_level_from(src=3, dst=2)
after = all(torch.equal(a, b) for nets in (demo.phase_nets, demo.t_nets)
            for a, b in zip(nets["2"].state_dict().values(), nets["3"].state_dict().values()))
print(f"level 2 == level 3 before init_level_from: {before}; after: {after}")
summary["init_level_copies"] = bool(after and not before)
for name in ("tiny", "lite"):
    print(f"preset {name!r}:", {k: v for k, v in preset_config(name).to_dict().items() if k != "spec"})

# %% [markdown]
# ## 2 · The run: bundled, or trained here
#
# The package ships the weights of its own training run (`load_pretrained()`, the `lite`
# network) and that run's loss per epoch (`spinnet_lite/weights/lite_history.csv`, the
# `history.csv` the trainer writes). Both are read here in every mode, so a quick run checks
# them too.
#
# In quick mode `train(preset_config("tiny", workers=0, threads=1), ...)` runs the same three stages on
# a tiny network with a handful of 64×64 pairs per epoch: seconds, not hours, and far too
# short to learn much; it shows the mechanics. With `RETRAIN = True` the `lite` preset trains
# for up to `MINUTES` minutes (the bundled run took longer; expect a higher loss).

# %%
bundled_history = read_history(HISTORY)
bundled = load_pretrained()
print(f"bundled: {bundled.config.name!r} network, {bundled.num_parameters():,} parameters; "
      f"{len(bundled_history)} epochs in {HISTORY.name}, columns {list(bundled_history[0])}")
assert tuple(bundled_history[0]) == HISTORY_FIELDS, "the bundled history has other columns than a run's history.csv"
summary.update(bundled_history_rows=len(bundled_history), bundled_config=bundled.config.name)

if QUICK or RETRAIN:
    run_dir = out / "run"
    # one torch thread for the tiny network: more only add overhead, and on a busy CPU a lot of it
    cfg = preset_config("tiny", workers=0, threads=1) if QUICK else preset_config("lite", minutes=MINUTES)
    print(f"training {cfg.preset!r}: stage epochs {cfg.stage_epochs}, {cfg.epoch_pairs} pairs of "
          f"{cfg.patch} px per epoch, batch {cfg.batch_size}, lr {cfg.lr:g} -> {run_dir}")
    start = time.perf_counter()
    record = train(cfg, out_dir=run_dir, overwrite=True, progress=False)
    train_seconds = time.perf_counter() - start
    print(f"trained in {train_seconds:.1f} s, {record['steps']} steps, epochs per stage {record['epochs_per_stage']}")
    history = read_history(run_dir / "history.csv")
    model = load_checkpoint(run_dir / "model.pt")
    source = "quick run" if QUICK else "retrained"
    summary.update(train_seconds=train_seconds, train_steps=record["steps"])
else:
    history, model, source = bundled_history, bundled, "bundled"
model.eval()
summary.update(source=source, model_config=model.config.name, model_parameters=model.num_parameters())
print(f"using the {source} model ({model.config.name!r}) and its history: {len(history)} epochs")

# %% [markdown]
# ## 3 · Loss curves (seed Fig. 4)
#
# `plot_history` draws the training loss (mean over the epoch's batches, in training mode),
# the validation loss (the same multi-level loss on the fixed validation pairs, in eval mode)
# and the validation pair error of the final output, Eq. 4 alone, with each stage shaded.
#
# The multi-level loss changes its terms at each stage boundary: stage 2 adds a level-2 term
# and its final output is level 2's instead of level 3's; stage 3 refines that output. So a
# jump of the loss at a boundary is a change of yardstick, not a loss of skill. The pair
# error of the final output is the same measure in every stage, and the one to compare; a
# value near 2 means "nothing learnt" (the guess $d = 0$, $T = 1$ scores about 2, notebook
# 03). The learning rate is halved every few epochs within a stage (the table below).

# %%
fig = plot_history(history)
fig.axes[0].set_title(f"Staged training of {model.config.name!r} ({source}): loss per epoch", pad=18)
save(fig, "loss_curves.png")

stages = [int(h["stage"]) for h in history]
epochs_per_stage = [stages.count(s) for s in (1, 2, 3)]
print(f"{'stage':>5} {'epochs':>6} {'lr first -> last':>22} {'train loss':>11} {'val loss':>9} {'val pair error':>15}")
for s in (1, 2, 3):
    rows = [h for h in history if int(h["stage"]) == s]
    if rows:
        print(f"{s:>5} {len(rows):>6} {rows[0]['lr']:>10.2e} -> {rows[-1]['lr']:.2e} {rows[-1]['train_loss']:>11.4f} "
              f"{rows[-1]['val_loss']:>9.4f} {rows[-1]['val_pair_error']:>15.4f}")
summary.update(n_epochs=len(history), history_rows=len(history), epochs_per_stage=epochs_per_stage,
               stages_in_order=stages == sorted(stages), final_val_loss=history[-1]["val_loss"],
               final_val_pair_error=history[-1]["val_pair_error"],
               stage_end_val_pair_error=[next((h["val_pair_error"] for h in reversed(history) if int(h["stage"]) == s),
                                              None) for s in (1, 2, 3)])

# %% [markdown]
# ## 4 · What each stage predicts (seed Fig. S3)
#
# The seed compares the outputs of stages 1, 2 and 3 on one validation pair. Only the final
# network is kept: the bundled weights do not include the checkpoints of stages 1 and 2 (and
# a quick or retraining run overwrites its checkpoint every epoch). So we run the **final**
# network along each stage's path:
#
# * stage 1 path: `forward(last_level=3, refine=False)`, levels 6..3; its output has a quarter
#   of the input's resolution, upsampled;
# * stage 2 path: `forward(last_level=2, refine=False)`, down to level 2 (half resolution);
# * stage 3 path: `forward(refine=True)`, the refiners on top: what `predict` returns.
#
# These are not the networks as they stood at the end of stages 1 and 2. Later stages keep
# training every weight (the optimiser holds them all, and the multi-level loss keeps
# supervising levels 6..3), so this is the final network read out at each stage's depth. It
# shows what each stage adds to the same weights.
#
# The pair is the first of the held-out evaluation set (`spinnet_lite.evalset`, seeds never
# used in training or validation), a random phantom at the training pitch, simulated at
# `PAIR_SIZE` px. Each row gives the pair error (Eq. 4) of that path.

# %%
spec = dict(heldout_specs(PAIR_INDEX + 1)[PAIR_INDEX], size=PAIR_SIZE)
pair = simulate_spec(spec)
batch = {k: v[None] for k, v in to_tensors({k: pair[k].values for k in pair.data_vars}).items()}
gt = {"dx": pair["dx"].values, "dy": pair["dy"].values, "transmission": pair["transmission"].values}
print(f"held-out pair {PAIR_INDEX}: kind {spec['kind']!r}, seed {spec['seed']}, {PAIR_SIZE} px, pitch {spec['pitch']}, "
      f"|d| up to {float(np.hypot(gt['dx'], gt['dy']).max()):.2f} px, T from {gt['transmission'].min():.3f}")

paths = {1: STAGES[1], 2: STAGES[2], 3: STAGES[3]}
predictions, stage_errors, stage_terms, stage_rmse = {}, [], [], []
with torch.no_grad():
    for stage, (last_level, refine) in paths.items():
        result = model(batch["reference"], batch["sample"], last_level=last_level, refine=refine)
        error = float(pair_error((result["displacement"], result["transmission"]),
                                 (batch["displacement"], batch["transmission"]))[0])
        pred = {"dx": result["displacement"][0, 0].numpy(), "dy": result["displacement"][0, 1].numpy(),
                "transmission": result["transmission"][0, 0].numpy()}
        terms = pair_error_terms(pred, gt)
        stage_errors.append(error)
        stage_terms.append(terms)
        stage_rmse.append(displacement_rmse(pred, gt))
        title = f"stage {stage} path (last level {last_level}{', refined' if refine else ''})\nEq. 4 = {error:.4f}"
        predictions[title] = pred
        print(f"stage {stage} path: last_level={last_level}, refine={refine}: pair error {error:.4f} "
              f"(dx {terms['dx']:.4f}, dy {terms['dy']:.4f}, T {terms['transmission']:.4f}); "
              f"displacement rmse {stage_rmse[-1]:.3f} px")
summary.update(stage_paths=[list(p) for p in paths.values()], stage_pair_errors=stage_errors,
               stage_error_terms=stage_terms, stage_displacement_rmse_px=stage_rmse,
               pair_seed=int(spec["seed"]), pair_kind=spec["kind"])

fig = plots.prediction_grid(gt, predictions)
fig.suptitle(f"Held-out pair {PAIR_INDEX} ({PAIR_SIZE} px): ground truth and the {source} "
             f"{model.config.name!r} network along each stage's path")
save(fig, "stage_predictions.png")

# %% [markdown]
# A profile through the middle of the pair shows the resolution each path works at: the
# stage 1 path stops at level 3 (4 px per estimate, then bilinear upsampling), the stage 2
# path at level 2 (2 px), and the refiners work at level 2 too, correcting the estimate
# without adding resolution.

# %%
row = PAIR_SIZE // 2
x = np.arange(PAIR_SIZE)
fig, axes = plt.subplots(1, 3, figsize=(17, 3.8), layout="constrained")
for ax, (name, label) in zip(axes, (("dx", "$d_x$ [px]"), ("dy", "$d_y$ [px]"), ("transmission", "$T$"))):
    ax.plot(x, gt[name][row], "k-", lw=2, label="ground truth")
    for (title, pred), style in zip(predictions.items(), ("C0--", "C1-.", "C3-")):
        ax.plot(x, pred[name][row], style, lw=1.2, label=title.split("\n")[0])
    ax.set(title=f"{label} along row {row}", xlabel="x [px]", ylabel=label)
axes[0].legend(fontsize=7)
save(fig, "stage_profiles.png")

# %% [markdown]
# ## Summary
#
# The numbers above, saved for the tests and the next notebooks.

# %%
with open(out / "summary.json", "w") as fh:
    json.dump(summary, fh, indent=1)
print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, (list, dict))}, indent=1))
print("stage pair errors (paths 1, 2, 3):", [round(e, 4) for e in stage_errors])
print("saved:", sorted(p.name for p in out.iterdir()))
