"""A Lucas-Kanade step after the network: the slowly varying part of the displacement, tracked.

The network's error on small fields is mostly smooth (``tools/eq4_probe.py``: a 4 px low-pass
of it keeps ~45 % of its square): a field of 0.05-0.2 px comes out 5-15 % too small along a
contour, and a uniform shift of 0.02 px about half its size. Near the network's answer the
speckle moves by a small residual, where the forward model can be linearised, so a classical
step finds that residual (Lucas & Kanade 1981, with a local transmission as in UMPA, Zdora et
al. 2017). In a Gaussian window of ``sigma`` px around each pixel::

    sample(x) ~ a * (R(x) + Jx(x) * ex + Jy(x) * ey),   R = reference warped by the estimate d,

with ``J = dR/dd`` (central differences of the warp, +-0.5 px); weighted least squares for
``(a, a ex, a ey)`` per pixel gives the residual ``(ex, ey)``, which is added to ``d``; a is a
local transmission, so absorption does not bias the shift. The window averages the residual,
so the step corrects what varies over more than ~``sigma`` px and leaves the finer detail to the
network (an error of the network that varies faster stays). The reference is read as the
network's finest level reads it, ``warp(..., mode="oversampled")`` (``model/warp.py``).

This is a deviation from the seed (notebook 03), on by default in :func:`spinnet_lite.reconstruct`
(``lk_sigma``; ``lk_sigma=0`` gives the network alone).

Shapes: images ``(H, W)``; displacements in pixels, forward-model sign (``sample(y, x) =
T reference(y - dy, x - dx)``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .model.normalize import gaussian_kernel
from .model.warp import pixel_grid, read_upsampled, upsample2_midpoints

#: Window (Gaussian sigma, px) and iterations of the step that ``reconstruct`` runs by default.
DEFAULT_SIGMA = 6.0
DEFAULT_ITERATIONS = 2
#: A per-pixel step larger than this (px), or one from a window without the texture to fix it,
#: is not taken: the linearised model holds only near the answer.
MAX_STEP_PX = 1.0
#: Least gradient energy of a window, relative to its intensity energy, for a step: a speckle
#: of 1 % contrast has ~1e-4, float32's rounding of a flat image ~1e-14.
MIN_TEXTURE = 1e-8
#: Rows per band of the least-squares stage (memory: ~10 float32 maps of a band).
BAND_ROWS = 256


def check_sigma(sigma, what: str = "lk_sigma") -> float:
    """``sigma`` as a float: 0 or None (off) or a window of 1-64 px; a clear ValueError otherwise."""
    if sigma is None:
        return 0.0
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(sigma)) or not (float(sigma) == 0.0 or 1.0 <= float(sigma) <= 64.0):
        raise ValueError(f"{what}: expected 0 or None (off) or a Gaussian window of 1 to 64 px, got {sigma!r}")
    return float(sigma)


def check_iterations(iterations, what: str = "lk_iterations") -> int:
    """``iterations`` as an int from 1 to 8; a clear ValueError otherwise."""
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or not 1 <= iterations <= 8:
        raise ValueError(f"{what}: expected an integer from 1 to 8 (Lucas-Kanade steps), got {iterations!r}")
    return int(iterations)


def gaussian_blur(maps: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``(1, C, H, W)`` maps, each blurred by the separable ``kernel`` (edges mirrored)."""
    radius = (kernel.numel() - 1) // 2
    channels = maps.shape[1]
    mode = "reflect" if min(maps.shape[-2:]) > radius else "replicate"
    x = F.pad(maps, (radius, radius, 0, 0), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    x = F.pad(x, (0, 0, radius, radius), mode=mode)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def _solve3(m: torch.Tensor, v: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel, the symmetric 3 x 3 system ``m`` (6 maps: 00 01 02 11 12 22) times
    ``(a, b1, b2)`` = ``v`` (3 maps), by Cramer's rule, with ``ridge`` times the
    trace of the shift block added to its diagonal.  Returns the step ``(b1 / a, b2 / a)``
    ``(2, h, w)`` and a mask of the pixels where it is defined."""
    m00, m01, m02, m11, m12, m22 = m
    trace = m11 + m22
    m11 = m11 + ridge * trace
    m22 = m22 + ridge * trace
    c00 = m11 * m22 - m12 * m12
    c01 = m02 * m12 - m01 * m22
    c02 = m01 * m12 - m02 * m11
    det = m00 * c00 + m01 * c01 + m02 * c02
    c11 = m00 * m22 - m02 * m02
    c12 = m01 * m02 - m00 * m12
    c22 = m00 * m11 - m01 * m01
    a = c00 * v[0] + c01 * v[1] + c02 * v[2]
    b1 = c01 * v[0] + c11 * v[1] + c12 * v[2]
    b2 = c02 * v[0] + c12 * v[1] + c22 * v[2]
    # det and a carry the same factor: the step is b / a, defined where the window has texture
    # (gradient energy well above float32's rounding of a flat image), the fit found a
    # transmission of the right sign and the system is not singular
    scale = (m00 * trace).abs() * trace.abs()
    valid = (trace > MIN_TEXTURE * m00.abs()) & (det.abs() > 1e-9 * scale) & (a * torch.sign(det) > 0)
    a_safe = torch.where(valid, a, torch.ones_like(a))
    step = torch.stack([b1 / a_safe, b2 / a_safe])
    return step, valid


def read_reference(reference: torch.Tensor, source: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``reference / scale`` read at ``source`` ``(1, 2, h, w)`` (x, y pixel coordinates) as
    ``warp(..., mode="oversampled")`` reads it (bilinear on the Catmull-Rom 2x upsampling),
    except that reads beyond the image repeat the border on every side (``upsample2_midpoints``
    extrapolates one sample past the last pixel), so the step is mirror-symmetric.  Only the
    rows the reads reach are upsampled: a large frame never needs its whole 2x copy."""
    height = reference.shape[-2]
    top, bottom = float(source[:, 1].min()), float(source[:, 1].max())
    if not (math.isfinite(top) and math.isfinite(bottom)):
        top, bottom = 0.0, height - 1.0
    first = min(max(math.floor(top), 0), height - 1)
    last = min(max(math.ceil(bottom), 0), height - 1)
    lo, hi = max(0, first - 1), min(height, last + 3)  # the Catmull-Rom midpoints' context
    block = upsample2_midpoints(reference[..., lo:hi, :].to(torch.float32)) / scale
    if hi == height:
        block[..., -1, :] = block[..., -2, :]
    block[..., :, -1] = block[..., :, -2]
    offset = torch.tensor([0.0, float(lo)], dtype=source.dtype, device=source.device).view(1, 2, 1, 1)
    return read_upsampled(block, source - offset)


def source_rows(displacement: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Where rows ``lo:hi`` read the reference: their pixel coordinates minus ``displacement``
    ``(1, 2, H, W)`` there, ``(1, 2, hi - lo, W)`` (x, y)."""
    source = pixel_grid(hi - lo, displacement.shape[-1], displacement.device, displacement.dtype)
    source[:, 1] += lo
    return source - displacement[..., lo:hi, :]


def fit_products(reference: torch.Tensor, sample: torch.Tensor, displacement: torch.Tensor, lo: int, hi: int,
                 scale: float = 1.0) -> torch.Tensor:
    """The per-pixel products whose window sums make the step's least-squares system, rows
    ``lo:hi``: with ``r`` the reference (``/ scale``) warped by ``displacement``, ``gx``,
    ``gy`` its derivatives in dx and dy (central differences of the warp, +-0.5 px) and ``s``
    the sample (``/ scale``), the ``(1, 9, hi - lo, W)`` float32 maps ``r r, r gx, r gy, gx gx,
    gx gy, gy gy, r s, gx s, gy s``.  Images ``(1, 1, H, W)``, displacement ``(1, 2, H, W)``."""
    h = 0.5  # the derivative's half step: one sample of the upsampled grid
    shifts = torch.tensor([[0.0, 0.0], [-h, 0.0], [h, 0.0], [0.0, -h], [0.0, h]], dtype=displacement.dtype,
                          device=displacement.device)
    source = source_rows(displacement, lo, hi)
    # the reference at d, d + (h, 0), d - (h, 0), d + (0, h), d - (0, h): one read, stacked in rows
    reads = read_reference(reference, torch.cat([source + shift.view(1, 2, 1, 1) for shift in shifts], -2), scale)
    r, x_minus, x_plus, y_minus, y_plus = reads.split(hi - lo, dim=-2)
    gx = (x_minus - x_plus) / (2 * h)  # d/d(dx) of the reference warped by d
    gy = (y_minus - y_plus) / (2 * h)
    s = sample[..., lo:hi, :].to(torch.float32) / scale
    return torch.cat([r * r, r * gx, r * gy, gx * gx, gx * gy, gy * gy, r * s, gx * s, gy * s], 1)


def lk_step(reference: torch.Tensor, sample: torch.Tensor, displacement: torch.Tensor, sigma: float,
            ridge: float = 1e-3, band_rows: int = BAND_ROWS, scale: float = 1.0) -> torch.Tensor:
    """One Lucas-Kanade update of ``displacement``.

    Args:
        reference, sample: ``(1, 1, H, W)`` float32 or float64 intensities (``H`` and ``W``
            even; read a band at a time, in float32); both are divided by ``scale`` (e.g. the
            reference's mean, so the fit's numbers are ~1).
        displacement: ``(1, 2, H, W)`` (dx, dy) in pixels, the current estimate.
        sigma: Gaussian window (px).
        ridge: Tikhonov term on the shift, relative to the window's gradient energy.
        band_rows: rows formed at a time (plus the window's reach), which bounds the memory.
    Returns:
        ``displacement`` itself, updated in place: the estimate plus the residual found (0 where
        the window cannot fix it or the step exceeds :data:`MAX_STEP_PX`).
    """
    # The window's sums vary over ~sigma px: they are formed on a 2 x 2-pooled grid (the
    # products averaged over each 2 x 2 block, then blurred by sigma / 2), solved there and
    # the step read back bilinearly: a quarter of the work, the same answer.
    kernel = gaussian_kernel(sigma / 2, sample.device, torch.float32)
    halo = (kernel.numel() - 1) // 2  # pooled rows
    height = sample.shape[-2]
    band = 2 * max(1, band_rows // 2)
    steps = []
    for y0 in range(0, height, band):
        y1 = min(height, y0 + band)
        lo, hi = max(0, y0 - 2 * halo), min(height, y1 + 2 * halo)
        sums = F.avg_pool2d(fit_products(reference, sample, displacement, lo, hi, scale), 2)
        first = (y0 - lo) // 2
        sums = gaussian_blur(sums, kernel)[0, :, first : first + (y1 - y0) // 2]
        step, valid = _solve3(sums[:6], sums[6:], ridge)
        valid &= step.abs().amax(0) <= MAX_STEP_PX
        steps.append(torch.where(valid, step, torch.zeros_like(step)))
    _add_upsampled(displacement, torch.cat(steps, 1).to(displacement.dtype), band // 2)
    return displacement


def _add_upsampled(displacement: torch.Tensor, pooled: torch.Tensor, band: int) -> None:
    """``displacement (1, 2, H, W) += pooled (2, H/2, W/2)`` upsampled 2x bilinearly
    (``align_corners=False``), in bands of ``band`` pooled rows with one row of context each
    (the same numbers as one upsampling of the whole map, without its full-size copy)."""
    rows = pooled.shape[-2]
    for j0 in range(0, rows, band):
        j1 = min(rows, j0 + band)
        lo, hi = max(0, j0 - 1), min(rows, j1 + 1)
        up = F.interpolate(pooled[None, :, lo:hi], scale_factor=2, mode="bilinear", align_corners=False)
        displacement[..., 2 * j0 : 2 * j1, :] += up[..., 2 * (j0 - lo) : 2 * (j1 - lo), :]


def lk_refine(reference, sample, dx, dy, sigma: float = DEFAULT_SIGMA, iterations: int = DEFAULT_ITERATIONS,
              device=None) -> tuple[np.ndarray, np.ndarray]:
    """Refine a displacement field by ``iterations`` Lucas-Kanade steps (module docstring).

    Args:
        reference, sample: ``(H, W)`` intensity images (any common scale).
        dx, dy: ``(H, W)`` the current estimate (px), e.g. the network's.
        sigma: Gaussian window (px), 1-64.
        iterations: steps, 1-8.
        device: torch device (default CPU).
    Returns:
        ``(dx, dy)``, new float32 ``(H, W)`` arrays.
    Raises:
        ValueError: a bad ``sigma`` or ``iterations``, images and fields of different or not
            2-D shapes, a reference whose mean is not positive.
    """
    field = stack_field(reference, sample, dx, dy, "lk_refine")
    refine_field(reference, sample, field, sigma, iterations, device)
    return field[0], field[1]


def stack_field(reference, sample, dx, dy, what: str) -> np.ndarray:
    """``dx``, ``dy`` as a new C-contiguous float32 ``(2, H, W)`` field for a refinement in place,
    after checking that the four are 2-D of one shape (a clear ValueError prefixed ``what``)."""
    shape = np.shape(reference)
    if any(np.shape(a) != shape for a in (sample, dx, dy)) or len(shape) != 2:
        raise ValueError(f"{what}: reference, sample, dx and dy must be 2-D of one shape, got "
                         f"{[np.shape(a) for a in (reference, sample, dx, dy)]}")
    return np.ascontiguousarray(np.stack([np.asarray(dx, dtype=np.float32), np.asarray(dy, dtype=np.float32)]))


def frame_tensor(a, shape: tuple[int, int], device) -> torch.Tensor:
    """An ``(H, W)`` image or a ``(C, H, W)`` stack of ``shape`` as a ``(1, C, H, W)`` tensor on
    ``device``: no copy of a C-contiguous float32 or float64 CPU array (other types become float32)."""
    a = np.asarray(a)
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=None if a.dtype in (np.float32, np.float64) else np.float32))
    return t.reshape(1, -1, *shape).to(device)


def check_field_inputs(reference, sample, field: np.ndarray, what: str) -> tuple[tuple[int, int], float]:
    """The shape of two 2-D images of one shape and the reference's mean (the scale both are
    divided by), for a refinement of ``field`` in place: a writeable C-contiguous float32
    ``(2, H, W)`` array; a clear ValueError (prefixed ``what``) otherwise."""
    shape = np.shape(reference)
    if np.shape(sample) != shape or len(shape) != 2:
        raise ValueError(f"{what}: reference and sample must be 2-D of one shape, got {shape} and {np.shape(sample)}")
    if not (isinstance(field, np.ndarray) and field.dtype == np.float32 and field.shape == (2, *shape)
            and field.flags.c_contiguous and field.flags.writeable):
        raise ValueError(f"{what}: the field must be a writeable C-contiguous float32 array of shape (2, {shape[0]}, "
                         f"{shape[1]})")
    scale = float(np.mean(reference, dtype=np.float64))
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"{what}: the reference must have a positive mean (an intensity)")
    return shape, scale


def refine_field(reference, sample, field: np.ndarray, sigma: float = DEFAULT_SIGMA,
                 iterations: int = DEFAULT_ITERATIONS, device=None) -> np.ndarray:
    """:func:`lk_refine` on ``field``, a C-contiguous float32 ``(2, H, W)`` array (dx, dy),
    updated **in place** and returned: on the CPU a large frame of even size then needs nothing
    of its size besides its images and the field, only bands of rows (``reconstruct``'s path)."""
    sigma = check_sigma(sigma, "lk_refine: sigma")
    if sigma == 0.0:
        raise ValueError("lk_refine: sigma must be a window of 1 to 64 px")
    iterations = check_iterations(iterations, "lk_refine: iterations")
    shape, scale = check_field_inputs(reference, sample, field, "lk_refine")
    device = torch.device("cpu") if device is None else torch.device(device)
    height, width = shape
    even = (0, width % 2, 0, height % 2)  # one column / row repeated to an even size (the pooled grid)

    def tensor(a):  # (1, C, H', W') on the device; no copy of a float32 or float64 CPU frame of even size
        t = frame_tensor(a, shape, device)
        return F.pad(t, even, mode="replicate") if any(even) else t

    with torch.no_grad():
        r, smp, d = tensor(reference), tensor(sample), tensor(field)
        for _ in range(int(iterations)):
            d = lk_step(r, smp, d, sigma, scale=scale)
        result = d[0, :, :height, :width]
        if result.data_ptr() != torch.from_numpy(field).data_ptr():  # a padded copy, or another device
            field[...] = result.cpu().numpy()
    return field
