"""Tiny fixed-weight models and inputs whose saliency maps and metrics are computed by hand in the tests.

Shared by the saliency test files (no test file imports another)."""

from __future__ import annotations

import torch
from torch import nn

from course_lib.models import SmallCNN
from tests.helpers import assert_close

__all__ = ["tiny_model", "X_TINY", "A0", "A1", "small_model", "X_SMALL", "T_SMALL", "SquareModel", "RegionModel",
           "MeanModel", "check_batch_equals_single_images"]


def tiny_model(inplace_relu: bool = False) -> nn.Sequential:
    r"""x (1 channel, 2×2) -> 1×1 conv to two maps A^0 = x, A^1 = 5 - x -> flatten -> linear(8 -> 2).

    The class scores are linear in A, so dy^c/dA^k_ij is the linear layer's weight V^c_kij:
      class 0: V^0 = [[1, 1], [1, 1]] on A^0, [[0, 0], [0, -2]] on A^1
      class 1: V^1 = [[3, 0], [0, 0]] on A^0, [[0, 0], [0, 2]] on A^1
    """
    conv = nn.Conv2d(1, 2, 1)
    lin = nn.Linear(8, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, 5.0]))
        lin.weight.copy_(
            torch.tensor([[1, 1, 1, 1, 0, 0, 0, -2], [3, 0, 0, 0, 0, 0, 0, 2]], dtype=torch.float32)
        )
        lin.bias.zero_()
    layers = [conv]
    if inplace_relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers, nn.Flatten(), lin)


X_TINY = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
A0 = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
A1 = torch.tensor([[4.0, 3.0], [2.0, 1.0]])


def small_model() -> nn.Sequential:
    r"""A float64 network whose target layer ``"3"`` (a Softplus) has the input's 10×10 resolution and no
    constant feature map: Score-CAM's masks need no upsampling, so torchcam's order (normalize, then upsample)
    and ours (upsample, then normalize) give the same masks, and every map has a normalized mask."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 5, 3, padding=1), nn.Softplus(),
        nn.Conv2d(5, 7, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(7, 4),
    ).double().eval()


X_SMALL = torch.rand(3, 3, 10, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
T_SMALL = [0, 2, 3]


class SquareModel(nn.Module):
    """A = x (the target layer ``a``, 1 channel, 1×3); y_c = 1/2 sum_j v_cj A_j^2, so dy_c/dA_j = v_cj A_j."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Identity()
        self.register_buffer("v", torch.tensor([[1.0, -2.0, 0.5], [0.3, 1.0, -1.0]]))

    def forward(self, x):
        a = self.a(x).flatten(1)
        return 0.5 * (a[:, None, :] ** 2 * self.v[None]).sum(-1)


class RegionModel(nn.Module):
    """Softmax probability of class 0 = the mean of channel 0 over rows r0:r1 and columns c0:c1."""

    def __init__(self, rows=(2, 6), cols=(8, 14)):
        super().__init__()
        self.rows, self.cols = rows, cols

    def forward(self, x):
        m = x[:, 0, self.rows[0] : self.rows[1], self.cols[0] : self.cols[1]].mean((1, 2)).clamp(1e-6, 1 - 1e-6)
        return torch.stack([m.log(), (1 - m).log()], dim=1)


class MeanModel(nn.Module):
    """Softmax probability of class 0 = the mean of channel 0 over ``region`` (everything by default);
    ``invert`` makes it one minus that mean."""

    def __init__(self, region=(slice(None), slice(None)), invert: bool = False):
        super().__init__()
        self.region, self.invert = region, invert

    def forward(self, x):
        m = x[:, 0][(slice(None), *self.region)].mean((1, 2))
        m = 1 - m if self.invert else m
        m = m.double().clamp(1e-12, 1 - 1e-12)
        return torch.stack([m.log(), (1 - m).log()], dim=1)


def check_batch_equals_single_images(method) -> None:
    """Assert that ``method(model, "features")`` gives each image of a batch the map it gives the image alone.

    float64: batched and single-image float32 convolutions differ by ~1e-7 relative, and the per-image
    min-max normalization can magnify that by the inverse of a map's range; in float64 1e-9 is a real test.
    """
    model = SmallCNN(num_classes=5, width=8, norm="batch").double().eval()
    x = torch.rand(4, 3, 32, 32, dtype=torch.float64)
    together = method(model, "features")(x, torch.tensor([0, 1, 2, 3]))
    alone = torch.cat([method(model, "features")(x[i : i + 1], i) for i in range(4)])
    assert together.dtype == torch.float64
    assert_close(together, alone, atol=1e-9, rtol=1e-9)
