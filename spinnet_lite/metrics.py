"""Error measures for a reconstruction against its ground truth (plain numpy).

``pred`` and ``gt`` are mappings (dicts) or xarray Datasets holding ``dx``, ``dy`` (px) and
``transmission``; each function takes ``border`` (pixels cropped from every side first, to
leave out the border effects of windowed methods).

- :func:`pair_error`: the seed's Eq. 4, ``|dx - dx_gt|^2/|dx_gt|^2 + |dy - dy_gt|^2/|dy_gt|^2
  + |T - T_gt|^2/|T_gt|^2`` with squared L2 norms over the image; the training loss and the
  "pair error" of the evaluations. :func:`error_regime` sorts it into the seed's three regimes.
- :func:`displacement_rmse`: root-mean-square length of the displacement error vector, px.
- :func:`transmission_error`: root-mean-square error of the transmission (unitless).
- :func:`background_noise`: the spread of the displacement where there is no sample.
- :func:`residual_after_paraboloid`: what is left of a phase map after the best 2-D quadratic
  (the lens test of the seed's Fig. 6).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

REGIMES = ("<0.25%", "0.25-1%", ">1%")
REGIME_THRESHOLDS = (0.0025, 0.01)


def _array(data, name: str) -> np.ndarray:
    try:
        value = data[name]
    except (KeyError, TypeError):
        raise ValueError(f"missing variable {name!r}; expected a mapping or Dataset with dx, dy, transmission") from None
    arr = np.asarray(getattr(value, "values", value), dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (y, x), got shape {arr.shape}")
    return arr


def _crop(arr: np.ndarray, border: int) -> np.ndarray:
    if isinstance(border, bool) or int(border) != border or border < 0:
        raise ValueError(f"border must be a non-negative integer number of pixels, got {border!r}")
    border = int(border)
    if border == 0:
        return arr
    if 2 * border >= min(arr.shape[-2:]):
        raise ValueError(f"border {border} leaves nothing of a {arr.shape[-2]}x{arr.shape[-1]} image")
    return arr[..., border:-border, border:-border]


def _pair(pred, gt, name: str, border: int) -> tuple[np.ndarray, np.ndarray]:
    p, g = _array(pred, name), _array(gt, name)
    if p.shape != g.shape:
        raise ValueError(f"{name}: prediction and ground truth differ in shape: {p.shape} vs {g.shape}")
    return _crop(p, border), _crop(g, border)


def _relative_sq(p: np.ndarray, g: np.ndarray) -> float:
    """``|p - g|^2 / |g|^2``; 0 when both vanish, inf when only the ground truth does."""
    num = float(np.sum((p - g) ** 2))
    den = float(np.sum(g**2))
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def pair_error_terms(pred, gt, border: int = 0) -> dict:
    """The three terms of the seed's Eq. 4 (relative squared errors).

    Returns:
        ``{"dx": ..., "dy": ..., "transmission": ...}``, each ``|p - g|^2 / |g|^2`` (squared L2
        norms over the cropped image; inf where the ground truth is all zero and the prediction
        is not).
    """
    return {name: _relative_sq(*_pair(pred, gt, name, border)) for name in ("dx", "dy", "transmission")}


def pair_error(pred, gt, border: int = 0) -> float:
    """The seed's Eq. 4: sum of the relative squared errors of dx, dy and T."""
    return float(sum(pair_error_terms(pred, gt, border).values()))


def displacement_rmse(pred, gt, border: int = 0) -> float:
    """``sqrt(mean((dx - dx_gt)^2 + (dy - dy_gt)^2))``: the rms length of the error vector, px."""
    px, gx = _pair(pred, gt, "dx", border)
    py, gy = _pair(pred, gt, "dy", border)
    return float(np.sqrt(np.mean((px - gx) ** 2 + (py - gy) ** 2)))


def folded_share(gt, border: int = 0) -> float:
    """The share of pixels where a displacement field folds the speckle.

    The sample reads the reference at ``r - d(r)`` (seed Eq. 1); where the Jacobian
    determinant of that map, ``(1 - d(dx)/dx)(1 - d(dy)/dy) - d(dx)/dy * d(dy)/dx``
    (``np.gradient``, px/px), is zero or negative, two points of the reference land on one
    pixel and no tracker can tell them apart (a caustic).

    Args:
        gt: mapping/Dataset with dx and dy (px).
        border: pixels cropped from every side after the gradients.

    Returns:
        The folded share, 0 to 1.
    """
    dx, dy = _array(gt, "dx"), _array(gt, "dy")
    if dx.shape != dy.shape:
        raise ValueError(f"dx and dy differ in shape: {dx.shape} vs {dy.shape}")
    if min(dx.shape) < 2:
        raise ValueError(f"folded_share needs maps of at least 2 x 2 pixels, got {dx.shape}")
    dxdy, dxdx = np.gradient(dx)
    dydy, dydx = np.gradient(dy)
    det = (1 - dxdx) * (1 - dydy) - dxdy * dydx
    return float(np.mean(_crop(det, border) <= 0))


