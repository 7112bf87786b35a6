"""Tests of the evaluation of runs: the four sets, the table, the report, comparisons and the commands.

One tiny run (4-chord episodes, batches of 8, small models, 8 kHz audio, a
folder of random progressions of which half the pieces are held out) is
trained once per module and copied, so that the whole file stays light on
the CPU; the fresh-discriminator test runs once, with one epoch.
"""

import contextlib
import io
import json
import shutil

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from musicrl.evaluation import compare, evaluate, intervals, mgeval, report, sets, two_sample

from musicrl.music import metrics

from musicrl import plotting
from musicrl.cli import main
from musicrl.config import Config, config_from_overrides, save_config
from musicrl.errors import MusicRLError
from musicrl.music.midi import rand_progression, save_midi
from musicrl.learning.train import train

TINY = [
    "n_steps=4", "batch_size=8", "window_hop=2", "holdout_fraction=0.5",
    "sr=8000", "n_fft=400", "hop_length=200", "n_mels=16", "fmax=4000", "n_harmonics=3",
    "d_channels=4", "d_replay_capacity=16", "d_jit_compile=false", "d_predict_jit_compile=false",
    "policy_hidden=16", "policy_embed=8", "policy_jit_compile=false",
    "pretrain_steps=2", "iterations=2", "checkpoint_every=1", "sample_every=0", "n_saved_samples=1",
]
N = 12
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _cli(argv):
    """Run the command line in-process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _summary_keys():
    x = np.zeros((1, 4, 12), np.float32)
    x[0, :, [0, 4, 7]] = 1
    return list(metrics.summarize(x, reference_seqs=x))


def table_row(text, label):
    """The first table row of ``text`` whose first cell is ``label``."""
    return next(line for line in text.splitlines() if line.startswith(f"| {label} |"))


def _strict_json(path):
    def no_constant(name):
        raise AssertionError(f"{path} holds {name}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=no_constant)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny trained run 'a' and a copy 'b' of it: {name: folder}."""
    music = tmp_path_factory.mktemp("music")
    rng = np.random.default_rng(7)
    for i in range(8):
        save_midi(rand_progression(rng, n_chords=12), music / f"piece{i}.mid")
    root = tmp_path_factory.mktemp("runs")
    result = train(config_from_overrides({}, sets=TINY), data=music, out=root, name="a", progress=False,
                   handle_signals=False, log=lambda line: None)
    assert result.status == "finished" and result.iteration == 2
    shutil.copytree(root / "a", root / "b")
    return {name: root / name for name in ("a", "b")}


@pytest.fixture(scope="module")
def evaluated(runs):
    """``evaluate`` of run 'a' with every part: (exit code, stdout, stderr, metrics.json, report.md)."""
    code, out, err = _cli(["evaluate", "--run", str(runs["a"]), "--n", str(N), "--d-epochs", "1", "--d-splits", "2",
                           "--no-progress"])
    run = runs["a"]
    return code, out, err, _strict_json(run / "metrics.json"), (run / "report.md").read_text()


@pytest.fixture(scope="module")
def quick(runs):
    """``evaluate`` of the copy 'b' without the fresh D and the plots: (exit code, stdout, metrics.json)."""
    code, out, err = _cli(["evaluate", "--run", str(runs["b"]), "--n", str(N), "--no-d", "--no-plots",
                           "--no-progress"])
    assert code == 0, err
    return code, out, _strict_json(runs["b"] / "metrics.json")


# --------------------------------------------------------------------------
# the random baseline


@pytest.mark.parametrize("n_steps,lowest_pitch,n_pitches", [(4, 36, 48), (8, 48, 24), (6, 60, 12)])
def test_rand_progression_seqs_are_chords_on_the_grid(n_steps, lowest_pitch, n_pitches):
    cfg = Config(n_steps=n_steps, lowest_pitch=lowest_pitch, n_pitches=n_pitches)
    rand_seqs = sets.rand_progression_seqs(10, cfg, seed=3)
    assert rand_seqs.shape == (10, n_steps, n_pitches) and rand_seqs.dtype == np.float32
    notes = rand_seqs.sum(axis=-1)
    # a triad or a seventh chord on every step, nothing dropped by the grid
    assert ((notes >= 3) & (notes <= 4)).all()
    np.testing.assert_array_equal(rand_seqs, sets.rand_progression_seqs(10, cfg, seed=3))
    assert not np.array_equal(rand_seqs, sets.rand_progression_seqs(10, cfg, seed=4))


# --------------------------------------------------------------------------
# one row: compare_to_real


def test_compare_to_real_tells_alike_from_noise_and_copies(rng):
    cfg = Config(n_steps=8)
    real_seqs = sets.rand_progression_seqs(24, cfg, seed=1)
    alike = sets.rand_progression_seqs(24, cfg, seed=5)
    noise = (rng.random((24, 8, cfg.n_pitches)) < 0.2).astype(np.float32)
    # six of the alike pieces were "training" pieces, none of the noise
    train_seqs = [*alike[:6], *sets.rand_progression_seqs(10, cfg, seed=2)]
    kwargs = dict(train_seqs=train_seqs, d_test=False, seed=0)
    same = compare.compare_to_real(alike, real_seqs, cfg, **kwargs)
    diff = compare.compare_to_real(noise, real_seqs, cfg, **kwargs)
    assert list(same["row"]) == list(compare.HEADLINE_COLUMNS) + _summary_keys()
    assert diff["row"]["seq_clf_acc"] > 0.9
    assert same["row"]["seq_clf_acc"] < diff["row"]["seq_clf_acc"] - 0.2
    assert same["row"]["mgeval_oa"] > diff["row"]["mgeval_oa"]
    assert same["row"]["mgeval_kl"] < diff["row"]["mgeval_kl"]
    assert set(same["mgeval"]) == set(mgeval.PIECE_FEATURES)
    assert same["row"]["copy_rate"] == pytest.approx(6 / 24) and diff["row"]["copy_rate"] == 0.0
    assert same["copy_run_length"] == 8
    assert np.isnan(same["row"]["fresh_d_acc"]) and same["d_test"] == {}
    assert any("not run" in note for note in same["notes"])


