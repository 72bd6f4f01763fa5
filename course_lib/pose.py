r"""Human pose estimation as regression: DeepPose (Toshev & Szegedy, *DeepPose: Human Pose Estimation via
Deep Neural Networks*, CVPR 2014).

A pose is the vector of the image coordinates of :math:`k = 14` joints, in the order of the Leeds Sports Pose
dataset (Johnson & Everingham, BMVC 2010), :data:`JOINT_NAMES`. Joints are ``(..., 14, 2)`` tensors of
``(x, y)`` given as fractions of the image width and height (the same units as the course's boxes), so
``(0, 0)`` is the top-left corner of the image and ``(1, 1)`` its bottom-right corner.

* :func:`normalize_joints` / :func:`denormalize_joints` — joints relative to a box :math:`b`,
  :math:`N(y; b)` (DeepPose, eq. 1), and back.
* :func:`hflip_pose` — a horizontal flip of image *and* pose: mirror the x-coordinates **and** swap the left and
  right joints (:data:`FLIP_PAIRS`).
* :func:`pck`, :func:`pdj` — the fraction of joints closer to the truth than a fraction of the torso size.
* :func:`pose_loss` — the L2 loss :math:`\sum_i \lVert y_i - \psi_i(x;\theta) \rVert_2^2`.
* :class:`PoseRegressor` — a convolutional trunk and a regression head that outputs :math:`2k` numbers;
  :class:`RefinementStage` — one cascade stage that refines each joint from a crop around its estimate.
* :func:`crop_boxes`, :func:`augment_crops`, :func:`pose_loader` — crops, translation and flip augmentation.
* :func:`predict_joints` — crop, regress, map back to the image, optionally refine; :func:`draw_pose` draws it.
* :func:`load_lsp` — the real LSP where a network (or a local copy) exists.
"""

from __future__ import annotations

import copy
import zipfile
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.ops import roi_align

from ._checks import (
    as_tensor,
    check_choice,
    check_images,
    check_int,
    check_nonnegative,
    check_positive,
    check_probability,
    check_tensor,
    describe,
)

__all__ = [
    "JOINT_NAMES",
    "NUM_JOINTS",
    "FLIP_PAIRS",
    "FLIP_PERMUTATION",
    "SKELETON",
    "LIMB_SIDES",
    "SIDE_COLOURS",
    "TORSO_JOINTS",
    "normalize_joints",
    "denormalize_joints",
    "swap_left_right",
    "hflip_joints",
    "hflip_pose",
    "torso_diameter",
    "joint_distances",
    "pdj",
    "pck",
    "pose_loss",
    "square_boxes",
    "crop_boxes",
    "augment_crops",
    "pose_loader",
    "PoseRegressor",
    "RefinementStage",
    "predict_joints",
    "draw_pose",
    "load_lsp",
]

JOINT_NAMES: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "neck",
    "head_top",
)
"""The 14 joints in LSP order. "Right" and "left" are the person's own sides."""

NUM_JOINTS = len(JOINT_NAMES)

FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9))
"""Index pairs ``(right, left)`` of the same body part on the two sides; neck and head top have no partner."""


def _flip_permutation() -> tuple[int, ...]:
    perm = list(range(NUM_JOINTS))
    for right, left in FLIP_PAIRS:
        perm[right], perm[left] = left, right
    return tuple(perm)


FLIP_PERMUTATION: tuple[int, ...] = _flip_permutation()
"""``joints[..., FLIP_PERMUTATION, :]`` swaps every left joint with its right partner."""

SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (5, 4), (4, 3),  # right shin, right thigh, left shin, left thigh
    (6, 7), (7, 8), (11, 10), (10, 9),  # right forearm, right upper arm, left forearm, left upper arm
    (8, 12), (9, 12), (12, 13),  # shoulders to neck, neck to head top
    (8, 2), (9, 3), (2, 3),  # torso sides and hips
)
"""Pairs of joints joined by a line when a pose is drawn."""

LIMB_SIDES: tuple[str, ...] = ("right",) * 2 + ("left",) * 2 + ("right",) * 2 + ("left",) * 2 + (
    "right", "left", "centre", "right", "left", "centre")
"""The side of each :data:`SKELETON` line (``"right"``, ``"left"`` or ``"centre"``), for colouring."""

TORSO_JOINTS: tuple[int, int] = (JOINT_NAMES.index("left_shoulder"), JOINT_NAMES.index("right_hip"))
"""The two opposite torso joints whose distance is the torso diameter (left shoulder, right hip)."""


# ---------------------------------------------------------------------------------------------- checks
def _check_joints(joints, name: str = "joints", batched: bool | None = None) -> torch.Tensor:
    """``(14, 2)`` or ``(N, 14, 2)`` finite floats (``batched`` forces one of the two)."""
    ndim = (2, 3) if batched is None else (3 if batched else 2)
    j = check_tensor(joints, name, ndim=ndim, finite=False, min_batch=0)
    if j.shape[-2:] != (NUM_JOINTS, 2):
        raise ValueError(
            f"{name} must have shape (..., {NUM_JOINTS}, 2): {NUM_JOINTS} joints in LSP order, each (x, y); "
            f"got {describe(j)}"
        )
    if j.ndim == 3 and j.shape[0] == 0:
        raise ValueError(f"{name} must not be empty, got {describe(j)}")
    if not bool(torch.isfinite(j).all()):
        bad = (~torch.isfinite(j)).any(-1)
        where = bad.nonzero().tolist()[:5]
        raise ValueError(f"{name} contains NaN or infinite coordinates (at [image, joint] / [joint] {where}); "
                         "expected finite numbers")
    return j


def _check_boxes(boxes, name: str = "boxes") -> torch.Tensor:
    """``(4,)`` or ``(N, 4)`` normalized ``(x, y, h, w)`` boxes with ``h > 0`` and ``w > 0``."""
    b = check_tensor(boxes, name, ndim=(1, 2))
    if b.shape[-1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) or (4,) holding (x, y, h, w), got {describe(b)}")
    bad = (b[..., 2] <= 0) | (b[..., 3] <= 0)
    if bool(bad.any()):
        idx = bad.reshape(-1).nonzero().flatten().tolist()[:5]
        raise ValueError(f"{name} must have height h > 0 and width w > 0 (columns 2 and 3 of (x, y, h, w)); "
                         f"box(es) {idx} do not: {b.reshape(-1, 4)[idx].tolist()}")
    return b


