r"""Classification plus localization: boxes, IoU, the multitask loss and a two-head model.

A localizer answers two questions about an image that holds one object: *what* it is (a class among
:math:`C`) and *where* it is (a box). The box is four real numbers, normalized to the image size as in the
course text: the centre :math:`(x, y)`, the height :math:`h` and the width :math:`w`, so that
:math:`(0.5, 0.5, 1, 1)` is the whole image whatever its size in pixels.

* :func:`xyhw_to_xyxy` / :func:`xyxy_to_xyhw` — centre boxes ↔ corners (pixels or fractions).
* :func:`box_iou` (every pair, through :func:`torchvision.ops.box_iou`) and :func:`paired_box_iou`
  (box *i* of one set against box *i* of the other), :func:`clip_boxes_to_image`.
* :func:`multitask_loss` — :math:`L = L_\text{cls} + \alpha L_\text{box}` (cross-entropy + MSE or smooth L1).
* :func:`quick_loss` — the "quick and dirty" variant: one sigmoid for a binary class, four sigmoids for the
  box, binary cross-entropy on both.
* :class:`Localizer` / :class:`QuickLocalizer` — one shared convolutional trunk, two heads.
* :func:`localization_metrics`, :func:`evaluate_localizer` — class accuracy and mean IoU.
* :func:`load_oxford_pets` — the real Oxford-IIIT Pet images with their head boxes, where a network (or a
  local copy) exists.
"""

from __future__ import annotations

import numbers
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_area
from torchvision.ops import box_iou as _tv_box_iou

from ._checks import (
    as_tensor,
    check_choice,
    check_images,
    check_int,
    check_nonnegative,
    check_positive,
    describe,
)
from .data import DataUnavailableError
from .models import NORMS, conv_backbone

__all__ = [
    "xyhw_to_xyxy",
    "xyxy_to_xyhw",
    "box_iou",
    "paired_box_iou",
    "clip_boxes_to_image",
    "MultitaskLoss",
    "multitask_loss",
    "quick_loss",
    "Localizer",
    "QuickLocalizer",
    "localization_metrics",
    "evaluate_localizer",
    "hflip_boxes",
    "load_oxford_pets",
]


# ---------------------------------------------------------------------------------------------- checks
def _check_boxes(boxes, name: str, fmt: str = "xyhw", min_batch: int = 0) -> torch.Tensor:
    """Validate boxes ``(..., 4)``: floating point, finite, a positive height and width."""
    b = as_tensor(boxes, name)
    if b.ndim == 0 or b.shape[-1] != 4:
        want = "(x, y, h, w)" if fmt == "xyhw" else "(x1, y1, x2, y2)"
        raise ValueError(f"{name} must have 4 numbers {want} in its last dimension, got {describe(b)}")
    if not b.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {describe(b)}")
    if b.ndim >= 2 and b.shape[0] < min_batch:
        raise ValueError(f"{name} must not be empty, got {describe(b)}")
    if not bool(torch.isfinite(b).all()):
        n_bad = int((~torch.isfinite(b)).any(-1).sum())
        raise ValueError(f"{name} contains NaN or infinite values in {n_bad} box(es); expected finite numbers")
    if fmt == "xyhw":
        sizes = b[..., 2:]
        what = "height h and width w (entries 2 and 3)"
    else:
        sizes = b[..., 2:] - b[..., :2]
        what = "width x2 - x1 and height y2 - y1"
    bad = (sizes <= 0).any(-1)
    if bool(bad.any()):
        first = b.reshape(-1, 4)[bad.reshape(-1)][0].tolist()
        raise ValueError(
            f"{name} must have a positive {what}; {int(bad.sum())} box(es) do not, the first is "
            f"{[round(v, 4) for v in first]}"
        )
    return b


def _check_box_batch(boxes, name: str) -> torch.Tensor:
    b = _check_boxes(boxes, name)
    if b.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, 4), got {describe(b)}")
    return b


