"""Comparing a generated set of seqs with a real one: pure functions.

Two families of comparison:

* **MGEval** (Yang & Lerch 2018, "On the evaluation of generative models in
  music"): for each per-piece feature, the distances between the pieces of
  one set (*intra-set*) and between the pieces of two sets (*inter-set*)
  form distributions; their kernel density estimates are compared by the
  Kullback-Leibler divergence and the overlapping area. When the generated
  set is like the real one, the inter-set distances look like the real set's
  intra-set distances: KL near 0, overlap near 1.
* **Two-sample classifier tests** (Lopez-Paz & Oquab 2017): a fresh classifier
  learns to tell held-out real clips from generated ones; its
  cross-validated accuracy is 0.5 when the sets cannot be told apart and
  1.0 when they always can. The classifier is a scikit-learn model on
  feature vectors of the seqs (:func:`seq_two_sample_test`), or a freshly
  built musicrl discriminator on its own inputs (mels, or seqs for the
  'seq' architecture: :func:`discriminator_two_sample_test`), never the D
  that trained the agent.

The per-piece measures come from :mod:`musicrl.music.metrics`.

**Evaluating a run** (:func:`evaluate_run`, ``python -m musicrl evaluate``)
puts four sets through all of the above against the same real clips: real
held-out music, random progressions, the policy after pretraining alone,
and the trained agent (:func:`load_eval_sets`, :func:`compare_to_real`). The
table (one row per set), the report and the plots go into the run folder;
:func:`comparison_table` sets several runs' tables side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
from scipy import stats

from ..music import metrics
from ..errors import MusicRLError
from ..seeding import as_rng
from ..music.vectorize import check_seqs

# The fresh discriminators learn with one recipe whatever the run's own D learned with (these are the
# online D's defaults), so a run that changes D's optimizer is measured with the same instrument.
FRESH_D_LEARNING_RATE = 5e-4
FRESH_D_BETA_1 = 0.5

__all__ = [
    "COLUMN_DOCS",
    "COMPARISON_FILE",
    "EVALUATION_FILE",
    "EVAL_SETS",
    "FRESH_D_BETA_1",
    "FRESH_D_LEARNING_RATE",
    "HEADLINE_COLUMNS",
    "PIECE_FEATURES",
    "PLOT_FILES",
    "REPORT_FILE",
    "SET_LABELS",
    "EvalSets",
    "KDEComparison",
    "classifier_two_sample_test",
    "compare_to_real",
    "comparison_report",
    "critic_comparison",
    "comparison_table",
    "discriminator_train_test",
    "discriminator_two_sample_test",
    "evaluate_run",
    "format_table",
    "format_value",
    "inter_set_distances",
    "intra_set_distances",
    "kde_compare",
    "load_eval_sets",
    "load_evaluation",
    "mgeval_compare",
    "piece_features",
    "rand_progression_seqs",
    "seq_feature_vectors",
    "seq_two_sample_test",
    "write_comparison",
    "write_evaluation",
]

_N_QUALITY_BINS = len(metrics.CHORD_QUALITIES) + 2  # the qualities, 'other chord', 'rest'


def _chord_quality_histogram(seqs: np.ndarray, *, lowest_pitch: int) -> np.ndarray:
    """Share of steps of each quality, then other chords, then rests: (batch, 11)."""
    on = check_seqs(seqs, name="seqs") > 0
    codes = metrics.chord_qualities(on, lowest_pitch=lowest_pitch)
    rest = ~on.any(axis=-1)
    bins = np.where(rest, _N_QUALITY_BINS - 1, np.where(codes < 0, _N_QUALITY_BINS - 2, codes))
    counts = np.stack([(bins == b).sum(axis=1) for b in range(_N_QUALITY_BINS)], axis=-1)
    return counts / codes.shape[1]


#: Per-piece features compared by :func:`mgeval_compare`, each a function
#: ``f(seqs, lowest_pitch) -> (batch,)`` or ``(batch, d)``.
PIECE_FEATURES: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "n_pitches_used": lambda s, lp: metrics.n_pitches_used(s).astype(np.float64),
    "pitch_range": lambda s, lp: metrics.pitch_range(s),
    "used_pitch_classes": lambda s, lp: metrics.used_pitch_classes(s, lowest_pitch=lp),
    "polyphony": lambda s, lp: metrics.polyphony(s),
    "empty_step_rate": lambda s, lp: metrics.empty_step_rate(s),
    "qualified_note_rate": lambda s, lp: metrics.qualified_note_rate(s),
    "in_key_rate": lambda s, lp: metrics.in_key_rate(s, lowest_pitch=lp),
    "key_correlation": lambda s, lp: metrics.estimate_key(s, lowest_pitch=lp)[2],
    "consonant_chord_rate": lambda s, lp: metrics.consonant_chord_rate(s, lowest_pitch=lp),
    "voice_leading": lambda s, lp: metrics.voice_leading_distance(s),
    "tonal_distance": lambda s, lp: metrics.tonal_distance(s, lowest_pitch=lp),
    "repetition_rate": lambda s, lp: metrics.repetition_rate(s),
    "distinct_chord_ratio": lambda s, lp: metrics.distinct_chord_ratio(s),
    "top3_pitch_share": lambda s, lp: metrics.top_pitch_share(s, k=3),
    "pitch_class_histogram": lambda s, lp: metrics.pitch_class_histogram(s, lowest_pitch=lp),
    "chord_quality_histogram": lambda s, lp: _chord_quality_histogram(s, lowest_pitch=lp),
}


def piece_features(
    seqs: np.ndarray, *, lowest_pitch: int = 36, names: list[str] | None = None
) -> dict[str, np.ndarray]:
    """The per-piece features of :data:`PIECE_FEATURES` for a batch of seqs.

    Parameters
    ----------
    seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
    lowest_pitch : int
        MIDI pitch of column 0.
    names : list of str, optional
        Features to compute (default: all).

    Returns
    -------
    features : dict of str to np.ndarray
        Each ``(batch,)`` (scalar features, NaN where undefined for a piece)
        or ``(batch, d)`` (histograms).
    """
    names = list(PIECE_FEATURES) if names is None else list(names)
    unknown = [n for n in names if n not in PIECE_FEATURES]
    if unknown:
        raise MusicRLError(f"unknown features {unknown}; known: {', '.join(PIECE_FEATURES)}")
    on = check_seqs(seqs, name="seqs") > 0
    return {n: np.asarray(PIECE_FEATURES[n](on, lowest_pitch), dtype=np.float64) for n in names}


# --------------------------------------------------------------------------
# MGEval


def _feature_rows(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise MusicRLError(f"{name} must have shape (n,) or (n, d), got shape {np.shape(x)}")
    if np.isinf(arr).any():
        raise MusicRLError(f"{name} contains inf")
    # a piece whose feature is undefined (NaN) has no distance to anything
    return arr[~np.isnan(arr).any(axis=1)]


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise MusicRLError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_max_pairs(max_pairs: int | None) -> int | None:
    return None if max_pairs is None else _check_int(max_pairs, "max_pairs", 1)


def intra_set_distances(
    features: np.ndarray, *, max_pairs: int | None = None, seed: Any = None
) -> np.ndarray:
    """Distances between the pieces of one set (MGEval's intra-set distances).

    Parameters
    ----------
    features : np.ndarray, shape=(n,) or (n, d)
        One feature per piece; rows with NaN are left out.
    max_pairs : int, optional
        When the set has more than ``max_pairs`` pairs, that many pairs
        ``i != j`` are drawn uniformly (with replacement) instead.
    seed : int or np.random.Generator, optional
        Randomness of the draw.

    Returns
    -------
    distances : np.ndarray, shape=(n_pairs,), dtype=float64
        Euclidean distances (absolute differences for scalar features) of the
        pairs ``i < j``; empty for fewer than two pieces.
    """
    x = _feature_rows(features, "features")
    n = x.shape[0]
    n_pairs = n * (n - 1) // 2
    max_pairs = _check_max_pairs(max_pairs)
    if max_pairs is not None and n_pairs > max_pairs:
        rng = as_rng(seed)
        i = rng.integers(0, n, size=max_pairs)
        j = (i + rng.integers(1, n, size=max_pairs)) % n
    else:
        i, j = np.triu_indices(n, k=1)
    return np.linalg.norm(x[i] - x[j], axis=1)


def inter_set_distances(
    features_a: np.ndarray,
    features_b: np.ndarray,
    *,
    max_pairs: int | None = None,
    seed: Any = None,
) -> np.ndarray:
    """Distances between every piece of set ``a`` and every piece of set ``b`` (MGEval's inter-set).

    Parameters
    ----------
    features_a, features_b : np.ndarray, shape=(n_a,) or (n_a, d), and (n_b,) or (n_b, d)
        One feature per piece; rows with NaN are left out.
    max_pairs : int, optional
        When there are more than ``max_pairs`` pairs, that many are drawn uniformly.
    seed : int or np.random.Generator, optional

    Returns
    -------
    distances : np.ndarray, shape=(n_pairs,), dtype=float64
    """
    a = _feature_rows(features_a, "features_a")
    b = _feature_rows(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise MusicRLError(f"features_a and features_b differ in size: {a.shape[1]} and {b.shape[1]}")
    n_pairs = a.shape[0] * b.shape[0]
    max_pairs = _check_max_pairs(max_pairs)
    if max_pairs is not None and n_pairs > max_pairs:
        rng = as_rng(seed)
        i = rng.integers(0, a.shape[0], size=max_pairs)
        j = rng.integers(0, b.shape[0], size=max_pairs)
    else:
        i, j = np.divmod(np.arange(n_pairs), b.shape[0])
    return np.linalg.norm(a[i] - b[j], axis=1)


class KDEComparison(NamedTuple):
    """Result of :func:`kde_compare`."""

    kl: float
    """KL divergence ``KL(a || b)`` of the two densities, in nats (>= 0)."""
    overlap: float
    """Overlapping area of the two densities, in [0, 1]."""


def _kde_and_bandwidth(sample: np.ndarray) -> tuple[Any, float] | None:
    """scipy's Gaussian KDE (Scott's rule) and its kernel std, or None for a degenerate sample."""
    if sample.size < 2 or np.ptp(sample) == 0:
        return None
    try:
        kde = stats.gaussian_kde(sample)
    except np.linalg.LinAlgError:
        return None
    return kde, float(np.sqrt(kde.covariance[0, 0]))


# Above this many kernel evaluations a KDE is evaluated by binning (see _binned_kde).
_EXACT_KDE_WORK = 2_000_000
_MAX_GRID = 1 << 16


def _binned_kde(sample: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    """Gaussian KDE on a uniform grid by linear binning and convolution.

    The usual fast evaluation of a KDE (Silverman 1982, as in statsmodels'
    FFT KDE): each point's unit mass is shared between its two neighbouring
    grid points, and the binned masses are convolved with the Gaussian
    kernel. Its error is of order ``(grid step / bandwidth) ** 2``, negligible
    for the grids of :func:`kde_compare`, whose step is kept below a quarter
    of the bandwidth.
    """
    step = grid[1] - grid[0]
    pos = (sample - grid[0]) / step
    left = np.clip(np.floor(pos).astype(np.int64), 0, grid.size - 2)
    frac = np.clip(pos - left, 0.0, 1.0)
    mass = np.bincount(left, weights=1.0 - frac, minlength=grid.size)
    mass += np.bincount(left + 1, weights=frac, minlength=grid.size)
    half = int(np.ceil(5 * bandwidth / step))
    offsets = np.arange(-half, half + 1) * step
    kernel = stats.norm.pdf(offsets, scale=bandwidth)
    from scipy.signal import fftconvolve

    dens = fftconvolve(mass, kernel, mode="full")[half : half + grid.size]
    return np.maximum(dens, 0.0) / sample.size


def kde_compare(sample_a: np.ndarray, sample_b: np.ndarray, *, n_grid: int = 1024) -> KDEComparison:
    """KL divergence and overlapping area of the Gaussian KDEs of two samples (MGEval).

    Each sample's density is ``scipy.stats.gaussian_kde`` (Scott's
    bandwidth). Both densities are evaluated on one shared grid of at least
    ``n_grid`` points (more when needed for four points per kernel width, up
    to 65536) covering both samples plus six kernel widths on each side
    (MGEval's code evaluates the two densities of its KL on two different
    grids; one grid makes the KL a true divergence). Large samples (over
    2e6 kernel evaluations) are evaluated by linear binning and convolution
    with the same kernel instead of point by point. The overlap
    is the integral of ``min(p, q)``; the KL is that of the two densities
    normalised on the grid, each floored at 1e-12 of its peak so that it
    stays finite.

    Degenerate samples do not crash: NaN values are dropped; a sample with
    fewer than two distinct values (e.g. all distances 0, a collapsed set)
    gets a single Gaussian of the other sample's kernel width at each of its
    points, or, when both are degenerate, of 5 % of the distance between
    them (1 if they are equal). Two equal constant samples give KL 0 and
    overlap 1; two distinct constants give overlap ~0. An empty sample gives
    NaN for both.

    Parameters
    ----------
    sample_a, sample_b : np.ndarray, shape=(n_a,), (n_b,)
        One-dimensional samples (e.g. the distances of
        :func:`intra_set_distances`).
    n_grid : int
        Grid points of the numerical integrals.

    Returns
    -------
    comparison : KDEComparison
        ``(kl, overlap)`` with ``kl = KL(a || b)``.
    """
    a = np.asarray(sample_a, dtype=np.float64)
    b = np.asarray(sample_b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1:
        raise MusicRLError(f"samples must be 1-D, got shapes {a.shape} and {b.shape}")
    if np.isinf(a).any() or np.isinf(b).any():
        raise MusicRLError("samples contain inf")
    _check_int(n_grid, "n_grid", 16)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if a.size == 0 or b.size == 0:
        return KDEComparison(float("nan"), float("nan"))
    ka, kb = _kde_and_bandwidth(a), _kde_and_bandwidth(b)
    widths = [k[1] for k in (ka, kb) if k is not None]
    if widths:
        fallback = min(widths)
    else:
        gap = abs(float(a[0]) - float(b[0]))
        fallback = 0.05 * gap if gap > 0 else 1.0
    width = max(widths + [fallback])
    lo = min(a.min(), b.min()) - 6 * width
    hi = max(a.max(), b.max()) + 6 * width
    # the integrals need several grid points per kernel width, even when outliers stretch the range
    n_points = int(min(max(n_grid, np.ceil(4 * (hi - lo) / min(widths + [fallback]))), _MAX_GRID))
    grid = np.linspace(lo, hi, n_points)

    def density(sample: np.ndarray, kde: tuple[Any, float] | None) -> np.ndarray:
        if kde is not None:
            if sample.size * grid.size <= _EXACT_KDE_WORK:
                return kde[0](grid)
            return _binned_kde(sample, grid, kde[1])
        values, counts = np.unique(sample, return_counts=True)
        return (counts[:, None] * stats.norm.pdf(grid[None, :], loc=values[:, None], scale=fallback)).sum(
            axis=0
        ) / sample.size

    p, q = density(a, ka), density(b, kb)
    overlap = float(np.clip(np.trapezoid(np.minimum(p, q), grid), 0.0, 1.0))
    p = np.maximum(p, 1e-12 * p.max())
    q = np.maximum(q, 1e-12 * q.max())
    kl = float(max(stats.entropy(p, q), 0.0))
    return KDEComparison(kl, overlap)


def mgeval_compare(
    gen_seqs: np.ndarray,
    real_seqs: np.ndarray,
    *,
    lowest_pitch: int = 36,
    features: list[str] | None = None,
    max_pairs: int = 20000,
    n_grid: int = 1024,
    seed: Any = 0,
) -> dict[str, dict[str, float]]:
    """MGEval's comparison of a generated set with a real set, feature by feature.

    For each feature of :data:`PIECE_FEATURES`: the intra-set distances of
    each set and the inter-set distances between them
    (:func:`intra_set_distances`, :func:`inter_set_distances`), and the KL
    divergence and overlapping area (:func:`kde_compare`) of

    * the real set's intra-set distances against the inter-set distances
      (``kl_real_inter``, ``oa_real_inter``: how far the generated pieces are
      from real ones, measured in units of how far real pieces are from each
      other), and
    * the generated set's intra-set distances against the inter-set distances
      (``kl_gen_inter``, ``oa_gen_inter``).

    Parameters
    ----------
    gen_seqs, real_seqs : np.ndarray, shape=(batch, n_steps, n_pitches)
        The two sets (they may differ in size and length).
    lowest_pitch : int
        MIDI pitch of column 0.
    features : list of str, optional
        Names from :data:`PIECE_FEATURES` (default: all).
    max_pairs : int
        Distances drawn per distribution at most.
    n_grid : int
        Grid of the KDE integrals.
    seed : int or np.random.Generator
        Randomness of the pair draws.

    Returns
    -------
    result : dict of str to dict of str to float
        Per feature: ``kl_real_inter``, ``oa_real_inter``, ``kl_gen_inter``,
        ``oa_gen_inter``, the mean distances ``intra_gen``, ``intra_real``,
        ``inter``, and for scalar features MGEval's absolute measures
        ``gen_mean``, ``gen_std``, ``real_mean``, ``real_std`` (over pieces
        where the feature is defined).
    """
    rng = as_rng(seed)
    _check_int(max_pairs, "max_pairs", 1)
    gen = piece_features(gen_seqs, lowest_pitch=lowest_pitch, names=features)
    real = piece_features(real_seqs, lowest_pitch=lowest_pitch, names=features)
    out: dict[str, dict[str, float]] = {}
    for name in gen:
        d_gen = intra_set_distances(gen[name], max_pairs=max_pairs, seed=rng)
        d_real = intra_set_distances(real[name], max_pairs=max_pairs, seed=rng)
        d_inter = inter_set_distances(gen[name], real[name], max_pairs=max_pairs, seed=rng)
        real_inter = kde_compare(d_real, d_inter, n_grid=n_grid)
        gen_inter = kde_compare(d_gen, d_inter, n_grid=n_grid)
        row = {
            "kl_real_inter": real_inter.kl,
            "oa_real_inter": real_inter.overlap,
            "kl_gen_inter": gen_inter.kl,
            "oa_gen_inter": gen_inter.overlap,
            "intra_gen": _nanmean(d_gen),
            "intra_real": _nanmean(d_real),
            "inter": _nanmean(d_inter),
        }
        if gen[name].ndim == 1:
            row.update(
                gen_mean=_nanmean(gen[name]), gen_std=_nanstd(gen[name]),
                real_mean=_nanmean(real[name]), real_std=_nanstd(real[name]),
            )
        out[name] = row
    return out


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def _nanstd(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.std()) if x.size else float("nan")


# --------------------------------------------------------------------------
# two-sample classifier tests


def seq_feature_vectors(seqs: np.ndarray, *, lowest_pitch: int = 36) -> np.ndarray:
    """A feature vector per piece for a two-sample classifier.

    The concatenation of the share of notes on each pitch column
    (``n_pitches``: register), the pitch-class histogram (12), the chord
    quality histogram (11: the :data:`~musicrl.music.metrics.CHORD_QUALITIES`,
    other chords, rests) and every scalar feature of :data:`PIECE_FEATURES`.

    Returns
    -------
    x : np.ndarray, shape=(batch, n_pitches + 23 + n_scalar), dtype=float64
        NaN where a scalar feature is undefined for a piece.
    """
    on = check_seqs(seqs, name="seqs") > 0
    counts = on.sum(axis=1).astype(np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    pitch_hist = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    feats = piece_features(on, lowest_pitch=lowest_pitch)
    scalars = [v[:, None] for v in feats.values() if v.ndim == 1]
    vectors = [feats["pitch_class_histogram"], feats["chord_quality_histogram"]]
    return np.concatenate([pitch_hist, *vectors, *scalars], axis=1)


def _group_codes(groups: Any, n: int, name: str) -> np.ndarray:
    """Group labels of a set as codes 0..k-1 (each clip its own group when None)."""
    if groups is None:
        return np.arange(n)
    arr = np.asarray(groups)
    if arr.shape != (n,):
        raise MusicRLError(f"{name} must have one label per clip, shape ({n},), got shape {arr.shape}")
    return np.unique(arr, return_inverse=True)[1].reshape(n)


def _balanced_split_data(
    real_x: np.ndarray, gen_x: np.ndarray, n_splits: int, rng, real_groups: Any = None, gen_groups: Any = None
) -> tuple:
    """Equal-size real and generated samples, with labels (1 real, 0 generated) and group codes.

    The codes are None when neither set has groups (plain stratified folds).
    """
    _check_int(n_splits, "n_splits", 2)
    grouped = real_groups is not None or gen_groups is not None
    g_real = _group_codes(real_groups, len(real_x), "real_groups")
    g_gen = _group_codes(gen_groups, len(gen_x), "gen_groups")
    n = min(len(real_x), len(gen_x))
    if n < n_splits:
        raise MusicRLError(
            f"a {n_splits}-fold test needs at least {n_splits} clips of each set, got "
            f"{len(real_x)} real and {len(gen_x)} generated"
        )
    # the larger set is subsampled so that chance accuracy is exactly 0.5
    i_real = np.sort(rng.choice(len(real_x), n, replace=False))
    i_gen = np.sort(rng.choice(len(gen_x), n, replace=False))
    x = np.concatenate([real_x[i_real], gen_x[i_gen]])
    y = np.concatenate([np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
    if not grouped:
        return x, y, n, None
    groups = np.concatenate([g_real[i_real], g_gen[i_gen] + len(real_x)])
    for label, side in (("real", groups[:n]), ("generated", groups[n:])):
        if np.unique(side).size < n_splits:
            raise MusicRLError(
                f"a {n_splits}-fold test by groups needs at least {n_splits} groups of {label} clips, "
                f"got {np.unique(side).size}"
            )
    return x, y, n, groups


def _folds(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None, n_splits: int, random_state: int) -> list:
    """Shuffled stratified folds; with groups, no group is split between training and test folds."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if groups is None:
        return list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state).split(x, y))
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    return list(folds.split(x, y, groups))


