"""One row of the evaluation table: every comparison of one set with real clips (pure).

:func:`compare_to_real` puts a set through the measures of
:func:`musicrl.music.metrics.summarize`, the copy rate, MGEval
(:mod:`musicrl.evaluation.mgeval`) and the two-sample tests
(:mod:`musicrl.evaluation.two_sample`) against the same real clips.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import MusicRLError
from ..learning.discriminator import check_d_seqs
from ..music import metrics
from ..music.vectorize import check_seqs
from ..seeding import as_rng
from .checks import check_int, piece_codes
from .intervals import bootstrap_interval, wilson_interval
from .mgeval import mgeval_compare, nanmean
from .two_sample import (discriminator_train_test, discriminator_two_sample_test, fewest_pieces, seq_two_sample_test,
                         set_d_inputs)

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "COPY_RUN_LENGTH",
    "D_BATCH_SIZE",
    "HEADLINE_COLUMNS",
    "INTERVAL_LEVEL",
    "LONG_RANGE",
    "SEQ_SPLITS",
    "compare_to_real",
    "long_range_measures",
    "row_intervals",
    "set_measure_intervals",
]

HEADLINE_COLUMNS: tuple[str, ...] = (
    "fresh_d_acc", "fresh_d_full_acc", "seq_clf_acc", "mgeval_kl", "mgeval_oa", "copy_rate",
)
"""The table's first columns; every key of :func:`musicrl.music.metrics.summarize` follows."""

COPY_RUN_LENGTH = 8
"""Chords of a run copied from a training piece, for ``copy_rate``."""
SEQ_SPLITS = 5
"""Folds of the feature-classifier test (fewer for tiny sets)."""
D_BATCH_SIZE = 32
"""Batch size of the fresh discriminators."""
BOOTSTRAP_RESAMPLES = 1000
"""Resamples of the pieces of a set behind each set measure's interval."""
INTERVAL_LEVEL = 0.95
"""Coverage of every interval of the table."""
LONG_RANGE: tuple[str, ...] = (
    "key_consistency", "ends_on_tonic", "self_similarity", "in_key_first_quarter", "in_key_last_quarter",
)
"""The measures of :func:`long_range_measures`, in its order."""


