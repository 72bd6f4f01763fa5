"""The stored study scorecam_lite0: its results have the structure the chapters read (reproducing the values is
``python -m course_lib.studies check``'s job, in tests/test_studies.py)."""

from __future__ import annotations

from course_lib.studies import scorecam_lite0
from tests.helpers import stored_study


def test_scorecam_study_structure():
    stored = stored_study("scorecam_lite0")
    n = stored.settings["n_images"]
    assert n == 8 + stored.settings["n_crops"]
    assert len(stored.results["targets"]) == len(stored.results["raw_maps"]) == n
    assert all(len(m) == 5 and all(len(row) == 5 and min(row) >= 0 for row in m) for m in stored.results["raw_maps"])
    images = scorecam_lite0.chapter9_images()
    assert images.shape == (n, 3, 160, 160) and 0 <= float(images.min()) <= float(images.max()) <= 1
    maps = scorecam_lite0.stored_maps(stored.results)
    assert maps.shape == (n, 160, 160) and float(maps.amax()) == 1.0
