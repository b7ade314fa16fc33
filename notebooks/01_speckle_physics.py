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
# # 01 · Near-field speckle physics
#
# Speckle-based phase-contrast imaging puts a random mask in an X-ray beam and records the
# pattern it makes on a detector, once without the sample (the **reference** $I_r$) and once
# with it (the **sample** image $I_s$). The sample bends the rays by tiny angles, so the
# pattern moves by a fraction of a pixel to a few pixels; the movement is proportional to the
# gradient of the sample's phase. This notebook builds that picture from the physics up: each
# step an equation, the `spinnet_lite` function that computes it, and a figure.
#
# **You will learn to**
# * place the parts of a speckle set-up (source, mask, sample, detector) and say which
#   distance turns a phase gradient into a speckle shift;
# * propagate a wave by the Fresnel transfer function and check that it conserves power;
# * simulate a coded mask's speckle on a grid finer than the detector pixel, and see why;
# * read a speckle pattern's contrast and grain size against distance, cell size and energy;
# * apply the forward model (Eq. 1) $I_s = T\cdot I_r(y - d_y, x - d_x)$ to a shift and a lens.
#
# **Prerequisites:** notebook 00; complex exponentials $e^{i\phi}$; what a Fourier transform
# does (no derivations needed).
#
# **Run time:** about a minute on a laptop CPU in the default mode (measured numbers in
# `docs/workshop.md`; the last cell prints this run's).
#
# > **Seed vs this project.** The seed is Qiao, Shi et al. 2022, "Real-time X-ray
# > phase-contrast imaging using SPINNet".
# > * Same as the seed: the order source → mask → sample → detector (seed Fig. 1); the lens
# >   experiment's 14 keV, 0.65 µm pixels and 500 mm sample-to-detector; the mask model
# >   $A_0 = 0.7$, $t_0 = 0.3$, $\phi_0 = \pi$ (seed section 2.3).
# > * Assumed here: the lens experiment's mask-to-detector distance, 800 mm (the seed does not
# >   state it; any value above 500 mm keeps the order and leaves the displacement unchanged).
# > * This project's choice: a default mask cell of 4 px (2.6 µm). The seed's masks are
# >   described with 2 µm and 5 µm features, i.e. 3.1 and 7.7 px at 0.65 µm.
# > * Kept apart: the seed's *training simulation* (0.06 nm, 300 mm, `Geometry.seed_simulation()`)
# >   is a different set-up from its 14 keV experiment; this project trains at
# >   `Geometry.training()` (below).
# > * This project's simulator samples the wave on a grid finer than the pixel and bins it
# >   (section 3); Eq. 1 is used as the seed uses it, to first order.

# %% tags=["parameters"]
QUICK = False  # True: small images, fewer points (the tests run this)
SIZE = 512  # image size for the forward-model examples, px
SCAN_SIZE = 256  # image size for the speckle-statistics scans, px
CELLS_UM = [1.3, 2.0, 2.6, 5.0]  # mask cell sizes, um (2.6 um is the default 4 px at 0.65 um)
ENERGIES_KEV = [8.0, 14.0, 20.0, 30.0]
DISTANCES_MM = [0, 5, 10, 20, 50, 100, 200, 400, 800, 1200]  # mask-to-detector
OVERSAMPLES = [1, 2, 4, 8]  # sub-pixels per detector pixel for the sampling study
PSF_BLURS = [0.6, 1.0]  # detector blurs (px) for the blur-before-binning comparison
SEED = 0
OUTPUT_DIR = "../output/01"

# %%
if QUICK:  # every code path still runs, on less data
    SIZE, SCAN_SIZE = 128, 128
    CELLS_UM = [2.0, 2.6]
    ENERGIES_KEV = [ENERGIES_KEV[0], ENERGIES_KEV[-1]]
    DISTANCES_MM = [0, 10, 50, 300, 1000]
    OVERSAMPLES = [1, 2, 4]

# %%
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage

from spinnet_lite import Geometry, nbtools, phantoms, plots
from spinnet_lite.metrics import grain_size_px, speckle_contrast
from spinnet_lite.propagate import fresnel_propagate, fresnel_spread_px, transfer_function
from spinnet_lite.simulate import (MASK_AMPLITUDE, MASK_PHASE, MASK_TRANSMISSION_GAIN, OVERSAMPLE, WARP_MARGIN,
                                   apply_sample, bin_pixels, coded_mask, detect_fine_pair, displacement_from_phase,
                                   reference_image)

lesson = nbtools.Lesson(OUTPUT_DIR, quick=QUICK, size=SIZE, scan_size=SCAN_SIZE, seed=SEED)
A0, t0 = MASK_AMPLITUDE, MASK_TRANSMISSION_GAIN

# %% [markdown]
# ## 1 · The set-up, and the distance that matters
#
# In the seed's experiments (its Fig. 1) the beam meets the parts in this order:
# **source → mask → sample → detector**. The mask makes the speckle; the sample, downstream
# of it, deflects each ray by a small angle $\alpha = \frac{\lambda}{2\pi}\nabla\phi$ (from its
# phase $\phi$); over the **sample-to-detector** distance $z$ the speckle then moves by
# $\delta = z\,\alpha$. In detector pixels of size $p$, with the gradient taken per pixel,
#
# $$ d_x\,[\mathrm{px}] = \frac{\lambda z}{2\pi p^2}\,\frac{\partial\phi}{\partial x}\,[\mathrm{rad/px}] .$$
#
# The wavelength follows from the photon energy, $\lambda = hc/E$. `Geometry()` is the seed's
# lens experiment; its `shift_per_gradient` is the factor $\lambda z / (2\pi p^2)$.

