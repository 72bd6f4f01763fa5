r"""Augmented Grad-CAM: super-resolved heat maps from augmented copies of the input.

Grad-CAM's map has the resolution of the layer it is read from (16×16 for a 64×64 input to
:class:`course_lib.models.SmallCNN`). Morbidelli et al. (*Augmented Grad-CAM: Heat-maps super resolution
through augmentation*, ICASSP 2020) treat the low-resolution maps of :math:`L` randomly rotated and shifted
copies of the image as measurements of one unknown high-resolution map :math:`h`: the map of the
:math:`l`-th copy is what a downsampling operator :math:`D` makes of the warped map :math:`A_l h`. Then

.. math::

    \hat h = \operatorname*{arg\,min}_h \sum_{l=1}^{L} \big\| D A_l h - g_l \big\|_2^2
        + \lambda \, \mathrm{TV}_{\ell_1}(h) + \mu \, \| h \|_2^2,
    \qquad
    \mathrm{TV}_{\ell_1}(h) = \sum_{i,j} \big| \partial_x h_{ij} \big| + \big| \partial_y h_{ij} \big|,

with :math:`g_l` the Grad-CAM map of the :math:`l`-th augmented image, forward differences
:math:`\partial_x h_{ij} = h_{i,j+1} - h_{ij}` and :math:`\partial_y h_{ij} = h_{i+1,j} - h_{ij}` (zero on the
last column / row). The objective is convex but not differentiable where a difference is zero, so it is
minimized by subgradient descent.

The pieces are public so that each can be read, tested and reused on its own:

* :func:`augmentation_params` / :func:`affine_matrices` / :func:`warp` — the operators :math:`A_l`
  (the same warp for the image and for a map of the same size, with ``affine_grid`` / ``grid_sample``);
* :func:`downsample` — the operator :math:`D` (area averaging to the layer's resolution);
* :func:`tv_l1` and :func:`tv_l1_subgradient` — the anisotropic total variation and a subgradient of it;
* :func:`sr_objective` and :func:`super_resolve` — the objective and its solver (all :math:`L` terms and
  all images batched);
* :class:`AugmentedGradCAM` — the explainer.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .._checks import (
    check_choice,
    check_int,
    check_nonnegative,
    check_positive,
    check_tensor,
)
from ..models import model_mode
from .cam import GradCAM, _generator

__all__ = [
    "AugmentedGradCAM",
    "augmentation_params",
    "affine_matrices",
    "warp",
    "downsample",
    "tv_l1",
    "tv_l1_subgradient",
    "sr_objective",
    "SuperResolution",
    "super_resolve",
    "operator_norm_squared",
    "operator_matrix",
]


# ---------------------------------------------------------------------------------------------- operators
def augmentation_params(
    n_augmentations: int,
    max_angle: float,
    max_shift: float,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Random rotation angles and translations of :math:`L` augmentations, the first one the identity.

    Angles are uniform in :math:`[-\theta_{\max}, \theta_{\max}]` degrees, shifts uniform in
    :math:`[-t_{\max}, t_{\max}]` pixels along each axis.

    Args:
        n_augmentations: :math:`L \ge 1`.
        max_angle: :math:`\theta_{\max}` in degrees (``0`` for translations only).
        max_shift: :math:`t_{\max}` in pixels (``0`` for rotations only).
        generator: a CPU ``torch.Generator``; or give ``seed``.
        seed: seeds a new generator when ``generator`` is ``None`` (default 0).

    Returns:
        ``angles`` ``(L,)`` in degrees and ``shifts`` ``(L, 2)`` in pixels ``(dx, dy)``; row 0 is zero.

    Example:
        >>> angles, shifts = augmentation_params(4, 15.0, 3.0, seed=0)
        >>> angles.shape, shifts.shape, float(angles[0]), shifts[0].tolist()
        (torch.Size([4]), torch.Size([4, 2]), 0.0, [0.0, 0.0])
    """
    n = check_int(n_augmentations, "n_augmentations", minimum=1)
    max_angle = check_nonnegative(max_angle, "max_angle")
    max_shift = check_nonnegative(max_shift, "max_shift")
    if generator is None:
        generator = torch.Generator().manual_seed(check_int(0 if seed is None else seed, "seed", minimum=0))
    elif not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    angles = (torch.rand(n, generator=generator) * 2 - 1) * max_angle
    shifts = (torch.rand(n, 2, generator=generator) * 2 - 1) * max_shift
    angles[0] = 0.0
    shifts[0] = 0.0
    return angles, shifts


