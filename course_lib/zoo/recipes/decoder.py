r"""Zoo recipe of Perception Visualization (chapter 8): a decoder that inverts ``shapes_gap``'s features.

* ``shapes_gap_decoder`` — :class:`course_lib.saliency.perception.FeatureDecoder` trained to reconstruct
  64×64 :class:`ShapesDataset` images from the output of ``shapes_gap``'s ``features`` (its last conv feature
  map, 64×16×16), with the classifier frozen in eval mode:

  .. math::

      \min_G \frac{1}{N} \sum_{n} \big\| G\big(A(x_n)\big) - x_n \big\|_2^2 .

  Held-out quality is reported as PSNR, :math:`10 \log_{10}(1 / \mathrm{MSE})` dB per image, and SSIM
  (Wang et al., 2004; scikit-image's implementation), each averaged over the held-out images, next to the
  same numbers for a 16×16 thumbnail of the image upsampled back (the resolution of the feature map).
* ``shapes_gap_decoder_mid`` — the same recipe one block earlier, on ``features.9`` (the ReLU after the second
  block, 32×32×32, stride 2; one upsampling, compared with a 32×32 thumbnail): how much more an earlier layer
  keeps of the image.

The training images come from seeds that neither ``shapes_gap``'s recipe nor the chapters use for held-out
data. Every run is a pure function of the settings and the seed on the CPU (GPU kernels may differ in the
last bits).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import ShapesDataset
from ...device import seed_everything
from ...saliency.metrics import psnr, ssim
from ...saliency.perception import FeatureDecoder
from ...training import fit
from ...visualization import LayerProbe

SETTINGS: dict = {
    "classifier": "shapes_gap", "target_layer": "features", "in_channels": 64,
    "n_train": 3000, "train_seed": 300, "n_test": 1000, "test_seed": 301, "size": 64,
    "channels": [128, 48, 24],
    "epochs": 40, "batch_size": 32, "lr": 3e-3, "weight_decay": 0.0, "schedule": "cosine", "seed": 0,
}

#: the same recipe one block earlier: ``features.9``, the ReLU after the second block (32×32×32, stride 2)
SETTINGS_MID: dict = {
    **SETTINGS, "target_layer": "features.9", "in_channels": 32, "channels": [96, 32], "epochs": 15,
}


class LayerInversion(nn.Module):
    """``decoder(A(x))`` with ``A`` the output of ``classifier``'s ``target_layer``; the classifier stays frozen.

    ``train()`` only ever puts the decoder in training mode: the classifier's batch-norm statistics must not
    change, and no gradient flows into it.
    """

    def __init__(self, classifier: nn.Module, target_layer: str, decoder: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier.eval()
        for p in self.classifier.parameters():
            p.requires_grad_(False)
        self.probe = LayerProbe(classifier, target_layer)  # runs the classifier up to the layer only
        self.decoder = decoder

    def train(self, mode: bool = True) -> LayerInversion:
        self.training = mode
        self.decoder.train(mode)
        self.classifier.eval()
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.probe(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.features(images))


def build(settings: dict = SETTINGS) -> FeatureDecoder:
    """The decoder, freshly initialized from ``settings["seed"]`` (the same weights at every call)."""
    seed_everything(settings["seed"])
    return FeatureDecoder(settings["in_channels"], channels=tuple(settings["channels"]))


def _classifier(settings: dict, device) -> nn.Module:
    from .. import load

    return load(settings["classifier"], device=device)


def train(model: FeatureDecoder, device, progress: bool = False, settings: dict = SETTINGS) -> dict:
    """Train the decoder ``model`` in place (the classifier comes from the zoo, frozen)."""
    device = torch.device(device) if device is not None else None
    inversion = LayerInversion(_classifier(settings, device), settings["target_layer"], model)
    images = ShapesDataset(settings["n_train"], size=settings["size"], seed=settings["train_seed"]).images
    # The classifier is frozen: compute its features once, then train the decoder on (features, image) pairs.
    features = torch.cat([inversion.features(images[i : i + 500].to(device)).cpu() for i in range(0, len(images), 500)])
    history = fit(
        model, (features, images), epochs=settings["epochs"], lr=settings["lr"], batch_size=settings["batch_size"],
        weight_decay=settings["weight_decay"], schedule=settings["schedule"], loss_fn=F.mse_loss, metrics={},
        device=device, seed=settings["seed"], progress=progress,
    )
    # the decoder inverts one particular classifier: record which, so that a retrained classifier is noticed
    return {"train_loss": history["train_loss"], "classifier_sha256": _classifier_sha256(settings)}


def _classifier_sha256(settings: dict) -> str:
    from .. import info

    return info(settings["classifier"])["sha256"]


def thumbnail(images: torch.Tensor, side: int) -> torch.Tensor:
    """The baseline a decoder is compared with: ``images`` area-averaged to ``side``×``side`` and bilinearly
    upsampled back to their size (as much detail as a feature map of that resolution could hold per pixel)."""
    small = F.interpolate(images, size=(side, side), mode="area")
    return F.interpolate(small, size=images.shape[-2:], mode="bilinear", align_corners=False)


def reconstruction_quality(decoder: nn.Module, device=None, settings: dict = SETTINGS, batch_size: int = 250) -> dict:
    """Held-out PSNR and SSIM of the decoder and of the 16×16-thumbnail baseline."""
    device = torch.device(device) if device is not None else next(decoder.parameters()).device
    decoder.to(device)
    inversion = LayerInversion(_classifier(settings, device), settings["target_layer"], decoder).eval()
    images = ShapesDataset(settings["n_test"], size=settings["size"], seed=settings["test_seed"]).images
    recs = []
    with torch.no_grad():
        for i in range(0, images.shape[0], batch_size):
            recs.append(inversion(images[i : i + batch_size].to(device)).cpu())
    rec = torch.cat(recs).clamp(0, 1)
    thumb = thumbnail(images, settings["size"] // 2 ** (len(settings["channels"]) - 1)).clamp(0, 1)
    return {
        "psnr_db": round(float(psnr(rec, images).mean()), 3),
        "ssim": round(float(ssim(rec, images).mean()), 4),
        "thumbnail_psnr_db": round(float(psnr(thumb, images).mean()), 3),
        "thumbnail_ssim": round(float(ssim(thumb, images).mean()), 4),
        "n_test": int(images.shape[0]),
    }


def _recipes():
    from .. import Recipe

    def recipe(name: str, settings: dict, what: str) -> Recipe:
        return Recipe(
            name=name,
            description=f"FeatureDecoder inverting shapes_gap's {what} to 64×64 images, MSE loss; "
            "held-out PSNR and SSIM (Perception Visualization, chapter 8)",
            build=lambda: build(settings),
            train=lambda model, device, progress=False: train(model, device, progress, settings),
            evaluate=lambda model, device=None: reconstruction_quality(model, device, settings),
            settings=settings,
        )

    return [
        recipe("shapes_gap_decoder", SETTINGS, "'features' (its last feature map, 64×16×16)"),
        recipe("shapes_gap_decoder_mid", SETTINGS_MID, "'features.9' (after the second block, 32×32×32)"),
    ]


RECIPES = _recipes()
