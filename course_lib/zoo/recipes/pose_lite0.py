r"""Zoo recipe ``pose_lite0``: a pose regressor transferred from the ImageNet network.

EfficientNet-Lite0 (:func:`course_lib.pretrained.efficientnet_lite0`, weights from an installed package) reads
the square person crops of :class:`~course_lib.data.PoseFiguresDataset` resized to 128×128 (the crops of
chapter 5's transfer study); its stem and ``blocks[0..10]`` stay frozen, and the regression head of
:func:`~course_lib.zoo.recipes.pose.pose_head` (a strided 3×3 convolution, batch norm, ReLU and a
zero-initialized linear layer to the 28 box-normalized coordinates) is trained with the L2 loss on the output
of ``blocks[10]`` (112×8×8). The training set is ``pose_deeppose``'s — the first ``n_used`` of its 12,000
figures of seed 101 — plus the mirror image of every crop with its pose mirrored and the left and right joints
swapped (:func:`course_lib.pose.hflip_joints`), so twice as many crops. The frozen features are computed
once, per 1,000 figures, and cached in ``~/.cache/course_lib/features``; computing them takes most of the time
(roughly 10 CPU minutes for the 24,000 training crops), and the record's ``train_seconds`` counts only the
head's training on the cached features. Held-out numbers are
measured on the 1,000 seed-102 figures every chapter-5 model is scored on; the head's width, learning rate and
epochs were chosen on 1,000 validation figures (seed 104), which are scored again after training
(``train_info``). The selection runs (one seed, validation PCK@0.2): on the first 3,000 figures and their mirror
images, 20 epochs at learning rate 1e-3, a head of 64 channels 0.839, of 128 0.830, of 256 0.823, and 128
channels at 3e-3 0.791; on 6,000 figures, 64 channels, 20 epochs 0.885 and 40 epochs 0.879.

Only the head is stored, in float16 (rounded before evaluation, so the recorded metrics are the stored
weights'); :class:`PoseLite0` rebuilds the frozen part from the package.

Example:
    >>> m = PoseLite0(pretrained=False).eval()
    >>> tuple(m(torch.rand(2, 3, 128, 128)).shape)
    (2, 14, 2)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..._checks import check_bool, check_choice, check_images, check_int, check_tensor
from ...boxes import square_boxes
from ...device import seed_everything
from ...joints import NUM_JOINTS
from ...pose import crop_boxes, denormalize_joints, hflip_joints, normalize_joints, pose_loss
from ...training import fit
from .. import Recipe
from .._cache import cache_key, cached
from .pose import DATA, VAL_SEED, figures, heldout_metrics, pose_head

__all__ = ["POSE_LITE0_SETTINGS", "PoseLite0", "lite0_pose_features", "train_lite0_head", "RECIPES"]

POSE_LITE0_SETTINGS: dict = {
    "data": {**DATA, "n_used": 12000, "n_val": 1000, "val_seed": VAL_SEED},
    "scale": 1.2,
    "input": 128,
    "block": 10,
    "mirror": True,
    "swap": True,
    "head": {"channels": 64},
    "fit": {"epochs": 20, "lr": 1e-3, "batch_size": 128, "optimizer": "adam", "schedule": "cosine",
            "weight_decay": 1e-4},
    "seed": 0,
    "dtype": "float16",
}


class PoseLite0(nn.Module):
    r"""EfficientNet-Lite0 up to ``blocks[block]`` (frozen, ImageNet weights, always in inference mode) and a
    trainable :func:`~course_lib.zoo.recipes.pose.pose_head`:

    .. math::

        \hat z = \psi\big(f_{\le \text{block}}(x)\big) \in \mathbb R^{14\times 2},

    the joints normalized to the crop (:func:`course_lib.pose.normalize_joints`: the crop's centre is 0, its
    sides :math:`\pm\tfrac12`). :meth:`predict` crops the figures itself and returns image coordinates.

    Args:
        settings: the recipe's settings (``input``, ``scale``, ``block``, ``head.channels``).
        pretrained: load the ImageNet weights (``False``: random weights, for shape checks without the package).
    """

    def __init__(self, settings: dict = POSE_LITE0_SETTINGS, pretrained: bool = True, seed: int | None = None) -> None:
        super().__init__()
        from ...pretrained import EfficientNetLite0, efficientnet_lite0

        check_bool(pretrained, "pretrained")
        net = efficientnet_lite0("cpu") if pretrained else EfficientNetLite0()
        block = check_int(settings["block"], "settings['block']", minimum=0)
        if block >= len(net.blocks):
            raise ValueError(f"settings['block'] must be below {len(net.blocks)}, got {block}")
        self.input_size, self.scale = settings["input"], settings["scale"]
        self.lower = nn.Sequential(net.normalize, net.stem, net.blocks[: block + 1])
        self.lower.requires_grad_(False)
        with torch.no_grad():  # the frozen map's shape at the input size
            _, channels, grid, _ = self.lower.eval()(torch.zeros(1, 3, self.input_size, self.input_size)).shape
        seed_everything(settings["seed"] if seed is None else seed)
        self.head = pose_head(channels, grid, settings["head"]["channels"])

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        x = check_images(crops, "crops")
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                              antialias=self.input_size < max(x.shape[-2:]))
        return self.head(self.lower(x)).view(-1, NUM_JOINTS, 2)

    def train(self, mode: bool = True):
        super().train(mode)
        self.lower.eval()  # the frozen part keeps its ImageNet batch-norm statistics
        return self

    def predict(self, images: torch.Tensor, boxes: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Joints ``(N, 14, 2)`` in image fractions of figures ``images`` ``(N, 3, H, W)`` with person boxes
        ``boxes`` ``(N, 4)``: the square crops of the recipe (margin ``scale``) are read at ``input_size``."""
        x = check_images(images, "images")
        b = check_tensor(boxes, "boxes", ndim=2)
        if b.shape != (x.shape[0], 4):
            raise ValueError(f"boxes must be ({x.shape[0]}, 4), one per image, got {tuple(b.shape)}")
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        sq = square_boxes(b, self.scale, tuple(x.shape[-2:]))
        dev = next(self.head.parameters()).device
        out = []
        with torch.no_grad():
            for i in range(0, x.shape[0], batch_size):
                crops = crop_boxes(x[i : i + batch_size], sq[i : i + batch_size], self.input_size)
                out.append(self(crops.to(dev)).cpu())
        return denormalize_joints(torch.cat(out), sq)


