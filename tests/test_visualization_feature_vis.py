"""course_lib.visualization.feature_vis: the Fourier parameterization, the robust transform and the ascent,
checked against properties and against ``activation_maximization``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.visualization import activation_maximization
from course_lib.visualization.feature_vis import FourierImage, feature_visualization, robust_transform


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3)).eval()


def test_fourier_image_zero_spectrum_is_mid_grey():
    img = FourierImage(2, 8, 10)
    with torch.no_grad():
        img.spectrum.zero_()
    assert img().shape == (2, 3, 8, 10)
    assert torch.equal(img(), torch.full((2, 3, 8, 10), 0.5))  # sigmoid(0)


def test_fourier_image_one_frequency_is_a_cosine_grating():
    """A single non-zero coefficient at (0, 2) in one decorrelated channel is a horizontal cosine of period
    W/2 after the inverse FFT (numpy's irfft2 as the independent reference)."""
    img = FourierImage(1, 8, 8)
    with torch.no_grad():
        img.spectrum.zero_()
        img.spectrum[0, 0, 0, 2, 0] = 1.0
    z = torch.view_as_complex(img.spectrum.detach()) * img.scale
    import numpy as np

    ref = np.fft.irfft2(z[0, 0].numpy(), s=(8, 8), norm="ortho") / 4
    col = torch.tensor(ref[0])
    assert torch.allclose(col, col[0] * torch.cos(2 * torch.pi * 2 * torch.arange(8) / 8), atol=1e-6)


def test_robust_transform_identity_when_ranges_are_zero():
    x = torch.rand(2, 3, 12, 12)
    y = robust_transform(x, torch.Generator().manual_seed(0), shift=0, scale=0.0, degrees=0.0)
    assert torch.allclose(y, x, atol=1e-5)


def test_robust_transform_integer_shift_matches_roll_inside():
    """A shift of exactly +2 pixels in x moves the content by two columns (away from the reflected border)."""
    x = torch.rand(1, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    # draw t so that dx = (2 t - 1) * shift = 2 with shift = 4: t = 0.75; emulate by a fixed generator state
    theta = torch.tensor([[1.0, 0.0, 2 * 2 / 16], [0.0, 1.0, 0.0]])
    grid = F.affine_grid(theta[None], [1, 3, 16, 16], align_corners=False)
    shifted = F.grid_sample(x, grid, align_corners=False)
    assert torch.allclose(shifted[..., :, :-2], x[..., :, 2:], atol=1e-5)
    assert robust_transform(x, g).shape == x.shape


def test_pixel_arm_equals_activation_maximization():
    net = _net()
    ours = feature_visualization(net, [0, 2], steps=5, lr=0.05, param="pixel", robust=False, image_size=16, seed=3)
    ref = activation_maximization(net, [0, 2], steps=5, lr=0.05, image_size=16, seed=3)
    assert torch.allclose(ours.images, ref.images, atol=1e-5)
    assert torch.allclose(ours.score, ref.activation.cpu(), atol=1e-4)


def test_ascent_raises_the_score_and_records_checkpoints():
    net = _net()
    r = feature_visualization(net, 1, steps=6, image_size=16, checkpoints=(1, 6), keep_checkpoint_images=True)
    with torch.no_grad():
        start = net(FourierImage(1, 16, 16, seed=0)())[0, 1]
    assert float(r.score[0]) > float(start)
    assert sorted(r.checkpoints) == [1, 6] and torch.allclose(r.checkpoints[6], r.score)
    assert r.checkpoint_images[6].shape == (1, 3, 16, 16)


@pytest.mark.parametrize("param", ["pixel", "fourier"])
def test_model_parameters_keep_their_grad_and_mode(param):
    """The ascent differentiates with respect to the image only: the model's .grad and modes are untouched."""
    net = _net().train()
    net[0].weight.grad = torch.full_like(net[0].weight, 7.0)
    feature_visualization(net, 0, steps=3, param=param, robust=param == "fourier", l2=0.1, tv=0.1, image_size=16)
    assert torch.equal(net[0].weight.grad, torch.full_like(net[0].weight, 7.0))
    assert all(p.grad is None for name, p in net.named_parameters() if name != "0.weight")
    assert all(m.training for m in net.modules())


@pytest.mark.parametrize("kwargs, match", [({"param": "pixels"}, "param"), ({"objective": "prob"}, "objective"),
                                           ({"steps": 0}, "steps"), ({"l2": -1.0}, "l2"),
                                           ({"checkpoints": (9,)}, "checkpoints")])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        feature_visualization(_net(), 0, **{"steps": 4, "image_size": 16, **kwargs})
