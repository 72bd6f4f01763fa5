r"""Small CNNs used throughout the course.

:class:`SmallCNN` is the classifier the chapters train, load from :mod:`course_lib.zoo`, visualize and
explain: six 3×3 convolutions in three stages (two 2×2 max-pools, so the last feature map is a quarter of
the input's side: 16×16 for 64×64 images), then a global pooling layer and one linear layer:

.. math::

    z = W \, \mathrm{pool}\big(A\big) + b, \qquad A = \mathrm{features}(x) \in \mathbb{R}^{K \times h \times w},

with :math:`\mathrm{pool}` the global average (GAP) or global max (GMP) over the :math:`h \times w`
positions (Lin et al., *Network in Network*, 2014; Zhou et al., *Learning Deep Features for Discriminative
Localization*, CVPR 2016). Because only one linear layer follows the pooling, class activation maps
(chapter 6) read the class weights straight from :attr:`SmallCNN.fc`.

:func:`conv_backbone` builds the same feature extractor on its own, and :func:`make_norm` the normalization
layer for a given name, so that the localization and pose models put their own heads on the same trunk (or
on :attr:`SmallCNN.features` of a trained classifier: transfer learning).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from ._checks import check_choice, check_int, check_tensor

__all__ = ["NORMS", "POOLS", "make_norm", "conv_backbone", "SmallCNN", "count_parameters", "model_mode"]

NORMS: tuple[str, ...] = ("batch", "group", "layer", "none")
POOLS: tuple[str, ...] = ("avg", "max")


def make_norm(norm: str, channels: int, groups: int = 8) -> nn.Module:
    r"""The normalization layer called ``norm`` for ``channels`` feature maps.

    * ``"batch"`` — :class:`torch.nn.BatchNorm2d`: statistics over :math:`(N, H, W)` per channel
      (Ioffe & Szegedy, 2015).
    * ``"group"`` — :class:`torch.nn.GroupNorm` with ``groups`` groups (fewer if ``channels`` is not a
      multiple): statistics over :math:`(C/G, H, W)` per sample and group (Wu & He, 2018).
    * ``"layer"`` — layer normalization of a feature map, i.e. ``GroupNorm(1, channels)``: statistics over
      :math:`(C, H, W)` per sample (Ba et al., 2016), with a scale and shift per channel.
    * ``"none"`` — :class:`torch.nn.Identity`.

    Example:
        >>> make_norm("group", 32).num_groups, make_norm("group", 12).num_groups
        (8, 6)
    """
    check_choice(norm, "norm", NORMS)
    channels = check_int(channels, "channels", minimum=1)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        g = check_int(groups, "groups", minimum=1)
        while channels % g:
            g -= 1
        return nn.GroupNorm(g, channels)
    if norm == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def _conv_block(c_in: int, c_out: int, norm: str) -> list[nn.Module]:
    # A normalization layer with a shift (beta) makes the convolution's bias redundant.
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=norm == "none"), make_norm(norm, c_out), nn.ReLU(inplace=True)]


def conv_backbone(
    width: int = 32, norm: str = "batch", in_channels: int = 3, blocks: Sequence[int] = (1, 2, 3)
) -> nn.Sequential:
    """The convolutional trunk of :class:`SmallCNN`: stages of ``width//2``, ``width`` and ``2·width`` channels.

    Layout with the default ``blocks=(1, 2, 3)`` (each conv is 3×3, padding 1, followed by the normalization
    and a ReLU)::

        conv(in→w/2)                         @ H      then max-pool 2
        conv(w/2→w), conv(w→w)               @ H/2    then max-pool 2
        conv(w→2w), conv(2w→2w), conv(2w→2w) @ H/4    (ends with a ReLU: the last conv feature map)

    The receptive field of one output position is 38×38 input pixels, more than the largest
    :class:`~course_lib.data.ShapesDataset` object at 64×64.

    Args:
        width: the base number of channels (even, >= 2); the output has ``2 * width`` channels.
        norm: one of :data:`NORMS`.
        in_channels: channels of the input images.
        blocks: the number of convolutions in each of the three stages.

    Example:
        >>> conv_backbone(16)(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 32, 16, 16])
    """
    width = check_int(width, "width", minimum=2)
    if width % 2:
        raise ValueError(f"width must be even (the first stage has width // 2 channels), got {width}")
    check_choice(norm, "norm", NORMS)
    in_channels = check_int(in_channels, "in_channels", minimum=1)
    if len(blocks) != 3 or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in blocks):
        raise ValueError(f"blocks must be three positive ints (convolutions per stage), got {blocks!r}")
    layers: list[nn.Module] = []
    c_in = in_channels
    for stage, (c_out, n_conv) in enumerate(zip((width // 2, width, 2 * width), blocks, strict=True)):
        if stage:
            layers.append(nn.MaxPool2d(2))
        for _ in range(n_conv):
            layers += _conv_block(c_in, c_out, norm)
            c_in = c_out
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    r"""A small classifier: :func:`conv_backbone` → global average/max pooling → one linear layer.

    Attributes:
        features: the convolutional trunk (``nn.Sequential``); its output is the last conv feature map after
            its ReLU, ``(N, 2·width, H/4, W/4)``. Saliency methods use ``target_layer="features"``.
        pool: ``nn.AdaptiveAvgPool2d(1)`` (GAP) or ``nn.AdaptiveMaxPool2d(1)`` (GMP).
        flatten: ``nn.Flatten()``.
        fc: the single ``nn.Linear(2·width, num_classes)``; CAM reads its weights.
        num_classes, width, norm, pool_type, blocks: the constructor's arguments.

    Args:
        num_classes: number of output scores.
        width: base channel count (see :func:`conv_backbone`); ``width=32`` has about 107k parameters.
        norm: ``"batch"``, ``"group"``, ``"layer"`` or ``"none"`` (see :func:`make_norm`).
        pool: ``"avg"`` (GAP) or ``"max"`` (GMP).
        in_channels: channels of the input images.
        blocks: convolutions per stage (see :func:`conv_backbone`).

    Example:
        >>> model = SmallCNN(num_classes=5, pool="max")
        >>> model(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 5])
    """

    def __init__(
        self,
        num_classes: int = 5,
        width: int = 32,
        norm: str = "batch",
        pool: str = "avg",
        in_channels: int = 3,
        blocks: Sequence[int] = (1, 2, 3),
    ) -> None:
        super().__init__()
        self.num_classes = check_int(num_classes, "num_classes", minimum=1)
        check_choice(pool, "pool", POOLS)
        self.width, self.norm, self.pool_type, self.in_channels = width, norm, pool, in_channels
        self.blocks = tuple(blocks)
        self.features = conv_backbone(width, norm, in_channels, self.blocks)
        self.pool = nn.AdaptiveAvgPool2d(1) if pool == "avg" else nn.AdaptiveMaxPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2 * width, self.num_classes)

    @property
    def backbone(self) -> nn.Sequential:
        """The convolutional trunk (the same module as :attr:`features`), for transfer learning."""
        return self.features

    @property
    def feature_channels(self) -> int:
        """Channels of the last feature map (``2 * width``)."""
        return 2 * self.width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Shape checks only: a NaN scan would cost a device sync on every forward pass.
        check_tensor(x, "x", ndim=4, shape={1: self.in_channels}, finite=False)
        return self.fc(self.flatten(self.pool(self.features(x))))

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, width={self.width}, norm={self.norm!r}, pool={self.pool_type!r}"


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (elements) of ``model``.

    Example:
        >>> count_parameters(nn.Linear(3, 2))
        8
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params: Sequence[nn.Parameter] = [p for p in model.parameters() if p.requires_grad or not trainable_only]
    return sum(p.numel() for p in params)


@contextlib.contextmanager
def model_mode(model: nn.Module, training: bool = False) -> Iterator[nn.Module]:
    """Put ``model`` and all its submodules in eval (``training=False``) or train mode inside the block.

    On leaving, even after an exception, every submodule gets back its own mode, so a model whose parts were
    in different modes (a frozen backbone in eval mode under a head in train mode, say) comes back as it was.
    A model already entirely in the requested mode is not touched at all.

    Example:
        >>> net = SmallCNN(width=8).train()
        >>> with model_mode(net):
        ...     net.training, net.features[1].training
        (False, False)
        >>> net.training
        True
    """
    changed = [m for m in model.modules() if m.training != training]
    try:
        if changed:
            model.train(training)
        yield model
    finally:
        for m in changed:
            m.training = not training
