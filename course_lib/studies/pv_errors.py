r"""Perception Visualization on the wrong decisions of ``shapes_gap``: enough errors to compare (chapter 8).

``shapes_gap`` gets about one held-out shape in twenty wrong, so the 400 images a chapter can afford hold fewer
than twenty errors. This study classifies ``n`` images from each seed of ``seeds`` (seed 2 is the zoo's
held-out set; 401 and 402 are used nowhere else) and stores, per image:

* ``label``, ``predicted``: the true class and the decision of ``shapes_gap``;
* ``contrast``: the object's contrast with a 4-pixel ring around it, :func:`contrast` (the colour distance
  between the mean inside the object and the mean on the ring), in the image and in the reconstructions of
  the last feature map (``features``, decoder ``shapes_gap_decoder``) and of ``features.9``
  (``shapes_gap_decoder_mid``);
* ``judge_image``, ``judge_rec``: the class a second network, ``shapes_gmp`` (trained separately, with max
  pooling), gives the image and the reconstruction from ``features``: a stand-in for a person who looks at the
  reconstruction and names the shape;
* ``self_rec``: the class ``shapes_gap`` itself gives the reconstruction.

About a minute on one idle CPU thread (11 minutes when it was stored, on a machine with a load average
of about 16 on two cores).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import Study, torch_threads

SETTINGS: dict = {"seeds": [2, 401, 402], "n": 1000, "size": 64, "ring": 4, "batch_size": 250}


def contrast(images: torch.Tensor, masks: torch.Tensor, ring: int = 4) -> torch.Tensor:
    r"""Colour distance :math:`\|\bar x_{\text{in}} - \bar x_{\text{ring}}\|_2` between the mean of ``images``
    on each object mask and on a ``ring``-pixel band around it; ``(N,)``."""
    m = masks[:, None].float()
    band = F.max_pool2d(m, 2 * ring + 1, stride=1, padding=ring) - m
    inside = (images * m).sum((2, 3)) / m.sum((2, 3))
    around = (images * band).sum((2, 3)) / band.sum((2, 3))
    return (inside - around).norm(dim=1)


def run(settings: dict, progress: bool = False, device: str = "cpu") -> dict:
    from .. import zoo
    from ..data import ShapesDataset
    from ..saliency import PerceptionVisualization

    with torch_threads(1):  # as the stored results were made
        model, judge = zoo.load("shapes_gap", device=device), zoo.load("shapes_gmp", device=device)
        pv = PerceptionVisualization(model, "features", zoo.load("shapes_gap_decoder", device=device))
        pv_mid = PerceptionVisualization(model, "features.9", zoo.load("shapes_gap_decoder_mid", device=device))
        out = {}
        for seed in settings["seeds"]:
            data = ShapesDataset(settings["n"], size=settings["size"], seed=seed)
            rows: dict[str, list] = {k: [] for k in ("label", "predicted", "contrast_image", "contrast_rec",
                                                     "contrast_rec_mid", "judge_image", "judge_rec", "self_rec")}
            for s in range(0, settings["n"], settings["batch_size"]):
                x = data.images[s:s + settings["batch_size"]].to(device)
                masks = data.masks[s:s + settings["batch_size"]].to(device)
                with torch.no_grad():
                    rec, rec_mid = pv.reconstruct(x).clamp(0, 1), pv_mid.reconstruct(x).clamp(0, 1)
                    rows["predicted"] += model(x).argmax(1).tolist()
                    rows["judge_image"] += judge(x).argmax(1).tolist()
                    rows["judge_rec"] += judge(rec).argmax(1).tolist()
                    rows["self_rec"] += model(rec).argmax(1).tolist()
                    for key, y in (("contrast_image", x), ("contrast_rec", rec), ("contrast_rec_mid", rec_mid)):
                        rows[key] += contrast(y, masks, settings["ring"]).cpu().tolist()
                rows["label"] += data.labels[s:s + settings["batch_size"]].tolist()
            out[f"seed={seed}"] = rows
    return out


def items(results: dict) -> dict[str, torch.Tensor]:
    """The per-image values of every seed, concatenated: ``{key: tensor (N,)}``."""
    keys = next(iter(results.values())).keys()
    return {k: torch.tensor([v for rows in results.values() for v in rows[k]]) for k in keys}


STUDY = Study(
    name="pv_errors",
    description="Perception Visualization of shapes_gap on 3000 held-out shapes: contrast kept, judged classes",
    chapter="08_perturbation_and_perception",
    settings=SETTINGS,
    quick={**SETTINGS, "seeds": [2]},
    run=run,
    minutes=1,
    atol=1e-5,  # float32 convolutions; class indices compare exactly
    rtol=1e-4,
)
