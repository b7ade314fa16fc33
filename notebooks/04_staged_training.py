# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Staged training
#
# Notebook 03 built SPINNet with random weights: it predicts nothing useful. This notebook
# shows how it learns: in **three stages**, coarse levels first (seed section 2.4 and
# Supplement 3). You will read the loss curves of the network bundled with `spinnet_lite`,
# see what each stage adds on a pair the network never saw, and run the same training
# yourself on a tiny network in seconds.
#
# **Learning objectives.** After this notebook you can
#
# 1. say what each of the three stages trains, and why stage 2 starts level 2 from level 3;
# 2. read a loss curve whose yardstick changes at every stage boundary;
# 3. compute the seed's pair error (Eq. 4) by hand and compare stages with it;
# 4. list where this project's training departs from the seed's, and why.
#
# **Prerequisites:** notebook 03 (the network's parts: pyramid, warp, cost volume, PhaseNet,
# TNet, refiners); Eq. 4 of the seed; PyTorch's `model(...)` calls.
#
# **Run time** (measured on a busy 2-core CPU): about half a minute in the default mode,
# which reads the bundled run; `QUICK = True` trains a tiny network for a few steps in under
# a minute; `RETRAIN = True` runs the project's own training here (hours). Peak memory about
# 0.5 GB.

# %% [markdown]
# <div style="border: 1px solid #888; border-radius: 6px; padding: 0.6em 1em; background: #f6f6f6">
#
# **Seed vs this project: training.** What the seed (Qiao, Shi et al. 2022, section 2.4 and
# Supplement 3) does, and where this project departs from it. The project's values are printed
# by the cell under section 1 from the configuration that trained the bundled weights.
#
# * **Stages** — the same three: stage 1 the coarse levels down to level 3, stage 2 adds level
#   2 initialised from level 3, stage 3 adds the refiners.
# * **Stage lengths** — the seed trains each stage for a fixed number of epochs; here a time
#   budget is shared out between the stages, each ending at its share or its epoch count.
# * **Learning rate** — seed: Adam at 1e-4, halved on a fixed schedule. Here a higher rate,
#   scaled down for stages 2-3: at 1e-4 nothing moved within a CPU budget (README, *Training*).
#   The segments of the bundled weights from the fifth on (the first on a GPU, where the steps
#   a time budget buys are not known in advance) decay the rate along a cosine of the time
#   spent instead, after a short warm-up.
# * **Weights kept** — the seed keeps the weights of its last step. The segments here from the
#   sixth on keep an exponential moving average of them over the run (`TrainConfig.ema_decay`,
#   about the last 500 steps), which measured slightly better on the held-out set than the
#   last step's (README, *Training*).
# * **Network changed between segments** — the twelfth segment fine-tuned the eleventh's
#   weights in the network whose level-2 prop layer warps the reference image instead of the
#   level-2 features (notebook 03, section 4). The change adds no weights, so every tensor
#   carries over; the estimators had to relearn what the sharper warped features look like.
# * **Loss** — seed: Eq. 4. Here Eq. 4 at every pyramid level with the project's own level
#   weights (adapted from PWC-Net, not the seed's), a floor under each denominator so that a
#   pair with almost no displacement cannot dominate a batch, and gradient-norm clipping.
# * **Training data** — the seed simulates at 0.06 nm and 0.3 m. Here the training set-up is
#   `Geometry.training()` and the pairs are drawn fresh every epoch from
#   `spinnet_lite.data.PairSpec` (notebook 02).
# * **Network** — the `lite` preset (notebook 03) is narrower than the seed's; its
#   configuration, saved inside each checkpoint, is printed below.
# </div>

