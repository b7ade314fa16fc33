"""reconstruct(): the labelled Dataset, the geometry variables, both methods, and bad input."""
import sys
import types

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from spinnet_lite import Geometry, reconstruct
from spinnet_lite.integrate import integrate

N = 72
XST = dict(method="xst", search=3, refine=1)  # small and quick


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    ref = ndimage.gaussian_filter((rng.random((N, N)) > 0.5).astype(float), 1.0) + 0.5
    sam = 0.9 * ndimage.shift(ref, (0.5, -1.25), order=3, mode="reflect")
    return ref, sam


class TestDataset:
    def test_xst_without_geometry(self, pair):
        ds = reconstruct(*pair, **XST)
        assert isinstance(ds, xr.Dataset)
        assert set(ds.data_vars) == {"dx", "dy", "transmission", "correlation"}
        for name, var in ds.data_vars.items():
            assert var.dims == ("y", "x")
            assert var.shape == (N, N)
            assert var.attrs["units"] and var.attrs["long_name"]
        assert ds["dx"].attrs["units"] == "px"
        assert ds["x"].attrs["units"] == "px"
        np.testing.assert_array_equal(ds["x"].values, np.arange(N))
        assert ds.attrs["method"] == "xst"
        assert "search" in ds.attrs["options"]
        assert ds.attrs["elapsed_s"] > 0
        assert not any(k.startswith("geometry_") for k in ds.attrs)
        interior = ds.isel(y=slice(10, -10), x=slice(10, -10))
        assert float(interior["dx"].median()) == pytest.approx(-1.25, abs=0.02)
        assert float(interior["dy"].median()) == pytest.approx(0.5, abs=0.02)
        assert float(interior["transmission"].median()) == pytest.approx(0.9, abs=0.01)

    def test_geometry_variables(self, pair):
        geometry = Geometry()
        ds = reconstruct(*pair, geometry=geometry, **XST)
        for name in ("dphi_dx", "dphi_dy", "phase"):
            assert ds[name].dims == ("y", "x")
        assert ds["dphi_dx"].attrs["units"] == "rad/px"
        assert ds["phase"].attrs["units"] == "rad"
        np.testing.assert_allclose(ds["dphi_dx"].values, ds["dx"].values / geometry.shift_per_gradient)
        np.testing.assert_allclose(ds["phase"].values, integrate(ds["dphi_dx"], ds["dphi_dy"], "fc"))
        assert abs(float(ds["phase"].mean())) < 1e-9
        assert ds["x"].attrs["units"] == "um"
        np.testing.assert_allclose(ds["x"].values, np.arange(N) * geometry.pixel_size_um)
        assert Geometry.from_attrs(ds.attrs) == geometry
        assert ds.attrs["integration"] == "fc"

    def test_least_squares_integration(self, pair):
        ds = reconstruct(*pair, geometry=Geometry(), integration="ls", **XST)
        np.testing.assert_allclose(ds["phase"].values, integrate(ds["dphi_dx"], ds["dphi_dy"], "ls"))

    def test_netcdf_safe(self, pair, tmp_path):
        ds = reconstruct(*pair, geometry=Geometry(), **XST)
        path = tmp_path / "out.nc"
        ds.to_netcdf(path, engine="h5netcdf")
        with xr.open_dataset(path, engine="h5netcdf") as back:
            assert back.attrs["method"] == "xst"
            np.testing.assert_allclose(back["dx"].values, ds["dx"].values)

    def test_dataarray_coords_kept(self, pair):
        coords = {"y": ("y", 10.0 + 2.0 * np.arange(N), {"units": "um"}), "x": ("x", -5.0 + 2.0 * np.arange(N), {"units": "um"})}
        ref = xr.DataArray(pair[0], dims=("y", "x"), coords=coords)
        sam = xr.DataArray(pair[1], dims=("y", "x"), coords=coords)
        ds = reconstruct(ref, sam, geometry=Geometry(), **XST)
        np.testing.assert_array_equal(ds["x"].values, ref["x"].values)
        np.testing.assert_array_equal(ds["y"].values, ref["y"].values)
        assert ds["x"].attrs["units"] == "um"

    def test_simulated_phase(self):
        simulate = pytest.importorskip("spinnet_lite.simulate")
        sim = simulate.simulate_pair(size=96, pitch=4, seed=21)
        geometry = Geometry.from_attrs(sim.attrs)
        ds = reconstruct(sim["reference"], sim["sample"], method="xst", geometry=geometry, search=6)
        crop = dict(y=slice(10, -10), x=slice(10, -10))
        truth = sim["phase"].isel(**crop).values
        got = ds["phase"].isel(**crop).values
        assert np.corrcoef(truth.ravel(), got.ravel())[0, 1] > 0.9
        np.testing.assert_array_equal(ds["x"].values, sim["x"].values)


