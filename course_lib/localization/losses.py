r"""The localization losses: :func:`multitask_loss` (:math:`L_\text{cls} + \alpha L_\text{box}`, cross-entropy +
MSE or smooth L1) and :func:`quick_loss` (sigmoids and binary cross-entropy on both heads)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .._checks import as_tensor, check_choice, check_nonnegative, check_positive, describe
from .._types import Boxes
from ..boxes import xyhw_to_xyxy
from ._args import check_box_pair, check_labels

__all__ = ["MultitaskLoss", "multitask_loss", "quick_loss"]


class MultitaskLoss(NamedTuple):
    """The total loss and its two parts (all scalar tensors; only ``total`` needs ``backward``)."""

    total: torch.Tensor
    classification: torch.Tensor
    box: torch.Tensor


def multitask_loss(
    class_logits: torch.Tensor,
    box_pred: torch.Tensor,
    labels: torch.Tensor,
    boxes: Boxes,
    alpha: float = 1.0,
    box_loss: str = "mse",
    beta: float = 0.1,
) -> MultitaskLoss:
    r"""Classification + localization loss :math:`L = L_\text{cls} + \alpha \, L_\text{box}`.

    For a batch of :math:`N` images with class logits :math:`z_n \in \mathbb{R}^C`, true classes
    :math:`y_n`, predicted boxes :math:`\hat b_n \in \mathbb{R}^4` and true boxes :math:`b_n`:

    .. math::

        L_\text{cls} = -\frac{1}{N} \sum_{n=1}^{N} \log \frac{e^{z_{n, y_n}}}{\sum_{c=1}^{C} e^{z_{n, c}}},
        \qquad
        L_\text{box} = \frac{1}{4N} \sum_{n=1}^{N} \sum_{k=1}^{4} \big(\hat b_{nk} - b_{nk}\big)^2 .

    With ``box_loss="smooth_l1"`` the square is replaced by the smooth :math:`L_1` of Fast R-CNN
    (Girshick, ICCV 2015), quadratic near zero and linear beyond :math:`\beta`, so that a few very wrong
    boxes do not dominate the gradient:

    .. math::

        \ell_\beta(d) = \begin{cases} \tfrac{1}{2} d^2 / \beta & |d| < \beta \\
        |d| - \tfrac{1}{2}\beta & \text{otherwise.} \end{cases}

    Girshick uses :math:`\beta = 1` on box offsets of the order of one; normalized coordinates are fractions of
    the image, where :math:`\beta = 1` would make smooth :math:`L_1` just half the MSE, hence the default
    :math:`\beta = 0.1`. :math:`\alpha` trades the two tasks: both losses are averages, but their scales differ
    (cross-entropy starts near :math:`\log C`, box MSE near a few hundredths).

    Args:
        class_logits: ``(N, C)`` raw class scores (no softmax).
        box_pred: ``(N, 4)`` predicted ``(x, y, h, w)`` (any real values).
        labels: ``(N,)`` integer classes in ``[0, C)``.
        boxes: ``(N, 4)`` true normalized ``(x, y, h, w)`` with ``h, w > 0``.
        alpha: weight :math:`\alpha \ge 0` of the box loss.
        box_loss: ``"mse"`` or ``"smooth_l1"``.
        beta: :math:`\beta > 0` of smooth :math:`L_1` (ignored for MSE).

    Returns:
        :class:`MultitaskLoss` ``(total, classification, box)``.

    Example:
        >>> logits = torch.tensor([[2.0, 0.0]]); pred = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
        >>> loss = multitask_loss(logits, pred, torch.tensor([0]), torch.tensor([[0.5, 0.5, 0.2, 0.4]]), alpha=2)
        >>> round(loss.box.item(), 4), round(loss.total.item(), 4)  # 0.2**2 / 4 = 0.01; 0.1269 + 2 * 0.01
        (0.01, 0.1469)
    """
    z = as_tensor(class_logits, "class_logits")
    if z.ndim != 2 or z.shape[0] == 0:
        raise ValueError(f"class_logits must be (N, C) with N >= 1, got {describe(z)}")
    if not z.is_floating_point():
        raise TypeError(f"class_logits must have a floating-point dtype, got {describe(z)}")
    if not bool(torch.isfinite(z).all()):
        raise ValueError("class_logits contains NaN or infinite values; expected finite numbers")
    p, b = check_box_pair(box_pred, boxes, "box_pred")
    if p.shape[0] != z.shape[0]:
        raise ValueError(f"box_pred must have {z.shape[0]} rows like class_logits, got {describe(p)}")
    y = check_labels(labels, "labels", z.shape[0], z.device)
    if bool(((y < 0) | (y >= z.shape[1])).any()):
        raise ValueError(f"labels must be class indices in [0, {z.shape[1]}), got values {sorted(set(y.tolist()))}")
    alpha = check_nonnegative(alpha, "alpha")
    check_choice(box_loss, "box_loss", ("mse", "smooth_l1"))
    beta = check_positive(beta, "beta")
    l_cls = F.cross_entropy(z, y)
    l_box = F.mse_loss(p, b) if box_loss == "mse" else F.smooth_l1_loss(p, b, beta=beta)
    return MultitaskLoss(l_cls + alpha * l_box, l_cls, l_box)


def quick_loss(class_logit: torch.Tensor, box_logits: torch.Tensor, labels: torch.Tensor, boxes: Boxes,
               alpha: float = 1.0) -> MultitaskLoss:
    r"""The "quick and dirty" localization loss: sigmoids and binary cross-entropy for both heads.

    One output :math:`s_n` gives the probability :math:`p_n = \sigma(s_n)` of the positive class
    (:math:`y_n \in \{0, 1\}`), four outputs :math:`t_{nk}` give the box :math:`\hat b_{nk} = \sigma(t_{nk})`,
    which lies in :math:`(0, 1)` like a normalized coordinate. Both are scored with the binary cross-entropy
    :math:`\mathrm{BCE}(p, t) = -t \log p - (1 - t) \log(1 - p)`:

    .. math::

        L = \frac{1}{N} \sum_{n} \mathrm{BCE}(p_n, y_n)
            + \alpha \frac{1}{4N} \sum_{n, k} \mathrm{BCE}(\hat b_{nk}, b_{nk}).

    For a target :math:`t \in [0, 1]` the BCE is smallest exactly at :math:`p = t`, so the box term is a valid
    regression loss. It is computed from the logits (:func:`torch.nn.functional.binary_cross_entropy_with_logits`),
    which is exact where :math:`\sigma` saturates. Its two limits are checked here:

    * one sigmoid separates **two** classes only — labels other than 0 and 1 are rejected;
    * a sigmoid never leaves :math:`(0, 1)` — a box whose centre is outside the image, or that is larger than
      the image, cannot be predicted, and BCE with a target outside :math:`[0, 1]` is unbounded below;
      such targets are rejected.

    Args:
        class_logit: ``(N,)`` (or ``(N, 1)``) logit of the positive class.
        box_logits: ``(N, 4)`` box logits.
        labels: ``(N,)`` 0/1 labels (integer, bool or float).
        boxes: ``(N, 4)`` true ``(x, y, h, w)`` in ``[0, 1]``.
        alpha: weight of the box term (the course's Keras version sums the two: :math:`\alpha = 1`).

    Returns:
        :class:`MultitaskLoss` ``(total, classification, box)``.

    Example:
        >>> loss = quick_loss(torch.zeros(1), torch.zeros(1, 4), torch.tensor([1]), torch.full((1, 4), 0.5))
        >>> round(loss.classification.item(), 4), round(loss.box.item(), 4)  # both log 2
        (0.6931, 0.6931)
    """
    s = as_tensor(class_logit, "class_logit")
    if s.ndim == 2 and s.shape[1] == 1:
        s = s[:, 0]
    if s.ndim != 1 or s.shape[0] == 0:
        hint = " (one sigmoid output: binary classification only)" if s.ndim == 2 else ""
        raise ValueError(f"class_logit must be (N,) or (N, 1){hint}, got {describe(s)}")
    if not s.is_floating_point() or not bool(torch.isfinite(s).all()):
        raise ValueError(f"class_logit must be finite floating-point logits, got {describe(s)}")
    t, b = check_box_pair(box_logits, boxes, "box_logits")
    if t.shape[0] != s.shape[0]:
        raise ValueError(f"box_logits must have {s.shape[0]} rows like class_logit, got {describe(t)}")
    y = as_tensor(labels, "labels")
    if y.shape != s.shape:
        raise ValueError(f"labels must have shape ({s.shape[0]},) to match the batch, got {describe(y)}")
    values = torch.unique(y.detach()).tolist()
    if any(v not in (0, 1) for v in values):
        raise ValueError(
            f"labels must be 0 or 1: the quick-and-dirty variant has one sigmoid output and separates two "
            f"classes only, got values {values}; use multitask_loss with a softmax head for several classes"
        )
    corners = xyhw_to_xyxy(b)
    out_of_range = ((b < 0) | (b > 1)).any(-1)
    if bool(out_of_range.any()):
        first = b[out_of_range][0].tolist()
        raise ValueError(
            f"boxes must lie in [0, 1]: sigmoid outputs cannot reach a box with its centre outside the image or "
            f"larger than it, and BCE with such a target has no minimum; {int(out_of_range.sum())} box(es) do not, "
            f"the first is {[round(v, 4) for v in first]} (corners {[round(v, 4) for v in corners[out_of_range][0].tolist()]})"
        )
    alpha = check_nonnegative(alpha, "alpha")
    l_cls = F.binary_cross_entropy_with_logits(s, y.to(device=s.device, dtype=s.dtype))
    l_box = F.binary_cross_entropy_with_logits(t, b)
    return MultitaskLoss(l_cls + alpha * l_box, l_cls, l_box)
