"""The timing helpers every script in ``benchmarks/`` uses (imported as ``from _timing import ...``: a script's
own folder is on ``sys.path`` when it runs as ``python benchmarks/<script>.py``).

* :func:`seconds` — wall time of one call, after the GPU's queued work (``device`` CUDA) has finished;
* :func:`timed` — the median (or another summary) of repeated calls after warm-up calls;
* :func:`timed_against` — two functions timed in alternation, with the median of their per-pair ratios, so that
  a drifting machine speed (a shared or throttling machine) cancels out of the ratio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def sync(device=None) -> None:
    """Wait for the queued CUDA work of ``device`` (nothing for a CPU or ``None``)."""
    if device is not None and getattr(device, "type", str(device)) == "cuda":
        import torch

        torch.cuda.synchronize(device)


def seconds(fn: Callable[[], object], device=None) -> float:
    """Wall time of one call of ``fn()`` in seconds (CUDA synchronized)."""
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def timed(fn: Callable[[], object], device=None, *, warmup: int = 1, min_time: float = 1.0, min_repeats: int = 3,
          max_repeats: int = 30, summary: Callable = statistics.median) -> float:
    """``summary`` (default the median) of the times of ``fn()``, after ``warmup`` calls: at least
    ``min_repeats`` calls, more until ``min_time`` seconds have passed, at most ``max_repeats``."""
    for _ in range(warmup):
        fn()
    sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() - start < min_time):
        times.append(seconds(fn, device))
    return summary(times)


def timed_against(fn: Callable[[], object], base: Callable[[], object], device=None, *, warmup: bool = True,
                  min_time: float = 2.0, min_pairs: int = 5, max_pairs: int = 40) -> tuple[float, float, float]:
    """Median times of ``fn()`` and ``base()`` measured in alternation, and the median of their per-pair ratios.

    On a shared or throttling machine the speed drifts between two separate measurements; alternating the
    two calls puts both under the same conditions, so the ratio stays meaningful when the absolute times do not.
    """
    if warmup:
        seconds(fn, device), seconds(base, device)
    pairs: list[tuple[float, float]] = []
    start = time.perf_counter()
    while len(pairs) < max_pairs and (len(pairs) < min_pairs or time.perf_counter() - start < min_time):
        pairs.append((seconds(fn, device), seconds(base, device)))
    t_fn = statistics.median(p[0] for p in pairs)
    t_base = statistics.median(p[1] for p in pairs)
    return t_fn, t_base, statistics.median(a / b for a, b in pairs)