def classifier_two_sample_test(
    real_x: np.ndarray,
    gen_x: np.ndarray,
    *,
    model: str = "logistic",
    n_splits: int = 5,
    seed: Any = 0,
    real_groups: Any = None,
    gen_groups: Any = None,
) -> dict[str, float]:
    """Cross-validated accuracy of a fresh scikit-learn classifier telling real from generated.

    The larger set is subsampled to the size of the smaller one, so chance
    is 0.5. Features are mean-imputed (NaN) and standardised inside each
    training fold (a pipeline, so no statistics leak from the test fold).
    With groups (e.g. the piece each real window was cut from), the clips of
    a group are never split between training and test folds, so the
    classifier cannot score by recognising a piece it trained on.

    Parameters
    ----------
    real_x, gen_x : np.ndarray, shape=(n_real, d), (n_gen, d)
        Feature vectors of held-out real clips and of generated clips.
    model : {'logistic', 'boosting'}
        L2 logistic regression, or histogram gradient boosting.
    n_splits : int
        Folds of the stratified, shuffled cross-validation.
    seed : int or np.random.Generator
        Subsampling, fold assignment and the model's randomness.
    real_groups, gen_groups : array-like, shape=(n_real,), (n_gen,), optional
        A group label per clip (default: each clip its own group); folds are
        then ``StratifiedGroupKFold``, which needs ``n_splits`` groups per set.

    Returns
    -------
    result : dict of str to float
        ``accuracy`` (mean held-out accuracy over folds: 0.5 means the sets
        are indistinguishable to this classifier, 1.0 always told apart),
        ``accuracy_std`` (over folds), ``n_per_class``, ``n_splits``.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    real = np.asarray(real_x, dtype=np.float64)
    gen = np.asarray(gen_x, dtype=np.float64)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise MusicRLError(
            f"real_x and gen_x must be (n, d) arrays with the same d, got shapes {real.shape} and {gen.shape}"
        )
    if np.isinf(real).any() or np.isinf(gen).any():
        raise MusicRLError("feature vectors contain inf")
    rng = as_rng(seed)
    x, y, n, groups = _balanced_split_data(real, gen, n_splits, rng, real_groups, gen_groups)
    random_state = int(rng.integers(2**31 - 1))
    if model == "logistic":
        clf = LogisticRegression(max_iter=2000)
    elif model == "boosting":
        clf = HistGradientBoostingClassifier(random_state=random_state)
    else:
        raise MusicRLError(f"model must be 'logistic' or 'boosting', got {model!r}")
    # columns that are NaN everywhere would be dropped by the imputer; 0 keeps the shape
    x = np.where(np.isnan(x).all(axis=0), 0.0, x)
    pipe = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(), clf)
    scores = cross_val_score(pipe, x, y, cv=_folds(x, y, groups, n_splits, random_state), scoring="accuracy")
    return {
        "accuracy": float(scores.mean()),
        "accuracy_std": float(scores.std()),
        "n_per_class": float(n),
        "n_splits": float(n_splits),
    }


def seq_two_sample_test(
    real_seqs: np.ndarray,
    gen_seqs: np.ndarray,
    *,
    lowest_pitch: int = 36,
    model: str = "logistic",
    n_splits: int = 5,
    seed: Any = 0,
    real_groups: Any = None,
    gen_groups: Any = None,
) -> dict[str, float]:
    """Two-sample classifier test on the :func:`seq_feature_vectors` of two sets of seqs.

    ``real_seqs`` should be clips the agent's discriminator never trained on
    (a held-out split). See :func:`classifier_two_sample_test` for the
    groups and the result.
    """
    real = seq_feature_vectors(real_seqs, lowest_pitch=lowest_pitch)
    gen = seq_feature_vectors(gen_seqs, lowest_pitch=lowest_pitch)
    if real.shape[1] != gen.shape[1]:
        raise MusicRLError(
            f"real_seqs and gen_seqs must have the same number of pitch columns, got feature "
            f"sizes {real.shape[1]} and {gen.shape[1]}"
        )
    return classifier_two_sample_test(
        real, gen, model=model, n_splits=n_splits, seed=seed, real_groups=real_groups, gen_groups=gen_groups
    )


def discriminator_two_sample_test(
    real_x: np.ndarray,
    gen_x: np.ndarray,
    cfg: Any,
    *,
    n_splits: int = 3,
    epochs: int = 5,
    batch_size: int = 32,
    seed: int = 0,
    real_groups: Any = None,
    gen_groups: Any = None,
    cache: dict | None = None,
    learning_rate: float = FRESH_D_LEARNING_RATE,
    beta_1: float = FRESH_D_BETA_1,
) -> dict[str, float]:
    """Two-sample test with a freshly built musicrl discriminator as the classifier.

    A new ``musicrl.learning.discriminator.build_discriminator(cfg)`` is built, and for
    each fold trained from its untrained weights (Adam with ``learning_rate`` and
    ``beta_1``, not the run's D settings, plain sigmoid cross-entropy of every step's logit
    against the clip's label: no label smoothing, replay or penalty) on the
    other folds, and scored by the sign of its last-step logit on the
    held-out fold. It never sees the D that trained the agent.

    Parameters
    ----------
    real_x, gen_x : np.ndarray, shape=(n, *d_input_shape(cfg))
        D inputs (mels, or seqs for ``d_arch='seq'``) of held-out real clips
        and of generated clips.
    cfg : Config
    n_splits : int
        Folds.
    epochs, batch_size : int
        Training of each fold's model.
    seed : int
        Subsampling, folds, and Keras' global seed (``keras.utils.set_random_seed``
        is called, which reseeds Python, NumPy and TensorFlow's global state).
    real_groups, gen_groups : array-like, optional
        A group label per clip (e.g. its piece): no group is split between
        training and test folds (see :func:`classifier_two_sample_test`).
    cache : dict, optional
        An empty dict the caller keeps and passes to several tests with the
        same ``cfg`` (e.g. one per generated set): the classifier is compiled
        once and only its starting weights are rebuilt for each test, which
        saves TensorFlow's graph tracing. The results are the same as
        without it.
    learning_rate, beta_1 : float
        Adam's settings for the classifier (default: the same for every run,
        ``FRESH_D_LEARNING_RATE`` and ``FRESH_D_BETA_1``).

    Returns
    -------
    result : dict of str to float
        As :func:`classifier_two_sample_test`.
    """
    import keras

    from ..learning.discriminator import check_d_inputs

    real = check_d_inputs(real_x, cfg, name="real_x")
    gen = check_d_inputs(gen_x, cfg, name="gen_x")
    _check_int(epochs, "epochs", 1)
    _check_int(batch_size, "batch_size", 1)
    rng = as_rng(seed)
    x, y, n, groups = _balanced_split_data(real, gen, n_splits, rng, real_groups, gen_groups)
    random_state = int(rng.integers(2**31 - 1))
    folds = _folds(x, y, groups, n_splits, random_state)
    scores = []
    model, restart = _fresh_discriminator(cfg, random_state, cache, learning_rate, beta_1)
    for k, (train, test) in enumerate(folds):
        keras.utils.set_random_seed(random_state + k)
        restart()
        logits = _fit_and_score(model, x[train], y[train], x[test], epochs=epochs, batch_size=batch_size)
        scores.append(float(((logits > 0).astype(np.int64) == y[test]).mean()))
    scores_arr = np.asarray(scores)
    return {
        "accuracy": float(scores_arr.mean()),
        "accuracy_std": float(scores_arr.std()),
        "n_per_class": float(n),
        "n_splits": float(n_splits),
    }


def _fresh_discriminator(
    cfg: Any, random_state: int, cache: dict | None, learning_rate: float, beta_1: float
) -> tuple[Any, Callable[[], None]]:
    """A new discriminator of ``cfg``, compiled, and a function that puts back its untrained weights
    and optimizer state (one compiled model serves every fold and, with ``cache``, every test)."""
    import keras

    from ..learning.discriminator import build_discriminator

    numbers = (int, float, np.floating)
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers) or not learning_rate > 0:
        raise MusicRLError(f"learning_rate must be > 0, got {learning_rate!r}")
    if isinstance(beta_1, bool) or not isinstance(beta_1, numbers) or not 0 <= beta_1 < 1:
        raise MusicRLError(f"beta_1 must be in [0, 1), got {beta_1!r}")
    learning_rate, beta_1 = float(learning_rate), float(beta_1)
    keras.utils.set_random_seed(random_state)
    model = build_discriminator(cfg, name="two_sample_d")
    fresh_weights = model.get_weights()
    key = (cfg, learning_rate, beta_1)
    if cache is not None and cache.get("key") == key:
        model, optimizer, fresh_optimizer = cache["model"], cache["optimizer"], cache["optimizer_state"]
    else:
        optimizer = keras.optimizers.Adam(learning_rate, beta_1=beta_1)
        optimizer.build(model.trainable_variables)
        model.compile(
            optimizer=optimizer, loss=keras.losses.BinaryCrossentropy(from_logits=True), jit_compile=False
        )
        fresh_optimizer = [keras.ops.convert_to_numpy(v) for v in optimizer.variables]
        if cache is not None:
            cache.clear()
            cache.update(key=key, model=model, optimizer=optimizer, optimizer_state=fresh_optimizer)

    def restart() -> None:
        model.set_weights(fresh_weights)
        for var, value in zip(optimizer.variables, fresh_optimizer):
            var.assign(value)

    return model, restart


def _fit_and_score(model: Any, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, *, epochs: int,
                   batch_size: int) -> np.ndarray:
    """Train ``model`` on every step's logit against the clip's label; its last-step logits on ``x_test``."""
    import keras

    y_steps = np.repeat(y[:, None].astype(np.float32), model.output_shape[-1], axis=1)
    model.fit(x, y_steps, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    return keras.ops.convert_to_numpy(model.predict_on_batch(x_test))[:, -1]


def discriminator_train_test(
    train_real_x: np.ndarray,
    train_gen_x: np.ndarray,
    test_real_x: np.ndarray,
    test_gen_x: np.ndarray,
    cfg: Any,
    *,
    epochs: int = 20,
    batch_size: int = 32,
    seed: int = 0,
    cache: dict | None = None,
    learning_rate: float = FRESH_D_LEARNING_RATE,
    beta_1: float = FRESH_D_BETA_1,
) -> dict[str, float]:
    """Two-sample test with a fresh discriminator trained on one pair of samples and scored on another.

    Where :func:`discriminator_two_sample_test` cross-validates on the few
    held-out clips, this test trains on as many clips as there are: e.g.
    windows of the training pieces against other pieces of the same
    generator, and scores on the held-out real clips against the set being
    evaluated, none of which it trained on. The larger training sample
    gives it the power to tell sets apart that the cross-validated test,
    trained on a few hundred clips, cannot (a test that is not
    significant is not evidence that two sets are alike). The model and its
    training are those of :func:`discriminator_two_sample_test`.

    Each pair is subsampled to the size of its smaller side, so chance is
    0.5; the accuracy is the mean of the two sides' accuracies.

    Parameters
    ----------
    train_real_x, train_gen_x : np.ndarray, shape=(n_train, *d_input_shape(cfg))
        D inputs it trains on (label 1 real, 0 generated).
    test_real_x, test_gen_x : np.ndarray, shape=(n_test, *d_input_shape(cfg))
        D inputs it is scored on.
    cfg : Config
    epochs, batch_size : int
        Training of the model.
    seed : int
        Subsampling and Keras' global seed.
    cache : dict, optional
        As in :func:`discriminator_two_sample_test` (the same dict serves both tests).
    learning_rate, beta_1 : float
        As in :func:`discriminator_two_sample_test`.

    Returns
    -------
    result : dict of str to float
        ``accuracy`` (0.5 = the sets cannot be told apart, 1 = always told
        apart), ``accuracy_real`` and ``accuracy_gen`` (of each test side),
        ``n_train_per_class``, ``n_test_per_class``.
    """
    import keras

    from ..learning.discriminator import check_d_inputs

    xs = {name: check_d_inputs(x, cfg, name=name) for name, x in (
        ("train_real_x", train_real_x), ("train_gen_x", train_gen_x),
        ("test_real_x", test_real_x), ("test_gen_x", test_gen_x))}
    for name, x in xs.items():
        if len(x) == 0:
            raise MusicRLError(f"{name} holds no clips: the test needs at least one of each")
    _check_int(epochs, "epochs", 1)
    _check_int(batch_size, "batch_size", 1)
    rng = as_rng(seed)
    n_train = min(len(xs["train_real_x"]), len(xs["train_gen_x"]))
    n_test = min(len(xs["test_real_x"]), len(xs["test_gen_x"]))

    def take(name: str, k: int) -> np.ndarray:
        return xs[name][np.sort(rng.choice(len(xs[name]), k, replace=False))]

    x = np.concatenate([take("train_real_x", n_train), take("train_gen_x", n_train)])
    y = np.concatenate([np.ones(n_train, np.int64), np.zeros(n_train, np.int64)])
    x_test = np.concatenate([take("test_real_x", n_test), take("test_gen_x", n_test)])
    random_state = int(rng.integers(2**31 - 1))
    model, restart = _fresh_discriminator(cfg, random_state, cache, learning_rate, beta_1)
    keras.utils.set_random_seed(random_state)
    restart()
    logits = _fit_and_score(model, x, y, x_test, epochs=epochs, batch_size=batch_size)
    acc_real = float((logits[:n_test] > 0).mean())
    acc_gen = float((logits[n_test:] <= 0).mean())
    return {
        "accuracy": (acc_real + acc_gen) / 2,
        "accuracy_real": acc_real,
        "accuracy_gen": acc_gen,
        "n_train_per_class": float(n_train),
        "n_test_per_class": float(n_test),
    }


# --------------------------------------------------------------------------
# evaluating a run: the four sets, the table, the report


EVALUATION_FILE = "metrics.json"
"""File of a run folder holding the numbers of its evaluation."""
REPORT_FILE = "report.md"
"""File of a run folder holding the evaluation report."""
COMPARISON_FILE = "compare.md"
"""File written by a comparison of several runs."""
PLOT_FILES = ("features.png", "pitch_classes.png", "piano_rolls.png", "mgeval.png")
"""Plots of an evaluation, written next to its report."""

EVAL_SETS: tuple[str, ...] = ("real", "random", "pretrained", "agent")
"""The sets of an evaluation, in table order."""
SET_LABELS: dict[str, str] = {
    "real": "real (held-out)",
    "random": "random progressions",
    "pretrained": "pretrained only",
    "agent": "agent",
}
"""How the table names each set."""

HEADLINE_COLUMNS: tuple[str, ...] = (
    "fresh_d_acc", "fresh_d_full_acc", "seq_clf_acc", "mgeval_kl", "mgeval_oa", "copy_rate",
)
"""The table's first columns; every key of :func:`musicrl.music.metrics.summarize` follows."""

