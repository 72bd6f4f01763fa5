"""Augmented Grad-CAM: the operators D and A_l, the anisotropic TV and its subgradient, the solver, the explainer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib.saliency.superres import (
    operator_matrix,
    operator_norm_squared,
    sr_objective,
    super_resolve,
    tv_l1,
    tv_l1_subgradient,
)
from course_lib.saliency.warps import affine_matrices, augmentation_params, downsample, warp
from tests.helpers import assert_close


def _identity(n: int = 1, size=(8, 8)) -> torch.Tensor:
    return affine_matrices(torch.zeros(n), torch.zeros(n, 2), size)


# ------------------------------------------------------------------------------------------ TV
def test_tv_hand_computed():
    # |1-0| + |3-3| along x, |3-0| + |3-1| along y
    h = torch.tensor([[0.0, 1.0], [3.0, 3.0]])
    assert float(tv_l1(h)) == 6.0
    # a 3x3 ramp along x: 2 differences of 1 per row, 3 rows; nothing along y
    ramp = torch.arange(3.0).repeat(3, 1)
    assert float(tv_l1(ramp)) == 6.0
    assert float(tv_l1(torch.full((5, 7), 2.5))) == 0.0


def test_tv_batched_one_value_per_map():
    h = torch.rand(2, 3, 6, 5)
    tv = tv_l1(h)
    assert tv.shape == (2, 3)
    assert_close(tv[1, 2], tv_l1(h[1, 2]))


def test_tv_subgradient_hand_computed():
    # s^x = [[1], [0]], s^y = [[1, 1]]; d/dh_ij = s^x_{i,j-1} - s^x_ij + s^y_{i-1,j} - s^y_ij
    h = torch.tensor([[0.0, 1.0], [3.0, 3.0]])
    expected = torch.tensor([[-1.0 - 1.0, 1.0 - 1.0], [0.0 + 1.0, 0.0 + 1.0]])
    assert torch.equal(tv_l1_subgradient(h), expected)


def test_tv_subgradient_3x3_hand_computed():
    h = torch.tensor([[0.0, 2.0, 1.0], [0.0, 0.0, 0.0], [5.0, 5.0, 6.0]])
    # s^x rows: [1, -1], [0, 0], [0, 1];  s^y rows (i=0,1): [0, -1, -1], [1, 1, 1]
    expected = torch.tensor(
        [
            [-1 + 0, 1 + 1 + 1, -1 + 1],
            [0 - 1 + 0, 0 - 1 - 1, 0 - 1 - 1],
            [0 + 1, 0 - 1 + 1, 1 + 1],
        ],
        dtype=torch.float32,
    )
    assert torch.equal(tv_l1_subgradient(h), expected)


def test_tv_subgradient_equals_gradient_where_differentiable():
    g = torch.Generator().manual_seed(1)
    h = torch.rand(2, 7, 9, generator=g, dtype=torch.float64).requires_grad_(True)  # no ties almost surely
    (grad,) = torch.autograd.grad(tv_l1(h).sum(), h)
    assert_close(tv_l1_subgradient(h.detach()), grad)


def test_tv_subgradient_inequality_at_kinks():
    # a map with many ties (non-differentiable points): TV(y) >= TV(x) + <s, y - x> for any y
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 3, (6, 6), generator=g).float()
    s = tv_l1_subgradient(x)
    for _ in range(50):
        y = x + torch.randn(6, 6, generator=g)
        assert float(tv_l1(y)) >= float(tv_l1(x) + (s * (y - x)).sum()) - 1e-5


# ------------------------------------------------------------------------------------------ D
def test_downsample_hand_computed_block_means():
    x = torch.arange(16.0).reshape(4, 4)
    expected = torch.tensor([[(0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4], [(8 + 9 + 12 + 13) / 4, (10 + 11 + 14 + 15) / 4]])
    assert torch.equal(downsample(x, (2, 2)), expected)


def test_downsample_matches_reshape_mean_batched():
    x = torch.rand(2, 3, 12, 8)
    direct = x.reshape(2, 3, 3, 4, 2, 4).mean(dim=(3, 5))
    assert_close(downsample(x, (3, 2)), direct)


# ------------------------------------------------------------------------------------------ A_l
def test_affine_identity_and_identity_warp():
    assert torch.equal(_identity(1)[0], torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    x = torch.rand(2, 3, 5, 7)
    assert_close(warp(x, _identity(1, (5, 7)))[:, 0], x)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_warp_quarter_turns_match_rot90(k):
    x = torch.rand(2, 1, 6, 6)
    theta = affine_matrices(torch.tensor([90.0 * k]), torch.zeros(1, 2), (6, 6))
    assert_close(warp(x, theta)[:, 0], torch.rot90(x, k, dims=(-2, -1)), atol=1e-5, rtol=0)


def test_warp_integer_shift_moves_content_with_zero_fill():
    x = torch.arange(24.0).reshape(1, 1, 4, 6)
    theta = affine_matrices(torch.zeros(1), torch.tensor([[2.0, 1.0]]), (4, 6))  # 2 px right, 1 px down
    expected = torch.zeros_like(x)
    expected[..., 1:, 2:] = x[..., :-1, :-2]
    assert_close(warp(x, theta)[:, 0], expected, atol=1e-5, rtol=0)


def test_warp_rotation_of_rectangular_image_keeps_pixel_geometry():
    # a 180-degree turn of a 4x6 image is a flip of both axes, also when H != W
    x = torch.rand(1, 2, 4, 6)
    theta = affine_matrices(torch.tensor([180.0]), torch.zeros(1, 2), (4, 6))
    assert_close(warp(x, theta)[:, 0], x.flip(-1, -2), atol=1e-5, rtol=0)


def test_warp_batches_every_image_under_every_warp():
    x = torch.rand(3, 2, 8, 8)
    theta = affine_matrices(torch.tensor([0.0, 90.0]), torch.zeros(2, 2), (8, 8))
    out = warp(x, theta)
    assert out.shape == (3, 2, 2, 8, 8)
    assert_close(out[2, 1], torch.rot90(x[2], 1, dims=(-2, -1)), atol=1e-5, rtol=0)


def test_augmentation_params_identity_first_bounds_and_seed():
    a1, s1 = augmentation_params(16, 20.0, 3.0, seed=7)
    a2, s2 = augmentation_params(16, 20.0, 3.0, seed=7)
    a3, _ = augmentation_params(16, 20.0, 3.0, seed=8)
    assert float(a1[0]) == 0.0 and s1[0].tolist() == [0.0, 0.0]
    assert bool((a1.abs() <= 20).all()) and bool((s1.abs() <= 3).all())
    assert torch.equal(a1, a2) and torch.equal(s1, s2)
    assert not torch.equal(a1, a3)
    assert float(a1[1:].abs().max()) > 0


@pytest.mark.parametrize(("size", "low"), [((16, 16), (4, 4)), ((12, 10), (5, 4))])
def test_operator_matrix_equals_warp_then_downsample(size, low):
    # the sparse M = [D A_1; ...; D A_L] against the direct computation, also for sizes that do not divide
    theta = affine_matrices(*augmentation_params(5, 30.0, 3.0, seed=0), size)
    matrix = operator_matrix(theta, size, low)
    assert matrix.shape == (5 * low[0] * low[1], size[0] * size[1])
    h = torch.rand(3, *size, dtype=torch.float64)
    direct = downsample(warp(h[:, None], theta.double())[:, :, 0], low)
    via_matrix = (operator_matrix(theta.double(), size, low) @ h.flatten(1).T).T.reshape(direct.shape)
    assert_close(via_matrix, direct, atol=1e-12, rtol=0)


def test_operator_norm_identity_block_average():
    # D^T D for k x k block averaging has largest eigenvalue 1/k^2
    assert operator_norm_squared(_identity(1, (12, 12)), (12, 12), (3, 3)) == pytest.approx(1 / 16, rel=1e-4)
    # L identical warps: L / k^2
    assert operator_norm_squared(_identity(3, (12, 12)), (12, 12), (3, 3)) == pytest.approx(3 / 16, rel=1e-4)


# ------------------------------------------------------------------------------------------ objective and solver
def test_objective_hand_computed():
    h = torch.zeros(1, 4, 4)
    h[0, :2, :2] = 1.0  # D h = [[1, 0], [0, 0]]; TV = 2 + 2 = 4; ||h||^2 = 4
    g = torch.zeros(1, 2, 2, 2)  # two identity "augmentations", both measuring zeros
    theta = _identity(2, (4, 4))
    value = sr_objective(h, g, theta, lambda_tv=0.5, mu=0.25)
    assert_close(value, torch.tensor([2 * 1.0 + 0.5 * 4 + 0.25 * 4]))


def test_identity_without_regularization_downsamples_back_to_gradcam():
    g = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    out = super_resolve(g, _identity(1, (16, 16)), (16, 16), lambda_tv=0.0, mu=0.0, iterations=80)
    assert_close(downsample(out.maps, (4, 4)), g[:, 0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("optimizer", ["subgradient", "adam"])
def test_solver_objective_decreases(optimizer):
    gen = torch.Generator().manual_seed(3)
    theta = affine_matrices(*augmentation_params(6, 20.0, 2.0, seed=gen), (16, 16))
    g = torch.rand(2, 6, 4, 4, generator=gen)
    out = super_resolve(g, theta, (16, 16), lambda_tv=0.01, mu=0.001, iterations=40, optimizer=optimizer)
    assert out.objective.shape == (41, 2)
    assert bool((out.objective[-1] < out.objective[0]).all())
    best = sr_objective(out.maps, g, theta, 0.01, 0.001)
    assert_close(best, out.objective.min(0).values)


def test_solver_recovers_consistent_measurements():
    # measurements made by the model itself, g_l = D A_l h_true: the data term can be driven towards zero
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    h_true = torch.exp(-((xx - 6) ** 2 + (yy - 9) ** 2) / 18)[None]
    theta = affine_matrices(*augmentation_params(8, 30.0, 3.0, seed=0), (16, 16))
    g = downsample(warp(h_true[:, None], theta)[:, :, 0], (4, 4))
    start = F.interpolate(g[:, :1], size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    out = super_resolve(g, theta, (16, 16), lambda_tv=0.0, mu=0.0, iterations=200)
    assert float(out.objective[-1, 0]) < 0.05 * float(sr_objective(start, g, theta)[0])
    # and more augmentations constrain h better than the plain upsampling of g_1
    assert float((out.maps - h_true).norm()) < float((start - h_true).norm())


def test_solver_is_deterministic():
    theta = affine_matrices(*augmentation_params(4, 15.0, 1.0, seed=1), (8, 8))
    g = torch.rand(1, 4, 2, 2, generator=torch.Generator().manual_seed(1))
    a = super_resolve(g, theta, (8, 8), iterations=10).maps
    b = super_resolve(g, theta, (8, 8), iterations=10).maps
    assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------ bad input
def test_bad_operator_input():
    with pytest.raises(ValueError, match="n_augmentations must be >= 1"):
        augmentation_params(0, 10.0, 1.0)
    with pytest.raises(ValueError, match="max_angle must be >= 0"):
        augmentation_params(3, -1.0, 1.0)
    with pytest.raises(ValueError, match="shifts must have size 2 in dimension 1"):
        affine_matrices(torch.zeros(2), torch.zeros(2, 3), (4, 4))
    with pytest.raises(ValueError, match="theta must have size 3 in dimension 2"):
        warp(torch.rand(1, 1, 4, 4), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="x must be 4-D"):
        warp(torch.rand(4, 4), _identity(1, (4, 4)))
    with pytest.raises(ValueError, match="h contains 1 NaN"):
        tv_l1(torch.tensor([[0.0, float("nan")]]))


def test_bad_solver_input():
    g = torch.rand(1, 2, 4, 4)
    theta = _identity(2, (8, 8))
    with pytest.raises(ValueError, match="optimizer must be one of"):
        super_resolve(g, theta, (8, 8), optimizer="lbfgs")
    with pytest.raises(ValueError, match="lambda_tv must be >= 0"):
        super_resolve(g, theta, (8, 8), lambda_tv=-1.0)
    with pytest.raises(ValueError, match="low_res must be 4-D"):
        super_resolve(g[0], theta, (8, 8))
    with pytest.raises(ValueError, match="theta must have size 2 in dimension 0"):
        super_resolve(g, _identity(3, (8, 8)), (8, 8))
    with pytest.raises(ValueError, match="must not be larger than the high-resolution map"):
        super_resolve(g, theta, (2, 2))
    with pytest.raises(ValueError, match="step_size must be > 0"):
        super_resolve(g, theta, (8, 8), step_size=0.0)


# ------------------------------------------------------------------------------------------ CPU / GPU parity
@pytest.mark.cuda
def test_solver_cpu_gpu_parity():
    theta = affine_matrices(*augmentation_params(5, 20.0, 2.0, seed=0), (16, 16))
    g = torch.rand(2, 5, 4, 4, generator=torch.Generator().manual_seed(0))
    cpu = super_resolve(g, theta, (16, 16), lambda_tv=0.005, iterations=30).maps
    gpu = super_resolve(g.cuda(), theta.cuda(), (16, 16), lambda_tv=0.005, iterations=30).maps
    assert gpu.device.type == "cuda"
    assert_close(gpu.cpu(), cpu, atol=1e-3, rtol=1e-3)


# ------------------------------------------------------------------------------------------ the explainer
def _model():
    from course_lib.models import SmallCNN

    torch.manual_seed(0)
    return SmallCNN(num_classes=5, width=8).eval()


def test_explainer_contract_and_determinism():
    from course_lib.saliency import AugmentedGradCAM

    model, x = _model(), torch.rand(3, 3, 32, 32)
    explainer = AugmentedGradCAM(model, "features", n_augmentations=4, iterations=5, seed=3)
    out = explainer.explain(x)
    maps = out.maps
    assert maps.shape == (3, 32, 32)
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1
    assert torch.equal(maps, explainer(x))
    assert set(out.timing) == {"gradcam_s", "solver_s", "total_s"}
    assert all(v >= 0 for v in out.timing.values())
    assert out.timing["total_s"] >= out.timing["gradcam_s"] + out.timing["solver_s"] - 1e-9
    assert out.solution.objective.shape == (6, 3)  # iterations + 1 rows, one column per image
    assert out.theta.shape == (4, 2, 3) and out.low_res.shape == (3, 4, 8, 8)
    assert not [k for k in vars(explainer) if k.startswith("last_")]


def test_generator_seed_draws_the_warps_once_per_call():
    """With a Generator as seed the solver must invert the very warps the maps were measured with."""
    from course_lib.saliency import AugmentedGradCAM

    model, x = _model(), torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    kwargs = dict(n_augmentations=4, max_shift=3.0, iterations=10)
    by_int = AugmentedGradCAM(model, "features", seed=5, **kwargs)
    by_gen = AugmentedGradCAM(model, "features", seed=torch.Generator().manual_seed(5), **kwargs)
    # first call: the Generator draws exactly what a fresh generator seeded 5 draws
    out_gen, out_int = by_gen.explain(x, normalize=False), by_int.explain(x, normalize=False)
    assert torch.equal(out_gen.maps, out_int.maps)
    assert torch.equal(out_gen.theta, by_int.augmentations((32, 32)))
    # second call: new warps, and the solution is that of the measurements under those warps
    first = out_int.theta
    second = by_gen.explain(x, 1, normalize=False)
    maps, theta = second.maps, second.theta
    assert not torch.equal(theta, first)
    g = by_gen.low_resolution_maps(x, 1, theta=theta).maps
    assert torch.equal(g, second.low_res)
    # the map it returns is the solve of the measurements under the warps it reports
    assert_close(maps, by_gen.solve(g, theta, (32, 32)).maps, atol=1e-6 * float(maps.max()), rtol=1e-5)


def test_default_shift_is_one_cell_of_the_layer():
    from course_lib.saliency import AugmentedGradCAM

    model, x = _model(), torch.rand(1, 3, 32, 32)
    explainer = AugmentedGradCAM(model, "features", n_augmentations=64, max_angle=0.0, iterations=1, seed=0)
    assert explainer.shift((224, 224), (7, 7)) == 32.0 and explainer.shift((64, 64), (16, 16)) == 4.0
    theta = explainer.explain(x).theta  # SmallCNN's features are 8×8 for 32×32 input: cells of 4 pixels
    shifts_px = theta[:, :, 2] * 16  # normalized translation × W/2 (no rotation: R = I)
    assert float(shifts_px.abs().max()) <= 4.0 + 1e-5 and float(shifts_px.abs().max()) > 3.0
    with pytest.raises(ValueError, match="low_size"):
        explainer.augmentations((32, 32))
    assert AugmentedGradCAM(model, "features", max_shift=2.0).shift((224, 224)) == 2.0


def _trained():
    from course_lib import zoo
    from course_lib.data import ShapesDataset

    return zoo.load("shapes_gap", device="cpu"), ShapesDataset(3, seed=2).images


@pytest.mark.parametrize("padding", ["reflection", "zeros"])
def test_low_resolution_maps_are_gradcam_of_each_warped_image_for_the_original_class(padding):
    from course_lib.saliency import AugmentedGradCAM, GradCAM

    model, x = _trained()
    explainer = AugmentedGradCAM(model, "features", n_augmentations=3, max_angle=30.0, max_shift=3.0, seed=1,
                                 image_padding=padding)
    with torch.no_grad():
        classes = model(x).argmax(1)
    g, theta = explainer.low_resolution_maps(x, None)[:2]
    assert g.shape == (3, 3, 16, 16)
    assert torch.equal(theta, explainer.augmentations((64, 64)))
    reference = GradCAM(model, "features")
    for k in range(3):
        warped = warp(x, theta[k : k + 1], padding)[:, 0]
        expected = reference(warped, classes, upsample=False, normalize=False)
        assert float(expected.amax()) > 1e-2  # non-trivial maps
        assert_close(g[:, k], expected, atol=1e-5 * float(expected.amax()), rtol=1e-4)


def test_single_identity_augmentation_without_regularization_downsamples_to_gradcam():
    from course_lib.saliency import AugmentedGradCAM, GradCAM

    model, x = _trained()
    raw_gradcam = GradCAM(model, "features")(x, upsample=False, normalize=False)
    assert float(raw_gradcam.amax()) > 1e-2
    explainer = AugmentedGradCAM(model, "features", n_augmentations=1, lambda_tv=0.0, mu=0.0, iterations=80)
    out = explainer.explain(x, normalize=False)
    h = out.maps
    assert h.shape == (3, 64, 64)
    # the solver works on g / max(g_1); the explainer returns ReLU(h) in Grad-CAM's units
    scale = raw_gradcam.flatten(1).amax(1)[:, None, None]
    solution = out.solution.maps * scale
    assert_close(h, torch.relu(solution), atol=1e-6 * float(scale.max()), rtol=1e-5)
    assert_close(downsample(solution, (16, 16)), raw_gradcam, atol=1e-4 * float(raw_gradcam.max()), rtol=0)


def test_explainer_leaves_model_state_alone():
    from course_lib.saliency import AugmentedGradCAM

    model = _model().train()
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    AugmentedGradCAM(model, "features", n_augmentations=2, iterations=2)(torch.rand(1, 3, 32, 32))
    assert model.training
    assert all(p.requires_grad and torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())


def test_explainer_bad_input():
    from course_lib.saliency import AugmentedGradCAM

    model = _model()
    with pytest.raises(ValueError, match="n_augmentations must be >= 1"):
        AugmentedGradCAM(model, "features", n_augmentations=0)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        AugmentedGradCAM(model, "features", optimizer="sgd")
    with pytest.raises(ValueError, match="mu must be >= 0"):
        AugmentedGradCAM(model, "features", mu=-0.1)
    with pytest.raises(ValueError, match="target_layer='nope' is not a layer"):
        AugmentedGradCAM(model, "nope")
    explainer = AugmentedGradCAM(model, "features", n_augmentations=2, iterations=1)
    with pytest.raises(ValueError, match="images must be 4-D"):
        explainer(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="targets must be class indices"):
        explainer(torch.rand(1, 3, 32, 32), targets=7)


@pytest.mark.cuda
def test_explainer_cpu_gpu_parity():
    from course_lib.saliency import AugmentedGradCAM

    model, x, t = _model(), torch.rand(2, 3, 32, 32), torch.tensor([1, 3])
    cpu = AugmentedGradCAM(model, "features", n_augmentations=4, iterations=20)(x, t)
    gpu = AugmentedGradCAM(model.cuda(), "features", n_augmentations=4, iterations=20)(x.cuda(), t.cuda())
    assert gpu.device.type == "cuda"
    assert_close(gpu.cpu(), cpu, atol=5e-3, rtol=0)  # cuDNN may use TF32 convolutions on the GPU


def test_step_is_capped_by_max_change():
    # one step with a huge lambda: the TV subgradient alone would move every pixel by alpha/L_f * lambda * 4
    g = torch.rand(1, 2, 4, 4, generator=torch.Generator().manual_seed(5))
    theta = affine_matrices(*augmentation_params(2, 10.0, 1.0, seed=5), (16, 16))
    start = F.interpolate(g[:, :1], size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    out = super_resolve(g, theta, (16, 16), lambda_tv=100.0, iterations=1, max_change=0.01)
    # the default start is the bilinear upsampling of g_1
    assert torch.equal(super_resolve(g, theta, (16, 16), iterations=0).maps, start)
    # the best of {h0, h1} is returned; h1 = h0 - eta u with ||eta u|| <= 0.01 sqrt(HW)
    assert float((out.maps - start).pow(2).mean().sqrt()) <= 0.01 + 1e-7
    uncapped = super_resolve(g, theta, (16, 16), lambda_tv=100.0, iterations=1, max_change=None)
    assert float(uncapped.objective[1, 0]) > float(out.objective[1, 0])  # the plain step overshoots


class _CoarseView(torch.nn.Module):
    """The same classifier with a 4x4 average pooling after its features: identical scores (GAP), 4x4 maps."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net, self.coarse = net, torch.nn.AvgPool2d(4)

    def forward(self, x):
        return self.net.fc(self.net.flatten(self.net.pool(self.coarse(self.net.features(x)))))


