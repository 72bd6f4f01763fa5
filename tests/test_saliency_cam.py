"""Saliency explainers: CAM, Grad-CAM, Grad-CAM++, Smooth Grad-CAM++, RISE (course_lib.saliency)."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

from course_lib.models import SmallCNN
from course_lib.saliency import CAM, RISE, GradCAM, GradCAMPlusPlus, SmoothGradCAMPlusPlus
from tests.helpers import assert_close
from tests.helpers.models import A0, A1, X_TINY, SquareModel, check_batch_equals_single_images, tiny_model

LAYER_METHODS = [CAM, GradCAM, GradCAMPlusPlus, lambda m, layer: SmoothGradCAMPlusPlus(m, layer, n_samples=2)]
LAYER_IDS = ["cam", "gradcam", "gradcam++", "smooth"]


def test_gradcam_on_tiny_model_matches_hand_computation():
    explainer = GradCAM(tiny_model(), "0")
    raw0 = explainer(X_TINY, 0, upsample=False, normalize=False)[0]
    raw1 = explainer(X_TINY, 1, upsample=False, normalize=False)[0]
    # class 0: alpha = (mean V^0_0, mean V^0_1) = (1, -0.5); ReLU(A0 - 0.5 A1)
    assert_close(raw0, torch.tensor([[0.0, 0.5], [2.0, 3.5]]))
    # class 1: alpha = (3/4, 1/2)
    assert_close(raw1, torch.tensor([[2.75, 3.0], [3.25, 3.5]]))


def test_gradcam_plus_plus_on_tiny_model_matches_hand_computation():
    explainer = GradCAMPlusPlus(tiny_model(), "0")
    raw0 = explainer(X_TINY, 0, upsample=False, normalize=False)[0]
    raw1 = explainer(X_TINY, 1, upsample=False, normalize=False)[0]
    # sum_ab A^0 = sum_ab A^1 = 10.
    # class 0, channel 0: g = 1 everywhere, alpha = 1 / (2 + 10) = 1/12, w0 = 4/12 = 1/3;
    #          channel 1: g = -2 at one position, ReLU(g) = 0, w1 = 0.
    assert_close(raw0, A0 / 3)
    # class 1, channel 0: g = 3 at (0,0): alpha = 9 / (18 + 270) = 1/32, w0 = 3/32;
    #          channel 1: g = 2 at (1,1): alpha = 4 / (8 + 80) = 1/22, w1 = 2/22.
    assert_close(raw1, 3 / 32 * A0 + 2 / 22 * A1)


def test_normalized_maps_of_tiny_model():
    maps = GradCAM(tiny_model(), "0")(X_TINY, 0)  # upsampled to the input (2×2 already) and min-max normalized
    assert_close(maps[0], torch.tensor([[0.0, 0.5], [2.0, 3.5]]) / 3.5)


def test_inplace_relu_after_target_layer_gives_the_same_maps_as_out_of_place():
    ref = tiny_model(inplace_relu=False)
    ref.insert(1, nn.ReLU(inplace=False))
    x = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]]]])  # A^1 = 5 - x is negative at the last pixel
    for method in (GradCAM, GradCAMPlusPlus):
        got = method(tiny_model(inplace_relu=True), "0")(x, 1, upsample=False, normalize=False)
        want = method(ref, "0")(x, 1, upsample=False, normalize=False)
        assert_close(got, want)
    # the captured activation is the layer's own output, not the ReLU's: class 1 weights A^1 with
    # gradient 2 * 1[A^1 > 0] = 0 at (1,1), so channel 1 gets weight 0 and the map is ReLU(3/4 A^0)
    assert_close(GradCAM(tiny_model(inplace_relu=True), "0")(x, 1, upsample=False, normalize=False)[0],
                 0.75 * x[0, 0])


def test_inplace_relu_as_target_layer():
    model = SmallCNN(num_classes=5, width=8).eval()  # its ReLUs are in-place
    x = torch.rand(2, 3, 32, 32)
    relu_last = model.features[-1]
    assert isinstance(relu_last, nn.ReLU) and relu_last.inplace
    assert_close(GradCAM(model, relu_last)(x), GradCAM(model, "features")(x))


# ---------------------------------------------------------------------- CAM = Grad-CAM on GAP + linear
def test_cam_equals_gradcam_on_gap_linear_model():
    model = SmallCNN(num_classes=5, width=8, pool="avg").eval()
    x = torch.rand(3, 3, 32, 32)
    targets = torch.tensor([0, 3, 4])
    cam_raw = CAM(model, "features")(x, targets, upsample=False, normalize=False)
    grad_raw = GradCAM(model, "features")(x, targets, upsample=False, normalize=False)
    z = cam_raw.shape[-1] * cam_raw.shape[-2]
    assert_close(grad_raw * z, cam_raw, atol=1e-6, rtol=1e-4)  # dy/dA = w / Z
    assert_close(GradCAM(model, "features")(x), CAM(model, "features")(x), atol=1e-5, rtol=1e-4)


def test_cam_equals_gradcam_on_torchvision_resnet18():
    model = torchvision.models.resnet18(weights=None, num_classes=7).eval()
    x = torch.rand(2, 3, 64, 64)
    assert_close(CAM(model, "layer4", fc="fc")(x), GradCAM(model, model.layer4)(x), atol=1e-5, rtol=1e-4)


def test_gradcam_matches_plain_autograd_on_resnet18():
    """Reference: run the trunk, make layer4's output a leaf, run the head, backpropagate with torch."""
    torch.manual_seed(1)
    model = torchvision.models.resnet18(weights=None, num_classes=6).eval()
    x = torch.rand(2, 3, 64, 64)
    trunk = nn.Sequential(*list(model.children())[:-2])
    with torch.no_grad():
        a = trunk(x)
    a.requires_grad_(True)
    logits = model.fc(torch.flatten(model.avgpool(a), 1))
    target = logits.argmax(1)
    (g,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), a)
    want = torch.relu((g.mean((2, 3))[:, :, None, None] * a).sum(1)).detach()
    got = GradCAM(model, "layer4")(x, upsample=False, normalize=False)
    assert_close(got, want, atol=1e-6, rtol=1e-4)


