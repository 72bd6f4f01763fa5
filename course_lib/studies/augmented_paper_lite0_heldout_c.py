"""Augmented Grad-CAM under Morbidelli et al.'s protocol, next to the course's solver, the TV prior alone and
upsampled Grad-CAM: held-out items 32-49 of ``shapes224(200, seed=2)``.

The arms, metrics and stored diagnostics are described in :mod:`course_lib.studies._augmented_paper`. Items
are independent (every explainer has an int seed, so each item gets the same warps wherever it sits in the
list). About 40 s of one idle core per item (the 100 forward/backward passes of the paper arm take most
of it).
"""

from __future__ import annotations

from . import Study
from ._augmented_paper import run, settings

SETTINGS = settings("heldout", seed=2, first_item=32, n_items=18)
QUICK = {**SETTINGS, "n_items": 1}

STUDY = Study(
    name="augmented_paper_lite0_heldout_c",
    description="Augmented Grad-CAM: paper protocol, course solver, TV prior, Grad-CAM (held-out items 32-49 of ``shapes224(200, seed=2)``)",
    chapter="07_gradient_saliency",
    settings=SETTINGS,
    quick=QUICK,
    run=run,
    minutes=12,
    atol=2e-5,  # IoUs rounded to 5 decimals, one thread; counts exact unless a float tie moves a maximum
    rtol=1e-4,  # objectives (hundreds) summed in float32
)
