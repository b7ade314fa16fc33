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
# # 06 · A bug in speckle tomography
#
# The seed's second experiment (sections 3.2.2–3.2.3, Figs. 7–8) images a small insect with
# the coded mask, one projection first and then a full tomographic scan: SPINNet turns every
# projection into phase and transmission, and filtered back-projection turns the sinograms
# into slices. The seed's scan is not public; `spinnet_lite` simulates a beetle-like "bug"
# made of ellipsoids (tissue and denser cuticle) whose projections are computed exactly at
# every angle, so the reconstruction can be checked against the phantom's own slices.
#
# 1. the bug and its projections;
# 2. one projection: SPINNet and XST, and their noise where there is no sample;
# 3. the whole stack through `spinnet_lite.tomo.reconstruct_stack` (xarray + dask, chunked
#    along `angle`), the phase and transmission sinograms;
# 4. filtered back-projection (`tomo.fbp`: ASTRA's CPU FBP when installed, else
#    scikit-image's `iradon` with the ramp filter), slices against the phantom;
# 5. a 3-D view;
# 6. the same reconstruction on a `dask.distributed` cluster.
#
# Figures and `summary.json` go to `OUTPUT_DIR`.

# %% tags=["parameters"]
QUICK = False  # True: small images, few angles (the tests run this)
SIZE = 128  # projection size, px
N_ANGLES = 120  # projections over 180 degrees
PHOTONS = 20000  # Poisson noise: photons per pixel of unit intensity
CHUNKS = 8  # angles per dask task
SLICE_Y = -0.13  # the slice shown, as a fraction of the field of view from the centre (the thorax and legs)
SEED = 0
OUTPUT_DIR = "../output/06"

# %%
if QUICK:  # every code path still runs, on less data
    SIZE, N_ANGLES, CHUNKS = 64, 24, 6

# %%
# %matplotlib inline
import json
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from skimage.measure import marching_cubes

from spinnet_lite import Geometry, load_pretrained, reconstruct, tomo
from spinnet_lite.metrics import background_noise

out = Path(OUTPUT_DIR)
out.mkdir(parents=True, exist_ok=True)
model = load_pretrained()
geom = Geometry()  # 14 keV, 0.65 um pixels, 500 mm
summary = {"quick": QUICK, "size": SIZE, "n_angles": N_ANGLES, "photons": PHOTONS, "seed": SEED,
           "model_config": model.config.name, "fbp_backend": "astra" if tomo.astra_available() else "skimage"}
print(f"SPINNet config {model.config.name!r}; FBP backend: {summary['fbp_backend']}")


def save(fig, name):
    """Save a figure into OUTPUT_DIR (PNG) and keep it displayed inline."""
    fig.savefig(out / name, dpi=100, bbox_inches="tight")


# %% [markdown]
# ## 1 · The bug and its projections
#
# The bug is a list of ellipsoids (`spinnet_lite.phantoms.bug_parts`): head, thorax, abdomen
# segments and wing cases, six legs, two antennae and eyes, each of "tissue" or "cuticle" with
# its own $\delta$ and $\beta$. Rotating it by an angle $a$ about the vertical axis $y$ and
# integrating along the beam gives the projected phase and transmission,
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
print(ds)
print(f"simulated {N_ANGLES} projections of {SIZE} x {SIZE} px in {sim_time:.1f} s; "
      f"max |d| = {float(np.hypot(ds.dx, ds.dy).max()):.2f} px, phase min {float(ds.phase.min()):.2f} rad, "
      f"transmission min {float(ds.transmission.min()):.4f}")
summary["simulate_time_s"] = sim_time

# %%
i90 = int(np.argmin(np.abs(ds.angle.values - 90)))
fig, axes = plt.subplots(2, 4, figsize=(17, 8), layout="constrained")
for row, i in enumerate((0, i90)):
    a = float(ds.angle[i])
    for ax, img, title, cmap in [(axes[row, 0], ds.sample[i], f"sample image, {a:.0f}°", "gray"),
                                 (axes[row, 1], ds.phase[i], f"phase [rad], {a:.0f}°", "viridis"),
                                 (axes[row, 2], ds.transmission[i], f"transmission, {a:.0f}°", "gray"),
                                 (axes[row, 3], np.hypot(ds.dx[i], ds.dy[i]), f"|d| [px], {a:.0f}°", "magma")]:
        im = ax.imshow(img, cmap=cmap)
        ax.set(title=title, xticks=[], yticks=[])
        fig.colorbar(im, ax=ax, shrink=0.8)
