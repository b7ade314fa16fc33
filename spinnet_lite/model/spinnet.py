"""SPINNet: coarse-to-fine displacement and transmission from a reference/sample speckle pair.

Per level ``l`` from 6 (1/32 size) down to the last level (seed section 2.2, Fig. S2):

1. upsample (x2, bilinear) the coarser level's displacement, transmission and PhaseNet features;
2. prop layer: warp the reference features by the displacement (divided by ``2**(l-1)``, since
   displacements are always in full-resolution pixels and level-l pixels are ``2**(l-1)`` of them);
   at the levels in ``config.image_warp_levels`` (level 2 of ``lite``) warp the normalised
   reference *image* at full resolution (``mode="oversampled"``) and take its level-l features
   instead;
3. cost volume of sample features against warped reference features, LeakyReLU(0.1);
4. PhaseNet -> residual in level-l pixels; ``displacement += 2**(l-1) * residual``;
5. TNet on the raw images average-pooled to level l and the sample inverse-warped to the
   reference frame -> ``transmission += residual``.

With ``config.finest_iterations = k > 1`` the finest level runs steps 2-5 ``k`` times with the
same PhaseNet and TNet (as RAFT's shared update): each pass after the first re-warps the reference
by the displacement so far and starts from the previous pass's context (a deviation from the
seed, notebook 03).

Then, optionally, PhaseRefiner and TRefiner at the last level, and a bilinear upsampling of the
final displacement and transmission to the input size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import SPINNetConfig, check_iterations, get_config
from .cost_volume import CostVolume
from .estimators import PhaseNet, PhaseRefiner, TNet, TRefiner
from .extractor import FeaturePyramid
from .normalize import normalize_pair
from .warp import inverse_warp, warp


def _upsample2(x: torch.Tensor) -> torch.Tensor:
    # Values are not rescaled: displacements are in full-resolution pixels at every level.
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class SPINNet(nn.Module):
    """The network; parts are named sub-modules so a notebook can show them.

    Args:
        config: a :class:`SPINNetConfig` or a preset name (default ``"lite"``).

    Attributes:
        extractor_ref, extractor_sample: :class:`FeaturePyramid` for each input.
        phase_nets, t_nets: ``nn.ModuleDict`` keyed by level (``"6"`` ... ``"2"``).
        phase_refiner, t_refiner: the refiners (``None`` when ``config.refiners`` is False).
    """

    def __init__(self, config: SPINNetConfig | str = "lite"):
        super().__init__()
        if isinstance(config, str):
            config = get_config(config)
        if not isinstance(config, SPINNetConfig):
            raise ValueError(f"SPINNet: expected a SPINNetConfig or a preset name, got {type(config).__name__}")
        self.config = config
        pyramid = config.pyramid_channels[: config.first_level - 1]  # levels 2..first_level
        widths = config.estimator_widths
        self.extractor_ref = FeaturePyramid(pyramid)
        self.extractor_sample = FeaturePyramid(pyramid)
        self.cost_volume = CostVolume(config.search_range)
        self.phase_nets = nn.ModuleDict({str(l): PhaseNet(config.search_range, widths) for l in config.levels})
        self.t_nets = nn.ModuleDict({str(l): TNet(widths) for l in config.levels})
        self.phase_refiner = PhaseRefiner(widths) if config.refiners else None
        self.t_refiner = TRefiner(widths) if config.refiners else None

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (32 for ``first_level = 6``)."""
        return 2 ** (self.config.first_level - 1)

    def _check_inputs(self, reference, sample):
        for name, x in (("reference", reference), ("sample", sample)):
            if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 1:
                shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                raise ValueError(f"SPINNet: {name} must be a (B, 1, H, W) tensor, got {shape}")
        if reference.shape != sample.shape:
            raise ValueError(f"SPINNet: reference and sample differ in shape: "
                             f"{tuple(reference.shape)} vs {tuple(sample.shape)}")
        height, width = reference.shape[-2:]
        m = self.size_multiple
        if height % m or width % m or min(height, width) < 2 * m:
            raise ValueError(f"SPINNet: height and width must be multiples of {m} and at least {2 * m}, "
                             f"got {height}x{width} (predict() pads for you)")

    def _resolve(self, last_level, refine, iterations=None):
        last_level = self.config.last_level if last_level is None else int(last_level)
        refine = self.config.refiners if refine is None else bool(refine)
        if not self.config.last_level <= last_level <= self.config.first_level:
            raise ValueError(f"SPINNet: last_level must be in {self.config.last_level}..{self.config.first_level} "
                             f"for config {self.config.name!r}, got {last_level}")
        if refine and not self.config.refiners:
            raise ValueError(f"SPINNet: config {self.config.name!r} has no refiners; use refine=False")
        iterations = check_iterations(iterations, "SPINNet: iterations")
        return last_level, refine, self.config.finest_iterations if iterations is None else iterations

    def forward(self, reference: torch.Tensor, sample: torch.Tensor, last_level: int | None = None,
                refine: bool | None = None, iterations: int | None = None) -> dict:
        """Estimate displacement and transmission.

        Args:
            reference, sample: ``(B, 1, H, W)`` intensities, both divided by the reference's
                mean (with ``config.input_norm_sigma > 0`` any common positive scale gives the
                same output); ``H``, ``W`` multiples of :attr:`size_multiple`.
            last_level: finest level to estimate (default ``config.last_level``). Staged
                training: stage 1 ``last_level=3, refine=False``; stage 2 ``last_level=2,
                refine=False``; stage 3 ``refine=True``.
            refine: apply the refiners at the last level (default ``config.refiners``).
            iterations: passes at the configuration's finest level (default
                ``config.finest_iterations``; see :class:`SPINNetConfig`); 1 is the seed's network.

        Returns:
            dict with
            ``"levels"``: list of ``(level, displacement (B, 2, h, w), transmission (B, 1, h, w))``
            from the first (coarsest) level to ``last_level``, before refinement (the finest level
            once per pass);
            ``"displacement"``: ``(B, 2, H, W)`` (dx, dy) in pixels and ``"transmission"``:
            ``(B, 1, H, W)``, the final prediction (refined if ``refine``) upsampled to the input size.
        """
        last_level, refine, iterations = self._resolve(last_level, refine, iterations)
        self._check_inputs(reference, sample)
        batch, _, height, width = reference.shape
        if self.config.input_norm_sigma > 0:
            # features see zero-mean, unit-contrast images; the T heads see ratios to the
            # reference's local mean (this project's deviation, model/normalize.py)
            ref_in, sample_in, reference, sample = normalize_pair(reference, sample, self.config.input_norm_sigma)
        else:
            ref_in, sample_in = reference, sample
        features_ref = self.extractor_ref(ref_in)
        features_sample = self.extractor_sample(sample_in)

        levels = []
        displacement = transmission = context = None
        for level in range(self.config.first_level, last_level - 1, -1):
            scale = 2 ** (level - 1)  # full-resolution pixels per level-l pixel
            f_ref, f_sample = features_ref[level], features_sample[level]
            reference_l = F.avg_pool2d(reference, scale) if scale > 1 else reference
            sample_l = F.avg_pool2d(sample, scale) if scale > 1 else sample
            passes = iterations if level == self.config.last_level else 1
            for repeat in range(passes):
                if displacement is None:  # coarsest level: start from d = 0, T = 1, no context
                    h, w = f_ref.shape[-2:]
                    displacement = f_ref.new_zeros(batch, 2, h, w)
                    transmission = f_ref.new_ones(batch, 1, h, w)
                    context = f_ref.new_zeros(batch, self.config.estimator_widths[-1], h, w)
                    f_ref_warped = f_ref
                else:
                    if repeat == 0:  # a new level: bring the coarser estimate up
                        displacement, transmission, context = (_upsample2(t) for t in
                                                               (displacement, transmission, context))
                    if level in self.config.image_warp_levels:  # warp the image, then take its features
                        full_d = F.interpolate(displacement, size=(height, width), mode="bilinear",
                                               align_corners=False)
                        f_ref_warped = self.extractor_ref(warp(ref_in, full_d, mode="oversampled"), last=level)[level]
                    else:
                        f_ref_warped = warp(f_ref, displacement / scale)  # level-l pixel units for the warp
                cost = self.cost_volume(f_sample, f_ref_warped)
                residual, context = self.phase_nets[str(level)](cost, displacement, context)
                displacement = displacement + scale * residual  # residual is in level-l pixels

                sample_back = inverse_warp(sample_l, displacement / scale)
                t_residual, t_features = self.t_nets[str(level)](reference_l, sample_l, sample_back, transmission,
                                                                 displacement)
                transmission = transmission + t_residual
                levels.append((level, displacement, transmission))

        if refine:
            displacement = displacement + scale * self.phase_refiner(displacement, context)
            sample_back = inverse_warp(sample_l, displacement / scale)
            transmission = transmission + self.t_refiner(transmission, reference_l, sample_back, t_features)

        full = dict(size=(height, width), mode="bilinear", align_corners=False)
        return {
            "levels": levels,
            "displacement": F.interpolate(displacement, **full) if scale > 1 else displacement,
            "transmission": F.interpolate(transmission, **full) if scale > 1 else transmission,
        }

    def init_level_from(self, src: int = 3, dst: int = 2) -> None:
        """Copy the PhaseNet and TNet weights of level ``src`` into level ``dst`` (stage 2)."""
        for nets in (self.phase_nets, self.t_nets):
            if str(src) not in nets or str(dst) not in nets:
                raise ValueError(f"init_level_from: levels {src} and {dst} must both be in {list(nets)}")
            nets[str(dst)].load_state_dict(nets[str(src)].state_dict())

    def num_parameters(self, module: nn.Module | None = None, trainable_only: bool = False) -> int:
        """Number of parameters of ``module`` (default: the whole network)."""
        module = self if module is None else module
        return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)

    def parameter_table(self) -> dict[str, int]:
        """Parameters per part, e.g. ``{"extractor_ref": ..., "phase_net_6": ..., ..., "total": ...}``."""
        table = {"extractor_ref": self.num_parameters(self.extractor_ref),
                 "extractor_sample": self.num_parameters(self.extractor_sample)}
        for level, net in self.phase_nets.items():
            table[f"phase_net_{level}"] = self.num_parameters(net)
        for level, net in self.t_nets.items():
            table[f"t_net_{level}"] = self.num_parameters(net)
        if self.phase_refiner is not None:
            table["phase_refiner"] = self.num_parameters(self.phase_refiner)
            table["t_refiner"] = self.num_parameters(self.t_refiner)
        table["total"] = self.num_parameters()
        return table

    def extra_repr(self) -> str:
        return f"config={self.config.name!r}"
