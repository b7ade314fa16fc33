"""The two convolution blocks SPINNet is built from (seed Fig. S2).

* green block: ``Conv2d 3x3, stride 1`` + ``BatchNorm2d`` + ``LeakyReLU(0.1)`` (keeps the size);
* yellow block: the same with stride 2 (halves the size: one pyramid level down).

The convolutions carry no bias: the BatchNorm that follows removes any constant per channel
(a bias there would only ever receive a zero gradient in training mode).
"""
from __future__ import annotations

from torch import nn

#: Negative slope of every LeakyReLU, as in PWC-Net and the seed's Fig. S2.
LEAKY_SLOPE = 0.1


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """Conv2d 3x3 (padding 1, no bias) + BatchNorm2d + LeakyReLU(0.1).

    Args:
        cin: input channels.
        cout: output channels.
        stride: 1 keeps ``(H, W)``; 2 gives ``(H/2, W/2)`` (rounded up).

    Returns:
        ``nn.Sequential`` mapping ``(B, cin, H, W)`` to ``(B, cout, H/stride, W/stride)``.
    """
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
    )


def green_block(cin: int, cout: int) -> nn.Sequential:
    """Green block of Fig. S2: 3x3 conv, stride 1, BatchNorm, LeakyReLU(0.1). Keeps ``(H, W)``."""
    return conv_block(cin, cout, stride=1)


def yellow_block(cin: int, cout: int) -> nn.Sequential:
    """Yellow block of Fig. S2: 3x3 conv, stride 2, BatchNorm, LeakyReLU(0.1). Halves ``(H, W)``."""
    return conv_block(cin, cout, stride=2)
