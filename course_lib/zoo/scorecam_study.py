r"""Score-CAM on chapter 9's ImageNet images: the stored maps of the faithfulness table.

Chapter 9 (section 9.3) scores every method on the eight course photos and ``n_crops`` random crops of them, at
160×160 pixels, with EfficientNet-Lite0, each image explained for the class the network predicts. Score-CAM
(:class:`course_lib.saliency.ScoreCAM`) needs one forward pass of the whole network per feature map of the
target layer — up to 1280 per image at ``head`` (the constant maps are skipped), about 15 s per image on two
CPU cores, three minutes for the twelve images: more than the chapter's budget. This script computes the maps
once and stores them **raw** (``upsample=False, normalize=False``: the 5×5 maps of ``head``, 25 numbers per
image) in ``checkpoints/scorecam_lite0.json`` (run ``python -m course_lib.zoo.scorecam_study``); the chapter
upsamples and normalizes them exactly as the explainer does (``upsample_maps`` then ``normalize_maps`` of
:mod:`course_lib.saliency._base`), recomputes the first ``n_check`` images live and asserts that they agree.

The images are built by :func:`chapter9_images` (the chapter calls it too), the targets are the network's
predictions on them (stored, and compared by the chapter).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from . import CHECKPOINTS
from ._study import load_study, study_main

PATH = CHECKPOINTS / "scorecam_lite0.json"

SETTINGS: dict = {
    "model": "efficientnet_lite0 (ImageNet)", "target_layer": "head",
    "size": 160, "n_crops": 4, "crop_seed": 0,  # chapter 9's SIZE, N_CROPS and random_crops' seed
    "batch_size": 64, "n_check": 1,
}


def random_crops(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """n random square crops of the course photos (side 40-80 % of the short side), resized to size x size."""
    from torchvision.transforms.functional import resized_crop

    from ..data import PHOTO_NAMES, load_photo

    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        photo = load_photo(PHOTO_NAMES[int(torch.randint(len(PHOTO_NAMES), (1,), generator=g))])
        _, h, w = photo.shape
        side = int(min(h, w) * float(torch.empty(1).uniform_(0.4, 0.8, generator=g)))
        top = int(torch.randint(h - side + 1, (1,), generator=g))
        left = int(torch.randint(w - side + 1, (1,), generator=g))
        out.append(resized_crop(photo, top, left, side, side, [size, size], antialias=True))
    return torch.stack(out).clamp(0, 1)


def chapter9_images(size: int = SETTINGS["size"], n_crops: int = SETTINGS["n_crops"],
                    seed: int = SETTINGS["crop_seed"]) -> torch.Tensor:
    """Section 9.3's images: the eight course photos at ``size``, then ``n_crops`` random crops of them."""
    from ..data import PHOTO_NAMES, load_photo

    photos = torch.stack([load_photo(name, size=size) for name in PHOTO_NAMES])
    return torch.cat([photos, random_crops(n_crops, size, seed)])


def explainer(model, progress: bool = False):
    """Score-CAM with this study's settings."""
    from ..saliency import ScoreCAM

    return ScoreCAM(model, SETTINGS["target_layer"], batch_size=SETTINGS["batch_size"], progress=progress)


def run(device: torch.device | str = "cpu", progress: bool = False) -> dict:
    from ..pretrained import efficientnet_lite0

    net = efficientnet_lite0(device)
    images = chapter9_images().to(device)
    with torch.no_grad():
        targets = net(images).argmax(1)
    start = time.perf_counter()
    raw = explainer(net, progress)(images, targets, upsample=False, normalize=False)
    seconds = time.perf_counter() - start
    return {"settings": SETTINGS, "targets": targets.tolist(), "raw_maps": raw.cpu().tolist(),
            "seconds": round(seconds, 1), "device": str(device), "torch": torch.__version__}


def stored_maps(study: dict, size: int = SETTINGS["size"]) -> torch.Tensor:
    """The stored raw maps upsampled to ``size`` and min-max normalized, as ``ScoreCAM.__call__`` does."""
    from ..saliency._base import normalize_maps, upsample_maps

    return normalize_maps(upsample_maps(torch.tensor(study["raw_maps"]), (size, size)))


def load(path: str | Path = PATH) -> dict:
    """The stored study (see the module docstring)."""
    return load_study(path)


def main(argv=None) -> int:
    return study_main(argv, __doc__.splitlines()[0], PATH, run, lambda r: {"seconds": r["seconds"]})


if __name__ == "__main__":
    raise SystemExit(main())
