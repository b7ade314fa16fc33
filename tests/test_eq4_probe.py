"""tools/eq4_probe.py: the diagnostics behind the README's Eq. 4 failure analysis."""
import numpy as np
import pytest


@pytest.fixture(scope="module")
def probe(load_tool):
    return load_tool("eq4_probe")


def _fields(seed=0, size=64):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] / size
    return {"dx": 0.5 * np.sin(2 * np.pi * x) + 0.01 * rng.standard_normal((size, size)),
            "dy": 0.3 * np.cos(2 * np.pi * y), "transmission": 0.9 + 0.05 * x}


def test_half_resolution_keeps_smooth_fields_and_loses_a_step(probe):
    smooth = _fields()
    smooth["dx"] = 0.5 * np.sin(2 * np.pi * np.mgrid[:64, :64][1] / 64)
    up = probe.half_resolution(smooth)
    inner = (slice(8, -8),) * 2
    assert np.abs(up["dx"] - smooth["dx"])[inner].max() < 5e-3
    step = dict(smooth, dx=np.where(np.arange(64) < 33, 0.0, 1.0)[None, :].repeat(64, 0))  # edge inside a 2x2 cell
    assert np.abs(probe.half_resolution(step)["dx"] - step["dx"])[inner].max() > 0.2


def test_probe_pair_scores_the_truth_and_a_shrunk_prediction(probe):
    truth = _fields()
    exact = probe.probe_pair(truth, truth)
    assert exact["eq4"] == 0 and exact["factor"] == 0 and exact["gain"] == pytest.approx(1)
    shrunk = dict(truth, dx=0.5 * truth["dx"], dy=0.5 * truth["dy"])
    row = probe.probe_pair(shrunk, truth)
    assert row["gain"] == pytest.approx(2.0)
    assert row["eq4"] == pytest.approx(0.5, rel=1e-6)  # (1/2)^2 for each of dx and dy
    assert row["factor"] == pytest.approx(np.sqrt(50), rel=1e-6)
    assert row["eq4_gained"] == pytest.approx(0, abs=1e-12)
    assert 0 < row["floor"] < 0.01  # these fields are smooth but for dx's noise


def test_smooth_split_tells_a_slow_bias_from_noise(probe):
    truth = _fields()
    x = np.mgrid[:64, :64][1] / 64
    bias = dict(truth, dx=truth["dx"] + 0.02 * np.cos(np.pi * x), dy=truth["dy"] - 0.01)  # varies over the whole image
    share, rest = probe.smooth_split(bias, truth)
    assert share > 0.95
    assert rest < 0.05 * probe.pair_error(bias, truth, 8)
    rng = np.random.default_rng(1)
    noisy = dict(truth, dx=truth["dx"] + 0.02 * rng.standard_normal((64, 64)),
                 dy=truth["dy"] + 0.02 * rng.standard_normal((64, 64)))
    share, rest = probe.smooth_split(noisy, truth)
    assert share < 0.02  # a 4 px Gaussian keeps ~1/(8 pi sigma^2) of white noise's power
    assert rest == pytest.approx(probe.pair_error(noisy, truth, 8), rel=0.05)
    assert probe.probe_pair(bias, truth)["smooth"] == pytest.approx(probe.smooth_split(bias, truth)[0])


def _ridge(size=96):
    """A field with a sharp ridge (a contour edge, as the seed's phantoms have) on a smooth slope."""
    y, x = np.mgrid[:size, :size].astype(float)
    dx = 0.4 * x / size + np.exp(-0.5 * ((x - size / 2) / 1.5) ** 2)
    return {"dx": dx, "dy": 0.2 * np.sin(2 * np.pi * y / size), "transmission": np.full((size, size), 0.9)}


def test_blur_floor_grows_with_sigma_and_resolution_inverts_it(probe):
    truth = _ridge()
    floors = [probe.blur_floor(truth, s) for s in (0.0, 1.0, 2.0, 3.0)]
    assert floors[0] == 0 and all(a < b for a, b in zip(floors, floors[1:]))
    assert floors[3] > 0.01  # a 1.5 px ridge does not survive a 3 px blur within 1 %
    for sigma in (1.0, 2.5):
        assert probe.resolution(probe.blur_floor(truth, sigma), truth) == pytest.approx(sigma, abs=1e-3)
    assert probe.resolution(0.0, truth) == 0
    assert probe.resolution(1e6, truth) == 16.0
    assert probe.blurred_truth(truth, 2.0)["transmission"] is truth["transmission"]


def test_edge_share_finds_error_at_the_ridge_and_not_elsewhere(probe):
    truth = _ridge()
    near = probe.blurred_truth(truth, 2.0)  # a blurred ridge: the error is at the ridge
    assert probe.edge_share(near, truth) > 0.8
    rng = np.random.default_rng(2)
    far = dict(truth, dx=truth["dx"] + np.where(np.abs(np.arange(96) - 48) > 12, 0.01, 0.0)[None, :]
               * rng.standard_normal((96, 96)))
    assert probe.edge_share(far, truth) == 0
    assert probe.edge_share(truth, truth) == 0
    row = probe.probe_pair(near, truth)
    assert row["edge"] == pytest.approx(probe.edge_share(near, truth))
    assert row["resolution"] == pytest.approx(2.0, abs=1e-3)


def test_resampled_sample_is_the_reference_moved_by_the_truth(probe):
    rng = np.random.default_rng(3)
    reference = 1 + 0.3 * rng.standard_normal((40, 48))
    truth = {"dx": np.full((40, 48), 2.0), "dy": np.full((40, 48), -1.0), "transmission": np.full((40, 48), 0.8)}
    sample = probe.resampled_sample(reference, truth)
    assert sample.shape == reference.shape and sample.dtype == np.float64
    # sample(y, x) = 0.8 * reference(y + 1, x - 2) away from the borders
    np.testing.assert_allclose(sample[4:-4, 4:-4], 0.8 * reference[5:-3, 2:-6], atol=1e-9)
    still = probe.resampled_sample(reference, dict(truth, dx=0 * truth["dx"], dy=0 * truth["dy"]))
    np.testing.assert_allclose(still, 0.8 * reference, atol=1e-9)


def test_from_truth_stays_on_a_consistent_pair_and_leaves_a_detailed_one(probe):
    from spinnet_lite.simulate import simulate_arrays

    pair = simulate_arrays(size=64, pitch=4, seed=4, phantom="blobs", max_shift_px=1.0)
    truth = {k: pair[k].astype(np.float64) for k in ("dx", "dy", "transmission")}
    # a sample made from the pixel reference as the step reads it: the truth is the step's fixed point
    remade = probe.resampled_sample(pair["reference"], truth)
    assert probe.from_truth(pair["reference"], remade, truth, (2,))[0] < 1e-4
    # the simulator's sample moves speckle detail finer than a pixel: the step walks off the truth,
    # and further with more iterations
    two, eight = probe.from_truth(pair["reference"], pair["sample"], truth, (2, 8))
    assert 1e-4 < two < eight
