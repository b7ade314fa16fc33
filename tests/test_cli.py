"""Command line: round trips and one-line errors with exit status 2."""
import os
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


class TestBadInputTable:
    """Issue 11: each row gives one line on stderr and exit status 2, before any computation."""

    @pytest.fixture
    def no_computation(self, monkeypatch):
        """Fail the test if the command gets as far as simulating, reconstructing or training."""
        import spinnet_lite.simulate
        import spinnet_lite.train

        def boom(*args, **kwargs):
            raise AssertionError("the computation started before the arguments were checked")

        monkeypatch.setattr(spinnet_lite.simulate, "simulate_pair", boom)
        monkeypatch.setattr(sys.modules["spinnet_lite.reconstruct"], "reconstruct", boom)
        monkeypatch.setattr(spinnet_lite.train, "train", boom)

    @pytest.fixture
    def images(self, tmp_path):
        from spinnet_lite.io import write_dataset
        from spinnet_lite.simulate import simulate_pair

        ds = simulate_pair(64, seed=1)
        np.save(tmp_path / "ref.npy", ds.reference.values)
        np.save(tmp_path / "sam.npy", ds.sample.values)
        write_dataset(ds, tmp_path / "pair.nc")
        return tmp_path

    def _run(self, capsys, args, match):
        code = main(args)
        err = capsys.readouterr().err.strip()
        assert code == 2, err
        assert len(err.splitlines()) == 1, err
        assert match in err, err
        return err

    @pytest.mark.parametrize("args, match", [
        (["--seed", "18446744073709551616"], "argument --seed: expected an integer from 0 to 2**63 - 1"),
        (["--seed", "-1"], "argument --seed"),
        (["--seed", "1.5"], "argument --seed"),
        (["--energy", "20", "--distance", "500", "--pixel-size", "1e-200"], "argument --pixel-size"),
        (["--energy", "1e-6", "--distance", "500", "--pixel-size", "0.65"], "argument --energy"),
        (["--photons", "1e300"], "argument --photons"),
        (["--energy", "20"], "missing --pixel-size, --distance"),
    ])
    def test_simulate_arguments(self, tmp_path, capsys, no_computation, args, match):
        self._run(capsys, ["simulate", *args, "-o", str(tmp_path / "x.nc")], match)
        assert list(tmp_path.iterdir()) == []

    @pytest.mark.parametrize("name, match", [
        ("", "--out: the file name is empty"),
        (".", "is a directory"),
        ("{tmp}", "is a directory"),
        ("{tmp}/result.npy", "expected a file name ending in .nc"),
        ("{tmp}/file.txt/x.nc", "is not a directory"),
        ("{tmp}/missing/x.nc", "no such directory"),
    ])
    def test_simulate_output_names(self, tmp_path, capsys, no_computation, name, match):
        (tmp_path / "file.txt").write_text("x")
        self._run(capsys, ["simulate", "-o", name.format(tmp=tmp_path)], match)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]

    def test_reconstruct_rows(self, images, capsys, no_computation):
        t = images
        out = str(t / "out.nc")
        cases = [
            ([str(t / "pair.nc"), str(t / "pair.nc"), "-o", out], "holds 7 2-D arrays"),
            ([f"{t}/pair.nc::reference", f"{t}/pair.nc::sample", "-o", str(t / "pair.nc"), "--overwrite"],
             "is also an input file"),
            ([str(t / "ref.npy"), str(t / "sam.npy"), "-o", str(t / "result.npy")], "ending in .nc"),
            ([str(t / "ref.npy"), str(t / "sam.npy"), "-o", str(t / "ref.npy" / "x.nc")], "is not a directory"),
            ([str(t / "ref.npy"), str(t / "sam.npy"), "-o", str(t)], "is a directory"),
            ([str(t / "ref.npy"), str(t / "sam.npy"), "-o", ""], "empty"),
            ([str(t / "ref.npy"), str(t / "sam.npy"), "-o", out, "--energy", "20"], "missing --pixel-size, --distance"),
            ([str(t / "ref.npy"), str(t / "sam.npy"), "-o", out, "--method", "xst", "--tile", "64"],
             "--tile applies to --method spinnet only"),
            ([str(t / "ref.npy"), str(t / "sam.npy"), "-o", out, "--window", "5"], "--window applies to --method xst"),
            ([str(t / "ref.npy"), str(t / "sam.npy"), "-o", out, "--method", "xst", "--no-prealign"],
             "--no-prealign applies to --method spinnet only"),
            ([str(t / "ref.npy"), str(t / "sam.npy"), "-o", out, "--method", "xst", "--engine", "torch"],
             "--engine applies to --method spinnet only"),
            ([str(t / "ref.npy"), str(t / "sam.npy"), "-o", out, "--engine", "tensorrt"], "argument --engine"),
            ([str(t / "ref.npy"), str(t / "sam.npy"), "-o", out, "--method", "xst", "--symmetries", "4"],
             "--symmetries applies to --method spinnet only"),
            ([str(t / "ref.npy"), str(t / "sam.npy"), "-o", out, "--symmetries", "3"], "argument --symmetries"),
            ([str(t / "ref.npy"), str(t / "sam.npy"), "-o", out, "--method", "xst", "--iterations", "2"],
             "--iterations applies to --method spinnet only"),
            ([str(t / "ref.npy"), str(t / "sam.npy"), "-o", out, "--iterations", "0"], "argument --iterations"),
            ([str(t / "ref.npy"), str(t / "sam.npy"), "-o", out, "--tile", "64", "--overlap", "32"],
             "--overlap (32) must be smaller than half the tile"),
        ]
        before = sorted(p.name for p in t.iterdir())
        for args, match in cases:
            self._run(capsys, ["reconstruct", *args], match)
        assert sorted(p.name for p in t.iterdir()) == before

    def test_damaged_checkpoints(self, images, capsys):
        import torch

        from spinnet_lite.model.predict import save_checkpoint
        from spinnet_lite.model.spinnet import SPINNet

        t = images
        good = save_checkpoint(SPINNet("tiny"), t / "good.pt")
        state = torch.load(good, weights_only=True)
        state["state_dict"] = {k: v.float().fill_(float("nan")) if v.is_floating_point() else v
                               for k, v in state["state_dict"].items()}
        torch.save(state, t / "nan.pt")
        data = bytearray(good.read_bytes())
        middle = len(data) // 2
        data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
        (t / "flipped.pt").write_bytes(bytes(data))
        # flipped bytes are caught by the archive check: a checksum, or a header that no longer
        # reads, depending on where the middle of the file falls; both say "corrupt checkpoint"
        for name, match in (("nan.pt", "NaN or infinite"), ("flipped.pt", "corrupt checkpoint")):
            self._run(capsys, ["reconstruct", str(t / "ref.npy"), str(t / "sam.npy"), "-o", str(t / "o.nc"),
                               "--weights", str(t / name)], match)
        assert not (t / "o.nc").exists()

    def test_engine_option(self, images, capsys):
        """--engine torch is the float32 network: the result equals reconstruct(engine="torch")."""
        from spinnet_lite import reconstruct

        t = images
        assert main(["reconstruct", str(t / "ref.npy"), str(t / "sam.npy"), "-o", str(t / "e.nc"),
                     "--engine", "torch"]) == 0
        expected = reconstruct(np.load(t / "ref.npy"), np.load(t / "sam.npy"), engine="torch")
        with xr.open_dataset(t / "e.nc") as ds:
            np.testing.assert_allclose(ds.dx.values, expected.dx.values, atol=1e-5)

    def test_symmetries_option(self, images, capsys):
        """--symmetries 2 gives reconstruct(symmetries=2)'s result, which differs from the default's."""
        from spinnet_lite import reconstruct

        t = images
        assert main(["reconstruct", str(t / "ref.npy"), str(t / "sam.npy"), "-o", str(t / "s.nc"),
                     "--symmetries", "2"]) == 0
        ref, sam = np.load(t / "ref.npy"), np.load(t / "sam.npy")
        expected, plain = reconstruct(ref, sam, symmetries=2), reconstruct(ref, sam)
        with xr.open_dataset(t / "s.nc") as ds:
            np.testing.assert_allclose(ds.dx.values, expected.dx.values, atol=1e-5)
            assert np.abs(ds.dx.values - plain.dx.values).max() > 1e-4

    def test_iterations_option(self, images, capsys):
        """--iterations 2 gives reconstruct(iterations=2)'s result, which differs from one pass's."""
        from spinnet_lite import reconstruct

        t = images
        ref, sam = np.load(t / "ref.npy"), np.load(t / "sam.npy")
        for count in (1, 2):
            assert main(["reconstruct", str(t / "ref.npy"), str(t / "sam.npy"), "-o", str(t / f"i{count}.nc"),
                         "--iterations", str(count)]) == 0
        expected = reconstruct(ref, sam, iterations=2)
        with xr.open_dataset(t / "i1.nc") as one, xr.open_dataset(t / "i2.nc") as two:
            np.testing.assert_allclose(two.dx.values, expected.dx.values, atol=1e-5)
            assert np.abs(two.dx.values - one.dx.values).max() > 1e-4

    def test_tile_64_works(self, images, capsys):
        t = images
        assert main(["reconstruct", str(t / "ref.npy"), str(t / "sam.npy"), "-o", str(t / "o.nc"), "--tile", "64"]) == 0
        with xr.open_dataset(t / "o.nc") as ds:
            assert np.all(np.isfinite(ds.dx.values))

    def test_every_training_preset_is_offered(self, capsys):
        from spinnet_lite.train import PRESETS

        from spinnet_lite.cli import build_parser

        train = build_parser()._subparsers._group_actions[0].choices["train"]
        preset = next(a for a in train._actions if "--preset" in a.option_strings)
        assert set(preset.choices) == set(PRESETS)

    @pytest.mark.parametrize("args, match", [
        (["--device", "bogus"], "--device: unknown device 'bogus'"),
        (["--batch-size", "64", "--epoch-pairs", "4"], "no optimiser step"),
        (["--seed", "-3"], "argument --seed"),
        (["--workers", "-1"], "argument --workers"),
        (["--minutes", "nan"], "argument --minutes"),
        (["--ema-decay", "1"], "argument --ema-decay"),
        (["--ema-decay", "-0.1"], "argument --ema-decay"),
    ])
    def test_train_arguments(self, tmp_path, capsys, no_computation, args, match):
        self._run(capsys, ["train", "--preset", "tiny", "--out", str(tmp_path / "run"), *args], match)
        assert not (tmp_path / "run").exists()

    def test_train_out_is_a_file(self, tmp_path, capsys, no_computation):
        (tmp_path / "run").write_text("x")
        self._run(capsys, ["train", "--preset", "tiny", "--out", str(tmp_path / "run")], "is a file, not a directory")

    def test_train_cuda_without_cuda(self, tmp_path, capsys, no_computation):
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
        self._run(capsys, ["train", "--preset", "tiny", "--out", str(tmp_path / "run"), "--device", "cuda"],
                  "'cuda' is not available")

    def test_export_rows(self, tmp_path, capsys):
        (tmp_path / "w.pt").write_bytes(b"x")
        self._run(capsys, ["export", "-o", str(tmp_path / "model.onnx")], "ending in .pt")
        self._run(capsys, ["export", "--format", "onnx", "-o", str(tmp_path / "model.pt")], "ending in .onnx")
        self._run(capsys, ["export", "--weights", str(tmp_path / "w.pt"), "-o", str(tmp_path / "w.pt"), "--overwrite"],
                  "is also an input file")
        assert (tmp_path / "w.pt").read_bytes() == b"x"

    @pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to mount a read-only tmpfs")
    def test_read_only_directory(self, images, tmp_path, capsys):
        folder = tmp_path / "ro"
        folder.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot mount a tmpfs here")
        try:
            self._run(capsys, ["reconstruct", str(images / "ref.npy"), str(images / "sam.npy"), "--method", "xst",
                               "-o", str(folder / "x.nc")], "cannot write in")
            self._run(capsys, ["train", "--preset", "tiny", "--out", str(folder / "run")], "cannot write in")
        finally:
            subprocess.run(["umount", str(folder)], check=False)

    def test_no_traceback_in_a_real_process(self, tmp_path):
        r = run("simulate", "--seed", "18446744073709551616", "-o", str(tmp_path / "x.nc"))
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "x.nc").exists()
