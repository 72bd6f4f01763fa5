"""Score-CAM (course_lib.saliency.scorecam): a hand-computed case, torchcam 0.5.0 cross-check, properties."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_lib.models import SmallCNN
from course_lib.saliency import ScoreCAM
from tests.helpers import assert_close
from tests.helpers.models import (
    A0,
    A1,
    T_SMALL,
    X_SMALL,
    X_TINY,
    check_batch_equals_single_images,
    small_model,
    tiny_model,
)

torchcam = pytest.importorskip("torchcam.methods")  # pinned in requirements.txt (torchcam==0.5.0)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))




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


def test_batch_equals_single_images():
    check_batch_equals_single_images(lambda m, layer: ScoreCAM(m, layer, batch_size=5))  # see its docstring
