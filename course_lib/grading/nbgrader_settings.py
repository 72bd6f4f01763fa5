"""The course's nbgrader settings, in one place: ``nbgrader_config.py`` at the repository root, the release
pipeline (``tools/exercises.py``) and class grading all apply :func:`configure`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["CELL_TIMEOUT", "configure", "ensure_tools_on_path"]

CELL_TIMEOUT = 180  # seconds per cell when nbgrader executes a notebook (CPU work in exercises)


def configure(c, root: str | Path | None = None, source: str = "solutions", release: str = "exercises",
              db_url: str | None = None) -> None:
    """Apply the course's nbgrader settings to a traitlets config ``c`` (``root``: the course folder, default the
    current directory, where nbgrader runs)."""
    root = Path(root) if root is not None else Path.cwd()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.source_directory = source
    c.CourseDirectory.release_directory = release
    c.CourseDirectory.db_url = db_url or f"sqlite:///{root / 'gradebook.db'}"
    # Only notebooks travel into the release: a paired .md of a solution would leak it.
    c.CourseDirectory.include = ["*.ipynb"]
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "*.md", "*.py", "feedback", ".*"]
    c.ExecutePreprocessor.timeout = CELL_TIMEOUT
    c.Execute.timeout = CELL_TIMEOUT
    c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
    c.ClearHiddenTests.begin_test_delimeter = "BEGIN HIDDEN TESTS"
    c.ClearHiddenTests.end_test_delimeter = "END HIDDEN TESTS"


def ensure_tools_on_path() -> None:
    """nbgrader runs ``alembic`` as a subprocess when it creates a gradebook: the interpreter's ``bin`` must be on PATH."""
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
