"""The tripwire of grading kernels: a PEP 578 audit hook that reports (and, without bubblewrap, refuses)
attempts to reach the course's protected files.

Class grading's launcher (``_launch.py``) calls :func:`install` in the kernel's process before any student code
runs. The hook has two modes:

* ``report`` (inside bubblewrap, the default): the jail already makes the course's files invisible and the
  file system read-only, so the hook changes nothing a notebook can do. It only *reports*: every attempt to
  open, change or connect ``sqlite3`` to a protected path (the course's source with solutions and hidden tests,
  the gradebook, other submissions, ``autograded/`` and ``feedback/``: real paths outside the jail, which a
  student could only know by guessing) is logged, and the grader flags the submission ``sandbox_violation``,
  so the instructor learns that a notebook *tried* (the jail alone would just answer "no such file"). It does
  not look at programs started or writes elsewhere: both are harmless in the jail (matplotlib runs ``fc-list``).
* ``refuse`` (``--no-sandbox``, the only guard then): as above, and the attempt raises ``PermissionError``;
  also writing, renaming or deleting anything outside the kernel's own folders (the ``allow_write`` paths,
  which win over ``deny``), and starting programs (``subprocess``, ``os.system``, ``os.exec*``,
  ``os.posix_spawn``) except the standard library's own shared-library lookup (``ctypes.util.find_library``).

Every report is appended to a log file opened before student code ran. An audit hook cannot be removed from
Python code, but it is a tripwire, not a jail: ``ctypes`` calls ``open``/``read`` without raising an audit event,
and a notebook can truncate the log. The jail is what protects; the hook is what tells.
"""

from __future__ import annotations

import json
import os
import sys

ENV = "COURSE_GRADING_SANDBOX"

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
# event -> positions of (path, dir_fd) arguments; every one of these changes the file system.
_MUTATING = {
    "os.remove": ((0, 1),), "os.rmdir": ((0, 1),), "os.mkdir": ((0, 2),), "os.chmod": ((0, 2),),
    "os.chown": ((0, 3),), "os.utime": ((0, 3),), "os.truncate": ((0, None),), "os.chflags": ((0, None),),
    "os.lchflags": ((0, None),), "os.lchmod": ((0, None),), "os.mkfifo": ((0, None),), "os.mknod": ((0, None),),
    "os.rename": ((0, 2), (1, 3)), "os.link": ((0, 2), (1, 3)), "os.symlink": ((1, 2),),
    "shutil.rmtree": ((0, None),), "shutil.copyfile": ((1, None),), "shutil.copytree": ((1, None),),
    "shutil.move": ((0, None), (1, None)),
}
_SPAWN = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "pty.spawn", "os.startfile"}


def _real(path: str) -> str:
    return os.path.realpath(path)


