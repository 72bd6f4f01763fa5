r"""Zoo recipes of chapter 5 (pose estimation), and the helpers its transfer study uses.

* ``pose_deeppose`` — :class:`course_lib.pose.PoseRegressor`, the first DeepPose stage, trained on
  :class:`~course_lib.data.PoseFiguresDataset` person crops with the L2 loss
  :math:`\sum_i \lVert y_i - \psi_i(x; \theta) \rVert_2^2`, translation/zoom jitter and flips that swap left
  and right.
* ``pose_refiner`` — one :class:`course_lib.pose.RefinementStage` trained on crops around the estimates of
  ``pose_deeppose`` (its real training-set predictions, and estimates drawn from the Gaussian of its
  errors, as DeepPose does). Retrain it whenever ``pose_deeppose`` changes.

The transfer helpers below (:func:`pose_features`, :func:`pose_head`, :func:`train_pose_head`,
:func:`head_predictions`, :func:`mean_pose_metrics`) serve the studies ``pose_transfer`` and
``pose_augmentation`` (:mod:`course_lib.studies`), which chapter 5 reads: the same regression head
(:func:`pose_head`: a strided 3×3 convolution, batch norm, ReLU and a zero-initialized linear layer, as in
:class:`~course_lib.pose.PoseRegressor`) trained with the L2 loss on frozen features of EfficientNet-Lite0 or
of the ``shapes_gap`` classifier. Frozen features are computed once and cached (``~/.cache/course_lib/features``)
under a key naming the network, its checkpoint, the layers and the figures.

Training uses seed-101 figures, the experiments seed-103 figures and every held-out number seed-102 figures.
Each run is a pure function of its settings and seeds on one device (a GPU's kernels may differ from the CPU's
in the last bits; figures are drawn on the training device).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from ...boxes import square_boxes
from ...data import PoseFiguresDataset
from ...device import seed_everything
from ...joints import NUM_JOINTS
from ...models import frozen_features
from ...pose import (
    PoseRegressor,
    RefinementStage,
    crop_boxes,
    denormalize_joints,
    joint_distances,
    normalize_joints,
    pck,
    pose_loader,
    pose_loss,
    predict_joints,
    torso_diameter,
)
from ...training import fit
from .. import Recipe
from .._cache import cache_key, cached

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
TRAIN_SEED, HELDOUT_SEED, EXPERIMENT_SEED = 101, 102, 103

DATA: dict = {"dataset": "PoseFiguresDataset", "size": 64, "n_train": 12000, "train_seed": TRAIN_SEED,
              "n_heldout": 1000, "heldout_seed": HELDOUT_SEED}

REGRESSOR_SETTINGS: dict = {
    "model": {"width": 16, "input_size": 32, "downsample": 1},
    "init_seed": 0,
    "data": DATA,
    "augment": {"scale": 1.2, "translate": 0.05, "zoom": 0.05, "flip": True, "swap": True},
    "fit": {"epochs": 12, "lr": 3e-3, "batch_size": 64, "optimizer": "adam", "schedule": "cosine",
            "weight_decay": 1e-4, "seed": 0},
}

REFINER_SETTINGS: dict = {
    "model": {"patch_size": 16, "width": 16, "sigma": 1.0},
    "init_seed": 0,
    "stage1": "pose_deeppose",
    "data": DATA,
    "simulated_fraction": 0.5,
    "fit": {"epochs": 8, "lr": 3e-3, "batch_size": 64, "optimizer": "adam", "schedule": "cosine",
            "weight_decay": 1e-4, "seed": 0},
}

EXPERIMENT_SETTINGS: dict = {
    "data": {"size": 64, "n_train": 1000, "train_seed": EXPERIMENT_SEED, "n_heldout": 1000,
             "heldout_seed": HELDOUT_SEED},
    "model": {"width": 16, "input_size": 32, "downsample": 1},
    "init_seed": 0,
    "fit": {"epochs": 15, "lr": 3e-3, "batch_size": 64, "optimizer": "adam", "schedule": "cosine",
            "weight_decay": 1e-4, "seed": 0},
    "augmentation": {
        "none": {"scale": 1.2},
        "translate": {"scale": 1.2, "translate": 0.05, "zoom": 0.05},
        "translate+flip": {"scale": 1.2, "translate": 0.05, "zoom": 0.05, "flip": True, "swap": True},
        "translate+flip, no swap": {"scale": 1.2, "translate": 0.05, "zoom": 0.05, "flip": True, "swap": False},
    },
    "transfer": {"augment": "translate+flip", "classifier": "shapes_gap", "n_train": 1000, "epochs": 8},
}


@lru_cache(maxsize=6)
def figures(n: int, seed: int, size: int = 96, device: str = "cpu") -> PoseFiguresDataset:
    """A cached :class:`PoseFiguresDataset` (recipes, experiments and the chapter share the same images)."""
    return PoseFiguresDataset(n, size=size, seed=seed, device=device)


def _figures(d: dict, which: str, device: torch.device) -> PoseFiguresDataset:
    return figures(d[f"n_{which}"], d[f"{which}_seed"], d["size"], device.type)


def pck_metric(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PCK@0.2 on box-normalized coordinates (those of square crops are isotropic: PCK there is PCK in the
    image); the metric the pose recipes and studies report each epoch."""
    return pck(out, target, alpha=0.2)


