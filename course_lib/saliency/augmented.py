r"""Augmented Grad-CAM: super-resolved heat maps from augmented copies of the input.

Grad-CAM's map has the resolution of the layer it is read from (16×16 for a 64×64 input to
:class:`course_lib.models.SmallCNN`). Morbidelli et al. (*Augmented Grad-CAM: Heat-maps super resolution
through augmentation*, ICASSP 2020) treat the low-resolution maps of :math:`L` randomly rotated and shifted
copies of the image as measurements of one unknown high-resolution map :math:`h`: the map of the
:math:`l`-th copy is what a downsampling operator :math:`D` makes of the warped map :math:`A_l h`, and
:math:`h` is recovered by a total-variation regularized least-squares solve.

The pieces are public so that each can be read, tested and reused on its own, each in one module:

* ``augmentation_params`` / ``affine_matrices`` / ``warp`` / ``downsample`` — the operators
  :math:`A_l` and :math:`D` (:mod:`course_lib.saliency.warps`);
* ``operator_matrix``, ``tv_l1``, ``tv_l1_subgradient``, ``sr_objective``, ``operator_norm_squared``,
  ``super_resolve`` and its result ``SuperResolution`` — the solver (:mod:`course_lib.saliency.superres`);
* :class:`AugmentedGradCAM` — the explainer, its result :class:`AugmentedExplanation`, the measurements
  :class:`Measurements` and :data:`PAPER_PROTOCOL` (here).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import (
    check_choice,
    check_int,
    check_nonnegative,
    check_positive,
    check_tensor,
)
from .._state import capture, model_mode
from .._types import Layer, Targets
from ._base import Explanation
from .cam import GradCAM
from .superres import SuperResolution, super_resolve
from .warps import DOWNSAMPLING, affine_matrices, augmentation_params, warp

SCALINGS = ("first", "each")  # the measurements divided by the maximum of g_1, or each g_l by its own

__all__ = ["AugmentedGradCAM", "AugmentedExplanation", "Measurements", "Solved", "PAPER_PROTOCOL"]


class Measurements(NamedTuple):
    """What :meth:`AugmentedGradCAM.low_resolution_maps` returns (tensors on the images' device).

    Attributes:
        maps: ``(N, L, h, w)`` the Grad-CAM maps :math:`g_l` of the augmented copies.
        theta: ``(L, 2, 3)`` the warps :math:`A_l` they were measured with.
        targets: ``(N,)`` the classes explained.
        scores: ``(N, num_classes)`` the model's scores of the original images (detached).
    """

    maps: torch.Tensor
    theta: torch.Tensor
    targets: torch.Tensor
    scores: torch.Tensor


class Solved(NamedTuple):
    r"""What :meth:`AugmentedGradCAM.solve` returns: ``maps`` ``(N, H, W)``, :math:`\mathrm{ReLU}(\hat h)` at
    the requested size in Grad-CAM's units, and ``solution``, the solver's own output on its grid
    (:class:`~course_lib.saliency.superres.SuperResolution`: iterate, objective history, step)."""

    maps: torch.Tensor
    solution: SuperResolution


@dataclass(frozen=True, kw_only=True)
class AugmentedExplanation(Explanation):
    """What :meth:`AugmentedGradCAM.explain` returns: an :class:`~course_lib.saliency.Explanation` (``maps``,
    ``targets``, ``scores``) and what produced the maps.

    Attributes:
        theta: ``(L, 2, 3)`` the warps :math:`A_l` drawn for this call (the first is the identity).
        low_res: ``(N, L, h, w)`` the measured Grad-CAM maps :math:`g_l`.
        solution: the solver's output on its grid (:class:`~course_lib.saliency.superres.SuperResolution`).
        timing: seconds spent in the forward/backward passes (``"gradcam_s"``), in the solver
            (``"solver_s"``) and in all (``"total_s"``).
    """

    theta: torch.Tensor
    low_res: torch.Tensor
    solution: SuperResolution
    timing: dict


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
    :mod:`course_lib.studies.augmented_lite0`). For a 64×64 input with a 16×16 layer (``SmallCNN``),
    :math:`k h = 128 \ge 64`: the solve is at the input's resolution, exactly as without the option. The warps
    :math:`A_l` are the same on either grid (``affine_grid`` works in coordinates normalized to the frame, so one
    :math:`\Theta_l` describes the same motion at every resolution). ``lambda_tv`` and ``mu`` weigh the
    total variation and the :math:`\ell_2` norm of :math:`h` *on the solver's grid* (a total variation sums
    differences between neighbouring pixels, so the same edge costs about :math:`H / H_s` times less there).

    The maps :math:`g_l` are divided by the largest value of :math:`g_1` (the plain Grad-CAM map) first, so
    that :math:`\lambda` and :math:`\mu` do not depend on the scale of the class score; ``normalize=False``
    returns :math:`\mathrm{ReLU}(\hat h)` in Grad-CAM's own units. The result is already at the input's
    resolution: ``upsample`` has no effect. The warps are drawn once per call and the same ones are used for
    the measurements and by the solver (with a ``torch.Generator`` as ``seed``, each call draws new ones).
    :meth:`explain` returns the maps with the warps used, the measurements, the solver's output and the
    timings (an :class:`AugmentedExplanation`); the explainer keeps nothing between calls.

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
        downsampling: the operator :math:`D`: ``"area"`` (block average, default) or ``"bilinear"`` (the
            authors' bilinear resize, :func:`downsample`).
        scaling: ``"first"`` (default): every :math:`g_l` divided by the maximum of :math:`g_1`; ``"each"``:
            each :math:`g_l` divided by its own maximum (the authors' code).
        init: the solver's starting point, ``"upsampled"`` :math:`g_1` (default) or ``"zeros"`` (the authors').
        keep: the solver's iterate returned, ``"best"`` (lowest objective, default) or ``"last"``.

    Morbidelli et al.'s protocol is ``n_augmentations=100, max_angle=math.degrees(0.5), max_shift=30,
    lambda_tv=2e-3 * 100, mu=1e-4 * 100, iterations=200, optimizer="adam", step_size=1e-3,
    image_padding="zeros", solve_scale=None, downsampling="bilinear", scaling="each", init="zeros",
    keep="last"`` at 224×224 (:data:`PAPER_PROTOCOL`).

    Example:
        >>> from course_lib.models import SmallCNN
        >>> model = SmallCNN(num_classes=5, width=8).eval()
        >>> explainer = AugmentedGradCAM(model, "features", n_augmentations=4, iterations=10)
        >>> out = explainer.explain(torch.rand(2, 3, 32, 32))
        >>> out.maps.shape, out.theta.shape, out.low_res.shape, sorted(out.timing)
        (torch.Size([2, 32, 32]), torch.Size([4, 2, 3]), torch.Size([2, 4, 8, 8]), ['gradcam_s', 'solver_s', 'total_s'])
    """

    def __init__(
        self,
        model: nn.Module,
        target_layer: Layer,
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
        downsampling: str = "area",
        scaling: str = "first",
        init: str = "upsampled",
        keep: str = "best",
    ) -> None:
        super().__init__(model, target_layer, seed=seed, progress=progress)
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
        self.batch_size = None if batch_size is None else check_int(batch_size, "batch_size", minimum=1)
        self.solve_scale = None if solve_scale is None else check_int(solve_scale, "solve_scale", minimum=1)
        check_choice(downsampling, "downsampling", DOWNSAMPLING)
        check_choice(scaling, "scaling", SCALINGS)
        check_choice(init, "init", ("upsampled", "zeros"))
        check_choice(keep, "keep", ("best", "last"))
        self.downsampling, self.scaling, self.init, self.keep = downsampling, scaling, init, keep

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
            self.n_augmentations, self.max_angle, self.shift(size, low_size), seed=self.seed
        )
        return affine_matrices(angles, shifts, size)

    def _layer_size(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """One forward pass on the original images: their scores and the target layer's ``(h, w)``."""
        with capture(self.target_layer, f"target_layer {self.layer_name!r}",
                     on_output=lambda output: (tuple(output.shape[-2:]), None)) as hooked, torch.no_grad():
            scores = self._predict(images)
        return scores, hooked.last()

    def low_resolution_maps(
        self, images: torch.Tensor, targets: Targets = None, theta: torch.Tensor | None = None
    ) -> Measurements:
        """The Grad-CAM maps :math:`g_l` ``(N, L, h, w)`` of every augmented copy, for the class of the original
        image, with the warps they were measured with (:class:`Measurements`: ``maps``, ``theta``, ``targets``,
        ``scores``).

        ``targets`` as for the call (``None``: each original image's arg-max class); ``theta`` the ``(L, 2, 3)``
        warps (default: drawn now by :meth:`augmentations`).

        Example:
            >>> from course_lib.models import SmallCNN
            >>> explainer = AugmentedGradCAM(SmallCNN(num_classes=5, width=8).eval(), "features", n_augmentations=3)
            >>> g = explainer.low_resolution_maps(torch.rand(2, 3, 32, 32))
            >>> g.maps.shape, g.theta.shape
            (torch.Size([2, 3, 8, 8]), torch.Size([3, 2, 3]))
        """
        images = self._check_images(images)
        with model_mode(self.model):
            return self._measure(images, targets, theta)

    def _measure(self, images: torch.Tensor, targets, theta: torch.Tensor | None) -> Measurements:
        """:meth:`low_resolution_maps` on checked images, the model already in eval mode."""
        n, _, height, width = images.shape
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
        maps = torch.cat(maps).detach()
        return Measurements(maps=maps.reshape(n, self.n_augmentations, *maps.shape[-2:]), theta=theta, targets=t,
                            scores=scores.detach())

    def solve(self, low_res: torch.Tensor, theta: torch.Tensor, size: tuple[int, int], **overrides) -> Solved:
        """The super-resolved maps ``ReLU(h)`` ``(N, H, W)``, in Grad-CAM's units, from measurements ``low_res``
        ``(N, L, h, w)`` taken with the warps ``theta`` (both from :meth:`low_resolution_maps`), together with
        the solver's output (:class:`Solved`: ``maps``, ``solution``).

        The problem is solved on :meth:`solve_size` and the solution upsampled bilinearly to ``size`` (the
        solver's own output, on its grid, is ``solution``). ``solve_scale`` may be among the ``overrides`` too.

        The measurements are divided by the largest value of :math:`g_1` (or each by its own, ``scaling="each"``)
        for the solver and the result multiplied by the largest value of :math:`g_1`. ``overrides`` replace
        solver settings of this explainer for this call (``lambda_tv``, ``mu``, ``iterations``, ``step_size``,
        ``max_change``, ``optimizer``, ``downsampling``, ``init``, ``keep``, ``scaling``), e.g. to compare several on the same
        measurements."""
        settings = {"lambda_tv": self.lambda_tv, "mu": self.mu, "iterations": self.iterations,
                    "step_size": self.step_size, "max_change": self.max_change, "optimizer": self.optimizer,
                    "downsampling": self.downsampling, "init": self.init, "keep": self.keep}
        known = sorted(settings) + ["scaling", "solve_scale"]
        unknown = set(overrides) - set(known)
        if unknown:
            raise TypeError(f"solve() got unknown solver settings {sorted(unknown)}; known: {known}")
        scale_k = overrides.pop("solve_scale", self.solve_scale)
        scaling = overrides.pop("scaling", self.scaling)
        check_choice(scaling, "scaling", SCALINGS)
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
        if scaling == "first":
            measured = g / scale[:, None, None, None]
        else:  # each copy by its own maximum (an all-zero copy stays zero)
            own = g.flatten(2).amax(2)
            measured = g / torch.where(own > 0, own, torch.ones_like(own))[:, :, None, None]
        solution = super_resolve(measured, theta.to(g.device), grid, progress=self.progress, **settings)
        maps = solution.maps
        if grid != size:
            maps = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        return Solved(maps=torch.relu(maps) * scale[:, None, None], solution=solution)

    def explain(self, images: torch.Tensor, targets: Targets = None, *, upsample: bool = True,
                normalize: bool = True) -> AugmentedExplanation:
        """The super-resolved maps with the warps, measurements, solver output and timings that produced them
        (an :class:`AugmentedExplanation`); arguments as for the call (``upsample`` has no effect)."""
        return super().explain(images, targets, upsample=upsample, normalize=normalize)

    def _explain(self, images, targets):
        size = tuple(images.shape[-2:])
        start = _now(images.device)
        measured = self._measure(images, targets, None)
        mid = _now(images.device)
        # the warps g was measured with: drawn once, inverted by the solver too
        solved = self.solve(measured.maps, measured.theta, size)
        end = _now(images.device)
        return AugmentedExplanation(
            maps=solved.maps, targets=measured.targets, scores=measured.scores, theta=measured.theta,
            low_res=measured.maps, solution=solved.solution,
            timing={"gradcam_s": mid - start, "solver_s": end - mid, "total_s": end - start},
        )

    def __repr__(self) -> str:
        return (
            f"AugmentedGradCAM({type(self.model).__name__}, target_layer={self.layer_name!r}, "
            f"n_augmentations={self.n_augmentations}, lambda_tv={self.lambda_tv}, mu={self.mu}, "
            f"iterations={self.iterations}, optimizer={self.optimizer!r}, solve_scale={self.solve_scale}, "
            f"downsampling={self.downsampling!r}, scaling={self.scaling!r})"
        )


PAPER_PROTOCOL: dict = {
    "n_augmentations": 100, "max_angle": math.degrees(0.5), "max_shift": 30.0,
    "lambda_tv": 2e-3 * 100, "mu": 1e-4 * 100, "iterations": 200, "optimizer": "adam", "step_size": 1e-3,
    "image_padding": "zeros", "solve_scale": None, "downsampling": "bilinear", "scaling": "each",
    "init": "zeros", "keep": "last",
}
"""Morbidelli et al.'s settings (ICASSP 2020 and their released code) as :class:`AugmentedGradCAM` arguments,
for 224×224 inputs: ``AugmentedGradCAM(model, layer, **PAPER_PROTOCOL)``."""


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
