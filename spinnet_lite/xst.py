"""X-ray speckle tracking (XST): the classical baseline.

For every pixel of the *sample* image a ``window x window`` template is compared with the
*reference* image at every integer shift in ``[-search, search]^2`` by zero-normalised
cross-correlation (ZNCC); the best integer shift is refined to sub-pixel precision with a
3-point Gaussian (or parabolic) fit along each axis, then (``refine`` > 0) by a few
Lucas-Kanade iterations on the reference window re-sampled by cubic B-spline.  The 3-point fit
alone is biased by the asymmetry of a small window's correlation peak (about 0.1 px rms for
a 7 px window even where the true shift is exactly zero); the Lucas-Kanade step removes most
of that bias.

Conventions (DESIGN.md section 1): arrays are ``(y, x)`` and the forward model is

    sample(y, x) = T(y, x) * reference(y - dy(y, x), x - dx(y, x))

so the returned ``dx`` is the motion of the speckle (positive = towards larger column index).
The sample window centred at ``(y, x)`` is therefore compared with the reference window
centred at ``(y - sy, x - sx)`` for the trial shift ``(sy, sx)``.

Everything is vectorised: the only Python loops are over the ``(2 search + 1)^2`` shifts
and over bands of image rows (the correlation volume of one band at a time, at most
``_VOLUME_FLOATS`` values, so a 4096 x 4096 pair peaks at about 1.7 GB instead of needing
11 GB at once); local means are box filters (``torch.nn.functional.avg_pool2d``) on
reflect-padded images, so the output has the input's shape and does not depend on the bands.

Speed (``benchmarks/xst_speed.py``): a 512 x 512 pair at ``search=5`` takes about 0.9 s with
``refine=0`` and 2.1 s with ``refine=2`` on one CPU thread.  On a machine whose cores are busy with other work, torch's
multi-threading can be several times slower than one thread (``torch.set_num_threads(1)``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .checks import as_pair, check_choice, check_intensity, normalise_scale, resolve_device

SUBPIXEL_METHODS = ("gaussian", "parabolic", "none")

#: Shifts whose products are formed together in one band of rows.
_CHUNK = 32
#: Correlation values held at once: the integer search runs over bands of image rows so that
#: its ``(2 search + 1)^2 x rows x W`` volume never exceeds this many floats (128 MB), however
#: large the frame (a 4096 x 4096 pair at ``search=6`` would otherwise need 11.3 GB).
_VOLUME_FLOATS = 2**25
#: Pixels refined together by the Lucas-Kanade step (its temporaries are ~30 floats per
#: window pixel per image pixel, about 200 MB at this size).
_REFINE_PIXELS = 16384
#: Image rows per band when the transmission is read at the matched positions.
_TRANSMISSION_ROWS = 256


def _resolve_device(device) -> torch.device:
    return resolve_device(device, what="xst: device")


def _box_mean(t: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over ``window x window`` boxes, no padding: (C, H + w - 1, W + w - 1) -> (C, H, W).

    Separable: a ``(w, 1)`` then a ``(1, w)`` average pool.
    """
    t = F.avg_pool2d(t.unsqueeze(0), (window, 1), stride=1)
    return F.avg_pool2d(t, (1, window), stride=1).squeeze(0)


def _subpixel_offset(c_minus: torch.Tensor, c0: torch.Tensor, c_plus: torch.Tensor, method: str) -> torch.Tensor:
    """Peak offset in [-0.5, 0.5] from three samples of the correlation at -1, 0, +1."""
    zero = torch.zeros_like(c0)
    if method == "none":
        return zero
    denom = c_minus - 2.0 * c0 + c_plus
    parabolic = torch.where(denom < 0, (c_minus - c_plus) / (2.0 * denom.clamp(max=-1e-12)), zero)
    offset = parabolic
    if method == "gaussian":
        positive = (c_minus > 0) & (c0 > 0) & (c_plus > 0)
        tiny = 1e-12
        lm, l0, lp = (torch.log(v.clamp(min=tiny)) for v in (c_minus, c0, c_plus))
        gdenom = lm - 2.0 * l0 + lp
        gauss = (lm - lp) / (2.0 * gdenom.clamp(max=-1e-12))
        offset = torch.where(positive & (gdenom < 0), gauss, parabolic)
    return offset.clamp(-0.5, 0.5)


