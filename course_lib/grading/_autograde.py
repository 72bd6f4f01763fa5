"""The nbgrader side of class grading, run in a child process (``python -m course_lib.grading._autograde``).

``template SOURCE ASSIGNMENT DEST`` generates the assignment once into a scratch course ``DEST`` (source,
release, gradebook) that every submission's unit copies. ``unit DIR`` autogrades the one submission that a
unit folder holds against that folder's own gradebook, renders feedback from a sanitized copy, and writes
``result.json``. Running in a child lets the caller enforce a hard time limit and survive any crash; and
if the caller dies first (a dask worker killed mid-task), the unit notices, kills its kernel, removes its
folder and exits, so no grading outlives the process that asked for it.
"""

from __future__ import annotations

import sys

# jsonschema (via nbformat) imports rfc3987_syntax when it is installed, which builds a parser at import time:
# about half of this process's start-up. nbformat never checks IRI formats, so this child process skips it.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import nbformat  # noqa: E402

from . import _feedback  # noqa: E402
from . import _notebook as nbt  # noqa: E402


def _api(root: Path, cell_timeout: float | None = None, kernel: dict | None = None):
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    from course_lib.grading.nbgrader_settings import configure

    c = Config()
    configure(c, root=root, source="source", release="release", db_url=f"sqlite:///{root / 'gradebook.db'}")
    if cell_timeout is not None:
        c.Execute.timeout = int(max(1, cell_timeout))
        c.ExecutePreprocessor.timeout = int(max(1, cell_timeout))
    c.Execute.error_on_timeout = {"ename": "CellTimeoutError", "evalue": f"the cell ran longer than {cell_timeout} s",
                                  "traceback": [f"CellTimeoutError: the cell ran longer than {cell_timeout} s"]}
    if kernel is not None:  # a unit: the kernel runs jailed and bounded (see ._kernel)
        from nbconvert.preprocessors import ClearMetadataPreprocessor
        from nbgrader.preprocessors import (
            AssignLatePenalties,
            CheckCellMetadata,
            IgnorePattern,
            LimitOutput,
            SaveAutoGrades,
        )

        from . import _kernel

        _kernel.configure(kernel)
        c.Autograde.autograde_preprocessors = [_kernel.BoundedExecute, IgnorePattern, ClearMetadataPreprocessor,
                                               LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    return NbGraderAPI(config=c)


def make_template(source_root: Path, assignment: str, dest: Path) -> None:
    """Copy ``source_root/assignment`` into ``dest/source`` and generate its release and gradebook."""
    src = source_root / assignment
    if not (src / f"{assignment}.ipynb").is_file():
        raise FileNotFoundError(f"no source notebook {src / (assignment + '.ipynb')}")
    shutil.copytree(src, dest / "source" / assignment,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", ".*"))
    result = _api(dest).generate_assignment(assignment, force=True)
    if not result["success"]:
        raise RuntimeError(f"nbgrader could not generate {assignment}:\n{result.get('error')}\n{result.get('log')}")


def grade_unit(unit: Path) -> dict:
    spec = json.loads((unit / "unit.json").read_text())
    name, student = spec["assignment"], spec["student"]
    started = time.monotonic()
    api = _api(unit, spec["cell_timeout"], spec.get("kernel"))
    result = api.autograde(name, student, force=True)
    from . import _kernel

    out: dict = {"success": bool(result["success"]), "error": str(result.get("error") or ""),
                 "log": str(result.get("log") or "")[-30000:], "autograde_seconds": time.monotonic() - started,
                 "kernel_exits": _kernel.exit_codes(), "output_capped": sorted(set(_kernel.EVENTS["capped"]))}
    notebook = unit / "autograded" / student / name / f"{name}.ipynb"
    if not out["success"] or not notebook.is_file():
        out["success"] = False
        return out
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{unit / 'gradebook.db'}") as gb:
        submission = gb.find_submission(name, student)
        out["grades"] = [{"cell": g.name, "notebook": g.notebook.name, "auto_score": g.auto_score,
                          "max_score": g.max_score, "needs_manual_grade": bool(g.needs_manual_grade)}
                         for snb in submission.notebooks for g in snb.grades]
        out["comments"] = [{"cell": c.name, "notebook": c.notebook.name, "auto_comment": c.auto_comment}
                           for snb in submission.notebooks for c in snb.comments]
        out["timestamp"] = str(submission.timestamp) if submission.timestamp else None
    graded = nbformat.read(notebook, as_version=4)
    source = nbformat.read(unit / "source" / name / f"{name}.ipynb", as_version=4)
    release = nbformat.read(unit / "release" / name / f"{name}.ipynb", as_version=4)
    out["verdicts"] = _feedback.cell_verdicts(graded)
    out["timeouts"] = [nbt.cell_label(graded, i) for i, c in enumerate(graded.cells)
                       if "CellTimeoutError" in nbt.error_names(c)]
    marker = "... Output truncated ..."  # nbgrader's LimitOutput cut more than its line limit
    cut_by_nbgrader = {i for i, c in enumerate(graded.cells) if marker in nbt.output_text(c)}
    out["errors"] = [f"{nbt.cell_label(graded, i)}: "
                     + nbt.describe_error(e, c.source, nbt.failing_line(e, c.get("execution_count")))
                     for i, c in enumerate(graded.cells)
                     if not nbt.is_grade(c) and (e := nbt.error_output(c)) is not None]
    secrets = _feedback.secret_lines(source, release)
    instructor = graded
    out["truncated"] = len(cut_by_nbgrader | set(nbt.cap_outputs(instructor, spec["max_output_chars"])))
    nbformat.write(instructor, unit / "instructor.ipynb")
    safe, changed = _feedback.sanitize(graded, release, secrets, spec["max_output_chars"])
    out["redacted"] = changed["redacted"]
    nbformat.write(safe, notebook)
    started = time.monotonic()
    feedback = api.generate_feedback(name, student, force=True)
    out["feedback_seconds"] = time.monotonic() - started
    page = unit / "feedback" / student / name / f"{name}.html"
    out["feedback"] = bool(feedback["success"]) and page.is_file()
    if not out["feedback"]:
        out["feedback_error"] = str(feedback.get("error") or "")[-2000:]
    return out


def _orphan_watch(unit: Path, every: float = 0.5) -> None:
    """Exit (killing this unit's kernel and removing its folder) as soon as the process that started this one
    is gone: its parent id changes when it dies."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        from ._processes import UNIT_ENV, kill_leftovers

        kernel = sys.modules.get("course_lib.grading._kernel")
        if kernel is not None:
            kernel.SETTINGS["stopping"] = True  # no new kernel from here on
        marker = os.environ.get(UNIT_ENV, unit.name)
        kill_leftovers(marker, spare=os.getpid())
        time.sleep(every)  # a sandbox that was starting during the first sweep has its processes by now
        kill_leftovers(marker, spare=os.getpid())
        shutil.rmtree(unit, ignore_errors=True)
        os._exit(3)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    if argv[:1] == ["template"] and len(argv) == 4:
        make_template(Path(argv[1]), argv[2], Path(argv[3]))
        return 0
    if argv[:1] == ["unit"] and len(argv) == 2:
        unit = Path(argv[1])
        _orphan_watch(unit)
        try:
            out = grade_unit(unit)
        except Exception:  # reported to the parent in result.json, never lost
            out = {"success": False, "error": "grader exception", "log": traceback.format_exc()[-30000:]}
        (unit / "result.json").write_text(json.dumps(out))
        return 0
    print("usage: python -m course_lib.grading._autograde {template SOURCE ASSIGNMENT DEST | unit DIR}",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
