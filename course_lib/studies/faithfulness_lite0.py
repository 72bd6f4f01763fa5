r"""Chapter 9's faithfulness study: deletion, insertion, average drop and increase in confidence of each method
on held-out ``shapes_lite0`` images that the network classifies correctly, at 224×224.

Items are the correctly classified images of the recipe's held-out set (``ShapesDataset(300, size=224,
seed=2)``), in order; each is explained for its class. Per item and method the study stores the deletion curve
(black substrate) at ``n_steps`` + 1 fractions (:func:`course_lib.saliency.metrics.deletion_curve`) and
:math:`O^c`, the class probability on the explanation map :math:`L \odot x` (average drop and increase in
confidence); per item :math:`Y^c`, the probability on the image, and the probability on the insertion
substrate (the image blurred with a Gaussian of kernel 11 and σ = 5, where every insertion curve starts). The
insertion curve (:func:`~course_lib.saliency.metrics.insertion_curve`) is stored for ``insertion_methods``
only: on these images the blurred shape is still recognized, so insertion cannot separate maps (the chapter
shows it on these two). The chapter computes the areas, the means and the paired intervals from the file.

Every point of a curve is a forward pass of the whole network, :math:`n - 1` per map and image besides the
shared ends. ``first`` and ``n_items`` select the items, so that more can be added as further shards (another module
calling :func:`study` with the next ``first``). 50 items took 66 minutes on the two-core CPU shared by four
users (about 80 s per item; about a quarter of that on an idle machine).
"""

from __future__ import annotations

import torch

from . import Study
from ._lite0 import POOL, correct_items, pool, random_maps

METHODS = ["Grad-CAM", "Grad-CAM++", "Smooth Grad-CAM++ (maps)", "Guided Grad-CAM", "random map"]

SETTINGS = {
    "model": "shapes_lite0", "target_layer": "head", **POOL,
    "first": 0, "n_items": 50, "chunk": 4,
    "methods": METHODS,
    "smooth": {"n_samples": 8, "sigma": 0.15, "average": "maps", "seed": 0},
    "random_grid": 7, "random_seed": 0,
    "insertion_methods": ["Grad-CAM", "random map"],
    "n_steps": 20, "blur_kernel": 11, "blur_sigma": 5.0, "baseline": 0.0, "batch_size": 64,
}


def explainers(model, settings: dict) -> dict:
    """The explainers of ``settings["methods"]`` (the random map is not one)."""
    from ..saliency import GradCAM, GradCAMPlusPlus, GuidedGradCAM, SmoothGradCAMPlusPlus

    layer = settings["target_layer"]
    return {"Grad-CAM": GradCAM(model, layer), "Grad-CAM++": GradCAMPlusPlus(model, layer),
            "Smooth Grad-CAM++ (maps)": SmoothGradCAMPlusPlus(model, layer, **settings["smooth"]),
            "Guided Grad-CAM": GuidedGradCAM(model, layer)}


def maps_of(model, settings: dict, items: torch.Tensor, device: str) -> dict:
    """Every method's normalized maps of the pool's images ``items`` (one call per method)."""
    data = pool(settings["n_pool"], settings["seed"], settings["size"])
    x, y = data.images[items].to(device), data.labels[items].to(device)
    out = {name: e(x, y) for name, e in explainers(model, settings).items()}
    out["random map"] = random_maps(items.tolist(), settings["size"], settings["random_grid"],
                                    settings["random_seed"]).to(device)
    return {name: out[name] for name in settings["methods"]}


def run(settings: dict, progress: bool = False, device: str = "cpu") -> dict:
    from torchvision.transforms.functional import gaussian_blur
    from tqdm.auto import tqdm

    from .. import zoo
    from ..saliency import metrics

    s = settings
    model = zoo.load(s["model"], device)
    data = pool(s["n_pool"], s["seed"], s["size"])
    items = correct_items(model, s["n_pool"], s["seed"], s["size"], device)[s["first"] : s["first"] + s["n_items"]]
    out = {"items": items.tolist(), "labels": data.labels[items].tolist(), "p_image": [], "p_blurred": [],
           "methods": {name: {"deletion": [], "insertion": [], "p_map": []} for name in s["methods"]}}
    for start in tqdm(range(0, len(items), s["chunk"]), desc="faithfulness", disable=not progress):
        chunk = items[start : start + s["chunk"]]
        x, y = data.images[chunk].to(device), data.labels[chunk].to(device)
        maps = maps_of(model, s, chunk, device)
        for name, m in maps.items():
            fractions, p_del = metrics.deletion_curve(model, x, m, y, n_steps=s["n_steps"], baseline=s["baseline"],
                                                      batch_size=s["batch_size"])
            row = out["methods"][name]
            row["deletion"] += [[round(float(v), 6) for v in c] for c in p_del]
            if name in s["insertion_methods"]:
                _, p_ins = metrics.insertion_curve(model, x, m, y, n_steps=s["n_steps"], blur_kernel=s["blur_kernel"],
                                                   blur_sigma=s["blur_sigma"], batch_size=s["batch_size"])
                row["insertion"] += [[round(float(v), 6) for v in c] for c in p_ins]
            with torch.no_grad():
                p_map = model(x * m[:, None]).softmax(1).gather(1, y[:, None])[:, 0]
            row["p_map"] += [round(float(v), 6) for v in p_map]
        with torch.no_grad():
            out["p_image"] += [round(float(v), 6) for v in model(x).softmax(1).gather(1, y[:, None])[:, 0]]
            blurred = gaussian_blur(x, [s["blur_kernel"]] * 2, [s["blur_sigma"]] * 2)
            out["p_blurred"] += [round(float(v), 6) for v in model(blurred).softmax(1).gather(1, y[:, None])[:, 0]]
    out["fractions"] = [round(float(f), 6) for f in fractions]
    return out


def study(first: int, name: str) -> Study:
    settings = {**SETTINGS, "first": first}
    return Study(
        name=name,
        description=f"deletion/insertion ({SETTINGS['n_steps']} steps), average drop of {len(METHODS)} maps on "
                    f"{SETTINGS['n_items']} held-out shapes_lite0 images (items {first}-{first + SETTINGS['n_items'] - 1})",
        chapter="09_evaluating_explanations",
        settings=settings,
        quick={**settings, "n_items": 4},
        run=run,
        minutes=30,  # measured: 66 under a load of 6-11 on two cores; split further if that is the usual load
        atol=2e-5,  # probabilities of the same float32 passes, rounded to 6 decimals
        rtol=1e-4,
    )


STUDY = study(0, "faithfulness_lite0")
