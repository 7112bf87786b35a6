"""Tests of sweeps: experiment files, the tables over seeds, and one tiny sweep run end to end."""

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from musicrl.evaluation import sweep
from musicrl.config import config_from_overrides
from musicrl.errors import MusicRLError
from musicrl.music.midi import rand_progression, save_midi
from musicrl.tests.test_evaluate import TINY, _cli


def _rows(rng, *, changes, n_seeds=3, experiment="exp", noise=0.01):
    """Rows as collect() gives them: per seed, a pretrained and an agent set whose measures differ by ``changes``."""
    rows = []
    for seed in range(n_seeds):
        base = {m: 0.5 + noise * rng.standard_normal() for m in sweep.BETTER}
        for s, shift in (("real", None), ("random", None), ("pretrained", 0.0), ("agent", 1.0)):
            values = dict(base) if shift is None else {m: base[m] + shift * changes.get(m, 0.0) for m in base}
            rows.append({"experiment": experiment, "seed": seed, "set": s, "iterations": 10.0 + seed,
                         "distinct_chord_ratio": 0.8, "copy_rate": 0.0, **values})
    return rows


def test_summarize_gives_mean_and_sample_std(rng):
    rows = _rows(rng, changes={})
    summary = sweep.summarize(rows)
    assert {(r["experiment"], r["set"]) for r in summary} == {("exp", s) for s in sweep.SETS}
    agent = next(r for r in summary if r["set"] == "agent")
    x = np.array([r["in_key_rate"] for r in rows if r["set"] == "agent"])
    assert agent["n_seeds"] == 3
    np.testing.assert_allclose(agent["in_key_rate"], x.mean(), rtol=1e-12)
    np.testing.assert_allclose(agent["in_key_rate_std"], x.std(ddof=1), rtol=1e-12)
    assert agent["iterations"] == 11.0


def test_summarize_leaves_out_nan_and_single_seed_has_no_spread(rng):
    rows = _rows(rng, changes={}, n_seeds=2)
    rows[0]["fresh_d_acc"] = math.nan  # seed 0, real set
    summary = {r["set"]: r for r in sweep.summarize(rows)}
    assert summary["real"]["fresh_d_acc"] == rows[4]["fresh_d_acc"]
    assert math.isnan(summary["real"]["fresh_d_acc_std"])


@pytest.mark.parametrize("measure", list(sweep.BETTER))
def test_paired_changes_beat_only_beyond_the_seed_spread(rng, measure):
    sign = sweep.BETTER[measure]
    clear = sweep.paired_changes(_rows(rng, changes={measure: 0.2 * sign}))
    small = sweep.paired_changes(_rows(rng, changes={measure: 0.001 * sign}, noise=0.05))
    wrong = sweep.paired_changes(_rows(rng, changes={measure: -0.2 * sign}))
    for changes, beats in ((clear, True), (small, False), (wrong, False)):
        c = next(c for c in changes if c["measure"] == measure)
        assert c["beats"] is beats
        np.testing.assert_allclose(c["change"], c["after"] - c["before"], atol=1e-12)
    other = [c for c in clear if c["measure"] != measure]
    assert not any(c["beats"] for c in other)


def _with_eval_noise(rows, half_width):
    """The rows with every BETTER measure's 95 % half-width from its evaluation set to ``half_width``."""
    return [{**r, **{f"{m}_hw": half_width for m in sweep.BETTER}} for r in rows]


def test_a_change_inside_the_evaluation_noise_never_beats(rng):
    # the seeds agree to 1e-4, so the seed spread alone would call a change of 0.02 a win
    rows = _rows(rng, changes={"in_key_rate": 0.02}, noise=1e-4)
    quiet = {c["measure"]: c for c in sweep.paired_changes(_with_eval_noise(rows, 0.002))}["in_key_rate"]
    noisy = {c["measure"]: c for c in sweep.paired_changes(_with_eval_noise(rows, 0.03))}["in_key_rate"]
    unknown = {c["measure"]: c for c in sweep.paired_changes(rows)}["in_key_rate"]
    assert quiet["beats"] and unknown["beats"]
    assert not noisy["beats"]
    # one seed's change is two evaluations: their half-widths in quadrature
    assert noisy["eval_noise"] == pytest.approx(0.03 * math.sqrt(2))
    assert noisy["margin"] == pytest.approx(math.hypot(noisy["spread"], noisy["eval_noise"]))
    assert unknown["eval_noise"] == 0.0
    clear = sweep.paired_changes(_with_eval_noise(_rows(rng, changes={"in_key_rate": 0.2}, noise=1e-4), 0.03))
    assert {c["measure"]: c for c in clear}["in_key_rate"]["beats"]
    text = sweep.results_markdown(_with_eval_noise(rows, 0.03))
    assert "| evaluation noise |" in text and "| 0.042 | no |" in text


