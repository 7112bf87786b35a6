"""The discriminator: shapes, causality, learning, stabilisers, replay buffer."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from musicrl.config import Config
from musicrl.learning.discriminator import (
    CNN_STRIDE,
    DiscriminatorTrainer,
    build_discriminator,
    check_d_inputs,
    check_d_seqs,
    d_input_kind,
    d_input_shape,
    d_inputs,
    discriminator_accuracy,
    fit_discriminator,
    predict_step_logits,
    predict_step_probs,
    step_frame_indices,
)
from musicrl.errors import MusicRLError
from musicrl.audio.mel import seq_to_mel
from musicrl.music.midi import rand_midis
from musicrl.music.vectorize import midi_to_seq

ARCHS = ["cnn", "lstm", "seq"]


@pytest.fixture(autouse=True)
def _seeded_weights():
    """Same initial weights on every run, so no test depends on a lucky draw."""
    keras.utils.set_random_seed(0)


def _mels(seqs, cfg):
    return seq_to_mel(seqs, **{**cfg.synth_kwargs(), **cfg.mel_kwargs()})


def _rand_seqs(rng, cfg, n, kind):
    midis = rand_midis(n, rng, kind=kind, n_chords=cfg.n_steps, bpm=cfg.bpm)
    seqs = np.stack([midi_to_seq(m, n_pitches=cfg.n_pitches, **cfg.grid_kwargs())[: cfg.n_steps] for m in midis])
    assert seqs.shape == (n, cfg.n_steps, cfg.n_pitches)
    return seqs


def _x(seqs, cfg):
    return d_inputs(seqs, cfg)


# --- the frame each step is read at -----------------------------------------------


@pytest.mark.parametrize("step_samples,hop,n_fft", [(8000, 256, 1024), (4000, 512, 2048), (1000, 128, 512), (700, 100, 400)])
def test_step_frame_indices_is_last_frame_ending_in_step(step_samples, hop, n_fft):
    frames = step_frame_indices(n_steps=6, step_samples=step_samples, hop_length=hop, n_fft=n_fft)
    for t, f in enumerate(frames):
        end = (t + 1) * step_samples
        # brute force: the largest centred frame whose window [i*hop - n_fft/2, i*hop + n_fft/2) ends by `end`
        want = max(i for i in range(10_000) if i * hop + n_fft // 2 <= end)
        assert f == want


def test_step_frame_indices_clamps_short_steps():
    # steps shorter than half a window cannot be read causally: frame 0 is used
    frames = step_frame_indices(n_steps=3, step_samples=256, hop_length=256, n_fft=1024)
    np.testing.assert_array_equal(frames, [0, 0, 1])
    with pytest.raises(MusicRLError, match="must be >= 1"):
        step_frame_indices(n_steps=0, step_samples=256, hop_length=256, n_fft=1024)


# --- shapes -------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("n_steps,n_mels", [(4, 32), (16, 64)])
def test_output_shapes(rng, arch, n_steps, n_mels):
    cfg = Config(n_steps=n_steps, n_mels=n_mels, d_arch=arch, d_channels=8, d_lstm_units=8)
    d = build_discriminator(cfg)
    assert d.name == f"discriminator_{arch}"
    shape = d_input_shape(cfg)
    assert shape == ((n_steps, cfg.n_pitches) if arch == "seq" else (cfg.n_frames, n_mels))
    x = rng.uniform(-cfg.top_db, 0, size=(3, *shape)).astype(np.float32)
    logits = predict_step_logits(d, x, cfg)
    assert logits.shape == (3, n_steps) and logits.dtype == np.float32
    assert np.all(np.isfinite(logits))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("units", [0, 16])
def test_head_units_put_a_hidden_layer_before_the_logit(arch, units):
    cfg = Config(n_steps=4, n_mels=32, d_arch=arch, d_channels=8, d_lstm_units=8, d_head_units=units)
    d = build_discriminator(cfg)
    logit_in = d.get_layer("logit").kernel.shape[0]
    if units:
        hidden = d.get_layer("head_hidden")
        assert hidden.units == units and logit_in == units
    else:
        assert "head_hidden" not in [layer.name for layer in d.layers]
        assert logit_in > 1


# --- causality --------------------------------------------------------------------


CAUSAL_CASES = [
    dict(d_arch="cnn"),
    dict(d_arch="cnn", d_loudness_norm="running", d_minibatch_std=True, d_spectral_norm=True),
    dict(d_arch="cnn", d_loudness_norm="frame"),
    dict(d_arch="cnn", d_head_units=16),
    dict(d_arch="lstm", d_lstm_units=16),
    dict(d_arch="seq"),
    dict(d_arch="seq", d_head_units=16, d_spectral_norm=True),
]


@pytest.mark.parametrize("settings", CAUSAL_CASES, ids=lambda s: "-".join(str(v) for v in s.values()))
@pytest.mark.parametrize("t", [0, 3, 6])
def test_later_audio_does_not_change_earlier_logits(rng, settings, t):
    cfg = Config(n_steps=8, **settings)
    d = build_discriminator(cfg)
    seqs = _rand_seqs(rng, cfg, 2, "noise")
    changed = seqs.copy()
    # a different piece from step t + 1 on
    changed[:, t + 1 :] = _rand_seqs(rng, cfg, 2, "progression")[:, t + 1 :]
    assert not np.array_equal(changed, seqs)
    # one mel call for both versions (a clip's mel does not depend on its batch)
    x = _x(np.concatenate([seqs, changed]), cfg)
    before = predict_step_logits(d, x[:2])
    after = predict_step_logits(d, x[2:])
    np.testing.assert_allclose(after[:, : t + 1], before[:, : t + 1], atol=1e-5)
    # and the change is heard later (the test could fail)
    assert np.abs(after[:, t + 1 :] - before[:, t + 1 :]).max() > 1e-4


def test_cnn_reads_each_step_at_or_before_its_frame(cfg):
    # perturbing the frame just after step t's read frame leaves logit t alone
    cfg = dataclasses.replace(cfg, d_arch="cnn")
    d = build_discriminator(cfg)
    frames = step_frame_indices(n_steps=cfg.n_steps, step_samples=cfg.step_samples, hop_length=cfg.hop_length, n_fft=cfg.n_fft)
    x = np.full((1, *d_input_shape(cfg)), -40.0, np.float32)
    base = predict_step_logits(d, x)
    for t in (0, 4):
        y = x.copy()
        y[0, frames[t] + 1 :] = 0.0
        np.testing.assert_allclose(predict_step_logits(d, y)[0, : t + 1], base[0, : t + 1], atol=1e-5)
        # the cnn hears frame (f_t // stride) * stride
        y = x.copy()
        y[0, (frames[t] // CNN_STRIDE) * CNN_STRIDE] = 0.0
        assert abs(predict_step_logits(d, y)[0, t] - base[0, t]) > 1e-6


# --- learning ---------------------------------------------------------------------


@pytest.mark.parametrize("arch,lr,steps", [("cnn", 1e-3, 40), ("lstm", 1e-3, 40), ("seq", 3e-3, 30)])
def test_d_separates_progressions_from_noise(rng, arch, lr, steps):
    # rand_progression (triads and sevenths) stands in for real music, rand_noise for the agent
    # beta_1 = 0.9 keeps a D on fixed data from oscillating (over 6 init seeds: >= 0.94 held-out accuracy)
    cfg = Config(n_steps=8, d_arch=arch, d_learning_rate=lr, d_beta_1=0.9, d_label_smoothing=0.0,
                 d_lstm_units=32)
    x = _x(np.concatenate([_rand_seqs(rng, cfg, 96, "progression"), _rand_seqs(rng, cfg, 96, "noise")]), cfg)
    real_x, gen_x = x[:96], x[96:]
    keras.utils.set_random_seed(0)
    trainer = DiscriminatorTrainer(cfg, seed=1)
    for i in range(steps):
        idx = rng.choice(64, size=16, replace=False)
        metrics = trainer.train_step(real_x[idx], gen_x[idx])
    assert set(metrics) == {"loss", "loss_real", "loss_gen", "gp", "acc_real", "acc_gen"}
    # held-out clips
    pred_real = trainer.step_logits(real_x[64:])[:, -1]
    pred_gen = trainer.step_logits(gen_x[64:])[:, -1]
    acc = 0.5 * ((pred_real > 0).mean() + (pred_gen < 0).mean())
    assert acc > 0.9, acc


# --- the loss and its stabilisers ----------------------------------------------


def _bce(logits, y):
    return np.mean(np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits))))


@pytest.mark.parametrize("smoothing,loss_steps", [(0.0, "all"), (0.2, "last"), (0.2, "all")])
def test_loss_matches_numpy_with_label_smoothing(rng, smoothing, loss_steps):
    cfg = Config(n_steps=4, d_arch="seq", d_label_smoothing=smoothing, d_loss_steps=loss_steps, d_replay_share=0.0)
    trainer = DiscriminatorTrainer(cfg)
    real_x = (rng.random((6, 4, cfg.n_pitches)) < 0.1).astype(np.float32)
    gen_x = (rng.random((5, 4, cfg.n_pitches)) < 0.1).astype(np.float32)
    lr, lg = trainer.step_logits(real_x), trainer.step_logits(gen_x)
    if loss_steps == "last":
        lr, lg = lr[:, -1:], lg[:, -1:]
    m = trainer.train_step(real_x, gen_x)
    np.testing.assert_allclose(m["loss_real"], _bce(lr, 1.0 - smoothing), rtol=1e-5)
    np.testing.assert_allclose(m["loss_gen"], _bce(lg, 0.0), rtol=1e-5)
    np.testing.assert_allclose(m["loss"], m["loss_real"] + m["loss_gen"], rtol=1e-6)
    assert m["gp"] == 0.0


def test_label_smoothing_penalizes_confident_real():
    confident = np.full((4, 3), 8.0)
    assert _bce(confident, 0.9) > _bce(confident, 1.0) + 0.5


def _penalized(rng, kind, weight, n_real, n_gen):
    """A small cnn D's trainer with a gradient penalty, and random dB inputs: n_real real, n_gen generated."""
    cfg = Config(n_steps=4, n_mels=16, d_arch="cnn", d_channels=8, d_gp_kind=kind, d_gp_weight=weight,
                 d_replay_share=0.0)
    draw = lambda n: rng.uniform(-80, 0, (n, *d_input_shape(cfg))).astype(np.float32)  # noqa: E731
    return DiscriminatorTrainer(cfg), draw(n_real), draw(n_gen)


