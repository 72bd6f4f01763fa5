r"""Chapter 5's fine-tuning study: transfer from ImageNet as DeepPose-era networks did it, by training the
borrowed layers too, against the head on the frozen ones.

Both arms start from EfficientNet-Lite0 on the person crops of :mod:`pose_transfer` (128×128; the same 1,000
training figures, seed 103, and 1,000 held-out figures, seed 102) and end in the same regression head
(:func:`course_lib.zoo.recipes.pose.pose_head`):

* ``frozen`` — the head alone on the frozen output of ``blocks[10]`` (112×8×8), as in ``pose_transfer``;
* ``fine-tuned`` — ``blocks[8..10]`` (the 112-channel stage) trained with the head, on the cached output of the
  frozen ``blocks[7]``; their batch norms keep the ImageNet statistics.

Same L2 loss, Adam, cosine schedule, epochs, batch size and learning rate (the value ``pose_transfer`` chose for
the frozen head on validation figures; not tuned again for fine-tuning), three seeds each (the seed draws the
head's initialization and the order of the mini-batches, the same per seed in both arms), PCK@0.2 and PCK@0.1
on the held-out figures. The arms share data and seeds, so they are compared by paired differences.

Settings: ``SETTINGS`` below. About 20 minutes of one CPU core (``python -m course_lib.studies run
pose_finetune``); the quick slice reruns the frozen arm for seed 0.
"""

from __future__ import annotations

from ..zoo.recipes.pose import (
    TRANSFER_SETTINGS,
    figures,
    head_predictions,
    heldout_metrics,
    pose_features,
    train_pose_head,
    train_pose_top,
)
from . import Study, torch_threads

SETTINGS = {
    "data": {k: TRANSFER_SETTINGS["data"][k] for k in ("size", "n_train", "train_seed", "n_heldout", "heldout_seed")},
    "scale": TRANSFER_SETTINGS["scale"], "input": 128, "seeds": [0, 1, 2],
    "head": TRANSFER_SETTINGS["head"], "fit": TRANSFER_SETTINGS["fit"],
    "arms": {"frozen": {"first": 11, "last": 10}, "fine-tuned": {"first": 8, "last": 10}},
}
QUICK = {**SETTINGS, "seeds": [0], "arms": {"frozen": SETTINGS["arms"]["frozen"]}}


def run(settings: dict, progress: bool = False, device: str = "cpu") -> dict:
    """Frozen vs fine-tuned ``blocks[8..10]`` under the same head (module doc); on one CPU thread, as stored."""
    with torch_threads(1):
        return _run(settings, progress, device)


def _run(settings: dict, progress: bool, device: str) -> dict:
    s = {**TRANSFER_SETTINGS, **settings, "data": {**TRANSFER_SETTINGS["data"], **settings["data"]}}
    d = s["data"]
    splits = {w: figures(d[f"n_{w}"], d[f"{w}_seed"], d["size"]) for w in ("train", "heldout")}
    layers = tuple(sorted({f"blocks.{a['first'] - 1}" for a in s["arms"].values()}))
    feats = {w: pose_features("efficientnet_lite0", layers, data, w, size=s["input"], settings=s, device=device)
             for w, data in splits.items()}
    (tr_f, tr_t, _), (he_f, _, he_b) = feats["train"], feats["heldout"]
    runs: dict = {}
    for name, arm in s["arms"].items():
        layer = f"blocks.{arm['first'] - 1}"
        runs[name] = []
        for seed in s["seeds"]:
            if arm["first"] > arm["last"]:
                model, history = train_pose_head(tr_f[layer], tr_t, seed, s, device=device)
            else:
                model, history = train_pose_top(tr_f[layer], tr_t, seed, arm["first"], arm["last"], s,
                                                device=device)
            pred = head_predictions(model, he_f[layer], he_b)
            runs[name].append({"seed": seed, **heldout_metrics(pred, splits["heldout"]),
                               "train_loss": history["train_loss"]})
            if progress:
                print(name, seed, round(runs[name][-1]["pck@0.2"], 3), flush=True)
    return {"runs": runs}


STUDY = Study(
    name="pose_finetune",
    description="pose head on frozen EfficientNet-Lite0 blocks.10 vs blocks[8..10] fine-tuned with it, "
                "3 seeds, PCK on 1,000 held-out figures",
    chapter="05_pose_estimation",
    settings=SETTINGS,
    quick=QUICK,
    run=run,
    minutes=20,
    atol=1e-6,  # the same seeds and cached features on one CPU thread: a rerun gives the same numbers
    rtol=1e-5,
)
