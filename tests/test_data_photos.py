"""course_lib.data.photos: the photos ship with installed packages and equal their source."""

import pytest
import torch

from course_lib.data import (
    PHOTO_NAMES,
    load_photo,
)


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_photos_ship_with_packages(name):
    img = load_photo(name)
    assert img.ndim == 3 and img.shape[0] == 3 and img.shape[1] > 100
    assert 0 <= float(img.min()) and float(img.max()) <= 1 and float(img.std()) > 0.05


def test_photo_resize_and_unknown_name():
    assert load_photo("astronaut", size=32).shape == (3, 32, 32)
    with pytest.raises(ValueError, match="name must be one of"):
        load_photo("lena")


def test_photo_matches_skimage():
    import skimage.data

    ref = torch.from_numpy(skimage.data.chelsea()).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(load_photo("chelsea"), ref)
