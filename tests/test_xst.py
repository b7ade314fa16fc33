"""XST (windowed ZNCC speckle tracking): shapes, errors, and known shifts recovered."""
import numpy as np
import pytest
from scipy import ndimage

from spinnet_lite.xst import xst

N = 96
INTERIOR = (slice(12, -12), slice(12, -12))


def speckle(shape=(N, N), seed=0, sigma=1.0):
    """Speckle-like test image: Gaussian-filtered random binary noise, mean ~1."""
    rng = np.random.default_rng(seed)
    binary = (rng.random(shape) > 0.5).astype(float)
    return ndimage.gaussian_filter(binary, sigma) + 0.5


def warp_spline(image, dx, dy):
    """``image(y - dy, x - dx)`` by cubic spline (the forward model of DESIGN.md section 1)."""
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(float)
    return ndimage.map_coordinates(image, [yy - dy, xx - dx], order=3, mode="reflect")


def rms(a):
    return float(np.sqrt(np.mean(np.square(a))))


@pytest.fixture(scope="module")
def reference():
    return speckle()


class TestSmoke:
    def test_keys_shapes_dtypes(self, reference):
        out = xst(reference, reference, window=7, search=3)
        assert set(out) == {"dx", "dy", "transmission", "correlation"}
        for value in out.values():
            assert value.shape == reference.shape
            assert value.dtype == np.float64
            assert np.all(np.isfinite(value))

    def test_identical_images_give_zero(self, reference):
        out = xst(reference, reference, search=3)
        assert np.abs(out["dx"]).max() < 1e-3
        assert np.abs(out["dy"]).max() < 1e-3
        np.testing.assert_allclose(out["transmission"], 1.0, atol=1e-4)
        np.testing.assert_allclose(out["correlation"], 1.0, atol=1e-4)

    def test_non_square(self):
        ref = speckle((64, 80), seed=3)
        out = xst(ref, np.roll(ref, 1, axis=1), search=2)
        assert out["dx"].shape == (64, 80)
        assert np.median(out["dx"][8:-8, 8:-8]) == pytest.approx(1.0, abs=1e-3)

    def test_accepts_dataarray(self, reference):
        xr = pytest.importorskip("xarray")
        da = xr.DataArray(reference, dims=("y", "x"))
        out = xst(da, da, search=2, refine=0)
        assert out["dx"].shape == reference.shape


class TestExceptions:
    @pytest.mark.parametrize("kwargs", [dict(window=6), dict(window=1), dict(window=7.0), dict(search=0),
                                        dict(search=True), dict(subpixel="cubic"), dict(refine=-1),
                                        dict(search=95)])
    def test_bad_options(self, reference, kwargs):
        with pytest.raises(ValueError):
            xst(reference, reference, **kwargs)

    def test_bad_images(self, reference):
        with pytest.raises(ValueError, match="differ in shape"):
            xst(reference, reference[:-1])
        with pytest.raises(ValueError, match="at least"):
            xst(reference[:32, :32], reference[:32, :32])
        with pytest.raises(ValueError, match="constant"):
            xst(np.ones((N, N)), reference)
        bad = reference.copy()
        bad[3, 3] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            xst(reference, bad)
        with pytest.raises(ValueError, match="2-D"):
            xst(reference[None], reference[None])

    def test_bad_device(self, reference):
        with pytest.raises(ValueError, match="device"):
            xst(reference, reference, device="no-such-device")


class TestSignConvention:
    def test_integer_roll(self, reference):
        # sample(y, x) = reference(y - dy, x - dx): np.roll by +2 columns is dx = +2.
        sample = np.roll(np.roll(reference, 2, axis=1), -1, axis=0)
        out = xst(reference, sample, search=3)
        assert np.median(out["dx"][INTERIOR]) == pytest.approx(2.0, abs=1e-3)
        assert np.median(out["dy"][INTERIOR]) == pytest.approx(-1.0, abs=1e-3)

    def test_matches_simulator(self):
        simulate = pytest.importorskip("spinnet_lite.simulate")
        ds = simulate.simulate_pair(size=96, pitch=4, seed=11)
        out = xst(ds["reference"], ds["sample"], search=6)
        for name in ("dx", "dy"):
            truth = ds[name].values[INTERIOR]
            if truth.std() > 0.05:
                assert np.corrcoef(out[name][INTERIOR].ravel(), truth.ravel())[0, 1] > 0.8


