"""The Gymnasium environment: API checks, incremental audio, and equality with the batched path."""

import copy
import dataclasses
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium
import keras
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import musicrl
import musicrl.audio.mel
import musicrl.audio.synth
from musicrl.config import Config
from musicrl.learning.discriminator import DiscriminatorTrainer, build_discriminator, step_frame_indices
from musicrl.learning.env import MusicEnv, rollout_rewards, rollout_step_logits
from musicrl.errors import MusicRLError
from musicrl.audio.mel import seq_to_mel
from musicrl.learning.reward import logits_to_rewards

# Env and batched path agree to float32 round-off of the mel (seq_to_mel builds the
# STFT from note spectra, the env transforms audio slices): logits within 1e-4.
ATOL = 1e-4


@pytest.fixture(autouse=True)
def _seeded_weights():
    """Same initial weights on every run, so no test depends on a lucky draw."""
    keras.utils.set_random_seed(0)


def _seqs(rng, cfg, n):
    seqs = (rng.random((n, cfg.n_steps, cfg.n_pitches)) < 0.08).astype(np.float32)
    seqs[:, 2] = 0.0  # a rest
    return seqs


def _check_env_quietly(env):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    messages = [str(w.message) for w in caught if "gymnasium" in str(w.filename) or "gym" in str(w.message).lower()]
    assert not messages, messages


@pytest.mark.parametrize("arch", [None, "cnn", "seq"])
def test_check_env_passes(cfg, arch):
    cfg = dataclasses.replace(cfg, n_steps=4, d_arch=arch or "cnn", d_channels=8)
    env = MusicEnv(cfg, None if arch is None else build_discriminator(cfg), obs_frames=16)
    _check_env_quietly(env)


@pytest.mark.parametrize("arch", ["cnn", "lstm", "seq"])
@pytest.mark.parametrize("when", ["end", "dense", "prefixes"])
def test_env_rewards_equal_batched_rewards(rng, cfg, arch, when):
    dense, prefixes = when == "dense", when == "prefixes"
    cfg = dataclasses.replace(cfg, d_arch=arch, reward_dense=dense, reward_prefixes=prefixes, reward_clip=3.0,
                              d_lstm_units=16)
    trainer = DiscriminatorTrainer(cfg)
    seqs = _seqs(rng, cfg, 2)
    want_logits = rollout_step_logits(seqs, trainer, cfg)
    want = rollout_rewards(seqs, trainer, cfg)
    np.testing.assert_allclose(
        want, logits_to_rewards(want_logits, kind="log_d", dense=dense, prefixes=prefixes, clip=3.0)
    )
    env = MusicEnv(cfg, trainer)
    for seq, want_row, logit_row in zip(seqs, want, want_logits):
        out = env.play(seq)
        np.testing.assert_allclose(out["step_logits"], logit_row, atol=ATOL)
        np.testing.assert_allclose(out["rewards"], want_row, atol=ATOL)
        np.testing.assert_allclose(out["prob_real"], 1.0 / (1.0 + np.exp(-logit_row)), atol=ATOL)
        if when == "end":
            assert np.all(out["rewards"][:-1] == 0.0)


def test_env_mel_equals_whole_clip_mel(rng, cfg):
    seq = _seqs(rng, cfg, 1)[0]
    env = MusicEnv(cfg, obs_frames=40)
    obs, info = env.reset(seed=0)
    assert info == {"step": 0}
    assert np.all(obs["mel"] == -cfg.top_db) and obs["step"] == 0 and not obs["seq"].any()
    whole = seq_to_mel(seq[None], **{**cfg.synth_kwargs(), **cfg.mel_kwargs()})[0]
    frames = step_frame_indices(n_steps=cfg.n_steps, step_samples=cfg.step_samples, hop_length=cfg.hop_length,
                                n_fft=cfg.n_fft)
    for t, chord in enumerate(seq):
        obs, reward, terminated, truncated, info = env.step(chord)
        assert reward == 0.0 and not truncated and info == {"step": t}
        assert terminated == (t == cfg.n_steps - 1)
        n = cfg.n_frames if terminated else frames[t] + 1
        # the final frames so far, right-aligned in the window, floor before the piece
        take = min(n, 40)
        np.testing.assert_allclose(obs["mel"][-take:], whole[n - take : n], atol=1e-3)
        assert np.all(obs["mel"][: 40 - take] == -cfg.top_db)
        np.testing.assert_array_equal(obs["seq"][: t + 1], seq[: t + 1])
        assert not obs["seq"][t + 1 :].any() and obs["step"] == t + 1
    np.testing.assert_allclose(env.mel, whole, atol=1e-3)