# %%
geom = Geometry()
print(f"Geometry(): {geom.energy_kev:g} keV -> wavelength {geom.wavelength_m * 1e9:.4f} nm, "
      f"pixel {geom.pixel_size_um} um")
print(f"  mask {geom.mask_detector_mm:g} mm and sample {geom.sample_detector_mm:g} mm from the detector: "
      f"mask upstream = {geom.mask_upstream}")
print(f"  distance that turns deflection into shift: z = {geom.effective_distance_mm:g} mm")
print(f"  shift_per_gradient = {geom.shift_per_gradient:.3f} px per rad/px")
one_px = geom.displacement_to_dphi(1.0)
print(f"  1 px of displacement <- a phase gradient of {one_px:.4f} rad/px "
      f"(deflection {geom.pixel_size_m / (geom.effective_distance_mm * 1e-3) * 1e6:.2f} urad)")
lesson.record(wavelength_nm=geom.wavelength_m * 1e9, shift_per_gradient_px=geom.shift_per_gradient,
              gradient_for_1px_rad_per_px=one_px, mask_upstream=geom.mask_upstream,
              effective_distance_mm=geom.effective_distance_mm)

# %%
def draw_setup(ax, g, title):
    """Source, mask, sample and detector on a line, at the geometry's distances."""
    parts = {"mask": g.mask_detector_mm, "sample": g.sample_detector_mm, "detector": 0.0}
    far = max(parts.values())
    ax.annotate("", xy=(0.05 * far, 0), xytext=(-1.25 * far, 0), arrowprops=dict(arrowstyle="->", color="0.6"))
    ax.text(-1.25 * far, 0.25, "beam", color="0.5", fontsize=8)
    for (name, z), colour in zip(parts.items(), ("C1", "C2", "k")):
        ax.plot([-z, -z], [-1, 1], color=colour, lw=3)
        ax.text(-z, 1.15, f"{name}\n{z:g} mm", ha="center", va="bottom", fontsize=8, color=colour)
    z = g.effective_distance_mm
    ax.annotate("", xy=(0, -1.35), xytext=(-z, -1.35), arrowprops=dict(arrowstyle="<->", color="C3"))
    ax.text(-z / 2, -1.85, f"z = {z:g} mm sets the shift", ha="center", color="C3", fontsize=8)
    ax.set(xlim=(-1.3 * far, 0.12 * far), ylim=(-2.3, 2.4), title=title)
    ax.axis("off")


upstream_sample = Geometry(sample_detector_mm=800, mask_detector_mm=500)
fig, axes = plt.subplots(1, 2, figsize=(12, 2.8), layout="constrained")
draw_setup(axes[0], geom, "Geometry(): mask upstream of the sample (the seed's order)")
draw_setup(axes[1], upstream_sample, "sample upstream of the mask (also used in practice)")
lesson.savefig(fig, "setup.png")

# %% [markdown]
# The other order works too: with the **sample upstream of the mask**, the sample tilts the
# wave that lights the mask, and the mask's pattern moves with that tilt over the
# **mask**-to-detector distance. `Geometry` knows which part comes first
# (`mask_upstream`) and uses the right distance (`effective_distance_mm`).
#
# Two more set-ups appear in this course, and neither is the experiment:
# `Geometry.seed_simulation()` is the seed's *training simulation* (a wavelength of 0.06 nm
# and 300 mm), and `Geometry.training()` is the set-up this project simulates its own random
# training samples in.

# %%
setups = {"Geometry() (seed's lens experiment)": geom, "sample upstream of the mask": upstream_sample,
          "Geometry.seed_simulation()": Geometry.seed_simulation(), "Geometry.training()": Geometry.training()}
print(f"{'set-up':>38} {'lambda [nm]':>11} {'mask [mm]':>9} {'sample [mm]':>11} {'z [mm]':>7} {'px per rad/px':>13}")
for name, g in setups.items():
    print(f"{name:>38} {g.wavelength_m * 1e9:11.4f} {g.mask_detector_mm:9g} {g.sample_detector_mm:11g} "
          f"{g.effective_distance_mm:7g} {g.shift_per_gradient:13.3f}")
lesson.record(training_shift_per_gradient_px=Geometry.training().shift_per_gradient,
              seed_simulation_shift_per_gradient_px=Geometry.seed_simulation().shift_per_gradient,
              upstream_sample_effective_distance_mm=upstream_sample.effective_distance_mm)

# %% [markdown]
# > **Think.** With the mask upstream, moving the mask further from the detector changes the
# > speckle pattern (section 3) but not the displacement a sample produces. Why? And why, with
# > the sample upstream, does the *sample's* distance stop mattering?

# %% [markdown]
# ## 2 · Free-space propagation: the Fresnel transfer function
#
# In the paraxial (near-field) regime a field $U_0(x, y)$ propagated over a distance $z$ is
#
# $$ U_z = \mathcal{F}^{-1}\left[\mathcal{F}[U_0]\; H_z\right], \qquad
#    H_z(f_x, f_y) = \exp\!\left(-i\pi\lambda z\,(f_x^2 + f_y^2)\right), $$
#
# dropping the constant phase $e^{ikz}$. $H_z$ is a pure phase ($|H_z| = 1$) that grows
# quadratically with spatial frequency: fine features dephase first. The finest feature on a
# grid of spacing $p$ (frequency $1/2p$) is bent by the angle $\lambda/2p$ and spreads by
# $\lambda z/(2p^2)$ pixels; `fresnel_spread_px` gives that, and the simulator pads the mask by
# it so that no light wraps around the FFT's periodic edges.

