r"""Post-processing shared by every saliency map: bilinear resizing and per-map min-max normalization.

Every explainer of :mod:`course_lib.saliency` returns its maps through these two functions (``upsample=True,
normalize=True`` by default); they are public so that maps computed elsewhere (stored by a study, or drawn at
random as a baseline) are post-processed exactly as the explainers' are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["normalize_maps", "upsample_maps"]


def upsample_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    r"""Resize ``(N, h, w)`` maps to ``size`` :math:`(H, W)` by bilinear interpolation (``align_corners=False``).

    Maps that already have the size come back unchanged (the same tensor).

    Args:
        maps: ``(N, h, w)`` float tensor.
        size: the target ``(H, W)``.

    Returns:
        ``(N, H, W)`` maps.

    Example:
        >>> upsample_maps(torch.tensor([[[0.0, 1.0]]]), (1, 4))
        tensor([[[0.0000, 0.2500, 0.7500, 1.0000]]])
    """
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    r"""Per-map min-max normalization to :math:`[0, 1]`: :math:`(L - \min L) / (\max L - \min L)`.

    A map whose range is zero (or below float round-off relative to its magnitude) becomes all zeros, never NaN.

    Args:
        maps: ``(N, h, w)`` float tensor.

    Returns:
        ``(N, h, w)`` maps, each with minimum 0 and maximum 1 (or all zero).

    Example:
        >>> normalize_maps(torch.tensor([[[1.0, 3.0]], [[2.0, 2.0]]]))
        tensor([[[0., 1.]],
        <BLANKLINE>
                [[0., 0.]]])
    """
    flat = maps.flatten(1)
    lo = flat.amin(1)[:, None, None]
    hi = flat.amax(1)[:, None, None]
    rng = hi - lo
    scale = torch.maximum(hi.abs(), lo.abs())
    ok = rng > torch.finfo(maps.dtype).eps * scale
    return torch.where(ok, (maps - lo) / torch.where(ok, rng, torch.ones_like(rng)), torch.zeros_like(maps))
