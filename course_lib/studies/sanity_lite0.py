r"""Chapter 9's sanity check: cascading randomization of ``shapes_lite0`` (Adebayo et al., NeurIPS 2018).

Starting from the trained network, the layers are re-initialized one stage at a time from the output towards
the input — the classifier, then ``head``, then the blocks from the last to the first, then the stem — each
stage keeping the earlier randomizations (*cascading*). After every stage each method explains the same images
for their true class, and its map is compared with the map of the trained network by Spearman's rank
correlation over the 224×224 pixels (:func:`scipy.stats.spearmanr`, ties given their average rank). A method
that explains the *model* must change as the model is destroyed (ρ falls towards 0); a map that stays similar
is explaining the image, not the network.

A map that is constant (every pixel equal: nothing ranked) has no rank correlation; it is stored as ``None``
with ``constant: true`` and is not counted as a change: the chapter reports how many maps went constant.

Re-initialization calls each module's ``reset_parameters`` (convolutions and the linear layer: PyTorch's
default Kaiming-uniform initialization; batch norm: unit scale, zero shift) and ``reset_running_stats``
(mean 0, variance 1), under ``torch.manual_seed(seed + stage)``.

Items are the first correctly classified images of the held-out pool (as in :mod:`.faithfulness_lite0`).
For the first ``n_figure`` items the maps of every stage are stored average-pooled to ``figure_side`` pixels
(the chapter's figure). About 10 minutes on the two-core CPU shared by four users.
"""

from __future__ import annotations

import torch
from torch import nn

from . import Study
from ._lite0 import POOL, correct_items, pool, pooled

STAGES = {
    "classifier": ["classifier"], "head": ["head"], "blocks.15": ["blocks.15"], "blocks.14": ["blocks.14"],
    "blocks.12-13": ["blocks.13", "blocks.12"], "blocks.8-11": [f"blocks.{i}" for i in (11, 10, 9, 8)],
    "blocks.0-7": [f"blocks.{i}" for i in range(7, -1, -1)], "stem": ["stem"],
}
METHODS = ["Grad-CAM", "Grad-CAM++", "Guided Backprop", "Guided Grad-CAM"]

SETTINGS = {
    "model": "shapes_lite0", "target_layer": "head", "n_pool": POOL["n_pool"], "pool_seed": POOL["seed"],
    "size": POOL["size"], "n_items": 30, "chunk": 10, "stages": STAGES, "methods": METHODS, "seed": 0,
    "n_figure": 1, "figure_side": 56,
}


def randomize(model: nn.Module, names: list[str], seed: int) -> None:
    """Re-initialize the modules ``names`` of ``model`` in place (see the module docstring)."""
    torch.manual_seed(seed)
    for name in names:
        for m in model.get_submodule(name).modules():
            if hasattr(m, "reset_running_stats"):
                m.reset_running_stats()
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()


def all_maps(model, x: torch.Tensor, y: torch.Tensor, layer: str) -> dict:
    """The four methods' normalized maps; Guided Grad-CAM as guided backpropagation times the upsampled raw
    Grad-CAM map (what :class:`~course_lib.saliency.GuidedGradCAM` computes, tested equal), to save a pass."""
    from ..saliency import GradCAM, GradCAMPlusPlus, GuidedBackprop, normalize_maps, upsample_maps

    size = tuple(x.shape[-2:])
    cam = upsample_maps(GradCAM(model, layer)(x, y, upsample=False, normalize=False), size)
    guided = GuidedBackprop(model)(x, y, normalize=False)
    return {"Grad-CAM": normalize_maps(cam), "Grad-CAM++": GradCAMPlusPlus(model, layer)(x, y),
            "Guided Backprop": normalize_maps(guided), "Guided Grad-CAM": normalize_maps(guided * cam)}


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """Spearman's ρ of two maps over their pixels (scipy, ties averaged); ``None`` if either is constant."""
    from scipy.stats import spearmanr

    if bool(a.max() == a.min()) or bool(b.max() == b.min()):
        return None
    return round(float(spearmanr(a.flatten().double().cpu().numpy(), b.flatten().double().cpu().numpy())[0]), 6)


def run(settings: dict, progress: bool = False, device: str = "cpu") -> dict:
    from tqdm.auto import tqdm

    from .. import zoo

    s = settings
    model = zoo.load(s["model"], device)
    data = pool(s["n_pool"], s["pool_seed"], s["size"])
    items = correct_items(model, s["n_pool"], s["pool_seed"], s["size"], device)[: s["n_items"]]
    x_all, y_all = data.images[items].to(device), data.labels[items].to(device)

    def maps_now():
        out = {m: [] for m in s["methods"]}
        for i in range(0, len(items), s["chunk"]):
            for name, m in all_maps(model, x_all[i : i + s["chunk"]], y_all[i : i + s["chunk"]],
                                    s["target_layer"]).items():
                out[name].append(m)
        return {name: torch.cat(v) for name, v in out.items()}

    def figure(maps):
        k = s["n_figure"]
        return {n: [[round(float(v), 4) for v in row.flatten()] for row in pooled(m[:k], s["figure_side"])]
                for n, m in maps.items()}

    trained = maps_now()
    out = {"items": items.tolist(), "stages": list(s["stages"]), "rho": {}, "constant": {},
           "figure": {"trained": figure(trained)}}
    for index, (stage, names) in enumerate(tqdm(s["stages"].items(), desc="cascade", disable=not progress)):
        randomize(model, names, s["seed"] + index)
        now = maps_now()
        out["rho"][stage] = {n: [rank_correlation(a, b) for a, b in zip(trained[n], now[n], strict=True)]
                             for n in s["methods"]}
        out["constant"][stage] = {n: [bool(m.max() == m.min()) for m in now[n]] for n in s["methods"]}
        out["figure"][stage] = figure(now)
    return out


def study(seed: int, name: str, n_figure: int = 1, minutes: int = 10) -> Study:
    """The cascade under re-initialization seed ``seed`` (stage ``k`` uses ``seed + k``): one shard of the check."""
    settings = {**SETTINGS, "seed": seed, "n_figure": n_figure}
    return Study(
        name=name,
        description=f"cascading randomization of shapes_lite0 (re-initialization seed {seed}): Spearman rho of "
                    "each method's map with the trained one",
        chapter="09_evaluating_explanations",
        settings=settings,
        quick={**settings, "n_items": 2},
        run=run,
        minutes=minutes,
        atol=2e-3,  # rank correlations of float32 maps: ties among near-equal pixels may reorder
        rtol=0.0,
    )


STUDY = study(0, "sanity_lite0")
