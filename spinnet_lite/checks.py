"""Input checks at the public boundary: clear ``ValueError`` messages, never a torch traceback."""
from __future__ import annotations

import numbers

import numpy as np

MIN_SIZE = 64


def _to_numpy(image, name: str) -> np.ndarray:
    data = image
    if hasattr(data, "detach") and hasattr(data, "cpu") and hasattr(data, "numpy"):  # a torch tensor
        try:
            data = data.detach().cpu().numpy()
        except Exception as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ValueError(f"{name}: cannot convert the tensor to an array ({type(exc).__name__}: {message})") from None
    elif not callable(getattr(data, "values", None)):
        data = getattr(data, "values", data)  # DataArray -> ndarray (not a dict's or a tensor's values())
    try:
        return np.asarray(data)
    except Exception as exc:  # ragged lists, exotic objects
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(f"{name}: cannot be read as an array ({type(exc).__name__}: {message})") from None


def as_image(image, name: str = "image", min_size: int = MIN_SIZE) -> np.ndarray:
    """Return ``image`` as a 2-D float64 numpy array after checking it.

    Accepts numpy arrays, xarray DataArrays, torch tensors and anything ``np.asarray`` takes.

    Raises:
        ValueError: not 2-D, smaller than ``min_size`` on a side, not numeric, NaN/inf,
            or constant (no speckle to track).
    """
    arr = _to_numpy(image, name)
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
    with np.errstate(over="ignore"):  # float128 beyond float64's range becomes inf: refused below
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: contains {bad} NaN or infinite values")
    if arr.max() == arr.min():
        raise ValueError(f"{name}: image is constant ({arr.flat[0]!r}); there is no speckle to track")
    return arr


def as_pair(reference, sample, min_size: int = MIN_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Check a reference/sample pair: each as :func:`as_image`, and the same shape."""
    ref = as_image(reference, "reference", min_size)
    sam = as_image(sample, "sample", min_size)
    if ref.shape != sam.shape:
        raise ValueError(f"reference and sample differ in shape: {ref.shape} vs {sam.shape}")
    return ref, sam


def check_intensity(image: np.ndarray, name: str) -> None:
    """Refuse an image that is not an intensity: a mean that is not clearly positive.

    Speckle images are photon counts or intensities, so their mean is positive; a negative,
    zero-mean or offset-subtracted image (mean below 1e-4 of its standard deviation) would give
    a meaningless transmission (a ratio of local means), so both methods refuse it.  The test
    is done on the image scaled to a maximum magnitude of 1, so it holds at any scale.

    Raises:
        ValueError: naming the image, its mean and its standard deviation.
    """
    peak = float(np.max(np.abs(image)))
    scaled = image / peak if peak > 0 else image
    mean, std = float(scaled.mean()), float(scaled.std())
    if not mean > 1e-4 * std:
        raise ValueError(f"{name}: not an intensity image (mean {mean * peak:.3g}, standard deviation {std * peak:.3g}); "
                         "expected non-negative intensities with a positive mean")


def normalise_scale(reference: np.ndarray, sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images divided by one power of two so that their largest magnitude lies in [0.5, 1).

    A power of two changes no digit of a normal float, so results that only depend on
    the intensities' ratios (displacement, transmission) are those of the unscaled images,
    while images of 1e300 or 1e-310 no longer overflow or lose precision downstream.  The
    arrays are scaled in place when they are float64 (as :func:`as_pair` returns them).

    Raises:
        ValueError: the two images differ in scale beyond float64's range.
    """
    peak = max(float(np.max(np.abs(reference))), float(np.max(np.abs(sample))))
    exponent = int(np.frexp(peak)[1])
    out = []
    for image, name in ((reference, "reference"), (sample, "sample")):
        image = np.ldexp(image, -exponent, out=image if image.dtype == np.float64 else None)
        if image.max() == image.min():
            raise ValueError(f"{name}: its intensities are too small next to the other image's "
                             f"(largest magnitude {peak:.3g}) to be represented; expected images of comparable scale")
        out.append(image)
    return out[0], out[1]


#: The counts of mirror images that ``symmetries`` may average over (the first 1, 2, 4 or 8 of
#: :data:`spinnet_lite.tiling.SYMMETRIES`, each a group).
SYMMETRY_COUNTS = (1, 2, 4, 8)


def check_symmetries(symmetries, what: str = "symmetries") -> int:
    """``symmetries`` as an int, one of :data:`SYMMETRY_COUNTS`; a clear ValueError otherwise
    (booleans and non-integers refused)."""
    if isinstance(symmetries, bool) or not isinstance(symmetries, numbers.Integral) \
            or int(symmetries) not in SYMMETRY_COUNTS:
        raise ValueError(f"{what} must be one of {', '.join(map(str, SYMMETRY_COUNTS))}, got {symmetries!r}")
    return int(symmetries)


def check_choice(value, choices, what: str):
    """Raise a clear ValueError unless ``value`` is one of ``choices``."""
    try:
        known = value in choices
    except TypeError:  # an unhashable value
        known = False
    if not known:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(map(repr, choices))}")
    return value


def resolve_device(device, what: str = "device"):
    """A usable ``torch.device`` from ``None`` (CUDA if available, else CPU), a string or a device.

    Raises:
        ValueError: not a device name, a kind this build of torch cannot run (e.g. ``"cuda"``
            on a CPU-only build or a machine without a GPU), or a GPU index that does not exist.
    """
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"{what}: expected a device name such as 'cpu' or 'cuda', got {type(device).__name__}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{what}: unknown device {str(device)!r}; expected e.g. 'cpu', 'cuda' or 'cuda:0'") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            reason = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"{what}: {str(device)!r} is not available ({reason}); use 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{what}: {str(device)!r} does not exist; "
                             f"this machine has {torch.cuda.device_count()} CUDA device(s)")
        return dev
    if dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"{what}: 'mps' is not available on this machine; use 'cpu'")
        return dev
    xpu = getattr(torch, "xpu", None)
    if dev.type == "xpu" and xpu is not None and xpu.is_available():
        return dev
    raise ValueError(f"{what}: device {str(device)!r} cannot run this model here; expected 'cpu' or 'cuda'")
