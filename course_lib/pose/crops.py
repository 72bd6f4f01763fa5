r"""Person crops for pose regression: :func:`crop_boxes` (``roi_align``), :func:`augment_crops` (DeepPose's
translation, zoom and flip augmentation) and :func:`pose_loader`, a ``DataLoader`` of augmented crops."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from torchvision.ops import roi_align

from .._checks import (
    check_images,
    check_int,
    check_nonnegative,
    check_probability,
    check_seed,
    check_size,
    check_tensor,
    describe,
    generator,
)
from .._types import Boxes, Images, Joints, Size
from ..boxes import check_boxes, square_boxes
from ..joints import check_joints
from .geometry import hflip_pose, normalize_joints

__all__ = ["crop_boxes", "augment_crops", "pose_loader"]


def crop_boxes(images: Images, boxes: Boxes, size: Size = 64) -> torch.Tensor:
    r"""Resample the region of each box to ``size`` with ``torchvision.ops.roi_align`` (bilinear samples,
    :math:`\lceil \text{box side} / \text{size} \rceil^2` of them averaged per output pixel, so that shrinking does
    not alias; a box of exactly ``size`` whole pixels is copied unchanged).

    A point at normalized box coordinates :math:`z = N(y; b)` lands at crop pixel :math:`(z + \tfrac12)\cdot`
    ``size``: the crop *is* the box, so :func:`normalize_joints` with the same box gives the joints in crop
    coordinates (centred). Parts of a box beyond the image border read as zeros (``roi_align``'s convention).

    Args:
        images: ``(N, 3, H, W)``.
        boxes: ``(N, 4)`` normalized ``(x, y, h, w)``, one per image; or ``(N, K, 4)``: ``K`` crops per image,
            returned as ``(N * K, 3, size, size)`` in image-major order.
        size: side of the output (or ``(h, w)``).

    Example:
        >>> crop_boxes(torch.rand(2, 3, 32, 32), torch.tensor([[0.5, 0.5, 0.5, 0.5]] * 2), 8).shape
        torch.Size([2, 3, 8, 8])
    """
    x = check_images(images, "images", channels=None)
    b = check_tensor(boxes, "boxes", ndim=(2, 3))
    if b.shape[-1] != 4 or b.shape[0] != x.shape[0]:
        raise ValueError(f"boxes must be (N, 4) or (N, K, 4) with N = {x.shape[0]} (one set per image), "
                         f"got {describe(b)}")
    flat = check_boxes(b.reshape(-1, 4), ndim=(1, 2), min_batch=1).to(device=x.device, dtype=x.dtype)
    k = 1 if b.ndim == 2 else b.shape[1]
    out_hw = check_size(size, "size")
    hgt, wid = x.shape[-2:]
    idx = torch.arange(x.shape[0], device=x.device, dtype=x.dtype).repeat_interleave(k)
    cx, cy, bh, bw = flat.unbind(-1)
    corners = torch.stack([(cx - bw / 2) * wid, (cy - bh / 2) * hgt, (cx + bw / 2) * wid, (cy + bh / 2) * hgt], 1)
    # snap to 1/1024 pixel: float noise (14/30 * 30 = 14.000001) must not add a sample per bin (roi_align's ceil)
    corners = (corners * 1024).round() / 1024
    rois = torch.cat([idx[:, None], corners], 1)
    return roi_align(x, rois, output_size=out_hw, spatial_scale=1.0, sampling_ratio=0, aligned=True)


def augment_crops(
    images: Images,
    joints: Joints,
    boxes: Boxes,
    *,
    size: int = 64,
    scale: float = 1.2,
    translate: float = 0.0,
    zoom: float = 0.0,
    flip: bool = False,
    swap: bool = True,
    seed: int | torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Person crops and their box-normalized joints, with DeepPose's augmentations.

    Each person box is made square (:func:`square_boxes` with ``scale``), then, for augmentation, its centre is
    moved by up to ``translate`` times its side in x and y and its side multiplied by a factor in
    :math:`[1 - \text{zoom}, 1 + \text{zoom}]`. The joints are normalized to the final box
    (:func:`normalize_joints`). With ``flip``, half of the crops (at random) are mirrored with
    :func:`hflip_pose` (``coords="centered"``, ``swap`` as given). The random draws come from ``seed``: an int
    (the same augmentation at every call), a CPU ``torch.Generator`` (drawn from), or ``None`` (torch's global
    generator).

    Returns:
        ``crops`` ``(N, 3, size, size)`` and ``targets`` ``(N, 14, 2)`` (centred, box-normalized).

    Example:
        >>> from course_lib.data import PoseFiguresDataset
        >>> ds = PoseFiguresDataset(4, seed=0)
        >>> x, y = augment_crops(ds.images, ds.joints, ds.boxes, translate=0.1, flip=True)
        >>> x.shape, y.shape
        (torch.Size([4, 3, 64, 64]), torch.Size([4, 14, 2]))
    """
    x = check_images(images, "images")
    j = check_joints(joints, batched=True)
    b = check_boxes(boxes, ndim=(1, 2), min_batch=1)
    if b.ndim != 2 or not (x.shape[0] == j.shape[0] == b.shape[0]):
        raise ValueError(f"images, joints and boxes must hold the same number of samples, got {x.shape[0]}, "
                         f"{j.shape[0]} and {tuple(b.shape)}")
    size = check_int(size, "size", minimum=4)
    translate = check_nonnegative(translate, "translate")
    zoom = check_probability(zoom, "zoom")
    n = x.shape[0]
    sq = square_boxes(b, scale, tuple(x.shape[-2:]))
    g = None if seed is None else generator(seed)  # None: torch's global generator
    if translate > 0 or zoom > 0:
        shift = (torch.rand(n, 2, generator=g) * 2 - 1) * translate
        factor = 1 + (torch.rand(n, generator=g) * 2 - 1) * zoom
        sq = sq.clone()
        sq[:, 0] += shift[:, 0].to(sq) * sq[:, 3]
        sq[:, 1] += shift[:, 1].to(sq) * sq[:, 2]
        sq[:, 2:] *= factor.to(sq)[:, None]
    crops = crop_boxes(x, sq, size)
    targets = normalize_joints(j.to(sq), sq)
    if flip:
        chosen = (torch.rand(n, generator=g) < 0.5).to(crops.device)
        if bool(chosen.any()):
            fc, ft = hflip_pose(crops[chosen], targets[chosen], swap=swap, coords="centered")
            crops, targets = crops.clone(), targets.clone()
            crops[chosen], targets[chosen] = fc, ft
    return crops, targets


def pose_loader(
    data,
    batch_size: int = 64,
    *,
    shuffle: bool = True,
    seed: int = 0,
    device: torch.device | str | None = None,
    **augment,
) -> DataLoader:
    """A ``DataLoader`` of ``(crops, box-normalized joints)`` batches for :func:`course_lib.training.fit`.

    Args:
        data: a :class:`~course_lib.data.PoseFiguresDataset` (or any object with ``images``, ``joints`` and
            ``boxes``), or a ``Subset`` of one.
        batch_size: poses per batch.
        shuffle: shuffle every epoch (seeded with ``seed``).
        seed: seeds the shuffling and the augmentation, so that a run can be repeated.
        device: where the crops are cut (the images are copied there once); by default where the images are.
        **augment: keyword arguments of :func:`augment_crops` (``size``, ``scale``, ``translate``, ``zoom``,
            ``flip``, ``swap``).

    Example:
        >>> from course_lib.data import PoseFiguresDataset
        >>> crops, targets = next(iter(pose_loader(PoseFiguresDataset(8), batch_size=4, flip=True)))
        >>> crops.shape, targets.shape
        (torch.Size([4, 3, 64, 64]), torch.Size([4, 14, 2]))
    """
    indices = None
    if isinstance(data, torch.utils.data.Subset):
        indices, data = torch.as_tensor(list(data.indices)), data.dataset
    for attr in ("images", "joints", "boxes"):
        if not hasattr(data, attr):
            raise TypeError(f"data must have images, joints and boxes (a PoseFiguresDataset), got {describe(data)}")
    images, joints, boxes = data.images, data.joints, data.boxes
    if indices is not None:
        images, joints, boxes = images[indices], joints[indices], boxes[indices]
    if device is not None:
        images, joints, boxes = (t.to(device) for t in (images, joints, boxes))
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    allowed = {"size", "scale", "translate", "zoom", "flip", "swap"}
    unknown = set(augment) - allowed
    if unknown:
        raise TypeError(f"unknown augmentation argument(s) {sorted(unknown)}; expected some of {sorted(allowed)}")
    g = torch.Generator().manual_seed(check_seed(seed) + 1)

    def collate(batch: list[int]):
        idx = torch.as_tensor(batch, device=images.device)
        return augment_crops(images[idx], joints[idx], boxes[idx], seed=g, **augment)

    shuffler = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(range(images.shape[0]), batch_size=batch_size, shuffle=shuffle, generator=shuffler,
                      collate_fn=collate)
