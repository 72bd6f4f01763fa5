"""Faithfulness metrics (course_lib.saliency.metrics.faithfulness) on toy cases with exact answers: deletion,
insertion, average drop, increase in confidence; the metrics' state and errors."""


from __future__ import annotations

import pytest
import torch
from torchvision.transforms.functional import gaussian_blur

from course_lib.models import SmallCNN
from course_lib.saliency.metrics import (
    average_drop,
    corloc,
    deletion_auc,
    deletion_curve,
    increase_in_confidence,
    insertion_auc,
    insertion_curve,
    pointing_game,
    saliency_to_box,
)
from tests.helpers import assert_close
from tests.helpers.models import MeanModel


def half_image():
    """A 4×4 image whose left half is 1 and right half 0, and a map that ranks the left half first."""
    x = torch.zeros(1, 3, 4, 4)
    x[..., :2] = 1
    good = torch.zeros(1, 4, 4)
    good[..., :2] = 1
    return x, good


# ---------------------------------------------------------------------- deletion
def test_deletion_of_a_uniform_image_is_a_straight_line():
    # p = 1 - k/16 after removing k of 16 pixels: AUC = 1/2 whatever the order
    x = torch.ones(1, 3, 4, 4)
    frac, probs = deletion_curve(MeanModel(), x, torch.rand(1, 4, 4), 0, n_steps=16)
    assert_close(frac, torch.arange(17, dtype=torch.float64) / 16)
    assert_close(probs[0], 1 - torch.arange(17, dtype=torch.float64) / 16, atol=1e-9, rtol=0)
    assert deletion_auc(MeanModel(), x, torch.rand(1, 4, 4), 0, n_steps=16) == pytest.approx(0.5, abs=1e-9)


def test_deletion_rewards_the_right_order():
    x, good = half_image()
    # good order: the mean falls from 1/2 to 0 over the first half, then stays 0: area 1/2 · 1/2 · 1/2
    assert deletion_auc(MeanModel(), x, good, 0, n_steps=4) == pytest.approx(0.125, abs=1e-9)
    # reverse order: 1/2 for the first half, then falls to 0: 1/4 + 1/8
    assert deletion_auc(MeanModel(), x, 1 - good, 0, n_steps=4) == pytest.approx(0.375, abs=1e-9)
    both = deletion_auc(MeanModel(), torch.cat([x, x]), torch.cat([good, 1 - good]), 0, n_steps=4, reduction="none")
    assert_close(both, torch.tensor([0.125, 0.375], dtype=torch.float64), atol=1e-9, rtol=0)


def test_deletion_baseline_and_default_target():
    x, good = half_image()
    # removed pixels set to 1 instead of 0: the mean rises from 1/2 to 1 over the second half
    # (the most salient pixels are the ones already equal to 1): area 1/4 + (1/2 + 1)/2 · 1/2
    model = MeanModel()
    got = deletion_auc(model, x, good, 0, n_steps=4, baseline=1.0)
    assert got == pytest.approx(0.25 + 0.375, abs=1e-9)
    # targets=None uses the arg-max class of the full image: p0 = p1 = 1/2, and the first maximum is class 0
    assert deletion_auc(model, x, good, n_steps=4) == pytest.approx(0.125, abs=1e-9)


