r"""Smooth Grad-CAM++ and RISE on ``shapes_lite0``: chapter 9's localization table, for the costly methods.

Chapter 9 scores saliency maps against the ground truth of 224×224 :class:`~course_lib.data.ShapesDataset`
images with the pointing game and CorLoc (the box of the map thresholded at a fraction :math:`\tau` of its
maximum, correct when its IoU with the true box is at least 0.5), :math:`\tau` chosen on validation images. The
CAM family needs one backbone pass per image and is computed in the chapter; Smooth Grad-CAM++ needs
``n_samples`` forward and backward passes per image and RISE ``n_masks`` forward passes, too many for the
chapter's budget on 200 test images. This script computes them once and stores, per image, the pointing-game
hit and CorLoc at each threshold of chapter 9's grid, in ``checkpoints/lite0_localization.json`` (run
``python -m course_lib.zoo.lite0_localization_study``; about ten CPU minutes). Augmented Grad-CAM's values come
from :mod:`course_lib.zoo.augmented_study`, on the same images, with the setting chosen there on validation.

The validation images are those of the Augmented Grad-CAM study (``ShapesDataset(64, size=224, seed=3)``), the
test images chapter 9's (``ShapesDataset(200, size=224, seed=2)``). Each image is explained for its true class;
maps are min-max normalized (:func:`course_lib.saliency._base.normalize_maps`) before they are scored.

**Live check.** For the first ``n_check`` test images, each method (and Augmented Grad-CAM with the study's chosen
setting) is run once more in one call on just those images — the call chapter 9 makes — and the maps, average
pooled to 28×28, are stored: the chapter recomputes them and asserts that they agree.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import CHECKPOINTS
from ._study import load_study, study_main

PATH = CHECKPOINTS / "lite0_localization.json"

SETTINGS: dict = {
    "model": "shapes_lite0", "target_layer": "head",
    "n_val": 64, "val_seed": 3, "n_test": 200, "test_seed": 2,
    "smooth": {"n_samples": 4, "sigma": 0.15, "average": "derivatives", "seed": 0},  # as in section 9.3
    "rise": {"n_masks": 32, "grid_size": 7, "p": 0.5, "batch_size": 32, "seed": 0},  # 9.3: 32 masks
    "chunk": 4,  # images per call
    "n_check": 4, "check_pool": 28,
    "corloc_taus": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],  # chapter 9's TAUS
}


def explainers(model) -> dict:
    """The stored methods, with this study's settings."""
    from ..saliency import RISE, SmoothGradCAMPlusPlus

    s = SETTINGS
    return {"Smooth Grad-CAM++": SmoothGradCAMPlusPlus(model, s["target_layer"], **s["smooth"]),
            "RISE": RISE(model, **s["rise"])}


def augmented_explainer(model):
    """Augmented Grad-CAM with the setting chosen on validation by :mod:`course_lib.zoo.augmented_study`."""
    from . import augmented_study

    study = augmented_study.load()
    chosen = study["val"]["augmented"][study["chosen"]]
    return augmented_study.make_explainer(model, n_augmentations=chosen["n_augmentations"],
                                      lambda_tv=chosen["lambda_tv"])


def pooled(maps: torch.Tensor) -> torch.Tensor:
    """Normalized maps average-pooled to ``check_pool`` × ``check_pool`` (what the live check compares)."""
    from ..saliency._base import normalize_maps

    return F.adaptive_avg_pool2d(normalize_maps(maps)[:, None], SETTINGS["check_pool"])[:, 0]


def _maps(explainer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    step = SETTINGS["chunk"]
    return torch.cat([explainer(x[i : i + step], y[i : i + step]) for i in range(0, len(x), step)])


def run(device: torch.device | str = "cpu", progress: bool = False) -> dict:
    from tqdm.auto import tqdm

    from .. import zoo
    from .augmented_study import corloc_per_image
    from .recipes.lite0 import shapes224

    s = SETTINGS
    model = zoo.load(s["model"], device)
    out = {"settings": s, "val": {}, "test": {}, "seconds": {}, "check": {}, "torch": torch.__version__}
    for name, explainer in tqdm(explainers(model).items(), desc="methods", disable=not progress):
        start = time.perf_counter()
        for split in ("val", "test"):
            data = shapes224(s[f"n_{split}"], s[f"{split}_seed"])
            x, y = data.images.to(device), data.labels.to(device)
            out[split][name] = corloc_per_image(_maps(explainer, x, y), data.masks.to(device),
                                                 data.boxes.to(device))
        out["seconds"][name] = round(time.perf_counter() - start, 1)
    test = shapes224(s["n_test"], s["test_seed"])
    x, y = test.images[: s["n_check"]].to(device), test.labels[: s["n_check"]].to(device)
    for name, explainer in [*explainers(model).items(), ("Augmented Grad-CAM", augmented_explainer(model))]:
        out["check"][name] = [[round(float(v), 5) for v in row.flatten()] for row in pooled(explainer(x, y))]
    return out


def load(path: str | Path = PATH) -> dict:
    """The stored study (see the module docstring)."""
    return load_study(path)


def main(argv=None) -> int:
    return study_main(argv, __doc__.splitlines()[0], PATH, run,
                      lambda r: {n: sum(v["hit"]) / len(v["hit"]) for n, v in r["test"].items()} | r["seconds"])


if __name__ == "__main__":
    raise SystemExit(main())
