"""spinnet_lite.tiling: overlapping tiles for images larger than the network should see at once."""
import numpy as np
import pytest
import torch

from spinnet_lite import reconstruct, simulate_pair
from spinnet_lite.model.predict import predict
from spinnet_lite.model.spinnet import SPINNet
from spinnet_lite.pretrained import WEIGHTS
from spinnet_lite.tiling import blend_weight, predict_tiled, tile_starts


class PointwiseNet(SPINNet):
    """A SPINNet whose output at a pixel depends on that pixel only (and not on the scale).

    Tiling must then reproduce the untiled result exactly: any error is in the bookkeeping
    (tile positions, weights, cropping), not in the network's limited context.
    """

    def __init__(self):
        super().__init__("tiny")

    def forward(self, reference, sample, last_level=None, refine=None):
        ratio = sample / reference
        return {"levels": [], "displacement": torch.cat([ratio, reference / sample], dim=1),
                "transmission": ratio}


@pytest.fixture(scope="module")
def pair():
    return simulate_pair(size=256, seed=7)


class TestTileGeometry:
    @pytest.mark.parametrize("length, tile, overlap", [(256, 128, 32), (2112, 1024, 32), (300, 128, 16),
                                                       (100, 128, 32), (129, 128, 0)])
    def test_starts_cover_with_overlap(self, length, tile, overlap):
        starts = tile_starts(length, tile, overlap)
        assert starts[0] == 0
        assert starts[-1] + min(tile, length) == length
        for a, b in zip(starts, starts[1:]):
            assert b > a and a + tile - b >= overlap

    def test_weights_partition_of_unity_after_normalisation(self):
        shape, tile, overlap = (200, 300), 128, 32
        total = np.zeros(shape)
        for y0 in tile_starts(shape[0], tile, overlap):
            for x0 in tile_starts(shape[1], tile, overlap):
                w = blend_weight(shape, (y0, x0), (tile, tile), overlap)
                assert w.min() > 0 and w.max() == 1
                total[y0:y0 + tile, x0:x0 + tile] += w
        assert total.min() > 0.5  # every pixel is well covered
        corner = blend_weight(shape, (0, 0), (tile, tile), overlap)
        assert corner[0, 0] == 1 and corner[-1, -1] < 0.01  # image border: full weight; inner edge: ~0


class TestPredictTiled:
    """Tiles against one pass of the network itself: the global offset and the residual passes
    around it (spinnet_lite.align, tested in test_generalisation.py) and the Lucas-Kanade step
    after it (test_lucas_kanade.py) are off here."""

    def test_pointwise_model_is_reproduced_exactly(self, pair):
        model = PointwiseNet().eval()
        full = predict(model, pair.reference.values, pair.sample.values)
        tiled = predict_tiled(model, pair.reference.values, pair.sample.values, tile=128, overlap=32,
                              prealign=False, passes=1, lk_sigma=0)
        for name in ("dx", "dy", "transmission"):
            np.testing.assert_allclose(tiled[name], full[name], rtol=1e-5, err_msg=name)

    def test_memory_plan_tiles_and_reproduces_pointwise_model(self, pair):
        """A small max_memory makes the automatic plan tile; the blend still gives the untiled result."""
        from spinnet_lite.tiling import plan_tiles

        model = PointwiseNet().eval()
        budget = 4e6
        plan = plan_tiles(model, 256, 256, max_memory=budget)
        assert plan["tiles"] > 1
        full = predict(model, pair.reference.values, pair.sample.values)
        tiled = predict_tiled(model, pair.reference.values, pair.sample.values, max_memory=budget,
                              prealign=False, passes=1, lk_sigma=0)
        for name in ("dx", "dy", "transmission"):
            np.testing.assert_allclose(tiled[name], full[name], rtol=1e-5, err_msg=name)

    @pytest.mark.parametrize("shape, tile", [((200, 300), 128), ((256, 256), (96, 200)), ((130, 700), 256)])
    def test_any_shape_and_rectangular_tiles(self, shape, tile):
        rng = np.random.default_rng(1)
        ref = rng.uniform(0.5, 1.5, shape)
        sam = ref * rng.uniform(0.8, 1.0, shape)
        model = PointwiseNet().eval()
        full = predict(model, ref, sam)
        tiled = predict_tiled(model, ref, sam, tile=tile, overlap=16, prealign=False, passes=1, lk_sigma=0)
        np.testing.assert_allclose(tiled["dx"], full["dx"], rtol=1e-5)

    def test_small_image_is_one_plain_predict(self, pair):
        torch.manual_seed(0)
        model = SPINNet("tiny").eval()
        a = predict(model, pair.reference.values, pair.sample.values)
        b = predict_tiled(model, pair.reference.values, pair.sample.values, tile=256, prealign=False, passes=1, lk_sigma=0)
        np.testing.assert_array_equal(a["dx"], b["dx"])

    @pytest.mark.skipif(not WEIGHTS.exists(), reason="bundled weights not present")
    def test_trained_model_tiled_agrees_with_untiled(self, pair):
        """256 x 256 in 128 px tiles (overlap 32) against one pass: close, edges included."""
        from spinnet_lite.pretrained import load_pretrained

        model = load_pretrained()
        full = predict(model, pair.reference.values, pair.sample.values)
        tiled = predict_tiled(model, pair.reference.values, pair.sample.values, tile=128, overlap=32,
                              prealign=False, passes=1, lk_sigma=0)
        signal = np.sqrt(np.mean(full["dx"] ** 2 + full["dy"] ** 2))
        diff = np.sqrt(np.mean((tiled["dx"] - full["dx"]) ** 2 + (tiled["dy"] - full["dy"]) ** 2))
        assert diff <= 0.15 * signal + 0.02, (
            f"tiled vs untiled rms {diff:.4f} px for a signal of {signal:.4f} px; if the untiled result is the "
            f"wrong one, the network does not generalise beyond its training patch size: lower "
            f"spinnet_lite.reconstruct.DEFAULT_TILE")
        t_diff = np.sqrt(np.mean((tiled["transmission"] - full["transmission"]) ** 2))
        assert t_diff < 0.02

    @pytest.mark.parametrize("kwargs, match", [(dict(tile=32), "tile"), (dict(tile=128, overlap=64), "overlap"),
                                               (dict(tile=128, overlap=-1), "overlap"),
                                               (dict(batch_size=0), "batch_size")])
    def test_bad_arguments(self, pair, kwargs, match):
        with pytest.raises(ValueError, match=match):
            predict_tiled(PointwiseNet(), pair.reference.values, pair.sample.values, **kwargs)


class TestReconstructTiles:
    def test_reconstruct_tiles_larger_images(self, pair):
        model = PointwiseNet().eval()
        one = reconstruct(pair.reference, pair.sample, method="spinnet", model=model, lk_sigma=0)
        tiled = reconstruct(pair.reference, pair.sample, method="spinnet", model=model, tile=128, overlap=16, lk_sigma=0)
        np.testing.assert_allclose(tiled.dx.values, one.dx.values, rtol=1e-5)
        assert "tile" in tiled.attrs["options"]

    def test_bad_tile_option(self, pair):
        with pytest.raises(ValueError, match="tile"):
            reconstruct(pair.reference, pair.sample, method="spinnet", model=PointwiseNet(), tile="big")
        with pytest.raises(ValueError, match="unknown option"):
            reconstruct(pair.reference, pair.sample, method="xst", tile=128)
