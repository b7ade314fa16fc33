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
# # 05 · A beryllium lens: SPINNet and XST side by side
#
# The seed's first experimental test (section 3.2.1, Fig. 6) is a compound-refractive-lens
# element: a bi-concave parabolic **beryllium lens** with an apex radius of 200 µm, imaged at
# 14 keV with 0.65 µm pixels, 500 mm from sample to detector. A parabolic lens has a parabolic
# phase, so whatever is left after subtracting the best-fitting paraboloid measures the
# method's error. In this notebook you put the trained network and the classical tracker to
# that test, then run both on your own files and on frames too large to process in one piece.
#
# **Learning objectives.** After this notebook you can
#
# 1. predict the speckle displacement of a parabolic lens from its thickness profile;
# 2. run SPINNet and XST through one call, `reconstruct(..., geometry=...)`, and get the
#    differential phase, transmission and phase;
# 3. judge a phase with the residual after the best paraboloid (in radians and wavelengths)
#    and with the apex radius it implies;
# 4. reconstruct your own TIFF/HDF5 files from Python or the command line, and large frames in
#    bounded memory.
#
# **Prerequisites:** notebook 01 (Eq. 1, displacement ↔ phase gradient), notebook 00 or 04
# (the bundled network); numpy and xarray basics.
#
# **Run time** on a 2-core CPU: a few minutes in the default mode, most of it on the seed's
# full 2112 × 2112 frame (sections 4-5); under a minute with `QUICK = True`. The peak memory
# stays under Binder's 2 GB; sections 4-5 print what each step took and the last cell this
# run's time and peak.

# %% [markdown]
# <div style="border: 1px solid #888; border-radius: 6px; padding: 0.6em 1em; background: #f6f6f6">
#
# **Seed vs this project: the lens.**
#
# * **Data** — the seed measured a real lens; its data are not public. Here the lens is
#   simulated (`simulate_pair(phantom="lens")`) with Poisson noise, so the residual is the
#   *method's* error only: a real lens adds its own figure errors.
# * **Geometry** — the seed's 14 keV, 0.65 µm pixels, 500 mm sample-to-detector and 200 µm
#   apex radius (`Geometry()`). The seed does not give this experiment's mask-to-detector
#   distance; the project assumes the mask further upstream (printed below), in the seed's
#   order source → mask → sample → detector. The mask pitch is the project's choice.
# * **Forward model** — Eq. 1, first order: no edge fringes (the Laplacian term) and no
#   dark-field. The wave through the mask is simulated finer than the pixel and binned.
# * **Network** — the project's `lite` network, trained on the project's own simulations
#   (notebook 04), not the seed's full network.
# * **XST** — the project's vectorised zero-normalised cross-correlation tracker
#   (`spinnet_lite.xst`), not the seed's implementation.
# * **Analysis region** — the seed fits inside the central 800 µm circle of its 2112 × 2112
#   frame. Section 5 does the same on a simulated 2112 × 2112 frame (`LARGE_SIZE`; a smaller
#   frame shrinks the circle to fit inside the lens aperture); section 2 fits inside the
#   aperture of a smaller frame.
# </div>

# %% tags=["parameters"]
QUICK = False  # True: small images (the tests run this)
SIZE = 512  # lens image size of sections 1-3, px
PHOTONS = 20000  # Poisson noise: photons per pixel of unit intensity
LARGE_SIZE = 2112  # frame of sections 4-5, px: the seed's full frame
LARGE_FORWARD = "wave"  # forward model of the large frame: "wave" (full Fresnel propagation) or "eq1"
LARGE_OVERSAMPLE = None  # sub-pixels per pixel of the large frame's wave simulation (None: the simulator's default)
PITCH = 4  # mask cell of the large frame, px
XST_SEARCH = 10  # XST's largest shift on the large frame, px (the lens moves the speckle by up to ~8 px)
TILE = 256  # tile side for SPINNet on large images
CIRCLE_UM = 800.0  # diameter of the seed's analysis circle, um
SEED = 0
OUTPUT_DIR = "../output/05"

