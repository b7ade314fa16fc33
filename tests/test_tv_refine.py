"""The edge-preserving refinement (spinnet_lite.tv_refine): it sharpens a smoothed step of the
field where the Lucas-Kanade window cannot, leaves a field that fits alone, does not depend on
the intensity scale, and its option in reconstruct says what is wrong with a bad value."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from spinnet_lite import reconstruct, simulate_pair
from spinnet_lite.lucas_kanade import lk_refine
from spinnet_lite.model.warp import warp
from spinnet_lite.tv_refine import (DEFAULT_WEIGHT, FLIPS, check_tv, refine_field_tv, residual_variance, resolve_tv, tv_refine,
                                   tv_pass, tv_solve)

N = 128
INNER = (slice(12, -12), slice(12, -12))


def speckle(shape, seed=0, grain=1.0):
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter((rng.random(shape) > 0.5).astype(float), grain) + 0.5


def moved(reference, dx, dy, transmission=1.0):
    """The reference moved by (dx, dy) as the step reads it (so only the refinement is tested)."""
    d = torch.from_numpy(np.stack([dx, dy]).astype(np.float32))[None]
    return transmission * warp(torch.from_numpy(reference.astype(np.float32))[None, None], d,
                               mode="oversampled")[0, 0].numpy()


def rim_field(shape, drop=0.9, radius=40.0, rim_px=1.0):
    """A lens-like field: d grows linearly to ``drop`` px at ``radius`` and falls to 0 across a
    rim ``rim_px`` wide (the gradient of a smoothed paraboloid held flat outside)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    y, x = yy - shape[0] / 2, xx - shape[1] / 2
    inside = ndimage.gaussian_filter((np.hypot(x, y) < radius).astype(float), rim_px)
    return drop * x / radius * inside, drop * y / radius * inside


def rms(a):
    return float(np.sqrt(np.mean(np.square(a))))


def test_sharpens_a_smoothed_rim_where_the_lucas_kanade_window_cannot():
    """Started from the truth blurred by 2.5 px (the network's answer at a rim), the refinement
    takes 40 % of the error away (measured: 0.063 -> 0.038 px rms); the 6 px Lucas-Kanade step
    leaves almost all of it (0.060 px)."""
    ref = speckle((N, N))
    dx, dy = rim_field((N, N))
    sam = moved(ref, dx, dy, 0.9)
    start = ndimage.gaussian_filter(dx, 2.5), ndimage.gaussian_filter(dy, 2.5)
    before = rms(np.hypot(start[0] - dx, start[1] - dy)[INNER])
    lx, ly = lk_refine(ref, sam, *start)
    tx, ty = tv_refine(ref, sam, *start)
    after_lk = rms(np.hypot(lx - dx, ly - dy)[INNER])
    after_tv = rms(np.hypot(tx - dx, ty - dy)[INNER])
    assert before > 0.05
    assert after_lk > 0.9 * before
    assert after_tv < 0.7 * before and after_tv < 0.7 * after_lk
    assert tx.dtype == np.float32 and tx.shape == (N, N)


def test_keeps_a_textured_field_that_already_fits():
    """Started from the truth of the seed's textured phantom, the correction stays small: the
    total variation falls on the correction, not on the field's texture."""
    pair = simulate_pair(size=N, seed=3)
    dx, dy = pair.dx.values, pair.dy.values
    tx, ty = tv_refine(pair.reference.values, pair.sample.values, dx, dy)
    change = rms(np.hypot(tx - dx, ty - dy)[INNER])
    assert change < 0.1 * rms(np.hypot(dx, dy)[INNER])


def test_does_not_depend_on_the_intensity_scale():
    ref = speckle((N, N), seed=2)
    dx, dy = rim_field((N, N), drop=0.6)
    sam = moved(ref, dx, dy)
    start = ndimage.gaussian_filter(dx, 2.0), ndimage.gaussian_filter(dy, 2.0)
    a = tv_refine(ref, sam, *start)
    b = tv_refine(7.0 * ref, 7.0 * sam, *start)
    assert np.abs(a[0] - b[0]).max() < 1e-3 and np.abs(a[1] - b[1]).max() < 1e-3


def test_the_solver_minimises_its_objective():
    """tv_solve: a weight near 0 gives the target where the precision is positive; a large one
    flattens the correction; the result never scores worse than the target or a constant."""
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.normal(size=(2, 32, 32)).astype(np.float32))
    precision = torch.stack([torch.full((32, 32), 2.0), torch.full((32, 32), 0.5), torch.full((32, 32), 1.0)])

    def objective(u, weight):
        e = u - target
        data = (precision[0] * e[0] ** 2 + 2 * precision[1] * e[0] * e[1] + precision[2] * e[1] ** 2).sum()
        gx = torch.zeros_like(u); gy = torch.zeros_like(u)
        gx[..., :, :-1] = u[..., :, 1:] - u[..., :, :-1]
        gy[..., :-1, :] = u[..., 1:, :] - u[..., :-1, :]
        return float(data + weight * torch.sqrt((gx ** 2 + gy ** 2).sum(0)).sum())

    assert torch.allclose(tv_solve(target, precision, 1e-6, 200), target, atol=1e-3)
    flat = tv_solve(target, precision, 100.0, 400)
    assert float(flat.std(dim=(1, 2)).max()) < 0.05
    for weight in (0.3, 1.0):
        u = tv_solve(target, precision, weight, 300)
        mean = target.mean(dim=(1, 2), keepdim=True).expand_as(target)
        assert objective(u, weight) < min(objective(target, weight), objective(mean, weight))


