r"""The warps of Augmented Grad-CAM: random rotations and shifts, their ``affine_grid`` matrices, the
warp :math:`A_l` itself and the area downsampling :math:`D` to a layer's resolution.

The same :func:`warp` moves an image and a map of the same size identically, which is what makes the
measurement model :math:`g_l \approx D A_l h` of :mod:`course_lib.saliency.superres` consistent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._checks import check_choice, check_int, check_nonnegative, check_tensor
from .._checks import generator as seeded_generator

__all__ = ["augmentation_params", "affine_matrices", "warp", "downsample", "DOWNSAMPLING"]

DOWNSAMPLING = ("area", "bilinear")  # the operators D that downsample and operator_matrix know

def augmentation_params(
    n_augmentations: int,
    max_angle: float,
    max_shift: float,
    seed: int | torch.Generator = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Random rotation angles and translations of :math:`L` augmentations, the first one the identity.

    Angles are uniform in :math:`[-\theta_{\max}, \theta_{\max}]` degrees, shifts uniform in
    :math:`[-t_{\max}, t_{\max}]` pixels along each axis.

    Args:
        n_augmentations: :math:`L \ge 1`.
        max_angle: :math:`\theta_{\max}` in degrees (``0`` for translations only).
        max_shift: :math:`t_{\max}` in pixels (``0`` for rotations only).
        seed: an int (a fresh generator: the same draws each time) or a CPU ``torch.Generator`` (which advances).

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
    gen = seeded_generator(seed)
    angles = (torch.rand(n, generator=gen) * 2 - 1) * max_angle
    shifts = (torch.rand(n, 2, generator=gen) * 2 - 1) * max_shift
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


def downsample(h: torch.Tensor, size: tuple[int, int], mode: str = "area") -> torch.Tensor:
    r"""The operator :math:`D`: ``(..., H, W)`` maps down to ``size = (h, w)``.

    ``mode="area"`` (the course's default) averages blocks: for an integer factor :math:`k = H/h = W/w` each
    low-resolution value is the mean of a :math:`k \times k` block,
    :math:`(D x)_{ij} = k^{-2} \sum_{a,b<k} x_{ki+a,\,kj+b}`, which is how a stride-:math:`k` feature map
    summarizes the input (other ratios use adaptive average pooling). ``mode="bilinear"`` is a bilinear
    resize without anti-aliasing (``F.interpolate(..., mode="bilinear", align_corners=False)``, the
    operator of Morbidelli et al.'s code): each low-resolution value interpolates the four pixels around the
    cell's centre, :math:`((i + \tfrac12) k - \tfrac12,\ (j + \tfrac12) k - \tfrac12)`, and ignores the
    rest of the cell — point sampling.

    Example:
        >>> downsample(torch.arange(16.0).reshape(4, 4), (2, 2))
        tensor([[ 2.5000,  4.5000],
                [10.5000, 12.5000]])
        >>> downsample(torch.arange(64.0).reshape(8, 8), (2, 2), mode="bilinear")  # centres at 1.5, 5.5
        tensor([[13.5000, 17.5000],
                [45.5000, 49.5000]])
    """
    h = check_tensor(h, "h", ndim=(2, 3, 4, 5), finite=False, min_batch=0)
    check_choice(mode, "mode", DOWNSAMPLING)
    lead = h.shape[:-2]
    flat = h.reshape(-1, 1, *h.shape[-2:])
    if mode == "area":
        out = F.adaptive_avg_pool2d(flat, tuple(size))
    else:
        out = F.interpolate(flat, size=tuple(size), mode="bilinear", align_corners=False)
    return out.reshape(*lead, *out.shape[-2:])
