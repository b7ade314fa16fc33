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
