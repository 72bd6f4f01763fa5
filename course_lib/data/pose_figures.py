r"""Articulated figures with the 14 LSP joints on real-photo backgrounds: :class:`PoseFiguresDataset`.

A figure is a kinematic chain in the image plane: a torso (tilted), a head on a neck, two arms and two legs of
two segments each, with random joint angles and body proportions. The figure faces the viewer, so the
person's *right* side is on the image's *left* when the torso is upright; its two sides are painted in two
clearly different colours (a random pair per image: the colour alone never says which side is which, the
geometry does, as in a photo). Parts are drawn as shaded capsules with a dark rim, in depth order: the limbs of
one side (chosen at random) behind the torso, the others in front. A joint is flagged not visible when a part
drawn later covers it, or when it falls outside the image.

Everything is drawn with batched tensor operations from one ``torch.Generator``: the same seed gives the same
images bit for bit.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from .._checks import check_choice, check_int, check_probability, check_seed
from ..boxes import mask_to_box
from ..joints import JOINT_NAMES, NUM_JOINTS
from .photos import random_photo_crops
from .shapes import split_dataset

__all__ = ["PoseFiguresDataset"]

# semantic parts: capsules (a, b, radius) except the torso (a convex quadrilateral)
_PARTS = ("r_upper_arm", "r_forearm", "r_thigh", "r_shin", "l_upper_arm", "l_forearm", "l_thigh", "l_shin",
          "torso", "neck", "head")
_P = {name: i for i, name in enumerate(_PARTS)}
_J = {name: i for i, name in enumerate(JOINT_NAMES)}
# the parts that meet at each joint (a joint is hidden only by a part that is not its own)
_OWN_PARTS = {
    "right_ankle": ("r_shin",), "right_knee": ("r_thigh", "r_shin"), "right_hip": ("r_thigh", "torso"),
    "left_hip": ("l_thigh", "torso"), "left_knee": ("l_thigh", "l_shin"), "left_ankle": ("l_shin",),
    "right_wrist": ("r_forearm",), "right_elbow": ("r_upper_arm", "r_forearm"),
    "right_shoulder": ("r_upper_arm", "torso"), "left_shoulder": ("l_upper_arm", "torso"),
    "left_elbow": ("l_upper_arm", "l_forearm"), "left_wrist": ("l_forearm",),
    "neck": ("torso", "neck", "head"), "head_top": ("head",),
}
# drawing order (back to front) when the right side is the far one; mirrored otherwise
_ORDER_FAR_RIGHT = ("r_upper_arm", "r_forearm", "r_thigh", "r_shin", "torso", "neck", "head",
                    "l_thigh", "l_shin", "l_upper_arm", "l_forearm")


def _mirror(name: str) -> str:
    return {"r": "l", "l": "r"}.get(name[0], "") + name[1:] if name[:2] in ("r_", "l_") else name


_ORDER_FAR_LEFT = tuple(_mirror(n) for n in _ORDER_FAR_RIGHT)

_SKIN = torch.tensor([[0.98, 0.84, 0.70], [0.90, 0.72, 0.56], [0.76, 0.57, 0.40], [0.55, 0.38, 0.26],
                      [0.36, 0.24, 0.16]])


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """HSV in ``[0, 1]`` → RGB, shapes ``(...,)`` → ``(..., 3)``."""
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=-1)
    return v[..., None] - v[..., None] * s[..., None] * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def _capsule_sdf(px: torch.Tensor, py: torch.Tensor, a: torch.Tensor, b: torch.Tensor, r: torch.Tensor):
    """Signed distance (px) of points ``(px, py)`` ``(N, M)`` (or ``(1, M)``) to the capsules with axis
    ``a → b`` ``(N, 2)`` and radius ``r`` ``(N,)``; also the distance to the axis over the radius (shading)."""
    ax, ay = px - a[:, 0:1], py - a[:, 1:2]
    bx, by = b[:, 0:1] - a[:, 0:1], b[:, 1:2] - a[:, 1:2]
    inv = 1.0 / (bx * bx + by * by).clamp_min(1e-9)
    t = (ax * bx).add_(ay * by).mul_(inv).clamp_(0, 1)
    axis = torch.hypot(ax.sub_(t * bx), ay.sub_(t * by))
    return axis - r[:, None], axis.div_(r[:, None])


def _polygon_sdf(px: torch.Tensor, py: torch.Tensor, verts: torch.Tensor, rounding: torch.Tensor):
    """Signed distance-like value of points ``(N, M)`` to convex polygons ``(N, V, 2)`` (max over edges)."""
    centroid = verts.mean(1, keepdim=True)
    e = verts.roll(-1, dims=1) - verts
    n = torch.stack([e[..., 1], -e[..., 0]], -1)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    inward = ((centroid - verts) * n).sum(-1, keepdim=True) > 0
    n = torch.where(inward, -n, n)  # outward normals
    off = (verts * n).sum(-1)  # (N, V)
    d = None
    for v in range(verts.shape[1]):
        dv = px * n[:, v, 0:1] + py * n[:, v, 1:2] - off[:, v : v + 1]
        d = dv if d is None else torch.maximum(d, dv)
    return d - rounding[:, None]


def _to(tree, device: torch.device):
    """Tensors inside (nested tuples in) a dict moved to ``device``."""
    if isinstance(tree, torch.Tensor):
        return tree.to(device)
    if isinstance(tree, dict):
        return {k: _to(v, device) for k, v in tree.items()}
    return tuple(_to(v, device) for v in tree)


class PoseFiguresDataset(Dataset):
    r"""Stick-and-limb figures with the 14 LSP joints, person box and visibility, on real-photo backgrounds.

    Attributes:
        images: ``(N, 3, size, size)`` float32 in ``[0, 1]``.
        joints: ``(N, 14, 2)`` joint ``(x, y)`` as fractions of the image side, in LSP order
            (:data:`course_lib.joints.JOINT_NAMES`).
        visibility: ``(N, 14)`` bool: inside the image and not covered by another body part.
        boxes: ``(N, 4)`` person box, normalized ``(x, y, h, w)``: the tight box of the drawn figure.
        masks: ``(N, size, size)`` bool, the figure's pixels.
        far_side: ``(N,)`` bool, True where the person's right side is drawn behind the torso.

    Args:
        n: number of images.
        size: side of the square images in pixels.
        seed: the random seed (the dataset is a pure function of its arguments).
        height: range of the figure's extent (longer side of its box) as fractions of ``size``.
        target: what ``__getitem__`` returns with the image: ``"joints"`` or ``"all"`` (a dict).
        device: where the figures are drawn (e.g. ``"cuda"`` for large sets); the random draws are made on the
            CPU, so poses and visibility are the same on every device, and the tensors are returned on the CPU.

    Example:
        >>> ds = PoseFiguresDataset(8, seed=0)
        >>> image, joints = ds[0]
        >>> image.shape, joints.shape
        (torch.Size([3, 96, 96]), torch.Size([14, 2]))
    """

    joint_names = JOINT_NAMES

    def __init__(self, n: int, size: int = 96, seed: int = 0, height: tuple[float, float] = (0.55, 0.9),
                 target: str = "joints", device: torch.device | str | None = None) -> None:
        self.n = check_int(n, "n", minimum=1)
        self.size = check_int(size, "size", minimum=32)
        self.seed = check_seed(seed)
        check_choice(target, "target", ("joints", "all"))
        if not (isinstance(height, (tuple, list)) and len(height) == 2):
            raise TypeError(f"height must be a (min, max) pair of fractions, got {height!r}")
        lo, hi = (check_probability(float(h), "height") for h in height)
        if not 0.2 <= lo <= hi <= 1:
            raise ValueError(f"height must satisfy 0.2 <= min <= max <= 1, got {height!r}")
        self.height, self.target = (lo, hi), target
        g = torch.Generator().manual_seed(self.seed)
        self.images = self._backgrounds(g)
        joints_px, geometry = self._poses(g)
        self.far_side = torch.rand(self.n, generator=g) < 0.5
        colours = self._colours(g)
        dev = torch.device(device) if device is not None else torch.device("cpu")
        self.masks = self._render(_to(geometry, dev), _to(colours, dev), dev)
        self.visibility = self._visibility(joints_px, geometry)
        self.joints = joints_px / self.size
        self.boxes = mask_to_box(self.masks)

    # ------------------------------------------------------------------ generation
    def _backgrounds(self, g: torch.Generator) -> torch.Tensor:
        out = random_photo_crops(self.n, self.size, g, crop_range=(0.3, 0.7), sampling_ratio=2)
        # soften the photo's contrast a little so that the figure reads as the foreground
        return (0.5 + 0.75 * (out - 0.5)).clamp_(0, 1)

    def _poses(self, g: torch.Generator):
        """Joint positions (N, 14, 2) in pixels and the parts' geometry."""
        n = self.n

        def U(lo, hi, *shape):  # noqa: N802
            return lo + (hi - lo) * torch.rand(n, *shape, generator=g)

        jit = U(0.9, 1.1, 8)  # body proportions
        torso_len, head_len, sw, hw = 0.30 * jit[:, 0], 0.16 * jit[:, 1], 0.105 * jit[:, 2], 0.065 * jit[:, 3]
        upper, fore, thigh, shin = 0.16 * jit[:, 4], 0.15 * jit[:, 5], 0.23 * jit[:, 6], 0.23 * jit[:, 7]
        tau, kappa = U(-0.35, 0.35), U(-0.35, 0.35)
        up = torch.stack([torch.sin(tau), -torch.cos(tau)], -1)
        lat = torch.stack([torch.cos(tau), torch.sin(tau)], -1)  # image-right for an upright torso
        pelvis = torch.zeros(n, 2)
        neck = pelvis + torso_len[:, None] * up
        hdir = torch.stack([torch.sin(tau + kappa), -torch.cos(tau + kappa)], -1)
        head_top = neck + head_len[:, None] * hdir
        J = torch.zeros(n, NUM_JOINTS, 2)  # noqa: N806
        J[:, _J["neck"]], J[:, _J["head_top"]] = neck, head_top
        # angles per side: 0 = hanging down, positive = away from the body; the two sides are sampled alike
        arm_u, arm_b = U(-0.4, 2.6, 2), U(-1.7, 1.7, 2)
        leg_u, leg_b = U(-0.25, 0.9, 2), U(-1.0, 1.0, 2)
        for k, (side, sgn) in enumerate((("right", -1.0), ("left", 1.0))):
            out = sgn * lat

            def direction(a, out=out):
                return torch.cos(a)[:, None] * (-up) + torch.sin(a)[:, None] * out

            sho = neck + sw[:, None] * out - 0.03 * up
            hip = pelvis + hw[:, None] * out
            elb = sho + upper[:, None] * direction(arm_u[:, k])
            wri = elb + fore[:, None] * direction(arm_u[:, k] + arm_b[:, k])
            kne = hip + thigh[:, None] * direction(leg_u[:, k])
            ank = kne + shin[:, None] * direction(leg_u[:, k] + leg_b[:, k])
            for name, pt in (("shoulder", sho), ("hip", hip), ("elbow", elb), ("wrist", wri), ("knee", kne),
                             ("ankle", ank)):
                J[:, _J[f"{side}_{name}"]] = pt
        head_c = neck + 0.6 * head_len[:, None] * hdir
        head_r = 0.42 * head_len
        # scale and place: the extent (joints plus the head circle, with a margin) fits inside the image
        lo = torch.minimum(J.amin(1), head_c - head_r[:, None]) - 0.045
        hi = torch.maximum(J.amax(1), head_c + head_r[:, None]) + 0.045
        ext = hi - lo
        s = self.size
        target = U(*self.height) * s
        k = target / ext.amax(1)  # pixels per body unit
        free = (s - ext * k[:, None]).clamp_min(0)
        origin = torch.rand(n, 2, generator=g) * free - lo * k[:, None]
        J = J * k[:, None, None] + origin[:, None]  # noqa: N806
        head_c = head_c * k[:, None] + origin
        radius = {"upper": 0.03, "fore": 0.026, "thigh": 0.04, "shin": 0.034}
        geo = {
            "torso": torch.stack([J[:, _J["right_shoulder"]], J[:, _J["left_shoulder"]], J[:, _J["left_hip"]],
                                  J[:, _J["right_hip"]]], 1),
            "torso_round": 0.012 * k,
            "neck": (J[:, _J["neck"]], head_c, 0.035 * k),
            "head": (head_c, head_c, head_r * k),
        }
        for side, p in (("right", "r"), ("left", "l")):
            geo[f"{p}_upper_arm"] = (J[:, _J[f"{side}_shoulder"]], J[:, _J[f"{side}_elbow"]], radius["upper"] * k)
            geo[f"{p}_forearm"] = (J[:, _J[f"{side}_elbow"]], J[:, _J[f"{side}_wrist"]], radius["fore"] * k)
            geo[f"{p}_thigh"] = (J[:, _J[f"{side}_hip"]], J[:, _J[f"{side}_knee"]], radius["thigh"] * k)
            geo[f"{p}_shin"] = (J[:, _J[f"{side}_knee"]], J[:, _J[f"{side}_ankle"]], radius["shin"] * k)
        return J, geo

    def _colours(self, g: torch.Generator) -> dict[str, torch.Tensor]:
        n = self.n
        h_r = torch.rand(n, generator=g)
        h_l = (h_r + 0.3 + 0.4 * torch.rand(n, generator=g)) % 1.0  # a clearly different hue
        sat = 0.65 + 0.35 * torch.rand(n, 2, generator=g)
        val = 0.75 + 0.25 * torch.rand(n, 2, generator=g)
        right = _hsv_to_rgb(h_r, sat[:, 0], val[:, 0])
        left = _hsv_to_rgb(h_l, sat[:, 1], val[:, 1])
        torso = _hsv_to_rgb(torch.rand(n, generator=g), 0.2 + 0.6 * torch.rand(n, generator=g),
                            0.45 + 0.5 * torch.rand(n, generator=g))
        skin = _SKIN[torch.randint(len(_SKIN), (n,), generator=g)]
        return {"right": right, "left": left, "torso": torso, "skin": skin}

    def _sdf(self, name: str, geo: dict, px: torch.Tensor, py: torch.Tensor, rows):
        if name == "torso":
            return _polygon_sdf(px, py, geo["torso"][rows], geo["torso_round"][rows]), None
        a, b, r = geo[name]
        return _capsule_sdf(px, py, a[rows], b[rows], r[rows])

    def _part_colour(self, name: str, colours: dict) -> torch.Tensor:
        if name == "torso":
            return colours["torso"]
        if name in ("neck", "head"):
            return colours["skin"]
        return colours["right"] if name.startswith("r_") else colours["left"]

    def _render(self, geo: dict, colours: dict, device: torch.device) -> torch.Tensor:
        n, s = self.n, self.size
        coords = torch.arange(s, dtype=torch.float32, device=device) + 0.5
        yy, xx = torch.meshgrid(coords, coords, indexing="ij")
        gx, gy = xx.reshape(1, -1), yy.reshape(1, -1)
        masks = torch.zeros(n, s * s, dtype=torch.bool)
        chunk = 64 if device.type == "cpu" else 4096  # small chunks keep the CPU's temporaries in cache
        far_side = self.far_side.to(device)
        for start in range(0, n, chunk):
            rows = torch.arange(start, min(n, start + chunk), device=device)
            m = rows.numel()
            img = self.images[rows.cpu()].to(device).reshape(m, 3, -1)
            mask = torch.zeros(m, s * s, dtype=torch.bool, device=device)
            far = far_side[rows]
            for name_r, name_l in zip(_ORDER_FAR_RIGHT, _ORDER_FAR_LEFT, strict=True):
                # the part in this depth slot: name_r where the right side is far, name_l elsewhere
                if name_r == name_l:
                    d, rel = self._sdf(name_r, geo, gx, gy, rows)
                    col = self._part_colour(name_r, colours)[rows]
                else:
                    f = far[:, None]
                    (a_r, b_r, r_r), (a_l, b_l, r_l) = geo[name_r], geo[name_l]
                    d, rel = _capsule_sdf(gx, gy, torch.where(f, a_r[rows], a_l[rows]),
                                          torch.where(f, b_r[rows], b_l[rows]), torch.where(far, r_r[rows], r_l[rows]))
                    col = torch.where(f, self._part_colour(name_r, colours)[rows],
                                      self._part_colour(name_l, colours)[rows])
                alpha = (0.5 - 0.6 * d).clamp_(0, 1)  # anti-aliased edge, about 1.7 pixels wide
                shade = (1 - 0.55 * (d + 1.5).clamp_(0, 1.5).div_(1.5))  # a dark rim inside the edge
                if rel is not None:
                    shade.mul_(1 - 0.35 * rel.clamp_(0, 1).square_())  # cylinder-like shading
                w = (shade * alpha)[:, None]
                img = img * (1 - alpha[:, None]) + col[:, :, None] * w
                mask |= d < 0
            self.images[rows.cpu()] = img.reshape(m, 3, s, s).clamp_(0, 1).cpu()
            masks[rows.cpu()] = mask.cpu()
        return masks.reshape(n, s, s)

    def _visibility(self, joints: torch.Tensor, geo: dict) -> torch.Tensor:
        n, s = self.n, self.size
        inside = ((joints >= 0) & (joints <= s)).all(-1)
        rows = torch.arange(n)
        jx, jy = joints[..., 0], joints[..., 1]
        d = {name: self._sdf(name, geo, jx, jy, rows)[0] for name in _PARTS}  # (N, 14) each
        occluded = torch.zeros(n, NUM_JOINTS, dtype=torch.bool)
        for far_right, order in ((True, _ORDER_FAR_RIGHT), (False, _ORDER_FAR_LEFT)):
            rows = (self.far_side == far_right).nonzero().flatten()
            rank = {name: r for r, name in enumerate(order)}
            for jname, own in _OWN_PARTS.items():
                j = _J[jname]
                top = max(rank[p] for p in own)
                for name in order[top + 1 :]:
                    if name not in own:
                        occluded[rows, j] |= d[name][rows, j] < -0.75
        return inside & ~occluded

    # ------------------------------------------------------------------ Dataset protocol
    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if self.target == "joints":
            return self.images[i], self.joints[i]
        return self.images[i], {"joints": self.joints[i], "visibility": self.visibility[i], "box": self.boxes[i],
                                "mask": self.masks[i]}

    def split(self, fraction: float = 0.8) -> tuple[torch.utils.data.Subset, torch.utils.data.Subset]:
        """Deterministic split (the first ``fraction`` of the images / the rest)."""
        return split_dataset(self, fraction)

    def __repr__(self) -> str:
        return f"PoseFiguresDataset(n={self.n}, size={self.size}, seed={self.seed})"
