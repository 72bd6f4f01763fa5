"""course_lib.data.online: the loaders of downloadable data sets read a local copy, never download when told
not to, and say what to do without one (Oxford-IIIT Pet, LSP, CIFAR-10)."""

import numpy as np
import pytest
import torch

from course_lib import data
from course_lib.data import DataUnavailableError, load_lsp, load_oxford_pets


# ---------------------------------------------------------------------------------- Oxford-IIIT Pet
def test_oxford_pets_offline_without_download(tmp_path):
    with pytest.raises(DataUnavailableError, match="download=False"):
        load_oxford_pets(tmp_path, download=False)


def test_oxford_pets_offline_never_tries_to_download(tmp_path, monkeypatch):
    from torchvision.datasets import OxfordIIITPet

    import course_lib.data as data

    monkeypatch.setattr(data.availability, "network_available", lambda *a, **k: False)

    def no_download(self):
        raise AssertionError("load_oxford_pets tried to download without a network")

    monkeypatch.setattr(OxfordIIITPet, "_download", no_download)
    with pytest.raises(DataUnavailableError, match="cannot be reached.*ShapesDataset"):
        load_oxford_pets(tmp_path, download=True)


def _write_fake_pets(root):
    """Two annotated images and one without a head box, in the layout of the real archives."""
    from PIL import Image

    base = root / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "xmls").mkdir(parents=True)
    specs = [("Abyssinian_1", 60, 40, "cat", (11, 5, 30, 24)), ("beagle_7", 50, 80, "dog", (1, 1, 50, 40)),
             ("beagle_9", 30, 30, None, None)]
    lines = []
    for name, w, h, species, bb in specs:
        Image.new("RGB", (w, h), (200, 100, 50)).save(base / "images" / f"{name}.jpg")
        lines.append(f"{name} 1 {1 if species != 'dog' else 2} 1")
        if bb is None:
            continue
        xml = (f"<annotation><filename>{name}.jpg</filename><size><width>{w}</width><height>{h}</height>"
               f"<depth>3</depth></size><object><name>{species}</name><bndbox><xmin>{bb[0]}</xmin>"
               f"<ymin>{bb[1]}</ymin><xmax>{bb[2]}</xmax><ymax>{bb[3]}</ymax></bndbox></object></annotation>")
        (base / "annotations" / "xmls" / f"{name}.xml").write_text(xml)
    (base / "annotations" / "trainval.txt").write_text("\n".join(lines) + "\n")
    (base / "annotations" / "test.txt").write_text("")


def test_oxford_pets_reads_head_boxes_from_a_local_copy(tmp_path):
    _write_fake_pets(tmp_path)
    images, labels, boxes = load_oxford_pets(tmp_path, size=16, download=False)
    assert images.shape == (2, 3, 16, 16) and images.dtype == torch.float32
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    assert labels.tolist() == [0, 1]  # cat, dog; the image without a head box is skipped
    # VOC corners are 1-based and inclusive: pixels 11..30 of 60 -> [10, 30] / 60
    cat = [(10 + 30) / 2 / 60, (4 + 24) / 2 / 40, 20 / 40, 20 / 60]
    dog = [(0 + 50) / 2 / 50, (0 + 40) / 2 / 80, 40 / 80, 50 / 50]
    torch.testing.assert_close(boxes, torch.tensor([cat, dog]))
    assert load_oxford_pets(tmp_path, size=16, download=False, max_images=1)[0].shape[0] == 1


def test_cifar10_offline_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(data.availability, "network_available", lambda *a, **k: False)
    with pytest.raises(DataUnavailableError, match="ShapesDataset"):
        data.load_cifar10(tmp_path, download=True)
    with pytest.raises(DataUnavailableError, match="could not be loaded"):
        data.load_cifar10(tmp_path, download=False)


# ------------------------------------------------------------------------------------------ LSP
def test_load_lsp_offline_raises_a_clear_error(tmp_path):
    with pytest.raises(DataUnavailableError, match="PoseFiguresDataset"):
        load_lsp(tmp_path / "nothing_here", download=False)


def test_load_lsp_reads_a_local_copy(tmp_path):
    import scipy.io
    import skimage.io

    (tmp_path / "images").mkdir()
    raw = np.zeros((3, 14, 3))
    sizes = [(20, 30), (25, 10), (16, 16)]
    for i, (h, w) in enumerate(sizes):
        img = np.full((h, w, 3), 40 * (i + 1), dtype=np.uint8)
        skimage.io.imsave(tmp_path / "images" / f"im{i + 1:04d}.jpg", img, check_contrast=False)
        raw[0, :, i] = np.linspace(1, w, 14)  # MATLAB pixel centres, 1-based
        raw[1, :, i] = np.linspace(1, h, 14)
        raw[2, :, i] = (np.arange(14) % 3 == 0)  # 1 marks an occluded joint
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": raw})
    images, joints, vis = load_lsp(tmp_path, download=False)
    assert [tuple(im.shape) for im in images] == [(3, h, w) for h, w in sizes]
    assert joints.shape == (3, 14, 2) and vis.shape == (3, 14)
    h, w = sizes[1]
    torch.testing.assert_close(joints[1, :, 0], torch.from_numpy((np.linspace(1, w, 14) - 0.5) / w).float())
    torch.testing.assert_close(joints[1, :, 1], torch.from_numpy((np.linspace(1, h, 14) - 0.5) / h).float())
    assert torch.equal(vis[0], torch.from_numpy(np.arange(14) % 3 != 0))
    assert len(load_lsp(tmp_path, split="train", download=False)[0]) == 3
    with pytest.raises(DataUnavailableError, match="empty"):
        load_lsp(tmp_path, split="test", download=False)
