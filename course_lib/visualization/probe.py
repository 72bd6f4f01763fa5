"""Run a model up to one layer and return that layer's output: the forward pass stops there."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import nn

from .._checks import as_tensor, check_int, check_module, module_device, resolve_layer
from .._state import capture
from .._types import Layer

__all__ = ["LayerProbe", "as_targets", "target_score"]


class LayerProbe:
    """Runs a model up to one layer and returns that layer's output (the rest of the network is skipped).

    The forward hook is :func:`course_lib._state.capture`'s, registered per call and always removed. Stopping
    right after the layer also keeps a later in-place ReLU from overwriting the captured tensor.

    Args:
        model: the network.
        target_layer: a submodule or its dotted name; ``None`` (or the model itself) means the model's own output.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
        >>> LayerProbe(net, "0")(torch.zeros(2, 3, 8, 8)).shape
        torch.Size([2, 4, 6, 6])
    """

    def __init__(self, model: nn.Module, target_layer: Layer | None = None) -> None:
        self.model = check_module(model)
        self.target_layer = None if target_layer is None else resolve_layer(model, target_layer, name="target_layer")

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are (the CPU for a model without any)."""
        return module_device(self.model)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.target_layer is None or self.target_layer is self.model:
            return self.model(x)
        with capture(self.target_layer, "the target_layer", stop=True) as hooked:
            self.model(x)
        out = hooked.last()
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the layer must return a tensor, got {type(out).__name__}")
        return out

    def check_channel(self, out: torch.Tensor, channel: torch.Tensor, name: str) -> None:
        """Raise a ``ValueError`` unless ``out`` is ``(N, C)`` or ``(N, C, H, W)`` and every ``channel`` < ``C``."""
        what = "classes" if self.target_layer is None else "channels"
        if out.ndim not in (2, 4):
            raise ValueError(f"the layer's output must be (N, C) or (N, C, H, W), got shape {tuple(out.shape)}")
        if bool((channel < 0).any()) or bool((channel >= out.shape[1]).any()):
            raise ValueError(
                f"{name} must be in [0, {out.shape[1]}) (the output has {out.shape[1]} {what}), got {channel.tolist()}"
            )


def as_targets(target, name: str = "targets") -> torch.Tensor:
    """``target`` (an int or a 1-D sequence of ints) as a ``(T,)`` long CPU tensor, checked."""
    if isinstance(target, bool):
        raise TypeError(f"{name} must be an int or a sequence of ints, got {target!r}")
    if isinstance(target, numbers.Integral):
        return torch.tensor([int(target)])
    if isinstance(target, range):
        target = list(target)
    if not isinstance(target, (list, tuple, torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be an int or a sequence of ints, got {type(target).__name__} {target!r}")
    t = as_tensor(torch.tensor(target) if isinstance(target, (list, tuple)) else target, name)
    if t.is_floating_point() or t.dtype == torch.bool or t.ndim != 1 or t.numel() == 0:
        raise TypeError(f"{name} must be an int or a non-empty 1-D sequence of ints, got {t.dtype} of shape {tuple(t.shape)}")
    return t.long().cpu()


def target_score(probe: LayerProbe, targets: torch.Tensor, position=None, log_softmax: bool = False):
    """The score :math:`S` as a function of the input ``(T, 3, H, W)``: entry :math:`t` is class or channel
    ``targets[t]`` of image :math:`t` (the channel's mean, or its unit at ``position``; with ``log_softmax``,
    a class's log-probability instead of its score)."""
    device = probe.device
    targets_dev = targets.to(device)
    rows = torch.arange(len(targets), device=device)

    def score(x: torch.Tensor) -> torch.Tensor:
        out = probe(x)
        probe.check_channel(out, targets, "targets")
        if out.ndim == 2:
            if position is not None:
                raise ValueError(f"position must be None for a layer with (N, C) output, got {position!r}")
            if log_softmax:
                out = out.log_softmax(1)
            return out[rows, targets_dev]
        maps = out[rows, targets_dev]  # (T, h, w)
        if position is None:
            return maps.flatten(1).mean(1)
        if not (isinstance(position, (tuple, list)) and len(position) == 2):
            raise ValueError(f"position must be a (row, col) pair, got {position!r}")
        r = check_int(position[0], "position[0]", minimum=0, maximum=maps.shape[1] - 1)
        c = check_int(position[1], "position[1]", minimum=0, maximum=maps.shape[2] - 1)
        return maps[:, r, c]

    return score