# %% tags=["parameters"]
QUICK = False  # True: train the tiny network for a few steps (the tests run this)
RETRAIN = False  # True: run `make train-lite`'s training here (hours) instead of reading the bundled run
MINUTES = None  # time budget of each retraining command, minutes (None: as in the Makefile)
PAIR_INDEX = 0  # which held-out pair to predict (spinnet_lite.evalset; index 0 is a "clean" one)
PAIR_SIZE = 256  # its size, px (a multiple of 32)
OUTPUT_DIR = "../output/04"

# %%
if QUICK:  # every code path still runs, on less data
    PAIR_SIZE = 128

# %%
# %matplotlib inline
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display

from spinnet_lite import Geometry, load_pretrained, nbtools, plots
from spinnet_lite.pretrained import training_segments
from spinnet_lite.cli import build_parser
from spinnet_lite.cli import main as spinnet_cli
from spinnet_lite.data import to_tensors
from spinnet_lite.evalset import heldout_specs, simulate_spec
from spinnet_lite.metrics import displacement_rmse, pair_error_terms
from spinnet_lite.model import DEFAULT_WEIGHTS, SPINNet, load_checkpoint, pair_error
from spinnet_lite.pretrained import HISTORY, pretrained_record
from spinnet_lite.train import STAGES, epoch_progress, plot_history, preset_config, read_history, train

lesson = nbtools.Lesson(OUTPUT_DIR, quick=QUICK, retrain=RETRAIN, pair_index=PAIR_INDEX, pair_size=PAIR_SIZE)

# %% [markdown]
# ## 0 · The whole game: the bundled run in one picture
#
# The package ships the weights of its own training run (`load_pretrained()`) and that run's
# loss per epoch (`spinnet_lite/weights/lite_history.csv`). Here is the run, stages shaded.
# The dotted curve is the one to watch: the validation **pair error** (Eq. 4) of the final
# output, on pairs the network never trains on.

# %%
bundled = load_pretrained()
bundled_history = read_history(HISTORY)
record = pretrained_record()
fig = plot_history(bundled_history)
fig.axes[0].set_title(f"The bundled {bundled.config.name!r} network: loss per epoch", pad=18)
lesson.savefig(fig, "loss_curves_bundled.png")
lesson.record(bundled_history_rows=len(bundled_history), bundled_config=bundled.config.name)
print(f"{len(bundled_history)} epochs, {record['steps']} steps, {record['training_time_s'] / 60:.0f} min; "
      f"validation pair error {bundled_history[0]['val_pair_error']:.3f} after the first epoch, "
      f"{bundled_history[-1]['val_pair_error']:.4f} at the end")

# %% [markdown]
# The curve shows the last training run only. The bundled weights come from a chain of runs,
# each started from the weights of the one before (`--init-from`); a run stopped and resumed
# (`--resume`) has several segments. The record (`spinnet_lite/weights/lite.json`) keeps the
# earlier runs under `lineage`: every segment, read from it. A segment's `--minutes` is the
# budget of its run up to that segment's end (a resumed run counts the time it already
# trained); the training time and the steps are the whole run's.

# %%
segments_table = pd.DataFrame(training_segments(record))
total_s = record.get("total_training_time_s", record["training_time_s"])
lesson.record(bundled_segments=len(segments_table), bundled_total_training_time_s=total_s)
with pd.option_context("display.max_colwidth", None):
    display(segments_table.set_index(["run", "segment"]))
firsts = segments_table[segments_table["segment"] == 1]
by_device = firsts.groupby("device")["run's training time [min]"].sum()
print(f"{segments_table['run'].nunique()} runs, {len(segments_table)} segments; total training time "
      f"{total_s / 60:.0f} min ({total_s / 3600:.1f} h): "
      + ", ".join(f"{minutes:.0f} min on {device or 'an unrecorded device'}" for device, minutes in by_device.items()))

# %% [markdown]
# > **Think!** An untrained network predicts about $d = 0$, $T = 1$, and Eq. 4 then scores
# > about 2 (notebook 03). Where on the curve above does the network stop being "untrained"?
# > And why could the *training* loss sit above the validation loss for a while?

