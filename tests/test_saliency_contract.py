"""The contract every explainer in ``course_lib.saliency.__all__`` keeps (DESIGN.md §3), one test per clause.

The methods are read from ``__all__``: a new explainer is tested here without editing a list. Only a method
whose constructor needs more than ``(model, target_layer)`` — or that takes no target layer — has a line in
:data:`KWARGS` (small settings so that the tests run fast).
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

import course_lib.saliency as saliency
from course_lib.models import SmallCNN
from course_lib.saliency.perception import FeatureDecoder
from tests.helpers import assert_close

#: constructor keyword arguments beyond (model, target_layer), by class name
KWARGS = {
    "SmoothGradCAMPlusPlus": lambda: {"n_samples": 2},
    "AugmentedGradCAM": lambda: {"n_augmentations": 3, "iterations": 5},
    "RISE": lambda: {"n_masks": 8, "batch_size": 4},
    "ScoreCAM": lambda: {"batch_size": 8},
    "PerceptionVisualization": lambda: {"decoder": FeatureDecoder(16, channels=(8, 8, 8))},
}
NAMES = [n for n in saliency.__all__ if inspect.isclass(getattr(saliency, n)) and hasattr(getattr(saliency, n), "explain")]


def make(name: str, model):
    cls = getattr(saliency, name)
    kwargs = KWARGS.get(name, dict)()
    if "target_layer" in inspect.signature(cls).parameters:
        kwargs["target_layer"] = "features"
    return cls(model, **kwargs)


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_every_public_name_but_the_result_and_the_post_processing_is_an_explainer():
    assert sorted(set(saliency.__all__) - set(NAMES)) == ["Explanation", "metrics", "normalize_maps", "upsample_maps"]
    assert {"LayerCAM", "ScoreCAM"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_shape_range_and_targets(name):
    model = SmallCNN(num_classes=5, width=8).eval()
    x = torch.rand(3, 3, 32, 32)
    explainer = make(name, model)
    maps = explainer(x)
    assert maps.shape == (3, 32, 32) and maps.dtype == x.dtype and maps.device == x.device
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1 and not torch.isnan(maps).any()
    raw = explainer(x, upsample=False, normalize=False)
    assert raw.ndim == 3 and raw.shape[0] == 3 and float(raw.min()) >= 0
    # the default target is the arg-max class, an int applies to every image, a tensor per image
    with torch.no_grad():
        top = model(x).argmax(1)
    assert_close(maps, explainer(x, top))
    assert_close(explainer(x, 2), explainer(x, torch.full((3,), 2)))


@pytest.mark.parametrize("name", NAMES)
def test_no_hooks_left_and_modes_restored(name):
    model = SmallCNN(num_classes=5, width=8)
    model.train()
    model.features[1].eval()  # a mixed state must come back exactly
    modes = [m.training for m in model.modules()]
    model.fc.weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    grad = torch.full_like(model.features[0].weight, 7.0)
    model.features[0].weight.grad = grad
    running = model.features[1].running_mean.clone()
    make(name, model)(torch.rand(2, 3, 32, 32))
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert model.features[0].weight.grad is grad and bool((grad == 7).all())
    assert all(p.grad is None for n, p in model.named_parameters() if n != "features.0.weight")
    assert _hooks(model) == 0
    assert torch.equal(model.features[1].running_mean, running)  # ran in eval mode: no statistics update


@pytest.mark.parametrize("name", NAMES)
def test_state_restored_after_an_exception(name):
    model = SmallCNN(num_classes=5, width=8).train()
    flags = [p.requires_grad for p in model.parameters()]
    with pytest.raises(ValueError, match=r"targets must be class indices in \[0, 5\)"):
        make(name, model)(torch.rand(2, 3, 32, 32), targets=5)  # fails after the forward pass
    assert _hooks(model) == 0
    assert model.training and all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags


@pytest.mark.parametrize("name", NAMES)
def test_bad_input(name):
    model = SmallCNN(num_classes=5, width=8).eval()
    explainer = make(name, model)
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        make(name, "model")
    with pytest.raises(ValueError, match=r"images must be 4-D, got a torch.float32 tensor of shape \(3, 32, 32\)"):
        explainer(x[0])
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="images contains 1 NaN or infinite value"):
        explainer(bad)
    with pytest.raises(ValueError, match=r"images must have 3 channels \(the model's first convolution takes 3\)"):
        explainer(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"targets must have shape \(2,\)"):
        explainer(x, torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="targets must hold integers"):
        explainer(x, torch.tensor([0.0, 1.0]))
    assert _hooks(model) == 0


@pytest.mark.parametrize("name", NAMES)
def test_explain_returns_the_call_maps_with_targets_and_scores_and_keeps_no_state(name):
    torch.manual_seed(0)
    model = SmallCNN(num_classes=5, width=8).eval()
    x = torch.rand(3, 3, 32, 32)
    explainer = make(name, model)
    before = dict(vars(explainer))
    out = explainer.explain(x, targets=torch.tensor([0, 4, 2]))
    assert dict(vars(explainer)).keys() == before.keys()
    assert all(vars(explainer)[k] is v for k, v in before.items()), "explain must not store anything on the explainer"
    assert isinstance(out, saliency.Explanation)
    assert torch.equal(out.maps, explainer(x, targets=torch.tensor([0, 4, 2])))
    assert out.targets.tolist() == [0, 4, 2]
    with torch.no_grad():
        expected_scores = model(x)
    torch.testing.assert_close(out.scores, expected_scores, rtol=1e-5, atol=1e-6)
    assert explainer.explain(x).targets.tolist() == expected_scores.argmax(1).tolist()
    with pytest.raises(dataclasses.FrozenInstanceError):  # a result cannot be edited after the fact
        out.maps = out.maps * 2


@pytest.mark.parametrize("name", NAMES)
def test_seed_and_progress_are_checked_for_every_explainer_that_takes_them(name):
    model = SmallCNN(num_classes=5, width=8).eval()
    params = inspect.signature(getattr(saliency, name)).parameters
    if "progress" not in params and "seed" not in params:
        pytest.skip(f"{name} takes neither seed nor progress")
    if "progress" in params:
        with pytest.raises(TypeError, match="progress must be True or False"):
            make_with(name, model, progress=1)
    if "seed" in params:
        with pytest.raises(ValueError, match="seed must be"):
            make_with(name, model, seed=-1)
        with pytest.raises(TypeError, match="seed must be"):
            make_with(name, model, seed=1.5)
        generator = torch.Generator().manual_seed(0)
        assert make_with(name, model, seed=generator).seed is generator  # a generator is kept as it is


def make_with(name: str, model, **overrides):
    cls = getattr(saliency, name)
    kwargs = {**KWARGS.get(name, dict)(), **overrides}
    if "target_layer" in inspect.signature(cls).parameters:
        kwargs["target_layer"] = "features"
    return cls(model, **kwargs)
