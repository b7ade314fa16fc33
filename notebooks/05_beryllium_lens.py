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
# # 05 · A beryllium lens: SPINNet and XST side by side
#
# The seed's first experimental test (section 3.2.1, Fig. 6) is a compound-refractive-lens
# element: a bi-concave parabolic **beryllium lens** with an apex radius of 200 µm, imaged at
# 14 keV with 0.65 µm pixels and 500 mm from sample to detector. A parabolic lens has a
# parabolic phase, so what is left after subtracting the best-fitting paraboloid measures both
# the lens's figure errors and the method's noise and bias. The seed's data are not public;
# here the lens is simulated (`simulate_pair(phantom="lens")`) with Poisson noise, and so the
# residual is the *method's* error.
#
# 1. the lens and its speckle pair;
# 2. SPINNet and XST on the same pair: differential phases, transmission, integrated phase,
#    residual after the paraboloid (rms in radians and in wavelengths), apex radius, time;
# 3. **your own data**: `reconstruct` in Python and `python -m spinnet_lite reconstruct` on
#    TIFF/HDF5 files, and a full 2112 × 2112 detector frame in bounded memory (tiling).
#
# Figures and `summary.json` go to `OUTPUT_DIR`.

# %% tags=["parameters"]
QUICK = False  # True: small images (the tests run this)
SIZE = 512  # lens image size, px
PHOTONS = 20000  # Poisson noise: photons per pixel of unit intensity
BIG_SIZE = 2112  # the seed's detector frame, for the large-image section
TILE = 256  # tile side for SPINNet on large images (reconstruct's default: the training patch)
TRAINED_MAX_PX = 5.5  # largest displacement of the training set (Geometry.training(), README)
SEED = 0
OUTPUT_DIR = "../output/05"

# %%
if QUICK:  # every code path still runs, on less data
    SIZE, BIG_SIZE, TILE = 128, 256, 128

# %%
# %matplotlib inline
import json
import math
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import h5py
import matplotlib.pyplot as plt
import numpy as np
import tifffile
import xarray as xr
from scipy import ndimage

from spinnet_lite import Geometry, load_pretrained, reconstruct, simulate_pair
from spinnet_lite.metrics import residual_after_paraboloid
from spinnet_lite.phantoms import BE_DELTA_14KEV

out = Path(OUTPUT_DIR)
out.mkdir(parents=True, exist_ok=True)
model = load_pretrained()
summary = {"quick": QUICK, "size": SIZE, "photons": PHOTONS, "seed": SEED, "model_config": model.config.name}
print(f"SPINNet config {model.config.name!r}, {model.num_parameters():,} parameters")


def save(fig, name):
    """Save a figure into OUTPUT_DIR (PNG) and keep it displayed inline."""
    fig.savefig(out / name, dpi=100, bbox_inches="tight")


# %% [markdown]
# ## 1 · The lens
#
# A bi-concave lens of two paraboloids, seen along its axis, is $t(r) = r^2/R$ thick at radius
# $r$ ($R$ = 200 µm, the apex radius) inside its aperture. With the refractive index
# $n = 1 - \delta + i\beta$ it shifts the phase by
#
# $$ \phi(r) = -k\,\delta\,t(r) = -\frac{2\pi\delta}{\lambda}\,\frac{r^2}{R}, $$
#
# so the speckle moves by $d = \frac{\lambda z}{2\pi p^2}\nabla\phi$: linearly in $r$, towards
# the axis (an X-ray lens is concave because $n < 1$). The phantom's aperture is 42 % of the
# field, and Be's $\delta = 1.74\times10^{-6}$ at 14 keV.

# %%
geom = Geometry()  # 14 keV, 0.65 um, 500 mm: the seed's lens experiment
pair = simulate_pair(size=SIZE, phantom="lens", geometry=geom, photons=PHOTONS, seed=SEED)
support = pair.support.values > 0
k = 2 * math.pi / geom.wavelength_m
d_max = float(np.hypot(pair.dx, pair.dy).max())
print(f"lens {SIZE} x {SIZE} px ({SIZE * geom.pixel_size_um:.0f} um), {PHOTONS} photons/px")
print(f"phase: {float(pair.phase.min()):.2f} .. {float(pair.phase.max()):.2f} rad; max |d| = {d_max:.2f} px; "
      f"transmission {float(pair.transmission.min()):.4f} .. {float(pair.transmission.max()):.4f}")