# %%
n_tf = 128
z_mask = geom.mask_detector_mm * 1e-3
H = np.fft.fftshift(transfer_function((n_tf, n_tf), z_mask, geom.wavelength_m, geom.pixel_size_m))
f_nyq = 1 / (2 * geom.pixel_size_m)  # cycles per metre
print(f"|H| - 1: max {np.abs(np.abs(H) - 1).max():.1e}  (a pure phase)")
print(f"phase of H at 1/2p, z = {geom.mask_detector_mm:g} mm: {-math.pi * geom.wavelength_m * z_mask * f_nyq**2:.1f} rad")
for d in (10, 100, 1000):
    print(f"Fresnel spread at {d:>4} mm: {fresnel_spread_px(d * 1e-3, geom.wavelength_m, geom.pixel_size_m)} px")

fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained")
f_um = np.fft.fftshift(np.fft.fftfreq(n_tf, d=geom.pixel_size_um))  # cycles per um
im = axes[0].imshow(np.angle(H), cmap="twilight", extent=[f_um[0], f_um[-1], f_um[-1], f_um[0]],
                    vmin=-math.pi, vmax=math.pi)
axes[0].set(title=f"arg $H_z$ (wrapped), z = {geom.mask_detector_mm:g} mm, {geom.energy_kev:g} keV",
            xlabel="$f_x$ [1/µm]", ylabel="$f_y$ [1/µm]")
fig.colorbar(im, ax=axes[0], label="phase [rad]")
fx = np.linspace(0, f_nyq, 200)
for d in (10, 100, 400, 1200):
    axes[1].plot(fx * 1e-6, -math.pi * geom.wavelength_m * d * 1e-3 * fx**2, label=f"z = {d} mm")
axes[1].set(title="arg $H_z$ along $f_x$, unwrapped: $-\\pi\\lambda z f_x^2$", xlabel="$f_x$ [1/µm] (up to 1/2p)",
            ylabel="phase [rad]")
axes[1].legend(title="propagation distance")
lesson.savefig(fig, "transfer_function.png")

# %% [markdown]
# ## 3 · The coded mask, simulated finer than the pixel
#
# The mask (seed section 2.3) is a random binary pattern $R$ of square cells of side $a$,
# half of them gold ($R = 1$). It changes the wave's amplitude and phase:
#
# $$ U_0 = \left(A_0 + t_0\,(1 - R)\right)\, e^{\,i\phi_0 R}, \qquad A_0 = 0.7,\; t_0 = 0.3,\; \phi_0 = \pi .$$
#
# A real cell has a physical size ($a$ = 2.6 µm is 4 pixels of 0.65 µm, a 2 µm cell is 3.08
# pixels): its edges fall anywhere inside a pixel, and the diffracted wave has fringes finer
# than a pixel. The detector **integrates** the intensity over each pixel. So the simulator
# draws the mask and propagates the wave on a grid $s$ times finer than the pixel (spacing
# $p/s$), takes the intensity there and averages each $s \times s$ block into one detector
# pixel:
#
# $$ I[i, j] = \frac{1}{s^2}\sum_{\text{sub-pixels } k, l \text{ of pixel } (i, j)} |U_z(k, l)|^2 . $$
#
# Below, one periodic mask tile is drawn on the fine grid (`coded_mask` with the cell in
# sub-pixels), propagated with `fresnel_propagate` (`pad=0`: the tile is periodic, so the FFT is
# exact) and binned (`bin_pixels`, the detector's average over each pixel). Since $|H_z| = 1$, Parseval's theorem says the total power
# $\sum|U_z|^2$ must not change with distance; we check that too.

# %%
PITCH = geom.mask_pitch_px  # the default cell, in detector pixels
s = OVERSAMPLE  # the simulator's sub-pixels per pixel
fine_tile = coded_mask((SCAN_SIZE * s, SCAN_SIZE * s), PITCH * s, np.random.default_rng(SEED))
U0 = (A0 + t0 * (1 - fine_tile)) * np.exp(1j * MASK_PHASE * fine_tile)


shown = sorted({d for d in DISTANCES_MM if d in (0, 10, 50, 200, 800)} | {DISTANCES_MM[-1]})
power_ratios, detector = {}, {}
for d in DISTANCES_MM:
    U = fresnel_propagate(U0, d * 1e-3, geom.wavelength_m, geom.pixel_size_m / s, pad=0)
    power_ratios[d] = float(np.sum(np.abs(U) ** 2) / np.sum(np.abs(U0) ** 2))
    if d in shown:
        detector[d] = bin_pixels(np.abs(U) ** 2, s)
worst = max(abs(r - 1) for r in power_ratios.values())
print(f"mask tile: {SCAN_SIZE * s} x {SCAN_SIZE * s} sub-pixels ({s} per pixel), cells of {PITCH * s:g} sub-pixels, "
      f"gold fraction {fine_tile.mean():.3f}")
print(f"power sum|U_z|^2 / sum|U_0|^2 at {max(DISTANCES_MM)} mm: {power_ratios[max(DISTANCES_MM)]:.12f}; "
      f"worst |ratio - 1| over {len(DISTANCES_MM)} distances: {worst:.1e}")
lesson.expect("power_ratio", power_ratios[max(DISTANCES_MM)], 1 - 1e-6, 1 + 1e-6, "free space conserves power")
lesson.record(power_ratio_max_deviation=worst)

