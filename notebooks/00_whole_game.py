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
# # 00 · The whole game: from two speckle images to a phase image
#
# Put a random mask in an X-ray beam and the detector records a speckle pattern. Put a sample
# in the beam too and the pattern moves a little, by an amount set by how the sample bends
# the X-rays, that is, by the gradient of its **phase**. SPINNet is a neural network that reads
# the two images and returns that movement, and from it the phase. This notebook does the whole
# thing first, in three lines, and then shows where each later notebook opens the box.
#
# **You will:** simulate a reference and a sample image of a beryllium lens; reconstruct its
# phase with the bundled SPINNet-lite weights; compare the result with the truth; find your way
# through the rest of the course.
#
# **You need:** Python and numpy at the level of "I can index an array and make a plot". No
# X-ray optics, no deep learning: later notebooks teach both.
#
# **Run time:** under a minute on a laptop CPU (the measured time and memory are in
# `docs/workshop.md`; the last cell prints this run's).

# %% tags=["parameters"]
QUICK = False  # True: a smaller image (the tests run this)
SIZE = 512  # image size, px
SEED = 0  # random seed of the simulated mask
OUTPUT_DIR = "../output/00"

# %%
if QUICK:  # every code path still runs, on less data
    SIZE = 256

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

import spinnet_lite
from spinnet_lite import Geometry, nbtools, plots
from spinnet_lite.metrics import grain_size_px

lesson = nbtools.Lesson(OUTPUT_DIR, quick=QUICK, size=SIZE, seed=SEED)
geometry = Geometry()  # the seed's lens experiment: 14 keV, 0.65 um pixels, sample 500 mm from the detector

# %% [markdown]
# ## The whole game, in three lines
#
# 1. `simulate_pair` makes a **reference** image (speckle without the sample) and a
#    **sample** image (the same speckle seen through a beryllium lens), with the true answer
#    alongside;
# 2. `reconstruct` runs SPINNet on the two images and, given the set-up (`geometry`), turns
#    the speckle movement into the phase;
# 3. a plot.

# %%
pair = spinnet_lite.simulate_pair(SIZE, phantom="lens", geometry=geometry, seed=SEED)
result = spinnet_lite.reconstruct(pair.reference, pair.sample, geometry=geometry)
result.phase.plot.imshow(yincrease=False, size=4, aspect=1.15, cmap="viridis");

# %% [markdown]
# That is a phase image of the lens: a paraboloid, highest on the axis. The lens is concave,
# thin on its axis and thick at its rim, and for X-rays (refractive index just below 1) more
# material means a more negative phase; notebook 01 works that out. The axes are in
# micrometres: `reconstruct` took the pixel size from `geometry`.
#
# What did the network actually see? Two images that look almost the same:

