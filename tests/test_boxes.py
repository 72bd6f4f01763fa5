"""course_lib.boxes: conversions, flips, clipping and IoU against torchvision and hand cases; the tight box of a
mask; bad boxes named in the error."""

import pytest
import torch
from torchvision.ops import box_convert
from torchvision.ops import box_iou as tv_box_iou
from torchvision.ops import clip_boxes_to_image as tv_clip

from course_lib.boxes import (
    box_iou,
    clip_boxes_to_image,
    hflip_boxes,
    mask_to_box,
    paired_box_iou,
    square_boxes,
    xyhw_to_xyxy,
    xyxy_to_xyhw,
)
from course_lib.data import ShapesDataset
from course_lib.localization import multitask_loss
from tests.helpers.fixtures import random_boxes


# ------------------------------------------------------------------------------------------ conversions
def test_xyhw_to_xyxy_hand_case_mind_the_order():
    # centre (0.5, 0.25), height 0.5, width 1.0 on a 64 (H) x 32 (W) image
    b = torch.tensor([0.5, 0.25, 0.5, 1.0])
    torch.testing.assert_close(xyhw_to_xyxy(b), torch.tensor([0.0, 0.0, 1.0, 0.5]))
    torch.testing.assert_close(xyhw_to_xyxy(b, image_size=(64, 32)), torch.tensor([0.0, 0.0, 32.0, 32.0]))
    torch.testing.assert_close(xyhw_to_xyxy(b, image_size=10), torch.tensor([0.0, 0.0, 10.0, 5.0]))


def test_xyhw_to_xyxy_matches_torchvision_box_convert():
    b = random_boxes(50)
    # torchvision's "cxcywh" is (cx, cy, w, h): swap our (h, w)
    expected = box_convert(b[:, [0, 1, 3, 2]], in_fmt="cxcywh", out_fmt="xyxy")
    torch.testing.assert_close(xyhw_to_xyxy(b), expected)
    torch.testing.assert_close(xyxy_to_xyhw(expected), b)


@pytest.mark.parametrize("image_size", [None, 64, (48, 80)])
def test_conversions_round_trip(image_size):
    b = random_boxes(100, seed=1, dtype=torch.float64)
    torch.testing.assert_close(xyxy_to_xyhw(xyhw_to_xyxy(b, image_size), image_size), b)
    batch = b.reshape(10, 10, 4)  # any leading shape
    assert xyhw_to_xyxy(batch).shape == (10, 10, 4)


def test_hflip_boxes_matches_flipping_the_mask_and_is_an_involution():
    ds = ShapesDataset(20, size=32, seed=3)
    torch.testing.assert_close(hflip_boxes(ds.boxes), mask_to_box(ds.masks.flip(-1)))
    torch.testing.assert_close(hflip_boxes(hflip_boxes(ds.boxes)), ds.boxes)


def test_clip_boxes_to_image_matches_torchvision():
    b = torch.tensor([[0.0, 0.5, 0.5, 0.5], [0.9, 1.0, 0.6, 0.8], [0.5, 0.5, 0.2, 0.2]])
    expected = tv_clip(xyhw_to_xyxy(b, image_size=(40, 60)), size=(40, 60))
    torch.testing.assert_close(xyhw_to_xyxy(clip_boxes_to_image(b), image_size=(40, 60)), expected)
    torch.testing.assert_close(clip_boxes_to_image(b[2:]), b[2:])  # inside: unchanged
    with pytest.raises(ValueError, match="entirely outside"):
        clip_boxes_to_image(torch.tensor([[1.5, 0.5, 0.2, 0.2]]))


# ------------------------------------------------------------------------------------------------ IoU
def test_box_iou_hand_cases():
    a = torch.tensor([[0.5, 0.5, 0.5, 0.5]])  # corners (0.25, 0.25, 0.75, 0.75), area 0.25
    b = torch.tensor([[0.5, 0.5, 0.5, 0.25], [0.75, 0.75, 0.5, 0.5], [0.2, 0.2, 0.1, 0.1]])
    # half of a / quarter overlap: 0.0625 / (0.25 + 0.25 - 0.0625) / disjoint
    torch.testing.assert_close(box_iou(a, b), torch.tensor([[0.5, 0.0625 / 0.4375, 0.0]]))


