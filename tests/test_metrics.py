"""Metrics on hand-made arrays with known values; the held-out set's specs."""
import math

import numpy as np
import pytest
import xarray as xr

from spinnet_lite import metrics
from spinnet_lite.evalset import EVAL_SEED_BASE, KINDS, heldout_specs, is_eval_seed


def truth(shape=(20, 20)):
    return {"dx": np.full(shape, 2.0), "dy": np.full(shape, -1.0), "transmission": np.full(shape, 0.5)}


class TestPairError:
    def test_perfect(self):
        gt = truth()
        assert metrics.pair_error(gt, gt) == 0.0
        assert metrics.displacement_rmse(gt, gt) == 0.0
        assert metrics.transmission_error(gt, gt) == 0.0

    def test_known_terms(self):
        gt = truth()
        pred = {"dx": gt["dx"] + 0.2, "dy": gt["dy"] - 0.1, "transmission": gt["transmission"] * 1.1}
        terms = metrics.pair_error_terms(pred, gt)
        # |dx - dx_gt|^2 / |dx_gt|^2 = 0.04 / 4 per pixel, etc.
        assert terms["dx"] == pytest.approx(0.01)
        assert terms["dy"] == pytest.approx(0.01)
        assert terms["transmission"] == pytest.approx(0.01)
        assert metrics.pair_error(pred, gt) == pytest.approx(0.03)
        assert metrics.displacement_rmse(pred, gt) == pytest.approx(math.sqrt(0.04 + 0.01))
        assert metrics.transmission_error(pred, gt) == pytest.approx(0.05)

    def test_squared_norms_not_means(self):
        # One wrong pixel out of 4: the ratio of squared norms, not a mean of ratios.
        gt = {"dx": np.array([[1.0, 1.0], [1.0, 3.0]]), "dy": np.ones((2, 2)), "transmission": np.ones((2, 2))}
        pred = {"dx": np.array([[1.0, 1.0], [1.0, 1.0]]), "dy": np.ones((2, 2)), "transmission": np.ones((2, 2))}
        assert metrics.pair_error_terms(pred, gt)["dx"] == pytest.approx(4.0 / 12.0)

    def test_border_crops(self):
        gt = truth()
        pred = {k: v.copy() for k, v in gt.items()}
        pred["dx"][0, :] = 100.0  # an error only in the first row
        assert metrics.pair_error(pred, gt, border=1) == 0.0
        assert metrics.displacement_rmse(pred, gt, border=1) == 0.0
        assert metrics.pair_error(pred, gt) > 0
        with pytest.raises(ValueError, match="border"):
            metrics.pair_error(pred, gt, border=10)
        with pytest.raises(ValueError, match="border"):
            metrics.pair_error(pred, gt, border=-1)

    def test_zero_ground_truth(self):
        gt = truth()
        gt["dy"] = np.zeros_like(gt["dy"])
        assert metrics.pair_error_terms(gt, gt)["dy"] == 0.0
        pred = dict(gt, dy=np.full_like(gt["dy"], 0.1))
        assert math.isinf(metrics.pair_error_terms(pred, gt)["dy"])

    def test_datasets_and_errors(self):
        gt = truth()
        ds = xr.Dataset({k: (("y", "x"), v) for k, v in gt.items()})
        assert metrics.pair_error(ds, gt) == 0.0
        with pytest.raises(ValueError, match="missing variable 'transmission'"):
            metrics.pair_error({"dx": gt["dx"], "dy": gt["dy"]}, gt)
        with pytest.raises(ValueError, match="differ in shape"):
            metrics.pair_error({k: v[1:] for k, v in gt.items()}, gt)


@pytest.mark.parametrize("value, regime", [(0.0, "<0.25%"), (0.0024, "<0.25%"), (0.0025, "0.25-1%"),
                                           (0.01, "0.25-1%"), (0.0101, ">1%"), (3.0, ">1%"), (math.inf, ">1%")])
def test_error_regime(value, regime):
    assert metrics.error_regime(value) == regime


def test_error_regime_nan():
    with pytest.raises(ValueError):
        metrics.error_regime(float("nan"))


