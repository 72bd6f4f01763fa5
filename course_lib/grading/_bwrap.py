"""The jail of a grading kernel: bubblewrap's command line, its limits, and whether bubblewrap works here.

Each kernel that runs a student's notebook during class grading starts as ``bwrap ... python _launch.py ...``:

* its own network namespace (only a loopback of its own: no connection leaves it, ``127.0.0.1`` included),
  PID namespace (it sees only its own processes; ``--die-with-parent``: nothing outlives the grader), IPC and
  UTS namespaces, and a new terminal session;
* an empty root file system onto which the system folders (``/usr``, ``/etc``, ``/bin`` ...), the Python
  installation and the environment's ``site-packages``, and the ``course_lib`` package are bound read-only.
  Nothing else exists there: not the course folder (source with solutions and hidden tests, gradebook,
  ``submitted/``, ``autograded/``, ``feedback/``), not the grader's scratch folders of other units, not the home
  folder, not the rest of the repository holding ``course_lib``. A Python environment or ``course_lib`` living
  under ``/tmp`` is bound again on top of the kernel's private ``/tmp``, so a course kept there can be graded;
* writable: its working folder (the autograded notebook's folder, a size-limited ``tmpfs`` holding a read-only
  copy of the files nbgrader put there), a private ``/tmp`` and ``/dev/shm`` (size-limited ``tmpfs``); all vanish with
  the kernel, and the grader never reads them. The kernel talks to nbgrader over Unix sockets in one folder of its
  own (``ipc`` transport: TCP would need the network), which also receives the tripwire's report;
* a clean environment: ``PATH``, ``HOME`` (the working folder), locale and thread settings, ``COURSE_*``
  variables, and nothing else of the grader's (no tokens or keys);
* limits set by :mod:`._launch`: CPU time, memory, processes, the size of a file, open files.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["Limits", "INSTALL", "available", "bwrap_path", "kernel_command", "unit_uid"]

INSTALL = ("bubblewrap is not installed (or does not work here); class grading runs every notebook inside it. "
           "Install it: Debian/Ubuntu `sudo apt-get install bubblewrap`, Fedora `sudo dnf install bubblewrap`; "
           "or grade without isolation with --no-sandbox (sandbox=False), only for notebooks you trust")

# variables a kernel keeps from the grader's environment (everything else is dropped)
_KEEP_ENV = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
             "OPENBLAS_NUM_THREADS", "TORCH_NUM_THREADS", "PYTHONHASHSEED")
_SYSTEM = ("usr", "etc", "bin", "sbin", "lib", "lib32", "lib64", "libx32")


@dataclass(frozen=True)
class Limits:
    """What one grading kernel may use. ``None`` means no limit of that kind.

    Attributes:
        cpu_seconds: CPU time of the kernel process (all its threads); past it the kernel is stopped (``SIGXCPU``).
        memory_bytes: memory a process may allocate (``RLIMIT_DATA``); past it an allocation raises ``MemoryError``.
        processes: processes and threads the kernel may have at once (a fork past it raises ``BlockingIOError``).
        disk_bytes: size of the working folder, and separately of ``/tmp``; also the largest file (``OSError``:
            "No space left on device" / "File too large").
        cell_output_chars: output one cell may send while it runs (text and images as received); past it the
            cell is interrupted and the rest of its output dropped.
        open_files: file descriptors the kernel may hold.
    """

    cpu_seconds: int | None = 1800
    memory_bytes: int | None = 4 << 30
    processes: int | None = 256
    disk_bytes: int | None = 512 << 20
    cell_output_chars: int | None = 10_000_000
    open_files: int | None = 1024

    def __post_init__(self) -> None:
        for name in ("cpu_seconds", "memory_bytes", "processes", "disk_bytes", "cell_output_chars", "open_files"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Limits.{name} must be a whole number or None, got {type(value).__name__} {value!r}")
            if value < 1:
                raise ValueError(f"Limits.{name} must be positive or None (no limit), got {value}")

    def launcher(self) -> dict:
        return {"cpu_seconds": self.cpu_seconds, "memory_bytes": self.memory_bytes, "processes": self.processes,
                "file_bytes": self.disk_bytes, "open_files": self.open_files}

    def describe(self) -> str:
        def size(n):
            return f"{n / (1 << 30):g} GiB" if n >= 1 << 30 else f"{n / (1 << 20):g} MiB"

        parts = [f"{self.cpu_seconds} s CPU" if self.cpu_seconds else "",
                 f"{size(self.memory_bytes)} memory" if self.memory_bytes else "",
                 f"{self.processes} processes" if self.processes else "",
                 f"{size(self.disk_bytes)} disk" if self.disk_bytes else "",
                 f"{self.cell_output_chars:,} characters of output per cell" if self.cell_output_chars else ""]
        return ", ".join(p for p in parts if p)

    def as_dict(self) -> dict:
        return asdict(self)


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@functools.cache
def available() -> str | None:
    """``None`` when bubblewrap runs the jail on this machine, else why not (with install instructions)."""
    exe = bwrap_path()
    if exe is None:
        return INSTALL
    probe = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net", "--unshare-pid",
             "--die-with-parent", "--new-session", "--size", "1048576", "--tmpfs", "/tmp", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap ({exe}) could not start: {exc}. {INSTALL}"
    if done.returncode != 0:
        return (f"bubblewrap ({exe}) is installed but cannot create its namespaces here ({done.stderr.strip()[:300]}); "
                f"user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone=1). {INSTALL}")
    return None


def unit_uid(unit_name: str) -> int:
    """The unprivileged user id a kernel runs as when the grader is root: one per unit (so that the process
    limit, counted per user, is the unit's own), outside the range of people's accounts."""
    return 61000 + zlib.crc32(unit_name.encode()) % 3000


def _python_roots() -> list[str]:
    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    roots.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    return sorted(roots)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def readable_paths(hidden: list[str]) -> tuple[list[str], str]:
    """The folders bound read-only besides the system: the Python installation, every ``sys.path`` folder that
    holds no hidden path and is not the repository around ``course_lib`` (only the package itself goes in)."""
    import course_lib

    package = os.path.dirname(os.path.realpath(course_lib.__file__))
    holder = os.path.dirname(package)
    paths = list(_python_roots())
    for entry in sys.path:
        if not entry or not os.path.isdir(entry) or not any(k in entry for k in ("site-packages", "dist-packages")):
            continue  # a script's folder, PYTHONPATH: not libraries the kernel needs (course_lib is bound apart)
        real = os.path.realpath(entry)
        if real in ("/", holder) or any(_inside(h, real) or _inside(real, h) for h in hidden):
            continue
        if any(_inside(real, "/" + s) for s in _SYSTEM) or any(_inside(real, p) for p in paths):
            continue
        paths.append(real)
    return paths, package


def kernel_env(home: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _KEEP_ENV or k.startswith("COURSE_")}
    env.pop("COURSE_GRADING_SANDBOX", None)
    pythonpath = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    import course_lib

    holder = os.path.dirname(os.path.dirname(os.path.realpath(course_lib.__file__)))
    if any(os.path.realpath(p) == holder for p in pythonpath):
        env["PYTHONPATH"] = holder  # course_lib came from there: only the package is bound into the jail
    env.update({"PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"]),
                "HOME": home, "TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", "SHELL": "/bin/sh", **extra})
    return env


def kernel_command(command: list[str], cwd: str, ipc_dir: str, limits: Limits, hidden: list[str],
                   hook: dict | None, uid: int | None, extra_env: dict[str, str],
                   extra_ro: list[tuple[str, str]] = ()) -> list[str]:
    """``command`` (the kernel's) inside bubblewrap with the launcher in front; see the module's docstring."""
    exe = bwrap_path()
    if exe is None:
        raise RuntimeError(INSTALL)
    cwd = os.path.realpath(cwd)
    args = [exe, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--clearenv"]
    for key, value in kernel_env(cwd, extra_env).items():
        args += ["--setenv", key, value]
    for name in _SYSTEM:
        path = "/" + name
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--ro-bind-try", "/sys", "/sys", "--proc", "/proc", "--dev", "/dev"]
    readable, package = readable_paths(hidden)
    made: set[str] = set()
    for path in [*readable, package]:
        # the folders above a bound one are made by bubblewrap with their source's mode (/root: 0700): open them
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            above = "/" + "/".join(parts[:i])
            if above not in made and not any(_inside(above, "/" + s) for s in _SYSTEM):
                made.add(above)
                args += ["--perms", "0755", "--dir", above]
        args += ["--ro-bind", path, path]
    size = [] if not limits.disk_bytes else ["--size", str(int(limits.disk_bytes))]
    args += ["--perms", "1777", *size, "--tmpfs", "/tmp"]
    # the private /tmp covers whatever lived under the real one: a virtual environment or a checkout of the
    # course there is bound again on top of it (read-only), else the kernel cannot start
    args += [a for path in [*readable, package] if _inside(path, "/tmp") for a in ("--ro-bind", path, path)]
    # POSIX semaphores and shared memory (multiprocessing, joblib: without them joblib warns on stderr, and
    # nbgrader scores a test cell that wrote to stderr 0)
    args += ["--perms", "1777", *size, "--tmpfs", "/dev/shm"]
    args += ["--perms", "0755", *size, "--tmpfs", cwd]
    for entry in sorted(os.listdir(cwd)):
        path = os.path.join(cwd, entry)
        if os.path.isfile(path) and not os.path.islink(path):
            args += ["--ro-bind", path, path]
    for src, dest in extra_ro:  # files prepared outside (matplotlib's font list)
        args += ["--ro-bind", src, dest]
    args += ["--bind", ipc_dir, ipc_dir, "--chdir", cwd]
    launch = {"limits": limits.launcher(), "hook": hook, "uid": uid, "writable": ["/tmp", cwd, ipc_dir]}
    launcher = os.path.join(package, "grading", "_launch.py")
    return [*args, "--", sys.executable, launcher, json.dumps(launch), "--", *command]


def plain_command(command: list[str], limits: Limits, hook: dict | None) -> list[str]:
    """``command`` with the launcher in front but no jail (``--no-sandbox``): limits and the refusing tripwire."""
    import course_lib

    launcher = Path(course_lib.__file__).resolve().parent / "grading" / "_launch.py"
    launch = {"limits": limits.launcher(), "hook": hook, "uid": None, "writable": []}
    return [sys.executable, str(launcher), json.dumps(launch), "--", *command]
