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
# # 02 · The coded-mask simulator
#
# SPINNet is trained on simulated pairs, since real ones come without ground truth. This
# notebook takes `spinnet_lite.simulate_pair` apart (seed section 2.3), lets you move its
# parameters with sliders, and generates a small labelled data set with `xarray`.
#
# One call of `simulate_pair` does five things:
#
# 1. **Reference**: a random binary mask $R$ (cells of `pitch` pixels, half gold) makes the
#    field $U_0 = (A_0 + t_0(1-R))\,e^{i\phi_0 R}$; it is Fresnel-propagated over the
#    mask-to-detector distance $d$ (notebook 01), $I_r = |U_d|^2$, then blurred by a Gaussian of
#    `blur_px` for the detector.
# 2. **Sample**: a smooth random texture (Gaussian-filtered noise) times a closed Bézier
#    contour gives the phase $\phi = -V_\phi\,\mathrm{tex}\cdot\mathrm{contour}$ and the
#    transmission $T = 1 - V_T\,\mathrm{tex}'\cdot\mathrm{contour}$, with
#    $V_\phi \in [\pi, 20\pi]$, $V_T \in [0.02, 0.2]$ and $\mathrm{tex}' = \mathrm{tex}$ for
#    40 % of the samples.
# 3. **Displacements** from the phase gradient: $d = \frac{\lambda z}{2\pi p^2}\nabla\phi$ (px).
# 4. **Eq. 1**: $I_s = T\cdot I_r(y - d_y, x - d_x)$.
# 5. **Noise** (optional): $N$ photons per pixel at unit intensity,
#    $I \to \mathrm{Poisson}(N I)/N$, for the reference and the sample independently.
#
# Random phantoms are simulated in `Geometry.training()`; the views below build their
# `Geometry` from the sliders' energy and mask distance.

# %% tags=["parameters"]
QUICK = False  # True: small images, a tiny data set (the tests run this)
SIZE = 256  # image size of the simulator views, px
N_PAIRS = 32  # pairs in the generated data set
PAIR_SIZE = 128  # image size of the data set's pairs, px
PITCHES = [3, 4, 5, 6]  # mask pitches drawn for the data set, px
PHOTONS = 0  # photons per pixel for the data set, 0 means noiseless
SEED = 0
OUTPUT_DIR = "../output/02"

# %%
if QUICK:  # every code path still runs, on less data
    SIZE, N_PAIRS, PAIR_SIZE = 128, 3, 64

# %%
# %matplotlib inline
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from IPython.display import display
from scipy import ndimage

import spinnet_lite
from spinnet_lite import Geometry, phantoms
from spinnet_lite.io import write_dataset
from spinnet_lite.widgets import DEFAULTS, simulator_view, simulator_widget

out = Path(OUTPUT_DIR)
out.mkdir(parents=True, exist_ok=True)
summary = {"quick": QUICK, "size": SIZE, "seed": SEED}
training = Geometry.training()
print(f"training set-up: lambda = {training.wavelength_m * 1e9:.3f} nm ({training.energy_kev:.2f} keV), "
      f"p = {training.pixel_size_um} um, mask {training.mask_detector_mm:g} mm and sample "
      f"{training.sample_detector_mm:g} mm from the detector, {training.shift_per_gradient:.3f} px per rad/px")
print("simulator_view defaults:", DEFAULTS)

# %% [markdown]
# ## The sample: texture times contour
#
# The ingredients of a random phantom, from `spinnet_lite.phantoms`: a closed curve of
# quadratic Bézier segments through random control points (filled, and its edge softened by a
# Gaussian so the gradients stay finite), a smooth texture (Gaussian-filtered noise rescaled to
# [0, 1], correlation length drawn at random), and their product scaled by $V_\phi$. We draw
# the contour and the texture from the same random stream `random_phantom` uses, and check
# that their product is the phantom's phase.

# %%
ranges = phantoms.RandomPhantomRanges()
rng = np.random.default_rng(SEED)
contour = ndimage.gaussian_filter(phantoms.bezier_contour((SIZE, SIZE), rng), ranges.edge_sigma_px)
sigma = rng.uniform(*ranges.texture_sigma_px)
texture = phantoms.smooth_texture((SIZE, SIZE), sigma, rng)
phase, transmission, support = phantoms.random_phantom((SIZE, SIZE), np.random.default_rng(SEED),
                                                       phase_amplitude=DEFAULTS["phase_amplitude"])
