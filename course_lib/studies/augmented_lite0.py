r"""Augmented Grad-CAM at 7×7 on ``shapes_lite0`` (chapter 7, and chapter 9's localization table): every solver
setting of a grid scored per image on a validation seed and on the held-out seed.

On 224×224 :class:`~course_lib.data.ShapesDataset` images and the 7×7 ``head`` layer of ``shapes_lite0``
(stride 32, the papers' regime) the study compares

* **upsampled Grad-CAM** — the 7×7 map, bilinearly upsampled;
* **TV prior alone** — the same solver with :math:`L = 1` (the image itself): total-variation denoising of the
  upsampled map, no new measurement;
* **Augmented Grad-CAM** (Morbidelli et al., ICASSP 2020) with the course's solver — :math:`L` rotated and
  shifted copies (shifts up to one 32-pixel cell, rotations up to ``max_angle``), every :math:`(L, \lambda)` of
  ``grid``.

The Grad-CAM maps of the :math:`L` copies are measured once per image; every setting is solved from the same
measurements (a setting with fewer copies uses the first ones). Per image the study stores the pointing-game
hit and the mask IoU (:func:`course_lib.saliency.metrics.mask_iou`) averaged over ``taus``; a full run also
stores the means over each split (``pointing_game``, ``iou`` per threshold, ``mean_iou``), which the quick slice
does not recompute. The chapters choose settings on the validation seed (:func:`chosen`) and report the
held-out seed. For chapter 9, per image, the pointing-game hit and CorLoc at every threshold of ``corloc_taus``
of upsampled Grad-CAM and of Augmented Grad-CAM with ``chapter9_setting`` — the setting with the best mean IoU
on the validation seed, which chapter 9 asserts.

**The solver's grid** (full run only): on the validation images the chapter-9 setting is also solved on grids
of :math:`k \cdot 7` pixels per side for each ``solve_scale_sweep`` :math:`k` (``None``: 224×224), with the
solver's time.

About 10 minutes on an idle two-core CPU (``python -m course_lib.studies run augmented_lite0``).
"""

from __future__ import annotations

import time

import torch

from . import Study

SETTINGS: dict = {
    "model": "shapes_lite0", "target_layer": "head",
    "n_val": 64, "val_seed": 3, "n_heldout": 200, "heldout_seed": 2,  # the pools the items are taken from
    "n_val_items": 64, "n_heldout_items": 200,
    "n_augmentations": 16, "max_angle": 15.0, "max_shift": None,  # None: one cell of the layer, 32 px
    "grid": {"n_augmentations": [8, 16], "lambda_tv": [0.002, 0.01, 0.05]},
    "prior_lambda_tv": [0.002, 0.01, 0.05],
    "iterations": 100, "seed": 0, "batch_size": 32, "solve_scale": 8,
    "solve_scale_sweep": [2, 4, 8, 16, None],  # None: the full 224×224
    "taus": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
    "corloc_taus": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],  # chapter 9's thresholds
    "chapter9_setting": "L=16,lambda=0.05",
}
QUICK = {**SETTINGS, "n_val_items": 4, "n_heldout_items": 4, "solve_scale_sweep": []}


def key(n_augmentations: int, lambda_tv: float) -> str:
    """The name of a grid setting in the results, e.g. ``"L=16,lambda=0.05"``."""
    return f"L={n_augmentations},lambda={lambda_tv}"


def _scores(maps: torch.Tensor, masks: torch.Tensor, taus: list, full: bool) -> dict:
    from ..saliency import normalize_maps
    from ..saliency.metrics import mask_iou, pointing_game

    maps = normalize_maps(maps)
    per_tau = torch.stack([mask_iou(maps, masks, t, reduction="none") for t in taus])  # (taus, N)
    hits = pointing_game(maps, masks, reduction="none")
    out = {"per_image": {"hit": [int(v) for v in hits], "mean_iou": [round(float(v), 5) for v in per_tau.mean(0)]}}
    if full:
        ious = [float(v) for v in per_tau.mean(1)]
        out |= {"pointing_game": float(hits.float().mean()), "iou": ious, "mean_iou": sum(ious) / len(ious)}
    return out


def corloc_per_image(maps: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor, taus: list) -> dict:
    """Chapter 9's localization numbers of ``maps``, per image: pointing-game hit and CorLoc at each threshold."""
    from ..saliency import normalize_maps
    from ..saliency.metrics import corloc, pointing_game, saliency_to_box

    maps = normalize_maps(maps)
    return {"hit": [int(v) for v in pointing_game(maps, masks, reduction="none")],
            "corloc": {str(t): [int(v) for v in corloc(saliency_to_box(maps, t), boxes, reduction="none")]
                       for t in taus}}


