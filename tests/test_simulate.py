"""Physics and simulator tests (issue 2): each asserts a property that a bug would break."""
import numpy as np
import pytest
from scipy import ndimage

from spinnet_lite import Geometry, simulate_pair
from spinnet_lite.propagate import fresnel_propagate, propagate_inplace, transfer_function
from spinnet_lite.simulate import (apply_sample, coded_mask, displacement_from_phase, reference_image, simulate_arrays,
                                   wave_pair)


class TestGeometry:
    def test_energy_wavelength(self):
        g = Geometry()
        assert g.wavelength_m == pytest.approx(0.08856e-9, rel=1e-3)  # 14 keV
        assert Geometry.from_wavelength(0.06e-9).energy_kev == pytest.approx(20.664, rel=1e-3)
        assert Geometry(energy_kev=g.energy_kev * 2).wavelength_m == pytest.approx(g.wavelength_m / 2)

    def test_shift_per_gradient_seed_numbers(self):
        # lambda z / (2 pi p^2) for 14 keV, 500 mm, 0.65 um
        g = Geometry()
        expected = g.wavelength_m * 0.5 / (2 * np.pi * (0.65e-6) ** 2)
        assert g.shift_per_gradient == pytest.approx(expected)
        assert g.shift_per_gradient == pytest.approx(16.68, rel=1e-3)

    def test_round_trip(self):
        g = Geometry(energy_kev=20, pixel_size_um=1.3, sample_detector_mm=250)
        d = np.linspace(-5, 5, 11)
        np.testing.assert_allclose(g.dphi_to_displacement(g.displacement_to_dphi(d)), d)

    def test_attrs_round_trip(self):
        g = Geometry(energy_kev=17.5, mask_pitch_px=3)
        assert Geometry.from_attrs(g.to_attrs()) == g

    def test_default_is_the_seeds_order(self):
        # seed Fig. 1: source -> mask -> sample -> detector, so the mask is further from the detector
        g = Geometry()
        assert g.mask_detector_mm >= g.sample_detector_mm and g.mask_upstream
        assert g.effective_distance_mm == g.sample_detector_mm == 500.0
        assert Geometry.training().mask_upstream and Geometry.seed_simulation().mask_upstream

    def test_sample_upstream_uses_the_mask_distance(self):
        # sample before the mask: the tilt it gives the wave moves the mask's pattern over the
        # mask-to-detector distance, not the (longer) sample-to-detector one
        up = Geometry(sample_detector_mm=900.0, mask_detector_mm=300.0)
        assert not up.mask_upstream and up.effective_distance_mm == 300.0
        ref = Geometry(sample_detector_mm=300.0, mask_detector_mm=900.0)
        assert up.shift_per_gradient == pytest.approx(ref.shift_per_gradient)
        assert Geometry(sample_detector_mm=900.0, mask_detector_mm=1000.0).shift_per_gradient == pytest.approx(
            3 * ref.shift_per_gradient)

    @pytest.mark.parametrize("kwargs", [dict(energy_kev=0), dict(pixel_size_um=-1), dict(sample_detector_mm=float("nan")),
                                        dict(mask_pitch_px=0), dict(mask_pitch_px=0.5), dict(mask_detector_mm=-1),
                                        dict(mask_detector_mm=0)])
    def test_bad_values(self, kwargs):
        with pytest.raises(ValueError, match="Geometry"):
            Geometry(**kwargs)


