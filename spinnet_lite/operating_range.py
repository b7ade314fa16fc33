"""The operating range of a reconstruction method: its error against what varies in real data.

Four sweeps (issue 8), each a list of simulated pairs with known ground truth that no
training run sees (seeds from ``EVAL_SEED_BASE + 100_000``):

* **displacement magnitude** -- smooth fields (``"uniform"``, ``"blobs"``, ``"quadratic"``)
  whose largest displacement is 0.5-12 px, coded mask (4 px), 20,000 photons per pixel;
* **visibility** -- the rms contrast of the reference set to 3-80 %, for a coded mask (4 px) and a
  diffuser (3 px grain), both 1.5 m from a detector with 0.3 px blur (about 85 % visibility of
  their own, lowered from there), under a 4 px blob field;
* **speckle type** -- coded masks of 2-10 px cells and diffusers of 1.5-6 px grain;
* **dose** -- Poisson noise of 100-50,000 photons per pixel (the training's range) in both
  images, for a coded mask (4 px) and a diffuser (3 px grain), under a 4 px blob field.

Displacement gradients are kept below ``MAX_STRAIN`` so the speckle never folds; every method
is scored on the same pixels (a border of ``BORDER`` px dropped), by the rms displacement error
and by the seed's Eq. 4 pair error (:func:`spinnet_lite.metrics.pair_error`, whose regimes
:func:`regime_counts` counts: the same measure as the held-out evaluation, on fields up to
12 px instead of the held-out set's mostly sub-pixel ones).  XST searches
``max(6, ceil(1.25 * largest shift) + 1)`` px, as a user who knows the sample would set it.

    from spinnet_lite.operating_range import run_sweeps, summarise
    rows = run_sweeps(["spinnet", "xst"], quick=True)
"""
from __future__ import annotations

import math
import statistics
import time

import numpy as np

from .data import EVAL_SEED_BASE
from .metrics import REGIMES, error_regime, pair_error

SEED_BASE = EVAL_SEED_BASE + 100_000
MAX_STRAIN = 0.5
BORDER = 16
MAGNITUDES = (0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0)
MAGNITUDE_PHANTOMS = ("uniform", "blobs", "quadratic")
VISIBILITIES = (0.03, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8)
#: The generators of the visibility sweep: sharp and far enough from the detector to give ~85 %
VISIBILITY_SET_UP = dict(blur_px=0.3, distance_mm=1500.0)
SPECKLES = (("mask", 2.0), ("mask", 3.0), ("mask", 5.0), ("mask", 7.7), ("mask", 10.0),
            ("diffuser", 1.5), ("diffuser", 3.0), ("diffuser", 6.0))
#: Photons per pixel of the dose sweep (the other sweeps: 20,000).
PHOTONS = (100.0, 300.0, 1000.0, 3000.0, 10000.0, 50000.0)


def sweep_cases(quick: bool = False, size: int = 256) -> list[dict]:
    """The cases of all four sweeps: dicts with ``sweep``, ``value``, ``label`` and ``kwargs``
    (the arguments of :func:`spinnet_lite.simulate_pair`)."""
    cases = []
    common = dict(size=size, photons=20000.0, max_strain=MAX_STRAIN)
    mags = (1.0, 4.0, 10.0) if quick else MAGNITUDES
    phantoms = ("blobs",) if quick else MAGNITUDE_PHANTOMS
    for phantom in phantoms:
        for m in mags:
            cases.append(dict(sweep="magnitude", value=m, label=phantom,
                              kwargs=dict(common, phantom=phantom, max_shift_px=m, pitch=4)))
    for speckle in ("mask", "diffuser"):
        for v in ((0.05, 0.4) if quick else VISIBILITIES):
            extra = dict(pitch=4) if speckle == "mask" else dict(grain_px=3.0)
            extra.update(VISIBILITY_SET_UP)
            cases.append(dict(sweep="visibility", value=v, label=speckle,
                              kwargs=dict(common, phantom="blobs", max_shift_px=4.0, speckle=speckle, visibility=v,
                                          **extra)))
    for speckle, scale in (SPECKLES[1:2] + SPECKLES[6:7] if quick else SPECKLES):
        extra = dict(pitch=scale) if speckle == "mask" else dict(grain_px=scale, pitch=4)
        cases.append(dict(sweep="speckle", value=scale, label=speckle,
                          kwargs=dict(common, phantom="blobs", max_shift_px=4.0, speckle=speckle, **extra)))
    for speckle in (("mask",) if quick else ("mask", "diffuser")):
        extra = dict(pitch=4) if speckle == "mask" else dict(grain_px=3.0, pitch=4)
        for photons in ((300.0, 10000.0) if quick else PHOTONS):
            cases.append(dict(sweep="dose", value=photons, label=speckle,
                              kwargs=dict(common, photons=photons, phantom="blobs", max_shift_px=4.0, speckle=speckle,
                                          **extra)))
    for i, case in enumerate(cases):  # new sweeps go last: the earlier cases keep their seeds
        case["kwargs"]["seed"] = SEED_BASE + i
    return cases


