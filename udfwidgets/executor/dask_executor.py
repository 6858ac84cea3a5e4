"""Partitions on a dask.distributed cluster, through dask's own futures API.

Tasks go out with ``client.map`` and come back through
``distributed.as_completed`` (results are fetched in the background as each
task finishes), with at most two tasks per worker thread in flight. The first
tasks of a run go out as one graph (the worker each asks for is a per-key
annotation): one message and one graph update for the scheduler, instead of one
per task, and every worker gets its first task at once (the client holds a
message sent within 10 ms of the previous one back until 10 ms have passed). Why not
joblib's dask backend any more: its result generator polls every 10 ms, it
falls back to running partitions in the user's own process when the cluster
has one thread, and closing it leaves the submitted tasks running on the
cluster (see benchmarks/README.md for the measured difference).

Every task always runs on the cluster. Leaving a run early (``break``, Ctrl-C,
async cancellation) cancels the outstanding futures and stops the running
ones (:mod:`.dask_worker`), so that the next run does not wait behind them.
"""

from __future__ import annotations

import collections
import copy
import itertools
import os
import uuid
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from .backends import Executor
from .errors import portable_errors

__all__ = ["DaskExecutor", "ClusterClosedError", "NoWorkersError"]

#: Pickled UDFs larger than this travel to each worker once per run (scattered),
#: not once per task.
SCATTER_BLOB_BYTES = 1 << 20

#: dask configuration of the scheduler, nannies and workers of a ``LocalCluster`` the
#: executor starts, and recommended for clusters of your own (docs/clusters.md):
#:
#: - dask's statistical profiler samples every worker thread's stack every 10 ms for
#:   the dashboard's Profile page, which cost our tasks 10-25% more worker CPU time
#:   (benchmarks/README.md, "dask");
#: - every scheduler, nanny and worker checks its event loop every 20 ms ("tick"); once
#:   a second keeps the check (a loop blocked for 3 s is still reported) and cut an
#:   idle 2-worker LocalCluster's CPU use from 7-10% to 3-4% of a core in the main
#:   process and from 3-3.7% to 1.3-1.4% in each worker, CPU that the workers' tasks
#:   share on a small machine (benchmarks/results/dask5-2026-12-07.md).
WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
}

#: How long a look at the cluster's workers is reused (seconds). Each look is a
#: round trip to the scheduler (1 ms on a quiet machine, 9 ms on a busy one), and a
#: run needs two (planning, then locality): reused, they cost once per second at
#: most. A worker that left since is harmless (its tasks may run elsewhere); a run
#: that fails forgets the look.
WORKERS_TTL = 1.0

#: An roi larger than this (a bool per frame: 64 Ki frames) travels to each worker
#: once per run (scattered), not once per task: at 1 M frames every task would
#: otherwise carry 1 MiB. Tasks still see the whole roi (``meta.roi``).
SCATTER_ROI_BYTES = 64 << 10


class ClusterClosedError(RuntimeError):
    """The executor's dask client (or the Context) is closed.

    Examples
    --------
    A Context on a client that is closed under it (an in-process cluster here):

    >>> import numpy as np
    >>> from distributed import Client
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sum import SumUDF
    >>> client = Client(processes=False, n_workers=1, dashboard_address=None)
    >>> ctx = Context(executor="dask", client=client)
    >>> ds = ctx.load("memory", data=np.ones((2, 2, 3, 3)))
    >>> client.close()
    >>> ctx.run_udf(dataset=ds, udf=SumUDF())
    Traceback (most recent call last):
    ...
    udfwidgets.executor.dask_executor.ClusterClosedError: the dask client of this Context is closed (scheduler inproc://...): make a new Context with a running client
    >>> ctx.close()
    """


class NoWorkersError(RuntimeError):
    """The dask cluster has no workers to run a partition on.

    Examples
    --------
    A cluster without workers (in-process here); the run waits ``wait_for_workers``
    seconds for one:

    >>> import numpy as np
    >>> from distributed import Client, LocalCluster
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sum import SumUDF
    >>> cluster = LocalCluster(n_workers=0, processes=False, dashboard_address=None)
    >>> client = Client(cluster)
    >>> ctx = Context(executor=DaskExecutor(client=client, wait_for_workers=0.1))
    >>> ctx.run_udf(dataset=ctx.load("memory", data=np.ones((2, 2, 3, 3))), udf=SumUDF())
    Traceback (most recent call last):
    ...
    udfwidgets.executor.dask_executor.NoWorkersError: the dask cluster at inproc://... has no workers (waited 0.1 s): start workers (`dask worker inproc://...`), or wait until restarted ones have joined
    >>> ctx.close(); client.close(); cluster.close()
    """


