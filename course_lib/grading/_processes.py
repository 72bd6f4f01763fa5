"""The child processes of a grading unit: their environment, a hard time limit, and killing what is left.

Every process of a unit carries the marker :data:`UNIT_ENV` in its environment, so that a kernel which outlived
nbgrader in its own session is found and killed (:func:`kill_leftovers`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from .selfcheck import SELF_CHECK_ENV

__all__ = ["UNIT_ENV", "child_env", "run_child", "kill_leftovers", "venv_on_path"]

UNIT_ENV = "COURSE_GRADING_UNIT"  # marks every process of a unit, so none can outlive it


def child_env(extra: dict) -> dict:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env[SELF_CHECK_ENV] = "0"
    env.update(extra)
    return env


def run_child(cmd: list[str], env: dict, cwd: Path, timeout: float) -> bool:
    """Run ``cmd``; on timeout kill it and every process it started (kernels run in their own sessions)."""
    with open(cwd / "child.log", "wb") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            return False


def _kill_tree(proc: subprocess.Popen) -> None:
    try:
        import psutil

        children = psutil.Process(proc.pid).children(recursive=True)
    except Exception:  # psutil missing or the process already gone: fall back to the process group
        children = []
    for child in children:
        try:
            child.kill()
        except Exception:
            pass
    try:
        os.killpg(proc.pid, 9)
    except OSError:
        proc.kill()
    proc.wait()


def kill_leftovers(marker: str, spare: int | None = None) -> None:
    """Kill any process still carrying this unit's marker (a kernel that outlived nbgrader in its own session),
    except the process ``spare`` (the unit's own grading process when it cleans up after itself)."""
    try:
        import psutil
    except ImportError:
        return
    for proc in psutil.process_iter():
        try:
            if proc.pid != spare and proc.environ().get(UNIT_ENV) == marker:
                proc.kill()
        except (psutil.Error, OSError):
            continue


@contextmanager
def venv_on_path():
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), old])
    try:
        yield
    finally:
        os.environ["PATH"] = old
