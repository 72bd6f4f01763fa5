r"""Chapter 9's localization table on ``shapes_lite0``: pointing game and CorLoc per image, validation and test.

Chapter 9 scores saliency maps against the ground truth of 224×224 :class:`~course_lib.data.ShapesDataset`
images: the pointing game, and CorLoc of the box of the map thresholded at a fraction :math:`\tau` of its
maximum (:func:`course_lib.saliency.metrics.saliency_to_box`; correct when its IoU with the true box is at least
0.5), at every :math:`\tau` of ``corloc_taus``, so that the chapter can choose :math:`\tau` per method on the
validation images and report the test images. Each image is explained for its true class; maps are min-max
normalized before they are scored.

The validation and test images are those of :mod:`.augmented_lite0` (``ShapesDataset(64, size=224, seed=3)``
and ``ShapesDataset(200, size=224, seed=2)``), whose per-image values give Augmented Grad-CAM's row.

**The CAM family from one backbone pass.** CAM, Grad-CAM, Grad-CAM++ and LayerCAM at ``head`` depend on the
image only through the head's feature maps :math:`A`: the study computes :math:`A` once per image and runs the
explainers on the small network that starts there (global average pooling and the linear layer); for the
first ``n_check`` test images it also stores the largest difference from ``GradCAM(model, "head")`` on the
whole network. A **random map** (uniform noise on a 7×7 lattice, upsampled) and the **oracle** (the true mask
used as a map) bound every column. About 4 minutes on the two-core CPU shared by four users.
"""

from __future__ import annotations

import torch
from torch import nn

from . import Study
from ._lite0 import random_maps

METHODS = ["CAM", "Grad-CAM", "Grad-CAM++", "LayerCAM", "random map", "oracle (true mask)"]

SETTINGS: dict = {
    "model": "shapes_lite0", "target_layer": "head",
    "n_val": 64, "val_seed": 3, "n_test": 200, "test_seed": 2,  # the pools
    "n_val_items": 64, "n_test_items": 200,
    "methods": METHODS, "random_seed": 1,
    "corloc_taus": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
    "n_check": 4, "batch_size": 25,
}


def cam_family(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, batch_size: int = 25) -> dict:
    """CAM, Grad-CAM, Grad-CAM++ and LayerCAM at ``head`` from one backbone pass per image (normalized, 224²)."""
    from ..saliency import CAM, GradCAM, GradCAMPlusPlus, LayerCAM, normalize_maps, upsample_maps

    with torch.no_grad():
        a = torch.cat([model.features(images[s : s + batch_size]) for s in range(0, len(images), batch_size)])
    top = nn.Sequential(nn.Identity(), model.pool, model.flatten, model.classifier)  # A -> class scores
    explainers = {"CAM": CAM(top, top[0], fc=top[3]), "Grad-CAM": GradCAM(top, top[0]),
                  "Grad-CAM++": GradCAMPlusPlus(top, top[0]), "LayerCAM": LayerCAM(top, top[0])}
    return {name: normalize_maps(upsample_maps(e(a, targets, upsample=False, normalize=False),
                                               tuple(images.shape[-2:])))
            for name, e in explainers.items()}


def run(settings: dict, progress: bool = False, device: str = "cpu") -> dict:
    from .. import zoo
    from ..saliency import GradCAM
    from ..zoo.recipes.lite0 import shapes224
    from .augmented_lite0 import corloc_per_image

    s = settings
    model = zoo.load(s["model"], device)
    out = {}
    for split in ("val", "test"):
        data = shapes224(s[f"n_{split}"], s[f"{split}_seed"])
        n = s[f"n_{split}_items"]
        x, y = data.images[:n].to(device), data.labels[:n].to(device)
        masks, boxes = data.masks[:n].to(device), data.boxes[:n].to(device)
        maps = cam_family(model, x, y, s["batch_size"])
        maps["random map"] = random_maps(range(n), x.shape[-1], 7, s["random_seed"] + (split == "test")).to(device)
        maps["oracle (true mask)"] = masks.float()
        out[split] = {name: corloc_per_image(maps[name], masks, boxes, s["corloc_taus"]) for name in s["methods"]}
        with torch.no_grad():
            pred = torch.cat([model(x[i : i + s["batch_size"]]).argmax(1) for i in range(0, n, s["batch_size"])])
        out[split]["correct"] = [int(v) for v in pred == y]
        if split == "test":
            k = s["n_check"]
            direct = GradCAM(model, s["target_layer"])(x[:k], y[:k])
            out["shortcut_error"] = float((direct - maps["Grad-CAM"][:k]).abs().max())
    return out


STUDY = Study(
    name="lite0_localization",
    description="pointing game and CorLoc over tau of the CAM family, random map and oracle on shapes_lite0",
    chapter="09_evaluating_explanations",
    settings=SETTINGS,
    quick={**SETTINGS, "n_val_items": 4, "n_test_items": 4},
    run=run,
    minutes=4,
    atol=1e-5,  # hits and CorLoc are counts; the shortcut's error is a float32 round-off
    rtol=0.0,
)