save(fig, "bug_projections.png")

# %% [markdown]
# The absorption is weak: at 14 keV the bug's transmission stays within a fraction of a
# percent of 1, while its phase is of the order of a radian. That is why phase contrast (and
# speckle tracking) pays off for soft samples.
#
# ## 2 · One projection: SPINNet and XST
#
# The projection at 0° through both methods. With no ground truth in a real experiment, the
# seed compares the **noise** of the methods where there is no sample:
# `metrics.background_noise` is the spread of $d_x$, $d_y$ over the sample-free region
# (the support eroded by 3 px), in pixels.

# %%
one = {}
for method in ("spinnet", "xst"):
    t0 = time.perf_counter()
    one[method] = reconstruct(ds.reference, ds.sample[0], method=method, model=model if method == "spinnet" else None,
                              geometry=geom)
    one[method].attrs["time_s"] = time.perf_counter() - t0
support0 = ds.support[0].values
noise = {m: background_noise(r, support0) for m, r in one.items()}
truth0 = ds.isel(angle=0)
err = {m: float(np.sqrt(np.mean((r.dx - truth0.dx) ** 2 + (r.dy - truth0.dy) ** 2))) for m, r in one.items()}
for m in one:
    print(f"{m:8s} background noise {noise[m]:.4f} px, displacement rmse {err[m]:.4f} px, "
          f"{one[m].attrs['time_s']:.2f} s")
summary.update(noise_px=noise, projection_displacement_rmse_px=err)

fig, axes = plt.subplots(3, 4, figsize=(16, 11), layout="constrained")
rows = {"truth": {"dx": truth0.dx, "dy": truth0.dy, "transmission": truth0.transmission,
                  "phase": truth0.phase - truth0.phase.mean()},
        "SPINNet": one["spinnet"], "XST": one["xst"]}
panel_columns = [("dx", "$d_x$ [px]", "RdBu_r"), ("dy", "$d_y$ [px]", "RdBu_r"),
                 ("transmission", "transmission", "gray"), ("phase", "phase [rad]", "viridis")]
for col, (var, label, cmap) in enumerate(panel_columns):
    lim = float(np.abs(truth0[var]).max()) if cmap == "RdBu_r" else None
    for row, (name, r) in enumerate(rows.items()):
        ax = axes[row, col]
        img = np.asarray(r[var])
        vmin, vmax = (-lim, lim) if lim else (np.percentile(img, 1), np.percentile(img, 99))
        im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set(xticks=[], yticks=[])
        if row == 0:
            ax.set_title(label)
        if col == 0:
            ax.set_ylabel(name if name == "truth" else f"{name}\nnoise {noise[name.lower()]:.3f} px")
save(fig, "projection_comparison.png")

# %% [markdown]
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
summary["stack_time_s"] = stack_time
print(stacks["xst"])

# %% [markdown]
# ### Sinograms
#
# One detector row $y$ over all angles is a sinogram $(a, x)$: each point of the slice traces a
# sine. Phase sinograms are integrated projections, known only up to a constant each; before
# back-projection `reconstruct_volume` sets the sample-free edge columns to zero
# (`tomo.sinogram_offset`). The transmission is back-projected as $-\ln T$.

# %%
iy = int(round((SIZE - 1) / 2 + SLICE_Y * SIZE))
fig, axes = plt.subplots(2, 3, figsize=(16, 8), layout="constrained")
extent = [float(ds.x[0]), float(ds.x[-1]), float(ds.angle[-1]), float(ds.angle[0])]
sino_sets = {"truth": ds, "SPINNet": stacks["spinnet"], "XST": stacks["xst"]}
for col, (name, s) in enumerate(sino_sets.items()):
    phase_sino = s.phase[:, iy].values
    phase_sino = phase_sino - tomo.sinogram_offset(phase_sino, 4)
    att_sino = -np.log(np.clip(s.transmission[:, iy].values, 1e-6, None))
    for row, (img, label) in enumerate([(phase_sino, "phase [rad]"), (att_sino, "$-\\ln T$")]):
        ax = axes[row, col]
        im = ax.imshow(img, cmap="viridis" if row == 0 else "magma", aspect="auto", extent=extent)
        ax.set(title=f"{name}: {label}, row {iy}", xlabel="x [um]", ylabel="angle [deg]")
        fig.colorbar(im, ax=ax)
