"""Running a trained SPINNet on numpy images, and saving/loading checkpoints.

A checkpoint is a ``torch.save`` of ``{"config": config.to_dict(), "state_dict": ..., **extra}``;
the configuration travels with the weights, so a file always rebuilds the right network.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checks import MIN_SIZE, as_image
from .config import SPINNetConfig, check_iterations
from .spinnet import SPINNet


def _as_stack(images, name: str) -> tuple[np.ndarray, bool]:
    """(N, H, W) float64 stack after checking each image; and whether the input was a single 2-D image."""
    data = getattr(images, "values", images)
    arr = np.asarray(data) if not isinstance(data, np.ndarray) else data
    if arr.ndim == 2:
        return as_image(arr, name)[None], True
    if arr.ndim == 3:
        if arr.shape[0] == 0:
            raise ValueError(f"{name}: the stack is empty")
        return np.stack([as_image(a, f"{name}[{i}]") for i, a in enumerate(arr)]), False
    raise ValueError(f"{name}: expected a 2-D image (y, x) or a stack (n, y, x), got shape {arr.shape}")


def predict(model: SPINNet, reference, sample, batch_size: int = 4, device=None, engine: str = "auto",
            fast: bool = False, iterations: int | None = None) -> dict[str, np.ndarray]:
    """Displacement and transmission for one pair or a stack of pairs.

    Each pair is divided by its reference's mean, padded (reflect) to a multiple of
    ``model.size_multiple``, run in batches in eval mode under ``torch.inference_mode``, and
    cropped back. The model's training/eval mode is restored afterwards.

    The network runs through :func:`spinnet_lite.model.fast.prepare`: a cached copy with
    BatchNorm folded into the convolutions and a cache-friendly cost volume (``engine="torch"``,
    equal to the model itself to float32 rounding, tested to 1e-4 px), by default with its
    estimators' bodies in bfloat16 where the CPU has native bfloat16 (``"bf16"``: within ~0.01 px
    of float32, held-out error unchanged, 1.5-2x faster); ``engine="plain"`` runs the model as is.

    Args:
        model: a :class:`SPINNet`.
        reference: ``(H, W)`` or ``(N, H, W)``; a single reference pairs with every sample.
        sample: ``(H, W)`` or ``(N, H, W)``. ``H``, ``W`` >= 64, any value.
        batch_size: pairs per forward pass.
        device: where to run (default: where the model's parameters are); the model is moved there.
        engine: ``"auto"`` (the fastest measured on this machine), ``"plain"``, ``"torch"``,
            ``"bf16"``, ``"torchscript"`` or ``"onnxruntime"`` (see :func:`spinnet_lite.model.fast.prepare`).
        fast: the seed's fast variant: output at level 3, then the refiners
            (:func:`spinnet_lite.model.fast.fast_variant`; less accurate, see ``benchmarks/speed.py``).
        iterations: passes of the network's finest level, 1-4 (default its
            ``config.finest_iterations``, what it was trained with; fewer is faster, see
            :class:`~spinnet_lite.model.config.SPINNetConfig`).

    Returns:
        ``{"dx": ..., "dy": ..., "transmission": ...}`` float32 arrays of shape ``(H, W)``
        (both inputs 2-D) or ``(N, H, W)``; dx, dy in pixels (forward-model convention).

    Raises:
        ValueError: not 2-D/3-D, smaller than 64 px, NaN/inf, constant, mismatched shapes,
            a reference with non-positive mean, a bad batch size, an unknown or unavailable engine,
            ``iterations`` not None or 1-4.
    """
    from .fast import resolve_engine

    if not isinstance(model, SPINNet):
        raise ValueError(f"predict: expected a SPINNet model, got {type(model).__name__}")
    iterations = check_iterations(iterations, "predict: iterations")
    if int(batch_size) < 1:
        raise ValueError(f"predict: batch_size must be >= 1, got {batch_size}")
    refs, ref_single = _as_stack(reference, "reference")
    samples, sample_single = _as_stack(sample, "sample")
    if refs.shape[1:] != samples.shape[1:]:
        raise ValueError(f"reference and sample differ in image shape: {refs.shape[1:]} vs {samples.shape[1:]}")
    if len(refs) != len(samples) and len(refs) != 1:
        raise ValueError(f"reference stack of {len(refs)} images cannot pair with {len(samples)} samples "
                         f"(give one reference or one per sample)")
    means = refs.mean(axis=(1, 2))
    if np.any(means <= 0):
        raise ValueError("reference: mean intensity must be positive (an intensity image is expected)")
    count = len(samples)
    height, width = samples.shape[1:]
    m = model.size_multiple
    pad_y, pad_x = (-height) % m, (-width) % m
    top, left = pad_y // 2, pad_x // 2
    pads = ((0, 0), (top, pad_y - top), (left, pad_x - left))

    if device is None:
        device = next(model.parameters()).device
    else:
        model.to(device)
    engine = resolve_engine(engine, device)
    was_training = model.training
    # the "plain" engine runs the model itself (or a copy in its mode): eval mode, restored after;
    # the other engines run a folded copy made in eval mode (skipping the two walks of the module
    # tree saves ~1 ms a call)
    set_mode = was_training or engine == "plain"
    if set_mode:
        model.eval()
    out = np.empty((count, 3, height, width), np.float32)
    try:
        from .fast import prepare

        runner = prepare(model, engine=engine, fast=bool(fast), iterations=iterations)
        with torch.inference_mode():
            for start in range(0, count, int(batch_size)):
                index = np.arange(start, min(start + int(batch_size), count))
                ref_index = index if len(refs) > 1 else np.zeros_like(index)
                scale = means[ref_index][:, None, None]
                ref_b, sam_b = refs[ref_index] / scale, samples[index] / scale
                if pad_y or pad_x:
                    ref_b, sam_b = np.pad(ref_b, pads, mode="reflect"), np.pad(sam_b, pads, mode="reflect")
                to_tensor = lambda a: torch.from_numpy(a.astype(np.float32)[:, None]).to(device)  # noqa: E731
                both = runner(to_tensor(ref_b), to_tensor(sam_b))
                out[index] = both[:, :, top:top + height, left:left + width].float().cpu().numpy()
    finally:
        if set_mode:
            model.train(was_training)
    if ref_single and sample_single:
        out = out[0]
        return {"dx": out[0], "dy": out[1], "transmission": out[2]}
    return {"dx": out[:, 0], "dy": out[:, 1], "transmission": out[:, 2]}


def _plain(value):
    """numpy scalars/arrays -> Python numbers/tensors, so the checkpoint loads with weights_only=True."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return value


