"""Configuration of a SPINNet: a small dataclass saved inside every checkpoint.

Presets (:func:`get_config`):

* ``"full"``: the seed's network, pyramid 16-32-64-96-128, heads 128-128-96-64-32, N = 4;
* ``"lite"`` (default): narrower (pyramid 8-16-32, heads 48-48-32-32-16, N = 3), starting at
  pyramid level 4 rather than 6, with inputs normalised by local mean and contrast (sigma 12 px),
  and at level 2 the reference image warped at full resolution before its features are taken;
* ``"tiny"``: a few thousand parameters, for tests and quick notebooks.
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

#: Most passes of the finest level (``SPINNetConfig.finest_iterations``, ``iterations=`` of a call).
MAX_ITERATIONS = 4


def check_iterations(iterations, what: str = "iterations") -> int | None:
    """``iterations`` as an int if it is None or an integer in 1..:data:`MAX_ITERATIONS`, else a
    ``ValueError`` naming ``what``."""
    if iterations is None:
        return None
    if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) \
            or not 1 <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"{what}: expected an integer from 1 to {MAX_ITERATIONS} (passes of the finest level), "
                         f"got {iterations!r}")
    return int(iterations)


@dataclass(frozen=True)
class SPINNetConfig:
    """Architecture of a SPINNet.

    Attributes:
        name: preset name (informative; part of the equality check on loading).
        pyramid_channels: feature channels of pyramid levels 2..6 (5 values; levels above
            ``first_level`` are not built).
        estimator_widths: the five widths of every head's body.
        search_range: ``N``; the cost volume has ``(2N + 1)**2`` channels.
        last_level: finest level estimated (2; 3 for the fast variant, which then has no level-2 heads).
        refiners: whether the network has PhaseRefiner and TRefiner.
        first_level: coarsest level, where the estimation starts (6 in the seed).
        input_norm_sigma: width (px) of the Gaussian window of the input normalisation
            (:mod:`spinnet_lite.model.normalize`); 0 keeps the seed's division by the
            reference's mean only.
        image_warp_levels: levels whose prop layer warps the reference *image* at full
            resolution (``warp(..., mode="oversampled")``) and recomputes its features, instead
            of warping that level's features bilinearly (empty: the seed's feature warp
            everywhere).
        finest_iterations: how many times the finest level (``last_level``) runs, 1-4; each
            pass after the first re-warps the reference by the displacement so far and runs the
            same PhaseNet and TNet again (shared weights, as RAFT's update), starting from the
            previous pass's context. 1 is the seed's single pass; checkpoints without this key
            load with 1.
    """

    name: str = "lite"
    pyramid_channels: tuple = (8, 16, 32, 48, 64)
    estimator_widths: tuple = (48, 48, 32, 32, 16)
    search_range: int = 3
    last_level: int = 2
    refiners: bool = True
    first_level: int = 6
    input_norm_sigma: float = 0.0
    image_warp_levels: tuple = ()
    finest_iterations: int = 1

    def __post_init__(self):
        pyramid = tuple(int(c) for c in self.pyramid_channels)
        widths = tuple(int(c) for c in self.estimator_widths)
        object.__setattr__(self, "pyramid_channels", pyramid)
        object.__setattr__(self, "estimator_widths", widths)
        if len(pyramid) != 5 or min(pyramid) < 1:
            raise ValueError(f"pyramid_channels: expected 5 positive ints (levels 2..6), got {pyramid}")
        if len(widths) != 5 or min(widths) < 1:
            raise ValueError(f"estimator_widths: expected 5 positive ints, got {widths}")
        if int(self.search_range) < 1:
            raise ValueError(f"search_range: expected an int >= 1, got {self.search_range}")
        if not 2 <= int(self.first_level) <= 6:
            raise ValueError(f"first_level: expected 2..6, got {self.first_level}")
        if not 2 <= int(self.last_level) <= int(self.first_level):
            raise ValueError(f"last_level: expected 2..first_level ({self.first_level}), got {self.last_level}")
        object.__setattr__(self, "search_range", int(self.search_range))
        object.__setattr__(self, "first_level", int(self.first_level))
        object.__setattr__(self, "last_level", int(self.last_level))
        object.__setattr__(self, "refiners", bool(self.refiners))
        object.__setattr__(self, "name", str(self.name))
        sigma = float(self.input_norm_sigma)
        if not (sigma == 0 or 1.0 <= sigma <= 256.0):
            raise ValueError(f"input_norm_sigma: expected 0 (off) or 1..256 px, got {self.input_norm_sigma}")
        object.__setattr__(self, "input_norm_sigma", sigma)
        warp_levels = tuple(sorted({int(l) for l in self.image_warp_levels}))
        if any(not 2 <= l < self.first_level for l in warp_levels):  # the coarsest level has no warp
            raise ValueError(f"image_warp_levels: expected levels in 2..{self.first_level - 1}, "
                             f"got {self.image_warp_levels}")
        object.__setattr__(self, "image_warp_levels", warp_levels)
        if self.finest_iterations is None:
            raise ValueError(f"finest_iterations: expected an integer from 1 to {MAX_ITERATIONS}, got None")
        object.__setattr__(self, "finest_iterations", check_iterations(self.finest_iterations, "finest_iterations"))

    @property
    def levels(self) -> list[int]:
        """Levels with heads, coarse to fine (``[6, 5, 4, 3, 2]`` by default)."""
        return list(range(self.first_level, self.last_level - 1, -1))

    def to_dict(self) -> dict:
        """Plain dict (str, int, bool, lists) for checkpoints and JSON."""
        out = dataclasses.asdict(self)
        out["pyramid_channels"] = list(self.pyramid_channels)
        out["estimator_widths"] = list(self.estimator_widths)
        out["image_warp_levels"] = list(self.image_warp_levels)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "SPINNetConfig":
        """Inverse of :meth:`to_dict`. Unknown keys are a ``ValueError``."""
        if not isinstance(data, dict):
            raise ValueError(f"SPINNetConfig.from_dict: expected a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"SPINNetConfig.from_dict: unknown keys {unknown}; expected some of {sorted(known)}")
        return cls(**data)

    def replace(self, **changes) -> "SPINNetConfig":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


PRESETS = {
    "full": SPINNetConfig("full", (16, 32, 64, 96, 128), (128, 128, 96, 64, 32), 4, 2, True),
    # Levels 5-6 are left out of the lite network: its displacements (<= ~16 px) are below half a
    # pixel there, they learned nothing in the first bundled run, and their zero-padded 8x8 maps
    # made an untiled pass on a larger image worse than tiles (notebook 03).  Level 4 with N = 3
    # still searches +-24 px.
    # At level 2 the prop layer warps the reference image at full resolution and takes its
    # level-2 features, instead of warping the level-2 features bilinearly: a speckle of 2-6 px
    # is near the Nyquist limit of a half-resolution map, where bilinear interpolation shifts
    # and blurs it by an amount that depends on the sub-pixel phase (notebook 03, section 4).
    "lite": SPINNetConfig("lite", (8, 16, 32, 48, 64), (48, 48, 32, 32, 16), 3, 2, True, first_level=4,
                          input_norm_sigma=12.0, image_warp_levels=(2,)),
    "tiny": SPINNetConfig("tiny", (4, 8, 8, 12, 16), (8, 8, 8, 8, 8), 2, 2, True),
}


def get_config(name: str = "lite", **changes) -> SPINNetConfig:
    """Preset configuration ``"full"``, ``"lite"`` or ``"tiny"``, optionally with fields changed.

    Example: ``get_config("lite", last_level=3)`` is the fast variant of the lite network.

    Raises:
        ValueError: unknown preset name or invalid field values.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown SPINNet configuration {name!r}; expected one of {', '.join(map(repr, PRESETS))}")
    config = PRESETS[name]
    return config.replace(**changes) if changes else config
