"""Where partitions run: in-process, in threads, in loky processes or on dask.

Results stream back in completion order; closing the stream cancels the rest.
Threads and processes are pools kept between runs (:mod:`.pools`); dask goes
through dask.distributed's own futures API (:mod:`.dask_executor`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..io.dataset import PARTITIONS_PER_WORKER, TARGET_PARTITION_BYTES

__all__ = ["Executor", "InlineExecutor", "DaskExecutor", "make_executor", "EXECUTORS"]

#: The executor names ``Context(executor=...)`` and :func:`make_executor` accept.
EXECUTORS = ("inline", "threads", "processes", "dask")
_ALIASES = {
    "sync": "inline",
    "threading": "threads",
    "loky": "processes",
    "pipelined": "processes",
    "default": "processes",
    "delayed": "dask",
}


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
    #: Default partitions of a run aim at this size (a dataset's ``num_partitions`` wins).
    partition_bytes: int = TARGET_PARTITION_BYTES
    #: ... and there are at least this many per worker.
    partitions_per_worker: int = PARTITIONS_PER_WORKER

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


def make_executor(
    executor: str | Executor = "processes",
    n_jobs: int | None = None,
    client: Any = None,
    warm_start: bool = True,
) -> Executor:
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


from .dask_executor import DaskExecutor  # noqa: E402  (it subclasses Executor)
