"""course_lib.training: the loop learns, is reproducible, handles custom losses/targets, and restores state."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_lib.training import accuracy, evaluate, evaluate_accuracy, fit, predict
from tests.helpers import assert_close


def _blobs(n: int = 200, seed: int = 0):
    """Two well-separated Gaussian blobs in 2-D (linearly separable)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) * 0.3 + (y[:, None].float() * 2 - 1) * 2
    return x, y


def test_learns_a_separable_problem():
    x, y = _blobs()
    model = nn.Linear(2, 2)
    h = fit(model, (x, y), (x, y), epochs=15, lr=0.05, batch_size=20, progress=False, device="cpu")
    assert h["train_loss"][-1] < h["train_loss"][0] / 3
    assert h["val_acc"][-1] == 1.0
    assert len(h["train_loss"]) == len(h["val_loss"]) == len(h["epoch"]) == len(h["time"]) == 15
    assert len(h["step_loss"]) == 15 * 10
    assert h["diverged"] == [False]
    assert not model.training  # left in eval mode


def test_same_seed_same_run_and_different_seed_differs():
    x, y = _blobs()

    def run(seed):
        torch.manual_seed(123)
        model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
        h = fit(model, (x, y), epochs=2, lr=0.01, batch_size=16, seed=seed, progress=False, device="cpu")
        return h["step_loss"], model[0].weight.detach().clone()

    loss_a, w_a = run(0)
    loss_b, w_b = run(0)
    loss_c, _ = run(1)
    assert loss_a == loss_b and torch.equal(w_a, w_b)
    assert loss_a != loss_c  # another shuffling order


def test_sgd_step_matches_the_update_rule():
    # one full-batch SGD step without momentum: w <- w - lr * grad, computed independently with autograd
    x, y = _blobs(32)
    model = nn.Linear(2, 2)
    ref = nn.Linear(2, 2)
    ref.load_state_dict(model.state_dict())
    nn.functional.cross_entropy(ref(x), y).backward()
    expected = ref.weight.detach() - 0.1 * ref.weight.grad
    fit(model, (x, y), epochs=1, lr=0.1, batch_size=32, optimizer="sgd", momentum=0.0, progress=False,
        device="cpu")
    assert_close(model.weight.detach(), expected)


def test_cosine_schedule_reaches_zero():
    x, y = _blobs(40)
    h = fit(nn.Linear(2, 2), (x, y), epochs=4, lr=0.1, batch_size=10, schedule="cosine", progress=False,
            device="cpu")
    assert h["lr"][0] == pytest.approx(0.1)
    assert h["lr"][2] == pytest.approx(0.05)  # half-way: 0.1 * (1 + cos(pi/2)) / 2
    assert h["lr"][1] > h["lr"][2] > h["lr"][3]


class _TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(2, 8)
        self.cls, self.reg = nn.Linear(8, 2), nn.Linear(8, 1)

    def forward(self, x):
        h = torch.relu(self.body(x))
        return self.cls(h), self.reg(h).squeeze(1)


def test_custom_loss_with_tuple_targets_and_metrics():
    x, y = _blobs(100)
    r = x.sum(dim=1)
    data = torch.utils.data.TensorDataset(x, y, r)

    class Pairs(torch.utils.data.Dataset):  # (input, (label, value)) like ShapesDataset(target="class_box")
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            a, b, c = data[i]
            return a, (b, c)

    def loss_fn(out, target):
        return nn.functional.cross_entropy(out[0], target[0]) + nn.functional.mse_loss(out[1], target[1])

    metrics = {"acc": lambda out, t: accuracy(out[0], t[0]), "mae": lambda out, t: (out[1] - t[1]).abs().mean()}
    model = _TwoHeads()
    h = fit(model, Pairs(), Pairs(), epochs=10, lr=0.02, batch_size=10, loss_fn=loss_fn, metrics=metrics,
            progress=False, device="cpu")
    assert {"train_acc", "train_mae", "val_acc", "val_mae"} <= h.keys()
    assert h["val_mae"][-1] < h["val_mae"][0]
    out = predict(model, Pairs())
    assert isinstance(out, tuple) and out[0].shape == (100, 2) and out[1].shape == (100,)
    # the reported validation metric equals one computed here by hand
    assert h["val_mae"][-1] == pytest.approx(float((out[1] - r).abs().mean()), rel=1e-5)


