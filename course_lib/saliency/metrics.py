r"""Metrics that judge saliency maps.

* *Faithfulness* to the model — does the model's confidence follow the map?
  :func:`deletion_auc` / :func:`insertion_auc` (Petsiuk et al., *RISE*, BMVC 2018) and
  :func:`average_drop` / :func:`increase_in_confidence` (Chattopadhay et al., *Grad-CAM++*, WACV 2018).
* *Localization* against ground truth — does the map find the object?
  :func:`pointing_game` (Zhang et al., *Top-down Neural Attention by Excitation Backprop*, ECCV 2016),
  :func:`saliency_to_box` (Zhou et al., *CAM*, CVPR 2016) and :func:`corloc` (Deselaers et al., 2012).
* *Uncertainty* of any per-image metric: :func:`bootstrap_interval` (Efron, 1979), the percentile bootstrap
  interval of its mean over the images.

Maps are ``(N, H, W)`` at the images' resolution, as returned by the explainers. Functions with a
``reduction`` argument return a Python float for ``"mean"`` and a per-image ``(N,)`` tensor for ``"none"``.
Boxes are normalized ``(x, y, h, w)`` with ``(x, y)`` the box centre.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator

import numpy as np
import torch
from scipy import ndimage
from torch import nn
from torchvision.ops import box_iou
from torchvision.transforms.functional import gaussian_blur

from .._checks import (
    check_choice,
    check_images,
    check_int,
    check_positive,
    check_probability,
    check_same_device,
    check_targets,
    check_tensor,
)
from ..boxes import mask_to_box, xyhw_to_xyxy
from ..models import model_mode

__all__ = [
    "deletion_curve",
    "insertion_curve",
    "deletion_auc",
    "insertion_auc",
    "deletion_insertion_curves",
    "pointing_game",
    "average_drop",
    "increase_in_confidence",
    "saliency_to_box",
    "corloc",
    "bootstrap_interval",
]


# ---------------------------------------------------------------------- helpers
def _reduce(values: torch.Tensor, reduction: str):
    check_choice(reduction, "reduction", ("mean", "none"))
    return float(values.float().mean()) if reduction == "mean" else values


def _check_maps(maps, images: torch.Tensor | None = None, name: str = "maps") -> torch.Tensor:
    maps = check_tensor(maps, name, ndim=3)
    if images is not None:
        if maps.shape[0] != images.shape[0] or maps.shape[1:] != images.shape[2:]:
            raise ValueError(
                f"{name} must have shape ({images.shape[0]}, {images.shape[2]}, {images.shape[3]}) to match the "
                f"images, got shape {tuple(maps.shape)}"
            )
        maps = maps.to(images.device)
    return maps


@contextlib.contextmanager
def _inference(model: nn.Module, images: torch.Tensor) -> Iterator[None]:
    """Eval mode and no gradients for the duration; restores every module's mode."""
    check_same_device(model, images)
    with model_mode(model), torch.no_grad():
        yield


