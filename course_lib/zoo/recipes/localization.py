r"""Zoo recipes of chapter 4 (localization), and the helpers of its pretrained-backbone study.

* ``shapes_localizer`` — :class:`course_lib.localization.Localizer` on 64×64 :class:`ShapesDataset` images,
  trained with :math:`L = L_\text{cls} + \alpha L_\text{box}` (cross-entropy + MSE).
* ``shapes_quick_localizer`` — :class:`course_lib.localization.QuickLocalizer` (one sigmoid class output,
  four sigmoid box outputs, binary cross-entropy) on the two-class subset circle (0) vs square (1).

* ``shapes_frozen_localizer`` — the common starting point: a :class:`course_lib.models.FeatureHead` (a shared
  1×1 neck, a softmax class head on its global average, a linear box head on the whole map) on the *frozen*
  last map of EfficientNet-Lite0 (1280×4×4 for the 64×64 shapes resized to 128×128, cached).
* ``shapes_pretrained_localizer`` — :class:`PretrainedLocalizer`: the ImageNet-trained EfficientNet-Lite0
  (:func:`course_lib.pretrained.efficientnet_lite0`) on 64×64 shapes resized to 128×128, the stem and
  ``blocks[0..7]`` frozen (their 80×8×8 output computed once and cached in ``~/.cache/course_lib/features``),
  ``blocks[8..10]`` fine-tuned under a class + box head (:class:`Lite0TopLocalizer`, box layer with one hidden
  layer), on the training images and
  their horizontal mirrors (cached as extra copies, boxes mirrored; :data:`ZOO_FINETUNE_SETTINGS`). Only the
  fine-tuned part is stored, in float16 (rounded before evaluation, so the recorded metrics are the stored
  weights').

The study ``localization_pretrained`` (:mod:`course_lib.studies`) sweeps :math:`\alpha` for a
:class:`course_lib.models.FeatureHead` on the *frozen* last map (1280×4×4) on a validation split and trains a
from-scratch :class:`Localizer` on the same images for the same number of epochs (:func:`pretrained_comparison`);
the study ``localization_finetune`` compares the fine-tuned network with the from-scratch one over training-set
sizes. Chapter 4 reads both.

Every run is a pure function of the settings below and the seed (on the CPU; GPU kernels may differ in the
last bits).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ...data import ShapesDataset
from ...device import seed_everything
from ...localization import (
    Localizer,
    QuickLocalizer,
    evaluate_localizer,
    multitask_loss,
    paired_box_iou,
    quick_loss,
)
from ...models import FeatureHead, frozen_features
from ...training import fit
from .. import Recipe
from .._cache import cached

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"

LOCALIZER_SETTINGS: dict = {
    "n_train": 20000, "train_seed": 100, "n_test": 2000, "test_seed": 101, "size": 64,
    "width": 32, "norm": "batch", "blocks": [1, 2, 2], "grid": 4, "hidden": 64,
    "alpha": 10.0, "box_loss": "mse", "epochs": 40, "batch_size": 128, "lr": 2e-3, "weight_decay": 1e-4,
    "schedule": "cosine", "flips": True, "seed": 0,
}
QUICK_SETTINGS: dict = {
    **LOCALIZER_SETTINGS, "n_train": 25000, "n_test": 5000, "classes": [0, 1], "alpha": 1.0, "epochs": 16,
}


# -------------------------------------------------------------------------------------------------- data
class Flips(Dataset):
    """Random horizontal and vertical flips with the box flipped along (every shape class is symmetric under
    flips up to its random rotation, so the label stays)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, boxes: torch.Tensor, flips: bool) -> None:
        self.images, self.labels, self.boxes, self.flips = images, labels, boxes, flips

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int):
        x, b = self.images[i], self.boxes[i].clone()
        if self.flips:
            h, v = torch.rand(2).tolist()
            if h < 0.5:
                x, b[0] = x.flip(-1), 1 - b[0]
            if v < 0.5:
                x, b[1] = x.flip(-2), 1 - b[1]
        return x, (self.labels[i], b)


