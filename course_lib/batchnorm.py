r"""Batch normalization from plain tensor operations (Ioffe & Szegedy, *Batch Normalization: Accelerating Deep
Network Training by Reducing Internal Covariate Shift*, ICML 2015).

For a mini-batch :math:`\mathcal B = \{x_1, \dots, x_m\}` of one channel's values (for images: every sample
and every pixel, so :math:`m = N H W`), training mode computes

.. math::

    \mu_{\mathcal B} = \frac1m \sum_{i=1}^m x_i, \qquad
    \sigma_{\mathcal B}^2 = \frac1m \sum_{i=1}^m (x_i - \mu_{\mathcal B})^2, \qquad
    \hat x_i = \frac{x_i - \mu_{\mathcal B}}{\sqrt{\sigma_{\mathcal B}^2 + \epsilon}}, \qquad
    y_i = \gamma \hat x_i + \beta,

and updates running estimates of the population statistics with momentum :math:`\alpha` (PyTorch's
convention: the weight of the *new* value) and the *unbiased* batch variance:

.. math::

    \hat\mu \leftarrow (1 - \alpha)\,\hat\mu + \alpha\,\mu_{\mathcal B}, \qquad
    \hat\sigma^2 \leftarrow (1 - \alpha)\,\hat\sigma^2 + \alpha\,\frac{m}{m - 1}\,\sigma_{\mathcal B}^2 .

With ``momentum=None`` the update is a cumulative average, :math:`\alpha = 1 / t` at the :math:`t`-th batch.
Eval mode uses :math:`\hat\mu, \hat\sigma^2` instead of the batch statistics, so the layer becomes the affine
map :math:`y = \gamma (x - \hat\mu)/\sqrt{\hat\sigma^2 + \epsilon} + \beta` and can be folded into the
convolution or linear layer before it (:func:`fold_batchnorm`).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ._checks import check_int, check_module, check_positive, check_probability, check_tensor

__all__ = ["batch_norm", "batch_norm_backward", "BatchNorm2d", "fold_batchnorm", "fold_model"]


def _reduce_dims(x: torch.Tensor) -> tuple[int, ...]:
    """The dimensions a channel's statistics are taken over: all but dimension 1."""
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a ``(C,)`` vector so that it broadcasts against ``x`` along dimension 1."""
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def _check_inputs(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    x = check_tensor(x, "x", ndim=(2, 4))
    c = x.shape[1]
    for name, v in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean), ("running_var", running_var)):
        if v is None:
            continue
        v = check_tensor(v, name, ndim=1, min_batch=0, finite=False)
        if v.shape[0] != c:
            raise ValueError(
                f"{name} must have one value per channel of x: expected shape ({c},), got {tuple(v.shape)}"
            )
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together (or both None)")
    if not isinstance(training, bool):
        raise TypeError(f"training must be a bool, got {type(training).__name__}")
    if not training and running_mean is None:
        raise ValueError("eval mode (training=False) needs running_mean and running_var")
    m = x.numel() // c
    if training and m < 2:
        raise ValueError(
            f"training mode needs more than one value per channel to estimate a variance, got x of shape "
            f"{tuple(x.shape)} (a batch of one without spatial dimensions); use eval mode or a larger batch"
        )
    if momentum is not None:
        check_probability(momentum, "momentum")
    check_positive(eps, "eps")
    return x


def batch_norm(
    x: torch.Tensor,
    gamma: torch.Tensor | None,
    beta: torch.Tensor | None,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    training: bool,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
    num_batches_tracked: torch.Tensor | None = None,
    return_cache: bool = False,
):
    r"""Batch normalization of ``x`` of shape ``(N, C)`` or ``(N, C, H, W)``, per channel.

    Training mode normalizes with the batch mean and the *biased* batch variance and, when running buffers
    are given, updates them **in place** with the *unbiased* variance (module docstring for the formulas).
    Eval mode normalizes with ``running_mean`` and ``running_var``.

    Args:
        x: the activations.
        gamma, beta: scale and shift, ``(C,)`` each; ``None`` means 1 and 0.
        running_mean, running_var: ``(C,)`` running estimates (updated in place in training), or ``None``
            in training to use batch statistics only.
        training: batch statistics (``True``) or running statistics (``False``).
        momentum: the weight :math:`\alpha` of the new batch statistics; ``None`` for a cumulative average
            :math:`\alpha = 1/t`, which needs ``num_batches_tracked``.
        eps: :math:`\epsilon > 0`, added to the variance.
        num_batches_tracked: a 0-d integer tensor counting training batches, incremented in place.
        return_cache: also return the intermediate values :func:`batch_norm_backward` needs.

    Returns:
        ``y`` (same shape as ``x``), or ``(y, cache)`` with ``return_cache=True``.

    Raises:
        ValueError: wrong rank, parameters whose length differs from the channel count, a training batch with
            one value per channel, eval mode without running statistics, ``eps <= 0``.

    Example:
        >>> x = torch.tensor([[1.0], [3.0]])
        >>> rm, rv = torch.zeros(1), torch.ones(1)
        >>> batch_norm(x, None, None, rm, rv, training=True, momentum=0.5, eps=1e-12).flatten().tolist()
        [-1.0, 1.0]
        >>> rm.tolist(), rv.tolist()   # 0.5 * 0 + 0.5 * 2;  0.5 * 1 + 0.5 * (2 / (2 - 1))
        ([1.0], [1.5])
    """
    x = _check_inputs(x, gamma, beta, running_mean, running_var, training, momentum, eps)
    dims = _reduce_dims(x)
    m = x.numel() // x.shape[1]
    if training:
        mean = x.mean(dim=dims)
        centred = x - _per_channel(mean, x)
        var = (centred * centred).mean(dim=dims)  # biased: divide by m
        if running_mean is not None:
            if num_batches_tracked is not None:
                num_batches_tracked.add_(1)
            if momentum is None:
                if num_batches_tracked is None:
                    raise ValueError("momentum=None (cumulative average) needs num_batches_tracked")
                alpha = 1.0 / float(num_batches_tracked)
            else:
                alpha = momentum
            with torch.no_grad():
                running_mean.mul_(1 - alpha).add_(alpha * mean.detach())
                running_var.mul_(1 - alpha).add_(alpha * var.detach() * (m / (m - 1)))  # unbiased
    else:
        mean, var = running_mean, running_var
        centred = x - _per_channel(mean, x)
    inv_std = torch.rsqrt(var + eps)
    x_hat = centred * _per_channel(inv_std, x)
    y = x_hat
    if gamma is not None:
        y = y * _per_channel(gamma, x)
    if beta is not None:
        y = y + _per_channel(beta, x)
    if return_cache:
        return y, {"x_hat": x_hat, "inv_std": inv_std, "gamma": gamma, "training": training}
    return y


def batch_norm_backward(dout: torch.Tensor, cache: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Gradients of a loss through :func:`batch_norm`, derived by hand.

    With :math:`g_i = \partial L / \partial y_i` over the :math:`m` values of one channel and
    :math:`\hat x_i, \sigma^{-1} = (\sigma_{\mathcal B}^2 + \epsilon)^{-1/2}` from the forward pass:

    .. math::

        \frac{\partial L}{\partial \beta} = \sum_i g_i, \qquad
        \frac{\partial L}{\partial \gamma} = \sum_i g_i \hat x_i, \qquad
        \frac{\partial L}{\partial x_i} = \frac{\gamma\,\sigma^{-1}}{m}
            \Big(m\, g_i - \sum_j g_j - \hat x_i \sum_j g_j \hat x_j\Big)

    in training mode (the mean and variance depend on every :math:`x_j`), and
    :math:`\partial L / \partial x_i = \gamma\, \sigma^{-1} g_i` in eval mode (constant statistics).

    Args:
        dout: :math:`\partial L / \partial y`, the shape of the forward input.
        cache: the second value returned by ``batch_norm(..., return_cache=True)``.

    Returns:
        ``(dx, dgamma, dbeta)``; ``dgamma`` and ``dbeta`` have shape ``(C,)``.

    Example:
        >>> x = torch.randn(4, 3)
        >>> y, cache = batch_norm(x, torch.ones(3), torch.zeros(3), None, None, True, return_cache=True)
        >>> dx, dgamma, dbeta = batch_norm_backward(torch.ones_like(y), cache)
        >>> bool(dx.abs().max() < 1e-5)   # a constant upstream gradient cannot change a normalized output
        True
    """
    if not isinstance(cache, dict) or not {"x_hat", "inv_std", "gamma", "training"} <= cache.keys():
        raise TypeError("cache must be the dict returned by batch_norm(..., return_cache=True)")
    x_hat, inv_std, gamma = cache["x_hat"], cache["inv_std"], cache["gamma"]
    dout = check_tensor(dout, "dout", ndim=x_hat.ndim, finite=False)
    if dout.shape != x_hat.shape:
        raise ValueError(f"dout must have the forward input's shape {tuple(x_hat.shape)}, got {tuple(dout.shape)}")
    dims = _reduce_dims(dout)
    m = dout.numel() // dout.shape[1]
    dbeta = dout.sum(dim=dims)
    dgamma = (dout * x_hat).sum(dim=dims)
    scale = inv_std if gamma is None else gamma * inv_std
    if cache["training"]:
        dx = _per_channel(scale / m, dout) * (
            m * dout - _per_channel(dbeta, dout) - x_hat * _per_channel(dgamma, dout)
        )
    else:
        dx = _per_channel(scale, dout) * dout
    return dx, dgamma, dbeta