def _image_scale(image_size, ref: torch.Tensor) -> torch.Tensor:
    """``(W, H, W, H)`` as a tensor like ``ref`` from an int or an ``(H, W)`` pair."""
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        hgt = wid = check_int(image_size, "image_size", minimum=1)
    elif isinstance(image_size, (tuple, list, torch.Size)) and len(image_size) == 2:
        hgt = check_int(image_size[0], "image_size[0] (height)", minimum=1)
        wid = check_int(image_size[1], "image_size[1] (width)", minimum=1)
    else:
        raise TypeError(f"image_size must be None, an int or an (H, W) pair of ints, got {describe(image_size)}")
    return torch.tensor([wid, hgt, wid, hgt], dtype=ref.dtype, device=ref.device)


# ------------------------------------------------------------------------------------------ conversions
def xyhw_to_xyxy(boxes, image_size: int | tuple[int, int] | None = None) -> torch.Tensor:
    r"""Normalized centre boxes :math:`(x, y, h, w)` → corners :math:`(x_1, y_1, x_2, y_2)`.

    .. math::

        x_1 = x - \tfrac{w}{2}, \quad y_1 = y - \tfrac{h}{2}, \quad
        x_2 = x + \tfrac{w}{2}, \quad y_2 = y + \tfrac{h}{2},

    then, if ``image_size`` is given, :math:`x_1, x_2` are multiplied by the width :math:`W` and
    :math:`y_1, y_2` by the height :math:`H` (pixel corners, the convention of :mod:`torchvision.ops`).
    Mind the order: the third entry is the *height*, the fourth the *width*.

    Args:
        boxes: ``(..., 4)`` float tensor of :math:`(x, y, h, w)` with :math:`h, w > 0`.
        image_size: ``None`` (corners stay fractions of the image), an int (square image) or ``(H, W)``.

    Returns:
        ``(..., 4)`` corners on the same device and with the same dtype.

    Example:
        >>> xyhw_to_xyxy(torch.tensor([0.5, 0.25, 0.5, 1.0]), image_size=(64, 32))
        tensor([ 0.,  0., 32., 32.])
    """
    b = _check_boxes(boxes, "boxes")
    x, y, h, w = b.unbind(-1)
    out = torch.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], dim=-1)
    return out if image_size is None else out * _image_scale(image_size, out)


def xyxy_to_xyhw(boxes, image_size: int | tuple[int, int] | None = None) -> torch.Tensor:
    r"""Corners :math:`(x_1, y_1, x_2, y_2)` → normalized centre boxes :math:`(x, y, h, w)`.

    The inverse of :func:`xyhw_to_xyxy`: corners in pixels are first divided by ``image_size``, then

    .. math::

        x = \tfrac{x_1 + x_2}{2}, \quad y = \tfrac{y_1 + y_2}{2}, \quad h = y_2 - y_1, \quad w = x_2 - x_1.

    Args:
        boxes: ``(..., 4)`` corners with :math:`x_2 > x_1` and :math:`y_2 > y_1`.
        image_size: ``None`` if the corners are already fractions of the image, else an int or ``(H, W)``.

    Example:
        >>> xyxy_to_xyhw(torch.tensor([0., 0., 32., 32.]), image_size=(64, 32))
        tensor([0.5000, 0.2500, 0.5000, 1.0000])
    """
    b = _check_boxes(boxes, "boxes", fmt="xyxy")
    if image_size is not None:
        b = b / _image_scale(image_size, b)
    x1, y1, x2, y2 = b.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, y2 - y1, x2 - x1], dim=-1)


def hflip_boxes(boxes) -> torch.Tensor:
    r"""Boxes of the horizontally flipped image: :math:`(x, y, h, w) \mapsto (1 - x, y, h, w)`.

    Example:
        >>> hflip_boxes(torch.tensor([0.2, 0.3, 0.1, 0.4]))
        tensor([0.8000, 0.3000, 0.1000, 0.4000])
    """
    b = _check_boxes(boxes, "boxes")
    return torch.cat([1 - b[..., :1], b[..., 1:]], dim=-1)


