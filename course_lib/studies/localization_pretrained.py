r"""Chapter 4's pretrained-backbone study: a two-head model on *frozen* EfficientNet-Lite0 features, its
:math:`\alpha` sweep, and a from-scratch :class:`~course_lib.localization.Localizer` on the same images.

The ImageNet-trained EfficientNet-Lite0 reads 64×64 :class:`~course_lib.data.ShapesDataset` images resized to
128×128 (a 1280×4×4 feature map, computed once and cached in ``~/.cache/course_lib/features``); a trainable
:class:`~course_lib.models.FeatureHead` (a shared 1×1 neck, a softmax class head on its global average and a
linear box head on the whole 4×4 map) is trained with :math:`L = L_\text{cls} + \alpha L_\text{box}` for each
:math:`\alpha` of the sweep on 2,000 training images (seed 100) for 10 epochs; every run is scored on 500
validation images (seed 104) and 600 test images (seed 101). ``scratch`` trains a :class:`Localizer` from
random weights on the same images, epochs and batch size. Three seeds (the seed draws the head's or the
localizer's initialization and the order of the mini-batches); results keyed ``seed=…``.

Settings: :data:`course_lib.zoo.recipes.localization.PRETRAINED_SETTINGS` (without the zoo model's own
``alpha`` and ``seed``), ``seeds`` and ``parts``. About 20 minutes on a CPU (``python -m course_lib.studies run
localization_pretrained``); the quick slice reruns the first :math:`\alpha` of the sweep for seed 0 only.
"""

from __future__ import annotations

from ..zoo.recipes.localization import PRETRAINED_SETTINGS
from . import Study, torch_threads

SETTINGS = {**{k: v for k, v in PRETRAINED_SETTINGS.items() if k not in ("alpha", "seed")},
            "seeds": [0, 1, 2], "parts": ["sweep", "scratch"]}
QUICK = {**SETTINGS, "alphas": SETTINGS["alphas"][:1], "seeds": [0], "parts": ["sweep"]}


def _without_timing(run: dict) -> dict:
    return {k: v for k, v in run.items() if k != "train_seconds"}


def run(settings: dict, progress: bool = False, device: str = "cpu") -> dict:
    from ..zoo.recipes.localization import pretrained_comparison

    with torch_threads(1):
        results: dict = {part: {} for part in settings["parts"]}
        for seed in settings["seeds"]:
            out = pretrained_comparison({**settings, "seed": seed}, device=None if device == "cpu" else device,
                                        progress=progress, parts=tuple(settings["parts"]))
            if "sweep" in out:
                results["sweep"][f"seed={seed}"] = [_without_timing(r) for r in out["sweep"]]
            if "scratch" in out:
                results["scratch"][f"seed={seed}"] = _without_timing(out["scratch"])
        return results


STUDY = Study(
    name="localization_pretrained",
    description="FeatureHead on frozen EfficientNet-Lite0 features of 2,000 shapes: alpha sweep; from-scratch "
                "Localizer on the same images and budget, 3 seeds",
    chapter="04_localization",
    settings=SETTINGS,
    quick=QUICK,
    run=run,
    minutes=20,
    atol=1e-6,  # cached features, fixed seeds, the CPU: a rerun gives the same numbers
    rtol=1e-5,
)
