"""Tests of spinnet_lite.model: one class per part (kornia style). Tiny configs, CPU, < 30 s."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from spinnet_lite.model import (
    SPINNet, SPINNetConfig, channel_of_shift, cost_volume, get_config, inverse_warp, load_checkpoint,
    load_state, multilevel_loss, pair_error, predict, read_checkpoint, save_checkpoint, shift_of_channel, warp,
)
from spinnet_lite.model.warp import upsample2_midpoints
from spinnet_lite.model.blocks import green_block, yellow_block
from spinnet_lite.model.cost_volume import CostVolume, num_shifts
from spinnet_lite.model.extractor import FeaturePyramid


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny tensors: one thread is fastest, and two OpenMP threads on a busy 2-core machine
    # can wait on each other for tens of milliseconds per convolution.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def speckle(batch=1, height=64, width=64, seed=0) -> torch.Tensor:
    """Smooth random speckle, mean ~1, ``(B, 1, H, W)`` float32."""
    rng = np.random.default_rng(seed)
    noise = rng.random((batch, height, width))
    img = np.stack([ndi.gaussian_filter(n, 1.2, mode="wrap") for n in noise])
    img = 1 + (img - img.mean()) / img.std() * 0.3
    return torch.from_numpy(img.astype(np.float32))[:, None]


def shifted_pair(batch=4, size=64, seed=0):
    """Reference speckle, uniform shifts, T = 0.85: (reference, sample, displacement, transmission)."""
    reference = speckle(batch, size, size, seed)
    shifts = torch.tensor([[1.5, -1.0], [-2.0, 0.5], [0.7, 2.2], [-1.2, -1.8]])[:batch]
    displacement = shifts[:, :, None, None].expand(batch, 2, size, size).contiguous()
    transmission = torch.full((batch, 1, size, size), 0.85)
    sample = transmission * warp(reference, displacement)
    return reference, sample, displacement, transmission


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return SPINNet(get_config("tiny"))


class TestBlocks:
    def test_shapes(self):
        x = torch.rand(2, 3, 16, 24)
        assert green_block(3, 5)(x).shape == (2, 5, 16, 24)
        assert yellow_block(3, 5)(x).shape == (2, 5, 8, 12)

    def test_parts(self):
        conv, bn, act = green_block(1, 4)
        assert isinstance(conv, torch.nn.Conv2d) and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
        assert isinstance(bn, torch.nn.BatchNorm2d)
        assert isinstance(act, torch.nn.LeakyReLU) and act.negative_slope == 0.1
        assert yellow_block(1, 4)[0].stride == (2, 2)


class TestFeaturePyramid:
    def test_shapes(self):
        pyramid = FeaturePyramid((4, 8, 8, 12, 16))
        x = torch.rand(2, 1, 64, 96)
        features = pyramid(x)
        assert sorted(features) == [1, 2, 3, 4, 5, 6]
        assert features[1] is x
        for level, channels in zip(range(2, 7), (4, 8, 8, 12, 16)):
            scale = 2 ** (level - 1)
            assert features[level].shape == (2, channels, 64 // scale, 96 // scale)


class TestWarp:
    def test_zero_is_identity(self):
        img = torch.rand(2, 3, 10, 12)
        assert torch.allclose(warp(img, torch.zeros(2, 2, 10, 12)), img, atol=1e-6)

    def test_integer_shift(self):
        img = torch.rand(1, 1, 20, 24)
        dx, dy = 3.0, -2.0
        d = torch.tensor([dx, dy])[None, :, None, None].expand(1, 2, 20, 24)
        out = warp(img, d)[0, 0].numpy()
        expected = np.roll(img[0, 0].numpy(), (int(dy), int(dx)), axis=(0, 1))  # out(y, x) = img(y - dy, x - dx)
        np.testing.assert_allclose(out[:-2, 3:], expected[:-2, 3:], atol=1e-5)  # float32 grid rounding

    def test_upsample2_midpoints(self):
        img = speckle(2, 12, 16).double()
        up = upsample2_midpoints(img)
        assert up.shape == (2, 1, 24, 32)
        np.testing.assert_array_equal(up[..., ::2, ::2].numpy(), img.numpy())  # the samples are kept
        # Catmull-Rom reproduces quadratics: the midpoints of a quadratic ramp are exact
        y, x = torch.meshgrid(torch.arange(12.0, dtype=torch.float64), torch.arange(16.0, dtype=torch.float64),
                              indexing="ij")
        ramp = (0.3 * x**2 - 0.2 * x * y + y)[None, None]
        yy, xx = torch.meshgrid(torch.arange(24.0, dtype=torch.float64) / 2,
                                torch.arange(32.0, dtype=torch.float64) / 2, indexing="ij")
        np.testing.assert_allclose(upsample2_midpoints(ramp)[0, 0, 2:-4, 2:-4].numpy(),
                                   (0.3 * xx**2 - 0.2 * xx * yy + yy)[2:-4, 2:-4].numpy(), atol=1e-9)

    @pytest.mark.parametrize("shift", [0.25, 0.5, 0.75, 1.25])
    def test_oversampled_warp_keeps_the_shift(self, shift):
        """A speckle near the pixel pitch, moved by a sub-pixel shift: the bilinear read shifts
        it by a few hundredths of a pixel depending on the phase, the oversampled one does not
        (compared with scipy's cubic spline shift, the same image, the same shift)."""
        img = speckle(1, 64, 64, seed=3).double()
        d = torch.tensor([shift, 0.0], dtype=torch.float64)[None, :, None, None].expand(1, 2, 64, 64)
        truth = ndi.shift(img[0, 0].numpy(), (0.0, shift), order=3, mode="nearest")
        inner = (slice(8, -8), slice(8, -8))
        gx = np.gradient(truth, axis=1)[inner].ravel()

        def shift_error(mode):  # the shift of the warped image relative to the truth, px
            out = warp(img, d, mode=mode)[0, 0].numpy()[inner].ravel()
            return float(-(gx @ (out - truth[inner].ravel())) / (gx @ gx))

        assert abs(shift_error("oversampled")) < 0.004
        assert abs(shift_error("oversampled")) < abs(shift_error("bilinear")) or shift == 0.5
        with pytest.raises(ValueError, match="align_corners"):
            warp(img, d, align_corners=False, mode="oversampled")
        with pytest.raises(ValueError, match="mode"):
            warp(img, d, mode="nearest")

    def test_bicubic_integer_shift_is_exact(self):
        img = torch.rand(1, 1, 20, 24)
        d = torch.tensor([3.0, -2.0])[None, :, None, None].expand(1, 2, 20, 24)
        np.testing.assert_allclose(warp(img, d, mode="bicubic")[..., :-2, 3:], warp(img, d)[..., :-2, 3:], atol=1e-5)

    def test_image_warp_matches_feature_warp_at_whole_level_pixels(self):
        """Level-2 features of the image moved by 2 px are the level-2 features moved by 1 px:
        the image warp (full-resolution pixels) and the feature warp (level pixels) agree."""
        pyramid = FeaturePyramid((4, 8)).eval()
        img = speckle(1, 64, 64)
        d_full = torch.tensor([2.0, -4.0])[None, :, None, None].expand(1, 2, 64, 64)
        with torch.no_grad():
            from_image = pyramid(warp(img, d_full, mode="oversampled"), last=2)[2]
            from_features = warp(pyramid(img)[2], d_full[..., ::2, ::2] / 2)
        inner = (..., slice(4, -4), slice(4, -4))
        np.testing.assert_allclose(from_image[inner], from_features[inner], atol=1e-5)
        assert set(pyramid(img, last=2)) == {1, 2}

    @pytest.mark.parametrize("dy, dx", [(0.3, -1.7), (-2.25, 0.5), (1.0, 2.6)])
    def test_subpixel_matches_scipy(self, dy, dx):
        img = speckle(1, 32, 40)
        d = torch.tensor([dx, dy])[None, :, None, None].expand(1, 2, 32, 40)
        out = warp(img.double(), d.double())[0, 0].numpy()
        expected = ndi.shift(img[0, 0].double().numpy(), (dy, dx), order=1, mode="nearest")
        np.testing.assert_allclose(out, expected, atol=1e-10)

    def test_inverse_warp_undoes_warp(self):
        img = speckle(1, 48, 48)
        d = torch.tensor([1.3, -0.6])[None, :, None, None].expand(1, 2, 48, 48)
        warped = warp(img, d)
        back = inverse_warp(warped, d)
        inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))
        # two bilinear interpolations blur a little; the shift itself must be undone
        assert (back - img)[inner].abs().mean() < 0.3 * (warped - img)[inner].abs().mean()

    def test_batch_broadcast(self):
        img = torch.rand(3, 2, 8, 8)
        d = torch.full((1, 2, 8, 8), 0.5)
        assert warp(img, d).shape == (3, 2, 8, 8)

    def test_bad_shapes(self):
        with pytest.raises(ValueError, match="displacement"):
            warp(torch.rand(1, 1, 8, 8), torch.zeros(1, 2, 8, 9))
        with pytest.raises(ValueError, match="image"):
            warp(torch.rand(8, 8), torch.zeros(1, 2, 8, 8))

    def test_gradcheck(self):
        img = torch.rand(1, 1, 5, 6, dtype=torch.float64, requires_grad=True)
        d = (0.3 + 0.4 * torch.rand(1, 2, 5, 6, dtype=torch.float64)).requires_grad_()
        assert torch.autograd.gradcheck(warp, (img, d), eps=1e-6, atol=1e-4)