class TestPropagation:
    def setup_method(self):
        rng = np.random.default_rng(0)
        self.field = np.exp(1j * np.pi * (rng.random((128, 128)) > 0.5)) * (0.7 + 0.3 * rng.random((128, 128)))

    def test_distance_zero_is_identity(self):
        np.testing.assert_array_equal(fresnel_propagate(self.field, 0.0, 1e-10, 1e-6), self.field)

    def test_power_conserved(self):
        out = fresnel_propagate(self.field, 0.3, 0.06e-9, 0.65e-6, pad=0)
        assert np.sum(np.abs(out) ** 2) == pytest.approx(np.sum(np.abs(self.field) ** 2), rel=1e-10)

    def test_back_propagation_inverts(self):
        out = fresnel_propagate(fresnel_propagate(self.field, 0.3, 0.06e-9, 0.65e-6, pad=0), -0.3, 0.06e-9, 0.65e-6, pad=0)
        np.testing.assert_allclose(out, self.field, atol=1e-10)

    def test_transfer_function_unit_modulus(self):
        h = transfer_function((64, 64), 0.5, 1e-10, 1e-6)
        np.testing.assert_allclose(np.abs(h), 1.0)
        assert h[0, 0] == 1.0

    def test_plane_wave_unchanged(self):
        out = fresnel_propagate(np.ones((64, 80), complex), 1.0, 1e-10, 1e-6)
        np.testing.assert_allclose(np.abs(out) ** 2, 1.0, atol=1e-12)

    def test_padding_keeps_edges_from_wrapping(self):
        # a bright stripe at the right edge must not appear at the left edge after propagation
        field = np.ones((64, 256), complex)
        field[:, -8:] = 0.2
        g = Geometry.training()
        out = np.abs(fresnel_propagate(field, 0.3, g.wavelength_m, g.pixel_size_m)) ** 2
        assert np.abs(out[:, :16] - 1).max() < 0.05


class TestMask:
    def test_half_gold_and_pitch(self):
        rng = np.random.default_rng(1)
        for pitch in (1, 2, 4, 5):
            m = coded_mask((20 * pitch, 20 * pitch), pitch, rng)
            assert m.mean() == 0.5
            cells = m.reshape(20, pitch, 20, pitch)
            # every pitch x pitch cell is uniform
            assert np.all(cells.min(axis=(1, 3)) == cells.max(axis=(1, 3)))
            assert set(np.unique(m)) == {0.0, 1.0}

    def test_bad_pitch(self):
        with pytest.raises(ValueError, match="pitch"):
            coded_mask((64, 64), 0, np.random.default_rng())

    def test_reference_contrast_grows_with_distance(self):
        g = Geometry.training()
        contrast = []
        for d in (0.0, 10.0, 50.0):
            ref = reference_image((128, 128), g, np.random.default_rng(3), distance_mm=d, blur_px=0)
            contrast.append(ref.std() / ref.mean())
        # at the mask only the amplitude (0.7 on gold, 1.0 off) makes contrast: intensities 0.49 and 1
        assert contrast[0] == pytest.approx(0.255 / 0.745, rel=0.02)
        # the gold's pi phase step becomes intensity contrast by propagation
        assert contrast[0] < contrast[1] < contrast[2]
        assert 0.6 < reference_image((128, 128), g, np.random.default_rng(3)).mean() < 0.9


