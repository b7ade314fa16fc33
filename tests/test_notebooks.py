"""Execute the teaching notebooks headless (papermill, QUICK=True) and check what they saved.

Every notebook ``notebooks/NN_name.py`` on disk must have an entry in :data:`CHECKS`: a
function that receives the notebook's OUTPUT_DIR and asserts on the ``summary.json`` and
figures it wrote.  A notebook without an entry fails (it is not skipped), so a new notebook
cannot slip in untested; add ``"NN_name": check_function`` to the dict.

Run only these with ``pytest -m notebook``; skip them with ``pytest -m "not notebook"``.
The notebooks run in a Jupyter kernel named ``python3`` that must import ``spinnet_lite``:
``python -m ipykernel install --sys-prefix --name python3`` in the project's environment.
"""
from __future__ import annotations

import json
import math
import re
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOK_GLOB = "[0-9][0-9]_*.py"
KERNEL = "python3"


def discovered_notebooks() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob(NOTEBOOK_GLOB))


# ---------------------------------------------------------------------------------------
# Checks on what each notebook saved (OUTPUT_DIR)
# ---------------------------------------------------------------------------------------
def load_summary(out: Path) -> dict:
    path = out / "summary.json"
    assert path.is_file(), f"the notebook did not write {path.name} into OUTPUT_DIR"
    return json.loads(path.read_text())


def assert_figures(out: Path, names) -> None:
    for name in names:
        path = out / name
        assert path.is_file(), f"figure {name} was not saved"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{name} is not a PNG"
        assert path.stat().st_size > 5_000, f"{name} looks empty ({path.stat().st_size} bytes)"


def assert_exercises(s: dict, names) -> None:
    """The lesson ran every exercise's check cell (left unanswered in a plain run)."""
    assert set(s["exercises"]) == set(names), f"exercise checks run: {sorted(s['exercises'])}"
    assert s["run_time_s"] > 0 and s["cpu_time_s"] > 0 and (s["peak_rss_mb"] is None or s["peak_rss_mb"] > 0)


def check_00_whole_game(out: Path) -> None:
    s = load_summary(out)
    assert s["quick"] is True
    # the lens moves the speckle by a fraction of a pixel to a few pixels
    assert 0.3 < s["max_displacement_px"] < s["grain_size_px"], "the prose says: less than one speckle grain"
    # the bundled network finds the displacement and the phase (loose: the weights get replaced)
    assert s["rmse"]["dx"] < 0.3 * s["max_displacement_px"] and s["rmse"]["dy"] < 0.3 * s["max_displacement_px"]
    assert s["rmse"]["phase"] < 0.25 * s["phase_range_rad"]
    assert s["simulate_s"] > 0 and s["reconstruct_s"] > 0
    # fast: CPU time, since the wall time on a loaded test machine says little about a laptop
    assert s["cpu_time_s"] < 60, "the whole game must stay fast"
    assert_exercises(s, ["00.1", "00.2", "00.3"])
    assert_figures(out, ["pair.png", "whole_game.png"])


