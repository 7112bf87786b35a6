"""Tests of the training loop, its run folder, checkpoints and the train/sample commands.

Runs are tiny (4-chord episodes, batches of 8, small models, 8 kHz audio, a
folder of a few random progressions) and a few are shared between tests
through module-scoped fixtures, to keep the whole file light on the CPU.
"""

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal

import numpy as np
import pytest
import soundfile
import tensorflow as tf

import musicrl.learning.distribute as distribute
import musicrl.learning.train as training
from musicrl.store.checkpoint import (
    LATEST_FILE,
    checkpoint_name,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from musicrl.cli import main
from musicrl.learning.load import sample_from_run
from musicrl.config import config_from_overrides, load_config
from musicrl.errors import MusicRLError
from musicrl.music.midi import load_midi, rand_progression, save_midi
from musicrl.store.runs import MetricsLog, read_metrics, run_paths
from musicrl.music.vectorize import midi_to_seq

# every setting small: a run takes seconds, most of it one-time tracing
TINY = [
    "n_steps=4", "batch_size=8", "window_hop=2", "holdout_fraction=0.0",
    "sr=8000", "n_fft=400", "hop_length=200", "n_mels=16", "fmax=4000", "n_harmonics=3",
    "d_channels=4", "d_replay_capacity=16", "d_jit_compile=false", "d_predict_jit_compile=false",
    "policy_hidden=16", "policy_embed=8", "policy_jit_compile=false",
    "pretrain_steps=2", "checkpoint_every=1", "sample_every=0", "n_saved_samples=2", "collapse_every=1",
    "deterministic=true",
]
# row fields that measure time, not the computation
TIMING = {"time_s", "episodes_per_s", "peak_rss_mb", "t_sample", "t_mel", "t_reward", "t_d_update", "t_policy_update", "t_log"}


def tiny_cfg(**overrides):
    return config_from_overrides(overrides, base=config_from_overrides(sets=TINY))


def _same_numbers(row_a, row_b):
    keys = set(row_a) - TIMING
    assert keys == set(row_b) - TIMING
    return all(row_a[k] == row_b[k] for k in keys)


def _cli(argv):
    """Run the command line in-process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _tree_hash(path):
    h = hashlib.sha1()
    for root, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            with open(os.path.join(root, name), "rb") as f:
                h.update(name.encode() + f.read())
    return h.hexdigest()


# runs with deterministic=true switch op determinism on for the whole process
pytestmark = pytest.mark.usefixtures("restore_op_determinism")


@pytest.fixture(scope="module")
def midi_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("music")
    rng = np.random.default_rng(7)
    for i in range(4):
        save_midi(rand_progression(rng, n_chords=12), root / f"piece{i}.mid")
    (root / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    return root


@pytest.fixture(scope="module")
def smoke(midi_dir, tmp_path_factory):
    """A 2-iteration run through the command line: (run folder, stdout, exit code)."""
    root = tmp_path_factory.mktemp("runs")
    argv = ["train", "--data", str(midi_dir), "--out", str(root), "--name", "smoke", "--iterations", "2",
            "--seed", "3", "--no-progress"]
    for item in TINY:
        argv += ["--set", item]
    code, out, err = _cli(argv)
    return root / "smoke", out, code, err


@pytest.fixture(scope="module")
def straight(midi_dir, tmp_path_factory):
    """The smoke run's settings and seed, 3 iterations without a break: (run folder, state values at the end)."""
    root = tmp_path_factory.mktemp("runs")
    at_end = {}

    def capture(row, state):
        if row["iteration"] == 3:
            at_end.update(_state_values(state))

    result = training.train(tiny_cfg(seed=3, iterations=3), data=midi_dir, out=root, progress=False,
                            on_iteration=capture, log=lambda s: None)
    assert result.status == "finished"
    return result.run_dir, at_end


# --------------------------------------------------------------------------
# the run folder
# --------------------------------------------------------------------------


def test_smoke_run_writes_a_complete_run_folder(smoke):
    run_dir, out, code, err = smoke
    assert code == 0, err
    paths = run_paths(run_dir)
    cfg = load_config(paths.config)
    assert (cfg.n_steps, cfg.batch_size, cfg.seed, cfg.iterations) == (4, 8, 3, 2)
    info = json.loads(paths.run.read_text())
    assert info["seed"] == 3
    for pkg in ("python", "numpy", "tensorflow", "keras", "pretty_midi", "librosa", "music21", "musicrl"):
        assert info["versions"][pkg] and info["versions"][pkg] != "not installed"
    assert info["data"]["train_pieces"] == 4
    assert len(info["data"]["skipped"]) == 1 and info["data"]["skipped"][0]["file"].endswith("broken.mid")
    # the bad file is reported on the console, as `data --from` does
    assert "skipped:" in out and "broken.mid" in out

    rows = read_metrics(run_dir)
    assert [r["iteration"] for r in rows] == [1, 2]
    for key in ("reward_mean", "reward_std", "d_loss", "d_acc_real", "d_acc_gen", "entropy", "kl",
                "episodes_per_s", "peak_rss_mb", "top3_pitch_share", "pc_hist_overlap", "distinct_chords"):
        assert all(np.isfinite(r[key]) for r in rows), key
    assert all(0 <= r["d_acc_real"] <= 1 and 0 <= r["d_acc_gen"] <= 1 for r in rows)
    assert all(r["reward_mean"] <= 0 for r in rows)  # log D is never positive
    assert [r["episodes"] for r in rows] == [8, 16]
    assert [json.loads(line)["step"] for line in paths.pretrain.read_text().splitlines()] == [1, 2]

    # checkpoints: one per iteration (checkpoint_every=1), the pointer on the last, and the pretrained policy
    assert latest_checkpoint(paths.checkpoints).name == checkpoint_name(2)
    assert (paths.checkpoints / LATEST_FILE).read_text().strip() == checkpoint_name(2)
    assert (paths.checkpoints / "pretrained" / "state.json").is_file()
    _, meta = load_checkpoint(paths.checkpoints / checkpoint_name(2))
    assert meta["iteration"] == 2 and meta["episodes"] == 16 and meta["pretrain_done"]
    assert not [p for p in paths.checkpoints.iterdir() if p.name.startswith(".")]

    # samples at the start, after pretraining and at the end, plus real pieces to compare with
    for tag in ("real", "iter-0000000-start", "iter-0000000-pretrained", "iter-0000002-end"):
        folder = paths.samples / tag
        prefix = "real" if tag == "real" else "gen"
        for i in range(2):
            midi = load_midi(folder / f"{prefix}_{i:03d}.mid")
            assert midi_to_seq(midi, step_beats=cfg.step_beats, lowest_pitch=cfg.lowest_pitch).shape[1] == 48
            wav, sr = soundfile.read(folder / f"{prefix}_{i:03d}.wav")
            assert sr == cfg.sr and wav.ndim == 1 and np.all(np.isfinite(wav))
    assert "finished at iteration 2" in out


def test_tensorboard_holds_scalars_mels_and_audio(smoke):
    run_dir = smoke[0]
    events = list(run_paths(run_dir).tensorboard.glob("events.out.tfevents.*"))
    assert events
    tags, plugins, scalars = set(), {}, {}
    for path in events:
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tags.add(value.tag)
                plugins[value.tag] = value.metadata.plugin_data.plugin_name or plugins.get(value.tag)
                if value.tag.startswith("train/"):
                    scalars[value.tag, event.step] = float(tf.make_ndarray(value.tensor))
    for name in ("reward_mean", "d_loss", "d_acc_real", "d_acc_gen", "entropy", "kl", "top3_pitch_share"):
        assert f"train/{name}" in tags
    # every number of every row of metrics.jsonl at its iteration (float32 in TensorBoard), but for
    # the timings and the memory, which only metrics.jsonl holds
    rows = read_metrics(run_dir)
    logged = [(r["iteration"], k, v) for r in rows for k, v in r.items()
              if k not in ("iteration", "episodes_per_s", "peak_rss_mb") and not k.startswith("t_")]
    for iteration, key, number in logged:
        got = scalars[f"train/{key}", iteration]
        assert got == pytest.approx(number, rel=1e-6, abs=1e-6) if number is not None else np.isnan(got), key
    assert len(scalars) == len(logged)
    assert "pretrain/nll" in tags
    assert plugins["samples/gen_mel"] == "images"
    assert plugins["samples/gen_audio"] == "audio"


def test_same_seed_gives_the_same_first_iteration(smoke, straight):
    first_smoke = read_metrics(smoke[0])[0]
    first_straight = read_metrics(straight[0])[0]
    assert _same_numbers(first_smoke, first_straight)


# --------------------------------------------------------------------------
# resume
# --------------------------------------------------------------------------


def _state_values(state):
    """Every value a checkpoint must bring back, as plain Python/NumPy objects."""
    objects = {
        "policy": state.policy, "ref_policy": state.ref_policy, "discriminator": state.d.model,
        "policy_optimizer": state.policy_optimizer, "pretrain_optimizer": state.pretrain_optimizer,
        "d_optimizer": state.d.optimizer,
    }
    # a seed generator's state is not model state (dropout is off) and is left out of checkpoints
    values = {
        name: [np.array(v.numpy()) for v in obj.variables if "seed_generator" not in v.path]
        for name, obj in objects.items()
    }
    values["replay"] = state.d.get_state()
    values["rng"] = state.rng.bit_generator.state
    values["baseline"] = state.baseline.get_state()
    values["normalizer"] = state.normalizer.get_state()
    values["counters"] = (state.iteration, state.episodes, state.pretrain_steps_done, state.pretrain_done)
    values["vocab"] = state.vocab
    return values


def test_checkpoint_restores_the_exact_state(straight):
    run_dir, at_end = straight
    cfg = load_config(run_paths(run_dir).config)
    restored = _state_values(training.load_train_state(cfg, latest_checkpoint(run_paths(run_dir).checkpoints)))
    assert set(restored) == set(at_end)
    for key in ("policy", "ref_policy", "discriminator", "policy_optimizer", "pretrain_optimizer", "d_optimizer"):
        assert len(restored[key]) == len(at_end[key]) > 0, key
        for a, b in zip(restored[key], at_end[key]):
            np.testing.assert_array_equal(a, b, err_msg=key)
    for key, value in at_end["replay"].items():
        np.testing.assert_array_equal(restored["replay"][key], value, err_msg=key)
    assert restored["replay"]["replay_items"].shape[0] == 16  # the buffer is full
    np.testing.assert_array_equal(restored["baseline"]["value"], at_end["baseline"]["value"])
    assert restored["baseline"]["n_updates"] == at_end["baseline"]["n_updates"] == 3
    assert restored["normalizer"] == at_end["normalizer"]
    assert restored["rng"] == at_end["rng"]
    assert restored["counters"] == at_end["counters"] == (3, 24, 2, True)
    np.testing.assert_array_equal(restored["vocab"], at_end["vocab"])
    # the agent has moved away from its frozen pretrained copy
    assert any(not np.array_equal(a, b) for a, b in zip(restored["policy"], restored["ref_policy"]))


def test_resume_continues_the_counter_and_the_numbers(smoke, straight, tmp_path):
    run_dir = tmp_path / "smoke"
    shutil.copytree(smoke[0], run_dir)
    code, out, err = _cli(["train", "--resume", "--out", str(run_dir), "--iterations", "3", "--no-progress"])
    assert code == 0, err
    assert "resumed from iteration 2" in out
    rows = read_metrics(run_dir)
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    assert latest_checkpoint(run_paths(run_dir).checkpoints).name == checkpoint_name(3)
    # 2 iterations + resume + 1 iteration == 3 iterations in one go
    assert _same_numbers(rows[2], read_metrics(straight[0])[2])
    assert load_config(run_paths(run_dir).config).iterations == 3


def test_resume_refuses_to_change_the_models(smoke, tmp_path):
    with pytest.raises(MusicRLError, match="cannot change d_channels when resuming"):
        training.train(resume=True, out=smoke[0], overrides={"d_channels": 8}, progress=False)
    with pytest.raises(MusicRLError, match="no run to resume"):
        training.train(resume=True, out=tmp_path, progress=False)


def test_resume_drops_rows_written_after_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    with MetricsLog(path) as log:
        for i in range(1, 6):
            log.append({"iteration": i, "x": float(i)})
        log.append({"iteration": 6, "x": float("nan")})
    assert read_metrics(path)[-1]["x"] is None  # NaN is written as null, keeping the file valid JSON
    with MetricsLog(path, keep_until=3) as log:
        log.append({"iteration": 4, "x": 40.0})
    assert [(r["iteration"], r["x"]) for r in read_metrics(path)] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]


