"""The coded-mask speckle simulator (seed section 2.3) and the forward model (Eq. 1).

    I_s(y, x) = T(y, x) * I_r(y - dy(y, x), x - dx(y, x))

Reference: a plane wave through a random binary phase mask (amplitude ``A0 + t0 (1 - R)``,
phase ``phi0 R``, R = 1 on the gold), Fresnel-propagated over the mask-to-detector distance,
intensity taken and blurred by the detector.  Sample: the reference displaced by the sample's
phase gradients (in pixels, via :class:`~spinnet_lite.geometry.Geometry`) and attenuated by
its transmission.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr
from scipy import ndimage

from . import phantoms
from .geometry import Geometry
from .propagate import fresnel_propagate, fresnel_spread_px, propagate_inplace

PHANTOMS = ("random", "lens", "bug", "blobs", "quadratic", "uniform")
#: Mask parameters of the seed (section 2.3).
MASK_AMPLITUDE = 0.7  # A0: amplitude through the gold
MASK_TRANSMISSION_GAIN = 0.3  # t0: extra amplitude where there is no gold
MASK_PHASE = np.pi  # phi0


SPECKLES = ("mask", "diffuser")
#: "eq1": the sample image is the reference warped by the phase gradients (Eq. 1, the seed's
#: training model); "wave": the sample is placed in the beam and the wave propagated
#: (:func:`wave_pair`), which keeps the terms Eq. 1 omits.
FORWARD_MODELS = ("eq1", "wave")
#: The simulated wave is sampled this many times finer than the detector pixel (then binned),
#: unless the fine grid would exceed :data:`MAX_FINE_GRID` pixels on a side.
OVERSAMPLE = 4
MAX_FINE_GRID = 4800


def coded_mask(shape, pitch: float, rng: np.random.Generator) -> np.ndarray:
    """Random binary mask on a grid of ``shape``: cells of ``pitch`` grid pixels, half of them gold (1).

    The mask is drawn on ``ceil(H / pitch) x ceil(W / pitch)`` cells (half of them 1; when the
    count is odd the extra cell is 0) and sampled without interpolation: grid pixel ``i`` lies
    in cell ``floor(i / pitch)``.  ``pitch`` may be fractional (a 2 um cell is 3.08 pixels of
    0.65 um); the simulator draws the mask on a grid finer than the detector pixel, so that a
    cell edge falls anywhere inside a pixel as it does on a real detector.
    """
    cells, iy, ix = mask_cells(shape, pitch, rng)
    return cells[iy[:, None], ix[None, :]]


def mask_cells(shape, pitch: float, rng: np.random.Generator):
    """The cells of :func:`coded_mask` and the cell of every grid row and column.

    Returns ``(cells, iy, ix)``: ``cells`` (float64, 0 or 1) of ``ceil(H / pitch) x
    ceil(W / pitch)``, and ``coded_mask(...) == cells[iy[:, None], ix[None, :]]``; the same
    random draws as :func:`coded_mask`, so a band of the mask can be made without the whole.
    """
    if isinstance(pitch, bool) or not isinstance(pitch, (int, float, np.integer, np.floating)) \
            or not np.isfinite(pitch) or pitch < 1:
        raise ValueError(f"pitch must be a number of grid pixels >= 1, got {pitch!r}")
    pitch = float(pitch)
    iy = (np.arange(shape[0]) / pitch).astype(np.int64)
    ix = (np.arange(shape[1]) / pitch).astype(np.int64)
    cells = (int(iy[-1]) + 1, int(ix[-1]) + 1)
    n = cells[0] * cells[1]
    flat = np.zeros(n, dtype=np.float64)
    flat[: n // 2] = 1.0
    rng.shuffle(flat)
    return flat.reshape(cells), iy, ix


def diffuser_screen(shape, grain: float, rng: np.random.Generator, phase_rms: float = 2.0,
                    absorption: float = 0.02) -> np.ndarray:
    """Complex transmission of a random diffuser (membrane, sandpaper) on a grid of ``shape``.

    A Gaussian-correlated random phase of rms ``phase_rms`` rad and correlation length
    ``grain`` grid pixels, with a thickness-proportional absorption (``absorption`` = the
    amplitude lost per radian of phase, i.e. beta/delta); the speckle it makes after
    propagation has grains of about ``grain`` pixels.
    """
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    noise = np.fft.irfft2(np.fft.rfft2(rng.standard_normal(shape)) * np.exp(-2 * (np.pi * grain / 2) ** 2 * (fy**2 + fx**2)), s=shape)
    noise *= phase_rms / max(noise.std(), 1e-12)
    thickness = noise - noise.mean()  # phase of the material about its mean
    return np.exp(-absorption * thickness) * np.exp(1j * thickness)


def oversampling(shape, margin: int, oversample: int | None = None) -> int:
    """Sub-pixels per detector pixel for a reference of ``shape`` with ``margin`` (see :data:`OVERSAMPLE`)."""
    if oversample is not None:
        if isinstance(oversample, bool) or int(oversample) != oversample or not 1 <= oversample <= 8:
            raise ValueError(f"oversample must be an integer from 1 to 8, got {oversample!r}")
        return int(oversample)
    side = max(shape) + 2 * margin
    return int(max(1, min(OVERSAMPLE, MAX_FINE_GRID // side)))


def generator_field(shape, geometry: Geometry, rng: np.random.Generator, pitch: float | None = None,
                    mask_phase: float = MASK_PHASE, amplitude: float = MASK_AMPLITUDE,
                    gain: float = MASK_TRANSMISSION_GAIN, distance_mm: float | None = None, speckle: str = "mask",
                    grain_px: float = 3.0, diffuser_phase_rms: float = 2.0, oversample: int | None = None):
    """The wave just after the speckle generator, on a grid finer than the detector pixel.

    Returns ``(field, oversample, margin)``: a complex array of
    ``((H + 2 margin) * oversample, (W + 2 margin) * oversample)``, with ``margin`` the
    Fresnel spread (detector pixels) over the mask-to-detector distance, which keeps the
    periodic propagation's wrapped light out of the image.
    """
    pitch, margin, os_, big = _generator_grid(shape, geometry, pitch, distance_mm, speckle, oversample)
    dtype = np.complex64 if big[0] * big[1] > 2048**2 else np.complex128
    if speckle == "mask":
        # (A0 + t0 (1 - r)) exp(i phi0 r) takes two values: computed for r = 0, 1 and looked up per
        # sub-pixel (the same numbers as on the whole grid, without its full-size temporaries)
        cells, iy, ix = mask_cells(big, float(pitch) * os_, rng)
        r = np.array([0.0, 1.0])
        values = ((amplitude + gain * (1.0 - r)) * np.exp(1j * mask_phase * r)).astype(dtype)
        field = values[cells.astype(np.uint8)[iy[:, None], ix[None, :]]]
    else:
        if not (np.isfinite(grain_px) and 0.5 <= grain_px <= 64):
            raise ValueError(f"grain_px must be from 0.5 to 64 pixels, got {grain_px!r}")
        field = diffuser_screen(big, grain_px * os_, rng, phase_rms=diffuser_phase_rms).astype(dtype, copy=False)
    return field, os_, margin


def _generator_grid(shape, geometry: Geometry, pitch, distance_mm, speckle: str, oversample):
    """Checks and the fine grid of :func:`generator_field`: ``(pitch, margin, oversample, fine shape)``."""
    if speckle not in SPECKLES:
        raise ValueError(f"unknown speckle generator {speckle!r}; expected one of {', '.join(map(repr, SPECKLES))}")
    pitch = geometry.mask_pitch_px if pitch is None else pitch
    if distance_mm is not None and not (isinstance(distance_mm, (int, float, np.integer, np.floating))
                                        and not isinstance(distance_mm, bool) and 0 <= distance_mm <= 1e7):
        raise ValueError(f"distance_mm must be None or a number of millimetres from 0 to 1e7, got {distance_mm!r}")
    distance_m = (geometry.mask_detector_mm if distance_mm is None else distance_mm) * 1e-3
    margin = fresnel_spread_px(distance_m, geometry.wavelength_m, geometry.pixel_size_m) + 2
    if max(shape) + 2 * margin > MAX_GRID:
        raise ValueError(f"the speckle's Fresnel spread over {distance_m * 1e3:g} mm at {geometry.wavelength_m:.3g} m and "
                         f"{geometry.pixel_size_um:g} um pixels is {margin} px on each side: the grid would be "
                         f"{max(shape) + 2 * margin} px, more than {MAX_GRID}; use a shorter distance, a higher energy "
                         "or larger pixels")
    os_ = oversampling(shape, margin, oversample)
    big = ((shape[0] + 2 * margin) * os_, (shape[1] + 2 * margin) * os_)
    return pitch, margin, os_, big


#: Rows of the fine grid handled at a time by the memory-lean wave simulation (:func:`wave_pair`).
WAVE_BAND_ROWS = 256


class _GeneratorRows:
    """The generator's wave of :func:`generator_field`, as complex64, made a band of rows at a time.

    A coded mask keeps only its cells (a few hundred kB) and makes any band of the fine grid
    from them; a diffuser is made whole (as :func:`generator_field` does) and kept as complex64.
    Same random draws, so the same generator as :func:`generator_field`.
    """

    def __init__(self, shape, geometry: Geometry, rng: np.random.Generator, pitch: float | None = None,
                 mask_phase: float = MASK_PHASE, amplitude: float = MASK_AMPLITUDE,
                 gain: float = MASK_TRANSMISSION_GAIN, distance_mm: float | None = None, speckle: str = "mask",
                 grain_px: float = 3.0, diffuser_phase_rms: float = 2.0, oversample: int | None = None):
        pitch, self.margin, self.oversample, self.shape = _generator_grid(shape, geometry, pitch, distance_mm,
                                                                          speckle, oversample)
        self.field = None
        if speckle == "mask":
            self.cells, self.iy, self.ix = mask_cells(self.shape, float(pitch) * self.oversample, rng)
            self.cells = self.cells.astype(np.uint8)
            r = np.array([0.0, 1.0])  # the two values of the mask, computed as generator_field does
            self.values = ((amplitude + gain * (1.0 - r)) * np.exp(1j * mask_phase * r)).astype(np.complex64)
        else:
            field, _, _ = generator_field(shape, geometry, rng, pitch, mask_phase, amplitude, gain, distance_mm,
                                          speckle, grain_px, diffuser_phase_rms, oversample)
            self.field = np.ascontiguousarray(field, dtype=np.complex64)

    def rows(self, r0: int, r1: int) -> np.ndarray:
        """Rows ``r0:r1`` of the fine-grid field, complex64."""
        if self.field is not None:
            return self.field[r0:r1]
        return self.values[self.cells[self.iy[r0:r1, None], self.ix[None, :]]]

    def whole(self, consume: bool = False) -> np.ndarray:
        """The whole field as a new complex64 array (``consume``: the kept diffuser itself, then dropped)."""
        if self.field is not None:
            field = self.field if consume else self.field.copy()
            if consume:
                self.field = None
            return field
        out = np.empty(self.shape, np.complex64)
        for r0 in range(0, self.shape[0], WAVE_BAND_ROWS):
            out[r0:r0 + WAVE_BAND_ROWS] = self.rows(r0, min(r0 + WAVE_BAND_ROWS, self.shape[0]))
        return out


def bin_pixels(intensity, oversample: int) -> np.ndarray:
    """Sum-average ``oversample x oversample`` sub-pixels into detector pixels (what a pixel integrates)."""
    if oversample == 1:
        return np.asarray(intensity, dtype=np.float64)
    h, w = intensity.shape
    return intensity.reshape(h // oversample, oversample, w // oversample, oversample).mean(axis=(1, 3), dtype=np.float64)


#: Reach of the detector's Gaussian, in its sigmas (scipy's default truncation).
PSF_TRUNCATE = 4.0


def detector_blur(fine_intensity: np.ndarray, oversample: int, blur_px: float) -> np.ndarray:
    """The detector's point-spread function: a Gaussian of ``blur_px`` detector pixels applied
    to an intensity on the ``oversample``-times finer grid, **in place** (float64), before the
    pixels integrate it (:func:`bin_pixels`).

    In a scintillator-and-optics detector the light spreads before the camera's pixels collect
    it, so the blur removes speckle detail finer than a pixel before binning can fold it into
    the pixel grid (aliasing). Blurring the binned image instead keeps that aliased detail: a
    uniform 0.1 px shift of a 4 px mask pattern then scatters a tracker by ~13 % of the shift
    instead of ~8 % (0.6 px blur; ``tests/test_simulate.py`` checks the order by this
    consequence, the README has the figures).

    Edges repeat the nearest value. Returns ``fine_intensity``.
    """
    if blur_px:
        for axis in (0, 1):
            ndimage.gaussian_filter1d(fine_intensity, blur_px * oversample, axis=axis, output=fine_intensity,
                                      mode="nearest", truncate=PSF_TRUNCATE)
    return fine_intensity


def _intensity(field) -> np.ndarray:
    """``|field|^2`` as a new float64 array (no complex or float32 temporary of its size)."""
    intensity = np.square(field.real, dtype=np.float64)
    intensity += np.square(field.imag, dtype=np.float64)
    return intensity


def detect(field, oversample: int, margin: int, shape, blur_px: float = 0.6) -> np.ndarray:
    """Intensity of a fine-grid field blurred by the detector (:func:`detector_blur`), binned to
    detector pixels and cropped to ``shape``."""
    intensity = bin_pixels(detector_blur(_intensity(field), oversample, blur_px), oversample)
    return np.asarray(intensity[margin : margin + shape[0], margin : margin + shape[1]], dtype=np.float64)


def to_fine_grid(image, oversample: int) -> np.ndarray:
    """A pixel-grid map (H, W) sampled at the centres of ``oversample``-times finer sub-pixels (linear)."""
    if oversample == 1:
        return np.asarray(image, dtype=np.float64)
    return ndimage.zoom(np.asarray(image, dtype=np.float64), oversample, order=1, grid_mode=True, mode="nearest")


def warp_fine(fine, dx, dy, oversample: int, offset: int = 0) -> np.ndarray:
    """Eq. 1's displacement applied before the pixels integrate: ``fine(Y - d(Y))`` on the fine grid.

    Args:
        fine: (h, w) intensity on a grid ``oversample`` times finer than the detector pixel.
        dx, dy: (H, W) displacement in detector pixels; ``H * oversample + 2 offset <= h``.
        offset: fine sub-pixels of ``fine`` before the image starts (its margin).

    Returns:
        (H * oversample, W * oversample) warped intensity (bin it with :func:`bin_pixels`).
        A sub-pixel shift of speckle finer than the pixel then changes the binned image as
        it does on a real detector (warping the binned image instead would not).
    """
    h, w = dx.shape
    ys, xs = np.meshgrid(np.arange(h * oversample, dtype=np.float64) + offset,
                         np.arange(w * oversample, dtype=np.float64) + offset, indexing="ij")
    return ndimage.map_coordinates(fine, [ys - oversample * to_fine_grid(dy, oversample),
                                          xs - oversample * to_fine_grid(dx, oversample)], order=3, mode="nearest")


def detect_fine_pair(fine, dx, dy, oversample: int, edge: int, blur_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Seed Eq. 1 on the fine grid, then the detector: the reference (``fine`` cropped at
    ``edge`` fine samples to ``dx``'s shape) and the sample (``fine`` warped by ``dx``, ``dy``,
    :func:`warp_fine`), each blurred by the detector (:func:`detector_blur`, edges repeated:
    the same for both, so a zero displacement gives the reference) and binned to pixels."""
    h, w = dx.shape
    reference = np.array(fine[edge:edge + h * oversample, edge:edge + w * oversample], dtype=np.float64)
    sample = warp_fine(fine, dx, dy, oversample, offset=edge)
    return (bin_pixels(detector_blur(reference, oversample, blur_px), oversample),
            bin_pixels(detector_blur(sample, oversample, blur_px), oversample))


