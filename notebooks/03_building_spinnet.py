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
# # 03 · Building SPINNet
#
# SPINNet (seed section 2.2, Supplement 1, Fig. S2) reads a reference speckle image $I_r$ and
# a sample image $I_s$ and returns the displacement $(d_x, d_y)$ and the transmission $T$ of
# the forward model (Eq. 1) $I_s = T\cdot I_r(y - d_y, x - d_x)$. It is a coarse-to-fine
# network in the family of PWC-Net: guess at 1/32 of the resolution, then correct the guess
# level by level. This notebook builds it one part at a time, each part a `spinnet_lite.model`
# module, fed with simulated speckle so that we know what it should do:
#
# 1. the **building blocks** (green and yellow blocks);
# 2. the **feature pyramid**: two extractors turn each image into features at levels 1..6;
# 3. the **prop-layer**: a warp that moves the reference features by the current displacement;
# 4. the **3-D cost volume**: correlations over $(2N+1)^2$ shifts, which peak at the
#    remaining shift;
# 5. the **estimators**: PhaseNet and TNet at every level, PhaseRefiner and TRefiner at the
#    end, with the shapes of their inputs and outputs in a real forward pass;
# 6. **parameter counts** of the seed-sized `full` network and of `lite`, the bundled one;
# 7. the **loss**, Eq. 4, on the output of the (untrained) network.
#
# Figures and a `summary.json` of the key numbers are saved to `OUTPUT_DIR`.

# %% tags=["parameters"]
QUICK = False  # True: small images and the tiny network (the tests run this)
SIZE = 256  # image size for the pyramid, warp and cost-volume examples, px
CONFIG = "lite"  # network for the forward pass: "tiny", "lite" or "full"
PAIR_SIZE = 128  # image size of the pair for the forward pass, px
SHIFT = (-1.7, 2.4)  # known (dy, dx) for the warp example, full-resolution px
CV_LEVEL = 3  # pyramid level of the cost-volume example
CV_SHIFT = (-2, 3)  # known (sy, sx) for the cost-volume example, px of level CV_LEVEL
SEARCH_RANGE = 4  # N of the cost-volume example (the full network's)
SEED = 0
OUTPUT_DIR = "../output/03"

# %%
if QUICK:  # every code path still runs, on less data
    SIZE, CONFIG = 128, "tiny"

# %%
# %matplotlib inline
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from spinnet_lite import Geometry, load_pretrained, plots, simulate_pair
from spinnet_lite.data import to_tensors
from spinnet_lite.model import SPINNet, cost_volume, get_config, inverse_warp, multilevel_loss, pair_error, \
    shift_of_channel
from spinnet_lite.model.blocks import green_block, yellow_block
from spinnet_lite.model.cost_volume import channel_of_shift
from spinnet_lite.simulate import reference_image
from spinnet_lite.simulate import warp as forward_warp

out = Path(OUTPUT_DIR)
out.mkdir(parents=True, exist_ok=True)
summary = {"quick": QUICK, "size": SIZE, "config": CONFIG, "pair_size": PAIR_SIZE, "seed": SEED}
torch.manual_seed(SEED)  # the untrained networks below start from the same weights every run


def save(fig, name):
    """Save a figure into OUTPUT_DIR (PNG) and keep it displayed inline."""
    fig.savefig(out / name, dpi=110, bbox_inches="tight")


