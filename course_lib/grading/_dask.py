"""Class grading on a ``dask.distributed`` cluster: one task per submission, the verdicts back to the caller.

:func:`course_lib.grading.grade_class` with ``scheduler=`` comes here. Each task is :func:`run_unit` on one
:class:`~course_lib.grading.classgrade.GradingJob`, which carries everything the unit needs (the submitted
bytes, and the zipped scratch course with the source, the release and a gradebook), so a worker needs only an
installed ``course_lib`` with nbgrader and a ``python3`` Jupyter kernel, never the course folder. The caller
keeps at most a few tasks per worker thread queued on the scheduler (a class of thousands never sits in the
scheduler's memory at once) and saves each verdict as it arrives, exactly as for the local pool.

What a cluster does to a batch:

* a worker that dies while grading (killed, out of memory, its machine lost): the scheduler runs its tasks
  again on other workers; a task whose workers keep dying (``distributed.scheduler.allowed-failures``, 3 by
  default) comes back as ``KilledWorker``, and its submission is reported ``unit_crashed``, not saved, and
  graded by the next run; the grading process the dead worker left behind kills its kernel and exits;
* a task that raises (``retries`` more tries) is reported the same way;
* the scheduler unreachable at the start: :class:`ConnectionError` naming the address, before anything is
  written; lost mid-batch: :class:`ConnectionError` too, and what was saved stays saved.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib.metadata
import socket
import sys
import uuid
from contextlib import contextmanager

from ._results import GradingJob, SubmissionResult, crashed, safe_name
from ._unit import grade_submission

INSTALL = "pip install 'dask[distributed]' (or course-lib's grading extra: pip install -e '.[grading]')"


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f"grading on a dask cluster needs dask.distributed: {INSTALL}") from exc
    return distributed


def check_scheduler(scheduler) -> None:
    """Reject what cannot name a scheduler: ``"local"``, an address, or a ``distributed.Client``."""
    if isinstance(scheduler, str):
        if not scheduler.strip() or any(ch.isspace() for ch in scheduler):
            raise ValueError(f"scheduler must be 'local' or an address such as 'tcp://host:8786', got {scheduler!r}")
        return
    client = getattr(sys.modules.get("distributed"), "Client", None)
    if client is None or not isinstance(scheduler, client):
        raise TypeError(f"scheduler must be 'local', an address such as 'tcp://host:8786' or a "
                        f"distributed.Client, got {type(scheduler).__name__}")


@contextmanager
def connect(scheduler, workers: int, connect_timeout: float):
    """Yield ``(client, description)`` for ``scheduler``; a client (and a ``LocalCluster``) made here is
    closed on exit, a ``Client`` passed in is left open. Raises ``ConnectionError`` naming the address when
    the scheduler cannot be reached, or has no worker, within ``connect_timeout`` seconds."""
    distributed = _distributed()
    if isinstance(scheduler, distributed.Client):
        _wait_for_workers(scheduler, scheduler.scheduler.address, connect_timeout)
        yield scheduler, describe(scheduler)
        return
    cluster = None
    try:
        if scheduler == "local":
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                               dashboard_address=None, host="127.0.0.1")
            address = cluster.scheduler_address
        else:
            address = scheduler
        try:
            client = distributed.Client(cluster or address, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"could not reach the dask scheduler at {address} within {connect_timeout:g} s "
                                  f"({exc}); start one with `dask scheduler` and workers with `dask worker "
                                  f"{address}`, or grade on this machine with --scheduler local") from None
        except ValueError as exc:
            raise ValueError(f"scheduler {scheduler!r} is not an address dask understands: {exc}") from None
        try:
            _wait_for_workers(client, address, connect_timeout)
            yield client, describe(client)
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def _wait_for_workers(client, address: str, timeout: float) -> None:
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        raise ConnectionError(f"the dask scheduler at {address} has no worker after {timeout:g} s; start some "
                              f"with `dask worker {address}`") from None


def describe(client) -> str:
    threads = client.nthreads()
    return (f"the dask cluster at {client.scheduler.address} ({len(threads)} worker(s), "
            f"{sum(threads.values())} thread(s))")


def worker_environment() -> dict:
    """What a worker grades with (run on each worker by :func:`probe`)."""
    from jupyter_client.kernelspec import find_kernel_specs

    from ._bwrap import available

    return {"course-lib": importlib.metadata.version("course-lib"), "nbgrader": importlib.metadata.version("nbgrader"),
            "python": "{}.{}".format(*sys.version_info[:2]), "python3 kernel": "python3" in find_kernel_specs(),
            "bubblewrap": available()}


def probe(client, sandbox: bool = True) -> list[str]:
    """Check every worker can grade (raises ``RuntimeError`` naming the workers that cannot: no ``python3``
    kernel, or, with ``sandbox``, no working bubblewrap) and return a warning for each one whose versions differ
    from the caller's (its verdicts could differ)."""
    answers = client.run(worker_environment, on_error="return")
    mine = worker_environment()
    mine.pop("bubblewrap")
    broken, warnings = [], []
    for address, got in sorted(answers.items()):
        if isinstance(got, BaseException):
            broken.append(f"{address}: {type(got).__name__}: {got}")
            continue
        why = got.pop("bubblewrap", "an older course_lib that cannot run the sandbox")
        if not got["python3 kernel"]:
            broken.append(f"{address}: no Jupyter kernel named python3 (python -m ipykernel install --user)")
        elif sandbox and why is not None:
            broken.append(f"{address}: {why}")
        elif got != mine:
            warnings.append(f"worker {address} grades with {got}, this machine has {mine}: verdicts may differ")
    if broken:
        raise RuntimeError(f"dask worker(s) that cannot grade; install the course's environment there "
                           f"(pip install -e '.[grading]'): {'; '.join(broken)}")
    return warnings