def xst(reference, sample, window: int = 7, search: int = 6, subpixel: str = "gaussian", refine: int = 2,
        device=None) -> dict:
    """Track the speckle between a reference and a sample image by windowed ZNCC.

    Args:
        reference: reference image (no sample), ``(H, W)``, numpy array or DataArray.
        sample: sample image, ``(H, W)``.
        window: side of the square correlation window in pixels (odd, >= 3).
        search: largest integer shift tried along each axis, in pixels (>= 1; default 6, which
            covers the displacements of the training set, up to ~5.5 px); the result is
            limited to ``|dx|, |dy| <= search + 0.5`` (``+ 1.5`` with ``refine``).
        subpixel: peak refinement, ``"gaussian"`` (3-point Gaussian fit, falls back to the
            parabola where the correlation is not positive), ``"parabolic"`` or ``"none"``.
        refine: Lucas-Kanade (Gauss-Newton) iterations after the peak fit (default 2; 0 gives
            the plain ZNCC + 3-point-fit tracker).  Each iteration re-samples the reference
            window and its gradient at the current sub-pixel shift (cubic B-spline) and solves
            ``S - mean S = a (R - mean R) - a (grad R . delta)`` over the window for the update
            ``delta``.  On noiseless speckle shifted uniformly this converges to the exact shift
            in two iterations (the 3-point fit alone is off by ~0.1 px rms for a 7 px window);
            in a varying field what remains is the constant-shift window model's error.  Costs
            about 0.6x an integer search (``search=5``) per iteration.  Updates are limited to
            1 px in total from the peak fit.
        device: torch device for the computation; None picks CUDA when available, else CPU.

    The images are intensities: both are first divided by one common power of two (so their
    scale, 1e-310 or 1e300, changes nothing), and an image whose mean is not positive is
    refused, as SPINNet refuses it.  Large frames are processed in bands of rows, so the
    memory stays a few full-size arrays (a 4096 x 4096 pair fits in well under 4 GB).

    Returns:
        dict of float64 numpy arrays, each ``(H, W)``:
        ``dx``, ``dy`` (px, speckle motion, see the module docstring), ``transmission``
        (local mean of the sample over that of the reference at the matched position) and
        ``correlation`` (ZNCC at the best integer shift, in [-1, 1]).

    Raises:
        ValueError: bad images (see :func:`spinnet_lite.checks.as_pair`), images that are
            not intensities (a mean that is not positive), an even or too small window, a
            search range < 1 or one too large for the image, an unknown ``subpixel`` method
            or an unusable device.
    """
    ref, sam = as_pair(reference, sample)
    check_choice(subpixel, SUBPIXEL_METHODS, "subpixel method")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 3 or window % 2 == 0:
        raise ValueError(f"xst: window must be an odd integer >= 3, got {window!r}")
    if isinstance(search, bool) or not isinstance(search, (int, np.integer)) or search < 1:
        raise ValueError(f"xst: search must be an integer >= 1, got {search!r}")
    if isinstance(refine, bool) or not isinstance(refine, (int, np.integer)) or refine < 0:
        raise ValueError(f"xst: refine must be an integer >= 0 (Lucas-Kanade iterations), got {refine!r}")
    window, search, refine = int(window), int(search), int(refine)
    half = window // 2
    height, width = ref.shape
    if search + half >= min(height, width):
        raise ValueError(
            f"xst: search ({search}) + window // 2 ({half}) must be smaller than the image side ({min(height, width)})"
        )
    dev = _resolve_device(device)
    check_intensity(ref, "reference")
    check_intensity(sam, "sample")
    ref, sam = normalise_scale(ref, sam)

    # Global affine normalisation: ZNCC does not change, float32 keeps its precision.
    ref_offset, ref_scale = ref.mean(), ref.std()
    sam_offset, sam_scale = sam.mean(), sam.std()
    ref -= ref_offset
    ref /= ref_scale
    sam -= sam_offset
    sam /= sam_scale
    ref_n, sam_n = ref, sam
    del ref, sam

    pad = search + half
    ref_big = torch.as_tensor(np.pad(ref_n.astype(np.float32), pad, mode="reflect"), device=dev)
    sam_pad = torch.as_tensor(np.pad(sam_n.astype(np.float32), half, mode="reflect"), device=dev)
    del sam_n

    # Local statistics: sample at every pixel, reference at every pixel of the search margin.
    mean_s = _box_mean(sam_pad[None], window)[0]  # (H, W)
    var_s = (_box_mean(sam_pad[None] ** 2, window)[0] - mean_s**2).clamp(min=0)
    mean_r = _box_mean(ref_big[None], window)[0]  # (H + 2s, W + 2s)
    var_r = (_box_mean(ref_big[None] ** 2, window)[0] - mean_r**2).clamp(min=0)

    n_side = 2 * search + 1
    dy = torch.empty((height, width), dtype=torch.float64, device=dev)
    dx = torch.empty((height, width), dtype=torch.float64, device=dev)
    peak = torch.empty((height, width), dtype=torch.float32, device=dev)
    band = max(1, min(height, _VOLUME_FLOATS // (n_side * n_side * width)))
    for y0 in range(0, height, band):
        y1 = min(height, y0 + band)
        volume = _correlation_band(ref_big, sam_pad, mean_r, var_r, mean_s, var_s, y0, y1, search, window)
        best = volume.argmax(dim=0)  # (b, W)
        peak[y0:y1] = volume.gather(0, best[None])[0]
        iy, ix = best // n_side, best % n_side  # 0 .. 2s

        def at(jy, jx):
            return volume.gather(0, (jy * n_side + jx)[None])[0]

        # Neighbours of the peak (clamped at the edge of the search range, offset forced to 0 there).
        ym, yp = (iy - 1).clamp(min=0), (iy + 1).clamp(max=n_side - 1)
        xm, xp = (ix - 1).clamp(min=0), (ix + 1).clamp(max=n_side - 1)
        c0 = peak[y0:y1]
        off_y = _subpixel_offset(at(ym, ix), c0, at(yp, ix), subpixel)
        off_x = _subpixel_offset(at(iy, xm), c0, at(iy, xp), subpixel)
        inner_y = (iy > 0) & (iy < n_side - 1)
        inner_x = (ix > 0) & (ix < n_side - 1)
        dy[y0:y1] = (iy - search).to(torch.float64) + torch.where(inner_y, off_y, torch.zeros_like(off_y)).to(torch.float64)
        dx[y0:y1] = (ix - search).to(torch.float64) + torch.where(inner_x, off_x, torch.zeros_like(off_x)).to(torch.float64)
        del volume, best, iy, ix, ym, yp, xm, xp, off_y, off_x
    del ref_big, var_r, var_s
    if refine:
        dx, dy = _lucas_kanade(ref_n, sam_pad, dx, dy, window, refine, pad + 2, dev)
    del ref_n, sam_pad
    dy_np, dx_np = dy.cpu().numpy(), dx.cpu().numpy()
    del dx, dy

    # Transmission: ratio of raw local means, the reference's read at the matched sub-pixel
    # position (y - dy, x - dx) by bilinear interpolation of its box-mean map; in bands of rows.
    mean_r_raw = mean_r.double().cpu().numpy()
    del mean_r
    mean_r_raw *= ref_scale
    mean_r_raw += ref_offset
    transmission = np.empty((height, width))
    columns = np.arange(width, dtype=np.float64)[None, :] + search
    for y0 in range(0, height, _TRANSMISSION_ROWS):
        y1 = min(height, y0 + _TRANSMISSION_ROWS)
        rows = np.arange(y0, y1, dtype=np.float64)[:, None] + search
        matched = ndimage.map_coordinates(mean_r_raw, [rows - dy_np[y0:y1], columns - dx_np[y0:y1]], order=1,
                                          mode="nearest")
        mean_s_raw = mean_s[y0:y1].double().cpu().numpy() * sam_scale + sam_offset
        with np.errstate(divide="ignore", invalid="ignore"):
            transmission[y0:y1] = np.where(np.abs(matched) > 0, mean_s_raw / matched, np.nan)

    return {
        "dx": dx_np,
        "dy": dy_np,
        "transmission": transmission,
        "correlation": peak.double().cpu().numpy(),
    }


def _correlation_band(ref_big, sam_pad, mean_r, var_r, mean_s, var_s, y0: int, y1: int, search: int,
                      window: int) -> torch.Tensor:
    """ZNCC of the sample windows centred on rows ``[y0, y1)`` at every integer shift: ``(n_shifts, y1 - y0, W)``.

    Every value is computed exactly as for the whole image (box means without padding of
    the padded images), so the bands join seamlessly.
    """
    half = window // 2
    rows = y1 - y0
    width = mean_s.shape[1]
    shifts = [(sy, sx) for sy in range(-search, search + 1) for sx in range(-search, search + 1)]
    volume = torch.empty((len(shifts), rows, width), dtype=torch.float32, device=ref_big.device)
    hp, wp = rows + 2 * half, width + 2 * half
    sam_band = sam_pad[y0 : y0 + hp]
    ms, vs = mean_s[y0:y1], var_s[y0:y1]
    tiny = 1e-6
    products = torch.empty((min(_CHUNK, len(shifts)), hp, wp), dtype=torch.float32, device=ref_big.device)
    for start in range(0, len(shifts), _CHUNK):
        chunk = shifts[start : start + _CHUNK]
        for i, (sy, sx) in enumerate(chunk):
            # Reference displaced by (sy, sx): R_s(y, x) = R(y - sy, x - sx), times the sample.
            top = search - sy + y0
            torch.mul(ref_big[top : top + hp, search - sx : search - sx + wp], sam_band, out=products[i])
        cross = _box_mean(products[: len(chunk)], window)  # (C, rows, W)
        for i, (sy, sx) in enumerate(chunk):
            top = search - sy + y0
            m_r = mean_r[top : top + rows, search - sx : search - sx + width]
            v_r = var_r[top : top + rows, search - sx : search - sx + width]
            out = volume[start + i]
            torch.addcmul(cross[i], m_r, ms, value=-1.0, out=out)
            out.mul_(torch.rsqrt(v_r * vs + tiny))
        del cross
    return volume


def _bspline_weights(frac: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cubic B-spline weights of the taps ``i-1 .. i+2`` at ``i + frac`` and their derivatives.

    Returns:
        ``(weights, derivatives)``, each (..., 4); the derivatives are d/dfrac of the weights.
    """
    f2, f3 = frac * frac, frac * frac * frac
    weights = torch.stack([(1 - frac) ** 3 / 6, (4 - 6 * f2 + 3 * f3) / 6,
                           (1 + 3 * frac + 3 * f2 - 3 * f3) / 6, f3 / 6], -1)
    derivatives = torch.stack([-0.5 * (1 - frac) ** 2, -2 * frac + 1.5 * f2,
                               0.5 + frac - 1.5 * f2, 0.5 * f2], -1)
    return weights, derivatives


def _sample_windows(coeffs: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, k: int):
    """Cubic B-spline values and gradients on a ``k x k`` unit grid centred at ``(cy, cx)``, per pixel.

    All points of one window share their sub-pixel phase, so the interpolation is a separable
    4-tap filter of one integer ``(k + 3)^2`` patch of coefficients per pixel, and the gradient
    is the exact derivative of the interpolant (Gauss-Newton then converges quadratically).

    Args:
        coeffs: (Hb, Wb) B-spline coefficients.
        cy, cx: (r, W) window centres in coefficient pixels.
        k: odd window side.

    Returns:
        ``(values, d/dy, d/dx)``, each (r, W, k, k).
    """
    big_h, big_w = coeffs.shape
    half = k // 2
    iy, ix = torch.floor(cy), torch.floor(cx)
    wy, dwy = _bspline_weights(cy - iy)  # (r, W, 4)
    wx, dwx = _bspline_weights(cx - ix)
    offsets = torch.arange(-half - 1, half + 3, device=coeffs.device)  # k + 3 taps
    rows = (iy.long()[..., None] + offsets).clamp(0, big_h - 1)[..., :, None]  # (r, W, k+3, 1)
    cols = (ix.long()[..., None] + offsets).clamp(0, big_w - 1)[..., None, :]  # (r, W, 1, k+3)
    patch = coeffs.reshape(-1)[rows * big_w + cols]  # (r, W, k+3, k+3)
    along_y = sum(wy[..., a, None, None] * patch[..., a : a + k, :] for a in range(4))  # (r, W, k, k+3)
    along_dy = sum(dwy[..., a, None, None] * patch[..., a : a + k, :] for a in range(4))
    values = sum(wx[..., b, None, None] * along_y[..., b : b + k] for b in range(4))
    grad_x = sum(dwx[..., b, None, None] * along_y[..., b : b + k] for b in range(4))
    grad_y = sum(wx[..., b, None, None] * along_dy[..., b : b + k] for b in range(4))
    return values, grad_y, grad_x


def _lucas_kanade(ref_n, sam_pad, dx, dy, window: int, iterations: int, margin: int, dev, rows: int | None = None):
    """Refine per-pixel shifts by Gauss-Newton on the windowed, affine-normalised SSD.

    For each pixel the reference and its gradient are re-sampled (cubic B-spline) on the
    ``window x window`` grid around ``p - t``, and the least-squares fit ``S - mean(S) = a (R - mean R) + cx Gx + cy Gy`` over the window
    gives the update ``delta = -(cx, cy) / a`` (first order in ``delta``).

    Args:
        ref_n: normalised reference (H, W) numpy float64.
        sam_pad: normalised sample reflect-padded by ``window // 2``, (H + w - 1, W + w - 1) tensor.
        dx, dy: (H, W) float64 tensors, the starting shifts (px).
        margin: reflect padding of the reference; shifts stay within it.
        rows: image rows processed at once (bounds memory to ~30 * rows * W * (w + 3)^2 floats);
            default: as many as make :data:`_REFINE_PIXELS` pixels.

    Returns:
        The refined ``(dx, dy)`` float64 tensors, each within 1 px of its start.
    """
    height, width = ref_n.shape
    half = window // 2
    big = margin + half + 2
    # Cubic B-spline coefficients of the padded reference: B-spline interpolation reproduces
    # polynomials up to degree 3, so it adds no position bias (torch's bicubic grid_sample,
    # Keys with a = -0.75, reproduces only constants and shifts smooth speckle by up to
    # ~0.04 px depending on the sub-pixel phase).
    coeffs = ndimage.spline_filter(np.pad(ref_n, big, mode="reflect"), order=3, mode="mirror")
    ref_big = torch.as_tensor(coeffs, dtype=torch.float32, device=dev)
    del coeffs
    if rows is None:
        rows = max(1, _REFINE_PIXELS // width)
    ys = torch.arange(height, dtype=torch.float32, device=dev)[:, None].expand(height, width)
    xs = torch.arange(width, dtype=torch.float32, device=dev)[None, :].expand(height, width)
    tx0, ty0 = dx.to(torch.float32), dy.to(torch.float32)
    tx, ty = tx0.clone(), ty0.clone()
    for _ in range(iterations):
        for r0 in range(0, height, rows):
            sl = slice(r0, min(height, r0 + rows))
            values, grad_y, grad_x = _sample_windows(ref_big, ys[sl] - ty[sl] + big, xs[sl] - tx[sl] + big, window)
            inner = values.reshape(-1, width, window * window)
            grad_x = grad_x.reshape(inner.shape)
            grad_y = grad_y.reshape(inner.shape)
            inner = inner - inner.mean(-1, keepdim=True)
            grad_x = grad_x - grad_x.mean(-1, keepdim=True)
            grad_y = grad_y - grad_y.mean(-1, keepdim=True)
            # Sample windows of these rows, zero-mean: (rows, W, w*w).
            count = sl.stop - sl.start
            target = F.unfold(sam_pad[None, None, sl.start : sl.stop + 2 * half], window)
            target = target.reshape(window * window, count, width).permute(1, 2, 0)
            target = target - target.mean(-1, keepdim=True)
            # Normal equations of  target = a * inner + cx * grad_x + cy * grad_y  (3 x 3, symmetric).
            m00, m01, m02 = (inner * inner).sum(-1), (inner * grad_x).sum(-1), (inner * grad_y).sum(-1)
            m11, m12, m22 = (grad_x * grad_x).sum(-1), (grad_x * grad_y).sum(-1), (grad_y * grad_y).sum(-1)
            b0, b1, b2 = (inner * target).sum(-1), (grad_x * target).sum(-1), (grad_y * target).sum(-1)
            # Cramer's rule via the adjugate.
            c00, c01, c02 = m11 * m22 - m12 * m12, m02 * m12 - m01 * m22, m01 * m12 - m02 * m11
            c11, c12, c22 = m00 * m22 - m02 * m02, m01 * m02 - m00 * m12, m00 * m11 - m01 * m01
            det = m00 * c00 + m01 * c01 + m02 * c02
            gain_num = c00 * b0 + c01 * b1 + c02 * b2  # a * det
            cx_num = c01 * b0 + c11 * b1 + c12 * b2
            cy_num = c02 * b0 + c12 * b1 + c22 * b2
            scale = (m00 * m11 * m22).clamp(min=1e-30)
            ok = (det.abs() > 1e-6 * scale) & (gain_num.abs() > 1e-3 * det.abs())
            safe = torch.where(ok, gain_num, torch.ones_like(gain_num))
            step_x = torch.where(ok, -cx_num / safe, torch.zeros_like(safe)).clamp(-1, 1)
            step_y = torch.where(ok, -cy_num / safe, torch.zeros_like(safe)).clamp(-1, 1)
            tx[sl] = torch.minimum(torch.maximum(tx[sl] + step_x, tx0[sl] - 1), tx0[sl] + 1)
            ty[sl] = torch.minimum(torch.maximum(ty[sl] + step_y, ty0[sl] - 1), ty0[sl] + 1)
    return tx.to(torch.float64), ty.to(torch.float64)
