"""LayerCAM and Score-CAM: hand-computed cases, torchcam 0.5.0 cross-checks, batch and state properties."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_lib.models import SmallCNN
from course_lib.saliency import GradCAM, LayerCAM, ScoreCAM
from tests import test_saliency as saliency_tests
from tests.helpers import assert_close
from tests.test_saliency import A0, A1, X_TINY, tiny_model

torchcam = pytest.importorskip("torchcam.methods")  # pinned in requirements.txt (torchcam==0.5.0)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


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


# ---------------------------------------------------------------------- LayerCAM
@pytest.mark.parametrize("target, want", [(0, A0), (1, torch.tensor([[3.0, 0.0], [0.0, 2.0]]))])
def test_layercam_on_tiny_model_matches_hand_computation(target, want):
    # dy^c/dA is the linear weight V^c (tests/test_saliency.py): class 0 keeps V^0 = 1 on A^0 and drops the
    # negative -2 on A^1, so the map is A^0; class 1 keeps 3 at A^0_00 = 1 and 2 at A^1_11 = 1.
    raw = LayerCAM(tiny_model(), "0")(X_TINY, target, upsample=False, normalize=False)
    assert_close(raw[0], want, atol=1e-6, rtol=0)


def test_layercam_equals_torchcam_raw_map():
    model = small_model()
    with torchcam.LayerCAM(model, target_layer="2", input_shape=(3, 10, 10)) as extractor:
        want = extractor(class_idx=T_SMALL, scores=model(X_SMALL), normalized=False)[0]
    got = LayerCAM(model, "2")(X_SMALL, torch.tensor(T_SMALL), upsample=False, normalize=False)
    assert got.dtype == torch.float64 and float(want.max()) > 0
    # the same float64 operations in a different order: a few units of 1e-16 relative
    assert_close(got, want, atol=1e-12, rtol=1e-12)


def test_layercam_before_gap_and_linear_equals_gradcam_for_positive_class_weights():
    # dy^c/dA^k_ij = w^c_k / (h w) at every position: Grad-CAM's mean of it is the same number, and LayerCAM
    # keeps it where it is positive; with non-negative class weights the two maps are equal.
    model = SmallCNN(num_classes=5, width=8).eval()
    with torch.no_grad():
        model.fc.weight.abs_()
    x = torch.rand(2, 3, 32, 32)
    layer = LayerCAM(model, "features")(x, 1, upsample=False, normalize=False)
    grad = GradCAM(model, "features")(x, 1, upsample=False, normalize=False)
    assert_close(layer, grad, atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------------- Score-CAM
def test_scorecam_on_tiny_model_matches_hand_computation():
    # A^0 = x = [[1, 2], [3, 4]], A^1 = 5 - x at the input's 2×2 resolution: the masks are
    #   H^0 = (A^0 - 1) / 3 = [[0, 1/3], [2/3, 1]],  H^1 = (A^1 - 1) / 3 = [[1, 2/3], [1/3, 0]],
    # the masked inputs x ⊙ H^0 = [[0, 2/3], [2, 4]] and x ⊙ H^1 = [[1, 4/3], [1, 0]], and the scores
    #   y^0 = sum(x') - 2 (5 - x'_11),  y^1 = 3 x'_00 + 2 (5 - x'_11):
    #   x ⊙ H^0: y = (20/3 - 2, 0 + 2) = (14/3, 2);   x ⊙ H^1: y = (10/3 - 10, 3 + 10) = (-20/3, 13).
    # Two classes: p_0 = sigmoid(y^0 - y^1), p_1 = 1 - p_0.
    w0 = torch.tensor([_sigmoid(14 / 3 - 2), _sigmoid(-20 / 3 - 13)])   # class 0: ≈ (0.935, 2.9e-9)
    w1 = torch.tensor([_sigmoid(2 - 14 / 3), _sigmoid(13 + 20 / 3)])    # class 1: ≈ (0.065, 1.0)
    explainer = ScoreCAM(tiny_model(), "0", batch_size=1)
    for target, w in ((0, w0), (1, w1)):
        want = torch.relu(w[0] * A0 + w[1] * A1)
        got = explainer(X_TINY, target, upsample=False, normalize=False)[0]
        assert_close(got, want, atol=1e-6, rtol=1e-6)


def test_scorecam_equals_torchcam_up_to_its_softmax_over_the_maps():
    """torchcam's weights are softmax_k(y^c(x ⊙ H^k) - y^c(x)); on the model followed by log_softmax they are
    p_c(x ⊙ H^k) / sum_m p_c(x ⊙ H^m): our map divided by the sum of our weights (see ScoreCAM's docstring)."""
    model = small_model()
    wrapped = nn.Sequential(model, nn.LogSoftmax(dim=1)).eval()
    with torchcam.ScoreCAM(wrapped, target_layer="0.3", batch_size=7, input_shape=(3, 10, 10)) as extractor:
        with torch.no_grad():
            wrapped(X_SMALL)
        want = extractor(class_idx=T_SMALL, normalized=False)[0]
    t = torch.tensor(T_SMALL)
    got = ScoreCAM(model, "3", batch_size=7)(X_SMALL, t, upsample=False, normalize=False)
    with torch.no_grad():  # the sum of our weights, written out: masks at the input's resolution
        a = model[:4](X_SMALL)
        lo, hi = a.amin((2, 3), keepdim=True), a.amax((2, 3), keepdim=True)
        assert bool((hi > lo).all())  # no constant map (torchcam would give it a weight, we give 0)
        masks = (a - lo) / (hi - lo)  # (N, K, H, W)
        probs = torch.softmax(model((X_SMALL[:, None] * masks[:, :, None]).flatten(0, 1)), 1).view(3, 5, 4)
        total = probs.gather(2, t[:, None, None].expand(3, 5, 1))[..., 0].sum(1)
    assert float(want.max()) > 0
    # torchcam divides by (max - min + 1e-8): masks off by <= 1e-8 / (smallest range, about 0.05) = 2e-7
    # relative, which the softmax passes on about unchanged
    assert_close(got / total[:, None, None], want, atol=1e-9, rtol=1e-6)


def test_scorecam_batch_size_and_constant_maps():
    model = small_model()
    t = torch.tensor(T_SMALL)
    one = ScoreCAM(model, "3", batch_size=1)(X_SMALL, t, upsample=False, normalize=False)
    many = ScoreCAM(model, "3", batch_size=100)(X_SMALL, t, upsample=False, normalize=False)
    assert_close(one, many, atol=1e-12, rtol=1e-10)
    # a map that is zero everywhere (a dead ReLU channel) gets weight 0 and no forward pass
    dead = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2)).eval()
    with torch.no_grad():
        dead[0].weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        dead[0].bias.zero_()
    calls = []
    dead[0].register_forward_pre_hook(lambda m, i: calls.append(i[0].shape[0]))
    raw = ScoreCAM(dead, "1")(X_TINY, 0, upsample=False, normalize=False)
    assert calls == [1, 1]  # the image itself, then one masked input: channel 1 (-x, all zero) is skipped
    w = torch.softmax(dead(X_TINY * (A0 - 1) / 3), 1)[0, 0]
    assert_close(raw[0], w.detach() * A0, atol=1e-6, rtol=1e-6)


def test_scorecam_progress_bar_and_arguments(capsys):
    model = SmallCNN(num_classes=5, width=8).eval()
    ScoreCAM(model, "features", batch_size=4, progress=True)(torch.rand(1, 3, 32, 32))
    assert "Score-CAM" in capsys.readouterr().err
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        ScoreCAM(model, "features", batch_size=0)
    with pytest.raises(TypeError, match="progress must be True or False"):
        ScoreCAM(model, "features", progress=1)


# ---------------------------------------------------------------------- properties of both
@pytest.mark.parametrize("method", [LayerCAM, lambda m, layer: ScoreCAM(m, layer, batch_size=5)],
                         ids=["layercam", "scorecam"])
def test_batch_equals_single_images(method):
    saliency_tests.test_batch_equals_single_images(method)  # float64, 1e-9: see its comment


def test_weights_of_a_wrong_shape_are_an_error():
    class Broken(LayerCAM):
        def _weights(self, activations, gradients, targets, images):
            return gradients[:, :, :1]

    with pytest.raises(ValueError, match=r"Broken._weights must return \(N, K\) = \(1, 16\) or \(N, K, h, w\)"):
        Broken(SmallCNN(num_classes=5, width=8).eval(), "features")(torch.rand(1, 3, 32, 32))
