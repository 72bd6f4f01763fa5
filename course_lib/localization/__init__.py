r"""Classification plus localization: boxes, IoU, the multitask loss and a two-head model.

A localizer answers two questions about an image that holds one object: *what* it is (a class among
:math:`C`) and *where* it is (a box). The box is four real numbers, normalized to the image size as in the
course text: the centre :math:`(x, y)`, the height :math:`h` and the width :math:`w`, so that
:math:`(0.5, 0.5, 1, 1)` is the whole image whatever its size in pixels.

* :func:`xyhw_to_xyxy` / :func:`xyxy_to_xyhw` — centre boxes ↔ corners (pixels or fractions).
* :func:`box_iou` (every pair, through :func:`torchvision.ops.box_iou`) and :func:`paired_box_iou`
  (box *i* of one set against box *i* of the other); clipping and flipping boxes are in :mod:`course_lib.boxes`.
* :func:`multitask_loss` — :math:`L = L_\text{cls} + \alpha L_\text{box}` (cross-entropy + MSE or smooth L1).
* :func:`quick_loss` — the "quick and dirty" variant: one sigmoid for a binary class, four sigmoids for the
  box, binary cross-entropy on both.
* :class:`Localizer` / :class:`QuickLocalizer` — one shared convolutional trunk, two heads.
* :func:`localization_metrics`, :func:`evaluate_localizer` — class accuracy and mean IoU.
One concern per module: :mod:`.losses`, :mod:`.models`, :mod:`.metrics`; the boxes live in :mod:`course_lib.boxes`
(the conversions and IoUs are re-exported here, as DESIGN §3 lists them) and the real Oxford-IIIT Pet loader
:func:`~course_lib.data.load_oxford_pets` in :mod:`course_lib.data`.
"""

from __future__ import annotations

from ..boxes import box_iou, paired_box_iou, xyhw_to_xyxy, xyxy_to_xyhw  # listed in DESIGN §3
from .losses import MultitaskLoss, multitask_loss, quick_loss
from .metrics import evaluate_localizer, localization_metrics
from .models import Localizer, QuickLocalizer

__all__ = [
    "xyhw_to_xyxy",
    "xyxy_to_xyhw",
    "box_iou",
    "paired_box_iou",
    "MultitaskLoss",
    "multitask_loss",
    "quick_loss",
    "Localizer",
    "QuickLocalizer",
    "localization_metrics",
    "evaluate_localizer",
]