def lite0_pose_features(settings: dict, which: str, mirrored: bool = False, device=None,
                        chunk: int = 1000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(features, targets, boxes)`` of one split (``which``: ``"train"``, ``"val"`` or ``"heldout"``).

    ``features``: the frozen ``blocks[block]`` output of every square person crop (``input``×``input``);
    ``targets``: the poses normalized to the crops; ``boxes``: the crops' boxes. ``mirrored=True``: the same for
    the mirrored crops, the targets mirrored with :func:`~course_lib.pose.hflip_joints` (left and right
    swapped when ``settings["swap"]``). For ``"train"`` only the first ``settings["data"]["n_used"]`` figures
    are returned (all when absent). Cached on disk per ``chunk`` figures, under a key naming everything the
    features depend on.
    """
    check_choice(which, "which", ("train", "val", "heldout"))
    check_bool(mirrored, "mirrored")
    chunk = check_int(chunk, "chunk", minimum=1)
    d = settings["data"]
    data = figures(d[f"n_{which}"], d[f"{which}_seed"], d["size"])
    n = len(data)
    if which == "train" and d.get("n_used") is not None:
        n = check_int(d["n_used"], "settings['data']['n_used']", minimum=1, maximum=len(data))
    boxes = square_boxes(data.boxes[:n], settings["scale"], tuple(data.images.shape[-2:]))
    targets = normalize_joints(data.joints[:n], boxes)
    if mirrored:
        targets = hflip_joints(targets, swap=settings["swap"], coords="centered")
    model = None

    def encode(start: int, stop: int) -> torch.Tensor:
        nonlocal model
        if model is None:
            model = PoseLite0(settings).to(device or "cpu").eval()
        dev = next(model.lower.parameters()).device
        with torch.no_grad():
            crops = crop_boxes(data.images[start:stop], boxes[start:stop], settings["input"])
            if mirrored:
                crops = crops.flip(-1)
            return torch.cat([model.lower(crops[i : i + 250].to(dev)).cpu() for i in range(0, stop - start, 250)])

    out = []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        ident = {"network": "efficientnet_lite0", "block": settings["block"], "size": settings["input"],
                 "scale": settings["scale"], "figures": [len(data), d[f"{which}_seed"], d["size"]],
                 "rows": [start, stop], "mirrored": mirrored, "torch": torch.__version__.split("+")[0]}
        name = f"pose_lite0_b{settings['block']}_{which}{'_mirror' if mirrored else ''}_{cache_key(ident)}"
        out.append(cached(name, lambda start=start, stop=stop: encode(start, stop)))
    return torch.cat(out), targets, boxes


def training_set(settings: dict, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features, targets)`` of the training figures, with their mirrored copies when ``settings["mirror"]``."""
    f, t, _ = lite0_pose_features(settings, "train", device=device)
    if not settings["mirror"]:
        return f, t
    fm, tm, _ = lite0_pose_features(settings, "train", mirrored=True, device=device)
    return torch.cat([f, fm]), torch.cat([t, tm])


def train_lite0_head(model: PoseLite0, feats: torch.Tensor, targets: torch.Tensor, settings: dict,
                     device=None, progress: bool = False) -> dict:
    """Train ``model.head`` in place with the L2 loss on cached ``feats`` of the frozen part; the history."""
    if not isinstance(model, PoseLite0):
        raise TypeError(f"model must be a PoseLite0, got {type(model).__name__}")

    def loss_fn(out, target):
        return pose_loss(out.view(-1, NUM_JOINTS, 2), target)

    return fit(model.head, (feats, targets), device=device or "cpu", progress=progress, loss_fn=loss_fn,
               seed=settings["seed"], **settings["fit"])


def head_metrics(model: PoseLite0, settings: dict, which: str, device=None) -> dict[str, float]:
    """PCK@0.2, PCK@0.1 and mean error (torso diameters) of ``model`` on split ``which``, from cached features."""
    feats, _, boxes = lite0_pose_features(settings, which, device=device)
    d = settings["data"]
    data = figures(d[f"n_{which}"], d[f"{which}_seed"], d["size"])
    head = model.head.cpu().eval()
    with torch.no_grad():
        z = torch.cat([head(feats[i : i + 512]) for i in range(0, feats.shape[0], 512)]).view(-1, NUM_JOINTS, 2)
    return heldout_metrics(denormalize_joints(z, boxes), data)


def _round_head(model: PoseLite0) -> None:
    with torch.no_grad():
        for t in list(model.head.parameters()) + list(model.head.buffers()):
            if t.is_floating_point():
                t.copy_(t.half().to(t.dtype))


def make_recipe(name: str = "pose_lite0", settings: dict | None = None) -> Recipe:
    """The ``pose_lite0`` recipe (or a variant with other ``settings``)."""
    settings = settings or POSE_LITE0_SETTINGS

    def build() -> nn.Module:
        return PoseLite0(settings)

    def train(model: nn.Module, device: torch.device, progress: bool = False) -> dict:
        feats, targets = training_set(settings, device)
        history = train_lite0_head(model, feats, targets, settings, device, progress)
        _round_head(model)
        val = head_metrics(model, settings, "val", device)
        model.to(device)
        return {"train_loss": history["train_loss"], "n_train_crops": int(feats.shape[0]),
                **{f"val_{k}": v for k, v in val.items()}}

    def evaluate(model: nn.Module, device=None) -> dict:
        m = head_metrics(model, settings, "heldout", device)
        model.to(device or "cpu")
        return {f"heldout_{k}": v for k, v in m.items()}

    def export(model: nn.Module) -> dict:
        return {k: (v.half() if v.is_floating_point() else v) for k, v in model.head.state_dict().items()}

    def restore(model: nn.Module, state: dict) -> None:
        expected = model.head.state_dict()
        if set(state) != set(expected):
            raise KeyError(f"state does not match the head (missing {sorted(set(expected) - set(state))[:3]}, "
                           f"unexpected {sorted(set(state) - set(expected))[:3]})")
        model.head.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)

    return Recipe(name, "EfficientNet-Lite0 (ImageNet, frozen to blocks[10]) + pose regression head, person crops "
                  "at 128x128, pose_deeppose's figures and their mirror images (left/right swapped)", build, train,
                  evaluate, settings, export=export, restore=restore)


RECIPES = [make_recipe()]
