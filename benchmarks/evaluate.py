"""Evaluate reconstruction methods on the held-out simulated set.

    python benchmarks/evaluate.py --method xst [--n 24] [--border 8] [--json out.json]
    python benchmarks/evaluate.py --method xst,spinnet          # both, plus a win rate
    python benchmarks/evaluate.py --method xst --xst-options refine=2,window=9
    python benchmarks/evaluate.py --method xst,spinnet --operating-range   # + error vs shift, visibility, speckle
    python benchmarks/evaluate.py --method spinnet --sample-distance 120    # the set's shifts x 2 (seed_scale.py)

Each held-out pair (:mod:`spinnet_lite.evalset`) is simulated once and reconstructed with
:func:`spinnet_lite.reconstruct` by every method asked for; the metrics are those of
:mod:`spinnet_lite.metrics` with ``border`` pixels cropped on every side.

Importable too (no pandas)::

    from evaluate import evaluate          # with benchmarks/ on sys.path
    rows, summary = evaluate("xst", n=6)
"""
from __future__ import annotations

import argparse
import ast
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from spinnet_lite.evalset import heldout_specs, simulate_spec
from spinnet_lite.metrics import REGIMES, evaluate_pair, folded_share
from spinnet_lite.reconstruct import METHODS, reconstruct


def _methods(method) -> list[str]:
    names = [m.strip() for m in method.split(",")] if isinstance(method, str) else list(method)
    names = [m for m in names if m]
    if not names:
        raise ValueError("no method given; expected xst, spinnet or xst,spinnet")
    for name in names:
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"method listed twice: {','.join(names)}")
    return names


def _median(values) -> float:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(values) if values else math.nan


def summarise(rows: list[dict]) -> dict:
    """Summary of one method's rows: medians, regime counts, noise on noisy pairs, time."""
    return {
        "n": len(rows),
        "median_displacement_rmse": _median(r["displacement_rmse"] for r in rows),
        "median_pair_error": _median(r["pair_error"] for r in rows),
        "median_pair_error_t": _median(r["pair_error_t"] for r in rows),
        "median_transmission_error": _median(r["transmission_error"] for r in rows),
        "regime_counts": {reg: sum(r["regime"] == reg for r in rows) for reg in REGIMES},
        "folded_pairs": sum(r["folded_share"] > 0 for r in rows),
        "median_background_noise_noisy": _median(r["background_noise"] for r in rows if r["kind"] == "noisy"),
        "median_background_noise_clean": _median(r["background_noise"] for r in rows if r["kind"] == "clean"),
        "total_time_s": float(sum(r["time_s"] for r in rows)),
    }


