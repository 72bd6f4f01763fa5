r"""The machinery every saliency explainer shares.

An explainer is called as ``maps = explainer(images, targets=None)``, or as
``explainer.explain(images, targets=None)`` for an :class:`Explanation`: the maps together with the targets,
the scores and whatever else produced them (nothing is kept on the explainer between calls). This module owns
everything around the method itself: argument checks (``seed`` and ``progress`` included), the model's state
(eval mode during the call, parameters that do not require gradients, hooks), the choice of target classes,
and the post-processing (:func:`~course_lib.saliency.upsample_maps` to the input size and
:func:`~course_lib.saliency.normalize_maps` per image). A method only says how it computes its raw,
non-negative maps.

Two private base classes:

* :class:`_Explainer` — any method. Subclasses implement :meth:`_Explainer._explain`, which returns an
  :class:`Explanation` (or a subclass with the method's own fields) holding the raw maps.
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
  Augmented Grad-CAM): override :meth:`_explain` and call :meth:`_ActivationMapExplainer._layer_maps` (one
  pass, raw maps at the layer's resolution) as often as needed; the raw maps may have any size, the
  base class resizes them.
* **Not built on feature maps** — RISE, Perception Visualization: subclass :class:`_Explainer`, implement
  ``_explain(images, targets)`` and use :meth:`_Explainer._predict` / :meth:`_Explainer._resolve_targets`
  for the forward pass.

Pass ``seed`` (``int | torch.Generator``) and ``progress`` to the base constructor: it checks them once and
keeps them as ``self.seed`` / ``self.progress`` (draw with ``course_lib._checks.generator(self.seed)``).

Inside ``_explain`` and ``_weights`` the model is already in eval mode, and :meth:`_Explainer.__call__`
restores every module's mode afterwards, even after an exception; use ``torch.autograd.grad`` (never
``.backward()``) so that the parameters' ``.grad`` stay as they were, and read layers with
:class:`course_lib._state.capture` (its hook is removed on leaving the block). Validate the other constructor
arguments with :mod:`course_lib._checks` and keep every tensor on the images' device. A new method is one file in
this package plus its name in ``__init__.py``'s ``__all__``: the shared contract tests (shape, range, hooks,
modes, bad input) are parametrized over ``course_lib.saliency.__all__``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from .._checks import (
    check_bool,
    check_images,
    check_module,
    check_same_device,
    check_seed_or_generator,
    check_targets,
    layer_name,
    resolve_layer,
)
from .._state import capture, model_mode
from .._types import Layer, Targets
from .maps import normalize_maps, upsample_maps

__all__ = ["Explanation"]


@dataclass(frozen=True)
class Explanation:
    r"""What :meth:`explain` returns: the maps together with what produced them (tensors on the images' device).

    Attributes:
        maps: ``(N, H, W)`` the saliency maps, post-processed as the call asked (``(N, h, w)`` with
            ``upsample=False``; raw non-negative values with ``normalize=False``); ``explainer(images)`` returns
            exactly these.
        targets: ``(N,)`` long, the classes :math:`c` explained (the arg-max classes when none were given).
        scores: ``(N, num_classes)`` the model's scores (logits) of the images, detached.
        activations: ``(N, K, h, w)`` the target layer's output :math:`A` for the images, when the explainer
            reads it in one pass of the images themselves (the CAM family, Smooth Grad-CAM++ averaging
            derivatives); ``None`` otherwise.

    Example:
        >>> from course_lib.models import SmallCNN
        >>> from course_lib.saliency import GradCAM
        >>> out = GradCAM(SmallCNN(num_classes=5, width=8).eval(), "features").explain(torch.rand(2, 3, 32, 32))
        >>> out.maps.shape, out.targets.shape, out.scores.shape, out.activations.shape
        (torch.Size([2, 32, 32]), torch.Size([2]), torch.Size([2, 5]), torch.Size([2, 16, 8, 8]))
    """

    maps: torch.Tensor
    targets: torch.Tensor
    scores: torch.Tensor
    activations: torch.Tensor | None = None

    @property
    def predictions(self) -> torch.Tensor:
        """``(N,)`` the model's arg-max classes, ``scores.argmax(1)``."""
        return self.scores.argmax(1)


def _first_conv_channels(model: nn.Module) -> int | None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return None


class _Explainer:
    """Base class of every saliency method (see the module docstring for how to subclass it).

    Args:
        model: a classifier mapping ``(N, C, H, W)`` images to ``(N, num_classes)`` scores (logits).
        seed: for a method that draws random numbers: an int (the same draws at every call) or a
            ``torch.Generator`` (new draws at each call); kept, checked, as :attr:`seed`. ``None``: no randomness.
        progress: show a progress bar over the method's passes (kept, checked, as :attr:`progress`).
    """

    def __init__(self, model: nn.Module, *, seed: int | torch.Generator | None = None,
                 progress: bool = False) -> None:
        self.model = check_module(model, "model")
        self._in_channels = _first_conv_channels(model)
        self.progress = check_bool(progress, "progress")
        if seed is not None:
            self.seed = check_seed_or_generator(seed, "seed")

    # ------------------------------------------------------------------ public call
    def __call__(
        self, images: torch.Tensor, targets: Targets = None, *, upsample: bool = True, normalize: bool = True
    ) -> torch.Tensor:
        """Saliency maps of ``images`` for ``targets``: ``explain(images, targets, ...).maps``.

        Args:
            images: ``(N, C, H, W)`` float tensor on the model's device.
            targets: ``None`` (each image's arg-max class), an int (one class for all) or an ``(N,)`` tensor.
            upsample: resize the maps bilinearly to ``(H, W)``; ``False`` keeps the method's own resolution.
            normalize: min-max normalize each map to ``[0, 1]``; ``False`` keeps the raw non-negative values.

        Returns:
            ``(N, H, W)`` maps (``(N, h, w)`` with ``upsample=False``) on the images' device.
        """
        return self.explain(images, targets, upsample=upsample, normalize=normalize).maps

    def explain(
        self, images: torch.Tensor, targets: Targets = None, *, upsample: bool = True, normalize: bool = True
    ) -> Explanation:
        """The saliency maps of ``images`` together with what produced them (an :class:`Explanation`, or the
        method's subclass of it).

        Arguments as for the call; ``explain(...).maps`` is what ``explainer(...)`` returns.
        """
        images = self._check_images(images)
        check_targets(targets, images.shape[0], None, images.device)  # type/shape errors before any work
        with model_mode(self.model):
            raw = self._explain(images, targets)
        maps = self._postprocess(raw.maps, tuple(images.shape[-2:]), upsample=upsample, normalize=normalize)
        return dataclasses.replace(raw, maps=maps)

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
    def _explain(self, images: torch.Tensor, targets) -> Explanation:
        """Return an :class:`Explanation` whose ``maps`` are the raw non-negative ``(N, h, w)`` maps (the base
        class post-processes them). ``targets`` is what the caller passed (see ``_resolve_targets``)."""
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

    def __init__(self, model: nn.Module, target_layer: Layer, *, seed: int | torch.Generator | None = None,
                 progress: bool = False) -> None:
        super().__init__(model, seed=seed, progress=progress)
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

    def _explain(self, images: torch.Tensor, targets) -> Explanation:
        maps, activations, t, scores = self._layer_pass(images, targets)
        return Explanation(maps=maps, targets=t, scores=scores, activations=activations)

    def _layer_maps(self, images: torch.Tensor, targets) -> torch.Tensor:
        """One forward (and, if needed, backward) pass: raw ``ReLU(sum_k w_k A^k)`` at the layer's resolution."""
        return self._layer_pass(images, targets)[0]

    def _layer_pass(self, images: torch.Tensor, targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                  torch.Tensor]:
        """One pass of :meth:`_layer_maps` that also returns what it saw: ``(maps, A, targets, scores)``.

        ``maps`` are the raw ``(N, h, w)`` maps, ``A`` the ``(N, K, h, w)`` activations (detached), ``targets``
        the ``(N,)`` classes explained and ``scores`` the model's detached ``(N, num_classes)`` output.
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
