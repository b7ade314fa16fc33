"""Staged training: a few steps run, the history is kept, resume and overwrite rules hold."""
import csv
import json
from dataclasses import replace

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


class TestLearningRate:
    def test_step_schedule_halves(self):
        from spinnet_lite.train import learning_rate

        cfg = preset_config("tiny", lr=1e-3)  # halve_every 2
        assert [learning_rate(cfg, 1, e, 0.0) for e in range(5)] == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])

    def test_cosine_schedule_runs_from_lr_to_its_floor(self):
        from spinnet_lite.train import learning_rate

        cfg = preset_config("lite-gpu", device="cpu")
        assert cfg.lr_schedule == "cosine"
        lrs = [learning_rate(cfg, 3, 0, p) for p in (0.0, 0.25, 0.5, 0.75, 1.0, 1.7)]
        assert lrs[0] == pytest.approx(cfg.lr)
        assert lrs[2] == pytest.approx(cfg.lr * (1 + cfg.lr_floor) / 2)
        assert lrs[4] == pytest.approx(cfg.lr * cfg.lr_floor) and lrs[5] == lrs[4]  # past the budget: the floor
        assert all(a > b for a, b in zip(lrs[:4], lrs[1:5]))

    def test_bad_schedule_is_refused(self):
        with pytest.raises(ValueError, match="lr_schedule"):
            preset_config("tiny", lr_schedule="linear")
        with pytest.raises(ValueError, match="lr_floor"):
            preset_config("tiny", lr_floor=2.0)

    def test_warmup_ramps_the_first_steps(self, tmp_path, monkeypatch):
        """With warmup_steps=6 the optimiser's first 6 steps use lr * k / 6, later ones the schedule's lr."""
        seen = []
        original = torch.optim.Adam.step

        def record(self, *args, **kwargs):
            seen.append(self.param_groups[0]["lr"])
            return original(self, *args, **kwargs)

        monkeypatch.setattr(torch.optim.Adam, "step", record)
        cfg = preset_config("tiny", workers=0, lr=1e-3, warmup_steps=6, stage_epochs=(2, 0, 0))
        train(cfg, tmp_path / "run", progress=False)
        assert seen == pytest.approx([1e-3 * k / 6 for k in range(1, 7)] + [1e-3] * 2)
        with pytest.raises(ValueError, match="warmup_steps"):
            preset_config("tiny", warmup_steps=-1)

    def test_cosine_run_records_a_decaying_lr(self, tmp_path):
        cfg = preset_config("tiny", workers=0, lr_schedule="cosine", lr=1e-3, stage_epochs=(0, 0, 4), start_stage=3)
        train(cfg, tmp_path / "run", progress=False)
        lrs = [float(r["lr"]) for r in csv.DictReader(open(tmp_path / "run" / "history.csv"))]
        assert len(lrs) == 4 and lrs[0] == pytest.approx(1e-3 * cfg.stage_lr_scale[2]) and all(a > b for a, b in zip(lrs, lrs[1:]))
        from spinnet_lite.train import epoch_progress, learning_rate, read_history

        rows = read_history(tmp_path / "run" / "history.csv")
        again = [learning_rate(cfg, 3, r["epoch"] - 1, p) for r, p in zip(rows, epoch_progress(rows, cfg.to_dict()))]
        assert again == pytest.approx(lrs, rel=1e-6)


@pytest.mark.parametrize("recalibrate", [False, True])
def test_batchnorm_statistics_kept_unless_recalibrated(tmp_path, recalibrate):
    """Continuing from weights with frozen BatchNorm keeps their statistics unless re-estimation is asked for."""
    first = preset_config("tiny", workers=0, stage_epochs=(1, 0, 0))
    train(first, tmp_path / "a", progress=False)
    cfg = preset_config("tiny", workers=0, stage_epochs=(0, 0, 1), start_stage=3, freeze_bn=True,
                        recalibrate_bn=recalibrate, init_from=str(tmp_path / "a" / "model.pt"))
    train(cfg, tmp_path / "b", progress=False)
    before, after = (load_checkpoint(tmp_path / d / "model.pt").state_dict() for d in ("a", "b"))
    stats = [k for k in before if k.endswith("running_mean") or k.endswith("running_var")]
    assert stats
    same = all(torch.equal(before[k], after[k]) for k in stats)
    assert same != recalibrate


