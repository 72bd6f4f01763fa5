"""The model zoo: small models trained by this repository's own recipes, committed as checkpoints.

Nothing is downloaded: every entry is a :class:`Recipe` (an architecture, a training procedure and a
held-out evaluation) whose trained weights live in ``course_lib/zoo/checkpoints/NAME.pt`` beside
``NAME.json`` (the file's sha256, the held-out metrics, the recipe's settings and the torch version that
trained it). :func:`load` verifies the hash before it loads, so a truncated or edited file fails clearly.

Recipes are found in every module of :mod:`course_lib.zoo.recipes` that defines ``RECIPES``, a list of
:class:`Recipe`; adding a model means adding a module there. One kind of entry is not trained here: a
*packaged* recipe (``efficientnet_lite0``, the ImageNet network of :mod:`course_lib.pretrained`) loads weights
that ship in an installed package, so it has no checkpoint; ``load`` and ``evaluate`` work as for the others.

Command line::

    python -m course_lib.zoo list
    python -m course_lib.zoo train NAME [--device cpu]    # writes checkpoints/NAME.pt and NAME.json
    python -m course_lib.zoo evaluate NAME                # prints the held-out metrics as JSON

Example:
    >>> from course_lib import zoo
    >>> "shapes_gap" in zoo.names()
    True
    >>> model = zoo.load("shapes_gap")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "Recipe",
    "CheckpointError",
    "CHECKPOINTS",
    "names",
    "get_recipe",
    "load",
    "evaluate",
    "train",
    "info",
    "sha256",
]

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


@dataclass(frozen=True)
class Recipe:
    """How one zoo model is built, trained and evaluated.

    Attributes:
        name: the zoo name (``"shapes_gap"``); also the checkpoint's file stem.
        description: one line for ``python -m course_lib.zoo list``.
        build: returns the architecture, freshly initialized (the same every call).
        train: ``train(model, device, progress) -> info`` trains ``model`` in place; ``info`` is a JSON-able
            dict (e.g. training time, final training loss) saved in the checkpoint's JSON.
        evaluate: ``evaluate(model, device) -> metrics`` on held-out data (a dict of floats).
        settings: the recipe's hyper-parameters (saved in the JSON so that a reader sees how it was made).
        packaged: for a model trained elsewhere whose weights ship in an installed package
            (``efficientnet_lite0``): returns the trained model. Such an entry has no checkpoint and no
            training; ``build`` and ``train`` are not used.
        export: ``export(model) -> state`` what the checkpoint stores (default: the whole ``state_dict``); a
            model built on pretrained weights stores only what training changed.
        restore: ``restore(model, state)`` the inverse of ``export`` on a freshly built model (default:
            ``load_state_dict``, strict); it raises ``RuntimeError``/``KeyError`` if the state does not fit.
    """

    name: str
    description: str
    build: Callable[[], nn.Module]
    train: Callable[[nn.Module, torch.device, bool], dict]
    evaluate: Callable[[nn.Module, torch.device], dict]
    settings: dict = field(default_factory=dict)
    packaged: Callable[[], nn.Module] | None = None
    export: Callable[[nn.Module], dict] | None = None
    restore: Callable[[nn.Module, dict], None] | None = None


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt or does not fit its recipe; the message says how to rebuild it."""


def _recipes() -> dict[str, Recipe]:
    from . import recipes as package

    found: dict[str, Recipe] = {}
    for mod in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{mod.name}")
        for recipe in getattr(module, "RECIPES", ()):
            if not isinstance(recipe, Recipe):
                raise TypeError(f"{module.__name__}.RECIPES must hold Recipe objects, got {type(recipe).__name__}")
            if recipe.name in found:
                raise ValueError(f"zoo recipe {recipe.name!r} is defined twice (second time in {module.__name__})")
            found[recipe.name] = recipe
    return found


def names() -> list[str]:
    """Names of every model the zoo can build (sorted)."""
    return sorted(_recipes())


def get_recipe(name: str) -> Recipe:
    """The :class:`Recipe` called ``name``."""
    recipes = _recipes()
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    if name not in recipes:
        raise ValueError(f"name must be one of the zoo's models {sorted(recipes)}, got {name!r}")
    return recipes[name]


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _paths(name: str, root: str | Path | None) -> tuple[Path, Path]:
    folder = Path(root) if root is not None else CHECKPOINTS
    return folder / f"{name}.pt", folder / f"{name}.json"


