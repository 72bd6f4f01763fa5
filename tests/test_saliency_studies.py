"""The stored saliency studies of chapters 7 and 9: their results have the structure the chapters read.

(Reproduction of the stored values is ``tests/test_studies.py``'s job: ``python -m course_lib.studies check``.)
"""

from __future__ import annotations

import pytest

from course_lib import studies
from course_lib.studies import augmented_lite0, scorecam_lite0


def _stored(name):
    try:
        return studies.load(name)
    except studies.StudyError as error:
        pytest.skip(str(error))


def test_augmented_study_structure():
    stored = _stored("augmented_lite0")
    s, r = stored.settings, stored.results
    best, best_prior = augmented_lite0.chosen(r)
    assert best == s["chapter9_setting"], "chapter 9's setting must be the one chosen on validation"
    assert best_prior in r["val"]["prior"]
    for split in ("val", "heldout"):
        assert r[split]["shift_px"] == 32.0
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


def test_scorecam_study_structure():
    stored = _stored("scorecam_lite0")
    n = stored.settings["n_images"]
    assert n == 8 + stored.settings["n_crops"]
    assert len(stored.results["targets"]) == len(stored.results["raw_maps"]) == n
    assert all(len(m) == 5 and all(len(row) == 5 and min(row) >= 0 for row in m) for m in stored.results["raw_maps"])
    images = scorecam_lite0.chapter9_images()
    assert images.shape == (n, 3, 160, 160) and 0 <= float(images.min()) <= float(images.max()) <= 1
    maps = scorecam_lite0.stored_maps(stored.results)
    assert maps.shape == (n, 160, 160) and float(maps.amax()) == 1.0


def test_localization_study_structure():
    stored = _stored("lite0_localization")
    s, r = stored.settings, stored.results
    aug = augmented_lite0.SETTINGS
    assert s["corloc_taus"] == aug["corloc_taus"]
    assert (s["n_val"], s["val_seed"], s["n_test"], s["test_seed"]) == (aug["n_val"], aug["val_seed"],
                                                                        aug["n_heldout"], aug["heldout_seed"])
    for split in ("val", "test"):
        n = s[f"n_{split}_items"]
        for method in s["methods"]:
            assert len(r[split][method]["hit"]) == n
            assert all(len(v) == n and set(v) <= {0, 1} for v in r[split][method]["corloc"].values())
        assert all(r[split]["oracle (true mask)"]["hit"])  # the mask's maximum lies on the mask
    assert r["shortcut_error"] < 1e-3


def test_faithfulness_study_structure():
    stored = _stored("faithfulness_lite0")
    s, r = stored.settings, stored.results
    n = s["n_items"]
    assert len(r["items"]) == len(set(r["items"])) == n and len(r["fractions"]) == s["n_steps"] + 1
    assert len(r["p_image"]) == len(r["p_blurred"]) == n
    for method, row in r["methods"].items():
        assert len(row["deletion"]) == len(row["p_map"]) == n
        assert len(row["insertion"]) == (n if method in s["insertion_methods"] else 0)
        # every deletion curve starts at the intact image's probability
        assert all(abs(c[0] - p) < 1e-4 for c, p in zip(row["deletion"], r["p_image"], strict=True))


def test_sanity_study_structure():
    stored = _stored("sanity_lite0")
    s, r = stored.settings, stored.results
    assert r["stages"] == list(s["stages"])
    for stage in r["stages"]:
        for method in s["methods"]:
            rho, constant = r["rho"][stage][method], r["constant"][stage][method]
            assert len(rho) == len(constant) == s["n_items"]
            # a constant map has no rank correlation, and it is never scored as one
            assert all((v is None) == c for v, c in zip(rho, constant, strict=True))
            assert all(-1 <= v <= 1 for v in rho if v is not None)
