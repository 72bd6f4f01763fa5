"""What the grading test files share: the corpus of submissions (``tests/grading_corpus``), the verdict each
kind must get, the hostile class and its expected verdicts, and the runs that grade them once per test session
(the local pool's verdicts are what ``tests/test_grading_dask.py`` compares the cluster's with)."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import threading
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from course_lib.grading import GradingSettings, Limits, _bwrap, grade_class
from course_lib.grading import _notebook as nbt
from course_lib.grading.classgrade import build_template

REPO = Path(__file__).resolve().parents[2]


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


def release_of(template: bytes) -> nbformat.NotebookNode:
    with zipfile.ZipFile(io.BytesIO(template)) as zf:
        return nbformat.reads(zf.read(f"release/{NAME}/{NAME}.ipynb").decode(), as_version=4)


def notebook(*cells):
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


def require_sandbox() -> None:
    """Skip a test that grades a class where bubblewrap cannot run (under CI=true it must: the test then fails)."""
    why = _bwrap.available()
    if why is not None and os.environ.get("CI") != "true":
        pytest.skip(f"class grading needs bubblewrap: {why}")


_CORPUS_RUNS: dict = {}  # built once per session, shared by the grading test files


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
        settings = GradingSettings(course=course, workers=2, cell_timeout=CELL_TIMEOUT, timeout=240)
        report = grade_class(CORPUS / "submitted", NAME, settings, template=template)
    finally:
        if old is None:
            os.environ.pop("COURSE_CORPUS_TARGETS")
        else:
            os.environ["COURSE_CORPUS_TARGETS"] = old
    run = types.SimpleNamespace(course=course, report=report, results=report.by_student(), source_before=before)
    _CORPUS_RUNS["graded"] = run
    return run



NO_BWRAP = _bwrap.available()


needs_bwrap = pytest.mark.skipif(NO_BWRAP is not None and os.environ.get("CI") != "true",
                                 reason=f"bubblewrap: {NO_BWRAP}")


HOSTILE = CORPUS / "hostile"


CLASSMATE_SECRET = "classmate-private-7f3a91"


TOKEN = "tok-instructor-9d8e7c"  # an instructor's secret in the grader's environment


HOSTILE_LIMITS = Limits(cpu_seconds=5, memory_bytes=1 << 30, processes=64, disk_bytes=64 << 20,
                        cell_output_chars=1_000_000)


HOSTILE_CELL_TIMEOUT = 15




HOSTILE_EXPECTED = {
    "classmate": V("graded", 6, clean=True),
    "bystander": V("graded", 6, clean=True),
    "reads_classmate": V("graded", 6, frozenset({"sandbox_violation"}), says="reading"),
    "reads_solutions": V("graded", 6, frozenset({"sandbox_violation"}), says="reading"),
    "writes_gradebook": V("graded", 6, frozenset({"sandbox_violation"}), says="opening the database"),
    "network": V("graded", 6, clean=True),
    "ctypes_read": V("graded", 6, clean=True),  # the jail stops it; no audit event to report it
    "fork_bomb": V("graded", 6, frozenset({"process_limit", "cell_errors"}), says="limit of 64 processes"),
    "fills_disk": V("graded", 6, frozenset({"disk_limit", "cell_errors"}), says="64 MiB disk limit"),
    "eats_memory": V("graded", 6, frozenset({"memory_limit", "cell_errors"}), says="1024 MiB memory limit"),
    "kills_parent": V("graded", 6, clean=True),
    "sleeps_forever": V("graded", 6, frozenset({"cell_timeout"}), says=f"ran past the {HOSTILE_CELL_TIMEOUT} s"),
    "prints_gigabyte": V("graded", 6, frozenset({"output_limit"}), says="printed more than 1,000,000 characters"),
    "burns_cpu": V("kernel_died", 0, frozenset({"cpu_limit"}), says="5 s of CPU time"),
}


def hostile_course(root: Path) -> types.SimpleNamespace:
    """A course folder with the hostile class submitted, a TCP server to catch connections, and the targets the
    attacks read from ``$COURSE_HOSTILE_TARGETS`` (set it before grading; dask workers need it at their start)."""
    course = root / "course"
    shutil.copytree(CORPUS / "source", course / "source")
    shutil.copytree(HOSTILE, course / "submitted")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    hits: list = []

    def accept():
        while True:
            try:
                hits.append(server.accept())
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    targets = {"classmate": str(course / "submitted" / "classmate" / NAME / f"{NAME}.ipynb"),
               "solutions": str(course / "source" / NAME / f"{NAME}.ipynb"), "gradebook": str(course / "gradebook.db"),
               "server": list(server.getsockname()), "grader_pid": os.getpid()}
    return types.SimpleNamespace(course=course, server=server, hits=hits, targets=targets,
                                 env={"COURSE_HOSTILE_TARGETS": json.dumps(targets), "JAIL_TOKEN": TOKEN})


def grade_hostile(ns: types.SimpleNamespace, template: bytes, **where) -> types.SimpleNamespace:
    settings = GradingSettings(course=ns.course, cell_timeout=HOSTILE_CELL_TIMEOUT, timeout=180,
                               limits=HOSTILE_LIMITS, **where)
    report = grade_class(ns.course / "submitted", NAME, settings, template=template)
    ns.report, ns.results = report, report.by_student()
    return ns


_HOSTILE_RUNS: dict = {}


def hostile_graded_locally(tmp_path_factory) -> types.SimpleNamespace:
    """The hostile class graded once per session by the local pool (2 workers)."""
    if "local" not in _HOSTILE_RUNS:
        ns = hostile_course(tmp_path_factory.mktemp("hostile"))
        old = {k: os.environ.get(k) for k in ns.env}
        os.environ.update(ns.env)
        try:
            _HOSTILE_RUNS["local"] = grade_hostile(ns, corpus_template(tmp_path_factory), workers=2)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return _HOSTILE_RUNS["local"]


def check_hostile_verdict(run, kind: str) -> None:
    want, got = HOSTILE_EXPECTED[kind], run.results[kind]
    assert got.status == want.status, (kind, got.notes)
    assert got.score == want.score and got.max_score == 6, (kind, got.notes)
    assert want.flags <= set(got.flags), (kind, got.flags, got.notes)
    assert got.clean == want.clean, (kind, got.flags, got.notes)
    said = " ".join(got.notes + [c.message for c in got.cells])
    assert want.says in said, said
    assert got.feedback_html, "every submission gets feedback"


def check_no_secret_escaped(run) -> None:
    """No secret in any output of any notebook, feedback page, the summary or the CSV."""
    texts = {"summary": run.report.summary(), "csv": run.report.csv_path.read_text()}
    for path in (run.course / "feedback").rglob("*.html"):
        texts[str(path)] = path.read_text()
    for path in (run.course / "autograded").rglob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        texts[str(path)] = "\n".join(nbt.output_text(c) for c in nb.cells)  # what ran printed (sources aside)
    assert sum("/feedback/" in w for w in texts) == len(HOSTILE_EXPECTED)
    for where, text in texts.items():
        assert TOKEN not in text, where
        assert "SQLite format 3" not in text and "submitted_assignment" not in text, where
        assert not any(p in text for p in HIDDEN_PROBES), where
        if "/classmate/" not in where:
            assert CLASSMATE_SECRET not in text, where
        assert "/classmate/" in where or "classmate-private" not in text, where

