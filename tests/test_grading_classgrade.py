"""course_lib.grading.classgrade: class grading on the local pool.

Fast tests check the settings, collecting submissions and the guard. Slow tests grade the whole corpus in
``tests/grading_corpus`` once (2 workers, a 10 s cell limit, see ``tests.helpers.grading``) and assert the
verdict each kind must get; then every solution of the course grades at full marks with no flag.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime

import nbformat
import pytest

from course_lib.grading import GradingSettings, Limits, grade_class
from course_lib.grading import _notebook as nbt
from course_lib.grading.classgrade import (
    GradingJob,
    _Guard,
    find_submissions,
    grade_submission,
)
from tests.helpers.grading import (
    CELL_TIMEOUT,
    CORPUS,
    EXPECTED,
    HIDDEN_PROBES,
    NAME,
    NO_BWRAP,
    REPO,
    SOURCE_NB,
    corpus_graded_locally,
    corpus_template,
    require_sandbox,
)

# ------------------------------------------------------------------------------------------ fast: the pieces


def test_guard_restores_source_and_gradebook(tmp_path):
    src = tmp_path / "source" / NAME
    src.mkdir(parents=True)
    (src / f"{NAME}.ipynb").write_text("original")
    gb = tmp_path / "gradebook.db"
    gb.write_bytes(b"merged by the grader")
    guard = _Guard(src, gb, b"")
    assert guard.check("now") == []
    (src / f"{NAME}.ipynb").write_text("tampered")
    gb.write_bytes(b"tampered")
    warnings = guard.check("now")
    assert len(warnings) == 2 and all("restored" in w for w in warnings)
    assert (src / f"{NAME}.ipynb").read_text() == "original" and gb.read_bytes() == b"merged by the grader"
    gb.write_bytes(b"our own merge")
    guard.saved()
    assert guard.check("later") == []


def test_find_submissions_in_both_layouts(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for student in ("bob", "alice"):
        (flat / f"{student}.ipynb").write_text("{}")
    (flat / "notes.txt").write_text("not a notebook")
    assert [(f.student, f.path.name) for f in find_submissions(flat, NAME)] == [("alice", "alice.ipynb"),
                                                                                ("bob", "bob.ipynb")]
    course = tmp_path / "course"
    (course / "source" / NAME).mkdir(parents=True)  # the course folder's own source/ is not a student
    for student, files in {"ann": [f"{NAME}.ipynb"], "ben": ["copy.ipynb"], "cy": [], "dee": ["a.ipynb", "b.ipynb"]}.items():
        folder = course / "submitted" / student / NAME
        folder.mkdir(parents=True)
        for f in files:
            (folder / f).write_text("{}")
    found = {f.student: f for f in find_submissions(course, NAME)}
    assert sorted(found) == ["ann", "ben", "cy", "dee"]
    assert found["ann"].renamed_from is None and found["ben"].renamed_from == "copy.ipynb"
    assert "no notebook" in found["cy"].problem and "several notebooks" in found["dee"].problem


def test_settings_name_the_field_they_reject():
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        GradingSettings(workers=0)
    with pytest.raises(TypeError, match="regrade must be True or False"):
        GradingSettings(regrade="yes")
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds, got 0"):
        GradingSettings(timeout=0)
    with pytest.raises(TypeError, match="course must be a path"):
        GradingSettings(course=3)
    with pytest.raises(ValueError, match="retries must be >= 0"):
        GradingSettings(retries=-1)
    with pytest.raises(TypeError, match="unknown setting.*wokers"):
        grade_class(CORPUS / "submitted", NAME, wokers=2)
    with pytest.raises(TypeError, match="settings must be a course_lib.grading.GradingSettings, got dict"):
        grade_class(CORPUS / "submitted", NAME, {"workers": 2})
    with pytest.raises(dataclasses.FrozenInstanceError):
        GradingSettings().workers = 2


def test_settings_default_limits_follow_the_timeout_and_enter_the_verdict_digest(tmp_path):
    source = tmp_path / NAME
    source.mkdir()
    (source / f"{NAME}.ipynb").write_text("{}")
    base = GradingSettings(timeout=600)
    cores = os.cpu_count() or 1
    assert base.kernel_limits == Limits(cpu_seconds=max(1800, 600 * cores))
    assert GradingSettings(limits=Limits(cpu_seconds=7)).kernel_limits.cpu_seconds == 7
    # what changes a verdict changes the digest (so saved verdicts are graded again); where it runs does not
    assert base.verdict_digest(source) != dataclasses.replace(base, cell_timeout=60).verdict_digest(source)
    assert base.verdict_digest(source) != dataclasses.replace(base, sandbox=False).verdict_digest(source)
    assert base.verdict_digest(source) == dataclasses.replace(base, workers=8, progress=True).verdict_digest(source)


def test_grade_class_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        grade_class(tmp_path, NAME, source=CORPUS / "source", workers=0)
    with pytest.raises(ValueError, match="assignment must be a folder name"):
        grade_class(tmp_path, "a/b", source=CORPUS / "source")
    with pytest.raises(ValueError, match="cell_timeout must be a positive number"):
        grade_class(tmp_path, NAME, source=CORPUS / "source", cell_timeout=-1)
    with pytest.raises(FileNotFoundError, match="source notebook"):
        grade_class(tmp_path, "nothing_here", source=CORPUS / "source")


# ------------------------------------------------------------------------------------ slow: the whole corpus


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> bytes:
    return corpus_template(tmp_path_factory)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    return corpus_graded_locally(tmp_path_factory)


@pytest.mark.slow
def test_corpus_has_every_kind():
    kinds = sorted(p.name for p in (CORPUS / "submitted").iterdir() if p.is_dir())
    assert kinds == sorted(EXPECTED) and len(kinds) >= 12


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_corpus_verdict(graded, kind):
    want, got = EXPECTED[kind], graded.results[kind]
    assert got.status == want.status, got.notes
    assert got.score == want.score and got.max_score == 6
    assert want.flags <= set(got.flags), got.flags
    assert got.clean == want.clean, (got.flags, got.notes)
    said = " ".join(got.notes + [c.message for c in got.cells])
    assert want.says in said, said
    assert got.feedback_html, "every submission gets feedback, graded or not"


@pytest.mark.slow
def test_batch_summary_lists_exactly_the_unclean(graded):
    summary = graded.report.summary()
    unclean = {k for k, v in EXPECTED.items() if not v.clean}
    assert {r.student for r in graded.report.unclean} == unclean
    for kind in EXPECTED:
        assert (f"  {kind} " in summary) == (kind in unclean)


@pytest.mark.slow
def test_hidden_tests_fail_quietly_and_never_reach_feedback(graded):
    wrong = {c.grade_id: c for c in graded.results["wrong_answer"].cells}
    assert wrong["test_relu"].message == "relu([-1, 0, 2]) should be [0, 0, 2]"  # a visible failure
    assert wrong["test_softmax"].message == "a hidden test failed (AssertionError)"  # only the hidden test fails
    pages = list((graded.course / "feedback").rglob("*.html"))
    assert len(pages) == len(EXPECTED)
    for page in pages:
        text = page.read_text()
        assert not any(p in text for p in HIDDEN_PROBES), page
    instructor = (graded.course / "autograded" / "wrong_answer" / NAME / f"{NAME}.ipynb").read_text()
    assert all(p in instructor for p in HIDDEN_PROBES)  # the instructor's copy keeps them: the check can fail


@pytest.mark.slow
def test_scores_reach_the_csv_and_the_course_gradebook(graded):
    import csv

    from nbgrader.api import Gradebook

    rows = {r["student"]: r for r in csv.DictReader(graded.report.csv_path.open())}
    assert set(rows) == set(EXPECTED)
    with Gradebook(f"sqlite:///{graded.course / 'gradebook.db'}") as gb:
        for kind, want in EXPECTED.items():
            assert float(rows[kind]["score"]) == want.score
            submission = gb.find_submission(NAME, kind)
            assert submission.score == want.score and submission.max_score == 6
            assert submission.needs_manual_grade == (want.status != "graded")


@pytest.mark.slow
def test_hostile_submission_changed_nothing(graded):
    assert graded.report.warnings == []
    assert (graded.course / "source" / NAME / f"{NAME}.ipynb").read_bytes() == graded.source_before
    tampered = REPO / "course_lib" / "grading" / "_tampered.txt"
    written = tampered.exists()
    tampered.unlink(missing_ok=True)
    assert not written
    notes = " ".join(graded.results["hostile_write"].notes)
    for attempt in ("reading", "opening the database"):  # in the jail: reported; writing there finds no file
        assert attempt in notes
    assert "starting a program" not in notes  # a program started in the jail is harmless, and not a violation
    page = (graded.course / "feedback" / "hostile_write" / NAME / f"{NAME}.html").read_text()
    # the grader's own note (which paths it tried) stays with the instructor; the student reads the plain words
    assert "attempt(s) to reach outside" not in page and "reported to your instructor" in page


@pytest.mark.slow
def test_huge_output_is_capped(graded):
    page = graded.course / "feedback" / "huge_output" / NAME / f"{NAME}.html"
    stored = graded.course / "autograded" / "huge_output" / NAME / f"{NAME}.ipynb"
    assert page.stat().st_size < 1_000_000 and stored.stat().st_size < 1_000_000


@pytest.mark.slow
def test_merging_adds_to_an_existing_gradebook_and_marks_failures_for_manual_grading(graded, template):
    from nbgrader.api import Gradebook

    from course_lib.grading.classgrade import SubmissionResult, _merge

    gradebook = graded.course / "gradebook.db"
    late = SubmissionResult("late_student", NAME, "timeout", max_score=6, notes=["stopped"],
                            timestamp="2026-01-15 10:30:00 UTC")
    _merge(gradebook, template, late)
    with Gradebook(f"sqlite:///{gradebook}") as gb:
        submission = gb.find_submission(NAME, "late_student")
        assert submission.score == 0 and submission.needs_manual_grade
        assert submission.timestamp == datetime(2026, 1, 15, 10, 30)
        assert gb.find_submission(NAME, "correct").score == 6.0  # earlier results are untouched
        assert len(gb.students) == len(EXPECTED) + 1


@pytest.mark.slow
def test_a_submission_past_its_time_limit_is_stopped(template, tmp_path):
    import psutil

    require_sandbox()
    data = (CORPUS / "submitted" / "correct" / NAME / f"{NAME}.ipynb").read_bytes()
    job = GradingJob("late", NAME, f"{NAME}.ipynb", data, template, timeout=1, cell_timeout=CELL_TIMEOUT,
                     scratch=str(tmp_path))
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:  # as a cluster would
        result = pool.submit(grade_submission, job).result()
    assert result.status == "timeout" and result.score == 0 and "1 s limit" in result.reason
    assert all("grading._autograde" not in " ".join(p.cmdline()) for p in psutil.Process().children(recursive=True))
    assert list(tmp_path.iterdir()) == []  # the unit's scratch folder is gone


@pytest.mark.slow
def test_no_kernel_outlives_its_submission(graded):
    import psutil

    from course_lib.grading.classgrade import UNIT_ENV

    left = []
    for proc in psutil.process_iter():
        try:
            if UNIT_ENV in proc.environ():
                left.append(proc.cmdline())
        except (psutil.Error, OSError):
            continue
    assert left == []


@pytest.mark.slow
def test_corpus_is_what_make_corpus_builds(template, tmp_path):
    sys.path.insert(0, str(CORPUS))
    try:
        import make_corpus
    finally:
        sys.path.remove(str(CORPUS))
    built = make_corpus.build(tmp_path, template)
    assert (tmp_path / "source" / NAME / f"{NAME}.ipynb").read_bytes() == SOURCE_NB.read_bytes()
    for kind, (filename, data) in built.items():  # "hostile/<kind>" for the hostile class
        where = CORPUS / kind if kind.startswith("hostile/") else CORPUS / "submitted" / kind
        assert (where / NAME / filename).read_bytes() == data, kind
    assert sum(k.startswith("hostile/") for k in built) == len(list((CORPUS / "hostile").iterdir())) >= 14


@pytest.mark.slow
def test_a_job_pickled_to_another_process_grades_as_the_class_did(graded, template, tmp_path):
    """What a dask or process-pool executor does with a unit: pickle its job to a fresh interpreter and the
    verdict back; the verdict must be the one the local pool gave the same submission."""
    import pickle

    require_sandbox()
    data = next((CORPUS / "submitted" / "wrong_answer" / NAME).glob("*.ipynb")).read_bytes()
    job = GradingJob("wrong_answer", NAME, f"{NAME}.ipynb", data, template, timeout=240, cell_timeout=CELL_TIMEOUT,
                     deny=(str(graded.course),), scratch=str(tmp_path))
    assert pickle.loads(pickle.dumps(job)) == job
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        got = pool.submit(grade_submission, job).result()
    want = graded.results["wrong_answer"]
    assert (got.status, got.score, got.max_score, sorted(got.flags)) == (want.status, want.score, want.max_score,
                                                                         sorted(want.flags))
    assert [(c.grade_id, c.status, c.points) for c in got.cells] == [(c.grade_id, c.status, c.points)
                                                                      for c in want.cells]


# ------------------------------------------------------------------------------ slow: every solution, full marks






def _assignments() -> list[str]:
    return sorted(p.name for p in (REPO / "solutions").iterdir() if (p / f"{p.name}.ipynb").is_file())


@pytest.mark.slow
@pytest.mark.parametrize("assignment", _assignments())
def test_every_solution_grades_at_full_marks_with_no_flag(assignment, tmp_path):
    if NO_BWRAP is not None and os.environ.get("CI") != "true":
        pytest.skip(f"bubblewrap: {NO_BWRAP}")
    folder = tmp_path / "submitted"
    folder.mkdir()
    # what a student who solved everything hands in: the release, every answer cell holding the solution
    source = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    ideal = nbformat.read(REPO / "exercises" / assignment / f"{assignment}.ipynb", as_version=4)
    answers = {nbt.grade_id(c): "\n".join(ln for ln in c.source.split("\n") if "### BEGIN SOLUTION" not in ln
                                          and "### END SOLUTION" not in ln)
               for c in source.cells if nbt.is_solution(c)}
    for cell in ideal.cells:
        if nbt.is_solution(cell):
            cell.source = answers[nbt.grade_id(cell)]
    nbformat.write(ideal, folder / "ideal.ipynb")
    course = tmp_path / "course"
    course.mkdir()
    report = grade_class(folder, assignment, course=course, source=REPO / "solutions", workers=1, progress=False)
    result = report.by_student()["ideal"]
    assert result.status == "graded" and result.flags == [] and result.clean, result.notes
    assert result.score == result.max_score > 0
    assert len(result.cells) >= 4 and all(c.status == "passed" for c in result.cells)
    page = (course / "feedback" / "ideal" / assignment / f"{assignment}.html").read_text()
    assert "Notes from the grader" not in page and "output removed" not in page
    for cell in result.cells:  # full per-cell feedback: every graded cell is on the page with its points
        assert cell.grade_id in page


@pytest.mark.slow
def test_a_kernel_that_cannot_start_loses_no_score(tmp_path_factory, tmp_path):
    """A kernel that dies before any of the notebook ran (here: a memory limit too small to start Python's
    kernel) is the grading machine's fault: no verdict is saved, and the next run grades the submission."""
    require_sandbox()
    folder = tmp_path / "flat"
    folder.mkdir()
    shutil.copy(CORPUS / "submitted" / "correct" / NAME / f"{NAME}.ipynb", folder / "ann.ipynb")
    course = tmp_path / "course"
    course.mkdir()
    report = grade_class(folder, NAME, course=course, source=CORPUS / "source", template=corpus_template(tmp_path_factory),
                         limits=Limits(memory_bytes=24 << 20))
    ann = report.by_student()["ann"]
    assert ann.status == "failed" and "unit_crashed" in ann.flags and "could not start" in ann.reason
    journal = course / f"{NAME}_graded.jsonl"
    assert not (course / "feedback").exists() and (not journal.exists() or not journal.read_text().strip())
    again = grade_class(folder, NAME, course=course, source=CORPUS / "source",
                        template=corpus_template(tmp_path_factory)).by_student()["ann"]
    assert again.status == "graded" and again.score == 6 and report.reused == []