# %%
zoom = slice(SIZE // 2 + SIZE // 8, SIZE // 2 + SIZE // 8 + 64)  # a 64 x 64 px corner, off the lens axis
fig, axes = plt.subplots(1, 3, figsize=(12, 4), layout="constrained")
plots.show_map(axes[0], pair.reference[zoom, zoom], "gray", title="reference (no sample)",
               pixel_size_um=geometry.pixel_size_um)
plots.show_map(axes[1], pair.sample[zoom, zoom], "gray", title="sample (through the lens)",
               pixel_size_um=geometry.pixel_size_um)
diff = (pair.sample - pair.reference)[zoom, zoom]
lim = float(np.abs(diff).max())
im = plots.show_map(axes[2], diff, "RdBu_r", -lim, lim, title="sample - reference",
                    pixel_size_um=geometry.pixel_size_um)
fig.colorbar(im, ax=axes[2], shrink=0.8)
lesson.savefig(fig, "pair.png")
max_shift = lesson.record(max_displacement_px=float(np.hypot(pair.dx, pair.dy).max()))
grain = lesson.record(grain_size_px=grain_size_px(pair.reference.values))
print(f"The lens moves the speckle by at most {max_shift:.2f} px "
      f"({max_shift * geometry.pixel_size_um:.2f} um on the detector); a speckle grain is {grain:.1f} px wide.")

# %% [markdown]
# The speckle moved by less than the width of one of its grains (both printed above): hard to
# see by eye, but the difference image (right) shows it along the edges of the grains.
# Finding that small movement everywhere in the image is the whole job.
#
# > **Think.** Why does the difference image light up at the *edges* of the grains and not in
# > their middle? (Hint: what does a small shift change in a flat region?)

# %% [markdown]
# ## How good is it?
#
# A simulation comes with the truth, so we can score the result. `plots.compare_maps` puts
# the truth in the first row and SPINNet's result below, each map beside its error, on one
# colour scale per quantity: the two displacement components $d_x$, $d_y$ (pixels) and the
# phase (radians). The phase is only defined up to a constant, so both are compared with their
# mean removed. (SPINNet also returns the transmission $T$; this thin lens hardly absorbs.)

# %%
truth = {"dx": pair.dx, "dy": pair.dy, "transmission": pair.transmission, "phase": pair.phase - pair.phase.mean()}
found = {"dx": result.dx, "dy": result.dy, "transmission": result.transmission,
         "phase": result.phase - result.phase.mean()}
fig = plots.compare_maps(truth, {"SPINNet": found}, columns=("dx", "dy", "phase"), pixel_size_um=geometry.pixel_size_um)
lesson.savefig(fig, "whole_game.png")
rms = {name: float(np.sqrt(np.mean((found[name] - truth[name]).values ** 2))) for name in truth}
phase_range = float(truth["phase"].max() - truth["phase"].min())
lesson.record(rmse=rms, phase_range_rad=phase_range)
print(f"rms error of dx, dy: {rms['dx']:.3f}, {rms['dy']:.3f} px (largest displacement {max_shift:.2f} px)")
print(f"rms error of the phase: {rms['phase']:.3f} rad over a phase range of {phase_range:.1f} rad "
      f"({100 * rms['phase'] / phase_range:.1f} %)")
print(f"rms error of the transmission: {rms['transmission']:.4f}")

# %% [markdown]
# The printed numbers are the scorecard. The phase error map shows where the errors sit: a
# phase is integrated from its gradients, so a small error in the displacement everywhere
# becomes a smooth, large-scale error in the phase.
#
# > **Try this.** Rerun the three lines with `method="xst"` in `reconstruct`: classical
# > speckle tracking, the method SPINNet was built to replace. Is it more accurate? Is it
# > slower? (Notebook 05 measures both properly.)

# %% [markdown]
# ## How long did it take?
#
# SPINNet's promise is speed: one pass of a small network instead of a search at every pixel.
# `nbtools.measure` times a block and the memory it allocates:

# %%
with nbtools.measure("simulate_pair") as sim_time:
    spinnet_lite.simulate_pair(SIZE, phantom="lens", geometry=geometry, seed=SEED)
with nbtools.measure("reconstruct (SPINNet + phase integration)") as rec_time:
    spinnet_lite.reconstruct(pair.reference, pair.sample, geometry=geometry)
print(sim_time)
print(rec_time)
lesson.record(simulate_s=sim_time.seconds, reconstruct_s=rec_time.seconds)

# %% [markdown]
# ## Opening the box: where each notebook goes
#
# Every line above hides a lot. The rest of the course takes it apart, in order:
#
# | The whole game did ... | Opened in | What you learn there |
# |---|---|---|
# | `Geometry()`: energy, pixel size, distances | **01** speckle physics | wavelength, how a phase gradient moves the speckle, the set-up's order (mask before sample) |
# | `simulate_pair`: the reference | **01**, **02** | how a coded mask makes speckle (Fresnel propagation), its contrast and grain size; other speckle makers (diffusers) |
# | `simulate_pair`: the sample | **01**, **02** | the forward model $I_s = T\cdot I_r(y-d_y, x-d_x)$, phantoms, noise, the training data |
# | `reconstruct`: the network | **03** building SPINNet | feature pyramids, warping, the cost volume, the estimators, the loss |
# | the bundled weights | **04** staged training | how the network is trained, stage by stage |
# | `reconstruct(..., geometry=...)`: the phase | **05** beryllium lens | SPINNet against classical tracking (XST), phase integration, your own images, large frames |
# | many images | **06** bug tomography | a stack of projections, and a 3-D volume from them |
# | "how good is it?" | **07** evaluation | errors over many pairs, the seed's error regimes, speed, where the network fails |
#
# Each notebook starts with what it teaches and how long it takes, and ends with exercises.

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell where you replace `None` by your answer and a check that says
# whether it is right. The solution is hidden under *Solution*: try first.
#
# **Exercise 00.1 · Field of view.** How wide is the image, in micrometres? Use `SIZE` and
# `geometry.pixel_size_um`.

# %%
answer_00_1 = None  # your answer, in um
lesson.check_exercise("00.1", answer_00_1, expected=float(pair.x.size * (pair.x[1] - pair.x[0])), rtol=0.01)

# %% [markdown]
# <details><summary>Solution</summary>
#
# The width is the number of pixels times the pixel size:
#
# ```python
# answer_00_1 = SIZE * geometry.pixel_size_um
# lesson.check_exercise("00.1", answer_00_1, expected=float(pair.x.size * (pair.x[1] - pair.x[0])), rtol=0.01)
# ```
# </details>
#
# **Exercise 00.2 · From displacement to phase gradient.** `geometry.shift_per_gradient` is the
# displacement (in px) that a phase gradient of 1 rad per pixel produces in this set-up.
# What phase gradient, in rad/px, moves the speckle by the largest displacement of the lens,
# `max_shift`?

# %%
answer_00_2 = None  # your answer, in rad/px
lesson.check_exercise("00.2", answer_00_2, expected=geometry.displacement_to_dphi(max_shift), rtol=0.01,
                      hint="divide, do not multiply")

# %% [markdown]
# <details><summary>Solution</summary>
#
# Displacement = `shift_per_gradient` x gradient, so the gradient is the displacement divided by it:
#
# ```python
# answer_00_2 = max_shift / geometry.shift_per_gradient
# lesson.check_exercise("00.2", answer_00_2, expected=geometry.displacement_to_dphi(max_shift), rtol=0.01,
#                       hint="divide, do not multiply")
# ```
# </details>
#
# **Exercise 00.3 · A stronger lens.** Simulate the same lens further from the detector,
# `Geometry(sample_detector_mm=1000)` (keep the mask upstream: `mask_detector_mm=1200`), and
# give its largest displacement in pixels. Before you run it: do you expect twice the
# displacement, or four times?

# %%
answer_00_3 = None  # your answer, in px
far = Geometry(sample_detector_mm=1000, mask_detector_mm=1200)
lesson.check_exercise("00.3", answer_00_3, expected=max_shift * far.shift_per_gradient / geometry.shift_per_gradient,
                      rtol=0.03, hint="simulate_pair(SIZE, phantom='lens', geometry=..., seed=SEED), then "
                                      "the largest np.hypot(dx, dy)")

# %% [markdown]
# <details><summary>Solution</summary>
#
# The displacement grows in proportion to the sample-to-detector distance (twice the distance,
# twice the displacement): the deflection angle is set by the sample, and the speckle moves
# by angle x distance.
#
# ```python
# far_pair = spinnet_lite.simulate_pair(SIZE, phantom="lens", geometry=far, seed=SEED)
# answer_00_3 = float(np.hypot(far_pair.dx, far_pair.dy).max())
# lesson.check_exercise("00.3", answer_00_3, expected=max_shift * far.shift_per_gradient / geometry.shift_per_gradient,
#                       rtol=0.03, hint="simulate_pair(SIZE, phantom='lens', geometry=..., seed=SEED), then "
#                                       "the largest np.hypot(dx, dy)")
# ```
# </details>

# %% [markdown]
# ## What we learned
#
# * Speckle imaging needs two images, with and without the sample; the sample moves the
#   speckle by a fraction of a pixel to a few pixels.
# * SPINNet turns the pair into the displacement field and the transmission in one pass;
#   with the set-up's geometry the displacement becomes a phase gradient, and integrating it
#   gives the phase.
# * On a simulation we can score every step against the truth; the printed rms errors are
#   this run's scorecard.
#
# **Seed vs this project.** The seed (Qiao, Shi et al. 2022, "Real-time X-ray phase-contrast
# imaging using SPINNet") reconstructs measured images of a beryllium lens with a network
# trained on simulations. Here the lens itself is simulated (the seed's data are not public),
# the network is a smaller "lite" version of the seed's SPINNet trained by this project, and
# the mask-to-detector distance of 800 mm is this project's assumption (the seed does not
# state it). Notebook 03 lists every difference in the network.

# %%
lesson.finish()
