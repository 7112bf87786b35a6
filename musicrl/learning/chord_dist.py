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
    "bern_entropy",
    "bern_kl",
    "bern_log_prob",
    "cat_entropy",
    "cat_kl",
    "inverse_cdf_draw",
    "pick",
    "step_kl",
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
