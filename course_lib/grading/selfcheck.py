"""The student's self-check: run an exercise notebook in a fresh kernel and report every graded cell.

Only ``nbformat``, ``nbclient`` and ``ipykernel`` are needed (all three ship with Colab and Jupyter); nbgrader
is not. Hidden tests are never run or shown: every hidden-test region is removed before execution, and where
the released notebook is at hand the graded cells are run exactly as released (so an edited or deleted test
cell is reported and the original is run, as class grading will do).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .._checks.scalars import check_seconds, describe
from . import _notebook as nbt

if TYPE_CHECKING:
    from nbformat import NotebookNode

#: Environment variable that turns :func:`self_check` into a no-op. The self-check sets it for the kernel it
#: starts (so the notebook's own self-check cell does not recurse); class grading and ``make test`` set it too.
SELF_CHECK_ENV = "COURSE_SELF_CHECK"
#: Where the released copy of ``NAME.ipynb`` is looked for, in the notebook's folder and every folder above it:
#: the course repository's ``exercises/`` and nbgrader's ``release/``.
RELEASE_FOLDERS = ("exercises", "release")


@dataclass
class CellResult:
    """The outcome of one graded cell."""

    grade_id: str
    status: str  # "passed", "failed" or "not run"
    points: float
    max_points: float
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass
class SelfCheckReport:
    """What :func:`self_check` found. ``exit_code`` is 0 only when every visible test passed."""

    notebook: str
    cells: list[CellResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # non-graded cells that raised
    problem: str | None = None  # the notebook could not be read or run
    skipped: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.skipped is None and self.problem is None and bool(self.cells) and all(c.passed for c in self.cells)

    @property
    def exit_code(self) -> int:
        if self.skipped is not None:
            return 0
        if self.problem is not None:
            return 2
        return 0 if self.passed else 1

    @property
    def points(self) -> tuple[float, float]:
        return sum(c.points for c in self.cells), sum(c.max_points for c in self.cells)

    def format(self) -> str:
        """The report as printed: one line per graded cell, then the totals and any notes."""
        if self.skipped is not None:
            return f"Self-check skipped: {self.skipped}."
        head = f"Self-check of {self.notebook} (visible tests only; hidden tests run when your work is graded)"
        if self.problem is not None:
            return f"{head}\n  could not check the notebook: {self.problem}"
        width = max([len(c.grade_id) for c in self.cells] + [8])
        lines = [head]
        for c in self.cells:
            mark = {"passed": "passed", "failed": "FAILED", "not run": "NOT RUN"}[c.status]
            line = f"  {c.grade_id:<{width}}  {mark:<7}  {_num(c.points)}/{_num(c.max_points)}"
            lines.append(line + (f"  {c.message}" if c.message else ""))
        got, total = self.points
        n_ok = sum(c.passed for c in self.cells)
        lines.append(f"  visible tests passed: {n_ok}/{len(self.cells)}; points {_num(got)}/{_num(total)} "
                     f"({self.seconds:.1f} s). Hidden tests may still lower the final score.")
        if not self.cells:
            lines.append("  this notebook has no graded cells (nbgrader metadata missing?)")
        for e in self.errors:
            lines.append(f"  note: {e}")
        for n in self.notes:
            lines.append(f"  note: {n}")
        return "\n".join(lines)

    __str__ = format

    def __repr__(self) -> str:
        if self.skipped is not None:
            return f"SelfCheckReport(skipped: {self.skipped})"
        got, total = self.points
        return (f"SelfCheckReport({self.notebook!r}: {sum(c.passed for c in self.cells)}/{len(self.cells)} "
                f"graded cells passed, {_num(got)}/{_num(total)} points)")


def _num(x: float) -> str:
    return f"{x:g}"


def skip_reason() -> str | None:
    """Why a self-check must not run here (inside a self-check, nbgrader or ``make test``), else ``None``."""
    if os.environ.get(SELF_CHECK_ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return f"{SELF_CHECK_ENV}={os.environ[SELF_CHECK_ENV]} (already inside a check, a grader or the test suite)"
    if os.environ.get("NBGRADER_EXECUTION"):
        return f"running under nbgrader ({os.environ['NBGRADER_EXECUTION']})"
    return None


def self_check(notebook: str | os.PathLike = "", *, release: str | os.PathLike | None = None,
               timeout: float = 900, cell_timeout: float = 300, kernel_name: str = "python3",
               quiet: bool = False) -> SelfCheckReport:
    """Run ``notebook`` top to bottom in a fresh kernel and print one line per graded cell.

    Each graded test cell is reported as passed or failed with its points and, for a failure, the message of
    the visible assertion. Hidden tests are never run or shown. In a notebook that is being checked, graded
    by nbgrader, or run by ``make test`` (environment variable ``COURSE_SELF_CHECK=0``) it returns at once,
    so the self-check cell at the end of every exercise never recurses.

    Args:
        notebook: the ``.ipynb`` to check, relative to the working directory (the notebook's folder in
            Jupyter). In Colab, where the notebook is not a file, the open notebook is checked.
        release: the released (student) version to compare with; by default the nearest
            ``exercises/NAME/NAME.ipynb`` or ``release/NAME/NAME.ipynb`` in the notebook's folder or above it
            (see :func:`find_release`), else the checksums nbgrader stored in the notebook (and a note says so).
        timeout: seconds for the whole run; cells left when it runs out are reported as not run.
        cell_timeout: seconds for any one cell.
        kernel_name: the Jupyter kernel to start.
        quiet: return the report without printing it.

    Returns:
        A :class:`SelfCheckReport`; its ``exit_code`` is 0 only when every visible test passed.

    Example:
        >>> from course_lib.grading import self_check
        >>> report = self_check("02_batch_normalization.ipynb")  # doctest: +SKIP
        Self-check of 02_batch_normalization.ipynb (visible tests only; ...)
          test_batch_norm_forward  passed   2/2
    """
    reason = skip_reason()
    if reason is not None:
        report = SelfCheckReport(notebook=str(notebook), skipped=reason)
    else:
        report = check_notebook(notebook, release=release, timeout=timeout, cell_timeout=cell_timeout,
                                kernel_name=kernel_name)
        saved = _saved_note(notebook)
        if saved is not None and report.problem is None:
            report.notes.insert(0, saved)
    if not quiet:
        print(report.format())
    return report


def check_notebook(notebook: str | os.PathLike, *, release: str | os.PathLike | None = None,
                   timeout: float = 900, cell_timeout: float = 300, kernel_name: str = "python3") -> SelfCheckReport:
    """The self-check without the recursion guard or printing (used by the command line)."""
    check_seconds(timeout, "timeout")
    check_seconds(cell_timeout, "cell_timeout")
    if not isinstance(kernel_name, str):
        raise TypeError(f"kernel_name must be a str, got {describe(kernel_name)}")
    if not kernel_name:
        raise ValueError("kernel_name must be the name of a Jupyter kernel such as 'python3', got ''")
    start = time.monotonic()
    try:
        nb, name, workdir = _load(notebook)
    except nbt.NotebookProblem as exc:
        return SelfCheckReport(notebook=str(notebook), problem=str(exc))
    report = SelfCheckReport(notebook=name)
    reference = _reference(notebook, name, release, report)
    run, graded, edited = _prepare(nb, reference, report)
    if not graded:
        report.notes.append("no graded cells were found, so nothing was checked")
    deadline = start + timeout
    try:
        if _loop_running():  # inside Jupyter: keep the kernel's event loop free
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                executed = pool.submit(_execute, run, workdir, deadline, cell_timeout, kernel_name, report).result()
        else:
            executed = _execute(run, workdir, deadline, cell_timeout, kernel_name, report)
    except Exception as exc:  # a kernel that cannot start is a problem of the set-up, reported as such
        report.problem = f"the kernel could not run the notebook ({type(exc).__name__}: {exc})"
        report.seconds = time.monotonic() - start
        return report
    for index, (gid, max_points) in graded.items():
        cell = run.cells[index]
        if not cell.source.strip():
            if gid in edited:
                report.cells.append(CellResult(gid, "not run", 0.0, max_points, "edited: no visible test is left"))
            else:
                report.cells.append(CellResult(gid, "passed", max_points, max_points, "(hidden tests only)"))
            continue
        if index not in executed:
            report.cells.append(CellResult(gid, "not run", 0.0, max_points, executed.get("why", "not reached")))
            continue
        error = nbt.error_output(cell)
        if error is None:
            report.cells.append(CellResult(gid, "passed", max_points, max_points))
        else:
            line = nbt.failing_line(error, cell.get("execution_count"))
            report.cells.append(CellResult(gid, "failed", 0.0, max_points, nbt.describe_error(error, cell.source, line)))
    report.seconds = time.monotonic() - start
    return report


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _load(notebook) -> tuple[NotebookNode, str, Path]:
    if not isinstance(notebook, (str, os.PathLike)):
        raise TypeError(f"notebook must be a path (str or os.PathLike), got {type(notebook).__name__}")
    path = Path(notebook)
    if str(notebook) and path.is_file():
        return nbt.read_notebook(path.read_bytes()), path.name, path.resolve().parent
    if "google.colab" in sys.modules:  # Colab keeps the open notebook in the browser, not on disk
        return _colab_notebook(path.name)
    raise FileNotFoundError(f"notebook {str(notebook)!r} not found in {Path.cwd()}; save the notebook under that name "
                            f"(File > Save) or pass its path")


def _colab_notebook(name: str) -> tuple[NotebookNode, str, Path]:
    import json

    from google.colab import _message  # type: ignore[import-not-found]

    reply = _message.blocking_request("get_ipynb", request="", timeout_sec=60)
    if not reply or "ipynb" not in reply:
        raise nbt.NotebookProblem("invalid_notebook", "Colab did not return the open notebook")
    return nbt.read_notebook(json.dumps(reply["ipynb"])), name or "this notebook", Path.cwd()


def _saved_note(notebook) -> str | None:
    """A reminder when the file on disk is older than the student's last edits may be."""
    path = Path(notebook)
    if not str(notebook) or not path.is_file():
        return None
    age = time.time() - path.stat().st_mtime
    if age < 60:
        return None
    return (f"this checked {path.name} as last saved, {age / 60:.0f} min ago: save the notebook (Ctrl+S) to check "
            f"your latest changes")


