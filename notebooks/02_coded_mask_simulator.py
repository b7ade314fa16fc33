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
# # 02 · The simulator: speckle, samples and training data
#
# SPINNet learns from simulated pairs, since measured ones come without ground truth; what the
# network can handle is bounded by what the simulator can make. This notebook takes
# `spinnet_lite.simulate_pair` apart (seed section 2.3), lets you move its parameters with
# sliders, shows the options that bring it closer to real beamlines (other speckle makers, low
# visibility, flat-field drift, noise, smooth and large displacement fields), and generates a
# small labelled data set with `xarray`.
#
# **You will learn to**
# * build the seed's random phantom (texture × contour) and follow it through `simulate_pair`;
# * switch the speckle generator between a coded mask (any pitch, even fractional) and a
#   random diffuser, and measure the contrast and grain size you get;
# * add what real data have: lower visibility, a drifting flat field, photon noise;
# * choose the displacement field (random, blobs, lens-like, uniform) and its size;
# * stack many pairs into one labelled `xarray` data set and save it.
#
# **Prerequisites:** notebooks 00 and 01 (Fresnel propagation, Eq. 1, `Geometry`); a little
# `xarray` helps.
#
# **Run time:** under a minute on a laptop CPU in the default mode (measured numbers in
# `docs/workshop.md`; the last cell prints this run's).
#
# > **Seed vs this project.**
# > * As in the seed (section 2.3): the coded-mask field $(A_0 + t_0(1-R))\,e^{i\phi_0 R}$,
# >   Fresnel propagation, a small detector blur, and the random phantoms: smooth texture ×
# >   closed Bézier contour, $V_\phi \in [\pi, 20\pi]$, $V_T \in [0.02, 0.2]$, 40 % sharing
# >   the phase's texture.
# > * Changed here: the random phantoms are simulated at `Geometry.training()`, the seed's
# >   0.06 nm but a 60 mm sample-to-detector distance instead of 300 mm, so that their
# >   displacements stay within a few pixels; the detector blur (0.6 px) is this project's
# >   choice.
# > * Added by this project, so that the network meets real data (issue 8): the wave computed on
# >   a grid finer than the pixel and binned (notebook 01), fractional mask pitches, random
# >   diffusers, a visibility setting, flat-field drift, Poisson noise, smooth phantoms (blobs,
# >   quadratic, uniform, the lens) scaled by `max_shift_px`, absorbing texture in $T$, and
# >   separate random streams for the speckle, the sample and the noise.

# %% tags=["parameters"]
QUICK = False  # True: small images, a tiny data set (the tests run this)
SIZE = 256  # image size of the simulator views, px
N_PAIRS = 32  # pairs in the generated data set
PAIR_SIZE = 128  # image size of the data set's pairs, px
PITCHES = [3.08, 4, 5, 7.7]  # mask pitches drawn for the data set, px (3.08 and 7.7: 2 and 5 um cells)
PHOTONS = 0  # photons per pixel for the data set, 0 means noiseless
SEED = 0
OUTPUT_DIR = "../output/02"

# %%
if QUICK:  # every code path still runs, on less data
    SIZE, N_PAIRS, PAIR_SIZE = 128, 4, 64

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from IPython.display import display
from scipy import ndimage

import spinnet_lite
from spinnet_lite import Geometry, nbtools, phantoms, plots
from spinnet_lite.io import write_dataset
from spinnet_lite.metrics import grain_size_px, speckle_contrast
from spinnet_lite.widgets import DEFAULTS, simulator_view, simulator_widget

lesson = nbtools.Lesson(OUTPUT_DIR, quick=QUICK, size=SIZE, seed=SEED)
training = Geometry.training()
print(f"training set-up: lambda = {training.wavelength_m * 1e9:.3f} nm ({training.energy_kev:.2f} keV), "
      f"p = {training.pixel_size_um} um, mask {training.mask_detector_mm:g} mm and sample "
      f"{training.sample_detector_mm:g} mm from the detector, {training.shift_per_gradient:.3f} px per rad/px")

