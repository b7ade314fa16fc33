"""The environment files: root and Binder in step, pyproject covered, postBuild complete.

Binder reads only ``binder/`` when it exists, so ``binder/environment.yml`` must list the same
conda dependencies as the root ``environment.yml``; the package is installed by
``binder/postBuild`` (a relative ``pip: -e .`` there would point at ``binder/``).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the environment files")

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
ROOT_ENV = ROOT / "environment.yml"
BINDER_ENV = ROOT / "binder" / "environment.yml"
POSTBUILD = ROOT / "binder" / "postBuild"

#: pip distribution name -> conda-forge package name, where they differ.
PIP_TO_CONDA = {"torch": "pytorch-cpu"}
#: conda-forge packages that provide a pip distribution of another name.
CONDA_PROVIDES = {"pytorch-cpu": "torch", "pytorch": "torch"}


def package_name(spec: str) -> str:
    """'numpy>=1.24' -> 'numpy'; 'dask[array]>=2023' -> 'dask'; 'python=3.11' -> 'python'."""
    name = re.split(r"[\s=<>!~\[;]", spec.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def load_env(path: Path) -> dict:
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict) and "dependencies" in env, f"{path.name}: no dependencies list"
    return env


def conda_deps(env: dict) -> dict[str, str]:
    """name -> spec for the conda dependencies (the pip sub-list left out)."""
    return {package_name(d): d for d in env["dependencies"] if isinstance(d, str)}


def pip_deps(env: dict) -> list[str]:
    out = []
    for d in env["dependencies"]:
        if isinstance(d, dict):
            out += list(d.get("pip", []))
    return out


@pytest.fixture(scope="module")
def root_env():
    return load_env(ROOT_ENV)


@pytest.fixture(scope="module")
def binder_env():
    return load_env(BINDER_ENV)


@pytest.fixture(scope="module")
def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


class TestEnvironmentFiles:
    def test_binder_matches_root(self, root_env, binder_env):
        root, binder = conda_deps(root_env), conda_deps(binder_env)
        assert set(root) == set(binder), (
            f"binder/environment.yml differs from environment.yml: only in root {sorted(set(root) - set(binder))}, "
            f"only in binder {sorted(set(binder) - set(root))}"
        )
        differing = {k: (root[k], binder[k]) for k in root if root[k].replace(" ", "") != binder[k].replace(" ", "")}
        assert not differing, f"version constraints differ (root, binder): {differing}"
        assert root_env.get("channels") == binder_env.get("channels")

    def test_conda_forge_only(self, root_env, binder_env):
        for env in (root_env, binder_env):
            assert env.get("channels") == ["conda-forge"], f"channels must be [conda-forge], got {env.get('channels')}"
            names = conda_deps(env)
            assert "pytorch-cpu" in names, "use conda-forge's pytorch-cpu (not the deprecated pytorch channel)"
            assert not any("::" in spec for spec in names.values()), "no channel-pinned (channel::pkg) specs"

    def test_python_311(self, root_env):
        spec = conda_deps(root_env)["python"]
        assert re.fullmatch(r"python\s*=+\s*3\.11(\.\*)?", spec), f"expected python=3.11, got {spec!r}"

    def test_pip_sections(self, root_env, binder_env):
        assert pip_deps(root_env) in ([], ["-e ."]), f"root pip section: only '-e .' expected, got {pip_deps(root_env)}"
        local = [d for d in pip_deps(binder_env) if d.startswith(("-e", ".", "/"))]
        assert not local, f"binder/environment.yml must not install local paths (postBuild does): {local}"
        if pip_deps(root_env) or pip_deps(binder_env):
            assert "pip" in conda_deps(root_env) and "pip" in conda_deps(binder_env), "list pip when using pip:"

    def test_pyproject_dependencies_covered(self, root_env, pyproject):
        conda = set(conda_deps(root_env))
        project = pyproject["project"]
        wanted = list(project["dependencies"])
        extras = project.get("optional-dependencies", {})
        wanted += extras.get("notebooks", []) + extras.get("dev", [])
        missing = sorted({package_name(d) for d in wanted}
                         - conda - {CONDA_PROVIDES.get(c) for c in conda} - {n for n, c in PIP_TO_CONDA.items() if c in conda})
        assert not missing, f"environment.yml lacks pyproject dependencies: {missing}"

    def test_requires_python(self, pyproject):
        req = pyproject["project"]["requires-python"]
        m = re.fullmatch(r">=\s*3\.(\d+)", req.strip())
        assert m and int(m.group(1)) <= 11, f"environment.yml's python 3.11 must satisfy requires-python {req!r}"


@pytest.fixture(scope="module")
def text():
    assert POSTBUILD.is_file(), "binder/postBuild is missing"
    return POSTBUILD.read_text()


class TestPostBuild:

    def test_shebang_and_set_e(self, text):
        assert text.startswith("#!"), "postBuild must start with a shebang line"
        assert re.search(r"^set -[a-z]*e", text, re.M), "postBuild must stop at the first error (set -e)"

    def test_executable(self):
        assert POSTBUILD.stat().st_mode & 0o111, "postBuild must be executable (chmod +x)"

    def test_installs_package(self, text):
        assert re.search(r"^\s*(python -m )?pip install .*(-e )?\.(\s|$)", text, re.M), \
            "postBuild must install the package with pip (pip install -e .)"

    def test_opens_py_as_notebooks(self, text):
        assert ("jupytext-config set-default-viewer" in text) or ("defaultViewers" in text), \
            "postBuild must make JupyterLab open .py notebooks as notebooks (jupytext-config set-default-viewer)"

    def test_no_crlf(self, text):
        assert "\r" not in text, "postBuild has Windows line ends; bash on Binder would fail"