def _probabilities(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Softmax probability of ``targets[i]`` for ``images[i]``, in batches."""
    out = []
    for start in range(0, images.shape[0], batch_size):
        scores = model(images[start : start + batch_size])
        if not isinstance(scores, torch.Tensor) or scores.ndim != 2:
            raise ValueError("model must return (N, num_classes) scores")
        out.append(torch.softmax(scores, dim=1).gather(1, targets[start : start + batch_size, None])[:, 0])
    return torch.cat(out)


def _targets(model, images, targets, batch_size) -> torch.Tensor:
    if targets is None:
        return torch.cat([model(images[s : s + batch_size]).argmax(1) for s in range(0, images.shape[0], batch_size)])
    scores = model(images[:1])
    return check_targets(targets, images.shape[0], scores.shape[1], images.device)


def _curve(model, images, maps, targets, n_steps, batch_size, start_image, end_image):
    """Probabilities ``(N, n_steps + 1)`` as pixels move from ``start_image`` to ``end_image`` by saliency rank."""
    n, _, h, w = images.shape
    pixels = h * w
    n_steps = check_int(n_steps, "n_steps", minimum=1, maximum=pixels)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    counts = torch.round(torch.arange(n_steps + 1, dtype=torch.float64) * pixels / n_steps).long().to(images.device)
    fractions = counts.double() / pixels
    with _inference(model, images):
        t = _targets(model, images, targets, batch_size)
        order = torch.argsort(maps.flatten(1), dim=1, descending=True, stable=True)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(pixels, device=images.device).expand(n, -1))  # rank of each pixel
        probs = []
        for i in range(n):
            moved = (rank[i][None, :] < counts[:, None]).view(-1, 1, h, w)  # (steps+1, 1, H, W)
            path = torch.where(moved, end_image[i], start_image[i])
            probs.append(_probabilities(model, path, t[i].expand(n_steps + 1), batch_size))
    return fractions.to(images.device), torch.stack(probs)


# ---------------------------------------------------------------------- deletion / insertion
def deletion_curve(model, images, maps, targets=None, *, n_steps: int = 32, baseline: float = 0.0, batch_size: int = 64):
    r"""The deletion curve: class probability as the most salient pixels are removed first.

    Pixels are sorted by decreasing saliency (ties in raster order); after removing the first :math:`k_j`
    of them (set to ``baseline``; black by default) the model's softmax probability :math:`p_j` of the target
    class is recorded, for :math:`k_j = \mathrm{round}(j P / n)`, :math:`j = 0 \dots n`, with :math:`P` pixels.

    Returns:
        ``fractions`` ``(n_steps + 1,)`` — the fraction of pixels removed, from 0 to 1 — and ``probs``
        ``(N, n_steps + 1)``.
    """
    images = check_images(images, channels=None)
    maps = _check_maps(maps, images)
    if isinstance(baseline, bool) or not isinstance(baseline, numbers.Real) or not np.isfinite(baseline):
        raise TypeError(f"baseline must be a finite real number (the value of removed pixels), got {baseline!r}")
    start = images
    end = torch.full_like(images, float(baseline))
    return _curve(model, images, maps, targets, n_steps, batch_size, start, end)


def insertion_curve(
    model, images, maps, targets=None, *, n_steps: int = 32, blur_kernel: int = 11, blur_sigma: float = 5.0,
    batch_size: int = 64,
):
    r"""The insertion curve: class probability as the most salient pixels are copied into a blurred image.

    Starts from the image blurred with a Gaussian (``blur_kernel`` × ``blur_kernel``, standard deviation
    ``blur_sigma`` pixels) and inserts the original pixels in order of decreasing saliency; see
    :func:`deletion_curve` for the steps.

    Returns:
        ``fractions`` ``(n_steps + 1,)`` and ``probs`` ``(N, n_steps + 1)``.
    """
    images = check_images(images, channels=None)
    maps = _check_maps(maps, images)
    blur_kernel = check_int(blur_kernel, "blur_kernel", minimum=1)
    if blur_kernel % 2 == 0:
        raise ValueError(f"blur_kernel must be odd, got {blur_kernel}")
    blur_sigma = check_positive(blur_sigma, "blur_sigma")
    blurred = gaussian_blur(images, [blur_kernel, blur_kernel], [blur_sigma, blur_sigma])
    return _curve(model, images, maps, targets, n_steps, batch_size, blurred, images)


def deletion_auc(
    model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets=None, *, n_steps: int = 32,
    baseline: float = 0.0, batch_size: int = 64, reduction: str = "mean",
):
    r"""Area under the deletion curve (Petsiuk et al., 2018): lower is better.

    .. math::

        \mathrm{AUC}_{\text{del}} = \int_0^1 p(\text{fraction } f \text{ of the most salient pixels removed})\,df,

    computed with the trapezoidal rule on the points of :func:`deletion_curve`. A map that puts the evidence
    first makes the probability collapse early and the area small.

    Args:
        model: the classifier (logits out).
        images: ``(N, C, H, W)``.
        maps: ``(N, H, W)`` saliency maps.
        targets: ``None`` (arg-max class of each image), an int or an ``(N,)`` tensor.
        n_steps: number of steps from the full image to the empty one.
        baseline: value of removed pixels.
        batch_size: images per forward pass.
        reduction: ``"mean"`` (float) or ``"none"`` (``(N,)`` tensor).

    Example:
        >>> from course_lib.models import SmallCNN
        >>> model = SmallCNN(num_classes=5, width=8)
        >>> 0 <= deletion_auc(model, torch.rand(2, 3, 16, 16), torch.rand(2, 16, 16), n_steps=4) <= 1
        True
    """
    check_choice(reduction, "reduction", ("mean", "none"))
    x, probs = deletion_curve(model, images, maps, targets, n_steps=n_steps, baseline=baseline, batch_size=batch_size)
    return _reduce(torch.trapezoid(probs, x.to(probs.dtype), dim=1), reduction)


def insertion_auc(
    model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets=None, *, n_steps: int = 32,
    blur_kernel: int = 11, blur_sigma: float = 5.0, batch_size: int = 64, reduction: str = "mean",
):
    r"""Area under the insertion curve (Petsiuk et al., 2018): higher is better.

    .. math::

        \mathrm{AUC}_{\text{ins}} = \int_0^1 p(\text{fraction } f \text{ of the most salient pixels inserted into
        the blurred image})\,df,

    with the trapezoidal rule on the points of :func:`insertion_curve`. Arguments as :func:`deletion_auc`,
    plus the blur of the starting image.

    Example:
        >>> from course_lib.models import SmallCNN
        >>> model = SmallCNN(num_classes=5, width=8)
        >>> 0 <= insertion_auc(model, torch.rand(2, 3, 16, 16), torch.rand(2, 16, 16), n_steps=4) <= 1
        True
    """
    check_choice(reduction, "reduction", ("mean", "none"))
    x, probs = insertion_curve(
        model, images, maps, targets, n_steps=n_steps, blur_kernel=blur_kernel, blur_sigma=blur_sigma,
        batch_size=batch_size,
    )
    return _reduce(torch.trapezoid(probs, x.to(probs.dtype), dim=1), reduction)


def deletion_insertion_curves(
    model: nn.Module, images: torch.Tensor, maps: dict, targets=None, *, n_steps: int = 32, baseline: float = 0.0,
    blur_kernel: int = 11, blur_sigma: float = 5.0, batch_size: int = 64,
) -> tuple[torch.Tensor, dict]:
    r"""The deletion and insertion curves of several maps of the same images, sharing their common forward passes.

    Equal to :func:`deletion_curve` and :func:`insertion_curve` called for each map (same steps, same ranking,
    same substrates: ``baseline`` for deletion, the ``blur_kernel`` × ``blur_kernel`` Gaussian blur of standard
    deviation ``blur_sigma`` for insertion), but the points every curve shares are computed once: the intact image
    (the start of deletion and the end of insertion), the blurred image (the start of insertion) and the
    constant ``baseline`` image (the end of deletion, the same for every image). With :math:`M` maps and
    :math:`n` steps this takes :math:`2M(n-1) + 2` forward passes per image instead of :math:`2M(n+1)`, in
    batches of ``batch_size`` that mix the maps. The areas are then
    ``torch.trapezoid(probs, fractions, dim=1)``, as in :func:`deletion_auc` / :func:`insertion_auc`.

    Args:
        model: the classifier (logits out).
        images: ``(N, C, H, W)``.
        maps: a dict ``{name: (N, H, W) saliency maps}``.
        targets: ``None`` (arg-max class of each image), an int or an ``(N,)`` tensor.
        n_steps, baseline, blur_kernel, blur_sigma, batch_size: as for :func:`deletion_curve` and
            :func:`insertion_curve`.

    Returns:
        ``fractions`` ``(n_steps + 1,)`` and ``{name: (deletion_probs, insertion_probs)}``, each ``(N, n_steps + 1)``.

    Example:
        >>> from course_lib.models import SmallCNN
        >>> model = SmallCNN(num_classes=5, width=8).eval()
        >>> x = torch.rand(2, 3, 16, 16)
        >>> f, curves = deletion_insertion_curves(model, x, {"a": torch.rand(2, 16, 16), "b": torch.rand(2, 16, 16)},
        ...                                       n_steps=4)
        >>> f.shape, curves["a"][0].shape, curves["b"][1].shape
        (torch.Size([5]), torch.Size([2, 5]), torch.Size([2, 5]))
    """
    images = check_images(images, channels=None)
    if not isinstance(maps, dict) or not maps:
        raise TypeError(f"maps must be a non-empty dict of (N, H, W) saliency maps, got {type(maps).__name__}")
    maps = {name: _check_maps(m, images, f"maps[{name!r}]") for name, m in maps.items()}
    if isinstance(baseline, bool) or not isinstance(baseline, numbers.Real) or not np.isfinite(baseline):
        raise TypeError(f"baseline must be a finite real number (the value of removed pixels), got {baseline!r}")
    blur_kernel = check_int(blur_kernel, "blur_kernel", minimum=1)
    if blur_kernel % 2 == 0:
        raise ValueError(f"blur_kernel must be odd, got {blur_kernel}")
    blur_sigma = check_positive(blur_sigma, "blur_sigma")
    n, _, h, w = images.shape
    pixels = h * w
    n_steps = check_int(n_steps, "n_steps", minimum=1, maximum=pixels)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    counts = torch.round(torch.arange(n_steps + 1, dtype=torch.float64) * pixels / n_steps).long().to(images.device)
    inner = counts[1:-1]  # the steps that differ between maps
    blurred = gaussian_blur(images, [blur_kernel, blur_kernel], [blur_sigma, blur_sigma])
    names = list(maps)
    out = {name: (torch.empty(n, n_steps + 1, device=images.device), torch.empty(n, n_steps + 1, device=images.device))
           for name in names}
    with _inference(model, images):
        t = _targets(model, images, targets, batch_size)
        empty = torch.full_like(images[:1], float(baseline))
        p_empty = torch.softmax(model(empty), dim=1)[0, t]  # (N,): one pass for every image
        for i in range(n):
            batch = [images[i : i + 1], blurred[i : i + 1]]
            for name in names:
                order = torch.argsort(maps[name][i].flatten(), descending=True, stable=True)
                rank = torch.empty_like(order)
                rank[order] = torch.arange(pixels, device=images.device)
                moved = (rank[None, :] < inner[:, None]).view(-1, 1, h, w)  # (n_steps - 1, 1, H, W)
                batch.append(torch.where(moved, torch.zeros((), device=images.device, dtype=images.dtype) + baseline,
                                         images[i]))  # deletion
                batch.append(torch.where(moved, images[i], blurred[i]))  # insertion
            probs = _probabilities(model, torch.cat(batch), t[i].expand(sum(b.shape[0] for b in batch)), batch_size)
            p_full, p_blur, rest = probs[0], probs[1], probs[2:].view(len(names), 2, n_steps - 1)
            for k, name in enumerate(names):
                deletion, insertion = out[name]
                deletion[i, 0], deletion[i, 1:-1], deletion[i, -1] = p_full, rest[k, 0], p_empty[i]
                insertion[i, 0], insertion[i, 1:-1], insertion[i, -1] = p_blur, rest[k, 1], p_full
    return (counts.double() / pixels).to(images.device), out


# ---------------------------------------------------------------------- average drop / increase in confidence
def _confidences(model, images, maps, targets, batch_size):
    images = check_images(images, channels=None)
    maps = _check_maps(maps, images)
    lo, hi = float(maps.min()), float(maps.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"maps must have values in [0, 1] (normalized saliency), got values in [{lo:.3g}, {hi:.3g}]")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    with _inference(model, images):
        t = _targets(model, images, targets, batch_size)
        full = _probabilities(model, images, t, batch_size)
        explained = _probabilities(model, images * maps[:, None], t, batch_size)
    return full, explained


def average_drop(model, images, maps, targets=None, *, batch_size: int = 64, reduction: str = "mean"):
    r"""Average Drop % (Chattopadhay et al., 2018): how much confidence is lost when only the map is shown.

    With :math:`Y_i^c` the softmax probability of class :math:`c` on image :math:`i` and :math:`O_i^c` on the
    *explanation map* :math:`E_i = L_i \odot x_i` (the image multiplied by its normalized saliency map),

    .. math::

        \text{Average Drop} = \frac{100}{N} \sum_{i=1}^{N} \frac{\max(0,\; Y_i^c - O_i^c)}{Y_i^c}.

    Lower is better. Returns the percentage (``"none"``: each image's term, in percent).

    Example:
        >>> from course_lib.models import SmallCNN
        >>> model = SmallCNN(num_classes=5, width=8)
        >>> average_drop(model, torch.rand(2, 3, 16, 16), torch.ones(2, 16, 16))  # the whole image: no drop
        0.0
    """
    check_choice(reduction, "reduction", ("mean", "none"))
    full, explained = _confidences(model, images, maps, targets, batch_size)
    return _reduce(100 * (full - explained).clamp_min(0) / full, reduction)


def increase_in_confidence(model, images, maps, targets=None, *, batch_size: int = 64, reduction: str = "mean"):
    r"""Increase in Confidence % (Chattopadhay et al., 2018): how often the explanation map alone scores higher.

    .. math::

        \text{Increase in Confidence} = \frac{100}{N} \sum_{i=1}^{N} \mathbb{1}\big[Y_i^c < O_i^c\big],

    with :math:`Y, O` as in :func:`average_drop`. Higher is better. Returns the percentage (``"none"``: a
    bool tensor, which images gained).

    Example:
        >>> from course_lib.models import SmallCNN
        >>> model = SmallCNN(num_classes=5, width=8)
        >>> increase_in_confidence(model, torch.rand(2, 3, 16, 16), torch.ones(2, 16, 16))
        0.0
    """
    check_choice(reduction, "reduction", ("mean", "none"))
    full, explained = _confidences(model, images, maps, targets, batch_size)
    gained = explained > full
    return 100 * _reduce(gained, "mean") if reduction == "mean" else gained


# ---------------------------------------------------------------------- pointing game
def pointing_game(maps, masks, *, tolerance: float = 0.0, reduction: str = "mean"):
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
    return _reduce(hits, reduction) if reduction == "mean" else hits


# ---------------------------------------------------------------------- boxes
def saliency_to_box(maps, threshold: float = 0.2) -> torch.Tensor:
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


def corloc(boxes, gt_boxes, iou: float = 0.5, *, reduction: str = "mean"):
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
    return _reduce(hits, reduction) if reduction == "mean" else hits


# ---------------------------------------------------------------------- uncertainty
def bootstrap_interval(
    values, confidence: float = 0.95, *, n_resamples: int = 2000, seed: int | torch.Generator = 0
) -> tuple[float, float, float]:
    r"""The mean of per-image values and its percentile bootstrap interval (Efron, 1979).

    Draw :math:`B` = ``n_resamples`` samples of the :math:`n` values with replacement, take the mean
    :math:`\bar v^{*b}` of each, and return the empirical :math:`\alpha/2` and :math:`1-\alpha/2` quantiles
    of the :math:`\bar v^{*b}` (:math:`1 - \alpha` = ``confidence``), next to the mean of the values:

    .. math::

        \Big[\, q_{\alpha/2}\big(\bar v^{*1}, \dots, \bar v^{*B}\big),\;
              q_{1-\alpha/2}\big(\bar v^{*1}, \dots, \bar v^{*B}\big) \Big].

    The interval says how much the mean would move with another draw of images from the same distribution;
    for a *comparison* of two methods on the same images, pass the paired differences (``a - b``), whose
    interval excludes 0 when the difference is larger than the image-to-image noise.

    Args:
        values: per-image values, a 1-D tensor, array or sequence (bools count as 0/1), at least 2 of them.
        confidence: the interval's coverage, in (0, 1).
        n_resamples: :math:`B`.
        seed: an int or a CPU ``torch.Generator`` (the same int gives the same interval).

    Returns:
        ``(mean, low, high)`` as Python floats.

    Example:
        >>> mean, low, high = bootstrap_interval(torch.tensor([0.0, 1.0] * 50))
        >>> mean, 0.38 < low < 0.45, 0.55 < high < 0.62
        (0.5, True, True)
    """
    v = torch.as_tensor(np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values))
    if v.ndim != 1 or v.numel() < 2:
        raise ValueError(f"values must be 1-D with at least 2 entries, got shape {tuple(v.shape)}")
    v = v.to(torch.float64)
    if not torch.isfinite(v).all():
        raise ValueError("values must be finite")
    confidence = check_probability(confidence, "confidence", open_interval=True)
    n_resamples = check_int(n_resamples, "n_resamples", minimum=1)
    if isinstance(seed, torch.Generator):
        g = seed
    else:
        g = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0, maximum=2**63 - 1))
    idx = torch.randint(v.numel(), (n_resamples, v.numel()), generator=g)
    means = v[idx].mean(1)
    alpha = 1 - confidence
    low, high = torch.quantile(means, torch.tensor([alpha / 2, 1 - alpha / 2], dtype=torch.float64))
    return float(v.mean()), float(low), float(high)