# %% [markdown]
# ## 1 · The stages in code
#
# `spinnet_lite.train.STAGES` maps each stage to its forward path `(last_level, refine)`:
#
# | stage | what is trained | forward path |
# |---|---|---|
# | 1 | the coarse levels, down to level 3: extractors, PhaseNet and TNet per level | `forward(last_level=3, refine=False)` |
# | 2 | adds level 2, its PhaseNet and TNet **initialised from level 3's** | `forward(last_level=2, refine=False)` |
# | 3 | adds the PhaseRefiner and TRefiner | `forward(last_level=2, refine=True)` |
#
# Before stage 2, `SPINNet.init_level_from(3, 2)` copies level 3's estimators into level 2.
# Both see inputs of the same width (notebook 03), and level 3 has just learnt what level 2
# has to do at twice the resolution, so level 2 starts from a working estimator. The cell
# checks the copy on a fresh tiny network and prints the training settings of the bundled run.

# %%
print("STAGES (stage: (last_level, refine)):", STAGES)
print("levels of the bundled network, coarse to fine:", bundled.config.levels)
demo = SPINNet("tiny")


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


before = same_weights(demo.phase_nets["2"], demo.phase_nets["3"])
demo.init_level_from(src=3, dst=2)
after = same_weights(demo.phase_nets["2"], demo.phase_nets["3"]) and same_weights(demo.t_nets["2"], demo.t_nets["3"])
lesson.record(init_level_copies=bool(after and not before))
print(f"level 2 == level 3 before init_level_from: {before}; after: {after}")

# %%
tc = record["train_config"]
training_geometry = Geometry.training()
project = {
    "stage lengths": f"time budget {tc['minutes']:g} min shared {tc['stage_share']}, at most {tc['stage_epochs']} epochs",
    "learning rate": (f"Adam {tc['lr']:g}, x{tc['stage_lr_scale']} per stage, "
                      + (f"cosine decay to x{tc['lr_floor']:g} over each stage's time budget, "
                         f"{tc.get('warmup_steps', 0)} warm-up steps" if tc.get("lr_schedule", "step") == "cosine"
                         else f"halved every {tc['halve_every']} epochs")),
    "loss": f"Eq. 4 per level, weights {DEFAULT_WEIGHTS}; denominators floored at {tc['loss_eps']:g} px^2; "
            f"gradient norm clipped at {tc['clip_grad']}",
    "training data": f"{tc['patch']} px pairs, {tc['epoch_pairs']} per epoch, batch {tc['batch_size']}; "
                     f"training geometry {training_geometry.wavelength_m * 1e9:.2f} nm, sample "
                     f"{training_geometry.sample_detector_mm:g} mm from the detector",
    "network": f"{bundled.config.name!r}: levels {bundled.config.levels}, pyramid channels "
               f"{list(bundled.config.pyramid_channels)}, N = {bundled.config.search_range}, "
               f"{bundled.num_parameters():,} parameters",
}
for item, value in project.items():
    print(f"{item:>14}: {value}")

# %% [markdown]
# > **Think!** The learning rate here is higher than the seed's. What would you expect to
# > see in the loss curve if it were too high? (Look for spikes; the gradient clipping above
# > is there to keep one bad batch from undoing an epoch.)
#
# ## 2 · The run: bundled, or trained here
#
# In quick mode `train(preset_config("tiny", ...))` runs the same three stages on a tiny
# network with a handful of small pairs per epoch: seconds, not hours, and far too short to
# learn much; it shows the mechanics. With `RETRAIN = True` the notebook runs the training
# commands of `make train-lite`, read from the project's Makefile: the settings that work
# here. (Neither the seed's learning rate of 1e-4 nor the 128 px patches of this project's
# first run learned within a CPU budget: README, *Training*.) They write into
# `OUTPUT_DIR/run` instead of `runs/`. Otherwise the bundled run is used.