# %% [markdown]
# ## 1 · What one call does
#
# 1. **Reference**: a speckle generator (a coded mask of `pitch` pixels, or a diffuser) makes
#    a field on a grid finer than the pixel; it is Fresnel-propagated over the mask-to-detector
#    distance, and its intensity blurred by the detector (a Gaussian of `blur_px` pixels, on
#    the fine grid: in a scintillator the light spreads before the pixels collect it) and
#    binned to pixels (notebook 01).
# 2. **Sample**: a phase $\phi$ and a transmission $T$: by default the seed's random phantom,
#    $\phi = -V_\phi\,\mathrm{tex}\cdot\mathrm{contour}$ and
#    $T = 1 - V_T\,\mathrm{tex}'\cdot\mathrm{contour}$.
# 3. **Displacements** from the phase gradient: $d = \frac{\lambda z}{2\pi p^2}\nabla\phi$ (px).
# 4. **Eq. 1**: $I_s = T\cdot I_r(y - d_y, x - d_x)$ (the default, `forward="eq1"`, as in the
#    seed's training data; applied on the fine grid, before the detector's blur and pixels), or `forward="wave"`: the wave propagated through the mask and the
#    sample in their order along the beam, which keeps what Eq. 1 leaves out (notebook 01).
# 5. **Detector** (optional): flat-field drift, lower visibility, Poisson noise with $N$ photons
#    per pixel at unit intensity, $I \to \mathrm{Poisson}(N I)/N$.
#
# ## 2 · The sample: texture times contour
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
mismatch = lesson.expect("phantom_product_mismatch",
                         float(np.abs(phase + DEFAULTS["phase_amplitude"] * texture * contour).max()), high=1e-9)
print(f"max |phase - (-V_phi * texture * contour)| = {mismatch:.1e} rad")
print(f"phase range [{phase.min():.2f}, {phase.max():.2f}] rad, transmission range "
      f"[{transmission.min():.3f}, {transmission.max():.3f}], sample area {support.mean():.0%} of the image")
fig, axes = plt.subplots(1, 4, figsize=(17, 3.8), layout="constrained")
for ax, img, title, cmap in [
    (axes[0], contour, f"Bézier contour (edge sigma {ranges.edge_sigma_px:g} px)", "gray"),
    (axes[1], texture, f"smooth texture (sigma {sigma:.1f} px)", "magma"),
    (axes[2], phase, f"phase [rad], $V_\\phi$ = {DEFAULTS['phase_amplitude']:g} rad", "viridis"),
    (axes[3], transmission, "transmission $T$", "viridis"),
]:
    im = plots.show_map(ax, img, cmap, title=title, pixel_size_um=training.pixel_size_um)
    fig.colorbar(im, ax=ax, shrink=0.85)
lesson.savefig(fig, "phantom_parts.png")

# %% [markdown]
# ## 3 · One simulated pair
#
# `spinnet_lite.widgets.simulator_view` builds a `Geometry` from the energy and the mask
# distance, calls `simulate_pair` with the other parameters and draws the five images: the
# reference, the sample, the two displacement components and the transmission. It is a plain
# function, called here once with its defaults (the sliders below call the same function).

# %%
fig = simulator_view(size=SIZE, seed=SEED)
lesson.savefig(fig, "simulator_default.png")
ds = fig.dataset
ref = ds.reference.values
print(f"reference: mean {ref.mean():.3f}, contrast std/mean {ref.std() / ref.mean():.3f}")
print(f"max |d| = {float(np.hypot(ds.dx, ds.dy).max()):.2f} px, transmission min {float(ds.transmission.min()):.3f}")
lesson.record(view_max_displacement_px=float(np.hypot(ds.dx, ds.dy).max()),
              view_reference_contrast=float(ref.std() / ref.mean()), view_reference_mean=float(ref.mean()))
fig

# %% [markdown]
# > **Think.** The reference's mean intensity is printed above. Why is it not 1, the incident
# > intensity? (Hint: what fraction of the mask is gold, and what does gold let through?)
#
# ### Noise
#
# With $N$ photons per pixel at unit intensity, a pixel of intensity $I$ counts $NI$ photons
# on average, with a Poisson spread of $\sqrt{NI}$: a noise of $\sqrt{I/N}$ in intensity units.
# The speckle must stand well above it for tracking. The same call with a coarser mask and
# 1000 photons per pixel:

