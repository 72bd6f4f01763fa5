"""ROAD's noisy linear imputation and curves, against pytorch-grad-cam's ROAD and by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib.models import SmallCNN
from course_lib.saliency.metrics import linear_imputation, road

pgc_road = pytest.importorskip("pytorch_grad_cam.metrics.road")
pgc_conf = pytest.importorskip("pytorch_grad_cam.metrics.perturbation_confidence")
pgc_targets = pytest.importorskip("pytorch_grad_cam.utils.model_targets")


def test_imputation_equals_pytorch_grad_cam_without_noise():
    g = torch.Generator().manual_seed(0)
    for trial in range(3):
        image = torch.rand(3, 12, 10, generator=g)
        removed = torch.rand(12, 10, generator=g) < 0.3 + 0.2 * trial
        removed[0, 0] = removed[11, 9] = True  # corners: fewer neighbours
        theirs = pgc_road.NoisyLinearImputer(noise=0.0)(image, (~removed).float())
        ours = linear_imputation(image, removed)
        assert torch.allclose(ours, theirs, atol=1e-5)
        assert torch.equal(ours[:, ~removed], image[:, ~removed])


def test_imputation_by_hand_and_noise():
    image = torch.zeros(1, 3, 3)
    image[0, :, 2] = 1.0
    removed = torch.zeros(3, 3, dtype=torch.bool)
    removed[1, 1] = True
    # neighbours with value 1: (0,2) and (2,2) diagonal (1/12 each), (1,2) direct (1/6); all weights sum to 1
    assert float(linear_imputation(image, removed)[0, 1, 1]) == pytest.approx(1 / 3)
    noisy = linear_imputation(image, removed, noise=0.5, seed=torch.Generator().manual_seed(1))
    assert float(noisy[0, 1, 1]) != pytest.approx(1 / 3) and torch.equal(noisy[:, ~removed], image[:, ~removed])
    with pytest.raises(ValueError, match="removed"):
        linear_imputation(image, removed.float())


def test_road_equals_pytorch_grad_cam_most_relevant_first():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=3, width=4).eval()
    g = torch.Generator().manual_seed(2)
    x, maps = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 16, 16, generator=g)
    t = torch.tensor([0, 2])
    fractions, ours = road(model, x, maps, t, fractions=(0.2, 0.5, 0.7), noise=0.0)
    for j, f in enumerate(fractions.tolist()):
        metric = pgc_conf.PerturbationConfidenceMetric(
            pgc_conf.RemoveMostRelevantFirst(100 - 100 * f, pgc_road.NoisyLinearImputer(noise=0.0)))
        targets = [pgc_targets.ClassifierOutputSoftmaxTarget(int(c)) for c in t]
        theirs = metric(x, maps.numpy(), targets, model, return_diff=False)
        np.testing.assert_allclose(ours[:, j].numpy(), theirs, atol=1e-5)


def test_road_orders_and_bad_input():
    model = SmallCNN(num_classes=3, width=4).eval()
    x, maps = torch.rand(1, 3, 8, 8), torch.rand(1, 8, 8)
    f, most = road(model, x, maps, 0, fractions=(0.5,), noise=0.0)
    _, least = road(model, x, maps, 0, fractions=(0.5,), order="least", noise=0.0)
    assert most.shape == least.shape == (1, 1) and not torch.equal(most, least)
    with pytest.raises(ValueError, match="fractions"):
        road(model, x, maps, 0, fractions=(1.0,))
    with pytest.raises(ValueError, match="order"):
        road(model, x, maps, 0, order="middle")
    with pytest.raises(ValueError, match="clip"):
        road(model, x, maps, 0, clip=(1.0, 0.0))


def test_road_noise_stays_in_the_input_range():
    """With noise, a filled pixel next to black or white would leave [0, 1]; clipping keeps it a valid input
    (a model of the course rejects others), and clip=None leaves the noise as it is."""

    class Range(torch.nn.Module):  # records the range of what it is fed
        def forward(self, images):
            self.seen = (float(images.min()), float(images.max()))
            return torch.zeros(len(images), 2)

    x = torch.zeros(1, 3, 8, 8)
    x[..., 4:] = 1.0
    maps = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))
    model = Range()
    road(model, x, maps, 0, fractions=(0.5,), noise=0.5)
    assert model.seen[0] >= 0.0 and model.seen[1] <= 1.0
    road(model, x, maps, 0, fractions=(0.5,), noise=0.5, clip=None)
    assert model.seen[0] < 0.0 or model.seen[1] > 1.0
