r"""Score-CAM: class activation maps weighted by the scores of masked inputs, no gradient."""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from .._checks import check_int
from .._types import Layer
from ._base import _ActivationMapExplainer
from .maps import normalize_maps, upsample_maps

__all__ = ["ScoreCAM"]


class ScoreCAM(_ActivationMapExplainer):
    r"""Score-CAM (Wang, Wang, Du, Yang, Zhang, Ding, Mardziel and Hu, *Score-CAM: Score-Weighted Visual
    Explanations for Convolutional Neural Networks*, CVPR Workshops 2020).

    Each feature map :math:`A^k` of the target layer is upsampled bilinearly to the input's size
    (:math:`U`) and min-max normalized to :math:`[0, 1]`; it then masks the input, and the weight of the map is
    the softmax probability :math:`p_c` of the target class :math:`c` on that masked input:

    .. math::

        H^k = \frac{U(A^k) - \min U(A^k)}{\max U(A^k) - \min U(A^k)}, \qquad
        w^c_k = p_c\big(x \odot H^k\big) = \operatorname{softmax}\big(f(x \odot H^k)\big)_c, \qquad
        L^c = \mathrm{ReLU}\Big(\sum_k w^c_k A^k\Big).

    No gradient is computed: one forward pass per feature map (``batch_size`` masked inputs at a time, over
    all images of the call), so a layer of :math:`K` maps costs :math:`K` forward passes per image. A feature
    map that is constant (zero everywhere after a ReLU, say) has no normalized mask; its weight is 0 and it
    costs no forward pass (the authors' code skips it too).

    *Which weight.* The paper's "channel-wise increase of confidence" subtracts a baseline's score,
    :math:`C(A^k) = f_c(x \odot H^k) - f_c(x_b)`; its Algorithm 1 and the authors' released code use the
    softmax probability :math:`p_c(x \odot H^k)` itself, and so does this class: with a fixed baseline the
    subtraction would add :math:`-f_c(x_b) \sum_k A^k` to the map, a multiple of one map that is the same
    for every class.
    torchcam (0.5.0) subtracts the logit of the unmasked input and takes a softmax *over the maps*,
    :math:`w_k = \operatorname{softmax}_k\big(y^c(x \odot H^k) - y^c(x)\big)`; the subtraction cancels in that
    softmax, and applied to the model followed by ``log_softmax`` its weights are
    :math:`p_c(x \odot H^k) / \sum_m p_c(x \odot H^m)`, this class's weights divided by their sum (the tests
    check that). torchcam also normalizes :math:`A^k` before upsampling; the two coincide when the layer has
    the input's resolution.

    Args:
        model: the classifier (returns logits; the softmax is applied here).
        target_layer: a module of the model or its dotted name.
        batch_size: masked inputs per forward pass.
        progress: show a progress bar over the batches of masked inputs.

    Example:
        >>> from course_lib.models import SmallCNN
        >>> model = SmallCNN(num_classes=5, width=8).eval()
        >>> ScoreCAM(model, "features", batch_size=16)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 32, 32])
    """

    uses_gradients = False

    def __init__(self, model: nn.Module, target_layer: Layer, batch_size: int = 32, progress: bool = False) -> None:
        super().__init__(model, target_layer, progress=progress)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)

    def _weights(self, activations, gradients, targets, images):
        n, k = activations.shape[:2]
        size = tuple(images.shape[-2:])
        weights = torch.zeros(n, k, device=activations.device, dtype=activations.dtype)
        flat = activations.flatten(2)
        pairs = ((flat.amax(2) - flat.amin(2)) > 0).nonzero()  # (M, 2): (image, map) with a non-constant map
        starts = range(0, pairs.shape[0], self.batch_size)
        with torch.no_grad():
            for start in tqdm(starts, desc="Score-CAM", disable=not self.progress, leave=False):
                i, c = pairs[start : start + self.batch_size].unbind(1)
                masks = normalize_maps(upsample_maps(activations[i, c], size))  # (b, H, W) in [0, 1]
                probs = torch.softmax(self._predict(images[i] * masks[:, None].to(images.dtype)), dim=1)
                weights[i, c] = probs.gather(1, targets[i, None])[:, 0].to(weights.dtype)
        return weights