def check_01_speckle_physics(out: Path) -> None:
    s = load_summary(out)
    assert s["quick"] is True
    # lambda = hc / E at 14 keV, and lambda z / (2 pi p^2) for z = 500 mm, p = 0.65 um
    assert s["wavelength_nm"] == pytest.approx(0.08856, abs=1e-4)
    expected_shift = s["wavelength_nm"] * 1e-9 * 0.5 / (2 * math.pi * (0.65e-6) ** 2)
    assert s["shift_per_gradient_px"] == pytest.approx(expected_shift, rel=1e-9)
    assert s["shift_per_gradient_px"] == pytest.approx(16.68, abs=0.01)
    assert s["gradient_for_1px_rad_per_px"] * s["shift_per_gradient_px"] == pytest.approx(1.0)
    # the seed's order (mask upstream): the sample distance converts; with the sample upstream, the mask's
    assert s["mask_upstream"] is True and s["effective_distance_mm"] == 500
    assert s["upstream_sample_effective_distance_mm"] == 500
    # the seed's training simulation (0.06 nm, 300 mm) is a different set-up from the 14 keV experiment
    assert s["seed_simulation_shift_per_gradient_px"] == pytest.approx(0.06e-9 * 0.3 / (2 * math.pi * 0.65e-6**2))
    # the detector's blur before its pixels: a sub-pixel shift is nearly the reference moved,
    # unlike with the blur after the binning, and less so the wider the blur
    before, after = s["psf_mismatch_before"], s["psf_mismatch_after"]
    assert len(before) == len(after) == len(s["psf_blurs_px"]) >= 2
    assert all(b < 0.5 * a for b, a in zip(before, after))
    assert before[-1] < before[0]
    # the transfer function is unitary: power is conserved
    assert abs(s["power_ratio"] - 1) < 1e-6
    assert s["power_ratio_max_deviation"] < 1e-6
    # speckle statistics: positive contrast; at z = 0 only the amplitude contrast of the mask
    contrast = s["contrast"]
    assert len(contrast) == len(s["distances_mm"]) == len(s["grain_size_px"]) >= 3
    assert all(c > 0 for c in contrast)
    assert s["distances_mm"][0] == 0
    assert contrast[0] == pytest.approx(s["contrast_at_0_theory"], abs=0.03)
    assert max(contrast[1:]) > 2 * contrast[0], "propagation should turn the mask's phase into contrast"
    assert s["grain_size_px"][0] == pytest.approx(s["pitch_px"], rel=0.1), "grain size at z = 0 is one cell"
    for key in ("contrast_by_cell", "grain_size_by_cell", "contrast_by_energy"):
        assert s[key] and all(len(v) == len(contrast) for v in s[key].values())
    # the wave simulated finer than the pixel and binned: sampling on the pixel grid (s = 1) overstates the
    # contrast, and finer grids converge (the last step changes less than the first)
    assert s["oversamples"][0] == 1 and s["simulator_oversample"] in s["oversamples"]
    for cell, c in s["contrast_by_oversample"].items():
        assert c[0] > c[-1], f"cell {cell} um: the pixel-grid simulation should overstate the contrast"
        assert abs(c[-1] - c[-2]) < abs(c[1] - c[0]), f"cell {cell} um: no convergence with finer grids"
    # Fresnel scaling: far from the mask the wave's contrast hardly depends on the cell size; the detector's
    # (averaged over pixels) does
    wave_far = [c[-1] for c in s["wave_contrast_by_cell"].values()]
    detector_far = [c[-1] for c in s["contrast_by_cell"].values()]
    assert max(wave_far) - min(wave_far) < max(detector_far) - min(detector_far)
    # Eq. 1: integer shifts are exact; the displacement convention and the lens
    assert s["shift_error"] < 1e-6
    assert s["linear_model_correlation"] > 0.9
    assert s["lens_dx_relative_error"] < 1e-6
    assert s["lens_dx_right_of_axis_px"] < 0, "a concave X-ray lens focuses: speckles move towards the axis"
    assert 0 < s["lens_max_displacement_px"] < 10
    assert 0.99 < s["lens_min_transmission"] <= 1
    assert_exercises(s, ["01.1", "01.2", "01.3", "01.4"])
    assert_figures(out, ["setup.png", "transfer_function.png", "mask_propagation.png", "oversampling.png",
                         "speckle_statistics.png", "uniform_shift.png", "lens_displacement.png"])


