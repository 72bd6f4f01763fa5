r"""``shapes_lite0``: the ImageNet-trained EfficientNet-Lite0 fine-tuned on 224×224 :class:`ShapesDataset` images.

The network is :func:`course_lib.pretrained.efficientnet_lite0` with its 1000-class linear layer replaced by a
new one for the five shape classes, after the unchanged global average pooling: conv → GAP → linear, with the
last stage and the head convolution at 7×7 for a 224×224 image (stride 32) — the regime of the CAM and Grad-CAM
papers, on images with pixel ground truth.

**Training.** The stem and ``blocks[:FROZEN]`` keep their ImageNet weights; their output on every training
image is computed once (the expensive part, most of the network's multiply-adds at high resolution) and cached,
then the remaining blocks, the head convolution and the new linear layer are trained on the cached features
with Adam and a cosine schedule, cross-entropy on the class of the (single) shape:

.. math::

    \min_{\theta_{\text{late}},\, W,\, b}\ \frac1N \sum_n \ell_{\text{CE}}\Big(W\,
        \mathrm{GAP}\big(f_{\theta_{\text{late}}}(\phi(x_n))\big) + b,\ y_n\Big),

with :math:`\phi` the frozen early stages. Batch normalization stays in inference mode (its ImageNet statistics
are kept; its scale and shift are trained with the convolutions). The recipe (how much to fine-tune, epochs,
learning rates) was chosen by Grad-CAM's pointing game on a validation seed (``VAL_SEED``), never on the
held-out seed.

**Checkpoint.** Only what training changed is stored — the fine-tuned blocks, the head convolution and the
linear layer, in float16 (the model is rounded to float16 before it is evaluated, so the recorded metrics are
those of the stored weights); :func:`course_lib.zoo.load` rebuilds the rest from the weights package.

**Held-out metrics** (``HELDOUT_SEED``): accuracy, and for Grad-CAM at ``head`` (for the true class, upsampled
bilinearly to 224×224) the pointing game and the mask IoU of the map thresholded at half its maximum.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ...data import ShapesDataset
from ...pretrained import efficientnet_lite0
from .. import Recipe

TRAIN_SEED, VAL_SEED, HELDOUT_SEED = 1, 3, 2

SETTINGS: dict = {
    "backbone": "course_lib.pretrained.efficientnet_lite0",
    "num_classes": 5,
    "size": 224,
    "frozen_blocks": 16,  # stem + all 16 blocks frozen (their ImageNet weights); head conv + classifier trained
    "n_train": 1000, "train_seed": TRAIN_SEED,
    "n_val": 200, "val_seed": VAL_SEED,
    "n_heldout": 300, "heldout_seed": HELDOUT_SEED,
    "epochs": 10, "batch_size": 32, "lr": 1e-3, "lr_classifier": 3e-3, "weight_decay": 0.0,
    "schedule": "cosine", "init_seed": 0, "seed": 0,
    "dtype": "float16",
    "iou_threshold": 0.5,
}


@lru_cache(maxsize=4)
def shapes224(n: int, seed: int, n_objects: int = 1) -> ShapesDataset:
    """A cached 224×224 :class:`ShapesDataset` with ``n`` images from ``seed``."""
    return ShapesDataset(n, size=SETTINGS["size"], seed=seed, n_objects=n_objects)


def _frozen(model: nn.Module) -> nn.Module:
    return nn.Sequential(model.normalize, model.stem, model.blocks[: SETTINGS["frozen_blocks"]])


def trained_modules(model: nn.Module) -> nn.ModuleDict:
    """The parts of ``shapes_lite0`` that fine-tuning changes: the late blocks, ``head`` and ``classifier``."""
    k = SETTINGS["frozen_blocks"]
    return nn.ModuleDict({f"blocks.{i}": model.blocks[i] for i in range(k, len(model.blocks))}
                         | {"head": model.head, "classifier": model.classifier})


def early_features(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 50,
                   progress: bool = False) -> torch.Tensor:
    """The frozen stages' output for ``images`` (computed in batches on ``device``, returned on ``device``)."""
    frozen = _frozen(model)
    out = []
    with torch.no_grad():
        for i in tqdm(range(0, images.shape[0], batch_size), desc="frozen features", disable=not progress,
                      leave=False):
            out.append(frozen(images[i : i + batch_size].to(device)))
    return torch.cat(out)


