"""Tests for course_lib.visualization: filters, receptive fields, top patches, activation maximization.

Receptive fields are checked against an *empirical* field: the non-zero support of the input gradient of one
unit, in a copy of the network whose weights are all positive (so no two paths cancel), whose batch norms are
the identity and whose max-pools are average pools of the same geometry (a max-pool sends the gradient to one
pixel per window, so its support depends on the data; an average pool of the same kernel, stride and padding
covers exactly the pixels that *can* win the max).
"""

from __future__ import annotations

import contextlib
import copy
import math

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from course_lib.models import SmallCNN
from course_lib.pretrained import EfficientNetLite0, Normalize
from course_lib.visualization import (
    ReceptiveField,
    activation_maximization,
    ascent_objective,
    filter_grid,
    first_conv,
    normalize_filters,
    receptive_field,
    top_activating_patches,
    total_variation,
)
from tests.helpers import assert_close

# ------------------------------------------------------------------------------------------- helpers


class _Stop(Exception):
    pass


def _arch(name: str) -> nn.Module:
    """A torchvision architecture built on the meta device: no weights, no memory, no download."""
    with torch.device("meta"):
        return getattr(torchvision.models, name)(weights=None)


def _positive_copy(model: nn.Module, thin: bool = False) -> nn.Module:
    """A CPU copy with all-positive weights, identity batch norms and average pools in place of max-pools.

    ReLU6 becomes ReLU (same geometry, never saturates) and an input ``Normalize`` the identity.

    With ``thin=True`` every convolution keeps its kernel, stride, padding and dilation but has one output channel
    (and one input channel after the first): with positive weights every channel has the same spatial support,
    so the field is unchanged while the cost drops a hundredfold. Linear layers (never reached: the forward
    pass stops at the layer) are dropped so that nothing large is allocated.
    """
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.MaxPool2d):
                assert child.dilation in (1, (1, 1))
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode))
            elif isinstance(child, (nn.Linear, Normalize)):  # Normalize: point-wise, its buffers would be lost
                setattr(parent, name, nn.Identity())
            elif isinstance(child, nn.ReLU6):  # a saturated unit would cut the gradient's support
                setattr(parent, name, nn.ReLU())
            elif thin and isinstance(child, nn.Conv2d):
                c_in = 3 if child.in_channels == 3 else 1
                setattr(parent, name, nn.Conv2d(c_in, 1, child.kernel_size, child.stride, child.padding,
                                                child.dilation, bias=False, device="meta"))
            elif thin and isinstance(child, nn.BatchNorm2d):
                setattr(parent, name, nn.BatchNorm2d(1, device="meta"))
    model = model.to_empty(device="cpu").eval()
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.weight[0].numel()
            m.weight.data = (torch.rand(m.weight.shape, generator=g) + 0.5) / fan_in
            if m.bias is not None:
                m.bias.data.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.running_mean.zero_()
            m.running_var.fill_(1.0)
            m.weight.data.fill_(1.0)
            m.bias.data.zero_()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _empirical_boxes(model: nn.Module, layer: str, size: int, thin: bool = False, units=("center", "corner")):
    """Pixel boxes (x1, y1, x2, y2) of the non-zero input-gradient support of the given units (channel 0)."""
    model = _positive_copy(model, thin=thin)
    module = dict(model.named_modules())[layer]
    x = (0.5 + torch.rand(1, 3, size, size)).requires_grad_(True)
    captured = []

    def hook(_m, _i, out):
        captured.append(out)
        raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        with contextlib.suppress(_Stop):
            model(x)
    finally:
        handle.remove()
    out = captured[0]
    h, w = out.shape[-2:]
    result = {}
    for unit in units:
        i, j = (h // 2, w // 2) if unit == "center" else (0, 0)
        (grad,) = torch.autograd.grad(out[0, 0, i, j], x, retain_graph=True)
        support = grad[0].abs().sum(0) != 0
        rows = torch.nonzero(support.any(1)).flatten()
        cols = torch.nonzero(support.any(0)).flatten()
        box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        area = (box[2] - box[0]) * (box[3] - box[1])
        assert int(support.sum()) == area, "the gradient support should be a full rectangle"
        result[unit] = ((i, j), box)
    return result, (h, w)


def _check_against_empirical(model, layer, size, expect_inside=True, thin=False):
    empirical, out_size = _empirical_boxes(model, layer, size, thin=thin)
    field = receptive_field(model, layer, input_size=size)
    assert field.output_size == out_size
    for unit, ((i, j), box) in empirical.items():
        assert field.box(i, j, image_size=size) == box, f"{layer} unit {unit}"
    if expect_inside:  # the central unit's field lies fully inside the image: its size is checked exactly
        (i, j), box = empirical["center"]
        assert (box[3] - box[1], box[2] - box[0]) == field.size
    return field


# ------------------------------------------------------------------------------------ receptive fields


def test_single_layers_by_hand():
    # 3x3 conv, padding 1: sees 3 pixels, starting one before the unit.
    assert receptive_field(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1)), "0") == ReceptiveField((3, 3), (1, 1), (-1, -1))
    # 5x5 conv with dilation 2 and stride 3: effective kernel 9.
    rf = receptive_field(nn.Sequential(nn.Conv2d(3, 4, 5, stride=3, dilation=2, padding=4)), "0")
    assert rf == ReceptiveField((9, 9), (3, 3), (-4, -4))
    # non-square kernel: rows and columns are independent
    rf = receptive_field(nn.Sequential(nn.Conv2d(3, 4, (1, 7), stride=(1, 2), padding=(0, 3))), "0")
    assert rf == ReceptiveField((1, 7), (1, 2), (0, -3))
    # conv 3 -> pool 2 -> conv 3: 3, then 3 + 1*1 = 4 (jump 2), then 4 + 2*2 = 8
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3))
    assert receptive_field(net, "3") == ReceptiveField((8, 8), (2, 2), (0, 0))
    assert receptive_field(net, net[1]) == ReceptiveField((3, 3), (1, 1), (0, 0))


