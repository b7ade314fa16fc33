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
# # 06 · A bug in speckle tomography
#
# The seed's second experiment (sections 3.2.2–3.2.3, Figs. 7–8) images a small insect with
# the coded mask: one projection first, then a full tomographic scan. Every projection becomes
# phase and transmission, and filtered back-projection turns the sinograms into slices of the
# refractive index. In this notebook you run that whole pipeline on a simulated beetle whose
# true slices are known, so every step can be checked, and you run it on a `dask` cluster the
# way a beamline would.
#
# **Learning objectives.** After this notebook you can
#
# 1. simulate a tomographic speckle scan and say how large its speckle displacements are;
# 2. compare two methods without ground truth, by their noise where there is no sample;
# 3. turn a stack of projections into sinograms and slices of $\delta$ and $\beta$ by
#    filtered back-projection, and judge the slices against the phantom;
# 4. run the per-projection work in parallel with `xarray` + `dask`, locally or on a cluster.
#
# **Prerequisites:** notebook 05 (`reconstruct` with a geometry); the idea of a projection
# (a line integral); numpy and xarray basics.
#
# **Run time** (measured on a busy 2-core CPU): about 2-3 minutes in the default mode (120
# projections, both methods), under a minute with `QUICK = True`. Peak memory stays under
# 1.5 GB (Binder gives 2 GB).

# %% [markdown]
# <div style="border: 1px solid #888; border-radius: 6px; padding: 0.6em 1em; background: #f6f6f6">
#
# **Seed vs this project: the bug.**
#
# * **Sample** — the seed scanned a real insect; its data are not public. Here a beetle-like
#   phantom of ellipsoids (`spinnet_lite.phantoms.bug_parts`: tissue and denser cuticle) is
#   projected exactly at every angle. Where two parts overlap, the overlap is one material
#   (the denser), in the projections and in the voxel truth alike.
# * **Geometry** — the seed's 628 mm sample-to-detector distance. The seed does not give the
#   mask distance; here the mask is further upstream (`MASK_MM`), in the seed's order source
#   → mask → sample → detector. Energy and pixel size are taken from the lens experiment
#   (14 keV, 0.65 µm): a project assumption.
# * **Scan** — `N_ANGLES` projections over 180° (a parameter), one shared reference, Poisson
#   noise. The forward model is Eq. 1 (no edge fringes, no dark-field).
# * **Reconstruction** — the project's `lite` network and XST on every projection, phase by
#   Frankot–Chellappa integration, FBP by ASTRA or scikit-image (ramp filter), and the
#   `xarray`/`dask` parallelism: all the project's choices.
# </div>

# %% tags=["parameters"]
QUICK = False  # True: small images, few angles (the tests run this)
SIZE = 128  # projection size, px
N_ANGLES = 120  # projections over 180 degrees
PHOTONS = 20000  # Poisson noise: photons per pixel of unit intensity
SAMPLE_MM = 628.0  # sample-to-detector distance: the seed's bug experiment
MASK_MM = 900.0  # mask-to-detector distance (> SAMPLE_MM: the mask is upstream of the sample; the project's assumption)
CHUNKS = 8  # angles per dask task
SLICE_Y = -0.13  # the slice shown, as a fraction of the field of view from the centre (the thorax and legs)
SEED = 0
OUTPUT_DIR = "../output/06"

# %%
if QUICK:  # every code path still runs, on less data
    SIZE, N_ANGLES, CHUNKS = 64, 24, 6

# %%
# %matplotlib inline
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from skimage.measure import marching_cubes

from spinnet_lite import Geometry, load_pretrained, nbtools, plots, reconstruct, tomo
from spinnet_lite.metrics import background_noise, background_region

lesson = nbtools.Lesson(OUTPUT_DIR, quick=QUICK, size=SIZE, n_angles=N_ANGLES, photons=PHOTONS, seed=SEED,
                        fbp_backend="astra" if tomo.astra_available() else "skimage")
model = load_pretrained()
geom = Geometry(sample_detector_mm=SAMPLE_MM, mask_detector_mm=MASK_MM)
lesson.record(model_config=model.config.name, sample_detector_mm=geom.sample_detector_mm,
              mask_upstream=geom.mask_upstream, effective_distance_mm=geom.effective_distance_mm)
