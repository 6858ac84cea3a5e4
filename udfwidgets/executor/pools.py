"""Thread and process pools driven by ``concurrent.futures`` waits.

Why not ``joblib.Parallel(return_as="generator_unordered")`` here: its
generator looks for finished tasks every 10 ms (``time.sleep(0.01)`` in
``Parallel._retrieve``), which added 10 ms to every run and to every partial
result (an empty run over a 64 MiB file: 14 ms through joblib against 1.5 ms
waiting on the futures; see benchmarks/README.md). The pools are still
joblib's: processes come from joblib's reusable loky executor with its
memory-mapping reducers (arrays over 1 MB travel as memory maps), threads from
the standard library. The dask executor keeps ``joblib.Parallel``.
"""
from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Iterable, Iterator

from .backends import Executor

__all__ = ["ThreadsExecutor", "ProcessesExecutor"]

#: How often a waiting driver wakes up (so that an async cancellation or a
#: signal reaches it); results themselves wake it up at once.
_WAKE_UP = 0.1

_BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "BLIS_NUM_THREADS")


class _PoolExecutor(Executor):
    """Submit up to two tasks per worker ahead, yield results as they complete."""

    def _pool(self, run_id: str | None = None):
        raise NotImplementedError

    def _abort(self, pool, pending: set[Future]) -> None:
        """Stop the outstanding tasks: cancel queued ones (running threads finish)."""
        for fut in pending:
            fut.cancel()

    def _after_run(self, pool, run_id: str) -> None:
        """Release what the run left behind."""

    def imap_unordered(self, fn: Callable, tasks: Iterable) -> Iterator:
        run_id = f"udfwidgets-{os.getpid()}-{next(_RUN_IDS)}"
        return self._stream(self._pool(run_id), run_id, fn, iter(tasks))

    def _stream(self, pool, run_id: str, fn, tasks) -> Iterator:
        ahead = 2 * self.n_workers
        pending: set[Future] = {pool.submit(fn, t) for t in itertools.islice(tasks, ahead)}
        finished = False
        try:
            while pending:
                done, pending = wait(pending, timeout=_WAKE_UP, return_when=FIRST_COMPLETED)
                for fut in done:
                    result = fut.result()
                    pending |= {pool.submit(fn, t) for t in itertools.islice(tasks, 1)}
                    yield result
            finished = True
        finally:
            if not finished and pending:
                self._abort(pool, pending)
            self._after_run(pool, run_id)


_RUN_IDS = itertools.count()


