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
(run ``python -m course_lib.zoo.augmented_study``; about ten CPU minutes). The Grad-CAM maps of the :math:`L`
copies are measured once per image; every solver setting of the grid is then solved from the same measurements
(a setting with fewer copies uses the first ones). The setting with the best mean mask IoU over the thresholds
on the validation seed is then reported, with the two baselines, on the held-out seed. Per-image values are
stored (pointing-game hits and the IoU averaged over the thresholds) so that the chapter can give bootstrap
intervals, of each mean and of the paired differences.

**The solver's grid.** On the validation images the chosen setting is also solved on grids of
:math:`k \cdot 7` pixels per side for several ``solve_scale`` :math:`k` (and at the full 224×224), with the
solver's time: the measurement behind :class:`~course_lib.saliency.AugmentedGradCAM`'s default :math:`k`.

**For chapter 9.** The held-out images are the 200 test images of chapter 9 (``ShapesDataset(200, size=224,
seed=2)``); for the chosen setting and for upsampled Grad-CAM the study also stores, per image, the pointing-game
hit and CorLoc of the box at every threshold of chapter 9's grid (maps min-max normalized as there), on both
splits, so that chapter 9 can choose the threshold on the validation images and report the test images.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from . import CHECKPOINTS
from ._study import load_study, study_main

PATH = CHECKPOINTS / "augmented_lite0.json"

SETTINGS: dict = {
    "model": "shapes_lite0", "target_layer": "head",
    "n_val": 64, "val_seed": 3, "n_heldout": 200, "heldout_seed": 2,
    "n_augmentations": 16, "max_angle": 15.0, "max_shift": None,  # None: one cell of the layer, 32 px
    "grid": {"n_augmentations": [8, 16], "lambda_tv": [0.002, 0.01, 0.05]},
    "prior_lambda_tv": [0.002, 0.01, 0.05],
    "iterations": 100, "seed": 0, "batch_size": 32, "solve_scale": 8,
    "solve_scale_sweep": [2, 4, 8, 16, None],  # None: the full 224×224
    "taus": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
    "corloc_taus": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],  # chapter 9's TAUS
}


def _per_image_iou(maps: torch.Tensor, masks: torch.Tensor, tau: float) -> torch.Tensor:
    keep = maps >= tau
    return (keep & masks).flatten(1).sum(1) / (keep | masks).flatten(1).sum(1).clamp_min(1)


def mask_iou(maps: torch.Tensor, masks: torch.Tensor, tau: float) -> float:
    r"""Mean IoU of ``{maps >= tau}`` and the true masks, :math:`|K \cap M| / |K \cup M|` (maps in [0, 1])."""
    return float(_per_image_iou(maps, masks, tau).mean())


def _scores(maps: torch.Tensor, masks: torch.Tensor) -> dict:
    from ..saliency._base import normalize_maps
    from ..saliency.metrics import pointing_game

    maps = normalize_maps(maps)
    per_tau = torch.stack([_per_image_iou(maps, masks, t) for t in SETTINGS["taus"]])  # (taus, N)
    ious = [float(v) for v in per_tau.mean(1)]
    hits = pointing_game(maps, masks, reduction="none")
    return {"pointing_game": float(hits.float().mean()), "iou": ious, "mean_iou": sum(ious) / len(ious),
            "per_image": {"hit": [int(v) for v in hits], "mean_iou": [round(float(v), 5) for v in per_tau.mean(0)]}}


def corloc_per_image(maps: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor) -> dict:
    """Chapter 9's localization numbers of ``maps``, per image: pointing-game hit and CorLoc at each threshold."""
    from ..saliency._base import normalize_maps
    from ..saliency.metrics import corloc, pointing_game, saliency_to_box

    maps = normalize_maps(maps)
    return {"hit": [int(v) for v in pointing_game(maps, masks, reduction="none")],
            "corloc": {str(t): [int(v) for v in corloc(saliency_to_box(maps, t), boxes, reduction="none")]
                       for t in SETTINGS["corloc_taus"]}}


def make_explainer(model, progress: bool = False, **overrides):
    """The study's :class:`~course_lib.saliency.AugmentedGradCAM` (``overrides``: e.g. the chosen ``lambda_tv``)."""
    from ..saliency import AugmentedGradCAM

    s = SETTINGS
    kwargs = {k: s[k] for k in ("n_augmentations", "max_angle", "max_shift", "iterations", "seed", "batch_size",
                                "solve_scale")}
    return AugmentedGradCAM(model, s["target_layer"], progress=progress, **(kwargs | overrides))


