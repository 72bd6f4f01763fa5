"""course_lib.models: shapes, the attributes other chapters rely on, normalization choices, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.models import NORMS, SmallCNN, conv_backbone, count_parameters, make_norm
from tests.helpers import assert_close


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("pool", ["avg", "max"])
def test_shapes_and_attributes(norm, pool):
    model = SmallCNN(num_classes=5, norm=norm, pool=pool)
    x = torch.rand(3, 3, 64, 64)
    assert model(x).shape == (3, 5)
    fmap = model.features(x)
    assert fmap.shape == (3, 64, 16, 16)  # input / 4, 2 * width channels
    assert isinstance(model.features[-1], nn.ReLU) and bool((fmap >= 0).all())
    assert isinstance(model.fc, nn.Linear) and model.fc.in_features == model.feature_channels == 64
    assert model.backbone is model.features
    assert 50_000 <= count_parameters(model) <= 150_000
    expected_pool = nn.AdaptiveAvgPool2d if pool == "avg" else nn.AdaptiveMaxPool2d
    assert isinstance(model.pool, expected_pool)


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_forward_is_features_pool_fc(pool):
    model = SmallCNN(pool=pool).eval()
    x = torch.rand(2, 3, 48, 48)
    fmap = model.features(x)
    pooled = fmap.mean(dim=(2, 3)) if pool == "avg" else fmap.amax(dim=(2, 3))
    assert_close(model(x), pooled @ model.fc.weight.T + model.fc.bias)


def test_receptive_field_is_38_pixels():
    # property: an output position depends on exactly a 38×38 window of the input (gradient support)
    model = SmallCNN(norm="none").eval()
    x = torch.rand(1, 3, 96, 96, requires_grad=True)
    model.features(x)[0, :, 12, 12].sum().backward()
    rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 3)) > 0).flatten()
    cols = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 2)) > 0).flatten()
    assert int(rows.max() - rows.min() + 1) == 38 and int(cols.max() - cols.min() + 1) == 38


def test_norm_layers_are_the_torch_ones():
    assert isinstance(make_norm("batch", 8), nn.BatchNorm2d)
    gn = make_norm("group", 12)
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 6  # largest divisor of 12 not above 8
    ln = make_norm("layer", 8)
    assert isinstance(ln, nn.GroupNorm) and ln.num_groups == 1
    assert isinstance(make_norm("none", 8), nn.Identity)
    convs = [m for m in conv_backbone(16, "none").modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is not None for c in convs)  # without a normalization the convs keep their bias
    convs = [m for m in conv_backbone(16, "batch").modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is None for c in convs)


def test_layer_norm_output_is_independent_of_the_rest_of_the_batch():
    # property: GroupNorm/LayerNorm statistics are per sample, BatchNorm's (in training) per batch
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32, dtype=torch.float64)  # float64: "independent" means equal to ~1e-12
    for norm, independent in (("layer", True), ("group", True), ("batch", False)):
        model = SmallCNN(norm=norm).double().train()
        alone = model(x[:2])
        together = model(torch.cat([x[:2], torch.rand(2, 3, 32, 32, dtype=torch.float64) * 3]))[:2]
        assert torch.allclose(alone, together, atol=1e-9, rtol=1e-9) == independent, norm


def test_bad_input():
    with pytest.raises(ValueError, match="norm must be one of"):
        SmallCNN(norm="instance")
    with pytest.raises(ValueError, match="pool must be one of"):
        SmallCNN(pool="sum")
    with pytest.raises(ValueError, match="width must be even"):
        SmallCNN(width=15)
    with pytest.raises(ValueError, match="blocks must be three positive ints"):
        SmallCNN(blocks=(1, 0, 2))
    with pytest.raises(ValueError, match=r"x must have size 3 in dimension 1.*\(2, 1, 64, 64\)"):
        SmallCNN()(torch.rand(2, 1, 64, 64))
    with pytest.raises(ValueError, match=r"x must be 4-D.*\(3, 64, 64\)"):
        SmallCNN()(torch.rand(3, 64, 64))
    with pytest.raises(TypeError, match="num_classes must be an integer"):
        SmallCNN(num_classes=5.0)


@pytest.mark.cuda
@pytest.mark.parametrize("norm", NORMS)
def test_cpu_cuda_parity(norm):
    model = SmallCNN(norm=norm, pool="max").eval()
    x = torch.rand(4, 3, 64, 64)
    expected = model(x)
    actual = model.cuda()(x.cuda())
    assert_close(actual.cpu(), expected, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------ frozen features and heads
def test_frozen_features_equal_one_eval_forward_and_restore_the_mode():
    from course_lib.models import frozen_features

    torch.manual_seed(0)
    trunk = conv_backbone(8).train()
    x = torch.rand(5, 3, 32, 32)
    with torch.no_grad():
        expected = trunk.eval()(torch.nn.functional.interpolate(x, size=(16, 16), mode="bilinear",
                                                                align_corners=False, antialias=True))
    trunk.train()
    got = frozen_features(trunk, x, size=16, batch_size=2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)  # BN in eval: batching changes nothing
    assert trunk.training and all(m.training for m in trunk.modules())
    assert not got.requires_grad


def test_frozen_features_rejects_bad_arguments():
    from course_lib.models import frozen_features

    with pytest.raises(TypeError, match="extractor"):
        frozen_features(3, torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="batch_size"):
        frozen_features(conv_backbone(8), torch.rand(1, 3, 8, 8), batch_size=0)


def test_feature_head_class_scores_ignore_position_but_boxes_do_not():
    from course_lib.models import FeatureHead

    torch.manual_seed(0)
    head = FeatureHead(16, 4, pooled=5, spatial=4, neck=8).eval()
    a = torch.rand(3, 16, 4, 4)
    shuffled = a.flatten(2)[..., torch.randperm(16)].view_as(a)  # the same features at other positions
    with torch.no_grad():
        z1, b1 = head(a)
        z2, b2 = head(shuffled)
    torch.testing.assert_close(z1, z2, rtol=1e-5, atol=1e-6)  # GAP: what, not where
    assert (b1 - b2).abs().max() > 1e-3  # the flattened map: where
    assert z1.shape == (3, 5) and b1.shape == (3, 4)
    with pytest.raises(ValueError, match="features"):
        head(torch.rand(3, 8, 4, 4))


def test_he_init_variance_matches_kaiming_formula():
    from course_lib.models import he_init

    torch.manual_seed(0)
    conv = he_init(nn.Sequential(nn.Conv2d(64, 256, 3)))[0]
    fan_in = 64 * 3 * 3
    # N(0, 2 / fan_in): the sample variance of 147k weights has relative standard error sqrt(2 / 147k) = 0.4%
    assert abs(float(conv.weight.detach().var()) / (2 / fan_in) - 1) < 0.03
    assert float(conv.bias.detach().abs().max()) == 0.0


def test_he_init_rejects_a_non_module():
    from course_lib.models import he_init

    with pytest.raises(TypeError, match="model"):
        he_init("not a module")
