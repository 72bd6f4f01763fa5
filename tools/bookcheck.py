"""Checks on the built HTML (run by ``make book``): launch buttons, local MathJax, every page present."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote

from .book import REPO, repository_url


def chapters_in_toc() -> list[str]:
    toc = (REPO / "_toc.yml").read_text()
    return re.findall(r"file:\s*((?:chapters|exercises)/\S+)", toc)


def launch_targets(html: str) -> dict[str, list[str]]:
    """The repository paths that a page's Colab and Binder buttons open."""
    url = repository_url()
    slug = url.split("github.com/")[-1].strip("/")
    targets: dict[str, list[str]] = {"colab": [], "binder": []}
    for link in re.findall(r'https://colab\.research\.google\.com/github/([^"\']+)', html):
        link = unquote(link)
        targets["colab"].append(link.split("/blob/", 1)[-1].split("/", 1)[-1] if link.startswith(slug) else link)
    for link in re.findall(r'https://mybinder\.org/v2/gh/([^"\']+)', html):
        m = re.search(r"(?:filepath=|urlpath=(?:lab/)?tree/)([^&\"']+)", unquote(link))
        targets["binder"].append(m.group(1) if m else link)
    return targets


def check(html_dir: Path) -> list[str]:
    problems = []
    if not (html_dir / "_static" / "mathjax" / "tex-chtml.js").is_file():
        problems.append("MathJax is not served locally (_static/mathjax/tex-chtml.js missing)")
    for stem in chapters_in_toc():
        page = html_dir / f"{stem}.html"
        if not page.is_file():
            problems.append(f"{page} was not built")
            continue
        html = page.read_text()
        targets = launch_targets(html)
        if not targets["colab"] or not targets["binder"]:
            problems.append(f"{page.name}: no Colab or Binder launch button")
        for kind, paths in targets.items():
            for path in paths:
                if not path.endswith(".ipynb") or not (REPO / path).is_file():
                    problems.append(f"{page.name}: {kind} button points at {path!r}, not an .ipynb in the repository")
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
    print(f"book check: {len(chapters_in_toc())} chapter and exercise page(s), {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
