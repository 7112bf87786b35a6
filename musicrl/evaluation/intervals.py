"""95 % intervals for the evaluation's figures: pure functions.

* :func:`wilson_interval`: the Wilson score interval of a binomial
  proportion (Wilson 1927), for accuracies: ``k`` clips told apart
  correctly out of ``n`` scored. Unlike the normal approximation it stays
  inside [0, 1] and is not empty at ``k = 0`` or ``k = n``.
* :func:`bootstrap_interval`: the percentile bootstrap (Efron & Tibshirani
  1993) of any statistic of a sample, for measures of a set of pieces:
  the pieces are drawn again with replacement, the statistic recomputed,
  and the interval is the central ``level`` share of those values.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from scipy import stats

from ..errors import MusicRLError
from .checks import check_int

__all__ = ["Z_95", "bootstrap_interval", "half_width", "wilson_interval"]

Z_95 = float(stats.norm.ppf(0.975))
"""The standard normal quantile of a two-sided 95 % interval (1.95996...)."""


def wilson_interval(k: float, n: int, *, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n``.

    Parameters
    ----------
    k : float
        Successes, ``0 <= k <= n`` (a non-integer count, e.g. an accuracy
        times ``n``, is accepted as is).
    n : int
        Trials (clips scored); 0 gives ``(nan, nan)``.
    z : float
        Normal quantile of the level (default :data:`Z_95`, a 95 % interval).

    Returns
    -------
    (low, high) : tuple of float
        Bounds in [0, 1].
    """
    n = check_int(n, "n", 0)
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)) or not 0 <= k <= n:
        raise MusicRLError(f"k must be a number in [0, n] = [0, {n}], got {k!r}")
    if isinstance(z, bool) or not isinstance(z, (int, float, np.floating)) or not z > 0:
        raise MusicRLError(f"z must be a number > 0, got {z!r}")
    if n == 0:
        return float("nan"), float("nan")
    p = float(k) / n
    z2 = float(z) ** 2
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # exact ends at k = 0 and k = n, where rounding would leave a bound a hair inside
    low = 0.0 if k == 0 else max(0.0, center - spread)
    high = 1.0 if k == n else min(1.0, center + spread)
    return low, high


def bootstrap_interval(
    values: Any,
    statistic: Callable[[np.ndarray], Any],
    *,
    n_resamples: int,
    rng: np.random.Generator,
    level: float = 0.95,
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Percentile bootstrap interval of ``statistic(values)`` over the rows of ``values``.

    Parameters
    ----------
    values : array-like, shape=(n, ...), or tuple of them
        The sample: one row per unit drawn (e.g. a piece, or a piece's index
        into a set). A tuple holds independent samples (e.g. a generated
        set and the reference it is compared with), each drawn again from
        its own rows.
    statistic : callable
        Maps a resample, shape ``(n, ...)`` (a tuple of them for a tuple of
        samples), to a float or to an array of shape ``(m,)`` (several
        statistics of one resample, which then share their draws).
    n_resamples : int
        Resamples drawn (at least 2).
    rng : np.random.Generator
        Randomness of the draws.
    level : float
        Coverage, in (0, 1).

    Returns
    -------
    (low, high) : tuple of float, or of np.ndarray of shape (m,)
        The ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
        resampled statistics, NaN ignored (NaN where every resample is NaN;
        a float pair for an empty sample).
    """
    samples = [np.asarray(v) for v in values] if isinstance(values, tuple) else [np.asarray(values)]
    n_resamples = check_int(n_resamples, "n_resamples", 2)
    if not isinstance(rng, np.random.Generator):
        raise MusicRLError(f"rng must be a np.random.Generator, got {type(rng).__name__}")
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0 < level < 1:
        raise MusicRLError(f"level must be a number in (0, 1), got {level!r}")
    if any(x.ndim == 0 for x in samples):
        raise MusicRLError(f"values must have one row per unit, got a scalar in {values!r}")
    if any(len(x) == 0 for x in samples):
        return float("nan"), float("nan")
    draws = [rng.integers(0, len(x), size=(n_resamples, len(x))) for x in samples]

    def resample(b: int) -> Any:
        drawn = tuple(x[d[b]] for x, d in zip(samples, draws))
        return drawn if isinstance(values, tuple) else drawn[0]

    resampled = np.array([np.asarray(statistic(resample(b)), dtype=np.float64) for b in range(n_resamples)])
    tails = [(1 - level) / 2, (1 + level) / 2]
    with np.errstate(all="ignore"):
        ok = ~np.isnan(resampled).all(axis=0)
        bounds = np.full((2,) + resampled.shape[1:], np.nan)
        if np.ndim(ok) == 0:
            if ok:
                bounds = np.nanquantile(resampled, tails, axis=0)
        elif ok.any():
            bounds[:, ok] = np.nanquantile(resampled[:, ok], tails, axis=0)
    if bounds.ndim == 1:
        return float(bounds[0]), float(bounds[1])
    return bounds[0], bounds[1]


def half_width(interval: Any) -> float:
    """Half the width of an interval ``(low, high)``; NaN when it is missing or not finite."""
    try:
        low, high = (float(v) for v in interval)
    except (TypeError, ValueError):
        return float("nan")
    return (high - low) / 2 if math.isfinite(low) and math.isfinite(high) else float("nan")