def test_set_measure_intervals_recompute_every_measure_as_summarize_does():
    cfg = Config(n_steps=8)
    real_seqs = sets.rand_progression_seqs(12, cfg, seed=1)
    # a set and a reference of one piece repeated each: every resample is the same, so each interval is
    # summarize's value
    same = np.repeat(sets.rand_progression_seqs(1, cfg, seed=3), 10, axis=0)
    iv = compare.set_measure_intervals(same, real_seqs[:1].repeat(5, axis=0), lowest_pitch=cfg.lowest_pitch,
                                       n_resamples=20, rng=np.random.default_rng(0))
    summary = metrics.summarize(same, lowest_pitch=cfg.lowest_pitch, reference_seqs=real_seqs[:1])
    no_interval = {"distinct_chord_ratio_set", "distinct_chords_common"}
    assert set(iv) == set(summary) - no_interval
    for name, (low, high) in iv.items():
        if np.isnan(summary[name]):
            assert np.isnan(low) and np.isnan(high), name
        else:
            assert low == pytest.approx(summary[name], abs=1e-9) and high == pytest.approx(summary[name], abs=1e-9)
    # a varied set: intervals with width that hold the value, and narrower with more pieces
    few, many = (sets.rand_progression_seqs(k, cfg, seed=4) for k in (20, 320))
    widths = []
    for gen in (few, many):
        iv = compare.set_measure_intervals(gen, real_seqs, lowest_pitch=cfg.lowest_pitch, n_resamples=200,
                                           rng=np.random.default_rng(0))
        value = metrics.summarize(gen, lowest_pitch=cfg.lowest_pitch, reference_seqs=real_seqs)
        for name in ("in_key_rate", "pitch_class_overlap", "scale_degree_overlap", "distinct_chord_ratio",
                     "voice_leading"):
            assert iv[name][0] <= value[name] <= iv[name][1], name
        widths.append(iv["in_key_rate"][1] - iv["in_key_rate"][0])
    assert 0 < widths[1] < widths[0] / 2
    # the reference's pieces are drawn too: one piece cut in twelve windows has no such noise
    for measure in ("pitch_class_overlap", "scale_degree_overlap"):
        width = {}
        for name, groups in (("per clip", None), ("one piece", np.zeros(12))):
            low, high = compare.set_measure_intervals(many, real_seqs, lowest_pitch=cfg.lowest_pitch,
                                                      real_groups=groups, n_resamples=200,
                                                      rng=np.random.default_rng(0))[measure]
            width[name] = high - low
        assert width["per clip"] > width["one piece"] > 0, measure
    # a reference every evaluation shares is not drawn again: the overlaps' intervals narrow, the rest is the same
    drawn, fixed = (compare.set_measure_intervals(many, real_seqs, lowest_pitch=cfg.lowest_pitch, n_resamples=200,
                                                  resample_reference=again, rng=np.random.default_rng(0))
                    for again in (True, False))
    for measure in ("pitch_class_overlap", "scale_degree_overlap"):
        assert fixed[measure][0] <= metrics.summarize(many, lowest_pitch=cfg.lowest_pitch,
                                                      reference_seqs=real_seqs)[measure] <= fixed[measure][1]
        assert 0 < fixed[measure][1] - fixed[measure][0] < drawn[measure][1] - drawn[measure][0], measure
    assert fixed["in_key_rate"] == drawn["in_key_rate"] and fixed["voice_leading"] == drawn["voice_leading"]
    with pytest.raises(MusicRLError, match="real_groups"):
        compare.set_measure_intervals(many, real_seqs, lowest_pitch=cfg.lowest_pitch, real_groups=np.zeros(3),
                                      n_resamples=20, rng=np.random.default_rng(0))


def _cadence_piece(n_steps, lowest_pitch):
    """C major, I-IV-V-I over and over: one key throughout, every segment alike, ends on C-E-G."""
    chords = [(60, 64, 67), (60, 65, 69), (59, 62, 67), (60, 64, 67)]
    seq = np.zeros((n_steps, 48), dtype=np.float32)
    for t in range(n_steps):
        seq[t, [p - lowest_pitch for p in chords[t % 4]]] = 1
    return seq


