"""Class grading on a dask.distributed cluster: the same verdicts as the local pool, and the faults of a cluster.

Every test that grades runs on one ``LocalCluster`` of two worker processes (one thread each) started by this
module: the whole corpus (same verdicts as the local pool, no worker lost to a hostile notebook), a worker
killed while it grades, a batch interrupted and resumed, and ``--scheduler local`` from the command line.
The fast tests need no cluster: argument checks, an unreachable scheduler, the journal, a unit that crashed.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import types
from pathlib import Path

import distributed
import psutil
import pytest

from course_lib.grading import _bwrap, _dask, grade_class
from course_lib.grading.__main__ import main as cli
from course_lib.grading.classgrade import UNIT_ENV, GradingJob, _Journal
from tests.helpers.grading import (
    CELL_TIMEOUT,
    CORPUS,
    EXPECTED,
    HOSTILE_EXPECTED,
    NAME,
    REPO,
    check_hostile_verdict,
    check_no_secret_escaped,
    corpus_graded_locally,
    corpus_template,
    grade_hostile,
    hostile_course,
    hostile_graded_locally,
    require_sandbox,
)

SOURCE = CORPUS / "source"
KIND_SCORE = {k: v.score for k, v in EXPECTED.items()}


def _corpus_file(kind: str) -> Path:
    return next((CORPUS / "submitted" / kind / NAME).glob("*.ipynb"))


def _flat(folder: Path, students: dict[str, str]) -> Path:
    """A flat folder of ``<student>.ipynb`` files, each a copy of a corpus kind."""
    folder.mkdir(parents=True)
    for student, kind in students.items():
        shutil.copy(_corpus_file(kind), folder / f"{student}.ipynb")
    return folder


def _free_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"  # closed on leaving: nothing listens there


def _wait_until(predicate, what: str, deadline: float = 120, every: float = 0.05):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {deadline:g} s waiting for {what}")


def _unit_processes(prefix: str = "unit-") -> list[psutil.Process]:
    """The grading processes (``_autograde unit``) whose unit folder name starts with ``prefix``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(UNIT_ENV, "").startswith(prefix) and "course_lib.grading._autograde" in " ".join(proc.cmdline()):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def _marked_processes() -> list[psutil.Process]:
    left = []
    for proc in psutil.process_iter():
        try:
            if UNIT_ENV in proc.environ() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc)
        except (psutil.Error, OSError):
            continue
    return left


def _gradebook(path: Path) -> dict:
    """Every recorded fact of every submission, by student; and a check that nothing is recorded twice."""
    from nbgrader.api import Gradebook

    db = sqlite3.connect(path)
    try:
        twice = db.execute("SELECT student_id, COUNT(*) FROM submitted_assignment GROUP BY student_id, assignment_id "
                           "HAVING COUNT(*) > 1").fetchall()
        twice += db.execute("SELECT notebook_id, cell_id, COUNT(*) FROM grade GROUP BY notebook_id, cell_id "
                            "HAVING COUNT(*) > 1").fetchall()
    finally:
        db.close()
    assert twice == [], f"recorded twice in the gradebook: {twice}"
    out: dict = {}
    with Gradebook(f"sqlite:///{path}") as gb:
        for sub in gb.assignment_submissions(NAME):
            entry = out.setdefault(sub.student.id, {"timestamp": str(sub.timestamp), "grades": {}, "comments": {}})
            for nb in sub.notebooks:
                entry["grades"].update({g.name: (g.auto_score, g.manual_score, g.needs_manual_grade) for g in nb.grades})
                entry["comments"].update({c.name: c.auto_comment for c in nb.comments})
    return out


def _csv(path: Path) -> list[dict]:
    rows = list(csv.DictReader(path.open()))
    students = [r["student"] for r in rows]
    assert len(students) == len(set(students)), f"a student appears twice in {path.name}"
    return rows


def _verdict(result, course: Path) -> tuple:
    """Everything a verdict says, with this run's folders replaced by placeholders."""
    def plain(text: str) -> str:
        text = text.replace(str(course), "<course>")
        return re.sub(r"/[^\s;,]*/unit-[^/\s;,]+", "<unit>", text)

    return (result.status, result.score, result.max_score, sorted(result.flags), result.clean,
            [(c.grade_id, c.status, c.points, c.max_points, plain(c.message)) for c in result.cells],
            [plain(n) for n in result.notes])


# ------------------------------------------------------------------------------------------ the cluster
@pytest.fixture(scope="module")
def template(tmp_path_factory) -> bytes:
    return corpus_template(tmp_path_factory)


