r"""Chapter 2's training study: what batch normalization changes when a deep plain network *can* learn.

The task is small enough to train hundreds of networks on a CPU and hard enough for depth to matter:
scikit-learn's 1797 handwritten digits, upsampled bilinearly from 8×8 to 16×16, the first 1000 of a fixed
shuffle for training and the other 797 held out. The network is :class:`~course_lib.models.SmallCNN` with
nine 3×3 convolutions (``blocks=(3, 3, 3)``, width 16, global average pooling), trained with SGD (momentum
0.9, batch 32, constant learning rate) — plain SGD, so that the scale of the gradients is not hidden by an
adaptive optimizer. Three networks of that architecture:

* ``batch`` — BN after every convolution, PyTorch's default initialization;
* ``none_he`` — no normalization, He initialization (:func:`course_lib.models.he_init`): the fair opponent;
* ``none`` — no normalization, PyTorch's default initialization (variance :math:`1/(3 n_\text{in})`): the
  poor initialization.

Experiments (every run keyed ``variant/lr=…/seed=…``; held-out accuracy in eval mode after every epoch):

* ``learning_rate`` — the three networks at six learning rates, three seeds each; per run the held-out
  accuracy per epoch and the training loss averaged over every 8 steps (``step_loss``).
* ``generalization`` — BN vs He on a training set of 100 digits, five seeds; the accuracy on the training
  images (eval mode) and on the held-out ones at the end.
* ``small_batch`` — BatchNorm vs GroupNorm vs LayerNorm (default initialization) at batch 2 and 32, three
  seeds; each batch size has its own learning rate and number of epochs.

One CPU thread (set by ``run``: a rerun on the same machine reproduces every number). About 6 minutes on an
idle core (``python -m course_lib.studies run bn_training``).
"""

from __future__ import annotations

import math

import torch

from . import Study, torch_threads

SETTINGS = {
    "data": {"dataset": "sklearn digits, 8x8 -> 16x16 bilinear", "size": 16, "split_seed": 0, "n_train": 1000},
    "model": {"width": 16, "blocks": [3, 3, 3], "pool": "avg"},
    "optimizer": {"name": "sgd", "momentum": 0.9, "batch_size": 32},
    "learning_rate": {"variants": ["batch", "none_he", "none"], "lrs": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
                      "epochs": 10, "seeds": [0, 1, 2]},
    "generalization": {"variants": ["batch", "none_he"], "n_train": 100, "lr": 0.01, "epochs": 40,
                       "seeds": [0, 1, 2, 3, 4]},
    "small_batch": {"norms": ["batch", "group", "layer"], "batch_sizes": [2, 32], "lr": {"2": 0.003, "32": 0.03},
                    "epochs": {"2": 5, "32": 10}, "seeds": [0, 1, 2]},
    "step_loss_every": 8,
    "threads": 1,
}
QUICK = {
    **SETTINGS,
    "learning_rate": {**SETTINGS["learning_rate"], "lrs": [0.01, 0.3], "seeds": [0]},
    "generalization": {**SETTINGS["generalization"], "seeds": [0]},
    "small_batch": {**SETTINGS["small_batch"], "batch_sizes": [32], "seeds": [0]},
}


def digits_16(settings: dict = SETTINGS) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``(train, held_out)``, each ``(images (N, 1, 16, 16) in [0, 1], labels)``: the study's digits."""
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    d = settings["data"]
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16
    x = F.interpolate(x, size=d["size"], mode="bilinear", align_corners=False).clamp(0, 1)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(d["split_seed"]))
    x, y = x[order], torch.tensor(y)[order]
    n = d["n_train"]
    return (x[:n], y[:n]), (x[n:], y[n:])


def make_model(variant: str, seed: int, settings: dict = SETTINGS) -> torch.nn.Module:
    """``"batch"``, ``"group"``, ``"layer"`` (default init), ``"none"`` (default init) or ``"none_he"``."""
    from ..device import seed_everything
    from ..models import SmallCNN, he_init

    seed_everything(seed)
    m = settings["model"]
    net = SmallCNN(num_classes=10, width=m["width"], norm="none" if variant == "none_he" else variant,
                   pool=m["pool"], in_channels=1, blocks=tuple(m["blocks"]))
    return he_init(net) if variant == "none_he" else net


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def train_run(variant: str, seed: int, lr: float, batch_size: int, epochs: int, train, held_out,
              settings: dict = SETTINGS) -> tuple[torch.nn.Module, dict]:
    """Train one network; return it and ``{val_acc per epoch, train_loss per epoch, step_loss, diverged}``."""
    from ..training import fit

    net = make_model(variant, seed, settings)
    o = settings["optimizer"]
    h = fit(net, train, held_out, epochs=epochs, lr=lr, batch_size=batch_size, optimizer=o["name"],
            momentum=o["momentum"], device="cpu", seed=seed, progress=False)
    every = settings["step_loss_every"]
    steps = h["step_loss"]
    smooth = [sum(steps[i:i + every]) / len(steps[i:i + every]) for i in range(0, len(steps), every)]
    return net, {"val_acc": [_finite(v) for v in h["val_acc"]], "train_loss": [_finite(v) for v in h["train_loss"]],
                 "step_loss": [_finite(v) for v in smooth], "diverged": bool(h["diverged"][0])}


def run(settings: dict, progress: bool = False, device: str = "cpu") -> dict:
    from tqdm.auto import tqdm

    from ..training import evaluate_accuracy

    with torch_threads(settings["threads"]):
        train, held_out = digits_16(settings)
        bs = settings["optimizer"]["batch_size"]
        out: dict = {"learning_rate": {}, "generalization": {}, "small_batch": {}}
        s = settings["learning_rate"]
        jobs = [(v, lr, seed) for v in s["variants"] for lr in s["lrs"] for seed in s["seeds"]]
        for v, lr, seed in tqdm(jobs, desc="learning rate", disable=not progress):
            out["learning_rate"][f"{v}/lr={lr:g}/seed={seed}"] = train_run(v, seed, lr, bs, s["epochs"], train,
                                                                           held_out, settings)[1]
        s = settings["generalization"]
        small = (train[0][:s["n_train"]], train[1][:s["n_train"]])
        for v in s["variants"]:
            for seed in tqdm(s["seeds"], desc=f"generalization {v}", disable=not progress):
                net, r = train_run(v, seed, s["lr"], bs, s["epochs"], small, held_out, settings)
                out["generalization"][f"{v}/seed={seed}"] = {
                    "train_acc": evaluate_accuracy(net, small, "cpu"), "val_acc": evaluate_accuracy(net, held_out, "cpu"),
                    "diverged": r["diverged"]}
        s = settings["small_batch"]
        for n in s["norms"]:
            for b in s["batch_sizes"]:
                for seed in tqdm(s["seeds"], desc=f"small batch {n} {b}", disable=not progress):
                    _, r = train_run(n, seed, s["lr"][str(b)], b, s["epochs"][str(b)], train, held_out, settings)
                    out["small_batch"][f"{n}/batch={b}/seed={seed}"] = {"val_acc": r["val_acc"],
                                                                        "diverged": r["diverged"]}
        return out


STUDY = Study(
    name="bn_training",
    description="BN vs plain (He / default init) on 16x16 digits: learning rates, curves, small-data gap, "
                "BN/GroupNorm/LayerNorm at batch 2 and 32",
    chapter="02_batch_normalization",
    settings=SETTINGS,
    quick=QUICK,
    run=run,
    minutes=8,
    atol=1e-6,  # one thread, the same seeds: a rerun on the same machine gives the same numbers
    rtol=1e-5,
)
