"""The operating-range sweeps score each case by rms error and by the seed's Eq. 4."""
import math

import numpy as np
import pytest

from spinnet_lite import metrics, operating_range


def _row(method, pair_error, largest=4.0, sweep="magnitude"):
    return {"sweep": sweep, "label": "blobs", "value": largest, "method": method, "largest_shift_px": largest,
            "rmse_px": 0.03, "pair_error": pair_error}


def _blob_case():
    """The quick magnitude sweep's blob case, at 64 px."""
    return next(c for c in operating_range.sweep_cases(quick=True, size=64) if c["label"] == "blobs")


def test_regime_counts_bin_the_pair_error():
    rows = [_row("spinnet", 0.001), _row("spinnet", 0.005), _row("spinnet", 0.02), _row("spinnet", 0.0001, largest=0.5),
            _row("xst", 0.03), _row("xst", 0.002, sweep="visibility"), _row("xst", None)]
    counts = operating_range.regime_counts(rows)
    assert counts["spinnet"] == {"<0.25%": 2, "0.25-1%": 1, ">1%": 1}
    assert counts["xst"] == {"<0.25%": 0, "0.25-1%": 0, ">1%": 1}  # other sweeps and rows without it skipped
    assert operating_range.regime_counts(rows, min_shift_px=2.0)["spinnet"]["<0.25%"] == 1
    assert "Eq. 4 regimes" in operating_range.format_tables(rows)
    # rows recorded before the pair error was (older lite.json): tables without the regime line
    old = [{k: v for k, v in r.items() if k != "pair_error"} for r in rows]
    assert operating_range.regime_counts(old) == {} and "Eq. 4" not in operating_range.format_tables(old)


def test_a_case_records_the_pair_error_of_the_output(monkeypatch):
    """Eq. 4 of what the method returned, on the scored pixels: 0 for the truth itself, and
    0.64 % (0.08^2) for the truth with dx 8 % too large (dy and T exact)."""
    import importlib

    from spinnet_lite.simulate import simulate_pair

    case = _blob_case()
    pair = simulate_pair(**case["kwargs"])
    scale = {"dx": 1.0}

    def truth(reference, sample, method, model=None, **options):
        out = pair[["dx", "dy", "transmission"]].copy(deep=True)
        out["dx"] = out["dx"] * scale["dx"]
        return out

    monkeypatch.setattr(importlib.import_module("spinnet_lite.reconstruct"), "reconstruct", truth)
    (row,) = operating_range.run_case(case, ["xst"], pair=pair)
    assert row["pair_error"] == 0 and row["rmse_px"] == 0
    scale["dx"] = 1.08
    (row,) = operating_range.run_case(case, ["xst"], pair=pair)
    assert row["pair_error"] == pytest.approx(0.0064, rel=1e-5)
    assert metrics.error_regime(row["pair_error"]) == "0.25-1%"


def test_a_case_passes_each_method_its_options(monkeypatch):
    """``options[method]`` reaches that method's reconstruct (``--spinnet-options`` with
    ``--operating-range`` in benchmarks/evaluate.py); XST's search follows the largest shift
    unless it is given."""
    import importlib

    from spinnet_lite.simulate import simulate_pair

    case = _blob_case()
    pair = simulate_pair(**case["kwargs"])
    seen = []

    def record(reference, sample, method, model=None, **options):
        seen.append((method, options))
        return pair[["dx", "dy", "transmission"]].copy(deep=True)

    monkeypatch.setattr(importlib.import_module("spinnet_lite.reconstruct"), "reconstruct", record)
    operating_range.run_case(case, ["spinnet", "xst"], pair=pair, options={"spinnet": {"tv": True}})
    assert seen[0] == ("spinnet", {"tv": True}) and seen[1][0] == "xst" and set(seen[1][1]) == {"search"}
    seen.clear()
    operating_range.run_case(case, ["xst"], pair=pair, options={"xst": {"search": 3, "window": 9}})
    assert seen == [("xst", {"search": 3, "window": 9})]


def test_a_real_case_scores_xst():
    case = _blob_case()
    (row,) = operating_range.run_case(case, ["xst"])
    assert math.isfinite(row["pair_error"]) and 0 < row["pair_error"] < 1


def test_the_dose_sweep_changes_only_the_photons():
    cases = operating_range.sweep_cases()
    dose = [c for c in cases if c["sweep"] == "dose"]
    assert {c["label"] for c in dose} == {"mask", "diffuser"}
    for label in ("mask", "diffuser"):
        mine = [c for c in dose if c["label"] == label]
        assert [c["value"] for c in mine] == list(operating_range.PHOTONS)
        assert all(c["kwargs"]["photons"] == c["value"] for c in mine)
        # apart from the dose and the seed, one set-up per label
        rest = [{k: v for k, v in c["kwargs"].items() if k not in ("photons", "seed")} for c in mine]
        assert all(r == rest[0] for r in rest)
    assert min(operating_range.PHOTONS) == 100 and max(operating_range.PHOTONS) == 50000  # the training's range
    # the sweep comes last: the earlier sweeps' cases keep the seeds (and pairs) they had
    others = [c for c in cases if c["sweep"] != "dose"]
    assert [c["kwargs"]["seed"] for c in others] == [operating_range.SEED_BASE + i for i in range(len(others))]
    assert cases[-len(dose):] == dose
    quick = [c for c in operating_range.sweep_cases(quick=True) if c["sweep"] == "dose"]
    assert len(quick) == 2 and all(c["kwargs"]["photons"] == c["value"] for c in quick)


def test_noise_is_what_the_dose_sweep_adds():
    """Two cases of the dose sweep at 64 px: the fewer photons, the noisier the reference."""
    from spinnet_lite.simulate import simulate_pair

    low, high = (c for c in operating_range.sweep_cases(quick=True, size=64) if c["sweep"] == "dose")
    assert low["value"] < high["value"]
    noisy, quiet = (simulate_pair(**dict(c["kwargs"], seed=5)) for c in (low, high))
    np.testing.assert_array_equal(noisy["dx"].values, quiet["dx"].values)  # the same field, seed for seed
    clean = simulate_pair(**dict(low["kwargs"], seed=5, photons=None))
    rel = [float(np.std(p["reference"].values - clean["reference"].values) / clean["reference"].values.mean())
           for p in (noisy, quiet)]
    assert rel[0] == pytest.approx(1 / np.sqrt(low["value"]), rel=0.25)
    assert rel[1] == pytest.approx(1 / np.sqrt(high["value"]), rel=0.25)
