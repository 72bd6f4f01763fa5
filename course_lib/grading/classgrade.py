"""Class-scale autograding on top of nbgrader: one process, one gradebook and one time limit per submission.

:func:`grade_class` turns every submission into a self-contained :class:`GradingJob` (the submitted bytes and
a zipped scratch course: source, release, gradebook) and hands it to :func:`grade_submission` on a local
pool of threads (each driving one grading process), on any ``concurrent.futures.Executor``, or on a
``dask.distributed`` cluster (``scheduler=``, one task per submission, see :mod:`course_lib.grading._dask`).
Each unit unpacks its own course folder, checks the notebook, runs ``nbgrader autograde`` in a child process
with a hard time limit, its kernel jailed by bubblewrap (:mod:`course_lib.grading._bwrap`), renders feedback
without hidden tests, and returns a :class:`SubmissionResult`. The caller saves each result as it arrives:
``autograded/`` and ``feedback/`` in nbgrader's layout, the course's gradebook, and one line in the
assignment's journal (``<assignment>_graded.jsonl``), so an interrupted batch resumes where it stopped; at
the end it writes a scores CSV and a summary of every submission that did not grade cleanly.

This module collects the submissions and runs the batch; the parts live in modules of their own, and their
names are importable from here too: the jobs and verdicts (:mod:`._results`), one grading unit
(:mod:`._unit`), its child processes (:mod:`._processes`), the journal (:mod:`._journal`) and the files and
gradebook a verdict is saved in (:mod:`._gradebook`).
"""

from __future__ import annotations

import concurrent.futures as cf
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import nbformat

from .._checks.scalars import check_bool, check_int, check_seconds
from . import _bwrap, _feedback
from . import _notebook as nbt
from ._bwrap import Limits
from ._gradebook import Guard, merge, write_csv, write_files
from ._journal import JOURNAL_SUFFIX, Journal, settings_digest, sha256, still_valid
from ._processes import UNIT_ENV, child_env
from ._results import (
    INFO,
    UNCLEAN,
    ClassReport,
    GradingJob,
    SubmissionResult,
    crashed,
    result_dict,
    result_from,
)
from ._unit import grade_submission

__all__ = ["UNCLEAN", "INFO", "UNIT_ENV", "JOURNAL_SUFFIX", "Limits", "GradingJob", "SubmissionResult", "ClassReport",
           "GradingInterrupted", "find_submissions", "build_template", "grade_submission", "grade_class", "crashed",
           "result_dict"]

# the names the tests have always imported from here
_Guard, _Journal, _merge = Guard, Journal, merge

REPO = Path(__file__).resolve().parents[2]


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

