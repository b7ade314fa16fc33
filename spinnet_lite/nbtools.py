"""Bookkeeping for the teaching notebooks, so that their cells show only what teaches.

A notebook opens a :class:`Lesson` once, right after its imports, and closes it at the end::

    from spinnet_lite import nbtools

    lesson = nbtools.Lesson(OUTPUT_DIR, quick=QUICK, seed=SEED)  # folder checked, clock started
    ...
    lesson.record(wavelength_nm=w)            # a number the tests (and the next notebooks) read
    lesson.savefig(fig, "speckle.png")        # the figure stays displayed inline
    lesson.expect("power_ratio", r, low=0.999999, high=1.000001)   # recorded, and checked now
    lesson.check_exercise("01.1", answer, expected=c0)            # the student's check
    ...
    lesson.finish()   # summary.json written atomically, with run time and peak memory

:func:`check_exercise` and :func:`measure` also work without a lesson.  Everything written
here is plain JSON (numbers, strings, lists, dicts); numpy and torch values are converted.
"""
from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import re
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Lesson", "check_exercise", "ExerciseResult", "make_commands", "measure", "Measurement",
           "peak_rss_mb", "rss_mb", "run_command", "to_jsonable", "write_json_atomic"]

#: Exercise states written to ``summary.json["exercises"]``.
NOT_ATTEMPTED, CORRECT, INCORRECT = "not attempted", "correct", "incorrect"


# ---------------------------------------------------------------------------------------
# JSON and files
# ---------------------------------------------------------------------------------------
def to_jsonable(value):
    """``value`` with numpy/torch scalars and arrays, tuples, sets and paths made plain JSON.

    Non-finite floats become ``None`` (JSON has no NaN); dict keys become strings.
    """
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    if hasattr(value, "values") and hasattr(value, "dims"):  # an xarray DataArray
        value = value.values
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"cannot write a {type(value).__name__} to JSON: {value!r:.80}")


def write_json_atomic(path, data, indent: int = 1) -> Path:
    """Write ``data`` as JSON to ``path`` atomically: the old file or the new one, never half.

    A temporary file in the same folder is written, flushed, synced and then renamed over
    ``path`` (``os.replace``); it is removed if anything fails.
    """
    path = Path(path)
    text = json.dumps(to_jsonable(data), indent=indent, allow_nan=False)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ValueError(f"OUTPUT_DIR {folder} is not a writable folder ({exc.strerror or exc}); "
                         f"set OUTPUT_DIR in the parameters cell to a folder you can write to") from None


# ---------------------------------------------------------------------------------------
# Time and memory
# ---------------------------------------------------------------------------------------
def peak_rss_mb(children: bool = False) -> float | None:
    """Peak resident memory of this process (the notebook's kernel) so far, in MiB.

    Everything counts: numpy, torch, the interpreter.  This is what Binder's memory limit
    sees.  None where the platform gives no peak (then use :func:`measure`'s Python peak).
    With ``children=True``: the peak of the largest finished child process instead (e.g. a
    command run with ``subprocess``; it ran beside the kernel, so the two add up).
    """
    try:
        import resource
    except ImportError:  # Windows
        if children:
            return None
        try:
            import psutil

            return psutil.Process().memory_info().peak_wset / 2**20
        except (ImportError, AttributeError):
            return None
    if not children:
        # Linux: this process's own high-water mark.  ru_maxrss would also count the process the
        # kernel was started from (it survives fork and exec: a kernel launched by a big pytest
        # process reports pytest's peak).
        try:
            line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("VmHWM:"))
            return int(line.split()[1]) / 2**10
        except (OSError, StopIteration):
            pass
    peak = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def rss_mb() -> float | None:
    """Resident memory of this process now (not its peak), MiB; None where ``/proc`` is missing."""
    try:
        line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) / 2**10


