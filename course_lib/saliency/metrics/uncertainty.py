r"""Uncertainty of a per-image metric: the percentile bootstrap interval of its mean (Efron, 1979)."""

from __future__ import annotations

import numpy as np
import torch

from ..._checks import check_int, check_probability, generator

__all__ = ["bootstrap_interval"]


def bootstrap_interval(
    values, confidence: float = 0.95, *, n_resamples: int = 2000, seed: int | torch.Generator = 0
) -> tuple[float, float, float]:
    r"""The mean of per-image values and its percentile bootstrap interval (Efron, 1979).

    Draw :math:`B` = ``n_resamples`` samples of the :math:`n` values with replacement, take the mean
    :math:`\bar v^{*b}` of each, and return the empirical :math:`\alpha/2` and :math:`1-\alpha/2` quantiles
    of the :math:`\bar v^{*b}` (:math:`1 - \alpha` = ``confidence``), next to the mean of the values:

    .. math::

        \Big[\, q_{\alpha/2}\big(\bar v^{*1}, \dots, \bar v^{*B}\big),\;
              q_{1-\alpha/2}\big(\bar v^{*1}, \dots, \bar v^{*B}\big) \Big].

    The interval says how much the mean would move with another draw of images from the same distribution;
    for a *comparison* of two methods on the same images, pass the paired differences (``a - b``), whose
    interval excludes 0 when the difference is larger than the image-to-image noise.

    Args:
        values: per-image values, a 1-D tensor, array or sequence (bools count as 0/1), at least 2 of them.
        confidence: the interval's coverage, in (0, 1).
        n_resamples: :math:`B`.
        seed: an int or a CPU ``torch.Generator`` (the same int gives the same interval).

    Returns:
        ``(mean, low, high)`` as Python floats.

    Example:
        >>> mean, low, high = bootstrap_interval(torch.tensor([0.0, 1.0] * 50))
        >>> mean, 0.38 < low < 0.45, 0.55 < high < 0.62
        (0.5, True, True)
    """
    v = torch.as_tensor(np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values))
    if v.ndim != 1 or v.numel() < 2:
        raise ValueError(f"values must be 1-D with at least 2 entries, got shape {tuple(v.shape)}")
    v = v.to(torch.float64)
    if not torch.isfinite(v).all():
        raise ValueError("values must be finite")
    confidence = check_probability(confidence, "confidence", open_interval=True)
    n_resamples = check_int(n_resamples, "n_resamples", minimum=1)
    g = generator(seed)
    idx = torch.randint(v.numel(), (n_resamples, v.numel()), generator=g)
    means = v[idx].mean(1)
    alpha = 1 - confidence
    low, high = torch.quantile(means, torch.tensor([alpha / 2, 1 - alpha / 2], dtype=torch.float64))
    return float(v.mean()), float(low), float(high)