def test_mean_interval_adds_the_seed_spread_and_the_evaluation_noise():
    x = [0.5, 0.6, 0.7]
    t = 4.302652729911275  # Student's t, 2 degrees of freedom, 97.5 %
    assert sweep.mean_interval(x, [math.nan] * 3) == pytest.approx(t * 0.1 / math.sqrt(3))
    assert sweep.mean_interval(x, [0.05] * 3) == pytest.approx(math.hypot(t * 0.1 / math.sqrt(3), 0.05 / math.sqrt(3)))
    assert sweep.mean_interval([0.5], [0.04]) == pytest.approx(0.04)  # one seed: its evaluation's interval
    assert math.isnan(sweep.mean_interval([0.5], [math.nan])) and math.isnan(sweep.mean_interval([], []))
    rows = _with_eval_noise(_rows(np.random.default_rng(0), changes={}), 0.05)
    agent = next(r for r in sweep.summarize(rows) if r["set"] == "agent")
    values = [r["in_key_rate"] for r in rows if r["set"] == "agent"]
    assert agent["in_key_rate_ci"] == pytest.approx(sweep.mean_interval(values, [0.05] * 3))
    assert "in_key_rate_hw" not in agent and "in_key_rate_hw_std" not in agent


def test_toward_real_measures_are_judged_by_the_distance_to_the_real_set(rng):
    rows = _rows(rng, changes={})
    for r in rows:
        # real at 2.0; every seed's agent moves from 2.6 to 2.3 (closer), or to 1.2 (further, though lower)
        r["voice_leading"] = {"real": 2.0, "random": 6.0, "pretrained": 2.6, "agent": 2.3}[r["set"]] + 0.001 * r["seed"]
    closer = {c["measure"]: c for c in sweep.paired_changes(rows)}["voice_leading"]
    assert closer["better"] == "toward real" and closer["beats"]
    np.testing.assert_allclose(closer["change"], -0.3, atol=1e-12)
    for r in rows:
        if r["set"] == "agent":
            r["voice_leading"] = 1.2
    further = {c["measure"]: c for c in sweep.paired_changes(rows)}["voice_leading"]
    assert not further["beats"]
    no_real = sweep.paired_changes([r for r in rows if r["set"] != "real"])
    assert {c["measure"] for c in no_real} == set(sweep.BETTER)


def test_paired_changes_need_two_seeds(rng):
    changes = sweep.paired_changes(_rows(rng, changes={"in_key_rate": 0.3}, n_seeds=1))
    c = next(c for c in changes if c["measure"] == "in_key_rate")
    assert c["beats"] is False and math.isnan(c["spread"])


def test_control_changes_pair_the_agents_by_seed(rng):
    control = _rows(rng, changes={}, experiment="control")
    exp = [dict(r, experiment="exp") for r in control]
    for r in exp:
        if r["set"] == "agent":
            r["in_key_rate"] += 0.2  # each seed's agent better than the control's by the same step
    changes = {c["measure"]: c for c in sweep.control_changes(control + exp, [("exp", "control")])}
    assert set(sweep.BETTER) <= set(changes)  # and the toward-real measures the rows have
    assert changes["distinct_chord_ratio"]["better"] == "toward real"
    c = changes["in_key_rate"]
    assert (c["experiment"], c["control"], c["n_seeds"]) == ("exp", "control", 3)
    np.testing.assert_allclose(c["change"], 0.2, atol=1e-12)
    assert c["beats"] and not changes["consonant_chord_rate"]["beats"]
    assert sweep.control_changes(control + exp, [("exp", "missing")]) == []
    text = sweep.results_markdown(control + exp, controls=[("exp", "control"), ("exp", "missing")])
    assert "| exp | control | in_key_rate | higher |" in text
    assert "| exp | missing | (no seed evaluated in both) |" in text
    assert "Against a control" not in sweep.results_markdown(control + exp)


