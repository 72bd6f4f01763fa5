"""Precomputed training runs for chapter 2 (batch normalization), stored as a small JSON.

Three experiments on :class:`~course_lib.data.ShapesDataset` at 32×32 with a narrow
:class:`~course_lib.models.SmallCNN` (``width=16``, global max pooling), Adam, each run longer than the chapter
can afford to train live:

* ``learning_rate``: BatchNorm, a plain network with PyTorch's default initialization, and a plain network with
  He initialization (:func:`he_init`), at several learning rates, one seed; held-out accuracy after every epoch.
* ``generalization``: BatchNorm vs the He-initialized plain network on a small training set, several seeds;
  accuracy on the training images (eval mode) and on held-out images at the end.
* ``small_batch``: BatchNorm vs GroupNorm vs LayerNorm at mini-batches of 2 and 32, several seeds (the two batch
  sizes have their own learning rate and number of epochs, see ``SETTINGS``).

Regenerate with ``python -m course_lib.zoo.bn_curves`` (about ten minutes on one idle CPU thread;
``--only NAME`` runs one experiment and merges it into the existing file). Everything is seeded, so a rerun on
the same machine and torch version gives the same file.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

from ..data import ShapesDataset
from ..device import seed_everything
from ..models import SmallCNN
from ..training import evaluate_accuracy, fit
from . import CHECKPOINTS

PATH = CHECKPOINTS / "bn_curves.json"
EXPERIMENTS = ("learning_rate", "generalization", "small_batch")

SETTINGS = {
    # large shapes at 32×32: a task a narrow network learns in a few CPU minutes
    "data": {"size": 32, "radius": [0.25, 0.45], "train_seed": 1, "n_val": 500, "val_seed": 2},
    "model": {"width": 16, "pool": "max"},
    "learning_rate": {"variants": ["batch", "none_he", "none"], "lrs": [3e-4, 3e-3, 1e-2, 3e-2],
                      "default_init_lrs": [3e-4, 3e-3], "batch_size": 32, "epochs": 4, "n_train": 1000,
                      "seed": 0},
    "generalization": {"variants": ["batch", "none_he"], "lr": 3e-3, "batch_size": 32, "epochs": 20,
                       "n_train": 300, "seeds": [0, 1, 2]},
    "small_batch": {"norms": ["batch", "group", "layer"], "batch_sizes": [2, 32], "lr": {"2": 3e-4, "32": 1e-3},
                    "epochs": {"2": 2, "32": 8}, "n_train": 600, "seeds": [0, 1, 2]},
"optimizer": "adam",
    "step_loss_every": 5,
}


def he_init(model: nn.Module) -> nn.Module:
    r"""He (Kaiming) initialization of every convolution and linear layer, biases zero; returns ``model``.

    Each weight is drawn from :math:`\mathcal N(0, 2/\text{fan\_in})`, which keeps the variance of the
    activations constant through ReLU layers (He et al., 2015, *Delving Deep into Rectifiers*). PyTorch's
    default, a uniform draw with variance :math:`1/(3\,\text{fan\_in})`, shrinks it by a factor 6 per ReLU layer.

    Example:
        >>> net = he_init(nn.Sequential(nn.Conv2d(3, 8, 3)))
        >>> float(net[0].bias.detach().abs().max())
        0.0
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def make_model(variant: str, seed: int) -> SmallCNN:
    """``"batch"``, ``"group"``, ``"layer"``, ``"none"`` (default init) or ``"none_he"``, built after ``seed``."""
    seed_everything(seed)
    model = SmallCNN(norm="none" if variant == "none_he" else variant, **SETTINGS["model"])
    return he_init(model) if variant == "none_he" else model


def _data(n_train: int):
    d = SETTINGS["data"]
    radius = tuple(d["radius"])
    train = ShapesDataset(n_train, size=d["size"], seed=d["train_seed"], radius=radius)
    val = ShapesDataset(d["n_val"], size=d["size"], seed=d["val_seed"], radius=radius)
    return train, val


def _clean(v: float) -> float | None:
    return round(v, 5) if math.isfinite(v) else None


