"""SPINNet on images larger than memory allows in one pass: overlapping tiles, blended.

The network's activations grow with the image area (at pyramid level 2 a cost volume of
``(2N + 1)**2`` channels at half resolution, and each head's feature maps beside it), so a
2112 x 2112 detector frame in one forward pass needs several GB.  :func:`predict_tiled` cuts
the pair into ``tile x tile`` windows that overlap by ``overlap`` pixels, runs
:func:`spinnet_lite.model.predict.predict` on them a few at a time, and blends the results
with a smooth (raised-cosine) weight that falls to almost zero at every tile edge that lies
inside the image, where the network only saw reflect-padding instead of the true
neighbourhood.  The weights are normalised by their sum, so the blend is a partition of unity
and a constant field comes back unchanged.

Peak memory is that of ``batch_size`` tiles (one by default; a 1024 x 1024 tile through the
lite network takes about 0.5 GB) plus a few full-size float64 arrays, whatever the image size.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .checks import MIN_SIZE, as_pair


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


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def predict_tiled(model, reference, sample, tile: int = 512, overlap: int = 32, batch_size: int = 1,
                  device=None) -> dict[str, np.ndarray]:
    """:func:`spinnet_lite.model.predict.predict` on overlapping tiles, blended back.

    Args:
        model: a :class:`~spinnet_lite.model.spinnet.SPINNet`.
        reference: ``(H, W)`` reference image (numpy array or DataArray), ``H, W >= 64``.
        sample: ``(H, W)`` sample image.
        tile: tile side in pixels (>= 64; a multiple of 32 avoids padding inside each tile).
            An image no larger than ``tile`` on a side is one tile along that side.
        overlap: pixels shared by neighbouring tiles (>= 0, < tile / 2); the blending ramps
            are this wide.  32 px (the coarsest pyramid level's pixel) is a good default.
        batch_size: tiles per forward pass (memory grows with it; 1 keeps the peak at one tile).
        device: torch device (default: where the model is).

    Returns:
        ``{"dx": ..., "dy": ..., "transmission": ...}``, float32 ``(H, W)`` arrays, as
        :func:`~spinnet_lite.model.predict.predict` returns for one pair.

    Raises:
        ValueError: bad images (see :func:`spinnet_lite.checks.as_pair`), a tile smaller than
            64 px, an overlap outside ``[0, tile / 2)``, a bad batch size.
    """
    from .model.predict import predict

    if not _is_int(tile) or tile < MIN_SIZE:
        raise ValueError(f"predict_tiled: tile must be an integer >= {MIN_SIZE} px, got {tile!r}")
    if not _is_int(overlap) or not 0 <= overlap < tile / 2:
        raise ValueError(f"predict_tiled: overlap must be an integer in [0, tile/2 = {tile / 2:g}), got {overlap!r}")
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"predict_tiled: batch_size must be a positive integer, got {batch_size!r}")
    tile, overlap, batch_size = int(tile), int(overlap), int(batch_size)
    ref, sam = as_pair(reference, sample)
    height, width = ref.shape
    if height <= tile and width <= tile:
        return predict(model, ref, sam, batch_size=batch_size, device=device)

    # One global scale, so every tile sees the intensities of the whole image (predict then
    # divides each tile by its own reference mean, which stays close to 1).
    scale = ref.mean()
    if not scale > 0:
        raise ValueError("reference: mean intensity must be positive (an intensity image is expected)")
    ref, sam = ref / scale, sam / scale
    th, tw = min(tile, height), min(tile, width)
    starts = [(y0, x0) for y0 in tile_starts(height, th, overlap) for x0 in tile_starts(width, tw, overlap)]
    total = np.zeros((3, height, width))
    weight_sum = np.zeros((height, width))
    for first in range(0, len(starts), batch_size):
        group = starts[first:first + batch_size]
        refs = np.stack([ref[y0:y0 + th, x0:x0 + tw] for y0, x0 in group])
        sams = np.stack([sam[y0:y0 + th, x0:x0 + tw] for y0, x0 in group])
        out = predict(model, refs, sams, batch_size=batch_size, device=device)
        for i, (y0, x0) in enumerate(group):
            w = blend_weight((height, width), (y0, x0), (th, tw), overlap)
            for c, name in enumerate(("dx", "dy", "transmission")):
                total[c, y0:y0 + th, x0:x0 + tw] += w * out[name][i]
            weight_sum[y0:y0 + th, x0:x0 + tw] += w
    total /= weight_sum
    return {name: total[c].astype(np.float32) for c, name in enumerate(("dx", "dy", "transmission"))}