def _inside(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def config(allow_write: list[str], deny: list[str], log: str, mode: str = "refuse") -> dict:
    """The settings :func:`install` takes (``mode``: ``"refuse"`` or ``"report"``)."""
    if mode not in ("refuse", "report"):
        raise ValueError(f"mode must be 'refuse' or 'report', got {mode!r}")
    return {"allow_write": [str(p) for p in allow_write], "deny": [str(p) for p in deny], "log": str(log),
            "mode": mode}


def install(settings: dict | str | None = None) -> bool:
    """Install the audit hook described by ``settings`` (default: ``$COURSE_GRADING_SANDBOX``); return
    whether one was installed. Idempotent per process only in effect: a second call adds a second hook.

    Example:
        >>> install({"allow_write": ["/tmp/me"], "deny": ["/course"], "log": "/tmp/me.log"})  # doctest: +SKIP
        True
        >>> open("/course/gradebook.db", "a")  # doctest: +SKIP
        Traceback (most recent call last):
        PermissionError: course grading sandbox: writing /course/gradebook.db is not allowed
    """
    if settings is None:
        settings = os.environ.get(ENV, "")
    if isinstance(settings, str):
        if not settings.strip():
            return False
        settings = json.loads(settings)
    sys.addaudithook(Tripwire(settings))
    return True


def _genuine_lookup_code() -> frozenset:
    """The code objects of ``ctypes.util`` and ``platform``, captured before student code runs:
    ``ctypes.util.find_library`` (used by libraries at import) runs ldconfig/gcc/ld/objdump to locate shared
    libraries, and ``platform`` runs ``uname -p``; both are allowed when the call comes from these functions."""
    import ctypes.util
    import platform
    import types

    return frozenset(f.__code__ for m in (ctypes.util, platform) for f in vars(m).values()
                     if isinstance(f, types.FunctionType) and f.__module__ == m.__name__)


class Tripwire:
    """The audit hook: one method per kind of event (opening a file, listing a folder, connecting sqlite3,
    changing the file system, starting a program), each deciding whether the event touches a protected path
    (``deny``, unless inside ``allow_write``) and, in ``refuse`` mode, whether it writes outside the kernel's own
    folders. A reported event is logged (and, in ``refuse`` mode, raises ``PermissionError``). While the hook
    handles an event it ignores the events its own work raises."""

    def __init__(self, settings: dict):
        self.report_only = settings.get("mode", "refuse") == "report"
        self.allow = tuple(_real(p) for p in [*settings["allow_write"], os.devnull])
        self.deny = tuple(_real(p) for p in settings["deny"])
        self.log_fd = os.open(settings["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.genuine = _genuine_lookup_code()
        self.busy = False
        self.handlers = {"open": self.on_open, "os.listdir": self.on_listing, "os.scandir": self.on_listing,
                         "sqlite3.connect": self.on_sqlite, **dict.fromkeys(_MUTATING, self.on_mutating)}
        if not self.report_only:
            self.handlers.update(dict.fromkeys(_SPAWN, self.on_spawn))

    def __call__(self, event: str, args: tuple) -> None:
        handler = self.handlers.get(event)
        if handler is None or self.busy:
            return
        self.busy = True
        try:
            handler(event, args)
        finally:
            self.busy = False

    # ---------------------------------------------------------------------------------------- the decisions
    def refuse(self, what: str) -> None:
        try:
            os.write(self.log_fd, (json.dumps({"blocked": what}) + "\n").encode())
        except OSError:
            pass
        if not self.report_only:
            raise PermissionError(f"course grading sandbox: {what} is not allowed")

    def forbidden(self, target: str) -> bool:
        """A change of ``target`` that is reported: outside the kernel's own folders, and (in ``report`` mode)
        inside a protected path."""
        return not _inside(target, self.allow) and (not self.report_only or _inside(target, self.deny))

    # ---------------------------------------------------------------------------------------- one per event
    def on_open(self, event: str, args: tuple) -> None:
        path, mode, flags = (tuple(args) + (None, None))[:3]
        target = _resolve(path, None)
        if target is None:
            return
        if isinstance(mode, str):
            writing = any(ch in mode for ch in "wax+")
        else:
            writing = isinstance(flags, int) and bool(flags & _WRITE_FLAGS)
        own = _inside(target, self.allow)
        if _inside(target, self.deny) and not own:
            self.refuse(f"{'writing' if writing else 'reading'} {target}")
        if writing and not own and not self.report_only:
            self.refuse(f"writing {target}")

    def on_listing(self, event: str, args: tuple) -> None:
        if not args or args[0] is None:
            return
        target = _resolve(args[0], None)
        if target is not None and _inside(target, self.deny) and not _inside(target, self.allow):
            self.refuse(f"listing {target}")

    def on_sqlite(self, event: str, args: tuple) -> None:
        target = str(args[0]) if args else ""
        if not target or target == ":memory:" or target.startswith("file::memory"):
            return
        real = _resolve(target.removeprefix("file:").split("?")[0], None)
        if real is not None and self.forbidden(real):
            self.refuse(f"opening the database {real}")

    def on_mutating(self, event: str, args: tuple) -> None:
        for path_at, fd_at in _MUTATING[event]:
            if path_at >= len(args):
                continue
            dir_fd = args[fd_at] if fd_at is not None and fd_at < len(args) else None
            target = _resolve(args[path_at], dir_fd)
            if target is not None and self.forbidden(target):
                self.refuse(f"{event} on {target}")

    def on_spawn(self, event: str, args: tuple) -> None:
        if not _library_lookup(event, args, self.genuine):
            self.refuse(f"starting a program ({event}: {str(args[0] if args else '')[:120]})")


def _resolve(path, dir_fd) -> str | None:
    """The real path an event's ``path`` argument (relative to ``dir_fd`` if given) names; ``None`` for a file
    descriptor."""
    if isinstance(path, int):
        return None
    path = os.fsdecode(os.fspath(path))
    if not os.path.isabs(path) and isinstance(dir_fd, int) and dir_fd >= 0:
        try:
            path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
        except OSError:
            return "<unresolvable>"
    return _real(path)


_LOOKUP_TOOLS = {"ldconfig", "gcc", "cc", "ld", "objdump", "dump", "uname"}


def _library_lookup(event: str, args: tuple, genuine: frozenset) -> bool:
    """Is this ``subprocess.Popen`` the standard library's own probe: the shared-library lookup of ``ctypes.util``
    or ``platform``'s ``uname -p``?"""
    if event != "subprocess.Popen" or not args:
        return False
    program = args[0] if args[0] else (args[1][0] if len(args) > 1 and args[1] else "")
    if os.path.basename(os.fsdecode(program)) not in _LOOKUP_TOOLS:
        return False
    frame = sys._getframe(2)
    for _ in range(12):
        if frame is None:
            return False
        if frame.f_code in genuine:
            return True
        frame = frame.f_back
    return False
