"""The Lucas-Kanade step after the network (spinnet_lite.lucas_kanade): what it fixes, what it
leaves, that it is exact where it should be, and its options in reconstruct and the CLI."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from spinnet_lite import reconstruct, simulate_pair
from spinnet_lite.lucas_kanade import lk_refine, lk_step
from spinnet_lite.model.warp import warp

N = 128
INNER = (slice(16, -16), slice(16, -16))


def speckle(shape, seed=0, grain=1.0):
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter((rng.random(shape) > 0.5).astype(float), grain) + 0.5


def spline_warp(image, dx, dy):
    """``image(y - dy, x - dx)`` by cubic splines: an interpolation the step does not use."""
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(float)
    return ndimage.map_coordinates(image, [yy - dy, xx - dx], order=3, mode="mirror")


def blob_field(shape, amplitude=2.0):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    g = np.exp(-((yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2) / (2 * (shape[0] / 5) ** 2))
    return amplitude * g * (xx - shape[1] / 2) / (shape[1] / 5) + 0.3, amplitude * 0.5 * g - 0.2


def rms(a):
    return float(np.sqrt(np.mean(np.square(a))))


def test_recovers_a_smooth_error():
    """A smooth field (up to ~2 px) started 30 % short: two steps take the error from ~0.3 px
    to a few hundredths, with a transmission of 0.85 that the step must not mistake for a shift."""
    ref = speckle((N, N))
    dx, dy = blob_field((N, N))
    sam = 0.85 * spline_warp(ref, dx, dy)
    start = (0.7 * dx, 0.7 * dy)
    before = rms(np.hypot(start[0] - dx, start[1] - dy)[INNER])
    ex, ey = lk_refine(ref, sam, *start, sigma=6.0, iterations=2)
    after = rms(np.hypot(ex - dx, ey - dy)[INNER])
    assert before > 0.15
    assert after < 0.03 and after < before / 8
    assert ex.dtype == np.float32 and ex.shape == (N, N)


def test_exact_fixed_point():
    """When the sample is the reference moved by d exactly as the step reads it, d is kept."""
    ref = speckle((N, N), seed=1)
    dx, dy = blob_field((N, N), 1.0)
    d = torch.from_numpy(np.stack([dx, dy]).astype(np.float32))[None]
    sam = 0.8 * warp(torch.from_numpy(ref.astype(np.float32))[None, None], d, mode="oversampled")[0, 0].numpy()
    ex, ey = lk_refine(ref, sam, dx, dy)
    assert np.abs(ex - dx)[INNER].max() < 2e-3 and np.abs(ey - dy)[INNER].max() < 2e-3


def test_leaves_what_varies_faster_than_the_window():
    """An error that alternates every pixel averages to nothing in the window: the step keeps it
    (the fine detail is the network's job), while it removes a uniform error."""
    ref = speckle((N, N), seed=2)
    sam = spline_warp(ref, np.full((N, N), 0.4), np.zeros((N, N)))
    checker = 0.05 * (-1.0) ** np.add.outer(np.arange(N), np.arange(N))
    ex, _ = lk_refine(ref, sam, 0.4 + checker + 0.1, np.zeros((N, N)), sigma=6.0, iterations=2)
    err = ex - 0.4
    assert abs(float(np.mean(err[INNER]))) < 0.01  # the uniform 0.1 px is gone
    assert rms((err - ndimage.uniform_filter(err, 2))[INNER]) > 0.5 * rms((checker - ndimage.uniform_filter(checker, 2))[INNER])


def test_scale_and_texture_free_regions():
    """Both images times any constant give the same step; where the reference has no texture
    nothing is changed (and nothing is NaN)."""
    ref = speckle((N, N), seed=3)
    ref[:, : N // 2] = 1.0  # no speckle on the left
    dx, dy = np.full((N, N), 0.3), np.full((N, N), -0.2)
    sam = spline_warp(ref, dx, dy)
    start = np.zeros((N, N), np.float32)
    base = lk_refine(ref, sam, start, start)
    for c in (1e-3, 1e3):
        scaled = lk_refine(c * ref, c * sam, start, start)
        np.testing.assert_allclose(scaled[0], base[0], atol=1e-4)  # float32 rounding, at the texture's edge
        np.testing.assert_allclose(scaled[1], base[1], atol=1e-4)
    assert np.isfinite(base[0]).all() and np.isfinite(base[1]).all()
    assert np.abs(base[0][:, : N // 2 - 24]).max() == 0.0
    assert float(np.median(base[0][INNER][:, -32:])) == pytest.approx(0.3, abs=0.01)


def test_bands_and_odd_sizes_give_one_answer():
    """The least-squares stage (and the step's upsampling) runs in bands of rows: any band
    height gives the same step, and odd image sizes work."""
    ref = speckle((N, N), seed=4)
    dx, dy = blob_field((N, N), 1.5)
    sam = spline_warp(ref, dx, dy)
    r = torch.from_numpy(ref.astype(np.float32))[None, None]
    s = torch.from_numpy(sam.astype(np.float32))[None, None]
    d = torch.zeros(1, 2, N, N)
    one = lk_step(r, s, d.clone(), 6.0, band_rows=1024)  # the step updates its field in place
    assert one.abs().max() > 0.1
    for rows in (2, 10, 40):
        torch.testing.assert_close(lk_step(r, s, d.clone(), 6.0, band_rows=rows), one, atol=1e-5, rtol=0)
    odd = (97, 130)
    ref = speckle(odd, seed=5)
    sam = spline_warp(ref, np.full(odd, 0.25), np.full(odd, 0.15))
    ex, ey = lk_refine(ref, sam, np.zeros(odd), np.zeros(odd), iterations=3)
    assert ex.shape == odd
    assert float(np.median(ex[INNER])) == pytest.approx(0.25, abs=0.01)
    assert float(np.median(ey[INNER])) == pytest.approx(0.15, abs=0.01)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sigma=0.5), "sigma"), (dict(sigma=0), "sigma"), (dict(sigma=float("nan")), "sigma"),
    (dict(sigma="6"), "sigma"), (dict(iterations=0), "iterations"), (dict(iterations=2.0), "iterations"),
])
def test_bad_arguments(kwargs, match):
    ref = speckle((64, 64))
    with pytest.raises(ValueError, match=match):
        lk_refine(ref, ref, np.zeros((64, 64)), np.zeros((64, 64)), **kwargs)


