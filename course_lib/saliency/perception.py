r"""Perception Visualization: what the network "sees", shown where it looks.

Perception Visualization (Giulivi, Carman and Boracchi, *Perception Visualization: Seeing Through the Eyes
of a DNN*, BMVC 2021) explains a decision with two ingredients:

* a **decoder** :math:`G` trained to invert the classifier's latent representation at one layer,
  :math:`\hat x = G(A(x))` with :math:`A(x)` the feature map of that layer, so that :math:`\hat x` shows
  what the features retain of the image (the inversion idea of Dosovitskiy and Brox, *Inverting Visual
  Representations with Convolutional Networks*, CVPR 2016); it is trained on held-in data with the
  reconstruction loss :math:`\frac{1}{N}\sum_n \|G(A(x_n)) - x_n\|_2^2` while the classifier stays frozen;
* a **saliency map** :math:`s \in [0, 1]^{H \times W}` (Grad-CAM at the same layer by default), saying where
  the decision rests.

The explanation shows the reconstruction through the saliency map, and a neutral grey :math:`\nu` elsewhere:

.. math::

    \mathrm{PV}(x)_{cij} = s_{ij}\, \hat x_{cij} + (1 - s_{ij})\, \nu .

Where the network looks, one sees what it perceives there; a misclassified image often shows a
reconstruction that already resembles the wrong class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import (
    check_int,
    check_module,
    check_probability,
    check_tensor,
    layer_name,
    resolve_layer,
)
from .._state import capture, model_mode
from .._types import Layer, Targets
from ._base import Explanation, _Explainer
from .cam import GradCAM

__all__ = ["FeatureDecoder", "PerceptionVisualization", "PerceptionResult", "perception_visualization"]


class FeatureDecoder(nn.Module):
    r"""A small convolutional decoder from a feature map ``(N, C, h, w)`` back to an image ``(N, 3, H, W)``.

    Two 3×3 convolutions at the feature map's resolution (``channels[0]`` maps each), then, for every further
    entry of ``channels``, a ×2 nearest-neighbour upsampling and a 3×3 convolution to that many maps (each
    convolution followed by batch normalization and a ReLU), so that :math:`H = 2^{u} h` with
    :math:`u` = ``len(channels) - 1``; a last 3×3 convolution and a sigmoid give values in :math:`[0, 1]`. Most
    of the width sits at the low resolution, where it is cheap. Nearest upsampling followed by a convolution
    avoids the checkerboard artefacts of transposed convolutions (Odena et al., *Deconvolution and
    Checkerboard Artifacts*, Distill 2016).

    Args:
        in_channels: channels :math:`C` of the feature map to invert.
        channels: maps per stage, from the feature map's resolution up (``(128, 48, 24)``: two upsamplings,
            right for a stride-4 layer such as ``SmallCNN.features``).
        out_channels: channels of the reconstructed image.

    Example:
        >>> FeatureDecoder(64, channels=(32, 16, 8))(torch.rand(2, 64, 16, 16)).shape
        torch.Size([2, 3, 64, 64])
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...] = (128, 48, 24), out_channels: int = 3) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        if not (isinstance(channels, (tuple, list)) and len(channels) >= 1):
            raise TypeError(f"channels must be a non-empty tuple of ints, got {channels!r}")
        self.channels = tuple(check_int(c, "channels", minimum=1) for c in channels)
        self.out_channels = check_int(out_channels, "out_channels", minimum=1)

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        first = self.channels[0]
        layers: list[nn.Module] = block(in_channels, first) + block(first, first)
        for c_in, c_out in zip(self.channels[:-1], self.channels[1:], strict=True):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), *block(c_in, c_out)]
        layers += [nn.Conv2d(self.channels[-1], out_channels, 3, padding=1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    @property
    def upsamplings(self) -> int:
        """Number of ×2 upsampling stages."""
        return len(self.channels) - 1

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        check_tensor(features, "features", ndim=4, shape={1: self.in_channels}, finite=False)
        return self.net(features)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, channels={self.channels}"


def perception_visualization(reconstructions: torch.Tensor, saliency: torch.Tensor, neutral: float = 0.5) -> torch.Tensor:
    r"""The masking rule :math:`\mathrm{PV} = s \odot \hat x + (1 - s)\,\nu`.

    Args:
        reconstructions: ``(N, C, H, W)`` decoded images :math:`\hat x`.
        saliency: ``(N, H, W)`` maps :math:`s` in ``[0, 1]``.
        neutral: the grey level :math:`\nu` shown where the map is zero.

    Example:
        >>> x = torch.ones(1, 3, 1, 2); s = torch.tensor([[[1.0, 0.25]]])
        >>> perception_visualization(x, s, neutral=0.5)[0, 0]
        tensor([[1.0000, 0.6250]])
    """
    reconstructions = check_tensor(reconstructions, "reconstructions", ndim=4)
    saliency = check_tensor(saliency, "saliency", ndim=3)
    neutral = check_probability(neutral, "neutral")
    n, _, h, w = reconstructions.shape
    if saliency.shape != (n, h, w):
        raise ValueError(
            f"saliency must have shape ({n}, {h}, {w}) to match the reconstructions, got {tuple(saliency.shape)}"
        )
    lo, hi = float(saliency.min()), float(saliency.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"saliency must have values in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
    s = saliency[:, None].to(reconstructions.dtype)
    return s * reconstructions + (1 - s) * neutral


@dataclass(frozen=True, kw_only=True)
class PerceptionResult(Explanation):
    r"""What :meth:`PerceptionVisualization.explain` returns: an :class:`~course_lib.saliency.Explanation` whose
    ``maps`` are the saliency maps :math:`s`, with the explanation and its parts (tensors on the images' device).

    Attributes:
        maps: ``(N, H, W)`` the saliency maps :math:`s` in ``[0, 1]`` (also as :attr:`saliency`).
        targets: ``(N,)`` the classes explained.
        scores: ``(N, num_classes)`` the classifier's scores (:attr:`predictions` their arg-max).
        activations: ``(N, C, h, w)`` the target layer's output :math:`A(x)`, which the decoder inverted.
        visualizations: ``(N, 3, H, W)`` the explanations :math:`s \odot \hat x + (1 - s)\nu`.
        reconstructions: ``(N, 3, H, W)`` the decoder's :math:`\hat x`.
    """

    visualizations: torch.Tensor
    reconstructions: torch.Tensor

    @property
    def saliency(self) -> torch.Tensor:
        """``(N, H, W)`` the saliency maps :math:`s`, the same tensor as :attr:`maps`."""
        return self.maps


class PerceptionVisualization(_Explainer):
    r"""Perception Visualization (Giulivi et al., BMVC 2021); see the module docstring.

    Called like every explainer, ``pv(images, targets)`` returns the saliency maps :math:`s` it uses
    (``(N, H, W)`` in ``[0, 1]``: the saliency explainer's maps, always upsampled and normalized, whatever
    ``upsample`` and ``normalize`` say); :meth:`explain` returns the explanation itself with its parts (a
    :class:`PerceptionResult`), and :meth:`reconstruct` only the decoder's images. The saliency explainer is
    used through its public :meth:`~course_lib.saliency.Explanation`-returning ``explain`` only.

    Args:
        model: the classifier.
        target_layer: the layer whose output the decoder inverts (a module of the model or its dotted name).
        decoder: a module mapping that layer's output ``(N, C, h, w)`` to images ``(N, 3, H', W')`` (resized to
            the input's size if ``H' != H``), e.g. the zoo's ``shapes_gap_decoder`` for ``shapes_gap``.
        saliency: the explainer giving :math:`s` (default ``GradCAM(model, target_layer)``).
        neutral: the grey level :math:`\nu` shown where the map is low.

    Example:
        >>> from course_lib.models import SmallCNN
        >>> model = SmallCNN(num_classes=5, width=8).eval()
        >>> pv = PerceptionVisualization(model, "features", FeatureDecoder(16, channels=(16, 8, 8)).eval())
        >>> out = pv.explain(torch.rand(2, 3, 32, 32))
        >>> out.visualizations.shape, out.saliency.shape
        (torch.Size([2, 3, 32, 32]), torch.Size([2, 32, 32]))
    """

    def __init__(self, model: nn.Module, target_layer: Layer, decoder: nn.Module, saliency: _Explainer | None = None,
                 neutral: float = 0.5) -> None:
        super().__init__(model)
        self.target_layer = resolve_layer(model, target_layer, "target_layer")
        self.layer_name = layer_name(model, self.target_layer)
        self.decoder = check_module(decoder, "decoder")
        if saliency is None:
            saliency = GradCAM(model, self.target_layer)
        elif not isinstance(saliency, _Explainer):
            raise TypeError(f"saliency must be a course_lib.saliency explainer, got {type(saliency).__name__}")
        self.saliency = saliency
        self.neutral = check_probability(neutral, "neutral")

    # ------------------------------------------------------------------ perception
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The target layer's output ``(N, C, h, w)`` for ``images`` (no gradients, model in eval mode)."""
        features, _ = self._features_and_scores(self._check_images(images))
        return features

    def _features_and_scores(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward pass (no gradients, model in eval mode): the target layer's output and the scores."""
        what = f"target_layer {self.layer_name!r}"
        with model_mode(self.model), capture(self.target_layer, what,
                                             on_output=lambda output: (output.detach().clone(), None)) as hooked:
            with torch.no_grad():
                scores = self._predict(images)
        features = hooked.last()
        if not isinstance(features, torch.Tensor) or features.ndim != 4:
            raise ValueError(f"{what} must output an (N, C, h, w) feature map")
        return features, scores

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """The decoder's reconstructions :math:`G(A(x))`, ``(N, 3, H, W)`` at the input's size."""
        images = self._check_images(images)
        features, _ = self._features_and_scores(images)
        return self._decode(features, tuple(images.shape[-2:]))

    def _decode(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        with model_mode(self.decoder), torch.no_grad():
            rec = self.decoder(features)
        if not isinstance(rec, torch.Tensor) or rec.ndim != 4:
            got = f"shape {tuple(rec.shape)}" if isinstance(rec, torch.Tensor) else type(rec).__name__
            raise ValueError(f"decoder must return (N, C, H, W) images, got {got}")
        if tuple(rec.shape[-2:]) != size:
            rec = F.interpolate(rec, size=size, mode="bilinear", align_corners=False)
        return rec.clamp(0, 1)

    def explain(self, images: torch.Tensor, targets: Targets = None, *, upsample: bool = True,
                normalize: bool = True) -> PerceptionResult:
        """The Perception Visualization of ``images`` for ``targets`` (``None``: the predicted classes).

        The saliency explainer's :meth:`explain` gives the maps :math:`s`, the targets and the scores. When it
        read this explainer's target layer in a pass of the images themselves (its result's ``activations``:
        Grad-CAM, Grad-CAM++, LayerCAM, Score-CAM, CAM), those activations are the features decoded and the
        classifier runs only for the saliency; otherwise one more forward pass gives the features.
        ``upsample`` and ``normalize`` have no effect (the visualization needs maps in ``[0, 1]`` at the
        input's size).
        """
        return super().explain(images, targets, upsample=upsample, normalize=normalize)

    def _explain(self, images, targets):
        size = tuple(images.shape[-2:])
        s = self.saliency
        out = s.explain(images, targets)
        if out.activations is not None and getattr(s, "target_layer", None) is self.target_layer:
            features, scores = out.activations, out.scores
        else:
            features, scores = self._features_and_scores(images)
        rec = self._decode(features, size)
        return PerceptionResult(
            maps=out.maps,
            targets=out.targets,
            scores=scores,
            activations=features,
            visualizations=perception_visualization(rec, out.maps, self.neutral),
            reconstructions=rec,
        )

    def __repr__(self) -> str:
        return (f"PerceptionVisualization({type(self.model).__name__}, target_layer={self.layer_name!r}, "
                f"decoder={type(self.decoder).__name__}, saliency={type(self.saliency).__name__})")
