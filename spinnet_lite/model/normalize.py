"""Input normalisation: each image by its own local mean and local contrast.

The seed divides both images by the reference's mean.  Real speckle differs from the
simulator's in ways that a global scale cannot absorb: a diffuser gives 3-10 % visibility where
a coded mask gives 30-80 %, the flat field is not flat, and the sample's absorption multiplies
its speckle.  This project (a deviation from the seed, named in notebook 03) therefore feeds the
feature pyramids with

    n(I) = (I - m) / s,    m = G_sigma * I,    s = sqrt(G_sigma * (I - m)**2 + (eps * m)**2)

with ``G_sigma`` a Gaussian window of ``sigma`` pixels: zero local mean and unit local contrast,
whatever the intensity scale, the visibility or a slowly varying illumination.  The
transmission heads still need the absorption, so they receive the images divided by the
reference's local mean ``m_ref`` (a sample/reference ratio, ~T).

The local mean is computed on a grid coarser by ``factor = max(1, sigma // 4)`` (average
pooling, a Gaussian of ``sigma / factor`` there, bilinear back), which costs a few operations
per pixel at any ``sigma``.  Reflect padding keeps the border unbiased.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: Floor on the local contrast, relative to the local mean (keeps flat regions finite).
CONTRAST_FLOOR = 1e-3


def gaussian_kernel(sigma: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``sigma`` px, radius ``max(1, ceil(3 sigma))``."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def local_mean(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian-weighted local mean of ``image`` ``(B, C, H, W)`` with width ``sigma`` px.

    Returns a tensor of the same shape.  Computed on a pooled grid for large ``sigma``.
    """
    if sigma <= 0:
        raise ValueError(f"local_mean: sigma must be positive, got {sigma}")
    b, c, h, w = image.shape
    factor = max(1, int(sigma // 4))
    while factor > 1 and (h // factor < 4 or w // factor < 4):
        factor //= 2
    x = F.avg_pool2d(image, factor, ceil_mode=True) if factor > 1 else image
    s = sigma / factor
    k = gaussian_kernel(s, image.device, image.dtype)
    r = (k.numel() - 1) // 2
    x = x.reshape(b * c, 1, *x.shape[-2:])
    ph, pw = min(r, x.shape[-2] - 1), min(r, x.shape[-1] - 1)
    # separable blur with reflect padding (kernel longer than the image: reflect what there is)
    x = F.pad(x, (0, 0, ph, ph), mode="reflect")
    x = F.conv2d(x, k[r - ph: r + ph + 1].view(1, 1, -1, 1))
    x = F.pad(x, (pw, pw, 0, 0), mode="reflect")
    x = F.conv2d(x, k[r - pw: r + pw + 1].view(1, 1, 1, -1))
    x = x.reshape(b, c, *x.shape[-2:])
    if factor > 1:
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return x


def normalize_pair(reference: torch.Tensor, sample: torch.Tensor, sigma: float):
    """Normalised inputs of the network.

    Args:
        reference, sample: ``(B, 1, H, W)`` positive intensities (any scale, the same for both).
        sigma: Gaussian window of the local statistics, in pixels.

    Returns:
        ``(ref_n, sample_n, ref_ratio, sample_ratio)``: the two contrast-normalised images
        (zero local mean, unit local contrast) for the feature pyramids, and the two images
        divided by the reference's local mean (``ref_ratio ~ 1 + speckle``, ``sample_ratio ~
        T * (1 + speckle)``) for the transmission heads.  All ``(B, 1, H, W)``.
    """
    m_ref = local_mean(reference, sigma)
    m_sam = local_mean(sample, sigma)
    tiny = torch.finfo(reference.dtype).tiny
    scale_ref = m_ref.abs().clamp_min(tiny)
    d_ref = reference - m_ref
    d_sam = sample - m_sam
    s_ref = torch.sqrt(local_mean(d_ref * d_ref, sigma).clamp_min(0) + (CONTRAST_FLOOR * m_ref) ** 2).clamp_min(tiny)
    s_sam = torch.sqrt(local_mean(d_sam * d_sam, sigma).clamp_min(0) + (CONTRAST_FLOOR * m_sam) ** 2).clamp_min(tiny)
    return d_ref / s_ref, d_sam / s_sam, reference / scale_ref, sample / scale_ref
