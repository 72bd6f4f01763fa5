"""Real photographs that ship inside scikit-image and scikit-learn (no download), and random crops of them.

* :data:`PHOTO_NAMES` / :func:`load_photo` — one photo as a ``(3, H, W)`` float tensor;
* :func:`random_photo_crops` — the backgrounds of :class:`~course_lib.data.ShapesDataset` and
  :class:`~course_lib.data.PoseFiguresDataset`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from .._checks import check_choice, check_int
from .._checks import generator as _generator
from .availability import DataUnavailableError

__all__ = ["PHOTO_NAMES", "load_photo", "random_photo_crops"]

_SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "hubble_deep_field")
_SKLEARN_PHOTOS = ("china", "flower")
PHOTO_NAMES: tuple[str, ...] = _SKIMAGE_PHOTOS + _SKLEARN_PHOTOS


@cache
def _photo_uint8(name: str) -> np.ndarray:
    if name in _SKIMAGE_PHOTOS:
        import skimage.data
        import skimage.io

        folder = Path(skimage.data.__file__).parent
        path = next(folder.glob(f"{name}.*"), None)
        if path is None:
            raise DataUnavailableError(f"scikit-image does not ship the photo {name!r} at {folder}")
        img = skimage.io.imread(path)
    else:
        from sklearn.datasets import load_sample_image

        img = load_sample_image(f"{name}.jpg")
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


@cache
def _photo_float(name: str) -> torch.Tensor:
    return torch.from_numpy(_photo_uint8(name).copy()).permute(2, 0, 1).float().div_(255.0)


@cache
def _photo_small(name: str, short_side: int = 160) -> torch.Tensor:
    """The photo downscaled (with antialiasing) so that its short side is ``short_side``: crops of it are
    resampled with one bilinear sample per output pixel without aliasing."""
    img = _photo_float(name)
    scale = short_side / min(img.shape[1:])
    size = (round(img.shape[1] * scale), round(img.shape[2] * scale))
    return F.interpolate(img[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)


def load_photo(name: str, size: int | None = None) -> torch.Tensor:
    """A real photo shipped inside scikit-image / scikit-learn as a ``(3, H, W)`` float tensor in ``[0, 1]``.

    Args:
        name: one of :data:`PHOTO_NAMES` (``"astronaut"``, ``"chelsea"``, ``"coffee"``, ...).
        size: if given, the photo is centre-cropped to a square and resized to ``size × size``.

    Example:
        >>> load_photo("chelsea", size=64).shape
        torch.Size([3, 64, 64])
    """
    check_choice(name, "name", PHOTO_NAMES)
    img = _photo_float(name).clone()
    if size is not None:
        size = check_int(size, "size", minimum=1)
        _, h, w = img.shape
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        img = img[:, top : top + s, left : left + s]
        img = F.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
        img = img.clamp(0, 1)
    return img


def random_photo_crops(
    n: int, size: int, seed: int | torch.Generator = 0, crop_range: tuple[float, float] = (0.25, 0.6),
    sampling_ratio: int = 1,
) -> torch.Tensor:
    """``n`` random square crops of the course photos, resized to ``size × size``, half of them mirrored.

    Each crop takes a random photo of :data:`PHOTO_NAMES`, a side of ``crop_range`` times the photo's short side
    and a random position; all crops of one photo are resampled in one batched ``roi_align`` call. ``seed``: an
    int (the same crops at every call) or a CPU ``torch.Generator`` (drawn from, so successive calls differ).

    Returns:
        ``(n, 3, size, size)`` float32 in ``[0, 1]``.

    Example:
        >>> random_photo_crops(4, 16, seed=0).shape
        torch.Size([4, 3, 16, 16])
    """
    generator = _generator(seed)
    out = torch.empty(n, 3, size, size)
    which = torch.randint(len(PHOTO_NAMES), (n,), generator=generator)
    crop_frac = torch.empty(n).uniform_(*crop_range, generator=generator)
    ox, oy = torch.rand(n, generator=generator), torch.rand(n, generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    for p, name in enumerate(PHOTO_NAMES):
        idx = torch.nonzero(which == p).flatten()
        if idx.numel() == 0:
            continue
        photo = _photo_small(name)
        _, ph, pw = photo.shape
        side = crop_frac[idx] * min(ph, pw)
        x1 = ox[idx] * (pw - side)
        y1 = oy[idx] * (ph - side)
        rois = torch.stack([torch.zeros_like(x1), x1, y1, x1 + side, y1 + side], dim=1)
        out[idx] = roi_align(photo[None], rois, output_size=(size, size), spatial_scale=1.0,
                             sampling_ratio=sampling_ratio, aligned=True)
    out[flip] = out[flip].flip(-1)
    return out
