"""course_lib.zoo.recipes.localization: the stored localizers on fresh held-out images; the pretrained localizer's parts."""

from course_lib.data import ShapesDataset
from course_lib.localization import (
    evaluate_localizer,
)


# ------------------------------------------------------------------------------------------------ zoo
def test_zoo_localizer_meets_its_targets_on_fresh_heldout_images():
    from course_lib import zoo

    model = zoo.load("shapes_localizer", device="cpu")
    heldout = ShapesDataset(300, seed=101)  # the recipe trains on seed 100
    m = evaluate_localizer(model, heldout.images, heldout.labels, heldout.boxes)
    assert m["accuracy"] >= 0.95 and m["mean_iou"] >= 0.75, m
    quick = zoo.load("shapes_quick_localizer", device="cpu")
    two = heldout.labels < 2
    q = evaluate_localizer(quick, heldout.images[two], heldout.labels[two], heldout.boxes[two])
    assert q["accuracy"] >= 0.9, q
