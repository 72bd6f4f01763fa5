"""Checks of tensor arguments: type, rank, dtype, shape, finiteness, value range, class targets.

Every helper raises a ``TypeError`` or ``ValueError`` that names the argument, what was expected and what was
given, instead of letting the value fail deep inside torch with a message about strides or storage.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch

from .scalars import check_seed, describe

__all__ = ["as_tensor", "check_tensor", "check_images", "check_finite", "check_unit_range", "check_targets",
           "generator", "check_seed_or_generator"]


def as_tensor(x, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Return ``x`` as a tensor (NumPy arrays are converted, other types rejected)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {describe(x)}")
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
            raise ValueError(f"{name} must be {want}, got {describe(x)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {describe(x)}")
    if min_batch and x.ndim >= 1 and x.shape[0] < min_batch:
        what = "must not be empty" if min_batch == 1 else f"needs at least {min_batch} samples along dimension 0"
        raise ValueError(f"{name} {what}, got {describe(x)}")
    if shape:
        for dim, size in shape.items():
            if x.ndim > dim and x.shape[dim] != size:
                raise ValueError(f"{name} must have size {size} in dimension {dim}, got {describe(x)}")
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


def check_images(
    x, name: str = "images", channels: int | None = 3, value_range: bool = False, tolerance: float = 1e-6
) -> torch.Tensor:
    """Validate a batch of images ``(N, C, H, W)``; optionally require values in ``[0, 1]`` (up to ``tolerance``)."""
    x = check_tensor(x, name, ndim=4, shape={1: channels} if channels else None)
    if value_range:
        check_unit_range(x, name, tolerance)
    return x


def check_targets(targets, n: int, num_classes: int | None, device: torch.device) -> torch.Tensor | None:
    """Normalize ``targets`` (``None``, an int, or a ``(N,)`` integer tensor) to a ``(N,)`` long tensor.

    ``None`` is returned unchanged (the caller uses the arg-max class).
    """
    if targets is None:
        return None
    if isinstance(targets, bool):
        raise TypeError(f"targets must be None, an int or a (N,) integer tensor, got {describe(targets)}")
    if isinstance(targets, numbers.Integral):
        t = torch.full((n,), int(targets), dtype=torch.long, device=device)
    else:
        if isinstance(targets, (list, tuple)):
            targets = torch.tensor(targets)
        t = as_tensor(targets, "targets")
        if t.is_floating_point() or t.dtype == torch.bool:
            raise TypeError(f"targets must hold integers, got {describe(t)}")
        if t.ndim == 0:
            t = t.expand(n)
        if t.shape != (n,):
            raise ValueError(f"targets must have shape ({n},) to match the batch, got {describe(t)}")
        t = t.to(device=device, dtype=torch.long)
    if bool((t < 0).any()) or (num_classes is not None and bool((t >= num_classes).any())):
        raise ValueError(
            f"targets must be class indices in [0, {num_classes}), got {t.tolist()}"
            if num_classes is not None
            else f"targets must be non-negative class indices, got {t.tolist()}"
        )
    return t


def check_seed_or_generator(seed, name: str = "seed") -> int | torch.Generator:
    """A randomness argument ``seed: int | torch.Generator``: a generator comes back as it is, an int is checked
    by :func:`check_seed` (``[0, 2**63 - 1]``); anything else raises ``TypeError`` naming ``name``.

    Example:
        >>> check_seed_or_generator(3), isinstance(check_seed_or_generator(torch.Generator()), torch.Generator)
        (3, True)
    """
    return seed if isinstance(seed, torch.Generator) else check_seed(seed, name)


def generator(seed, name: str = "seed", device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` from an int seed (a fresh one per call: same seed, same numbers), or
    ``seed`` itself when it already is a generator.

    Example:
        >>> a, b = generator(0), generator(0)
        >>> bool(torch.rand(3, generator=a).equal(torch.rand(3, generator=b)))
        True
    """
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator(device=device).manual_seed(check_seed(seed, name))
