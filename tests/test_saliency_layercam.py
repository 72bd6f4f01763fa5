"""LayerCAM (course_lib.saliency.layercam): a hand-computed case, torchcam 0.5.0 cross-check, properties."""

from __future__ import annotations

import pytest
import torch

from course_lib.models import SmallCNN
from course_lib.saliency import GradCAM, LayerCAM
from tests.helpers import assert_close
from tests.helpers.models import (
    A0,
    T_SMALL,
    X_SMALL,
    X_TINY,
    check_batch_equals_single_images,
    small_model,
    tiny_model,
)

torchcam = pytest.importorskip("torchcam.methods")  # pinned in requirements.txt (torchcam==0.5.0)




# ---------------------------------------------------------------------- LayerCAM
@pytest.mark.parametrize("target, want", [(0, A0), (1, torch.tensor([[3.0, 0.0], [0.0, 2.0]]))])
def test_layercam_on_tiny_model_matches_hand_computation(target, want):
    # dy^c/dA is the linear weight V^c (tests/helpers/models.py): class 0 keeps V^0 = 1 on A^0 and drops the
    # negative -2 on A^1, so the map is A^0; class 1 keeps 3 at A^0_00 = 1 and 2 at A^1_11 = 1.
    raw = LayerCAM(tiny_model(), "0")(X_TINY, target, upsample=False, normalize=False)
    assert_close(raw[0], want, atol=1e-6, rtol=0)


def test_layercam_equals_torchcam_raw_map():
    model = small_model()
    with torchcam.LayerCAM(model, target_layer="2", input_shape=(3, 10, 10)) as extractor:
        want = extractor(class_idx=T_SMALL, scores=model(X_SMALL), normalized=False)[0]
    got = LayerCAM(model, "2")(X_SMALL, torch.tensor(T_SMALL), upsample=False, normalize=False)
    assert got.dtype == torch.float64 and float(want.max()) > 0
    # the same float64 operations in a different order: a few units of 1e-16 relative
    assert_close(got, want, atol=1e-12, rtol=1e-12)


def test_layercam_before_gap_and_linear_equals_gradcam_for_positive_class_weights():
    # dy^c/dA^k_ij = w^c_k / (h w) at every position: Grad-CAM's mean of it is the same number, and LayerCAM
    # keeps it where it is positive; with non-negative class weights the two maps are equal.
    model = SmallCNN(num_classes=5, width=8).eval()
    with torch.no_grad():
        model.fc.weight.abs_()
    x = torch.rand(2, 3, 32, 32)
    layer = LayerCAM(model, "features")(x, 1, upsample=False, normalize=False)
    grad = GradCAM(model, "features")(x, 1, upsample=False, normalize=False)
    assert_close(layer, grad, atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------------- properties
def test_batch_equals_single_images():
    check_batch_equals_single_images(LayerCAM)  # float64, 1e-9: see its docstring


def test_weights_of_a_wrong_shape_are_an_error():
    class Broken(LayerCAM):
        def _weights(self, activations, gradients, targets, images):
            return gradients[:, :, :1]

    with pytest.raises(ValueError, match=r"Broken._weights must return \(N, K\) = \(1, 16\) or \(N, K, h, w\)"):
        Broken(SmallCNN(num_classes=5, width=8).eval(), "features")(torch.rand(1, 3, 32, 32))
