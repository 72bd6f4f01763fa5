r"""The DeepPose networks: :class:`PoseRegressor` (all joints from a person crop), :class:`RefinementStage` (one
cascade stage that refines each joint from a crop around its estimate) and :func:`predict_joints`, the full
pipeline."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .._checks import (
    check_images,
    check_int,
    check_module,
    check_positive,
    check_probability,
    check_size,
    check_tensor,
    describe,
    module_device,
)
from .._types import Boxes, Images, Joints, Size
from ..boxes import check_boxes, square_boxes
from ..joints import NUM_JOINTS, check_joints
from ..models import conv_backbone
from .crops import crop_boxes
from .geometry import denormalize_joints, torso_diameter

__all__ = ["PoseRegressor", "RefinementStage", "predict_joints"]


class _PoseNet(nn.Module):
    """Shared plumbing of the pose networks: input checks and the ``(N, 2k) -> (N, k, 2)`` reshape."""

    num_joints: int
    input_size: int

    def _check_input(self, x) -> torch.Tensor:
        # shape checks only: a NaN scan would cost a device sync on every forward pass
        x = check_tensor(x, "x", ndim=4, shape={1: 3}, finite=False)
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            raise ValueError(f"x must be (N, 3, {self.input_size}, {self.input_size}) crops, got {describe(x)}")
        return x

    def _net(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._net(self._check_input(x))
        return out.view(out.shape[0], self.num_joints, 2)


def _zero_last_linear(seq: nn.Sequential) -> None:
    # the regression starts by predicting the box centre (zero offsets): a calm first step
    last = [m for m in seq.modules() if isinstance(m, nn.Linear)][-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


class PoseRegressor(_PoseNet):
    r"""The first DeepPose stage: a CNN that regresses all joints at once, :math:`\psi(x; \theta) \in
    \mathbb{R}^{2k}`.

    ``features`` is the convolutional trunk of :class:`course_lib.models.SmallCNN` (so the features of a trained
    classifier can be reused: :meth:`from_classifier`); the head halves its ``H/4`` map ``downsample`` times
    with strided 3×3 convolutions (``downsample=1`` then halves the channels with a 3×3 convolution) and a
    linear layer maps the flattened map to :math:`2k` numbers — DeepPose's fully connected regression. The
    output ``(N, 14, 2)`` is the pose *normalized to the input crop*, :math:`N(y; b)` with :math:`b` the crop
    box (:func:`normalize_joints`); :func:`predict_joints` maps it back to the image.

    Args:
        width: base width of the trunk (:func:`course_lib.models.conv_backbone`).
        backbone: a trunk to use instead of a fresh one (its output must be ``(N, C, input_size/4, ...)``).
        input_size: side of the square input crops (a multiple of 16).
        num_joints: :math:`k`.
        dropout: dropout before the linear layer.
        downsample: strided convolutions in the head (1 or 2): the linear layer reads an ``H/8`` or ``H/16`` map.

    Example:
        >>> PoseRegressor(width=8)(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 14, 2])
    """

    def __init__(self, width: int = 32, backbone: nn.Module | None = None, input_size: int = 64,
                 num_joints: int = NUM_JOINTS, dropout: float = 0.0, downsample: int = 2) -> None:
        super().__init__()
        self.input_size = check_int(input_size, "input_size", minimum=16)
        if self.input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {input_size}")
        self.num_joints = check_int(num_joints, "num_joints", minimum=1)
        dropout = check_probability(dropout, "dropout")
        self.features = check_module(backbone, "backbone") if backbone is not None else conv_backbone(width, "batch")
        with torch.no_grad():
            was = self.features.training
            self.features.eval()
            probe = self.features(torch.zeros(1, 3, self.input_size, self.input_size,
                                              device=module_device(self.features)))
            self.features.train(was)
        if probe.ndim != 4 or probe.shape[-1] != self.input_size // 4:
            raise ValueError(f"backbone must map (N, 3, {self.input_size}, {self.input_size}) to a feature map of "
                             f"side {self.input_size // 4}, got {tuple(probe.shape)}")
        c = probe.shape[1]
        self.downsample = check_int(downsample, "downsample", minimum=1, maximum=2)
        if self.downsample == 2:
            convs, c_out, side = [*_conv_bn_relu(c, c, stride=2), *_conv_bn_relu(c, c, stride=2)], c, self.input_size // 16
        else:
            c_out = max(c // 2, 1)
            convs, side = [*_conv_bn_relu(c, c, stride=2), *_conv_bn_relu(c, c_out)], self.input_size // 8
        self.head = nn.Sequential(*convs, nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(c_out * side * side, 2 * self.num_joints))
        _zero_last_linear(self.head)

    @classmethod
    def from_classifier(cls, classifier: nn.Module, **kwargs) -> PoseRegressor:
        """A regressor whose trunk starts as a copy of ``classifier.features`` (transfer learning)."""
        features = getattr(classifier, "features", None)
        if not isinstance(features, nn.Module):
            raise TypeError(f"classifier must have a `features` module (a SmallCNN), got {describe(classifier)}")
        return cls(backbone=copy.deepcopy(features), **kwargs)

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class RefinementStage(_PoseNet):
    r"""One DeepPose cascade stage: refine every joint from a crop around its current estimate.

    For joint :math:`i` with estimate :math:`y_i^{s-1}`, the stage crops the box
    :math:`b_i^{s-1} = (y_i^{s-1}, \sigma\,\mathrm{diam}(y^{s-1}))` (centred on the estimate, side
    :math:`\sigma` torso diameters of the estimated pose), feeds the crop to a small CNN and maps its output
    back through the box (DeepPose, eq. 6):

    .. math::

        y_i^{s} = N^{-1}\big(\psi_i^s;\, b_i^{s-1}\big)
                = b_{i,c}^{s-1} + b_{i,\mathrm{size}}^{s-1}\, \psi_i\big(N(x; b_i^{s-1}); \theta_s\big),

    with :math:`b_{i,c}^{s-1} = y_i^{s-1}` the box centre: the output is the joint's position *in the box*, so
    the previous estimate enters once, as the centre, and :math:`\psi_i^s` is the displacement from it.

    The network outputs a displacement for every joint; from the crop around joint :math:`i` only its
    :math:`i`-th output is used. Training targets are :math:`N(y_i; b_i)` (:meth:`targets`).

    Args:
        patch_size: side of the crops fed to the network (a multiple of 4).
        width: channels of the first convolution.
        sigma: crop side in torso diameters.
        num_joints: :math:`k`.

    Example:
        >>> stage = RefinementStage(width=8)
        >>> stage.refine(torch.rand(2, 3, 64, 64), torch.rand(2, 14, 2)).shape
        torch.Size([2, 14, 2])
    """

    def __init__(self, patch_size: int = 24, width: int = 16, sigma: float = 1.0,
                 num_joints: int = NUM_JOINTS, min_side: float = 4.0) -> None:
        super().__init__()
        self.input_size = check_int(patch_size, "patch_size", minimum=8)
        if self.input_size % 4:
            raise ValueError(f"patch_size must be a multiple of 4, got {patch_size}")
        w = check_int(width, "width", minimum=1)
        self.sigma = check_positive(sigma, "sigma")
        self.min_side = check_positive(min_side, "min_side")
        self.num_joints = check_int(num_joints, "num_joints", minimum=1)
        side = self.input_size // 4
        self.net = nn.Sequential(
            *_conv_bn_relu(3, w), nn.MaxPool2d(2),
            *_conv_bn_relu(w, 2 * w), nn.MaxPool2d(2),
            *_conv_bn_relu(2 * w, 4 * w), nn.Flatten(),
            nn.Linear(4 * w * side * side, 2 * self.num_joints),
        )
        _zero_last_linear(self.net)

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def patch_boxes(self, joints: Joints, image_size: Size) -> torch.Tensor:
        r"""Crop boxes ``(N, 14, 4)`` (normalized ``(x, y, h, w)``): centred on each joint, side
        :math:`\sigma\,\mathrm{diam}` pixels (at least ``min_side``)."""
        j = check_joints(joints, batched=True)
        hgt, wid = check_size(image_size, "image_size")
        scale = torch.tensor([wid, hgt], dtype=j.dtype, device=j.device)
        side = (self.sigma * torso_diameter(j * scale)).clamp_min(self.min_side)  # pixels, (N,)
        side = side[:, None].expand(-1, j.shape[1])
        return torch.stack([j[..., 0], j[..., 1], side / hgt, side / wid], dim=-1)

    def crops(self, images: Images, joints: Joints) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``(N * 14, 3, p, p)`` crops around the joints and their boxes ``(N, 14, 4)``."""
        x = check_images(images, "images")
        boxes = self.patch_boxes(joints, tuple(x.shape[-2:]))
        return crop_boxes(x, boxes, self.input_size), boxes

    def targets(self, joints_estimate: Joints, joints_true: Joints, image_size: Size) -> torch.Tensor:
        r"""Training targets ``(N, 14, 2)``: the true joints normalized to the crop boxes around the estimates,
        :math:`N(y_i; b_i)` (the displacement to predict, in units of the crop side), for images of
        ``image_size``."""
        est = check_joints(joints_estimate, "joints_estimate", batched=True)
        true = check_joints(joints_true, "joints_true", batched=True).to(est)
        if true.shape != est.shape:
            raise ValueError(f"joints_estimate and joints_true differ in shape: {tuple(est.shape)} vs {tuple(true.shape)}")
        boxes = self.patch_boxes(est, image_size)
        return (true - boxes[..., :2]) / boxes[..., [3, 2]]

    def select(self, out: torch.Tensor) -> torch.Tensor:
        """From the ``(N * 14, 14, 2)`` outputs on the crops, the displacement of joint i from crop i: ``(N, 14, 2)``."""
        k = self.num_joints
        out = out.view(-1, k, k, 2)
        eye = torch.arange(k, device=out.device)
        return out[:, eye, eye]

    def refine(self, images: Images, joints: Joints, batch_size: int = 4096) -> torch.Tensor:
        """Apply the stage: new joint estimates ``(N, 14, 2)`` in image fractions (eval mode is the caller's)."""
        x = check_images(images, "images")
        j = check_joints(joints, batched=True).to(x)
        if j.shape[0] != x.shape[0]:
            raise ValueError(f"images has {x.shape[0]} images but joints has {j.shape[0]} poses")
        patches, boxes = self.crops(x, j)
        outs = [self(patches[i : i + batch_size]) for i in range(0, patches.shape[0], batch_size)]
        delta = self.select(torch.cat(outs))
        return boxes[..., :2] + delta * boxes[..., [3, 2]]


