"""Keep the book's execution cache true to the code (run by ``make book`` before ``jupyter-book build``).

jupyter-book keys each executed notebook in ``_build/.jupyter_cache`` on the notebook's text alone, so a change
to what the chapters import — ``course_lib``, a zoo checkpoint, a study's stored results — would leave the old
outputs (and glued numbers) in the book. This module hashes those inputs; when the hash differs from the one
stored next to the cache, the cache is emptied, and so is Sphinx's environment (``_build/.doctrees``: Sphinx
reads again only the pages whose source changed), so that every chapter executes again.

``python -m tools.bookcache [CACHE_DIR]`` (default ``_build/.jupyter_cache``).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

from .book import REPO

INPUTS = ("course_lib", "requirements.txt", "requirements-nodeps.txt")
SUFFIXES = {".py", ".pt", ".json", ".mplstyle", ".txt", ".npz", ".png", ".jpg"}


def inputs_hash(root: Path = REPO) -> str:
    """SHA-256 over the relative path and bytes of every file the chapters' outputs depend on."""
    h = hashlib.sha256()
    for entry in INPUTS:
        path = root / entry
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            if f.suffix not in SUFFIXES or "__pycache__" in f.parts:
                continue
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def refresh(cache: Path, root: Path = REPO) -> bool:
    """Empty ``cache`` when the inputs under ``root`` changed since it was filled; return whether it was emptied."""
    digest = inputs_hash(root)
    stamp = stamp_path(cache)
    stale = cache.is_dir() and (not stamp.is_file() or stamp.read_text().strip() != digest)
    if stale:  # the executed notebooks, and Sphinx's environment, which would skip unchanged pages
        shutil.rmtree(cache)
        shutil.rmtree(cache.parent / ".doctrees", ignore_errors=True)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n")
    return stale


def stamp_path(cache: Path) -> Path:
    """Where the inputs' hash is kept: next to the cache (jupyter-cache owns the folder itself)."""
    return cache.with_name(cache.name + ".inputs")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cache = Path(argv[0]) if argv else REPO / "_build" / ".jupyter_cache"
    if refresh(cache):
        print(f"bookcache: course_lib, a checkpoint or a study result changed: emptied {cache}, every chapter runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
