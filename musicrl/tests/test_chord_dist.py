"""Tests of one chord step's distribution terms against plain NumPy loops."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from musicrl.learning.chord_dist import (
    all_token_logp,
    bern_entropy,
    bern_kl,
    bern_log_prob,
    cat_entropy,
    cat_kl,
    inverse_cdf_draw,
    mixture_terms,
    pick,
    within_block_logp,
)

N_PITCHES = 4


def _log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _numpy(t):
    return np.asarray(t.numpy() if hasattr(t, "numpy") else t, dtype=np.float64)


def test_categorical_terms_match_a_loop(rng):
    logp = _log_softmax(rng.normal(size=(3, 5))).astype(np.float32)
    ref_logp = _log_softmax(rng.normal(size=(3, 5))).astype(np.float32)
    for row in range(3):
        p = np.exp(logp[row].astype(np.float64))
        want_h = -sum(p[i] * logp[row, i] for i in range(5))
        want_kl = sum(p[i] * (logp[row, i] - ref_logp[row, i]) for i in range(5))
        assert _numpy(cat_entropy(tf.constant(logp)))[row] == pytest.approx(want_h, abs=1e-5)
        assert _numpy(cat_kl(tf.constant(logp), tf.constant(ref_logp)))[row] == pytest.approx(want_kl, abs=1e-5)
    np.testing.assert_array_equal(_numpy(pick(tf.constant(logp), tf.constant([4, 0, 2]))), logp[[0, 1, 2], [4, 0, 2]])


def test_bernoulli_terms_match_enumeration(rng):
    logits = rng.normal(size=N_PITCHES).astype(np.float32)
    ref_logits = rng.normal(size=N_PITCHES).astype(np.float32)
    chords = np.array(list(itertools.product([0.0, 1.0], repeat=N_PITCHES)), np.float32)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    q = 1 / (1 + np.exp(-ref_logits.astype(np.float64)))
    prob = np.prod(np.where(chords > 0, p, 1 - p), axis=1)
    ref_prob = np.prod(np.where(chords > 0, q, 1 - q), axis=1)
    lp = _numpy(bern_log_prob(tf.constant(np.tile(logits, (len(chords), 1))), tf.constant(chords)))
    np.testing.assert_allclose(lp, np.log(prob), atol=1e-5)
    assert _numpy(bern_entropy(tf.constant(logits))) == pytest.approx(-np.sum(prob * np.log(prob)), abs=1e-5)
    want_kl = np.sum(prob * np.log(prob / ref_prob))
    assert _numpy(bern_kl(tf.constant(logits), tf.constant(ref_logits))) == pytest.approx(want_kl, abs=1e-5)


def test_inverse_cdf_draw_follows_the_cdf_and_skips_empty_slots():
    probs = tf.constant([[0.0, 0.5, 0.0, 0.5]] * 5)
    u = tf.constant([0.0, 0.25, 0.4999, 0.5001, 0.9999999])
    np.testing.assert_array_equal(inverse_cdf_draw(probs, u).numpy(), [1, 1, 1, 3, 3])


def _table(rng, n_blocks, block_size, embed, n_tokens):
    emb = rng.normal(size=(n_blocks, block_size, embed)).astype(np.float32)
    bias = rng.normal(size=(n_blocks, block_size)).astype(np.float32)
    bias.reshape(-1)[n_tokens:] = -1e9  # padding slots, as the policy pads its last block
    return tf.constant(emb), tf.constant(bias)


def test_token_log_probs_are_the_block_times_within_block_probabilities(rng):
    n_blocks, block_size, embed, n_tokens = 3, 3, 2, 8
    table = _table(rng, n_blocks, block_size, embed, n_tokens)
    query = rng.normal(size=(2, embed)).astype(np.float32)
    block_logp = _log_softmax(rng.normal(size=(2, n_blocks))).astype(np.float32)
    dist = {"query": tf.constant(query), "block_logp": tf.constant(block_logp)}
    tau = tf.constant(0.7)
    every = _numpy(all_token_logp(dist, table, tau, n_tokens=n_tokens))
    assert every.shape == (2, n_tokens)
    np.testing.assert_allclose(np.exp(every).sum(axis=1), 1.0, atol=1e-5)
    emb, bias = _numpy(table[0]), _numpy(table[1])
    for row in range(2):
        for token in range(n_tokens):
            b, j = divmod(token, block_size)
            within = _log_softmax((emb[b] @ query[row] + bias[b]) / 0.7)
            assert every[row, token] == pytest.approx(block_logp[row, b] + within[j], abs=1e-5)
    last = _numpy(within_block_logp(tf.constant(query), table, tau, None))
    np.testing.assert_allclose(last, _numpy(within_block_logp(tf.constant(query), table, tau, tf.constant([2, 2]))),
                               atol=1e-6)


def test_mixture_log_prob_sums_both_branches(rng):
    n_blocks, block_size, embed, n_vocab = 2, 3, 2, 4
    table = _table(rng, n_blocks, block_size, embed, n_vocab + 1)
    query = rng.normal(size=(2, embed)).astype(np.float32)
    block_logp = _log_softmax(rng.normal(size=(2, n_blocks))).astype(np.float32)
    dist = {"query": tf.constant(query), "block_logp": tf.constant(block_logp)}
    bern_lp = np.log([0.1, 0.3]).astype(np.float32)
    bern_h = np.array([1.0, 2.0], np.float32)
    idx = np.array([2, n_vocab], np.int32)  # a vocabulary chord, then one outside the vocabulary
    terms = mixture_terms(dist, tf.constant(bern_lp), tf.constant(bern_h), tf.constant(idx), table, tf.constant(1.0),
                          n_vocab=n_vocab)
    token_p = np.exp(_numpy(all_token_logp(dist, table, tf.constant(1.0), n_tokens=n_vocab + 1)))
    other = token_p[:, n_vocab]
    np.testing.assert_allclose(_numpy(terms["other_logp"]), np.log(other), atol=1e-5)
    want = [np.log(token_p[0, 2] + other[0] * 0.1), np.log(other[1] * 0.3)]
    np.testing.assert_allclose(_numpy(terms["log_prob"]), want, atol=1e-5)
    assert terms["within_logp"].shape == (2, block_size)