class TestBackgroundNoise:
    def test_known_std(self):
        support = np.zeros((40, 40))
        support[10:30, 10:30] = 1
        rng = np.random.default_rng(0)
        pred = {"dx": rng.normal(0, 0.3, (40, 40)), "dy": rng.normal(0, 0.4, (40, 40))}
        pred["dx"][support == 1] = 50.0  # the sample itself must not count
        region = metrics.background_region(support, erode=3)
        assert not region[7:33, 7:33].any()  # eroded away from the sample edge
        assert region[0, 0] and region[5, 20]  # the image border does not erode
        expected = math.sqrt((pred["dx"][region].std() ** 2 + pred["dy"][region].std() ** 2) / 2)
        assert metrics.background_noise(pred, support) == pytest.approx(expected)
        assert metrics.background_noise(pred, support) == pytest.approx(math.sqrt((0.09 + 0.16) / 2), rel=0.1)

    def test_no_free_region(self):
        pred = {"dx": np.zeros((10, 10)), "dy": np.zeros((10, 10))}
        assert math.isnan(metrics.background_noise(pred, np.ones((10, 10))))

    def test_constant_offset_is_not_noise(self):
        pred = {"dx": np.full((10, 10), 0.7), "dy": np.full((10, 10), -0.2)}
        assert metrics.background_noise(pred, np.zeros((10, 10))) == pytest.approx(0.0, abs=1e-12)


