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
# # 03 · Building SPINNet
#
# SPINNet (seed section 2.2, Supplement 1, Fig. S2) reads a reference speckle image $I_r$ and
# a sample image $I_s$ and returns the displacement $(d_x, d_y)$ and the transmission $T$ of
# the forward model (Eq. 1) $I_s = T\cdot I_r(y - d_y, x - d_x)$. It is a coarse-to-fine
# network in the family of PWC-Net: guess at a coarse resolution, then correct the guess level
# by level. This notebook builds it one part at a time, each part a `spinnet_lite.model`
# module, fed with simulated speckle so that we know what it should do.
#
# **You will learn to**
# * name the parts: blocks, feature pyramids, the prop-layer (warp), the cost volume, the
#   estimators, the refiners;
# * check each part against a case with a known answer (a known shift);
# * follow the shapes through one forward pass and count the parameters;
# * compute the seed's loss, Eq. 4, and read what its value means.
#
# **Prerequisites:** notebooks 00-02; PyTorch tensors and `nn.Module` at the level of "a
# convolution maps `(B, C, H, W)` to `(B, C', H', W')`".
#
# **Run time:** under a minute on a laptop CPU in the default mode (measured numbers in
# `docs/workshop.md`; the last cell prints this run's).
#
# > **Seed vs this project.**
# > * As in the seed: green and yellow blocks; two separate feature extractors; the `full`
# >   preset's pyramid (1, 16, 32, 64, 96, 128 channels, levels 1..6) and heads
# >   (128-128-96-64-32); the prop-layer warp; the 3-D cost volume over $(2N+1)^2$ shifts;
# >   PhaseNet (2 channels out), TNet (1 channel out) on the downsampled images and the
# >   sample warped back; PhaseRefiner and TRefiner with a final 1×1 convolution; the loss
# >   Eq. 4; staged training (seed section 2.4 and Supplement 3; notebook 04).
# > * This project's choices, not the seed's design:
# >   - **context features**: each PhaseNet also reads the last features of the coarser
# >     level's PhaseNet;
# >   - **residual outputs**: each level outputs a correction added to the upsampled estimate,
# >     and PhaseNet reads the current displacement divided by 10;
# >   - **zero initial maps**: the coarsest level starts from $d = 0$, $T = 1$ and zero context;
# >   - **TNet inputs**: besides the images and the sample warped back, the current $T$ and $d$
# >     (6 channels);
# >   - **per-level loss weights** (adapted from PWC-Net, `model/loss.py`);
# >   - **input normalisation** (`lite`): inside the network each image is divided by its own
# >     local mean and local contrast (a Gaussian window, section 2), where the seed divides
# >     both by the reference's mean;
# >   - **the lite preset**: narrower channels, $N = 3$, and the pyramid starts at level 4
# >     instead of 6 (section 5 shows why the reach is still enough);
# >   - **an image warp at level 2** (`lite`): the prop-layer of the finest level warps the
# >     reference image at full resolution and takes its level-2 features, instead of warping
# >     the level-2 features (section 4 shows why);
# >   - **an iterated finest level** (`config.finest_iterations`; the bundled weights' count is
# >     printed in section 6): level 2 may run more than once with shared weights, each pass on
# >     the reference re-warped by the estimate so far (section 6).
# >   - **a Lucas-Kanade step after the network** (`spinnet_lite/lucas_kanade.py`, on by
# >     default in `reconstruct`): two classical steps of linearised speckle tracking, each
# >     fitting $I_s \approx a\,(I_r^{w} + \nabla_d I_r^{w} \cdot e)$ (the reference warped by the
# >     network's answer, a local transmission $a$ and a residual shift $e$) in a Gaussian
# >     window of 6 px, correct the slowly varying part of the network's displacement; the
# >     detail finer than the window stays the network's (end of section 6; `lk_sigma=0` gives
# >     the network alone); then (`spinnet_lite/tv_refine.py`, on by default after the
# >     steps, `tv=False` turns it off) a further fit in a 1.5 px window whose correction pays
# >     for its total variation, which sharpens the steps of the field (lens rims) that both
# >     smooth;
# >   - **around the network, at inference** (`spinnet_lite/align.py`, used by
# >     `reconstruct`): a global offset of 3 px or more (a mask that drifted between the two
# >     exposures) is found by correlation and taken out before the network runs; where the
# >     first pass finds a wide field (half of the image moved by 1 px or more) a second pass
# >     runs on the reference warped by the first estimate and adds what it finds
# >     (`passes="auto"`);
# >   - **bfloat16 on CPUs that have it** (`engine="auto"`, `spinnet_lite/model/fast.py`): the
# >     estimators' bodies run in bfloat16 where the CPU has native bfloat16 arithmetic
# >     (AVX512-BF16, AMX), everything that sums displacements in float32; outputs within
# >     ~0.01 px of float32 (`engine="torch"`), the held-out error unchanged, 1.5-2x faster.