class DaskExecutor(Executor):
    """A dask.distributed cluster, driven through its futures API.

    Parameters
    ----------
    n_jobs : int, optional
        Partitions to plan for (and, times two, tasks in flight); by default
        the cluster's total thread count at the start of each run. When no
        cluster is given, also the number of local worker processes.
    client : distributed.Client or str, optional
        A client; a scheduler address (a client is made and closed with the
        executor); or None: the current default client, and if there is none,
        a ``LocalCluster`` on 127.0.0.1 with one single-threaded worker
        process per core (``n_jobs`` if given), started and closed with the
        executor.
    path_map : dict of str to str, optional
        ``{prefix_on_client: prefix_on_workers}``: for workers that see the
        data files under another path. Applied to every file-backed
        partition's ``path`` (the longest matching prefix wins).
    locality : bool
        Ask for the same worker for the same partition in every run (its
        page cache and kept file map are there); another worker may still take
        the task when that one is busy (default True).
    wait_for_workers : float
        Seconds a run waits for a cluster without workers (restarting after a
        death, still starting) before it fails (default 30).

    Examples
    --------
    >>> DaskExecutor(n_jobs=0)
    Traceback (most recent call last):
    ...
    ValueError: n_jobs must be a positive integer or None (all the cluster's threads), got 0
    """

    name = "dask"
    pickles_tasks = True
    #: Each task costs the main node about 6 ms (client, and the scheduler of a LocalCluster)
    #: and a latency of about 10 ms that the next task on a worker partly sits behind, where
    #: a loky task costs 1-2 ms: 512 MiB partitions (LiberTEM's size too) made 1 GiB runs
    #: 10-20% faster than 256 MiB ones (benchmarks/README.md, "dask").
    partition_bytes = 512 * 2**20
    #: Scans too small for two partitions per worker thread are split into one per
    #: thread, not two: a worker's second task ran slower while the first one's result
    #: was being fetched (benchmarks/results/dask-one-per-worker-2026-12-07.md).
    partitions_per_worker = 1

    def __init__(
        self,
        n_jobs: int | None = None,
        client: Any = None,
        path_map: Mapping[str, str] | None = None,
        locality: bool = True,
        wait_for_workers: float = 30.0,
    ):
        self._n_jobs = _check_n_jobs(n_jobs)
        self._seen: tuple[float, dict[str, int]] | None = None  # (when, workers) of the last look
        self.path_map = _check_path_map(path_map)
        self.locality = bool(locality)
        self.wait_for_workers = float(wait_for_workers)
        self.cluster = None  # a LocalCluster this executor started and owns
        self.client, self._own_client, self.cluster = _connect(client, self._n_jobs)
        self._scheduler = "?"
        self._scheduler = self._address()  # for messages after the client has closed
        try:
            self._setup_workers()
        except Exception:
            self.close()
            raise

    # --- the cluster -------------------------------------------------------------
    def _setup_workers(self) -> None:
        from .dask_worker import WorkerSetup

        info = self.client.scheduler_info(n_workers=-1)
        per_host: dict[str, int] = {}
        for w in info.get("workers", {}).values():
            host = w.get("host") or "?"
            per_host[host] = per_host.get(host, 0) + int(w.get("nthreads", 1))
        # registered once per cluster: workers that join later (restarts) get it too
        self.client.register_plugin(WorkerSetup(os.getpid(), per_host))

    def _live_client(self):
        if self.client is None:
            raise ClusterClosedError(
                "this dask executor is closed (Context.close() was called): "
                "make a new Context to run again"
            )
        status = getattr(self.client, "status", "running")
        if status in ("closing", "closed"):
            raise ClusterClosedError(
                f"the dask client of this Context is {status} "
                f"(scheduler {self._address()}): make a new Context with a "
                "running client"
            )
        return self.client

    def _address(self) -> str:
        try:
            return str(self.client.scheduler.address)
        except Exception:
            return self._scheduler  # the client is closed: the address it had

    def workers(self, wait: bool = True) -> dict[str, int]:
        """``{worker address: threads}`` of the cluster (as seen at most
        :data:`WORKERS_TTL` seconds ago); with ``wait``, waits for at least one worker
        (:attr:`wait_for_workers` seconds at most)."""
        import time

        client = self._live_client()
        seen = self._seen
        if seen is not None and time.monotonic() - seen[0] < WORKERS_TTL:
            return dict(seen[1])
        deadline = time.monotonic() + self.wait_for_workers
        while True:
            info = client.scheduler_info(n_workers=-1).get("workers", {})
            found = {addr: int(w.get("nthreads", 1)) for addr, w in info.items()}
            if found or not wait:
                found = dict(sorted(found.items()))
                self._seen = (time.monotonic(), found) if found else None
                return dict(found)
            if time.monotonic() >= deadline:
                raise NoWorkersError(
                    f"the dask cluster at {self._address()} has no workers (waited "
                    f"{self.wait_for_workers:g} s): start workers (`dask worker "
                    f"{self._address()}`), or wait until restarted ones have joined"
                )
            time.sleep(0.1)

    @property
    def n_workers(self) -> int:
        """``n_jobs``, or the cluster's threads now (0 once closed or without workers)."""
        if self._n_jobs is not None:
            return self._n_jobs
        try:
            return sum(self.workers(wait=False).values())
        except ClusterClosedError:
            return 0

    @n_workers.setter
    def n_workers(self, value: int) -> None:
        # Executor.n_workers is a plain attribute elsewhere; here setting it is n_jobs=value
        self._n_jobs = _check_n_jobs(value)

    # --- running -----------------------------------------------------------------
    def imap_unordered(self, fn: Callable, tasks: Iterable) -> Iterator:
        client = self._live_client()
        found = self.workers()
        in_flight = 2 * (self._n_jobs or sum(found.values()))
        # an exception the client cannot unpickle would otherwise never arrive (the run hangs)
        return self._stream(client, list(found), in_flight, portable_errors(fn), iter(tasks))

    def _stream(self, client, workers: list[str], in_flight: int, fn, tasks) -> Iterator:
        from distributed import as_completed

        from .dask_worker import run_task

        run_id = uuid.uuid4().hex[:12]
        counter = itertools.count()
        blobs: dict[int, Any] = {}  # id(blob or roi) -> its scattered future (large ones)
        pending: dict[str, Any] = {}
        done = as_completed(loop=client.loop, with_results=True, raise_errors=False)

        def scattered(value) -> Any:
            fut = blobs.get(id(value))
            if fut is None:
                fut = blobs[id(value)] = client.scatter(value, hash=False)
            return fut

        def prepare(task) -> tuple[str, Any, str | None, dict[str, Any]]:
            """(key, task, worker asked for, values scattered once per run) of one task."""
            key = f"udfwidgets-{run_id}-{next(counter)}"
            task, part = self._localize(task)
            blob = getattr(task, "blob", None)
            roi = getattr(task, "roi", None)
            extra: dict[str, Any] = {}
            if isinstance(blob, bytes) and len(blob) > SCATTER_BLOB_BYTES:
                extra["blob"] = scattered(blob)
            if isinstance(roi, np.ndarray) and roi.nbytes > SCATTER_ROI_BYTES:
                extra["roi"] = scattered(roi)
            if extra:
                task = copy.copy(task)
                for name in extra:
                    setattr(task, name, None)
            worker = None
            if self.locality and part is not None and workers:
                worker = workers[_slot(part, len(workers))]
            return key, task, worker, extra

        def submit(tasks_now: Iterable) -> None:
            """Submit tasks as one graph (one ``client.map``): the scheduler gets them in
            one message and handles one graph update. The worker each task asks for is an
            annotation that the scheduler looks up by the task's key."""
            batch = [prepare(task) for task in tasks_now]
            if not batch:
                return
            extra = batch[0][3]
            if all(b[3].keys() == extra.keys() for b in batch) and all(
                b[3][k] is extra[k] for b in batch for k in extra
            ):
                send(batch)
            else:  # (not expected: the scattered values are the run's own)
                for b in batch:
                    send([b])

        def send(batch: list[tuple[str, Any, str | None, dict[str, Any]]]) -> None:
            import dask

            keys = [key for key, _, _, _ in batch]
            where = {key: [worker] for key, _, worker, _ in batch if worker is not None}
            annotations: dict[str, Any] = {}
            if where:
                # a key not in ``where`` (another node of the graph) gets no restriction
                annotations = {
                    "workers": collections.defaultdict(list, where).__getitem__,
                    "allow_other_workers": True,
                }
            with dask.annotate(**annotations), warnings.catch_warnings():
                # an in-memory dataset's tasks carry their frames, which must reach the
                # workers whether in one graph or one message per task: dask's advice for
                # a graph over 10 MB ("load the data with dask") is not for our users
                warnings.filterwarnings("ignore", "Sending large graph", UserWarning)
                futures = client.map(
                    run_task,
                    [fn] * len(keys),
                    [task for _, task, _, _ in batch],
                    keys,
                    key=keys,
                    pure=False,
                    **batch[0][3],
                )
            for future in futures:
                pending[future.key] = future
            done.update(futures)

        finished = False
        try:
            submit(itertools.islice(tasks, in_flight))
            while pending:
                future, result = next(done)
                pending.pop(future.key, None)
                status = future.status
                future.release()
                if status == "error":
                    _, exc, tb = result
                    raise exc.with_traceback(tb)
                if status == "cancelled":
                    raise ClusterClosedError(
                        "a partition's task was cancelled on the dask cluster (client.restart(), "
                        "the client closing, or another client cancelling it); run again"
                    )
                submit(itertools.islice(tasks, 1))
                yield result
            finished = True
        finally:
            if not finished:
                self._seen = None  # a worker may have died: look again next time
            if not finished and pending:
                _cancel(client, list(pending.values()))
            pending.clear()
            if blobs:
                _cancel(client, list(blobs.values()))

    def _localize(self, task):
        """Apply :attr:`path_map` to the task's partition; returns (task, partition)."""
        part = getattr(task, "partition", None)
        if part is None or not self.path_map:
            return task, part
        part = part.with_paths(lambda path: map_path(path, self.path_map))
        task = copy.copy(task)
        task.partition = part
        return task, part

    # --- files and shutdown --------------------------------------------------------
    def release_files(self) -> None:
        from ..io.files import release_maps

        super().release_files()
        if self.client is not None:
            self._live_client().run(release_maps)

    def close(self) -> None:
        client, cluster = self.client, self.cluster
        self.client = self.cluster = None
        if client is not None and self._own_client:
            try:
                client.close()
            except Exception:
                pass
        if cluster is not None:
            try:
                cluster.close()
            except Exception:
                pass

    def __repr__(self) -> str:
        if self.client is None:
            return "<DaskExecutor dask (closed)>"
        return f"<DaskExecutor dask scheduler={self._address()}>"


