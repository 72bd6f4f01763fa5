r"""Boxes: formats, conversions, IoU, flips, clipping, squares, and the check of a boxes argument.

The course's boxes are normalized ``(x, y, h, w)``: the box centre ``(x, y)`` and its height and width, all as
fractions of the image size, so that :math:`(0.5, 0.5, 1, 1)` is the whole image whatever its size in pixels.
:mod:`torchvision.ops` works with corners ``(x1, y1, x2, y2)``.

* :func:`check_boxes` — the one check of a boxes argument (either format);
* :func:`xyhw_to_xyxy` / :func:`xyxy_to_xyhw` — centre boxes ↔ corners (pixels or fractions);
* :func:`box_iou` (every pair, through :func:`torchvision.ops.box_iou`) and :func:`paired_box_iou`
  (box *i* of one set against box *i* of the other);
* :func:`hflip_boxes`, :func:`clip_boxes_to_image`, :func:`square_boxes`;
* :func:`mask_to_box` — the tight box of a pixel mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import box_area
from torchvision.ops import box_iou as _tv_box_iou

from ._checks import as_tensor, check_choice, check_positive, check_size, describe
from ._types import Boxes, Size

__all__ = [
    "check_boxes",
    "xyhw_to_xyxy",
    "xyxy_to_xyhw",
    "box_iou",
    "paired_box_iou",
    "hflip_boxes",
    "clip_boxes_to_image",
    "square_boxes",
    "mask_to_box",
]

_SHAPES = {1: "(4,)", 2: "(N, 4)", 3: "(N, K, 4)"}


def check_boxes(boxes: Boxes, name: str = "boxes", fmt: str = "xyhw", ndim: int | Sequence[int] | None = None,
                min_batch: int = 0) -> torch.Tensor:
    """``boxes`` as a tensor ``(..., 4)``: floating point, finite, with a positive height and width.

    Args:
        boxes: normalized ``(x, y, h, w)`` boxes (``fmt="xyhw"``) or corners ``(x1, y1, x2, y2)`` (``"xyxy"``).
        name: the argument's name, for the error messages.
        fmt: ``"xyhw"`` or ``"xyxy"``.
        ndim: the allowed numbers of dimensions (``None``: any).
        min_batch: the smallest allowed number of boxes along dimension 0 of a batch.

    Raises:
        TypeError: not a tensor or array, or not floating point.
        ValueError: a wrong shape, NaN or infinite values, or a box with no area.

    Example:
        >>> check_boxes(torch.tensor([[0.5, 0.5, 0.2, 0.4]]), ndim=2).shape
        torch.Size([1, 4])
        >>> check_boxes(torch.tensor([0.5, 0.5, 0.0, 0.4]))
        Traceback (most recent call last):
        ...
        ValueError: boxes must have a positive height h and width w (entries 2 and 3: h > 0 and w > 0); 1 box(es) do not, the first is [0.5, 0.5, 0.0, 0.4]
    """
    check_choice(fmt, "fmt", ("xyhw", "xyxy"))
    b = as_tensor(boxes, name)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if b.ndim not in allowed:
            want = " or ".join(f"{d}-D {_SHAPES.get(d, '')}".rstrip() for d in allowed)
            raise ValueError(f"{name} must be {want}, got {describe(b)}")
    if b.ndim == 0 or b.shape[-1] != 4:
        want = "(x, y, h, w)" if fmt == "xyhw" else "(x1, y1, x2, y2)"
        raise ValueError(f"{name} must have 4 numbers {want} in its last dimension, got {describe(b)}")
    if not b.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {describe(b)}")
    if b.ndim >= 2 and b.shape[0] < min_batch:
        raise ValueError(f"{name} must not be empty, got {describe(b)}")
    if not bool(torch.isfinite(b).all()):
        n_bad = int((~torch.isfinite(b)).any(-1).sum())
        raise ValueError(f"{name} contains NaN or infinite values in {n_bad} box(es); expected finite numbers")
    if fmt == "xyhw":
        sizes = b[..., 2:]
        what = "height h and width w (entries 2 and 3: h > 0 and w > 0)"
    else:
        sizes = b[..., 2:] - b[..., :2]
        what = "width x2 - x1 and height y2 - y1"
    bad = (sizes <= 0).any(-1)
    if bool(bad.any()):
        first = b.reshape(-1, 4)[bad.reshape(-1)][0].tolist()
        raise ValueError(
            f"{name} must have a positive {what}; {int(bad.sum())} box(es) do not, the first is "
            f"{[round(v, 4) for v in first]}"
        )
    return b


def _image_scale(image_size: Size, ref: torch.Tensor) -> torch.Tensor:
    """``(W, H, W, H)`` as a tensor like ``ref`` from an int or an ``(H, W)`` pair."""
    hgt, wid = check_size(image_size, "image_size")
    return torch.tensor([wid, hgt, wid, hgt], dtype=ref.dtype, device=ref.device)


# ------------------------------------------------------------------------------------------ conversions
def xyhw_to_xyxy(boxes: Boxes, image_size: Size | None = None) -> torch.Tensor:
    r"""Normalized centre boxes :math:`(x, y, h, w)` → corners :math:`(x_1, y_1, x_2, y_2)`.

    .. math::

        x_1 = x - \tfrac{w}{2}, \quad y_1 = y - \tfrac{h}{2}, \quad
        x_2 = x + \tfrac{w}{2}, \quad y_2 = y + \tfrac{h}{2},

    then, if ``image_size`` is given, :math:`x_1, x_2` are multiplied by the width :math:`W` and
    :math:`y_1, y_2` by the height :math:`H` (pixel corners, the convention of :mod:`torchvision.ops`).
    Mind the order: the third entry is the *height*, the fourth the *width*.

    Args:
        boxes: ``(..., 4)`` float tensor of :math:`(x, y, h, w)` with :math:`h, w > 0`.
        image_size: ``None`` (corners stay fractions of the image), an int (square image) or ``(H, W)``.

    Returns:
        ``(..., 4)`` corners on the same device and with the same dtype.

    Example:
        >>> xyhw_to_xyxy(torch.tensor([0.5, 0.25, 0.5, 1.0]), image_size=(64, 32))
        tensor([ 0.,  0., 32., 32.])
    """
    b = check_boxes(boxes, "boxes")
    x, y, h, w = b.unbind(-1)
    out = torch.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], dim=-1)
    return out if image_size is None else out * _image_scale(image_size, out)


def xyxy_to_xyhw(boxes: Boxes, image_size: Size | None = None) -> torch.Tensor:
    r"""Corners :math:`(x_1, y_1, x_2, y_2)` → normalized centre boxes :math:`(x, y, h, w)`.

    The inverse of :func:`xyhw_to_xyxy`: corners in pixels are first divided by ``image_size``, then

    .. math::

        x = \tfrac{x_1 + x_2}{2}, \quad y = \tfrac{y_1 + y_2}{2}, \quad h = y_2 - y_1, \quad w = x_2 - x_1.

    Args:
        boxes: ``(..., 4)`` corners with :math:`x_2 > x_1` and :math:`y_2 > y_1`.
        image_size: ``None`` if the corners are already fractions of the image, else an int or ``(H, W)``.

    Example:
        >>> xyxy_to_xyhw(torch.tensor([0., 0., 32., 32.]), image_size=(64, 32))
        tensor([0.5000, 0.2500, 0.5000, 1.0000])
    """
    b = check_boxes(boxes, "boxes", fmt="xyxy")
    if image_size is not None:
        b = b / _image_scale(image_size, b)
    x1, y1, x2, y2 = b.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, y2 - y1, x2 - x1], dim=-1)


def hflip_boxes(boxes: Boxes) -> torch.Tensor:
    r"""Boxes of the horizontally flipped image: :math:`(x, y, h, w) \mapsto (1 - x, y, h, w)`.

    Example:
        >>> hflip_boxes(torch.tensor([0.2, 0.3, 0.1, 0.4]))
        tensor([0.8000, 0.3000, 0.1000, 0.4000])
    """
    b = check_boxes(boxes, "boxes")
    return torch.cat([1 - b[..., :1], b[..., 1:]], dim=-1)


def clip_boxes_to_image(boxes: Boxes) -> torch.Tensor:
    r"""The part of each normalized :math:`(x, y, h, w)` box that lies inside the image :math:`[0, 1]^2`.

    The corners are clamped to :math:`[0, 1]` (:func:`torchvision.ops.clip_boxes_to_image` does the same in
    pixels). A box that extends past the border is *cut*: this is what a tight box of the visible pixels of an
    object that leaves the frame looks like, and the most that sigmoid outputs can express.

    Raises:
        ValueError: if a box does not overlap the image at all.

    Example:
        >>> clip_boxes_to_image(torch.tensor([0.0, 0.5, 0.5, 0.5]))
        tensor([0.1250, 0.5000, 0.5000, 0.2500])
    """
    corners = xyhw_to_xyxy(boxes).clamp(0.0, 1.0)
    outside = ((corners[..., 2:] - corners[..., :2]) <= 0).any(-1)
    if bool(outside.any()):
        raise ValueError(f"boxes: {int(outside.sum())} box(es) lie entirely outside the image; nothing to clip to")
    return xyxy_to_xyhw(corners)


# ------------------------------------------------------------------------------------------------ IoU
def box_iou(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    r"""Intersection over union of every pair of normalized :math:`(x, y, h, w)` boxes.

    .. math::

        \mathrm{IoU}(A, B) = \frac{|A \cap B|}{|A \cup B|} = \frac{|A \cap B|}{|A| + |B| - |A \cap B|}

    The boxes are converted with :func:`xyhw_to_xyxy` and passed to :func:`torchvision.ops.box_iou`. IoU is
    invariant to scaling both axes, so normalized and pixel boxes of the same image give the same value.

    Args:
        boxes1: ``(N, 4)``; boxes2: ``(M, 4)``.

    Returns:
        ``(N, M)`` IoU in ``[0, 1]``.

    Example:
        >>> box_iou(torch.tensor([[0.5, 0.5, 0.5, 0.5]]), torch.tensor([[0.5, 0.5, 0.5, 0.25]]))
        tensor([[0.5000]])
    """
    b1 = check_boxes(boxes1, "boxes1", ndim=2)
    b2 = check_boxes(boxes2, "boxes2", ndim=2)
    return _tv_box_iou(xyhw_to_xyxy(b1), xyhw_to_xyxy(b2.to(b1.dtype)))


def paired_box_iou(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    r"""IoU of box :math:`i` of ``boxes1`` with box :math:`i` of ``boxes2`` (the diagonal of :func:`box_iou`).

    The intersection of :math:`A = (x_1, y_1, x_2, y_2)` and :math:`B` is the box
    :math:`(\max x_1, \max y_1, \min x_2, \min y_2)` when it is not empty; the areas come from
    :func:`torchvision.ops.box_area`. Memory is :math:`O(N)`, not :math:`O(N^2)` as for the full matrix.

    Args:
        boxes1, boxes2: ``(N, 4)`` each (e.g. predictions and ground truth).

    Returns:
        ``(N,)`` IoU in ``[0, 1]``.

    Example:
        >>> paired_box_iou(torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.25, 0.25, 0.5, 0.5]]),
        ...                torch.tensor([[0.5, 0.5, 0.5, 0.25], [0.75, 0.75, 0.5, 0.5]]))
        tensor([0.5000, 0.0000])
    """
    b1 = check_boxes(boxes1, "boxes1", ndim=2)
    b2 = check_boxes(boxes2, "boxes2", ndim=2)
    if b1.shape != b2.shape:
        raise ValueError(f"boxes1 and boxes2 must have the same shape (N, 4), got {describe(b1)} and {describe(b2)}")
    a, b = xyhw_to_xyxy(b1), xyhw_to_xyxy(b2.to(b1.dtype))
    lo = torch.maximum(a[:, :2], b[:, :2])
    hi = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (hi - lo).clamp(min=0).prod(dim=1)
    return inter / (box_area(a) + box_area(b) - inter)


def square_boxes(boxes: Boxes, scale: float = 1.2, image_size: Size = 1) -> torch.Tensor:
    r"""Square boxes around ``boxes``: same centre, side :math:`s \cdot \max(h H, w W)` pixels.

    Args:
        boxes: ``(N, 4)`` / ``(4,)`` normalized ``(x, y, h, w)``.
        scale: the margin factor :math:`s` (1.2 keeps 10 % of the side free on each side).
        image_size: ``H`` or ``(H, W)`` of the image; the result is square in pixels.

    Example:
        >>> square_boxes(torch.tensor([0.5, 0.5, 0.5, 0.25]), scale=1.0)
        tensor([0.5000, 0.5000, 0.5000, 0.5000])
    """
    b = check_boxes(boxes, ndim=(1, 2), min_batch=1)
    scale = check_positive(scale, "scale")
    hgt, wid = check_size(image_size, "image_size")
    side = scale * torch.maximum(b[..., 2] * hgt, b[..., 3] * wid)
    return torch.stack([b[..., 0], b[..., 1], side / hgt, side / wid], dim=-1)


def mask_to_box(masks: torch.Tensor) -> torch.Tensor:
    """Tight normalized ``(x, y, h, w)`` boxes of boolean masks ``(..., H, W)``; empty masks give zeros.

    Example:
        >>> m = torch.zeros(8, 8, dtype=torch.bool); m[2:4, 0:4] = True
        >>> mask_to_box(m)
        tensor([0.2500, 0.3750, 0.2500, 0.5000])
    """
    h, w = masks.shape[-2:]
    rows, cols = masks.any(dim=-1), masks.any(dim=-2)
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    y1 = torch.where(rows, ar_h, h).amin(-1).float()
    y2 = torch.where(rows, ar_h, -1).amax(-1).float() + 1
    x1 = torch.where(cols, ar_w, w).amin(-1).float()
    x2 = torch.where(cols, ar_w, -1).amax(-1).float() + 1
    box = torch.stack([(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (y2 - y1) / h, (x2 - x1) / w], dim=-1)
    empty = ~rows.any(-1)
    return torch.where(empty[..., None], torch.zeros_like(box), box)
