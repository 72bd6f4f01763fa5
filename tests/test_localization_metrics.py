"""course_lib.localization.metrics: accuracy, IoU and correct-localization rate on hand cases; evaluate_localizer."""

import pytest
import torch

from course_lib.data import ShapesDataset
from course_lib.localization import (
    Localizer,
    evaluate_localizer,
    localization_metrics,
)


def test_localization_metrics_hand_case():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    pred = torch.tensor([[0.5, 0.5, 0.5, 0.25], [0.5, 0.5, 0.5, 0.5], [0.5, 0.5, -0.1, 0.5]])
    true = torch.tensor([[0.5, 0.5, 0.5, 0.5]]).expand(3, 4)
    m = localization_metrics(logits, pred, torch.tensor([0, 0, 0]), true)
    # classes: right, wrong, right; IoU: 0.5, 1, 0 (negative height covers nothing)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["mean_iou"] == pytest.approx(0.5)
    assert m["correct_rate"] == pytest.approx(1 / 3)
    binary = localization_metrics(torch.tensor([3.0, -1.0, 2.0]), pred, torch.tensor([1, 0, 0]), true)
    assert binary["accuracy"] == pytest.approx(2 / 3)  # sigmoid logits: positive means class 1


def test_evaluate_localizer_restores_mode_and_matches_metrics():
    torch.manual_seed(0)
    model = Localizer(num_classes=5, width=8).train()
    ds = ShapesDataset(24, size=32, seed=12)
    result = evaluate_localizer(model, ds.images, ds.labels, ds.boxes, batch_size=10)
    assert model.training
    model.eval()
    with torch.no_grad():
        logits, boxes = model(ds.images)
    expected = localization_metrics(logits, boxes, ds.labels, ds.boxes)
    for k in expected:
        assert result[k] == pytest.approx(expected[k], abs=1e-6)
