"""course_lib.studies.pose_transfer: the stored results hold every run of every backbone."""

from __future__ import annotations

from course_lib.zoo.recipes import pose as P


def test_transfer_study_records_every_run():
    from course_lib import studies

    r = studies.load("pose_transfer").results
    settings = studies.get("pose_transfer").settings
    assert set(r["runs"]) == set(settings["backbones"]) | {"scratch"}
    for name, runs in r["runs"].items():
        assert [run["seed"] for run in runs] == settings["seeds"], name
        for run in runs:
            assert 0 <= run["pck@0.1"] <= run["pck@0.2"] <= 1, name
    assert set(r["selection"]["lite0_layer"]) == set(P.LITE0_LAYERS)