def test_each_step_synthesizes_one_chord_and_a_slice_of_frames(rng, cfg, monkeypatch):
    calls = {"wav": [], "mel": []}
    seq_to_wav, wav_to_mel = musicrl.audio.synth.seq_to_wav, musicrl.audio.mel.wav_to_mel

    def spy_wav(seqs, **kw):
        calls["wav"].append(np.shape(seqs))
        return seq_to_wav(seqs, **kw)

    def spy_mel(wavs, **kw):
        calls["mel"].append(np.shape(wavs))
        return wav_to_mel(wavs, **kw)

    monkeypatch.setattr(musicrl.audio.synth, "seq_to_wav", spy_wav)
    monkeypatch.setattr(musicrl.audio.mel, "wav_to_mel", spy_mel)
    env = MusicEnv(cfg)
    env.play(_seqs(rng, cfg, 1)[0])
    assert calls["wav"] == [(1, 1, cfg.n_pitches)] * cfg.n_steps
    assert len(calls["mel"]) == cfg.n_steps
    # each step transforms about one step of audio plus a window, never the whole clip
    assert max(shape[-1] for shape in calls["mel"]) <= cfg.step_samples + 3 * cfg.n_fft
    assert cfg.step_samples + 3 * cfg.n_fft < cfg.n_samples


def test_callable_discriminator_and_none(cfg):
    cfg = dataclasses.replace(cfg, d_arch="seq", reward_dense=False)
    # a stand-in D: the logit of step t is the number of notes so far
    env = MusicEnv(cfg, lambda x: np.cumsum(x.sum(axis=2), axis=1))
    chord = np.zeros(cfg.n_pitches, np.int8)
    chord[[0, 4, 7]] = 1
    env.reset()
    for t in range(cfg.n_steps):
        _, reward, terminated, _, info = env.step(chord)
        assert info["step_logit"] == pytest.approx(3.0 * (t + 1))
    assert terminated and reward == pytest.approx(-np.log1p(np.exp(-3.0 * cfg.n_steps)), abs=1e-6)
    np.testing.assert_allclose(info["step_logits"], 3.0 * np.arange(1, cfg.n_steps + 1))
    assert MusicEnv(cfg).play(np.zeros((cfg.n_steps, cfg.n_pitches))).keys() == {"rewards"}


def test_bad_use_raises(cfg):
    env = MusicEnv(cfg)
    env.reset()
    with pytest.raises(MusicRLError, match="shape"):
        env.step(np.zeros(cfg.n_pitches + 1))
    with pytest.raises(MusicRLError, match="multi-hot"):
        env.step(np.full(cfg.n_pitches, 0.5))
    for _ in range(cfg.n_steps):
        env.step(np.zeros(cfg.n_pitches, np.int8))
    with pytest.raises(MusicRLError, match="reset"):
        env.step(np.zeros(cfg.n_pitches, np.int8))
    with pytest.raises(MusicRLError, match="obs_frames"):
        MusicEnv(cfg, obs_frames=0)
    with pytest.raises(MusicRLError, match="Config"):
        MusicEnv({"n_steps": 4})
    with pytest.raises(MusicRLError, match="shape"):
        env.play(np.zeros((cfg.n_steps + 1, cfg.n_pitches)))


def test_env_on_other_grids(rng):
    # steps that are not a whole number of hops, and a longer window
    cfg = Config(n_steps=5, bpm=97.0, hop_length=200, n_fft=800, n_mels=32, d_arch="cnn", d_channels=8,
                 reward_dense=True)
    d = build_discriminator(cfg)
    seqs = _seqs(rng, cfg, 1)
    env = MusicEnv(cfg, d)
    out = env.play(seqs[0])
    np.testing.assert_allclose(out["rewards"], rollout_rewards(seqs, d, cfg)[0], atol=ATOL)


def _count_notes(x):
    """A stand-in D: the logit of step t is the number of notes so far (for d_arch='seq')."""
    return np.cumsum(x.sum(axis=2), axis=1)