crop = slice(0, min(48, SCAN_SIZE))
fig, axes = plt.subplots(1, len(shown) + 1, figsize=(3.0 * (len(shown) + 1), 3.3), layout="constrained")
plots.show_map(axes[0], fine_tile[: crop.stop * s, : crop.stop * s], "gray_r",
               title=f"mask R on the fine grid\n(cell {PITCH:g} px; black = gold)", pixel_size_um=geom.pixel_size_um / s,
               scale_bar_color="C1")
for ax, d in zip(axes[1:], shown):
    im = plots.show_map(ax, detector[d][crop, crop], "gray", title=f"detector image, z = {d} mm",
                        pixel_size_um=geom.pixel_size_um, scale_bar_color="C1")
    fig.colorbar(im, ax=ax, shrink=0.8)
fig.suptitle(f"One mask tile propagated at {geom.energy_kev:g} keV and binned to {geom.pixel_size_um} µm pixels "
             f"({crop.stop} x {crop.stop} px crop)")
lesson.savefig(fig, "mask_propagation.png")

# %% [markdown]
# Right behind the mask ($z = 0$) only the amplitude shows: two grey levels, $A_0^2$ and
# $(A_0 + t_0)^2$. The phase steps turn into intensity only after propagation, as the waves
# diffracted at neighbouring cell edges interfere.
#
# ### Why finer than the pixel?
#
# What if we simulated the wave on the detector grid itself ($s = 1$), as a quick simulator
# might? `reference_image` takes the sub-sampling as `oversample`. At the set-up's
# mask distance, the speckle contrast (std/mean, `speckle_contrast`) of the same mask for
# several sub-samplings $s$:

# %%
pitches = {cell: cell / geom.pixel_size_um for cell in CELLS_UM}
by_oversample = {}
for cell, pitch in pitches.items():
    by_oversample[cell] = [speckle_contrast(reference_image((SCAN_SIZE, SCAN_SIZE), geom, np.random.default_rng(SEED),
                                                            pitch=pitch, blur_px=0, oversample=k))
                           for k in OVERSAMPLES]
print(f"contrast at z = {geom.mask_detector_mm:g} mm for s = {OVERSAMPLES} sub-pixels per pixel:")
for cell, c in by_oversample.items():
    print(f"  cell {cell:g} um ({pitches[cell]:.2f} px): " + ", ".join(f"{v:.3f}" for v in c)
          + f"   (s = 1 is {100 * (c[0] / c[-1] - 1):+.0f} % off the finest)")
lesson.record(oversamples=OVERSAMPLES, contrast_by_oversample={f"{k:g}": v for k, v in by_oversample.items()},
              simulator_oversample=OVERSAMPLE)

fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
for cell, c in by_oversample.items():
    ax.plot(OVERSAMPLES, c, "o-", label=f"cell {cell:g} µm ({pitches[cell]:.2f} px)")
ax.axvline(OVERSAMPLE, color="k", ls=":", label=f"the simulator's default, s = {OVERSAMPLE}")
ax.set(xscale="log", xticks=OVERSAMPLES, xticklabels=[str(k) for k in OVERSAMPLES], xlabel="sub-pixels per pixel s",
       ylabel="speckle contrast std/mean", title=f"The same mask, z = {geom.mask_detector_mm:g} mm")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
lesson.savefig(fig, "oversampling.png")

# %% [markdown]
# On the detector grid ($s = 1$) the contrast comes out higher than the converged value:
# the wave is sampled at one point per pixel, as if the pixel were a pinhole, and a cell edge
# can only sit on a pixel boundary. With finer sub-pixels the numbers settle (the change from
# one $s$ to the next shrinks), and what they settle on is physics: the pattern of the mask,
# averaged over each pixel's area, as a detector records it. The simulator uses
# `OVERSAMPLE` sub-pixels (printed above) unless the grid would get too large.
#
# > **Think.** The pixel averaging lowers the contrast most for the smallest cells. Why? What
# > would a detector with twice smaller pixels record from the 1.3 µm mask?

# %% [markdown]
# ### Speckle contrast and grain size against distance, cell size and energy
#
# Two numbers describe a speckle pattern $I$ for tracking:
#
# * the **contrast** (visibility) $C = \sigma_I / \langle I \rangle$; right behind a half-gold
#   mask it is the amplitude contrast alone,
#   $C_0 = \frac{(A_0+t_0)^2 - A_0^2}{(A_0+t_0)^2 + A_0^2}$;
# * the **grain size**, the full width at half maximum of the central peak of the normalised
#   autocorrelation of $I - \langle I\rangle$ (`grain_size_px`). Right behind the mask it is one
#   cell.
#
# The wave spreads by about $\sqrt{\lambda z}$, so the natural distance scale is the
# **Fresnel scaling** $\lambda z / a^2$: at $\lambda z/a^2 \ll 1$ each cell still casts its
# own shadow, near 1 the fringes of neighbouring edges overlap and the speckle is fully
# developed. Fresnel propagation has no other length in it, so the *wave's* statistics should
# depend on $a$ and $\lambda z$ only through $\lambda z/a^2$. The *detector* adds one length:
# its pixel, over which it averages.
#
# To see both, the periodic tile of section 3 is propagated for every cell size, distance and
# energy of the parameters cell; its statistics are measured on the fine grid (the wave,
# before the detector) and after binning to pixels (the detector image, no extra blur).