def test_evaluate_accuracy_and_predict_match_direct_computation():
    x, y = _blobs(50)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2))
    with torch.no_grad():
        direct = model(x)
    assert_close(predict(model, x, batch_size=7), direct)
    assert evaluate_accuracy(model, (x, y), batch_size=7) == pytest.approx(float((direct.argmax(1) == y).float().mean()))
    ce = evaluate(model, (x, y), batch_size=7)["loss"]
    assert ce == pytest.approx(float(nn.functional.cross_entropy(direct, y)), rel=1e-5)


def test_train_mode_evaluation_restores_batchnorm_statistics_and_mode():
    x, y = torch.randn(40, 4), torch.randint(2, (40,))
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 2)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    evaluate_accuracy(model, (x, y), batch_size=8, train_mode=True)
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_history_epoch_numbers_are_sample_weighted_means_of_the_steps():
    # 25 samples in batches of 10: steps of 10, 10 and 5 samples, so an epoch's loss weighs the last step half
    x, y = _blobs(25)
    h = fit(nn.Linear(2, 2), (x, y), epochs=2, lr=0.05, batch_size=10, progress=False, device="cpu")
    s = h["step_loss"]
    assert len(s) == 6 and h["epoch"] == [1, 2]
    for epoch, steps in enumerate((s[:3], s[3:])):
        assert h["train_loss"][epoch] == pytest.approx((10 * steps[0] + 10 * steps[1] + 5 * steps[2]) / 25)
    assert h["lr"] == [0.05, 0.05] and 0 < h["time"][0] <= h["time"][1]
    assert "val_loss" not in h


def test_divergence_stops_at_the_first_non_finite_step():
    x, y = _blobs(40)
    h = fit(nn.Linear(2, 2), (x * 1e30, y), epochs=3, lr=1e30, batch_size=10, optimizer="sgd",
            progress=False, device="cpu")
    assert not math.isfinite(h["step_loss"][-1]) and all(math.isfinite(v) for v in h["step_loss"][:-1])
    assert h["epoch"] == [1] and math.isnan(h["train_loss"][0]) and math.isnan(h["train_acc"][0])


def test_frozen_model_is_refused():
    model = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(model, _blobs(10), progress=False, device="cpu")


def test_divergence_is_reported():
    x, y = _blobs(40)
    h = fit(nn.Linear(2, 2), (x * 1e30, y), (x, y), epochs=3, lr=1e30, batch_size=10, optimizer="sgd",
            progress=False, device="cpu")
    assert h["diverged"] == [True]
    assert math.isnan(h["val_loss"][-1])


def test_bad_input():
    x, y = _blobs(10)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        fit(nn.Linear(2, 2), (x, y), epochs=0, progress=False)
    with pytest.raises(ValueError, match="lr must be > 0"):
        fit(nn.Linear(2, 2), (x, y), lr=-1.0, progress=False)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        fit(nn.Linear(2, 2), (x, y), optimizer="lbfgs", progress=False)
    with pytest.raises(TypeError, match="data must be a Dataset"):
        fit(nn.Linear(2, 2), [1, 2, 3], progress=False)
    with pytest.raises(ValueError, match="inputs and targets differ in length: 10 vs 9"):
        fit(nn.Linear(2, 2), (x, y[:9]), progress=False)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        fit("model", (x, y), progress=False)
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        fit(nn.Linear(2, 2), (x, y), loss_fn="mse", progress=False)


@pytest.mark.cuda
def test_cpu_cuda_parity():
    x, y = _blobs(64)
    weights = {}
    for dev in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
        fit(model, (x, y), epochs=2, lr=0.01, batch_size=16, progress=False, device=dev)
        assert next(model.parameters()).device.type == dev
        weights[dev] = model[0].weight.detach().cpu()
    assert_close(weights["cuda"], weights["cpu"], atol=1e-4, rtol=1e-4)