def save_checkpoint(model: SPINNet, path, extra: dict | None = None) -> Path:
    """Save ``{"config": ..., "state_dict": ..., **extra}`` to ``path`` (parent folders created).

    ``extra`` holds plain values (str, numbers, lists, dicts, tensors, numpy arrays), e.g. the
    training stage, epoch, loss history or an optimizer state dict.
    """
    if not isinstance(model, SPINNet):
        raise ValueError(f"save_checkpoint: expected a SPINNet model, got {type(model).__name__}")
    extra = dict(extra or {})
    clash = {"config", "state_dict"} & set(extra)
    if clash:
        raise ValueError(f"save_checkpoint: extra may not contain the keys {sorted(clash)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {"config": model.config.to_dict(),
                  "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                  **_plain(extra)}
    save_torch(checkpoint, path)
    return path


def save_torch(obj, path, overwrite: bool = True) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (:func:`spinnet_lite.io.atomic_write`).

    The bytes are made in memory first, so a full disk or an interrupt leaves the old file.
    """
    import io

    from ..io import atomic_write

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with buffer.getbuffer() as view, atomic_write(path, "wb", overwrite=overwrite) as handle:
        handle.write(view)
    return Path(path)


def _check_archive(path: Path) -> None:
    """A torch zip archive's CRC-32 checksums: flipped bytes anywhere in the weights are caught here."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return  # the legacy (non-zip) format, or not a torch file: torch.load says which
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise ValueError(f"{path}: corrupt checkpoint ({type(exc).__name__}: {exc})") from None
    if bad is not None:
        raise ValueError(f"{path}: corrupt checkpoint: the checksum of {bad!r} does not match (damaged or truncated file)")


def check_state_dict(state_dict, where) -> None:
    """Every entry a tensor, every floating-point weight finite.

    Raises:
        ValueError: naming ``where`` and the first bad entry.
    """
    if not isinstance(state_dict, dict) or not state_dict:
        raise ValueError(f"{where}: the checkpoint's state_dict is not a non-empty dict of tensors")
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{where}: state_dict entry {key!r} is a {type(value).__name__}, not a tensor")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(f"{where}: the weights hold {bad} NaN or infinite values (in {key!r}); "
                             "the checkpoint is damaged or comes from a diverged training run")


