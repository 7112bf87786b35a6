"""Faults an overnight run must survive: SIGKILL, Ctrl-C, NaN/inf, a full or unwritable disk.

Real ``python -m musicrl train`` processes are driven as a user's shell
would: one is killed with SIGKILL while it writes a checkpoint, then resumed
with ``--resume`` and stopped with SIGINT; another, uninterrupted, with the
same seed is the reference its numbers must match. These three processes
are shared by the tests of their outcome (a module-scoped fixture); the other
tests (checkpoint files under crashes, NaN/inf, a full disk) run in-process.

Runs are tiny (settings of ``test_train.TINY``: 4-chord episodes, batches of
8, small models, a checkpoint every iteration).
"""

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import musicrl
import musicrl.store.checkpoint as checkpoint_module
import musicrl.store.runs as runs_module
import musicrl.learning.distribute as distribute
import musicrl.learning.train as training
from musicrl.store.checkpoint import (
    LATEST_FILE,
    checkpoint_iteration,
    checkpoint_name,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from musicrl.cli import main
from musicrl.learning.discriminator import DiscriminatorTrainer
from musicrl.errors import MusicRLError
from musicrl.music.midi import rand_progression, save_midi
from musicrl.store.runs import MetricsLog, read_metrics, run_paths
from musicrl.tests.test_train import TIMING, TINY, tiny_cfg

SEED = 5
REF_ITERATIONS = 12  # the uninterrupted reference run; the killed run is resumed and stopped before this
WAIT_S = 150.0  # longest wait for a process to reach a point (a loaded 2-core machine imports TF slowly)
REPO_ROOT = Path(musicrl.__file__).resolve().parents[1]
# meta fields that record when, not what
WALL_CLOCK_META = {"saved_at", "train_seconds"}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def midi_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("music")
    rng = np.random.default_rng(7)
    for i in range(4):
        save_midi(rand_progression(rng, n_chords=12), root / f"piece{i}.mid")
    return root


def _sets(*extra):
    argv = []
    for item in (*TINY, *extra):
        argv += ["--set", item]
    return argv


def _numbers(row):
    """A metrics row without its timing fields."""
    return {k: v for k, v in row.items() if k not in TIMING}


def _tree_hash(path):
    h = hashlib.sha1()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            with open(os.path.join(root, name), "rb") as f:
                h.update(name.encode() + f.read())
    return h.hexdigest()


def _load_fully(path):
    """Every byte of a checkpoint folder read back: (arrays, meta, TF tensors by name)."""
    arrays, meta = load_checkpoint(path)
    reader = tf.train.load_checkpoint(str(Path(path) / "tf" / "ckpt"))
    tensors = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    return arrays, meta, tensors


def _hidden(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))