summary.update(max_displacement_px=d_max, phase_range_rad=float(pair.phase.max() - pair.phase.min()))

fig, axes = plt.subplots(1, 4, figsize=(17, 3.9), layout="constrained")
zoom = slice(SIZE // 2 - 32, SIZE // 2 + 32)
for ax, img, title, cmap in [(axes[0], pair.reference.values, "reference $I_r$", "gray"),
                             (axes[1], pair.sample.values, "sample $I_s$", "gray"),
                             (axes[2], pair.phase.values, "true phase [rad]", "viridis"),
                             (axes[3], pair.dx.values, "true $d_x$ [px]", "RdBu_r")]:
    lim = float(np.abs(img).max()) if cmap == "RdBu_r" else None
    im = ax.imshow(img, cmap=cmap, vmin=-lim if lim else None, vmax=lim)
    ax.set(title=title, xlabel="x [px]", ylabel="y [px]")
    fig.colorbar(im, ax=ax, shrink=0.85)
save(fig, "lens_pair.png")

# %% [markdown]
# ## 2 · SPINNet and XST
#
# Both through the same call, `reconstruct(reference, sample, method=..., geometry=geom)`.
# With a geometry the result holds the phase gradients $\partial\phi/\partial x$,
# $\partial\phi/\partial y$ (rad/px, displacement divided by $\lambda z / 2\pi p^2$) and the
# phase integrated from them (Frankot–Chellappa), besides $d_x$, $d_y$ and $T$.
# XST is a 7 × 7 window zero-normalised cross-correlation searched over ±6 px (the default, which covers the trained displacement range).

# %%
results, times = {}, {}
for method in ("spinnet", "xst"):
    t0 = time.perf_counter()
    results[method] = reconstruct(pair.reference, pair.sample, method=method,
                                  model=model if method == "spinnet" else None, geometry=geom)
    times[method] = time.perf_counter() - t0
    print(f"{method:8s} {times[method]:6.2f} s")
summary["time_s"] = times

# %% [markdown]
# ### Residual after the best paraboloid
#
# `spinnet_lite.metrics.residual_after_paraboloid` fits
# $a + bx + cy + dx^2 + exy + fy^2$ by least squares and returns what is left and its rms.
# We fit inside the aperture, a few pixels in from the rim (where the true phase bends over to
# the flat frame, and where a 7-pixel window straddles it). The rms is given in radians and in
# wavelengths of optical path (rad / 2π). A rotationally symmetric fit
# $\phi = a + bx + cy - k\delta (x^2 + y^2)/R$ also gives the **apex radius** $R$ back.

# %%
BORDER = 4
rim = max(4, SIZE // 32)
mask = ndimage.binary_erosion(support, iterations=rim)


def apex_radius_um(phase, mask):
    """R from the least-squares fit phase = a + b x + c y + q (x^2 + y^2), x in metres: R = -k delta / q."""
    h, w = phase.shape
    y, x = np.mgrid[0:h, 0:w].astype(float)
    x = (x - (w - 1) / 2) * geom.pixel_size_m
    y = (y - (h - 1) / 2) * geom.pixel_size_m
    basis = np.stack([np.ones_like(x), x, y, x**2 + y**2], -1)[mask]
    coef, *_ = np.linalg.lstsq(basis, np.asarray(phase)[mask], rcond=None)
    return -k * BE_DELTA_14KEV / coef[3] * 1e6


rows = {"truth": pair, "SPINNet": results["spinnet"], "XST": results["xst"]}
residuals, table = {}, {}
for name, ds in rows.items():
    residual, rms = residual_after_paraboloid(ds.phase, mask)
    residuals[name] = residual
    true_phase = pair.phase.values
    err = (ds.phase.values - true_phase)[mask]
    table[name] = {"residual_rms_rad": rms, "residual_rms_waves": rms / (2 * math.pi),
                   "apex_radius_um": apex_radius_um(ds.phase.values, mask),
                   "phase_rmse_rad": float(np.sqrt(np.mean((err - err.mean()) ** 2))),
                   "displacement_rmse_px": float(np.sqrt(np.mean(((ds.dx - pair.dx) ** 2 + (ds.dy - pair.dy) ** 2)
                                                                 .values[mask])))}
print(f"{'':8s} {'residual rms':>13s} {'[waves]':>9s} {'apex R [um]':>12s} {'phase err':>10s} "
      f"{'|d| err px':>11s} {'time s':>7s}")
method_of = {"SPINNet": "spinnet", "XST": "xst"}
for name, row in table.items():
    t = times[method_of[name]] if name in method_of else float("nan")
    print(f"{name:8s} {row['residual_rms_rad']:10.4f} rad {row['residual_rms_waves']:9.5f} "
          f"{row['apex_radius_um']:12.1f} {row['phase_rmse_rad']:10.4f} {row['displacement_rmse_px']:11.4f} {t:7.2f}")
summary["lens"] = table

# %%
columns = [("dphi_dx", "$\\partial\\phi/\\partial x$ [rad/px]", "RdBu_r"),
           ("dphi_dy", "$\\partial\\phi/\\partial y$ [rad/px]", "RdBu_r"),
           ("transmission", "transmission $T$", "gray"),
           ("phase", "phase [rad]", "viridis"),
           ("residual", "residual after paraboloid [rad]", "RdBu_r")]
truth_grad = {"dphi_dx": geom.displacement_to_dphi(pair.dx.values),
              "dphi_dy": geom.displacement_to_dphi(pair.dy.values)}
fig, axes = plt.subplots(3, len(columns), figsize=(20, 11), layout="constrained")
res_lim = max(float(np.nanpercentile(np.abs(residuals[n]), 99)) for n in ("SPINNet", "XST"))
for row, (name, ds) in enumerate(rows.items()):
    for col, (var, label, cmap) in enumerate(columns):
        ax = axes[row, col]
        if var == "residual":
            img, vmin, vmax = residuals[name], -res_lim, res_lim
        else:
            img = truth_grad[var] if (name == "truth" and var in truth_grad) else ds[var].values
            ref_img = truth_grad.get(var, pair[var].values if var in pair else img)
            if cmap == "RdBu_r":
                lim = float(np.abs(ref_img).max())
                vmin, vmax = -lim, lim
            elif var == "phase":
                vmin, vmax = None, None
            else:
                vmin, vmax = float(np.percentile(ds[var], 1)), float(np.percentile(ds[var], 99))
        im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_xticks([])
        ax.set_yticks([])
        if row == 0:
            ax.set_title(label)
        if col == 0:
            extra = f"\n{times[method_of[name]]:.2f} s" if name in method_of else ""
            ax.set_ylabel(name + extra)
    axes[row, -1].set_xlabel(f"rms {table[name]['residual_rms_rad']:.3f} rad = "
                             f"{table[name]['residual_rms_waves']:.4f} $\\lambda$")
save(fig, "lens_comparison.png")

# %% [markdown]
# Profiles through the axis: the phase (each method's constant removed over the mask) and the
# residual along the middle row.

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4), layout="constrained")
mid = SIZE // 2
x_um = pair.x.values
for name, ds in rows.items():
    phase = ds.phase.values - ds.phase.values[mask].mean()
    axes[0].plot(x_um, phase[mid], label=name, lw=1.2)
    axes[1].plot(x_um, residuals[name][mid], label=f"{name}: rms {table[name]['residual_rms_rad']:.3f} rad", lw=1)
