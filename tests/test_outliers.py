"""Hot, dead and zinger pixels: found, replaced, and kept away from both trackers."""
import numpy as np
import pytest

from spinnet_lite import reconstruct, simulate_pair
from spinnet_lite.outliers import DEFAULT_THRESHOLD, find_outliers, replace_outliers

SPECKLES = [dict(pitch=2.0), dict(pitch=10.0), dict(speckle="diffuser", grain_px=1.5, visibility=0.4),
            dict(speckle="diffuser", grain_px=3.0, visibility=0.03)]


@pytest.mark.parametrize("photons", [None, 100.0])
@pytest.mark.parametrize("kw", SPECKLES)
def test_clean_speckle_has_no_outliers(kw, photons):
    ds = simulate_pair(128, seed=1_000_960_000, phantom="random", photons=photons, **kw)
    for name in ("reference", "sample"):
        rows, _ = find_outliers(ds[name].values)
        assert rows.size == 0, f"{name}: {rows.size} pixels of clean speckle taken for outliers"


def plant(image, rng, fraction, factor):
    out = image.copy()
    rows, cols = np.nonzero(rng.random(image.shape) < fraction)
    out[rows, cols] = out[rows, cols] * factor
    return out, set(zip(rows.tolist(), cols.tolist()))


def test_planted_hot_and_dead_pixels_are_found_and_replaced():
    ds = simulate_pair(128, seed=1_000_960_001, speckle="diffuser", grain_px=3.0, visibility=0.06, photons=10000.0)
    rng = np.random.default_rng(0)
    clean = ds["reference"].values
    hot, hot_at = plant(clean, rng, 2e-3, 5.0)
    bad, dead_at = plant(hot, rng, 2e-3, 0.0)
    before = bad.copy()
    rows, cols = find_outliers(bad)
    assert set(zip(rows.tolist(), cols.tolist())) == hot_at | dead_at  # edge and corner pixels too
    fixed, count = replace_outliers(bad)
    assert count == len(hot_at | dead_at)
    np.testing.assert_array_equal(bad, before)  # the input is left alone
    assert np.abs(fixed - clean).max() < 0.2  # replaced by a neighbourhood median, within the speckle's range
    assert replace_outliers(clean)[0] is clean  # nothing to replace: no copy


def test_constant_image_and_bad_threshold():
    flat = np.ones((64, 64))
    flat[10, 10] = 5.0
    assert find_outliers(flat)[0].size == 0  # no spread to measure against: nothing is called an outlier
    for bad in (0, -1.0, float("nan"), True, "12"):
        with pytest.raises(ValueError, match="threshold"):
            find_outliers(flat, bad)


def test_mostly_dark_image_is_left_alone():
    """Half of the frame dark (outside the beam): the robust spread is the dark part's, so much of
    the speckle would stand out; nothing is replaced, and a warning says why."""
    ds = simulate_pair(128, seed=1_000_960_004, photons=10000.0)
    image = ds["reference"].values.copy()
    image[:, :80] = 1e-3 * (1 + 0.01 * np.random.default_rng(2).standard_normal((128, 80)))
    with pytest.warns(UserWarning, match="none replaced"):
        out, count = replace_outliers(image)
    assert count == 0 and out is image


@pytest.mark.parametrize("method", ["spinnet", "xst"])
def test_hot_pixels_do_not_reach_the_trackers(method):
    """0.1 % hot pixels at 5x on a 6 % diffuser: the default replaces them; without it both methods fail."""
    ds = simulate_pair(256, seed=1_000_960_002, phantom="blobs", max_shift_px=3.0, speckle="diffuser", grain_px=3.0,
                       visibility=0.06, photons=10000.0)
    rng = np.random.default_rng(1)
    ref, _ = plant(ds["reference"].values, rng, 1e-3, 5.0)
    smp, _ = plant(ds["sample"].values, rng, 1e-3, 5.0)
    gt = np.stack([ds["dx"].values, ds["dy"].values])[:, 16:-16, 16:-16]
    options = {"search": 6} if method == "xst" else {}

    def rms(result):
        return float(np.sqrt(np.mean((np.stack([result.dx.values, result.dy.values])[:, 16:-16, 16:-16] - gt) ** 2)))

    clean = rms(reconstruct(ds["reference"].values, ds["sample"].values, method=method, **options))
    fixed = reconstruct(ref, smp, method=method, **options)
    kept = reconstruct(ref, smp, method=method, outliers=None, **options)
    assert fixed.attrs["outliers_replaced"][0] > 0 and fixed.attrs["outlier_threshold"] == DEFAULT_THRESHOLD
    assert kept.attrs["outliers_replaced"] == [0, 0] and kept.attrs["outlier_threshold"] == "off"
    assert rms(fixed) < 1.5 * clean + 0.02
    assert rms(kept) > 2 * rms(fixed)


def test_reconstruct_refuses_a_bad_threshold():
    ds = simulate_pair(64, seed=1)
    with pytest.raises(ValueError, match="outliers"):
        reconstruct(ds["reference"].values, ds["sample"].values, outliers=-3)


def test_cli_replaces_outliers_and_says_so(tmp_path, capsys):
    import xarray as xr

    from spinnet_lite.cli import main

    ds = simulate_pair(96, seed=1_000_960_003, speckle="diffuser", grain_px=3.0, visibility=0.06, photons=10000.0)
    ref = ds["reference"].values.copy()
    ref[40, 50] *= 6.0
    np.save(tmp_path / "ref.npy", ref)
    np.save(tmp_path / "sam.npy", ds["sample"].values)
    files = [str(tmp_path / "ref.npy"), str(tmp_path / "sam.npy")]
    assert main(["reconstruct", *files, "-o", str(tmp_path / "a.nc"), "--method", "xst"]) == 0
    assert "replaced 1 + 0 outlier pixels" in capsys.readouterr().out
    with xr.open_dataset(tmp_path / "a.nc") as out:
        assert list(out.attrs["outliers_replaced"]) == [1, 0]
    assert main(["reconstruct", *files, "-o", str(tmp_path / "b.nc"), "--method", "xst", "--keep-outliers"]) == 0
    assert "outlier pixels" not in capsys.readouterr().out
    assert main(["reconstruct", *files, "-o", str(tmp_path / "c.nc"), "--keep-outliers", "--outlier-threshold", "9"]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert not (tmp_path / "c.nc").exists()