class TestCostVolume:
    def test_shape(self):
        f = torch.rand(2, 5, 9, 11)
        assert cost_volume(f, f, 3).shape == (2, 49, 9, 11)
        assert CostVolume(2)(f, f).shape == (2, num_shifts(2), 9, 11)

    def test_channel_helpers(self):
        n = 3
        for k in range(num_shifts(n)):
            sy, sx = shift_of_channel(k, n)
            assert channel_of_shift(sy, sx, n) == k
        assert shift_of_channel(0, n) == (-3, -3)
        assert shift_of_channel(24, n) == (0, 0)
        assert shift_of_channel(25, n) == (0, 1)
        with pytest.raises(ValueError):
            shift_of_channel(49, n)

    @pytest.mark.parametrize("ty, tx", [(0, 0), (2, -1), (-3, 3), (1, 2)])
    def test_argmax_at_known_shift(self, ty, tx):
        f_ref = torch.randn(1, 32, 20, 20)
        f_sample = torch.roll(f_ref, shifts=(ty, tx), dims=(2, 3))  # f_sample(x) = f_ref(x - t)
        cost = cost_volume(f_sample, f_ref, 3)
        argmax = cost[0, :, 4:-4, 4:-4].argmax(0)
        assert torch.all(argmax == channel_of_shift(ty, tx, 3))

    def test_values(self):
        a, b = torch.randn(1, 4, 6, 7), torch.randn(1, 4, 6, 7)
        cost = cost_volume(a, b, 1)
        # shift (sy, sx) = (1, -1): a(y, x) * b(y - 1, x + 1)
        expected = (a[:, :, 1:, :-1] * b[:, :, :-1, 1:]).mean(1)
        assert torch.allclose(cost[:, channel_of_shift(1, -1, 1), 1:, :-1], expected, atol=1e-6)
        assert torch.all(cost[:, channel_of_shift(1, -1, 1), 0, :] == 0)  # zero padding

    def test_leaky_relu(self):
        a = torch.randn(1, 4, 6, 7)
        assert torch.allclose(CostVolume(1)(a, -a), F.leaky_relu(cost_volume(a, -a, 1), 0.1))

    def test_bad_inputs(self):
        with pytest.raises(ValueError):
            cost_volume(torch.rand(1, 2, 5, 5), torch.rand(1, 3, 5, 5), 2)


