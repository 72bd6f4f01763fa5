"""Per-cell verdicts from an autograded notebook, and feedback that never shows hidden tests.

The autograded notebook (what nbgrader executed) holds the instructor's graded cells *with* their hidden
tests. Before feedback is rendered every graded cell gets its released source back, the outputs of graded
cells that ran hidden tests are reduced to a one-line verdict (a traceback or a print could quote hidden
code), every output is capped in size, and any output that still quotes a hidden-test line is removed.
"""

from __future__ import annotations

import copy
import html
import re

import nbformat
from nbformat import NotebookNode

from . import _notebook as nbt

_MIN_SECRET = 12  # hidden lines shorter than this ("assert ok") are too generic to search for


def secret_lines(source: NotebookNode, release: NotebookNode) -> set[str]:
    """The distinctive lines of every hidden-test region of the source (not also visible in the release)."""
    public = public_lines(release)
    out = set()
    for cell in source.cells:
        lines = cell.source.split("\n")
        for start, end in nbt.strip_hidden(cell.source)[1]:
            for ln in lines[start:end - 1]:  # without the delimiter lines
                ln = ln.strip()
                if len(ln) >= _MIN_SECRET and ln not in public and not ln.startswith("#"):
                    out.add(ln)
    return out


def _line_key(line: str) -> str:
    return " ".join(line.split())


def public_lines(release: NotebookNode) -> set[str]:
    """Every line of the release (what students see), for :func:`leaks`."""
    return {ln.strip() for c in release.cells for ln in c.source.split("\n") if ln.strip()}


def leaks(text: str, secrets: set[str], public: set[str] | frozenset = frozenset()) -> list[str]:
    """The secret lines that ``text`` quotes (whitespace-insensitive), line by line. An occurrence inside a
    visible line of the release that contains the secret (``assert x == y, "message"`` shown to students,
    against the hidden ``assert x == y``) is not a leak: those visible lines are masked out first."""
    keys = {s: _line_key(s) for s in secrets}
    covering = {s: [p for p in map(_line_key, public) if k in p] for s, k in keys.items()}
    found = []
    for line in text.splitlines():
        line = _line_key(line)
        if not line:
            continue
        for s, k in keys.items():
            if s in found or k not in line:
                continue
            masked = line
            for p in covering[s]:
                masked = masked.replace(p, " ")
            if k in masked:
                found.append(s)
    return found


def cell_verdicts(nb: NotebookNode) -> dict[str, dict]:
    """For every graded cell of an executed notebook: passed?, hidden?, and a message safe to show."""
    out = {}
    for cell in nb.cells:
        gid = nbt.grade_id(cell)
        if not (gid and nbt.is_grade(cell)) or gid in out or cell.cell_type != "code":
            continue
        error = nbt.error_output(cell)
        if error is None:
            stderr = [o for o in cell.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stderr"]
            if stderr:  # nbgrader scores a test cell that wrote to stderr (a warning) 0: say so
                first = next((ln.strip() for ln in "".join(stderr[0].get("text", "")).splitlines() if ln.strip()), "")
                out[gid] = {"passed": False, "hidden": False,
                            "message": f"the cell wrote to stderr, which nbgrader scores as a failure: {first[:160]}"}
                continue
            out[gid] = {"passed": True, "hidden": False, "message": ""}
            continue
        regions = nbt.strip_hidden(cell.source)[1]
        line = nbt.failing_line(error, cell.get("execution_count"))
        in_hidden = bool(regions) and (line is None or any(a <= line <= b for a, b in regions))
        if error.get("ename") == "CellTimeoutError":
            in_hidden, message = False, "the cell did not finish before the time limit (CellTimeoutError)"
        elif in_hidden:
            message = f"a hidden test failed ({error.get('ename', 'Error')})"
        else:
            message = nbt.describe_error(error, cell.source, line)
        out[gid] = {"passed": False, "hidden": in_hidden, "message": message}
    return out


def sanitize(nb: NotebookNode, release: NotebookNode, secrets: set[str], max_chars: int) -> tuple[NotebookNode, dict]:
    """A copy of the autograded ``nb`` that is safe to show the student, and what was changed."""
    nb = copy.deepcopy(nb)
    released = {nbt.grade_id(c): c for c in release.cells if nbt.grade_id(c)}
    verdicts = cell_verdicts(nb)
    changed = {"graded_outputs_reduced": 0, "redacted": 0}
    for cell in nb.cells:
        gid = nbt.grade_id(cell)
        if cell.cell_type != "code" or not gid or not nbt.is_grade(cell):
            continue
        visible, regions = nbt.strip_hidden(cell.source)
        cell.source = released[gid].source if gid in released and nbt.is_locked(released[gid]) else visible
        if regions:
            verdict = verdicts.get(gid, {"passed": True, "message": ""})
            error = nbt.error_output(cell)
            cell.outputs = []
            if error is not None:
                cell.outputs.append(nbformat.from_dict({
                    "output_type": "error", "ename": error.get("ename", "Error"), "evalue": "",
                    "traceback": [verdict["message"] or error.get("ename", "Error")]}))
            changed["graded_outputs_reduced"] += 1
    nbt.cap_outputs(nb, max_chars)
    public = public_lines(release)
    for cell in nb.cells:
        if cell.cell_type == "code" and leaks(nbt.output_text(cell), secrets, public):
            cell.outputs = [nbformat.from_dict({"output_type": "stream", "name": "stderr",
                                                    "text": "output removed by the grader: it quoted hidden tests\n"})]
            changed["redacted"] += 1
    return nb, changed


def html_text(page: str) -> str:
    """The visible text of an HTML page (tags dropped, entities decoded) for leak checks."""
    page = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", page)
    return html.unescape(re.sub(r"(?s)<[^>]+>", "", page))


def notes_banner(notes: list[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (f'<div class="course-grading-notes" style="border:2px solid #c60;padding:0.5em 1em;margin:1em;">'
            f"<strong>Notes from the grader</strong><ul>{items}</ul></div>")


def add_banner(page: str, notes: list[str]) -> str:
    """Insert the grader's notes right after ``<body>``."""
    banner = notes_banner(notes)
    if not banner:
        return page
    match = re.search(r"(?i)<body[^>]*>", page)
    return page[:match.end()] + banner + page[match.end():] if match else banner + page


def verdict_page(student: str, assignment: str, status: str, score: float, max_score: float, notes: list[str]) -> str:
    """A small feedback page for a submission that could not be graded normally."""
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(assignment)}: feedback</title>"
            f"</head><body><h1>{html.escape(assignment)}: {html.escape(student)}</h1>"
            f"<p>Status: <strong>{html.escape(status)}</strong>. Score: {score:g} / {max_score:g}.</p>"
            f"{notes_banner(notes)}</body></html>\n")
