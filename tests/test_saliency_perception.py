"""Perception Visualization: the decoder, the masking rule, the explainer, the decoder recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.models import SmallCNN
from course_lib.saliency import GradCAM, PerceptionVisualization
from course_lib.saliency.perception import FeatureDecoder, perception_visualization
from tests.helpers import assert_close


def _model() -> SmallCNN:
    torch.manual_seed(0)
    return SmallCNN(num_classes=5, width=8).eval()


class _ConstantDecoder(nn.Module):
    """Ignores the features' values: a fixed image (of a given size) per sample."""

    def __init__(self, value: torch.Tensor, size: int) -> None:
        super().__init__()
        self.register_buffer("value", value)
        self.size = size

    def forward(self, features):
        return self.value.view(1, 3, 1, 1).expand(features.shape[0], 3, self.size, self.size).clone()


# ------------------------------------------------------------------------------------------ decoder
@pytest.mark.parametrize(("channels", "side"), [((8,), 8), ((16, 8, 8), 32), ((16, 8, 8, 4), 64)])
def test_decoder_shapes_and_range(channels, side):
    dec = FeatureDecoder(16, channels=channels).eval()
    assert dec.upsamplings == len(channels) - 1
    with torch.no_grad():
        out = dec(torch.randn(2, 16, 8, 8))
    assert out.shape == (2, 3, side, side)
    assert float(out.min()) >= 0 and float(out.max()) <= 1


@pytest.mark.parametrize("which", ["SETTINGS", "SETTINGS_MID"])
def test_zoo_decoder_architecture_fits_the_size_limit_and_the_layer(which):
    from course_lib import zoo
    from course_lib.zoo.recipes import decoder as recipe

    settings = getattr(recipe, which)
    dec = recipe.build(settings)
    n_bytes = sum(t.numel() * t.element_size() for t in dec.state_dict().values())
    assert n_bytes < 2 * 1024**2
    # the decoder takes exactly what the classifier's layer outputs for a 64x64 image, and returns 64x64 images
    inversion = recipe.LayerInversion(zoo.load(settings["classifier"], device="cpu"), settings["target_layer"], dec)
    x = torch.rand(1, 3, settings["size"], settings["size"])
    assert inversion.features(x).shape[1] == settings["in_channels"]
    assert inversion(x).shape == (1, 3, settings["size"], settings["size"])


@pytest.mark.parametrize("name", ["shapes_gap_decoder", "shapes_gap_decoder_mid"])
def test_zoo_decoder_checkpoint_matches_its_classifier(name):
    from course_lib import zoo
    from course_lib.zoo.recipes.decoder import LayerInversion

    record = zoo.info(name)
    assert record["bytes"] < 2 * 1024**2
    # the decoder inverts one classifier: retrain it (python -m course_lib.zoo train NAME) whenever
    # shapes_gap changes
    assert record["train_info"]["classifier_sha256"] == zoo.info("shapes_gap")["sha256"]
    inversion = LayerInversion(zoo.load("shapes_gap", device="cpu"), record["settings"]["target_layer"],
                               zoo.load(name, device="cpu")).eval()
    from course_lib.data import ShapesDataset

    x = ShapesDataset(16, seed=301).images
    with torch.no_grad():
        rec = inversion(x)
    # better than the best constant image for these images (their mean): the features carry image content
    assert float((rec - x).pow(2).mean()) < float((x.mean(0, keepdim=True) - x).pow(2).mean())


def test_earlier_layer_keeps_more_of_the_image():
    """The recorded held-out PSNR is what the checkpoints give now, and features.9 keeps more than features."""
    from course_lib import zoo
    from course_lib.data import ShapesDataset
    from course_lib.saliency.metrics import psnr
    from course_lib.zoo.recipes.decoder import LayerInversion

    settings = zoo.info("shapes_gap_decoder")["settings"]
    x = ShapesDataset(settings["n_test"], seed=settings["test_seed"]).images  # the recipes' held-out images
    measured = {}
    for name in ("shapes_gap_decoder", "shapes_gap_decoder_mid"):
        record = zoo.info(name)
        inversion = LayerInversion(zoo.load("shapes_gap", device="cpu"), record["settings"]["target_layer"],
                                   zoo.load(name, device="cpu")).eval()
        with torch.no_grad():
            measured[name] = float(psnr(inversion(x).clamp(0, 1), x).mean())
        # the same images as the recipe's evaluation: the recorded mean PSNR (rounded to 1e-3 dB) is reproduced
        assert abs(measured[name] - record["metrics"]["psnr_db"]) < 0.01
    assert measured["shapes_gap_decoder_mid"] > measured["shapes_gap_decoder"] + 5.0


