"""The textbook page (CONTRIBUTING.md, "The textbook page"): what a reader sees of a chapter, checked in its source.

The checks cover the chapters already written to these conventions (``TEXTBOOK_CHAPTERS`` in
``tests/helpers/book.py``, a list that grows to all nine as the chapters are converted), so that main stays
green in between; the repository-wide checks (no tab or control characters) cover every chapter.
``tests/test_book_pages.py`` checks the same chapters in the built page (alt text, captions, no code scroll
bar, a reference list with links).
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.helpers.book import TEXTBOOK_CHAPTERS
from tools.book import REPO

CHAPTERS = sorted(p.stem for p in (REPO / "chapters").glob("[0-9]*.md"))
MAX_COLUMNS = 88
HIDDEN_TAGS = {"remove-cell", "remove-input", "hide-input"}
FIGURE_CALLS = re.compile(r"^(plt\.show\(\)|show_images\(|fig\.show\(\))", re.M)


def _text(stem: str) -> str:
    return (REPO / "chapters" / f"{stem}.md").read_text()


def code_cells(stem: str) -> list[dict]:
    """Every code cell of a chapter's MyST source: ``tags``, ``meta`` (its front matter or option lines) and
    ``code`` (the lines a reader would see)."""
    cells = []
    for m in re.finditer(r"```\{code-cell\}[^\n]*\n(.*?)```", _text(stem), re.S):
        body = m.group(1)
        if body.startswith("---\n"):
            meta, _, code = body[4:].partition("\n---\n")
        else:
            lines = body.split("\n")
            n = next((i for i, line in enumerate(lines) if not line.startswith(":")), len(lines))
            meta, code = "\n".join(lines[:n]), "\n".join(lines[n:])
        tags = re.search(r"tags:\s*\[(.*?)\]", meta)
        cells.append({"tags": {t.strip(" '\"") for t in tags.group(1).split(",")} if tags else set(),
                      "meta": meta, "code": code})
    return cells


def visible_code(stem: str, hidden: set[str] = HIDDEN_TAGS) -> list[str]:
    """Code lines of the cells without any of the ``hidden`` tags."""
    return [line for c in code_cells(stem) if not c["tags"] & hidden for line in c["code"].split("\n")]


@pytest.mark.parametrize("stem", CHAPTERS)
def test_no_tab_or_control_characters(stem):
    """A ``\\times`` typed through a shell becomes TAB + 'imes', and the page shows '1280 imes 7'."""
    bad = [(i + 1, repr(line)) for i, line in enumerate(_text(stem).split("\n"))
           if re.search(r"[\t\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", line)]
    assert not bad, f"chapters/{stem}.md has tab or control characters on lines {bad[:5]}"


@pytest.mark.parametrize("stem", TEXTBOOK_CHAPTERS)
def test_no_jet_colour_map(stem):
    assert not re.search(r"""['"]jet['"]""", _text(stem)), f"chapters/{stem}.md uses 'jet': use viridis/inferno"


def test_converted_chapters_exist():
    assert set(TEXTBOOK_CHAPTERS) <= set(CHAPTERS)


@pytest.mark.parametrize("stem", TEXTBOOK_CHAPTERS)
def test_visible_code_fits_the_column(stem):
    """Also the code of ``hide-input`` cells, which a reader can open."""
    wide = [line for line in visible_code(stem, {"remove-cell", "remove-input"}) if len(line) > MAX_COLUMNS]
    assert not wide, f"{len(wide)} visible code lines over {MAX_COLUMNS} columns in {stem}, e.g. {wide[:2]}"


@pytest.mark.parametrize("stem", TEXTBOOK_CHAPTERS)
def test_plumbing_is_hidden(stem):
    plumbing = [line for line in visible_code(stem)
                if re.search(r"\b(glue|claim|spot_check|table)\(|json\.loads|CHECKPOINTS|use_book_style", line)]
    assert not plumbing, f"{stem}: plumbing in visible cells (hide it or move it to course_lib): {plumbing[:3]}"


@pytest.mark.parametrize("stem", TEXTBOOK_CHAPTERS)
def test_uses_the_book_style(stem):
    assert any("use_book_style()" in c["code"] for c in code_cells(stem)), f"{stem} never calls use_book_style()"


@pytest.mark.parametrize("stem", TEXTBOOK_CHAPTERS)
def test_every_figure_is_numbered_captioned_and_described(stem):
    text = _text(stem)
    problems = []
    names = []
    for cell in code_cells(stem):
        if cell["tags"] & {"remove-cell", "remove-output"} or not FIGURE_CALLS.search(cell["code"]):
            continue
        meta = yaml.safe_load(cell["meta"]) if cell["meta"].strip() and not cell["meta"].startswith(":") else {}
        mystnb = (meta or {}).get("mystnb", {})
        name = mystnb.get("figure", {}).get("name")
        caption = mystnb.get("figure", {}).get("caption")
        alt = mystnb.get("image", {}).get("alt")
        first = cell["code"].strip().split("\n")[0][:60]
        if not (name and caption and alt):
            problems.append(f"the figure cell starting {first!r} lacks mystnb figure name/caption or image alt")
            continue
        if re.search(r"\.(png|jpe?g|svg)\b", alt) or len(alt) < 20:
            problems.append(f"{name}: alt text must describe the figure, got {alt!r}")
        names.append(name)
    for n in names:
        if f"{{numref}}`{n}`" not in text and not re.search(rf"{{numref}}`[^`]*<{re.escape(n)}>`", text):
            problems.append(f"figure {n} is never referred to by number ({{numref}}`{n}`)")
    assert names, f"{stem} has no numbered figure"
    assert not problems, f"{stem}: " + "; ".join(problems)


@pytest.mark.parametrize("stem", TEXTBOOK_CHAPTERS)
def test_references_and_bibliography(stem):
    text = _text(stem)
    keys = re.findall(r"\{cite:[pt]s?\}`([^`]+)`", text)
    assert keys, f"{stem} cites no paper with {{cite:p}} / {{cite:t}}"
    assert re.search(r"```\{bibliography\}", text), f"{stem} has no bibliography directive"
    bib = (REPO / "references.bib").read_text()
    prefix = re.search(r":keyprefix:\s*(\S+)", text)
    for key in {k.strip() for group in keys for k in group.split(",")}:
        bare = key[len(prefix.group(1)):] if prefix and key.startswith(prefix.group(1)) else key
        entry = re.search(rf"@\w+\{{{re.escape(bare)},(.*?)\n\}}", bib, re.S)
        assert entry, f"{stem} cites {bare!r}, which references.bib does not have"
        assert re.search(r"^\s*(doi|url|eprint)\s*=", entry.group(1), re.M), f"references.bib: {bare} has no link"


@pytest.mark.parametrize("stem", TEXTBOOK_CHAPTERS)
def test_check_your_understanding(stem):
    text = _text(stem)
    m = re.search(r"^## Check your understanding\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"{stem} has no '## Check your understanding' section"
    answers = re.findall(r":class:\s*dropdown", m.group(1))
    assert 4 <= len(answers) <= 6, f"{stem}: {len(answers)} questions with dropdown answers, expected 4-6"


@pytest.mark.parametrize("stem", TEXTBOOK_CHAPTERS)
def test_results_come_from_studies(stem):
    """Stored experiments are read through ``course_lib.studies.load``, never from the zoo's folder."""
    text = _text(stem)
    assert "zoo.CHECKPOINTS" not in text and "checkpoints/" not in text.replace("zoo/checkpoints/NAME", "")
