"""Shape classifiers: :class:`~course_lib.models.SmallCNN` with BatchNorm, global average (``shapes_gap``)
or global max (``shapes_gmp``) pooling, trained on :class:`~course_lib.data.ShapesDataset` 64×64.

Training images come from seed 1 and the held-out images from seed 2: different photos crops, colours,
positions and shapes, never seen in training.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from ...data import ShapesDataset
from ...device import seed_everything
from ...models import SmallCNN
from ...training import evaluate_accuracy, fit
from .. import Recipe

TRAIN_SEED, HELDOUT_SEED = 1, 2


@lru_cache(maxsize=4)
def shapes(n: int, seed: int, size: int = 64) -> ShapesDataset:
    """A cached :class:`ShapesDataset` (recipes and chapters share the same images)."""
    return ShapesDataset(n, size=size, seed=seed)


def _classifier_recipe(name: str, pool: str, epochs: int, description: str) -> Recipe:
    settings = {
        "model": {"num_classes": 5, "width": 32, "norm": "batch", "pool": pool, "blocks": [1, 2, 3]},
        "init_seed": 0,
        "data": {"dataset": "ShapesDataset", "size": 64, "n_train": 4000, "train_seed": TRAIN_SEED,
                 "n_heldout": 1000, "heldout_seed": HELDOUT_SEED},
        "fit": {"epochs": epochs, "lr": 1e-3, "batch_size": 16, "optimizer": "adam", "schedule": "cosine",
                "weight_decay": 0.0, "seed": 0},
    }

    def build() -> nn.Module:
        seed_everything(settings["init_seed"])
        return SmallCNN(**settings["model"])

    def train(model: nn.Module, device: torch.device, progress: bool) -> dict:
        d = settings["data"]
        history = fit(model, shapes(d["n_train"], d["train_seed"]), device=device, progress=progress,
                      **settings["fit"])
        return {"train_loss": history["train_loss"], "train_acc": history["train_acc"]}

    def evaluate(model: nn.Module, device: torch.device) -> dict:
        d = settings["data"]
        return {"heldout_accuracy": evaluate_accuracy(model, shapes(d["n_heldout"], d["heldout_seed"]), device)}

    return Recipe(name, description, build, train, evaluate, settings)


RECIPES = [
    # GAP needs more steps than GMP: its gradient reaches every position equally, mostly background.
    _classifier_recipe("shapes_gap", "avg", 14, "SmallCNN + BatchNorm, global average pooling, 5 shape classes"),
    _classifier_recipe("shapes_gmp", "max", 7, "SmallCNN + BatchNorm, global max pooling, 5 shape classes"),
]