def test_known_values_of_classic_networks():
    # Hand-derived from the published layer tables (and listed by Araujo et al., Distill 2019):
    # AlexNet conv5 163 px, pool5 195 px (jump 32); VGG16 conv5_3 196 px, pool5 212 px; ResNet-18 last block 435 px.
    alexnet = _arch("alexnet")
    assert receptive_field(alexnet, "features.10").size == (163, 163)
    assert receptive_field(alexnet, "features").size == (195, 195)
    assert receptive_field(alexnet, "features").jump == (32, 32)
    vgg = _arch("vgg16")
    assert receptive_field(vgg, "features.28").size == (196, 196)
    assert receptive_field(vgg, "features").size == (212, 212)
    rf = receptive_field(_arch("resnet18"), "layer4", input_size=224)
    assert rf.size == (435, 435) and rf.jump == (32, 32) and rf.output_size == (7, 7)


def test_output_size_matches_torch():
    net = nn.Sequential(
        nn.Conv2d(3, 4, 5, stride=2, padding=1), nn.MaxPool2d(3, stride=2, ceil_mode=True),
        nn.Conv2d(4, 4, 3, padding="same", dilation=2), nn.AvgPool2d(2), nn.Conv2d(4, 4, 3, padding="valid"),
    )  # fmt: skip
    for size in (37, 40, 53):
        for k in range(len(net)):
            out = net[: k + 1](torch.zeros(1, 3, size, size))
            assert receptive_field(net, str(k), input_size=size).output_size == tuple(out.shape[-2:])


