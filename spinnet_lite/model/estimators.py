"""The heads of SPINNet (seed Fig. S2): PhaseNet and TNet at each level, and the two refiners.

All four share one body, five green blocks (full network: 128-128-96-64-32 channels), and
differ only in their input and last convolution: each is ``head(body(assemble(*inputs)))``, where
``assemble`` concatenates its inputs (an inference engine can run the three parts in other
precisions, ``fast.bfloat16_bodies``). Conventions shared with ``spinnet.py``:

* displacements are ``(B, 2, h, w)`` (dx, dy) in **full-resolution pixels** at every level;
  the heads see them divided by :data:`DISPLACEMENT_SCALE` so their inputs are O(1);
* PhaseNet and PhaseRefiner output a residual displacement in **pixels of their own level**
  (the unit of the cost volume's shifts); ``spinnet.py`` multiplies it by ``2**(level - 1)``;
* TNet and TRefiner output an additive residual of the transmission (a ratio, 1 = no absorption).

The last convolution of every head starts with weights scaled by :data:`HEAD_INIT_GAIN` and a
zero bias, so an untrained network predicts small residuals (displacement ~ 0, T ~ 1) while
every layer still receives gradient from the first step (a zero init would block it).
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import green_block
from .cost_volume import num_shifts

#: Full-resolution pixels that map to 1 in the heads' inputs. The simulator's training
#: displacements are a few pixels to a few tens of pixels, so ``d / 10`` is O(1).
DISPLACEMENT_SCALE = 10.0

#: Factor applied to the default (Kaiming-uniform) init of each head's last convolution.
HEAD_INIT_GAIN = 0.01


def _head(cin: int, cout: int, kernel_size: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2)
    with torch.no_grad():
        conv.weight.mul_(HEAD_INIT_GAIN)
        conv.bias.zero_()
    return conv


class EstimatorBody(nn.Module):
    """Five green blocks (``widths``, full network ``(128, 128, 96, 64, 32)``).

    Shape: ``(B, cin, h, w)`` -> ``(B, widths[-1], h, w)``.
    """

    def __init__(self, cin: int, widths=(128, 128, 96, 64, 32)):
        super().__init__()
        blocks, c = [], cin
        for width in widths:
            blocks.append(green_block(c, int(width)))
            c = int(width)
        self.blocks = nn.Sequential(*blocks)
        self.in_channels = cin
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class PhaseNet(nn.Module):
    """Residual displacement at one level from the cost volume.

    Input (concatenated): the activated cost volume ``(2N+1)**2`` channels, the upsampled
    displacement of the coarser level / :data:`DISPLACEMENT_SCALE` (2), and the upsampled last
    body features of the coarser level's PhaseNet (``widths[-1]``, zeros at the first level).
    The channel count is the same at every level, so one level can initialise another.

    Args:
        search_range: ``N`` of the cost volume.
        widths: the body's five widths.

    Forward:
        cost ``(B, (2N+1)**2, h, w)``, displacement ``(B, 2, h, w)`` in full-resolution pixels,
        context ``(B, widths[-1], h, w)`` -> (residual ``(B, 2, h, w)`` in pixels of this level,
        features ``(B, widths[-1], h, w)``).
    """

    def __init__(self, search_range: int, widths=(128, 128, 96, 64, 32)):
        super().__init__()
        self.body = EstimatorBody(num_shifts(search_range) + 2 + int(widths[-1]), widths)
        self.head = _head(self.body.out_channels, 2, 3)

    #: whether :meth:`forward` returns the body's features along with the residual
    returns_features = True

    def assemble(self, cost, displacement, context):
        """The body's input: the three inputs concatenated along the channels."""
        return torch.cat([cost, displacement / DISPLACEMENT_SCALE, context], dim=1)

    def forward(self, cost, displacement, context):
        features = self.body(self.assemble(cost, displacement, context))
        return self.head(features), features


class TNet(nn.Module):
    """Residual transmission at one level from the raw images.

    Input (concatenated, 6 channels): reference and sample average-pooled to this level, the
    sample inverse-warped to the reference frame with the current displacement (so that
    ``sample_back / reference ~ T``), the upsampled transmission of the coarser level (ones at
    the first level) and the current displacement / :data:`DISPLACEMENT_SCALE`.

    Forward:
        reference, sample, sample_back, transmission: ``(B, 1, h, w)``; displacement
        ``(B, 2, h, w)`` in full-resolution pixels -> (residual ``(B, 1, h, w)``, features
        ``(B, widths[-1], h, w)``). The new transmission is ``transmission + residual``.
    """

    IN_CHANNELS = 6

    def __init__(self, widths=(128, 128, 96, 64, 32)):
        super().__init__()
        self.body = EstimatorBody(self.IN_CHANNELS, widths)
        self.head = _head(self.body.out_channels, 1, 3)

    returns_features = True

    def assemble(self, reference, sample, sample_back, transmission, displacement):
        """The body's input: the five inputs concatenated along the channels."""
        return torch.cat([reference, sample, sample_back, transmission, displacement / DISPLACEMENT_SCALE], dim=1)

    def forward(self, reference, sample, sample_back, transmission, displacement):
        features = self.body(self.assemble(reference, sample, sample_back, transmission, displacement))
        return self.head(features), features


class Refiner(nn.Module):
    """The refiners' common form: the body then a 1x1 convolution to ``cout`` channels."""

    def __init__(self, cin: int, cout: int, widths=(128, 128, 96, 64, 32)):
        super().__init__()
        self.body = EstimatorBody(cin, widths)
        self.head = _head(self.body.out_channels, cout, 1)

    returns_features = False

    def assemble(self, x: torch.Tensor) -> torch.Tensor:
        """The body's input (subclasses concatenate theirs)."""
        return x

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.assemble(*inputs)))


class PhaseRefiner(Refiner):
    """Residual displacement at the last level from (displacement / scale, PhaseNet features).

    Forward: displacement ``(B, 2, h, w)`` in full-resolution pixels, features
    ``(B, widths[-1], h, w)`` -> residual ``(B, 2, h, w)`` in pixels of the last level.
    """

    def __init__(self, widths=(128, 128, 96, 64, 32)):
        super().__init__(2 + int(widths[-1]), 2, widths)

    def assemble(self, displacement, features):
        return torch.cat([displacement / DISPLACEMENT_SCALE, features], dim=1)


class TRefiner(Refiner):
    """Residual transmission at the last level.

    Forward: transmission, reference, sample_back (sample inverse-warped with the refined
    displacement), all ``(B, 1, h, w)``, and TNet features ``(B, widths[-1], h, w)`` ->
    residual ``(B, 1, h, w)``.
    """

    def __init__(self, widths=(128, 128, 96, 64, 32)):
        super().__init__(3 + int(widths[-1]), 1, widths)

    def assemble(self, transmission, reference, sample_back, features):
        return torch.cat([transmission, reference, sample_back, features], dim=1)
