r"""Metrics that judge saliency maps.

* *Faithfulness* to the model — does the model's confidence follow the map?
  :func:`deletion_auc` / :func:`insertion_auc` (Petsiuk et al., *RISE*, BMVC 2018) and
  :func:`average_drop` / :func:`increase_in_confidence` (Chattopadhay et al., *Grad-CAM++*, WACV 2018).
* *Localization* against ground truth — does the map find the object?
  :func:`pointing_game` (Zhang et al., *Top-down Neural Attention by Excitation Backprop*, ECCV 2016),
  :func:`saliency_to_box` (Zhou et al., *CAM*, CVPR 2016) and :func:`corloc` (Deselaers et al., 2012).
* *Faithfulness with a debiased substrate*: :func:`road` (Rong et al., ICML 2022), pixels removed and filled
  by :func:`linear_imputation`.
* *Region overlap*: :func:`mask_iou`, the IoU of a thresholded map with the object mask.
* *Reconstruction quality* (chapter 8's decoders): :func:`psnr` and :func:`ssim` (Wang et al., 2004).
* *Uncertainty* of any per-image metric: :func:`bootstrap_interval` (Efron, 1979), the percentile bootstrap
  interval of its mean over the images.

Maps are ``(N, H, W)`` at the images' resolution, as returned by the explainers. Functions with a
``reduction`` argument return a Python float for ``"mean"`` and a per-image ``(N,)`` tensor for ``"none"``.
Boxes are normalized ``(x, y, h, w)`` with ``(x, y)`` the box centre.
"""

from .faithfulness import (
    average_drop,
    deletion_auc,
    deletion_curve,
    deletion_insertion_curves,
    increase_in_confidence,
    insertion_auc,
    insertion_curve,
)
from .localization import corloc, mask_iou, pointing_game, saliency_to_box
from .reconstruction import psnr, ssim
from .road import linear_imputation, road
from .uncertainty import bootstrap_interval

__all__ = [
    "deletion_curve",
    "insertion_curve",
    "deletion_auc",
    "insertion_auc",
    "deletion_insertion_curves",
    "pointing_game",
    "mask_iou",
    "psnr",
    "road",
    "linear_imputation",
    "ssim",
    "average_drop",
    "increase_in_confidence",
    "saliency_to_box",
    "corloc",
    "bootstrap_interval",
]
