"""Device selection and reproducibility."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from ._checks import check_int

__all__ = ["get_device", "seed_everything"]


def get_device(prefer: str | None = None) -> torch.device:
    """The device chapters run on: CUDA when available, else the CPU.

    Args:
        prefer: ``"cpu"`` forces the CPU; ``"cuda"`` asks for CUDA and fails clearly if there is none.
            The environment variable ``COURSE_DEVICE`` sets the same preference for a whole run.

    Example:
        >>> get_device("cpu")
        device(type='cpu')
    """
    prefer = prefer or os.environ.get("COURSE_DEVICE") or None
    if prefer not in (None, "cpu", "cuda"):
        raise ValueError(f"prefer must be None, 'cpu' or 'cuda', got {prefer!r}")
    if prefer == "cpu":
        return torch.device("cpu")
    if prefer == "cuda" and not torch.cuda.is_available():
        raise ValueError("prefer='cuda' but torch.cuda.is_available() is False on this machine")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a CPU ``torch.Generator`` seeded the same way.

    Example:
        >>> g = seed_everything(0); a = torch.rand(2, generator=g)
        >>> g = seed_everything(0); bool((a == torch.rand(2, generator=g)).all())
        True
    """
    seed = check_int(seed, "seed", minimum=0, maximum=2**32 - 1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)
