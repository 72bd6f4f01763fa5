r"""RISE: Randomized Input Sampling for Explanation (Petsiuk, Das and Saenko, BMVC 2018).

The saliency of pixel :math:`\lambda` for class :math:`c` is the expected score of the class when the image
is seen through random masks :math:`M`, given that the pixel is visible:

.. math::

    S_c(\lambda) = \mathbb{E}_M\big[f_c(x \odot M) \mid M(\lambda) = 1\big]
    \approx \frac{1}{N\, p} \sum_{i=1}^{N} f_c(x \odot M_i)\, M_i(\lambda),

with :math:`f_c` the softmax probability of class :math:`c`, :math:`N` masks and :math:`p` the probability
that a grid cell is kept (so :math:`\mathbb{E}[M(\lambda)] = p`). The method needs no access to the network's
inside: only forward passes of masked images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .._checks import check_int, check_probability, check_size, generator
from ._base import Explanation, _Explainer

__all__ = ["RISE", "rise_masks"]


def rise_masks(
    n: int,
    size: tuple[int, int] | int,
    grid_size: int = 7,
    p: float = 0.5,
    seed: int | torch.Generator = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    r"""``n`` smooth random RISE masks of ``size``, values in ``[0, 1]``.

    Each mask starts as an :math:`s \times s` binary grid (:math:`s` = ``grid_size``) whose cells are 1 with
    probability :math:`p`. With the cell size :math:`C = \lceil H / s \rceil` (and likewise for the width),
    the grid is upsampled bilinearly to :math:`(s+1) C`, and an :math:`H \times W` window is cut out at a
    random offset in :math:`[0, C)`: the masks are smooth and not aligned with a fixed grid.

    The small grids and offsets are drawn on the CPU from ``seed`` (the same masks on every device); the
    upsampling and cropping run batched on ``device``.

    Example:
        >>> m = rise_masks(3, 32, grid_size=4, p=0.5, seed=0)
        >>> m.shape, bool(((m >= 0) & (m <= 1)).all())
        (torch.Size([3, 32, 32]), True)
    """
    n = check_int(n, "n", minimum=1)
    grid_size = check_int(grid_size, "grid_size", minimum=1)
    p = check_probability(p, "p")
    hw = check_size(size)
    grids, offsets = _draw_grids(n, hw, grid_size, p, generator(seed))
    device = torch.device(device) if device is not None else torch.device("cpu")
    return _expand_grids(grids.to(device), offsets.to(device), hw, dtype)


def _draw_grids(
    n: int, size: tuple[int, int], grid_size: int, p: float, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary grids ``(n, s, s)`` and offsets ``(n, 2)`` (rows, columns), drawn on the CPU."""
    h, w = size
    grids = torch.rand(n, grid_size, grid_size, generator=g) < p
    offsets = torch.stack(
        [torch.randint(math.ceil(h / grid_size), (n,), generator=g), torch.randint(math.ceil(w / grid_size), (n,), generator=g)],
        dim=1,
    )
    return grids, offsets


def _expand_grids(grids: torch.Tensor, offsets: torch.Tensor, size: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """Upsample ``(n, s, s)`` grids to ``(s+1)·ceil(H/s)`` and crop ``size`` at ``offsets``: ``(n, H, W)`` masks."""
    n, s, _ = grids.shape
    h, w = size
    ch, cw = math.ceil(h / s), math.ceil(w / s)
    up = F.interpolate(grids[:, None].to(dtype), size=((s + 1) * ch, (s + 1) * cw), mode="bilinear", align_corners=False)
    device = grids.device
    rows = offsets[:, 0, None] + torch.arange(h, device=device)  # (n, H)
    cols = offsets[:, 1, None] + torch.arange(w, device=device)  # (n, W)
    idx = torch.arange(n, device=device)[:, None, None]
    return up[:, 0][idx, rows[:, :, None], cols[:, None, :]].clamp_(0, 1)  # bilinear weights round above 1


class RISE(_Explainer):
    r"""RISE saliency maps (Petsiuk et al., BMVC 2018); see the module docstring for the estimator.

    The same ``n_masks`` masks (from :func:`rise_masks`, drawn from ``seed``) explain every image; masked
    images :math:`x \odot M_i` are classified ``batch_size`` at a time, and the softmax probabilities of the
    target class weigh the masks. The masks are exactly ``rise_masks(n_masks, (H, W), grid_size, p, seed)``
    (whatever ``batch_size``). The maps are at the input resolution already (``upsample`` has no effect).

    Args:
        model: the classifier (returns logits; the softmax is applied here).
        n_masks: number of random masks :math:`N`.
        grid_size: cells per side :math:`s` of the random grids.
        p: probability that a cell is kept.
        batch_size: masked images per forward pass.
        seed: an int (the same masks at every call) or a ``torch.Generator``.
        progress: show a progress bar over the mask batches.

    Example:
        >>> from course_lib.models import SmallCNN
        >>> model = SmallCNN(num_classes=5, width=8).eval()
        >>> RISE(model, n_masks=64, grid_size=4, batch_size=32)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 32, 32])
    """

    def __init__(
        self,
        model: nn.Module,
        n_masks: int = 2000,
        grid_size: int = 7,
        p: float = 0.5,
        batch_size: int = 100,
        seed: int | torch.Generator = 0,
        progress: bool = False,
    ) -> None:
        super().__init__(model, seed=seed, progress=progress)
        self.n_masks = check_int(n_masks, "n_masks", minimum=1)
        self.grid_size = check_int(grid_size, "grid_size", minimum=1)
        self.p = check_probability(p, "p", open_interval=True)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)

    def _explain(self, images, targets):
        n, _, h, w = images.shape
        with torch.no_grad():
            scores = self._predict(images).detach()
            t = self._resolve_targets(targets, scores)
            grids, offsets = _draw_grids(self.n_masks, (h, w), self.grid_size, self.p, generator(self.seed))
            grids, offsets = grids.to(images.device), offsets.to(images.device)
            sal = torch.zeros(n, h * w, device=images.device, dtype=images.dtype)
            starts = range(0, self.n_masks, self.batch_size)
            for start in tqdm(starts, desc="RISE", disable=not self.progress, leave=False):
                sl = slice(start, start + self.batch_size)
                masks = _expand_grids(grids[sl], offsets[sl], (h, w), images.dtype)  # (b, H, W)
                flat = masks.view(masks.shape[0], -1)
                for i in range(n):
                    probs = torch.softmax(self._predict(images[i] * masks[:, None]), dim=1)[:, t[i]]  # (b,)
                    sal[i] += probs @ flat
        return Explanation(maps=sal.view(n, h, w) / (self.n_masks * self.p), targets=t, scores=scores)