# %% tags=["parameters"]
QUICK = False  # True: small images and the tiny network (the tests run this)
SIZE = 256  # image size for the pyramid, warp and cost-volume examples, px
CONFIG = "lite"  # network for the forward pass: "tiny", "lite" or "full"
PAIR_SIZE = 128  # image size of the pair for the forward pass, px
SHIFT = (-1.7, 2.4)  # known (dy, dx) for the warp example, full-resolution px
CV_LEVEL = 2  # pyramid level of the cost-volume example
CV_SHIFT = (-1, 1)  # known (sy, sx) for the cost-volume example, px of level CV_LEVEL
SEARCH_RANGE = 4  # N of the cost-volume example (the full network's)
SEED = 0
OUTPUT_DIR = "../output/03"

# %%
if QUICK:  # every code path still runs, on less data
    SIZE, CONFIG = 128, "tiny"

# %%
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from spinnet_lite import Geometry, load_pretrained, nbtools, plots, simulate_pair
from spinnet_lite.data import to_tensors
from spinnet_lite.model import SPINNet, cost_volume, get_config, inverse_warp, multilevel_loss, pair_error, \
    shift_of_channel, warp
from spinnet_lite.model.blocks import green_block, yellow_block
from spinnet_lite.model.cost_volume import channel_of_shift
from spinnet_lite.model.normalize import normalize_pair
from spinnet_lite.pretrained import pretrained_record
from spinnet_lite.simulate import reference_image
from spinnet_lite.simulate import warp as forward_warp

lesson = nbtools.Lesson(OUTPUT_DIR, quick=QUICK, size=SIZE, config=CONFIG, pair_size=PAIR_SIZE, seed=SEED)
torch.manual_seed(SEED)  # the untrained networks below start from the same weights every run