class TestWeightAverage:
    """TrainConfig.ema_decay: model.pt holds the moving average of the weights, checkpoint.pt both."""

    def test_model_is_the_average_of_the_steps(self, tmp_path, monkeypatch):
        from spinnet_lite.model.predict import read_checkpoint

        snapshots = []  # the raw weights after every optimiser step
        original = torch.optim.Adam.step

        def record(self, *args, **kwargs):
            result = original(self, *args, **kwargs)
            snapshots.append([p.detach().clone() for p in self.param_groups[0]["params"]])
            return result

        monkeypatch.setattr(torch.optim.Adam, "step", record)
        decay = 0.6
        cfg = preset_config("tiny", workers=0, stage_epochs=(0, 0, 2), start_stage=3, ema_decay=decay)
        record_ = train(cfg, tmp_path / "run", progress=False)
        assert len(snapshots) == record_["steps"] == 8
        assert record_["weights"].startswith("exponential moving average, decay 0.6, 8 steps")
        expected = [w.clone() for w in snapshots[0]]  # the first update copies the weights
        for step in snapshots[1:]:
            expected = [decay * e + (1 - decay) * w for e, w in zip(expected, step)]
        model = load_checkpoint(tmp_path / "run" / "model.pt")
        for mine, want in zip(model.parameters(), expected):
            torch.testing.assert_close(mine.detach(), want, rtol=1e-5, atol=1e-7)
        state = read_checkpoint(tmp_path / "run" / "checkpoint.pt")
        assert state["average_count"] == 8
        raw = dict(zip([n for n, _ in model.named_parameters()], snapshots[-1]))
        assert all(torch.equal(state["state_dict"][n], w) for n, w in raw.items())  # training goes on from the raw weights
        assert not all(torch.equal(state["state_dict"][n], state["average_state_dict"][n]) for n in raw)

    def test_resume_continues_the_average(self, tmp_path, monkeypatch):
        """A run stopped after its first epoch and resumed ends with the uninterrupted run's average."""
        import spinnet_lite.train as train_module
        from spinnet_lite.model.predict import read_checkpoint

        cfg = preset_config("tiny", workers=0, stage_epochs=(0, 0, 2), start_stage=3, ema_decay=0.5)
        train(cfg, tmp_path / "whole", progress=False)
        calls, original = [], train_module.evaluate_loss

        def stop_in_second_epoch(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return original(*args, **kwargs)

        monkeypatch.setattr(train_module, "evaluate_loss", stop_in_second_epoch)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tmp_path / "run", progress=False)
        assert read_checkpoint(tmp_path / "run" / "checkpoint.pt")["average_count"] == 4
        monkeypatch.setattr(train_module, "evaluate_loss", original)
        train(cfg, tmp_path / "run", resume=True, progress=False)
        assert read_checkpoint(tmp_path / "run" / "checkpoint.pt")["average_count"] == 8
        whole, resumed = (load_checkpoint(tmp_path / d / "model.pt").state_dict() for d in ("whole", "run"))
        for name, tensor in whole.items():
            torch.testing.assert_close(resumed[name], tensor, rtol=1e-5, atol=1e-6)

    @pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, True, "0.9"])
    def test_bad_decay_is_refused(self, decay):
        with pytest.raises(ValueError, match="ema_decay"):
            preset_config("tiny", ema_decay=decay)


def test_presets_keep_their_own_seeds():
    """A preset's seed holds unless one is given: the CLI passes None when --seed is left out."""
    from spinnet_lite.cli import build_parser

    assert preset_config("lite-subpixel").seed == 2 and preset_config("lite-gpu", device="cpu").seed == 3
    args = build_parser().parse_args(["train", "--preset", "lite-subpixel", "--out", "x"])
    assert args.seed is None and args.workers is None and args.device is None
    assert preset_config("lite-subpixel", seed=args.seed).seed == 2
    assert preset_config("lite-subpixel", seed=0).seed == 0


