"""The bug phantom: where its ellipsoids overlap, the overlap is one material (the densest),
in the projections and in the voxel volume alike; nothing is counted twice."""
from __future__ import annotations

import numpy as np
import pytest

from spinnet_lite import Geometry
from spinnet_lite.phantoms import MATERIALS_14KEV, Ellipsoid, bug_parts, bug_volume, project_ellipsoids


def _centre(paths, material, shape=(65, 65)):
    return float(paths[material][shape[0] // 2, shape[1] // 2])


class TestOverlap:
    def test_two_overlapping_parts_of_one_material_count_once(self):
        # two spheres of radius 0.2 along the beam, centres 0.2 apart: the central ray crosses
        # z from -0.3 to 0.3 (0.6), not 0.4 + 0.4
        parts = [Ellipsoid((0, 0, -0.1), (0.2, 0.2, 0.2)), Ellipsoid((0, 0, 0.1), (0.2, 0.2, 0.2))]
        paths = project_ellipsoids(parts, (65, 65))
        assert _centre(paths, "tissue") == pytest.approx(0.6, abs=1e-9)

    def test_disjoint_parts_add(self):
        parts = [Ellipsoid((0, 0, -0.25), (0.1, 0.1, 0.1)), Ellipsoid((0, 0, 0.25), (0.1, 0.1, 0.1))]
        assert _centre(project_ellipsoids(parts, (65, 65)), "tissue") == pytest.approx(0.4, abs=1e-9)

    @pytest.mark.parametrize("order", [1, -1])
    def test_the_denser_material_fills_the_overlap_whatever_the_order(self, order):
        parts = [Ellipsoid((0, 0, 0), (0.3, 0.3, 0.3), "tissue"), Ellipsoid((0, 0, 0), (0.1, 0.1, 0.1), "cuticle")]
        paths = project_ellipsoids(parts[::order], (65, 65))
        assert _centre(paths, "cuticle") == pytest.approx(0.2, abs=1e-9)
        assert _centre(paths, "tissue") == pytest.approx(0.6 - 0.2, abs=1e-9)
        assert MATERIALS_14KEV["cuticle"][0] > MATERIALS_14KEV["tissue"][0]

    def test_volume_has_no_summed_voxels(self):
        geom = Geometry()
        vol = bug_volume(48, geom)
        allowed = {0.0, MATERIALS_14KEV["tissue"][0], MATERIALS_14KEV["cuticle"][0]}
        assert set(np.unique(vol["delta"]).tolist()) <= allowed
        assert set(np.unique(vol["beta"]).tolist()) <= {0.0, MATERIALS_14KEV["tissue"][1], MATERIALS_14KEV["cuticle"][1]}

    def test_projection_agrees_with_the_voxel_volume(self):
        # the bug's parts overlap (legs in the thorax, wing cases on the abdomen): the exact
        # projection and the sum of the voxelised volume along the beam must agree
        n = 96
        geom = Geometry()
        vol = bug_volume(n, geom)
        paths = project_ellipsoids(bug_parts(), (n, n), 0.0)
        exact = sum(MATERIALS_14KEV[m][0] * length for m, length in paths.items())  # delta * fov units
        voxel = vol["delta"].sum(axis=1) / n  # [y, z, x] summed over z, in fov units
        inside = exact > 0.2 * exact.max()
        scale = exact[inside].mean()
        assert abs(np.mean(voxel[inside] - exact[inside])) / scale < 0.01  # no bias: the same matter
        assert np.abs(voxel - exact)[inside].mean() / scale < 0.05  # per pixel: voxel edges only
        # the old rule (sum over parts) counts the overlaps twice: ~12 % more matter than the volume
        summed = sum(MATERIALS_14KEV[p.material][0] * project_ellipsoids([p], (n, n), 0.0)[p.material]
                     for p in bug_parts())
        assert np.mean(summed[inside] - voxel[inside]) / scale > 0.05