def _xst_search(max_shift: float) -> int:
    return int(max(6, math.ceil(1.25 * max_shift) + 1))


def run_case(case: dict, methods, model=None, pair=None, options: dict | None = None) -> list[dict]:
    """Simulate one case (or use ``pair``) and score each method on it; ``options`` maps a
    method to its ``reconstruct`` options (XST's search otherwise follows the largest shift)."""
    from .reconstruct import reconstruct
    from .simulate import simulate_pair

    pair = simulate_pair(**case["kwargs"]) if pair is None else pair
    b = BORDER
    gt = np.stack([pair["dx"].values, pair["dy"].values])[:, b:-b, b:-b]
    largest = float(np.hypot(pair["dx"], pair["dy"]).max())
    rows = []
    for method in methods:
        given = {"search": _xst_search(largest)} if method == "xst" else {}
        given.update((options or {}).get(method, {}))
        t0 = time.perf_counter()
        out = reconstruct(pair["reference"].values, pair["sample"].values, method=method,
                          model=model if method == "spinnet" else None, **given)
        elapsed = time.perf_counter() - t0
        pred = np.stack([out["dx"].values, out["dy"].values])[:, b:-b, b:-b]
        err = pred - gt
        rows.append({"sweep": case["sweep"], "label": case["label"], "value": case["value"], "method": method,
                     "largest_shift_px": largest, "visibility_rms": float(pair.attrs["visibility_rms"]),
                     "rmse_px": float(np.sqrt(np.mean(err**2))),
                     "median_abs_px": float(np.median(np.hypot(err[0], err[1]))),
                     "pair_error": pair_error(out, pair, border=b), "time_s": elapsed})
    return rows


def run_sweeps(methods=("spinnet", "xst"), model=None, quick: bool = False, size: int = 256, progress=None,
               options: dict | None = None) -> list[dict]:
    """All cases of :func:`sweep_cases`, each method on each (with ``options[method]``, its
    ``reconstruct`` options, where given); one row per (case, method)."""
    if "spinnet" in methods and model is None:
        from .pretrained import load_pretrained

        model = load_pretrained()
    rows = []
    for case in sweep_cases(quick, size):
        new = run_case(case, methods, model, options=options)
        rows.extend(new)
        if progress is not None:
            for r in new:
                progress(r)
    return rows


def summarise(rows: list[dict]) -> dict:
    """``{sweep: {label: {value: {method: rmse}}}}`` (the median over repeated cases)."""
    table: dict = {}
    for r in rows:
        table.setdefault(r["sweep"], {}).setdefault(r["label"], {}).setdefault(r["value"], {}).setdefault(
            r["method"], []).append(r["rmse_px"])
    for sweep in table.values():
        for label in sweep.values():
            for value, methods in label.items():
                label[value] = {m: statistics.median(v) for m, v in methods.items()}
    return table


def regime_counts(rows: list[dict], sweep: str = "magnitude", min_shift_px: float = 0.0) -> dict:
    """How many cases of ``sweep`` fall in each of the seed's Eq. 4 regimes, per method.

    Only cases whose largest displacement is at least ``min_shift_px`` count (the seed's
    test pairs move by several pixels).  Returns ``{method: {"<0.25%": n, "0.25-1%": n, ">1%": n}}``;
    rows without a ``pair_error`` (written before it was recorded) are skipped.
    """
    counts: dict = {}
    for r in rows:
        if r["sweep"] != sweep or r.get("pair_error") is None or r["largest_shift_px"] < min_shift_px:
            continue
        method = counts.setdefault(r["method"], dict.fromkeys(REGIMES, 0))
        method[error_regime(r["pair_error"])] += 1
    return counts


def format_tables(rows: list[dict]) -> str:
    """The four sweeps as plain-text tables (rms displacement error in px)."""
    table = summarise(rows)
    methods = sorted({r["method"] for r in rows})
    lines = []
    headings = {"magnitude": "largest displacement (px)", "visibility": "rms visibility", "speckle": "pitch / grain (px)",
                "dose": "photons per pixel"}
    for sweep, labels in table.items():
        lines.append(f"\n{sweep}: rms displacement error (px) vs {headings.get(sweep, sweep)}")
        for label, values in labels.items():
            lines.append(f"  {label}")
            lines.append("    " + f"{'value':>8}" + "".join(f"{m:>10}" for m in methods)
                         + ("  ratio" if {"spinnet", "xst"} <= set(methods) else ""))
            for value in sorted(values):
                res = values[value]
                line = "    " + f"{value:>8g}" + "".join(f"{res.get(m, math.nan):>10.3f}" for m in methods)
                if "spinnet" in res and "xst" in res and res["xst"] > 0:
                    line += f"  {res['spinnet'] / res['xst']:5.2f}"
                lines.append(line)
    counts = regime_counts(rows)
    if counts:
        lines.append(f"\nmagnitude sweep, the seed's Eq. 4 regimes ({' / '.join(REGIMES)})")
        for method, c in sorted(counts.items()):
            lines.append(f"  {method:>8}: " + " / ".join(str(n) for n in c.values())
                         + f" of {sum(c.values())} cases")
    return "\n".join(lines)