def affine_matrices(angles: torch.Tensor, shifts: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    r"""The ``affine_grid`` matrices :math:`\Theta_l` of rotations about the centre followed by shifts.

    The warp moves the content: a point :math:`q` (pixels, measured from the image centre, :math:`x` to
    the right and :math:`y` down) goes to :math:`R(\theta) q + t`, with :math:`R(\theta)` a rotation by
    :math:`\theta` degrees counter-clockwise *as displayed* (like :func:`torch.rot90`). ``grid_sample``
    needs the inverse map, from output to input, in coordinates normalized to :math:`[-1, 1]`; with
    :math:`S = \mathrm{diag}(W/2, H/2)`,

    .. math::

        \Theta = \big[\, S^{-1} R^\top S \;\big|\; -S^{-1} R^\top t \,\big].

    Args:
        angles: ``(L,)`` degrees.
        shifts: ``(L, 2)`` pixels ``(dx, dy)`` (``dx > 0`` moves content right, ``dy > 0`` down).
        size: ``(H, W)`` of the images or maps being warped.

    Returns:
        ``(L, 2, 3)`` float tensor on the device of ``angles``.

    Example:
        >>> affine_matrices(torch.zeros(1), torch.zeros(1, 2), (8, 8))[0]
        tensor([[1., 0., 0.],
                [0., 1., 0.]])
    """
    angles = check_tensor(angles, "angles", ndim=1)
    shifts = check_tensor(shifts, "shifts", ndim=2, shape={0: angles.shape[0], 1: 2})
    if not (isinstance(size, (tuple, list)) and len(size) == 2):
        raise TypeError(f"size must be an (H, W) pair, got {size!r}")
    h, w = (check_int(s, "size", minimum=1) for s in size)
    rad = torch.deg2rad(angles.to(torch.float64))
    # Counter-clockwise on screen with y pointing down is a rotation by -theta in (x, y) coordinates.
    c, s = torch.cos(rad), torch.sin(-rad)
    rot_t = torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2)  # R^T, (L, 2, 2)
    scale = torch.tensor([w / 2.0, h / 2.0], dtype=torch.float64, device=angles.device)
    lin = rot_t * scale[None, None, :] / scale[None, :, None]  # S^-1 R^T S
    trans = -(rot_t @ shifts.to(torch.float64)[..., None])[..., 0] / scale
    return (torch.cat([lin, trans[..., None]], dim=-1) + 0.0).to(angles.dtype)  # + 0.0 turns -0.0 into 0.0