def transmission_error(pred, gt, border: int = 0) -> float:
    """``sqrt(mean((T - T_gt)^2))``, unitless (T is an intensity transmission)."""
    p, g = _pair(pred, gt, "transmission", border)
    return float(np.sqrt(np.mean((p - g) ** 2)))


def error_regime(value: float) -> str:
    """The seed's three regimes of the pair error: ``"<0.25%"``, ``"0.25-1%"`` or ``">1%"``."""
    value = float(value)
    if math.isnan(value):
        raise ValueError("error_regime: the pair error is NaN")
    if value < REGIME_THRESHOLDS[0]:
        return REGIMES[0]
    if value <= REGIME_THRESHOLDS[1]:
        return REGIMES[1]
    return REGIMES[2]


def background_region(support, erode: int = 3, border: int = 0) -> np.ndarray:
    """Boolean mask of the sample-free region: ``support == 0`` eroded by ``erode`` pixels
    (square structuring element, so at least ``erode`` px from the sample in every direction),
    then cropped by ``border``."""
    support = np.asarray(getattr(support, "values", support))
    if support.ndim != 2:
        raise ValueError(f"support: expected a 2-D array (y, x), got shape {support.shape}")
    free = support == 0
    if erode:
        # Pixels beyond the image edge count as sample-free, so only the sample's edge erodes.
        free = ndimage.binary_erosion(free, structure=np.ones((3, 3), bool), iterations=int(erode), border_value=1)
    return _crop(free, border)


def background_noise(pred, support, border: int = 0, erode: int = 3) -> float:
    """Spread of the displacement where there is no sample, px.

    ``sqrt((std(dx)^2 + std(dy)^2) / 2)`` over :func:`background_region` (the rms of the two
    standard deviations); NaN when there is no sample-free pixel.
    """
    region = background_region(support, erode, border)
    dx, dy = _crop(_array(pred, "dx"), border), _crop(_array(pred, "dy"), border)
    if dx.shape != region.shape:
        raise ValueError(f"support and dx differ in shape: {region.shape} vs {dx.shape}")
    if not region.any():
        return math.nan
    return float(np.sqrt((np.std(dx[region]) ** 2 + np.std(dy[region]) ** 2) / 2))


def residual_after_paraboloid(phase, mask=None, border: int = 0) -> tuple[np.ndarray, float]:
    """Remove the least-squares 2-D quadratic ``a + bx + cy + dx^2 + exy + fy^2`` from a phase.

    Args:
        phase: (H, W) phase in rad (a DataArray is fine).
        mask: optional (H, W) boolean/0-1 array: fit and rms over ``mask != 0`` only.
        border: pixels cropped from every side first.

    Returns:
        ``(residual, rms)``: the residual over the (cropped) image, NaN outside the mask, and
        its rms over the mask, in the phase's units.
    """
    phi = _crop(np.asarray(getattr(phase, "values", phase), dtype=np.float64), border)
    if phi.ndim != 2:
        raise ValueError(f"phase: expected a 2-D array (y, x), got shape {phi.shape}")
    if mask is None:
        region = np.ones(phi.shape, dtype=bool)
    else:
        region = _crop(np.asarray(getattr(mask, "values", mask)) != 0, border)
        if region.shape != phi.shape:
            raise ValueError(f"mask and phase differ in shape: {region.shape} vs {phi.shape}")
    region = region & np.isfinite(phi)
    if region.sum() < 6:
        raise ValueError("residual_after_paraboloid: fewer than 6 pixels to fit a 2-D quadratic")
    y, x = np.mgrid[0 : phi.shape[0], 0 : phi.shape[1]].astype(np.float64)
    # Centre and scale the coordinates so the normal equations stay well conditioned.
    xc, yc = x - x.mean(), y - y.mean()
    scale = max(phi.shape) / 2.0
    xc, yc = xc / scale, yc / scale
    basis = np.stack([np.ones_like(xc), xc, yc, xc**2, xc * yc, yc**2], axis=-1)
    coef, *_ = np.linalg.lstsq(basis[region], phi[region], rcond=None)
    residual = phi - basis @ coef
    residual[~region] = np.nan
    return residual, float(np.sqrt(np.mean(residual[region] ** 2)))


