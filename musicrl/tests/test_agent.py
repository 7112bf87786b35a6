"""Tests of the chord policy: sampling, exact log-probs, updates (its vocabulary: test_vocab.py)."""

import itertools
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from musicrl.learning.agent import (
    ChordPolicy,
    PolicySample,
    build_chord_vocab,
    build_policy,
    clone_policy,
    kl_weight,
    policy_kl,
    ppo_clipped_loss,
    pretrain_step,
    reinforce_loss,
    reinforce_step,
    vocab_coverage,
    vocab_kwargs,
)
from musicrl.config import Config
from musicrl.errors import MusicRLError
from musicrl.learning.reward import MovingAverageBaseline, advantages, discounted_returns

# a one-octave grid: column p is pitch class p
N_PITCHES = 12
TRIADS = {"C": [0, 4, 7], "F": [0, 5, 9], "G": [2, 7, 11], "Am": [0, 4, 9]}
PROGRESSIONS = [["C", "F", "G", "C"], ["Am", "F", "G", "C"], ["C", "G", "Am", "F"]]
# log-probs of a sampled step vs the same step recomputed under teacher forcing (float32 sums)
LOGP_ATOL = 1e-4


def _chord(pitches, n_pitches=N_PITCHES):
    row = np.zeros(n_pitches, np.float32)
    row[list(pitches)] = 1.0
    return row


def _real_seqs(n_copies=4):
    """(12 * n_copies / 3, 4, 12) triad progressions."""
    seqs = [np.stack([_chord(TRIADS[name]) for name in prog]) for prog in PROGRESSIONS]
    return np.stack(seqs * n_copies)


def _policy(head="vocab", vocab=None, **kwargs):
    kwargs.setdefault("jit_compile", False)  # XLA compiles take seconds; one test covers jit
    if head == "vocab" and vocab is None:
        vocab = build_chord_vocab(_real_seqs())
    return ChordPolicy(N_PITCHES, head=head, vocab=vocab if head == "vocab" else None, **kwargs)


def _all_chords(n_pitches):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n_pitches)), dtype=np.float32)


def _in_rows(chords, rows):
    """(n, P) -> (n,) bool: chord equals one of rows."""
    return np.any(np.all(chords[:, None, :] == rows[None, :, :], axis=-1), axis=1)


# ---- the vocabulary a policy holds ---------------------------------------------------


def test_policy_vocab_coverage_counts_unseen_chords():
    vocab = build_chord_vocab(_real_seqs())
    held = np.stack([_chord(TRIADS["C"]), _chord([1, 5, 8]), _chord(TRIADS["G"]), _chord([3])])[None]
    assert _policy(vocab=vocab).vocab_coverage(held) == pytest.approx(0.5)
    assert _policy("bernoulli").vocab_coverage(held) == 0.0


def test_policy_rejects_bad_settings():
    vocab = build_chord_vocab(_real_seqs())
    with pytest.raises(MusicRLError, match="repeat"):
        ChordPolicy(N_PITCHES, vocab=np.concatenate([vocab, vocab[:1]]))
    with pytest.raises(MusicRLError, match="needs a vocab"):
        ChordPolicy(N_PITCHES, head="vocab")
    with pytest.raises(MusicRLError, match="n_pitches=12"):
        ChordPolicy(N_PITCHES, vocab=vocab[:, :6])
    with pytest.raises(MusicRLError, match="head"):
        ChordPolicy(N_PITCHES, head="softmax")
    with pytest.raises(MusicRLError, match="hidden_size"):
        ChordPolicy(N_PITCHES, vocab=vocab, hidden_size=0)


# ---- sampling -----------------------------------------------------------------------


@pytest.mark.parametrize("head", ["vocab", "bernoulli"])
def test_sample_shapes_multi_hot_and_vocab_flags(head):
    policy = _policy(head)
    sample = policy.sample(32, 0, n_steps=5)
    assert isinstance(sample, PolicySample)
    assert sample.seqs.shape == (32, 5, N_PITCHES) and sample.seqs.dtype == np.float32
    assert set(np.unique(sample.seqs)) <= {0.0, 1.0}
    for name in ("log_probs", "entropies"):
        arr = getattr(sample, name)
        assert arr.shape == (32, 5) and arr.dtype == np.float32 and np.all(np.isfinite(arr))
    assert np.all(sample.log_probs <= 1e-6) and np.all(sample.entropies >= 0)
    assert sample.from_vocab.shape == (32, 5) and sample.from_vocab.dtype == bool
    assert sample.values is None
    chords = sample.seqs.reshape(-1, N_PITCHES)
    if head == "vocab":
        assert _in_rows(chords[sample.from_vocab.ravel()], policy.vocab).all()
        assert sample.from_vocab.any()
    else:
        assert not sample.from_vocab.any()


