"""Rewards from D's logits and the REINFORCE return helpers, checked against plain loops."""

import math

import numpy as np
import pytest
import tensorflow as tf

from musicrl.config import Config
from musicrl.errors import MusicRLError
from musicrl.learning.reward import (
    MovingAverageBaseline,
    RunningMeanStd,
    advantages,
    discounted_returns,
    gae_advantages,
    logits_to_potentials,
    logits_to_rewards,
    reward_kwargs,
)


def _log_sigmoid_loop(x):
    # the textbook definition, fine for moderate logits
    return math.log(1.0 / (1.0 + math.exp(-x)))


@pytest.mark.parametrize("batch,n_steps", [(1, 1), (3, 8), (5, 16)])
def test_log_d_matches_definition(rng, batch, n_steps):
    logits = rng.normal(scale=4.0, size=(batch, n_steps))
    phi = logits_to_potentials(logits, kind="log_d")
    want = np.array([[_log_sigmoid_loop(x) for x in row] for row in logits])
    assert phi.dtype == np.float32 and phi.shape == (batch, n_steps)
    np.testing.assert_allclose(phi, want, rtol=1e-5, atol=1e-6)
    # log D - log(1 - D) is the logit itself
    want_logit = np.array([[_log_sigmoid_loop(x) - _log_sigmoid_loop(-x) for x in row] for row in logits])
    np.testing.assert_allclose(logits_to_potentials(logits, kind="logit"), want_logit, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["log_d", "logit"])
