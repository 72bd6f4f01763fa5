"""The real datasets, loaded where a network (or a local copy) exists: CIFAR-10, Oxford-IIIT Pet, LSP.

Offline and without a local copy every loader raises
:class:`~course_lib.data.availability.DataUnavailableError` saying what to do instead; the chapters then use
the offline datasets (:class:`~course_lib.data.ShapesDataset`, :class:`~course_lib.data.PoseFiguresDataset`).
Before a download each loader asks :func:`~course_lib.data.availability.network_available` (through the
module, so that a test replaces it in one place).

* :func:`load_cifar10` — CIFAR-10 through torchvision;
* :func:`load_oxford_pets` — Oxford-IIIT Pet images with their head boxes (Parkhi et al., CVPR 2012);
* :func:`load_lsp` — Leeds Sports Pose, 14 joints (Johnson & Everingham, BMVC 2010).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_choice, check_int
from ..boxes import xyxy_to_xyhw
from ..joints import NUM_JOINTS
from . import availability
from .availability import DataUnavailableError

__all__ = ["load_cifar10", "load_oxford_pets", "load_lsp"]

_CIFAR_HOST = ("www.cs.toronto.edu", 443)
_PETS_HOST = ("www.robots.ox.ac.uk", 443)


def load_cifar10(root: str | Path = "~/.cache/course_lib/cifar10", train: bool = True,
                 download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
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
    if not have_local and download and not availability.network_available(_CIFAR_HOST):
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


def _parse_pet_xml(path: Path) -> tuple[torch.Tensor, int]:
    """The head box of one Oxford-IIIT Pet annotation (PASCAL VOC XML) as normalized ``(x, y, h, w)``.

    VOC corners are 1-based inclusive pixel indices: the box covers pixels ``xmin..xmax``, i.e. the continuous
    interval ``[xmin - 1, xmax]``. Returns the box and the species (0 = cat, 1 = dog).
    """
    root = ET.parse(path).getroot()
    size = root.find("size")
    obj = root.find("object")
    if size is None or obj is None or obj.find("bndbox") is None:
        raise ValueError(f"{path} is not an Oxford-IIIT Pet head annotation (no <size> or <object><bndbox>)")
    wid, hgt = float(size.findtext("width")), float(size.findtext("height"))
    bb = obj.find("bndbox")
    x1, y1 = float(bb.findtext("xmin")) - 1, float(bb.findtext("ymin")) - 1
    x2, y2 = float(bb.findtext("xmax")), float(bb.findtext("ymax"))
    box = xyxy_to_xyhw(torch.tensor([x1, y1, x2, y2]), image_size=(int(hgt), int(wid)))
    species = 0 if (obj.findtext("name") or "").strip().lower() == "cat" else 1
    return box, species


def load_oxford_pets(
    root: str | Path = "~/.cache/course_lib/oxford_pets",
    size: int = 128,
    download: bool = True,
    max_images: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The real Oxford-IIIT Pet images with their head boxes (Parkhi et al., CVPR 2012).

    Loads ``torchvision.datasets.OxfordIIITPet`` (split ``trainval``, the one whose images carry a head box in
    ``annotations/xmls``), keeps the images that have a box, resizes each to ``size × size`` (the aspect ratio
    changes; normalized boxes stay valid under any resize) and returns the species as the label.

    Works wherever the files exist under ``root`` or a network can fetch them (Colab, about 800 MB). Offline
    and without a local copy it raises :class:`course_lib.data.DataUnavailableError` saying what to do; the
    chapters then use :class:`course_lib.data.ShapesDataset`, which has the same ``(image, class, box)`` form.

    Args:
        root: folder holding (or to receive) ``oxford-iiit-pet/``.
        size: side of the returned square images.
        download: fetch the archives if they are missing and a network exists.
        max_images: keep only the first ``max_images`` annotated images.

    Returns:
        ``images`` ``(N, 3, size, size)`` float32 in ``[0, 1]``, ``labels`` ``(N,)`` long (0 = cat, 1 = dog),
        ``boxes`` ``(N, 4)`` normalized ``(x, y, h, w)`` of the pet's head.

    Example:
        >>> images, labels, boxes = load_oxford_pets(max_images=100)  # doctest: +SKIP
    """
    from PIL import Image
    from torchvision.datasets import OxfordIIITPet

    size = check_int(size, "size", minimum=8)
    if max_images is not None:
        max_images = check_int(max_images, "max_images", minimum=1)
    root = Path(root).expanduser()
    base = root / "oxford-iiit-pet"
    have_local = (base / "images").is_dir() and (base / "annotations").is_dir()
    if not have_local and not download:
        raise DataUnavailableError(
            f"Oxford-IIIT Pet is not under {base} and download=False. Pass download=True where a network exists "
            "(e.g. Colab), or extract images.tar.gz and annotations.tar.gz from the dataset's page into that folder; "
            "offline, use course_lib.data.ShapesDataset(target='class_box') instead."
        )
    if not have_local and not availability.network_available(_PETS_HOST):
        raise DataUnavailableError(
            f"Oxford-IIIT Pet is not under {base} and its server cannot be reached (no network here). Run this where "
            "a network exists (e.g. Colab) or copy the extracted 'images' and 'annotations' folders into that "
            "directory; offline, use course_lib.data.ShapesDataset(target='class_box') instead."
        )
    try:
        ds = OxfordIIITPet(str(root), split="trainval", target_types="binary-category", download=download and not have_local)
    except (RuntimeError, OSError) as err:
        raise DataUnavailableError(f"Oxford-IIIT Pet could not be loaded from {base} ({err}).") from err
    xml_dir = base / "annotations" / "xmls"
    images, labels, boxes = [], [], []
    for path in ds._images:  # the split's image files, in the order of annotations/trainval.txt
        xml = xml_dir / f"{path.stem}.xml"
        if not xml.is_file():
            continue
        box, species = _parse_pet_xml(xml)
        with Image.open(path) as pil:
            img = torch.from_numpy(np.asarray(pil.convert("RGB")).copy()).permute(2, 0, 1).float().div_(255.0)
        img = F.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
        images.append(img.clamp_(0, 1))
        labels.append(species)
        boxes.append(box)
        if max_images is not None and len(images) >= max_images:
            break
    if not images:
        raise DataUnavailableError(f"no head annotations found in {xml_dir}: is annotations.tar.gz fully extracted?")
    return torch.stack(images), torch.tensor(labels, dtype=torch.long), torch.stack(boxes)