# %%
def tile_statistics(cell_um, geometry=geom):
    """Contrast and grain size (in cells) of one periodic mask tile at every distance:
    {"wave": on the fine grid, "detector": binned to pixels}, each (contrast, grain) arrays."""
    pitch = cell_um / geometry.pixel_size_um
    tile = coded_mask((SCAN_SIZE * s, SCAN_SIZE * s), pitch * s, np.random.default_rng(SEED))
    u0 = (A0 + t0 * (1 - tile)) * np.exp(1j * MASK_PHASE * tile)
    stats = {"wave": ([], []), "detector": ([], [])}
    for d in DISTANCES_MM:
        fine = np.abs(fresnel_propagate(u0, d * 1e-3, geometry.wavelength_m, geometry.pixel_size_m / s, pad=0)) ** 2
        for key, image, px_per_cell in (("wave", fine, pitch * s), ("detector", bin_pixels(fine, s), pitch)):
            stats[key][0].append(speckle_contrast(image))
            stats[key][1].append(grain_size_px(image) / px_per_cell)
    return {key: (np.array(c), np.array(g)) for key, (c, g) in stats.items()}


def fresnel_scaling(geometry, cell_um):
    """lambda z / a^2 at every distance."""
    return geometry.wavelength_m * np.asarray(DISTANCES_MM, dtype=float) * 1e-3 / (cell_um * 1e-6) ** 2


cell0 = PITCH * geom.pixel_size_um  # the default cell, um
by_cell = {cell: tile_statistics(cell) for cell in CELLS_UM}
by_energy = {e: tile_statistics(cell0, Geometry(energy_kev=e))["detector"] for e in ENERGIES_KEV}
contrast, grain_cells = by_cell[cell0]["detector"] if cell0 in by_cell else tile_statistics(cell0)["detector"]
c0_theory = ((A0 + t0) ** 2 - A0**2) / ((A0 + t0) ** 2 + A0**2)
print(f"z = 0: contrast {contrast[0]:.3f} (theory C0 = {c0_theory:.3f}), grain {grain_cells[0]:.2f} cells")
print(f"{'z [mm]':>7} {'lambda z/a^2':>12} {'contrast':>9} {'grain/cell':>10}   (detector, {geom.energy_kev:g} keV, "
      f"cell {cell0:g} um)")
for d, x, c, g in zip(DISTANCES_MM, fresnel_scaling(geom, cell0), contrast, grain_cells):
    print(f"{d:7g} {x:12.2f} {c:9.3f} {g:10.2f}")
print(f"contrast at the largest distance, {max(DISTANCES_MM)} mm:")
for cell, st in by_cell.items():
    print(f"  cell {cell:g} um ({pitches[cell]:.2f} px): wave {st['wave'][0][-1]:.3f}, detector {st['detector'][0][-1]:.3f}")
x_geom = geom.wavelength_m * geom.mask_detector_mm * 1e-3 / (cell0 * 1e-6) ** 2
print(f"Geometry(): mask at {geom.mask_detector_mm:g} mm, cell {cell0:g} um -> lambda z / a^2 = {x_geom:.2f}")
lesson.record(distances_mm=[float(d) for d in DISTANCES_MM], pitch_px=PITCH, contrast=contrast,
              grain_size_px=grain_cells * PITCH, contrast_at_0_theory=c0_theory, cells_um=CELLS_UM,
              contrast_by_cell={f"{k:g}": v["detector"][0] for k, v in by_cell.items()},
              grain_size_by_cell={f"{k:g}": v["detector"][1] for k, v in by_cell.items()},
              wave_contrast_by_cell={f"{k:g}": v["wave"][0] for k, v in by_cell.items()},
              contrast_by_energy={f"{e:g}": v[0] for e, v in by_energy.items()})

# %%
zpos = np.asarray(DISTANCES_MM, dtype=float) > 0
zmm = np.asarray(DISTANCES_MM, dtype=float)
fig, axes = plt.subplots(2, 3, figsize=(15, 8), layout="constrained")
for i, (cell, st) in enumerate(by_cell.items()):
    label, colour, x = f"cell {cell:g} µm ({pitches[cell]:.1f} px)", f"C{i}", fresnel_scaling(geom, cell)[zpos]
    for row in (0, 1):
        axes[row, 0].plot(zmm[zpos], st["detector"][row][zpos], "o-", color=colour, label=label)
        axes[row, 2].plot(x, st["wave"][row][zpos], "-", color=colour, lw=2, label=f"{label}: wave")
        axes[row, 2].plot(x, st["detector"][row][zpos], "o--", color=colour, ms=4, lw=1, label=f"{label}: detector")
for j, (e, st) in enumerate(by_energy.items()):
    for row in (0, 1):
        axes[row, 1].plot(zmm[zpos], st[row][zpos], "s-", color=f"C{j + 4}", label=f"{e:g} keV")
for ax in axes[0]:
    ax.axhline(c0_theory, color="k", ls=":", label="$C_0$: z = 0, amplitude only")
    ax.set(ylabel="contrast std/mean", xscale="log")
for ax in axes[1]:
    ax.set(ylabel="grain size / cell size", xscale="log")
axes[0, 0].set_title(f"detector image vs distance, by cell ({geom.energy_kev:g} keV)", fontsize=10)
axes[0, 1].set_title(f"detector image vs distance, by energy (cell {cell0:g} µm)", fontsize=10)
axes[0, 2].set_title("vs $\\lambda z / a^2$: the wave (solid) and the detector (dashed)", fontsize=10)
for ax in axes[:, :2].ravel():
    ax.set_xlabel("mask-to-detector distance z [mm]")
for ax in axes[:, 2]:
    ax.set_xlabel("Fresnel scaling $\\lambda z / a^2$")
for ax in axes.ravel():
    ax.grid(alpha=0.3)
axes[0, 0].legend(fontsize=7)
axes[0, 1].legend(fontsize=7)
axes[1, 2].legend(fontsize=6, ncol=2)
lesson.savefig(fig, "speckle_statistics.png")