# %%
photons = 1000.0
fig = simulator_view(size=SIZE, seed=SEED, pitch=6, photons=photons)
lesson.savefig(fig, "simulator_noisy.png")
clean = simulator_view(size=SIZE, seed=SEED, pitch=6, photons=0).dataset
noise = float((fig.dataset.reference - clean.reference).std())
expected = float(np.sqrt(clean.reference.mean() / photons))
print(f"reference noise rms {noise:.4f} (expected sqrt(<I>/N) = {expected:.4f}); "
      f"speckle rms {float(clean.reference.std()):.3f}")
lesson.record(noise_rms=noise, noise_rms_expected=expected)
fig

# %% [markdown]
# ## Explore with sliders
#
# `simulator_widget()` puts sliders for `simulator_view`'s parameters above its figure: mask pitch,
# mask-to-detector distance, energy, mask phase $\phi_0$, detector blur, photons per pixel
# (tick *noiseless* to switch noise off), the sample's phase amplitude $V_\phi$ and the seed.
# The image redraws when a slider is released. Things to try: mask phase 0 (an amplitude-only
# mask: low contrast), distance 0 (the mask itself), a large blur (the grains wash out), few
# photons, a large $V_\phi$ (displacements of many pixels).
#
# The sliders need a running kernel: in a static rendering (papermill, nbconvert, GitHub)
# they and the figure below them do not show; the figures above are the same view, drawn with
# the starting values.

# %%
widget = simulator_widget(size=SIZE, seed=SEED)
display(widget)

# %% [markdown]
# ## 4 · Speckle generators: coded masks and diffusers
#
# A coded mask is one way to make speckle; users also have random **diffusers**: a membrane, a
# sheet of sandpaper, a stack of filter paper. These are random phase screens (with a little
# absorption): their speckle has no cell structure, a grain of a few pixels (the training
# draws 1.5–6 px, 1–6 px from the ninth segment on), and often a low visibility.
# `simulate_pair` makes both:
#
# * `speckle="mask"` with any `pitch`, fractional too: the seed's 2 µm and 5 µm features at
#   0.65 µm pixels are pitches of 3.08 and 7.7 px, and the mask is drawn on the fine grid;
# * `speckle="diffuser"` with a grain `grain_px` (the correlation length of the random phase,
#   in pixels) and a phase rms `diffuser_phase_rms`.
#
# The references below use one seed, so only the generator changes. Each panel is titled with
# the contrast and the grain size that `spinnet_lite.metrics` measures.

# %%
generators = {"mask, pitch 3.08 px (2 um)": dict(pitch=3.08), "mask, pitch 4 px": dict(pitch=4),
              "mask, pitch 7.7 px (5 um)": dict(pitch=7.7),
              "diffuser, grain 1.5 px": dict(speckle="diffuser", grain_px=1.5),
              "diffuser, grain 3 px": dict(speckle="diffuser", grain_px=3.0),
              "diffuser, grain 6 px": dict(speckle="diffuser", grain_px=6.0)}
references = {name: spinnet_lite.simulate_pair(SIZE, seed=SEED, **options).reference
              for name, options in generators.items()}
stats = {name: dict(contrast=speckle_contrast(r.values), grain_px=grain_size_px(r.values))
         for name, r in references.items()}
for name, st in stats.items():
    print(f"{name:>28}: contrast {st['contrast']:.3f}, grain size {st['grain_px']:.2f} px")
lesson.record(speckle_generators=stats)

crop = slice(0, min(64, SIZE))
lo, hi = plots.shared_limits([r.values[crop, crop] for r in references.values()], percentile=99.5)
fig, axes = plt.subplots(1, len(references), figsize=(3.1 * len(references), 3.6), layout="constrained")
for ax, (name, r) in zip(axes, references.items()):
    im = plots.show_map(ax, r.values[crop, crop], "gray", lo, hi, pixel_size_um=training.pixel_size_um,
                        title=f"{name}\nC = {stats[name]['contrast']:.2f}, grain {stats[name]['grain_px']:.1f} px")
fig.colorbar(im, ax=axes, shrink=0.8, label="intensity (one scale for all)")
lesson.savefig(fig, "speckle_generators.png")