def run_command(command, poll_s: float = 0.05):
    """``subprocess.run(command, capture_output=True, text=True)``, and the command's peak memory.

    The peak is the process's own high-water mark (``VmHWM`` in ``/proc/<pid>/status``, read
    while it runs; Linux only, else None).  ``ru_maxrss`` of a child is no use here: it counts
    the copy of the kernel the child was forked from before it started the command.

    Returns:
        ``(completed process, peak resident memory of the command in MiB or None)``.
    """
    import subprocess

    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    status, peak_kb = Path(f"/proc/{proc.pid}/status"), None
    out, err = "", ""
    while True:
        try:
            out, err = proc.communicate(timeout=poll_s)
            break
        except subprocess.TimeoutExpired:
            try:
                line = next(ln for ln in status.read_text().splitlines() if ln.startswith("VmHWM:"))
                peak_kb = int(line.split()[1])  # monotonic within the running program
            except (OSError, StopIteration, ValueError):
                pass
    done = subprocess.CompletedProcess(command, proc.returncode, out, err)
    return done, (None if peak_kb is None else peak_kb / 2**10)


@dataclass
class Measurement:
    """What :func:`measure` saw: wall time, the peak of Python-side allocations, the kernel's peak.

    Attributes:
        label: what was measured.
        seconds: wall-clock time of the block.
        python_peak_mb: peak of memory allocated through Python during the block (``tracemalloc``:
            numpy arrays included, torch tensors not), MiB.
        rss_peak_mb: the kernel's peak resident memory after the block (all allocations), MiB.
    """

    label: str = ""
    seconds: float = float("nan")
    python_peak_mb: float = float("nan")
    rss_peak_mb: float | None = None

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "python_peak_mb": self.python_peak_mb, "rss_peak_mb": self.rss_peak_mb}

    def __str__(self) -> str:
        rss = f", kernel peak {self.rss_peak_mb:.0f} MB" if self.rss_peak_mb is not None else ""
        name = f"{self.label}: " if self.label else ""
        return f"{name}{self.seconds:.2f} s, Python-side peak {self.python_peak_mb:.0f} MB{rss}"


@contextlib.contextmanager
def measure(label: str = ""):
    """Time a block and the peak of its Python-side allocations (``tracemalloc``).

    Example::

        with nbtools.measure("simulate") as m:
            pair = simulate_pair(512)
        print(m)   # simulate: 0.71 s, Python-side peak 40 MB, kernel peak 420 MB

    ``tracemalloc`` sees numpy arrays but not torch's own allocations; ``rss_peak_mb`` (the
    whole kernel, since it started) sees everything.
    """
    result = Measurement(label=label)
    started_here = not tracemalloc.is_tracing()
    if started_here:
        tracemalloc.start()
    else:
        tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    t0 = time.perf_counter()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        if started_here:
            tracemalloc.stop()
        result.python_peak_mb = max(peak - base, 0) / 2**20
        result.rss_peak_mb = peak_rss_mb()


# ---------------------------------------------------------------------------------------
# Exercises
# ---------------------------------------------------------------------------------------
@dataclass
class ExerciseResult:
    """The outcome of :func:`check_exercise`; ``bool(result)`` is whether it passed."""

    name: str
    status: str
    message: str

    def __bool__(self) -> bool:
        return self.status == CORRECT

    def __repr__(self) -> str:  # shown when the check is a cell's last line
        return self.message

    def _repr_markdown_(self) -> str:
        return self.message


def _numeric(x):
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    if hasattr(x, "values") and hasattr(x, "dims"):
        x = x.values
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr


def check_exercise(name, answer, expected, *, rtol: float = 0.02, atol: float = 0.0, hint: str = "",
                   measure=None, quiet: bool = False) -> ExerciseResult:
    """Compare a student's answer with the expected value and say so in one line.

    Args:
        name: the exercise's name as the notebook prints it, e.g. ``"01.2"``.
        answer: the student's value: a number, an array, a tuple, a string or a bool.
            ``None`` or ``...`` means "not attempted yet".
        expected: the value it should have (computed by the notebook, never typed in).
        rtol, atol: numbers and arrays pass when ``|answer - expected| <= atol + rtol * |expected|``
            everywhere.  Strings compare without case and surrounding blanks, others with ``==``.
        hint: printed when the answer does not pass.
        measure: optional function applied to the answer before comparing, for answers that
            are inputs (e.g. a photon count): the check simulates with the answer and compares
            what it measures with ``expected``.
        quiet: return the result without printing.

    Returns:
        An :class:`ExerciseResult` (truthy when correct).  It never raises on a wrong answer,
        so a notebook runs through with exercises left open.
    """
    name = str(name)
    if answer is None or answer is Ellipsis:
        result = ExerciseResult(name, NOT_ATTEMPTED,
                                f"Exercise {name}: not attempted yet - replace the `None` with your answer "
                                f"and run the cell again.")
    else:
        if measure is not None:
            answer = measure(answer)
        a, e = _numeric(answer), _numeric(expected)
        if isinstance(answer, str) or isinstance(expected, str) or a is None or e is None:
            same = str(answer).strip().lower() == str(expected).strip().lower() if isinstance(expected, str) \
                else answer == expected
            status = CORRECT if same else INCORRECT
            detail = "" if same else f"your answer {answer!r} is not the expected one."
        elif a.shape != e.shape and a.size != 1 and e.size != 1:
            status, detail = INCORRECT, f"your answer has shape {a.shape}, the expected one {e.shape}."
        elif not np.all(np.isfinite(a)):
            status, detail = INCORRECT, "your answer contains NaN or inf."
        else:
            bound = atol + rtol * np.abs(e)
            ok = bool(np.all(np.abs(a - e) <= bound))
            status = CORRECT if ok else INCORRECT
            if ok:
                detail = ""
            elif e.size == 1 and a.size == 1 and float(e) != 0:
                off = float(a.ravel()[0] / e.ravel()[0] - 1)
                detail = f"your answer is {abs(off):.0%} too {'high' if off > 0 else 'low'}" \
                    if off > -1 else "your answer has the wrong sign"
                detail += f" (tolerance {rtol:.0%})." if off > -1 else "."
            else:
                worst = float(np.max(np.abs(a - e) - bound))
                detail = f"off by up to {worst:.3g} beyond the tolerance."
        if status == CORRECT:
            message = f"Exercise {name}: correct."
        else:
            message = f"Exercise {name}: not yet - {detail}" + (f" Hint: {hint}" if hint else "")
        result = ExerciseResult(name, status, message)
    if not quiet:
        print(("\u2714 " if result else "\u2718 " if result.status == INCORRECT else "\u2026 ") + result.message)
    return result


# ---------------------------------------------------------------------------------------
# The project's own commands (the Makefile), so a notebook runs what `make` runs
# ---------------------------------------------------------------------------------------
def make_commands(target: str, module: str = "spinnet_lite", makefile=None) -> list[list[str]]:
    """The ``python -m <module> ...`` commands of a Makefile target, as argument lists.

    Example: ``make_commands("train-lite")`` -> ``[["train", "--preset", "lite", ...]]``, the
    arguments after ``-m spinnet_lite`` of every such line of the target's recipe, in order.

    Args:
        target: the Makefile target.
        module: the module whose ``python -m`` lines are returned.
        makefile: the Makefile; default the first ``Makefile`` in the working folder or above
            it (the notebooks run in ``notebooks/``, the project's Makefile is one level up).

    Returns:
        A list of argument lists; empty when there is no Makefile (e.g. a pip-installed
        package) or the target has no such line.
    """
    import shlex

    if makefile is None:
        here = Path.cwd().resolve()
        makefile = next((d / "Makefile" for d in (here, *here.parents) if (d / "Makefile").is_file()), None)
        if makefile is None:
            return []
    lines = Path(makefile).read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(rf"^{re.escape(target)}\s*:", line)), None)
    if start is None:
        return []
    commands = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        words = shlex.split(line.strip())
        for i in range(len(words) - 1):
            if words[i] == "-m" and words[i + 1] == module:
                commands.append(words[i + 2:])
                break
    return commands