@pytest.mark.parametrize("n_steps", [8, 16, 64])
def test_long_range_measures_of_hand_built_pieces(n_steps):
    lp = 36
    cadence = _cadence_piece(n_steps, lp)
    # the same piece ending on the dominant, its second half moved to F sharp major, its last quarter moved
    # there (the whole piece still in C), and a silent first half
    on_dominant = cadence.copy()
    on_dominant[-1] = cadence[2]
    moved = cadence.copy()
    moved[n_steps // 2:] = np.roll(cadence[n_steps // 2:], 6, axis=1)
    drifting = cadence.copy()
    drifting[-n_steps // 4:] = np.roll(cadence[-n_steps // 4:], 6, axis=1)
    silent_half = cadence.copy()
    silent_half[: n_steps // 2] = 0
    seqs = np.stack([cadence, on_dominant, moved, silent_half, drifting])
    got = compare.long_range_measures(seqs, lowest_pitch=lp, n_resamples=50, rng=np.random.default_rng(0))
    assert tuple(got) == compare.LONG_RANGE
    per_piece = {
        "key_consistency": metrics.key_consistency(seqs, lowest_pitch=lp),
        "ends_on_tonic": metrics.ends_on_tonic(seqs, lowest_pitch=lp),
        "self_similarity": metrics.self_similarity(seqs),
    }
    assert per_piece["key_consistency"][0] == 1 and per_piece["key_consistency"][2] == 0
    assert np.isnan(per_piece["key_consistency"][3])  # a half without notes has no key: left out, not 0
    assert per_piece["ends_on_tonic"][[0, 1]].tolist() == [1, 0]
    for name, values in per_piece.items():
        assert got[name][0] == pytest.approx(np.nanmean(values), abs=1e-12), name
    # in C, the drifting piece's close is out of its key; the others are in their keys throughout
    assert got["in_key_first_quarter"][0] == pytest.approx(1.0)
    by_quarter = metrics.in_key_by_position(seqs, lowest_pitch=lp, n_parts=4)
    assert by_quarter[4, 0] == 1.0 and by_quarter[4, -1] < 0.5
    assert got["in_key_last_quarter"][0] == pytest.approx(np.nanmean(by_quarter[:, -1]))
    assert got["in_key_last_quarter"][0] < 1.0
    for name, (value, low, high) in got.items():
        assert low <= value + 1e-12 and value <= high + 1e-12, name
    # four different clips cut from one piece are one draw: every resample holds them all, so the interval is
    # the point; as four pieces, they are drawn apart
    clips = np.stack([cadence, moved, cadence, moved])
    kwargs = dict(lowest_pitch=lp, n_resamples=50)
    one = compare.long_range_measures(clips, groups=np.zeros(4), rng=np.random.default_rng(0), **kwargs)
    four = compare.long_range_measures(clips, rng=np.random.default_rng(0), **kwargs)
    for name, (value, low, high) in one.items():
        assert low == pytest.approx(value) and high == pytest.approx(value), name
        assert four[name][0] == pytest.approx(value), name
    assert four["key_consistency"][2] - four["key_consistency"][1] > 0.5
    assert compare.long_range_measures(cadence[None], **kwargs, rng=np.random.default_rng(0))["self_similarity"][0] \
        == pytest.approx(1.0)


def test_long_range_measures_reject_short_pieces_and_bad_groups():
    seqs = np.stack([_cadence_piece(8, 36)] * 3)
    with pytest.raises(MusicRLError, match="at least 8 steps"):
        compare.long_range_measures(seqs[:, :6], lowest_pitch=36, rng=np.random.default_rng(0))
    with pytest.raises(MusicRLError, match="groups"):
        compare.long_range_measures(seqs, lowest_pitch=36, groups=np.zeros(2), rng=np.random.default_rng(0))
    with pytest.raises(MusicRLError, match="seqs"):
        compare.long_range_measures(np.full((2, 8, 48), np.nan), lowest_pitch=36, rng=np.random.default_rng(0))


def test_compare_to_real_gives_every_column_an_interval(rng):
    cfg = Config(n_steps=8)
    real_seqs = sets.rand_progression_seqs(24, cfg, seed=1)
    gen = sets.rand_progression_seqs(24, cfg, seed=5)
    res = compare.compare_to_real(gen, real_seqs, cfg, train_seqs=list(gen[:6]), d_test=False, n_resamples=50,
                                  seed=0)
    assert list(res["intervals"]) == list(res["row"])
    low, high = res["intervals"]["seq_clf_acc"]
    n = 2 * int(res["seq_test"]["n_per_class"])
    assert (low, high) == pytest.approx(intervals.wilson_interval(res["row"]["seq_clf_acc"] * n, n))
    assert res["intervals"]["copy_rate"] == pytest.approx(intervals.wilson_interval(6, 24))
    assert np.isnan(res["intervals"]["mgeval_kl"]).all() and np.isnan(res["intervals"]["fresh_d_acc"]).all()
    assert res["intervals"]["in_key_rate"][0] <= res["row"]["in_key_rate"] <= res["intervals"]["in_key_rate"][1]
    # the intervals' draws come last: the row does not depend on them
    other = compare.compare_to_real(gen, real_seqs, cfg, train_seqs=list(gen[:6]), d_test=False, n_resamples=80,
                                    seed=0)
    assert repr(other["row"]) == repr(res["row"])  # repr: NaN equals itself
    assert repr(other["intervals"]) != repr(res["intervals"])


def test_windows_of_one_piece_count_once_in_every_interval():
    cfg = Config(n_steps=8)
    real_seqs = sets.rand_progression_seqs(12, cfg, seed=1)
    # 6 pieces, each seen 20 times (as overlapping windows are nearly): 6 draws of the source, not 120
    gen = np.repeat(sets.rand_progression_seqs(6, cfg, seed=4), 20, axis=0)
    kwargs = dict(lowest_pitch=cfg.lowest_pitch, n_resamples=200)
    free = compare.set_measure_intervals(gen, real_seqs, rng=np.random.default_rng(0), **kwargs)
    grouped = compare.set_measure_intervals(gen, real_seqs, gen_groups=np.repeat(np.arange(6), 20),
                                            rng=np.random.default_rng(0), **kwargs)
    width = {name: iv["in_key_rate"][1] - iv["in_key_rate"][0] for name, iv in (("free", free), ("grouped", grouped))}
    assert width["grouped"] > 2 * width["free"]
    result = {"row": {"seq_clf_acc": 0.7}, "seq_test": {"n_per_class": 200.0}, "d_test": {}, "d_full_test": {}}
    wide = compare.row_intervals(result, {}, n_real_pieces=20, n_gen_pieces=400)["seq_clf_acc"]
    narrow = compare.row_intervals(result, {}, n_real_pieces=400, n_gen_pieces=400)["seq_clf_acc"]
    assert narrow == pytest.approx(intervals.wilson_interval(0.7 * 400, 400))
    # 20 real pieces and 200 generated clips: 4 / (1/20 + 1/200) = 72.7 clips' worth
    assert wide == pytest.approx(intervals.wilson_interval(0.7 * 73, 73))


def test_compare_to_real_with_too_few_clips_leaves_tests_out(rng):
    cfg = Config(n_steps=4)
    one = sets.rand_progression_seqs(1, cfg, seed=0)
    res = compare.compare_to_real(one, one, cfg, d_test=True, seed=0)
    assert np.isnan(res["row"]["seq_clf_acc"]) and np.isnan(res["row"]["fresh_d_acc"])
    assert np.isnan(res["row"]["copy_rate"])
    assert sum("too few" in note for note in res["notes"]) == 2
    assert res["row"]["pitch_class_overlap"] == pytest.approx(1.0)
    assert res["row"]["scale_degree_overlap"] == pytest.approx(1.0)


def test_compare_to_real_rejects_bad_sets():
    cfg = Config(n_steps=4)
    good = sets.rand_progression_seqs(4, cfg, seed=0)
    with pytest.raises(MusicRLError, match="pitch"):
        compare.compare_to_real(good[..., :24], good, cfg, d_test=False)
    with pytest.raises(MusicRLError, match="d_epochs"):
        compare.compare_to_real(good, good, cfg, d_epochs=0)


def test_compare_to_real_rejects_a_set_of_the_wrong_length_before_synthesis(monkeypatch):
    cfg = Config(n_steps=4)
    good = sets.rand_progression_seqs(4, cfg, seed=0)
    longer = sets.rand_progression_seqs(4, Config(n_steps=8), seed=0)

    def no_synthesis(*args, **kwargs):
        raise AssertionError("synthesised a set that D cannot read")

    monkeypatch.setattr("musicrl.audio.mel.seq_to_mel_by_width", no_synthesis)
    with pytest.raises(MusicRLError, match="gen_seqs must have 4 steps"):
        compare.compare_to_real(longer, good, cfg, d_test=True, seed=0)


def test_grouped_folds_stop_a_classifier_from_recognising_pieces(rng):
    # 12 real and 12 generated "pieces" from one distribution, 6 near-identical windows each:
    # only the identity of a piece tells the sets apart
    centers = rng.normal(size=(24, 30))
    x = np.repeat(centers, 6, axis=0) + 0.01 * rng.normal(size=(144, 30))
    piece = np.repeat(np.arange(24), 6)
    real_x, gen_x = x[piece < 12], x[piece >= 12]
    leaky = two_sample.classifier_two_sample_test(real_x, gen_x, seed=0)
    fair = two_sample.classifier_two_sample_test(real_x, gen_x, seed=0, real_groups=piece[piece < 12],
                                               gen_groups=piece[piece >= 12])
    assert leaky["accuracy"] > 0.9
    assert fair["accuracy"] < 0.75
    with pytest.raises(MusicRLError, match="at least 5 groups"):
        two_sample.classifier_two_sample_test(real_x, gen_x, real_groups=piece[piece < 12] % 3)
    with pytest.raises(MusicRLError, match="one label per clip"):
        two_sample.classifier_two_sample_test(real_x, gen_x, real_groups=piece[:5])


# --------------------------------------------------------------------------
# a whole run


def test_evaluate_writes_report_metrics_and_plots(runs, evaluated):
    code, out, err, _, report_md = evaluated
    assert code == 0, err
    run = runs["a"]
    for name in (report.REPORT_FILE, report.EVALUATION_FILE) + report.PLOT_FILES:
        assert (run / name).is_file(), name
    for name in report.PLOT_FILES:
        assert (run / name).read_bytes()[:8] == PNG_MAGIC
        assert f"]({name})" in report_md
    assert "(1000 resamples)" in report_md and " [" in table_row(report_md, "agent")
    # the printed table is the one of the report, rows in order
    table = report.format_table(report.load_evaluation(run))
    assert table in out and table in report_md
    rows = [line for line in table.splitlines()[2:]]
    assert [r.split("|")[1].strip() for r in rows] == [
        "real (held-out)", "random progressions", "pretrained only", "agent"]
    assert f"| {N} |" in rows[1]
    for column in compare.HEADLINE_COLUMNS:
        assert f"- `{column}`: " in report_md
    # what the discriminator trained on the training pieces learned from
    assert f"random {4 * N}, pretrained {4 * N}, agent {4 * N} clips" in report_md


def test_evaluate_metrics_json_has_every_measure_in_range(runs, evaluated):
    _, _, _, ev, _ = evaluated
    assert ev["sets"] == list(report.EVAL_SETS)
    assert ev["columns"] == list(compare.HEADLINE_COLUMNS) + _summary_keys()
    assert ev["checkpoint"] == "iter-0000002" and ev["iteration"] == 2
    assert ev["pretrained_checkpoint"] == "pretrained" and ev["pretrain_steps"] == 2
    assert ev["n"] == N and ev["sizes"]["random"] == ev["sizes"]["agent"] == N
    data = ev["data"]
    assert data["split"] == "heldout"
    # 8 pieces of 12 chords, half held out by name: 5 windows of 4 steps per piece
    assert data["reference_pieces"] >= 4 and data["real_folds"] == 2
    assert data["reference_windows"] == ev["sizes"]["real"] == 5 * data["reference_pieces"]
    assert ev["settings"]["d_epochs"] == 1 and ev["settings"]["copy_run_length"] == 4
    unit = ["fresh_d_acc", "fresh_d_full_acc", "seq_clf_acc", "mgeval_oa", "copy_rate", "pitch_class_overlap",
            "scale_degree_overlap", "empty_step_rate", "in_key_rate", "consonant_chord_rate", "repetition_rate",
            "top3_pitch_share"]
    # the discriminator trained on the training pieces: their 5 windows each against 4 * N clips of a set
    train_windows = 5 * len(json.loads((runs["a"] / "run.json").read_text())["data"]["train_names"])
    assert ev["d_train_sizes"] == {"real": train_windows, "random": 4 * N, "pretrained": 4 * N, "agent": 4 * N}
    assert ev["table"]["real"]["fresh_d_full_acc"] is None and ev["tests"]["real"]["fresh_d_full"] == {}
    for name in ("random", "pretrained", "agent"):
        test = ev["tests"][name]["fresh_d_full"]
        assert test["n_train_per_class"] == train_windows
        assert test["n_test_per_class"] == min(data["reference_windows"], N)
    for name in ev["sets"]:
        row = ev["table"][name]
        assert set(row) == set(ev["columns"])
        for column in unit[:1] + unit[2:] if name == "real" else unit:
            assert row[column] is not None and 0.0 <= row[column] <= 1.0, (name, column, row[column])
        assert row["mgeval_kl"] >= 0.0
        assert 1.0 <= row["polyphony"] <= 12.0
        assert set(ev["mgeval"][name]) == set(mgeval.PIECE_FEATURES)
        assert ev["tests"][name]["fresh_d"]["n_splits"] == 2
    assert ev["seconds"]["total"] > 0
    assert ev["settings"]["bootstrap_resamples"] == 1000 and ev["settings"]["interval_level"] == 0.95
    for name in ev["sets"]:
        assert set(ev["intervals"][name]) == set(ev["columns"])
        for column, (low, high) in ev["intervals"][name].items():
            value = ev["table"][name][column]
            if low is None:
                assert column.startswith("mgeval") or column.startswith("distinct_chords") or column in (
                    "distinct_chord_ratio_set", "copy_rate") or value is None, (name, column)
                continue
            assert low <= high, (name, column)
            if column in ("fresh_d_acc", "fresh_d_full_acc", "seq_clf_acc", "copy_rate"):
                assert 0.0 <= low <= value <= high <= 1.0, (name, column)


def test_the_reference_is_every_heldout_window_and_the_real_folds_deal_each_piece_once(runs, evaluated):
    data = evaluated[3]["data"]
    heldout = json.loads((runs["a"] / "run.json").read_text())["data"]["heldout_names"]
    assert data["reference_names"] == heldout and data["reference_pieces"] == len(heldout)
    # every window of the held-out pieces, not a draw of them: 5 windows of 4 steps per piece of 12 chords
    assert data["reference_windows"] == 5 * len(heldout)
    folds = [set(names) for names in data["fold_names"]]
    assert len(folds) == data["real_folds"] and all(len(f) >= 2 for f in folds)
    assert set().union(*folds) == set(heldout) and sum(len(f) for f in folds) == len(heldout)


def test_the_training_pieces_critic_hears_four_clips_a_piece_up_to_d_train_n(runs, monkeypatch):
    train_windows = 5 * len(json.loads((runs["a"] / "run.json").read_text())["data"]["train_names"])
    monkeypatch.setattr(sets, "D_TRAIN_N", 20)
    sizes = {k: len(v) for k, v in sets.load_eval_sets(runs["a"], n=N, seed=0).d_train.items()}
    assert sizes == {"real": min(20, train_windows), "random": 20, "pretrained": 20, "agent": 20}
    sizes = {k: len(v) for k, v in sets.load_eval_sets(runs["a"], n=4, seed=0).d_train.items()}
    assert sizes == {"real": min(16, train_windows), "random": 16, "pretrained": 16, "agent": 16}


def test_the_reference_is_the_same_in_every_draw_and_only_the_generated_sets_move(runs):
    a, b = (sets.load_eval_sets(runs["a"], n=N, seed=seed, n_d_train=0) for seed in (0, 1))
    np.testing.assert_array_equal(a.reference, b.reference)
    np.testing.assert_array_equal(a.groups["reference"], b.groups["reference"])
    assert not np.array_equal(a.sets["agent"], b.sets["agent"])
    for ev in (a, b):
        # each fold holds whole pieces
        for piece in np.unique(ev.groups["reference"]):
            assert np.unique(ev.folds[ev.groups["reference"] == piece]).size == 1


def test_the_real_row_is_the_mean_of_its_folds_each_against_the_others(runs, evaluated):
    ev = sets.load_eval_sets(runs["a"], n=N, seed=0, n_d_train=0)
    cfg, row = ev.cfg, evaluated[3]["table"]["real"]
    per_fold = []
    for inside in sets.fold_masks(ev):
        per_fold.append(metrics.summarize(ev.reference[inside], lowest_pitch=cfg.lowest_pitch,
                                          reference_seqs=ev.reference[~inside]))
    assert len(per_fold) == 2
    for column in ("in_key_rate", "pitch_class_overlap", "scale_degree_overlap", "voice_leading"):
        assert row[column] == pytest.approx(np.mean([f[column] for f in per_fold]), abs=1e-9), column
    # the overlap of a fold with the rest, not of the held-out pieces with themselves (which is 1)
    assert row["pitch_class_overlap"] < 1.0


@pytest.mark.parametrize("n_windows, n_folds, largest_fold", [
    ([30, 1, 1, 1, 1, 1, 1, 1, 1], 4, 31),  # one long piece: alone in a fold, the real row's tests could not run
    ([40, 38, 2, 2, 1, 1, 9], 3, 41),  # the two long pieces in separate folds
    ([9, 1, 1, 1, 8, 8, 8, 8], 2, 24),  # greedy, longest first: 24 and 20 (the best split is 22 and 22)
])
def test_the_real_folds_hold_two_pieces_each_and_about_equal_windows(n_windows, n_folds, largest_fold):
    for seed in range(20):
        fold = sets._deal_pieces(n_windows, n_folds, np.random.default_rng(seed))
        assert fold.shape == (len(n_windows),)
        assert np.bincount(fold, minlength=n_folds).min() >= 2
        per_fold = np.bincount(fold, weights=n_windows, minlength=n_folds)
        assert per_fold.max() == largest_fold and per_fold.max() - per_fold.min() <= max(n_windows)
    with pytest.raises(MusicRLError, match="need 8 pieces"):
        sets._deal_pieces([3, 3, 3], 4, np.random.default_rng(0))


def test_a_grouped_side_cut_down_keeps_every_piece_it_can():
    cfg = Config(n_steps=8)
    # 44 real windows, 40 of them from one piece, against 8 generated clips: the real side is cut to 8
    real_seqs = sets.rand_progression_seqs(44, cfg, seed=1)
    gen_seqs = sets.rand_progression_seqs(8, cfg, seed=2)
    real_groups = np.concatenate([np.zeros(40), np.arange(1, 5)])
    for seed in range(10):
        test = two_sample.seq_two_sample_test(real_seqs, gen_seqs, lowest_pitch=cfg.lowest_pitch, n_splits=5,
                                              seed=seed, real_groups=real_groups)
        assert 0 <= test["accuracy"] <= 1


@pytest.mark.parametrize("real_groups, gen_groups, expected", [
    (None, None, 6),  # clips of the smaller set
    (np.repeat([0, 1], 5), None, 2),  # ten real clips of two pieces: two folds
    (None, np.repeat([3, 4, 5], 2), 3),
    (np.arange(10), np.zeros(6), 1),
])
def test_fewest_pieces_counts_pieces_where_grouped(real_groups, gen_groups, expected):
    real, gen = np.zeros((10, 4)), np.zeros((6, 4))
    assert two_sample.fewest_pieces(real, gen, real_groups=real_groups, gen_groups=gen_groups) == expected


def test_mean_over_folds_averages_numbers_and_keeps_the_rest():
    folds = [
        {"row": {"a": 0.2, "b": float("nan")}, "intervals": {"a": (0.1, 0.3)}, "seq_test": {"n_splits": 2},
         "copy_run_length": 4, "notes": ["x", "y"]},
        {"row": {"a": 0.4, "b": 1.0}, "intervals": {"a": (0.3, 0.7)}, "seq_test": {"n_splits": 3},
         "copy_run_length": 4, "notes": ["y", "z"]},
    ]
    mean = sets.mean_over_folds(folds)
    assert mean["row"] == {"a": pytest.approx(0.3), "b": 1.0}
    assert mean["intervals"]["a"] == (pytest.approx(0.2), pytest.approx(0.5))
    assert mean["seq_test"] == {"n_splits": 2} and mean["copy_run_length"] == 4
    assert mean["notes"] == ["x", "y", "z"]
    assert np.isnan(sets.mean_over_folds([float("nan"), None]))
    with pytest.raises(MusicRLError, match="at least one"):
        sets.mean_over_folds([])


def test_evaluate_without_d_and_plots(runs, evaluated, quick):
    ev_a, ev_b = evaluated[3], quick[2]
    fresh = ("fresh_d_acc", "fresh_d_full_acc")
    assert all(ev_b["table"][s][c] is None for s in ev_b["sets"] for c in fresh)
    assert ev_b["d_train_sizes"] == {}
    assert not any((runs["b"] / f).exists() for f in report.PLOT_FILES)
    assert all(f"]({f})" not in (runs["b"] / "report.md").read_text() for f in report.PLOT_FILES)
    # a copy of the run with the same seed: the same pieces, so the same numbers but for the D test
    for s in ev_a["sets"]:
        assert {k: v for k, v in ev_a["table"][s].items() if k not in fresh} == {
            k: v for k, v in ev_b["table"][s].items() if k not in fresh}


def test_compare_command_reads_two_evaluated_runs(runs, evaluated, quick, tmp_path):
    code, out, err = _cli(["compare", str(runs["a"]), str(runs["b"] / "metrics.json"), "--out", str(tmp_path)])
    assert code == 0, err
    a, b = report.load_evaluation(runs["a"]), report.load_evaluation(runs["b"])
    table = report.comparison_table([a, b])
    assert table in out and table in (tmp_path / "compare.md").read_text()
    header = table.splitlines()[0]
    assert header.index("real: a") < header.index("real: b") < header.index("random: a")
    assert header.index("agent: a") < header.index("agent: b")
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")[1:]]
            for line in table.splitlines()[2:]}
    assert list(rows)[:4] == ["n", "fresh_d_acc", "fresh_d_full_acc", "seq_clf_acc"]
    # run a had the fresh Ds, run b was evaluated without them (columns: real a, real b, random a, ...)
    assert rows["fresh_d_acc"][0] != "n/a" and rows["fresh_d_acc"][1] == "n/a"
    assert rows["fresh_d_full_acc"][2] != "n/a" and rows["fresh_d_full_acc"][3] == "n/a"
    assert rows["seq_clf_acc"][0] == rows["seq_clf_acc"][1] != "n/a"


def test_evaluate_several_runs_prints_and_writes_the_comparison(runs, evaluated, tmp_path, monkeypatch):
    # the evaluation itself is tested above; here only what the command does with several runs
    calls = []

    def fake_evaluate_run(run, **kwargs):
        calls.append((run, kwargs))
        ev = report.load_evaluation(runs["a"])
        return {**ev, "name": f"run{len(calls)}"}

    monkeypatch.setattr(evaluate, "evaluate_run", fake_evaluate_run)
    code, out, err = _cli(["evaluate", "--run", "x", "--run", "y", "--n", "7", "--seed", "3", "--no-d",
                           "--out", str(tmp_path / "cmp")])
    assert code == 0, err
    assert [c[0] for c in calls] == ["x", "y"]
    assert calls[0][1] == dict(n=7, seed=3, d_test=False, d_epochs=20, d_splits=3, n_d_train=None, data_dir=None,
                               n_resamples=1000, plots=True, progress=True)
    assert out.count("| set | n | fresh_d_acc") == 2
    text = (tmp_path / "cmp" / report.COMPARISON_FILE).read_text()
    assert "real: run1 | real: run2" in text and "real: run1 | real: run2" in out


def test_a_moved_run_evaluates_against_the_data_folder_given(runs, quick, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(runs["b"], moved)
    info = json.loads((moved / "run.json").read_text())
    music = info["data"]["root"]
    info["data"]["root"] = str(tmp_path / "gone")
    (moved / "run.json").write_text(json.dumps(info))
    args = ["evaluate", "--run", str(moved), "--n", str(N), "--no-d", "--no-plots", "--no-progress"]
    code, out, err = _cli(args)
    assert code == 2 and "gone" in err and "--data" in err, err

    here = tmp_path / "music"
    shutil.copytree(music, here)
    code, out, err = _cli(args + ["--data", str(here)])
    assert code == 0, err
    ev = _strict_json(moved / "metrics.json")
    # the same pieces in another folder: the numbers of the run where it was trained
    assert ev["table"] == quick[2]["table"]
    assert not any("differ" in note for note in ev["notes"])

    # other pieces: still evaluated, with a note that says so
    sorted(here.glob("*.mid"))[0].unlink()
    code, out, err = _cli(args + ["--data", str(here)])
    assert code == 0, err
    notes = _strict_json(moved / "metrics.json")["notes"]
    assert any("differ from those the run was split with" in note for note in notes)


# --------------------------------------------------------------------------
# bad input: one clear line, exit code 2


def _no_checkpoint(tmp_path):
    run = tmp_path / "fresh"
    run.mkdir()
    save_config(config_from_overrides({}, sets=TINY), run / "config.json")
    return run


def _not_a_run(tmp_path):
    (tmp_path / "stuff").mkdir()
    return tmp_path / "stuff"


@pytest.mark.parametrize(
    "make,extra,match",
    [
        (lambda tmp: tmp / "missing", [], "does not exist"),
        (_not_a_run, [], "is not a run folder"),
        (_no_checkpoint, [], "has no checkpoint"),
        (_no_checkpoint, ["--n", "1"], "n must be an int >= 2"),
    ],
    ids=["missing", "not-a-run", "no-checkpoint", "bad-n"],
)
def test_evaluate_bad_runs_fail_with_one_line(tmp_path, make, extra, match):
    code, out, err = _cli(["evaluate", "--run", str(make(tmp_path)), "--no-progress"] + extra)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], err


@pytest.mark.parametrize(
    "content,match",
    [(None, "no evaluation in"), ("{not json", "is not valid JSON"), ('{"table": 1}', "is not an evaluation")],
    ids=["none", "corrupt", "foreign"],
)
def test_compare_without_evaluation_fails_with_one_line(tmp_path, content, match):
    run = _no_checkpoint(tmp_path)
    if content is not None:
        (run / "metrics.json").write_text(content)
    code, _, err = _cli(["compare", str(run)])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], err


# --------------------------------------------------------------------------
# tables


def _fake_evaluation(name, table, sets=("real", "agent")):
    columns = list(next(iter(table.values())))
    return {"name": name, "sets": list(sets), "columns": columns, "table": table,
            "sizes": {s: 7 for s in sets}, "labels": {s: report.SET_LABELS[s] for s in sets}}


@pytest.mark.parametrize(
    "value,text",
    [(None, "n/a"), (float("nan"), "n/a"), (float("inf"), "n/a"), (3.0, "3"), (0.12345, "0.123"),
     (123.456, "123.5"), ("x", "n/a")],
)
def test_format_value(value, text):
    assert report.format_value(value) == text


def test_tables_show_missing_values_and_missing_sets():
    one = _fake_evaluation("one", {"real": {"acc": 0.5, "kl": None}, "agent": {"acc": 0.75, "kl": 0.25}})
    two = _fake_evaluation("two", {"real": {"acc": 0.5, "kl": 0.0}}, sets=("real",))
    table = report.format_table(one).splitlines()
    assert table[0] == "| set | n | acc | kl |"
    assert table[2] == "| real (held-out) | 7 | 0.500 | n/a |"
    assert table[3] == "| agent | 7 | 0.750 | 0.250 |"
    side = report.comparison_table([one, two]).splitlines()
    assert side[0] == "| measure | real: one | real: two | agent: one | agent: two |"
    assert side[2] == "| n | 7 | 7 | 7 | - |"
    assert side[3] == "| acc | 0.500 | 0.500 | 0.750 | - |"
    same_name = report.comparison_table([one, one]).splitlines()[0]
    assert "real: one (1)" in same_name and "real: one (2)" in same_name
    with pytest.raises(MusicRLError, match="not an evaluation"):
        report.format_table({"table": {}})
    with pytest.raises(MusicRLError, match="2 labels"):
        report.comparison_table([one], labels=["x", "y"])


# --------------------------------------------------------------------------
# plots of the report


def test_feature_hists_one_chart_per_scalar_feature(rng):
    cfg = Config(n_steps=8)
    feats = {
        "real": mgeval.piece_features(sets.rand_progression_seqs(6, cfg, seed=0)),
        "gen": mgeval.piece_features((rng.random((5, 8, 48)) < 0.1).astype(np.float32)),
    }
    fig = plotting.plot_feature_hists(feats, ncols=3)
    scalar = [k for k, v in feats["real"].items() if v.ndim == 1]
    shown = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in shown] == scalar
    assert [t.get_text() for t in shown[0].get_legend().get_texts()] == ["real", "gen"]
    with pytest.raises(MusicRLError, match="no feature"):
        plotting.plot_feature_hists({"a": {"x": np.ones(3)}, "b": {"y": np.ones(3)}})