@torch.no_grad()
def predict_joints(regressor: PoseRegressor, images: Images, boxes: Boxes, refiner: RefinementStage | None = None, *,
                   scale: float = 1.2, batch_size: int = 256) -> torch.Tensor:
    """The full pipeline in eval mode: square person crops → :class:`PoseRegressor` → image coordinates
    (:func:`denormalize_joints`) → optionally one :class:`RefinementStage`.

    Args:
        regressor: the first stage.
        images: ``(N, 3, H, W)`` scenes.
        boxes: ``(N, 4)`` person boxes ``(x, y, h, w)`` (from the data or a detector).
        refiner: an optional cascade stage.
        scale: the crop margin (as in training, see :func:`square_boxes`).

    Returns:
        ``(N, 14, 2)`` joints in image fractions, on the images' device.
    """
    if not isinstance(regressor, PoseRegressor):
        raise TypeError(f"regressor must be a PoseRegressor, got {describe(regressor)}")
    if refiner is not None and not isinstance(refiner, RefinementStage):
        raise TypeError(f"refiner must be a RefinementStage or None, got {describe(refiner)}")
    x = check_images(images, "images")
    b = check_boxes(boxes, ndim=(1, 2), min_batch=1)
    if b.ndim != 2 or b.shape[0] != x.shape[0]:
        raise ValueError(f"boxes must be (N, 4) with N = {x.shape[0]}, got {describe(b)}")
    dev = module_device(regressor)
    modes = [(m, m.training) for m in (regressor, refiner) if m is not None]
    for m, _ in modes:
        m.eval()
    try:
        out = []
        for i in range(0, x.shape[0], batch_size):
            xi = x[i : i + batch_size].to(dev)
            sq = square_boxes(b[i : i + batch_size].to(dev), scale, tuple(xi.shape[-2:]))
            joints = denormalize_joints(regressor(crop_boxes(xi, sq, regressor.input_size)), sq)
            if refiner is not None:
                joints = refiner.refine(xi, joints)
            out.append(joints)
    finally:
        for m, was in modes:
            m.train(was)
    return torch.cat(out).to(x.device)
