"""Grading one submission: :func:`grade_submission` unpacks a private scratch course, checks the notebook
against the release, runs ``nbgrader autograde`` in a child process behind the sandbox tripwire, and turns what
it wrote into a :class:`~._results.SubmissionResult` with feedback that holds no hidden test."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import nbformat

from . import _feedback, _sandbox
from . import _notebook as nbt
from ._processes import UNIT_ENV, child_env, kill_leftovers, run_child
from ._results import GradingJob, SubmissionResult, safe_name
from .selfcheck import CellResult

__all__ = ["grade_submission"]


def grade_submission(job: GradingJob) -> SubmissionResult:
    """Grade one submission in a private scratch course; never raises (a failure is a result).

    Example:
        >>> result = grade_submission(job)  # a kernel and nbgrader: seconds  # doctest: +SKIP
        >>> result.status, result.score, result.max_score  # doctest: +SKIP
        ('graded', 6.0, 6.0)
    """
    start = time.monotonic()
    result = SubmissionResult(job.student, job.assignment, "failed", flags=list(job.flags), notes=list(job.notes),
                              timestamp=job.timestamp)
    unit = Path(tempfile.mkdtemp(prefix=f"unit-{safe_name(job.student)}-", dir=_scratch_root(job.scratch)))
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
        result.add_flag(exc.kind, f"not graded: {exc}")
        return
    _compare(nb, release, job, result)
    folder = unit / "submitted" / job.student / name
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{name}.ipynb")
    if job.timestamp:
        (folder / "timestamp.txt").write_text(job.timestamp)
    workdir = unit / "autograded" / job.student / name
    ipc = Path(tempfile.mkdtemp(prefix="cgk-", dir="/tmp" if os.access("/tmp", os.W_OK) else None))
    try:
        finished = _run(job, unit, workdir, ipc)
        log_text = _read_capped(ipc / "tripwire.log") if job.sandbox else _read_capped(unit / "tripwire.log")
    finally:
        shutil.rmtree(ipc, ignore_errors=True)
        kill_leftovers(unit.name)
    _violations(log_text, result)
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
        result.add_flag("unanswered", "no answer cell was changed from the released version")
    if cmp.missing_grade:
        result.flags.append("missing_grade_cells")
        if job.restore_missing:
            nbt.restore_missing(nb, release, cmp.missing_grade)
            result.notes.append(f"graded cell(s) {', '.join(cmp.missing_grade)} were deleted; restored from the "
                                f"release and graded")
        else:
            result.notes.append(f"graded cell(s) {', '.join(cmp.missing_grade)} were deleted and score 0")
    for cells, flag, note in (
        (cmp.missing_solution, "missing_answer_cells", "answer cell(s) {} were deleted or lost their metadata"),
        (cmp.edited_locked, "edited_tests", "locked cell(s) {} were edited; the original tests were run"),
        (cmp.unknown, "unknown_cells", "cell(s) with unknown grade ids {} were not graded"),
        (cmp.duplicated, "duplicate_cells", "grade id(s) {} appear more than once"),
    ):
        if cells:
            result.add_flag(flag, note.format(", ".join(cells)))


def _read_capped(path: Path, limit: int = 200_000) -> str:
    """The text of a file a kernel could write to, read without following a link it planted, at most ``limit``
    bytes (it could have made it huge)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, limit).decode("utf-8", errors="replace")
    finally:
        os.close(fd)


def _run(job: GradingJob, unit: Path, workdir: Path, ipc: Path) -> bool:
    """Run nbgrader on the unit in a child process; its kernel in the jail (or behind the tripwire alone)."""
    from . import _bwrap

    limits = _bwrap.Limits(**(job.limits or {}))
    hidden = sorted({str(unit.parent), str(unit), *job.deny})
    fonts = _font_caches()
    if job.sandbox:
        hook = _sandbox.config([str(workdir), str(ipc)], hidden, str(ipc / "tripwire.log"), mode="report")
        env = {"MPLCONFIGDIR": "/tmp/matplotlib", "IPYTHONDIR": "/tmp/ipython"}
        kernel = {"jail": True, "uid": _bwrap.unit_uid(unit.name), "env": env,
                  "extra_ro": [(str(f), f"/tmp/matplotlib/{f.name}") for f in fonts]}
    else:
        private = unit / "tmp"
        (private / "mpl").mkdir(parents=True)
        for f in fonts:
            shutil.copy(f, private / "mpl" / f.name)
        hook = _sandbox.config([str(workdir), str(private), str(unit / "ipython")], hidden, str(unit / "tripwire.log"))
        limits = dataclasses.replace(limits, processes=None)  # counted per user outside a jail: not the unit's own
        kernel = {"jail": False}
    kernel.update({"ipc_dir": str(ipc), "limits": limits.as_dict(), "hidden": hidden,
                   "hook": {"module": str(Path(_sandbox.__file__).resolve()), "settings": hook}})
    (unit / "unit.json").write_text(json.dumps({"assignment": job.assignment, "student": job.student,
                                                "cell_timeout": job.cell_timeout,
                                                "max_output_chars": job.max_output_chars, "kernel": kernel}))
    extra = {UNIT_ENV: unit.name, "PYTHONDONTWRITEBYTECODE": "1"}
    if not job.sandbox:
        extra.update({"TMPDIR": str(unit / "tmp"), "MPLCONFIGDIR": str(unit / "tmp" / "mpl"),
                      "IPYTHONDIR": str(unit / "ipython")})
    return run_child([sys.executable, "-m", "course_lib.grading._autograde", "unit", str(unit)], child_env(extra),
                     unit, job.timeout)


