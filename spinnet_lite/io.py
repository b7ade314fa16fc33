"""Reading images and writing results: .npy, .npz, .tif/.tiff, .h5/.hdf5, .nc in; netCDF out.

A dataset inside a container file is chosen with ``path::name`` (for example
``scan.h5::/entry/data/ref``); without a name the first 2-D array in the file is taken.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

READ_FORMATS = (".npy", ".npz", ".tif", ".tiff", ".h5", ".hdf5", ".nxs", ".nc")


class _ReadError(ValueError):
    """A message of this module's own (it already names the file)."""


def _split(path) -> tuple[Path, str | None]:
    text = os.fspath(path)
    if "::" in text:
        file, name = text.split("::", 1)
        return Path(file), name or None
    return Path(text), None


def read_image(path, name: str | None = None) -> np.ndarray:
    """Read one 2-D image from a file.

    Args:
        path: file path, optionally ``file::dataset`` for .npz/.h5/.nc containers.
        name: dataset/key/variable name inside a container (overrides ``::``).

    Returns:
        The array as stored (not yet checked; see :func:`spinnet_lite.checks.as_image`).

    Raises:
        ValueError: missing file, unknown format, unreadable file or no such dataset.
    """
    file, inner = _split(path)
    inner = name or inner
    if not file.exists():
        raise ValueError(f"{file}: no such file")
    if not file.is_file():
        raise ValueError(f"{file}: not a regular file")
    suffix = file.suffix.lower()
    if suffix not in READ_FORMATS:
        raise ValueError(f"{file}: unknown image format {suffix or '(none)'!r}; expected one of {', '.join(READ_FORMATS)}")
    try:
        if suffix == ".npy":
            return np.load(file, allow_pickle=False)
        if suffix == ".npz":
            with np.load(file, allow_pickle=False) as z:
                return _pick(file, {k: z[k] for k in z.files}, inner)
        if suffix in (".tif", ".tiff"):
            import tifffile

            return tifffile.imread(file)
        if suffix in (".h5", ".hdf5", ".nxs"):
            import h5py

            with h5py.File(file, "r") as h5:
                if inner is not None:
                    if inner not in h5:
                        raise _ReadError(f"{file}: no dataset {inner!r}")
                    return np.asarray(h5[inner])
                found = []
                h5.visititems(lambda k, v: found.append(k) if isinstance(v, h5py.Dataset) and v.ndim == 2 else None)
                if not found:
                    raise _ReadError(f"{file}: no 2-D dataset found")
                return np.asarray(h5[found[0]])
        if suffix == ".nc":
            import xarray as xr

            with xr.open_dataset(file) as ds:
                return _pick(file, {k: ds[k].values for k in ds.data_vars}, inner)
    except _ReadError:
        raise
    except Exception as exc:  # corrupt or unreadable file: one clear line, not a deep traceback
        raise ValueError(f"{file}: cannot read as {suffix} ({type(exc).__name__}: {exc})") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _pick(file, arrays: dict, inner: str | None) -> np.ndarray:
    if inner is not None:
        if inner not in arrays:
            raise _ReadError(f"{file}: no array {inner!r}; it holds {', '.join(arrays) or 'nothing'}")
        return arrays[inner]
    for value in arrays.values():
        if np.ndim(value) == 2:
            return value
    raise _ReadError(f"{file}: no 2-D array found")


def write_dataset(ds, path, overwrite: bool = False) -> Path:
    """Write an xarray.Dataset to netCDF (h5netcdf engine); refuse to overwrite unless asked."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ValueError(f"{path}: file exists; pass overwrite=True (--overwrite) to replace it")
    if path.parent and not path.parent.exists():
        raise ValueError(f"{path.parent}: no such directory")
    ds.to_netcdf(path, engine="h5netcdf")
    return path
