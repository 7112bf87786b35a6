"""MGEval (Yang & Lerch 2018, "On the evaluation of generative models in music"): pure functions.

For each per-piece feature, the distances between the pieces of one set
(*intra-set*) and between the pieces of two sets (*inter-set*) form
distributions; their kernel density estimates are compared by the
Kullback-Leibler divergence and the overlapping area. When the generated set
is like the real one, the inter-set distances look like the real set's
intra-set distances: KL near 0, overlap near 1.

The per-piece features (:data:`PIECE_FEATURES`) come from
:mod:`musicrl.music.metrics`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np
from scipy import stats
from scipy.signal import fftconvolve

from ..errors import MusicRLError
from ..music import metrics
from ..music.vectorize import check_seqs
from ..seeding import as_rng
from .checks import check_int

__all__ = [
    "PIECE_FEATURES",
    "KDEComparison",
    "inter_set_distances",
    "intra_set_distances",
    "kde_compare",
    "mgeval_compare",
    "nanmean",
    "piece_features",
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


def _check_max_pairs(max_pairs: int | None) -> int | None:
    return None if max_pairs is None else check_int(max_pairs, "max_pairs", 1)


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
    check_int(n_grid, "n_grid", 16)
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
    check_int(max_pairs, "max_pairs", 1)
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
            "intra_gen": nanmean(d_gen),
            "intra_real": nanmean(d_real),
            "inter": nanmean(d_inter),
        }
        if gen[name].ndim == 1:
            row.update(
                gen_mean=nanmean(gen[name]), gen_std=_nanstd(gen[name]),
                real_mean=nanmean(real[name]), real_std=_nanstd(real[name]),
            )
        out[name] = row
    return out


def nanmean(x: Any) -> float:
    """Mean of the values that are not NaN; NaN when there are none."""
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def _nanstd(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.std()) if x.size else float("nan")
