"""course_lib.studies.bn_training: data and models built as their docstrings say (values from sklearn/torch)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from course_lib.studies import bn_training


def test_digits_16_is_sklearns_digits_upsampled_and_split():
    (xtr, ytr), (xte, yte) = bn_training.digits_16()
    assert xtr.shape == (1000, 1, 16, 16) and xte.shape == (797, 1, 16, 16)
    assert float(torch.cat([xtr, xte]).min()) >= 0 and float(torch.cat([xtr, xte]).max()) <= 1
    x, y = load_digits(return_X_y=True)
    order = torch.randperm(1797, generator=torch.Generator().manual_seed(0))
    first = torch.tensor(x[int(order[0])], dtype=torch.float32).view(1, 1, 8, 8) / 16
    expected = F.interpolate(first, size=16, mode="bilinear", align_corners=False).clamp(0, 1)
    torch.testing.assert_close(xtr[:1], expected)
    assert int(ytr[0]) == int(y[int(order[0])])
    assert sorted(torch.cat([ytr, yte]).tolist()) == sorted(y.tolist())


@pytest.mark.parametrize("variant, norm_type", [("batch", torch.nn.BatchNorm2d), ("group", torch.nn.GroupNorm),
                                                ("none", torch.nn.Identity), ("none_he", torch.nn.Identity)])
def test_bn_training_models(variant, norm_type):
    net = bn_training.make_model(variant, seed=0)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 9 and convs[0].in_channels == 1 and net.fc.out_features == 10
    assert isinstance(net.features[1], norm_type)
    if variant == "none_he":  # He: biases zero, weight variance 2 / fan_in
        assert all(float(c.bias.detach().abs().max()) == 0 for c in convs)
        fan_in = convs[-1].in_channels * 9
        assert abs(float(convs[-1].weight.detach().var()) / (2 / fan_in) - 1) < 0.1
    assert net(torch.rand(2, 1, 16, 16)).shape == (2, 10)