axes[0].set(xlabel="x [um]", ylabel="phase [rad]", title="phase along the middle row")
axes[1].set(xlabel="x [um]", ylabel="residual [rad]", title="residual after the best paraboloid")
for ax in axes:
    ax.legend()
    ax.grid(alpha=0.3)
save(fig, "lens_profiles.png")

# %% [markdown]
# ## 3 · Your own data
#
# ### In Python
#
# Any two 2-D arrays of the same shape (at least 64 × 64) work: numpy arrays or xarray
# DataArrays, any intensity scale (SPINNet divides by the reference's mean). Read them with
# whatever reads your format, then
#
# ```python
# from spinnet_lite import Geometry, reconstruct
# geom = Geometry(energy_kev=14, pixel_size_um=0.65, sample_detector_mm=500)
# result = reconstruct(reference, sample, method="spinnet", geometry=geom)   # or method="xst"
# result.phase.plot()                  # dx, dy, transmission, dphi_dx, dphi_dy, phase
# result.to_netcdf("lens_result.nc")
# ```
#
# Flat-field and dark-field correction are yours to do first (divide by the flat, after
# subtracting the dark); the reference must be a speckle image without the sample.
#
# ### On the command line
#
# `python -m spinnet_lite reconstruct REF SAMPLE -o out.nc` reads `.tif/.tiff`, `.h5/.hdf5`
# (`file.h5::/path/to/dataset`), `.npy`, `.npz` and `.nc`; `--energy` (keV), `--pixel-size`
# (µm) and `--distance` (sample-to-detector, mm) together add the phase; `--method xst` runs the
# classical tracking instead. Here we write the simulated pair as a TIFF reference and an
# HDF5 sample, run the command in a subprocess, and read its netCDF back.

