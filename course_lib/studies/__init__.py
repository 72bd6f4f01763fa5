"""Studies: the experiments whose results a chapter shows, run once at the scale they need, stored, and checked.

A chapter executes in about 45 seconds on two CPU cores. An experiment that needs more — several seeds,
hundreds of images, thousands of masks, hundreds of optimization steps — is a *study*: a module of this
package that defines ``STUDY``, a :class:`Study`. It runs outside the book build (``python -m
course_lib.studies run NAME``), and its results are stored in ``course_lib/studies/results/NAME.json``
(package data, so a Colab install has them) together with the settings that produced them and their
provenance (course_lib version and commit, torch version, device, threads, wall time, date). The chapter loads
them with :func:`load`, draws, glues and asserts, and recomputes a few items live (:func:`spot_check`).

A study's ``run(settings, progress, device)`` returns JSON-serializable results that keep the per-item or
per-seed values, so that intervals can be recomputed from the file. Its ``quick`` settings are a *slice* of the
full ones: the first seeds, the first items, the first steps — every list in the quick results is a prefix of
the same list in the stored results, every mapping a subset of its keys. :func:`check` compares the stored
settings with the code's and reruns the quick slice, which must reproduce every value it covers within the
study's tolerance (``make test`` runs it for every study).

Command line::

    python -m course_lib.studies list
    python -m course_lib.studies run NAME [--quick] [--device cuda] [--out PATH]
    python -m course_lib.studies check [NAME ...]

Example:
    >>> from course_lib import studies
    >>> "preprocessing_leakage" in studies.names()
    True
    >>> stored = studies.load("preprocessing_leakage")
    >>> stored.settings == studies.get("preprocessing_leakage").settings
    True
"""

from __future__ import annotations

import datetime
import importlib
import json
import math
import pkgutil
import platform
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "Study",
    "StoredStudy",
    "StudyError",
    "RESULTS",
    "names",
    "get",
    "load",
    "run",
    "save",
    "check",
    "spot_check",
    "leaves",
]

RESULTS = Path(__file__).resolve().parent / "results"


class StudyError(RuntimeError):
    """A stored study is missing, out of date, or no longer reproduced by the code."""


@dataclass(frozen=True)
class Study:
    """One experiment a chapter shows.

    Attributes:
        name: the study's name, also its results' file stem (``results/NAME.json``).
        description: one line for ``python -m course_lib.studies list``.
        chapter: the chapter that shows it (``"01_preprocessing"``).
        settings: every setting the results depend on, including the sample size (``seeds``, number of items).
        quick: settings for :func:`check`: a slice of ``settings`` whose results are a prefix / subset of the
            full results (fewer seeds, items or steps; nothing else changed).
        run: ``run(settings, progress, device) -> results`` (a JSON-serializable dict).
        minutes: about how long the full run takes on the two-core CPU of the course machines.
        atol, rtol: how closely a rerun must reproduce a stored number (follow from the computation: float64
            algebra reproduces to ~1e-12, float32 training to a few ulps per step).
    """

    name: str
    description: str
    chapter: str
    settings: dict
    quick: dict
    run: Callable[[dict, bool, str], dict]
    minutes: float
    atol: float = 1e-9
    rtol: float = 1e-7
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StoredStudy:
    """A study's stored results: ``settings`` and ``results`` as ``run`` produced them, and ``provenance``."""

    name: str
    settings: dict
    results: dict
    provenance: dict


def _modules() -> Iterator[Any]:
    package = importlib.import_module(__name__)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            if isinstance(getattr(module, "STUDY", None), Study):
                yield module


def _registry() -> dict[str, Study]:
    return {m.STUDY.name: m.STUDY for m in _modules()}


def names() -> list[str]:
    """The names of every study, sorted."""
    return sorted(_registry())


def get(name: str) -> Study:
    """The :class:`Study` called ``name``.

    Raises:
        ValueError: if there is no such study (the message lists the ones there are).
    """
    registry = _registry()
    if name not in registry:
        raise ValueError(f"name must be one of the studies {sorted(registry)}, got {name!r}")
    return registry[name]


def _normalized(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(obj))


