"""course_lib.pose.crops: crops, augmentation that moves the targets with the pixels, the loader."""

from __future__ import annotations

import pytest
import torch

from course_lib.pose import (
    augment_crops,
    crop_boxes,
    hflip_joints,
    normalize_joints,
    pose_loader,
)


# ------------------------------------------------------------------------------------------ crops
def test_crop_of_a_whole_pixel_box_is_a_slice():
    img = torch.rand(1, 3, 20, 30)
    # pixels rows 4..11 and cols 10..17 (8 x 8): centre (14 / 30, 8 / 20), h 8 / 20, w 8 / 30
    box = torch.tensor([[14 / 30, 8 / 20, 8 / 20, 8 / 30]])
    torch.testing.assert_close(crop_boxes(img, box, 8), img[:, :, 4:12, 10:18])


def test_normalized_joint_points_at_its_pixel_in_the_crop():
    # a lit pixel in the scene; after cropping its box, the normalized joint points at the lit crop pixel
    img = torch.zeros(1, 3, 40, 40)
    img[0, :, 17, 22] = 1.0
    j = torch.full((1, 14, 2), 0.5)
    j[0, 0] = torch.tensor([22.5 / 40, 17.5 / 40])
    box = torch.tensor([[20 / 40, 16 / 40, 16 / 40, 16 / 40]])  # 16 x 16 pixels: rows 8..23, cols 12..27
    crop = crop_boxes(img, box, 16)
    z = normalize_joints(j, box)[0, 0]
    row, col = (crop[0, 0] == 1).nonzero()[0].tolist()
    torch.testing.assert_close(z, torch.tensor([(col + 0.5) / 16 - 0.5, (row + 0.5) / 16 - 0.5]))


def test_augment_crops_flip_swaps_and_mirrors_consistently(figures):
    x0, y0 = augment_crops(figures.images, figures.joints, figures.boxes)
    g = torch.Generator().manual_seed(0)
    x1, y1 = augment_crops(figures.images, figures.joints, figures.boxes, flip=True, seed=g)
    flipped = (x1 != x0).flatten(1).any(1)
    assert 0 < int(flipped.sum()) < len(figures)
    torch.testing.assert_close(x1[flipped], x0[flipped].flip(-1))
    torch.testing.assert_close(y1[flipped], hflip_joints(y0[flipped], coords="centered"))
    torch.testing.assert_close(y1[~flipped], y0[~flipped])


def test_augment_translation_moves_targets_with_the_crop(figures):
    g = torch.Generator().manual_seed(1)
    x, y = augment_crops(figures.images[:8], figures.joints[:8], figures.boxes[:8], translate=0.2, zoom=0.2,
                         seed=g)
    # the targets are the joints normalized to *some* square box: invert with the box recovered from two joints
    z0, z1 = y[:, 0], y[:, 12]
    j0, j1 = figures.joints[:8, 0], figures.joints[:8, 12]
    side = (j1 - j0) / (z1 - z0)
    torch.testing.assert_close(side[:, 0], side[:, 1], rtol=1e-3, atol=1e-4)  # square box (square image)
    assert float((y.abs() > 0.5).float().mean()) < 0.2


def test_pose_loader_is_deterministic_and_respects_subsets(figures):
    a = [t for t in next(iter(pose_loader(figures, 16, seed=5, translate=0.1, flip=True)))]
    b = [t for t in next(iter(pose_loader(figures, 16, seed=5, translate=0.1, flip=True)))]
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    train, _ = figures.split(0.5)
    x, y = next(iter(pose_loader(train, 100, shuffle=False)))
    assert x.shape[0] == 24
    torch.testing.assert_close(y, augment_crops(figures.images[:24], figures.joints[:24], figures.boxes[:24])[1])
    with pytest.raises(TypeError, match="unknown augmentation"):
        pose_loader(figures, 4, rotate=10)
