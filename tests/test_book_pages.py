"""The book as a reader sees it: every page of ``_build/html`` opened in headless Chromium.

For every page in ``_toc.yml``: the figures the chapter draws are on the page and loaded, math is typeset by
MathJax, the launch buttons point at an ``.ipynb`` of the repository, the page requests nothing from outside
the site, the console shows no error, and exercise pages show no solution. A full-page screenshot of each
page is written to ``_build/screenshots/`` for a person to look at.

Needs ``make book`` first and Debian's ``chromium`` + ``chromium-driver``; without them these tests skip with
a reason, except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import re
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from tests.helpers.book import TEXTBOOK_CHAPTERS
from tools.book import REPO
from tools.bookcheck import launch_targets

HTML = REPO / "_build" / "html"
CACHE = REPO / "_build" / ".jupyter_cache"
SCREENSHOTS = REPO / "_build" / "screenshots"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser tests must run)")
    pytest.skip(reason)


def toc_pages() -> list[str]:
    toc = (REPO / "_toc.yml").read_text()
    root = re.search(r"^root:\s*(\S+)", toc, re.M).group(1)
    return [root, *re.findall(r"file:\s*(\S+)", toc)]


def _source(page: str) -> Path:
    for suffix in (".md", ".ipynb"):
        path = REPO / f"{page}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(page)


def _is_notebook(page: str) -> bool:
    path = _source(page)
    return path.suffix == ".ipynb" or "jupytext:" in path.read_text()[:400]


def _code_cells(page: str) -> list[tuple[list[str], str]]:
    """(tags, source) of every code cell of a page's source."""
    path = _source(page)
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text())
        return [(c.get("metadata", {}).get("tags", []), "".join(c["source"]))
                for c in nb["cells"] if c["cell_type"] == "code"]
    cells = []
    for m in re.finditer(r"```\{code-cell\}[^\n]*\n(.*?)```", path.read_text(), re.S):
        body = m.group(1)
        tags = re.search(r"^:tags:\s*\[(.*?)\]", body, re.M)
        cells.append(([t.strip(" '\"") for t in tags.group(1).split(",")] if tags else [], body))
    return cells


def executed_notebook(page: str) -> dict | None:
    """The notebook as the book build executed it (the execution cache's latest record of the page)."""
    if not (CACHE / "global.db").is_file():
        return None
    with sqlite3.connect(CACHE / "global.db") as db:
        row = db.execute("SELECT hashkey FROM nbcache WHERE uri = ? ORDER BY accessed DESC LIMIT 1",
                         (str(_source(page)),)).fetchone()
    path = CACHE / "executed" / row[0] / "base.ipynb" if row else None
    return json.loads(path.read_text()) if path and path.is_file() else None


def figure_outputs(nb: dict) -> int:
    """The ``image/png`` outputs an executed notebook shows (cells removed from the page not counted)."""
    count = 0
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] != "code" or {"remove-cell", "remove-output"} & set(tags):
            continue
        count += sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))
    return count


def figure_cells(page: str) -> int:
    """Visible code cells that always draw a figure (``plt.show()`` at the top level of the cell; one inside a
    ``try``/``if`` may be an online-only figure)."""
    return sum(bool(re.search(r"^plt\.show\(\)", src, re.M)) and not {"remove-cell", "remove-output"} & set(tags)
               for tags, src in _code_cells(page))


@pytest.fixture(scope="module")
def site():
    if not (HTML / "index.html").is_file():
        _unavailable(f"{HTML} is missing: run `make book` first")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the test reports what matters
        pass


