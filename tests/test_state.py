"""course_lib._state: capture, model_mode and allow_out_of_range undo what they change, even after an exception."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib._state import allow_out_of_range, capture, model_mode
from course_lib.models import SmallCNN


def _net() -> nn.Sequential:
    """y = 2 * relu(x) + 1, written with fixed weights so that every intermediate value is known by hand."""
    first, last = nn.Linear(2, 2, bias=False), nn.Linear(2, 1)
    with torch.no_grad():
        first.weight.copy_(torch.eye(2))
        last.weight.fill_(2.0)
        last.bias.fill_(1.0)
    return nn.Sequential(first, nn.ReLU(), last)


# ------------------------------------------------------------------------------------------------ capture
def test_capture_records_each_call_and_removes_its_hook():
    net, x = _net(), torch.tensor([[1.0, -2.0]])
    with capture(net[1]) as hooked:
        out = net(x)
        net(2 * x)
    assert torch.equal(out, torch.tensor([[3.0]]))  # 2 * (1 + 0) + 1: recording does not change the output
    assert [t.tolist() for t in hooked.outputs] == [[[1.0, 0.0]], [[2.0, 0.0]]]
    assert torch.equal(hooked.last(), torch.tensor([[2.0, 0.0]]))
    assert not net[1]._forward_hooks
    net(x)
    assert len(hooked.outputs) == 2  # nothing recorded after the block


def test_capture_on_output_records_one_thing_and_passes_on_another():
    net, x = _net(), torch.tensor([[1.0, 3.0]])
    with capture(net[1], on_output=lambda a: (a.sum(), torch.zeros_like(a))) as hooked:
        out = net(x)
    assert float(hooked.last().detach()) == 4.0
    assert torch.equal(out, torch.tensor([[1.0]]))  # the last layer saw zeros: 2 * 0 + 1


def test_capture_stop_ends_the_forward_pass_after_the_layer():
    net = _net()
    later = []
    net[2].register_forward_hook(lambda m, i, o: later.append(o))
    with capture(net[0], stop=True) as hooked:
        net(torch.tensor([[1.0, 2.0]]))
    assert torch.equal(hooked.last(), torch.tensor([[1.0, 2.0]])) and later == []
    assert not net[0]._forward_hooks


def test_capture_removes_its_hook_after_an_error_and_names_an_uncalled_layer():
    net = _net()
    with pytest.raises(RuntimeError, match="boom"), capture(net[0]):
        raise RuntimeError("boom")
    assert not net[0]._forward_hooks
    with capture(nn.Linear(2, 2), what="target_layer 'unused'") as hooked:
        net(torch.zeros(1, 2))
    with pytest.raises(ValueError, match="target_layer 'unused' was not called"):
        hooked.last()


# ---------------------------------------------------------------------------------------------- model_mode
def test_model_mode_restores_each_submodule_even_after_an_exception():
    net = SmallCNN(width=8).train()
    net.features.eval()  # mixed: a frozen trunk under a training head
    before = {name: m.training for name, m in net.named_modules()}
    with pytest.raises(RuntimeError, match="boom"), model_mode(net):
        assert not any(m.training for m in net.modules())
        raise RuntimeError("boom")
    assert {name: m.training for name, m in net.named_modules()} == before
    with model_mode(net, training=True):
        assert all(m.training for m in net.modules())
    assert {name: m.training for name, m in net.named_modules()} == before


def test_model_mode_is_public_in_models():
    from course_lib import models

    assert models.model_mode is model_mode


# ------------------------------------------------------------------------------------------ allow_out_of_range
def test_allow_out_of_range_restores_the_check_after_an_error():
    from course_lib.pretrained import EfficientNetLite0

    model = EfficientNetLite0().eval()  # architecture only: the range check needs no weights
    with pytest.raises(RuntimeError, match="inside"), allow_out_of_range(model):
        assert model.normalize.check_range is False
        raise RuntimeError("inside")
    assert model.normalize.check_range is True
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        model.normalize(torch.full((1, 3, 4, 4), 1.5))
    with allow_out_of_range(model):
        model.normalize(torch.full((1, 3, 4, 4), 1.5))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"), allow_out_of_range("model"):
        pass


def test_allow_out_of_range_leaves_modules_without_the_flag_alone():
    lone = nn.Linear(2, 2)
    lone.check_range = "custom"  # not the boolean True that opts in
    with allow_out_of_range(nn.Sequential(lone)):
        assert lone.check_range == "custom"
