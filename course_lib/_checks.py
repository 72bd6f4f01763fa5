"""Input checks shared by every part of ``course_lib``.

Every public function validates its arguments here, so that bad input raises a ``TypeError`` or
``ValueError`` that names the argument, what was expected and what was given, instead of failing deep
inside torch with a message about strides or storage.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

__all__ = [
    "NotFittedError",
    "as_tensor",
    "check_tensor",
    "check_images",
    "check_finite",
    "check_unit_range",
    "allow_out_of_range",
    "check_positive",
    "check_nonnegative",
    "check_int",
    "check_probability",
    "check_fitted",
    "check_choice",
    "resolve_layer",
    "check_same_device",
    "check_targets",
]


class NotFittedError(ValueError, AttributeError):
    """Raised when a transform is used before ``fit`` (a ``ValueError``, as in scikit-learn)."""


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"a {x.dtype} tensor of shape {tuple(x.shape)}"
    if isinstance(x, np.ndarray):
        return f"a {x.dtype} array of shape {x.shape}"
    return f"{type(x).__name__} {x!r}"[:120]


def as_tensor(x, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Return ``x`` as a tensor (NumPy arrays are converted, other types rejected)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {_describe(x)}")
    if dtype is not None:
        x = x.to(dtype)
    return x


def check_finite(x: torch.Tensor, name: str) -> None:
    """Reject NaN and infinite values."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        n_bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} contains {n_bad} NaN or infinite value(s); expected finite numbers")


