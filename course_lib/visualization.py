r"""Looking inside a CNN: first-layer filters, receptive fields, maximally activating patches and
activation maximization by gradient ascent on the input.

* :func:`filter_grid` — the kernels of a convolution with three input channels, each shown as a small RGB
  image, normalized per filter.
* :func:`receptive_field` — size, jump and start of the input region that one unit of a layer sees,
  computed analytically layer by layer (Araujo, Norris & Sim, *Computing Receptive Fields of Convolutional
  Neural Networks*, Distill 2019):

  .. math::

      r_l = r_{l-1} + (k_l^{\mathrm{eff}} - 1)\, j_{l-1}, \qquad
      j_l = s_l \, j_{l-1}, \qquad
      a_l = a_{l-1} - p_l \, j_{l-1},

  with :math:`k^{\mathrm{eff}} = d\,(k - 1) + 1` the dilated kernel size, :math:`s` the stride, :math:`p` the
  (top/left) padding and :math:`r_0 = j_0 = 1`, :math:`a_0 = 0`. Unit :math:`i` of layer :math:`l` sees the
  input pixels :math:`a_l + i\,j_l, \dots, a_l + i\,j_l + r_l - 1`.
* :func:`top_activating_patches` — the images and input patches that excite one channel most (Zeiler &
  Fergus, *Visualizing and Understanding Convolutional Networks*, ECCV 2014; Girshick et al., R-CNN, 2014).
* :func:`activation_maximization` — an input that maximizes a unit, a channel or a class score, by gradient
  ascent with the regularizers of Simonyan, Vedaldi & Zisserman (*Deep Inside Convolutional Networks*, 2014),
  Mahendran & Vedaldi (*Understanding Deep Image Representations by Inverting Them*, CVPR 2015) and random
  jitter (Mordvintsev et al., *Inceptionism*, 2015):

  .. math::

      I^\ast = \arg\max_I \; S(I) - \lambda_2 \lVert I \rVert_2^2 - \lambda_{TV} R_{TV}(I), \qquad
      R_{TV}(I) = \sum_{c,i,j} \lvert I_{c,i+1,j} - I_{c,i,j} \rvert + \lvert I_{c,i,j+1} - I_{c,i,j} \rvert .
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ._checks import (
    as_tensor,
    check_choice,
    check_images,
    check_int,
    check_nonnegative,
    check_positive,
    check_tensor,
    resolve_layer,
)
from .models import model_mode
from .pretrained import Normalize, SameConv2d

__all__ = [
    "first_conv",
    "normalize_filters",
    "filter_grid",
    "ReceptiveField",
    "receptive_field",
    "TopPatches",
    "top_activating_patches",
    "total_variation",
    "ascent_objective",
    "AscentResult",
    "activation_maximization",
]

# ---------------------------------------------------------------------------------------------- filters


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The first :class:`torch.nn.Conv2d` of ``model`` in registration order (the layer that sees pixels).

    Example:
        >>> first_conv(nn.Sequential(nn.ReLU(), nn.Conv2d(3, 8, 5))).kernel_size
        (5, 5)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m
    raise ValueError(f"model ({type(model).__name__}) has no nn.Conv2d layer")


def normalize_filters(weight) -> torch.Tensor:
    r"""Min-max normalize each filter of a ``(O, C, k_h, k_w)`` weight to :math:`[0, 1]` on its own.

    .. math:: \tilde w_o = \frac{w_o - \min w_o}{\max w_o - \min w_o}

    The minimum and maximum run over all channels of filter :math:`o` together, so its colours keep their
    balance. A constant filter becomes mid-grey (0.5).

    Example:
        >>> normalize_filters(torch.tensor([[[[-2.0, 2.0]]]]))
        tensor([[[[0., 1.]]]])
    """
    w = check_tensor(weight, "weight", ndim=4).detach()
    flat = w.flatten(1)
    lo, hi = flat.amin(1), flat.amax(1)
    rng = (hi - lo)[:, None, None, None]
    out = (w - lo[:, None, None, None]) / torch.where(rng > 0, rng, torch.ones_like(rng))
    return torch.where(rng > 0, out, torch.full_like(w, 0.5))


def filter_grid(layer, nrow: int = 8, scale: int = 6, padding: int = 1) -> np.ndarray:
    """The kernels of a convolution with 3 input channels tiled into one RGB image.

    Each filter is normalized on its own (:func:`normalize_filters`), enlarged ``scale`` times with
    nearest-neighbour interpolation (so each weight stays a visible square) and tiled ``nrow`` per row with
    white gaps.

    Args:
        layer: an ``nn.Conv2d`` with ``in_channels == 3``, a model (its :func:`first_conv` is used), or a weight
            tensor ``(O, 3, k_h, k_w)``.
        nrow: filters per row.
        scale: the enlargement factor.
        padding: gap between filters in pixels (after enlargement).

    Returns:
        An ``(H, W, 3)`` float array in ``[0, 1]`` for ``plt.imshow``.

    Example:
        >>> filter_grid(nn.Conv2d(3, 16, 3), nrow=8, scale=4, padding=1).shape
        (27, 105, 3)
    """
    from .plotting import image_grid

    if isinstance(layer, nn.Module):
        conv = layer if isinstance(layer, nn.Conv2d) else first_conv(layer)
        weight = conv.weight
    else:
        weight = layer
    w = check_tensor(weight, "weight", ndim=4)
    if w.shape[1] != 3:
        raise ValueError(f"filters must have 3 input channels to be shown as RGB images, got weight of shape {tuple(w.shape)}")
    nrow = check_int(nrow, "nrow", minimum=1)
    scale = check_int(scale, "scale", minimum=1)
    padding = check_int(padding, "padding", minimum=0)
    w = normalize_filters(w).float().cpu()
    w = F.interpolate(w, scale_factor=scale, mode="nearest")
    return image_grid(w, nrow=nrow, padding=padding)


# --------------------------------------------------------------------------------------- receptive field

_POINTWISE = (
    nn.Identity,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Softplus, nn.Softmax2d,
    nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LocalResponseNorm,
    nn.Dropout, nn.Dropout2d, nn.AlphaDropout, Normalize,
)  # fmt: skip
# A child with one of these names is a shortcut branch that runs beside its siblings (torchvision's ResNet).
_SHORTCUT_NAMES = ("downsample", "shortcut")


@dataclass(frozen=True)
class ReceptiveField:
    """The input region seen by the units of one layer, per axis ``(rows, columns)``.

    Attributes:
        size: ``(r_h, r_w)`` — height and width of the region, in input pixels.
        jump: ``(j_h, j_w)`` — distance in input pixels between the regions of neighbouring units.
        start: ``(a_h, a_w)`` — input coordinate of the top-left pixel of unit ``(0, 0)``'s region; negative
            when padding makes the region hang over the image border.
        output_size: ``(h, w)`` of the layer's feature map, when ``input_size`` was given; else ``None``.
    """

    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[int, int]
    output_size: tuple[int, int] | None = None

    def center(self, row: int, col: int) -> tuple[float, float]:
        """Input coordinates ``(y, x)`` of the centre of unit ``(row, col)``'s region."""
        pos = (row, col)
        return tuple(self.start[k] + pos[k] * self.jump[k] + (self.size[k] - 1) / 2 for k in range(2))

    def box(self, row: int, col: int, image_size: int | tuple[int, int] | None = None) -> tuple[int, int, int, int]:
        """Pixel box ``(x1, y1, x2, y2)`` (end exclusive) of unit ``(row, col)``; clipped to ``image_size``.

        Example:
            >>> ReceptiveField(size=(3, 3), jump=(1, 1), start=(-1, -1)).box(0, 0, image_size=8)
            (0, 0, 2, 2)
        """
        row = check_int(row, "row")
        col = check_int(col, "col")
        y1 = self.start[0] + row * self.jump[0]
        x1 = self.start[1] + col * self.jump[1]
        y2, x2 = y1 + self.size[0], x1 + self.size[1]
        if image_size is not None:
            h, w = _pair(image_size, "image_size")
            y1, x1, y2, x2 = max(y1, 0), max(x1, 0), min(y2, h), min(x2, w)
        return (x1, y1, x2, y2)


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (height, width), got {value!r}")
        return check_int(value[0], name, minimum=1), check_int(value[1], name, minimum=1)
    v = check_int(value, name, minimum=1)
    return v, v


