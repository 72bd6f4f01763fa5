"""The nbgrader pipeline: ``solutions/`` (instructor source) -> ``exercises/`` (student release).

``nbgrader_config.py`` at the repository root calls :func:`configure`, so the command-line tools and the
tests share one configuration. ``python -m course_lib._exercises generate [NAME ...]`` regenerates the
committed student versions; it works in a temporary course directory so that no gradebook is left behind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CELL_TIMEOUT = 180  # seconds per cell when nbgrader executes a notebook (CPU work in exercises)


def configure(c, root: str | Path | None = None, source: str = "solutions", release: str = "exercises",
              db_url: str | None = None) -> None:
    """Apply the course's nbgrader settings to a traitlets config ``c``."""
    root = Path(root) if root is not None else REPO
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


def assignments() -> list[str]:
    """Assignment names: the folders of ``solutions/`` that hold a notebook of the same name."""
    src = REPO / "solutions"
    return sorted(p.name for p in src.iterdir() if (p / f"{p.name}.ipynb").is_file()) if src.is_dir() else []


def ensure_tools_on_path() -> None:
    """nbgrader runs ``alembic`` as a subprocess when it creates a gradebook: the interpreter's ``bin`` must be on PATH."""
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def _api(course: Path):
    ensure_tools_on_path()
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    c = Config()
    configure(c, root=course, source="source", release="release", db_url=f"sqlite:///{course / 'gradebook.db'}")
    return NbGraderAPI(config=c)


def generate_release(names: list[str], course: Path) -> dict[str, Path]:
    """Generate the student versions of ``names`` inside the course directory ``course``; return their folders."""
    out = {}
    for name in names:
        src = REPO / "solutions" / name
        if not (src / f"{name}.ipynb").is_file():
            raise ValueError(f"no solution notebook solutions/{name}/{name}.ipynb")
        dst = course / "source" / name
        dst.mkdir(parents=True, exist_ok=True)
        for nb in src.glob("*.ipynb"):
            shutil.copy2(nb, dst / nb.name)
    api = _api(course)
    for name in names:
        result = api.generate_assignment(name, force=True)
        if not result["success"]:
            raise RuntimeError(f"nbgrader could not generate {name}:\n{result.get('error')}\n{result.get('log')}")
        out[name] = course / "release" / name
    return out


def generate(names: list[str] | None = None) -> None:
    """Regenerate ``exercises/NAME/`` for the given assignments (all by default)."""
    names = names or assignments()
    with tempfile.TemporaryDirectory() as tmp:
        released = generate_release(names, Path(tmp))
        for name, folder in released.items():
            dst = REPO / "exercises" / name
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(folder, dst)
            print(f"exercises/{name}: " + ", ".join(sorted(p.name for p in dst.iterdir())))


def autograde(notebook: Path, name: str, course: Path, student: str = "student") -> tuple[float, float]:
    """Autograde one notebook as ``student``'s submission of ``name`` in ``course``; return (score, max_score).

    ``course`` must already hold the generated assignment (see :func:`generate_release`).
    """
    from nbgrader.api import Gradebook

    sub = course / "submitted" / student / name
    sub.mkdir(parents=True, exist_ok=True)
    shutil.copy2(notebook, sub / f"{name}.ipynb")
    api = _api(course)
    result = api.autograde(name, student, force=True)
    if not result["success"]:
        raise RuntimeError(f"autograding {notebook} failed:\n{result.get('error')}\n{result.get('log')}")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        submission = gb.find_submission(name, student)
        return float(submission.score), float(submission.max_score)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib._exercises", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    gen = sub.add_parser("generate", help="regenerate exercises/ from solutions/")
    gen.add_argument("names", nargs="*", help="assignments (default: all)")
    args = parser.parse_args(argv)
    generate(args.names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
