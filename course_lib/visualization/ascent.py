r"""Activation maximization: an input that maximizes a unit, a channel or a class score, by gradient ascent.

The regularizers are those of Simonyan, Vedaldi & Zisserman (*Deep Inside Convolutional Networks*, 2014),
Mahendran & Vedaldi (*Understanding Deep Image Representations by Inverting Them*, CVPR 2015) and random
jitter (Mordvintsev et al., *Inceptionism*, 2015):

.. math::

    I^\ast = \arg\max_I \; S(I) - \lambda_2 \lVert I \rVert_2^2 - \lambda_{TV} R_{TV}(I).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .._checks import (
    check_choice,
    check_images,
    check_int,
    check_nonnegative,
    check_positive,
    check_size,
    check_tensor,
    generator,
)
from .._state import model_mode
from .._total_variation import anisotropic_tv
from .._types import Images, Layer, Size
from .probe import LayerProbe, as_targets, target_score

__all__ = ["total_variation", "ascent_objective", "AscentResult", "activation_maximization"]


def total_variation(images: Images) -> torch.Tensor:
    r"""Anisotropic total variation of each image, summed over channels:

    .. math:: R_{TV}(I) = \sum_{c,i,j} \lvert I_{c,i+1,j} - I_{c,i,j} \rvert + \lvert I_{c,i,j+1} - I_{c,i,j} \rvert

    (differences that would leave the image are dropped). A simple anisotropic relative of the smoothness
    priors of Rudin, Osher & Fatemi (1992) and of the :math:`V^\beta` family of Mahendran & Vedaldi (CVPR
    2015), :math:`\sum_{i,j} ((I_{i,j+1} - I_{i,j})^2 + (I_{i+1,j} - I_{i,j})^2)^{\beta/2}`, which are isotropic.

    Args:
        images: ``(N, C, H, W)``.

    Returns:
        ``(N,)`` — one value per image.

    Example:
        >>> total_variation(torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]]))
        tensor([2.])
    """
    return anisotropic_tv(check_tensor(images, "images", ndim=4), dims=(1, 2, 3))


def _weights(value, name: str, n: int | None = None) -> float | torch.Tensor:
    """A regularization weight: a number >= 0, or a 1-D sequence of them (one per image)."""
    if isinstance(value, (list, tuple, torch.Tensor, np.ndarray)):
        t = check_tensor(torch.as_tensor(value, dtype=torch.float32) if isinstance(value, (list, tuple)) else value,
                         name, ndim=1)
        if n is not None and t.shape[0] != n:
            raise ValueError(f"{name} must be a number or hold one weight per image ({n}), got shape {tuple(t.shape)}")
        if bool((t < 0).any()):
            raise ValueError(f"{name} must be >= 0, got {t.tolist()}")
        return t
    return check_nonnegative(value, name)


def ascent_objective(score: torch.Tensor, image: torch.Tensor, l2=0.0, tv=0.0) -> torch.Tensor:
    r"""The regularized objective maximized by :func:`activation_maximization`, per image:

    .. math:: J(I) = S(I) - \lambda_2 \lVert I \rVert_2^2 - \lambda_{TV} R_{TV}(I)

    (Simonyan, Vedaldi & Zisserman, 2014, for the :math:`L_2` term; an anisotropic total variation
    :math:`R_{TV}` in the spirit of Mahendran & Vedaldi's :math:`V^\beta` prior, see :func:`total_variation`).

    Args:
        score: ``(N,)`` target scores :math:`S(I)` (a unit, a channel mean or a class score before softmax).
        image: ``(N, C, H, W)`` — the zero-centred image :math:`I` being optimized.
        l2: :math:`\lambda_2 \ge 0`, one number or one per image ``(N,)``.
        tv: :math:`\lambda_{TV} \ge 0`, one number or one per image ``(N,)``.

    Returns:
        ``(N,)`` objective values.

    Example:
        >>> ascent_objective(torch.tensor([3.0]), torch.ones(1, 1, 2, 2), l2=0.5)
        tensor([1.])
    """
    score = check_tensor(score, "score", ndim=1)
    image = check_tensor(image, "image", ndim=4)
    n = image.shape[0]
    if score.shape[0] != n:
        raise ValueError(f"score must have one value per image ({n}), got shape {tuple(score.shape)}")
    l2 = _weights(l2, "l2", n)
    tv = _weights(tv, "tv", n)
    out = score
    if isinstance(l2, torch.Tensor) or l2:
        out = out - _on(l2, score) * image.pow(2).flatten(1).sum(1)
    if isinstance(tv, torch.Tensor) or tv:
        out = out - _on(tv, score) * total_variation(image)
    return out


def _on(weight, like: torch.Tensor):
    return weight.to(device=like.device, dtype=like.dtype) if isinstance(weight, torch.Tensor) else weight


@dataclass
class AscentResult:
    """What :func:`activation_maximization` returns (one entry per target).

    Attributes:
        images: ``(T, 3, H, W)`` in ``[0, 1]`` — the optimized inputs :math:`I^\\ast + 0.5`.
        activation: ``(T,)`` — the target's score :math:`S` on the final images (no jitter).
        start_activation: ``(T,)`` — the score on the starting images.
        history: ``(steps, T)`` — the score at every step (on the jittered input the step used).
        tv: ``(T,)`` — :func:`total_variation` of the final images, a smoothness measure.
        targets: ``(T,)`` — the channels or classes.
        start_images: ``(T, 3, H, W)`` — the starting images.
    """

    images: torch.Tensor
    activation: torch.Tensor
    start_activation: torch.Tensor
    history: torch.Tensor
    tv: torch.Tensor
    targets: torch.Tensor
    start_images: torch.Tensor


def activation_maximization(
    model: nn.Module,
    targets,
    steps: int = 100,
    lr: float = 0.01,
    *,
    l2: float | Sequence[float] = 0.0,
    tv: float | Sequence[float] = 0.0,
    jitter: int = 0,
    seed: int | torch.Generator = 0,
    target_layer: Layer | None = None,
    position: tuple[int, int] | None = None,
    image_size: Size = 64,
    init: torch.Tensor | None = None,
    optimizer: str = "adam",
    progress: bool = False,
) -> AscentResult:
    r"""Synthesize inputs that maximize a unit, a channel or a class score by gradient ascent on the input.

    The variable is the zero-centred image :math:`I` (the model sees :math:`x = I + 0.5`, kept in
    :math:`[0, 1]`), and each step increases

    .. math::

        J(I) = S\big(\tau(I)\big) - \lambda_2 \lVert I \rVert_2^2 - \lambda_{TV} R_{TV}(I),

    where :math:`S` is the target score and :math:`\tau` a random circular shift by up to ``jitter`` pixels in
    each direction (drawn anew every step): a feature that survives being moved cannot be a pixel-level
    artefact (Mordvintsev, Olah & Tyka, 2015). With ``optimizer="sgd"`` a step is plain gradient ascent,
    :math:`I \leftarrow \mathrm{clip}(I + \eta \nabla_I J)`, as in Simonyan et al. (2014); ``"adam"`` scales each
    pixel's step by its gradient history, so every pixel moves by about ``lr`` per step (in units of the
    :math:`[0, 1]` image). Several targets are optimized side by side, one image each.

    A unit right after a ReLU that is off on the starting image has zero gradient and never moves: maximize
    the layer before the ReLU (the pre-activation) instead.

    The target score :math:`S` is

    * ``target_layer=None`` — the score of class :math:`c` (an entry of ``targets``) in the model's output,
      **before** softmax (maximizing a probability can be done by lowering the other classes instead);
    * ``target_layer`` given, ``position=None`` — the mean activation of channel :math:`c` over the feature map;
    * ``target_layer`` and ``position=(row, col)`` given — the single unit at that position of channel :math:`c`.

    The function reads as its parts: the argument checks, the starting images, the score :math:`S`
    (:func:`~course_lib.visualization.probe.target_score`), one ascent step (:func:`_ascent_step`) and the loop.

    Args:
        model: the network (run in eval mode, restored afterwards; its parameters' ``.grad`` is not touched).
        targets: a class or channel index, or a sequence of them (one image per entry).
        steps: number of ascent steps.
        lr: step size :math:`\eta`.
        l2: :math:`\lambda_2`, one number or one per target (to compare strengths side by side).
        tv: :math:`\lambda_{TV}`, one number or one per target.
        jitter: largest shift in pixels (0 = none).
        seed: an int or a ``torch.Generator``; it draws the starting noise and the jitter.
        target_layer: ``None`` (class scores) or a layer of the model (module or dotted name).
        position: ``(row, col)`` of a unit in the layer's feature map, or ``None`` for the channel mean.
        image_size: side (or ``(height, width)``) of the synthesized images.
        init: optional starting images ``(1 or T, 3, H, W)`` in ``[0, 1]``; default mid-grey plus noise of
            standard deviation 0.01, the same image for every target.
        optimizer: ``"adam"`` or ``"sgd"``.
        progress: show a tqdm progress bar.

    Returns:
        An :class:`AscentResult` with the images, the score reached and at the start, the history and the TV.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> res = activation_maximization(net, [0, 1], steps=5, target_layer="1", image_size=16, progress=False)
        >>> res.images.shape
        torch.Size([2, 3, 16, 16])
    """
    # the arguments
    probe = LayerProbe(model, target_layer)
    targets = as_targets(targets)
    steps = check_int(steps, "steps", minimum=1)
    lr = check_positive(lr, "lr")
    l2 = _weights(l2, "l2", len(targets))
    tv = _weights(tv, "tv", len(targets))
    jitter = check_int(jitter, "jitter", minimum=0)
    g = generator(seed)  # checks the seed
    check_choice(optimizer, "optimizer", ("adam", "sgd"))
    if position is not None and target_layer is None:
        raise ValueError("position needs a target_layer: class scores have no spatial position")
    size = check_size(image_size, "image_size")
    device = probe.device
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    n = len(targets)
    # the starting images, then the jitter (both from g, in this order)
    start = _start_images(init, n, size, g).to(dtype)  # the model's precision (float64 models ascend in float64)
    shifts = torch.randint(-jitter, jitter + 1, (steps, 2), generator=g).tolist()
    image = (start.clamp(0, 1) - 0.5).to(device).requires_grad_(True)
    score = target_score(probe, targets, position)
    # the loop
    opt_cls = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    opt = opt_cls([image], lr=lr, maximize=True)
    history = torch.empty(steps, n)
    with model_mode(model), torch.enable_grad():
        with torch.no_grad():
            start_act = score(image + 0.5).detach()
        bar = tqdm(range(steps), disable=not progress, desc="gradient ascent")
        for t in bar:
            history[t] = _ascent_step(image, opt, score, shifts[t], l2, tv).float().cpu()
            if progress and (t % 10 == 0 or t == steps - 1):
                bar.set_postfix(score=f"{float(history[t].mean()):.3g}")
        with torch.no_grad():
            final = image.detach() + 0.5
            final_act = score(final).detach()
    return AscentResult(
        images=final,
        activation=final_act,
        start_activation=start_act,
        history=history,
        tv=total_variation(final),
        targets=targets,
        start_images=start.clamp(0, 1).to(device),
    )


def _start_images(init: torch.Tensor | None, n: int, size: tuple[int, int], g: torch.Generator) -> torch.Tensor:
    """``(n, 3, H, W)`` starting images on the CPU: ``init`` (1 or ``n`` images in ``[0, 1]``, checked), or one
    mid-grey image plus noise of standard deviation 0.01 drawn from ``g``, shared by all targets (so that a
    target's run does not depend on the others)."""
    if init is None:
        return (0.5 + 0.01 * torch.randn(1, 3, *size, generator=g)).expand(n, -1, -1, -1)
    start = check_images(init, "init", value_range=True).detach().cpu()
    if start.shape[0] not in (1, n):
        raise ValueError(f"init must hold 1 or {n} images (one per target), got shape {tuple(start.shape)}")
    return start.expand(n, -1, -1, -1)


def _ascent_step(image: torch.Tensor, opt: torch.optim.Optimizer, score, shift: tuple[int, int], l2, tv
                 ) -> torch.Tensor:
    r"""One step on the zero-centred ``image`` (in place): score the input shifted by ``shift`` (the jitter
    :math:`\tau`), ascend :math:`J` (:func:`ascent_objective`) with ``opt``, clip to :math:`[-0.5, 0.5]`.
    Returns the detached scores :math:`S(\tau(I))` the step used."""
    dy, dx = shift
    x = image + 0.5
    if dy or dx:
        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    s = score(x)
    objective = ascent_objective(s, image, l2=l2, tv=tv)
    (grad,) = torch.autograd.grad(objective.sum(), image)
    image.grad = grad
    opt.step()
    with torch.no_grad():
        image.clamp_(-0.5, 0.5)
    return s.detach()
