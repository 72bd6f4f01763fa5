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

How a class is graded is one frozen :class:`GradingSettings` (paths, workers or cluster, limits), checked when
it is made. This module collects the submissions and runs the batch, phase by phase (:func:`_prepare`,
:func:`_schedule`, :func:`_collect`, :func:`_save`, :func:`_finish`); the parts live in modules of their own, and their
names are importable from here too: the jobs and verdicts (:mod:`._results`), one grading unit
(:mod:`._unit`), its child processes (:mod:`._processes`), the journal (:mod:`._journal`) and the files and
gradebook a verdict is saved in (:mod:`._gradebook`).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
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

from .._checks.scalars import check_bool, check_int, check_seconds, describe
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

__all__ = ["UNCLEAN", "INFO", "UNIT_ENV", "JOURNAL_SUFFIX", "Limits", "GradingJob", "GradingSettings", "SubmissionResult",
           "ClassReport",
           "GradingInterrupted", "find_submissions", "build_template", "grade_submission", "grade_class", "crashed",
           "result_dict"]

# the names the tests have always imported from here
_Guard, _Journal, _merge = Guard, Journal, merge

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


def _resolved(path, default: Path) -> Path:
    return Path(path).resolve() if path is not None else default


@dataclass(frozen=True)
class GradingSettings:
    """How :func:`grade_class` grades a class: where the course's files are, where the units run, and what one
    submission may take. Every field is checked when the settings are made (a ``TypeError`` or ``ValueError``
    that names the field); the settings that change a verdict (``timeout``, ``cell_timeout``,
    ``max_output_chars``, ``restore_missing``, ``sandbox``, ``limits``) are stored with every saved verdict, so
    a later run with other values grades again.

    Attributes:
        course: where ``autograded/``, ``feedback/``, ``<assignment>_scores.csv`` and the journal go (default:
            the current folder when grading starts). Its ``solutions/``, ``source/``, ``.git`` and gradebook are
            hidden from every kernel.
        source: the folder holding ``<assignment>/<assignment>.ipynb`` with solutions and hidden tests (default:
            ``course/solutions`` if it exists, else ``course/source``).
        gradebook: the course's gradebook file that results are merged into (default: ``course/gradebook.db``).
        workers: how many submissions are graded at once by the default executor (threads, each driving
            one grading process), or the number of worker processes of ``scheduler="local"``.
        scheduler: grade on a ``dask.distributed`` cluster, one task per submission: a scheduler address
            (``"tcp://host:8786"``), a ``distributed.Client`` (not closed here), or ``"local"`` for a
            ``LocalCluster`` of ``workers`` processes started and stopped here. ``None``: this machine.
        connect_timeout: seconds to reach the dask scheduler and to find a worker there.
        retries: on dask, how many times a task that raised is run again (a task whose worker died is
            rescheduled by dask itself, up to ``distributed.scheduler.allowed-failures`` times).
        timeout: seconds for one submission, all included; past it the unit and its kernel are killed.
        cell_timeout: seconds for one cell (nbgrader interrupts the kernel past it).
        max_output_chars: outputs longer than this are cut in the stored notebook and the feedback.
        restore_missing: grade a deleted graded cell from the release (else it scores 0, and is reported).
        sandbox: run every kernel inside bubblewrap (see :mod:`course_lib.grading._bwrap`): no network, only its
            own submission and the release visible, a read-only system. ``False`` grades behind the audit-hook
            tripwire alone (for notebooks you trust), and the summary says so.
        limits: what one kernel may use (:class:`~course_lib.grading._bwrap.Limits`); ``None``: ``Limits()`` with
            :func:`default_cpu_seconds` of CPU time (see :attr:`kernel_limits`).
        regrade: grade every submission again, even those whose saved verdict is still valid.
        progress: show a tqdm progress bar.
        scratch: where the units' scratch folders go (default: a new temporary folder, removed at the end).

    Example:
        >>> GradingSettings(workers=4, cell_timeout=60).kernel_limits.cpu_seconds >= 1800
        True
        >>> GradingSettings(workers=0)
        Traceback (most recent call last):
        ...
        ValueError: workers must be >= 1, got 0
    """

    course: str | os.PathLike | None = None
    source: str | os.PathLike | None = None
    gradebook: str | os.PathLike | None = None
    workers: int = 1
    scheduler: object = None
    connect_timeout: float = 10
    retries: int = 1
    timeout: float = 900
    cell_timeout: float = 180
    max_output_chars: int = 20_000
    restore_missing: bool = True
    sandbox: bool = True
    limits: Limits | None = None
    regrade: bool = False
    progress: bool = False
    scratch: str | os.PathLike | None = None

    def __post_init__(self) -> None:
        for name in ("course", "source", "gradebook", "scratch"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise TypeError(f"{name} must be a path (str or os.PathLike) or None, got {describe(value)}")
        check_int(self.workers, "workers", minimum=1)
        check_int(self.retries, "retries", minimum=0)
        check_int(self.max_output_chars, "max_output_chars", minimum=1)
        for name in ("timeout", "cell_timeout", "connect_timeout"):
            check_seconds(getattr(self, name), name)
        for name in ("restore_missing", "sandbox", "regrade", "progress"):
            check_bool(getattr(self, name), name)
        if self.limits is not None and not isinstance(self.limits, Limits):
            raise TypeError(f"limits must be a course_lib.grading.Limits, got {type(self.limits).__name__}")
        if self.scheduler is not None:
            from . import _dask

            _dask.check_scheduler(self.scheduler)

    @property
    def kernel_limits(self) -> Limits:
        """:attr:`limits`, or the defaults with :func:`default_cpu_seconds` of CPU time for :attr:`timeout`."""
        return self.limits if self.limits is not None else Limits(cpu_seconds=default_cpu_seconds(self.timeout))

    def verdict_digest(self, source: Path) -> str:
        """What a saved verdict was graded under: the source folder's files and every setting that changes it."""
        return settings_digest(source, float(self.timeout), float(self.cell_timeout), int(self.max_output_chars),
                               bool(self.restore_missing), bool(self.sandbox),
                               sorted(self.kernel_limits.as_dict().items()))


@dataclass
class _Batch:
    """One run of :func:`grade_class` once prepared: the resolved paths and the submissions found."""

    assignment: str
    settings: GradingSettings
    submissions: Path
    course: Path
    source: Path
    gradebook: Path
    found: list[_Found]
    journal: Journal

    def protected(self) -> tuple[str, ...]:
        """Paths no kernel may reach: the course's solutions, gradebook, graded work and history, and every
        submission; all taken from the course folder and the settings (never from where course_lib lives)."""
        course, gb = self.course, self.gradebook
        return tuple(str(p) for p in (
            self.source, gb, Path(f"{gb}-journal"), course / "autograded", course / "feedback", self.submissions,
            self.journal.path, course / f"{self.assignment}_scores.csv", course / "solutions", course / "source",
            course / ".git", course / "gradebook.db"))


def grade_class(submissions: str | os.PathLike, assignment: str, settings: GradingSettings | None = None, *,
                executor: cf.Executor | None = None, template: bytes | None = None, **fields) -> ClassReport:
    """Autograde every submission of ``assignment``, each in its own process, and merge the results.

    Each verdict is saved as soon as it arrives (files, gradebook, then one line in the journal
    ``course/<assignment>_graded.jsonl``), so a batch that is interrupted loses nothing: a second run keeps the
    saved verdicts of submissions whose notebook, source and settings are unchanged and grades the rest.

    The run reads as its phases: :func:`_prepare` (check, resolve the paths, find the submissions, make sure
    bubblewrap or the cluster is there), :func:`_schedule` (keep the verdicts still valid, turn the rest into
    :class:`GradingJob` s), :func:`_collect` (run them on the local pool, an executor or dask, yielding each
    verdict as it arrives), :func:`_save` (files, gradebook, journal: one verdict at a time) and
    :func:`_finish` (the scores CSV and the report).

    Args:
        submissions: nbgrader's ``submitted/`` folder (``<student>/<assignment>/*.ipynb``), the course folder
            holding it, or a flat folder of ``<student>.ipynb`` files.
        assignment: the assignment's name (the folder and notebook name in ``source``).
        settings: a :class:`GradingSettings` (default: ``GradingSettings()``).
        executor: any ``concurrent.futures.Executor`` to run the units instead of the local pool; it is not
            shut down here (not with ``settings.scheduler``).
        template: the zipped scratch course from :func:`build_template` for this ``source`` and ``assignment``,
            to skip generating the assignment again (default: generate it).
        **fields: fields of :class:`GradingSettings` that replace those of ``settings`` (a shorthand:
            ``grade_class(folder, name, workers=4)``).

    Returns:
        A :class:`ClassReport`; ``report.summary()`` lists every submission that did not grade cleanly.

    Raises:
        ConnectionError: the dask scheduler cannot be reached (nothing is written), or was lost mid-batch
            (what was saved stays saved).
        GradingInterrupted: a ``KeyboardInterrupt`` during the batch; it says how many verdicts were saved.
        RuntimeError: ``sandbox`` is on and bubblewrap is missing here (or on a dask worker); the message says
            how to install it. Nothing is written.

    Example:
        >>> settings = GradingSettings(workers=4, cell_timeout=120)
        >>> report = grade_class("submitted", "02_batch_normalization", settings)  # doctest: +SKIP
        >>> print(report.summary())  # doctest: +SKIP
        Graded 120 submission(s) of 02_batch_normalization in 171.3 s with 4 worker(s) (1.4 s per notebook).
        >>> cluster = GradingSettings(scheduler="tcp://10.0.0.5:8786")
        >>> report = grade_class("submitted", "02_batch_normalization", cluster)  # doctest: +SKIP
    """
    start = time.monotonic()
    settings = _settings(settings, fields)
    batch = _prepare(submissions, assignment, settings, executor, template)
    report = ClassReport(assignment, [], 0.0, settings.workers if executor is None and settings.scheduler is None
                         else None, sandboxed=settings.sandbox)
    with ExitStack() as stack:
        client = _connect(settings, stack, report)  # first: an unreachable scheduler fails before anything is written
        scratch = _scratch(settings, stack)
        digest = settings.verdict_digest(batch.source / assignment)
        jobs, early, kept, template = _schedule(batch, digest, scratch, template)
        guard = Guard(batch.source / assignment, batch.gradebook, template)
        arriving = _collect(jobs, settings, client, executor)
        stack.callback(arriving.close)  # cancels what is still queued, also on an interrupt
        results = _save(batch, chain(early, arriving), jobs, template, guard, digest, report)
        report.warnings += guard.check("at the end")
        _finish(batch, report, [*kept, *results], kept)
    report.seconds = time.monotonic() - start
    return report


def _settings(settings: GradingSettings | None, fields: dict) -> GradingSettings:
    if settings is not None and not isinstance(settings, GradingSettings):
        raise TypeError(f"settings must be a course_lib.grading.GradingSettings, got {type(settings).__name__}")
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(GradingSettings)})
    if unknown:
        raise TypeError(f"grade_class got unknown setting(s) {', '.join(unknown)}; the settings are the fields "
                        f"of GradingSettings")
    settings = settings if settings is not None else GradingSettings()
    return dataclasses.replace(settings, **fields) if fields else settings


