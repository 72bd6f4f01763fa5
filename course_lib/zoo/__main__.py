"""``python -m course_lib.zoo list | train NAME | evaluate NAME`` (see :mod:`course_lib.zoo`)."""

from __future__ import annotations

import argparse
import json
import sys

from . import CheckpointError, evaluate, get_recipe, info, names, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.zoo", description="The course's model zoo.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the zoo's models, their held-out metrics and checkpoint state")
    for cmd, text in (("train", "run a recipe and save its checkpoint"), ("evaluate", "print held-out metrics")):
        p = sub.add_parser(cmd, help=text)
        p.add_argument("names", nargs="+", metavar="NAME", help=f"one or more of: {', '.join(names())}")
        p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
        if cmd == "train":
            p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    if args.cmd == "list":
        for name in names():
            recipe = get_recipe(name)
            if recipe.packaged is not None:
                print(f"{name:24s} {recipe.description}  (weights from an installed package, no checkpoint)")
                continue
            try:
                state = json.dumps(info(name)["metrics"])
            except CheckpointError:
                state = "(no checkpoint)"
            print(f"{name:24s} {recipe.description}  {state}")
        return 0
    try:
        for name in args.names:
            get_recipe(name)
    except ValueError as err:
        parser.error(str(err))
    for name in args.names:
        if args.cmd == "train":
            try:
                record = train(name, device=args.device, progress=not args.quiet)
            except ValueError as err:  # a packaged entry is not trained here
                print(f"error: {err}", file=sys.stderr)
                return 1
            print(json.dumps(record, indent=2))
        else:
            try:
                print(json.dumps({"name": name, **evaluate(name, device=args.device)}, indent=2))
            except CheckpointError as err:
                print(f"error: {err}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
