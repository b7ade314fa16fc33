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
    h = -1j * np.pi * wavelength_m * distance_m * f2
    del f2
    return np.exp(h, out=h)


def fresnel_propagate(field, distance_m: float, wavelength_m: float, pixel_size_m: float, pad: int | None = None,
                      overwrite: bool = False):
    """Propagate a complex field (H, W) by ``distance_m``.

    Args:
        field: complex (or real amplitude) array (H, W), sampled at ``pixel_size_m``.
        distance_m: propagation distance in metres (0 returns the field unchanged).
        wavelength_m: wavelength in metres.
        pixel_size_m: sampling in metres.
        pad: pixels of reflective padding on each side before the FFT; ``None`` uses the
            Fresnel spread (:func:`fresnel_spread_px`), 0 propagates periodically (unitary:
            power is conserved exactly).
        overwrite: the field may be overwritten (saves one full-size copy; the result is the same).

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
    # the FFTs run in place on a private copy (or where the caller allows it): the same numbers, less memory
    private = overwrite or pad > 0 or not (isinstance(field, np.ndarray) and np.shares_memory(u, field))
    spectrum = sfft.fft2(u, workers=-1, overwrite_x=private)
    spectrum *= transfer_function(shape, distance_m, wavelength_m, pixel_size_m)
    out = sfft.ifft2(spectrum, workers=-1, overwrite_x=True)
    if pad > 0:
        h, w = field.shape
        out = out[pad : pad + h, pad : pad + w]
    return out


def propagate_inplace(u: np.ndarray, distance_m: float, wavelength_m: float, pixel_size_m: float) -> np.ndarray:
    """Periodic Fresnel propagation of ``u`` (complex (H, W), C-contiguous) in its own memory.

    The same propagation as ``fresnel_propagate(u, ..., pad=0)`` for large fields: the FFTs
    run in place (``overwrite_x``) and the transfer function is applied as its two separable
    factors ``exp(-i pi lambda z fy^2) exp(-i pi lambda z fx^2)``, one row and one column
    vector, so no full-size temporary is made.  A complex64 field stays complex64 (half the
    memory; the factors are computed in double precision first).  Power is conserved.

    Returns:
        The propagated field: ``u`` itself (overwritten), or a copy where ``u`` could not be
        overwritten (not complex or not contiguous).
    """
    if u.ndim != 2:
        raise ValueError(f"field: expected a 2-D array, got shape {u.shape}")
    if not (wavelength_m > 0 and pixel_size_m > 0):
        raise ValueError("wavelength and pixel size must be positive")
    if u.dtype not in (np.complex64, np.complex128) or not u.flags.c_contiguous:
        u = np.ascontiguousarray(u, dtype=np.complex128)
    if distance_m == 0:
        return u
    u = sfft.fft2(u, overwrite_x=True, workers=-1)
    c = -np.pi * wavelength_m * distance_m
    hy = np.exp(1j * c * sfft.fftfreq(u.shape[0], d=pixel_size_m) ** 2).astype(u.dtype)
    hx = np.exp(1j * c * sfft.fftfreq(u.shape[1], d=pixel_size_m) ** 2).astype(u.dtype)
    u *= hy[:, None]
    u *= hx[None, :]
    return sfft.ifft2(u, overwrite_x=True, workers=-1)