@pytest.fixture(scope="module")
def browser():
    if not (shutil.which("chromium") or Path(CHROMIUM).is_file()) or not Path(CHROMEDRIVER).is_file():
        _unavailable("headless Chromium is not installed: `apt-get install chromium chromium-driver` (as root)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed: `make venv` installs it from requirements.txt")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", "--no-first-run", "--window-size=1280,1000"):
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _open(browser, url: str):
    browser.get_log("performance")  # drop what earlier pages requested
    browser.get_log("browser")
    browser.get(url)
    # MathJax typesets after load; wait for it (and for the images) before looking.
    browser.set_script_timeout(60)
    browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const images = Promise.all([...document.images].map(im => im.complete ? null :
            new Promise(r => { im.onload = im.onerror = r; })));
        const math = (window.MathJax && MathJax.startup && MathJax.startup.promise) || Promise.resolve();
        Promise.all([images, math]).then(() => done(true), () => done(false));
    """)


def _requests(browser) -> list[str]:
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _screenshot(browser, path: Path):
    """The whole page, as tall as it is (at most 40000 px), 1280 px wide."""
    height = min(int(browser.execute_script("return document.documentElement.scrollHeight")), 40000)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": False})
    try:
        shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def _solution_lines(page: str) -> list[str]:
    """Long lines of the solution and the hidden tests that the released notebook does not contain."""
    name = Path(page).name
    solution = REPO / "solutions" / name / f"{name}.ipynb"
    release = (REPO / f"{page}.ipynb").read_text()
    lines, inside = [], False
    for cell in json.loads(solution.read_text())["cells"]:
        for line in "".join(cell["source"]).splitlines():
            if re.search(r"### BEGIN (SOLUTION|HIDDEN TESTS)", line):
                inside = True
            elif re.search(r"### END (SOLUTION|HIDDEN TESTS)", line):
                inside = False
            elif inside and len(line.strip()) >= 25 and json.dumps(line.strip())[1:-1] not in release:
                lines.append(line.strip())
    return lines


@pytest.mark.parametrize("page", toc_pages())
def test_page_as_a_reader_sees_it(page, site, browser):
    url = f"{site}/{page}.html"
    _open(browser, url)
    problems = []

    # Figures: every image output of the executed notebook is on the page, loaded.
    figures = browser.execute_script("""
        return [...document.querySelectorAll('.cell_output img')].map(
            im => [im.complete && im.naturalWidth > 0, im.getAttribute('src')]);""")
    broken = [src for ok, src in figures if not ok]
    if broken:
        problems.append(f"figures that did not load: {broken[:3]}")
    if page.startswith("chapters/"):
        executed = executed_notebook(page)
        if executed is None:
            problems.append("the execution cache holds no executed copy of the page: rebuild with `make book`")
            executed = {"cells": []}
        expected, drawn = figure_outputs(executed), figure_cells(page)
        if len(figures) != expected:
            problems.append(f"{len(figures)} figures on the page, the executed notebook has {expected}")
        if len(figures) < max(drawn, 1):
            problems.append(f"{len(figures)} figures on the page, but {drawn} visible cells call plt.show()")

    # Math: typeset by MathJax, nothing raw left in the prose.
    has_math = browser.execute_script("return document.querySelectorAll('.math, mjx-container').length")
    typeset = browser.execute_script("return document.querySelectorAll('mjx-container').length")
    if has_math and not typeset:
        problems.append("the page has math but MathJax typeset none of it")
    prose = browser.execute_script("""
        const main = (document.querySelector('main') || document.body).cloneNode(true);
        main.querySelectorAll('pre, code, mjx-container, script, .cell_output').forEach(e => e.remove());
        return main.innerText;""")
    for raw in ("$$", "\\(", "\\["):
        if raw in prose:
            problems.append(f"raw math {raw!r} left in the text: ...{prose[max(prose.index(raw) - 40, 0):][:80]}...")

    # Launch buttons point at an .ipynb of the repository (notebook pages only).
    if _is_notebook(page):
        html = browser.page_source
        targets = launch_targets(html)
        if not targets["colab"] or not targets["binder"]:
            problems.append("no Colab or Binder launch button")
        for kind, paths in targets.items():
            for path in paths:
                if path != f"{page}.ipynb":
                    problems.append(f"the {kind} button opens {path!r}, not {page}.ipynb")

    # Nothing from outside the site; no console errors.
    outside = [u for u in _requests(browser) if not u.startswith((site, "data:", "blob:", "about:"))]
    if outside:
        problems.append(f"requests outside the site: {outside[:5]}")
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    if errors:
        problems.append(f"console errors: {errors[:3]}")

    # The textbook page (CONTRIBUTING.md): chapters converted to it are checked as a reader sees them.
    if page.startswith("chapters/") and Path(page).name in TEXTBOOK_CHAPTERS:
        problems += textbook_problems(browser)

    # Exercise pages show the exercise as released: no solution, no hidden test.
    if page.startswith("exercises/"):
        text = browser.execute_script("return document.body.innerText")
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS"):
            if marker in text:
                problems.append(f"the exercise page shows {marker!r}")
        leaked = [line for line in _solution_lines(page) if line in text]
        if leaked:
            problems.append(f"solution lines on the exercise page: {leaked[:3]}")

    _screenshot(browser, SCREENSHOTS / f"{page.replace('/', '__')}.png")
    assert not problems, f"{page}: " + "; ".join(problems)


def textbook_problems(browser) -> list[str]:
    """Figures numbered, captioned and described; code blocks that fit the column; a linked reference list."""
    problems = []
    figures = browser.execute_script("""
        return [...document.querySelectorAll('main .cell_output img')].map(im => {
            const fig = im.closest('figure');
            const cap = fig && fig.querySelector('figcaption');
            return [im.getAttribute('alt') || '', cap ? cap.innerText : null, im.getAttribute('src')];
        });""")
    for alt, caption, src in figures:
        if len(alt.strip()) < 20 or re.search(r"\.(png|jpe?g|svg)$", alt.strip()) or "/" in alt:
            problems.append(f"figure {src} has no descriptive alt text (alt={alt!r})")
        if not caption or not re.match(r"Fig\.? ?\d", caption.strip()):
            problems.append(f"figure {src} has no numbered caption (caption={caption!r})")
    scrolling = browser.execute_script("""
        return [...document.querySelectorAll('main pre')]
            .filter(p => p.clientWidth > 0 && p.scrollWidth > p.clientWidth + 1)
            .map(p => p.innerText.split(String.fromCharCode(10)).reduce((a, b) => b.length > a.length ? b : a, ''));""")
    if scrolling:
        problems.append(f"{len(scrolling)} code block(s) scroll sideways, e.g. {scrolling[:2]}")
    monospace_tables = browser.execute_script("""
        return [...document.querySelectorAll('main .cell_output pre')].filter(
            p => (p.innerText.match(/\\n/g) || []).length >= 3 && / {3,}\\S+ {3,}\\S/.test(p.innerText)).length;""")
    if monospace_tables:
        problems.append(f"{monospace_tables} output(s) look like a table printed as text: use course_lib.book.table")
    links = browser.execute_script("""
        const refs = document.querySelector('main .bibliography, main #references');
        return refs ? [...refs.querySelectorAll('a[href]')].map(a => a.href) : null;""")
    if links is None:
        problems.append("no reference list")
    elif not any(re.search(r"doi\.org|arxiv\.org|https?://", href) for href in links):
        problems.append("the reference list has no links to the papers")
    return problems


def test_search_finds_a_word_of_chapter_1(site, browser):
    browser.get(f"{site}/search.html?q=whitening")
    browser.set_script_timeout(60)
    links = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const t0 = Date.now();
        (function poll() {
            const hits = [...document.querySelectorAll('#search-results a')].map(a => a.getAttribute('href'));
            if (hits.length || Date.now() - t0 > 30000) done(hits); else setTimeout(poll, 200);
        })();""")
    assert any("chapters/01_preprocessing" in (href or "") for href in links), \
        f"searching 'whitening' did not find chapter 1; results: {links[:5]}"