# %%
run_dir = lesson.path("run")
commands = [argv for argv in nbtools.make_commands("train-lite") if argv[:1] == ["train"]]
if not commands:  # no Makefile (a pip-installed package): the lite preset
    print("no Makefile found: RETRAIN would use the 'lite' preset as it is")
    commands = [["train", "--preset", "lite", "--out", "runs/lite"]]


def relocated(argv):
    """A training command that writes into run_dir instead of runs/, with MINUTES when given."""
    argv = [a.replace("runs/", f"{run_dir}/") for a in argv] + ["--overwrite", "--no-progress"]
    return argv + ["--minutes", str(MINUTES)] if MINUTES is not None else argv


def resolved(argv):
    """The settings a training command trains with: its flags over its preset's values."""
    args = build_parser().parse_args(argv)
    cfg = preset_config(args.preset, lr=args.lr, patch=args.patch, batch_size=args.batch_size,
                        epoch_pairs=args.epoch_pairs)
    return {"preset": args.preset, "lr": cfg.lr, "patch": cfg.patch, "batch_size": cfg.batch_size}


lesson.record(retrain_commands=[relocated(a) for a in commands], retrain_settings=[resolved(a) for a in commands])
for argv in commands:
    print("make train-lite runs: python -m spinnet_lite", " ".join(argv), "\n   ->", resolved(argv))

# %%
if QUICK:
    cfg = preset_config("tiny", workers=0, threads=1)
    print(f"training {cfg.preset!r}: stage epochs {cfg.stage_epochs}, {cfg.epoch_pairs} pairs of {cfg.patch} px "
          f"per epoch, batch {cfg.batch_size}, lr {cfg.lr:g} -> {run_dir}")
    start = time.perf_counter()
    run_record = train(cfg, out_dir=run_dir, overwrite=True, progress=False)
    print(f"trained in {time.perf_counter() - start:.1f} s, {run_record['steps']} steps")
    final_dir, source = run_dir, "quick run"
elif RETRAIN:
    for argv in map(relocated, commands):
        assert spinnet_cli(argv) == 0, f"training failed: python -m spinnet_lite {' '.join(argv)}"
    final_dir, source = Path(build_parser().parse_args(argv).out), "retrained"
if QUICK or RETRAIN:
    history, model = read_history(final_dir / "history.csv"), load_checkpoint(final_dir / "model.pt")
else:
    history, model, source = bundled_history, bundled, "bundled"
model.eval()
lesson.record(source=source, model_config=model.config.name, model_parameters=model.num_parameters())
print(f"using the {source} model ({model.config.name!r}, {model.num_parameters():,} parameters): {len(history)} epochs")

# %% [markdown]
# ## 3 · Reading the loss curves
#
# `plot_history` draws the training loss (mean over the epoch's batches, in training mode),
# the validation loss (the same multi-level loss on fixed validation pairs, in eval mode) and
# the validation pair error of the final output (Eq. 4 alone).
#
# The multi-level loss changes its terms at each stage boundary: stage 2 adds a level-2 term
# and its final output is level 2's instead of level 3's; stage 3 refines that output. A jump
# at a boundary is a change of yardstick, not a loss of skill. The pair error of the final
# output is the same measure in every stage, and the one to compare.

# %%
fig = plot_history(history)
fig.axes[0].set_title(f"Staged training of {model.config.name!r} ({source}): loss per epoch", pad=18)
lesson.savefig(fig, "loss_curves.png")
per_stage = {s: [h for h in history if int(h["stage"]) == s] for s in (1, 2, 3)}
table = pd.DataFrame([{"stage": s, "epochs": len(r), "lr first": r[0]["lr"], "lr last": r[-1]["lr"],
                       "train loss": r[-1]["train_loss"], "val loss": r[-1]["val_loss"],
                       "val pair error": r[-1]["val_pair_error"]} for s, r in per_stage.items() if r]).set_index("stage")
