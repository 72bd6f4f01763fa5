r"""Receptive fields computed from the architecture: size, jump and start of the input region a unit sees.

Araujo, Norris & Sim, *Computing Receptive Fields of Convolutional Neural Networks*, Distill 2019: layer by
layer, :math:`r_l = r_{l-1} + (k_l^{\mathrm{eff}} - 1)\, j_{l-1}`, :math:`j_l = s_l\, j_{l-1}`,
:math:`a_l = a_{l-1} - p_l\, j_{l-1}`, with :math:`r_0 = j_0 = 1`, :math:`a_0 = 0`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from .._checks import check_int, check_size, resolve_layer
from .._types import Layer, Size
from ..pretrained import Normalize, SameConv2d

__all__ = ["ReceptiveField", "receptive_field"]

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

    def box(self, row: int, col: int, image_size: Size | None = None) -> tuple[int, int, int, int]:
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
            h, w = check_size(image_size, "image_size")
            y1, x1, y2, x2 = max(y1, 0), max(x1, 0), min(y2, h), min(x2, w)
        return (x1, y1, x2, y2)


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


def receptive_field(model: nn.Module, target_layer: Layer, input_size: Size | None = None) -> ReceptiveField:
    r"""The receptive field of the units of ``target_layer``, computed analytically from the architecture.

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
        target_layer: a submodule of ``model`` or its dotted name (``"features.9"``, ``"layer3"``); for a container the
            field of its output is returned.
        input_size: ``(height, width)`` of the input (or one int). Needed only to pass adaptive pooling layers;
            when given, the feature map size is reported too.

    Returns:
        A :class:`ReceptiveField`: ``size``, ``jump`` and ``start``, each ``(rows, columns)``.

    Raises:
        ValueError: ``target_layer`` is not in the model, or the path to it crosses a linear/flatten layer.
        TypeError: a module on the path whose spatial action is unknown.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1))
        >>> receptive_field(net, "2")
        ReceptiveField(size=(8, 8), jump=(2, 2), start=(-3, -3), output_size=None)
    """
    target = resolve_layer(model, target_layer, name="target_layer")
    state = _FieldState(check_size(input_size, "input_size") if input_size is not None else None)
    if target is model:
        _walk(model, "", state, None)
        return state.result()
    if not _walk(model, "", state, target):
        raise ValueError(
            f"target_layer {target_layer if isinstance(target_layer, str) else type(target_layer).__name__!r} is not on the main path of the "
            "model (it sits only in a skipped branch)"
        )
    return state.result()
