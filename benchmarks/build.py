"""Build budget: cold `make book` (empty _build), warm rebuild, `make test`, one run each.

Prints the wall time of each, and the execution time of every chapter as the book's execution cache recorded
it, longest first. Goals on the 2-core course machine (issue 23): every chapter <= 45 s, cold book <= 4 min,
warm <= 30 s, `.ci/run` <= 15 min.
Run it on an otherwise idle machine: `python benchmarks/build.py [--skip-test]`.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from _timing import seconds as one_call  # benchmarks/_timing.py, beside this script

REPO = Path(__file__).resolve().parent.parent
CACHE_DB = REPO / "_build" / ".jupyter_cache" / "global.db"


def timed(command: list[str]) -> float:
    results = []
    seconds = one_call(lambda: results.append(
        subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)))
    result = results[0]
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed (exit {result.returncode}) after {seconds:.0f} s")
    return seconds


def chapter_times() -> list[tuple[str, float]]:
    """(notebook, seconds) from jupyter-cache's records of the last execution of each notebook."""
    if not CACHE_DB.is_file():
        return []
    import json

    with sqlite3.connect(CACHE_DB) as db:
        rows = db.execute("SELECT uri, data FROM nbcache").fetchall()
    out = []
    for uri, data in rows:
        seconds = json.loads(data or "{}").get("execution_seconds")
        if seconds is not None:
            out.append((Path(uri).name, float(seconds)))
    return sorted(out, key=lambda row: -row[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-test", action="store_true", help="time the book only")
    args = parser.parse_args()
    shutil.rmtree(REPO / "_build", ignore_errors=True)
    cold = timed(["make", "book"])
    warm = timed(["make", "book"])
    print(f"cold make book (empty _build): {cold:7.1f} s   goal <= 240 s   ratio {cold / 240:.2f}")
    print(f"warm make book (cached):       {warm:7.1f} s   goal <= 30 s    ratio {warm / 30:.2f}")
    times = chapter_times()
    for name, seconds in times:
        print(f"  executed {name:45s} {seconds:6.1f} s   goal <= 45 s   ratio {seconds / 45:.2f}")
    if times:
        print(f"longest chapter: {times[0][0]} ({times[0][1]:.1f} s); all chapters {sum(s for _, s in times):.1f} s")
    if not args.skip_test:
        test = timed(["make", "test"])
        print(f"make test:                     {test:7.1f} s")


if __name__ == "__main__":
    main()