def test_gradcam_plus_plus_equals_pytorch_grad_cam_weights_on_resnet18():
    """The weights from pytorch-grad-cam 1.5.7 (``GradCAMPlusPlus.get_cam_weights``, eq. 19 of Chattopadhyay et
    al.) applied to layer4's activations and gradients, computed here with plain autograd.

    pytorch-grad-cam adds eps = 1e-6 to alpha's denominator 2 g^2 + sum(A) g^3 >= 2 g^2 (where g > 0, the only
    positions that count): a relative change of at most 1e-6 / (2 g^2). The head's weights are set so that every
    gradient has |g| >= 0.1 (g = W / (h w) through the average pooling): at most 5e-5, hence rtol 1e-4
    (float64 elsewhere)."""
    pgc = pytest.importorskip("pytorch_grad_cam")
    torch.manual_seed(1)
    model = torchvision.models.resnet18(weights=None, num_classes=6).double().eval()
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    trunk = nn.Sequential(*list(model.children())[:-2])
    with torch.no_grad():
        a = trunk(x)  # (2, 512, 2, 2)
        cells = a.shape[-2] * a.shape[-1]
        size = torch.empty_like(model.fc.weight).uniform_(0.1, 1.0) * cells  # |g| = |W| / cells in [0.1, 1]
        model.fc.weight.copy_(size * torch.where(torch.rand_like(size) < 0.5, -1.0, 1.0))
    a.requires_grad_(True)
    logits = model.fc(torch.flatten(model.avgpool(a), 1))
    target = logits.argmax(1)
    (g,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), a)
    assert float(g.abs().min()) >= 0.1 - 1e-12
    a = a.detach()
    w = torch.from_numpy(pgc.GradCAMPlusPlus.get_cam_weights(None, x, None, None, a.numpy(), g.numpy()))
    want = torch.relu((w[:, :, None, None] * a).sum(1))
    assert float(want.amax()) > 0  # a non-trivial map
    got = GradCAMPlusPlus(model, "layer4")(x, target, upsample=False, normalize=False)
    assert_close(got, want, atol=1e-12, rtol=1e-4)


# ---------------------------------------------------------------------- contract
@pytest.mark.parametrize("method", LAYER_METHODS, ids=LAYER_IDS)
def test_output_contract(method):
    model = SmallCNN(num_classes=5, width=8).eval()
    x = torch.rand(3, 3, 32, 32)
    maps = method(model, "features")(x)
    assert maps.shape == (3, 32, 32) and maps.dtype == x.dtype
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1
    raw = method(model, "features")(x, upsample=False, normalize=False)
    assert raw.shape == (3, 8, 8) and float(raw.min()) >= 0
    # the default target is the arg-max class, an int applies to every image, a tensor per image
    top = model(x).argmax(1)
    assert_close(method(model, "features")(x), method(model, "features")(x, top))
    one = method(model, "features")(x, 2)
    assert_close(one, method(model, "features")(x, torch.full((3,), 2)))