def test_pitch_class_hists_draw_one_bar_per_set_and_class():
    hists = {"real": np.full(12, 1 / 12), "gen": np.eye(12)[0]}
    ax = plotting.plot_pitch_class_hists(hists)
    heights = [p.get_height() for p in ax.patches]
    assert len(heights) == 24 and heights[12] == 1.0 and sum(heights[13:]) == 0.0
    assert [t.get_text() for t in ax.get_xticklabels()][:3] == ["C", "C#", "D"]
    with pytest.raises(MusicRLError, match=r"shape \(12,\)"):
        plotting.plot_pitch_class_hists({"bad": np.ones(11)})


def test_critic_comparison_trains_each_architecture_on_the_same_sets(runs):
    ev = sets.load_eval_sets(runs["a"], n=N, seed=0)
    acc = evaluate.critic_comparison(ev, archs=("cnn", "seq"), sets=("real", "random", "agent", "missing"),
                                     epochs=1, d_splits=2)
    assert list(acc) == ["cnn", "seq"]
    assert all(list(row) == ["real", "random", "agent"] for row in acc.values())
    assert all(0.0 <= a <= 1.0 for row in acc.values() for a in row.values())
    again = evaluate.critic_comparison(ev, archs=("seq",), sets=("random",), epochs=1, d_splits=2)
    assert again["seq"]["random"] == acc["seq"]["random"]  # same seed, same folds and weights
    with pytest.raises(MusicRLError, match="d_arch"):
        evaluate.critic_comparison(ev, archs=("transformer",), epochs=1)


def test_the_report_shows_the_listening_tests_held_on_the_run(evaluated, tmp_path):
    evaluation = evaluated[3]
    assert "## Listening tests" not in evaluated[4]
    header = {"kind": "session", "session": "a" * 16, "mode": "identify", "sets": ["real", "agent"], "digest": "x",
              "seed": 0, "n_trials": 2, "listener": "ann", "created": 0}
    answers = [{"kind": "answer", "trial": t, "chosen": name, "rating": None, "correct": name == "real"}
               for t, name in enumerate(["real", "agent"])]
    (tmp_path / "listening").mkdir()
    (tmp_path / "listening" / f"{'a' * 16}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [header, *answers]))
    report.write_report_files(tmp_path, evaluation)
    text = (tmp_path / report.REPORT_FILE).read_text()
    assert "## Listening tests" in text and "| ann | 2 | 0.50 [" in text