def late(model: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """From the frozen stages' output to the head's 1280×7×7 maps."""
    return model.head(model.blocks[SETTINGS["frozen_blocks"]:](features))


def build() -> nn.Module:
    """The pretrained network with a new, seeded 5-class linear layer; gradients off, eval mode."""
    model = efficientnet_lite0()
    torch.manual_seed(SETTINGS["init_seed"])
    model.classifier = nn.Linear(model.classifier.in_features, SETTINGS["num_classes"])
    model.requires_grad_(False)
    return model.eval()


def _round_to_storage(model: nn.Module) -> None:
    with torch.no_grad():
        for t in list(trained_modules(model).parameters()) + list(trained_modules(model).buffers()):
            if t.is_floating_point():
                t.copy_(t.to(getattr(torch, SETTINGS["dtype"])).to(t.dtype))


def train(model: nn.Module, device: torch.device, progress: bool) -> dict:
    s = SETTINGS
    data = shapes224(s["n_train"], s["train_seed"])
    feats = cached_early_features(model, s["n_train"], s["train_seed"], device, progress=progress)
    labels = data.labels.to(device)
    trained = trained_modules(model)
    trained.requires_grad_(True)
    tail = [p for name, m in trained.items() if name != "classifier" for p in m.parameters()]
    opt = torch.optim.Adam([{"params": tail, "lr": s["lr"]},
                            {"params": list(model.classifier.parameters()), "lr": s["lr_classifier"]}],
                           weight_decay=s["weight_decay"])
    n, bs = feats.shape[0], s["batch_size"]
    steps = s["epochs"] * math.ceil(n / bs)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(s["seed"])
    model.eval()  # batch norm keeps its ImageNet statistics
    losses = []
    for _ in tqdm(range(s["epochs"]), desc="shapes_lite0", disable=not progress):
        perm = torch.randperm(n, generator=g).to(device)
        total = 0.0
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            logits = model.classifier(late(model, feats[idx]).mean((2, 3)))
            loss = F.cross_entropy(logits, labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * idx.numel()
        losses.append(round(total / n, 4))
    model.requires_grad_(False)
    for p in model.parameters():
        p.grad = None
    _round_to_storage(model)
    val = localization_scores(model, s["n_val"], s["val_seed"], device, s["iou_threshold"])
    return {"train_loss": losses, "val_accuracy": val["accuracy"], "val_pointing_game": val["pointing_game"],
            "val_mask_iou": val["mask_iou"]}


_FEATURES: dict = {}


def cached_early_features(model: nn.Module, n: int, seed: int, device: torch.device, progress: bool = False):
    """:func:`early_features` of ``shapes224(n, seed)``, computed once per process and data set.

    The frozen stages are the weights package's, the same in every model :func:`build` makes, so the features
    depend only on the images (and the device)."""
    key = (n, seed, torch.device(device).type)
    if key not in _FEATURES:
        _FEATURES[key] = early_features(model, shapes224(n, seed).images, device, progress=progress)
    return _FEATURES[key].to(device)


def tail_model(model: nn.Module) -> nn.Sequential:
    """The fine-tuned part as a classifier of the frozen stages' output: late blocks, ``head`` (index 1),
    pooling and the linear layer (shares ``model``'s modules)."""
    return nn.Sequential(model.blocks[SETTINGS["frozen_blocks"]:], model.head, model.pool, model.flatten,
                         model.classifier)


def _mask_iou(maps: torch.Tensor, masks: torch.Tensor, tau: float) -> torch.Tensor:
    from ...saliency.metrics import mask_iou

    return mask_iou(maps, masks, tau, reduction="none")


def localization_scores(model: nn.Module, n: int, seed: int, device: torch.device, tau: float = 0.5) -> dict:
    """Accuracy, and Grad-CAM's pointing game and mask IoU at ``tau`` (true classes, maps upsampled to 224²)
    on ``n`` images of ``seed``.

    Grad-CAM at ``head`` only needs the network after the frozen stages, so it is computed on
    :func:`tail_model` from the cached frozen features: the same maps as on the whole model."""
    from ...saliency import GradCAM
    from ...saliency.metrics import pointing_game

    data = shapes224(n, seed)
    feats = cached_early_features(model, n, seed, device)
    tail = tail_model(model).eval()
    explainer = GradCAM(tail, "1")
    maps, correct = [], []
    for i in range(0, n, 50):
        f, y = feats[i : i + 50], data.labels[i : i + 50]
        with torch.no_grad():
            correct.append(tail(f).argmax(1).cpu() == y)
        low = explainer(f, y.to(device), upsample=False).cpu()
        maps.append(F.interpolate(low[:, None], size=data.images.shape[-2:], mode="bilinear",
                                  align_corners=False)[:, 0])
    from ...saliency import normalize_maps

    maps = normalize_maps(torch.cat(maps))
    return {"accuracy": float(torch.cat(correct).float().mean()),
            "pointing_game": pointing_game(maps, data.masks),
            "mask_iou": float(_mask_iou(maps, data.masks, tau).mean())}


def evaluate(model: nn.Module, device: torch.device) -> dict:
    s = SETTINGS
    scores = localization_scores(model, s["n_heldout"], s["heldout_seed"], device, s["iou_threshold"])
    return {"heldout_accuracy": scores["accuracy"], "heldout_pointing_game": scores["pointing_game"],
            "heldout_mask_iou": scores["mask_iou"]}


def export(model: nn.Module) -> dict:
    """Only the fine-tuned modules, in the storage dtype (the rest equals the weights package)."""
    dtype = getattr(torch, SETTINGS["dtype"])
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in trained_modules(model).state_dict().items()}


def restore(model: nn.Module, state: dict) -> None:
    """Load an :func:`export`-ed state into a model from :func:`build` (strict: every fine-tuned key, no other)."""
    target = trained_modules(model)
    expected = target.state_dict()
    if set(state) != set(expected):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise KeyError(f"state does not match the fine-tuned modules (missing {missing[:3]}, unexpected {extra[:3]})")
    target.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


RECIPES = [
    Recipe("shapes_lite0",
           "pretrained EfficientNet-Lite0, last blocks + head fine-tuned, new linear layer: 5 shape classes at 224²",
           build, train, evaluate, SETTINGS, export=export, restore=restore),
]
