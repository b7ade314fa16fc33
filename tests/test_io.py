"""io.read_image round trips for every format, and its clear errors; atomic writes and output checks."""
import os
import stat

import numpy as np
import pytest
import xarray as xr

from spinnet_lite.io import (WriteError, atomic_write, check_output_dir, check_output_path, read_image,
                             write_dataset, write_image)

IMAGE = np.arange(64 * 80, dtype=np.float32).reshape(64, 80) / 100.0

# read_image() passes ValueErrors raised inside numpy, tifffile and xarray through unchanged
# (its ``except ValueError: raise`` is meant for its own messages), so those errors do not
# name the file. Strict: once io.py wraps them, these tests pass and the marker must go.


def _container(path, arrays: dict):
    """Write ``arrays`` to an .npz, .h5 or .nc file."""
    suffix = path.suffix
    if suffix == ".npz":
        np.savez(path, **arrays)
    elif suffix == ".h5":
        import h5py

        with h5py.File(path, "w") as h5:
            for k, v in arrays.items():
                h5[k] = v
    else:
        dims = {1: ("n",), 2: ("y", "x"), 3: ("z", "y", "x")}
        xr.Dataset({k: (dims[np.ndim(v)], v) for k, v in arrays.items()}).to_netcdf(path, engine="h5netcdf")


class TestRoundTrip:
    def test_npy(self, tmp_path):
        path = tmp_path / "a.npy"
        np.save(path, IMAGE)
        np.testing.assert_array_equal(read_image(path), IMAGE)
        np.testing.assert_array_equal(read_image(str(path)), IMAGE)

    def test_npz(self, tmp_path):
        path = tmp_path / "a.npz"
        np.savez(path, vector=np.arange(3.0), ref=IMAGE, sam=2 * IMAGE)
        np.testing.assert_array_equal(read_image(f"{path}::ref"), IMAGE)
        np.testing.assert_array_equal(read_image(f"{path}::sam"), 2 * IMAGE)
        np.testing.assert_array_equal(read_image(path, name="sam"), 2 * IMAGE)

    @pytest.mark.parametrize("suffix", [".tif", ".tiff", ".TIF"])
    def test_tiff(self, tmp_path, suffix):
        tifffile = pytest.importorskip("tifffile")
        path = tmp_path / f"a{suffix}"
        tifffile.imwrite(path, IMAGE)
        out = read_image(path)
        assert out.dtype == IMAGE.dtype
        np.testing.assert_array_equal(out, IMAGE)

    def test_tiff_uint16(self, tmp_path):
        tifffile = pytest.importorskip("tifffile")
        path = tmp_path / "counts.tif"
        counts = (IMAGE * 10).astype(np.uint16)
        tifffile.imwrite(path, counts)
        np.testing.assert_array_equal(read_image(path), counts)

    @pytest.mark.parametrize("suffix", [".h5", ".hdf5", ".nxs"])
    def test_hdf5(self, tmp_path, suffix):
        h5py = pytest.importorskip("h5py")
        path = tmp_path / f"scan{suffix}"
        with h5py.File(path, "w") as h5:
            h5["entry/stack"] = np.zeros((2, 4, 4))  # 3-D: skipped when searching
            h5["entry/data/ref"] = IMAGE
            h5["entry/data/sam"] = 3 * IMAGE
        np.testing.assert_array_equal(read_image(f"{path}::entry/data/ref"), IMAGE)
        np.testing.assert_array_equal(read_image(f"{path}::/entry/data/sam"), 3 * IMAGE)
        np.testing.assert_array_equal(read_image(path, name="entry/data/sam"), 3 * IMAGE)

    def test_netcdf(self, tmp_path):
        path = tmp_path / "pair.nc"
        ds = xr.Dataset({"reference": (("y", "x"), IMAGE), "sample": (("y", "x"), IMAGE + 1)})
        ds.to_netcdf(path, engine="h5netcdf")
        np.testing.assert_array_equal(read_image(f"{path}::reference"), IMAGE)
        np.testing.assert_array_equal(read_image(f"{path}::sample"), IMAGE + 1)

    @pytest.mark.parametrize("suffix", [".npz", ".h5", ".nc"])
    def test_single_2d_array_needs_no_name(self, tmp_path, suffix):
        path = tmp_path / f"one{suffix}"
        _container(path, {"vector": np.arange(3.0), "image": IMAGE})
        np.testing.assert_array_equal(read_image(path), IMAGE)


