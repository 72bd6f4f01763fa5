"""The stored study sanity_lite0: its results have the structure the chapters read (reproducing the values is
``python -m course_lib.studies check``'s job, in tests/test_studies.py)."""

from __future__ import annotations

from tests.helpers import stored_study


def test_sanity_study_structure():
    stored = stored_study("sanity_lite0")
    s, r = stored.settings, stored.results
    assert r["stages"] == list(s["stages"])
    for stage in r["stages"]:
        for method in s["methods"]:
            rho, constant = r["rho"][stage][method], r["constant"][stage][method]
            assert len(rho) == len(constant) == s["n_items"]
            # a constant map has no rank correlation, and it is never scored as one
            assert all((v is None) == c for v, c in zip(rho, constant, strict=True))
            assert all(-1 <= v <= 1 for v in rho if v is not None)
