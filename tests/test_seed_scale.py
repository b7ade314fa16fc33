"""benchmarks/seed_scale.py: the held-out set's Eq. 4 regimes at larger sample distances."""
import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def scale(load_benchmark):
    return load_benchmark("seed_scale")


@pytest.fixture(scope="module")
def model():
    from spinnet_lite.pretrained import load_pretrained

    return load_pretrained()


def test_sweep_at_the_set_distance_is_the_evaluation_and_shifts_scale(scale, model):
    result = scale.sweep("spinnet", n=2, distances=(60, 120), model=model)
    rows = {(r["sample_detector_mm"], r["index"]): r for r in result["rows"]}
    plain, _ = scale.evaluate("spinnet", n=2, model=model)
    for r in plain:
        assert rows[60.0, r["index"]]["pair_error"] == pytest.approx(r["pair_error"], rel=1e-9)
        # both pairs are random phantoms: every shift doubles from 60 to 120 mm (seed Eq. 1)
        assert rows[120.0, r["index"]]["max_shift_px"] == pytest.approx(2 * r["max_shift_px"], rel=1e-6)
    for mm, by_method in result["summary"].items():
        s = by_method["spinnet"]
        assert s["n"] == 2 and sum(s["regime_counts"].values()) == 2
        assert s["below_1_percent"] == pytest.approx(
            sum(r["pair_error"] <= 0.01 for r in result["rows"] if r["sample_detector_mm"] == mm) / 2)
        assert s["folded_pairs"] == sum(r["folded_share"] > 0 for r in result["rows"] if r["sample_detector_mm"] == mm)
        line = scale.distance_lines(mm, by_method)[0]
        assert line.split()[:3] == [f"{mm:.0f}", "mm", "spinnet"]


def test_summary_counts_unfolded_pairs_apart(scale):
    rows = [{"regime": "<0.25%", "folded_share": 0.0, "max_shift_px": 2.0, "displacement_rmse": 0.01, "pair_error": 0.001},
            {"regime": ">1%", "folded_share": 0.2, "max_shift_px": 9.0, "displacement_rmse": 0.5, "pair_error": 0.3},
            {"regime": ">1%", "folded_share": 0.0, "max_shift_px": 4.0, "displacement_rmse": 0.05, "pair_error": 0.02},
            {"regime": "0.25-1%", "folded_share": 0.0, "max_shift_px": 3.0, "displacement_rmse": 0.02, "pair_error": 0.005}]
    for r in rows:  # the rest of an evaluation row (evaluate.summarise reads them too)
        r.update(kind="clean", pair_error_t=0.0, transmission_error=0.0, background_noise=None, time_s=0.1)
    s = scale.summarise_distance(rows)
    assert s["folded_pairs"] == 1 and s["median_max_shift_px"] == 3.5 and s["max_shift_range_px"] == (2.0, 9.0)
    assert s["below_1_percent"] == 0.5
    assert s["below_1_percent_unfolded"] == pytest.approx(2 / 3)
    assert np.isnan(scale.summarise_distance([rows[1]])["below_1_percent_unfolded"])


def test_command_line(scale, tmp_path, capsys):
    out = tmp_path / "scale.json"
    assert scale.main(["--n", "1", "--distances", "90", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert list(report["summary"]) == ["90"] and report["rows"][0]["sample_detector_mm"] == 90
    assert " 90 mm spinnet" in capsys.readouterr().out
    assert scale.main(["--n", "1", "--distances", "90", "--json", str(out)]) == 2  # no overwrite
    assert "file exists" in capsys.readouterr().err
    assert scale.main(["--n", "1", "--distances", "300"]) == 2
    assert "sample_detector_mm" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        scale.main(["--distances", "far"])
