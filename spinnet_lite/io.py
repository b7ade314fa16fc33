"""Reading images and writing results: .npy, .npz, .tif/.tiff, .h5/.hdf5, .nc in; netCDF out.

A dataset inside a container file is chosen with ``path::name`` (for example
``scan.h5::/entry/data/ref``).  Without a name a container must hold exactly one 2-D array;
one that holds several (``simulate``'s own file holds ``reference``, ``sample``, ``dx``, ...)
is refused with the list of its arrays, never silently read as its first.

Every file the package writes goes through :func:`atomic_write`: the bytes go to a temporary
file in the destination folder, are flushed to disk (``fsync``) and only then moved onto the
final name with ``os.replace``.  An interrupted or failed write (Ctrl-C, ``kill -9``, a full
disk) therefore leaves the old file, or no file, under the final name, never a partial one.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

READ_FORMATS = (".npy", ".npz", ".tif", ".tiff", ".h5", ".hdf5", ".nxs", ".nc")
#: File names :func:`write_dataset` accepts (netCDF-4 is HDF5, so .h5 is a fair name too).
NETCDF_SUFFIXES = (".nc", ".nc4", ".h5", ".hdf5")
#: File names :func:`write_image` accepts.
IMAGE_WRITE_SUFFIXES = (".npy", ".tif", ".tiff")
_TMP_TAG = ".tmp"


class _ReadError(ValueError):
    """A message of this module's own (it already names the file)."""


class WriteError(ValueError):
    """An output that could not be written (full disk, no permission); the old file is intact."""


# ---------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------
def _split(path) -> tuple[Path, str | None]:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise ValueError(f"an image path must be a str or os.PathLike, got {type(path).__name__}")
    text = os.fsdecode(os.fspath(path))
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
        ValueError: missing file, unknown format, unreadable file, no such dataset, or a
            container holding several 2-D arrays and no name to choose one (the message lists
            them).
    """
    file, inner = _split(path)
    if name is not None and not isinstance(name, str):
        raise ValueError(f"{file}: the dataset name must be a string, got {type(name).__name__}")
    inner = name or inner
    try:
        exists, regular = file.exists(), file.is_file()
    except (OSError, ValueError) as exc:  # a name too long, an embedded NUL byte...
        raise ValueError(f"{str(file)!r}: not a usable file name ({exc})") from None
    if not exists:
        raise ValueError(f"{file}: no such file")
    if not regular:
        raise ValueError(f"{file}: not a regular file")
    suffix = file.suffix.lower()
    if suffix not in READ_FORMATS:
        raise ValueError(f"{file}: unknown image format {suffix or '(none)'!r}; expected one of {', '.join(READ_FORMATS)}")
    try:
        if suffix == ".npy":
            if inner is not None:
                raise _ReadError(f"{file}: a .npy file holds one array; '::{inner}' does not apply")
            return np.load(file, allow_pickle=False)
        if suffix == ".npz":
            with np.load(file, allow_pickle=False) as z:
                shapes = {k: z[k].shape for k in z.files} if inner is None else {}
                key = _choose(file, shapes, inner, set(z.files))
                return z[key]
        if suffix in (".tif", ".tiff"):
            if inner is not None:
                raise _ReadError(f"{file}: '::{inner}' does not apply to a TIFF file")
            import tifffile

            return tifffile.imread(file)
        if suffix in (".h5", ".hdf5", ".nxs"):
            import h5py

            with h5py.File(file, "r") as h5:
                if inner is not None:
                    if inner not in h5 or not isinstance(h5[inner], h5py.Dataset):
                        raise _ReadError(f"{file}: no dataset {inner!r}")
                    return np.asarray(h5[inner])
                shapes = {}
                h5.visititems(lambda k, v: shapes.__setitem__("/" + k, v.shape) if isinstance(v, h5py.Dataset) else None)
                return np.asarray(h5[_choose(file, shapes, None, set())])
        if suffix == ".nc":
            import xarray as xr

            with xr.open_dataset(file) as ds:
                shapes = {str(k): ds[k].shape for k in ds.data_vars}
                key = _choose(file, shapes, inner, set(shapes))
                return np.asarray(ds[key].values)
    except _ReadError:
        raise
    except Exception as exc:  # corrupt or unreadable file: one clear line, not a deep traceback
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(f"{file}: cannot read as {suffix} ({type(exc).__name__}: {message})") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _choose(file, shapes: dict, inner: str | None, names: set) -> str:
    """The one array to read: ``inner`` if given, else the only 2-D array (several: an error listing them)."""
    if inner is not None:
        if inner not in names:
            raise _ReadError(f"{file}: no array {inner!r}; it holds {', '.join(sorted(names)) or 'nothing'}")
        return inner
    two_d = [k for k, shape in shapes.items() if len(shape) == 2]
    if len(two_d) == 1:
        return two_d[0]
    if not two_d:
        held = ", ".join(f"{k} {tuple(s)}" for k, s in shapes.items()) or "nothing"
        raise _ReadError(f"{file}: no 2-D array found (it holds {held})")
    shown = ", ".join(two_d[:12]) + (f" and {len(two_d) - 12} more" if len(two_d) > 12 else "")
    raise _ReadError(f"{file}: holds {len(two_d)} 2-D arrays ({shown}); choose one with {file}::NAME")


# ---------------------------------------------------------------------------------------
# output paths and atomic writes
# ---------------------------------------------------------------------------------------
def _as_path(path, what: str) -> Path:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise ValueError(f"{what}: expected a file name, got {type(path).__name__}")
    text = os.fsdecode(os.fspath(path))
    if not text.strip():
        raise ValueError(f"{what}: the file name is empty")
    if "\x00" in text:
        raise ValueError(f"{what} {text!r}: a file name cannot contain a NUL byte")
    return Path(text)


def _names(suffixes) -> str:
    return suffixes[0] + (f" (or {', '.join(suffixes[1:])})" if len(suffixes) > 1 else "")


def _probe_writable(folder: Path, what: str) -> None:
    """Create and remove a file in ``folder``: the one reliable test (root ignores mode bits, not a read-only mount)."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".spinnet_lite-probe-"):
            pass
    except OSError as exc:
        raise ValueError(f"{what}: cannot write in {folder} ({exc.strerror or exc})") from None


