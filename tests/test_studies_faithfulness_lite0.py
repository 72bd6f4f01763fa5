"""The stored study faithfulness_lite0: its results have the structure the chapters read (reproducing the values is
``python -m course_lib.studies check``'s job, in tests/test_studies.py)."""

from __future__ import annotations

from tests.helpers import stored_study


def test_faithfulness_study_structure():
    stored = stored_study("faithfulness_lite0")
    s, r = stored.settings, stored.results
    n = s["n_items"]
    assert len(r["items"]) == len(set(r["items"])) == n and len(r["fractions"]) == s["n_steps"] + 1
    assert len(r["p_image"]) == len(r["p_blurred"]) == n
    for method, row in r["methods"].items():
        assert len(row["deletion"]) == len(row["p_map"]) == n
        assert len(row["insertion"]) == (n if method in s["insertion_methods"] else 0)
        # every deletion curve starts at the intact image's probability
        assert all(abs(c[0] - p) < 1e-4 for c, p in zip(row["deletion"], r["p_image"], strict=True))