def _broadcast_boxes(j: torch.Tensor, b: torch.Tensor, jname: str, bname: str) -> torch.Tensor:
    """``b`` shaped to broadcast against joints ``j``: ``(..., 1, 4)``."""
    if b.ndim == 2:
        if j.ndim != 3 or b.shape[0] != j.shape[0]:
            raise ValueError(f"{bname} has {b.shape[0]} boxes but {jname} has shape {tuple(j.shape)}: "
                             "give one box per image, or one (4,) box for all")
    return b.to(device=j.device, dtype=j.dtype).unsqueeze(-2)


def _check_visibility(visibility, shape: torch.Size, device) -> torch.Tensor | None:
    if visibility is None:
        return None
    v = as_tensor(visibility, "visibility")
    if tuple(v.shape) != tuple(shape):
        raise ValueError(f"visibility must have shape {tuple(shape)} (one flag per joint), got {describe(v)}")
    return v.to(device=device).bool()


# ---------------------------------------------------------------------------------------------- normalization
def normalize_joints(joints, boxes) -> torch.Tensor:
    r"""Joint coordinates relative to a box, as DeepPose normalizes them (its eq. 1).

    With the box :math:`b = (b_x, b_y, b_h, b_w)` (centre, height, width), each joint :math:`y_i` becomes

    .. math::

        N(y_i; b) = \left( \frac{y_{i,x} - b_x}{b_w},\; \frac{y_{i,y} - b_y}{b_h} \right),

    so the box's centre maps to ``(0, 0)`` and its edges to :math:`\pm\tfrac12`: the targets no longer depend on
    where the person stands in the image nor on how large it is.

    Args:
        joints: ``(14, 2)`` or ``(N, 14, 2)`` joint ``(x, y)`` in the same units as the boxes.
        boxes: ``(4,)`` or ``(N, 4)`` boxes ``(x, y, h, w)`` with ``h, w > 0``.

    Returns:
        The normalized joints, shaped like ``joints``.

    Example:
        >>> j = torch.zeros(14, 2); j[:, 0] = 0.75; j[:, 1] = 0.5
        >>> normalize_joints(j, torch.tensor([0.5, 0.5, 1.0, 0.5]))[0]
        tensor([0.5000, 0.0000])
    """
    j = _check_joints(joints)
    b = _broadcast_boxes(j, _check_boxes(boxes), "joints", "boxes")
    centre, size = b[..., 0:2], b[..., [3, 2]]  # (x, y) and (w, h)
    return (j - centre) / size


def denormalize_joints(normalized, boxes) -> torch.Tensor:
    r"""The inverse of :func:`normalize_joints`: :math:`N^{-1}(z; b) = (b_x + b_w z_x,\; b_y + b_h z_y)`.

    Example:
        >>> z = torch.full((14, 2), 0.5)
        >>> denormalize_joints(z, torch.tensor([0.5, 0.5, 0.2, 0.4]))[0]
        tensor([0.7000, 0.6000])
    """
    z = _check_joints(normalized, "normalized")
    b = _broadcast_boxes(z, _check_boxes(boxes), "normalized", "boxes")
    return b[..., 0:2] + z * b[..., [3, 2]]


# ---------------------------------------------------------------------------------------------- flips
def swap_left_right(x) -> torch.Tensor:
    """Exchange every left joint with its right partner (:data:`FLIP_PAIRS`).

    Works on joints ``(..., 14, 2)`` and on per-joint values such as visibility flags ``(..., 14)``.

    Example:
        >>> swap_left_right(torch.arange(14))[:6]
        tensor([5, 4, 3, 2, 1, 0])
    """
    x = as_tensor(x, "x")
    perm = torch.tensor(FLIP_PERMUTATION, device=x.device)
    if x.ndim >= 2 and x.shape[-2:] == (NUM_JOINTS, 2):
        return x.index_select(-2, perm)
    if x.ndim >= 1 and x.shape[-1] == NUM_JOINTS:
        return x.index_select(-1, perm)
    raise ValueError(f"x must be joints (..., {NUM_JOINTS}, 2) or per-joint values (..., {NUM_JOINTS}), "
                     f"got {describe(x)}")


def hflip_joints(joints, swap: bool = True, coords: str = "image") -> torch.Tensor:
    r"""The joints of a horizontally flipped image.

    The x-coordinate is mirrored — :math:`x \mapsto 1 - x` for image fractions (``coords="image"``),
    :math:`x \mapsto -x` for coordinates centred on the image, such as box-normalized joints
    (``coords="centered"``) — and, with ``swap=True``, the left and right joints exchange their places, because
    the mirror image of a right arm is a left arm. ``swap=False`` is the classic augmentation bug.

    Example:
        >>> j = torch.rand(14, 2)
        >>> torch.equal(hflip_joints(hflip_joints(j)), j)
        True
    """
    j = _check_joints(joints)
    check_choice(coords, "coords", ("image", "centered"))
    if not isinstance(swap, bool):
        raise TypeError(f"swap must be a bool, got {describe(swap)}")
    x = 1.0 - j[..., 0] if coords == "image" else -j[..., 0]
    out = torch.stack([x, j[..., 1]], dim=-1)
    return swap_left_right(out) if swap else out


