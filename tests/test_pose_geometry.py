"""course_lib.pose and PoseFiguresDataset: normalization, flips with swaps, PCK/PDJ on hand-computed cases,
crops, the DeepPose regressor and cascade stage on fixed weights, the LSP loader offline, bad input."""

from __future__ import annotations

import pytest
import torch

from course_lib.pose import (
    FLIP_PAIRS,
    JOINT_NAMES,
    denormalize_joints,
    hflip_joints,
    hflip_pose,
    normalize_joints,
    pck,
    swap_left_right,
    torso_diameter,
)
from tests.helpers.fixtures import pose_with_torso


# ------------------------------------------------------------------------------------------ normalization
def test_normalize_joints_hand_case():
    box = torch.tensor([0.5, 0.25, 0.5, 0.2])  # centre (0.5, 0.25), h 0.5, w 0.2
    j = torch.zeros(14, 2)
    j[0] = torch.tensor([0.6, 0.5])
    j[1] = torch.tensor([0.5, 0.25])
    z = normalize_joints(j, box)
    torch.testing.assert_close(z[0], torch.tensor([0.1 / 0.2, 0.25 / 0.5]))
    torch.testing.assert_close(z[1], torch.zeros(2))
    torch.testing.assert_close(z[2], torch.tensor([-0.5 / 0.2, -0.25 / 0.5]))


def test_normalize_denormalize_round_trip_batched_and_broadcast():
    j = torch.rand(5, 14, 2, dtype=torch.float64)
    boxes = torch.rand(5, 4, dtype=torch.float64) + 0.1
    torch.testing.assert_close(denormalize_joints(normalize_joints(j, boxes), boxes), j)
    one = torch.tensor([0.4, 0.6, 0.3, 0.7], dtype=torch.float64)
    torch.testing.assert_close(normalize_joints(j, one), normalize_joints(j, one.expand(5, 4)))


def test_box_corners_normalize_to_plus_minus_half():
    box = torch.tensor([0.3, 0.7, 0.2, 0.4])
    j = torch.zeros(14, 2)
    j[0] = torch.tensor([0.3 - 0.2, 0.7 - 0.1])  # top-left corner
    j[1] = torch.tensor([0.3 + 0.2, 0.7 + 0.1])  # bottom-right corner
    z = normalize_joints(j, box)
    torch.testing.assert_close(z[:2], torch.tensor([[-0.5, -0.5], [0.5, 0.5]]))


@pytest.mark.parametrize("bad, msg", [([0.5, 0.5, 0.0, 0.2], "h > 0"), ([0.5, 0.5, 0.3, -0.1], "w > 0")])
def test_boxes_without_area_are_rejected(bad, msg):
    with pytest.raises(ValueError, match=msg):
        normalize_joints(torch.rand(14, 2), torch.tensor(bad))
    with pytest.raises(ValueError, match=msg):
        denormalize_joints(torch.rand(14, 2), torch.tensor(bad))


def test_wrong_joint_count_is_rejected():
    with pytest.raises(ValueError, match="14 joints"):
        normalize_joints(torch.rand(2, 13, 2), torch.rand(2, 4) + 0.1)
    with pytest.raises(ValueError, match="14 joints"):
        pck(torch.rand(16, 2), torch.rand(16, 2))
    with pytest.raises(ValueError, match="14 joints"):
        hflip_joints(torch.rand(14, 3))


def test_nan_joints_are_rejected():
    j = torch.rand(3, 14, 2)
    j[1, 4, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        normalize_joints(j, torch.rand(3, 4) + 0.1)
    with pytest.raises(ValueError, match="NaN"):
        pck(j, torch.rand(3, 14, 2))
    with pytest.raises(ValueError, match="NaN"):
        hflip_pose(torch.rand(3, 3, 8, 8), j)


def test_box_count_must_match_and_types_are_checked():
    with pytest.raises(ValueError, match="one box per image"):
        normalize_joints(torch.rand(3, 14, 2), torch.rand(2, 4) + 0.1)
    with pytest.raises(TypeError, match="torch.Tensor"):
        normalize_joints([[0.0, 0.0]] * 14, torch.rand(4) + 0.1)
    with pytest.raises(TypeError, match="floating-point"):
        normalize_joints(torch.zeros(14, 2, dtype=torch.long), torch.rand(4) + 0.1)


# ------------------------------------------------------------------------------------------ flips
def test_hflip_twice_is_the_identity():
    images, joints, vis = torch.rand(4, 3, 9, 11), torch.rand(4, 14, 2), torch.rand(4, 14) > 0.3
    i1, j1, v1 = hflip_pose(images, joints, vis)
    i2, j2, v2 = hflip_pose(i1, j1, v1)
    assert torch.equal(i2, images) and torch.equal(v2, vis)
    torch.testing.assert_close(j2, joints, atol=1e-6, rtol=0)
    z = torch.rand(14, 2) - 0.5
    torch.testing.assert_close(hflip_joints(hflip_joints(z, coords="centered"), coords="centered"), z)


def test_hflip_mirrors_x_and_swaps_each_pair():
    j = torch.rand(14, 2)
    out = hflip_joints(j)
    for right, left in FLIP_PAIRS:
        torch.testing.assert_close(out[left], torch.stack([1 - j[right, 0], j[right, 1]]))
        torch.testing.assert_close(out[right], torch.stack([1 - j[left, 0], j[left, 1]]))
    for c in (JOINT_NAMES.index("neck"), JOINT_NAMES.index("head_top")):
        torch.testing.assert_close(out[c], torch.stack([1 - j[c, 0], j[c, 1]]))
    bug = hflip_joints(j, swap=False)  # the bug: mirrored, but the labels stay where they were
    torch.testing.assert_close(bug, torch.stack([1 - j[:, 0], j[:, 1]], 1))
    torch.testing.assert_close(hflip_joints(j - 0.5, coords="centered"), out - 0.5)


def test_flipped_joint_lands_on_the_flipped_pixel():
    # a joint at the centre of pixel (row 2, col 3) of an 8 x 10 image; after the flip, the lit pixel and the
    # flipped joint (now labelled as the partner joint) coincide
    img = torch.zeros(3, 8, 10)
    img[:, 2, 3] = 1.0
    j = torch.full((14, 2), 0.5)
    wrist = JOINT_NAMES.index("right_wrist")
    j[wrist] = torch.tensor([(3 + 0.5) / 10, (2 + 0.5) / 8])
    img2, j2 = hflip_pose(img, j)
    row, col = (img2[0] == 1).nonzero()[0].tolist()
    partner = JOINT_NAMES.index("left_wrist")
    torch.testing.assert_close(j2[partner], torch.tensor([(col + 0.5) / 10, (row + 0.5) / 8]))


def test_swap_left_right_on_flags_and_bad_shapes():
    flags = torch.zeros(2, 14, dtype=torch.bool)
    flags[:, JOINT_NAMES.index("right_knee")] = True
    out = swap_left_right(flags)
    assert out[:, JOINT_NAMES.index("left_knee")].all() and out.sum() == 2
    with pytest.raises(ValueError, match="14"):
        swap_left_right(torch.rand(3, 5))


# ------------------------------------------------------------------------------------------ metrics
def test_torso_diameter_is_left_shoulder_to_right_hip():
    gt = pose_with_torso(2.5)
    torch.testing.assert_close(torso_diameter(gt), torch.tensor(2.5))
