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
# # 07 · Evaluation on held-out pairs
#
# How good is the network, and against what? The seed evaluates SPINNet on simulated pairs
# it never saw in training (Fig. 5: a histogram of the per-pair error in three regimes), on a
# mask finer than any in training (Fig. S4), and on speed against the classical speckle
# tracking (XST). This notebook does the same with the project's held-out set:
#
# 1. the held-out set (`spinnet_lite.evalset`): fixed seeds that training never uses;
# 2. both methods over it with `benchmarks/evaluate.py`'s `evaluate`, the error histogram
#    with the seed's regimes (< 0.25 %, 0.25–1 %, > 1 %) and an example from each regime;
# 3. the fine-mask case: a mask pitch finer than training's;
# 4. the speed of SPINNet and XST on 512 × 512 pairs, measured in one run.
#
# The pair error is the seed's Eq. 4,
#
# $$ E = \frac{\|d_x - d_x^{gt}\|^2}{\|d_x^{gt}\|^2} + \frac{\|d_y - d_y^{gt}\|^2}{\|d_y^{gt}\|^2}
#      + \frac{\|T - T^{gt}\|^2}{\|T^{gt}\|^2}, $$
#
# squared L2 norms over the image (8 px cropped at the border), `spinnet_lite.metrics.pair_error`.
# Figures and `summary.json` go to `OUTPUT_DIR`.

# %% tags=["parameters"]
QUICK = False  # True: a few pairs, small speed test (the tests run this)
N_PAIRS = 24  # held-out pairs (the kinds repeat in a 12-pair cycle)
BORDER = 8  # px cropped on every side before the metrics
PITCHES = [2, 3, 4, 6, 8]  # mask pitches of the generalisation sweep, px (training: 3-6)
SWEEP_SIZE = 256  # image size of the sweep and of the fine-pitch example (the held-out size)
SPEED_SIZE = 512  # image size of the speed test
SPEED_REPEATS = 3
OUTPUT_DIR = "../output/07"

# %%
if QUICK:  # every code path still runs, on less data
    N_PAIRS, PITCHES, SWEEP_SIZE, SPEED_SIZE, SPEED_REPEATS = 2, [2, 4], 128, 128, 1

# %%
# %matplotlib inline
import importlib.util
import json
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from spinnet_lite import load_pretrained, reconstruct, simulate_pair
from spinnet_lite.data import PairSpec
from spinnet_lite.evalset import EVAL_SEED_BASE, FINE_PITCH, TRAINING_PITCH, heldout_specs, simulate_spec
from spinnet_lite.metrics import REGIME_THRESHOLDS, REGIMES, evaluate_pair
from spinnet_lite.plots import prediction_grid

out = Path(OUTPUT_DIR)
out.mkdir(parents=True, exist_ok=True)


def load_benchmark(name):
    """Import benchmarks/<name>.py (a script folder, not a package) as a module."""
    path = Path("..") / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


evaluate_module = load_benchmark("evaluate")
speed_module = load_benchmark("speed")
model = load_pretrained()
summary = {"quick": QUICK, "n_pairs": N_PAIRS, "border": BORDER, "model_config": model.config.name,
           "model_parameters": model.num_parameters()}
print(f"SPINNet config {model.config.name!r}, {model.num_parameters():,} parameters")


def save(fig, name):
    """Save a figure into OUTPUT_DIR (PNG) and keep it displayed inline."""
    fig.savefig(out / name, dpi=100, bbox_inches="tight")


# %% [markdown]
# ## 1 · The held-out set
#
# Each pair is fixed by its spec: seed (from `EVAL_SEED_BASE` = 10⁹ up; training and
# validation seeds stay below), size, phantom, mask pitch and photon count. The mix: clean
# random phantoms at the training pitch, noisy ones, fine-pitch ones and the Be lens.

# %%
specs = heldout_specs(N_PAIRS)
display(pd.DataFrame(specs).set_index("index"))

# %% [markdown]
# ## 2 · Both methods over the set
#
# `evaluate(["spinnet", "xst"], n=N_PAIRS, model=model)` simulates each pair once, runs both
# methods through `reconstruct` and computes `metrics.evaluate_pair` (pair error and its
# three terms, the regime, the displacement RMSE in px, the transmission RMSE, the
# background noise), plus the time of each call.

# %%
t0 = time.perf_counter()
rows, eval_summary = evaluate_module.evaluate(["spinnet", "xst"], n=N_PAIRS, border=BORDER, model=model)
eval_time = time.perf_counter() - t0
table = pd.DataFrame(rows)
columns = ["method", "index", "kind", "pitch", "photons", "pair_error", "regime", "displacement_rmse",
           "transmission_error", "background_noise", "time_s"]
