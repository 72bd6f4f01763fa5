"""Augmented Grad-CAM under Morbidelli et al.'s protocol, next to the course's solver, the TV prior alone and
upsampled Grad-CAM: held-out items 0–25 of ``shapes224(200, seed=2)`` (shard a of two; chapter 7
pools both shards, 52 items, for its paired intervals). The arms, metrics and stored diagnostics are described
in :mod:`course_lib.studies._augmented_paper`. About 15 minutes of one core
(``python -m course_lib.studies run augmented_paper_lite0_a``).
"""

from __future__ import annotations

from . import Study
from ._augmented_paper import run, settings

SETTINGS = settings("heldout", seed=2, first_item=0, n_items=26)
QUICK = {**SETTINGS, "n_items": 1}

STUDY = Study(
    name="augmented_paper_lite0_a",
    description="Augmented Grad-CAM, paper protocol vs course solver vs TV prior vs Grad-CAM (held-out, shard a)",
    chapter="07_gradient_saliency",
    settings=SETTINGS,
    quick=QUICK,
    run=run,
    minutes=15,
    atol=2e-5,  # IoUs rounded to 5 decimals, one thread; counts exact unless a float tie moves a maximum
    rtol=1e-4,  # objectives (hundreds) summed in float32
)
