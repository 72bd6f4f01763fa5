"""Saving verdicts in the course: ``autograded/`` and ``feedback/`` files, the scores CSV, the merge into
nbgrader's gradebook, and :class:`Guard`, which undoes changes to the source or gradebook it did not make."""

from __future__ import annotations

import csv
import hashlib
import io
import tempfile
import warnings
import zipfile
from pathlib import Path

from ._processes import venv_on_path
from ._results import SubmissionResult

__all__ = ["write_files", "write_csv", "merge", "Guard"]


def write_files(course: Path, r: SubmissionResult) -> None:
    if r.autograded is not None:
        path = course / "autograded" / r.student / r.assignment / f"{r.assignment}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(r.autograded)
    if r.feedback_html is not None:
        path = course / "feedback" / r.student / r.assignment / f"{r.assignment}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(r.feedback_html)


def write_csv(path: Path, results: list[SubmissionResult]) -> Path:
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


def merge(gradebook: Path, template: bytes, r: SubmissionResult) -> None:
    """Record ``r`` in the course gradebook; a submission graded by hand later keeps nbgrader's semantics:
    a submission that could not be graded scores 0 and is marked as needing manual grading."""
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.utils import parse_utc

    if not gradebook.exists():
        with zipfile.ZipFile(io.BytesIO(template)) as zf:
            gradebook.parent.mkdir(parents=True, exist_ok=True)
            gradebook.write_bytes(zf.read("gradebook.db"))
    with venv_on_path(), warnings.catch_warnings(), Gradebook(f"sqlite:///{gradebook}") as gb:
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


class Guard:
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
