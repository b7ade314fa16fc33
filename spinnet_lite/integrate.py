"""Phase from its gradients: 2-D integration of ``(dphi/dx, dphi/dy)``.

Two integrators (DESIGN.md section 1), both for gradients in rad/px on a ``(y, x)`` grid and
both returning the phase in rad with zero mean (the phase is defined up to a constant):

- :func:`frankot_chellappa`: the Fourier-space projection onto integrable fields
  (Frankot & Chellappa 1988). The gradients are first extended by mirror symmetry to a
  ``(2H, 2W)`` field (the phase is extended evenly, so ``dphi/dx`` is odd in x and even in y;
  Bon et al. 2012), which makes the field periodic without jumps at the borders.
- :func:`least_squares`: the exact least-squares solution of the discrete problem
  ``phi[:, j+1] - phi[:, j] = (gx[:, j] + gx[:, j+1]) / 2`` (and the same along y), i.e. the
  Poisson equation with Neumann boundary conditions, solved with the type-II DCT.
"""
from __future__ import annotations

import numpy as np
from scipy import fft

from .checks import check_choice

METHODS = ("fc", "ls")


def _check_gradients(gx, gy) -> tuple[np.ndarray, np.ndarray]:
    gx = np.asarray(getattr(gx, "values", gx), dtype=np.float64)
    gy = np.asarray(getattr(gy, "values", gy), dtype=np.float64)
    if gx.ndim != 2 or gy.ndim != 2:
        raise ValueError(f"integrate: expected 2-D gradients (y, x), got shapes {gx.shape} and {gy.shape}")
    if gx.shape != gy.shape:
        raise ValueError(f"integrate: gx and gy differ in shape: {gx.shape} vs {gy.shape}")
    if min(gx.shape) < 2:
        raise ValueError(f"integrate: gradients must be at least 2x2, got {gx.shape}")
    if not (np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))):
        raise ValueError("integrate: gradients contain NaN or infinite values")
    return gx, gy


def frankot_chellappa(gx, gy) -> np.ndarray:
    """Frankot-Chellappa integration with a mirror (antisymmetric-gradient) extension.

    Args:
        gx: ``dphi/dx`` (H, W), rad/px.
        gy: ``dphi/dy`` (H, W), rad/px.

    Returns:
        phase (H, W) in rad, zero mean.
    """
    gx, gy = _check_gradients(gx, gy)
    height, width = gx.shape
    # Even extension of the phase: gx is odd across the vertical mirror, even across the
    # horizontal one; gy the other way round.
    gx_ext = np.block([[gx, -gx[:, ::-1]], [gx[::-1, :], -gx[::-1, ::-1]]])
    gy_ext = np.block([[gy, gy[:, ::-1]], [-gy[::-1, :], -gy[::-1, ::-1]]])
    ky = 2 * np.pi * fft.fftfreq(2 * height)[:, None]
    kx = 2 * np.pi * fft.fftfreq(2 * width)[None, :]
    denom = kx**2 + ky**2
    denom[0, 0] = 1.0  # the mean is free; set below
    spectrum = (-1j * kx * fft.fft2(gx_ext) - 1j * ky * fft.fft2(gy_ext)) / denom
    spectrum[0, 0] = 0.0
    phase = np.real(fft.ifft2(spectrum))[:height, :width]
    return phase - phase.mean()


def least_squares(gx, gy) -> np.ndarray:
    """Least-squares integration: Neumann-boundary Poisson solve by the type-II DCT.

    Minimises ``sum (phi[:, j+1] - phi[:, j] - gx_half)^2 + sum (phi[i+1, :] - phi[i, :] - gy_half)^2``
    with the gradients averaged onto the half-pixel positions between samples
    (``gx_half = (gx[:, j] + gx[:, j+1]) / 2``), exactly (no iteration).

    Args:
        gx: ``dphi/dx`` (H, W), rad/px.
        gy: ``dphi/dy`` (H, W), rad/px.

    Returns:
        phase (H, W) in rad, zero mean.
    """
    gx, gy = _check_gradients(gx, gy)
    height, width = gx.shape
    ux = 0.5 * (gx[:, :-1] + gx[:, 1:])  # (H, W-1): target for phi[:, j+1] - phi[:, j]
    uy = 0.5 * (gy[:-1, :] + gy[1:, :])  # (H-1, W)
    # Right-hand side of the normal equations, D^T u (D the forward difference).
    rhs = np.zeros((height, width))
    rhs[:, :-1] -= ux
    rhs[:, 1:] += ux
    rhs[:-1, :] -= uy
    rhs[1:, :] += uy
    # D^T D with Neumann ends is diagonalised by the DCT-II: eigenvalues 2 - 2 cos(pi k / n).
    lam_y = 2.0 - 2.0 * np.cos(np.pi * np.arange(height) / height)
    lam_x = 2.0 - 2.0 * np.cos(np.pi * np.arange(width) / width)
    denom = lam_y[:, None] + lam_x[None, :]
    denom[0, 0] = 1.0
    coeff = fft.dctn(rhs, type=2, norm="ortho") / denom
    coeff[0, 0] = 0.0
    phase = fft.idctn(coeff, type=2, norm="ortho")
    return phase - phase.mean()


def integrate(gx, gy, method: str = "fc") -> np.ndarray:
    """Phase (rad, zero mean) from ``dphi/dx``, ``dphi/dy`` (rad/px).

    Args:
        gx, gy: (H, W) gradients in rad/px.
        method: ``"fc"`` (Frankot-Chellappa, mirror-extended) or ``"ls"`` (least squares, DCT).
    """
    check_choice(method, METHODS, "integration method")
    return frankot_chellappa(gx, gy) if method == "fc" else least_squares(gx, gy)
