"""Tests of the chord vocabulary and the chord <-> index mapping."""

import numpy as np
import pytest
import tensorflow as tf

from musicrl.errors import MusicRLError
from musicrl.learning.vocab import (
    build_chord_vocab,
    check_vocab,
    chords_to_indices,
    chords_to_indices_graph,
    in_vocabulary,
    index_table,
    key_weights,
    pitch_lists_to_vocab,
    sorted_vocab_keys,
    vocab_coverage,
    vocab_to_pitch_lists,
)

# one octave: column p is pitch class p
N_PITCHES = 12
C, F, G, AM = [0, 4, 7], [0, 5, 9], [2, 7, 11], [0, 4, 9]


def _multi_hot(*pitch_lists, n_pitches=N_PITCHES):
    """(len(pitch_lists), n_pitches) float32, one chord per list of pitch columns."""
    return pitch_lists_to_vocab(list(pitch_lists), n_pitches)


def _progressions(n_copies=4):
    """(3 * n_copies, 4, 12): C F G C, Am F G C, C G Am F; per copy C is seen 4 times, F and G 3, Am 2."""
    one = np.stack([_multi_hot(C, F, G, C), _multi_hot(AM, F, G, C), _multi_hot(C, G, AM, F)])
    return np.concatenate([one] * n_copies)


def _contains(rows, chord):
    return bool(np.any(np.all(rows == chord, axis=-1)))


def test_vocab_holds_every_training_chord_once_most_frequent_first():
    real_seqs = _progressions()
    vocab = build_chord_vocab(real_seqs)
    assert vocab.dtype == np.float32 and vocab.shape == (4, N_PITCHES)
    assert len(np.unique(vocab, axis=0)) == 4
    assert vocab_coverage(vocab, real_seqs) == 1.0
    np.testing.assert_array_equal(vocab[0], _multi_hot(C)[0])
    np.testing.assert_array_equal(vocab[-1], _multi_hot(AM)[0])


def test_vocab_transpose_and_max_size():
    real_seqs = _progressions()
    up_down = build_chord_vocab(real_seqs, transpose=1)
    # C, F, Am hold pitch 0 and G holds 11, so each moves one way only: C+1, F+1, Am+1, G-1,
    # and G-1 = F+1 = (1, 6, 10)
    assert len(up_down) == 4 + 3
    assert vocab_coverage(up_down, real_seqs) == 1.0
    np.testing.assert_array_equal(up_down[:4], build_chord_vocab(real_seqs))
    assert _contains(up_down, _multi_hot([1, 5, 8])[0])
    assert not _contains(up_down, _multi_hot([0, 3, 8])[0])
    top2 = build_chord_vocab(real_seqs, max_size=2)
    np.testing.assert_array_equal(top2, build_chord_vocab(real_seqs)[:2])


def test_min_count_leaves_rare_chords_to_other():
    real_seqs = _progressions()
    # over 4 copies: C 16 times, F and G 12, Am 8
    assert len(build_chord_vocab(real_seqs, min_count=8)) == 4
    frequent = build_chord_vocab(real_seqs, min_count=9)
    assert len(frequent) == 3 and not _contains(frequent, _multi_hot(AM)[0])
    with pytest.raises(MusicRLError, match="min_count=17"):
        build_chord_vocab(real_seqs, min_count=17)


def test_coverage_counts_unseen_chords():
    vocab = build_chord_vocab(_progressions())
    held = _multi_hot(C, [1, 5, 8], G, [3])[None]
    assert vocab_coverage(vocab, held) == pytest.approx(0.5)
    np.testing.assert_array_equal(in_vocabulary(vocab, held), [[True, False, True, False]])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"real_seqs": np.full((2, 4, N_PITCHES), 0.5)}, "multi-hot"),
        ({"real_seqs": np.zeros((2, 4)), "transpose": -1}, "transpose"),
        ({"real_seqs": np.zeros((2, 4)), "max_size": 0}, "max_size"),
        ({"real_seqs": np.zeros((2, 4)), "min_count": True}, "min_count"),
    ],
)
def test_build_chord_vocab_rejects_bad_input(kwargs, match):
    with pytest.raises(MusicRLError, match=match):
        build_chord_vocab(**kwargs)


def test_check_vocab_rejects_repeats_and_wrong_shapes():
    vocab = _multi_hot(C, F)
    np.testing.assert_array_equal(check_vocab(vocab.astype(bool), N_PITCHES), vocab)
    with pytest.raises(MusicRLError, match="repeat"):
        check_vocab(_multi_hot(C, F, C), N_PITCHES)
    with pytest.raises(MusicRLError, match="n_pitches=12"):
        check_vocab(vocab[:, :6], N_PITCHES)
    with pytest.raises(MusicRLError, match="n_chords >= 1"):
        check_vocab(np.zeros((0, N_PITCHES)), N_PITCHES)


def test_pitch_lists_round_trip():
    vocab = build_chord_vocab(_progressions(), transpose=2)
    lists = vocab_to_pitch_lists(vocab)
    assert lists[0] == C and all(isinstance(p, int) for p in lists[0])
    np.testing.assert_array_equal(pitch_lists_to_vocab(lists, N_PITCHES), vocab)


@pytest.mark.parametrize("n_pitches", [3, 60])
def test_indices_in_numpy_and_in_the_graph_agree(n_pitches, rng):
    # 60 pitches: chord keys of two float64 words, compared without the binary search
    vocab = np.unique((rng.random((9, n_pitches)) < 0.4).astype(np.float32), axis=0)
    chords = np.concatenate([vocab, (rng.random((30, n_pitches)) < 0.5).astype(np.float32)])
    chords = chords[rng.permutation(len(chords))][None]
    idx = chords_to_indices(index_table(vocab), chords)
    assert idx.shape == chords.shape[:2] and idx.dtype == np.int32
    known = in_vocabulary(vocab, chords)
    np.testing.assert_array_equal(idx == len(vocab), ~known)
    np.testing.assert_array_equal(vocab[idx[known]], chords[known])
    key_w = tf.constant(key_weights(n_pitches))
    search = sorted_vocab_keys(tf.constant(vocab), key_w)
    in_graph = chords_to_indices_graph(tf.constant(chords), search, key_w, len(vocab)).numpy()
    np.testing.assert_array_equal(in_graph, idx)


def test_key_weights_give_distinct_exact_keys():
    # every chord on 5 pitches, one word each: the keys are the chords read as binary numbers
    chords = np.array(np.meshgrid(*[[0.0, 1.0]] * 5, indexing="ij")).reshape(5, -1).T
    keys = chords @ key_weights(5)
    assert keys.shape == (32, 1)
    np.testing.assert_array_equal(np.sort(keys[:, 0]), np.arange(32))
    assert key_weights(60).shape == (60, 2)
