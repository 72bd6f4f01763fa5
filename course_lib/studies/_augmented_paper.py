r"""Shared code of the ``augmented_paper_lite0*`` studies: Augmented Grad-CAM under Morbidelli et al.'s protocol
next to the course's tuned solver, the total-variation prior alone and upsampled Grad-CAM, on ``shapes_lite0``.

Per item (a 224×224 :class:`~course_lib.data.ShapesDataset` image, the 7×7 ``head`` layer, the true class) every
arm is scored by four metrics, per item so that paired intervals can be recomputed:

* **CorLoc** of the box of the largest connected region above :math:`\tau` times the map's maximum
  (:func:`~course_lib.saliency.metrics.saliency_to_box`), at every :math:`\tau` of ``corloc_taus`` — 0.15 is the
  paper's box;
* the **pointing game** (zero tolerance);
* **mask IoU** at every :math:`\tau` of ``iou_taus``.

The arms:

* ``upsampled`` — the 7×7 Grad-CAM map of the image, bilinearly upsampled;
* ``paper/x{m}`` — :data:`~course_lib.saliency.augmented.PAPER_PROTOCOL` (100 copies, rotations
  :math:`U(-0.5, 0.5)` rad, shifts :math:`\pm 30` px, images and maps zero-filled, each :math:`g_l` divided
  by its own maximum, :math:`D` the bilinear resize, Adam with learning rate :math:`10^{-3}` for 200 steps from
  zeros on the full 224×224 grid) with :math:`\lambda_{tv}` and :math:`\lambda_{eng}` multiplied by
  ``m`` (``m = 1``: the paper's values);
* ``paper_converged`` — the same problem (``m = 1``) solved to convergence: Adam with learning rate ``converged``'s
  ``step_size`` for its ``iterations`` steps, the iterate with the lowest objective (the paper's 200 steps at
  :math:`10^{-3}` move a pixel by at most 0.2 and stop far from the minimum);
* ``course/L={L},lambda={λ},k={k}`` — the course's solver (16 copies, ±15°, shifts of one 32-px cell,
  reflection-padded images, area :math:`D`, subgradient descent from upsampled :math:`g_1`, 100 steps on a
  :math:`7k` grid);
* ``prior/lambda={λ}`` — the course's solver with :math:`L = 1`: total-variation denoising of the upsampled map.

For the paper arm (``m = 1``) and the converged one the study also keeps, per item, the objective every ``history_every`` steps and the
data residual of every copy :math:`\| D A_l \hat h - g_l \|_2` next to :math:`\| g_l \|_2` (the residual of
:math:`h = 0`); the same for the course arm with 16 copies and λ = 0.05. For the shard's first item it keeps the
paper arm's 100 measurements :math:`g_l` (``first_item_g``), from which a chapter re-solves live.

Items are the ``first_item``-th to ``first_item + n_items - 1``-th of the pool ``shapes224(pool, seed)``.
"""

from __future__ import annotations

import time

import torch

from . import Study, torch_threads

PAPER_MULTIPLIERS = [1.0]
COURSE = {"n_augmentations": 16, "max_angle": 15.0, "max_shift": None, "iterations": 100, "seed": 0,
          "image_padding": "reflection", "lambda_grid": [0.002, 0.01, 0.05], "l_grid": [8, 16],
          "k_grid": [8], "prior_lambda": [0.002, 0.01, 0.05, 0.2]}


