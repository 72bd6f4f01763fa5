"""Figures shared by the chapters: the book's style, saliency overlays with their colour bar, image grids, boxes.

Every chapter calls :func:`use_book_style` once: figures are then drawn at the width of the book's text column
(:data:`COLUMN_WIDTH` inches), with fonts of at least 9 pt at that width, colour-blind safe line colours and a
perceptually uniform colour map (``viridis``; ``inferno`` for saliency overlays, never ``jet``, whose bright
bands invent edges that are not in the data).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

from ._checks import as_tensor, check_int, check_probability, check_size
from ._types import Boxes, Size

__all__ = [
    "COLUMN_WIDTH",
    "SALIENCY_CMAP",
    "STYLE",
    "use_book_style",
    "to_numpy_image",
    "overlay",
    "saliency_colorbar",
    "image_grid",
    "show_images",
    "draw_box",
]

STYLE = Path(__file__).resolve().parent / "book.mplstyle"
COLUMN_WIDTH = 7.0  # inches: the text column of the book at the style's dpi
SALIENCY_CMAP = "inferno"


def use_book_style() -> None:
    """Apply the book's matplotlib style (``course_lib/book.mplstyle``) to every figure drawn afterwards.

    Example:
        >>> use_book_style()
        >>> plt.rcParams["figure.figsize"][0] == COLUMN_WIDTH
        True
        >>> plt.rcdefaults()
    """
    plt.style.use(STYLE)


def to_numpy_image(image) -> np.ndarray:
    """A ``(3, H, W)`` / ``(H, W)`` tensor or array (or ``(H, W, 3)`` array) as an ``(H, W, 3)`` float array."""
    x = as_tensor(image, "image").detach().float().cpu()
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 2:
        x = x[None].expand(3, -1, -1)
    if x.ndim != 3:
        raise ValueError(f"image must be (3, H, W), (H, W, 3) or (H, W), got shape {tuple(x.shape)}")
    if x.shape[0] in (1, 3):  # (C, H, W) -> (H, W, C)
        x = x.permute(1, 2, 0)
    elif x.shape[-1] not in (1, 3):
        raise ValueError(f"image must have 1 or 3 channels first or last, got shape {tuple(x.shape)}")
    if x.shape[-1] == 1:
        x = x.expand(-1, -1, 3)
    return x.numpy()


def overlay(image, saliency, alpha: float = 0.5, cmap: str = SALIENCY_CMAP) -> np.ndarray:
    r"""Blend a saliency map over an image: :math:`(1-\alpha)\,x + \alpha\,\mathrm{cmap}(s)`.

    Args:
        image: ``(3, H, W)`` tensor in ``[0, 1]``.
        saliency: ``(H, W)`` map; it is min-max normalized and resized to the image if needed.
        alpha: weight of the heat map.
        cmap: a matplotlib colormap name (default ``inferno``, perceptually uniform; pair the figure with
            :func:`saliency_colorbar`).

    Returns:
        An ``(H, W, 3)`` float array in ``[0, 1]``, ready for ``plt.imshow``.

    Example:
        >>> overlay(torch.rand(3, 8, 8), torch.rand(4, 4)).shape
        (8, 8, 3)
    """
    alpha = check_probability(alpha, "alpha")
    img = to_numpy_image(image)
    s = as_tensor(saliency, "saliency").detach().float().cpu()
    if s.ndim == 3 and s.shape[0] == 1:
        s = s[0]
    if s.ndim != 2:
        raise ValueError(f"saliency must be (H, W), got shape {tuple(s.shape)}")
    if tuple(s.shape) != img.shape[:2]:
        s = torch.nn.functional.interpolate(s[None, None], size=img.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    s = torch.nan_to_num(s)
    lo, hi = float(s.min()), float(s.max())
    s = (s - lo) / (hi - lo) if hi > lo else torch.zeros_like(s)
    heat = matplotlib.colormaps[cmap](s.numpy())[..., :3]
    return np.clip((1 - alpha) * img + alpha * heat, 0, 1)


def saliency_colorbar(fig, axes, cmap: str = SALIENCY_CMAP, label: str = "saliency (min-max normalized)"):
    """The colour bar that goes with :func:`overlay`'s heat maps: the map's scale from 0 to 1.

    Example:
        >>> fig, ax = plt.subplots()
        >>> saliency_colorbar(fig, ax).ax.get_ylabel()
        'saliency (min-max normalized)'
        >>> plt.close(fig)
    """
    mappable = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(0, 1), cmap=cmap)
    bar = fig.colorbar(mappable, ax=axes, fraction=0.046, pad=0.02)
    bar.set_label(label)
    return bar


def image_grid(images, nrow: int = 8, padding: int = 2, normalize: bool = False) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images into one ``(H', W', 3)`` array (``normalize`` rescales each to [0, 1])."""
    from torchvision.utils import make_grid

    x = as_tensor(images, "images").detach().float().cpu()
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
    nrow = check_int(nrow, "nrow", minimum=1)
    padding = check_int(padding, "padding", minimum=0)
    if normalize:
        flat = x.flatten(1)
        lo, hi = flat.min(1).values[:, None, None, None], flat.max(1).values[:, None, None, None]
        x = (x - lo) / (hi - lo).clamp_min(1e-12)
    grid = make_grid(x.clamp(0, 1), nrow=nrow, padding=padding, pad_value=1.0)
    return grid.permute(1, 2, 0).numpy()