def reference_image(shape, geometry: Geometry, rng: np.random.Generator, pitch: float | None = None,
                    mask_phase: float = MASK_PHASE, amplitude: float = MASK_AMPLITUDE,
                    gain: float = MASK_TRANSMISSION_GAIN, blur_px: float = 0.6,
                    distance_mm: float | None = None, speckle: str = "mask", grain_px: float = 3.0,
                    diffuser_phase_rms: float = 2.0, oversample: int | None = None, fine: bool = False):
    """Speckle reference (H, W): the speckle generator's wave propagated to the detector.

    With ``fine=True`` returns ``(intensity, oversample, margin)`` instead: the unbinned,
    unblurred intensity on the fine grid, ``margin`` detector pixels wider than ``shape`` on
    every side (for :func:`warp_fine`, then :func:`bin_pixels` and the blur).

    The generator (a coded mask of ``pitch`` pixels, or a random diffuser of ``grain_px``) is
    drawn on a grid ``oversample`` times finer than the detector pixel and larger than the
    image by the Fresnel spread on every side (:func:`generator_field`), propagated (Fresnel
    transfer function) over the mask-to-detector distance, and its intensity blurred by the
    detector (Gaussian, ``blur_px``, on the fine grid), binned to detector pixels and cropped
    (:func:`detect`).  The incident intensity is 1.
    """
    field, os_, margin = generator_field(shape, geometry, rng, pitch, mask_phase, amplitude, gain, distance_mm,
                                         speckle, grain_px, diffuser_phase_rms, oversample)
    distance_m = (geometry.mask_detector_mm if distance_mm is None else distance_mm) * 1e-3
    u = fresnel_propagate(field, distance_m, geometry.wavelength_m, geometry.pixel_size_m / os_, pad=0, overwrite=True)
    del field
    if fine:
        return np.abs(u) ** 2, os_, margin
    return detect(u, os_, margin, shape, blur_px)


