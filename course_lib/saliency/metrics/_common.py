"""What the saliency metrics share: map checks, the reduction, eval-mode inference, target probabilities."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ..._checks import check_choice, check_same_device, check_targets, check_tensor
from ..._state import model_mode
from ..._types import Maps, Targets

__all__ = ["reduce_values", "check_maps", "inference", "probabilities", "resolve_targets"]


def reduce_values(values: torch.Tensor, reduction: str):
    check_choice(reduction, "reduction", ("mean", "none"))
    return float(values.float().mean()) if reduction == "mean" else values


def check_maps(maps: Maps, images: torch.Tensor | None = None, name: str = "maps") -> torch.Tensor:
    maps = check_tensor(maps, name, ndim=3)
    if images is not None:
        if maps.shape[0] != images.shape[0] or maps.shape[1:] != images.shape[2:]:
            raise ValueError(
                f"{name} must have shape ({images.shape[0]}, {images.shape[2]}, {images.shape[3]}) to match the "
                f"images, got shape {tuple(maps.shape)}"
            )
        maps = maps.to(images.device)
    return maps


@contextlib.contextmanager
def inference(model: nn.Module, images: torch.Tensor) -> Iterator[None]:
    """Eval mode and no gradients for the duration; restores every module's mode."""
    check_same_device(model, images)
    with model_mode(model), torch.no_grad():
        yield


def probabilities(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Softmax probability of ``targets[i]`` for ``images[i]``, in batches."""
    out = []
    for start in range(0, images.shape[0], batch_size):
        scores = model(images[start : start + batch_size])
        if not isinstance(scores, torch.Tensor) or scores.ndim != 2:
            raise ValueError("model must return (N, num_classes) scores")
        out.append(torch.softmax(scores, dim=1).gather(1, targets[start : start + batch_size, None])[:, 0])
    return torch.cat(out)


def resolve_targets(model, images, targets: Targets, batch_size) -> torch.Tensor:
    if targets is None:
        return torch.cat([model(images[s : s + batch_size]).argmax(1) for s in range(0, images.shape[0], batch_size)])
    scores = model(images[:1])
    return check_targets(targets, images.shape[0], scores.shape[1], images.device)
