"""What every stored study of the zoo shares: reading its json and the command line that reruns and writes it."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path


def load_study(path: str | Path) -> dict:
    """The stored study at ``path``."""
    return json.loads(Path(path).read_text())


def study_main(argv, description: str, path: Path, run: Callable[[str], dict], summary: Callable[[dict], dict],
               indent: int | None = None) -> int:
    """``--out`` / ``--device`` command line: run the study, write its json, print ``summary(result)``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=str(path))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    result = run(args.device, progress=True)
    Path(args.out).write_text(json.dumps(result, indent=indent) + "\n")
    print(json.dumps(summary(result)))
    return 0
