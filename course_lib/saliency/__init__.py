"""Saliency maps: which pixels of an image a classifier's decision rests on.

Every explainer follows one contract (DESIGN.md §3)::

    explainer = GradCAM(model, target_layer)          # a module of the model or its dotted name
    maps = explainer(images, targets=None)            # (N, H, W) in [0, 1]
    raw = explainer(images, targets, upsample=False, normalize=False)   # the layer's resolution, after ReLU

* :class:`CAM`, :class:`GradCAM`, :class:`GradCAMPlusPlus`, :class:`SmoothGradCAMPlusPlus` — weighted sums of
  one layer's feature maps (:mod:`course_lib.saliency.cam`);
* :class:`LayerCAM` — per-position weights, the positive gradient (:mod:`course_lib.saliency.layercam`);
* :class:`GuidedBackprop`, :class:`GuidedGradCAM` — the input gradient with a guided backward pass through
  the rectifiers, alone or times Grad-CAM (:mod:`course_lib.saliency.guided`);
* :class:`ScoreCAM` — weights from the scores of inputs masked by each feature map, no gradient
  (:mod:`course_lib.saliency.scorecam`);
* :class:`AugmentedGradCAM` — Grad-CAM super-resolved from augmented copies (:mod:`course_lib.saliency.augmented`; its
  warps in :mod:`course_lib.saliency.warps`, its solver in :mod:`course_lib.saliency.superres`);
* :class:`RISE` — random masks, forward passes only (:mod:`course_lib.saliency.rise`);
* :class:`PerceptionVisualization` — a decoder's reconstruction shown through a saliency map
  (:mod:`course_lib.saliency.perception`);
* :mod:`course_lib.saliency.metrics` — deletion/insertion AUC, pointing game, average drop, increase in
  confidence, saliency → box, CorLoc.

New methods subclass the private bases in :mod:`course_lib.saliency._base` (its docstring says how).
"""

from . import metrics
from .augmented import AugmentedGradCAM
from .cam import CAM, GradCAM, GradCAMPlusPlus, SmoothGradCAMPlusPlus
from .guided import GuidedBackprop, GuidedGradCAM
from .layercam import LayerCAM
from .perception import PerceptionVisualization
from .rise import RISE
from .scorecam import ScoreCAM

__all__ = [
    "CAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "SmoothGradCAMPlusPlus",
    "LayerCAM",
    "GuidedBackprop",
    "GuidedGradCAM",
    "ScoreCAM",
    "AugmentedGradCAM",
    "RISE",
    "PerceptionVisualization",
    "metrics",
]
