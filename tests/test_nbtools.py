"""spinnet_lite.nbtools: the notebooks' bookkeeping (summary, figures, exercise checks, memory)."""
from __future__ import annotations

import ast
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from spinnet_lite import nbtools


class TestToJsonable:
    def test_numpy_and_containers(self):
        value = {"a": np.float32(1.5), "b": np.arange(3), 2: (np.int64(4), {np.bool_(True)}), "p": os.curdir}
        assert nbtools.to_jsonable(value) == {"a": 1.5, "b": [0, 1, 2], "2": [4, [True]], "p": "."}

    def test_non_finite_becomes_null(self):
        assert nbtools.to_jsonable([float("nan"), np.inf, 1.0]) == [None, None, 1.0]

    def test_torch_tensor(self):
        torch = pytest.importorskip("torch")
        assert nbtools.to_jsonable(torch.tensor([1.0, 2.0])) == [1.0, 2.0]

    def test_unknown_type_is_an_error(self):
        with pytest.raises(TypeError, match="object"):
            nbtools.to_jsonable(object())


class TestWriteJsonAtomic:
    def test_round_trip_and_no_temporary_left(self, tmp_path):
        path = nbtools.write_json_atomic(tmp_path / "s.json", {"x": np.float64(0.25)})
        assert json.loads(path.read_text()) == {"x": 0.25}
        assert [p.name for p in tmp_path.iterdir()] == ["s.json"]

    def test_failure_keeps_the_old_file(self, tmp_path):
        path = tmp_path / "s.json"
        path.write_text('{"old": 1}')
        with pytest.raises(TypeError):
            nbtools.write_json_atomic(path, {"bad": object()})
        assert json.loads(path.read_text()) == {"old": 1}
        assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


class TestCheckExercise:
    def test_not_attempted(self, capsys):
        for answer in (None, ...):
            result = nbtools.check_exercise("1", answer, 3.0)
            assert result.status == nbtools.NOT_ATTEMPTED and not result
        assert "not attempted" in capsys.readouterr().out

    def test_number_within_tolerance(self):
        assert nbtools.check_exercise("1", 1.01, 1.0, rtol=0.02, quiet=True)
        assert not nbtools.check_exercise("1", 1.05, 1.0, rtol=0.02, quiet=True)
        assert nbtools.check_exercise("1", 0.001, 0.0, atol=0.01, quiet=True)

    def test_wrong_answer_says_how_far_without_giving_it_away(self):
        result = nbtools.check_exercise("2", 1.2, 1.0, hint="mind the square", quiet=True)
        assert result.status == nbtools.INCORRECT
        assert "20% too high" in result.message and "mind the square" in result.message
        assert "1.0" not in result.message
        assert "wrong sign" in nbtools.check_exercise("2", -1.0, 1.0, quiet=True).message

    def test_arrays_tuples_and_shapes(self):
        assert nbtools.check_exercise("3", (8, 12), np.array([8, 12]), quiet=True)
        assert not nbtools.check_exercise("3", [8, 11], (8, 12), rtol=0, atol=0.5, quiet=True)
        assert "shape" in nbtools.check_exercise("3", [1, 2, 3], [1, 2], quiet=True).message
        assert "NaN" in nbtools.check_exercise("3", [np.nan, 2], [1, 2], quiet=True).message

    def test_measure_applies_to_an_answer_only(self):
        calls = []
        measure = lambda n: calls.append(n) or 1 / n**0.5  # noqa: E731
        assert nbtools.check_exercise("5", 1e4, 0.01, measure=measure, quiet=True)
        assert nbtools.check_exercise("5", None, 0.01, measure=measure, quiet=True).status == nbtools.NOT_ATTEMPTED
        assert calls == [1e4]

    def test_strings_and_bools(self):
        assert nbtools.check_exercise("4", " Sample ", "sample", quiet=True)
        assert not nbtools.check_exercise("4", "mask", "sample", quiet=True)
        assert nbtools.check_exercise("4", True, True, quiet=True)
        assert not nbtools.check_exercise("4", False, True, quiet=True)


