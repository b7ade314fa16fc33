"""Training data: a bank of simulated speckle references and sample images made from it.

A real experiment differs from the seed's simulation in its speckle generator (coded masks of
2-10 px cells, membranes and sandpaper with grains of 1.5-6 px), its visibility (3-80 %), its
noise, a flat field that drifts between the two exposures, samples with absorbing structure
of their own, and displacements from a fraction of a pixel to more than ten.  The training
distribution covers all of these (issue 8):

1. **Reference bank** (:func:`make_reference`, :func:`reference_bank`): ``bank_size``
   references of ``bank_px`` pixels, each a wave simulation (:func:`spinnet_lite.simulate.reference_image`)
   with its own generator (coded mask or diffuser), wavelength, distance, blur and mask phase.
   The wave simulation is the slow part, so it is done once and cached in a netCDF file.
2. **Pairs** (:func:`make_pair`): a random crop of a random bank reference, turned by one of
   the 8 flips/rotations, its visibility lowered, then a sample made from a random phantom
   (the seed's texture x contour, smooth blobs, a quadratic lens or saddle, a uniform shift, or
   a sum of two) scaled to a largest displacement of 0-12 px with strains kept below
   ``max_strain`` (the speckle must not fold), an absorbing texture, a flat-field drift, and
   Poisson noise of 100-50,000 photons per pixel.

Seeds: training pairs use seeds ``[0, VALIDATION_SEED_BASE)``, validation pairs
``[VALIDATION_SEED_BASE, EVAL_SEED_BASE)`` and the held-out evaluation set
(:mod:`spinnet_lite.evalset`) seeds from ``EVAL_SEED_BASE`` up; the training and validation
banks are drawn from separate seeds too, so training never sees a validation reference.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import xarray as xr
from torch.utils.data import Dataset

from . import phantoms
from .geometry import Geometry
from .simulate import (WARP_MARGIN, add_poisson_noise, bin_pixels, detect_fine_pair, detector_blur, displacement_from_phase,
                       flat_field_drift, make_phantom, reference_image, rms_visibility, scale_phase_to_shift)

EVAL_SEED_BASE = 1_000_000_000
VALIDATION_SEED_BASE = 900_000_000
#: Seeds of the validation bank's references (the training bank uses 0, 1, 2, ...).
VALIDATION_BANK_BASE = 800_000_000

PHANTOM_KINDS = ("random", "blobs", "quadratic", "uniform", "combined")


@dataclass(frozen=True)
class PairSpec:
    """The training distribution: what varies between pairs, and over what range."""

    size: int = 256
    # -- speckle generators (the reference bank) --
    bank_size: int = 48  # references in the bank
    bank_px: int = 448  # side of each bank reference, in detector pixels
    bank_oversample: int = 2  # the bank keeps the intensity on a grid this much finer than the pixel
    mask_fraction: float = 0.6  # coded masks; the rest are diffusers
    pitches: tuple[float, float] = (2.0, 10.0)  # mask cell, px (log-uniform, fractional)
    grains: tuple[float, float] = (1.5, 6.0)  # diffuser grain, px
    wavelengths_nm: tuple[float, float] = (0.04, 0.1)  # 12-31 keV
    distances_mm: tuple[float, float] = (100.0, 1000.0)  # generator-to-detector
    blurs_px: tuple[float, float] = (0.4, 1.5)  # detector + source blur sigma
    # -- visibility, illumination and noise --
    lowered_visibility_fraction: float = 0.6  # share of pairs whose contrast is lowered ...
    visibility: tuple[float, float] = (0.03, 0.8)  # ... to a log-uniform rms contrast in this range
    flat_field_fraction: float = 0.5
    flat_field: tuple[float, float] = (0.005, 0.05)
    noise_fraction: float = 0.7
    photons: tuple[float, float] = (100.0, 50000.0)  # photons per pixel, log-uniform
    # -- samples --
    phantom_weights: tuple[float, ...] = (0.35, 0.2, 0.15, 0.1, 0.2)  # PHANTOM_KINDS
    max_shift_px: tuple[float, float] = (0.0, 12.0)
    max_strain: float = 0.6
    natural_fraction: float = 0.0  # share of "random" phantoms kept at the seed's own scale (not rescaled)
    small_shift_fraction: float = 0.0  # share of pairs whose largest shift is drawn from small_shifts_px instead
    small_shifts_px: tuple[float, float] = (0.02, 1.0)  # ... log-uniform: sub-pixel fields and drifts
    texture_fraction: float = 0.3
    texture: tuple[float, float] = (0.05, 0.5)
    # share of the quadratic fields (alone or in a combined field) given a lens's aperture and rim
    # (phantoms.quadratic_phantom's ``aperture``): the field drops to 0 across the rim, as at the
    # seed's lens; the draws are made only when asked for, so older specs give the same pairs
    aperture_fraction: float = 0.0
    apertures: tuple[float, float] = (0.2, 0.9)  # share of the frame inside the aperture
    rim_sigmas_px: tuple[float, float] = (0.5, 2.5)  # the rim's Gaussian blur

    def __post_init__(self):
        if self.size % 8 or self.size < 64:
            raise ValueError(f"PairSpec.size must be a multiple of 8 and >= 64, got {self.size}")
        if self.bank_px < self.size + 2 * WARP_MARGIN:
            raise ValueError(f"PairSpec.bank_px must be >= size + {2 * WARP_MARGIN}, got {self.bank_px}")
        if not 0.0 <= self.natural_fraction <= 1.0:
            raise ValueError(f"PairSpec.natural_fraction must be in [0, 1], got {self.natural_fraction}")
        if not 0.0 <= self.small_shift_fraction <= 1.0:
            raise ValueError(f"PairSpec.small_shift_fraction must be in [0, 1], got {self.small_shift_fraction}")
        lo, hi = self.small_shifts_px
        if not 0.0 < lo <= hi:
            raise ValueError(f"PairSpec.small_shifts_px must be (low, high) with 0 < low <= high, got {self.small_shifts_px}")
        if len(self.phantom_weights) != len(PHANTOM_KINDS) or abs(sum(self.phantom_weights) - 1) > 1e-6:
            raise ValueError(f"PairSpec.phantom_weights must be {len(PHANTOM_KINDS)} weights summing to 1")
        if not 0.0 <= self.aperture_fraction <= 1.0:
            raise ValueError(f"PairSpec.aperture_fraction must be in [0, 1], got {self.aperture_fraction}")
        lo, hi = self.apertures
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"PairSpec.apertures must be (low, high) with 0 < low <= high <= 1, got {self.apertures}")
        lo, hi = self.rim_sigmas_px
        if not 0.0 <= lo <= hi:
            raise ValueError(f"PairSpec.rim_sigmas_px must be (low, high) with 0 <= low <= high, got {self.rim_sigmas_px}")

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def pair_seed(index: int, base: int = 0) -> int:
    """The simulator seed of training pair ``index`` (checked against the reserved ranges)."""
    seed = base + int(index)
    limit = VALIDATION_SEED_BASE if base < VALIDATION_SEED_BASE else EVAL_SEED_BASE
    if not (0 <= seed < limit):
        raise ValueError(f"pair seed {seed} leaves its range [{base}, {limit})")
    return seed


def _log_uniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def make_reference(seed: int, spec: PairSpec = PairSpec()) -> tuple[np.ndarray, dict]:
    """One bank reference and the parameters it was simulated with.

    The reference is the unbinned, unblurred intensity on a grid ``bank_oversample`` times
    finer than the detector pixel, ``(bank_px * os, bank_px * os)``, scaled to mean 1; pairs
    are warped on this grid and then binned (:func:`make_pair`), as a detector integrates a
    speckle pattern that moved by a fraction of a pixel.  ``params["blur_px"]`` is applied
    after binning.
    """
    rng = np.random.default_rng([int(seed), 11])
    params = {
        "speckle": "mask" if rng.random() < spec.mask_fraction else "diffuser",
        "wavelength_nm": _log_uniform(rng, *spec.wavelengths_nm),
        "distance_mm": float(rng.uniform(*spec.distances_mm)),
        "blur_px": float(rng.uniform(*spec.blurs_px)),
        "pitch_px": _log_uniform(rng, *spec.pitches),
        "grain_px": float(rng.uniform(*spec.grains)),
        "mask_phase": float(rng.uniform(0.4, 1.0) * np.pi),
        "diffuser_phase_rms": float(rng.uniform(0.7, 3.0)),
    }
    geometry = Geometry.from_wavelength(params["wavelength_nm"] * 1e-9, pixel_size_um=0.65,
                                        mask_detector_mm=params["distance_mm"], sample_detector_mm=60.0)
    fine, os_, margin = reference_image((spec.bank_px, spec.bank_px), geometry, rng, pitch=params["pitch_px"],
                                        mask_phase=params["mask_phase"], speckle=params["speckle"],
                                        grain_px=params["grain_px"], diffuser_phase_rms=params["diffuser_phase_rms"],
                                        oversample=spec.bank_oversample, fine=True)
    edge = margin * os_
    ref = fine[edge:edge + spec.bank_px * os_, edge:edge + spec.bank_px * os_]
    params["visibility_rms"] = rms_visibility(bin_pixels(detector_blur(np.array(ref, np.float64), os_, params["blur_px"]),
                                                        os_))
    return (ref / ref.mean()).astype(np.float32), params


def reference_bank(count: int | None = None, base: int = 0, spec: PairSpec = PairSpec(), progress: bool = False) -> xr.Dataset:
    """``count`` bank references (default ``spec.bank_size``) of seeds ``base, base + 1, ...``.

    Returns:
        Dataset with ``reference`` (ref, y, x) on the fine grid (:func:`make_reference`),
        normalised to mean 1, and one variable per simulation parameter (``speckle``,
        ``pitch_px``, ``blur_px``, ...) along ``ref``.
    """
    from tqdm.auto import tqdm

    count = spec.bank_size if count is None else int(count)
    refs, params = [], []
    for i in tqdm(range(count), desc="reference bank", disable=not progress):
        r, p = make_reference(base + i, spec)
        refs.append(r)
        params.append(p)
    data = {"reference": (("ref", "y", "x"), np.stack(refs))}
    for key in params[0]:
        data[key] = ("ref", np.array([p[key] for p in params]))
    ds = xr.Dataset(data, coords={"ref": np.arange(base, base + count)})
    ds.attrs["oversample"] = int(spec.bank_oversample)
    ds.attrs.update({f"spec_{k}": (str(v) if isinstance(v, list) else v) for k, v in spec.to_dict().items()})
    return ds


def load_or_make_bank(path, count: int, base: int, spec: PairSpec, progress: bool = False) -> dict:
    """The bank from ``path`` if it holds ``count`` references of this spec and seeds, else made and cached there.

    Returns ``{"reference": (n, h, w) float32 fine-grid intensities, "blur_px": (n,)}``.
    """
    from pathlib import Path

    from .io import write_dataset

    path = Path(path)
    if path.exists():
        with xr.open_dataset(path) as ds:
            ok = (ds.sizes.get("ref") == count and int(ds["ref"][0]) == base
                  and ds.attrs.get("spec_bank_px") == spec.bank_px and ds.attrs.get("oversample") == spec.bank_oversample
                  and ds.sizes.get("y") == spec.bank_px * spec.bank_oversample)
            if ok:
                return bank_arrays(ds)
    ds = reference_bank(count, base, spec, progress=progress)
    write_dataset(ds, path, overwrite=True)
    return bank_arrays(ds)


def bank_arrays(ds: xr.Dataset) -> dict:
    """The arrays :func:`make_pair` needs from a bank Dataset."""
    return {"reference": ds["reference"].values.astype(np.float32), "blur_px": ds["blur_px"].values.astype(np.float64),
            "oversample": int(ds.attrs["oversample"])}


def _phantom(kind: str, shape, rng, spec: PairSpec):
    """A training phantom drawn from ``rng``: :func:`spinnet_lite.simulate.make_phantom` with
    the training geometry (the rng-driven kinds ignore it); a quadratic one gets an aperture
    and rim with probability ``spec.aperture_fraction`` (no draw when that is 0)."""
    options = {}
    if kind == "quadratic" and spec.aperture_fraction > 0 and rng.random() < spec.aperture_fraction:
        options = {"aperture": float(rng.uniform(*spec.apertures)), "rim_sigma_px": float(rng.uniform(*spec.rim_sigmas_px))}
    return make_phantom(kind, shape, Geometry.training(), rng, **options)


def make_pair(seed: int, bank: dict, spec: PairSpec = PairSpec()) -> dict[str, np.ndarray]:
    """One training pair from ``bank`` (:func:`bank_arrays`), every choice drawn from ``seed``.

    Returns float32 arrays ``reference``, ``sample``, ``dx``, ``dy`` (px), ``transmission``
    (the sample/reference ratio apart from the speckle: T times the flat-field drift) of
    ``(size, size)``, and the labels ``kind`` (phantom) and ``max_shift``.
    """
    rng = np.random.default_rng([int(seed), 7])
    refs, os_ = bank["reference"], int(bank["oversample"])
    index = int(rng.integers(refs.shape[0]))
    side = (spec.size + 2 * WARP_MARGIN) * os_
    full = refs[index]
    y0 = int(rng.integers(0, (full.shape[0] - side) // os_ + 1)) * os_
    x0 = int(rng.integers(0, (full.shape[1] - side) // os_ + 1)) * os_
    fine = np.rot90(full[y0:y0 + side, x0:x0 + side], int(rng.integers(4)))
    if rng.random() < 0.5:
        fine = fine[:, ::-1]
    fine = np.ascontiguousarray(fine, dtype=np.float64)
    blur = float(bank["blur_px"][index])

    shape = (spec.size, spec.size)
    geometry = Geometry.training()
    kind = PHANTOM_KINDS[int(rng.choice(len(PHANTOM_KINDS), p=np.asarray(spec.phantom_weights)))]
    max_shift = float(rng.uniform(*spec.max_shift_px))
    # sub-pixel fields (a drift of 0.05 px in the air of a real pair): rare in a uniform draw up to
    # 16 px, so a share of the pairs draws its scale log-uniformly from small_shifts_px; the draw is
    # made only when asked for, so older specs give the same pairs as before
    if spec.small_shift_fraction > 0 and rng.random() < spec.small_shift_fraction:
        max_shift = _log_uniform(rng, *spec.small_shifts_px)
    if kind == "combined":  # a wide smooth field plus detail: a uniform or quadratic part and a random/blob part
        p1, _, _ = _phantom(str(rng.choice(["uniform", "quadratic"])), shape, rng, spec)
        p2, transmission, _ = _phantom(str(rng.choice(["random", "blobs"])), shape, rng, spec)
        share = rng.uniform(0.2, 0.8)
        phase = (scale_phase_to_shift(p1, geometry, share * max_shift, spec.max_strain / 2)
                 + scale_phase_to_shift(p2, geometry, (1 - share) * max_shift, spec.max_strain / 2))
    else:
        phase, transmission, _ = _phantom(kind, shape, rng, spec)
        # the seed's own phantoms at their own scale (displacements mostly at contour edges); the
        # draw is made only when asked for, so older specs give the same pairs as before
        natural = kind == "random" and spec.natural_fraction > 0 and rng.random() < spec.natural_fraction
        if not natural:
            phase = scale_phase_to_shift(phase, geometry, max_shift, spec.max_strain)
    if rng.random() < spec.texture_fraction:
        transmission = transmission * phantoms.absorbing_texture(shape, rng, rng.uniform(*spec.texture))
    if rng.random() < spec.flat_field_fraction:
        transmission = transmission * flat_field_drift(shape, rng.uniform(*spec.flat_field), rng)
    dx, dy = displacement_from_phase(phase, geometry)
    edge = WARP_MARGIN * os_
    reference, sample = detect_fine_pair(fine, dx, dy, os_, edge, blur)
    if rng.random() < spec.lowered_visibility_fraction:
        target, current = _log_uniform(rng, *spec.visibility), rms_visibility(reference)
        if target < current:  # linear in the intensity: the same change for both images
            mean = reference.mean()
            reference = mean + (reference - mean) * (target / current)
            sample = mean + (sample - mean) * (target / current)
    sample = transmission * sample
    if rng.random() < spec.noise_fraction:
        photons = _log_uniform(rng, *spec.photons)
        reference = add_poisson_noise(reference, photons, rng)
        sample = add_poisson_noise(sample, photons, rng)
    out = dict(reference=reference, sample=sample, dx=dx, dy=dy, transmission=transmission)
    out = {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}
    out["kind"], out["max_shift"] = kind, float(np.hypot(dx, dy).max())
    return out


def to_tensors(pair: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Network inputs and targets: images divided by the reference mean (so T is unchanged).

    Returns ``reference``, ``sample`` (1, H, W), ``displacement`` (2, H, W) with channels
    (dx, dy) in pixels, ``transmission`` (1, H, W).
    """
    scale = float(pair["reference"].mean())
    return {
        "reference": torch.from_numpy(np.ascontiguousarray(pair["reference"] / scale))[None].float(),
        "sample": torch.from_numpy(np.ascontiguousarray(pair["sample"] / scale))[None].float(),
        "displacement": torch.from_numpy(np.stack([pair["dx"], pair["dy"]])).float(),
        "transmission": torch.from_numpy(np.ascontiguousarray(pair["transmission"]))[None].float(),
    }