class ThreadsExecutor(_PoolExecutor):
    """A pool of threads in this process, kept between runs.

    Good for UDFs whose work happens in NumPy (which releases the GIL); UDFs
    are copied per partition, never pickled. Running partitions cannot be
    stopped: an interrupted run lets them finish and discards their results.
    While a run is going, BLAS in this process is limited to ``cores //
    n_workers`` threads (with threadpoolctl), so that matrix products of
    parallel partitions do not fight for the same cores.

    Examples
    --------
    >>> ex = ThreadsExecutor(n_jobs=1)
    >>> sorted(ex.imap_unordered(abs, [-1, -2, 3]))
    [1, 2, 3]
    >>> ex.close()
    """

    name = "threads"
    pickles_tasks = False

    def __init__(self, n_jobs: int | None = None):
        self.n_workers = _n_workers(n_jobs)
        self.inner_threads = max(1, (os.cpu_count() or 1) // self.n_workers)
        self._threads: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._blas = None  # threadpoolctl controller, made on first use

    def imap_unordered(self, fn: Callable, tasks: Iterable) -> Iterator:
        stream = super().imap_unordered(fn, tasks)
        if self.n_workers < 2:
            return stream
        return self._with_blas_limit(stream)

    def _with_blas_limit(self, stream: Iterator) -> Iterator:
        if self._blas is None:
            from threadpoolctl import ThreadpoolController
            self._blas = ThreadpoolController()
        with self._blas.limit(limits=self.inner_threads, user_api="blas"):
            try:
                yield from stream
            finally:
                stream.close()

    def _pool(self, run_id=None):
        with self._lock:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(self.n_workers,
                                                   thread_name_prefix="udfwidgets-worker")
            return self._threads

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None


def _anonymous_memory(pid: int, force_gc: bool = False) -> int:
    """Private resident memory of a process; mapped file pages do not count."""
    if force_gc:
        import gc
        gc.collect()
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _worker_init(inner_threads: int) -> None:
    """Runs once in every worker process."""
    from ..io import files
    from .task import tune_malloc
    tune_malloc()
    files.KEEP_MAPS_UP_TO = 1 << 62  # workers keep every file map between runs
    # loky restarts a worker whose RSS grew by 300 MB, taking it for a leak; the
    # memory maps a worker keeps between runs (io/files.py) are reclaimable page
    # cache, not a leak: let the check look at anonymous memory only.
    if os.path.exists(f"/proc/{os.getpid()}/status"):
        from joblib.externals.loky import process_executor
        process_executor._get_memory_usage = _anonymous_memory
    from threadpoolctl import threadpool_limits
    threadpool_limits(inner_threads)


def _warm_worker() -> int:
    """The warm-up task: import what running a partition needs, before the first run."""
    from ..io import files  # noqa: F401
    from . import task  # noqa: F401
    return os.getpid()


class ProcessesExecutor(_PoolExecutor):
    """joblib's reusable loky process pool, warm across runs.

    Workers limit BLAS/OpenMP to ``cores // workers`` threads each, and keep
    tile-sized temporaries on the heap (:func:`~udfwidgets.executor.task.tune_malloc`).
    With ``warm_start`` the workers start in the background as soon as the
    executor is made, so that in a notebook they are ready by the first run.

    Examples
    --------
    Usually made by ``Context()`` (the default executor):

    >>> ex = ProcessesExecutor(n_jobs=1, warm_start=False)
    >>> ex.name, ex.n_workers
    ('processes', 1)
    >>> ex.close()
    """

    name = "processes"
    pickles_tasks = True

    def __init__(self, n_jobs: int | None = None, warm_start: bool = True):
        self.n_workers = _n_workers(n_jobs)
        cpus = os.cpu_count() or 1
        self.inner_threads = max(1, cpus // self.n_workers)
        self._env = {var: str(self.inner_threads) for var in _BLAS_VARS}
        self._ready = threading.Event()
        if warm_start:
            threading.Thread(target=self._warm_up, name="udfwidgets-warm-up", daemon=True).start()
        else:
            self._ready.set()

    def _pool(self, run_id=None):
        from joblib.executor import get_memmapping_executor
        pool = get_memmapping_executor(self.n_workers, timeout=300, initializer=_worker_init,
                                       initargs=(self.inner_threads,), env=self._env,
                                       context_id=run_id)
        if run_id is not None:
            # as joblib.Parallel does: arrays this run memory-maps go to its own folder
            pool._temp_folder_manager.set_current_context(run_id)
        return pool

    def release_files(self) -> None:
        """Drop kept file maps: here, and by restarting the worker processes.

        loky cannot address each worker, so the idle workers are shut down
        (they hold the maps) and fresh ones are started in the background.
        """
        super().release_files()
        self._ready.wait()
        self._ready.clear()
        try:
            self._pool().shutdown(wait=True, kill_workers=True)
        finally:
            threading.Thread(target=self._warm_up, name="udfwidgets-warm-up",
                             daemon=True).start()

    def _warm_up(self) -> None:
        try:
            pool = self._pool()
            wait([pool.submit(_warm_worker) for _ in range(self.n_workers)])
        except Exception:  # the first run will report what is wrong
            pass
        finally:
            self._ready.set()

    @property
    def ready(self) -> bool:
        """True once the worker processes have started."""
        return self._ready.is_set()

    def _abort(self, pool, pending: set[Future]) -> None:
        # like joblib after an error or interrupt: stop the workers now (loky
        # fails the outstanding futures itself); the next run starts fresh ones
        pool.terminate(kill_workers=True)

    def _after_run(self, pool, run_id: str) -> None:
        manager = getattr(pool, "_temp_folder_manager", None)
        if manager is not None:
            try:  # the memory-mapped copies of in-memory arrays made for this run
                manager._clean_temporary_resources(context_id=run_id, force=False)
            except Exception:
                pass

def _n_workers(n_jobs: int | None) -> int:
    cpus = os.cpu_count() or 1
    if n_jobs is None:
        return cpus
    if n_jobs < 0:
        return max(1, cpus + 1 + n_jobs)
    if n_jobs == 0:
        raise ValueError("n_jobs must not be 0: use None for all cores, or a positive number")
    return int(n_jobs)