class TestConfig:
    def test_parameter_counts(self):
        counts = {name: SPINNet(name).num_parameters() for name in ("full", "lite", "tiny")}
        assert 4_000_000 <= counts["full"] <= 7_000_000
        assert counts["tiny"] < counts["lite"] < counts["full"]
        assert counts == {"full": 5_711_346, "lite": 538_140, "tiny": 63_162}

    def test_round_trip(self):
        for name in ("full", "lite", "tiny"):
            config = get_config(name)
            assert SPINNetConfig.from_dict(config.to_dict()) == config
        assert get_config().name == "lite"
        assert get_config("lite", last_level=3).last_level == 3

    def test_unknown_name(self):
        with pytest.raises(ValueError, match="'full', 'lite', 'tiny'"):
            get_config("huge")

    def test_invalid_fields(self):
        with pytest.raises(ValueError, match="pyramid_channels"):
            SPINNetConfig(pyramid_channels=(1, 2, 3))
        with pytest.raises(ValueError, match="last_level"):
            SPINNetConfig(last_level=1)
        with pytest.raises(ValueError, match="unknown keys"):
            SPINNetConfig.from_dict({"name": "x", "depth": 3})
        with pytest.raises(ValueError, match="image_warp_levels"):
            SPINNetConfig(first_level=4, image_warp_levels=(4,))  # the coarsest level has no warp
        with pytest.raises(ValueError, match="image_warp_levels"):
            SPINNetConfig(image_warp_levels=(1,))

    def test_image_warp_levels(self):
        assert get_config("lite").image_warp_levels == (2,)
        assert get_config("full").image_warp_levels == ()  # the seed warps features at every level
        assert get_config("lite", last_level=3).image_warp_levels == (2,)  # the fast variant keeps it, unused
        # checkpoints written before the field existed load with the seed's feature warp
        old = get_config("lite").to_dict()
        del old["image_warp_levels"]
        assert SPINNetConfig.from_dict(old).image_warp_levels == ()

    def test_finest_iterations(self):
        config = get_config("lite", finest_iterations=2)
        assert SPINNetConfig.from_dict(config.to_dict()) == config
        # checkpoints written before the field existed load with the seed's single pass
        old = config.to_dict()
        del old["finest_iterations"]
        assert SPINNetConfig.from_dict(old).finest_iterations == 1
        for bad in (0, 5, 1.5, True, "2"):
            with pytest.raises(ValueError, match="finest_iterations"):
                get_config("lite", finest_iterations=bad)