print(f"SPINNet config {model.config.name!r}; FBP backend: {lesson['fbp_backend']}")
print(f"geometry: {geom.energy_kev:g} keV, {geom.pixel_size_um} um pixels, sample {geom.sample_detector_mm:g} mm and mask "
      f"{geom.mask_detector_mm:g} mm from the detector; mask upstream: {geom.mask_upstream}; the displacement-phase "
      f"conversion uses z = {geom.effective_distance_mm:g} mm")

# %% [markdown]
# ## 1 · The bug and its projections
#
# The bug is a list of ellipsoids: head, thorax, abdomen segments and wing cases, six legs,
# two antennae and eyes, each of tissue or cuticle with its own $\delta$ and $\beta$. Rotating
# it by an angle $a$ about the vertical axis $y$ and integrating along the beam gives the
# projected phase and transmission,
#
# $$ \phi_a(x, y) = -k \int \delta\,dz, \qquad T_a(x, y) = \exp\!\left(-2k \int \beta\,dz\right), $$
#
# computed exactly (the chord through each ellipsoid). `tomo.simulate_projections` does this
# for `N_ANGLES` angles over 180° and puts each projection through the forward model with one
# shared reference: the `sample` stack is `(angle, y, x)`.

# %%
t0 = time.perf_counter()
ds = tomo.simulate_projections(N_ANGLES, SIZE, geometry=geom, photons=PHOTONS, seed=SEED)
sim_time = time.perf_counter() - t0
d_all = np.hypot(ds.dx.values, ds.dy.values)
d_max, d_99 = float(d_all.max()), float(np.percentile(d_all[ds.support.values > 0], 99))
lesson.record(simulate_time_s=sim_time, max_displacement_px=d_max, displacement_p99_px=d_99)
print(f"{N_ANGLES} projections of {SIZE} x {SIZE} px in {sim_time:.1f} s; phase min {float(ds.phase.min()):.2f} rad, "
      f"transmission min {float(ds.transmission.min()):.4f}")
print(f"displacements: largest {d_max:.2f} px, 99 % of the bug's pixels below {d_99:.2f} px")

# %% [markdown]
# **Mind the displacement.** The bug's edges move the speckle by **several pixels** (the
# largest value is printed above): at 628 mm, a strong edge is a steep phase gradient, and the
# shift grows with the distance. Those pixels are where both methods work hardest: XST
# searches a limited range (±6 px by default) and the network is only as good as the range of
# displacements it was trained on (notebook 07 measures its error against the displacement).

# %%
i90 = int(np.argmin(np.abs(ds.angle.values - 90)))
fig, axes = plt.subplots(2, 4, figsize=(17, 8), layout="constrained")
limits = {"phase": plots.shared_limits([ds.phase]), "transmission": plots.shared_limits([ds.transmission]),
          "d": (0, d_max)}
for row, i in enumerate((0, i90)):
    a = float(ds.angle[i])
    for ax, (img, title, cmap, lim) in zip(axes[row], [
            (ds.sample[i], f"sample image, {a:.0f}°", "gray", (None, None)),
            (ds.phase[i], f"phase [rad], {a:.0f}°", "viridis", limits["phase"]),
            (ds.transmission[i], f"transmission, {a:.0f}°", "gray", limits["transmission"]),
            (np.hypot(ds.dx[i], ds.dy[i]), f"|d| [px] and the field, {a:.0f}°", "magma", limits["d"])]):
        im = plots.show_map(ax, img, cmap, *lim, title=title, pixel_size_um=geom.pixel_size_um)
        fig.colorbar(im, ax=ax, shrink=0.8)
    plots.quiver_field(axes[row, 3], ds.dx[i], ds.dy[i], color="c")
lesson.savefig(fig, "bug_projections.png")

# %% [markdown]
# > **Think!** The transmission stays within a fraction of a percent of 1 while the phase
# > reaches a radian or more. What does that say about absorption contrast for soft samples
# > at 14 keV, and why does phase contrast pay off here?
#
# ## 2 · One projection: SPINNet and XST
#
# The projection at 0° through both methods. In a real experiment there is no ground truth,
# so the seed compares the **noise** of the methods where there is no sample:
# `metrics.background_noise` is the spread of $d_x$, $d_y$ over the sample-free region (the
# support eroded by 3 px), in pixels. Here we also have the truth, so the error maps sit
# beside the maps, on one scale for both methods.