# %%
if QUICK:  # every code path still runs, on less data
    SIZE, LARGE_SIZE, TILE = 128, 256, 128

# %%
# %matplotlib inline
import math
import sys
import time

import h5py
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tifffile
import xarray as xr
from IPython.display import display
from scipy import ndimage

from spinnet_lite import Geometry, load_pretrained, nbtools, plots, reconstruct, simulate_pair
from spinnet_lite.metrics import circle_mask, lens_residuals, residual_after_paraboloid
from spinnet_lite.phantoms import BE_DELTA_14KEV
from spinnet_lite.tiling import tile_starts

lesson = nbtools.Lesson(OUTPUT_DIR, quick=QUICK, size=SIZE, photons=PHOTONS, seed=SEED)
model = load_pretrained()
lesson.record(model_config=model.config.name)
print(f"SPINNet config {model.config.name!r}, {model.num_parameters():,} parameters")

# %% [markdown]
# ## 1 · The lens
#
# A bi-concave lens of two paraboloids, seen along its axis, is $t(r) = r^2/R$ thick at
# radius $r$ ($R$ the apex radius) inside its aperture. With the refractive index
# $n = 1 - \delta + i\beta$ it shifts the phase by
#
# $$ \phi(r) = -k\,\delta\,t(r) = -\frac{2\pi\delta}{\lambda}\,\frac{r^2}{R}, $$
#
# so the speckle moves by $d = \frac{\lambda z}{2\pi p^2}\nabla\phi$: linearly in $r$, towards
# the axis (an X-ray lens is concave because $n < 1$). In length units
# $d = -z\,r/f$ with the focal length $f = R / 2\delta$.

# %%
geom = Geometry()  # the seed's lens experiment
print(f"{geom.energy_kev:g} keV, {geom.pixel_size_um} um pixels, sample {geom.sample_detector_mm:g} mm and mask "
      f"{geom.mask_detector_mm:g} mm from the detector (mask upstream: {geom.mask_upstream}); "
      f"1 rad/px of phase gradient moves the speckle by {geom.shift_per_gradient:.2f} px")
print(f"Be delta at 14 keV = {BE_DELTA_14KEV:.3g}: focal length f = R / 2 delta = {200e-6 / (2 * BE_DELTA_14KEV):.1f} m")
pair = simulate_pair(size=SIZE, phantom="lens", geometry=geom, photons=PHOTONS, seed=SEED)
support = pair.support.values > 0
d_max = float(np.hypot(pair.dx, pair.dy).max())
lesson.record(max_displacement_px=d_max, phase_range_rad=float(pair.phase.max() - pair.phase.min()))
print(f"lens frame {SIZE} px = {SIZE * geom.pixel_size_um:.0f} um; phase {float(pair.phase.min()):.2f} .. "
      f"{float(pair.phase.max()):.2f} rad; max |d| = {d_max:.2f} px; transmission {float(pair.transmission.min()):.4f} .. 1")

# %%
fig, axes = plt.subplots(1, 4, figsize=(17, 4.2), layout="constrained")
p_um = geom.pixel_size_um
for ax, (img, title, cmap) in zip(axes[:3], [(pair.reference, "reference $I_r$", "gray"),
                                             (pair.sample, "sample $I_s$", "gray"),
                                             (pair.phase, "true phase [rad]", "viridis")]):
    im = plots.show_map(ax, img, cmap, title=title, pixel_size_um=p_um)
    fig.colorbar(im, ax=ax, shrink=0.8)
lim = plots.shared_limits([pair.dx], symmetric=True)
im = plots.show_map(axes[3], pair.dx, "RdBu_r", *lim, title="true $d_x$ [px] and the field $(d_x, d_y)$",
                    pixel_size_um=p_um)
plots.quiver_field(axes[3], pair.dx, pair.dy)
fig.colorbar(im, ax=axes[3], shrink=0.8)
lesson.savefig(fig, "lens_pair.png")