# ---------------------------------------------------------------------------------------
# The lesson: summary, figures, checks, run time and memory
# ---------------------------------------------------------------------------------------
class Lesson:
    """One notebook run: where its outputs go and what it records for the tests.

    Args:
        output_dir: the notebook's ``OUTPUT_DIR``; created, and checked to be writable now
            (not after the long computation).
        **meta: values recorded first (e.g. ``quick=QUICK, seed=SEED``).

    ``summary.json`` (written by :meth:`finish`) holds every recorded value plus
    ``run_time_s`` (wall time since the lesson started), ``cpu_time_s`` (the kernel's CPU
    time over the same span, all threads: on a busy machine a better guide than the wall
    time), ``peak_rss_mb`` (the kernel's peak resident memory), ``figures`` (the names saved)
    and ``exercises`` (name -> status).
    """

    def __init__(self, output_dir, **meta):
        self.output_dir = Path(output_dir)
        _check_writable(self.output_dir)
        self.values = {}
        self.figures = []
        self.exercises = {}
        self._start = time.perf_counter()
        self._cpu_start = time.process_time()
        self.record(**meta)

    # -- values ------------------------------------------------------------------------
    def record(self, **values):
        """Keep values for ``summary.json``; returns the last one (so it can be printed)."""
        for key, value in values.items():
            self.values[key] = to_jsonable(value)
        return value if values else None

    def __getitem__(self, key):
        return self.values[key]

    def __contains__(self, key) -> bool:
        return key in self.values

    def expect(self, key: str, value, low=None, high=None, message: str = ""):
        """Record ``value`` under ``key`` and stop the notebook if it leaves ``[low, high]``.

        The bounds are sanity checks of the physics or the code (a broken install, a changed
        default), not a grade; a failure names the value and the bounds.  Returns ``value``.
        """
        self.record(**{key: value})
        v = np.asarray(_numeric(value), dtype=np.float64)
        bad = (low is not None and np.any(v < low)) or (high is not None and np.any(v > high)) \
            or not np.all(np.isfinite(v))
        if bad:
            raise AssertionError(f"{key} = {value!r} is outside [{low}, {high}]" + (f": {message}" if message else ""))
        return value

    def path(self, name: str) -> Path:
        """A file name inside the output folder (for netCDF and other files a notebook writes)."""
        return self.output_dir / name

    # -- figures -----------------------------------------------------------------------
    def savefig(self, fig, name: str, dpi: int = 110):
        """Save ``fig`` as ``OUTPUT_DIR/name`` (PNG); the figure stays open and shows inline."""
        target = self.path(name)
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")
        try:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        if name not in self.figures:
            self.figures.append(name)
        return fig

    # -- exercises ---------------------------------------------------------------------
    def check_exercise(self, name, answer, expected, **options) -> ExerciseResult:
        """:func:`check_exercise`, with the outcome kept for ``summary.json["exercises"]``.

        A later "correct" is never overwritten by a "not attempted" of the same exercise.
        """
        result = check_exercise(name, answer, expected, **options)
        if not (result.status == NOT_ATTEMPTED and self.exercises.get(result.name) == CORRECT):
            self.exercises[result.name] = result.status
        return result

    # -- the end -------------------------------------------------------------------------
    def run_time_s(self) -> float:
        return time.perf_counter() - self._start

    def finish(self, **values) -> Path:
        """Record ``values``, then write ``summary.json`` atomically and say what was saved."""
        self.record(**values)
        rss = peak_rss_mb()
        summary = dict(self.values, run_time_s=self.run_time_s(), cpu_time_s=time.process_time() - self._cpu_start,
                       peak_rss_mb=rss, figures=list(self.figures), exercises=dict(self.exercises))
        path = write_json_atomic(self.path("summary.json"), summary)
        done = sum(1 for s in self.exercises.values() if s == CORRECT)
        memory = f", peak memory {rss:.0f} MB" if rss is not None else ""
        print(f"Saved {path.name} and {len(self.figures)} figures to {self.output_dir} "
              f"(run time {summary['run_time_s']:.0f} s, CPU time {summary['cpu_time_s']:.0f} s{memory}; "
              f"exercises solved: {done} of {len(self.exercises)}).")
        return path
