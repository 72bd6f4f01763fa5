"""What chapter 9's studies on ``shapes_lite0`` share: the held-out images, the methods and the random map."""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

#: the recipe's held-out seed and size: ``ShapesDataset(300, size=224, seed=2)``
POOL = {"n_pool": 300, "seed": 2, "size": 224}


@lru_cache(maxsize=2)
def pool(n_pool: int, seed: int, size: int):
    """The held-out ``ShapesDataset`` every item index refers to."""
    from ..data import ShapesDataset

    return ShapesDataset(n_pool, size=size, seed=seed)


def correct_items(model, n_pool: int, seed: int, size: int, device: str, batch_size: int = 50) -> torch.Tensor:
    """Indices, in order, of the pool's images that ``model`` classifies correctly."""
    data = pool(n_pool, seed, size)
    with torch.no_grad():
        pred = torch.cat([model(data.images[i : i + batch_size].to(device)).argmax(1).cpu()
                          for i in range(0, n_pool, batch_size)])
    return torch.nonzero(pred == data.labels).flatten()


def random_maps(indices, size: int, grid: int = 7, seed: int = 0) -> torch.Tensor:
    """The no-information map: uniform noise on a ``grid``×``grid`` lattice, seeded by the item's index,
    upsampled bilinearly like a Grad-CAM map of ``head`` and min-max normalized."""
    from ..saliency import normalize_maps, upsample_maps

    noise = torch.stack([torch.rand(grid, grid, generator=torch.Generator().manual_seed(seed * 100_003 + int(i)))
                         for i in indices])
    return normalize_maps(upsample_maps(noise, (size, size)))


def pooled(maps: torch.Tensor, side: int = 28) -> torch.Tensor:
    """Maps average-pooled to ``side``×``side`` (what a live spot-check compares)."""
    return F.adaptive_avg_pool2d(maps[:, None], side)[:, 0]
