"""Sphinx fixes for the Jupyter Book 1 build, found by the browser tests (tests/test_book_pages.py).

``static/book.css`` sizes code so that 88 columns fit the text column (the textbook page's limit).

Figures are numbered per chapter, "Fig. 1.3" for the third figure of chapter 1 (the chapters number their
tables "Table 1.2" in the same way). Sphinx's numfig counts figures across the whole book unless the toctree
is numbered, and a numbered toctree restarts in every part of ``_toc.yml`` and would number the headings a
second time; so the numbers Sphinx assigned are rewritten per document, in their order, with the chapter's
number (from ``chapters/NN_topic``) in front.

sphinx-thebe adds its configuration script once per build; with the execution cache, later builds add it
again, and a page that declares ``const THEBE_JS_URL`` twice stops with a SyntaxError. Each page keeps one
copy of every script.
"""

import re
from pathlib import Path


def _one_of_each(app, pagename, templatename, context, doctree):
    seen, scripts = set(), []
    for script in context.get("script_files", []):
        key = (getattr(script, "filename", None) or "", getattr(script, "attributes", {}).get("body", ""))
        if key not in seen:
            seen.add(key)
            scripts.append(script)
    context["script_files"] = scripts


def _per_chapter_numbers(app, env):
    for docname, figtypes in env.toc_fignumbers.items():
        chapter = re.match(r"chapters/(\d+)_", docname)
        for ids in figtypes.values():
            for k, figure_id in enumerate(sorted(ids, key=ids.get), start=1):
                ids[figure_id] = (int(chapter.group(1)), k) if chapter else (k,)
    return []


def _static_folder(app):
    # only CSS lives there: JB1 would add every .js file of a static folder to every page
    app.config.html_static_path.append(str(Path(__file__).resolve().parent / "static"))


def setup(app):
    app.connect("builder-inited", _static_folder)
    app.add_css_file("book.css")
    app.connect("html-page-context", _one_of_each, priority=900)
    app.connect("env-get-updated", _per_chapter_numbers, priority=900)  # after Sphinx assigned its numbers
    return {"parallel_read_safe": True, "parallel_write_safe": True}