class TestBadInput:
    @pytest.mark.parametrize("make, match", [
        (lambda r, s: (r, s[:-1]), "differ in shape"),
        (lambda r, s: (r[None], s[None]), "2-D"),
        (lambda r, s: (r[:40, :40], s[:40, :40]), "at least 64"),
        (lambda r, s: (r, np.where(np.eye(N, dtype=bool), np.nan, s)), "NaN"),
        (lambda r, s: (np.where(np.eye(N, dtype=bool), np.inf, r), s), "infinite"),
        (lambda r, s: (np.full((N, N), 3.0), s), "constant"),
        (lambda r, s: (r.astype(complex), s), "real-valued"),
        (lambda r, s: (np.full((N, N), "a"), s), "numeric"),
    ])
    def test_images(self, pair, make, match):
        ref, sam = make(*pair)
        with pytest.raises(ValueError, match=match):
            reconstruct(ref, sam, method="xst")

    def test_unknown_method(self, pair):
        with pytest.raises(ValueError, match="unknown method 'raft'"):
            reconstruct(*pair, method="raft")

    def test_unknown_option(self, pair):
        with pytest.raises(ValueError, match="unknown option.*'windw'"):
            reconstruct(*pair, method="xst", windw=7)

    def test_bad_option_value(self, pair):
        with pytest.raises(ValueError, match="window"):
            reconstruct(*pair, method="xst", window=4)

    def test_unknown_integration(self, pair):
        with pytest.raises(ValueError, match="integration"):
            reconstruct(*pair, method="xst", integration="poisson")

    def test_bad_geometry(self, pair):
        with pytest.raises(ValueError, match="Geometry"):
            reconstruct(*pair, method="xst", geometry={"energy_kev": 14})


class TestSpinnetBranch:
    """The network branch, with a stand-in for predict() (the real one is tested elsewhere)."""

    @pytest.fixture
    def fake_predict(self, monkeypatch):
        module = pytest.importorskip("spinnet_lite.model.predict")
        calls = []

        def predict(model, reference, sample, batch_size=4, device=None):
            calls.append(dict(model=model, batch_size=batch_size, device=device, shape=reference.shape))
            h, w = reference.shape
            return {"dx": np.full((h, w), 0.5, np.float32), "dy": np.full((h, w), -0.25, np.float32),
                    "transmission": np.ones((h, w), np.float32)}

        monkeypatch.setattr(module, "predict", predict)
        return calls

    def test_with_model(self, pair, fake_predict):
        model = object()
        # lk_sigma=0: the stand-in's answer as it is (the Lucas-Kanade step would correct it)
        ds = reconstruct(*pair, method="spinnet", model=model, geometry=Geometry(), batch_size=2, lk_sigma=0)
        assert fake_predict == [dict(model=model, batch_size=2, device=None, shape=(N, N))]
        assert ds.attrs["method"] == "spinnet"
        assert set(ds.data_vars) == {"dx", "dy", "transmission", "dphi_dx", "dphi_dy", "phase"}
        assert ds["dx"].dtype == np.float64
        np.testing.assert_allclose(ds["dx"].values, 0.5)

    def test_default_model_is_pretrained(self, pair, fake_predict, monkeypatch):
        sentinel = object()
        fake = types.ModuleType("spinnet_lite.pretrained")
        fake.load_pretrained = lambda: sentinel
        monkeypatch.setitem(sys.modules, "spinnet_lite.pretrained", fake)
        reconstruct(*pair, method="spinnet")
        assert fake_predict[0]["model"] is sentinel

    def test_unknown_option(self, pair, fake_predict):
        with pytest.raises(ValueError, match="unknown option.*'search'"):
            reconstruct(*pair, method="spinnet", model=object(), search=5)
        assert fake_predict == []