_FONTS: list[Path] | None = None
_FONTS_LOCK = threading.Lock()


def _font_caches() -> list[Path]:
    """matplotlib's font list, built once on this machine outside any kernel (building it runs ``fc-list``,
    seconds per kernel); each kernel gets a copy, so it never builds one."""
    global _FONTS
    with _FONTS_LOCK:
        if _FONTS is None:
            _FONTS = []
            try:
                import matplotlib

                cache = Path(matplotlib.get_cachedir())
                if not list(cache.glob("fontlist-v*.json")):
                    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], timeout=300,
                                   capture_output=True, env=child_env({}))
                _FONTS = sorted(cache.glob("fontlist-v*.json"))
            except (ImportError, OSError, subprocess.SubprocessError):
                _FONTS = []
        return list(_FONTS)


def _violations(log_text: str, result: SubmissionResult) -> None:
    blocked = []
    for line in log_text.splitlines():
        try:
            blocked.append(json.loads(line)["blocked"])
        except (ValueError, KeyError, TypeError):
            blocked.append(line[:200])
    if blocked:
        shown = "; ".join(dict.fromkeys(blocked))
        result.add_flag("sandbox_violation",
                        f"blocked {len(blocked)} attempt(s) to reach outside the submission: {shown[:600]}")


def _limits(job: GradingJob):
    from ._bwrap import Limits

    return Limits(**(job.limits or {}))


def _limit_flags(out: dict, job: GradingJob, result: SubmissionResult) -> None:
    """Name the limits a submission ran into, from the kernel's exit status and its cells' errors."""
    limits = _limits(job)
    if 128 + signal.SIGXCPU in [c for c in out.get("kernel_exits", []) if c is not None]:
        result.add_flag("cpu_limit", f"the kernel used more than its {limits.cpu_seconds} s of CPU time and was "
                                     f"stopped")
    if out.get("output_capped"):
        cells = ", ".join(f"cell {i + 1}" for i in out["output_capped"])
        result.add_flag("output_limit", f"{cells} printed more than {limits.cell_output_chars:,} characters while "
                                        f"running and {'was' if len(out['output_capped']) == 1 else 'were'} stopped")
    errors = " | ".join(out.get("errors", []))
    for flag, words, what in (
        ("memory_limit", ("MemoryError",), f"the {(limits.memory_bytes or 0) >> 20} MiB memory limit"),
        ("process_limit", ("BlockingIOError", "Resource temporarily unavailable"),
         f"the limit of {limits.processes} processes"),
        ("disk_limit", ("No space left on device", "File too large"),
         f"the {(limits.disk_bytes or 0) >> 20} MiB disk limit"),
    ):
        if any(w in errors for w in words):
            result.add_flag(flag, f"a cell ran into {what}")


def _failure(out: dict, job: GradingJob, result: SubmissionResult) -> None:
    text = f"{out.get('error', '')}\n{out.get('log', '')}"
    result.log_tail = text[-4000:]
    _limit_flags(out, job, result)
    if "Kernel died before replying to kernel_info" in text or "bubblewrap is not installed" in text:
        # no student code had run yet: the grading machine could not start a kernel (bubblewrap broken, a
        # missing kernel). No verdict on the notebook: reported, not saved, graded again by the next run.
        result.status = "failed"
        result.add_flag("unit_crashed", "not graded: the kernel could not start on this machine (before any of "
                                        "the notebook ran); nothing was recorded, rerun to grade it")
    elif "cpu_limit" in result.flags:
        result.status = "kernel_died"
        result.notes.append("not graded automatically")
    elif "DeadKernelError" in text or "Kernel died" in text:
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
        result.add_flag("cell_timeout", f"cell(s) {', '.join(out['timeouts'])} ran past the {job.cell_timeout:g} s "
                                        f"limit and were interrupted")
    if out.get("errors"):
        result.add_flag("cell_errors", "errors: " + " | ".join(out["errors"][:4]))
    _limit_flags(out, job, result)
    if out.get("truncated"):
        result.add_flag("output_truncated", f"outputs of {out['truncated']} cell(s) were too large (over "
                                            f"{job.max_output_chars:,} characters or nbgrader's line limit) and were cut")
    if out.get("redacted"):
        result.add_flag("hidden_leak_redacted",
                        f"{out['redacted']} output(s) quoted hidden tests and were removed from the feedback")
    instructor = unit / "instructor.ipynb"
    result.autograded = instructor.read_text() if instructor.is_file() else None
    page = unit / "feedback" / job.student / name / f"{name}.html"
    if out.get("feedback") and page.is_file():
        source = nbformat.read(unit / "source" / name / f"{name}.ipynb", as_version=4)
        release = nbformat.read(unit / "release" / name / f"{name}.ipynb", as_version=4)
        text = page.read_text()
        if _feedback.leaks(_feedback.html_text(text), _feedback.secret_lines(source, release),
                           _feedback.public_lines(release)):
            result.add_flag("hidden_leak_redacted",
                            "the rendered feedback quoted hidden tests and was replaced by a summary")
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
        notes.append("your notebook tried to reach files outside its own folder (the course's or other students'); "
                     "they were not there for it, and the attempt was reported to your instructor")
    return notes
