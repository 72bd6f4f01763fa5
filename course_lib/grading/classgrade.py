"""Class-scale autograding on top of nbgrader: one process, one gradebook and one time limit per submission.

:func:`grade_class` turns every submission into a self-contained :class:`GradingJob` (the submitted bytes and
a zipped scratch course: source, release, gradebook) and hands it to :func:`grade_submission` on a local
pool of threads (each driving one grading process), on any ``concurrent.futures.Executor``, or on a
``dask.distributed`` cluster (``scheduler=``, one task per submission, see :mod:`course_lib.grading._dask`).
Each unit unpacks its own course folder, checks the notebook, runs ``nbgrader autograde`` in a child process
with a hard time limit behind a sandbox tripwire (:mod:`course_lib.grading._sandbox`), renders feedback
without hidden tests, and returns a :class:`SubmissionResult`. The caller saves each result as it arrives:
``autograded/`` and ``feedback/`` in nbgrader's layout, the course's gradebook, and one line in the
assignment's journal (``<assignment>_graded.jsonl``), so an interrupted batch resumes where it stopped; at
the end it writes a scores CSV and a summary of every submission that did not grade cleanly.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, fields
from itertools import chain
from pathlib import Path

import nbformat

from . import _feedback, _sandbox
from . import _notebook as nbt
from .selfcheck import SELF_CHECK_ENV, CellResult

REPO = Path(__file__).resolve().parents[2]
UNIT_ENV = "COURSE_GRADING_UNIT"  # marks every process of a unit, so none can outlive it
#: Flags that put a submission in the summary of unclean gradings (the others are only informative).
UNCLEAN = {
    "renamed": "the notebook was renamed",
    "missing_grade_cells": "graded cells were deleted",
    "missing_answer_cells": "answer cells were deleted",
    "edited_tests": "locked test cells were edited",
    "unknown_cells": "cells with unknown grade ids",
    "duplicate_cells": "grade ids appear twice",
    "cell_timeout": "a cell hit the time limit",
    "output_truncated": "outputs were too large",
    "sandbox_violation": "the submission tried to touch files or programs outside its folder",
    "hidden_leak_redacted": "outputs quoting hidden tests were removed",
    "unit_crashed": "the grading unit crashed or every worker that ran it died; nothing was recorded for it "
                    "(rerun to grade it)",
}
INFO = {"unanswered": "no answer cell was changed", "cell_errors": "answer cells raised errors"}


@dataclass
class GradingJob:
    """Everything one grading unit needs, in plain data (so it pickles to another process or machine)."""

    student: str
    assignment: str
    filename: str
    data: bytes
    template: bytes
    timeout: float = 900.0
    cell_timeout: float = 180.0
    max_output_chars: int = 20_000
    restore_missing: bool = True
    deny: tuple[str, ...] = ()
    timestamp: str | None = None
    scratch: str | None = None
    notes: tuple[str, ...] = ()  # found while collecting (a renamed notebook)
    flags: tuple[str, ...] = ()


@dataclass
class SubmissionResult:
    """The verdict on one submission. ``status`` is ``graded``, ``ungradable``, ``timeout``, ``kernel_died``
    or ``failed``; ``flags`` name anomalies (see :data:`UNCLEAN`); ``notes`` say them in words."""

    student: str
    assignment: str
    status: str
    score: float = 0.0
    max_score: float = 0.0
    cells: list[CellResult] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    grades: list[dict] = field(default_factory=list)
    comments: list[dict] = field(default_factory=list)
    feedback_html: str | None = None
    autograded: str | None = None
    log_tail: str = ""
    timestamp: str | None = None
    phases: dict = field(default_factory=dict)  # seconds spent in nbgrader autograde and feedback
    worker: str = ""  # the dask worker that graded it (empty on the local pool)

    @property
    def clean(self) -> bool:
        return self.status == "graded" and not (set(self.flags) & set(UNCLEAN))

    @property
    def reason(self) -> str:
        return "; ".join(self.notes) if self.notes else self.status


@dataclass
class ClassReport:
    """All results of a :func:`grade_class` run and where its files went."""

    assignment: str
    results: list[SubmissionResult]
    seconds: float
    workers: int | None  # None: the caller's executor
    csv_path: Path | None = None
    warnings: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)  # students whose saved verdict was kept (not graded again)
    where: str | None = None  # the dask cluster, in words

    @property
    def unclean(self) -> list[SubmissionResult]:
        return [r for r in self.results if not r.clean]

    def by_student(self) -> dict[str, SubmissionResult]:
        return {r.student: r for r in self.results}

    def summary(self) -> str:
        n, kept = len(self.results), len(self.reused)
        per = self.seconds / (n - kept) if n > kept else 0.0
        how = self.where or (f"{self.workers} worker(s)" if self.workers else "the given executor")
        lines = [f"Graded {n - kept} submission(s) of {self.assignment} in {self.seconds:.1f} s with {how} "
                 f"({per:.1f} s per notebook)."]
        if kept:
            lines.append(f"Kept the saved verdicts of {kept} submission(s) graded by an earlier run (unchanged "
                         f"notebook, source and settings; --regrade grades them again).")
        bad = self.unclean
        if bad:
            width = max(len(r.student) for r in bad)
            lines.append(f"Did not grade cleanly ({len(bad)}):")
            for r in sorted(bad, key=lambda r: r.student):
                lines.append(f"  {r.student:<{width}}  {r.status:<11} {r.score:g}/{r.max_score:g}  {r.reason}")
        else:
            lines.append("Every submission graded cleanly.")
        for w in self.warnings:
            lines.append(f"WARNING: {w}")
        if self.csv_path is not None:
            lines.append(f"Scores: {self.csv_path}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- collecting
@dataclass
class _Found:
    student: str
    path: Path | None
    problem: str | None = None
    renamed_from: str | None = None
    timestamp: str | None = None


def find_submissions(submissions: Path, assignment: str) -> list[_Found]:
    """Submissions in nbgrader's ``submitted/<student>/<assignment>/`` layout (``submissions`` is the
    ``submitted`` folder or the course folder holding it) or a flat folder of ``<student>.ipynb`` files."""
    root = Path(submissions)
    if not root.is_dir():
        raise FileNotFoundError(f"submissions folder {str(root)!r} does not exist")
    if (root / "submitted").is_dir():  # the course folder: its source/, release/... are not students
        root = root / "submitted"
    students = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and (d / assignment).is_dir())
    if students:
        return [_nbgrader_layout(d.name, d / assignment, assignment) for d in students]
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix == ".ipynb" and not p.name.startswith("."))
    return [_Found(p.stem, p) for p in files]


def _nbgrader_layout(student: str, folder: Path, assignment: str) -> _Found:
    stamp = folder / "timestamp.txt"
    timestamp = stamp.read_text().strip() if stamp.is_file() else None
    expected = folder / f"{assignment}.ipynb"
    if expected.is_file():
        return _Found(student, expected, timestamp=timestamp)
    notebooks = sorted(p for p in folder.glob("*.ipynb") if p.is_file())
    if len(notebooks) == 1:
        return _Found(student, notebooks[0], renamed_from=notebooks[0].name, timestamp=timestamp)
    if not notebooks:
        return _Found(student, None, problem=f"no notebook in {folder.name}/ (expected {expected.name})",
                      timestamp=timestamp)
    names = ", ".join(p.name for p in notebooks)
    return _Found(student, None, problem=f"several notebooks ({names}) and none is named {expected.name}",
                  timestamp=timestamp)


# ------------------------------------------------------------------------------------------- one submission
def grade_submission(job: GradingJob) -> SubmissionResult:
    """Grade one submission in a private scratch course; never raises (a failure is a result).

    Example:
        >>> result = grade_submission(job)  # doctest: +SKIP
        >>> result.status, result.score, result.max_score
        ('graded', 6.0, 6.0)
    """
    start = time.monotonic()
    result = SubmissionResult(job.student, job.assignment, "failed", flags=list(job.flags), notes=list(job.notes),
                              timestamp=job.timestamp)
    unit = Path(tempfile.mkdtemp(prefix=f"unit-{_safe(job.student)}-", dir=_scratch_root(job.scratch)))
    try:
        _grade(job, unit, result)
    except Exception as exc:  # the batch must complete: an unexpected error is this submission's verdict
        result.status = "failed"
        result.notes.append(f"grader error: {type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(unit, ignore_errors=True)
        result.seconds = time.monotonic() - start
    if result.status != "graded" and result.feedback_html is None:
        result.feedback_html = _feedback.verdict_page(job.student, job.assignment, result.status, result.score,
                                                      result.max_score, result.notes)
    return result


def _scratch_root(scratch: str | None) -> Path:
    """The folder all units on this machine share (denied to every unit's kernel but its own folder): the
    caller's scratch folder, or, on another machine (a cluster worker), one under the system's temp folder."""
    if scratch and Path(scratch).is_dir():
        return Path(scratch)
    root = Path(tempfile.gettempdir()) / "course-grading-units"
    root.mkdir(mode=0o700, exist_ok=True)
    return root


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)[:40] or "student"


def _grade(job: GradingJob, unit: Path, result: SubmissionResult) -> None:
    with zipfile.ZipFile(io.BytesIO(job.template)) as zf:
        zf.extractall(unit)
    name = job.assignment
    release = nbformat.read(unit / "release" / name / f"{name}.ipynb", as_version=4)
    result.max_score = sum(nbt.points(c) for c in release.cells if nbt.is_grade(c))
    try:
        nb = nbt.read_notebook(job.data)
    except nbt.NotebookProblem as exc:
        result.status = "ungradable"
        result.flags.append(exc.kind)
        result.notes.append(f"not graded: {exc}")
        return
    _compare(nb, release, job, result)
    folder = unit / "submitted" / job.student / name
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{name}.ipynb")
    if job.timestamp:
        (folder / "timestamp.txt").write_text(job.timestamp)
    workdir = unit / "autograded" / job.student / name
    private = unit / "tmp"
    for d in (private / "mpl", unit / "ipython" / "profile_default" / "startup"):
        d.mkdir(parents=True)
    (unit / "ipython" / "profile_default" / "startup" / "00-course-grading-sandbox.py").write_text(_sandbox.STARTUP)
    (unit / "unit.json").write_text(json.dumps({"assignment": name, "student": job.student,
                                                "cell_timeout": job.cell_timeout,
                                                "max_output_chars": job.max_output_chars}))
    log = unit / "sandbox.log"
    deny = [str(unit.parent), str(unit), *job.deny]
    env = _child_env({
        UNIT_ENV: unit.name,
        "IPYTHONDIR": str(unit / "ipython"), "TMPDIR": str(private), "MPLCONFIGDIR": str(private / "mpl"),
        "PYTHONDONTWRITEBYTECODE": "1",
        _sandbox.ENV: _sandbox.config([str(workdir), str(private), str(unit / "ipython")], deny, str(log)),
    })
    try:
        finished = _run_child([sys.executable, "-m", "course_lib.grading._autograde", "unit", str(unit)], env, unit,
                              job.timeout)
    finally:
        _kill_leftovers(unit.name)
    _violations(log, result)
    if not finished:
        result.status = "timeout"
        result.notes.append(f"grading took longer than the {job.timeout:g} s limit and was stopped")
        return
    out_path = unit / "result.json"
    out = json.loads(out_path.read_text()) if out_path.is_file() else {"success": False, "log": "no result.json"}
    if not out.get("success"):
        _failure(out, job, result)
        return
    _collect(out, unit, job, result)


def _compare(nb, release, job: GradingJob, result: SubmissionResult) -> None:
    cmp = nbt.compare(nb, release)
    if cmp.unanswered:
        result.flags.append("unanswered")
        result.notes.append("no answer cell was changed from the released version")
    if cmp.missing_grade:
        result.flags.append("missing_grade_cells")
        if job.restore_missing:
            nbt.restore_missing(nb, release, cmp.missing_grade)
            result.notes.append(f"graded cell(s) {', '.join(cmp.missing_grade)} were deleted; restored from the "
                                f"release and graded")
        else:
            result.notes.append(f"graded cell(s) {', '.join(cmp.missing_grade)} were deleted and score 0")
    if cmp.missing_solution:
        result.flags.append("missing_answer_cells")
        result.notes.append(f"answer cell(s) {', '.join(cmp.missing_solution)} were deleted or lost their metadata")
    if cmp.edited_locked:
        result.flags.append("edited_tests")
        result.notes.append(f"locked cell(s) {', '.join(cmp.edited_locked)} were edited; the original tests were run")
    if cmp.unknown:
        result.flags.append("unknown_cells")
        result.notes.append(f"cell(s) with unknown grade ids {', '.join(cmp.unknown)} were not graded")
    if cmp.duplicated:
        result.flags.append("duplicate_cells")
        result.notes.append(f"grade id(s) {', '.join(cmp.duplicated)} appear more than once")


def _child_env(extra: dict) -> dict:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env[SELF_CHECK_ENV] = "0"
    env.update(extra)
    return env


def _run_child(cmd: list[str], env: dict, cwd: Path, timeout: float) -> bool:
    """Run ``cmd``; on timeout kill it and every process it started (kernels run in their own sessions)."""
    with open(cwd / "child.log", "wb") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            return False


def _kill_tree(proc: subprocess.Popen) -> None:
    try:
        import psutil

        children = psutil.Process(proc.pid).children(recursive=True)
    except Exception:  # psutil missing or the process already gone: fall back to the process group
        children = []
    for child in children:
        try:
            child.kill()
        except Exception:
            pass
    try:
        os.killpg(proc.pid, 9)
    except OSError:
        proc.kill()
    proc.wait()


def _kill_leftovers(marker: str, spare: int | None = None) -> None:
    """Kill any process still carrying this unit's marker (a kernel that outlived nbgrader in its own session),
    except the process ``spare`` (the unit's own grading process when it cleans up after itself)."""
    try:
        import psutil
    except ImportError:
        return
    for proc in psutil.process_iter():
        try:
            if proc.pid != spare and proc.environ().get(UNIT_ENV) == marker:
                proc.kill()
        except (psutil.Error, OSError):
            continue


def _violations(log: Path, result: SubmissionResult) -> None:
    if not log.is_file():
        return
    blocked = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            blocked.append(json.loads(line)["blocked"])
        except (ValueError, KeyError, TypeError):
            blocked.append(line[:200])
    if blocked:
        result.flags.append("sandbox_violation")
        shown = "; ".join(dict.fromkeys(blocked))
        result.notes.append(f"blocked {len(blocked)} attempt(s) to reach outside the submission: {shown[:600]}")


def _failure(out: dict, job: GradingJob, result: SubmissionResult) -> None:
    text = f"{out.get('error', '')}\n{out.get('log', '')}"
    result.log_tail = text[-4000:]
    if "DeadKernelError" in text or "Kernel died" in text:
        result.status = "kernel_died"
        result.notes.append("the kernel died while running the notebook (os._exit, a crash or running out of "
                            "memory); not graded automatically")
    elif "CellTimeoutError" in text or "Timeout waiting" in text:
        result.status = "timeout"
        result.notes.append(f"a cell ran past the {job.cell_timeout:g} s cell limit and did not stop when "
                            f"interrupted; not graded automatically")
    else:
        result.status = "failed"
        last = [ln for ln in text.strip().splitlines() if ln.strip()][-1:] or ["unknown error"]
        result.notes.append(f"nbgrader could not grade the notebook: {last[0][:300]}")


def _collect(out: dict, unit: Path, job: GradingJob, result: SubmissionResult) -> None:
    name = job.assignment
    result.status = "graded"
    result.phases = {k.removesuffix("_seconds"): v for k, v in out.items() if k.endswith("_seconds")}
    result.grades, result.comments = out["grades"], out["comments"]
    result.timestamp = out.get("timestamp") or job.timestamp
    result.score = sum(g["auto_score"] or 0.0 for g in result.grades)
    result.max_score = sum(g["max_score"] or 0.0 for g in result.grades)
    verdicts = out.get("verdicts", {})
    for g in result.grades:
        v = verdicts.get(g["cell"], {})
        got = g["auto_score"] or 0.0
        status = "passed" if got >= (g["max_score"] or 0.0) else "failed"
        result.cells.append(CellResult(g["cell"], status, got, g["max_score"] or 0.0, v.get("message", "")))
    if out.get("timeouts"):
        result.flags.append("cell_timeout")
        result.notes.append(f"cell(s) {', '.join(out['timeouts'])} ran past the {job.cell_timeout:g} s limit and "
                            f"were interrupted")
    if out.get("errors"):
        result.flags.append("cell_errors")
        result.notes.append("errors: " + " | ".join(out["errors"][:4]))
    if out.get("truncated"):
        result.flags.append("output_truncated")
        result.notes.append(f"outputs of {out['truncated']} cell(s) were too large (over {job.max_output_chars:,} "
                            f"characters or nbgrader's line limit) and were cut")
    if out.get("redacted"):
        result.flags.append("hidden_leak_redacted")
        result.notes.append(f"{out['redacted']} output(s) quoted hidden tests and were removed from the feedback")
    instructor = unit / "instructor.ipynb"
    result.autograded = instructor.read_text() if instructor.is_file() else None
    page = unit / "feedback" / job.student / name / f"{name}.html"
    if out.get("feedback") and page.is_file():
        source = nbformat.read(unit / "source" / name / f"{name}.ipynb", as_version=4)
        release = nbformat.read(unit / "release" / name / f"{name}.ipynb", as_version=4)
        text = page.read_text()
        if _feedback.leaks(_feedback.html_text(text), _feedback.secret_lines(source, release)):
            result.flags.append("hidden_leak_redacted")
            result.notes.append("the rendered feedback quoted hidden tests and was replaced by a summary")
            text = _feedback.verdict_page(job.student, name, result.status, result.score, result.max_score,
                                          result.notes)
        result.feedback_html = _feedback.add_banner(text, _student_notes(result))
    else:
        result.feedback_html = _feedback.verdict_page(job.student, name, result.status, result.score,
                                                      result.max_score, result.notes)


def _student_notes(result: SubmissionResult) -> list[str]:
    """The notes as the student sees them (the grader's paths stay with the instructor)."""
    notes = [n for n in result.notes if not n.startswith("blocked ")]
    if "sandbox_violation" in result.flags:
        notes.append("your notebook tried to read or change files or start programs outside its own folder; this "
                     "was blocked and reported to your instructor")
    return notes


# ------------------------------------------------------------------------------------------------ the class
def build_template(source: Path, assignment: str, scratch: Path, timeout: float = 300) -> bytes:
    """Generate ``assignment`` from ``source`` in a scratch course; return it zipped (source, release, gradebook)."""
    source, dest = Path(source).resolve(), Path(scratch).resolve() / "template"
    dest.mkdir(parents=True)
    cmd = [sys.executable, "-m", "course_lib.grading._autograde", "template", str(source), assignment, str(dest)]
    done = subprocess.run(cmd, env=_child_env({}), cwd=dest, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"could not generate {assignment} from {source}:\n{done.stderr[-3000:]}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(dest.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(dest).as_posix())
    return buffer.getvalue()


def grade_class(submissions: str | os.PathLike, assignment: str, *, course: str | os.PathLike | None = None,
                source: str | os.PathLike | None = None, gradebook: str | os.PathLike | None = None,
                workers: int = 1, executor: cf.Executor | None = None, scheduler=None, timeout: float = 900,
                cell_timeout: float = 180, max_output_chars: int = 20_000, restore_missing: bool = True,
                progress: bool = True, scratch: str | os.PathLike | None = None,
                template: bytes | None = None, regrade: bool = False, connect_timeout: float = 10,
                retries: int = 1) -> ClassReport:
    """Autograde every submission of ``assignment``, each in its own process, and merge the results.

    Each verdict is saved as soon as it arrives (files, gradebook, then one line in the journal
    ``course/<assignment>_graded.jsonl``), so a batch that is interrupted loses nothing: a second run keeps the
    saved verdicts of submissions whose notebook, source and settings are unchanged and grades the rest.

    Args:
        submissions: nbgrader's ``submitted/`` folder (``<student>/<assignment>/*.ipynb``), the course folder
            holding it, or a flat folder of ``<student>.ipynb`` files.
        assignment: the assignment's name (the folder and notebook name in ``source``).
        course: where ``autograded/``, ``feedback/``, ``<assignment>_scores.csv`` and the journal go (default:
            the current folder).
        source: the folder holding ``<assignment>/<assignment>.ipynb`` with solutions and hidden tests (default:
            ``course/solutions`` if it exists, else ``course/source``).
        gradebook: the course's gradebook file that results are merged into (default: ``course/gradebook.db``).
        workers: how many submissions are graded at once by the default executor (threads, each driving
            one grading process), or the number of worker processes of ``scheduler="local"``.
        executor: any ``concurrent.futures.Executor`` to run the units instead; it is not shut down here.
        scheduler: grade on a ``dask.distributed`` cluster, one task per submission: a scheduler address
            (``"tcp://host:8786"``), a ``distributed.Client`` (not closed here), or ``"local"`` for a
            ``LocalCluster`` of ``workers`` processes started and stopped here.
        timeout: seconds for one submission, all included; past it the unit and its kernel are killed.
        cell_timeout: seconds for one cell (nbgrader interrupts the kernel past it).
        max_output_chars: outputs longer than this are cut in the stored notebook and the feedback.
        restore_missing: grade a deleted graded cell from the release (else it scores 0, and is reported).
        progress: show a tqdm progress bar.
        scratch: where the units' scratch folders go (default: a new temporary folder).
        template: the zipped scratch course from :func:`build_template` for this ``source`` and ``assignment``,
            to skip generating the assignment again (default: generate it).
        regrade: grade every submission again, even those whose saved verdict is still valid.
        connect_timeout: seconds to reach the dask scheduler and to find a worker there.
        retries: on dask, how many times a task that raised is run again (a task whose worker died is
            rescheduled by dask itself, up to ``distributed.scheduler.allowed-failures`` times).

    Returns:
        A :class:`ClassReport`; ``report.summary()`` lists every submission that did not grade cleanly.

    Raises:
        ConnectionError: the dask scheduler cannot be reached (nothing is written), or was lost mid-batch
            (what was saved stays saved).
        GradingInterrupted: a ``KeyboardInterrupt`` during the batch; it says how many verdicts were saved.

    Example:
        >>> report = grade_class("submitted", "02_batch_normalization", workers=4)  # doctest: +SKIP
        >>> print(report.summary())  # doctest: +SKIP
        Graded 120 submission(s) of 02_batch_normalization in 171.3 s with 4 worker(s) (1.4 s per notebook).
        >>> report = grade_class("submitted", "02_batch_normalization", scheduler="tcp://10.0.0.5:8786")  # doctest: +SKIP
    """
    start = time.monotonic()
    if not isinstance(assignment, str) or not assignment or "/" in assignment:
        raise ValueError(f"assignment must be a folder name such as '02_batch_normalization', got {assignment!r}")
    if (executor is None or scheduler == "local") and (isinstance(workers, bool) or not isinstance(workers, int)
                                                       or workers < 1):
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if executor is not None and scheduler is not None:
        raise ValueError("give executor or scheduler, not both")
    for value, label in ((timeout, "timeout"), (cell_timeout, "cell_timeout"), (connect_timeout, "connect_timeout")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{label} must be a positive number of seconds, got {value!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0, got {retries!r}")
    if not isinstance(regrade, bool):
        raise TypeError(f"regrade must be True or False, got {type(regrade).__name__}")
    if template is not None and not isinstance(template, bytes):
        raise TypeError(f"template must be the bytes returned by build_template, got {type(template).__name__}")
    if scheduler is not None:
        from . import _dask

        _dask.check_scheduler(scheduler)
    course = Path(course).resolve() if course is not None else Path.cwd()
    if source is None:
        source = course / "solutions" if (course / "solutions").is_dir() else course / "source"
    source = Path(source).resolve()
    if not (source / assignment / f"{assignment}.ipynb").is_file():
        raise FileNotFoundError(f"source notebook {source / assignment / (assignment + '.ipynb')} does not exist")
    gradebook = Path(gradebook).resolve() if gradebook is not None else course / "gradebook.db"
    submissions = Path(submissions).resolve()
    found = find_submissions(submissions, assignment)
    report = ClassReport(assignment, [], 0.0, workers if executor is None and scheduler is None else None)
    with ExitStack() as stack:
        client = None
        if scheduler is not None:  # first, so that an unreachable scheduler fails before anything is written
            client, report.where = stack.enter_context(_dask.connect(scheduler, workers, connect_timeout))
            report.warnings += _dask.probe(client)
        own_scratch = scratch is None
        scratch = Path(tempfile.mkdtemp(prefix="course-grading-")) if own_scratch else Path(scratch)
        scratch.mkdir(parents=True, exist_ok=True)
        if own_scratch:
            stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        journal = _Journal(course / f"{assignment}{JOURNAL_SUFFIX}")
        settings = _settings_digest(source / assignment, float(timeout), float(cell_timeout), int(max_output_chars),
                                    bool(restore_missing))
        saved = {} if regrade else _still_valid(journal.load(), settings, gradebook, course, assignment)
        todo, early, kept = [], [], []
        for f in found:
            if f.path is None:
                early.append(SubmissionResult(f.student, assignment, "ungradable", flags=["no_notebook"],
                                              notes=[f"not graded: {f.problem}"], timestamp=f.timestamp))
                continue
            data = f.path.read_bytes()
            entry = saved.get(f.student)
            if entry is not None and entry["submission"] == _sha256(data):
                kept.append(_result_from(entry["result"]))
            else:
                todo.append((f, data))
        if template is None and (todo or early):
            template = build_template(source, assignment, scratch)
        guard = _Guard(source / assignment, gradebook, template)
        deny = tuple(str(p) for p in (source, gradebook, Path(f"{gradebook}-journal"), course / "autograded",
                                      course / "feedback", submissions, journal.path,
                                      course / f"{assignment}_scores.csv", REPO / "solutions", REPO / ".git",
                                      REPO / "gradebook.db"))
        jobs = []
        for f, data in todo:
            renamed = (["renamed"], [f"the notebook was renamed to {f.renamed_from}; graded as {assignment}.ipynb"]) \
                if f.renamed_from else ([], [])
            jobs.append(GradingJob(f.student, assignment, f.path.name, data, template, timeout,
                                   cell_timeout, max_output_chars, restore_missing, deny, f.timestamp,
                                   str(scratch), tuple(renamed[1]), tuple(renamed[0])))
        digests = {job.student: _sha256(job.data) for job in jobs}
        if client is not None:
            arriving = _dask.results(jobs, client, progress, retries)
        else:
            arriving = _local_results(jobs, executor, workers, progress)
        stack.callback(arriving.close)  # cancels what is still queued, also on an interrupt
        results, saved_now = list(kept), 0
        try:
            for r in chain(early, arriving):
                if not r.max_score:
                    r.max_score = _max_score(template, assignment)
                results.append(r)
                if "unit_crashed" in r.flags:  # no verdict on the submission: nothing to save, rerun grades it
                    continue
                if r.status != "graded" and r.feedback_html is None:
                    r.feedback_html = _feedback.verdict_page(r.student, assignment, r.status, r.score, r.max_score,
                                                             r.notes)
                report.warnings += guard.check(f"before saving {r.student}")
                _write_files(course, r)
                _merge(gradebook, template, r)
                guard.saved()
                if r.student in digests:
                    journal.append({"student": r.student, "submission": digests[r.student], "settings": settings,
                                    "result": result_dict(r)})
                    saved_now += 1
        except KeyboardInterrupt:
            raise GradingInterrupted(saved_now, len(jobs), journal.path) from None
        report.warnings += guard.check("at the end")
        report.results = sorted(results, key=lambda r: r.student)
        report.reused = sorted(r.student for r in kept)
        report.csv_path = _write_csv(course / f"{assignment}_scores.csv", report.results)
    report.seconds = time.monotonic() - start
    return report


class GradingInterrupted(KeyboardInterrupt):
    """A class batch stopped by an interrupt; every verdict that arrived before it is saved."""

    def __init__(self, saved: int, total: int, journal: Path):
        self.saved, self.total, self.journal = saved, total, journal
        super().__init__(f"interrupted: {saved} of {total} submission(s) graded in this run were saved (gradebook, "
                         f"files and {journal.name}); run the same command again to grade the rest")


def _max_score(template: bytes, assignment: str) -> float:
    with zipfile.ZipFile(io.BytesIO(template)) as zf:
        nb = nbformat.reads(zf.read(f"release/{assignment}/{assignment}.ipynb").decode(), as_version=4)
    return sum(nbt.points(c) for c in nb.cells if nbt.is_grade(c))


def crashed(job: GradingJob, why: str) -> SubmissionResult:
    """The result for a unit that produced no verdict (it raised, or its workers died): flagged
    ``unit_crashed``, so it is reported but not saved, and a rerun grades it."""
    return SubmissionResult(job.student, job.assignment, "failed", flags=[*job.flags, "unit_crashed"],
                            notes=[*job.notes, f"not graded: {why}; nothing was recorded, rerun to grade it"],
                            timestamp=job.timestamp)


def _local_results(jobs: list[GradingJob], executor: cf.Executor | None, workers: int, progress: bool):
    """Yield each job's result as it completes on ``executor`` (default: ``workers`` threads, each driving one
    grading child process); closing the generator cancels the jobs not started yet."""
    from tqdm.auto import tqdm

    own = executor is None
    pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grading") if own else executor
    futures = {}
    try:
        futures = {pool.submit(grade_submission, job): job for job in jobs}
        with tqdm(total=len(jobs), desc="grading", unit="notebook", disable=not progress) as bar:
            for future in cf.as_completed(futures):
                job = futures[future]
                try:
                    result = future.result()
                except Exception as exc:  # a unit that died in another process: reported, not saved
                    result = crashed(job, f"the grading unit raised {type(exc).__name__}: {exc}")
                bar.update(1)
                yield result
    finally:
        for future in futures:
            future.cancel()
        if own:
            pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------------------- the journal
JOURNAL_SUFFIX = "_graded.jsonl"


class _Journal:
    """An append-only record of the verdicts saved in the gradebook, one JSON line each, written after the
    gradebook commit (so a line always means a saved verdict; a line torn by a kill is ignored)."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict[str, dict]:
        entries: dict[str, dict] = {}
        if not self.path.is_file():
            return entries
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:  # the end of a line whose write was interrupted
                continue
            if isinstance(entry, dict) and isinstance(entry.get("student"), str) and isinstance(entry.get("result"), dict):
                entries[entry["student"]] = entry  # the last line of a student wins
        return entries

    def append(self, entry: dict) -> None:
        line = json.dumps(entry, default=str).encode() + b"\n"
        with open(self.path, "ab") as fh:
            if fh.tell() and self._last_byte() != b"\n":
                line = b"\n" + line  # after a torn line: start a fresh one
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def _last_byte(self) -> bytes:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _settings_digest(source: Path, *settings) -> str:
    """What a verdict depends on besides the notebook: the source folder's files and the grading settings."""
    h = hashlib.sha256(json.dumps([str(s) for s in settings]).encode())
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        h.update(path.relative_to(source).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _still_valid(entries: dict[str, dict], settings: str, gradebook: Path, course: Path,
                 assignment: str) -> dict[str, dict]:
    """The journal entries whose verdict is still in the gradebook and on disk, for the same source/settings."""
    entries = {s: e for s, e in entries.items() if e.get("settings") == settings
               and (course / "feedback" / s / assignment / f"{assignment}.html").is_file()}
    if not entries or not gradebook.is_file():
        return {}
    from nbgrader.api import Gradebook, MissingEntry

    with _venv_on_path(), warnings.catch_warnings(), Gradebook(f"sqlite:///{gradebook}") as gb:
        warnings.simplefilter("ignore")
        try:
            recorded = {sub.student.id for sub in gb.assignment_submissions(assignment)}
        except MissingEntry:
            return {}
    return {s: e for s, e in entries.items() if s in recorded}


def _result_from(d: dict) -> SubmissionResult:
    names = {f.name for f in fields(SubmissionResult)}
    kwargs = {k: v for k, v in d.items() if k in names}
    kwargs["cells"] = [CellResult(**c) for c in d.get("cells", [])]
    return SubmissionResult(**kwargs)


def _write_files(course: Path, r: SubmissionResult) -> None:
    if r.autograded is not None:
        path = course / "autograded" / r.student / r.assignment / f"{r.assignment}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(r.autograded)
    if r.feedback_html is not None:
        path = course / "feedback" / r.student / r.assignment / f"{r.assignment}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(r.feedback_html)


def _write_csv(path: Path, results: list[SubmissionResult]) -> Path:
    cells = list(dict.fromkeys(c.grade_id for r in results for c in r.cells))
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "status", "score", "max_score", *cells, "clean", "flags", "reason"])
        for r in results:
            by_id = {c.grade_id: c.points for c in r.cells}
            writer.writerow([r.student, r.status, f"{r.score:g}", f"{r.max_score:g}",
                             *[f"{by_id[c]:g}" if c in by_id else "" for c in cells],
                             "yes" if r.clean else "no", " ".join(r.flags), r.reason])
    return path


@contextmanager
def _venv_on_path():
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), old])
    try:
        yield
    finally:
        os.environ["PATH"] = old


def _merge(gradebook: Path, template: bytes, r: SubmissionResult) -> None:
    """Record ``r`` in the course gradebook; a submission graded by hand later keeps nbgrader's semantics:
    a submission that could not be graded scores 0 and is marked as needing manual grading."""
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.utils import parse_utc

    if not gradebook.exists():
        with zipfile.ZipFile(io.BytesIO(template)) as zf:
            gradebook.parent.mkdir(parents=True, exist_ok=True)
            gradebook.write_bytes(zf.read("gradebook.db"))
    with _venv_on_path(), warnings.catch_warnings(), Gradebook(f"sqlite:///{gradebook}") as gb:
        warnings.simplefilter("ignore")  # SQLAlchemy's autoflush warnings from nbgrader's own API
        try:
            gb.find_assignment(r.assignment)
        except MissingEntry:
            _copy_assignment(template, r.assignment, gb)
        gb.update_or_create_student(r.student)
        kwargs = {"timestamp": parse_utc(r.timestamp)} if r.timestamp else {}
        submission = gb.update_or_create_submission(r.assignment, r.student, **kwargs)
        scores = {(g["notebook"], g["cell"]): g for g in r.grades}
        comments = {(c["notebook"], c["cell"]): c for c in r.comments}
        for snb in submission.notebooks:
            for grade in snb.grades:
                g = scores.get((snb.name, grade.name))
                grade.auto_score = g["auto_score"] if g else 0.0
                grade.needs_manual_grade = g["needs_manual_grade"] if g else True
            for comment in snb.comments:
                c = comments.get((snb.name, comment.name))
                comment.auto_comment = c["auto_comment"] if c else f"Not graded automatically: {r.reason}"
        gb.db.commit()


def _copy_assignment(template: bytes, assignment: str, gb) -> None:
    from nbgrader.api import Gradebook

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gradebook.db"
        with zipfile.ZipFile(io.BytesIO(template)) as zf:
            path.write_bytes(zf.read("gradebook.db"))
        with Gradebook(f"sqlite:///{path}") as src:
            a = src.find_assignment(assignment)
            gb.update_or_create_assignment(assignment, duedate=a.duedate)
            for nb in a.notebooks:
                gb.update_or_create_notebook(nb.name, assignment)
                for c in nb.grade_cells:
                    gb.update_or_create_grade_cell(c.name, nb.name, assignment, max_score=c.max_score,
                                                   cell_type=c.cell_type)
                for c in nb.solution_cells:
                    gb.update_or_create_solution_cell(c.name, nb.name, assignment)
                for c in nb.task_cells:
                    gb.update_or_create_task_cell(c.name, nb.name, assignment, max_score=c.max_score,
                                                  cell_type=c.cell_type)
                for c in nb.source_cells:
                    gb.update_or_create_source_cell(c.name, nb.name, assignment, cell_type=c.cell_type,
                                                    locked=c.locked, source=c.source, checksum=c.checksum)


class _Guard:
    """Notices (and undoes) changes to the course's source folder or gradebook that the grader did not make."""

    def __init__(self, source: Path, gradebook: Path, template: bytes):
        self.source, self.gradebook = source, gradebook
        self.files = {p: p.read_bytes() for p in sorted(source.rglob("*")) if p.is_file()}
        self.backup = gradebook.read_bytes() if gradebook.is_file() else None
        self.digest = self._digest()

    def _digest(self) -> str | None:
        return hashlib.sha256(self.gradebook.read_bytes()).hexdigest() if self.gradebook.is_file() else None

    def saved(self) -> None:
        self.backup = self.gradebook.read_bytes() if self.gradebook.is_file() else None
        self.digest = self._digest()

    def check(self, when: str) -> list[str]:
        warnings = []
        for path, data in self.files.items():
            if not path.is_file() or path.read_bytes() != data:
                path.write_bytes(data)
                warnings.append(f"{path} changed during grading ({when}); restored")
        if self._digest() != self.digest:
            if self.backup is None:
                self.gradebook.unlink(missing_ok=True)
            else:
                self.gradebook.write_bytes(self.backup)
            warnings.append(f"{self.gradebook} changed outside the grader ({when}); restored from its backup")
        return warnings


def result_dict(r: SubmissionResult) -> dict:
    """A JSON-friendly view of a result (without the large feedback and notebook texts)."""
    d = asdict(r)
    for key in ("feedback_html", "autograded", "grades", "comments"):
        d.pop(key)
    d["clean"] = r.clean
    return d
