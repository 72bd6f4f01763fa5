r"""The course's data: offline datasets drawn from a seed, real photos, and loaders of the real datasets.

* :mod:`.shapes` — :class:`ShapesDataset`: coloured shapes of five classes (:data:`SHAPE_CLASSES`) composited
  on random crops of real photos, with class, box and pixel mask as ground truth; :func:`split_dataset`.
* :mod:`.pose_figures` — :class:`PoseFiguresDataset`: articulated figures with the 14 LSP joints.
* :mod:`.photos` — :func:`load_photo` / :data:`PHOTO_NAMES`: real photographs that ship inside scikit-image and
  scikit-learn (no download); :func:`random_photo_crops`.
* :mod:`.online` — :func:`load_cifar10`, :func:`load_oxford_pets`, :func:`load_lsp`: the real datasets where a
  network (or a local copy) exists (Colab); offline they raise :class:`DataUnavailableError` that says what to
  do instead.
* :mod:`.availability` — :class:`DataUnavailableError` and the network probe the loaders share.

Boxes everywhere are normalized ``(x, y, h, w)``: the box centre ``(x, y)`` and its height and width, all
as fractions of the image size (:mod:`course_lib.boxes`, which also holds :func:`~course_lib.boxes.mask_to_box`).
"""

from __future__ import annotations

from .availability import DataUnavailableError
from .online import load_cifar10, load_lsp, load_oxford_pets
from .photos import PHOTO_NAMES, load_photo, random_photo_crops
from .pose_figures import PoseFiguresDataset
from .shapes import SHAPE_CLASSES, ShapesDataset, split_dataset

__all__ = [
    "SHAPE_CLASSES",
    "PHOTO_NAMES",
    "ShapesDataset",
    "PoseFiguresDataset",
    "load_photo",
    "load_cifar10",
    "DataUnavailableError",
    "random_photo_crops",
    "split_dataset",
    "load_oxford_pets",
    "load_lsp",
]