save(fig, "sinograms.png")

# %% [markdown]
# ## 4 · Filtered back-projection
#
# For parallel beams the slice $f(x, z)$ follows from its projections $p_a(t)$,
# $t = x\cos a + z\sin a$, by
#
# $$ f(x, z) = \int_0^{\pi} (p_a * h)(x\cos a + z\sin a)\,da, $$
#
# with $h$ the ramp filter ($|\omega|$ in Fourier space). `tomo.fbp` uses ASTRA's CPU FBP when
# `astra` imports, else `skimage.transform.iradon(filter_name="ramp")`; `tomo.reconstruct_volume`
# runs it on every row into a `(y, z, x)` volume. Back-projecting the phase gives
# $-k\delta p$ per voxel ($p$ the pixel size), so dividing by $-kp$ gives $\delta$ itself.
# `tomo.phantom_volume` voxelises the same ellipsoids in the same units: the truth.
# We also back-project the *true* projected phase, which shows what the angular sampling and
# the FBP alone allow.

# %%
t0 = time.perf_counter()
volumes = {"true projections": tomo.reconstruct_volume(ds, "phase"),
           "SPINNet": tomo.reconstruct_volume(stacks["spinnet"], "phase"),
           "XST": tomo.reconstruct_volume(stacks["xst"], "phase")}
att_volumes = {"true projections": tomo.reconstruct_volume(ds, "transmission"),
               "SPINNet": tomo.reconstruct_volume(stacks["spinnet"], "transmission"),
               "XST": tomo.reconstruct_volume(stacks["xst"], "transmission")}
fbp_time = time.perf_counter() - t0
truth = tomo.phantom_volume(SIZE, geom, "phase")
truth_att = tomo.phantom_volume(SIZE, geom, "transmission")
corr = {name: tomo.slice_correlation(v, truth, iy) for name, v in volumes.items()}
corr_att = {name: tomo.slice_correlation(v, truth_att, iy) for name, v in att_volumes.items()}
corr_vol = {name: tomo.correlation(v, truth) for name, v in volumes.items()}
k_p = 2 * math.pi / geom.wavelength_m * geom.pixel_size_m
print(f"FBP of {3 * 2 * SIZE} sinograms: {fbp_time:.1f} s")
print(f"{'':18s} {'phase slice r':>14s} {'phase volume r':>15s} {'-lnT slice r':>13s} {'max delta':>10s}")
for name in volumes:
    print(f"{name:18s} {corr[name]:14.3f} {corr_vol[name]:15.3f} {corr_att[name]:13.3f} "
          f"{float(-volumes[name].min()) / k_p:10.2e}")
print(f"{'phantom':18s} {'':14s} {'':15s} {'':13s} {float(-truth.min()) / k_p:10.2e}")
summary.update(slice_index=iy, slice_correlation=corr, volume_correlation=corr_vol,
               transmission_slice_correlation=corr_att, fbp_time_s=fbp_time)

# %%
fig, axes = plt.subplots(2, 4, figsize=(18, 8.5), layout="constrained")
lim = float(-truth[iy].min())
panels = [("phantom", truth)] + list(volumes.items())
for col, (name, vol) in enumerate(panels):
    v = np.asarray(vol)[iy]
    im = axes[0, col].imshow(-v / k_p, cmap="gray", vmin=0, vmax=lim / k_p)
    title = name if name == "phantom" else f"{name}: r = {corr[name]:.2f}"
    axes[0, col].set(title=f"$\\delta$, {title}", xlabel="x [px]", ylabel="z [px]")
    fig.colorbar(im, ax=axes[0, col], shrink=0.8)
att_panels = [("phantom", truth_att)] + list(att_volumes.items())
for col, (name, vol) in enumerate(att_panels):
    v = np.asarray(vol)[iy] / (2 * k_p)
    lim_att = float(np.percentile(np.abs(v), 99.5)) or 1e-12  # each its own range: the noise differs a lot
    im = axes[1, col].imshow(v, cmap="RdBu_r", vmin=-lim_att, vmax=lim_att)
    title = name if name == "phantom" else f"{name}: r = {corr_att[name]:.2f}"
    axes[1, col].set(title=f"$\\beta$, {title}", xlabel="x [px]", ylabel="z [px]")
    fig.colorbar(im, ax=axes[1, col], shrink=0.8)
fig.suptitle(f"slice y = row {iy} of {SIZE}: refractive index decrement (top) and absorption index (bottom)")
save(fig, "slices.png")