# %%
ref_file, sample_file, result_file = out / "reference.tif", out / "scan.h5", out / "lens_result.nc"
tifffile.imwrite(ref_file, pair.reference.values.astype(np.float32))
with h5py.File(sample_file, "w") as h5:
    h5.create_dataset("/entry/data/sample", data=pair.sample.values.astype(np.float32))
command = [sys.executable, "-m", "spinnet_lite", "reconstruct", str(ref_file), f"{sample_file}::/entry/data/sample",
           "-o", str(result_file), "--energy", "14", "--pixel-size", "0.65", "--distance", "500", "--overwrite"]
print("$", " ".join(Path(c).name if c == sys.executable else c for c in command))
t0 = time.perf_counter()
done = subprocess.run(command, capture_output=True, text=True)
cli_time = time.perf_counter() - t0
print(done.stdout.strip() or done.stderr.strip())
assert done.returncode == 0, done.stderr
with xr.open_dataset(result_file) as from_cli:
    from_cli = from_cli.load()
cli_diff = float(np.abs(from_cli.phase.values - results["spinnet"].phase.values).max())
print(f"variables: {list(from_cli.data_vars)}; max |phase(CLI) - phase(Python)| = {cli_diff:.2e} rad "
      f"(float32 files); {cli_time:.1f} s including Python start-up")
summary.update(cli_returncode=done.returncode, cli_phase_max_diff_rad=cli_diff, cli_time_s=cli_time,
               cli_variables=sorted(from_cli.data_vars))

# %% [markdown]
# ### Large images: a 2112 × 2112 frame on a laptop
#
# The network's memory grows with the image area (feature maps and a cost volume at half
# resolution), so one pass over a full 2112 × 2112 detector frame would need several GB.
# `reconstruct(method="spinnet")` therefore cuts images larger than `tile` (default 256 px, the patch size the network was last trained on)
# into overlapping tiles, runs them a few at a time and blends them with a smooth weight that
# falls to zero at every inner tile edge (`spinnet_lite.tiling.predict_tiled`); memory then
# depends on the tile, not on the image. Phase integration runs on the whole image, so the
# phase has no seams. For the integration we pick the least-squares integrator
# (`integration="ls"`, a DCT on the image itself): Frankot–Chellappa mirror-extends the
# gradients to 2H × 2W complex arrays, about 1.2 GB at 2112 × 2112 against 0.24 GB.
#
# Below, a lens frame of `BIG_SIZE` px (2112 in full mode, smaller in quick mode, where `TILE`
# is reduced to keep tiling on) goes through `reconstruct` with `tile=TILE`. We measure the
# wall time, the peak of Python-side allocations (`tracemalloc`: numpy arrays) and the peak
# resident memory of this whole kernel (`resource.getrusage`: everything, torch included).