# %% [markdown]
# > **Think!** The arrows point towards the axis and grow linearly with $r$. Where would they
# > point for a *convex* Be lens? And why do they stop at the rim of the aperture?
#
# ## 2 · SPINNet and XST on the same pair
#
# Both through one call, `reconstruct(reference, sample, method=..., geometry=geom)`. With a
# geometry the result holds the phase gradients $\partial\phi/\partial x$,
# $\partial\phi/\partial y$ (rad/px: the displacement divided by $\lambda z / 2\pi p^2$) and the
# phase integrated from them (Frankot–Chellappa), besides $d_x$, $d_y$ and $T$.

# %%
results, times = {}, {}
for method in ("spinnet", "xst"):
    t0 = time.perf_counter()
    results[method] = reconstruct(pair.reference, pair.sample, method=method,
                                  model=model if method == "spinnet" else None, geometry=geom)
    times[method] = time.perf_counter() - t0
lesson.record(time_s=times)
print(", ".join(f"{m}: {t:.2f} s" for m, t in times.items()))

# %% [markdown]
# ### The residual after the best paraboloid
#
# `metrics.residual_after_paraboloid` fits $a + bx + cy + dx^2 + exy + fy^2$ by least squares
# and returns what is left and its rms. We fit inside the aperture, a few pixels in from the
# rim (where the true phase bends over to the flat frame). The rms is given in radians and in
# wavelengths of optical path (rad / 2π). A rotationally symmetric fit
# $\phi = a + bx + cy + q(x^2 + y^2)$ gives the **apex radius** back: $R = -k\delta / q$.