COLUMN_DOCS: dict[str, str] = {
    "fresh_d_acc": "held-out accuracy of a freshly trained discriminator (the run's architecture, never the "
                   "training D) telling the reference clips from the set's; 0.5 = indistinguishable, "
                   "1 = always told apart",
    "fresh_d_full_acc": "accuracy of a freshly trained discriminator that learned from windows of the training "
                        "pieces against as many other pieces of the set, scored on the reference clips and the "
                        "set's; 0.5 = indistinguishable (not measured for the real set, which has no second sample)",
    "seq_clf_acc": "cross-validated accuracy of a logistic regression on per-piece feature vectors "
                   "(register, pitch classes, chord qualities, every scalar feature); 0.5 = indistinguishable",
    "mgeval_kl": "MGEval: KL divergence (nats) from the reference's intra-set distances to the set-to-reference "
                 "distances, mean over the features (0 = as close to the reference as it is to itself)",
    "mgeval_oa": "MGEval: overlapping area of the same two distance densities, mean over the features (1 = best)",
    "copy_rate": "share of pieces that repeat a run of chords of a training piece verbatim",
    "empty_step_rate": "share of steps that are rests",
    "polyphony": "mean notes per chord",
    "n_pitches_used": "distinct pitches per piece",
    "pitch_range": "semitones from the lowest to the highest note of a piece",
    "used_pitch_classes": "distinct pitch classes per piece",
    "qualified_note_rate": "share of notes lasting at least two steps (MuseGAN's qualified notes)",
    "in_key_rate": "share of notes in the piece's estimated key",
    "key_correlation": "correlation of a piece's pitch classes with its best Krumhansl-Kessler key profile",
    "consonant_chord_rate": "share of chords that are triads or seventh chords",
    "voice_leading": "semitones moved per voice between successive chords",
    "tonal_distance": "distance of the tonal centroids of successive chords (Harte et al.)",
    "repetition_rate": "share of steps equal to the previous step",
    "distinct_chord_ratio": "distinct chords of a piece over its steps, mean over pieces",
    "distinct_chord_ratio_set": "distinct chords of the whole set over all its steps",
    "distinct_chords_common": "distinct chords of the set once pitches under 1 % of the notes are dropped",
    "top3_pitch_share": "share of notes on the set's three most used pitches (high = collapse)",
    "pitch_class_overlap": "overlap of the set's pitch-class histogram with the reference's (1 = the same)",
}
"""One line per table column, for the report's legend."""

