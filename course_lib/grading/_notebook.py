"""Notebook inspection shared by the self-check and class grading (nbformat only, no nbgrader).

Everything here reads an exercise notebook the way nbgrader's metadata describes it: graded test cells
(``nbgrader.grade`` true), solution cells, locked cells and their checksums. It also compares a submission
with its reference (the released student version) so that a deleted, renamed or edited graded cell is
*reported* instead of silently scoring 0, and it removes hidden-test regions before anything is run or shown.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # nbformat is imported only when a notebook is read: the self-check cell stays cheap
    from nbformat import NotebookNode

HIDDEN_BEGIN = "BEGIN HIDDEN TESTS"
HIDDEN_END = "END HIDDEN TESTS"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_FRAME = re.compile(r"Cell In\s*\[(\d+)\],\s*line (\d+)")


class NotebookProblem(ValueError):
    """A submission that cannot be read as a notebook; ``kind`` is ``empty``, ``invalid_json`` or ``invalid_notebook``."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def read_notebook(data: bytes | str | Path) -> NotebookNode:
    """Parse a notebook from bytes, text or a path, raising :class:`NotebookProblem` with a clear reason.

    Example:
        >>> read_notebook(b"")
        Traceback (most recent call last):
        ...
        course_lib.grading._notebook.NotebookProblem: the file is empty (0 bytes)
    """
    if isinstance(data, Path):
        data = data.read_bytes()
    if isinstance(data, bytes):
        if not data.strip():
            raise NotebookProblem("empty", f"the file is empty ({len(data)} bytes)")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotebookProblem("invalid_json", f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not isinstance(data, str):
        raise TypeError(f"data must be bytes, str or a Path, got {type(data).__name__}")
    if not data.strip():
        raise NotebookProblem("empty", "the file is empty (only whitespace)")
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as exc:
        where = "" if exc.msg.endswith(" at") else " at"  # "Unterminated string starting at" names its place
        raise NotebookProblem("invalid_json", f"the file is not valid JSON ({exc.msg}{where} line {exc.lineno}, "
                                              f"column {exc.colno})") from None
    import nbformat

    if not isinstance(raw, dict) or "cells" not in raw and "worksheets" not in raw:
        raise NotebookProblem("invalid_notebook", "the file is JSON but not a Jupyter notebook (no 'cells')")
    try:
        nb = nbformat.reads(data, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # nbformat raises several types for a malformed notebook
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NotebookProblem("invalid_notebook", f"the file is not a valid notebook ({first[:200]})") from None
    return nb


def nbgrader_meta(cell: NotebookNode) -> dict:
    """The cell's nbgrader metadata (empty when it has none)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def grade_id(cell: NotebookNode) -> str | None:
    gid = nbgrader_meta(cell).get("grade_id")
    return gid if isinstance(gid, str) and gid else None


def is_grade(cell: NotebookNode) -> bool:
    return bool(nbgrader_meta(cell).get("grade", False))


def is_solution(cell: NotebookNode) -> bool:
    return bool(nbgrader_meta(cell).get("solution", False))


def is_locked(cell: NotebookNode) -> bool:
    """Locked as nbgrader defines it: solution cells never are, grade cells always are."""
    meta = nbgrader_meta(cell)
    if not meta or meta.get("solution", False):
        return False
    return bool(meta.get("grade", False) or meta.get("locked", False))


def points(cell: NotebookNode) -> float:
    try:
        return float(nbgrader_meta(cell).get("points", 0) or 0)
    except (TypeError, ValueError):
        return 0.0


def checksum(cell: NotebookNode) -> str:
    """nbgrader's cell checksum (``nbgrader.utils.compute_checksum``), recomputed without importing nbgrader.

    MD5 over the source, the cell type, the grade/solution/locked flags, the grade id and, for a graded
    cell, its points as a float. The release stores it in ``metadata.nbgrader.checksum``, so an edited
    locked cell is detectable even where the release itself is not at hand (Colab).
    """
    m = hashlib.md5()
    for part in (cell.source, cell.cell_type, str(is_grade(cell)), str(is_solution(cell)), str(is_locked(cell)),
                 nbgrader_meta(cell).get("grade_id", "")):
        m.update(str(part).encode("utf-8"))
    if is_grade(cell):
        m.update(str(points(cell)).encode("utf-8"))
    return m.hexdigest()


def strip_hidden(source: str) -> tuple[str, list[tuple[int, int]]]:
    """Remove every hidden-test region (delimiter lines included), as nbgrader's ``ClearHiddenTests`` does.

    Returns the visible source and the removed regions as 1-based inclusive line ranges of the input.
    A ``BEGIN`` without its ``END`` hides everything to the end of the cell (the safe side).
    """
    kept, regions, start = [], [], None
    lines = source.split("\n")
    for number, line in enumerate(lines, start=1):
        if start is None and HIDDEN_BEGIN in line:
            start = number
        elif start is not None and HIDDEN_END in line:
            regions.append((start, number))
            start = None
        elif start is None:
            kept.append(line)
    if start is not None:
        regions.append((start, len(lines)))
    return "\n".join(kept), regions


def _normalized(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip("\n").split("\n"))


def same_source(a: str, b: str) -> bool:
    """Equal up to trailing whitespace on lines and blank lines at either end."""
    return _normalized(a) == _normalized(b)


@dataclass
class Comparison:
    """How a submission's nbgrader cells differ from its reference (the released notebook)."""

    missing_grade: list[str] = field(default_factory=list)      # graded cells absent from the submission
    missing_solution: list[str] = field(default_factory=list)   # answer cells absent from the submission
    edited_locked: list[str] = field(default_factory=list)      # locked cells whose source was changed
    unknown: list[str] = field(default_factory=list)            # grade ids the reference does not have
    duplicated: list[str] = field(default_factory=list)         # grade ids present more than once
    unanswered: bool = False                                    # every answer cell is still the stub

    @property
    def clean(self) -> bool:
        return not (self.missing_grade or self.missing_solution or self.edited_locked or self.unknown
                    or self.duplicated)


def index_by_id(nb: NotebookNode) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, cell in enumerate(nb.cells):
        gid = grade_id(cell)
        if gid is not None:
            out.setdefault(gid, []).append(i)
    return out


def compare(submission: NotebookNode, reference: NotebookNode, *, ignore_hidden: bool = False) -> Comparison:
    """Compare the nbgrader cells of ``submission`` with ``reference`` by grade id.

    With ``ignore_hidden`` hidden-test regions are removed from the submission before comparing (for the
    instructor's source notebook, whose tests still hold them).
    """
    ref = {grade_id(c): c for c in reference.cells if grade_id(c) is not None}
    sub_ids = index_by_id(submission)
    result = Comparison()
    for gid, cell in ref.items():
        if gid not in sub_ids:
            (result.missing_grade if is_grade(cell) else result.missing_solution).append(gid)
    for gid, where in sub_ids.items():
        if gid not in ref:
            result.unknown.append(gid)
            continue
        if len(where) > 1:
            result.duplicated.append(gid)
        if is_locked(ref[gid]):
            text = submission.cells[where[0]].source
            if ignore_hidden:
                text = strip_hidden(text)[0]
            if not same_source(text, ref[gid].source):
                result.edited_locked.append(gid)
    answers = [gid for gid, c in ref.items() if is_solution(c)]
    result.unanswered = bool(answers) and all(
        gid in sub_ids and same_source(submission.cells[sub_ids[gid][0]].source, ref[gid].source) for gid in answers)
    return result


def restore_missing(submission: NotebookNode, reference: NotebookNode, ids: list[str]) -> NotebookNode:
    """Insert the reference's cells ``ids`` into ``submission`` where they were (after the nearest earlier
    reference cell the submission still has, matched by grade id or cell id); cells with no anchor go last.
    """
    import nbformat

    wanted = set(ids)
    for ref_index, cell in enumerate(reference.cells):
        gid = grade_id(cell)
        if gid not in wanted:
            continue
        position = len(submission.cells)
        for earlier in reversed(reference.cells[:ref_index]):
            anchor = _find(submission, earlier)
            if anchor is not None:
                position = anchor + 1
                break
        submission.cells.insert(position, nbformat.from_dict(json.loads(json.dumps(cell))))
    return submission


def _find(nb: NotebookNode, cell: NotebookNode) -> int | None:
    gid, cid = grade_id(cell), cell.get("id")
    for i, other in enumerate(nb.cells):
        if gid is not None and grade_id(other) == gid:
            return i
        if gid is None and cid and other.get("id") == cid:
            return i
    return None


def error_output(cell: NotebookNode) -> NotebookNode | None:
    """The cell's first error output (``None`` when it ran cleanly)."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out
    return None


def error_names(cell: NotebookNode) -> set[str]:
    return {str(out.get("ename")) for out in cell.get("outputs", []) if out.get("output_type") == "error"}


def failing_line(error: NotebookNode, execution_count: int | None) -> int | None:
    """1-based line of the cell's own frame in an IPython traceback (``Cell In[7], line 3``)."""
    for entry in error.get("traceback", []):
        for match in _CELL_FRAME.finditer(_ANSI.sub("", entry)):
            if execution_count is None or int(match.group(1)) == execution_count:
                return int(match.group(2))
    return None


#: The longest message :func:`describe_error` returns. A test's message names the function, the expected value,
#: what was received and, last, a hint: long enough for all of that (the course's longest are ~300 characters),
#: short enough that a runaway ``repr`` of a tensor does not flood the report.
MESSAGE_CHARS = 1000


def describe_error(error: NotebookNode, source: str, line: int | None, max_chars: int = MESSAGE_CHARS) -> str:
    """A one-line message for a failed cell: the assertion message, else ``Name: value``, with the failing
    (visible) line when the message alone says nothing. Whitespace runs become one space; a message longer
    than ``max_chars`` is cut there and ends in "…"."""
    ename, evalue = error.get("ename", "Error"), _ANSI.sub("", str(error.get("evalue", ""))).strip()
    if ename == "NotImplementedError" and not evalue:
        return "not implemented yet (NotImplementedError)"
    if ename == "CellTimeoutError":
        return evalue or "the cell did not finish before the time limit"
    text = evalue if ename == "AssertionError" and evalue else f"{ename}: {evalue}" if evalue else ename
    lines = source.split("\n")
    if line is not None and 1 <= line <= len(lines) and not evalue:
        text += f" (at line {line}: {lines[line - 1].strip()[:90]})"
    text = " ".join(text.split())
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def cell_label(nb: NotebookNode, index: int) -> str:
    """How a student finds cell ``index`` in Jupyter, which shows no cell numbers: its grade id if it has one,
    else the code cell under the nearest Markdown heading above it ('the 2nd code cell under "5. On the trained
    model"'), else its place among the code cells."""
    gid = grade_id(nb.cells[index])
    if gid:
        return gid
    nth = 0
    for cell in reversed(nb.cells[: index + 1]):
        if cell.cell_type == "code":
            nth += 1
        elif cell.cell_type == "markdown":
            headings = [ln.lstrip("#").strip() for ln in cell.source.splitlines() if re.match(r"#{1,6}\s", ln)]
            if headings:
                place = "the code cell" if nth == 1 else f"the {_ordinal(nth)} code cell"
                return f'{place} under "{headings[-1]}"'
    return f"the {_ordinal(nth)} code cell of the notebook"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


#: Rich outputs that are pictures, not text: never cut by the text cap (a figure's PNG is 100k+ characters of
#: base64). A runaway cell is bounded while it runs instead (``Limits.cell_output_chars``).
IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml", "image/webp", "application/pdf")


def cap_outputs(nb: NotebookNode, max_chars: int) -> list[int]:
    """Cut every output's text to ``max_chars`` characters in place; return the indices of the cells cut.
    Images (:data:`IMAGE_MIMES`) are not text and are left whole."""
    cut = []
    for index, cell in enumerate(nb.cells):
        changed = False
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                changed |= _cap(out, "text", max_chars)
            elif out.get("output_type") == "error":
                tb = out.get("traceback", [])
                if sum(len(t) for t in tb) > max_chars:
                    out["traceback"] = [t[:max_chars // max(1, len(tb))] for t in tb][:50]
                    changed = True
                if len(str(out.get("evalue", ""))) > max_chars:
                    out["evalue"] = str(out["evalue"])[:max_chars] + " ... (truncated)"
                    changed = True
            elif out.get("output_type") in ("execute_result", "display_data"):
                data = out.get("data", {})
                for mime in list(data):
                    if mime in IMAGE_MIMES:
                        continue
                    value = data[mime]
                    text = "".join(value) if isinstance(value, list) else str(value)
                    if len(text) > max_chars:
                        if mime == "text/plain":
                            data[mime] = text[:max_chars] + f"\n... output truncated ({len(text):,} characters) ..."
                        else:
                            del data[mime]
                        changed = True
                if not data:
                    data["text/plain"] = "... output removed: too large ..."
        if changed:
            cut.append(index)
    return cut


def _cap(out: NotebookNode, key: str, max_chars: int) -> bool:
    text = out.get(key, "")
    text = "".join(text) if isinstance(text, list) else text
    if len(text) <= max_chars:
        return False
    out[key] = text[:max_chars] + f"\n... output truncated ({len(text):,} characters) ...\n"
    return True


def output_text(cell: NotebookNode) -> str:
    """All text a cell's outputs would show (streams, results, errors)."""
    parts = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            parts.append("".join(out.get("text", "")))
        elif kind == "error":
            parts += [str(out.get("ename", "")), str(out.get("evalue", ""))]
            parts += [_ANSI.sub("", t) for t in out.get("traceback", [])]
        elif kind in ("execute_result", "display_data"):
            for value in out.get("data", {}).values():
                parts.append("".join(value) if isinstance(value, list) else str(value))
    return "\n".join(parts)
