"""Augmented Grad-CAM under Morbidelli et al.'s protocol (chapter 7):
held-out items 0-13 of ``shapes224(200, seed=2)``.

The arms, metrics and stored diagnostics are described in :mod:`course_lib.studies._augmented_paper`.
About 40 s of one idle core per item (the 100 forward/backward passes of the paper arm take most of it).
Items are independent (every explainer has an int seed, so each item gets the same warps wherever it sits in
the list): the stored file was assembled from seven shards of two items run on a shared CPU (the provenance
lists them); ``python -m course_lib.studies run augmented_paper_lite0_heldout_a`` recomputes it in one go.
"""

from ._augmented_paper import study

STUDY = study("augmented_paper_lite0_heldout_a", "heldout",
              seed=2, first_item=0, n_items=14, minutes=10)
