"""spinnet_lite.tomo: projections of the bug, dask-parallel stack reconstruction, FBP."""
import math

import numpy as np
import pytest
import torch
import xarray as xr

from spinnet_lite import Geometry, reconstruct, tomo
from spinnet_lite.model.spinnet import SPINNet
from spinnet_lite.phantoms import Ellipsoid, project_ellipsoids

N, ANGLES = 64, 8


@pytest.fixture(scope="module")
def projections():
    return tomo.simulate_projections(ANGLES, N, photons=20000, seed=3)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return SPINNet("tiny").eval()


def disk_sinogram(n, angles_deg, radius, centre):
    """Analytic parallel-beam projections of a unit-density disk at ``centre`` = (z, x) px from the slice centre.

    At angle a the detector coordinate is ``x cos a + z sin a`` (as project_ellipsoids); a disk
    of radius r projects to the chord ``2 sqrt(r^2 - (t - t0)^2)``.
    """
    t = np.arange(n) - (n - 1) / 2
    a = np.deg2rad(angles_deg)[:, None]
    t0 = centre[1] * np.cos(a) + centre[0] * np.sin(a)
    return 2 * np.sqrt(np.clip(radius**2 - (t[None, :] - t0) ** 2, 0, None))


def disk_image(n, radius, centre):
    c = np.arange(n) - (n - 1) / 2
    return ((c[:, None] - centre[0]) ** 2 + (c[None, :] - centre[1]) ** 2 <= radius**2).astype(float)


class TestSimulateProjections:
    def test_structure(self, projections):
        ds = projections
        assert ds.reference.dims == ("y", "x") and ds.reference.shape == (N, N)
        for name in ("sample", "phase", "transmission", "dx", "dy", "support"):
            assert ds[name].dims == ("angle", "y", "x") and ds[name].shape == (ANGLES, N, N), name
            assert np.isfinite(ds[name].values).all(), name
        np.testing.assert_allclose(ds.angle.values, np.arange(ANGLES) * 180 / ANGLES)
        assert ds.angle.attrs["units"] == "deg" and ds.x.attrs["units"] == "um"
        assert Geometry.from_attrs(ds.attrs) == Geometry()

    def test_physics(self, projections):
        ds = projections
        assert float(ds.phase.max()) <= 0 < -float(ds.phase.min()), "the bug delays the wave: negative phase"
        assert 0.9 < float(ds.transmission.min()) < 1 and float(ds.transmission.max()) <= 1
        assert 0.5 < float(np.hypot(ds.dx, ds.dy).max()) < 10
        # projections at 0 and 180 degrees are mirror images; the first one is the plain bug_phantom
        from spinnet_lite.phantoms import bug_phantom

        phase0 = bug_phantom((N, N), Geometry())[0]
        np.testing.assert_allclose(ds.phase[0].values, phase0, rtol=1e-5, atol=1e-6)

    def test_same_seed_same_stack(self):
        a = tomo.simulate_projections(2, 64, photons=1000, seed=1)
        b = tomo.simulate_projections(2, 64, photons=1000, seed=1)
        np.testing.assert_array_equal(a.sample.values, b.sample.values)

    @pytest.mark.parametrize("kwargs", [dict(n_angles=1, size=64), dict(n_angles=4, size=32),
                                        dict(n_angles=4, size=64, photons=-1), dict(n_angles=2.5, size=64)])
    def test_bad_arguments(self, kwargs):
        with pytest.raises(ValueError):
            tomo.simulate_projections(**kwargs)