def wave_pair(shape, geometry: Geometry, rng: np.random.Generator, phase, transmission, blur_px: float = 0.6,
              distance_mm: float | None = None, **generator) -> tuple[np.ndarray, np.ndarray]:
    """Reference and sample by full Fresnel propagation, without Eq. 1's first-order model.

    The generator's wave (:func:`generator_field`) and the sample's complex transmission
    ``sqrt(T) exp(i phase)`` (interpolated to the fine grid) are placed in their order along
    the beam (``geometry.mask_upstream``) and the wave propagated between them and on to the
    detector.  The sample image then holds what Eq. 1 omits: the edge fringes of the Laplacian
    term and the intensity modulation of strong curvature.

    Memory: one complex64 field on the fine grid at a time (a 2112 px frame, oversampled 2x, is
    a 4568 x 4568 grid: 167 MB), propagated in place (:func:`~spinnet_lite.propagate.propagate_inplace`);
    the mask, the sample's transmission and the detected intensity are made a band of rows at a
    time.  A diffuser is made whole and kept (a second field).

    Args:
        shape: ``(H, W)`` detector pixels; ``phase``, ``transmission`` are ``(H, W)``.
        generator: the keywords of :func:`generator_field` (pitch, speckle, grain_px, ...).

    Returns:
        ``(reference, sample)``, float64 ``(H, W)``.
    """
    d_mm = geometry.mask_detector_mm if distance_mm is None else distance_mm
    gen = _GeneratorRows(shape, geometry, rng, distance_mm=d_mm, **generator)
    os_, margin = gen.oversample, gen.margin
    pad = ((margin, margin), (margin, margin))
    phase_p = np.pad(np.asarray(phase, np.float64), pad, mode="edge")
    trans_p = np.pad(np.asarray(transmission, np.float64), pad, mode="edge")
    lam, p = geometry.wavelength_m, geometry.pixel_size_m / os_
    d, z = d_mm * 1e-3, geometry.sample_detector_mm * 1e-3
    reference = detect_lean(propagate_inplace(gen.whole(), d, lam, p), os_, margin, shape, blur_px)
    if d >= z:  # mask upstream (the seed's order): mask -> (d - z) -> sample -> z -> detector
        u = propagate_inplace(gen.whole(consume=True), d - z, lam, p)
        _multiply_bands(u, lambda r0, r1: _sample_rows(phase_p, trans_p, os_, r0, r1))
        u = propagate_inplace(u, z, lam, p)
    else:  # sample upstream: sample -> (z - d) -> mask -> d -> detector
        u = np.empty(gen.shape, np.complex64)
        for r0 in range(0, u.shape[0], WAVE_BAND_ROWS):
            r1 = min(r0 + WAVE_BAND_ROWS, u.shape[0])
            u[r0:r1] = _sample_rows(phase_p, trans_p, os_, r0, r1)
        u = propagate_inplace(u, z - d, lam, p)
        _multiply_bands(u, gen.rows)
        u = propagate_inplace(u, d, lam, p)
    return reference, detect_lean(u, os_, margin, shape, blur_px)