# %% [markdown]
# The phase slices recover the bug's cross-section, legs included; the absorption slices are
# far noisier: the same photons carry much more phase signal than absorption signal here.
#
# ## 5 · A 3-D view
#
# Maximum-intensity projections of $\delta$ along the three axes, and an isosurface
# (`skimage.measure.marching_cubes` at half the tissue's $\delta$) of the phantom and of the
# XST reconstruction.

# %%
best = "XST" if corr["XST"] >= corr["SPINNet"] else "SPINNet"
delta_vol = -volumes[best].values / k_p
delta_truth = -truth / k_p
fig = plt.figure(figsize=(18, 9), layout="constrained")
for col, (axis, label) in enumerate([(0, "along y (top view)"), (1, "along z (beam at 0°)"), (2, "along x (side)")]):
    for row, (name, vol) in enumerate([("phantom", delta_truth), (best, delta_vol)]):
        ax = fig.add_subplot(2, 5, row * 5 + col + 1)
        ax.imshow(vol.max(axis=axis), cmap="gray", vmin=0)
        ax.set(title=f"{name}: MIP {label}", xticks=[], yticks=[])
level = 0.5 * 1.25e-6  # half of the tissue's delta at 14 keV
for col, (name, vol) in enumerate([("phantom", delta_truth), (best, delta_vol)]):
    ax = fig.add_subplot(2, 5, (col * 5 + 4, col * 5 + 5), projection="3d")
    try:
        verts, faces, _, _ = marching_cubes(vol, level=level, step_size=max(1, SIZE // 64))
    except (ValueError, RuntimeError):  # no surface at that level
        ax.set_title(f"{name}: no isosurface at delta = {level:.1e}")
        continue
    mesh = Poly3DCollection(verts[faces][:, :, [2, 1, 0]], alpha=0.6, edgecolor="none")  # (x, z, y)
    mesh.set_facecolor((0.75, 0.55, 0.3))
    ax.add_collection3d(mesh)
    ax.set(xlim=(0, SIZE), ylim=(0, SIZE), zlim=(SIZE, 0), xlabel="x", ylabel="z", zlabel="y",
           title=f"{name}: isosurface delta = {level:.1e} ({len(faces)} faces)")
    ax.view_init(elev=20, azim=-60)
save(fig, "volume_3d.png")

# %% [markdown]
# ## 6 · On a dask.distributed cluster
#
# `reconstruct_stack` only builds a dask graph; whatever scheduler is active computes it. A
# `dask.distributed.Client` becomes the active scheduler when created, so the same call runs
# on its workers. Binder gives 2 GB, so here the cluster lives inside this kernel
# (`processes=False`: no second copy of Python, torch or the model), one worker, two threads.
#
# On a real cluster, connect to its scheduler instead and nothing else changes:
#
# ```python
# from dask.distributed import Client
# client = Client("tcp://scheduler:8786")        # or dask_jobqueue.SLURMCluster(...), etc.
# stack = tomo.reconstruct_stack(ds, method="spinnet", chunks=8)
# ```
#
# The workers need `spinnet_lite` installed; the model travels with the tasks (or, with
# `model=None`, each worker loads the bundled weights once). Keep one torch thread per dask
# thread there (`torch.set_num_threads(1)` on the workers, or `OMP_NUM_THREADS=1`), so the
# two levels of parallelism do not fight over the cores. For a scan too large for memory,
# open it lazily (`xr.open_dataset(..., chunks={"angle": 8})`), and write the result with
# `to_netcdf` or `to_zarr` instead of computing it into memory (`compute=False`).

# %%
from dask.distributed import Client, LocalCluster

t0 = time.perf_counter()
with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
        Client(cluster) as client:
    print(client)
    start_time = time.perf_counter() - t0
    t1 = time.perf_counter()
    distributed_stack = tomo.reconstruct_stack(ds, method="xst", chunks=CHUNKS)
    distributed_time = time.perf_counter() - t1
same = float(np.abs(distributed_stack.phase - stacks["xst"].phase).max())
print(f"cluster start {start_time:.1f} s; XST stack on the cluster {distributed_time:.1f} s "
      f"(threads: {stack_time['xst']:.1f} s); max |difference| = {same:.1e} rad")
summary.update(distributed_time_s=distributed_time, distributed_max_difference=same)

# %%
(out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
print(json.dumps(summary, indent=1, default=float))