def show_images(
    images: Sequence | torch.Tensor,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    size: float | None = None,
    cmap: str | None = None,
    suptitle: str | None = None,
):
    """Show images (tensors ``(3, H, W)``/``(H, W)`` or ``(H, W, 3)`` arrays) in a grid; returns the figure.

    ``size`` is the side of one image in inches; by default the grid fills the text column.
    """
    items = list(images)
    if not items:
        raise ValueError("images must not be empty")
    n = len(items)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    size = COLUMN_WIDTH / ncols if size is None else size
    title_room = 0.3 if titles is not None else 0.0
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + title_room) * nrows + (0.4 if suptitle else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        item = items[i]
        arr = item if isinstance(item, np.ndarray) and item.ndim == 3 and item.shape[-1] == 3 else None
        if arr is None:
            t = as_tensor(item, "images").detach().float().cpu()
            arr = t.numpy() if t.ndim == 2 else to_numpy_image(t)
        ax.imshow(np.clip(arr, 0, 1) if arr.ndim == 3 else arr, cmap=cmap if arr.ndim == 2 else None)
        if titles is not None and i < len(titles):
            ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    return fig


def draw_box(ax, box: Boxes, image_size: Size, color: str = "lime", label: str | None = None, **kwargs):
    """Draw a normalized ``(x, y, h, w)`` centre box on a matplotlib axis showing an image of ``image_size``.

    Unlike the conversions of :mod:`course_lib.boxes`, any four finite numbers are drawn, also a box with no
    area (an empty mask's zeros, a linear head's negative width): a figure shows what a model predicted.

    Example:
        >>> fig, ax = plt.subplots()
        >>> draw_box(ax, torch.tensor([0.5, 0.5, 0.5, 0.25]), 8).get_width()
        2.0
        >>> plt.close(fig)
    """
    b = as_tensor(box, "box").detach().float().cpu().flatten()
    if b.numel() != 4:
        raise ValueError(f"box must have 4 numbers (x, y, h, w), got shape {tuple(b.shape)}")
    hgt, wid = check_size(image_size, "image_size")
    x, y, h, w = b.tolist()
    rect = matplotlib.patches.Rectangle(
        ((x - w / 2) * wid - 0.5, (y - h / 2) * hgt - 0.5), w * wid, h * hgt, fill=False, edgecolor=color,
        linewidth=kwargs.pop("linewidth", 1.5), **kwargs
    )
    ax.add_patch(rect)
    if label:
        ax.text((x - w / 2) * wid, (y - h / 2) * hgt - 1, label, color=color, fontsize=9, va="bottom")
    return rect
