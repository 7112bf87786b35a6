"""The chord vocabulary of the policy's ``'vocab'`` head, and the chord <-> index mapping.

A vocabulary is an array ``(n_chords, n_pitches)`` of distinct multi-hot
chords, most frequent first (:func:`build_chord_vocab`). Index ``i`` names
chord ``vocab[i]``; a chord outside the vocabulary gets index ``n_chords``
(the policy's ``<other>`` token). Chords are looked up by exact keys: packed
bytes in NumPy (:func:`chords_to_indices`), and in a TensorFlow graph float64
words whose bits are the chord's pitches, found by binary search
(:func:`chords_to_indices_graph`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from ..errors import MusicRLError
from ..music.vectorize import check_seqs

__all__ = [
    "build_chord_vocab",
    "check_vocab",
    "chords_to_indices",
    "chords_to_indices_graph",
    "in_vocabulary",
    "index_table",
    "key_weights",
    "pitch_lists_to_vocab",
    "sorted_vocab_keys",
    "vocab_coverage",
    "vocab_kwargs",
    "vocab_to_pitch_lists",
]

# bits per float64 key word: sums of distinct powers of two below 2**52 are exact
_KEY_BITS = 52


def _chord_rows(seqs: np.ndarray) -> np.ndarray:
    """(..., n_pitches) multi-hot -> (n, n_pitches) uint8 rows."""
    return np.ascontiguousarray(seqs.reshape(-1, seqs.shape[-1]) > 0).astype(np.uint8)


def _row_keys(rows: np.ndarray) -> np.ndarray:
    """One hashable bytes key per uint8 multi-hot row."""
    packed = np.packbits(rows, axis=1)
    return packed.view(np.dtype((np.void, packed.shape[1]))).ravel()


def _chord_keys(chords: np.ndarray) -> list:
    """(..., n_pitches) multi-hot -> one hashable key per chord, in C order."""
    return _row_keys(_chord_rows(chords)).tolist()


def _check_vocab_settings(transpose: Any, max_size: Any, min_count: Any) -> None:
    if isinstance(transpose, bool) or not isinstance(transpose, (int, np.integer)) or transpose < 0:
        raise MusicRLError(f"transpose must be a non-negative int of semitones, got {transpose!r}")
    if max_size is not None and (
        isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)) or max_size < 1
    ):
        raise MusicRLError(f"max_size must be a positive int or None, got {max_size!r}")
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise MusicRLError(f"min_count must be a positive int, got {min_count!r}")


def _transposed_chords(uniq: np.ndarray, transpose: int) -> np.ndarray:
    """The chords of ``uniq`` (n, n_pitches) moved by ``-transpose..+transpose`` semitones, not already in it.

    A chord moves only where all its pitches stay on the grid. Returns
    distinct uint8 rows in lexicographic order.
    """
    n_pitches = uniq.shape[1]
    extra = []
    for k in range(-int(transpose), int(transpose) + 1):
        if k == 0:
            continue
        shifted = np.zeros_like(uniq)
        if k > 0:
            shifted[:, k:] = uniq[:, : n_pitches - k]
            fits = uniq[:, n_pitches - k :].sum(axis=1) == 0
        else:
            shifted[:, :k] = uniq[:, -k:]
            fits = uniq[:, :-k].sum(axis=1) == 0
        extra.append(shifted[fits])
    seen = set(_row_keys(uniq).tolist())
    new = np.concatenate(extra, axis=0) if extra else np.zeros((0, n_pitches), np.uint8)
    if not len(new):
        return new
    new = np.unique(new, axis=0)
    keep = np.array([k not in seen for k in _row_keys(new).tolist()], dtype=bool)
    return new[keep]


def build_chord_vocab(
    real_seqs: np.ndarray,
    *,
    transpose: int = 0,
    max_size: int | None = None,
    min_count: int = 1,
) -> np.ndarray:
    """Every distinct chord of some seqs, most frequent first.

    Parameters
    ----------
    real_seqs : np.ndarray, shape=(batch, n_steps, n_pitches) or (n_steps, n_pitches)
        Multi-hot training chords. Empty chords (rests) are chords too.
    transpose : int
        Also add every chord moved by ``-transpose..+transpose`` semitones,
        where all its pitches stay on the grid (counted as if seen once, so
        they rank after the chords actually seen).
    max_size : int or None
        Keep only the ``max_size`` most frequent chords (None: all). Chords
        left out are still expressible through the ``<other>`` branch.
    min_count : int
        Keep only chords seen at least this often (before transposing).
        With 2, chords seen once are left to ``<other>``, so that
        maximum-likelihood training gives ``<other>`` the share of rare
        chords, and chords never seen get a sensible probability (as an
        unknown-word threshold does in language models).

    Returns
    -------
    vocab : np.ndarray, shape=(n_chords, n_pitches), dtype=float32
        Distinct multi-hot chords, by descending count (ties in a fixed
        order), so the same data always gives the same vocabulary.

    Raises
    ------
    MusicRLError
        On bad seqs or settings.
    """
    seqs = check_seqs(real_seqs, name="real_seqs")
    _check_vocab_settings(transpose, max_size, min_count)
    uniq, counts = np.unique(_chord_rows(seqs), axis=0, return_counts=True)
    frequent = counts >= min_count
    if not frequent.any():
        raise MusicRLError(f"no chord of real_seqs is seen min_count={min_count} times")
    uniq, counts = uniq[frequent], counts[frequent].astype(np.float64)
    if transpose > 0:
        new = _transposed_chords(uniq, transpose)
        if len(new):
            # below every seen chord's count: transposed chords rank last
            uniq = np.concatenate([uniq, new], axis=0)
            counts = np.concatenate([counts, np.full(len(new), 0.5)])
    # np.unique sorted rows lexicographically; a stable sort keeps that for ties
    order = np.argsort(-counts, kind="stable")
    vocab = uniq[order]
    if max_size is not None:
        vocab = vocab[: int(max_size)]
    return vocab.astype(np.float32)


def vocab_kwargs(cfg: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`build_chord_vocab` for a :class:`~musicrl.config.Config`.

    The transposition is at least ``cfg.transpose``, the augmentation of the
    real windows, so every chord the policy is pretrained on is a vocabulary chord.
    """
    return {
        "transpose": max(cfg.vocab_transpose, cfg.transpose),
        "max_size": cfg.vocab_max_size or None,
        "min_count": cfg.vocab_min_count,
    }