# ---------------------------------------------------------------------- insertion
def test_insertion_starts_from_the_blurred_image():
    # the score reads a 4×4 square in the middle of a 32×32 image that is 1 there and 0 elsewhere
    x = torch.zeros(1, 3, 32, 32)
    x[..., 14:18, 14:18] = 1
    model = MeanModel(region=(slice(14, 18), slice(14, 18)))
    blurred = gaussian_blur(x, [11, 11], [5.0, 5.0])
    p0 = float(blurred[0, 0, 14:18, 14:18].mean())
    salient = torch.zeros(1, 32, 32)
    salient[:, 14:18, 14:18] = 1
    frac, probs = insertion_curve(model, x, salient, 0, n_steps=64)  # 16 pixels per step: the square at step 1
    assert probs[0, 0] == pytest.approx(p0, abs=1e-7)
    assert_close(probs[0, 1:], torch.ones(64, dtype=torch.float64), atol=1e-9, rtol=0)
    auc = insertion_auc(model, x, salient, 0, n_steps=64)
    assert auc == pytest.approx((p0 + 1) / 2 / 64 + 63 / 64, abs=1e-7)
    # the square inserted last: p0 until the last step
    late = insertion_auc(model, x, 1 - salient, 0, n_steps=64)
    assert late == pytest.approx(p0 * 63 / 64 + (p0 + 1) / 2 / 64, abs=1e-7)


# ---------------------------------------------------------------------- average drop / increase in confidence
def test_average_drop_and_increase_in_confidence():
    x = torch.full((2, 3, 4, 4), 0.5)
    half = torch.zeros(2, 4, 4)
    half[..., :2] = 1
    ones = torch.ones(2, 4, 4)
    # showing the whole image changes nothing
    assert average_drop(MeanModel(), x, ones, 0) == pytest.approx(0.0)
    assert increase_in_confidence(MeanModel(), x, ones, 0) == pytest.approx(0.0)
    # p = mean: Y = 1/2, O = mean(x * L) = 1/4: drop (1/2 - 1/4) / (1/2) = 50 %
    assert average_drop(MeanModel(), x, half, 0) == pytest.approx(50.0)
    assert increase_in_confidence(MeanModel(), x, half, 0) == pytest.approx(0.0)
    # p = 1 - mean: Y = 1/2, O = 3/4: no drop, confidence increases for every image
    assert average_drop(MeanModel(invert=True), x, half, 0) == pytest.approx(0.0)
    assert increase_in_confidence(MeanModel(invert=True), x, half, 0) == pytest.approx(100.0)
    # one image of each, per image with reduction="none"
    mixed = torch.stack([half[0], ones[0]])
    assert_close(average_drop(MeanModel(), x, mixed, 0, reduction="none"), torch.tensor([50.0, 0.0], dtype=torch.float64))
    gained = increase_in_confidence(MeanModel(invert=True), x, mixed, 0, reduction="none")
    assert gained.tolist() == [True, False]
    assert increase_in_confidence(MeanModel(invert=True), x, mixed, 0) == pytest.approx(50.0)


# ---------------------------------------------------------------------- shared deletion / insertion curves
def test_shared_curves_equal_the_separate_curves():
    from course_lib.saliency.metrics import deletion_insertion_curves

    torch.manual_seed(0)
    model = SmallCNN(num_classes=5, width=8).eval()
    x = torch.rand(3, 3, 24, 24)
    maps = {"a": torch.rand(3, 24, 24), "b": torch.rand(3, 24, 24)}
    maps["b"][0, :6] = 1.0  # ties: raster order decides, as in deletion_curve
    f, curves = deletion_insertion_curves(model, x, maps, torch.tensor([0, 3, 1]), n_steps=6, baseline=0.25,
                                          batch_size=5)
    for name, m in maps.items():
        fd, pd = deletion_curve(model, x, m, torch.tensor([0, 3, 1]), n_steps=6, baseline=0.25)
        fi, pi = insertion_curve(model, x, m, torch.tensor([0, 3, 1]), n_steps=6)
        assert_close(f, fd)
        assert_close(f, fi)
        # the same images in differently sized batches: float32 round-off of a few ulps of probabilities ~0.2
        assert_close(curves[name][0].double(), pd.double(), atol=1e-5, rtol=0)
        assert_close(curves[name][1].double(), pi.double(), atol=1e-5, rtol=0)


def test_shared_curves_rejects_a_bare_tensor():
    from course_lib.saliency.metrics import deletion_insertion_curves

    with pytest.raises(TypeError, match="dict"):
        deletion_insertion_curves(SmallCNN(num_classes=5, width=8), torch.rand(1, 3, 16, 16), torch.rand(1, 16, 16))


