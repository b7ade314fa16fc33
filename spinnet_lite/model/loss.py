"""Training loss: the seed's Eq. 4 pair error, summed over pyramid levels.

Eq. 4, for one reference/sample pair::

    E = |dx - dx_gt|^2 / |dx_gt|^2 + |dy - dy_gt|^2 / |dy_gt|^2 + |T - T_gt|^2 / |T_gt|^2

with ``|.|^2`` the squared L2 norm over the pixels of the pair. The same value is the
"pair error" reported in evaluations.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: Default weight of each level's pair error, and of the full-resolution final output.
#: PWC-Net (Sun et al., CVPR 2018, section 4) weights levels 6..2 by 0.32, 0.08, 0.02, 0.01,
#: 0.005, but its loss *sums* errors over pixels, and level l has 4**(l-1) times fewer pixels
#: than the input. Eq. 4 is a ratio that does not grow with the number of pixels, so the
#: per-level weights equivalent to PWC-Net's are alpha_l / 4**(l-1), i.e. 1 : 1 : 1 : 2 : 4 for
#: levels 6..2; scaled by 1/8 here. The final (refined, full-resolution) output, the one that
#: is evaluated, gets weight 1.
DEFAULT_WEIGHTS = {6: 0.125, 5: 0.125, 4: 0.125, 3: 0.25, 2: 0.5, "final": 1.0}


def _split(x, what: str):
    """Accept ``(displacement (B,2,H,W), transmission (B,1,H,W))`` or one ``(B, 3, H, W)`` tensor."""
    if isinstance(x, torch.Tensor):
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"pair_error: {what} tensor must be (B, 3, H, W) (dx, dy, T), got {tuple(x.shape)}")
        return x[:, :2], x[:, 2:]
    try:
        displacement, transmission = x
    except (TypeError, ValueError):
        raise ValueError(f"pair_error: {what} must be (displacement, transmission) or a (B, 3, H, W) tensor") from None
    if displacement.dim() != 4 or displacement.shape[1] != 2:
        raise ValueError(f"pair_error: {what} displacement must be (B, 2, H, W), got {tuple(displacement.shape)}")
    if transmission.shape != displacement[:, :1].shape:
        raise ValueError(f"pair_error: {what} transmission must be {tuple(displacement[:, :1].shape)}, "
                         f"got {tuple(transmission.shape)}")
    return displacement, transmission


def pair_error(pred, gt, eps: float = 1e-8) -> torch.Tensor:
    """Eq. 4 for each pair of a batch.

    Args:
        pred: ``(displacement (B, 2, H, W), transmission (B, 1, H, W))`` or a ``(B, 3, H, W)``
            tensor with channels dx, dy, T. Displacements in pixels.
        gt: the ground truth, in the same form and shape.
        eps: each denominator gets ``eps * H * W`` added (a floor of ``eps`` on the mean square
            of the ground truth), so a near-zero ground-truth map (e.g. dy = 0 everywhere) gives a
            large but finite error instead of inf/NaN.

    Returns:
        ``(B,)`` errors (0 for a perfect prediction).
    """
    d, t = _split(pred, "pred")
    d_gt, t_gt = _split(gt, "gt")
    if d.shape != d_gt.shape:
        raise ValueError(f"pair_error: prediction {tuple(d.shape)} and ground truth {tuple(d_gt.shape)} differ in shape")
    p = torch.cat([d, t], dim=1).flatten(2)  # (B, 3, H*W): dx, dy, T
    g = torch.cat([d_gt, t_gt], dim=1).flatten(2)
    numerator = (p - g).pow(2).sum(-1)
    denominator = g.pow(2).sum(-1) + eps * g.shape[-1]
    return (numerator / denominator).sum(1)


def multilevel_loss(output: dict, dx_dy_gt: torch.Tensor, t_gt: torch.Tensor, weights: dict | None = None,
                    eps: float = 1e-8):
    """Weighted Eq. 4 over the levels of a :class:`SPINNet` output and its final output.

    The ground truth is average-pooled to each level (displacements stay in full-resolution
    pixels, so their values are not rescaled).

    Args:
        output: the dict returned by ``SPINNet.forward``.
        dx_dy_gt: ``(B, 2, H, W)`` ground-truth displacement (dx, dy) in pixels.
        t_gt: ``(B, 1, H, W)`` ground-truth transmission.
        weights: ``{level: weight, "final": weight}``; default :data:`DEFAULT_WEIGHTS`.
            Levels missing from ``weights`` are skipped.
        eps: floor on the mean square of each ground-truth map (see :func:`pair_error`).
            Training uses 1e-2 (px^2): without it a pair whose displacements are nearly 0
            everywhere dominates the batch and its gradients can blow the training up.

    Returns:
        ``(loss, terms)``: the weighted sum averaged over the batch (a scalar tensor with
        gradient), and ``{"level_6": float, ..., "final": float, "total": float}`` with the
        unweighted batch-mean pair error of each term.
    """
    weights = DEFAULT_WEIGHTS if weights is None else weights
    if dx_dy_gt.dim() != 4 or dx_dy_gt.shape[1] != 2 or t_gt.shape != dx_dy_gt[:, :1].shape:
        raise ValueError(f"multilevel_loss: expected dx_dy_gt (B, 2, H, W) and t_gt (B, 1, H, W), "
                         f"got {tuple(dx_dy_gt.shape)} and {tuple(t_gt.shape)}")
    if output["displacement"].shape != dx_dy_gt.shape:
        raise ValueError(f"multilevel_loss: output displacement {tuple(output['displacement'].shape)} and "
                         f"ground truth {tuple(dx_dy_gt.shape)} differ in shape")
    height = dx_dy_gt.shape[-2]
    gt = torch.cat([dx_dy_gt, t_gt], dim=1)
    total = dx_dy_gt.new_zeros(())
    terms = {}
    for level, displacement, transmission in output["levels"]:
        if weights.get(level, 0) == 0:
            continue
        factor = height // displacement.shape[-2]
        gt_level = F.avg_pool2d(gt, factor) if factor > 1 else gt
        error = pair_error((displacement, transmission), gt_level, eps=eps).mean()
        total = total + weights[level] * error
        terms[f"level_{level}"] = float(error.detach())
    if weights.get("final", 0) != 0:
        error = pair_error((output["displacement"], output["transmission"]), gt, eps=eps).mean()
        total = total + weights["final"] * error
        terms["final"] = float(error.detach())
    terms["total"] = float(total.detach())
    return total, terms
