"""Timing of course_lib.grading (prints figures and ratios; never asserts).

In one run, on the same set of submissions:

* autograding time per notebook: one submission graded alone by ``grade_submission`` (its own process,
  gradebook and kernel), split into nbgrader's autograde, the feedback, and everything else (process start,
  imports, unpacking, checks);
* class throughput with 1 and with 2 workers (``grade_class``), seconds per notebook and notebooks per
  minute, and the 2-worker speed-up (time with 1 / time with 2). A speed-up near 2 needs two free cores: on
  a shared machine it measures the contention as much as the grader;
* the sandbox's cost: the same batches with every kernel in bubblewrap and with ``sandbox=False``, run in
  alternation (``--rounds`` times each, the best of each kept), as notebooks per minute and the percentage by
  which the sandbox is slower (the goal: at most 5 %);
* the same submissions on a ``dask.distributed`` cluster: a ``LocalCluster`` of 2 worker processes (one
  thread each) started here (its start-up timed apart), or the cluster at ``--scheduler ADDRESS``; its
  throughput against the 2-worker local pool;
* the dask path's cost per task: a trivial task carrying the same payload as a grading task (the submission
  and the zipped assignment) sent and answered one at a time (scheduling, pickling and transfer), and for a
  graded one the caller's wall time against the time the unit itself spent on the worker.

The load average is printed at the start and at the end: figures from a busy machine say so. Usage:
``python benchmarks/grading.py [--copies N] [--rounds R] [--assignment NAME --source DIR] [--scheduler ADDRESS|none]``. By
default it grades ``2 * N`` copies of the grading corpus's correct and wrong-answer submissions
(``tests/grading_corpus``, numpy only); with ``--assignment`` it grades N copies of that assignment's
solution and N of its release.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from course_lib.grading import _dask
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


def _payload(job: GradingJob) -> int:
    """The trivial task: touches what a grading task carries, does nothing else (sent by value from here)."""
    return len(job.data) + len(job.template)


def kernel_start_figures(starts: int, scratch: Path) -> None:
    """What the sandbox adds to one kernel: start it (bubblewrap, the launcher, the tripwire), run one cell,
    shut it down; jailed and plain in alternation, medians."""
    import nbformat
    from nbclient import NotebookClient

    from course_lib.grading import _bwrap, _kernel, _sandbox

    times: dict[bool, list[float]] = {True: [], False: []}
    for i in range(starts):
        for jail in (False, True):
            work = scratch / f"kernel{i}{jail}"
            ipc = Path(tempfile.mkdtemp(prefix="cgk-", dir="/tmp"))
            work.mkdir()
            hook = _sandbox.config([str(work), str(ipc)], [str(REPO / "solutions")], str(ipc / "log"),
                                   mode="report" if jail else "refuse")
            _kernel.configure({"jail": jail, "ipc_dir": str(ipc), "limits": _bwrap.Limits().as_dict(),
                               "hidden": [], "uid": _bwrap.unit_uid(work.name), "env": {},
                               "hook": {"module": _sandbox.__file__, "settings": hook}})
            nb = nbformat.v4.new_notebook()
            nb.cells.append(nbformat.v4.new_code_cell("import numpy as np\nprint(np.ones(3).sum())"))
            t0 = time.perf_counter()
            NotebookClient(nb, kernel_name="python3", kernel_manager_class=_kernel.JailedKernelManager,
                           resources={"metadata": {"path": str(work)}}).execute()
            times[jail].append(time.perf_counter() - t0)
            shutil.rmtree(ipc, ignore_errors=True)
    plain, jailed = statistics.median(times[False]), statistics.median(times[True])
    print(f"  one kernel started, one cell run, shut down ({starts} times each, alternating; {load()}): median "
          f"{plain:.2f} s plain, {jailed:.2f} s in the sandbox: {1e3 * (jailed - plain):+.0f} ms per notebook")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPU(s)"


def dask_figures(args, folder: Path, source: Path, name: str, template: bytes, scratch: Path, n: int) -> dict:
    """Throughput on the cluster and the per-task overhead; returns the figures."""
    import distributed

    out = {}
    t0 = time.perf_counter()
    cluster = None
    if args.scheduler == "local":
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, host="127.0.0.1", silence_logs=logging.CRITICAL)
    client = distributed.Client(cluster or args.scheduler, timeout=30, set_as_default=False)
    try:
        client.wait_for_workers(1, timeout=60)
        out["start"] = time.perf_counter() - t0
        print(f"  dask: {_dask.describe(client)}; connecting{' and starting it' if cluster else ''} took "
              f"{out['start']:.1f} s")
        path = sorted(folder.glob("*.ipynb"))[0]
        job = GradingJob(path.stem, name, path.name, path.read_bytes(), template, timeout=600, cell_timeout=180)
        client.submit(_payload, job, pure=False).result()  # warm: the function and a first connection
        trips = []
        for _ in range(args.round_trips):
            t = time.perf_counter()
            client.submit(_payload, job, pure=False).result()
            trips.append(time.perf_counter() - t)
        out["trivial"] = statistics.median(trips)
        print(f"  trivial task with a grading task's payload ({(len(job.data) + len(job.template)) / 1e3:.0f} kB), "
              f"one at a time: median {1e3 * out['trivial']:.1f} ms over {len(trips)} round trips "
              f"(min {1e3 * min(trips):.1f} ms)")
        t = time.perf_counter()
        result = client.submit(_dask.run_unit, job, pure=False).result()
        wall = time.perf_counter() - t
        out["graded_overhead"] = wall - result.seconds
        print(f"  one graded task: {wall:.2f} s at the caller, {result.seconds:.2f} s in the unit on the worker: "
              f"{1e3 * out['graded_overhead']:.0f} ms of dask overhead ({result.status}, "
              f"{result.score:g}/{result.max_score:g})")
        course = scratch / "course_dask"
        course.mkdir()
        t0 = time.perf_counter()
        report = grade_class(folder, name, course=course, source=source, scheduler=client, template=template,
                             progress=False)
        out["batch"] = time.perf_counter() - t0
        statuses = sorted({r.status for r in report.results})
        print(f"  dask, {_dask.describe(client)}: {out['batch']:.1f} s for {n} notebooks = "
              f"{out['batch'] / n:.2f} s per notebook, {60 * n / out['batch']:.1f} notebooks/min "
              f"(statuses: {', '.join(statuses)})")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=3, help="copies of each kind of submission (default 3)")
    parser.add_argument("--assignment", help="grade this assignment instead of the grading corpus")
    parser.add_argument("--source", default=str(REPO / "solutions"), help="folder holding ASSIGNMENT/ (solutions/)")
    parser.add_argument("--scheduler", default="local", help="a dask scheduler's address, 'local' (default) for "
                                                             "a LocalCluster of 2 worker processes, or 'none'")
    parser.add_argument("--round-trips", type=int, default=20, help="trivial dask tasks timed (default 20)")
    parser.add_argument("--rounds", type=int, default=2, help="batches with and without the sandbox, each (default 2)")
    parser.add_argument("--kernel-starts", type=int, default=8, help="kernels started with and without the sandbox, "
                                                                     "each (default 8)")
    args = parser.parse_args()
    print(f"at the start: {load()}")
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

        timings, runs = {}, 0
        for workers in (1, 2):
            best = {}
            for _ in range(args.rounds):
                for sandbox in (False, True):
                    runs += 1
                    course = scratch / f"course{runs}"
                    course.mkdir()
                    t0 = time.perf_counter()
                    report = grade_class(folder, name, course=course, source=source, workers=workers,
                                         template=template, progress=False, sandbox=sandbox)
                    took = time.perf_counter() - t0
                    best[sandbox] = min(best.get(sandbox, took), took)
                    statuses = sorted({r.status for r in report.results})
                    print(f"  {workers} worker(s), {'sandbox   ' if sandbox else 'no sandbox'}: {took:.1f} s for {n} "
                          f"notebooks = {took / n:.2f} s per notebook, {60 * n / took:.1f} notebooks/min "
                          f"(statuses: {', '.join(statuses)}; {load()})")
            timings[workers] = best[True]
            change = 100 * (best[True] / best[False] - 1)
            print(f"  {workers} worker(s): {60 * n / best[False]:.1f} notebooks/min without the sandbox, "
                  f"{60 * n / best[True]:.1f} with it: the sandbox is {abs(change):.1f} % "
                  f"{'slower' if change > 0 else 'faster'} (best of {args.rounds})")
        kernel_start_figures(args.kernel_starts, scratch)
        dask = dask_figures(args, folder, source, name, template, scratch, n) if args.scheduler != "none" else None
    print(f"at the end: {load()}")
    print(f"seconds per notebook, graded alone: {per_notebook:.1f}")
    print(f"2-worker speed-up: {timings[1] / timings[2]:.2f}x (time with 1 worker / time with 2 workers)")
    if dask is None:
        return
    print(f"dask cluster vs 2-worker local pool: {timings[2] / dask['batch']:.2f}x the throughput "
          f"(local time / dask time; the cluster's start-up of {dask['start']:.1f} s not included)")
    print(f"dask overhead per task: a trivial round trip is {100 * dask['trivial'] / per_notebook:.2f}% of one "
          f"notebook's grading; a graded task's overhead {100 * dask['graded_overhead'] / per_notebook:.2f}%")


if __name__ == "__main__":
    main()