def check_vocab(vocab: Any, n_pitches: int) -> np.ndarray:
    """Validate a vocabulary: (n_chords >= 1, n_pitches) distinct multi-hot chords; returned as float32.

    Raises
    ------
    MusicRLError
        On a wrong shape, values other than 0 and 1, or a repeated chord.
    """
    arr = np.asarray(vocab)
    if arr.ndim != 2 or arr.shape[1] != n_pitches or arr.shape[0] < 1:
        raise MusicRLError(
            f"vocab must have shape (n_chords >= 1, n_pitches={n_pitches}), got shape {arr.shape}"
        )
    arr = check_seqs(arr[None], n_pitches=n_pitches, name="vocab")[0]
    if len(np.unique(_row_keys(_chord_rows(arr)))) != len(arr):
        raise MusicRLError("vocab must not repeat a chord")
    return arr


def in_vocabulary(vocab: np.ndarray, seqs: np.ndarray) -> np.ndarray:
    """Which chords (steps) of ``seqs`` are vocabulary chords.

    Parameters
    ----------
    vocab : np.ndarray, shape=(n_chords, n_pitches)
        As returned by :func:`build_chord_vocab`.
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches) or (n_steps, n_pitches)

    Returns
    -------
    known : np.ndarray of bool, shape=seqs.shape[:-1]
    """
    vocab = np.asarray(vocab)
    if vocab.ndim != 2:
        raise MusicRLError(f"vocab must have shape (n_chords, n_pitches), got shape {vocab.shape}")
    seqs = check_seqs(seqs, n_pitches=vocab.shape[1], name="seqs")
    known = set(_chord_keys(vocab))
    return np.array([k in known for k in _chord_keys(seqs)], bool).reshape(seqs.shape[:-1])


def vocab_coverage(vocab: np.ndarray, seqs: np.ndarray) -> float:
    """Share of the chords (steps) of ``seqs`` that are vocabulary chords: the mean of :func:`in_vocabulary`.

    Returns
    -------
    coverage : float
        In [0, 1]; 1 means every chord is drawn by a single vocabulary token.
        Chords outside still have non-zero probability (``<other>`` branch).
    """
    return float(np.mean(in_vocabulary(vocab, seqs)))