def check_02_coded_mask_simulator(out: Path) -> None:
    import numpy as np
    import xarray as xr

    s = load_summary(out)
    assert s["quick"] is True
    assert s["phantom_product_mismatch"] < 1e-9
    assert 0 < s["view_max_displacement_px"] < 20
    assert 0.3 < s["view_reference_contrast"] < 1.5
    assert s["view_reference_mean"] == pytest.approx(0.745, abs=0.05)  # (0.7^2 + 1^2) / 2
    assert s["noise_rms"] == pytest.approx(s["noise_rms_expected"], rel=0.1)  # Poisson: sqrt(<I>/N)
    n = s["n_pairs"]
    assert n >= 2
    path = out / s["dataset_file"]
    assert path.is_file()
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert dict(ds.sizes) == s["dataset_dims"]
        assert ds.sizes["pair"] == n and ds.sizes["y"] == ds.sizes["x"] >= 64
        for name in ("reference", "sample", "dx", "dy", "transmission", "phase"):
            assert ds[name].dims == ("pair", "y", "x"), name
            assert np.isfinite(ds[name].values).all(), name
        assert ds["dx"].attrs["units"] == "px" and ds["x"].attrs["units"] == "um"
        assert set(ds["seed"].values.tolist()) == set(range(int(ds["seed"][0]), int(ds["seed"][0]) + n))
        assert float(ds["transmission"].max()) <= 1 + 1e-6
        dmax = np.hypot(ds["dx"], ds["dy"]).max(("y", "x")).values
        np.testing.assert_allclose(ds["max_displacement"].values, dmax, rtol=1e-5)
        assert float(ds["dx"].min()) == pytest.approx(s["dx_range_px"][0], abs=1e-5)
        assert float(ds["dx"].max()) == pytest.approx(s["dx_range_px"][1], abs=1e-5)
        assert "geometry_energy_kev" in ds.attrs
        assert set(ds["speckle"].values.tolist()) <= {"mask", "diffuser"}
    assert 0 < s["max_displacement_px"][0] <= s["max_displacement_px"][2] < 20
    # the speckle generators: masks of fractional pitch and diffusers, all with speckle; a coarser
    # diffuser grain gives a coarser pattern
    gens = s["speckle_generators"]
    assert any("3.08" in name for name in gens) and sum("diffuser" in name for name in gens) >= 2
    assert all(g["contrast"] > 0.05 and g["grain_px"] > 1 for g in gens.values())
    diffusers = [g["grain_px"] for name, g in gens.items() if "diffuser" in name]
    assert diffusers == sorted(diffusers)
    # visibility is set as asked; the flat-field drift shows in T; max_shift_px sets the largest shift
    for v, measured in s["visibility_measured"].items():
        if v != "None":
            assert measured == pytest.approx(float(v), rel=0.02)
    lo, hi = s["flat_field_transmission_range"]
    assert hi > 1.01
    for name, d in s["max_shift_by_phantom"].items():
        assert d == pytest.approx(s["max_shift_asked_px"], rel=1e-3), name
    assert set(s["max_shift_by_phantom"]) == {"random", "blobs", "quadratic", "lens", "uniform",
                                              "quadratic, aperture=0.6"}
    assert s["texture_min_transmission"] < 0.9
    assert_exercises(s, ["02.1", "02.2", "02.3", "02.4"])
    assert_figures(out, ["phantom_parts.png", "simulator_default.png", "simulator_noisy.png",
                         "speckle_generators.png", "detector_effects.png", "displacement_phantoms.png",
                         "dataset_examples.png"])


def check_03_building_spinnet(out: Path) -> None:
    s = load_summary(out)
    assert s["quick"] is True
    # the feature pyramid: level l is 2**(l-1) times smaller than the input
    for level, (channels, height, width) in s["pyramid_shapes"].items():
        assert height == width == s["size"] // 2 ** (int(level) - 1), (level, height)
    assert s["pyramid_shapes"]["1"][0] == 1
    # the prop-layer undoes a known shift: an integer shift exactly, a sub-pixel one to < 0.1 px
    assert s["warp_error_px"] < 0.1
    assert s["warp_residual_integer"] < 1e-4
    assert s["warp_residual_after"] < s["warp_residual_before"] / 3
    # the cost volume (mean over the image) peaks at the known shift
    assert s["cost_volume_peak"] == s["expected_peak"]
    assert all(abs(v) <= s["cost_volume_search_range"] for v in s["expected_peak"])
    # a forward pass: cost volume (2N+1)^2 channels, PhaseNet 2 out, TNet 6 in / 1 out, at each level
    shapes = s["level_shapes"]
    side = 2 * s["search_range"] + 1
    levels = [k for k in shapes if k != "refiners"]
    assert levels == [str(level) for level in range(s["first_level"], 1, -1)]
    for level in levels:
        row = shapes[level]
        size = s["pair_size"] // 2 ** (int(level) - 1)
        assert row["cost_volume"] == [side * side, size, size]
        assert row["phase_net_out"] == [2, size, size] and row["t_net_out"] == [1, size, size]
        assert row["t_net_in"] == [6, size, size]
        assert row["phase_net_in"][0] > side * side + 2
    assert shapes["refiners"]["phase_refiner_out"][0] == 2 and shapes["refiners"]["t_refiner_out"][0] == 1
    assert s["output_displacement_shape"] == [1, 2, s["pair_size"], s["pair_size"]]
    # parameter counts: the seed-sized network has 4-7 M, lite far fewer
    assert 4e6 <= s["params_full"] <= 7e6
    assert s["params_tiny"] < s["params_lite"] < s["params_full"] / 3
    for name, table in s["parameter_tables"].items():
        assert sum(v for k, v in table.items() if k != "total") == table["total"], name
    # Eq. 4 of an untrained network, which predicts about d = 0, T = 1: about 2
    assert s["zero_guess_pair_error"] == pytest.approx(2.0, abs=0.1)
    assert s["untrained_pair_error"] == pytest.approx(s["zero_guess_pair_error"], abs=0.2)
    # the input normalisation makes a faint diffuser and a bright mask look alike (unit local contrast)
    before, after = s["contrast_before_norm"], s["contrast_after_norm"]
    assert max(before.values()) > 5 * min(before.values())
    assert all(0.7 < v < 1.3 for v in after.values())
    # the cost-volume demonstration stays inside the bundled network's trained range
    assert 0 < s["cost_volume_shift_px"] <= s["trained_max_shift_px"]
    assert s["coarsest_reach_px"]["full"] == 4 * 2**5
    # the finest level run once and twice: both counts measured, with the bundled weights' own count
    from spinnet_lite.pretrained import load_pretrained

    assert s["trained_finest_iterations"] == load_pretrained().config.finest_iterations
    errors = s["iteration_errors_px"]
    assert {"1", "2", str(s["trained_finest_iterations"])} <= set(errors)
    assert all(0 < v < 0.5 for v in errors.values()), errors  # a trained network on a simulated pair
    assert_exercises(s, ["03.1", "03.2", "03.3", "03.4"])
    assert_figures(out, ["input_normalisation.png", "feature_pyramid.png", "warp_residual.png", "cost_volume.png",
                         "parameter_counts.png"])