def run_unit(job: GradingJob) -> SubmissionResult:
    """The task: grade one submission on this worker and say which worker it was."""
    result = grade_submission(job)
    try:
        result.worker = _distributed().get_worker().address
    except ValueError:  # not inside a dask worker (called directly)
        result.worker = socket.gethostname()
    return result


def results(jobs: list[GradingJob], client, progress: bool, retries: int):
    """Yield each job's result as its task completes on ``client``'s cluster.

    At most ``max(4, 2 * threads)`` tasks are on the cluster at a time (the threads counted again as workers
    come and go). Closing the generator cancels the tasks still queued; a worker already grading one
    finishes it and drops the result.
    """
    from tqdm.auto import tqdm

    distributed = _distributed()
    run = uuid.uuid4().hex[:8]
    queue = list(reversed(jobs))
    live: dict = {}  # key -> (future, job)
    done = distributed.as_completed(loop=client.loop)

    def fill() -> None:
        window = max(4, 2 * sum(client.nthreads().values()))
        while queue and len(live) < window:
            job = queue.pop()
            future = client.submit(run_unit, job, key=f"grade-{safe_name(job.student)}-{run}", pure=False,
                                   retries=retries)
            live[future.key] = (future, job)
            done.add(future)

    try:
        fill()
        with tqdm(total=len(jobs), desc="grading", unit="notebook", disable=not progress) as bar:
            for future in done:
                _, job = live.pop(future.key)
                result = _outcome(future, job, distributed, client)
                bar.update(1)
                yield result
                fill()
    finally:
        if live:
            client.cancel([f for f, _ in live.values()])


def _outcome(future, job: GradingJob, distributed, client) -> SubmissionResult:
    try:
        return future.result()
    except distributed.KilledWorker as exc:
        return crashed(job, f"every dask worker that tried to grade it died ({exc})")
    except cf.CancelledError:
        raise ConnectionError(f"the dask scheduler at {client.scheduler.address} dropped the task for "
                              f"{job.student} (scheduler lost or restarted?); every verdict that arrived before "
                              f"is saved: run again to grade the rest") from None
    except Exception as exc:  # the task raised on the worker, also after its retries
        return crashed(job, f"the task raised {type(exc).__name__} on the dask worker: {exc}")
