"""course_lib.book: the interval helpers the chapters' verdicts rest on, checked against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from course_lib.book import interval_sign, mean_ci, paired_ci, verdict


def test_mean_ci_matches_scipy_t_interval():
    v = np.random.default_rng(0).normal(0.3, 1.0, 40)
    mean, lo, hi = mean_ci(v)
    want = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    assert mean == pytest.approx(v.mean())
    assert (lo, hi) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("shift", [-0.6, -0.2, 0.0, 0.1, 0.5])
def test_sign_agrees_with_the_paired_t_test(shift):
    """The interval excludes zero exactly when scipy's two-sided paired t-test rejects at 5 %."""
    rng = np.random.default_rng(int(abs(shift) * 10))
    b = rng.normal(size=60)
    a = b + shift + rng.normal(0, 1.0, 60)
    ci = paired_ci(a, b)
    p = stats.ttest_rel(a, b).pvalue
    sign = interval_sign(ci)
    assert (sign != "0") == (p < 0.05)
    if sign != "0":
        assert sign == ("+" if a.mean() > b.mean() else "-")


def test_verdict_words_and_the_item_rule():
    assert verdict((0.2, 0.1, 0.3), "better than", "worse than") == "better than"
    assert verdict((-0.2, -0.3, -0.1), "better than", "worse than") == "worse than"
    assert verdict((0.0, -0.1, 0.1), "better than", "worse than") == "within noise of"
    # a clear interval over too few items is not a ranking
    assert verdict((0.2, 0.1, 0.3), "better than", "worse than", n=49) == "not ranked (too few items) against"
    assert verdict((0.2, 0.1, 0.3), "better than", "worse than", n=3, min_items=3) == "better than"


@pytest.mark.parametrize("bad, error", [((0.1, 0.2), TypeError), ((0.0, 0.3, 0.1), ValueError), (0.5, TypeError)])
def test_interval_sign_rejects_bad_intervals(bad, error):
    with pytest.raises(error, match="ci must"):
        interval_sign(bad)
