"""Localization metrics (course_lib.saliency.metrics.localization) on toy cases with exact answers: pointing
game, saliency to box, CorLoc, mask IoU."""


from __future__ import annotations

import pytest
import torch

from course_lib.saliency import metrics
from course_lib.saliency.metrics import (
    corloc,
    pointing_game,
    saliency_to_box,
)
from tests.helpers import assert_close


# ---------------------------------------------------------------------- pointing game
def test_pointing_game():
    maps = torch.zeros(3, 8, 8)
    maps[0, 1, 1] = 1  # on the mask
    maps[1, 6, 6] = 1  # far from it
    maps[2, 4, 2] = 1  # two pixels below the mask's lowest row (row 2)
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[:, 0:3, 0:3] = True
    assert pointing_game(maps, masks) == pytest.approx(1 / 3)
    assert pointing_game(maps, masks, reduction="none").tolist() == [True, False, False]
    assert pointing_game(maps, masks, tolerance=2.0, reduction="none").tolist() == [True, False, True]
    assert pointing_game(maps, masks, tolerance=1.9, reduction="none").tolist() == [True, False, False]
    # a constant map points nowhere, even when its first pixel is on the mask
    assert pointing_game(torch.zeros(1, 8, 8), masks[:1]) == 0.0


# ---------------------------------------------------------------------- saliency -> box
def test_saliency_to_box_takes_the_largest_component():
    m = torch.zeros(10, 20)
    m[1:4, 2:6] = 1.0  # 12 pixels
    m[5:9, 10:18] = 0.6  # 32 pixels, weaker but larger
    m[0, 19] = 0.9
    box = saliency_to_box(m, threshold=0.5)  # keeps all three: the 4×8 block wins
    assert_close(box, torch.tensor([14 / 20, 7 / 10, 4 / 10, 8 / 20]))
    # above 0.7 of the max only the 3×4 block and the single pixel remain
    assert_close(saliency_to_box(m, threshold=0.7), torch.tensor([4 / 20, 2.5 / 10, 3 / 10, 4 / 20]))


def test_saliency_to_box_connectivity_batch_and_edge_cases():
    m = torch.zeros(2, 6, 6)
    m[0, 0, 0] = m[0, 1, 1] = m[0, 2, 2] = 1.0  # a diagonal: one component with 8-connectivity
    m[0, 5, 5] = 1.0
    m[1] = 0.0  # all zero: every pixel is kept
    boxes = saliency_to_box(m, threshold=0.5)
    assert boxes.shape == (2, 4)
    assert_close(boxes[0], torch.tensor([1.5 / 6, 1.5 / 6, 3 / 6, 3 / 6]))
    assert_close(boxes[1], torch.tensor([0.5, 0.5, 1.0, 1.0]))
    # threshold 0 keeps everything; threshold 1 keeps the maxima only
    ramp = torch.arange(16.0).view(4, 4)
    assert_close(saliency_to_box(ramp, 0.0), torch.tensor([0.5, 0.5, 1.0, 1.0]))
    assert_close(saliency_to_box(ramp, 1.0), torch.tensor([3.5 / 4, 3.5 / 4, 1 / 4, 1 / 4]))


# ---------------------------------------------------------------------- CorLoc
def test_corloc():
    gt = torch.tensor([[0.5, 0.5, 0.5, 0.5]] * 3)
    pred = torch.tensor(
        [
            [0.5, 0.5, 0.5, 0.25],  # IoU = 0.5 exactly: a hit
            [0.5, 0.5, 0.5, 0.24],  # IoU = 0.48: a miss
            [0.75, 0.75, 0.5, 0.5],  # IoU = 1/7
        ]
    )
    assert corloc(pred, gt, reduction="none").tolist() == [True, False, False]
    assert corloc(pred, gt) == pytest.approx(1 / 3)
    assert corloc(pred, gt, iou=1 / 7) == pytest.approx(1.0)
    # several ground-truth boxes per image: any of them counts; an empty box matches nothing
    multi = torch.stack([gt, torch.tensor([[0.75, 0.75, 0.5, 0.24]] * 3)], dim=1)
    multi[2, 1] = torch.tensor([0.75, 0.75, 0.5, 0.5])
    multi[1, 0] = 0.0
    assert corloc(pred, multi, reduction="none").tolist() == [True, False, True]


# ---------------------------------------------------------------------- mask IoU


def test_mask_iou_equals_sklearn_jaccard_per_image():
    from sklearn.metrics import jaccard_score

    g = torch.Generator().manual_seed(0)
    maps, masks = torch.rand(5, 9, 7, generator=g), torch.rand(5, 9, 7, generator=g) > 0.6
    per_image = metrics.mask_iou(maps, masks, 0.4, reduction="none")
    expected = [jaccard_score(m.flatten().numpy(), (s >= 0.4).flatten().numpy()) for s, m in zip(maps, masks, strict=True)]
    assert torch.allclose(per_image.double(), torch.tensor(expected, dtype=torch.float64), atol=1e-6)
    assert metrics.mask_iou(maps, masks, 0.4) == pytest.approx(float(per_image.mean()))
    empty = torch.zeros(1, 2, 2, dtype=torch.bool)
    assert metrics.mask_iou(torch.zeros(1, 2, 2), empty, 0.5) == 0.0  # nothing kept, nothing to find


def test_mask_iou_bad_input():
    maps = torch.rand(2, 4, 4)
    with pytest.raises(TypeError, match="masks"):
        metrics.mask_iou(maps, torch.zeros(2, 4, 4), 0.5)
    with pytest.raises(ValueError, match="masks"):
        metrics.mask_iou(maps, torch.zeros(2, 4, 5, dtype=torch.bool), 0.5)
    with pytest.raises(ValueError, match="tau"):
        metrics.mask_iou(maps, torch.zeros(2, 4, 4, dtype=torch.bool), 1.5)
