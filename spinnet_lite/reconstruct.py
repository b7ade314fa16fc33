"""One call from a reference/sample pair to labelled displacement, transmission and phase.

``reconstruct(reference, sample, method="spinnet" | "xst", ...)`` (DESIGN.md section 4)
checks the inputs, runs the network (:func:`spinnet_lite.model.predict.predict`) or the
classical speckle tracking (:func:`spinnet_lite.xst.xst`), and returns an ``xarray.Dataset``
with ``dx``, ``dy`` (px), ``transmission`` and, when a :class:`~spinnet_lite.geometry.Geometry`
is given, the phase gradients ``dphi_dx``, ``dphi_dy`` (rad/px) and the integrated ``phase``
(rad, zero mean).
"""
from __future__ import annotations

import inspect
import time

import numpy as np
import xarray as xr

from .checks import as_pair, check_choice, check_intensity, normalise_scale, resolve_device
from .geometry import Geometry
from .integrate import METHODS as INTEGRATION_METHODS
from .integrate import integrate
from .outliers import DEFAULT_THRESHOLD, check_threshold, replace_outliers

METHODS = ("spinnet", "xst")

_VARIABLES = {
    "dx": ("px", "horizontal speckle displacement"),
    "dy": ("px", "vertical speckle displacement"),
    "transmission": ("1", "sample intensity transmission"),
    "correlation": ("1", "zero-normalised cross-correlation at the matched shift"),
    "dphi_dx": ("rad/px", "horizontal phase gradient"),
    "dphi_dy": ("rad/px", "vertical phase gradient"),
    "phase": ("rad", "sample phase shift (zero mean)"),
}


def _allowed_options(func, skip: int) -> set[str] | None:
    """Keyword names ``func`` accepts after its first ``skip`` parameters; None if it takes **kwargs."""
    params = list(inspect.signature(func).parameters.values())[skip:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _check_options(method: str, func, skip: int, options: dict) -> None:
    allowed = _allowed_options(func, skip)
    if allowed is None:
        return
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for method {method!r}; "
            f"it takes {', '.join(sorted(allowed)) or 'none'}"
        )


def _coords(reference, sample, shape, geometry: Geometry | None) -> dict:
    """(y, x) coordinates: those of a DataArray input, else micrometres (geometry) or pixels."""
    for image in (reference, sample):
        if isinstance(image, xr.DataArray) and image.dims == ("y", "x") and "y" in image.coords and "x" in image.coords:
            return {name: (name, image[name].values, dict(image[name].attrs)) for name in ("y", "x")}
    height, width = shape
    if geometry is not None:
        step, units = geometry.pixel_size_um, "um"
    else:
        step, units = 1.0, "px"
    return {
        "y": ("y", np.arange(height) * step, {"units": units, "long_name": "y"}),
        "x": ("x", np.arange(width) * step, {"units": units, "long_name": "x"}),
    }


def _run_xst(ref, sam, options):
    from .xst import xst

    return xst(ref, sam, **options)


#: Largest tile side (px) of the network's pass by default.  Within it the memory model decides
#: (:func:`spinnet_lite.tiling.plan_tiles`): one untiled pass whenever it fits
#: :data:`spinnet_lite.tiling.DEFAULT_MAX_MEMORY` (up to ~1300 x 1300 px for the lite network),
#: else the fewest, largest tiles that fit, one at a time, blended (2112 px: four 1072 px tiles,
#: 4096 px: twelve 1048 x 1392 tiles, 1.6 GB peak).  From the level-4 lite network on (issue 8)
#: one pass is as accurate as tiles; ``tile=256`` restores the training-patch tiles.
DEFAULT_TILE = 4096


def _run_spinnet(ref, sam, model, options):
    from .tiling import _predict_checked

    if model is None:
        from .pretrained import load_pretrained

        model = load_pretrained()
    options = {"tile": DEFAULT_TILE, **options}
    # ref and sam are checked already (as_pair): no second full-size copy.
    return _predict_checked(model, ref, sam, **options)


