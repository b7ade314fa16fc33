"""The bundled SPINNet-lite weights (``spinnet_lite/weights/lite.pt``).

They were produced by the project's own ``python -m spinnet_lite train`` command; ``lite.json``
beside them records the command, the configuration, the data seeds, the training time and the
held-out evaluation, and ``lite_history.csv`` the loss per epoch.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS = WEIGHTS_DIR / "lite.pt"
RECORD = WEIGHTS_DIR / "lite.json"
HISTORY = WEIGHTS_DIR / "lite_history.csv"


@lru_cache(maxsize=4)
def _load(path: str, device: str):
    from .model.predict import load_checkpoint

    return load_checkpoint(path, map_location=device)


def load_pretrained(device: str = "cpu", path=None):
    """The bundled SPINNet-lite in eval mode (loaded once per path and device, then shared).

    Args:
        device: torch device string.
        path: another checkpoint to load instead of the bundled one.

    Raises:
        ValueError: the weights file is missing or is not a SPINNet checkpoint.
    """
    path = Path(path) if path is not None else WEIGHTS
    if not path.exists():
        raise ValueError(f"{path}: pretrained weights not found; train them with "
                         "`python -m spinnet_lite train --preset lite --out runs/lite` (see README)")
    return _load(str(path.resolve()), str(device)).eval()


def pretrained_record() -> dict:
    """The JSON record of the bundled weights (command, configuration, seeds, time, evaluation)."""
    if not RECORD.exists():
        raise ValueError(f"{RECORD}: no record of the bundled weights")
    return json.loads(RECORD.read_text())


def training_segments(record: dict | None = None) -> list[dict]:
    """One row per training segment behind the bundled weights, oldest first.

    The record's earlier runs (``lineage``) come first, then the last run; a run resumed over
    several sessions has several ``segments``.  Each row: ``run`` and ``segment`` (numbered
    from 1), ``command`` (without ``python -m spinnet_lite``), ``--minutes`` of that segment,
    and on a run's first segment the run's ``training time [min]``, ``steps`` and ``device``
    (``"cpu, 2 threads"``, ``"cuda"``; ``""`` where the record does not say) and ``weights``
    (``"last step"``, or ``"moving average"`` for a run with ``ema_decay``).

    Args:
        record: a weights record (default :func:`pretrained_record`).
    """
    record = pretrained_record() if record is None else record
    rows = []
    for run_number, run in enumerate([*record.get("lineage", []), record], start=1):
        segments = run.get("segments") or [{"command": run.get("command")}]
        for segment_number, segment in enumerate(segments, start=1):
            first = segment_number == 1
            seconds = run.get("training_time_s")
            rows.append({"run": run_number, "segment": segment_number,
                         "command": (segment.get("command") or "(not recorded)").replace("python -m spinnet_lite ", ""),
                         "--minutes": (segment.get("train_config") or {}).get("minutes", ""),
                         "run's training time [min]": round(seconds / 60, 1) if first and seconds is not None else "",
                         "run's steps": run.get("steps", "") if first else "",
                         "device": _device(run) if first else "",
                         "weights": _weights(run) if first else ""})
    return rows


def _device(run: dict) -> str:
    config = run.get("train_config") or {}
    device = str(run.get("device") or config.get("device") or "")
    if device == "cpu" and config.get("threads"):
        threads = int(config["threads"])
        return f"cpu, {threads} thread{'' if threads == 1 else 's'}"
    return device


def _weights(run: dict) -> str:
    """What the run saved: its last step's weights, or a moving average of them (``ema_decay``)."""
    return "moving average" if str(run.get("weights", "")).startswith("exponential moving average") else "last step"