class BatchNorm2d(nn.Module):
    r"""Batch normalization over ``(N, C, H, W)`` (or ``(N, C)``) built on :func:`batch_norm`.

    Parameters and buffers have the names and shapes of :class:`torch.nn.BatchNorm2d` (``weight`` = γ,
    ``bias`` = β, ``running_mean``, ``running_var``, ``num_batches_tracked``), so state dicts move between the
    two in both directions.

    Args:
        num_features: the channel count :math:`C`.
        eps: :math:`\epsilon`.
        momentum: weight of the new batch statistics in the running averages; ``None`` for a cumulative
            average.
        affine: learn γ and β (else γ = 1, β = 0 and no parameters).

    Example:
        >>> bn = BatchNorm2d(3)
        >>> ref = torch.nn.BatchNorm2d(3)
        >>> ref.load_state_dict(bn.state_dict())
        <All keys matched successfully>
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True):
        super().__init__()
        self.num_features = check_int(num_features, "num_features", minimum=1)
        self.eps = check_positive(eps, "eps")
        self.momentum = None if momentum is None else check_probability(momentum, "momentum")
        self.affine = bool(affine)
        if self.affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(x, "x", ndim=(2, 4), shape={1: self.num_features}, finite=False)
        return batch_norm(
            x, self.weight, self.bias, self.running_mean, self.running_var, self.training,
            momentum=self.momentum, eps=self.eps, num_batches_tracked=self.num_batches_tracked,
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


def fold_batchnorm(layer: nn.Conv2d | nn.Linear, bn: nn.Module) -> nn.Conv2d | nn.Linear:
    r"""A new layer equal to ``layer`` followed by ``bn`` in eval mode.

    In eval mode BN is the per-channel affine map :math:`y = s\,(z - \hat\mu) + \beta` with
    :math:`s = \gamma / \sqrt{\hat\sigma^2 + \epsilon}`; applied to :math:`z = W * x + b` it gives one
    convolution (or linear layer) with, for each output channel :math:`c`,

    .. math::

        W'_c = s_c\, W_c, \qquad b'_c = s_c\,(b_c - \hat\mu_c) + \beta_c

    (:math:`b = 0` when ``layer`` has no bias). The result always has a bias; ``layer`` and ``bn`` are not
    changed. This is the same computation as ``torch.nn.utils.fusion.fuse_conv_bn_eval``.

    Args:
        layer: a ``Conv2d`` or ``Linear`` (not ``ConvTranspose2d``: its output channels sit in weight
            dimension 1).
        bn: a BatchNorm (``torch.nn.BatchNorm1d``/``2d`` or :class:`BatchNorm2d`) over ``layer``'s outputs,
            with running statistics.

    Example:
        >>> conv, bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4).eval()
        >>> x = torch.rand(1, 3, 8, 8)
        >>> torch.allclose(fold_batchnorm(conv, bn)(x), bn(conv(x)), atol=1e-6)
        True
    """
    if not isinstance(layer, (nn.Conv2d, nn.Linear)):
        raise TypeError(f"layer must be an nn.Conv2d or nn.Linear, got {type(layer).__name__}")
    if not _is_bn(bn):
        raise TypeError(f"bn must be a BatchNorm layer, got {type(bn).__name__}")
    out_channels = layer.weight.shape[0]
    if bn.num_features != out_channels:
        raise ValueError(
            f"bn.num_features must equal the layer's output channels: expected {out_channels}, got {bn.num_features}"
        )
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("bn must track running statistics (track_running_stats=True) to be folded")
    with torch.no_grad():
        w, b = layer.weight, layer.bias
        scale = bn.running_var.add(bn.eps).rsqrt()
        if bn.weight is not None:
            scale = scale * bn.weight
        shift = -bn.running_mean * scale
        if b is not None:
            shift = shift + b * scale
        if bn.bias is not None:
            shift = shift + bn.bias
        folded = copy.deepcopy(layer)
        folded.weight.copy_(w * scale.reshape((-1,) + (1,) * (w.ndim - 1)))
        if folded.bias is None:
            folded.bias = nn.Parameter(torch.empty(out_channels, dtype=w.dtype, device=w.device))
        folded.bias.copy_(shift)
    folded.weight.requires_grad_(layer.weight.requires_grad)
    return folded


def _is_bn(module: nn.Module) -> bool:
    return isinstance(module, (nn.modules.batchnorm._BatchNorm, BatchNorm2d))


def fold_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for inference in which every BatchNorm that directly follows a ``Conv2d`` or
    ``Linear`` inside an ``nn.Sequential`` is folded into it (:func:`fold_batchnorm`) and replaced by
    ``nn.Identity``. The copy is in eval mode; ``model`` is not changed. BatchNorm layers that follow
    anything else stay as they are.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
        >>> folded = fold_model(net)
        >>> [type(m).__name__ for m in folded]
        ['Conv2d', 'Identity', 'ReLU']
    """
    folded = copy.deepcopy(check_module(model)).eval()
    for seq in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for prev, name in zip(names[:-1], names[1:], strict=True):
            layer, bn = seq._modules[prev], seq._modules[name]
            if isinstance(layer, (nn.Conv2d, nn.Linear)) and _is_bn(bn) and bn.running_mean is not None:
                seq._modules[prev] = fold_batchnorm(layer, bn)
                seq._modules[name] = nn.Identity()
    return folded