@pytest.mark.parametrize("head", ["vocab", "bernoulli"])
def test_sample_is_reproducible_from_a_seed(head):
    policy = _policy(head)
    a, b = policy.sample(16, 7, n_steps=4), policy.sample(16, 7, n_steps=4)
    for x, y in zip(a[:4], b[:4]):
        np.testing.assert_array_equal(x, y)
    c = policy.sample(16, 8, n_steps=4)
    assert not np.array_equal(a.seqs, c.seqs)
    # a shared generator advances, so consecutive batches differ
    rng = np.random.default_rng(3)
    assert not np.array_equal(policy.sample(16, rng, n_steps=4).seqs, policy.sample(16, rng, n_steps=4).seqs)


@pytest.mark.parametrize("head", ["vocab", "bernoulli"])
def test_sampled_log_probs_equal_teacher_forced_ones(head):
    policy = _policy(head)
    for temperature in (1.0, 0.6, 2.0):
        sample = policy.sample(64, 1, n_steps=6, temperature=temperature)
        np.testing.assert_allclose(
            policy.log_prob(sample.seqs, temperature=temperature), sample.log_probs, atol=LOGP_ATOL
        )
        np.testing.assert_allclose(
            policy.entropy(sample.seqs, temperature=temperature), sample.entropies, atol=LOGP_ATOL
        )
    # the keras call is the teacher-forced pass at temperature 1
    np.testing.assert_allclose(policy(sample.seqs).numpy(), policy.log_prob(sample.seqs), atol=LOGP_ATOL)


@pytest.mark.parametrize("n_pitches", [3, 60])
def test_vocab_lookups_in_and_out_of_the_graph_agree(n_pitches, rng):
    # 3 pitches: the Bernoulli branch often lands on vocabulary chords; 60 pitches: chord keys of two words
    vocab = (rng.random((7, n_pitches)) < 0.4).astype(np.float32)
    vocab = np.unique(vocab, axis=0)
    policy = ChordPolicy(n_pitches, vocab=vocab, hidden_size=8, embed_size=4, jit_compile=False)
    sample = policy.sample(256, rng, n_steps=3)
    np.testing.assert_allclose(policy.log_prob(sample.seqs), sample.log_probs, atol=LOGP_ATOL)
    chords = sample.seqs.reshape(-1, n_pitches)
    if n_pitches == 3:
        assert np.any(_in_rows(chords, vocab) & ~sample.from_vocab.ravel())
    mixed = np.stack([vocab[:4], (rng.random((4, n_pitches)) < 0.5).astype(np.float32)], axis=1)
    # the keras call finds vocab indices in the graph, log_prob by a hash lookup
    np.testing.assert_allclose(policy(mixed).numpy(), policy.log_prob(mixed), atol=LOGP_ATOL)


@pytest.mark.parametrize("head", ["vocab", "bernoulli"])
def test_temperature_orders_entropy(head):
    # the policy's initial weights must not change from run to run
    keras.utils.set_random_seed(0)
    policy = _policy(head)
    seqs = _real_seqs(1)
    temperatures = (0.5, 1.0, 2.0)
    if head == "bernoulli":
        low, mid, high = (policy.entropy(seqs, temperature=t).mean() for t in temperatures)
    else:
        # the joint (block, chord) entropy of the two-level softmax need not be monotone in the
        # temperature; the block softmax's is: tokens are laid out block by block
        entropies = []
        for t in temperatures:
            tokens = policy.step_probs(seqs, temperature=t)["token_probs"]
            pad = policy.n_blocks * policy.block_size - tokens.shape[-1]
            tokens = np.pad(tokens, [(0, 0)] * (tokens.ndim - 1) + [(0, pad)])
            blocks = tokens.reshape(*tokens.shape[:-1], policy.n_blocks, policy.block_size).sum(-1)
            entropies.append(-np.sum(blocks * np.log(np.maximum(blocks, 1e-30)), axis=-1).mean())
        low, mid, high = entropies
    assert low < mid < high


def test_xla_and_plain_graphs_agree():
    jit = _policy(jit_compile=True, hidden_size=16, embed_size=8)
    plain = ChordPolicy.from_config({**jit.get_config(), "jit_compile": False})
    plain.set_weights(jit.get_weights())
    a, b = jit.sample(32, 5, n_steps=3), plain.sample(32, 5, n_steps=3)
    np.testing.assert_array_equal(a.seqs, b.seqs)
    np.testing.assert_allclose(a.log_probs, b.log_probs, atol=LOGP_ATOL)
    np.testing.assert_allclose(jit.log_prob(a.seqs), a.log_probs, atol=LOGP_ATOL)


# ---- exact probabilities on an enumerable case ---------------------------------------


SMALL_VOCAB = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1]], dtype=np.float32)


def _small_policy(head):
    return ChordPolicy(
        3, head=head, vocab=SMALL_VOCAB if head == "vocab" else None, hidden_size=8, embed_size=4,
        jit_compile=False,
    )


def _enumerated(prefix):
    """Every 3-pitch chord after a fixed prefix: (8, len(prefix) + 1, 3)."""
    chords = _all_chords(3)
    head = np.repeat(np.asarray(prefix, np.float32)[None], len(chords), axis=0).reshape(len(chords), -1, 3)
    return np.concatenate([head, chords[:, None, :]], axis=1)