def settings(split: str, seed: int, first_item: int, n_items: int) -> dict:
    """The settings of one shard (``split``: ``"val"`` or ``"heldout"``)."""
    return {"model": "shapes_lite0", "target_layer": "head", "split": split, "pool": 200, "seed": seed,
            "first_item": first_item, "n_items": n_items, "paper_seed": 0, "paper_multipliers": PAPER_MULTIPLIERS,
            "converged": {"step_size": 0.02, "iterations": 400},
            "course": COURSE, "batch_size": 25,
            "corloc_taus": [0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
            "iou_taus": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "history_every": 10}


def study(name: str, split: str, seed: int, first_item: int, n_items: int, minutes: int) -> Study:
    """The study of items ``first_item`` … ``first_item + n_items - 1`` of ``shapes224(200, seed)`` (``split``:
    ``"val"`` or ``"heldout"``); its quick slice is the first item."""
    s = settings(split, seed=seed, first_item=first_item, n_items=n_items)
    return Study(
        name=name,
        description="Augmented Grad-CAM: paper protocol, course solver, TV prior, Grad-CAM "
                    f"({split} items {first_item}-{first_item + n_items - 1} of shapes224(200, seed={seed}))",
        chapter="07_gradient_saliency",
        settings=s,
        quick={**s, "n_items": 1},
        run=run,
        minutes=minutes,
        atol=2e-5,  # IoUs rounded to 5 decimals, one thread; counts exact unless a float tie moves a maximum
        rtol=1e-4,  # objectives (hundreds) summed in float32
    )


def paper_key(m: float) -> str:
    return f"paper/x{m:g}"


def course_key(n_aug: int, lam: float, k: int) -> str:
    return f"course/L={n_aug},lambda={lam:g},k={k}"


def prior_key(lam: float) -> str:
    return f"prior/lambda={lam:g}"


def score(maps: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor, s: dict) -> dict:
    """Per-item hit, mask IoU per threshold and CorLoc per threshold of ``maps`` ``(N, H, W)``."""
    from ..saliency import normalize_maps
    from ..saliency.metrics import corloc, mask_iou, pointing_game, saliency_to_box

    maps = normalize_maps(maps)
    return {"hit": [int(v) for v in pointing_game(maps, masks, reduction="none")],
            "iou": {f"{t:g}": [round(float(v), 5) for v in mask_iou(maps, masks, t, reduction="none")]
                    for t in s["iou_taus"]},
            "corloc": {f"{t:g}": [int(v) for v in corloc(saliency_to_box(maps, t), boxes, reduction="none")]
                       for t in s["corloc_taus"]}}


def paper_explainer(model, s: dict, multiplier: float = 1.0):
    from ..saliency.augmented import PAPER_PROTOCOL, AugmentedGradCAM

    p = dict(PAPER_PROTOCOL)
    p["lambda_tv"], p["mu"] = p["lambda_tv"] * multiplier, p["mu"] * multiplier
    return AugmentedGradCAM(model, s["target_layer"], seed=s["paper_seed"], batch_size=s["batch_size"], **p)


def course_explainer(model, s: dict):
    from ..saliency.augmented import AugmentedGradCAM

    c = s["course"]
    return AugmentedGradCAM(model, s["target_layer"], n_augmentations=c["n_augmentations"],
                            max_angle=c["max_angle"], max_shift=c["max_shift"], iterations=c["iterations"],
                            seed=c["seed"], image_padding=c["image_padding"], batch_size=s["batch_size"])


def items(s: dict):
    """``(images, labels, masks, boxes)`` of the shard."""
    from ..zoo.recipes.lite0 import shapes224

    data = shapes224(s["pool"], s["seed"])
    sl = slice(s["first_item"], s["first_item"] + s["n_items"])
    return data.images[sl], data.labels[sl], data.masks[sl], data.boxes[sl]


def _diagnostics(explainer, sol, g: torch.Tensor, theta: torch.Tensor, every: int) -> dict:
    """Objective every ``every`` steps, and per-copy residuals of the solve ``sol`` (a ``SuperResolution``), for the
    scaled measurements."""
    from ..saliency.superres import data_residuals

    scaled = _scaled(g, explainer.scaling)
    res = data_residuals(sol.maps.to(torch.float32), scaled, theta, explainer.downsampling)
    return {"objective": [round(float(v), 4) for v in sol.objective[::every, 0]],
            "residual": [round(float(v), 5) for v in res[0]],
            "measurement_norm": [round(float(v), 5) for v in scaled[0].flatten(1).norm(dim=1)]}


def _scaled(g: torch.Tensor, scaling: str) -> torch.Tensor:
    if scaling == "each":
        own = g.flatten(2).amax(2)
        return g / torch.where(own > 0, own, torch.ones_like(own))[:, :, None, None]
    first = g[:, 0].flatten(1).amax(1)
    first = torch.where(first > 0, first, torch.ones_like(first))
    return g / first[:, None, None, None]


def run(s: dict, progress: bool = False, device: str = "cpu") -> dict:
    """Every arm on every item of the shard, one item at a time, on one thread (so that a check on another
    machine's thread count reproduces the numbers)."""
    from .. import zoo
    from ..saliency import upsample_maps

    with torch_threads(1):
        x, y, masks, boxes = (t.to(device) for t in items(s))
        model = zoo.load(s["model"], device)
        paper = paper_explainer(model, s)
        course = course_explainer(model, s)
        c = s["course"]
        per_arm: dict[str, list] = {}
        diag = {"paper": [], "paper_converged": [], "course": []}
        seconds = {"paper_gradcam": 0.0, "paper_solver": 0.0}
        first_g = None
        size = tuple(x.shape[-2:])
        for i in range(len(x)):
            xi, yi, mi, bi = x[i : i + 1], y[i : i + 1], masks[i : i + 1], boxes[i : i + 1]
            maps = {}
            start = time.perf_counter()
            g, theta = paper.low_resolution_maps(xi, yi)[:2]
            mid = time.perf_counter()
            maps["upsampled"] = upsample_maps(g[:, 0], size)
            for m in s["paper_multipliers"]:
                maps[paper_key(m)], sol = paper.solve(g, theta, size, lambda_tv=paper.lambda_tv * m, mu=paper.mu * m)
                if m == 1.0:
                    seconds["paper_solver"] += time.perf_counter() - mid
                    diag["paper"].append(_diagnostics(paper, sol, g, theta, s["history_every"]))
            seconds["paper_gradcam"] += mid - start
            conv = s["converged"]
            maps["paper_converged"], sol = paper.solve(g, theta, size, keep="best", **conv)
            diag["paper_converged"].append(_diagnostics(paper, sol, g, theta, conv["iterations"] // 20))
            if i == 0:
                first_g = [[[round(float(v), 6) for v in row] for row in gl] for gl in g[0]]
            gc, tc = course.low_resolution_maps(xi, yi)[:2]
            for n_aug in c["l_grid"]:
                for lam in c["lambda_grid"]:
                    for k in c["k_grid"]:
                        maps[course_key(n_aug, lam, k)], sol = course.solve(gc[:, :n_aug], tc[:n_aug], size,
                                                                            lambda_tv=lam, solve_scale=k)
                        if (n_aug, lam, k) == (16, 0.05, 8):
                            diag["course"].append(_diagnostics(course, sol, gc, tc, s["history_every"]))
            for lam in c["prior_lambda"]:
                maps[prior_key(lam)] = course.solve(gc[:, :1], tc[:1], size, lambda_tv=lam).maps
            for name, mp in maps.items():
                sc = score(mp, mi, bi, s)
                arm = per_arm.setdefault(name, {"hit": [], "iou": {}, "corloc": {}})
                arm["hit"] += sc["hit"]
                for kind in ("iou", "corloc"):
                    for t, v in sc[kind].items():
                        arm[kind].setdefault(t, []).extend(v)
        # (wall times are in the provenance: they are not reproducible, so not results)
        return {"arms": per_arm, "diagnostics": diag, "first_item_g": first_g}