def _prepare(submissions, assignment: str, settings: GradingSettings, executor, template) -> _Batch:
    """Check what ``grade_class`` was given, resolve the course's paths, check that the kernels can be jailed
    here (or leave that to the cluster's probe), and find the submissions. Nothing is written."""
    if not isinstance(assignment, str):
        raise TypeError(f"assignment must be a folder name such as '02_batch_normalization', got "
                        f"{type(assignment).__name__} {assignment!r}")
    if not assignment or "/" in assignment:
        raise ValueError(f"assignment must be a folder name such as '02_batch_normalization', got {assignment!r}")
    if executor is not None and settings.scheduler is not None:
        raise ValueError("give executor or scheduler, not both")
    if executor is not None and not isinstance(executor, cf.Executor):
        raise TypeError(f"executor must be a concurrent.futures.Executor, got {type(executor).__name__}")
    if template is not None and not isinstance(template, bytes):
        raise TypeError(f"template must be the bytes returned by build_template, got {type(template).__name__}")
    if settings.scheduler is None and settings.sandbox and (why := _bwrap.available()) is not None:
        raise RuntimeError(why)
    course = _resolved(settings.course, Path.cwd().resolve())
    default_source = course / "solutions" if (course / "solutions").is_dir() else course / "source"
    source = _resolved(settings.source, default_source)
    if not (source / assignment / f"{assignment}.ipynb").is_file():
        raise FileNotFoundError(f"source notebook {source / assignment / (assignment + '.ipynb')} does not exist")
    submissions = Path(submissions).resolve()
    return _Batch(assignment, settings, submissions, course, source,
                  _resolved(settings.gradebook, course / "gradebook.db"), find_submissions(submissions, assignment),
                  Journal(course / f"{assignment}{JOURNAL_SUFFIX}"))