class TestForwardModel:
    @staticmethod
    def _torch_warp(image, dx, dy):
        """An independent warp: torch's bicubic grid_sample (Keys kernel), pixel centres at -1..1."""
        import torch

        h, w = image.shape
        yy, xx = np.mgrid[:h, :w].astype(np.float64)
        grid = np.stack([2 * (xx - dx) / (w - 1) - 1, 2 * (yy - dy) / (h - 1) - 1], axis=-1)[None]
        out = torch.nn.functional.grid_sample(torch.from_numpy(image)[None, None], torch.from_numpy(grid), mode="bicubic",
                                              padding_mode="border", align_corners=True)
        return out[0, 0].numpy()

    def test_sample_is_t_times_warped_reference(self):
        """Eq. 1 checked with torch's grid_sample, independent of the simulator's scipy spline warp."""
        # one sub-pixel per pixel and no blur: the warp acts on the pixel grid, as torch's does
        # (with oversampling the simulator warps before the pixels integrate, which no warp of
        # the binned image reproduces exactly)
        a = simulate_arrays(128, seed=5, oversample=1, blur_px=0)
        ref = a["reference"].astype(np.float64)
        expected = a["transmission"] * self._torch_warp(ref, a["dx"], a["dy"])
        inner = (slice(8, -8), slice(8, -8))
        # two cubic interpolants (torch's Keys kernel, scipy's B-spline) differ by ~3 % rms of the
        # contrast of this unblurred speckle
        err = np.sqrt(np.mean((a["sample"] - expected)[inner] ** 2)) / ref.std()
        assert err < 0.04, err
        # the wrong sign is far off: the test can tell the convention apart
        wrong = a["transmission"] * self._torch_warp(ref, -a["dx"], -a["dy"])
        assert np.sqrt(np.mean((a["sample"] - wrong)[inner] ** 2)) / ref.std() > 10 * err

    def test_subpixel_shift_is_unbiased(self):
        """A uniform 0.25 px shift of a smooth pattern equals the analytic shift (no interpolation bias)."""
        x = np.arange(128)
        ref = np.tile(2 + np.sin(2 * np.pi * x / 16.0), (128, 1))
        sam = apply_sample(ref, np.full(ref.shape, 0.25), np.zeros(ref.shape), np.ones(ref.shape))
        exact = np.tile(2 + np.sin(2 * np.pi * (x - 0.25) / 16.0), (128, 1))
        assert np.abs(sam - exact)[:, 8:-8].max() < 1e-3

    def test_uniform_shift_moves_pattern_right(self):
        ref = reference_image((96, 96), Geometry.training(), np.random.default_rng(0))
        dx = np.full(ref.shape, 2.0)
        sam = apply_sample(ref, dx, np.zeros_like(dx), np.ones_like(dx))
        np.testing.assert_allclose(sam[:, 10:-10], ref[:, 8:-12], atol=1e-5)

    def test_displacement_is_scaled_phase_gradient(self):
        g = Geometry()
        y, x = np.mgrid[:64, :64]
        phase = 0.01 * x + 0.02 * y
        dx, dy = displacement_from_phase(phase, g)
        np.testing.assert_allclose(dx, 0.01 * g.shift_per_gradient)
        np.testing.assert_allclose(dy, 0.02 * g.shift_per_gradient)