def heldout_loader(data: PoseFiguresDataset, device: torch.device, size: int, scale: float = 1.2) -> DataLoader:
    """Un-augmented, unshuffled crops of ``data`` in batches of 256: the held-out evaluation the recipes and
    studies share."""
    return pose_loader(data, 256, shuffle=False, device=device, size=size, scale=scale)


def heldout_metrics(joints_pred: torch.Tensor, data: PoseFiguresDataset) -> dict[str, float]:
    """PCK@0.2, PCK@0.1 and the mean error in torso diameters of predictions on ``data``."""
    gt = data.joints.to(joints_pred.device)
    err = joint_distances(joints_pred, gt) / torso_diameter(gt)[:, None]
    return {"pck@0.2": float(pck(joints_pred, gt, 0.2)), "pck@0.1": float(pck(joints_pred, gt, 0.1)),
            "mean_error_torso": float(err.mean())}


# -------------------------------------------------------------------------------------------------- stage 1
def make_regressor_recipe(name: str = "pose_deeppose", settings: dict | None = None) -> Recipe:
    """The ``pose_deeppose`` recipe (or a variant with other ``settings``)."""
    settings = settings or REGRESSOR_SETTINGS

    def build() -> nn.Module:
        seed_everything(settings["init_seed"])
        return PoseRegressor(**settings["model"])

    def train(model: nn.Module, device: torch.device, progress: bool) -> dict:
        d = settings["data"]
        loader = pose_loader(_figures(d, "train", device), settings["fit"]["batch_size"], seed=settings["fit"]["seed"],
                             device=device, size=settings["model"]["input_size"], **settings["augment"])
        heldout = heldout_loader(_figures(d, "heldout", device), device, settings["model"]["input_size"])
        history = fit(model, loader, heldout, device=device,
                      progress=progress, loss_fn=pose_loss, metrics={"pck": pck_metric}, **settings["fit"])
        return {"train_loss": history["train_loss"], "heldout_pck": history["val_pck"]}

    def evaluate(model: nn.Module, device: torch.device) -> dict:
        data = _figures(settings["data"], "heldout", device)
        pred = predict_joints(model, data.images.to(device), data.boxes.to(device))
        return {f"heldout_{k}": v for k, v in heldout_metrics(pred, data).items()}

    return Recipe(name, "DeepPose stage 1: SmallCNN trunk + regression head, 14 joints of PoseFiguresDataset",
                  build, train, evaluate, settings)


# -------------------------------------------------------------------------------------------------- stage 2
def _stage1(device: torch.device) -> PoseRegressor:
    from .. import load

    return load(REFINER_SETTINGS["stage1"], device)


