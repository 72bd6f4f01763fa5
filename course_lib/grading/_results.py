"""What a grading unit receives and returns: :class:`GradingJob`, :class:`SubmissionResult`, and the
:class:`ClassReport` of a batch, with the flags that make a verdict unclean and the JSON view of a result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .selfcheck import CellResult

__all__ = ["UNCLEAN", "INFO", "GradingJob", "SubmissionResult", "ClassReport", "crashed", "result_from",
           "result_dict", "safe_name"]


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
    "cpu_limit": "the kernel used up its CPU time and was stopped",
    "memory_limit": "a cell ran out of memory (MemoryError at the memory limit)",
    "process_limit": "a cell hit the limit on processes (fork refused)",
    "disk_limit": "a cell filled its disk space (no space left / file too large)",
    "output_limit": "a cell printed past the output limit and was stopped",
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
    sandbox: bool = True  # run the kernel inside bubblewrap (False: --no-sandbox, the tripwire alone)
    limits: dict | None = None  # course_lib.grading._bwrap.Limits fields (None: the defaults)


@dataclass
class SubmissionResult:
    """The verdict on one submission. ``status`` is ``graded``, ``ungradable``, ``timeout``, ``kernel_died``
    or ``failed``; ``flags`` name anomalies (see :data:`UNCLEAN`); ``notes`` say them in words.

    Example:
        >>> r = SubmissionResult("ana", "02_batch_normalization", "graded", score=6.0, max_score=6.0)
        >>> r.clean, SubmissionResult("bo", "02_batch_normalization", "timeout").reason
        (True, 'timeout')
    """

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

    def add_flag(self, flag: str, note: str) -> None:
        """Record an anomaly: its name in ``flags`` (see :data:`UNCLEAN` and :data:`INFO`), its words in ``notes``."""
        self.flags.append(flag)
        self.notes.append(note)

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
    sandboxed: bool = True  # every kernel ran in bubblewrap (False: --no-sandbox)

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
        if not self.sandboxed:
            lines.append("Graded WITHOUT a sandbox (--no-sandbox): the notebooks ran with this user's access to "
                         "files and the network, behind the audit-hook tripwire only.")
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


def crashed(job: GradingJob, why: str) -> SubmissionResult:
    """The result for a unit that produced no verdict (it raised, or its workers died): flagged
    ``unit_crashed``, so it is reported but not saved, and a rerun grades it."""
    return SubmissionResult(job.student, job.assignment, "failed", flags=[*job.flags, "unit_crashed"],
                            notes=[*job.notes, f"not graded: {why}; nothing was recorded, rerun to grade it"],
                            timestamp=job.timestamp)


def result_from(d: dict) -> SubmissionResult:
    names = {f.name for f in fields(SubmissionResult)}
    kwargs = {k: v for k, v in d.items() if k in names}
    kwargs["cells"] = [CellResult(**c) for c in d.get("cells", [])]
    return SubmissionResult(**kwargs)


def result_dict(r: SubmissionResult) -> dict:
    """A JSON-friendly view of a result (without the large feedback and notebook texts)."""
    d = asdict(r)
    for key in ("feedback_html", "autograded", "grades", "comments"):
        d.pop(key)
    d["clean"] = r.clean
    return d


def safe_name(text: str) -> str:
    """``text`` as a folder name or dask task key: letters, digits, ``-`` and ``_``, at most 40 characters.

    Example:
        >>> safe_name("jo smith/../x")
        'jo_smith____x'
    """
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)[:40] or "student"
