"""Export SPINNet for real-time use: TorchScript or ONNX at a fixed image size.

The exported module does what :func:`spinnet_lite.model.predict.predict` does around the
network, so a beamline program needs no Python package at all:

1. divide the reference and the sample by the reference's mean (per pair);
2. reflect-pad to a multiple of the network's :attr:`size_multiple` (8 for the lite network);
3. run the network and stack ``(dx, dy, T)``;
4. crop back to the input size.

Inputs are ``(B, 1, H, W)`` float32 reference and sample at the size given when exporting
(the padding is fixed then); the output is ``(B, 3, H, W)``: ``dx``, ``dy`` (px, forward-model
convention) and the transmission ``T``.  It is one network pass: what
``reconstruct(..., prealign=False, passes=1, lk_sigma=0)`` gives.  The global offset and the
second pass on wide fields (:mod:`spinnet_lite.align`) and the Lucas-Kanade step after the
network (:mod:`spinnet_lite.lucas_kanade`) that ``reconstruct`` adds by default are around the
network and are not part of the export.

    from spinnet_lite.export import export_model, load_exported, run_exported
    path = export_model("spinnet_256.pt", fmt="torchscript", size=256)
    result = run_exported(load_exported(path), reference, sample)   # {"dx", "dy", "transmission"}

Command line: ``python -m spinnet_lite export --format torchscript -o spinnet_256.pt``.
"""
from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .io import check_output_path, write_bytes

FORMATS = ("torchscript", "onnx")
SUFFIXES = {"torchscript": ".pt", "onnx": ".onnx"}
#: File names each format is written to (the first is the usual one).
ACCEPTED_SUFFIXES = {"torchscript": (".pt", ".pth", ".ts"), "onnx": (".onnx",)}
#: Name of the JSON metadata stored in a TorchScript file (``_extra_files``) and as ONNX metadata.
METADATA_KEY = "spinnet_lite.json"


