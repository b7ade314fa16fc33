"""Training data: simulated pairs generated on the fly from seeds, or cached with xarray.

Seeds: training pairs use seeds ``[0, VALIDATION_SEED_BASE)``, validation pairs
``[VALIDATION_SEED_BASE, EVAL_SEED_BASE)`` and the held-out evaluation set
(:mod:`spinnet_lite.evalset`) seeds from ``EVAL_SEED_BASE`` up, so training never sees a
validation or evaluation pair.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import xarray as xr
from torch.utils.data import Dataset

from .geometry import Geometry
from .simulate import simulate_arrays

EVAL_SEED_BASE = 1_000_000_000
VALIDATION_SEED_BASE = 900_000_000


@dataclass(frozen=True)
class PairSpec:
    """What varies between training pairs (besides the phantom itself)."""

    size: int = 128
    pitches: tuple[int, ...] = (3, 4, 5, 6)  # mask pitch in pixels, drawn uniformly
    noise_fraction: float = 0.5  # share of pairs with Poisson noise
    photons: tuple[float, float] = (500.0, 20000.0)  # photons per pixel, log-uniform


def pair_seed(index: int, base: int = 0) -> int:
    """The simulator seed of training pair ``index`` (checked against the reserved ranges)."""
    seed = base + int(index)
    limit = VALIDATION_SEED_BASE if base < VALIDATION_SEED_BASE else EVAL_SEED_BASE
    if not (0 <= seed < limit):
        raise ValueError(f"pair seed {seed} leaves its range [{base}, {limit})")
    return seed


def make_pair(seed: int, spec: PairSpec = PairSpec(), geometry: Geometry | None = None) -> dict[str, np.ndarray]:
    """One training pair as float32 arrays; the pitch and noise are drawn from ``seed`` too."""
    rng = np.random.default_rng([seed, 7])  # a stream apart from the simulator's own
    pitch = int(rng.choice(spec.pitches))
    photons = None
    if rng.random() < spec.noise_fraction:
        lo, hi = np.log(spec.photons[0]), np.log(spec.photons[1])
        photons = float(np.exp(rng.uniform(lo, hi)))
    return simulate_arrays(spec.size, pitch=pitch, seed=seed, phantom="random", photons=photons,
                           geometry=geometry or Geometry.training())


def to_tensors(pair: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Network inputs and targets: images divided by the reference mean (so T is unchanged).

    Returns ``reference``, ``sample`` (1, H, W), ``displacement`` (2, H, W) with channels
    (dx, dy) in pixels, ``transmission`` (1, H, W).
    """
    scale = float(pair["reference"].mean())
    return {
        "reference": torch.from_numpy(pair["reference"] / scale)[None].float(),
        "sample": torch.from_numpy(pair["sample"] / scale)[None].float(),
        "displacement": torch.from_numpy(np.stack([pair["dx"], pair["dy"]])).float(),
        "transmission": torch.from_numpy(pair["transmission"])[None].float(),
    }


class SimulatedPairs(Dataset):
    """``length`` pairs made on the fly; item ``i`` is always the pair of seed ``base + i``.

    Args:
        length: number of pairs.
        base: first seed (0 for training, :data:`VALIDATION_SEED_BASE` for validation).
        spec: size, pitches and noise of the pairs.
        geometry: the set-up (default :meth:`Geometry.training`).
    """

    def __init__(self, length: int, base: int = 0, spec: PairSpec = PairSpec(), geometry: Geometry | None = None):
        if length < 1:
            raise ValueError(f"length must be positive, got {length}")
        pair_seed(length - 1, base)  # the whole range must lie in its reserved interval
        self.length, self.base, self.spec, self.geometry = length, base, spec, geometry

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        return to_tensors(make_pair(pair_seed(index, self.base), self.spec, self.geometry))


def cache_pairs(path, length: int, base: int = 0, spec: PairSpec = PairSpec(), overwrite: bool = False) -> xr.Dataset:
    """Write ``length`` pairs to a netCDF file (dims pair, y, x) for repeated use; returns it."""
    from .io import write_dataset

    pairs = [make_pair(pair_seed(i, base), spec) for i in range(length)]
    names = ("reference", "sample", "dx", "dy", "transmission")
    ds = xr.Dataset({k: (("pair", "y", "x"), np.stack([p[k] for p in pairs])) for k in names},
                    coords={"pair": np.arange(base, base + length)})
    ds.attrs.update({f"spec_{k}": (list(v) if isinstance(v, tuple) else v) for k, v in asdict(spec).items()})
    write_dataset(ds, path, overwrite=overwrite)
    return ds


class CachedPairs(Dataset):
    """Pairs read from a file written by :func:`cache_pairs`."""

    def __init__(self, path):
        self.ds = xr.open_dataset(path).load()

    def __len__(self) -> int:
        return self.ds.sizes["pair"]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.ds.isel(pair=index)
        return to_tensors({k: item[k].values for k in item.data_vars})
