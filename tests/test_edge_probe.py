"""tools/edge_probe.py: where the held-out error sits, and what the images can tell there."""
import numpy as np
import pytest
from scipy import ndimage


@pytest.fixture(scope="module")
def probe(load_tool):
    return load_tool("edge_probe")


def test_photometric_residual_vanishes_for_the_true_field_only(probe):
    """A sample made by the forward model itself (cubic warp of the reference, times T) leaves a
    residual near 0 with its own field, and one of the size of the speckle gradient with another."""
    rng = np.random.default_rng(1)
    size = 96
    reference = 1.0 + 0.3 * ndimage.gaussian_filter(rng.standard_normal((size, size)), 2.0) / 0.07
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    dx = 1.5 * np.exp(-((xx - 48) ** 2 + (yy - 48) ** 2) / 400.0)
    dy = 0.5 * np.sin(2 * np.pi * xx / size)
    transmission = 0.8 + 0.1 * yy / size
    sample = transmission * ndimage.map_coordinates(reference, [yy - dy, xx - dx], order=3, mode="reflect")
    inner = (slice(12, -12),) * 2
    truth = probe.photometric_residual(reference, sample, transmission, dx, dy)[inner]
    wrong = probe.photometric_residual(reference, sample, transmission, dx + 0.3, dy)[inner]
    flipped = probe.photometric_residual(reference, sample, transmission, -dx, -dy)[inner]  # the other sign convention
    rms = lambda a: probe._root_mean(a**2)  # noqa: E731
    assert rms(wrong) > 0.05 and rms(flipped) > 0.05
    assert rms(truth) < 0.1 * min(rms(wrong), rms(flipped))  # only the slowly varying local mean differs
