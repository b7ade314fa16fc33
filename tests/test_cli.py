"""Command line: round trips and one-line errors with exit status 2."""
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from spinnet_lite.cli import main


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "spinnet_lite", *args], capture_output=True, text=True, cwd=cwd)


class TestSimulateCommand:
    def test_writes_netcdf(self, tmp_path):
        out = tmp_path / "pair.nc"
        r = run("simulate", "--size", "96", "--seed", "1", "--out", str(out))
        assert r.returncode == 0, r.stderr
        with xr.open_dataset(out) as ds:
            assert ds.reference.shape == (96, 96)
            assert ds.attrs["seed"] == 1
            assert {"dx", "dy", "transmission", "phase"} <= set(ds.data_vars)

    def test_same_seed_same_file_content(self, tmp_path):
        assert main(["simulate", "--size", "64", "--seed", "3", "--out", str(tmp_path / "a.nc")]) == 0
        assert main(["simulate", "--size", "64", "--seed", "3", "--out", str(tmp_path / "b.nc")]) == 0
        with xr.open_dataset(tmp_path / "a.nc") as a, xr.open_dataset(tmp_path / "b.nc") as b:
            np.testing.assert_array_equal(a.sample.values, b.sample.values)

    def test_refuses_to_overwrite(self, tmp_path, capsys):
        out = tmp_path / "pair.nc"
        out.write_text("precious")
        assert main(["simulate", "--size", "64", "--out", str(out)]) == 2
        assert out.read_text() == "precious"
        err = capsys.readouterr().err.strip()
        assert "--overwrite" in err and len(err.splitlines()) == 1
        assert main(["simulate", "--size", "64", "--out", str(out), "--overwrite"]) == 0
        assert out.read_bytes()[:4] == b"\x89HDF"

    @pytest.mark.parametrize("args", [["--size", "abc"], ["--size", "32"], ["--phantom", "cat"], ["--photons", "-1"],
                                      ["--pitch", "0"], ["--energy", "nan"]])
    def test_bad_arguments(self, tmp_path, args):
        r = run("simulate", *args, "--out", str(tmp_path / "x.nc"))
        assert r.returncode == 2
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "Traceback" not in r.stderr
        assert not (tmp_path / "x.nc").exists()

    def test_missing_out_dir(self, tmp_path, capsys):
        assert main(["simulate", "--size", "64", "--out", str(tmp_path / "no" / "x.nc")]) == 2
        assert "no such directory" in capsys.readouterr().err

    def test_help_for_each_command(self):
        for cmd in ("simulate", "train", "reconstruct", "export"):
            r = run(cmd, "--help")
            assert r.returncode == 0 and "usage" in r.stdout


class TestReconstructCommand:
    def test_xst_round_trip(self, tmp_path):
        from spinnet_lite import simulate_pair

        ds = simulate_pair(96, seed=4)
        np.save(tmp_path / "ref.npy", ds.reference.values)
        np.save(tmp_path / "sam.npy", ds.sample.values)
        out = tmp_path / "out.nc"
        code = main(["reconstruct", str(tmp_path / "ref.npy"), str(tmp_path / "sam.npy"), "-o", str(out), "--method", "xst",
                     "--energy", "20", "--pixel-size", "0.65", "--distance", "60"])
        assert code == 0
        with xr.open_dataset(out) as r:
            assert {"dx", "dy", "transmission", "phase"} <= set(r.data_vars)
            inner = (slice(12, -12), slice(12, -12))
            # the round trip, not XST's accuracy (tests/test_xst.py): most pixels match the truth
            assert float(np.median(np.abs(r.dx.values - ds.dx.values)[inner])) < 0.1
            assert r.phase.attrs["units"] == "rad"

    def test_errors(self, tmp_path, capsys):
        np.save(tmp_path / "a.npy", np.random.rand(96, 96))
        np.save(tmp_path / "b.npy", np.random.rand(80, 96))
        (tmp_path / "c.png").write_bytes(b"not an image")
        cases = [
            ([str(tmp_path / "missing.npy"), str(tmp_path / "a.npy")], "no such file"),
            ([str(tmp_path / "a.npy"), str(tmp_path / "b.npy")], "shape"),
            ([str(tmp_path / "a.npy"), str(tmp_path / "c.png")], "format"),
        ]
        for files, match in cases:
            assert main(["reconstruct", *files, "-o", str(tmp_path / "o.nc"), "--method", "xst"]) == 2
            err = capsys.readouterr().err.strip()
            assert match in err and len(err.splitlines()) == 1
        assert not (tmp_path / "o.nc").exists()