def compare_to_real(
    gen_seqs: np.ndarray,
    real_seqs: np.ndarray,
    cfg: Any,
    *,
    train_seqs: Any = None,
    copy_run_length: int = COPY_RUN_LENGTH,
    d_test: bool = True,
    d_epochs: int = 5,
    d_splits: int = 3,
    gen_x: np.ndarray | None = None,
    real_x: np.ndarray | None = None,
    train_real_x: np.ndarray | None = None,
    train_gen_x: np.ndarray | None = None,
    d_cache: dict | None = None,
    real_groups: Any = None,
    gen_groups: Any = None,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    resample_reference: bool = True,
    seed: Any = 0,
) -> dict[str, Any]:
    """Every comparison of one set with real clips: one row of the evaluation table, with its intervals.

    * every scalar of :func:`musicrl.music.metrics.summarize` of ``gen_seqs``
      (``pitch_class_overlap`` and ``scale_degree_overlap`` against ``real_seqs``);
    * ``copy_rate``: :func:`musicrl.music.metrics.copy_rate` against the training
      pieces, with runs of ``min(copy_run_length, n_steps)`` chords;
    * MGEval (:func:`mgeval_compare`) against ``real_seqs``, per feature and
      as ``mgeval_kl`` / ``mgeval_oa``, the means over the features of
      ``kl_real_inter`` / ``oa_real_inter``;
    * ``seq_clf_acc``: :func:`seq_two_sample_test` (logistic regression,
      5-fold, fewer folds for tiny sets);
    * ``fresh_d_acc``: :func:`discriminator_two_sample_test`, a new
      discriminator of ``cfg``'s architecture trained for ``d_epochs`` epochs
      in each of ``d_splits`` folds;
    * ``fresh_d_full_acc``: :func:`discriminator_train_test`, a new
      discriminator trained for ``d_epochs`` epochs on ``train_real_x``
      against ``train_gen_x`` and scored on the two sets.

    A measure that cannot be taken (no training pieces, fewer than two clips
    or groups per class for a test, ``d_test=False``, no ``train_gen_x``) is
    NaN, with a line in ``notes``.

    Each column gets a 95 % interval (:func:`row_intervals`): Wilson's for
    the accuracies and the copy rate, a bootstrap over the set's pieces and
    (with ``resample_reference``) the reference's (:func:`set_measure_intervals`,
    ``n_resamples`` draws) for the set measures; the groups say which
    windows are one piece. Its draws come after every other, so the row
    does not depend on ``n_resamples``.

    Parameters
    ----------
    gen_seqs, real_seqs : np.ndarray, shape=(batch, cfg.n_steps, cfg.n_pitches)
        The set, and the real clips it is compared with (held out from training).
    cfg : Config
    train_seqs : np.ndarray or list of np.ndarray, optional
        The training pieces (any lengths), for ``copy_rate``.
    copy_run_length : int
        Chords of a copied run (shortened to ``n_steps`` for shorter clips).
    d_test : bool
        Run the fresh-discriminator test (the slow part).
    d_epochs, d_splits : int
        Its training epochs per fold, and folds.
    gen_x, real_x : np.ndarray, optional
        D inputs of the two sets when already computed (e.g. the real clips'
        mels shared by several sets).
    train_real_x, train_gen_x : np.ndarray, optional
        D inputs of real clips of the training pieces and of another sample of
        the set's source, for ``fresh_d_full_acc``.
    d_cache : dict, optional
        Passed to the discriminator tests (one dict for several sets compiles
        the fresh discriminator once).
    real_groups, gen_groups : array-like, optional
        The piece each clip was cut from, for the two tests' folds (overlapping
        windows of one piece must not be split between training and test
        folds, or a classifier scores by recognising the piece).
    n_resamples : int
        Bootstrap draws of the set measures' intervals.
    resample_reference : bool
        Draw the reference's pieces again too in that bootstrap: for a
        reference that is itself a draw. False for a reference that is the
        same in every evaluation (every held-out piece), which then does not
        add to what moves between evaluations.
    seed : int or np.random.Generator

    Returns
    -------
    result : dict
        ``row`` (dict of column -> float: :data:`HEADLINE_COLUMNS`, then the
        summary), ``intervals`` (column -> (low, high), NaN where there is
        none), ``mgeval`` (per feature, see :func:`mgeval_compare`),
        ``seq_test``, ``d_test`` and ``d_full_test`` (the tests' results, empty when not run),
        ``copy_run_length`` and ``notes`` (list of str).
    """
    gen, real = _check_sets(gen_seqs, real_seqs, cfg, check_d=d_test, gen_x=gen_x, real_x=real_x)
    d_epochs = check_int(d_epochs, "d_epochs", 1)
    d_splits = check_int(d_splits, "d_splits", 2)
    rng = as_rng(seed)
    notes: list[str] = []
    lp = cfg.lowest_pitch
    summary = metrics.summarize(gen, lowest_pitch=lp, reference_seqs=real)
    run_length = min(check_int(copy_run_length, "copy_run_length", 1), gen.shape[1])
    copy = _copy_rate(gen, train_seqs, run_length, notes)

    mg = mgeval_compare(gen, real, lowest_pitch=lp, seed=rng)
    # each test needs two clips (pieces, where grouped) of each set
    n_small = fewest_pieces(real, gen, real_groups=real_groups, gen_groups=gen_groups)
    groups = {"real_groups": real_groups, "gen_groups": gen_groups}
    seq_res = _feature_classifier(real, gen, lp, n_small, int(rng.integers(2**31 - 1)), groups, notes)
    d_seed = int(rng.integers(2**31 - 1))
    d_res: dict[str, float] = {}
    if not d_test:
        notes.append("fresh-discriminator test not run")
    elif n_small >= 2:
        real_x = set_d_inputs(real, cfg) if real_x is None else real_x
        gen_x = set_d_inputs(gen, cfg) if gen_x is None else gen_x
        d_res = _noted(notes, "fresh-discriminator test not run", lambda: discriminator_two_sample_test(
            real_x, gen_x, cfg, n_splits=min(d_splits, n_small), epochs=d_epochs, batch_size=D_BATCH_SIZE,
            seed=d_seed, cache=d_cache, **groups))
    else:
        notes.append(f"{n_small} clip(s) or piece(s) per class: too few for the fresh-discriminator test")

    d_full_seed = int(rng.integers(2**31 - 1))
    d_full: dict[str, float] = {}
    if d_test and train_real_x is not None and train_gen_x is not None:
        d_full = _noted(notes, "fresh_d_full_acc not measured", lambda: discriminator_train_test(
            train_real_x, train_gen_x, set_d_inputs(real, cfg) if real_x is None else real_x,
            set_d_inputs(gen, cfg) if gen_x is None else gen_x, cfg, epochs=d_epochs, batch_size=D_BATCH_SIZE,
            seed=d_full_seed, cache=d_cache))
    elif d_test:
        notes.append("no second sample of the set to train on: fresh_d_full_acc not measured")

    row = {
        "fresh_d_acc": d_res.get("accuracy", float("nan")),
        "fresh_d_full_acc": d_full.get("accuracy", float("nan")),
        "seq_clf_acc": seq_res.get("accuracy", float("nan")),
        "mgeval_kl": nanmean([v["kl_real_inter"] for v in mg.values()]),
        "mgeval_oa": nanmean([v["oa_real_inter"] for v in mg.values()]),
        "copy_rate": copy,
        **summary,
    }
    result = {
        "row": {k: float(v) for k, v in row.items()},
        "mgeval": mg,
        "seq_test": seq_res,
        "d_test": d_res,
        "d_full_test": d_full,
        "copy_run_length": run_length,
        "notes": notes,
    }
    set_iv = set_measure_intervals(gen, real, lowest_pitch=lp, real_groups=real_groups, gen_groups=gen_groups,
                                   n_resamples=n_resamples, resample_reference=resample_reference,
                                   rng=np.random.default_rng(int(rng.integers(2**31 - 1))))
    n_pieces = {"n_real_pieces": piece_codes(real_groups, len(real), "real_groups").max() + 1,
                "n_gen_pieces": piece_codes(gen_groups, len(gen), "gen_groups").max() + 1}
    return {**result, "intervals": row_intervals(result, set_iv, **n_pieces)}


