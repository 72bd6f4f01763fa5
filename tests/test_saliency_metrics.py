"""Metrics for saliency maps (course_lib.saliency.metrics) on toy cases with exact answers."""

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


# ---------------------------------------------------------------------- pointing game
def test_pointing_game():
    maps = torch.zeros(3, 8, 8)
    maps[0, 1, 1] = 1  # on the mask
    maps[1, 6, 6] = 1  # far from it
    maps[2, 4, 2] = 1  # two pixels below the mask's lowest row (row 2)
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[:, 0:3, 0:3] = True
    assert pointing_game(maps, masks) == pytest.approx(1 / 3)
    assert pointing_game(maps, masks, reduction="none").tolist() == [True, False, False]
    assert pointing_game(maps, masks, tolerance=2.0, reduction="none").tolist() == [True, False, True]
    assert pointing_game(maps, masks, tolerance=1.9, reduction="none").tolist() == [True, False, False]
    # a constant map points nowhere, even when its first pixel is on the mask
    assert pointing_game(torch.zeros(1, 8, 8), masks[:1]) == 0.0


# ---------------------------------------------------------------------- saliency -> box
def test_saliency_to_box_takes_the_largest_component():
    m = torch.zeros(10, 20)
    m[1:4, 2:6] = 1.0  # 12 pixels
    m[5:9, 10:18] = 0.6  # 32 pixels, weaker but larger
    m[0, 19] = 0.9
    box = saliency_to_box(m, threshold=0.5)  # keeps all three: the 4×8 block wins
    assert_close(box, torch.tensor([14 / 20, 7 / 10, 4 / 10, 8 / 20]))
    # above 0.7 of the max only the 3×4 block and the single pixel remain
    assert_close(saliency_to_box(m, threshold=0.7), torch.tensor([4 / 20, 2.5 / 10, 3 / 10, 4 / 20]))


def test_saliency_to_box_connectivity_batch_and_edge_cases():
    m = torch.zeros(2, 6, 6)
    m[0, 0, 0] = m[0, 1, 1] = m[0, 2, 2] = 1.0  # a diagonal: one component with 8-connectivity
    m[0, 5, 5] = 1.0
    m[1] = 0.0  # all zero: every pixel is kept
    boxes = saliency_to_box(m, threshold=0.5)
    assert boxes.shape == (2, 4)
    assert_close(boxes[0], torch.tensor([1.5 / 6, 1.5 / 6, 3 / 6, 3 / 6]))
    assert_close(boxes[1], torch.tensor([0.5, 0.5, 1.0, 1.0]))
    # threshold 0 keeps everything; threshold 1 keeps the maxima only
    ramp = torch.arange(16.0).view(4, 4)
    assert_close(saliency_to_box(ramp, 0.0), torch.tensor([0.5, 0.5, 1.0, 1.0]))
    assert_close(saliency_to_box(ramp, 1.0), torch.tensor([3.5 / 4, 3.5 / 4, 1 / 4, 1 / 4]))


# ---------------------------------------------------------------------- CorLoc
def test_corloc():
    gt = torch.tensor([[0.5, 0.5, 0.5, 0.5]] * 3)
    pred = torch.tensor(
        [
            [0.5, 0.5, 0.5, 0.25],  # IoU = 0.5 exactly: a hit
            [0.5, 0.5, 0.5, 0.24],  # IoU = 0.48: a miss
            [0.75, 0.75, 0.5, 0.5],  # IoU = 1/7
        ]
    )
    assert corloc(pred, gt, reduction="none").tolist() == [True, False, False]
    assert corloc(pred, gt) == pytest.approx(1 / 3)
    assert corloc(pred, gt, iou=1 / 7) == pytest.approx(1.0)
    # several ground-truth boxes per image: any of them counts; an empty box matches nothing
    multi = torch.stack([gt, torch.tensor([[0.75, 0.75, 0.5, 0.24]] * 3)], dim=1)
    multi[2, 1] = torch.tensor([0.75, 0.75, 0.5, 0.5])
    multi[1, 0] = 0.0
    assert corloc(pred, multi, reduction="none").tolist() == [True, False, True]


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


