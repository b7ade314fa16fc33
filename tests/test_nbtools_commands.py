"""nbtools.make_commands (a notebook runs what `make` runs) and the child-process memory peak."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from spinnet_lite import nbtools

ROOT = Path(__file__).resolve().parents[1]

MAKEFILE = """\
PY := .venv/bin/python
train-lite: setup
\t$(PY) -m spinnet_lite train --preset lite --out runs/lite --lr 1e-3 --patch 256
\t$(PY) tools/bundle_weights.py runs/lite
\t$(PY) -m spinnet_lite train --preset lite --out "runs/lite ft" --init-from runs/lite/model.pt

other:
\t$(PY) -m spinnet_lite simulate --out x.nc
"""


def test_commands_of_a_target(tmp_path):
    makefile = tmp_path / "Makefile"
    makefile.write_text(MAKEFILE)
    assert nbtools.make_commands("train-lite", makefile=makefile) == [
        ["train", "--preset", "lite", "--out", "runs/lite", "--lr", "1e-3", "--patch", "256"],
        ["train", "--preset", "lite", "--out", "runs/lite ft", "--init-from", "runs/lite/model.pt"],
    ]
    assert nbtools.make_commands("other", makefile=makefile) == [["simulate", "--out", "x.nc"]]
    assert nbtools.make_commands("missing", makefile=makefile) == []


def test_found_from_a_subfolder(tmp_path, monkeypatch):
    (tmp_path / "Makefile").write_text(MAKEFILE)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert nbtools.make_commands("other") == [["simulate", "--out", "x.nc"]]


def test_no_makefile(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if not any((d / "Makefile").is_file() for d in (tmp_path, *tmp_path.parents)):
        assert nbtools.make_commands("train-lite") == []


def test_the_project_trains_with_its_working_settings():
    """`make train-lite` (what notebook 04 runs with RETRAIN) has a training command."""
    commands = nbtools.make_commands("train-lite", makefile=ROOT / "Makefile")
    assert commands and commands[0][0] == "train"


def test_child_peak():
    subprocess.run([sys.executable, "-c", "x = bytearray(50 * 2**20)"], check=True)
    assert nbtools.peak_rss_mb(children=True) >= 50


def test_run_command_measures_the_command_not_the_kernel():
    import pytest

    if not Path("/proc/self/status").exists():
        pytest.skip("no /proc: the peak of a command is not measured on this platform")
    held = bytearray(300 * 2**20)  # the "kernel" holds 300 MB; a forked child's ru_maxrss would count it
    held[::4096] = b"x" * len(held[::4096])
    code = "import time; b = bytearray(60 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.5); print('ok')"
    done, peak = nbtools.run_command([sys.executable, "-c", code])
    assert done.returncode == 0 and done.stdout.strip() == "ok"
    assert 60 <= peak < 250


def test_rss_now_is_below_the_peak():
    now = nbtools.rss_mb()
    if now is not None:
        assert 0 < now <= nbtools.peak_rss_mb() + 1
