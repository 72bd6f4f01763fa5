"""First-layer filter pictures (course_lib.visualization.filters)."""


from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.models import SmallCNN
from course_lib.visualization import (
    filter_grid,
    first_conv,
    normalize_filters,
)
from tests.helpers import assert_close

# ----------------------------------------------------------------------------------------------- filters


def test_normalize_filters_is_per_filter_min_max():
    w = torch.randn(6, 3, 5, 5) * torch.arange(1, 7).view(6, 1, 1, 1)
    n = normalize_filters(w)
    flat = n.flatten(1)
    assert_close(flat.amin(1), torch.zeros(6))
    assert_close(flat.amax(1), torch.ones(6))
    # an affine map of each filter: the normalized filter is unchanged
    assert_close(normalize_filters(3 * w + 7), n, atol=1e-5, rtol=1e-5)
    assert_close(normalize_filters(torch.full((1, 3, 2, 2), 4.0)), torch.full((1, 3, 2, 2), 0.5))


def test_filter_grid_layout_and_content():
    conv = nn.Conv2d(3, 10, 3)
    grid = filter_grid(conv, nrow=4, scale=2, padding=1)
    # torchvision.utils.make_grid layout: 3 rows x 4 columns of 6x6 tiles with 1-pixel gaps
    assert grid.shape == (3 * 7 + 1, 4 * 7 + 1, 3)
    assert grid.min() >= 0 and grid.max() <= 1
    first = normalize_filters(conv.weight)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(grid[1:7:2, 1:7:2], first, atol=1e-6)  # nearest upscaling keeps each weight
    assert filter_grid(nn.Sequential(nn.ReLU(), conv), nrow=4, scale=2).shape == grid.shape
    model = SmallCNN()
    assert first_conv(model) is model.features[0]
    with pytest.raises(ValueError, match="3 input channels"):
        filter_grid(nn.Conv2d(4, 8, 3))
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        first_conv(nn.Sequential(nn.Linear(2, 2)))
