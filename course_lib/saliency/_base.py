r"""The machinery every saliency explainer shares.

An explainer is called as ``maps = explainer(images, targets=None)``. This module owns everything around the
method itself: argument checks, the model's state (eval mode during the call, parameters that do not require
gradients, hooks), the choice of target classes, and the post-processing (bilinear upsampling to the input
size and per-image min-max normalization). A method only says how it computes its raw, non-negative maps.

Two private base classes:

* :class:`_Explainer` — any method. Subclasses implement :meth:`_Explainer._raw_maps`.
* :class:`_ActivationMapExplainer` — the CAM family: a map is a weighted sum of the feature maps
  :math:`A^k` of one *target layer*, followed by a ReLU,

  .. math::

      L^c = \mathrm{ReLU}\Big(\sum_k w_k^c A^k\Big),

  and subclasses only say how the weights :math:`w_k^c` are obtained (:meth:`_ActivationMapExplainer._weights`).

How to add a method
-------------------
A method that weighs the feature maps of a layer differently is a few lines::

    class MyCAM(_ActivationMapExplainer):
        uses_gradients = True          # False: no backward pass at all (CAM)

        def _weights(self, activations, gradients, targets):
            # activations, gradients: (N, K, h, w); targets: (N,) long.  Return (N, K).
            return gradients.amax(dim=(2, 3))

A method that needs more than one forward pass (averaging over noisy or augmented copies, say) overrides
:meth:`_raw_maps` and calls :meth:`_ActivationMapExplainer._layer_maps` (one pass, raw maps at the layer's
resolution) as often as it needs; ``_raw_maps`` may return maps of any size, the base class resizes them.
A method that is not built on feature maps (RISE, perception visualization) subclasses :class:`_Explainer`,
implements ``_raw_maps(images, targets)`` and uses :meth:`_Explainer._predict` / :meth:`_Explainer._resolve_targets`
for the forward pass. Inside ``_raw_maps`` the model is already in eval mode, and :meth:`_Explainer.__call__`
restores every module's mode afterwards, even after an exception; use ``torch.autograd.grad`` (never
``.backward()``) so that the parameters' ``.grad`` stay as they were, and remove any hook in a ``finally``.
Validate constructor arguments with :mod:`course_lib._checks` and keep every tensor on the images' device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_images, check_same_device, check_targets, resolve_layer
from ..models import model_mode

__all__ = ["normalize_maps", "upsample_maps"]


def upsample_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``(N, h, w)`` maps to ``size`` with bilinear interpolation (``align_corners=False``)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    r"""Per-map min-max normalization to :math:`[0, 1]`: :math:`(L - \min L) / (\max L - \min L)`.

    A map whose range is zero (or below float round-off relative to its magnitude) becomes all zeros, never NaN.

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


def _first_conv_channels(model: nn.Module) -> int | None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return None


