r"""Zoo recipes of chapter 5 (pose estimation), and the script that measures its training choices.

* ``pose_deeppose`` — :class:`course_lib.pose.PoseRegressor`, the first DeepPose stage, trained on
  :class:`~course_lib.data.PoseFiguresDataset` person crops with the L2 loss
  :math:`\sum_i \lVert y_i - \psi_i(x; \theta) \rVert_2^2`, translation/zoom jitter and flips that swap left
  and right.
* ``pose_refiner`` — one :class:`course_lib.pose.RefinementStage` trained on crops around the estimates of
  ``pose_deeppose`` (its real training-set predictions, and estimates drawn from the Gaussian of its
  errors, as DeepPose does). Retrain it whenever ``pose_deeppose`` changes.

``python -m course_lib.zoo.recipes.pose experiments [--device cuda]`` trains small regressors on the same data
and budget — without augmentation, with translation, with translation and flips, with flips *without* the
left/right swap, and from scratch versus from the ``shapes_gap`` classifier's trunk — and writes the held-out
PCK curves to ``course_lib/zoo/checkpoints/pose_experiments.json``, which chapter 5 reads.

``python -m course_lib.zoo.recipes.pose transfer`` measures transfer from ImageNet: the same DeepPose
regression head on the frozen features of EfficientNet-Lite0 (person crops at 128×128: a 1280×4×4 map), on
the frozen trunk of the ``shapes_gap`` classifier (crops at 64×64), and a regressor trained from scratch — the
same training figures and epochs, three seeds each, PCK@0.2 and PCK@0.1 — plus the whole image against the
person crop as input, and the flip investigation (longer budgets, more seeds, mirrored held-out figures). It
writes ``pose_transfer.json``, which chapter 5 reads. Frozen features are computed once per input and cached.

Training uses seed-101 figures, the experiments seed-103 figures and every held-out number seed-102 figures.
Each run is a pure function of its settings and seeds on one device (a GPU's kernels may differ from the CPU's
in the last bits; figures are drawn on the training device).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from ...data import PoseFiguresDataset
from ...device import get_device, seed_everything
from ...models import FeatureHead, frozen_features
from ...pose import (
    NUM_JOINTS,
    PoseRegressor,
    RefinementStage,
    crop_boxes,
    denormalize_joints,
    hflip_pose,
    joint_distances,
    normalize_joints,
    pck,
    pose_loader,
    pose_loss,
    predict_joints,
    square_boxes,
    torso_diameter,
)
from ...training import fit
from .. import Recipe

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
EXPERIMENTS_FILE = CHECKPOINTS / "pose_experiments.json"
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


def _pck_metric(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # box-normalized coordinates of square crops are isotropic: PCK there is PCK in the image
    return pck(out, target, alpha=0.2)


def _heldout_loader(data: PoseFiguresDataset, device: torch.device, size: int, scale: float = 1.2) -> DataLoader:
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
        heldout = _heldout_loader(_figures(d, "heldout", device), device, settings["model"]["input_size"])
        history = fit(model, loader, heldout, device=device,
                      progress=progress, loss_fn=pose_loss, metrics={"pck": _pck_metric}, **settings["fit"])
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

    from ...pose import _Indices

    shuffler = torch.Generator().manual_seed(seed)
    return DataLoader(_Indices(len(data)), batch_size=batch_size, shuffle=True, generator=shuffler,
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


# -------------------------------------------------------------------------------------------------- experiments
def _run(model: PoseRegressor, train: PoseFiguresDataset, heldout: PoseFiguresDataset, augment: dict,
         fit_settings: dict, device: torch.device, progress: bool) -> dict:
    loader = pose_loader(train, fit_settings["batch_size"], seed=fit_settings["seed"], device=device,
                         size=model.input_size, **augment)
    history = fit(model, loader, _heldout_loader(heldout, device, model.input_size, augment.get("scale", 1.2)),
                  device=device,
                  progress=progress, loss_fn=pose_loss, metrics={"pck": _pck_metric}, **fit_settings)
    pred = predict_joints(model, heldout.images.to(device), heldout.boxes.to(device), scale=augment.get("scale", 1.2))
    gt = heldout.joints.to(device)
    return {
        "train_loss": history["train_loss"],
        "val_loss": history["val_loss"],
        "val_pck": history["val_pck"],
        "heldout_pck": float(pck(pred, gt)),
        "heldout_pck_per_joint": pck(pred, gt, per_joint=True).tolist(),
        "seconds": history["time"][-1],
    }


def run_experiments(device: torch.device | str | None = None, progress: bool = True,
                    classifier: nn.Module | None = None, out: Path | None = EXPERIMENTS_FILE,
                    parts: tuple[str, ...] = ("augmentation", "transfer")) -> dict:
    """Train the chapter's comparison runs and write them to ``pose_experiments.json`` (see module doc).

    Args:
        device: where to train (default :func:`course_lib.device.get_device`).
        progress: show progress bars.
        classifier: the classifier whose trunk starts the transfer run (default: the zoo's ``shapes_gap``).
        out: the JSON file to write (``None``: write nothing); parts not rerun are kept from it.
        parts: which comparisons to run: ``"augmentation"``, ``"transfer"`` or both.
    """
    from .. import load, sha256

    device = torch.device(device) if device is not None else get_device()
    s = EXPERIMENT_SETTINGS
    d = s["data"]
    train, heldout = _figures(d, "train", device), _figures(d, "heldout", device)
    start = time.perf_counter()
    for part in parts:
        if part not in ("augmentation", "transfer"):
            raise ValueError(f"parts must hold 'augmentation' and/or 'transfer', got {part!r}")
    result: dict = json.loads(Path(out).read_text()) if out is not None and Path(out).is_file() else {}
    result.update({"settings": s, "torch": torch.__version__})
    result.setdefault("device", {})
    if "augmentation" in parts:
        result["augmentation"] = _augmentation_runs(s, train, heldout, device, progress)
        result["device"]["augmentation"] = device.type
    if "transfer" in parts:
        if classifier is None:
            classifier = load(s["transfer"]["classifier"], device)
            result["classifier_sha256"] = sha256(CHECKPOINTS / f"{s['transfer']['classifier']}.pt")
        result["transfer"] = _transfer_runs(s, train, heldout, classifier, device, progress)
        result["device"]["transfer"] = device.type
    result["seconds"] = round(time.perf_counter() - start, 1)
    if out is not None:
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
    return result


def _augmentation_runs(s: dict, train, heldout, device: torch.device, progress: bool) -> dict:
    runs = {}
    for name, augment in s["augmentation"].items():
        seed_everything(s["init_seed"])
        model = PoseRegressor(**s["model"])
        runs[name] = _run(model, train, heldout, augment, s["fit"], device, progress)
    return runs


def _transfer_runs(s: dict, train, heldout, classifier: nn.Module, device: torch.device, progress: bool) -> dict:
    t = s["transfer"]
    small = _SubsetFigures(train, t["n_train"])
    fit_settings = {**s["fit"], "epochs": t["epochs"]}
    augment = s["augmentation"][t["augment"]]
    input_size = s["model"]["input_size"]
    runs = {}
    for name in ("scratch", "pretrained", "pretrained, frozen trunk"):
        seed_everything(s["init_seed"])
        if name == "scratch":  # the same architecture as the pretrained runs: the classifier's trunk width
            model = PoseRegressor(width=getattr(classifier, "width", s["model"]["width"]), input_size=input_size,
                                  downsample=s["model"]["downsample"])
        else:
            model = PoseRegressor.from_classifier(classifier.to("cpu"), input_size=input_size,
                                                  downsample=s["model"]["downsample"])
        if name.endswith("frozen trunk"):
            for p in model.features.parameters():
                p.requires_grad_(False)
        runs[name] = _run(model, small, heldout, augment, fit_settings, device, progress)
    return runs


class _SubsetFigures:
    """The first ``n`` figures of a dataset, with the attributes :func:`pose_loader` reads."""

    def __init__(self, data: PoseFiguresDataset, n: int) -> None:
        self.images, self.joints, self.boxes = data.images[:n], data.joints[:n], data.boxes[:n]
        self.visibility = data.visibility[:n]

    def __len__(self) -> int:
        return self.images.shape[0]


# ------------------------------------------------------------------------------------------ transfer (3-way)
TRANSFER_FILE = CHECKPOINTS / "pose_transfer.json"
TRANSFER_SETTINGS: dict = {
    "data": EXPERIMENT_SETTINGS["data"],
    "seeds": [0, 1, 2],
    "scale": 1.2,
    "head": {"neck": 64},
    "fit": {"epochs": 15, "lr": 3e-3, "batch_size": 64, "optimizer": "adam", "schedule": "cosine",
            "weight_decay": 1e-4},
    "n_heldout_used": 500,
    "imagenet_input": 96,
    "shapes_classifier": "shapes_gap",
    "shapes_input": 64,
    "scratch_model": EXPERIMENT_SETTINGS["model"],
    "flip_runs": [["none", 15, [0, 1, 2]]],
}


def _whole_boxes(n: int) -> torch.Tensor:
    return torch.tensor([0.5, 0.5, 1.0, 1.0]).expand(n, 4).clone()


def transfer_inputs(data: PoseFiguresDataset, size: int, scale: float = 1.2, whole: bool = False):
    """``(inputs, boxes)``: square person crops of side ``size`` (or the whole image resized) and their boxes."""
    if whole:
        boxes = _whole_boxes(len(data))
        x = torch.nn.functional.interpolate(data.images, size=(size, size), mode="bilinear", align_corners=False)
        return x, boxes
    boxes = square_boxes(data.boxes, scale, tuple(data.images.shape[-2:]))
    return crop_boxes(data.images, boxes, size), boxes


def _cached(key: str, compute):
    from .localization import FEATURE_CACHE

    path = FEATURE_CACHE / f"pose_{key}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    out = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)
    return out


def pose_features(backbone: str, data: PoseFiguresDataset, tag: str, *, whole: bool = False, flipped: bool = False,
                  settings: dict = TRANSFER_SETTINGS, device=None):
    """Frozen features of the person crops (or whole images) of ``data`` and the box-normalized targets."""
    size = settings["imagenet_input"] if backbone == "imagenet" else settings["shapes_input"]
    x, boxes = transfer_inputs(data, size, settings["scale"], whole)
    targets = normalize_joints(data.joints, boxes)
    if flipped:
        x, targets = hflip_pose(x, targets, coords="centered")

    def compute():
        if backbone == "imagenet":
            from ...pretrained import efficientnet_lite0

            return frozen_features(efficientnet_lite0(device or "cpu").features, x, progress=True)
        from .. import load

        return frozen_features(load(settings["shapes_classifier"], device or "cpu").features, x)

    key = f"{backbone}_{tag}_{'whole' if whole else 'crop'}{'_flip' if flipped else ''}_{size}"
    return _cached(key, compute), targets, boxes


def train_pose_head(train_feats, train_targets, seed: int, settings: dict = TRANSFER_SETTINGS, device=None,
                    epochs: int | None = None) -> FeatureHead:
    """A :class:`FeatureHead` regressing the 14 joints from cached features (L2 loss), trained in place."""
    seed_everything(seed)
    head = FeatureHead(train_feats.shape[1], train_feats.shape[-1], pooled=0, spatial=2 * NUM_JOINTS,
                       neck=settings["head"]["neck"])

    def loss_fn(out, target):
        return pose_loss(out[1].view(-1, NUM_JOINTS, 2), target)

    f = {**settings["fit"], "epochs": epochs or settings["fit"]["epochs"]}
    fit(head, (train_feats, train_targets), device=device or "cpu", progress=False, loss_fn=loss_fn, seed=seed, **f)
    return head.cpu().eval()


def _head_metrics(head: FeatureHead, feats, boxes, data: PoseFiguresDataset) -> dict:
    with torch.no_grad():
        z = head(feats)[1].view(-1, NUM_JOINTS, 2)
    return heldout_metrics(denormalize_joints(z, boxes), data)


def _mirrored(data: PoseFiguresDataset) -> _SubsetFigures:
    out = _SubsetFigures(data, len(data))
    out.images, out.joints = hflip_pose(data.images, data.joints)
    out.boxes = data.boxes.clone()
    out.boxes[:, 0] = 1 - out.boxes[:, 0]
    return out


def run_transfer(device=None, progress: bool = True, parts=("heads", "scratch"), out: Path | None = TRANSFER_FILE):
    """The three-way transfer table, whole image vs crop, and the flip runs (see the module docstring)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    s = TRANSFER_SETTINGS
    d = s["data"]
    train = figures(d["n_train"], d["train_seed"], d["size"])
    heldout = _SubsetFigures(figures(d["n_heldout"], d["heldout_seed"], d["size"]), s["n_heldout_used"])
    result: dict = json.loads(Path(out).read_text()) if out is not None and Path(out).is_file() else {}
    result["settings"] = s
    tag_tr, tag_te = f"n{d['n_train']}_s{d['train_seed']}", f"n{s['n_heldout_used']}of{d['n_heldout']}_s{d['heldout_seed']}"
    if "heads" in parts:
        heads: dict = {}
        variants = {"imagenet, frozen": ("imagenet", False, False), "shapes_gap, frozen": ("shapes", False, False),
                    "shapes_gap, frozen, whole image": ("shapes", True, False)}
        for name, (backbone, whole, _) in variants.items():
            tr_f, tr_t, _ = pose_features(backbone, train, tag_tr, whole=whole, device=device)
            te_f, _, te_b = pose_features(backbone, heldout, tag_te, whole=whole, device=device)
            runs = []
            for seed in s["seeds"]:
                start = time.perf_counter()
                head = train_pose_head(tr_f, tr_t, seed, device=device)
                runs.append({"seed": seed, **_head_metrics(head, te_f, te_b, heldout),
                             "seconds": round(time.perf_counter() - start, 1)})
            heads[name] = runs
            if progress:
                print(name, [round(r["pck@0.2"], 3) for r in runs], flush=True)
        # flips on frozen (cheap) features: the mirrored training crops (with the swap) added to the originals,
        # for the same epochs and for twice as many; and every head scored on mirrored held-out figures
        tr_f, tr_t, _ = pose_features("shapes", train, tag_tr, device=device)
        fl_f, fl_t, _ = pose_features("shapes", train, tag_tr, flipped=True, device=device)
        te_f, _, te_b = pose_features("shapes", heldout, tag_te, device=device)
        mirrored = _mirrored(heldout)
        mi_f, _, mi_b = pose_features("shapes", mirrored, tag_te + "_mirrored", device=device)
        epochs = s["fit"]["epochs"]
        for name, (f_, t_, ep) in {"shapes_gap, frozen": (tr_f, tr_t, epochs),
                                   "shapes_gap, frozen, 2x epochs": (tr_f, tr_t, 2 * epochs),
                                   "shapes_gap, frozen, + flipped copies": (torch.cat([tr_f, fl_f]), torch.cat([tr_t, fl_t]), epochs),
                                   "shapes_gap, frozen, + flipped copies, 2x epochs":
                                       (torch.cat([tr_f, fl_f]), torch.cat([tr_t, fl_t]), 2 * epochs)}.items():
            runs = []
            for seed in s["seeds"]:
                head = train_pose_head(f_, t_, seed, device=device, epochs=ep)
                runs.append({"seed": seed, **_head_metrics(head, te_f, te_b, heldout),
                             "mirrored_pck@0.2": _head_metrics(head, mi_f, mi_b, mirrored)["pck@0.2"]})
            heads[f"flips: {name}"] = runs
            if progress:
                print(name, [round(r["pck@0.2"], 3) for r in runs], flush=True)
        result["heads"] = heads
    if "scratch" in parts:
        scratch: dict = {}
        mirrored = _mirrored(heldout)
        for aug, epochs, seeds in s["flip_runs"]:
            runs = []
            for seed in seeds:
                seed_everything(seed)
                model = PoseRegressor(**s["scratch_model"])
                f = {**s["fit"], "epochs": epochs, "seed": seed}
                augment = EXPERIMENT_SETTINGS["augmentation"][aug]
                loader = pose_loader(train, f["batch_size"], seed=seed, device=device, size=model.input_size, **augment)
                start = time.perf_counter()
                fit(model, loader, device=device, progress=False, loss_fn=pose_loss, **f)
                model = model.cpu()
                pred = predict_joints(model, heldout.images, heldout.boxes)
                pred_m = predict_joints(model, mirrored.images, mirrored.boxes)
                runs.append({"seed": seed, **heldout_metrics(pred, heldout),
                             "mirrored_pck@0.2": float(pck(pred_m, mirrored.joints, 0.2)),
                             "seconds": round(time.perf_counter() - start, 1)})
            scratch[f"{aug}, {epochs} epochs"] = runs
            if progress:
                print(aug, epochs, [round(r["pck@0.2"], 3) for r in runs], flush=True)
        result["scratch"] = scratch
    result["torch"] = torch.__version__
    if out is not None:
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
    return result


def load_transfer(path: Path | None = None) -> dict:
    """The measurements written by :func:`run_transfer` (chapter 5 reads them)."""
    path = Path(path) if path is not None else TRANSFER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rebuild it with `python -m course_lib.zoo.recipes.pose transfer`")
    return json.loads(path.read_text())


def load_experiments(path: Path | None = None) -> dict:
    """The measurements written by :func:`run_experiments` (chapter 5 reads them)."""
    path = Path(path) if path is not None else EXPERIMENTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rebuild it with `python -m course_lib.zoo.recipes.pose "
                                "experiments` (about a minute on a GPU, longer on a CPU)")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.zoo.recipes.pose", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("experiments", help="measure augmentation and transfer learning; write pose_experiments.json")
    ex.add_argument("--device", default=None)
    ex.add_argument("--quiet", action="store_true")
    ex.add_argument("--parts", nargs="+", default=["augmentation", "transfer"], choices=["augmentation", "transfer"])
    tf = sub.add_parser("transfer", help="three-way transfer, whole image vs crop, flips; write pose_transfer.json")
    tf.add_argument("--device", default=None)
    tf.add_argument("--parts", nargs="+", default=["heads", "scratch"], choices=["heads", "scratch"])
    tf.add_argument("--out", default=str(TRANSFER_FILE))
    args = parser.parse_args(argv)
    if args.cmd == "transfer":
        run_transfer(args.device, parts=tuple(args.parts), out=Path(args.out))
        return 0
    result = run_experiments(args.device, progress=not args.quiet, parts=tuple(args.parts))
    print(json.dumps({k: v["heldout_pck"] for part in ("augmentation", "transfer")
                      for k, v in result[part].items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