def test_finest_iterations_reach_the_model(tmp_path):
    """lite-cpu3 and lite-gpu3 are lite-cpu2 and lite-gpu2 with level 2 run twice; the trained model's config records it."""
    from spinnet_lite.cli import build_parser

    cpu2, cpu3 = preset_config("lite-cpu2"), preset_config("lite-cpu3")
    assert (cpu2.finest_iterations, cpu3.finest_iterations) == (None, 2)
    assert replace(cpu3, finest_iterations=None, seed=cpu2.seed) == cpu2
    assert cpu3.model_config().finest_iterations == 2 and cpu2.model_config().finest_iterations == 1
    gpu2, gpu3 = preset_config("lite-gpu2", device="cpu"), preset_config("lite-gpu3", device="cpu")
    assert gpu3.spec == cpu3.spec == gpu2.spec  # the GPU segment trains the same distribution
    assert replace(gpu3, finest_iterations=None, seed=gpu2.seed, lr=gpu2.lr) == gpu2
    assert gpu3.model_config().finest_iterations == 2
    args = build_parser().parse_args(["train", "--preset", "lite-cpu3", "--out", "x"])
    assert args.finest_iterations is None  # the preset's count holds
    with pytest.raises(ValueError, match="finest_iterations"):
        preset_config("tiny", finest_iterations=0)
    cfg = preset_config("tiny", workers=0, finest_iterations=2, stage_epochs=(1, 1, 1))
    train(cfg, tmp_path / "run", progress=False)
    assert load_checkpoint(tmp_path / "run" / "model.pt").config.finest_iterations == 2


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


@pytest.fixture(scope="module")
def pairs():
    """60 training pairs of 96 px from a bank of 6 references: (spec, bank, pairs)."""
    from spinnet_lite.data import bank_arrays, make_pair, reference_bank

    spec = PairSpec(size=96, bank_size=6, bank_px=160)
    bank = reference_bank(spec=spec)
    return spec, bank, [make_pair(i, bank_arrays(bank), spec) for i in range(60)]


class TestTrainingDistribution:
    """Issue 8: the training pairs cover what real experiments give."""

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


    def test_aperture_pairs(self, pairs):
        """``aperture_fraction`` gives quadratic fields a lens's aperture and rim: a region that
        does not move, reached across a rim within the strain limit; 0 gives exactly the pairs of
        before."""
        from dataclasses import replace

        from spinnet_lite.data import bank_arrays, make_pair

        spec, bank, items = pairs
        arrays = bank_arrays(bank)
        assert all(np.array_equal(make_pair(i, arrays, replace(spec, aperture_fraction=0.0))["dx"], items[i]["dx"])
                   for i in range(8))
        quadratic = replace(spec, phantom_weights=(0.0, 0.0, 1.0, 0.0, 0.0), small_shift_fraction=0.0)
        rimmed = replace(quadratic, aperture_fraction=1.0, apertures=(0.3, 0.6))
        for i in range(4):
            plain, lens = make_pair(i, arrays, quadratic), make_pair(i, arrays, rimmed)
            still = np.hypot(lens["dx"], lens["dy"]) < 1e-3 * lens["max_shift"]
            assert 0.25 < still.mean() < 0.75  # outside the aperture (its share of the frame, less the rim)
            assert np.mean(np.hypot(plain["dx"], plain["dy"]) < 1e-3 * plain["max_shift"]) < 0.01
            strain = max(np.abs(np.gradient(lens["dx"])).max(), np.abs(np.gradient(lens["dy"])).max())
            assert strain <= spec.max_strain + 1e-3
        for bad in ({"aperture_fraction": 1.5}, {"apertures": (0.0, 0.5)}, {"apertures": (0.5, 1.2)},
                    {"rim_sigmas_px": (2.0, 1.0)}):
            with pytest.raises(ValueError, match=next(iter(bad))):
                PairSpec(**bad)


def test_rim_presets_change_only_what_they_say():
    """lite-rim-gpu / lite-rim-cpu: lite-gpu3 / lite-cpu3 with apertures in 60 % of the quadratic
    fields, the sixteenth bundle's loss floor and their own seeds."""
    from dataclasses import asdict

    for rim, base in (("lite-rim-gpu", "lite-gpu3"), ("lite-rim-cpu", "lite-cpu3")):
        a, b = preset_config(rim, device="cpu"), preset_config(base, device="cpu")
        assert a.spec.aperture_fraction == 0.6 and b.spec.aperture_fraction == 0.0
        assert a.loss_eps == 0.01 and a.seed != b.seed
        differ = {k for k, v in asdict(a).items() if v != asdict(b)[k]}
        assert differ == {"spec", "loss_eps", "seed"}
        assert {k for k, v in asdict(a.spec).items() if v != asdict(b.spec)[k]} == {"aperture_fraction"}


