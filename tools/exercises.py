"""The nbgrader pipeline: ``solutions/`` (instructor source) -> ``exercises/`` (student release).

``nbgrader_config.py`` at the repository root and this module both apply
:func:`course_lib.grading.nbgrader_settings.configure`, so the command-line tools and the tests share one configuration.
``python -m tools.exercises generate [NAME ...]`` regenerates the
committed student versions; it works in a temporary course directory so that no gradebook is left behind.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from course_lib.grading.nbgrader_settings import configure, ensure_tools_on_path

from .book import REPO


def assignments() -> list[str]:
    """Assignment names: the folders of ``solutions/`` that hold a notebook of the same name."""
    src = REPO / "solutions"
    return sorted(p.name for p in src.iterdir() if (p / f"{p.name}.ipynb").is_file()) if src.is_dir() else []


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
    parser = argparse.ArgumentParser(prog="python -m tools.exercises", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    gen = sub.add_parser("generate", help="regenerate exercises/ from solutions/")
    gen.add_argument("names", nargs="*", help="assignments (default: all)")
    args = parser.parse_args(argv)
    generate(args.names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