def test_sequential_with_dilation_same_padding_and_pools_matches_empirical():
    net = nn.Sequential(
        nn.Conv2d(3, 4, 5, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(4, 4, 3, padding="same", dilation=2), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AvgPool2d(2), nn.Conv2d(4, 4, (3, 5), padding=(0, 2)),
    )  # fmt: skip
    _check_against_empirical(net, "7", 96)
    _check_against_empirical(net, "3", 96)


def test_small_cnn_matches_empirical():
    model = SmallCNN()
    for layer in ("features.2", "features.9", "features"):
        _check_against_empirical(model, layer, 64)


def test_alexnet_matches_empirical():
    model = _arch("alexnet")
    _check_against_empirical(model, "features.5", 128)
    _check_against_empirical(model, "features", 256)


def test_vgg16_matches_empirical():
    # full width would take ~10 s on two CPU cores; the width-1 copy has the same geometry (see _positive_copy)
    _check_against_empirical(_arch("vgg16"), "features", 224, thin=True)
    _check_against_empirical(_arch("vgg16"), "features.16", 96, thin=True)


def test_resnet18_matches_empirical():
    model = _arch("resnet18")
    _check_against_empirical(model, "layer2", 128)
    _check_against_empirical(model, "layer4", 448, thin=True)
    _check_against_empirical(model, "layer3.1.conv1", 256, thin=True)


def test_efficientnet_lite0_matches_empirical():
    # Depthwise convolutions, TensorFlow SAME padding (asymmetric at even sizes, symmetric at odd ones) and
    # MBConv's identity skips; full width (SameConv2d and groups would not survive the width-1 copy).
    with torch.device("meta"):
        model = EfficientNetLite0()
    _check_against_empirical(model, "stem", 64)
    _check_against_empirical(model, "blocks.7", 224)  # 147 px, the centre unit's field fits inside
    _check_against_empirical(model, "blocks.4", 99)  # odd size: SAME pads (1, 1) at the 3 x 3 stride-2 convs
    _check_against_empirical(model, "head", 224, expect_inside=False)


def test_efficientnet_lite0_stage_resolutions():
    # The module docstring's table: stride 2, 4, 8, 16, 32 at 224 x 224 gives 112, 56, 28, 14, 7.
    with torch.device("meta"):
        model = EfficientNetLite0()
    expected = {"stem": 112, "blocks.0": 112, "blocks.2": 56, "blocks.4": 28, "blocks.7": 14, "blocks.10": 14,
                "blocks.14": 7, "blocks.15": 7, "head": 7}
    x, shapes = model.stem(torch.empty(1, 3, 224, 224, device="meta")), {}
    shapes["stem"] = x.shape[-2:]
    for i, block in enumerate(model.blocks):
        x = block(x)
        shapes[f"blocks.{i}"] = x.shape[-2:]
    shapes["head"] = model.head(x).shape[-2:]
    for layer, size in expected.items():
        assert shapes[layer] == (size, size), layer
        assert receptive_field(model, layer, input_size=224).output_size == (size, size), layer
    with pytest.raises(ValueError, match="input_size"):
        receptive_field(model, "stem")


def test_resnet_shortcut_branch_layer():
    # A layer inside the shortcut: the branch starts from the block's input (layer1's output).
    _check_against_empirical(_arch("resnet18"), "layer2.0.downsample.0", 96, expect_inside=False, thin=True)


def test_receptive_field_bad_input():
    model = SmallCNN()
    with pytest.raises(ValueError, match="not a layer of the model"):
        receptive_field(model, "features.99")
    with pytest.raises(ValueError, match="input_size"):
        receptive_field(model, "fc")
    with pytest.raises(ValueError, match="fully connected"):
        receptive_field(model, "fc", input_size=64)
    with pytest.raises(ValueError, match="not a submodule"):
        receptive_field(model, nn.Conv2d(3, 3, 3))
    with pytest.raises(TypeError, match="does not know"):
        receptive_field(nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(3, 3, 3)), "1")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        receptive_field("model", "features")


def test_receptive_field_box_and_center():
    rf = ReceptiveField(size=(5, 5), jump=(2, 2), start=(-2, -2))
    assert rf.box(0, 0) == (-2, -2, 3, 3)
    assert rf.box(0, 0, image_size=10) == (0, 0, 3, 3)
    assert rf.box(3, 1, image_size=(10, 20)) == (0, 4, 5, 9)
    assert rf.center(3, 1) == (6.0, 2.0)


# ----------------------------------------------------------------------------------------------- filters


def test_normalize_filters_is_per_filter_min_max():
    w = torch.randn(6, 3, 5, 5) * torch.arange(1, 7).view(6, 1, 1, 1)
    n = normalize_filters(w)
    flat = n.flatten(1)
    assert_close(flat.amin(1), torch.zeros(6))
    assert_close(flat.amax(1), torch.ones(6))
    # an affine map of each filter: the normalized filter is unchanged
    assert_close(normalize_filters(3 * w + 7), n, atol=1e-5, rtol=1e-5)
    assert_close(normalize_filters(torch.full((1, 3, 2, 2), 4.0)), torch.full((1, 3, 2, 2), 0.5))


def test_filter_grid_layout_and_content():
    conv = nn.Conv2d(3, 10, 3)
    grid = filter_grid(conv, nrow=4, scale=2, padding=1)
    # torchvision.utils.make_grid layout: 3 rows x 4 columns of 6x6 tiles with 1-pixel gaps
    assert grid.shape == (3 * 7 + 1, 4 * 7 + 1, 3)
    assert grid.min() >= 0 and grid.max() <= 1
    first = normalize_filters(conv.weight)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(grid[1:7:2, 1:7:2], first, atol=1e-6)  # nearest upscaling keeps each weight
    assert filter_grid(nn.Sequential(nn.ReLU(), conv), nrow=4, scale=2).shape == grid.shape
    model = SmallCNN()
    assert first_conv(model) is model.features[0]
    with pytest.raises(ValueError, match="3 input channels"):
        filter_grid(nn.Conv2d(4, 8, 3))
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        first_conv(nn.Sequential(nn.Linear(2, 2)))


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


