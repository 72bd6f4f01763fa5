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
from collections.abc import Sequence

import torch
from torch import nn

from ._checks import check_choice, check_images, check_int, check_module, check_tensor, describe
from ._state import model_mode  # listed in DESIGN §3 under course_lib.models

__all__ = [
    "NORMS", "POOLS", "make_norm", "conv_backbone", "SmallCNN", "count_parameters", "model_mode",
    "frozen_features", "FeatureHead", "he_init",
]

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


def he_init(model: nn.Module) -> nn.Module:
    r"""He (Kaiming) initialization of every convolution and linear layer of ``model``, biases zero; returns it.

    Each weight is drawn from :math:`\mathcal N(0, 2/n_\text{in})` (:math:`n_\text{in}` inputs per unit), which
    keeps the variance of the activations constant through ReLU layers (He et al., 2015, *Delving Deep into
    Rectifiers*). PyTorch's default, a uniform draw with variance :math:`1/(3\,n_\text{in})`, shrinks it by a
    factor 6 per ReLU layer.

    Example:
        >>> net = he_init(nn.Sequential(nn.Conv2d(3, 8, 3)))
        >>> float(net[0].bias.detach().abs().max())
        0.0
    """
    check_module(model)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (elements) of ``model``.

    Example:
        >>> count_parameters(nn.Linear(3, 2))
        8
    """
    params: Sequence[nn.Parameter] = [p for p in check_module(model).parameters() if p.requires_grad or not trainable_only]
    return sum(p.numel() for p in params)


@torch.no_grad()
def frozen_features(
    extractor, images, size: int | None = None, batch_size: int = 64, progress: bool = False
) -> torch.Tensor:
    r"""The feature maps of a *frozen* network for a whole set of images, computed once, in batches.

    Transfer learning with a frozen backbone :math:`\phi` trains only a head :math:`h` on
    :math:`h(\phi(x))`; since :math:`\phi` never changes, :math:`\phi(x_n)` can be computed once per image and
    cached, and every epoch (every seed, every :math:`\alpha`) of head training then costs only the head.
    Images are resized to ``size × size`` first (bilinear, antialiased when shrinking) when ``size`` is given,
    e.g. 64×64 images to the 128×128 that an ImageNet network suits better.

    Args:
        extractor: an ``nn.Module`` or a callable such as ``efficientnet_lite0().features``; an ``nn.Module``
            runs in eval mode (its modes are restored afterwards).
        images: ``(N, 3, H, W)``; the features come back on the images' device.
        size: side to resize to, or ``None`` to keep the images' size.
        batch_size: images per forward pass.
        progress: show a ``tqdm`` bar.

    Returns:
        ``(N, C, h, w)`` features (float32), on the images' device.

    Example:
        >>> frozen_features(conv_backbone(8), torch.rand(5, 3, 32, 32), size=16, batch_size=2).shape
        torch.Size([5, 16, 4, 4])
    """
    if not callable(extractor):
        raise TypeError(f"extractor must be an nn.Module or a callable, got {describe(extractor)}")
    x = check_images(images, "images")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if size is not None:
        size = check_int(size, "size", minimum=1)
    owner = extractor if isinstance(extractor, nn.Module) else getattr(extractor, "__self__", None)
    params = list(owner.parameters()) if isinstance(owner, nn.Module) else []
    dev = params[0].device if params else x.device
    from tqdm.auto import tqdm

    out = []
    context = model_mode(owner) if isinstance(owner, nn.Module) else contextlib.nullcontext()
    with context:
        for i in tqdm(range(0, x.shape[0], batch_size), disable=not progress, desc="features"):
            xi = x[i : i + batch_size].to(dev)
            if size is not None and tuple(xi.shape[-2:]) != (size, size):
                xi = nn.functional.interpolate(xi, size=(size, size), mode="bilinear", align_corners=False,
                                               antialias=size < max(xi.shape[-2:]))
            out.append(extractor(xi).float().to(x.device))
    return torch.cat(out)


class FeatureHead(nn.Module):
    r"""A trainable head on cached feature maps: a shared 1×1 "neck", then one linear output per task.

    .. math::

        u = \mathrm{ReLU}\big(\mathrm{BN}(W_0 * A)\big) \in \mathbb{R}^{m \times g \times g}, \qquad
        z = W_c \,\mathrm{GAP}(u) + b_c, \qquad \hat b = W_b \,\mathrm{vec}(u) + b_b,

    for a frozen feature map :math:`A \in \mathbb{R}^{C \times g \times g}`. The ``spatial`` outputs (a box, a
    pose) read the whole flattened map :math:`\mathrm{vec}(u)`, so they know *where*; the ``pooled`` outputs
    (class scores) read its global average, which keeps *what*. The neck is the one part both tasks share.

    Args:
        in_channels: :math:`C` of the cached features.
        grid: their side :math:`g` (``h = w = g``).
        pooled: number of outputs read from the global average (0 for none).
        spatial: number of outputs read from the flattened map.
        neck: channels :math:`m` of the shared 1×1 convolution.

    Returns (forward):
        ``(pooled_out, spatial_out)`` of shapes ``(N, pooled)`` and ``(N, spatial)``.

    Example:
        >>> z, b = FeatureHead(1280, 4, pooled=5, spatial=4)(torch.rand(2, 1280, 4, 4))
        >>> z.shape, b.shape
        (torch.Size([2, 5]), torch.Size([2, 4]))
    """

    def __init__(self, in_channels: int, grid: int, pooled: int = 0, spatial: int = 4, neck: int = 64) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        self.grid = check_int(grid, "grid", minimum=1)
        self.pooled = check_int(pooled, "pooled", minimum=0)
        self.spatial = check_int(spatial, "spatial", minimum=1)
        self.neck_channels = check_int(neck, "neck", minimum=1)
        self.neck = nn.Sequential(nn.Conv2d(in_channels, neck, 1, bias=False), nn.BatchNorm2d(neck),
                                  nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(neck, pooled)) \
            if pooled else None
        self.regressor = nn.Sequential(nn.Flatten(), nn.Linear(neck * grid * grid, spatial))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        check_tensor(features, "features", ndim=4, shape={1: self.in_channels, 2: self.grid, 3: self.grid},
                     finite=False)
        u = self.neck(features)
        return (self.classifier(u) if self.classifier is not None else None), self.regressor(u)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, grid={self.grid}, pooled={self.pooled}, spatial={self.spatial}"
