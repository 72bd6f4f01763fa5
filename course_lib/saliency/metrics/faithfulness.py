r"""Faithfulness to the model: deletion and insertion (Petsiuk et al., *RISE*, BMVC 2018), average drop and
increase in confidence (Chattopadhay et al., *Grad-CAM++*, WACV 2018)."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from ..._checks import check_choice, check_images, check_int, check_positive
from ..._types import Images, Maps, Targets
from ._common import check_maps, inference, probabilities, reduce_values, resolve_targets

__all__ = [
    "deletion_curve",
    "insertion_curve",
    "deletion_auc",
    "insertion_auc",
    "deletion_insertion_curves",
    "average_drop",
    "increase_in_confidence",
]


def _check_baseline(baseline) -> None:
    """The value of removed pixels: a finite real number (not a bool)."""
    if isinstance(baseline, bool) or not isinstance(baseline, numbers.Real) or not np.isfinite(baseline):
        raise TypeError(f"baseline must be a finite real number (the value of removed pixels), got {baseline!r}")


def _curve(model, images, maps, targets, n_steps, batch_size, start_image, end_image):
    """Probabilities ``(N, n_steps + 1)`` as pixels move from ``start_image`` to ``end_image`` by saliency rank."""
    n, _, h, w = images.shape
    pixels = h * w
    n_steps = check_int(n_steps, "n_steps", minimum=1, maximum=pixels)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    counts = torch.round(torch.arange(n_steps + 1, dtype=torch.float64) * pixels / n_steps).long().to(images.device)
    fractions = counts.double() / pixels
    with inference(model, images):
        t = resolve_targets(model, images, targets, batch_size)
        order = torch.argsort(maps.flatten(1), dim=1, descending=True, stable=True)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(pixels, device=images.device).expand(n, -1))  # rank of each pixel
        probs = []
        for i in range(n):
            moved = (rank[i][None, :] < counts[:, None]).view(-1, 1, h, w)  # (steps+1, 1, H, W)
            path = torch.where(moved, end_image[i], start_image[i])
            probs.append(probabilities(model, path, t[i].expand(n_steps + 1), batch_size))
    return fractions.to(images.device), torch.stack(probs)


def deletion_curve(
    model: nn.Module, images: Images, maps: Maps, targets: Targets = None, *, n_steps: int = 32,
    baseline: float = 0.0, batch_size: int = 64,
):
    r"""The deletion curve: class probability as the most salient pixels are removed first.

    Pixels are sorted by decreasing saliency (ties in raster order); after removing the first :math:`k_j`
    of them (set to ``baseline``; black by default) the model's softmax probability :math:`p_j` of the target
    class is recorded, for :math:`k_j = \mathrm{round}(j P / n)`, :math:`j = 0 \dots n`, with :math:`P` pixels.

    Returns:
        ``fractions`` ``(n_steps + 1,)`` — the fraction of pixels removed, from 0 to 1 — and ``probs``
        ``(N, n_steps + 1)``.
    """
    images = check_images(images, channels=None)
    maps = check_maps(maps, images)
    _check_baseline(baseline)
    start = images
    end = torch.full_like(images, float(baseline))
    return _curve(model, images, maps, targets, n_steps, batch_size, start, end)


def insertion_curve(
    model: nn.Module, images: Images, maps: Maps, targets: Targets = None, *, n_steps: int = 32,
    blur_kernel: int = 11, blur_sigma: float = 5.0, batch_size: int = 64,
):
    r"""The insertion curve: class probability as the most salient pixels are copied into a blurred image.

    Starts from the image blurred with a Gaussian (``blur_kernel`` × ``blur_kernel``, standard deviation
    ``blur_sigma`` pixels) and inserts the original pixels in order of decreasing saliency; see
    :func:`deletion_curve` for the steps.

    Returns:
        ``fractions`` ``(n_steps + 1,)`` and ``probs`` ``(N, n_steps + 1)``.
    """
    images = check_images(images, channels=None)
    maps = check_maps(maps, images)
    blur_kernel = check_int(blur_kernel, "blur_kernel", minimum=1)
    if blur_kernel % 2 == 0:
        raise ValueError(f"blur_kernel must be odd, got {blur_kernel}")
    blur_sigma = check_positive(blur_sigma, "blur_sigma")
    blurred = gaussian_blur(images, [blur_kernel, blur_kernel], [blur_sigma, blur_sigma])
    return _curve(model, images, maps, targets, n_steps, batch_size, blurred, images)


def deletion_auc(
    model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: Targets = None, *, n_steps: int = 32,
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
    return reduce_values(torch.trapezoid(probs, x.to(probs.dtype), dim=1), reduction)


def insertion_auc(
    model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: Targets = None, *, n_steps: int = 32,
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
    return reduce_values(torch.trapezoid(probs, x.to(probs.dtype), dim=1), reduction)


def deletion_insertion_curves(
    model: nn.Module, images: torch.Tensor, maps: dict, targets: Targets = None, *, n_steps: int = 32,
    baseline: float = 0.0,
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
    maps = {name: check_maps(m, images, f"maps[{name!r}]") for name, m in maps.items()}
    _check_baseline(baseline)
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
    with inference(model, images):
        t = resolve_targets(model, images, targets, batch_size)
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
            probs = probabilities(model, torch.cat(batch), t[i].expand(sum(b.shape[0] for b in batch)), batch_size)
            p_full, p_blur, rest = probs[0], probs[1], probs[2:].view(len(names), 2, n_steps - 1)
            for k, name in enumerate(names):
                deletion, insertion = out[name]
                deletion[i, 0], deletion[i, 1:-1], deletion[i, -1] = p_full, rest[k, 0], p_empty[i]
                insertion[i, 0], insertion[i, 1:-1], insertion[i, -1] = p_blur, rest[k, 1], p_full
    return (counts.double() / pixels).to(images.device), out


# ---------------------------------------------------------------------- average drop / increase in confidence
def _confidences(model, images, maps, targets, batch_size):
    images = check_images(images, channels=None)
    maps = check_maps(maps, images)
    lo, hi = float(maps.min()), float(maps.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"maps must have values in [0, 1] (normalized saliency), got values in [{lo:.3g}, {hi:.3g}]")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    with inference(model, images):
        t = resolve_targets(model, images, targets, batch_size)
        full = probabilities(model, images, t, batch_size)
        explained = probabilities(model, images * maps[:, None], t, batch_size)
    return full, explained


def average_drop(
    model: nn.Module, images: Images, maps: Maps, targets: Targets = None, *, batch_size: int = 64,
    reduction: str = "mean",
):
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
    return reduce_values(100 * (full - explained).clamp_min(0) / full, reduction)


def increase_in_confidence(
    model: nn.Module, images: Images, maps: Maps, targets: Targets = None, *, batch_size: int = 64,
    reduction: str = "mean",
):
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
    return 100 * reduce_values(gained, "mean") if reduction == "mean" else gained
