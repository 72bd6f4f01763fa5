r"""Guided Backpropagation and Guided Grad-CAM: pixel-resolution maps from a modified backward pass.

Both start from the gradient of the class score with respect to the *input pixels*. Guided Backpropagation
changes how the gradient passes back through every rectifier (``nn.ReLU`` and ``nn.ReLU6`` modules of the
model): only positive gradients pass, and only where the rectifier's input was positive. Guided Grad-CAM
multiplies that fine-grained map by the upsampled Grad-CAM map of a layer, to make it class-discriminative.

A shared private base, :class:`_InputGradientExplainer`, owns the backward pass to the input and the hooks
that modify the rectifiers (registered for the pass and removed in a ``finally`` block); a method says only
whether it is guided and what it multiplies the gradient by.
"""

from __future__ import annotations

import torch
from torch import nn

from .._types import Layer
from ._base import Explanation, _Explainer
from .cam import GradCAM

__all__ = ["GuidedBackprop", "GuidedGradCAM"]

#: the rectifier modules whose backward pass Guided Backpropagation modifies
RECTIFIERS = (nn.ReLU, nn.ReLU6)


class _InputGradientExplainer(_Explainer):
    r"""Base of the maps read from :math:`G = \partial y^c / \partial x`, the gradient of the class score
    with respect to the image, reduced over colour channels to :math:`M_{ij} = \max_{ch} |G_{ch,ij}|`.

    Subclasses set ``guided`` (modify the rectifiers' backward pass) and may override :meth:`_scale` (a
    per-pixel factor ``(N, H, W)`` the gradient is multiplied by, before the reduction).
    """

    #: whether the rectifiers pass only positive gradients backwards (Springenberg et al.)
    guided: bool = False

    def _input_gradients(self, images: torch.Tensor, targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(dy^c/dx, targets, scores)``: one forward and one backward pass to the input, rectifiers modified if guided."""
        handles = []

        def keep_positive(module, inputs, output):
            # the rectifier's own backward multiplies by 1[input > 0]; this hook first clamps the incoming
            # gradient at zero, so that what passes is 1[input > 0] * ReLU(gradient)
            if output.requires_grad:
                output.register_hook(lambda grad: grad.clamp_min(0))

        x = images.detach().clone().requires_grad_(True)
        try:
            if self.guided:
                handles = [m.register_forward_hook(keep_positive) for m in self.model.modules()
                           if isinstance(m, RECTIFIERS)]
            with torch.enable_grad():
                scores = self._predict(x)
                t = self._resolve_targets(targets, scores)
                (gradients,) = torch.autograd.grad(scores.gather(1, t[:, None]).sum(), x)
        finally:
            for handle in handles:
                handle.remove()
        return gradients, t, scores.detach()

    def _scale(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
        """A per-pixel factor ``(N, H, W)`` applied to the gradient (``None``: none)."""
        return None

    def _explain(self, images: torch.Tensor, targets) -> Explanation:
        gradients, t, scores = self._input_gradients(images, targets)
        scale = self._scale(images, t)
        if scale is not None:
            gradients = gradients * scale[:, None]
        return Explanation(maps=gradients.abs().amax(dim=1), targets=t, scores=scores)


class GuidedBackprop(_InputGradientExplainer):
    r"""Guided Backpropagation (Springenberg, Dosovitskiy, Brox and Riedmiller, *Striving for Simplicity: The
    All Convolutional Net*, ICLR workshop 2015).

    The gradient of the class score :math:`y^c` (before the softmax) with respect to the image, computed with a
    modified backward pass through every rectifier :math:`a = \mathrm{ReLU}(z)`: with :math:`R` the gradient
    arriving at :math:`a`, ordinary backpropagation passes :math:`\mathbb{1}[z > 0]\, R`, the *deconvnet*
    :math:`\mathrm{ReLU}(R)`, and guided backpropagation both conditions at once,

    .. math::

        \frac{\partial y^c}{\partial z} \leftarrow \mathbb{1}[z > 0]\; \mathrm{ReLU}(R), \qquad
        M_{ij} = \max_{ch} \Big|\frac{\partial y^c}{\partial x_{ch,ij}}\Big|_{\text{guided}}.

    Every ``nn.ReLU`` and ``nn.ReLU6`` *module* of the model is modified (for ReLU6 the backward pass also stops
    above 6, as its own derivative does); a rectifier written as a function call (``F.relu``) is not. The map
    has the image's resolution and is not class-discriminative in practice; Adebayo et al. (NeurIPS 2018)
    found that it barely changes when the network's weights are randomized (chapter 9).

    Args:
        model: the classifier (logits).

    Example:
        >>> from course_lib.models import SmallCNN
        >>> model = SmallCNN(num_classes=5, width=8).eval()
        >>> GuidedBackprop(model)(torch.rand(2, 3, 32, 32), targets=1).shape
        torch.Size([2, 32, 32])
    """

    guided = True


class GuidedGradCAM(GuidedBackprop):
    r"""Guided Grad-CAM (Selvaraju et al., *Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization*, ICCV 2017, section 3.2).

    The guided-backpropagation gradient multiplied, pixel by pixel, by the Grad-CAM map of ``target_layer``
    upsampled bilinearly to the image (:class:`~course_lib.saliency.GradCAM`, raw, before normalization):

    .. math::

        M_{ij} = \max_{ch} \Big|\frac{\partial y^c}{\partial x_{ch,ij}}\Big|_{\text{guided}}
        \cdot \mathrm{up}\big(L^c_{\text{Grad-CAM}}\big)_{ij}.

    Grad-CAM supplies the class discrimination, guided backpropagation the fine detail.

    Args:
        model: the classifier (logits).
        target_layer: the layer of the Grad-CAM factor (a module of the model or its dotted name).

    Example:
        >>> from course_lib.models import SmallCNN
        >>> model = SmallCNN(num_classes=5, width=8).eval()
        >>> GuidedGradCAM(model, "features")(torch.rand(2, 3, 32, 32), targets=1).shape
        torch.Size([2, 32, 32])
    """

    def __init__(self, model: nn.Module, target_layer: Layer) -> None:
        super().__init__(model)
        self.gradcam = GradCAM(model, target_layer)
        self.target_layer, self.layer_name = self.gradcam.target_layer, self.gradcam.layer_name

    def _scale(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.gradcam.explain(images, targets, upsample=True, normalize=False).maps

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, target_layer={self.layer_name!r})"
