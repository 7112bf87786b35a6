"""Terms of one chord step's distribution: log-probs, entropies, KLs and draws (TensorFlow).

The policy's step distribution (see :mod:`musicrl.learning.agent`) mixes a
categorical over tokens, factored into a block and a token within it, with an
independent Bernoulli per pitch. These pure functions compute the pieces of
its log-probabilities, entropies and KLs from logits and log-probabilities
with any leading axes, and draw indices from uniforms.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = [
    "all_token_logp",
    "bern_entropy",
    "bern_kl",
    "bern_log_prob",
    "cat_entropy",
    "cat_kl",
    "inverse_cdf_draw",
    "mixture_terms",
    "pick",
    "step_kl",
    "within_block_logp",
]

# half a float32 uniform's resolution: keeps inverse-CDF draws off exact zero
_HALF_ULP = 2.0**-25
_TINY = float(np.finfo(np.float32).tiny)


def pick(values: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """``values[..., index[...]]`` for a short last axis: (..., n), (...) int -> (...)."""
    return tf.reduce_sum(values * tf.one_hot(index, values.shape[-1], dtype=values.dtype), axis=-1)


def cat_entropy(logp: tf.Tensor) -> tf.Tensor:
    """Entropy (nats) of categoricals given by log-probabilities (..., n) -> (...)."""
    # padded slots have probability exactly 0 and a finite log-prob, so they add 0
    return -tf.reduce_sum(tf.exp(logp) * logp, axis=-1)


def cat_kl(logp: tf.Tensor, ref_logp: tf.Tensor) -> tf.Tensor:
    """KL(p || ref) (nats) of categoricals given by log-probabilities (..., n) -> (...)."""
    return tf.reduce_sum(tf.exp(logp) * (logp - ref_logp), axis=-1)


def bern_log_prob(logits: tf.Tensor, chords: tf.Tensor) -> tf.Tensor:
    """Log-probability (nats) of multi-hot chords (..., n_pitches) under independent Bernoullis -> (...)."""
    return tf.reduce_sum(chords * logits - tf.nn.softplus(logits), axis=-1)


def bern_entropy(logits: tf.Tensor) -> tf.Tensor:
    """Entropy (nats) of independent Bernoullis with logits (..., n_pitches) -> (...)."""
    return tf.reduce_sum(tf.nn.softplus(logits) - tf.sigmoid(logits) * logits, axis=-1)


def bern_kl(logits: tf.Tensor, ref_logits: tf.Tensor) -> tf.Tensor:
    """KL(p || ref) (nats) of independent Bernoullis with logits (..., n_pitches) -> (...)."""
    p = tf.sigmoid(logits)
    return tf.reduce_sum(
        p * (tf.math.log_sigmoid(logits) - tf.math.log_sigmoid(ref_logits))
        + (1.0 - p) * (tf.math.log_sigmoid(-logits) - tf.math.log_sigmoid(-ref_logits)),
        axis=-1,
    )


def within_block_logp(
    query: tf.Tensor, table: tuple[tf.Tensor, tf.Tensor], temperature: tf.Tensor, block: tf.Tensor | None
) -> tf.Tensor:
    """Log-softmax over the tokens of one block: (..., embed) queries -> (..., block_size).

    ``table`` holds the token embeddings (n_blocks, block_size, embed) and
    logit biases (n_blocks, block_size); ``block`` (...) int picks each row's
    block, None the last block for every row.
    """
    emb, bias = table
    if block is None:
        logits = tf.tensordot(query, emb[-1], axes=[[-1], [-1]]) + bias[-1]
    else:
        logits = tf.linalg.matvec(tf.gather(emb, block), query) + tf.gather(bias, block)
    return tf.nn.log_softmax(logits / temperature, axis=-1)


def mixture_terms(
    dist: dict, bern_lp: tf.Tensor, bern_h: tf.Tensor, idx: tf.Tensor, table: tuple, temperature: tf.Tensor,
    *, n_vocab: int,
) -> dict:
    """Exact log-prob and estimated entropy (nats) of chords under the vocab head's mixture.

    Parameters
    ----------
    dist : dict
        ``block_logp`` (..., n_blocks) and ``query`` (..., embed) of each step.
    bern_lp, bern_h : tf.Tensor, shape=(...)
        Log-prob of each chord and entropy under the Bernoulli branch.
    idx : tf.Tensor, shape=(...), int32
        Each chord's vocab index, ``n_vocab`` outside the vocabulary.
    table : tuple of tf.Tensor
        As in :func:`within_block_logp`.
    temperature : tf.Tensor
    n_vocab : int
        Vocabulary chords; token ``n_vocab`` is ``<other>``.

    Returns
    -------
    terms : dict of tf.Tensor, shape=(...)
        ``log_prob`` (both branches summed), ``entropy`` (within the chord's
        block only), and for the KL ``within_logp`` (..., block_size) and
        ``other_logp``.
    """
    size, last = table[1].shape[1], table[1].shape[0] - 1
    block_logp = dist["block_logp"]
    within = within_block_logp(dist["query"], table, temperature, idx // size)
    token_lp = pick(block_logp, idx // size) + pick(within, idx % size)
    within_last = within_block_logp(dist["query"], table, temperature, None)
    other_lp = block_logp[..., last] + within_last[..., n_vocab % size]
    in_vocab = tf.where(idx < n_vocab, token_lp, tf.constant(-np.inf, tf.float32))
    log_prob = tf.reduce_logsumexp(tf.stack([in_vocab, other_lp + bern_lp], axis=-1), axis=-1)
    entropy = cat_entropy(block_logp) + cat_entropy(within) + tf.exp(other_lp) * bern_h
    return {"log_prob": log_prob, "entropy": entropy, "within_logp": within, "other_logp": other_lp}


def all_token_logp(dist: dict, table: tuple, temperature: tf.Tensor, *, n_tokens: int) -> tf.Tensor:
    """Exact log-probabilities of every token (..., n_tokens): a full pass over the vocabulary.

    ``dist`` and ``table`` as in :func:`mixture_terms`; the padding slots of the last block are dropped.
    """
    emb, bias = table
    n_slots = emb.shape[0] * emb.shape[1]
    logits = tf.einsum("...e,gse->...gs", dist["query"], emb) + bias
    logp = tf.nn.log_softmax(logits / temperature, axis=-1) + dist["block_logp"][..., None]
    flat = tf.reshape(logp, tf.concat([tf.shape(logp)[:-2], [n_slots]], 0))
    return flat[..., :n_tokens]


def step_kl(out: dict, ref_out: dict, head: str, exact: bool = False) -> tf.Tensor:
    """KL(pi || pi_ref) per step of the (branch, chord) distributions (see the agent's module docs).

    ``out`` and ``ref_out`` are teacher-forced passes over the same seqs
    (``ChordPolicy._forward``); ``exact`` needs passes made with ``exact=True``.
    """
    bern = bern_kl(out["pitch_logits"], ref_out["pitch_logits"])
    if head != "vocab":
        return bern
    if exact:
        token_logp = out["token_logp"]
        return cat_kl(token_logp, ref_out["token_logp"]) + tf.exp(token_logp[..., -1]) * bern
    # both passes looked at the block of the same chord
    return (
        cat_kl(out["block_logp"], ref_out["block_logp"])
        + cat_kl(out["within_logp"], ref_out["within_logp"])
        + tf.exp(out["other_logp"]) * bern
    )


def inverse_cdf_draw(probs: tf.Tensor, u: tf.Tensor) -> tf.Tensor:
    """Inverse-CDF draw of one index per row of probs (batch, n) from uniforms (batch,) -> (batch,) int32.

    Clamping keeps every draw on an index of positive probability despite
    rounding (the first cdf value reaching a target in (0, total] follows a
    positive step).
    """
    cdf = tf.cumsum(probs, axis=-1)
    total = cdf[:, -1:]
    target = tf.clip_by_value((u[:, None] + _HALF_ULP) * total, _TINY, total)
    return tf.reduce_sum(tf.cast(cdf < target, tf.int32), axis=-1)