class TestSimulatePair:
    def test_dataset_layout(self):
        ds = simulate_pair(size=96, seed=1)
        assert set(ds.data_vars) >= {"reference", "sample", "dx", "dy", "transmission", "phase", "support"}
        assert ds.reference.dims == ("y", "x") and ds.reference.shape == (96, 96)
        assert ds.x.attrs["units"] == "um" and ds.x[1] == pytest.approx(0.65)
        assert ds.dx.attrs["units"] == "px" and ds.phase.attrs["units"] == "rad"
        assert Geometry.from_attrs(ds.attrs) == Geometry.training(mask_pitch_px=4)

    def test_same_seed_same_pair(self):
        a, b, c = simulate_pair(96, seed=7), simulate_pair(96, seed=7), simulate_pair(96, seed=8)
        assert a.identical(b)
        assert not np.array_equal(a.sample.values, c.sample.values)

    def test_training_phantom_ranges(self):
        for seed in range(6):
            a = simulate_arrays(128, seed=seed)
            assert -20 * np.pi - 1e-6 <= a["phase"].min() and a["phase"].max() <= 1e-6
            assert 0.8 - 1e-6 <= a["transmission"].min() and a["transmission"].max() <= 1 + 1e-6
            assert np.hypot(a["dx"], a["dy"]).max() < 8.0  # the trained displacement range (Geometry.training)
            assert a["support"].sum() > 0 and a["support"].mean() < 1

    def test_poisson_noise(self):
        clean = simulate_pair(128, seed=2)
        noisy = simulate_pair(128, seed=2, photons=1000)
        resid = (noisy.reference - clean.reference).values
        # Poisson: variance = I / photons
        assert np.var(resid) == pytest.approx(float(clean.reference.mean()) / 1000, rel=0.15)
        np.testing.assert_array_equal(noisy.dx, clean.dx)

    def test_lens_is_parabolic(self):
        ds = simulate_pair(128, phantom="lens", geometry=Geometry())
        x = np.broadcast_to(np.arange(128) - 63.5, (128, 128))
        y = x.T
        # a parabolic phase has a linear gradient: dx proportional to x inside the aperture (away from the rim)
        inside = np.hypot(x, y) < 0.8 * 0.42 * 128
        slope = np.polyfit(x[inside], ds.dx.values[inside], 1)[0]
        from spinnet_lite.phantoms import BE_DELTA_14KEV

        # thickness r^2/R -> displacement -2 delta z r / R (in pixels per pixel): X-ray lenses are concave and focus
        expected = -2 * BE_DELTA_14KEV * 0.5 / 200e-6
        assert slope == pytest.approx(expected, rel=0.05)
        assert ds.transmission.values.max() <= 1.0

    def test_bug_has_body(self):
        ds = simulate_pair(128, phantom="bug", seed=0)
        assert 0.05 < ds.support.mean() < 0.8
        assert float(ds.phase.min()) < -1.0
        rotated = simulate_pair(128, phantom="bug", seed=0, angle_rad=np.pi / 2)
        assert not np.allclose(rotated.phase, ds.phase)

    @pytest.mark.parametrize("kwargs,match", [
        (dict(size=32), "at least 64"), (dict(size=(64, 64, 3)), "size"), (dict(size="big"), "size"),
        (dict(pitch=0), "pitch"), (dict(pitch=0.5), "pitch"), (dict(pitch=float("nan")), "pitch"), (dict(phantom="cat"), "phantom"),
        (dict(photons=-5), "photons"), (dict(photons=float("nan")), "photons"), (dict(geometry="14keV"), "geometry"),
    ])
    def test_bad_input(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            simulate_pair(**kwargs)


class TestSpeckleGenerators:
    """Issue 8/10: masks drawn finer than the pixel, diffusers, visibility, separate random streams."""

    def test_fractional_pitch_mask_on_a_fine_grid(self):
        rng = np.random.default_rng(0)
        m = coded_mask((308, 308), 3.08 * 4, rng)  # a 2 um cell at 0.65 um pixels, 4 sub-pixels per pixel
        assert set(np.unique(m)) == {0.0, 1.0}
        assert abs(m.mean() - 0.5) < 0.05
        # cell edges fall inside detector pixels: binned to pixels, some pixels are partly gold
        binned = m.reshape(77, 4, 77, 4).mean(axis=(1, 3))
        assert np.mean((binned > 0) & (binned < 1)) > 0.2

    def test_oversampling_changes_sampling_not_physics(self):
        # the same mask statistics with 2 or 4 sub-pixels per pixel: the grain (and the mean)
        # must not depend on the simulation grid
        from spinnet_lite.metrics import grain_size_px
        g = Geometry.training()
        r2 = reference_image((192, 192), g, np.random.default_rng(1), pitch=4.5, oversample=2)
        r4 = reference_image((192, 192), g, np.random.default_rng(1), pitch=4.5, oversample=4)
        assert r2.mean() == pytest.approx(r4.mean(), rel=0.02)
        assert grain_size_px(r2) == pytest.approx(grain_size_px(r4), rel=0.15)

    def test_diffuser_grain_follows_its_parameter(self):
        from spinnet_lite.metrics import grain_size_px
        g = Geometry.training()
        fine = reference_image((192, 192), g, np.random.default_rng(2), speckle="diffuser", grain_px=1.5)
        coarse = reference_image((192, 192), g, np.random.default_rng(2), speckle="diffuser", grain_px=6.0)
        assert grain_size_px(coarse) > 1.5 * grain_size_px(fine)
        with pytest.raises(ValueError, match="speckle"):
            reference_image((64, 64), g, np.random.default_rng(0), speckle="sandpaper!")

    def test_visibility_is_set(self):
        from spinnet_lite.simulate import rms_visibility
        ds = simulate_pair(128, seed=4, visibility=0.05)
        assert rms_visibility(ds["reference"].values) == pytest.approx(0.05, rel=0.02)
        with pytest.raises(ValueError, match="visibility"):
            simulate_pair(128, seed=4, visibility=5.0)

    def test_pitch_change_keeps_the_phantom(self):
        # separate random streams: the mask draws a pitch-dependent number of cells, the sample does not care
        a, b = simulate_pair(128, seed=11, pitch=2), simulate_pair(128, seed=11, pitch=7.7)
        np.testing.assert_array_equal(a["dx"].values, b["dx"].values)
        np.testing.assert_array_equal(a["transmission"].values, b["transmission"].values)
        assert not np.allclose(a["reference"].values, b["reference"].values)
        c = simulate_pair(128, seed=11, pitch=4, speckle="diffuser")
        np.testing.assert_array_equal(a["dx"].values, c["dx"].values)

    @pytest.mark.parametrize("phantom", ["uniform", "blobs", "quadratic"])
    def test_max_shift_and_strain(self, phantom):
        ds = simulate_pair(128, seed=5, phantom=phantom, max_shift_px=9.0, max_strain=0.5)
        d = np.hypot(ds["dx"].values, ds["dy"].values)
        assert d.max() <= 9.0 + 1e-4
        strain = max(np.abs(np.gradient(ds["dx"].values)).max(), np.abs(np.gradient(ds["dy"].values)).max())
        assert strain <= 0.5 + 1e-4
        if phantom == "uniform":
            assert d.min() == pytest.approx(9.0, abs=1e-3)

    def test_quadratic_aperture_is_a_lens_with_a_rim(self):
        """``aperture``: inside it the unapertured quadratic phase, outside it the phase held at the
        rim (no displacement), the share inside as asked; ``rim_sigma_px`` softens the rim only."""
        from spinnet_lite.phantoms import quadratic_phantom

        shape = (96, 112)
        plain, _, _ = quadratic_phantom(shape, np.random.default_rng(3))
        sharp, t, support = quadratic_phantom(shape, np.random.default_rng(3), aperture=0.4, rim_sigma_px=0)
        assert support.mean() == pytest.approx(0.4, abs=0.01) and np.all(t == 1)
        inside = support > 0
        np.testing.assert_array_equal(sharp[inside], plain[inside])
        level = np.quantile(np.abs(plain), 0.4)  # the edge value: the aperture is a level set of |q|
        assert np.abs(plain[inside]).max() <= level < np.abs(plain[~inside]).min()
        assert np.all(np.abs(sharp) <= level + 1e-12) and np.allclose(np.abs(sharp[~inside]), level)
        soft, _, _ = quadratic_phantom(shape, np.random.default_rng(3), aperture=0.4, rim_sigma_px=2.0)
        far = ndimage.distance_transform_edt(inside) > 9  # well inside (and off the frame's edge, padded
        far[:9], far[-9:], far[:, :9], far[:, -9:] = False, False, False, False  # there): the blur adds a constant
        assert far.sum() > 100
        gy, gx = np.gradient(soft - plain)
        assert np.abs(gx[far]).max() < 1e-4 * np.abs(np.gradient(plain)[1]).max()
        ds = simulate_pair(128, seed=4, phantom="quadratic", aperture=0.5, max_shift_px=3.0)
        moved = np.hypot(ds["dx"].values, ds["dy"].values) > 1e-3
        assert 0.4 < moved.mean() < 0.65 and float(ds["support"].mean()) == pytest.approx(0.5, abs=0.01)
        for bad in (0, 1.5, -0.2):
            with pytest.raises(ValueError, match="aperture"):
                simulate_pair(96, seed=4, phantom="quadratic", aperture=bad)

    def test_uniform_shift_moves_the_speckle(self):
        # Eq. 1 with a uniform shift and no margin artefacts: the sample is the reference moved by (dy, dx)
        ds = simulate_pair(128, seed=6, phantom="uniform", max_shift_px=5.0)
        dx, dy = float(ds["dx"].mean()), float(ds["dy"].mean())
        ref, sam = ds["reference"].values, ds["sample"].values
        moved = ndimage.shift(ref, (dy, dx), order=3, mode="nearest")
        inner = (slice(12, -12), slice(12, -12))
        # not exactly 1: the simulator moves the speckle before the pixels integrate it
        assert np.corrcoef(moved[inner].ravel(), sam[inner].ravel())[0, 1] > 0.98

    def test_flat_field_and_texture_enter_the_transmission(self):
        plain = simulate_pair(128, seed=7, phantom="blobs", max_shift_px=2.0)
        drift = simulate_pair(128, seed=7, phantom="blobs", max_shift_px=2.0, flat_field=0.05, texture=0.5)
        ratio = drift["transmission"].values / plain["transmission"].values
        assert ratio.min() < 0.9 and ratio.max() <= 1.05 + 1e-6
        with pytest.raises(ValueError, match="flat_field"):
            simulate_pair(128, seed=7, flat_field=-0.1)


class TestWaveForwardModel:
    """forward="wave": one complex64 field propagated in place, the mask, the sample and the detector in bands."""

    def test_inplace_propagation_conserves_power_and_matches(self):
        rng = np.random.default_rng(0)
        field = np.exp(1j * np.pi * (rng.random((96, 120)) > 0.5)) * (0.7 + 0.3 * rng.random((96, 120)))
        expected = fresnel_propagate(field, 0.3, 0.06e-9, 0.65e-6, pad=0)
        u = field.astype(np.complex64)
        out = propagate_inplace(u, 0.3, 0.06e-9, 0.65e-6)
        assert out.dtype == np.complex64 and np.shares_memory(out, u), "the complex64 field is propagated in place"
        # unitary: the power is conserved (to single precision)
        assert np.sum(np.abs(out.astype(np.complex128)) ** 2) == pytest.approx(np.sum(np.abs(field) ** 2), rel=1e-5)
        np.testing.assert_allclose(out, expected, atol=1e-5)

    @pytest.mark.parametrize("geometry", [Geometry(), Geometry(sample_detector_mm=900.0, mask_detector_mm=300.0)],
                             ids=["mask upstream", "sample upstream"])
    def test_linear_phase_shifts_the_speckle_as_eq1_says(self, geometry):
        # a uniform phase gradient tilts the wave: the speckle moves by lambda z / (2 pi p^2) grad(phi) px
        # (z the effective distance), Eq. 1 exactly for a linear phase; T scales the intensity
        n, shift = 256, (1, 2)  # (dy, dx) px
        y, x = np.mgrid[0:n, 0:n].astype(float)
        phase = (shift[0] * y + shift[1] * x) / geometry.shift_per_gradient
        t = np.full((n, n), 0.81)
        ref, sam = wave_pair((n, n), geometry, np.random.default_rng(0), phase, t, pitch=3)
        c = 96  # away from the frame's edge, where the tilt stops (the margins are not tilted)
        inner = (slice(c, n - c), slice(c, n - c))
        moved = t[inner] * ref[c - shift[0]:n - c - shift[0], c - shift[1]:n - c - shift[1]]
        err = np.sqrt(np.mean((sam[inner] - moved) ** 2)) / moved.mean()
        unmoved = np.sqrt(np.mean((sam[inner] - t[inner] * ref[inner]) ** 2)) / moved.mean()
        assert err < 0.05 and err < unmoved / 10, (err, unmoved)

    @pytest.mark.parametrize("oversample, geometry", [(3, Geometry()), (2, Geometry(sample_detector_mm=900.0,
                                                                                        mask_detector_mm=300.0))])
    def test_bands_equal_the_whole_field(self, monkeypatch, oversample, geometry):
        # the memory-lean path (bands of 40 fine rows, not a multiple of the oversampling) gives what the
        # plain computation on whole arrays (complex128) gives
        import spinnet_lite.simulate as sim

        n = 96
        rng = np.random.default_rng(4)
        phase, t, _ = sim.make_phantom("blobs", (n, n), geometry, rng)
        phase, t = phase * 3, t * 0.9
        kw = dict(pitch=2.5, oversample=oversample)
        monkeypatch.setattr(sim, "WAVE_BAND_ROWS", 40)
        ref, sam = sim.wave_pair((n, n), geometry, np.random.default_rng(1), phase, t, **kw)
        field, os_, margin = sim.generator_field((n, n), geometry, np.random.default_rng(1), **kw)
        pad = ((margin, margin), (margin, margin))
        zoom = dict(zoom=os_, order=1, grid_mode=True, mode="nearest")
        sample_t = np.sqrt(ndimage.zoom(np.pad(t, pad, mode="edge"), **zoom)) \
            * np.exp(1j * ndimage.zoom(np.pad(phase, pad, mode="edge"), **zoom))
        lam, p = geometry.wavelength_m, geometry.pixel_size_m / os_
        d, z = geometry.mask_detector_mm * 1e-3, geometry.sample_detector_mm * 1e-3
        if d >= z:
            u = fresnel_propagate(fresnel_propagate(field, d - z, lam, p, pad=0) * sample_t, z, lam, p, pad=0)
        else:
            u = fresnel_propagate(fresnel_propagate(sample_t, z - d, lam, p, pad=0) * field, d, lam, p, pad=0)
        expected_ref = sim.detect(fresnel_propagate(field, d, lam, p, pad=0), os_, margin, (n, n))
        expected_sam = sim.detect(u, os_, margin, (n, n))
        assert np.abs(ref - expected_ref).max() < 1e-5 * expected_ref.mean()
        assert np.abs(sam - expected_sam).max() < 1e-5 * expected_sam.mean()


def test_the_detector_blurs_before_its_pixels_integrate():
    """The detector's Gaussian acts on the fine grid, before binning: then a tracker started at
    the truth of a uniform 0.1 px shift stays nearer it than when the blur follows the binning
    (which keeps the speckle detail that binning folds into the pixel grid)."""
    from spinnet_lite import simulate as sim
    from spinnet_lite.lucas_kanade import lk_refine

    geometry = Geometry.training()
    shape, blur = (96, 96), 1.0
    spread = {"before": [], "after": []}
    for seed in range(2):
        rng = np.random.default_rng(seed)
        big = (shape[0] + 2 * sim.WARP_MARGIN, shape[1] + 2 * sim.WARP_MARGIN)
        fine, os_, margin = sim.reference_image(big, geometry, rng, pitch=4, fine=True)
        edge = (margin + sim.WARP_MARGIN) * os_
        dx, dy = np.full(shape, 0.08), np.full(shape, -0.06)
        before = sim.detect_fine_pair(fine, dx, dy, os_, edge, blur)
        unblurred = sim.detect_fine_pair(fine, dx, dy, os_, edge, 0.0)
        after = tuple(ndimage.gaussian_filter(im, blur, mode="nearest") for im in unblurred)
        # a zero shift gives the reference itself
        still = sim.detect_fine_pair(fine, 0 * dx, 0 * dy, os_, edge, blur)
        np.testing.assert_allclose(still[1], still[0], rtol=1e-9)
        for name, (ref, smp) in (("before", before), ("after", after)):
            ex, ey = lk_refine(ref, smp, dx, dy, iterations=8)
            inner = (slice(16, -16),) * 2
            spread[name].append(np.sqrt(np.mean((ex - dx)[inner] ** 2 + (ey - dy)[inner] ** 2)))
    before, after = np.mean(spread["before"]), np.mean(spread["after"])
    assert before < 0.6 * after, (before, after)
    assert before < 0.1 * np.hypot(0.08, 0.06)
