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

import collections
import itertools
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from .backends import Executor
from .errors import portable_errors

__all__ = ["ThreadsExecutor", "ProcessesExecutor"]

#: How often a waiting driver wakes up (so that an async cancellation or a
#: signal reaches it); results themselves wake it up at once.
_WAKE_UP = 0.1

_BLAS_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "BLIS_NUM_THREADS",
)


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

    def imap_unordered(self, fn: Callable, tasks: Iterable) -> Generator[Any, None, None]:
        run_id = f"udfwidgets-{os.getpid()}-{next(_RUN_IDS)}"
        if self.pickles_tasks:
            fn = portable_errors(fn)
        return self._stream(run_id, fn, iter(tasks))

    def _stream(self, run_id: str, fn, tasks: Iterator) -> Generator[Any, None, None]:
        ahead = 2 * self.n_workers
        pool = self._pool(run_id)
        pending: set[Future] = set()
        finished = False
        try:
            for t in itertools.islice(tasks, ahead):
                pending.add(pool.submit(fn, t))
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
        # a threadpoolctl.ThreadpoolController (threadpoolctl has no types), made on first use
        self._blas: Any = None

    def imap_unordered(self, fn: Callable, tasks: Iterable) -> Generator[Any, None, None]:
        stream = super().imap_unordered(fn, tasks)
        if self.n_workers < 2:
            return stream
        return self._with_blas_limit(stream)

    def _with_blas_limit(self, stream: Generator[Any, None, None]) -> Generator[Any, None, None]:
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
                self._threads = ThreadPoolExecutor(
                    self.n_workers, thread_name_prefix="udfwidgets-worker"
                )
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


def _watch_parent(parent: int, interval: float = 0.5) -> None:
    """Exit this worker when the process that started it has gone (killed, crashed).

    loky workers wait up to 5 minutes for work; without this they outlive a
    killed main process (and keep loky's resource tracker alive) that long.
    """
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            os._exit(0)


def _worker_init(inner_threads: int, parent: int | None = None) -> None:
    """Runs once in every worker process.

    ``parent`` is the pid of the process that made the pool, passed in rather
    than read here: a parent killed while this worker was still starting
    must be noticed too.
    """
    threading.Thread(
        target=_watch_parent,
        args=(parent or os.getppid(),),
        daemon=True,
        name="udfwidgets-parent-watch",
    ).start()
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


#: Guards getting the process-wide loky pool, counting the runs that use it,
#: and stopping it: a stopped run must never kill the pool a newer run uses.
_POOL_LOCK = threading.RLock()
#: id(loky executor) -> number of runs now using it
_ACTIVE_RUNS: collections.Counter[int] = collections.Counter()
#: the open ProcessesExecutors of this process (they all share joblib's one pool)
_OPEN: weakref.WeakSet = weakref.WeakSet()


def _stop_pool(pool, timeout: float = 10.0) -> None:
    """Kill the workers of a loky pool and wait until loky has marked it broken.

    ``pool.terminate(kill_workers=True)`` races with loky's manager thread when
    tasks are still queued (ids left in its work queue whose items it has just
    dropped: the ``ExecutorManagerThread ... KeyError`` traceback). Killing
    the workers instead takes loky's "broken pool" path, which fails the
    outstanding futures, kills the remaining workers and joins its threads
    cleanly; the next run gets a fresh pool.
    """
    processes = list(getattr(pool, "_processes", {}).values())
    for proc in processes:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except (OSError, TypeError):
            pass
    deadline = time.monotonic() + timeout
    flags = getattr(pool, "_flags", None)
    while flags is not None and not flags.shutdown and time.monotonic() < deadline:
        time.sleep(0.002)
    thread = getattr(pool, "_executor_manager_thread", None)
    if thread is not None:
        thread.join(max(0.0, deadline - time.monotonic()))
    for proc in processes:
        try:
            proc.join(max(0.0, deadline - time.monotonic()))
        except (OSError, AttributeError, ValueError, AssertionError):
            pass
    if flags is None or not flags.shutdown:  # not a loky pool as we know it
        pool.terminate(kill_workers=True)
    _clean_all_folders(pool)


def _clean_all_folders(pool) -> None:
    """What ``MemmappingExecutor.terminate`` does once the workers are gone."""
    manager = getattr(pool, "_temp_folder_manager", None)
    if manager is not None:
        try:
            manager._clean_temporary_resources(force=True, allow_non_empty=True)
        except Exception:
            pass


def _memmap_folders() -> set[str]:
    """The memmapping folders of this process that joblib made in /dev/shm.

    joblib makes a manager's folder as soon as the manager is made only in
    /dev/shm (elsewhere, when an array is first written), so only /dev/shm
    can hold the empty folders :meth:`ProcessesExecutor._pool` removes. Its
    entries are listed without ``glob``: globbing /dev/shm and a temp folder of
    2000 entries took 19 ms per run.
    """
    if os.environ.get("JOBLIB_TEMP_FOLDER"):
        return set()
    prefix = f"joblib_memmapping_folder_{os.getpid()}_"
    try:
        with os.scandir("/dev/shm") as entries:
            return {e.path for e in entries if e.name.startswith(prefix)}
    except OSError:
        return set()