def test_target_checks_measure_each_bound(rng):
    rows = _rows(rng, changes={}, n_seeds=2)
    for r in rows:
        r.update({"real": dict(in_key_rate=0.94, distinct_chord_ratio=0.86, fresh_d_acc=0.5),
                  "random": dict(fresh_d_acc=0.97, fresh_d_full_acc=0.9),
                  "pretrained": {},
                  "agent": dict(fresh_d_acc=0.8, fresh_d_full_acc=0.6, in_key_rate=0.85, consonant_chord_rate=0.75,
                                pitch_class_overlap=0.95, distinct_chord_ratio=0.4, copy_rate=0.01)}[r["set"]])
    checks = {c["measure"]: c for c in sweep.target_checks(sweep.summarize(rows), "exp")}
    assert not checks["fresh_d_acc"]["met"] and checks["fresh_d_acc"]["gap"] == pytest.approx(0.05)
    assert checks["fresh_d_acc (random)"]["met"]
    assert checks["fresh_d_full_acc"]["met"] and checks["fresh_d_full_acc"]["gap"] == 0.0
    assert not checks["fresh_d_full_acc (random)"]["met"]
    assert checks["fresh_d_full_acc (random)"]["gap"] == pytest.approx(0.05)
    assert not checks["in_key_rate"]["met"] and checks["in_key_rate"]["gap"] == pytest.approx(0.04)
    assert checks["in_key_rate"]["value"] == pytest.approx(0.85)
    assert checks["consonant_chord_rate"]["met"] and checks["consonant_chord_rate"]["gap"] == 0.0
    assert checks["pitch_class_overlap"]["met"]
    assert not checks["distinct_chord_ratio"]["met"]
    assert checks["distinct_chord_ratio"]["goal"] == pytest.approx(0.43)
    assert checks["copy_rate"]["met"]
    with pytest.raises(MusicRLError, match="no 'agent' set"):
        sweep.target_checks(sweep.summarize([r for r in rows if r["set"] != "agent"]), "exp")


