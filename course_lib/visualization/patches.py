"""The input patches that excite one channel most (Zeiler & Fergus, ECCV 2014; Girshick et al., R-CNN, 2014).

Every image goes through the network up to the layer (:class:`~.probe.LayerProbe`); the channel's activations
are ranked, and the receptive field of each of the strongest units (:func:`~.receptive_field.receptive_field`)
gives the patch of the image that it sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from .._checks import check_images, check_int
from .._state import model_mode
from .._types import Images, Layer
from .probe import LayerProbe
from .receptive_field import ReceptiveField, receptive_field

__all__ = ["TopPatches", "top_activating_patches"]


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
    target_layer: Layer,
    channel: int | Sequence[int],
    images: Images,
    k: int = 8,
    per_image: bool = True,
    batch_size: int = 256,
    progress: bool = False,
) -> TopPatches | list[TopPatches]:
    r"""The input patches that activate channel ``channel`` of ``target_layer`` most strongly over ``images``.

    Every image is passed through the network up to ``target_layer``; the activations :math:`A_{c,i,j}` of the
    channel are ranked, and for the ``k`` largest the receptive field of unit :math:`(i, j)`
    (:func:`receptive_field`) gives the patch of the image that the unit sees (Zeiler & Fergus, ECCV 2014;
    Girshick et al., CVPR 2014). The model runs in eval mode, which is restored afterwards.

    Args:
        model: the network.
        target_layer: a convolutional layer of ``model`` (module or dotted name) whose output is ``(N, C, h, w)``.
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
    probe = LayerProbe(model, target_layer)
    if probe.target_layer is model:
        raise ValueError("target_layer must be a convolutional layer inside the model, not the model itself")
    images = check_images(images, "images")
    single = not isinstance(channel, (list, tuple, range))
    channels = [check_int(c, "channel") for c in ([channel] if single else channel)]
    if not channels:
        raise ValueError("channel must be an int or a non-empty sequence of ints, got an empty sequence")
    k = check_int(k, "k", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    h, w = images.shape[-2:]
    field = receptive_field(model, target_layer, input_size=(h, w))
    device = probe.device
    chunks = []
    with model_mode(model), torch.no_grad():
        for start in tqdm(range(0, len(images), batch_size), disable=not progress, desc="activations"):
            out = probe(images[start : start + batch_size].to(device))
            if out.ndim != 4:
                raise ValueError(f"target_layer must output (N, C, h, w) feature maps, got shape {tuple(out.shape)}")
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
