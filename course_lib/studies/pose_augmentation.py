r"""Chapter 5's augmentation study: what translation, flips and the left/right swap do to a small DeepPose
regressor, over seeds.

The same :class:`~course_lib.pose.PoseRegressor` (width 16, 32×32 person crops), the same 1,000 training
figures (:class:`~course_lib.data.PoseFiguresDataset`, seed 103) and budget (15 epochs, Adam, cosine schedule,
weight decay 1e-4) under four augmentations — none, translation and zoom jitter, jitter and horizontal flips
that swap left and right joints, and flips *without* the swap — three seeds each (the seed draws the
initialization and the order of the mini-batches). Per run: the training loss per epoch (augmented images,
train mode), the held-out loss and PCK@0.2 per epoch (1,000 figures, seed 102), and at the end the L2 loss on
the *un-augmented* training figures in eval mode — the number to compare with the held-out loss when asking
whether a run overfits — plus the held-out PCK@0.2 overall and per joint.

About 10 minutes on one CPU core (``python -m course_lib.studies run pose_augmentation``).
"""

from __future__ import annotations

import torch

from . import Study, torch_threads

SETTINGS = {
    "data": {"size": 64, "n_train": 1000, "train_seed": 103, "n_heldout": 1000, "heldout_seed": 102},
    "model": {"width": 16, "input_size": 32, "downsample": 1},
    "fit": {"epochs": 15, "lr": 3e-3, "batch_size": 64, "optimizer": "adam", "schedule": "cosine",
            "weight_decay": 1e-4},
    "augmentation": {
        "none": {"scale": 1.2},
        "translate": {"scale": 1.2, "translate": 0.05, "zoom": 0.05},
        "translate+flip": {"scale": 1.2, "translate": 0.05, "zoom": 0.05, "flip": True, "swap": True},
        "translate+flip, no swap": {"scale": 1.2, "translate": 0.05, "zoom": 0.05, "flip": True, "swap": False},
    },
    "seeds": [0, 1, 2],
    "threads": 1,
}
QUICK = {**SETTINGS, "augmentation": {"none": SETTINGS["augmentation"]["none"]}, "seeds": [0]}


def _eval_loss(model, data, size: int, scale: float) -> float:
    from ..pose import pose_loader, pose_loss
    from ..training import evaluate

    loader = pose_loader(data, 256, shuffle=False, device=torch.device("cpu"), size=size, scale=scale)
    return float(evaluate(model, loader, pose_loss, {}, device="cpu")["loss"])


def run(settings: dict, progress: bool = False, device: str = "cpu") -> dict:
    from tqdm.auto import tqdm

    from ..device import seed_everything
    from ..pose import PoseRegressor, pck, pose_loader, pose_loss, predict_joints
    from ..training import fit
    from ..zoo.recipes.pose import figures, heldout_loader, pck_metric

    with torch_threads(settings["threads"]):
        d = settings["data"]
        train = figures(d["n_train"], d["train_seed"], d["size"], "cpu")
        heldout = figures(d["n_heldout"], d["heldout_seed"], d["size"], "cpu")
        cpu = torch.device("cpu")
        out: dict = {}
        jobs = [(name, seed) for name in settings["augmentation"] for seed in settings["seeds"]]
        for name, seed in tqdm(jobs, desc="pose augmentation", disable=not progress):
            augment = settings["augmentation"][name]
            seed_everything(seed)
            model = PoseRegressor(**settings["model"])
            size, scale = model.input_size, augment.get("scale", 1.2)
            f = {**settings["fit"], "seed": seed}
            loader = pose_loader(train, f["batch_size"], seed=seed, device=cpu, size=size, **augment)
            h = fit(model, loader, heldout_loader(heldout, cpu, size, scale), device=cpu, progress=False,
                    loss_fn=pose_loss, metrics={"pck": pck_metric}, **f)
            model.eval()
            pred = predict_joints(model, heldout.images, heldout.boxes, scale=scale)
            out[f"{name}/seed={seed}"] = {
                "train_loss": h["train_loss"], "val_loss": h["val_loss"], "val_pck": h["val_pck"],
                "train_eval_loss": _eval_loss(model, train, size, scale),
                "heldout_loss": _eval_loss(model, heldout, size, scale),
                "heldout_pck": float(pck(pred, heldout.joints)),
                "heldout_pck_per_joint": pck(pred, heldout.joints, per_joint=True).tolist(),
            }
        return out


STUDY = Study(
    name="pose_augmentation",
    description="DeepPose regressor on 1,000 figures: no augmentation / translation / +flip with swap / "
                "+flip without swap, 3 seeds; train vs held-out loss, PCK@0.2 per joint",
    chapter="05_pose_estimation",
    settings=SETTINGS,
    quick=QUICK,
    run=run,
    minutes=10,
    atol=1e-6,  # one thread, fixed seeds: a rerun on the same machine gives the same numbers
    rtol=1e-5,
)