class SimulatedPairs(Dataset):
    """``length`` pairs made on the fly from a reference bank; item ``i`` is always the pair of seed ``base + i``.

    Args:
        length: number of pairs.
        base: first seed (0 for training, :data:`VALIDATION_SEED_BASE` for validation).
        spec: the training distribution.
        bank: the references (:func:`bank_arrays`); default a small bank made here
            (``min(spec.bank_size, 4)`` references; training passes its cached bank).
    """

    def __init__(self, length: int, base: int = 0, spec: PairSpec = PairSpec(), bank: dict | None = None):
        if length < 1:
            raise ValueError(f"length must be positive, got {length}")
        pair_seed(length - 1, base)  # the whole range must lie in its reserved interval
        if bank is None:
            bank_base = VALIDATION_BANK_BASE if base >= VALIDATION_SEED_BASE else 0
            bank = bank_arrays(reference_bank(min(spec.bank_size, 4), bank_base, spec))
        self.length, self.base, self.spec, self.bank = length, base, spec, bank

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        return to_tensors(make_pair(pair_seed(index, self.base), self.bank, self.spec))


_PAIR_VARIABLES = ("reference", "sample", "dx", "dy", "transmission")


def cache_pairs(path, length: int, base: int = 0, spec: PairSpec = PairSpec(), bank: dict | None = None,
                overwrite: bool = False) -> xr.Dataset:
    """Write ``length`` pairs to a netCDF file (dims pair, y, x) for repeated use; returns it."""
    from .io import write_dataset

    data = SimulatedPairs(length, base, spec, bank)
    pairs = [make_pair(pair_seed(i, base), data.bank, spec) for i in range(length)]
    ds = xr.Dataset({k: (("pair", "y", "x"), np.stack([p[k] for p in pairs])) for k in _PAIR_VARIABLES},
                    coords={"pair": np.arange(base, base + length)})
    ds["kind"] = ("pair", np.array([p["kind"] for p in pairs]))
    ds["max_shift"] = ("pair", np.array([p["max_shift"] for p in pairs]))
    ds.attrs.update({f"spec_{k}": (str(v) if isinstance(v, list) else v) for k, v in spec.to_dict().items()})
    write_dataset(ds, path, overwrite=overwrite)
    return ds


class CachedPairs(Dataset):
    """Pairs read from a file written by :func:`cache_pairs`."""

    def __init__(self, path):
        with xr.open_dataset(path) as ds:
            self.ds = ds.load()

    def __len__(self) -> int:
        return self.ds.sizes["pair"]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.ds.isel(pair=index)
        return to_tensors({k: item[k].values for k in _PAIR_VARIABLES})