def check_04_staged_training(out: Path) -> None:
    s = load_summary(out)
    assert s["quick"] is True and s["source"] == "quick run" and s["model_config"] == "tiny"
    assert s["init_level_copies"] is True
    # the quick run's history: the tiny preset's 2 + 1 + 1 epochs, stages in order
    assert s["history_rows"] == s["n_epochs"] == sum(s["epochs_per_stage"]) == 4
    assert s["epochs_per_stage"] == [2, 1, 1]
    assert s["stages_in_order"] is True
    assert math.isfinite(s["final_val_loss"]) and s["final_val_loss"] > 0
    assert s["bundled_history_rows"] >= 1
    for name in ("history.csv", "model.pt", "record.json"):
        assert (out / "run" / name).is_file(), f"the quick training run did not write {name}"
    # RETRAIN=True runs `make train-lite`'s training commands (into the notebook's folder), not
    # the settings the README says failed (lr 1e-4, 128 px patches)
    assert s["retrain_commands"] and all(argv[0] == "train" for argv in s["retrain_commands"])
    assert not any(a.startswith("runs/") for argv in s["retrain_commands"] for a in argv)
    for settings in s["retrain_settings"]:
        assert settings["lr"] > 1e-4 and settings["patch"] > 128, settings
    # one Eq. 4 pair error per stage path: (3, no refiners), (2, no refiners), (2, refiners)
    assert s["stage_paths"] == [[3, False], [2, False], [2, True]]
    errors = s["stage_pair_errors"]
    assert len(errors) == 3 and all(math.isfinite(e) and e >= 0 for e in errors)
    for error, terms in zip(errors, s["stage_error_terms"]):
        assert error == pytest.approx(sum(terms.values()), rel=1e-3)
    assert_exercises(s, ["04.1", "04.2", "04.3"])
    assert s["peak_rss_mb"] is None or s["peak_rss_mb"] < 1500, "Binder gives 2 GB"
    assert_figures(out, ["loss_curves_bundled.png", "loss_curves.png", "stage_predictions.png", "stage_profiles.png"])


def _trained(s: dict) -> bool:
    """Whether the notebook ran a real (not the test-only "tiny") SPINNet: only then are its accuracy bounds checked."""
    return s["model_config"] != "tiny"


