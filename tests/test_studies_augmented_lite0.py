"""The stored study augmented_lite0: its results have the structure the chapters read (reproducing the values is
``python -m course_lib.studies check``'s job, in tests/test_studies.py)."""

from __future__ import annotations

import pytest

from course_lib.studies import augmented_lite0
from tests.helpers import stored_study


def test_augmented_study_structure():
    stored = stored_study("augmented_lite0")
    s, r = stored.settings, stored.results
    best, best_prior = augmented_lite0.chosen(r)
    assert best == s["chapter9_setting"], "chapter 9's setting must be the one chosen on validation"
    assert best_prior in r["val"]["prior"]
    for split in ("val", "heldout"):
        assert r[split]["shift_px"] == 224 / 7  # one cell of the 7×7 head at 224×224
        n = s[f"n_{split}_items"]
        for row in [r[split]["upsampled"], *r[split]["prior"].values(), *r[split]["augmented"].values()]:
            assert len(row["per_image"]["hit"]) == len(row["per_image"]["mean_iou"]) == n
            assert row["pointing_game"] == pytest.approx(sum(row["per_image"]["hit"]) / n, abs=1e-6)
            assert row["mean_iou"] == pytest.approx(sum(row["per_image"]["mean_iou"]) / n, abs=1e-4)
            assert len(row["iou"]) == len(s["taus"])
        for method in ("Grad-CAM", "Augmented Grad-CAM"):
            per_image = r[split]["chapter9"][method]
            assert list(per_image["corloc"]) == [str(t) for t in s["corloc_taus"]]
            assert all(len(v) == n and set(v) <= {0, 1} for v in per_image["corloc"].values())
        assert r[split]["chapter9"]["Grad-CAM"]["hit"] == r[split]["upsampled"]["per_image"]["hit"]
        assert r[split]["chapter9"]["Augmented Grad-CAM"]["hit"] == r[split]["augmented"][best]["per_image"]["hit"]
    sweep = r["solve_scale_sweep"]
    assert [row["grid"] for row in sweep.values()] == [min(224, 7 * k) if k else 224 for k in s["solve_scale_sweep"]]
