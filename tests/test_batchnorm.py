"""course_lib.batchnorm against torch: forward, running statistics, hand-written backward, folding."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from course_lib.batchnorm import BatchNorm2d, batch_norm, batch_norm_backward, fold_batchnorm
from tests.helpers import assert_close


def _torch_bn(ndim: int, c: int, momentum):
    return nn.BatchNorm2d(c, momentum=momentum) if ndim == 4 else nn.BatchNorm1d(c, momentum=momentum)


def _randomize_affine(bn: nn.Module) -> None:
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.uniform_(-1.0, 1.0)


@pytest.mark.parametrize("shape", [(16, 3), (4, 3, 5, 6)])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_module_matches_torch_over_training_then_eval(shape, momentum):
    ref = _torch_bn(len(shape), shape[1], momentum)
    _randomize_affine(ref)
    ours = BatchNorm2d(shape[1], momentum=momentum)
    ours.load_state_dict(ref.state_dict())
    for step in range(6):
        x = torch.randn(shape) * (step + 1) + step  # statistics change from batch to batch
        assert_close(ours(x), ref(x))
        assert_close(ours.running_mean, ref.running_mean)
        assert_close(ours.running_var, ref.running_var)
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 6
    ours.eval()
    ref.eval()
    x = torch.randn(shape) * 2
    assert_close(ours(x), ref(x))
    assert_close(ours.running_var, ref.running_var)  # eval leaves the running statistics alone


@pytest.mark.parametrize("momentum", [0.1, None])
def test_functional_matches_torch_functional(momentum):
    x = torch.randn(8, 4, 3, 3)
    gamma, beta = torch.rand(4) + 0.5, torch.randn(4)
    rm, rv, count = torch.zeros(4), torch.ones(4), torch.tensor(0)
    rm_ref, rv_ref = torch.zeros(4), torch.ones(4)
    for t in range(1, 6):
        xt = x * t + t
        y = batch_norm(xt, gamma, beta, rm, rv, True, momentum=momentum, num_batches_tracked=count)
        # torch's functional form has no counter: pass the cumulative factor 1/t explicitly
        y_ref = torch.nn.functional.batch_norm(xt, rm_ref, rv_ref, gamma, beta, True,
                                               momentum if momentum is not None else 1.0 / t)
        assert_close(y, y_ref)
    assert_close(rm, rm_ref)
    assert_close(rv, rv_ref)
    assert_close(batch_norm(x, gamma, beta, rm, rv, False), torch.nn.functional.batch_norm(x, rm, rv, gamma, beta))


def test_training_uses_biased_variance_and_running_uses_unbiased():
    # one channel, values 1 and 3: mean 2, biased variance 1, unbiased variance 2
    x = torch.tensor([[1.0], [3.0]])
    rm, rv = torch.zeros(1), torch.ones(1)
    y = batch_norm(x, None, None, rm, rv, True, momentum=1.0, eps=1e-12)
    assert_close(y.flatten(), torch.tensor([-1.0, 1.0]))
    assert_close(rm, torch.tensor([2.0]))
    assert_close(rv, torch.tensor([2.0]))


def test_state_dict_round_trip_with_torch():
    ours = BatchNorm2d(5)
    ours.train()
    ours(torch.randn(4, 5, 3, 3))
    ref = nn.BatchNorm2d(5)
    assert set(ours.state_dict()) == set(ref.state_dict())
    ref.load_state_dict(ours.state_dict())
    back = BatchNorm2d(5)
    back.load_state_dict(ref.state_dict())
    for k, v in ours.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)
    assert int(back.num_batches_tracked) == 1


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 3), (3, 3, 4, 2)])
def test_backward_equals_autograd(training, shape):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    gamma = (torch.rand(3, dtype=torch.float64) + 0.5).requires_grad_()
    beta = torch.randn(3, dtype=torch.float64, requires_grad=True)
    rm, rv = torch.randn(3, dtype=torch.float64), torch.rand(3, dtype=torch.float64) + 0.5
    y, cache = batch_norm(x, gamma, beta, rm, rv, training, return_cache=True)
    dout = torch.randn_like(y)
    y.backward(dout)
    dx, dgamma, dbeta = batch_norm_backward(dout, cache)
    assert_close(dx, x.grad, atol=1e-10, rtol=1e-10)
    assert_close(dgamma, gamma.grad, atol=1e-10, rtol=1e-10)
    assert_close(dbeta, beta.grad, atol=1e-10, rtol=1e-10)


def test_constant_upstream_gradient_gives_zero_input_gradient():
    # property: the output of training-mode BN has zero mean per channel whatever x is, so a gradient that is
    # the same everywhere in a channel cannot change the loss through x
    x = torch.randn(5, 2, 3, 3)
    y, cache = batch_norm(x, torch.rand(2) + 0.5, torch.zeros(2), None, None, True, return_cache=True)
    dx, _, dbeta = batch_norm_backward(torch.ones_like(y), cache)
    assert_close(dx, torch.zeros_like(dx), atol=1e-6, rtol=0)
    assert_close(dbeta, torch.full((2,), 45.0))


def _trained_bn(c: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c)
    _randomize_affine(bn)
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.2, 3.0)
    return bn.eval()


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("ours", [False, True])
def test_fold_conv_equals_torch_fusion(bias, ours):
    conv = nn.Conv2d(3, 4, 3, padding=1, stride=2, bias=bias).eval()
    bn = _trained_bn(4)
    if ours:
        own = BatchNorm2d(4)
        own.load_state_dict(bn.state_dict())
        bn_used = own.eval()
    else:
        bn_used = bn
    folded = fold_batchnorm(conv, bn_used)
    ref = fuse_conv_bn_eval(conv, bn)
    assert_close(folded.weight, ref.weight)
    assert_close(folded.bias, ref.bias)
    x = torch.randn(2, 3, 9, 9)
    assert_close(folded(x), bn(conv(x)))
    assert conv.bias is None or not torch.equal(conv.bias, folded.bias)  # the original is not modified


def test_fold_linear_equals_torch_fusion():
    lin = nn.Linear(6, 4).eval()
    bn = nn.BatchNorm1d(4)
    _randomize_affine(bn)
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.2, 3.0)
    bn.eval()
    folded = fold_batchnorm(lin, bn)
    ref = fuse_linear_bn_eval(lin, bn)
    assert_close(folded.weight, ref.weight)
    assert_close(folded.bias, ref.bias)
    x = torch.randn(3, 6)
    assert_close(folded(x), bn(lin(x)))


# ---------------------------------------------------------------------------------------------- bad input
def test_channel_mismatch():
    with pytest.raises(ValueError, match=r"gamma must have one value per channel.*\(3,\).*\(4,\)"):
        batch_norm(torch.randn(4, 3), torch.ones(4), torch.zeros(3), None, None, True)
    with pytest.raises(ValueError, match=r"running_mean must have one value per channel"):
        batch_norm(torch.randn(2, 3, 2, 2), None, None, torch.zeros(5), torch.ones(5), False)
    with pytest.raises(ValueError, match=r"x must have size 3 in dimension 1.*\(2, 4, 2, 2\)"):
        BatchNorm2d(3)(torch.randn(2, 4, 2, 2))


def test_batch_of_one_in_training():
    with pytest.raises(ValueError, match="more than one value per channel"):
        BatchNorm2d(3).train()(torch.randn(1, 3))
    BatchNorm2d(3).eval()(torch.randn(1, 3))  # eval mode is fine with a single sample


def test_wrong_rank():
    with pytest.raises(ValueError, match=r"x must be 2-D or 4-D.*\(2, 3, 4\)"):
        batch_norm(torch.randn(2, 3, 4), None, None, None, None, True)


def test_negative_eps():
    with pytest.raises(ValueError, match="eps must be > 0"):
        batch_norm(torch.randn(4, 3), None, None, None, None, True, eps=-1e-5)
    with pytest.raises(ValueError, match="eps must be > 0"):
        BatchNorm2d(3, eps=0.0)


def test_eval_without_running_statistics():
    with pytest.raises(ValueError, match="eval mode.*needs running_mean"):
        batch_norm(torch.randn(4, 3), None, None, None, None, False)


def test_fold_rejects_mismatch_and_wrong_types():
    with pytest.raises(ValueError, match="bn.num_features must equal the layer's output channels: expected 4, got 5"):
        fold_batchnorm(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(5))
    with pytest.raises(TypeError, match="layer must be an nn.Conv2d or nn.Linear"):
        fold_batchnorm(nn.ConvTranspose2d(3, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(TypeError, match="bn must be a BatchNorm layer"):
        fold_batchnorm(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4))
    with pytest.raises(ValueError, match="track running statistics"):
        fold_batchnorm(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False))


@pytest.mark.cuda
@pytest.mark.parametrize("training", [True, False])
def test_cpu_cuda_parity(training):
    x = torch.randn(8, 4, 6, 6)
    gamma, beta = torch.rand(4) + 0.5, torch.randn(4)
    out = {}
    for dev in ("cpu", "cuda"):
        rm, rv, count = torch.zeros(4, device=dev), torch.ones(4, device=dev), torch.tensor(0, device=dev)
        y, cache = batch_norm(x.to(dev), gamma.to(dev), beta.to(dev), rm, rv, training,
                              num_batches_tracked=count, return_cache=True)
        grads = batch_norm_backward(torch.ones_like(y) * 0.5 + y, cache)
        out[dev] = [y, rm, rv, *grads]
    for a, b in zip(out["cpu"], out["cuda"], strict=True):
        assert_close(b.cpu(), a, atol=1e-5, rtol=1e-4)
    conv, bn = nn.Conv2d(4, 3, 3), _trained_bn(3)
    folded_cpu = fold_batchnorm(conv, bn)
    folded_gpu = fold_batchnorm(conv.cuda(), bn.cuda())
    assert_close(folded_gpu.weight.cpu(), folded_cpu.weight)
    assert folded_gpu.weight.device.type == "cuda"


def test_fold_model_equals_the_model_in_eval_mode():
    from course_lib.batchnorm import fold_model
    from course_lib.models import SmallCNN

    model = SmallCNN(width=8).train()
    for _ in range(3):  # give the BN layers non-trivial running statistics
        model(torch.rand(8, 3, 32, 32) * 2)
    model.eval()
    folded = fold_model(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 6  # the original is untouched
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert_close(folded(x), model(x), atol=1e-5, rtol=1e-4)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        fold_model("net")