def as_tensor(image):
    """(H, W) array -> (1, 1, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]


# %% [markdown]
# ## 1 · Building blocks
#
# Fig. S2 of the seed draws SPINNet with two kinds of boxes:
#
# * a **green block**: 3×3 convolution, stride 1, BatchNorm, LeakyReLU(0.1); it keeps the size;
# * a **yellow block**: the same with stride 2; it halves the size (one pyramid level down).
#
# The convolutions have no bias, since the BatchNorm after them removes any constant anyway.

# %%
print("green block:", green_block(16, 32))
print("yellow block:", yellow_block(16, 32))
x = torch.zeros(1, 16, 64, 64)
print(f"(1, 16, 64, 64) -> green {tuple(green_block(16, 32)(x).shape)}, yellow {tuple(yellow_block(16, 32)(x).shape)}")

# %% [markdown]
# ## 2 · The feature pyramid
#
# Each image gets its own extractor (`FeaturePyramid`, one for the reference and one for the
# sample, with separate weights). Level 1 is the image itself, divided by the mean of the
# reference; each further level is a yellow block and a green block, so level $l$ is
# $2^{l-1}$ times smaller than the input. The full network has 1, 16, 32, 64, 96, 128
# channels at levels 1..6; `lite` has half or less.
#
# Below, a speckle reference from the simulator (`reference_image`, the training set-up) goes
# through the reference extractor of a freshly built network. Its weights are random (this
# notebook builds, notebook 04 trains): the channels are random local filters of the speckle,
# but the sizes and the structure are those of the trained network.

# %%
geometry = Geometry.training()
reference = reference_image((SIZE, SIZE), geometry, np.random.default_rng(SEED), pitch=4)
reference = reference / reference.mean()  # the network's inputs are divided by the reference mean
net = SPINNet(CONFIG).eval()  # eval: BatchNorm uses its running statistics, as at inference
config = net.config
print(config)
with torch.no_grad():
    features = net.extractor_ref(as_tensor(reference))
for level, f in features.items():
    print(f"level {level}: {tuple(f.shape)}  ({SIZE // f.shape[-1]}x smaller than the input)")
summary["pyramid_shapes"] = {str(level): list(f.shape[1:]) for level, f in features.items()}

fig = plots.feature_pyramid(features, channels=3)
fig.suptitle(f"Feature pyramid of a {SIZE} x {SIZE} speckle reference ({config.name!r}, untrained): "
             "3 channels per level, shape C x h x w")
save(fig, "feature_pyramid.png")

# %% [markdown]
# ## 3 · The prop-layer: warping undoes a known shift
#
# At level $l$ SPINNet already has an estimate $d$ of the displacement from level $l+1$
# (upsampled). The prop-layer moves the reference features by it,
#
# $$ \tilde f_r(y, x) = f_r\!\left(y - d_y/2^{l-1},\; x - d_x/2^{l-1}\right), $$
#
# so that what is left between $\tilde f_r$ and the sample features $f_s$ is only the
# *residual* displacement, small enough for the cost volume's search range. (Displacements
# are kept in full-resolution pixels at every level, hence the division by $2^{l-1}$.)
# `spinnet_lite.model.warp` does it with bilinear `grid_sample`; `inverse_warp(sample, d)`
# $= $ `warp(sample, -d)` brings a sample image back to the reference frame.
#
# Test: make a sample image from the reference with the simulator's forward model
# (`simulate.warp`, its own interpolation) and a known sub-pixel shift, then warp it back with
# the network's `inverse_warp`.
# The residual $\mathrm{back} - I_r$ should be small, and the shift left in it should be
# about zero. We measure that shift by linearising, $\mathrm{back} - I_r \approx -\nabla I_r
# \cdot \delta$, and solving for $\delta$ by least squares over the interior.

# %%
def remaining_shift(image, reference, border):
    """(dy, dx) that best explains image - reference as -grad(reference) . delta (least squares)."""
    c = slice(border, -border)
    gy, gx = np.gradient(reference)
    G = np.stack([gy[c, c].ravel(), gx[c, c].ravel()], axis=1)
    r = (image - reference)[c, c].ravel()
    return -np.linalg.lstsq(G, r, rcond=None)[0]


def shift_and_back(shift):
    """The simulator's forward-model shift, then the network's inverse warp (bilinear)."""
    dy, dx = shift
    sample = forward_warp(reference, np.full(reference.shape, dx), np.full(reference.shape, dy))
    d = torch.tensor([dx, dy], dtype=torch.float32).view(1, 2, 1, 1).expand(1, 2, SIZE, SIZE)
    back = inverse_warp(as_tensor(sample), d)[0, 0].numpy()
    return sample, back


border = int(math.ceil(max(abs(s) for s in SHIFT))) + 4  # leave out the repeated-border strip
inner = slice(border, -border)
sample_shifted, back = shift_and_back(SHIFT)
rms = lambda a: float(np.sqrt(np.mean(a[inner, inner] ** 2)))  # noqa: E731
contrast = float(reference[inner, inner].std())
before, after = rms(sample_shifted - reference) / contrast, rms(back - reference) / contrast
left = remaining_shift(back, reference, border)
warp_error = float(np.hypot(*left))
integer_shift = tuple(float(round(s)) for s in SHIFT)
_, back_integer = shift_and_back(integer_shift)
integer_error = rms(back_integer - reference) / contrast
print(f"known shift (dy, dx) = {SHIFT} px")
print(f"rms of I_s - I_r   : {before:.3f} x the speckle contrast (std)")
print(f"rms of back - I_r  : {after:.3f} x the speckle contrast")
print(f"shift left after the warp: (dy, dx) = ({left[0]:+.4f}, {left[1]:+.4f}) px -> |error| = {warp_error:.4f} px")
print(f"integer shift {integer_shift}: rms of back - I_r = {integer_error:.1e} x the contrast (exact up to rounding)")
summary.update(warp_shift=list(SHIFT), warp_error_px=warp_error, warp_remaining_shift=[float(v) for v in left],
               warp_residual_before=before, warp_residual_after=after, warp_residual_integer=integer_error)

# %% [markdown]
# For a whole-pixel shift the warp is exact. For the sub-pixel part, interpolation blurs the
# finest speckle a little: the residual is not zero but a fine-grained pattern along the
# speckle edges (right panel, colour scale magnified), and the shift left in it is a few
# hundredths of a pixel at most, the disagreement of the two interpolations (the simulator's
# and the network's bilinear one). That is what the prop-layer needs: the estimate is
# undone, and the network's next parts measure what is left.

# %%
zoom = slice(border, border + min(64, SIZE - 2 * border))
lim = float(np.abs(sample_shifted - reference)[zoom, zoom].max())
fig, axes = plt.subplots(1, 5, figsize=(21, 4), layout="constrained")
panels = [(reference, "reference $I_r$", "gray", None),
          (sample_shifted, f"$I_s$: shifted by (dy, dx) = {SHIFT} px", "gray", None),
          (sample_shifted - reference, f"$I_s - I_r$ (rms {before:.2f} x contrast)", "RdBu_r", lim),
          (back - reference, f"inverse_warp$(I_s, d) - I_r$ (rms {after:.2f})", "RdBu_r", lim),
          (back - reference, "the same, colour scale x 5", "RdBu_r", lim / 5)]
for ax, (img, title, cmap, vlim) in zip(axes, panels):
    im = ax.imshow(img[zoom, zoom], cmap=cmap, vmin=-vlim if vlim else None, vmax=vlim, interpolation="nearest")
    ax.set(title=title, xlabel="x [px]", ylabel="y [px]")
    fig.colorbar(im, ax=ax, shrink=0.85)
fig.suptitle(f"The prop-layer's warp undoes a known shift (64 x 64 px crop); shift left: {warp_error:.3f} px")
save(fig, "warp_residual.png")

# %% [markdown]
# ## 4 · The 3-D cost volume peaks at the shift
#
# After the warp, the **cost volume** compares the sample features with the warped
# reference features at every shift $(s_y, s_x)$ up to $N$ pixels of the level:
#
# $$ c_k(y, x) = \frac{1}{C}\sum_{c=1}^{C} f_s(c, y, x)\; \tilde f_r(c,\, y - s_y,\, x - s_x),
#    \qquad k = (s_y + N)(2N+1) + (s_x + N), $$
#
# a 3-D array of $(2N+1)^2$ channels × height × width (the "3-D cost volume"; $N = 4$ in the
# full network, 3 in `lite`). If $f_s(x) = f_r(x - t)$, the sum is largest at $s = t$: the
# channel of the peak *is* the residual displacement, in pixels of the level.
# `shift_of_channel(k, N)` turns a channel back into $(s_y, s_x)$.
#
# Test: shift the reference by a known whole number of level-`CV_LEVEL` pixels
# (`CV_SHIFT` × $2^{l-1}$ full-resolution pixels, where the forward model is exact), take
# the features of both images at that level and build the cost volume. To isolate the cost
# volume, both images go through the *same* extractor here. With the untrained one (left),
# the surface averaged over the image peaks at the shift (Cauchy-Schwarz: the feature map
# matches itself best), but at a single pixel random features are not distinctive and the
# peak can sit elsewhere. Making the per-pixel peak reliable is what training does to the
# extractors: the right-hand panels use the reference extractor of the bundled, trained
# `lite` network, and the printed share of pixels whose own surface peaks at the known shift
# compares the two.
#
# In the network itself the sample goes through its own extractor. Nothing forces the two
# extractors to line up pixel for pixel: PhaseNet reads the whole surface, so a constant
# offset of the peak would serve as well as none. The last line printed shows where the
# peak of the bundled network's two extractors sits.

# %%
scale = 2 ** (CV_LEVEL - 1)
expected = (int(CV_SHIFT[0]), int(CV_SHIFT[1]))
full_shift = (expected[0] * scale, expected[1] * scale)
cv_sample = forward_warp(reference, np.full(reference.shape, float(full_shift[1])),
                         np.full(reference.shape, float(full_shift[0])))
n = SEARCH_RANGE
pretrained = load_pretrained()
with torch.no_grad():
    f_ref = net.extractor_ref(as_tensor(reference))[CV_LEVEL]
    f_sam = net.extractor_ref(as_tensor(cv_sample))[CV_LEVEL]
    cost = cost_volume(f_sam, f_ref, n)[0]  # ((2N+1)^2, h, w)
    f_ref_trained = pretrained.extractor_ref(as_tensor(reference))[CV_LEVEL]
    cost_trained = cost_volume(pretrained.extractor_ref(as_tensor(cv_sample))[CV_LEVEL], f_ref_trained, n)[0]
    cost_two = cost_volume(pretrained.extractor_sample(as_tensor(cv_sample))[CV_LEVEL], f_ref_trained, n)[0]
h, w = cost.shape[-2:]
m = n + max(abs(s) for s in expected)  # leave out the strip where shifted features meet the zero padding
inside = (slice(None), slice(m, h - m), slice(m, w - m))
py, px = h // 2, w // 2  # the pixel whose surface we plot
k_true = channel_of_shift(*expected, n)
results = {}
for name, c in (("untrained", cost), ("trained", cost_trained)):
    mean_surface = c[inside].mean(dim=(1, 2))
    per_pixel = c[inside].argmax(dim=0)
    results[name] = dict(mean=mean_surface, pixel=c[:, py, px],
                         peak=shift_of_channel(int(mean_surface.argmax()), n),
                         pixel_peak=shift_of_channel(int(c[:, py, px].argmax()), n),
                         fraction=float((per_pixel == k_true).float().mean()))
print(f"cost volume at level {CV_LEVEL}: {tuple(cost.shape)} = ((2N+1)^2 = {(2 * n + 1) ** 2}, h, w), N = {n}")
print(f"known shift (sy, sx) = {expected} level-{CV_LEVEL} px = {full_shift} full-resolution px (channel {k_true})")
for name, r in results.items():
    print(f"{name:>9}: argmax of the mean surface -> channel {channel_of_shift(*r['peak'], n)} -> "
          f"(sy, sx) = {r['peak']}; at pixel ({py}, {px}): {r['pixel_peak']}; "
          f"pixels whose own peak is the known shift: {100 * r['fraction']:.0f} %")
peak_two = shift_of_channel(int(cost_two[inside].mean(dim=(1, 2)).argmax()), n)
print(f"bundled network, sample through its own extractor: mean surface peaks at {peak_two} "
      f"(offset {(peak_two[0] - expected[0], peak_two[1] - expected[1])} from the known shift)")
summary.update(cost_volume_level=CV_LEVEL, cost_volume_search_range=n, expected_peak=list(expected),
               cost_volume_peak=list(results["untrained"]["peak"]),
               cost_volume_peak_pixel=list(results["untrained"]["pixel_peak"]),
               cost_volume_peak_fraction=results["untrained"]["fraction"],
               cost_volume_peak_trained=list(results["trained"]["peak"]),
               cost_volume_peak_fraction_trained=results["trained"]["fraction"],
               cost_volume_peak_two_extractors=list(peak_two))

fig = plots.cost_surfaces({"untrained, mean over the image": results["untrained"]["mean"],
                           f"untrained, pixel ({py}, {px})": results["untrained"]["pixel"],
                           "trained (bundled), mean": results["trained"]["mean"],
                           f"trained (bundled), pixel ({py}, {px})": results["trained"]["pixel"]},
                          n, expected=expected)
fig.suptitle(f"Cost volume at level {CV_LEVEL}: the (2N+1) x (2N+1) = {2 * n + 1} x {2 * n + 1} surface over "
             f"the shift; known shift {expected} (red circle), argmax (white cross)")
save(fig, "cost_volume.png")

# %% [markdown]
# ## 5 · The estimators, and one forward pass
#
# At each level $l = 6, 5, \dots, 2$ (stage 1 of training stops at 3):
#
# * **PhaseNet** reads the activated cost volume, the current displacement (divided by 10 so
#   that it is of order 1) and the last features of the coarser level's PhaseNet (the
#   "context"), runs them through five green blocks (128-128-96-64-32 channels in the full
#   network) and a 3×3 convolution to **2 channels**: the residual $(d_x, d_y)$ in pixels of
#   the level, added as $d \leftarrow d + 2^{l-1}\,\Delta d$;
# * **TNet** reads the raw images average-pooled to the level, the sample inverse-warped to
#   the reference frame with the new $d$ (where $I_s / I_r \approx T$), the current $T$ and
#   $d$: **6 channels** in, the same body, **1 channel** out, added to $T$;
# * at the last level, **PhaseRefiner** and **TRefiner** (the same body, then a 1×1
#   convolution) polish $d$ and $T$ once more; the result is upsampled bilinearly to the
#   input size.
#
# The coarsest level starts from $d = 0$, $T = 1$. Every PhaseNet has the same input width at
# every level, so level 3's weights can initialise level 2 (stage 2 of training).
#
# Forward hooks record what each part receives and returns during one pass of the network
# on a simulated pair.

# %%
pair = simulate_pair(PAIR_SIZE, pitch=4, seed=SEED)
tensors = {k: v[None] for k, v in to_tensors({k: pair[k].values for k in pair.data_vars}).items()}
calls = []


def record(name):
    def hook(module, inputs, output):
        outs = output if isinstance(output, tuple) else (output,)
        calls.append((name, [tuple(t.shape) for t in inputs if torch.is_tensor(t)], [tuple(t.shape) for t in outs]))
    return hook


parts = [("cost volume", net.cost_volume)]
parts += [(f"PhaseNet {l} body", m.body) for l, m in net.phase_nets.items()]
parts += [(f"PhaseNet {l}", m) for l, m in net.phase_nets.items()]
parts += [(f"TNet {l} body", m.body) for l, m in net.t_nets.items()]
parts += [(f"TNet {l}", m) for l, m in net.t_nets.items()]
if config.refiners:
    parts += [("PhaseRefiner body", net.phase_refiner.body), ("PhaseRefiner", net.phase_refiner),
              ("TRefiner body", net.t_refiner.body), ("TRefiner", net.t_refiner)]
handles = [module.register_forward_hook(record(name)) for name, module in parts]
try:
    with torch.no_grad():
        output = net(tensors["reference"], tensors["sample"])
finally:
    for handle in handles:
        handle.remove()

cost_calls = iter(c for c in calls if c[0] == "cost volume")
by_name = {name: (ins, outs) for name, ins, outs in calls if name != "cost volume"}
level_shapes = {}
print(f"forward pass of {config.name!r} on a {PAIR_SIZE} x {PAIR_SIZE} pair (batch 1), shapes (C, h, w):")
print(f"{'level':>5} {'features':>14} {'cost volume':>14} {'PhaseNet in':>14} {'-> out':>11} {'TNet in':>12} {'-> out':>11}")
with torch.no_grad():
    pair_features = net.extractor_ref(tensors["reference"])
for level in config.levels:
    _, _, cost_out = next(cost_calls)
    row = {"features": list(pair_features[level].shape[1:]), "cost_volume": list(cost_out[0][1:]),
           "phase_net_in": list(by_name[f"PhaseNet {level} body"][0][0][1:]),
           "phase_net_out": list(by_name[f"PhaseNet {level}"][1][0][1:]),
           "t_net_in": list(by_name[f"TNet {level} body"][0][0][1:]),
           "t_net_out": list(by_name[f"TNet {level}"][1][0][1:])}
    level_shapes[str(level)] = row
    print(f"{level:>5} {str(tuple(row['features'])):>14} {str(tuple(row['cost_volume'])):>14} "
          f"{str(tuple(row['phase_net_in'])):>14} {str(tuple(row['phase_net_out'])):>11} "
          f"{str(tuple(row['t_net_in'])):>12} {str(tuple(row['t_net_out'])):>11}")
if config.refiners:
    level_shapes["refiners"] = {
        "phase_refiner_in": list(by_name["PhaseRefiner body"][0][0][1:]),
        "phase_refiner_out": list(by_name["PhaseRefiner"][1][0][1:]),
        "t_refiner_in": list(by_name["TRefiner body"][0][0][1:]),
        "t_refiner_out": list(by_name["TRefiner"][1][0][1:])}
    r = level_shapes["refiners"]
    print(f"refiners at level {config.last_level}: PhaseRefiner {tuple(r['phase_refiner_in'])} -> "
          f"{tuple(r['phase_refiner_out'])}, TRefiner {tuple(r['t_refiner_in'])} -> {tuple(r['t_refiner_out'])}")
print("output:", {"levels": [(l, tuple(d.shape), tuple(t.shape)) for l, d, t in output["levels"]],
                  "displacement": tuple(output["displacement"].shape),
                  "transmission": tuple(output["transmission"].shape)})
summary.update(level_shapes=level_shapes, search_range=config.search_range,
               output_displacement_shape=list(output["displacement"].shape),
               output_transmission_shape=list(output["transmission"].shape))

# %% [markdown]
# Reading the table: the cost volume has $(2N+1)^2$ channels at every level; PhaseNet's input
# is those channels + 2 (the displacement) + the context width, its output 2 channels; TNet
# takes 6 channels and returns 1. Only the spatial size changes from level to level.
#
# ## 6 · Parameter counts: `full` and `lite`
#
# `SPINNet.parameter_table()` counts the parameters of each part. The seed's network (`full`)
# has about 5.7 M; `lite` keeps every part (two extractors, a PhaseNet and a TNet at each of
# the five levels, both refiners) with narrower channels, so it trains on a laptop CPU. The
# heads of the same kind have the same size at every level, since their input widths do not
# depend on the level.

# %%
tables = {name: SPINNet(name).parameter_table() for name in ("full", "lite", "tiny")}
groups = {"extractors (2)": ("extractor_",), "PhaseNets (5 levels)": ("phase_net_",),
          "TNets (5 levels)": ("t_net_",), "refiners (2)": ("phase_refiner", "t_refiner")}
grouped = {name: {g: sum(v for k, v in t.items() if k.startswith(prefixes)) for g, prefixes in groups.items()}
           for name, t in tables.items()}
print(f"{'part':>18}" + "".join(f"{name:>12}" for name in tables))
for part in tables["full"]:
    print(f"{part:>18}" + "".join(f"{t[part]:>12,}" for t in tables.values()))
for name in tables:
    assert sum(grouped[name].values()) == tables[name]["total"]
params_full, params_lite = tables["full"]["total"], tables["lite"]["total"]
assert 4e6 <= params_full <= 7e6, f"the full network should have 4-7 M parameters, has {params_full:,}"
print(f"full: {params_full / 1e6:.2f} M, lite: {params_lite / 1e6:.2f} M "
      f"({params_full / params_lite:.1f}x fewer), tiny: {tables['tiny']['total']:,}")
summary.update(params_full=params_full, params_lite=params_lite, params_tiny=tables["tiny"]["total"],
               parameter_tables=tables, parameters_by_part=grouped)

fig, axes = plt.subplots(1, 2, figsize=(14, 4.2), layout="constrained", gridspec_kw={"width_ratios": [3, 1]})
xs = np.arange(len(groups))
for i, name in enumerate(("full", "lite")):
    bars = axes[0].bar(xs + (i - 0.5) * 0.38, [grouped[name][g] / 1e6 for g in groups], 0.38, label=name)
    axes[0].bar_label(bars, fmt="%.2f", fontsize=8)
axes[0].set_xticks(xs, list(groups))
axes[0].set(ylabel="parameters [M]", title="parameters per part")
axes[0].legend()
bars = axes[1].bar(["full", "lite"], [params_full / 1e6, params_lite / 1e6], color=["C0", "C1"])
axes[1].bar_label(bars, fmt="%.2f M")
axes[1].set(ylabel="parameters [M]", title="total")
save(fig, "parameter_counts.png")

# %% [markdown]
# ## 7 · The loss (Eq. 4) on an untrained network
#
# Training compares the prediction with the ground truth by the seed's Eq. 4, the sum of
# three relative squared errors (squared L2 norms over the image):
#
# $$ \mathcal L = \frac{\lVert d_x - d_x^{gt}\rVert^2}{\lVert d_x^{gt}\rVert^2}
#   + \frac{\lVert d_y - d_y^{gt}\rVert^2}{\lVert d_y^{gt}\rVert^2}
#   + \frac{\lVert T - T^{gt}\rVert^2}{\lVert T^{gt}\rVert^2} . $$
#
# `pair_error` computes it per pair; `multilevel_loss` adds it up over the levels (the ground
# truth average-pooled to each) and the final output, as training does. The untrained network
# predicts almost $d = 0$, $T = 1$ (the last convolution of each head starts near zero), which
# scores about 1 per displacement term: a loss near 2 is "nothing learned yet", and the
# evaluations call a pair error below 0.0025 good.

# %%
gt = (tensors["displacement"], tensors["transmission"])
untrained_error = float(pair_error((output["displacement"], output["transmission"]), gt)[0])
zero_error = float(pair_error((torch.zeros_like(gt[0]), torch.ones_like(gt[1])), gt)[0])
_, terms = multilevel_loss(output, *gt)
print(f"pair error (Eq. 4) of the untrained {config.name!r} network: {untrained_error:.3f}; "
      f"of the guess d = 0, T = 1: {zero_error:.3f}")
print("multi-level loss terms:", {k: round(v, 3) for k, v in terms.items()})
summary.update(untrained_pair_error=untrained_error, zero_guess_pair_error=zero_error,
               multilevel_terms=terms)

# %% [markdown]
# ## Summary
#
# The numbers above, saved for the tests and the next notebooks. Notebook 04 trains this
# network in three stages.

# %%
with open(out / "summary.json", "w") as fh:
    json.dump(summary, fh, indent=1)
print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, dict)}, indent=1))
print("saved:", sorted(p.name for p in out.iterdir()))