# %%
one, times = {}, {}
for method in ("spinnet", "xst"):
    t0 = time.perf_counter()
    one[method] = reconstruct(ds.reference, ds.sample[0], method=method, model=model if method == "spinnet" else None,
                              geometry=geom)
    times[method] = time.perf_counter() - t0
support0 = ds.support[0].values
truth0 = ds.isel(angle=0)
noise = {m: background_noise(r, support0) for m, r in one.items()}
err = {m: float(np.sqrt(np.mean((r.dx - truth0.dx) ** 2 + (r.dy - truth0.dy) ** 2))) for m, r in one.items()}
lesson.record(noise_px=noise, noise_ratio_spinnet_to_xst=noise["spinnet"] / noise["xst"],
              projection_displacement_rmse_px=err, projection_time_s=times)
display(pd.DataFrame({"background noise [px]": noise, "displacement rmse [px]": err, "time [s]": times}).round(4))
print(f"background noise: SPINNet {noise['spinnet']:.4f} px, XST {noise['xst']:.4f} px: "
      f"SPINNet's is {noise['spinnet'] / noise['xst']:.2f}x XST's")

# %%
phase_mean = lambda p: np.asarray(p) - float(np.mean(p))  # noqa: E731 - a phase is known up to a constant
truth_maps = {"dx": truth0.dx.values, "dy": truth0.dy.values, "transmission": truth0.transmission.values,
              "phase": phase_mean(truth0.phase)}
method_maps = {f"{name}\nnoise {noise[m]:.3f} px": {"dx": one[m].dx.values, "dy": one[m].dy.values,
                                                     "transmission": one[m].transmission.values,
                                                     "phase": phase_mean(one[m].phase)}
               for name, m in (("SPINNet", "spinnet"), ("XST", "xst"))}
fig = plots.compare_maps(truth_maps, method_maps, [("dx", "$d_x$ [px]", "RdBu_r"), ("dy", "$d_y$ [px]", "RdBu_r"),
                                                   ("transmission", "transmission", "gray"),
                                                   ("phase", "phase [rad]", "viridis")],
                         pixel_size_um=geom.pixel_size_um)
fig.suptitle("Projection at 0°: truth, both methods and their errors (one scale per column)")
lesson.savefig(fig, "projection_comparison.png")

# %% [markdown]
# > **Think!** Background noise and error against the truth need not agree. Which of the two
# > could you measure on your own beamline data, and what would it miss?
#
# ## 3 · The whole stack, in parallel
#
# `tomo.reconstruct_stack(ds, method)` runs `reconstruct` on every angle through
#
# ```python
# xr.apply_ufunc(per_block, reference, sample.chunk({"angle": CHUNKS, "y": -1, "x": -1}),
#                input_core_dims=[["y", "x"], ["y", "x"]], output_core_dims=[["variable", "y", "x"]],
#                dask="parallelized", ...)
# ```
#
# Each dask task gets `CHUNKS` whole projections (images are never split: the phase
# integration needs the whole image). Without a cluster dask uses a thread pool; section 6 runs
# the same call on a `dask.distributed` cluster.

# %%
stacks, stack_time = {}, {}
for method in ("spinnet", "xst"):
    t0 = time.perf_counter()
    stacks[method] = tomo.reconstruct_stack(ds, method=method, model=model if method == "spinnet" else None,
                                            chunks=CHUNKS)
    stack_time[method] = time.perf_counter() - t0
    print(f"{method:8s} {N_ANGLES} projections in {stack_time[method]:.1f} s "
          f"({stack_time[method] / N_ANGLES * 1000:.0f} ms each)")
lesson.record(stack_time_s=stack_time)
print(f"time XST / SPINNet for the stack: {stack_time['xst'] / stack_time['spinnet']:.1f}x")

# %% [markdown]
# ### Sinograms
#
# One detector row $y$ over all angles is a sinogram $(a, x)$: each point of the slice traces
# a sine. Phase sinograms are integrated projections, known only up to a constant each; before
# back-projection `reconstruct_volume` subtracts the baseline of the sample-free edge columns
# (`tomo.sinogram_offset`). The transmission is back-projected as $-\ln T$. Each row of the
# figure is on one colour scale, the truth's.

# %%
iy = int(round((SIZE - 1) / 2 + SLICE_Y * SIZE))
sino = {}
for name, s in {"truth": ds, "SPINNet": stacks["spinnet"], "XST": stacks["xst"]}.items():
    phase_sino = s.phase[:, iy].values
    sino[name] = {"phase": phase_sino - tomo.sinogram_offset(phase_sino, 4),
                  "attenuation": -np.log(np.clip(s.transmission[:, iy].values, 1e-6, None))}
