"""The bundled SPINNet-lite weights: present, small, recorded, and far better than predicting nothing."""
import json
from pathlib import Path

import numpy as np
import pytest

from spinnet_lite import reconstruct
from spinnet_lite.evalset import heldout_specs, simulate_spec
from spinnet_lite.metrics import pair_error
from spinnet_lite.pretrained import HISTORY, RECORD, WEIGHTS, load_pretrained, pretrained_record, training_segments
from spinnet_lite.train import HISTORY_FIELDS, read_history


def test_files_are_bundled():
    assert WEIGHTS.exists() and RECORD.exists() and HISTORY.exists()
    assert WEIGHTS.stat().st_size < 10 * 1024 * 1024


def test_record_says_how_it_was_made():
    record = pretrained_record()
    for key in ("command", "segments", "train_config", "model_config", "data", "training_time_s", "steps",
                "evaluation", "speed"):
        assert key in record, key
    assert "spinnet_lite train" in record["command"]
    assert record["model_config"]["name"] == "lite"
    assert record["training_time_s"] > 0 and record["steps"] > 0
    summary = record["evaluation"]["summary"]
    assert {"xst", "spinnet", "comparison"} <= set(summary)
    rows = read_history(HISTORY)
    assert tuple(rows[0]) == HISTORY_FIELDS and len(rows) == sum(record["epochs_per_stage"])


def test_training_segments_list_every_run_oldest_first():
    record = pretrained_record()
    rows = training_segments()
    runs = [*record.get("lineage", []), record]
    assert len(rows) == sum(len(run.get("segments") or [None]) for run in runs)
    assert [r["run"] for r in rows] == sorted(r["run"] for r in rows) and rows[-1]["run"] == len(runs)
    assert "train" in rows[-1]["command"] and not rows[-1]["command"].startswith("python -m")
    firsts = [r for r in rows if r["segment"] == 1]
    assert sum(r["run's training time [min]"] for r in firsts) * 60 == pytest.approx(
        sum(run["training_time_s"] for run in runs), abs=0.1 * len(runs) * 60)
    made_up = {"command": "python -m spinnet_lite train --preset tiny", "training_time_s": 60.0, "steps": 5}
    assert training_segments(made_up) == [{"run": 1, "segment": 1, "command": "train --preset tiny", "--minutes": "",
                                           "run's training time [min]": 1.0, "run's steps": 5, "device": "",
                                           "weights": "last step"}]
    assert all(r["device"] for r in firsts)  # every bundled run says where it trained
    made_up.update(device="cpu", train_config={"device": "cpu", "threads": 2})
    assert training_segments(made_up)[0]["device"] == "cpu, 2 threads"
    made_up.update(train_config={"device": "cpu", "threads": 1}, weights="exponential moving average, decay 0.998")
    assert training_segments(made_up)[0]["device"] == "cpu, 1 thread"
    assert training_segments(made_up)[0]["weights"] == "moving average"


def test_loads_in_eval_mode():
    model = load_pretrained()
    assert not model.training and model.config.name == "lite"
    assert load_pretrained() is model  # loaded once


@pytest.fixture(scope="module")
def pairs():
    return [simulate_spec(s) for s in heldout_specs(3)]


def test_far_better_than_predicting_nothing(pairs):
    for pair in pairs:
        result = reconstruct(pair.reference, pair.sample)  # bundled weights by default
        zero = {"dx": np.zeros_like(pair.dx), "dy": np.zeros_like(pair.dy), "transmission": np.ones_like(pair.dx)}
        err, err_zero = pair_error(result, pair, border=8), pair_error(zero, pair, border=8)
        assert err < 0.25 * err_zero, (pair.attrs["kind"], err, err_zero)


def test_record_rows_are_reproduced(pairs):
    """The evaluation figures in lite.json come from running the code: recompute two of them."""
    evaluation = pretrained_record()["evaluation"]
    rows = {(r["method"], r["index"]): r for r in evaluation["rows"]}
    engine = evaluation.get("engine", "torch")  # the engine "auto" was when the record was made
    for pair in pairs[:2]:
        result = reconstruct(pair.reference, pair.sample, method="spinnet", engine=engine)
        recorded = rows[("spinnet", pair.attrs["index"])]["pair_error"]
        assert pair_error(result, pair, border=8) == pytest.approx(recorded, rel=1e-3)


def test_bundling_keeps_what_training_segments_reads(load_tool):
    """tools/bundle_weights.add_lineage: a bundled record as the previous one keeps every run's
    device and kind of weights (the moving average of the last run stays one in the lineage)."""
    bundle = load_tool("bundle_weights")
    previous = pretrained_record()
    new = {"command": "python -m spinnet_lite train --preset tiny", "training_time_s": 60.0, "steps": 5}
    bundle.add_lineage(new, previous)
    before, after = training_segments(previous), training_segments(new)
    assert after[:len(before)] == before and after[-1]["command"] == "train --preset tiny"
    assert new["total_training_time_s"] == pytest.approx(
        previous.get("total_training_time_s", previous["training_time_s"]) + 60.0, abs=0.1)