class TestSPINNet:
    def test_shapes_every_level(self, tiny):
        ref, sample = speckle(2, 64, 96), speckle(2, 64, 96, seed=1)
        out = tiny(ref, sample)
        assert [level for level, _, _ in out["levels"]] == [6, 5, 4, 3, 2]
        for level, d, t in out["levels"]:
            scale = 2 ** (level - 1)
            assert d.shape == (2, 2, 64 // scale, 96 // scale)
            assert t.shape == (2, 1, 64 // scale, 96 // scale)
        assert out["displacement"].shape == (2, 2, 64, 96)
        assert out["transmission"].shape == (2, 1, 64, 96)

    def test_stages(self, tiny):
        ref, sample = speckle(2), speckle(2, seed=1)
        stage1 = tiny(ref, sample, last_level=3, refine=False)
        assert [level for level, _, _ in stage1["levels"]] == [6, 5, 4, 3]
        assert stage1["displacement"].shape == (2, 2, 64, 64)
        tiny.eval()
        try:
            stage2 = tiny(ref, sample, last_level=2, refine=False)
            stage3 = tiny(ref, sample)
            assert torch.allclose(stage2["levels"][-1][1], stage3["levels"][-1][1])
            assert not torch.allclose(stage2["displacement"], stage3["displacement"])
        finally:
            tiny.train()

    def test_fast_variant(self):
        model = SPINNet(get_config("tiny", last_level=3, refiners=False))
        assert sorted(model.phase_nets) == ["3", "4", "5", "6"] and model.phase_refiner is None
        out = model(speckle(2), speckle(2, seed=1))
        assert out["levels"][-1][1].shape == (2, 2, 16, 16)
        with pytest.raises(ValueError, match="last_level"):
            model(speckle(2), speckle(2, seed=1), last_level=2)
        with pytest.raises(ValueError, match="refiners"):
            model(speckle(2), speckle(2, seed=1), refine=True)

    def test_untrained_is_near_identity(self, tiny):
        out = tiny(speckle(2), speckle(2, seed=1))
        assert out["displacement"].abs().max() < 1.0
        assert (out["transmission"] - 1).abs().max() < 0.2

    def test_named_parts(self, tiny):
        table = tiny.parameter_table()
        assert table["total"] == tiny.num_parameters() == sum(v for k, v in table.items() if k != "total")
        for part in ("extractor_ref", "extractor_sample", "phase_net_6", "t_net_2", "phase_refiner", "t_refiner"):
            assert table[part] > 0
        assert tiny.extractor_ref is not tiny.extractor_sample

    def test_init_level_from(self):
        model = SPINNet("tiny")
        model.init_level_from(3, 2)
        for nets in (model.phase_nets, model.t_nets):
            for (k, a), b in zip(nets["3"].state_dict().items(), nets["2"].state_dict().values()):
                assert torch.equal(a, b), k
        with pytest.raises(ValueError):
            model.init_level_from(3, 1)

    @pytest.mark.parametrize("shape_ref, shape_sample, match", [
        ((1, 1, 64, 70), (1, 1, 64, 70), "multiples of 32"),
        ((1, 1, 32, 32), (1, 1, 32, 32), "at least 64"),
        ((1, 2, 64, 64), (1, 2, 64, 64), r"\(B, 1, H, W\)"),
        ((1, 1, 64, 64), (1, 1, 64, 96), "differ in shape"),
        ((64, 64), (64, 64), r"\(B, 1, H, W\)"),
    ])
    def test_bad_inputs(self, tiny, shape_ref, shape_sample, match):
        with pytest.raises(ValueError, match=match):
            tiny(torch.rand(shape_ref), torch.rand(shape_sample))

    def test_finest_iterations(self, tiny):
        """Each extra pass runs the finest level's PhaseNet and TNet again on the re-warped
        reference; the configuration's count is the default, a call may override it."""
        ref, sample = speckle(2), torch.roll(speckle(2), 1, dims=-1)
        tiny.eval()
        try:
            with torch.no_grad():
                one = tiny(ref, sample)
                two = tiny(ref, sample, iterations=2)
                stage1 = tiny(ref, sample, last_level=3, refine=False, iterations=2)
                twice = SPINNet(get_config("tiny", finest_iterations=2)).eval()
                twice.load_state_dict(tiny.state_dict())
                default_two = twice(ref, sample)
                back_to_one = twice(ref, sample, iterations=1)
        finally:
            tiny.train()
        assert [level for level, _, _ in one["levels"]] == [6, 5, 4, 3, 2]
        assert [level for level, _, _ in two["levels"]] == [6, 5, 4, 3, 2, 2]
        assert [level for level, _, _ in stage1["levels"]] == [6, 5, 4, 3]  # only the configured finest level
        for a, b in zip(one["levels"][:5], two["levels"][:5]):  # the first pass is the single-pass network's
            torch.testing.assert_close(a[1], b[1])
        assert not torch.allclose(two["levels"][-1][1], two["levels"][-2][1])  # the second pass moved the estimate
        for key in ("displacement", "transmission"):
            torch.testing.assert_close(default_two[key], two[key])
            torch.testing.assert_close(back_to_one[key], one[key])
        for bad in (0, 5, 2.0, True):
            with pytest.raises(ValueError, match="iterations"):
                tiny(ref, sample, iterations=bad)

    def test_fast_variant_runs_level_3_once(self):
        from spinnet_lite.model.fast import fast_variant

        model = SPINNet(get_config("tiny", finest_iterations=3))
        assert fast_variant(model).config.finest_iterations == 1

    @pytest.mark.parametrize("image_warp_levels, iterations", [((), 1), ((2, 3), 1), ((2,), 2)])
    def test_gradients_reach_every_part(self, image_warp_levels, iterations):
        model = SPINNet(get_config("tiny", image_warp_levels=image_warp_levels, finest_iterations=iterations))
        ref, sample, d, t = shifted_pair(2)
        loss, _ = multilevel_loss(model(ref, sample, refine=True), d, t)
        loss.backward()
        missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
        assert missing == []


class TestLoss:
    def test_perfect_prediction(self):
        d, t = torch.randn(3, 2, 8, 8), torch.rand(3, 1, 8, 8) + 0.5
        assert torch.allclose(pair_error((d, t), (d, t)), torch.zeros(3))
        assert torch.allclose(pair_error(torch.cat([d, t], 1), (d, t)), torch.zeros(3))

    def test_known_value(self):
        d_gt = torch.ones(1, 2, 4, 4)
        t_gt = torch.ones(1, 1, 4, 4)
        # dx off by 0.5 everywhere (0.25), dy predicted 0 (1), T exact (0)
        d = torch.stack([torch.full((4, 4), 1.5), torch.zeros(4, 4)])[None]
        assert torch.allclose(pair_error((d, t_gt), (d_gt, t_gt)), torch.tensor([1.25]), atol=1e-6)

    def test_zero_ground_truth_is_finite(self):
        d_gt, t_gt = torch.zeros(1, 2, 8, 8), torch.ones(1, 1, 8, 8)
        err = pair_error((torch.full((1, 2, 8, 8), 1e-3), t_gt), (d_gt, t_gt))
        assert torch.isfinite(err).all()

    def test_multilevel(self, tiny):
        ref, sample, d, t = shifted_pair(2)
        loss, terms = multilevel_loss(tiny(ref, sample), d, t)
        assert loss.dim() == 0 and loss.requires_grad
        assert set(terms) == {"level_6", "level_5", "level_4", "level_3", "level_2", "final", "total"}
        assert terms["total"] == pytest.approx(float(loss.detach()))
        only_final, terms = multilevel_loss(tiny(ref, sample), d, t, weights={"final": 1.0})
        assert set(terms) == {"final", "total"}

    def test_bad_shapes(self):
        with pytest.raises(ValueError):
            pair_error((torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4)), (torch.zeros(1, 2, 4, 5), torch.zeros(1, 1, 4, 5)))
        with pytest.raises(ValueError):
            pair_error(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))