def hflip_pose(images, joints, visibility=None, *, swap: bool = True, coords: str = "image"):
    r"""Flip images left–right together with their poses.

    The image columns are reversed, the joints' x-coordinates mirrored and (with ``swap=True``) the left/right
    joints swapped (see :func:`hflip_joints`); visibility flags, if given, are swapped with their joints.

    Args:
        images: ``(3, H, W)`` or ``(N, 3, H, W)``.
        joints: ``(14, 2)`` or ``(N, 14, 2)`` in image fractions (``coords="image"``) or centred coordinates
            (``coords="centered"``, e.g. normalized to a crop that is the whole image).
        visibility: optional ``(14,)`` / ``(N, 14)`` flags.
        swap: swap the left and right joints (``False`` reproduces the flip-without-swap bug).
        coords: ``"image"`` or ``"centered"``.

    Returns:
        ``(images, joints)`` or ``(images, joints, visibility)`` when ``visibility`` is given.

    Example:
        >>> img, j = torch.rand(3, 8, 8), torch.rand(14, 2)
        >>> img2, j2 = hflip_pose(img, j)
        >>> torch.equal(img2[:, :, 0], img[:, :, -1]), torch.equal(j2[5, 0], 1 - j[0, 0])
        (True, True)
    """
    x = as_tensor(images, "images")
    if x.ndim == 3:
        check_images(x[None], "images")
        if _check_joints(joints).ndim != 2:
            raise ValueError(f"a single image (3, H, W) takes joints (14, 2), got {describe(as_tensor(joints, 'joints'))}")
    else:
        check_images(x, "images")
        j = _check_joints(joints, batched=True)
        if j.shape[0] != x.shape[0]:
            raise ValueError(f"images has {x.shape[0]} images but joints has {j.shape[0]} poses")
    new_joints = hflip_joints(joints, swap=swap, coords=coords)
    new_images = x.flip(-1)
    if visibility is None:
        return new_images, new_joints
    v = _check_visibility(visibility, new_joints.shape[:-1], new_joints.device)
    return new_images, new_joints, swap_left_right(v) if swap else v


# ---------------------------------------------------------------------------------------------- metrics
def torso_diameter(joints) -> torch.Tensor:
    r"""Distance between the left shoulder and the right hip, :math:`\lVert y_{lsho} - y_{rhip} \rVert_2`.

    Example:
        >>> j = torch.zeros(14, 2); j[9] = torch.tensor([0.3, 0.4])
        >>> torso_diameter(j)
        tensor(0.5000)
    """
    j = _check_joints(joints)
    a, b = TORSO_JOINTS
    return (j[..., a, :] - j[..., b, :]).norm(dim=-1)


def joint_distances(pred, gt) -> torch.Tensor:
    r"""Euclidean distance per joint, :math:`\lVert \hat y_i - y_i \rVert_2`, shaped ``(..., 14)``."""
    p, g = _check_joints(pred, "pred"), _check_joints(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt must have the same shape, got {tuple(p.shape)} and {tuple(g.shape)}")
    return (p - g.to(p.device, p.dtype)).norm(dim=-1)


def _normalized_errors(pred, gt):
    d = joint_distances(pred, gt)
    g = as_tensor(gt, "gt").to(d.device, d.dtype)
    torso = torso_diameter(g)
    if bool((torso <= 0).any()):
        idx = (torso.reshape(-1) <= 0).nonzero().flatten().tolist()[:5]
        raise ValueError(f"gt has a zero torso diameter (left shoulder on the right hip) for pose(s) {idx}: "
                         "PCK/PDJ cannot be normalized")
    return d / torso.unsqueeze(-1)


def pdj(pred, gt, fractions=None, visibility=None) -> torch.Tensor:
    r"""Percentage of Detected Joints (DeepPose, Sec. 6.1) for several thresholds.

    A joint counts as detected when its error is at most a fraction :math:`f` of the torso diameter
    (:func:`torso_diameter` of the ground truth):

    .. math::

        \mathrm{PDJ}(f) = \frac{1}{|V|} \sum_{(n, i) \in V}
        \Big[ \lVert \hat y_{n,i} - y_{n,i} \rVert_2 \le f \cdot \lVert y_{n,\mathrm{lsho}} - y_{n,\mathrm{rhip}} \rVert_2 \Big],

    over the image/joint pairs :math:`V` (all of them, or those with ``visibility`` set). The coordinates must
    be isotropic (pixels, or fractions of a square image).

    Args:
        pred, gt: ``(N, 14, 2)`` or ``(14, 2)``.
        fractions: thresholds :math:`f`; default 0, 0.02, ..., 0.5.
        visibility: optional boolean flags ``(N, 14)``: only these joints are counted.

    Returns:
        ``(F,)`` detection rates in ``[0, 1]``, one per fraction.

    Example:
        >>> gt = torch.rand(4, 14, 2)
        >>> pdj(gt, gt, [0.0, 0.2]).tolist()
        [1.0, 1.0]
    """
    e = _normalized_errors(pred, gt)
    if fractions is None:
        fractions = torch.linspace(0, 0.5, 26)
    f = check_tensor(torch.as_tensor(fractions, dtype=e.dtype), "fractions", ndim=(0, 1)).to(e.device).reshape(-1)
    if bool((f < 0).any()):
        raise ValueError(f"fractions must be >= 0, got {f.tolist()}")
    v = _check_visibility(visibility, e.shape, e.device)
    hits = (e.unsqueeze(-1) <= f).float().reshape(-1, f.numel())
    if v is not None:
        keep = v.reshape(-1)
        if not bool(keep.any()):
            raise ValueError("visibility marks no joint as visible: nothing to measure")
        hits = hits[keep]
    return hits.mean(0)


def pck(pred, gt, alpha: float = 0.2, visibility=None, per_joint: bool = False) -> torch.Tensor:
    r"""PCK@:math:`\alpha`: the fraction of joints within :math:`\alpha` torso diameters of the truth.

    .. math::

        \mathrm{PCK}@\alpha = \frac{1}{|V|} \sum_{(n, i) \in V}
        \Big[ \lVert \hat y_{n,i} - y_{n,i} \rVert_2 \le \alpha \, \lVert y_{n,\mathrm{lsho}} - y_{n,\mathrm{rhip}}
        \rVert_2 \Big]

    — the torso-normalized PCK used on LSP (e.g. PCK@0.2), i.e. :func:`pdj` at the single fraction
    :math:`\alpha`.

    Args:
        pred, gt: ``(N, 14, 2)`` or ``(14, 2)`` in isotropic coordinates.
        alpha: the fraction of the torso diameter, ``>= 0``.
        visibility: optional boolean flags ``(N, 14)``.
        per_joint: return the ``(14,)`` PCK of each joint (averaged over images) instead of one number.

    Example:
        >>> gt = torch.zeros(14, 2); gt[9, 0] = 1.0  # torso diameter 1
        >>> pred = gt.clone(); pred[0, 0] += 0.3     # one joint 0.3 torso diameters off
        >>> round(float(pck(pred, gt, alpha=0.2)), 4)  # 13 of 14 joints
        0.9286
    """
    alpha = check_nonnegative(alpha, "alpha")
    e = _normalized_errors(pred, gt)
    hits = (e <= alpha).float()
    v = _check_visibility(visibility, e.shape, e.device)
    if not per_joint:
        if v is None:
            return hits.mean()
        if not bool(v.any()):
            raise ValueError("visibility marks no joint as visible: nothing to measure")
        return hits[v].mean()
    hits2, v2 = hits.reshape(-1, NUM_JOINTS), None if v is None else v.reshape(-1, NUM_JOINTS).float()
    if v2 is None:
        return hits2.mean(0)
    return (hits2 * v2).sum(0) / v2.sum(0).clamp_min(1)


def pose_loss(pred, target, reduction: str = "mean") -> torch.Tensor:
    r"""The DeepPose L2 loss: the squared distances of all joints summed per pose,

    .. math::

        L(\theta) = \frac{1}{|D|} \sum_{(x, y) \in D} \sum_{i=1}^{k} \lVert y_i - \psi_i(x; \theta) \rVert_2^2 ,

    averaged over the poses of the batch (``reduction="mean"``) or summed (``"sum"``).

    Example:
        >>> pose_loss(torch.ones(2, 14, 2), torch.zeros(2, 14, 2))
        tensor(28.)
    """
    check_choice(reduction, "reduction", ("mean", "sum"))
    p = check_tensor(pred, "pred", ndim=3, finite=False, shape={1: NUM_JOINTS, 2: 2})
    t = check_tensor(target, "target", ndim=3, finite=False, shape={1: NUM_JOINTS, 2: 2})
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(p.shape)} and {tuple(t.shape)}")
    per_pose = (p - t).pow(2).sum(dim=(1, 2))
    return per_pose.mean() if reduction == "mean" else per_pose.sum()


