"""The repository itself (not a module): paired notebooks in sync, no outputs committed, every notebook opens
with the Colab cell, the table of contents, the README and the pinned requirements."""

import json
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from tools.book import colab_cell

REPO = Path(__file__).resolve().parent.parent
CHAPTER_MDS = sorted(REPO.glob("chapters/[0-9]*.md"))
SOLUTION_MDS = sorted(REPO.glob("solutions/*/*.md"))
PAIRED = CHAPTER_MDS + SOLUTION_MDS
ALL_NBS = sorted(REPO.glob("chapters/[0-9]*.ipynb")) + sorted(REPO.glob("solutions/*/*.ipynb")) + sorted(
    REPO.glob("exercises/*/*.ipynb")
)


def _rel(p: Path) -> str:
    return str(p.relative_to(REPO))


def _cells(nb):
    out = []
    for c in nb.cells:
        meta = {k: v for k, v in c.metadata.items() if k in ("nbgrader", "tags")}
        out.append((c.cell_type, c.source.strip(), json.dumps(meta, sort_keys=True)))
    return out


def test_there_are_chapters_and_solutions():
    assert CHAPTER_MDS and SOLUTION_MDS


@pytest.mark.parametrize("md", PAIRED, ids=_rel)
def test_pair_exists_and_cells_match(md):
    ipynb = md.with_suffix(".ipynb")
    assert ipynb.is_file(), f"{_rel(md)} has no paired {ipynb.name}: run `make sync`"
    from_md = jupytext.read(md)
    from_nb = nbformat.read(ipynb, as_version=4)
    assert _cells(from_md) == _cells(from_nb), f"{_rel(md)} and {ipynb.name} differ: run `make sync`"
    assert from_nb.metadata.get("jupytext", {}).get("formats") == "ipynb,md:myst"


@pytest.mark.parametrize("nb_path", sorted(REPO.glob("chapters/*.ipynb")) + sorted(REPO.glob("solutions/*/*.ipynb")), ids=_rel)
def test_ipynb_has_its_markdown_partner(nb_path):
    assert nb_path.with_suffix(".md").is_file(), f"{_rel(nb_path)} has no .md partner"


@pytest.mark.parametrize("nb_path", ALL_NBS, ids=_rel)
def test_committed_notebooks_have_no_outputs(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs, f"{_rel(nb_path)} is committed with outputs"
            assert cell.execution_count is None, f"{_rel(nb_path)} has execution counts"


@pytest.mark.parametrize("nb_path", ALL_NBS, ids=_rel)
def test_first_code_cell_installs_course_lib_only_in_colab(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.source.strip() == colab_cell().strip(), f"{_rel(nb_path)}: first code cell is not the Colab cell"


def test_toc_lists_every_chapter_and_only_existing_files():
    toc = (REPO / "_toc.yml").read_text()
    files = re.findall(r"file:\s*(\S+)", toc)
    for f in files:
        # a chapter is a paired .md; an exercise page is the released .ipynb itself
        suffix = ".ipynb" if f.startswith("exercises/") else ".md"
        assert (REPO / f"{f}{suffix}").is_file(), f"_toc.yml lists {f}, which does not exist"
    for md in CHAPTER_MDS:
        assert f"chapters/{md.stem}" in files, f"{_rel(md)} is not in _toc.yml"
        assert f"exercises/{md.stem}/{md.stem}" in files, f"the exercise of {_rel(md)} has no page in _toc.yml"
        assert f"{{doc}}`its graded exercise <../exercises/{md.stem}/{md.stem}>`" in md.read_text(), \
            f"{_rel(md)} does not end with a link to its exercise page"


def test_readme_opens_with_the_two_commands():
    head = (REPO / "README.md").read_text()[:1500]
    assert head.index("make book") < 1500 and head.index("make test") < 1500
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_requirements_are_pinned():
    lines = [ln.strip() for ln in (REPO / "requirements.txt").read_text().splitlines()]
    reqs = [ln for ln in lines if ln and not ln.startswith("#")]
    assert reqs[-1] == "-e ."
    for ln in reqs[:-1]:
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][0-9A-Za-z.+\-]*", ln), f"not an exact pin: {ln}"
    names = {ln.split("==")[0].lower() for ln in reqs[:-1]}
    needed = {"torch", "torchvision", "jupyter-book", "jupytext", "nbgrader", "nbval", "pytest", "numpy", "scipy",
              "matplotlib", "scikit-image", "scikit-learn", "tqdm", "ipykernel"}
    assert needed <= names, f"missing pins: {needed - names}"
