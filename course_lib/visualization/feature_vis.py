r"""Feature visualization with transformation robustness and a decorrelated Fourier parameterization.

Olah, Mordvintsev & Schubert (*Feature Visualization*, Distill 2017) make class and channel visualizations of
ImageNet networks readable with two ingredients that :func:`~course_lib.visualization.activation_maximization`
does not have:

* **Transformation robustness**: every step scores a randomly transformed copy of the image — shifted,
  scaled and rotated — so only patterns that excite the network wherever, however large and at whatever
  angle they appear survive;
* **a decorrelated parameterization**: the variable is not the pixels but the image's 2-D Fourier spectrum,
  each frequency :math:`f` scaled by :math:`1/\max(|f|, 1/\text{side})` so that a step changes every spatial
  frequency by about the same amount of *visible* contrast (natural images have that :math:`1/f` spectrum),
  and three decorrelated colour channels mapped to RGB by the square root of the colour covariance of natural
  images; a sigmoid keeps the pixels in :math:`[0, 1]`.

:func:`feature_visualization` runs both kinds of ascent with one interface: ``param="pixel"`` is the plain
ascent on pixels (optionally with the :math:`L_2`, total-variation and jitter priors), ``param="fourier"``
with ``robust=True`` the recipe above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .._checks import check_choice, check_int, check_nonnegative, check_positive, generator
from .._state import model_mode
from .ascent import ascent_objective
from .probe import LayerProbe, as_targets, target_score

__all__ = ["COLOR_SQRT_COVARIANCE", "FourierImage", "robust_transform", "feature_visualization", "FeatureVisResult"]

#: Square root of the colour covariance of ImageNet photos (RGB in [0, 1]; the matrix Lucid uses), whose
#: columns are scaled to a largest norm of 1 before use.
COLOR_SQRT_COVARIANCE = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])


class FourierImage(nn.Module):
    r"""Images parameterized by a scaled 2-D Fourier spectrum in decorrelated colour space.

    ``forward()`` returns ``sigmoid(C · irfft2(s ⊙ z))`` of shape ``(N, 3, H, W)`` in ``(0, 1)``, where ``z`` is
    the learnable complex spectrum (initialized with standard deviation ``init_std``), ``s`` the per-frequency
    scale :math:`1/\max(|f|, 1/\max(H, W))` (frequencies in cycles per pixel) and ``C`` the colour matrix
    :data:`COLOR_SQRT_COVARIANCE`, columns normalized to a largest norm of 1.

    Args:
        n: number of images.
        height, width: their size.
        seed: an int or a ``torch.Generator`` drawing the initial spectrum (``None``: torch's global generator).
        init_std: standard deviation of the initial spectrum.

    Example:
        >>> FourierImage(2, 8, 10, seed=0)().shape
        torch.Size([2, 3, 8, 10])
    """

    def __init__(self, n: int, height: int, width: int, seed: int | torch.Generator | None = None,
                 init_std: float = 0.01) -> None:
        super().__init__()
        g = None if seed is None else generator(seed)
        n = check_int(n, "n", minimum=1)
        height = check_int(height, "height", minimum=2)
        width = check_int(width, "width", minimum=2)
        fy = torch.fft.fftfreq(height)[:, None]
        fx = torch.fft.rfftfreq(width)[None, :]
        freq = (fx**2 + fy**2).sqrt()
        self.register_buffer("scale", 1.0 / freq.clamp(min=1.0 / max(height, width)))
        spectrum = init_std * torch.randn(n, 3, height, width // 2 + 1, 2, generator=g)
        self.spectrum = nn.Parameter(spectrum)
        colour = COLOR_SQRT_COVARIANCE / COLOR_SQRT_COVARIANCE.norm(dim=0).max()
        self.register_buffer("colour", colour)
        self.size = (height, width)

    def forward(self) -> torch.Tensor:
        z = torch.view_as_complex(self.spectrum) * self.scale
        decorrelated = torch.fft.irfft2(z, s=self.size, norm="ortho") / 4.0
        rgb = torch.einsum("ij,njhw->nihw", self.colour, decorrelated)
        return torch.sigmoid(rgb)


def robust_transform(x: torch.Tensor, seed: int | torch.Generator, shift: int = 16, scale: float = 0.1,
                     degrees: float = 10.0) -> torch.Tensor:
    """One random shift (up to ``shift`` pixels), scaling (factor in ``[1 - scale, 1 + scale]``) and rotation (up
    to ``degrees``), the same for the whole batch, drawn from ``seed`` (an int, or a ``torch.Generator`` that
    advances); the image is reflected at its borders.

    Example:
        >>> robust_transform(torch.rand(2, 3, 16, 16), seed=0).shape
        torch.Size([2, 3, 16, 16])
    """
    n, _, h, w = x.shape
    t = torch.rand(4, generator=generator(seed))
    dy, dx = ((2 * t[:2] - 1) * shift).tolist()
    s = 1.0 + (2 * float(t[2]) - 1) * scale
    a = math.radians((2 * float(t[3]) - 1) * degrees)
    cos, sin = math.cos(a) / s, math.sin(a) / s
    theta = torch.tensor([[cos, -sin, 2 * dx / w], [sin, cos, 2 * dy / h]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(n, 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


@dataclass
class FeatureVisResult:
    """What :func:`feature_visualization` returns.

    Attributes:
        images: ``(T, 3, H, W)`` in ``[0, 1]``, the final images.
        score: ``(T,)``, the target's score on the final images (untransformed).
        checkpoints: ``{step: (T,) score on the untransformed images after that many steps}``.
        targets: ``(T,)``.
        checkpoint_images: ``{step: (T, 3, H, W)}`` if asked for (``keep_checkpoint_images``), else empty.
    """

    images: torch.Tensor
    score: torch.Tensor
    checkpoints: dict
    targets: torch.Tensor
    checkpoint_images: dict


def feature_visualization(model: nn.Module, targets, steps: int = 256, lr: float = 0.05, *,
                          param: str = "fourier", robust: bool = True, l2: float = 0.0, tv: float = 0.0,
                          jitter: int = 0, objective: str = "logit", target_layer=None, image_size: int = 224,
                          seed: int | torch.Generator = 0,
                          checkpoints=(), keep_checkpoint_images: bool = False,
                          progress: bool = False) -> FeatureVisResult:
    r"""Maximize a class score or a channel's mean activation by Adam on the image's parameters.

    Args:
        model: the network (run in eval mode).
        targets: a class (``target_layer=None``) or channel index, or a sequence of them (one image each).
        steps, lr: Adam steps and step size.
        param: ``"pixel"`` (the zero-centred pixels, clipped to the valid range after each step, starting
            from mid-grey plus noise of standard deviation 0.01) or ``"fourier"`` (:class:`FourierImage`).
        robust: score a random :func:`robust_transform` of the image at every step.
        l2, tv: weights of :math:`\lVert I\rVert_2^2` and of the total variation of the zero-centred image.
        jitter: largest random circular shift in pixels at every step (as in ``activation_maximization``).
        objective: ``"logit"`` (the class score before softmax, or the channel mean) or ``"log_softmax"``
            (class scores only).
        target_layer: ``None`` for class scores, else the layer whose channel mean is maximized.
        image_size: side of the square images.
        seed: an int or a ``torch.Generator``; it draws the starting image and every random transformation.
        checkpoints: steps after which the score of the untransformed images is recorded.
        keep_checkpoint_images: also keep the images at those steps (``checkpoint_images``).
        progress: show a progress bar over the steps.

    Returns:
        A :class:`FeatureVisResult`.
    """
    probe = LayerProbe(model, target_layer)
    targets = as_targets(targets)
    steps = check_int(steps, "steps", minimum=1)
    lr = check_positive(lr, "lr")
    check_choice(param, "param", ("pixel", "fourier"))
    check_choice(objective, "objective", ("logit", "log_softmax"))
    if objective == "log_softmax" and target_layer is not None:
        raise ValueError("objective='log_softmax' needs class scores (target_layer=None)")
    l2, tv = check_nonnegative(l2, "l2"), check_nonnegative(tv, "tv")
    jitter = check_int(jitter, "jitter", minimum=0)
    size = check_int(image_size, "image_size", minimum=8)
    checkpoints = sorted({check_int(c, "checkpoints", minimum=1, maximum=steps) for c in checkpoints})
    g = generator(seed)
    score = target_score(probe, targets, log_softmax=objective == "log_softmax")
    params, image = _start_image(param, len(targets), size, g, probe.device)
    opt = torch.optim.Adam(params, lr=lr, maximize=True)
    recorded, kept = {}, {}
    with model_mode(model), torch.enable_grad():
        bar = tqdm(range(1, steps + 1), desc="feature visualization", disable=not progress, leave=False)
        for t in bar:
            x = image()
            if jitter:
                dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=g).tolist()
                x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            if robust:
                x = robust_transform(x, g)
            j = ascent_objective(score(x), image() - 0.5, l2, tv) if (l2 or tv) else score(x)
            _step(opt, params, j)
            if param == "pixel":
                with torch.no_grad():
                    params[0].clamp_(-0.5, 0.5)
            if t in checkpoints:
                with torch.no_grad():
                    now = image().detach()
                    recorded[t] = score(now).cpu()
                    if keep_checkpoint_images:
                        kept[t] = now.clone()
        with torch.no_grad():
            final = image().detach()
            final_score = score(final).cpu()
    return FeatureVisResult(images=final, score=final_score, checkpoints=recorded, targets=targets,
                            checkpoint_images=kept)


def _start_image(param: str, n: int, size: int, g: torch.Generator, device):
    """The variables and the image they make: a :class:`FourierImage`, or zero-centred pixels (mid-grey plus
    noise of standard deviation 0.01, one draw shared by the ``n`` images)."""
    if param == "fourier":
        fourier = FourierImage(n, size, size, seed=g).to(device)
        return list(fourier.parameters()), fourier
    pixels = (0.01 * torch.randn(1, 3, size, size, generator=g)).expand(n, -1, -1, -1).clone()
    pixels = pixels.to(device).requires_grad_(True)
    return [pixels], lambda: pixels + 0.5


def _step(opt: torch.optim.Optimizer, params: list[torch.Tensor], objective: torch.Tensor) -> None:
    """One Adam step up ``objective`` (per image) on ``params``; the gradient reaches the image's variables
    only (``torch.autograd.grad``), so the model's parameters keep their ``.grad``."""
    grads = torch.autograd.grad(objective.sum(), params)
    for p, grad in zip(params, grads, strict=True):
        p.grad = grad
    opt.step()
