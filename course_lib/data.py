r"""Offline data for the course.

* :class:`ShapesDataset` — coloured shapes of five classes composited on random crops of real photos, with
  class, box and pixel mask as ground truth. Deterministic from a seed; 10k 64×64 images in a few seconds.
* :func:`load_photo` / :data:`PHOTO_NAMES` — real photographs that ship inside scikit-image and
  scikit-learn (no download).
* :func:`load_cifar10` — the real CIFAR-10 through torchvision where a network exists (Colab); offline it
  raises :class:`DataUnavailableError` that says what to do instead.

Boxes everywhere are normalized ``(x, y, h, w)``: the box centre ``(x, y)`` and its height and width, all
as fractions of the image size.
"""

from __future__ import annotations

import math
import socket
import threading
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision.ops import roi_align

from ._checks import check_choice, check_int, check_probability

__all__ = [
    "SHAPE_CLASSES",
    "PHOTO_NAMES",
    "ShapesDataset",
    "PoseFiguresDataset",
    "load_photo",
    "load_cifar10",
    "DataUnavailableError",
    "mask_to_box",
]

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "star")

_SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "hubble_deep_field")
_SKLEARN_PHOTOS = ("china", "flower")
PHOTO_NAMES: tuple[str, ...] = _SKIMAGE_PHOTOS + _SKLEARN_PHOTOS


class DataUnavailableError(RuntimeError):
    """A real dataset could not be loaded (typically: no network and no local copy)."""


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


