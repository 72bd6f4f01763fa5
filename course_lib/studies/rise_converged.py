r"""RISE run to convergence on one photo: the map of chapter 8 with enough masks to trust it.

Chapter 8 measures the Monte Carlo error of RISE, :math:`e(N) \propto 1/\sqrt N`, and finds it above 1 (relative
to the map's variation) at the few hundred masks a chapter can afford. This study classifies the cat photo
(``chelsea``, 160×160, EfficientNet-Lite0 with its ImageNet weights) through ``n_masks`` RISE masks and stores
the softmax probability of the predicted class on every masked image: the map, its pixel-wise variance and its
error all follow from these numbers and the masks, which :func:`chunk_masks` redraws from their seeds.

The masks come in chunks of ``chunk`` masks, chunk ``k`` drawn by :func:`course_lib.saliency.rise.rise_masks`
from seed ``seed + k``, so that the first chunks of a long run are exactly a shorter run (the quick slice).
One CPU thread (set by :func:`run`), about 30 ms per masked image: about 5 minutes of one idle core (25 minutes when it
was stored, on a machine with a load average of about 20 on two cores).
"""

from __future__ import annotations

import time

import torch

from . import Study, torch_threads

SETTINGS: dict = {
    "model": "efficientnet_lite0 (ImageNet)", "photo": "chelsea", "size": 160, "grid_size": 5, "p": 0.5,
    "n_masks": 8000, "chunk": 250, "seed": 1000, "batch_size": 50,
}


def chunk_masks(k: int, settings: dict = SETTINGS, device: str | torch.device = "cpu") -> torch.Tensor:
    """The ``k``-th chunk of the study's masks, ``(chunk, size, size)``."""
    from ..saliency.rise import rise_masks

    s = settings["size"]
    return rise_masks(settings["chunk"], (s, s), grid_size=settings["grid_size"], p=settings["p"],
                      seed=settings["seed"] + k, device=device)


def image(settings: dict = SETTINGS) -> torch.Tensor:
    """The photo the study explains, ``(3, size, size)``."""
    from ..data import load_photo

    return load_photo(settings["photo"], size=settings["size"])


def probabilities(net, x: torch.Tensor, masks: torch.Tensor, target: int, batch_size: int) -> torch.Tensor:
    """Softmax probability of ``target`` for ``x`` seen through each mask, ``(len(masks),)``."""
    with torch.no_grad():
        return torch.cat([torch.softmax(net(x * masks[s:s + batch_size, None]), 1)[:, target]
                          for s in range(0, len(masks), batch_size)])


def run(settings: dict, progress: bool = False, device: str = "cpu") -> dict:
    from tqdm.auto import tqdm

    from ..pretrained import IMAGENET_CATEGORIES, efficientnet_lite0

    if settings["n_masks"] % settings["chunk"]:
        raise ValueError(f"n_masks ({settings['n_masks']}) must be a multiple of chunk ({settings['chunk']})")
    with torch_threads(1):  # as the stored results were made
        net = efficientnet_lite0(device)
        x = image(settings).to(device)
        with torch.no_grad():
            target = int(net(x[None]).argmax(1))
        start = time.perf_counter()
        probs = []
        for k in tqdm(range(settings["n_masks"] // settings["chunk"]), disable=not progress):
            probs += probabilities(net, x, chunk_masks(k, settings, device), target,
                                   settings["batch_size"]).cpu().tolist()
    out = {"target": target, "label": IMAGENET_CATEGORIES[target], "probs": probs}
    if settings["n_masks"] == SETTINGS["n_masks"]:
        out["seconds"] = round(time.perf_counter() - start, 1)
    return out


STUDY = Study(
    name="rise_converged",
    description="RISE on one photo with 8,000 masks: the probabilities that weigh every mask (chapter 8)",
    chapter="08_perturbation_and_perception",
    settings=SETTINGS,
    quick={**SETTINGS, "n_masks": 500},
    run=run,
    minutes=5,
    atol=1e-5,  # softmax probabilities of float32 forward passes
    rtol=1e-4,
)
