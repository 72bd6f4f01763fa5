"""Command line: ``python -m course_lib.grading {check,class} ...`` (see ``--help`` of each)."""

from __future__ import annotations

import sys

# As in ._autograde: skip jsonschema's slow optional IRI parser in the processes this command owns.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

import argparse  # noqa: E402
import json  # noqa: E402

from .selfcheck import check_notebook  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_check(args) if args.cmd == "check" else run_class(args)


def build_parser() -> argparse.ArgumentParser:
    """The two subcommands and their options."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.grading",
                                     description="Self-check a notebook, or autograde a class of submissions.")
    sub = parser.add_subparsers(dest="cmd", required=True)

    check = sub.add_parser("check", help="run a notebook in a fresh kernel and report its graded cells "
                                         "(visible tests only); exit 0 only if every one passed")
    check.add_argument("notebook")
    check.add_argument("--release", help="the released notebook to compare with (default: exercises/NAME/)")
    check.add_argument("--timeout", type=float, default=900, help="seconds for the whole run (default 900)")
    check.add_argument("--cell-timeout", type=float, default=300, help="seconds per cell (default 300)")
    check.add_argument("--kernel", default="python3", help="Jupyter kernel name (default python3)")

    grade = sub.add_parser("class", help="autograde every submission in its own process; merge into the gradebook")
    grade.add_argument("submissions", help="nbgrader's submitted/ folder, the course folder, or a folder of "
                                           "<student>.ipynb files")
    grade.add_argument("--assignment", required=True)
    grade.add_argument("--workers", type=int, default=1, help="submissions graded at once on this machine, or "
                                                               "the worker processes of --scheduler local (default 1)")
    grade.add_argument("--scheduler", help="grade on a dask.distributed cluster: its scheduler's address "
                                           "(tcp://HOST:8786), or 'local' to start a LocalCluster of --workers "
                                           "processes here")
    grade.add_argument("--connect-timeout", type=float, default=10, help="seconds to reach the scheduler and "
                                                                         "find a worker (default 10)")
    grade.add_argument("--regrade", action="store_true", help="grade every submission again, also those whose "
                                                              "saved verdict is still valid")
    grade.add_argument("--course", help="where autograded/, feedback/ and the CSV go (default: here)")
    grade.add_argument("--source", help="folder with ASSIGNMENT/ASSIGNMENT.ipynb (default: COURSE/solutions "
                                        "or COURSE/source)")
    grade.add_argument("--gradebook", help="course gradebook to merge into (default: COURSE/gradebook.db)")
    grade.add_argument("--timeout", type=float, default=900, help="seconds per submission (default 900)")
    grade.add_argument("--cell-timeout", type=float, default=180, help="seconds per cell (default 180)")
    grade.add_argument("--max-output", type=int, default=20_000, help="characters kept per output (default 20000)")
    grade.add_argument("--no-restore", action="store_true", help="score deleted graded cells 0 instead of "
                                                                 "restoring them (reported either way)")
    grade.add_argument("--json", help="also write every verdict to this JSON file")
    grade.add_argument("--quiet", action="store_true", help="no progress bar")
    grade.add_argument("--no-sandbox", action="store_true", help="run kernels without bubblewrap (no isolation: "
                                                                 "only for notebooks you trust; the summary says so)")
    grade.add_argument("--cpu-time", type=int, help="CPU seconds per kernel, all its threads (default: --timeout "
                                                    "times the number of cores, at least 1800)")
    grade.add_argument("--memory", type=int, default=4096, help="MiB of memory per kernel process (default 4096)")
    grade.add_argument("--processes", type=int, default=256, help="processes and threads per kernel (default 256)")
    grade.add_argument("--disk", type=int, default=512, help="MiB a kernel may write, in its folder and in /tmp "
                                                             "each (default 512)")
    grade.add_argument("--max-cell-output", type=int, default=10_000_000, help="characters one cell may print "
                                                                               "before it is stopped (default 1e7)")

    return parser


def run_check(args: argparse.Namespace) -> int:
    """``check``: the self-check report of one notebook; exit 0 only if every graded cell passed."""
    try:
        report = check_notebook(args.notebook, release=args.release, timeout=args.timeout,
                                cell_timeout=args.cell_timeout, kernel_name=args.kernel)
    except (FileNotFoundError, TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.format())
    return report.exit_code


def run_class(args: argparse.Namespace) -> int:
    """``class``: grade every submission; exit 0 only if every one graded cleanly, 130 if interrupted."""
    from .classgrade import GradingInterrupted, grade_class, result_dict

    try:
        report = grade_class(args.submissions, args.assignment, settings_from(args))
    except (OSError, ValueError, TypeError, ImportError, RuntimeError) as exc:  # OSError: ConnectionError, files
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except GradingInterrupted as exc:
        print(exc, file=sys.stderr)
        return 130
    print(report.summary())
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([result_dict(r) for r in report.results], fh, indent=1, default=str)
    return 0 if not report.unclean and not report.warnings else 1


def settings_from(args: argparse.Namespace):
    """The :class:`~course_lib.grading.GradingSettings` of the ``class`` command's arguments."""
    from .classgrade import GradingSettings, Limits, default_cpu_seconds

    cpu = args.cpu_time if args.cpu_time is not None else default_cpu_seconds(args.timeout)
    for value, label in ((cpu, "--cpu-time"), (args.memory, "--memory"), (args.processes, "--processes"),
                         (args.disk, "--disk"), (args.max_cell_output, "--max-cell-output")):
        if value < 1:
            raise ValueError(f"{label} must be a positive number, got {value}")
    limits = Limits(cpu_seconds=cpu, memory_bytes=args.memory << 20, processes=args.processes,
                    disk_bytes=args.disk << 20, cell_output_chars=args.max_cell_output)
    return GradingSettings(course=args.course, source=args.source, gradebook=args.gradebook, workers=args.workers,
                           scheduler=args.scheduler, connect_timeout=args.connect_timeout, timeout=args.timeout,
                           cell_timeout=args.cell_timeout, max_output_chars=args.max_output,
                           restore_missing=not args.no_restore, sandbox=not args.no_sandbox, limits=limits,
                           regrade=args.regrade, progress=not args.quiet)


if __name__ == "__main__":
    sys.exit(main())