_COPY_RUN_LENGTH = 8
_SEQ_SPLITS = 5
_D_BATCH = 32
_FORMAT = 1


def rand_progression_seqs(n: int, cfg: Any, *, seed: Any = 0) -> np.ndarray:
    """The random baseline on a config's grid: ``n`` random progressions as seqs (``rand_seqs``).

    Each piece is :func:`musicrl.music.midi.rand_progression` (a triad or seventh
    chord in a random inversion per step, no harmony) of ``cfg.n_steps``
    chords of ``cfg.step_beats`` beats, with notes between MIDI 48 and 76
    (clipped to the grid's columns), quantized by
    :func:`musicrl.music.vectorize.midis_to_seqs` as real music is.

    Parameters
    ----------
    n : int
        Number of pieces.
    cfg : Config
        The grid (``n_steps``, ``step_beats``, ``lowest_pitch``, ``n_pitches``, ``quantize``).
    seed : int or np.random.Generator

    Returns
    -------
    rand_seqs : np.ndarray, shape=(n, cfg.n_steps, cfg.n_pitches), dtype=float32
    """
    from ..music.midi import rand_midis
    from ..music.vectorize import midis_to_seqs

    n = _check_int(n, "n", 1)
    top = cfg.lowest_pitch + cfg.n_pitches - 1
    lo, hi = max(48, cfg.lowest_pitch), min(76, top)
    if hi - lo < 12:
        # chords need an octave; notes above the grid are folded into it by octaves
        lo, hi = cfg.lowest_pitch, min(127, cfg.lowest_pitch + max(12, cfg.n_pitches - 1))
    rand_midis_ = rand_midis(
        n, as_rng(seed), kind="progression", n_chords=cfg.n_steps, chord_beats=cfg.step_beats,
        bpm=cfg.bpm, pitch_range=(lo, hi), program=cfg.program, velocity=cfg.velocity,
    )
    return midis_to_seqs(rand_midis_, n_steps=cfg.n_steps, n_pitches=cfg.n_pitches, **cfg.grid_kwargs())


