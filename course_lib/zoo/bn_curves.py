"""Precomputed training curves for chapter 2 (batch normalization), stored as a small JSON.

Two experiments on :class:`~course_lib.data.ShapesDataset` at 32×32 with a narrow
:class:`~course_lib.models.SmallCNN` (``width=16``, global max pooling), each run longer than the chapter can
afford to train live:

* ``learning_rate``: with and without BatchNorm, Adam at three learning rates;
* ``small_batch``: BatchNorm vs GroupNorm vs LayerNorm at mini-batches of 2 and 32.

Regenerate with ``python -m course_lib.zoo.bn_curves`` (about ten minutes on one CPU thread); the chapter reads the result
with :func:`load`. Everything is seeded, so a rerun on the same machine and torch version gives the same file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from ..data import ShapesDataset
from ..device import seed_everything
from ..models import SmallCNN
from ..training import fit
from . import CHECKPOINTS

PATH = CHECKPOINTS / "bn_curves.json"

SETTINGS = {
    # large shapes at 32×32: a task a narrow network learns in a few CPU minutes
    "data": {"size": 32, "radius": [0.25, 0.45], "n_train": 3000, "train_seed": 1, "n_val": 1000, "val_seed": 2},
    "model": {"width": 16, "pool": "max"},
    "init_seed": 0,
    "learning_rate": {"norms": ["batch", "none"], "lrs": [3e-4, 3e-3, 3e-2], "optimizer": "adam",
                      "batch_size": 32, "epochs": 6},
    "small_batch": {"norms": ["batch", "group", "layer"], "batch_sizes": [2, 32], "optimizer": "adam",
                    "lr": {"2": 3e-4, "32": 3e-3}, "epochs": 4, "n_train": 2000},
    "step_loss_every": 5,
}


def _run(norm: str, train, val, progress: bool, **fit_kwargs) -> dict:
    seed_everything(SETTINGS["init_seed"])  # the same initial weights for every run of one norm
    model = SmallCNN(norm=norm, **SETTINGS["model"])
    h = fit(model, train, val, device="cpu", progress=progress, **fit_kwargs)
    every = SETTINGS["step_loss_every"]
    steps = h["step_loss"]
    # mean over blocks of `every` steps keeps the file small and the curve readable
    smooth = [sum(steps[i : i + every]) / len(steps[i : i + every]) for i in range(0, len(steps), every)]
    return {
        "norm": norm,
        **{k: v for k, v in fit_kwargs.items() if k in ("lr", "batch_size", "optimizer")},
        "train_loss": h["train_loss"],
        "train_acc": h["train_acc"],
        "val_loss": h["val_loss"],
        "val_acc": h["val_acc"],
        "step_loss": [round(v, 5) if v == v and abs(v) != float("inf") else None for v in smooth],
        "steps_per_point": every,
        "diverged": h["diverged"][0],
        "seconds": round(h["time"][-1], 1),
    }


def generate(path: str | Path = PATH, progress: bool = True) -> dict:
    """Run both experiments on the CPU and write the JSON to ``path``; return its content."""
    d = SETTINGS["data"]
    radius = tuple(d["radius"])
    train = ShapesDataset(d["n_train"], size=d["size"], seed=d["train_seed"], radius=radius)
    val = ShapesDataset(d["n_val"], size=d["size"], seed=d["val_seed"], radius=radius)
    start = time.perf_counter()
    lr_cfg = SETTINGS["learning_rate"]
    lr_runs = [
        _run(norm, train, val, progress, lr=lr, optimizer=lr_cfg["optimizer"], batch_size=lr_cfg["batch_size"],
             epochs=lr_cfg["epochs"])
        for norm in lr_cfg["norms"] for lr in lr_cfg["lrs"]
    ]
    sb_cfg = SETTINGS["small_batch"]
    small_train = torch.utils.data.Subset(train, range(sb_cfg["n_train"]))
    sb_runs = [
        _run(norm, small_train, val, progress, lr=sb_cfg["lr"][str(bs)], optimizer=sb_cfg["optimizer"],
             batch_size=bs, epochs=sb_cfg["epochs"])
        for norm in sb_cfg["norms"] for bs in sb_cfg["batch_sizes"]
    ]
    result = {
        "settings": SETTINGS,
        "learning_rate": lr_runs,
        "small_batch": sb_runs,
        "seconds": round(time.perf_counter() - start, 1),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "regenerate": "python -m course_lib.zoo.bn_curves",
    }
    Path(path).write_text(json.dumps(result, indent=1) + "\n")
    return result


def load(path: str | Path = PATH) -> dict:
    """The stored curves (see :func:`generate` for their content)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; regenerate it with `python -m course_lib.zoo.bn_curves`")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.zoo.bn_curves", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(PATH), help="where to write the JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    result = generate(args.out, progress=not args.quiet)
    for exp in ("learning_rate", "small_batch"):
        for r in result[exp]:
            print(f"{exp:14s} norm={r['norm']:6s} bs={r['batch_size']:3d} lr={r['lr']:<7g} "
                  f"val_acc={r['val_acc'][-1]:.3f} diverged={r['diverged']} ({r['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