def build_template(source: Path, assignment: str, scratch: Path, timeout: float = 300) -> bytes:
    """Generate ``assignment`` from ``source`` in a scratch course; return it zipped (source, release, gradebook)."""
    source, dest = Path(source).resolve(), Path(scratch).resolve() / "template"
    dest.mkdir(parents=True)
    cmd = [sys.executable, "-m", "course_lib.grading._autograde", "template", str(source), assignment, str(dest)]
    done = subprocess.run(cmd, env=child_env({}), cwd=dest, capture_output=True, text=True, timeout=timeout)
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
                progress: bool = False, scratch: str | os.PathLike | None = None,
                template: bytes | None = None, regrade: bool = False, connect_timeout: float = 10,
                retries: int = 1, sandbox: bool = True, limits: Limits | None = None) -> ClassReport:
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
        sandbox: run every kernel inside bubblewrap (see :mod:`course_lib.grading._bwrap`): no network, only its
            own submission and the release visible, a read-only system. ``False`` grades behind the audit-hook
            tripwire alone (for notebooks you trust), and the summary says so.
        limits: what one kernel may use (:class:`~course_lib.grading._bwrap.Limits`: CPU time, memory, processes,
            disk, output per cell); default ``Limits()`` with :func:`default_cpu_seconds` of CPU time.

    Returns:
        A :class:`ClassReport`; ``report.summary()`` lists every submission that did not grade cleanly.

    Raises:
        ConnectionError: the dask scheduler cannot be reached (nothing is written), or was lost mid-batch
            (what was saved stays saved).
        GradingInterrupted: a ``KeyboardInterrupt`` during the batch; it says how many verdicts were saved.
        RuntimeError: ``sandbox`` is on and bubblewrap is missing here (or on a dask worker); the message says
            how to install it. Nothing is written.

    Example:
        >>> report = grade_class("submitted", "02_batch_normalization", workers=4)  # doctest: +SKIP
        >>> print(report.summary())  # doctest: +SKIP
        Graded 120 submission(s) of 02_batch_normalization in 171.3 s with 4 worker(s) (1.4 s per notebook).
        >>> report = grade_class("submitted", "02_batch_normalization", scheduler="tcp://10.0.0.5:8786")  # doctest: +SKIP
    """
    start = time.monotonic()
    if not isinstance(assignment, str):
        raise TypeError(f"assignment must be a folder name such as '02_batch_normalization', got "
                        f"{type(assignment).__name__} {assignment!r}")
    if not assignment or "/" in assignment:
        raise ValueError(f"assignment must be a folder name such as '02_batch_normalization', got {assignment!r}")
    if executor is None or scheduler == "local":
        check_int(workers, "workers", minimum=1)
    if executor is not None and scheduler is not None:
        raise ValueError("give executor or scheduler, not both")
    for value, label in ((timeout, "timeout"), (cell_timeout, "cell_timeout"), (connect_timeout, "connect_timeout")):
        check_seconds(value, label)
    check_int(max_output_chars, "max_output_chars", minimum=1)
    check_int(retries, "retries", minimum=0)
    for value, label in ((regrade, "regrade"), (restore_missing, "restore_missing"), (progress, "progress")):
        check_bool(value, label)
    check_bool(sandbox, "sandbox")
    if limits is None:
        limits = Limits(cpu_seconds=default_cpu_seconds(timeout))
    elif not isinstance(limits, Limits):
        raise TypeError(f"limits must be a course_lib.grading.Limits, got {type(limits).__name__}")
    if template is not None and not isinstance(template, bytes):
        raise TypeError(f"template must be the bytes returned by build_template, got {type(template).__name__}")
    if scheduler is not None:
        from . import _dask

        _dask.check_scheduler(scheduler)
    elif sandbox and (why := _bwrap.available()) is not None:
        raise RuntimeError(why)
    course = Path(course).resolve() if course is not None else Path.cwd()
    if source is None:
        source = course / "solutions" if (course / "solutions").is_dir() else course / "source"
    source = Path(source).resolve()
    if not (source / assignment / f"{assignment}.ipynb").is_file():
        raise FileNotFoundError(f"source notebook {source / assignment / (assignment + '.ipynb')} does not exist")
    gradebook = Path(gradebook).resolve() if gradebook is not None else course / "gradebook.db"
    submissions = Path(submissions).resolve()
    found = find_submissions(submissions, assignment)
    report = ClassReport(assignment, [], 0.0, workers if executor is None and scheduler is None else None,
                         sandboxed=sandbox)
    with ExitStack() as stack:
        client = None
        if scheduler is not None:  # first, so that an unreachable scheduler fails before anything is written
            client, report.where = stack.enter_context(_dask.connect(scheduler, workers, connect_timeout))
            report.warnings += _dask.probe(client, sandbox=sandbox)
        own_scratch = scratch is None
        scratch = Path(tempfile.mkdtemp(prefix="course-grading-")) if own_scratch else Path(scratch)
        scratch.mkdir(parents=True, exist_ok=True)
        if own_scratch:
            stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        journal = Journal(course / f"{assignment}{JOURNAL_SUFFIX}")
        settings = settings_digest(source / assignment, float(timeout), float(cell_timeout), int(max_output_chars),
                                    bool(restore_missing), bool(sandbox), sorted(limits.as_dict().items()))
        saved = {} if regrade else still_valid(journal.load(), settings, gradebook, course, assignment)
        todo, early, kept = [], [], []
        for f in found:
            if f.path is None:
                early.append(SubmissionResult(f.student, assignment, "ungradable", flags=["no_notebook"],
                                              notes=[f"not graded: {f.problem}"], timestamp=f.timestamp))
                continue
            data = f.path.read_bytes()
            entry = saved.get(f.student)
            if entry is not None and entry["submission"] == sha256(data):
                kept.append(result_from(entry["result"]))
            else:
                todo.append((f, data))
        if template is None and (todo or early):
            template = build_template(source, assignment, scratch)
        guard = Guard(source / assignment, gradebook, template)
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
                                   str(scratch), tuple(renamed[1]), tuple(renamed[0]), sandbox, limits.as_dict()))
        digests = {job.student: sha256(job.data) for job in jobs}
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
                write_files(course, r)
                merge(gradebook, template, r)
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
        report.csv_path = write_csv(course / f"{assignment}_scores.csv", report.results)
    report.seconds = time.monotonic() - start
    return report


def default_cpu_seconds(timeout: float) -> int:
    """CPU time a kernel may use by default: the submission's wall time on every core of this machine (torch
    runs one thread per core, so a correct notebook may use cores x seconds), and at least 1800 s. The limit
    is there to stop what the wall-time limit stops late, never to fail a correct notebook."""
    return max(1800, int(timeout) * (os.cpu_count() or 1))


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
