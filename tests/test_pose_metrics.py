"""course_lib.pose.metrics: PCK, PDJ and the pose loss on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib.pose import (
    JOINT_NAMES,
    pck,
    pdj,
    pose_loss,
)
from tests.helpers.fixtures import pose_with_torso


def test_pck_hand_computed():
    gt = pose_with_torso(1.0).expand(2, 14, 2).clone()
    pred = gt.clone()
    pred[0, 0, 0] += 0.19  # inside 0.2 torso diameters
    pred[0, 1, 1] += 0.21  # outside
    pred[1, 6] += torch.tensor([0.3, 0.4])  # 0.5 away: outside at 0.2, inside at 0.5
    assert float(pck(pred, gt, alpha=0.2)) == pytest.approx(26 / 28)
    assert float(pck(pred, gt, alpha=0.5)) == pytest.approx(1.0)
    assert float(pck(pred, gt, alpha=0.0)) == pytest.approx(25 / 28)
    per = pck(pred, gt, alpha=0.2, per_joint=True)
    expected = torch.ones(14)
    expected[1], expected[6] = 0.5, 0.5
    torch.testing.assert_close(per, expected)


def test_pck_is_scale_invariant_and_uses_the_ground_truth_torso():
    gt, pred = pose_with_torso(1.0), pose_with_torso(1.0)
    pred[3, 0] += 0.15
    assert float(pck(pred * 7, gt * 7)) == float(pck(pred, gt)) == 1.0
    # shrinking the *predicted* torso does not change the threshold
    pred2 = pred.clone()
    pred2[JOINT_NAMES.index("left_shoulder")] = 0.0
    assert float(pck(pred2, gt, alpha=0.2)) == pytest.approx(13 / 14)


def test_pck_with_visibility_counts_only_visible_joints():
    gt = pose_with_torso(1.0).expand(1, 14, 2).clone()
    pred = gt.clone()
    pred[0, :4, 0] += 1.0  # four joints far off
    vis = torch.ones(1, 14, dtype=torch.bool)
    vis[0, :4] = False
    assert float(pck(pred, gt, visibility=vis)) == 1.0
    assert float(pck(pred, gt)) == pytest.approx(10 / 14)
    with pytest.raises(ValueError, match="visibility must have shape"):
        pck(pred, gt, visibility=vis[:, :5])


def test_pdj_curve_matches_pck_and_is_monotone():
    gt = torch.rand(20, 14, 2)
    pred = gt + 0.05 * torch.randn(20, 14, 2)
    fr = torch.linspace(0, 1, 11)
    curve = pdj(pred, gt, fr)
    assert curve.shape == (11,) and bool((curve[1:] >= curve[:-1]).all())
    for f, value in zip(fr.tolist(), curve.tolist(), strict=True):
        assert value == pytest.approx(float(pck(pred, gt, alpha=f)))
    # independently: distances over torso diameters, counted with NumPy
    d = np.linalg.norm((pred - gt).numpy(), axis=-1)
    t = np.linalg.norm((gt[:, 9] - gt[:, 2]).numpy(), axis=-1)
    assert curve[4].item() == pytest.approx(float(np.mean(d <= 0.4 * t[:, None])))


def test_pck_rejects_degenerate_torso_and_bad_alpha():
    gt = torch.zeros(14, 2)
    with pytest.raises(ValueError, match="torso"):
        pck(gt, gt)
    with pytest.raises(ValueError, match="alpha"):
        pck(pose_with_torso(), pose_with_torso(), alpha=-0.1)
    with pytest.raises(ValueError, match="same shape"):
        pck(torch.rand(2, 14, 2), torch.rand(3, 14, 2))


def test_pose_loss_is_summed_squared_error_per_pose():
    p, t = torch.randn(6, 14, 2), torch.randn(6, 14, 2)
    torch.testing.assert_close(pose_loss(p, t), F.mse_loss(p, t, reduction="sum") / 6)
    torch.testing.assert_close(pose_loss(p, t, reduction="sum"), F.mse_loss(p, t, reduction="sum"))