stages = [int(h["stage"]) for h in history]
lesson.record(n_epochs=len(history), history_rows=len(history), epochs_per_stage=[stages.count(s) for s in (1, 2, 3)],
              stages_in_order=stages == sorted(stages), final_val_loss=history[-1]["val_loss"],
              final_val_pair_error=history[-1]["val_pair_error"])
display(table)

# %% [markdown]
# > **Try this.** Find, in the table, the stage whose validation pair error falls the most.
# > Then look at the curve: is that stage's gain made in its first few epochs or spread out?
#
# ## 4 · What each stage's path predicts
#
# The bundled weights keep only the final network, not the networks at the end of stages 1
# and 2. So we run the **final** network along each stage's path:
#
# * stage 1 path: `forward(last_level=3, refine=False)`: its output has a quarter of the
#   input's resolution, upsampled;
# * stage 2 path: `forward(last_level=2, refine=False)`: down to level 2 (half resolution);
# * stage 3 path: `forward(refine=True)`: the refiners on top, what `predict` returns.
#
# Later stages keep training every weight, so this is the final network read out at each
# stage's depth, not the network as it stood after stage 1. The pair is one of the held-out
# set (`spinnet_lite.evalset`: seeds never used in training or validation). Each row shows a
# path's $d_x$, $d_y$, $T$ and, beside each, its **error** (prediction − truth) on one scale
# for all rows, so the stages can be told apart.

# %%
spec = dict(heldout_specs(PAIR_INDEX + 1)[PAIR_INDEX], size=PAIR_SIZE)
pair = simulate_spec(spec)
batch = {k: v[None] for k, v in to_tensors({k: pair[k].values for k in pair.data_vars}).items()}
gt = {"dx": pair["dx"].values, "dy": pair["dy"].values, "transmission": pair["transmission"].values}
print(f"held-out pair {PAIR_INDEX}: kind {spec['kind']!r}, {PAIR_SIZE} px, pitch {spec['pitch']} px, "
      f"|d| up to {float(np.hypot(gt['dx'], gt['dy']).max()):.2f} px, T from {gt['transmission'].min():.3f}")


def run_path(model, last_level, refine):
    """The network along one stage's path: (prediction maps, Eq. 4 pair error)."""
    with torch.no_grad():
        out = model(batch["reference"], batch["sample"], last_level=last_level, refine=refine)
    error = float(pair_error((out["displacement"], out["transmission"]), (batch["displacement"], batch["transmission"]))[0])
    pred = {"dx": out["displacement"][0, 0].numpy(), "dy": out["displacement"][0, 1].numpy(),
            "transmission": out["transmission"][0, 0].numpy()}
    return pred, error


predictions, rows = {}, []
for stage, (last_level, refine) in STAGES.items():
    pred, error = run_path(model, last_level, refine)
    predictions[f"stage {stage} path\nEq. 4 = {error:.4f}"] = pred
    rows.append({"stage path": stage, "last level": last_level, "refiners": refine, "Eq. 4": error,
                 **{f"term {k}": v for k, v in pair_error_terms(pred, gt).items()},
                 "displacement rmse [px]": displacement_rmse(pred, gt)})
stage_table = pd.DataFrame(rows).set_index("stage path")
lesson.record(stage_paths=[list(p) for p in STAGES.values()], stage_pair_errors=stage_table["Eq. 4"].tolist(),
              stage_error_terms=[{k[5:]: r[k] for k in r if k.startswith("term ")} for r in rows],
              stage_displacement_rmse_px=stage_table["displacement rmse [px]"].tolist(), pair_kind=spec["kind"])
display(stage_table.round(4))

# %%
fig = plots.prediction_grid(gt, predictions, pixel_size_um=training_geometry.pixel_size_um)
fig.suptitle(f"Held-out pair {PAIR_INDEX} ({PAIR_SIZE} px): truth, the {source} network along each stage's path, "
             f"and each path's error (one scale per column)")