# ----------------------------------------------------------------------------- activation maximization


def test_total_variation_by_hand():
    x = torch.tensor([[[[1.0, 3.0, 0.0], [1.0, 1.0, 2.0]]]])
    # horizontal |3-1| + |0-3| + |1-1| + |2-1| = 6; vertical |1-1| + |1-3| + |2-0| = 4
    assert_close(total_variation(x), torch.tensor([10.0]))
    y = torch.rand(2, 3, 5, 6)
    manual = (y[:, :, 1:] - y[:, :, :-1]).abs().sum((1, 2, 3)) + (y[..., 1:] - y[..., :-1]).abs().sum((1, 2, 3))
    assert_close(total_variation(y), manual)
    assert_close(total_variation(torch.full((1, 3, 4, 4), 0.3)), torch.zeros(1))


def test_ascent_objective_formula():
    score = torch.tensor([2.0, -1.0])
    image = torch.rand(2, 3, 4, 4)
    l2, tv = 0.1, 0.01
    expected = score - l2 * (image**2).sum((1, 2, 3)) - tv * total_variation(image)
    assert_close(ascent_objective(score, image, l2=l2, tv=tv), expected)
    assert_close(ascent_objective(score, image), score)
    with pytest.raises(ValueError, match="l2 must be >= 0"):
        ascent_objective(score, image, l2=-1.0)
    with pytest.raises(ValueError, match="one value per image"):
        ascent_objective(score[:1], image)


def test_one_sgd_step_is_plain_gradient_ascent():
    # On a tiny linear "network" the step is known in closed form: S(x) = <v, x>, so
    # grad J = v - 2 l2 I - tv * grad R_TV(I), and I_1 = clip(I_0 + lr * grad J, -0.5, 0.5).
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 2))
    init = torch.rand(1, 3, 6, 6) * 0.6 + 0.2
    lr, l2, tv = 0.05, 0.3, 0.02
    res = activation_maximization(net, 1, steps=1, lr=lr, l2=l2, tv=tv, init=init, image_size=6,
                                  optimizer="sgd", progress=False)  # fmt: skip
    image = (init - 0.5).requires_grad_(True)
    penalty = l2 * (image**2).sum() + tv * (
        (image[:, :, 1:] - image[:, :, :-1]).abs().sum() + (image[..., 1:] - image[..., :-1]).abs().sum()
    )
    (g_pen,) = torch.autograd.grad(penalty, image)
    v = net[1].weight[1].detach().view(1, 3, 6, 6)
    expected = (init - 0.5 + lr * (v - g_pen)).clamp(-0.5, 0.5) + 0.5
    assert_close(res.images, expected, atol=1e-6, rtol=1e-6)
    assert_close(res.start_activation, net(init)[:, 1].detach())


def _zoo_model():
    zoo = pytest.importorskip("course_lib.zoo")
    return zoo.load("shapes_gap", device="cpu")


