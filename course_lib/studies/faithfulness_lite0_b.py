"""Chapter 9's faithfulness study, second shard: items 50-99 of the same held-out images, same settings.

See :mod:`course_lib.studies.faithfulness_lite0` for the protocol; the chapter concatenates the shards.
Measured: 55 minutes on the two-core CPU at a load of 12-28 (about 21 s per chunk of four images while the
machine was quiet, at the start of the run).
"""

from .faithfulness_lite0 import study

STUDY = study(50, "faithfulness_lite0_b")
