"""The figure rules of spinnet_lite.plots: shared colour limits, error maps beside results, scale
bars in micrometres, labelled regime lines, quiver keys, operating-range curves."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from spinnet_lite import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _images(fig, gid):
    return [im for ax in fig.axes for im in ax.get_images() if im.get_gid() == gid]


def _scale_bars(fig):
    return [a for ax in fig.axes for a in ax.artists if a.get_gid() == "scale_bar"]


def _maps(rng, scale_t=1.0):
    y, x = np.mgrid[0:64, 0:64] / 64.0
    truth = {"dx": 3 * np.sin(2 * np.pi * x), "dy": 2 * np.cos(2 * np.pi * y), "transmission": 1 - 0.01 * x}
    good = {k: v + 0.01 * rng.standard_normal(v.shape) for k, v in truth.items()}
    # 15x worse transmission: the case per-row colour limits used to hide
    bad = {k: v + 0.15 * scale_t * rng.standard_normal(v.shape) for k, v in truth.items()}
    return truth, good, bad


class TestSharedLimits:
    def test_symmetric_covers_all(self):
        lo, hi = plots.shared_limits([np.array([-1.0, 0.5]), np.array([3.0])], symmetric=True)
        assert (lo, hi) == (-3.0, 3.0)

    def test_range_covers_all_and_ignores_nan(self):
        assert plots.shared_limits([np.array([1.0, np.nan]), np.array([2.0, 5.0])]) == (1.0, 5.0)

    def test_constant_image_gets_a_range(self):
        lo, hi = plots.shared_limits([np.ones((4, 4))])
        assert lo < 1 < hi

    def test_mask(self):
        img = np.array([[0.0, 100.0], [1.0, 2.0]])
        assert plots.shared_limits([img], mask=img < 50) == (0.0, 2.0)


class TestCompareMaps:
    def test_compared_rows_share_colour_limits(self):
        rng = np.random.default_rng(0)
        truth, good, bad = _maps(rng)
        fig = plots.compare_maps(truth, {"good": good, "bad": bad},
                                 [("dx", "dx", "RdBu_r"), ("dy", "dy", "RdBu_r"), ("transmission", "T", "gray")],
                                 pixel_size_um=0.65)
        for name in ("dx", "dy", "transmission"):
            values = _images(fig, f"value:{name}")
            assert len(values) == 3, name  # truth + two results
            assert len({im.get_clim() for im in values}) == 1, f"{name}: rows do not share colour limits"
            errors = _images(fig, f"error:{name}")
            assert len(errors) == 2, name  # one error map beside each result
            clims = {im.get_clim() for im in errors}
            assert len(clims) == 1, f"{name}: error maps do not share colour limits"
            lo, hi = clims.pop()
            assert lo == pytest.approx(-hi)
        # the signed maps are symmetric about zero, and the range is the truth's
        lo, hi = _images(fig, "value:dx")[0].get_clim()
        assert lo == pytest.approx(-hi) and hi == pytest.approx(np.abs(truth["dx"]).max())

    def test_a_15x_worse_result_shows_in_its_error_map(self):
        rng = np.random.default_rng(1)
        truth, good, bad = _maps(rng)
        fig = plots.compare_maps(truth, {"good": good, "bad": bad}, [("transmission", "T", "gray")])
        good_im, bad_im = _images(fig, "error:transmission")
        assert np.std(bad_im.get_array()) > 10 * np.std(good_im.get_array())

    def test_truth_is_the_first_row(self):
        rng = np.random.default_rng(2)
        truth, good, _ = _maps(rng)
        fig = plots.prediction_grid(truth, {"prediction": good})
        first = _images(fig, "value:dx")[0]
        np.testing.assert_allclose(first.get_array(), truth["dx"])

    def test_scale_bars_in_micrometres(self):
        rng = np.random.default_rng(3)
        truth, good, _ = _maps(rng)
        fig = plots.prediction_grid(truth, {"prediction": good}, pixel_size_um=0.65)
        bars = _scale_bars(fig)
        assert len(bars) == 3 * 2 + 3  # every map: 3 truth, 3 predictions, 3 errors
        label = bars[0].txt_label.get_text()
        assert label.endswith("µm")
        # 64 px of 0.65 um: a 1-2-5 bar about a fifth of the 41.6 um width
        assert float(label.split()[0]) in (5, 10)

    def test_large_images_are_subsampled_with_a_correct_scale_bar(self):
        img = np.zeros((1200, 1200))
        fig, ax = plt.subplots()
        im = plots.show_map(ax, img, "gray", 0, 1, pixel_size_um=1.0, max_display_px=600)
        assert im.get_array().shape == (600, 600)
        bar = _scale_bars(fig)[0]
        assert bar.txt_label.get_text() == "200 µm"  # a fifth of 1200 um, drawn at 2 um per display px

    def test_without_truth_no_error_maps(self):
        rng = np.random.default_rng(4)
        _, good, bad = _maps(rng)
        fig = plots.compare_maps(None, {"a": good, "b": bad}, ["dx"])
        assert len(_images(fig, "value:dx")) == 2 and not _images(fig, "error:dx")
        assert len({im.get_clim() for im in _images(fig, "value:dx")}) == 1


class TestLinesAndKeys:
    def test_regime_lines_are_labelled(self):
        fig = plots.error_histogram({"a": [1e-3, 5e-3, 0.02], "b": [0.05, 0.1]}, (0.0025, 0.01),
                                    ("<0.25%", "0.25-1%", ">1%"))
        ax = fig.axes[0]
        lines = [ln for ln in ax.lines if ln.get_gid() == "regime_line"]
        assert [ln.get_xdata()[0] for ln in lines] == [0.0025, 0.01]
        labels = {t.get_text() for t in ax.texts if t.get_gid() == "regime_label"}
        assert labels == {"<0.25%", "0.25-1%", ">1%"}

    def test_regime_lines_need_matching_labels(self):
        fig, ax = plt.subplots()
        with pytest.raises(ValueError):
            plots.regime_lines(ax, (0.1,), ("a", "b", "c"))

    def test_quiver_has_a_key(self):
        fig, ax = plt.subplots()
        dx = np.full((64, 64), 2.0)
        key = plots.quiver_field(ax, dx, np.zeros_like(dx))
        assert key.get_gid() == "quiver_key" and key in ax.get_children()
        assert key.text.get_text() == "2 px shift"


class TestOperatingRange:
    def test_curves_per_axis_and_method(self):
        rows = [{"axis": "displacement", "value": v, "method": m, "displacement_rmse": e}
                for m, k in (("spinnet", 0.01), ("xst", 0.02)) for v, e in ((1, k), (4, 2 * k), (8, 4 * k))]
        rows += [{"axis": "speckle", "value": s, "method": m, "displacement_rmse": 0.05}
                 for m in ("spinnet", "xst") for s in ("mask", "diffuser")]
        fig = plots.operating_range_curves(rows, trained_range={"displacement": (0, 5.5)})
        disp, speckle = fig.axes[:2]
        assert disp.get_xlabel() == "displacement magnitude [px]"
        assert len([ln for ln in disp.lines if ln.get_label() in ("spinnet", "xst")]) == 2
        assert [t.get_text() for t in speckle.get_xticklabels()] == ["mask", "diffuser"]
        assert len(speckle.patches) == 4

    def test_the_operating_range_module_rows(self):
        """Rows as spinnet_lite.operating_range.run_sweeps writes them: a curve per method and label."""
        rows = [{"sweep": "magnitude", "label": label, "value": v, "method": m, "rmse_px": 0.01 * v}
                for label in ("uniform", "blobs") for m in ("spinnet", "xst") for v in (1.0, 4.0, 10.0)]
        rows += [{"sweep": "speckle", "label": label, "value": v, "method": m, "rmse_px": 0.05}
                 for label, vs in (("mask", (3.0, 5.0)), ("diffuser", (1.5, 3.0))) for m in ("spinnet", "xst") for v in vs]
        fig = plots.operating_range_curves(rows, trained_range={"magnitude": (0, 12)})
        magnitude, speckle = fig.axes[:2]
        assert magnitude.get_xlabel() == "largest displacement [px]"
        names = {ln.get_label() for ln in magnitude.lines}
        assert {"spinnet, uniform", "xst, uniform", "spinnet, blobs", "xst, blobs"} <= names
        assert {ln.get_label() for ln in speckle.lines} >= {"spinnet, mask", "xst, diffuser"}
        assert magnitude.get_xscale() == "linear"

    def test_the_dose_panel_spans_decades_on_a_log_axis(self):
        rows = [{"sweep": "dose", "label": "mask", "value": v, "method": m, "rmse_px": 0.3 / v**0.5}
                for m in ("spinnet", "xst") for v in (100.0, 1000.0, 50000.0)]
        (dose,) = plots.operating_range_curves(rows, trained_range={"dose": (100.0, 50000.0)}).axes
        assert dose.get_xscale() == "log" and dose.get_xlabel() == "photons per pixel"
        assert len([ln for ln in dose.lines if ln.get_label() in ("spinnet", "xst")]) == 2

    def test_missing_column(self):
        with pytest.raises(ValueError, match="method"):
            plots.operating_range_curves([{"axis": "displacement", "value": 1, "displacement_rmse": 0.1}])