def _reference(notebook, name: str, release, report: SelfCheckReport) -> NotebookNode | None:
    if release is not None:
        path = Path(release)
        if not path.is_file():
            raise FileNotFoundError(f"release {str(release)!r} does not exist")
        return nbt.read_notebook(path.read_bytes())
    stem = Path(name).stem
    here = Path(notebook).resolve() if str(notebook) and Path(notebook).is_file() else None
    candidate = find_release(stem, here.parent if here is not None else Path.cwd())
    if candidate is None:
        report.notes.append(f"no released copy of {stem}.ipynb was found ({' or '.join(RELEASE_FOLDERS)}/{stem}/ in "
                            f"this folder or one above it): the test cells were checked against the checksums "
                            f"stored in the notebook; pass release=PATH to compare with the released exercise")
        return None
    if here is not None and here == candidate.resolve():
        return None  # checking the committed release in place: it cannot be its own reference
    try:
        return nbt.read_notebook(candidate.read_bytes())
    except nbt.NotebookProblem:
        report.notes.append(f"ignored an unreadable release {candidate}")
        return None


def find_release(stem: str, start: Path) -> Path | None:
    """The released ``<stem>.ipynb`` for a notebook in folder ``start``: ``exercises/<stem>/<stem>.ipynb`` or
    ``release/<stem>/<stem>.ipynb`` in ``start`` or the nearest folder above it that has one (a clone of the
    course, an nbgrader course folder); ``None`` when there is none. It never looks where ``course_lib`` is
    installed, so a pip-installed package (Colab) finds the release next to the notebook, or nothing."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        for kind in RELEASE_FOLDERS:
            candidate = folder / kind / stem / f"{stem}.ipynb"
            if candidate.is_file():
                return candidate
    return None


def _prepare(nb: NotebookNode, reference: NotebookNode | None, report: SelfCheckReport):
    """The notebook to run (hidden tests removed, released tests restored) and its graded cells."""
    run = copy.deepcopy(nb)
    ref_points, edited = {}, set()
    if reference is not None:
        cmp = nbt.compare(run, reference, ignore_hidden=True)
        if cmp.missing_grade:
            nbt.restore_missing(run, reference, cmp.missing_grade)
            report.notes.append(f"graded cell(s) {', '.join(cmp.missing_grade)} are missing from your notebook; they "
                                f"were restored for this check. Restore them in your notebook too (Edit > Undo "
                                f"delete, or copy them from the released exercise)")
        if cmp.missing_solution:
            report.notes.append(f"answer cell(s) {', '.join(cmp.missing_solution)} are missing (their metadata was "
                                f"lost); graders look for your answer in those cells")
        edited.update(cmp.edited_locked)
        if cmp.edited_locked:
            report.notes.append(f"test cell(s) {', '.join(cmp.edited_locked)} were edited; the released tests were run "
                                f"instead, as grading will do")
        if cmp.unknown:
            report.notes.append(f"cell(s) with unknown grade ids {', '.join(cmp.unknown)} are ignored by grading")
        if cmp.duplicated:
            report.notes.append(f"grade id(s) {', '.join(cmp.duplicated)} appear more than once; only the first counts")
        released = {nbt.grade_id(c): c for c in reference.cells if nbt.grade_id(c)}
        for cell in run.cells:
            gid = nbt.grade_id(cell)
            if gid in released and nbt.is_locked(released[gid]):
                cell.source = released[gid].source
            if gid in released and nbt.is_grade(released[gid]):
                ref_points[gid] = nbt.points(released[gid])
    else:
        edited.update(nbt.grade_id(c) for c in run.cells if nbt.is_locked(c) and nbt.grade_id(c)
                      and nbt.nbgrader_meta(c).get("checksum") and nbt.checksum(c) != nbt.nbgrader_meta(c)["checksum"])
        if edited:
            report.notes.append(f"test cell(s) {', '.join(sorted(edited))} differ from the released version; grading runs the "
                                f"released tests, so this check may not match your grade")
    hidden = 0
    for cell in run.cells:
        if cell.cell_type == "code":
            visible, regions = nbt.strip_hidden(cell.source)
            if regions:
                cell.source, hidden = visible, hidden + 1
    if hidden:
        report.notes.append(f"hidden-test regions in {hidden} cell(s) were removed and not run")
    graded, seen = {}, set()
    for index, cell in enumerate(run.cells):
        gid = nbt.grade_id(cell)
        if cell.cell_type == "code" and nbt.is_grade(cell) and gid and gid not in seen:
            seen.add(gid)
            graded[index] = (gid, ref_points.get(gid, nbt.points(cell)))
    return run, graded, edited


def _execute(nb: NotebookNode, workdir: Path, deadline: float, cell_timeout: float, kernel_name: str,
             report: SelfCheckReport) -> dict:
    """Run the code cells one by one; return {index: True} for each cell that ran (and "why" if it stopped)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    env = dict(os.environ)
    env[SELF_CHECK_ENV] = "0"
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    client = NotebookClient(
        nb, timeout=int(max(1, cell_timeout)), kernel_name=kernel_name, allow_errors=True,
        interrupt_on_timeout=True, resources={"metadata": {"path": str(workdir)}},
        error_on_timeout={"ename": "CellTimeoutError", "evalue": f"the cell ran longer than {cell_timeout:g} s",
                          "traceback": []},
    )
    executed: dict = {}
    with client.setup_kernel(env=env, cwd=str(workdir), stderr=subprocess.DEVNULL):
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                executed["why"] = "the self-check ran out of time before this cell"
                break
            client.timeout = int(max(1, min(cell_timeout, left)))
            try:
                client.execute_cell(cell, index)
            except DeadKernelError:
                report.errors.append(f"the kernel died while running {nbt.cell_label(nb, index)} (os._exit, a crash "
                                     f"or out of memory); later cells were not run")
                executed["why"] = "the kernel died earlier"
                break
            except CellTimeoutError:
                report.errors.append(f"{nbt.cell_label(nb, index)} did not stop after an interrupt; later cells were "
                                     "not run")
                executed["why"] = "an earlier cell never finished"
                break
            executed[index] = True
            error = nbt.error_output(cell)
            if error is not None and not nbt.is_grade(cell) and len(report.errors) < 5:
                label = nbt.cell_label(nb, index)
                line = nbt.failing_line(error, cell.get("execution_count"))
                report.errors.append(f"{label}: {nbt.describe_error(error, cell.source, line)}")
    return executed