def measure(split: str, device: torch.device | str = "cpu", progress: bool = False) -> tuple[dict, dict]:
    """Every method and solver setting on one split (``"val"`` or ``"heldout"``); also the measurements
    ``{"g", "theta", "data"}`` so that :func:`run` can solve more settings from them."""
    from .. import zoo
    from ..saliency._base import upsample_maps
    from .recipes.lite0 import shapes224

    s = SETTINGS
    n, seed = s[f"n_{split}"], s[f"{split}_seed"]
    data = shapes224(n, seed)
    model = zoo.load(s["model"], device)
    explainer = make_explainer(model, progress)
    x, y, masks = data.images.to(device), data.labels.to(device), data.masks.to(device)
    start = time.perf_counter()
    g = torch.cat([explainer.low_resolution_maps(x[i : i + 4], y[i : i + 4]) for i in range(0, n, 4)])
    theta = explainer.last_theta
    measured = time.perf_counter() - start
    size = tuple(x.shape[-2:])
    up = upsample_maps(g[:, 0], size)
    out = {"upsampled": _scores(up, masks), "prior": {}, "augmented": {},
           "measure_seconds": round(measured, 1), "shift_px": explainer.shift(size, tuple(g.shape[-2:]))}
    for lam in s["prior_lambda_tv"]:
        out["prior"][str(lam)] = _scores(explainer.solve(g[:, :1], theta[:1], size, lambda_tv=lam), masks)
    for n_aug in s["grid"]["n_augmentations"]:
        for lam in s["grid"]["lambda_tv"]:
            maps = explainer.solve(g[:, :n_aug], theta[:n_aug], size, lambda_tv=lam)
            out["augmented"][f"L={n_aug},lambda={lam}"] = {"n_augmentations": n_aug, "lambda_tv": lam,
                                                           **_scores(maps, masks)}
    out["chapter9"] = {"Grad-CAM": corloc_per_image(up, masks, data.boxes.to(device))}
    return out, {"g": g, "theta": theta, "data": data, "explainer": explainer}


def _solve_chosen(work: dict, setting: dict, device, **overrides) -> torch.Tensor:
    x = work["data"].images
    n_aug = setting["n_augmentations"]
    return work["explainer"].solve(work["g"][:, :n_aug], work["theta"][:n_aug], tuple(x.shape[-2:]),
                                   lambda_tv=setting["lambda_tv"], **overrides)


def run(device: torch.device | str = "cpu", progress: bool = False) -> dict:
    val, val_work = measure("val", device, progress)
    best = max(val["augmented"], key=lambda k: val["augmented"][k]["mean_iou"])
    best_prior = max(val["prior"], key=lambda k: val["prior"][k]["mean_iou"])
    setting = val["augmented"][best]
    masks = val_work["data"].masks.to(device)
    sweep = {}
    for k in SETTINGS["solve_scale_sweep"]:
        start = time.perf_counter()
        maps = _solve_chosen(val_work, setting, device, solve_scale=k)
        seconds = time.perf_counter() - start
        grid = val_work["explainer"].last_solution.maps.shape[-1]
        sweep[str(k)] = {"grid": grid, "solver_seconds": round(seconds, 2), **_scores(maps, masks)}
    held, held_work = measure("heldout", device, progress)
    for result, work in ((val, val_work), (held, held_work)):
        maps = _solve_chosen(work, setting, device)
        result["chapter9"]["Augmented Grad-CAM"] = corloc_per_image(maps, work["data"].masks.to(device),
                                                                     work["data"].boxes.to(device))
    return {"settings": SETTINGS, "val": val, "heldout": held, "chosen": best, "chosen_prior": best_prior,
            "solve_scale_sweep": sweep, "torch": torch.__version__}


def load(path: str | Path = PATH) -> dict:
    """The stored study (see the module docstring)."""
    return load_study(path)


def _summary(result: dict) -> dict:
    held = result["heldout"]
    return {"chosen": result["chosen"], "upsampled": held["upsampled"]["mean_iou"],
            "augmented": held["augmented"][result["chosen"]]["mean_iou"],
            "sweep": {k: (v["mean_iou"], v["solver_seconds"]) for k, v in result["solve_scale_sweep"].items()}}


def main(argv=None) -> int:
    return study_main(argv, __doc__.splitlines()[0], PATH, run, _summary, indent=1)


if __name__ == "__main__":
    raise SystemExit(main())