@pytest.mark.parametrize("dense", [False, True])
def test_extreme_logits_stay_finite(kind, dense):
    logits = np.array([[-1000.0, 1000.0, -1000.0, 0.0, 1000.0]], dtype=np.float32)
    r = logits_to_rewards(logits, kind=kind, dense=dense)
    assert np.all(np.isfinite(r))
    r_tf = logits_to_rewards(tf.constant(logits), kind=kind, dense=dense).numpy()
    assert np.all(np.isfinite(r_tf))
    np.testing.assert_allclose(r_tf, r, rtol=1e-6)
    phi = logits_to_potentials(logits, kind="log_d")
    # log D(-1000) = -1000 exactly, log D(+1000) = 0
    np.testing.assert_allclose(phi[0, :2], [-1000.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("kind", ["log_d", "logit"])
@pytest.mark.parametrize("clip", [None, 2.0])
def test_end_and_dense_rewards_vs_loop(rng, kind, clip):
    logits = rng.normal(scale=3.0, size=(4, 8)).astype(np.float32)
    phi = logits_to_potentials(logits, kind=kind, clip=clip)
    end = logits_to_rewards(logits, kind=kind, dense=False, clip=clip)
    dense = logits_to_rewards(logits, kind=kind, dense=True, clip=clip)
    want_end = np.zeros_like(phi)
    want_dense = np.zeros_like(phi)
    for b in range(4):
        prev = 0.0
        for t in range(8):
            want_dense[b, t] = phi[b, t] - prev
            prev = phi[b, t]
        want_end[b, -1] = phi[b, -1]
    np.testing.assert_allclose(end, want_end, atol=1e-6)
    np.testing.assert_allclose(dense, want_dense, atol=1e-6)
    # potential-based shaping: the dense rewards of an episode sum to its end reward
    np.testing.assert_allclose(dense.sum(axis=1), end.sum(axis=1), atol=1e-5)
    if clip is not None:
        assert np.all(np.abs(phi) <= clip)
    # the TensorFlow path gives the same numbers
    dense_tf = logits_to_rewards(tf.constant(logits), kind=kind, dense=True, clip=clip)
    end_tf = logits_to_rewards(tf.constant(logits), kind=kind, dense=False, clip=clip)
    np.testing.assert_allclose(dense_tf.numpy(), dense, atol=1e-6)
    np.testing.assert_allclose(end_tf.numpy(), end, atol=1e-6)


@pytest.mark.parametrize("kind", ["log_d", "logit"])
@pytest.mark.parametrize("clip", [None, 2.0])
@pytest.mark.parametrize("n_steps", [1, 8])
def test_prefix_rewards_pay_every_step_its_potential(rng, kind, clip, n_steps):
    logits = rng.normal(scale=3.0, size=(4, n_steps)).astype(np.float32)
    phi = logits_to_potentials(logits, kind=kind, clip=clip)
    got = logits_to_rewards(logits, kind=kind, prefixes=True, clip=clip)
    want = np.array([[phi[b, t] / n_steps for t in range(n_steps)] for b in range(4)])
    np.testing.assert_allclose(got, want, atol=1e-6)
    # the return from the first step is the mean judgment over the prefixes
    np.testing.assert_allclose(discounted_returns(got)[:, 0], phi.mean(axis=1), atol=1e-5)
    got_tf = logits_to_rewards(tf.constant(logits), kind=kind, prefixes=True, clip=clip)
    np.testing.assert_allclose(got_tf.numpy(), got, atol=1e-6)
    # mid-episode, the first steps are paid what the whole episode pays them
    head = logits_to_rewards(logits[:, :1], kind=kind, prefixes=True, clip=clip, episode_steps=n_steps)
    np.testing.assert_allclose(head, got[:, :1], atol=1e-6)


def test_prefix_rewards_weigh_a_last_chord_less_than_end_rewards():
    # a piece judged real all along but fake after its last chord, and the reverse
    fake_at_end = np.array([[4.0, 4.0, 4.0, -4.0]], dtype=np.float32)
    real_at_end = np.array([[-4.0, -4.0, -4.0, 4.0]], dtype=np.float32)
    end = [logits_to_rewards(x).sum() for x in (fake_at_end, real_at_end)]
    every = [logits_to_rewards(x, prefixes=True).sum() for x in (fake_at_end, real_at_end)]
    assert end[0] < end[1] and every[0] > every[1]


@pytest.mark.parametrize("bad, message", [
    (dict(dense=True, prefixes=True), "dense or paid for every prefix"),
    (dict(prefixes=True, episode_steps=2), "episode_steps must be an int >= the 3 steps"),
    (dict(prefixes=True, episode_steps=3.0), "episode_steps must be an int"),
    (dict(episode_steps="junk"), "episode_steps must be an int"),
    (dict(prefixes=True, episode_steps=-4), "episode_steps must be an int >= the 3 steps"),
])
def test_prefix_reward_settings_are_checked(bad, message):
    with pytest.raises(MusicRLError, match=message):
        logits_to_rewards(np.zeros((2, 3), np.float32), **bad)


def test_prefix_rewards_of_a_config(rng):
    cfg = Config(reward_prefixes=True, reward_clip=3.0)
    logits = rng.normal(scale=4.0, size=(2, 5)).astype(np.float32)
    np.testing.assert_allclose(logits_to_rewards(logits, **reward_kwargs(cfg)),
                               np.clip(-np.logaddexp(0, -logits), -3, 3) / 5, atol=1e-6)
    with pytest.raises(MusicRLError, match="'reward_dense' and 'reward_prefixes' cannot both be true"):
        Config(reward_dense=True, reward_prefixes=True)
    with pytest.raises(MusicRLError, match="'reward_prefixes' needs d_loss_steps='all'"):
        Config(reward_prefixes=True, d_loss_steps="last")


def test_prefix_rewards_inside_tf_function_of_unknown_width(rng):
    logits = rng.normal(size=(3, 6)).astype(np.float32)
    spec = [tf.TensorSpec((None, None), tf.float32)]
    f = tf.function(lambda x: logits_to_rewards(x, prefixes=True), input_signature=spec)
    np.testing.assert_allclose(f(tf.constant(logits)).numpy(), logits_to_rewards(logits, prefixes=True), atol=1e-6)
    g = tf.function(lambda x: logits_to_rewards(x, prefixes=True, episode_steps=8), input_signature=spec)
    np.testing.assert_allclose(g(tf.constant(logits)).numpy(), logits_to_rewards(logits, prefixes=True) * 6 / 8,
                               atol=1e-6)
    for bad in (0, -8):
        with pytest.raises(MusicRLError, match="episode_steps must be an int >= 1"):
            tf.function(lambda x: logits_to_rewards(x, prefixes=True, episode_steps=bad), input_signature=spec,
                        autograph=False)(tf.constant(logits))


def test_clipping_bounds_log_d():
    logits = np.array([[-50.0, -1.0, 3.0]])
    phi = logits_to_potentials(logits, kind="log_d", clip=5.0)
    np.testing.assert_allclose(phi[0, 0], -5.0)
    assert phi[0, 1] > -5.0


def test_rewards_work_inside_tf_function(rng):
    logits = rng.normal(size=(3, 6)).astype(np.float32)

    @tf.function
    def f(x):
        return discounted_returns(logits_to_rewards(x, dense=True), gamma=0.9)

    want = discounted_returns(logits_to_rewards(logits, dense=True), gamma=0.9)
    np.testing.assert_allclose(f(tf.constant(logits)).numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("gamma", [1.0, 0.9, 0.0])
def test_discounted_returns_vs_loop(rng, gamma):
    rewards = rng.normal(size=(3, 7)).astype(np.float32)
    got = discounted_returns(rewards, gamma=gamma)
    want = np.zeros_like(rewards)
    for b in range(3):
        for t in range(7):
            want[b, t] = sum(gamma**k * rewards[b, t + k] for k in range(7 - t))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        discounted_returns(tf.constant(rewards), gamma=gamma).numpy(), want, rtol=1e-5, atol=1e-6
    )


def test_dense_returns_sum_to_end_reward(rng):
    logits = rng.normal(scale=2.0, size=(6, 16))
    g_dense = discounted_returns(logits_to_rewards(logits, dense=True))
    g_end = discounted_returns(logits_to_rewards(logits, dense=False))
    # the return from the first step is the same either way
    np.testing.assert_allclose(g_dense[:, 0], g_end[:, 0], atol=1e-5)


def test_advantages_with_baselines(rng):
    g = rng.normal(size=(4, 5)).astype(np.float32)
    b_step = rng.normal(size=5).astype(np.float32)
    np.testing.assert_allclose(advantages(g, b_step), g - b_step[None], atol=1e-6)
    np.testing.assert_allclose(advantages(g, 0.5), g - 0.5, atol=1e-6)
    np.testing.assert_allclose(advantages(g), g)
    a = advantages(g, b_step, normalize=True)
    np.testing.assert_allclose([a.mean(), a.std()], [0.0, 1.0], atol=1e-5)
    a_tf = advantages(tf.constant(g), b_step, normalize=True).numpy()
    np.testing.assert_allclose(a_tf, a, atol=1e-5)
    with pytest.raises(MusicRLError, match="baseline"):
        advantages(g, np.zeros(3))


def test_moving_average_baseline_vs_loop_and_state(rng):
    base = MovingAverageBaseline(4, decay=0.8)
    batches = [rng.normal(size=(5, 4)) for _ in range(6)]
    want = None
    for g in batches:
        m = g.mean(axis=0)
        want = m if want is None else [0.8 * w + 0.2 * x for w, x in zip(want, m)]
        base.update(g)
    np.testing.assert_allclose(base(), want, rtol=1e-5)
    restored = MovingAverageBaseline(4, decay=0.8)
    restored.set_state(base.get_state())
    extra = rng.normal(size=(5, 4))
    np.testing.assert_allclose(restored.update(extra), base.update(extra), rtol=1e-7)
    with pytest.raises(MusicRLError, match="4 steps"):
        base.update(np.zeros((2, 3)))


def test_running_mean_std_vs_numpy_and_state(rng):
    stats = RunningMeanStd()
    chunks = [rng.normal(loc=3.0, scale=2.0, size=(n, 4)) for n in (1, 7, 30)]
    for c in chunks:
        stats.update(c)
    everything = np.concatenate([c.ravel() for c in chunks])
    np.testing.assert_allclose([stats.mean, stats.var], [everything.mean(), everything.var()], rtol=1e-9)
    x = rng.normal(size=(2, 3))
    np.testing.assert_allclose(
        stats.normalize(x), (x - everything.mean()) / np.sqrt(everything.var() + 1e-8), rtol=1e-5
    )
    other = RunningMeanStd()
    other.set_state(stats.get_state())
    np.testing.assert_allclose(other.normalize(x), stats.normalize(x))


def test_reward_kwargs_from_config():
    cfg = Config(reward_kind="logit", reward_dense=True, reward_clip=3.0)
    assert reward_kwargs(cfg) == {"kind": "logit", "dense": True, "prefixes": False, "clip": 3.0}
    assert reward_kwargs(Config())["clip"] is None


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros(4), r"\(batch, n_steps\)"),
        (np.array([[0.0, np.nan]]), "NaN"),
        (np.zeros((2, 0)), "at least one step"),
    ],
)
def test_bad_logits_raise(bad, match):
    with pytest.raises(MusicRLError, match=match):
        logits_to_rewards(bad)


