"""The 14 joints of a pose in Leeds Sports Pose order, their left/right partners and skeleton, and the check of a
joints argument.

A leaf module: it imports nothing from ``course_lib`` but :mod:`course_lib._checks`, so that both
:mod:`course_lib.pose` and :mod:`course_lib.data` (whose :class:`~course_lib.data.PoseFiguresDataset` draws
these joints) import it without importing each other.

Example:
    >>> NUM_JOINTS, JOINT_NAMES[FLIP_PAIRS[0][0]], JOINT_NAMES[FLIP_PAIRS[0][1]]
    (14, 'right_ankle', 'left_ankle')
"""

from __future__ import annotations

import torch

from ._checks import as_tensor, check_tensor, describe
from ._types import Joints

__all__ = [
    "JOINT_NAMES",
    "NUM_JOINTS",
    "FLIP_PAIRS",
    "FLIP_PERMUTATION",
    "SKELETON",
    "LIMB_SIDES",
    "TORSO_JOINTS",
    "check_joints",
    "check_visibility",
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


def check_joints(joints: Joints, name: str = "joints", batched: bool | None = None) -> torch.Tensor:
    """``joints`` as a ``(14, 2)`` or ``(N, 14, 2)`` tensor of finite floats (``batched`` forces one of the two).

    Example:
        >>> check_joints(torch.zeros(2, 14, 2)).shape
        torch.Size([2, 14, 2])
        >>> check_joints(torch.zeros(16, 2))
        Traceback (most recent call last):
        ...
        ValueError: joints must have shape (..., 14, 2): 14 joints in LSP order, each (x, y); got a torch.float32 tensor of shape (16, 2)
    """
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


def check_visibility(visibility, shape: torch.Size, device: torch.device | str) -> torch.Tensor | None:
    """Per-joint visibility flags of ``shape`` as a bool tensor on ``device`` (``None`` stays ``None``).

    Example:
        >>> check_visibility(torch.tensor([1, 0]), (2,), "cpu")
        tensor([ True, False])
    """
    if visibility is None:
        return None
    v = as_tensor(visibility, "visibility")
    if tuple(v.shape) != tuple(shape):
        raise ValueError(f"visibility must have shape {tuple(shape)} (one flag per joint), got {describe(v)}")
    return v.to(device=device).bool()

