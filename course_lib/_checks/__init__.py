"""Argument checks shared by every part of ``course_lib``: one helper per check.

Every public function validates its arguments with these, so that bad input raises a ``TypeError`` (wrong type)
or ``ValueError`` (right type, wrong value) that names the argument, what was expected and what was given.

* :mod:`.scalars` — numbers, seeds, sizes, choices, durations; imports no torch, so the grading code uses it;
* :mod:`.tensors` — tensors, image batches, class targets, random generators;
* :mod:`.modules` — the model argument, layers by name, devices.

The names of all three are importable from here; the torch-based ones are loaded on first use, so that
``from course_lib._checks import check_int`` does not import torch.
"""

from __future__ import annotations

import importlib

from .scalars import *  # noqa: F403
from .scalars import __all__ as _scalar_names

_LAZY = {
    **{n: "tensors" for n in ("as_tensor", "check_tensor", "check_images", "check_finite", "check_unit_range",
                              "check_targets", "generator", "check_seed_or_generator")},
    **{n: "modules" for n in ("check_module", "resolve_layer", "layer_name", "check_same_device",
                              "module_device")},
}

__all__ = [*_scalar_names, *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
