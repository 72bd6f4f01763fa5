"""The grading sandbox: bubblewrap's jail and the kernel's limits, the hostile class, and no false alarms.

Fast tests check the pieces: the refusal without bubblewrap, the launcher's limits, the jail's view of the
machine, the leak check and the output cap. Slow tests grade the hostile class of ``tests/grading_corpus/hostile``
once on the local pool (``tests/test_grading_dask.py`` grades it again on a dask cluster and compares), assert
the verdict each attack must get, that the classmate and the bystander keep full marks, that no secret reaches
any output, feedback page or the summary; and that every exercise's solution grades at full marks with no flag.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import types
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from course_lib.grading import Limits, _bwrap, _feedback, grade_class
from course_lib.grading import _notebook as nbt
from course_lib.grading.__main__ import main as cli
from tests.test_grading import CORPUS, HIDDEN_PROBES, NAME, corpus_template

REPO = Path(__file__).resolve().parent.parent
HOSTILE = CORPUS / "hostile"
NO_BWRAP = _bwrap.available()
needs_bwrap = pytest.mark.skipif(NO_BWRAP is not None and os.environ.get("CI") != "true",
                                 reason=f"bubblewrap: {NO_BWRAP}")
CLASSMATE_SECRET = "classmate-private-7f3a91"
TOKEN = "tok-instructor-9d8e7c"  # an instructor's secret in the grader's environment
HOSTILE_LIMITS = Limits(cpu_seconds=5, memory_bytes=1 << 30, processes=64, disk_bytes=64 << 20,
                        cell_output_chars=1_000_000)
HOSTILE_CELL_TIMEOUT = 15


@dataclass(frozen=True)
class Verdict:
    status: str
    score: float
    flags: frozenset = frozenset()
    clean: bool = False
    says: str = ""


V = Verdict
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


# ------------------------------------------------------------------------------------------ fast: the pieces
def test_grading_refuses_without_bubblewrap(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_bwrap, "available", lambda: _bwrap.INSTALL)
    course = tmp_path / "course"
    course.mkdir()
    with pytest.raises(RuntimeError, match="apt-get install bubblewrap.*dnf install bubblewrap.*--no-sandbox"):
        grade_class(CORPUS / "submitted", NAME, course=course, source=CORPUS / "source")
    assert cli(["class", str(CORPUS / "submitted"), "--assignment", NAME, "--course", str(course),
                "--source", str(CORPUS / "source"), "--quiet"]) == 2
    assert "apt-get install bubblewrap" in capsys.readouterr().err
    assert list(course.iterdir()) == []  # nothing written


def test_dask_preflight_names_a_worker_without_bubblewrap(monkeypatch):
    from course_lib.grading import _dask

    mine = {"course-lib": "1", "nbgrader": "0.9.6", "python": "3.11", "python3 kernel": True, "bubblewrap": None}
    monkeypatch.setattr(_dask, "worker_environment", lambda: dict(mine))
    answers = {"tcp://a:1": dict(mine), "tcp://b:2": {**mine, "bubblewrap": _bwrap.INSTALL}}
    client = types.SimpleNamespace(run=lambda fn, on_error: {k: dict(v) for k, v in answers.items()})
    with pytest.raises(RuntimeError, match=r"tcp://b:2: bubblewrap is not installed") as info:
        _dask.probe(client)
    assert "tcp://a:1" not in str(info.value)
    assert _dask.probe(client, sandbox=False) == []  # --no-sandbox: the workers need no bubblewrap


def test_grade_class_rejects_bad_sandbox_arguments(tmp_path):
    with pytest.raises(TypeError, match="limits must be a course_lib.grading.Limits, got dict"):
        grade_class(tmp_path, NAME, source=CORPUS / "source", limits={"cpu_seconds": 1})
    with pytest.raises(TypeError, match="sandbox"):
        grade_class(tmp_path, NAME, source=CORPUS / "source", sandbox="yes")
    assert cli(["class", str(tmp_path), "--assignment", NAME, "--memory", "0"]) == 2
    with pytest.raises(ValueError, match=r"Limits.processes must be positive or None \(no limit\), got 0"):
        Limits(processes=0)
    with pytest.raises(TypeError, match="Limits.cpu_seconds must be a whole number or None, got float 1.5"):
        Limits(cpu_seconds=1.5)


def test_leak_check_matches_quoted_hidden_lines_not_visible_lines_that_extend_them():
    secrets = {"assert indices.tolist() == ref.indices.tolist()"}
    public = {'assert indices.tolist() == ref.indices.tolist(), "the indices differ from the reference"'}
    shown = '----> 3 assert indices.tolist() == ref.indices.tolist(), "the indices differ from the reference"'
    assert _feedback.leaks(shown, secrets, public) == []  # exercise 03's false alarm
    assert _feedback.leaks("stolen: assert indices.tolist()  ==  ref.indices.tolist()", secrets, public) == list(secrets)
    assert _feedback.leaks(shown, secrets) == list(secrets)  # without the release's lines it would be flagged


def test_output_cap_leaves_images_whole():
    png = "iVBORw0KGgo" + "A" * 174_408
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("plt.show()")
    cell.outputs = [nbformat.from_dict({"output_type": "display_data", "metadata": {},
                                        "data": {"image/png": png, "text/plain": "<Figure size 640x480>"}}),
                    nbformat.from_dict({"output_type": "stream", "name": "stdout", "text": "y" * 30_000})]
    nb.cells.append(cell)
    assert nbt.cap_outputs(nb, 20_000) == [0]  # the text was cut ...
    assert cell.outputs[0]["data"]["image/png"] == png and len(cell.outputs[1]["text"]) < 20_100  # ... not the image


def test_invalid_json_message_reads_well():
    with pytest.raises(nbt.NotebookProblem, match=r"not valid JSON \(Unterminated string starting at line 1, column 11\)"):
        nbt.read_notebook(b'{"cells": "abc')
    with pytest.raises(nbt.NotebookProblem, match=r"not valid JSON \(Expecting value at line 1, column 1\)"):
        nbt.read_notebook(b'nope')


def test_nbgrader_config_takes_the_course_root_from_the_folder_it_runs_in(tmp_path, monkeypatch):
    from traitlets.config.loader import PyFileConfigLoader

    shutil.copy(REPO / "nbgrader_config.py", tmp_path / "nbgrader_config.py")
    monkeypatch.chdir(tmp_path)  # a second clone: nbgrader runs here, course_lib is installed elsewhere
    config = PyFileConfigLoader("nbgrader_config.py", path=str(tmp_path)).load_config()
    assert config.CourseDirectory.root == str(tmp_path)
    assert config.CourseDirectory.db_url == f"sqlite:///{tmp_path / 'gradebook.db'}"


def test_student_work_and_scores_are_ignored_by_git():
    paths = ["submitted/ana/02_batch_normalization/02_batch_normalization.ipynb",
             "autograded/ana/02_batch_normalization/02_batch_normalization.ipynb",
             "feedback/ana/02_batch_normalization/02_batch_normalization.html", "02_batch_normalization_scores.csv",
             "02_batch_normalization_graded.jsonl", "gradebook.db"]
    done = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True, text=True)
    assert done.stdout.split() == paths
    kept = subprocess.run(["git", "check-ignore", "--no-index", "solutions/02_batch_normalization/02_batch_normalization.ipynb"],
                          cwd=REPO, capture_output=True, text=True)
    assert kept.stdout == ""


LIMIT_SCRIPT = r'''
import json, os, sys
results = {}
try:
    block = bytearray(300 << 20)
    results["memory"] = "allocated"
except MemoryError:
    results["memory"] = "MemoryError"
try:
    with open(sys.argv[1], "wb") as fh:
        fh.write(b"x" * (2 << 20))
    results["file"] = "written"
except OSError as exc:
    results["file"] = exc.strerror
print(json.dumps(results))
'''


def test_launcher_sets_memory_and_file_limits(tmp_path):
    limits = Limits(memory_bytes=200 << 20, disk_bytes=1 << 20, processes=None, cpu_seconds=60)
    cmd = _bwrap.plain_command([sys.executable, "-c", LIMIT_SCRIPT, str(tmp_path / "big.bin")], limits, None)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"memory": "MemoryError", "file": "File too large"}
    assert (tmp_path / "big.bin").stat().st_size == 1 << 20


JAIL_SCRIPT = r'''
import json, os, socket, sys
hidden, server = sys.argv[1], int(sys.argv[2])
seen = {"uid": os.getuid(), "cwd": os.getcwd(), "files": sorted(os.listdir(".")), "hidden": os.path.exists(hidden),
        "token": "JAIL_TOKEN" in os.environ}
home = os.environ.get("REAL_HOME", "/root")
seen["home"] = sorted(os.listdir(home)) if os.path.isdir(home) else []
try:
    socket.create_connection(("127.0.0.1", server), timeout=3)
    seen["net"] = "connected"
except OSError as exc:
    seen["net"] = type(exc).__name__
try:
    with open("out.bin", "wb") as fh:
        for _ in range(64):
            fh.write(b"x" * (1 << 20))
    seen["disk"] = "wrote 64 MiB"
except OSError as exc:
    seen["disk"] = exc.strerror
try:
    open("given.txt", "a").write("changed")
    seen["given"] = "changed"
except OSError as exc:
    seen["given"] = exc.strerror
seen["tmp"] = sorted(os.listdir("/tmp"))
import course_lib
seen["course_lib"] = sorted(os.listdir(os.path.dirname(os.path.dirname(course_lib.__file__))))
print(json.dumps(seen))
'''


@needs_bwrap
def test_the_jail_hides_the_course_the_network_and_the_environment(tmp_path, monkeypatch):
    work, ipc, hidden = tmp_path / "work", Path(tempfile.mkdtemp(prefix="cgk-", dir="/tmp")), tmp_path / "course"
    for d in (work, hidden):
        d.mkdir()
    (work / "given.txt").write_text("the release's data file")
    (hidden / "gradebook.db").write_text("secret")
    monkeypatch.setenv("JAIL_TOKEN", TOKEN)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.1)
        limits = Limits(disk_bytes=8 << 20, cpu_seconds=60)
        cmd = _bwrap.kernel_command([sys.executable, "-c", JAIL_SCRIPT, str(hidden / "gradebook.db"),
                                     str(server.getsockname()[1])], str(work), str(ipc), limits, [str(hidden)], None,
                                    _bwrap.unit_uid("test"), {"REAL_HOME": str(Path.home())})
        try:
            done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=120)
        finally:
            shutil.rmtree(ipc, ignore_errors=True)
        with pytest.raises(TimeoutError):
            server.accept()  # nothing reached the grader's loopback
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["hidden"] is False and seen["token"] is False
    import course_lib

    needed = [os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, course_lib.__file__)]
    home = os.path.realpath(Path.home())
    for entry in seen["home"]:  # of the home folder, only the way to the Python installation (if it is there)
        assert any(n.startswith(os.path.join(home, entry) + "/") for n in needed), entry
    assert seen["net"] == "ConnectionRefusedError"  # its own loopback, with nothing listening
    assert seen["disk"] in ("No space left on device", "File too large") and seen["given"] in ("Read-only file system", "Permission denied")
    assert seen["cwd"] == str(work.resolve()) and seen["files"] == ["given.txt"]
    made = {Path(str(work.resolve())).relative_to("/tmp").parts[0]} if str(work.resolve()).startswith("/tmp/") else set()
    assert set(seen["tmp"]) == {ipc.name} | made  # a private /tmp: the socket folder and the way to the work folder
    # not the repository around the package (solutions/ ...): only the package, and the Python environment
    # where it lives inside the repository (make's .venv) and is bound read-only for the kernel to start
    venv = os.path.relpath(sys.prefix, os.path.dirname(os.path.dirname(course_lib.__file__)))
    around = {"course_lib"} | ({venv.split(os.sep)[0]} if not venv.startswith("..") else set())
    assert set(seen["course_lib"]) <= around and "course_lib" in seen["course_lib"], seen["course_lib"]
    assert seen["uid"] != 0
    assert (work / "given.txt").read_text() == "the release's data file" and not (work / "out.bin").exists()


# ------------------------------------------------------------------------------------ slow: the hostile class
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
    report = grade_class(ns.course / "submitted", NAME, course=ns.course, cell_timeout=HOSTILE_CELL_TIMEOUT,
                         timeout=180, progress=False, template=template, limits=HOSTILE_LIMITS, **where)
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


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    if NO_BWRAP is not None and os.environ.get("CI") != "true":
        pytest.skip(f"bubblewrap: {NO_BWRAP}")
    return hostile_graded_locally(tmp_path_factory)


@pytest.mark.slow
def test_hostile_class_has_every_attack():
    assert sorted(p.name for p in HOSTILE.iterdir() if p.is_dir()) == sorted(HOSTILE_EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(HOSTILE_EXPECTED))
def test_hostile_verdict(hostile, kind):
    check_hostile_verdict(hostile, kind)


@pytest.mark.slow
def test_hostile_class_leaks_no_secret(hostile):
    check_no_secret_escaped(hostile)


@pytest.mark.slow
def test_hostile_class_reached_nothing_outside(hostile):
    from nbgrader.api import Gradebook

    assert hostile.hits == []  # no connection reached the server on the grader's loopback
    assert hostile.report.warnings == []  # the guard found the source and gradebook as the grader left them
    rows = {r["student"]: r for r in csv.DictReader(hostile.report.csv_path.open())}
    assert set(rows) == set(HOSTILE_EXPECTED)  # nothing lost
    with Gradebook(f"sqlite:///{hostile.course / 'gradebook.db'}") as gb:
        for kind, want in HOSTILE_EXPECTED.items():
            submission = gb.find_submission(NAME, kind)
            assert submission.score == want.score, kind
            assert all(g.manual_score is None for nb in submission.notebooks for g in nb.grades), kind
    page = (hostile.course / "feedback" / "kills_parent" / NAME / f"{NAME}.html").read_text()
    assert "ProcessLookupError" in page or "PermissionError" in page  # it tried, and nothing answered


@pytest.mark.slow
def test_the_sandbox_costs_no_verdict_on_a_clean_class(tmp_path_factory, tmp_path, capsys):
    """A clean class grades to the same verdicts in the sandbox (the API) and without it (``--no-sandbox``)."""
    from tests.test_grading import EXPECTED, require_sandbox

    require_sandbox()
    kinds = ("correct", "wrong_answer", "exception", "unmodified")
    folder = tmp_path / "flat"
    folder.mkdir()
    for kind in kinds:
        shutil.copy(next((CORPUS / "submitted" / kind / NAME).glob("*.ipynb")), folder / f"{kind}.ipynb")
    jailed_course, plain_course = tmp_path / "jailed", tmp_path / "plain"
    for course in (jailed_course, plain_course):
        course.mkdir()
    jailed = grade_class(folder, NAME, course=jailed_course, source=CORPUS / "source", workers=2,
                         template=corpus_template(tmp_path_factory)).by_student()
    code = cli(["class", str(folder), "--assignment", NAME, "--course", str(plain_course), "--source",
                str(CORPUS / "source"), "--workers", "2", "--quiet", "--no-sandbox", "--json",
                str(tmp_path / "plain.json")])
    out = capsys.readouterr().out
    assert code == 0 and "Graded WITHOUT a sandbox (--no-sandbox)" in out
    plain = {r["student"]: r for r in json.loads((tmp_path / "plain.json").read_text())}
    for kind in kinds:
        assert (jailed[kind].status, jailed[kind].score, sorted(jailed[kind].flags)) == (
            plain[kind]["status"], plain[kind]["score"], sorted(plain[kind]["flags"])), kind
        assert jailed[kind].score == EXPECTED[kind].score


# ------------------------------------------------------------------------ slow: every solution, full marks
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
    from tests.test_grading import require_sandbox

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


def test_a_test_cell_that_warned_on_stderr_says_why_it_scored_zero():
    from nbgrader.utils import determine_grade

    cell = nbformat.v4.new_code_cell("assert score() > 0.9")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "test_score", "locked": True, "points": 2,
                                 "solution": False, "schema_version": 3}
    cell.outputs = [nbformat.from_dict({"output_type": "stream", "name": "stderr",
                                        "text": "joblib.py:44: UserWarning: [Errno 13] Permission denied\n"})]
    assert determine_grade(cell) == (0, 2)  # nbgrader's rule, which the message explains
    nb = nbformat.v4.new_notebook()
    nb.cells.append(cell)
    verdict = _feedback.cell_verdicts(nb)["test_score"]
    assert verdict["passed"] is False and "wrote to stderr" in verdict["message"] and "Errno 13" in verdict["message"]


REPORT_SCRIPT = r'''
import json, os, subprocess, sys
from course_lib.grading._sandbox import config, install
own, secret, log = sys.argv[1:4]
install(config([own], [secret], log, mode="report"))
results = {}
for label, fn in [("read secret", lambda: open(os.path.join(secret, "key.txt")).read()),
                  ("list secret", lambda: os.listdir(secret)),
                  ("write own", lambda: open(os.path.join(own, "ok.txt"), "w").write("x")),
                  ("program", lambda: subprocess.run(["true"], check=True))]:
    try:
        fn()
        results[label] = "done"
    except OSError as exc:
        results[label] = type(exc).__name__
print(json.dumps(results))
'''


def test_tripwire_in_the_jail_reports_and_refuses_nothing(tmp_path):
    """Inside bubblewrap the hook only reports attempts on the course's paths (the jail has already hidden
    them); programs and the kernel's own files are none of its business (matplotlib runs fc-list)."""
    own, secret = tmp_path / "own", tmp_path / "secret"
    own.mkdir(), secret.mkdir()
    (secret / "key.txt").write_text("hidden")
    log = tmp_path / "log"
    done = subprocess.run([sys.executable, "-c", REPORT_SCRIPT, str(own), str(secret), str(log)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"read secret": "done", "list secret": "done", "write own": "done",
                                       "program": "done"}  # outside a jail nothing stops them: report only
    reported = [json.loads(line)["blocked"] for line in log.read_text().splitlines()]
    assert reported == [f"reading {secret / 'key.txt'}", f"listing {secret}"]
    with pytest.raises(ValueError, match="mode must be 'refuse' or 'report', got 'warn'"):
        from course_lib.grading._sandbox import config

        config([], [], "log", mode="warn")


UNDER_TMP_SCRIPT = r'''
import json, subprocess, sys, tempfile
from course_lib.grading import _bwrap
work, ipc = tempfile.mkdtemp(dir="/tmp"), tempfile.mkdtemp(dir="/tmp")
probe = "import json, sys, course_lib; print(json.dumps([sys.prefix, course_lib.__file__]))"
cmd = _bwrap.kernel_command([sys.executable, "-c", probe], work, ipc, _bwrap.Limits(cpu_seconds=60), [], None,
                            _bwrap.unit_uid("under-tmp"), {})
done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=120)
print(json.dumps({"rc": done.returncode, "out": done.stdout, "err": done.stderr[-2000:]}))
'''


@needs_bwrap
def test_a_course_and_a_python_environment_under_tmp_can_be_graded():
    """The jail's private /tmp hides the real one: a virtual environment and a checkout of course_lib living
    under /tmp are bound again on top of it, so the kernel starts (read-only, like the rest)."""
    import course_lib

    root = Path(tempfile.mkdtemp(prefix="cg-under-tmp-", dir="/tmp"))
    try:
        root.chmod(0o755)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True, timeout=120)
        shutil.copytree(Path(course_lib.__file__).parent, root / "checkout" / "course_lib",
                        ignore=shutil.ignore_patterns("__pycache__"))
        python = root / "venv" / "bin" / "python"
        done = subprocess.run([str(python), "-c", UNDER_TMP_SCRIPT], capture_output=True, text=True, timeout=180, cwd=root,
                              env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(root / "checkout")})
        assert done.returncode == 0, done.stderr
        kernel = json.loads(done.stdout.strip().splitlines()[-1])
        assert kernel["rc"] == 0, kernel["err"] + kernel["out"]
        prefix, package = json.loads(kernel["out"].strip().splitlines()[-1])
        assert prefix == str(root / "venv") and package == str(root / "checkout" / "course_lib" / "__init__.py")
    finally:
        shutil.rmtree(root, ignore_errors=True)
