"""``python -m course_lib.studies {list, run NAME [--quick] [--device cuda] [--out PATH], check [NAME ...]}``."""

from __future__ import annotations

import argparse
import json
import sys

from . import StudyError, check, get, names, run, save


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.studies", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every study, its chapter, sample size and run time")
    r = sub.add_parser("run", help="run a study and store its results (results/NAME.json)")
    r.add_argument("name", choices=names())
    r.add_argument("--quick", action="store_true", help="the quick slice only; printed, stored only with --out")
    r.add_argument("--device", default="cpu", help="cpu or cuda")
    r.add_argument("--out", help="where to write the results (default results/NAME.json; --quick: nowhere)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    c = sub.add_parser("check", help="rerun the quick slices and compare them with the stored results")
    c.add_argument("names", nargs="*", help="default: every study")
    c.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    if args.command == "list":
        for name in names():
            s = get(name)
            print(f"{name:28s} {s.chapter:36s} ~{s.minutes:g} min  {s.description}")
        return 0
    if args.command == "run":
        data = run(args.name, quick=args.quick, device=args.device, progress=not args.quiet)
        if args.out or not args.quick:
            print("wrote", save(data, args.out))
        else:
            print(json.dumps(data["results"])[:2000])
        print(json.dumps(data["provenance"]))
        return 0
    failed = 0
    for name in args.names or names():
        try:
            report = check(name, device=args.device)
        except StudyError as e:
            failed += 1
            print(f"FAIL {e}")
        else:
            print(f"ok   {name}: {report['compared']} values reproduced in {report['seconds']} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
