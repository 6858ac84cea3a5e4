"""Where partitions run: in-process, in threads, in loky processes or on dask.

Results stream back in completion order; closing the stream cancels the rest.
Threads and processes are pools kept between runs (:mod:`.pools`); dask goes
through :class:`joblib.Parallel` with ``return_as="generator_unordered"`` and
joblib's dask backend.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from joblib import Parallel, delayed, parallel_config

__all__ = ["Executor", "InlineExecutor", "DaskExecutor", "make_executor", "EXECUTORS"]

#: The executor names ``Context(executor=...)`` and :func:`make_executor` accept.
EXECUTORS = ("inline", "threads", "processes", "dask")
_ALIASES = {"sync": "inline", "threading": "threads", "loky": "processes",
            "pipelined": "processes", "default": "processes", "delayed": "dask"}


class Executor:
    """Runs a function over tasks and yields the results in completion order.

    Examples
    --------
    >>> ex = make_executor("inline")
    >>> isinstance(ex, Executor), ex.name, ex.n_workers
    (True, 'inline', 1)
    """

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

    def release_files(self) -> None:
        """Drop the file maps kept between runs, here and in the workers."""
        from ..io.files import release_maps
        release_maps()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} workers={self.n_workers}>"


class InlineExecutor(Executor):
    """Serial, in the calling thread: exceptions surface directly, for debugging.

    Examples
    --------
    >>> list(InlineExecutor().imap_unordered(lambda x: x * x, [1, 2, 3]))
    [1, 4, 9]
    """

    name = "inline"
    n_workers = 1
    pickles_tasks = False

    def imap_unordered(self, fn, tasks):
        return (fn(t) for t in tasks)


class DaskExecutor(Executor):
    """A dask.distributed cluster, through joblib's dask backend.

    Parameters
    ----------
    n_jobs : int, optional
        Partitions in flight; by default the cluster's total thread count.
    client : distributed.Client or str, optional
        A client, a scheduler address (a client is made and closed with the
        executor), or None for the current default client.

    Examples
    --------
    Usually made by ``Context(executor="dask", client=...)``:

    >>> DaskExecutor.name
    'dask'
    >>> # ctx = Context(executor="dask", client="tcp://scheduler:8786")
    """

    name = "dask"

    def __init__(self, n_jobs: int | None = None, client: Any = None):
        from joblib import register_parallel_backend

        from ._dask_backend import BACKEND_NAME, DaskBackend
        self.client, self._own_client = _dask_client(client)
        self.n_workers = n_jobs or sum(self.client.nthreads().values()) or 1
        register_parallel_backend(BACKEND_NAME, DaskBackend)
        self._config: dict[str, Any] = {"backend": BACKEND_NAME, "n_jobs": self.n_workers,
                                        "client": self.client}

    def imap_unordered(self, fn, tasks):
        with parallel_config(**self._config):
            parallel = Parallel(return_as="generator_unordered", batch_size=1,
                                pre_dispatch="2 * n_jobs")
            return parallel(delayed(fn)(t) for t in tasks)

    def release_files(self) -> None:
        from ..io.files import release_maps
        super().release_files()
        if self.client is not None:
            self.client.run(release_maps)

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
        return DaskExecutor(n_jobs, client)
    raise ValueError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
