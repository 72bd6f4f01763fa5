r"""The anisotropic total variation: one implementation for the whole library.

.. math::

    \mathrm{TV}_{\ell_1}(x) = \sum_{i,j} |x_{i,j+1} - x_{ij}| + |x_{i+1,j} - x_{ij}|

over the last two axes of a tensor (differences that would leave the map are dropped), summed over ``dims``.
Augmented Grad-CAM's solver regularizes its maps with it (:func:`course_lib.saliency.superres.tv_l1`, one
value per map) and activation maximization its images
(:func:`course_lib.visualization.total_variation`, one value per image, summed over channels). The
functions here do not check their arguments: the public functions that use them do.
"""

from __future__ import annotations

import torch

__all__ = ["anisotropic_tv", "anisotropic_tv_subgradient"]


def anisotropic_tv(x: torch.Tensor, dims: tuple[int, ...] = (-2, -1)) -> torch.Tensor:
    """The absolute forward differences of ``x`` along its last two axes, summed over ``dims``.

    Example:
        >>> anisotropic_tv(torch.tensor([[0.0, 1.0], [3.0, 3.0]]))
        tensor(6.)
        >>> anisotropic_tv(torch.ones(2, 3, 4, 4), dims=(1, 2, 3))
        tensor([0., 0.])
    """
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    return dx.abs().sum(dims) + dy.abs().sum(dims)


def anisotropic_tv_subgradient(x: torch.Tensor) -> torch.Tensor:
    r"""A subgradient of :func:`anisotropic_tv` (any ``dims``) at ``x``, taking :math:`\operatorname{sign}(0) = 0`.

    Example:
        >>> anisotropic_tv_subgradient(torch.tensor([[0.0, 1.0], [3.0, 3.0]]))
        tensor([[-2.,  0.],
                [ 1.,  1.]])
    """
    sx = torch.sign(x[..., :, 1:] - x[..., :, :-1])
    sy = torch.sign(x[..., 1:, :] - x[..., :-1, :])
    g = torch.zeros_like(x)
    g[..., :, 1:] += sx
    g[..., :, :-1] -= sx
    g[..., 1:, :] += sy
    g[..., :-1, :] -= sy
    return g