def test_weights_and_errors():
    assert check_tv(False) == check_tv(None) == check_tv(0) == 0.0
    assert check_tv(True) == DEFAULT_WEIGHT and check_tv(0.2) == 0.2
    for bad in ("yes", -0.1, 11, float("nan"), [0.1]):
        with pytest.raises(ValueError, match="tv"):
            check_tv(bad)
    ref = speckle((64, 64))
    field = np.zeros((2, 64, 64), np.float32)
    assert refine_field_tv(ref, ref, field, 0.0) is field and not field.any()
    with pytest.raises(ValueError, match="shape"):
        refine_field_tv(ref, ref[:, :60], field)
    with pytest.raises(ValueError, match="float32"):
        refine_field_tv(ref, ref, field.astype(np.float64))


def test_bands_equal_one_solve(monkeypatch):
    """A pass in bands of rows (each with a halo of the solver's iterations + 1 rows, each band's
    last rows written after the next band read them) gives the field of one whole-frame pass, and
    the banded noise estimate that of one band; a halo much shorter than the iterations' reach
    does not (the test can see a wrong halo)."""
    ref = speckle((300, 64)).astype(np.float32)
    yy = np.arange(300, dtype=np.float32)[:, None]
    dx = np.broadcast_to(np.where(yy < 150, 0.3, 1.2) + 0.002 * yy, (300, 64)).astype(np.float32)
    sam = moved(ref, dx, 0 * dx, 0.9).astype(np.float32)
    r, s = torch.from_numpy(ref)[None, None], torch.from_numpy(sam)[None, None]
    start = torch.from_numpy(np.stack([ndimage.uniform_filter(dx, 9), np.zeros_like(dx)]))
    fields = []
    for band_pixels in (64 * 64, 10**9):  # 64-row bands (5 of them), and one
        field = start.clone()
        for variance in (1e-4, None):
            weight = tv_pass(r, s, start, field, 0.05, 1.0, variance, band_pixels=band_pixels)
        fields.append(field)
    assert torch.equal(fields[0], fields[1]) and not torch.equal(fields[0], start)
    # a frame above WHOLE_FIT_PIXELS forms its fit band by band (twice): the same field to rounding
    import spinnet_lite.tv_refine as tv_module

    monkeypatch.setattr(tv_module, "WHOLE_FIT_PIXELS", 0)
    field = start.clone()
    for variance in (1e-4, None):
        tv_pass(r, s, start, field, 0.05, 1.0, variance, band_pixels=64 * 64)
    assert torch.allclose(field, fields[1], atol=1e-5)
    g = torch.Generator().manual_seed(3)
    target = torch.randn((2, 150, 40), generator=g).cumsum(1) * 0.05
    a = torch.randn((2, 150, 40), generator=g)
    precision = torch.stack([a[0] ** 2 + 0.1, 0.3 * a[0] * a[1], a[1] ** 2 + 0.1])
    whole = tv_solve(target, precision, 0.3, 20)
    for halo, same in ((21, True), (5, False)):  # 20 iterations reach at most 20 rows
        band = tv_solve(target[:, 40 - halo : 80 + halo], precision[:, 40 - halo : 80 + halo], 0.3, 20)
        assert torch.equal(band[:, halo:-halo], whole[:, 40:80]) == same
    d = torch.zeros((1, 2, 300, 64))
    d[:, 0] = torch.from_numpy(dx)
    noisy = s + 0.01 * torch.randn(s.shape, generator=g)
    banded, one = (residual_variance(r, noisy, d, 1.0, band_pixels=p) for p in (64 * 24, 10**9))
    assert banded == pytest.approx(one, rel=1e-5) and banded == pytest.approx(1e-4, rel=0.3)


