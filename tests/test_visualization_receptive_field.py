"""Receptive fields (course_lib.visualization.receptive_field).

Receptive fields are checked against an *empirical* field: the non-zero support of the input gradient of one
unit, in a copy of the network whose weights are all positive (so no two paths cancel), whose batch norms are
the identity and whose max-pools are average pools of the same geometry (a max-pool sends the gradient to one
pixel per window, so its support depends on the data; an average pool of the same kernel, stride and padding
covers exactly the pixels that *can* win the max).
"""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
import torchvision
from torch import nn

from course_lib.models import SmallCNN
from course_lib.pretrained import EfficientNetLite0, Normalize
from course_lib.visualization import (
    ReceptiveField,
    receptive_field,
)

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