# --------------------------------------------------------------------------
# sample
# --------------------------------------------------------------------------


def test_sample_writes_readable_midi_and_wav(smoke, tmp_path):
    run_dir = smoke[0]
    cfg = load_config(run_paths(run_dir).config)
    argv = ["sample", "--run", str(run_dir), "--n", "3", "--seed", "5"]
    code, out, err = _cli(argv + ["--out", str(tmp_path / "a")])
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "gen_000.mid", "gen_000.wav", "gen_001.mid", "gen_001.wav", "gen_002.mid", "gen_002.wav"]
    seqs = []
    for i in range(3):
        midi = load_midi(tmp_path / "a" / f"gen_{i:03d}.mid")
        seqs.append(midi_to_seq(midi, step_beats=cfg.step_beats, lowest_pitch=cfg.lowest_pitch)
                    if midi.instruments and midi.instruments[0].notes else None)
        wav, sr = soundfile.read(tmp_path / "a" / f"gen_{i:03d}.wav")
        assert sr == cfg.sr and wav.ndim == 1 and len(wav) >= cfg.sr * cfg.step_seconds
        assert np.all(np.isfinite(wav)) and np.abs(wav).max() <= 1.0
    assert any(s is not None for s in seqs)
    # the same seed writes the same pieces
    assert _cli(argv + ["--out", str(tmp_path / "b"), "--no-wav"])[0] == 0
    for i in range(3):
        a = (tmp_path / "a" / f"gen_{i:03d}.mid").read_bytes()
        assert a == (tmp_path / "b" / f"gen_{i:03d}.mid").read_bytes()
    assert not list((tmp_path / "b").glob("*.wav"))