# ---------------------------------------------------------------------------------------------- crops
def _image_hw(size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    if isinstance(size, (tuple, list, torch.Size)) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise TypeError(f"image_size must be an int or an (H, W) pair, got {describe(size)}")


def square_boxes(boxes, scale: float = 1.2, image_size: int | tuple[int, int] = 1) -> torch.Tensor:
    r"""Square boxes around ``boxes``: same centre, side :math:`s \cdot \max(h H, w W)` pixels.

    Args:
        boxes: ``(N, 4)`` / ``(4,)`` normalized ``(x, y, h, w)``.
        scale: the margin factor :math:`s` (1.2 keeps 10 % of the side free on each side).
        image_size: ``H`` or ``(H, W)`` of the image; the result is square in pixels.

    Example:
        >>> square_boxes(torch.tensor([0.5, 0.5, 0.5, 0.25]), scale=1.0)
        tensor([0.5000, 0.5000, 0.5000, 0.5000])
    """
    b = _check_boxes(boxes)
    scale = check_positive(scale, "scale")
    hgt, wid = _image_hw(image_size)
    side = scale * torch.maximum(b[..., 2] * hgt, b[..., 3] * wid)
    return torch.stack([b[..., 0], b[..., 1], side / hgt, side / wid], dim=-1)


def crop_boxes(images, boxes, size: int | tuple[int, int] = 64) -> torch.Tensor:
    r"""Resample the region of each box to ``size`` with ``torchvision.ops.roi_align`` (bilinear samples,
    :math:`\lceil \text{box side} / \text{size} \rceil^2` of them averaged per output pixel, so that shrinking does
    not alias; a box of exactly ``size`` whole pixels is copied unchanged).

    A point at normalized box coordinates :math:`z = N(y; b)` lands at crop pixel :math:`(z + \tfrac12)\cdot`
    ``size``: the crop *is* the box, so :func:`normalize_joints` with the same box gives the joints in crop
    coordinates (centred). Parts of a box beyond the image border read as zeros (``roi_align``'s convention).

    Args:
        images: ``(N, 3, H, W)``.
        boxes: ``(N, 4)`` normalized ``(x, y, h, w)``, one per image; or ``(N, K, 4)``: ``K`` crops per image,
            returned as ``(N * K, 3, size, size)`` in image-major order.
        size: side of the output (or ``(h, w)``).

    Example:
        >>> crop_boxes(torch.rand(2, 3, 32, 32), torch.tensor([[0.5, 0.5, 0.5, 0.5]] * 2), 8).shape
        torch.Size([2, 3, 8, 8])
    """
    x = check_images(images, "images", channels=None)
    b = check_tensor(boxes, "boxes", ndim=(2, 3))
    if b.shape[-1] != 4 or b.shape[0] != x.shape[0]:
        raise ValueError(f"boxes must be (N, 4) or (N, K, 4) with N = {x.shape[0]} (one set per image), "
                         f"got {describe(b)}")
    flat = _check_boxes(b.reshape(-1, 4)).to(device=x.device, dtype=x.dtype)
    k = 1 if b.ndim == 2 else b.shape[1]
    out_hw = _image_hw(size)
    hgt, wid = x.shape[-2:]
    idx = torch.arange(x.shape[0], device=x.device, dtype=x.dtype).repeat_interleave(k)
    cx, cy, bh, bw = flat.unbind(-1)
    corners = torch.stack([(cx - bw / 2) * wid, (cy - bh / 2) * hgt, (cx + bw / 2) * wid, (cy + bh / 2) * hgt], 1)
    # snap to 1/1024 pixel: float noise (14/30 * 30 = 14.000001) must not add a sample per bin (roi_align's ceil)
    corners = (corners * 1024).round() / 1024
    rois = torch.cat([idx[:, None], corners], 1)
    return roi_align(x, rois, output_size=out_hw, spatial_scale=1.0, sampling_ratio=0, aligned=True)


def augment_crops(
    images,
    joints,
    boxes,
    *,
    size: int = 64,
    scale: float = 1.2,
    translate: float = 0.0,
    zoom: float = 0.0,
    flip: bool = False,
    swap: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Person crops and their box-normalized joints, with DeepPose's augmentations.

    Each person box is made square (:func:`square_boxes` with ``scale``), then, for augmentation, its centre is
    moved by up to ``translate`` times its side in x and y and its side multiplied by a factor in
    :math:`[1 - \text{zoom}, 1 + \text{zoom}]`. The joints are normalized to the final box
    (:func:`normalize_joints`). With ``flip``, half of the crops (at random) are mirrored with
    :func:`hflip_pose` (``coords="centered"``, ``swap`` as given).

    Returns:
        ``crops`` ``(N, 3, size, size)`` and ``targets`` ``(N, 14, 2)`` (centred, box-normalized).

    Example:
        >>> from course_lib.data import PoseFiguresDataset
        >>> ds = PoseFiguresDataset(4, seed=0)
        >>> x, y = augment_crops(ds.images, ds.joints, ds.boxes, translate=0.1, flip=True)
        >>> x.shape, y.shape
        (torch.Size([4, 3, 64, 64]), torch.Size([4, 14, 2]))
    """
    x = check_images(images, "images")
    j = _check_joints(joints, batched=True)
    b = _check_boxes(boxes)
    if b.ndim != 2 or not (x.shape[0] == j.shape[0] == b.shape[0]):
        raise ValueError(f"images, joints and boxes must hold the same number of samples, got {x.shape[0]}, "
                         f"{j.shape[0]} and {tuple(b.shape)}")
    size = check_int(size, "size", minimum=4)
    translate = check_nonnegative(translate, "translate")
    zoom = check_probability(zoom, "zoom")
    n = x.shape[0]
    sq = square_boxes(b, scale, tuple(x.shape[-2:]))
    if translate > 0 or zoom > 0:
        g = generator
        shift = (torch.rand(n, 2, generator=g) * 2 - 1) * translate
        factor = 1 + (torch.rand(n, generator=g) * 2 - 1) * zoom
        sq = sq.clone()
        sq[:, 0] += shift[:, 0].to(sq) * sq[:, 3]
        sq[:, 1] += shift[:, 1].to(sq) * sq[:, 2]
        sq[:, 2:] *= factor.to(sq)[:, None]
    crops = crop_boxes(x, sq, size)
    targets = normalize_joints(j.to(sq), sq)
    if flip:
        chosen = (torch.rand(n, generator=generator) < 0.5).to(crops.device)
        if bool(chosen.any()):
            fc, ft = hflip_pose(crops[chosen], targets[chosen], swap=swap, coords="centered")
            crops, targets = crops.clone(), targets.clone()
            crops[chosen], targets[chosen] = fc, ft
    return crops, targets


class _Indices(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def pose_loader(
    data,
    batch_size: int = 64,
    *,
    shuffle: bool = True,
    seed: int = 0,
    device: torch.device | str | None = None,
    **augment,
) -> DataLoader:
    """A ``DataLoader`` of ``(crops, box-normalized joints)`` batches for :func:`course_lib.training.fit`.

    Args:
        data: a :class:`~course_lib.data.PoseFiguresDataset` (or any object with ``images``, ``joints`` and
            ``boxes``), or a ``Subset`` of one.
        batch_size: poses per batch.
        shuffle: shuffle every epoch (seeded with ``seed``).
        seed: seeds the shuffling and the augmentation, so that a run can be repeated.
        device: where the crops are cut (the images are copied there once); by default where the images are.
        **augment: keyword arguments of :func:`augment_crops` (``size``, ``scale``, ``translate``, ``zoom``,
            ``flip``, ``swap``).

    Example:
        >>> from course_lib.data import PoseFiguresDataset
        >>> crops, targets = next(iter(pose_loader(PoseFiguresDataset(8), batch_size=4, flip=True)))
        >>> crops.shape, targets.shape
        (torch.Size([4, 3, 64, 64]), torch.Size([4, 14, 2]))
    """
    indices = None
    if isinstance(data, torch.utils.data.Subset):
        indices, data = torch.as_tensor(list(data.indices)), data.dataset
    for attr in ("images", "joints", "boxes"):
        if not hasattr(data, attr):
            raise TypeError(f"data must have images, joints and boxes (a PoseFiguresDataset), got {describe(data)}")
    images, joints, boxes = data.images, data.joints, data.boxes
    if indices is not None:
        images, joints, boxes = images[indices], joints[indices], boxes[indices]
    if device is not None:
        images, joints, boxes = (t.to(device) for t in (images, joints, boxes))
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    allowed = {"size", "scale", "translate", "zoom", "flip", "swap"}
    unknown = set(augment) - allowed
    if unknown:
        raise TypeError(f"unknown augmentation argument(s) {sorted(unknown)}; expected some of {sorted(allowed)}")
    g = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0) + 1)

    def collate(batch: list[int]):
        idx = torch.as_tensor(batch, device=images.device)
        return augment_crops(images[idx], joints[idx], boxes[idx], generator=g, **augment)

    shuffler = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(_Indices(images.shape[0]), batch_size=batch_size, shuffle=shuffle, generator=shuffler,
                      collate_fn=collate)


# ---------------------------------------------------------------------------------------------- models
class _PoseNet(nn.Module):
    """Shared plumbing of the pose networks: input checks and the ``(N, 2k) -> (N, k, 2)`` reshape."""

    num_joints: int
    input_size: int

    def _check_input(self, x) -> torch.Tensor:
        # shape checks only: a NaN scan would cost a device sync on every forward pass
        x = check_tensor(x, "x", ndim=4, shape={1: 3}, finite=False)
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            raise ValueError(f"x must be (N, 3, {self.input_size}, {self.input_size}) crops, got {describe(x)}")
        return x

    def _net(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._net(self._check_input(x))
        return out.view(out.shape[0], self.num_joints, 2)


def _zero_last_linear(seq: nn.Sequential) -> None:
    # the regression starts by predicting the box centre (zero offsets): a calm first step
    last = [m for m in seq.modules() if isinstance(m, nn.Linear)][-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


class PoseRegressor(_PoseNet):
    r"""The first DeepPose stage: a CNN that regresses all joints at once, :math:`\psi(x; \theta) \in
    \mathbb{R}^{2k}`.

    ``features`` is the convolutional trunk of :class:`course_lib.models.SmallCNN` (so the features of a trained
    classifier can be reused: :meth:`from_classifier`); the head halves its ``H/4`` map ``downsample`` times
    with strided 3×3 convolutions (``downsample=1`` then halves the channels with a 3×3 convolution) and a
    linear layer maps the flattened map to :math:`2k` numbers — DeepPose's fully connected regression. The
    output ``(N, 14, 2)`` is the pose *normalized to the input crop*, :math:`N(y; b)` with :math:`b` the crop
    box (:func:`normalize_joints`); :func:`predict_joints` maps it back to the image.

    Args:
        width: base width of the trunk (:func:`course_lib.models.conv_backbone`).
        backbone: a trunk to use instead of a fresh one (its output must be ``(N, C, input_size/4, ...)``).
        input_size: side of the square input crops (a multiple of 16).
        num_joints: :math:`k`.
        dropout: dropout before the linear layer.
        downsample: strided convolutions in the head (1 or 2): the linear layer reads an ``H/8`` or ``H/16`` map.

    Example:
        >>> PoseRegressor(width=8)(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 14, 2])
    """

    def __init__(self, width: int = 32, backbone: nn.Module | None = None, input_size: int = 64,
                 num_joints: int = NUM_JOINTS, dropout: float = 0.0, downsample: int = 2) -> None:
        super().__init__()
        from .models import conv_backbone

        self.input_size = check_int(input_size, "input_size", minimum=16)
        if self.input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {input_size}")
        self.num_joints = check_int(num_joints, "num_joints", minimum=1)
        dropout = check_probability(dropout, "dropout")
        if backbone is not None and not isinstance(backbone, nn.Module):
            raise TypeError(f"backbone must be an nn.Module, got {describe(backbone)}")
        self.features = backbone if backbone is not None else conv_backbone(width, "batch")
        with torch.no_grad():
            was = self.features.training
            self.features.eval()
            probe = self.features(torch.zeros(1, 3, self.input_size, self.input_size,
                                              device=next(self.features.parameters()).device))
            self.features.train(was)
        if probe.ndim != 4 or probe.shape[-1] != self.input_size // 4:
            raise ValueError(f"backbone must map (N, 3, {self.input_size}, {self.input_size}) to a feature map of "
                             f"side {self.input_size // 4}, got {tuple(probe.shape)}")
        c = probe.shape[1]
        self.downsample = check_int(downsample, "downsample", minimum=1, maximum=2)
        if self.downsample == 2:
            convs, c_out, side = [*_conv_bn_relu(c, c, stride=2), *_conv_bn_relu(c, c, stride=2)], c, self.input_size // 16
        else:
            c_out = max(c // 2, 1)
            convs, side = [*_conv_bn_relu(c, c, stride=2), *_conv_bn_relu(c, c_out)], self.input_size // 8
        self.head = nn.Sequential(*convs, nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(c_out * side * side, 2 * self.num_joints))
        _zero_last_linear(self.head)

    @classmethod
    def from_classifier(cls, classifier: nn.Module, **kwargs) -> PoseRegressor:
        """A regressor whose trunk starts as a copy of ``classifier.features`` (transfer learning)."""
        features = getattr(classifier, "features", None)
        if not isinstance(features, nn.Module):
            raise TypeError(f"classifier must have a `features` module (a SmallCNN), got {describe(classifier)}")
        return cls(backbone=copy.deepcopy(features), **kwargs)

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class RefinementStage(_PoseNet):
    r"""One DeepPose cascade stage: refine every joint from a crop around its current estimate.

    For joint :math:`i` with estimate :math:`y_i^{s-1}`, the stage crops the box
    :math:`b_i^{s-1} = (y_i^{s-1}, \sigma\,\mathrm{diam}(y^{s-1}))` (centred on the estimate, side
    :math:`\sigma` torso diameters of the estimated pose), feeds the crop to a small CNN and maps its output
    back through the box (DeepPose, eq. 6):

    .. math::

        y_i^{s} = N^{-1}\big(\psi_i^s;\, b_i^{s-1}\big)
                = b_{i,c}^{s-1} + b_{i,\mathrm{size}}^{s-1}\, \psi_i\big(N(x; b_i^{s-1}); \theta_s\big),

    with :math:`b_{i,c}^{s-1} = y_i^{s-1}` the box centre: the output is the joint's position *in the box*, so
    the previous estimate enters once, as the centre, and :math:`\psi_i^s` is the displacement from it.

    The network outputs a displacement for every joint; from the crop around joint :math:`i` only its
    :math:`i`-th output is used. Training targets are :math:`N(y_i; b_i)` (:meth:`targets`).

    Args:
        patch_size: side of the crops fed to the network (a multiple of 4).
        width: channels of the first convolution.
        sigma: crop side in torso diameters.
        num_joints: :math:`k`.

    Example:
        >>> stage = RefinementStage(width=8)
        >>> stage.refine(torch.rand(2, 3, 64, 64), torch.rand(2, 14, 2)).shape
        torch.Size([2, 14, 2])
    """

    def __init__(self, patch_size: int = 24, width: int = 16, sigma: float = 1.0,
                 num_joints: int = NUM_JOINTS, min_side: float = 4.0) -> None:
        super().__init__()
        self.input_size = check_int(patch_size, "patch_size", minimum=8)
        if self.input_size % 4:
            raise ValueError(f"patch_size must be a multiple of 4, got {patch_size}")
        w = check_int(width, "width", minimum=1)
        self.sigma = check_positive(sigma, "sigma")
        self.min_side = check_positive(min_side, "min_side")
        self.num_joints = check_int(num_joints, "num_joints", minimum=1)
        side = self.input_size // 4
        self.net = nn.Sequential(
            *_conv_bn_relu(3, w), nn.MaxPool2d(2),
            *_conv_bn_relu(w, 2 * w), nn.MaxPool2d(2),
            *_conv_bn_relu(2 * w, 4 * w), nn.Flatten(),
            nn.Linear(4 * w * side * side, 2 * self.num_joints),
        )
        _zero_last_linear(self.net)

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def patch_boxes(self, joints, image_size: int | tuple[int, int]) -> torch.Tensor:
        r"""Crop boxes ``(N, 14, 4)`` (normalized ``(x, y, h, w)``): centred on each joint, side
        :math:`\sigma\,\mathrm{diam}` pixels (at least ``min_side``)."""
        j = _check_joints(joints, batched=True)
        hgt, wid = _image_hw(image_size)
        scale = torch.tensor([wid, hgt], dtype=j.dtype, device=j.device)
        side = (self.sigma * torso_diameter(j * scale)).clamp_min(self.min_side)  # pixels, (N,)
        side = side[:, None].expand(-1, j.shape[1])
        return torch.stack([j[..., 0], j[..., 1], side / hgt, side / wid], dim=-1)

    def crops(self, images, joints) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``(N * 14, 3, p, p)`` crops around the joints and their boxes ``(N, 14, 4)``."""
        x = check_images(images, "images")
        boxes = self.patch_boxes(joints, tuple(x.shape[-2:]))
        return crop_boxes(x, boxes, self.input_size), boxes

    def targets(self, joints_estimate, joints_true, image_size: int | tuple[int, int]) -> torch.Tensor:
        r"""Training targets ``(N, 14, 2)``: the true joints normalized to the crop boxes around the estimates,
        :math:`N(y_i; b_i)` (the displacement to predict, in units of the crop side), for images of
        ``image_size``."""
        est = _check_joints(joints_estimate, "joints_estimate", batched=True)
        true = _check_joints(joints_true, "joints_true", batched=True).to(est)
        if true.shape != est.shape:
            raise ValueError(f"joints_estimate and joints_true differ in shape: {tuple(est.shape)} vs {tuple(true.shape)}")
        boxes = self.patch_boxes(est, image_size)
        return (true - boxes[..., :2]) / boxes[..., [3, 2]]

    def select(self, out: torch.Tensor) -> torch.Tensor:
        """From the ``(N * 14, 14, 2)`` outputs on the crops, the displacement of joint i from crop i: ``(N, 14, 2)``."""
        k = self.num_joints
        out = out.view(-1, k, k, 2)
        eye = torch.arange(k, device=out.device)
        return out[:, eye, eye]

    def refine(self, images, joints, batch_size: int = 4096) -> torch.Tensor:
        """Apply the stage: new joint estimates ``(N, 14, 2)`` in image fractions (eval mode is the caller's)."""
        x = check_images(images, "images")
        j = _check_joints(joints, batched=True).to(x)
        if j.shape[0] != x.shape[0]:
            raise ValueError(f"images has {x.shape[0]} images but joints has {j.shape[0]} poses")
        patches, boxes = self.crops(x, j)
        outs = [self(patches[i : i + batch_size]) for i in range(0, patches.shape[0], batch_size)]
        delta = self.select(torch.cat(outs))
        return boxes[..., :2] + delta * boxes[..., [3, 2]]


@torch.no_grad()
def predict_joints(regressor: PoseRegressor, images, boxes, refiner: RefinementStage | None = None, *,
                   scale: float = 1.2, batch_size: int = 256) -> torch.Tensor:
    """The full pipeline in eval mode: square person crops → :class:`PoseRegressor` → image coordinates
    (:func:`denormalize_joints`) → optionally one :class:`RefinementStage`.

    Args:
        regressor: the first stage.
        images: ``(N, 3, H, W)`` scenes.
        boxes: ``(N, 4)`` person boxes ``(x, y, h, w)`` (from the data or a detector).
        refiner: an optional cascade stage.
        scale: the crop margin (as in training, see :func:`square_boxes`).

    Returns:
        ``(N, 14, 2)`` joints in image fractions, on the images' device.
    """
    if not isinstance(regressor, PoseRegressor):
        raise TypeError(f"regressor must be a PoseRegressor, got {describe(regressor)}")
    if refiner is not None and not isinstance(refiner, RefinementStage):
        raise TypeError(f"refiner must be a RefinementStage or None, got {describe(refiner)}")
    x = check_images(images, "images")
    b = _check_boxes(boxes)
    if b.ndim != 2 or b.shape[0] != x.shape[0]:
        raise ValueError(f"boxes must be (N, 4) with N = {x.shape[0]}, got {describe(b)}")
    dev = next(regressor.parameters()).device
    modes = [(m, m.training) for m in (regressor, refiner) if m is not None]
    for m, _ in modes:
        m.eval()
    try:
        out = []
        for i in range(0, x.shape[0], batch_size):
            xi = x[i : i + batch_size].to(dev)
            sq = square_boxes(b[i : i + batch_size].to(dev), scale, tuple(xi.shape[-2:]))
            joints = denormalize_joints(regressor(crop_boxes(xi, sq, regressor.input_size)), sq)
            if refiner is not None:
                joints = refiner.refine(xi, joints)
            out.append(joints)
    finally:
        for m, was in modes:
            m.train(was)
    return torch.cat(out).to(x.device)


# ---------------------------------------------------------------------------------------------- figures
SIDE_COLOURS: dict[str, str] = {"right": "tab:orange", "left": "tab:cyan", "centre": "white"}
"""Skeleton colours by side (the person's right in orange, left in cyan)."""


def draw_pose(ax, joints, image_size: int | tuple[int, int], visibility=None, colours: dict | None = None,
              linewidth: float = 2.0, linestyle: str = "-", markersize: float = 3.0, alpha: float = 1.0):
    """Draw a skeleton (:data:`SKELETON`) on a matplotlib axis that shows an image of ``image_size``.

    Lines are coloured by side (:data:`SIDE_COLOURS`: the person's right in orange, left in cyan); joints
    flagged not visible are drawn as hollow circles.

    Args:
        ax: the axis (after ``ax.imshow(image)``).
        joints: ``(14, 2)`` in image fractions.
        image_size: ``H`` or ``(H, W)`` of the displayed image.
        visibility: optional ``(14,)`` flags.
        colours: overrides of :data:`SIDE_COLOURS`.
    """
    j = _check_joints(joints, batched=False).detach().float().cpu()
    hgt, wid = _image_hw(image_size)
    px = (j * torch.tensor([wid, hgt])).numpy() - 0.5  # matplotlib puts pixel centres at integers
    cols = {**SIDE_COLOURS, **(colours or {})}
    for (a, b), side in zip(SKELETON, LIMB_SIDES, strict=True):
        ax.plot(px[[a, b], 0], px[[a, b], 1], color=cols[side], linewidth=linewidth, linestyle=linestyle,
                alpha=alpha, solid_capstyle="round")
    vis = None if visibility is None else as_tensor(visibility, "visibility").bool().cpu().reshape(-1).tolist()
    for i in range(NUM_JOINTS):
        hollow = vis is not None and not vis[i]
        ax.plot(px[i, 0], px[i, 1], "o", markersize=markersize, alpha=alpha, markeredgecolor="black",
                markerfacecolor="none" if hollow else "white", markeredgewidth=0.6)
    return ax


# ---------------------------------------------------------------------------------------------- real data
LSP_URLS: tuple[str, ...] = (
    "https://sam.johnson.io/research/lsp_dataset.zip",
    "http://sam.johnson.io/research/lsp_dataset.zip",
)
_LSP_HOST = ("sam.johnson.io", 443)


def _read_lsp(folder: Path, split: str):
    import numpy as np
    import scipy.io
    import skimage.io

    from .data import DataUnavailableError

    mat = folder / "joints.mat"
    if not mat.is_file():
        raise DataUnavailableError(f"{mat} is missing: the LSP folder must hold joints.mat and images/")
    raw = np.asarray(scipy.io.loadmat(str(mat))["joints"], dtype=np.float64)
    if raw.shape[:2] != (3, NUM_JOINTS):
        raise DataUnavailableError(f"{mat}: expected a 3 x 14 x N array 'joints', got shape {raw.shape}")
    n = raw.shape[2]
    picks = {"all": range(n), "train": range(min(n, 1000)), "test": range(min(n, 1000), n)}[split]
    images, joints, visible = [], [], []
    for i in picks:
        path = folder / "images" / f"im{i + 1:04d}.jpg"
        if not path.is_file():
            raise DataUnavailableError(f"{path} is missing from the LSP folder {folder}")
        img = torch.from_numpy(np.ascontiguousarray(skimage.io.imread(path))).float().div_(255.0)
        if img.ndim == 2:
            img = img[..., None].expand(-1, -1, 3)
        img = img[..., :3].permute(2, 0, 1).contiguous()
        hgt, wid = img.shape[1:]
        xy = torch.from_numpy(raw[:2, :, i].T.copy()).float()  # (14, 2), 1-based pixel centres (MATLAB)
        xy = (xy - 0.5) / torch.tensor([wid, hgt], dtype=torch.float32)
        images.append(img)
        joints.append(xy)
        # joints.mat marks *occluded* joints with 1 in its third row (loaders commonly invert it)
        visible.append(torch.from_numpy(raw[2, :, i] == 0))
    if not images:
        raise DataUnavailableError(f"the {split!r} split of {folder} is empty")
    return images, torch.stack(joints), torch.stack(visible)


def load_lsp(root: str | Path = "~/.cache/course_lib/lsp", split: str = "all", download: bool = True):
    """The real Leeds Sports Pose dataset (2000 images, 14 joints; Johnson & Everingham, BMVC 2010).

    The first 1000 images are the usual training split and the last 1000 the test split. Works where the
    extracted dataset (``joints.mat`` and ``images/``) is under ``root`` or a network can fetch it (Colab).
    Offline and without a local copy it raises :class:`course_lib.data.DataUnavailableError` saying what to do;
    the chapter then uses :class:`course_lib.data.PoseFiguresDataset`.

    Args:
        root: folder of the extracted dataset (``root/joints.mat``, ``root/images/im0001.jpg`` ...), or where
            to download it.
        split: ``"all"``, ``"train"`` or ``"test"``.
        download: fetch the archive when it is missing.

    Returns:
        ``images``: a list of ``(3, H, W)`` float tensors in ``[0, 1]`` (sizes differ), ``joints``
        ``(N, 14, 2)`` in image fractions (LSP order, as :data:`JOINT_NAMES`), ``visibility`` ``(N, 14)`` bool.
    """
    from .data import DataUnavailableError, _network_available

    check_choice(split, "split", ("all", "train", "test"))
    root = Path(root).expanduser()
    candidates = [root, root / "lsp_dataset"]
    for folder in candidates:
        if (folder / "joints.mat").is_file():
            return _read_lsp(folder, split)
    hint = (f"Put the extracted LSP dataset (joints.mat and images/) under {root}, or run this where a network "
            "exists (e.g. Colab) with download=True; offline, use course_lib.data.PoseFiguresDataset instead.")
    if not download:
        raise DataUnavailableError(f"LSP is not under {root} and download=False. {hint}")
    if not _network_available(_LSP_HOST):
        raise DataUnavailableError(f"LSP is not under {root} and its server cannot be reached (no network). {hint}")
    import urllib.request

    root.mkdir(parents=True, exist_ok=True)
    archive = root / "lsp_dataset.zip"
    errors = []
    for url in LSP_URLS:
        try:
            urllib.request.urlretrieve(url, archive)  # noqa: S310 - fixed, known URLs
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(root)
            break
        except (OSError, zipfile.BadZipFile) as err:
            errors.append(f"{url}: {err}")
    else:
        raise DataUnavailableError(f"LSP could not be downloaded ({'; '.join(errors)}). {hint}")
    for folder in candidates:
        if (folder / "joints.mat").is_file():
            return _read_lsp(folder, split)
    raise DataUnavailableError(f"the LSP archive did not contain joints.mat. {hint}")
