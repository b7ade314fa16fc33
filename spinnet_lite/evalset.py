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
"""
from __future__ import annotations

from .data import EVAL_SEED_BASE  # training and validation seeds lie below it
KINDS = ("clean", "noisy", "fine-pitch", "lens")
SIZE = 256
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


def heldout_specs(n: int = 24) -> list[dict]:
    """The specs of the first ``n`` held-out pairs.

    Returns:
        list of dicts with ``index``, ``kind``, ``seed``, ``size``, ``phantom``, ``pitch``
        and ``photons`` (None for noiseless), the keyword arguments of
        :func:`spinnet_lite.simulate.simulate_pair` plus the labels.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer number of pairs, got {n!r}")
    specs = []
    for i in range(int(n)):
        kind, pitch, photons, phantom = _CYCLE[i % len(_CYCLE)]
        specs.append({"index": i, "kind": kind, "seed": EVAL_SEED_BASE + i, "size": SIZE,
                      "phantom": phantom, "pitch": pitch, "photons": photons})
    return specs


def simulate_spec(spec: dict):
    """Simulate one held-out pair from its spec: an xarray.Dataset labelled with the spec.

    The Dataset is that of :func:`spinnet_lite.simulate.simulate_pair` (reference, sample,
    dx, dy, transmission, phase, support) with ``kind``, ``index`` and ``heldout = 1`` added
    to its attrs.
    """
    from .simulate import simulate_pair

    ds = simulate_pair(size=spec["size"], pitch=spec["pitch"], seed=spec["seed"], phantom=spec["phantom"],
                       photons=spec["photons"])
    ds.attrs.update({"kind": spec["kind"], "index": int(spec["index"]), "heldout": 1})
    return ds


def heldout_pairs(n: int = 24):
    """Generate the first ``n`` held-out pairs (xarray Datasets), simulated on the fly."""
    for spec in heldout_specs(n):
        yield simulate_spec(spec)
