"""Checks of modules: the model argument, a layer given by name or object, devices."""

from __future__ import annotations

import torch
from torch import nn

from .scalars import describe

__all__ = ["check_module", "resolve_layer", "layer_name", "check_same_device", "module_device"]


def check_module(value, name: str = "model") -> nn.Module:
    """``value`` must be a ``torch.nn.Module``; it is returned.

    Example:
        >>> check_module(nn.ReLU()).__class__.__name__
        'ReLU'
    """
    if not isinstance(value, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {describe(value)}")
    return value


def resolve_layer(model: nn.Module, layer, name: str = "target_layer") -> nn.Module:
    """Return the submodule ``layer`` of ``model``, given as a module or a dotted name."""
    check_module(model)
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            known = [n for n in modules if n][:12]
            raise ValueError(f"{name}={layer!r} is not a layer of the model; some of its layers: {known}")
        return modules[layer]
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError(f"{name} ({type(layer).__name__}) is not a submodule of the model")
        return layer
    raise TypeError(f"{name} must be an nn.Module of the model or its dotted name, got {describe(layer)}")


def layer_name(model: nn.Module, layer: nn.Module) -> str:
    """The dotted name of submodule ``layer`` in ``model`` (``"<model>"`` for the model itself)."""
    return next((n for n, m in model.named_modules() if m is layer), "") or "<model>"


def module_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (CPU for a model without parameters)."""
    p = next(check_module(model).parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def check_same_device(model: nn.Module, x: torch.Tensor, name: str = "images") -> None:
    """Raise a ``ValueError`` naming both devices when ``x`` is not where ``model``'s parameters are."""
    check_module(model)
    param = next(model.parameters(), None)
    if param is not None and param.device != x.device:
        raise ValueError(f"{name} are on {x.device} but the model is on {param.device}; move one of them")