# ---------------------------------------------------------------------- state and errors
def test_metrics_restore_the_mode_and_leave_no_grad():
    model = SmallCNN(num_classes=5, width=8).train()
    x, maps = torch.rand(2, 3, 16, 16), torch.rand(2, 16, 16)
    running = model.features[1].running_mean.clone()
    for fn in (deletion_auc, insertion_auc):
        fn(model, x, maps, n_steps=4)
    average_drop(model, x, maps)
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(model.features[1].running_mean, running)
    assert all(p.grad is None for p in model.parameters())


def test_metric_errors():
    model = SmallCNN(num_classes=5, width=8)
    x, maps = torch.rand(2, 3, 16, 16), torch.rand(2, 16, 16)
    with pytest.raises(ValueError, match=r"maps must have shape \(2, 16, 16\) to match the images, got shape \(2, 8, 8\)"):
        deletion_auc(model, x, torch.rand(2, 8, 8))
    with pytest.raises(ValueError, match="maps must be 3-D"):
        insertion_auc(model, x, torch.rand(16, 16))
    with pytest.raises(ValueError, match=r"targets must be class indices in \[0, 5\)"):
        deletion_auc(model, x, maps, targets=7, n_steps=2)
    with pytest.raises(ValueError, match="n_steps must be <= 256"):
        deletion_auc(model, x, maps, n_steps=257)
    with pytest.raises(ValueError, match="blur_kernel must be odd"):
        insertion_auc(model, x, maps, blur_kernel=4)
    with pytest.raises(ValueError, match=r"reduction must be one of \['mean', 'none'\]"):
        deletion_auc(model, x, maps, reduction="sum")
    with pytest.raises(ValueError, match=r"maps must have values in \[0, 1\]"):
        average_drop(model, x, maps * 3)
    with pytest.raises(TypeError, match="masks must be a bool tensor"):
        pointing_game(maps, torch.ones(2, 16, 16))
    with pytest.raises(ValueError, match=r"masks must have the maps' shape \(2, 16, 16\)"):
        pointing_game(maps, torch.ones(2, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\], got 1.5"):
        saliency_to_box(maps, 1.5)
    with pytest.raises(ValueError, match="maps must be 2-D or 3-D"):
        saliency_to_box(torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="maps contains 1 NaN"):
        bad = maps.clone()
        bad[0, 0, 0] = float("nan")
        saliency_to_box(bad)
    with pytest.raises(ValueError, match=r"gt_boxes must have shape \(2, 4\) or \(2, K, 4\)"):
        corloc(torch.rand(2, 4) + 0.1, torch.rand(3, 4))
    with pytest.raises(ValueError, match=r"iou must be in \(0, 1\]"):
        corloc(torch.full((2, 4), 0.5), torch.full((2, 4), 0.5), iou=0.0)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        deletion_auc("model", x, maps)


@pytest.mark.cuda
def test_metrics_cpu_gpu_parity():
    model = SmallCNN(num_classes=5, width=8).eval()
    x, maps = torch.rand(3, 3, 16, 16), torch.rand(3, 16, 16)
    cpu = [deletion_auc(model, x, maps, n_steps=8), insertion_auc(model, x, maps, n_steps=8),
           average_drop(model, x, maps), saliency_to_box(maps, 0.5)]
    model.cuda()
    xg, mg = x.cuda(), maps.cuda()
    gpu = [deletion_auc(model, xg, mg, n_steps=8), insertion_auc(model, xg, mg, n_steps=8),
           average_drop(model, xg, mg), saliency_to_box(mg, 0.5)]
    for a, b in zip(cpu[:3], gpu[:3], strict=True):
        assert a == pytest.approx(b, abs=1e-4)
    assert gpu[3].device.type == "cuda"
    assert_close(gpu[3].cpu(), cpu[3])
