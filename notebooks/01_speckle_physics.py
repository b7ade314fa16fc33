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
# # 01 · Near-field speckle physics
#
# Speckle-based phase-contrast imaging puts a random mask in an X-ray beam and records the
# pattern it makes on a detector, once without the sample (the **reference** $I_r$) and once
# with it (the **sample** image $I_s$). The sample bends the rays by tiny angles, so the
# pattern moves by a few pixels; the movement field is the gradient of the sample's phase.
#
# This notebook builds that picture from the physics up, each step an equation, the
# `spinnet_lite` function that computes it, and a figure:
#
# 1. the geometry: wavelength and the displacement produced by a phase gradient;
# 2. free-space propagation by the Fresnel transfer function, and why it conserves power;
# 3. the coded mask and the speckle it makes at the detector: contrast and grain size
#    against distance, mask pitch and energy;
# 4. the forward model (Eq. 1) $I_s = T \cdot I_r(y - d_y, x - d_x)$: a uniform shift and a
#    lens.
#
# Figures and a `summary.json` of the key numbers are saved to `OUTPUT_DIR`.

# %% tags=["parameters"]
QUICK = False  # True: small images, fewer points (the tests run this)
SIZE = 512  # image size for the forward-model examples, px
SCAN_SIZE = 256  # image size for the speckle-statistics scans, px
PITCHES = [2, 4, 8]  # mask cell sizes, px
ENERGIES_KEV = [8.0, 14.0, 20.0, 30.0]
DISTANCES_MM = [0, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500, 750, 1000]
SEED = 0
OUTPUT_DIR = "../output/01"

# %%
if QUICK:  # every code path still runs, on less data
    SIZE, SCAN_SIZE = 128, 128
    ENERGIES_KEV = [ENERGIES_KEV[0], ENERGIES_KEV[-1]] if len(ENERGIES_KEV) > 1 else ENERGIES_KEV
    DISTANCES_MM = [0, 10, 50, 300, 1000]

# %%
# %matplotlib inline
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from spinnet_lite import Geometry
from spinnet_lite import phantoms
from spinnet_lite.metrics import grain_size_px, speckle_contrast
from spinnet_lite.propagate import fresnel_propagate, fresnel_spread_px, transfer_function
from spinnet_lite.simulate import (MASK_AMPLITUDE, MASK_PHASE, MASK_TRANSMISSION_GAIN, apply_sample,
                                   coded_mask, displacement_from_phase, reference_image)

out = Path(OUTPUT_DIR)
out.mkdir(parents=True, exist_ok=True)
summary = {"quick": QUICK, "size": SIZE, "scan_size": SCAN_SIZE, "seed": SEED}


def save(fig, name):
    """Save a figure into OUTPUT_DIR (PNG) and keep it displayed inline."""
    fig.savefig(out / name, dpi=110, bbox_inches="tight")


# %% [markdown]
# ## 1 · Geometry: wavelength and displacement per phase gradient
#
# The photon energy fixes the wavelength, $\lambda = hc/E$. A sample with phase $\phi(x, y)$
# deflects the beam by the angle $\alpha = \frac{\lambda}{2\pi}\nabla\phi$; over the
# sample-to-detector distance $z$ this moves the speckle by $\delta = z\,\alpha$. In detector
# pixels of size $p$, with the gradient taken per pixel,
#
# $$ d_x\,[\mathrm{px}] = \frac{\lambda z}{2\pi p^2}\,\frac{\partial\phi}{\partial x}\,[\mathrm{rad/px}] .$$
#
# `Geometry()` is the seed's lens experiment: 14 keV, 0.65 µm pixels, 500 mm from sample to
# detector. Its `shift_per_gradient` is the factor $\lambda z / (2\pi p^2)$.