@pytest.mark.parametrize("head", ["vocab", "bernoulli"])
@pytest.mark.parametrize("prefix", [[], [[0, 1, 1]], [[1, 1, 1], [0, 0, 0]]])
def test_probabilities_of_all_chords_sum_to_one(head, prefix):
    policy = _small_policy(head)
    seqs = _enumerated(prefix)
    probs = np.exp(policy.log_prob(seqs)[:, -1].astype(np.float64))
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.all(probs > 0)  # every chord, in the vocabulary or not, is expressible


def test_vocab_log_prob_is_the_exact_mixture():
    policy = _small_policy("vocab")
    seqs = _enumerated([])
    step = policy.step_probs(seqs)
    pi = step["token_probs"][0, 0].astype(np.float64)  # (4,), last is <other>
    q = step["pitch_probs"][0, 0].astype(np.float64)  # (3,)
    assert pi.shape == (4,) and pi.sum() == pytest.approx(1.0, abs=1e-6)
    chords = seqs[:, 0]
    bern = np.prod(np.where(chords > 0, q, 1 - q), axis=1)
    expected = pi[3] * bern
    for i, c in enumerate(chords):
        match = np.flatnonzero(np.all(SMALL_VOCAB == c, axis=1))
        if match.size:
            expected[i] += pi[match[0]]
    assert np.sum(expected > pi[3] * bern) == len(SMALL_VOCAB)
    np.testing.assert_allclose(np.exp(policy.log_prob(seqs)[:, 0]), expected, rtol=1e-5)


def test_unseen_chord_has_finite_log_prob_through_the_fallback():
    policy = _policy()
    unseen = np.stack([_chord([1, 2, 3, 6, 10])] * 3)[None]
    assert vocab_coverage(policy.vocab, unseen) == 0.0
    lp = policy.log_prob(unseen)
    step = policy.step_probs(unseen)
    q = step["pitch_probs"][0].astype(np.float64)
    bern = np.sum(np.log(np.where(unseen[0] > 0, q, 1 - q)), axis=1)
    expected = np.log(step["token_probs"][0, :, -1].astype(np.float64)) + bern
    assert np.all(np.isfinite(lp))
    np.testing.assert_allclose(lp[0], expected, atol=LOGP_ATOL)