def _run(variant: str, seed: int, train, val, progress: bool, **fit_kwargs) -> dict:
    model = make_model(variant, seed)
    h = fit(model, train, val, device="cpu", progress=progress, seed=seed, optimizer=SETTINGS["optimizer"],
            **fit_kwargs)
    every = SETTINGS["step_loss_every"]
    steps = h["step_loss"]
    smooth = [sum(steps[i : i + every]) / len(steps[i : i + every]) for i in range(0, len(steps), every)]
    diverged = h["diverged"][0]
    return {
        "variant": variant, "seed": seed, "lr": fit_kwargs["lr"], "batch_size": fit_kwargs["batch_size"],
        "steps_per_epoch": math.ceil(len(train) / fit_kwargs["batch_size"]),
        "train_loss": [_clean(v) for v in h["train_loss"]],
        "val_acc": [_clean(v) for v in h["val_acc"]],
        "final_train_acc": None if diverged else round(evaluate_accuracy(model, train, "cpu"), 5),
        "final_val_acc": None if diverged else round(evaluate_accuracy(model, val, "cpu"), 5),
        "step_loss": [_clean(v) for v in smooth], "steps_per_point": every,
        "diverged": diverged, "seconds": round(h["time"][-1], 1),
    }


def jobs(name: str) -> list[tuple[str, int, dict]]:
    """The runs of one experiment of ``SETTINGS`` as ``(variant, seed, fit arguments)``, in file order."""
    cfg = SETTINGS[name]
    if name == "learning_rate":
        return [(v, cfg["seed"], {"lr": lr, "batch_size": cfg["batch_size"], "epochs": cfg["epochs"]})
                for v in cfg["variants"] for lr in (cfg["default_init_lrs"] if v == "none" else cfg["lrs"])]
    if name == "generalization":
        return [(v, seed, {"lr": cfg["lr"], "batch_size": cfg["batch_size"], "epochs": cfg["epochs"]})
                for v in cfg["variants"] for seed in cfg["seeds"]]
    return [(n, seed, {"lr": cfg["lr"][str(bs)], "batch_size": bs, "epochs": cfg["epochs"][str(bs)]})
            for n in cfg["norms"] for bs in cfg["batch_sizes"] for seed in cfg["seeds"]]


def run_job(name: str, variant: str, seed: int, fit_kwargs: dict, progress: bool = False) -> dict:
    """One run of experiment ``name`` (see :func:`jobs`)."""
    torch.set_num_threads(1)
    train, val = _data(SETTINGS[name]["n_train"])
    return _run(variant, seed, train, val, progress, **fit_kwargs)


def run_experiments(names, progress: bool = False, workers: int = 1) -> dict[str, list[dict]]:
    """The runs of the experiments ``names`` (``"learning_rate"``, ``"generalization"``, ``"small_batch"``).

    With ``workers > 1`` all runs go to one process pool (one CPU thread each), longest first; every run is
    seeded on its own, so the result does not depend on ``workers``.
    """
    todo = [(name, v, seed, kw) for name in names for v, seed, kw in jobs(name)]
    if workers <= 1:
        done = [run_job(*job, progress=progress) for job in todo]
    else:
        import multiprocessing

        # the batch-2 runs take longest: start them first so that no worker idles at the end
        order = sorted(range(len(todo)), key=lambda i: todo[i][3]["batch_size"])
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            out = pool.starmap(run_job, [todo[i] for i in order], chunksize=1)
        done = [None] * len(todo)
        for i, r in zip(order, out, strict=True):
            done[i] = r
    return {name: [r for job, r in zip(todo, done, strict=True) if job[0] == name] for name in names}


def generate(path: str | Path = PATH, progress: bool = False, only: str | None = None, workers: int = 1) -> dict:
    """Run the experiments on the CPU and write the JSON to ``path``; return its content.

    With ``only``, run that one experiment and keep the others from the existing file.
    """
    path = Path(path)
    result = json.loads(path.read_text()) if only and path.is_file() else {}
    if result.get("settings") != json.loads(json.dumps(SETTINGS)):
        result = {k: v for k, v in result.items() if k not in EXPERIMENTS}
    start = time.perf_counter()
    result.update(run_experiments(EXPERIMENTS if only is None else (only,), progress, workers))
    result.update(settings=SETTINGS, seconds=round(time.perf_counter() - start, 1), torch=torch.__version__,
                  workers=workers, regenerate="python -m course_lib.zoo.bn_curves")
    path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def load(path: str | Path = PATH) -> dict:
    """The stored runs (see :func:`generate` for their content)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; regenerate it with `python -m course_lib.zoo.bn_curves`")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.zoo.bn_curves", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(PATH), help="where to write the JSON")
    parser.add_argument("--only", choices=EXPERIMENTS, help="run one experiment, keep the others")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel (one CPU thread each)")
    args = parser.parse_args(argv)
    result = generate(args.out, progress=not args.quiet, only=args.only, workers=args.workers)
    for exp in EXPERIMENTS if args.only is None else (args.only,):
        for r in result[exp]:
            print(f"{exp:14s} {r['variant']:8s} seed={r['seed']} bs={r['batch_size']:3d} lr={r['lr']:<7g} "
                  f"val={r['final_val_acc']} train={r['final_train_acc']} diverged={r['diverged']} ({r['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