def check_05_beryllium_lens(out: Path) -> None:
    s = load_summary(out)
    assert s["quick"] is True
    lens = s["lens"]
    # the true phase inside the aperture is a paraboloid of apex radius 200 um
    assert lens["truth"]["residual_rms_rad"] < 1e-3
    assert lens["truth"]["apex_radius_um"] == pytest.approx(200, rel=0.01)
    # XST recovers the lens: small residual, the right curvature, a phase close to the truth
    xst = lens["XST"]
    assert xst["residual_rms_rad"] < 0.05
    assert xst["residual_rms_waves"] == pytest.approx(xst["residual_rms_rad"] / (2 * math.pi))
    assert xst["apex_radius_um"] == pytest.approx(200, rel=0.05)
    assert xst["phase_rmse_rad"] < 0.1 * s["phase_range_rad"]
    if _trained(s):  # loose: the quick lens moves the speckle by < 0.5 px, near the lite network's accuracy
        assert lens["SPINNet"]["residual_rms_rad"] < 0.3
        assert lens["SPINNet"]["displacement_rmse_px"] < 1.0
    assert s["time_s"]["spinnet"] > 0 and s["time_s"]["xst"] > 0
    # the command line on TIFF + HDF5 files gives what reconstruct gives in Python
    assert s["cli_returncode"] == 0
    assert {"dx", "dy", "transmission", "phase"} <= set(s["cli_variables"])
    assert s["cli_phase_max_diff_rad"] < 1e-3
    # a frame larger than the tile goes through tiling and comes back whole
    large = s["large"]
    assert large["size"] > large["tile"] and large["tiles"] > 1 and large["finite"] is True
    assert large["time_s"] > 0 and large["displacement_rmse_px"] < large["max_displacement_px"]
    # the seed's analysis: residual after the paraboloid inside the central circle, both methods
    circle = s["circle"]
    assert 0 < circle["diameter_um"] <= circle["seed_diameter_um"] == 800
    assert circle["residual_rms_rad"]["truth"] < 1e-2
    assert circle["residual_rms_rad"]["XST"] < 0.05
    assert circle["difference_rms_rad"] >= 0
    # Binder: the kernel, and the kernel with the command it starts beside it, stay under 1.5 GB
    assert s["peak_rss_mb"] is None or s["peak_rss_mb"] < 1500
    assert s["kernel_rss_during_cli_mb"] is None or s["kernel_rss_during_cli_mb"] + (s["cli_peak_rss_mb"] or 0) < 1500
    assert_exercises(s, ["05.1", "05.2", "05.3"])
    assert_figures(out, ["lens_pair.png", "lens_comparison.png", "lens_residuals.png", "lens_profiles.png",
                         "lens_large.png", "lens_circle.png"])


def check_06_bug_tomography(out: Path) -> None:
    s = load_summary(out)
    assert s["quick"] is True
    # the seed's bug geometry: 628 mm, the mask upstream of the sample
    assert s["sample_detector_mm"] == 628 and s["mask_upstream"] is True and s["effective_distance_mm"] == 628
    assert s["max_displacement_px"] > 1, "the bug moves the speckle by pixels, not fractions"
    corr = s["slice_correlation"]
    # FBP of the true projections recovers the phantom's slice; XST's stack does too
    assert corr["true projections"] > 0.8
    assert corr["XST"] > 0.5
    assert s["volume_correlation"]["XST"] > 0.4
    assert s["transmission_slice_correlation"]["true projections"] > 0.7
    if _trained(s):
        assert corr["SPINNet"] > 0.5
    assert all(v > 0 and math.isfinite(v) for v in s["noise_px"].values())
    assert s["noise_px"]["xst"] < 0.2
    assert s["noise_ratio_spinnet_to_xst"] == pytest.approx(s["noise_px"]["spinnet"] / s["noise_px"]["xst"])
    assert s["stack_time_s"]["xst"] > 0 and s["stack_time_s"]["spinnet"] > 0
    # the dask.distributed cluster computes the same stack as the thread pool
    assert s["distributed_max_difference"] < 1e-9
    assert s["fbp_backend"] in ("astra", "skimage")
    assert s["peak_rss_mb"] is None or s["peak_rss_mb"] < 1500, "Binder gives 2 GB"
    assert_exercises(s, ["06.1", "06.2", "06.3"])
    assert_figures(out, ["bug_projections.png", "projection_comparison.png", "sinograms.png", "slices.png",
                         "volume_3d.png"])