class TestTraining:
    def test_loss_decreases(self):
        model = SPINNet("tiny")
        ref, sample, d, t = shifted_pair(4)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        losses = []
        for _ in range(40):
            loss, _ = multilevel_loss(model(ref, sample), d, t)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        assert np.isfinite(losses).all()
        assert np.mean(losses[-5:]) < 0.2 * losses[0]


class TestCheckpoint:
    def test_round_trip(self, tmp_path):
        model = SPINNet("tiny")
        ref, sample = speckle(2), speckle(2, seed=1)
        model(ref, sample)  # move the BatchNorm running statistics away from their defaults
        model.eval()
        path = save_checkpoint(model, tmp_path / "sub" / "tiny.pt", extra={"stage": 3, "loss": np.float64(0.5)})
        loaded = load_checkpoint(path)
        assert not loaded.training and loaded.config == model.config
        with torch.no_grad():
            a, b = model(ref, sample), loaded(ref, sample)
        assert torch.equal(a["displacement"], b["displacement"])
        assert torch.equal(a["transmission"], b["transmission"])
        checkpoint = read_checkpoint(path)
        assert checkpoint["stage"] == 3 and checkpoint["loss"] == 0.5
        assert checkpoint["config"] == get_config("tiny").to_dict()

    def test_other_config(self, tmp_path):
        path = save_checkpoint(SPINNet("tiny"), tmp_path / "tiny.pt")
        with pytest.raises(ValueError, match="'tiny'.*'lite'"):
            load_state(SPINNet("lite"), read_checkpoint(path))
        with pytest.raises(ValueError, match="configuration"):
            load_state(SPINNet(get_config("tiny", search_range=3)), read_checkpoint(path))

    def test_missing_and_corrupt(self, tmp_path):
        with pytest.raises(ValueError, match="no such"):
            load_checkpoint(tmp_path / "nothing.pt")
        bad = tmp_path / "bad.pt"
        bad.write_bytes(b"certainly not a checkpoint")
        with pytest.raises(ValueError, match="not a readable"):
            load_checkpoint(bad)
        other = tmp_path / "other.pt"
        torch.save({"weights": torch.zeros(3)}, other)
        with pytest.raises(ValueError, match="not a SPINNet checkpoint"):
            load_checkpoint(other)
        truncated = tmp_path / "truncated.pt"
        save_checkpoint(SPINNet("tiny"), truncated)
        truncated.write_bytes(truncated.read_bytes()[:1000])
        with pytest.raises(ValueError, match="not a readable"):
            load_checkpoint(truncated)


