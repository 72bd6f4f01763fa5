"""Augmented Grad-CAM under Morbidelli et al.'s protocol (chapter 7):
held-out items 32-49 of ``shapes224(200, seed=2)``.

The arms, metrics and stored diagnostics are described in :mod:`course_lib.studies._augmented_paper`.
About 40 s of one idle core per item (the 100 forward/backward passes of the paper arm take most of it).
"""

from ._augmented_paper import study

STUDY = study("augmented_paper_lite0_heldout_c", "heldout",
              seed=2, first_item=32, n_items=18, minutes=12)