display(table[columns].round(5))
print("\n".join(evaluate_module.summary_lines(eval_summary, BORDER)))
print(f"evaluation: {eval_time:.0f} s")
summary["evaluation"] = evaluate_module._json_safe(eval_summary)
summary["pairs"] = json.loads(table[columns].to_json(orient="records"))  # NaN -> null, numpy -> plain

# %% [markdown]
# ### The error histogram (seed Fig. 5)
#
# The seed reports most held-out pairs of its full network below 0.25 %, a few between 0.25
# and 1 %, and a handful above. The same histogram for this lite network and for XST, on a
# logarithmic axis, the regime boundaries dashed:

# %%
fig, axes = plt.subplots(1, 2, figsize=(14, 4.5), layout="constrained")
errors = {m: table.loc[table.method == m, "pair_error"].to_numpy() for m in ("spinnet", "xst")}
finite = np.concatenate([e[np.isfinite(e)] for e in errors.values()])
lo, hi = max(finite.min() / 2, 1e-5), max(finite.max() * 2, 0.1)
bins = np.logspace(math.log10(lo), math.log10(hi), 25)
for method, e in errors.items():
    axes[0].hist(np.clip(e, lo, hi), bins=bins, alpha=0.6, label=f"{method} (median {np.median(e):.2%})")
for x in REGIME_THRESHOLDS:
    axes[0].axvline(x, color="k", ls="--", lw=1)
axes[0].set(xscale="log", xlabel="pair error (Eq. 4)", ylabel="pairs", title=f"{N_PAIRS} held-out pairs")
axes[0].legend()
counts = pd.DataFrame({m: [int((table[(table.method == m)].regime == r).sum()) for r in REGIMES]
                       for m in ("spinnet", "xst")}, index=REGIMES)
counts.plot.bar(ax=axes[1], rot=0)
axes[1].set(xlabel="regime", ylabel="pairs", title="pairs per regime")
save(fig, "error_histogram.png")
display(counts)
summary["regime_counts"] = {m: counts[m].to_dict() for m in counts}

# %% [markdown]
# ### An example from each regime
#
# For each regime, the pair whose SPINNet error is the regime's median (XST's if SPINNet has
# none there), re-simulated from its spec and reconstructed again: ground truth on top, the
# two methods below (`spinnet_lite.plots.prediction_grid`).

