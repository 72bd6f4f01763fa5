"""course_lib.localization: box conversions and IoU against torchvision, the multitask and quick losses against
their formulas written with plain torch, the two-head models, the metrics, and the Oxford-IIIT Pet loader
(offline behaviour, and the real parsing code on a tiny dataset written here)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_convert
from torchvision.ops import box_iou as tv_box_iou
from torchvision.ops import clip_boxes_to_image as tv_clip

from course_lib.boxes import clip_boxes_to_image, hflip_boxes, mask_to_box
from course_lib.data import DataUnavailableError, ShapesDataset, load_oxford_pets
from course_lib.localization import (
    Localizer,
    QuickLocalizer,
    box_iou,
    evaluate_localizer,
    localization_metrics,
    multitask_loss,
    paired_box_iou,
    quick_loss,
    xyhw_to_xyxy,
    xyxy_to_xyhw,
)
from course_lib.models import SmallCNN


def _random_boxes(n, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(n, 2, generator=g, dtype=dtype)
    size = 0.05 + 0.6 * torch.rand(n, 2, generator=g, dtype=dtype)
    return torch.cat([centre, size], dim=1)


# ------------------------------------------------------------------------------------------ conversions
def test_xyhw_to_xyxy_hand_case_mind_the_order():
    # centre (0.5, 0.25), height 0.5, width 1.0 on a 64 (H) x 32 (W) image
    b = torch.tensor([0.5, 0.25, 0.5, 1.0])
    torch.testing.assert_close(xyhw_to_xyxy(b), torch.tensor([0.0, 0.0, 1.0, 0.5]))
    torch.testing.assert_close(xyhw_to_xyxy(b, image_size=(64, 32)), torch.tensor([0.0, 0.0, 32.0, 32.0]))
    torch.testing.assert_close(xyhw_to_xyxy(b, image_size=10), torch.tensor([0.0, 0.0, 10.0, 5.0]))


def test_xyhw_to_xyxy_matches_torchvision_box_convert():
    b = _random_boxes(50)
    # torchvision's "cxcywh" is (cx, cy, w, h): swap our (h, w)
    expected = box_convert(b[:, [0, 1, 3, 2]], in_fmt="cxcywh", out_fmt="xyxy")
    torch.testing.assert_close(xyhw_to_xyxy(b), expected)
    torch.testing.assert_close(xyxy_to_xyhw(expected), b)


@pytest.mark.parametrize("image_size", [None, 64, (48, 80)])
def test_conversions_round_trip(image_size):
    b = _random_boxes(100, seed=1, dtype=torch.float64)
    torch.testing.assert_close(xyxy_to_xyhw(xyhw_to_xyxy(b, image_size), image_size), b)
    batch = b.reshape(10, 10, 4)  # any leading shape
    assert xyhw_to_xyxy(batch).shape == (10, 10, 4)


def test_hflip_boxes_matches_flipping_the_mask_and_is_an_involution():
    ds = ShapesDataset(20, size=32, seed=3)
    torch.testing.assert_close(hflip_boxes(ds.boxes), mask_to_box(ds.masks.flip(-1)))
    torch.testing.assert_close(hflip_boxes(hflip_boxes(ds.boxes)), ds.boxes)


def test_clip_boxes_to_image_matches_torchvision():
    b = torch.tensor([[0.0, 0.5, 0.5, 0.5], [0.9, 1.0, 0.6, 0.8], [0.5, 0.5, 0.2, 0.2]])
    expected = tv_clip(xyhw_to_xyxy(b, image_size=(40, 60)), size=(40, 60))
    torch.testing.assert_close(xyhw_to_xyxy(clip_boxes_to_image(b), image_size=(40, 60)), expected)
    torch.testing.assert_close(clip_boxes_to_image(b[2:]), b[2:])  # inside: unchanged
    with pytest.raises(ValueError, match="entirely outside"):
        clip_boxes_to_image(torch.tensor([[1.5, 0.5, 0.2, 0.2]]))


# ------------------------------------------------------------------------------------------------ IoU
def test_box_iou_hand_cases():
    a = torch.tensor([[0.5, 0.5, 0.5, 0.5]])  # corners (0.25, 0.25, 0.75, 0.75), area 0.25
    b = torch.tensor([[0.5, 0.5, 0.5, 0.25], [0.75, 0.75, 0.5, 0.5], [0.2, 0.2, 0.1, 0.1]])
    # half of a / quarter overlap: 0.0625 / (0.25 + 0.25 - 0.0625) / disjoint
    torch.testing.assert_close(box_iou(a, b), torch.tensor([[0.5, 0.0625 / 0.4375, 0.0]]))


def test_box_iou_matches_torchvision_on_pixel_boxes():
    b1, b2 = _random_boxes(30, seed=4), _random_boxes(20, seed=5)
    expected = tv_box_iou(xyhw_to_xyxy(b1, image_size=(48, 80)), xyhw_to_xyxy(b2, image_size=(48, 80)))
    torch.testing.assert_close(box_iou(b1, b2), expected)
    assert box_iou(b1, b2).shape == (30, 20)
    torch.testing.assert_close(torch.diagonal(box_iou(b1, b1)), torch.ones(30))


def test_paired_box_iou_is_the_diagonal_of_torchvisions_matrix():
    b1, b2 = _random_boxes(40, seed=6), _random_boxes(40, seed=7)
    expected = torch.diagonal(tv_box_iou(xyhw_to_xyxy(b1), xyhw_to_xyxy(b2)))
    torch.testing.assert_close(paired_box_iou(b1, b2), expected)
    torch.testing.assert_close(paired_box_iou(b1, b2), paired_box_iou(b2, b1))  # symmetric


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
    pred, true = torch.randn(16, 4, generator=g) * 0.3 + 0.5, _random_boxes(16, seed=9)
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
    y, b = torch.randint(2, (12,), generator=g), _random_boxes(12, seed=11, dtype=torch.float64).clamp(0, 1)

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


# ---------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("boxes", "match"),
    [
        (torch.tensor([[0.5, 0.5, 0.0, 0.2]]), "positive height h and width w"),
        (torch.tensor([[0.5, 0.5, 0.2, -0.1]]), "positive height h and width w"),
        (torch.tensor([[0.5, 0.5, 0.2]]), "4 numbers"),
        (torch.tensor([[0.5, float("nan"), 0.2, 0.2]]), "NaN or infinite"),
        (torch.tensor([[0.5, 0.5, float("inf"), 0.2]]), "NaN or infinite"),
    ],
)
def test_bad_boxes_raise_clear_errors(boxes, match):
    with pytest.raises(ValueError, match=match):
        xyhw_to_xyxy(boxes)
    with pytest.raises(ValueError, match=match):
        box_iou(boxes, boxes)
    with pytest.raises(ValueError, match=match):
        multitask_loss(torch.zeros(1, 2), torch.zeros(1, 4), torch.tensor([0]), boxes)


def test_bad_corners_and_types():
    with pytest.raises(ValueError, match="positive width x2 - x1"):
        xyxy_to_xyhw(torch.tensor([0.5, 0.1, 0.4, 0.9]))
    with pytest.raises(TypeError, match="floating-point"):
        xyhw_to_xyxy(torch.tensor([1, 1, 1, 1]))
    with pytest.raises(TypeError, match="torch.Tensor or numpy.ndarray"):
        xyhw_to_xyxy([0.5, 0.5, 0.2, 0.2])
    with pytest.raises(TypeError, match="image_size"):
        xyhw_to_xyxy(torch.tensor([0.5, 0.5, 0.2, 0.2]), image_size=(1, 2, 3))
    with pytest.raises(ValueError, match=r"boxes1 must be 2-D \(N, 4\)"):
        box_iou(torch.tensor([0.5, 0.5, 0.2, 0.2]), torch.tensor([[0.5, 0.5, 0.2, 0.2]]))
    with pytest.raises(ValueError, match="same shape"):
        paired_box_iou(_random_boxes(3), _random_boxes(4))


def test_multitask_loss_bad_arguments():
    z, p, y, b = torch.zeros(2, 3), torch.zeros(2, 4), torch.tensor([0, 2]), _random_boxes(2)
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


# ---------------------------------------------------------------------------------- Oxford-IIIT Pet
def test_oxford_pets_offline_without_download(tmp_path):
    with pytest.raises(DataUnavailableError, match="download=False"):
        load_oxford_pets(tmp_path, download=False)


def test_oxford_pets_offline_never_tries_to_download(tmp_path, monkeypatch):
    from torchvision.datasets import OxfordIIITPet

    import course_lib.data as data

    monkeypatch.setattr(data.availability, "network_available", lambda *a, **k: False)

    def no_download(self):
        raise AssertionError("load_oxford_pets tried to download without a network")

    monkeypatch.setattr(OxfordIIITPet, "_download", no_download)
    with pytest.raises(DataUnavailableError, match="cannot be reached.*ShapesDataset"):
        load_oxford_pets(tmp_path, download=True)


def _write_fake_pets(root):
    """Two annotated images and one without a head box, in the layout of the real archives."""
    from PIL import Image

    base = root / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "xmls").mkdir(parents=True)
    specs = [("Abyssinian_1", 60, 40, "cat", (11, 5, 30, 24)), ("beagle_7", 50, 80, "dog", (1, 1, 50, 40)),
             ("beagle_9", 30, 30, None, None)]
    lines = []
    for name, w, h, species, bb in specs:
        Image.new("RGB", (w, h), (200, 100, 50)).save(base / "images" / f"{name}.jpg")
        lines.append(f"{name} 1 {1 if species != 'dog' else 2} 1")
        if bb is None:
            continue
        xml = (f"<annotation><filename>{name}.jpg</filename><size><width>{w}</width><height>{h}</height>"
               f"<depth>3</depth></size><object><name>{species}</name><bndbox><xmin>{bb[0]}</xmin>"
               f"<ymin>{bb[1]}</ymin><xmax>{bb[2]}</xmax><ymax>{bb[3]}</ymax></bndbox></object></annotation>")
        (base / "annotations" / "xmls" / f"{name}.xml").write_text(xml)
    (base / "annotations" / "trainval.txt").write_text("\n".join(lines) + "\n")
    (base / "annotations" / "test.txt").write_text("")


def test_oxford_pets_reads_head_boxes_from_a_local_copy(tmp_path):
    _write_fake_pets(tmp_path)
    images, labels, boxes = load_oxford_pets(tmp_path, size=16, download=False)
    assert images.shape == (2, 3, 16, 16) and images.dtype == torch.float32
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    assert labels.tolist() == [0, 1]  # cat, dog; the image without a head box is skipped
    # VOC corners are 1-based and inclusive: pixels 11..30 of 60 -> [10, 30] / 60
    cat = [(10 + 30) / 2 / 60, (4 + 24) / 2 / 40, 20 / 40, 20 / 60]
    dog = [(0 + 50) / 2 / 50, (0 + 40) / 2 / 80, 40 / 80, 50 / 50]
    torch.testing.assert_close(boxes, torch.tensor([cat, dog]))
    assert load_oxford_pets(tmp_path, size=16, download=False, max_images=1)[0].shape[0] == 1


# ------------------------------------------------------------------------------------------ CPU / GPU
@pytest.mark.cuda
def test_cpu_cuda_parity():
    b1, b2 = _random_boxes(30, seed=13), _random_boxes(30, seed=14)
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


# ------------------------------------------------------------------------------------------------ zoo
def test_zoo_localizer_meets_its_targets_on_fresh_heldout_images():
    from course_lib import zoo

    model = zoo.load("shapes_localizer", device="cpu")
    heldout = ShapesDataset(300, seed=101)  # the recipe trains on seed 100
    m = evaluate_localizer(model, heldout.images, heldout.labels, heldout.boxes)
    assert m["accuracy"] >= 0.95 and m["mean_iou"] >= 0.75, m
    quick = zoo.load("shapes_quick_localizer", device="cpu")
    two = heldout.labels < 2
    q = evaluate_localizer(quick, heldout.images[two], heldout.labels[two], heldout.boxes[two])
    assert q["accuracy"] >= 0.9, q
