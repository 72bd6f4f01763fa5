"""course_lib.pose and PoseFiguresDataset: normalization, flips with swaps, PCK/PDJ on hand-computed cases,
crops, the DeepPose regressor and cascade stage on fixed weights, the LSP loader offline, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib import pose
from course_lib.boxes import square_boxes
from course_lib.data import DataUnavailableError, PoseFiguresDataset, load_lsp
from course_lib.joints import FLIP_PERMUTATION
from course_lib.pose import (
    FLIP_PAIRS,
    JOINT_NAMES,
    PoseRegressor,
    RefinementStage,
    augment_crops,
    crop_boxes,
    denormalize_joints,
    hflip_joints,
    hflip_pose,
    normalize_joints,
    pck,
    pdj,
    pose_loader,
    pose_loss,
    predict_joints,
    swap_left_right,
    torso_diameter,
)

LSP_ORDER = ["right ankle", "right knee", "right hip", "left hip", "left knee", "left ankle", "right wrist",
             "right elbow", "right shoulder", "left shoulder", "left elbow", "left wrist", "neck", "head top"]


@pytest.fixture(scope="module")
def figures():
    return PoseFiguresDataset(48, seed=3)


def _pose_with_torso(torso: float = 1.0) -> torch.Tensor:
    """A pose whose left shoulder and right hip are ``torso`` apart; other joints spread on a line."""
    gt = torch.zeros(14, 2)
    gt[:, 0] = torch.arange(14, dtype=torch.float32) * 0.01
    gt[JOINT_NAMES.index("right_hip")] = torch.tensor([0.0, 0.0])
    gt[JOINT_NAMES.index("left_shoulder")] = torch.tensor([0.6 * torso, 0.8 * torso])
    return gt


# ------------------------------------------------------------------------------------------ joint names
def test_joint_names_follow_lsp_order():
    assert [n.replace("_", " ") for n in JOINT_NAMES] == LSP_ORDER


def test_flip_pairs_join_the_same_part_on_both_sides():
    paired = set()
    for right, left in FLIP_PAIRS:
        assert JOINT_NAMES[right].startswith("right_") and JOINT_NAMES[left].startswith("left_")
        assert JOINT_NAMES[right][len("right_"):] == JOINT_NAMES[left][len("left_"):]
        paired |= {right, left}
    assert sorted(set(range(14)) - paired) == [JOINT_NAMES.index("neck"), JOINT_NAMES.index("head_top")]
    perm = torch.tensor(FLIP_PERMUTATION)
    assert torch.equal(perm[perm], torch.arange(14))  # an involution


# ------------------------------------------------------------------------------------------ normalization
def test_normalize_joints_hand_case():
    box = torch.tensor([0.5, 0.25, 0.5, 0.2])  # centre (0.5, 0.25), h 0.5, w 0.2
    j = torch.zeros(14, 2)
    j[0] = torch.tensor([0.6, 0.5])
    j[1] = torch.tensor([0.5, 0.25])
    z = normalize_joints(j, box)
    torch.testing.assert_close(z[0], torch.tensor([0.1 / 0.2, 0.25 / 0.5]))
    torch.testing.assert_close(z[1], torch.zeros(2))
    torch.testing.assert_close(z[2], torch.tensor([-0.5 / 0.2, -0.25 / 0.5]))


def test_normalize_denormalize_round_trip_batched_and_broadcast():
    j = torch.rand(5, 14, 2, dtype=torch.float64)
    boxes = torch.rand(5, 4, dtype=torch.float64) + 0.1
    torch.testing.assert_close(denormalize_joints(normalize_joints(j, boxes), boxes), j)
    one = torch.tensor([0.4, 0.6, 0.3, 0.7], dtype=torch.float64)
    torch.testing.assert_close(normalize_joints(j, one), normalize_joints(j, one.expand(5, 4)))


def test_box_corners_normalize_to_plus_minus_half():
    box = torch.tensor([0.3, 0.7, 0.2, 0.4])
    j = torch.zeros(14, 2)
    j[0] = torch.tensor([0.3 - 0.2, 0.7 - 0.1])  # top-left corner
    j[1] = torch.tensor([0.3 + 0.2, 0.7 + 0.1])  # bottom-right corner
    z = normalize_joints(j, box)
    torch.testing.assert_close(z[:2], torch.tensor([[-0.5, -0.5], [0.5, 0.5]]))


@pytest.mark.parametrize("bad, msg", [([0.5, 0.5, 0.0, 0.2], "h > 0"), ([0.5, 0.5, 0.3, -0.1], "w > 0")])
def test_boxes_without_area_are_rejected(bad, msg):
    with pytest.raises(ValueError, match=msg):
        normalize_joints(torch.rand(14, 2), torch.tensor(bad))
    with pytest.raises(ValueError, match=msg):
        denormalize_joints(torch.rand(14, 2), torch.tensor(bad))


def test_wrong_joint_count_is_rejected():
    with pytest.raises(ValueError, match="14 joints"):
        normalize_joints(torch.rand(2, 13, 2), torch.rand(2, 4) + 0.1)
    with pytest.raises(ValueError, match="14 joints"):
        pck(torch.rand(16, 2), torch.rand(16, 2))
    with pytest.raises(ValueError, match="14 joints"):
        hflip_joints(torch.rand(14, 3))


def test_nan_joints_are_rejected():
    j = torch.rand(3, 14, 2)
    j[1, 4, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        normalize_joints(j, torch.rand(3, 4) + 0.1)
    with pytest.raises(ValueError, match="NaN"):
        pck(j, torch.rand(3, 14, 2))
    with pytest.raises(ValueError, match="NaN"):
        hflip_pose(torch.rand(3, 3, 8, 8), j)


def test_box_count_must_match_and_types_are_checked():
    with pytest.raises(ValueError, match="one box per image"):
        normalize_joints(torch.rand(3, 14, 2), torch.rand(2, 4) + 0.1)
    with pytest.raises(TypeError, match="torch.Tensor"):
        normalize_joints([[0.0, 0.0]] * 14, torch.rand(4) + 0.1)
    with pytest.raises(TypeError, match="floating-point"):
        normalize_joints(torch.zeros(14, 2, dtype=torch.long), torch.rand(4) + 0.1)


# ------------------------------------------------------------------------------------------ flips
def test_hflip_twice_is_the_identity():
    images, joints, vis = torch.rand(4, 3, 9, 11), torch.rand(4, 14, 2), torch.rand(4, 14) > 0.3
    i1, j1, v1 = hflip_pose(images, joints, vis)
    i2, j2, v2 = hflip_pose(i1, j1, v1)
    assert torch.equal(i2, images) and torch.equal(v2, vis)
    torch.testing.assert_close(j2, joints, atol=1e-6, rtol=0)
    z = torch.rand(14, 2) - 0.5
    torch.testing.assert_close(hflip_joints(hflip_joints(z, coords="centered"), coords="centered"), z)


def test_hflip_mirrors_x_and_swaps_each_pair():
    j = torch.rand(14, 2)
    out = hflip_joints(j)
    for right, left in FLIP_PAIRS:
        torch.testing.assert_close(out[left], torch.stack([1 - j[right, 0], j[right, 1]]))
        torch.testing.assert_close(out[right], torch.stack([1 - j[left, 0], j[left, 1]]))
    for c in (JOINT_NAMES.index("neck"), JOINT_NAMES.index("head_top")):
        torch.testing.assert_close(out[c], torch.stack([1 - j[c, 0], j[c, 1]]))
    bug = hflip_joints(j, swap=False)  # the bug: mirrored, but the labels stay where they were
    torch.testing.assert_close(bug, torch.stack([1 - j[:, 0], j[:, 1]], 1))
    torch.testing.assert_close(hflip_joints(j - 0.5, coords="centered"), out - 0.5)


def test_flipped_joint_lands_on_the_flipped_pixel():
    # a joint at the centre of pixel (row 2, col 3) of an 8 x 10 image; after the flip, the lit pixel and the
    # flipped joint (now labelled as the partner joint) coincide
    img = torch.zeros(3, 8, 10)
    img[:, 2, 3] = 1.0
    j = torch.full((14, 2), 0.5)
    wrist = JOINT_NAMES.index("right_wrist")
    j[wrist] = torch.tensor([(3 + 0.5) / 10, (2 + 0.5) / 8])
    img2, j2 = hflip_pose(img, j)
    row, col = (img2[0] == 1).nonzero()[0].tolist()
    partner = JOINT_NAMES.index("left_wrist")
    torch.testing.assert_close(j2[partner], torch.tensor([(col + 0.5) / 10, (row + 0.5) / 8]))


def test_swap_left_right_on_flags_and_bad_shapes():
    flags = torch.zeros(2, 14, dtype=torch.bool)
    flags[:, JOINT_NAMES.index("right_knee")] = True
    out = swap_left_right(flags)
    assert out[:, JOINT_NAMES.index("left_knee")].all() and out.sum() == 2
    with pytest.raises(ValueError, match="14"):
        swap_left_right(torch.rand(3, 5))


# ------------------------------------------------------------------------------------------ metrics
def test_torso_diameter_is_left_shoulder_to_right_hip():
    gt = _pose_with_torso(2.5)
    torch.testing.assert_close(torso_diameter(gt), torch.tensor(2.5))


def test_pck_hand_computed():
    gt = _pose_with_torso(1.0).expand(2, 14, 2).clone()
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
    gt, pred = _pose_with_torso(1.0), _pose_with_torso(1.0)
    pred[3, 0] += 0.15
    assert float(pck(pred * 7, gt * 7)) == float(pck(pred, gt)) == 1.0
    # shrinking the *predicted* torso does not change the threshold
    pred2 = pred.clone()
    pred2[JOINT_NAMES.index("left_shoulder")] = 0.0
    assert float(pck(pred2, gt, alpha=0.2)) == pytest.approx(13 / 14)


def test_pck_with_visibility_counts_only_visible_joints():
    gt = _pose_with_torso(1.0).expand(1, 14, 2).clone()
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
        pck(_pose_with_torso(), _pose_with_torso(), alpha=-0.1)
    with pytest.raises(ValueError, match="same shape"):
        pck(torch.rand(2, 14, 2), torch.rand(3, 14, 2))


def test_pose_loss_is_summed_squared_error_per_pose():
    p, t = torch.randn(6, 14, 2), torch.randn(6, 14, 2)
    torch.testing.assert_close(pose_loss(p, t), F.mse_loss(p, t, reduction="sum") / 6)
    torch.testing.assert_close(pose_loss(p, t, reduction="sum"), F.mse_loss(p, t, reduction="sum"))


# ------------------------------------------------------------------------------------------ crops
def test_crop_of_a_whole_pixel_box_is_a_slice():
    img = torch.rand(1, 3, 20, 30)
    # pixels rows 4..11 and cols 10..17 (8 x 8): centre (14 / 30, 8 / 20), h 8 / 20, w 8 / 30
    box = torch.tensor([[14 / 30, 8 / 20, 8 / 20, 8 / 30]])
    torch.testing.assert_close(crop_boxes(img, box, 8), img[:, :, 4:12, 10:18])


def test_square_boxes_are_square_in_pixels():
    b = torch.tensor([[0.5, 0.4, 0.2, 0.1], [0.3, 0.6, 0.05, 0.5]])
    sq = square_boxes(b, scale=1.5, image_size=(40, 80))
    torch.testing.assert_close(sq[:, 2] * 40, sq[:, 3] * 80)
    torch.testing.assert_close(sq[:, 2] * 40, 1.5 * torch.maximum(b[:, 2] * 40, b[:, 3] * 80))
    torch.testing.assert_close(sq[:, :2], b[:, :2])


def test_normalized_joint_points_at_its_pixel_in_the_crop():
    # a lit pixel in the scene; after cropping its box, the normalized joint points at the lit crop pixel
    img = torch.zeros(1, 3, 40, 40)
    img[0, :, 17, 22] = 1.0
    j = torch.full((1, 14, 2), 0.5)
    j[0, 0] = torch.tensor([22.5 / 40, 17.5 / 40])
    box = torch.tensor([[20 / 40, 16 / 40, 16 / 40, 16 / 40]])  # 16 x 16 pixels: rows 8..23, cols 12..27
    crop = crop_boxes(img, box, 16)
    z = normalize_joints(j, box)[0, 0]
    row, col = (crop[0, 0] == 1).nonzero()[0].tolist()
    torch.testing.assert_close(z, torch.tensor([(col + 0.5) / 16 - 0.5, (row + 0.5) / 16 - 0.5]))


def test_augment_crops_flip_swaps_and_mirrors_consistently(figures):
    x0, y0 = augment_crops(figures.images, figures.joints, figures.boxes)
    g = torch.Generator().manual_seed(0)
    x1, y1 = augment_crops(figures.images, figures.joints, figures.boxes, flip=True, seed=g)
    flipped = (x1 != x0).flatten(1).any(1)
    assert 0 < int(flipped.sum()) < len(figures)
    torch.testing.assert_close(x1[flipped], x0[flipped].flip(-1))
    torch.testing.assert_close(y1[flipped], hflip_joints(y0[flipped], coords="centered"))
    torch.testing.assert_close(y1[~flipped], y0[~flipped])


def test_augment_translation_moves_targets_with_the_crop(figures):
    g = torch.Generator().manual_seed(1)
    x, y = augment_crops(figures.images[:8], figures.joints[:8], figures.boxes[:8], translate=0.2, zoom=0.2,
                         seed=g)
    # the targets are the joints normalized to *some* square box: invert with the box recovered from two joints
    z0, z1 = y[:, 0], y[:, 12]
    j0, j1 = figures.joints[:8, 0], figures.joints[:8, 12]
    side = (j1 - j0) / (z1 - z0)
    torch.testing.assert_close(side[:, 0], side[:, 1], rtol=1e-3, atol=1e-4)  # square box (square image)
    assert float((y.abs() > 0.5).float().mean()) < 0.2


def test_pose_loader_is_deterministic_and_respects_subsets(figures):
    a = [t for t in next(iter(pose_loader(figures, 16, seed=5, translate=0.1, flip=True)))]
    b = [t for t in next(iter(pose_loader(figures, 16, seed=5, translate=0.1, flip=True)))]
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    train, _ = figures.split(0.5)
    x, y = next(iter(pose_loader(train, 100, shuffle=False)))
    assert x.shape[0] == 24
    torch.testing.assert_close(y, augment_crops(figures.images[:24], figures.joints[:24], figures.boxes[:24])[1])
    with pytest.raises(TypeError, match="unknown augmentation"):
        pose_loader(figures, 4, rotate=10)


# ------------------------------------------------------------------------------------------ dataset
def test_pose_figures_ground_truth(figures):
    n, s = len(figures), figures.size
    assert figures.images.shape == (n, 3, s, s) and figures.joints.shape == (n, 14, 2)
    assert figures.visibility.dtype == torch.bool and figures.visibility.shape == (n, 14)
    assert float(figures.images.min()) >= 0 and float(figures.images.max()) <= 1
    # every joint lies on the drawn figure, hence inside its tight box (one pixel of tolerance)
    b = figures.boxes
    lo = (b[:, None, :2] - b[:, None, [3, 2]] / 2) * s - 1
    hi = (b[:, None, :2] + b[:, None, [3, 2]] / 2) * s + 1
    px = figures.joints * s
    assert bool(((px >= lo) & (px <= hi)).all())
    # a visible joint's pixel belongs to the figure (the head top lies on the head's outline: left out)
    ij = px.long().clamp(0, s - 1)
    on_mask = figures.masks[torch.arange(n)[:, None], ij[..., 1], ij[..., 0]]
    inner = figures.visibility.clone()
    inner[:, JOINT_NAMES.index("head_top")] = False
    assert bool(on_mask[inner].all())
    assert 0.85 < float(figures.visibility.float().mean()) < 1.0  # some joints are hidden behind limbs


def test_pose_figures_face_the_viewer_and_sides_differ_in_colour(figures):
    # facing the viewer with a near-upright torso: the right shoulder is on the image's left
    rs, ls = figures.joints[:, JOINT_NAMES.index("right_shoulder")], figures.joints[:, JOINT_NAMES.index("left_shoulder")]
    assert bool((rs[:, 0] < ls[:, 0]).all())
    # the middles of the two thighs carry clearly different colours (median over the images)
    def mid_colour(a: str, b: str) -> torch.Tensor:
        ja, jb = figures.joints[:, JOINT_NAMES.index(a)], figures.joints[:, JOINT_NAMES.index(b)]
        m = ((ja + jb) / 2 * figures.size).long().clamp(0, figures.size - 1)
        return figures.images[torch.arange(len(figures)), :, m[:, 1], m[:, 0]]

    diff = (mid_colour("right_knee", "right_hip") - mid_colour("left_knee", "left_hip")).abs().sum(1)
    assert float(diff.median()) > 0.2


def test_pose_figures_are_deterministic_and_seed_dependent():
    a, b, c = PoseFiguresDataset(6, seed=11), PoseFiguresDataset(6, seed=11), PoseFiguresDataset(6, seed=12)
    assert torch.equal(a.images, b.images) and torch.equal(a.joints, b.joints)
    assert torch.equal(a.visibility, b.visibility)
    assert not torch.equal(a.joints, c.joints)
    image, joints = a[0]
    assert image.shape == (3, 96, 96) and joints.shape == (14, 2)
    a.target = "all"
    assert set(a[0][1]) == {"joints", "visibility", "box", "mask"}


def test_pose_figures_bad_arguments():
    with pytest.raises(ValueError, match="n must be >= 1"):
        PoseFiguresDataset(0)
    with pytest.raises(ValueError, match="target"):
        PoseFiguresDataset(2, target="boxes")
    with pytest.raises(ValueError, match="height"):
        PoseFiguresDataset(2, height=(0.9, 0.5))


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


# ------------------------------------------------------------------------------------------ LSP
def test_load_lsp_offline_raises_a_clear_error(tmp_path):
    with pytest.raises(DataUnavailableError, match="PoseFiguresDataset"):
        load_lsp(tmp_path / "nothing_here", download=False)


def test_load_lsp_reads_a_local_copy(tmp_path):
    import scipy.io
    import skimage.io

    (tmp_path / "images").mkdir()
    raw = np.zeros((3, 14, 3))
    sizes = [(20, 30), (25, 10), (16, 16)]
    for i, (h, w) in enumerate(sizes):
        img = np.full((h, w, 3), 40 * (i + 1), dtype=np.uint8)
        skimage.io.imsave(tmp_path / "images" / f"im{i + 1:04d}.jpg", img, check_contrast=False)
        raw[0, :, i] = np.linspace(1, w, 14)  # MATLAB pixel centres, 1-based
        raw[1, :, i] = np.linspace(1, h, 14)
        raw[2, :, i] = (np.arange(14) % 3 == 0)  # 1 marks an occluded joint
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": raw})
    images, joints, vis = load_lsp(tmp_path, download=False)
    assert [tuple(im.shape) for im in images] == [(3, h, w) for h, w in sizes]
    assert joints.shape == (3, 14, 2) and vis.shape == (3, 14)
    h, w = sizes[1]
    torch.testing.assert_close(joints[1, :, 0], torch.from_numpy((np.linspace(1, w, 14) - 0.5) / w).float())
    torch.testing.assert_close(joints[1, :, 1], torch.from_numpy((np.linspace(1, h, 14) - 0.5) / h).float())
    assert torch.equal(vis[0], torch.from_numpy(np.arange(14) % 3 != 0))
    assert len(load_lsp(tmp_path, split="train", download=False)[0]) == 3
    with pytest.raises(DataUnavailableError, match="empty"):
        load_lsp(tmp_path, split="test", download=False)


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


def test_module_exports_exist():
    for name in pose.__all__:
        assert hasattr(pose, name), name