def test_ascent_raises_units_five_fold_on_the_zoo_model():
    model = _zoo_model()
    init = (0.5 + 0.01 * torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    with torch.no_grad():
        start = model.features(init)[0, :, 8, 8]
    channels = start.argsort(descending=True)[:4].tolist()  # the most active units: the hardest to multiply
    kwargs = dict(steps=40, target_layer="features", position=(8, 8), init=init, seed=0, progress=False)
    res = activation_maximization(model, channels, **kwargs)
    assert_close(res.start_activation, start[channels])
    assert bool((start[channels] > 0).all())
    assert bool((res.activation >= 5 * res.start_activation).all()), (res.start_activation, res.activation)
    with torch.no_grad():  # the reported activation is the unit's value on the returned images
        assert_close(res.activation, model.features(res.images)[torch.arange(4), channels, 8, 8], atol=1e-3, rtol=1e-4)
    again = activation_maximization(model, channels, **kwargs)
    assert torch.equal(res.images, again.images)


def test_ascent_raises_class_scores_and_regularizers_act():
    model = _zoo_model()
    kwargs = dict(steps=40, lr=0.05, seed=1, progress=False)
    plain = activation_maximization(model, [0, 1, 2, 3, 4], **kwargs)
    with torch.no_grad():
        assert_close(plain.activation, model(plain.images).diag(), atol=1e-3, rtol=1e-4)
    assert bool((plain.activation > plain.start_activation + 1).all())
    # the predicted class of each synthesized image is the class it was optimized for
    assert model(plain.images).argmax(1).tolist() == [0, 1, 2, 3, 4]
    smooth = activation_maximization(model, [0, 1, 2, 3, 4], tv=0.05, **kwargs)
    assert bool((smooth.tv < plain.tv).all())
    small = activation_maximization(model, [0, 1, 2, 3, 4], l2=0.05, **kwargs)
    assert bool(((small.images - 0.5).pow(2).sum((1, 2, 3)) < (plain.images - 0.5).pow(2).sum((1, 2, 3))).all())
    jittered = activation_maximization(model, [0, 1, 2, 3, 4], jitter=4, **kwargs)
    assert not torch.equal(jittered.images, plain.images)


def test_ascent_for_a_unit_leaves_the_model_as_it_was():
    model = SmallCNN().train()
    res = activation_maximization(model, 3, steps=5, target_layer="features.9", position=(4, 5), progress=False)
    assert res.images.shape == (1, 3, 64, 64) and res.history.shape == (5, 1)
    assert bool((res.images >= 0).all() and (res.images <= 1).all())
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    other = activation_maximization(model, 3, steps=5, target_layer="features.9", position=(4, 5), seed=1, progress=False)
    assert not torch.equal(res.images, other.images)


def test_per_target_weights_equal_separate_runs():
    # float64: in float32 the batched and the separate runs drift apart by ~2e-5 after a few steps, by an
    # amount that depends on the CPU's kernels; in float64 the same drift is ~1e-13, so 1e-9 tests the logic.
    model = SmallCNN().double().eval()
    init = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    kwargs = dict(steps=4, lr=0.05, target_layer="features", progress=False)
    both = activation_maximization(model, [3, 3], l2=[0.0, 0.01], tv=[0.02, 0.0], init=init, **kwargs)
    first = activation_maximization(model, 3, l2=0.0, tv=0.02, init=init[:1], **kwargs)
    second = activation_maximization(model, 3, l2=0.01, tv=0.0, init=init[1:], **kwargs)
    assert both.images.dtype == torch.float64
    assert_close(both.images, torch.cat([first.images, second.images]), atol=1e-9, rtol=1e-9)
    with pytest.raises(ValueError, match=r"l2 must be a number or hold one weight per image \(2\)"):
        activation_maximization(model, [3, 3], l2=[0.1, 0.1, 0.1], init=init, **kwargs)
    with pytest.raises(ValueError, match="tv must be >= 0"):
        activation_maximization(model, [3, 3], tv=[0.1, -0.1], init=init, **kwargs)


def test_ascent_bad_input():
    model = SmallCNN()
    with pytest.raises(ValueError, match="not a layer of the model"):
        activation_maximization(model, 0, steps=1, target_layer="features.99", progress=False)
    with pytest.raises(ValueError, match=r"targets must be in \[0, 64\)"):
        activation_maximization(model, 64, steps=1, target_layer="features", progress=False)
    with pytest.raises(ValueError, match=r"targets must be in \[0, 5\) \(the output has 5 classes\)"):
        activation_maximization(model, 5, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"position\[0\] must be <= 15"):
        activation_maximization(model, 0, steps=1, target_layer="features", position=(16, 0), progress=False)
    with pytest.raises(ValueError, match="position needs a target_layer"):
        activation_maximization(model, 0, steps=1, position=(1, 1), progress=False)
    with pytest.raises(ValueError, match="init must have size 3 in dimension 1"):
        activation_maximization(model, 0, steps=1, init=torch.rand(1, 1, 64, 64), progress=False)
    with pytest.raises(ValueError, match=r"init must have values in \[0, 1\]"):
        activation_maximization(model, 0, steps=1, init=torch.rand(1, 3, 64, 64) + 2, progress=False)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        activation_maximization(model, 0, steps=0, progress=False)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        activation_maximization(model, 0, steps=1, optimizer="lbfgs", progress=False)
    with pytest.raises(TypeError, match="targets must be an int"):
        activation_maximization(model, 1.5, steps=1, progress=False)


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


@pytest.mark.cuda
def test_activation_maximization_cpu_gpu_parity():
    model = SmallCNN().eval()
    kwargs = dict(steps=3, lr=0.01, l2=0.01, tv=0.01, jitter=2, seed=0, target_layer="features", optimizer="sgd", progress=False)
    cpu = activation_maximization(model, [1, 2], **kwargs)
    gpu = activation_maximization(copy.deepcopy(model).cuda(), [1, 2], **kwargs)
    assert gpu.images.device.type == "cuda"
    assert_close(gpu.images.cpu(), cpu.images, atol=1e-3, rtol=1e-3)
    assert_close(gpu.activation.cpu(), cpu.activation, atol=1e-3, rtol=1e-3)