def refiner_loader(stage: RefinementStage, data: PoseFiguresDataset, stage1_pred: torch.Tensor, *,
                   batch_size: int, seed: int, simulated_fraction: float, device: torch.device) -> DataLoader:
    r"""Batches of ``(crops around the estimates, targets)`` for training ``stage``.

    An estimate is the stage-1 prediction or, with probability ``simulated_fraction``, the truth moved by a
    displacement drawn per joint from :math:`\mathcal N(\mu_i, \sigma_i^2)`, the mean and spread of the stage-1
    errors on ``data`` (in torso diameters) — DeepPose's way of simulating more stage-1 outputs.
    """
    images, joints = data.images.to(device), data.joints.to(device)
    stage1_pred = stage1_pred.to(device)
    torso = torso_diameter(joints)[:, None, None]
    err = (stage1_pred - joints) / torso
    mean, std = err.mean(0), err.std(0)
    g = torch.Generator().manual_seed(seed + 2)

    def collate(batch: list[int]):
        idx = torch.as_tensor(batch, device=device)
        b = idx.numel()
        noise = torch.randn(b, NUM_JOINTS, 2, generator=g).to(device)
        simulated = joints[idx] + (mean + std * noise) * torso[idx]
        use_sim = (torch.rand(b, generator=g) < simulated_fraction).to(device)[:, None, None]
        est = torch.where(use_sim, simulated, stage1_pred[idx])
        with torch.no_grad():
            crops, _ = stage.crops(images[idx], est)
            target = stage.targets(est, joints[idx], tuple(images.shape[-2:]))
        return crops, target

    shuffler = torch.Generator().manual_seed(seed)
    return DataLoader(range(len(data)), batch_size=batch_size, shuffle=True, generator=shuffler,
                      collate_fn=collate)


