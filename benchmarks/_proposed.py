"""Proposed engine changes, tried from the outside (engines ``uwp-*``, flag ``--proposed``).

The benchmark found costs in udfwidgets' engine that do not depend on the
UDF (see ``benchmarks/README.md``). This module reproduces the engine with
them removed, without touching the package, so that the gain can be measured
in the same interleaved run:

1. **Polling for results.** joblib's ``Parallel(return_as="generator_unordered")``
   waits for results in a loop with ``time.sleep(0.01)``, which adds up to
   10 ms to every run (and to every partial result). :class:`FuturesExecutor`
   hands the same tasks to a ``concurrent.futures`` pool (threads) or a loky
   process pool and waits with ``as_completed``, which wakes up on completion.
2. **np.memmap frames.** Frames handed to ``process_frame`` are ``np.memmap``
   views, and every ``tile[i]``, ``np.sum(frame)`` etc. then runs the
   subclass's Python-level ``__getitem__``/``__array_finalize__``/
   ``__array_wrap__``. :class:`_Patched` makes the partition's ``read`` return
   a plain ``ndarray`` view of the same pages. (The engine does this itself
   since commit e827820; the wrapper is then a no-op.)
3. **malloc thresholds in fresh workers.** :func:`tune_malloc` runs in each
   ``uwp-processes`` worker (only there: ``mallopt`` is process-wide, and the
   benchmark's main process hosts the other in-process engines).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

import numpy as np

from udfwidgets.executor.backends import Executor


class _Patched:
    """Picklable wrapper run where the task runs: its partition hands out plain ndarrays.

    The override is set on the task's own partition object (never on the
    class), so the unmodified engines in the same process are not affected.
    """

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, task):
        part = task.partition
        orig = part.read

        def read(start, stop):
            out = orig(start, stop)
            return out.view(np.ndarray) if isinstance(out, np.memmap) else out

        part.read = read
        try:
            return self.fn(task)
        finally:
            del part.read


#: glibc mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def tune_malloc(mmap_threshold: int = 32 << 20, trim_threshold: int = 64 << 20) -> bool:
    """Keep NumPy temporaries of up to 32 MiB on the heap instead of fresh ``mmap`` pages.

    glibc serves allocations above ``M_MMAP_THRESHOLD`` (128 KiB in a fresh
    process) with ``mmap`` and returns them with ``munmap``, so every tile-sized
    temporary is page-faulted and zeroed by the kernel again; heap memory above
    ``M_TRIM_THRESHOLD`` is returned to the system as soon as it is free. A
    process that has already freed a large block has its thresholds raised by
    glibc itself, which is why the same UDF can be several times faster in a
    long-lived notebook than in a fresh worker. Returns False off glibc.
    """
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))
        ok &= libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold))
        return bool(ok)
    except (OSError, AttributeError):
        return False


def _worker_init():
    _limit_blas()
    tune_malloc()


def _limit_blas():
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass


def as_completed_stream(pool, fn, tasks, in_flight: int, abort):
    """Keep ``in_flight`` tasks submitted to ``pool``; yield results as they complete.

    ``concurrent.futures.wait`` wakes up when a task completes (no polling
    interval); its short timeout only lets an asynchronous exception (the
    cancellation of an async run) reach this thread within 0.1 s. Leaving
    early (``break``, ``close()``, an error) cancels the tasks not started and
    calls ``abort()`` if some are still running (kill the process workers, as
    joblib does).
    """
    from concurrent.futures import FIRST_COMPLETED, wait
    from itertools import islice
    tasks = iter(tasks)
    pending = {pool.submit(fn, t) for t in islice(tasks, in_flight)}
    finished = False
    try:
        while pending:
            done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            for fut in done:
                pending |= {pool.submit(fn, t) for t in islice(tasks, 1)}
                yield fut.result()
        finished = True
    finally:
        if not finished:
            for fut in pending:
                fut.cancel()
            if any(not fut.done() for fut in pending):
                abort()


class FuturesExecutor(Executor):
    """Threads or loky processes driven by :func:`as_completed_stream` (no polling)."""

    def __init__(self, kind: str, n_jobs: int | None = None):
        if kind not in ("threads", "processes"):
            raise ValueError(f"kind must be 'threads' or 'processes', got {kind!r}")
        self.name = kind
        self.n_workers = n_jobs or os.cpu_count() or 1
        self.pickles_tasks = kind == "processes"
        self._pool = None

    def pool(self):
        if self._pool is None:
            if self.name == "threads":
                self._pool = ThreadPoolExecutor(self.n_workers, thread_name_prefix="uwp")
            else:
                from joblib.externals.loky import ProcessPoolExecutor
                self._pool = ProcessPoolExecutor(self.n_workers, initializer=_worker_init)
        return self._pool

    def _abort(self):
        if self.name == "processes" and self._pool is not None:
            self._pool.shutdown(wait=False, kill_workers=True)
            self._pool = None

    def imap_unordered(self, fn: Callable, tasks: Iterable):
        return as_completed_stream(self.pool(), _Patched(fn), tasks, 2 * self.n_workers,
                                   self._abort)

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


class PlainInlineExecutor(Executor):
    """The inline executor with plain-``ndarray`` frames."""

    name = "inline"
    n_workers = 1
    pickles_tasks = False

    def imap_unordered(self, fn, tasks):
        patched = _Patched(fn)
        return (patched(t) for t in tasks)


def make_proposed_executor(kind: str) -> Executor:
    """``"inline"``, ``"threads"`` or ``"processes"`` with both proposed changes."""
    if kind == "inline":
        return PlainInlineExecutor()
    return FuturesExecutor(kind)
