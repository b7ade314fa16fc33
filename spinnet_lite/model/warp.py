"""Backward warping with ``grid_sample`` (the "prop layer"), as RAFT's ``bilinear_sampler``.

The forward model (DESIGN.md section 1) is ``sample(y, x) = T(y, x) * reference(y - dy, x - dx)``.
:func:`warp` applies that displacement to an image: ``warp(reference, d) ~ sample / T``, and
``warp(sample, -d)`` brings the sample back to the reference frame (:func:`inverse_warp`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def pixel_grid(height: int, width: int, device=None, dtype=None) -> torch.Tensor:
    """Pixel coordinates ``(1, 2, H, W)``: channel 0 = x (column index), channel 1 = y (row index)."""
    ys = torch.arange(height, device=device, dtype=dtype)
    xs = torch.arange(width, device=device, dtype=dtype)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy], dim=0).unsqueeze(0)


def _normalise(coord: torch.Tensor, size: int, align_corners: bool) -> torch.Tensor:
    """Pixel coordinate -> grid_sample's [-1, 1] (pixel centres at +-1 when align_corners)."""
    if align_corners:
        return 2.0 * coord / max(size - 1, 1) - 1.0
    return (2.0 * coord + 1.0) / size - 1.0


#: Catmull-Rom weights of the midpoint between samples ``i`` and ``i + 1``: the inner pair
#: ``i, i + 1`` and the outer pair ``i - 1, i + 2`` (symmetric, so the midpoints carry no shift).
_MIDPOINT_INNER, _MIDPOINT_OUTER = 9.0 / 16, -1.0 / 16


def _with_midpoints(flat: torch.Tensor, dim: int) -> torch.Tensor:
    """``(N, 1, H, W)`` -> twice as long along ``dim`` (2 or 3): each sample followed by the
    midpoint to the next one (replicated border)."""
    n = flat.shape[dim]
    p = F.pad(flat, (1, 2, 0, 0) if dim == 3 else (0, 0, 1, 2), mode="replicate")
    mids = _MIDPOINT_INNER * (p.narrow(dim, 1, n) + p.narrow(dim, 2, n)) \
        + _MIDPOINT_OUTER * (p.narrow(dim, 0, n) + p.narrow(dim, 3, n))
    shape = list(flat.shape)
    shape[dim] = 2 * n
    return torch.stack([flat, mids], dim=dim + 1).reshape(shape)


def upsample2_midpoints(image: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, C, 2H, 2W)``: the samples kept at even indices, cubic
    (Catmull-Rom) midpoints between them at odd ones (the last column and row repeat the
    border). Pixel ``i`` of the input is pixel ``2 i`` of the output."""
    batch, channels, height, width = image.shape
    flat = image.reshape(batch * channels, 1, height, width)
    return _with_midpoints(_with_midpoints(flat, 3), 2).reshape(batch, channels, 2 * height, 2 * width)


#: Interpolations of :func:`warp`.
WARP_MODES = ("bilinear", "bicubic", "oversampled")


def warp(image: torch.Tensor, displacement: torch.Tensor, align_corners: bool = True,
         mode: str = "bilinear") -> torch.Tensor:
    """Return ``image(y - dy(y, x), x - dx(y, x))``: the forward model's displacement applied.

    Bilinear interpolation unless ``mode`` says otherwise; outside the image the border value
    is repeated.

    Args:
        image: ``(B, C, H, W)``.
        displacement: ``(B, 2, H, W)`` (or ``(1, 2, H, W)``, broadcast over the batch),
            channel 0 = dx, channel 1 = dy, in pixels *of this image* (at pyramid level l,
            a full-resolution displacement must first be divided by ``2**(l - 1)``).
        align_corners: passed to ``grid_sample`` (True, as RAFT: pixel index ``i`` is at
            ``2 i / (size - 1) - 1``).
        mode: ``"bilinear"`` or ``"bicubic"`` (``grid_sample``'s), or ``"oversampled"``:
            bilinear on the image upsampled 2x by :func:`upsample2_midpoints` (a speckle near
            the pixel pitch is interpolated without the phase-dependent shift of a bilinear or
            Keys-bicubic read at the original pitch; needs ``align_corners=True``).

    Returns:
        The warped image, ``(B, C, H, W)``.

    Raises:
        ValueError: wrong number of dimensions, mismatched shapes or an unknown mode.
    """
    if mode not in WARP_MODES:
        raise ValueError(f"warp: mode must be one of {', '.join(map(repr, WARP_MODES))}, got {mode!r}")
    if image.dim() != 4:
        raise ValueError(f"warp: expected image of shape (B, C, H, W), got {tuple(image.shape)}")
    batch, _, height, width = image.shape
    if displacement.dim() != 4 or displacement.shape[1] != 2 or displacement.shape[-2:] != image.shape[-2:] \
            or displacement.shape[0] not in (1, batch):
        raise ValueError(
            f"warp: expected displacement of shape ({batch}, 2, {height}, {width}), got {tuple(displacement.shape)}"
        )
    source = pixel_grid(height, width, image.device, displacement.dtype) - displacement  # where to read
    if mode == "oversampled":
        if not align_corners:
            raise ValueError("warp: mode='oversampled' needs align_corners=True")
        return read_upsampled(upsample2_midpoints(image), source)
    return _read(image, source, mode, align_corners)


def read_upsampled(upsampled: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``upsampled = upsample2_midpoints(image)`` read bilinearly at ``source`` ``(B or 1, 2,
    h, w)``, (x, y) pixel coordinates *of the image* (any ``h, w``; the border value repeats
    outside): the reads of ``warp(image, ..., mode="oversampled")``. Returns ``(B, C, h, w)``."""
    return _read(upsampled, 2 * source, "bilinear", True)


def _read(image: torch.Tensor, source: torch.Tensor, mode: str, align_corners: bool) -> torch.Tensor:
    """``image`` read at pixel coordinates ``source`` ``(B or 1, 2, h, w)`` (x, y), border repeated."""
    batch, _, height, width = image.shape
    grid = torch.stack(
        [_normalise(source[:, 0], width, align_corners), _normalise(source[:, 1], height, align_corners)], dim=-1
    )  # (B, H, W, 2) with (x, y) last, as grid_sample wants
    if grid.shape[0] != batch:
        grid = grid.expand(batch, -1, -1, -1)
    return F.grid_sample(image, grid.to(image.dtype), mode=mode, padding_mode="border",
                         align_corners=align_corners)


def inverse_warp(sample: torch.Tensor, displacement: torch.Tensor, align_corners: bool = True) -> torch.Tensor:
    """Bring a sample image back to the reference frame: ``warp(sample, -displacement)``.

    Shapes and units as :func:`warp`; ``inverse_warp(sample, d) ~ T * reference``.
    """
    return warp(sample, -displacement, align_corners=align_corners)