def check_tensor(
    x,
    name: str,
    ndim: int | Sequence[int] | None = None,
    *,
    floating: bool = True,
    finite: bool = True,
    min_batch: int = 1,
    shape: dict[int, int] | None = None,
) -> torch.Tensor:
    """Validate a tensor argument and return it (NumPy input is converted).

    Args:
        x: the value to check.
        name: the argument's name, used in error messages.
        ndim: the allowed number of dimensions (one int or several).
        floating: require a floating-point dtype.
        finite: reject NaN / Inf.
        min_batch: the smallest allowed size of dimension 0 (``0`` allows empty input).
        shape: required sizes of given dimensions, e.g. ``{1: 3}`` for three channels.
    """
    x = as_tensor(x, name)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {want}, got {_describe(x)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {_describe(x)}")
    if min_batch and x.ndim >= 1 and x.shape[0] < min_batch:
        what = "must not be empty" if min_batch == 1 else f"needs at least {min_batch} samples along dimension 0"
        raise ValueError(f"{name} {what}, got {_describe(x)}")
    if shape:
        for dim, size in shape.items():
            if x.ndim > dim and x.shape[dim] != size:
                raise ValueError(f"{name} must have size {size} in dimension {dim}, got {_describe(x)}")
    if finite:
        check_finite(x, name)
    return x


def check_unit_range(x: torch.Tensor, name: str, tolerance: float = 1e-6) -> None:
    """Require values in ``[-tolerance, 1 + tolerance]``; a 0-255 image gets a hint to divide by 255."""
    if not x.numel():
        return
    lo, hi = (float(v) for v in x.detach().aminmax())
    if lo < -tolerance or hi > 1 + tolerance:
        hint = "; it looks like a 0-255 image: divide it by 255" if hi > 2 and lo >= -tolerance else ""
        raise ValueError(f"{name} must have values in [0, 1], got values in [{lo:.3g}, {hi:.3g}]{hint}")


@contextmanager
def allow_out_of_range(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block, ``model``'s range-checking modules accept inputs outside ``[0, 1]``.

    A module opts in with a boolean attribute ``check_range`` (the input ``Normalize`` of
    :mod:`course_lib.pretrained`); it is set to ``False`` and restored on exit, even after an exception. For
    methods that feed deliberately out-of-range images, such as Smooth Grad-CAM++'s Gaussian noise; the other
    checks (rank, channels, NaN) stay on.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {_describe(model)}")
    modules = [m for m in model.modules() if getattr(m, "check_range", None) is True]
    for m in modules:
        m.check_range = False
    try:
        yield model
    finally:
        for m in modules:
            m.check_range = True


def check_images(
    x, name: str = "images", channels: int | None = 3, value_range: bool = False, tolerance: float = 1e-6
) -> torch.Tensor:
    """Validate a batch of images ``(N, C, H, W)``; optionally require values in ``[0, 1]`` (up to ``tolerance``)."""
    x = check_tensor(x, name, ndim=4, shape={1: channels} if channels else None)
    if value_range:
        check_unit_range(x, name, tolerance)
    return x


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive(value, name: str, *, allow_zero: bool = False) -> float:
    """A real number > 0 (or >= 0 with ``allow_zero``)."""
    if not _is_number(value):
        raise TypeError(f"{name} must be a real number, got {_describe(value)}")
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound} and finite, got {value!r}")
    return float(value)


def check_nonnegative(value, name: str) -> float:
    """A real number >= 0."""
    return check_positive(value, name, allow_zero=True)


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (Python or NumPy, not bool) within optional bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {_describe(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_probability(value, name: str, *, open_interval: bool = False) -> float:
    """A number in ``[0, 1]`` (or ``(0, 1)`` with ``open_interval``)."""
    if not _is_number(value):
        raise TypeError(f"{name} must be a real number, got {_describe(value)}")
    bad = not (0 < value < 1) if open_interval else not (0 <= value <= 1)
    if bad:
        interval = "(0, 1)" if open_interval else "[0, 1]"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return float(value)


def check_choice(value, name: str, choices: Sequence) -> None:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def check_fitted(obj, *attributes: str) -> None:
    """Raise :class:`NotFittedError` unless every attribute exists (set by ``fit``)."""
    if any(getattr(obj, a, None) is None for a in attributes):
        raise NotFittedError(
            f"this {type(obj).__name__} is not fitted yet: call fit(x) on training data before using it"
        )


def resolve_layer(model: nn.Module, layer, name: str = "target_layer") -> nn.Module:
    """Return the submodule ``layer`` of ``model``, given as a module or a dotted name."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {_describe(model)}")
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
    raise TypeError(f"{name} must be an nn.Module of the model or its dotted name, got {_describe(layer)}")


def check_same_device(model: nn.Module, x: torch.Tensor, name: str = "images") -> None:
    """Raise a ``ValueError`` naming both devices when ``x`` is not where ``model``'s parameters are."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {_describe(model)}")
    param = next(model.parameters(), None)
    if param is not None and param.device != x.device:
        raise ValueError(f"{name} are on {x.device} but the model is on {param.device}; move one of them")


def check_targets(targets, n: int, num_classes: int | None, device: torch.device) -> torch.Tensor | None:
    """Normalize ``targets`` (``None``, an int, or a ``(N,)`` integer tensor) to a ``(N,)`` long tensor.

    ``None`` is returned unchanged (the caller uses the arg-max class).
    """
    if targets is None:
        return None
    if isinstance(targets, bool):
        raise TypeError(f"targets must be None, an int or a (N,) integer tensor, got {_describe(targets)}")
    if isinstance(targets, numbers.Integral):
        t = torch.full((n,), int(targets), dtype=torch.long, device=device)
    else:
        if isinstance(targets, (list, tuple)):
            targets = torch.tensor(targets)
        t = as_tensor(targets, "targets")
        if t.is_floating_point() or t.dtype == torch.bool:
            raise TypeError(f"targets must hold integers, got {_describe(t)}")
        if t.ndim == 0:
            t = t.expand(n)
        if t.shape != (n,):
            raise ValueError(f"targets must have shape ({n},) to match the batch, got {_describe(t)}")
        t = t.to(device=device, dtype=torch.long)
    if bool((t < 0).any()) or (num_classes is not None and bool((t >= num_classes).any())):
        raise ValueError(
            f"targets must be class indices in [0, {num_classes}), got {t.tolist()}"
            if num_classes is not None
            else f"targets must be non-negative class indices, got {t.tolist()}"
        )
    return t