class TestPredict:
    def test_odd_size_single_pair(self, tiny):
        ref = speckle(1, 70, 97)[0, 0].numpy() * 1000
        out = predict(tiny, ref, np.roll(ref, 1, axis=1) * 0.9)
        assert set(out) == {"dx", "dy", "transmission"}
        for value in out.values():
            assert value.shape == (70, 97) and value.dtype == np.float32 and np.isfinite(value).all()
        assert tiny.training  # mode restored

    def test_stack_with_single_reference(self, tiny):
        ref = speckle(1, 70, 97)[0, 0].numpy()
        samples = np.stack([np.roll(ref, k, axis=1) for k in range(3)])
        out = predict(tiny, ref, samples, batch_size=2)
        assert out["dx"].shape == (3, 70, 97)
        one = predict(tiny, ref, samples[1])
        np.testing.assert_allclose(one["dx"], out["dx"][1], atol=1e-5)
        # normalisation by the reference mean: scaling both images changes nothing
        scaled = predict(tiny, ref * 7.0, samples[1] * 7.0)
        np.testing.assert_allclose(scaled["transmission"], one["transmission"], atol=1e-4)

    @pytest.mark.parametrize("reference, sample, match", [
        (np.ones((64, 64)), np.random.rand(64, 64), "constant"),
        (np.random.rand(64, 64), np.random.rand(64, 70), "differ"),
        (np.random.rand(40, 64), np.random.rand(40, 64), "at least 64"),
        (np.full((64, 64), np.nan), np.random.rand(64, 64), "NaN"),
        (np.random.rand(1, 1, 64, 64), np.random.rand(1, 1, 64, 64), "2-D"),
        (np.random.rand(2, 64, 64), np.random.rand(3, 64, 64), "pair"),
        (np.random.rand(64, 64) - 2, np.random.rand(64, 64), "positive"),
    ])
    def test_bad_inputs(self, tiny, reference, sample, match):
        with pytest.raises(ValueError, match=match):
            predict(tiny, reference, sample)

    def test_bad_model(self):
        with pytest.raises(ValueError, match="SPINNet"):
            predict(torch.nn.Identity(), np.random.rand(64, 64), np.random.rand(64, 64))