class TestErrors:
    def test_missing_file(self, tmp_path):
        with pytest.raises(ValueError, match="no such file"):
            read_image(tmp_path / "nope.npy")

    def test_directory(self, tmp_path):
        folder = tmp_path / "dir.npy"
        folder.mkdir()
        with pytest.raises(ValueError, match="not a regular file"):
            read_image(folder)

    @pytest.mark.parametrize("name", ["a.png", "a.txt", "noext"])
    def test_unknown_suffix(self, tmp_path, name):
        path = tmp_path / name
        path.write_bytes(b"whatever")
        with pytest.raises(ValueError, match="unknown image format"):
            read_image(path)

    @pytest.mark.parametrize("suffix", [
        ".npy",
        ".npz",
        ".tif",
        ".h5",
        ".nc",
    ])
    def test_corrupt_file(self, tmp_path, suffix):
        # One line that names the file, whichever library failed.
        path = tmp_path / f"broken{suffix}"
        path.write_bytes(b"\x00\x01this is not an image file at all" * 10)
        with pytest.raises(ValueError, match=f"broken\\{suffix}: cannot read"):
            read_image(path)

    def test_missing_dataset_h5(self, tmp_path):
        h5py = pytest.importorskip("h5py")
        path = tmp_path / "scan.h5"
        with h5py.File(path, "w") as h5:
            h5["ref"] = IMAGE
        with pytest.raises(ValueError, match="no dataset 'sam'"):
            read_image(f"{path}::sam")

    def test_no_2d_dataset_h5(self, tmp_path):
        h5py = pytest.importorskip("h5py")
        path = tmp_path / "scan.h5"
        with h5py.File(path, "w") as h5:
            h5["stack"] = np.zeros((2, 4, 4))
        with pytest.raises(ValueError, match="no 2-D array found .*stack"):
            read_image(path)

    def test_missing_array_npz(self, tmp_path):
        path = tmp_path / "a.npz"
        np.savez(path, ref=IMAGE)
        with pytest.raises(ValueError, match="no array 'sam'.*ref"):
            read_image(path, name="sam")

    def test_no_2d_array_npz(self, tmp_path):
        path = tmp_path / "a.npz"
        np.savez(path, vector=np.arange(3.0))
        with pytest.raises(ValueError, match="no 2-D array"):
            read_image(path)

    def test_missing_variable_nc(self, tmp_path):
        path = tmp_path / "pair.nc"
        xr.Dataset({"reference": (("y", "x"), IMAGE)}).to_netcdf(path, engine="h5netcdf")
        with pytest.raises(ValueError, match="no array 'sample'"):
            read_image(path, name="sample")

    def test_pickled_npy_refused(self, tmp_path):
        path = tmp_path / "obj.npy"
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        with pytest.raises(ValueError, match="obj.npy: cannot read"):
            read_image(path)


class TestWriteDataset:
    def test_write_and_refuse_overwrite(self, tmp_path):
        ds = xr.Dataset({"dx": (("y", "x"), IMAGE, {"units": "px"})}, attrs={"method": "xst"})
        path = write_dataset(ds, tmp_path / "out.nc")
        with xr.open_dataset(path, engine="h5netcdf") as back:
            np.testing.assert_array_equal(back["dx"].values, IMAGE)
            assert back["dx"].attrs["units"] == "px"
        with pytest.raises(ValueError, match="exists"):
            write_dataset(ds, path)
        write_dataset(ds * 2, path, overwrite=True)
        np.testing.assert_array_equal(read_image(path), 2 * IMAGE)

    def test_missing_directory(self, tmp_path):
        ds = xr.Dataset({"dx": (("y", "x"), IMAGE)})
        with pytest.raises(ValueError, match="no such directory"):
            write_dataset(ds, tmp_path / "nowhere" / "out.nc")


