"""The on-disk cache of frozen-network features that several recipes train on.

A recipe that trains only a head on a frozen trunk computes the trunk's features once; later runs (other seeds,
other heads, the studies that retrain them) load them. Each cached file is named by the recipe and, where the
features depend on more than its name says, by a hash of everything they depend on (:func:`cache_key`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

__all__ = ["FEATURE_CACHE", "cache_key", "cached"]

FEATURE_CACHE = Path("~/.cache/course_lib/features").expanduser()

T = TypeVar("T")


def cache_key(ident: dict) -> str:
    """A 16-hex-digit key for ``ident`` (JSON-serializable; the same contents give the same key in any order).

    Example:
        >>> cache_key({"a": 1, "b": [2, 3]}) == cache_key({"b": [2, 3], "a": 1})
        True
    """
    return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def cached(name: str, compute: Callable[[], T]) -> T:
    """Load ``FEATURE_CACHE / f"{name}.pt"``, or ``compute()`` it and save it there (written to a temporary file
    and renamed, so that an interrupted run never leaves half a file behind)."""
    path = FEATURE_CACHE / f"{name}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(value, tmp)
    tmp.replace(path)
    return value
