"""Objective measures of chord sequences: pure, batched NumPy functions.

Every function takes ``seqs``, a multi-hot array of shape
``(batch, n_steps, n_pitches)`` (a single ``(n_steps, n_pitches)`` seq is read
as a batch of one) whose column ``p`` is MIDI pitch ``lowest_pitch + p``.
Functions that need pitch classes take ``lowest_pitch`` as a keyword.

Vocabulary used by every docstring:

* a **step** is one row of a seq; a **chord** is a non-empty step; a **rest**
  is an empty step;
* a **note** is one on cell (step, pitch): a pitch held over ``k`` steps counts
  ``k`` times, so histograms are duration-weighted (as MGEval's and
  music21's pitch-class histograms, which weigh by duration);
* **successive chords** are consecutive chords once rests are skipped;
* per-piece functions return one value per piece, shape ``(batch,)``; with
  ``pooled=True`` a rate is computed over the whole set as a ratio of sums
  (every note or chord of the set weighs the same), not as a mean of
  per-piece ratios;
* a value that is undefined (a rate over zero chords, a key of an empty
  piece) is NaN; :func:`summarize` keeps NaN where a whole set has nothing
  to measure.

Definitions come from MuseGAN (Dong et al. 2018: used pitch classes,
qualified notes, tonal distance after Harte et al. 2006), MGEval (Yang &
Lerch 2018: pitch-class histogram, pitch count, pitch range), muspy
(polyphony), RL Tuner (Jaques et al. 2017: notes in key, excessive
repetition) and ORGAN (Guimaraes et al. 2017: tonality as consonance,
repetitions); chord quality, voice leading, distinct chords, copying, the
collapse measures and the long-range ones (key consistency, the return to
the tonic, segment self-similarity, in-key share by position) are the
project's own definitions for a chord grid, stated in each docstring. Set
comparisons (intra/inter-set distances, classifier tests) live in
:mod:`musicrl.evaluation.mgeval` and :mod:`musicrl.evaluation.two_sample`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..errors import MusicRLError
from .vectorize import check_seqs

__all__ = [
    "CHORD_QUALITIES",
    "KRUMHANSL_MAJOR",
    "KRUMHANSL_MINOR",
    "chord_qualities",
    "consonant_chord_rate",
    "copies",
    "copy_rate",
    "distinct_chord_ratio",
    "distinct_chords",
    "empty_step_rate",
    "ends_on_tonic",
    "estimate_key",
    "histogram_overlap",
    "in_key_by_position",
    "in_key_rate",
    "key_consistency",
    "n_pitches_used",
    "pitch_class_histogram",
    "pitch_class_entropy",
    "pitch_class_overlap",
    "pitch_range",
    "polyphony",
    "qualified_note_rate",
    "repetition_rate",
    "scale_degree_histogram",
    "scale_degree_overlap",
    "segment_similarity",
    "self_similarity",
    "summarize",
    "tonal_centroids",
    "tonal_distance",
    "top_pitch_share",
    "used_pitch_classes",
    "voice_leading_cost",
    "voice_leading_distance",
]

#: Krumhansl-Kessler (1982) probe-tone ratings, tonic first, as used by the
#: Krumhansl-Schmuckler key finder (equal to music21's KrumhanslSchmuckler weights).
KRUMHANSL_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KRUMHANSL_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

#: Chord qualities recognised by :func:`chord_qualities`, with their pitch-class
#: sets relative to the root. Index ``i`` of this tuple is quality code ``i``.
CHORD_QUALITIES: tuple[str, ...] = (
    "major", "minor", "diminished", "augmented",
    "major7", "dominant7", "minor7", "half-diminished7", "diminished7",
)
_QUALITY_INTERVALS: tuple[tuple[int, ...], ...] = (
    (0, 4, 7), (0, 3, 7), (0, 3, 6), (0, 4, 8),
    (0, 4, 7, 11), (0, 4, 7, 10), (0, 3, 7, 10), (0, 3, 6, 10), (0, 3, 6, 9),
)

_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
_MINOR_SCALES = {
    "natural": (0, 2, 3, 5, 7, 8, 10),
    "harmonic": (0, 2, 3, 5, 7, 8, 11),
}


# --------------------------------------------------------------------------
# input handling


def _check_lowest_pitch(lowest_pitch: int, n_pitches: int) -> int:
    if isinstance(lowest_pitch, bool) or not isinstance(lowest_pitch, (int, np.integer)):
        raise MusicRLError(f"lowest_pitch must be an int, got {lowest_pitch!r}")
    if not (0 <= lowest_pitch and lowest_pitch + n_pitches <= 128):
        raise MusicRLError(
            f"lowest_pitch={lowest_pitch} with {n_pitches} pitch columns puts pitches outside "
            "MIDI 0..127"
        )
    return int(lowest_pitch)


def _on(seqs: np.ndarray, name: str = "seqs") -> np.ndarray:
    """Validated seqs as a bool batch (batch, n_steps, n_pitches)."""
    arr = check_seqs(seqs, name=name)
    if arr.shape[0] == 0:
        raise MusicRLError(f"{name} must hold at least one seq, got shape {arr.shape}")
    return arr > 0


def _fold(n_pitches: int, lowest_pitch: int) -> np.ndarray:
    """One-hot map (n_pitches, 12) from pitch column to pitch class."""
    fold = np.zeros((n_pitches, 12), dtype=np.float64)
    fold[np.arange(n_pitches), (lowest_pitch + np.arange(n_pitches)) % 12] = 1.0
    return fold


def _chroma(on: np.ndarray, lowest_pitch: int) -> np.ndarray:
    """Notes per pitch class and step, (batch, n_steps, 12) float."""
    return on.astype(np.float64) @ _fold(on.shape[-1], _check_lowest_pitch(lowest_pitch, on.shape[-1]))


def _ratio(num: np.ndarray, den: np.ndarray, pooled: bool) -> np.ndarray | float:
    """Per-piece num/den (NaN where den == 0), or the pooled ratio of sums."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    if pooled:
        total = den.sum()
        return float(num.sum() / total) if total > 0 else float("nan")
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _check_bool(value: bool, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise MusicRLError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise MusicRLError(f"{name} must be a positive int, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------
# pitch content


def _normalized(counts: np.ndarray, pooled: bool) -> np.ndarray:
    """(batch, k) counts -> each row (or, pooled, their sum) divided by its total; zeros where there is none."""
    if pooled:
        counts = counts.sum(axis=0, keepdims=True)
    total = counts.sum(axis=-1, keepdims=True)
    hist = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    return hist[0] if pooled else hist


def pitch_class_histogram(
    seqs: np.ndarray, *, lowest_pitch: int = 36, pooled: bool = False
) -> np.ndarray:
    """Normalised, duration-weighted pitch-class histogram (MGEval's PCH).

    Each note (on cell) adds one to its pitch class; the counts are divided by
    the number of notes, as in MGEval's ``total_pitch_class_histogram``, except
    that a note held over ``k`` steps counts ``k`` times.

    Parameters
    ----------
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
        Multi-hot chords.
    lowest_pitch : int
        MIDI pitch of column 0.
    pooled : bool
        Return one histogram of all notes of the set instead of one per piece.

    Returns
    -------
    hist : np.ndarray, shape=(batch, 12) or (12,), dtype=float64
        Index 0 is C. Rows sum to 1; an empty piece (or set) gives zeros.
    """
    pooled = _check_bool(pooled, "pooled")
    counts = _chroma(_on(seqs), lowest_pitch).sum(axis=1)
    return _normalized(counts, pooled)


def pitch_class_entropy(seqs: np.ndarray, *, lowest_pitch: int = 36) -> np.ndarray:
    """Shannon entropy in bits of each piece's pitch-class histogram (MusPy's pitch-class entropy).

    0 for a piece on one pitch class, ``log2(12) = 3.58`` for all twelve
    used equally; a diatonic piece with its tonic triad stressed lies near
    2.5-3. Notes are duration-weighted as in :func:`pitch_class_histogram`.

    Returns
    -------
    entropy : np.ndarray, shape=(batch,), dtype=float64
        NaN for an empty piece.
    """
    hist = pitch_class_histogram(seqs, lowest_pitch=lowest_pitch)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(hist > 0, -hist * np.log2(np.where(hist > 0, hist, 1.0)), 0.0)
    return np.where(hist.sum(axis=-1) > 0, terms.sum(axis=-1), np.nan)


def n_pitches_used(seqs: np.ndarray) -> np.ndarray:
    """Number of distinct pitches used per piece (MGEval's pitch count, PC).

    Returns
    -------
    n : np.ndarray, shape=(batch,), dtype=int64
        0 for an empty piece.
    """
    return _on(seqs).any(axis=1).sum(axis=-1).astype(np.int64)


def pitch_range(seqs: np.ndarray) -> np.ndarray:
    """Highest minus lowest pitch used per piece, in semitones (MGEval's PR).

    Returns
    -------
    pr : np.ndarray, shape=(batch,), dtype=float64
        0 for a piece of one pitch, NaN for an empty piece.
    """
    used = _on(seqs).any(axis=1)
    n_pitches = used.shape[-1]
    cols = np.arange(n_pitches)
    hi = np.where(used, cols, -1).max(axis=-1)
    lo = np.where(used, cols, n_pitches).min(axis=-1)
    return np.where(used.any(axis=-1), hi - lo, np.nan).astype(np.float64)


def used_pitch_classes(
    seqs: np.ndarray, *, lowest_pitch: int = 36, steps_per_bar: int | None = None
) -> np.ndarray:
    """Mean number of pitch classes used per bar (MuseGAN's UPC, 0..12).

    MuseGAN counts the pitch classes used in each bar and averages over bars.
    A chord grid has no bar lines of its own: ``steps_per_bar`` sets them
    (bars start at step 0; a shorter last bar is a bar too; empty bars count
    as 0), and ``None`` makes the whole piece one bar.

    Returns
    -------
    upc : np.ndarray, shape=(batch,), dtype=float64
    """
    on = _on(seqs)
    chroma = _chroma(on, lowest_pitch) > 0
    n_steps = on.shape[1]
    size = n_steps if steps_per_bar is None else _check_positive_int(steps_per_bar, "steps_per_bar")
    starts = np.arange(0, n_steps, size)
    per_bar = np.logical_or.reduceat(chroma, starts, axis=1).sum(axis=-1)
    return per_bar.mean(axis=1)


def polyphony(seqs: np.ndarray, *, pooled: bool = False) -> np.ndarray | float:
    """Mean number of notes per chord, rests excluded (muspy's ``polyphony``).

    Returns
    -------
    poly : np.ndarray, shape=(batch,), or float if ``pooled``
        NaN for a piece (set) without chords.
    """
    size = _on(seqs).sum(axis=-1)
    return _ratio(size.sum(axis=1), (size > 0).sum(axis=1), _check_bool(pooled, "pooled"))


def empty_step_rate(seqs: np.ndarray, *, pooled: bool = False) -> np.ndarray | float:
    """Share of steps that are rests (MuseGAN's empty-bar rate, per chord step).

    Returns
    -------
    rate : np.ndarray, shape=(batch,), or float if ``pooled``
    """
    empty = ~_on(seqs).any(axis=-1)
    return _ratio(empty.sum(axis=1), np.full(empty.shape[0], empty.shape[1]), _check_bool(pooled, "pooled"))


def qualified_note_rate(
    seqs: np.ndarray, *, min_steps: int = 2, pooled: bool = False
) -> np.ndarray | float:
    """Share of notes lasting at least ``min_steps`` steps (MuseGAN's QN, adapted).

    MuseGAN calls a note qualified when it lasts at least three time steps of
    a 96-per-bar grid (a 32nd note), to expose fragmented notes. On a chord
    grid no note is shorter than one step, so the measure is adapted: a note
    here is a maximal run of steps in which a pitch stays on (a tie), and it
    is qualified when the run spans at least ``min_steps`` steps. With the
    default 2 the rate is the share of notes held into the next chord, i.e.
    how much common-tone continuity a progression has. A run cut by the end
    of the piece is measured as far as it goes.

    Parameters
    ----------
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
    min_steps : int
        Shortest qualified run, in steps.
    pooled : bool
        Ratio over all notes of the set.

    Returns
    -------
    rate : np.ndarray, shape=(batch,), or float if ``pooled``
        NaN for a piece (set) without notes.
    """
    on = _on(seqs)
    min_steps = _check_positive_int(min_steps, "min_steps")
    n_steps = on.shape[1]
    onset = on.copy()
    onset[:, 1:] &= ~on[:, :-1]
    # run_ok[t] is True when the pitch stays on for the min_steps steps from t
    run_ok = np.zeros_like(on)
    if min_steps <= n_steps:
        run_ok[:, : n_steps - min_steps + 1] = True
        for k in range(min_steps):
            run_ok[:, : n_steps - min_steps + 1] &= on[:, k : n_steps - min_steps + 1 + k]
    num = (onset & run_ok).sum(axis=(1, 2))
    den = onset.sum(axis=(1, 2))
    return _ratio(num, den, _check_bool(pooled, "pooled"))


def top_pitch_share(seqs: np.ndarray, *, k: int = 3, pooled: bool = False) -> np.ndarray | float:
    """Share of all notes taken by the ``k`` most frequent pitches (a collapse measure).

    A generator that collapses onto a few pitches drives it towards 1; for
    ``k >= n_pitches`` it is 1 for every non-empty piece.

    Returns
    -------
    share : np.ndarray, shape=(batch,), or float if ``pooled``
        NaN for a piece (set) without notes.
    """
    on = _on(seqs)
    k = _check_positive_int(k, "k")
    pooled = _check_bool(pooled, "pooled")
    counts = on.sum(axis=1).astype(np.float64)
    if pooled:
        counts = counts.sum(axis=0, keepdims=True)
    top = -np.sort(-counts, axis=-1)[:, :k].sum(axis=-1)
    return _ratio(top, counts.sum(axis=-1), pooled)


def histogram_overlap(hist_a: np.ndarray, hist_b: np.ndarray) -> np.ndarray | float:
    """Overlap of two histograms: the sum of bin-wise minima after normalising each.

    1 for equal histograms, 0 for histograms with no bin in common.

    Parameters
    ----------
    hist_a, hist_b : np.ndarray, shape=(..., n_bins)
        Non-negative counts or shares; leading axes broadcast.

    Returns
    -------
    overlap : float or np.ndarray of shape ``(...)``
        In [0, 1]; NaN where a histogram sums to 0.
    """
    a = np.asarray(hist_a, dtype=np.float64)
    b = np.asarray(hist_b, dtype=np.float64)
    if a.ndim == 0 or b.ndim == 0 or a.shape[-1] != b.shape[-1]:
        raise MusicRLError(
            f"histograms must have the same number of bins on their last axis, got shapes "
            f"{a.shape} and {b.shape}"
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise MusicRLError("histograms must be finite")
    if (a < 0).any() or (b < 0).any():
        raise MusicRLError("histograms must be non-negative")
    sa = a.sum(axis=-1, keepdims=True)
    sb = b.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.minimum(a / sa, b / sb).sum(axis=-1)
    out = np.where((sa[..., 0] > 0) & (sb[..., 0] > 0), out, np.nan)
    return float(out) if out.ndim == 0 else out


def pitch_class_overlap(
    seqs: np.ndarray, reference_seqs: np.ndarray, *, lowest_pitch: int = 36
) -> float:
    """Overlap of the pooled pitch-class histograms of a set and a reference set.

    See :func:`histogram_overlap` (sum of minima) and
    :func:`pitch_class_histogram` (``pooled=True``). The two sets may differ
    in length and number of pitch columns but share ``lowest_pitch``.

    Returns
    -------
    overlap : float
        In [0, 1]; NaN if either set has no notes.
    """
    hist = pitch_class_histogram(seqs, lowest_pitch=lowest_pitch, pooled=True)
    ref = _chroma(_on(reference_seqs, "reference_seqs"), lowest_pitch).sum(axis=(0, 1))
    return float(histogram_overlap(hist, ref))


def _scale_degree_counts(on: np.ndarray, lowest_pitch: int) -> np.ndarray:
    """Notes per scale degree of each piece, (batch, 12): its pitch-class counts rotated to its tonic."""
    counts = _chroma(on, lowest_pitch).sum(axis=1)
    tonic, _, _ = estimate_key(on, lowest_pitch=lowest_pitch)
    # an empty piece has tonic -1 and no counts to rotate
    degrees = (np.where(tonic < 0, 0, tonic)[:, None] + np.arange(12)) % 12
    return np.take_along_axis(counts, degrees, axis=1)


def scale_degree_histogram(
    seqs: np.ndarray, *, lowest_pitch: int = 36, pooled: bool = False
) -> np.ndarray:
    """Normalised, duration-weighted histogram of scale degrees: pitch classes relative to each piece's tonic.

    Each piece's pitch-class counts (as in :func:`pitch_class_histogram`)
    are rotated so that the tonic :func:`estimate_key` finds for that piece
    is index 0: index ``d`` counts the notes ``d`` semitones above the
    tonic. A piece and any transposition of it give the same histogram.

    Major and minor pieces share the 12 bins, each rotated to its own tonic,
    rather than keeping a 12-bin half per mode. The two modes have the same
    tonic, supertonic, subdominant and dominant, and the leading tone of a
    minor-key cadence is raised as in major, so those bins mean the same in
    both; the modes differ on the third, sixth and seventh, and there a set
    in the other mode than its reference still loses overlap (a minor
    set's thirds sit at 3, a major reference's at 4). Separate halves would
    make the overlap depend on the share of minor pieces, which among
    twenty chorales varies from one draw of the pieces to the next as much
    as their keys do: between two halves of the 37 held-out chorales the
    overlap then varies as much as :func:`pitch_class_overlap` does (std
    0.05 over 40 splits, against 0.015 with shared bins). A piece whose key
    is read as its relative major or minor is rotated by 3 semitones, so
    such pieces blur the histogram.

    Parameters
    ----------
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
        Multi-hot chords.
    lowest_pitch : int
        MIDI pitch of column 0.
    pooled : bool
        Return one histogram of all notes of the set (each piece rotated to
        its own tonic first) instead of one per piece.

    Returns
    -------
    hist : np.ndarray, shape=(batch, 12) or (12,), dtype=float64
        Index 0 is the tonic, 7 the dominant. Rows sum to 1; an empty piece
        (or set) gives zeros.
    """
    pooled = _check_bool(pooled, "pooled")
    counts = _scale_degree_counts(_on(seqs), lowest_pitch)
    return _normalized(counts, pooled)


def scale_degree_overlap(
    seqs: np.ndarray, reference_seqs: np.ndarray, *, lowest_pitch: int = 36
) -> float:
    """Overlap of the pooled scale-degree histograms of a set and a reference set: a key-free :func:`pitch_class_overlap`.

    See :func:`histogram_overlap` (sum of minima) and
    :func:`scale_degree_histogram` (``pooled=True``; how minor pieces are
    counted). Which keys the pieces of either set are in does not matter,
    only how their notes lie relative to their tonics: a set of C major
    pieces and the same pieces in G major overlap fully. The two sets may
    differ in length and number of pitch columns but share ``lowest_pitch``.

    Returns
    -------
    overlap : float
        In [0, 1]; NaN if either set has no notes.
    """
    hist = scale_degree_histogram(seqs, lowest_pitch=lowest_pitch, pooled=True)
    ref = _scale_degree_counts(_on(reference_seqs, "reference_seqs"), lowest_pitch).sum(axis=0)
    return float(histogram_overlap(hist, ref))


# --------------------------------------------------------------------------
# key


def _key_profiles() -> np.ndarray:
    """The 24 rotated profiles (24, 12): rows 0-11 major on C..B, 12-23 minor."""
    rot = (np.arange(12)[None, :] - np.arange(12)[:, None]) % 12
    return np.concatenate([KRUMHANSL_MAJOR[rot], KRUMHANSL_MINOR[rot]])


def estimate_key(
    seqs: np.ndarray, *, lowest_pitch: int = 36
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Key of each piece by the Krumhansl-Schmuckler algorithm.

    The piece's duration-weighted pitch-class histogram is correlated
    (Pearson) with the Krumhansl-Kessler major and minor profiles rotated to
    all 12 tonics; the best of the 24 correlations gives the key. This is
    music21's ``KrumhanslSchmuckler`` analysis, vectorised over a batch (its
    per-piece Stream construction costs ~0.1 s a piece). Ties go to the first
    key in the order C..B major, then C..B minor.

    Returns
    -------
    tonic : np.ndarray, shape=(batch,), dtype=int64
        Pitch class of the tonic (0 = C), -1 for an empty piece.
    is_minor : np.ndarray, shape=(batch,), dtype=bool
    correlation : np.ndarray, shape=(batch,), dtype=float64
        Correlation of the best key (a measure of key clarity), NaN for an
        empty piece. A piece whose 12 pitch classes are all equally frequent
        fits every key equally: it gets C major with correlation 0.
    """
    hist = _chroma(_on(seqs), lowest_pitch).sum(axis=1)
    prof = _key_profiles()
    hc = hist - hist.mean(axis=-1, keepdims=True)
    pc = prof - prof.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(hc, axis=-1, keepdims=True) * np.linalg.norm(pc, axis=-1)[None, :]
    corr = np.divide(hc @ pc.T, norm, out=np.zeros((hist.shape[0], 24)), where=norm > 0)
    best = np.argmax(corr, axis=-1)
    empty = hist.sum(axis=-1) == 0
    tonic = np.where(empty, -1, best % 12).astype(np.int64)
    is_minor = (best >= 12) & ~empty
    correlation = np.where(empty, np.nan, corr[np.arange(len(best)), best])
    return tonic, is_minor, correlation


def _scale_masks(minor_scale: str) -> np.ndarray:
    """Scale membership (24, 12): rows as in :func:`_key_profiles`."""
    if minor_scale not in _MINOR_SCALES:
        raise MusicRLError(f"minor_scale must be one of {tuple(_MINOR_SCALES)}, got {minor_scale!r}")
    masks = np.zeros((24, 12), dtype=bool)
    for tonic in range(12):
        masks[tonic, [(tonic + i) % 12 for i in _MAJOR_SCALE]] = True
        masks[12 + tonic, [(tonic + i) % 12 for i in _MINOR_SCALES[minor_scale]]] = True
    return masks


def in_key_rate(
    seqs: np.ndarray,
    *,
    lowest_pitch: int = 36,
    key: tuple[int, bool] | None = None,
    minor_scale: str = "natural",
    pooled: bool = False,
    per_step: bool = False,
) -> np.ndarray | float:
    """Share of notes whose pitch class is in the piece's key (RL Tuner's "notes in key").

    RL Tuner rewards notes of a fixed C major scale; here each piece is
    measured against its own key from :func:`estimate_key` (Krumhansl-
    Schmuckler), unless ``key`` fixes one for all pieces. Notes are counted
    per step (duration-weighted), like the histogram the key is found from.

    Parameters
    ----------
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
    lowest_pitch : int
        MIDI pitch of column 0.
    key : (int, bool), optional
        ``(tonic pitch class, is_minor)`` used for every piece, e.g. ``(0, False)``
        for C major as in RL Tuner.
    minor_scale : {'natural', 'harmonic'}
        Scale of a minor key: natural minor (as muspy's ``pitch_in_scale_rate``)
        or harmonic minor (raised 7th, the leading tone of minor-key cadences).
    pooled : bool
        Ratio over all notes of the set (each piece still in its own key).
    per_step : bool
        The share at each step, still against the key of the whole piece:
        where in a piece its notes leave the key.

    Returns
    -------
    rate : np.ndarray, shape=(batch,), or float if ``pooled``
        NaN for a piece (set) without notes. With ``per_step``: shape
        ``(batch, n_steps)``, or ``(n_steps,)`` if ``pooled`` (over the
        pieces' notes at that step), NaN where a step has no notes.
    """
    pooled = _check_bool(pooled, "pooled")
    per_step = _check_bool(per_step, "per_step")
    num, den = _in_key_counts(seqs, lowest_pitch, key, minor_scale)
    if per_step:
        if pooled:
            num, den = num.sum(axis=0), den.sum(axis=0)
        return _ratio(num, den, False)
    return _ratio(num.sum(axis=1), den.sum(axis=1), pooled)


def _in_key_counts(
    seqs: np.ndarray, lowest_pitch: int, key: tuple[int, bool] | None, minor_scale: str
) -> tuple[np.ndarray, np.ndarray]:
    """Notes in the key and all notes, per piece and step (batch, n_steps), against each whole piece's key."""
    masks = _scale_masks(minor_scale)
    chroma = _chroma(_on(seqs), lowest_pitch)
    if key is None:
        tonic, is_minor, _ = estimate_key(seqs, lowest_pitch=lowest_pitch)
    else:
        if (
            not isinstance(key, tuple) or len(key) != 2
            or isinstance(key[0], bool) or not isinstance(key[0], (int, np.integer))
            or not 0 <= key[0] < 12
        ):
            raise MusicRLError(f"key must be (tonic pitch class 0..11, is_minor), got {key!r}")
        tonic = np.full(chroma.shape[0], int(key[0]))
        is_minor = np.full(chroma.shape[0], bool(key[1]))
    row = np.where(tonic < 0, 0, tonic) + 12 * is_minor
    return (chroma * masks[row][:, None, :]).sum(axis=-1), chroma.sum(axis=-1)


# --------------------------------------------------------------------------
# chords


@lru_cache(maxsize=1)
def _quality_table() -> np.ndarray:
    """Quality code of each of the 4096 pitch-class sets (bit j = pitch class j); -1 if none."""
    table = np.full(4096, -1, dtype=np.int64)
    for code, intervals in enumerate(_QUALITY_INTERVALS):
        for root in range(12):
            table[sum(1 << ((root + i) % 12) for i in intervals)] = code
    return table


def _pc_set_codes(on: np.ndarray, lowest_pitch: int) -> np.ndarray:
    """Pitch-class set of each step as a 12-bit int, (batch, n_steps)."""
    present = _chroma(on, lowest_pitch) > 0
    return present.astype(np.int64) @ (1 << np.arange(12, dtype=np.int64))


def chord_qualities(seqs: np.ndarray, *, lowest_pitch: int = 36) -> np.ndarray:
    """Quality of each step's chord, matched by pitch-class set up to transposition.

    A step's pitch-class set (octave doublings collapse) is compared with the
    sets of :data:`CHORD_QUALITIES`: major, minor, diminished and augmented
    triads and major-7, dominant-7, minor-7, half-diminished-7 and
    diminished-7 chords, on any root. The set must be equal, so dyads,
    incomplete chords (a seventh chord without its fifth), added-note chords
    and clusters match nothing. Inversions match (C6 has the pitch classes of
    Am7 and is labelled minor7). No two qualities share a pitch-class set.

    Returns
    -------
    codes : np.ndarray, shape=(batch, n_steps), dtype=int64
        Index into :data:`CHORD_QUALITIES`, or -1 for a rest or any other chord.
    """
    return _quality_table()[_pc_set_codes(_on(seqs), lowest_pitch)]


def consonant_chord_rate(
    seqs: np.ndarray, *, lowest_pitch: int = 36, pooled: bool = False
) -> np.ndarray | float:
    """Share of chords that are triads or seventh chords (see :func:`chord_qualities`).

    The project's chord-grid counterpart of ORGAN's tonality (share of
    perfect fifths) and RL Tuner's interval rules: rests are not counted;
    dyads and incomplete chords are not consonant chords.

    Returns
    -------
    rate : np.ndarray, shape=(batch,), or float if ``pooled``
        NaN for a piece (set) without chords.
    """
    on = _on(seqs)
    codes = _quality_table()[_pc_set_codes(on, lowest_pitch)]
    return _ratio((codes >= 0).sum(axis=1), on.any(axis=-1).sum(axis=1), _check_bool(pooled, "pooled"))


def repetition_rate(seqs: np.ndarray, *, pooled: bool = False) -> np.ndarray | float:
    """Share of steps equal to the previous step (RL Tuner's "excessively repeated", per chord).

    Steps ``1 .. n_steps - 1`` are compared with their predecessor as whole
    pitch sets; a rest after a rest is a repetition too.

    Returns
    -------
    rate : np.ndarray, shape=(batch,), or float if ``pooled``
        NaN for one-step pieces.
    """
    on = _on(seqs)
    same = (on[:, 1:] == on[:, :-1]).all(axis=-1)
    return _ratio(same.sum(axis=1), np.full(on.shape[0], on.shape[1] - 1), _check_bool(pooled, "pooled"))


def _row_ids(on: np.ndarray) -> np.ndarray:
    """An id per distinct step content, (batch, n_steps) int."""
    packed = np.packbits(on, axis=-1).reshape(-1, (on.shape[-1] + 7) // 8)
    _, inverse = np.unique(packed, axis=0, return_inverse=True)
    return inverse.reshape(on.shape[:2])


def distinct_chord_ratio(seqs: np.ndarray, *, pooled: bool = False) -> np.ndarray | float:
    """Distinct step contents divided by the number of steps (a diversity measure).

    Two steps are the same when they hold the same pitches (voicing matters);
    a rest counts as one content. Per piece, 1 means no step repeats an
    earlier one; pooled, distinct contents across the whole set divided by
    all its steps.

    Returns
    -------
    ratio : np.ndarray, shape=(batch,), or float if ``pooled``
        In (0, 1].
    """
    on = _on(seqs)
    ids = _row_ids(on)
    n_steps = on.shape[1]
    if _check_bool(pooled, "pooled"):
        return float(np.unique(ids).size / ids.size)
    per_piece = np.unique(np.arange(on.shape[0])[:, None] * (ids.max() + 1) + ids)
    n_distinct = np.bincount(per_piece // (ids.max() + 1), minlength=on.shape[0])
    return n_distinct / n_steps


def distinct_chords(seqs: np.ndarray, *, min_share: float = 0.0) -> int:
    """Number of distinct chords in a set after dropping rare pitches (a collapse measure).

    A pitch whose share of all notes of the set is below ``min_share`` is
    removed from every step first, so that scattered stray notes do not make
    a collapsed generator look diverse. Steps left empty are not chords.

    Parameters
    ----------
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
    min_share : float
        In [0, 1). 0 keeps every pitch.

    Returns
    -------
    n : int
    """
    on = _on(seqs)
    if not (isinstance(min_share, (int, float, np.floating)) and 0 <= min_share < 1):
        raise MusicRLError(f"min_share must be in [0, 1), got {min_share!r}")
    counts = on.sum(axis=(0, 1))
    total = counts.sum()
    if total == 0:
        return 0
    keep = counts >= min_share * total
    kept = on & keep
    rows = kept.reshape(-1, on.shape[-1])
    rows = rows[rows.any(axis=-1)]
    if rows.shape[0] == 0:
        return 0
    return int(np.unique(np.packbits(rows, axis=-1), axis=0).shape[0])


# --------------------------------------------------------------------------
# motion between successive chords


def _successive_chords(on: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of successive chords: (piece, step_from, step_to) arrays, rests skipped."""
    nonempty = on.any(axis=-1)
    pieces, steps = np.nonzero(nonempty)
    same_piece = pieces[1:] == pieces[:-1]
    return pieces[1:][same_piece], steps[:-1][same_piece], steps[1:][same_piece]


def voice_leading_cost(pitches_a: Iterable[int], pitches_b: Iterable[int]) -> float:
    """Total semitones moved from chord ``a`` to chord ``b`` under the best voice matching.

    A voice is a pair (note of ``a``, note of ``b``) moving ``|a - b|``
    semitones; the cost is the least total movement of a set of voices that
    uses every note of both chords:

    * equal sizes: the voices are a one-to-one matching, which for this cost
      is sorted order against sorted order;
    * different sizes: voices may split (one note to several) or merge
      (several to one): the minimum-cost edge cover of the bipartite graph of
      notes, found with ``scipy.optimize.linear_sum_assignment`` as a
      matching in which an unmatched note joins its nearest note of the
      other chord.

    Parameters
    ----------
    pitches_a, pitches_b : iterable of int
        Pitches (MIDI numbers or column indices) of the two chords, each
        without repeats and non-empty.

    Returns
    -------
    cost : float
        Semitones. ``C-E-G -> C-F-A`` costs 3; ``C-E-G -> C-E-G-Bb`` costs 3.
    """
    a = np.sort(np.asarray(list(pitches_a), dtype=np.float64))
    b = np.sort(np.asarray(list(pitches_b), dtype=np.float64))
    if a.ndim != 1 or b.ndim != 1 or a.size == 0 or b.size == 0:
        raise MusicRLError("voice_leading_cost needs two non-empty chords (1-D lists of pitches)")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise MusicRLError("chord pitches must be finite")
    m, n = a.size, b.size
    if m == n:
        return float(np.abs(a - b).sum())
    cost = np.abs(a[:, None] - b[None, :])
    # rows: a's notes then one dummy per b note; columns: b's notes then one dummy per a note.
    # A note paired with its dummy joins its nearest note of the other chord.
    big = cost.max() * (m + n) + 1.0
    full = np.full((m + n, n + m), big)
    full[:m, :n] = cost
    full[np.arange(m), n + np.arange(m)] = cost.min(axis=1)
    full[m + np.arange(n), np.arange(n)] = cost.min(axis=0)
    full[m:, n:] = 0.0
    rows, cols = linear_sum_assignment(full)
    return float(full[rows, cols].sum())


def voice_leading_distance(
    seqs: np.ndarray, *, per_voice: bool = True, pooled: bool = False
) -> np.ndarray | float:
    """Mean voice-leading distance between successive chords (rests skipped).

    Each chord change costs :func:`voice_leading_cost` semitones; with
    ``per_voice`` that total is divided by the number of voices of the change,
    ``max(len(a), len(b))`` (so ``C-E-G -> C-F-A`` moves 3 / 3 = 1 semitone per
    voice). The piece's value is the mean over its chord changes.

    Parameters
    ----------
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
    per_voice : bool
        Semitones per voice (True) or total semitones per change (False).
    pooled : bool
        Mean over all chord changes of the set.

    Returns
    -------
    distance : np.ndarray, shape=(batch,), or float if ``pooled``
        NaN for a piece (set) with fewer than two chords.
    """
    on = _on(seqs)
    per_voice = _check_bool(per_voice, "per_voice")
    pooled = _check_bool(pooled, "pooled")
    pieces, step_a, step_b = _successive_chords(on)
    costs = np.zeros(pieces.size)
    sizes = on.sum(axis=-1)
    cache: dict[tuple[bytes, bytes], float] = {}
    for i, (p, s, t) in enumerate(zip(pieces, step_a, step_b)):
        row_a, row_b = on[p, s], on[p, t]
        if np.array_equal(row_a, row_b):
            continue
        key = (np.packbits(row_a).tobytes(), np.packbits(row_b).tobytes())
        if key not in cache:
            cache[key] = voice_leading_cost(np.flatnonzero(row_a), np.flatnonzero(row_b))
        costs[i] = cache[key]
    if per_voice:
        costs = costs / np.maximum(sizes[pieces, step_a], sizes[pieces, step_b])
    num = np.bincount(pieces, weights=costs, minlength=on.shape[0])
    den = np.bincount(pieces, minlength=on.shape[0])
    return _ratio(num, den, pooled)


def tonal_centroids(seqs: np.ndarray, *, lowest_pitch: int = 36) -> np.ndarray:
    """Tonal centroid of each step (Harte, Sandler & Gasser 2006).

    The step's chroma (notes per pitch class, so an octave doubling weighs
    twice, as in MuseGAN's ``tonal_distance``) is L1-normalised and projected
    on the circle of fifths (radius 1), of minor thirds (radius 1) and of
    major thirds (radius 0.5): a 6-D vector, computed by
    ``librosa.feature.tonnetz`` from the chroma.

    Returns
    -------
    centroids : np.ndarray, shape=(batch, n_steps, 6), dtype=float64
        Zeros for a rest.
    """
    import librosa.feature

    chroma = _chroma(_on(seqs), lowest_pitch)
    return np.swapaxes(librosa.feature.tonnetz(chroma=np.swapaxes(chroma, 1, 2)), 1, 2)


def tonal_distance(
    seqs: np.ndarray, *, lowest_pitch: int = 36, pooled: bool = False
) -> np.ndarray | float:
    """Mean Euclidean distance between the tonal centroids of successive chords.

    Harte et al.'s harmonic-change measure (MuseGAN uses the same centroid to
    compare two tracks; here it compares chord ``t`` with the next chord,
    rests skipped). 0 for a repeated chord; large for a change to a distant
    key area.

    Returns
    -------
    distance : np.ndarray, shape=(batch,), or float if ``pooled``
        NaN for a piece (set) with fewer than two chords.
    """
    on = _on(seqs)
    cent = tonal_centroids(on, lowest_pitch=lowest_pitch)
    pieces, step_a, step_b = _successive_chords(on)
    dist = np.linalg.norm(cent[pieces, step_b] - cent[pieces, step_a], axis=-1)
    num = np.bincount(pieces, weights=dist, minlength=on.shape[0])
    den = np.bincount(pieces, minlength=on.shape[0])
    return _ratio(num, den, _check_bool(pooled, "pooled"))


# --------------------------------------------------------------------------
# copying and summary


# --------------------------------------------------------------------------
# long-range structure (a whole piece, not a step and its neighbours)


def key_consistency(seqs: np.ndarray, *, lowest_pitch: int = 36, pooled: bool = False) -> np.ndarray | float:
    """Whether a piece stays in one key: the key estimated on each half of it agrees.

    The piece is cut at step ``n_steps // 2``; :func:`estimate_key`
    (Krumhansl-Schmuckler) is run on each half alone, and the piece scores 1
    when both halves get the same tonic and mode, 0 otherwise. A piece that
    modulates (to the dominant, the relative key) and does not come back by
    its second half's weight scores 0, as does one that wanders without a key.

    Parameters
    ----------
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
        At least 2 steps.
    lowest_pitch : int
        MIDI pitch of column 0.
    pooled : bool
        The share of consistent pieces among those with notes in both halves.

    Returns
    -------
    consistent : np.ndarray, shape=(batch,), values 0 or 1, or float if ``pooled``
        NaN for a piece with a half without notes.
    """
    on = _on(seqs)
    if on.shape[1] < 2:
        raise MusicRLError(f"key_consistency needs pieces of at least 2 steps, got {on.shape[1]}")
    half = on.shape[1] // 2
    tonic_a, minor_a, _ = estimate_key(on[:, :half], lowest_pitch=lowest_pitch)
    tonic_b, minor_b, _ = estimate_key(on[:, half:], lowest_pitch=lowest_pitch)
    defined = (tonic_a >= 0) & (tonic_b >= 0)
    same = (tonic_a == tonic_b) & (minor_a == minor_b) & defined
    return _ratio(same, defined, _check_bool(pooled, "pooled"))


def ends_on_tonic(seqs: np.ndarray, *, lowest_pitch: int = 36, pooled: bool = False) -> np.ndarray | float:
    """Whether a piece's last chord is the tonic chord of its key (a return to the tonic).

    The key is :func:`estimate_key` of the whole piece; the last chord is
    its last non-empty step (trailing rests are skipped). The chord is the
    tonic chord when it holds the tonic and only pitch classes of a tonic
    triad with either third: ``{t, t+3 or t+4, t+7}`` in any voicing or
    inversion, with octave doublings. Either third, because minor-key
    chorales mostly end on the major tonic chord (a Picardy third); a bare
    tonic or an open fifth counts too (a final chord without its third).

    Parameters
    ----------
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
    lowest_pitch : int
        MIDI pitch of column 0.
    pooled : bool
        The share of pieces that end on their tonic, among pieces with a chord.

    Returns
    -------
    on_tonic : np.ndarray, shape=(batch,), values 0 or 1, or float if ``pooled``
        NaN for a piece without chords.
    """
    on = _on(seqs)
    tonic, _, _ = estimate_key(on, lowest_pitch=lowest_pitch)
    codes = _pc_set_codes(on, lowest_pitch)
    sounding = codes > 0
    last = on.shape[1] - 1 - np.argmax(sounding[:, ::-1], axis=1)
    final = codes[np.arange(on.shape[0]), last]
    t = np.where(tonic < 0, 0, tonic)

    def bit(interval: int) -> np.ndarray:
        return np.left_shift(1, (t + interval) % 12)

    triad = bit(0) | bit(3) | bit(4) | bit(7)
    both_thirds = ((final & bit(3)) > 0) & ((final & bit(4)) > 0)
    is_tonic = ((final & ~triad) == 0) & ((final & bit(0)) > 0) & ~both_thirds
    defined = sounding.any(axis=1)
    return _ratio(is_tonic & defined, defined, _check_bool(pooled, "pooled"))


def segment_similarity(seqs: np.ndarray, *, segment: int = 4) -> np.ndarray:
    """Self-similarity matrix of each piece's segments of ``segment`` chords.

    Segment ``i`` holds steps ``[i * segment, (i + 1) * segment)``; steps
    after the last whole segment are left out. Two segments are compared
    step by step: the Jaccard index of the two steps' pitches (notes in both
    over notes in either; voicing counts, two rests are equal), averaged
    over the ``segment`` aligned steps. So an exact repeat scores 1, a
    segment sharing no note with the other 0, and one chord of four changed
    from C-E-G to C-E-A 0.875.

    Parameters
    ----------
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
    segment : int
        Steps per segment; ``n_steps // segment`` must be at least 2.

    Returns
    -------
    similarity : np.ndarray, shape=(batch, n_segments, n_segments), dtype=float64
        Symmetric, in [0, 1], 1 on the diagonal.
    """
    on = _on(seqs)
    segment = _check_positive_int(segment, "segment")
    batch, n_steps, n_pitches = on.shape
    k = n_steps // segment
    if k < 2:
        raise MusicRLError(f"segment={segment} leaves fewer than 2 segments in pieces of {n_steps} steps")
    seg = on[:, : k * segment].reshape(batch, k, segment, n_pitches).astype(np.float64)
    shared = np.einsum("bisp,bjsp->bijs", seg, seg)
    sizes = seg.sum(axis=-1)
    either = sizes[:, :, None, :] + sizes[:, None, :, :] - shared
    jaccard = np.divide(shared, either, out=np.ones_like(shared), where=either > 0)
    return jaccard.mean(axis=-1)


def self_similarity(seqs: np.ndarray, *, segment: int = 4, pooled: bool = False) -> np.ndarray | float:
    """Repetition structure: how alike a piece's segments are, on average (see :func:`segment_similarity`).

    The mean of the segment self-similarity matrix off its diagonal, i.e.
    over every pair of distinct segments. A piece that repeats one phrase
    scores 1, one whose segments share no note 0; a piece made of two
    phrases each played twice (AABB, no common notes) 1/3. Compare a set's
    value with that of real windows of the same length: music repeats and
    varies phrases, so a generator far below its real data writes without
    recurring material and one far above it loops.

    Parameters
    ----------
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
    segment : int
        Steps per segment (4: a bar of 4/4 at one chord per beat).
    pooled : bool
        The mean over every pair of segments of the set.

    Returns
    -------
    similarity : np.ndarray, shape=(batch,), or float if ``pooled``
        In [0, 1].
    """
    pooled = _check_bool(pooled, "pooled")
    sim = segment_similarity(seqs, segment=segment)
    pairs = sim[:, ~np.eye(sim.shape[1], dtype=bool)]
    return float(pairs.mean()) if pooled else pairs.mean(axis=1)


def in_key_by_position(
    seqs: np.ndarray,
    *,
    lowest_pitch: int = 36,
    n_parts: int = 4,
    key: tuple[int, bool] | None = None,
    minor_scale: str = "natural",
    pooled: bool = False,
) -> np.ndarray:
    """In-key share in each of ``n_parts`` consecutive parts of a piece, against the key of the whole piece.

    :func:`in_key_rate` by position: part ``i`` holds steps
    ``[i * n_steps // n_parts, (i + 1) * n_steps // n_parts)``, and its
    notes are measured against the piece's key from :func:`estimate_key`
    (or ``key``), so pieces of any length give the same number of values,
    and a piece that starts in its key and drifts out of it late shows it.

    Parameters
    ----------
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
    n_parts : int
        Parts per piece, at most ``n_steps``.
    lowest_pitch, key, minor_scale
        As in :func:`in_key_rate`.
    pooled : bool
        Per part, the ratio over all notes of the set in that part.

    Returns
    -------
    rate : np.ndarray, shape=(batch, n_parts), or (n_parts,) if ``pooled``
        NaN where a part has no notes.
    """
    pooled = _check_bool(pooled, "pooled")
    n_parts = _check_positive_int(n_parts, "n_parts")
    num, den = _in_key_counts(seqs, lowest_pitch, key, minor_scale)
    n_steps = num.shape[1]
    if n_parts > n_steps:
        raise MusicRLError(f"n_parts must be at most n_steps={n_steps}, got {n_parts}")
    starts = np.arange(n_parts) * n_steps // n_parts
    num, den = np.add.reduceat(num, starts, axis=1), np.add.reduceat(den, starts, axis=1)
    if pooled:
        num, den = num.sum(axis=0), den.sum(axis=0)
    return _ratio(num, den, False)


def _as_seq_list(seqs: np.ndarray | Iterable[np.ndarray], name: str) -> list[np.ndarray]:
    """A batch or a list of seqs of any lengths -> list of bool (n_steps, n_pitches)."""
    if isinstance(seqs, np.ndarray):
        return list(_on(seqs, name))
    out = []
    for i, seq in enumerate(seqs):
        if np.ndim(seq) != 2:
            raise MusicRLError(
                f"{name}[{i}] must be one seq of shape (n_steps, n_pitches), got shape {np.shape(seq)}"
            )
        out.append(_on(seq, f"{name}[{i}]")[0])
    if not out:
        raise MusicRLError(f"{name} must hold at least one seq")
    return out


def copies(
    gen_seqs: np.ndarray,
    train_seqs: np.ndarray | Iterable[np.ndarray],
    *,
    run_length: int = 8,
) -> np.ndarray:
    """Which generated pieces repeat a run of ``run_length`` steps of a training piece verbatim.

    Every run of ``run_length`` consecutive steps of every training piece is
    hashed (runs that are all rests are left out, since silence is not a
    copy); a generated piece is a copy when any of its own runs is in that
    set. Pitches must match exactly: a transposed copy is not a copy.

    Parameters
    ----------
    gen_seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
        Generated seqs, ``n_steps >= run_length``.
    train_seqs : np.ndarray or list of np.ndarray
        Training seqs: a batch, or a list of ``(n_steps_i, n_pitches)`` seqs of
        any lengths (pieces shorter than ``run_length`` hold no run).
    run_length : int
        Steps of a copied run.

    Returns
    -------
    copied : np.ndarray, shape=(batch,), dtype=bool
    """
    run_length = _check_positive_int(run_length, "run_length")
    gen = _on(gen_seqs, "gen_seqs")
    if gen.shape[1] < run_length:
        raise MusicRLError(
            f"gen_seqs have {gen.shape[1]} steps, fewer than run_length={run_length}"
        )
    train = _as_seq_list(train_seqs, "train_seqs")
    n_pitches = gen.shape[-1]
    for i, seq in enumerate(train):
        if seq.shape[-1] != n_pitches:
            raise MusicRLError(
                f"train_seqs[{i}] has {seq.shape[-1]} pitch columns, gen_seqs have {n_pitches}"
            )

    def runs(seq: np.ndarray) -> list[bytes]:
        if seq.shape[0] < run_length:
            return []
        packed = np.packbits(seq, axis=-1)
        nonempty = seq.any(axis=-1)
        # a run is all rests when the count of chords inside it is zero
        chords_in = np.convolve(nonempty, np.ones(run_length, dtype=np.int64), mode="valid")
        return [packed[t : t + run_length].tobytes() for t in np.flatnonzero(chords_in)]

    known = {run for seq in train for run in runs(seq)}
    return np.array([any(run in known for run in runs(seq)) for seq in gen], dtype=bool)


def copy_rate(
    gen_seqs: np.ndarray,
    train_seqs: np.ndarray | Iterable[np.ndarray],
    *,
    run_length: int = 8,
) -> float:
    """Share of generated pieces that copy a ``run_length``-step run of the training set.

    See :func:`copies` for the definition.

    Returns
    -------
    rate : float
        In [0, 1].
    """
    return float(copies(gen_seqs, train_seqs, run_length=run_length).mean())


def summarize(
    seqs: np.ndarray,
    *,
    lowest_pitch: int = 36,
    reference_seqs: np.ndarray | None = None,
    rare_share: float = 0.01,
) -> dict[str, float]:
    """Every scalar measure of a set of seqs, for logging and evaluation.

    Rates are pooled over the set (ratios of sums, see the module docstring);
    per-piece counts are averaged over the pieces that have a value.

    Parameters
    ----------
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
    lowest_pitch : int
        MIDI pitch of column 0.
    reference_seqs : np.ndarray, optional
        Real seqs; adds ``pitch_class_overlap`` and ``scale_degree_overlap``
        with their pooled histograms.
    rare_share : float
        ``min_share`` of ``distinct_chords_common``.

    Returns
    -------
    summary : dict of str to float
        ``empty_step_rate``, ``polyphony``, ``n_pitches_used``, ``pitch_range``,
        ``used_pitch_classes``, ``pitch_class_entropy`` (bits, per piece,
        averaged), ``qualified_note_rate``, ``in_key_rate``,
        ``key_correlation``, ``consonant_chord_rate``, ``voice_leading``
        (semitones per voice), ``tonal_distance``, ``repetition_rate``,
        ``distinct_chord_ratio`` (per piece, averaged),
        ``distinct_chord_ratio_set`` (pooled), ``distinct_chords_common``
        (:func:`distinct_chords` with ``min_share=rare_share``),
        ``top3_pitch_share`` (pooled), and ``pitch_class_overlap`` and
        ``scale_degree_overlap`` if ``reference_seqs`` is given. NaN where the set has nothing to measure.
    """
    on = _on(seqs)
    _check_lowest_pitch(lowest_pitch, on.shape[-1])

    def mean(values: np.ndarray) -> float:
        values = np.asarray(values, dtype=np.float64)
        ok = ~np.isnan(values)
        return float(values[ok].mean()) if ok.any() else float("nan")

    lp = {"lowest_pitch": lowest_pitch}
    out = {
        "empty_step_rate": empty_step_rate(on, pooled=True),
        "polyphony": polyphony(on, pooled=True),
        "n_pitches_used": mean(n_pitches_used(on)),
        "pitch_range": mean(pitch_range(on)),
        "used_pitch_classes": mean(used_pitch_classes(on, **lp)),
        "pitch_class_entropy": mean(pitch_class_entropy(on, **lp)),
        "qualified_note_rate": qualified_note_rate(on, pooled=True),
        "in_key_rate": in_key_rate(on, pooled=True, **lp),
        "key_correlation": mean(estimate_key(on, **lp)[2]),
        "consonant_chord_rate": consonant_chord_rate(on, pooled=True, **lp),
        "voice_leading": voice_leading_distance(on, pooled=True),
        "tonal_distance": tonal_distance(on, pooled=True, **lp),
        "repetition_rate": repetition_rate(on, pooled=True),
        "distinct_chord_ratio": mean(distinct_chord_ratio(on)),
        "distinct_chord_ratio_set": distinct_chord_ratio(on, pooled=True),
        "distinct_chords_common": float(distinct_chords(on, min_share=rare_share)),
        "top3_pitch_share": top_pitch_share(on, k=3, pooled=True),
    }
    if reference_seqs is not None:
        out["pitch_class_overlap"] = pitch_class_overlap(on, reference_seqs, **lp)
        out["scale_degree_overlap"] = scale_degree_overlap(on, reference_seqs, **lp)
    return {k: float(v) for k, v in out.items()}
