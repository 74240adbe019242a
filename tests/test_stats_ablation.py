"""hyperleaf.stats, the ablation's tests: the exact sign test against scipy's binomial test,
t intervals against scipy, and the paired hierarchical bootstrap against closed forms and an
exact enumeration of its seed level."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from hyperleaf import stats


@pytest.mark.parametrize("pos,neg,zeros", [(3, 0, 0), (5, 0, 1), (7, 1, 0), (4, 4, 2),
                                           (10, 2, 0), (0, 6, 0), (1, 0, 0)])
def test_sign_test_is_the_exact_binomial_test(pos, neg, zeros):
    d = [0.3] * pos + [-0.2] * neg + [0.0] * zeros
    want = sps.binomtest(pos, pos + neg, 0.5).pvalue
    assert stats.sign_test(d) == pytest.approx(want, rel=1e-12)


def test_sign_test_floor_and_edge_cases():
    assert stats.sign_test([1, 2, 3]) == 0.25      # 3 pairs can never reach 0.05
    assert stats.sign_test([1] * 5) == 2 / 32      # 5 pairs: 0.0625, still not below 0.05
    assert stats.sign_test([1] * 6) == 2 / 64
    assert stats.sign_test([0.0, 0.0]) == 1.0
    with pytest.raises(stats.StatsError, match="NaN"):
        stats.sign_test([1.0, float("nan")])


def test_t_interval_and_paired_t_against_scipy():
    rng = np.random.default_rng(3)
    for k in (2, 5, 9):
        a, b = rng.normal(size=k), rng.normal(size=k)
        ci = stats.t_interval(a - b)
        lo, hi = sps.t.interval(0.95, k - 1, loc=np.mean(a - b), scale=sps.sem(a - b))
        assert (ci.low, ci.high) == pytest.approx((lo, hi), rel=1e-10)
        pt = stats.paired_t(a, b)
        assert pt.p == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-9)
    with pytest.raises(stats.StatsError, match="K >= 2") as info:
        stats.t_interval([1.0])
    assert info.value.key == "seeds"


def _exact_seed_level(means):
    """The bootstrap distribution of the mean of K seed values drawn with replacement,
    enumerated over all K^K equally likely draws."""
    k = len(means)
    return np.array([np.mean([means[i] for i in idx])
                     for idx in itertools.product(range(k), repeat=k)])


def test_bootstrap_seed_level_matches_exact_enumeration():
    # every image of a seed has the same difference: only the seed draw varies
    means = [-1.0, 2.0, 3.0, 0.5]
    diff = np.repeat(np.array(means)[:, None], 6, axis=1)
    b = stats.hierarchical_bootstrap(diff, n_boot=200_000, seed=1)
    exact = _exact_seed_level(means)
    assert b.mean == pytest.approx(np.mean(means), abs=1e-15)
    below, above = np.mean(exact <= 0), np.mean(exact >= 0)
    assert b.p == pytest.approx(2 * min(below, above), abs=4e-3)
    # the percentile bounds sit where the exact distribution crosses 2.5 % / 97.5 %
    assert np.mean(exact < b.low) <= 0.025 + 3e-3 and np.mean(exact <= b.low) >= 0.025 - 3e-3
    assert np.mean(exact > b.high) <= 0.025 + 3e-3 and np.mean(exact >= b.high) >= 0.025 - 3e-3


def test_bootstrap_image_level_matches_the_closed_form_width():
    # identical seeds: a replicate is the mean of K x N independent draws from the N images,
    # so its sd is sigma_pop / sqrt(K N) and the 95 % interval ~ mean +- 1.96 of it
    rng = np.random.default_rng(5)
    v = rng.normal(0.3, 1.0, size=20)
    k = 5
    diff = np.tile(v, (k, 1))
    b = stats.hierarchical_bootstrap(diff, n_boot=40_000, seed=2)
    sd = np.std(v) / math.sqrt(k * v.size)
    assert b.high - b.low == pytest.approx(2 * sps.norm.ppf(0.975) * sd, rel=0.05)
    assert (b.low + b.high) / 2 == pytest.approx(v.mean(), abs=0.1 * sd)
    # ... which the interval over seeds alone cannot see (all seeds equal: zero width)
    assert stats.t_interval(diff.mean(axis=1)).half_width == pytest.approx(0.0, abs=1e-15)


def test_bootstrap_nan_images_are_left_out_and_errors():
    diff = np.array([[1.0, np.nan, 1.0], [2.0, 2.0, np.nan], [3.0, 3.0, 3.0]])
    b = stats.hierarchical_bootstrap(diff, n_boot=500)
    assert b.mean == pytest.approx(2.0)
    assert b.low >= 1.0 and b.high <= 3.0
    with pytest.raises(stats.StatsError, match="no finite"):
        stats.hierarchical_bootstrap([[np.nan, np.nan], [1.0, 1.0]], n_boot=500)
    with pytest.raises(stats.StatsError, match="K seeds >= 2"):
        stats.hierarchical_bootstrap([[1.0, 2.0]], n_boot=500)
    with pytest.raises(stats.StatsError, match="n_boot"):
        stats.hierarchical_bootstrap([[1.0], [2.0]], n_boot=10)
    # deterministic for a seed
    assert (stats.hierarchical_bootstrap(diff, n_boot=500, seed=4)
            == stats.hierarchical_bootstrap(diff, n_boot=500, seed=4))
