r"""Chapter 5's transfer study: a pose head on frozen ImageNet features vs on the shapes classifier's trunk vs
a regressor trained from scratch.

The same regression head (:func:`course_lib.zoo.recipes.pose.pose_head`: a strided 3×3 convolution, batch norm,
ReLU and a zero-initialized linear layer) is trained with the L2 loss on the frozen features of
EfficientNet-Lite0 (person crops at 128×128; the output of ``blocks[10]``, 112×8×8, and for comparison the last
layer, 1280×4×4) and on the frozen trunk of the ``shapes_gap`` classifier (crops at 64×64, 64×16×16); a
:class:`~course_lib.pose.PoseRegressor` is trained from scratch — the same 1,000 training figures (seed 103)
and 15 epochs, three seeds each, PCK@0.2 and PCK@0.1 on 1,000 held-out figures (seed 102), and the mean-pose
baseline. The ImageNet layer and the head's learning rate were chosen on 500 validation figures (seed 104;
stored under ``selection``). Adam's first step moves every weight by about the learning rate, so on a
flattened map of thousands of inputs the head needs a learning rate ten times below the scratch regressor's.

Settings: :data:`course_lib.zoo.recipes.pose.TRANSFER_SETTINGS`. A few minutes on a CPU
(``python -m course_lib.studies run pose_transfer``); the quick slice keeps the ``shapes_gap`` arm, seed 0.
"""

from __future__ import annotations

import json as _json

import torch

from ..zoo.recipes.pose import (
    TRANSFER_SETTINGS,
    PoseRegressor,
    figures,
    fit,
    head_predictions,
    heldout_metrics,
    mean_pose_metrics,
    pose_features,
    pose_loader,
    pose_loss,
    predict_joints,
    seed_everything,
    train_pose_head,
)
from . import Study, torch_threads

SETTINGS = TRANSFER_SETTINGS
QUICK = {**SETTINGS, "seeds": [0],
         "backbones": {"shapes_gap": SETTINGS["backbones"]["shapes_gap"]},
         "selection": {**SETTINGS["selection"], "lite0_layers": [], "lrs": SETTINGS["selection"]["lrs"][:1]}}


def run(settings: dict, progress: bool = False, device: str = "cpu") -> dict:
    """The three-way transfer table: ImageNet vs ``shapes_gap`` frozen features vs from scratch (module doc).

    On one CPU thread, as the stored results were made: the from-scratch arm trains a network, and float
    reductions on two threads sum in another order, so its numbers would drift in the third decimal.
    """
    with torch_threads(1):
        return _run(settings, progress, device)


def _run(settings: dict, progress: bool, device: str) -> dict:
    device = torch.device(device)
    s = settings
    d = s["data"]
    splits = {w: figures(d[f"n_{w}"], d[f"{w}_seed"], d["size"]) for w in ("train", "val", "heldout")}
    result: dict = {"selection": {}, "runs": {}}
    nets = {}
    for b in s["backbones"].values():
        layers = nets.setdefault((b["network"], b["input"]), set())
        layers.add(b["layer"])
        if b["network"] == "efficientnet_lite0":
            layers.update(s["selection"]["lite0_layers"])
    feats: dict = {}
    for (network, size), layers in nets.items():
        for w, data in splits.items():
            f, t, bx = pose_features(network, tuple(sorted(layers)), data, w, size=size, settings=s,
                                     device=device)
            feats[network, w] = (f, t, bx)
    train_t = feats["shapes_gap", "train"][1]
    for w in ("val", "heldout"):
        result[f"mean_pose_{w}"] = mean_pose_metrics(train_t, feats["shapes_gap", w][2], splits[w])

    def score(network, layer, seed, w, **fit_overrides):
        (tr_f, tr_t, _), (f, _, bx) = feats[network, "train"], feats[network, w]
        head, history = train_pose_head(tr_f[layer], tr_t, seed, s, device=device, **fit_overrides)
        return {"seed": seed, **heldout_metrics(head_predictions(head, f[layer], bx), splits[w]),
                "train_loss": history["train_loss"][-1]}

    sel = s["selection"]
    lr0 = s["backbones"].get("imagenet", {}).get("lr")
    result["selection"]["lite0_layer"] = {layer: score("efficientnet_lite0", layer, sel["seed"], "val", lr=lr0)
                                          for layer in sel["lite0_layers"]}
    result["selection"]["lr"] = {
        name: {str(lr): score(b["network"], b["layer"], sel["seed"], "val", lr=lr) for lr in sel["lrs"]}
        for name, b in s["backbones"].items() if name in ("imagenet", "shapes_gap")}
    if progress:
        print("selection (validation PCK@0.2):", _json.dumps({k: {kk: round(vv["pck@0.2"], 3) for kk, vv in v.items()}
              for k, v in result["selection"].items() if k == "lite0_layer"}), flush=True)
    for name, b in s["backbones"].items():
        result["runs"][name] = [score(b["network"], b["layer"], seed, "heldout", lr=b["lr"]) for seed in s["seeds"]]
        if progress:
            print(name, [round(r["pck@0.2"], 3) for r in result["runs"][name]], flush=True)
    sc = s["scratch"]
    train, heldout = splits["train"], splits["heldout"]
    runs = []
    for seed in s["seeds"]:
        seed_everything(seed)
        model = PoseRegressor(**sc["model"])
        f = {**sc["fit"], "seed": seed}
        loader = pose_loader(train, f["batch_size"], seed=seed, device=device, size=model.input_size, **sc["augment"])
        history = fit(model, loader, device=device, progress=False, loss_fn=pose_loss, **f)
        pred = predict_joints(model.cpu(), heldout.images, heldout.boxes, scale=s["scale"])
        runs.append({"seed": seed, **heldout_metrics(pred, heldout), "train_loss": history["train_loss"][-1]})
    result["runs"]["scratch"] = runs
    if progress:
        print("scratch", [round(r["pck@0.2"], 3) for r in runs], flush=True)
    return result


STUDY = Study(
    name="pose_transfer",
    description="pose head on frozen EfficientNet-Lite0 (blocks.10 / head) vs shapes_gap trunk vs scratch, "
                "3 seeds, PCK@0.2 on 1,000 held-out figures",
    chapter="05_pose_estimation",
    settings=SETTINGS,
    quick=QUICK,
    run=run,
    minutes=8,
    atol=1e-6,  # the same seeds and cached features on the CPU: a rerun gives the same numbers
    rtol=1e-5,
)