class _FolderSweeper:
    """Removes the per-run memmapping folders loky's resource tracker frees late.

    At the end of a run joblib hands the run's memory-mapped arrays to its
    resource tracker, which unlinks them asynchronously; removing the folder
    right then fails and left one empty ``/dev/shm/joblib_memmapping_folder_*``
    per run until the interpreter exited. This retries for a few seconds.
    """

    def __init__(self) -> None:
        self._pending: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, manager, context_id: str, seconds: float = 10.0) -> None:
        with self._lock:
            self._pending.append((manager, context_id, time.monotonic() + seconds))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, daemon=True, name="udfwidgets-shm-sweeper"
                )
                self._thread.start()

    @staticmethod
    def _try(manager, context_id: str) -> bool:
        if context_id not in manager._cached_temp_folders:
            return True
        try:
            manager._clean_temporary_resources(context_id=context_id, force=False)
        except Exception:
            return False
        return context_id not in manager._cached_temp_folders

    def _run(self) -> None:
        while True:
            time.sleep(0.05)
            with self._lock:
                items = list(self._pending)
                self._pending.clear()
            keep = [(m, c, t) for m, c, t in items if not self._try(m, c) and time.monotonic() < t]
            with self._lock:
                self._pending.extend(keep)
                if not self._pending:
                    self._thread = None
                    return


_SWEEPER = _FolderSweeper()


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
        _OPEN.add(self)
        if warm_start:
            threading.Thread(target=self._warm_up, name="udfwidgets-warm-up", daemon=True).start()
        else:
            self._ready.set()

    def _pool(self, run_id=None):
        from joblib.executor import get_memmapping_executor

        with _POOL_LOCK:
            before = _memmap_folders()
            pool = get_memmapping_executor(
                self.n_workers,
                timeout=300,
                initializer=_worker_init,
                initargs=(self.inner_threads, os.getpid()),
                env=self._env,
                context_id=run_id,
            )
            # every call makes a TemporaryResourcesManager, which creates an empty
            # folder at once; a reused pool throws that manager (not its folder) away
            manager = getattr(pool, "_temp_folder_manager", None)
            keep = set(getattr(manager, "_cached_temp_folders", {}).values())
            for folder in _memmap_folders() - before - keep:
                try:
                    os.rmdir(folder)
                except OSError:
                    pass
            if run_id is not None:
                # as joblib.Parallel does: arrays this run memory-maps go to its own folder
                pool._temp_folder_manager.set_current_context(run_id)
                _ACTIVE_RUNS[id(pool)] += 1
        return pool

    def close(self) -> None:
        """Shut the worker processes down, unless another open Context uses them.

        All ProcessesExecutors of a process share joblib's one loky pool.
        """
        _OPEN.discard(self)
        self._ready.wait(30)
        with _POOL_LOCK:
            if len(_OPEN) or sum(_ACTIVE_RUNS.values()):
                return
            from joblib.externals.loky import reusable_executor

            pool = reusable_executor._executor
            if pool is not None and not pool._flags.shutdown:
                pool.shutdown(wait=True, kill_workers=False)
                _clean_all_folders(pool)

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
            threading.Thread(target=self._warm_up, name="udfwidgets-warm-up", daemon=True).start()

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
        # like joblib after an error or interrupt: stop the workers now; the next
        # run starts fresh ones. Not while another run uses the same pool (a run
        # started before this one's clean-up, e.g. after an async cancel): its
        # work would die with ShutdownExecutorError. Then only the queued tasks
        # are cancelled, and the running ones finish unseen.
        with _POOL_LOCK:
            if _ACTIVE_RUNS[id(pool)] > 1:
                for fut in pending:
                    fut.cancel()
                return
            _stop_pool(pool)
        # start the next run's workers now, in the background: a user who breaks out of
        # run_udf_iter and runs again seconds later finds them ready (their start-up,
        # 1-2 s, delayed the next run's first partial result; benchmarks/README.md)
        if self in _OPEN and self._ready.is_set():
            self._ready.clear()
            threading.Thread(target=self._warm_up, name="udfwidgets-warm-up", daemon=True).start()

    def _after_run(self, pool, run_id: str) -> None:
        with _POOL_LOCK:
            _ACTIVE_RUNS[id(pool)] -= 1
            if _ACTIVE_RUNS[id(pool)] <= 0:
                del _ACTIVE_RUNS[id(pool)]
        manager = getattr(pool, "_temp_folder_manager", None)
        if manager is not None:
            # the memory-mapped copies of in-memory arrays made for this run
            if not _FolderSweeper._try(manager, run_id):
                _SWEEPER.add(manager, run_id)


def _n_workers(n_jobs: int | None) -> int:
    cpus = os.cpu_count() or 1
    if n_jobs is None:
        return cpus
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) and not hasattr(n_jobs, "__index__"):
        raise TypeError(f"n_jobs must be an integer (or None for all cores), got {n_jobs!r}")
    n_jobs = int(n_jobs.__index__())
    if n_jobs < 0:
        return max(1, cpus + 1 + n_jobs)
    if n_jobs == 0:
        raise ValueError("n_jobs must not be 0: use None for all cores, or a positive number")
    return int(n_jobs)