# %% [markdown]
# > **Think.** The diffuser's measured grain follows `grain_px`, and its contrast changes with
# > it (both printed above). The coarsest diffuser shows thin bright lines: what are they?
# > (Hint: a random phase screen is a field of weak random lenses; where does each focus?)
# > And why does the finest one lose contrast? (Notebook 01: what does a pixel do to
# > features smaller than itself?)
#
# ## 5 · What real detectors add: visibility, flat-field drift, noise
#
# Real speckle is rarely as crisp as a simulated mask at 300 mm. Three options make it less so:
#
# * `visibility=v` lowers the reference's rms contrast (std/mean) to $v$ about its mean, as a
#   large source, a blurred detector or a thin diffuser would; a few % is common for
#   membranes;
# * `flat_field=a` multiplies the sample image by a smooth illumination change $1 + a f$,
#   $|f| \le 1$, between the two exposures (beam drift); it is part of the returned
#   `transmission`, the sample/reference intensity ratio apart from the speckle;
# * `photons=N`: Poisson noise, as above.
#
# The profiles below show the same row of the reference at several visibilities, and, for a
# pair with drift but nothing that moves the speckle (`phantom="uniform"`, `max_shift_px=0`),
# the sample/reference ratio: the drift alone.

# %%
visibilities = [None, 0.2, 0.05]
vis_pairs = {v: spinnet_lite.simulate_pair(SIZE, seed=SEED, visibility=v) for v in visibilities}
drift = spinnet_lite.simulate_pair(SIZE, seed=SEED, phantom="uniform", max_shift_px=0.0, flat_field=0.05)
for v, p in vis_pairs.items():
    print(f"visibility={v}: measured std/mean of the reference {speckle_contrast(p.reference.values):.3f}")
print(f"flat_field=0.05: transmission range [{float(drift.transmission.min()):.3f}, {float(drift.transmission.max()):.3f}]")
lesson.record(visibility_measured={str(v): speckle_contrast(p.reference.values) for v, p in vis_pairs.items()},
              flat_field_transmission_range=[float(drift.transmission.min()), float(drift.transmission.max())])

row = SIZE // 2
x_um = vis_pairs[None].x.values
fig, axes = plt.subplots(1, 3, figsize=(16, 3.8), layout="constrained")
for v, p in vis_pairs.items():
    axes[0].plot(x_um[:96], p.reference.values[row, :96], label=f"visibility {v or 'as simulated'}")
axes[0].set(title="reference along one row", xlabel="x [µm]", ylabel="intensity")
axes[0].legend(fontsize=8)
im = plots.show_map(axes[1], drift.sample / drift.reference, "viridis", title="sample / reference, flat_field=0.05",
                    pixel_size_um=training.pixel_size_um)
fig.colorbar(im, ax=axes[1], shrink=0.85)
ratio = drift.sample / drift.reference
axes[2].plot(x_um, ratio.values[row], lw=3, color="0.7", label="sample / reference")
axes[2].plot(x_um, drift.transmission.values[row], "C3--", label="returned transmission")
axes[2].set(title="one row: the drift is in the returned T", xlabel="x [µm]")
axes[2].legend(fontsize=8)
lesson.savefig(fig, "detector_effects.png")

# %% [markdown]
# ## 6 · Displacement fields: phantoms and their size
#
# The seed's random phantoms give displacements concentrated at the contour's edges. Real
# samples also bend the beam smoothly over wide areas (a lens, a bubble, a tilted plate), and
# a network must have seen such fields to follow them. `phantom=` picks the sample:
#
# * `"random"`: the seed's texture × contour;
# * `"blobs"`: a few smooth Gaussian bumps and dips;
# * `"quadratic"`: a random lens, cylinder lens or saddle, off centre; with `aperture=a` (the
#   share of the frame inside it) the phase is held at its edge value beyond the aperture, as a
#   real lens is as thick as its rim there: the displacement drops to 0 across a rim a few pixels
#   wide (`rim_sigma_px`), the step that the seed's lens shows at its rim;
# * `"lens"`: the seed's beryllium lens (in its own `Geometry()`);
# * `"uniform"`: one uniform shift everywhere.
#
# `max_shift_px` scales the phase so that the largest displacement is exactly that many pixels
# (`"uniform"` needs it), and `texture` adds absorbing structure to $T$ that is not speckle.