def test_sample_from_the_pretrained_policy(smoke, tmp_path):
    paths = sample_from_run(smoke[0], 2, tmp_path, checkpoint="pretrained", wav=False)
    assert [p.name for p in paths] == ["gen_000.mid", "gen_001.mid"]
    with pytest.raises(MusicRLError, match="no checkpoint 'iter-0000099'"):
        sample_from_run(smoke[0], 2, tmp_path, checkpoint="iter-0000099")


# --------------------------------------------------------------------------
# stopping: NaN, SIGINT, bad output folders
# --------------------------------------------------------------------------


def test_nan_stops_the_run_and_keeps_the_last_checkpoint(midi_dir, tmp_path):
    seen = {}

    def poison_d(row, state):
        if row["iteration"] == 1:
            (run_dir,) = tmp_path.iterdir()
            seen["hash"] = _tree_hash(run_paths(run_dir).checkpoints / checkpoint_name(1))
            kernel = state.d.model.trainable_variables[0]
            kernel.assign(np.full(kernel.shape, np.nan, np.float32))

    cfg = tiny_cfg(iterations=4, pretrain_steps=0)
    messages = []
    result = training.train(cfg, data=midi_dir, out=tmp_path, progress=False, on_iteration=poison_d,
                            log=messages.append)
    assert result.status == "nonfinite" and result.iteration == 1
    assert "non-finite D logits" in result.message and "iteration 2" in result.message
    assert messages[-1] == result.message and "last good checkpoint" in result.message
    paths = run_paths(result.run_dir)
    assert [r["iteration"] for r in read_metrics(result.run_dir)] == [1]
    assert latest_checkpoint(paths.checkpoints).name == checkpoint_name(1)
    assert _tree_hash(paths.checkpoints / checkpoint_name(1)) == seen["hash"]
    state = training.load_train_state(cfg, paths.checkpoints / checkpoint_name(1))
    assert all(np.all(np.isfinite(v.numpy())) for v in state.d.model.trainable_variables)