def check_07_evaluation(out: Path) -> None:
    s = load_summary(out)
    assert s["quick"] is True
    n = s["n_pairs"]
    for method in ("spinnet", "xst"):
        ev = s["evaluation"][method]
        assert ev["n"] == n
        assert sum(ev["regime_counts"].values()) == n
        assert s["regime_counts"][method] == ev["regime_counts"]
    assert len(s["pairs"]) == 2 * n
    assert all(p["regime"] in ("<0.25%", "0.25-1%", ">1%") for p in s["pairs"])
    # XST tracks the held-out speckle to a fraction of a pixel
    assert s["evaluation"]["xst"]["median_displacement_rmse"] < 0.5
    # a 2 px mask, binned from the finer wave grid, makes faint speckle: only check it ran
    assert s["fine_pitch"]["pitch"] == 2 and math.isfinite(s["fine_pitch"]["xst"]["displacement_rmse"])
    if _trained(s):
        assert s["evaluation"]["spinnet"]["median_displacement_rmse"] < 1.0
    # the set at the seed's scale: at the set's own 60 mm the same regimes as the evaluation above,
    # and the quick set's two random phantoms move twice as far at 120 mm
    scale = s["seed_scale"]
    assert set(scale) == {"60", "120"}
    assert scale["60"]["regime_counts"] == s["evaluation"]["spinnet"]["regime_counts"]
    assert scale["120"]["median_max_shift_px"] == pytest.approx(2 * scale["60"]["median_max_shift_px"], rel=1e-5)
    assert all(0 <= v["below_1_percent"] <= 1 and v["n"] == n for v in scale.values())
    # the pitch sweep keeps one phantom: only the mask changes
    assert {r["pitch"] for r in s["pitch_sweep"]} >= {2, 4}
    assert s["pitch_sweep_phantom_max_diff"] == 0
    assert s["examples"], "at least one regime has an example"
    # the operating range: both methods at every point of the four sweeps
    rows = s["operating_range"]
    assert {r["sweep"] for r in rows} == {"magnitude", "visibility", "speckle", "dose"}
    assert {r["label"] for r in rows if r["sweep"] == "speckle"} == {"mask", "diffuser"}
    for sweep in ("magnitude", "visibility", "speckle", "dose"):
        points = [r for r in rows if r["sweep"] == sweep]
        assert len(points) >= 4 and {r["method"] for r in points} == {"spinnet", "xst"}
        assert all(r["rmse_px"] is not None and r["rmse_px"] >= 0 for r in points)
        assert all(r["pair_error"] >= 0 for r in points)  # the seed's Eq. 4 of each case
    speed = s["speed"]
    assert speed["spinnet_s"] > 0 and speed["xst_s"] > 0
    assert speed["speedup"] == pytest.approx(speed["xst_s"] / speed["spinnet_s"])
    assert speed["float32_s"] > 0 and speed["engine"] in ("torch", "bf16")
    assert speed["max_diff_default_vs_float32_px"] < (1e-4 if speed["engine"] == "torch" else 0.05)
    # mirror images: one row per count, the first the plain network's (its figures as above)
    sym = {r["symmetries"]: r for r in s["symmetries"]}
    assert set(sym) == {1, 4}
    assert sym[1]["median_displacement_rmse"] == s["evaluation"]["spinnet"]["median_displacement_rmse"]
    assert all(r["median_time_s"] > 0 and 0 <= r["below_1_percent"] <= 1 for r in sym.values())
    if _trained(s):
        assert sym[4]["median_displacement_rmse"] < 1.0
    # passes of the finest level: one and two, the count the weights were trained with marked and
    # equal to the default evaluation above
    its = {r["iterations"]: r for r in s["iterations"]}
    assert {1, 2} <= set(its) and sum(r["trained"] for r in its.values()) == 1
    trained = next(r for r in its.values() if r["trained"])
    assert trained["median_displacement_rmse"] == s["evaluation"]["spinnet"]["median_displacement_rmse"]
    assert all(r["median_time_s"] > 0 and 0 <= r["below_1_percent"] <= 1 for r in its.values())
    assert s["peak_rss_mb"] is None or s["peak_rss_mb"] < 1500, "Binder gives 2 GB"
    assert_exercises(s, ["07.1", "07.2", "07.3"])
    names = ["error_histogram.png", "fine_mask.png", "pitch_sweep.png", "operating_range.png", "speed.png"]
    names += [f"regime_example_{r.replace('<', 'lt').replace('>', 'gt').replace('%', 'pct').replace('.', 'p')}.png"
              for r in s["examples"]]
    assert_figures(out, names)