def test_beats_upsampled_gradcam_at_a_coarse_layer_on_heldout_shapes():
    # At a stride-16 layer (4x4 maps for 64x64 images, the ratio of VGG-16's 14x14 maps on 224x224 images in
    # the paper) the super-resolved map localizes the object better than the bilinearly upsampled Grad-CAM.
    from course_lib import zoo
    from course_lib.data import ShapesDataset
    from course_lib.saliency import AugmentedGradCAM, GradCAM
    from course_lib.saliency.metrics import pointing_game

    model = zoo.load("shapes_gap", device="cpu")
    coarse = _CoarseView(model).eval()
    data = ShapesDataset(96, seed=2)  # the classifier's held-out seed
    x, y, masks = data.images, data.labels, data.masks
    with torch.no_grad():
        assert_close(coarse(x[:8]), model(x[:8]), atol=1e-4, rtol=0)

    def best_iou(maps):
        ious = [((maps >= t) & masks).flatten(1).sum(1) / ((maps >= t) | masks).flatten(1).sum(1)
                for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)]
        return max(float(v.float().mean()) for v in ious)

    plain = GradCAM(coarse, "coarse")(x, y)
    augmented = AugmentedGradCAM(coarse, "coarse", n_augmentations=16, max_shift=8.0, lambda_tv=0.02)(x, y)
    assert pointing_game(augmented, masks) > pointing_game(plain, masks) + 0.05
    assert best_iou(augmented) > best_iou(plain)


