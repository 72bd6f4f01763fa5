"""Augmented Grad-CAM under Morbidelli et al.'s protocol (chapter 7):
validation items 0-9 of ``shapes224(200, seed=3)``, on which chapter 7 chooses each arm's
setting and threshold per metric.

The arms, metrics and stored diagnostics are described in :mod:`course_lib.studies._augmented_paper`.
About 40 s of one idle core per item (the 100 forward/backward passes of the paper arm take most of it).
"""

from ._augmented_paper import study

STUDY = study("augmented_paper_lite0_val", "val",
              seed=3, first_item=0, n_items=10, minutes=8)
