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
Which method to write depends on what the new method needs:

* **Weights from one forward (and backward) pass** — Grad-CAM, Grad-CAM++, LayerCAM: subclass
  :class:`_ActivationMapExplainer` and write only :meth:`_ActivationMapExplainer._weights`::

      class MyCAM(_ActivationMapExplainer):
          uses_gradients = True          # False: no backward pass at all (CAM, Score-CAM)

          def _weights(self, activations, gradients, targets, images):
              # activations, gradients: (N, K, h, w); targets: (N,) long; images: (N, C, H, W).
              return gradients.amax(dim=(2, 3))

  The weights are either **channel weights** ``(N, K)`` (one :math:`w_k^c` per feature map, as in Grad-CAM) or
  **per-position weights** ``(N, K, h, w)`` (:math:`w_{k,ij}^c`, as in LayerCAM); the map is
  :math:`\mathrm{ReLU}(\sum_k w_k^c A^k)` or :math:`\mathrm{ReLU}(\sum_k w_{k,ij}^c A^k_{ij})`.
* **Weights from more forward passes of the model** — Score-CAM (one pass per masked input): still
  ``_weights``; it receives the checked images, and the model is ``self.model`` (already in eval mode).
  Set ``uses_gradients = False`` when no gradient is needed, run the passes with :meth:`_Explainer._predict`
  under ``torch.no_grad()``.
* **Several passes whose maps are combined** — averaging over noisy or augmented copies (Smooth Grad-CAM++,
  Augmented Grad-CAM): override :meth:`_raw_maps` and call :meth:`_ActivationMapExplainer._layer_maps` (one
  pass, raw maps at the layer's resolution) as often as needed; ``_raw_maps`` may return maps of any size, the
  base class resizes them.
* **Not built on feature maps** — RISE, Perception Visualization: subclass :class:`_Explainer`, implement
  ``_raw_maps(images, targets)`` and use :meth:`_Explainer._predict` / :meth:`_Explainer._resolve_targets`
  for the forward pass.

Inside ``_raw_maps`` and ``_weights`` the model is already in eval mode, and :meth:`_Explainer.__call__`
restores every module's mode afterwards, even after an exception; use ``torch.autograd.grad`` (never
``.backward()``) so that the parameters' ``.grad`` stay as they were, and read layers with
:class:`course_lib._state.capture` (its hook is removed on leaving the block). Validate constructor arguments
with :mod:`course_lib._checks` and keep every tensor on the images' device. A new method is one file in
this package plus its name in ``__init__.py``'s ``__all__``: the shared contract tests (shape, range, hooks,
modes, bad input) are parametrized over ``course_lib.saliency.__all__``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_images, check_module, check_same_device, check_targets, layer_name, resolve_layer
from .._state import capture, model_mode
from .._types import Layer, Targets

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
        self.model = check_module(model, "model")
        self._in_channels = _first_conv_channels(model)

    # ------------------------------------------------------------------ public call
    def __call__(
        self, images: torch.Tensor, targets: Targets = None, *, upsample: bool = True, normalize: bool = True
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
        return self._maps(self._check_images(images), targets, upsample=upsample, normalize=normalize)

    def _maps(self, images: torch.Tensor, targets, *, upsample: bool = True, normalize: bool = True) -> torch.Tensor:
        """:meth:`__call__` on images already checked by :meth:`_check_images` (for explainers that hold others)."""
        check_targets(targets, images.shape[0], None, images.device)  # type/shape errors before any work
        with model_mode(self.model):
            maps = self._raw_maps(images, targets)
        return self._postprocess(maps, tuple(images.shape[-2:]), upsample=upsample, normalize=normalize)

    @staticmethod
    def _postprocess(maps: torch.Tensor, size: tuple[int, int], *, upsample: bool = True,
                     normalize: bool = True) -> torch.Tensor:
        """Detach, resize to ``size`` (``upsample``) and min-max normalize (``normalize``) raw maps."""
        maps = maps.detach()
        if upsample:
            maps = upsample_maps(maps, size)
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

    def __init__(self, model: nn.Module, target_layer: Layer) -> None:
        super().__init__(model)
        self.target_layer = resolve_layer(model, target_layer, "target_layer")
        self.layer_name = layer_name(model, self.target_layer)

    def _weights(self, activations: torch.Tensor, gradients: torch.Tensor | None, targets: torch.Tensor,
                 images: torch.Tensor) -> torch.Tensor:
        """The weights of the feature maps: channel weights ``(N, K)`` or per-position weights ``(N, K, h, w)``.

        Args:
            activations: ``(N, K, h, w)`` the target layer's output :math:`A` (detached).
            gradients: ``(N, K, h, w)`` :math:`\\partial y^c / \\partial A` (``None`` when ``uses_gradients``
                is false).
            targets: ``(N,)`` the classes :math:`c` explained.
            images: ``(N, C, H, W)`` the checked input images (the model is ``self.model``, in eval mode).
        """
        raise NotImplementedError

    def _raw_maps(self, images: torch.Tensor, targets) -> torch.Tensor:
        return self._layer_maps(images, targets)

    def _layer_maps(self, images: torch.Tensor, targets) -> torch.Tensor:
        """One forward (and, if needed, backward) pass: raw ``ReLU(sum_k w_k A^k)`` at the layer's resolution."""
        return self._layer_pass(images, targets)[0]

    def _layer_pass(self, images: torch.Tensor, targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                  torch.Tensor]:
        """One pass of :meth:`_layer_maps` that also returns what it saw: ``(maps, A, targets, scores)``.

        ``maps`` are the raw ``(N, h, w)`` maps, ``A`` the ``(N, K, h, w)`` activations (detached), ``targets``
        the ``(N,)`` classes explained and ``scores`` the model's detached ``(N, num_classes)`` output
        (Perception Visualization decodes ``A`` and reads the predictions from ``scores``: one forward pass).
        """
        activations, gradients, t, scores = self._activations_and_gradients(images, targets, return_scores=True)
        weights = self._weights(activations, gradients, t, images)
        return self._combine(weights, activations), activations, t, scores

    def _combine(self, weights: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
        """:math:`\\mathrm{ReLU}(\\sum_k w_k A^k)` for ``(N, K)`` weights, per position for ``(N, K, h, w)``."""
        if weights.shape == activations.shape[:2]:
            return torch.relu(torch.einsum("nk,nkhw->nhw", weights, activations))
        if weights.shape == activations.shape:
            return torch.relu((weights * activations).sum(dim=1))
        raise ValueError(
            f"{type(self).__name__}._weights must return (N, K) = {tuple(activations.shape[:2])} or (N, K, h, w) = "
            f"{tuple(activations.shape)} weights, got shape {tuple(weights.shape)}"
        )

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
        what = f"target_layer {self.layer_name!r}"

        def leaf_and_copy(output):
            if not isinstance(output, torch.Tensor) or output.ndim != 4:
                got = f"shape {tuple(output.shape)}" if isinstance(output, torch.Tensor) else type(output).__name__
                raise ValueError(f"{what} must output an (N, K, h, w) feature map, got {got}")
            leaf = output.detach()
            if self.uses_gradients:
                torch.set_grad_enabled(True)  # undone when the enclosing no_grad block exits
                leaf.requires_grad_(True)
            return leaf, leaf.clone()

        with capture(self.target_layer, what, on_output=leaf_and_copy) as hooked, torch.no_grad():
            scores = self._predict(images)
        activations = hooked.last()
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
            raise ValueError(f"the model's scores do not depend differentiably on {what}")
        return (activations.detach(), gradients, t, *extra)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, target_layer={self.layer_name!r})"
