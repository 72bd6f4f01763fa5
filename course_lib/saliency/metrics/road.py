r"""ROAD: remove and debias (Rong, Leemann, Borisov, Kasneci and Kasneci, *A Consistent and Efficient Evaluation
Strategy for Attribution Methods*, ICML 2022).

Deletion replaces the removed pixels by a constant (black), which draws new edges around them: the network may
react to the *shape of the mask* — where the map put its high values — rather than to the information removed.
ROAD fills the removed pixels with **noisy linear imputation** instead: each removed pixel becomes the weighted
mean of its eight neighbours (weight 1/6 for the four direct ones, 1/12 for the diagonal ones, renormalized at
the border), solved jointly for all removed pixels as one sparse linear system, plus a little Gaussian noise.
The filled-in region is smooth and blends into its surroundings, so it carries little of the mask's shape.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse
from scipy.sparse.linalg import spsolve

from ..._checks import check_choice, check_images, check_nonnegative, generator
from ..._types import Maps, Targets
from ._common import check_maps, inference, probabilities, resolve_targets

__all__ = ["linear_imputation", "road"]

#: (row offset, column offset, weight) of the eight neighbours in the imputation
NEIGHBOURS = [(-1, -1, 1 / 12), (-1, 0, 1 / 6), (-1, 1, 1 / 12), (0, -1, 1 / 6), (0, 1, 1 / 6),
              (1, -1, 1 / 12), (1, 0, 1 / 6), (1, 1, 1 / 12)]


def linear_imputation(image: torch.Tensor, removed: torch.Tensor, noise: float = 0.0,
                      seed: int | torch.Generator | None = None) -> torch.Tensor:
    r"""Fill the ``removed`` pixels of one ``(C, H, W)`` image by noisy linear imputation.

    Every removed pixel :math:`p` must equal the weighted mean of its neighbours :math:`q` inside the image,

    .. math::

        \Big(\sum_{q \sim p} w_{pq}\Big)\, x_p - \sum_{q \sim p,\ q \text{ removed}} w_{pq}\, x_q
        = \sum_{q \sim p,\ q \text{ kept}} w_{pq}\, x_q,

    one equation per removed pixel and channel (a sparse system, solved exactly), then
    :math:`x_p \leftarrow x_p + \text{noise} \cdot \varepsilon_p` with :math:`\varepsilon_p \sim \mathcal N(0, 1)`.
    Kept pixels are unchanged.

    Args:
        image: ``(C, H, W)`` float tensor.
        removed: ``(H, W)`` boolean mask of the pixels to fill.
        noise: standard deviation of the added noise (ROAD: 0.01 on images in ``[0, 1]``).
        seed: an int or a ``torch.Generator`` (which advances) drawing the noise; ``None``: torch's global
            generator.

    Example:
        >>> image = torch.zeros(1, 3, 3); image[0, :, 2] = 1.0
        >>> removed = torch.zeros(3, 3, dtype=torch.bool); removed[1, 1] = True
        >>> float(linear_imputation(image, removed)[0, 1, 1])  # (1/12 + 1/6 + 1/12) of its 1-valued neighbours
        0.3333333432674408
    """
    image = check_images(image[None], "image", channels=None)[0]
    if not isinstance(removed, torch.Tensor) or removed.dtype != torch.bool or removed.shape != image.shape[1:]:
        raise ValueError(f"removed must be a boolean (H, W) = {tuple(image.shape[1:])} mask, got "
                         f"{removed.dtype if isinstance(removed, torch.Tensor) else type(removed).__name__} "
                         f"{tuple(removed.shape) if isinstance(removed, torch.Tensor) else ''}")
    noise = check_nonnegative(noise, "noise")
    c, h, w = image.shape
    mask = removed.cpu().numpy()
    n = int(mask.sum())
    if n == 0:
        return image.clone()
    values = image.detach().cpu().double().numpy().reshape(c, -1)
    rows, cols = np.nonzero(mask)
    unknown = -np.ones(h * w, dtype=np.int64)
    unknown[rows * w + cols] = np.arange(n)
    diagonal = np.zeros(n)
    rhs = np.zeros((n, c))
    a_rows, a_cols, a_vals = [], [], []
    for dr, dc, weight in NEIGHBOURS:
        r, q = rows + dr, cols + dc
        inside = (r >= 0) & (r < h) & (q >= 0) & (q < w)
        diagonal[inside] += weight
        flat = r[inside] * w + q[inside]
        eq = np.nonzero(inside)[0]
        is_unknown = unknown[flat] >= 0
        a_rows.append(eq[is_unknown])
        a_cols.append(unknown[flat[is_unknown]])
        a_vals.append(np.full(int(is_unknown.sum()), -weight))
        rhs[eq[~is_unknown]] += weight * values[:, flat[~is_unknown]].T
    system = sparse.coo_matrix(
        (np.concatenate([diagonal, *a_vals]), (np.concatenate([np.arange(n), *a_rows]),
                                                np.concatenate([np.arange(n), *a_cols]))), shape=(n, n)).tocsc()
    solution = np.asarray(spsolve(system, rhs)).reshape(n, c)
    out = image.detach().clone().reshape(c, -1)
    filled = torch.as_tensor(solution.T, dtype=image.dtype, device=image.device)
    if noise > 0:
        eps = torch.randn(filled.shape, generator=None if seed is None else generator(seed), dtype=image.dtype)
        filled = filled + noise * eps.to(image.device)
    out[:, torch.as_tensor(rows * w + cols, device=image.device)] = filled
    return out.reshape(c, h, w)


def road(model, images: torch.Tensor, maps: Maps, targets: Targets = None, *,
         fractions=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), order: str = "most", noise: float = 0.01,
         seed: int | torch.Generator = 0, clip: tuple[float, float] | None = (0.0, 1.0),
         batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    r"""ROAD curves: the class probability after the most (or least) salient fraction :math:`f` of the pixels is
    removed and filled by :func:`linear_imputation`.

    The pixels removed at fraction :math:`f` are those with :math:`L_{uv} \ge q_{1-f}(L)`, the
    :math:`(1-f)`-quantile of the map (NumPy's linear interpolation), for ``order="most"`` (MoRF: a faithful map
    makes the probability fall fast; lower area is better); those with :math:`L_{uv} \le q_f(L)` for
    ``order="least"`` (LeRF: the probability should stay high). One imputation and one forward pass per image
    and fraction.

    Args:
        model: the classifier (logits).
        images: ``(N, C, H, W)``.
        maps: ``(N, H, W)`` saliency maps.
        targets: ``None`` (arg-max class), an int or an ``(N,)`` tensor.
        fractions: the fractions of pixels removed, each in ``(0, 1)``.
        order: ``"most"`` (MoRF) or ``"least"`` (LeRF) relevant first.
        noise: the imputation noise.
        seed: an int or a ``torch.Generator``; it draws the noise of every imputation of the call.
        clip: ``(low, high)``: the filled images are clipped to this range, the model's input range (the
            noise can push a filled pixel just outside it; the course's networks take images in
            :math:`[0, 1]` and reject others); ``None``: no clipping. Kept pixels inside the range are
            unchanged, and so is a noiseless fill of them (a weighted mean of values in the range).
        batch_size: images per forward pass.

    Returns:
        ``fractions`` ``(F,)`` and the probabilities ``(N, F)``.

    Example:
        >>> from course_lib.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4).eval()
        >>> f, p = road(model, torch.rand(2, 3, 16, 16), torch.rand(2, 16, 16), fractions=(0.25, 0.5))
        >>> f.tolist(), p.shape
        ([0.25, 0.5], torch.Size([2, 2]))
    """
    images = check_images(images, channels=None)
    maps = check_maps(maps, images)
    check_choice(order, "order", ("most", "least"))
    fractions = [float(f) for f in fractions]
    if not fractions or any(not 0 < f < 1 for f in fractions):
        raise ValueError(f"fractions must be a non-empty sequence of numbers in (0, 1), got {fractions}")
    if clip is not None:
        if (not isinstance(clip, (tuple, list)) or len(clip) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in clip)
                or not clip[0] < clip[1]):
            raise ValueError(f"clip must be None or a pair (low, high) of numbers with low < high, got {clip!r}")
    g = generator(seed)
    with inference(model, images):
        t = resolve_targets(model, images, targets, batch_size)
        filled = []
        for image, saliency in zip(images, maps, strict=True):
            flat = saliency.detach().double().cpu().numpy()
            for f in fractions:
                if order == "most":
                    removed = flat >= np.percentile(flat, 100 - 100 * f)
                else:
                    removed = flat <= np.percentile(flat, 100 * f)
                out = linear_imputation(image, torch.from_numpy(removed), noise, g)
                filled.append(out if clip is None else out.clamp(float(clip[0]), float(clip[1])))
        probs = probabilities(model, torch.stack(filled), t.repeat_interleave(len(fractions)), batch_size)
    return torch.tensor(fractions, dtype=torch.float64), probs.reshape(len(images), len(fractions))