def _rebuild_hint(name: str) -> str:
    return f"rebuild it with `python -m course_lib.zoo train {name}` (a few CPU minutes)"


def info(name: str, root: str | Path | None = None) -> dict:
    """The checkpoint's JSON record (sha256, held-out metrics, settings, torch version)."""
    get_recipe(name)
    _, meta_path = _paths(name, root)
    if not meta_path.is_file():
        raise CheckpointError(f"zoo model {name!r} has no record {meta_path}; {_rebuild_hint(name)}")
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"the record {meta_path} is not valid JSON ({err}); {_rebuild_hint(name)}") from err


def _device(device) -> torch.device:
    from ..device import get_device

    return torch.device(device) if device is not None else get_device()


def load(name: str, device: torch.device | str | None = None, root: str | Path | None = None) -> nn.Module:
    """The trained model ``name`` in eval mode on ``device`` (default: :func:`course_lib.device.get_device`).

    The checkpoint's sha256 is checked against its JSON record first; a packaged entry (weights from an
    installed package, e.g. ``efficientnet_lite0``) is built by its recipe instead.

    Raises:
        ValueError: ``name`` is not a zoo model.
        CheckpointError: the checkpoint is missing, its hash differs from the record, or its weights do not
            fit the recipe's architecture; the message says how to rebuild it.
    """
    recipe = get_recipe(name)
    if recipe.packaged is not None:
        return recipe.packaged().to(_device(device)).eval()
    pt_path, meta_path = _paths(name, root)
    if not pt_path.is_file():
        raise CheckpointError(f"zoo model {name!r} has no checkpoint {pt_path}; {_rebuild_hint(name)}")
    expected = info(name, root).get("sha256")
    actual = sha256(pt_path)
    if actual != expected:
        raise CheckpointError(
            f"checkpoint {pt_path} is corrupt or was changed: its sha256 is {actual}, but {meta_path.name} "
            f"records {expected}; {_rebuild_hint(name)}"
        )
    model = recipe.build()
    try:
        state = torch.load(pt_path, map_location="cpu", weights_only=True)
        (recipe.restore or nn.Module.load_state_dict)(model, state)
    except (RuntimeError, KeyError, TypeError, EOFError) as err:
        raise CheckpointError(
            f"checkpoint {pt_path} does not fit the recipe's architecture ({str(err).splitlines()[0]}); "
            f"{_rebuild_hint(name)}"
        ) from err
    return model.to(_device(device)).eval()


def evaluate(name: str, device: torch.device | str | None = None, root: str | Path | None = None) -> dict:
    """Held-out metrics of the trained model ``name``, recomputed now by its recipe."""
    device = _device(device)
    model = load(name, device, root)
    with torch.no_grad():
        return {k: float(v) for k, v in get_recipe(name).evaluate(model, device).items()}


def train(
    name: str, device: torch.device | str | None = None, progress: bool = False, root: str | Path | None = None
) -> dict:
    """Run the recipe ``name`` from scratch, evaluate, and save ``NAME.pt`` and ``NAME.json``.

    Returns:
        The JSON record that was written (sha256, metrics, settings, training info, versions).
    """
    recipe = get_recipe(name)
    if recipe.packaged is not None:
        raise ValueError(f"zoo model {name!r} is not trained by this repository: its weights ship in a package "
                         f"({recipe.description}); load it with course_lib.zoo.load({name!r})")
    device = _device(device)
    pt_path, meta_path = _paths(name, root)
    pt_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model = recipe.build().to(device)
    train_info = recipe.train(model, device, progress)
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        metrics = {k: float(v) for k, v in recipe.evaluate(model, device).items()}
    exported = recipe.export(model) if recipe.export is not None else model.state_dict()
    state = {k: v.detach().to("cpu").contiguous() for k, v in exported.items()}
    tmp = pt_path.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    tmp.replace(pt_path)
    record = {
        "name": name,
        "description": recipe.description,
        "file": pt_path.name,
        "sha256": sha256(pt_path),
        "bytes": pt_path.stat().st_size,
        "metrics": metrics,
        "settings": recipe.settings,
        "train_info": train_info,
        "train_seconds": round(seconds, 1),
        "device": device.type,
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    meta_path.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
    return record
