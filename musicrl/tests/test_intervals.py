"""Tests of musicrl.evaluation.intervals against textbook values."""

import numpy as np
import pytest

from musicrl.errors import MusicRLError
from musicrl.evaluation.intervals import Z_95, bootstrap_interval, half_width, wilson_interval


@pytest.mark.parametrize(
    "k,n,low,high",
    [
        # Wilson (1927) 95 % bounds, as tabulated by Newcombe (1998) and Agresti & Coull (1998)
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (5, 10, 0.2366, 0.7634),
        (81, 263, 0.2553, 0.3662),
        (0, 1, 0.0, 0.7935),
    ],
)
def test_wilson_interval_matches_textbook_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4)
    assert hi == pytest.approx(high, abs=1e-4)


def test_wilson_interval_ends_exactly_at_zero_and_one():
    assert wilson_interval(0, 24)[0] == 0.0 and wilson_interval(24, 24)[1] == 1.0


def test_wilson_interval_narrows_as_n_grows_and_keeps_the_proportion_inside():
    widths = []
    for n in (10, 100, 1000):
        lo, hi = wilson_interval(0.7 * n, n)
        assert lo < 0.7 < hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    # at large n it is the normal approximation's width
    assert widths[2] == pytest.approx(2 * Z_95 * np.sqrt(0.7 * 0.3 / 1000), rel=0.01)


def test_wilson_interval_of_no_trials_is_nan_and_bad_counts_fail():
    assert np.isnan(wilson_interval(0, 0)).all()
    with pytest.raises(MusicRLError, match="k must be"):
        wilson_interval(11, 10)
    with pytest.raises(MusicRLError, match="n must be"):
        wilson_interval(1, -1)
    with pytest.raises(MusicRLError, match="z must be"):
        wilson_interval(1, 10, z=0)


def test_bootstrap_of_a_mean_matches_the_normal_approximation(rng):
    x = rng.normal(3.0, 2.0, size=2000)
    lo, hi = bootstrap_interval(x, np.mean, n_resamples=2000, rng=np.random.default_rng(1))
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert lo == pytest.approx(x.mean() - Z_95 * se, abs=0.1 * se)
    assert hi == pytest.approx(x.mean() + Z_95 * se, abs=0.1 * se)


def test_bootstrap_of_several_statistics_shares_draws_and_ignores_nan(rng):
    x = rng.normal(size=(500, 2))
    lo, hi = bootstrap_interval(
        x, lambda r: np.array([r[:, 0].mean(), r[:, 1].mean(), np.nan]), n_resamples=300,
        rng=np.random.default_rng(0),
    )
    assert lo.shape == hi.shape == (3,)
    assert np.all(lo[:2] < x.mean(axis=0)) and np.all(x.mean(axis=0) < hi[:2])
    assert np.isnan(lo[2]) and np.isnan(hi[2])


def test_bootstrap_draws_each_sample_of_a_tuple_on_its_own(rng):
    a, b = rng.normal(0.0, 1.0, size=400), np.full(50, 2.0)
    lo, hi = bootstrap_interval((a, b), lambda s: s[0].mean() + s[1].mean(), n_resamples=500,
                                rng=np.random.default_rng(0))
    alone = bootstrap_interval(a, np.mean, n_resamples=500, rng=np.random.default_rng(0))
    # a constant second sample shifts the interval and adds no width
    assert hi - lo == pytest.approx(alone[1] - alone[0], rel=0.15)
    assert lo < a.mean() + 2.0 < hi


def test_bootstrap_is_seeded_and_a_constant_has_no_width():
    x = np.arange(50.0)
    a = bootstrap_interval(x, np.mean, n_resamples=100, rng=np.random.default_rng(5))
    b = bootstrap_interval(x, np.mean, n_resamples=100, rng=np.random.default_rng(5))
    assert a == b
    assert bootstrap_interval(np.ones(20), np.mean, n_resamples=50, rng=np.random.default_rng(0)) == (1.0, 1.0)
    assert np.isnan(bootstrap_interval(np.zeros(0), np.mean, n_resamples=50, rng=np.random.default_rng(0))).all()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_resamples": 1, "rng": np.random.default_rng(0)}, "n_resamples"),
        ({"n_resamples": 10, "rng": 0}, "rng must be"),
        ({"n_resamples": 10, "rng": np.random.default_rng(0), "level": 1.0}, "level"),
    ],
)
def test_bootstrap_rejects_bad_settings(kwargs, match):
    with pytest.raises(MusicRLError, match=match):
        bootstrap_interval(np.arange(5.0), np.mean, **kwargs)


def test_half_width():
    assert half_width((0.2, 0.6)) == pytest.approx(0.2)
    assert np.isnan(half_width(None)) and np.isnan(half_width((np.nan, 1.0)))
