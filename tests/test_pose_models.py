"""course_lib.pose.models: the DeepPose regressor and cascade stage on fixed weights; the package on CPU and GPU."""

from __future__ import annotations

import pytest
import torch

from course_lib.pose import (
    PoseRegressor,
    RefinementStage,
    augment_crops,
    crop_boxes,
    hflip_pose,
    normalize_joints,
    pck,
    pdj,
    pose_loss,
    predict_joints,
    torso_diameter,
)


# ------------------------------------------------------------------------------------------ models
def test_regressor_shapes_and_zero_initial_prediction(figures):
    model = PoseRegressor(width=8).eval()
    out = model(torch.rand(3, 3, 64, 64))
    assert out.shape == (3, 14, 2) and torch.equal(out, torch.zeros_like(out))
    # zero offsets denormalize to the centre of every square person box
    pred = predict_joints(model, figures.images[:5], figures.boxes[:5])
    torch.testing.assert_close(pred, figures.boxes[:5, None, :2].expand(5, 14, 2))
    with pytest.raises(ValueError, match=r"\(N, 3, 64, 64\)"):
        model(torch.rand(2, 3, 32, 32))


def test_regressor_from_classifier_copies_the_trunk():
    from course_lib.models import SmallCNN

    clf = SmallCNN(width=8)
    reg = PoseRegressor.from_classifier(clf)
    for (k, v), (k2, v2) in zip(clf.features.state_dict().items(), reg.features.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)
    with torch.no_grad():
        reg.features[0].weight.add_(1.0)
    assert not torch.equal(reg.features[0].weight, clf.features[0].weight)  # a copy, not shared
    with pytest.raises(TypeError, match="features"):
        PoseRegressor.from_classifier(torch.nn.Linear(2, 2))


def test_refinement_stage_moves_each_joint_by_its_output_times_the_crop_side():
    stage = RefinementStage(width=4, sigma=0.5).eval()
    last = stage.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.arange(28, dtype=torch.float32) / 100)  # joint i: (2i, 2i+1) / 100
    images = torch.rand(2, 3, 50, 50)
    joints = torch.rand(2, 14, 2) * 0.5 + 0.25
    new = stage.refine(images, joints)
    torso_px = torso_diameter(joints * 50)  # (2,)
    side = (0.5 * torso_px).clamp_min(stage.min_side) / 50  # fraction of the image
    expected = joints + (torch.arange(28, dtype=torch.float32).view(14, 2) / 100) * side[:, None, None]
    torch.testing.assert_close(new, expected)
    # targets: zero when the estimate is the truth, and consistent with refine's update
    torch.testing.assert_close(stage.targets(joints, joints, 50), torch.zeros(2, 14, 2))
    t = stage.targets(joints, expected, 50)
    torch.testing.assert_close(t, (torch.arange(28, dtype=torch.float32).view(14, 2) / 100).expand(2, 14, 2))


def test_refinement_select_takes_output_i_from_crop_i():
    stage = RefinementStage(width=4)
    out = torch.arange(2 * 14 * 14 * 2, dtype=torch.float32).view(28, 14, 2)
    sel = stage.select(out)
    for n in range(2):
        for i in range(14):
            assert torch.equal(sel[n, i], out[n * 14 + i, i])


def test_one_training_step_lowers_the_loss_on_a_fixed_batch(figures):
    torch.manual_seed(0)
    model = PoseRegressor(width=8)
    x, y = augment_crops(figures.images[:16], figures.joints[:16], figures.boxes[:16])
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    before = pose_loss(model(x), y).item()
    for _ in range(5):
        opt.zero_grad()
        pose_loss(model(x), y).backward()
        opt.step()
    assert pose_loss(model(x), y).item() < before


# ------------------------------------------------------------------------------------------ CPU / GPU
@pytest.mark.cuda
def test_cpu_and_cuda_agree(figures):
    torch.manual_seed(0)
    gt = figures.joints[:8]
    pred = gt + 0.02 * torch.randn_like(gt)
    assert float(pck(pred, gt)) == float(pck(pred.cuda(), gt.cuda()))
    torch.testing.assert_close(pdj(pred, gt), pdj(pred.cuda(), gt.cuda()).cpu())
    torch.testing.assert_close(normalize_joints(gt, figures.boxes[:8]),
                               normalize_joints(gt.cuda(), figures.boxes[:8].cuda()).cpu())
    i1, j1 = hflip_pose(figures.images[:8], gt)
    i2, j2 = hflip_pose(figures.images[:8].cuda(), gt.cuda())
    assert torch.equal(i1, i2.cpu())
    torch.testing.assert_close(j1, j2.cpu())
    torch.testing.assert_close(crop_boxes(figures.images[:8], figures.boxes[:8], 32),
                               crop_boxes(figures.images[:8].cuda(), figures.boxes[:8].cuda(), 32).cpu(),
                               atol=1e-5, rtol=1e-5)
    reg, stage = PoseRegressor(width=8).eval(), RefinementStage(width=4).eval()
    with torch.no_grad():
        for p in list(reg.parameters()) + list(stage.parameters()):
            p.copy_(torch.randn_like(p) * 0.1)
    cpu = predict_joints(reg, figures.images[:8], figures.boxes[:8], stage)
    gpu = predict_joints(reg.cuda(), figures.images[:8].cuda(), figures.boxes[:8].cuda(), stage.cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(cpu, gpu.cpu(), atol=1e-4, rtol=1e-4)
