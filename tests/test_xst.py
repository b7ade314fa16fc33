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


class TestIntensityInputs:
    """Issue 11: the scale of the images does not matter; non-intensity images are refused."""

    @pytest.mark.parametrize("scale", [1e300, 1e-310, 3.7e-200, 2.0**40])
    def test_scale_does_not_matter(self, reference, scale):
        sample = 0.8 * ndimage.shift(reference, (0.6, 1.2), order=3, mode="reflect")
        plain = xst(reference, sample, search=3)
        scaled = xst(reference * scale, sample * scale, search=3)
        for name in ("dx", "dy", "transmission", "correlation"):
            assert np.all(np.isfinite(scaled[name])), name
            np.testing.assert_allclose(scaled[name], plain[name], atol=1e-5, err_msg=name)
        assert np.median(scaled["transmission"][INTERIOR]) == pytest.approx(0.8, abs=0.005)

    @pytest.mark.parametrize("which", ["reference", "sample"])
    @pytest.mark.parametrize("make", [lambda im: -im, lambda im: im - im.mean(), lambda im: im * 0 - 1 + 1e-3 * im])
    def test_non_positive_images_refused(self, reference, which, make):
        images = {"reference": reference, "sample": reference.copy()}
        images[which] = make(images[which])
        with pytest.raises(ValueError, match=f"{which}: not an intensity image"):
            xst(images["reference"], images["sample"], search=2)

    def test_small_negative_values_are_fine(self, reference):
        # dark-subtracted, noisy data: a few negative pixels, a clearly positive mean
        noisy = reference - 0.6
        out = xst(noisy, np.roll(noisy, 1, axis=1), search=2)
        assert np.median(out["dx"][INTERIOR]) == pytest.approx(1.0, abs=1e-3)


class TestBands:
    """Large frames go through in bands of rows: same numbers, bounded memory."""

    def test_bands_give_the_same_result(self, reference, monkeypatch):
        import spinnet_lite.xst as module

        sample = ndimage.shift(reference, (0.45, -1.35), order=3, mode="reflect")
        whole = xst(reference, sample, search=3)
        monkeypatch.setattr(module, "_VOLUME_FLOATS", 49 * N * 5)  # 5 rows per band, not a divisor of 96
        monkeypatch.setattr(module, "_REFINE_PIXELS", 7 * N)
        monkeypatch.setattr(module, "_TRANSMISSION_ROWS", 11)
        banded = xst(reference, sample, search=3)
        np.testing.assert_array_equal(banded["correlation"], whole["correlation"])
        for name in ("dx", "dy", "transmission"):
            np.testing.assert_allclose(banded[name], whole[name], atol=1e-4, err_msg=name)

    def test_memory_is_bounded_by_the_band(self):
        """With a 2 MB band, peak memory at 256 x 256 stays far below the 44 MB one shift volume needs.

        Peak resident memory of the call itself (``/proc/self/clear_refs`` resets the high-water
        mark); with the whole volume at once it grows by ~110 MB, banded by ~5 MB.
        """
        import os
        import subprocess
        import sys

        if not os.path.exists("/proc/self/clear_refs"):
            pytest.skip("needs Linux's /proc/self/clear_refs to measure peak memory")
        script = (
            "import numpy as np\n"
            "from scipy import ndimage\n"
            "import spinnet_lite.xst as X\n"
            "rng = np.random.default_rng(0)\n"
            "ref = ndimage.gaussian_filter((rng.random((256, 256)) > 0.5).astype(float), 1.0) + 0.5\n"
            "sam = np.roll(ref, (1, 2), axis=(0, 1)) * 0.9\n"
            "X.xst(ref[:64, :64], sam[:64, :64])\n"
            "X._VOLUME_FLOATS, X._REFINE_PIXELS = 2**19, 1024\n"
            "def status(key):\n"
            "    return next(int(l.split()[1]) / 1024 for l in open('/proc/self/status') if l.startswith(key))\n"
            "open('/proc/self/clear_refs', 'w').write('5')\n"
            "before = status('VmRSS:')\n"
            "out = X.xst(ref, sam)\n"
            "assert abs(np.median(out['dx']) - 2) < 1e-3\n"
            "print(status('VmHWM:') - before)\n"
        )
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
        if r.returncode != 0 and "clear_refs" in r.stderr:
            pytest.skip(f"cannot reset the peak-memory mark here: {r.stderr.strip().splitlines()[-1]}")
        assert r.returncode == 0, r.stderr
        increase = float(r.stdout.strip().splitlines()[-1])
        assert increase < 30, f"peak memory grew by {increase:.0f} MB"