class TestMeasure:
    def test_time_and_python_peak(self):
        with nbtools.measure("alloc") as m:
            a = np.ones(4 * 2**20 // 8)  # 4 MiB
            del a
        assert m.seconds >= 0 and m.python_peak_mb >= 3.5
        assert "alloc:" in str(m)
        assert m.rss_peak_mb is None or m.rss_peak_mb > 0

    def test_peak_rss(self):
        peak = nbtools.peak_rss_mb()
        assert peak is None or 1 < peak < 1e6


class TestLesson:
    def test_summary_has_values_figures_exercises_time_and_memory(self, tmp_path, capsys):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        lesson = nbtools.Lesson(tmp_path / "out", quick=True, seed=0)
        assert lesson.record(x=np.float32(2.0)) == 2.0
        fig, ax = plt.subplots()
        ax.imshow(np.random.default_rng(0).random((32, 32)))
        lesson.savefig(fig, "fig.png")
        plt.close(fig)
        lesson.check_exercise("1", 3.0, 3.0)
        lesson.check_exercise("1", None, 3.0)  # running the empty cell again keeps "correct"
        lesson.check_exercise("2", None, 1.0)
        assert lesson.expect("ratio", 1.0, low=0.9, high=1.1) == 1.0
        path = lesson.finish(last=[1, 2])
        s = json.loads(path.read_text())
        assert s["quick"] is True and s["seed"] == 0 and s["x"] == 2.0 and s["ratio"] == 1.0 and s["last"] == [1, 2]
        assert s["figures"] == ["fig.png"] and (tmp_path / "out" / "fig.png").read_bytes()[:4] == b"\x89PNG"
        assert s["exercises"] == {"1": "correct", "2": "not attempted"}
        assert s["run_time_s"] >= 0 and s["cpu_time_s"] >= 0 and (s["peak_rss_mb"] is None or s["peak_rss_mb"] > 0)
        assert "solved: 1 of 2" in capsys.readouterr().out
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fig.png", "summary.json"]

    def test_expect_stops_on_a_value_out_of_bounds(self, tmp_path):
        lesson = nbtools.Lesson(tmp_path)
        with pytest.raises(AssertionError, match="ratio = 2.0 is outside"):
            lesson.expect("ratio", 2.0, high=1.1)
        with pytest.raises(AssertionError):
            lesson.expect("nan", math.nan)

    def test_unwritable_output_dir_is_reported_first(self, tmp_path):
        blocker = tmp_path / "file"
        blocker.write_text("")
        with pytest.raises(ValueError, match="OUTPUT_DIR"):
            nbtools.Lesson(blocker / "sub")


# ---------------------------------------------------------------------------------------
# The notebooks' exercise solutions pass their own checks
# ---------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]
SOLUTION = re.compile(r"<details>\s*<summary>\s*Solution\s*</summary>(.*?)</details>", re.S | re.I)
CODE = re.compile(r"```python\n(.*?)```", re.S)


def _defined_names(tree) -> set[str]:
    """Names bound at the top level of a parsed block (assignments, defs, imports)."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _solved_cell(exercise: str, solution: str) -> str:
    """The exercise cell with the solution in place of the student's placeholders.

    Top-level statements of the exercise cell that bind a name the solution also binds (the
    ``answer = None`` or a ``def`` returning None) are replaced by the solution, at the place of
    the first of them; everything else (set-up lines, the check) runs as written.
    """
    tree = ast.parse(exercise)
    replaced = _defined_names(ast.parse(solution))
    lines, placed = [], False
    for node in tree.body:
        segment = ast.get_source_segment(exercise, node)
        if _defined_names(ast.Module(body=[node], type_ignores=[])) & replaced:
            if not placed:
                lines.append(solution)
                placed = True
            continue
        if not placed and "check_exercise" in segment:
            lines.append(solution)
            placed = True
        lines.append(segment)
    return "\n".join(lines)


def notebook_with_solutions(path: Path):
    """The notebook with each hidden solution run where a student would put it.

    A solution is a fenced ``python`` block inside ``<details><summary>Solution</summary>
    ... </details>`` in a markdown cell.  Two layouts are understood:

    * the block ends with the exercise's check call (``check_exercise(...)``): it runs right
      after the markdown cell, as a student who pastes it would run it;
    * otherwise the exercise's code cell comes after the markdown: that cell runs with the
      solution in place of its placeholders (:func:`_solved_cell`).

    Returns ``(notebook, number of solution blocks)``.
    """
    import jupytext
    import nbformat

    nb = jupytext.read(path)
    cells, count, pending = [], 0, []
    for cell in nb.cells:
        if cell.cell_type == "code" and pending and "check_exercise" in cell.source:
            solution = "\n".join(pending)
            cells.append(nbformat.v4.new_code_cell(_solved_cell(cell.source, solution)))
            pending = []
            continue
        cells.append(cell)
        if cell.cell_type == "markdown":
            for block in SOLUTION.findall(cell.source):
                for code in CODE.findall(block):
                    count += 1
                    if "check_exercise" in code:
                        cells.append(nbformat.v4.new_code_cell(code))
                    else:
                        pending.append(code)
    nb.cells = cells
    return nb, count


def notebooks_with_exercises() -> list[Path]:
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    return [p for p in paths if "check_exercise" in p.read_text() and SOLUTION.search(p.read_text())]


def test_solution_blocks_are_found():
    for path in notebooks_with_exercises():
        _, count = notebook_with_solutions(path)
        assert count >= 1, f"{path.name}: no ```python block inside a <details><summary>Solution</summary>"


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", notebooks_with_exercises(), ids=lambda p: p.stem)
def test_solutions_pass_their_checks(path, tmp_path, monkeypatch):
    """Run the notebook (QUICK=True) with its solutions filled in: every exercise is then correct."""
    import papermill

    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb, count = notebook_with_solutions(path)
    out = tmp_path / "output"
    papermill.execute_notebook(nb, str(tmp_path / f"{path.stem}.ipynb"), kernel_name="python3", language="python",
                               cwd=str(ROOT / "notebooks"), parameters={"QUICK": True, "OUTPUT_DIR": str(out)},
                               execution_timeout=600, progress_bar=False)
    exercises = json.loads((out / "summary.json").read_text())["exercises"]
    assert len(exercises) >= count >= 1, (exercises, count)
    wrong = {name: status for name, status in exercises.items() if status != nbtools.CORRECT}
    assert not wrong, f"{path.name}: these exercises do not pass with their own solutions: {wrong}"