# %%
MAX_SHIFT = 4.0
fields = {name: spinnet_lite.simulate_pair(SIZE, seed=SEED, phantom=name, max_shift_px=MAX_SHIFT)
          for name in ("random", "blobs", "quadratic", "lens", "uniform")}
fields["quadratic, aperture=0.6"] = spinnet_lite.simulate_pair(SIZE, seed=SEED, phantom="quadratic", aperture=0.6,
                                                               max_shift_px=MAX_SHIFT)
textured = spinnet_lite.simulate_pair(SIZE, seed=SEED, texture=1.0)
largest = {name: float(np.hypot(p.dx, p.dy).max()) for name, p in fields.items()}
for name, d in largest.items():
    print(f"{name:>9}: largest |d| = {d:.3f} px (asked for {MAX_SHIFT:g})")
print(f"texture=1.0: transmission down to {float(textured.transmission.min()):.3f} "
      f"(without: {float(fields['random'].transmission.min()):.3f})")
lesson.record(max_shift_asked_px=MAX_SHIFT, max_shift_by_phantom=largest,
              texture_min_transmission=float(textured.transmission.min()))

fig, axes = plt.subplots(2, len(fields) + 1, figsize=(3.2 * (len(fields) + 1), 6.6), layout="constrained")
for j, (name, p) in enumerate(fields.items()):
    label = f'"{name}"'.replace(', ', '", ')  # phantom="quadratic", aperture=0.6
    im = plots.show_map(axes[0, j], p.dx, "RdBu_r", -MAX_SHIFT, MAX_SHIFT, title=f"phantom={label}: $d_x$",
                        pixel_size_um=training.pixel_size_um)
    plots.show_map(axes[1, j], np.hypot(p.dx, p.dy), "magma", 0, MAX_SHIFT, title="|d| [px]",
                   pixel_size_um=training.pixel_size_um)
fig.colorbar(im, ax=axes[0, :-1], shrink=0.8, label="$d_x$ [px] (one scale)")
im = plots.show_map(axes[0, -1], textured.transmission, "viridis", 0, 1, title="T with texture=1.0",
                    pixel_size_um=training.pixel_size_um)
fig.colorbar(im, ax=axes[0, -1], shrink=0.8)
plots.show_map(axes[1, -1], textured.sample, "gray", title="its sample image", pixel_size_um=training.pixel_size_um)
lesson.savefig(fig, "displacement_phantoms.png")

# %% [markdown]
# > **Try this.** Simulate `phantom="uniform"` with `max_shift_px=0.5` and with `8`, and
# > compare the sample images with the reference. At which size can you see the shift by eye?

# %% [markdown]
# ## 7 · A small labelled data set
#
# Pairs for training or testing are stacked along a new `pair` dimension with `xr.concat`;
# each pair keeps its `(y, x)` coordinates in micrometres and its units, and its seed, mask
# pitch, speckle generator and photon count become coordinates along `pair`. The set-up
# (`geometry_*` attributes) is common to all pairs. The file is netCDF-4 (`h5netcdf`), written
# by `spinnet_lite.io.write_dataset` (atomically: an interrupted run leaves no half file).

# %%
pick = np.random.default_rng([SEED, 2])
pairs = []
for i in range(N_PAIRS):
    pitch = float(pick.choice(PITCHES))
    speckle = "mask" if i % 2 == 0 else "diffuser"  # every other pair through a diffuser
    pair = spinnet_lite.simulate_pair(PAIR_SIZE, pitch=pitch, seed=SEED + i, phantom="random", speckle=speckle,
                                      photons=PHOTONS or None)
    pairs.append(pair.expand_dims(pair=[i]).assign_coords(
        seed=("pair", [SEED + i]), pitch_px=("pair", [pitch]), speckle=("pair", [speckle]),
        photons_per_px=("pair", [float(PHOTONS)])))
dataset = xr.concat(pairs, dim="pair", combine_attrs="drop_conflicts")
dataset["max_displacement"] = np.hypot(dataset.dx, dataset.dy).max(("y", "x"))
dataset["max_displacement"].attrs.update(units="px", long_name="largest |displacement| of the pair")
dataset.attrs["title"] = "spinnet_lite simulated random-phantom pairs"
path = write_dataset(dataset, lesson.path("simulated_pairs.nc"), overwrite=True)
print(f"wrote {path.name} ({path.stat().st_size / 1e6:.1f} MB)")

