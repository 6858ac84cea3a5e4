"""The worker side of the dask executor: set-up once per worker, and tasks that can be stopped.

Imported on dask workers (and, lazily, by :mod:`.dask_executor` in the
client); it imports ``distributed`` at import time.

A worker gets what a loky worker of the processes executor gets
(:func:`udfwidgets.executor.pools._worker_init`): glibc malloc thresholds that
keep tile-sized temporaries on the heap, BLAS/OpenMP limited to the cores per
worker thread of its host, and file maps kept between runs. A worker process
started by the client's own process (a ``LocalCluster``) moves to a process
group of its own, so that an interrupt sent to the client's process group
(Ctrl-C in a terminal, a Jupyter kernel interrupt) does not kill it.

A task that is cancelled while it runs (``break``, Ctrl-C or async
cancellation of a run) is stopped too: dask itself cannot stop a running
task, so :class:`WorkerSetup` watches the worker's task transitions and
raises :class:`TaskStopped` in the thread that runs a cancelled task; the
UDF's Python code stops at its next line (a NumPy call in progress finishes
first).
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from typing import Any

from distributed import WorkerPlugin

__all__ = ["WorkerSetup", "TaskStopped", "run_task", "PLUGIN_NAME"]

#: The name :class:`WorkerSetup` is registered under on every worker
#: (``dask_worker.plugins[PLUGIN_NAME]``).
#:
#: Examples
#: --------
#: >>> WorkerSetup(client_pid=0, threads_per_host={}).name == PLUGIN_NAME
#: True
PLUGIN_NAME = "udfwidgets-worker-setup"

_BLAS_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "BLIS_NUM_THREADS",
)

#: key -> thread ident of the tasks that run in this worker process now
_RUNNING: dict[str, int] = {}
_LOCK = threading.Lock()


class TaskStopped(BaseException):
    """Raised inside a worker thread whose task was cancelled (BaseException, so that a
    UDF's ``except Exception`` does not swallow it).

    Examples
    --------
    The scheduler cancels task ``"k"`` while it runs (here the task itself plays the
    scheduler); the ``except Exception`` of the task does not catch the stop:

    >>> import os
    >>> plugin = WorkerSetup(client_pid=os.getpid(), threads_per_host={})
    >>> def work(task):
    ...     try:
    ...         plugin.transition("k", "executing", "cancelled")
    ...         for _ in range(10):
    ...             pass
    ...     except Exception:
    ...         return "swallowed"
    ...     except TaskStopped:
    ...         return "stopped"
    >>> run_task(work, None, "k")
    'stopped'
    """


class TaskCancelledError(RuntimeError):
    """A cancelled task reports this as its error (nobody waits for it)."""


def _flush() -> None:
    """A Python call: a pending asynchronous exception is raised at its entry."""


def run_task(fn: Callable, task: Any, key: str, blob: bytes | None = None, roi: Any = None) -> Any:
    """Run ``fn(task)`` so that :func:`stop_task` can interrupt it.

    ``blob`` (the run's pickled UDFs) and ``roi`` (the run's flat roi), sent
    once per worker when large, are put back into the task here. A task
    stopped by :class:`TaskStopped` reports a ``TaskCancelledError``.

    Examples
    --------
    >>> run_task(lambda task: task * 2, 21, "udfwidgets-run-0")
    42
    >>> def work(task):
    ...     stop_task("udfwidgets-run-1")  # what the scheduler's cancel leads to
    ...     return task * 2
    >>> run_task(work, 21, "udfwidgets-run-1")
    Traceback (most recent call last):
    ...
    udfwidgets.executor.dask_worker.TaskCancelledError: task udfwidgets-run-1 was cancelled
    """
    try:
        if blob is not None:
            task.blob = blob
        if roi is not None:
            task.roi = roi
        with _LOCK:
            _RUNNING[key] = threading.get_ident()
        try:
            return fn(task)
        finally:
            with _LOCK:
                _RUNNING.pop(key, None)
            _flush()  # a stop requested just now is raised here, inside this function
    except TaskStopped:
        raise TaskCancelledError(f"task {key} was cancelled") from None


def stop_task(key: str) -> bool:
    """Raise :class:`TaskStopped` in the thread that runs ``key`` (if it still runs)."""
    with _LOCK:
        ident = _RUNNING.pop(key, None)
        if ident is None:
            return False
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(ident), ctypes.py_object(TaskStopped)
        )
    return True


def running_tasks() -> list[str]:
    """Keys of the udfwidgets tasks this worker process runs now (for tests)."""
    with _LOCK:
        return list(_RUNNING)


class WorkerSetup(WorkerPlugin):
    """Set a dask worker up once, like a loky worker of the processes executor.

    Parameters
    ----------
    client_pid : int
        The client's process id: a worker in that process (a ``LocalCluster``
        with ``processes=False``) is left as it is, and a worker process that
        is its child moves to a process group of its own.
    threads_per_host : dict of str to int
        Worker threads per host, at registration; BLAS/OpenMP get
        ``cores // threads`` threads per worker process.

    Examples
    --------
    The dask executor registers it (``client.register_plugin``); a worker in the
    client's own process is left as it is:

    >>> import os
    >>> plugin = WorkerSetup(client_pid=os.getpid(), threads_per_host={"127.0.0.1": 2})
    >>> plugin.name
    'udfwidgets-worker-setup'
    >>> plugin.setup(worker=None)
    >>> plugin.report["in_client"]
    True
    """

    idempotent = True
    name = PLUGIN_NAME

    def __init__(self, client_pid: int, threads_per_host: dict[str, int]):
        self.client_pid = client_pid
        self.threads_per_host = dict(threads_per_host)
        self.report: dict[str, Any] = {}

    def setup(self, worker) -> None:
        report = self.report = {"pid": os.getpid(), "in_client": os.getpid() == self.client_pid}
        if report["in_client"]:
            return  # never tune the user's own process
        from ..io import files
        from .task import tune_malloc

        report["malloc"] = tune_malloc()
        files.KEEP_MAPS_UP_TO = 1 << 62  # workers keep every file map between runs
        host = worker.address.rsplit(":", 1)[0].split("://")[-1]
        threads = self.threads_per_host.get(host) or worker.state.nthreads or 1
        inner = max(1, (os.cpu_count() or 1) // threads)
        for var in _BLAS_VARS:
            os.environ[var] = str(inner)
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(inner)
        except Exception:  # pragma: no cover - threadpoolctl is a dependency
            pass
        report["inner_threads"] = inner
        report["detached"] = False
        if os.getppid() == self.client_pid and hasattr(os, "setpgid"):
            try:
                os.setpgid(0, 0)
                report["detached"] = True
            except OSError:
                pass

    def transition(self, key, start: str, finish: str, *args, **kwargs) -> None:
        """Stop a running task of ours when the scheduler cancels or releases it."""
        if start == "executing" and finish in ("cancelled", "released", "forgotten"):
            stop_task(key if isinstance(key, str) else str(key))


def worker_report(dask_worker=None) -> dict:
    """What :class:`WorkerSetup` did in this worker process (run with ``client.run``)."""
    plugin = getattr(dask_worker, "plugins", {}).get(PLUGIN_NAME) if dask_worker else None
    out = dict(getattr(plugin, "report", {}) or {})
    from ..io import files

    out["keep_maps_up_to"] = files.KEEP_MAPS_UP_TO
    out["pgid"] = os.getpgid(0) if hasattr(os, "getpgid") else None
    try:
        from threadpoolctl import threadpool_info

        out["blas_threads"] = sorted({i["num_threads"] for i in threadpool_info()})
    except Exception:  # pragma: no cover
        out["blas_threads"] = []
    return out