def test_r1_penalty_matches_direct_gradient(rng):
    trainer, real_x, gen_x = _penalized(rng, "r1", 10.0, 3, 3)
    x = tf.constant(real_x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = tf.reduce_sum(tf.reduce_mean(trainer.model(x, training=True), axis=1))
    g = tape.gradient(score, x).numpy()
    want = 0.5 * np.mean(np.sum(g**2, axis=(1, 2)))
    m = trainer.train_step(real_x, gen_x)
    assert want > 0
    np.testing.assert_allclose(m["gp"], want, rtol=1e-4)
    np.testing.assert_allclose(m["loss"], m["loss_real"] + m["loss_gen"] + 10.0 * m["gp"], rtol=1e-5)


def test_wgan_gp_penalty_is_added(rng):
    trainer, real_x, gen_x = _penalized(rng, "wgan_gp", 5.0, 4, 3)
    m = trainer.train_step(real_x, gen_x)
    # a fresh D's input gradient is far from unit norm, so the penalty is clearly positive
    assert m["gp"] > 1e-3
    np.testing.assert_allclose(m["loss"], m["loss_real"] + m["loss_gen"] + 5.0 * m["gp"], rtol=1e-5)


def test_spectral_norm_bounds_kernels(rng):
    cfg = Config(n_steps=4, n_mels=16, d_arch="cnn", d_channels=8, d_spectral_norm=True, d_replay_share=0.0)
    trainer = DiscriminatorTrainer(cfg)
    wrapped = [layer for layer in trainer.model.layers if isinstance(layer, keras.layers.SpectralNormalization)]
    assert len(wrapped) == 7  # six convs and the logit
    x = rng.uniform(-80, 0, (4, *d_input_shape(cfg))).astype(np.float32)
    for _ in range(5):
        trainer.train_step(x, x[::-1])
    # each training-mode call runs one power iteration and normalizes the kernels it then uses
    # (the update after it moves them slightly); a few more calls let the iteration converge
    for _ in range(20):
        trainer.model(x, training=True)
    for layer in wrapped:
        k = np.asarray(layer.layer.kernel)
        sigma = np.linalg.svd(k.reshape(-1, k.shape[-1]), compute_uv=False)[0]
        # unnormalized kernels of this D reach about 1.4 after the same steps
        assert abs(sigma - 1.0) < 0.03, (layer.name, sigma)


def test_minibatch_std_depends_on_batch(rng):
    cfg = Config(n_steps=4, n_mels=16, d_arch="cnn", d_channels=8, d_minibatch_std=True)
    d = build_discriminator(cfg)
    x = rng.uniform(-80, 0, (4, *d_input_shape(cfg))).astype(np.float32)
    alone = predict_step_logits(d, x[:1])
    together = predict_step_logits(d, x)[:1]
    assert np.abs(alone - together).max() > 1e-6


@pytest.mark.parametrize("loudness,invariant", [("none", False), ("frame", True), ("running", True)])
def test_loudness_norm_ignores_a_uniform_gain(rng, loudness, invariant):
    cfg = Config(n_steps=4, n_mels=16, d_arch="cnn", d_channels=8, d_loudness_norm=loudness)
    d = build_discriminator(cfg)
    x = rng.uniform(-70, -10, (2, *d_input_shape(cfg))).astype(np.float32)
    a, b = predict_step_logits(d, x), predict_step_logits(d, x + 6.0)
    if invariant:
        np.testing.assert_allclose(a, b, atol=1e-4)
    else:
        assert np.abs(a - b).max() > 1e-4


def test_jit_compiled_step_matches_graph_step(rng):
    cfg = Config(n_steps=4, d_arch="seq", d_channels=8, d_replay_share=0.0)
    real_x = (rng.random((4, 4, cfg.n_pitches)) < 0.1).astype(np.float32)
    gen_x = (rng.random((4, 4, cfg.n_pitches)) < 0.1).astype(np.float32)
    model = build_discriminator(cfg)
    weights = model.get_weights()
    results = []
    for jit in (False, True):
        model.set_weights(weights)
        trainer = DiscriminatorTrainer(cfg, model, jit_compile=jit)
        m = trainer.train_step(real_x, gen_x)
        results.append((m["loss"], trainer.step_logits(real_x)))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    np.testing.assert_allclose(results[0][1], results[1][1], atol=1e-5)


@pytest.mark.parametrize("arch, settings", [
    ("cnn", {}), ("lstm", {}), ("seq", {}),
    ("cnn", {"d_gp_weight": 1.0, "d_loss_steps": "last"}), ("seq", {"d_gp_weight": 1.0, "d_gp_kind": "wgan_gp"}),
    ("cnn", {"d_minibatch_std": True}), ("cnn", {"d_spectral_norm": True}), ("seq", {"d_jit_compile": True}),
    ("cnn", {"d_head_units": 16}),
])
@pytest.mark.parametrize("replay_share", [0.0, 0.5])
def test_train_and_score_is_scoring_then_training(rng, arch, settings, replay_share):
    cfg = Config(n_steps=4, d_arch=arch, d_channels=8, d_lstm_units=8, d_replay_share=replay_share,
                 d_replay_capacity=16, **settings)

    def make(n):
        if arch == "seq":
            return (rng.random((n, *d_input_shape(cfg))) < 0.1).astype(np.float32)
        return rng.uniform(-cfg.top_db, 0, (n, *d_input_shape(cfg))).astype(np.float32)

    model = build_discriminator(cfg)
    weights = model.get_weights()
    separate = DiscriminatorTrainer(cfg, model, seed=3)
    other_model = build_discriminator(cfg)
    other_model.set_weights(weights)
    fused = DiscriminatorTrainer(cfg, other_model, seed=3)
    assert fused.scores_in_update is not (cfg.d_minibatch_std or cfg.d_spectral_norm)
    # three rounds: the buffer is empty in the first, then swaps 3 of 6 clips
    for _ in range(3):
        real_x, gen_x = make(6), make(6)
        pred_gen = separate.step_logits(gen_x)
        stats = separate.train_step(real_x, gen_x)
        fused_stats, fused_pred_gen = fused.train_and_score(real_x, gen_x)
        assert fused_pred_gen.shape == (6, cfg.n_steps) and fused_pred_gen.dtype == np.float32
        np.testing.assert_allclose(fused_pred_gen, pred_gen, atol=1e-4)
        assert fused_stats.keys() == stats.keys()
        np.testing.assert_allclose([fused_stats[k] for k in stats], [stats[k] for k in stats], rtol=1e-5, atol=1e-6)
        for a, b in zip(fused.model.get_weights(), separate.model.get_weights()):
            np.testing.assert_allclose(a, b, atol=1e-6)
    # the logits are of the D before the update: scoring after it differs
    assert np.abs(fused.step_logits(gen_x) - fused_pred_gen).max() > 1e-4
    if replay_share:
        np.testing.assert_array_equal(fused.buffer.items, separate.buffer.items)


def test_a_model_with_dropout_is_scored_apart():
    cfg = Config(n_steps=4, d_arch="seq", d_channels=8)
    x = keras.Input(shape=d_input_shape(cfg))
    h = keras.layers.Dropout(0.5)(keras.layers.Dense(4)(x))
    model = keras.Model(x, keras.layers.Reshape((cfg.n_steps,))(keras.layers.Dense(1)(h)))
    assert not DiscriminatorTrainer(cfg, model).scores_in_update
    assert DiscriminatorTrainer(cfg).scores_in_update


@pytest.mark.parametrize("arch", ["cnn", "lstm", "seq"])
def test_xla_scoring_matches_graph_scoring(rng, arch):
    cfg = Config(n_steps=4, d_arch=arch, d_channels=8, d_lstm_units=8, d_replay_share=0.0)
    model = build_discriminator(cfg)
    if arch == "seq":
        x = (rng.random((3, *d_input_shape(cfg))) < 0.1).astype(np.float32)
    else:
        x = rng.uniform(-cfg.top_db, 0, (3, *d_input_shape(cfg))).astype(np.float32)
    graph = DiscriminatorTrainer(cfg, model, predict_jit_compile=False).step_logits(x)
    xla = DiscriminatorTrainer(cfg, model, predict_jit_compile=True).step_logits(x)
    assert graph.shape == (3, cfg.n_steps)
    np.testing.assert_allclose(xla, graph, atol=1e-4)


def test_model_saves_and_loads(tmp_path, rng, cfg):
    cfg = dataclasses.replace(cfg, d_arch="cnn", d_loudness_norm="running", d_minibatch_std=True, d_channels=8)
    d = build_discriminator(cfg)
    x = rng.uniform(-80, 0, (2, *d_input_shape(cfg))).astype(np.float32)
    d.save(tmp_path / "d.keras")
    loaded = keras.models.load_model(tmp_path / "d.keras")
    np.testing.assert_allclose(predict_step_logits(loaded, x), predict_step_logits(d, x), atol=1e-6)


# --- inputs -------------------------------------------------------------------------


def test_d_inputs_by_kind(rng, cfg):
    seqs = _rand_seqs(rng, cfg, 2, "progression")
    mel_cfg = dataclasses.replace(cfg, d_arch="cnn")
    seq_cfg = dataclasses.replace(cfg, d_arch="seq")
    assert d_input_kind(mel_cfg) == "mel" and d_input_kind(seq_cfg) == "seq"
    np.testing.assert_array_equal(d_inputs(seqs, seq_cfg), seqs)
    np.testing.assert_allclose(d_inputs(seqs, mel_cfg), _mels(seqs, cfg))
    given = np.zeros((2, cfg.n_frames, cfg.n_mels), np.float32)
    np.testing.assert_array_equal(d_inputs(seqs, mel_cfg, mels=given), given)


def test_bad_inputs_raise(cfg):
    with pytest.raises(MusicRLError, match=r"\(batch, n_frames, n_mels\)"):
        check_d_inputs(np.zeros((2, 10, cfg.n_mels)), cfg)
    with pytest.raises(MusicRLError, match="NaN"):
        check_d_inputs(np.full((1, cfg.n_frames, cfg.n_mels), np.nan), cfg)
    with pytest.raises(MusicRLError, match="steps"):
        d_inputs(np.zeros((1, cfg.n_steps + 1, cfg.n_pitches)), cfg)
    with pytest.raises(MusicRLError, match="callable"):
        predict_step_logits(42, np.zeros((1, cfg.n_frames, cfg.n_mels)))


@pytest.mark.parametrize("shape,match", [
    ((2, 1, 48), "4 steps"), ((2, 4, 47), "48 pitch columns"), ((3,), "shape"),
])
def test_check_d_seqs_names_what_is_wrong(shape, match):
    cfg = Config(n_steps=4, n_pitches=48)
    with pytest.raises(MusicRLError, match=f"gen_seqs must .*{match}"):
        check_d_seqs(np.zeros(shape), cfg, name="gen_seqs")
    ok = check_d_seqs(np.ones((2, 4, 48), bool), cfg)
    assert ok.dtype == np.float32 and ok.shape == (2, 4, 48)


# --- replay in the trainer ------------------------------------------------------------


def test_trainer_state_round_trip_reproduces_batches(rng):
    cfg = Config(n_steps=4, d_arch="seq", d_channels=8, d_replay_share=0.5, d_replay_capacity=16)
    make = lambda: (rng.random((4, 4, cfg.n_pitches)) < 0.1).astype(np.float32)  # noqa: E731
    trainer = DiscriminatorTrainer(cfg, seed=5)
    for _ in range(3):
        trainer.train_step(make(), make())
    state = trainer.get_state()
    other = DiscriminatorTrainer(cfg, seed=6)
    other.set_state(state)
    gen = make()
    np.testing.assert_array_equal(other.buffer.mix(gen, 0.5), trainer.buffer.mix(gen, 0.5))


def test_trainer_undo_restores_replay_and_random_state(rng):
    cfg = Config(n_steps=4, d_arch="seq", d_channels=8, d_replay_share=0.5, d_replay_capacity=8)
    make = lambda: (rng.random((4, 4, cfg.n_pitches)) < 0.1).astype(np.float32)  # noqa: E731
    trainer = DiscriminatorTrainer(cfg, seed=5)
    trainer.train_step(make(), make())
    before = trainer.get_state()
    trainer.mark()
    for _ in range(3):
        trainer.train_step(make(), make())
    trainer.undo()
    after = trainer.get_state()
    assert after.keys() == before.keys()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])
    with pytest.raises(MusicRLError, match="nothing to undo"):
        DiscriminatorTrainer(cfg, seed=5).undo()
    # a loaded state forgets the mark: undo is refused and leaves the loaded state as it is
    trainer.mark()
    trainer.set_state(before)
    with pytest.raises(MusicRLError, match="nothing to undo"):
        trainer.undo()
    assert trainer.get_state()["trainer_rng_state"] == before["trainer_rng_state"]