def load(name: str, path: str | Path | None = None) -> StoredStudy:
    """The stored results of study ``name``.

    Raises:
        ValueError: if there is no such study.
        StudyError: if its results file is missing or was made with other settings than the code's.
    """
    study = get(name)
    path = Path(path) if path is not None else RESULTS / f"{name}.json"
    if not path.is_file():
        raise StudyError(f"{path} is missing: run `python -m course_lib.studies run {name}` (about "
                         f"{study.minutes:g} minutes)")
    data = json.loads(path.read_text())
    if data.get("settings") != _normalized(study.settings):
        raise StudyError(f"{path} was made with other settings than {name}'s code: rerun "
                         f"`python -m course_lib.studies run {name}`")
    return StoredStudy(name, data["settings"], data["results"], data.get("provenance", {}))


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("course-lib")
    except PackageNotFoundError:
        return "unknown"


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block on ``n`` CPU threads of torch, restoring the previous number afterwards.

    A study that trains or sums many float32 terms reproduces its stored values only on the thread count it was
    run with (reductions on two threads add in another order), so its ``run`` wraps the work in this.

    Example:
        >>> with torch_threads(1):
        ...     torch.get_num_threads()
        1
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run(name: str, quick: bool = False, device: str | torch.device = "cpu", progress: bool = False) -> dict:
    """Run study ``name`` (its ``quick`` slice if ``quick``) and return ``{settings, results, provenance}``."""
    study = get(name)
    settings = study.quick if quick else study.settings
    start = time.perf_counter()
    results = study.run(settings, progress, str(device))
    seconds = time.perf_counter() - start
    provenance = {
        "course_lib": _version(), "commit": _commit(), "torch": torch.__version__,
        "python": platform.python_version(), "device": str(device), "threads": torch.get_num_threads(),
        "seconds": round(seconds, 1), "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
    }
    return _normalized({"name": name, "settings": settings, "results": results, "provenance": provenance})


def save(data: dict, path: str | Path | None = None) -> Path:
    """Write what :func:`run` returned to ``path`` (default ``results/NAME.json``)."""
    path = Path(path) if path is not None else RESULTS / f"{data['name']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    return path


def leaves(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every leaf of a JSON-like value as ``(path, value)``: ``a/0/b`` is ``obj["a"][0]["b"]``.

    Example:
        >>> dict(leaves({"acc": [0.5, 0.75], "n": 2}))
        {'acc/0': 0.5, 'acc/1': 0.75, 'n': 2}
    """
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from leaves(value, f"{prefix}{key}/")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from leaves(value, f"{prefix}{i}/")
    else:
        yield prefix.rstrip("/"), obj


def _close(a: Any, b: Any, atol: float, rtol: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return a == b
    if not (math.isfinite(a) and math.isfinite(b)):
        return a == b
    return abs(a - b) <= atol + rtol * abs(b)


def compare(quick_results: dict, stored_results: dict, atol: float, rtol: float) -> list[str]:
    """The differences between a quick slice's results and the stored ones, one line each (empty: reproduced).

    Every leaf of ``quick_results`` must exist in ``stored_results`` and agree within ``atol + rtol·|stored|``.
    """
    stored = dict(leaves(stored_results))
    problems = []
    for path, value in leaves(quick_results):
        if path not in stored:
            problems.append(f"{path}: computed by the quick slice but not stored")
        elif not _close(value, stored[path], atol, rtol):
            problems.append(f"{path}: stored {stored[path]!r}, recomputed {value!r}")
    return problems


def check(name: str, device: str | torch.device = "cpu") -> dict:
    """Check study ``name``: stored settings equal the code's, and the quick slice reproduces the stored values.

    Returns:
        ``{"name", "compared" (number of values compared), "seconds"}``.

    Raises:
        StudyError: naming every value that is not reproduced (up to 20 of them).
    """
    study = get(name)
    stored = load(name)
    fresh = run(name, quick=True, device=device)
    problems = compare(fresh["results"], stored.results, study.atol, study.rtol)
    if problems:
        shown = "\n  ".join(problems[:20])
        raise StudyError(f"{name}: the quick slice does not reproduce {len(problems)} stored value(s):\n  {shown}")
    return {"name": name, "compared": sum(1 for _ in leaves(fresh["results"])),
            "seconds": fresh["provenance"]["seconds"]}


def spot_check(live: Any, stored: Any, atol: float, rtol: float = 0.0, what: str = "the stored values") -> float:
    """Assert that values recomputed live in a chapter match the stored ones; return the largest difference.

    Args:
        live: numbers (a tensor, array, list or scalar) the chapter recomputed.
        stored: the same numbers as the study stored them.
        atol, rtol: the tolerance, from the computation.
        what: what is compared, for the error message.

    Raises:
        StudyError: if the shapes differ or a value differs by more than ``atol + rtol·|stored|``.

    Example:
        >>> spot_check([0.5, 0.25], [0.5, 0.2500001], atol=1e-6)
        1.0000000000287557e-07
    """
    a = torch.as_tensor(live, dtype=torch.float64).cpu()
    b = torch.as_tensor(stored, dtype=torch.float64).cpu()
    if a.shape != b.shape:
        raise StudyError(f"{what}: recomputed shape {tuple(a.shape)} but stored {tuple(b.shape)}")
    diff = (a - b).abs()
    bad = diff > atol + rtol * b.abs()
    if bool(bad.any()):
        raise StudyError(f"{what}: {int(bad.sum())} of {b.numel()} values differ by more than the tolerance "
                         f"(largest difference {float(diff.max()):.3g}, atol {atol:g}, rtol {rtol:g}): rerun the "
                         "study or find what changed")
    return float(diff.max()) if diff.numel() else 0.0