# %%
geom = Geometry()
training = Geometry.training()
one_px = geom.displacement_to_dphi(1.0)
print(f"Geometry(): E = {geom.energy_kev} keV, p = {geom.pixel_size_um} um, z = {geom.sample_detector_mm} mm")
print(f"  wavelength          = {geom.wavelength_m * 1e9:.4f} nm")
print(f"  shift_per_gradient  = {geom.shift_per_gradient:.3f} px per rad/px")
print(f"  1 px of displacement <- phase gradient {one_px:.4f} rad/px "
      f"(a phase ramp of 2 pi over {2 * math.pi / one_px:.0f} px)")
print(f"  deflection angle for 1 px: {geom.pixel_size_m / (geom.sample_detector_mm * 1e-3) * 1e6:.2f} urad")
print(f"Geometry.training(): lambda = {training.wavelength_m * 1e9:.3f} nm, z = {training.sample_detector_mm} mm, "
      f"shift_per_gradient = {training.shift_per_gradient:.3f} px per rad/px")
summary.update(wavelength_nm=geom.wavelength_m * 1e9, shift_per_gradient_px=geom.shift_per_gradient,
               gradient_for_1px_rad_per_px=one_px, training_shift_per_gradient_px=training.shift_per_gradient)

# %% [markdown]
# ## 2 · Free-space propagation: the Fresnel transfer function
#
# In the paraxial (near-field) regime a field $U_0(x, y)$ propagated over a distance $z$ is
#
# $$ U_z = \mathcal{F}^{-1}\left[\mathcal{F}[U_0]\; H_z\right], \qquad
#    H_z(f_x, f_y) = \exp\!\left(-i\pi\lambda z\,(f_x^2 + f_y^2)\right), $$
#
# dropping the constant phase $e^{ikz}$. $H_z$ is a pure phase ($|H_z| = 1$) that grows
# quadratically with spatial frequency: fine features dephase first. The finest feature on the
# grid (the Nyquist frequency $1/2p$) is bent by the angle $\lambda/2p$ and spreads by
# $\lambda z / (2p^2)$ pixels, which is how much `fresnel_propagate` pads so that no light
# wraps around the FFT's periodic edges (`fresnel_spread_px`).
#
# `spinnet_lite.propagate.transfer_function` evaluates $H_z$ on the FFT grid; the left panel is
# its (wrapped) phase at the seed's mask-to-detector distance, the right panel the unwrapped
# phase along $f_x$ for several distances.

# %%
n_tf = 128
d_seed = geom.mask_detector_mm * 1e-3
H = np.fft.fftshift(transfer_function((n_tf, n_tf), d_seed, geom.wavelength_m, geom.pixel_size_m))
f_nyq = 1 / (2 * geom.pixel_size_m)  # cycles per metre
spread = {d: fresnel_spread_px(d * 1e-3, geom.wavelength_m, geom.pixel_size_m) for d in DISTANCES_MM}
print(f"|H| - 1: max {np.abs(np.abs(H) - 1).max():.1e}  (a pure phase)")
print(f"phase of H at the Nyquist frequency, z = {geom.mask_detector_mm:g} mm: "
      f"{-math.pi * geom.wavelength_m * d_seed * f_nyq**2:.1f} rad")
print("Fresnel spread lambda z / 2p^2 [px]:", {f"{d} mm": s for d, s in spread.items()})

fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
f_um = np.fft.fftshift(np.fft.fftfreq(n_tf, d=geom.pixel_size_um))  # cycles per um
ext = [f_um[0], f_um[-1], f_um[-1], f_um[0]]
im = axes[0].imshow(np.angle(H), cmap="twilight", extent=ext, vmin=-math.pi, vmax=math.pi)
axes[0].set(title=f"arg $H_z$ (wrapped), z = {geom.mask_detector_mm:g} mm, {geom.energy_kev:g} keV",
            xlabel="$f_x$ [1/um]", ylabel="$f_y$ [1/um]")
