"""Drawing a pose: the skeleton on a matplotlib axis, coloured by side."""

from __future__ import annotations

import torch

from .._checks import as_tensor, check_size
from .._types import Joints, Size
from ..joints import LIMB_SIDES, NUM_JOINTS, SKELETON, check_joints

__all__ = ["SIDE_COLOURS", "draw_pose"]

SIDE_COLOURS: dict[str, str] = {"right": "tab:orange", "left": "tab:cyan", "centre": "white"}
"""Skeleton colours by side (the person's right in orange, left in cyan)."""


def draw_pose(ax, joints: Joints, image_size: Size, visibility: torch.Tensor | None = None, colours: dict | None = None,
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
    j = check_joints(joints, batched=False).detach().float().cpu()
    hgt, wid = check_size(image_size, "image_size")
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
