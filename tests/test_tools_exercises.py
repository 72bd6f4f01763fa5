"""The nbgrader pipeline, driven through nbgrader's Python API in a temporary course directory.

* the committed ``exercises/`` equal a fresh generation from ``solutions/``;
* nothing of the solutions or hidden tests appears in ``exercises/``, and only notebooks are released;
* autograding a solution gives full marks, autograding the untouched exercise gives 0 without a crash.
"""

import re
from pathlib import Path

import nbformat
import pytest

from tools.exercises import assignments, autograde, generate_release

REPO = Path(__file__).resolve().parent.parent
NAMES = assignments()
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    generate_release(NAMES, root)
    return root


def _comparable(path: Path):
    nb = nbformat.read(path, as_version=4)
    return [(c.cell_type, c.source, dict(c.metadata.get("nbgrader", {}))) for c in nb.cells]


def _regions(text: str, begin: str, end: str) -> list[str]:
    return re.findall(rf"{begin}\n(.*?)\n[ \t]*#* ?{end}", text, re.S)


def test_every_solution_has_a_release():
    assert NAMES, "no assignments under solutions/"
    for name in NAMES:
        assert (REPO / "exercises" / name / f"{name}.ipynb").is_file(), f"exercises/{name} missing: make exercises"


@pytest.mark.parametrize("name", NAMES)
def test_committed_exercise_equals_fresh_generation(course, name):
    fresh = course / "release" / name
    committed = REPO / "exercises" / name
    assert sorted(p.name for p in fresh.iterdir()) == sorted(p.name for p in committed.iterdir())
    for nb in fresh.glob("*.ipynb"):
        assert _comparable(committed / nb.name) == _comparable(nb), f"exercises/{name} is stale: make exercises"


@pytest.mark.parametrize("name", NAMES)
def test_release_holds_only_notebooks_and_leaks_nothing(name):
    released = list((REPO / "exercises" / name).rglob("*"))
    assert all(p.suffix == ".ipynb" for p in released if p.is_file()), released
    source = (REPO / "solutions" / name / f"{name}.ipynb").read_text()
    source_nb = nbformat.read(REPO / "solutions" / name / f"{name}.ipynb", as_version=4)
    text = "\n".join(p.read_text() for p in released if p.is_file())
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    secret_lines, public_lines = [], set()
    for cell in source_nb.cells:
        public = re.sub(r"### BEGIN (SOLUTION|HIDDEN TESTS).*?### END (SOLUTION|HIDDEN TESTS)", "", cell.source, flags=re.S)
        public_lines |= {ln.strip() for ln in public.splitlines()}
        secret_lines += [ln.strip() for block in _regions(cell.source, "### BEGIN SOLUTION", "END SOLUTION")
                         for ln in block.splitlines()]
        secret_lines += [ln.strip() for block in _regions(cell.source, "### BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
                         for ln in block.splitlines()]
    assert secret_lines, f"{name}: found no solution or hidden-test regions in the source"
    released_nb = "\n".join(c.source for p in released if p.suffix == ".ipynb"
                            for c in nbformat.read(p, as_version=4).cells)
    released_lines = {ln.strip() for ln in released_nb.splitlines()}
    leaked = [ln for ln in secret_lines
              if len(ln) > 12 and ln in released_lines and ln not in public_lines and not ln.startswith("#")]
    assert not leaked, f"{name}: solution or hidden-test lines appear in the release: {leaked[:3]}"
    assert source  # the source itself was readable


@pytest.mark.parametrize("name", NAMES)
def test_solution_scores_full_marks(course, name):
    score, max_score = autograde(REPO / "solutions" / name / f"{name}.ipynb", name, course, student="solution")
    assert max_score > 0 and score == max_score


@pytest.mark.parametrize("name", NAMES)
def test_untouched_exercise_scores_zero(course, name):
    score, max_score = autograde(REPO / "exercises" / name / f"{name}.ipynb", name, course, student="blank")
    assert max_score > 0 and score == 0