def _same_file(a: Path, b) -> bool:
    try:
        b_path, _ = _split(b)
        return b_path.exists() and os.path.samefile(a, b_path)
    except (OSError, ValueError):
        return False


def check_output_path(path, overwrite: bool = False, suffixes=NETCDF_SUFFIXES, inputs=(), what: str = "output") -> Path:
    """Check an output file name before any computation; returns it as a Path.

    Refused with one clear line: an empty name, a directory, a name whose extension is not in
    ``suffixes`` (``None``: any), a missing or non-directory parent, a folder this process
    cannot write in, an existing file without ``overwrite``, something that is not a regular
    file, or one of ``inputs`` (never overwritten, even with ``overwrite``).

    Raises:
        ValueError: as above; the message starts with ``what`` and the name.
    """
    text = os.fsdecode(os.fspath(path)) if isinstance(path, (str, bytes, os.PathLike)) else None
    out = _as_path(path, what)
    label = f"{what} {out}"
    if text.endswith(("/", os.sep)) or out.is_dir():
        raise ValueError(f"{label}: is a directory; expected a file name"
                         + (f" ending in {_names(suffixes)}" if suffixes else ""))
    if suffixes and out.suffix.lower() not in suffixes:
        raise ValueError(f"{label}: expected a file name ending in {_names(suffixes)}, "
                         f"got {out.suffix or 'no extension'!r}")
    parent = out.parent
    if not parent.exists():
        raise ValueError(f"{label}: {parent}: no such directory")
    if not parent.is_dir():
        raise ValueError(f"{label}: {parent} is not a directory")
    for source in inputs:
        if source is not None and _same_file(out, source):
            raise ValueError(f"{label}: is also an input file; write the result under another name")
    if out.exists() or out.is_symlink():
        if not out.is_file():
            raise ValueError(f"{label}: exists and is not a regular file")
        if not overwrite:
            raise ValueError(f"{label}: file exists; pass overwrite=True (--overwrite) to replace it")
    _probe_writable(parent, label)
    return out


def check_output_dir(path, what: str = "output folder") -> Path:
    """Check a folder to write into (it may not exist yet): not a file, and writable where it will be made."""
    out = _as_path(path, what)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{what} {out}: is a file, not a directory")
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{what} {out}: {existing} is not a directory")
    _probe_writable(existing, f"{what} {out}")
    return out


