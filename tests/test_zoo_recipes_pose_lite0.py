"""The zoo's ``pose_lite0``: a pose head on the frozen ImageNet network (course_lib.zoo.recipes.pose_lite0)."""

from __future__ import annotations

import hashlib
import socket

import pytest
import torch

from course_lib import zoo
from course_lib.data import PoseFiguresDataset
from course_lib.joints import JOINT_NAMES
from course_lib.pose import pck
from course_lib.zoo.recipes import pose_lite0 as pl

NAME = "pose_lite0"


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("pose_lite0 tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_pose_lite0_loads_offline_and_stores_only_the_head(offline):
    from course_lib.pretrained import efficientnet_lite0

    record = zoo.info(NAME)
    pt = zoo.CHECKPOINTS / f"{NAME}.pt"
    assert record["sha256"] == hashlib.sha256(pt.read_bytes()).hexdigest()
    assert pt.stat().st_size < 1_000_000
    state = torch.load(pt, weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    model = zoo.load(NAME, device="cpu")
    assert not model.training and not model.lower.training
    assert set(state) == set(model.head.state_dict())
    # the frozen part is the weights package's, parameter by parameter and batch-norm statistic by statistic
    reference = efficientnet_lite0("cpu").state_dict()
    lower = model.lower.state_dict()  # normalize (0), stem (1), blocks[0..10] (2)
    assert len(lower) > 100
    for key, value in lower.items():
        ref_key = {"0": "normalize", "1": "stem", "2": "blocks"}[key.split(".")[0]] + key[key.index("."):]
        assert torch.equal(value, reference[ref_key]), key
    assert not any(p.requires_grad for p in model.lower.parameters())
    # the stored head is what the model uses (float16 values, held in float32)
    for key, value in model.head.state_dict().items():
        if value.is_floating_point():
            assert torch.equal(value, state[key].float()), key


def test_pose_lite0_heldout_pck_recomputed_independently():
    """PCK@0.2 of the loaded model on the first 100 held-out figures: course_lib.pose.pck against the definition
    written out here, and against the recorded value on all 1,000 within the sampling error of 100 figures."""
    record = zoo.info(NAME)
    d = record["settings"]["data"]
    data = PoseFiguresDataset(d["n_heldout"], size=d["size"], seed=d["heldout_seed"])
    n = 100
    model = zoo.load(NAME, device="cpu")
    pred = model.predict(data.images[:n], data.boxes[:n])
    gt = data.joints[:n]
    # PCK by its definition: a joint is correct when it lies within 0.2 torso diameters (left shoulder to right hip)
    lsho, rhip = JOINT_NAMES.index("left_shoulder"), JOINT_NAMES.index("right_hip")
    torso = (gt[:, lsho] - gt[:, rhip]).norm(dim=-1)
    correct = (pred - gt).norm(dim=-1) <= 0.2 * torso[:, None]
    assert float(pck(pred, gt, 0.2)) == pytest.approx(correct.float().mean().item(), abs=1e-6)
    per_figure = correct.float().mean(1)
    se = per_figure.std().item() / n ** 0.5
    assert abs(per_figure.mean().item() - record["metrics"]["heldout_pck@0.2"]) <= 4 * se + 1e-3
    # the recorded numbers were measured on figures the head was not trained on
    assert d["train_seed"] != d["heldout_seed"]


def test_mirrored_features_are_the_mirrored_crops_with_swapped_joints(tmp_path, monkeypatch):
    from course_lib.pose import crop_boxes
    from course_lib.zoo import _cache as feature_cache

    monkeypatch.setattr(feature_cache, "FEATURE_CACHE", tmp_path)
    settings = {**pl.POSE_LITE0_SETTINGS, "data": {**pl.POSE_LITE0_SETTINGS["data"], "n_train": 3,
                                                            "n_used": 3}}
    feats, targets, boxes = pl.lite0_pose_features(settings, "train")
    m_feats, m_targets, m_boxes = pl.lite0_pose_features(settings, "train", mirrored=True)
    assert torch.equal(boxes, m_boxes) and feats.shape == (3, 112, 8, 8)
    # the mirror image of the right wrist is the left wrist: x -> -x about the crop centre, y unchanged
    right, left = JOINT_NAMES.index("right_wrist"), JOINT_NAMES.index("left_wrist")
    torch.testing.assert_close(m_targets[:, left, 0], -targets[:, right, 0], atol=0, rtol=0)
    torch.testing.assert_close(m_targets[:, left, 1], targets[:, right, 1], atol=0, rtol=0)
    # the features are the frozen network's on the mirrored crops
    model = pl.PoseLite0(settings).eval()
    data = PoseFiguresDataset(3, size=settings["data"]["size"], seed=settings["data"]["train_seed"])
    crops = crop_boxes(data.images, boxes, settings["input"])
    with torch.no_grad():
        torch.testing.assert_close(m_feats, model.lower(crops.flip(-1)), atol=1e-5, rtol=0)
        torch.testing.assert_close(feats, model.lower(crops), atol=1e-5, rtol=0)
    both = pl.training_set(settings)
    assert both[0].shape[0] == 6 and torch.equal(both[1][3:], m_targets)
    assert zoo.info(NAME)["settings"]["mirror"] and zoo.info(NAME)["settings"]["swap"]


def test_pose_lite0_rejects_bad_arguments():
    with pytest.raises(ValueError, match="block"):
        pl.PoseLite0({**pl.POSE_LITE0_SETTINGS, "block": 16}, pretrained=False)
    with pytest.raises(TypeError, match="pretrained"):
        pl.PoseLite0(pretrained=1)
    model = pl.PoseLite0(pretrained=False).eval()
    with pytest.raises(ValueError, match="boxes"):
        model.predict(torch.rand(2, 3, 64, 64), torch.rand(3, 4))
    with pytest.raises(ValueError, match="crops"):
        model(torch.rand(3, 128, 128))
    with pytest.raises(ValueError, match="which"):
        pl.lite0_pose_features(pl.POSE_LITE0_SETTINGS, "test")
    with pytest.raises(ValueError, match="n_used"):
        pl.lite0_pose_features({**pl.POSE_LITE0_SETTINGS, "data": {**pl.POSE_LITE0_SETTINGS["data"], "n_train": 2,
                                                                   "n_used": 3}}, "train")
    with pytest.raises(TypeError, match="model"):
        pl.train_lite0_head(torch.nn.Linear(2, 2), torch.rand(2, 112, 8, 8), torch.rand(2, 14, 2),
                            pl.POSE_LITE0_SETTINGS)


@pytest.mark.slow
def test_pose_lite0_reproduces_its_recorded_metrics():
    """The recorded metrics recomputed from the checkpoint: means over the n held-out figures; float32 summation
    order may move a joint on the 0.1/0.2-torso boundary, so allow two figures' worth (2 / n)."""
    record = zoo.info(NAME)
    n = record["settings"]["data"]["n_heldout"]
    got = zoo.evaluate(NAME, device="cpu")
    for key, value in record["metrics"].items():
        assert got[key] == pytest.approx(value, abs=2 / n), key