class TestKnownShifts:
    @pytest.mark.parametrize("dx, dy", [(0.3, -1.7), (-2.45, 0.8)])
    def test_uniform_subpixel_shift(self, reference, dx, dy):
        sample = ndimage.shift(reference, (dy, dx), order=3, mode="reflect")
        out = xst(reference, sample, search=4)
        assert rms(np.hypot(out["dx"] - dx, out["dy"] - dy)[INTERIOR]) < 0.02
        assert np.median(out["dx"][INTERIOR]) == pytest.approx(dx, abs=0.01)
        assert np.median(out["dy"][INTERIOR]) == pytest.approx(dy, abs=0.01)

    @pytest.mark.parametrize("subpixel", ["gaussian", "parabolic"])
    def test_peak_fit_alone(self, reference, subpixel):
        # Without the Lucas-Kanade step the 3-point fit is biased but sub-pixel.
        sample = ndimage.shift(reference, (-1.7, 0.3), order=3, mode="reflect")
        out = xst(reference, sample, search=4, subpixel=subpixel, refine=0)
        err = np.hypot(out["dx"] - 0.3, out["dy"] + 1.7)[INTERIOR]
        assert rms(err) < 0.25
        assert np.median(out["dx"][INTERIOR]) == pytest.approx(0.3, abs=0.1)

    def test_no_subpixel_gives_integers(self, reference):
        sample = ndimage.shift(reference, (-1.7, 0.3), order=3, mode="reflect")
        out = xst(reference, sample, search=4, subpixel="none", refine=0)
        np.testing.assert_array_equal(out["dx"], np.round(out["dx"]))
        assert np.median(out["dy"][INTERIOR]) == -2.0

    def test_refinement_beats_peak_fit(self, reference):
        sample = ndimage.shift(reference, (0.45, -0.35), order=3, mode="reflect")
        plain = xst(reference, sample, search=3, refine=0)
        refined = xst(reference, sample, search=3, refine=2)
        err_plain = rms(np.hypot(plain["dx"] + 0.35, plain["dy"] - 0.45)[INTERIOR])
        err_refined = rms(np.hypot(refined["dx"] + 0.35, refined["dy"] - 0.45)[INTERIOR])
        assert err_refined < 0.5 * err_plain

    def test_smooth_field(self):
        ref = speckle((128, 128), seed=1)
        yy, xx = np.mgrid[0:128, 0:128].astype(float)
        dx = 1.5 * np.sin(2 * np.pi * yy / 128) * np.cos(np.pi * xx / 128) + 0.4
        dy = -1.2 * np.cos(2 * np.pi * xx / 128) + 0.3 * np.sin(2 * np.pi * yy / 128)
        sample = warp_spline(ref, dx, dy)
        out = xst(ref, sample, search=4)
        crop = (slice(10, -10), slice(10, -10))
        assert rms(np.hypot(out["dx"] - dx, out["dy"] - dy)[crop]) < 0.07

    def test_uniform_transmission(self, reference):
        sample = 0.8 * ndimage.shift(reference, (0.6, 1.2), order=3, mode="reflect")
        out = xst(reference, sample, search=3)
        assert np.median(out["transmission"][INTERIOR]) == pytest.approx(0.8, abs=0.005)
        assert rms(out["transmission"][INTERIOR] - 0.8) < 0.02
        # ZNCC ignores the attenuation: the shift is unaffected.
        assert np.median(out["dx"][INTERIOR]) == pytest.approx(1.2, abs=0.01)

    def test_noise_robust(self, reference):
        rng = np.random.default_rng(5)
        sample = ndimage.shift(reference, (1.0, 0.5), order=3, mode="reflect")
        sample = rng.poisson(sample * 5000) / 5000
        out = xst(reference, sample, search=3)
        assert np.median(out["dx"][INTERIOR]) == pytest.approx(0.5, abs=0.02)
        assert rms(out["dx"][INTERIOR] - 0.5) < 0.1