# ------------------------------------------------------------------------------------------ the solver's grid
def test_default_solve_grid_is_the_input_for_64px_images_with_16x16_maps():
    """SmallCNN at 64×64 (16×16 maps): k h = 128 >= 64, so the default solves at the input's size, unchanged."""
    from course_lib.saliency import AugmentedGradCAM

    model, x = _trained()
    kwargs = dict(n_augmentations=4, iterations=15, seed=2)
    default = AugmentedGradCAM(model, "features", **kwargs)
    full = AugmentedGradCAM(model, "features", solve_scale=None, **kwargs)
    assert default.solve_scale == 8 and default.solve_size((64, 64), (16, 16)) == (64, 64)
    out = default.explain(x, normalize=False)
    assert torch.equal(out.maps, full(x, normalize=False))
    assert out.solution.maps.shape == (3, 64, 64)


def test_one_theta_is_the_same_motion_on_both_grids():
    """Quarter turns and whole-pixel shifts are exact on a 32² and a 16² grid: D A_l of a map replicated in
    2×2 blocks on 32² equals D A_l of the map on 16², with shifts twice as many pixels on 32²."""
    angles = torch.tensor([0.0, 90.0, -90.0])
    shifts16 = torch.tensor([[0.0, 0.0], [1.0, -1.0], [-2.0, 1.0]])
    theta16 = affine_matrices(angles, shifts16, (16, 16))
    assert torch.equal(theta16, affine_matrices(angles, 2 * shifts16, (32, 32)))
    h16 = torch.rand(16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    h32 = h16.repeat_interleave(2, 0).repeat_interleave(2, 1)
    theta = theta16.double()
    low16 = operator_matrix(theta, (16, 16), (8, 8)) @ h16.flatten()
    low32 = operator_matrix(theta, (32, 32), (8, 8)) @ h32.flatten()
    assert_close(low32, low16, atol=1e-12, rtol=0)


def test_reduced_grid_solve_then_bilinear_upsampling_matches_a_direct_construction():
    from course_lib.saliency import AugmentedGradCAM

    model, x = _trained()
    explainer = AugmentedGradCAM(model, "features", n_augmentations=4, iterations=12, seed=1, solve_scale=2)
    assert explainer.solve_size((64, 64), (16, 16)) == (32, 32)
    assert explainer.solve_size((64, 48), (16, 12)) == (32, 24)
    out = explainer.explain(x, normalize=False)
    maps, theta = out.maps, out.theta
    assert maps.shape == (3, 64, 64) and out.solution.maps.shape == (3, 32, 32)
    g = explainer.low_resolution_maps(x, None, theta=theta).maps
    scale = g[:, 0].flatten(1).amax(1)[:, None, None, None]
    solved = super_resolve(g / scale, theta, (32, 32), iterations=12).maps  # same warps, on the 32² grid
    expected = torch.relu(F.interpolate(solved[:, None], size=(64, 64), mode="bilinear", align_corners=False)[:, 0])
    assert_close(maps, expected * scale[:, 0], atol=1e-6 * float(scale.max()), rtol=1e-5)
    # the override in solve() gives the same, and k large enough is the full-size solve
    assert_close(explainer.solve(g, theta, (64, 64)).maps, maps, atol=1e-6 * float(scale.max()), rtol=1e-5)
    full, solution = explainer.solve(g, theta, (64, 64), solve_scale=4)
    assert solution.maps.shape == (3, 64, 64)
    assert_close(full, explainer.solve(g, theta, (64, 64), solve_scale=None).maps, atol=0, rtol=0)


def test_solve_scale_bad_input():
    from course_lib.saliency import AugmentedGradCAM

    model = _model()
    with pytest.raises(ValueError, match="solve_scale must be >= 1"):
        AugmentedGradCAM(model, "features", solve_scale=0)
    with pytest.raises(TypeError, match="solve_scale"):
        AugmentedGradCAM(model, "features", solve_scale=2.5)
    explainer = AugmentedGradCAM(model, "features", n_augmentations=2, iterations=1)
    g, theta = torch.rand(1, 2, 8, 8), explainer.augmentations((32, 32), (8, 8))
    with pytest.raises(ValueError, match="solve_scale must be >= 1"):
        explainer.solve(g, theta, (32, 32), solve_scale=-1)
    with pytest.raises(TypeError, match="unknown solver settings"):
        explainer.solve(g, theta, (32, 32), scale=2)
    with pytest.raises(TypeError, match="low_size must be an"):
        explainer.solve_size((32, 32), 8)


# ------------------------------------------------------------------------------------------ the paper's options
def test_bilinear_downsample_hand_computed_point_sampling():
    # 8 -> 2: the cells' centres fall at 1.5 and 5.5, so each value is the mean of the 2x2 pixels around them
    # (rows/cols 1-2 and 5-6), not of the whole 4x4 block
    x = torch.arange(64.0).reshape(8, 8)
    expected = torch.tensor([[(9 + 10 + 17 + 18) / 4, (13 + 14 + 21 + 22) / 4],
                             [(41 + 42 + 49 + 50) / 4, (45 + 46 + 53 + 54) / 4]])
    assert_close(downsample(x, (2, 2), mode="bilinear"), expected, atol=1e-6, rtol=0)
    assert_close(downsample(x, (2, 2), mode="area"), F.avg_pool2d(x[None, None], 4)[0, 0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("size,low", [((16, 16), (4, 4)), ((20, 14), (3, 5)), ((224, 224), (7, 7))])
def test_bilinear_operator_matrix_equals_grid_sample_then_interpolate(size, low):
    # independent of downsample/warp: torch's affine_grid + grid_sample, then F.interpolate (bilinear, no AA)
    theta = affine_matrices(*augmentation_params(5, 28.6, 6.0, seed=3), size).double()
    h = torch.rand(1, 1, *size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    grid = F.affine_grid(theta, [5, 1, *size], align_corners=False)
    warped = F.grid_sample(h.expand(5, 1, *size), grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)
    expected = F.interpolate(warped, size=low, mode="bilinear", align_corners=False)[:, 0]
    matrix = operator_matrix(theta, size, low, downsampling="bilinear")
    assert_close((matrix @ h.flatten()).view(5, *low), expected, atol=1e-12, rtol=0)
    # at most four warped pixels of four source pixels per measured cell
    assert matrix._nnz() <= 16 * 5 * low[0] * low[1]


def test_data_residuals_hand_computed():
    from course_lib.saliency.superres import data_residuals

    theta = _identity(3, (4, 4))
    g = torch.stack([torch.ones(2, 2), torch.zeros(2, 2), torch.full((2, 2), 3.0)])[None]
    # h = 1 downsamples to ones: residuals 0, ||1|| = 2, ||-2|| = 4 (four cells each)
    assert_close(data_residuals(torch.ones(1, 4, 4), g, theta), torch.tensor([[0.0, 2.0, 4.0]]), atol=1e-6,
                 rtol=0)
    with pytest.raises(ValueError, match="downsampling"):
        data_residuals(torch.ones(1, 4, 4), g, theta, downsampling="nearest")


def test_adam_from_zeros_first_step_is_minus_lr_times_the_gradient_sign():
    # Adam's first step is lr * m / (sqrt(v) + eps) with m = (1-b1) u, v = (1-b2) u^2 after bias correction:
    # -lr * u / (|u| + eps), i.e. -lr * sign(u) wherever |u| >> eps. Without TV the gradient at 0 is -2 M^T g.
    theta = affine_matrices(*augmentation_params(4, 20.0, 2.0, seed=1), (12, 12))
    g = torch.rand(1, 4, 3, 3, generator=torch.Generator().manual_seed(1)) + 0.1
    out = super_resolve(g, theta, (12, 12), lambda_tv=0.0, iterations=1, optimizer="adam", step_size=1e-3,
                        init="zeros", keep="last", downsampling="bilinear")
    matrix = operator_matrix(theta, (12, 12), (3, 3), downsampling="bilinear")
    grad = (-2 * (matrix.to_dense().T @ g.flatten())).view(12, 12)
    # exactly: -lr * u / (|u| + eps), eps = 1e-8 (torch's default); float32 round-off at 1e-3 is ~1e-10
    assert_close(out.maps[0], -1e-3 * grad / (grad.abs() + 1e-8), atol=1e-9, rtol=0)
    big = grad.abs() > 1e-4
    assert_close(out.maps[0][big], -1e-3 * torch.sign(grad[big]), atol=1e-7, rtol=0)
    assert_close(out.objective[0], (g ** 2).sum((1, 2, 3)), atol=1e-5, rtol=0)  # h = 0: the objective is ||g||^2


def test_keep_last_versus_best():
    theta = affine_matrices(*augmentation_params(3, 10.0, 1.0, seed=0), (8, 8))
    g = torch.rand(1, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    best = super_resolve(g, theta, (8, 8), iterations=30, optimizer="adam", step_size=0.5, keep="best")
    last = super_resolve(g, theta, (8, 8), iterations=30, optimizer="adam", step_size=0.5, keep="last")
    assert_close(sr_objective(best.maps, g, theta, lambda_tv=0.02)[0], best.objective.min(0).values[0],
                 atol=1e-4, rtol=1e-5)
    assert_close(sr_objective(last.maps, g, theta, lambda_tv=0.02)[0], last.objective[-1, 0], atol=1e-4,
                 rtol=1e-5)
    zero = super_resolve(g, theta, (8, 8), iterations=0, init="zeros")
    assert bool((zero.maps == 0).all())


def test_scaling_each_is_invariant_to_rescaling_each_copy():
    from course_lib.models import SmallCNN
    from course_lib.saliency import AugmentedGradCAM

    explainer = AugmentedGradCAM(SmallCNN(num_classes=3, width=4), "features", n_augmentations=4,
                                 iterations=20, scaling="each", optimizer="adam", step_size=0.01,
                                 init="zeros", downsampling="bilinear")
    theta = explainer.augmentations((16, 16), (4, 4))
    g = torch.rand(2, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    factors = torch.tensor([1.0, 4.0, 0.5, 8.0])[None, :, None, None]  # powers of 2: the division is exact
    a = explainer.solve(g, theta, (16, 16)).maps
    b = explainer.solve(g * factors, theta, (16, 16)).maps  # g_1 unchanged: the output's unit is the same
    assert torch.equal(a, b)
    c = explainer.solve(g * factors, theta, (16, 16), scaling="first").maps
    assert float((a - c).abs().max()) > 1e-3  # "first" sees the copies' different scales


def test_paper_protocol_values():
    import math

    from course_lib.saliency.augmented import PAPER_PROTOCOL

    assert PAPER_PROTOCOL["n_augmentations"] == 100
    assert math.isclose(math.radians(PAPER_PROTOCOL["max_angle"]), 0.5)
    assert math.isclose(PAPER_PROTOCOL["lambda_tv"], 0.2) and math.isclose(PAPER_PROTOCOL["mu"], 0.01)
    assert (PAPER_PROTOCOL["optimizer"], PAPER_PROTOCOL["step_size"], PAPER_PROTOCOL["iterations"]) == (
        "adam", 1e-3, 200)


@pytest.mark.parametrize("kwargs,name", [({"downsampling": "nearest"}, "downsampling"),
                                         ({"scaling": "last"}, "scaling"), ({"init": "ones"}, "init"),
                                         ({"keep": "first"}, "keep")])
def test_paper_options_bad_input(kwargs, name):
    from course_lib.models import SmallCNN
    from course_lib.saliency import AugmentedGradCAM

    with pytest.raises(ValueError, match=name):
        AugmentedGradCAM(SmallCNN(num_classes=3, width=4), "features", **kwargs)
    if name != "scaling":
        with pytest.raises(ValueError, match=name):
            super_resolve(torch.rand(1, 1, 2, 2), _identity(1, (4, 4)), (4, 4), **kwargs)
