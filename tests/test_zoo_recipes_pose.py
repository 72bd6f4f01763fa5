"""course_lib.zoo.recipes.pose, the pose transfer helpers: cached features paired with their figures, heads that
learn."""

from __future__ import annotations

import json

import pytest
import torch

from course_lib.boxes import square_boxes
from course_lib.data import PoseFiguresDataset
from course_lib.pose import crop_boxes, normalize_joints, pck
from course_lib.zoo import _cache as feature_cache
from course_lib.zoo.recipes import pose as P


def _settings(n: int, seed: int) -> dict:
    s = json.loads(json.dumps(P.TRANSFER_SETTINGS))
    s["data"].update({"n_train": n, "train_seed": seed})
    return s


@pytest.fixture(scope="module")
def small_figures():
    return PoseFiguresDataset(200, size=64, seed=7), PoseFiguresDataset(100, size=64, seed=8)


@pytest.mark.parametrize("network, layers, size", [("shapes_gap", ("features",), 64),
                                                   ("efficientnet_lite0", ("blocks.10", "head"), 128)])
def test_cached_features_are_a_fresh_forward_of_the_same_crop(network, layers, size, small_figures, tmp_path,
                                                               monkeypatch):
    monkeypatch.setattr(feature_cache, "FEATURE_CACHE", tmp_path)
    data = small_figures[0]
    few = P._SubsetFigures(data, 5)
    settings = _settings(5, 7)
    feats, targets, boxes = P.pose_features(network, layers, few, "train", size=size, settings=settings)
    assert len(list(tmp_path.glob("pose_*.pt"))) == 1
    cached, _, _ = P.pose_features(network, layers, few, "train", size=size, settings=settings)
    # the crop of each figure on its own, through the network's own forward path
    if network == "shapes_gap":
        from course_lib.zoo import load

        trunk = load("shapes_gap", "cpu").features.eval()
        paths = {"features": trunk}
    else:
        from course_lib.pretrained import efficientnet_lite0

        net = efficientnet_lite0("cpu")
        paths = {"blocks.10": lambda x: net.blocks[:11](net.stem(net.normalize(x))), "head": net.features}
    for i in (0, 3, 4):
        box = square_boxes(data.boxes[i : i + 1], 1.2, 64)
        torch.testing.assert_close(boxes[i : i + 1], box)
        torch.testing.assert_close(targets[i], normalize_joints(data.joints[i], box[0]))
        crop = crop_boxes(data.images[i : i + 1], box, size)
        with torch.no_grad():
            for layer, forward in paths.items():
                fresh = forward(crop)[0]
                torch.testing.assert_close(feats[layer][i], fresh, atol=1e-4, rtol=1e-4)
                torch.testing.assert_close(cached[layer][i], feats[layer][i], atol=0, rtol=0)


def test_pose_head_starts_at_the_crop_centre_and_beats_the_mean_pose(small_figures, tmp_path, monkeypatch):
    monkeypatch.setattr(feature_cache, "FEATURE_CACHE", tmp_path)
    train, test = small_figures
    s = _settings(len(train), 7)
    s["data"].update({"n_heldout": len(test), "heldout_seed": 8})
    b = s["backbones"]["shapes_gap"]
    tr_f, tr_t, tr_b = P.pose_features(b["network"], (b["layer"],), train, "train", size=b["input"], settings=s)
    te_f, _, te_b = P.pose_features(b["network"], (b["layer"],), test, "heldout", size=b["input"], settings=s)
    head = P.pose_head(tr_f["features"].shape[1], tr_f["features"].shape[-1]).eval()
    with torch.no_grad():
        assert head(tr_f["features"][:3]).abs().max() == 0  # every joint at the box centre
    # with enough steps on 200 figures it fits them far better than the mean pose does ...
    head, history = P.train_pose_head(tr_f["features"], tr_t, seed=0, settings=s, lr=b.get("lr", s["fit"]["lr"]),
                                      epochs=60)
    assert not history["diverged"][0]
    fit_pck = pck(P.head_predictions(head, tr_f["features"], tr_b), train.joints)
    base_train = P.mean_pose_metrics(tr_t, tr_b, train)["pck@0.2"]
    assert fit_pck > max(0.9, base_train + 0.4), (fit_pck, base_train)
    # ... and generalizes: new figures score above the mean training pose
    test_pck = P.heldout_metrics(P.head_predictions(head, te_f["features"], te_b), test)["pck@0.2"]
    base = P.mean_pose_metrics(tr_t, te_b, test)["pck@0.2"]
    assert test_pck > base + 0.08, (test_pck, base)
