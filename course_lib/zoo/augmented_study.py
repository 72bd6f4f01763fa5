r"""Augmented Grad-CAM at 7×7 on ``shapes_lite0``: settings chosen on a validation seed, scored on another.

Chapter 7 compares, on 224×224 :class:`~course_lib.data.ShapesDataset` images and the 7×7 ``head`` layer of
``shapes_lite0`` (stride 32, the papers' regime):

* **upsampled Grad-CAM** — the 7×7 map, bilinearly upsampled;
* **TV prior alone** — the same solver with :math:`L = 1` (the image itself): total-variation denoising of
  the upsampled map, no new measurement;
* **Augmented Grad-CAM** (Morbidelli et al., 2020) — :math:`L` rotated and shifted copies, the shifts up to one
  32-pixel cell (the paper's ±30 px at 224×224), rotations up to ``max_angle``.

Each copy costs a forward and a backward pass of the whole network, too many for a chapter that must run in a
minute and a half, so this script measures once and stores the numbers in ``checkpoints/augmented_lite0.json``
(run ``python -m course_lib.zoo.augmented_study``; a few CPU minutes). The Grad-CAM maps of the :math:`L` copies
are measured once per image; every solver setting of the grid is then solved from the same measurements (a
setting with fewer copies uses the first ones). The setting with the best mean mask IoU over the thresholds on
the validation seed is then reported, with the two baselines, on the held-out seed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from . import CHECKPOINTS

PATH = CHECKPOINTS / "augmented_lite0.json"

SETTINGS: dict = {
    "model": "shapes_lite0", "target_layer": "head",
    "n_val": 16, "val_seed": 3, "n_heldout": 16, "heldout_seed": 2,
    "n_augmentations": 16, "max_angle": 15.0, "max_shift": None,  # None: one cell of the layer, 32 px
    "grid": {"n_augmentations": [16], "lambda_tv": [0.005, 0.05]},
    "prior_lambda_tv": [0.02],
    "iterations": 60, "seed": 0, "batch_size": 32,
    "taus": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
}


def mask_iou(maps: torch.Tensor, masks: torch.Tensor, tau: float) -> float:
    r"""Mean IoU of ``{maps >= tau}`` and the true masks, :math:`|K \cap M| / |K \cup M|` (maps in [0, 1])."""
    keep = maps >= tau
    return float(((keep & masks).flatten(1).sum(1) / (keep | masks).flatten(1).sum(1).clamp_min(1)).mean())


def _scores(maps: torch.Tensor, masks: torch.Tensor) -> dict:
    from ..saliency._base import normalize_maps
    from ..saliency.metrics import pointing_game

    maps = normalize_maps(maps)
    ious = [mask_iou(maps, masks, t) for t in SETTINGS["taus"]]
    return {"pointing_game": pointing_game(maps, masks), "iou": ious, "mean_iou": sum(ious) / len(ious)}


def measure(split: str, device: torch.device | str = "cpu", progress: bool = False) -> dict:
    """Every method and solver setting on one split (``"val"`` or ``"heldout"``)."""
    from .. import zoo
    from ..saliency import AugmentedGradCAM
    from ..saliency._base import upsample_maps
    from .recipes.lite0 import shapes224

    s = SETTINGS
    n, seed = s[f"n_{split}"], s[f"{split}_seed"]
    data = shapes224(n, seed)
    model = zoo.load(s["model"], device)
    explainer = AugmentedGradCAM(model, s["target_layer"], n_augmentations=s["n_augmentations"],
                                 max_angle=s["max_angle"], max_shift=s["max_shift"], iterations=s["iterations"],
                                 seed=s["seed"], batch_size=s["batch_size"], progress=progress)
    x, y, masks = data.images.to(device), data.labels.to(device), data.masks.to(device)
    start = time.perf_counter()
    g = torch.cat([explainer.low_resolution_maps(x[i : i + 4], y[i : i + 4]) for i in range(0, n, 4)])
    theta = explainer.last_theta
    measured = time.perf_counter() - start
    size = tuple(x.shape[-2:])
    out = {"upsampled": _scores(upsample_maps(g[:, 0], size), masks), "prior": {}, "augmented": {},
           "measure_seconds": round(measured, 1), "shift_px": explainer.shift(size, tuple(g.shape[-2:]))}
    for lam in s["prior_lambda_tv"]:
        out["prior"][str(lam)] = _scores(explainer.solve(g[:, :1], theta[:1], size, lambda_tv=lam), masks)
    for n_aug in s["grid"]["n_augmentations"]:
        for lam in s["grid"]["lambda_tv"]:
            maps = explainer.solve(g[:, :n_aug], theta[:n_aug], size, lambda_tv=lam)
            out["augmented"][f"L={n_aug},lambda={lam}"] = {"n_augmentations": n_aug, "lambda_tv": lam,
                                                           **_scores(maps, masks)}
    return out


def run(device: torch.device | str = "cpu", progress: bool = True) -> dict:
    val = measure("val", device, progress)
    best = max(val["augmented"], key=lambda k: val["augmented"][k]["mean_iou"])
    best_prior = max(val["prior"], key=lambda k: val["prior"][k]["mean_iou"])
    held = measure("heldout", device, progress)
    return {"settings": SETTINGS, "val": val, "heldout": held, "chosen": best, "chosen_prior": best_prior,
            "torch": torch.__version__}


def load(path: str | Path = PATH) -> dict:
    """The stored study (see the module docstring)."""
    return json.loads(Path(path).read_text())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(PATH))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    result = run(args.device)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result["heldout"][k] for k in ("upsampled",)} | {"chosen": result["chosen"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
