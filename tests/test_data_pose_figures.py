"""course_lib.data.pose_figures: PoseFiguresDataset ground truth, determinism, bad arguments."""

from __future__ import annotations

import pytest
import torch

from course_lib.data import PoseFiguresDataset
from course_lib.pose import (
    JOINT_NAMES,
)


# ------------------------------------------------------------------------------------------ dataset
def test_pose_figures_ground_truth(figures):
    n, s = len(figures), figures.size
    assert figures.images.shape == (n, 3, s, s) and figures.joints.shape == (n, 14, 2)
    assert figures.visibility.dtype == torch.bool and figures.visibility.shape == (n, 14)
    assert float(figures.images.min()) >= 0 and float(figures.images.max()) <= 1
    # every joint lies on the drawn figure, hence inside its tight box (one pixel of tolerance)
    b = figures.boxes
    lo = (b[:, None, :2] - b[:, None, [3, 2]] / 2) * s - 1
    hi = (b[:, None, :2] + b[:, None, [3, 2]] / 2) * s + 1
    px = figures.joints * s
    assert bool(((px >= lo) & (px <= hi)).all())
    # a visible joint's pixel belongs to the figure (the head top lies on the head's outline: left out)
    ij = px.long().clamp(0, s - 1)
    on_mask = figures.masks[torch.arange(n)[:, None], ij[..., 1], ij[..., 0]]
    inner = figures.visibility.clone()
    inner[:, JOINT_NAMES.index("head_top")] = False
    assert bool(on_mask[inner].all())
    assert 0.85 < float(figures.visibility.float().mean()) < 1.0  # some joints are hidden behind limbs


def test_pose_figures_face_the_viewer_and_sides_differ_in_colour(figures):
    # facing the viewer with a near-upright torso: the right shoulder is on the image's left
    rs, ls = figures.joints[:, JOINT_NAMES.index("right_shoulder")], figures.joints[:, JOINT_NAMES.index("left_shoulder")]
    assert bool((rs[:, 0] < ls[:, 0]).all())
    # the middles of the two thighs carry clearly different colours (median over the images)
    def mid_colour(a: str, b: str) -> torch.Tensor:
        ja, jb = figures.joints[:, JOINT_NAMES.index(a)], figures.joints[:, JOINT_NAMES.index(b)]
        m = ((ja + jb) / 2 * figures.size).long().clamp(0, figures.size - 1)
        return figures.images[torch.arange(len(figures)), :, m[:, 1], m[:, 0]]

    diff = (mid_colour("right_knee", "right_hip") - mid_colour("left_knee", "left_hip")).abs().sum(1)
    assert float(diff.median()) > 0.2


def test_pose_figures_are_deterministic_and_seed_dependent():
    a, b, c = PoseFiguresDataset(6, seed=11), PoseFiguresDataset(6, seed=11), PoseFiguresDataset(6, seed=12)
    assert torch.equal(a.images, b.images) and torch.equal(a.joints, b.joints)
    assert torch.equal(a.visibility, b.visibility)
    assert not torch.equal(a.joints, c.joints)
    image, joints = a[0]
    assert image.shape == (3, 96, 96) and joints.shape == (14, 2)
    a.target = "all"
    assert set(a[0][1]) == {"joints", "visibility", "box", "mask"}


def test_pose_figures_bad_arguments():
    with pytest.raises(ValueError, match="n must be >= 1"):
        PoseFiguresDataset(0)
    with pytest.raises(ValueError, match="target"):
        PoseFiguresDataset(2, target="boxes")
    with pytest.raises(ValueError, match="height"):
        PoseFiguresDataset(2, height=(0.9, 0.5))