# ------------------------------------------------------------------------------------------ masking rule
def test_masking_rule_hand_computed():
    rec = torch.tensor([0.2, 0.4, 1.0]).view(1, 3, 1, 1).expand(1, 3, 1, 3)
    s = torch.tensor([[[1.0, 0.0, 0.5]]])
    out = perception_visualization(rec, s, neutral=0.5)
    # s = 1: the reconstruction; s = 0: grey; s = 0.5: the average of both
    expected = torch.tensor(
        [[[0.2, 0.5, 0.35]], [[0.4, 0.5, 0.45]], [[1.0, 0.5, 0.75]]]
    )[None]
    assert_close(out, expected)


def test_masking_rule_other_neutral():
    rec = torch.rand(2, 3, 4, 4)
    zeros, ones = torch.zeros(2, 4, 4), torch.ones(2, 4, 4)
    assert_close(perception_visualization(rec, ones, neutral=0.0), rec)
    assert_close(perception_visualization(rec, zeros, neutral=0.0), torch.zeros_like(rec))
    assert_close(perception_visualization(rec, zeros, neutral=1.0), torch.ones_like(rec))


def test_masking_rule_bad_input():
    rec = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"saliency must have shape \(2, 4, 4\)"):
        perception_visualization(rec, torch.rand(2, 5, 5))
    with pytest.raises(ValueError, match=r"saliency must have values in \[0, 1\]"):
        perception_visualization(rec, torch.full((2, 4, 4), 1.5))
    with pytest.raises(ValueError, match=r"neutral must be in \[0, 1\]"):
        perception_visualization(rec, torch.rand(2, 4, 4), neutral=2.0)
    with pytest.raises(ValueError, match="reconstructions must be 4-D"):
        perception_visualization(rec[0], torch.rand(2, 4, 4))


# ------------------------------------------------------------------------------------------ explainer
def test_explain_combines_decoder_and_gradcam():
    model, x = _model(), torch.rand(3, 3, 32, 32)
    colour = torch.tensor([0.9, 0.1, 0.3])
    pv = PerceptionVisualization(model, "features", _ConstantDecoder(colour, 32), neutral=0.5)
    out = pv.explain(x)
    with torch.no_grad():
        classes = model(x).argmax(1)
    s = GradCAM(model, "features")(x, classes)
    assert torch.equal(out.predictions, classes) and torch.equal(out.targets, classes)
    assert_close(out.saliency, s)
    expected = s[:, None] * colour.view(1, 3, 1, 1) + (1 - s[:, None]) * 0.5
    assert_close(out.visualizations, expected)
    assert_close(pv(x), s)  # called like any explainer: the map it uses


@pytest.mark.parametrize("which", ["gradcam", "layercam", "rise"])
def test_explain_equals_reconstruct_and_saliency_called_separately(which):
    from course_lib.saliency import RISE, LayerCAM

    model, x = _model(), torch.rand(3, 3, 32, 32)
    saliency = {"gradcam": None, "layercam": LayerCAM(model, "features"),
                "rise": RISE(model, n_masks=8, batch_size=4)}[which]
    pv = PerceptionVisualization(model, "features", FeatureDecoder(16, channels=(16, 8, 8)).eval(), saliency=saliency)
    passes = []
    handle = model.register_forward_pre_hook(lambda module, inputs: passes.append(inputs[0].shape[0]))
    try:
        out = pv.explain(x)
    finally:
        handle.remove()
    if which != "rise":  # one forward pass gives the features, the scores and the maps
        assert passes == [3]
    with torch.no_grad():
        classes = model(x).argmax(1)
    assert torch.equal(out.predictions, classes) and torch.equal(out.targets, classes)
    assert torch.equal(out.reconstructions, pv.reconstruct(x))
    assert torch.equal(out.saliency, pv.saliency(x, classes))
    assert torch.equal(out.saliency, pv(x, classes))
    assert torch.equal(out.visualizations, perception_visualization(out.reconstructions, out.saliency, pv.neutral))