#: notebook stem -> check on its OUTPUT_DIR.  Register every new notebook here.
CHECKS = {
    "00_whole_game": check_00_whole_game,
    "01_speckle_physics": check_01_speckle_physics,
    "02_coded_mask_simulator": check_02_coded_mask_simulator,
    "03_building_spinnet": check_03_building_spinnet,
    "04_staged_training": check_04_staged_training,
    "05_beryllium_lens": check_05_beryllium_lens,
    "06_bug_tomography": check_06_bug_tomography,
    "07_evaluation": check_07_evaluation,
}


# ---------------------------------------------------------------------------------------
# Fast checks (no kernel): registration and notebook conventions
# ---------------------------------------------------------------------------------------
def test_notebooks_are_discovered():
    assert discovered_notebooks(), f"no notebooks matching {NOTEBOOK_GLOB} in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", discovered_notebooks(), ids=lambda p: p.stem)
def test_notebook_is_registered(path):
    assert path.stem in CHECKS, (
        f"{path.name} has no entry in CHECKS in {Path(__file__).name}: add "
        f'"{path.stem}": <function asserting on its summary.json and figures>'
    )


def test_no_stale_registrations():
    stems = {p.stem for p in discovered_notebooks()}
    stale = sorted(set(CHECKS) - stems)
    assert not stale, f"CHECKS entries without a notebook in {NOTEBOOK_DIR}: {stale}"


@pytest.mark.parametrize("path", discovered_notebooks(), ids=lambda p: p.stem)
def test_notebook_conventions(path):
    """Percent format, python3 kernel, exactly one parameters cell with QUICK and OUTPUT_DIR."""
    import jupytext

    text = path.read_text()
    assert text.startswith("# ---\n# jupyter:"), f"{path.name}: no jupytext header"
    nb = jupytext.read(path)
    assert nb.metadata.get("kernelspec", {}).get("name") == KERNEL, f"{path.name}: kernelspec must be {KERNEL}"
    assert "percent" in nb.metadata.get("jupytext", {}).get("formats", ""), f"{path.name}: not py:percent"
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{path.name}: expected one 'parameters' cell, found {len(params)}"
    source = params[0].source
    assert re.search(r"^QUICK\s*=\s*False\b", source, re.M), f"{path.name}: parameters cell must set QUICK = False"
    assert re.search(r"^OUTPUT_DIR\s*=", source, re.M), f"{path.name}: parameters cell must set OUTPUT_DIR"
    assert "%matplotlib inline" in text, f"{path.name}: use the inline backend (%matplotlib inline)"


# ---------------------------------------------------------------------------------------
# Execution (slow): papermill with QUICK=True
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def python3_kernel():
    """The ``python3`` kernel exists and its interpreter imports spinnet_lite."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        pytest.fail(f"no Jupyter kernel named {KERNEL!r} (see `jupyter kernelspec list`); install it in this "
                    f"environment with `python -m ipykernel install --sys-prefix --name {KERNEL}`")
    exe = spec.argv[0]
    result = subprocess.run([exe, "-c", "import spinnet_lite, matplotlib_inline, ipywidgets"],
                            capture_output=True, text=True, timeout=120)
    if result.returncode:
        pytest.fail(f"the {KERNEL!r} kernel ({spec.resource_dir}) runs {exe}, which cannot import spinnet_lite: "
                    f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'unknown error'}; "
                    f"reinstall the kernel from this environment: python -m ipykernel install --sys-prefix "
                    f"--name {KERNEL}")
    return spec


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", discovered_notebooks(), ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch, python3_kernel):
    check = CHECKS.get(path.stem)
    if check is None:
        pytest.fail(f"{path.name} has no entry in CHECKS; register a check before running it")
    import jupytext
    import papermill

    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel keeps matplotlib's inline backend
    out = tmp_path / "output"
    nb = jupytext.read(path)
    start = time.perf_counter()
    papermill.execute_notebook(
        nb,
        str(tmp_path / f"{path.stem}.ipynb"),
        kernel_name=KERNEL,
        language="python",
        cwd=str(NOTEBOOK_DIR),
        parameters={"QUICK": True, "OUTPUT_DIR": str(out)},
        execution_timeout=600,
        progress_bar=False,
    )
    print(f"{path.name}: {time.perf_counter() - start:.1f} s in quick mode")
    check(out)
