r"""Class activation maps: CAM, Grad-CAM, Grad-CAM++ and Smooth Grad-CAM++.

Every method here weighs the feature maps :math:`A^k \in \mathbb{R}^{h \times w}` of one target layer and
keeps the positive part,

.. math::

    L^c = \mathrm{ReLU}\Big(\sum_k w_k^c A^k\Big),

and differs only in the weights :math:`w_k^c` of class :math:`c`. The maps are then upsampled bilinearly to
the input size and min-max normalized per image (see :class:`course_lib.saliency._base._Explainer`).
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from .._checks import (
    check_choice,
    check_int,
    check_nonnegative,
    check_positive,
    generator,
    resolve_layer,
)
from .._state import allow_out_of_range
from .._types import Layer
from ._base import Explanation, _ActivationMapExplainer

__all__ = ["CAM", "GradCAM", "GradCAMPlusPlus", "SmoothGradCAMPlusPlus", "gradcam_plus_plus_weights",
           "smooth_gradcam_plus_plus_weights"]


class CAM(_ActivationMapExplainer):
    r"""Class Activation Mapping (Zhou et al., *Learning Deep Features for Discriminative Localization*, CVPR 2016).

    For a network that ends with global average pooling and one linear layer, the class score is
    :math:`y^c = \sum_k w_k^c \frac{1}{Z}\sum_{i,j} A^k_{ij} + b^c`, and exchanging the sums gives the
    contribution of each position; the map is its positive part,

    .. math::

        M^c_{ij} = \mathrm{ReLU}\Big(\sum_k w_k^c A^k_{ij}\Big),

    with :math:`w^c` the row of the linear layer's weight for class :math:`c`. No gradient is computed.

    Args:
        model: the classifier.
        target_layer: the last convolutional feature map (the input of the global pooling), a module or its
            dotted name.
        fc: the linear layer after the pooling; ``None`` takes the model's last ``nn.Linear``.

    Example:
        >>> from course_lib.models import SmallCNN
        >>> model = SmallCNN(num_classes=5, width=8).eval()
        >>> CAM(model, "features")(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 32, 32])
    """

    uses_gradients = False

    def __init__(self, model: nn.Module, target_layer: Layer, fc: nn.Module | str | None = None) -> None:
        super().__init__(model, target_layer)
        if fc is None:
            linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
            if not linear:
                raise ValueError(
                    f"CAM needs a linear layer after global average pooling, but {type(model).__name__} has no "
                    "nn.Linear; use GradCAM for other architectures"
                )
            fc = linear[-1]
        else:
            fc = resolve_layer(model, fc, "fc")
            if not isinstance(fc, nn.Linear):
                raise TypeError(f"fc must be an nn.Linear (the class weights), got {type(fc).__name__}")
        self.fc = fc

    def _weights(self, activations, gradients, targets, images):
        k = activations.shape[1]
        if self.fc.in_features != k:
            raise ValueError(
                f"fc takes {self.fc.in_features} features but target_layer {self.layer_name!r} has {k} feature "
                "maps; CAM needs the linear layer right after global pooling of that layer"
            )
        return self.fc.weight[targets].to(activations.dtype)


class GradCAM(_ActivationMapExplainer):
    r"""Grad-CAM (Selvaraju et al., *Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
    Localization*, ICCV 2017).

    The weight of feature map :math:`k` is the spatial mean of the gradient of the class score
    :math:`y^c` (before the softmax),

    .. math::

        \alpha_k^c = \frac{1}{Z} \sum_{i,j} \frac{\partial y^c}{\partial A^k_{ij}}, \qquad
        L^c_{\text{Grad-CAM}} = \mathrm{ReLU}\Big(\sum_k \alpha_k^c A^k\Big),

    with :math:`Z = h w`. On a network ending with global average pooling and one linear layer,
    :math:`\partial y^c / \partial A^k_{ij} = w^c_k / Z`, so Grad-CAM equals CAM divided by :math:`Z`.
    The backward pass stops at the target layer.

    Example:
        >>> from course_lib.models import SmallCNN
        >>> model = SmallCNN(num_classes=5, width=8).eval()
        >>> GradCAM(model, "features")(torch.rand(2, 3, 32, 32), targets=1, upsample=False).shape
        torch.Size([2, 8, 8])
    """

    def _weights(self, activations, gradients, targets, images):
        return gradients.mean(dim=(2, 3))


def gradcam_plus_plus_weights(activations: torch.Tensor, gradients: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    r"""Grad-CAM++ channel weights ``(N, K)`` from activations and gradients ``(N, K, h, w)``.

    ``eps`` is added to the denominator of :math:`\alpha` (0, the formula below; pytorch-grad-cam adds 1e-7).

    With :math:`g = \partial y^c / \partial A^k_{ij}` and the exponential output :math:`Y^c = \exp(y^c)`,
    the higher derivatives of :math:`Y^c` are powers of :math:`g`, and the paper's eq. 19 becomes

    .. math::

        \alpha^{kc}_{ij} = \frac{g_{ij}^2}{2 g_{ij}^2 + \sum_{a,b} A^k_{ab}\, g_{ij}^3}
        \quad (0 \text{ where } g_{ij} = 0 \text{ or the denominator is } 0), \qquad
        w^c_k = \sum_{i,j} \alpha^{kc}_{ij}\, \mathrm{ReLU}(g_{ij}).

    Example:
        >>> a = torch.ones(1, 1, 1, 2); g = torch.tensor([[[[1.0, -1.0]]]])
        >>> gradcam_plus_plus_weights(a, g)  # alpha = 1/(2 + 2) = 0.25 at the positive gradient
        tensor([[0.2500]])
    """
    g2 = gradients.pow(2)
    g3 = g2 * gradients
    total = activations.sum(dim=(2, 3), keepdim=True)
    denom = 2 * g2 + total * g3
    if eps:
        denom = denom + check_nonnegative(eps, "eps")
    valid = (gradients != 0) & (denom != 0)
    alpha = torch.where(valid, g2 / torch.where(valid, denom, torch.ones_like(denom)), torch.zeros_like(g2))
    return (alpha * torch.relu(gradients)).sum(dim=(2, 3))


class GradCAMPlusPlus(_ActivationMapExplainer):
    r"""Grad-CAM++ (Chattopadhay et al., *Grad-CAM++: Improved Visual Explanations for Deep Convolutional
    Networks*, WACV 2018).

    Weights each position's positive gradient by :math:`\alpha^{kc}_{ij}` (closed form with the exponential
    output, see :func:`gradcam_plus_plus_weights`), so that several instances of a class, each with a
    smaller gradient footprint, all contribute:

    .. math::

        w^c_k = \sum_{i,j} \frac{g_{ij}^2}{2 g_{ij}^2 + \sum_{a,b} A^k_{ab}\, g_{ij}^3}\,\mathrm{ReLU}(g_{ij}),
        \qquad L^c = \mathrm{ReLU}\Big(\sum_k w^c_k A^k\Big).

    Example:
        >>> from course_lib.models import SmallCNN
        >>> model = SmallCNN(num_classes=5, width=8).eval()
        >>> GradCAMPlusPlus(model, "features")(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 32, 32])
    """

    def _weights(self, activations, gradients, targets, images):
        return gradcam_plus_plus_weights(activations, gradients)


def smooth_gradcam_plus_plus_weights(
    activations: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor, d3: torch.Tensor
) -> torch.Tensor:
    r"""Smooth Grad-CAM++ channel weights ``(N, K)`` from activations and averaged derivatives ``(N, K, h, w)``.

    With :math:`\bar D^{(p)}_{ij}` the mean over the noisy copies of the :math:`p`-th derivative of
    :math:`Y^c = \exp(y^c)` with respect to :math:`A^k_{ij}` (Omeiza et al., 2019, eqs. 6–8),

    .. math::

        \alpha^{kc}_{ij} = \frac{\bar D^{(2)}_{ij}}{2 \bar D^{(2)}_{ij} + \sum_{a,b} A^k_{ab}\, \bar D^{(3)}_{ij}}
        \quad (0 \text{ where } \bar D^{(2)}_{ij} = 0 \text{ or the denominator is } 0), \qquad
        w^c_k = \sum_{i,j} \alpha^{kc}_{ij}\, \mathrm{ReLU}\big(\bar D^{(1)}_{ij}\big).

    With one copy and :math:`\bar D^{(p)} = g^p` this is :func:`gradcam_plus_plus_weights`.

    Example:
        >>> a = torch.ones(1, 1, 1, 2); g = torch.tensor([[[[1.0, -1.0]]]])
        >>> smooth_gradcam_plus_plus_weights(a, g, g**2, g**3)
        tensor([[0.2500]])
    """
    total = activations.sum(dim=(2, 3), keepdim=True)
    denom = 2 * d2 + total * d3
    valid = (d2 != 0) & (denom != 0)
    alpha = torch.where(valid, d2 / torch.where(valid, denom, torch.ones_like(denom)), torch.zeros_like(d2))
    return (alpha * torch.relu(d1)).sum(dim=(2, 3))


class SmoothGradCAMPlusPlus(GradCAMPlusPlus):
    r"""Smooth Grad-CAM++ (Omeiza, Speakman, Cintas and Weldemariam, *Smooth Grad-CAM++: An Enhanced Inference
    Level Visualization Technique for Deep Convolutional Neural Network Models*, 2019).

    SmoothGrad's idea (Smilkov et al., 2017) applied to Grad-CAM++: :math:`n` noisy copies
    :math:`x + \varepsilon_s`, :math:`\varepsilon_s \sim \mathcal{N}(0, \sigma^2 I)`, of each image.

    ``average="derivatives"`` (default; the paper's formulation) averages the first, second and third
    derivatives of :math:`Y^c = \exp(y^c)` with respect to the target layer's maps over the copies, then forms
    :math:`\alpha` and :math:`w` from the averages (:func:`smooth_gradcam_plus_plus_weights`) and weighs the
    maps :math:`A^k` of the clean image:

    .. math::

        \bar D^{(p)} = \frac1n \sum_{s=1}^{n} e^{y^c_s}\, g_s^{\,p} \quad (p = 1, 2, 3),
        \qquad g_s = \frac{\partial y^c}{\partial A^k}\Big|_{x + \varepsilon_s}, \qquad
        L^c = \mathrm{ReLU}\Big(\sum_k w^c_k A^k(x)\Big),

    (for a piecewise-linear network the :math:`p`-th derivative of :math:`\exp(y^c)` is
    :math:`e^{y^c} g^p`; the factor :math:`e^{y^c_s}` no longer cancels, as it does for one image, because it
    differs between copies; it is computed relative to the largest :math:`y^c_s` of each image, a common factor
    that only rescales the map). ``average="maps"`` averages the Grad-CAM++ maps of the copies instead,

    .. math::

        L^c = \frac{1}{n} \sum_{s=1}^{n} L^c_{\text{Grad-CAM++}}\big(x + \varepsilon_s\big),

    as SmoothGrad does with saliency maps. The class explained is the same for every copy: the given target,
    or the arg-max class of the clean image. The noise is drawn on the images' device from ``seed`` (the same
    seed gives the same maps on a given device; a CPU and a GPU draw different noise).

    Args:
        model: the classifier.
        target_layer: a module of the model or its dotted name.
        n_samples: number of noisy copies.
        sigma: standard deviation of the Gaussian noise, in the images' units (images in ``[0, 1]``).
        seed: an int (the same numbers at every call) or a ``torch.Generator``.
        average: ``"derivatives"`` (Omeiza et al.) or ``"maps"``.
        progress: show a progress bar over the copies.

    Example:
        >>> from course_lib.models import SmallCNN
        >>> model = SmallCNN(num_classes=5, width=8).eval()
        >>> SmoothGradCAMPlusPlus(model, "features", n_samples=4)(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 32, 32])
    """

    def __init__(
        self,
        model: nn.Module,
        target_layer: Layer,
        n_samples: int = 16,
        sigma: float = 0.15,
        seed: int | torch.Generator = 0,
        average: str = "derivatives",
        progress: bool = False,
    ) -> None:
        super().__init__(model, target_layer, seed=seed, progress=progress)
        self.n_samples = check_int(n_samples, "n_samples", minimum=1)
        self.sigma = check_positive(sigma, "sigma", allow_zero=True)
        check_choice(average, "average", ("derivatives", "maps"))
        self.average = average

    def _noisy_copies(self, images: torch.Tensor):
        g = generator(self.seed, device=images.device)
        for _ in tqdm(range(self.n_samples), desc="Smooth Grad-CAM++", disable=not self.progress, leave=False):
            noise = torch.randn(images.shape, generator=g, device=g.device).to(device=images.device, dtype=images.dtype)
            yield images + self.sigma * noise

    def _explain(self, images, targets):
        if self.average == "maps":
            with torch.no_grad():
                scores = self._predict(images).detach()
            t = self._resolve_targets(targets, scores)
            total = None
            for noisy in self._noisy_copies(images):
                with allow_out_of_range(self.model):  # the noisy copies leave [0, 1] on purpose
                    maps = self._layer_maps(noisy, t)
                total = maps if total is None else total + maps
            return Explanation(maps=total / self.n_samples, targets=t, scores=scores)
        activations, _, t, clean_scores = self._activations_and_gradients(images, targets, return_scores=True)
        top = sums = None
        for noisy in self._noisy_copies(images):
            with allow_out_of_range(self.model):  # the noisy copies leave [0, 1] on purpose
                _, grad, _, scores = self._activations_and_gradients(noisy, t, return_scores=True)
            y = scores.gather(1, t[:, None])[:, 0].to(grad.dtype)
            if top is None:
                top = y
                sums = [torch.zeros_like(grad) for _ in range(3)]
            new_top = torch.maximum(top, y)
            rescale = torch.exp(top - new_top)[:, None, None, None]  # keep every exp(y_s - top) <= 1
            e = torch.exp(y - new_top)[:, None, None, None]
            sums = [d * rescale + e * grad.pow(p) for p, d in enumerate(sums, start=1)]
            top = new_top
        d1, d2, d3 = (d / self.n_samples for d in sums)
        weights = smooth_gradcam_plus_plus_weights(activations, d1, d2, d3)
        maps = torch.relu(torch.einsum("nk,nkhw->nhw", weights, activations))
        return Explanation(maps=maps, targets=t, scores=clean_scores, activations=activations)