def _check_sets(gen_seqs: Any, real_seqs: Any, cfg: Any, *, check_d: bool, gen_x: Any, real_x: Any) -> tuple:
    """The two sets as seqs on ``cfg``'s grid, both non-empty."""
    gen = check_seqs(gen_seqs, n_pitches=cfg.n_pitches, name="gen_seqs")
    real = check_seqs(real_seqs, n_pitches=cfg.n_pitches, name="real_seqs")
    if check_d:
        # D reads cfg.n_steps steps: a set of another length fails here, not after minutes of synthesis
        if gen_x is None:
            check_d_seqs(gen, cfg, name="gen_seqs")
        if real_x is None:
            check_d_seqs(real, cfg, name="real_seqs")
    if len(gen) == 0 or len(real) == 0:
        raise MusicRLError(f"compare_to_real needs clips in both sets, got {len(gen)} and {len(real)}")
    return gen, real


def _copy_rate(gen: np.ndarray, train_seqs: Any, run_length: int, notes: list[str]) -> float:
    if train_seqs is not None and len(train_seqs):
        return metrics.copy_rate(gen, train_seqs, run_length=run_length)
    notes.append("no training pieces: copy_rate not measured")
    return float("nan")


def _noted(notes: list[str], what: str, test: Any) -> dict[str, float]:
    """``test()``, or an empty result and a note when its inputs do not allow it."""
    try:
        return test()
    except MusicRLError as e:
        notes.append(f"{what}: {e}")
        return {}


def _feature_classifier(real: np.ndarray, gen: np.ndarray, lowest_pitch: int, n_small: int, seed: int,
                        groups: dict[str, Any], notes: list[str]) -> dict[str, float]:
    if n_small < 2:
        notes.append(f"{n_small} clip(s) or piece(s) per class: too few for the feature-classifier test")
        return {}
    return _noted(notes, "feature-classifier test not run", lambda: seq_two_sample_test(
        real, gen, lowest_pitch=lowest_pitch, n_splits=min(SEQ_SPLITS, n_small), seed=seed, **groups))


def _onsets(on: np.ndarray) -> np.ndarray:
    onset = on.copy()
    onset[:, 1:] &= ~on[:, :-1]
    return onset.sum(axis=(1, 2))


def _chord_changes(on: np.ndarray) -> np.ndarray:
    """Successive chords (rests skipped) per piece."""
    return np.maximum(on.any(axis=-1).sum(axis=1) - 1, 0)


