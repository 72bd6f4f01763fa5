"""Temporary changes to a model's state, undone on leaving the block — even after an exception.

Three context managers, one idea:

* :class:`capture` — a forward hook that records (and may replace) what a layer outputs; every activation-map
  explainer, the layer probe that visualizes units, Perception Visualization and the decoder recipes read
  layers through it. It can stop the forward pass as soon as the layer has run.
* :func:`model_mode` — eval (or train) mode for the block; each submodule gets back its own mode
  (public as :func:`course_lib.models.model_mode`).
* :func:`allow_out_of_range` — range-checking input modules accept values outside ``[0, 1]`` (Smooth
  Grad-CAM++'s noisy copies).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from torch import nn

from ._checks import check_module

__all__ = ["capture", "model_mode", "allow_out_of_range"]


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


@contextlib.contextmanager
def model_mode(model: nn.Module, training: bool = False) -> Iterator[nn.Module]:
    """Put ``model`` and all its submodules in eval (``training=False``) or train mode inside the block.

    On leaving, even after an exception, every submodule gets back its own mode, so a model whose parts were
    in different modes (a frozen backbone in eval mode under a head in train mode, say) comes back as it was.
    A model already entirely in the requested mode is not touched at all.

    Example:
        >>> from course_lib.models import SmallCNN
        >>> net = SmallCNN(width=8).train()
        >>> with model_mode(net):
        ...     net.training, net.features[1].training
        (False, False)
        >>> net.training
        True
    """
    changed = [m for m in model.modules() if m.training != training]
    try:
        if changed:
            model.train(training)
        yield model
    finally:
        for m in changed:
            m.training = not training


@contextlib.contextmanager
def allow_out_of_range(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block, ``model``'s range-checking modules accept inputs outside ``[0, 1]``.

    A module opts in with a boolean attribute ``check_range`` (the input ``Normalize`` of
    :mod:`course_lib.pretrained`); it is set to ``False`` and restored on exit, even after an exception. For
    methods that feed deliberately out-of-range images, such as Smooth Grad-CAM++'s Gaussian noise; the other
    checks (rank, channels, NaN) stay on.
    """
    check_module(model)
    modules = [m for m in model.modules() if getattr(m, "check_range", None) is True]
    for m in modules:
        m.check_range = False
    try:
        yield model
    finally:
        for m in modules:
            m.check_range = True
