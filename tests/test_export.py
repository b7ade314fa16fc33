"""spinnet_lite.export: TorchScript / ONNX round trips against reconstruct(), and the CLI.

A tiny SPINNet with random (not small) weights, saved to a temporary checkpoint, keeps the
tests fast and the outputs non-trivial; the bundled weights are never needed.
"""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch

from spinnet_lite import reconstruct, simulate_pair
from spinnet_lite.export import ExportWrapper, export_model, load_exported, run_exported
from spinnet_lite.model.predict import save_checkpoint
from spinnet_lite.model.spinnet import SPINNet

SIZE = 80  # not a multiple of 32: the exported module pads and crops as predict() does


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = SPINNet("tiny").eval()
    with torch.no_grad():  # random weights large enough that dx, dy, T vary by ~1 px / ~0.1
        for p in net.parameters():
            p.normal_(0, 0.2)
    return net


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="module")
def pair():
    return simulate_pair(size=SIZE, seed=5)


@pytest.fixture(scope="module")
def expected(model, pair):
    # the exported model is the network's pass; reconstruct's global offset and residual passes
    # (spinnet_lite.align) and its Lucas-Kanade step are around it, so compare with one plain pass
    return reconstruct(pair.reference, pair.sample, method="spinnet", model=model, prealign=False, passes=1,
                       lk_sigma=0, engine="torch")  # the exported module is the float32 network


@pytest.fixture(scope="module")
def exported_file(checkpoint, tmp_path_factory):
    """One TorchScript export shared by the read-only tests (tracing takes a few seconds)."""
    return export_model(tmp_path_factory.mktemp("export") / "spinnet.pt", fmt="torchscript", weights=checkpoint,
                        size=SIZE)


def _compare(result, expected, atol=1e-4):
    for name in ("dx", "dy", "transmission"):
        assert result[name].shape == expected[name].shape
        np.testing.assert_allclose(result[name], expected[name].values, atol=atol, rtol=0, err_msg=name)
    assert float(expected["dx"].std()) > 0.1, "the test model should give a non-trivial displacement"


class TestTorchScript:
    def test_reproduces_reconstruct(self, exported_file, pair, expected):
        path = exported_file
        assert path.is_file()
        exported = load_exported(path)
        assert exported.format == "torchscript" and exported.size == (SIZE, SIZE)
        assert exported.metadata["config"]["name"] == "tiny"
        _compare(run_exported(exported, pair.reference.values, pair.sample.values), expected)

    @pytest.mark.filterwarnings("ignore::DeprecationWarning")
    def test_plain_torch_call(self, exported_file, pair, expected):
        """The file alone, through torch.jit.load: (B, 1, H, W) in, (B, 3, H, W) out."""
        module = torch.jit.load(str(exported_file))
        ref = torch.from_numpy(pair.reference.values[None, None].astype(np.float32))
        sam = torch.from_numpy(pair.sample.values[None, None].astype(np.float32))
        with torch.no_grad():
            out = module(torch.cat([ref, ref]), torch.cat([sam, sam])).numpy()
        assert out.shape == (2, 3, SIZE, SIZE)
        np.testing.assert_allclose(out[1, 0], expected["dx"].values, atol=1e-4)

    def test_stack_with_one_reference(self, exported_file, pair, expected):
        path = exported_file
        samples = np.stack([pair.sample.values, pair.sample.values])
        result = run_exported(path, pair.reference.values, samples)
        assert result["dx"].shape == (2, SIZE, SIZE)
        np.testing.assert_allclose(result["dy"][1], expected["dy"].values, atol=1e-4)

    def test_accepts_a_model_object(self, model, tmp_path):
        path = export_model(tmp_path / "m.pt", weights=model, size=(64, 96))
        assert load_exported(path).size == (64, 96)

    def test_wrong_size_is_refused(self, exported_file):
        path = exported_file
        other = simulate_pair(size=96, seed=1)
        with pytest.raises(ValueError, match="exported for 80x80"):
            run_exported(path, other.reference.values, other.sample.values)