def test_mirrored_solves_make_it_symmetric():
    """The solver on its own is not mirror-symmetric (forward differences); averaged over
    :data:`FLIPS` it is: the solve of a mirrored problem is the mirrored solve."""
    g = torch.Generator().manual_seed(5)
    target = torch.randn((2, 40, 48), generator=g).cumsum(2) * 0.05
    a = torch.randn((2, 40, 48), generator=g)
    precision = torch.stack([a[0] ** 2 + 0.1, 0.3 * a[0] * a[1], a[1] ** 2 + 0.1])
    for dims in FLIPS[1:]:
        one = tv_solve(target.flip(dims), precision.flip(dims), 0.3, 30).flip(dims)
        assert (one - tv_solve(target, precision, 0.3, 30)).abs().max() > 1e-3
        both = tv_solve(target.flip(dims), precision.flip(dims), 0.3, 30, flips=FLIPS).flip(dims)
        assert torch.allclose(both, tv_solve(target, precision, 0.3, 30, flips=FLIPS), atol=1e-6)
    with pytest.raises(ValueError, match="symmetries"):
        refine_field_tv(speckle((64, 64)), speckle((64, 64)), np.zeros((2, 64, 64), np.float32), symmetries=3)


def test_reconstruct_option():
    """reconstruct's default ``tv="auto"`` runs the refinement after the Lucas-Kanade step (the
    answer of ``tv=True``, not that of ``tv=False``) and not after the network alone
    (``lk_sigma=0``); a bad value is refused with the option's name."""
    pair = simulate_pair(size=N, seed=5, phantom="quadratic", aperture=0.6)
    default = reconstruct(pair.reference, pair.sample)
    off = reconstruct(pair.reference, pair.sample, tv=False)
    sharp = reconstruct(pair.reference, pair.sample, tv=True)
    assert np.isfinite(sharp.dx.values).all() and not np.allclose(sharp.dx.values, off.dx.values)
    np.testing.assert_array_equal(default.dx.values, sharp.dx.values)
    alone = reconstruct(pair.reference, pair.sample, lk_sigma=0)
    np.testing.assert_array_equal(alone.dx.values, reconstruct(pair.reference, pair.sample, lk_sigma=0, tv=False).dx.values)
    assert not np.allclose(alone.dx.values, reconstruct(pair.reference, pair.sample, lk_sigma=0, tv=True).dx.values)
    assert off.attrs["tv_weight"] == 0.0 and alone.attrs["tv_weight"] == 0.0
    # the weight used: the default on a clean lens-like pair of 2 px, raised by the noise rule at
    # 100 photons per pixel (and on the pair above, whose 168 px field no tracker follows)
    clean, noisy = (simulate_pair(size=N, seed=5, phantom="quadratic", aperture=0.6, max_shift_px=2.0, photons=p)
                    for p in (None, 100.0))
    assert reconstruct(clean.reference, clean.sample).attrs["tv_weight"] == pytest.approx(DEFAULT_WEIGHT)
    assert reconstruct(noisy.reference, noisy.sample).attrs["tv_weight"] > 5 * DEFAULT_WEIGHT
    for bad in ("on", "Auto", -1):
        with pytest.raises(ValueError, match="tv"):
            reconstruct(pair.reference, pair.sample, tv=bad)
    assert resolve_tv("auto", 6.0) == DEFAULT_WEIGHT and resolve_tv("auto", 0.0) == 0.0
    assert resolve_tv(False, 6.0) == 0.0 and resolve_tv(0.2, 0.0) == 0.2


def test_command_line(tmp_path):
    """No ``--tv`` gives reconstruct's default (the refinement on), ``--tv 0`` turns it off, ``--tv``
    alone turns it on after the network alone; a bad weight and XST are refused."""
    import xarray as xr

    from spinnet_lite.cli import main

    pair = simulate_pair(size=N, seed=6, phantom="quadratic", aperture=0.6)
    ref, sam = pair.reference.values, pair.sample.values
    np.save(tmp_path / "ref.npy", ref)
    np.save(tmp_path / "sam.npy", sam)
    paths = [str(tmp_path / "ref.npy"), str(tmp_path / "sam.npy")]
    assert main(["reconstruct", *paths, "-o", str(tmp_path / "tv.nc")]) == 0
    with xr.open_dataset(tmp_path / "tv.nc") as ds:
        np.testing.assert_allclose(ds.dx.values, reconstruct(ref, sam, tv=True)["dx"].values, atol=1e-5)
    assert main(["reconstruct", *paths, "-o", str(tmp_path / "off.nc"), "--tv", "0"]) == 0
    with xr.open_dataset(tmp_path / "off.nc") as ds:
        np.testing.assert_allclose(ds.dx.values, reconstruct(ref, sam, tv=False)["dx"].values, atol=1e-5)
    assert main(["reconstruct", *paths, "-o", str(tmp_path / "on.nc"), "--lk-sigma", "0", "--tv"]) == 0
    with xr.open_dataset(tmp_path / "on.nc") as ds:
        np.testing.assert_allclose(ds.dx.values, reconstruct(ref, sam, lk_sigma=0, tv=True)["dx"].values, atol=1e-5)
    assert main(["reconstruct", *paths, "-o", str(tmp_path / "x.nc"), "--method", "xst", "--tv", "0.1"]) == 2
    assert main(["reconstruct", *paths, "-o", str(tmp_path / "y.nc"), "--tv", "-1"]) == 2
    assert not (tmp_path / "x.nc").exists() and not (tmp_path / "y.nc").exists()
