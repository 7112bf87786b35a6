"""Where a policy stands against another's quality-diversity curve.

Sampling colder buys quality with diversity, so one point of a generator says
little: a critic that only made the policy colder has done what the
temperature does for free (Caccia et al., "Language GANs falling short",
2020). A control policy sampled over temperatures draws a curve in the plane
of a diversity measure (x) and a quality measure (y); a point of the other
policy is judged against that curve at its own diversity:

* the curve is the control's points, sorted by diversity, joined by straight
  lines, and read at the point's diversity (no extrapolation: a point more or
  less diverse than every point of the curve is ``outside``);
* the gap is the point's quality minus the curve's there, signed so that
  positive is better;
* the margin is the two 95 % half-widths added in quadrature, the curve's
  read off the same straight lines; the point is ``above`` (``below``) when
  the gap clears the margin, else ``on`` the curve.

Runs of two policies with the same seed share much (the data split and the
pretrained policy), so their difference varies less from seed to seed than
either does. :func:`paired_gap_to_curve` judges each run's point against the
curve of the control's run with the same seed and the mean of those gaps
against its own spread, which cancels what the seeds share.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from ..errors import MusicRLError
from .sweep import mean_interval

__all__ = ["CurveGap", "PairedGap", "gap_to_curve", "paired_gap_to_curve"]


class CurveGap(NamedTuple):
    """A point's distance to a curve at its diversity (see the module docs)."""

    gap: float
    """Quality of the point minus the curve's, positive = better (NaN when ``outside``)."""
    margin: float
    """95 % half-width of the gap (NaN when ``outside``)."""
    verdict: str
    """'above', 'on', 'below' or 'outside'."""


class PairedGap(NamedTuple):
    """The mean of the runs' gaps, each run's point against the curve of its paired control run."""

    mean: CurveGap
    """Mean gap over the runs, its 95 % half-width and the verdict ('outside' when any run's point is)."""
    runs: tuple[CurveGap, ...]
    """Each run's own gap to its control run's curve."""


def _vector(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or len(arr) < 2:
        raise MusicRLError(f"{name} must be a sequence of at least 2 numbers, got shape {arr.shape}")
    return arr


def _verdict(gap: float, margin: float) -> str:
    """'above' or 'below' when the gap clears its margin, else 'on'."""
    return "above" if gap > margin else "below" if gap < -margin else "on"


def gap_to_curve(
    curve_x: Sequence[float],
    curve_y: Sequence[float],
    curve_hw: Sequence[float],
    x: float,
    y: float,
    hw: float,
    *,
    higher_is_better: bool = True,
) -> CurveGap:
    """How far a point lies above a curve at its own x, and whether that clears the noise.

    Parameters
    ----------
    curve_x, curve_y : sequence of float, shape=(k,), k >= 2
        The curve's points: diversity and quality, in any order (sorted by
        ``curve_x`` here); points with a NaN are left out.
    curve_hw : sequence of float, shape=(k,)
        95 % half-width of each ``curve_y`` (NaN counts as 0).
    x, y, hw : float
        The point's diversity, quality and the quality's 95 % half-width.
    higher_is_better : bool
        False for a quality measure where lower is better (a classifier's
        accuracy at telling the set from real music).

    Returns
    -------
    CurveGap
    """
    cx, cy, chw = (_vector(v, n) for v, n in ((curve_x, "curve_x"), (curve_y, "curve_y"), (curve_hw, "curve_hw")))
    if not len(cx) == len(cy) == len(chw):
        raise MusicRLError(f"curve_x, curve_y and curve_hw must have one length, got {len(cx)}, {len(cy)}, {len(chw)}")
    ok = np.isfinite(cx) & np.isfinite(cy)
    cx, cy, chw = cx[ok], cy[ok], np.nan_to_num(chw[ok])
    if len(cx) < 2 or not (math.isfinite(x) and math.isfinite(y)) or not cx.min() <= x <= cx.max():
        return CurveGap(math.nan, math.nan, "outside")
    order = np.argsort(cx, kind="stable")
    cx, cy, chw = cx[order], cy[order], chw[order]
    curve_at_x = float(np.interp(x, cx, cy))
    gap = (y - curve_at_x) * (1.0 if higher_is_better else -1.0)
    margin = math.hypot(0.0 if not math.isfinite(hw) else hw, float(np.interp(x, cx, chw)))
    return CurveGap(float(gap), float(margin), _verdict(gap, margin))


def paired_gap_to_curve(
    curve_x: Sequence[Sequence[float]],
    curve_y: Sequence[Sequence[float]],
    curve_hw: Sequence[Sequence[float]],
    x: Sequence[float],
    y: Sequence[float],
    hw: Sequence[float],
    *,
    higher_is_better: bool = True,
) -> PairedGap:
    """How far a policy's runs lie above the curves of the control's runs, run ``i`` against run ``i``.

    Each run's gap is :func:`gap_to_curve` of its point against its paired
    control run's curve; the verdict is on their mean. Its 95 % half-width
    is :func:`musicrl.evaluation.sweep.mean_interval` of the gaps: Student's
    ``t`` on the spread of the gaps over the runs (what the paired seeds do
    not share) in quadrature with the runs' root-mean-square margin over
    ``sqrt(k)`` (each gap's own evaluation noise).

    Parameters
    ----------
    curve_x, curve_y, curve_hw : sequence of sequence of float, shape=(k, t), t >= 2
        Per control run, its curve as in :func:`gap_to_curve`: diversity,
        quality and the quality's 95 % half-width over the temperatures.
    x, y, hw : sequence of float, shape=(k,)
        Per run of the policy, its point: diversity, quality and the
        quality's 95 % half-width.
    higher_is_better : bool
        False for a quality measure where lower is better.

    Returns
    -------
    PairedGap
        ``mean`` is ``outside`` (NaN gap and margin) when any run's point is
        outside its control run's curve: the mean would leave that run out.

    Raises
    ------
    MusicRLError
        No run, the curves and the points not of one number of runs, or a
        curve that :func:`gap_to_curve` refuses.
    """
    counts = [len(v) for v in (curve_x, curve_y, curve_hw, x, y, hw)]
    if len(set(counts)) != 1 or counts[0] == 0:
        raise MusicRLError(f"one curve per point, at least one run: curve_x, curve_y, curve_hw, x, y and hw "
                           f"hold {', '.join(map(str, counts))} runs")
    runs = tuple(gap_to_curve(*run, higher_is_better=higher_is_better)
                 for run in zip(curve_x, curve_y, curve_hw, x, y, hw))
    if any(g.verdict == "outside" for g in runs):
        return PairedGap(CurveGap(math.nan, math.nan, "outside"), runs)
    gap = float(np.mean([g.gap for g in runs]))
    margin = mean_interval([g.gap for g in runs], [g.margin for g in runs])
    return PairedGap(CurveGap(gap, margin, _verdict(gap, margin)), runs)
