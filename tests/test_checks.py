"""course_lib._checks: the shared input checks name the argument and say what they expected."""

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import _checks as C


def test_check_tensor_messages_name_the_argument():
    with pytest.raises(TypeError, match=r"images must be a torch.Tensor or numpy.ndarray, got list"):
        C.check_tensor([1, 2], "images")
    with pytest.raises(ValueError, match=r"x must be 4-D, got a torch.float32 tensor of shape \(2, 3\)"):
        C.check_tensor(torch.zeros(2, 3), "x", ndim=4)
    with pytest.raises(ValueError, match=r"images must have size 3 in dimension 1"):
        C.check_images(torch.zeros(1, 4, 2, 2))
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        C.check_images(torch.full((1, 3, 2, 2), 2.0), value_range=True)


def test_scalar_checks():
    assert C.check_int(np.int64(3), "k") == 3
    with pytest.raises(TypeError, match="k must be an integer"):
        C.check_int(True, "k")
    with pytest.raises(ValueError, match="p must be in"):
        C.check_probability(1.5, "p")
    with pytest.raises(ValueError, match="lr must be > 0"):
        C.check_positive(0.0, "lr")
    with pytest.raises(ValueError, match="lr must be > 0"):
        C.check_positive(float("nan"), "lr")


def test_resolve_layer_and_targets():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten())
    assert C.resolve_layer(model, "0") is model[0]
    assert C.resolve_layer(model, model[1]) is model[1]
    with pytest.raises(ValueError, match="not a layer of the model"):
        C.resolve_layer(model, "features")
    with pytest.raises(ValueError, match="not a submodule"):
        C.resolve_layer(model, nn.ReLU())
    t = C.check_targets(2, 3, 5, torch.device("cpu"))
    assert t.tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match=r"class indices in \[0, 5\)"):
        C.check_targets(torch.tensor([0, 5, 1]), 3, 5, torch.device("cpu"))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        C.check_targets(torch.tensor([0, 1]), 3, 5, torch.device("cpu"))
    with pytest.raises(TypeError, match="integers"):
        C.check_targets(torch.tensor([0.5, 1.0, 2.0]), 3, 5, torch.device("cpu"))


def test_check_same_device_names_both_devices():
    from course_lib._checks import check_same_device

    model = nn.Conv2d(3, 2, 1)
    check_same_device(model, torch.zeros(1, 3, 2, 2))  # same device: no error
    check_same_device(nn.ReLU(), torch.zeros(1, device="meta"))  # no parameters: nothing to compare
    with pytest.raises(ValueError, match="images are on meta but the model is on cpu"):
        check_same_device(model, torch.zeros(1, 3, 2, 2, device="meta"))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        check_same_device("not a model", torch.zeros(1))
