"""Fresnel propagation of a complex field by the transfer function (angular spectrum, paraxial).

    U(z) = IFFT[ FFT[U(0)] * exp(-i pi lambda z (fx^2 + fy^2)) ]

The constant phase exp(i k z) is dropped (it does not change intensities).  The FFT treats
the field as periodic, so the field is padded first: a feature at the edge spreads by at most
``lambda z / (2 p^2)`` pixels (the Nyquist frequency's diffraction angle times z), and a pad
at least that wide keeps the wrapped light out of the cropped result.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import fft as sfft


def fresnel_spread_px(distance_m: float, wavelength_m: float, pixel_size_m: float) -> int:
    """Lateral spread in pixels of the finest (Nyquist) feature over ``distance_m``."""
    return int(math.ceil(wavelength_m * abs(distance_m) / (2 * pixel_size_m**2)))


def transfer_function(shape, distance_m: float, wavelength_m: float, pixel_size_m: float) -> np.ndarray:
    """Paraxial Fresnel transfer function on an FFT grid of ``shape`` (complex128)."""
    fy = sfft.fftfreq(shape[0], d=pixel_size_m)
    fx = sfft.fftfreq(shape[1], d=pixel_size_m)
    f2 = fy[:, None] ** 2 + fx[None, :] ** 2
    return np.exp(-1j * np.pi * wavelength_m * distance_m * f2)


def fresnel_propagate(field, distance_m: float, wavelength_m: float, pixel_size_m: float, pad: int | None = None):
    """Propagate a complex field (H, W) by ``distance_m``.

    Args:
        field: complex (or real amplitude) array (H, W), sampled at ``pixel_size_m``.
        distance_m: propagation distance in metres (0 returns the field unchanged).
        wavelength_m: wavelength in metres.
        pixel_size_m: sampling in metres.
        pad: pixels of reflective padding on each side before the FFT; ``None`` uses the
            Fresnel spread (:func:`fresnel_spread_px`), 0 propagates periodically (unitary:
            power is conserved exactly).

    Returns:
        complex128 array (H, W): the propagated field.
    """
    u = np.asarray(field, dtype=np.complex128)
    if u.ndim != 2:
        raise ValueError(f"field: expected a 2-D array, got shape {u.shape}")
    if not (wavelength_m > 0 and pixel_size_m > 0):
        raise ValueError("wavelength and pixel size must be positive")
    if distance_m == 0:
        return u.copy()
    if pad is None:
        pad = fresnel_spread_px(distance_m, wavelength_m, pixel_size_m)
    pad = int(pad)
    if pad > 0:
        u = np.pad(u, pad, mode="reflect" if pad < min(u.shape) else "symmetric")
    shape = (sfft.next_fast_len(u.shape[0]), sfft.next_fast_len(u.shape[1])) if pad > 0 else u.shape
    if shape != u.shape:  # extend to a fast FFT size with more reflected field
        u = np.pad(u, ((0, shape[0] - u.shape[0]), (0, shape[1] - u.shape[1])), mode="symmetric")
    spectrum = sfft.fft2(u, workers=-1)
    out = sfft.ifft2(spectrum * transfer_function(shape, distance_m, wavelength_m, pixel_size_m), workers=-1)
    if pad > 0:
        h, w = field.shape
        out = out[pad : pad + h, pad : pad + w]
    return out