def evaluate(method="xst", n: int = 24, border: int = 8, model=None, options: dict | None = None,
             progress=None, sample_detector_mm: float | None = None) -> tuple[list[dict], dict]:
    """Run one or more methods over the first ``n`` held-out pairs.

    Args:
        method: ``"xst"``, ``"spinnet"``, ``"xst,spinnet"`` or a list of names.
        n: number of held-out pairs.
        border: pixels cropped on every side before the metrics.
        model: the SPINNet for ``"spinnet"``; None loads the pretrained one (once).
        options: ``{method: {option: value}}`` passed to :func:`spinnet_lite.reconstruct`.
        progress: optional callable taking each finished row (e.g. to print it).
        sample_detector_mm: None, or the held-out set with its random phantoms at this
            sample-to-detector distance (:func:`spinnet_lite.evalset.heldout_specs`; 60 mm is
            the set as it is, other distances scale its displacements).

    Returns:
        ``(rows, summary)``: one dict per (pair, method) with ``method``, ``index``, ``kind``,
        ``seed``, ``pitch``, ``photons``, the metrics of
        :func:`spinnet_lite.metrics.evaluate_pair`, ``time_s``, the truth's largest shift
        ``max_shift_px`` and ``folded_share`` (:func:`spinnet_lite.metrics.folded_share`, same
        border); ``summary[method]`` from
        :func:`summarise`, and with both methods ``summary["comparison"]`` holding
        ``spinnet_win_rate_rmse`` (share of pairs where SPINNet's displacement RMSE is lower).
    """
    names = _methods(method)
    options = dict(options or {})
    for key in options:
        if key not in names:
            raise ValueError(f"options given for {key!r}, which is not being evaluated ({', '.join(names)})")
    if "spinnet" in names and model is None:
        from spinnet_lite.pretrained import load_pretrained

        model = load_pretrained()
    rows = []
    for spec in heldout_specs(n, sample_detector_mm):
        pair = simulate_spec(spec)
        truth = {"max_shift_px": float(np.hypot(pair["dx"].values, pair["dy"].values).max()),
                 "folded_share": folded_share(pair, border)}
        for name in names:
            t0 = time.perf_counter()
            result = reconstruct(pair["reference"], pair["sample"], method=name,
                                 model=model if name == "spinnet" else None, **options.get(name, {}))
            elapsed = time.perf_counter() - t0
            row = {"method": name, "index": spec["index"], "kind": spec["kind"], "seed": spec["seed"],
                   "phantom": spec["phantom"], "pitch": spec["pitch"], "photons": spec["photons"]}
            row.update(evaluate_pair(result, pair, border=border))
            row["time_s"] = elapsed
            row.update(truth)
            rows.append(row)
            if progress is not None:
                progress(row)
    summary = {name: summarise([r for r in rows if r["method"] == name]) for name in names}
    if "xst" in names and "spinnet" in names:
        by_pair = {}
        for r in rows:
            by_pair.setdefault(r["index"], {})[r["method"]] = r["displacement_rmse"]
        wins = [p["spinnet"] < p["xst"] for p in by_pair.values()]
        summary["comparison"] = {"spinnet_win_rate_rmse": sum(wins) / len(wins), "pairs": len(wins)}
    return rows, summary


# ---- printing -----------------------------------------------------------------------------
_ROW_FORMAT = "{method:8s} {index:>3} {kind:10s} {pair_error:>10} {rmse:>9} {terr:>9} {regime:>8} {noise:>9} {time:>7}"