class TestExportErrors:
    def test_refuses_to_overwrite(self, checkpoint, tmp_path):
        out = tmp_path / "x.pt"
        out.write_text("precious")
        with pytest.raises(ValueError, match="overwrite"):
            export_model(out, weights=checkpoint, size=64)
        assert out.read_text() == "precious"
        export_model(out, weights=checkpoint, size=64, overwrite=True)
        assert load_exported(out).size == (64, 64)

    @pytest.mark.parametrize("kwargs, match", [
        ({"fmt": "tflite"}, "unknown export format"),
        ({"size": 32}, "at least 64"),
        ({"size": "big"}, "size must be"),
    ])
    def test_bad_arguments(self, checkpoint, tmp_path, kwargs, match):
        with pytest.raises(ValueError, match=match):
            export_model(tmp_path / "x.pt", weights=checkpoint, **kwargs)
        assert not (tmp_path / "x.pt").exists()

    def test_missing_weights_and_folder(self, checkpoint, tmp_path):
        with pytest.raises(ValueError, match="no such checkpoint"):
            export_model(tmp_path / "x.pt", weights=tmp_path / "missing.pt")
        with pytest.raises(ValueError, match="no such directory"):
            export_model(tmp_path / "no" / "x.pt", weights=checkpoint)

    def test_load_errors(self, tmp_path):
        with pytest.raises(ValueError, match="no such exported model"):
            load_exported(tmp_path / "missing.pt")
        bad = tmp_path / "bad.pt"
        bad.write_bytes(b"PK\x03\x04garbage")
        with pytest.raises(ValueError, match="TorchScript"):
            load_exported(bad)

    def test_wrapper_shapes(self, model):
        wrapper = ExportWrapper(model, (80, 72)).eval()
        x = torch.rand(2, 1, 80, 72) + 0.5
        with torch.no_grad():
            assert wrapper(x, x).shape == (2, 3, 80, 72)


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None,
                    reason="onnx and onnxruntime are not installed (pip install 'spinnet_lite[export]')")
class TestOnnx:
    def test_reproduces_reconstruct(self, checkpoint, pair, expected, tmp_path):
        try:
            path = export_model(tmp_path / "spinnet.onnx", fmt="onnx", weights=checkpoint, size=SIZE)
        except ValueError as exc:  # e.g. a torch whose exporter needs onnxscript
            pytest.skip(str(exc))
        exported = load_exported(path)
        assert exported.format == "onnx" and exported.size == (SIZE, SIZE)
        _compare(run_exported(exported, pair.reference.values, pair.sample.values), expected)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "spinnet_lite", *args], capture_output=True, text=True)


class TestExportCommand:
    def test_round_trip_and_overwrite(self, checkpoint, pair, expected, tmp_path):
        out = tmp_path / "x.pt"
        r = run_cli("export", "--format", "torchscript", "--weights", str(checkpoint), "--size", str(SIZE),
                    "-o", str(out))
        assert r.returncode == 0, r.stderr
        assert str(out) in r.stdout
        _compare(run_exported(out, pair.reference.values, pair.sample.values), expected)
        before = out.read_bytes()
        r = run_cli("export", "--weights", str(checkpoint), "-o", str(out))
        assert r.returncode == 2
        assert "--overwrite" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert "Traceback" not in r.stderr
        assert out.read_bytes() == before
        r = run_cli("export", "--weights", str(checkpoint), "--size", "64", "-o", str(out), "--overwrite")
        assert r.returncode == 0, r.stderr
        assert load_exported(out).size == (64, 64)

    def test_missing_weights(self, tmp_path):
        r = run_cli("export", "--weights", str(tmp_path / "none.pt"), "-o", str(tmp_path / "x.pt"))
        assert r.returncode == 2 and "no such checkpoint" in r.stderr
        assert not (tmp_path / "x.pt").exists()


class TestOutputSafety:
    """Issue 11: the output name is checked before anything is loaded, and written atomically."""

    @pytest.mark.parametrize("name, fmt, match", [
        ("model.onnx", "torchscript", "ending in .pt"),
        ("model.pt", "onnx", "ending in .onnx"),
        ("model", "torchscript", "ending in .pt"),
        ("", "torchscript", "empty"),
    ])
    def test_name_checked_before_loading(self, tmp_path, name, fmt, match):
        # the weights do not exist: an error about them would mean the name was checked too late
        with pytest.raises(ValueError, match=match):
            export_model(str(tmp_path / name) if name else "", fmt=fmt, weights=tmp_path / "missing.pt")
        assert list(tmp_path.iterdir()) == []

    def test_never_overwrites_the_weights(self, checkpoint):
        before = checkpoint.read_bytes()
        with pytest.raises(ValueError, match="also an input"):
            export_model(checkpoint, weights=checkpoint, overwrite=True)
        assert checkpoint.read_bytes() == before

    def test_failed_export_keeps_the_old_file(self, checkpoint, tmp_path, monkeypatch):
        out = tmp_path / "x.pt"
        out.write_bytes(b"old export")

        def broken(module, f, *args, **kwargs):
            f.write(b"PK half an archive")
            raise RuntimeError("disk trouble")

        monkeypatch.setattr(torch.jit, "save", broken)
        with pytest.raises(RuntimeError, match="disk trouble"):
            export_model(out, weights=checkpoint, size=64, overwrite=True)
        assert out.read_bytes() == b"old export"
        assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]
