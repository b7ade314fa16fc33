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


def test_resume_checks_the_checkpoint_before_simulating(tmp_path, monkeypatch):
    """A checkpoint that cannot be resumed is refused before the reference banks are built."""
    import spinnet_lite.train as train_module

    out = tmp_path / "run"
    out.mkdir()
    torch.save({"state_dict": {}}, out / "checkpoint.pt")

    def no_banks(*args, **kwargs):
        raise AssertionError("the banks were built before the checkpoint was checked")

    monkeypatch.setattr(train_module, "_banks", no_banks)
    with pytest.raises(ValueError, match="checkpoint"):
        train(preset_config("tiny", workers=0), out, resume=True, progress=False)


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

    def test_natural_scale_phantoms(self, pairs):
        """``natural_fraction`` keeps the seed's random phantoms at their own scale: the same
        phantom as the rescaled one (displacements proportional), and a spec without it gives
        exactly the pairs it gave before the option existed."""
        from dataclasses import replace

        from spinnet_lite.data import bank_arrays, make_pair, reference_bank

        spec, bank, items = pairs
        arrays = bank_arrays(bank)
        assert all(np.array_equal(make_pair(i, arrays, replace(spec, natural_fraction=0.0))["dx"], items[i]["dx"])
                   for i in range(8))
        natural = replace(spec, natural_fraction=1.0, phantom_weights=(1.0, 0.0, 0.0, 0.0, 0.0))
        scaled = replace(spec, phantom_weights=(1.0, 0.0, 0.0, 0.0, 0.0))
        ratios = []
        for i in range(6):
            a, b = make_pair(i, arrays, natural), make_pair(i, arrays, scaled)
            big = np.abs(b["dx"]) > 0.05 * np.abs(b["dx"]).max()
            ratio = a["dx"][big] / b["dx"][big]
            assert np.allclose(ratio, ratio[0], rtol=1e-3)  # one phantom, two scales
            ratios.append(ratio[0])
        assert max(abs(r - 1) for r in ratios) > 0.05  # and the scale is not the rescaled one
        with pytest.raises(ValueError, match="natural_fraction"):
            PairSpec(natural_fraction=1.5)

    def test_small_shift_pairs(self, pairs):
        """``small_shift_fraction`` draws the largest shift log-uniformly in ``small_shifts_px``
        (sub-pixel fields and drifts); 0 gives exactly the pairs of before."""
        from dataclasses import replace

        from spinnet_lite.data import bank_arrays, make_pair

        spec, bank, items = pairs
        arrays = bank_arrays(bank)
        assert all(np.array_equal(make_pair(i, arrays, replace(spec, small_shift_fraction=0.0))["dx"], items[i]["dx"])
                   for i in range(8))
        small = replace(spec, small_shift_fraction=1.0, small_shifts_px=(0.02, 0.5), natural_fraction=0.0)
        shifts = []
        for i in range(8):
            p = make_pair(i, arrays, small)
            shifts.append(p["max_shift"])
            assert np.hypot(p["dx"], p["dy"]).max() <= 0.5 * 1.01 + 1e-6
        assert min(shifts) > 0.005 and max(shifts) <= 0.5 * 1.01 and max(shifts) / min(shifts) > 2
        for bad in ((0.0, 1.0), (1.0, 0.5)):
            with pytest.raises(ValueError, match="small_shifts_px"):
                PairSpec(small_shifts_px=bad)
        with pytest.raises(ValueError, match="small_shift_fraction"):
            PairSpec(small_shift_fraction=-0.1)
