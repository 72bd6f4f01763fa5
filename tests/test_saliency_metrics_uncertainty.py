"""Bootstrap intervals (course_lib.saliency.metrics.uncertainty) against scipy and the normal approximation."""


from __future__ import annotations

import pytest
import torch


# ---------------------------------------------------------------------- bootstrap
def test_bootstrap_interval_matches_scipy_and_the_normal_approximation():
    import numpy as np
    from scipy.stats import bootstrap

    from course_lib.saliency.metrics import bootstrap_interval

    values = torch.randn(400, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 + 1
    mean, low, high = bootstrap_interval(values, 0.95, n_resamples=4000, seed=1)
    assert mean == pytest.approx(float(values.mean()), abs=1e-12)
    ref = bootstrap((values.numpy(),), np.mean, confidence_level=0.95, n_resamples=4000, method="percentile",
                    random_state=0).confidence_interval
    # two independent bootstrap runs of B = 4000: their quantiles differ by a few % of the interval's width
    half = 1.96 * float(values.std()) / 400**0.5
    assert low == pytest.approx(ref.low, abs=0.1 * half) and high == pytest.approx(ref.high, abs=0.1 * half)
    assert low == pytest.approx(mean - half, abs=0.1 * half) and high == pytest.approx(mean + half, abs=0.1 * half)


def test_bootstrap_interval_of_constant_values_and_bools():
    from course_lib.saliency.metrics import bootstrap_interval

    assert bootstrap_interval([0.25] * 10) == (0.25, 0.25, 0.25)
    mean, low, high = bootstrap_interval(torch.tensor([True, False, False, False] * 25))
    assert mean == 0.25 and low < 0.25 < high
    assert bootstrap_interval(torch.arange(20.0), seed=3) == bootstrap_interval(torch.arange(20.0), seed=3)


@pytest.mark.parametrize("bad, match", [([1.0], "at least 2"), ([[1.0, 2.0]], "1-D"), ([1.0, float("nan")], "finite")])
def test_bootstrap_interval_rejects_bad_values(bad, match):
    from course_lib.saliency.metrics import bootstrap_interval

    with pytest.raises(ValueError, match=match):
        bootstrap_interval(bad)


def test_bootstrap_interval_rejects_bad_confidence():
    from course_lib.saliency.metrics import bootstrap_interval

    with pytest.raises(ValueError, match="confidence"):
        bootstrap_interval([1.0, 2.0], confidence=1.0)