mismatch = float(np.abs(phase + DEFAULTS["phase_amplitude"] * texture * contour).max())
print(f"max |phase - (-V_phi * texture * contour)| = {mismatch:.1e} rad")
summary["phantom_product_mismatch"] = mismatch
fig, axes = plt.subplots(1, 4, figsize=(17, 3.8), layout="constrained")
for ax, img, title, cmap, label in [
    (axes[0], contour, f"Bézier contour (edge sigma {ranges.edge_sigma_px:g} px)", "gray", ""),
    (axes[1], texture, f"smooth texture (sigma {sigma:.1f} px)", "magma", ""),
    (axes[2], phase, f"phase, $V_\\phi$ = {DEFAULTS['phase_amplitude']:g} rad", "viridis", "rad"),
    (axes[3], transmission, "transmission $T$", "viridis", ""),
]:
    im = ax.imshow(img, cmap=cmap)
    ax.set(title=title, xlabel="x [px]", ylabel="y [px]")
    fig.colorbar(im, ax=ax, shrink=0.85, label=label)
fig.savefig(out / "phantom_parts.png", dpi=100, bbox_inches="tight")
print(f"phase range [{phase.min():.2f}, {phase.max():.2f}] rad, transmission range "
      f"[{transmission.min():.3f}, {transmission.max():.3f}], sample area {support.mean():.0%} of the image")

# %% [markdown]
# ## One simulated pair
#
# `spinnet_lite.widgets.simulator_view` builds a `Geometry` from the energy and the mask
# distance, calls `simulate_pair` with the other parameters and draws the five images: the
# reference, the sample, the two displacement components and the transmission. It is a plain
# function, called here once with its defaults (the sliders below call the same function).

# %%
fig = simulator_view(size=SIZE, seed=SEED)
fig.savefig(out / "simulator_default.png", dpi=100, bbox_inches="tight")
ds = fig.dataset
d_max = float(np.hypot(ds.dx, ds.dy).max())
ref = ds.reference.values
print(f"reference: mean {ref.mean():.3f}, contrast std/mean {ref.std() / ref.mean():.3f}")
print(f"max |d| = {d_max:.2f} px, transmission min {float(ds.transmission.min()):.3f}")
summary.update(view_max_displacement_px=d_max, view_reference_contrast=float(ref.std() / ref.mean()),
               view_reference_mean=float(ref.mean()))
fig

# %% [markdown]
# ### Noise and pitch
#
# With $N$ photons per pixel the relative noise of a pixel of intensity $I$ is
# $1/\sqrt{N I}$; the speckle contrast must stand well above it for tracking. The same call
# with a coarser mask and 1000 photons per pixel:

# %%
photons = 1000.0
fig = simulator_view(size=SIZE, seed=SEED, pitch=6, photons=photons)
fig.savefig(out / "simulator_noisy.png", dpi=100, bbox_inches="tight")
noisy = fig.dataset
clean = simulator_view(size=SIZE, seed=SEED, pitch=6, photons=0).dataset
noise_rms = float((noisy.reference - clean.reference).std())
expected = float(np.sqrt(clean.reference.mean() / photons))
print(f"reference noise rms {noise_rms:.4f} (expected sqrt(<I>/N) = {expected:.4f}); "
      f"speckle rms {float(clean.reference.std()):.3f}")
summary.update(noise_rms=noise_rms, noise_rms_expected=expected)
fig

# %% [markdown]
# ## Explore with sliders
#
# `simulator_widget()` wraps `simulator_view` in `ipywidgets.interactive`: mask pitch,
# mask-to-detector distance, energy, mask phase $\phi_0$, detector blur, photons per pixel
# (tick *noiseless* to switch noise off), the sample's phase amplitude $V_\phi$ and the seed.
# The image redraws when a slider is released. Things to try: mask phase 0 (an amplitude-only
# mask: low contrast), distance 0 (the mask itself), a large blur (the grains wash out), few
# photons, a large $V_\phi$ (displacements of many pixels).
#
# In a static rendering (papermill, nbconvert) the sliders do not respond; the figure shown is
# the one drawn with the starting values.

