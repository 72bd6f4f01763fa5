r"""Joint geometry: poses normalized to a box and back (DeepPose, eq. 1), horizontal flips that swap the left and
right joints, and the torso diameter.

Joints are ``(..., 14, 2)`` tensors of ``(x, y)`` as fractions of the image width and height, in the order of
:data:`~course_lib.joints.JOINT_NAMES`.
"""

from __future__ import annotations

import torch

from .._checks import as_tensor, check_bool, check_choice, check_images, describe
from .._types import Boxes, Images, Joints
from ..boxes import check_boxes
from ..joints import FLIP_PERMUTATION, NUM_JOINTS, TORSO_JOINTS, check_joints, check_visibility

__all__ = ["normalize_joints", "denormalize_joints", "swap_left_right", "hflip_joints", "hflip_pose", "torso_diameter"]


def _broadcast_boxes(j: torch.Tensor, b: torch.Tensor, jname: str, bname: str) -> torch.Tensor:
    """``b`` shaped to broadcast against joints ``j``: ``(..., 1, 4)``."""
    if b.ndim == 2:
        if j.ndim != 3 or b.shape[0] != j.shape[0]:
            raise ValueError(f"{bname} has {b.shape[0]} boxes but {jname} has shape {tuple(j.shape)}: "
                             "give one box per image, or one (4,) box for all")
    return b.to(device=j.device, dtype=j.dtype).unsqueeze(-2)


def normalize_joints(joints: Joints, boxes: Boxes) -> torch.Tensor:
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
    j = check_joints(joints)
    b = _broadcast_boxes(j, check_boxes(boxes, ndim=(1, 2), min_batch=1), "joints", "boxes")
    centre, size = b[..., 0:2], b[..., [3, 2]]  # (x, y) and (w, h)
    return (j - centre) / size


def denormalize_joints(normalized: Joints, boxes: Boxes) -> torch.Tensor:
    r"""The inverse of :func:`normalize_joints`: :math:`N^{-1}(z; b) = (b_x + b_w z_x,\; b_y + b_h z_y)`.

    Example:
        >>> z = torch.full((14, 2), 0.5)
        >>> denormalize_joints(z, torch.tensor([0.5, 0.5, 0.2, 0.4]))[0]
        tensor([0.7000, 0.6000])
    """
    z = check_joints(normalized, "normalized")
    b = _broadcast_boxes(z, check_boxes(boxes, ndim=(1, 2), min_batch=1), "normalized", "boxes")
    return b[..., 0:2] + z * b[..., [3, 2]]


# ---------------------------------------------------------------------------------------------- flips
def swap_left_right(x: torch.Tensor) -> torch.Tensor:
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


def hflip_joints(joints: Joints, swap: bool = True, coords: str = "image") -> torch.Tensor:
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
    j = check_joints(joints)
    check_choice(coords, "coords", ("image", "centered"))
    check_bool(swap, "swap")
    x = 1.0 - j[..., 0] if coords == "image" else -j[..., 0]
    out = torch.stack([x, j[..., 1]], dim=-1)
    return swap_left_right(out) if swap else out


def hflip_pose(images: Images, joints: Joints, visibility: torch.Tensor | None = None, *, swap: bool = True, coords: str = "image") -> tuple:
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
        if check_joints(joints).ndim != 2:
            raise ValueError(f"a single image (3, H, W) takes joints (14, 2), got {describe(as_tensor(joints, 'joints'))}")
    else:
        check_images(x, "images")
        j = check_joints(joints, batched=True)
        if j.shape[0] != x.shape[0]:
            raise ValueError(f"images has {x.shape[0]} images but joints has {j.shape[0]} poses")
    new_joints = hflip_joints(joints, swap=swap, coords=coords)
    new_images = x.flip(-1)
    if visibility is None:
        return new_images, new_joints
    v = check_visibility(visibility, new_joints.shape[:-1], new_joints.device)
    return new_images, new_joints, swap_left_right(v) if swap else v


def torso_diameter(joints: Joints) -> torch.Tensor:
    r"""Distance between the left shoulder and the right hip, :math:`\lVert y_{lsho} - y_{rhip} \rVert_2`.

    Example:
        >>> j = torch.zeros(14, 2); j[9] = torch.tensor([0.3, 0.4])
        >>> torso_diameter(j)
        tensor(0.5000)
    """
    j = check_joints(joints)
    a, b = TORSO_JOINTS
    return (j[..., a, :] - j[..., b, :]).norm(dim=-1)
