"""course_lib.studies: the mechanism on a toy study, and every real study's stored results checked."""

from __future__ import annotations

import json

import pytest

from course_lib import studies
from course_lib.studies import Study, StudyError, compare, leaves, spot_check

ZOO_CHECKPOINTS = studies.RESULTS.parent.parent / "zoo" / "checkpoints"
# Stored experiments still in the zoo's folder, waiting for their chapter's issue to move them into a study.
# The list only shrinks: a new experiment is a study from the start.
NOT_YET_MIGRATED: set[str] = set()  # every stored experiment is a study now


def _toy_run(settings, progress, device):
    n = settings["n"]
    return {"squares": [i * i * settings["scale"] for i in range(n)], "unit": {"scale": settings["scale"]}}


def _toy(settings=None, quick=None) -> Study:
    settings = settings or {"n": 5, "scale": 1.0}
    quick = quick or {**settings, "n": 2}
    return Study("toy", "squares", "00_toy", settings, quick, _toy_run, minutes=0.0, atol=1e-12, rtol=0.0)


@pytest.fixture
def toy(monkeypatch, tmp_path):
    study = _toy()
    monkeypatch.setattr(studies, "_registry", lambda: {"toy": study})
    monkeypatch.setattr(studies, "RESULTS", tmp_path)
    return study


def test_names_get_and_unknown_name(toy):
    assert studies.names() == ["toy"]
    assert studies.get("toy") is toy
    with pytest.raises(ValueError, match=r"name must be one of the studies \['toy'\], got 'nope'"):
        studies.get("nope")


def test_load_without_results_says_how_to_make_them(toy):
    with pytest.raises(StudyError, match="python -m course_lib.studies run toy"):
        studies.load("toy")


def test_run_save_load_round_trip_with_provenance(toy):
    data = studies.run("toy")
    path = studies.save(data)
    stored = studies.load("toy")
    assert path.name == "toy.json" and stored.results == {"squares": [0.0, 1.0, 4.0, 9.0, 16.0], "unit": {"scale": 1.0}}
    assert {"course_lib", "torch", "device", "seconds", "date", "threads"} <= set(stored.provenance)
    assert stored.provenance["quick"] is False


def test_check_passes_when_the_quick_slice_reproduces(toy):
    studies.save(studies.run("toy"))
    assert studies.check("toy")["compared"] == 3  # two squares and the scale


def test_check_fails_on_changed_settings(toy, monkeypatch):
    studies.save(studies.run("toy"))
    monkeypatch.setattr(studies, "_registry", lambda: {"toy": _toy({"n": 5, "scale": 2.0})})
    with pytest.raises(StudyError, match="other settings"):
        studies.check("toy")


def test_check_names_a_value_that_is_not_reproduced(toy):
    data = studies.run("toy")
    data["results"]["squares"][1] = 1.5
    studies.save(data)
    with pytest.raises(StudyError, match=r"squares/1: stored 1.5, recomputed 1.0"):
        studies.check("toy")


def test_compare_prefix_subset_and_missing():
    stored = {"a": [1.0, 2.0, 3.0], "b": {"x": 1, "y": None}}
    assert compare({"a": [1.0, 2.0], "b": {"y": None}}, stored, 0.0, 0.0) == []
    assert compare({"a": [1.0, 2.0, 3.0, 4.0]}, stored, 0.0, 0.0) == ["a/3: computed by the quick slice but not stored"]
    assert compare({"a": [1.0 + 1e-9]}, stored, 1e-8, 0.0) == []
    assert compare({"a": [1.1]}, stored, 0.0, 0.05) == ["a/0: stored 1.0, recomputed 1.1"]
    assert compare({"b": {"x": True}}, {"b": {"x": 1}}, 0.0, 0.0) != []  # a bool is not the number 1


def test_leaves_paths():
    assert dict(leaves({"a": [{"b": 1}, 2], "c": "s"})) == {"a/0/b": 1, "a/1": 2, "c": "s"}


def test_spot_check():
    assert spot_check([1.0, 2.0], [1.0, 2.0 + 1e-7], atol=1e-6) == pytest.approx(1e-7)
    with pytest.raises(StudyError, match="largest difference 0.5"):
        spot_check([1.0, 2.5], [1.0, 2.0], atol=1e-6, what="the maps")
    with pytest.raises(StudyError, match=r"recomputed shape \(2,\) but stored \(3,\)"):
        spot_check([1.0, 2.0], [1.0, 2.0, 3.0], atol=1.0)


@pytest.mark.parametrize("name", studies.names())
def test_every_study_declares_a_slice(name):
    study = studies.get(name)
    assert set(study.quick) == set(study.settings), f"{name}: quick must set the same keys as settings"
    assert study.quick != study.settings, f"{name}: quick must be smaller than the full run"
    assert study.minutes <= 30, f"{name}: a study takes at most ~30 minutes; shard it by seed"
    assert study.chapter and (studies.RESULTS.parents[2] / "chapters" / f"{study.chapter}.md").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", studies.names())
def test_stored_results_are_reproduced(name):
    """``python -m course_lib.studies check NAME``: stored settings = code's, and the quick slice reproduces."""
    report = studies.check(name)
    assert report["compared"] > 0


def test_no_study_results_in_the_zoo_folder():
    stray = {p.stem for p in ZOO_CHECKPOINTS.glob("*.json") if not p.with_suffix(".pt").is_file()}
    assert stray <= NOT_YET_MIGRATED, f"stored experiments belong in course_lib/studies: {sorted(stray - NOT_YET_MIGRATED)}"
    assert stray == NOT_YET_MIGRATED, f"migrated: remove {sorted(NOT_YET_MIGRATED - stray)} from NOT_YET_MIGRATED"


def test_results_are_valid_json_with_provenance():
    for path in studies.RESULTS.glob("*.json"):
        data = json.loads(path.read_text())
        assert data["name"] == path.stem and data["name"] in studies.names(), path
        assert {"commit", "torch", "device", "seconds", "date"} <= set(data["provenance"]), path
        assert data["provenance"]["quick"] is False, f"{path}: a quick run was stored as the result"