def _d_inputs_for(seqs: np.ndarray, cfg: Any) -> np.ndarray:
    """D inputs of a set; its mels through the fast path grouped by chord width, since a set may hold
    a few clips of dense chords."""
    from ..learning.discriminator import check_d_seqs, d_input_kind, d_inputs
    from ..audio.mel import seq_to_mel_by_width

    # before any synthesis, so a set of the wrong length fails at once
    seqs = check_d_seqs(seqs, cfg)
    if d_input_kind(cfg) != "mel":
        return d_inputs(seqs, cfg)
    return d_inputs(seqs, cfg, mels=seq_to_mel_by_width(seqs, **cfg.seq_mel_kwargs()))


def compare_to_real(
    gen_seqs: np.ndarray,
    real_seqs: np.ndarray,
    cfg: Any,
    *,
    train_seqs: Any = None,
    copy_run_length: int = _COPY_RUN_LENGTH,
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
    seed: Any = 0,
) -> dict[str, Any]:
    """Every comparison of one set with real clips: one row of the evaluation table.

    * every scalar of :func:`musicrl.music.metrics.summarize` of ``gen_seqs``
      (``pitch_class_overlap`` against ``real_seqs``);
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
    seed : int or np.random.Generator

    Returns
    -------
    result : dict
        ``row`` (dict of column -> float: :data:`HEADLINE_COLUMNS`, then the
        summary), ``mgeval`` (per feature, see :func:`mgeval_compare`),
        ``seq_test``, ``d_test`` and ``d_full_test`` (the tests' results, empty when not run),
        ``copy_run_length`` and ``notes`` (list of str).
    """
    gen = check_seqs(gen_seqs, n_pitches=cfg.n_pitches, name="gen_seqs")
    real = check_seqs(real_seqs, n_pitches=cfg.n_pitches, name="real_seqs")
    if d_test:
        # D reads cfg.n_steps steps: a set of another length fails here, not after minutes of synthesis
        from ..learning.discriminator import check_d_seqs

        if gen_x is None:
            check_d_seqs(gen, cfg, name="gen_seqs")
        if real_x is None:
            check_d_seqs(real, cfg, name="real_seqs")
    if len(gen) == 0 or len(real) == 0:
        raise MusicRLError(f"compare_to_real needs clips in both sets, got {len(gen)} and {len(real)}")
    d_epochs = _check_int(d_epochs, "d_epochs", 1)
    d_splits = _check_int(d_splits, "d_splits", 2)
    rng = as_rng(seed)
    notes: list[str] = []
    lp = cfg.lowest_pitch
    summary = metrics.summarize(gen, lowest_pitch=lp, reference_seqs=real)

    run_length = min(_check_int(copy_run_length, "copy_run_length", 1), gen.shape[1])
    copy = float("nan")
    if train_seqs is not None and len(train_seqs):
        copy = metrics.copy_rate(gen, train_seqs, run_length=run_length)
    else:
        notes.append("no training pieces: copy_rate not measured")

    mg = mgeval_compare(gen, real, lowest_pitch=lp, seed=rng)
    mg_kl = _nanmean([v["kl_real_inter"] for v in mg.values()])
    mg_oa = _nanmean([v["oa_real_inter"] for v in mg.values()])

    # each test needs two clips, or two groups, of each set
    n_small = min(
        len(gen), len(real),
        len(gen) if gen_groups is None else np.unique(np.asarray(gen_groups)).size,
        len(real) if real_groups is None else np.unique(np.asarray(real_groups)).size,
    )
    groups = {"real_groups": real_groups, "gen_groups": gen_groups}
    seq_res: dict[str, float] = {}
    seq_seed = int(rng.integers(2**31 - 1))
    if n_small >= 2:
        try:
            seq_res = seq_two_sample_test(real, gen, lowest_pitch=lp, n_splits=min(_SEQ_SPLITS, n_small),
                                          seed=seq_seed, **groups)
        except MusicRLError as e:
            notes.append(f"feature-classifier test not run: {e}")
    else:
        notes.append(f"{n_small} clip(s) or piece(s) per class: too few for the feature-classifier test")

    d_res: dict[str, float] = {}
    d_seed = int(rng.integers(2**31 - 1))
    if not d_test:
        notes.append("fresh-discriminator test not run")
    elif n_small >= 2:
        real_x = _d_inputs_for(real, cfg) if real_x is None else real_x
        gen_x = _d_inputs_for(gen, cfg) if gen_x is None else gen_x
        try:
            d_res = discriminator_two_sample_test(
                real_x, gen_x, cfg, n_splits=min(d_splits, n_small), epochs=d_epochs, batch_size=_D_BATCH,
                seed=d_seed, cache=d_cache, **groups,
            )
        except MusicRLError as e:
            notes.append(f"fresh-discriminator test not run: {e}")
    else:
        notes.append(f"{n_small} clip(s) or piece(s) per class: too few for the fresh-discriminator test")

    d_full: dict[str, float] = {}
    d_full_seed = int(rng.integers(2**31 - 1))
    if d_test and train_real_x is not None and train_gen_x is not None:
        try:
            d_full = discriminator_train_test(
                train_real_x, train_gen_x, _d_inputs_for(real, cfg) if real_x is None else real_x,
                _d_inputs_for(gen, cfg) if gen_x is None else gen_x, cfg, epochs=d_epochs, batch_size=_D_BATCH,
                seed=d_full_seed, cache=d_cache,
            )
        except MusicRLError as e:
            notes.append(f"fresh_d_full_acc not measured: {e}")
    elif d_test:
        notes.append("no second sample of the set to train on: fresh_d_full_acc not measured")

    row = {
        "fresh_d_acc": d_res.get("accuracy", float("nan")),
        "fresh_d_full_acc": d_full.get("accuracy", float("nan")),
        "seq_clf_acc": seq_res.get("accuracy", float("nan")),
        "mgeval_kl": mg_kl,
        "mgeval_oa": mg_oa,
        "copy_rate": copy,
        **summary,
    }
    return {
        "row": {k: float(v) for k, v in row.items()},
        "mgeval": mg,
        "seq_test": seq_res,
        "d_test": d_res,
        "d_full_test": d_full,
        "copy_run_length": run_length,
        "notes": notes,
    }


class EvalSets(NamedTuple):
    """The pieces an evaluation of a run compares (see :func:`load_eval_sets`)."""

    cfg: Any
    """The run's settings."""
    sets: dict[str, np.ndarray]
    """Set name (of :data:`EVAL_SETS`) -> seqs; 'pretrained' only when the run has that checkpoint."""
    reference: np.ndarray
    """The real clips every set is compared with."""
    groups: dict[str, np.ndarray]
    """For 'real' and 'reference': the index of the piece each window was cut from."""
    train_seqs: list[np.ndarray]
    """The run's training pieces (full length), for the copy rate."""
    d_train: dict[str, np.ndarray]
    """What the trained-on-training-pieces discriminator test learns from: 'real', windows of the training
    pieces; 'random', 'pretrained', 'agent', other draws of the same source (empty when ``n_d_train`` is 0)."""
    info: dict[str, Any]
    """Where everything came from: checkpoints, data, sizes, and ``notes``."""


def _read_json(path: Path) -> Any:
    import json

    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise MusicRLError(f"cannot read {str(path)!r}: {e.strerror or e}") from None
    except (ValueError, RecursionError) as e:
        raise MusicRLError(f"{str(path)!r} is not valid JSON: {e}") from None


def _check_run_dir(run_dir: Any) -> Path:
    from ..store.runs import CONFIG_FILE, is_run_dir

    path = Path(run_dir).expanduser()
    if not path.exists():
        raise MusicRLError(f"run folder {str(path)!r} does not exist")
    if not path.is_dir():
        raise MusicRLError(f"{str(path)!r} is not a folder: give a run folder such as runs/<name>")
    if not is_run_dir(path):
        raise MusicRLError(f"{str(path)!r} is not a run folder (no {CONFIG_FILE}): give a folder such as runs/<name>")
    return path


def _windows(real_data: Any, seqs: list) -> np.ndarray:
    """The clips the run trained on, cut from ``seqs`` (pieces of ``real_data``) as training cuts them."""
    from ..music.data import seqs_to_windows

    return seqs_to_windows(seqs, n_steps=real_data.n_steps, hop=real_data.window_hop, n_pitches=real_data.n_pitches)