@pytest.fixture(scope="module")
def dask_course(tmp_path_factory) -> Path:
    course = tmp_path_factory.mktemp("dask_course")
    shutil.copytree(SOURCE, course / "source")
    return course


@pytest.fixture(scope="module")
def dask_hostile(tmp_path_factory):
    """The hostile class's course folder for the cluster (its targets go into the workers' environment)."""
    ns = hostile_course(tmp_path_factory.mktemp("dask_hostile"))
    yield ns
    ns.server.close()


@pytest.fixture(scope="module")
def cluster(dask_course, dask_hostile):
    """Two worker processes; they inherit the hostile submissions' targets in this run's course folders."""
    require_sandbox()
    targets = [str(dask_course / "gradebook.db"), str(dask_course / "source" / NAME / f"{NAME}.ipynb")]
    saved = {k: os.environ.get(k) for k in ("COURSE_CORPUS_TARGETS", *dask_hostile.env)}
    os.environ["COURSE_CORPUS_TARGETS"] = json.dumps(targets)
    os.environ.update(dask_hostile.env)
    cluster = client = None
    try:
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                           host="127.0.0.1")
        client = distributed.Client(cluster, set_as_default=False)
        client.wait_for_workers(2, timeout=120)
        yield types.SimpleNamespace(cluster=cluster, client=client, address=cluster.scheduler_address)
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


@pytest.fixture(scope="module")
def dask_graded(cluster, dask_course, template):
    client = cluster.client
    before = client.run(os.getpid)
    report = grade_class(CORPUS / "submitted", NAME, course=dask_course, scheduler=client, cell_timeout=CELL_TIMEOUT,
                         timeout=240, progress=False, template=template)
    return types.SimpleNamespace(report=report, results=report.by_student(), course=dask_course,
                                 pids_before=before, pids_after=client.run(os.getpid))


# ------------------------------------------------------------------------------------- the hostile class
@pytest.fixture(scope="module")
def dask_hostile_graded(cluster, dask_hostile, template):
    before = cluster.client.run(os.getpid)
    run = grade_hostile(dask_hostile, template, scheduler=cluster.client)
    run.pids_before, run.pids_after = before, cluster.client.run(os.getpid)
    return run


@pytest.mark.slow
def test_dask_grades_the_hostile_class_like_the_local_pool(dask_hostile_graded, tmp_path_factory):
    local = hostile_graded_locally(tmp_path_factory)
    assert sorted(dask_hostile_graded.results) == sorted(local.results) == sorted(HOSTILE_EXPECTED)
    for kind in HOSTILE_EXPECTED:
        check_hostile_verdict(dask_hostile_graded, kind)
        got, ref = dask_hostile_graded.results[kind], local.results[kind]
        assert (got.status, got.score, sorted(got.flags), got.clean) == (ref.status, ref.score, sorted(ref.flags),
                                                                         ref.clean), kind
    check_no_secret_escaped(dask_hostile_graded)
    assert dask_hostile_graded.hits == [] and dask_hostile_graded.report.warnings == []
    assert dask_hostile_graded.pids_after == dask_hostile_graded.pids_before  # no worker was killed or replaced


# ------------------------------------------------------------------------------------- same answers
@pytest.mark.slow
def test_dask_and_the_local_pool_give_every_student_the_same_verdict(dask_graded, tmp_path_factory):
    local = corpus_graded_locally(tmp_path_factory)
    assert sorted(dask_graded.results) == sorted(local.results) == sorted(EXPECTED)
    for kind, want in EXPECTED.items():
        got, ref = dask_graded.results[kind], local.results[kind]
        assert (got.status, got.score) == (want.status, want.score), (kind, got.notes)  # the known verdict
        assert _verdict(got, dask_graded.course) == _verdict(ref, local.course), kind
    rows = {r["student"]: r for r in _csv(dask_graded.report.csv_path)}
    local_rows = {r["student"]: r for r in _csv(local.report.csv_path)}
    for kind in EXPECTED:
        for column in ("status", "score", "max_score", "clean", "flags", "test_relu", "test_zero_center",
                       "test_standardize", "test_softmax"):
            assert rows[kind][column] == local_rows[kind][column], (kind, column)
    ours, theirs = _gradebook(dask_graded.course / "gradebook.db"), _gradebook(local.course / "gradebook.db")
    for kind in EXPECTED:
        assert ours[kind]["grades"] == theirs[kind]["grades"], kind
        assert ours[kind]["timestamp"] == theirs[kind]["timestamp"], kind
    assert dask_graded.report.warnings == [] and "dask cluster at tcp://127.0.0.1:" in dask_graded.report.summary()