def as_tensor(image):
    """(H, W) array -> (1, 1, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]


def pyramid_inputs(model, reference, sample):
    """What the model's two extractors receive: the images divided by the reference's mean, or,
    with the input normalisation of its config, each normalised by its local mean and contrast."""
    ref, sam = as_tensor(reference / reference.mean()), as_tensor(sample / reference.mean())
    if model.config.input_norm_sigma > 0:
        ref, sam, _, _ = normalize_pair(ref, sam, model.config.input_norm_sigma)
    return ref, sam


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
# ## 2 · What the network sees: input normalisation
#
# A speckle pattern's brightness and contrast depend on the beamline: a coded mask at 300 mm
# gives a contrast of tens of %, a membrane a few %, and the flat field drifts. The seed
# divides both images by the reference's mean, which removes the brightness but not the
# contrast. This project's `lite` network (a deviation from the seed) goes further: inside the
# network each image is turned into
#
# $$ n(I) = \frac{I - m}{s}, \qquad m = G_\sigma * I, \qquad s = \sqrt{G_\sigma * (I - m)^2}, $$
#
# zero local mean and unit local contrast over a Gaussian window $G_\sigma$
# (`model.normalize.normalize_pair`). A faint diffuser pattern and a bright mask pattern then
# look alike to the feature extractors:

# %%
sigma = get_config("lite").input_norm_sigma or 12.0
pixel_um = Geometry.training().pixel_size_um
patterns = {"coded mask": simulate_pair(SIZE, seed=SEED),
            "diffuser at 5 % visibility": simulate_pair(SIZE, seed=SEED, speckle="diffuser", visibility=0.05)}
normalised, contrast_before, contrast_after = {}, {}, {}
for name, p in patterns.items():
    ref_n, _, _, _ = normalize_pair(as_tensor(p.reference.values), as_tensor(p.sample.values), sigma)
    normalised[name] = ref_n[0, 0].numpy()
    contrast_before[name] = float(p.reference.std() / p.reference.mean())
    contrast_after[name] = float(normalised[name][16:-16, 16:-16].std())
    print(f"{name:>27}: contrast std/mean {contrast_before[name]:.3f} -> after normalisation, std "
          f"{contrast_after[name]:.3f} (sigma = {sigma:g} px)")
lesson.record(norm_sigma_px=sigma, contrast_before_norm=contrast_before, contrast_after_norm=contrast_after)

crop = slice(0, min(64, SIZE))
raw = {name: (p.reference.values / p.reference.values.mean())[crop, crop] for name, p in patterns.items()}
lo, hi = plots.shared_limits(raw.values(), percentile=99.5)
fig, axes = plt.subplots(1, 4, figsize=(16, 3.9), layout="constrained")
for j, name in enumerate(patterns):
    im = plots.show_map(axes[2 * j], raw[name], "gray", lo, hi, title=f"{name}: I / mean (one scale)",
                        pixel_size_um=pixel_um)
    fig.colorbar(im, ax=axes[2 * j], shrink=0.8)
    im = plots.show_map(axes[2 * j + 1], normalised[name][crop, crop], "gray", -3, 3, title=f"{name}: normalised",
                        pixel_size_um=pixel_um)
    fig.colorbar(im, ax=axes[2 * j + 1], shrink=0.8)
lesson.savefig(fig, "input_normalisation.png")

# %% [markdown]
# ## 3 · The feature pyramid
#
# Each image gets its own extractor (`FeaturePyramid`, one for the reference and one for the
# sample, with separate weights). Level 1 is the (normalised) image itself; each further level
# is a yellow block and a green block, so level $l$ is $2^{l-1}$ times smaller than the input.
# The full network has 1, 16, 32, 64, 96, 128 channels at levels 1..6; `lite` fewer, and fewer
# levels.
#
# Below, a speckle reference from the simulator (the training set-up) goes through the
# reference extractor of a freshly built network. Its weights are random (this notebook
# builds, notebook 04 trains): the channels are random local filters of the speckle, but the
# sizes and the structure are those of the trained network.

# %%
geometry = Geometry.training()
reference = reference_image((SIZE, SIZE), geometry, np.random.default_rng(SEED), pitch=4)
net = SPINNet(CONFIG).eval()  # eval: BatchNorm uses its running statistics, as at inference
config = net.config
print(config)
with torch.no_grad():
    features = net.extractor_ref(pyramid_inputs(net, reference, reference)[0])
for level, f in features.items():
    print(f"level {level}: {tuple(f.shape)}  ({SIZE // f.shape[-1]}x smaller than the input)")
lesson.record(pyramid_shapes={str(level): list(f.shape[1:]) for level, f in features.items()})

fig = plots.feature_pyramid(features, channels=3)
fig.suptitle(f"Feature pyramid of a {SIZE} x {SIZE} speckle reference ({config.name!r}, untrained): "
             "3 channels per level, shape C x h x w")
lesson.savefig(fig, "feature_pyramid.png")

# %% [markdown]
# ## 4 · The prop-layer: warping undoes a known shift
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
# the network's `inverse_warp`. The shift left in the residual $\mathrm{back} - I_r$ should be
# about zero. We measure it by linearising, $\mathrm{back} - I_r \approx -\nabla I_r \cdot
# \delta$, and solving for $\delta$ by least squares over the interior.

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
rms = lambda a: float(np.sqrt(np.mean(a[inner, inner] ** 2)))  # noqa: E731
contrast = float(reference[inner, inner].std())
sample_shifted, back = shift_and_back(SHIFT)
before, after = rms(sample_shifted - reference) / contrast, rms(back - reference) / contrast
left = remaining_shift(back, reference, border)
warp_error = float(np.hypot(*left))
integer_shift = tuple(float(round(s)) for s in SHIFT)
integer_error = rms(shift_and_back(integer_shift)[1] - reference) / contrast
print(f"known shift (dy, dx) = {SHIFT} px")
print(f"rms of I_s - I_r   : {before:.3f} x the speckle contrast (std)")
print(f"rms of back - I_r  : {after:.3f} x the speckle contrast")
print(f"shift left after the warp: (dy, dx) = ({left[0]:+.4f}, {left[1]:+.4f}) px -> |error| = {warp_error:.4f} px")
print(f"integer shift {integer_shift}: rms of back - I_r = {integer_error:.1e} x the contrast")
lesson.record(warp_shift=SHIFT, warp_remaining_shift=left, warp_residual_before=before, warp_residual_after=after)
lesson.expect("warp_error_px", warp_error, high=0.1, message="the warp should undo a known shift")
lesson.expect("warp_residual_integer", integer_error, high=1e-4, message="an integer shift is undone exactly")

# %% [markdown]
# For a whole-pixel shift the warp is exact. For the sub-pixel part, interpolation blurs the
# finest speckle a little: the residual is not zero but a fine-grained pattern along the
# speckle edges (right panel, colour scale magnified), and the shift left in it (printed) is
# the disagreement of two interpolations, the simulator's cubic spline and the network's
# bilinear one. That is what the prop-layer needs: the estimate is undone, and the network's
# next parts measure what is left.

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
    im = plots.show_map(ax, img[zoom, zoom], cmap, -vlim if vlim else None, vlim, title=title,
                        pixel_size_um=geometry.pixel_size_um)
    fig.colorbar(im, ax=ax, shrink=0.85)
fig.suptitle(f"The prop-layer's warp undoes a known shift (64 x 64 px crop); shift left: {warp_error:.3f} px")
lesson.savefig(fig, "warp_residual.png")

# %% [markdown]
# **Where to warp at the finest level.** The seed warps each level's *features*. At level 2
# (half resolution) a speckle of 2-6 px is only 1-3 feature pixels across, close to the
# Nyquist limit, and a bilinear read there both blurs it and moves it by an amount that depends
# on the sub-pixel phase of the shift: a bias with a period of one level-2 pixel (2 px). The
# `lite` network (this project's deviation, `config.image_warp_levels`) therefore warps the
# normalised reference *image* at full resolution at level 2 and takes the level-2 features of
# that; the read is bilinear on the image upsampled 2x with cubic midpoints
# (`warp(..., mode="oversampled")`), which moves a speckle near the pixel pitch without that
# phase-dependent shift. Below, the reference average-pooled 2x stands in for level-2 features:
# the truth is the pooled image of the simulator's shift, and we compare the two ways of
# reaching it, for shifts along x over one level-2 pixel.

# %%
def pool2(image):
    """(1, 1, H, W) -> the 2 x 2 average, (1, 1, H/2, W/2): a stand-in for level-2 content."""
    return torch.nn.functional.avg_pool2d(image, 2)


phase_shifts = np.arange(0.25, 2.0, 0.25)  # full-resolution px along x; 2 px is one level-2 pixel
level2_errors = {"features (seed)": [], "image (lite)": []}
for s in phase_shifts:
    truth = pool2(as_tensor(forward_warp(reference, np.full(reference.shape, s), np.zeros(reference.shape))))
    d = torch.tensor([s, 0.0]).view(1, 2, 1, 1)
    ways = {"features (seed)": warp(pool2(as_tensor(reference)), d.expand(1, 2, SIZE // 2, SIZE // 2) / 2),
            "image (lite)": pool2(warp(as_tensor(reference), d.expand(1, 2, SIZE, SIZE), mode="oversampled"))}
    for name, estimate in ways.items():  # shift left between the estimate and the truth, full-res px
        level2_errors[name].append(2 * remaining_shift(estimate[0, 0].numpy(), truth[0, 0].numpy(), 6)[1])
print("shift (px)        " + " ".join(f"{s:7.2f}" for s in phase_shifts))
for name, errors in level2_errors.items():
    print(f"{name:18s}" + " ".join(f"{e:+7.3f}" for e in errors))
worst = {name: float(np.max(np.abs(e))) for name, e in level2_errors.items()}
print(f"largest shift error: {worst['features (seed)']:.3f} px warping level-2 features, "
      f"{worst['image (lite)']:.4f} px warping the image")
lesson.record(level2_warp_shift_error=level2_errors, level2_warp_phase_shifts=phase_shifts)
lesson.expect("level2_feature_warp_error_px", worst["features (seed)"], low=0.02,
              message="a bilinear read at half resolution moves fine speckle by a phase-dependent amount")
lesson.expect("level2_image_warp_error_px", worst["image (lite)"], high=0.01,
              message="the oversampled image warp should keep the shift")

# %% [markdown]
# ## 5 · The 3-D cost volume peaks at the shift
#
# After the warp, the **cost volume** compares the sample features with the warped reference
# features at every shift $(s_y, s_x)$ up to $N$ pixels of the level:
#
# $$ c_k(y, x) = \frac{1}{C}\sum_{c=1}^{C} f_s(c, y, x)\; \tilde f_r(c,\, y - s_y,\, x - s_x),
#    \qquad k = (s_y + N)(2N+1) + (s_x + N), $$
#
# a 3-D array of $(2N+1)^2$ channels × height × width. If $f_s(x) = f_r(x - t)$, the sum is
# largest at $s = t$: the channel of the peak *is* the residual displacement, in pixels of the
# level. `shift_of_channel(k, N)` turns a channel back into $(s_y, s_x)$. At level $l$ a search
# of $\pm N$ level pixels reaches $\pm N\,2^{l-1}$ full-resolution pixels: coarse levels see
# far, fine levels see sharp.
#
# Test: shift the reference by a known whole number of level-`CV_LEVEL` pixels (`CV_SHIFT` ×
# $2^{l-1}$ full-resolution pixels, where the forward model is exact), take the features of
# both images at that level and build the cost volume. The shift is kept inside the range the
# bundled network was trained on:

# %%
scale = 2 ** (CV_LEVEL - 1)
expected = (int(CV_SHIFT[0]), int(CV_SHIFT[1]))
full_shift = (expected[0] * scale, expected[1] * scale)
pretrained = load_pretrained()
spec = pretrained_record().get("train_config", {}).get("spec", {})
if isinstance(spec.get("max_shift_px"), (list, tuple)):  # the training distribution names its range
    trained_max, source = float(spec["max_shift_px"][1]), "the largest in the training record"
else:  # older records: measure the largest displacement of training-style pairs
    trained_max = max(float(np.hypot(p.dx, p.dy).max()) for p in
                      (simulate_pair(256, seed=900_000_000 + i) for i in range(8)))
    source = "the largest of 8 training-style pairs, measured here"
print(f"cost-volume test shift: {full_shift} full-resolution px, |d| = {np.hypot(*full_shift):.2f} px; "
      f"trained displacements reach at least {trained_max:.2f} px ({source})")
lesson.record(trained_max_shift_px=trained_max)
lesson.expect("cost_volume_shift_px", float(np.hypot(*full_shift)), high=trained_max,
              message="keep the demonstration inside the trained range")

# %% [markdown]
# To isolate the cost volume, both images first go through the *same* extractor. With the
# untrained one, the surface averaged over the image peaks at the shift (Cauchy-Schwarz: a
# feature map matches itself best), but at a single pixel random features are not distinctive
# and the peak can sit elsewhere. The right-hand panels use the reference extractor of the
# bundled, trained network; the printed shares say at how many pixels each surface peaks at the
# known shift.

# %%
cv_sample = forward_warp(reference, np.full(reference.shape, float(full_shift[1])),
                         np.full(reference.shape, float(full_shift[0])))
n = SEARCH_RANGE
with torch.no_grad():
    ref_in, sam_in = pyramid_inputs(net, reference, cv_sample)
    cost = cost_volume(net.extractor_ref(sam_in)[CV_LEVEL], net.extractor_ref(ref_in)[CV_LEVEL], n)[0]
    ref_in, sam_in = pyramid_inputs(pretrained, reference, cv_sample)
    f_ref_trained = pretrained.extractor_ref(ref_in)[CV_LEVEL]
    cost_trained = cost_volume(pretrained.extractor_ref(sam_in)[CV_LEVEL], f_ref_trained, n)[0]
    cost_two = cost_volume(pretrained.extractor_sample(sam_in)[CV_LEVEL], f_ref_trained, n)[0]
h, w = cost.shape[-2:]
m = n + max(abs(s) for s in expected)  # leave out the strip where shifted features meet the zero padding
inside = (slice(None), slice(m, h - m), slice(m, w - m))
py, px = h // 2, w // 2  # the pixel whose surface we plot
k_true = channel_of_shift(*expected, n)
results = {}
for name, c in (("untrained", cost), ("trained", cost_trained)):
    mean_surface = c[inside].mean(dim=(1, 2))
    results[name] = dict(mean=mean_surface, pixel=c[:, py, px],
                         peak=shift_of_channel(int(mean_surface.argmax()), n),
                         pixel_peak=shift_of_channel(int(c[:, py, px].argmax()), n),
                         fraction=float((c[inside].argmax(dim=0) == k_true).float().mean()))
print(f"cost volume at level {CV_LEVEL}: {tuple(cost.shape)} = ((2N+1)^2 = {(2 * n + 1) ** 2}, h, w), N = {n}")
print(f"known shift (sy, sx) = {expected} level-{CV_LEVEL} px = {full_shift} full-resolution px (channel {k_true})")
for name, r in results.items():
    print(f"{name:>9}: mean surface peaks at (sy, sx) = {r['peak']}; at pixel ({py}, {px}): {r['pixel_peak']}; "
          f"pixels whose own peak is the known shift: {100 * r['fraction']:.0f} %")
raised = "raised" if results["trained"]["fraction"] > results["untrained"]["fraction"] else "did not raise"
print(f"-> training {raised} the share of pixels whose own peak sits at the known shift")
peak_two = shift_of_channel(int(cost_two[inside].mean(dim=(1, 2)).argmax()), n)
print(f"bundled network, sample through its own extractor: mean surface peaks at {peak_two} "
      f"(offset {(peak_two[0] - expected[0], peak_two[1] - expected[1])} from the known shift)")
lesson.record(cost_volume_level=CV_LEVEL, cost_volume_search_range=n, expected_peak=expected,
              cost_volume_peak=results["untrained"]["peak"], cost_volume_peak_pixel=results["untrained"]["pixel_peak"],
              cost_volume_peak_fraction=results["untrained"]["fraction"],
              cost_volume_peak_trained=results["trained"]["peak"],
              cost_volume_peak_fraction_trained=results["trained"]["fraction"],
              cost_volume_peak_two_extractors=peak_two)

fig = plots.cost_surfaces({"untrained, mean over the image": results["untrained"]["mean"],
                           f"untrained, pixel ({py}, {px})": results["untrained"]["pixel"],
                           "trained (bundled), mean": results["trained"]["mean"],
                           f"trained (bundled), pixel ({py}, {px})": results["trained"]["pixel"]},
                          n, expected=expected)
fig.suptitle(f"Cost volume at level {CV_LEVEL}: the (2N+1) x (2N+1) = {2 * n + 1} x {2 * n + 1} surface over "
             f"the shift; known shift {expected} (red circle), argmax (white cross)")
lesson.savefig(fig, "cost_volume.png")

# %% [markdown]
# Read the printed shares, not a rule of thumb: training need not make the per-pixel peak of
# one extractor against itself sharper, because the loss never asks for that. It asks the
# *whole network* for the right displacement, and PhaseNet reads the whole $(2N+1)^2$ surface
# at each pixel, not only its argmax.
#
# In the network the sample goes through its own extractor. Nothing forces the two extractors
# to line up pixel for pixel either: a constant offset of the peak serves PhaseNet as well as
# none. The last printed line shows where the bundled network's pair of extractors puts it.
#
# > **Think.** Why is the *mean* surface a fair test of the cost volume, while a single pixel's
# > surface is a test of the features?

# %% [markdown]
# ## 6 · The estimators, and one forward pass
#
# At each level $l$ from the first (coarsest) down to 2 (stage 1 of the staged training stops
# at 3; seed section 2.4 and Supplement 3):
#
# * **PhaseNet** reads the activated cost volume, the current displacement (divided by 10 so
#   that it is of order 1) and the last features of the coarser level's PhaseNet (the
#   "context"), runs them through five green blocks and a 3×3 convolution to **2 channels**:
#   the residual $(d_x, d_y)$ in pixels of the level, added as $d \leftarrow d + 2^{l-1}\,\Delta d$;
# * **TNet** reads the images average-pooled to the level, the sample inverse-warped to the
#   reference frame with the new $d$ (where $I_s / I_r \approx T$), the current $T$ and $d$:
#   **6 channels** in, the same body, **1 channel** out, added to $T$;
# * at the last level, **PhaseRefiner** and **TRefiner** (the same body, then a 1×1
#   convolution) polish $d$ and $T$ once more; the result is upsampled bilinearly to the
#   input size.
#
# The coarsest level starts from $d = 0$, $T = 1$ and zero context. Every PhaseNet has the
# same input width at every level, so level 3's weights can initialise level 2 (stage 2 of
# training). Forward hooks record what each part receives and returns during one pass of the
# network on a simulated pair.

# %%
pair = simulate_pair(PAIR_SIZE, pitch=4, seed=SEED)
tensors = {k: v[None] for k, v in to_tensors({k: pair[k].values for k in pair.data_vars}).items()}
calls = []


def record_shapes(name):
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
handles = [module.register_forward_hook(record_shapes(name)) for name, module in parts]
try:
    with torch.no_grad():
        output = net(tensors["reference"], tensors["sample"])
finally:
    for handle in handles:
        handle.remove()

cost_calls = iter(c for c in calls if c[0] == "cost volume")
by_name = {name: (ins, outs) for name, ins, outs in calls if name != "cost volume"}
with torch.no_grad():
    pair_features = net.extractor_ref(tensors["reference"])
level_shapes = {}
print(f"forward pass of {config.name!r} on a {PAIR_SIZE} x {PAIR_SIZE} pair (batch 1), shapes (C, h, w):")
print(f"{'level':>5} {'features':>14} {'cost volume':>14} {'PhaseNet in':>14} {'-> out':>11} {'TNet in':>12} {'-> out':>11}")
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
print("output: displacement", tuple(output["displacement"].shape), "transmission", tuple(output["transmission"].shape))
reach = {name: get_config(name).search_range * 2 ** (get_config(name).first_level - 1) for name in ("full", "lite")}
print("reach of the coarsest level, +-N 2^(l-1) full-resolution px:", reach)
lesson.record(level_shapes=level_shapes, search_range=config.search_range, first_level=config.first_level,
              output_displacement_shape=list(output["displacement"].shape),
              output_transmission_shape=list(output["transmission"].shape), coarsest_reach_px=reach)

# %% [markdown]
# Reading the table: the cost volume has $(2N+1)^2$ channels at every level; PhaseNet's input
# is those channels + 2 (the displacement) + the context width, its output 2 channels; TNet
# takes 6 channels and returns 1. Only the spatial size changes from level to level.
#
# The last line is why `lite` can start at level 4: its coarsest search already reaches the
# printed number of pixels, more than the displacements it is trained for, while levels 5
# and 6 of a small training patch are only a few pixels wide.
#
# ### The finest level, run again
#
# `config.finest_iterations` (this project's deviation, not the seed's): the finest level may
# run more than once with the *same* PhaseNet and TNet, as RAFT's update operator does. Each
# pass after the first warps the reference by the displacement found so far, builds a new cost
# volume and starts from the previous pass's context, so it can correct what the pass before
# left. About half of a single pass's remaining error is a smooth bias made at level 2 (README,
# "Failures that remain"); a second pass, trained as such, is the lever against it. It costs
# one more level-2 PhaseNet, TNet and image warp: the finest level is most of the network's
# time. Any network can be called with `iterations=k` (`reconstruct(..., iterations=k)`, the
# CLI's `--iterations`); below, the bundled weights on the section's pair, with the count they
# were trained with and with the other.

# %%
from spinnet_lite import reconstruct
from spinnet_lite.metrics import displacement_rmse

trained_iterations = pretrained.config.finest_iterations
iteration_errors = {}
for count in sorted({1, 2, trained_iterations}):
    result = reconstruct(pair.reference.values, pair.sample.values, model=pretrained, iterations=count)
    iteration_errors[count] = displacement_rmse(result, pair, border=8)
print(f"bundled weights trained with {trained_iterations} pass(es) of level {pretrained.config.last_level}")
for count, error in iteration_errors.items():
    print(f"  iterations={count}: displacement error {error:.4f} px rms on this pair "
          f"(field {float(np.sqrt((pair.dx ** 2 + pair.dy ** 2).mean())):.2f} px rms)")
lesson.record(trained_finest_iterations=trained_iterations,
              iteration_errors_px={str(k): v for k, v in iteration_errors.items()})

# %% [markdown]
# One pair says little either way; `benchmarks/evaluate.py --spinnet-options iterations=1`
# compares the counts on the whole held-out set (README, "Results").
#
# ### After the network: a Lucas-Kanade step
#
# Most of what the network gets wrong on a small field varies slowly: a contour's ridge of
# 0.1 px comes out 10-15 % too low, a uniform drift of 0.02 px about half its size. Near the
# network's answer the speckle has moved by a small residual $e$ only, where the forward model
# can be linearised: $I_s \approx a\,(I_r^{w} + \partial_{d_x} I_r^{w}\, e_x + \partial_{d_y}
# I_r^{w}\, e_y)$ with $I_r^{w}$ the reference warped by the answer and $a$ a local
# transmission. A weighted least-squares fit of $(a, a e_x, a e_y)$ in a Gaussian window
# around each pixel (Lucas and Kanade's method, with the transmission of UMPA's model) gives
# $e$, which is added; `reconstruct` runs two such steps with a 6 px window by default
# (`lk_sigma`, `lk_iterations`; `spinnet_lite/lucas_kanade.py`). The window averages $e$, so
# the step corrects what varies over more than ~6 px and leaves finer detail to the network.
# It is not part of the seed's network; `lk_sigma=0` turns it off. A window of 6 px cannot
# resolve a step of the field (a lens rim: 0.9 px within ~4 px), so a second fit follows, in a
# 1.5 px window, whose correction to the answer pays for its total variation (a sum of
# $|\nabla u|$, solved by Chambolle and Pock's primal-dual algorithm): the correction is a step
# where the answer misses one and near 0 where the answer fits, so textured fields keep their
# detail (`spinnet_lite/tv_refine.py`, `tv`; `tv=False` turns it off). Below, on the
# section's pair:

# %%
lk_errors = {}
for label, options in (("network alone (lk_sigma=0)", {"lk_sigma": 0}),
                       ("network + Lucas-Kanade (tv=False)", {"tv": False}),
                       ("network + Lucas-Kanade + total variation (default)", {})):
    result = reconstruct(pair.reference.values, pair.sample.values, model=pretrained, **options)
    lk_errors[label] = displacement_rmse(result, pair, border=8)
    print(f"  {label}: displacement error {lk_errors[label]:.4f} px rms on this pair")
lesson.record(lucas_kanade_errors_px=lk_errors)

# %% [markdown]
# On the 24 held-out pairs (the bundled weights, `benchmarks/evaluate.py`) the step takes the
# median error from 0.0298 to 0.0203 px and the pairs below the seed's 1 % Eq. 4 from 13 to 17;
# the total-variation refinement after it (the default) gives 0.0178 px and 21 of 24, the four
# lens pairs among them (README, "Results"; the eighteenth bundle, session 23).
#
# ## 7 · Parameter counts: `full` and `lite`
#
# `SPINNet.parameter_table()` counts the parameters of each part. The seed-sized `full`
# network and this project's `lite` have the same kinds of parts; `lite` has narrower channels
# and fewer levels, so it trains on a laptop CPU. The heads of one kind have the same size at
# every level, since their input widths do not depend on the level.

# %%
tables = {name: SPINNet(name).parameter_table() for name in ("full", "lite", "tiny")}
groups = {"extractors (2)": ("extractor_",), "PhaseNets": ("phase_net_",), "TNets": ("t_net_",),
          "refiners (2)": ("phase_refiner", "t_refiner")}
grouped = {name: {g: sum(v for k, v in t.items() if k.startswith(prefixes)) for g, prefixes in groups.items()}
           for name, t in tables.items()}
parts_all = list(dict.fromkeys(k for t in tables.values() for k in t))
print(f"{'part':>18}" + "".join(f"{name:>12}" for name in tables))
for part in parts_all:
    print(f"{part:>18}" + "".join(f"{t[part]:>12,}" if part in t else f"{'-':>12}" for t in tables.values()))
params_full, params_lite = tables["full"]["total"], tables["lite"]["total"]
print(f"full: {params_full / 1e6:.2f} M, lite: {params_lite / 1e6:.2f} M "
      f"({params_full / params_lite:.1f}x fewer), tiny: {tables['tiny']['total']:,}")
lesson.expect("params_full", params_full, 4e6, 7e6, "the seed-sized network has a few million parameters")
lesson.record(params_lite=params_lite, params_tiny=tables["tiny"]["total"], parameter_tables=tables,
              parameters_by_part=grouped)

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
lesson.savefig(fig, "parameter_counts.png")

# %% [markdown]
# ## 8 · The loss (Eq. 4) on an untrained network
#
# Training compares the prediction with the ground truth by the seed's Eq. 4, the sum of
# three relative squared errors (squared L2 norms over the image):
#
# $$ \mathcal L = \frac{\lVert d_x - d_x^{gt}\rVert^2}{\lVert d_x^{gt}\rVert^2}
#   + \frac{\lVert d_y - d_y^{gt}\rVert^2}{\lVert d_y^{gt}\rVert^2}
#   + \frac{\lVert T - T^{gt}\rVert^2}{\lVert T^{gt}\rVert^2} . $$
#
# `pair_error` computes it per pair; `multilevel_loss` adds it up over the levels (the ground
# truth average-pooled to each, with this project's per-level weights) and the final output,
# as training does. The guess $d = 0$, $T = 1$ scores 1 per displacement term, so a loss near
# 2 means "nothing learned yet"; the seed's evaluation calls a pair error below 0.25 % good
# (notebook 07).

# %%
gt = (tensors["displacement"], tensors["transmission"])
untrained_error = float(pair_error((output["displacement"], output["transmission"]), gt)[0])
zero_error = float(pair_error((torch.zeros_like(gt[0]), torch.ones_like(gt[1])), gt)[0])
_, terms = multilevel_loss(output, *gt)
print(f"pair error (Eq. 4) of the untrained {config.name!r} network: {untrained_error:.3f}; "
      f"of the guess d = 0, T = 1: {zero_error:.3f}")
print("multi-level loss terms:", {k: round(v, 3) for k, v in terms.items()})
lesson.record(untrained_pair_error=untrained_error, zero_guess_pair_error=zero_error, multilevel_terms=terms)

# %% [markdown]
# ## Exercises
#
# Replace `None` by your answer and run the cell; the check says whether it is right.
# Solutions are one click away: try first.
#
# **Exercise 03.1 · Pyramid sizes.** The full network gets a 256 × 256 input. How many pixels
# wide is its level-5 feature map?

# %%
answer_03_1 = None
with torch.no_grad():
    level5 = SPINNet("full").eval().extractor_ref(torch.zeros(1, 1, 256, 256))[5]
lesson.check_exercise("03.1", answer_03_1, expected=level5.shape[-1], rtol=0, hint="level l is 2**(l-1) times smaller")

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# answer_03_1 = 256 // 2 ** (5 - 1)
# lesson.check_exercise("03.1", answer_03_1, expected=level5.shape[-1], rtol=0)
# ```
# </details>
#
# **Exercise 03.2 · Which channel?** With $N = 3$, which cost-volume channel $k$ holds the shift
# $(s_y, s_x) = (1, -2)$? Use the formula of section 5, not the function.

# %%
answer_03_2 = None
lesson.check_exercise("03.2", answer_03_2, expected=channel_of_shift(1, -2, 3), rtol=0,
                      hint="k = (sy + N)(2N + 1) + (sx + N)")

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# answer_03_2 = (1 + 3) * (2 * 3 + 1) + (-2 + 3)
# lesson.check_exercise("03.2", answer_03_2, expected=channel_of_shift(1, -2, 3), rtol=0)
# ```
# </details>
#
# **Exercise 03.3 · How far can it see?** The `full` network starts at level 6 with $N = 4$.
# Without any warp, how many full-resolution pixels away can its coarsest cost volume find a
# shift?

# %%
answer_03_3 = None  # px
lesson.check_exercise("03.3", answer_03_3, expected=reach["full"], rtol=0, hint="N level pixels of 2**(l-1) px each")

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# answer_03_3 = 4 * 2 ** (6 - 1)
# lesson.check_exercise("03.3", answer_03_3, expected=reach["full"], rtol=0)
# ```
# Each finer level then adds its own $\pm N$ level pixels around the warped estimate.
# </details>
#
# **Exercise 03.4 · Eq. 4 by hand.** A network predicts exactly half the true displacement
# everywhere and the transmission perfectly. What is its pair error? The check evaluates
# `pair_error` on such a prediction for the pair above.

# %%
answer_03_4 = None
lesson.check_exercise("03.4", answer_03_4, expected=float(pair_error((0.5 * gt[0], gt[1]), gt)[0]), rtol=0.01,
                      hint="each displacement term is |0.5 d - d|^2 / |d|^2")

# %% [markdown]
# <details><summary>Solution</summary>
#
# Each displacement term is $\lVert -d/2\rVert^2 / \lVert d\rVert^2 = 1/4$ and the
# transmission term is 0:
#
# ```python
# answer_03_4 = 0.25 + 0.25
# lesson.check_exercise("03.4", answer_03_4, expected=float(pair_error((0.5 * gt[0], gt[1]), gt)[0]), rtol=0.01)
# ```
# </details>

# %% [markdown]
# ## What we learned
#
# * SPINNet is a coarse-to-fine estimator: feature pyramids, a warp by the current estimate, a
#   local cost volume that measures what is left, and small convolutional heads that turn the
#   cost volume into a displacement correction and a transmission correction.
# * Each part can be tested with a known shift: the warp undoes it, and the mean cost
#   surface peaks at it. What training changes in the features is measured, not assumed.
# * A search of $\pm N$ pixels at level $l$ reaches $\pm N\,2^{l-1}$ pixels: the coarsest
#   level sets the largest displacement the network can find, the finest its precision.
# * Eq. 4 is a sum of relative errors: 2 for "nothing learned", 0 for perfect.
# * The box at the top lists where this project's network differs from the seed's; notebook
#   04 trains it.

# %%
lesson.finish()