# ---------------------------------------------------------------------- bootstrap
def test_bootstrap_interval_matches_scipy_and_the_normal_approximation():
    import numpy as np
    from scipy.stats import bootstrap

    from course_lib.saliency.metrics import bootstrap_interval

    values = torch.randn(400, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 + 1
    mean, low, high = bootstrap_interval(values, 0.95, n_resamples=4000, seed=1)
    assert mean == pytest.approx(float(values.mean()), abs=1e-12)
    ref = bootstrap((values.numpy(),), np.mean, confidence_level=0.95, n_resamples=4000, method="percentile",
                    random_state=0).confidence_interval
    # two independent bootstrap runs of B = 4000: their quantiles differ by a few % of the interval's width
    half = 1.96 * float(values.std()) / 400**0.5
    assert low == pytest.approx(ref.low, abs=0.1 * half) and high == pytest.approx(ref.high, abs=0.1 * half)
    assert low == pytest.approx(mean - half, abs=0.1 * half) and high == pytest.approx(mean + half, abs=0.1 * half)


def test_bootstrap_interval_of_constant_values_and_bools():
    from course_lib.saliency.metrics import bootstrap_interval

    assert bootstrap_interval([0.25] * 10) == (0.25, 0.25, 0.25)
    mean, low, high = bootstrap_interval(torch.tensor([True, False, False, False] * 25))
    assert mean == 0.25 and low < 0.25 < high
    assert bootstrap_interval(torch.arange(20.0), seed=3) == bootstrap_interval(torch.arange(20.0), seed=3)


@pytest.mark.parametrize("bad, match", [([1.0], "at least 2"), ([[1.0, 2.0]], "1-D"), ([1.0, float("nan")], "finite")])
def test_bootstrap_interval_rejects_bad_values(bad, match):
    from course_lib.saliency.metrics import bootstrap_interval

    with pytest.raises(ValueError, match=match):
        bootstrap_interval(bad)


def test_bootstrap_interval_rejects_bad_confidence():
    from course_lib.saliency.metrics import bootstrap_interval

    with pytest.raises(ValueError, match="confidence"):
        bootstrap_interval([1.0, 2.0], confidence=1.0)


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


from course_lib.saliency import metrics  # noqa: E402


def test_mask_iou_equals_sklearn_jaccard_per_image():
    from sklearn.metrics import jaccard_score

    g = torch.Generator().manual_seed(0)
    maps, masks = torch.rand(5, 9, 7, generator=g), torch.rand(5, 9, 7, generator=g) > 0.6
    per_image = metrics.mask_iou(maps, masks, 0.4, reduction="none")
    expected = [jaccard_score(m.flatten().numpy(), (s >= 0.4).flatten().numpy()) for s, m in zip(maps, masks, strict=True)]
    assert torch.allclose(per_image.double(), torch.tensor(expected, dtype=torch.float64), atol=1e-6)
    assert metrics.mask_iou(maps, masks, 0.4) == pytest.approx(float(per_image.mean()))
    empty = torch.zeros(1, 2, 2, dtype=torch.bool)
    assert metrics.mask_iou(torch.zeros(1, 2, 2), empty, 0.5) == 0.0  # nothing kept, nothing to find


def test_mask_iou_bad_input():
    maps = torch.rand(2, 4, 4)
    with pytest.raises(TypeError, match="masks"):
        metrics.mask_iou(maps, torch.zeros(2, 4, 4), 0.5)
    with pytest.raises(ValueError, match="masks"):
        metrics.mask_iou(maps, torch.zeros(2, 4, 5, dtype=torch.bool), 0.5)
    with pytest.raises(ValueError, match="tau"):
        metrics.mask_iou(maps, torch.zeros(2, 4, 4, dtype=torch.bool), 1.5)
