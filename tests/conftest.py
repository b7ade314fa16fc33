"""Shared test helpers."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
BENCHMARKS = ROOT / "benchmarks"


def _load_script(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_tool():
    """``load_tool("eq4_probe")``: a script of ``tools/`` imported as a module (tools/ is no package)."""
    return lambda name: _load_script(TOOLS / f"{name}.py")


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark("seed_scale")``: a script of ``benchmarks/`` imported as a module."""
    return lambda name: _load_script(BENCHMARKS / f"{name}.py")