class TestReconstructStack:
    def test_dask_equals_serial_xst(self, projections):
        stack = tomo.reconstruct_stack(projections, method="xst", chunks=3, search=5)
        assert set(stack.data_vars) == set(tomo.STACK_VARIABLES)
        assert stack.dx.dims == ("angle", "y", "x") and stack.sizes["angle"] == ANGLES
        np.testing.assert_array_equal(stack.angle.values, projections.angle.values)
        geometry = Geometry()
        for i in range(ANGLES):
            serial = reconstruct(projections.reference, projections.sample[i], method="xst", geometry=geometry,
                                 search=5)
            for name in tomo.STACK_VARIABLES:
                np.testing.assert_allclose(stack[name][i].values, serial[name].values, rtol=1e-6, atol=1e-9,
                                           err_msg=f"{name} at angle {i}")
        assert stack.phase.attrs["units"] == "rad" and stack.attrs["method"] == "xst"

    def test_dask_equals_serial_spinnet(self, projections, tiny_model):
        stack = tomo.reconstruct_stack(projections, method="spinnet", model=tiny_model, chunks=5)
        for i in (0, ANGLES - 1):
            serial = reconstruct(projections.reference, projections.sample[i], method="spinnet", model=tiny_model,
                                 geometry=Geometry())
            for name in ("dx", "dy", "transmission", "phase"):
                np.testing.assert_allclose(stack[name][i].values, serial[name].values, rtol=1e-5, atol=1e-6)

    def test_lazy_is_dask_chunked_along_angle(self, projections):
        lazy = tomo.reconstruct_stack(projections, method="xst", chunks=3, compute=False)
        assert lazy.dx.chunks == ((3, 3, 2), (N,), (N,))
        computed = lazy.isel(angle=[0]).compute()
        assert computed.dx.shape == (1, N, N)

    def test_distributed_client(self, projections):
        distributed = pytest.importorskip("distributed")
        with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                      dashboard_address=None) as cluster, distributed.Client(cluster):
            stack = tomo.reconstruct_stack(projections.isel(angle=slice(0, 4)), method="xst", chunks=2)
        serial = reconstruct(projections.reference, projections.sample[3], method="xst", geometry=Geometry())
        np.testing.assert_allclose(stack.dx[3].values, serial.dx.values, rtol=1e-6, atol=1e-9)

    def test_without_geometry_no_phase(self, projections):
        ds = projections.isel(angle=[0])
        ds.attrs = {}
        stack = tomo.reconstruct_stack(ds, method="xst")
        assert set(stack.data_vars) == {"dx", "dy", "transmission"}

    def test_errors(self, projections):
        with pytest.raises(ValueError, match="unknown method"):
            tomo.reconstruct_stack(projections, method="optical-flow")
        with pytest.raises(ValueError, match="chunks"):
            tomo.reconstruct_stack(projections, method="xst", chunks=0)
        with pytest.raises(ValueError, match="reference"):
            tomo.reconstruct_stack(projections.drop_vars("reference"), method="xst")
        with pytest.raises(ValueError, match="dims"):
            tomo.reconstruct_stack(projections.transpose("y", "angle", "x"), method="xst")