with xr.open_dataset(path, engine="h5netcdf") as saved:
    print(saved)
    dims = dict(saved.sizes)
    dx_range = [float(saved.dx.min()), float(saved.dx.max())]
    dmax = saved.max_displacement.values
print(f"dx in [{dx_range[0]:.2f}, {dx_range[1]:.2f}] px; per-pair largest |d|: min {dmax.min():.2f}, "
      f"median {np.median(dmax):.2f}, max {dmax.max():.2f} px")
lesson.record(n_pairs=N_PAIRS, dataset_file=path.name, dataset_dims=dims, dx_range_px=dx_range,
              max_displacement_px=[float(dmax.min()), float(np.median(dmax)), float(dmax.max())])

# %% [markdown]
# A few pairs of the set (sample image and $d_x$, labelled by xarray from the attributes) and
# the distribution of each pair's largest displacement: the range the network has to cover.

# %%
show = min(4, N_PAIRS)
fig, axes = plt.subplots(2, show + 1, figsize=(3.6 * (show + 1), 6.4), layout="constrained", squeeze=False)
dlim = float(np.abs(dataset.dx.isel(pair=slice(0, show))).max())
for j in range(show):
    dataset.sample.isel(pair=j).plot.imshow(ax=axes[0, j], cmap="gray", yincrease=False)
    axes[0, j].set_title(f"pair {j}: sample ({str(dataset.speckle.values[j])}, pitch {float(dataset.pitch_px[j]):g})",
                         fontsize=9)
    dataset.dx.isel(pair=j).plot.imshow(ax=axes[1, j], cmap="RdBu_r", vmin=-dlim, vmax=dlim, yincrease=False)
    axes[1, j].set_title(f"pair {j}: $d_x$ (one scale)", fontsize=9)
