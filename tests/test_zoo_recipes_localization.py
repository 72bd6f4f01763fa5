"""course_lib.zoo.recipes.localization: the stored localizers on fresh held-out images; what the pretrained
localizer stores; its mirrored feature cache; its head."""

from __future__ import annotations

import hashlib

import pytest
import torch
from torch import nn

from course_lib import zoo
from course_lib.data import ShapesDataset
from course_lib.localization import evaluate_localizer


# ------------------------------------------------------------------------------------------------ zoo
def test_zoo_localizer_meets_its_targets_on_fresh_heldout_images():
    model = zoo.load("shapes_localizer", device="cpu")
    heldout = ShapesDataset(300, seed=101)  # the recipe trains on seed 100
    m = evaluate_localizer(model, heldout.images, heldout.labels, heldout.boxes)
    assert m["accuracy"] >= 0.95 and m["mean_iou"] >= 0.75, m
    quick = zoo.load("shapes_quick_localizer", device="cpu")
    two = heldout.labels < 2
    q = evaluate_localizer(quick, heldout.images[two], heldout.labels[two], heldout.boxes[two])
    assert q["accuracy"] >= 0.9, q


# ------------------------------------------ shapes_pretrained_localizer: EfficientNet-Lite0, blocks[8..10] fine-tuned
def test_pretrained_localizer_stores_only_the_fine_tuned_part():
    from course_lib.pretrained import efficientnet_lite0

    record = zoo.info("shapes_pretrained_localizer")
    pt = zoo.CHECKPOINTS / "shapes_pretrained_localizer.pt"
    assert record["sha256"] == hashlib.sha256(pt.read_bytes()).hexdigest()
    state = torch.load(pt, weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    model = zoo.load("shapes_pretrained_localizer", device="cpu")
    assert not model.training
    assert set(state) == set(model.top.state_dict())
    # the frozen part is the weights package's; the first fine-tuned block has moved away from it
    reference = efficientnet_lite0().state_dict()
    lower = model.lower.state_dict()  # normalize (0), stem (1), blocks[0..7] (2)
    for key, value in lower.items():
        ref_key = {"0": "normalize", "1": "stem", "2": "blocks"}[key.split(".")[0]] + key[key.index("."):]
        assert torch.equal(value, reference[ref_key]), key
    first = model.top.blocks[0].expand[0].weight
    assert not torch.allclose(first, reference["blocks.8.expand.0.weight"])
    # a box for every image: (N, 5) class scores and (N, 4) boxes on 64x64 input, as the Localizer
    logits, boxes = model(torch.rand(2, 3, 64, 64))
    assert logits.shape == (2, 5) and boxes.shape == (2, 4)


def test_mirrored_feature_cache_mirrors_images_and_boxes(tmp_path, monkeypatch):
    """The recipe's flip copies: features of the mirrored images, and the tight box of the mirrored mask."""
    from course_lib.boxes import mask_to_box
    from course_lib.data import ShapesDataset
    from course_lib.models import frozen_features
    from course_lib.pretrained import efficientnet_lite0
    from course_lib.zoo import _cache as feature_cache
    from course_lib.zoo.recipes import localization as loc

    monkeypatch.setattr(feature_cache, "FEATURE_CACHE", tmp_path)
    settings = {**loc.ZOO_FINETUNE_SETTINGS, "n_train": 4}
    feats, labels, boxes = loc.lite0_block_features(settings, "train", 7, hflip=True)
    data = ShapesDataset(4, size=settings["size"], seed=settings["train_seed"])
    # the box of the mirrored image, measured on its mirrored mask (not by the formula x -> 1 - x)
    torch.testing.assert_close(boxes, mask_to_box(data.masks.flip(-1)), atol=1e-6, rtol=0)
    assert torch.equal(labels, data.labels)
    net = efficientnet_lite0("cpu")
    lower = nn.Sequential(net.normalize, net.stem, net.blocks[:8])
    torch.testing.assert_close(feats, frozen_features(lower, data.images.flip(-1), size=128), atol=1e-5, rtol=0)
    # the training set is the originals followed by their mirrored copies
    both = loc.lite0_training_features(settings, 7)
    assert both[0].shape[0] == 8 and torch.equal(both[0][4:], feats) and torch.equal(both[2][4:], boxes)
    assert loc.ZOO_FINETUNE_SETTINGS["hflip"] and zoo.info("shapes_pretrained_localizer")["settings"]["hflip"]


def test_pretrained_localizer_recipe_rejects_bad_blocks():
    from course_lib.pretrained import EfficientNetLite0
    from course_lib.zoo.recipes.localization import Lite0TopLocalizer

    with pytest.raises(ValueError, match="first"):
        Lite0TopLocalizer(EfficientNetLite0(), first=0, last=10, grid=8)
    with pytest.raises(ValueError, match="grid"):
        Lite0TopLocalizer(EfficientNetLite0(), first=8, last=10, grid=0)
    with pytest.raises(ValueError, match="hidden"):
        Lite0TopLocalizer(EfficientNetLite0(), first=8, last=10, grid=8, hidden=-1)


def test_top_localizer_hidden_box_layer_starts_at_zero_boxes():
    """hidden > 0: Linear -> ReLU -> Linear box head whose last layer starts at zero, so every initial box is 0
    (as with the linear head); hidden = 0 keeps the single linear layer of the stored studies."""
    from course_lib.pretrained import EfficientNetLite0
    from course_lib.zoo.recipes.localization import Lite0TopLocalizer

    a = torch.rand(3, 80, 8, 8)
    deep = Lite0TopLocalizer(EfficientNetLite0(), first=8, last=10, grid=8, hidden=16).eval()
    assert [type(m).__name__ for m in deep.box] == ["Linear", "ReLU", "Linear"]
    assert deep.box[0].out_features == 16 and deep.box[2].in_features == 16
    assert torch.equal(deep(a)[1], torch.zeros(3, 4))
    flat = Lite0TopLocalizer(EfficientNetLite0(), first=8, last=10, grid=8).eval()
    assert isinstance(flat.box, nn.Linear) and flat.box.in_features == 64 * 4 * 4


@pytest.mark.slow
def test_pretrained_localizer_reproduces_its_recorded_metrics():
    """The recorded metrics recomputed from the checkpoint: means over the n test images of per-image values in
    [0, 1]; float32 differences in summation order may move an image on a decision boundary (class, IoU 0.5),
    so allow two images' worth: 2 / n."""
    record = zoo.info("shapes_pretrained_localizer")
    n = record["settings"]["n_test"]
    got = zoo.evaluate("shapes_pretrained_localizer", device="cpu")
    for key, value in record["metrics"].items():
        assert got[key] == pytest.approx(value, abs=2 / n), key
