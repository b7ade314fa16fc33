"""io.read_image round trips for every format, and its clear errors; write_dataset."""
import numpy as np
import pytest
import xarray as xr

from spinnet_lite.io import read_image, write_dataset

IMAGE = np.arange(64 * 80, dtype=np.float32).reshape(64, 80) / 100.0

# read_image() passes ValueErrors raised inside numpy, tifffile and xarray through unchanged
# (its ``except ValueError: raise`` is meant for its own messages), so those errors do not
# name the file. Strict: once io.py wraps them, these tests pass and the marker must go.


class TestRoundTrip:
    def test_npy(self, tmp_path):
        path = tmp_path / "a.npy"
        np.save(path, IMAGE)
        np.testing.assert_array_equal(read_image(path), IMAGE)
        np.testing.assert_array_equal(read_image(str(path)), IMAGE)

    def test_npz(self, tmp_path):
        path = tmp_path / "a.npz"
        np.savez(path, vector=np.arange(3.0), ref=IMAGE, sam=2 * IMAGE)
        np.testing.assert_array_equal(read_image(path), IMAGE)  # the first 2-D array
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
        np.testing.assert_array_equal(read_image(path), IMAGE)
        np.testing.assert_array_equal(read_image(f"{path}::/entry/data/sam"), 3 * IMAGE)
        np.testing.assert_array_equal(read_image(path, name="entry/data/sam"), 3 * IMAGE)

    def test_netcdf(self, tmp_path):
        path = tmp_path / "pair.nc"
        ds = xr.Dataset({"reference": (("y", "x"), IMAGE), "sample": (("y", "x"), IMAGE + 1)})
        ds.to_netcdf(path, engine="h5netcdf")
        np.testing.assert_array_equal(read_image(path), IMAGE)
        np.testing.assert_array_equal(read_image(f"{path}::sample"), IMAGE + 1)


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
        with pytest.raises(ValueError, match="no 2-D dataset"):
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
