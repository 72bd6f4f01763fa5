"""One prepared device check: CPU/GPU parity tests, every chapter on the GPU, and the saliency and pretrained benchmarks.

Made for a machine lent for a few minutes that has torch but not this project's virtual environment (no
jupytext, nbval or ipykernel, and no network to install them): the chapters are run from their committed,
output-free ``.ipynb`` files by executing their code cells in order as one Python script, with
``COURSE_DEVICE`` set, so that ``course_lib.device.get_device()`` picks the GPU in every chapter.

Usage (from the repository root)::

    PYTHONPATH=. python benchmarks/gpu_check.py [--device cuda] [--skip-tests] [--skip-bench] [--chapters 06 07]

Prints one line per step (exit status, seconds) and a summary; exits non-zero if any step failed. Nothing is
asserted about speed; the benchmark only prints.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import seconds as one_call  # benchmarks/_timing.py, beside this script

ROOT = Path(__file__).resolve().parent.parent


def notebook_script(path: Path) -> str:
    """The code cells of a notebook, in order, as one script (IPython magics and shell lines are refused)."""
    cells = json.loads(path.read_text())["cells"]
    parts = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        for line in source.splitlines():
            if line.lstrip().startswith(("%", "!")):
                raise ValueError(f"{path.name}, code cell {i}: IPython syntax cannot run as a script: {line!r}")
        parts.append(f"# --- cell {i}\n{source}\n")
    return "\n".join(parts)


def run(label: str, cmd: list[str], env: dict, cwd: Path, timeout: float) -> dict:
    result: dict = {}

    def call() -> None:
        try:
            proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
            result.update(rc=proc.returncode, out=proc.stdout + proc.stderr)
        except subprocess.TimeoutExpired as err:
            out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
            result.update(rc="timeout", out=out)

    seconds = one_call(call)
    rc, out = result["rc"], result["out"]
    print(f"[{'ok' if rc == 0 else 'FAILED'}] {label}: rc={rc}, {seconds:.1f} s", flush=True)
    if rc != 0:
        print("\n".join(out.splitlines()[-40:]), flush=True)
    return {"step": label, "rc": rc, "seconds": round(seconds, 1), "output": out}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="the device the chapters run on (COURSE_DEVICE)")
    parser.add_argument("--skip-tests", action="store_true", help="do not run the cuda-marked parity tests")
    parser.add_argument("--skip-bench", action="store_true", help="do not run benchmarks/saliency.py and pretrained.py")
    parser.add_argument("--chapters", nargs="*", default=None, help="chapter number prefixes (default: all)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per step")
    parser.add_argument("--report", type=Path, default=None, help="write every step's output to this JSON file")
    args = parser.parse_args()

    env = dict(os.environ, COURSE_DEVICE=args.device, MPLBACKEND="Agg", PYTHONHASHSEED="0", COURSE_SELF_CHECK="0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    import torch

    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, "
          f"cuda available: {torch.cuda.is_available()}"
          + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""), flush=True)
    steps = []
    if not args.skip_tests:
        if importlib.util.find_spec("pytest") is None:
            print("[skipped] parity tests: pytest is not installed here", flush=True)
        else:
            steps.append(run("pytest -m cuda tests", [sys.executable, "-m", "pytest", "-q", "-rA", "-m", "cuda",
                                                      "-p", "no:cacheprovider", "tests"], env, ROOT, args.timeout))
    notebooks = sorted((ROOT / "chapters").glob("*.ipynb"))
    if args.chapters:
        notebooks = [nb for nb in notebooks if nb.name.startswith(tuple(args.chapters))]
    with tempfile.TemporaryDirectory() as tmp:
        for nb in notebooks:
            script = Path(tmp) / f"{nb.stem}.py"
            script.write_text(notebook_script(nb))
            steps.append(run(f"chapter {nb.stem} on {args.device}", [sys.executable, str(script)], env,
                             nb.parent, args.timeout))
    if not args.skip_bench:
        for bench in ("saliency.py", "pretrained.py"):
            steps.append(run(f"benchmarks/{bench}", [sys.executable, str(ROOT / "benchmarks" / bench),
                                                     "--device", args.device], env, ROOT, args.timeout))
            print(steps[-1]["output"], flush=True)

    failed = [s["step"] for s in steps if s["rc"] != 0]
    print(f"\n{len(steps) - len(failed)} of {len(steps)} steps passed"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    if args.report is not None:
        args.report.write_text(json.dumps(steps, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