# %% [markdown]
# Reading the plots (the numbers are printed above the figure):
#
# * The contrast starts at the amplitude-only value $C_0$ (dotted line) and rises once the
#   diffraction blur $\sqrt{\lambda z}$ becomes comparable with a cell, around
#   $\lambda z / a^2 \sim 0.1$–$1$; on the way it can overshoot and dip as the fringes of
#   neighbouring edges start to overlap.
# * **The wave** (solid lines, right): plotted against $\lambda z/a^2$, the cell sizes fall on
#   one curve, as Fresnel scaling says (up to the scatter of one random tile).
# * **The detector** (dashed lines, and the left panels) does not collapse: each pixel
#   averages over the fringes narrower than itself, so the cells only a few pixels wide keep
#   less contrast and their grains look relatively wider. The pixel is a length scale of the
#   *detector*, not of the wave; a detector with smaller pixels records more of the same wave.
# * For one cell size only $\lambda z$ matters: a lower energy (longer wavelength) gives the
#   same speckle at a shorter distance, which is why the energy curves (middle) are copies of
#   each other shifted along $z$.
# * The grain size starts at one cell, drops well below it while the edge fringes dominate,
#   then grows slowly again. Small grains with high contrast are what a tracker (and SPINNet)
#   needs.
#
# > **Try this.** Add `0.65` to `CELLS_UM` (a one-pixel cell) and rerun the scan: how far
# > apart are its wave and detector curves?

# %% [markdown]
# ## 4 · The forward model, Eq. 1
#
# The sample displaces the reference pattern and attenuates it:
#
# $$ I_s(y, x) = T(y, x)\; I_r\big(y - d_y(y, x),\; x - d_x(y, x)\big). $$
#
# `spinnet_lite.simulate.apply_sample(reference, dx, dy, transmission)` evaluates it (cubic
# spline interpolation, `warp`). A positive $d_x$ moves the pattern towards larger column
# index. Eq. 1 is a first-order model: it leaves out the edge fringes of the sample itself
# (the Laplacian of its phase) and dark-field blur. It holds when the phase varies slowly
# over the speckle grain and the pixel Fresnel number $p^2/(\lambda z)$ is small, so that
# the sample's own propagation fringes stay within a pixel:

# %%
print(f"pixel Fresnel number p^2 / (lambda z) for Geometry(): "
      f"{geom.pixel_size_m**2 / (geom.wavelength_m * geom.effective_distance_mm * 1e-3):.4f}")

# %% [markdown]
# ### A uniform shift
#
# For an integer shift the result is the reference moved by whole pixels; we check that, then
# look at a sub-pixel shift. For small $d$, the difference image is, to first order,
# $I_s - I_r \approx -d_x\,\partial_x I_r - d_y\,\partial_y I_r$: it is largest on the grains'
# flanks, which is what makes the displacement measurable.

# %%
reference = reference_image((SIZE, SIZE), geom, np.random.default_rng(SEED))  # default cell, 0.6 px detector blur
k = 3
shifted = apply_sample(reference, float(k), 0.0, 1.0)
shift_error = lesson.expect("shift_error", float(np.abs(shifted[:, k:] - reference[:, :-k]).max()), high=1e-6)
print(f"integer shift dx = {k} px: max |I_s(x) - I_r(x - {k})| = {shift_error:.1e}")

sub = 0.25
sample_sub = apply_sample(reference, sub, 0.0, 1.0)
diff = sample_sub - reference
linear = -sub * np.gradient(reference, axis=1)
inner = (slice(8, -8), slice(8, -8))
corr = lesson.record(linear_model_correlation=float(np.corrcoef(diff[inner].ravel(), linear[inner].ravel())[0, 1]))
print(f"sub-pixel shift dx = {sub} px: rms difference {diff.std():.3f} (speckle rms {reference.std():.3f}); "
      f"correlation with -dx dI/dx = {corr:.3f}")