def reconstruct(reference, sample, method: str = "spinnet", model=None, geometry: Geometry | None = None,
                integration: str = "fc", outliers: float | None = DEFAULT_THRESHOLD, **options) -> xr.Dataset:
    """Displacement, transmission (and with a geometry, phase) from a speckle pair.

    Args:
        reference: reference image (no sample), ``(H, W)`` numpy array or DataArray,
            ``H, W >= 64``.
        sample: sample image, same shape.
        method: ``"spinnet"`` (the network) or ``"xst"`` (windowed ZNCC speckle tracking).
        model: a SPINNet for ``method="spinnet"``; None loads the bundled pretrained weights.
            Ignored by ``"xst"``.
        geometry: a :class:`~spinnet_lite.geometry.Geometry`; with one the result also has
            ``dphi_dx``, ``dphi_dy`` (rad/px) and ``phase`` (rad), and coordinates in um.
        integration: phase integrator, ``"fc"`` (Frankot-Chellappa) or ``"ls"`` (least squares).
        outliers: isolated hot, dead or zinger pixels (more than this many robust standard
            deviations beyond all 8 neighbours, :mod:`spinnet_lite.outliers`) are replaced by
            the median of their neighbours in both images before either method runs; ``None``
            keeps every pixel. Clean speckle has none (largest score measured 6.9, default 12).
        **options: passed to the method: for ``"xst"`` the keywords of
            :func:`spinnet_lite.xst.xst` (``window``, ``search``, ``subpixel``, ``refine``,
            ``device``); for ``"spinnet"`` those of :func:`spinnet_lite.tiling.predict_tiled`:
            ``engine`` (``"auto"``: BatchNorm folded, fast cost volume, the fastest measured
            engine -- ``"bf16"`` on a CPU with native bfloat16, else ``"torch"`` (float32);
            ``"plain"``: the model as trained), ``fast`` (the seed's fast variant, output
            at level 3: quicker, less accurate), ``batch_size``, ``device``, ``tile`` (largest
            tile side, default :data:`DEFAULT_TILE`), ``overlap`` (default 32) and
            ``max_memory`` (bytes per forward pass): the image runs in one pass where that fits,
            else in the fewest overlapping tiles that fit, blended, so a 4096 x 4096 frame
            reconstructs in under 2 GB; ``prealign`` (default True: a clear global offset of 3 px
            or more, such as a mask drift, is found by correlation and taken out before the
            network runs, :mod:`spinnet_lite.align`); ``passes`` (default ``"auto"``: a
            second pass on the residual where the first found a wide field: half the image moved by
            1 px or more); ``symmetries`` (default 1; 2, 4 or 8: the network's answers averaged
            over that many mirror images of the pair, more accurate for that many times the
            network's time); ``iterations`` (passes of the network's finest level, 1-4; default
            what the weights were trained with, ``config.finest_iterations``); ``lk_sigma``
            (default 6 px: after the network, Lucas-Kanade steps in a Gaussian window of this
            sigma correct the slowly varying part of the displacement,
            :mod:`spinnet_lite.lucas_kanade`; 0 or None: the network alone),
            ``lk_iterations`` (those steps, default 2) and ``tv`` (default ``"auto"``: after
            the steps, an edge-preserving refinement whose correction pays for its total
            variation, sharper at steps of the field such as lens rims, ~1.8x the time at
            512 px, :mod:`spinnet_lite.tv_refine`; off with ``lk_sigma=0``; False or 0: off;
            True or a weight of 0-10: on).

    Returns:
        xarray.Dataset, dims ``("y", "x")``, with ``dx``, ``dy`` (px, forward-model sign:
        positive dx = speckle moved to larger x), ``transmission`` (and ``correlation`` for
        XST), each with ``units`` and ``long_name``. Coordinates: those of DataArray inputs,
        else micrometres with a geometry, else pixels (``units="px"``). ``attrs``: ``method``,
        ``options``, ``integration``, ``elapsed_s``, the geometry (``geometry_*``) and, for
        ``"spinnet"``, ``global_offset_px`` (the ``(dy, dx)`` taken out first, or ``(0, 0)``),
        ``passes`` (network passes made) and ``tv_weight`` (the total-variation refinement's
        weight used, raised where the noise is large; 0: off); ``outliers_replaced``
        (reference, sample) and ``outlier_threshold`` (``"off"`` with ``outliers=None``).

    Raises:
        ValueError: mismatched shapes, not 2-D, smaller than 64 px, NaN/inf, constant images,
            images that are not intensities (a mean that is not positive), an unknown method,
            integration, option or device, a geometry that is not a Geometry.
    """
    start = time.perf_counter()
    check_choice(method, METHODS, "method")
    check_choice(integration, INTEGRATION_METHODS, "integration method")
    if geometry is not None and not isinstance(geometry, Geometry):
        raise ValueError(f"geometry must be a spinnet_lite.Geometry or None, got {type(geometry).__name__}")
    if outliers is not None:
        check_threshold(outliers, "outliers (a threshold, or None to keep every pixel)")
    if method == "xst":
        from .xst import xst

        _check_options(method, xst, 2, options)
    else:
        try:
            from .tiling import predict_tiled
        except ImportError as exc:  # pragma: no cover - the network is part of the package
            raise ValueError(f"method 'spinnet' is not available: {exc}") from None
        _check_options(method, predict_tiled, 3, options)  # predict's options plus tile, overlap
    if "device" in options and options["device"] is not None:
        resolve_device(options["device"], what=f"{method}: device")
    ref, sam = as_pair(reference, sample)
    # Intensities (SPINNet and XST alike): a mean that is not positive is refused, and one
    # power-of-two scale makes 1e-310 or 1e300 images safe without changing any result.
    check_intensity(ref, "reference")
    check_intensity(sam, "sample")
    ref, sam = normalise_scale(ref, sam)
    replaced = [0, 0]
    if outliers is not None:
        ref, replaced[0] = replace_outliers(ref, outliers)
        sam, replaced[1] = replace_outliers(sam, outliers)

    if method == "xst":
        result = _run_xst(ref, sam, options)
    else:
        result = _run_spinnet(ref, sam, model, options)
    # each float32 map released as its float64 copy is made: a 4096 px frame's peak stays lower
    arrays = {name: np.asarray(result.pop(name), dtype=np.float64) for name in ("dx", "dy", "transmission")}
    if "correlation" in result:
        arrays["correlation"] = np.asarray(result["correlation"], dtype=np.float64)
    for name, arr in arrays.items():
        if arr.shape != ref.shape:
            raise RuntimeError(f"{method} returned {name} of shape {arr.shape} for images of shape {ref.shape}")

    if geometry is not None:
        arrays["dphi_dx"] = geometry.displacement_to_dphi(arrays["dx"])
        arrays["dphi_dy"] = geometry.displacement_to_dphi(arrays["dy"])
        arrays["phase"] = integrate(arrays["dphi_dx"], arrays["dphi_dy"], method=integration)

    data_vars = {}
    for name, arr in arrays.items():
        units, long_name = _VARIABLES[name]
        data_vars[name] = (("y", "x"), arr, {"units": units, "long_name": long_name})
    ds = xr.Dataset(data_vars, coords=_coords(reference, sample, ref.shape, geometry))
    ds.attrs["method"] = method
    ds.attrs["options"] = repr(dict(sorted(options.items())))
    ds.attrs["integration"] = integration
    ds.attrs["outlier_threshold"] = "off" if outliers is None else float(outliers)
    ds.attrs["outliers_replaced"] = replaced
    if "offset" in result:
        ds.attrs["global_offset_px"] = [int(v) for v in result["offset"]]
    if "passes" in result:
        ds.attrs["passes"] = int(result["passes"])
    if "tv_weight" in result:
        ds.attrs["tv_weight"] = float(result["tv_weight"])
    if geometry is not None:
        ds.attrs.update(geometry.to_attrs())
    ds.attrs["elapsed_s"] = float(time.perf_counter() - start)
    return ds