class TestAmbiguousContainers:
    """A container with several 2-D arrays and no ``::name`` is refused, never read as its first array."""

    @pytest.mark.parametrize("suffix", [".npz", ".h5", ".nc"])
    def test_lists_the_arrays(self, tmp_path, suffix):
        path = tmp_path / f"pair{suffix}"
        _container(path, {"reference": IMAGE, "sample": IMAGE + 1, "dx": IMAGE * 0})
        with pytest.raises(ValueError, match=r"holds 3 2-D arrays \(.*\); choose one with .*::NAME") as info:
            read_image(path)
        message = str(info.value)
        assert "\n" not in message and path.name in message
        assert all(name in message for name in ("reference", "sample", "dx"))
        np.testing.assert_array_equal(read_image(f"{path}::sample"), IMAGE + 1)

    def test_simulate_output_is_ambiguous(self, tmp_path):
        from spinnet_lite import simulate_pair

        path = write_dataset(simulate_pair(64, seed=1), tmp_path / "pair.nc")
        with pytest.raises(ValueError, match="reference, sample"):
            read_image(path)
        np.testing.assert_array_equal(read_image(f"{path}::sample").shape, (64, 64))

    def test_name_on_a_single_array_file(self, tmp_path):
        np.save(tmp_path / "a.npy", IMAGE)
        with pytest.raises(ValueError, match="one array"):
            read_image(f"{tmp_path / 'a.npy'}::ref")

    @pytest.mark.parametrize("bad", [123, None, 4.5, ["a.npy"]])
    def test_path_of_the_wrong_type(self, bad):
        with pytest.raises(ValueError, match="path must be a str"):
            read_image(bad)

    def test_unusable_names(self, tmp_path):
        with pytest.raises(ValueError, match="not a usable file name"):
            read_image(str(tmp_path / ("x" * 5000 + ".npy")))
        with pytest.raises(ValueError):
            read_image("a\x00b.npy")


class TestAtomicWrite:
    def test_success_replaces_and_leaves_no_temporary(self, tmp_path):
        path = tmp_path / "out.bin"
        path.write_bytes(b"old")
        with atomic_write(path) as handle:
            handle.write(b"new")
            assert path.read_bytes() == b"old"  # nothing under the final name until the end
        assert path.read_bytes() == b"new"
        assert os.listdir(tmp_path) == ["out.bin"]

    @pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
    def test_failure_keeps_the_old_file(self, tmp_path, error):
        path = tmp_path / "out.bin"
        path.write_bytes(b"old")
        with pytest.raises(error):
            with atomic_write(path) as handle:
                handle.write(b"half of the new")
                raise error("stop")
        assert path.read_bytes() == b"old"
        assert os.listdir(tmp_path) == ["out.bin"]

    def test_failure_leaves_no_file(self, tmp_path):
        with pytest.raises(RuntimeError):
            with atomic_write(tmp_path / "new.bin") as handle:
                handle.write(b"partial")
                raise RuntimeError
        assert os.listdir(tmp_path) == []

    def test_no_overwrite(self, tmp_path):
        path = tmp_path / "out.txt"
        path.write_text("precious")
        with pytest.raises(ValueError, match="exists"):
            with atomic_write(path, "w", overwrite=False) as handle:
                handle.write("other")
        assert path.read_text() == "precious"
        assert os.listdir(tmp_path) == ["out.txt"]

    def test_keeps_permissions(self, tmp_path):
        path = tmp_path / "out.txt"
        path.write_text("old")
        path.chmod(0o640)
        with atomic_write(path, "w") as handle:
            handle.write("new")
        assert stat.S_IMODE(path.stat().st_mode) == 0o640

    def test_stale_temporary_of_a_dead_writer_is_removed(self, tmp_path):
        import subprocess
        import sys

        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        stale = tmp_path / f".out.nc.{int(dead.stdout)}.abcd.tmp"
        stale.write_bytes(b"left by kill -9")
        mine = tmp_path / f".out.nc.{os.getpid()}.efgh.tmp"  # a live writer's file is left alone
        mine.write_bytes(b"in progress")
        with atomic_write(tmp_path / "out.nc") as handle:
            handle.write(b"x")
        assert not stale.exists() and mine.exists()

    def test_write_error_is_a_value_error(self, tmp_path):
        with pytest.raises(WriteError, match="cannot write"):
            with atomic_write(tmp_path / "no" / "such" / "dir.bin") as handle:
                handle.write(b"x")
        assert issubclass(WriteError, ValueError)


