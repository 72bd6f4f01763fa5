r"""Score-CAM on chapter 9's ImageNet images: the stored maps of its qualitative row.

Chapter 9 shows every method on the eight course photos and ``n_crops`` random crops of them, at 160×160
pixels, with the ImageNet-trained EfficientNet-Lite0, each image explained for the class the network predicts.
Score-CAM (:class:`course_lib.saliency.ScoreCAM`) needs one forward pass of the whole network per non-constant
feature map of the target layer — up to 1280 per image at ``head``, about 15 s per image on two CPU cores.
The study stores the maps **raw** (``upsample=False, normalize=False``: the 5×5 maps of ``head``, 25 numbers
per image); :func:`stored_maps` upsamples and normalizes them exactly as the explainer does.

The images are built by :func:`chapter9_images` (the chapter calls it too); the targets are the network's
predictions on them. About 3 minutes on an idle two-core CPU.
"""

from __future__ import annotations

import time

import torch

from . import Study

SETTINGS: dict = {
    "model": "efficientnet_lite0 (ImageNet)", "target_layer": "head",
    "size": 160, "n_crops": 4, "crop_seed": 0, "batch_size": 64,
    "n_images": 12,  # the 8 photos, then the crops
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
    """The eight course photos at ``size``, then ``n_crops`` random crops of them."""
    from ..data import PHOTO_NAMES, load_photo

    photos = torch.stack([load_photo(name, size=size) for name in PHOTO_NAMES])
    return torch.cat([photos, random_crops(n_crops, size, seed)])


def explainer(model, settings: dict = SETTINGS, progress: bool = False):
    """Score-CAM with this study's settings."""
    from ..saliency import ScoreCAM

    return ScoreCAM(model, settings["target_layer"], batch_size=settings["batch_size"], progress=progress)


def run(settings: dict, progress: bool = False, device: str = "cpu") -> dict:
    from ..pretrained import efficientnet_lite0

    net = efficientnet_lite0(device)
    images = chapter9_images(settings["size"], settings["n_crops"], settings["crop_seed"])
    images = images[: settings["n_images"]].to(device)
    with torch.no_grad():
        targets = net(images).argmax(1)
    start = time.perf_counter()
    raw = explainer(net, settings, progress)(images, targets, upsample=False, normalize=False)
    out = {"targets": targets.tolist(), "raw_maps": raw.cpu().tolist()}
    if settings["n_images"] == SETTINGS["n_images"]:
        out["seconds"] = round(time.perf_counter() - start, 1)
    return out


def stored_maps(results: dict, size: int = SETTINGS["size"]) -> torch.Tensor:
    """The stored raw maps upsampled to ``size`` and min-max normalized, as ``ScoreCAM.__call__`` does."""
    from ..saliency import normalize_maps, upsample_maps

    return normalize_maps(upsample_maps(torch.tensor(results["raw_maps"]), (size, size)))


STUDY = Study(
    name="scorecam_lite0",
    description="Score-CAM's raw head maps of chapter 9's photos and crops (EfficientNet-Lite0, ImageNet)",
    chapter="09_evaluating_explanations",
    settings=SETTINGS,
    quick={**SETTINGS, "n_images": 1},
    run=run,
    minutes=3,
    atol=1e-4,  # weighted sums of float32 feature maps, weights from softmax probabilities
    rtol=1e-4,
)