lesson.savefig(fig, "stage_predictions.png")

# %% [markdown]
# A profile through the middle of the pair shows the resolution each path works at: the
# stage 1 path stops at level 3 (one estimate per 4 px, then bilinear upsampling), the
# stage 2 path at level 2 (2 px), and the refiners correct level 2's estimate.

# %%
row = PAIR_SIZE // 2
x_um = pair.x.values
fig, axes = plt.subplots(1, 3, figsize=(16, 3.6), layout="constrained")
for ax, (name, label) in zip(axes, (("dx", "$d_x$ [px]"), ("dy", "$d_y$ [px]"), ("transmission", "$T$"))):
    ax.plot(x_um, gt[name][row], "k-", lw=2, label="ground truth")
    for (title, pred), style in zip(predictions.items(), ("C0--", "C1-.", "C3-")):
        ax.plot(x_um, pred[name][row], style, lw=1.2, label=title.split("\n")[0])
    ax.set(title=f"{label} along row {row}", xlabel="x [µm]", ylabel=label)
axes[0].legend(fontsize=7)
lesson.savefig(fig, "stage_profiles.png")

# %% [markdown]
# ## 5 · Exercises
#
# Each exercise ends with a check you can run: replace the `None` and run the cell.
#
# **Exercise 04.1 — the learning-rate schedule.** From the bundled record's settings (`tc`),
# write the learning rate of stage `s` (1, 2 or 3) at epoch `e` (counted from 0 within the
# stage) that started a share `p` (0..1) into its stage's time budget. `tc["lr_schedule"]`
# says which schedule ran: `"step"` halves the rate every `tc["halve_every"]` epochs;
# `"cosine"` goes from the stage's rate down to `tc["lr_floor"]` times it along half a cosine
# of `p`. The check compares your formula with the `lr` column of the bundled history
# (`epoch_progress` reads each epoch's `p` back from the history's times).
#
# <details><summary>Solution</summary>
#
# ```python
# def lr_at(s, e, p):
#     base = tc["lr"] * tc["stage_lr_scale"][s - 1]
#     if tc.get("lr_schedule", "step") == "cosine":
#         return base * (tc["lr_floor"] + (1 - tc["lr_floor"]) * (1 + np.cos(np.pi * min(p, 1.0))) / 2)
#     return base * 0.5 ** (e // tc["halve_every"])
# ```
# Stages 2 and 3 start lower (`stage_lr_scale`) in the first run because they fine-tune a
# network that stage 1 has already trained; the halving counts epochs within each stage. The
# cosine never falls below its floor, also when the last epoch runs past the budget (`p > 1`).
# </details>

# %%
def lr_at(s, e, p):
    return None  # your formula here


hist_lr = np.array([h["lr"] for h in bundled_history])
answer = [lr_at(int(h["stage"]), int(h["epoch"]) - 1, p)
          for h, p in zip(bundled_history, epoch_progress(bundled_history, tc))]
lesson.check_exercise("04.1", None if answer[0] is None else answer, hist_lr,
                      rtol=1e-2 if tc.get("lr_schedule", "step") == "cosine" else 1e-6, quiet=True)

# %% [markdown]
# **Exercise 04.2 — Eq. 4 by hand.** With numpy only, compute the pair error of the stage 3
# path's prediction `pred3 = list(predictions.values())[2]` against `gt`: the sum over
# $d_x$, $d_y$, $T$ of $\|p - g\|^2 / \|g\|^2$ (squared L2 norms over all pixels).
#
# <details><summary>Solution</summary>
#
# ```python
# answer = sum(np.sum((pred3[k] - gt[k]) ** 2) / np.sum(gt[k] ** 2) for k in ("dx", "dy", "transmission"))
# ```
# It matches the table's Eq. 4 column up to the tiny floor `pair_error` adds to each
# denominator (so that an all-zero truth gives a finite error).
# </details>

