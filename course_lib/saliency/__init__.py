"""Saliency maps: which pixels of an image a classifier's decision rests on.

Every explainer follows one contract (DESIGN.md §3)::

    explainer = GradCAM(model, target_layer)          # a module of the model or its dotted name
    maps = explainer(images, targets=None)            # (N, H, W) in [0, 1]
    raw = explainer(images, targets, upsample=False, normalize=False)   # the layer's resolution, after ReLU
    out = explainer.explain(images, targets)          # an Explanation: out.maps, out.targets, out.scores, ...

``explain`` returns the maps together with what produced them, as a frozen :class:`Explanation` (a method's
subclass adds its own fields: :class:`~course_lib.saliency.augmented.AugmentedExplanation` the warps, the
measurements, the solver's output and the timings; :class:`~course_lib.saliency.perception.PerceptionResult`
the reconstructions and the visualizations). An explainer keeps nothing between calls. Randomized explainers
take ``seed: int | torch.Generator``; those with several passes take ``progress: bool``.

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
* :func:`upsample_maps`, :func:`normalize_maps` — the post-processing every explainer applies
  (:mod:`course_lib.saliency.maps`);
* :mod:`course_lib.saliency.metrics` — deletion/insertion AUC, pointing game, average drop, increase in
  confidence, saliency → box, CorLoc.

New methods subclass the private bases in :mod:`course_lib.saliency._base` (its docstring says how).
"""

from . import metrics
from ._base import Explanation
from .augmented import AugmentedGradCAM
from .cam import CAM, GradCAM, GradCAMPlusPlus, SmoothGradCAMPlusPlus
from .guided import GuidedBackprop, GuidedGradCAM
from .layercam import LayerCAM
from .maps import normalize_maps, upsample_maps
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
    "Explanation",
    "normalize_maps",
    "upsample_maps",
    "metrics",
]