def _split_real(real_data: Any, n: int, rng: np.random.Generator) -> tuple:
    """Held-out pieces split in two halves of about equal windows; at most ``n`` windows of each.

    Returns the two halves' windows, their piece indices, an info dict and notes.
    """
    notes = []
    pieces, names, split = real_data.heldout_seqs, real_data.heldout_names, "heldout"
    if not pieces:
        pieces, names, split = real_data.train_seqs, real_data.train_names, "train"
        notes.append("the data set has no held-out pieces (holdout_fraction is 0 or the set is tiny): the real "
                     "clips are training pieces, so the real row's copy rate is 1 and the agent may have seen them")

    per_piece = [_windows(real_data, [p]) for p in pieces]
    if len(pieces) >= 2:
        halves: tuple[list, list] = ([], [])
        counts = [0, 0]
        for i in rng.permutation(len(pieces)):
            side = int(counts[1] < counts[0])
            halves[side].append(i)
            counts[side] += len(per_piece[i])
        real_a, ref = (np.concatenate([per_piece[i] for i in half]) for half in halves)
        group_a, group_ref = (np.concatenate([np.full(len(per_piece[i]), i) for i in half]) for half in halves)
        half_names = ([names[i] for i in sorted(halves[0])], [names[i] for i in sorted(halves[1])])
    else:
        both = per_piece[0][rng.permutation(len(per_piece[0]))]
        real_a, ref = both[: len(both) // 2], both[len(both) // 2 :]
        # one piece: each window counts as its own group
        group_a, group_ref = np.arange(len(real_a)), len(real_a) + np.arange(len(ref))
        half_names = (list(names), list(names))
        notes.append("a single real piece: its windows are split in two, so the real row is optimistic")
    if len(real_a) == 0 or len(ref) == 0:
        raise MusicRLError(
            f"the run's data has {len(real_a) + len(ref)} real window(s) of {real_data.n_steps} steps outside "
            "training: at least 2 are needed to evaluate"
        )
    keep_a = rng.permutation(len(real_a))[:n]
    keep_ref = rng.permutation(len(ref))[:n]
    real_a, group_a, ref, group_ref = real_a[keep_a], group_a[keep_a], ref[keep_ref], group_ref[keep_ref]
    info = {"split": split, "real_pieces": len(half_names[0]), "real_windows": len(real_a),
            "reference_pieces": len(half_names[1]), "reference_windows": len(ref),
            "real_names": half_names[0], "reference_names": half_names[1]}
    return real_a, ref, {"real": group_a, "reference": group_ref}, info, notes


def _policy_of(policy: Any, run_dir: Path, loaded: Path, wanted: Path) -> Any:
    """The policy of checkpoint ``wanted``: ``policy`` (of checkpoint ``loaded``) with its weights
    restored when both share one chord vocabulary, which keeps its compiled sampling graph."""
    from ..store.checkpoint import load_checkpoint
    from ..learning.load import load_policy

    try:
        vocabs = [load_checkpoint(path)[0].get("vocab") for path in (loaded, wanted)]
        if (vocabs[0] is None) == (vocabs[1] is None) and (vocabs[0] is None or np.array_equal(*vocabs)):
            load_checkpoint(wanted, objects={"policy": policy})
            return policy
    except MusicRLError:
        pass
    return load_policy(run_dir, wanted.name)


def load_eval_sets(
    run_dir: Any,
    *,
    n: int = 256,
    seed: int = 0,
    n_d_train: int | None = None,
    data_dir: Any = None,
    progress: bool = False,
) -> EvalSets:
    """The pieces an evaluation of a run compares.

    * the run's real data (the folder recorded in its ``run.json``, else its
      ``data_dir``) is loaded with the run's settings, and its held-out
      pieces are split in two halves of whole pieces: ``reference``, which
      every set is compared with, and the ``'real'`` set, which shows the
      scores of music from the same source (a perfect generator's scores);
      at most ``n`` windows of each;
    * ``'random'``: ``n`` :func:`rand_progression_seqs`;
    * ``'pretrained'``: ``n`` pieces of the policy after pretraining alone
      (checkpoint ``pretrained``; left out when the run has none);
    * ``'agent'``: ``n`` pieces of the latest checkpoint's policy.

    The two policies sample at the run's ``sample_temperature`` from the same
    random numbers, so their difference is the training, not the draws.

    For the discriminator test that trains on other clips than it scores
    (:func:`discriminator_train_test`), ``d_train`` holds ``n_d_train``
    windows of the training pieces (all of them when there are fewer) and as
    many further draws of each generated set's source.

    Parameters
    ----------
    run_dir : str or path-like
        A run folder (``runs/<name>``) with at least one checkpoint.
    n : int
        Pieces per generated set, and real windows per half at most.
    seed : int
        Seed of every draw.
    n_d_train : int, optional
        Clips of each kind to train that test on (default ``4 * n``; 0: none).
    data_dir : str or path-like, optional
        The real data's folder, instead of the one the run recorded: for a
        run moved to another machine or checkout. A note says so when its
        training or held-out pieces are not those the run was split with.
    progress : bool
        Show a progress bar while reading MIDI files.

    Returns
    -------
    eval_sets : EvalSets

    Raises
    ------
    MusicRLError
        For a missing folder, a folder that is not a run, a run without a
        checkpoint, or a data folder that cannot be loaded.
    """
    from ..store.checkpoint import latest_checkpoint
    from ..config import load_config
    from ..music.data import load_folder, resolve_data_dir
    from ..store.runs import run_paths
    from ..learning.load import load_policy

    n = _check_int(n, "n", 2)
    seed = _check_int(seed, "seed", 0)
    n_d_train = 4 * n if n_d_train is None else _check_int(n_d_train, "n_d_train", 0)
    run_dir = _check_run_dir(run_dir)
    paths = run_paths(run_dir)
    cfg = load_config(paths.config)
    latest = latest_checkpoint(paths.checkpoints)
    if latest is None:
        raise MusicRLError(
            f"run {str(run_dir)!r} has no checkpoint to evaluate: train it first (python -m musicrl train)"
        )
    pretrained = paths.checkpoints / "pretrained"
    has_pretrained = (pretrained / "state.json").is_file()
    latest_state = _read_json(latest / "state.json")
    pretrain_steps = int(latest_state.get("pretrain_steps_done", 0))

    run_info = _read_json(paths.run) if paths.run.is_file() else {}
    data_info = run_info.get("data") or {}
    if data_dir is not None:
        root = str(data_dir)
    else:
        root = data_info.get("root") or run_info.get("data_dir") or str(resolve_data_dir(cfg))
    try:
        real_data = load_folder(root, cfg, progress=progress)
    except MusicRLError as e:
        hint = "" if data_dir is not None else " (a run moved from another checkout: give the folder, evaluate --data DIR)"
        raise MusicRLError(f"cannot load the run's data folder {root!r}{hint}: {e}") from None
    notes = []
    for part in ("train", "heldout"):
        then, now = data_info.get(f"{part}_names"), getattr(real_data, f"{part}_names")
        if then is not None and list(then) != list(now):
            what = "training" if part == "train" else "held-out"
            notes.append(f"the {what} pieces of {root} differ from those the run was split with "
                         f"({len(now)} now, {len(then)} then)")

    real_a, reference, groups, split_info, split_notes = _split_real(real_data, n, np.random.default_rng([seed, 0]))
    notes += split_notes
    sets = {"real": real_a, "random": rand_progression_seqs(n, cfg, seed=np.random.default_rng([seed, 1]))}

    def draw(policy: Any, k: int, stream: int) -> np.ndarray:
        draws = np.random.default_rng([seed, stream])
        return policy.sample(k, draws, n_steps=cfg.n_steps, temperature=cfg.sample_temperature).seqs

    d_train: dict[str, np.ndarray] = {}
    if n_d_train:
        windows = _windows(real_data, real_data.train_seqs)
        keep = np.random.default_rng([seed, 3]).permutation(len(windows))[:n_d_train]
        d_train["real"] = windows[np.sort(keep)]
        d_train["random"] = rand_progression_seqs(n_d_train, cfg, seed=np.random.default_rng([seed, 4]))
    policy = load_policy(run_dir, latest.name)
    agent_seqs = draw(policy, n, 2)
    agent_train = draw(policy, n_d_train, 5) if n_d_train else None
    if has_pretrained:
        pretrained_policy = _policy_of(policy, run_dir, latest, pretrained)
        sets["pretrained"] = draw(pretrained_policy, n, 2)
        if n_d_train:
            d_train["pretrained"] = draw(pretrained_policy, n_d_train, 5)
    sets["agent"] = agent_seqs
    if agent_train is not None:
        d_train["agent"] = agent_train
    if latest.name == "pretrained":
        notes.append("the latest checkpoint is the pretrained one: the agent row is the policy before any "
                     "adversarial update")
    if not has_pretrained:
        notes.append("the run has no 'pretrained' checkpoint: no pretrained-only row")
    info = {
        "run": str(run_dir.resolve()),
        "name": run_dir.resolve().name,
        "checkpoint": latest.name,
        "iteration": int(latest_state.get("iteration", 0)),
        "pretrained_checkpoint": pretrained.name if has_pretrained else None,
        "pretrain_steps": pretrain_steps,
        "n": n,
        "seed": seed,
        "sample_temperature": cfg.sample_temperature,
        "data": {"root": str(root), **split_info},
        "sizes": {k: int(len(v)) for k, v in sets.items()},
        "d_train_sizes": {k: int(len(v)) for k, v in d_train.items()},
        "notes": notes,
    }
    return EvalSets(cfg=cfg, sets=sets, reference=reference, groups=groups, train_seqs=list(real_data.train_seqs),
                    d_train=d_train, info=info)


def evaluate_run(
    run_dir: Any,
    *,
    n: int = 256,
    seed: int = 0,
    d_test: bool = True,
    d_epochs: int = 20,
    d_splits: int = 3,
    n_d_train: int | None = None,
    data_dir: Any = None,
    plots: bool = True,
    write: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a run: the real, random, pretrained-only and agent sets side by side.

    The sets come from :func:`load_eval_sets`; each is measured by
    :func:`compare_to_real` against the same real reference clips, with the
    same seed (same folds and pair draws for every set). With
    ``write``, the run folder gets ``metrics.json`` (the returned dict),
    ``report.md`` (the table, its legend, MGEval per feature, the plots) and,
    with ``plots``, the PNGs of :data:`PLOT_FILES`.

    The cost with the default settings and ``n=256`` on 2 CPU cores: about
    3 minutes (4 to 6 on a busy machine): sampling and compiling the two
    policies, the mels of about 5000 clips, and for each set the measures (a
    few seconds) and the two fresh discriminators: ``d_splits`` folds of
    ``d_epochs`` epochs on about ``2 * n * (d_splits - 1) / d_splits`` clips
    (10 to 20 seconds), and ``d_epochs`` epochs on ``2 * n_d_train`` clips
    (about 30 seconds); one compiled model serves them all. At 5 epochs the
    cross-validated one told random progressions from chorales only 94 % of
    the time, at 20 epochs 99 %: fewer epochs make every set look more real
    than it is. Only the second has the data to tell the policies from
    chorales (0.76 for a pretrained policy where the first is at chance).

    Parameters
    ----------
    run_dir : str or path-like
        A run folder with at least one checkpoint.
    n : int
        Pieces per set (real windows per half at most).
    seed : int
        Seed of every draw and test.
    d_test : bool
        Run the fresh-discriminator tests (``fresh_d_acc`` is NaN otherwise).
    d_epochs, d_splits : int
        Training epochs per fold, and folds, of each fresh discriminator.
    n_d_train : int, optional
        Clips of each kind the ``fresh_d_full_acc`` discriminator trains on
        (default ``4 * n``; see :func:`load_eval_sets`).
    data_dir : str or path-like, optional
        The real data's folder instead of the one the run recorded
        (see :func:`load_eval_sets`).
    plots : bool
        Write the PNG plots.
    write : bool
        Write the files into the run folder.
    progress : bool
        Show a progress bar.

    Returns
    -------
    evaluation : dict
        As saved to ``metrics.json`` (where NaN is null): the run's ``info``
        (see :class:`EvalSets`), ``sets``
        (names in table order), ``labels``, ``columns``, ``table`` (set ->
        column -> float, NaN where not measured), ``mgeval`` (set -> feature
        -> measures), ``tests`` (set -> the two tests' details),
        ``settings``, ``seconds`` and ``notes``.
    """
    import logging
    import time

    from tqdm.auto import tqdm

    from ..learning.discriminator import d_input_kind

    t0 = time.perf_counter()
    d_epochs = _check_int(d_epochs, "d_epochs", 1)
    d_splits = _check_int(d_splits, "d_splits", 2)
    # each fresh D retraces Keras' predict function, which TensorFlow warns about at length
    tf_logger = logging.getLogger("tensorflow")
    tf_level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    bar = tqdm(total=2 + 2 * len(EVAL_SETS) + bool(write), desc="evaluate", unit="step",
               disable=not progress, dynamic_ncols=True)
    seconds: dict[str, float] = {}
    try:
        bar.set_postfix_str("sampling the sets")
        ev = load_eval_sets(run_dir, n=n, seed=seed, n_d_train=n_d_train if d_test else 0, data_dir=data_dir,
                            progress=False)
        cfg = ev.cfg
        seconds["sets"] = time.perf_counter() - t0
        bar.update(1)
        names = [s for s in EVAL_SETS if s in ev.sets]
        bar.total = 2 + 2 * len(names) + bool(write)
        t = time.perf_counter()
        ref_x = _d_inputs_for(ev.reference, cfg) if d_test else None
        train_real_x = _d_inputs_for(ev.d_train["real"], cfg) if "real" in ev.d_train else None
        bar.update(1)
        results = {}
        d_cache: dict = {}
        for name in names:
            bar.set_postfix_str(f"{name}: D inputs")
            gen_x = _d_inputs_for(ev.sets[name], cfg) if d_test else None
            train_gen_x = _d_inputs_for(ev.d_train[name], cfg) if name != "real" and name in ev.d_train else None
            seconds["d_inputs"] = seconds.get("d_inputs", 0.0) + time.perf_counter() - t
            bar.update(1)
            t = time.perf_counter()
            bar.set_postfix_str(f"{name}: measures and tests")
            results[name] = compare_to_real(
                ev.sets[name], ev.reference, cfg, train_seqs=ev.train_seqs, d_test=d_test, d_epochs=d_epochs,
                d_splits=d_splits, gen_x=gen_x, real_x=ref_x, train_real_x=train_real_x, train_gen_x=train_gen_x,
                d_cache=d_cache,
                real_groups=ev.groups["reference"], gen_groups=ev.groups.get(name),
                seed=np.random.default_rng([ev.info["seed"], 10]),
            )
            seconds[f"compare_{name}"] = time.perf_counter() - t
            bar.update(1)
            t = time.perf_counter()
        notes = list(ev.info["notes"])
        for name in names:
            notes += [f"{name}: {line}" for line in results[name]["notes"]]
        columns = list(results[names[0]]["row"])
        evaluation = {
            "format": _FORMAT,
            **{k: v for k, v in ev.info.items() if k != "notes"},
            "sets": names,
            "labels": {s: _set_label(s, ev.info) for s in names},
            "columns": columns,
            "table": {s: results[s]["row"] for s in names},
            "mgeval": {s: results[s]["mgeval"] for s in names},
            "tests": {s: {"seq": results[s]["seq_test"], "fresh_d": results[s]["d_test"],
                          "fresh_d_full": results[s]["d_full_test"]} for s in names},
            "settings": {
                "d_test": bool(d_test), "d_epochs": d_epochs, "d_splits": d_splits, "d_batch_size": _D_BATCH,
                "d_learning_rate": FRESH_D_LEARNING_RATE, "d_beta_1": FRESH_D_BETA_1,
                "d_arch": cfg.d_arch, "d_input": d_input_kind(cfg), "seq_splits": _SEQ_SPLITS,
                "copy_run_length": results[names[0]]["copy_run_length"], "folds_grouped_by_piece": True,
            },
            "notes": notes,
            "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        seconds["total"] = time.perf_counter() - t0
        evaluation["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
        if write:
            bar.set_postfix_str("report and plots")
            write_evaluation(run_dir, evaluation, ev if plots else None)
            bar.update(1)
    finally:
        bar.close()
        tf_logger.setLevel(tf_level)
    return evaluation


def critic_comparison(
    ev: EvalSets,
    *,
    archs: Sequence[str] = ("cnn", "lstm", "seq"),
    sets: Sequence[str] = ("real", "random", "pretrained", "agent"),
    epochs: int = 20,
    d_splits: int = 3,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Held-out accuracy of fresh discriminators of several architectures on the same sets.

    Each architecture (``d_arch``; every other setting is the run's) is
    trained anew by :func:`discriminator_two_sample_test` to tell
    ``ev.reference`` from each set, with folds that keep each real piece's
    windows together and the same seed for every architecture, so they see
    the same clips and folds. It answers which critic can tell the agent's
    music from real music at all: a critic at 0.5 on a set gives no signal
    about it.

    Parameters
    ----------
    ev : EvalSets
        From :func:`load_eval_sets`.
    archs : sequence of str
        Architectures ('cnn', 'lstm', 'seq').
    sets : sequence of str
        Sets of ``ev`` to test (those it lacks are left out).
    epochs, d_splits : int
        Training epochs per fold, and folds.
    seed : int
        Seed of the folds and of the discriminators' initial weights.

    Returns
    -------
    accuracy : dict
        Architecture -> set -> mean held-out accuracy over the folds.
    """
    from ..config import config_from_overrides

    _check_int(epochs, "epochs", 1)
    _check_int(d_splits, "d_splits", 2)
    out: dict[str, dict[str, float]] = {}
    for arch in archs:
        cfg = config_from_overrides({"d_arch": arch}, base=ev.cfg)
        ref_x = _d_inputs_for(ev.reference, cfg)
        out[arch] = {}
        cache: dict = {}
        for name in sets:
            if name not in ev.sets:
                continue
            result = discriminator_two_sample_test(
                ref_x, _d_inputs_for(ev.sets[name], cfg), cfg, n_splits=d_splits, epochs=epochs, seed=seed,
                real_groups=ev.groups["reference"], gen_groups=ev.groups.get(name), cache=cache,
            )
            out[arch][name] = result["accuracy"]
    return out


def _set_label(name: str, info: dict[str, Any]) -> str:
    if name == "real" and info.get("data", {}).get("split") == "train":
        return "real (training: no held-out)"
    return SET_LABELS.get(name, name)


# --------------------------------------------------------------------------
# tables, files and comparisons


def _number(value: Any) -> float:
    try:
        return float("nan") if value is None else float(value)
    except (TypeError, ValueError):
        return float("nan")


def format_value(value: Any) -> str:
    """A table cell: 'n/a' for a missing or NaN value, whole numbers as such, else 3 decimals."""
    v = _number(value)
    if not np.isfinite(v):
        return "n/a"
    if v.is_integer() and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _check_evaluation(evaluation: Any, where: str) -> dict[str, Any]:
    if (
        not isinstance(evaluation, dict)
        or not isinstance(evaluation.get("table"), dict)
        or not isinstance(evaluation.get("sets"), list)
        or not isinstance(evaluation.get("columns"), list)
    ):
        raise MusicRLError(f"{where} is not an evaluation written by 'python -m musicrl evaluate'")
    return evaluation


def format_table(evaluation: dict[str, Any], *, columns: Sequence[str] | None = None) -> str:
    """The evaluation table in markdown: one row per set, one column per measure.

    Parameters
    ----------
    evaluation : dict
        From :func:`evaluate_run` or :func:`load_evaluation`.
    columns : sequence of str, optional
        Columns to show (default: all, in the evaluation's order).

    Returns
    -------
    table : str
    """
    evaluation = _check_evaluation(evaluation, "evaluation")
    columns = list(columns) if columns is not None else list(evaluation["columns"])
    sizes = evaluation.get("sizes", {})
    labels = evaluation.get("labels", {})
    rows = []
    for s in evaluation["sets"]:
        row = evaluation["table"].get(s, {})
        rows.append([labels.get(s, s), format_value(sizes.get(s))] + [format_value(row.get(c)) for c in columns])
    return _markdown(["set", "n"] + columns, rows)


def _mgeval_table(evaluation: dict[str, Any]) -> str:
    names = evaluation["sets"]
    features = list(next(iter(evaluation["mgeval"].values()), {}))
    rows = []
    for f in features:
        cells = []
        for s in names:
            m = evaluation["mgeval"].get(s, {}).get(f, {})
            cells.append(f"{format_value(m.get('kl_real_inter'))} / {format_value(m.get('oa_real_inter'))}")
        rows.append([f] + cells)
    return _markdown(["feature"] + [evaluation["labels"].get(s, s) for s in names], rows)


def _json_ready(obj: Any) -> Any:
    """NaN and inf become null (JSON has no NaN); NumPy values become Python ones."""
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_ready(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def _write_text(path: Path, text: str) -> None:
    import os

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise MusicRLError(f"cannot write {str(path)!r}: {e.strerror or e}") from None


def _sizes_text(sizes: Any) -> str:
    if not sizes:
        return "not run"
    return ", ".join(f"{k} {v}" for k, v in sizes.items()) + " clips"


def _report(evaluation: dict[str, Any], plot_files: list[str]) -> str:
    data = evaluation.get("data", {})
    settings = evaluation.get("settings", {})
    split = "held-out" if data.get("split") == "heldout" else "training"
    pre = evaluation.get("pretrained_checkpoint")
    lines = [
        f"# Evaluation of run `{evaluation.get('name')}`",
        "",
        f"- run: `{evaluation.get('run')}`",
        f"- agent: checkpoint `{evaluation.get('checkpoint')}` (iteration {evaluation.get('iteration')})",
        f"- pretrained only: " + (f"checkpoint `{pre}` ({evaluation.get('pretrain_steps')} maximum-likelihood steps)"
                                  if pre else "none in this run"),
        f"- generated sets: {evaluation.get('n')} pieces each, sampled at temperature "
        f"{evaluation.get('sample_temperature')}; seed {evaluation.get('seed')}",
        f"- reference: {data.get('reference_windows')} windows of {data.get('reference_pieces')} {split} pieces "
        f"of `{data.get('root')}`; the real row: {data.get('real_windows')} windows of the "
        f"{data.get('real_pieces')} other {split} pieces",
        f"- fresh discriminator: a new `{settings.get('d_arch')}` D on {settings.get('d_input')} inputs per set, "
        f"{settings.get('d_splits')}-fold, {settings.get('d_epochs')} epoch(s), batch {settings.get('d_batch_size')}"
        + (f", Adam at {settings['d_learning_rate']:g} (beta_1 {settings.get('d_beta_1'):g}) for every run"
           if "d_learning_rate" in settings else "")
        + ("" if settings.get("d_test", True) else " (not run)"),
        f"- fresh discriminator trained on the training pieces (`fresh_d_full_acc`): the same D trained "
        f"{settings.get('d_epochs')} epoch(s) on windows of the training pieces against another sample of "
        f"each set's source ({_sizes_text(evaluation.get('d_train_sizes'))}), then scored on the reference and "
        f"the set",
        f"- the two cross-validated tests: folds keep each real piece's windows together, so a classifier cannot score "
        f"by recognising a piece it trained on; the larger of the two sets is subsampled to the smaller, so chance "
        f"is 0.5",
        f"- copy rate: runs of {settings.get('copy_run_length')} chords of the training pieces",
        f"- evaluated {evaluation.get('written')}"
        + (f" in {evaluation['seconds']['total']:.1f} s" if "total" in evaluation.get("seconds", {}) else ""),
        "",
        "Every set is measured against the same reference clips. The real row is music from the same source "
        "measured the same way: a generator matches the data on a measure when it scores as the real row does "
        "(0.5 for the two classifier accuracies).",
        "",
        "## Table",
        "",
        format_table(evaluation),
        "",
        "## Columns",
        "",
    ]
    lines += [f"- `{c}`: {COLUMN_DOCS[c]}" for c in evaluation["columns"] if c in COLUMN_DOCS]
    lines += [
        "",
        "## MGEval per feature",
        "",
        "KL divergence / overlapping area of the reference's intra-set distances and the set-to-reference "
        "distances of each per-piece feature (0 / 1: the set is as close to the reference as the reference is "
        "to itself).",
        "",
        _mgeval_table(evaluation),
    ]
    if plot_files:
        lines += ["", "## Plots", ""]
        captions = {
            "features.png": "Per-piece features of each set",
            "pitch_classes.png": "Pitch-class histograms (all notes of each set)",
            "piano_rolls.png": "A few pieces of each set",
            "mgeval.png": "MGEval overlapping area per feature",
        }
        lines += [f"![{captions.get(f, f)}]({f})\n" for f in plot_files]
    if evaluation.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {note}" for note in evaluation["notes"]]
    return "\n".join(lines) + "\n"


def _write_plots(folder: Path, evaluation: dict[str, Any], ev: EvalSets) -> list[str]:
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # no window; a session that already drew keeps its backend
    import matplotlib.pyplot as plt

    from .. import plotting

    cfg = ev.cfg
    lp = cfg.lowest_pitch
    names = evaluation["sets"]
    labels = evaluation["labels"]
    sets = {labels[s]: ev.sets[s] for s in names}
    figures = {}
    scalar = [f for f in PIECE_FEATURES if not f.endswith("histogram")]
    features = {k: piece_features(v, lowest_pitch=lp, names=scalar) for k, v in sets.items()}
    figures["features.png"] = plotting.plot_feature_hists(features)
    hists = {k: metrics.pitch_class_histogram(v, lowest_pitch=lp, pooled=True) for k, v in sets.items()}
    figures["pitch_classes.png"] = plotting.plot_pitch_class_hists(hists, title="pitch classes").figure
    figures["piano_rolls.png"] = plotting.plot_piano_rolls(sets, lowest_pitch=lp, n=3)
    mg = {labels[s]: evaluation["mgeval"][s] for s in names}
    figures["mgeval.png"] = plotting.plot_mgeval(
        mg, measure="oa_real_inter", title="MGEval overlap with the reference"
    ).figure
    written = []
    try:
        for name, fig in figures.items():
            fig.tight_layout()
            try:
                fig.savefig(folder / name, dpi=90)
            except OSError as e:
                raise MusicRLError(f"cannot write {str(folder / name)!r}: {e.strerror or e}") from None
            written.append(name)
    finally:
        for fig in figures.values():
            plt.close(fig)
    return written


def write_evaluation(run_dir: Any, evaluation: dict[str, Any], eval_sets: EvalSets | None = None) -> list[Path]:
    """Write ``metrics.json``, ``report.md`` and (given the sets) the plots into a run folder.

    Parameters
    ----------
    run_dir : str or path-like
    evaluation : dict
        From :func:`evaluate_run`.
    eval_sets : EvalSets, optional
        The pieces evaluated; without them no plot is drawn.

    Returns
    -------
    paths : list of Path
        The files written.
    """
    import json

    folder = Path(run_dir)
    evaluation = _check_evaluation(evaluation, "evaluation")
    plot_files = _write_plots(folder, evaluation, eval_sets) if eval_sets is not None else []
    _write_text(folder / EVALUATION_FILE, json.dumps(_json_ready(evaluation), indent=1) + "\n")
    _write_text(folder / REPORT_FILE, _report(evaluation, plot_files))
    return [folder / EVALUATION_FILE, folder / REPORT_FILE] + [folder / f for f in plot_files]


def load_evaluation(path: Any) -> dict[str, Any]:
    """Read the ``metrics.json`` of an evaluated run (a run folder or the file itself).

    Missing values (null in the file) come back as NaN.

    Raises
    ------
    MusicRLError
        If there is no such file, or it is not an evaluation.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise MusicRLError(f"{str(path)!r} does not exist")
    file = path / EVALUATION_FILE if path.is_dir() else path
    if not file.is_file():
        raise MusicRLError(
            f"no evaluation in {str(path)!r} (no {EVALUATION_FILE}): "
            f"run 'python -m musicrl evaluate --run {path}' first"
        )
    evaluation = _check_evaluation(_read_json(file), repr(str(file)))
    evaluation["table"] = {
        s: {c: _number(v) for c, v in row.items()} for s, row in evaluation["table"].items()
    }
    return evaluation


def _run_labels(evaluations: Sequence[dict[str, Any]]) -> list[str]:
    names = [str(e.get("name") or f"run{i + 1}") for i, e in enumerate(evaluations)]
    if len(set(names)) < len(names):
        names = [f"{n} ({i + 1})" for i, n in enumerate(names)]
    return names


def comparison_table(
    evaluations: Sequence[dict[str, Any]],
    *,
    labels: Sequence[str] | None = None,
    sets: Sequence[str] | None = None,
) -> str:
    """Several runs' evaluations side by side, in markdown: one row per measure, one column per set and run.

    Columns are grouped by set (the real sets of all runs, then their random
    sets, ...), so the runs' values of a set stand next to each other.

    Parameters
    ----------
    evaluations : sequence of dict
        From :func:`evaluate_run` or :func:`load_evaluation`.
    labels : sequence of str, optional
        Names of the runs (default: their folder names).
    sets : sequence of str, optional
        Sets to show (default: every set of :data:`EVAL_SETS` that a run has).

    Returns
    -------
    table : str
    """
    evaluations = [_check_evaluation(e, f"evaluation {i + 1}") for i, e in enumerate(evaluations)]
    if not evaluations:
        raise MusicRLError("comparison_table needs at least one evaluation")
    labels = list(labels) if labels is not None else _run_labels(evaluations)
    if len(labels) != len(evaluations):
        raise MusicRLError(f"{len(labels)} labels for {len(evaluations)} evaluations")
    present = [s for s in EVAL_SETS if any(s in e["sets"] for e in evaluations)]
    present += [s for e in evaluations for s in e["sets"] if s not in present]
    sets = list(sets) if sets is not None else present
    columns = [c for e in evaluations for c in e["columns"]]
    columns = list(dict.fromkeys(["n"] + columns))
    header = ["measure"] + [f"{s}: {lab}" for s in sets for lab in labels]
    rows = []
    for c in columns:
        cells = []
        for s in sets:
            for e in evaluations:
                if s not in e["sets"]:
                    cells.append("-")
                elif c == "n":
                    cells.append(format_value(e.get("sizes", {}).get(s)))
                else:
                    cells.append(format_value(e["table"].get(s, {}).get(c)))
        rows.append([c] + cells)
    return _markdown(header, rows)


def comparison_report(evaluations: Sequence[dict[str, Any]], *, labels: Sequence[str] | None = None) -> str:
    """A markdown page comparing runs: which run is which, then :func:`comparison_table`."""
    labels = list(labels) if labels is not None else _run_labels(evaluations)
    lines = ["# Comparison of runs", ""]
    for lab, e in zip(labels, evaluations):
        lines.append(
            f"- `{lab}`: `{e.get('run')}`, checkpoint `{e.get('checkpoint')}` (iteration {e.get('iteration')}), "
            f"n = {e.get('n')}, seed {e.get('seed')}"
        )
    lines += ["", comparison_table(evaluations, labels=labels), ""]
    lines += [f"- `{c}`: {COLUMN_DOCS[c]}" for c in dict.fromkeys(
        c for e in evaluations for c in e["columns"]) if c in COLUMN_DOCS]
    return "\n".join(lines) + "\n"


def write_comparison(
    out_dir: Any, evaluations: Sequence[dict[str, Any]], *, labels: Sequence[str] | None = None
) -> Path:
    """Write :func:`comparison_report` to ``out_dir/compare.md`` (the folder is created)."""
    folder = Path(out_dir).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MusicRLError(f"cannot create folder {str(folder)!r}: {e.strerror or e}") from None
    path = folder / COMPARISON_FILE
    _write_text(path, comparison_report(evaluations, labels=labels))
    return path