# %%
widget = simulator_widget(size=SIZE, seed=SEED)
assert type(widget.result).__name__ == "Figure", "the widget's first draw failed"  # headless check
display(widget)

# %% [markdown]
# ## A small labelled data set
#
# Pairs for training or testing are stacked along a new `pair` dimension with `xr.concat`;
# each pair keeps its `(y, x)` coordinates in micrometres and units, and its seed, mask pitch
# and photon count become coordinates along `pair`. The set-up (`geometry_*` attributes) is
# common to all pairs. The file is netCDF-4 (`h5netcdf`), written by `spinnet_lite.io.write_dataset`.

# %%
pick = np.random.default_rng([SEED, 2])
pairs = []
for i in range(N_PAIRS):
    pitch = int(pick.choice(PITCHES))
    pair = spinnet_lite.simulate_pair(size=PAIR_SIZE, pitch=pitch, seed=SEED + i, phantom="random",
                                      photons=PHOTONS or None)
    pairs.append(pair.expand_dims(pair=[i]).assign_coords(
        seed=("pair", [SEED + i]), pitch_px=("pair", [pitch]), photons_per_px=("pair", [float(PHOTONS)])))
dataset = xr.concat(pairs, dim="pair", combine_attrs="drop_conflicts")
dataset["max_displacement"] = np.hypot(dataset.dx, dataset.dy).max(("y", "x"))
dataset["max_displacement"].attrs.update(units="px", long_name="largest |displacement| of the pair")
dataset.attrs["title"] = "spinnet_lite simulated random-phantom pairs"
path = write_dataset(dataset, out / "simulated_pairs.nc", overwrite=True)
print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")

with xr.open_dataset(path, engine="h5netcdf") as saved:
    print(saved)
    dims = dict(saved.sizes)
    variables = sorted(saved.data_vars)
    dx_range = [float(saved.dx.min()), float(saved.dx.max())]
    dy_range = [float(saved.dy.min()), float(saved.dy.max())]
    dmax = saved.max_displacement.values
summary.update(n_pairs=N_PAIRS, dataset_file=path.name, dataset_dims=dims,
               dataset_shape=[dims["pair"], dims["y"], dims["x"]], dataset_variables=variables,
               dx_range_px=dx_range, dy_range_px=dy_range,
               max_displacement_px=[float(dmax.min()), float(np.median(dmax)), float(dmax.max())])
print(f"dx in [{dx_range[0]:.2f}, {dx_range[1]:.2f}] px, dy in [{dy_range[0]:.2f}, {dy_range[1]:.2f}] px; "
      f"per-pair max |d|: min {dmax.min():.2f}, median {np.median(dmax):.2f}, max {dmax.max():.2f} px")

# %% [markdown]
# A few pairs of the set (sample image and $d_x$, labelled by xarray from the attributes) and
# the distribution of each pair's largest displacement: the range the network has to cover.

# %%
show = min(4, N_PAIRS)
fig, axes = plt.subplots(2, show + 1, figsize=(3.6 * (show + 1), 6.4), layout="constrained", squeeze=False)
for j in range(show):
    dataset.sample.isel(pair=j).plot.imshow(ax=axes[0, j], cmap="gray", yincrease=False)
    axes[0, j].set_title(f"pair {j}: sample (pitch {int(dataset.pitch_px[j])})")
    lim = float(np.abs(dataset.dx.isel(pair=j)).max())
    dataset.dx.isel(pair=j).plot.imshow(ax=axes[1, j], cmap="RdBu_r", vmin=-lim, vmax=lim, yincrease=False)
    axes[1, j].set_title(f"pair {j}: $d_x$")
axes[0, -1].hist(dataset.max_displacement.values, bins=max(5, N_PAIRS // 3), color="C0")
axes[0, -1].set(title="largest |d| per pair", xlabel="px", ylabel="pairs")
axes[1, -1].hist(dataset.dx.values[np.abs(dataset.dx.values) > 1e-3].ravel(), bins=50, color="C1", log=True)
axes[1, -1].set(title="$d_x$ where $|d_x|$ > 0.001 px", xlabel="px", ylabel="pixels")
fig.savefig(out / "dataset_examples.png", dpi=100, bbox_inches="tight")

# %% [markdown]
# ## Summary

# %%
with open(out / "summary.json", "w") as fh:
    json.dump(summary, fh, indent=1)
print(json.dumps(summary, indent=1))
