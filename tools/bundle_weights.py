"""Bundle a finished training run as the package's pretrained weights.

    python tools/bundle_weights.py runs/lite [--name lite] [--n 24] [--overwrite]

Copies ``RUN/model.pt`` to ``spinnet_lite/weights/NAME.pt`` and ``RUN/history.csv`` to
``NAME_history.csv``, evaluates the model on the held-out set against XST
(``benchmarks/evaluate.py``) and measures the speed (``benchmarks/speed.py``), and writes
``NAME.json``: the training record (command, configurations, seeds, time) plus those figures.
With ``--previous RECORD.json`` (the record of the weights the run started from, e.g. a
fine-tuning run's ``--init-from``), the earlier record's segments are kept in ``lineage``, so
the bundled JSON lists every training segment that led to the weights and their total time.
RECORD.json may be the bundled ``NAME.json`` that this call replaces: it is read before
anything is written. A run that started from another run not bundled gives ``--previous`` once
per record, oldest first (``--previous spinnet_lite/weights/lite.json --previous
runs/first/record.json``).
``--operating-range`` adds the error-vs-shift/visibility/speckle sweeps
(:mod:`spinnet_lite.operating_range`).  Nothing is overwritten without ``--overwrite``.

    python tools/bundle_weights.py --speed-only [--name lite]

measures the speed of the bundled ``NAME.pt`` again and replaces only the ``speed`` entry of
``NAME.json`` (for a bundle whose speed was measured while other work shared the cores).

    python tools/bundle_weights.py --evaluate-only --reason "..." [--operating-range] [--n 24]

evaluates the bundled ``NAME.pt`` again (held-out set, and the sweeps with
``--operating-range``) and replaces those entries of ``NAME.json``, for a bundle whose figures
were measured before the simulator changed; the summaries it replaces are kept in
``earlier_evaluations`` with the reason and the date.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "spinnet_lite" / "weights"
MAX_BYTES = 10 * 1024 * 1024


def _bench(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: What ``lineage`` keeps of each earlier run's record (``training_segments`` reads these).
LINEAGE_KEYS = ("command", "segments", "train_config", "model_config", "training_time_s", "steps",
                "final_val_pair_error", "device", "device_name", "threads", "weights")


def add_lineage(record: dict, previous: dict) -> None:
    """Put ``previous`` (the record of the weights the run started from) and its own lineage
    into ``record["lineage"]``, oldest first, and the total training time into
    ``record["total_training_time_s"]``."""
    lineage = list(previous.get("lineage", []))
    lineage.append({k: previous[k] for k in LINEAGE_KEYS if k in previous})
    record["lineage"] = lineage
    record["total_training_time_s"] = round(sum(float(x.get("training_time_s") or 0) for x in lineage)
                                            + float(record.get("training_time_s") or 0), 1)


def chain_lineage(record: dict, previous: list[dict]) -> None:
    """:func:`add_lineage` through a chain of runs: ``previous`` holds the records of the runs
    that led to ``record``'s, oldest first (e.g. the bundled ``NAME.json``, then the record.json
    of a run started from it and never bundled); each is given the lineage of those before it
    (on copies: the records passed in are not changed), and ``record`` that of them all."""
    earlier = None
    for prev in previous:
        if earlier is not None:
            prev = dict(prev)
            add_lineage(prev, earlier)
        earlier = prev
    if earlier is not None:
        add_lineage(record, earlier)


def record_json(record: dict) -> str:
    """The bundled record as JSON text (NaN written as null, anything else unknown as its str)."""
    return json.dumps(record, indent=2, default=lambda o: None if o != o else str(o))


def measure_speed(model) -> dict:
    """512 px rows of ``benchmarks/speed.py`` (3 repeats): reconstruct's defaults against XST."""
    rows = _bench("speed").speed(512, model, 3)
    return {"spinnet_s": rows["default"]["median_s"], "xst_s": rows["xst"]["median_s"],
            "speedup": rows["xst"]["median_s"] / rows["default"]["median_s"], "paths": rows,
            "command": "python benchmarks/speed.py (512 px rows; measured while other work shared the 2 cores)"}


def refresh_speed(name: str) -> dict:
    """Measure the bundled ``name``'s speed again and write it into its record, nothing else."""
    from spinnet_lite.io import write_text
    from spinnet_lite.model.predict import load_checkpoint

    record_path = WEIGHTS / f"{name}.json"
    record = json.loads(record_path.read_text())
    speed = measure_speed(load_checkpoint(WEIGHTS / f"{name}.pt"))
    speed["command"] = "python tools/bundle_weights.py --speed-only (benchmarks/speed.py, 512 px rows)"
    record["speed"] = speed
    write_text(record_path, record_json(record))
    return speed


def evaluation_entry(model, n: int) -> dict:
    """The record's ``evaluation``: ``benchmarks/evaluate.py``'s rows and summary, XST and SPINNet
    on ``n`` held-out pairs."""
    from spinnet_lite.model.fast import resolve_engine

    rows, summary = _bench("evaluate").evaluate("xst,spinnet", n=n, model=model)
    return {"heldout_pairs": n, "border": 8, "summary": summary, "rows": [dict(r) for r in rows],
            "command": f"python benchmarks/evaluate.py --method xst,spinnet --n {n}",
            # what engine="auto" ran here (bf16 only on a CPU with native bfloat16)
            "engine": resolve_engine("auto")}


def operating_range_entry(model) -> dict:
    """The record's ``operating_range``: every sweep of :mod:`spinnet_lite.operating_range`."""
    from spinnet_lite.operating_range import format_tables, run_sweeps, summarise

    sweep_rows = run_sweeps(["spinnet", "xst"], model=model)
    print(format_tables(sweep_rows))
    return {"summary": summarise(sweep_rows), "rows": sweep_rows,
            "command": "python benchmarks/evaluate.py --method xst,spinnet --operating-range"}


