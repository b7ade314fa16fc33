"""Aligning the reference to the sample around the network's pass: a global offset first, and
for large fields a second pass on what the first one left.

Real pairs often carry one offset over the whole field: the mask or the diffuser drifts
between the reference and the sample exposure, or the reference was taken at another stage
position.  The network's coarsest level sees +-24 px but was trained on smooth fields, and a
uniform shift above ~10 px is where it fails (``make evaluate``: 12 px).  Correlation finds a
global offset exactly and cheaply.  :func:`spinnet_lite.tiling.predict_tiled` (and so
``reconstruct``) does, around the network's pass:

1. :func:`global_offset` -- the whole-pixel lag of the peak of the cross-correlation of the
   two images, each high-passed and normalised by its local contrast (so that the speckle, not
   the sample's absorption or the illumination, decides), on a central crop of at most
   ``max_size`` px, with a window against edge effects.  It is accepted only where the
   correlation at that lag is clearly higher than at zero lag and the lag is at least
   :data:`MIN_OFFSET` px; else ``(0, 0)`` (smooth fields, lenses, small shifts: the network
   alone is accurate there, and its output is left exactly as it was).
2. :func:`shift_image` moves the *reference* by that offset (edge pixels repeated), so that the
   network sees only the residual field, still in the sample's coordinates; the offset is
   added back to ``dx`` and ``dy``.  The transmission needs no change.
3. **Residual passes** (:func:`warp_reference`).  The network is most accurate on small fields;
   on wide smooth fields of several px it under-estimates slightly (a few hundredths of a px
   that grow with the displacement), an error that is smooth and so survives phase
   integration: on a simulated Be lens it is most of the residual after the best paraboloid.
   A second pass warps the reference by the (smoothed) first estimate and runs the network on
   the pair again; what it finds is the residual, added to the estimate.  Each pass costs one
   more network pass plus a cubic warp.  The estimate is smoothed only lightly
   (:data:`SMOOTH_SIGMA`): a wider smoothing suits smooth fields better but makes a second
   pass worse than none on the sharp edges of the seed's random phantoms (where a second pass
   gains little either way).  ``passes="auto"`` makes a second pass where the first found a
   *wide* field -- half of the image moved by at least :data:`AUTO_MIN_MEDIAN` px (a lens, a
   tilt, a drift, a broad bump), where the error that grows with the displacement matters --
   and keeps the one-pass speed elsewhere (sharp-edged samples, small fields).
   ``python tools/passes_probe.py`` prints what each
   number of passes gives on a wave-optics lens, smooth fields, a random phantom and a still
   pair, and what ``"auto"`` chose.

Sign convention as everywhere (DESIGN.md): ``sample(y, x) = T * reference(y - dy, x - dx)``,
so a positive offset means the speckle moved to larger ``x`` / ``y``.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Smallest offset (px) that is applied; below it the network's own estimate is accurate
#: (uniform shifts of 0.3-4 px: 0.04-0.09 px rms in the operating-range sweep).
MIN_OFFSET = 3
#: The correlation peak must beat the zero-lag correlation by this factor ...
MIN_GAIN = 1.5
#: ... and be at least this correlation coefficient.
MIN_PEAK = 0.1
#: Gaussian width (px) of the local mean and contrast taken out before correlating.
SIGMA = 8.0
#: ``passes="auto"``: a second pass when the median of the first pass's displacement length
#: (global offset taken out) is at least this (px).
AUTO_MIN_MEDIAN = 1.0
#: Gaussian width (px) of the smoothing of an estimate before the reference is warped by it
#: (measured with the weights of commit 8b61267 on 256 px pairs, rms error after two passes vs
#: one: random phantoms 0.049 -> 0.048 and 0.091 -> 0.087 px at 2 px, 0.056 and 0.116 at 4 px;
#: an 8 px blob field 0.131 -> 0.080 at 2 px, 0.065 at 4 px).
SMOOTH_SIGMA = 2.0
#: Rows warped at a time by :func:`warp_reference` (bounds its memory on large frames).
BAND_ROWS = 256


def _whiten(*images: np.ndarray) -> list[np.ndarray]:
    """Each image high-passed and locally contrast-normalised (float32): speckle, not illumination.

    The Gaussian local statistics are those of the network's input normalisation
    (:func:`spinnet_lite.model.normalize.local_mean`, torch, reflect edges), all images in one
    batch: ~10x quicker than ``scipy.ndimage.gaussian_filter`` on the same 2 cores.
    """
    import torch

    from .model.normalize import local_mean

    with torch.inference_mode():
        x = torch.from_numpy(np.stack([np.asarray(im, dtype=np.float32) for im in images]))[:, None]
        high = x - local_mean(x, SIGMA)
        spread = torch.sqrt(local_mean(high * high, SIGMA).clamp_min(0))
        floor = 1e-6 * spread.amax(dim=(1, 2, 3), keepdim=True) + 1e-30
        high = high / torch.maximum(spread, floor)
        return [h[0].numpy() for h in high]


def global_offset(reference, sample, max_size: int = 1024, max_shift: int | None = None) -> tuple[int, int]:
    """The whole-pixel offset ``(dy, dx)`` of the sample's speckle relative to the reference.

    Args:
        reference, sample: ``(H, W)`` intensity images of one shape.
        max_size: side of the central crop correlated (a global offset is the same everywhere).
        max_shift: largest offset searched, px (default a quarter of the crop).

    Returns:
        ``(dy, dx)`` integers; ``(0, 0)`` when no clear global offset of at least
        :data:`MIN_OFFSET` px is there.
    """
    ref, sam = np.asarray(reference), np.asarray(sample)
    if ref.shape != sam.shape or ref.ndim != 2:
        raise ValueError(f"global_offset: two 2-D images of one shape expected, got {ref.shape} and {sam.shape}")
    h, w = min(ref.shape[0], max_size), min(ref.shape[1], max_size)
    y0, x0 = (ref.shape[0] - h) // 2, (ref.shape[1] - w) // 2
    crop = (slice(y0, y0 + h), slice(x0, x0 + w))
    window = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    a, b = (im * window for im in _whiten(ref[crop], sam[crop]))
    norm = float(np.sqrt(np.sum(a * a) * np.sum(b * b)))
    if not norm > 0:
        return 0, 0
    # c(t) = sum_x a(x) b(x + t): the peak is at t = the offset of the sample
    corr = np.fft.irfft2(np.conj(np.fft.rfft2(a)) * np.fft.rfft2(b), s=(h, w)) / norm
    limit = max(h, w) // 4 if max_shift is None else int(max_shift)
    lag_y = np.fft.fftfreq(h, 1.0 / h).astype(int)
    lag_x = np.fft.fftfreq(w, 1.0 / w).astype(int)
    outside = (np.abs(lag_y)[:, None] > limit) | (np.abs(lag_x)[None, :] > limit)
    corr[outside] = -np.inf
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
    dy, dx = int(lag_y[iy]), int(lag_x[ix])
    peak, zero = float(corr[iy, ix]), float(corr[0, 0])
    if max(abs(dy), abs(dx)) < MIN_OFFSET or peak < MIN_PEAK or peak < MIN_GAIN * max(zero, 0.0):
        return 0, 0
    return dy, dx


def shift_image(image: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """``out(y, x) = image(y - dy, x - dx)`` for whole-pixel ``(dy, dx)``; edge pixels repeated."""
    dy, dx = (int(v) for v in offset)
    h, w = image.shape
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError(f"shift_image: offset {offset} is not smaller than the image {image.shape}")
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return image[rows[:, None], cols[None, :]]


def field_extent(dx: np.ndarray, dy: np.ndarray, offset=(0, 0), step: int = 4, percentile: float = 50.0) -> float:
    """A percentile (default the median, px) of the displacement length after the global
    ``offset``, on every ``step``-th pixel."""
    ex = np.asarray(dx[::step, ::step], dtype=np.float32) - np.float32(offset[1])
    ey = np.asarray(dy[::step, ::step], dtype=np.float32) - np.float32(offset[0])
    return float(np.percentile(np.hypot(ex, ey), percentile))


def smooth_field(field: np.ndarray, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    """A displacement map smoothed by a Gaussian of ``sigma`` px (float32, edges repeated)."""
    return ndimage.gaussian_filter(np.asarray(field, dtype=np.float32), sigma, mode="nearest")


def warp_reference(reference: np.ndarray, dx: np.ndarray, dy: np.ndarray, band_rows: int = BAND_ROWS) -> np.ndarray:
    """``out(y, x) = reference(y - dy, x - dx)``: the reference moved by a displacement field.

    Cubic-spline interpolation (the spline coefficients once, then the image in bands of
    ``band_rows`` rows, so a 4096 px frame needs a few hundred MB), edges mirrored.  The result
    is float32 of the reference's shape.
    """
    ref = np.asarray(reference)
    if ref.shape != np.shape(dx) or ref.shape != np.shape(dy):
        raise ValueError(f"warp_reference: the field {np.shape(dx)} / {np.shape(dy)} does not match "
                         f"the image {ref.shape}")
    # float32 coefficients: a 4096 px frame's spline costs 67 MB, not 134
    coeffs = ndimage.spline_filter(ref, order=3, mode="mirror", output=np.float32)
    h, w = ref.shape
    out = np.empty((h, w), np.float32)
    cols = np.arange(w, dtype=np.float32)[None, :]
    for y0 in range(0, h, band_rows):
        y1 = min(h, y0 + band_rows)
        rows = np.arange(y0, y1, dtype=np.float32)[:, None]
        coords = np.stack([rows - dy[y0:y1], cols - dx[y0:y1]])
        ndimage.map_coordinates(coeffs, coords, output=out[y0:y1], order=3, mode="mirror", prefilter=False)
    return out