def mask_to_box(masks: torch.Tensor) -> torch.Tensor:
    """Tight normalized ``(x, y, h, w)`` boxes of boolean masks ``(..., H, W)``; empty masks give zeros."""
    h, w = masks.shape[-2:]
    rows, cols = masks.any(dim=-1), masks.any(dim=-2)
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    y1 = torch.where(rows, ar_h, h).amin(-1).float()
    y2 = torch.where(rows, ar_h, -1).amax(-1).float() + 1
    x1 = torch.where(cols, ar_w, w).amin(-1).float()
    x2 = torch.where(cols, ar_w, -1).amax(-1).float() + 1
    box = torch.stack([(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (y2 - y1) / h, (x2 - x1) / w], dim=-1)
    empty = ~rows.any(-1)
    return torch.where(empty[..., None], torch.zeros_like(box), box)


def _shape_distance(cls: torch.Tensor, u: torch.Tensor, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """A signed distance-like value (negative inside) of each class's shape, in pixels.

    ``u, v`` are pixel offsets in the shape's rotated frame ``(K, H, W)``; ``r`` the shape's radius ``(K,)``.
    """
    r = r[:, None, None]
    rho = torch.sqrt(u * u + v * v)
    out = torch.empty_like(u)
    for k, name in enumerate(SHAPE_CLASSES):
        sel = cls == k
        if not bool(sel.any()):
            continue
        uu, vv, rr, pp = u[sel], v[sel], r[sel], rho[sel]
        if name == "circle":
            d = pp - rr
        elif name == "square":
            d = torch.maximum(uu.abs(), vv.abs()) - 0.8 * rr
        elif name == "triangle":  # regular triangle with circumradius r: apothem r/2
            angles = [math.pi / 2 + 2 * math.pi * i / 3 for i in range(3)]
            d = torch.stack([uu * math.cos(a) + vv * math.sin(a) for a in angles]).amax(0) - 0.5 * rr
        elif name == "cross":
            arm = 0.3 * rr
            d1 = torch.maximum(uu.abs() - rr, vv.abs() - arm)
            d2 = torch.maximum(vv.abs() - rr, uu.abs() - arm)
            d = torch.minimum(d1, d2)
        else:  # five-pointed star: radius interpolates between tips (r) and notches (0.45 r)
            phi = torch.atan2(vv, uu) - math.pi / 2
            sector = 2 * math.pi / 5
            t = torch.remainder(phi, sector) / sector  # 0..1 within a sector, tips at 0 and 1
            t = (2 * t - 1).abs()  # 1 at tips, 0 at the notch
            radius = rr * (0.45 + 0.55 * t)
            d = (pp - radius) * 0.8
        out[sel] = d
    return out


def split_dataset(dataset: Dataset, fraction: float = 0.8) -> tuple[torch.utils.data.Subset, torch.utils.data.Subset]:
    """Deterministic split: the first ``fraction`` of the items, and the rest."""
    fraction = check_probability(fraction, "fraction", open_interval=True)
    n = len(dataset)
    cut = int(round(n * fraction))
    if cut == 0 or cut == n:
        raise ValueError(f"fraction={fraction} leaves an empty split of {n} images")
    idx = list(range(n))
    return torch.utils.data.Subset(dataset, idx[:cut]), torch.utils.data.Subset(dataset, idx[cut:])


def random_photo_crops(
    n: int, size: int, generator: torch.Generator, crop_range: tuple[float, float] = (0.25, 0.6), sampling_ratio: int = 1
) -> torch.Tensor:
    """``n`` random square crops of the course photos, resized to ``size × size``, half of them mirrored.

    Each crop takes a random photo of :data:`PHOTO_NAMES`, a side of ``crop_range`` times the photo's short side
    and a random position; all crops of one photo are resampled in one batched ``roi_align`` call.

    Returns:
        ``(n, 3, size, size)`` float32 in ``[0, 1]``.
    """
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


class ShapesDataset(Dataset):
    r"""Coloured shapes on real-photo backgrounds, with class, box and mask ground truth.

    Each image is a random crop of one of the photos in :data:`PHOTO_NAMES`, resized to ``size × size``,
    with ``n_objects`` shapes drawn on it. A shape has a class from :data:`SHAPE_CLASSES`, a random colour,
    radius, rotation and position, soft (anti-aliased) edges and a little shading. Everything is drawn
    with batched tensor operations, and the same ``seed`` gives the same images bit for bit.

    Attributes:
        images: ``(N, 3, size, size)`` float32 in ``[0, 1]``.
        labels: ``(N,)`` long class of the first object.
        boxes: ``(N, 4)`` normalized ``(x, y, h, w)`` of the first object (tight box of its visible mask).
        masks: ``(N, size, size)`` bool, union of all objects.
        object_labels, object_boxes, object_masks: per object, ``(N, K)``, ``(N, K, 4)``,
            ``(N, K, size, size)``.

    Args:
        n: number of images.
        size: side of the square images in pixels.
        seed: the random seed (the dataset is a pure function of its arguments).
        n_objects: shapes per image.
        classes: with several objects, ``"random"`` (independent classes), ``"same"`` (all one class: several
            instances) or ``"different"`` (all distinct classes).
        radius: range of shape radii as fractions of ``size``.
        target: what ``__getitem__`` returns with the image: ``"class"``, ``"box"``, ``"class_box"`` (a tuple
            ``(label, box)``) or ``"all"`` (a dict).

    Example:
        >>> ds = ShapesDataset(100, seed=0)
        >>> image, label = ds[0]
        >>> image.shape, ds.classes[label]  # doctest: +SKIP
        (torch.Size([3, 64, 64]), 'star')
    """

    classes = SHAPE_CLASSES

    def __init__(
        self,
        n: int,
        size: int = 64,
        seed: int = 0,
        n_objects: int = 1,
        classes: str = "random",
        radius: tuple[float, float] = (0.14, 0.3),
        target: str = "class",
    ) -> None:
        self.n = check_int(n, "n", minimum=1)
        self.size = check_int(size, "size", minimum=16)
        self.seed = check_int(seed, "seed", minimum=0)
        self.n_objects = check_int(n_objects, "n_objects", minimum=1, maximum=len(SHAPE_CLASSES))
        check_choice(classes, "classes", ("random", "same", "different"))
        check_choice(target, "target", ("class", "box", "class_box", "all"))
        if not (isinstance(radius, (tuple, list)) and len(radius) == 2):
            raise TypeError(f"radius must be a (min, max) pair of fractions, got {radius!r}")
        lo, hi = (check_probability(float(r), "radius") for r in radius)
        if not 0 < lo <= hi <= 0.5:
            raise ValueError(f"radius must satisfy 0 < min <= max <= 0.5, got {radius!r}")
        self.radius = (lo, hi)
        self.class_mode = classes
        self.target = target
        g = torch.Generator().manual_seed(self.seed)
        self.images, self.object_labels, self.object_masks = self._generate(g)
        self.object_boxes = mask_to_box(self.object_masks)
        self.labels = self.object_labels[:, 0].clone()
        self.boxes = self.object_boxes[:, 0].clone()
        self.masks = self.object_masks.any(dim=1)

    # ------------------------------------------------------------------ generation
    def _backgrounds(self, g: torch.Generator) -> torch.Tensor:
        return random_photo_crops(self.n, self.size, g, crop_range=(0.25, 0.6))

    def _draw_classes(self, g: torch.Generator) -> torch.Tensor:
        n, k, c = self.n, self.n_objects, len(SHAPE_CLASSES)
        if self.class_mode == "random" or k == 1:
            return torch.randint(c, (n, k), generator=g)
        if self.class_mode == "same":
            return torch.randint(c, (n, 1), generator=g).expand(n, k).clone()
        return torch.argsort(torch.rand(n, c, generator=g), dim=1)[:, :k]

    def _draw_positions(self, g: torch.Generator, radii: torch.Tensor) -> torch.Tensor:
        """Centres (N, K, 2) in pixels, each shape inside the image and apart from the others where possible."""
        n, k, s = self.n, self.n_objects, self.size
        centres = torch.empty(n, k, 2)
        for j in range(k):
            r = radii[:, j]
            best, best_ok = None, None
            for _attempt in range(30):
                cand = r[:, None] + torch.rand(n, 2, generator=g) * (s - 2 * r[:, None])
                if j == 0:
                    best = cand
                    break
                gap = (cand[:, None, :] - centres[:, :j]).norm(dim=-1) - (radii[:, :j] + r[:, None]) * 0.95
                ok = (gap > 0).all(dim=1)
                if best is None:
                    best, best_ok = cand, ok
                else:
                    best = torch.where((ok & ~best_ok)[:, None], cand, best)
                    best_ok = best_ok | ok
                if bool(best_ok.all()):
                    break
            centres[:, j] = best
        return centres

    def _generate(self, g: torch.Generator):
        n, k, s = self.n, self.n_objects, self.size
        images = self._backgrounds(g)
        labels = self._draw_classes(g)
        lo, hi = self.radius
        if k > 1:
            hi = min(hi, lo + (hi - lo) * 0.6)
        radii = (lo + torch.rand(n, k, generator=g) * (hi - lo)) * s
        centres = self._draw_positions(g, radii)
        angles = torch.rand(n, k, generator=g) * 2 * math.pi
        colours = torch.rand(n, k, 3, generator=g)
        # push colours away from grey so that objects stand out from most backgrounds
        colours = (colours - 0.5) * 1.6 + 0.5
        colours = colours.clamp(0.02, 0.98)
        shade = torch.empty(n, k).uniform_(0.15, 0.35, generator=g)
        light = torch.rand(n, k, generator=g) * 2 * math.pi
        masks = torch.zeros(n, k, s, s, dtype=torch.bool)
        coords = torch.arange(s, dtype=torch.float32) + 0.5
        yy, xx = torch.meshgrid(coords, coords, indexing="ij")
        chunk = 2048
        for j in range(k):  # later objects are drawn over earlier ones
            for start in range(0, n, chunk):
                sl = slice(start, min(n, start + chunk))
                cx, cy = centres[sl, j, 0, None, None], centres[sl, j, 1, None, None]
                a = angles[sl, j, None, None]
                dx, dy = xx - cx, yy - cy
                u = dx * torch.cos(a) + dy * torch.sin(a)
                v = -dx * torch.sin(a) + dy * torch.cos(a)
                d = _shape_distance(labels[sl, j], u, v, radii[sl, j])
                alpha = torch.sigmoid(-d * 2.5)  # anti-aliased edge, about one pixel wide
                r = radii[sl, j, None, None]
                grad = (dx * torch.cos(light[sl, j, None, None]) + dy * torch.sin(light[sl, j, None, None])) / r
                tone = 1 + shade[sl, j, None, None] * grad.clamp(-1, 1)
                colour = (colours[sl, j, :, None, None] * tone[:, None]).clamp(0, 1)
                images[sl] = images[sl] * (1 - alpha[:, None]) + colour * alpha[:, None]
                m = d < 0
                masks[sl, j] = m
                masks[sl, :j] &= ~m[:, None]  # occluded parts of earlier objects are not visible
        return images.clamp_(0, 1), labels, masks

    # ------------------------------------------------------------------ Dataset protocol
    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if self.target == "class":
            return self.images[i], self.labels[i]
        if self.target == "box":
            return self.images[i], self.boxes[i]
        if self.target == "class_box":
            return self.images[i], (self.labels[i], self.boxes[i])
        return self.images[i], {
            "label": self.labels[i],
            "box": self.boxes[i],
            "mask": self.masks[i],
            "object_labels": self.object_labels[i],
            "object_boxes": self.object_boxes[i],
        }

    def split(self, fraction: float = 0.8) -> tuple[torch.utils.data.Subset, torch.utils.data.Subset]:
        """Deterministic train/held-out split (the first ``fraction`` of the images / the rest)."""
        return split_dataset(self, fraction)

    def __repr__(self) -> str:
        return f"ShapesDataset(n={self.n}, size={self.size}, seed={self.seed}, n_objects={self.n_objects})"


# ---------------------------------------------------------------------- real data (needs a network)
_CIFAR_HOST = ("www.cs.toronto.edu", 443)


def _network_available(host: tuple[str, int] = _CIFAR_HOST, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host`` opens within ``timeout`` seconds in all.

    The name lookup is not covered by a socket's timeout (a broken resolver can stall for tens of seconds), so
    the attempt runs in a daemon thread and the answer is "no" once ``timeout`` has passed.
    """
    answer: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection(host, timeout=timeout):
                answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answer and answer[0])


def load_cifar10(root: str | Path = "~/.cache/course_lib/cifar10", train: bool = True, download: bool = True):
    """The real CIFAR-10 (``torchvision.datasets.CIFAR10``) as ``(images, labels)`` tensors.

    Works wherever the files exist under ``root`` or a network can fetch them (Colab). Offline and without a
    local copy it raises :class:`DataUnavailableError` saying what to do; the chapters then use
    :class:`ShapesDataset`.

    Returns:
        ``images`` ``(N, 3, 32, 32)`` float32 in ``[0, 1]`` and ``labels`` ``(N,)`` long.
    """
    from torchvision.datasets import CIFAR10

    root = Path(root).expanduser()
    have_local = (root / "cifar-10-batches-py").is_dir()
    if not have_local and download and not _network_available():
        raise DataUnavailableError(
            f"CIFAR-10 is not under {root} and its server cannot be reached (no network here). "
            "Run this where a network exists (e.g. Colab) or copy the extracted 'cifar-10-batches-py' folder "
            "into that directory; offline, use course_lib.data.ShapesDataset instead."
        )
    try:
        ds = CIFAR10(str(root), train=train, download=download and not have_local)
    except (RuntimeError, OSError) as err:
        raise DataUnavailableError(
            f"CIFAR-10 could not be loaded from {root} ({err}). Pass download=True where a network exists, or "
            "use course_lib.data.ShapesDataset offline."
        ) from err
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).float() / 255.0
    return images, torch.tensor(ds.targets, dtype=torch.long)


from ._pose_figures import PoseFiguresDataset  # noqa: E402