def reevaluate(name: str, n: int, operating_range: bool, reason: str) -> dict:
    """Evaluate the bundled ``name`` again and write the new figures into its record; the
    summaries they replace go to ``earlier_evaluations`` with ``reason`` and the date."""
    import datetime

    from spinnet_lite.io import write_text
    from spinnet_lite.model.predict import load_checkpoint

    record_path = WEIGHTS / f"{name}.json"
    record = json.loads(record_path.read_text())
    model = load_checkpoint(WEIGHTS / f"{name}.pt")
    keys = ("evaluation", "operating_range") if operating_range else ("evaluation",)
    replaced = {k: {"summary": record[k].get("summary"), "command": record[k].get("command")}
                for k in keys if isinstance(record.get(k), dict)}
    new = {"evaluation": evaluation_entry(model, n)}
    if operating_range:
        new["operating_range"] = operating_range_entry(model)
    record.setdefault("earlier_evaluations", []).append(
        {"reason": reason, "replaced_on": datetime.date.today().isoformat(), **replaced})
    record.update(new)
    write_text(record_path, record_json(record))
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, nargs="?", help="training run folder (model.pt, history.csv, record.json)")
    parser.add_argument("--name", default="lite")
    parser.add_argument("--n", type=int, default=24, help="held-out pairs to evaluate")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--previous", type=Path, action="append",
                        help="record (JSON) of the weights this run started from; given more than once, the "
                             "records of a chain of runs, oldest first (the bundled NAME.json, then each run "
                             "in between)")
    parser.add_argument("--operating-range", action="store_true", help="also run the operating-range sweeps")
    parser.add_argument("--speed-only", action="store_true",
                        help="only measure the bundled NAME.pt's speed again and replace it in NAME.json")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="only evaluate the bundled NAME.pt again (held-out set; the sweeps with --operating-range) "
                             "and replace those figures in NAME.json")
    parser.add_argument("--reason", help="with --evaluate-only: why the figures are measured again (kept in the record)")
    args = parser.parse_args(argv)
    if args.evaluate_only:
        if args.run is not None or args.previous is not None or args.speed_only:
            parser.error("--evaluate-only takes no run folder, --previous or --speed-only")
        if not (args.reason and args.reason.strip()):
            parser.error("--evaluate-only needs --reason (why the bundled figures are measured again)")
        record = reevaluate(args.name, args.n, args.operating_range, args.reason.strip())
        s = record["evaluation"]["summary"]["spinnet"]
        print(f"re-evaluated {args.name}: spinnet median displacement RMSE {s['median_displacement_rmse']:.4f} px on "
              f"{args.n} held-out pairs")
        return 0
    if args.reason is not None:
        parser.error("--reason goes with --evaluate-only")
    if args.speed_only:
        if args.run is not None or args.previous is not None or args.operating_range:
            parser.error("--speed-only takes no run folder, --previous or --operating-range")
        speed = refresh_speed(args.name)
        print(f"speed 512x512: spinnet {speed['spinnet_s']:.3f} s, xst {speed['xst_s']:.3f} s, ratio {speed['speedup']:.1f}x")
        return 0
    if args.run is None:
        parser.error("a training run folder is needed (or --speed-only, --evaluate-only)")
    from spinnet_lite.model.predict import load_checkpoint

    targets = {k: WEIGHTS / f"{args.name}{suffix}" for k, suffix in
               (("pt", ".pt"), ("json", ".json"), ("history", "_history.csv"))}
    clash = [str(p) for p in targets.values() if p.exists()]
    if clash and not args.overwrite:
        print(f"bundle_weights: error: {', '.join(clash)} exist; pass --overwrite", file=sys.stderr)
        return 2
    model_path = args.run / "model.pt"
    model = load_checkpoint(model_path)
    if model_path.stat().st_size > MAX_BYTES:
        print(f"bundle_weights: error: {model_path} is over 10 MB", file=sys.stderr)
        return 2
    record = json.loads((args.run / "record.json").read_text())
    t0 = time.perf_counter()
    record["evaluation"] = evaluation_entry(model, args.n)
    summary = record["evaluation"]["summary"]
    speed = record["speed"] = measure_speed(model)
    if args.operating_range:
        record["operating_range"] = operating_range_entry(model)
    if args.previous is not None:
        chain_lineage(record, [json.loads(p.read_text()) for p in args.previous])
    record["bundled"] = {"from_run": str(args.run), "bundle_seconds": round(time.perf_counter() - t0, 1)}
    WEIGHTS.mkdir(exist_ok=True)
    from spinnet_lite.io import write_bytes, write_text

    write_bytes(targets["pt"], model_path.read_bytes())  # atomic: an interrupted bundle leaves the old weights
    write_bytes(targets["history"], (args.run / "history.csv").read_bytes())
    write_text(targets["json"], record_json(record))
    s, x = summary["spinnet"], summary["xst"]
    print(f"bundled {targets['pt']} ({targets['pt'].stat().st_size / 1e6:.1f} MB)")
    print(f"median displacement RMSE: spinnet {s['median_displacement_rmse']:.4f} px, xst {x['median_displacement_rmse']:.4f} px; "
          f"spinnet wins on {summary['comparison']['spinnet_win_rate_rmse']:.0%} of {args.n} pairs")
    print(f"speed 512x512: spinnet {speed['spinnet_s']:.3f} s, xst {speed['xst_s']:.3f} s, ratio {speed['speedup']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