def shapes_split(settings: dict, part: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(images, labels, boxes)`` of the recipe's training (``part="train"``) or held-out set.

    With ``settings["classes"]`` only those classes are kept (relabelled by their position in the list)."""
    n, seed = (settings["n_train"], settings["train_seed"]) if part == "train" else (settings["n_test"], settings["test_seed"])
    ds = ShapesDataset(n, size=settings["size"], seed=seed)
    images, labels, boxes = ds.images, ds.labels, ds.boxes
    if settings.get("classes") is not None:
        keep = torch.isin(labels, torch.tensor(settings["classes"]))
        images, labels, boxes = images[keep], labels[keep], boxes[keep]
        labels = torch.searchsorted(torch.tensor(settings["classes"]), labels)
    return images, labels, boxes


# ------------------------------------------------------------------------------------------- objectives
def _mean_iou(out, y) -> float:
    pred = out[1] if out[0].ndim == 2 else torch.sigmoid(out[1])
    pred = torch.cat([pred[:, :2], pred[:, 2:].clamp_min(1e-6)], dim=1)  # a box of no size covers nothing
    return float(paired_box_iou(pred, y[1]).mean())


def _accuracy(out, y) -> float:
    pred = out[0].argmax(1) if out[0].ndim == 2 else (out[0] > 0).long()
    return float((pred == y[0]).float().mean())


def objective(kind: str = "multitask", alpha: float = 1.0, box_loss: str = "mse"):
    """``(loss_fn, metrics)`` for :func:`course_lib.training.fit` on ``(image, (label, box))`` batches.

    ``kind``: ``"multitask"`` (:func:`multitask_loss`), ``"box"`` (the box MSE alone) or ``"quick"``
    (:func:`quick_loss`)."""
    if kind == "multitask":
        def loss_fn(out, y):
            return multitask_loss(out[0], out[1], y[0], y[1], alpha=alpha, box_loss=box_loss).total
    elif kind == "box":
        def loss_fn(out, y):
            return F.mse_loss(out[1], y[1])
    elif kind == "quick":
        def loss_fn(out, y):
            return quick_loss(out[0], out[1], y[0], y[1], alpha=alpha).total
    else:
        raise ValueError(f"kind must be 'multitask', 'box' or 'quick', got {kind!r}")
    return loss_fn, {"acc": _accuracy, "iou": _mean_iou}


def train_localizer(model, settings: dict, device, progress: bool = False, kind: str = "multitask") -> dict:
    """Train ``model`` in place on the recipe's data; return the training history."""
    images, labels, boxes = shapes_split(settings, "train")
    loss_fn, metrics = objective(kind, settings["alpha"], settings["box_loss"])
    return fit(
        model, Flips(images, labels, boxes, settings["flips"]), epochs=settings["epochs"], lr=settings["lr"],
        batch_size=settings["batch_size"], weight_decay=settings["weight_decay"], schedule=settings["schedule"],
        loss_fn=loss_fn, metrics=metrics, device=device, seed=settings["seed"], progress=progress,
    )


def evaluate_on_test(model, settings: dict) -> dict:
    """Held-out ``accuracy``, ``mean_iou``, ``correct_rate`` (class right and IoU >= 0.5) and ``n_test``."""
    images, labels, boxes = shapes_split(settings, "test")
    return {**evaluate_localizer(model, images, labels, boxes), "n_test": int(images.shape[0])}


def build_localizer(settings: dict = LOCALIZER_SETTINGS) -> Localizer:
    seed_everything(settings["seed"])
    return Localizer(num_classes=5, width=settings["width"], norm=settings["norm"], grid=settings["grid"],
                     hidden=settings["hidden"], blocks=settings["blocks"])


def _build_quick(settings: dict = QUICK_SETTINGS) -> QuickLocalizer:
    seed_everything(settings["seed"])
    return QuickLocalizer(width=settings["width"], norm=settings["norm"], grid=settings["grid"], hidden=settings["hidden"],
                          blocks=settings["blocks"])


def _recipe(name: str, description: str, settings: dict, quick: bool) -> Recipe:
    kind = "quick" if quick else "multitask"

    def build():
        return (_build_quick if quick else build_localizer)(settings)

    def train(model, device, progress: bool = False) -> dict:
        hist = train_localizer(model, settings, device, progress, kind=kind)
        return {k: hist[k] for k in ("train_loss", "train_acc", "train_iou")}

    def evaluate(model, device=None) -> dict:
        return {f"heldout_{k}": v for k, v in evaluate_on_test(model, settings).items()}

    return Recipe(name, description, build, train, evaluate, settings)


# ------------------------------------------------------------------------------- pretrained backbone
PRETRAINED_SETTINGS: dict = {
    "n_train": 2000, "train_seed": 100, "n_val": 500, "val_seed": 104, "n_test": 600, "test_seed": 101,
    "size": 64, "input_size": 128, "backbone": "efficientnet_lite0", "neck": 64, "alpha": 10.0,
    "alphas": [0.0, 0.1, 1.0, 10.0, 100.0], "epochs": 10, "batch_size": 128, "lr": 2e-3, "weight_decay": 1e-4,
    "schedule": "cosine", "seed": 0,
    # the from-scratch comparison: the same images, epochs and batch size, its own recipe otherwise
    "scratch": {"alpha": 1.0, "flips": True},
}
def shapes_images(settings: dict, part: str) -> ShapesDataset:
    """The ``part`` (``"train"``, ``"val"`` or ``"test"``) images of a recipe's settings."""
    return ShapesDataset(settings[f"n_{part}"], size=settings["size"], seed=settings[f"{part}_seed"])


def pretrained_features(settings: dict, part: str, device=None, progress: bool = False):
    """``(features, labels, boxes, images)`` of one split; the frozen backbone's features are cached on disk."""
    from ...pretrained import efficientnet_lite0

    data = shapes_images(settings, part)
    key = f"shapes_{settings['backbone']}_{settings['size']}to{settings['input_size']}_n{len(data)}_s{settings[f'{part}_seed']}"

    def compute():
        net = efficientnet_lite0(device or "cpu")
        return frozen_features(net.features, data.images, size=settings["input_size"], progress=progress)

    return cached(key, compute), data.labels, data.boxes, data.images


def build_pretrained_head(settings: dict = PRETRAINED_SETTINGS, seed: int | None = None) -> FeatureHead:
    seed_everything(settings["seed"] if seed is None else seed)
    return FeatureHead(1280, settings["input_size"] // 32, pooled=5, spatial=4, neck=settings["neck"])


def _feature_metrics(model, feats, labels, boxes, alpha: float) -> dict:
    from ...localization import localization_metrics

    model.eval()
    with torch.no_grad():
        logits, pred = model(feats)
    parts = multitask_loss(logits, pred, labels, boxes, alpha=alpha)
    return {**localization_metrics(logits, pred, labels, boxes), "L": float(parts.total),
            "L_cls": float(parts.classification), "L_box": float(parts.box)}


def train_pretrained_head(model, settings: dict, alpha: float, train, val=None, device=None) -> dict:
    """Train a :class:`FeatureHead` on cached ``train = (features, labels, boxes)``; return the history."""
    loss_fn, metrics = objective("multitask", alpha)
    def pack(t):  # (features, (label, box)) items, like the image recipes' batches
        return Flips(t[0], t[1], t[2], False)

    return fit(model, pack(train), pack(val) if val is not None else None, epochs=settings["epochs"],
               lr=settings["lr"], batch_size=settings["batch_size"], weight_decay=settings["weight_decay"],
               schedule=settings["schedule"], loss_fn=loss_fn, metrics=metrics, device=device or "cpu",
               seed=settings["seed"], progress=False)


def pretrained_comparison(settings: dict = PRETRAINED_SETTINGS, device=None, progress: bool = False,
                          parts: tuple[str, ...] = ("sweep", "scratch")) -> dict:
    r"""The :math:`\alpha` sweep of the pretrained two-head model on the validation split, its test metrics,
    and a from-scratch :class:`Localizer` trained on the same images for the same epochs (curves included)."""
    device = device or torch.device("cpu")
    result: dict = {"settings": settings, "device": str(device)}
    if "sweep" in parts:
        result.update(_alpha_sweep_pretrained(settings, device, progress))
    if "scratch" in parts:
        result["scratch"] = _scratch_same_budget(settings, device, progress)
    return result


def _alpha_sweep_pretrained(settings: dict, device, progress: bool) -> dict:
    split = {p: pretrained_features(settings, p, device, progress) for p in ("train", "val", "test")}
    tr, va, te = (split[p][:3] for p in ("train", "val", "test"))
    sweep = []
    for alpha in settings["alphas"]:
        model = build_pretrained_head(settings)
        start = time.perf_counter()
        hist = train_pretrained_head(model, settings, alpha, tr, va, device)
        model = model.cpu()
        run = {"alpha": alpha, "train_seconds": round(time.perf_counter() - start, 1),
               "val": _feature_metrics(model, *va, alpha), "test": _feature_metrics(model, *te, alpha),
               "val_acc": hist["val_acc"], "val_iou": hist["val_iou"], "train_loss": hist["train_loss"]}
        sweep.append(run)
        if progress:
            print(json.dumps({"alpha": alpha, **run["val"]}), flush=True)
    best = max(sweep, key=lambda r: r["val"]["correct_rate"])
    return {"sweep": sweep, "best_alpha": best["alpha"]}


def _scratch_same_budget(settings: dict, device, progress: bool) -> dict:
    """A from-scratch :class:`Localizer`: the same training images, epochs and batch size as the head."""
    split = {p: shapes_images(settings, p) for p in ("train", "val", "test")}
    sc = settings["scratch"]
    scratch_settings = {**LOCALIZER_SETTINGS, "n_train": settings["n_train"], "train_seed": settings["train_seed"],
                        "n_test": settings["n_test"], "test_seed": settings["test_seed"],
                        "epochs": settings["epochs"], "batch_size": settings["batch_size"], "lr": settings["lr"],
                        "alpha": sc["alpha"], "flips": sc["flips"], "seed": settings["seed"]}
    model = build_localizer(scratch_settings)
    images, labels, boxes = split["train"].images, split["train"].labels, split["train"].boxes
    val_images, val_labels, val_boxes = split["val"].images, split["val"].labels, split["val"].boxes
    loss_fn, metrics = objective("multitask", sc["alpha"])
    start = time.perf_counter()
    hist = fit(model, Flips(images, labels, boxes, sc["flips"]), Flips(val_images, val_labels, val_boxes, False),
               epochs=settings["epochs"], lr=settings["lr"], batch_size=settings["batch_size"],
               weight_decay=settings["weight_decay"], schedule=settings["schedule"], loss_fn=loss_fn,
               metrics=metrics, device=device, seed=settings["seed"], progress=progress)
    model = model.cpu()
    test = split["test"]
    return {"settings": scratch_settings, "train_seconds": round(time.perf_counter() - start, 1),
            "val_acc": hist["val_acc"], "val_iou": hist["val_iou"], "train_loss": hist["train_loss"],
            "test": evaluate_localizer(model, test.images, test.labels, test.boxes)}



# --------------------------------------------------------------------- fine-tuned pretrained backbone
FINETUNE_SETTINGS: dict = {
    "n_train": 2000, "train_seed": 100, "n_val": 500, "val_seed": 104, "n_test": 600, "test_seed": 101,
    "size": 64, "input_size": 128, "backbone": "efficientnet_lite0",
    # blocks[first..last] (the 112-channel stage, 8×8 at 128²) are fine-tuned on the cached blocks[first-1]
    "first": 8, "last": 10, "channels": 64, "alpha": 10.0, "epochs": 20, "batch_size": 64, "lr": 1e-3,
    "weight_decay": 1e-4, "schedule": "cosine", "seed": 0,
}

# the zoo model: the study's architecture, more images (each also mirrored, a cached copy) and more epochs
ZOO_FINETUNE_SETTINGS: dict = {**FINETUNE_SETTINGS, "n_train": 16000, "hflip": True, "epochs": 20,
                               "hidden": 128,
                               "dtype": "float16"}


class Lite0TopLocalizer(nn.Module):
    r"""EfficientNet-Lite0's ``blocks[first..last]`` (ImageNet weights, trainable) and a two-task head, on the
    cached output of the frozen ``blocks[first-1]``:

    .. math::

        u = \mathrm{ReLU}\big(\mathrm{BN}(W_0 *_2 f_\theta(A))\big), \qquad
        z = W_c\,\mathrm{GAP}(u) + b_c, \qquad \hat b = W_b\,\mathrm{vec}(u) + b_b,

    with :math:`A` the frozen lower stages' map (side ``grid``), :math:`f_\theta` the fine-tuned blocks (their
    batch norms keep the ImageNet statistics: those modules stay in inference mode), :math:`W_0 *_2` a 3×3
    convolution of stride 2 to ``channels`` maps and :math:`W_b` started at zero. With ``hidden > 0`` the box
    layer has one hidden layer, :math:`\hat b = W_b\,\mathrm{ReLU}(V\,\mathrm{vec}(u) + c) + b_b` (the from-scratch
    :class:`~course_lib.localization.Localizer`'s box head has one too), :math:`W_b` again started at zero.
    With ``first = last + 1`` no block is trained: the head reads the frozen ``blocks[last]``.

    Example:
        >>> from course_lib.pretrained import EfficientNetLite0
        >>> m = Lite0TopLocalizer(EfficientNetLite0(), first=8, last=10, grid=8)
        >>> [tuple(t.shape) for t in m(torch.rand(2, 80, 8, 8))]
        [(2, 5), (2, 4)]
    """

    def __init__(self, net: nn.Module, first: int, last: int, grid: int, num_classes: int = 5,
                 channels: int = 64, hidden: int = 0) -> None:
        super().__init__()
        import copy

        n = len(net.blocks)
        if not (isinstance(first, int) and isinstance(last, int) and 1 <= first <= last + 1 and last < n):
            raise ValueError(f"need 1 <= first <= last + 1 and last < {n}, got first={first!r}, last={last!r}")
        if not isinstance(grid, int) or grid < 1:
            raise ValueError(f"grid must be a positive int, got {grid!r}")
        if not isinstance(hidden, int) or hidden < 0:
            raise ValueError(f"hidden must be an int >= 0 (0: a linear box layer), got {hidden!r}")
        self.first, self.last = first, last
        self.blocks = nn.Sequential(*[copy.deepcopy(net.blocks[i]) for i in range(first, last + 1)])
        cin = net.blocks[last].project[0].out_channels
        self.conv = nn.Sequential(nn.Conv2d(cin, channels, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(channels, num_classes)
        side = (grid + 1) // 2
        if hidden:  # one hidden ReLU layer, as the from-scratch Localizer's box head has
            self.box = nn.Sequential(nn.Linear(channels * side * side, hidden), nn.ReLU(inplace=True),
                                     nn.Linear(hidden, 4))
            last_layer = self.box[-1]
        else:
            self.box = nn.Linear(channels * side * side, 4)
            last_layer = self.box
        nn.init.zeros_(last_layer.weight)
        nn.init.zeros_(last_layer.bias)

    def forward(self, a: torch.Tensor):
        u = self.conv(self.blocks(a))
        return self.classifier(u.mean((2, 3))), self.box(u.flatten(1))

    def train(self, mode: bool = True):
        super().train(mode)
        self.blocks.eval()  # batch norm keeps its ImageNet statistics
        return self


def lite0_block_features(settings: dict, part: str, block: int, device=None, hflip: bool = False):
    """``(features, labels, boxes)`` of one split: EfficientNet-Lite0's ``blocks[block]`` output on the images
    resized to ``input_size``, computed once and cached on disk (``block = -1``: the stem's output).

    ``hflip=True``: the same of the horizontally mirrored images, with the boxes mirrored (:math:`x \to 1 - x`)."""
    from ...pretrained import efficientnet_lite0

    data = shapes_images(settings, part)
    images, boxes = data.images, data.boxes
    if hflip:
        images, boxes = images.flip(-1), boxes.clone()
        boxes[:, 0] = 1 - boxes[:, 0]
    key = (f"shapes_{settings['backbone']}_b{block}_{settings['size']}to{settings['input_size']}"
           f"_n{len(data)}_s{settings[f'{part}_seed']}{'_hflip' if hflip else ''}")

    def compute():
        net = efficientnet_lite0(device or "cpu")
        lower = nn.Sequential(net.normalize, net.stem, net.blocks[: block + 1])
        return frozen_features(lower, images.to(next(net.parameters()).device), size=settings["input_size"]).cpu()

    return cached(key, compute), data.labels, boxes


def lite0_training_features(settings: dict, block: int, device=None):
    """The cached training split, with its mirrored copies appended when ``settings["hflip"]``."""
    parts = [lite0_block_features(settings, "train", block, device)]
    if settings.get("hflip", False):
        parts.append(lite0_block_features(settings, "train", block, device, hflip=True))
    return tuple(torch.cat([p[i] for p in parts]) for i in range(3))


def build_top_localizer(settings: dict = FINETUNE_SETTINGS, seed: int | None = None) -> Lite0TopLocalizer:
    from ...pretrained import efficientnet_lite0

    net = efficientnet_lite0("cpu")
    seed_everything(settings["seed"] if seed is None else seed)
    grid = settings["input_size"] // 16  # blocks[5..10] run at stride 16
    return Lite0TopLocalizer(net, settings["first"], settings["last"], grid, channels=settings["channels"],
                             hidden=settings.get("hidden", 0))


def top_metrics(model, feats, labels, boxes) -> dict:
    """Accuracy and box metrics of a top localizer on cached features (``localization_metrics``)."""
    from ...localization import localization_metrics

    model.eval()
    with torch.no_grad():
        outs = [model(feats[i : i + 256]) for i in range(0, feats.shape[0], 256)]
    return localization_metrics(torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs]), labels, boxes)


def train_top_localizer(model, settings: dict, train, val=None, device=None, progress: bool = False) -> dict:
    """Train a :class:`Lite0TopLocalizer` on cached ``train = (features, labels, boxes)``; the history."""
    loss_fn, metrics = objective("multitask", settings["alpha"])
    pack = lambda t: Flips(t[0], t[1], t[2], False)  # noqa: E731
    return fit(model, pack(train), pack(val) if val is not None else None, epochs=settings["epochs"],
               lr=settings["lr"], batch_size=settings["batch_size"], weight_decay=settings["weight_decay"],
               schedule=settings["schedule"], loss_fn=loss_fn, metrics=metrics, device=device or "cpu",
               seed=settings["seed"], progress=progress)



class PretrainedLocalizer(nn.Module):
    r"""The zoo's ``shapes_pretrained_localizer`` as one network on 64×64 images: resize to ``input_size``
    (bilinear, as :func:`~course_lib.models.frozen_features` does), the frozen stem and ``blocks[:first]`` of
    EfficientNet-Lite0 (always in inference mode), then the fine-tuned :class:`Lite0TopLocalizer` (``.top``).

    Example:
        >>> m = PretrainedLocalizer({**FINETUNE_SETTINGS, "pretrained": False}).eval()
        >>> [tuple(t.shape) for t in m(torch.rand(2, 3, 64, 64))]
        [(2, 5), (2, 4)]
    """

    def __init__(self, settings: dict = FINETUNE_SETTINGS, seed: int | None = None) -> None:
        super().__init__()
        from ...pretrained import EfficientNetLite0, efficientnet_lite0

        net = efficientnet_lite0("cpu") if settings.get("pretrained", True) else EfficientNetLite0()
        self.input_size = settings["input_size"]
        self.lower = nn.Sequential(net.normalize, net.stem, net.blocks[: settings["first"]])
        self.lower.requires_grad_(False)
        seed_everything(settings["seed"] if seed is None else seed)
        self.top = Lite0TopLocalizer(net, settings["first"], settings["last"], settings["input_size"] // 16,
                                     channels=settings["channels"], hidden=settings.get("hidden", 0))

    def forward(self, x: torch.Tensor):
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                              antialias=self.input_size < max(x.shape[-2:]))
        return self.top(self.lower(x))

    def train(self, mode: bool = True):
        super().train(mode)
        self.lower.eval()
        return self


def _finetuned_recipe() -> Recipe:
    settings = ZOO_FINETUNE_SETTINGS
    block = settings["first"] - 1

    def build():
        return PretrainedLocalizer(settings)

    def _round(model) -> None:  # the stored weights are float16: evaluate what is stored
        with torch.no_grad():
            for t in list(model.top.parameters()) + list(model.top.buffers()):
                if t.is_floating_point():
                    t.copy_(t.half().to(t.dtype))

    def train(model, device, progress: bool = False) -> dict:
        tr = lite0_training_features(settings, block, device)
        hist = train_top_localizer(model.top, settings, tr, None, device, progress)
        _round(model)
        return {k: hist[k] for k in ("train_loss", "train_acc", "train_iou")}

    def evaluate(model, device=None) -> dict:
        te = lite0_block_features(settings, "test", block, device)
        m = top_metrics(model.top.cpu(), *te)
        model.to(device or "cpu")
        return {f"heldout_{k}": m[k] for k in ("accuracy", "mean_iou", "correct_rate")}

    def export(model) -> dict:
        return {k: (v.half() if v.is_floating_point() else v) for k, v in model.top.state_dict().items()}

    def restore(model, state: dict) -> None:
        expected = model.top.state_dict()
        if set(state) != set(expected):
            raise KeyError(f"state does not match the fine-tuned part (missing {sorted(set(expected) - set(state))[:3]}, "
                           f"unexpected {sorted(set(state) - set(expected))[:3]})")
        model.top.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)

    return Recipe("shapes_pretrained_localizer", "EfficientNet-Lite0 (ImageNet) on ShapesDataset at 128x128, "
                  "blocks[8..10] fine-tuned under a class + box head", build, train, evaluate, settings,
                  export=export, restore=restore)



