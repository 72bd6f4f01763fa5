r"""Coloured shapes of five classes on random crops of real photos, with class, box and pixel mask as ground
truth: :class:`ShapesDataset`. Deterministic from a seed; 10k 64×64 images in a few seconds.

Boxes are normalized ``(x, y, h, w)`` (:mod:`course_lib.boxes`).
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

from .._checks import check_choice, check_int, check_probability, check_seed
from ..boxes import mask_to_box
from .photos import random_photo_crops

__all__ = ["SHAPE_CLASSES", "ShapesDataset", "split_dataset"]

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "star")


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
    """Deterministic split: the first ``fraction`` of the items, and the rest.

    Example:
        >>> train, held_out = split_dataset(list(range(10)), 0.8)
        >>> len(train), len(held_out)
        (8, 2)
    """
    fraction = check_probability(fraction, "fraction", open_interval=True)
    n = len(dataset)
    cut = int(round(n * fraction))
    if cut == 0 or cut == n:
        raise ValueError(f"fraction={fraction} leaves an empty split of {n} images")
    idx = list(range(n))
    return torch.utils.data.Subset(dataset, idx[:cut]), torch.utils.data.Subset(dataset, idx[cut:])


class ShapesDataset(Dataset):
    r"""Coloured shapes on real-photo backgrounds, with class, box and mask ground truth.

    Each image is a random crop of one of the photos in :data:`~course_lib.data.PHOTO_NAMES`, resized to ``size × size``,
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
        self.seed = check_seed(seed)
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