class _FieldState:
    """Receptive-field bookkeeping along one path: size, jump, start and (optionally) the spatial size."""

    def __init__(self, input_size: tuple[int, int] | None) -> None:
        self.r, self.j, self.a = [1, 1], [1, 1], [0, 0]
        self.n = list(input_size) if input_size is not None else None

    def copy(self) -> _FieldState:
        new = _FieldState(None)
        new.r, new.j, new.a = list(self.r), list(self.j), list(self.a)
        new.n = list(self.n) if self.n is not None else None
        return new

    def window(self, kernel, stride, padding, dilation=1, ceil_mode: bool = False) -> None:
        """``padding``: an int or pair (symmetric), Conv2d's ``"valid"``/``"same"``, or ``((top, bottom), (left, right))``."""
        k, s, d = (_as2(v) for v in (kernel, stride, dilation))
        if isinstance(padding, str):  # Conv2d's "valid" / "same" (torch pads "same" with total // 2 on top/left)
            p = (0, 0) if padding == "valid" else tuple(d[i] * (k[i] - 1) // 2 for i in range(2))
            p_total = (0, 0) if padding == "valid" else tuple(d[i] * (k[i] - 1) for i in range(2))
        elif isinstance(padding, tuple) and all(isinstance(v, tuple) for v in padding):  # asymmetric
            p = tuple(before for before, _ in padding)
            p_total = tuple(before + after for before, after in padding)
        else:
            p = _as2(padding)
            p_total = (2 * p[0], 2 * p[1])
        for i in range(2):
            k_eff = d[i] * (k[i] - 1) + 1
            self.a[i] -= p[i] * self.j[i]
            self.r[i] += (k_eff - 1) * self.j[i]
            self.j[i] *= s[i]
            if self.n is not None:
                span = self.n[i] + p_total[i] - k_eff
                out = (math.ceil(span / s[i]) if ceil_mode else span // s[i]) + 1
                if ceil_mode and (out - 1) * s[i] >= self.n[i] + p[i]:  # torch: last window must start inside
                    out -= 1
                self.n[i] = out

    def adaptive(self, module: nn.Module, name: str) -> None:
        if self.n is None:
            raise ValueError(
                f"layer {name!r} ({type(module).__name__}) adapts its window to the input size: "
                "pass input_size=(height, width) to receptive_field"
            )
        out = _as2(module.output_size)
        out = tuple(self.n[i] if out[i] is None else out[i] for i in range(2))
        if any(self.n[i] % out[i] for i in range(2)):
            raise ValueError(
                f"layer {name!r} ({type(module).__name__}) maps {tuple(self.n)} to {out}: its windows overlap "
                "unevenly, so its units have no common receptive field; choose an input_size divisible by the output"
            )
        k = tuple(self.n[i] // out[i] for i in range(2))
        self.window(k, k, 0)

    def result(self) -> ReceptiveField:
        return ReceptiveField(tuple(self.r), tuple(self.j), tuple(self.a), tuple(self.n) if self.n else None)


def _as2(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) or v is None else tuple(v)


def _contains(module: nn.Module, target: nn.Module) -> bool:
    return any(m is target for m in module.modules())


def _apply_leaf(module: nn.Module, state: _FieldState, name: str) -> None:
    if isinstance(module, SameConv2d):  # TensorFlow SAME padding: it depends on the input's size
        if state.n is None:
            raise ValueError(
                f"layer {name!r} (SameConv2d) pads according to its input's size: pass input_size=(height, width) "
                "to receptive_field"
            )
        state.window(module.kernel_size, module.stride, module.same_padding(*state.n), module.dilation)
    elif isinstance(module, nn.Conv2d):
        state.window(module.kernel_size, module.stride, module.padding, module.dilation)
    elif isinstance(module, nn.MaxPool2d):
        state.window(module.kernel_size, module.stride or module.kernel_size, module.padding, module.dilation,
                     module.ceil_mode)
    elif isinstance(module, nn.AvgPool2d):
        state.window(module.kernel_size, module.stride or module.kernel_size, module.padding, 1, module.ceil_mode)
    elif isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        state.adaptive(module, name)
    elif isinstance(module, _POINTWISE):
        pass
    elif isinstance(module, (nn.Linear, nn.Flatten)):
        raise ValueError(
            f"the path to the layer passes through {name!r} ({type(module).__name__}): after a flattening or fully "
            "connected layer every unit sees the whole input, so receptive fields are defined for the "
            "convolutional part only; pick a layer before it"
        )
    else:
        raise TypeError(
            f"receptive_field does not know how {name!r} ({type(module).__name__}) acts on space; it supports "
            "Conv2d, MaxPool2d, AvgPool2d, adaptive pools, point-wise layers (activations, normalization, "
            "dropout) and containers of them"
        )


def _walk(module: nn.Module, name: str, state: _FieldState, target: nn.Module | None) -> bool:
    """Push ``state`` through ``module``'s main path, stopping after ``target``; return True once it is reached."""
    children = list(module.named_children())
    if not children:
        _apply_leaf(module, state, name)
        return module is target
    path = lambda n: f"{name}.{n}" if name else n  # noqa: E731
    if module is target:  # the whole container is the layer: walk it to its end
        for n, child in children:
            if n not in _SHORTCUT_NAMES:
                _walk(child, path(n), state, None)
        return True
    for n, child in children:  # a layer inside a shortcut branch: the branch starts from the block's input
        if n in _SHORTCUT_NAMES and target is not None and _contains(child, target):
            return _walk(child, path(n), state, target)
    for n, child in children:
        if n not in _SHORTCUT_NAMES and _walk(child, path(n), state, target):
            return True
    return False


def receptive_field(model: nn.Module, layer, input_size: int | tuple[int, int] | None = None) -> ReceptiveField:
    r"""The receptive field of the units of ``layer``, computed analytically from the architecture.

    Starting from one pixel (:math:`r_0 = j_0 = 1`, :math:`a_0 = 0`), every convolution or pooling window with
    kernel :math:`k`, stride :math:`s`, padding :math:`p` and dilation :math:`d` updates

    .. math::

        r \leftarrow r + \big(d(k-1)\big)\, j, \qquad a \leftarrow a - p\, j, \qquad j \leftarrow s\, j,

    separately for rows and columns (Araujo, Norris & Sim, Distill 2019). Point-wise layers (activations,
    batch norm, dropout) leave all three unchanged. Containers are walked in registration order, which is
    their execution order for ``nn.Sequential``, the course's models and torchvision's AlexNet, VGG and
    ResNet. A child named ``downsample`` (ResNet's shortcut) runs beside the main path; it is skipped because
    it has the same centre and a smaller field, so the main path's field is the union of both; an identity skip
    (EfficientNet's MBConv adds its input back, an attribute rather than a child) likewise adds nothing: a
    sum's field is the union of its branches' fields, here the longest branch. TensorFlow-style ``SameConv2d``
    pads by the input's size (more at the bottom and right), so it needs ``input_size``. Normalization
    layers that pool statistics over space (GroupNorm, LayerNorm-like) are treated as point-wise, the usual
    convention. Weights play no role: a model built with ``weights=None`` gives the same answer.

    Args:
        model: the network.
        layer: a submodule of ``model`` or its dotted name (``"features.9"``, ``"layer3"``); for a container the
            field of its output is returned.
        input_size: ``(height, width)`` of the input (or one int). Needed only to pass adaptive pooling layers;
            when given, the feature map size is reported too.

    Returns:
        A :class:`ReceptiveField`: ``size``, ``jump`` and ``start``, each ``(rows, columns)``.

    Raises:
        ValueError: ``layer`` is not in the model, or the path to it crosses a linear/flatten layer.
        TypeError: a module on the path whose spatial action is unknown.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1))
        >>> receptive_field(net, "2")
        ReceptiveField(size=(8, 8), jump=(2, 2), start=(-3, -3), output_size=None)
    """
    target = resolve_layer(model, layer, name="layer")
    state = _FieldState(_pair(input_size, "input_size") if input_size is not None else None)
    if target is model:
        _walk(model, "", state, None)
        return state.result()
    if not _walk(model, "", state, target):
        raise ValueError(
            f"layer {layer if isinstance(layer, str) else type(layer).__name__!r} is not on the main path of the "
            "model (it sits only in a skipped branch)"
        )
    return state.result()


# ------------------------------------------------------------------------------------- activation probe


class _StopForward(Exception):
    """Raised by the probe's hook to end a forward pass as soon as the layer has produced its output."""


class _LayerProbe:
    """Runs a model up to one layer and returns that layer's output (the rest of the network is skipped).

    Owns the forward hook: it is registered per call and always removed. Stopping right after the layer also
    keeps a later in-place ReLU from overwriting the captured tensor.

    Args:
        model: the network.
        layer: a submodule or its dotted name; ``None`` means the model's own output.
    """

    def __init__(self, model: nn.Module, layer=None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.layer = None if layer is None else resolve_layer(model, layer, name="layer")

    @property
    def device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer is None or self.layer is self.model:
            return self.model(x)
        captured: list[torch.Tensor] = []

        def hook(_module, _inputs, output):
            captured.append(output)
            raise _StopForward

        handle = self.layer.register_forward_hook(hook)
        try:
            with suppress(_StopForward):
                self.model(x)
        finally:
            handle.remove()
        if not captured:
            raise ValueError("the layer was never called during the forward pass of the model")
        out = captured[0]
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the layer must return a tensor, got {type(out).__name__}")
        return out

    def check_channel(self, out: torch.Tensor, channel: torch.Tensor, name: str) -> None:
        what = "classes" if self.layer is None else "channels"
        if out.ndim not in (2, 4):
            raise ValueError(f"the layer's output must be (N, C) or (N, C, H, W), got shape {tuple(out.shape)}")
        if bool((channel < 0).any()) or bool((channel >= out.shape[1]).any()):
            raise ValueError(
                f"{name} must be in [0, {out.shape[1]}) (the output has {out.shape[1]} {what}), got {channel.tolist()}"
            )


# -------------------------------------------------------------------------------- top activating patches


@dataclass
class TopPatches:
    """The ``k`` strongest activations of one channel over a set of images, strongest first.

    Attributes:
        indices: ``(k,)`` long — which image.
        values: ``(k,)`` — the activation.
        positions: ``(k, 2)`` long — ``(row, col)`` of the unit in the feature map.
        boxes: ``(k, 4)`` — normalized ``(x, y, h, w)`` centre boxes of the unit's receptive field, clipped to
            the image.
        patches: ``(k, 3, r_h, r_w)`` — the receptive field's pixels; parts outside the image are zero (what
            the zero-padded network sees there).
        field: the layer's :class:`ReceptiveField`.
        channel: the channel these patches belong to.
    """

    indices: torch.Tensor
    values: torch.Tensor
    positions: torch.Tensor
    boxes: torch.Tensor
    patches: torch.Tensor
    field: ReceptiveField
    channel: int


def _crop(image: torch.Tensor, y1: int, x1: int, rh: int, rw: int) -> torch.Tensor:
    """The ``rh × rw`` window at ``(y1, x1)`` of a ``(C, H, W)`` image, zero outside it."""
    c, h, w = image.shape
    out = image.new_zeros(c, rh, rw)
    ys, xs = max(y1, 0), max(x1, 0)
    ye, xe = min(y1 + rh, h), min(x1 + rw, w)
    if ye > ys and xe > xs:
        out[:, ys - y1 : ye - y1, xs - x1 : xe - x1] = image[:, ys:ye, xs:xe]
    return out


def top_activating_patches(
    model: nn.Module,
    layer,
    channel: int | Sequence[int],
    images,
    k: int = 8,
    per_image: bool = True,
    batch_size: int = 256,
    progress: bool = False,
) -> TopPatches | list[TopPatches]:
    r"""The input patches that activate channel ``channel`` of ``layer`` most strongly over ``images``.

    Every image is passed through the network up to ``layer``; the activations :math:`A_{c,i,j}` of the
    channel are ranked, and for the ``k`` largest the receptive field of unit :math:`(i, j)`
    (:func:`receptive_field`) gives the patch of the image that the unit sees (Zeiler & Fergus, ECCV 2014;
    Girshick et al., CVPR 2014). The model runs in eval mode, which is restored afterwards.

    Args:
        model: the network.
        layer: a convolutional layer of ``model`` (module or dotted name) whose output is ``(N, C, h, w)``.
        channel: the channel (feature map) to rank, or a sequence of channels (ranked in the same passes).
        images: ``(N, 3, H, W)`` images in the model's input space.
        k: how many patches to return.
        per_image: at most one patch per image (its strongest unit), as in the usual figures; ``False`` ranks
            every (image, position) pair.
        batch_size: images per forward pass.
        progress: show a progress bar over batches.

    Returns:
        A :class:`TopPatches`, strongest first, with tensors on the images' device (a list of them, one per
        channel, when ``channel`` is a sequence).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        >>> top = top_activating_patches(net, "1", channel=2, images=torch.rand(10, 3, 16, 16), k=3)
        >>> top.patches.shape
        torch.Size([3, 3, 3, 3])
    """
    probe = _LayerProbe(model, layer)
    if probe.layer is model:
        raise ValueError("layer must be a convolutional layer inside the model, not the model itself")
    images = check_images(images, "images")
    single = not isinstance(channel, (list, tuple, range))
    channels = [check_int(c, "channel") for c in ([channel] if single else channel)]
    if not channels:
        raise ValueError("channel must be an int or a non-empty sequence of ints, got an empty sequence")
    k = check_int(k, "k", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    h, w = images.shape[-2:]
    field = receptive_field(model, layer, input_size=(h, w))
    device = probe.device
    chunks = []
    with model_mode(model), torch.no_grad():
        for start in tqdm(range(0, len(images), batch_size), disable=not progress, desc="activations"):
            out = probe(images[start : start + batch_size].to(device))
            if out.ndim != 4:
                raise ValueError(f"layer must output (N, C, h, w) feature maps, got shape {tuple(out.shape)}")
            probe.check_channel(out, torch.tensor(channels), "channel")
            chunks.append(out[:, channels].flatten(2).float().cpu())  # (B, n_channels, h*w)
            fmap_w = out.shape[-1]
    acts = torch.cat(chunks)  # (N, n_channels, h*w)
    n_avail = acts.shape[0] if per_image else acts.shape[0] * acts.shape[2]
    if k > n_avail:
        what = "images" if per_image else "units"
        raise ValueError(f"k must be <= the number of {what} ({n_avail}){' when per_image=True' * per_image}, got {k}")
    results = [_rank(acts[:, i], k, per_image, fmap_w, field, images, c) for i, c in enumerate(channels)]
    return results[0] if single else results


def _rank(acts: torch.Tensor, k: int, per_image: bool, fmap_w: int, field: ReceptiveField, images, channel: int
          ) -> TopPatches:
    """Top-k of one channel's ``(N, h*w)`` activations, with the boxes and pixels of their fields."""
    if per_image:
        best, where = acts.max(dim=1)
        vals, idx = best.topk(k)
        flat_pos = where[idx]
    else:
        vals, flat = acts.flatten().topk(k)
        idx, flat_pos = flat // acts.shape[1], flat % acts.shape[1]
    rows, cols = flat_pos // fmap_w, flat_pos % fmap_w
    h, w = images.shape[-2:]
    (rh, rw), boxes, patches = field.size, [], []
    for n, i, j in zip(idx.tolist(), rows.tolist(), cols.tolist(), strict=True):
        x1, y1, x2, y2 = field.box(i, j, image_size=(h, w))
        boxes.append([(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (y2 - y1) / h, (x2 - x1) / w])
        ay, ax = field.start[0] + i * field.jump[0], field.start[1] + j * field.jump[1]
        patches.append(_crop(images[n], ay, ax, rh, rw))
    dev = images.device
    return TopPatches(
        indices=idx.to(dev),
        values=vals.to(device=dev, dtype=images.dtype),
        positions=torch.stack([rows, cols], dim=1).to(dev),
        boxes=torch.tensor(boxes, dtype=images.dtype, device=dev),
        patches=torch.stack(patches),
        field=field,
        channel=channel,
    )


# ---------------------------------------------------------------------------- activation maximization


def total_variation(images) -> torch.Tensor:
    r"""Anisotropic total variation of each image, summed over channels:

    .. math:: R_{TV}(I) = \sum_{c,i,j} \lvert I_{c,i+1,j} - I_{c,i,j} \rvert + \lvert I_{c,i,j+1} - I_{c,i,j} \rvert

    (differences that would leave the image are dropped). Used as a smoothness prior by Mahendran &
    Vedaldi (CVPR 2015) and Rudin, Osher & Fatemi (1992).

    Args:
        images: ``(N, C, H, W)``.

    Returns:
        ``(N,)`` — one value per image.

    Example:
        >>> total_variation(torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]]))
        tensor([2.])
    """
    x = check_tensor(images, "images", ndim=4)
    dy = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().flatten(1).sum(1)
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().flatten(1).sum(1)
    return dy + dx


def _weights(value, name: str, n: int | None = None) -> float | torch.Tensor:
    """A regularization weight: a number >= 0, or a 1-D sequence of them (one per image)."""
    if isinstance(value, (list, tuple, torch.Tensor, np.ndarray)):
        t = check_tensor(torch.as_tensor(value, dtype=torch.float32) if isinstance(value, (list, tuple)) else value,
                         name, ndim=1)
        if n is not None and t.shape[0] != n:
            raise ValueError(f"{name} must be a number or hold one weight per image ({n}), got shape {tuple(t.shape)}")
        if bool((t < 0).any()):
            raise ValueError(f"{name} must be >= 0, got {t.tolist()}")
        return t
    return check_nonnegative(value, name)


def ascent_objective(score: torch.Tensor, image: torch.Tensor, l2=0.0, tv=0.0) -> torch.Tensor:
    r"""The regularized objective maximized by :func:`activation_maximization`, per image:

    .. math:: J(I) = S(I) - \lambda_2 \lVert I \rVert_2^2 - \lambda_{TV} R_{TV}(I)

    (Simonyan, Vedaldi & Zisserman, 2014, for the :math:`L_2` term; Mahendran & Vedaldi, 2015, for total
    variation :math:`R_{TV}`, see :func:`total_variation`).

    Args:
        score: ``(N,)`` target scores :math:`S(I)` (a unit, a channel mean or a class score before softmax).
        image: ``(N, C, H, W)`` — the zero-centred image :math:`I` being optimized.
        l2: :math:`\lambda_2 \ge 0`, one number or one per image ``(N,)``.
        tv: :math:`\lambda_{TV} \ge 0`, one number or one per image ``(N,)``.

    Returns:
        ``(N,)`` objective values.

    Example:
        >>> ascent_objective(torch.tensor([3.0]), torch.ones(1, 1, 2, 2), l2=0.5)
        tensor([1.])
    """
    score = check_tensor(score, "score", ndim=1)
    image = check_tensor(image, "image", ndim=4)
    n = image.shape[0]
    if score.shape[0] != n:
        raise ValueError(f"score must have one value per image ({n}), got shape {tuple(score.shape)}")
    l2 = _weights(l2, "l2", n)
    tv = _weights(tv, "tv", n)
    out = score
    if isinstance(l2, torch.Tensor) or l2:
        out = out - _on(l2, score) * image.pow(2).flatten(1).sum(1)
    if isinstance(tv, torch.Tensor) or tv:
        out = out - _on(tv, score) * total_variation(image)
    return out


def _on(weight, like: torch.Tensor):
    return weight.to(device=like.device, dtype=like.dtype) if isinstance(weight, torch.Tensor) else weight


@dataclass
class AscentResult:
    """What :func:`activation_maximization` returns (one entry per target).

    Attributes:
        images: ``(T, 3, H, W)`` in ``[0, 1]`` — the optimized inputs :math:`I^\\ast + 0.5`.
        activation: ``(T,)`` — the target's score :math:`S` on the final images (no jitter).
        start_activation: ``(T,)`` — the score on the starting images.
        history: ``(steps, T)`` — the score at every step (on the jittered input the step used).
        tv: ``(T,)`` — :func:`total_variation` of the final images, a smoothness measure.
        targets: ``(T,)`` — the channels or classes.
        start_images: ``(T, 3, H, W)`` — the starting images.
    """

    images: torch.Tensor
    activation: torch.Tensor
    start_activation: torch.Tensor
    history: torch.Tensor
    tv: torch.Tensor
    targets: torch.Tensor
    start_images: torch.Tensor


def _as_targets(target, name: str = "target") -> torch.Tensor:
    if isinstance(target, bool):
        raise TypeError(f"{name} must be an int or a sequence of ints, got {target!r}")
    if isinstance(target, numbers.Integral):
        return torch.tensor([int(target)])
    if isinstance(target, range):
        target = list(target)
    if not isinstance(target, (list, tuple, torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be an int or a sequence of ints, got {type(target).__name__} {target!r}")
    t = as_tensor(torch.tensor(target) if isinstance(target, (list, tuple)) else target, name)
    if t.is_floating_point() or t.dtype == torch.bool or t.ndim != 1 or t.numel() == 0:
        raise TypeError(f"{name} must be an int or a non-empty 1-D sequence of ints, got {t.dtype} of shape {tuple(t.shape)}")
    return t.long().cpu()


def activation_maximization(
    model: nn.Module,
    target,
    steps: int = 100,
    lr: float = 0.01,
    *,
    l2: float | Sequence[float] = 0.0,
    tv: float | Sequence[float] = 0.0,
    jitter: int = 0,
    seed: int = 0,
    layer=None,
    position: tuple[int, int] | None = None,
    image_size: int | tuple[int, int] = 64,
    init: torch.Tensor | None = None,
    optimizer: str = "adam",
    progress: bool = True,
) -> AscentResult:
    r"""Synthesize inputs that maximize a unit, a channel or a class score by gradient ascent on the input.

    The variable is the zero-centred image :math:`I` (the model sees :math:`x = I + 0.5`, kept in
    :math:`[0, 1]`), and each step increases

    .. math::

        J(I) = S\big(\tau(I)\big) - \lambda_2 \lVert I \rVert_2^2 - \lambda_{TV} R_{TV}(I),

    where :math:`S` is the target score and :math:`\tau` a random circular shift by up to ``jitter`` pixels in
    each direction (drawn anew every step): a feature that survives being moved cannot be a pixel-level
    artefact (Mordvintsev, Olah & Tyka, 2015). With ``optimizer="sgd"`` a step is plain gradient ascent,
    :math:`I \leftarrow \mathrm{clip}(I + \eta \nabla_I J)`, as in Simonyan et al. (2014); ``"adam"`` scales each
    pixel's step by its gradient history, so every pixel moves by about ``lr`` per step (in units of the
    :math:`[0, 1]` image). Several targets are optimized side by side, one image each.

    A unit right after a ReLU that is off on the starting image has zero gradient and never moves: maximize
    the layer before the ReLU (the pre-activation) instead.

    The target score :math:`S` is

    * ``layer=None`` — class ``target``'s score in the model's output, **before** softmax (maximizing a
      probability can be done by lowering the other classes instead);
    * ``layer`` given, ``position=None`` — the mean activation of channel ``target`` over the feature map;
    * ``layer`` and ``position=(row, col)`` given — the single unit at that position of channel ``target``.

    Args:
        model: the network (run in eval mode, restored afterwards; its parameters' ``.grad`` is not touched).
        target: a class or channel index, or a sequence of them (one image per entry).
        steps: number of ascent steps.
        lr: step size :math:`\eta`.
        l2: :math:`\lambda_2`, one number or one per target (to compare strengths side by side).
        tv: :math:`\lambda_{TV}`, one number or one per target.
        jitter: largest shift in pixels (0 = none).
        seed: seeds the starting noise and the jitter.
        layer: ``None`` (class scores) or a layer of the model (module or dotted name).
        position: ``(row, col)`` of a unit in the layer's feature map, or ``None`` for the channel mean.
        image_size: side (or ``(height, width)``) of the synthesized images.
        init: optional starting images ``(1 or T, 3, H, W)`` in ``[0, 1]``; default mid-grey plus noise of
            standard deviation 0.01, the same image for every target.
        optimizer: ``"adam"`` or ``"sgd"``.
        progress: show a tqdm progress bar.

    Returns:
        An :class:`AscentResult` with the images, the score reached and at the start, the history and the TV.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> res = activation_maximization(net, [0, 1], steps=5, layer="1", image_size=16, progress=False)
        >>> res.images.shape
        torch.Size([2, 3, 16, 16])
    """
    probe = _LayerProbe(model, layer)
    targets = _as_targets(target)
    steps = check_int(steps, "steps", minimum=1)
    lr = check_positive(lr, "lr")
    l2 = _weights(l2, "l2", len(targets))
    tv = _weights(tv, "tv", len(targets))
    jitter = check_int(jitter, "jitter", minimum=0)
    seed = check_int(seed, "seed", minimum=0)
    check_choice(optimizer, "optimizer", ("adam", "sgd"))
    if position is not None and layer is None:
        raise ValueError("position needs a layer: class scores have no spatial position")
    h, w = _pair(image_size, "image_size")
    device = probe.device
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    g = torch.Generator().manual_seed(seed)
    n = len(targets)
    if init is None:  # one starting image shared by all targets: a target's run does not depend on the others
        start = (0.5 + 0.01 * torch.randn(1, 3, h, w, generator=g)).expand(n, -1, -1, -1)
    else:
        start = check_images(init, "init", value_range=True).detach().cpu()
        if start.shape[0] not in (1, n):
            raise ValueError(f"init must hold 1 or {n} images (one per target), got shape {tuple(start.shape)}")
        start = start.expand(n, -1, -1, -1)
        h, w = start.shape[-2:]
    shifts = torch.randint(-jitter, jitter + 1, (steps, 2), generator=g).tolist()
    start = start.to(dtype)  # the model's precision (float64 models ascend in float64)
    image = (start.clamp(0, 1) - 0.5).to(device).requires_grad_(True)
    targets_dev = targets.to(device)

    def score(x: torch.Tensor) -> torch.Tensor:
        out = probe(x)
        probe.check_channel(out, targets, "target")
        rows = torch.arange(n, device=device)
        if out.ndim == 2:
            if position is not None:
                raise ValueError(f"position must be None for a layer with (N, C) output, got {position!r}")
            return out[rows, targets_dev]
        maps = out[rows, targets_dev]  # (T, h, w)
        if position is None:
            return maps.flatten(1).mean(1)
        if not (isinstance(position, (tuple, list)) and len(position) == 2):
            raise ValueError(f"position must be a (row, col) pair, got {position!r}")
        r = check_int(position[0], "position[0]", minimum=0, maximum=maps.shape[1] - 1)
        c = check_int(position[1], "position[1]", minimum=0, maximum=maps.shape[2] - 1)
        return maps[:, r, c]

    opt_cls = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    opt = opt_cls([image], lr=lr, maximize=True)
    history = torch.empty(steps, n)
    with model_mode(model), torch.enable_grad():
        with torch.no_grad():
            start_act = score(image + 0.5).detach()
        bar = tqdm(range(steps), disable=not progress, desc="gradient ascent")
        for t in bar:
            dy, dx = shifts[t]
            x = image + 0.5
            if dy or dx:
                x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            s = score(x)
            objective = ascent_objective(s, image, l2=l2, tv=tv)
            (grad,) = torch.autograd.grad(objective.sum(), image)
            image.grad = grad
            opt.step()
            with torch.no_grad():
                image.clamp_(-0.5, 0.5)
            history[t] = s.detach().float().cpu()
            if progress and (t % 10 == 0 or t == steps - 1):
                bar.set_postfix(score=f"{float(history[t].mean()):.3g}")
        with torch.no_grad():
            final = image.detach() + 0.5
            final_act = score(final).detach()
    return AscentResult(
        images=final,
        activation=final_act,
        start_activation=start_act,
        history=history,
        tv=total_variation(final),
        targets=targets,
        start_images=start.clamp(0, 1).to(device),
    )