# %%
def peak_rss_mb():
    """Peak resident set size of this process so far, MB (ru_maxrss is KB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


big = simulate_pair(size=BIG_SIZE, phantom="lens", geometry=geom, photons=PHOTONS, seed=SEED + 1)
rss_before = peak_rss_mb()
tracemalloc.start()
t0 = time.perf_counter()
big_result = reconstruct(big.reference, big.sample, method="spinnet", model=model, geometry=geom, tile=TILE,
                         integration="ls")
big_time = time.perf_counter() - t0
_, traced_peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
rss_after = peak_rss_mb()
big_mask = ndimage.binary_erosion(big.support.values > 0, iterations=max(4, BIG_SIZE // 32))
_, big_rms = residual_after_paraboloid(big_result.phase, big_mask)
image_mb = big.reference.values.astype(np.float32).nbytes / 2**20
print(f"{BIG_SIZE} x {BIG_SIZE} px in {TILE} px tiles: {big_time:.1f} s")
print(f"  one image: {image_mb:.0f} MB (float32); Python-side peak during reconstruct: {traced_peak / 2**20:.0f} MB")
print(f"  peak resident memory of this kernel: {rss_before:.0f} MB before, {rss_after:.0f} MB after")
print(f"  residual after paraboloid: {big_rms:.3f} rad = {big_rms / (2 * math.pi):.4f} waves; "
      f"apex radius {apex_radius_um(big_result.phase.values, big_mask):.1f} um")
big_max_d = float(np.hypot(big.dx, big.dy).max())
beyond = float((np.hypot(big.dx, big.dy).values > TRAINED_MAX_PX).mean())
print(f"  largest displacement in this frame: {big_max_d:.1f} px ({beyond:.0%} of the pixels beyond the "
      f"~{TRAINED_MAX_PX} px the network was trained on)")
summary["large_max_displacement_px"] = big_max_d
summary["large"] = {"size": BIG_SIZE, "tile": TILE, "time_s": big_time, "python_peak_mb": traced_peak / 2**20,
                    "peak_rss_mb": rss_after, "residual_rms_rad": big_rms,
                    "apex_radius_um": apex_radius_um(big_result.phase.values, big_mask),
                    "finite": bool(np.isfinite(big_result.phase.values).all())}

fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), layout="constrained")
step = max(1, BIG_SIZE // 512)  # draw at most ~512 px
big_residual = residual_after_paraboloid(big_result.phase, big_mask)[0]
for ax, img, title, cmap in [(axes[0], big_result.dx.values, "SPINNet $d_x$ [px] (tiled)", "RdBu_r"),
                             (axes[1], big_result.phase.values, "phase [rad]", "viridis"),
                             (axes[2], big_residual, "residual [rad]", "RdBu_r")]:
    img = img[::step, ::step]
    lim = float(np.nanpercentile(np.abs(img), 99)) if cmap == "RdBu_r" else None
    im = ax.imshow(img, cmap=cmap, vmin=-lim if lim else None, vmax=lim,
                   extent=[0, BIG_SIZE * geom.pixel_size_um, BIG_SIZE * geom.pixel_size_um, 0])
    ax.set(title=title, xlabel="x [um]", ylabel="y [um]")
    fig.colorbar(im, ax=ax, shrink=0.85)
fig.suptitle(f"{BIG_SIZE} x {BIG_SIZE} lens frame, {TILE} px tiles, {big_time:.0f} s, peak RSS {rss_after:.0f} MB")
save(fig, "lens_large.png")


# %% [markdown]
# **Read the large frame with its displacement range in mind.** Memory and time stay bounded
# (the numbers above), but a lens of the same curvature over a 2112 px field bends the rays
# further at its rim than anything in the training set (printed above): there the network
# extrapolates, and the residual after the paraboloid shows it. This is the honest limit of a
# network trained on a fixed displacement range — retrain with a larger range
# (`Geometry.training(sample_detector_mm=...)`) or use XST with a larger search for such data.

# %%
(out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
print(json.dumps(summary, indent=1, default=float)[:1500])