def evaluate_pair(pred, gt, border: int = 8, erode: int = 3) -> dict:
    """All the scalar measures of one reconstruction against its ground truth.

    Args:
        pred: mapping/Dataset with dx, dy, transmission (optionally phase).
        gt: mapping/Dataset with dx, dy, transmission (optionally support).
        border: pixels cropped from every side.
        erode: erosion of the sample-free region for the background noise.

    Returns:
        dict with ``pair_error``, ``pair_error_dx``, ``pair_error_dy``, ``pair_error_t``,
        ``regime``, ``displacement_rmse`` (px), ``transmission_error``, ``background_noise``
        (px; NaN without a support or a sample-free region) and, when ``pred`` has a phase,
        ``phase_residual_rms`` (rad, after the best 2-D quadratic, over the support when
        there is one).
    """
    terms = pair_error_terms(pred, gt, border)
    total = float(sum(terms.values()))
    out = {
        "pair_error": total,
        "pair_error_dx": terms["dx"],
        "pair_error_dy": terms["dy"],
        "pair_error_t": terms["transmission"],
        "regime": error_regime(total),
        "displacement_rmse": displacement_rmse(pred, gt, border),
        "transmission_error": transmission_error(pred, gt, border),
    }
    support = _get(gt, "support")
    out["background_noise"] = math.nan if support is None else background_noise(pred, support, border, erode)
    phase = _get(pred, "phase")
    if phase is not None:
        mask = None
        if support is not None and np.any(np.asarray(getattr(support, "values", support)) != 0):
            mask = support
        out["phase_residual_rms"] = residual_after_paraboloid(phase, mask, border)[1]
    return out


def _get(data, name: str):
    try:
        return data[name]
    except (KeyError, TypeError):
        return None


# ---- speckle statistics (of a reference pattern) --------------------------------------------
def speckle_contrast(image) -> float:
    """Visibility of a speckle pattern: ``C = std / mean``."""
    image = np.asarray(image, dtype=np.float64)
    return float(np.std(image) / np.mean(image))


def grain_size_px(image) -> float:
    """Speckle grain size: FWHM (px) of the normalised autocorrelation peak, mean of x and y.

    The autocorrelation ``<I~(r) I~(r + D)> / <I~^2>`` (``I~ = I - <I>``) is computed with the FFT;
    its x and y profiles are interpolated linearly to their first crossing of 1/2.  Right behind
    a mask of cell size ``a`` the peak is a triangle of half-width ``a``, so the grain is ``a``.
    """
    f = np.asarray(image, dtype=np.float64)
    f = f - f.mean()
    ac = np.fft.ifft2(np.abs(np.fft.fft2(f)) ** 2).real
    ac /= ac[0, 0]
    widths = []
    for profile in (ac[0, : ac.shape[1] // 2], ac[: ac.shape[0] // 2, 0]):
        i = int(np.argmax(profile < 0.5))  # first lag below one half
        widths.append(2 * (i - 1 + (profile[i - 1] - 0.5) / (profile[i - 1] - profile[i])))
    return float(np.mean(widths))


def circle_mask(shape, geometry, diameter_um: float = 800.0, center=None) -> np.ndarray:
    """Boolean (H, W) disc of ``diameter_um`` micrometres (pixel size from ``geometry``), centred on the image."""
    h, w = shape
    cy, cx = ((h - 1) / 2, (w - 1) / 2) if center is None else center
    r_px = diameter_um / 2 / geometry.pixel_size_um
    y, x = np.ogrid[:h, :w]
    return (y - cy) ** 2 + (x - cx) ** 2 <= r_px**2


def lens_residuals(phases: dict, geometry, diameter_um: float = 800.0) -> dict:
    """The seed's lens figures (section 3.2.1): residual phase after the best paraboloid inside a
    central circle, for each reconstruction, and the rms of the difference between each pair.

    Args:
        phases: ``{name: (H, W) phase in rad}`` (e.g. ``{"spinnet": ..., "xst": ..., "truth": ...}``).
        geometry: gives the pixel size.
        diameter_um: the analysis circle (800 um in the seed).

    Returns:
        ``{"residual_rms": {name: rad}, "difference_rms": {"a-b": rad}, "pixels": n}``; the
        difference of two phases is taken after removing its own best paraboloid (phase is
        defined up to a constant, and a paraboloid is the lens itself).
    """
    names = list(phases)
    arrays = {k: np.asarray(getattr(v, "values", v), dtype=np.float64) for k, v in phases.items()}
    shape = next(iter(arrays.values())).shape
    mask = circle_mask(shape, geometry, diameter_um)
    if mask.sum() < 6:
        raise ValueError(f"lens_residuals: the {diameter_um} um circle covers fewer than 6 pixels")
    out = {"residual_rms": {}, "difference_rms": {}, "pixels": int(mask.sum())}
    for k in names:
        out["residual_rms"][k] = residual_after_paraboloid(arrays[k], mask)[1]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            out["difference_rms"][f"{a}-{b}"] = residual_after_paraboloid(arrays[a] - arrays[b], mask)[1]
    return out
