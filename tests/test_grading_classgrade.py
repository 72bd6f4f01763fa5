"""course_lib.grading: the self-check, class grading, and the corpus of broken and hostile submissions.

Fast tests check the pieces against nbgrader's own functions (checksums, hidden-test removal) and hand-built
notebooks. Slow tests grade the whole corpus in ``tests/grading_corpus`` once (2 workers, a 10 s cell limit)
and assert the verdict each kind must get, then run the self-check the way a student would.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import types
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import nbformat
import pytest

from course_lib.grading import SELF_CHECK_ENV, _feedback, check_notebook, grade_class, self_check
from course_lib.grading import _notebook as nbt
from course_lib.grading.__main__ import main as cli
from course_lib.grading.classgrade import (
    GradingJob,
    _Guard,
    build_template,
    find_submissions,
    grade_submission,
)

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "grading_corpus"
NAME = "grading_demo"
SOURCE_NB = CORPUS / "source" / NAME / f"{NAME}.ipynb"
CELL_TIMEOUT = 10  # the infinite loop hits it; printing huge_output's 100 000 lines on a busy machine must not


@dataclass(frozen=True)
class Verdict:
    status: str
    score: float
    flags: frozenset = frozenset()  # flags the verdict must carry
    clean: bool = False
    says: str = ""  # words its notes (or a failed cell's message) must contain


V = Verdict
EXPECTED = {
    "unmodified": V("graded", 0, frozenset({"unanswered"}), clean=True, says="not implemented yet"),
    "correct": V("graded", 6, clean=True),
    "wrong_answer": V("graded", 3, clean=True, says="relu([-1, 0, 2]) should be [0, 0, 2]"),
    "infinite_loop": V("graded", 4, frozenset({"cell_timeout"}), says=f"ran past the {CELL_TIMEOUT} s limit"),
    "stuck_kernel": V("timeout", 0, says="did not stop when interrupted"),
    "exception": V("graded", 5, frozenset({"cell_errors"}), clean=True, says="ZeroDivisionError"),
    "deleted_grade_cell": V("graded", 6, frozenset({"missing_grade_cells"}), says="test_softmax were deleted"),
    "edited_visible_test": V("graded", 5, frozenset({"edited_tests"}), says="test_relu were edited"),
    "edited_hidden_region": V("graded", 5, frozenset({"edited_tests"}), says="test_relu were edited"),
    "renamed": V("graded", 6, frozenset({"renamed"}), says="grading_demo-final.ipynb"),
    "invalid_json": V("ungradable", 0, frozenset({"invalid_json"}), says="not valid JSON"),
    "empty_file": V("ungradable", 0, frozenset({"empty"}), says="empty"),
    "huge_output": V("graded", 6, frozenset({"output_truncated"}), says="too large"),
    "kernel_killed": V("kernel_died", 0, says="kernel died"),
    "hostile_write": V("graded", 6, frozenset({"sandbox_violation"}), says="gradebook.db"),  # tried, reported
    "missing_import": V("graded", 4, frozenset({"cell_errors"}), clean=True, says="numpy_softmax_helpers"),
    "stripped_metadata": V("graded", 6, frozenset({"missing_grade_cells", "missing_answer_cells"}), says="restored"),
}
HIDDEN_PROBES = ("hidden_relu_probe", "hidden_center_probe", "hidden_standardize_probe", "hidden_softmax_probe")


def _release_of(template: bytes) -> nbformat.NotebookNode:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(template)) as zf:
        return nbformat.reads(zf.read(f"release/{NAME}/{NAME}.ipynb").decode(), as_version=4)


# ------------------------------------------------------------------------------------------ fast: the pieces
def test_checksum_matches_nbgrader():
    from nbgrader.utils import compute_checksum

    cells = [c for c in nbformat.read(SOURCE_NB, as_version=4).cells if "nbgrader" in c.metadata]
    assert len(cells) == 8
    for cell in cells:
        assert nbt.checksum(cell) == compute_checksum(cell)
    cells[1].source += "\nassert True"
    assert nbt.checksum(cells[1]) == compute_checksum(cells[1])


def test_strip_hidden_matches_nbgrader_clear_hidden_tests():
    from nbgrader.preprocessors import ClearHiddenTests

    clear = ClearHiddenTests(begin_test_delimeter="BEGIN HIDDEN TESTS", end_test_delimeter="END HIDDEN TESTS")
    n = 0
    for cell in nbformat.read(SOURCE_NB, as_version=4).cells:
        visible, regions = nbt.strip_hidden(cell.source)
        removed = clear._remove_hidden_test_region(cell)
        assert visible == cell.source and bool(regions) == removed
        n += removed
    assert n == 4


def test_strip_hidden_without_end_hides_to_the_end():
    visible, regions = nbt.strip_hidden("a = 1\n### BEGIN HIDDEN TESTS\nsecret = 2\nmore = 3")
    assert visible == "a = 1" and regions == [(2, 4)]


@pytest.mark.parametrize("data, kind", [
    (b"", "empty"), (b"  \n", "empty"), (b'{"cells": [', "invalid_json"), (b"\xff\xfe", "invalid_json"),
    (b"[1, 2]", "invalid_notebook"), (b'{"cells": "no", "nbformat": 4, "nbformat_minor": 5, "metadata": {}}',
                                      "invalid_notebook"),
])
def test_unreadable_notebooks_get_a_named_problem(data, kind):
    with pytest.raises(nbt.NotebookProblem) as info:
        nbt.read_notebook(data)
    assert info.value.kind == kind


def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    for i, (kind, gid, source) in enumerate(cells):
        cell = nbformat.v4.new_code_cell(source)
        cell.id = f"c{i}"
        if kind == "answer":
            cell.metadata["nbgrader"] = {"grade": False, "grade_id": gid, "locked": False, "solution": True,
                                         "schema_version": 3}
        elif kind == "test":
            cell.metadata["nbgrader"] = {"grade": True, "grade_id": gid, "locked": True, "points": 1,
                                         "solution": False, "schema_version": 3}
        nb.cells.append(cell)
    return nb


def test_compare_names_every_difference():
    ref = _nb(("plain", None, "import math"), ("answer", "f", "raise NotImplementedError()"),
              ("test", "test_f", "assert f() == 1"), ("answer", "g", "raise NotImplementedError()"),
              ("test", "test_g", "assert g() == 2"))
    assert nbt.compare(ref, ref).unanswered and nbt.compare(ref, ref).clean
    sub = _nb(("plain", None, "import math"), ("answer", "f", "def f(): return 1"),
              ("test", "test_f", "assert True"), ("test", "test_f", "assert f() == 1"), ("test", "test_x", "pass"))
    cmp = nbt.compare(sub, ref)
    assert cmp.missing_grade == ["test_g"] and cmp.missing_solution == ["g"]
    assert cmp.edited_locked == ["test_f"] and cmp.unknown == ["test_x"] and cmp.duplicated == ["test_f"]
    assert not cmp.unanswered and not cmp.clean


def test_restore_missing_puts_a_cell_back_where_it_was():
    ref = _nb(("answer", "f", "x"), ("test", "test_f", "assert f"), ("answer", "g", "y"), ("test", "test_g", "assert g"))
    sub = _nb(("answer", "f", "x"), ("answer", "g", "y"))
    nbt.restore_missing(sub, ref, ["test_f", "test_g"])
    assert [nbt.grade_id(c) for c in sub.cells] == ["f", "test_f", "g", "test_g"]
    lonely = _nb(("plain", None, "pasted"))
    nbt.restore_missing(lonely, ref, ["test_g"])
    assert [nbt.grade_id(c) for c in lonely.cells] == [None, "test_g"]


def test_error_message_is_the_assertion_or_the_failing_visible_line():
    bare = nbformat.from_dict({"output_type": "error", "ename": "AssertionError", "evalue": "",
                               "traceback": ["\x1b[0;31mCell In[7], line 2\x1b[0m", "..."]})
    assert nbt.failing_line(bare, 7) == 2
    assert nbt.describe_error(bare, "x = 1\nassert x == 2", 2) == "AssertionError (at line 2: assert x == 2)"
    said = nbformat.from_dict({"output_type": "error", "ename": "AssertionError", "evalue": "x should be 2",
                               "traceback": []})
    assert nbt.describe_error(said, "", None) == "x should be 2"


def test_error_message_keeps_the_hint_at_its_end():
    """A test's message ends with its hint; a ~300-character message (exercise 09's longest) must arrive whole."""
    hint = " — sort with torch.argsort(..., descending=True, stable=True)"
    long = "with a constant map the first half moved must be the top 8 rows (raster order), " * 3 + hint
    said = nbformat.from_dict({"output_type": "error", "ename": "AssertionError", "evalue": long, "traceback": []})
    assert len(long) > 300 and nbt.describe_error(said, "", None) == " ".join(long.split())
    flood = nbformat.from_dict({"output_type": "error", "ename": "AssertionError", "evalue": "x" * 5000,
                                "traceback": []})
    cut = nbt.describe_error(flood, "", None)
    assert len(cut) == nbt.MESSAGE_CHARS and cut.endswith("…")


def test_cell_label_names_what_jupyter_shows():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import torch"),
                nbformat.v4.new_markdown_cell("Some text\n\n## 5. On the trained model\n\nMore text."),
                nbformat.v4.new_code_cell("a = 1"), nbformat.v4.new_code_cell("b = 2"),
                nbformat.v4.new_code_cell("assert a", metadata={"nbgrader": {"grade_id": "test_a", "grade": True}}),
                nbformat.v4.new_markdown_cell("No heading here.")]
    assert nbt.cell_label(nb, 0) == "the 1st code cell of the notebook"
    assert nbt.cell_label(nb, 2) == 'the code cell under "5. On the trained model"'
    assert nbt.cell_label(nb, 3) == 'the 2nd code cell under "5. On the trained model"'
    assert nbt.cell_label(nb, 4) == "test_a"


def test_feedback_sanitizer_removes_hidden_code_and_quotes():
    source = nbformat.read(SOURCE_NB, as_version=4)
    release = nbformat.read(SOURCE_NB, as_version=4)
    for cell in release.cells:
        cell.source = nbt.strip_hidden(cell.source)[0]
    secrets = _feedback.secret_lines(source, release)
    assert any("hidden_softmax_probe = " in s for s in secrets)
    graded = nbformat.read(SOURCE_NB, as_version=4)
    test = next(c for c in graded.cells if nbt.grade_id(c) == "test_softmax")
    test.execution_count = 9
    test.outputs = [nbformat.from_dict({"output_type": "stream", "name": "stdout", "text": "probe\n"}),
                    nbformat.from_dict({"output_type": "error", "ename": "AssertionError", "evalue": "",
                                        "traceback": ["Cell In[9], line 3", test.source.split("\n")[2]]})]
    spy = next(c for c in graded.cells if c.cell_type == "code" and not nbt.grade_id(c))
    spy.outputs = [nbformat.from_dict({"output_type": "stream", "name": "stdout",
                                       "text": "stolen: " + test.source.split("\n")[2] + "\n"})]
    assert _feedback.cell_verdicts(graded)["test_softmax"] == {"passed": False, "hidden": True,
                                                               "message": "a hidden test failed (AssertionError)"}
    safe, changed = _feedback.sanitize(graded, release, secrets, max_chars=1000)
    text = nbformat.writes(safe)
    assert not any(p in text for p in HIDDEN_PROBES) and changed["redacted"] == 1
    assert "hidden_softmax_probe" in nbformat.writes(graded)  # the check above could fail


SANDBOX_SCRIPT = r'''
import json, os, sqlite3, subprocess, sys
from course_lib.grading._sandbox import install
own, secret, log = sys.argv[1:4]
install({"allow_write": [own], "deny": [secret], "log": log})
results = {}
def attempt(label, fn):
    try:
        fn(); results[label] = "allowed"
    except PermissionError:
        results[label] = "refused"
attempt("write own", lambda: open(os.path.join(own, "ok.txt"), "w").write("x"))
attempt("write elsewhere", lambda: open(os.path.join(secret, "..", "elsewhere.txt"), "w"))
attempt("read secret", lambda: open(os.path.join(secret, "key.txt")).read())
attempt("rename secret", lambda: os.rename(os.path.join(secret, "key.txt"), os.path.join(own, "k")))
attempt("delete secret", lambda: os.remove(os.path.join(secret, "key.txt")))
attempt("sqlite secret", lambda: sqlite3.connect(os.path.join(secret, "gb.db")))
attempt("shell", lambda: subprocess.run(["true"]))
attempt("os.system", lambda: os.system("true"))
attempt("read stdlib", lambda: open(json.__file__).read())
import ctypes.util
attempt("find_library", lambda: ctypes.util.find_library("m"))
print(json.dumps(results))
'''


def test_sandbox_refuses_and_logs(tmp_path):
    own, secret = tmp_path / "own", tmp_path / "secret"
    own.mkdir(), secret.mkdir()
    (secret / "key.txt").write_text("hidden")
    log = tmp_path / "log"
    done = subprocess.run([sys.executable, "-c", SANDBOX_SCRIPT, str(own), str(secret), str(log)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "TMPDIR": str(own)})
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results.pop("write own") == "allowed" and results.pop("read stdlib") == "allowed"
    assert results.pop("find_library") == "allowed"  # libraries locate shared objects with ldconfig/gcc
    assert set(results.values()) == {"refused"}, results
    assert (secret / "key.txt").read_text() == "hidden" and not (tmp_path / "elsewhere.txt").exists()
    assert len(log.read_text().splitlines()) == len(results)


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


def test_units_travel_to_other_processes_and_machines():
    """What a dask or process-pool executor needs: the unit, its job and its result pickle."""
    import pickle

    from course_lib.grading.classgrade import SubmissionResult

    job = GradingJob("ann", NAME, f"{NAME}.ipynb", b"{}", b"zip", deny=("/course",))
    result = SubmissionResult("ann", NAME, "graded", 6.0, 6.0, flags=["renamed"], feedback_html="<p>ok</p>")
    assert pickle.loads(pickle.dumps(job)) == job and pickle.loads(pickle.dumps(result)) == result
    assert pickle.loads(pickle.dumps(grade_submission)) is grade_submission


def test_self_check_reminds_to_save_an_old_file(tmp_path):
    from course_lib.grading.selfcheck import _saved_note

    path = tmp_path / "nb.ipynb"
    path.write_text("{}")
    assert _saved_note(path) is None
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime - 600))
    assert "10 min ago" in _saved_note(path)


def test_grade_class_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        grade_class(tmp_path, NAME, source=CORPUS / "source", workers=0)
    with pytest.raises(ValueError, match="assignment must be a folder name"):
        grade_class(tmp_path, "a/b", source=CORPUS / "source")
    with pytest.raises(ValueError, match="cell_timeout must be a positive number"):
        grade_class(tmp_path, NAME, source=CORPUS / "source", cell_timeout=-1)
    with pytest.raises(FileNotFoundError, match="source notebook"):
        grade_class(tmp_path, "nothing_here", source=CORPUS / "source")


def test_self_check_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        check_notebook(tmp_path / "missing.ipynb")
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds, got 0"):
        check_notebook(SOURCE_NB, timeout=0)
    with pytest.raises(TypeError, match="notebook must be a path"):
        check_notebook(42)


def test_self_check_returns_at_once_where_it_must_not_recurse(monkeypatch, capsys):
    monkeypatch.setenv(SELF_CHECK_ENV, "0")
    report = self_check("does-not-even-exist.ipynb")
    assert report.skipped and report.exit_code == 0 and "skipped" in capsys.readouterr().out
    monkeypatch.delenv(SELF_CHECK_ENV)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert self_check("does-not-even-exist.ipynb", quiet=True).skipped


def test_cli_exit_code_2_for_an_unreadable_notebook(capsys):
    assert cli(["check", str(CORPUS / "submitted" / "empty_file" / NAME / f"{NAME}.ipynb")]) == 2
    assert "the file is empty" in capsys.readouterr().out


# ------------------------------------------------------------------------------------ slow: the whole corpus
def require_sandbox() -> None:
    """Skip a test that grades a class where bubblewrap cannot run (under CI=true it must: the test then fails)."""
    from course_lib.grading import _bwrap

    why = _bwrap.available()
    if why is not None and os.environ.get("CI") != "true":
        pytest.skip(f"class grading needs bubblewrap: {why}")


_CORPUS_RUNS: dict = {}  # built once per session, shared with tests/test_grading_dask.py


def corpus_template(tmp_path_factory) -> bytes:
    """The corpus assignment generated once per test session."""
    if "template" not in _CORPUS_RUNS:
        _CORPUS_RUNS["template"] = build_template(CORPUS / "source", NAME, tmp_path_factory.mktemp("template"))
    return _CORPUS_RUNS["template"]


def corpus_graded_locally(tmp_path_factory) -> types.SimpleNamespace:
    """The whole corpus graded once per session by the local pool (2 workers, a 10 s cell limit)."""
    if "graded" in _CORPUS_RUNS:
        return _CORPUS_RUNS["graded"]
    require_sandbox()
    template = corpus_template(tmp_path_factory)
    course = tmp_path_factory.mktemp("course")
    shutil.copytree(CORPUS / "source", course / "source")
    before = (course / "source" / NAME / f"{NAME}.ipynb").read_bytes()
    targets = [str(course / "gradebook.db"), str(course / "source" / NAME / f"{NAME}.ipynb")]
    old = os.environ.get("COURSE_CORPUS_TARGETS")
    os.environ["COURSE_CORPUS_TARGETS"] = json.dumps(targets)
    try:
        report = grade_class(CORPUS / "submitted", NAME, course=course, workers=2, cell_timeout=CELL_TIMEOUT,
                             timeout=240, progress=False, template=template)
    finally:
        if old is None:
            os.environ.pop("COURSE_CORPUS_TARGETS")
        else:
            os.environ["COURSE_CORPUS_TARGETS"] = old
    run = types.SimpleNamespace(course=course, report=report, results=report.by_student(), source_before=before)
    _CORPUS_RUNS["graded"] = run
    return run


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> bytes:
    return corpus_template(tmp_path_factory)


@pytest.fixture(scope="module")
def release_path(template, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("release") / f"{NAME}.ipynb"
    nbformat.write(_release_of(template), path)
    return path


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


# ------------------------------------------------------------------------------------ slow: the self-check
def _submitted(kind: str) -> Path:
    return next((CORPUS / "submitted" / kind / NAME).glob("*.ipynb"))


@pytest.mark.slow
def test_self_check_passes_a_correct_notebook(release_path):
    report = check_notebook(_submitted("correct"), release=release_path, cell_timeout=60)
    assert report.exit_code == 0 and [c.status for c in report.cells] == ["passed"] * 4
    assert report.points == (6, 6)


@pytest.mark.slow
def test_self_check_reports_visible_failures_and_never_runs_hidden_tests(release_path):
    report = check_notebook(_submitted("wrong_answer"), release=release_path, cell_timeout=60)
    cells = {c.grade_id: c for c in report.cells}
    assert report.exit_code == 1
    assert cells["test_relu"].status == "failed" and cells["test_relu"].message == "relu([-1, 0, 2]) should be [0, 0, 2]"
    assert cells["test_softmax"].status == "passed"  # the naive softmax fails only the hidden test
    assert "test_relu" in report.format() and "FAILED" in report.format()


@pytest.mark.slow
def test_self_check_runs_the_released_test_over_an_edited_one(release_path):
    report = check_notebook(_submitted("edited_hidden_region"), release=release_path, cell_timeout=60)
    cells = {c.grade_id: c for c in report.cells}
    assert cells["test_relu"].status == "failed" and any("test_relu" in n and "edited" in n for n in report.notes)


@pytest.mark.slow
def test_self_check_strips_hidden_tests_from_the_instructor_notebook(tmp_path):
    nb = _nb(("answer", "f", "def f():\n    return 1"),
             ("test", "test_f", 'assert f() == 1, "f() should be 1"\n### BEGIN HIDDEN TESTS\n'
                                'assert False, "a hidden test ran"\n### END HIDDEN TESTS'))
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    report = check_notebook(path, cell_timeout=60)
    assert report.exit_code == 0 and report.cells[0].status == "passed"
    assert "hidden-test regions in 1 cell(s) were removed" in report.format()


@pytest.mark.slow
def test_self_check_works_inside_a_running_kernel(tmp_path):
    """The exercise's last cell: ``self_check`` called from a Jupyter kernel (an event loop is running)."""
    from nbclient import NotebookClient

    shutil.copy(_submitted("wrong_answer"), tmp_path / f"{NAME}.ipynb")
    outer = nbformat.v4.new_notebook()
    outer.cells = [nbformat.v4.new_code_cell(f'from course_lib.grading import self_check\n'
                                             f'report = self_check("{NAME}.ipynb", cell_timeout=60)\n'
                                             f'print("EXIT", report.exit_code)')]
    env = {k: v for k, v in os.environ.items() if k not in (SELF_CHECK_ENV, "NBGRADER_EXECUTION")}
    client = NotebookClient(outer, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel(env=env):
        client.execute_cell(outer.cells[0], 0)
    text = nbt.output_text(outer.cells[0])
    # it finished: the notebook's own self-check cell, run by the inner check, returned at once
    assert "test_relu" in text and "EXIT 1" in text


@pytest.mark.slow
def test_self_check_in_colab_reads_the_open_notebook(tmp_path, monkeypatch):
    notebook = json.loads(_submitted("correct").read_text())
    message = types.SimpleNamespace(blocking_request=lambda kind, request="", timeout_sec=0:
                                    {"ipynb": notebook} if kind == "get_ipynb" else None)
    colab = types.ModuleType("google.colab")
    colab._message = message
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab._message", message)
    monkeypatch.chdir(tmp_path)  # Colab's /content: the notebook is not a file there
    report = check_notebook(f"{NAME}.ipynb", cell_timeout=60)
    assert report.exit_code == 0 and len(report.cells) == 4