def map_path(path: str, path_map: Mapping[str, str]) -> str:
    """``path`` with its longest matching prefix of ``path_map`` replaced.

    A prefix matches whole path components only.

    Examples
    --------
    >>> map_path("/home/me/data/scan.raw", {"/home/me/data": "/cluster/data"})
    '/cluster/data/scan.raw'
    >>> map_path("/home/me/database/x.raw", {"/home/me/data": "/cluster/data"})
    '/home/me/database/x.raw'
    """
    for prefix in sorted(path_map, key=len, reverse=True):
        base = prefix.rstrip("/") or "/"
        if path == base:
            return path_map[prefix]
        if path.startswith(base if base.endswith("/") else base + "/"):
            target = path_map[prefix].rstrip("/") or "/"
            rest = path[len(base) :].lstrip("/")
            return target + ("" if target.endswith("/") else "/") + rest
    return path


def _slot(part, n: int) -> int:
    """The same worker slot for the same partition of the same file, in every run."""
    path = getattr(part, "path", None)
    seed = zlib.crc32(path.encode()) if isinstance(path, str) else 0
    return (seed + int(getattr(part, "index", 0))) % n


def _cancel(client, futures) -> None:
    try:
        client.cancel(futures, force=True)
    except Exception:  # the client may be closing: nothing left to cancel then
        pass


