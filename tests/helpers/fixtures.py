"""Small shared inputs for the tests (no test file imports another)."""

from __future__ import annotations

import torch


def random_boxes(n: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` valid normalized ``(x, y, h, w)`` boxes: centres uniform in the unit square, sides in [0.05, 0.65)."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(n, 2, generator=g, dtype=dtype)
    size = 0.05 + 0.6 * torch.rand(n, 2, generator=g, dtype=dtype)
    return torch.cat([centre, size], dim=1)


def pose_with_torso(torso: float = 1.0) -> torch.Tensor:
    """A ``(14, 2)`` pose whose left shoulder and right hip are ``torso`` apart (a 3-4-5 triangle); the other
    joints spread on a line."""
    from course_lib.joints import JOINT_NAMES

    gt = torch.zeros(14, 2)
    gt[:, 0] = torch.arange(14, dtype=torch.float32) * 0.01
    gt[JOINT_NAMES.index("right_hip")] = torch.tensor([0.0, 0.0])
    gt[JOINT_NAMES.index("left_shoulder")] = torch.tensor([0.6 * torso, 0.8 * torso])
    return gt