class TestFBP:
    @pytest.mark.parametrize("backend", ["skimage", "auto"])
    def test_disk_is_recovered(self, backend):
        n, angles = 64, tomo.projection_angles(90)
        centre, radius = (-8.0, 11.0), 9.0  # off-centre: a flipped or transposed slice would miss it
        sino = disk_sinogram(n, angles, radius, centre)
        rec = tomo.fbp(sino, angles, backend=backend)
        truth = disk_image(n, radius, centre)
        assert rec.shape == (n, n)
        inside = disk_image(n, radius - 2, centre) > 0
        outside = disk_image(n, radius + 3, centre) == 0
        assert np.median(rec[inside]) == pytest.approx(1.0, abs=0.05), "density inside the disk"
        assert np.abs(np.median(rec[outside])) < 0.02, "nothing outside"
        assert rec.sum() == pytest.approx(truth.sum(), rel=0.05), "mass is conserved"
        assert tomo.correlation(rec, truth) > 0.95

    def test_dataarray_angles_and_errors(self):
        angles = tomo.projection_angles(30)
        sino = xr.DataArray(disk_sinogram(64, angles, 10, (0, 0)), dims=("angle", "x"), coords={"angle": angles})
        assert tomo.fbp(sino).shape == (64, 64)
        with pytest.raises(ValueError, match="angles"):
            tomo.fbp(sino.values)
        with pytest.raises(ValueError, match="30 projections"):
            tomo.fbp(sino.values, angles[:-1])
        with pytest.raises(ValueError, match="unknown filter"):
            tomo.fbp(sino, filter="wiener")
        with pytest.raises(ValueError, match="2-D"):
            tomo.fbp(np.zeros((3, 4, 5)), angles[:3])
        if not tomo.astra_available():
            with pytest.raises(ValueError, match="ASTRA"):
                tomo.fbp(sino, backend="astra")

    def test_orientation_matches_project_ellipsoids(self):
        """Projections of an asymmetric object come back in the [z, x] orientation of bug_volume."""
        n, angles = 64, tomo.projection_angles(60)
        parts = [Ellipsoid((0.2, 0.0, -0.15), (0.05, 0.3, 0.08)), Ellipsoid((-0.1, 0.0, 0.2), (0.1, 0.3, 0.03))]
        sino = np.stack([sum(project_ellipsoids(parts, (n, n), math.radians(a)).values())[n // 2] for a in angles])
        rec = tomo.fbp(sino * n, angles)
        c = (np.arange(n) - (n - 1) / 2) / n
        zz, xx = np.meshgrid(c, c, indexing="ij")
        truth = np.zeros((n, n))
        for part in parts:
            d = np.stack([xx - part.center[0], -part.center[1] + 0 * xx, zz - part.center[2]], -1)
            truth += np.einsum("...i,ij,...j->...", d, part.matrix(), d) <= 1
        assert tomo.correlation(rec, truth) > 0.85
        assert tomo.correlation(rec[::-1], truth) < 0.3 and tomo.correlation(rec.T, truth) < 0.8


class TestVolume:
    def test_ground_truth_projections_give_the_phantom(self):
        ds = tomo.simulate_projections(36, 64)  # noiseless; the true phase, no speckle tracking
        vol = tomo.reconstruct_volume(ds, "phase")
        assert vol.dims == ("y", "z", "x") and vol.shape == (64, 64, 64)
        assert vol.attrs["units"] == "rad/px"
        truth = tomo.phantom_volume(64, variable="phase")
        assert tomo.slice_correlation(vol, truth) > 0.85
        assert tomo.correlation(vol, truth) > 0.8
        # the scale: -k delta p per voxel; the total (the projections' blur conserves it) to 2 %
        assert float(vol.sum()) == pytest.approx(truth.sum(), rel=0.02)
        vol_t = tomo.reconstruct_volume(ds, "transmission")
        assert tomo.slice_correlation(vol_t, tomo.phantom_volume(64, variable="transmission")) > 0.8

    def test_xst_stack_slice_correlates_with_phantom(self):
        ds = tomo.simulate_projections(24, 64, photons=20000, seed=0)
        stack = tomo.reconstruct_stack(ds, method="xst", chunks=8)
        vol = tomo.reconstruct_volume(stack, "phase")
        assert tomo.slice_correlation(vol, tomo.phantom_volume(64)) > 0.6

    def test_correlation_helpers(self):
        a = np.arange(16.0).reshape(4, 4)
        assert tomo.correlation(a, 2 * a + 1) == pytest.approx(1.0)
        assert tomo.correlation(a, -a) == pytest.approx(-1.0)
        assert math.isnan(tomo.correlation(np.ones((4, 4)), a))
        assert tomo.circle_mask(4).sum() == 12
        with pytest.raises(ValueError, match="shapes differ"):
            tomo.correlation(a, a[:2])

    def test_sinogram_offset(self):
        x = np.arange(20.0)
        baseline = np.array([[1.0], [2.0], [-1.0]]) + np.array([[0.0], [0.1], [-0.05]]) * x
        sino = baseline.copy()
        sino[:, 8:12] += 5  # the sample, away from the edges
        np.testing.assert_allclose(tomo.sinogram_offset(sino, 4), baseline, atol=1e-12)