def _connect(settings: GradingSettings, stack: ExitStack, report: ClassReport):
    """The dask client of ``settings.scheduler`` (closed with ``stack`` when made here), probed for bubblewrap
    on its workers; ``None`` to grade on this machine."""
    if settings.scheduler is None:
        return None
    from . import _dask

    client, report.where = stack.enter_context(_dask.connect(settings.scheduler, settings.workers,
                                                              settings.connect_timeout))
    report.warnings += _dask.probe(client, sandbox=settings.sandbox)
    return client


def _scratch(settings: GradingSettings, stack: ExitStack) -> Path:
    if settings.scratch is not None:
        scratch = Path(settings.scratch)
    else:
        scratch = Path(tempfile.mkdtemp(prefix="course-grading-"))
        stack.callback(shutil.rmtree, scratch, ignore_errors=True)
    scratch.mkdir(parents=True, exist_ok=True)
    return scratch


def _schedule(batch: _Batch, digest: str, scratch: Path, template: bytes | None):
    """Sort the submissions into verdicts kept from the journal, verdicts known without grading (no notebook),
    and :class:`GradingJob` s for the rest; generate the assignment's template when some grading is left."""
    settings, assignment = batch.settings, batch.assignment
    saved = {} if settings.regrade else still_valid(batch.journal.load(), digest, batch.gradebook, batch.course,
                                                    assignment)
    todo, early, kept = [], [], []
    for f in batch.found:
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
        template = build_template(batch.source, assignment, scratch)
    deny, limits = batch.protected(), settings.kernel_limits.as_dict()
    jobs = []
    for f, data in todo:
        notes, flags = ((f"the notebook was renamed to {f.renamed_from}; graded as {assignment}.ipynb",),
                        ("renamed",)) if f.renamed_from else ((), ())
        jobs.append(GradingJob(f.student, assignment, f.path.name, data, template, settings.timeout,
                               settings.cell_timeout, settings.max_output_chars, settings.restore_missing, deny,
                               f.timestamp, str(scratch), notes, flags, settings.sandbox, limits))
    return jobs, early, kept, template


