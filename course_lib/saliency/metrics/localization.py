r"""Localization against ground truth: the pointing game (Zhang et al., ECCV 2016), the box of a map
(Zhou et al., *CAM*, CVPR 2016) and CorLoc (Deselaers et al., 2012)."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torchvision.ops import box_iou

from ..._checks import check_choice, check_positive, check_probability, check_tensor
from ..._types import Boxes, Maps
from ...boxes import mask_to_box, xyhw_to_xyxy
from ._common import reduce_values

__all__ = ["pointing_game", "mask_iou", "saliency_to_box", "corloc"]


def mask_iou(maps: Maps, masks: torch.Tensor, tau: float = 0.5, *, reduction: str = "mean"):
    r"""Intersection over union of each map's region above ``tau`` and its ground-truth mask.

    With the kept region :math:`K_i = \{(u, v) : L_i(u, v) \ge \tau\}` of a map :math:`L_i` in
    :math:`[0, 1]` (the explainers' normalized output) and the object mask :math:`M_i`,

    .. math::

        \mathrm{IoU}_i(\tau) = \frac{|K_i \cap M_i|}{|K_i \cup M_i|}

    (0 when both are empty). This is the one mask IoU of the course: chapters, studies and recipes call it.

    Args:
        maps: ``(N, H, W)`` saliency maps in ``[0, 1]``.
        masks: ``(N, H, W)`` boolean object masks.
        tau: the threshold, in ``[0, 1]``.
        reduction: ``"mean"`` (float) or ``"none"`` (``(N,)`` tensor).

    Example:
        >>> maps = torch.tensor([[[1.0, 0.6], [0.2, 0.0]]])
        >>> masks = torch.tensor([[[True, False], [True, False]]])
        >>> mask_iou(maps, masks, 0.5)  # kept {(0,0), (0,1)}, mask {(0,0), (1,0)}: 1 / 3
        0.3333333432674408
    """
    maps = check_tensor(maps, "maps", ndim=3)
    if not isinstance(masks, torch.Tensor) or masks.dtype != torch.bool:
        got = f"dtype {masks.dtype}" if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise TypeError(f"masks must be a boolean tensor, got {got}")
    if masks.shape != maps.shape:
        raise ValueError(f"masks must have the maps' shape {tuple(maps.shape)}, got shape {tuple(masks.shape)}")
    tau = check_probability(tau, "tau")
    keep = maps >= tau
    masks = masks.to(maps.device)
    iou = (keep & masks).flatten(1).sum(1) / (keep | masks).flatten(1).sum(1).clamp_min(1)
    return reduce_values(iou, reduction)


def pointing_game(maps: Maps, masks: torch.Tensor, *, tolerance: float = 0.0, reduction: str = "mean"):
    r"""The pointing game (Zhang et al., 2016): does each map's maximum fall on the object?

    Image :math:`i` is a *hit* when the position of the maximum of its map lies within ``tolerance`` pixels
    (Euclidean) of a pixel of its ground-truth mask; the score is the fraction of hits,

    .. math::

        \text{accuracy} = \frac{\#\text{hits}}{\#\text{hits} + \#\text{misses}}.

    Ties go to the first maximum in raster order; a constant map points nowhere and is a miss. The paper
    used a 15-pixel tolerance on full-size images; the default here is 0 (the maximum must be on the mask).

    Args:
        maps: ``(N, H, W)`` saliency maps.
        masks: ``(N, H, W)`` boolean object masks.
        tolerance: distance in pixels.
        reduction: ``"mean"`` (hit rate, float) or ``"none"`` (``(N,)`` bool hits).

    Example:
        >>> maps = torch.zeros(2, 4, 4); maps[0, 1, 1] = maps[1, 3, 3] = 1
        >>> masks = torch.zeros(2, 4, 4, dtype=torch.bool); masks[:, :2, :2] = True
        >>> pointing_game(maps, masks)
        0.5
    """
    check_choice(reduction, "reduction", ("mean", "none"))
    maps = check_tensor(maps, "maps", ndim=3)
    masks = check_tensor(masks, "masks", ndim=3, floating=False)
    if masks.dtype != torch.bool:
        raise TypeError(f"masks must be a bool tensor, got dtype {masks.dtype}")
    if masks.shape != maps.shape:
        raise ValueError(f"masks must have the maps' shape {tuple(maps.shape)}, got shape {tuple(masks.shape)}")
    tolerance = check_positive(tolerance, "tolerance", allow_zero=True)
    masks = masks.to(maps.device)
    n, h, w = maps.shape
    flat = maps.flatten(1)
    peak = flat.argmax(dim=1)
    constant = flat.amax(1) == flat.amin(1)
    py, px = (peak // w).float(), (peak % w).float()
    yy = torch.arange(h, device=maps.device, dtype=torch.float32)[None, :, None]
    xx = torch.arange(w, device=maps.device, dtype=torch.float32)[None, None, :]
    near = (yy - py[:, None, None]) ** 2 + (xx - px[:, None, None]) ** 2 <= tolerance**2
    hits = (near & masks).flatten(1).any(1) & ~constant
    return reduce_values(hits, reduction) if reduction == "mean" else hits


# ---------------------------------------------------------------------- boxes
def saliency_to_box(maps: Maps, threshold: float = 0.2) -> torch.Tensor:
    r"""The box of a saliency map, as in CAM (Zhou et al., 2016).

    Keep the pixels with :math:`L_{ij} \ge \tau \max L` (:math:`\tau` = ``threshold``), label the connected
    regions of what is kept (8-connectivity, ``scipy.ndimage.label``), and return the tight box of the largest
    one (ties: the first in raster order). An all-zero map keeps every pixel, so its box is the whole image.

    Args:
        maps: one ``(H, W)`` map or ``(N, H, W)`` maps.
        threshold: :math:`\tau \in [0, 1]`, a fraction of each map's maximum.

    Returns:
        Normalized ``(x, y, h, w)`` boxes: ``(4,)`` for one map, ``(N, 4)`` for several.

    Example:
        >>> m = torch.zeros(8, 8); m[2:4, 4:8] = 1.0; m[6, 0] = 1.0  # a 2×4 blob and a single pixel
        >>> saliency_to_box(m, threshold=0.5)
        tensor([0.7500, 0.3750, 0.2500, 0.5000])
    """
    maps = check_tensor(maps, "maps", ndim=(2, 3))
    threshold = check_probability(threshold, "threshold")
    single = maps.ndim == 2
    batch = maps[None] if single else maps
    arr = batch.detach().cpu().double().numpy()
    keep = arr >= threshold * arr.reshape(len(arr), -1).max(1)[:, None, None]
    structure = np.ones((3, 3), dtype=bool)
    largest = np.zeros_like(keep)
    for i, k in enumerate(keep):
        labels, count = ndimage.label(k, structure=structure)
        if count == 0:
            continue
        sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
        largest[i] = labels == (int(np.argmax(sizes)) + 1)
    boxes = mask_to_box(torch.from_numpy(largest)).to(device=maps.device, dtype=maps.dtype)
    return boxes[0] if single else boxes


def corloc(boxes: Boxes, gt_boxes: Boxes, iou: float = 0.5, *, reduction: str = "mean"):
    r"""Correct localization (CorLoc): the fraction of images whose box overlaps a ground-truth box enough.

    .. math::

        \mathrm{CorLoc} = \frac{1}{N}\sum_{i=1}^N \mathbb{1}\Big[\max_{g} \mathrm{IoU}(b_i, g) \ge \theta\Big],
        \qquad \mathrm{IoU}(a, b) = \frac{|a \cap b|}{|a \cup b|},

    with :math:`\theta` = ``iou`` (0.5 in the PASCAL criterion) and :math:`g` over the image's ground-truth
    boxes (empty ground-truth boxes, of objects hidden by others, match nothing). IoU is computed by
    :func:`torchvision.ops.box_iou` on corners (:func:`course_lib.localization.xyhw_to_xyxy`); it does not
    change when both boxes are rescaled, so normalized coordinates are fine.

    Args:
        boxes: ``(N, 4)`` predicted normalized ``(x, y, h, w)`` boxes.
        gt_boxes: ``(N, 4)`` or ``(N, K, 4)`` ground-truth boxes (several objects per image).
        iou: the IoU threshold :math:`\theta \in (0, 1]`.
        reduction: ``"mean"`` (float) or ``"none"`` (``(N,)`` bool hits).

    Example:
        >>> corloc(torch.tensor([[0.5, 0.5, 0.5, 0.5]]), torch.tensor([[0.5, 0.5, 0.5, 0.25]]))  # IoU = 0.5
        1.0
    """
    check_choice(reduction, "reduction", ("mean", "none"))
    boxes = check_tensor(boxes, "boxes", ndim=2, shape={1: 4})
    gt = check_tensor(gt_boxes, "gt_boxes", ndim=(2, 3))
    if gt.shape[-1] != 4 or gt.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"gt_boxes must have shape ({boxes.shape[0]}, 4) or ({boxes.shape[0]}, K, 4) to match boxes, "
            f"got shape {tuple(gt.shape)}"
        )
    iou = check_probability(iou, "iou")
    if iou == 0:
        raise ValueError("iou must be in (0, 1], got 0")
    gt = (gt[:, None] if gt.ndim == 2 else gt).to(device=boxes.device, dtype=torch.float64)
    n, k, _ = gt.shape
    # an empty ground-truth box (an object hidden entirely by others) matches nothing
    valid = (gt[..., 2:] > 0).all(-1)
    whole = torch.tensor([0.5, 0.5, 1.0, 1.0], dtype=gt.dtype, device=gt.device)
    a = xyhw_to_xyxy(boxes.double())
    b = xyhw_to_xyxy(torch.where(valid[..., None], gt, whole))
    best = torch.empty(n, dtype=torch.float64, device=boxes.device)
    chunk = 256
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        pair = box_iou(a[s:e], b[s:e].reshape(-1, 4)).view(e - s, e - s, k)
        diag = pair[torch.arange(e - s), torch.arange(e - s)]  # (chunk, K): image i against its own boxes
        best[s:e] = torch.where(valid[s:e], diag, torch.zeros_like(diag)).amax(-1)
    hits = best >= iou - 1e-12
    return reduce_values(hits, reduction) if reduction == "mean" else hits