def _frozen_recipe() -> Recipe:
    settings = PRETRAINED_SETTINGS

    def build():
        return build_pretrained_head(settings)

    def train(model, device, progress: bool = False) -> dict:
        tr = pretrained_features(settings, "train", device, progress)[:3]
        hist = train_pretrained_head(model, settings, settings["alpha"], tr, None, device)
        return {k: hist[k] for k in ("train_loss", "train_acc", "train_iou")}

    def evaluate(model, device=None) -> dict:
        te = pretrained_features(settings, "test", device)[:3]
        m = _feature_metrics(model.cpu(), *te, settings["alpha"])
        return {f"heldout_{k}": m[k] for k in ("accuracy", "mean_iou", "correct_rate")}

    return Recipe("shapes_frozen_localizer", "FeatureHead (shared 1x1 neck, softmax class head, linear box head) "
                  "on frozen EfficientNet-Lite0 features of ShapesDataset at 128x128", build, train, evaluate, settings)



RECIPES = [
    _recipe("shapes_localizer", "Localizer (shared conv trunk, class head + box head) on 64×64 ShapesDataset, "
            "L = cross-entropy + alpha·MSE", LOCALIZER_SETTINGS, quick=False),
    _recipe("shapes_quick_localizer", "QuickLocalizer (sigmoid class + sigmoid box, binary cross-entropy) on "
            "ShapesDataset circle (0) vs square (1)", QUICK_SETTINGS, quick=True),
    _frozen_recipe(),
    _finetuned_recipe(),
]