@pytest.mark.slow
def test_hostile_submissions_do_not_take_their_worker_down(dask_graded):
    # the kernel that calls os._exit, the loop that ignores interrupts, the 2 MB line and 100 000 lines, the
    # writes outside the unit: each graded on a worker process, and both workers are the ones that started
    assert dask_graded.pids_after == dask_graded.pids_before
    workers = {r.worker for r in dask_graded.report.results}
    assert workers == set(dask_graded.pids_before), workers  # both workers graded, and only they
    pages = sorted(p.parent.parent.name for p in (dask_graded.course / "feedback").rglob("*.html"))
    assert pages == sorted(EXPECTED)
    assert _marked_processes() == []
    stored = dask_graded.course / "autograded" / "huge_output" / NAME / f"{NAME}.ipynb"
    assert stored.stat().st_size < 1_000_000
    assert (dask_graded.course / "source" / NAME / f"{NAME}.ipynb").read_bytes() == (SOURCE / NAME / f"{NAME}.ipynb").read_bytes()


# --------------------------------------------------------------------------------------------- faults
@pytest.mark.slow
def test_a_worker_killed_while_grading_is_replaced_and_its_submission_graded_once(cluster, template, tmp_path):
    client = cluster.client
    students = {"a_victim": "infinite_loop", "b_right": "correct", "c_wrong": "wrong_answer"}
    folder = _flat(tmp_path / "subs", students)
    course = tmp_path / "course"
    course.mkdir()
    pids = {pid: address for address, pid in client.run(os.getpid).items()}
    with cf.ThreadPoolExecutor(1) as caller:
        batch = caller.submit(grade_class, folder, NAME, course=course, source=SOURCE, scheduler=client,
                              cell_timeout=CELL_TIMEOUT, timeout=240, progress=False, template=template)
        # the victim's grading process, started by a worker process: kill that worker while it runs
        unit = _wait_until(lambda: _unit_processes("unit-a_victim-"), "the victim's grading process")[0]
        worker_pid = unit.ppid()
        assert worker_pid in pids, (worker_pid, pids)
        killed = pids[worker_pid]
        os.kill(worker_pid, signal.SIGKILL)
        report = batch.result(timeout=400)
    results = report.by_student()
    assert sorted(results) == sorted(students)
    victim = results["a_victim"]
    assert victim.worker and victim.worker != killed  # graded again, elsewhere
    for student, kind in students.items():
        assert results[student].status == "graded" and results[student].score == KIND_SCORE[kind], student
        assert (course / "feedback" / student / NAME / f"{NAME}.html").is_file(), student
    book = _gradebook(course / "gradebook.db")
    assert sorted(book) == sorted(students)
    for student, kind in students.items():
        assert sum(a for a, _, _ in book[student]["grades"].values()) == KIND_SCORE[kind]
    rows = _csv(report.csv_path)
    assert sorted((r["student"], float(r["score"])) for r in rows) == sorted((s, KIND_SCORE[k]) for s, k in students.items())
    lines = (course / f"{NAME}_graded.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["student"] for line in lines) == sorted(students)
    # the dead worker's grading process noticed and took its kernel with it; the nanny started a new worker
    _wait_until(lambda: not unit.is_running() or unit.status() == psutil.STATUS_ZOMBIE, "the orphaned unit to exit", 30)
    try:
        _wait_until(lambda: _marked_processes() == [], "no grading process left", 30)
    except AssertionError:
        left = []
        for p in _marked_processes():
            try:
                left.append((p.pid, p.status(), p.ppid(), p.cmdline()[:6]))
            except psutil.Error:
                continue
        raise AssertionError(f"grading processes left 30 s after their worker died: {left}") from None
    client.wait_for_workers(2, timeout=120)
    assert killed not in client.nthreads()


@pytest.mark.slow
def test_an_interrupted_batch_resumes_without_grading_twice_and_ends_as_a_clean_run(cluster, template, tmp_path):
    client = cluster.client
    # ten submissions on two workers: the batch cannot finish in the moment between the first saved verdict and
    # the interrupt (with four, a quiet machine graded the last three before the signal arrived)
    kinds = ["correct", "wrong_answer", "exception", "missing_import"]
    students = {f"s{i + 1}": kinds[i % len(kinds)] for i in range(10)}
    folder = _flat(tmp_path / "subs", students)
    clean, course = tmp_path / "clean", tmp_path / "course"
    clean.mkdir(), course.mkdir()
    reference = grade_class(folder, NAME, course=clean, source=SOURCE, scheduler=client, cell_timeout=CELL_TIMEOUT,
                            progress=False, template=template)
    assert [r.status for r in reference.results] == ["graded"] * len(students)

    journal = course / f"{NAME}_graded.jsonl"
    command = [sys.executable, "-m", "course_lib.grading", "class", str(folder), "--assignment", NAME,
               "--course", str(course), "--source", str(SOURCE), "--scheduler", cluster.address,
               "--cell-timeout", str(CELL_TIMEOUT), "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    # Ctrl-C must reach the command as it would from a terminal, even when this test suite was started in the
    # background (a non-interactive shell starts background jobs with SIGINT ignored, and children inherit that)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_until(lambda: journal.is_file() and journal.read_text().count("\n") >= 1, "a first saved verdict", 240)
        proc.send_signal(signal.SIGINT)  # Ctrl-C in the instructor's terminal
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (out, err)
    assert "interrupted:" in err and "run the same command again" in err
    saved = sorted({json.loads(line)["student"] for line in journal.read_text().splitlines()})
    assert 1 <= len(saved) < len(students), saved
    assert not (course / f"{NAME}_scores.csv").exists()  # the CSV is written by a complete batch only
    stamps = {s: (course / "autograded" / s / NAME / f"{NAME}.ipynb").stat().st_mtime_ns for s in saved}

    again = grade_class(folder, NAME, course=course, source=SOURCE, scheduler=client, cell_timeout=CELL_TIMEOUT,
                        progress=False, template=template)
    assert again.reused == saved
    assert sorted(r.student for r in again.results) == sorted(students)
    assert {s: (course / "autograded" / s / NAME / f"{NAME}.ipynb").stat().st_mtime_ns for s in saved} == stamps
    lines = [json.loads(line)["student"] for line in journal.read_text().splitlines()]
    assert sorted(lines) == sorted(students)  # each student saved once: none graded twice
    assert _gradebook(course / "gradebook.db") == _gradebook(clean / "gradebook.db")
    assert _csv(again.csv_path) == _csv(reference.csv_path)
    assert "Kept the saved verdicts of" in again.summary()

    one = dict(list(students.items())[:1])
    only = _flat(tmp_path / "one", one)
    regraded = grade_class(only, NAME, course=course, source=SOURCE, scheduler=client, cell_timeout=CELL_TIMEOUT,
                           progress=False, template=template, regrade=True)
    assert regraded.reused == [] and [r.student for r in regraded.results] == list(one)
    assert [json.loads(line)["student"] for line in journal.read_text().splitlines()].count("s1") == 2
    assert _gradebook(course / "gradebook.db") == _gradebook(clean / "gradebook.db")


@pytest.mark.slow
def test_cli_scheduler_local_starts_and_stops_its_own_cluster(template, tmp_path, capsys):
    require_sandbox()
    students = {"ann": "correct", "ben": "kernel_killed"}
    folder = _flat(tmp_path / "subs", students)
    course = tmp_path / "course"
    course.mkdir()
    children = {p.pid for p in psutil.Process().children(recursive=True)}
    code = cli(["class", str(folder), "--assignment", NAME, "--course", str(course), "--source", str(SOURCE),
                "--scheduler", "local", "--workers", "2", "--cell-timeout", str(CELL_TIMEOUT), "--quiet",
                "--json", str(tmp_path / "verdicts.json")])
    out = capsys.readouterr().out
    assert code == 1  # ben's kernel died: not clean
    verdicts = {v["student"]: v for v in json.loads((tmp_path / "verdicts.json").read_text())}
    assert verdicts["ann"]["status"] == "graded" and verdicts["ann"]["score"] == 6
    assert verdicts["ben"]["status"] == "kernel_died" and verdicts["ben"]["score"] == 0
    assert all(v["worker"].startswith("tcp://127.0.0.1:") for v in verdicts.values())
    assert "with the dask cluster at tcp://127.0.0.1:" in out and "  ben " in out
    _wait_until(lambda: {p.pid for p in psutil.Process().children(recursive=True)
                         if p.status() != psutil.STATUS_ZOMBIE} <= children, "the local cluster to stop", 60)


# ------------------------------------------------------------------------------------ fast: no cluster
def test_an_unreachable_scheduler_is_named_quickly_and_nothing_is_written(tmp_path, capsys):
    folder = _flat(tmp_path / "subs", {"ann": "correct"})
    course = tmp_path / "course"
    course.mkdir()
    address = _free_address()
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=re.escape(f"could not reach the dask scheduler at {address} within 1 s")):
        grade_class(folder, NAME, course=course, source=SOURCE, scheduler=address, connect_timeout=1, progress=False)
    took = time.monotonic() - started
    assert took < 30, took  # the connect timeout, not dask's default 30 s and retries
    code = cli(["class", str(folder), "--assignment", NAME, "--course", str(course), "--source", str(SOURCE),
                "--scheduler", address, "--connect-timeout", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and address in err and "dask worker" in err
    assert list(course.iterdir()) == []


def test_scheduler_argument_is_checked(tmp_path):
    with pytest.raises(TypeError, match="scheduler must be 'local', an address .* got int"):
        grade_class(tmp_path, NAME, source=SOURCE, scheduler=42)
    with pytest.raises(ValueError, match="scheduler must be 'local' or an address"):
        grade_class(tmp_path, NAME, source=SOURCE, scheduler="tcp://host 8786")
    with pytest.raises(ValueError, match="give executor or scheduler, not both"):
        grade_class(tmp_path, NAME, source=SOURCE, scheduler="local", executor=cf.ThreadPoolExecutor(1))
    with pytest.raises(ValueError, match="connect_timeout must be a positive number"):
        grade_class(tmp_path, NAME, source=SOURCE, scheduler="local", connect_timeout=0)
    with pytest.raises(ValueError, match="retries must be >= 0, got -1"):
        grade_class(tmp_path, NAME, source=SOURCE, scheduler="local", retries=-1)
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        grade_class(tmp_path, NAME, source=SOURCE, scheduler="local", workers=0)
    with pytest.raises(TypeError, match="regrade must be True or False, got str"):
        grade_class(tmp_path, NAME, source=SOURCE, regrade="yes")


def test_journal_survives_a_torn_line(tmp_path):
    journal = _Journal(tmp_path / "j.jsonl")
    assert journal.load() == {}
    journal.append({"student": "ann", "submission": "1", "result": {"score": 1}})
    with open(journal.path, "a") as fh:
        fh.write('{"student": "ben", "subm')  # killed in the middle of a write
    journal.append({"student": "cy", "submission": "3", "result": {"score": 3}})
    journal.append({"student": "ann", "submission": "4", "result": {"score": 4}})
    entries = journal.load()
    assert sorted(entries) == ["ann", "cy"] and entries["ann"]["submission"] == "4"


class _Failing(cf.Executor):
    """An executor whose every unit raises, as a remote unit that cannot even start would."""

    def submit(self, fn, *args, **kwargs):
        future = cf.Future()
        future.set_exception(ModuleNotFoundError("No module named 'course_lib'"))
        return future


@pytest.mark.slow
def test_a_unit_that_crashed_is_reported_and_not_saved(template, tmp_path):
    folder = _flat(tmp_path / "subs", {"ann": "correct", "ben": "wrong_answer"})
    course = tmp_path / "course"
    course.mkdir()
    report = grade_class(folder, NAME, course=course, source=SOURCE, executor=_Failing(), progress=False,
                         template=template)
    assert [(r.student, r.status, r.flags) for r in report.results] == [("ann", "failed", ["unit_crashed"]),
                                                                       ("ben", "failed", ["unit_crashed"])]
    assert all("ModuleNotFoundError" in r.reason and "rerun" in r.reason for r in report.results)
    assert {r.student for r in report.unclean} == {"ann", "ben"}
    # no 0 written over a score, no feedback, nothing in the journal: the next run grades them
    assert sorted(p.name for p in course.iterdir()) == [f"{NAME}_scores.csv"]


def test_a_task_whose_workers_all_died_becomes_unit_crashed():
    job = GradingJob("ann", NAME, f"{NAME}.ipynb", b"{}", b"zip")
    future = types.SimpleNamespace(result=lambda: (_ for _ in ()).throw(
        distributed.KilledWorker("grade-ann", types.SimpleNamespace(address="tcp://10.0.0.9:4000"), 3)))
    result = _dask._outcome(future, job, distributed, client=None)
    assert result.status == "failed" and result.flags == ["unit_crashed"]
    assert "every dask worker that tried to grade it died" in result.reason and not result.clean


@pytest.mark.slow
def test_the_task_runs_outside_a_worker_too(template, tmp_path):
    job = GradingJob("ann", NAME, f"{NAME}.ipynb", b"", template, scratch=str(tmp_path))
    result = _dask.run_unit(job)
    assert result.status == "ungradable" and result.worker == socket.gethostname()


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