def test_results_markdown_and_files(tmp_path, rng):
    rows = _rows(rng, changes={"in_key_rate": 0.2}) + _rows(rng, changes={}, experiment="other")
    text = sweep.results_markdown(rows)
    assert "| exp | in_key_rate | higher |" in text and "| yes |" in text
    assert text.count("| other | agent |") == 1
    paths = sweep.write_results(tmp_path / "out", rows)
    assert [p.name for p in paths] == ["results.csv", "summary.csv", "results.md"]
    with open(paths[0]) as f:
        back = list(csv.DictReader(f))
    assert len(back) == len(rows)
    assert float(back[3]["in_key_rate"]) == pytest.approx(rows[3]["in_key_rate"], rel=1e-12)
    with open(paths[1]) as f:
        assert len(list(csv.DictReader(f))) == 8  # 2 experiments x 4 sets
    assert paths[2].read_text() == text
    with pytest.raises(MusicRLError, match="no evaluated runs"):
        sweep.results_markdown([])


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"no_such_field": 1}', "no_such_field"),
        ('{"batch_size": -4}', "batch_size"),
        ('{"seed": 3}', "gives the seeds"),
    ],
)
def test_bad_experiment_files_raise(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(MusicRLError, match=match) as info:
        sweep.load_experiment(path)
    assert "bad.json" in str(info.value)


def test_bad_sweep_settings_raise(tmp_path):
    exp = tmp_path / "a.json"
    exp.write_text("{}")
    with pytest.raises(MusicRLError, match="cannot read"):
        sweep.load_experiment(tmp_path / "missing.json")
    for kwargs, match in (
        ({"seeds": []}, "seeds"),
        ({"seeds": [0, 0]}, "distinct"),
        ({"seeds": [-1]}, "seeds"),
        ({"seeds": [0], "minutes": 0}, "minutes"),
    ):
        with pytest.raises(MusicRLError, match=match):
            sweep.run_sweep([exp], out=tmp_path / "out", **kwargs)
    with pytest.raises(MusicRLError, match="at least one"):
        sweep.run_sweep([], seeds=[0], out=tmp_path / "out")
    with pytest.raises(MusicRLError, match="distinct"):
        sweep.run_sweep([exp, exp], seeds=[0], out=tmp_path / "out")
    with pytest.raises(MusicRLError, match="does not exist"):
        sweep.collect(tmp_path / "nothing")


def test_tiny_sweep_end_to_end(tmp_path):
    """Train and evaluate one tiny experiment in subprocesses; a second sweep keeps the run."""
    music = tmp_path / "music"
    music.mkdir()
    rng = np.random.default_rng(7)
    for i in range(8):
        save_midi(rand_progression(rng, n_chords=12), music / f"piece{i}.mid")
    names = [item.split("=", 1)[0] for item in TINY]
    tiny = {k: v for k, v in dataclasses.asdict(config_from_overrides({}, sets=TINY)).items() if k in names}
    exp = tmp_path / "tiny.json"
    exp.write_text(json.dumps(tiny))
    out = tmp_path / "sweep"
    lines = []
    rows = sweep.run_sweep([exp], seeds=[3], out=out, minutes=None, data=music, n=12, d_epochs=1, log=lines.append)
    assert [r["set"] for r in rows] == list(sweep.SETS)
    assert all(r["experiment"] == "tiny" and r["seed"] == 3 and r["iterations"] == 2 for r in rows)
    assert 0.0 <= rows[3]["in_key_rate"] <= 1.0 and np.isfinite(rows[3]["fresh_d_acc"])
    assert np.isfinite(rows[3]["fresh_d_full_acc"]) and np.isnan(rows[0]["fresh_d_full_acc"])  # none for real
    # each run's own evaluation noise comes along
    assert rows[3]["in_key_rate_hw"] > 0 and rows[3]["fresh_d_acc_hw"] > 0
    saved = json.loads((out / "tiny" / "seed3" / "config.json").read_text())
    assert saved["seed"] == 3 and saved["batch_size"] == 8
    assert "trained and evaluated" in lines[0]
    assert (out / "results.md").is_file() and (out / "tiny" / "seed3.train.log").is_file()
    # the data set was loaded before the run, outside its time budget
    assert "8 pieces" in (out / "tiny" / "data.log").read_text()
    (out / "tiny" / "data.log").unlink()
    again = []
    kept = sweep.run_sweep([exp], seeds=[3], out=out, minutes=None, data=music, log=again.append)
    assert repr(kept) == repr(rows)  # repr: the real set's NaN equals itself
    assert again == ["tiny seed 3: evaluated already, kept"]
    assert not (out / "tiny" / "data.log").exists()  # nothing left to train: no data step
    (out / "results.md").unlink()
    code, stdout, _ = _cli(["sweep", str(exp), "--out", str(out), "--table-only"])
    assert code == 0 and "## Targets" in stdout and (out / "results.md").is_file()
    code, _, stderr = _cli(["sweep", str(exp), "--out", str(out), "--set", "batch_size=4"])
    assert code == 2 and "--set" in stderr  # settings come from the experiment files
    code, stdout, _ = _cli(["sweep", str(exp), "--out", str(out), "--table-only", "--control", "tiny=tiny"])
    assert code == 0 and "| tiny | tiny | in_key_rate | higher |" in stdout
    code, _, stderr = _cli(["sweep", str(exp), "--out", str(out), "--table-only", "--control", "tiny"])
    assert code != 0 and "EXPERIMENT=CONTROL" in stderr


EXPERIMENTS_DIR = Path(__file__).resolve().parents[2] / "experiments"
# every JSON file of experiments/ is an experiment, except the measured outputs kept under results/
EXPERIMENTS = sorted(p for p in EXPERIMENTS_DIR.rglob("*.json") if "results" not in p.relative_to(EXPERIMENTS_DIR).parts)


def test_every_experiments_folder_has_its_default():
    for folder in {p.parent for p in EXPERIMENTS}:
        assert (folder / "default.json").is_file(), folder
    # the top folder measures today's default; each folder of history/ pins an earlier one
    assert sweep.load_experiment(EXPERIMENTS_DIR / "default.json").overrides == {}
    eras = sorted((EXPERIMENTS_DIR / "history").glob("*/default.json"))
    assert eras
    for era in eras:
        assert config_from_overrides(sweep.load_experiment(era).overrides) != config_from_overrides({}), era


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: str(p.relative_to(EXPERIMENTS_DIR)))
def test_every_experiment_file_is_a_valid_config(path):
    exp = sweep.load_experiment(path)
    assert exp.name == path.stem
    # each changes something from the default it is measured against, the one of its folder
    base = sweep.load_experiment(path.parent / "default.json").overrides
    assert config_from_overrides(exp.overrides) != config_from_overrides(base) or exp.name == "default"