def _override(settings: dict, pairs: list[str]) -> dict:
    out = dict(settings)
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in out:
            raise ValueError(f"--set {pair!r}: unknown setting {key!r}; known: {sorted(out)}")
        out[key] = json.loads(value)
    return out


def main(argv: list[str] | None = None) -> int:
    """``train NAME --out FILE [--set key=value ...]`` trains one recipe with optional overrides (to explore
    settings) and saves its state dict and held-out metrics."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.zoo.recipes.localization")
    sub = parser.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="train one recipe (with overrides); save state dict + metrics")
    tr.add_argument("name", choices=["shapes_localizer", "shapes_quick_localizer"])
    tr.add_argument("--out", required=True, help="path of the .pt file (metrics go beside it as .json)")
    tr.add_argument("--device", default=None)
    tr.add_argument("--set", action="append", default=[], metavar="KEY=JSON")
    args = parser.parse_args(argv)
    from ...device import get_device

    device = torch.device(args.device) if args.device else get_device()
    quick = args.name == "shapes_quick_localizer"
    settings = _override(QUICK_SETTINGS if quick else LOCALIZER_SETTINGS, args.set)
    model = (_build_quick if quick else build_localizer)(settings)
    start = time.perf_counter()
    hist = train_localizer(model, settings, device, progress=False, kind="quick" if quick else "multitask")
    metrics = {**evaluate_on_test(model, settings), "train_seconds": round(time.perf_counter() - start, 1)}
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, args.out)
    report = {"name": args.name, "settings": settings, "device": str(device), "metrics": metrics,
              "train_loss": hist["train_loss"], "train_iou": hist["train_iou"], "train_acc": hist["train_acc"]}
    Path(args.out).with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({"name": args.name, "set": args.set, **metrics}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
