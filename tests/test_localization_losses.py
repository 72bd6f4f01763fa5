"""course_lib.localization.losses: the multitask and quick losses against torch's losses and hand cases."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.localization import (
    multitask_loss,
    quick_loss,
)
from tests.helpers.fixtures import random_boxes


# --------------------------------------------------------------------------------------------- losses
def test_multitask_loss_hand_case():
    logits = torch.tensor([[2.0, 0.0]])
    pred, true = torch.tensor([[0.5, 0.5, 0.2, 0.2]]), torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    loss = multitask_loss(logits, pred, torch.tensor([0]), true, alpha=2.0)
    ce = math.log(1 + math.exp(-2.0))  # -log softmax(2, 0)[0]
    mse = 0.2**2 / 4  # one coordinate off by 0.2, averaged over 4
    assert loss.classification.item() == pytest.approx(ce, rel=1e-6)
    assert loss.box.item() == pytest.approx(mse, rel=1e-6)
    assert loss.total.item() == pytest.approx(ce + 2 * mse, rel=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 10.0])
@pytest.mark.parametrize("box_loss", ["mse", "smooth_l1"])
def test_multitask_loss_equals_torch_losses(alpha, box_loss):
    g = torch.Generator().manual_seed(8)
    logits, labels = torch.randn(16, 5, generator=g), torch.randint(5, (16,), generator=g)
    pred, true = torch.randn(16, 4, generator=g) * 0.3 + 0.5, random_boxes(16, seed=9)
    loss = multitask_loss(logits, pred, labels, true, alpha=alpha, box_loss=box_loss, beta=0.1)
    box = F.mse_loss(pred, true) if box_loss == "mse" else F.smooth_l1_loss(pred, true, beta=0.1)
    torch.testing.assert_close(loss.total, F.cross_entropy(logits, labels) + alpha * box)
    torch.testing.assert_close(loss.box, box)


def test_smooth_l1_is_quadratic_below_beta_and_linear_above():
    true = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    small = torch.tensor([[0.55, 0.5, 0.2, 0.2]])  # |d| = 0.05 < beta = 0.1: 0.5 d^2 / beta / 4
    large = torch.tensor([[0.8, 0.5, 0.2, 0.2]])  # |d| = 0.3 > beta: (|d| - beta / 2) / 4
    z, y = torch.zeros(1, 3), torch.tensor([0])
    sl = multitask_loss(z, small, y, true, box_loss="smooth_l1", beta=0.1).box.item()
    ll = multitask_loss(z, large, y, true, box_loss="smooth_l1", beta=0.1).box.item()
    assert sl == pytest.approx(0.5 * 0.05**2 / 0.1 / 4, rel=1e-5)
    assert ll == pytest.approx((0.3 - 0.05) / 4, rel=1e-5)


def test_multitask_loss_gradient_of_the_box_term():
    # dL/d b_hat = alpha * 2 (b_hat - b) / (4 N)
    pred = torch.tensor([[0.6, 0.5, 0.3, 0.2], [0.1, 0.2, 0.3, 0.4]], requires_grad=True)
    true = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.3, 0.5]])
    multitask_loss(torch.zeros(2, 3), pred, torch.tensor([0, 1]), true, alpha=3.0).total.backward()
    torch.testing.assert_close(pred.grad, 3.0 * 2 * (pred.detach() - true) / 8)


def test_quick_loss_equals_the_bce_formula():
    g = torch.Generator().manual_seed(10)
    s, t = torch.randn(12, generator=g, dtype=torch.float64), torch.randn(12, 4, generator=g, dtype=torch.float64)
    y, b = torch.randint(2, (12,), generator=g), random_boxes(12, seed=11, dtype=torch.float64).clamp(0, 1)

    def bce(p, target):
        return -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()

    loss = quick_loss(s, t, y, b, alpha=0.5)
    torch.testing.assert_close(loss.classification, bce(torch.sigmoid(s), y.double()))
    torch.testing.assert_close(loss.box, bce(torch.sigmoid(t), b))
    torch.testing.assert_close(loss.total, loss.classification + 0.5 * loss.box)
    # (N, 1) logits and bool labels are accepted as well
    torch.testing.assert_close(quick_loss(s[:, None], t, y.bool(), b).classification, loss.classification)


def test_quick_loss_box_term_is_smallest_at_the_target():
    b = torch.tensor([[0.3, 0.6, 0.25, 0.4]])
    at = quick_loss(torch.zeros(1), torch.logit(b), torch.tensor([1]), b).box
    for delta in (-0.5, 0.5):
        assert quick_loss(torch.zeros(1), torch.logit(b) + delta, torch.tensor([1]), b).box > at


def test_quick_loss_refuses_several_classes():
    with pytest.raises(ValueError, match="labels must be 0 or 1.*two classes only"):
        quick_loss(torch.zeros(3), torch.zeros(3, 4), torch.tensor([0, 1, 2]), torch.full((3, 4), 0.5))
    with pytest.raises(ValueError, match="binary classification only"):
        quick_loss(torch.zeros(3, 5), torch.zeros(3, 4), torch.tensor([0, 1, 1]), torch.full((3, 4), 0.5))


def test_quick_loss_refuses_boxes_a_sigmoid_cannot_reach():
    centre_outside = torch.tensor([[-0.1, 0.5, 0.3, 0.4]])
    with pytest.raises(ValueError, match=r"boxes must lie in \[0, 1\]"):
        quick_loss(torch.zeros(1), torch.zeros(1, 4), torch.tensor([1]), centre_outside)


def test_multitask_loss_bad_arguments():
    z, p, y, b = torch.zeros(2, 3), torch.zeros(2, 4), torch.tensor([0, 2]), random_boxes(2)
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 3\)"):
        multitask_loss(z, p, torch.tensor([0, 3]), b)
    with pytest.raises(TypeError, match="labels must hold integer class indices"):
        multitask_loss(z, p, torch.tensor([0.0, 1.0]), b)
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        multitask_loss(z, p, torch.tensor([0]), b)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        multitask_loss(z, p, y, b, alpha=-1.0)
    with pytest.raises(ValueError, match="box_loss must be one of"):
        multitask_loss(z, p, y, b, box_loss="l2")
    with pytest.raises(ValueError, match=r"box_pred must be \(N, 4\)"):
        multitask_loss(z, torch.zeros(2, 5), y, b)
    with pytest.raises(ValueError, match="box_pred contains NaN"):
        multitask_loss(z, torch.full((2, 4), float("nan")), y, b)
    with pytest.raises(ValueError, match=r"class_logits must be \(N, C\)"):
        multitask_loss(torch.zeros(3), p, y, b)
