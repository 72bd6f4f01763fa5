"""Checks on the built HTML (run by ``make book``): launch buttons, local MathJax, every page present."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote

from ._book import REPO, repository_url


def chapters_in_toc() -> list[str]:
    toc = (REPO / "_toc.yml").read_text()
    return re.findall(r"file:\s*(chapters/\S+)", toc)


def check(html_dir: Path) -> list[str]:
    problems = []
    url = repository_url()
    slug = url.split("github.com/")[-1].strip("/")
    if not (html_dir / "_static" / "mathjax" / "tex-chtml.js").is_file():
        problems.append("MathJax is not served locally (_static/mathjax/tex-chtml.js missing)")
    for stem in chapters_in_toc():
        page = html_dir / f"{stem}.html"
        if not page.is_file():
            problems.append(f"{page} was not built")
            continue
        html = page.read_text()
        colab = re.findall(r'https://colab\.research\.google\.com/github/([^"\']+)', html)
        binder = re.findall(r'https://mybinder\.org/v2/gh/([^"\']+)', html)
        if not colab or not binder:
            problems.append(f"{page.name}: no Colab or Binder launch button")
        for link in colab:
            path = unquote(link).split("/blob/", 1)[-1].split("/", 1)[-1]
            if not link.startswith(slug) or not path.endswith(".ipynb") or not (REPO / path).is_file():
                problems.append(f"{page.name}: Colab button points at {link!r}, not an .ipynb in the repository")
        for link in binder:
            m = re.search(r"(?:filepath=|urlpath=(?:lab/)?tree/)([^&\"']+)", unquote(link))
            path = m.group(1) if m else ""
            if not path.endswith(".ipynb") or not (REPO / path).is_file():
                problems.append(f"{page.name}: Binder button points at {link!r}, not an .ipynb in the repository")
        if "cdn.jsdelivr.net/npm/mathjax" in html or "mathjax@3/es5" in html:
            problems.append(f"{page.name}: loads MathJax from a CDN")
        if "mathjax/tex-chtml.js" not in html:
            problems.append(f"{page.name}: does not load the local MathJax")
    return problems


def main() -> int:
    html_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "_build/html")
    problems = check(html_dir)
    for p in problems:
        print("book check:", p)
    print(f"book check: {len(chapters_in_toc())} chapter page(s), {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
