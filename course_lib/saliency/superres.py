r"""The super-resolution solver of Augmented Grad-CAM.

The low-resolution maps :math:`g_l` of :math:`L` warped copies of an image are measurements of one unknown
high-resolution map :math:`h`: :math:`g_l \approx D A_l h`, with :math:`A_l` the warps and :math:`D` the area
downsampling of :mod:`course_lib.saliency.warps`. The solver finds

.. math::

    \hat h = \operatorname*{arg\,min}_h \sum_{l=1}^{L} \big\| D A_l h - g_l \big\|_2^2
        + \lambda \, \mathrm{TV}_{\ell_1}(h) + \mu \, \| h \|_2^2,
    \qquad
    \mathrm{TV}_{\ell_1}(h) = \sum_{i,j} \big| \partial_x h_{ij} \big| + \big| \partial_y h_{ij} \big|,

with forward differences :math:`\partial_x h_{ij} = h_{i,j+1} - h_{ij}` and
:math:`\partial_y h_{ij} = h_{i+1,j} - h_{ij}` (zero on the last column / row). The objective is convex but
not differentiable where a difference is zero, so it is minimized by subgradient descent.

* :func:`operator_matrix` — the stacked operators :math:`[D A_1; \dots; D A_L]` as one sparse matrix;
* :func:`tv_l1` and :func:`tv_l1_subgradient` — the anisotropic total variation and a subgradient of it;
* :func:`sr_objective`, :func:`operator_norm_squared` and :func:`super_resolve` — the objective, the
  Lipschitz constant and the solver (all :math:`L` terms and all images batched).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .._checks import check_choice, check_int, check_nonnegative, check_positive, check_tensor
from .._total_variation import anisotropic_tv, anisotropic_tv_subgradient
from .warps import DOWNSAMPLING, downsample, warp

__all__ = ["operator_matrix", "tv_l1", "tv_l1_subgradient", "sr_objective", "operator_norm_squared",
           "SuperResolution", "super_resolve", "data_residuals"]

def _pooling_weights(n_in: int, n_out: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """For each input index, the (up to two) output cells of adaptive average pooling that contain it and the
    cells' averaging weights: ``cells`` and ``weights`` ``(n_in, 2)`` (weight 0 where there is no second cell)."""
    cells = torch.zeros(n_in, 2, dtype=torch.long)
    weights = torch.zeros(n_in, 2, dtype=torch.float64)
    filled = torch.zeros(n_in, dtype=torch.long)
    for a in range(n_out):
        start, end = (a * n_in) // n_out, -((-(a + 1) * n_in) // n_out)  # floor, ceil: adaptive_avg_pool2d
        for i in range(start, end):
            cells[i, filled[i]] = a
            weights[i, filled[i]] = 1.0 / (end - start)
            filled[i] += 1
    return cells.to(device), weights.to(device)