# summarize's averages over pieces
_PIECE_MEANS = {
    "n_pitches_used": lambda on, lp: metrics.n_pitches_used(on).astype(np.float64),
    "pitch_range": lambda on, lp: metrics.pitch_range(on),
    "used_pitch_classes": lambda on, lp: metrics.used_pitch_classes(on, lowest_pitch=lp),
    "pitch_class_entropy": lambda on, lp: metrics.pitch_class_entropy(on, lowest_pitch=lp),
    "key_correlation": lambda on, lp: metrics.estimate_key(on, lowest_pitch=lp)[2],
    "distinct_chord_ratio": lambda on, lp: metrics.distinct_chord_ratio(on),
}
# summarize's pooled rates, each a ratio of sums over pieces: (the piece's rate, what it is a rate of)
_RATIOS = {
    "empty_step_rate": (lambda on, lp: metrics.empty_step_rate(on), lambda on: np.full(len(on), on.shape[1])),
    "polyphony": (lambda on, lp: metrics.polyphony(on), lambda on: on.any(axis=-1).sum(axis=1)),
    "qualified_note_rate": (lambda on, lp: metrics.qualified_note_rate(on), _onsets),
    "in_key_rate": (lambda on, lp: metrics.in_key_rate(on, lowest_pitch=lp), lambda on: on.sum(axis=(1, 2))),
    "consonant_chord_rate": (lambda on, lp: metrics.consonant_chord_rate(on, lowest_pitch=lp),
                             lambda on: on.any(axis=-1).sum(axis=1)),
    "voice_leading": (lambda on, lp: metrics.voice_leading_distance(on), _chord_changes),
    "tonal_distance": (lambda on, lp: metrics.tonal_distance(on, lowest_pitch=lp), _chord_changes),
    "repetition_rate": (lambda on, lp: metrics.repetition_rate(on), lambda on: np.full(len(on), on.shape[1] - 1)),
}