def test_registered_id_makes_the_env_with_its_length_and_spaces():
    cfg = Config(n_steps=6, d_arch="seq", reward_dense=True)
    env = gymnasium.make(musicrl.ENV_ID, cfg=cfg, discriminator=_count_notes, obs_frames=8)
    assert isinstance(env.unwrapped, MusicEnv) and env.unwrapped.cfg is cfg
    assert env.spec.max_episode_steps == cfg.n_steps == env.unwrapped.spec.max_episode_steps
    assert env.action_space == env.unwrapped.action_space
    assert env.observation_space["seq"].shape == (6, cfg.n_pitches)
    assert env.observation_space["mel"].shape == (8, cfg.n_mels)
    obs, _ = env.reset(seed=3)
    assert obs in env.observation_space
    chord = np.zeros(cfg.n_pitches, np.int8)
    chord[[0, 4, 7]] = 1
    ends = []
    for _ in range(cfg.n_steps):
        obs, reward, terminated, truncated, info = env.step(chord)
        assert obs in env.observation_space
        ends.append((terminated, truncated))
    assert ends == [(False, False)] * (cfg.n_steps - 1) + [(True, False)]
    np.testing.assert_allclose(info["step_logits"], 3.0 * np.arange(1, cfg.n_steps + 1))
    # the default settings without keywords, and a limit asked for at make time
    assert gymnasium.make(musicrl.ENV_ID).spec.max_episode_steps == Config().n_steps
    short = gymnasium.make(musicrl.ENV_ID, cfg=cfg, max_episode_steps=2)
    short.reset()
    assert short.step(chord)[2:4] == (False, False) and short.step(chord)[2:4] == (False, True)


def test_registration_survives_a_reload_and_keeps_tensorflow_out():
    importlib.reload(musicrl)
    assert list(gymnasium.registry).count(musicrl.ENV_ID) == 1
    code = ("import sys, musicrl, gymnasium; assert musicrl.ENV_ID in gymnasium.registry; "
            "assert not {'tensorflow', 'keras'} & set(sys.modules), sorted(sys.modules)")
    root = Path(musicrl.__file__).parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def test_made_env_passes_check_env_and_shares_d(cfg):
    cfg = dataclasses.replace(cfg, n_steps=4, d_channels=8)
    d = build_discriminator(cfg)
    env = gymnasium.make(musicrl.ENV_ID, cfg=cfg, discriminator=d, obs_frames=16)
    _check_env_quietly(env.unwrapped)
    # reading the spec or remaking from it reuses D rather than copying its weights
    remade = copy.deepcopy(env.spec).make()
    assert remade.unwrapped.discriminator is d and env.unwrapped.discriminator is d
    assert remade.spec.max_episode_steps == cfg.n_steps


def test_runs_under_sync_vector_env(rng):
    cfg = Config(n_steps=5, d_arch="seq", reward_dense=False)
    envs = gymnasium.vector.SyncVectorEnv(
        [lambda: gymnasium.make(musicrl.ENV_ID, cfg=cfg, discriminator=_count_notes, obs_frames=8)] * 3
    )
    obs, _ = envs.reset(seed=0)
    assert obs["seq"].shape == (3, cfg.n_steps, cfg.n_pitches) and obs["mel"].shape == (3, 8, cfg.n_mels)
    chords = (rng.random((cfg.n_steps, 3, cfg.n_pitches)) < 0.1).astype(np.int8)
    for t, action in enumerate(chords):
        obs, rewards, terminated, truncated, _ = envs.step(action)
        assert rewards.shape == (3,) and not truncated.any()
        assert terminated.all() == (t == cfg.n_steps - 1) and (terminated.any() == terminated.all())
    # each env wrote its own piece; the end reward is log D of its note count
    np.testing.assert_array_equal(obs["seq"], chords.transpose(1, 0, 2))
    notes = chords.sum(axis=(0, 2)).astype(np.float64)
    np.testing.assert_allclose(rewards, -np.log1p(np.exp(-notes)), atol=1e-6)
    same = gymnasium.make_vec(musicrl.ENV_ID, num_envs=2, vectorization_mode="sync", cfg=cfg,
                              discriminator=_count_notes, obs_frames=8)
    assert same.single_observation_space == envs.single_observation_space
    envs.close()
    same.close()


@pytest.mark.parametrize("n_steps", [16, 32, 64])
def test_long_pieces_keep_the_incremental_mel_exact(rng, n_steps):
    # 64 steps at 120 bpm are 32 s: the env's slices must still add up to the whole clip's mel
    cfg = Config(n_steps=n_steps, d_arch="seq", reward_dense=True)
    env = gymnasium.make(musicrl.ENV_ID, cfg=cfg, discriminator=_count_notes, obs_frames=32)
    seq = _seqs(rng, cfg, 1)[0]
    env.reset(seed=0)
    for chord in seq:
        obs, reward, terminated, truncated, info = env.step(chord.astype(np.int8))
    assert terminated and not truncated and obs["step"] == n_steps and info["step_logits"].shape == (n_steps,)
    whole = seq_to_mel(seq[None], **cfg.seq_mel_kwargs())[0]
    assert whole.shape == (cfg.n_frames, cfg.n_mels)
    np.testing.assert_allclose(env.unwrapped.mel, whole, atol=1e-3)
