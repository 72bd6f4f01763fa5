"""First-layer filters as pictures: find the first convolution, normalize each kernel, tile them in a grid."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_int, check_module, check_tensor

__all__ = ["first_conv", "normalize_filters", "filter_grid"]


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The first :class:`torch.nn.Conv2d` of ``model`` in registration order (the layer that sees pixels).

    Example:
        >>> first_conv(nn.Sequential(nn.ReLU(), nn.Conv2d(3, 8, 5))).kernel_size
        (5, 5)
    """
    for m in check_module(model).modules():
        if isinstance(m, nn.Conv2d):
            return m
    raise ValueError(f"model ({type(model).__name__}) has no nn.Conv2d layer")


def normalize_filters(weight: torch.Tensor) -> torch.Tensor:
    r"""Min-max normalize each filter of a ``(O, C, k_h, k_w)`` weight to :math:`[0, 1]` on its own.

    .. math:: \tilde w_o = \frac{w_o - \min w_o}{\max w_o - \min w_o}

    The minimum and maximum run over all channels of filter :math:`o` together, so its colours keep their
    balance. A constant filter becomes mid-grey (0.5).

    Example:
        >>> normalize_filters(torch.tensor([[[[-2.0, 2.0]]]]))
        tensor([[[[0., 1.]]]])
    """
    w = check_tensor(weight, "weight", ndim=4).detach()
    flat = w.flatten(1)
    lo, hi = flat.amin(1), flat.amax(1)
    rng = (hi - lo)[:, None, None, None]
    out = (w - lo[:, None, None, None]) / torch.where(rng > 0, rng, torch.ones_like(rng))
    return torch.where(rng > 0, out, torch.full_like(w, 0.5))


def filter_grid(layer: nn.Module | torch.Tensor, nrow: int = 8, scale: int = 6, padding: int = 1) -> np.ndarray:
    """The kernels of a convolution with 3 input channels tiled into one RGB image.

    Each filter is normalized on its own (:func:`normalize_filters`), enlarged ``scale`` times with
    nearest-neighbour interpolation (so each weight stays a visible square) and tiled ``nrow`` per row with
    white gaps.

    Args:
        layer: an ``nn.Conv2d`` with ``in_channels == 3``, a model (its :func:`first_conv` is used), or a weight
            tensor ``(O, 3, k_h, k_w)``.
        nrow: filters per row.
        scale: the enlargement factor.
        padding: gap between filters in pixels (after enlargement).

    Returns:
        An ``(H, W, 3)`` float array in ``[0, 1]`` for ``plt.imshow``.

    Example:
        >>> filter_grid(nn.Conv2d(3, 16, 3), nrow=8, scale=4, padding=1).shape
        (27, 105, 3)
    """
    from ..plotting import image_grid

    if isinstance(layer, nn.Module):
        conv = layer if isinstance(layer, nn.Conv2d) else first_conv(layer)
        weight = conv.weight
    else:
        weight = layer
    w = check_tensor(weight, "weight", ndim=4)
    if w.shape[1] != 3:
        raise ValueError(f"filters must have 3 input channels to be shown as RGB images, got weight of shape {tuple(w.shape)}")
    nrow = check_int(nrow, "nrow", minimum=1)
    scale = check_int(scale, "scale", minimum=1)
    padding = check_int(padding, "padding", minimum=0)
    w = normalize_filters(w).float().cpu()
    w = F.interpolate(w, scale_factor=scale, mode="nearest")
    return image_grid(w, nrow=nrow, padding=padding)
