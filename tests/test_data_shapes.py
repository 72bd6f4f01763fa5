"""course_lib.data.shapes: ShapesDataset ground truth (masks, tight boxes, colours), determinism, bad arguments."""

import numpy as np
import pytest
import torch

from course_lib.data import (
    SHAPE_CLASSES,
    ShapesDataset,
)


@pytest.fixture(scope="module")
def shapes():
    return ShapesDataset(300, seed=0)


def test_shapes_basic_ground_truth(shapes):
    assert len(SHAPE_CLASSES) >= 5
    assert shapes.images.shape == (300, 3, 64, 64) and shapes.images.dtype == torch.float32
    assert float(shapes.images.min()) >= 0 and float(shapes.images.max()) <= 1
    assert set(shapes.labels.tolist()) == set(range(len(SHAPE_CLASSES)))
    assert shapes.masks.dtype == torch.bool and shapes.masks.shape == (300, 64, 64)
    area = shapes.masks.float().mean(dim=(1, 2))
    assert float(area.min()) > 0.01  # every image holds a visible object


def test_box_is_the_tight_box_of_the_mask(shapes):
    for i in range(0, 300, 37):
        ys, xs = np.nonzero(shapes.masks[i].numpy())
        x1, x2, y1, y2 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        expected = [(x1 + x2) / 2 / 64, (y1 + y2) / 2 / 64, (y2 - y1) / 64, (x2 - x1) / 64]
        torch.testing.assert_close(shapes.boxes[i], torch.tensor(expected, dtype=torch.float32))


def test_object_pixels_carry_the_object_colour(shapes):
    # inside the mask the image differs from the (unknown) background: the object is drawn with a flat-ish
    # colour, so its pixels vary far less than the photo pixels around it
    inside = [shapes.images[i][:, shapes.masks[i]].std(dim=1).mean() for i in range(20)]
    assert float(torch.stack(inside).median()) < 0.15


def test_same_seed_same_data_and_different_seed_differs():
    a, b, c = ShapesDataset(40, seed=7), ShapesDataset(40, seed=7), ShapesDataset(40, seed=8)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, c.images)


def test_several_objects_same_and_different_classes():
    same = ShapesDataset(50, seed=1, n_objects=3, classes="same")
    assert (same.object_labels == same.object_labels[:, :1]).all()
    diff = ShapesDataset(50, seed=1, n_objects=2, classes="different")
    assert (diff.object_labels[:, 0] != diff.object_labels[:, 1]).all()
    assert diff.object_masks.shape == (50, 2, 64, 64)
    # visible masks of different objects never overlap, and the union is the image mask
    assert not (diff.object_masks[:, 0] & diff.object_masks[:, 1]).any()
    assert torch.equal(diff.object_masks.any(1), diff.masks)


def test_getitem_targets(shapes):
    img, label = shapes[3]
    assert img.shape == (3, 64, 64) and int(label) == int(shapes.labels[3])
    box_ds = ShapesDataset(5, seed=0, target="box")
    torch.testing.assert_close(box_ds[1][1], box_ds.boxes[1])
    all_ds = ShapesDataset(5, seed=0, target="all")
    assert set(all_ds[0][1]) >= {"label", "box", "mask"}
    train, held = shapes.split(0.8)
    assert len(train) == 240 and len(held) == 60


def test_dataloader_batches(shapes):
    loader = torch.utils.data.DataLoader(shapes, batch_size=16)
    x, y = next(iter(loader))
    assert x.shape == (16, 3, 64, 64) and y.shape == (16,)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"n": 0}, ValueError, "n must be >= 1"),
        ({"n": 2.5}, TypeError, "n must be an integer"),
        ({"n": 4, "size": 8}, ValueError, "size must be >= 16"),
        ({"n": 4, "classes": "mixed"}, ValueError, "classes must be one of"),
        ({"n": 4, "target": "mask"}, ValueError, "target must be one of"),
        ({"n": 4, "radius": (0.4, 0.2)}, ValueError, "radius"),
        ({"n": 4, "n_objects": 9}, ValueError, "n_objects must be <= 5"),
    ],
)
def test_shapes_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ShapesDataset(**kwargs)
