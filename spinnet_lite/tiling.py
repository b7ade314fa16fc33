"""SPINNet on any image size: one pass where memory allows, large overlapping tiles where not.

The network's activations grow with the image area (at the finest level a cost volume of
``(2N + 1)**2`` channels at half resolution, each head's feature maps beside it).
:func:`inference_bytes` is a memory model of one forward pass: it counts the float32 planes
alive at the worst moment of the forward pass, for any :class:`SPINNetConfig`, times a factor
measured on this project's networks (``tests/test_fast.py`` checks that it bounds the measured
peak).  :func:`plan_tiles` uses it: the whole image in one pass when that fits ``max_memory``
(default :data:`DEFAULT_MAX_MEMORY`), else the fewest, largest tiles that fit; on a GPU as many
tiles per batch as fit (on the CPU one at a time measured faster).

Tiles overlap by ``overlap`` pixels and are blended with a smooth (raised-cosine) weight that
falls to almost zero at every tile edge that lies inside the image, where the network only saw
padding instead of the true neighbourhood.  The weights are normalised by their sum, so the
blend is a partition of unity and a constant field comes back unchanged.  The full-size buffer
is the float32 result (three planes of the image), whatever the tile size.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .checks import MIN_SIZE, as_pair, check_symmetries
from .lucas_kanade import DEFAULT_ITERATIONS as LK_ITERATIONS
from .lucas_kanade import DEFAULT_SIGMA as LK_SIGMA
from .lucas_kanade import check_iterations as check_lk_iterations
from .lucas_kanade import check_sigma, refine_field
from .tv_refine import refine_field_tv, resolve_tv

#: Default bound (bytes) on the memory of one forward pass (the network's activations, as
#: :func:`inference_bytes` counts them).  With the process itself (~0.4 GB), the images, the
#: library's full-size copies and the blending buffers, a 4096 x 4096 reconstruction then peaks
#: at ~1.7 GB RSS (twelve 1048 x 1392 tiles for the lite network; under 2 GB is tested in
#: ``tests/test_fast.py``; 1.0e9 gave nine 1392 px tiles and 1.82 GB, too close).  Images up to
#: ~1300 x 1300 px are one pass; a 2112 x 2112 frame is four 1072 px tiles (3 % more pixels
#: than one pass, which would need ~1.5 GB of activations).  Pass ``max_memory`` for more.
DEFAULT_MAX_MEMORY = 0.75e9

#: Factor on the planes counted by :func:`inference_bytes` for what they leave out: oneDNN's
#: reordered copies and scratch, allocator slack, the normalisation's temporaries.  Measured
#: peak growth of a first pass in a fresh process, lite network (first level 4), "torch"
#: engine: 0.84-1.0 of the model at 512-1536 px (fixed costs make it up to ~1.1 at 768 px);
#: "onnxruntime" ~0.8 and "torchscript" ~0.5 on a second call at 1024 px.
MEMORY_OVERHEAD = 1.5


def _padded(length: int, multiple: int) -> int:
    return length + (-length) % multiple


def inference_bytes(config, height: int, width: int, batch: int = 1, fast: bool = False) -> int:
    """Estimated peak memory (bytes) of one forward pass of a network with ``config``.

    Counts the float32 planes alive at the worst point of :meth:`SPINNet.forward` (the inputs and
    their normalised copies, both feature pyramids, then at each level the running estimate, the
    warped features, the cost volume, the concatenated head input and the first convolution's
    output), multiplied by :data:`MEMORY_OVERHEAD`.

    Args:
        config: a :class:`~spinnet_lite.model.config.SPINNetConfig` (or a model with ``.config``).
        height, width: image size (padded up to the network's size multiple here).
        batch: pairs per pass.
        fast: the fast variant (last level 3).
    """
    config = getattr(config, "config", config)
    multiple = 2 ** (config.first_level - 1)
    pixels = batch * _padded(int(height), multiple) * _padded(int(width), multiple)
    last = max(config.last_level, 3) if fast else config.last_level
    widths, n_cost = config.estimator_widths, (2 * config.search_range + 1) ** 2
    inputs = 2 + (10 if config.input_norm_sigma > 0 else 0)  # images; normalised copies and temporaries
    pyramid = sum(2 * config.pyramid_channels[level - 2] / 4 ** (level - 1)
                  for level in range(2, config.first_level + 1))
    heads = 0.0
    for level in range(config.first_level, last - 1, -1):
        state = 3 + widths[-1] + 2                       # displacement, T, context; displacement / scale
        cost = n_cost + config.pyramid_channels[level - 2]  # cost volume and warped reference features
        head_in = n_cost + 2 + widths[-1]                 # PhaseNet's concatenated input
        heads = max(heads, (state + cost + head_in + widths[0]) / 4 ** (level - 1))
    return int(MEMORY_OVERHEAD * 4 * pixels * (inputs + pyramid + heads))


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start indices of tiles of size ``tile`` covering ``[0, length)`` with at least ``overlap`` px shared.

    The tiles are spread evenly (the last one ends exactly at ``length``); a single tile
    starting at 0 when ``tile >= length``.
    """
    if tile >= length:
        return [0]
    step = tile - overlap
    count = 1 + math.ceil((length - tile) / step)
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def _tile_for(length: int, count: int, overlap: int, multiple: int) -> int:
    """Smallest tile (a multiple of ``multiple`` where possible) covering ``length`` in ``count`` tiles."""
    if count <= 1:
        return length
    tile = math.ceil((length + (count - 1) * overlap) / count)
    return min(length, max(MIN_SIZE, _padded(tile, multiple)))


def plan_tiles(model, height: int, width: int, max_memory: float | None = None, overlap: int = 32,
               fast: bool = False, max_tile=None) -> dict:
    """How to run ``model`` on an ``height x width`` pair within ``max_memory`` bytes.

    One pass when :func:`inference_bytes` of the whole (padded) image fits and no side exceeds
    ``max_tile``; otherwise the fewest tiles (split along the longer side first) whose pass
    fits, each a multiple of the network's size multiple where possible, and as many tiles per
    batch as fit.

    Args:
        model: a SPINNet (or anything with a ``config``); a stand-in without one gets one pass.
        height, width: image size.
        max_memory: bytes one forward pass may use (default :data:`DEFAULT_MAX_MEMORY`).
        overlap: pixels shared by neighbouring tiles.
        fast: plan for the fast variant.
        max_tile: None, an int or ``(th, tw)``: tiles are never larger than this.

    Returns:
        ``{"tile": (th, tw), "batch_size": b, "tiles": n, "bytes": estimate of one tile's pass}``;
        ``tile == (height, width)`` means one pass.
    """
    cap = _tile_shape(max_tile, height, width) or (height, width)
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "first_level"):
        tiles = len(tile_starts(height, cap[0], overlap)) * len(tile_starts(width, cap[1], overlap))
        return {"tile": cap, "batch_size": 1, "tiles": tiles, "bytes": None}
    budget = DEFAULT_MAX_MEMORY if max_memory is None else float(max_memory)
    multiple = 2 ** (config.first_level - 1)
    ny = nx = 1
    th, tw = cap
    while inference_bytes(config, th, tw, fast=fast) > budget and (th > MIN_SIZE or tw > MIN_SIZE):
        if (th >= tw and th > MIN_SIZE) or tw <= MIN_SIZE:
            ny += 1
        else:
            nx += 1
        th = min(cap[0], _tile_for(height, ny, overlap, multiple))
        tw = min(cap[1], _tile_for(width, nx, overlap, multiple))
    tiles = len(tile_starts(height, th, overlap)) * len(tile_starts(width, tw, overlap))
    one = inference_bytes(config, th, tw, fast=fast)
    batch = int(max(1, min(tiles, budget // max(one, 1))))
    return {"tile": (th, tw), "batch_size": batch, "tiles": tiles, "bytes": one}


def _ramp(size: int, overlap: int, rise: bool, fall: bool) -> np.ndarray:
    """1-D blending weight of one tile: raised-cosine ramps of ``overlap`` px at the inner edges."""
    w = np.ones(size)
    if overlap <= 0:
        return w
    n = min(overlap, size // 2)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)  # (0, 1), never exactly 0
    if rise:
        w[:n] = ramp
    if fall:
        w[size - n:] = np.minimum(w[size - n:], ramp[::-1])
    return w


def blend_weight(shape, start: tuple[int, int], tile_shape: tuple[int, int], overlap: int) -> np.ndarray:
    """2-D weight (tile_h, tile_w) of the tile at ``start`` in an image of ``shape``.

    Ramps only on the edges that lie inside the image; edges on the image border keep full weight.
    """
    (y0, x0), (th, tw) = start, tile_shape
    wy = _ramp(th, overlap, rise=y0 > 0, fall=y0 + th < shape[0])
    wx = _ramp(tw, overlap, rise=x0 > 0, fall=x0 + tw < shape[1])
    return wy[:, None] * wx[None, :]


def _device_of(model, device=None):
    """``device``, else where the model's weights are, else the CPU."""
    if device is not None:
        return device
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return "cpu"


def _on_gpu(model, device) -> bool:
    """Whether the pass runs on a GPU.  Only there do batched tiles pay: on the CPU one tile at a
    time was measured faster (2112 px frame, 1072 px tiles: 3.1 s one by one, 3.8 s four at
    once; 256 px tiles: 4.1 s vs 4.7 s), as each pass's working set stays smaller."""
    device = _device_of(model, device)
    try:
        import torch

        return torch.device(device).type != "cpu"
    except (RuntimeError, TypeError, ValueError):
        return False


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _tile_shape(tile, height: int, width: int) -> tuple[int, int] | None:
    """``tile`` option -> (th, tw) clipped to the image, or None for the automatic plan."""
    if tile is None:
        return None
    sides = tuple(tile) if isinstance(tile, (tuple, list)) else (tile, tile)
    if len(sides) != 2 or not all(_is_int(s) and s >= MIN_SIZE for s in sides):
        raise ValueError(f"predict_tiled: tile must be None (automatic), an integer >= {MIN_SIZE} px "
                         f"or a (height, width) pair of them, got {tile!r}")
    return min(int(sides[0]), height), min(int(sides[1]), width)


def predict_tiled(model, reference, sample, tile=None, overlap: int = 32, batch_size: int | None = None,
                  device=None, engine: str = "auto", fast: bool = False,
                  max_memory: float | None = None, prealign: bool = True, passes="auto",
                  symmetries: int = 1, iterations: int | None = None, lk_sigma: float | None = LK_SIGMA,
                  lk_iterations: int = LK_ITERATIONS, tv="auto") -> dict[str, np.ndarray]:
    """:func:`spinnet_lite.model.predict.predict`, in one pass where it fits, in blended tiles where not.

    Args:
        model: a :class:`~spinnet_lite.model.spinnet.SPINNet`.
        reference: ``(H, W)`` reference image (numpy array or DataArray), ``H, W >= 64``.
        sample: ``(H, W)`` sample image.
        tile: the largest tile side, an int or ``(th, tw)`` (>= 64); None (default): no limit
            but memory.  The plan (:func:`plan_tiles`) runs the whole image in one pass when
            it is no larger than ``tile`` and its pass fits ``max_memory``, else the fewest,
            largest tiles that satisfy both.
        overlap: pixels shared by neighbouring tiles (>= 0, < tile / 2); the blending ramps
            are this wide.  32 px is a good default.
        batch_size: tiles per forward pass (None: one on the CPU, where that measured fastest;
            on a GPU as many as fit ``max_memory``).
        device: torch device (default: where the model is).
        engine: inference engine, see :func:`spinnet_lite.model.fast.prepare`.
        fast: run the fast variant (output at level 3, then the refiners).
        max_memory: bytes one forward pass may use (default :data:`DEFAULT_MAX_MEMORY`).
        prealign: first find a global whole-pixel offset between the images by correlation
            (:func:`spinnet_lite.align.global_offset`; applied only when it is clear and at
            least 3 px), move the reference by it and add it back to ``dx``, ``dy``: a drift of
            the mask between the exposures then costs nothing.  False: the network alone.
        passes: network passes, 1-4, or ``"auto"`` (default): a second pass, on the reference
            warped by the smoothed first estimate, only where the first pass found a wide field
            (half the image moved by 1 px or more, :mod:`spinnet_lite.align`); each pass after the first
            costs one more network pass and a cubic warp of the reference.
        symmetries: 1 (default), 2, 4 or 8: average the network's answers over that many
            mirror images of the pair (:data:`SYMMETRIES`: the identity; the mirror in x; the
            mirrors in y and in both; the same after a transpose), each mapped back, with the
            signs of ``dx``, ``dy`` flipped (and the two swapped) as the mirror requires. The
            network is not exactly mirror-symmetric, and its errors in mirrored images are partly
            independent: on the held-out set 2 / 4 / 8 cut the median displacement error of the
            bundled weights by 10 / 16 / 17 % for 2 / 4 / 8 times the network's time
            (``benchmarks/evaluate.py --spinnet-options symmetries=4``). The result is then
            exactly symmetric under those mirrors; with ``passes`` > 1 every pass is averaged.
        iterations: passes of the network's finest level inside each network pass, 1-4
            (default the network's ``config.finest_iterations``; see
            :func:`spinnet_lite.model.predict.predict`).
        lk_sigma: after the network, ``lk_iterations`` Lucas-Kanade steps with a Gaussian
            window of this sigma (px, 1-64; default 6) correct the slowly varying part of the
            displacement (:mod:`spinnet_lite.lucas_kanade`, a deviation from the seed); 0 or None:
            the network's answer alone.  On the held-out set the median displacement error
            falls by about a quarter, for ~15 % more time at 512 px.
        lk_iterations: Lucas-Kanade steps, 1-8 (default 2).
        tv: ``"auto"`` (default: on with the Lucas-Kanade step, off with ``lk_sigma=0``), True
            (a weight of 0.05), False / 0 (off) or a weight (0-10): an edge-preserving
            refinement after the Lucas-Kanade steps (:mod:`spinnet_lite.tv_refine`, a deviation
            from the seed): a fit in a 1.5 px window with the total variation of its correction
            to the answer so far penalised, which sharpens steps of the field (lens rims, contour
            edges) that the network and the 6 px Lucas-Kanade window smooth. On the held-out set
            it puts 21 instead of 17 of 24 pairs below 1 % Eq. 4 (the four lens pairs among
            them), for ~1.8x the time at 512 px.

    Returns:
        ``{"dx": ..., "dy": ..., "transmission": ...}``, float32 ``(H, W)`` arrays, as
        :func:`~spinnet_lite.model.predict.predict` returns for one pair, and ``"offset"``:
        the global ``(dy, dx)`` found (``(0, 0)`` when none was applied), ``"passes"``: the
        number of network passes made, and ``"tv_weight"``: the total-variation refinement's
        weight used (0: off).

    Raises:
        ValueError: bad images (see :func:`spinnet_lite.checks.as_pair`), a tile smaller than
            64 px, an overlap outside ``[0, tile / 2)``, a bad batch size or memory bound,
            ``symmetries`` not 1, 2, 4 or 8, ``iterations`` not None or 1-4, ``lk_sigma`` not 0,
            None or 1-64, ``lk_iterations`` not 1-8, ``tv`` not ``"auto"``, a bool or a weight of 0-10.
    """
    ref, sam = as_pair(reference, sample)
    return _predict_checked(model, ref, sam, tile=tile, overlap=overlap, batch_size=batch_size, device=device,
                            engine=engine, fast=fast, max_memory=max_memory, prealign=prealign, passes=passes,
                            symmetries=symmetries, iterations=iterations, lk_sigma=lk_sigma,
                            lk_iterations=lk_iterations, tv=tv)


MAX_PASSES = 4


#: The mirror images of a pair that ``symmetries`` averages over, as (transpose, mirror x,
#: mirror y), applied in that order; the first 1, 2, 4 and 8 of them are each a group (the
#: identity; a mirror; the four mirrors and half turn of a rectangle; the eight symmetries of
#: a square), so the averaged result is exactly symmetric under them.
SYMMETRIES = ((False, False, False), (False, True, False), (False, False, True), (False, True, True),
              (True, False, False), (True, True, False), (True, False, True), (True, True, True))


def mirror_image(image: np.ndarray, transpose: bool, mirror_x: bool, mirror_y: bool) -> np.ndarray:
    """``image`` (H, W) seen in a mirror: transposed, then mirrored in x (columns), then in y (rows)."""
    if transpose:
        image = image.T
    if mirror_x:
        image = image[:, ::-1]
    if mirror_y:
        image = image[::-1]
    return np.ascontiguousarray(image)


def unmirror_fields(out: dict, transpose: bool, mirror_x: bool, mirror_y: bool) -> tuple:
    """``(dx, dy, transmission)`` measured on :func:`mirror_image` views, back on the original grid.

    A mirror in x reverses the columns and the sign of ``dx``; in y the rows and the sign of
    ``dy``; a transpose swaps the axes and with them ``dx`` and ``dy``.
    """
    dx, dy, t = out["dx"], out["dy"], out["transmission"]
    if mirror_y:
        dx, dy, t = dx[::-1], -dy[::-1], t[::-1]
    if mirror_x:
        dx, dy, t = -dx[:, ::-1], dy[:, ::-1], t[:, ::-1]
    if transpose:
        dx, dy, t = dy.T, dx.T, t.T
    return dx, dy, t


def _predict_symmetric(model, ref: np.ndarray, sam: np.ndarray, symmetries: int = 1, **options) -> dict:
    """The network's pass on a checked pair, averaged over its first ``symmetries`` mirror images."""
    if symmetries == 1:
        return _predict_network(model, ref, sam, **options)
    total = np.zeros((3, *ref.shape), np.float32)
    for mirror in SYMMETRIES[:symmetries]:
        out = _predict_network(model, mirror_image(ref, *mirror), mirror_image(sam, *mirror), **options)
        for acc, field in zip(total, unmirror_fields(out, *mirror)):
            acc += field
        del out
    total /= np.float32(symmetries)
    return dict(zip(("dx", "dy", "transmission"), total))


def _predict_checked(model, ref: np.ndarray, sam: np.ndarray, prealign: bool = True, passes="auto",
                     symmetries: int = 1, lk_sigma: float | None = LK_SIGMA, lk_iterations: int = LK_ITERATIONS,
                     tv="auto", **options) -> dict:
    """:func:`predict_tiled` on a pair already checked by :func:`spinnet_lite.checks.as_pair`."""
    from .align import AUTO_MIN_MEDIAN, field_extent, global_offset, shift_image, smooth_field, warp_reference

    if not isinstance(prealign, (bool, np.bool_)):
        raise ValueError(f"predict_tiled: prealign must be True or False, got {prealign!r}")
    if not (passes == "auto" if isinstance(passes, str) else _is_int(passes) and 1 <= passes <= MAX_PASSES):
        raise ValueError(f"predict_tiled: passes must be 'auto' or an integer from 1 to {MAX_PASSES}, got {passes!r}")
    symmetries = check_symmetries(symmetries, "predict_tiled: symmetries")
    lk_sigma = check_sigma(lk_sigma, "predict_tiled: lk_sigma")
    lk_iterations = check_lk_iterations(lk_iterations, "predict_tiled: lk_iterations")
    tv = resolve_tv(tv, lk_sigma, "predict_tiled: tv")
    from .model.config import check_iterations

    check_iterations(options.get("iterations"), "predict_tiled: iterations")
    offset = global_offset(ref, sam) if prealign else (0, 0)
    first_ref = shift_image(ref, offset) if offset != (0, 0) else ref  # the network sees the residual field
    out = _predict_symmetric(model, first_ref, sam, symmetries, **options)
    del first_ref
    if offset != (0, 0):
        out["dx"] = out["dx"] + np.float32(offset[1])
        out["dy"] = out["dy"] + np.float32(offset[0])
    if passes == "auto":
        passes = 2 if field_extent(out["dx"], out["dy"], offset) >= AUTO_MIN_MEDIAN else 1
    for _ in range(int(passes) - 1):
        # the reference moved by the (lightly smoothed) estimate; the network finds what is left
        sdx, sdy = smooth_field(out["dx"]), smooth_field(out["dy"])
        del out  # large frames: only the smoothed estimate stays while the next pass runs
        warped = warp_reference(ref, sdx, sdy)
        out = _predict_symmetric(model, warped, sam, symmetries, **options)
        del warped
        out["dx"] += sdx
        out["dy"] += sdy
        del sdx, sdy
    if lk_sigma or tv:
        field = np.empty((2, *ref.shape), np.float32)  # refined in place; each map freed once copied
        field[0] = out.pop("dx")
        field[1] = out.pop("dy")
        device = _device_of(model, options.get("device"))
        if lk_sigma:
            refine_field(ref, sam, field, lk_sigma, lk_iterations, device=device)
        if tv:
            report = {}
            refine_field_tv(ref, sam, field, tv, device=device, symmetries=symmetries, report=report)
            out["tv_weight"] = report["weight"]
        out["dx"], out["dy"] = field[0], field[1]
    out.setdefault("tv_weight", 0.0)
    out["offset"] = tuple(int(v) for v in offset)
    out["passes"] = int(passes)
    return out


def _predict_network(model, ref: np.ndarray, sam: np.ndarray, tile=None, overlap: int = 32,
                     batch_size: int | None = None, device=None, engine: str = "auto", fast: bool = False,
                     max_memory: float | None = None, iterations: int | None = None) -> dict[str, np.ndarray]:
    """The network's pass (one, or blended tiles) on a checked pair."""
    from .model.predict import predict

    height, width = ref.shape
    cap = _tile_shape(tile, height, width)
    one_tile = cap is not None and cap[0] >= height and cap[1] >= width  # one pass: the overlap plays no part
    if not _is_int(overlap) or overlap < 0 or (cap is not None and not one_tile and not overlap < min(cap) / 2):
        limit = f"tile/2 = {min(cap) / 2:g}" if cap is not None else "tile/2"
        raise ValueError(f"predict_tiled: overlap must be an integer in [0, {limit}), got {overlap!r}")
    if batch_size is not None and (not _is_int(batch_size) or batch_size < 1):
        raise ValueError(f"predict_tiled: batch_size must be a positive integer, got {batch_size!r}")
    if max_memory is not None and (isinstance(max_memory, bool) or not isinstance(max_memory, numbers.Real)
                                   or not max_memory > 0):
        raise ValueError(f"predict_tiled: max_memory must be a positive number of bytes, got {max_memory!r}")
    plan = plan_tiles(model, height, width, max_memory, int(overlap), fast=bool(fast), max_tile=cap)
    th, tw = plan["tile"]
    overlap = min(int(overlap), (min(th, tw) - 1) // 2)
    if batch_size is None:
        batch_size = plan["batch_size"] if _on_gpu(model, device) else 1
    extra = {}  # only what differs from predict()'s defaults (stand-ins for predict take the old keywords)
    if engine != "auto":
        extra["engine"] = engine
    if fast:
        extra["fast"] = True
    if iterations is not None:
        extra["iterations"] = iterations
    if th >= height and tw >= width:
        return predict(model, ref, sam, batch_size=batch_size, device=device, **extra)

    # One global scale, so every tile sees the intensities of the whole image (predict then
    # divides each tile by its own reference mean, which stays close to 1).
    scale = float(ref.mean())
    if not scale > 0:
        raise ValueError("reference: mean intensity must be positive (an intensity image is expected)")
    rows, cols = tile_starts(height, th, overlap), tile_starts(width, tw, overlap)
    starts = [(y0, x0) for y0 in rows for x0 in cols]
    # Every tile's weight is wy(y) * wx(x) and the tiles form a grid, so the sum of the weights
    # is (sum of the wy) x (sum of the wx): two 1-D arrays instead of a full-size plane.
    sum_y, sum_x = np.zeros(height), np.zeros(width)
    for y0 in rows:
        sum_y[y0:y0 + th] += _ramp(th, overlap, rise=y0 > 0, fall=y0 + th < height)
    for x0 in cols:
        sum_x[x0:x0 + tw] += _ramp(tw, overlap, rise=x0 > 0, fall=x0 + tw < width)
    total = np.zeros((3, height, width), np.float32)
    for first in range(0, len(starts), batch_size):
        group = starts[first:first + batch_size]
        refs = np.stack([ref[y0:y0 + th, x0:x0 + tw] for y0, x0 in group]) / scale
        sams = np.stack([sam[y0:y0 + th, x0:x0 + tw] for y0, x0 in group]) / scale
        out = predict(model, refs, sams, batch_size=batch_size, device=device, **extra)
        del refs, sams
        for i, (y0, x0) in enumerate(group):
            w = blend_weight((height, width), (y0, x0), (th, tw), overlap).astype(np.float32)
            for c, name in enumerate(("dx", "dy", "transmission")):
                total[c, y0:y0 + th, x0:x0 + tw] += w * out[name][i]
        del out
    total /= sum_y.astype(np.float32)[None, :, None]
    total /= sum_x.astype(np.float32)[None, None, :]
    return {name: total[c] for c, name in enumerate(("dx", "dy", "transmission"))}
