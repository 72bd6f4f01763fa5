"""One forward-hook capture for the whole library: record what a layer outputs during a forward pass.

Reading a layer's output is the first step of every activation-map explainer, of the layer probe that
visualizes units, of Perception Visualization and of the decoder recipes. :class:`capture` owns the hook: it
is registered on entering the ``with`` block and removed on leaving it, also after an exception. It can
replace what the rest of the network sees (Grad-CAM hands on a copy of a leaf tensor that requires grad) and
stop the forward pass as soon as the layer has run (the rest of the network is skipped).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

__all__ = ["capture"]


class _StopForward(Exception):
    """Raised by the hook to end a forward pass right after the layer (``capture(..., stop=True)``)."""


class capture:  # noqa: N801 - used as a context manager, like torch.no_grad
    """Record the outputs of ``layer`` while the block runs.

    Args:
        layer: the module whose output is recorded.
        what: how messages name the layer (e.g. ``"target_layer 'features'"``).
        on_output: ``f(output) -> (recorded, passed_on)``: what to record and what the next layer receives
            (``None``: the output unchanged). Default: record the output itself.
        stop: end the forward pass right after the layer's first call (the exception that does it is swallowed
            when the block exits).

    Example:
        >>> import torch
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> with capture(net[0], stop=True) as hooked:
        ...     net(torch.zeros(5, 3))
        >>> hooked.last().shape
        torch.Size([5, 4])
    """

    def __init__(self, layer: nn.Module, what: str = "the layer", *,
                 on_output: Callable[[Any], tuple[Any, Any]] | None = None, stop: bool = False) -> None:
        self.layer, self.what, self.on_output, self.stop = layer, what, on_output, stop
        self.outputs: list[Any] = []
        self._handle = None

    def _hook(self, module: nn.Module, inputs, output):
        recorded, passed_on = (output, None) if self.on_output is None else self.on_output(output)
        self.outputs.append(recorded)
        if self.stop:
            raise _StopForward
        return passed_on

    def __enter__(self) -> capture:
        self.outputs = []
        self._handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._handle.remove()
        self._handle = None
        return exc_type is _StopForward

    def last(self) -> Any:
        """The output of the layer's last call; a ``ValueError`` if it was never called."""
        if not self.outputs:
            raise ValueError(f"{self.what} was not called during the model's forward pass")
        return self.outputs[-1]