class _Explainer:
    """Base class of every saliency method (see the module docstring for how to subclass it).

    Args:
        model: a classifier mapping ``(N, C, H, W)`` images to ``(N, num_classes)`` scores (logits).
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self._in_channels = _first_conv_channels(model)

    # ------------------------------------------------------------------ public call
    def __call__(
        self, images: torch.Tensor, targets=None, *, upsample: bool = True, normalize: bool = True
    ) -> torch.Tensor:
        """Saliency maps of ``images`` for ``targets``.

        Args:
            images: ``(N, C, H, W)`` float tensor on the model's device.
            targets: ``None`` (each image's arg-max class), an int (one class for all) or an ``(N,)`` tensor.
            upsample: resize the maps bilinearly to ``(H, W)``; ``False`` keeps the method's own resolution.
            normalize: min-max normalize each map to ``[0, 1]``; ``False`` keeps the raw non-negative values.

        Returns:
            ``(N, H, W)`` maps (``(N, h, w)`` with ``upsample=False``) on the images' device.
        """
        images = self._check_images(images)
        check_targets(targets, images.shape[0], None, images.device)  # type/shape errors before any work
        with model_mode(self.model):
            maps = self._raw_maps(images, targets)
        maps = maps.detach()
        if upsample:
            maps = upsample_maps(maps, tuple(images.shape[-2:]))
        if normalize:
            maps = normalize_maps(maps)
        return maps

    # ------------------------------------------------------------------ for subclasses
    def _raw_maps(self, images: torch.Tensor, targets) -> torch.Tensor:
        """Return non-negative ``(N, h, w)`` maps. ``targets`` is what the caller passed (see ``_resolve_targets``)."""
        raise NotImplementedError

    def _predict(self, images: torch.Tensor) -> torch.Tensor:
        """One forward pass; checks that the model returns ``(N, num_classes)`` scores."""
        out = self.model(images)
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != images.shape[0]:
            got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"model must return (N, num_classes) scores for N={images.shape[0]} images, got {got}"
            )
        return out

    @staticmethod
    def _resolve_targets(targets, scores: torch.Tensor) -> torch.Tensor:
        """``(N,)`` long targets: the arg-max of ``scores`` when ``targets`` is None, else checked against them."""
        if targets is None:
            return scores.detach().argmax(dim=1)
        return check_targets(targets, scores.shape[0], scores.shape[1], scores.device)

    def _check_images(self, images) -> torch.Tensor:
        images = check_images(images, "images", channels=None)
        channels = self._in_channels
        if channels is not None and images.shape[1] != channels:
            raise ValueError(
                f"images must have {channels} channels (the model's first convolution takes {channels}), "
                f"got shape {tuple(images.shape)}"
            )
        check_same_device(self.model, images)
        return images

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__})"


class _ActivationMapExplainer(_Explainer):
    r"""Base class of the CAM family: :math:`L^c = \mathrm{ReLU}(\sum_k w_k^c A^k)` on one target layer.

    Args:
        model: the classifier.
        target_layer: a module of ``model`` or its dotted name (``"features"``, ``"layer4"``); its output must
            be an ``(N, K, h, w)`` feature map. If the module runs several times in one forward pass, the
            last call is used.
    """

    #: whether :meth:`_weights` needs :math:`\partial y^c / \partial A^k` (one backward pass to the layer)
    uses_gradients: bool = True

    def __init__(self, model: nn.Module, target_layer) -> None:
        super().__init__(model)
        self.target_layer = resolve_layer(model, target_layer, "target_layer")
        self.layer_name = next(n for n, m in model.named_modules() if m is self.target_layer) or "<model>"

    def _weights(self, activations: torch.Tensor, gradients: torch.Tensor | None, targets: torch.Tensor) -> torch.Tensor:
        """Channel weights ``(N, K)`` from activations and gradients ``(N, K, h, w)`` and targets ``(N,)``."""
        raise NotImplementedError

    def _raw_maps(self, images: torch.Tensor, targets) -> torch.Tensor:
        return self._layer_maps(images, targets)

    def _layer_maps(self, images: torch.Tensor, targets) -> torch.Tensor:
        """One forward (and, if needed, backward) pass: raw ``ReLU(sum_k w_k A^k)`` at the layer's resolution."""
        activations, gradients, t = self._activations_and_gradients(images, targets)
        weights = self._weights(activations, gradients, t)
        return torch.relu(torch.einsum("nk,nkhw->nhw", weights, activations))

    def _activations_and_gradients(self, images: torch.Tensor, targets, return_scores: bool = False):
        """Run the model once, capturing the target layer's output ``A`` and, if needed, ``dy^c/dA``.

        Returns ``(A, dy^c/dA or None, targets)``, and the scores ``(N, num_classes)`` (detached) last when
        ``return_scores``.

        The forward pass runs under ``torch.no_grad()`` up to the target layer, so nothing before it is recorded.
        The hook replaces the layer's output by a fresh leaf tensor that requires grad, switches gradient
        recording on for the rest of the forward pass, and hands the next layer a copy of the leaf (so that a
        following in-place ReLU cannot modify the captured values). ``torch.autograd.grad`` then runs the
        backward pass through the layers after the target layer only: never to the input or the weights, and
        the parameters' ``.grad`` are not touched.
        """
        captured: list[torch.Tensor] = []

        def hook(module, inputs, output):
            if not isinstance(output, torch.Tensor) or output.ndim != 4:
                got = f"shape {tuple(output.shape)}" if isinstance(output, torch.Tensor) else type(output).__name__
                raise ValueError(
                    f"target_layer {self.layer_name!r} must output an (N, K, h, w) feature map, got {got}"
                )
            leaf = output.detach()
            if self.uses_gradients:
                torch.set_grad_enabled(True)  # undone when the enclosing no_grad block exits
                leaf.requires_grad_(True)
            captured.append(leaf)
            return leaf.clone()

        handle = self.target_layer.register_forward_hook(hook)
        try:
            with torch.no_grad():
                scores = self._predict(images)
        finally:
            handle.remove()
        if not captured:
            raise ValueError(f"target_layer {self.layer_name!r} was not called during the model's forward pass")
        activations = captured[-1]
        t = self._resolve_targets(targets, scores)
        extra = (scores.detach(),) if return_scores else ()
        if not self.uses_gradients:
            return (activations, None, t, *extra)
        with torch.enable_grad():  # also when the caller is inside torch.no_grad()
            score = scores.gather(1, t[:, None]).sum()
            gradients = None
            if score.requires_grad:
                (gradients,) = torch.autograd.grad(score, activations, allow_unused=True)
        if gradients is None:
            raise ValueError(f"the model's scores do not depend differentiably on target_layer {self.layer_name!r}")
        return (activations.detach(), gradients, t, *extra)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, target_layer={self.layer_name!r})"
