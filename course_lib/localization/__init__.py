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

One concern per module: the boxes in :mod:`course_lib.boxes`, :mod:`.losses`, :mod:`.models`, :mod:`.metrics`;
the loader in :mod:`course_lib.data.online`. Every public name is importable from ``course_lib.localization``.
"""

from __future__ import annotations

from ..boxes import box_iou, clip_boxes_to_image, hflip_boxes, paired_box_iou, xyhw_to_xyxy, xyxy_to_xyhw
from ..data.online import load_oxford_pets
from .losses import MultitaskLoss, multitask_loss, quick_loss
from .metrics import evaluate_localizer, localization_metrics
from .models import Localizer, QuickLocalizer

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
