"""Activation maximization (course_lib.visualization.ascent): formulas by hand, ascent on the zoo model, bad
input."""


from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from course_lib.models import SmallCNN
from course_lib.visualization import (
    activation_maximization,
    ascent_objective,
    total_variation,
)
from tests.helpers import assert_close

# ----------------------------------------------------------------------------- activation maximization


def test_total_variation_by_hand():
    x = torch.tensor([[[[1.0, 3.0, 0.0], [1.0, 1.0, 2.0]]]])
    # horizontal |3-1| + |0-3| + |1-1| + |2-1| = 6; vertical |1-1| + |1-3| + |2-0| = 4
    assert_close(total_variation(x), torch.tensor([10.0]))
    y = torch.rand(2, 3, 5, 6)
    manual = (y[:, :, 1:] - y[:, :, :-1]).abs().sum((1, 2, 3)) + (y[..., 1:] - y[..., :-1]).abs().sum((1, 2, 3))
    assert_close(total_variation(y), manual)
    assert_close(total_variation(torch.full((1, 3, 4, 4), 0.3)), torch.zeros(1))


def test_ascent_objective_on_a_hand_computed_case():
    score = torch.tensor([2.0, -1.0])
    # image 0: one bright pixel, |I|^2 = 1, TV = 1 (across) + 1 (down) = 2; image 1: flat 0.5, |I|^2 = 1, TV = 0
    image = torch.stack([torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]), torch.full((1, 2, 2), 0.5)])
    # J = S - 0.1 |I|^2 - 0.01 TV: 2 - 0.1 - 0.02 = 1.88 and -1 - 0.1 - 0 = -1.1
    assert_close(ascent_objective(score, image, l2=0.1, tv=0.01), torch.tensor([1.88, -1.1]))
    # one weight per image: image 0 pays only the L2 term, image 1 only the (zero) TV term
    assert_close(ascent_objective(score, image, l2=[0.1, 0.0], tv=[0.0, 1.0]), torch.tensor([1.9, -1.0]))
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
def test_activation_maximization_cpu_gpu_parity():
    model = SmallCNN().eval()
    kwargs = dict(steps=3, lr=0.01, l2=0.01, tv=0.01, jitter=2, seed=0, target_layer="features", optimizer="sgd", progress=False)
    cpu = activation_maximization(model, [1, 2], **kwargs)
    gpu = activation_maximization(copy.deepcopy(model).cuda(), [1, 2], **kwargs)
    assert gpu.images.device.type == "cuda"
    assert_close(gpu.images.cpu(), cpu.images, atol=1e-3, rtol=1e-3)
    assert_close(gpu.activation.cpu(), cpu.activation, atol=1e-3, rtol=1e-3)
