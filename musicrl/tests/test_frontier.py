import math

import numpy as np
import pytest

from musicrl.errors import MusicRLError
from musicrl.evaluation.frontier import gap_to_curve

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
