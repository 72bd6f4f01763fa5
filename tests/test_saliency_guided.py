"""GuidedBackprop and GuidedGradCAM against captum's GuidedBackprop / GuidedGradCam, and by hand on a tiny net."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.saliency import GradCAM, GuidedBackprop, GuidedGradCAM
from tests.helpers import assert_close

captum_attr = pytest.importorskip("captum.attr")


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1, stride=2), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    ).eval()


def test_guided_backprop_equals_captum():
    net, x, t = _net(), torch.randn(3, 3, 16, 16), torch.tensor([0, 2, 3])
    ours = GuidedBackprop(net)(x, t, normalize=False)
    theirs = captum_attr.GuidedBackprop(net).attribute(x.clone().requires_grad_(True), target=t)
    assert_close(ours, theirs.detach().abs().amax(1), atol=1e-6, rtol=1e-5)


def test_guided_gradcam_equals_captum_with_bilinear_upsampling():
    net, x, t = _net(1), torch.randn(2, 3, 16, 16), torch.tensor([1, 3])
    ours = GuidedGradCAM(net, net[4])(x, t, normalize=False)
    theirs = captum_attr.GuidedGradCam(net, net[4]).attribute(
        x.clone().requires_grad_(True), target=t, interpolate_mode="bilinear")
    assert_close(ours, theirs.detach().abs().amax(1), atol=1e-6, rtol=1e-5)


def test_guided_differs_from_the_plain_gradient_and_hooks_are_removed():
    net, x = _net(2), torch.randn(2, 3, 16, 16)
    xg = x.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(net(xg)[:, 1].sum(), xg)
    guided = GuidedBackprop(net)(x, 1, normalize=False)
    assert not torch.allclose(guided, plain.abs().amax(1))
    assert all(not m._forward_hooks for m in net.modules())
    # after the call the model backpropagates as before
    xg = x.clone().requires_grad_(True)
    (again,) = torch.autograd.grad(net(xg)[:, 1].sum(), xg)
    assert_close(again, plain)


def test_guided_by_hand_one_rectifier():
    # y = w2 . ReLU(W1 x): guided gradient = W1^T (1[W1 x > 0] * ReLU(w2))
    w1 = torch.tensor([[1.0, -1.0], [2.0, 1.0], [-1.0, 0.5]])
    w2 = torch.tensor([[1.0, -2.0, 3.0]])
    lin1, lin2 = nn.Linear(2, 3, bias=False), nn.Linear(3, 1, bias=False)
    lin1.weight.data, lin2.weight.data = w1, w2

    class Image(nn.Module):  # (N, 2, 1, 1) "images" through the two linear layers
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1, bias=False)
            self.conv.weight.data = torch.eye(2)[:, :, None, None]
            self.body = nn.Sequential(nn.Flatten(), lin1, nn.ReLU(), lin2)

        def forward(self, x):
            return self.body(self.conv(x))

    x = torch.tensor([[1.0, 0.5]])[:, :, None, None]
    z = w1 @ x[0, :, 0, 0]
    expected = w1.T @ ((z > 0).float() * w2[0].clamp_min(0))
    got = GuidedBackprop(Image())(x, 0, upsample=False, normalize=False)
    assert_close(got[0, 0, 0], expected.abs().max())


def test_guided_gradcam_is_guided_times_upsampled_gradcam():
    net, x = _net(3), torch.randn(2, 3, 16, 16)
    cam = torch.nn.functional.interpolate(GradCAM(net, net[4])(x, 2, upsample=False, normalize=False)[:, None],
                                          size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    assert cam.max() > 0
    guided = GuidedBackprop(net)(x, 2, normalize=False)
    assert_close(GuidedGradCAM(net, net[4])(x, 2, normalize=False), guided * cam, atol=1e-7, rtol=1e-5)
    assert repr(GuidedGradCAM(net, net[4])).startswith("GuidedGradCAM(Sequential, target_layer=")


def test_guided_gradcam_rejects_a_bad_layer():
    with pytest.raises((ValueError, TypeError), match="target_layer"):
        GuidedGradCAM(_net(), "nope")