def test_fine_grain_presets_change_only_what_they_say():
    """lite-gpu2 (the ninth and tenth segments) and lite-cpu2: lite-gpu's / lite-cpu's settings
    with diffuser grains down to 1 px (and their own seed, peak lr and, on the GPU, a moving
    average)."""
    gpu, gpu2 = preset_config("lite-gpu", device="cpu"), preset_config("lite-gpu2", device="cpu")
    cpu, cpu2 = preset_config("lite-cpu"), preset_config("lite-cpu2")
    assert gpu.spec.grains == cpu.spec.grains == (1.5, 6.0)
    assert gpu2.spec.grains == cpu2.spec.grains == (1.0, 6.0)
    assert (gpu2.batch_size, gpu2.workers, gpu2.ema_decay, gpu2.seed, gpu2.lr) == (gpu.batch_size, gpu.workers, 0.998, 7, 1e-4)
    assert (cpu2.batch_size, cpu2.ema_decay, cpu2.seed, cpu2.lr) == (cpu.batch_size, cpu.ema_decay, 9, 3e-5)
    assert replace(cpu2.spec, grains=cpu.spec.grains) == cpu.spec
    assert replace(gpu2.spec, grains=gpu.spec.grains) == gpu.spec



def test_loss_floor_from_the_command_line(tmp_path):
    """--loss-eps sets the Eq. 4 floor of the run (recorded), and the preset's holds without it."""
    from spinnet_lite.cli import main

    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--out", str(out), "--loss-eps", "0.2", "--stage-epochs", "1", "1", "1",
                 "--workers", "0", "--no-progress"]) == 0
    assert json.loads((out / "record.json").read_text())["train_config"]["loss_eps"] == 0.2
    assert preset_config("lite-cpu3").loss_eps == 0.05
    assert main(["train", "--preset", "tiny", "--out", str(tmp_path / "bad"), "--loss-eps", "0"]) == 2


def test_level_loss_scale(tmp_path):
    """--level-loss-scale scales the pyramid levels' loss weights (the final output keeps 1): at 0
    the run's validation loss is the final output's Eq. 4 alone, which the run also records as its
    pair error (both with no floor to speak of)."""
    from spinnet_lite.cli import main
    from spinnet_lite.model.loss import DEFAULT_WEIGHTS

    weights = preset_config("tiny", level_loss_scale=0.25).loss_weights()
    assert weights["final"] == 1.0 and weights[2] == 0.25 * DEFAULT_WEIGHTS[2] and weights[6] == 0.25 * DEFAULT_WEIGHTS[6]
    assert preset_config("lite-cpu3").loss_weights() == DEFAULT_WEIGHTS
    for bad in (-0.5, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="level_loss_scale"):
            preset_config("tiny", level_loss_scale=bad)

    rows = {}
    for scale in ("0", "1"):
        out = tmp_path / f"run{scale}"
        assert main(["train", "--preset", "tiny", "--out", str(out), "--level-loss-scale", scale, "--loss-eps", "1e-8",
                     "--stage-epochs", "1", "1", "1", "--workers", "0", "--no-progress"]) == 0
        assert json.loads((out / "record.json").read_text())["train_config"]["level_loss_scale"] == float(scale)
        with open(out / "history.csv") as f:
            rows[scale] = list(csv.DictReader(f))[-1]
    last = rows["0"]
    assert float(last["val_loss"]) == pytest.approx(float(last["val_pair_error"]), rel=1e-4)
    # with the levels weighed in the loss is larger than the final term alone
    assert float(rows["1"]["val_loss"]) > 1.2 * float(rows["1"]["val_pair_error"])
    assert main(["train", "--preset", "tiny", "--out", str(tmp_path / "bad"), "--level-loss-scale", "-1"]) == 2
