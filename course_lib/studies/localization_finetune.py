r"""Chapter 4's fine-tuning study: the ImageNet network fine-tuned as a localizer against the same task learned
from scratch, over training-set sizes.

* ``fine-tuned`` — :class:`~course_lib.zoo.recipes.localization.Lite0TopLocalizer`: EfficientNet-Lite0 on the
  64×64 shapes resized to 128×128; the stem and ``blocks[0..7]`` frozen (their output, 80×8×8, computed once
  and cached), ``blocks[8..10]`` (the 112-channel stage, stride 16) trained from their ImageNet weights (batch
  norm keeps the ImageNet statistics) under a new head: a strided 3×3 convolution to 64×4×4, batch norm and
  ReLU, the class read from its global average and the box linearly from the whole map (started at zero);
  :math:`L = L_\text{cls} + 10\,L_\text{box}`, Adam at 1e-3, cosine schedule.
* ``scratch`` — the :class:`~course_lib.localization.Localizer` of section 4.3 from random weights, with the
  from-scratch settings of ``localization_pretrained`` (:math:`\alpha = 1`, random flips, Adam at 2e-3).

Both arms see the first ``n`` of the same 2,000 training images (seed 100) for ``n`` in ``sizes``, the same
number of epochs and batch size, three seeds (initialization of the new layers and order of the mini-batches),
and are scored on the same 600 test images (seed 101); arms of one size and seed share data, so they are
compared by paired differences. The settings were fixed before the runs (no selection on the test images).

Sharded by seed: ``localization_finetune`` holds seed 0, ``localization_finetune_1`` and
``localization_finetune_2`` seeds 1 and 2 (:func:`shard`); chapter 4 joins them. Settings: ``SETTINGS`` below.
About 5 minutes of one quiet CPU core per shard (``python -m course_lib.studies run localization_finetune``);
the quick slice reruns the smallest size.
"""

from __future__ import annotations

from ..localization import evaluate_localizer
from ..training import fit
from ..zoo.recipes.localization import (
    FINETUNE_SETTINGS,
    LOCALIZER_SETTINGS,
    PRETRAINED_SETTINGS,
    Flips,
    build_localizer,
    build_top_localizer,
    lite0_block_features,
    objective,
    shapes_images,
    top_metrics,
    train_top_localizer,
)
from . import Study, torch_threads

SETTINGS = {
    **{k: FINETUNE_SETTINGS[k] for k in ("n_train", "train_seed", "n_test", "test_seed", "size", "input_size",
                                         "backbone", "first", "last", "channels", "alpha", "lr",
                                         "weight_decay", "schedule")},
    "epochs": 15, "batch_size": 64, "sizes": [125, 250, 500], "seeds": [0],
    "scratch": {**PRETRAINED_SETTINGS["scratch"], "lr": PRETRAINED_SETTINGS["lr"]},
}


def run(settings: dict, progress: bool = False, device: str = "cpu") -> dict:
    """Fine-tuned vs from scratch per training-set size and seed (module doc); on one CPU thread, as stored."""
    with torch_threads(1):
        return _run(settings, progress, device)


def _run(settings: dict, progress: bool, device: str) -> dict:
    s = settings
    train_f, train_y, train_b = lite0_block_features(s, "train", s["first"] - 1, device)
    test_f, test_y, test_b = lite0_block_features(s, "test", s["first"] - 1, device)
    train_img = shapes_images(s, "train").images
    test = shapes_images(s, "test")
    runs: dict = {"fine-tuned": {}, "scratch": {}}
    for n in s["sizes"]:
        tr = (train_f[:n], train_y[:n], train_b[:n])
        runs["fine-tuned"][f"n={n}"], runs["scratch"][f"n={n}"] = [], []
        for seed in s["seeds"]:
            model = build_top_localizer(s, seed)
            hist = train_top_localizer(model, {**s, "seed": seed}, tr, None, device)
            runs["fine-tuned"][f"n={n}"].append({"seed": seed, **top_metrics(model.cpu(), test_f, test_y, test_b),
                                                 "train_loss": hist["train_loss"]})
            sc = s["scratch"]
            cfg = {**LOCALIZER_SETTINGS, "seed": seed}
            scratch = build_localizer(cfg)
            loss_fn, metrics = objective("multitask", sc["alpha"])
            hist = fit(scratch, Flips(train_img[:n], train_y[:n], train_b[:n], sc["flips"]), epochs=s["epochs"],
                       lr=sc["lr"], batch_size=s["batch_size"], weight_decay=s["weight_decay"],
                       schedule=s["schedule"], loss_fn=loss_fn, metrics=metrics, device=device, seed=seed,
                       progress=False)
            runs["scratch"][f"n={n}"].append({"seed": seed, **evaluate_localizer(scratch.cpu(), test.images,
                                                                                 test.labels, test.boxes),
                                              "train_loss": hist["train_loss"]})
            if progress:
                print(n, seed, {k: round(v[f"n={n}"][-1]["mean_iou"], 3) for k, v in runs.items()}, flush=True)
    return {"runs": runs}


def shard(seed: int) -> Study:
    """The study of one seed (``localization_finetune`` for seed 0, ``localization_finetune_SEED`` otherwise)."""
    settings = {**SETTINGS, "seeds": [seed]}
    return Study(
        name="localization_finetune" + (f"_{seed}" if seed else ""),
        description=f"EfficientNet-Lite0 with blocks[8..10] fine-tuned as a localizer vs Localizer from scratch, "
                    f"125/250/500 training images, seed {seed}, 600 test images",
        chapter="04_localization",
        settings=settings,
        quick={**settings, "sizes": settings["sizes"][:1]},
        run=run,
        minutes=5,
        atol=1e-6,  # cached features, fixed seeds, one CPU thread: a rerun gives the same numbers
        rtol=1e-5,
    )


STUDY = shard(0)
