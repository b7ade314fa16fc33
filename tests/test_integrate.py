"""Phase integration: analytic phases are recovered (up to a constant) by both integrators."""
import numpy as np
import pytest

from spinnet_lite.integrate import frankot_chellappa, integrate, least_squares

H, W = 80, 112
Y, X = np.mgrid[0:H, 0:W].astype(float)


def paraboloid():
    """A lens-like phase with its analytic gradients (rad, rad/px), off-centre and tilted."""
    a, b, tilt = 0.004, 0.006, 0.05
    phi = -(a * (X - 45.0) ** 2 + b * (Y - 30.0) ** 2) + tilt * X
    return phi, -2 * a * (X - 45.0) + tilt, -2 * b * (Y - 30.0)


def gaussian():
    sigma, amp = 11.0, 4.0
    phi = amp * np.exp(-((X - 60.0) ** 2 + (Y - 35.0) ** 2) / (2 * sigma**2))
    return phi, -phi * (X - 60.0) / sigma**2, -phi * (Y - 35.0) / sigma**2


def centred_error(result, phi):
    return result - result.mean() - (phi - phi.mean())


@pytest.mark.parametrize("method", ["fc", "ls"])
class TestRoundTrip:
    def test_paraboloid(self, method):
        phi, gx, gy = paraboloid()
        result = integrate(gx, gy, method=method)
        err = centred_error(result, phi)
        assert result.shape == (H, W)
        assert abs(result.mean()) < 1e-9  # zero mean
        # The mirror-extended Fourier integrator rings a little at the borders; LS is exact.
        tol = 0.01 if method == "fc" else 1e-8
        assert np.sqrt(np.mean(err**2)) < tol * np.ptp(phi)

    def test_gaussian(self, method):
        phi, gx, gy = gaussian()
        err = centred_error(integrate(gx, gy, method=method), phi)
        assert np.sqrt(np.mean(err**2)) < 2e-3 * np.ptp(phi)
        assert np.abs(err).max() < 1e-2 * np.ptp(phi)

    def test_constant_gradient_is_a_ramp(self, method):
        result = integrate(np.full((H, W), 0.1), np.full((H, W), -0.2), method=method)
        interior = (slice(8, -8), slice(8, -8))
        np.testing.assert_allclose(np.gradient(result, axis=1)[interior], 0.1, atol=2e-3)
        np.testing.assert_allclose(np.gradient(result, axis=0)[interior], -0.2, atol=2e-3)

    def test_zero_gradient(self, method):
        np.testing.assert_allclose(integrate(np.zeros((H, W)), np.zeros((H, W)), method=method), 0.0, atol=1e-12)

    def test_linear_in_gradients(self, method):
        p1, gx1, gy1 = paraboloid()
        p2, gx2, gy2 = gaussian()
        both = integrate(gx1 + 2 * gx2, gy1 + 2 * gy2, method=method)
        np.testing.assert_allclose(both, integrate(gx1, gy1, method) + 2 * integrate(gx2, gy2, method), atol=1e-9)


def test_direct_functions_agree_with_dispatch():
    phi, gx, gy = gaussian()
    np.testing.assert_array_equal(frankot_chellappa(gx, gy), integrate(gx, gy, "fc"))
    np.testing.assert_array_equal(least_squares(gx, gy), integrate(gx, gy, "ls"))


def test_integrators_agree_on_smooth_phase():
    phi, gx, gy = gaussian()
    diff = frankot_chellappa(gx, gy) - least_squares(gx, gy)
    assert np.sqrt(np.mean(diff**2)) < 2e-3 * np.ptp(phi)


class TestExceptions:
    def test_unknown_method(self):
        with pytest.raises(ValueError, match="unknown integration method"):
            integrate(np.zeros((8, 8)), np.zeros((8, 8)), method="poisson")

    def test_shapes(self):
        with pytest.raises(ValueError, match="differ in shape"):
            integrate(np.zeros((8, 8)), np.zeros((8, 9)))
        with pytest.raises(ValueError, match="2-D"):
            integrate(np.zeros((2, 8, 8)), np.zeros((2, 8, 8)))

    def test_nan(self):
        gx = np.zeros((8, 8))
        gx[2, 2] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            least_squares(gx, np.zeros((8, 8)))
