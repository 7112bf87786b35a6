"""Tests of training under tf.distribute: the per-replica steps, and real runs in other processes.

The runs use the tiny settings of test_train. A strategy must be set up before
TensorFlow starts its devices, so the 2-replica runs happen in fresh
processes: 'mirrored' over two logical CPU devices (``cpu_devices=2``), and
'multiworker' as two worker processes on 127.0.0.1 with their own
``TF_CONFIG``. Steps that need no second device are checked in this process
against their one-device counterparts.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

import musicrl.learning.train as training
from musicrl.learning.agent import build_policy, clone_policy, pretrain_step, reinforce_step
from musicrl.store.checkpoint import checkpoint_name, latest_checkpoint, load_checkpoint
from musicrl.config import config_from_overrides, load_config
from musicrl.learning.discriminator import DiscriminatorTrainer, build_discriminator, d_input_shape
from musicrl.learning.distribute import (
    Distribution,
    GradientCatcher,
    OneDevice,
    configure_cpu_devices,
    d_replica_losses,
    make_distribution,
    parse_tf_config,
)
from musicrl.errors import MusicRLError
from musicrl.music.midi import rand_progression, save_midi
from musicrl.store.runs import read_metrics, run_paths
from musicrl.tests.test_train import TIMING, TINY, tiny_cfg

# float32 sums over two replicas are added in another order than over one batch
RTOL = 1e-5
TIMEOUT = 600  # seconds a training subprocess may take on a busy 2-core machine
ROW_KEYS = ("d_loss", "d_loss_real", "d_loss_gen", "reward_mean", "policy_loss", "entropy", "grad_norm")


# runs with deterministic=true switch op determinism on for the whole process
pytestmark = pytest.mark.usefixtures("restore_op_determinism")


@pytest.fixture(scope="module")
def midi_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("music")
    rng = np.random.default_rng(7)
    for i in range(4):
        save_midi(rand_progression(rng, n_chords=12), root / f"piece{i}.mid")
    return root


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", **extra)
    return env


def _train_argv(midi_dir, out, name, iterations, *sets):
    argv = ["train", "--data", str(midi_dir), "--out", str(out), "--name", name,
            "--iterations", str(iterations), "--seed", "3", "--no-progress"]
    for item in [*TINY, *sets]:
        argv += ["--set", item]
    return argv


def _wait(procs):
    """Wait for every process (killing all of them on a timeout); return their (code, stdout, stderr)."""
    try:
        outs = [p.communicate(timeout=TIMEOUT) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs)]


@pytest.fixture(scope="module")
def single(midi_dir, tmp_path_factory):
    """3 iterations on one device (the reference), in this process: the run folder."""
    result = training.train(tiny_cfg(seed=3, iterations=3), data=midi_dir, out=tmp_path_factory.mktemp("runs"),
                            progress=False, log=lambda s: None)
    assert result.status == "finished"
    return result.run_dir


@pytest.fixture(scope="module", autouse=True)
def _mirrored_process(request, midi_dir, tmp_path_factory):
    """Start the 'mirrored' run as the module starts, so it runs alongside the tests in this process."""
    if not any("mirrored_" in item.name for item in request.session.items):
        yield None
        return
    out = tmp_path_factory.mktemp("runs")
    argv = _train_argv(midi_dir, out, "mirrored", 2, "strategy=mirrored", "cpu_devices=2")
    proc = subprocess.Popen([sys.executable, "-m", "musicrl", *argv], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    yield out / "mirrored", proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def mirrored(_mirrored_process):
    """2 iterations under 'mirrored' over two logical CPU devices, in a fresh process: (run folder, stdout)."""
    run_dir, proc = _mirrored_process
    ((code, stdout, stderr),) = _wait([proc])
    assert code == 0, stderr[-3000:]
    return run_dir, stdout


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# --------------------------------------------------------------------------
# the cluster and the settings
# --------------------------------------------------------------------------


@pytest.mark.parametrize("spec, place", [
    ("", (1, 0, True, 1)),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, (2, 0, True, 1)),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, (2, 1, False, 1)),
    ({"cluster": {"chief": ["a:0"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, (2, 0, True, 2)),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1", "a:2", "b:1"]}, "task": {"type": "worker", "index": 1}},
     (4, 2, False, 2)),
])
def test_tf_config_places_this_process(spec, place):
    got = parse_tf_config(spec if isinstance(spec, str) else json.dumps(spec))
    assert (got["n_workers"], got["worker_index"], got["is_chief"], got["n_on_host"]) == place


@pytest.mark.parametrize("text, match", [
    ("not json", "TF_CONFIG must be JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "TF_CONFIG must be JSON"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "is not in its cluster"),
    ('{"cluster": {"ps": ["a:1"], "worker": ["b:2"]}, "task": {"type": "ps", "index": 0}}', "'chief' and 'worker'"),
])
def test_bad_tf_config_is_a_clear_error(text, match):
    with pytest.raises(MusicRLError, match=match):
        parse_tf_config(text)


@pytest.mark.parametrize("sets, match", [
    (["strategy=horovod"], "'strategy' must be one of"),
    (["devices=GPU:0,,GPU:1"], "'devices' must be device names"),
    (["cpu_devices=-1"], "'cpu_devices' must be >= 0"),
])
def test_bad_distribution_settings(sets, match):
    with pytest.raises(MusicRLError, match=match):
        config_from_overrides(sets=sets)


def test_default_strategy_is_one_device_with_every_row():
    dist = make_distribution(config_from_overrides(sets=["strategy=default"]))
    assert isinstance(dist, OneDevice) and dist.is_chief
    assert (dist.n_workers, dist.worker_index, dist.n_replicas) == (1, 0, 1)
    batch = np.arange(14).reshape(7, 2)
    dist.check_batch(7)  # one device takes any batch
    assert dist.worker_batch(7) == 7
    np.testing.assert_array_equal(batch[dist.worker_rows(7)], batch)
    np.testing.assert_array_equal(dist.gather(batch), batch)
    assert dist.any([False, True]) == [False, True]


def test_cpu_devices_after_tensorflow_started_is_a_clear_error():
    tf.constant(0.0)  # TensorFlow has started its devices
    have = len(tf.config.list_logical_devices("CPU"))
    configure_cpu_devices(have)  # the split it already has is fine
    with pytest.raises(MusicRLError, match=f"cpu_devices={have + 1} must be set before TensorFlow starts"):
        configure_cpu_devices(have + 1)


def test_unknown_mirrored_device_is_a_clear_error():
    with pytest.raises(MusicRLError, match="'GPU:7', which is not a device of this machine"):
        make_distribution(config_from_overrides(sets=["strategy=mirrored", "devices=GPU:7"]))


def _fake_distribution(n_workers, n_local, worker_index):
    # only the counts of a strategy: the arithmetic of sharding needs no devices
    strategy = types.SimpleNamespace(num_replicas_in_sync=n_workers * n_local,
                                     extended=types.SimpleNamespace(worker_devices=("d",) * n_local))
    return Distribution(strategy, n_workers=n_workers, worker_index=worker_index, is_chief=worker_index == 0)


@pytest.mark.parametrize("n_workers, n_local", [(1, 2), (2, 1), (2, 2), (3, 1)])
def test_workers_share_the_global_batch(n_workers, n_local):
    batch = 12 * n_local
    dists = [_fake_distribution(n_workers, n_local, w) for w in range(n_workers)]
    rows = np.concatenate([np.arange(batch)[d.worker_rows(batch)] for d in dists])
    np.testing.assert_array_equal(rows, np.arange(batch))  # every row once, in worker order
    assert all(d.worker_batch(batch) == batch // n_workers for d in dists)
    draws = [d.worker_rng(3, 11, 5).random(4) for d in dists]
    np.testing.assert_array_equal(draws[0], dists[0].worker_rng(3, 11, 5).random(4))  # reproducible
    assert len({tuple(x) for x in draws}) == n_workers  # a stream of its own per worker
    with pytest.raises(MusicRLError, match=f"batch_size={batch + 1} must be a multiple of the {n_workers * n_local}"):
        dists[0].check_batch(batch + 1)


# --------------------------------------------------------------------------
# D's loss per replica
# --------------------------------------------------------------------------

D_OPTIONS = [
    {},
    {"d_loss_steps": "last", "d_label_smoothing": 0.2},
    {"d_gp_weight": 2.0, "d_gp_kind": "r1"},
    {"d_gp_weight": 2.0, "d_gp_kind": "wgan_gp"},
    {"d_minibatch_std": True},
    {"d_arch": "seq"},
]


def _d_batch(cfg, rng, n):
    shape = (n, *d_input_shape(cfg))
    if cfg.d_arch == "seq":
        return (rng.random(shape) < 0.1).astype(np.float32), (rng.random(shape) < 0.1).astype(np.float32)
    return rng.uniform(-80, 0, shape).astype(np.float32), rng.uniform(-80, 0, shape).astype(np.float32)


@pytest.mark.parametrize("options", D_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_replica_losses_add_up_to_the_trainers_loss(options, rng):
    cfg = tiny_cfg(d_replay_share=0.0, **options)
    keras.utils.set_random_seed(0)
    trainer = DiscriminatorTrainer(cfg)
    real_x, gen_x = _d_batch(cfg, rng, 8)
    before = trainer.rng.bit_generator.state
    eps = trainer.rng.uniform(size=8).astype(np.float32)  # the draw train_step makes
    trainer.rng.bit_generator.state = before

    def terms(rows, batch):
        out = d_replica_losses(trainer.model, cfg, tf.constant(real_x[rows]), tf.constant(gen_x[rows]),
                               tf.constant(eps[rows]), global_batch_size=batch)
        return {k: float(v) for k, v in out.items()}

    whole = terms(slice(None), 8)
    halves = [terms(slice(0, 4), 8), terms(slice(4, 8), 8)]
    expected = trainer.train_step(real_x, gen_x)  # metrics of the batch before the update
    assert set(whole) == set(expected)
    for key in expected:
        np.testing.assert_allclose(whole[key], expected[key], rtol=RTOL, atol=1e-6, err_msg=key)
        if not cfg.d_minibatch_std:  # a batch statistic differs between halves and the whole
            np.testing.assert_allclose(halves[0][key] + halves[1][key], whole[key], rtol=RTOL, atol=1e-6,
                                       err_msg=key)
    if cfg.d_gp_weight:
        assert whole["gp"] > 0


# --------------------------------------------------------------------------
# the policy's gradients through the agent's own update functions
# --------------------------------------------------------------------------


def _policy_setup(rng, value_head=False):
    cfg = tiny_cfg(value_head=value_head)
    vocab = np.unique((rng.random((12, cfg.n_pitches)) < 0.1).astype(np.float32), axis=0)
    keras.utils.set_random_seed(0)
    policy = build_policy(cfg, vocab)
    seqs = policy.sample(8, rng, n_steps=cfg.n_steps).seqs
    adv = rng.normal(size=(8, cfg.n_steps)).astype(np.float32)
    return cfg, policy, seqs, adv


def test_caught_gradients_make_the_agents_update(rng):
    cfg, policy, seqs, adv = _policy_setup(rng)
    ref = clone_policy(policy, trainable=False)
    twin = clone_policy(policy)
    before = policy.get_weights()
    catcher = GradientCatcher(policy.trainable_variables)
    kwargs = dict(entropy_coef=0.01, kl_coef=0.1, ref_policy=ref)
    caught = reinforce_step(policy, catcher, seqs, adv, **kwargs)
    for a, b in zip(policy.get_weights(), before):
        np.testing.assert_array_equal(a, b)  # nothing applied
    assert catcher.received == [True] * len(policy.trainable_variables)

    opt, twin_opt = keras.optimizers.Adam(1e-2), keras.optimizers.Adam(1e-2)
    opt.apply_gradients(zip([g.value for g in catcher.gradients], policy.trainable_variables))
    stats = reinforce_step(twin, twin_opt, seqs, adv, **kwargs)
    assert caught["loss"] == pytest.approx(stats["loss"], rel=1e-6)
    for a, b in zip(policy.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_catcher_knows_the_variables_without_a_gradient(rng):
    cfg, policy, seqs, _ = _policy_setup(rng, value_head=True)
    catcher = GradientCatcher(policy.trainable_variables)
    pretrain_step(policy, catcher, seqs)  # maximum likelihood does not train the value head
    value_paths = [i for i, v in enumerate(policy.trainable_variables) if "value" in v.path]
    assert value_paths and [i for i, got in enumerate(catcher.received) if not got] == value_paths
    assert all(not np.any(catcher.gradients[i].numpy()) for i in value_paths)


def test_one_device_takes_the_agents_and_ds_own_steps(rng):
    cfg, policy, seqs, adv = _policy_setup(rng)
    twin = clone_policy(policy)
    kwargs = dict(entropy_coef=0.01, kl_coef=0.1, ref_policy=clone_policy(policy, trainable=False))
    got = OneDevice().reinforce_step(policy, keras.optimizers.Adam(1e-2), seqs, adv, **kwargs)
    expected = reinforce_step(twin, keras.optimizers.Adam(1e-2), seqs, adv, **kwargs)
    assert got == pytest.approx(expected, rel=1e-6)
    for a, b in zip(policy.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

    keras.utils.set_random_seed(0)
    d = DiscriminatorTrainer(cfg)
    plain_d = DiscriminatorTrainer(cfg, build_discriminator(cfg))
    plain_d.model.set_weights(d.model.get_weights())
    real_x, gen_x = _d_batch(cfg, rng, 8)
    pred_gen = plain_d.step_logits(gen_x)  # from D before its update
    expected = plain_d.train_step(real_x, gen_x)
    got, got_pred = OneDevice().train_and_score(d, real_x, gen_x)
    assert got == pytest.approx(expected, rel=RTOL, abs=1e-6)
    np.testing.assert_allclose(got_pred, pred_gen, rtol=RTOL, atol=1e-5)


def test_one_replica_steps_equal_the_one_device_steps(rng):
    """A MirroredStrategy over this process's one CPU: the distributed steps, all-reduce included."""
    dist = Distribution(tf.distribute.MirroredStrategy(["/cpu:0"]), n_workers=1, worker_index=0, is_chief=True)
    cfg, policy, seqs, adv = _policy_setup(rng, value_head=True)
    ret = rng.normal(size=adv.shape).astype(np.float32)
    with dist.scope():
        d = DiscriminatorTrainer(cfg)
        mirrored_policy = clone_policy(policy)
        opt = keras.optimizers.Adam(1e-2)
        opt.build(mirrored_policy.trainable_variables)
    plain_d = DiscriminatorTrainer(cfg, build_discriminator(cfg))
    plain_d.model.set_weights(d.model.get_weights())
    real_x, gen_x = _d_batch(cfg, rng, 8)
    for _ in range(2):  # the second step also mixes in replayed clips
        expected = plain_d.train_step(real_x, gen_x)
        got = dist.train_d(d, real_x, gen_x)
        for key in expected:
            np.testing.assert_allclose(got[key], expected[key], rtol=RTOL, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(dist.score(d.model, gen_x), plain_d.step_logits(gen_x), rtol=RTOL, atol=1e-5)

    plain_opt = keras.optimizers.Adam(1e-2)
    kwargs = dict(entropy_coef=0.01, kl_coef=0.1, ref_policy=clone_policy(policy, trainable=False), returns=ret,
                  clip_norm=0.05)
    expected = reinforce_step(policy, plain_opt, seqs, adv, **kwargs)
    got = dist.reinforce_step(mirrored_policy, opt, seqs, adv, **kwargs)
    assert set(got) == set(expected) and expected["grad_norm"] > 0.05  # the clipping is exercised
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=RTOL, atol=1e-6, err_msg=key)
    for a, b in zip(mirrored_policy.get_weights(), policy.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # a second pass over the batch with PPO's clipped surrogate, against the policy before the first
    kwargs.update(old_log_prob=policy.log_prob(seqs) + rng.normal(scale=0.3, size=adv.shape), clip_ratio=0.2)
    expected = reinforce_step(policy, plain_opt, seqs, adv, **kwargs)
    got = dist.reinforce_step(mirrored_policy, opt, seqs, adv, **kwargs)
    assert set(got) == set(expected) and 0 < expected["clip_frac"] < 1
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=RTOL, atol=1e-6, err_msg=key)
    nll = dist.pretrain_step(mirrored_policy, opt, seqs, clip_norm=1.0)
    assert nll == pytest.approx(pretrain_step(policy, plain_opt, seqs, clip_norm=1.0), rel=RTOL)
    # teacher forcing on the policy's own draws, with dropout: the same draws from the same seed
    nll = dist.pretrain_step(mirrored_policy, opt, seqs, clip_norm=1.0, own_share=0.5, dropout=0.2, rng=4)
    assert nll == pytest.approx(pretrain_step(policy, plain_opt, seqs, clip_norm=1.0, own_share=0.5, dropout=0.2,
                                              rng=4), rel=RTOL)
    for a, b in zip(mirrored_policy.get_weights(), policy.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------
# real runs: 'mirrored' over two devices
# --------------------------------------------------------------------------


def test_mirrored_run_writes_a_complete_run_folder(mirrored):
    run_dir, stdout = mirrored
    assert "strategy mirrored: 2 replicas on 1 worker(s), 4 episodes per replica" in stdout
    paths = run_paths(run_dir)
    assert load_config(paths.config).strategy == "mirrored"
    assert json.loads(paths.run.read_text())["data"]["train_pieces"] == 4
    rows = read_metrics(run_dir)
    assert [r["iteration"] for r in rows] == [1, 2] and [r["episodes"] for r in rows] == [8, 16]
    for row in rows:
        assert all(v is not None and np.isfinite(v) for k, v in row.items()), row
    assert latest_checkpoint(paths.checkpoints).name == checkpoint_name(2)
    assert (paths.checkpoints / "pretrained" / "state.json").is_file()
    for tag in ("real", "iter-0000000-start", "iter-0000000-pretrained", "iter-0000002-end"):
        assert len(list((paths.samples / tag).glob("*.wav"))) == 2, tag
    assert list(paths.tensorboard.glob("events.out.tfevents.*"))


def test_mirrored_first_iteration_matches_one_device(mirrored, single):
    # same seed and global batch: the same episodes and clips, split over two replicas
    two, one = read_metrics(mirrored[0])[0], read_metrics(single)[0]
    assert set(two) == set(one)
    for key in ROW_KEYS:
        np.testing.assert_allclose(two[key], one[key], rtol=RTOL, err_msg=key)
    assert two["d_loss"] > 0


def test_mirrored_checkpoint_resumes_under_default(mirrored, single, tmp_path):
    run_dir = tmp_path / "mirrored"
    shutil.copytree(mirrored[0], run_dir)
    result = training.train(resume=True, out=run_dir, progress=False, log=lambda s: None,
                            overrides={"iterations": 3, "strategy": "default", "cpu_devices": 0})
    assert result.status == "finished" and result.iteration == 3
    rows = read_metrics(run_dir)
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    assert load_config(run_paths(run_dir).config).strategy == "default"
    # 2 iterations on two replicas + 1 on one device == 3 on one device
    third = read_metrics(single)[2]
    assert set(rows[2]) - TIMING == set(third) - TIMING
    for key in ROW_KEYS:
        np.testing.assert_allclose(rows[2][key], third[key], rtol=1e-4, err_msg=key)


# --------------------------------------------------------------------------
# real runs: 'multiworker', two processes
# --------------------------------------------------------------------------

# each worker runs the same commands: a new 2-iteration run, then --resume to iteration 3
_WORKER = """
import json, sys
from musicrl.cli import main
for argv in json.loads(sys.argv[1]):
    code = main(argv)
    if code:
        sys.exit(code)
"""


def test_multiworker_run_with_two_worker_processes(midi_dir, tmp_path):
    runs = tmp_path / "runs"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    procs = []
    for index in range(2):
        # the worker is given another runs root: it must not create a run folder there (or anywhere)
        out = runs if index == 0 else tmp_path / "worker-runs"
        commands = [
            _train_argv(midi_dir, out, "mw", 2, "strategy=multiworker"),
            ["train", "--resume", "--out", str(runs / "mw"), "--iterations", "3", "--no-progress"],
        ]
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir()
        env = _env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
                   TMPDIR=str(scratch))
        procs.append(subprocess.Popen([sys.executable, "-c", _WORKER, json.dumps(commands)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    (code0, out0, err0), (code1, out1, err1) = _wait(procs)
    assert code1 == 0, err1[-3000:]
    assert code0 == 0, err0[-3000:]

    assert "strategy multiworker: 2 replicas on 2 worker(s), 4 episodes per replica" in out0
    assert "finished at iteration 2 (done)" in out0 and "resumed from iteration 2" in out0
    assert "finished at iteration 3 (done)" in out0
    assert "[worker 1] stopped at iteration 2 (finished)" in out1
    assert "[worker 1] stopped at iteration 3 (finished)" in out1

    # the chief's run folder holds the whole run
    paths = run_paths(runs / "mw")
    rows = read_metrics(paths.root)
    assert [r["iteration"] for r in rows] == [1, 2, 3] and rows[-1]["episodes"] == 24
    assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["policy_loss"]) for r in rows)
    assert latest_checkpoint(paths.checkpoints).name == checkpoint_name(3)
    _, meta = load_checkpoint(paths.checkpoints / checkpoint_name(3))
    assert meta["iteration"] == 3 and meta["episodes"] == 24
    assert (paths.samples / "iter-0000002-end").is_dir() and (paths.samples / "iter-0000003-end").is_dir()
    # the worker wrote no run folder, and deleted its temporary checkpoints
    assert sorted(p.name for p in runs.iterdir()) == ["mw"]
    assert not (tmp_path / "worker-runs").exists()
    assert not [p for p in (tmp_path / "tmp1").iterdir() if p.name.startswith("musicrl")]
