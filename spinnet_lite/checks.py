"""Input checks at the public boundary: clear ``ValueError`` messages, never a torch traceback."""
from __future__ import annotations

import numpy as np

MIN_SIZE = 64


def as_image(image, name: str = "image", min_size: int = MIN_SIZE) -> np.ndarray:
    """Return ``image`` as a 2-D float64 numpy array after checking it.

    Accepts numpy arrays, xarray DataArrays and anything ``np.asarray`` takes.

    Raises:
        ValueError: not 2-D, smaller than ``min_size`` on a side, not numeric, NaN/inf,
            or constant (no speckle to track).
    """
    data = getattr(image, "values", image)  # DataArray -> ndarray
    try:
        arr = np.asarray(data)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise ValueError(f"{name}: cannot be read as an array ({exc})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name}: expected a numeric image, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name}: expected a real-valued intensity image, got complex values")
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D image (y, x), got shape {arr.shape}")
    if min(arr.shape) < min_size:
        raise ValueError(
            f"{name}: image is {arr.shape[0]}x{arr.shape[1]} px, at least {min_size}x{min_size} is needed"
        )
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: contains {bad} NaN or infinite values")
    if np.ptp(arr) == 0:
        raise ValueError(f"{name}: image is constant ({arr.flat[0]!r}); there is no speckle to track")
    return arr


def as_pair(reference, sample, min_size: int = MIN_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Check a reference/sample pair: each as :func:`as_image`, and the same shape."""
    ref = as_image(reference, "reference", min_size)
    sam = as_image(sample, "sample", min_size)
    if ref.shape != sam.shape:
        raise ValueError(f"reference and sample differ in shape: {ref.shape} vs {sam.shape}")
    return ref, sam


def check_choice(value, choices, what: str):
    """Raise a clear ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(map(repr, choices))}")
    return value
