"""Chapter 9's sanity check, re-initialization seed 2000: the same 30 items and cascade as
:mod:`course_lib.studies.sanity_lite0` (seed 0), with other random weights, so that what the chapter says about
each method holds over three independent re-initializations, not one. No figure maps are stored.
"""

from .sanity_lite0 import study

STUDY = study(2000, "sanity_lite0_seed2", n_figure=0, minutes=17)
