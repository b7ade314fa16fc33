"""Feature pyramid (seed Fig. S2, left): one per input, reference and sample separately.

Level 1 is the (normalised) input image itself; each level ``l = 2..6`` is a yellow block
(stride 2) then a green block, so level ``l`` is ``2**(l - 1)`` times smaller than the input.
Channels in the full network: 1, 16, 32, 64, 96, 128 for levels 1..6.
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import green_block, yellow_block


class FeaturePyramid(nn.Module):
    """Image -> features at levels 1..(1 + len(channels)).

    Args:
        channels: output channels of levels 2, 3, ... (full network: ``(16, 32, 64, 96, 128)``).
        in_channels: channels of the input image (1 for a detector image).

    Shape:
        input ``(B, in_channels, H, W)`` with ``H``, ``W`` multiples of ``2**len(channels)``;
        output ``{1: input, 2: (B, channels[0], H/2, W/2), ..., l: (B, c, H/2**(l-1), W/2**(l-1))}``.
    """

    def __init__(self, channels=(16, 32, 64, 96, 128), in_channels: int = 1):
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        self.levels = nn.ModuleList()  # self.levels[i] computes pyramid level i + 2
        cin = in_channels
        for cout in self.channels:
            self.levels.append(nn.Sequential(yellow_block(cin, cout), green_block(cout, cout)))
            cin = cout

    @property
    def num_levels(self) -> int:
        """Index of the coarsest level (6 in the full network)."""
        return 1 + len(self.levels)

    def forward(self, image: torch.Tensor, last: int | None = None) -> dict[int, torch.Tensor]:
        """Features of levels 1..``last`` (default: all)."""
        features = {1: image}
        x = image
        for level, block in enumerate(self.levels, start=2):
            if last is not None and level > last:
                break
            x = block(x)
            features[level] = x
        return features
