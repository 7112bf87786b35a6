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
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from ..errors import MusicRLError

__all__ = ["CurveGap", "gap_to_curve"]


class CurveGap(NamedTuple):
    """A point's distance to a curve at its diversity (see the module docs)."""

    gap: float
    """Quality of the point minus the curve's, positive = better (NaN when ``outside``)."""
    margin: float
    """95 % half-width of the gap (NaN when ``outside``)."""
    verdict: str
    """'above', 'on', 'below' or 'outside'."""


def _vector(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or len(arr) < 2:
        raise MusicRLError(f"{name} must be a sequence of at least 2 numbers, got shape {arr.shape}")
    return arr


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
    verdict = "above" if gap > margin else "below" if gap < -margin else "on"
    return CurveGap(float(gap), float(margin), verdict)
