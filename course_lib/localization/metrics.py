r"""Localization metrics: class accuracy, mean IoU and the fraction of correct localizations."""

from __future__ import annotations

import torch
from torch import nn

from .._checks import as_tensor, check_images, check_int, describe, module_device
from .._types import Boxes, Images
from ..boxes import paired_box_iou
from ._args import check_box_pair
from .models import QuickLocalizer

__all__ = ["localization_metrics", "evaluate_localizer"]


def localization_metrics(class_logits: torch.Tensor, box_pred: torch.Tensor, labels: torch.Tensor, boxes: Boxes,
                         iou_threshold: float = 0.5) -> dict[str, float]:
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
    p, b = check_box_pair(as_tensor(box_pred, "box_pred").detach(), boxes, "box_pred")
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
def evaluate_localizer(model: nn.Module, images: Images, labels: torch.Tensor, boxes: Boxes, batch_size: int = 256) -> dict[str, float]:
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
    device = module_device(model)
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