def _blocks(token_probs, block_size):
    """Token probs (n_tokens,) -> block probs (n_blocks,), within-block probs (n_blocks, block_size)."""
    n_blocks = -(-len(token_probs) // block_size)
    padded = np.zeros(n_blocks * block_size)
    padded[: len(token_probs)] = token_probs
    padded = padded.reshape(n_blocks, block_size)
    block = padded.sum(axis=1)
    return block, padded / block[:, None]


def _h(p):
    p = p[p > 0]
    return -np.sum(p * np.log(p))


def _kl(p, q):
    keep = p > 0
    return np.sum(p[keep] * np.log(p[keep] / q[keep]))


def _token_of(chord):
    match = np.flatnonzero(np.all(SMALL_VOCAB == chord, axis=1))
    return match[0] if match.size else len(SMALL_VOCAB)


@pytest.mark.parametrize("head", ["vocab", "bernoulli"])
def test_entropy_matches_direct_computation(head):
    policy = _small_policy(head)
    seqs = _enumerated([[1, 0, 1]])
    step = policy.step_probs(seqs)
    q = step["pitch_probs"][0, 1].astype(np.float64)
    chords = _all_chords(3)
    bern = np.prod(np.where(chords > 0, q, 1 - q), axis=1)
    exact = policy.entropy(seqs, exact=True)[:, 1]
    estimate = policy.entropy(seqs)[:, 1]
    if head == "bernoulli":
        np.testing.assert_allclose(exact, _h(bern), atol=1e-5)
        np.testing.assert_allclose(estimate, _h(bern), atol=1e-5)
        return
    # exact: the joint of (branch, chord): each vocab token, then <other> with each chord
    pi = step["token_probs"][0, 1].astype(np.float64)
    np.testing.assert_allclose(exact, _h(np.concatenate([pi[:-1], pi[-1] * bern])), atol=1e-5)
    chord_probs = np.exp(policy.log_prob(seqs)[:, 1].astype(np.float64))
    assert _h(chord_probs) <= exact[0] + 1e-5  # the joint bounds the chord's own entropy
    # estimate: block entropy + entropy within the block of the chord's token + Bernoulli part
    size = policy.block_size
    block, within = _blocks(pi, size)
    tokens = np.array([_token_of(c) for c in chords])
    direct = _h(block) + np.array([_h(within[t // size]) for t in tokens]) + pi[-1] * _h(bern)
    np.testing.assert_allclose(estimate, direct, atol=1e-5)
    # averaged over the blocks it is the exact entropy
    per_block = {t // size: e for t, e in zip(tokens, estimate)}
    assert sorted(per_block) == list(range(policy.n_blocks))
    assert sum(block[k] * e for k, e in per_block.items()) == pytest.approx(exact[0], abs=1e-5)


@pytest.mark.parametrize("head", ["vocab", "bernoulli"])
def test_kl_is_zero_for_a_clone_and_matches_direct_computation(head):
    policy = _small_policy(head)
    ref = clone_policy(policy, trainable=False)
    seqs = _enumerated([[0, 1, 0]])
    for exact in (False, True):
        np.testing.assert_allclose(policy_kl(policy, ref, seqs, exact=exact), 0.0, atol=1e-6)
    other = _small_policy(head)
    if head == "vocab":
        np.testing.assert_array_equal(other.vocab, policy.vocab)
    kl, kl_exact = policy_kl(policy, other, seqs)[:, 1], policy_kl(policy, other, seqs, exact=True)[:, 1]
    assert np.all(kl > 0) and np.all(kl_exact > 0)
    p, r = policy.step_probs(seqs), other.step_probs(seqs)
    q_p, q_r = (d["pitch_probs"][0, 1].astype(np.float64) for d in (p, r))
    bern_kl = np.sum(q_p * np.log(q_p / q_r) + (1 - q_p) * np.log((1 - q_p) / (1 - q_r)))
    if head == "bernoulli":
        np.testing.assert_allclose(kl, bern_kl, atol=1e-5)
        np.testing.assert_allclose(kl_exact, bern_kl, atol=1e-5)
        return
    pi_p, pi_r = (d["token_probs"][0, 1].astype(np.float64) for d in (p, r))
    np.testing.assert_allclose(kl_exact, _kl(pi_p, pi_r) + pi_p[-1] * bern_kl, atol=1e-5)
    size = policy.block_size
    (block_p, within_p), (block_r, within_r) = _blocks(pi_p, size), _blocks(pi_r, size)
    tokens = np.array([_token_of(c) for c in _all_chords(3)])
    direct = _kl(block_p, block_r) + np.array([_kl(within_p[t // size], within_r[t // size]) for t in tokens])
    np.testing.assert_allclose(kl, direct + pi_p[-1] * bern_kl, atol=1e-5)
    per_block = {t // size: k for t, k in zip(tokens, kl)}
    assert sum(block_p[b] * k for b, k in per_block.items()) == pytest.approx(kl_exact[0], abs=1e-5)


# ---- training -----------------------------------------------------------------------


@pytest.mark.parametrize("head", ["vocab", "bernoulli"])
def test_pretraining_lowers_nll_and_samples_training_chords(head):
    real_seqs = _real_seqs()
    policy = _policy(head)
    optimizer = keras.optimizers.Adam(1e-2)
    before = -policy.log_prob(real_seqs).mean()
    nlls = [pretrain_step(policy, optimizer, real_seqs, clip_norm=5.0) for _ in range(80)]
    after = -policy.log_prob(real_seqs).mean()
    assert nlls[0] == pytest.approx(before, rel=1e-4)
    assert after < 0.5 * before
    chords = policy.sample(256, 0, n_steps=4).seqs.reshape(-1, N_PITCHES)
    share = _in_rows(chords, build_chord_vocab(real_seqs)).mean()
    assert share > (0.95 if head == "vocab" else 0.5)


def _own_uniforms(seed, seqs, n_pitches=N_PITCHES):
    # the layout pretrain_step draws: 2 + n_pitches for a chord, 1 for whether it replaces the real one
    return np.random.default_rng(seed).random((*seqs.shape[:2], 3 + n_pitches), dtype=np.float32)


@pytest.mark.parametrize("head", ["vocab", "bernoulli"])
@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
def test_own_inputs_replace_the_chosen_chords_with_the_policys_draws(head, share):
    policy, real_seqs = _policy(head), _real_seqs()
    uniforms = _own_uniforms(5, real_seqs)
    fed = policy._own_inputs(tf.constant(real_seqs), tf.constant(uniforms), tf.constant(share)).numpy()
    chosen = uniforms[..., -1] < share
    np.testing.assert_array_equal(fed[~chosen], real_seqs[~chosen])
    # each draw is the one the policy makes at that step after the real chords before it
    dist = policy._dist(policy._hidden(tf.constant(real_seqs)), tf.constant(1.0))
    table, lookup = policy._token_table(), policy._draw_lookup()
    for t in range(real_seqs.shape[1]):
        step = {k: v[:, t] for k, v in dist.items()}
        own, _, _ = policy._draw_chord(step, tf.constant(uniforms[:, t, :-1]), table, tf.constant(1.0), *lookup)
        np.testing.assert_array_equal(fed[:, t][chosen[:, t]], own.numpy()[chosen[:, t]])
    # at the first step that is the first chord of a sample from the same uniforms
    first = policy._sample_graph(tf.constant(uniforms[..., :-1]), tf.constant(1.0))["seqs"].numpy()[:, 0]
    np.testing.assert_array_equal(fed[:, 0][chosen[:, 0]], first[chosen[:, 0]])
    assert chosen.any() == (share > 0) and chosen.all() == (share == 1.0)
    # the untrained policy rarely draws the real chord, so replaced chords show
    assert (np.any(fed != real_seqs, axis=-1).mean() > 0.5 * chosen.mean()) or share == 0


@pytest.mark.parametrize("head", ["vocab", "bernoulli"])
def test_pretrain_on_own_inputs_scores_the_real_chords_and_is_reproducible(head):
    real_seqs = _real_seqs(1)
    policy = _policy(head)
    twins = [clone_policy(policy) for _ in range(3)]
    # share 0 is plain teacher forcing, draws or not
    plain = pretrain_step(twins[0], keras.optimizers.Adam(1e-2), real_seqs)
    assert pretrain_step(twins[1], keras.optimizers.Adam(1e-2), real_seqs, own_share=0.0, rng=1) == plain
    for a, b in zip(twins[0].get_weights(), twins[1].get_weights()):
        np.testing.assert_array_equal(a, b)
    # share 1: the loss is the NLL of the real chords after the policy's own draws
    fed = policy._own_inputs(tf.constant(real_seqs), tf.constant(_own_uniforms(9, real_seqs)), tf.constant(1.0))
    want = -policy._forward(tf.constant(real_seqs), tf.constant(1.0), inputs=fed)["log_prob"].numpy().mean()
    got = pretrain_step(twins[2], keras.optimizers.Adam(1e-2), real_seqs, own_share=1.0, rng=9)
    assert got == pytest.approx(want, rel=1e-5)
    assert abs(got - plain) > 1e-3  # fed other chords, the same targets score differently
    again = clone_policy(policy)
    assert pretrain_step(again, keras.optimizers.Adam(1e-2), real_seqs, own_share=1.0, rng=9) == got
    for a, b in zip(again.get_weights(), twins[2].get_weights()):
        np.testing.assert_array_equal(a, b)


def test_own_inputs_teach_the_policy_to_return_to_the_key_after_a_slip():
    # pieces in one of two keys a tritone apart; a slip is one chord of the other key
    key_a = [_chord(TRIADS[name]) for name in ("C", "F", "G", "Am")]
    key_b = [np.roll(chord, 6) for chord in key_a]

    def pieces(rng, n=64, n_steps=6):
        keys = [key_a, key_b]
        return np.stack([np.stack([keys[k][i] for i in row])
                         for k, row in zip(rng.integers(2, size=n), rng.integers(4, size=(n, n_steps)))])

    vocab = np.concatenate([np.stack(key_a), np.stack(key_b)])
    keras.utils.set_random_seed(0)
    init = _policy(vocab=vocab, hidden_size=32)
    returns = {}
    for share in (0.0, 0.5):
        policy, optimizer, rng = clone_policy(init), keras.optimizers.Adam(1e-2), np.random.default_rng(1)
        for _ in range(150):
            pretrain_step(policy, optimizer, pieces(rng), own_share=share, rng=rng)
        for last, name in ((key_a[3], "clean"), (key_b[3], "slip")):
            probe = np.stack([np.stack([key_a[0], key_a[1], key_a[2], last, chord]) for chord in key_a])
            returns[share, name] = np.exp(policy.log_prob(probe)[:, 4]).sum()
    # both learn the keys; taught only on real prefixes the policy follows the slip into the other key
    # (returns 0.02-0.04 over four initialisations, 0.16-0.45 taught on its own draws)
    assert returns[0.0, "clean"] > 0.95 and returns[0.5, "clean"] > 0.95
    assert returns[0.0, "slip"] < 0.1 and returns[0.5, "slip"] > 4 * returns[0.0, "slip"], returns


@pytest.mark.parametrize("head", ["vocab", "bernoulli"])
def test_dropout_reads_dropped_states_in_maximum_likelihood_only(head):
    real_seqs = _real_seqs(1)
    policy = _policy(head)
    before = policy.log_prob(real_seqs)
    twins = [clone_policy(policy) for _ in range(3)]
    plain = pretrain_step(twins[0], keras.optimizers.Adam(1e-2), real_seqs)
    # the loss of the step is the NLL with the states dropped where uniforms from rng fall below the rate
    uniforms = np.random.default_rng(4).random((*real_seqs.shape[:2], policy.hidden_size), dtype=np.float32)
    out = policy._forward(tf.constant(real_seqs), tf.constant(1.0), dropout=(tf.constant(0.5), tf.constant(uniforms)))
    got = pretrain_step(twins[1], keras.optimizers.Adam(1e-2), real_seqs, dropout=0.5, rng=4)
    assert got == pytest.approx(-out["log_prob"].numpy().mean(), rel=1e-5)
    assert abs(got - plain) > 1e-3
    assert pretrain_step(twins[2], keras.optimizers.Adam(1e-2), real_seqs, dropout=0.5, rng=4) == got
    for a, b in zip(twins[1].get_weights(), twins[2].get_weights()):
        np.testing.assert_array_equal(a, b)
    assert pretrain_step(clone_policy(policy), keras.optimizers.Adam(1e-2), real_seqs, dropout=0.5, rng=5) != got
    # a rate of 0 keeps every state as it is
    out = policy._forward(tf.constant(real_seqs), tf.constant(1.0), dropout=(tf.constant(0.0), tf.constant(uniforms)))
    np.testing.assert_array_equal(out["log_prob"].numpy(), before)
    # scoring and sampling never drop
    np.testing.assert_array_equal(policy.log_prob(real_seqs), before)


@pytest.mark.parametrize("rate, match", [(1.0, "dropout must be below 1"), (-0.1, "dropout must be a number"),
                                         (float("nan"), "dropout must be a number")])
def test_dropout_must_be_a_rate(rate, match):
    with pytest.raises(MusicRLError, match=match):
        pretrain_step(_policy(), keras.optimizers.Adam(1e-2), _real_seqs(1), dropout=rate, rng=0)


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan"), True, "0.5"])
def test_own_share_must_be_a_share(share):
    with pytest.raises(MusicRLError, match="own_share must be a number in"):
        pretrain_step(_policy(), keras.optimizers.Adam(1e-2), _real_seqs(1), own_share=share, rng=0)


# plain REINFORCE with the vocab head needs 15 batches here; four clipped passes over each batch need 7
@pytest.mark.parametrize("head, max_updates, ppo_epochs", [("vocab", 60, 1), ("bernoulli", 200, 1), ("vocab", 10, 4)])
def test_reinforce_learns_to_play_c_major(head, max_updates, ppo_epochs):
    policy = _policy(head)
    optimizer = keras.optimizers.Adam(3e-3 if head == "vocab" else 1e-2)
    baseline = MovingAverageBaseline(4, decay=0.9)
    rng = np.random.default_rng(0)
    c_major = _chord(TRIADS["C"])
    for _ in range(max_updates):
        sample = policy.sample(64, rng, n_steps=4)
        gen_seqs = sample.seqs
        rewards = np.all(gen_seqs == c_major, axis=-1).astype(np.float32)
        returns = discounted_returns(rewards, gamma=1.0)
        old_log_prob = sample.log_probs if ppo_epochs > 1 else None
        for _ in range(ppo_epochs):
            stats = reinforce_step(policy, optimizer, gen_seqs, advantages(returns, baseline()), entropy_coef=1e-3,
                                   clip_norm=1.0, old_log_prob=old_log_prob)
        baseline.update(returns)
        if rewards.mean() > 0.9:
            break
    assert np.isfinite(stats["loss"]) and stats["kl"] == 0.0
    final = policy.sample(256, 99, n_steps=4, temperature=1.0).seqs
    assert np.all(final == c_major, axis=-1).mean() > 0.8


def test_kl_penalty_pulls_the_policy_back_to_the_reference():
    real_seqs = _real_seqs()
    policy = _policy()
    ref = clone_policy(policy, trainable=False)
    optimizer = keras.optimizers.Adam(1e-2)
    for _ in range(10):
        pretrain_step(policy, optimizer, real_seqs)
    drifted = policy_kl(policy, ref, real_seqs).mean()
    assert drifted > 0.05
    zero = np.zeros(real_seqs.shape[:2], np.float32)
    optimizer = keras.optimizers.Adam(1e-2)
    first = reinforce_step(policy, optimizer, real_seqs, zero, kl_coef=1.0, ref_policy=ref)
    # the reported KL is the mean per-step KL before the update; with no advantage it is the loss
    assert first["kl"] == pytest.approx(drifted, rel=1e-4)
    assert first["loss"] == pytest.approx(first["kl"], rel=1e-5) and first["pg_loss"] == 0.0
    for _ in range(40):
        reinforce_step(policy, optimizer, real_seqs, zero, kl_coef=1.0, ref_policy=ref)
    assert policy_kl(policy, ref, real_seqs).mean() < 0.25 * drifted


def test_clip_norm_bounds_the_update():
    policy = _policy()
    optimizer = keras.optimizers.SGD(learning_rate=1.0)
    sample = policy.sample(32, 0, n_steps=4)
    adv = np.full(32, 10.0, np.float32)
    before = [w.copy() for w in policy.get_weights()]
    stats = reinforce_step(policy, optimizer, sample.seqs, adv, clip_norm=1e-3)
    step = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(policy.get_weights(), before)))
    assert stats["grad_norm"] > 1e-2
    assert step == pytest.approx(1e-3, rel=1e-3)


def test_value_head_fits_returns():
    policy = _policy(value_head=True)
    sample = policy.sample(32, 0, n_steps=4)
    assert sample.values.shape == (32, 4)
    np.testing.assert_allclose(policy.value(sample.seqs), sample.values, atol=1e-5)
    returns = np.full((32, 4), 2.0, np.float32)
    optimizer = keras.optimizers.Adam(1e-2)
    zero = np.zeros(32, np.float32)
    losses = [
        reinforce_step(policy, optimizer, sample.seqs, zero, returns=returns)["value_loss"] for _ in range(40)
    ]
    assert losses[-1] < 0.1 * losses[0]
    with pytest.raises(MusicRLError, match="no value head"):
        reinforce_step(_policy(), optimizer, sample.seqs, zero, returns=returns)


@pytest.mark.parametrize("head", ["vocab", "bernoulli"])
def test_clipped_surrogate_starts_as_reinforce_and_stops_past_the_clip(head, rng):
    policy = _policy(head)
    twin = clone_policy(policy)
    sample = policy.sample(32, 0, n_steps=4)
    adv = rng.normal(size=(32, 4)).astype(np.float32)
    # at the sampling policy (ratio 1) the update is REINFORCE's
    plain = reinforce_step(policy, keras.optimizers.SGD(0.1), sample.seqs, adv)
    ppo = reinforce_step(twin, keras.optimizers.SGD(0.1), sample.seqs, adv, old_log_prob=sample.log_probs)
    assert ppo["clip_frac"] == 0.0 and ppo["grad_norm"] == pytest.approx(plain["grad_norm"], rel=1e-4)
    for a, b in zip(policy.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # every ratio e > 1 + clip_ratio: a step with A > 0 is clipped (no gradient), one with A < 0 is not
    now = policy.log_prob(sample.seqs)
    for sign, moves in ((1.0, False), (-1.0, True)):
        stats = reinforce_step(policy, keras.optimizers.SGD(0.1), sample.seqs, np.full((32, 4), sign, np.float32),
                               old_log_prob=now - 1.0, clip_ratio=0.2)
        assert stats["clip_frac"] == 1.0
        assert (stats["grad_norm"] > 1e-3) == moves, sign
        assert stats["pg_loss"] == pytest.approx(-sign * (1.2 if sign > 0 else np.e), rel=1e-4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"old_log_prob": np.zeros((8, 3))}, "old_log_prob must be finite with shape"),
        ({"old_log_prob": np.full((8, 4), np.nan)}, "old_log_prob must be finite"),
        ({"old_log_prob": np.zeros((8, 4)), "clip_ratio": 1.0}, "clip_ratio must be in"),
        ({"old_log_prob": np.zeros((8, 4)), "clip_ratio": 0.0}, "clip_ratio"),
        ({"advantages": np.zeros((3, 4))}, "advantages must have shape"),
        ({"advantages": np.full((8, 4), np.nan)}, "NaN"),
        ({"kl_coef": 0.5}, "needs a ref_policy"),
        ({"entropy_coef": -1.0}, "entropy_coef"),
        ({"gen_seqs": np.zeros((8, 4, 7))}, "12 pitch columns"),
        ({"clip_norm": -1.0}, "clip_norm"),
    ],
)
def test_reinforce_step_rejects_bad_input(kwargs, match):
    policy = _policy()
    args = {"gen_seqs": np.zeros((8, 4, N_PITCHES), np.float32), "advantages": np.zeros(8, np.float32)}
    args.update(kwargs)
    with pytest.raises(MusicRLError, match=match):
        reinforce_step(policy, keras.optimizers.Adam(), **args)


def test_ref_policy_must_match():
    policy = _policy()
    other_vocab = _policy(vocab=build_chord_vocab(_real_seqs(), transpose=1))
    with pytest.raises(MusicRLError, match="same head"):
        policy_kl(policy, other_vocab, _real_seqs(1))
    with pytest.raises(MusicRLError, match="same head"):
        reinforce_step(policy, keras.optimizers.Adam(), _real_seqs(1), np.zeros(3), ref_policy=_policy("bernoulli"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0}, "n must be"),
        ({"n_steps": 0}, "n_steps"),
        ({"temperature": 0.0}, "temperature"),
        ({"rng": -1}, "seed"),
    ],
)
def test_sample_rejects_bad_input(kwargs, match):
    args = {"n": 4, "rng": 0, "n_steps": 4, **kwargs}
    with pytest.raises(MusicRLError, match=match):
        _policy().sample(args.pop("n"), args.pop("rng"), **args)


# ---- copies and checkpoints ---------------------------------------------------------


def test_clone_is_an_independent_copy():
    real_seqs = _real_seqs(1)
    policy = _policy(value_head=True)
    twin = clone_policy(policy, trainable=False)
    assert not twin.trainable and twin.trainable_variables == []
    np.testing.assert_array_equal(twin.vocab, policy.vocab)
    np.testing.assert_allclose(twin.log_prob(real_seqs), policy.log_prob(real_seqs), atol=1e-6)
    pretrain_step(policy, keras.optimizers.Adam(1e-2), real_seqs)
    assert not np.allclose(twin.log_prob(real_seqs), policy.log_prob(real_seqs), atol=1e-4)
    twin.set_weights(policy.get_weights())
    np.testing.assert_allclose(twin.log_prob(real_seqs), policy.log_prob(real_seqs), atol=1e-6)


def test_checkpoint_round_trip_with_optimizer(tmp_path):
    real_seqs = _real_seqs(1)
    policy = _policy()
    optimizer = keras.optimizers.Adam(1e-2)
    pretrain_step(policy, optimizer, real_seqs)
    ckpt = tf.train.Checkpoint(policy=policy, optimizer=optimizer)
    path = ckpt.save(os.fspath(tmp_path / "ckpt"))
    saved = policy.log_prob(real_seqs)
    for _ in range(3):
        pretrain_step(policy, optimizer, real_seqs)
    assert int(optimizer.iterations) == 4
    ckpt.restore(path).assert_consumed()
    assert int(optimizer.iterations) == 1
    np.testing.assert_array_equal(policy.log_prob(real_seqs), saved)
    # a fresh policy rebuilt from the stored vocabulary restores too
    fresh = ChordPolicy(N_PITCHES, vocab=policy.vocab, jit_compile=False)
    fresh_opt = keras.optimizers.Adam(1e-2)
    fresh_opt.build(fresh.trainable_variables)
    tf.train.Checkpoint(policy=fresh, optimizer=fresh_opt).restore(path).assert_consumed()
    np.testing.assert_array_equal(fresh.log_prob(real_seqs), saved)


def test_keras_save_and_load(tmp_path):
    policy = _policy(value_head=True)
    path = tmp_path / "policy.keras"
    policy.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, ChordPolicy) and loaded.has_value_head
    np.testing.assert_array_equal(loaded.vocab, policy.vocab)
    seqs = policy.sample(8, 0, n_steps=4).seqs
    np.testing.assert_allclose(loaded.log_prob(seqs), policy.log_prob(seqs), atol=1e-6)


@pytest.mark.parametrize("head", ["vocab", "bernoulli"])
def test_build_policy_from_config(head):
    cfg = Config(n_pitches=N_PITCHES, policy_head=head, policy_hidden=16, policy_embed=8, value_head=True,
                 policy_jit_compile=False, vocab_transpose=1, vocab_max_size=5)
    vocab = build_chord_vocab(_real_seqs(), **vocab_kwargs(cfg))
    assert len(vocab) == 5
    # the vocabulary follows the augmentation of the real windows
    assert vocab_kwargs(Config(transpose=3, vocab_transpose=1))["transpose"] == 3
    policy = build_policy(cfg, vocab)
    assert (policy.head, policy.hidden_size, policy.embed_size, policy.has_value_head) == (head, 16, 8, True)
    assert (policy.vocab is None) == (head == "bernoulli")
    with pytest.raises(MusicRLError, match="policy_head"):
        Config(policy_head="notes")


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("start, end, iterations", [(0.5, 0.1, 10), (0.0, 0.3, 3), (0.2, 0.2, 1)])
def test_kl_weight_moves_from_start_to_end(schedule, start, end, iterations):
    w = [kl_weight(i, start=start, end=end, iterations=iterations, schedule=schedule)
         for i in range(1, iterations + 3)]
    assert w[0] == pytest.approx(start, abs=1e-12)
    assert w[iterations] == pytest.approx(end, abs=1e-12) and w[-1] == pytest.approx(end, abs=1e-12)
    steps = np.diff(w) * np.sign(end - start)
    assert np.all(steps >= -1e-12)  # monotone towards the end
    mid = kl_weight(1 + iterations // 2, start=start, end=end, iterations=iterations, schedule=schedule)
    if schedule == "linear":
        assert mid == pytest.approx(start + (end - start) * (iterations // 2) / iterations, abs=1e-12)


def test_kl_weight_constant_and_bad_input():
    assert kl_weight(500, start=0.3, end=0.0, iterations=10) == 0.3
    for kwargs, match in (
        ({"schedule": "exp"}, "schedule"),
        ({"start": -0.1}, "start"),
        ({"end": float("nan")}, "end"),
        ({"iterations": 0}, "iterations"),
        ({"iteration": 0}, "iteration"),
    ):
        args = {"iteration": 1, "start": 0.1, "end": 0.0, "iterations": 5, "schedule": "linear", **kwargs}
        with pytest.raises(MusicRLError, match=match):
            kl_weight(args.pop("iteration"), **args)


def test_surrogate_losses_match_a_loop(rng):
    log_prob = rng.normal(-2.0, 0.5, size=(3, 4)).astype(np.float32)
    old = (log_prob + rng.normal(0.0, 0.3, size=(3, 4))).astype(np.float32)
    adv = rng.normal(size=(3, 4)).astype(np.float32)
    eps = 0.2
    pg_terms, clipped_steps = [], 0
    for b, t in itertools.product(range(3), range(4)):
        r = np.exp(np.float64(log_prob[b, t]) - old[b, t])
        pg_terms.append(-min(r * adv[b, t], min(max(r, 1 - eps), 1 + eps) * adv[b, t]))
        clipped_steps += abs(r - 1) > eps
    loss, clip_frac = ppo_clipped_loss(tf.constant(log_prob), tf.constant(old), tf.constant(adv), tf.constant(eps))
    assert float(loss) == pytest.approx(np.mean(pg_terms), abs=1e-5)
    assert float(clip_frac) == pytest.approx(clipped_steps / 12)
    assert 0 < clipped_steps < 12
    want = -np.mean([adv[b, t] * log_prob[b, t] for b, t in itertools.product(range(3), range(4))])
    assert float(reinforce_loss(tf.constant(log_prob), tf.constant(adv))) == pytest.approx(want, abs=1e-5)
