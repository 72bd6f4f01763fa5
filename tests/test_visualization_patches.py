"""Top activating patches (course_lib.visualization.patches): brute force, boxes, state, bad input."""


from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from course_lib.models import SmallCNN
from course_lib.visualization import (
    top_activating_patches,
)
from tests.helpers import assert_close

# ---------------------------------------------------------------------------------------- top patches


def _tiny_model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(inplace=True)
    ).eval()


def _brute_force(model, images, channel):
    """Every (image, row, col, value) of the channel, by one forward pass per image and a loop over positions."""
    rows = []
    for n in range(len(images)):
        with torch.no_grad():
            fmap = model[:4](images[n : n + 1])[0, channel].relu()
        for i in range(fmap.shape[0]):
            for j in range(fmap.shape[1]):
                rows.append((float(fmap[i, j]), n, i, j))
    return rows


def test_top_patches_match_brute_force():
    model = _tiny_model()
    images = torch.rand(12, 3, 20, 20, generator=torch.Generator().manual_seed(3))
    rows = _brute_force(model, images, channel=2)
    everything = sorted(rows, reverse=True)[:7]
    top = top_activating_patches(model, "4", 2, images, k=7, per_image=False)
    assert top.indices.tolist() == [n for _, n, _, _ in everything]
    assert top.positions.tolist() == [[i, j] for _, _, i, j in everything]
    assert_close(top.values, torch.tensor([v for v, _, _, _ in everything]))
    best = {}
    for v, n, i, j in rows:
        best[n] = max(best.get(n, (-math.inf,)), (v, n, i, j))
    per_image = sorted(best.values(), reverse=True)[:5]
    top = top_activating_patches(model, "4", 2, images, k=5, batch_size=5)
    assert top.indices.tolist() == [n for _, n, _, _ in per_image]
    assert_close(top.values, torch.tensor([v for v, _, _, _ in per_image]))


def test_patches_lie_inside_the_image_and_show_its_pixels():
    model = _tiny_model()
    images = torch.rand(12, 3, 20, 20, generator=torch.Generator().manual_seed(4))
    top = top_activating_patches(model, "4", 1, images, k=10, per_image=False)
    rf = top.field
    assert rf.size == (8, 8)  # conv3 -> pool2 -> conv3: 3, 4, 4 + 2*2
    x, y, h, w = top.boxes.unbind(1)
    assert bool(((x - w / 2) >= 0).all() and ((x + w / 2) <= 1).all() and ((y - h / 2) >= 0).all())
    assert bool(((y + h / 2) <= 1).all() and (h > 0).all() and (w > 0).all())
    assert top.patches.shape == (10, 3, 8, 8)
    for n, (i, j), patch in zip(top.indices.tolist(), top.positions.tolist(), top.patches, strict=True):
        y1, x1 = rf.start[0] + i * rf.jump[0], rf.start[1] + j * rf.jump[1]
        for a in range(8):
            for b in range(8):
                inside = 0 <= y1 + a < 20 and 0 <= x1 + b < 20
                expected = images[n, :, y1 + a, x1 + b] if inside else torch.zeros(3)
                assert torch.equal(patch[:, a, b], expected)


def test_several_channels_in_one_pass_equal_separate_calls():
    model = _tiny_model()
    images = torch.rand(9, 3, 20, 20, generator=torch.Generator().manual_seed(6))
    together = top_activating_patches(model, "4", [5, 0, 3], images, k=4)
    assert isinstance(together, list) and len(together) == 3
    for c, top in zip([5, 0, 3], together, strict=True):
        alone = top_activating_patches(model, "4", c, images, k=4)
        assert top.channel == alone.channel == c
        assert torch.equal(top.indices, alone.indices) and torch.equal(top.patches, alone.patches)
        assert_close(top.values, alone.values)


def test_patch_box_contains_the_gradient_support():
    model = _tiny_model()
    images = torch.rand(6, 3, 20, 20, generator=torch.Generator().manual_seed(5))
    top = top_activating_patches(model, "3", 0, images, k=4)
    for n, (i, j), box in zip(top.indices.tolist(), top.positions.tolist(), top.boxes, strict=True):
        x = images[n : n + 1].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model[:4](x)[0, 0, i, j], x)
        ys, xs = torch.nonzero(grad[0].abs().sum(0)).unbind(1)
        bx, by, bh, bw = (box * 20).tolist()
        assert xs.min() >= bx - bw / 2 - 1e-4 and xs.max() + 1 <= bx + bw / 2 + 1e-4
        assert ys.min() >= by - bh / 2 - 1e-4 and ys.max() + 1 <= by + bh / 2 + 1e-4


def test_top_patches_restore_mode_and_bad_input():
    model = _tiny_model().train()
    images = torch.rand(4, 3, 20, 20)
    top_activating_patches(model, "4", 0, images, k=2)
    assert all(m.training for m in model.modules())
    with pytest.raises(ValueError, match="not a layer of the model"):
        top_activating_patches(model, "9", 0, images, k=2)
    with pytest.raises(ValueError, match=r"channel must be in \[0, 6\)"):
        top_activating_patches(model, "4", 6, images, k=2)
    with pytest.raises(ValueError, match=r"channel must be in \[0, 6\)"):
        top_activating_patches(model, "4", -1, images, k=2)
    with pytest.raises(ValueError, match="images must be 4-D"):
        top_activating_patches(model, "4", 0, images[0], k=2)
    with pytest.raises(ValueError, match="images must have size 3 in dimension 1"):
        top_activating_patches(model, "4", 0, images[:, :1], k=2)
    with pytest.raises(ValueError, match="k must be <= the number of images"):
        top_activating_patches(model, "4", 0, images, k=5)
    with pytest.raises(TypeError, match="channel must be an integer"):
        top_activating_patches(model, "4", 1.0, images, k=2)




# ----------------------------------------------------------------------------------- CPU / GPU parity
@pytest.mark.cuda
def test_top_patches_cpu_gpu_parity():
    model = SmallCNN().eval()
    images = torch.rand(16, 3, 64, 64)
    cpu = top_activating_patches(model, "features.9", 3, images, k=4)
    gpu = top_activating_patches(copy.deepcopy(model).cuda(), "features.9", 3, images.cuda(), k=4)
    assert gpu.patches.device.type == "cuda"
    assert cpu.indices.tolist() == gpu.indices.cpu().tolist()
    assert_close(gpu.values.cpu(), cpu.values, atol=1e-4, rtol=1e-4)
    assert_close(gpu.patches.cpu(), cpu.patches)