def test_bad_images():
    ref = speckle((64, 64))
    with pytest.raises(ValueError, match="one shape"):
        lk_refine(ref, ref[:60], np.zeros((64, 64)), np.zeros((64, 64)))
    with pytest.raises(ValueError, match="positive mean"):
        lk_refine(-ref, ref, np.zeros((64, 64)), np.zeros((64, 64)))


@pytest.fixture(scope="module")
def drift_pair():
    """A coded-mask pair whose whole sample moved by 0.03 px (a drift between exposures)."""
    return simulate_pair(256, seed=1_000_700_031, phantom="uniform", max_shift_px=0.03, pitch=4.0)


def test_reconstruct_option(drift_pair):
    """In reconstruct (bundled weights) the step is on by default; it restores a 0.03 px drift
    that the network alone shrinks, and ``lk_sigma=0`` is the network alone."""
    ref, sam = drift_pair["reference"].values, drift_pair["sample"].values
    inner = (slice(8, -8), slice(8, -8))
    tx, ty = drift_pair["dx"].values[inner], drift_pair["dy"].values[inner]
    errors, gains = {}, {}
    for sigma in (6.0, 0):
        out = reconstruct(ref, sam, lk_sigma=sigma)
        px, py = out["dx"].values[inner], out["dy"].values[inner]
        errors[sigma] = rms(np.hypot(px - tx, py - ty))
        gains[sigma] = float(np.median((px * tx + py * ty) / (tx**2 + ty**2)))
    default = reconstruct(ref, sam)
    np.testing.assert_array_equal(default["dx"].values, reconstruct(ref, sam, lk_sigma=6.0)["dx"].values)
    assert 0.9 < gains[6.0] < 1.15
    assert errors[6.0] < 0.8 * errors[0]
    with pytest.raises(ValueError, match="lk_sigma"):
        reconstruct(ref, sam, lk_sigma=-2)
    with pytest.raises(ValueError, match="lk_iterations"):
        reconstruct(ref, sam, lk_iterations=9)


def test_command_line(tmp_path, drift_pair):
    """``--lk-sigma 0`` gives reconstruct(lk_sigma=0); the step is refused for XST."""
    import xarray as xr

    from spinnet_lite.cli import main

    ref, sam = drift_pair["reference"].values, drift_pair["sample"].values
    np.save(tmp_path / "ref.npy", ref)
    np.save(tmp_path / "sam.npy", sam)
    paths = [str(tmp_path / "ref.npy"), str(tmp_path / "sam.npy")]
    assert main(["reconstruct", *paths, "-o", str(tmp_path / "off.nc"), "--lk-sigma", "0"]) == 0
    with xr.open_dataset(tmp_path / "off.nc") as ds:
        np.testing.assert_allclose(ds.dx.values, reconstruct(ref, sam, lk_sigma=0)["dx"].values, atol=1e-5)
    assert main(["reconstruct", *paths, "-o", str(tmp_path / "x.nc"), "--method", "xst", "--lk-sigma", "4"]) == 2
    assert main(["reconstruct", *paths, "-o", str(tmp_path / "y.nc"), "--lk-sigma", "0.5"]) == 2


def test_mirror_symmetric():
    """The step on a mirrored or transposed pair is the mirrored step (edges included), so
    ``symmetries`` keeps its exact symmetry with the step on."""
    ref = speckle((96, 80), seed=6)
    rng = np.random.default_rng(6)
    dx, dy = (5 * ndimage.gaussian_filter(rng.normal(size=(96, 80)), 8) for _ in range(2))
    sam = spline_warp(ref, dx, dy)
    zero = np.zeros((96, 80))
    ax, ay = lk_refine(ref, sam, zero, zero)
    mx, my = lk_refine(ref[:, ::-1], sam[:, ::-1], zero, zero)
    np.testing.assert_allclose(-mx[:, ::-1], ax, atol=1e-5)
    np.testing.assert_allclose(my[:, ::-1], ay, atol=1e-5)
    tx, ty = lk_refine(ref.T, sam.T, zero.T, zero.T)
    np.testing.assert_allclose(ty.T, ax, atol=1e-5)
    np.testing.assert_allclose(tx.T, ay, atol=1e-5)

