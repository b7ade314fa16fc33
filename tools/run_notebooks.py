"""The main job: execute every notebook in notebooks/ headless, in order, with papermill.

    python tools/run_notebooks.py [--output output] [--quick] [--only 01 02]

Each ``notebooks/NN_name.py`` (jupytext percent format) is executed with ``cwd=notebooks``
and written to ``OUTPUT/NN_name.ipynb``; its figures and summary go to ``OUTPUT/NN_name/``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jupytext
import papermill

ROOT = Path(__file__).resolve().parents[1]


def notebooks(only=None) -> list[Path]:
    found = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    return [p for p in found if not only or p.name[:2] in only]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="output", help="folder for executed notebooks and figures")
    parser.add_argument("--quick", action="store_true", help="run with QUICK=True (as the tests do)")
    parser.add_argument("--only", nargs="*", help="notebook numbers to run, e.g. 01 02")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)
    out = (ROOT / args.output).resolve() if not os.path.isabs(args.output) else Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TQDM_DISABLE", "1")
    failed = []
    for path in notebooks(args.only):
        target = out / (path.stem + ".ipynb")
        figures = out / path.stem
        t0 = time.perf_counter()
        print(f"{path.name} -> {target.relative_to(out.parent) if out.parent in target.parents else target}", flush=True)
        try:
            papermill.execute_notebook(jupytext.read(path), str(target), kernel_name="python3", language="python",
                                       cwd=str(ROOT / "notebooks"), progress_bar=False, execution_timeout=args.timeout,
                                       parameters={"QUICK": args.quick, "OUTPUT_DIR": str(figures)})
        except papermill.PapermillExecutionError as exc:
            failed.append(path.name)
            print(f"  FAILED: {exc.ename}: {exc.evalue}", file=sys.stderr)
            continue
        print(f"  done in {time.perf_counter() - t0:.1f} s; figures in {figures}", flush=True)
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