# ---------------------------------------------------------------------------------------------- LSP
LSP_URLS: tuple[str, ...] = (
    "https://sam.johnson.io/research/lsp_dataset.zip",
    "http://sam.johnson.io/research/lsp_dataset.zip",
)
_LSP_HOST = ("sam.johnson.io", 443)


def _read_lsp(folder: Path, split: str) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    import scipy.io
    import skimage.io

    mat = folder / "joints.mat"
    if not mat.is_file():
        raise DataUnavailableError(f"{mat} is missing: the LSP folder must hold joints.mat and images/")
    raw = np.asarray(scipy.io.loadmat(str(mat))["joints"], dtype=np.float64)
    if raw.shape[:2] != (3, NUM_JOINTS):
        raise DataUnavailableError(f"{mat}: expected a 3 x 14 x N array 'joints', got shape {raw.shape}")
    n = raw.shape[2]
    picks = {"all": range(n), "train": range(min(n, 1000)), "test": range(min(n, 1000), n)}[split]
    images, joints, visible = [], [], []
    for i in picks:
        path = folder / "images" / f"im{i + 1:04d}.jpg"
        if not path.is_file():
            raise DataUnavailableError(f"{path} is missing from the LSP folder {folder}")
        img = torch.from_numpy(np.ascontiguousarray(skimage.io.imread(path))).float().div_(255.0)
        if img.ndim == 2:
            img = img[..., None].expand(-1, -1, 3)
        img = img[..., :3].permute(2, 0, 1).contiguous()
        hgt, wid = img.shape[1:]
        xy = torch.from_numpy(raw[:2, :, i].T.copy()).float()  # (14, 2), 1-based pixel centres (MATLAB)
        xy = (xy - 0.5) / torch.tensor([wid, hgt], dtype=torch.float32)
        images.append(img)
        joints.append(xy)
        # joints.mat marks *occluded* joints with 1 in its third row (loaders commonly invert it)
        visible.append(torch.from_numpy(raw[2, :, i] == 0))
    if not images:
        raise DataUnavailableError(f"the {split!r} split of {folder} is empty")
    return images, torch.stack(joints), torch.stack(visible)


def load_lsp(root: str | Path = "~/.cache/course_lib/lsp", split: str = "all",
             download: bool = True) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """The real Leeds Sports Pose dataset (2000 images, 14 joints; Johnson & Everingham, BMVC 2010).

    The first 1000 images are the usual training split and the last 1000 the test split. Works where the
    extracted dataset (``joints.mat`` and ``images/``) is under ``root`` or a network can fetch it (Colab).
    Offline and without a local copy it raises :class:`course_lib.data.DataUnavailableError` saying what to do;
    the chapter then uses :class:`course_lib.data.PoseFiguresDataset`.

    Args:
        root: folder of the extracted dataset (``root/joints.mat``, ``root/images/im0001.jpg`` ...), or where
            to download it.
        split: ``"all"``, ``"train"`` or ``"test"``.
        download: fetch the archive when it is missing.

    Returns:
        ``images``: a list of ``(3, H, W)`` float tensors in ``[0, 1]`` (sizes differ), ``joints``
        ``(N, 14, 2)`` in image fractions (LSP order, as :data:`~course_lib.joints.JOINT_NAMES`), ``visibility`` ``(N, 14)`` bool.
    """
    check_choice(split, "split", ("all", "train", "test"))
    root = Path(root).expanduser()
    candidates = [root, root / "lsp_dataset"]
    for folder in candidates:
        if (folder / "joints.mat").is_file():
            return _read_lsp(folder, split)
    hint = (f"Put the extracted LSP dataset (joints.mat and images/) under {root}, or run this where a network "
            "exists (e.g. Colab) with download=True; offline, use course_lib.data.PoseFiguresDataset instead.")
    if not download:
        raise DataUnavailableError(f"LSP is not under {root} and download=False. {hint}")
    if not availability.network_available(_LSP_HOST):
        raise DataUnavailableError(f"LSP is not under {root} and its server cannot be reached (no network). {hint}")
    import urllib.request

    root.mkdir(parents=True, exist_ok=True)
    archive = root / "lsp_dataset.zip"
    errors = []
    for url in LSP_URLS:
        try:
            urllib.request.urlretrieve(url, archive)  # noqa: S310 - fixed, known URLs
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(root)
            break
        except (OSError, zipfile.BadZipFile) as err:
            errors.append(f"{url}: {err}")
    else:
        raise DataUnavailableError(f"LSP could not be downloaded ({'; '.join(errors)}). {hint}")
    for folder in candidates:
        if (folder / "joints.mat").is_file():
            return _read_lsp(folder, split)
    raise DataUnavailableError(f"the LSP archive did not contain joints.mat. {hint}")