def _check_n_jobs(n_jobs):
    if n_jobs is None or n_jobs == -1 and not isinstance(n_jobs, bool):
        return None
    import numbers

    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs < 1:
        raise ValueError(
            f"n_jobs must be a positive integer or None (all the cluster's threads), got {n_jobs!r}"
        )
    return int(n_jobs)


def _check_path_map(path_map):
    if path_map is None:
        return {}
    if not isinstance(path_map, Mapping):
        raise TypeError(
            "path_map must be a dict {prefix_on_client: prefix_on_workers}, got "
            f"{type(path_map).__name__}"
        )
    out = {}
    for k, v in path_map.items():
        try:
            k, v = os.fspath(k), os.fspath(v)
        except TypeError:
            raise TypeError(
                f"path_map keys and values must be paths (str), got {k!r}: {v!r}"
            ) from None
        if not k or not v:
            raise ValueError(f"path_map prefixes must not be empty, got {k!r}: {v!r}")
        out[k] = v
    return out


def _connect(client, n_jobs):
    """(client, owns the client, owned LocalCluster or None)."""
    try:
        import distributed
    except ImportError as e:
        raise ImportError(
            "the dask executor needs dask.distributed: pip install 'udfwidgets[dask]'"
        ) from e
    if client is None:
        try:
            return distributed.get_client(), False, None
        except ValueError:
            pass
        return _local_cluster(distributed, n_jobs)
    if isinstance(client, str):
        return distributed.Client(client), True, None
    if not isinstance(client, distributed.Client):
        raise TypeError(
            "client= must be a distributed.Client or a scheduler address like "
            f"'tcp://127.0.0.1:8786', got {type(client).__name__}"
        )
    return client, False, None


def _local_cluster(distributed, n_jobs):
    """A LocalCluster on the loopback interface, owned by the executor."""
    import logging

    import dask

    n = n_jobs or os.cpu_count() or 1
    # the workers inherit this configuration (see WORKER_CONFIG)
    with dask.config.set(WORKER_CONFIG):
        cluster = distributed.LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        )
    try:
        client = distributed.Client(cluster, set_as_default=False)
    except Exception:
        cluster.close()
        raise
    return client, True, cluster
