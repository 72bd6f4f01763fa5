"""Timing of course_lib.grading (prints figures and ratios; never asserts).

In one run, on the same set of submissions:

* autograding time per notebook: one submission graded alone by ``grade_submission`` (its own process,
  gradebook and kernel), split into nbgrader's autograde, the feedback, and everything else (process start,
  imports, unpacking, checks);
* class throughput with 1 and with 2 workers (``grade_class``), seconds per notebook and notebooks per
  minute, and the 2-worker speed-up (time with 1 / time with 2). A speed-up near 2 needs two free cores: on
  a shared machine it measures the contention as much as the grader.

Usage: ``python benchmarks/grading.py [--copies N] [--assignment NAME --source DIR]``. By default it grades
``2 * N`` copies of the grading corpus's correct and wrong-answer submissions (``tests/grading_corpus``,
numpy only); with ``--assignment`` it grades N copies of that assignment's solution and N of its release.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from course_lib.grading.classgrade import GradingJob, build_template, grade_class, grade_submission

REPO = Path(__file__).resolve().parent.parent


def submissions(args, scratch: Path) -> tuple[Path, Path, str]:
    """A flat folder of ``<student>.ipynb`` files, the source folder, and the assignment name."""
    folder = scratch / "submissions"
    folder.mkdir()
    if args.assignment is None:
        corpus = REPO / "tests" / "grading_corpus"
        name, source = "grading_demo", corpus / "source"
        kinds = {"right": corpus / "submitted" / "correct" / name / f"{name}.ipynb",
                 "wrong": corpus / "submitted" / "wrong_answer" / name / f"{name}.ipynb"}
    else:
        name, source = args.assignment, Path(args.source)
        kinds = {"right": source / name / f"{name}.ipynb", "blank": REPO / "exercises" / name / f"{name}.ipynb"}
    for i in range(args.copies):
        for kind, path in kinds.items():
            shutil.copy(path, folder / f"{kind}{i:02d}.ipynb")
    return folder, source, name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=3, help="copies of each kind of submission (default 3)")
    parser.add_argument("--assignment", help="grade this assignment instead of the grading corpus")
    parser.add_argument("--source", default=str(REPO / "solutions"), help="folder holding ASSIGNMENT/ (solutions/)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        folder, source, name = submissions(args, scratch)
        n = len(list(folder.glob("*.ipynb")))
        t0 = time.perf_counter()
        template = build_template(source, name, scratch / "t")
        print(f"assignment {name}: {n} submissions; {os.cpu_count()} CPU(s) visible; generating the assignment "
              f"once took {time.perf_counter() - t0:.1f} s")

        alone = []
        for path in sorted(folder.glob("*.ipynb"))[:2]:
            job = GradingJob(path.stem, name, path.name, path.read_bytes(), template, timeout=600, cell_timeout=180,
                             scratch=str(scratch))
            result = grade_submission(job)
            alone.append(result)
            print(f"  one notebook alone ({path.stem}): {result.seconds:.1f} s (nbgrader autograde "
                  f"{result.phases.get('autograde', 0):.1f} s, feedback {result.phases.get('feedback', 0):.1f} s, "
                  f"the rest {result.seconds - sum(result.phases.values()):.1f} s), {result.status}, "
                  f"{result.score:g}/{result.max_score:g}")
        per_notebook = statistics.mean(r.seconds for r in alone)

        timings = {}
        for workers in (1, 2):
            course = scratch / f"course{workers}"
            course.mkdir()
            t0 = time.perf_counter()
            report = grade_class(folder, name, course=course, source=source, workers=workers, template=template,
                                 progress=False)
            timings[workers] = time.perf_counter() - t0
            statuses = sorted({r.status for r in report.results})
            print(f"  {workers} worker(s): {timings[workers]:.1f} s for {n} notebooks = "
                  f"{timings[workers] / n:.2f} s per notebook, {60 * n / timings[workers]:.1f} notebooks/min "
                  f"(statuses: {', '.join(statuses)})")
    print(f"seconds per notebook, graded alone: {per_notebook:.1f}")
    print(f"2-worker speed-up: {timings[1] / timings[2]:.2f}x (time with 1 worker / time with 2 workers)")


if __name__ == "__main__":
    main()
