r"""Pose metrics and loss: per-joint distances, PDJ and PCK normalized by the torso diameter, the DeepPose L2 loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._checks import as_tensor, check_choice, check_nonnegative, check_tensor
from .._types import Joints
from ..joints import NUM_JOINTS, check_joints, check_visibility
from .geometry import torso_diameter

__all__ = ["joint_distances", "pdj", "pck", "pose_loss"]


def joint_distances(pred: Joints, gt: Joints) -> torch.Tensor:
    r"""Euclidean distance per joint, :math:`\lVert \hat y_i - y_i \rVert_2`, shaped ``(..., 14)``."""
    p, g = check_joints(pred, "pred"), check_joints(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt must have the same shape, got {tuple(p.shape)} and {tuple(g.shape)}")
    return (p - g.to(p.device, p.dtype)).norm(dim=-1)


def _normalized_errors(pred: Joints, gt: Joints) -> torch.Tensor:
    d = joint_distances(pred, gt)
    g = as_tensor(gt, "gt").to(d.device, d.dtype)
    torso = torso_diameter(g)
    if bool((torso <= 0).any()):
        idx = (torso.reshape(-1) <= 0).nonzero().flatten().tolist()[:5]
        raise ValueError(f"gt has a zero torso diameter (left shoulder on the right hip) for pose(s) {idx}: "
                         "PCK/PDJ cannot be normalized")
    return d / torso.unsqueeze(-1)


def pdj(pred: Joints, gt: Joints, fractions: Sequence[float] | torch.Tensor | None = None,
        visibility: torch.Tensor | None = None) -> torch.Tensor:
    r"""Percentage of Detected Joints (DeepPose, Sec. 6.1) for several thresholds.

    A joint counts as detected when its error is at most a fraction :math:`f` of the torso diameter
    (:func:`torso_diameter` of the ground truth):

    .. math::

        \mathrm{PDJ}(f) = \frac{1}{|V|} \sum_{(n, i) \in V}
        \Big[ \lVert \hat y_{n,i} - y_{n,i} \rVert_2 \le f \cdot \lVert y_{n,\mathrm{lsho}} - y_{n,\mathrm{rhip}} \rVert_2 \Big],

    over the image/joint pairs :math:`V` (all of them, or those with ``visibility`` set). The coordinates must
    be isotropic (pixels, or fractions of a square image).

    Args:
        pred, gt: ``(N, 14, 2)`` or ``(14, 2)``.
        fractions: thresholds :math:`f`; default 0, 0.02, ..., 0.5.
        visibility: optional boolean flags ``(N, 14)``: only these joints are counted.

    Returns:
        ``(F,)`` detection rates in ``[0, 1]``, one per fraction.

    Example:
        >>> gt = torch.rand(4, 14, 2)
        >>> pdj(gt, gt, [0.0, 0.2]).tolist()
        [1.0, 1.0]
    """
    e = _normalized_errors(pred, gt)
    if fractions is None:
        fractions = torch.linspace(0, 0.5, 26)
    f = check_tensor(torch.as_tensor(fractions, dtype=e.dtype), "fractions", ndim=(0, 1)).to(e.device).reshape(-1)
    if bool((f < 0).any()):
        raise ValueError(f"fractions must be >= 0, got {f.tolist()}")
    v = check_visibility(visibility, e.shape, e.device)
    hits = (e.unsqueeze(-1) <= f).float().reshape(-1, f.numel())
    if v is not None:
        keep = v.reshape(-1)
        if not bool(keep.any()):
            raise ValueError("visibility marks no joint as visible: nothing to measure")
        hits = hits[keep]
    return hits.mean(0)


def pck(pred: Joints, gt: Joints, alpha: float = 0.2, visibility: torch.Tensor | None = None, per_joint: bool = False) -> torch.Tensor:
    r"""PCK@:math:`\alpha`: the fraction of joints within :math:`\alpha` torso diameters of the truth.

    .. math::

        \mathrm{PCK}@\alpha = \frac{1}{|V|} \sum_{(n, i) \in V}
        \Big[ \lVert \hat y_{n,i} - y_{n,i} \rVert_2 \le \alpha \, \lVert y_{n,\mathrm{lsho}} - y_{n,\mathrm{rhip}}
        \rVert_2 \Big]

    — the torso-normalized PCK used on LSP (e.g. PCK@0.2), i.e. :func:`pdj` at the single fraction
    :math:`\alpha`.

    Args:
        pred, gt: ``(N, 14, 2)`` or ``(14, 2)`` in isotropic coordinates.
        alpha: the fraction of the torso diameter, ``>= 0``.
        visibility: optional boolean flags ``(N, 14)``.
        per_joint: return the ``(14,)`` PCK of each joint (averaged over images) instead of one number.

    Example:
        >>> gt = torch.zeros(14, 2); gt[9, 0] = 1.0  # torso diameter 1
        >>> pred = gt.clone(); pred[0, 0] += 0.3     # one joint 0.3 torso diameters off
        >>> round(float(pck(pred, gt, alpha=0.2)), 4)  # 13 of 14 joints
        0.9286
    """
    alpha = check_nonnegative(alpha, "alpha")
    e = _normalized_errors(pred, gt)
    hits = (e <= alpha).float()
    v = check_visibility(visibility, e.shape, e.device)
    if not per_joint:
        if v is None:
            return hits.mean()
        if not bool(v.any()):
            raise ValueError("visibility marks no joint as visible: nothing to measure")
        return hits[v].mean()
    hits2, v2 = hits.reshape(-1, NUM_JOINTS), None if v is None else v.reshape(-1, NUM_JOINTS).float()
    if v2 is None:
        return hits2.mean(0)
    return (hits2 * v2).sum(0) / v2.sum(0).clamp_min(1)


def pose_loss(pred: Joints, target: Joints, reduction: str = "mean") -> torch.Tensor:
    r"""The DeepPose L2 loss: the squared distances of all joints summed per pose,

    .. math::

        L(\theta) = \frac{1}{|D|} \sum_{(x, y) \in D} \sum_{i=1}^{k} \lVert y_i - \psi_i(x; \theta) \rVert_2^2 ,

    averaged over the poses of the batch (``reduction="mean"``) or summed (``"sum"``).

    Example:
        >>> pose_loss(torch.ones(2, 14, 2), torch.zeros(2, 14, 2))
        tensor(28.)
    """
    check_choice(reduction, "reduction", ("mean", "sum"))
    p = check_tensor(pred, "pred", ndim=3, finite=False, shape={1: NUM_JOINTS, 2: 2})
    t = check_tensor(target, "target", ndim=3, finite=False, shape={1: NUM_JOINTS, 2: 2})
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(p.shape)} and {tuple(t.shape)}")
    per_pose = (p - t).pow(2).sum(dim=(1, 2))
    return per_pose.mean() if reduction == "mean" else per_pose.sum()