def _collect(jobs: list[GradingJob], settings: GradingSettings, client, executor: cf.Executor | None):
    """Every job's verdict as it arrives: from the dask cluster, ``executor``, or the local pool of threads."""
    if client is not None:
        from . import _dask

        return _dask.results(jobs, client, settings.progress, settings.retries)
    return _local_results(jobs, executor, settings.workers, settings.progress)


def _save(batch: _Batch, arriving, jobs: list[GradingJob], template: bytes, guard: Guard, digest: str,
          report: ClassReport) -> list[SubmissionResult]:
    """Save each verdict as it arrives (its files, the course's gradebook, then its journal line) and return
    them all; an interrupt stops here with :class:`GradingInterrupted`, and what was saved stays saved."""
    assignment, course = batch.assignment, batch.course
    digests = {job.student: sha256(job.data) for job in jobs}
    results, saved_now = [], 0
    try:
        for r in arriving:
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
            merge(batch.gradebook, template, r)
            guard.saved()
            if r.student in digests:
                batch.journal.append({"student": r.student, "submission": digests[r.student], "settings": digest,
                                      "result": result_dict(r)})
                saved_now += 1
    except KeyboardInterrupt:
        raise GradingInterrupted(saved_now, len(jobs), batch.journal.path) from None
    return results


def _finish(batch: _Batch, report: ClassReport, results: list[SubmissionResult], kept) -> None:
    """The report's verdicts in student order, the students whose saved verdict was kept, the scores CSV."""
    report.results = sorted(results, key=lambda r: r.student)
    report.reused = sorted(r.student for r in kept)
    report.csv_path = write_csv(batch.course / f"{batch.assignment}_scores.csv", report.results)


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