def _linear_weights(n_in: int, n_out: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """For each output index of a bilinear resize from ``n_in`` to ``n_out`` (``align_corners=False``, no
    anti-aliasing, as ``F.interpolate`` computes it), its two input indices and their weights ``(n_out, 2)``."""
    out = torch.arange(n_out, dtype=torch.float64)
    src = ((out + 0.5) * (n_in / n_out) - 0.5).clamp_min(0.0)
    i0 = torch.floor(src).long().clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    frac = src - i0
    return torch.stack([i0, i1], 1).to(device), torch.stack([1 - frac, frac], 1).to(device)


def operator_matrix(theta: torch.Tensor, size: tuple[int, int], low_size: tuple[int, int],
                    downsampling: str = "area") -> torch.Tensor:
    r"""The stacked operators :math:`M = [D A_1; \dots; D A_L]` as one sparse matrix.

    :func:`warp` followed by :func:`downsample` is linear in the map, so it is a matrix with
    :math:`L h w` rows and :math:`H W` columns, applied to maps flattened in row-major order. Each output pixel
    of a bilinear warp mixes at most four input pixels, and each pixel enters one block average (at most two
    per axis for sizes that do not divide), so :math:`M` has at most :math:`16 L H W` non-zeros: applying it
    and its transpose costs far less than running ``grid_sample`` forward and backward, which is what makes
    hundreds of solver iterations cheap. The weights are those of ``grid_sample`` (bilinear,
    ``align_corners=False``, zeros outside) on the grid of ``affine_grid``. With ``downsampling="bilinear"``
    :math:`D` is the bilinear resize of :func:`downsample` instead: each row reads four warped pixels, so
    :math:`M` has at most :math:`16 L h w` non-zeros.

    Returns:
        A sparse CSR tensor ``(L * h * w, H * W)`` on the device of ``theta``, with
        ``(M @ h.flatten()).view(L, h, w) == downsample(warp(h[None, None], theta)[0, :, 0], low_size,
        downsampling)`` up to float round-off.

    Example:
        >>> from course_lib.saliency.warps import affine_matrices
        >>> theta = affine_matrices(torch.zeros(1), torch.zeros(1, 2), (4, 4))
        >>> operator_matrix(theta, (4, 4), (2, 2)).to_dense()[0].view(4, 4)  # row 0: the top-left block mean
        tensor([[0.2500, 0.2500, 0.0000, 0.0000],
                [0.2500, 0.2500, 0.0000, 0.0000],
                [0.0000, 0.0000, 0.0000, 0.0000],
                [0.0000, 0.0000, 0.0000, 0.0000]])
    """
    theta = check_tensor(theta, "theta", ndim=3, shape={1: 2, 2: 3})
    h_in, w_in = (check_int(v, "size", minimum=1) for v in size)
    h_lo, w_lo = (check_int(v, "low_size", minimum=1) for v in low_size)
    if h_lo > h_in or w_lo > w_in:
        raise ValueError(f"low_size {tuple(low_size)} must not be larger than size {tuple(size)}")
    check_choice(downsampling, "downsampling", DOWNSAMPLING)
    device, n_aug = theta.device, theta.shape[0]
    grid = F.affine_grid(theta.to(torch.float64), [n_aug, 1, h_in, w_in], align_corners=False)  # (L, H, W, 2)
    if downsampling == "bilinear":
        return _bilinear_operator(grid, (h_in, w_in), (h_lo, w_lo)).to(theta.dtype)
    ix = ((grid[..., 0] + 1) * w_in - 1) / 2  # source coordinates in pixels, as grid_sample computes them
    iy = ((grid[..., 1] + 1) * h_in - 1) / 2
    x0, y0 = torch.floor(ix), torch.floor(iy)
    fx, fy = ix - x0, iy - y0
    x0, y0 = x0.long(), y0.long()
    cy, wy = _pooling_weights(h_in, h_lo, device)  # (H, 2)
    cx, wx = _pooling_weights(w_in, w_lo, device)  # (W, 2)
    out_i = torch.arange(h_in, device=device)[None, :, None].expand(n_aug, h_in, w_in)
    out_j = torch.arange(w_in, device=device)[None, None, :].expand(n_aug, h_in, w_in)
    aug = torch.arange(n_aug, device=device)[:, None, None].expand(n_aug, h_in, w_in)
    rows, cols, vals = [], [], []
    for dy, wgt_y in ((0, 1 - fy), (1, fy)):
        for dx, wgt_x in ((0, 1 - fx), (1, fx)):
            sy, sx = y0 + dy, x0 + dx
            inside = (sy >= 0) & (sy < h_in) & (sx >= 0) & (sx < w_in)
            w_bilinear = torch.where(inside, wgt_y * wgt_x, torch.zeros_like(fx))
            source = (sy.clamp(0, h_in - 1) * w_in + sx.clamp(0, w_in - 1))
            for ka in range(2 if bool(wy[:, 1].any()) else 1):
                for kb in range(2 if bool(wx[:, 1].any()) else 1):
                    a, b = cy[out_i, ka], cx[out_j, kb]
                    weight = w_bilinear * wy[out_i, ka] * wx[out_j, kb]
                    rows.append(((aug * h_lo + a) * w_lo + b).flatten())
                    cols.append(source.flatten())
                    vals.append(weight.flatten())
    return _to_csr(_assemble(rows, cols, vals, (n_aug * h_lo * w_lo, h_in * w_in)).to(theta.dtype))


def _warp_taps(grid: torch.Tensor, size: tuple[int, int]):
    """The four source pixels of ``grid_sample`` (bilinear, zeros outside) for each point of ``grid``
    ``(..., 2)``: a list of ``(source index, weight)`` pairs, weight 0 for a source outside the frame."""
    h_in, w_in = size
    ix = ((grid[..., 0] + 1) * w_in - 1) / 2
    iy = ((grid[..., 1] + 1) * h_in - 1) / 2
    x0, y0 = torch.floor(ix), torch.floor(iy)
    fx, fy = ix - x0, iy - y0
    x0, y0 = x0.long(), y0.long()
    taps = []
    for dy, wgt_y in ((0, 1 - fy), (1, fy)):
        for dx, wgt_x in ((0, 1 - fx), (1, fx)):
            sy, sx = y0 + dy, x0 + dx
            inside = (sy >= 0) & (sy < h_in) & (sx >= 0) & (sx < w_in)
            taps.append((sy.clamp(0, h_in - 1) * w_in + sx.clamp(0, w_in - 1),
                         torch.where(inside, wgt_y * wgt_x, torch.zeros_like(fx))))
    return taps


def _bilinear_operator(grid: torch.Tensor, size: tuple[int, int], low_size: tuple[int, int]) -> torch.Tensor:
    """``M`` for the bilinear resize ``D``: row ``(l, a, b)`` interpolates four warped pixels, each of which
    interpolates four source pixels (``grid`` ``(L, H, W, 2)`` from ``affine_grid``)."""
    (h_in, w_in), (h_lo, w_lo) = size, low_size
    n_aug, device = grid.shape[0], grid.device
    ry, wy = _linear_weights(h_in, h_lo, device)  # (h, 2)
    rx, wx = _linear_weights(w_in, w_lo, device)  # (w, 2)
    aug = torch.arange(n_aug, device=device)[:, None, None]
    a = torch.arange(h_lo, device=device)[None, :, None]
    b = torch.arange(w_lo, device=device)[None, None, :]
    row = ((aug * h_lo + a) * w_lo + b).expand(n_aug, h_lo, w_lo)
    rows, cols, vals = [], [], []
    for ky in range(2):
        for kx in range(2):
            py, px = ry[:, ky][None, :, None], rx[:, kx][None, None, :]  # the warped pixel read
            w_down = wy[:, ky][None, :, None] * wx[:, kx][None, None, :]
            points = grid[aug, py, px]  # (L, h, w, 2)
            for source, w_warp in _warp_taps(points, size):
                rows.append(row.flatten())
                cols.append(source.flatten())
                vals.append((w_down * w_warp).flatten())
    return _to_csr(_assemble(rows, cols, vals, (n_aug * h_lo * w_lo, h_in * w_in)))


def _assemble(rows: list, cols: list, vals: list, shape: tuple[int, int]) -> torch.Tensor:
    """The sparse ``shape`` matrix with ``vals`` at ``(rows, cols)`` (lists of 1-D pieces), zero entries dropped
    and repeated positions summed."""
    rows, cols, vals = torch.cat(rows), torch.cat(cols), torch.cat(vals)
    keep = vals != 0
    return torch.sparse_coo_tensor(torch.stack([rows[keep], cols[keep]]), vals[keep], shape,
                                   check_invariants=False).coalesce()


def _to_csr(matrix: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the products used here are stable
        warnings.simplefilter("ignore", UserWarning)
        return matrix.to_sparse_csr()


def _transpose_csr(matrix: torch.Tensor) -> torch.Tensor:
    return _to_csr(matrix.to_sparse_coo().t().coalesce())


def tv_l1(h: torch.Tensor) -> torch.Tensor:
    r"""Anisotropic total variation of ``(..., H, W)`` maps, one value per map.

    .. math::

        \mathrm{TV}_{\ell_1}(h) = \sum_{i,j} |h_{i,j+1} - h_{ij}| + |h_{i+1,j} - h_{ij}|

    (differences that would leave the map are zero).

    Example:
        >>> tv_l1(torch.tensor([[0.0, 1.0], [3.0, 3.0]]))
        tensor(6.)
    """
    return anisotropic_tv(check_tensor(h, "h", ndim=(2, 3, 4), min_batch=0))


def tv_l1_subgradient(h: torch.Tensor) -> torch.Tensor:
    r"""A subgradient of :func:`tv_l1` at ``h`` (same shape as ``h``).

    With :math:`s^x_{ij} = \operatorname{sign}(h_{i,j+1} - h_{ij})` and
    :math:`s^y_{ij} = \operatorname{sign}(h_{i+1,j} - h_{ij})` (taking :math:`\operatorname{sign}(0) = 0`,
    a valid choice in :math:`[-1, 1]`),

    .. math::

        \frac{\partial\, \mathrm{TV}}{\partial h_{ij}} \ni s^x_{i,j-1} - s^x_{ij} + s^y_{i-1,j} - s^y_{ij},

    where terms with an index outside the map are dropped. This is :math:`\partial_x^\top s^x + \partial_y^\top
    s^y`.

    Example:
        >>> tv_l1_subgradient(torch.tensor([[0.0, 1.0], [3.0, 3.0]]))
        tensor([[-2.,  0.],
                [ 1.,  1.]])
    """
    return anisotropic_tv_subgradient(check_tensor(h, "h", ndim=(2, 3, 4), min_batch=0))



# ---------------------------------------------------------------------------------------------- solver
def _data_term(h: torch.Tensor, g: torch.Tensor, theta: torch.Tensor, downsampling: str = "area") -> torch.Tensor:
    """Sum over l of ||D A_l h - g_l||^2 for h (N, H, W), g (N, L, h, w): one value per image."""
    pred = downsample(warp(h[:, None], theta)[:, :, 0], tuple(g.shape[-2:]), downsampling)
    return (pred - g).pow(2).sum((-3, -2, -1))


def data_residuals(h: torch.Tensor, low_res: torch.Tensor, theta: torch.Tensor,
                   downsampling: str = "area") -> torch.Tensor:
    r"""The residual of every measurement, :math:`\| D A_l h - g_l \|_2`, ``(N, L)``.

    Computed with :func:`warp` and :func:`downsample` (not with :func:`operator_matrix`). If the :math:`g_l`
    were exact measurements of one map, some :math:`h` would make every residual small; residuals that stay
    large for some copies after the solve say the copies disagree.

    Example:
        >>> from course_lib.saliency.warps import affine_matrices
        >>> theta = affine_matrices(torch.zeros(2), torch.zeros(2, 2), (4, 4))
        >>> g = torch.stack([torch.ones(2, 2), torch.zeros(2, 2)])[None]  # two copies that disagree
        >>> data_residuals(torch.ones(1, 4, 4), g, theta)
        tensor([[0., 2.]])
    """
    h, low_res, theta = _check_problem(h, low_res, theta)
    check_choice(downsampling, "downsampling", DOWNSAMPLING)
    pred = downsample(warp(h[:, None], theta)[:, :, 0], tuple(low_res.shape[-2:]), downsampling)
    return (pred - low_res).flatten(2).norm(dim=2)


def sr_objective(
    h: torch.Tensor, low_res: torch.Tensor, theta: torch.Tensor, lambda_tv: float = 0.0, mu: float = 0.0,
    downsampling: str = "area",
) -> torch.Tensor:
    r"""The super-resolution objective, one value per image.

    .. math::

        f(h) = \sum_{l=1}^{L} \| D A_l h - g_l \|_2^2 + \lambda\, \mathrm{TV}_{\ell_1}(h) + \mu \|h\|_2^2

    Args:
        h: ``(N, H, W)`` high-resolution maps.
        low_res: ``(N, L, h, w)`` the maps :math:`g_l`.
        theta: ``(L, 2, 3)`` warps (:func:`affine_matrices` for size ``(H, W)``).
        lambda_tv: :math:`\lambda \ge 0`.
        mu: :math:`\mu \ge 0`.
        downsampling: the operator :math:`D`, ``"area"`` or ``"bilinear"`` (:func:`downsample`).

    Example:
        >>> from course_lib.saliency.warps import affine_matrices
        >>> g = torch.ones(1, 1, 2, 2); theta = affine_matrices(torch.zeros(1), torch.zeros(1, 2), (4, 4))
        >>> sr_objective(torch.ones(1, 4, 4), g, theta, lambda_tv=1.0, mu=0.5)
        tensor([8.])
    """
    h, low_res, theta = _check_problem(h, low_res, theta)
    lambda_tv = check_nonnegative(lambda_tv, "lambda_tv")
    mu = check_nonnegative(mu, "mu")
    check_choice(downsampling, "downsampling", DOWNSAMPLING)
    return _data_term(h, low_res, theta, downsampling) + lambda_tv * tv_l1(h) + mu * h.pow(2).sum((-2, -1))


def _check_problem(h, low_res, theta):
    h = check_tensor(h, "h", ndim=3)
    low_res = check_tensor(low_res, "low_res", ndim=4, shape={0: h.shape[0]})
    theta = check_tensor(theta, "theta", ndim=3, shape={0: low_res.shape[1], 1: 2, 2: 3})
    if low_res.shape[-2] > h.shape[-2] or low_res.shape[-1] > h.shape[-1]:
        raise ValueError(
            f"low_res maps {tuple(low_res.shape[-2:])} must not be larger than the high-resolution map "
            f"{tuple(h.shape[-2:])}"
        )
    return h, low_res.to(h.device, h.dtype), theta.to(h.device, h.dtype)


def operator_norm_squared(theta: torch.Tensor, size: tuple[int, int], low_size: tuple[int, int],
                          iterations: int = 30) -> float:
    r"""Estimate :math:`\| \sum_l A_l^\top D^\top D A_l \|_2 = \|M\|_2^2` by power iteration.

    Twice this plus :math:`2\mu` is the Lipschitz constant :math:`L_f` of the gradient of the smooth part of
    the objective, which sets the solver's step. For the identity warp and :math:`k \times k` block
    averaging it is exactly :math:`1/k^2`.

    Example:
        >>> from course_lib.saliency.warps import affine_matrices
        >>> theta = affine_matrices(torch.zeros(1), torch.zeros(1, 2), (8, 8))
        >>> round(operator_norm_squared(theta, (8, 8), (2, 2)), 4)
        0.0625
    """
    iterations = check_int(iterations, "iterations", minimum=1)
    matrix = operator_matrix(theta, size, low_size)
    return _power_iteration(matrix, _transpose_csr(matrix), iterations)


def _power_iteration(matrix: torch.Tensor, transpose: torch.Tensor, iterations: int) -> float:
    gen = torch.Generator().manual_seed(0)
    v = torch.rand(matrix.shape[1], 1, generator=gen, dtype=matrix.dtype).to(matrix.device)
    value = 0.0
    for _ in range(iterations):
        v = v / v.norm()
        w = transpose @ (matrix @ v)
        value = float((w * v).sum())
        v = w
    return value


@dataclass
class SuperResolution:
    """What :func:`super_resolve` returns.

    Attributes:
        maps: ``(N, H, W)`` the iterate with the lowest objective (subgradient steps need not decrease it), or
            the last one (``keep="last"``).
        objective: ``(iterations + 1, N)`` the objective of every iterate, the initial one first.
        step: the base step size used (``step_size`` divided by the Lipschitz constant for the subgradient
            method; the learning rate for Adam).
    """

    maps: torch.Tensor
    objective: torch.Tensor
    step: float


def super_resolve(
    low_res: torch.Tensor,
    theta: torch.Tensor,
    size: tuple[int, int],
    lambda_tv: float = 0.02,
    mu: float = 0.0,
    iterations: int = 100,
    step_size: float | None = None,
    optimizer: str = "subgradient",
    init: torch.Tensor | str | None = None,
    progress: bool = False,
    max_change: float | None = 0.03,
    downsampling: str = "area",
    keep: str = "best",
) -> SuperResolution:
    r"""Solve the Augmented Grad-CAM inverse problem for a batch of images.

    .. math::

        \hat h = \operatorname*{arg\,min}_h \sum_{l} \| D A_l h - g_l \|_2^2
            + \lambda\, \mathrm{TV}_{\ell_1}(h) + \mu \|h\|_2^2

    **Subgradient descent** (``optimizer="subgradient"``, the course's method) steps along a subgradient

    .. math::

        u^{(t)} = 2 \sum_l A_l^\top D^\top \big(D A_l h^{(t)} - g_l\big) + \lambda\,
            \partial\mathrm{TV}_{\ell_1}(h^{(t)}) + 2\mu\, h^{(t)}, \qquad
        h^{(t+1)} = h^{(t)} - \frac{\eta_t}{\sqrt{t + 1}}\, u^{(t)}, \qquad
        \eta_t = \min\Big(\frac{\alpha}{L_f},\; \frac{\rho \sqrt{HW}}{\|u^{(t)}\|_2}\Big),

    with :math:`L_f = 2\|\sum_l A_l^\top D^\top D A_l\| + 2\mu` (:func:`operator_norm_squared`), the
    Lipschitz constant of the smooth part's gradient, and the diminishing :math:`1/\sqrt{t+1}` schedule under
    which subgradient descent converges on a convex problem. The cap :math:`\rho` bounds the root-mean-square
    change per pixel of a step: near a kink the total-variation subgradient does not shrink, and a step sized
    for the smooth part alone would jump across it (the smooth part alone, e.g. :math:`\lambda = 0`, is never
    slowed down, as its gradient vanishes at the optimum). Iterates need not decrease the objective, so the
    best one is returned. The stacked operators
    :math:`M = [D A_1; \dots; D A_L]` are built once as a sparse matrix (:func:`operator_matrix`), so each step
    costs two sparse products, :math:`M h` and :math:`M^\top r`, for all images and all :math:`L` terms at
    once. ``optimizer="adam"`` feeds the same subgradient to Adam
    (Kingma & Ba, 2015) with learning rate ``step_size``.

    Args:
        low_res: ``(N, L, h, w)`` the low-resolution maps :math:`g_l`.
        theta: ``(L, 2, 3)`` the warps :math:`A_l` for maps of ``size`` (:func:`affine_matrices`).
        size: ``(H, W)`` of the solution.
        lambda_tv: :math:`\lambda \ge 0`.
        mu: :math:`\mu \ge 0`.
        iterations: number of steps (``0`` returns the initial map).
        step_size: :math:`\alpha` (default 1, in units of :math:`1/L_f`) for the subgradient method; Adam's
            learning rate (default 0.05) for Adam.
        optimizer: ``"subgradient"`` or ``"adam"``.
        init: ``(N, H, W)`` starting point, ``"upsampled"`` (default: the bilinear upsampling of
            :math:`g_1`) or ``"zeros"`` (Morbidelli et al.'s code).
        progress: show a progress bar over the iterations.
        max_change: :math:`\rho`, the largest root-mean-square change per pixel of a subgradient step before
            the :math:`1/\sqrt{t+1}` decay (``None``: no cap, plain steps :math:`\alpha / L_f`).
        downsampling: the operator :math:`D`: ``"area"`` (block average, default) or ``"bilinear"`` (a
            bilinear resize, point sampling at the cells' centres; the authors' code), see :func:`downsample`.
        keep: return the iterate with the lowest objective (``"best"``, default) or the last one (``"last"``).

    Returns:
        A :class:`SuperResolution` with the maps, the objective history and the step.

    Example:
        >>> from course_lib.saliency.warps import affine_matrices, augmentation_params
        >>> g = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
        >>> theta = affine_matrices(*augmentation_params(3, 10.0, 1.0, seed=0), (16, 16))
        >>> out = super_resolve(g, theta, (16, 16), iterations=20)
        >>> out.maps.shape, bool((out.objective[-1] <= out.objective[0]).all())
        (torch.Size([2, 16, 16]), True)
    """
    low_res = check_tensor(low_res, "low_res", ndim=4)
    if not (isinstance(size, (tuple, list)) and len(size) == 2):
        raise TypeError(f"size must be an (H, W) pair, got {size!r}")
    size = tuple(check_int(s, "size", minimum=1) for s in size)
    lambda_tv = check_nonnegative(lambda_tv, "lambda_tv")
    mu = check_nonnegative(mu, "mu")
    iterations = check_int(iterations, "iterations", minimum=0)
    check_choice(optimizer, "optimizer", ("subgradient", "adam"))
    check_choice(downsampling, "downsampling", DOWNSAMPLING)
    check_choice(keep, "keep", ("best", "last"))
    h, low_res, theta = _check_problem(_initial_map(init, low_res, size).detach().clone(), low_res.detach(), theta)

    n = h.shape[0]
    matrix = operator_matrix(theta, size, tuple(low_res.shape[-2:]), downsampling)  # M = [D A_1; ...; D A_L], sparse
    transpose = _transpose_csr(matrix)
    targets = low_res.reshape(n, -1).T.contiguous()  # (L h w, N): the g_l of every image, one column each

    step, cap, adam = _step_rule(optimizer, step_size, max_change, mu, matrix, transpose, h)

    def objective_and_subgradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach()
        residual = matrix @ x.reshape(n, -1).T - targets  # (L h w, N)
        grad = 2 * (transpose @ residual).T.reshape(x.shape)
        value = residual.pow(2).sum(0) + lambda_tv * anisotropic_tv(x) + mu * x.pow(2).sum((-2, -1))
        return value, grad + lambda_tv * anisotropic_tv_subgradient(x) + 2 * mu * x

    history = []
    best, best_value = h.detach().clone(), None
    for t in tqdm(range(iterations + 1), desc="Augmented Grad-CAM solver", disable=not progress, leave=False):
        value, sub = objective_and_subgradient(h)
        history.append(value)
        if best_value is None:
            best_value = value.clone()
        else:
            better = value < best_value
            best = torch.where(better[:, None, None], h.detach(), best)
            best_value = torch.where(better, value, best_value)
        if t == iterations:
            break
        if adam is None:
            eta = torch.full_like(value, step)
            if cap is not None:
                eta = torch.minimum(eta, cap / sub.flatten(1).norm(dim=1).clamp_min(1e-30))
            h = h - (eta / math.sqrt(t + 1))[:, None, None] * sub
        else:
            adam.zero_grad(set_to_none=True)
            h.grad = sub
            adam.step()
    out = best if keep == "best" else h
    return SuperResolution(maps=out.detach(), objective=torch.stack(history), step=step)


def _initial_map(init, low_res: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The solver's starting point: the bilinear upsampling of :math:`g_1` (``None`` or ``"upsampled"``), zeros
    (``"zeros"``), or a given ``(N, H, W)`` tensor, checked."""
    if init is None or (isinstance(init, str) and init == "upsampled"):
        return F.interpolate(low_res[:, :1], size=size, mode="bilinear", align_corners=False)[:, 0]
    if isinstance(init, str):
        check_choice(init, "init", ("upsampled", "zeros"))
        return low_res.new_zeros(low_res.shape[0], *size)
    return check_tensor(init, "init", ndim=3, shape={0: low_res.shape[0], 1: size[0], 2: size[1]})


def _step_rule(optimizer: str, step_size, max_change, mu: float, matrix, transpose, h: torch.Tensor):
    r"""``(step, cap, adam)``: the subgradient method's :math:`\alpha / L_f` and its per-step cap
    :math:`\rho \sqrt{HW}` (``adam`` None), or Adam's learning rate and the optimizer over ``h``."""
    if optimizer == "subgradient":
        alpha = 1.0 if step_size is None else check_positive(step_size, "step_size")
        lipschitz = 2 * _power_iteration(matrix, transpose, 30) + 2 * mu
        size = h.shape[-2:]
        cap = None if max_change is None else check_positive(max_change, "max_change") * math.sqrt(size[0] * size[1])
        return alpha / lipschitz, cap, None
    step = 0.05 if step_size is None else check_positive(step_size, "step_size")
    h.requires_grad_(True)
    return step, None, torch.optim.Adam([h], lr=step)