# --- probabilities, accuracy and fitting D alone -------------------------------------


def test_predict_step_probs_is_the_sigmoid_of_the_logits(rng):
    logits = np.array([[-800.0, -3.0, 0.0], [2.0, 40.0, 800.0]], dtype=np.float32)
    probs = predict_step_probs(lambda x: logits, np.zeros((2, 3, 12), np.float32))
    assert probs.shape == (2, 3) and probs.dtype == np.float32
    from scipy.special import expit

    np.testing.assert_allclose(probs, expit(logits.astype(np.float64)), atol=1e-7)


@pytest.mark.parametrize("n_real,n_gen", [(4, 4), (2, 6)])
def test_discriminator_accuracy_counts_last_step_signs(n_real, n_gen):
    # a fake D whose last-step logit is the input's first value: earlier steps must not count
    def fake_d(x):
        return np.stack([-x[:, 0, 0], x[:, 0, 0]], axis=1)

    real_x = np.zeros((n_real, 3, 12), np.float32)
    real_x[: n_real // 2, 0, 0] = 1.0  # half the real clips right
    gen_x = np.ones((n_gen, 3, 12), np.float32)
    gen_x[:1, 0, 0] = -1.0  # one generated clip right
    acc = discriminator_accuracy(fake_d, real_x, gen_x)
    assert acc["acc_real"] == pytest.approx((n_real // 2) / n_real)
    assert acc["acc_gen"] == pytest.approx(1 / n_gen)
    assert acc["acc"] == pytest.approx(0.5 * (acc["acc_real"] + acc["acc_gen"]))


def test_fit_discriminator_learns_and_logs_rows(rng):
    cfg = Config(n_steps=8, d_arch="seq", d_learning_rate=3e-3, d_beta_1=0.9, d_label_smoothing=0.0)
    real_seqs = _rand_seqs(rng, cfg, 80, "progression")
    rand_seqs = _rand_seqs(rng, cfg, 80, "noise")
    keras.utils.set_random_seed(0)
    trainer = DiscriminatorTrainer(cfg, seed=1)
    history = fit_discriminator(trainer, real_seqs[:64], rand_seqs[:64], steps=25, batch_size=16, seed=2,
                                val_real_x=real_seqs[64:], val_gen_x=rand_seqs[64:], eval_every=10)
    assert [row["step"] for row in history] == [10, 20, 25]
    assert {"loss", "acc_real", "acc_gen", "val_acc_real", "val_acc_gen", "val_acc"} <= set(history[-1])
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["val_acc"] > 0.9
    assert history[-1]["val_acc"] == discriminator_accuracy(trainer, real_seqs[64:], rand_seqs[64:])["acc"]


def test_fit_discriminator_bad_settings_raise(rng):
    cfg = Config(n_steps=4, d_arch="seq")
    trainer = DiscriminatorTrainer(cfg)
    x = np.zeros((4, 4, cfg.n_pitches), np.float32)
    with pytest.raises(MusicRLError, match="steps"):
        fit_discriminator(trainer, x, x, steps=0, batch_size=2)
    with pytest.raises(MusicRLError, match="neither"):
        fit_discriminator(trainer, x, x, steps=1, batch_size=2, val_real_x=x)
    with pytest.raises(MusicRLError, match="real_x"):
        fit_discriminator(trainer, x[:, :3], x, steps=1, batch_size=2)