class ExportWrapper(nn.Module):
    """SPINNet with predict()'s normalisation, padding and cropping, for tracing.

    Args:
        model: a :class:`~spinnet_lite.model.spinnet.SPINNet`.
        size: ``(H, W)`` of the images the traced module accepts.

    ``forward(reference, sample)``: ``(B, 1, H, W)`` each -> ``(B, 3, H, W)`` (dx, dy, T).
    """

    def __init__(self, model: nn.Module, size: tuple[int, int]):
        super().__init__()
        self.model = model
        self.height, self.width = int(size[0]), int(size[1])
        m = model.size_multiple
        pad_y, pad_x = (-self.height) % m, (-self.width) % m
        self.top, self.left = pad_y // 2, pad_x // 2
        # F.pad order: (left, right, top, bottom), the same split as predict()'s np.pad.
        self.pads = (self.left, pad_x - self.left, self.top, pad_y - self.top)

    def forward(self, reference: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        scale = reference.mean(dim=(2, 3), keepdim=True)
        ref, sam = reference / scale, sample / scale
        if any(self.pads):
            ref = F.pad(ref, self.pads, mode="reflect")
            sam = F.pad(sam, self.pads, mode="reflect")
        result = self.model(ref, sam)
        both = torch.cat([result["displacement"], result["transmission"]], dim=1)
        return both[:, :, self.top:self.top + self.height, self.left:self.left + self.width]


def _size(size) -> tuple[int, int]:
    if isinstance(size, (tuple, list)) and len(size) == 2:
        shape = tuple(size)
    elif isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        shape = (size, size)
    else:
        raise ValueError(f"size must be an int or (height, width), got {size!r}")
    if any(isinstance(s, bool) or int(s) != s or s < 64 for s in shape):
        raise ValueError(f"size must be at least 64 px on each side, got {size!r}")
    return int(shape[0]), int(shape[1])


def _load_model(weights):
    from .model.spinnet import SPINNet

    if isinstance(weights, SPINNet):
        return weights
    if weights is None:
        from .pretrained import load_pretrained

        return load_pretrained()
    from .model.predict import load_checkpoint

    return load_checkpoint(weights)


def export_model(out, fmt: str = "torchscript", weights=None, size=256, overwrite: bool = False) -> Path:
    """Export a SPINNet, wrapped as :class:`ExportWrapper`, to TorchScript or ONNX.

    Args:
        out: output file: ``.pt`` (or ``.pth``, ``.ts``) for TorchScript, ``.onnx`` for ONNX.
            Checked before anything is loaded or traced, and written atomically (a failed or
            interrupted export leaves the old file).
        fmt: ``"torchscript"`` (``torch.jit.trace``) or ``"onnx"`` (``torch.onnx.export``).
        weights: a checkpoint path, a SPINNet, or None for the bundled lite weights.
        size: image size the exported module accepts, int or ``(height, width)``, >= 64.
        overwrite: replace an existing ``out``.

    Returns:
        The path written.

    Raises:
        ValueError: an unknown format, a bad size, an output name that does not fit the format
            or names the weights file, an existing file without ``overwrite``, a missing or
            read-only output folder, unreadable weights, or an ONNX export this installation
            cannot do (the message says what to install).
    """
    from .checks import check_choice

    check_choice(fmt, FORMATS, "export format")
    height, width = _size(size)
    inputs = (weights,) if isinstance(weights, (str, bytes, os.PathLike)) else ()
    out = check_output_path(out, overwrite=overwrite, suffixes=ACCEPTED_SUFFIXES[fmt], inputs=inputs,
                            what=f"{fmt} output")
    model = _load_model(weights)
    was_training = model.training
    model.eval()
    wrapper = ExportWrapper(model, (height, width)).eval()
    rng = np.random.default_rng(0)
    example_ref = torch.from_numpy(rng.uniform(0.5, 1.5, (1, 1, height, width)).astype(np.float32))
    example_sam = example_ref * 0.9
    metadata = {"format": fmt, "height": height, "width": width, "input": "(B, 1, H, W) reference, sample",
                "output": "(B, 3, H, W): dx, dy (px), transmission", "config": model.config.to_dict(),
                "spinnet_lite_version": _version()}
    try:
        if fmt == "torchscript":
            _export_torchscript(wrapper, (example_ref, example_sam), out, metadata)
        else:
            _export_onnx(wrapper, (example_ref, example_sam), out, metadata)
    finally:
        model.train(was_training)
    return out


def _version() -> str:
    from . import __version__

    return __version__


def _export_torchscript(wrapper, example, out: Path, metadata: dict) -> None:
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about Python ints: the size is fixed on purpose
        traced = torch.jit.trace(wrapper, example, check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={METADATA_KEY: json.dumps(metadata)})
    write_bytes(out, buffer.getvalue())


def _export_onnx(wrapper, example, out: Path, metadata: dict) -> None:
    try:
        import onnx
    except ImportError:
        raise ValueError("ONNX export needs the onnx package: pip install onnx onnxruntime "
                         "(or pip install 'spinnet_lite[export]')") from None

    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs = dict(input_names=["reference", "sample"], output_names=["dx_dy_t"], opset_version=17,
                          dynamic_axes={"reference": {0: "batch"}, "sample": {0: "batch"}, "dx_dy_t": {0: "batch"}})
            buffer = io.BytesIO()
            try:  # the TorchScript-based exporter needs no onnxscript
                torch.onnx.export(wrapper, example, buffer, dynamo=False, **kwargs)
            except TypeError:  # an older torch without the dynamo argument
                buffer = io.BytesIO()
                torch.onnx.export(wrapper, example, buffer, **kwargs)
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = "pip install onnxscript" if "onnxscript" in str(exc) else "pip install --upgrade onnx onnxscript"
        raise ValueError(f"ONNX export failed in torch {torch.__version__} ({type(exc).__name__}: {message}); "
                         f"try {hint}, or export with fmt='torchscript'") from None
    model = onnx.load_model_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    write_bytes(out, model.SerializeToString())


class Exported:
    """A loaded export: ``module`` (TorchScript) or ``session`` (onnxruntime), and its metadata."""

    def __init__(self, path: Path, fmt: str, runner, metadata: dict):
        self.path, self.format, self.runner, self.metadata = path, fmt, runner, metadata

    @property
    def size(self) -> tuple[int, int]:
        return int(self.metadata["height"]), int(self.metadata["width"])

    def __call__(self, reference: np.ndarray, sample: np.ndarray) -> np.ndarray:
        """``(B, 1, H, W)`` float32 arrays -> ``(B, 3, H, W)`` numpy array."""
        if self.format == "torchscript":
            with torch.no_grad():
                return self.runner(torch.from_numpy(reference), torch.from_numpy(sample)).numpy()
        return self.runner.run(None, {"reference": reference, "sample": sample})[0]

    def __repr__(self) -> str:
        return f"Exported({str(self.path)!r}, format={self.format!r}, size={self.size})"


def load_exported(path) -> Exported:
    """Load a file written by :func:`export_model` (TorchScript ``.pt`` or ONNX ``.onnx``).

    Raises:
        ValueError: missing or unreadable file, or onnxruntime missing for an ONNX file.
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise ValueError(f"{path}: no such exported model")
    head = path.read_bytes()[:4]
    if head[:2] == b"PK":  # TorchScript files are zip archives
        extra = {METADATA_KEY: ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, still supported
                module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        except Exception as exc:
            raise ValueError(f"{path}: not a readable TorchScript file ({type(exc).__name__})") from None
        metadata = json.loads(extra[METADATA_KEY]) if extra[METADATA_KEY] else {}
        return Exported(path, "torchscript", module.eval(), metadata)
    try:
        import onnxruntime
    except ImportError:
        raise ValueError(f"{path}: running an ONNX export needs onnxruntime (pip install onnxruntime)") from None
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ValueError(f"{path}: neither TorchScript nor a readable ONNX file ({type(exc).__name__})") from None
    meta = session.get_modelmeta().custom_metadata_map
    metadata = json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else {}
    return Exported(path, "onnx", session, metadata)


def run_exported(exported, reference, sample) -> dict[str, np.ndarray]:
    """Run an export on numpy images: one pair ``(H, W)`` or a stack ``(N, H, W)``.

    Args:
        exported: an :class:`Exported` or a path for :func:`load_exported`.
        reference: ``(H, W)`` or ``(N, H, W)`` (a single reference pairs with every sample).
        sample: ``(H, W)`` or ``(N, H, W)``, at the exported size.

    Returns:
        ``{"dx", "dy", "transmission"}`` float32 arrays of shape ``(H, W)`` or ``(N, H, W)``.

    Raises:
        ValueError: bad images, or a size other than the exported one.
    """
    from .model.predict import _as_stack

    if not isinstance(exported, Exported):
        exported = load_exported(exported)
    refs, ref_single = _as_stack(reference, "reference")
    sams, sam_single = _as_stack(sample, "sample")
    if refs.shape[1:] != sams.shape[1:]:
        raise ValueError(f"reference and sample differ in image shape: {refs.shape[1:]} vs {sams.shape[1:]}")
    if exported.metadata and refs.shape[1:] != exported.size:
        raise ValueError(f"{exported.path.name} was exported for {exported.size[0]}x{exported.size[1]} images, "
                         f"got {refs.shape[1]}x{refs.shape[2]}; export again with size=... or crop the images")
    if len(refs) == 1 and len(sams) > 1:
        refs = np.broadcast_to(refs, sams.shape)
    elif len(refs) != len(sams):
        raise ValueError(f"reference stack of {len(refs)} images cannot pair with {len(sams)} samples")
    out = exported(np.ascontiguousarray(refs[:, None], dtype=np.float32),
                   np.ascontiguousarray(sams[:, None], dtype=np.float32))
    if ref_single and sam_single:
        out = out[0]
        return {"dx": out[0], "dy": out[1], "transmission": out[2]}
    return {"dx": out[:, 0], "dy": out[:, 1], "transmission": out[:, 2]}
