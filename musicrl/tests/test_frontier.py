import math

import numpy as np
import pytest

from musicrl.errors import MusicRLError
from scipy import stats

from musicrl.evaluation.frontier import gap_to_curve, paired_gap_to_curve
from musicrl.evaluation.sweep import mean_interval

# a control that gets 0.1 better in quality for every 0.1 less diversity (colder sampling)
CURVE_X = [0.9, 0.5, 0.7, 0.3]
CURVE_Y = [0.6, 0.8, 0.7, 0.9]
CURVE_HW = [0.02, 0.02, 0.02, 0.02]


@pytest.mark.parametrize("y, verdict", [(0.80, "above"), (0.75, "on"), (0.72, "on"), (0.70, "below")])
def test_a_point_is_judged_at_its_own_diversity(y, verdict):
    # at x = 0.6 the curve is 0.75 (halfway from 0.7 to 0.8), whatever order its points came in
    got = gap_to_curve(CURVE_X, CURVE_Y, CURVE_HW, 0.6, y, 0.03)
    assert got.gap == pytest.approx(y - 0.75, abs=1e-12)
    assert got.margin == pytest.approx(math.hypot(0.03, 0.02), abs=1e-12)
    assert got.verdict == verdict


def test_lower_is_better_flips_the_sign():
    got = gap_to_curve(CURVE_X, CURVE_Y, CURVE_HW, 0.6, 0.65, 0.01, higher_is_better=False)
    assert got.gap == pytest.approx(0.10, abs=1e-12) and got.verdict == "above"


def test_the_curves_noise_is_read_off_the_same_lines():
    got = gap_to_curve([0.0, 1.0], [0.0, 0.0], [0.0, 0.2], 0.5, 0.05, 0.0)
    assert got.margin == pytest.approx(0.1, abs=1e-12) and got.verdict == "on"


@pytest.mark.parametrize("x", [0.29, 0.91, float("nan")])
def test_no_extrapolation_outside_the_curve(x):
    got = gap_to_curve(CURVE_X, CURVE_Y, CURVE_HW, x, 0.99, 0.0)
    assert got.verdict == "outside" and math.isnan(got.gap) and math.isnan(got.margin)


def test_points_of_the_curve_with_nan_are_left_out():
    got = gap_to_curve([0.0, 0.5, 1.0], [0.0, np.nan, 1.0], [0.0, 0.0, np.nan], 0.5, 0.5, 0.0)
    assert got.gap == pytest.approx(0.0, abs=1e-12) and got.verdict == "on"


@pytest.mark.parametrize("args, message", [
    (([0.5], [0.5], [0.0]), "at least 2"),
    (([0.1, 0.2], [0.5, 0.6], [0.0, 0.0, 0.0]), "one length"),
    (([[0.1, 0.2]], [0.5, 0.6], [0.0, 0.0]), "curve_x"),
])
def test_bad_curves_raise(args, message):
    with pytest.raises(MusicRLError, match=message):
        gap_to_curve(*args, 0.1, 0.5, 0.0)


# three control runs: the curve above, each seed's shifted up or down in quality by what the seed gives
SEED_SHIFTS = [-0.1, 0.0, 0.1]


def _paired_runs(offsets, point_x=0.6, hw=0.01):
    """Per seed: its control run's curve and a point that many above it at ``point_x`` (the curve is 0.75 there)."""
    curves_y = [[v + s for v in CURVE_Y] for s in SEED_SHIFTS]
    return ([CURVE_X] * 3, curves_y, [[hw] * 4] * 3,
            [point_x] * 3, [0.75 + s + o for s, o in zip(SEED_SHIFTS, offsets)], [hw] * 3)


@pytest.mark.parametrize("offsets, higher, verdict", [
    ((0.03, 0.035, 0.025), True, "above"),
    ((-0.03, -0.035, -0.025), True, "below"),
    ((0.03, 0.035, 0.025), False, "below"),
    ((0.002, -0.004, 0.001), True, "on"),
])
def test_paired_gaps_are_judged_on_their_mean(offsets, higher, verdict):
    got = paired_gap_to_curve(*_paired_runs(offsets), higher_is_better=higher)
    sign = 1.0 if higher else -1.0
    assert [g.gap for g in got.runs] == pytest.approx([sign * o for o in offsets], abs=1e-12)
    assert got.mean.gap == pytest.approx(sign * np.mean(offsets), abs=1e-12)
    # Student's t on the gaps' spread, in quadrature with the runs' margin over sqrt(k)
    spread = stats.t.ppf(0.975, 2) * np.std(offsets, ddof=1) / math.sqrt(3)
    assert got.mean.margin == pytest.approx(math.hypot(spread, math.hypot(0.01, 0.01) / math.sqrt(3)), abs=1e-12)
    assert got.mean.verdict == verdict


def test_pairing_cancels_what_the_seeds_share():
    curve_x, curve_y, curve_hw, x, y, hw = _paired_runs((0.03, 0.035, 0.025))
    # unpaired: the point and the curve are means over the runs, each with the seeds' spread in its margin
    mean_curve = [(np.mean(c), mean_interval(c, h)) for c, h in zip(zip(*curve_y), zip(*curve_hw))]
    unpaired = gap_to_curve(CURVE_X, [m for m, _ in mean_curve], [h for _, h in mean_curve],
                            float(np.mean(x)), float(np.mean(y)), mean_interval(y, hw))
    assert unpaired.verdict == "on"
    assert paired_gap_to_curve(curve_x, curve_y, curve_hw, x, y, hw).mean.verdict == "above"


def test_one_run_is_its_own_gap():
    got = paired_gap_to_curve([CURVE_X], [CURVE_Y], [CURVE_HW], [0.6], [0.8], [0.03])
    assert got.mean == gap_to_curve(CURVE_X, CURVE_Y, CURVE_HW, 0.6, 0.8, 0.03)


def test_a_run_outside_its_curve_makes_the_mean_outside():
    curve_x, curve_y, curve_hw, x, y, hw = _paired_runs((0.03, 0.035, 0.025))
    x[1] = 0.95
    got = paired_gap_to_curve(curve_x, curve_y, curve_hw, x, y, hw)
    assert got.mean.verdict == "outside" and math.isnan(got.mean.gap) and math.isnan(got.mean.margin)
    assert [g.verdict for g in got.runs] == ["above", "outside", "above"]


@pytest.mark.parametrize("drop", [0, 3, 5])
def test_paired_runs_must_match_in_number(drop):
    args = list(_paired_runs((0.0, 0.0, 0.0)))
    args[drop] = args[drop][:2]
    with pytest.raises(MusicRLError, match="2, 3|3, 2"):
        paired_gap_to_curve(*args)


def test_paired_needs_a_run():
    with pytest.raises(MusicRLError, match="at least one run"):
        paired_gap_to_curve([], [], [], [], [], [])