def warp(x: torch.Tensor, theta: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    r"""Apply the warps :math:`A_l` to a batch: bilinear sampling, zeros outside the image by default.

    ``x`` is ``(N, C, H, W)`` and ``theta`` ``(L, 2, 3)`` (:func:`affine_matrices`). The result is
    ``(N, L, C, H, W)``: every image under every warp. The same call warps an image and a map of the same
    size identically, which is what makes :math:`g_l \approx D A_l h` a consistent model. ``A_l`` is linear,
    so its adjoint :math:`A_l^\top` is the backward pass of this function. ``padding_mode`` (``"zeros"``,
    ``"border"`` or ``"reflection"``, as in ``grid_sample``) fills what comes from outside the frame; maps always
    use zeros, and images may use ``"reflection"`` so that the network never sees artificial black corners.

    Example:
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> theta = affine_matrices(torch.tensor([90.0]), torch.zeros(1, 2), (4, 4))
        >>> torch.allclose(warp(x, theta)[:, 0], torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5)
        True
    """
    x = check_tensor(x, "x", ndim=4, finite=False)
    theta = check_tensor(theta, "theta", ndim=3, shape={1: 2, 2: 3})
    check_choice(padding_mode, "padding_mode", ("zeros", "border", "reflection"))
    n, c, h, w = x.shape
    n_aug = theta.shape[0]
    grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), [n_aug, c, h, w], align_corners=False)
    xs = x[:, None].expand(n, n_aug, c, h, w).reshape(n * n_aug, c, h, w)
    grid = grid[None].expand(n, *grid.shape).reshape(n * n_aug, h, w, 2)
    out = F.grid_sample(xs, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    return out.reshape(n, n_aug, c, h, w)


def downsample(h: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    r"""The operator :math:`D`: area averaging of ``(..., H, W)`` maps down to ``size = (h, w)``.

    For an integer factor :math:`k = H/h = W/w` each low-resolution value is the mean of a
    :math:`k \times k` block, :math:`(D x)_{ij} = k^{-2} \sum_{a,b<k} x_{ki+a,\,kj+b}`, which is how a
    stride-:math:`k` feature map summarizes the input (other ratios use adaptive average pooling).

    Example:
        >>> downsample(torch.arange(16.0).reshape(4, 4), (2, 2))
        tensor([[ 2.5000,  4.5000],
                [10.5000, 12.5000]])
    """
    h = check_tensor(h, "h", ndim=(2, 3, 4, 5), finite=False, min_batch=0)
    lead = h.shape[:-2]
    flat = h.reshape(-1, 1, *h.shape[-2:])
    out = F.adaptive_avg_pool2d(flat, tuple(size))
    return out.reshape(*lead, *out.shape[-2:])


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


def operator_matrix(theta: torch.Tensor, size: tuple[int, int], low_size: tuple[int, int]) -> torch.Tensor:
    r"""The stacked operators :math:`M = [D A_1; \dots; D A_L]` as one sparse matrix.

    :func:`warp` followed by :func:`downsample` is linear in the map, so it is a matrix with
    :math:`L h w` rows and :math:`H W` columns, applied to maps flattened in row-major order. Each output pixel
    of a bilinear warp mixes at most four input pixels, and each pixel enters one block average (at most two
    per axis for sizes that do not divide), so :math:`M` has at most :math:`16 L H W` non-zeros: applying it
    and its transpose costs far less than running ``grid_sample`` forward and backward, which is what makes
    hundreds of solver iterations cheap. The weights are those of ``grid_sample`` (bilinear,
    ``align_corners=False``, zeros outside) on the grid of ``affine_grid``.

    Returns:
        A sparse CSR tensor ``(L * h * w, H * W)`` on the device of ``theta``, with
        ``(M @ h.flatten()).view(L, h, w) == downsample(warp(h[None, None], theta)[0, :, 0], low_size)`` up to
        float round-off.

    Example:
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
    device, n_aug = theta.device, theta.shape[0]
    grid = F.affine_grid(theta.to(torch.float64), [n_aug, 1, h_in, w_in], align_corners=False)  # (L, H, W, 2)
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
    rows, cols, vals = torch.cat(rows), torch.cat(cols), torch.cat(vals)
    keep = vals != 0
    matrix = torch.sparse_coo_tensor(
        torch.stack([rows[keep], cols[keep]]), vals[keep], (n_aug * h_lo * w_lo, h_in * w_in),
        check_invariants=False,
    ).coalesce()
    return _to_csr(matrix.to(theta.dtype))


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
    return _tv_l1(check_tensor(h, "h", ndim=(2, 3, 4), min_batch=0))


def _tv_l1(h: torch.Tensor) -> torch.Tensor:
    dx = h[..., :, 1:] - h[..., :, :-1]
    dy = h[..., 1:, :] - h[..., :-1, :]
    return dx.abs().sum((-2, -1)) + dy.abs().sum((-2, -1))


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
    return _tv_l1_subgradient(check_tensor(h, "h", ndim=(2, 3, 4), min_batch=0))


def _tv_l1_subgradient(h: torch.Tensor) -> torch.Tensor:
    sx = torch.sign(h[..., :, 1:] - h[..., :, :-1])
    sy = torch.sign(h[..., 1:, :] - h[..., :-1, :])
    g = torch.zeros_like(h)
    g[..., :, 1:] += sx
    g[..., :, :-1] -= sx
    g[..., 1:, :] += sy
    g[..., :-1, :] -= sy
    return g


# ---------------------------------------------------------------------------------------------- solver
def _data_term(h: torch.Tensor, g: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Sum over l of ||D A_l h - g_l||^2 for h (N, H, W), g (N, L, h, w): one value per image."""
    pred = downsample(warp(h[:, None], theta)[:, :, 0], tuple(g.shape[-2:]))
    return (pred - g).pow(2).sum((-3, -2, -1))


def sr_objective(
    h: torch.Tensor, low_res: torch.Tensor, theta: torch.Tensor, lambda_tv: float = 0.0, mu: float = 0.0
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

    Example:
        >>> g = torch.ones(1, 1, 2, 2); theta = affine_matrices(torch.zeros(1), torch.zeros(1, 2), (4, 4))
        >>> sr_objective(torch.ones(1, 4, 4), g, theta, lambda_tv=1.0, mu=0.5)
        tensor([8.])
    """
    h, low_res, theta = _check_problem(h, low_res, theta)
    lambda_tv = check_nonnegative(lambda_tv, "lambda_tv")
    mu = check_nonnegative(mu, "mu")
    return _data_term(h, low_res, theta) + lambda_tv * tv_l1(h) + mu * h.pow(2).sum((-2, -1))


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
        maps: ``(N, H, W)`` the iterate with the lowest objective (subgradient steps need not decrease it).
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
    init: torch.Tensor | None = None,
    progress: bool = False,
    max_change: float | None = 0.03,
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
        init: ``(N, H, W)`` starting point; default the bilinear upsampling of :math:`g_1`.
        progress: show a progress bar over the iterations.
        max_change: :math:`\rho`, the largest root-mean-square change per pixel of a subgradient step before
            the :math:`1/\sqrt{t+1}` decay (``None``: no cap, plain steps :math:`\alpha / L_f`).

    Returns:
        A :class:`SuperResolution` with the maps, the objective history and the step.

    Example:
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
    if init is None:
        init = F.interpolate(low_res[:, :1], size=size, mode="bilinear", align_corners=False)[:, 0]
    else:
        init = check_tensor(init, "init", ndim=3, shape={0: low_res.shape[0], 1: size[0], 2: size[1]})
    h, low_res, theta = _check_problem(init.detach().clone(), low_res.detach(), theta)

    n = h.shape[0]
    matrix = operator_matrix(theta, size, tuple(low_res.shape[-2:]))  # M = [D A_1; ...; D A_L], sparse
    transpose = _transpose_csr(matrix)
    targets = low_res.reshape(n, -1).T.contiguous()  # (L h w, N): the g_l of every image, one column each

    if optimizer == "subgradient":
        alpha = 1.0 if step_size is None else check_positive(step_size, "step_size")
        lipschitz = 2 * _power_iteration(matrix, transpose, 30) + 2 * mu
        step = alpha / lipschitz
        cap = None if max_change is None else check_positive(max_change, "max_change") * math.sqrt(size[0] * size[1])
        adam = None
    else:
        step = 0.05 if step_size is None else check_positive(step_size, "step_size")
        h.requires_grad_(True)
        adam = torch.optim.Adam([h], lr=step)

    def objective_and_subgradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach()
        residual = matrix @ x.reshape(n, -1).T - targets  # (L h w, N)
        grad = 2 * (transpose @ residual).T.reshape(x.shape)
        value = residual.pow(2).sum(0) + lambda_tv * _tv_l1(x) + mu * x.pow(2).sum((-2, -1))
        return value, grad + lambda_tv * _tv_l1_subgradient(x) + 2 * mu * x

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
    return SuperResolution(maps=best.detach(), objective=torch.stack(history), step=step)


# ---------------------------------------------------------------------------------------------- explainer
class AugmentedGradCAM(GradCAM):
    r"""Augmented Grad-CAM (Morbidelli et al., ICASSP 2020): a super-resolved Grad-CAM map.

    1. Draw :math:`L` warps :math:`A_l` (rotation up to ``max_angle`` degrees, shift up to ``max_shift``
       pixels; :math:`A_1` is the identity) and classify every warped image :math:`A_l x` in one batch.
    2. Compute the Grad-CAM map :math:`g_l` of each warped image at the target layer, always for the class
       predicted on (or given for) the original image.
    3. Solve, by subgradient descent (:func:`super_resolve`),

       .. math::

           \hat h = \operatorname*{arg\,min}_h \sum_{l=1}^{L} \| D A_l h - g_l \|_2^2
               + \lambda\, \mathrm{TV}_{\ell_1}(h) + \mu \|h\|_2^2,

       with :math:`h` on a grid of :math:`H_s \times W_s = \min(H, k h) \times \min(W, k w)` pixels
       (:math:`k` = ``solve_scale`` sub-cells per cell of the :math:`h \times w` layer; ``None``: the input's
       :math:`H \times W`) and :math:`D` the area downsampling to the layer's resolution.
    4. Upsample :math:`\hat h` bilinearly to the input's :math:`H \times W` (nothing to do when
       :math:`H_s \times W_s = H \times W`).

    Why a solver grid coarser than the input: :math:`L` copies of an :math:`h \times w` map, shifted by
    continuous offsets, cannot resolve detail much finer than a few sub-cells per cell, while the solver's cost
    grows with :math:`H_s W_s` (its operator :math:`M` has one row per measured cell and about
    :math:`(H_s / h)(W_s / w)` non-zeros per row per warp). At 224×224 with a 7×7 layer the full-resolution
    problem has 32×32 pixels per cell; ``solve_scale = 8`` solves on 56×56 (16 times fewer unknowns) and, on
    ``shapes_lite0`` validation images, scores as the full-resolution solve does (the measurement is in
    :mod:`course_lib.zoo.augmented_study`). For a 64×64 input with a 16×16 layer (``SmallCNN``),
    :math:`k h = 128 \ge 64`: the solve is at the input's resolution, exactly as without the option. The warps
    :math:`A_l` are the same on either grid (``affine_grid`` works in coordinates normalized to the frame, so one
    :math:`\Theta_l` describes the same motion at every resolution). ``lambda_tv`` and ``mu`` weigh the
    total variation and the :math:`\ell_2` norm of :math:`h` *on the solver's grid* (a total variation sums
    differences between neighbouring pixels, so the same edge costs about :math:`H / H_s` times less there).

    The maps :math:`g_l` are divided by the largest value of :math:`g_1` (the plain Grad-CAM map) first, so
    that :math:`\lambda` and :math:`\mu` do not depend on the scale of the class score; ``normalize=False``
    returns :math:`\mathrm{ReLU}(\hat h)` in Grad-CAM's own units. The result is already at the input's
    resolution: ``upsample`` has no effect. The warps are drawn once per call and the same ones are used for
    the measurements and by the solver (with a ``torch.Generator`` as ``seed``, each call draws new ones). After
    each call, :attr:`last_timing` holds the seconds spent in the forward/backward passes and in the solver,
    :attr:`last_solution` the solver's output and :attr:`last_theta` the ``(L, 2, 3)`` warps used.

    Args:
        model: the classifier.
        target_layer: a module of the model or its dotted name.
        n_augmentations: :math:`L`, the number of augmented copies (the first is the image itself).
        max_angle: largest rotation in degrees.
        max_shift: largest shift in pixels along each axis; ``None`` (default) follows the image and the layer:
            one cell of the target layer, :math:`H / h` pixels (4 for a 16×16 map of a 64×64 image, 32 for a
            7×7 map of a 224×224 image — about the paper's ±30 px at 224×224), so that the copies sample every
            sub-cell offset.
        lambda_tv: :math:`\lambda`, weight of the anisotropic total variation.
        mu: :math:`\mu`, weight of the :math:`\ell_2` penalty.
        iterations: solver steps.
        step_size: see :func:`super_resolve` (default: 1 in units of :math:`1/L_f` for the subgradient method).
        optimizer: ``"subgradient"`` (the course's method) or ``"adam"``.
        seed: an int (the same warps at every call) or a CPU ``torch.Generator``.
        batch_size: augmented images per forward/backward pass (``None``: all :math:`N L` at once).
        image_padding: how the warped *images* are filled outside the frame: ``"reflection"`` (default: the
            network never sees artificial black corners), ``"border"`` or ``"zeros"`` (the maps are always
            zero there).
        max_change: the solver's cap on the change per pixel of a step (see :func:`super_resolve`).
        solve_scale: :math:`k`, the solver's pixels per cell of the target layer along each axis: the solution
            is computed on :math:`\min(H, k h) \times \min(W, k w)` and upsampled bilinearly (default 8;
            ``None``: always at the input's resolution). See :meth:`solve_size`.
        progress: show a progress bar over the solver's iterations.

    Example:
        >>> from course_lib.models import SmallCNN
        >>> model = SmallCNN(num_classes=5, width=8).eval()
        >>> explainer = AugmentedGradCAM(model, "features", n_augmentations=4, iterations=10)
        >>> explainer(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 32, 32])
    """

    def __init__(
        self,
        model: nn.Module,
        target_layer,
        n_augmentations: int = 16,
        max_angle: float = 15.0,
        max_shift: float | None = None,
        lambda_tv: float = 0.02,
        mu: float = 0.0,
        iterations: int = 100,
        step_size: float | None = None,
        optimizer: str = "subgradient",
        seed: int | torch.Generator = 0,
        batch_size: int | None = None,
        image_padding: str = "reflection",
        max_change: float | None = 0.03,
        solve_scale: int | None = 8,
        progress: bool = False,
    ) -> None:
        super().__init__(model, target_layer)
        check_choice(image_padding, "image_padding", ("zeros", "border", "reflection"))
        self.image_padding = image_padding
        self.max_change = None if max_change is None else check_positive(max_change, "max_change")
        self.n_augmentations = check_int(n_augmentations, "n_augmentations", minimum=1)
        self.max_angle = check_nonnegative(max_angle, "max_angle")
        self.max_shift = None if max_shift is None else check_nonnegative(max_shift, "max_shift")
        self.lambda_tv = check_nonnegative(lambda_tv, "lambda_tv")
        self.mu = check_nonnegative(mu, "mu")
        self.iterations = check_int(iterations, "iterations", minimum=0)
        self.step_size = None if step_size is None else check_positive(step_size, "step_size")
        check_choice(optimizer, "optimizer", ("subgradient", "adam"))
        self.optimizer = optimizer
        if not isinstance(seed, torch.Generator):
            check_int(seed, "seed", minimum=0, maximum=2**63 - 1)
        self.seed = seed
        self.batch_size = None if batch_size is None else check_int(batch_size, "batch_size", minimum=1)
        self.solve_scale = None if solve_scale is None else check_int(solve_scale, "solve_scale", minimum=1)
        self.progress = progress
        self.last_timing: dict[str, float] = {}
        self.last_solution: SuperResolution | None = None
        self.last_theta: torch.Tensor | None = None

    def solve_size(self, size: tuple[int, int], low_size: tuple[int, int]) -> tuple[int, int]:
        r"""The solver's grid :math:`(\min(H, k h), \min(W, k w))` for images of ``size`` :math:`(H, W)` and
        target-layer maps of ``low_size`` :math:`(h, w)` (``size`` itself when ``solve_scale`` is ``None``).

        Example:
            >>> from course_lib.models import SmallCNN
            >>> explainer = AugmentedGradCAM(SmallCNN(num_classes=5, width=8), "features")
            >>> explainer.solve_size((224, 224), (7, 7)), explainer.solve_size((64, 64), (16, 16))
            ((56, 56), (64, 64))
        """
        if not (isinstance(size, (tuple, list)) and len(size) == 2):
            raise TypeError(f"size must be an (H, W) pair, got {size!r}")
        if not (isinstance(low_size, (tuple, list)) and len(low_size) == 2):
            raise TypeError(f"low_size must be an (h, w) pair, got {low_size!r}")
        return _solver_grid(tuple(check_int(v, "size", minimum=1) for v in size),
                            tuple(check_int(v, "low_size", minimum=1) for v in low_size), self.solve_scale)

    def shift(self, size: tuple[int, int], low_size: tuple[int, int] | None = None) -> float:
        """The largest shift in pixels: ``max_shift``, or one cell (``max(H / h, W / w)``) when it is ``None``."""
        if self.max_shift is not None:
            return self.max_shift
        if low_size is None:
            raise ValueError("low_size (the target layer's (h, w)) is needed when max_shift is None (one cell)")
        return max(size[0] / low_size[0], size[1] / low_size[1])

    def augmentations(self, size: tuple[int, int], low_size: tuple[int, int] | None = None) -> torch.Tensor:
        """``(L, 2, 3)`` warp matrices for images of ``size`` whose target-layer maps are ``low_size``.

        With an int seed the same warps come back at every call; with a ``torch.Generator`` each call draws new
        ones. ``low_size`` is needed only when ``max_shift`` is ``None`` (one cell of the layer)."""
        angles, shifts = augmentation_params(
            self.n_augmentations, self.max_angle, self.shift(size, low_size), generator=_generator(self.seed)
        )
        return affine_matrices(angles, shifts, size)

    def _layer_size(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """One forward pass on the original images: their scores and the target layer's ``(h, w)``."""
        shapes: list[tuple[int, int]] = []
        handle = self.target_layer.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[-2:])))
        try:
            with torch.no_grad():
                scores = self._predict(images)
        finally:
            handle.remove()
        if not shapes:
            raise ValueError(f"target_layer {self.layer_name!r} was not called during the model's forward pass")
        return scores, shapes[-1]

    def low_resolution_maps(self, images: torch.Tensor, targets=None, theta: torch.Tensor | None = None) -> torch.Tensor:
        """The Grad-CAM maps :math:`g_l` ``(N, L, h, w)`` of every augmented copy, for the class of the original image.

        ``targets`` as for the call (``None``: each original image's arg-max class); ``theta`` the ``(L, 2, 3)``
        warps (default: drawn now by :meth:`augmentations`; they are kept in :attr:`last_theta`)."""
        images = self._check_images(images)
        n, _, height, width = images.shape
        with model_mode(self.model):
            scores, low_size = self._layer_size(images)
            t = self._resolve_targets(targets, scores)
            if theta is None:
                theta = self.augmentations((height, width), low_size)
            theta = check_tensor(theta, "theta", ndim=3, shape={0: self.n_augmentations, 1: 2, 2: 3})
            theta = theta.to(images.device)
            warped = warp(images, theta, self.image_padding).reshape(n * self.n_augmentations, *images.shape[1:])
            t_all = t.repeat_interleave(self.n_augmentations)
            step = self.batch_size or warped.shape[0]
            maps = [self._layer_maps(warped[i : i + step], t_all[i : i + step]) for i in range(0, warped.shape[0], step)]
        self.last_theta = theta
        maps = torch.cat(maps).detach()
        return maps.reshape(n, self.n_augmentations, *maps.shape[-2:])

    def solve(self, low_res: torch.Tensor, theta: torch.Tensor, size: tuple[int, int], **overrides) -> torch.Tensor:
        """The super-resolved maps ``ReLU(h)`` ``(N, H, W)``, in Grad-CAM's units, from measurements ``low_res``
        ``(N, L, h, w)`` taken with the warps ``theta`` (:meth:`low_resolution_maps`, :attr:`last_theta`).

        The problem is solved on :meth:`solve_size` and the solution upsampled bilinearly to ``size`` (the
        solver's own output, on its grid, is in :attr:`last_solution`). ``solve_scale`` may be among the
        ``overrides`` too.

        The measurements are divided by the largest value of :math:`g_1` for the solver and the result multiplied
        back. ``overrides`` replace solver settings of this explainer for this call (``lambda_tv``, ``mu``,
        ``iterations``, ``step_size``, ``max_change``, ``optimizer``), e.g. to compare several on the same
        measurements. The solver's output is kept in :attr:`last_solution`."""
        settings = {"lambda_tv": self.lambda_tv, "mu": self.mu, "iterations": self.iterations,
                    "step_size": self.step_size, "max_change": self.max_change, "optimizer": self.optimizer}
        known = sorted(settings) + ["solve_scale"]
        unknown = set(overrides) - set(known)
        if unknown:
            raise TypeError(f"solve() got unknown solver settings {sorted(unknown)}; known: {known}")
        scale_k = overrides.pop("solve_scale", self.solve_scale)
        scale_k = None if scale_k is None else check_int(scale_k, "solve_scale", minimum=1)
        settings.update(overrides)
        g = check_tensor(low_res, "low_res", ndim=4)
        if not (isinstance(size, (tuple, list)) and len(size) == 2):
            raise TypeError(f"size must be an (H, W) pair, got {size!r}")
        size = tuple(check_int(v, "size", minimum=1) for v in size)
        grid = _solver_grid(size, tuple(g.shape[-2:]), scale_k)
        scale = g[:, 0].flatten(1).amax(1)
        scale = torch.where(scale > 0, scale, g.flatten(1).amax(1))
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        solution = super_resolve(g / scale[:, None, None, None], theta.to(g.device), grid, progress=self.progress,
                                 **settings)
        self.last_solution = solution
        maps = solution.maps
        if grid != size:
            maps = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        return torch.relu(maps) * scale[:, None, None]

    def _raw_maps(self, images, targets):
        size = tuple(images.shape[-2:])
        start = _now(images.device)
        g = self.low_resolution_maps(images, targets)
        mid = _now(images.device)
        # the warps g was measured with: drawn once, inverted by the solver too
        maps = self.solve(g, self.last_theta, size)
        end = _now(images.device)
        self.last_timing = {"gradcam_s": mid - start, "solver_s": end - mid, "total_s": end - start}
        return maps

    def __repr__(self) -> str:
        return (
            f"AugmentedGradCAM({type(self.model).__name__}, target_layer={self.layer_name!r}, "
            f"n_augmentations={self.n_augmentations}, lambda_tv={self.lambda_tv}, mu={self.mu}, "
            f"iterations={self.iterations}, optimizer={self.optimizer!r}, solve_scale={self.solve_scale})"
        )


def _solver_grid(size: tuple[int, int], low_size: tuple[int, int], k: int | None) -> tuple[int, int]:
    """``(min(H, k h), min(W, k w))``, or ``size`` when ``k`` is ``None`` (arguments already checked)."""
    if k is None:
        return tuple(size)
    return min(size[0], k * low_size[0]), min(size[1], k * low_size[1])


def _now(device: torch.device) -> float:
    """Wall-clock seconds, after waiting for the GPU's queued work (so that timings mean something)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