class _Proc:
    """A ``python -m musicrl`` child process whose stdout/stderr go to files."""

    def __init__(self, argv, cwd, tag):
        env = dict(os.environ)
        env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p))
        self.stdout_path, self.stderr_path = Path(cwd) / f"{tag}.out", Path(cwd) / f"{tag}.err"
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.popen = subprocess.Popen([sys.executable, "-m", "musicrl", *argv], cwd=cwd, env=env,
                                          stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.tag = tag

    @property
    def stdout(self):
        return self.stdout_path.read_text()

    def describe(self):
        err = self.stderr_path.read_text().strip().splitlines()[-15:]
        return f"[{self.tag}] exit {self.popen.poll()}\nstdout:\n{self.stdout}\nstderr (end):\n" + "\n".join(err)

    def wait_for(self, condition, what, timeout=WAIT_S, poll=0.05):
        """Poll ``condition()`` until true; fail (with the output) if the process ends or time runs out."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.popen.poll() is not None:
                pytest.fail(f"process ended before {what}\n{self.describe()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {timeout:.0f} s\n{self.describe()}")
            time.sleep(poll)

    def wait(self, timeout=WAIT_S):
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"process did not end within {timeout:.0f} s\n{self.describe()}")

    def stop(self):
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def _writing_checkpoint(ckpts):
    """Whether a checkpoint is being written (its hidden temporary folder exists)."""
    try:
        return any(name.startswith(".tmp-iter-") for name in os.listdir(ckpts))
    except OSError:
        return False


# --------------------------------------------------------------------------
# SIGKILL mid-write, --resume, SIGINT: three real processes
# --------------------------------------------------------------------------


def _kill_resume_interrupt(midi_dir, root):
    """Kill a run while it writes a checkpoint, resume it, stop it with SIGINT.

    Process A trains (many iterations, a checkpoint each) and is SIGKILLed
    at a random moment 0-0.1 s after a checkpoint write begins, once two
    checkpoints exist. Process B resumes it and gets SIGINT three
    checkpoints later. Process C, started with A, is an uninterrupted run
    with the same seed and settings.
    """
    common = ["train", "--data", str(midi_dir), "--out", str(root), "--seed", str(SEED), "--no-progress"]
    run_dir = root / "run"
    ckpts = run_paths(run_dir).checkpoints
    procs = []
    try:
        a = _Proc([*common, "--name", "run", "--iterations", "100000", *_sets("pretrain_steps=0")], root, "a")
        procs.append(a)
        c = _Proc([*common, "--name", "ref", "--iterations", str(REF_ITERATIONS),
                   *_sets("pretrain_steps=0", "keep_checkpoints=100")], root, "c")
        procs.append(c)

        a.wait_for(lambda: len(list_checkpoints(ckpts)) >= 2, "two checkpoints")
        a.wait_for(lambda: _writing_checkpoint(ckpts), "a checkpoint write after two checkpoints", poll=0.002)
        # a write takes ~0.1 s: most kills land inside it, the others in the renames, the pruning or the next
        # iteration (the moment varies with the delay and the load)
        time.sleep(float(np.random.default_rng().uniform(0.0, 0.1)))
        a.popen.send_signal(signal.SIGKILL)
        a.wait()
        after_kill = {
            "listing": sorted(os.listdir(ckpts)),
            "complete": [p.name for p in list_checkpoints(ckpts)],
            "pointer": (ckpts / LATEST_FILE).read_text().strip() if (ckpts / LATEST_FILE).exists() else None,
            "latest": latest_checkpoint(ckpts),
            "loaded": {},
            "rows": read_metrics(run_dir),
        }
        for name in after_kill["listing"]:
            if not name.startswith(".") and name != LATEST_FILE:
                after_kill["loaded"][name] = _load_fully(ckpts / name)

        k = checkpoint_iteration(after_kill["complete"][-1])
        b = _Proc(["train", "--resume", "--out", str(run_dir), "--no-progress"], root, "b")
        procs.append(b)
        b.wait_for(lambda: (checkpoint_iteration(latest_checkpoint(ckpts) or "x") or 0) >= k + 3,
                   f"checkpoint of iteration {k + 3} after the resume")
        b.popen.send_signal(signal.SIGINT)
        code = b.wait()
        assert c.wait() == 0, c.describe()
        return {
            "run_dir": run_dir, "ref_dir": root / "ref", "after_kill": after_kill, "k": k,
            "b_code": code, "b_out": b.stdout, "b_describe": b.describe(),
        }
    finally:
        for proc in procs:
            proc.stop()


@pytest.fixture(scope="module")
def killed(midi_dir, tmp_path_factory):
    """The record of :func:`_kill_resume_interrupt`, shared by the tests of its outcome."""
    return _kill_resume_interrupt(midi_dir, tmp_path_factory.mktemp("killed"))


# --------------------------------------------------------------------------
# checkpoint files under crashes (no training)
# --------------------------------------------------------------------------


def _save(root, name, value, **kwargs):
    v = tf.Variable(np.asarray(value, np.float32))
    return save_checkpoint(root, name, objects={"v": v}, arrays={"a": np.asarray(value)}, state={"x": value},
                           **kwargs)


def test_pointer_left_behind_by_a_crash_does_not_hide_a_newer_checkpoint(tmp_path):
    _save(tmp_path, checkpoint_name(1), 1.0)
    _save(tmp_path, checkpoint_name(2), 2.0)
    # the state a crash leaves between the folder's rename and the pointer's update
    _save(tmp_path, checkpoint_name(3), 3.0, set_latest=False)
    assert (tmp_path / LATEST_FILE).read_text().strip() == checkpoint_name(2)
    assert latest_checkpoint(tmp_path).name == checkpoint_name(3)
    # a named pointer is trusted: 'pretrained' comes after an iteration-0 checkpoint of unfinished pretraining
    other = tmp_path / "named"
    _save(other, checkpoint_name(0), 0.0)
    _save(other, "pretrained", 0.5)
    assert latest_checkpoint(other).name == "pretrained"


def test_crash_while_pruning_leaves_no_visible_partial_folder(tmp_path, monkeypatch):
    for i in (1, 2, 3):
        _save(tmp_path, checkpoint_name(i), float(i))
    real_rmtree = shutil.rmtree

    def crash_midway(path, *args, **kwargs):
        # delete the TF data first, then die, as a SIGKILL during the deletion would
        (data,) = Path(path).glob("tf/ckpt.data-*")
        data.unlink()
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.shutil, "rmtree", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        prune_checkpoints(tmp_path, keep=2)
    monkeypatch.setattr(checkpoint_module.shutil, "rmtree", real_rmtree)
    for p in list_checkpoints(tmp_path):
        _load_fully(p)
    assert [p.name for p in list_checkpoints(tmp_path)] == [checkpoint_name(2), checkpoint_name(3)]
    assert _hidden(tmp_path) != []
    prune_checkpoints(tmp_path, keep=2)
    assert _hidden(tmp_path) == []


@pytest.mark.parametrize("where", ["tf", "rename", "pointer"])
def test_full_disk_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch, where):
    _save(tmp_path, checkpoint_name(1), 1.0)
    before = _tree_hash(tmp_path / checkpoint_name(1))
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    real_replace = os.replace

    def replace(src, dst):
        if (where == "rename" and Path(src).name.startswith(".tmp-")) or \
                (where == "pointer" and Path(dst).name == LATEST_FILE):
            raise full
        return real_replace(src, dst)

    def tf_write(self, *args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    if where == "tf":
        monkeypatch.setattr(tf.train.Checkpoint, "write", tf_write)
    else:
        monkeypatch.setattr(checkpoint_module.os, "replace", replace)
    with pytest.raises(MusicRLError, match=r"cannot write checkpoint .*iter-0000002.*: No space left on device"):
        _save(tmp_path, checkpoint_name(2), 2.0)
    monkeypatch.undo()
    assert _tree_hash(tmp_path / checkpoint_name(1)) == before
    assert (tmp_path / LATEST_FILE).read_text().strip() == checkpoint_name(1)
    assert _hidden(tmp_path) == []
    # the folder renamed into place before the pointer failed is complete, and newer
    newest = checkpoint_name(2) if where == "pointer" else checkpoint_name(1)
    assert latest_checkpoint(tmp_path).name == newest
    _load_fully(latest_checkpoint(tmp_path))


def test_checkpoints_under_a_regular_file_is_a_clear_error(tmp_path):
    # as root, permissions stop nothing: a path through a regular file is what cannot be written
    (tmp_path / "file.txt").write_text("")
    with pytest.raises(MusicRLError, match=r"cannot write checkpoint .*file\.txt/runs/iter-0000001'?: Not a directory"):
        _save(tmp_path / "file.txt" / "runs", checkpoint_name(1), 1.0)
    assert (tmp_path / "file.txt").read_text() == ""


def test_full_disk_in_the_metrics_log_is_a_clear_error(tmp_path, monkeypatch):
    real_open = open

    class FillingFile:
        """A file on a disk with room for one more row."""

        def __init__(self, f):
            self.f, self.rows = f, 0

        def write(self, text):
            self.rows += 1
            if self.rows > 1:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(text)

        def __getattr__(self, name):
            return getattr(self.f, name)

    path = tmp_path / "metrics.jsonl"
    with MetricsLog(path) as log:
        log.append({"iteration": 1, "x": 1.0})
    monkeypatch.setattr(runs_module, "open", lambda *a, **k: FillingFile(real_open(*a, **k)), raising=False)
    with pytest.raises(MusicRLError, match=r"cannot write .*metrics\.jsonl.*: No space left on device"):
        with MetricsLog(path, keep_until=1) as log:
            log.append({"iteration": 2, "x": 2.0})
            log.append({"iteration": 3, "x": 3.0})
    monkeypatch.undo()
    assert [r["iteration"] for r in read_metrics(path)] == [1, 2]


# --------------------------------------------------------------------------
# in-process runs: NaN/inf and a full disk during training
# --------------------------------------------------------------------------


def _train_argv(midi_dir, out, name, *extra):
    return ["train", "--data", str(midi_dir), "--out", str(out), "--name", name, "--iterations", "4",
            "--no-progress", *_sets("pretrain_steps=0", "d_steps=1", "deterministic=false", *extra)]


def test_nan_in_d_weights_stops_the_run_at_that_iteration(midi_dir, tmp_path, monkeypatch, capsys):
    ckpts = run_paths(tmp_path / "nan").checkpoints
    # on one device the loop updates D (and reads its rewards) through train_and_score
    real_step = DiscriminatorTrainer.train_and_score
    seen = {}

    def poisoned_step(self, real_x, gen_x):
        out = real_step(self, real_x, gen_x)
        seen["calls"] = seen.get("calls", 0) + 1
        if seen["calls"] == 2:  # iteration 2: its loss is fine, the update leaves a NaN in D
            seen["hash"] = _tree_hash(ckpts / checkpoint_name(1))
            kernel = self.model.trainable_variables[0]
            kernel.assign(np.where(np.arange(kernel.shape[-1]) == 0, np.nan, kernel.numpy()).astype(np.float32))
        return out

    monkeypatch.setattr(DiscriminatorTrainer, "train_and_score", poisoned_step)
    code = main(_train_argv(midi_dir, tmp_path, "nan"))
    out, err = capsys.readouterr()
    assert code == 1, err
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"stopped: non-finite weights \(.+\) at iteration 2\. The last good checkpoint is kept: "
                        + re.escape(str(ckpts / checkpoint_name(1))), last), last
    assert [r["iteration"] for r in read_metrics(tmp_path / "nan")] == [1]
    assert [p.name for p in list_checkpoints(ckpts)] == [checkpoint_name(1)]
    assert latest_checkpoint(ckpts).name == checkpoint_name(1)
    assert _tree_hash(ckpts / checkpoint_name(1)) == seen["hash"]
    # every stored weight and optimizer slot (D's among them) is finite
    _, _, tensors = _load_fully(ckpts / checkpoint_name(1))
    floats = [v for v in tensors.values() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    assert len(floats) > 50 and all(np.all(np.isfinite(v)) for v in floats)


def test_inf_reward_is_skipped_at_that_iteration(midi_dir, tmp_path, monkeypatch):
    real_rewards = training.logits_to_rewards
    calls = []

    def inf_once(*args, **kwargs):
        rewards = np.array(real_rewards(*args, **kwargs))
        calls.append(1)
        if len(calls) == 1:  # the first try of iteration 1
            rewards[0, -1] = np.inf
        return rewards

    monkeypatch.setattr(training, "logits_to_rewards", inf_once)
    messages = []
    result = training.train(tiny_cfg(iterations=2, pretrain_steps=0, deterministic=False, on_nonfinite="skip"),
                            data=midi_dir, out=tmp_path, progress=False, log=messages.append)
    assert [m for m in messages if m.startswith("skipped")] == ["skipped a batch: non-finite rewards at iteration 1"]
    assert result.status == "finished" and result.iteration == 2 and len(calls) == 3
    rows = read_metrics(result.run_dir)
    assert [r["iteration"] for r in rows] == [1, 2]
    # the skipped batch left no trace in the statistics: every later number is finite
    assert all(np.isfinite(r[k]) for r in rows for k in ("reward_mean", "baseline", "policy_loss", "d_loss"))


def test_pretraining_step_with_nan_is_skipped_and_its_weights_taken_back(midi_dir, tmp_path, monkeypatch):
    real_step = distribute.pretrain_step
    entry_weights = []

    def nan_once(policy, optimizer, *args, **kwargs):
        entry_weights.append([np.array(v.numpy()) for v in policy.trainable_variables])
        nll = real_step(policy, optimizer, *args, **kwargs)
        if len(entry_weights) == 2:  # the step learnt, then went bad: a weight and the loss are NaN
            w = policy.trainable_variables[0]
            w.assign(np.full(w.shape, np.nan, dtype=np.float32))
            return float("nan")
        return nll

    monkeypatch.setattr(distribute, "pretrain_step", nan_once)
    messages = []
    result = training.train(tiny_cfg(iterations=1, pretrain_steps=3, mle_every=0, deterministic=False,
                                     on_nonfinite="skip"),
                            data=midi_dir, out=tmp_path, progress=False, log=messages.append)
    assert [m for m in messages if m.startswith("skipped")] == [
        "skipped a batch: non-finite pretraining loss (NLL) at pretraining step 2"]
    assert result.status == "finished" and len(entry_weights) == 4
    # the retry of step 2 starts from the weights step 2 started from
    for before, retry in zip(entry_weights[1], entry_weights[2]):
        np.testing.assert_array_equal(retry, before)
    rows = [json.loads(line) for line in (result.run_dir / "pretrain.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and all(np.isfinite(r["nll"]) for r in rows)


def test_batch_skipped_after_d_learned_from_it_leaves_replay_and_statistics_untouched(midi_dir, tmp_path,
                                                                                    monkeypatch):
    # a NaN in the policy loss comes after D's update put the batch in the replay buffer and after the
    # baseline and the return normalizer took it in: the skip must take all of it back
    real_step = distribute.reinforce_step
    calls = []

    def nan_once(*args, **kwargs):
        stats = real_step(*args, **kwargs)
        calls.append(1)
        # the first pass of the second iteration (each iteration makes cfg.ppo_epochs passes)
        return {**stats, "loss": float("nan")} if len(calls) == cfg.ppo_epochs + 1 else stats

    # what the loop holds besides weights, as it was when the batch began and after the skip undid it
    def host_state(state):
        return {**{f"d_{k}": np.array(v, copy=True) for k, v in state.d.get_state().items()},
                "baseline": state.baseline.get_state(), "normalizer": state.normalizer.get_state()}

    seen = {"snapshot": [], "restored": []}
    real_snapshot, real_restore = training._snapshot, training._restore

    def snapshot(state, **kwargs):
        out = real_snapshot(state, **kwargs)
        seen["snapshot"].append(host_state(state))
        return out

    def restore(state, snap):
        real_restore(state, snap)
        seen["restored"].append(host_state(state))

    monkeypatch.setattr(training, "_snapshot", snapshot)
    monkeypatch.setattr(training, "_restore", restore)
    monkeypatch.setattr(distribute, "reinforce_step", nan_once)
    messages = []
    cfg = tiny_cfg(iterations=3, pretrain_steps=0, deterministic=False, on_nonfinite="skip",
                   reward_normalize=True, d_replay_share=0.25, d_steps=2)
    # the NaN comes at the second iteration, when the replay buffer is full (capacity 16, 16 clips per iteration)
    result = training.train(cfg, data=midi_dir, out=tmp_path, progress=False, log=messages.append)
    assert [m for m in messages if m.startswith("skipped")] == ["skipped a batch: non-finite policy loss at iteration 2"]
    # three iterations' passes, and the skipped batch's first
    assert result.status == "finished" and result.iteration == 3 and len(calls) == 3 * cfg.ppo_epochs + 1
    before, after = seen["snapshot"][1], seen["restored"][0]
    assert before.keys() == after.keys() and before["d_replay_counters"][1] == 16
    for k in before:
        if isinstance(before[k], np.ndarray):
            np.testing.assert_array_equal(after[k], before[k], err_msg=k)
        else:
            assert after[k].keys() == before[k].keys()
            for j in before[k]:
                np.testing.assert_array_equal(after[k][j], before[k][j], err_msg=f"{k}.{j}")
    arrays, meta = load_checkpoint(result.checkpoint)
    capacity, size, pos, n_seen = arrays["d_replay_counters"].tolist()
    assert n_seen == 3 * cfg.d_steps * cfg.batch_size  # three kept iterations, each storing its batch per D step
    assert meta["baseline_n_updates"] == 3
    assert meta["normalizer"]["count"] == 3 * cfg.batch_size * cfg.n_steps


def test_full_disk_while_training_is_one_clear_error_line(midi_dir, tmp_path, monkeypatch, capsys):
    ckpts = run_paths(tmp_path / "full").checkpoints
    real_replace = os.replace
    seen = {}

    def replace(src, dst):
        if Path(src).name.startswith(f".tmp-{checkpoint_name(2)}-"):
            seen["hash"] = _tree_hash(ckpts / checkpoint_name(1))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr(checkpoint_module.os, "replace", replace)
    code = main(_train_argv(midi_dir, tmp_path, "full"))
    monkeypatch.undo()
    _, err = capsys.readouterr()
    assert code == 2
    assert err == f"error: cannot write checkpoint {str(ckpts / checkpoint_name(2))!r}: No space left on device\n"
    assert latest_checkpoint(ckpts).name == checkpoint_name(1)
    assert (ckpts / LATEST_FILE).read_text().strip() == checkpoint_name(1)
    assert _tree_hash(ckpts / checkpoint_name(1)) == seen["hash"]
    assert _hidden(ckpts) == []
    _load_fully(ckpts / checkpoint_name(1))


# --------------------------------------------------------------------------
# the killed, resumed and interrupted processes
# --------------------------------------------------------------------------


def test_sigkill_during_a_checkpoint_write_leaves_only_complete_checkpoints(killed):
    after = killed["after_kill"]
    visible = [n for n in after["listing"] if not n.startswith(".")]
    assert LATEST_FILE in visible and "pretrained" in visible, after["listing"]
    # every visible folder is whole: state, arrays and every TF tensor read back, with its own iteration
    for name in visible:
        if name == LATEST_FILE:
            continue
        arrays, meta, tensors = after["loaded"][name]
        assert tensors and "baseline_value" in arrays and "d_replay_items" in arrays, name
        if name != "pretrained":
            assert meta["iteration"] == checkpoint_iteration(name)
    assert [n for n in visible if n.startswith("iter-")] == after["complete"]
    assert killed["k"] >= 2
    # the pointer names a complete checkpoint, at most one behind the newest
    pointed = checkpoint_iteration(after["pointer"])
    assert after["pointer"] in visible and killed["k"] - 1 <= pointed <= killed["k"]
    assert after["latest"].name == checkpoint_name(killed["k"])
    # what a kill leaves behind is hidden, and gone once the resumed run writes a checkpoint
    assert all(n.startswith((".tmp-", ".old-", ".del-", f".{LATEST_FILE}.")) for n in after["listing"]
               if n.startswith("."))
    assert _hidden(run_paths(killed["run_dir"]).checkpoints) == []


def test_resume_after_sigkill_starts_at_the_newest_complete_checkpoint(killed):
    k = killed["k"]
    ckpt = run_paths(killed["run_dir"]).checkpoints / checkpoint_name(k)
    assert f"resumed from iteration {k} ({ckpt})" in killed["b_out"], killed["b_describe"]


def test_resumed_run_matches_an_uninterrupted_one(killed):
    """Same rows and same checkpoint as a run never stopped: every piece of state came back.

    With op determinism on, any difference in the restored weights, Adam
    moments, replay buffer, baseline or generator states would change the
    numbers of the iterations after the resume (the optimizer's from the
    second one on).
    """
    k = killed["k"]
    rows = read_metrics(killed["run_dir"])
    ref_rows = read_metrics(killed["ref_dir"])
    assert len(ref_rows) == REF_ITERATIONS
    n = rows[-1]["iteration"]
    assert k + 3 <= n <= REF_ITERATIONS, killed["b_describe"]
    for i in range(k, n):
        assert _numbers(rows[i]) == _numbers(ref_rows[i]), f"iteration {i + 1}"

    ours = _load_fully(run_paths(killed["run_dir"]).checkpoints / checkpoint_name(n))
    ref = _load_fully(run_paths(killed["ref_dir"]).checkpoints / checkpoint_name(n))
    assert ours[0].keys() == ref[0].keys() and ours[2].keys() == ref[2].keys()
    for name in ref[0]:
        np.testing.assert_array_equal(ours[0][name], ref[0][name], err_msg=name)
    for name in ref[2]:
        np.testing.assert_array_equal(ours[2][name], ref[2][name], err_msg=name)
    strip = lambda meta: {k: v for k, v in meta.items() if k not in WALL_CLOCK_META}  # noqa: E731
    assert strip(ours[1]) == strip(ref[1])
    assert ours[1]["iteration"] == n and any("optimizer" in name for name in ref[2])


def test_metrics_after_resume_have_each_iteration_once(killed):
    """Rows written after the checkpoint a run resumes from are dropped; earlier rows are kept as they were."""
    k = killed["k"]
    rows = read_metrics(killed["run_dir"])
    assert [r["iteration"] for r in rows] == list(range(1, rows[-1]["iteration"] + 1))
    before = [r for r in killed["after_kill"]["rows"] if r["iteration"] <= k]
    assert rows[:k] == before and len(before) == k
    # the log file itself holds no torn or repeated line
    lines = run_paths(killed["run_dir"]).metrics.read_text().splitlines()
    assert len(lines) == len(rows)


def test_sigint_writes_a_checkpoint_and_exits_130(killed):
    assert killed["b_code"] == 130, killed["b_describe"]
    last = killed["b_out"].strip().splitlines()[-1]
    m = re.fullmatch(r"interrupted by SIGINT at iteration (\d+): checkpoint written to (\S+); "
                     r"continue with --resume", last)
    assert m, last
    n = int(m.group(1))
    ckpts = run_paths(killed["run_dir"]).checkpoints
    assert Path(m.group(2)) == ckpts / checkpoint_name(n) == latest_checkpoint(ckpts)
    assert (ckpts / LATEST_FILE).read_text().strip() == checkpoint_name(n)
    _, meta, _ = _load_fully(ckpts / checkpoint_name(n))
    assert meta["iteration"] == n == read_metrics(killed["run_dir"])[-1]["iteration"]


def test_two_processes_with_the_same_seed_log_the_same_numbers(killed):
    # the killed run's first rows were written before anything stopped it
    first = [r for r in killed["after_kill"]["rows"] if r["iteration"] <= killed["k"]]
    ref = read_metrics(killed["ref_dir"])[: len(first)]
    assert len(first) >= 2
    assert [_numbers(r) for r in first] == [_numbers(r) for r in ref]
    assert {"reward_mean", "d_loss", "policy_loss", "entropy"} <= set(_numbers(first[0]))