def test_bad_settings_raise():
    with pytest.raises(MusicRLError, match="kind"):
        logits_to_rewards(np.zeros((1, 2)), kind="prob")
    with pytest.raises(MusicRLError, match="clip"):
        logits_to_rewards(np.zeros((1, 2)), clip=-1.0)
    with pytest.raises(MusicRLError, match="gamma"):
        discounted_returns(np.zeros((1, 2)), gamma=1.5)
    with pytest.raises(MusicRLError, match="decay"):
        MovingAverageBaseline(3, decay=1.0)


def test_neg_log_one_minus_d_is_the_non_saturating_reward(rng):
    logits = rng.normal(scale=4.0, size=(3, 8))
    phi = logits_to_potentials(logits, kind="neg_log_1m_d")
    want = np.array([[-_log_sigmoid_loop(-x) for x in row] for row in logits])
    np.testing.assert_allclose(phi, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits_to_potentials(tf.constant(logits), kind="neg_log_1m_d").numpy(), phi,
                               rtol=1e-6)
    # it keeps growing as D is fooled (log D saturates at 0) and stays finite at the extremes
    extreme = logits_to_potentials(np.array([[-1000.0, 0.0, 1000.0]]), kind="neg_log_1m_d")
    np.testing.assert_allclose(extreme, [[0.0, math.log(2.0), 1000.0]], rtol=1e-6, atol=1e-6)