def make_explainer(model, settings: dict = SETTINGS, progress: bool = False, **overrides):
    """The study's :class:`~course_lib.saliency.AugmentedGradCAM` (``overrides``: e.g. ``lambda_tv``)."""
    from ..saliency import AugmentedGradCAM

    kwargs = {k: settings[k] for k in ("n_augmentations", "max_angle", "max_shift", "iterations", "seed",
                                       "batch_size", "solve_scale")}
    return AugmentedGradCAM(model, settings["target_layer"], progress=progress, **(kwargs | overrides))


def split_data(settings: dict, split: str):
    """``(images, labels, masks, boxes)`` of the split's items: the first ``n_{split}_items`` of its pool."""
    from ..zoo.recipes.lite0 import shapes224

    data = shapes224(settings[f"n_{split}"], settings[f"{split}_seed"])
    n = settings[f"n_{split}_items"]
    return data.images[:n], data.labels[:n], data.masks[:n], data.boxes[:n]


def _measure(settings: dict, split: str, device, progress: bool) -> tuple[dict, dict]:
    from .. import zoo
    from ..saliency import upsample_maps

    s = settings
    full = s[f"n_{split}_items"] == s[f"n_{split}"]
    x, y, masks, boxes = (t.to(device) for t in split_data(s, split))
    explainer = make_explainer(zoo.load(s["model"], device), s, progress)
    start = time.perf_counter()
    measured = [explainer.low_resolution_maps(x[i : i + 4], y[i : i + 4]) for i in range(0, len(x), 4)]
    g = torch.cat([m.maps for m in measured])
    theta = measured[-1].theta  # an int seed: the same warps for every chunk
    size = tuple(x.shape[-2:])
    up = upsample_maps(g[:, 0], size)
    out = {"upsampled": _scores(up, masks, s["taus"], full), "prior": {}, "augmented": {},
           "shift_px": explainer.shift(size, tuple(g.shape[-2:]))}
    if full:
        out["measure_seconds"] = round(time.perf_counter() - start, 1)
    for lam in s["prior_lambda_tv"]:
        out["prior"][str(lam)] = _scores(explainer.solve(g[:, :1], theta[:1], size, lambda_tv=lam).maps, masks,
                                         s["taus"], full)
    for n_aug in s["grid"]["n_augmentations"]:
        for lam in s["grid"]["lambda_tv"]:
            maps = explainer.solve(g[:, :n_aug], theta[:n_aug], size, lambda_tv=lam).maps
            out["augmented"][key(n_aug, lam)] = {"n_augmentations": n_aug, "lambda_tv": lam,
                                                 **_scores(maps, masks, s["taus"], full)}
    chosen = out["augmented"][s["chapter9_setting"]]
    aug = explainer.solve(g[:, : chosen["n_augmentations"]], theta[: chosen["n_augmentations"]], size,
                          lambda_tv=chosen["lambda_tv"]).maps
    out["chapter9"] = {"Grad-CAM": corloc_per_image(up, masks, boxes, s["corloc_taus"]),
                       "Augmented Grad-CAM": corloc_per_image(aug, masks, boxes, s["corloc_taus"])}
    return out, {"g": g, "theta": theta, "explainer": explainer, "masks": masks, "size": size, "chosen": chosen}


def run(settings: dict, progress: bool = False, device: str = "cpu") -> dict:
    val, work = _measure(settings, "val", device, progress)
    sweep = {}
    chosen = work["chosen"]
    for k in settings["solve_scale_sweep"]:
        start = time.perf_counter()
        maps, solution = work["explainer"].solve(work["g"][:, : chosen["n_augmentations"]],
                                                 work["theta"][: chosen["n_augmentations"]], work["size"],
                                                 lambda_tv=chosen["lambda_tv"], solve_scale=k)
        seconds = time.perf_counter() - start
        grid = solution.maps.shape[-1]
        sweep[str(k)] = {"grid": grid, "solver_seconds": round(seconds, 2),
                         **_scores(maps, work["masks"], settings["taus"], True)}
    heldout, _ = _measure(settings, "heldout", device, progress)
    return {"val": val, "heldout": heldout, "solve_scale_sweep": sweep}


def chosen(results: dict) -> tuple[str, str]:
    """The grid setting and the prior's λ with the best mean IoU on the validation seed."""
    val = results["val"]
    return (max(val["augmented"], key=lambda k: val["augmented"][k]["mean_iou"]),
            max(val["prior"], key=lambda k: val["prior"][k]["mean_iou"]))


STUDY = Study(
    name="augmented_lite0",
    description="Augmented Grad-CAM (course solver, L x lambda grid), TV prior and upsampled Grad-CAM on shapes_lite0",
    chapter="07_gradient_saliency",
    settings=SETTINGS,
    quick=QUICK,
    run=run,
    minutes=10,
    atol=2e-5,  # IoUs rounded to 5 decimals; hits are counts (a map maximum can move only on a float tie)
    rtol=0.0,
)
