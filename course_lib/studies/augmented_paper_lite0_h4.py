"""Augmented Grad-CAM under Morbidelli et al.'s protocol, next to the course's solver, the TV prior alone and
upsampled Grad-CAM, shard h4: held-out items 8–9 of ``shapes224(200, seed=2)`` (chapter 7 pools the held-out shards for its paired intervals).
The arms, metrics and stored diagnostics are described in :mod:`course_lib.studies._augmented_paper`. About 1
minute of one idle core per item (``python -m course_lib.studies run augmented_paper_lite0_h4``); the 100
forward/backward passes per item take most of it. The shards are small because they had to run on a shared
CPU; the same module with a larger ``n_items`` (and more shards) gives the sample a ranking needs.
"""

from __future__ import annotations

from . import Study
from ._augmented_paper import run, settings

SETTINGS = settings("heldout", seed=2, first_item=8, n_items=2)
QUICK = {**SETTINGS, "n_items": 1}

STUDY = Study(
    name="augmented_paper_lite0_h4",
    description="Augmented Grad-CAM: paper protocol, course solver, TV prior, Grad-CAM (heldout shard h4)",
    chapter="07_gradient_saliency",
    settings=SETTINGS,
    quick=QUICK,
    run=run,
    minutes=5,
    atol=2e-5,  # IoUs rounded to 5 decimals, one thread; counts exact unless a float tie moves a maximum
    rtol=1e-4,  # objectives (hundreds) summed in float32
)