class TestParaboloidResidual:
    def test_quadratic_removed_exactly(self):
        y, x = np.mgrid[0:30, 0:40].astype(float)
        phase = 3.0 + 0.2 * x - 0.1 * y + 0.01 * x**2 + 0.003 * x * y - 0.02 * y**2
        residual, rms = metrics.residual_after_paraboloid(phase)
        assert rms < 1e-9
        assert residual.shape == phase.shape

    def test_known_residual(self):
        y, x = np.mgrid[0:30, 0:40].astype(float)
        bump = np.where((x // 5 + y // 5) % 2 == 0, 0.5, -0.5)  # checkerboard, orthogonal-ish to quadratics
        phase = 0.05 * (x - 20) ** 2 + bump
        residual, rms = metrics.residual_after_paraboloid(phase)
        assert rms == pytest.approx(0.5, rel=0.05)

    def test_mask(self):
        y, x = np.mgrid[0:30, 0:40].astype(float)
        phase = 0.01 * (x - 20) ** 2 + 0.02 * (y - 15) ** 2
        mask = np.hypot(x - 20, y - 15) < 12
        phase[~mask] = 99.0  # outside the lens: ignored
        residual, rms = metrics.residual_after_paraboloid(phase, mask=mask)
        assert rms < 1e-9
        assert np.all(np.isnan(residual[~mask]))

    def test_too_few_pixels(self):
        with pytest.raises(ValueError, match="6 pixels"):
            metrics.residual_after_paraboloid(np.zeros((10, 10)), mask=np.zeros((10, 10)))


def test_evaluate_pair():
    gt = truth((40, 40))
    gt["support"] = np.zeros((40, 40))
    gt["support"][10:30, 10:30] = 1
    pred = {"dx": gt["dx"] + 0.2, "dy": gt["dy"] - 0.1, "transmission": gt["transmission"] * 1.1,
            "phase": np.zeros((40, 40))}
    out = metrics.evaluate_pair(pred, gt, border=2)
    assert out["pair_error"] == pytest.approx(0.03)
    assert out["pair_error_t"] == pytest.approx(0.01)
    assert out["regime"] == ">1%"
    assert out["displacement_rmse"] == pytest.approx(math.sqrt(0.05))
    assert out["transmission_error"] == pytest.approx(0.05)
    assert out["background_noise"] == pytest.approx(0.0, abs=1e-12)
    assert out["phase_residual_rms"] == pytest.approx(0.0, abs=1e-12)
    del gt["support"]
    assert math.isnan(metrics.evaluate_pair(pred, gt)["background_noise"])


class TestHeldOutSet:
    def test_specs(self):
        specs = heldout_specs(24)
        assert len(specs) == 24
        assert all(is_eval_seed(s["seed"]) for s in specs)
        assert len({s["seed"] for s in specs}) == 24
        assert {s["kind"] for s in specs} == set(KINDS)
        counts = {k: sum(s["kind"] == k for s in specs) for k in KINDS}
        assert counts["clean"] > counts["noisy"] > 0 and counts["fine-pitch"] > 0 and counts["lens"] >= 2
        assert {s["photons"] for s in specs if s["kind"] == "noisy"} >= {1000.0, 5000.0}
        lens = [s for s in specs if s["kind"] == "lens"]
        assert {s["photons"] is None for s in lens} == {True, False}  # noiseless and noisy lens
        assert all(s["pitch"] < 3 for s in specs if s["kind"] == "fine-pitch")
        assert heldout_specs(5) == specs[:5]

    def test_seed_ranges(self):
        assert not is_eval_seed(EVAL_SEED_BASE - 1)
        assert is_eval_seed(EVAL_SEED_BASE)
        data = pytest.importorskip("spinnet_lite.data")
        assert data.EVAL_SEED_BASE == EVAL_SEED_BASE
        with pytest.raises(ValueError):
            heldout_specs(0)


class TestScaledHeldOutSet:
    """heldout_specs(n, sample_detector_mm=...): the same pairs with their shifts scaled (benchmarks/seed_scale.py)."""

    def test_the_set_distance_gives_the_same_pairs(self):
        from spinnet_lite.evalset import simulate_spec

        plain, at_60 = simulate_spec(heldout_specs(1)[0]), simulate_spec(heldout_specs(1, sample_detector_mm=60)[0])
        for name in ("reference", "sample", "dx", "dy", "transmission"):
            np.testing.assert_array_equal(plain[name].values, at_60[name].values)

    def test_displacements_scale_with_the_distance_and_nothing_else_changes(self):
        from spinnet_lite.evalset import simulate_spec

        base, far = simulate_spec(heldout_specs(1)[0]), simulate_spec(heldout_specs(1, sample_detector_mm=150)[0])
        assert far.attrs["geometry_sample_detector_mm"] == 150
        np.testing.assert_allclose(far["dx"].values, 2.5 * base["dx"].values, rtol=1e-6, atol=1e-9)  # dx, dy are stored as float32
        np.testing.assert_allclose(far["dy"].values, 2.5 * base["dy"].values, rtol=1e-6, atol=1e-9)  # dx, dy are stored as float32
        np.testing.assert_array_equal(far["reference"].values, base["reference"].values)
        np.testing.assert_array_equal(far["transmission"].values, base["transmission"].values)
        assert not np.allclose(far["sample"].values, base["sample"].values)

    def test_lens_pairs_keep_their_geometry(self):
        specs = heldout_specs(12, sample_detector_mm=120)
        assert all(s["sample_detector_mm"] == 120 for s in specs if s["phantom"] == "random")
        lens = [s for s in specs if s["kind"] == "lens"]
        assert lens and all("sample_detector_mm" not in s for s in lens)
        assert [{k: v for k, v in s.items() if k != "sample_detector_mm"} for s in specs] == heldout_specs(12)

    @pytest.mark.parametrize("bad", [0, -10, 300, 450.0, True, "60", float("nan")])
    def test_bad_distances(self, bad):
        with pytest.raises(ValueError, match="sample_detector_mm"):
            heldout_specs(4, sample_detector_mm=bad)


class TestFoldedShare:
    def _field(self, dx, dy=None):
        return {"dx": dx, "dy": np.zeros_like(dx) if dy is None else dy}

    def test_uniform_shifts_and_gentle_strain_do_not_fold(self):
        y, x = np.mgrid[:32, :40].astype(float)
        assert metrics.folded_share(self._field(np.full((32, 40), 7.5), np.full((32, 40), -3.0))) == 0
        assert metrics.folded_share(self._field(0.5 * x)) == 0
        assert metrics.folded_share(self._field(-0.3 * y, 0.3 * x)) == 0  # a rotation: det = 1 + 0.09

    def test_a_stretch_beyond_one_pixel_per_pixel_folds(self):
        y, x = np.mgrid[:32, :40].astype(float)
        assert metrics.folded_share(self._field(1.5 * x)) == 1
        half = np.where(x < 20, 0.2 * x, 0.2 * 20 + 1.2 * (x - 20))  # folds on the right half only
        assert 0.45 < metrics.folded_share(self._field(half)) < 0.55
        assert metrics.folded_share(self._field(half), border=4) == pytest.approx(15 / 32, abs=0.05)

    def test_bad_input(self):
        with pytest.raises(ValueError, match="dy"):
            metrics.folded_share({"dx": np.zeros((8, 8))})
        with pytest.raises(ValueError, match="shape"):
            metrics.folded_share({"dx": np.zeros((8, 8)), "dy": np.zeros((8, 9))})


class TestSpeckleStatistics:
    def test_contrast_of_two_level_pattern(self):
        from spinnet_lite.metrics import speckle_contrast

        img = np.where(np.arange(64 * 64).reshape(64, 64) % 2, 1.0, 0.49)
        assert speckle_contrast(img) == pytest.approx(0.255 / 0.745)

    def test_grain_of_a_mask_is_its_pitch(self):
        from spinnet_lite.metrics import grain_size_px
        from spinnet_lite.simulate import coded_mask

        for pitch in (2, 4, 8):
            mask = coded_mask((256, 256), pitch, np.random.default_rng(pitch))
            assert grain_size_px(mask) == pytest.approx(pitch, rel=0.1)
