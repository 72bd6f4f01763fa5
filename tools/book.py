"""Book plumbing shared by tests and ``make book``: the repository URL and the Colab install cell."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # the repository root

COLAB_CELL = '''# In Colab, install the course library (Colab keeps its own torch); elsewhere this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+{url}"], check=True)'''


def repository_url(config: Path | None = None) -> str:
    """The repository URL, read from ``_config.yml`` (its one home)."""
    text = (config or REPO / "_config.yml").read_text()
    m = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", text, re.M)
    if not m:
        raise ValueError("_config.yml has no repository.url")
    return m.group(1)


def colab_cell(url: str | None = None) -> str:
    """The exact source of the first code cell of every chapter and exercise."""
    return COLAB_CELL.format(url=url or repository_url())
