"""course_lib.localization.models: Localizer and QuickLocalizer outputs; the package on CPU and GPU."""

import pytest
import torch

from course_lib.localization import (
    Localizer,
    QuickLocalizer,
    box_iou,
    evaluate_localizer,
    multitask_loss,
    paired_box_iou,
)
from course_lib.models import SmallCNN
from tests.helpers.fixtures import random_boxes


# --------------------------------------------------------------------------------------------- models
def test_localizer_outputs_and_trunk_shared_with_smallcnn():
    model = Localizer(num_classes=5, width=8).eval()
    x = torch.rand(3, 3, 64, 64)
    logits, boxes = model(x)
    assert logits.shape == (3, 5) and boxes.shape == (3, 4)
    classes, pred = model.predict(x)
    torch.testing.assert_close(classes, logits.argmax(1))
    # the trunk has SmallCNN's layout: a classifier's features load into it (transfer learning)
    cnn = SmallCNN(num_classes=5, width=8).eval()
    model.features.load_state_dict(cnn.features.state_dict())
    torch.testing.assert_close(model.features(x), cnn.features(x))
    with pytest.raises(ValueError, match="x must be 4-D"):
        model(torch.rand(3, 64, 64))


def test_quick_localizer_outputs_lie_in_the_unit_interval():
    model = QuickLocalizer(width=8).eval()
    logit, box_logits = model(torch.rand(4, 3, 32, 32))
    assert logit.shape == (4,) and box_logits.shape == (4, 4)
    p, boxes = model.predict(torch.rand(4, 3, 32, 32) * 50)  # even for extreme input
    assert bool(((p >= 0) & (p <= 1)).all()) and bool(((boxes >= 0) & (boxes <= 1)).all())


# ------------------------------------------------------------------------------------------ CPU / GPU
@pytest.mark.cuda
def test_cpu_cuda_parity():
    b1, b2 = random_boxes(30, seed=13), random_boxes(30, seed=14)
    cuda = torch.device("cuda")
    torch.testing.assert_close(box_iou(b1.to(cuda), b2.to(cuda)).cpu(), box_iou(b1, b2))
    torch.testing.assert_close(paired_box_iou(b1.to(cuda), b2.to(cuda)).cpu(), paired_box_iou(b1, b2))
    g = torch.Generator().manual_seed(15)
    z, y = torch.randn(30, 5, generator=g), torch.randint(5, (30,), generator=g)
    for kind in ("mse", "smooth_l1"):
        cpu = multitask_loss(z, b1, y, b2, alpha=2.0, box_loss=kind).total
        gpu = multitask_loss(z.to(cuda), b1.to(cuda), y.to(cuda), b2.to(cuda), alpha=2.0, box_loss=kind).total
        torch.testing.assert_close(gpu.cpu(), cpu)
    model = Localizer(num_classes=5, width=8).eval()
    x = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        cpu_metrics = evaluate_localizer(model, x, y[:4], b1[:4])
        out = model.to(cuda)(x.to(cuda))
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a.cpu(), b, atol=1e-4, rtol=1e-4)
    gpu_metrics = evaluate_localizer(model, x, y[:4], b1[:4])
    for k, v in cpu_metrics.items():
        assert gpu_metrics[k] == pytest.approx(v, abs=1e-4)