# %%
pred3 = list(predictions.values())[2]
answer = None  # your numpy expression here
lesson.check_exercise("04.2", answer, stage_table["Eq. 4"].iloc[2], rtol=1e-3, quiet=True)

# %% [markdown]
# **Exercise 04.3 — what does the zero guess score?** Without running any network, what is
# Eq. 4 for the guess $d_x = d_y = 0$, $T = 1$ on this pair? Compute it, and explain why it is
# close to 2 for every pair with some displacement.
#
# <details><summary>Solution</summary>
#
# ```python
# zero = {"dx": 0 * gt["dx"], "dy": 0 * gt["dy"], "transmission": np.ones_like(gt["transmission"])}
# answer = sum(pair_error_terms(zero, gt).values())
# ```
# Each displacement term is $\|0 - g\|^2 / \|g\|^2 = 1$; the transmission term
# $\|1 - T\|^2 / \|T\|^2$ is tiny because $T$ is close to 1. So "nothing learnt" scores 2.
# </details>

# %%
answer = None  # Eq. 4 of the zero guess
lesson.check_exercise("04.3", answer, sum(pair_error_terms(
    {"dx": 0 * gt["dx"], "dy": 0 * gt["dy"], "transmission": np.ones_like(gt["transmission"])}, gt).values()), rtol=1e-3,
    quiet=True)

# %% [markdown]
# **Exercise 04.4 — train it yourself (open-ended).** Set `QUICK = True` in the parameters cell,
# run the notebook, and compare the tiny network's stage table with the bundled one's. Then
# train the tiny preset for longer: `preset_config("tiny", workers=0, threads=1,
# stage_epochs=(6, 3, 3))`. Which stage's pair error moves first?
#
# <details><summary>What to expect</summary>
#
# The tiny network barely moves off the zero guess (about 2) in a few steps: its pair error
# falls slowly and mostly in stages 2-3, where level 2 can resolve displacements of a
# fraction of a coarse-level pixel. Learning needs many more steps than a notebook cell can
# afford, which is why the bundled weights exist.
# </details>

# %% [markdown]
# ## What we learned
#
# First the numbers of this run, from the cells above:

# %%
e1, e2, e3 = stage_table["Eq. 4"]
best = int(stage_table["Eq. 4"].idxmin())
print(f"Validation pair error of the model ({source}): {history[0]['val_pair_error']:.3f} after its first epoch, "
      f"{history[-1]['val_pair_error']:.4f} after {len(history)} epochs.")
print(f"On held-out pair {PAIR_INDEX}, Eq. 4 is {e1:.4f} along the stage 1 path, {e2:.4f} along stage 2's and "
      f"{e3:.4f} with the refiners: the stage {best} path is closest to the truth "
      f"({e1 / stage_table['Eq. 4'].min():.1f}x lower than stage 1's); displacement rmse "
      f"{stage_table['displacement rmse [px]'].iloc[0]:.3f} -> {stage_table['displacement rmse [px]'].iloc[2]:.3f} px.")

# %% [markdown]
#
# * The network is trained coarse to fine: the coarse levels first, then level 2 (started
#   from level 3's weights, the check in section 1), then the refiners.
# * A loss curve's jumps at stage boundaries are changes of yardstick; the validation pair
#   error of the final output (Eq. 4) is the measure to follow across stages.
# * Read along each stage's path (section 4, the table and the error maps), the final network
#   shows what each stage adds on the same held-out pair: the error maps and the Eq. 4 column
#   say which stage path is closest to the truth, and by how much.
# * This project's training departs from the seed's in learning rate, loss details, stage
#   lengths, data and network width (the box at the top; values printed in section 1).
#
# Next: notebook 05 puts the trained network to work on the seed's first experiment, a
# beryllium lens.

# %%
summary_file = lesson.finish()
