"""The second shard of chapter 9's faithfulness study (:mod:`.faithfulness_lite0`): the next 50 items."""

from __future__ import annotations

from .faithfulness_lite0 import SETTINGS, study

STUDY = study(SETTINGS["n_items"], "faithfulness_lite0_b")
