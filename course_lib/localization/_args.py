"""Argument checks shared by the localization losses and metrics: class labels, and box predictions paired with
their targets."""

from __future__ import annotations

import torch

from .._checks import as_tensor, describe
from .._types import Boxes
from ..boxes import check_boxes

__all__ = ["check_labels", "check_box_pair"]


def check_labels(labels: torch.Tensor, name: str, n: int, device: torch.device) -> torch.Tensor:
    """``labels`` as a ``(n,)`` long tensor on ``device`` (integer class indices, one per image).

    Example:
        >>> check_labels(torch.tensor([1, 0]), "labels", 2, torch.device("cpu"))
        tensor([1, 0])
    """
    t = as_tensor(labels, name)
    if t.is_floating_point() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got {describe(t)}")
    if t.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the batch, got {describe(t)}")
    return t.to(device=device, dtype=torch.long)


def check_box_pair(pred: torch.Tensor, boxes: Boxes, n_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``pred`` (N, 4) raw box predictions (any finite values) and ``boxes`` (N, 4) valid targets, the latter
    moved to the predictions' device and dtype.

    Example:
        >>> p, b = check_box_pair(torch.zeros(1, 4), torch.tensor([[0.5, 0.5, 0.2, 0.2]]), "box_pred")
        >>> b.shape
        torch.Size([1, 4])
    """
    p = as_tensor(pred, n_name)
    if p.ndim != 2 or p.shape[1] != 4:
        raise ValueError(f"{n_name} must be (N, 4), got {describe(p)}")
    if not p.is_floating_point():
        raise TypeError(f"{n_name} must have a floating-point dtype, got {describe(p)}")
    if not bool(torch.isfinite(p).all()):
        raise ValueError(f"{n_name} contains NaN or infinite values; expected finite numbers")
    b = check_boxes(boxes, "boxes", ndim=2)
    if b.shape != p.shape:
        raise ValueError(f"boxes must have the shape of {n_name} {tuple(p.shape)}, got {describe(b)}")
    return p, b.to(device=p.device, dtype=p.dtype)