def _fmt(value, spec=".4f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def row_line(row: dict) -> str:
    return _ROW_FORMAT.format(method=row["method"], index=row["index"], kind=row["kind"],
                              pair_error=_fmt(row["pair_error"], ".2e"), rmse=_fmt(row["displacement_rmse"]),
                              terr=_fmt(row["transmission_error"]), regime=row["regime"],
                              noise=_fmt(row["background_noise"]), time=_fmt(row["time_s"], ".2f"))


def header_line() -> str:
    return _ROW_FORMAT.format(method="method", index="#", kind="kind", pair_error="pair err", rmse="RMSE px",
                              terr="T rmse", regime="regime", noise="noise px", time="time s")


def summary_lines(summary: dict, border: int) -> list[str]:
    lines = [f"summary (border {border} px)",
             f"{'method':8s} {'n':>3} {'med RMSE px':>12} {'med pair err':>13} {'med T term':>11} "
             f"{'<0.25%':>7} {'0.25-1%':>8} {'>1%':>5} {'noise noisy':>12} {'noise clean':>12} {'total s':>8}"]
    for name, s in summary.items():
        if name == "comparison":
            continue
        c = s["regime_counts"]
        lines.append(f"{name:8s} {s['n']:>3} {_fmt(s['median_displacement_rmse']):>12} "
                     f"{_fmt(s['median_pair_error'], '.2e'):>13} {_fmt(s['median_pair_error_t'], '.2e'):>11} "
                     f"{c['<0.25%']:>7} {c['0.25-1%']:>8} {c['>1%']:>5} "
                     f"{_fmt(s['median_background_noise_noisy']):>12} {_fmt(s['median_background_noise_clean']):>12} "
                     f"{s['total_time_s']:>8.1f}")
    folded = max(s["folded_pairs"] for name, s in summary.items() if name != "comparison")
    if folded:
        lines.append(f"{folded} of the pairs fold the speckle somewhere (metrics.folded_share): no tracker can "
                     f"recover the displacement there")
    if "comparison" in summary:
        comp = summary["comparison"]
        lines.append(f"spinnet beats xst on displacement RMSE in {comp['spinnet_win_rate_rmse']:.0%} "
                     f"of {comp['pairs']} pairs")
    return lines


def _parse_options(text: str | None) -> dict:
    """``"refine=2,window=9,subpixel=parabolic"`` -> dict (numbers parsed, the rest strings)."""
    out = {}
    if not text:
        return out
    for item in text.split(","):
        if "=" not in item:
            raise ValueError(f"option {item!r} is not KEY=VALUE")
        key, value = (s.strip() for s in item.split("=", 1))
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _json_safe(value):
    """NaN/inf -> None, recursively (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_arguments(args) -> tuple[list[str], dict, object]:
    """``(methods, options, model)`` from the parsed ``--method``, ``--n``, ``--json`` /
    ``--overwrite``, ``--xst-options``, ``--spinnet-options`` and ``--checkpoint`` (the model None
    without a checkpoint: the pretrained one is loaded when needed); ValueError for a bad one."""
    names = _methods(args.method)
    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    if args.json is not None and args.json.exists() and not args.overwrite:
        raise ValueError(f"{args.json}: file exists; pass --overwrite to replace it")
    options = {}
    if args.xst_options and "xst" in names:
        options["xst"] = _parse_options(args.xst_options)
    if args.spinnet_options and "spinnet" in names:
        options["spinnet"] = _parse_options(args.spinnet_options)
    model = None
    if args.checkpoint is not None and "spinnet" in names:
        from spinnet_lite.model.predict import load_checkpoint

        model = load_checkpoint(args.checkpoint)
    return names, options, model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate xst and/or spinnet on the held-out simulated pairs.")
    parser.add_argument("--method", default="xst", help="xst, spinnet or xst,spinnet (default xst)")
    parser.add_argument("--n", type=int, default=24, help="number of held-out pairs (default 24)")
    parser.add_argument("--border", type=int, default=8, help="pixels cropped on each side (default 8)")
    parser.add_argument("--json", type=Path, default=None, help="write rows and summary to this JSON file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    parser.add_argument("--xst-options", default=None, help="xst options, e.g. refine=2,window=9")
    parser.add_argument("--spinnet-options", default=None, help="predict options, e.g. batch_size=2")
    parser.add_argument("--checkpoint", type=Path, default=None, help="SPINNet checkpoint (default: pretrained)")
    parser.add_argument("--operating-range", action="store_true",
                        help="also sweep displacement magnitude (0.5-12 px), visibility (3-80 %%) and speckle type "
                             "(spinnet_lite.operating_range) and print the tables")
    parser.add_argument("--quick", action="store_true", help="operating range: a few cases per sweep only")
    parser.add_argument("--sample-distance", type=float, default=None, metavar="MM",
                        help="simulate the random phantoms at this sample-to-detector distance (default: the "
                             "set's 60 mm; their displacements scale with it; below 300 mm)")
    args = parser.parse_args(argv)
    try:
        names, options, model = run_arguments(args)
        print(header_line(), flush=True)
        rows, summary = evaluate(names, n=args.n, border=args.border, model=model, options=options,
                                 progress=lambda row: print(row_line(row), flush=True),
                                 sample_detector_mm=args.sample_distance)
    except ValueError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 2
    print()
    print("\n".join(summary_lines(summary, args.border)))
    sweep_rows = None
    if args.operating_range:
        from spinnet_lite.operating_range import format_tables, run_sweeps

        if "spinnet" in names and model is None:
            from spinnet_lite.pretrained import load_pretrained

            model = load_pretrained()
        print("\noperating range (spinnet_lite.operating_range; rms displacement error, px)", flush=True)
        sweep_rows = run_sweeps(names, model=model, quick=args.quick, options=options)
        print(format_tables(sweep_rows))
    if args.json is not None:
        report = {"border": args.border, "options": {k: repr(v) for k, v in options.items()},
                  "sample_detector_mm": args.sample_distance,
                  "rows": rows, "summary": summary, "operating_range": sweep_rows}
        from spinnet_lite.io import write_text

        write_text(args.json, json.dumps(_json_safe(report), indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
