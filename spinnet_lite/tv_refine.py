"""An edge-preserving refinement after the Lucas-Kanade step: total variation on the correction.

The network answers on half the pixel grid and smooths sharp steps of the field: a lens rim, a
0.9 px drop within ~4 px, comes out spread over ~9 px; the Lucas-Kanade step's 6 px window
(:mod:`spinnet_lite.lucas_kanade`) cannot resolve it, and small windows alone scatter (README,
*The seventeenth bundle*). This step fits the pixels in a small Gaussian window
(:data:`WINDOW_SIGMA`) around each pixel, linearised at the current field ``d0`` (the step's
model, the local transmission profiled out), which gives a target ``d0 + e`` and the fit's
precision ``P`` (2 x 2 per pixel), and solves::

    min_u  sum_x (u - e)^T P (u - e) / p  +  weight * sum_x |grad u|,        d = d0 + u,

with ``p`` the median trace of ``P`` (so the weight does not depend on the intensity scale or
the speckle's contrast), by the primal-dual algorithm of Chambolle & Pock (2011, isotropic
total variation, dx and dy coupled), re-linearised at the result :data:`OUTER` times. The total
variation falls on the *correction*, not on the field: where the network's answer fits the
pixels ``u`` stays near 0 and a textured field keeps its texture; where the answer misses a
step, ``u`` is a step. Where the noise is large against the speckle's contrast (few photons, a
low visibility) the weight grows with it, ``weight = max(weight, NOISE_SCALE * variance / p)``
(``variance`` that of the residual, relative to the reference's mean squared), so the small
window does not pass the noise on; a very large weight leaves a uniform correction.

This is a deviation from the seed (notebook 03), on by default after the Lucas-Kanade step
(``tv="auto"`` in :func:`spinnet_lite.reconstruct`; ``tv=False`` turns it off, ``tv=True`` gives
:data:`DEFAULT_WEIGHT` even after the network alone). On this project's CPU it costs ~1.8x the
time of a reconstruction without it at 512 px. It is solved in bands of rows, each with a halo
as deep as the solver's iterations reach, which gives the whole-frame solution: besides the
images and the field it holds the starting field, the fit of a frame up to
:data:`WHOLE_FIT_PIXELS` (larger frames form it band by band, twice) and one band's solver, so
it adds little to the peak memory of a reconstruction (a 4096 x 4096 frame, measured: 1.66 GB
with it and 1.67 GB without in session 23; 1.69-1.80 GB with it over three runs and 1.65 GB
without in session 24: the peak moves by ~0.1 GB from run to run). Where the speckle is not exactly a moved copy of the reference (a
full-wave simulation of the seed's lens) the small window follows some of the difference: there
it adds fine-scale error (README, *The eighteenth bundle*); ``tv=False`` avoids it.

Shapes: images ``(H, W)``; displacements in pixels, forward-model sign (``sample(y, x) =
T reference(y - dy, x - dx)``).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .checks import check_symmetries
from .lucas_kanade import (MAX_STEP_PX, check_field_inputs, fit_products, frame_tensor, gaussian_blur, read_reference,
                           source_rows, stack_field)
from .model.normalize import gaussian_kernel

#: Weight of the total variation that ``tv=True`` selects (relative to the fit's median precision).
DEFAULT_WEIGHT = 0.05
#: Gaussian window (sigma, px) of the fit linearised at the current field.
WINDOW_SIGMA = 1.5
#: The weight is at least this times the residual's variance over the fit's median precision
#: (both relative to the reference's mean^2): the noise relative to the speckle's contrast.
NOISE_SCALE = 12.0
#: Linearisations, and primal-dual iterations for each.
OUTER = 2
INNER = 30
#: The solver's primal step (its dual step is ``1 / (8 * PRIMAL_STEP)``, the largest the
#: differences' norm allows). With 0.25 the iterates overshoot first (on noisy held-out pair 25
#: the 50th stood 3.2 above the minimum, the start 0.46); 0.1 gets nearer sooner (2.6 there) and
#: reaches in 30 iterations the held-out figures that 0.25 reached in 50 (README, session 24).
PRIMAL_STEP = 0.1
#: Pixels of the fit (and of the noise estimate) formed at a time (memory: ~50 float32 maps of a band).
FIT_BAND_PIXELS = 2**18
#: Frames of at most this many pixels hold their whole fit (5 float32 maps; ~90 MB at 2112 x
#: 2112); larger ones form it twice, band by band (a 4096 px frame: ~2x the fit's time).
WHOLE_FIT_PIXELS = 2**23
#: Pixels of the total-variation solve at a time, without its halo (memory: ~25 float32 maps of
#: a band and its halo); a 512 px frame is one band.
TV_BAND_PIXELS = 2**20
#: Window (sigma, px) of the local transmission in the residual whose variance scales the weight.
NOISE_WINDOW = 6.0


def check_tv(tv, what: str = "tv") -> float:
    """``tv`` as a weight: 0 for False / None / 0 (off), :data:`DEFAULT_WEIGHT` for True, else a
    number in (0, 10]; a clear ValueError otherwise."""
    if tv is None:
        return 0.0
    if isinstance(tv, (bool, np.bool_)):
        return DEFAULT_WEIGHT if tv else 0.0
    if not isinstance(tv, (int, float, np.integer, np.floating)) or not math.isfinite(float(tv)) \
            or not 0.0 <= float(tv) <= 10.0:
        raise ValueError(f"{what}: expected False / 0 (off), True (a weight of {DEFAULT_WEIGHT:g}) or a weight "
                         f"from 0 to 10, got {tv!r}")
    return float(tv)


def resolve_tv(tv, lk_sigma: float, what: str = "tv") -> float:
    """The weight that ``tv`` selects in :func:`spinnet_lite.reconstruct`: ``"auto"`` (the
    default) is :data:`DEFAULT_WEIGHT` where the Lucas-Kanade step runs (``lk_sigma`` > 0) and
    off where it does not (``lk_sigma=0``: the network's answer alone); anything else as
    :func:`check_tv` reads it."""
    if isinstance(tv, str) and tv == "auto":
        return DEFAULT_WEIGHT if lk_sigma else 0.0
    if isinstance(tv, str):
        raise ValueError(f"{what}: expected 'auto', False / 0 (off), True (a weight of {DEFAULT_WEIGHT:g}) or a "
                         f"weight from 0 to 10, got {tv!r}")
    return check_tv(tv, what)


def band_rows_for(width: int, pixels: int) -> int:
    """Rows of a band of about ``pixels`` pixels of a frame ``width`` px wide (at least 64)."""
    return max(64, -(-int(pixels) // max(int(width), 1)))


def fit_reach(sigma: float = WINDOW_SIGMA) -> int:
    """Rows beyond its own that :func:`linearised_fit` of a band reads of the displacement."""
    return (gaussian_kernel(sigma, torch.device("cpu"), torch.float32).numel() - 1) // 2


def linearised_fit(reference: torch.Tensor, sample: torch.Tensor, displacement: torch.Tensor, sigma: float,
                   scale: float, ridge: float = 1e-3, rows: tuple[int, int] | None = None,
                   band_pixels: int = FIT_BAND_PIXELS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel, the least-squares shift ``e`` of the sample against the reference warped by
    ``displacement`` in a Gaussian window of ``sigma`` px (the local transmission ``a`` profiled
    out) and the precision of ``e``: ``a^2`` times the Schur complement of the fit's normal
    matrix on the shift.

    Args:
        reference, sample: ``(1, 1, H, W)`` intensities; ``scale`` divides both.
        displacement: ``(1, 2, H, W)`` (dx, dy), px; rows up to :func:`fit_reach` beyond
            ``rows`` are read.
        rows: ``(lo, hi)``, the rows fitted (default all), formed ``band_pixels`` pixels at a time.
    Returns:
        ``e`` ``(2, hi - lo, W)`` (0 where the fit is undefined or beyond :data:`MAX_STEP_PX`)
        and the precision ``(3, hi - lo, W)`` (entries xx, xy, yy; 0 where ``e`` is).
    """
    kernel = gaussian_kernel(sigma, sample.device, torch.float32)
    halo = (kernel.numel() - 1) // 2
    height, width = sample.shape[-2:]
    first, last = (0, height) if rows is None else rows
    band_rows = band_rows_for(width, band_pixels)
    steps = torch.empty((2, last - first, width), dtype=torch.float32, device=sample.device)
    precisions = torch.empty((3, last - first, width), dtype=torch.float32, device=sample.device)
    for y0 in range(first, last, band_rows):
        y1 = min(last, y0 + band_rows)
        lo, hi = max(0, y0 - halo), min(height, y1 + halo)
        sums = gaussian_blur(fit_products(reference, sample, displacement, lo, hi, scale), kernel)[0, :, y0 - lo : y1 - lo]
        m00, m01, m02, m11, m12, m22, v0, v1, v2 = sums
        inv00 = 1.0 / m00.clamp_min(1e-12)
        h11, h12, h22 = m11 - m01 * m01 * inv00, m12 - m01 * m02 * inv00, m22 - m02 * m02 * inv00
        g1, g2 = v1 - m01 * v0 * inv00, v2 - m02 * v0 * inv00
        trace = h11 + h22
        r11, r22 = h11 + ridge * trace, h22 + ridge * trace
        det = r11 * r22 - h12 * h12
        det_safe = torch.where(det > 0, det, torch.ones_like(det))
        b1, b2 = (r22 * g1 - h12 * g2) / det_safe, (r11 * g2 - h12 * g1) / det_safe
        a = (v0 - m01 * b1 - m02 * b2) * inv00
        a_safe = torch.where(a > 0, a, torch.ones_like(a))
        step = torch.stack([b1 / a_safe, b2 / a_safe])
        valid = (m00 > 0) & (det > 1e-12 * trace * trace) & (a > 0) & (step.abs().amax(0) <= MAX_STEP_PX)
        steps[:, y0 - first : y1 - first] = torch.where(valid, step, torch.zeros_like(step))
        precisions[:, y0 - first : y1 - first] = torch.stack([h11, h12, h22]) * (a_safe * a_safe * valid)
    return steps, precisions


def residual_variance(reference: torch.Tensor, sample: torch.Tensor, displacement: torch.Tensor, scale: float,
                      sigma: float = NOISE_WINDOW, border: int = 8, band_pixels: int = FIT_BAND_PIXELS) -> float:
    """The variance of ``sample - a * reference(r - d)`` (``a`` the local transmission, a
    Gaussian window of ``sigma`` px; both images ``/ scale``), from the median of its square
    (robust to the few pixels the field misses), ``border`` px dropped on every side; formed
    ``band_pixels`` pixels at a time (one float32 map of the frame held)."""
    height, width = sample.shape[-2:]
    band_rows = band_rows_for(width, band_pixels)
    kernel = gaussian_kernel(sigma, sample.device, torch.float32)
    halo = (kernel.numel() - 1) // 2
    square = torch.empty((height, width), dtype=torch.float32, device=sample.device)
    for y0 in range(0, height, band_rows):
        y1 = min(height, y0 + band_rows)
        lo, hi = max(0, y0 - halo), min(height, y1 + halo)
        r = read_reference(reference, source_rows(displacement, lo, hi), scale)
        s = sample[..., lo:hi, :].to(torch.float32) / scale
        sums = gaussian_blur(torch.cat([r * s, r * r], 1), kernel)
        rho = (s - sums[:, :1] / sums[:, 1:].clamp_min(1e-12) * r)[0, 0, y0 - lo : y1 - lo]
        torch.mul(rho, rho, out=square[y0:y1])
    b = border if min(height, width) > 4 * border else 0
    return float(square[b : height - b, b : width - b].median()) / 0.4549  # the median of a chi-square of 1 dof


#: The mirrors of the total variation's forward differences, in the order of
#: :data:`spinnet_lite.tiling.SYMMETRIES` (none; in x; in y; in both): the dims of ``(2, H, W)``
#: flipped. A transpose maps the forward differences onto themselves, so four cover all eight.
FLIPS = ((), (-1,), (-2,), (-2, -1))


def tv_solve(target: torch.Tensor, precision: torch.Tensor, weight: float, iterations: int = INNER,
             init: torch.Tensor | None = None, flips: tuple = ((),)) -> torch.Tensor:
    """``argmin_u sum (u - target)^T P (u - target) + weight * sum |grad u|`` (vectorial
    isotropic total variation of forward differences) by Chambolle-Pock, ``iterations`` steps
    from ``init``; with several ``flips`` (entries of :data:`FLIPS`), the average of the solves of
    the problem seen in those mirrors (backward differences in x, in y, in both), each mapped back.
    The forward differences are not mirror-symmetric; the average over ``FLIPS[:2]`` is
    symmetric under the mirror in x, over all four under every mirror and transpose.

    Args:
        target: ``(2, H, W)``.
        precision: ``(3, H, W)`` symmetric positive semi-definite 2 x 2 per pixel (xx, xy, yy).
        weight: the total variation's weight (> 0).
    Returns:
        ``u`` ``(2, H, W)``.
    """
    if tuple(flips) != ((),):
        total = torch.zeros_like(target)
        for dims in flips:
            def seen(a):
                return a.flip(dims) if dims else a
            total += seen(tv_solve(seen(target), seen(precision), weight, iterations,
                                   None if init is None else seen(init)))
        return total.div_(len(flips))
    u = (target if init is None else init).clone()
    u_bar = u.clone()
    dual = torch.zeros((2, *u.shape), dtype=u.dtype, device=u.device)  # (x, y) differences: 0 on the last column / row
    px, py = dual
    tau = PRIMAL_STEP
    sigma = 1.0 / (8.0 * tau)  # tau * sigma * |grad|^2 <= 1 (|grad|^2 <= 8)
    p11, p12, p22 = 2 * tau * precision
    a11, a22 = p11 + 1, p22 + 1
    det = a11 * a22 - p12 * p12
    i11, i12, i22 = a22 / det, -p12 / det, a11 / det  # (2 tau P + I)^-1, per pixel
    pt1, pt2 = p11 * target[0] + p12 * target[1], p12 * target[0] + p22 * target[1]
    c1, c2 = i11 * pt1 + i12 * pt2, i12 * pt1 + i22 * pt2
    div, v, square, new = (torch.empty_like(u) for _ in range(4))
    norm = torch.empty_like(u[0])
    dx_bar, dy_bar = torch.empty_like(u[..., :, 1:]), torch.empty_like(u[..., 1:, :])
    for _ in range(int(iterations)):
        # dual ascent along the forward differences, then the projection onto |p| <= weight
        torch.sub(u_bar[..., :, 1:], u_bar[..., :, :-1], out=dx_bar)
        px[..., :, :-1].add_(dx_bar, alpha=sigma)
        torch.sub(u_bar[..., 1:, :], u_bar[..., :-1, :], out=dy_bar)
        py[..., :-1, :].add_(dy_bar, alpha=sigma)
        torch.mul(px, px, out=square).addcmul_(py, py)
        torch.add(square[0], square[1], out=norm)
        dual.div_(norm.sqrt_().div_(weight).clamp_min_(1.0))
        # the divergence (the differences' negative adjoint), then the data term's proximal step:
        # (2 tau P + I) u = u + tau div p + 2 tau P target, per pixel
        div.copy_(px)
        div[..., :, 1:].sub_(px[..., :, :-1])
        div.add_(py)
        div[..., 1:, :].sub_(py[..., :-1, :])
        torch.add(u, div, alpha=tau, out=v)
        torch.addcmul(c1, i11, v[0], out=new[0]).addcmul_(i12, v[1])
        torch.addcmul(c2, i12, v[0], out=new[1]).addcmul_(i22, v[1])
        torch.sub(new, u, out=u_bar).add_(new)
        u, new = new, u  # the old u's memory takes the next iterate
    return u


def tv_pass(reference: torch.Tensor, sample: torch.Tensor, start: torch.Tensor, field: torch.Tensor, weight: float,
            scale: float, variance: float | None = None, band_pixels: int = TV_BAND_PIXELS,
            flips: tuple = ((),)) -> float | None:
    """One linearisation: ``field = start + argmin_u ...`` (the module docstring), linearised at
    ``field``, solved in bands of rows with :data:`INNER` + 1 rows of halo on each side.  An
    iteration of the solver reaches at most one row further, so a band's rows are those of one
    whole-frame solve (the halo's false edge never reaches them); ``field`` is written band by
    band, each band's last rows only after the next band has read them.

    Args:
        reference, sample: ``(1, 1, H, W)``; ``scale`` divides both.
        start: ``(2, H, W)`` the field before the refinement; field ``(2, H, W)`` (another tensor).
        weight: the total variation's weight (> 0), relative to ``norm``, the fit's median trace
            of precision (on a frame larger than :data:`WHOLE_FIT_PIXELS`, from a first pass of
            the fit).
        variance: the residual's (:func:`residual_variance`): the weight is then at least
            :data:`NOISE_SCALE` ``* variance / norm``.
        flips: the solver's mirrors (:func:`tv_solve`).
    Returns:
        The weight used, or None (``field`` unchanged) where ``norm`` is not positive: no
        texture anywhere.
    """
    height, width = field.shape[-2:]
    halo = INNER + 1
    reach = halo + fit_reach()  # rows of ``field`` that a band reads beyond its own
    band_rows = max(band_rows_for(width, band_pixels), reach)
    whole = None
    if height * width <= WHOLE_FIT_PIXELS:  # the frame's fit held: the solve's bands slice it
        whole = linearised_fit(reference, sample, field[None], WINDOW_SIGMA, scale)
        norm = float((whole[1][0] + whole[1][2]).median())
    else:  # a large frame: its fit formed twice, band by band, for the norm and for the solve
        trace = torch.empty((height, width), dtype=torch.float32, device=field.device)
        for y0 in range(0, height, band_rows):
            y1 = min(height, y0 + band_rows)
            precision = linearised_fit(reference, sample, field[None], WINDOW_SIGMA, scale, rows=(y0, y1))[1]
            torch.add(precision[0], precision[2], out=trace[y0:y1])
            del precision
        norm = float(trace.median())
        del trace
    if not norm > 0:
        return None
    if variance is not None:
        weight = max(weight, NOISE_SCALE * variance / norm)
    pending = None
    for y0 in range(0, height, band_rows):
        y1 = min(height, y0 + band_rows)
        lo, hi = max(0, y0 - halo), min(height, y1 + halo)
        e, precision = (whole[0][:, lo:hi], whole[1][:, lo:hi]) if whole is not None else \
            linearised_fit(reference, sample, field[None], WINDOW_SIGMA, scale, rows=(lo, hi))
        correction = field[:, lo:hi] - start[:, lo:hi]
        if pending is not None:  # the previous band's last rows: read, now written
            field[:, pending[0] : y0] = pending[1]
        target = e + correction
        precision = precision / norm
        del e
        u = tv_solve(target, precision, weight, INNER, init=correction, flips=flips)
        split = y1 if y1 == height else y1 - reach
        torch.add(start[:, y0:split], u[:, y0 - lo : split - lo], out=field[:, y0:split])
        pending = (split, start[:, split:y1] + u[:, split - lo : y1 - lo])
    return weight


def refine_field_tv(reference, sample, field: np.ndarray, weight: float = DEFAULT_WEIGHT, device=None,
                    symmetries: int = 1, report: dict | None = None) -> np.ndarray:
    """The refinement of the module docstring on ``field``, a C-contiguous float32 ``(2, H, W)``
    array (dx, dy), updated **in place** and returned.  Besides the images and the field it
    holds the starting field, the fit of a frame up to :data:`WHOLE_FIT_PIXELS` (5 float32 maps;
    of a larger one a single map), and one band's fit and solver (:data:`TV_BAND_PIXELS`).

    Args:
        reference, sample: ``(H, W)`` intensity images (any common scale, positive mean).
        weight: the total variation's weight (see :func:`check_tv`); 0 leaves the field as it is.
        device: torch device (default CPU).
        symmetries: 1, 2, 4 or 8 (``reconstruct``'s): the solver averaged over the mirrors of
            its differences that the first ``symmetries`` mirror images of the pair make
            (:data:`FLIPS`; 2: x, 4 and 8: all four), so a field symmetric under those mirrors
            stays so; each mirror costs one more solve.
        report: a dict that receives ``"weight"``, the weight used (raised by the noise rule
            where the noise is large; 0 where nothing was refined).
    Raises:
        ValueError: a bad weight, images and field of different shapes, a reference whose mean
            is not positive, ``symmetries`` not 1, 2, 4 or 8.
    """
    symmetries = check_symmetries(symmetries, "tv_refine: symmetries")
    flips = FLIPS[: min(symmetries, len(FLIPS))]
    weight = check_tv(weight, "tv_refine: weight")
    shape, scale = check_field_inputs(reference, sample, field, "tv_refine")
    if report is not None:
        report["weight"] = 0.0
    if weight == 0.0:
        return field
    device = torch.device("cpu") if device is None else torch.device(device)

    with torch.no_grad():
        r, s = frame_tensor(reference, shape, device), frame_tensor(sample, shape, device)
        d = frame_tensor(field, shape, device)[0]  # the field itself on the CPU
        start = d.clone()
        variance = residual_variance(r, s, start[None], scale)
        for step in range(OUTER):
            # the first: the noise relative to the speckle's gradient energy sets the least weight
            weight = tv_pass(r, s, start, d, weight, scale, variance if step == 0 else None, flips=flips)
            if weight is None:  # no texture anywhere: nothing to fit
                break
            if report is not None:
                report["weight"] = float(weight)
        if d.data_ptr() != torch.from_numpy(field).data_ptr():  # another device
            field[...] = d.cpu().numpy()
    return field


def tv_refine(reference, sample, dx, dy, weight: float = DEFAULT_WEIGHT, device=None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`refine_field_tv` on ``dx``, ``dy`` ``(H, W)`` (px): new float32 arrays."""
    field = stack_field(reference, sample, dx, dy, "tv_refine")
    refine_field_tv(reference, sample, field, weight, device)
    return field[0], field[1]
