"""Sphinx fixes for the Jupyter Book 1 build, found by the browser tests (tests/test_book_pages.py).

sphinx-thebe adds its configuration script once per build; with the execution cache, later builds add it
again, and a page that declares ``const THEBE_JS_URL`` twice stops with a SyntaxError. Each page keeps one
copy of every script.
"""


def _one_of_each(app, pagename, templatename, context, doctree):
    seen, scripts = set(), []
    for script in context.get("script_files", []):
        key = (getattr(script, "filename", None) or "", getattr(script, "attributes", {}).get("body", ""))
        if key not in seen:
            seen.add(key)
            scripts.append(script)
    context["script_files"] = scripts


def setup(app):
    app.connect("html-page-context", _one_of_each, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
