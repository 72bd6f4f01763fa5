"""RISE (course_lib.saliency.rise): a region model, the estimator on given masks, the masks."""

from __future__ import annotations

import pytest
import torch

from course_lib.models import SmallCNN
from course_lib.saliency import RISE
from course_lib.saliency.rise import rise_masks
from tests.helpers import assert_close
from tests.helpers.models import RegionModel


def test_rise_puts_its_mass_in_the_region_the_score_reads():
    model = RegionModel()
    x = torch.ones(1, 3, 16, 16)
    maps = RISE(model, n_masks=2000, grid_size=4, p=0.5, batch_size=500, seed=0)(x, 0)[0]
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[2:6, 8:14] = True
    assert float(maps[inside].mean()) > float(maps[~inside].mean()) + 0.3
    peak = int(maps.argmax())
    assert inside.flatten()[peak]
    # far from the region the estimate is the mean score, E[f(x * M)] = E[mean of M over the region] = p
    raw = RISE(model, n_masks=2000, grid_size=4, p=0.5, batch_size=500, seed=0)(x, 0, normalize=False)[0]
    assert abs(float(raw[12:, :4].mean()) - 0.5) < 0.05


def test_rise_equals_its_estimator_on_given_masks():
    model = SmallCNN(num_classes=5, width=8).eval()
    x = torch.rand(2, 3, 16, 16)
    n, p = 40, 0.4
    masks = rise_masks(n, (16, 16), grid_size=3, p=p, seed=3)
    t = torch.tensor([1, 4])
    with torch.no_grad():
        want = torch.stack(
            [
                torch.einsum("m,mhw->hw", torch.softmax(model(x[i] * masks[:, None]), 1)[:, t[i]], masks) / (n * p)
                for i in range(2)
            ]
        )
    got = RISE(model, n_masks=n, grid_size=3, p=p, batch_size=16, seed=3)(x, t, normalize=False)
    assert_close(got, want, atol=1e-6, rtol=1e-5)
    # the masks, hence the maps, do not depend on the batch size
    again = RISE(model, n_masks=n, grid_size=3, p=p, batch_size=7, seed=3)(x, t, normalize=False)
    assert_close(again, got, atol=1e-6, rtol=1e-5)


def test_rise_masks():
    m = rise_masks(4000, (20, 30), grid_size=5, p=0.3, seed=0)
    assert m.shape == (4000, 20, 30)
    assert float(m.min()) >= 0 and float(m.max()) <= 1
    assert abs(float(m.mean()) - 0.3) < 0.02  # E[M(lambda)] = p
    assert torch.equal(rise_masks(5, 16, seed=1), rise_masks(5, 16, seed=1))
    assert not torch.equal(rise_masks(5, 16, seed=1), rise_masks(5, 16, seed=2))
    # a grid with every cell kept is all ones after upsampling and cropping
    assert_close(rise_masks(3, 16, grid_size=4, p=1.0), torch.ones(3, 16, 16))
    # the masks are smooth: neighbouring pixels differ by at most one bilinear step of the upsampled grid
    steps = m[:, :, 1:] - m[:, :, :-1]
    assert float(steps.abs().max()) <= 1 / 6 + 1e-6  # cell size ceil(30/5) = 6 pixels


def test_rise_constructor_argument_errors():
    model = SmallCNN(num_classes=5, width=8)
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\)"):
        RISE(model, p=1.0)
    with pytest.raises(ValueError, match="n_masks must be >= 1"):
        RISE(model, n_masks=0)
    with pytest.raises(TypeError, match="seed must be an integer"):
        RISE(model, seed=0.5)