def clip_boxes_to_image(boxes) -> torch.Tensor:
    r"""The part of each normalized :math:`(x, y, h, w)` box that lies inside the image :math:`[0, 1]^2`.

    The corners are clamped to :math:`[0, 1]` (:func:`torchvision.ops.clip_boxes_to_image` does the same in
    pixels). A box that extends past the border is *cut*: this is what a tight box of the visible pixels of an
    object that leaves the frame looks like, and the most that sigmoid outputs can express.

    Raises:
        ValueError: if a box does not overlap the image at all.

    Example:
        >>> clip_boxes_to_image(torch.tensor([0.0, 0.5, 0.5, 0.5]))
        tensor([0.1250, 0.5000, 0.5000, 0.2500])
    """
    corners = xyhw_to_xyxy(boxes).clamp(0.0, 1.0)
    outside = ((corners[..., 2:] - corners[..., :2]) <= 0).any(-1)
    if bool(outside.any()):
        raise ValueError(f"boxes: {int(outside.sum())} box(es) lie entirely outside the image; nothing to clip to")
    return xyxy_to_xyhw(corners)


# ------------------------------------------------------------------------------------------------ IoU
def box_iou(boxes1, boxes2) -> torch.Tensor:
    r"""Intersection over union of every pair of normalized :math:`(x, y, h, w)` boxes.

    .. math::

        \mathrm{IoU}(A, B) = \frac{|A \cap B|}{|A \cup B|} = \frac{|A \cap B|}{|A| + |B| - |A \cap B|}

    The boxes are converted with :func:`xyhw_to_xyxy` and passed to :func:`torchvision.ops.box_iou`. IoU is
    invariant to scaling both axes, so normalized and pixel boxes of the same image give the same value.

    Args:
        boxes1: ``(N, 4)``; boxes2: ``(M, 4)``.

    Returns:
        ``(N, M)`` IoU in ``[0, 1]``.

    Example:
        >>> box_iou(torch.tensor([[0.5, 0.5, 0.5, 0.5]]), torch.tensor([[0.5, 0.5, 0.5, 0.25]]))
        tensor([[0.5000]])
    """
    b1 = _check_box_batch(boxes1, "boxes1")
    b2 = _check_box_batch(boxes2, "boxes2")
    return _tv_box_iou(xyhw_to_xyxy(b1), xyhw_to_xyxy(b2.to(b1.dtype)))


def paired_box_iou(boxes1, boxes2) -> torch.Tensor:
    r"""IoU of box :math:`i` of ``boxes1`` with box :math:`i` of ``boxes2`` (the diagonal of :func:`box_iou`).

    The intersection of :math:`A = (x_1, y_1, x_2, y_2)` and :math:`B` is the box
    :math:`(\max x_1, \max y_1, \min x_2, \min y_2)` when it is not empty; the areas come from
    :func:`torchvision.ops.box_area`. Memory is :math:`O(N)`, not :math:`O(N^2)` as for the full matrix.

    Args:
        boxes1, boxes2: ``(N, 4)`` each (e.g. predictions and ground truth).

    Returns:
        ``(N,)`` IoU in ``[0, 1]``.

    Example:
        >>> paired_box_iou(torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.25, 0.25, 0.5, 0.5]]),
        ...                torch.tensor([[0.5, 0.5, 0.5, 0.25], [0.75, 0.75, 0.5, 0.5]]))
        tensor([0.5000, 0.0000])
    """
    b1 = _check_box_batch(boxes1, "boxes1")
    b2 = _check_box_batch(boxes2, "boxes2")
    if b1.shape != b2.shape:
        raise ValueError(f"boxes1 and boxes2 must have the same shape (N, 4), got {describe(b1)} and {describe(b2)}")
    a, b = xyhw_to_xyxy(b1), xyhw_to_xyxy(b2.to(b1.dtype))
    lo = torch.maximum(a[:, :2], b[:, :2])
    hi = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (hi - lo).clamp(min=0).prod(dim=1)
    return inter / (box_area(a) + box_area(b) - inter)


# ----------------------------------------------------------------------------------------------- losses
class MultitaskLoss(NamedTuple):
    """The total loss and its two parts (all scalar tensors; only ``total`` needs ``backward``)."""

    total: torch.Tensor
    classification: torch.Tensor
    box: torch.Tensor


