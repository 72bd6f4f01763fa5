"""nbgrader's kernel, jailed and bounded: the kernel manager and execute preprocessor class grading uses.

Loaded only in the grading unit's nbgrader process (``python -m course_lib.grading._autograde unit DIR``), which
calls :func:`configure` with the unit's settings before ``nbgrader autograde`` runs. Then

* :class:`JailedKernelManager` starts every kernel through :mod:`._launch` (limits, tripwire), inside bubblewrap
  unless the class is graded with ``--no-sandbox`` (see :mod:`._bwrap`); the kernel talks over Unix sockets
  in the unit's socket folder and is interrupted by a message (a signal could not cross the PID namespace);
* :class:`BoundedExecute` is nbgrader's ``Execute`` with a cap on what one cell may print while it runs: past
  it the cell is interrupted and the rest of its output dropped, so a notebook printing a gigabyte never
  reaches the grader's memory. Error outputs are always kept (nbgrader scores a test cell by them).
"""

from __future__ import annotations

import asyncio
import os
import sys

from jupyter_client.manager import AsyncKernelManager
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute

from . import _bwrap

SETTINGS: dict = {}  # this unit's: set by configure()
EVENTS: dict = {"exits": [], "capped": []}  # what happened, read by _autograde after the run
_PROCESSES: list = []


def configure(settings: dict) -> None:
    SETTINGS.clear()
    SETTINGS.update(settings)


def exit_codes() -> list[int | None]:
    """The exit status of every kernel started (bubblewrap passes 128 + N for a kernel killed by signal N)."""
    return [p.poll() for p in _PROCESSES]


class JailedKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose kernel runs through the course's launcher, in bubblewrap when asked."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        ipc = SETTINGS["ipc_dir"]
        self.transport = "ipc"
        self.connection_file = os.path.join(ipc, "kernel.json")
        self.ip = os.path.join(ipc, "k")

    def format_kernel_cmd(self, extra_arguments=None):
        if SETTINGS.get("stopping"):
            raise RuntimeError("the grading unit is stopping (its caller died): no new kernel")
        cmd = super().format_kernel_cmd(extra_arguments)
        if len(cmd) >= 1 and os.path.basename(cmd[0]).startswith("python"):
            cmd[0] = sys.executable  # the kernel runs the grader's environment, whatever the spec says
        limits = _bwrap.Limits(**SETTINGS["limits"])
        if not SETTINGS.get("jail", True):
            return _bwrap.plain_command(cmd, limits, SETTINGS.get("hook"))
        cwd = self._launch_args.get("cwd") or os.getcwd()
        uid = SETTINGS.get("uid") if os.getuid() == 0 else None
        return _bwrap.kernel_command(cmd, cwd, SETTINGS["ipc_dir"], limits, SETTINGS.get("hidden", []),
                                     SETTINGS.get("hook"), uid, SETTINGS.get("env", {}),
                                     [tuple(x) for x in SETTINGS.get("extra_ro", [])])

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        await super()._async_launch_kernel(kernel_cmd, **kw)
        process = getattr(self.provisioner, "process", None)
        if process is not None:
            _PROCESSES.append(process)

    async def _async_interrupt_kernel(self) -> None:
        if self.has_kernel:  # a message: SIGINT to bwrap would not reach the kernel in its own session
            msg = self.session.msg("interrupt_request", content={})
            self._connect_control_socket()
            self.session.send(self._control_socket, msg)
            return
        await super()._async_interrupt_kernel()

    interrupt_kernel = _async_interrupt_kernel  # AsyncKernelManager binds the name to its own method


def _size(msg: dict) -> int:
    content = msg.get("content", {})
    if msg.get("msg_type") == "stream":
        return len(content.get("text", ""))
    if msg.get("msg_type") in ("display_data", "execute_result", "update_display_data"):
        return sum(len(v) if isinstance(v, str) else len(str(v)) for v in content.get("data", {}).values())
    if msg.get("msg_type") == "error":
        return sum(len(t) for t in content.get("traceback", []))
    return 0


class BoundedExecute(Execute):
    """nbgrader's ``Execute`` with :class:`JailedKernelManager` and a per-cell cap on output received."""

    def __init__(self, *args, **kwargs):
        kwargs["kernel_manager_class"] = JailedKernelManager
        super().__init__(*args, **kwargs)
        self._sizes: dict[int, int] = {}

    def output(self, outs: list[NotebookNode], msg: dict, display_id: str | None, cell_index: int):
        cap = SETTINGS.get("limits", {}).get("cell_output_chars")
        if not cap or msg.get("msg_type") == "error":
            return super().output(outs, msg, display_id, cell_index)
        seen = self._sizes.get(cell_index, 0)
        if seen > cap:
            return None  # already stopped: drop the rest
        seen += _size(msg)
        self._sizes[cell_index] = seen
        if seen <= cap:
            return super().output(outs, msg, display_id, cell_index)
        EVENTS["capped"].append(cell_index)
        note = NotebookNode(output_type="stream", name="stderr",
                            text=f"\n[the grader stopped this cell: it printed more than {cap:,} characters]\n")
        outs.append(note)
        asyncio.ensure_future(self.km.interrupt_kernel())
        return None