def make_refiner_recipe(name: str = "pose_refiner", settings: dict | None = None, stage1=None) -> Recipe:
    """The ``pose_refiner`` recipe; ``stage1`` (a callable ``device -> PoseRegressor``) defaults to the zoo's."""
    settings = settings or REFINER_SETTINGS
    get_stage1 = stage1 or _stage1

    def build() -> nn.Module:
        seed_everything(settings["init_seed"])
        return RefinementStage(**settings["model"])

    def train(model: nn.Module, device: torch.device, progress: bool) -> dict:
        d = settings["data"]
        data = _figures(d, "train", device)
        first = get_stage1(device)
        pred = predict_joints(first, data.images.to(device), data.boxes.to(device))
        f = settings["fit"]
        loader = refiner_loader(model, data, pred, batch_size=f["batch_size"], seed=f["seed"],
                                simulated_fraction=settings["simulated_fraction"], device=device)

        def loss_fn(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return pose_loss(model.select(out), target)

        history = fit(model, loader, device=device, progress=progress, loss_fn=loss_fn, **f)
        return {"train_loss": history["train_loss"], "stage1_train_pck@0.2": float(pck(pred, data.joints.to(device)))}

    def evaluate(model: nn.Module, device: torch.device) -> dict:
        data = _figures(settings["data"], "heldout", device)
        first = get_stage1(device)
        images, boxes = data.images.to(device), data.boxes.to(device)
        before = heldout_metrics(predict_joints(first, images, boxes), data)
        after = heldout_metrics(predict_joints(first, images, boxes, refiner=model), data)
        out = {f"heldout_stage1_{k}": v for k, v in before.items()}
        out.update({f"heldout_refined_{k}": v for k, v in after.items()})
        return out

    return Recipe(name, "DeepPose cascade stage 2: refines each joint of pose_deeppose from a crop around it",
                  build, train, evaluate, settings)


RECIPES = [make_regressor_recipe(), make_refiner_recipe()]


class _SubsetFigures:
    """The first ``n`` figures of a dataset, with the attributes :func:`pose_loader` reads."""

    def __init__(self, data: PoseFiguresDataset, n: int) -> None:
        self.images, self.joints, self.boxes = data.images[:n], data.joints[:n], data.boxes[:n]
        self.visibility = data.visibility[:n]

    def __len__(self) -> int:
        return self.images.shape[0]


# ------------------------------------------------------------------------------------------ transfer (3-way)
VAL_SEED = 104
LITE0_LAYERS = ("blocks.4", "blocks.10", "blocks.15", "head")  # the ends of the 28², 14², 7² stages and the head
TRANSFER_SETTINGS: dict = {
    "data": {**EXPERIMENT_SETTINGS["data"], "n_val": 500, "val_seed": VAL_SEED},
    "scale": 1.2,
    "seeds": [0, 1, 2],
    "backbones": {
        "imagenet": {"network": "efficientnet_lite0", "input": 128, "layer": "blocks.10", "lr": 3e-4},
        "imagenet, last layer": {"network": "efficientnet_lite0", "input": 128, "layer": "head", "lr": 3e-4},
        "shapes_gap": {"network": "shapes_gap", "input": 64, "layer": "features", "lr": 1e-4},
    },
    "head": {"channels": 64},
    "fit": {"epochs": 15, "lr": 3e-4, "batch_size": 64, "optimizer": "adam", "schedule": "cosine",
            "weight_decay": 1e-4},
    "scratch": {"model": EXPERIMENT_SETTINGS["model"], "augment": {"scale": 1.2}, "fit": EXPERIMENT_SETTINGS["fit"]},
    "selection": {"lite0_layers": list(LITE0_LAYERS), "lrs": [1e-4, 3e-4, 1e-3], "seed": 0},
}


def transfer_inputs(data, size: int, scale: float = 1.2) -> tuple[torch.Tensor, torch.Tensor]:
    """``(crops, boxes)``: the square person crops of side ``size`` that every transfer run reads, and their boxes."""
    boxes = square_boxes(data.boxes, scale, tuple(data.images.shape[-2:]))
    return crop_boxes(data.images, boxes, size), boxes


def _lite0_layers(x: torch.Tensor, layers: tuple[str, ...], device) -> dict[str, torch.Tensor]:
    """The EfficientNet-Lite0 maps at ``layers`` (``"blocks.k"`` or ``"head"``) in one pass, in batches."""
    from ...pretrained import efficientnet_lite0

    net = efficientnet_lite0(device or "cpu")
    dev = next(net.parameters()).device
    out: dict[str, list] = {k: [] for k in layers}
    with torch.no_grad():
        for i in range(0, x.shape[0], 64):
            h = net.stem(net.normalize(x[i : i + 64].to(dev)))
            for k, block in enumerate(net.blocks):
                h = block(h)
                if f"blocks.{k}" in out:
                    out[f"blocks.{k}"].append(h.cpu())
            if "head" in out:
                out["head"].append(net.head(h).cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def pose_features(network: str, layers: tuple[str, ...], data, which: str, *, size: int,
                  settings: dict = TRANSFER_SETTINGS, device=None) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """``(features, targets, boxes)`` of the person crops of one split (``which``: train, val or heldout).

    ``features[layer]`` is the frozen network's map of crop :math:`n` (row :math:`n`), ``targets`` the pose
    normalized to the same crop box, :math:`N(y_n; b_n)`, and ``boxes`` those boxes. Features are cached on disk
    under a key that names everything they depend on (network, checkpoint, layers, crop size, figures).
    """
    from .. import sha256

    d = settings["data"]
    x, boxes = transfer_inputs(data, size, settings["scale"])
    targets = normalize_joints(data.joints, boxes)
    ident = {"network": network, "layers": sorted(layers), "size": size, "scale": settings["scale"],
             "figures": [len(data), d[f"{which}_seed"], d["size"]], "torch": torch.__version__.split("+")[0]}
    if network != "efficientnet_lite0":
        ident["sha256"] = sha256(CHECKPOINTS / f"{network}.pt")
    if network != "efficientnet_lite0" and tuple(layers) != ("features",):
        raise ValueError(f"a zoo classifier offers the layer 'features' only, got {layers}")

    def compute():
        if network == "efficientnet_lite0":
            return _lite0_layers(x, tuple(layers), device)
        from .. import load

        return {"features": frozen_features(load(network, device or "cpu").features, x).cpu()}

    return cached(f"pose_{network}_{which}_{cache_key(ident)}", compute), targets, boxes


def pose_head(in_channels: int, grid: int, channels: int = 64) -> nn.Sequential:
    r"""The regression head on frozen features: :class:`PoseRegressor`'s head, a strided 3×3 convolution,
    batch norm and ReLU, then a linear layer to the :math:`2k` normalized coordinates, started at zero (every
    joint at the crop centre), so that the first Adam steps on a large flattened map stay calm.

    Example:
        >>> pose_head(112, 8)(torch.rand(2, 112, 8, 8)).abs().max().item()
        0.0
    """
    conv = nn.Conv2d(in_channels, channels, 3, stride=2, padding=1, bias=False)
    side = (grid + 1) // 2
    head = nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.Flatten(),
                         nn.Linear(channels * side * side, 2 * NUM_JOINTS))
    nn.init.zeros_(head[-1].weight)
    nn.init.zeros_(head[-1].bias)
    return head


def train_pose_head(feats: torch.Tensor, targets: torch.Tensor, seed: int, settings: dict = TRANSFER_SETTINGS,
                    device=None, **fit_overrides) -> tuple[nn.Sequential, dict]:
    """A :func:`pose_head` trained with the L2 loss on cached ``feats`` (``(N, C, g, g)``); ``(head, history)``."""
    seed_everything(seed)
    head = pose_head(feats.shape[1], feats.shape[-1], settings["head"]["channels"])

    def loss_fn(out, target):
        return pose_loss(out.view(-1, NUM_JOINTS, 2), target)

    f = {**settings["fit"], **fit_overrides}
    history = fit(head, (feats, targets), device=device or "cpu", progress=False, loss_fn=loss_fn, seed=seed, **f)
    return head.cpu().eval(), history


def head_predictions(head: nn.Module, feats: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """The head's joints in image coordinates, :math:`N^{-1}(\\psi(x); b)`."""
    with torch.no_grad():
        z = head(feats).view(-1, NUM_JOINTS, 2)
    return denormalize_joints(z, boxes)


def mean_pose_metrics(train_targets: torch.Tensor, boxes: torch.Tensor, data) -> dict:
    """The baseline every head must beat: the mean training pose, placed in each box."""
    z = train_targets.mean(0, keepdim=True).expand(len(data), NUM_JOINTS, 2)
    return heldout_metrics(denormalize_joints(z, boxes), data)




# ------------------------------------------------------------------------------------- fine-tuned transfer
class _FineTuned(nn.Module):
    """EfficientNet-Lite0's ``blocks[first..last]`` (trainable, batch norm in inference mode) and a
    :func:`pose_head`, on the cached output of the frozen ``blocks[first-1]``."""

    def __init__(self, first: int, last: int, grid: int, channels: int = 64) -> None:
        super().__init__()
        import copy

        from ...pretrained import efficientnet_lite0

        net = efficientnet_lite0("cpu")
        if not (isinstance(first, int) and isinstance(last, int) and 1 <= first <= last < len(net.blocks)):
            raise ValueError(f"need 1 <= first <= last < {len(net.blocks)}, got first={first!r}, last={last!r}")
        self.blocks = nn.Sequential(*[copy.deepcopy(net.blocks[i]) for i in range(first, last + 1)])
        self.head = pose_head(net.blocks[last].project[0].out_channels, grid, channels)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(a))

    def train(self, mode: bool = True):
        super().train(mode)
        self.blocks.eval()  # batch norm keeps its ImageNet statistics
        return self


def train_pose_top(feats: torch.Tensor, targets: torch.Tensor, seed: int, first: int, last: int,
                   settings: dict = TRANSFER_SETTINGS, device=None, **fit_overrides) -> tuple[nn.Module, dict]:
    """Fine-tune ``blocks[first..last]`` of EfficientNet-Lite0 with a :func:`pose_head` on the cached output of
    ``blocks[first-1]`` (``feats``), with the L2 loss; ``(model, history)``."""
    seed_everything(seed)
    model = _FineTuned(first, last, feats.shape[-1], settings["head"]["channels"])

    def loss_fn(out, target):
        return pose_loss(out.view(-1, NUM_JOINTS, 2), target)

    f = {**settings["fit"], **fit_overrides}
    history = fit(model, (feats, targets), device=device or "cpu", progress=False, loss_fn=loss_fn, seed=seed, **f)
    return model.cpu().eval(), history
