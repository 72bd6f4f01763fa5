"""The stored study lite0_localization: its results have the structure the chapters read (reproducing the values is
``python -m course_lib.studies check``'s job, in tests/test_studies.py)."""

from __future__ import annotations

from course_lib.studies import augmented_lite0
from tests.helpers import stored_study


def test_localization_study_structure():
    stored = stored_study("lite0_localization")
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