def set_measure_intervals(
    gen_seqs: np.ndarray,
    real_seqs: np.ndarray | None,
    *,
    lowest_pitch: int,
    real_groups: Any = None,
    gen_groups: Any = None,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    resample_reference: bool = True,
    rng: np.random.Generator,
    level: float = INTERVAL_LEVEL,
) -> dict[str, tuple[float, float]]:
    """Bootstrap intervals over pieces of the measures of :func:`musicrl.music.metrics.summarize`.

    The pieces of ``gen_seqs`` are drawn again with replacement
    ``n_resamples`` times (the same draws for every measure) and each measure
    recomputed as summarize defines it: averages over the drawn pieces'
    values, pooled rates as the ratio of the drawn pieces' sums, the
    pooled pitch histograms (``top3_pitch_share``, ``pitch_class_overlap``,
    ``scale_degree_overlap``) from the drawn pieces. The reference's pieces
    are drawn again too, on their own, since which pieces the reference
    holds moves the ``pitch_class_overlap`` as much as the set does; not
    with ``resample_reference=False``, for a reference that every
    evaluation shares.
    Windows cut from one piece (``real_groups``, ``gen_groups``) are drawn
    together: they overlap, so they are one draw of the source, not several.
    The counts of distinct chords of the whole set
    (``distinct_chord_ratio_set``, ``distinct_chords_common``) get no
    interval: a resample repeats pieces, so it always holds fewer distinct
    chords than the set.

    Parameters
    ----------
    gen_seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
    real_seqs : np.ndarray, optional
        The reference; without it no ``pitch_class_overlap`` nor ``scale_degree_overlap``.
    lowest_pitch : int
    real_groups, gen_groups : array-like, shape=(n_real,), (batch,), optional
        The piece of each clip (default: each clip its own).
    n_resamples : int
    resample_reference : bool
        Draw the reference's pieces again in each resample.
    rng : np.random.Generator
    level : float

    Returns
    -------
    intervals : dict of str to (float, float)
        Measure -> (low, high), NaN where a measure is undefined in every resample.
    """
    on = check_seqs(gen_seqs, name="gen_seqs") > 0
    lp = lowest_pitch
    means = {name: np.asarray(f(on, lp), dtype=np.float64) for name, f in _PIECE_MEANS.items()}
    ratios = {}
    for name, (rate, of) in _RATIOS.items():
        den = np.asarray(of(on), dtype=np.float64)
        ratios[name] = (np.nan_to_num(np.asarray(rate(on, lp), dtype=np.float64) * den), den)
    # the pooled histograms of a resample are sums of its pieces' counts
    counts = on.sum(axis=1).astype(np.float64)
    pc_counts = counts @ (((lp + np.arange(on.shape[-1]))[:, None] % 12) == np.arange(12)).astype(np.float64)
    degree_counts = metrics.scale_degree_histogram(on, lowest_pitch=lp) * counts.sum(axis=1, keepdims=True)

    def top3(c: np.ndarray) -> float:
        total = c.sum()
        return float(np.sort(c)[-3:].sum() / total) if total > 0 else np.nan

    pooled = {"top3_pitch_share": lambda idx, ref: top3(counts[idx].sum(axis=0))}
    # the reference's pitch-class and scale-degree counts per piece, drawn by piece
    ref_pieces = np.zeros((1, 12))
    if real_seqs is not None:
        n_notes = (check_seqs(real_seqs, name="real_seqs") > 0).sum(axis=(1, 2))[:, None]
        ref_clips = metrics.pitch_class_histogram(real_seqs, lowest_pitch=lp) * n_notes
        # each clip is rotated to its own tonic, as scale_degree_overlap rotates each reference seq
        ref_degree_clips = metrics.scale_degree_histogram(real_seqs, lowest_pitch=lp) * n_notes
        codes = piece_codes(real_groups, len(ref_clips), "real_groups")
        ref_pieces = np.zeros((codes.max() + 1, 12))
        ref_degrees = np.zeros((codes.max() + 1, 12))
        np.add.at(ref_pieces, codes, np.nan_to_num(ref_clips))
        np.add.at(ref_degrees, codes, ref_degree_clips)
        pooled["pitch_class_overlap"] = lambda idx, ref: metrics.histogram_overlap(
            pc_counts[idx].sum(axis=0), ref_pieces[ref].sum(axis=0))
        pooled["scale_degree_overlap"] = lambda idx, ref: metrics.histogram_overlap(
            degree_counts[idx].sum(axis=0), ref_degrees[ref].sum(axis=0))

    gen_codes = piece_codes(gen_groups, len(on), "gen_groups")
    pieces = [np.flatnonzero(gen_codes == g) for g in range(gen_codes.max() + 1)] if len(on) else []

    def measures(drawn: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        drawn_pieces, ref = drawn
        idx = drawn_pieces if gen_groups is None else np.concatenate([pieces[g] for g in drawn_pieces])
        sums = [(num[idx].sum(), den[idx].sum()) for num, den in ratios.values()]
        return np.array(
            [nanmean(v[idx]) for v in means.values()]
            + [num / den if den > 0 else np.nan for num, den in sums]
            + [f(idx, ref) for f in pooled.values()],
            dtype=np.float64,
        )

    names = list(means) + list(ratios) + list(pooled)
    every_ref = np.arange(len(ref_pieces))
    if resample_reference:
        low, high = bootstrap_interval((np.arange(len(pieces)), every_ref), measures, n_resamples=n_resamples,
                                       rng=rng, level=level)
    else:
        low, high = bootstrap_interval(np.arange(len(pieces)), lambda drawn: measures((drawn, every_ref)),
                                       n_resamples=n_resamples, rng=rng, level=level)
    return {name: (float(lo), float(hi)) for name, lo, hi in zip(names, np.atleast_1d(low), np.atleast_1d(high))}


def _long_range_per_piece(on: np.ndarray, lowest_pitch: int) -> np.ndarray:
    """Each piece's long-range measures in the order of :data:`LONG_RANGE`, shape (batch, 5), NaN where undefined."""
    by_quarter = metrics.in_key_by_position(on, lowest_pitch=lowest_pitch, n_parts=4)
    return np.stack([
        metrics.key_consistency(on, lowest_pitch=lowest_pitch),
        metrics.ends_on_tonic(on, lowest_pitch=lowest_pitch),
        metrics.self_similarity(on),
        by_quarter[:, 0],
        by_quarter[:, -1],
    ], axis=1).astype(np.float64)


def long_range_measures(
    seqs: np.ndarray,
    *,
    lowest_pitch: int,
    groups: Any = None,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    rng: np.random.Generator,
    level: float = INTERVAL_LEVEL,
) -> dict[str, tuple[float, float, float]]:
    """What only a whole piece shows, with a bootstrap interval over pieces: each measure of
    :data:`LONG_RANGE` as the mean over the set's clips of that clip's value.

    * ``key_consistency``: share of pieces whose two halves get the same key
      (:func:`musicrl.music.metrics.key_consistency`);
    * ``ends_on_tonic``: share whose last chord is their tonic chord
      (:func:`musicrl.music.metrics.ends_on_tonic`);
    * ``self_similarity``: mean similarity of a piece's 4-chord segments
      (:func:`musicrl.music.metrics.self_similarity`), to be read against real
      clips of the same length: below them is music without recurring material,
      above them loops;
    * ``in_key_first_quarter``, ``in_key_last_quarter``: in-key share of the
      first and last quarter of each piece against the key of the whole piece
      (:func:`musicrl.music.metrics.in_key_by_position`), so that drift over
      the piece shows as their difference.

    Every clip weighs the same (a clip where a measure is undefined, e.g. a
    half without notes, is left out of that measure); clips cut from one piece
    (``groups``) are drawn together in the bootstrap, so a piece's weight is
    its number of clips, as in the other measures of a set of windows.

    Parameters
    ----------
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
        At least 8 steps (two 4-chord segments).
    lowest_pitch : int
        MIDI pitch of column 0.
    groups : array-like, shape=(batch,), optional
        The piece of each clip (default: each clip its own).
    n_resamples : int
        Bootstrap resamples of the pieces.
    rng : np.random.Generator
        Randomness of the resamples.
    level : float
        Coverage of the interval, in (0, 1).

    Returns
    -------
    measures : dict of str to (float, float, float)
        Measure -> (value, low, high), shares and similarities in [0, 1]; NaN where undefined on every clip.
    """
    on = check_seqs(seqs, name="seqs") > 0
    if on.shape[1] < 8:
        raise MusicRLError(f"long_range_measures needs pieces of at least 8 steps, got {on.shape[1]}")
    values = _long_range_per_piece(on, lowest_pitch)
    codes = piece_codes(groups, len(on), "groups")
    pieces = [np.flatnonzero(codes == g) for g in range(codes.max() + 1)] if len(on) else []

    def means(drawn: np.ndarray) -> np.ndarray:
        rows = values[np.concatenate([pieces[g] for g in drawn])] if len(drawn) else values[:0]
        with np.errstate(all="ignore"):
            return np.array([nanmean(rows[:, j]) for j in range(values.shape[1])])

    low, high = bootstrap_interval(np.arange(len(pieces)), means, n_resamples=n_resamples, rng=rng, level=level)
    point = means(np.arange(len(pieces)))
    return {name: (float(v), float(lo), float(hi))
            for name, v, lo, hi in zip(LONG_RANGE, point, np.broadcast_to(low, point.shape),
                                       np.broadcast_to(high, point.shape))}


def _scored_units(per_class: float, n_real_pieces: int, n_gen_pieces: int) -> float:
    """Independent clips a two-sample accuracy rests on: each side counts at most its pieces, and the
    two sides' binomial variances add (two sides of ``m`` free clips each give the usual ``2 * m``)."""
    sides = [min(per_class, n_real_pieces), min(per_class, n_gen_pieces)]
    return 4 / sum(1 / k for k in sides) if min(sides) > 0 else 0.0


def row_intervals(result: dict[str, Any], set_intervals: dict[str, tuple[float, float]], *, n_real_pieces: int,
                  n_gen_pieces: int) -> dict:
    """Every column of a :func:`compare_to_real` row with its interval: the bootstrap's for the set
    measures, (nan, nan) for MGEval's (a KDE comparison per resample would cost minutes), and Wilson's
    for the copy rate, over the set's pieces, and for the accuracies, over the clips each test scored
    counted as :func:`_scored_units` does: a real side of 20 pieces cut into 200 overlapping windows
    is 20 draws, not 200, and measured over several evaluations its accuracies vary as that says."""
    row = result["row"]
    scored = {
        "seq_clf_acc": result["seq_test"].get("n_per_class", 0.0),
        "fresh_d_acc": result["d_test"].get("n_per_class", 0.0),
        "fresh_d_full_acc": result["d_full_test"].get("n_test_per_class", 0.0),
    }
    units = {c: _scored_units(k, n_real_pieces, n_gen_pieces) for c, k in scored.items()}
    units["copy_rate"] = float(n_gen_pieces)
    out = {}
    for column, value in row.items():
        if column in units:
            n = int(round(units[column]))
            # a mean over folds of unequal size is not exactly k / n: the nearest count in range
            k = min(max(value * n, 0.0), n) if np.isfinite(value) else np.nan
            out[column] = wilson_interval(k, n) if n and np.isfinite(k) else (np.nan, np.nan)
        else:
            out[column] = set_intervals.get(column, (np.nan, np.nan))
    return {c: (float(lo), float(hi)) for c, (lo, hi) in out.items()}