def test_skip_undoes_a_nonfinite_update(midi_dir, tmp_path, monkeypatch):
    calls = []
    real_step = distribute.reinforce_step

    def flaky_step(policy, *args, **kwargs):
        stats = real_step(policy, *args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            weight = policy.trainable_variables[0]
            weight.assign(np.full(weight.shape, np.inf, np.float32))
            stats["loss"] = float("nan")
        return stats

    monkeypatch.setattr(distribute, "reinforce_step", flaky_step)
    messages = []
    cfg = tiny_cfg(iterations=2, pretrain_steps=0, on_nonfinite="skip")
    result = training.train(cfg, data=midi_dir, out=tmp_path, progress=False, log=messages.append)
    assert result.status == "finished" and result.iteration == 2
    # the skipped batch stops at its first pass; iterations 1 and 2 make every pass over their batch
    assert len(calls) == 1 + 2 * cfg.ppo_epochs
    assert any(m.startswith("skipped a batch: non-finite policy loss") for m in messages)
    assert [r["iteration"] for r in read_metrics(result.run_dir)] == [1, 2]
    cfg = load_config(run_paths(result.run_dir).config)
    state = training.load_train_state(cfg, result.checkpoint)
    assert all(np.all(np.isfinite(v.numpy())) for v in state.policy.trainable_variables)


def test_sigint_writes_a_checkpoint_and_stops(midi_dir, tmp_path):
    before = signal.getsignal(signal.SIGINT)

    def interrupt(row, state):
        if row["iteration"] == 1:
            os.kill(os.getpid(), signal.SIGINT)

    messages = []
    result = training.train(tiny_cfg(iterations=5, pretrain_steps=0, checkpoint_every=100), data=midi_dir,
                            out=tmp_path, progress=False, on_iteration=interrupt, log=messages.append)
    assert result.status == "interrupted" and result.iteration == 1
    assert result.message.startswith("interrupted by SIGINT at iteration 1: checkpoint written to")
    assert messages[-1] == result.message
    paths = run_paths(result.run_dir)
    assert [p.name for p in list_checkpoints(paths.checkpoints)] == [checkpoint_name(1)]
    assert latest_checkpoint(paths.checkpoints).name == checkpoint_name(1)
    assert [r["iteration"] for r in read_metrics(result.run_dir)] == [1]
    assert signal.getsignal(signal.SIGINT) is before


def test_unwritable_output_is_a_clear_error(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(MusicRLError, match="cannot write to the runs folder"):
        training.train(tiny_cfg(), out=tmp_path / "afile" / "runs", progress=False)
    code, _, err = _cli(["train", "--out", str(tmp_path / "afile" / "runs"), "--no-progress"])
    assert code == 2 and err.startswith("error: cannot write to the runs folder")


def test_a_run_without_usable_data_leaves_no_folder(tmp_path):
    (tmp_path / "music").mkdir()
    (tmp_path / "music" / "empty.mid").write_bytes(b"")
    with pytest.raises(MusicRLError, match="no usable MIDI file"):
        training.train(tiny_cfg(), data=tmp_path / "music", out=tmp_path / "runs", progress=False)
    assert list((tmp_path / "runs").iterdir()) == []


def test_the_kl_weight_follows_its_schedule(midi_dir, tmp_path):
    # the schedule's values themselves are tested in test_agent; this is the loop's use of them
    schedule, want = "linear", [0.5, 0.3, 0.1]
    cfg = tiny_cfg(iterations=3, kl_coef=0.5, kl_coef_end=0.1, kl_schedule=schedule, kl_schedule_iterations=2,
                   checkpoint_every=3)
    result = training.train(cfg, data=midi_dir, out=tmp_path, progress=False, log=lambda s: None)
    rows = read_metrics(result.run_dir)
    np.testing.assert_allclose([r["kl_coef"] for r in rows], want, atol=1e-12)


def test_without_the_critic_only_teacher_forcing_moves_the_policy(midi_dir, tmp_path):
    # teacher forcing on even iterations only; no critic gradient, entropy bonus or KL to move the policy
    cfg = tiny_cfg(iterations=4, mle_every=2, pg_coef=0.0, entropy_coef=0.0, kl_coef=0.0, keep_checkpoints=4)
    result = training.train(cfg, data=midi_dir, out=tmp_path, progress=False, log=lambda s: None)
    rows = read_metrics(result.run_dir)
    assert ["mle_nll" in r for r in rows] == [False, True, False, True]
    assert all(np.isfinite(r["mle_nll"]) and r["mle_nll"] > 0 for r in rows if "mle_nll" in r)
    checkpoints = run_paths(result.run_dir).checkpoints
    for name, moved in (("iter-0000001", False), ("iter-0000004", True)):
        state = _state_values(training.load_train_state(cfg, checkpoints / name))
        assert any(not np.array_equal(a, b) for a, b in zip(state["policy"], state["ref_policy"])) == moved, name


@pytest.mark.parametrize("field, value", [("mle_own_share", 1.0), ("policy_dropout", 0.5)])
def test_maximum_likelihood_options_are_seeded_and_change_what_they_should(midi_dir, tmp_path, field, value):
    # the critic off, so the maximum-likelihood steps are all that move the policy
    base = dict(iterations=2, pg_coef=0.0, entropy_coef=0.0, kl_coef=0.0, checkpoint_every=2)
    rows, pretrain = {}, {}
    for name, v in (("plain", 0.0), ("set", value), ("set again", value)):
        result = training.train(tiny_cfg(**base, **{field: v}), data=midi_dir, out=tmp_path / name,
                                progress=False, log=lambda s: None)
        rows[name] = read_metrics(result.run_dir)
        pretrain[name] = [json.loads(line)["nll"] for line in run_paths(result.run_dir).pretrain.read_text().splitlines()]
    assert all(_same_numbers(a, b) for a, b in zip(rows["set"], rows["set again"]))
    assert pretrain["set"] == pretrain["set again"]
    assert rows["set"][0]["mle_nll"] != pytest.approx(rows["plain"][0]["mle_nll"], rel=1e-4)
    # own draws are for the teacher-forced steps only; dropout is for pretraining too
    assert (pretrain["set"] == pretrain["plain"]) == (field == "mle_own_share")
    assert (rows["set"][0]["reward_mean"] == rows["plain"][0]["reward_mean"]) == (field == "mle_own_share")


def test_ppo_epochs_update_the_policy_several_times_per_batch(midi_dir, tmp_path):
    cfg = tiny_cfg(iterations=2, ppo_epochs=3, ppo_clip=0.1, mle_every=0, checkpoint_every=2)
    result = training.train(cfg, data=midi_dir, out=tmp_path, progress=False, log=lambda s: None)
    rows = read_metrics(result.run_dir)
    assert len(rows) == 2 and all(0.0 <= r["ppo_clip_frac"] <= 1.0 for r in rows)
    assert load_config(run_paths(result.run_dir).config).ppo_epochs == 3


def test_d_is_updated_only_while_the_batch_fools_it(midi_dir, tmp_path):
    # D starts at chance (0.5): a bound below it leaves D as it was made, 1 updates it every iteration
    rows, d_weights = {}, {}
    for name, bound in (("gated", 0.4), ("always", 1.0)):
        cfg = tiny_cfg(iterations=2, d_max_accuracy=bound, checkpoint_every=2)
        result = training.train(cfg, data=midi_dir, out=tmp_path / name, progress=False, log=lambda s: None)
        rows[name] = read_metrics(result.run_dir)
        checkpoints = run_paths(result.run_dir).checkpoints
        d_weights[name] = [_state_values(training.load_train_state(cfg, checkpoints / c))["discriminator"]
                           for c in ("pretrained", "iter-0000002")]
    assert [r["d_updated"] for r in rows["gated"]] == [0.0, 0.0]
    assert all(r["d_loss"] is None for r in rows["gated"])  # not measured: null in the JSON lines
    assert all(np.array_equal(a, b) for a, b in zip(*d_weights["gated"]))
    assert [r["d_updated"] for r in rows["always"]] == [1.0, 1.0]
    assert any(not np.array_equal(a, b) for a, b in zip(*d_weights["always"]))
    # the scores the policy is paid with do not depend on the gate: the first batches are the same
    assert rows["gated"][0]["reward_mean"] == pytest.approx(rows["always"][0]["reward_mean"], rel=1e-5)


@pytest.mark.parametrize("overrides", [
    {"value_head": True, "gae_lambda": 0.9, "reward_dense": True},
    {"reward_kind": "neg_log_1m_d"},
])
def test_levers_train_and_are_saved(midi_dir, tmp_path, overrides):
    cfg = tiny_cfg(iterations=2, checkpoint_every=2, **overrides)
    result = training.train(cfg, data=midi_dir, out=tmp_path, progress=False, log=lambda s: None)
    rows = read_metrics(result.run_dir)
    assert len(rows) == 2 and all(np.isfinite(r["policy_loss"]) for r in rows)
    saved = load_config(run_paths(result.run_dir).config)
    assert all(getattr(saved, k) == v for k, v in overrides.items())
    if overrides.get("reward_kind") == "neg_log_1m_d":
        assert all(r["reward_mean"] > 0 for r in rows)  # -log(1 - D) is positive


@pytest.mark.parametrize("start, every, want", [
    (0, 100, [32] * 6), (8, 2, [8, 8, 16, 16, 32, 32]), (16, 1, [16, 32, 32, 32, 32, 32]), (12, 2, [12, 12, 24, 24, 32, 32]),
])
def test_episode_steps_double_up_to_the_length(start, every, want):
    assert [training.episode_steps(i, n_steps=32, start=start, every=every) for i in range(1, 7)] == want


def test_a_curriculum_plays_shorter_pieces_first(midi_dir, tmp_path):
    cfg = tiny_cfg(iterations=3, curriculum_start=2, curriculum_iterations=1, checkpoint_every=3)
    result = training.train(cfg, data=midi_dir, out=tmp_path, progress=False, log=lambda s: None)
    rows = read_metrics(result.run_dir)
    assert [r["episode_steps"] for r in rows] == [2, 4, 4]
    assert all(np.isfinite(r["policy_loss"]) and np.isfinite(r["d_loss"]) for r in rows)
    # what the run samples afterwards is full length
    for path in sample_from_run(result.run_dir, 2, tmp_path / "gen", wav=False):
        midi = load_midi(path)
        assert midi.time_to_tick(midi.get_end_time()) / midi.resolution <= 4
        assert midi_to_seq(midi, step_beats=cfg.step_beats, lowest_pitch=cfg.lowest_pitch).shape[0] > 2


def test_time_budget_ends_the_run_with_a_checkpoint(midi_dir, tmp_path):
    result = training.train(tiny_cfg(iterations=0, minutes=1e-6), data=midi_dir, out=tmp_path, progress=False,
                            log=lambda s: None)
    assert result.status == "finished" and result.iteration == 0
    assert result.message.startswith("time budget reached during pretraining (step 0 of 2)")
    _, meta = load_checkpoint(result.checkpoint)
    assert (meta["iteration"], meta["pretrain_steps_done"], meta["pretrain_done"]) == (0, 0, False)
    with pytest.raises(MusicRLError, match="'iterations' and 'minutes' are both 0"):
        tiny_cfg(iterations=0)


def test_out_that_is_a_run_folder_needs_resume(smoke):
    with pytest.raises(MusicRLError, match="is a run folder, not a runs root"):
        training.train(tiny_cfg(), out=smoke[0], progress=False)


def test_help_lists_train_and_sample():
    code, out, _ = _cli(["--help"])
    assert code == 0 and "train" in out and "sample" in out
    code, out, _ = _cli(["train", "--help"])
    for option in ("--data", "--minutes", "--iterations", "--out", "--seed", "--resume", "--set", "--config"):
        assert option in out
    code, out, _ = _cli(["sample", "--help"])
    for option in ("--run", "--n", "--out", "--seed"):
        assert option in out


# --------------------------------------------------------------------------
# checkpoint files
# --------------------------------------------------------------------------


def _variable(value):
    return tf.Variable(np.asarray(value, np.float32))


def test_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    v = _variable([1.0, 2.0])
    save_checkpoint(tmp_path, checkpoint_name(1), objects={"v": v}, arrays={"a": np.arange(3)}, state={"k": 1})
    v.assign([5.0, 6.0])

    def broken_savez(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(MusicRLError, match="cannot write checkpoint .*No space left"):
        save_checkpoint(tmp_path, checkpoint_name(2), objects={"v": v}, state={"k": 2})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [checkpoint_name(1), LATEST_FILE]
    assert latest_checkpoint(tmp_path).name == checkpoint_name(1)
    w = _variable([0.0, 0.0])
    arrays, state = load_checkpoint(latest_checkpoint(tmp_path), objects={"v": w})
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(arrays["a"], np.arange(3))
    assert state == {"k": 1}


def test_prune_keeps_the_newest_and_named_checkpoints(tmp_path):
    v = _variable([1.0])
    for i in (1, 2, 3, 4):
        save_checkpoint(tmp_path, checkpoint_name(i), objects={"v": v}, state={"i": i})
    save_checkpoint(tmp_path, "pretrained", objects={"v": v}, set_latest=False)
    (tmp_path / ".tmp-iter-0000005-1").mkdir()  # left over by a killed write
    removed = prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == [checkpoint_name(1), checkpoint_name(2)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        checkpoint_name(3), checkpoint_name(4), LATEST_FILE, "pretrained"]
    # a checkpoint replaced under the same name keeps the folder complete
    save_checkpoint(tmp_path, checkpoint_name(4), objects={"v": v}, state={"i": 44})
    assert load_checkpoint(tmp_path / checkpoint_name(4))[1] == {"i": 44}
    with pytest.raises(MusicRLError, match="does not match"):
        load_checkpoint(tmp_path / checkpoint_name(4), objects={"v": _variable([1.0, 2.0])})


def test_a_64_step_run_trains_and_samples_pieces_of_64_beats(tmp_path):
    # 64 beats at 120 bpm are 32 s of audio: data windows, policy, D, mels and sampling at that length
    rng = np.random.default_rng(11)
    (tmp_path / "music").mkdir()
    for i in range(3):
        save_midi(rand_progression(rng, n_chords=72), tmp_path / "music" / f"piece{i}.mid")
    cfg = tiny_cfg(n_steps=64, seed=3, iterations=2)
    result = training.train(cfg, data=tmp_path / "music", out=tmp_path / "runs", progress=False,
                            log=lambda s: None)
    assert result.status == "finished"
    assert [row["iteration"] for row in read_metrics(run_paths(result.run_dir).metrics)] == [1, 2]
    beats = []
    for path in sample_from_run(result.run_dir, 3, tmp_path / "gen", wav=False):
        midi = load_midi(path)
        seq = midi_to_seq(midi, step_beats=cfg.step_beats, lowest_pitch=cfg.lowest_pitch)
        assert seq.any() and len(seq) <= 64
        # a MIDI file ends at its last note, so a piece whose last chords are rests is shorter
        beats.append(midi.time_to_tick(midi.get_end_time()) / midi.resolution)
    assert max(beats) == 64 and min(beats) > 32