def _check_labels(labels, name: str, n: int, device: torch.device) -> torch.Tensor:
    t = as_tensor(labels, name)
    if t.is_floating_point() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got {describe(t)}")
    if t.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the batch, got {describe(t)}")
    return t.to(device=device, dtype=torch.long)


def _check_pair(pred, boxes, n_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``pred`` (N, 4) raw predictions (any finite values) and ``boxes`` (N, 4) valid targets."""
    p = as_tensor(pred, n_name)
    if p.ndim != 2 or p.shape[1] != 4:
        raise ValueError(f"{n_name} must be (N, 4), got {describe(p)}")
    if not p.is_floating_point():
        raise TypeError(f"{n_name} must have a floating-point dtype, got {describe(p)}")
    if not bool(torch.isfinite(p).all()):
        raise ValueError(f"{n_name} contains NaN or infinite values; expected finite numbers")
    b = _check_box_batch(boxes, "boxes")
    if b.shape != p.shape:
        raise ValueError(f"boxes must have the shape of {n_name} {tuple(p.shape)}, got {describe(b)}")
    return p, b.to(device=p.device, dtype=p.dtype)


def multitask_loss(
    class_logits,
    box_pred,
    labels,
    boxes,
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
    p, b = _check_pair(box_pred, boxes, "box_pred")
    if p.shape[0] != z.shape[0]:
        raise ValueError(f"box_pred must have {z.shape[0]} rows like class_logits, got {describe(p)}")
    y = _check_labels(labels, "labels", z.shape[0], z.device)
    if bool(((y < 0) | (y >= z.shape[1])).any()):
        raise ValueError(f"labels must be class indices in [0, {z.shape[1]}), got values {sorted(set(y.tolist()))}")
    alpha = check_nonnegative(alpha, "alpha")
    check_choice(box_loss, "box_loss", ("mse", "smooth_l1"))
    beta = check_positive(beta, "beta")
    l_cls = F.cross_entropy(z, y)
    l_box = F.mse_loss(p, b) if box_loss == "mse" else F.smooth_l1_loss(p, b, beta=beta)
    return MultitaskLoss(l_cls + alpha * l_box, l_cls, l_box)


def quick_loss(class_logit, box_logits, labels, boxes, alpha: float = 1.0) -> MultitaskLoss:
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
    t, b = _check_pair(box_logits, boxes, "box_logits")
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


# ----------------------------------------------------------------------------------------------- models
class _TwoHeadModel(nn.Module):
    """A shared convolutional trunk read by two heads.

    * ``features`` — :func:`course_lib.models.conv_backbone`, the trunk of :class:`course_lib.models.SmallCNN`.
    * ``classifier`` — global average pooling and one linear layer (*what*: position does not matter).
    * ``regressor`` — average pooling to a coarse ``grid × grid`` map, one hidden layer and a linear output of
      4 numbers (*where*: global pooling would throw the position away).

    Subclasses choose the number of class outputs and how :meth:`predict` reads the outputs; this class owns
    the input check and the layers, so that both variants differ only in their outputs and losses.
    """

    def __init__(
        self, class_outputs: int, width: int, norm: str, grid: int, hidden: int, blocks: Sequence[int] | None
    ) -> None:
        super().__init__()
        check_choice(norm, "norm", NORMS)
        self.width, self.norm = check_int(width, "width", minimum=2), norm
        self.grid = check_int(grid, "grid", minimum=1)
        self.hidden = check_int(hidden, "hidden", minimum=1)
        channels = 2 * self.width
        self.features = conv_backbone(self.width, norm) if blocks is None else conv_backbone(
            self.width, norm, blocks=tuple(blocks)
        )
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, class_outputs))
        self.regressor = nn.Sequential(
            nn.AdaptiveAvgPool2d(self.grid),
            nn.Flatten(),
            nn.Linear(channels * self.grid**2, self.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(self.hidden, 4),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_images(x, "x")
        a = self.features(x)
        return self.classifier(a), self.regressor(a)

    def extra_repr(self) -> str:
        return f"width={self.width}, norm={self.norm!r}, grid={self.grid}, hidden={self.hidden}"


class Localizer(_TwoHeadModel):
    r"""Classification + localization: a shared trunk and two heads.

    .. math::

        A = \mathrm{features}(x), \qquad z = W_c \, \mathrm{GAP}(A) + b_c \in \mathbb{R}^C, \qquad
        \hat b = W_2 \, \mathrm{ReLU}\big(W_1 \, \mathrm{vec}(\mathrm{pool}_{g \times g}(A)) + b_1\big) + b_2
        \in \mathbb{R}^4 .

    The class head is read through a softmax (:func:`multitask_loss`'s cross-entropy), the box head is linear
    (any real value, so boxes partly outside the image remain expressible). ``features`` has the layout of
    :class:`course_lib.models.SmallCNN`'s, so a trained classifier's trunk loads into it
    (``localizer.features.load_state_dict(classifier.features.state_dict())``).

    Args:
        num_classes: number of classes :math:`C`.
        width: base channel count of :func:`course_lib.models.conv_backbone`.
        norm: its normalization layer.
        grid: the last feature map is average-pooled to ``grid × grid`` (a coarse map of *where*).
        hidden: size of the box head's hidden layer.
        blocks: convolutions per stage of the trunk (``None``: :func:`~course_lib.models.conv_backbone`'s
            default, the layout of :class:`~course_lib.models.SmallCNN`).

    Example:
        >>> logits, boxes = Localizer(num_classes=5)(torch.rand(2, 3, 64, 64))
        >>> logits.shape, boxes.shape
        (torch.Size([2, 5]), torch.Size([2, 4]))
    """

    def __init__(
        self,
        num_classes: int = 5,
        width: int = 32,
        norm: str = "batch",
        grid: int = 4,
        hidden: int = 64,
        blocks: Sequence[int] | None = None,
    ) -> None:
        self.num_classes = check_int(num_classes, "num_classes", minimum=2)
        super().__init__(self.num_classes, width, norm, grid, hidden, blocks)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(classes (N,), boxes (N, 4))``: the arg-max class and the regressed box (in the current mode)."""
        logits, boxes = self(x)
        return logits.argmax(1), boxes


class QuickLocalizer(_TwoHeadModel):
    r"""The "quick and dirty" localizer: one sigmoid class output and four sigmoid box outputs.

    .. math::

        p = \sigma(s) \in (0, 1), \qquad \hat b = \sigma(t) \in (0, 1)^4,

    where :math:`s \in \mathbb{R}` and :math:`t \in \mathbb{R}^4` are the outputs of the same two heads as in
    :class:`Localizer` (the class head has one output instead of :math:`C`), trained with :func:`quick_loss`. ``forward`` returns the *logits* ``(N,)`` and ``(N, 4)`` (the loss applies
    the sigmoids in a numerically stable way); :meth:`predict` returns probabilities and boxes.

    Example:
        >>> p, boxes = QuickLocalizer().eval().predict(torch.rand(2, 3, 64, 64))
        >>> bool(((boxes > 0) & (boxes < 1)).all())
        True
    """

    def __init__(
        self, width: int = 32, norm: str = "batch", grid: int = 4, hidden: int = 64, blocks: Sequence[int] | None = None
    ) -> None:
        super().__init__(1, width, norm, grid, hidden, blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logit, box_logits = super().forward(x)
        return logit[:, 0], box_logits

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(p (N,), boxes (N, 4))``: probability of the positive class and the box, both through a sigmoid."""
        logit, box_logits = self(x)
        return torch.sigmoid(logit), torch.sigmoid(box_logits)


# ---------------------------------------------------------------------------------------------- metrics
def localization_metrics(class_logits, box_pred, labels, boxes, iou_threshold: float = 0.5) -> dict[str, float]:
    r"""Accuracy, mean IoU and the fraction of correct localizations of a batch of predictions.

    A prediction counts as *correct* (``correct_rate``, the ImageNet localization criterion) when the class is
    right and :math:`\mathrm{IoU}(\hat b, b) \ge` ``iou_threshold``. A predicted box with a non-positive height
    or width (a linear head can output one) covers nothing: it gets IoU 0.

    Args:
        class_logits: ``(N, C)`` scores, or ``(N,)`` logits of a binary (sigmoid) classifier.
        box_pred: ``(N, 4)`` predicted boxes; labels: ``(N,)``; boxes: ``(N, 4)`` true boxes.

    Returns:
        ``{"accuracy", "mean_iou", "correct_rate"}`` as Python floats.

    Example:
        >>> m = localization_metrics(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5, 0.5, 0.25]]),
        ...                          torch.tensor([0]), torch.tensor([[0.5, 0.5, 0.5, 0.5]]))
        >>> m["accuracy"], m["mean_iou"], m["correct_rate"]
        (1.0, 0.5, 1.0)
    """
    z = as_tensor(class_logits, "class_logits").detach()
    p, b = _check_pair(as_tensor(box_pred, "box_pred").detach(), boxes, "box_pred")
    y = as_tensor(labels, "labels").to(z.device)
    pred_class = (z > 0).long() if z.ndim == 1 else z.argmax(1)
    if pred_class.shape != y.shape:
        raise ValueError(f"labels must have shape {tuple(pred_class.shape)}, got {describe(y)}")
    degenerate = (p[:, 2:] <= 0).any(1)
    safe = torch.where(degenerate[:, None], torch.tensor([0.5, 0.5, 1.0, 1.0], device=p.device, dtype=p.dtype), p)
    iou = torch.where(degenerate, torch.zeros_like(p[:, 0]), paired_box_iou(safe, b))
    hit = pred_class == y.long()
    return {
        "accuracy": float(hit.float().mean()),
        "mean_iou": float(iou.mean()),
        "correct_rate": float((hit & (iou >= iou_threshold)).float().mean()),
    }


@torch.no_grad()
def evaluate_localizer(model: nn.Module, images, labels, boxes, batch_size: int = 256) -> dict[str, float]:
    """:func:`localization_metrics` of ``model`` (in eval mode, on its own device) over a whole set.

    The model's training mode is restored afterwards. Works for :class:`Localizer` and :class:`QuickLocalizer`
    (whose class output is one logit).

    Example:
        >>> ds = ShapesDataset(8, seed=1)  # doctest: +SKIP
        >>> evaluate_localizer(Localizer(), ds.images, ds.labels, ds.boxes)  # doctest: +SKIP
        {'accuracy': ..., 'mean_iou': ..., 'correct_rate': ...}
    """
    x = check_images(images, "images")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        outs = [model(x[i : i + batch_size].to(device)) for i in range(0, x.shape[0], batch_size)]
    finally:
        model.train(was_training)
    logits = torch.cat([o[0] for o in outs]).cpu()
    pred = torch.cat([o[1] for o in outs]).cpu()
    if isinstance(model, QuickLocalizer):
        pred = torch.sigmoid(pred)
    return localization_metrics(logits, pred, as_tensor(labels, "labels").cpu(), as_tensor(boxes, "boxes").cpu())


# ------------------------------------------------------------------------------ real data (needs a network)
_PETS_HOST = ("www.robots.ox.ac.uk", 443)


def _parse_pet_xml(path: Path) -> tuple[torch.Tensor, int]:
    """The head box of one Oxford-IIIT Pet annotation (PASCAL VOC XML) as normalized ``(x, y, h, w)``.

    VOC corners are 1-based inclusive pixel indices: the box covers pixels ``xmin..xmax``, i.e. the continuous
    interval ``[xmin - 1, xmax]``. Returns the box and the species (0 = cat, 1 = dog).
    """
    root = ET.parse(path).getroot()
    size = root.find("size")
    obj = root.find("object")
    if size is None or obj is None or obj.find("bndbox") is None:
        raise ValueError(f"{path} is not an Oxford-IIIT Pet head annotation (no <size> or <object><bndbox>)")
    wid, hgt = float(size.findtext("width")), float(size.findtext("height"))
    bb = obj.find("bndbox")
    x1, y1 = float(bb.findtext("xmin")) - 1, float(bb.findtext("ymin")) - 1
    x2, y2 = float(bb.findtext("xmax")), float(bb.findtext("ymax"))
    box = xyxy_to_xyhw(torch.tensor([x1, y1, x2, y2]), image_size=(int(hgt), int(wid)))
    species = 0 if (obj.findtext("name") or "").strip().lower() == "cat" else 1
    return box, species


def load_oxford_pets(
    root: str | Path = "~/.cache/course_lib/oxford_pets",
    size: int = 128,
    download: bool = True,
    max_images: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The real Oxford-IIIT Pet images with their head boxes (Parkhi et al., CVPR 2012).

    Loads ``torchvision.datasets.OxfordIIITPet`` (split ``trainval``, the one whose images carry a head box in
    ``annotations/xmls``), keeps the images that have a box, resizes each to ``size × size`` (the aspect ratio
    changes; normalized boxes stay valid under any resize) and returns the species as the label.

    Works wherever the files exist under ``root`` or a network can fetch them (Colab, about 800 MB). Offline
    and without a local copy it raises :class:`course_lib.data.DataUnavailableError` saying what to do; the
    chapters then use :class:`course_lib.data.ShapesDataset`, which has the same ``(image, class, box)`` form.

    Args:
        root: folder holding (or to receive) ``oxford-iiit-pet/``.
        size: side of the returned square images.
        download: fetch the archives if they are missing and a network exists.
        max_images: keep only the first ``max_images`` annotated images.

    Returns:
        ``images`` ``(N, 3, size, size)`` float32 in ``[0, 1]``, ``labels`` ``(N,)`` long (0 = cat, 1 = dog),
        ``boxes`` ``(N, 4)`` normalized ``(x, y, h, w)`` of the pet's head.

    Example:
        >>> images, labels, boxes = load_oxford_pets(max_images=100)  # doctest: +SKIP
    """
    import numpy as np
    from PIL import Image
    from torchvision.datasets import OxfordIIITPet

    from .data import _network_available

    size = check_int(size, "size", minimum=8)
    if max_images is not None:
        max_images = check_int(max_images, "max_images", minimum=1)
    root = Path(root).expanduser()
    base = root / "oxford-iiit-pet"
    have_local = (base / "images").is_dir() and (base / "annotations").is_dir()
    if not have_local and not download:
        raise DataUnavailableError(
            f"Oxford-IIIT Pet is not under {base} and download=False. Pass download=True where a network exists "
            "(e.g. Colab), or extract images.tar.gz and annotations.tar.gz from the dataset's page into that folder; "
            "offline, use course_lib.data.ShapesDataset(target='class_box') instead."
        )
    if not have_local and not _network_available(_PETS_HOST):
        raise DataUnavailableError(
            f"Oxford-IIIT Pet is not under {base} and its server cannot be reached (no network here). Run this where "
            "a network exists (e.g. Colab) or copy the extracted 'images' and 'annotations' folders into that "
            "directory; offline, use course_lib.data.ShapesDataset(target='class_box') instead."
        )
    try:
        ds = OxfordIIITPet(str(root), split="trainval", target_types="binary-category", download=download and not have_local)
    except (RuntimeError, OSError) as err:
        raise DataUnavailableError(f"Oxford-IIIT Pet could not be loaded from {base} ({err}).") from err
    xml_dir = base / "annotations" / "xmls"
    images, labels, boxes = [], [], []
    for path in ds._images:  # the split's image files, in the order of annotations/trainval.txt
        xml = xml_dir / f"{path.stem}.xml"
        if not xml.is_file():
            continue
        box, species = _parse_pet_xml(xml)
        with Image.open(path) as pil:
            img = torch.from_numpy(np.asarray(pil.convert("RGB")).copy()).permute(2, 0, 1).float().div_(255.0)
        img = F.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
        images.append(img.clamp_(0, 1))
        labels.append(species)
        boxes.append(box)
        if max_images is not None and len(images) >= max_images:
            break
    if not images:
        raise DataUnavailableError(f"no head annotations found in {xml_dir}: is annotations.tar.gz fully extracted?")
    return torch.stack(images), torch.tensor(labels, dtype=torch.long), torch.stack(boxes)