def test_explain_given_targets_and_resized_reconstruction():
    model, x = _model(), torch.rand(2, 3, 32, 32)
    pv = PerceptionVisualization(model, "features", _ConstantDecoder(torch.tensor([0.2, 0.4, 0.6]), 16))
    out = pv.explain(x, targets=torch.tensor([4, 1]))
    assert out.targets.tolist() == [4, 1]
    assert out.reconstructions.shape == (2, 3, 32, 32)
    assert_close(out.reconstructions[:, :, 5, 7], torch.tensor([[0.2, 0.4, 0.6]] * 2))
    assert_close(out.saliency, GradCAM(model, "features")(x, torch.tensor([4, 1])))


def test_reconstruct_feeds_the_target_layer_output_to_the_decoder():
    model, x = _model(), torch.rand(2, 3, 32, 32)
    dec = FeatureDecoder(16, channels=(16, 8, 8)).eval()
    pv = PerceptionVisualization(model, "features", dec)
    with torch.no_grad():
        expected = dec(model.features(x))
    assert_close(pv.reconstruct(x), expected)
    assert_close(pv.features(x), model.features(x).detach())


def test_explainer_leaves_modes_as_found():
    model, dec = _model().train(), FeatureDecoder(16, channels=(16, 8, 8)).train()
    PerceptionVisualization(model, "features", dec).explain(torch.rand(2, 3, 32, 32))
    assert model.training and dec.training
    assert all(p.requires_grad for p in model.parameters())


def test_explainer_bad_input():
    model = _model()
    with pytest.raises(TypeError, match="decoder must be a torch.nn.Module"):
        PerceptionVisualization(model, "features", decoder=lambda f: f)
    with pytest.raises(ValueError, match="target_layer='head' is not a layer"):
        PerceptionVisualization(model, "head", FeatureDecoder(16))
    with pytest.raises(TypeError, match="saliency must be a course_lib.saliency explainer"):
        PerceptionVisualization(model, "features", FeatureDecoder(16), saliency="gradcam")
    pv = PerceptionVisualization(model, "features", FeatureDecoder(32, channels=(8, 8, 8)))  # wrong channel count for width=8
    with pytest.raises(ValueError, match="features must have size 32 in dimension 1"):
        pv.reconstruct(torch.rand(1, 3, 32, 32))
    pv = PerceptionVisualization(model, "features", nn.Flatten())
    with pytest.raises(ValueError, match=r"decoder must return \(N, C, H, W\) images"):
        pv.reconstruct(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="images must have 3 channels"):
        pv.explain(torch.rand(1, 1, 32, 32))


# ------------------------------------------------------------------------------------------ recipe helpers
def test_layer_inversion_trains_only_the_decoder():
    from course_lib.zoo.recipes.decoder import LayerInversion

    model, dec = _model(), FeatureDecoder(16, channels=(16, 8, 8))
    inv = LayerInversion(model, "features", dec).train()
    assert inv.decoder.training and not inv.classifier.training
    x = torch.rand(4, 3, 32, 32)
    before = model.features[1].running_mean.clone()
    loss = (inv(x) - x).pow(2).mean()
    loss.backward()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None for p in dec.parameters())
    assert torch.equal(model.features[1].running_mean, before)


def test_psnr_and_ssim_match_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from course_lib.saliency.metrics import psnr, ssim

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    ref = [peak_signal_noise_ratio(x.numpy(), y.numpy(), data_range=1.0) for x, y in zip(b, a, strict=True)]
    assert_close(psnr(a, b), torch.tensor(ref, dtype=torch.float32), atol=1e-4, rtol=1e-5)
    ref = [structural_similarity(x.numpy(), y.numpy(), data_range=1.0, channel_axis=0) for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(ssim(a, b), ref, rtol=1e-6)


@pytest.mark.cuda
def test_explain_cpu_gpu_parity():
    model, x, t = _model(), torch.rand(2, 3, 32, 32), torch.tensor([0, 2])
    torch.manual_seed(1)
    dec = FeatureDecoder(16, channels=(16, 8, 8)).eval()
    cpu = PerceptionVisualization(model, "features", dec).explain(x, t)
    gpu = PerceptionVisualization(model.cuda(), "features", dec.cuda()).explain(x.cuda(), t.cuda())
    assert gpu.visualizations.device.type == "cuda"
    # cuDNN may use TF32 convolutions on the GPU
    assert_close(gpu.reconstructions.cpu(), cpu.reconstructions, atol=5e-3, rtol=0)
    assert_close(gpu.visualizations.cpu(), cpu.visualizations, atol=5e-3, rtol=0)