# %%
examples = {}
for regime in REGIMES:
    for method in ("spinnet", "xst"):
        sel = table[(table.method == method) & (table.regime == regime)].sort_values("pair_error")
        if len(sel):
            examples[regime] = (method, int(sel.iloc[len(sel) // 2]["index"]))
            break
print({r: f"pair {i} ({m})" for r, (m, i) in examples.items()},
      "| no pair in:", [r for r in REGIMES if r not in examples] or "-")
summary["examples"] = {r: {"method": m, "index": i} for r, (m, i) in examples.items()}
for regime, (method, index) in examples.items():
    pair = simulate_spec(specs[index])
    predictions = {}
    for m in ("spinnet", "xst"):
        result = reconstruct(pair.reference, pair.sample, method=m, model=model if m == "spinnet" else None)
        e = evaluate_pair(result, pair, border=BORDER)["pair_error"]
        predictions[f"{m}: {e:.2%}"] = result
    fig = prediction_grid(pair, predictions)
    fig.suptitle(f"regime {regime}: held-out pair {index} ({specs[index]['kind']}, pitch {specs[index]['pitch']} px)")
    safe = regime.replace("<", "lt").replace(">", "gt").replace("%", "pct").replace(".", "p")
    save(fig, f"regime_example_{safe}.png")

# %% [markdown]
# ## 3 · A finer mask than in training (seed Fig. S4)
#
# The network was trained with mask pitches of 3–6 px (`spinnet_lite.data.PairSpec().pitches`;
# held-out clean pairs use 4 px). A 2 px mask makes finer speckle: more detail per pixel for the tracking, but a
# pattern the network has never seen. The held-out set holds such pairs (`"fine-pitch"`);
# below, the first of them (at `SWEEP_SIZE`: the held-out 256 px in full mode), and a sweep
# over pitches on one phantom (the same seed, so only the mask changes).

# %%
fine_spec = {**next(s for s in heldout_specs(12) if s["kind"] == "fine-pitch"), "size": SWEEP_SIZE}
fine = simulate_spec(fine_spec)
coarse = simulate_pair(size=fine_spec["size"], pitch=TRAINING_PITCH, seed=fine_spec["seed"])
fine_results = {m: reconstruct(fine.reference, fine.sample, method=m, model=model if m == "spinnet" else None)
                for m in ("spinnet", "xst")}
fine_errors = {m: evaluate_pair(r, fine, border=BORDER) for m, r in fine_results.items()}
for m, e in fine_errors.items():
    print(f"pitch {FINE_PITCH} px, {m:8s}: pair error {e['pair_error']:.3%}, displacement rmse "
          f"{e['displacement_rmse']:.4f} px")

sweep = []
for pitch in PITCHES:
    pair = simulate_pair(size=SWEEP_SIZE, pitch=pitch, seed=EVAL_SEED_BASE + 10_000)
    for m in ("spinnet", "xst"):
        r = reconstruct(pair.reference, pair.sample, method=m, model=model if m == "spinnet" else None)
        e = evaluate_pair(r, pair, border=BORDER)
        sweep.append({"pitch": pitch, "method": m, "pair_error": e["pair_error"],
                      "displacement_rmse": e["displacement_rmse"]})
sweep = pd.DataFrame(sweep)
display(sweep.pivot(index="pitch", columns="method", values=["pair_error", "displacement_rmse"]).round(4))
summary["fine_pitch"] = {"pitch": FINE_PITCH, "index": fine_spec["index"],
                         **{m: {"pair_error": e["pair_error"], "displacement_rmse": e["displacement_rmse"]}
                            for m, e in fine_errors.items()}}
summary["pitch_sweep"] = sweep.to_dict(orient="records")

# %%
fig = plt.figure(figsize=(18, 8), layout="constrained")
grid = fig.add_gridspec(2, 5)
crop = slice(0, 48)
for col, (img, title) in enumerate([(coarse.reference.values[crop, crop], f"reference, pitch {TRAINING_PITCH} px"),
                                    (fine.reference.values[crop, crop], f"reference, pitch {FINE_PITCH} px")]):
    ax = fig.add_subplot(grid[0, col])
    ax.imshow(img, cmap="gray")
    ax.set(title=title + " (48 px crop)", xticks=[], yticks=[])
lim = float(np.abs(fine.dx).max())
panels = [(fine.dx, "true $d_x$"),
          (fine_results["spinnet"].dx, f"SPINNet $d_x$: {fine_errors['spinnet']['pair_error']:.2%}"),
          (fine_results["xst"].dx, f"XST $d_x$: {fine_errors['xst']['pair_error']:.2%}")]
for col, (img, title) in enumerate(panels):
    ax = fig.add_subplot(grid[1, col])
    im = ax.imshow(np.asarray(img), cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set(title=f"pitch {FINE_PITCH} px: {title}", xticks=[], yticks=[])
fig.colorbar(im, ax=ax, shrink=0.8, label="px")
ax = fig.add_subplot(grid[:, 3:])
for m, marker in (("spinnet", "o-"), ("xst", "s--")):
    s = sweep[sweep.method == m]
    ax.plot(s.pitch, s.pair_error, marker, label=m)
ax.axvspan(min(PairSpec().pitches), max(PairSpec().pitches), color="0.9", label="training pitches")
for x in REGIME_THRESHOLDS:
    ax.axhline(x, color="k", ls=":", lw=1)
ax.set(yscale="log", xlabel="mask pitch [px]", ylabel="pair error", title=f"pitch sweep, {SWEEP_SIZE} px, one phantom")
ax.legend()
save(fig, "fine_mask.png")

# %% [markdown]
# ## 4 · Speed
#
# `benchmarks/speed.py`'s `measure`: one simulated pair of `SPEED_SIZE` px, SPINNet and XST
# (7 × 7 window, ±6 px search) each timed after a warm-up, in one process, so the ratio
# compares like with like. The seed's 100× is its full network on a GPU against its own XST;
# here both run on this machine's CPU.

# %%
speed = speed_module.measure(size=SPEED_SIZE, repeats=SPEED_REPEATS, model=model)
speed_table = pd.DataFrame({"median s": [speed["spinnet_s"], speed["xst_s"]],
                            "best s": [speed["spinnet_best_s"], speed["xst_best_s"]],
                            "Mpx/s": [SPEED_SIZE**2 / 1e6 / speed["spinnet_s"], SPEED_SIZE**2 / 1e6 / speed["xst_s"]]},
                           index=["SPINNet", "XST"])
display(speed_table.round(3))
print(f"{SPEED_SIZE} x {SPEED_SIZE}, {speed['threads']} torch threads: XST / SPINNet = {speed['speedup']:.1f}x")
summary["speed"] = speed

fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
ax.barh(["SPINNet", "XST"], [speed["spinnet_s"], speed["xst_s"]], color=["C0", "C1"])
ax.set(xlabel="seconds per pair (median)",
       title=f"{SPEED_SIZE} x {SPEED_SIZE} px on {speed['threads']} CPU threads: {speed['speedup']:.1f}x")
save(fig, "speed.png")

# %%
(out / "summary.json").write_text(json.dumps(evaluate_module._json_safe(summary), indent=1, default=str))
print(json.dumps({k: summary[k] for k in ("regime_counts", "fine_pitch", "speed")}, indent=1, default=str))
