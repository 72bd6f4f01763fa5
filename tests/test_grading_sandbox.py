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
from pathlib import Path

import pytest

from course_lib.grading import Limits, _bwrap, grade_class
from course_lib.grading.__main__ import main as cli
from tests.helpers.grading import (
    CORPUS,
    EXPECTED,
    HOSTILE,
    HOSTILE_EXPECTED,
    NAME,
    NO_BWRAP,
    TOKEN,
    check_hostile_verdict,
    check_no_secret_escaped,
    corpus_template,
    hostile_graded_locally,
    needs_bwrap,
    require_sandbox,
)


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


# ------------------------------------------------------------------------------------ the tripwire


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

