"""Staged training: a few steps run, the history is kept, resume and overwrite rules hold."""
import csv
import json

import numpy as np
import pytest
import torch

from spinnet_lite.data import EVAL_SEED_BASE, VALIDATION_SEED_BASE, PairSpec, SimulatedPairs, pair_seed
from spinnet_lite.model.predict import load_checkpoint
from spinnet_lite.train import preset_config, train


class TestData:
    def test_items_are_deterministic(self):
        spec = PairSpec(size=96, bank_size=2, bank_px=160)
        a, b = SimulatedPairs(4, spec=spec)[2], SimulatedPairs(4, spec=spec)[2]
        for k in a:
            torch.testing.assert_close(a[k], b[k])
        assert a["reference"].shape == (1, 96, 96) and a["displacement"].shape == (2, 96, 96)
        assert a["reference"].mean().item() == pytest.approx(1.0, rel=1e-5)  # normalised by the reference mean

    def test_seed_ranges_never_meet(self):
        with pytest.raises(ValueError, match="range"):
            SimulatedPairs(10, base=VALIDATION_SEED_BASE - 5)
        with pytest.raises(ValueError, match="range"):
            pair_seed(0, base=EVAL_SEED_BASE)
        assert pair_seed(3, base=VALIDATION_SEED_BASE) == VALIDATION_SEED_BASE + 3


def test_tiny_staged_run(tmp_path):
    cfg = preset_config("tiny", workers=0)
    out = tmp_path / "run"
    record = train(cfg, out, command="test", progress=False)
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [int(r["stage"]) for r in rows] == [1, 1, 2, 3]
    assert all(float(r["train_loss"]) > 0 and float(r["val_loss"]) > 0 for r in rows)
    assert json.loads((out / "record.json").read_text())["steps"] == record["steps"] == 4 * 4
    model = load_checkpoint(out / "model.pt")
    assert model.config.name == "tiny" and not model.training
    assert (out / "history.png").stat().st_size > 1000
    # an existing run is neither overwritten nor resumed silently
    with pytest.raises(ValueError, match="--resume"):
        train(cfg, out, progress=False)
    # resuming a finished run keeps its history
    train(cfg, out, resume=True, progress=False)
    assert len(list(csv.DictReader(open(out / "history.csv")))) == 4


def test_resume_needs_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint"):
        train(preset_config("tiny", workers=0), tmp_path / "none", resume=True, progress=False)


def test_unknown_preset():
    with pytest.raises(ValueError, match="preset"):
        preset_config("huge")


def test_cached_pairs_round_trip(tmp_path):
    from spinnet_lite.data import CachedPairs, PairSpec, cache_pairs

    spec = PairSpec(size=64, bank_size=2, bank_px=128)
    path = tmp_path / "pairs.nc"
    cache_pairs(path, 2, spec=spec)
    cached, fresh = CachedPairs(path), SimulatedPairs(2, spec=spec)
    assert len(cached) == 2
    for i in range(2):
        for k, v in fresh[i].items():
            torch.testing.assert_close(cached[i][k], v)
    with pytest.raises(ValueError, match="exists"):
        cache_pairs(path, 2, spec=spec)


class TestTrainingDistribution:
    """Issue 8: the training pairs cover what real experiments give."""

    @pytest.fixture(scope="class")
    def pairs(self):
        from spinnet_lite.data import bank_arrays, make_pair, reference_bank

        spec = PairSpec(size=96, bank_size=6, bank_px=160)
        bank = reference_bank(spec=spec)
        return spec, bank, [make_pair(i, bank_arrays(bank), spec) for i in range(60)]

    def test_bank_has_masks_and_diffusers(self, pairs):
        spec, bank, _ = pairs
        kinds = set(bank["speckle"].values.tolist())
        assert kinds == {"mask", "diffuser"}
        assert bank["reference"].shape[1] == spec.bank_px * spec.bank_oversample  # kept finer than the pixel
        assert float(bank["reference"].mean()) == pytest.approx(1.0, rel=1e-3)

    def test_shifts_phantoms_visibility_and_strain(self, pairs):
        from spinnet_lite.simulate import rms_visibility

        spec, _, items = pairs
        shifts = np.array([p["max_shift"] for p in items])
        assert shifts.max() > 8 and shifts.min() < 1 and shifts.max() <= spec.max_shift_px[1] + 1e-3
        assert {p["kind"] for p in items} == {"random", "blobs", "quadratic", "uniform", "combined"}
        vis = np.array([rms_visibility(p["reference"]) for p in items])
        assert vis.min() < 0.08 and vis.max() > 0.3
        for p in items:
            strain = max(np.abs(np.gradient(p["dx"])).max(), np.abs(np.gradient(p["dy"])).max())
            assert strain <= spec.max_strain + 1e-3  # the speckle never folds