@pytest.mark.parametrize("method", [GradCAM, GradCAMPlusPlus], ids=["gradcam", "gradcam++"])
def test_batch_equals_single_images(method):
    check_batch_equals_single_images(method)  # float64, 1e-9: see its docstring


def test_constant_map_gives_zeros_not_nan():
    model = SmallCNN(num_classes=5, width=8).eval()
    with torch.no_grad():
        model.fc.weight.zero_()
    for method in (CAM, GradCAM, GradCAMPlusPlus):
        maps = method(model, "features")(torch.rand(2, 3, 32, 32))
        assert not torch.isnan(maps).any()
        assert float(maps.abs().max()) == 0.0


def test_works_under_no_grad_and_with_input_requiring_grad():
    model = SmallCNN(num_classes=5, width=8).eval()
    x = torch.rand(2, 3, 32, 32)
    want = GradCAM(model, "features")(x)
    with torch.no_grad():
        assert_close(GradCAM(model, "features")(x), want)
    xg = x.clone().requires_grad_(True)
    assert_close(GradCAM(model, "features")(xg), want)
    assert xg.grad is None


class _NoBackward(torch.autograd.Function):
    """Identity whose backward must never run: placed before the target layer, it proves that the
    explainer does not backpropagate to the input."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        raise AssertionError("backward reached the layers before the target layer")


class _Guarded(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(_NoBackward.apply(x))


@pytest.mark.parametrize("method", [GradCAM, GradCAMPlusPlus], ids=["gradcam", "gradcam++"])
def test_backward_stops_at_the_target_layer(method):
    model = _Guarded(SmallCNN(num_classes=5, width=8)).eval()
    x = torch.rand(2, 3, 32, 32, requires_grad=True)  # even an input that requires grad is not reached
    maps = method(model, "model.features")(x)
    assert maps.shape == (2, 32, 32)
    # the same guard does fire for a plain backward pass through the model
    with pytest.raises(AssertionError, match="backward reached"):
        model(x).sum().backward()


# ---------------------------------------------------------------------- state left as found
# test_state_is_restored and test_state_is_restored_after_an_exception: tests/test_saliency_contract.py, for
# every explainer in course_lib.saliency.__all__ (these methods and RISE among them, with the same settings)


def test_module_called_twice_uses_last_call():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1)
            self.head = nn.Linear(2, 3)

        def forward(self, x):
            a = self.conv(self.conv(x))
            return self.head(a.mean((2, 3)))

    model = Twice().eval()
    x = torch.rand(1, 2, 4, 4)
    with torch.no_grad():
        a_last = model.conv(model.conv(x))
    raw = CAM(model, "conv")(x, 0, upsample=False, normalize=False)
    assert_close(raw[0], torch.relu(torch.einsum("k,khw->hw", model.head.weight[0], a_last[0])))


# ---------------------------------------------------------------------- bad input
def test_bad_input_errors():
    model = SmallCNN(num_classes=5, width=8).eval()
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"target_layer='nope' is not a layer of the model"):
        GradCAM(model, "nope")
    with pytest.raises(ValueError, match=r"target_layer \(Conv2d\) is not a submodule of the model"):
        GradCAM(model, nn.Conv2d(3, 3, 1))
    with pytest.raises(TypeError, match="target_layer must be an nn.Module of the model or its dotted name"):
        GradCAM(model, 3)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        GradCAM("model", "features")
    explainer = GradCAM(model, "features")
    with pytest.raises(ValueError, match=r"targets must be class indices in \[0, 5\), got \[0, 5\]"):
        explainer(x, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"targets must be non-negative class indices, got \[-1, -1\]"):
        explainer(x, -1)
    with pytest.raises(ValueError, match=r"targets must have shape \(2,\)"):
        explainer(x, torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="targets must hold integers"):
        explainer(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"images must be 4-D, got a torch.float32 tensor of shape \(3, 32, 32\)"):
        explainer(x[0])
    with pytest.raises(ValueError, match="images contains 1 NaN or infinite value"):
        bad = x.clone()
        bad[0, 0, 0, 0] = float("nan")
        explainer(bad)
    with pytest.raises(ValueError, match="images must not be empty"):
        explainer(x[:0])
    with pytest.raises(ValueError, match=r"images must have 3 channels \(the model's first convolution takes 3\)"):
        explainer(torch.rand(2, 1, 32, 32))
    with pytest.raises(TypeError, match="images must have a floating-point dtype"):
        explainer(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"target_layer 'fc' must output an \(N, K, h, w\) feature map"):
        GradCAM(model, "fc")(x)


def test_cam_needs_a_linear_head():
    no_linear = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match="CAM needs a linear layer after global average pooling"):
        CAM(no_linear, "1")
    deep_head = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)
    )
    with pytest.raises(ValueError, match=r"fc takes 6 features but target_layer '1' has 4 feature maps"):
        CAM(deep_head, "1")(torch.rand(1, 3, 8, 8))
    with pytest.raises(TypeError, match="fc must be an nn.Linear"):
        CAM(deep_head, "1", fc="0")


def test_target_layer_not_used_or_not_differentiable():
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)
            self.spare = nn.Conv2d(3, 4, 1)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.conv(x).mean((2, 3)))

    with pytest.raises(ValueError, match="target_layer 'spare' was not called during the model's forward pass"):
        GradCAM(Unused(), "spare")(torch.rand(1, 3, 4, 4))

    class Detached(Unused):
        def forward(self, x):
            return self.fc(self.conv(x).detach().mean((2, 3)))

    with pytest.raises(ValueError, match="do not depend differentiably on target_layer 'conv'"):
        GradCAM(Detached(), "conv")(torch.rand(1, 3, 4, 4))


def test_model_must_return_scores():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())
    with pytest.raises(ValueError, match=r"model must return \(N, num_classes\) scores"):
        GradCAM(model, "0")(torch.rand(1, 3, 4, 4))


def test_constructor_argument_errors():
    model = SmallCNN(num_classes=5, width=8)
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        SmoothGradCAMPlusPlus(model, "features", n_samples=0)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        SmoothGradCAMPlusPlus(model, "features", sigma=-0.1)


# ---------------------------------------------------------------------- Smooth Grad-CAM++
def test_smooth_gradcam_plus_plus():
    model = SmallCNN(num_classes=5, width=8).eval()
    x = torch.rand(2, 3, 32, 32)
    plain = GradCAMPlusPlus(model, "features")(x, upsample=False, normalize=False)
    # without noise every copy is the image itself
    zero = SmoothGradCAMPlusPlus(model, "features", n_samples=3, sigma=0.0)(x, upsample=False, normalize=False)
    assert_close(zero, plain, atol=1e-6, rtol=1e-5)
    # one copy: Grad-CAM++ of x + sigma * noise, the noise drawn from a CPU generator with the seed
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    targets = model(x).argmax(1)  # the class of the clean image
    want = GradCAMPlusPlus(model, "features")(x + 0.2 * noise, targets, upsample=False, normalize=False)
    got = SmoothGradCAMPlusPlus(model, "features", n_samples=1, sigma=0.2, seed=5, average="maps")(
        x, upsample=False, normalize=False)
    assert_close(got, want, atol=1e-6, rtol=1e-5)
    # the derivative average without noise is Grad-CAM++ exactly (every exp(y_s - max) is 1)
    zero_d = SmoothGradCAMPlusPlus(model, "features", n_samples=3, sigma=0.0, average="derivatives")
    assert_close(zero_d(x, upsample=False, normalize=False), plain, atol=1e-6, rtol=1e-5)
    # the average of n copies; the same seed gives the same maps, another seed others
    for average, layer in (("maps", "features"), ("derivatives", "features.5")):
        smooth = SmoothGradCAMPlusPlus(model, layer, n_samples=4, sigma=0.2, seed=1, average=average)
        assert torch.equal(smooth(x), smooth(x))
        other = SmoothGradCAMPlusPlus(model, layer, n_samples=4, sigma=0.2, seed=2, average=average)(x)
        assert not torch.allclose(smooth(x), other), average
    with pytest.raises(ValueError, match="average must be one of"):
        SmoothGradCAMPlusPlus(model, "features", average="mean")


@pytest.mark.parametrize("average", ["derivatives", "maps"])
def test_smooth_gradcam_plus_plus_hand_computed(average):
    """Both variants written out by hand, in float64, for a model whose gradient is known in closed form."""
    model = SquareModel().double()
    x = torch.tensor([[[[0.8, 0.3, -0.5]]]], dtype=torch.float64)
    n, sigma, c = 3, 0.4, 0
    noise = [torch.randn(x.shape, generator=g).double() for g in [torch.Generator().manual_seed(7)]
             for _ in range(n)]
    v = model.v[c].tolist()
    clean = x.flatten().tolist()

    def gpp(a, grads):  # Grad-CAM++ on one map: alpha = g^2 / (2 g^2 + sum(A) g^3), w = sum alpha relu(g)
        total = sum(a)
        w = sum(gj**2 / (2 * gj**2 + total * gj**3) * max(gj, 0.0) for gj in grads if gj != 0)
        return [max(w * aj, 0.0) for aj in a]

    copies = [(x + sigma * e).flatten().tolist() for e in noise]
    if average == "maps":
        maps = [gpp(a, [vj * aj for vj, aj in zip(v, a, strict=False)]) for a in copies]
        want = [sum(m[j] for m in maps) / n for j in range(3)]
    else:
        ys = [0.5 * sum(vj * aj**2 for vj, aj in zip(v, a, strict=False)) for a in copies]
        top = max(ys)
        d = [[sum(math.exp(y - top) * (vj * a[j]) ** p for y, a in zip(ys, copies, strict=False)) / n
              for j, vj in enumerate(v)] for p in (1, 2, 3)]
        total = sum(clean)
        w = sum(d[1][j] / (2 * d[1][j] + total * d[2][j]) * max(d[0][j], 0.0) for j in range(3))
        want = [max(w * aj, 0.0) for aj in clean]
    explainer = SmoothGradCAMPlusPlus(model, "a", n_samples=n, sigma=sigma, seed=7, average=average)
    got = explainer(x, c, upsample=False, normalize=False)
    assert float(torch.tensor(want).abs().max()) > 1e-3  # a non-trivial case
    assert_close(got.flatten(), torch.tensor(want, dtype=torch.float64), atol=1e-12, rtol=1e-10)


def test_smooth_derivatives_at_the_last_layer_of_a_gap_network_is_gradcam_plus_plus():
    """Before GAP + linear, dy/dA = w/Z whatever the input: averaging derivatives over noisy copies only
    rescales them, so the map is Grad-CAM++ of the clean image; averaging maps of noisy copies is not."""
    model = SmallCNN(num_classes=5, width=8).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    plain = GradCAMPlusPlus(model, "features")(x)
    a = SmoothGradCAMPlusPlus(model, "features", n_samples=4, sigma=0.3, average="derivatives")(x)
    b = SmoothGradCAMPlusPlus(model, "features", n_samples=4, sigma=0.3, average="maps")(x)
    assert_close(a, plain, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(b, plain, atol=1e-3)


# ---------------------------------------------------------------------- CPU / GPU parity
@pytest.mark.cuda
@pytest.mark.parametrize(
    "make",
    [
        lambda m: CAM(m, "features"),
        lambda m: GradCAM(m, "features"),
        lambda m: GradCAMPlusPlus(m, "features"),
        lambda m: SmoothGradCAMPlusPlus(m, "features", n_samples=3, sigma=0.0, seed=0),
        lambda m: RISE(m, n_masks=64, grid_size=4, batch_size=32, seed=0),
    ],
    ids=["cam", "gradcam", "gradcam++", "smooth-no-noise", "rise"],
)
def test_cpu_gpu_parity(make):
    model = SmallCNN(num_classes=5, width=8).eval()
    x = torch.rand(3, 3, 32, 32)
    cpu = make(model)(x)
    model_gpu = model.to("cuda")
    gpu = make(model_gpu)(x.to("cuda"))
    assert gpu.device.type == "cuda"
    assert_close(gpu.cpu(), cpu, atol=1e-3, rtol=1e-3)


@pytest.mark.cuda
def test_smooth_gradcam_plus_plus_on_cuda_draws_its_noise_there():
    """On a GPU the noise comes from a CUDA generator seeded with ``seed``; the maps equal Grad-CAM++ of the
    noisy copy computed on the CPU."""
    model = SmallCNN(num_classes=5, width=8).eval()
    x = torch.rand(2, 3, 32, 32)
    targets = model(x).argmax(1)
    noise = torch.randn(x.shape, generator=torch.Generator("cuda").manual_seed(5), device="cuda")
    want = GradCAMPlusPlus(model, "features")(x + 0.2 * noise.cpu(), targets, upsample=False, normalize=False)
    model_gpu = model.to("cuda")
    smooth = SmoothGradCAMPlusPlus(model_gpu, "features", n_samples=1, sigma=0.2, seed=5)
    got = smooth(x.cuda(), upsample=False, normalize=False)
    assert torch.equal(got, smooth(x.cuda(), upsample=False, normalize=False))
    assert_close(got.cpu(), want, atol=1e-4, rtol=1e-3)
