"""Start a grading kernel under its limits (run as a script, standard library only).

    python .../course_lib/grading/_launch.py SETTINGS_JSON -- KERNEL_COMMAND...

Run by class grading as the kernel command, inside bubblewrap (or directly with ``--no-sandbox``). In this
process, before any student code exists, it

1. sets the kernel's resource limits (``resource.setrlimit``): CPU seconds (``SIGXCPU`` at the limit, ``SIGKILL``
   two seconds later), memory (``RLIMIT_DATA``: an allocation past it raises ``MemoryError``), the size of any one
   file written (``RLIMIT_FSIZE``: ``OSError`` "File too large"; Python ignores ``SIGXFSZ``), the number of
   processes and threads (``RLIMIT_NPROC``: ``fork`` raises ``BlockingIOError``), open files, no core dumps;
2. when it runs as root (a grader started as root: bubblewrap then keeps root's capabilities inside), gives the
   writable folders to an unprivileged user id and becomes it (``setgroups``/``setgid``/``setuid`` drop every
   capability; the kernel ignores ``RLIMIT_NPROC`` only as root), and sets ``PR_SET_NO_NEW_PRIVS``;
3. installs the audit-hook tripwire of ``_sandbox.py`` (report only inside bubblewrap, refuse without it);
4. runs the kernel command in this same process when it is ``python -m MODULE ...`` (so the hook covers it),
   else ``exec``s it.
"""

from __future__ import annotations

import json
import os
import resource
import sys

_LIMITS = {"cpu_seconds": resource.RLIMIT_CPU, "memory_bytes": resource.RLIMIT_DATA,
           "file_bytes": resource.RLIMIT_FSIZE, "processes": resource.RLIMIT_NPROC,
           "open_files": resource.RLIMIT_NOFILE}


def _limit(kind: int, value: int, grace: int = 0) -> None:
    _, hard = resource.getrlimit(kind)
    soft = value if hard == resource.RLIM_INFINITY else min(value, hard)
    top = value + grace if hard == resource.RLIM_INFINITY else min(value + grace, hard)
    resource.setrlimit(kind, (soft, top))


def _own(paths: list[str], uid: int, gid: int) -> None:
    for top in paths:
        for root, dirs, files in os.walk(top):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                try:
                    os.lchown(name, uid, gid)
                except OSError:  # a read-only file bound in (the submitted notebook): stays root's, readable
                    pass


def _drop_root(uid: int, writable: list[str]) -> None:
    _own(writable, uid, uid)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise SystemExit("course grading: could not leave root")


def _no_new_privs() -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit("usage: _launch.py SETTINGS_JSON -- COMMAND...")
    settings, command = json.loads(argv[0]), argv[2:]
    limits = settings.get("limits", {})
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for key, kind in _LIMITS.items():
        if limits.get(key):
            _limit(kind, int(limits[key]), grace=2 if key == "cpu_seconds" else 0)
    if os.getuid() == 0 and settings.get("uid"):
        _drop_root(int(settings["uid"]), settings.get("writable", []))
    _no_new_privs()
    hook = settings.get("hook")
    if hook:
        import importlib.util

        spec = importlib.util.spec_from_file_location("_course_grading_sandbox", hook["module"])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.install(hook["settings"])
    if len(command) >= 3 and command[1] == "-m" and os.path.realpath(command[0]) == os.path.realpath(sys.executable):
        import runpy

        sys.argv = [command[2], *command[3:]]
        sys.path.insert(0, os.getcwd())  # as `python -m` does
        runpy.run_module(command[2], run_name="__main__", alter_sys=True)
        return
    os.execv(command[0], command)


if __name__ == "__main__":
    if sys.path and os.path.basename(sys.path[0].rstrip(os.sep)) == "grading":
        sys.path.pop(0)  # run as a script: its folder is not a place to import from
    main(sys.argv[1:])