def test_bundling_a_chain_of_runs_keeps_every_run_oldest_first(load_tool):
    """tools/bundle_weights.chain_lineage (``--previous`` given twice): a run started from an
    unbundled run, itself started from the bundle, lists the bundle's lineage, the bundle, the
    run in between and itself; the records passed in are not changed."""
    bundle = load_tool("bundle_weights")
    bundled = {"command": "python -m spinnet_lite train --preset a", "training_time_s": 100.0, "steps": 1,
               "lineage": [{"command": "python -m spinnet_lite train --preset z", "training_time_s": 10.0}]}
    between = {"command": "python -m spinnet_lite train --preset b", "training_time_s": 200.0, "steps": 2}
    new = {"command": "python -m spinnet_lite train --preset c", "training_time_s": 300.0, "steps": 3}
    bundle.chain_lineage(new, [bundled, between])
    assert [run["command"].split()[-1] for run in new["lineage"]] == ["z", "a", "b"]
    assert new["total_training_time_s"] == pytest.approx(610.0)
    assert "lineage" not in between and len(bundled["lineage"]) == 1
    assert [r["command"] for r in training_segments(new)] == [f"train --preset {p}" for p in "zabc"]
    single = dict(new, lineage=None)
    bundle.chain_lineage(single, [between])  # one record: add_lineage itself
    assert [run["command"].split()[-1] for run in single["lineage"]] == ["b"]


def test_speed_only_replaces_the_speed_entry_alone(load_tool, tmp_path, monkeypatch, capsys):
    """tools/bundle_weights.py --speed-only: the bundled record keeps everything but its speed,
    which is measured again on the bundled weights; a run folder with it is refused."""
    bundle = load_tool("bundle_weights")
    weights = Path(__file__).resolve().parents[1] / "spinnet_lite" / "weights"
    (tmp_path / "lite.pt").write_bytes((weights / "lite.pt").read_bytes())
    record = {"command": "train", "evaluation": {"summary": 1}, "speed": {"speedup": 8.6}}
    (tmp_path / "lite.json").write_text(json.dumps(record))
    measured = []

    def fake_speed(model):
        measured.append(sum(p.numel() for p in model.parameters()))
        return {"spinnet_s": 0.1, "xst_s": 1.0, "speedup": 10.0, "paths": {}, "command": "x"}

    monkeypatch.setattr(bundle, "WEIGHTS", tmp_path)
    monkeypatch.setattr(bundle, "measure_speed", fake_speed)
    assert bundle.main(["--speed-only"]) == 0
    after = json.loads((tmp_path / "lite.json").read_text())
    assert measured == [sum(p.numel() for p in load_pretrained().parameters())]
    assert after["speed"]["speedup"] == 10.0 and "--speed-only" in after["speed"]["command"]
    assert {k: v for k, v in after.items() if k != "speed"} == {k: v for k, v in record.items() if k != "speed"}
    assert "ratio 10.0x" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bundle.main(["runs/x", "--speed-only"])



def test_evaluate_only_replaces_the_figures_and_keeps_what_they_were(load_tool, tmp_path, monkeypatch, capsys):
    """tools/bundle_weights.py --evaluate-only: the bundled weights evaluated again (after a
    simulator change); the record keeps everything else, and the replaced summaries with the reason."""
    bundle = load_tool("bundle_weights")
    weights = Path(__file__).resolve().parents[1] / "spinnet_lite" / "weights"
    (tmp_path / "lite.pt").write_bytes((weights / "lite.pt").read_bytes())
    record = {"command": "train", "evaluation": {"summary": {"old": 1}, "command": "e", "rows": [1]},
              "operating_range": {"summary": {"old": 2}, "rows": [], "command": "o"}, "speed": {"speedup": 8.6}}
    (tmp_path / "lite.json").write_text(json.dumps(record))
    calls = []

    def fake_evaluation(model, n):
        calls.append(("evaluation", n, sum(p.numel() for p in model.parameters())))
        return {"summary": {"spinnet": {"median_displacement_rmse": 0.02}}, "rows": [], "command": "new"}

    def fake_sweeps(model):
        calls.append(("operating_range",))
        return {"summary": {"new": 2}, "rows": [], "command": "new sweeps"}

    monkeypatch.setattr(bundle, "WEIGHTS", tmp_path)
    monkeypatch.setattr(bundle, "evaluation_entry", fake_evaluation)
    monkeypatch.setattr(bundle, "operating_range_entry", fake_sweeps)
    assert bundle.main(["--evaluate-only", "--reason", "the simulator changed", "--n", "6"]) == 0
    after = json.loads((tmp_path / "lite.json").read_text())
    assert calls == [("evaluation", 6, sum(p.numel() for p in load_pretrained().parameters()))]
    assert after["evaluation"]["command"] == "new" and after["operating_range"] == record["operating_range"]
    (earlier,) = after["earlier_evaluations"]
    assert earlier["reason"] == "the simulator changed" and earlier["evaluation"] == {"summary": {"old": 1}, "command": "e"}
    assert "operating_range" not in earlier and earlier["replaced_on"]
    assert {k: after[k] for k in ("command", "speed")} == {k: record[k] for k in ("command", "speed")}
    assert "0.0200 px" in capsys.readouterr().out
    # with the sweeps: both replaced, both kept
    assert bundle.main(["--evaluate-only", "--reason", "again", "--operating-range"]) == 0
    after = json.loads((tmp_path / "lite.json").read_text())
    assert after["operating_range"]["command"] == "new sweeps" and len(after["earlier_evaluations"]) == 2
    assert after["earlier_evaluations"][1]["operating_range"] == {"summary": {"old": 2}, "command": "o"}
    for bad in (["--evaluate-only"], ["--evaluate-only", "--reason", " "], ["runs/x", "--evaluate-only", "--reason", "r"],
                ["--speed-only", "--reason", "r"]):
        with pytest.raises(SystemExit):
            bundle.main(bad)
