"""Where partitions run: in-process, in threads, in loky processes or on dask.

Results stream back in completion order; closing the stream cancels the rest.
Threads and processes are pools kept between runs (:mod:`.pools`); dask goes
through :class:`joblib.Parallel` with ``return_as="generator_unordered"`` and
joblib's dask backend.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Iterator

from joblib import Parallel, delayed, parallel_config

__all__ = ["Executor", "InlineExecutor", "JoblibExecutor", "make_executor", "EXECUTORS"]

EXECUTORS = ("inline", "threads", "processes", "dask")
_ALIASES = {"sync": "inline", "threading": "threads", "loky": "processes",
            "pipelined": "processes", "default": "processes", "delayed": "dask"}


class Executor:
    """Runs a function over tasks and yields the results in completion order."""

    name: str = "base"
    n_workers: int = 1
    #: Tasks travel to other processes: UDFs are sent pickled. In-process
    #: executors give each task fresh copies instead (a pickle round trip in
    #: the same process would rebind the user's class to copied code).
    pickles_tasks: bool = True

    def imap_unordered(self, fn: Callable, tasks: Iterable) -> Iterator:
        raise NotImplementedError

    def close(self) -> None:
        """Release the workers (if this executor owns them)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} workers={self.n_workers}>"


class InlineExecutor(Executor):
    """Serial, in the calling thread: exceptions surface directly, for debugging."""

    name = "inline"
    n_workers = 1
    pickles_tasks = False

    def imap_unordered(self, fn, tasks):
        return (fn(t) for t in tasks)


class JoblibExecutor(Executor):
    """A joblib backend: ``"threading"``, ``"loky"`` (processes) or ``"dask"``."""

    def __init__(self, backend: str, n_jobs: int | None = None, client: Any = None):
        self.backend = backend
        self._own_client = False
        self.client = None
        cpus = os.cpu_count() or 1
        if backend == "dask":
            self.name = "dask"
            self.client, self._own_client = _dask_client(client)
            nthreads = sum(self.client.nthreads().values()) or 1
            self.n_workers = n_jobs or nthreads
        else:
            self.name = "threads" if backend == "threading" else "processes"
            self.pickles_tasks = backend != "threading"
            if n_jobs is not None and n_jobs < 0:
                n_jobs = max(1, cpus + 1 + n_jobs)
            self.n_workers = n_jobs or cpus
        self._config: dict[str, Any] = {"backend": backend, "n_jobs": self.n_workers}
        if backend == "loky":
            # workers share the cores: keep BLAS/OpenMP from oversubscribing them
            self._config["inner_max_num_threads"] = max(1, cpus // self.n_workers)
        if backend == "dask":
            from joblib import register_parallel_backend

            from ._dask_backend import BACKEND_NAME, DaskBackend
            register_parallel_backend(BACKEND_NAME, DaskBackend)
            self._config.update(backend=BACKEND_NAME, client=self.client)

    def imap_unordered(self, fn, tasks):
        with parallel_config(**self._config):
            parallel = Parallel(return_as="generator_unordered", batch_size=1,
                                pre_dispatch="2 * n_jobs")
            return parallel(delayed(fn)(t) for t in tasks)

    def close(self):
        if self._own_client and self.client is not None:
            self.client.close()
            self.client = None


def _dask_client(client):
    try:
        import distributed
    except ImportError as e:
        raise ImportError("the dask executor needs dask.distributed: pip install "
                          "'udfwidgets[dask]'") from e
    if client is None:
        try:
            return distributed.get_client(), False
        except ValueError:
            raise ValueError("Context(executor='dask') needs client= (a distributed.Client or a "
                             "scheduler address like 'tcp://127.0.0.1:8786')") from None
    if isinstance(client, str):
        return distributed.Client(client), True
    return client, False


def make_executor(executor: str | Executor = "processes", n_jobs: int | None = None,
                  client: Any = None, warm_start: bool = True) -> Executor:
    """An :class:`Executor` by name: ``"inline"``, ``"threads"``, ``"processes"`` or ``"dask"``.

    Examples
    --------
    >>> make_executor("inline").n_workers
    1
    """
    if isinstance(executor, Executor):
        return executor
    name = _ALIASES.get(str(executor), str(executor))
    if name == "inline":
        return InlineExecutor()
    if name == "threads":
        from .pools import ThreadsExecutor
        return ThreadsExecutor(n_jobs)
    if name == "processes":
        from .pools import ProcessesExecutor
        return ProcessesExecutor(n_jobs, warm_start=warm_start)
    if name == "dask":
        return JoblibExecutor("dask", n_jobs, client)
    raise ValueError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
