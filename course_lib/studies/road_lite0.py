r"""Chapter 9's ROAD study: the faithfulness methods of ``faithfulness_lite0`` scored with ROAD (Rong et al.,
ICML 2022) on the same held-out ``shapes_lite0`` items, so that the chapter can compare the rankings that the
black substrate (deletion) and noisy linear imputation (ROAD) give, item by item.

Per item and method the study stores the ROAD curve, most relevant first (MoRF,
:func:`course_lib.saliency.metrics.road`): the class probability after the most salient fraction :math:`f` of
the pixels, :math:`f = 0.1, 0.3, 0.5, 0.7, 0.9` (the ROAD paper's 0.1 to 0.9, every other step: the
study shares a two-core machine), is removed and filled by noisy linear imputation (noise 0.01, seeded by
the item's index, filled images clipped to :math:`[0, 1]`). Lower is better.

**Ties.** ``road`` removes the pixels at or above the map's :math:`(1 - f)`-quantile. Grad-CAM maps are zero on
about a third of the image (the ReLU), so from :math:`f \approx 0.7` on the quantile is 0 and *every* pixel
would be removed at once — the image imputed from nothing, i.e. black, for the maps with many zeros only. The
study therefore hands ROAD each map's ranks instead of its values (pixels ordered by decreasing saliency, ties in
raster order, exactly as :func:`~course_lib.saliency.metrics.deletion_curve` orders them): the same order,
every quantile removing the fraction it names. Deletion and ROAD then differ only in the substrate.

One sparse solve and one forward pass per item, method and fraction: 50 items took 23 minutes (1362 s) on one
thread, niced, with the two-core machine at a load of about 20 (about 4 minutes of CPU); ``first`` and
``n_items`` select the items as in ``faithfulness_lite0``, whose first items these are.
"""

from __future__ import annotations

import torch

from . import Study, torch_threads
from ._lite0 import pool
from .faithfulness_lite0 import SETTINGS as FAITH
from .faithfulness_lite0 import maps_of

SETTINGS = {
    "model": FAITH["model"], "target_layer": FAITH["target_layer"],
    "n_pool": FAITH["n_pool"], "seed": FAITH["seed"], "size": FAITH["size"],
    "first": 0, "n_items": 50, "chunk": FAITH["chunk"],
    "methods": FAITH["methods"], "smooth": FAITH["smooth"],
    "random_grid": FAITH["random_grid"], "random_seed": FAITH["random_seed"],
    "fractions": [0.1, 0.3, 0.5, 0.7, 0.9], "order": "most", "noise": 0.01,
    "clip": [0.0, 1.0], "ties": "raster order (maps replaced by their ranks)",
}


def rank_maps(maps: torch.Tensor) -> torch.Tensor:
    """Each map replaced by its pixels' ranks, scaled to ``(0, 1]``: 1 for the most salient pixel, ties broken
    in raster order (a stable sort), so that every value is distinct and the order is deletion's."""
    n, h, w = maps.shape
    pixels = h * w
    order = torch.argsort(maps.flatten(1), dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(pixels, device=maps.device).expand(n, -1))
    return (1.0 - rank.double() / pixels).reshape(n, h, w)


def first_correct(model, data, n: int, device: str, batch_size: int = 25) -> torch.Tensor:
    """The first ``n`` indices of ``data`` that ``model`` classifies correctly, in order: the items of
    :func:`~course_lib.studies._lite0.correct_items`, without classifying the rest of the pool."""
    found = []
    with torch.no_grad():
        for start in range(0, len(data.images), batch_size):
            pred = model(data.images[start : start + batch_size].to(device)).argmax(1).cpu()
            found += (torch.nonzero(pred == data.labels[start : start + batch_size]).flatten() + start).tolist()
            if len(found) >= n:
                break
    return torch.tensor(found[:n])


def road_of(model, x: torch.Tensor, m: torch.Tensor, y: torch.Tensor, item: int, settings: dict) -> list[float]:
    """The ROAD (MoRF) probabilities of one item ``x`` ``(1, C, H, W)`` and its map ``m`` ``(1, H, W)``."""
    from ..saliency import metrics

    s = settings
    _, p = metrics.road(model, x, rank_maps(m), y, fractions=s["fractions"], order=s["order"], noise=s["noise"],
                        seed=int(item), clip=tuple(s["clip"]))
    return [round(float(v), 6) for v in p[0]]


def run(settings: dict, progress: bool = False, device: str = "cpu") -> dict:
    from tqdm.auto import tqdm

    from .. import zoo

    s = settings
    with torch_threads(1):  # stored on one thread; the check reproduces it on CI's two
        model = zoo.load(s["model"], device)
        data = pool(s["n_pool"], s["seed"], s["size"])
        items = first_correct(model, data, s["first"] + s["n_items"], device)[s["first"] :]
        out = {"items": items.tolist(), "fractions": s["fractions"],
               "methods": {name: {"road": []} for name in s["methods"]}}
        chunk = s["chunk"]  # the maps of faithfulness_lite0's chunks: Smooth Grad-CAM++ draws noise per batch
        for start in tqdm(range(0, len(items), chunk), desc="road", disable=not progress):
            idx = items[start : start + chunk]
            maps = maps_of(model, {**FAITH, **{k: s[k] for k in ("methods", "smooth", "random_grid",
                                                                 "random_seed", "target_layer")}}, idx, device)
            for j, item in enumerate(idx.tolist()):
                x, y = data.images[item : item + 1].to(device), data.labels[item : item + 1].to(device)
                for name, m in maps.items():
                    out["methods"][name]["road"].append(road_of(model, x, m[j : j + 1], y, item, s))
    return out


STUDY = Study(
    name="road_lite0",
    description=f"ROAD (noisy linear imputation, most relevant first) of {len(SETTINGS['methods'])} maps on "
                f"{SETTINGS['n_items']} held-out shapes_lite0 images (the items of faithfulness_lite0)",
    chapter="09_evaluating_explanations",
    settings=SETTINGS,
    quick={**SETTINGS, "n_items": 4, "methods": ["Grad-CAM", "random map"]},
    run=run,
    minutes=20,
    atol=2e-5,  # probabilities of the same float32 passes on one thread, rounded to 6 decimals
    rtol=1e-4,
)
