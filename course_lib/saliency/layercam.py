r"""LayerCAM: class activation maps weighted position by position."""

from __future__ import annotations

import torch

from ._base import _ActivationMapExplainer

__all__ = ["LayerCAM"]


class LayerCAM(_ActivationMapExplainer):
    r"""LayerCAM (Jiang, Zhang, Hou, Cheng and Wei, *LayerCAM: Exploring Hierarchical Class Activation Maps for
    Localization*, IEEE Transactions on Image Processing 30, 2021).

    Grad-CAM gives every position of feature map :math:`k` the same weight, the spatial mean of the gradient.
    LayerCAM keeps the gradient where it is: each position is weighted by its own positive gradient,

    .. math::

        w^{kc}_{ij} = \mathrm{ReLU}\Big(\frac{\partial y^c}{\partial A^k_{ij}}\Big), \qquad
        L^c_{ij} = \mathrm{ReLU}\Big(\sum_k w^{kc}_{ij}\, A^k_{ij}\Big),

    with :math:`y^c` the class score before the softmax. Because no average over the map is taken, the maps
    of shallow, high-resolution layers stay sharp (the paper fuses maps of several layers; this class gives the
    map of one layer, its eq. 3). The backward pass stops at the target layer, as for Grad-CAM.

    Args:
        model: the classifier.
        target_layer: a module of the model or its dotted name.

    Example:
        >>> from course_lib.models import SmallCNN
        >>> model = SmallCNN(num_classes=5, width=8).eval()
        >>> LayerCAM(model, "features")(torch.rand(2, 3, 32, 32), targets=1).shape
        torch.Size([2, 32, 32])
    """

    def _weights(self, activations, gradients, targets, images):
        return torch.relu(gradients)  # (N, K, h, w): one weight per position
