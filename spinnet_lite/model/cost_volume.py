"""The PWC-Net cost volume in plain PyTorch (as ezflow): pad, loop over shifts, mean, concatenate.

:func:`cost_volume` is the reference; :func:`cost_volume_banded` computes the same numbers
in row bands small enough for the CPU cache (the reference streams a ``(B, C, H, W)``
product through memory once per shift, which at the finest level of a 2112 px frame is most
of its time) and is what :class:`FastCostVolume` (the inference path) uses.

For a search range ``N`` the volume has ``(2N + 1)**2`` channels; channel
``k = (sy + N) * (2N + 1) + (sx + N)`` holds, for the shift ``(sy, sx)``,

    cost_k(y, x) = mean_c f_sample(c, y, x) * f_ref_warped(c, y - sy, x - sx)

with zeros outside the image. If ``f_sample(x) = f_ref(x - t)`` (the sample features are the
reference features displaced by ``t``, the forward model's convention) the peak is at ``s = t``:
the cost volume's peak is the residual displacement, in pixels of its pyramid level.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import LEAKY_SLOPE


def num_shifts(search_range: int) -> int:
    """Number of channels of the cost volume: ``(2N + 1)**2``."""
    return (2 * search_range + 1) ** 2


def shift_of_channel(channel: int, search_range: int) -> tuple[int, int]:
    """Shift ``(sy, sx)`` (pixels) of cost-volume channel ``channel``; inverse of :func:`channel_of_shift`."""
    side = 2 * search_range + 1
    if not 0 <= channel < side * side:
        raise ValueError(f"channel {channel} out of range for search range {search_range} ({side * side} channels)")
    return channel // side - search_range, channel % side - search_range


def channel_of_shift(sy: int, sx: int, search_range: int) -> int:
    """Cost-volume channel of shift ``(sy, sx)``: ``(sy + N) * (2N + 1) + (sx + N)``."""
    if max(abs(sy), abs(sx)) > search_range:
        raise ValueError(f"shift ({sy}, {sx}) outside the search range {search_range}")
    return (sy + search_range) * (2 * search_range + 1) + (sx + search_range)


def _checked_range(name: str, f_sample: torch.Tensor, f_ref_warped: torch.Tensor, search_range) -> int:
    """The search range as an int, after checking both feature maps; errors name ``name``."""
    if f_sample.dim() != 4 or f_sample.shape != f_ref_warped.shape:
        raise ValueError(
            f"{name}: expected two (B, C, H, W) tensors of the same shape, "
            f"got {tuple(f_sample.shape)} and {tuple(f_ref_warped.shape)}"
        )
    n = int(search_range)
    if n < 0:
        raise ValueError(f"{name}: search_range must be >= 0, got {search_range}")
    return n


def cost_volume(f_sample: torch.Tensor, f_ref_warped: torch.Tensor, search_range: int) -> torch.Tensor:
    """Correlation of two feature maps over all shifts up to ``search_range`` pixels.

    Args:
        f_sample: sample features ``(B, C, H, W)``.
        f_ref_warped: reference features already warped by the current displacement, ``(B, C, H, W)``.
        search_range: ``N``, the largest shift in pixels of this level.

    Returns:
        ``(B, (2N + 1)**2, H, W)``, channel order as in the module docstring (no activation).
    """
    n = _checked_range("cost_volume", f_sample, f_ref_warped, search_range)
    height, width = f_sample.shape[-2:]
    padded = F.pad(f_ref_warped, (n, n, n, n))  # zeros outside
    costs = []
    for sy in range(-n, n + 1):
        for sx in range(-n, n + 1):
            # padded[y + n - sy] = f_ref_warped[y - sy]
            shifted = padded[:, :, n - sy:n - sy + height, n - sx:n - sx + width]
            costs.append((f_sample * shifted).mean(dim=1, keepdim=True))
    return torch.cat(costs, dim=1)


#: Elements of one band's product ``(B, C, rows, W)`` in :func:`cost_volume_banded`: 2 MB of
#: float32, which stays in a core's L2/L3 cache; measured with ``benchmarks/speed.py --cost-volume``.
BAND_ELEMENTS = 1 << 19


def cost_volume_banded(f_sample: torch.Tensor, f_ref_warped: torch.Tensor, search_range: int,
                       band_elements: int = BAND_ELEMENTS, planar_out: bool = False) -> torch.Tensor:
    """:func:`cost_volume`, computed in bands of rows so each product stays in cache.

    The same sums as the reference (the ``1/C`` of the mean is applied to ``f_sample`` once,
    which changes only float rounding, ~1e-7 relative). Arguments, shapes and channel order as
    :func:`cost_volume`; ``band_elements`` bounds ``B * C * rows * W`` of one band's product.
    The output has the input's memory format, or is planar with ``planar_out``.
    """
    n = _checked_range("cost_volume_banded", f_sample, f_ref_warped, search_range)
    batch, channels, height, width = f_sample.shape
    nhwc = f_sample.is_contiguous(memory_format=torch.channels_last) and not f_sample.is_contiguous()
    if nhwc:  # the products reduce over channels: 2-4x faster planar (measured, 8-16 channels)
        f_sample, f_ref_warped = f_sample.contiguous(), f_ref_warped.contiguous()
    padded = F.pad(f_ref_warped, (n, n, n, n))  # zeros outside
    scaled = f_sample * (1.0 / channels)
    out = f_sample.new_empty(batch, (2 * n + 1) ** 2, height, width)
    rows = max(1, min(height, int(band_elements) // max(1, batch * channels * width)))
    for y0 in range(0, height, rows):
        y1 = min(height, y0 + rows)
        a = scaled[:, :, y0:y1]
        k = 0
        for sy in range(-n, n + 1):
            band = padded[:, :, n - sy + y0:n - sy + y1]  # rows y - sy of f_ref_warped
            for sx in range(-n, n + 1):
                torch.sum(a * band[:, :, :, n - sx:n - sx + width], dim=1, out=out[:, k, y0:y1])
                k += 1
    if nhwc and not planar_out:
        out = out.contiguous(memory_format=torch.channels_last)  # NHWC in, NHWC out: the heads' convs stay NHWC
    return out


class CostVolume(nn.Module):
    """:func:`cost_volume` followed by LeakyReLU(0.1), as PWC-Net applies to its correlation."""

    def __init__(self, search_range: int):
        super().__init__()
        self.search_range = int(search_range)

    def forward(self, f_sample: torch.Tensor, f_ref_warped: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(cost_volume(f_sample, f_ref_warped, self.search_range), LEAKY_SLOPE)

    def extra_repr(self) -> str:
        return f"search_range={self.search_range}"


class FastCostVolume(CostVolume):
    """:class:`CostVolume` through :func:`cost_volume_banded` (same output, less memory traffic).

    ``planar_out``: leave the output planar even for NHWC input (for a consumer that copies it anyway).
    """

    planar_out = False

    def forward(self, f_sample: torch.Tensor, f_ref_warped: torch.Tensor) -> torch.Tensor:
        cost = cost_volume_banded(f_sample, f_ref_warped, self.search_range, planar_out=self.planar_out)
        return F.leaky_relu_(cost, LEAKY_SLOPE)