fig.colorbar(im, ax=axes[0], label="phase [rad]")
fx = np.linspace(0, f_nyq, 200)
for d in [d for d in DISTANCES_MM if d > 0][:: max(1, len(DISTANCES_MM) // 5)]:
    axes[1].plot(fx * 1e-6, -math.pi * geom.wavelength_m * d * 1e-3 * fx**2, label=f"z = {d} mm")
axes[1].set(title="arg $H_z$ along $f_x$ ($f_y$ = 0), unwrapped: $-\\pi\\lambda z f_x^2$",
            xlabel="$f_x$ [1/um] (up to Nyquist 1/2p)", ylabel="phase [rad]")
axes[1].legend()
save(fig, "transfer_function.png")

# %% [markdown]
# ### Power is conserved
#
# Because $|H_z| = 1$, Parseval's theorem gives $\sum |U_z|^2 = \sum |U_0|^2$: free space
# only redistributes the intensity. With `pad=0` the propagation is exactly unitary on a
# periodic field; we check it numerically on the mask field of the next section, at every
# distance.

# %% [markdown]
# ## 3 · The coded mask and its speckle
#
# The mask (seed section 2.3) is a random binary image $R$ of cells of `pitch` × `pitch`
# pixels, half of them gold ($R = 1$). It changes the wave's amplitude and phase:
#
# $$ U_0 = \left(A_0 + t_0\,(1 - R)\right)\, e^{\,i\phi_0 R}, \qquad A_0 = 0.7,\; t_0 = 0.3,\; \phi_0 = \pi .$$
#
# Right behind the mask ($z = 0$) only the amplitude is visible: intensities $A_0^2$ and
# $(A_0 + t_0)^2$. The phase steps turn into intensity only after propagation, as the
# diffraction from neighbouring cells interferes. Below, one periodic mask tile (the pitch
# divides the tile, so periodic propagation with `pad=0` is exact) is propagated over several
# distances with `fresnel_propagate`.

# %%
PITCH = geom.mask_pitch_px
tile = coded_mask((SCAN_SIZE, SCAN_SIZE), PITCH, np.random.default_rng(SEED))
U0 = (MASK_AMPLITUDE + MASK_TRANSMISSION_GAIN * (1 - tile)) * np.exp(1j * MASK_PHASE * tile)
power0 = np.sum(np.abs(U0) ** 2)
fields = {d: fresnel_propagate(U0, d * 1e-3, geom.wavelength_m, geom.pixel_size_m, pad=0) for d in DISTANCES_MM}
power_ratios = {d: float(np.sum(np.abs(u) ** 2) / power0) for d, u in fields.items()}
power_ratio = power_ratios[max(DISTANCES_MM)]
worst = max(abs(r - 1) for r in power_ratios.values())
print(f"gold fraction of the tile: {tile.mean():.3f}")
print(f"power ratio sum|U_z|^2 / sum|U_0|^2 at z = {max(DISTANCES_MM)} mm: {power_ratio:.12f}")
print(f"worst |ratio - 1| over {len(DISTANCES_MM)} distances: {worst:.1e}")
summary.update(power_ratio=power_ratio, power_ratio_max_deviation=worst)

shown = [d for d in DISTANCES_MM if d in (0, 10, 50, 300, 1000)] or DISTANCES_MM[:5]
crop = slice(0, min(64, SCAN_SIZE))
fig, axes = plt.subplots(1, len(shown) + 1, figsize=(3.1 * (len(shown) + 1), 3.4), layout="constrained")
axes[0].imshow(tile[crop, crop], cmap="gray_r", interpolation="nearest")
axes[0].set(title=f"mask R (pitch {PITCH} px), black = gold", xlabel="x [px]", ylabel="y [px]")
for ax, d in zip(axes[1:], shown):
    im = ax.imshow(np.abs(fields[d][crop, crop]) ** 2, cmap="gray", interpolation="nearest")
    ax.set(title=f"$|U_z|^2$, z = {d} mm", xlabel="x [px]")
    fig.colorbar(im, ax=ax, shrink=0.8)
fig.suptitle(f"One mask tile propagated at {geom.energy_kev:g} keV (64 x 64 px crop, {geom.pixel_size_um} um pixels)")
save(fig, "mask_propagation.png")

# %% [markdown]
# ### Speckle contrast and grain size
#
# Two numbers describe a speckle pattern $I$ for tracking:
#
# * the **contrast** (visibility) $C = \sigma_I / \langle I \rangle$; right behind the mask it
#   is the amplitude contrast alone, $C_0 = \frac{(A_0+t_0)^2 - A_0^2}{(A_0+t_0)^2 + A_0^2}$
#   for a half-gold mask;
# * the **grain size**, the full width at half maximum of the central peak of the normalised
#   autocorrelation $\Gamma(\Delta) = \langle \tilde I(r)\,\tilde I(r + \Delta)\rangle / \langle \tilde I^2\rangle$,
#   $\tilde I = I - \langle I\rangle$ (computed with the FFT, averaged over $x$ and $y$).
#   Right behind the mask $\Gamma$ is a triangle of half-width one cell, so the grain size is the
#   pitch.
#
# `spinnet_lite.metrics.speckle_contrast` and `grain_size_px` compute these. The patterns come from
# `spinnet_lite.simulate.reference_image` (the simulator's own path: a mask larger than the
# image by the Fresnel spread, propagated and cropped), without detector blur, at every
# distance, pitch and energy of the parameters cell.

# %%
def scan(geometry, pitch):
    """Contrast and grain size of the simulator's reference at every distance."""
    c, g = [], []
    for d in DISTANCES_MM:
        ref = reference_image((SCAN_SIZE, SCAN_SIZE), geometry, np.random.default_rng(SEED), pitch=pitch,
                              blur_px=0, distance_mm=d)
        c.append(speckle_contrast(ref))
        g.append(grain_size_px(ref))
    return np.array(c), np.array(g)


by_pitch = {p: scan(geom, p) for p in PITCHES}
by_energy = {e: scan(Geometry(energy_kev=e), PITCH) for e in ENERGIES_KEV}
c0_theory = ((MASK_AMPLITUDE + MASK_TRANSMISSION_GAIN) ** 2 - MASK_AMPLITUDE**2) / (
    (MASK_AMPLITUDE + MASK_TRANSMISSION_GAIN) ** 2 + MASK_AMPLITUDE**2)
contrast, grain = by_pitch[PITCH] if PITCH in by_pitch else scan(geom, PITCH)
print(f"z = 0: contrast {contrast[0]:.3f} (theory C0 = {c0_theory:.3f}), grain {grain[0]:.2f} px (pitch {PITCH})")
print(f"{'z [mm]':>8} {'contrast':>9} {'grain [px]':>11}   ({geom.energy_kev:g} keV, pitch {PITCH})")
for d, c, g in zip(DISTANCES_MM, contrast, grain):
    print(f"{d:8g} {c:9.3f} {g:11.2f}")
for name, g in [("Geometry()", geom), ("seed simulation (0.06 nm)", Geometry.seed_simulation())]:
    a_m = g.mask_pitch_px * g.pixel_size_m
    print(f"{name}: pitch {g.mask_pitch_px} px, mask {g.mask_detector_mm:g} mm -> "
          f"lambda z / a^2 = {g.wavelength_m * g.mask_detector_mm * 1e-3 / a_m**2:.2f}")

# %%
def fresnel_x(geometry, pitch):
    """Scaled distance lambda z / a^2 (a = the mask cell size), for each distance."""
    a = pitch * geometry.pixel_size_m
    return geometry.wavelength_m * np.asarray(DISTANCES_MM, dtype=float) * 1e-3 / a**2


zpos = np.asarray(DISTANCES_MM, dtype=float) > 0
zmm = np.asarray(DISTANCES_MM, dtype=float)
fig, axes = plt.subplots(2, 3, figsize=(15, 8), layout="constrained")
for p, (c, g) in by_pitch.items():
    axes[0, 0].plot(zmm[zpos], c[zpos], "o-", label=f"pitch {p} px")
    axes[1, 0].plot(zmm[zpos], g[zpos], "o-", label=f"pitch {p} px")
    axes[0, 2].plot(fresnel_x(geom, p)[zpos], c[zpos], "o-", label=f"{geom.energy_kev:g} keV, pitch {p}")
    axes[1, 2].plot(fresnel_x(geom, p)[zpos], g[zpos] / p, "o-", label=f"{geom.energy_kev:g} keV, pitch {p}")
for e, (c, g) in by_energy.items():
    axes[0, 1].plot(zmm[zpos], c[zpos], "s-", label=f"{e:g} keV")
    axes[1, 1].plot(zmm[zpos], g[zpos], "s-", label=f"{e:g} keV")
    ge = Geometry(energy_kev=e)
    axes[0, 2].plot(fresnel_x(ge, PITCH)[zpos], c[zpos], "s--", label=f"{e:g} keV, pitch {PITCH}")
    axes[1, 2].plot(fresnel_x(ge, PITCH)[zpos], g[zpos] / PITCH, "s--", label=f"{e:g} keV, pitch {PITCH}")
for ax in axes[0]:
    ax.axhline(c0_theory, color="k", ls=":", label="z = 0 (amplitude only)")
    ax.set(ylabel="contrast std/mean", xscale="log")
for ax in axes[1, :2]:
    ax.set(ylabel="grain size (FWHM) [px]", xscale="log")
axes[1, 2].set(ylabel="grain size / cell size a", xscale="log")
axes[0, 0].set_title(f"vs distance and pitch ({geom.energy_kev:g} keV)")
axes[0, 1].set_title(f"vs distance and energy (pitch {PITCH} px)")
axes[0, 2].set_title("vs scaled distance $\\lambda z / a^2$")
for ax in axes[:, :2].ravel():
    ax.set_xlabel("mask-to-detector distance z [mm]")
for ax in axes[:, 2]:
    ax.set_xlabel("$\\lambda z / a^2$ (inverse Fresnel number)")
for ax in axes.ravel():
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
save(fig, "speckle_statistics.png")
summary.update(
    distances_mm=[float(d) for d in DISTANCES_MM], pitch_px=PITCH, contrast=contrast.tolist(),
    grain_size_px=grain.tolist(), contrast_at_0_theory=c0_theory,
    contrast_by_pitch={str(p): v[0].tolist() for p, v in by_pitch.items()},
    grain_size_by_pitch={str(p): v[1].tolist() for p, v in by_pitch.items()},
    contrast_by_energy={f"{e:g}": v[0].tolist() for e, v in by_energy.items()},
)

# %% [markdown]
# Reading the plots:
#
# * The contrast starts at the amplitude-only value $C_0$ (dotted line) and rises to about 1,
#   fully developed speckle, once the diffraction blur $\sqrt{\lambda z}$ is comparable with a
#   mask cell $a$, i.e. $\lambda z / a^2 \sim 1$; on the way it overshoots and dips as the
#   fringes of neighbouring cell edges start to overlap.
# * For one pitch, only $\lambda z$ matters: the four energies at the seed's pitch fall on one
#   curve in the right-hand panels. A lower energy (longer wavelength) gives the same speckle at
#   a shorter distance.
# * Different pitches do not collapse exactly: the mask is sampled on the detector's pixel grid,
#   so a 2-px cell has edges as wide as itself and diffracts late, while an 8-px cell has sharp
#   edges whose fringes appear early. The pixel is a second length scale besides $a$.
# * The grain size starts at one cell and drops to roughly half a cell while the edge fringes
#   dominate, then grows slowly again. Small grains with high contrast are what a tracker
#   (and SPINNet) needs; the seed's 300 mm and pitch 4 sit on the plateau.

# %% [markdown]
# ## 4 · The forward model, Eq. 1
#
# The sample displaces the reference pattern and attenuates it:
#
# $$ I_s(y, x) = T(y, x)\; I_r\big(y - d_y(y, x),\; x - d_x(y, x)\big). $$
#
# `spinnet_lite.simulate.apply_sample(reference, dx, dy, transmission)` evaluates it (bicubic
# interpolation, `warp`). A positive $d_x$ moves the pattern towards larger column index.
#
# ### A uniform shift
#
# For an integer shift the result is the reference moved by whole pixels; we check that, then
# look at a sub-pixel shift. For small $d$, the difference image is, to first order,
# $I_s - I_r \approx -d_x\,\partial_x I_r - d_y\,\partial_y I_r$: it is largest on the grains'
# flanks, which is what makes the displacement measurable.

# %%
reference = reference_image((SIZE, SIZE), geom, np.random.default_rng(SEED))  # seed mask, 300 mm, 0.6 px blur
k = 3
shifted = apply_sample(reference, float(k), 0.0, 1.0)
shift_error = float(np.abs(shifted[:, k:] - reference[:, :-k]).max())
print(f"integer shift dx = {k} px: max |I_s(x) - I_r(x - {k})| = {shift_error:.1e}")

sub = 0.25
sample_sub = apply_sample(reference, sub, 0.0, 1.0)
diff = sample_sub - reference
linear = -sub * np.gradient(reference, axis=1)
inner = (slice(8, -8), slice(8, -8))
corr = float(np.corrcoef(diff[inner].ravel(), linear[inner].ravel())[0, 1])
print(f"sub-pixel shift dx = {sub} px: rms difference {diff.std():.3f} (reference rms contrast {reference.std():.3f}); "
      f"correlation with -dx dI/dx = {corr:.3f}")
summary.update(shift_error=shift_error, linear_model_correlation=corr)

c = slice(0, min(48, SIZE))
row = min(20, SIZE // 2)
fig, axes = plt.subplots(1, 4, figsize=(17, 3.8), layout="constrained")
for ax, img, title, cmap in [(axes[0], reference, "reference $I_r$", "gray"),
                             (axes[1], sample_sub, f"sample, $d_x$ = {sub} px", "gray"),
                             (axes[2], diff, "$I_s - I_r$", "RdBu_r")]:
    lim = np.abs(img[c, c]).max() if cmap == "RdBu_r" else None
    im = ax.imshow(img[c, c], cmap=cmap, vmin=-lim if lim else None, vmax=lim, interpolation="nearest")
    ax.axhline(row, color="orange", lw=0.8)
    ax.set(title=title, xlabel="x [px]", ylabel="y [px]")
    fig.colorbar(im, ax=ax, shrink=0.85)
xs = np.arange(c.stop)
axes[3].plot(xs, reference[row, c], "k-", label="reference")
axes[3].plot(xs, sample_sub[row, c], "C1-", label=f"sample ($d_x$ = {sub} px)")
axes[3].set(title=f"profile along row {row} (orange line)", xlabel="x [px]", ylabel="intensity")
axes[3].legend()
save(fig, "uniform_shift.png")

# %% [markdown]
# ### A lens: displacement from a phase gradient
#
# A bi-concave parabolic beryllium lens (apex radius $R$ = 200 µm, seed section 3.2.1) is
# $t(r) = r^2/R$ thick, so its phase is $\phi = -k\,\delta\,r^2 / R$ with $k = 2\pi/\lambda$
# and $n = 1 - \delta$. For X-rays $\delta > 0$, so the *concave* lens focuses, with focal
# length $f = R / 2\delta$. From Section 1 the displacement is linear in position:
#
# $$ \mathbf d = \frac{\lambda z}{2\pi}\nabla\phi = -\frac{2\delta z}{R}\,\mathbf r = -\frac{z}{f}\,\mathbf r ,$$
#
# pointing towards the axis. `phantoms.lens_phantom` gives $\phi$ and $T$,
# `displacement_from_phase` the gradients in pixels, and `apply_sample` the sample image.
# We compare the numerical $d_x$ with the formula inside the aperture.

# %%
shape = (SIZE, SIZE)
phase, transmission, support = phantoms.lens_phantom(shape, geom)
dx, dy = displacement_from_phase(phase, geom)
sample = apply_sample(reference, dx, dy, transmission)
delta, _ = phantoms.scale_to_energy(phantoms.BE_DELTA_14KEV, phantoms.BE_BETA_14KEV, geom.energy_kev)
focal_m = 200e-6 / (2 * delta)
x_m = (np.arange(SIZE) - (SIZE - 1) / 2) * geom.pixel_size_m
dx_theory = -(geom.sample_detector_mm * 1e-3 / focal_m) * x_m / geom.pixel_size_m  # px, along any row
y_m = x_m[:, None]
r_m = np.hypot(y_m, x_m[None, :])
inside = r_m < 0.8 * r_m[support > 0].max()
dx_theory_2d = np.broadcast_to(dx_theory[None, :], shape)
lens_error = float(np.abs(dx - dx_theory_2d)[inside].max() / np.abs(dx_theory_2d)[inside].max())
lens_max = float(np.hypot(dx, dy).max())
i_mid = SIZE // 2
print(f"Be delta at {geom.energy_kev:g} keV = {delta:.3e}; focal length f = R / 2 delta = {focal_m:.1f} m")
print(f"max |d| = {lens_max:.3f} px; relative error of d_x against -z x / f inside the aperture: {lens_error:.1e}")
print(f"d_x right of the axis: {dx[i_mid, -SIZE // 8]:+.3f} px (negative: towards the axis, a focusing lens)")
print(f"transmission: min {transmission.min():.4f}")
summary.update(lens_max_displacement_px=lens_max, lens_dx_relative_error=lens_error, lens_focal_length_m=focal_m,
               lens_dx_right_of_axis_px=float(dx[i_mid, -SIZE // 8]), lens_min_transmission=float(transmission.min()))

um = geom.pixel_size_um
ext = [0, SIZE * um, SIZE * um, 0]
fig, axes = plt.subplots(1, 4, figsize=(18, 4.2), layout="constrained")
im = axes[0].imshow(phase, cmap="viridis", extent=ext)
fig.colorbar(im, ax=axes[0], label="rad")
axes[0].set_title("lens phase $\\phi$")
dlim = float(np.abs(dx).max())
im = axes[1].imshow(dx, cmap="RdBu_r", vmin=-dlim, vmax=dlim, extent=ext)
fig.colorbar(im, ax=axes[1], label="px")
step = max(SIZE // 16, 1)
yy, xx = np.mgrid[step // 2 : SIZE : step, step // 2 : SIZE : step]
# angles="xy": arrows in data coordinates; the y axis points down like the row index, so +dy is down
axes[1].quiver(xx * um, yy * um, dx[yy, xx], dy[yy, xx], color="k", angles="xy")
axes[1].set_title("$d_x$ and the displacement field (arrows)")
axes[2].plot(x_m * 1e6, dx[i_mid], "C0-", label="displacement_from_phase")
axes[2].plot(x_m * 1e6, dx_theory, "k--", label="$-z\\,x/f$")
axes[2].set(title="$d_x$ along the middle row", xlabel="x [um]", ylabel="$d_x$ [px]")
axes[2].legend()
diff = sample - reference
lim = float(np.percentile(np.abs(diff), 99.5))  # a few rim pixels would wash out the rest
im = axes[3].imshow(diff, cmap="RdBu_r", vmin=-lim, vmax=lim, extent=ext)
fig.colorbar(im, ax=axes[3], label="intensity")
axes[3].set_title("$I_s - I_r$: grows with |d|, i.e. with r")
for ax in (axes[0], axes[1], axes[3]):
    ax.set(xlabel="x [um]", ylabel="y [um]")
save(fig, "lens_displacement.png")

# %% [markdown]
# ## Summary
#
# The numbers above, saved for the tests and for the next notebooks.

# %%
with open(out / "summary.json", "w") as fh:
    json.dump(summary, fh, indent=1)
print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, (list, dict))}, indent=1))
print("saved:", sorted(p.name for p in out.iterdir()))