c = slice(0, min(48, SIZE))
row = min(20, SIZE // 2)
fig, axes = plt.subplots(1, 4, figsize=(17, 3.8), layout="constrained")
lim = float(np.abs(diff[c, c]).max())
for ax, img, title, cmap, vlim in [(axes[0], reference, "reference $I_r$", "gray", None),
                                   (axes[1], sample_sub, f"sample, $d_x$ = {sub} px", "gray", None),
                                   (axes[2], diff, "$I_s - I_r$", "RdBu_r", lim)]:
    im = plots.show_map(ax, img[c, c], cmap, -vlim if vlim else None, vlim, title=title,
                        pixel_size_um=geom.pixel_size_um)
    ax.axhline(row, color="orange", lw=0.8)
    fig.colorbar(im, ax=ax, shrink=0.85)
xs = np.arange(c.stop) * geom.pixel_size_um
axes[3].plot(xs, reference[row, c], "k-", label="reference")
axes[3].plot(xs, sample_sub[row, c], "C1-", label=f"sample ($d_x$ = {sub} px)")
axes[3].set(title=f"profile along the orange line", xlabel="x [µm]", ylabel="intensity")
axes[3].legend()
lesson.savefig(fig, "uniform_shift.png")

# %% [markdown]
# ### What the pixels show of a sub-pixel shift: the detector's blur comes first
#
# The speckle has detail finer than a pixel. When the sample moves it by 0.1 px, each pixel
# integrates a slightly different piece of that detail, and the binned sample is not exactly
# the binned reference moved by 0.1 px: no interpolation of the reference can reproduce what
# the pixels folded in. A detector blurs too (light spreads in the scintillator and the optics)
# and it does so **before** its pixels collect the light, which removes most of that detail
# first. `simulate.detect_fine_pair` does it in that order (Eq. 1 on the fine grid, then
# `detector_blur` there, then `bin_pixels`). Below, the same fine speckle moved by 0.1 px, with
# the blur before the binning and, for comparison, after it (a Gaussian on the binned images,
# which this simulator did until session 21); the number is the rms of the sample minus the
# reference moved by the true shift (`apply_sample`), relative to the rms of the shift's own
# signal, sample minus reference.

# %%
MOVE = 0.1  # px
big = (SIZE + 2 * WARP_MARGIN, SIZE + 2 * WARP_MARGIN)
fine, os_fine, margin_fine = reference_image(big, geom, np.random.default_rng(SEED), fine=True)
edge = (margin_fine + WARP_MARGIN) * os_fine
move = np.full((SIZE, SIZE), MOVE)
unblurred = detect_fine_pair(fine, move, 0 * move, os_fine, edge, 0.0)  # binned, for the blur after
mismatch = {"before": [], "after": []}
for blur in PSF_BLURS:
    before = detect_fine_pair(fine, move, 0 * move, os_fine, edge, blur)
    after = [ndimage.gaussian_filter(im, blur, mode="nearest") for im in unblurred]
    for order, (ref_b, sam_b) in (("before", before), ("after", after)):
        moved = apply_sample(ref_b, MOVE, 0.0, 1.0)
        inner = (slice(8, -8), slice(8, -8))
        mismatch[order].append(float(np.std((sam_b - moved)[inner]) / np.std((sam_b - ref_b)[inner])))
    print(f"blur {blur} px: mismatch {mismatch['before'][-1]:.1%} with the blur before the pixels, "
          f"{mismatch['after'][-1]:.1%} after them")
lesson.record(psf_blurs_px=PSF_BLURS, psf_mismatch_before=mismatch["before"], psf_mismatch_after=mismatch["after"])

# %% [markdown]
# With the blur where the detector has it, most of the mismatch goes: what is left is the
# detail that survives the blur, and it falls fast as the blur grows. A tracker that compares
# the sample with the moved reference (notebook 03's warp, the Lucas-Kanade step) meets this
# mismatch as a floor under its error, whatever its method.

# %% [markdown]
# ### A lens: displacement from a phase gradient
#
# A bi-concave parabolic beryllium lens (apex radius $R$ = 200 µm, seed section 3.2.1) is
# $t(r) = r^2/R$ thick, so its phase is $\phi = -k\,\delta\,r^2 / R$ with $k = 2\pi/\lambda$
# and refractive index $n = 1 - \delta$. For X-rays $\delta > 0$, so the *concave* lens
# focuses, with focal length $f = R / 2\delta$. From section 1 the displacement is linear in
# position:
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
z_m = geom.effective_distance_mm * 1e-3
x_m = (np.arange(SIZE) - (SIZE - 1) / 2) * geom.pixel_size_m
dx_theory = -(z_m / focal_m) * x_m / geom.pixel_size_m  # px, along any row
r_m = np.hypot(x_m[:, None], x_m[None, :])
inside = r_m < 0.8 * r_m[support > 0].max()
dx_theory_2d = np.broadcast_to(dx_theory[None, :], shape)
lens_error = float(np.abs(dx - dx_theory_2d)[inside].max() / np.abs(dx_theory_2d)[inside].max())
i_mid = SIZE // 2
print(f"Be delta at {geom.energy_kev:g} keV = {delta:.3e}; focal length f = R / 2 delta = {focal_m:.1f} m")
print(f"max |d| = {np.hypot(dx, dy).max():.3f} px; relative error of d_x against -z x / f inside the aperture: "
      f"{lens_error:.1e}")
print(f"d_x right of the axis: {dx[i_mid, -SIZE // 8]:+.3f} px (negative: towards the axis, a focusing lens)")
print(f"transmission: min {transmission.min():.4f}")
lesson.expect("lens_dx_relative_error", lens_error, high=0.01)
lesson.record(lens_max_displacement_px=float(np.hypot(dx, dy).max()), lens_focal_length_m=focal_m,
              lens_dx_right_of_axis_px=float(dx[i_mid, -SIZE // 8]), lens_min_transmission=float(transmission.min()))

um = geom.pixel_size_um
fig, axes = plt.subplots(1, 4, figsize=(18, 4.2), layout="constrained")
im = plots.show_map(axes[0], phase, "viridis", title="lens phase $\\phi$ [rad]", pixel_size_um=um)
fig.colorbar(im, ax=axes[0], label="rad")
dlim = float(np.abs(dx).max())
im = plots.show_map(axes[1], dx, "RdBu_r", -dlim, dlim, title="$d_x$ [px] and the field (arrows)", pixel_size_um=um)
fig.colorbar(im, ax=axes[1], label="px")
plots.quiver_field(axes[1], dx, dy)
axes[2].plot(x_m * 1e6, dx[i_mid], "C0-", label="displacement_from_phase")
axes[2].plot(x_m * 1e6, dx_theory, "k--", label="$-z\\,x/f$")
axes[2].set(title="$d_x$ along the middle row", xlabel="x [µm]", ylabel="$d_x$ [px]")
axes[2].legend()
lens_diff = sample - reference
lim = float(np.percentile(np.abs(lens_diff), 99.5))  # a few rim pixels would wash out the rest
im = plots.show_map(axes[3], lens_diff, "RdBu_r", -lim, lim, title="$I_s - I_r$: grows with |d|, i.e. with r",
                    pixel_size_um=um)
fig.colorbar(im, ax=axes[3], label="intensity")
lesson.savefig(fig, "lens_displacement.png")

# %% [markdown]
# ## Exercises
#
# Replace `None` by your answer and run the cell; the check says whether it is right.
# Solutions are one click away, under *Solution*: try first.
#
# **Exercise 01.1 · Contrast behind the mask.** From $A_0$ and $t_0$ (the variables `A0`,
# `t0`), compute the contrast std/mean of the intensity right behind a half-gold mask. (Two
# intensity levels, half the area each.) The check compares with the simulated $z = 0$
# pattern.

# %%
answer_01_1 = None
lesson.check_exercise("01.1", answer_01_1, expected=contrast[0], rtol=0.03,
                      hint="the two levels are A0**2 and (A0 + t0)**2; std of a 50/50 two-level image is half their difference")

# %% [markdown]
# <details><summary>Solution</summary>
#
# The two levels are $I_1 = A_0^2$ (gold) and $I_2 = (A_0 + t_0)^2$, half the area each. The
# mean is $(I_1 + I_2)/2$, the standard deviation $(I_2 - I_1)/2$, so $C_0 = (I_2 - I_1)/(I_2 + I_1)$:
#
# ```python
# answer_01_1 = ((A0 + t0) ** 2 - A0**2) / ((A0 + t0) ** 2 + A0**2)
# lesson.check_exercise("01.1", answer_01_1, expected=contrast[0], rtol=0.03)
# ```
# </details>
#
# **Exercise 01.2 · Another sample distance.** Same beamline (14 keV, 0.65 µm pixels, mask
# upstream), but the sample 628 mm from the detector. By hand, with $\lambda = hc/E$
# ($hc$ = 1.2398 keV·nm): how many pixels of displacement does a phase gradient of 1 rad/px
# give?

# %%
answer_01_2 = None  # px per rad/px
lesson.check_exercise("01.2", answer_01_2, Geometry(sample_detector_mm=628, mask_detector_mm=800).shift_per_gradient,
                      rtol=0.01, hint="lambda z / (2 pi p^2), everything in metres")

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# wavelength = 1.2398e-9 / 14.0  # m
# answer_01_2 = wavelength * 0.628 / (2 * math.pi * (0.65e-6) ** 2)
# lesson.check_exercise("01.2", answer_01_2, Geometry(sample_detector_mm=628, mask_detector_mm=800).shift_per_gradient,
#                       rtol=0.01)
# ```
# The displacement grows in proportion to $z$: 628/500 times that of `Geometry()`.
# </details>
#
# **Exercise 01.3 · The other order.** Now put the sample upstream of the mask: sample
# 800 mm and mask 500 mm from the detector. Which distance sets the displacement, and how many
# pixels per rad/px is it?

# %%
answer_01_3 = None  # px per rad/px
lesson.check_exercise("01.3", answer_01_3, upstream_sample.shift_per_gradient, rtol=0.01,
                      hint="with the sample upstream, the mask's pattern moves over the mask-to-detector distance")

# %% [markdown]
# <details><summary>Solution</summary>
#
# The sample tilts the wave that lights the mask; the pattern the mask makes moves with that
# tilt over the mask-to-detector distance, 500 mm, the same $z$ as `Geometry()`:
#
# ```python
# answer_01_3 = geom.wavelength_m * 0.500 / (2 * math.pi * geom.pixel_size_m**2)
# lesson.check_exercise("01.3", answer_01_3, upstream_sample.shift_per_gradient, rtol=0.01)
# ```
# </details>
#
# **Exercise 01.4 · The lens by hand.** Using the printed $\delta$ (the variable `delta`) and
# $f = R/2\delta$ with $R$ = 200 µm, predict $d_x$ in pixels at $x$ = +20 µm right of the
# lens axis (sample 500 mm from the detector). Mind the sign. The check reads the simulated
# $d_x$ there.

# %%
answer_01_4 = None  # px
lesson.check_exercise("01.4", answer_01_4, expected=float(np.interp(20e-6, x_m, dx[i_mid])), rtol=0.02,
                      hint="d = -z x / f, then divide by the pixel size")

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# f = 200e-6 / (2 * delta)
# answer_01_4 = -0.500 * 20e-6 / f / geom.pixel_size_m
# lesson.check_exercise("01.4", answer_01_4, expected=float(np.interp(20e-6, x_m, dx[i_mid])), rtol=0.02)
# ```
# Negative: towards the axis, since the concave X-ray lens focuses.
# </details>

# %% [markdown]
# ## What we learned
#
# * In the seed's set-up the mask comes first; the **sample-to-detector** distance turns the
#   sample's phase gradient into a speckle shift, $d = \frac{\lambda z}{2\pi p^2}\nabla\phi$.
#   With the sample upstream, the mask-to-detector distance plays that role. `Geometry` keeps
#   track of which.
# * Free space only redistributes intensity (the transfer function is a pure phase): the power
#   is conserved to rounding.
# * A coded mask's speckle depends on the cell size $a$ and $\lambda z$ through
#   $\lambda z/a^2$. A detector averages each pixel, which a simulation must reproduce by
#   computing the wave on a finer grid and binning; sampling the wave at one point per pixel
#   gives the wrong contrast.
# * Eq. 1 moves the reference by the displacement field and multiplies by $T$. A sub-pixel
#   shift is visible in the difference image on the grains' flanks, and a parabolic lens
#   gives a displacement that grows linearly from its axis.
# * The detector blurs before its pixels integrate; simulated in that order, a sub-pixel shift
#   of the speckle is nearly the reference moved, where a blur after the binning leaves a
#   mismatch that no tracker can remove.
#
# Next, notebook 02 uses all of this to make training data, with other speckle makers,
# noise and phantoms.

# %%
lesson.finish()