# %%
mask = ndimage.binary_erosion(support, iterations=max(4, SIZE // 32))


def apex_radius_um(phase, mask, geometry=geom):
    """R from the least-squares fit phase = a + b x + c y + q (x^2 + y^2), x in metres: R = -k delta / q."""
    h, w = np.shape(phase)
    y, x = np.mgrid[0:h, 0:w].astype(float)
    x, y = (x - (w - 1) / 2) * geometry.pixel_size_m, (y - (h - 1) / 2) * geometry.pixel_size_m
    basis = np.stack([np.ones_like(x), x, y, x**2 + y**2], -1)[mask]
    coef, *_ = np.linalg.lstsq(basis, np.asarray(phase)[mask], rcond=None)
    return -2 * math.pi / geometry.wavelength_m * BE_DELTA_14KEV / coef[3] * 1e6


rows = {"truth": pair, "SPINNet": results["spinnet"], "XST": results["xst"]}
residuals, table = {}, {}
for name, ds in rows.items():
    residuals[name], rms = residual_after_paraboloid(ds.phase, mask)
    err = (ds.phase.values - pair.phase.values)[mask]
    table[name] = {"residual_rms_rad": rms, "residual_rms_waves": rms / (2 * math.pi),
                   "apex_radius_um": apex_radius_um(ds.phase.values, mask),
                   "phase_rmse_rad": float(np.sqrt(np.mean((err - err.mean()) ** 2))),
                   "displacement_rmse_px": float(np.sqrt(np.mean(((ds.dx - pair.dx) ** 2 + (ds.dy - pair.dy) ** 2)
                                                                 .values[mask])))}
lesson.record(lens=table)
display(pd.DataFrame(table).T.round(4))

# %% [markdown]
# Now the maps. Every row shares one colour scale per column (the truth's), and beside each
# map is its **error** (result − truth) on one scale for both methods: a method that is 15×
# off looks 15× off. The phase is shown with its mean over the fit region removed (a phase is
# only defined up to a constant).

# %%
truth_maps = {"dphi_dx": geom.displacement_to_dphi(pair.dx.values), "dphi_dy": geom.displacement_to_dphi(pair.dy.values),
              "transmission": pair.transmission.values, "phase": pair.phase.values - pair.phase.values[mask].mean()}
method_maps = {name: {"dphi_dx": ds.dphi_dx.values, "dphi_dy": ds.dphi_dy.values, "transmission": ds.transmission.values,
                      "phase": ds.phase.values - ds.phase.values[mask].mean()}
               for name, ds in (("SPINNet", results["spinnet"]), ("XST", results["xst"]))}
columns = [("dphi_dx", "$\\partial\\phi/\\partial x$ [rad/px]", "RdBu_r"),
           ("dphi_dy", "$\\partial\\phi/\\partial y$ [rad/px]", "RdBu_r"),
           ("transmission", "transmission $T$", "gray"), ("phase", "phase [rad]", "viridis")]
fig = plots.compare_maps(truth_maps, method_maps, columns, pixel_size_um=p_um, mask=mask,
                         row_notes={n: f"{times[m]:.2f} s" for n, m in (("SPINNet", "spinnet"), ("XST", "xst"))})
fig.suptitle(f"Be lens, {SIZE} px, {PHOTONS} photons/px: truth, both methods and their errors")
lesson.savefig(fig, "lens_comparison.png")

# %% [markdown]
# The residuals after the paraboloid, on one scale for both methods, and a profile through the
# axis:

# %%
fig = plots.compare_maps(None, {f"{n}: rms {table[n]['residual_rms_rad']:.3f} rad": {"residual": residuals[n]}
                                for n in ("SPINNet", "XST")},
                         [("residual", "residual after the paraboloid [rad]", "RdBu_r")], pixel_size_um=p_um,
                         percentile=99.5, panel_size=3.6)
lesson.savefig(fig, "lens_residuals.png")
fig, axes = plt.subplots(1, 2, figsize=(13, 3.8), layout="constrained")
mid = SIZE // 2
for name, ds in rows.items():
    axes[0].plot(pair.x.values, ds.phase.values[mid] - ds.phase.values[mask].mean(), label=name, lw=1.2)
    axes[1].plot(pair.x.values, residuals[name][mid], label=f"{name}: rms {table[name]['residual_rms_rad']:.3f} rad", lw=1)
axes[0].set(xlabel="x [µm]", ylabel="phase [rad]", title="phase along the middle row")
axes[1].set(xlabel="x [µm]", ylabel="residual [rad]", title="residual after the best paraboloid")
for ax in axes:
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
lesson.savefig(fig, "lens_profiles.png")

# %% [markdown]
# > **Think!** A method can have the smaller *displacement* error and still the larger
# > *phase* residual. How? (Hint: integration averages out noise that changes from pixel to
# > pixel, but not an error that is smooth over the whole lens.)
#
# ## 3 · Your own data
#
# ### In Python
#
# Any two 2-D arrays of the same shape (at least 64 × 64) work: numpy arrays or xarray
# DataArrays, any intensity scale. Flat-field and dark-field correction are yours to do first
# (subtract the dark, divide by the flat); the reference must be a speckle image without the
# sample.
#
# ```python
# from spinnet_lite import Geometry, reconstruct
# geom = Geometry(energy_kev=14, pixel_size_um=0.65, sample_detector_mm=500)
# result = reconstruct(reference, sample, method="spinnet", geometry=geom)   # or method="xst"
# result.phase.plot()                  # dx, dy, transmission, dphi_dx, dphi_dy, phase
# result.to_netcdf("lens_result.nc")
# ```
#
# ### On the command line
#
# `python -m spinnet_lite reconstruct REF SAMPLE -o out.nc` reads `.tif/.tiff`, `.h5/.hdf5`
# (`file.h5::/path/to/dataset`), `.npy`, `.npz` and `.nc`; `--energy` (keV), `--pixel-size`
# (µm) and `--distance` (sample-to-detector, mm) together add the phase. Here we write the
# pair as a TIFF reference and an HDF5 sample, run the command and read its netCDF back.

# %%
ref_file, sample_file, result_file = lesson.path("reference.tif"), lesson.path("scan.h5"), lesson.path("lens_result.nc")
tifffile.imwrite(ref_file, pair.reference.values.astype(np.float32))
with h5py.File(sample_file, "w") as h5:
    h5.create_dataset("/entry/data/sample", data=pair.sample.values.astype(np.float32))
command = [sys.executable, "-m", "spinnet_lite", "reconstruct", str(ref_file), f"{sample_file}::/entry/data/sample",
           "-o", str(result_file), "--energy", str(geom.energy_kev), "--pixel-size", str(geom.pixel_size_um),
           "--distance", str(geom.sample_detector_mm), "--overwrite"]
print("$", " ".join(["python"] + command[1:]))
kernel_rss = nbtools.rss_mb()  # the kernel's memory now: it waits while the command runs beside it
t0 = time.perf_counter()
done, cli_peak_mb = nbtools.run_command(command)  # subprocess.run(command, ...) and the command's peak memory
cli_time = time.perf_counter() - t0
print(done.stdout.strip() or done.stderr.strip())
with xr.open_dataset(result_file) as from_cli:
    from_cli = from_cli.load()
cli_diff = float(np.abs(from_cli.phase.values - results["spinnet"].phase.values).max())
lesson.record(cli_returncode=done.returncode, cli_phase_max_diff_rad=cli_diff, cli_time_s=cli_time,
              cli_variables=sorted(from_cli.data_vars), cli_peak_rss_mb=cli_peak_mb,
              kernel_rss_during_cli_mb=kernel_rss)
print(f"variables {list(from_cli.data_vars)}; max |phase(CLI) - phase(Python)| = {cli_diff:.1e} rad "
      f"(float32 files); {cli_time:.1f} s including Python's start-up")
del from_cli, results, rows, truth_maps, method_maps, residuals  # done with: memory for the large frame

# %% [markdown]
# ## 4 · Large frames in bounded memory
#
# The network's memory grows with the image area, so `reconstruct(method="spinnet", tile=...)`
# can cut a large image into overlapping tiles, run them a few at a time and blend them with a
# weight that falls to zero at every inner tile edge (`spinnet_lite.tiling.predict_tiled`):
# memory then depends on the tile, not on the image. The phase is integrated over the whole
# image, so it has no seams; the least-squares integrator (`integration="ls"`) needs a quarter
# of Frankot–Chellappa's memory on large frames.
#
# The frame here is `LARGE_SIZE` px, the seed's 2112 × 2112, simulated with the wave model
# (`forward="wave"`: the wave through the mask and the lens, propagated in their order along
# the beam, on a grid finer than the pixel). That grid is the memory-hungry part: at 2112 px
# it is about 4600 × 4600 sub-pixels, so the simulator keeps a single complex64 copy of the
# wave, propagates it in place and makes the mask, the lens and the detector image a band of
# rows at a time. We measure the wall time and the memory (`nbtools.measure`; the kernel's
# peak counts everything since the kernel started), and show the truth beside the
# reconstruction and its error, on the truth's scale.

# %%
large_kw = {} if LARGE_OVERSAMPLE is None else {"oversample": LARGE_OVERSAMPLE}
with nbtools.measure("simulate the large frame") as m_sim:
    big = simulate_pair(size=LARGE_SIZE, pitch=PITCH, phantom="lens", geometry=geom, photons=PHOTONS, seed=SEED + 1,
                        forward=LARGE_FORWARD, **large_kw)
print(m_sim)
lesson.record(large_simulation={"size": LARGE_SIZE, "forward": LARGE_FORWARD, "pitch_px": PITCH,
                                "time_s": m_sim.seconds, "python_peak_mb": m_sim.python_peak_mb,
                                "peak_rss_mb": m_sim.rss_peak_mb})
with nbtools.measure(f"SPINNet in {TILE} px tiles") as m_rec:
    big_result = reconstruct(big.reference, big.sample, method="spinnet", model=model, geometry=geom, tile=TILE,
                             integration="ls")
print(m_rec)
n_tiles = len(tile_starts(LARGE_SIZE, TILE, 32)) ** 2
big_d = np.hypot(big.dx.values, big.dy.values)
big_err = np.hypot(big_result.dx.values - big.dx.values, big_result.dy.values - big.dy.values)
lesson.record(large={"size": LARGE_SIZE, "tile": TILE, "tiles": n_tiles, "time_s": m_rec.seconds,
                     "python_peak_mb": m_rec.python_peak_mb, "peak_rss_mb": m_rec.rss_peak_mb,
                     "max_displacement_px": float(big_d.max()), "finite": bool(np.isfinite(big_result.phase.values).all()),
                     "displacement_rmse_px": float(np.sqrt(np.mean(big_err[big.support.values > 0] ** 2)))})
print(f"{LARGE_SIZE} px frame, {n_tiles} tiles of {TILE} px; largest displacement {big_d.max():.2f} px; "
      f"displacement rmse inside the aperture {lesson['large']['displacement_rmse_px']:.3f} px")

# %%
fig = plots.compare_maps({"dx": big.dx.values, "dy": big.dy.values}, {f"SPINNet, {TILE} px tiles": big_result},
                         [("dx", "$d_x$ [px]", "RdBu_r"), ("dy", "$d_y$ [px]", "RdBu_r")], pixel_size_um=p_um,
                         panel_size=3.4)
fig.suptitle(f"{LARGE_SIZE} x {LARGE_SIZE} lens frame: {m_rec.seconds:.0f} s, kernel peak {m_rec.rss_peak_mb:.0f} MB")
lesson.savefig(fig, "lens_large.png")

# %% [markdown]
# Where does the error grow? Binned by the true displacement magnitude:

# %%
edges = np.arange(0, math.ceil(big_d.max()) + 1.0, 0.5)
which = np.digitize(big_d, edges) - 1
by_d = pd.DataFrame([{"|d| from [px]": edges[i], "to [px]": edges[i + 1], "pixels": int((which == i).sum()),
                      "rms error [px]": float(np.sqrt(np.mean(big_err[which == i] ** 2)))}
                     for i in range(len(edges) - 1) if (which == i).sum() > 50])
lesson.record(large_error_by_displacement=by_d.to_dict(orient="list"))
display(by_d.round(3))
del big_d, big_err, which  # free the large frame's maps as soon as they are done with

# %% [markdown]
# ## 5 · The seed's analysis: inside the central circle, both methods
#
# The seed reports, for its 2112 × 2112 frame, the residual after the best paraboloid inside
# the central 800 µm circle for SPINNet and for XST, and the rms of their difference. The same
# analysis on the frame of section 4 (on a frame smaller than the seed's the circle shrinks to
# fit inside the lens aperture). XST searches up to `XST_SEARCH` px, beyond the lens's largest
# displacement, and runs in bands of rows, so its memory stays a few full-size arrays.
# `metrics.lens_residuals` fits the paraboloid inside the circle (`metrics.circle_mask`) for
# each phase and for the difference of two.

# %%
spinnet_phase = big_result.phase.values  # keep SPINNet's phase, free the rest before XST's search
big = big.drop_vars(["dx", "dy", "transmission"])
del big_result
with nbtools.measure(f"XST on the large frame (search {XST_SEARCH} px)") as m_xst:
    xst_phase = reconstruct(big.reference, big.sample, method="xst", geometry=geom, search=XST_SEARCH,
                            integration="ls").phase.values
print(m_xst)
aperture_um = float(np.sqrt(big.support.values.sum() / math.pi)) * p_um  # radius of the lens aperture
circle_d_um = min(CIRCLE_UM, 1.8 * aperture_um)
# the circle's square, cut out with the frame's centre kept at its centre (the fit does not change, it is smaller)
cut = max(0, int((LARGE_SIZE - 1) / 2 - circle_d_um / 2 / p_um) - 2)
inner = (slice(cut, LARGE_SIZE - cut), slice(cut, LARGE_SIZE - cut))
phases = {"truth": big.phase.values[inner], "SPINNet": spinnet_phase[inner], "XST": xst_phase[inner]}
seed_figures = lens_residuals(phases, geom, diameter_um=circle_d_um)
circle = circle_mask(phases["truth"].shape, geom, circle_d_um)
residual_maps = {name: residual_after_paraboloid(phase, circle)[0] for name, phase in phases.items()}
residual_maps["SPINNet - XST"] = residual_after_paraboloid(phases["SPINNet"] - phases["XST"], circle)[0]
diff_rms = seed_figures["difference_rms"]["SPINNet-XST"]
lesson.record(circle={"diameter_um": circle_d_um, "seed_diameter_um": CIRCLE_UM, "frame_px": LARGE_SIZE,
                      "pixels": seed_figures["pixels"], "residual_rms_rad": seed_figures["residual_rms"],
                      "difference_rms_rad": diff_rms, "xst_search_px": XST_SEARCH, "xst_time_s": m_xst.seconds,
                      "xst_peak_rss_mb": m_xst.rss_peak_mb})
print(f"circle of {circle_d_um:.0f} um diameter ({'as in the seed' if circle_d_um == CIRCLE_UM else 'shrunk to fit'}, "
      f"{seed_figures['pixels']:,} pixels) in the {LARGE_SIZE} x {LARGE_SIZE} px frame")
for name, rms in seed_figures["residual_rms"].items():
    print(f"  residual after the paraboloid, {name:8s}: {rms:.4f} rad ({rms / (2 * math.pi):.5f} waves)")
print(f"  rms of the difference SPINNet - XST (after its own paraboloid): {diff_rms:.4f} rad")

# %%
lim = plots.shared_limits(list(residual_maps.values()), symmetric=True, percentile=99.5, mask=circle)
fig, axes = plt.subplots(1, len(residual_maps), figsize=(4.2 * len(residual_maps), 4.4), layout="constrained")
for ax, (name, residual) in zip(axes, residual_maps.items()):
    rms = diff_rms if name == "SPINNet - XST" else seed_figures["residual_rms"][name]
    im = plots.show_map(ax, residual, "RdBu_r", *lim, title=f"{name}: rms {rms:.4f} rad", pixel_size_um=p_um,
                        circle=((circle.shape[0] - 1) / 2, (circle.shape[1] - 1) / 2, circle_d_um / 2 / p_um))
fig.colorbar(im, ax=axes, shrink=0.8, label="residual after the best paraboloid [rad]")
fig.suptitle(f"inside the central {circle_d_um:.0f} µm circle of the {LARGE_SIZE} px lens frame (one colour scale)")
lesson.savefig(fig, "lens_circle.png")
del big, spinnet_phase, xst_phase, phases, residual_maps  # the large frame is done with

# %% [markdown]
# ## 6 · Exercises
#
# **Exercise 05.1 — predict the displacement.** Using $d = -z\,r/f$ with $f = R/2\delta$
# (section 1), compute in pixels the true $d_x$ at the distance `r_um` (printed by the cell)
# to the right of the axis on the middle row of `pair` (use `geom`, `BE_DELTA_14KEV` and
# $R$ = 200 µm). The check reads the simulated $d_x$ at that pixel.
#
# <details><summary>Solution</summary>
#
# ```python
# f = 200e-6 / (2 * BE_DELTA_14KEV)                        # m
# answer = -geom.sample_detector_mm * 1e-3 * r_um * 1e-6 / f / geom.pixel_size_m   # px
# ```
# Negative: towards the axis. The simulated value differs slightly because the simulator
# takes the gradient on the pixel grid.
# </details>

# %%
col = SIZE // 2 + SIZE // 8
r_um = (col - (SIZE - 1) / 2) * geom.pixel_size_um
print(f"r_um = {r_um:.3f} um")
answer = None  # d_x at r_um, px
lesson.check_exercise("05.1", answer, float(pair.dx.values[SIZE // 2, col]), rtol=0.05, quiet=True)

# %% [markdown]
# **Exercise 05.2 — in nanometres.** An rms phase residual of $\sigma$ rad is
# $\sigma / 2\pi$ wavelengths of optical path, i.e. $\sigma\lambda/2\pi$ in length. What is
# XST's residual rms (section 2) as an optical path difference in **nanometres**?
#
# <details><summary>Solution</summary>
#
# ```python
# answer = table["XST"]["residual_rms_rad"] / (2 * math.pi) * geom.wavelength_m * 1e9
# ```
# Compare it with the wavelength (`geom.wavelength_m`): a lens is a test object whose errors
# are a tiny fraction of a wavelength, which is why the seed uses one.
# </details>

# %%
answer = None  # XST's residual as an optical path difference, nm
lesson.check_exercise("05.2", answer, table["XST"]["residual_rms_rad"] / (2 * math.pi) * geom.wavelength_m * 1e9,
                      rtol=0.01, quiet=True)

# %% [markdown]
# **Exercise 05.3 — count the tiles.** `reconstruct` cut the large frame into tiles of `TILE`
# px that overlap by at least 32 px (`tiling.tile_starts`). How many tiles would a full
# 2112 × 2112 frame need with 256 px tiles?
#
# <details><summary>Solution</summary>
#
# ```python
# answer = len(tile_starts(2112, 256, 32)) ** 2
# ```
# Each step advances at most 256 − 32 = 224 px, and the last tile ends at the frame's edge.
# The tiles run a few at a time, so the memory is that of a few 256 px passes.
# </details>

# %%
answer = None  # tiles for a 2112 x 2112 frame
lesson.check_exercise("05.3", answer, len(tile_starts(2112, 256, 32)) ** 2, quiet=True)

# %% [markdown]
# **Exercise 05.4 — fewer photons (open-ended).** Set `PHOTONS = 2000` in the parameters
# cell and run sections 1-2 again. Which method's residual grows more, and why?
#
# <details><summary>What to expect</summary>
#
# Both grow; XST's error is mostly noise that changes from pixel to pixel, which the phase
# integration averages, while the network's error has a smooth part that survives the
# integration. Compare the error maps of `lens_comparison.png` at both photon counts.
# </details>
#
# ## What we learned
#
# The numbers of this run:

# %%
s, x_ = table["SPINNet"], table["XST"]
print(f"On the {SIZE} px lens at {PHOTONS} photons/px, the residual after the best paraboloid is "
      f"{s['residual_rms_rad']:.3f} rad ({s['residual_rms_waves']:.4f} waves) for SPINNet and "
      f"{x_['residual_rms_rad']:.3f} rad ({x_['residual_rms_waves']:.4f} waves) for XST; the fitted apex radius "
      f"{s['apex_radius_um']:.1f} and {x_['apex_radius_um']:.1f} um (truth 200 um).")
print(f"Displacement rmse inside the aperture: SPINNet {s['displacement_rmse_px']:.3f} px, "
      f"XST {x_['displacement_rmse_px']:.3f} px.")
print(f"The {LARGE_SIZE} px frame ran in {n_tiles} tiles in {m_rec.seconds:.0f} s at a kernel peak of "
      f"{m_rec.rss_peak_mb:.0f} MB; its largest displacement is {lesson['large']['max_displacement_px']:.1f} px.")
print(f"Inside the {circle_d_um:.0f} um circle of the {LARGE_SIZE} px frame: residual after the paraboloid "
      f"SPINNet {seed_figures['residual_rms']['SPINNet']:.4f} rad, XST {seed_figures['residual_rms']['XST']:.4f} rad "
      f"(truth {seed_figures['residual_rms']['truth']:.4f} rad), their difference {diff_rms:.4f} rad rms; "
      f"XST took {m_xst.seconds:.0f} s.")

# %% [markdown]
# * A parabolic lens is a clean test: the truth is a paraboloid, so the residual after the best
#   paraboloid is the method's error, in radians or wavelengths, and the curvature gives the
#   apex radius back.
# * The displacement error and the phase error are different questions: integration averages
#   pixel-to-pixel noise away but keeps smooth errors. Compare the error maps, not only the
#   rms.
# * `reconstruct` runs both methods on any pair of images, from Python or the command line,
#   and large frames in tiles with bounded memory; the error table of section 4 shows where
#   the network leaves the displacement range it was trained on.
#
# Next: notebook 06 uses the same reconstruction on every projection of a tomographic scan.

# %%
summary_file = lesson.finish()