class TestOutputChecks:
    def test_refusals(self, tmp_path):
        (tmp_path / "ref.npy").write_bytes(b"x")
        (tmp_path / "sub").mkdir()
        cases = {
            "": "empty",
            str(tmp_path / "sub"): "is a directory",
            str(tmp_path / "sub") + "/": "is a directory",
            str(tmp_path / "result.npy"): "ending in .nc",
            str(tmp_path / "noext"): "ending in .nc",
            str(tmp_path / "ref.npy" / "x.nc"): "not a directory",
            str(tmp_path / "none" / "x.nc"): "no such directory",
        }
        for path, match in cases.items():
            with pytest.raises(ValueError, match=match):
                check_output_path(path, what="--output")

    def test_existing_and_input_files(self, tmp_path):
        out = tmp_path / "pair.nc"
        out.write_bytes(b"old")
        with pytest.raises(ValueError, match="exists.*--overwrite"):
            check_output_path(out)
        assert check_output_path(out, overwrite=True) == out
        with pytest.raises(ValueError, match="also an input"):
            check_output_path(out, overwrite=True, inputs=[f"{out}::reference"])
        assert check_output_path(tmp_path / "PAIR.NC", inputs=[out]).name == "PAIR.NC"

    @pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to mount a read-only tmpfs")
    def test_read_only_folder(self, tmp_path):
        import subprocess

        folder = tmp_path / "ro"
        folder.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot mount a tmpfs here")
        try:
            with pytest.raises(ValueError, match="cannot write in"):
                check_output_path(folder / "x.nc")
            with pytest.raises(ValueError, match="cannot write in"):
                check_output_dir(folder / "run")
        finally:
            subprocess.run(["umount", str(folder)], check=False)

    def test_output_dir(self, tmp_path):
        (tmp_path / "file").write_text("x")
        with pytest.raises(ValueError, match="is a file"):
            check_output_dir(tmp_path / "file")
        with pytest.raises(ValueError, match="not a directory"):
            check_output_dir(tmp_path / "file" / "run")
        assert check_output_dir(tmp_path / "new" / "run") == tmp_path / "new" / "run"

    def test_write_dataset_checks_the_name_first(self, tmp_path):
        ds = xr.Dataset({"dx": (("y", "x"), IMAGE)})
        with pytest.raises(ValueError, match="ending in"):
            write_dataset(ds, tmp_path / "out.npy")
        assert os.listdir(tmp_path) == []

    @pytest.mark.parametrize("name", ["a.npy", "a.tif"])
    def test_write_image_round_trip(self, tmp_path, name):
        path = write_image(tmp_path / name, IMAGE)
        np.testing.assert_array_equal(read_image(path), IMAGE)
        with pytest.raises(ValueError, match="exists"):
            write_image(path, IMAGE)