def _multiply_bands(u, rows) -> None:
    """``u *= rows(r0, r1)`` band by band (in place)."""
    for r0 in range(0, u.shape[0], WAVE_BAND_ROWS):
        r1 = min(r0 + WAVE_BAND_ROWS, u.shape[0])
        u[r0:r1] *= rows(r0, r1)


def _sample_rows(phase_p, trans_p, oversample: int, r0: int, r1: int) -> np.ndarray:
    """Rows ``r0:r1`` of the fine grid of ``sqrt(T) exp(i phase)``, from the padded pixel maps.

    The fine grid is the pixel maps zoomed ``oversample`` times (``ndimage.zoom``, linear,
    ``grid_mode``), computed on the pixel rows the band needs plus one on each side, so the
    band equals the same rows of the map zoomed whole.
    """
    c0, c1 = r0 // oversample, -(-r1 // oversample)
    a, b = max(c0 - 1, 0), min(c1 + 1, phase_p.shape[0])
    fine = dict(zoom=oversample, order=1, grid_mode=True, mode="nearest")
    skip = (c0 - a) * oversample + r0 % oversample
    sl = slice(skip, skip + (r1 - r0))
    phase_f = ndimage.zoom(phase_p[a:b], **fine)[sl]
    amp_f = np.sqrt(np.clip(ndimage.zoom(trans_p[a:b], **fine)[sl], 0, None))
    return amp_f * np.exp(1j * phase_f)