def _gae_loop(r, v, gamma, lam):
    batch, n = r.shape
    out = np.zeros((batch, n))
    for b in range(batch):
        for t in range(n):
            total = 0.0
            for k in range(t, n):
                next_v = v[b, k + 1] if k + 1 < n else 0.0
                total += (gamma * lam) ** (k - t) * (r[b, k] + gamma * next_v - v[b, k])
            out[b, t] = total
    return out


@pytest.mark.parametrize("gamma", [1.0, 0.9])
@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
@pytest.mark.parametrize("n_steps", [1, 6])
def test_gae_vs_loop(rng, gamma, lam, n_steps):
    r = rng.normal(size=(3, n_steps)).astype(np.float32)
    v = rng.normal(size=(3, n_steps)).astype(np.float32)
    adv = gae_advantages(r, v, gamma=gamma, lam=lam)
    assert adv.dtype == np.float32 and adv.shape == r.shape
    np.testing.assert_allclose(adv, _gae_loop(r, v, gamma, lam), rtol=1e-5, atol=1e-5)


def test_gae_ends_are_the_return_and_the_td_error(rng):
    r = rng.normal(size=(4, 8)).astype(np.float32)
    v = rng.normal(size=(4, 8)).astype(np.float32)
    # lambda 1: the return against the value baseline
    np.testing.assert_allclose(gae_advantages(r, v, gamma=0.9, lam=1.0),
                               advantages(discounted_returns(r, gamma=0.9), v), rtol=1e-5, atol=1e-5)
    # lambda 0: the one-step temporal difference
    next_v = np.concatenate([v[:, 1:], np.zeros((4, 1), np.float32)], axis=1)
    np.testing.assert_allclose(gae_advantages(r, v, gamma=0.9, lam=0.0), r + 0.9 * next_v - v, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"lam": 1.5}, "lambda"), ({"lam": float("nan")}, "lambda"), ({"gamma": -0.1}, "gamma"),
])
def test_gae_bad_settings_raise(kwargs, message):
    with pytest.raises(MusicRLError, match=message):
        gae_advantages(np.zeros((2, 3)), np.zeros((2, 3)), **kwargs)


def test_gae_values_must_match_rewards():
    with pytest.raises(MusicRLError, match="values must have the shape"):
        gae_advantages(np.zeros((2, 3)), np.zeros((2, 4)))
