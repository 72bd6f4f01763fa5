"""Checks of plain Python values: numbers, seeds, sizes, choices. This module imports no torch or NumPy.

Every helper raises a ``TypeError`` when the value has the wrong type and a ``ValueError`` when it has the right
type but is out of range, and names the argument in the message. The grading code, which must start without
torch, uses these too.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

__all__ = [
    "NotFittedError",
    "describe",
    "check_positive",
    "check_nonnegative",
    "check_int",
    "check_probability",
    "check_choice",
    "check_bool",
    "check_seconds",
    "check_seed",
    "check_size",
    "check_fitted",
    "SEED_MAX",
]

#: the largest seed ``torch.Generator.manual_seed`` accepts
SEED_MAX = 2**63 - 1


class NotFittedError(ValueError, AttributeError):
    """Raised when a transform is used before ``fit`` (a ``ValueError``, as in scikit-learn)."""


def describe(x) -> str:
    """A short description of ``x`` for error messages: dtype and shape for arrays and tensors, else type and repr."""
    if type(x).__module__.startswith("torch") and hasattr(x, "shape"):
        return f"a {x.dtype} tensor of shape {tuple(x.shape)}"
    if type(x).__name__ == "ndarray":
        return f"a {x.dtype} array of shape {x.shape}"
    return f"{type(x).__name__} {x!r}"[:120]


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive(value, name: str, *, allow_zero: bool = False) -> float:
    """A real number > 0 (or >= 0 with ``allow_zero``), returned as a float.

    Example:
        >>> check_positive(0.5, "lr")
        0.5
        >>> check_positive(0, "lr")
        Traceback (most recent call last):
        ...
        ValueError: lr must be > 0 and finite, got 0
    """
    if not _is_number(value):
        raise TypeError(f"{name} must be a real number, got {describe(value)}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound} and finite, got {value!r}")
    return float(value)


def check_nonnegative(value, name: str) -> float:
    """A real number >= 0."""
    return check_positive(value, name, allow_zero=True)


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (Python or NumPy, not bool) within optional bounds.

    Example:
        >>> check_int(3, "k", minimum=1)
        3
        >>> check_int(2.0, "k")
        Traceback (most recent call last):
        ...
        TypeError: k must be an integer, got float 2.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {describe(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_seed(value, name: str = "seed") -> int:
    """A seed for ``torch.Generator.manual_seed``: an integer in ``[0, 2**63 - 1]``."""
    return check_int(value, name, minimum=0, maximum=SEED_MAX)


def check_probability(value, name: str, *, open_interval: bool = False) -> float:
    """A number in ``[0, 1]`` (or ``(0, 1)`` with ``open_interval``)."""
    if not _is_number(value):
        raise TypeError(f"{name} must be a real number, got {describe(value)}")
    bad = not (0 < value < 1) if open_interval else not (0 <= value <= 1)
    if bad:
        interval = "(0, 1)" if open_interval else "[0, 1]"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return float(value)


def check_choice(value, name: str, choices: Sequence) -> None:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def check_bool(value, name: str) -> bool:
    """``True`` or ``False`` (not 0/1, not None)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {describe(value)}")
    return value


def check_seconds(value, name: str) -> float:
    """A duration: a real number of seconds > 0 (``TypeError`` for a non-number, ``ValueError`` for <= 0).

    Example:
        >>> check_seconds(0, "timeout")
        Traceback (most recent call last):
        ...
        ValueError: timeout must be a positive number of seconds, got 0
    """
    if not _is_number(value):
        raise TypeError(f"{name} must be a positive number of seconds, got {describe(value)}")
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def check_size(value, name: str = "size", *, minimum: int = 1) -> tuple[int, int]:
    """An image or map size: an int ``s`` (meaning ``(s, s)``) or an ``(H, W)`` pair of ints, as ``(H, W)``.

    Example:
        >>> check_size(64), check_size((32, 48), "image_size")
        ((64, 64), (32, 48))
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        side = check_int(value, name, minimum=minimum)
        return side, side
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return tuple(check_int(v, name, minimum=minimum) for v in value)  # type: ignore[return-value]
    shape = getattr(value, "shape", None)
    if shape is not None and tuple(shape) == (2,) and not getattr(getattr(value, "dtype", None), "is_floating_point", True):
        return tuple(check_int(int(v), name, minimum=minimum) for v in value)  # type: ignore[return-value]
    raise TypeError(f"{name} must be an int or an (H, W) pair of ints, got {describe(value)}")


def check_fitted(obj, *attributes: str) -> None:
    """Raise :class:`NotFittedError` unless every attribute exists (set by ``fit``)."""
    if any(getattr(obj, a, None) is None for a in attributes):
        raise NotFittedError(
            f"this {type(obj).__name__} is not fitted yet: call fit(x) on training data before using it"
        )
