"""The held-out evaluation set: simulated pairs that training never sees.

Every pair is fixed by its spec (seed, size, phantom, mask pitch, photons), so the set is the
same on every machine. Seeds start at :data:`EVAL_SEED_BASE`; training and validation use
seeds below it (:mod:`spinnet_lite.data`), so no evaluation pair is ever a training pair.

The mix (for ``n = 24``): 12 ``"clean"`` random phantoms at the training pitch (4 px, no
noise), 4 ``"noisy"`` ones (Poisson, 1000 and 5000 photons per pixel), 4 ``"fine-pitch"``
ones (mask pitch 2 px, finer than any training pitch) and 4 ``"lens"`` pairs (the seed's
beryllium lens, two noiseless and two at 5000 photons per pixel). The kinds repeat in a
12-pair cycle, so ``heldout_specs(m)`` is the first ``m`` of ``heldout_specs(n)`` for
``m < n`` and any ``n`` gets a mix.

The random phantoms are simulated at :meth:`spinnet_lite.geometry.Geometry.training` (60 mm
from sample to detector, per-pair largest displacements of ~0.5-5 px). ``heldout_specs(n,
sample_detector_mm=z)`` gives the same pairs at another distance: the same speckle, phantom
and noise, every displacement scaled by ``z / 60`` (seed Eq. 1), so the seed's scale (its
phases up to 20 pi give shifts several times the 60 mm ones) can be measured on the same
set (``benchmarks/seed_scale.py``). The lens pairs are the seed's experiment and keep its
geometry.
"""
from __future__ import annotations

from .data import EVAL_SEED_BASE  # training and validation seeds lie below it
from .geometry import Geometry
KINDS = ("clean", "noisy", "fine-pitch", "lens")
SIZE = 256
#: The training geometry's mask-to-detector distance (mm): a scaled set's sample lies closer.
MASK_DETECTOR_MM = Geometry.training().mask_detector_mm
TRAINING_PITCH = 4
FINE_PITCH = 2

# One 12-pair cycle: (kind, pitch, photons, phantom).
_CYCLE = (
    ("clean", TRAINING_PITCH, None, "random"),
    ("noisy", TRAINING_PITCH, 1000.0, "random"),
    ("clean", TRAINING_PITCH, None, "random"),
    ("fine-pitch", FINE_PITCH, None, "random"),
    ("clean", TRAINING_PITCH, None, "random"),
    ("lens", TRAINING_PITCH, None, "lens"),
    ("clean", TRAINING_PITCH, None, "random"),
    ("noisy", TRAINING_PITCH, 5000.0, "random"),
    ("clean", TRAINING_PITCH, None, "random"),
    ("fine-pitch", FINE_PITCH, None, "random"),
    ("clean", TRAINING_PITCH, None, "random"),
    ("lens", TRAINING_PITCH, 5000.0, "lens"),
)


def is_eval_seed(seed) -> bool:
    """True for seeds reserved for the held-out evaluation set (``>= EVAL_SEED_BASE``)."""
    return int(seed) >= EVAL_SEED_BASE


def heldout_specs(n: int = 24, sample_detector_mm: float | None = None) -> list[dict]:
    """The specs of the first ``n`` held-out pairs.

    Args:
        n: number of pairs.
        sample_detector_mm: None (the set as it is), or a sample-to-detector distance in mm
            for the random phantoms (the training geometry's mask 300 mm from the detector
            stays, so it must be below 300); their displacements scale with it.

    Returns:
        list of dicts with ``index``, ``kind``, ``seed``, ``size``, ``phantom``, ``pitch``
        and ``photons`` (None for noiseless), the keyword arguments of
        :func:`spinnet_lite.simulate.simulate_pair` plus the labels; with
        ``sample_detector_mm``, the random phantoms' specs also hold it.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer number of pairs, got {n!r}")
    if sample_detector_mm is not None:
        mm = sample_detector_mm
        if isinstance(mm, bool) or not isinstance(mm, (int, float)) or not 0 < mm < MASK_DETECTOR_MM:
            raise ValueError(f"sample_detector_mm must be a distance in mm between 0 and {MASK_DETECTOR_MM:g} "
                             f"(the mask's distance), got {mm!r}")
    specs = []
    for i in range(int(n)):
        kind, pitch, photons, phantom = _CYCLE[i % len(_CYCLE)]
        spec = {"index": i, "kind": kind, "seed": EVAL_SEED_BASE + i, "size": SIZE,
                "phantom": phantom, "pitch": pitch, "photons": photons}
        if sample_detector_mm is not None and phantom == "random":
            spec["sample_detector_mm"] = float(sample_detector_mm)
        specs.append(spec)
    return specs


def simulate_spec(spec: dict):
    """Simulate one held-out pair from its spec: an xarray.Dataset labelled with the spec.

    The Dataset is that of :func:`spinnet_lite.simulate.simulate_pair` (reference, sample,
    dx, dy, transmission, phase, support) with ``kind``, ``index`` and ``heldout = 1`` added
    to its attrs; a spec with ``sample_detector_mm`` is simulated at
    ``Geometry.training(sample_detector_mm=...)``.
    """
    from .simulate import simulate_pair

    geometry = None
    if spec.get("sample_detector_mm") is not None:
        geometry = Geometry.training(sample_detector_mm=spec["sample_detector_mm"])
    ds = simulate_pair(size=spec["size"], pitch=spec["pitch"], seed=spec["seed"], phantom=spec["phantom"],
                       photons=spec["photons"], geometry=geometry)
    ds.attrs.update({"kind": spec["kind"], "index": int(spec["index"]), "heldout": 1})
    return ds


def heldout_pairs(n: int = 24):
    """Generate the first ``n`` held-out pairs (xarray Datasets), simulated on the fly."""
    for spec in heldout_specs(n):
        yield simulate_spec(spec)
