"""course_lib.plotting: overlays, image grids and boxes."""

import numpy as np
import pytest
import torch

from course_lib.plotting import draw_box, image_grid, overlay, show_images


def test_overlay_blends_and_normalizes():
    img = torch.zeros(3, 4, 4)
    sal = torch.zeros(2, 2)
    sal[0, 0] = 5.0
    out = overlay(img, sal, alpha=1.0, cmap="gray")
    assert out.shape == (4, 4, 3)
    assert out.max() == pytest.approx(1.0) and out.min() == pytest.approx(0.0)
    const = overlay(torch.ones(3, 4, 4), torch.full((4, 4), 3.0), alpha=0.0)
    np.testing.assert_allclose(const, 1.0)  # alpha 0: the image itself, never NaN
    with pytest.raises(ValueError, match="alpha must be in"):
        overlay(img, sal, alpha=2)


def test_grids_and_boxes():
    grid = image_grid(torch.rand(6, 3, 8, 8), nrow=3, padding=1)
    assert grid.shape == (2 * 9 + 1, 3 * 9 + 1, 3)
    fig = show_images([torch.rand(3, 8, 8), torch.rand(8, 8)], titles=["a", "b"])
    draw_box(fig.axes[0], torch.tensor([0.5, 0.5, 0.5, 0.25]), 8)
    patch = fig.axes[0].patches[0]
    assert patch.get_width() == pytest.approx(2.0) and patch.get_height() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="4 numbers"):
        draw_box(fig.axes[0], torch.zeros(3), 8)