def test_box_iou_matches_torchvision_on_pixel_boxes():
    b1, b2 = random_boxes(30, seed=4), random_boxes(20, seed=5)
    expected = tv_box_iou(xyhw_to_xyxy(b1, image_size=(48, 80)), xyhw_to_xyxy(b2, image_size=(48, 80)))
    torch.testing.assert_close(box_iou(b1, b2), expected)
    assert box_iou(b1, b2).shape == (30, 20)
    torch.testing.assert_close(torch.diagonal(box_iou(b1, b1)), torch.ones(30))


def test_paired_box_iou_is_the_diagonal_of_torchvisions_matrix():
    b1, b2 = random_boxes(40, seed=6), random_boxes(40, seed=7)
    expected = torch.diagonal(tv_box_iou(xyhw_to_xyxy(b1), xyhw_to_xyxy(b2)))
    torch.testing.assert_close(paired_box_iou(b1, b2), expected)
    torch.testing.assert_close(paired_box_iou(b1, b2), paired_box_iou(b2, b1))  # symmetric


# ---------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("boxes", "match"),
    [
        (torch.tensor([[0.5, 0.5, 0.0, 0.2]]), "positive height h and width w"),
        (torch.tensor([[0.5, 0.5, 0.2, -0.1]]), "positive height h and width w"),
        (torch.tensor([[0.5, 0.5, 0.2]]), "4 numbers"),
        (torch.tensor([[0.5, float("nan"), 0.2, 0.2]]), "NaN or infinite"),
        (torch.tensor([[0.5, 0.5, float("inf"), 0.2]]), "NaN or infinite"),
    ],
)
def test_bad_boxes_raise_clear_errors(boxes, match):
    with pytest.raises(ValueError, match=match):
        xyhw_to_xyxy(boxes)
    with pytest.raises(ValueError, match=match):
        box_iou(boxes, boxes)
    with pytest.raises(ValueError, match=match):
        multitask_loss(torch.zeros(1, 2), torch.zeros(1, 4), torch.tensor([0]), boxes)


def test_bad_corners_and_types():
    with pytest.raises(ValueError, match="positive width x2 - x1"):
        xyxy_to_xyhw(torch.tensor([0.5, 0.1, 0.4, 0.9]))
    with pytest.raises(TypeError, match="floating-point"):
        xyhw_to_xyxy(torch.tensor([1, 1, 1, 1]))
    with pytest.raises(TypeError, match="torch.Tensor or numpy.ndarray"):
        xyhw_to_xyxy([0.5, 0.5, 0.2, 0.2])
    with pytest.raises(TypeError, match="image_size"):
        xyhw_to_xyxy(torch.tensor([0.5, 0.5, 0.2, 0.2]), image_size=(1, 2, 3))
    with pytest.raises(ValueError, match=r"boxes1 must be 2-D \(N, 4\)"):
        box_iou(torch.tensor([0.5, 0.5, 0.2, 0.2]), torch.tensor([[0.5, 0.5, 0.2, 0.2]]))
    with pytest.raises(ValueError, match="same shape"):
        paired_box_iou(random_boxes(3), random_boxes(4))


def test_mask_to_box_hand_case():
    m = torch.zeros(1, 10, 20, dtype=torch.bool)
    m[0, 2:6, 4:14] = True  # rows 2..5, cols 4..13
    torch.testing.assert_close(mask_to_box(m), torch.tensor([[9 / 20, 4 / 10, 4 / 10, 10 / 20]]))
    assert mask_to_box(torch.zeros(1, 4, 4, dtype=torch.bool)).abs().sum() == 0


def test_square_boxes_are_square_in_pixels():
    b = torch.tensor([[0.5, 0.4, 0.2, 0.1], [0.3, 0.6, 0.05, 0.5]])
    sq = square_boxes(b, scale=1.5, image_size=(40, 80))
    torch.testing.assert_close(sq[:, 2] * 40, sq[:, 3] * 80)
    torch.testing.assert_close(sq[:, 2] * 40, 1.5 * torch.maximum(b[:, 2] * 40, b[:, 3] * 80))
    torch.testing.assert_close(sq[:, :2], b[:, :2])