def read_checkpoint(path, map_location="cpu") -> dict:
    """Load and check a checkpoint file: a dict with ``"config"`` and ``"state_dict"``.

    Checked before use: the archive's checksums (a damaged or truncated file), that it loads
    with ``weights_only=True`` (no pickled code is ever run), its configuration, and that every
    weight is finite.

    Raises:
        ValueError: missing file, unreadable or corrupt file, not a SPINNet checkpoint, an
            invalid configuration or NaN/inf weights.
    """
    path = Path(os.fspath(path))
    if not path.exists():
        raise ValueError(f"{path}: no such checkpoint file")
    if not path.is_file():
        raise ValueError(f"{path}: not a regular file")
    _check_archive(path)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated file, not a torch file, pickled objects...
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: not a readable SPINNet checkpoint ({message})") from None
    if not isinstance(checkpoint, dict) or "config" not in checkpoint or "state_dict" not in checkpoint:
        raise ValueError(f"{path}: not a SPINNet checkpoint (expected a dict with 'config' and 'state_dict')")
    try:
        SPINNetConfig.from_dict(checkpoint["config"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{path}: invalid configuration in checkpoint: {exc}") from None
    check_state_dict(checkpoint["state_dict"], path)
    return checkpoint


def load_state(model: SPINNet, checkpoint: dict) -> SPINNet:
    """Load a checkpoint dict's weights into ``model`` after checking that the configs agree.

    Raises:
        ValueError: the checkpoint was saved from another configuration, or its weights do
            not fit the model.
    """
    if not isinstance(checkpoint, dict) or "config" not in checkpoint or "state_dict" not in checkpoint:
        raise ValueError("not a SPINNet checkpoint (expected a dict with 'config' and 'state_dict')")
    try:
        saved = SPINNetConfig.from_dict(checkpoint["config"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"checkpoint has an invalid configuration: {exc}") from None
    check_state_dict(checkpoint["state_dict"], "checkpoint")
    if saved != model.config:
        raise ValueError(f"checkpoint is for configuration {saved.name!r} {saved.to_dict()}, "
                         f"but the model has configuration {model.config.name!r} {model.config.to_dict()}")
    try:
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"checkpoint weights do not fit configuration {saved.name!r}: {first}") from None
    return model


def load_checkpoint(path, map_location="cpu") -> SPINNet:
    """Rebuild the :class:`SPINNet` saved in ``path`` (its config is in the file), in eval mode.

    Raises:
        ValueError: missing, unreadable or corrupt file, or weights that do not fit the config.
    """
    checkpoint = read_checkpoint(path, map_location)
    try:
        config = SPINNetConfig.from_dict(checkpoint["config"])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: invalid configuration in checkpoint: {exc}") from None
    model = SPINNet(config)
    load_state(model, checkpoint)
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        model.to(map_location)
    return model.eval()