axes[0, -1].hist(dataset.max_displacement.values, bins=max(5, N_PAIRS // 3), color="C0")
axes[0, -1].set(title="largest |d| per pair", xlabel="px", ylabel="pairs")
axes[1, -1].hist(dataset.dx.values[np.abs(dataset.dx.values) > 1e-3].ravel(), bins=50, color="C1", log=True)
axes[1, -1].set(title="$d_x$ where $|d_x|$ > 0.001 px", xlabel="px", ylabel="pixels")
lesson.savefig(fig, "dataset_examples.png")

# %% [markdown]
# ## Exercises
#
# Replace `None` by your answer and run the cell; the check says whether it is right.
# Solutions are one click away: try first.
#
# **Exercise 02.1 · Enough photons.** How many photons per pixel give a noise of 1 % at unit
# intensity (rms 0.01 where $I = 1$)? The check simulates the default view with your photon
# count and measures the noise, referred to unit intensity.

# %%
def noise_at_unit_intensity(photons):
    """rms of (noisy - noiseless) default reference at this photon count, divided by sqrt(<I>)."""
    clean = simulator_view(size=SIZE, seed=SEED, photons=0).dataset.reference
    noisy = simulator_view(size=SIZE, seed=SEED, photons=photons).dataset.reference
    return float((noisy - clean).std() / np.sqrt(clean.mean()))


answer_02_1 = None  # photons per pixel
lesson.check_exercise("02.1", answer_02_1, expected=0.01, measure=noise_at_unit_intensity, rtol=0.1,
                      hint="noise = sqrt(I / N); solve for N at I = 1")

# %% [markdown]
# <details><summary>Solution</summary>
#
# $\sqrt{1/N} = 0.01$ gives $N = 1/0.01^2$:
#
# ```python
# answer_02_1 = 1 / 0.01**2
# lesson.check_exercise("02.1", answer_02_1, expected=0.01, measure=noise_at_unit_intensity, rtol=0.1)
# ```
# </details>
#
# **Exercise 02.2 · Phase amplitude for a 3 px sample.** In the default view the phantom's
# peak phase is `DEFAULTS["phase_amplitude"]` and its largest displacement is printed in
# section 3. Displacement is linear in phase. Which `phase_amplitude` makes the largest
# displacement of the same phantom 3 px? The check draws the view with it.

# %%
def largest_shift(phase_amplitude):
    """Largest |d| (px) of the default view's phantom drawn with this phase amplitude."""
    view = simulator_view(size=SIZE, seed=SEED, phase_amplitude=phase_amplitude).dataset
    return float(np.hypot(view.dx, view.dy).max())


answer_02_2 = None  # rad
lesson.check_exercise("02.2", answer_02_2, expected=3.0, measure=largest_shift, rtol=0.02,
                      hint="scale the default amplitude by 3 / (its largest displacement)")

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# answer_02_2 = DEFAULTS["phase_amplitude"] * 3.0 / float(np.hypot(ds.dx, ds.dy).max())
# lesson.check_exercise("02.2", answer_02_2, expected=3.0, measure=largest_shift, rtol=0.02)
# ```
# (`max_shift_px=3` in `simulate_pair` does this scaling for you.)
# </details>
#
# **Exercise 02.3 · A faint diffuser.** A membrane gives speckle of 5 % visibility. How many
# photons per pixel make the speckle's rms 5 times the noise rms (take the mean intensity as 1)?
# The check simulates a diffuser pair with `visibility=0.05` and your photon count and
# measures the ratio.

# %%
def speckle_to_noise(photons):
    """rms of the speckle over rms of the noise, 5 %-visibility diffuser reference."""
    kw = dict(seed=SEED, speckle="diffuser", visibility=0.05)
    clean = spinnet_lite.simulate_pair(SIZE, **kw).reference
    noisy = spinnet_lite.simulate_pair(SIZE, photons=photons, **kw).reference
    return float(clean.std() / (noisy - clean).std())


answer_02_3 = None  # photons per pixel
lesson.check_exercise("02.3", answer_02_3, expected=5.0, measure=speckle_to_noise, rtol=0.1,
                      hint="speckle rms = 0.05, noise rms = 1 / sqrt(N)")

# %% [markdown]
# <details><summary>Solution</summary>
#
# Speckle rms $0.05$, noise rms $1/\sqrt N$: $0.05\sqrt N = 5$ gives $N = (5/0.05)^2$.
#
# ```python
# answer_02_3 = (5 / 0.05) ** 2
# lesson.check_exercise("02.3", answer_02_3, expected=5.0, measure=speckle_to_noise, rtol=0.1)
# ```
# Ten thousand photons per pixel just to see the pattern five times above the noise: low
# visibility is expensive.
# </details>
#
# **Exercise 02.4 · Select with xarray.** Using `dataset`, give the median over the
# *diffuser* pairs of their largest displacement (`max_displacement`). One line with
# `dataset.where(...)` or `dataset.sel(...)` does it.

# %%
answer_02_4 = None  # px
lesson.check_exercise("02.4", answer_02_4, expected=float(np.median([np.hypot(p.dx, p.dy).max() for p in pairs
                                                                    if str(p.speckle.values[0]) == "diffuser"])),
                      rtol=1e-4, hint="dataset.max_displacement.where(dataset.speckle == 'diffuser', drop=True)")

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# answer_02_4 = float(dataset.max_displacement.where(dataset.speckle == "diffuser", drop=True).median())
# lesson.check_exercise("02.4", answer_02_4, expected=float(np.median([np.hypot(p.dx, p.dy).max() for p in pairs
#                                                                     if str(p.speckle.values[0]) == "diffuser"])),
#                       rtol=1e-4)
# ```
# </details>

# %% [markdown]
# ## What we learned
#
# * `simulate_pair` is the seed's recipe (mask → propagation → Eq. 1 with a texture × contour
#   phantom) plus options that bring it closer to real data.
# * The speckle generator sets contrast and grain: masks of any pitch, and diffusers whose
#   grain follows `grain_px`; the metrics of notebook 01 measure both.
# * Real detectors add low visibility, flat-field drift and photon noise; the noise is
#   $\sqrt{I/N}$, so a faint speckle needs many photons.
# * The displacement field is a choice, and its size is set directly with `max_shift_px`:
#   what the network is trained on decides what it can follow.
# * `xarray` keeps many pairs, their coordinates and their labels together, and netCDF stores
#   them.
#
# Next, notebook 03 builds the network that reads these pairs.

# %%
lesson.finish()