def detect_lean(field, oversample: int, margin: int, shape, blur_px: float = 0.6) -> np.ndarray:
    """:func:`detect` a band of rows at a time: no full-size intensity on the fine grid (each
    band carries the rows and columns the detector's blur reaches, so the result is the same)."""
    h, w = shape
    out = np.empty((h, w), np.float64)
    halo = int(PSF_TRUNCATE * blur_px * oversample + 0.5) + 1 if blur_px else 0  # fine samples
    c0, c1 = margin * oversample, (margin + w) * oversample
    lc0, lc1 = max(0, c0 - halo), min(field.shape[1], c1 + halo)
    step = max(1, WAVE_BAND_ROWS // oversample)
    for i0 in range(0, h, step):
        i1 = min(i0 + step, h)
        r0, r1 = (margin + i0) * oversample, (margin + i1) * oversample
        lr0, lr1 = max(0, r0 - halo), min(field.shape[0], r1 + halo)
        intensity = detector_blur(_intensity(field[lr0:lr1, lc0:lc1]), oversample, blur_px)
        intensity = intensity[r0 - lr0:r1 - lr0, c0 - lc0:c1 - lc0]
        out[i0:i1] = bin_pixels(intensity, oversample)
    return out


def rms_visibility(image) -> float:
    """Speckle visibility as the rms contrast ``std / mean`` of an image."""
    image = np.asarray(image, dtype=np.float64)
    return float(image.std() / image.mean())


def set_visibility(reference, visibility: float) -> np.ndarray:
    """The reference with its contrast scaled about its mean to rms ``visibility`` (std / mean).

    Stands in for what lowers visibility on a real beamline (source size, a larger
    detector PSF, a thin diffuser).  Raising is allowed as long as no intensity turns negative.
    """
    current = rms_visibility(reference)
    if not (np.isfinite(visibility) and 0 < visibility):
        raise ValueError(f"visibility must be a positive fraction, got {visibility!r}")
    m = reference.mean()
    out = m + (reference - m) * (visibility / current)
    if out.min() < 0:
        raise ValueError(f"visibility {visibility:.3g} is too far above this speckle's own {current:.3g}: "
                         "intensities would turn negative")
    return out


def flat_field_drift(shape, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth illumination change between reference and sample: ``1 + a * f``, |f| <= 1."""
    f = phantoms.smooth_texture(shape, max(shape) / 6, rng) * 2 - 1
    return 1.0 + float(amplitude) * f


def warp(image, dx, dy) -> np.ndarray:
    """``image(y - dy, x - dx)`` by cubic B-spline interpolation (``scipy.ndimage.map_coordinates``).

    A cubic spline reproduces sub-pixel shifts of speckle without bias (a 0.25 px shift comes
    out at 0.2496 px; torch's bicubic ``grid_sample`` gave 0.268 px).

    Args:
        image: (H, W) array.
        dx, dy: (H, W) displacements in pixels (positive dx moves the content to larger x).

    Returns:
        float64 array (H, W). Outside the image the edge value is repeated.
    """
    image = np.asarray(image, dtype=np.float64)
    h, w = image.shape
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    return ndimage.map_coordinates(image, [ys - dy, xs - dx], order=3, mode="nearest")


def apply_sample(reference, dx, dy, transmission) -> np.ndarray:
    """Eq. 1: the sample image ``T * I_r(y - dy, x - dx)``."""
    return np.asarray(transmission) * warp(reference, dx, dy)


def displacement_from_phase(phase, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dy) in pixels from a phase map (rad): ``wavelength z / (2 pi p^2) * grad(phi)``."""
    dphi_dy, dphi_dx = np.gradient(phase)
    return geometry.dphi_to_displacement(dphi_dx), geometry.dphi_to_displacement(dphi_dy)


def add_poisson_noise(image, photons: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson noise at ``photons`` per pixel for unit intensity; returned in intensity units."""
    if not (np.isfinite(photons) and photons > 0):
        raise ValueError(f"photons must be a positive number of photons per pixel, got {photons!r}")
    return rng.poisson(np.clip(image, 0, None) * photons) / photons


def default_geometry(phantom: str) -> Geometry:
    """The set-up a phantom is simulated in when none is given.

    The lens and the bug: ``Geometry()``, the seed's lens experiment (14 keV, 0.65 um,
    500 mm).  The others: :meth:`Geometry.training` (the seed's simulation wavelength, 60 mm
    to the detector: the random phantoms give displacements up to ~5.5 px unless scaled
    with ``max_shift_px``).
    """
    return Geometry() if phantom in ("lens", "bug") else Geometry.training()


def make_phantom(phantom: str, shape, geometry: Geometry, rng: np.random.Generator, **kwargs):
    """Dispatch to the named phantom; returns ``(phase, transmission, support)``."""
    _check_phantom_kwargs(phantom, kwargs)
    if phantom == "random":
        return phantoms.random_phantom(shape, rng, **kwargs)
    if phantom == "lens":
        return phantoms.lens_phantom(shape, geometry, **kwargs)
    if phantom == "bug":
        return phantoms.bug_phantom(shape, geometry, **kwargs)
    if phantom == "blobs":
        return phantoms.blob_phantom(shape, rng, **kwargs)
    if phantom == "quadratic":
        return phantoms.quadratic_phantom(shape, rng, **kwargs)
    if phantom == "uniform":
        return phantoms.uniform_phantom(shape, rng, **kwargs)
    raise ValueError(f"unknown phantom {phantom!r}; expected one of {', '.join(map(repr, PHANTOMS))}")


def scale_phase_to_shift(phase, geometry: Geometry, max_shift_px: float, max_strain: float | None = None):
    """Scale ``phase`` so that its largest displacement is ``max_shift_px`` pixels.

    With ``max_strain``, the scale is lowered where needed so that no displacement gradient
    exceeds it (|d(dx)/dx| etc.; at 1 the speckle folds over itself and no tracker can
    follow it).  Returns the scaled phase.
    """
    dx, dy = displacement_from_phase(phase, geometry)
    peak = float(np.sqrt(dx**2 + dy**2).max())
    if peak <= 0:
        return np.zeros_like(phase)
    factor = float(max_shift_px) / peak
    if max_strain is not None:
        strain = max(float(np.abs(np.gradient(dx)).max()), float(np.abs(np.gradient(dy)).max()))
        if strain * factor > max_strain:
            factor = max_strain / strain
    return phase * factor


#: Seeds are recorded in a netCDF attribute (a signed 64-bit integer).
MAX_SEED = 2**63 - 1
#: Poisson noise above this many photons per pixel is negligible (and beyond numpy's sampler).
MAX_PHOTONS = 1e12
#: Largest simulation grid side (image plus the Fresnel margins) before oversampling.
MAX_GRID = 16384


def _check_phantom_kwargs(phantom: str, kwargs: dict) -> None:
    """Unknown options of a phantom, or numeric options given something else: one clear ValueError."""
    import inspect

    func = {"random": phantoms.random_phantom, "lens": phantoms.lens_phantom, "bug": phantoms.bug_phantom,
            "blobs": getattr(phantoms, "blob_phantom", None), "quadratic": getattr(phantoms, "quadratic_phantom", None),
            "uniform": getattr(phantoms, "uniform_phantom", None)}.get(phantom)
    if func is None or not kwargs:
        return
    params = dict(list(inspect.signature(func).parameters.items())[2:])
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(map(repr, unknown))} for phantom {phantom!r}; "
                         f"it takes {', '.join(params) or 'none'} (and the simulator's own options)")
    for name, value in kwargs.items():
        default = params[name].default
        numeric = default is None or (isinstance(default, (int, float)) and not isinstance(default, bool))
        if numeric and value is not None and not (
                isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
                and np.isfinite(value)):
            raise ValueError(f"{phantom} phantom option {name} must be a finite number, got {value!r}")


def _rngs(seed):
    """Separate streams for the speckle generator, the sample and the noise (a change of pitch
    draws another number of mask cells but leaves the phantom and the noise as they were)."""
    if seed is None:
        seq = np.random.SeedSequence()
    else:
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be None or an integer from 0 to 2**63 - 1, got {type(seed).__name__} {seed!r}")
        seq = np.random.SeedSequence(int(seed))
    return [np.random.default_rng(s) for s in seq.spawn(3)]


def _check_args(size, pitch, photons, geometry):
    if isinstance(size, (tuple, list)):
        if len(size) != 2 or any(isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) for s in size):
            raise ValueError(f"size must be an int or (height, width) of ints, got {size!r}")
        shape = tuple(int(s) for s in size)
    elif isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        shape = (int(size), int(size))
    else:
        raise ValueError(f"size must be an int or (height, width), got {size!r}")
    if min(shape) < 64:
        raise ValueError(f"size must be at least 64 px, got {shape[0]}x{shape[1]}")
    if max(shape) > 8192:
        raise ValueError(f"size must be at most 8192 px, got {shape[0]}x{shape[1]}")
    if isinstance(pitch, bool) or not isinstance(pitch, (int, float, np.integer, np.floating)) \
            or not np.isfinite(pitch) or pitch < 1 or pitch > min(shape) // 4:
        raise ValueError(f"pitch must be a number of pixels from 1 to size/4, got {pitch!r}")
    if photons is not None and not (isinstance(photons, (int, float, np.integer, np.floating)) and not isinstance(photons, bool)
                                    and np.isfinite(photons) and 0 < photons <= MAX_PHOTONS):
        raise ValueError(f"photons must be None or a number of photons per pixel from 0 to {MAX_PHOTONS:g} "
                         f"(beyond, the noise is negligible), got {photons!r}")
    if geometry is not None and not isinstance(geometry, Geometry):
        raise ValueError(f"geometry must be a spinnet_lite.Geometry, got {type(geometry).__name__}")
    return shape


#: Extra reference around the image, so a displacement of up to this many pixels samples
#: simulated speckle rather than a repeated edge.
WARP_MARGIN = 16


def simulate_arrays(size=256, pitch: float = 4, seed=None, phantom: str = "random", photons=None,
                    geometry: Geometry | None = None, mask_phase: float = MASK_PHASE, blur_px: float = 0.6,
                    distance_mm: float | None = None, speckle: str = "mask", grain_px: float = 3.0,
                    diffuser_phase_rms: float = 2.0, oversample: int | None = None, visibility: float | None = None,
                    flat_field: float = 0.0, texture: float = 0.0, max_shift_px: float | None = None,
                    max_strain: float | None = None, forward: str = "eq1", **phantom_kwargs) -> dict[str, np.ndarray]:
    """As :func:`simulate_pair` but returns plain float32 numpy arrays (the training data path)."""
    shape = _check_args(size, pitch, photons, geometry)
    if forward not in FORWARD_MODELS:
        raise ValueError(f"unknown forward model {forward!r}; expected one of {', '.join(map(repr, FORWARD_MODELS))}")
    for name, value, lo, hi in (("flat_field", flat_field, 0.0, 0.5), ("texture", texture, 0.0, 5.0),
                                ("mask_phase", mask_phase, -100.0, 100.0), ("blur_px", blur_px, 0.0, 64.0)):
        if not (isinstance(value, (int, float, np.number)) and np.isfinite(value) and lo <= value <= hi):
            raise ValueError(f"{name} must be a number from {lo} to {hi}, got {value!r}")
    if max_shift_px is not None and not (np.isfinite(max_shift_px) and 0 <= max_shift_px <= 64):
        raise ValueError(f"max_shift_px must be from 0 to 64 pixels, got {max_shift_px!r}")
    if phantom == "uniform" and max_shift_px is None:
        raise ValueError("phantom 'uniform' needs max_shift_px (the size of the uniform shift in pixels)")
    geometry = geometry or default_geometry(phantom)
    rng_speckle, rng_sample, rng_noise = _rngs(seed)
    if forward == "wave" and visibility is not None:
        raise ValueError("visibility cannot be set with forward='wave' (lower it with blur_px or the distance)")
    m = WARP_MARGIN
    big = (shape[0] + 2 * m, shape[1] + 2 * m)
    generator = dict(pitch=pitch, mask_phase=mask_phase, speckle=speckle, grain_px=grain_px,
                     diffuser_phase_rms=diffuser_phase_rms, oversample=oversample)
    phase, transmission, support = make_phantom(phantom, shape, geometry, rng_sample, **phantom_kwargs)
    if max_shift_px is not None:
        phase = scale_phase_to_shift(phase, geometry, max_shift_px, max_strain)
    if texture:
        transmission = transmission * phantoms.absorbing_texture(shape, rng_sample, texture)
    if flat_field:
        transmission = transmission * flat_field_drift(shape, flat_field, rng_sample)
    dx, dy = displacement_from_phase(phase, geometry)
    if forward == "eq1":
        # the wave simulated on the fine grid, warped there (Eq. 1), then binned and blurred
        fine, os_, margin = reference_image(big, geometry, rng_speckle, distance_mm=distance_mm, fine=True,
                                            **generator)
        edge = (margin + m) * os_
        reference, sample = detect_fine_pair(fine, dx, dy, os_, edge, blur_px)
        if visibility is not None:  # linear in the intensity: the same change for both images
            factor = visibility / rms_visibility(reference)
            mean = reference.mean()
            reference, sample = mean + (reference - mean) * factor, mean + (sample - mean) * factor
            if factor > 1 and min(reference.min(), sample.min()) < 0:
                raise ValueError(f"visibility {visibility:.3g} is too far above this speckle's own "
                                 f"{visibility / factor:.3g}: intensities would turn negative")
        sample = transmission * sample
    else:
        reference, sample = wave_pair(shape, geometry, rng_speckle, phase, transmission, blur_px=blur_px,
                                      distance_mm=distance_mm, **generator)
    if photons is not None:
        reference = add_poisson_noise(reference, photons, rng_noise)
        sample = add_poisson_noise(sample, photons, rng_noise)
    out = dict(reference=reference, sample=sample, dx=dx, dy=dy, transmission=transmission, phase=phase,
               support=support)
    return {k: v.astype(np.float32) for k, v in out.items()}


_VARIABLES = {
    "reference": ("1", "reference speckle intensity (no sample)"),
    "sample": ("1", "sample speckle intensity"),
    "dx": ("px", "horizontal speckle displacement"),
    "dy": ("px", "vertical speckle displacement"),
    "transmission": ("1", "sample intensity transmission"),
    "phase": ("rad", "sample phase shift"),
    "support": ("1", "1 where the sample is, 0 in sample-free regions"),
}


def to_dataset(arrays: dict, geometry: Geometry, attrs: dict | None = None) -> xr.Dataset:
    """Wrap (H, W) arrays into a Dataset with (y, x) coordinates in micrometres and units."""
    any_arr = next(iter(arrays.values()))
    h, w = any_arr.shape
    p = geometry.pixel_size_um
    coords = {
        "y": ("y", np.arange(h) * p, {"units": "um", "long_name": "y"}),
        "x": ("x", np.arange(w) * p, {"units": "um", "long_name": "x"}),
    }
    data_vars = {}
    for name, arr in arrays.items():
        units, long_name = _VARIABLES.get(name, ("1", name))
        data_vars[name] = (("y", "x"), arr, {"units": units, "long_name": long_name})
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update(geometry.to_attrs())
    ds.attrs.update(attrs or {})
    return ds


def simulate_pair(size=256, pitch: float = 4, seed=None, phantom: str = "random", photons=None,
                  geometry: Geometry | None = None, **kwargs) -> xr.Dataset:
    """Simulate one reference/sample speckle pair with its ground truth.

    Args:
        size: image size in pixels (int or (height, width)), at least 64.
        pitch: mask cell size in pixels (may be fractional; the mask is drawn on a finer grid).
        seed: random seed; the same seed gives the same pair.  The speckle generator, the
            sample and the noise draw from separate streams of it, so changing only the pitch
            (or the speckle generator) keeps the same phantom.
        phantom: "random" (the seed's training phantoms: texture x Bezier contour), "lens"
            (parabolic Be lens), "bug", "blobs" (smooth Gaussian bumps), "quadratic" (random
            lens / cylinder / saddle, off centre) or "uniform" (one uniform shift; needs
            ``max_shift_px``).
        photons: Poisson noise at this many photons per pixel (None: noiseless).
        geometry: the set-up; default :func:`default_geometry` (``Geometry()`` -- 14 keV,
            0.65 um, 500 mm -- for "lens" and "bug", :meth:`Geometry.training` otherwise).
        **kwargs: ``forward``: "eq1" (the default: the sample image is the reference warped by
            the displacement, seed Eq. 1) or "wave" (full Fresnel propagation through mask and
            sample in their order along the beam; the ground-truth dx, dy are still the phase
            gradients, so the difference measures what Eq. 1 omits);
            the speckle generator: ``speckle`` ("mask" or "diffuser"), ``grain_px``
            (diffuser grain), ``diffuser_phase_rms`` (rad), ``mask_phase`` (rad),
            ``distance_mm`` (mask-to-detector, overrides the geometry's), ``blur_px``
            (detector and source blur, sigma in px), ``oversample`` (sub-pixels per pixel of
            the wave simulation), ``visibility`` (lower the reference's rms contrast to this);
            the sample: ``max_shift_px`` (scale the phase so the largest displacement is this),
            ``max_strain`` (and keep displacement gradients below this), ``texture``
            (absorbing non-speckle structure in T, strength), ``flat_field`` (a smooth
            illumination change between reference and sample of this relative amplitude; it is
            part of the returned ``transmission``, which is the sample/reference intensity
            ratio apart from the speckle); and the phantom's own options (e.g.
            ``phase_amplitude``, ``transmission_amplitude`` for "random", ``angle_rad`` for "bug").

    Returns:
        xarray.Dataset with ``reference``, ``sample``, ``dx``, ``dy`` (px), ``transmission``,
        ``phase`` (rad) and ``support``, dims ``(y, x)``, coordinates in micrometres, the
        geometry and the simulation parameters in ``attrs``.
    """
    if not isinstance(phantom, str) or phantom not in PHANTOMS:
        raise ValueError(f"unknown phantom {phantom!r}; expected one of {', '.join(map(repr, PHANTOMS))}")
    _check_args(size, pitch, photons, geometry)
    geometry = dataclasses.replace(geometry or default_geometry(phantom), mask_pitch_px=float(pitch))
    arrays = simulate_arrays(size, pitch, seed, phantom, photons, geometry, **kwargs)
    attrs = {"phantom": phantom, "pitch_px": float(pitch), "seed": -1 if seed is None else int(seed),
             "photons_per_px": 0.0 if photons is None else float(photons),
             "visibility_rms": rms_visibility(arrays["reference"]),
             "title": f"spinnet_lite simulated {phantom} pair"}
    for k, v in kwargs.items():
        if isinstance(v, (int, float, str)) and not isinstance(v, bool):
            attrs[k] = v
    return to_dataset(arrays, geometry, attrs)