def vocab_to_pitch_lists(vocab: np.ndarray) -> list[list[int]]:
    """Each chord of ``vocab`` (n_chords, n_pitches) as the list of its pitch columns.

    Far smaller than the multi-hot rows in JSON; :func:`pitch_lists_to_vocab` inverts it.
    """
    return [np.flatnonzero(row).tolist() for row in vocab]


def pitch_lists_to_vocab(pitch_lists: list, n_pitches: int) -> np.ndarray:
    """Multi-hot chords (n_chords, n_pitches) float32 from lists of pitch columns.

    The inverse of :func:`vocab_to_pitch_lists`.
    """
    vocab = np.zeros((len(pitch_lists), n_pitches), dtype=np.float32)
    for i, pitches in enumerate(pitch_lists):
        vocab[i, list(pitches)] = 1.0
    return vocab


# --------------------------------------------------------------------------------------
# chord -> index, in NumPy and in a graph
# --------------------------------------------------------------------------------------


def index_table(vocab: np.ndarray) -> dict:
    """The hash table of :func:`chords_to_indices`: chord key -> vocab index."""
    return {k: i for i, k in enumerate(_chord_keys(vocab))}


def chords_to_indices(table: dict, seqs: np.ndarray) -> np.ndarray:
    """Vocab index of every chord of ``seqs`` (batch, n_steps, n_pitches) -> (batch, n_steps) int32.

    ``table`` is :func:`index_table` of the vocabulary; a chord outside it
    gets ``len(table)`` (the ``<other>`` token).
    """
    get, other = table.get, len(table)
    idx = [get(k, other) for k in _chord_keys(seqs)]
    return np.asarray(idx, dtype=np.int32).reshape(seqs.shape[:2])


def key_weights(n_pitches: int) -> np.ndarray:
    """(n_pitches, n_words) float64: chord @ W gives exact integer keys, one per word."""
    n_words = -(-n_pitches // _KEY_BITS)
    w = np.zeros((n_pitches, n_words), dtype=np.float64)
    for p in range(n_pitches):
        w[p, p // _KEY_BITS] = 2.0 ** (p % _KEY_BITS)
    return w


def sorted_vocab_keys(vocab: tf.Tensor, key_w: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Sorted float64 keys of the vocabulary chords, (n_vocab, n_words), and their vocab indices (n_vocab,) int32.

    ``key_w`` is :func:`key_weights` of the grid.
    """
    keys = tf.matmul(tf.cast(vocab, tf.float64), key_w)
    order = tf.cast(tf.argsort(keys[:, 0]), tf.int32)
    return tf.gather(keys, order), order


def chords_to_indices_graph(
    chords: tf.Tensor, search: tuple[tf.Tensor, tf.Tensor], key_w: tf.Tensor, n_vocab: int
) -> tf.Tensor:
    """(..., n_pitches) chords -> (...) int32 vocab index, ``n_vocab`` when not in it, in the graph.

    ``search`` is :func:`sorted_vocab_keys` of the vocabulary.
    """
    sorted_keys, order = search
    keys = tf.tensordot(tf.cast(chords, tf.float64), key_w, axes=1)
    if key_w.shape[1] > 1:
        # keys of several words: compare with every vocabulary chord
        eq = tf.reduce_all(tf.equal(keys[..., None, :], sorted_keys), axis=-1)
        pos = tf.reduce_sum(tf.where(eq, tf.range(1, n_vocab + 1), 0), axis=-1) - 1
        found = pos >= 0
        pos = tf.maximum(pos, 0)
    else:
        # branchless binary search for the first sorted key >= key
        key, table = keys[..., 0], sorted_keys[:, 0]
        lo = tf.zeros_like(key, dtype=tf.int32)
        hi = tf.fill(tf.shape(key), n_vocab)
        for _ in range(int(np.ceil(np.log2(n_vocab + 1))) + 1):
            mid = (lo + hi) // 2
            less = tf.gather(table, tf.minimum(mid, n_vocab - 1)) < key
            active = lo < hi
            lo = tf.where(active & less, mid + 1, lo)
            hi = tf.where(active & ~less, mid, hi)
        pos = tf.minimum(lo, n_vocab - 1)
        found = tf.gather(table, pos) == key
    return tf.where(found, tf.gather(order, pos), n_vocab)