fig, axes = plt.subplots(2, 3, figsize=(15, 7), layout="constrained")
extent = [float(ds.x[0]), float(ds.x[-1]), float(ds.angle[-1]), float(ds.angle[0])]
for row, (var, label, cmap) in enumerate((("phase", "phase [rad]", "viridis"), ("attenuation", "$-\\ln T$", "magma"))):
    vmin, vmax = plots.shared_limits([sino["truth"][var]])
    for col, name in enumerate(sino):
        im = axes[row, col].imshow(sino[name][var], cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", extent=extent)
        axes[row, col].set(title=f"{name}: {label}, row {iy}", xlabel="x [µm]", ylabel="angle [deg]")
    fig.colorbar(im, ax=axes[row, :], shrink=0.9, label=label)
lesson.savefig(fig, "sinograms.png")

# %% [markdown]
# ## 4 · Filtered back-projection
#
# For parallel beams the slice $f(x, z)$ follows from its projections $p_a(t)$,
# $t = x\cos a + z\sin a$, by
#
# $$ f(x, z) = \int_0^{\pi} (p_a * h)(x\cos a + z\sin a)\,da, $$
#
# with $h$ the ramp filter ($|\omega|$ in Fourier space). `tomo.reconstruct_volume` runs
# `tomo.fbp` on every row into a `(y, z, x)` volume. Back-projecting the phase gives
# $-k\delta p$ per voxel ($p$ the pixel size), so dividing by $-kp$ gives $\delta$ itself;
# back-projecting $-\ln T$ gives $2k\beta p$. `tomo.phantom_volume` voxelises the same
# ellipsoids: the truth. We also back-project the *true* projections, which shows what the
# angular sampling and the FBP alone allow.

# %%
t0 = time.perf_counter()
sources = {"true projections": ds, "SPINNet": stacks["spinnet"], "XST": stacks["xst"]}
volumes = {name: tomo.reconstruct_volume(s, "phase") for name, s in sources.items()}
att_volumes = {name: tomo.reconstruct_volume(s, "transmission") for name, s in sources.items()}
fbp_time = time.perf_counter() - t0
truth = tomo.phantom_volume(SIZE, geom, "phase")
truth_att = tomo.phantom_volume(SIZE, geom, "transmission")
k_p = 2 * math.pi / geom.wavelength_m * geom.pixel_size_m
corr = {name: tomo.slice_correlation(v, truth, iy) for name, v in volumes.items()}
corr_att = {name: tomo.slice_correlation(v, truth_att, iy) for name, v in att_volumes.items()}
corr_vol = {name: tomo.correlation(v, truth) for name, v in volumes.items()}
lesson.record(slice_index=iy, slice_correlation=corr, volume_correlation=corr_vol,
              transmission_slice_correlation=corr_att, fbp_time_s=fbp_time)
print(f"FBP of {3 * 2 * SIZE} sinograms: {fbp_time:.1f} s")
display(pd.DataFrame({"delta slice r": corr, "delta volume r": corr_vol, "beta slice r": corr_att}).round(3))

# %% [markdown]
# The slice, $\delta$ and $\beta$, each on **one scale** (the phantom's) for every row, with
# the error beside it:

# %%
slice_truth = {"delta": -truth[iy] / k_p, "beta": truth_att[iy] / (2 * k_p)}
slice_rows = {f"{name}\nr = {corr[name]:.2f} / {corr_att[name]:.2f}":
              {"delta": -np.asarray(volumes[name])[iy] / k_p, "beta": np.asarray(att_volumes[name])[iy] / (2 * k_p)}
              for name in volumes}
fig = plots.compare_maps(slice_truth, slice_rows, [("delta", "$\\delta$", "gray"), ("beta", "$\\beta$", "gray")],
                         pixel_size_um=geom.pixel_size_um, truth_label="phantom", panel_size=3.0)
fig.suptitle(f"slice y = row {iy} of {SIZE}: refractive index decrement and absorption index (r: correlation "
             f"with the phantom, delta / beta)")
lesson.savefig(fig, "slices.png")

# %% [markdown]
# ## 5 · A 3-D view
#
# Maximum-intensity projections of $\delta$ along the three axes, on the phantom's scale, and
# an isosurface (`skimage.measure.marching_cubes` at half the tissue's $\delta$) of the
# phantom and of the better of the two reconstructions.

# %%
best = "XST" if corr_vol["XST"] >= corr_vol["SPINNet"] else "SPINNet"
delta_vol, delta_truth = -volumes[best].values / k_p, -truth / k_p
vmax = float(delta_truth.max())
fig = plt.figure(figsize=(18, 8), layout="constrained")
for col, (axis, label) in enumerate([(0, "along y (top view)"), (1, "along z (beam at 0°)"), (2, "along x (side)")]):
    for row, (name, vol) in enumerate([("phantom", delta_truth), (best, delta_vol)]):
        ax = fig.add_subplot(2, 5, row * 5 + col + 1)
        plots.show_map(ax, vol.max(axis=axis), "gray", 0, vmax, title=f"{name}: MIP {label}",
                       pixel_size_um=geom.pixel_size_um)
level = 0.5 * 1.25e-6  # half of the tissue's delta at 14 keV
for col, (name, vol) in enumerate([("phantom", delta_truth), (best, delta_vol)]):
    ax = fig.add_subplot(2, 5, (col * 5 + 4, col * 5 + 5), projection="3d")
    try:
        verts, faces, _, _ = marching_cubes(vol, level=level, step_size=max(1, SIZE // 64))
    except (ValueError, RuntimeError):  # no surface at that level
        ax.set_title(f"{name}: no isosurface at delta = {level:.1e}")
        continue
    mesh = Poly3DCollection(verts[faces][:, :, [2, 1, 0]] * geom.pixel_size_um, alpha=0.6, edgecolor="none")
    mesh.set_facecolor((0.75, 0.55, 0.3))
    ax.add_collection3d(mesh)
    side = SIZE * geom.pixel_size_um
    ax.set(xlim=(0, side), ylim=(0, side), zlim=(side, 0), xlabel="x [µm]", ylabel="z [µm]", zlabel="y [µm]",
           title=f"{name}: isosurface delta = {level:.1e}")
    ax.view_init(elev=20, azim=-60)
lesson.savefig(fig, "volume_3d.png")

# %% [markdown]
# ## 6 · On a dask.distributed cluster
#
# `reconstruct_stack` only builds a dask graph; whatever scheduler is active computes it. A
# `dask.distributed.Client` becomes the active scheduler when created, so the same call runs
# on its workers. Binder gives 2 GB, so here the cluster lives inside this kernel
# (`processes=False`: no second copy of Python, torch or the model), one worker, two threads.
# On a real cluster, connect to its scheduler instead and nothing else changes:
#
# ```python
# from dask.distributed import Client
# client = Client("tcp://scheduler:8786")        # or dask_jobqueue.SLURMCluster(...), etc.
# stack = tomo.reconstruct_stack(ds, method="spinnet", chunks=8)
# ```
#
# The workers need `spinnet_lite` installed. Keep one torch thread per dask thread there
# (`OMP_NUM_THREADS=1`), so the two levels of parallelism do not fight over the cores. For a
# scan too large for memory, open it lazily (`xr.open_dataset(..., chunks={"angle": 8})`) and
# write the result with `to_netcdf` or `to_zarr` instead of computing it into memory.

# %%
from dask.distributed import Client, LocalCluster

t0 = time.perf_counter()
with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
        Client(cluster) as client:
    start_time = time.perf_counter() - t0
    t1 = time.perf_counter()
    distributed_stack = tomo.reconstruct_stack(ds, method="xst", chunks=CHUNKS)
    distributed_time = time.perf_counter() - t1
same = float(np.abs(distributed_stack.phase - stacks["xst"].phase).max())
lesson.record(distributed_time_s=distributed_time, distributed_max_difference=same)
print(f"cluster start {start_time:.1f} s; XST stack on the cluster {distributed_time:.1f} s "
      f"(thread pool: {stack_time['xst']:.1f} s); max |difference| = {same:.1e} rad")

# %% [markdown]
# ## 7 · Exercises
#
# **Exercise 06.1 — the distance.** The speckle displacement grows linearly with the
# sample-to-detector distance (Eq. 1 and notebook 01). At what distance, in mm, would the
# bug's largest displacement (`d_max`) be 3 px?
#
# <details><summary>Solution</summary>
#
# ```python
# answer = geom.effective_distance_mm * 3 / d_max
# ```
# $d \propto z$ with the mask upstream (`geom.effective_distance_mm` is the sample's distance
# here). A shorter distance makes the shifts easier to track but the phase signal per pixel
# smaller, against the same noise.
# </details>

# %%
answer = None  # distance in mm
lesson.check_exercise("06.1", answer, geom.effective_distance_mm * 3 / d_max, rtol=0.01, quiet=True)

# %% [markdown]
# **Exercise 06.2 — background noise by hand.** For XST's result at 0° (`one["xst"]`),
# compute the standard deviation of $d_x$ and of $d_y$ over the sample-free region
# (`background_region(support0)`, a boolean mask), and combine them as
# `background_noise` does: $\sqrt{(\sigma_x^2 + \sigma_y^2)/2}$.
#
# <details><summary>Solution</summary>
#
# ```python
# region = background_region(support0)
# sx, sy = one["xst"].dx.values[region].std(), one["xst"].dy.values[region].std()
# answer = np.sqrt((sx**2 + sy**2) / 2)
# ```
# </details>

# %%
answer = None  # XST's background noise, px
lesson.check_exercise("06.2", answer, noise["xst"], rtol=1e-6, quiet=True)

# %% [markdown]
# **Exercise 06.3 — how many angles?** A common rule for parallel-beam tomography says an
# $N$-pixel-wide slice needs about $\frac{\pi}{2} N$ projections over 180° to be sampled as
# finely at its rim as along the detector. How many is that for `SIZE`? Is `N_ANGLES` enough,
# and where would you expect artefacts if it is not?
#
# <details><summary>Solution</summary>
#
# ```python
# answer = math.pi / 2 * SIZE
# ```
# With fewer angles, streaks appear away from the centre of the slice, where neighbouring
# projections are furthest apart; the "true projections" row of the slice figure shows them,
# since it has no tracking error at all.
# </details>

# %%
answer = None  # projections needed
lesson.check_exercise("06.3", answer, math.pi / 2 * SIZE, rtol=0.02, quiet=True)

# %% [markdown]
# **Exercise 06.4 — back to 500 mm (open-ended).** Set `SAMPLE_MM = 500` (the lens's
# distance) and run the notebook again. How do the largest displacement, the background noise
# of both methods, and the slice correlations change?
#
# <details><summary>What to expect</summary>
#
# The displacements shrink by 500/628, so the phase signal per pixel falls while the tracking
# noise in pixels stays about the same: the noise in phase grows, and the slices get noisier.
# </details>
#
# ## What we learned
#
# The numbers of this run:

# %%
print(f"At {geom.sample_detector_mm:g} mm the bug moves the speckle by up to {d_max:.1f} px "
      f"(99 % of its pixels below {d_99:.1f} px).")
print(f"Background noise at 0°: SPINNet {noise['spinnet']:.4f} px, XST {noise['xst']:.4f} px "
      f"(SPINNet/XST = {noise['spinnet'] / noise['xst']:.2f}); displacement rmse against the truth: "
      f"SPINNet {err['spinnet']:.3f} px, XST {err['xst']:.3f} px.")
print(f"Correlation of the delta slice with the phantom: true projections {corr['true projections']:.2f}, "
      f"SPINNet {corr['SPINNet']:.2f}, XST {corr['XST']:.2f}; of the beta slice: "
      f"{corr_att['true projections']:.2f}, {corr_att['SPINNet']:.2f}, {corr_att['XST']:.2f}.")
print(f"The {N_ANGLES}-projection stack took {stack_time['spinnet']:.0f} s with SPINNet and {stack_time['xst']:.0f} s "
      f"with XST; the dask.distributed run gave the same result (max difference {same:.1e} rad).")

# %% [markdown]
# * Tomography multiplies the per-projection work: the method's speed, its noise and its
#   behaviour at large displacements all carry into every slice.
# * Without ground truth, the noise where there is no sample is the honest comparison; with it,
#   error maps on one scale show where each method fails (here: the bug's edges, where the
#   displacements are largest).
# * The phase slices recover the refractive index far better than the absorption slices
#   recover $\beta$: at 14 keV a soft sample shifts the phase much more than it absorbs.
# * `xarray.apply_ufunc(..., dask="parallelized")` runs the same code on a laptop's threads
#   and on a cluster.
#
# Next: notebook 07 measures both methods on a held-out set and maps where the network works.

# %%
summary_file = lesson.finish()