def _remove_stale_temporaries(path: Path) -> None:
    """Temporary files of ``path`` left by a killed writer (its process is gone)."""
    prefix = f".{path.name}."
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for entry in names:
        if not (entry.startswith(prefix) and entry.endswith(_TMP_TAG)):
            continue
        pid_text = entry[len(prefix):].split(".", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            os.kill(int(pid_text), 0)
            continue  # its writer is alive
        except ProcessLookupError:
            pass
        except OSError:
            continue
        with contextlib.suppress(OSError):
            os.unlink(path.parent / entry)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", overwrite: bool = True, **open_kwargs):
    """Context manager: write ``path`` all at once or not at all.

    Yields a file object open on a temporary file in ``path``'s folder (named
    ``.NAME.PID.XXXX.tmp``).  When the ``with`` block ends normally the file is flushed,
    ``fsync``-ed and renamed onto ``path`` (``os.replace``; with ``overwrite=False`` a hard
    link that fails if ``path`` appeared meanwhile); the folder is ``fsync``-ed too.  If the
    block raises (including ``KeyboardInterrupt``) the temporary file is removed and ``path``
    is untouched.  A process killed outright (SIGKILL, power loss) can leave only the hidden
    temporary file, which the next write to the same name removes.  An existing file keeps its
    permission bits.

    Raises:
        WriteError (a ValueError): the file could not be written (no space, no permission);
            the old file, if any, is unchanged.
        ValueError: ``path`` exists and ``overwrite`` is False.
    """
    if any(c in mode for c in "ra+") or "w" not in mode:
        raise ValueError(f"atomic_write: mode must be 'w', 'wb' or 'wt', got {mode!r}")
    path = Path(os.fspath(path))
    if not overwrite and path.exists():
        raise ValueError(f"{path}: file exists; pass overwrite=True (--overwrite) to replace it")
    _remove_stale_temporaries(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=_TMP_TAG, dir=path.parent)
    except OSError as exc:
        raise WriteError(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        try:
            mode_bits = path.stat().st_mode & 0o7777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode_bits = 0o666 & ~umask
        with contextlib.suppress(OSError):
            os.fchmod(fd, mode_bits)
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if the name exists: no race with another writer
            except FileExistsError:
                raise ValueError(f"{path}: file exists; pass overwrite=True (--overwrite) to replace it") from None
            except OSError:  # a filesystem without hard links
                if path.exists():
                    raise ValueError(f"{path}: file exists; pass overwrite=True (--overwrite) to replace it") from None
                os.replace(tmp, path)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        _fsync_dir(path.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise WriteError(f"{path}: cannot write ({exc.strerror or exc}); "
                             f"{'the old file is unchanged' if path.exists() else 'nothing was written'}") from None
        raise


def write_bytes(path, data, overwrite: bool = True) -> Path:
    """Write ``data`` (bytes-like) to ``path`` atomically (see :func:`atomic_write`)."""
    path = Path(os.fspath(path))
    with atomic_write(path, "wb", overwrite=overwrite) as handle:
        handle.write(data)
    return path


def write_text(path, text: str, overwrite: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    return write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def _check_free_space(path: Path, nbytes: int) -> None:
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return
    if free < nbytes + (64 << 10):  # the file plus a little filesystem overhead
        raise WriteError(f"{path}: not enough disk space: the file needs {nbytes / 1e6:.1f} MB, "
                         f"{free / 1e6:.1f} MB are free in {path.parent}")


def write_dataset(ds, path, overwrite: bool = False) -> Path:
    """Write an xarray.Dataset to netCDF-4 (h5netcdf engine), atomically; refuse to overwrite unless asked.

    The file is made in memory first and then written with :func:`atomic_write`, so a full
    disk is a clean error (HDF5 itself crashes the interpreter when a write fails midway).

    Raises:
        ValueError: a bad file name (see :func:`check_output_path`), an existing file without
            ``overwrite``, a dataset netCDF cannot hold, or a failed write (:class:`WriteError`).
    """
    path = check_output_path(path, overwrite=overwrite, suffixes=NETCDF_SUFFIXES, what="netCDF output")
    buffer = io.BytesIO()
    try:
        ds.to_netcdf(buffer, engine="h5netcdf")
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: the dataset cannot be written as netCDF ({message})") from None
    with buffer.getbuffer() as view:
        _check_free_space(path, view.nbytes)
        with atomic_write(path, "wb", overwrite=overwrite) as handle:
            handle.write(view)
    return path


def write_image(path, image, overwrite: bool = False) -> Path:
    """Write one array to ``.npy`` or ``.tif``/``.tiff`` atomically (the inverse of :func:`read_image`).

    Raises:
        ValueError: a bad file name or extension, an existing file without ``overwrite``, a
            failed write.
    """
    path = check_output_path(path, overwrite=overwrite, suffixes=IMAGE_WRITE_SUFFIXES, what="image output")
    array = np.asarray(image)
    if array.dtype == object:
        raise ValueError(f"{path}: expected a numeric array, got dtype object")
    buffer = io.BytesIO()
    if path.suffix.lower() == ".npy":
        np.save(buffer, array, allow_pickle=False)
    else:
        import tifffile

        tifffile.imwrite(buffer, array)
    with buffer.getbuffer() as view:
        _check_free_space(path, view.nbytes)
        with atomic_write(path, "wb", overwrite=overwrite) as handle:
            handle.write(view)
    return path
