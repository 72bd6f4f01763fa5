"""Run a model up to one layer and return that layer's output: the forward pass stops there."""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_module, module_device, resolve_layer
from .._state import capture
from .._types import Layer

__all__ = ["LayerProbe"]


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
