"""The dask executor on real clusters on 127.0.0.1: results, worker set-up, cancellation,
errors, path_map, locality, an owned LocalCluster."""

from __future__ import annotations

import asyncio
import faulthandler
import os
import re
import signal
import subprocess
import sys
import threading
import time
import types
import warnings

import numpy as np
import pytest

from udfwidgets import UDF, Context
from udfwidgets.executor import dask_executor
from udfwidgets.executor.dask_executor import (
    ClusterClosedError,
    DaskExecutor,
    NoWorkersError,
    map_path,
)
from udfwidgets.executor.errors import ContextClosedError
from udfwidgets.udf.stddev import StdDevUDF
from udfwidgets.udf.sum import SumUDF
from udfwidgets.udf.sumsigudf import SumSigUDF

distributed = pytest.importorskip("distributed")

# dask_worker imports distributed itself: it can only follow the skip above.
from udfwidgets.executor.dask_worker import running_tasks, worker_report  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SlowUDF(UDF):
    """Busy for ``delay`` s per frame (Python code, so a stop lands between frames) and
    leaves a file per frame in ``marker_dir``."""

    def __init__(self, marker_dir, delay=0.05):
        super().__init__(marker_dir=marker_dir, delay=delay)

    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav")}

    def process_frame(self, frame):
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < self.params.delay:
            pass
        idx = int(
            np.ravel_multi_index(tuple(self.meta.coordinates[0]), self.meta.dataset_shape.nav)
        )
        open(os.path.join(self.params.marker_dir, str(idx)), "w").close()
        self.results.x[:] = 1


class PidUDF(UDF):
    """The process id that ran each frame."""

    def get_result_buffers(self):
        return {"pid": self.buffer(kind="nav", dtype=np.int64)}

    def process_frame(self, frame):
        self.results.pid[:] = os.getpid()


class DotUDF(UDF):
    """Frames dotted with a large parameter (its pickle is bigger than 1 MiB)."""

    def __init__(self, weights):
        super().__init__(weights=weights)

    def get_result_buffers(self):
        return {"dot": self.buffer(kind="nav", dtype=np.float64)}

    def process_tile(self, tile):
        w = self.params.weights
        self.results.dot[:] = tile.reshape(len(tile), -1) @ w[: tile[0].size]


def frames_done(path):
    return len(os.listdir(path))


@pytest.fixture(scope="module")
def dctx(dask_client):
    ctx = Context(executor="dask", client=dask_client)
    yield ctx
    ctx.close()


def settled(path, quiet=0.5, limit=5.0):
    """Wait until no marker file has appeared for ``quiet`` seconds; returns the count."""
    deadline = time.monotonic() + limit
    last = frames_done(path)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = frames_done(path)
        if now == last:
            return now
        last = now
    return last


def no_tasks_left(client, limit=3.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not any(client.run(running_tasks).values()) and not any(client.processing().values()):
            return True
        time.sleep(0.05)
    return False


# --- results -------------------------------------------------------------------------


@pytest.mark.parametrize("num_partitions", [1, 3, 7])
@pytest.mark.parametrize("use_roi", [False, True])
def test_results_match_numpy(dctx, tmp_path, rng, num_partitions, use_roi):
    data = rng.integers(0, 1000, size=(6, 7, 8, 9)).astype(np.uint16)
    path = tmp_path / "scan.raw"
    data.tofile(path)
    roi = rng.random((6, 7)) < 0.5 if use_roi else None
    sel = data[roi] if use_roi else data.reshape(-1, 8, 9)
    for ds in (
        dctx.load("memory", data=data, num_partitions=num_partitions),
        dctx.load(
            "raw",
            path=str(path),
            nav_shape=(6, 7),
            sig_shape=(8, 9),
            dtype=np.uint16,
            num_partitions=num_partitions,
        ),
    ):
        total, sums, sd = dctx.run_udf(
            dataset=ds, udf=[SumUDF(), SumSigUDF(), StdDevUDF()], roi=roi
        )
        np.testing.assert_allclose(total["intensity"].data, sel.sum(axis=0, dtype=np.float64))
        want = data.sum(axis=(2, 3), dtype=np.float64)
        got = sums["intensity"].data
        if use_roi:
            np.testing.assert_allclose(got[roi], want[roi])
            assert np.isnan(got[~roi]).all()
        else:
            np.testing.assert_allclose(got, want)
        np.testing.assert_allclose(sd["var"].data, sel.astype(np.float64).var(axis=0), rtol=1e-5)


def test_partial_results_arrive_as_tasks_finish(dctx, rng):
    data = rng.random((8, 8, 4, 4), dtype=np.float32)
    ds = dctx.load("memory", data=data, num_partitions=8)
    counts = [int(p.damage.data.sum()) for p in dctx.run_udf_iter(dataset=ds, udf=SumUDF())]
    assert counts == [8, 16, 24, 32, 40, 48, 56, 64]  # seven partials, then the final result


def test_large_udf_parameters_travel_once_and_give_the_right_result(dctx, rng):
    data = rng.random((4, 6, 16, 16), dtype=np.float32)
    weights = rng.random(300_000)  # 2.4 MB: scattered once per run, not sent per task
    ds = dctx.load("memory", data=data, num_partitions=4)
    res = dctx.run_udf(dataset=ds, udf=DotUDF(weights))
    want = data.reshape(24, -1).astype(np.float64) @ weights[:256]
    np.testing.assert_allclose(res["dot"].data.reshape(-1), want, rtol=1e-5)


class AlignmentUDF(UDF):
    """Whether every buffer the worker made for this partition starts on a 64-byte boundary
    (glibc's memcpy into a 16-byte aligned buffer is up to 20x slower on AMD Zen)."""

    def get_result_buffers(self):
        sig = tuple(self.meta.dataset_shape.sig)
        return {
            "aligned": self.buffer(kind="nav", dtype=bool),
            "s32": self.buffer(kind="sig", dtype=np.float32),
            "s8": self.buffer(kind="sig", dtype=np.uint8),
            "s64": self.buffer(kind="sig", dtype=np.float64),
            "one": self.buffer(kind="single", dtype=np.int16, extra_shape=(3,)),
            "two": self.buffer(kind="single", dtype=np.float32, extra_shape=(5,)),
            "three": self.buffer(kind="single", dtype=np.complex64, extra_shape=(7,) + sig),
            "nav8": self.buffer(kind="nav", dtype=np.uint8, extra_shape=(3,)),
        }

    def process_partition(self, partition):
        r = self.results
        bufs = [r.s32, r.s8, r.s64, r.one, r.two, r.three, r.nav8, r.aligned]
        r.aligned[:] = all(b.ctypes.data % 64 == 0 for b in bufs)

    def merge(self, dest, src):
        dest.aligned[:] = src.aligned
        for name in ("s32", "s8", "s64", "one", "two", "three"):
            getattr(dest, name)[:] += getattr(src, name)


@pytest.mark.parametrize("executor", ["inline", "dask"])
def test_udf_buffers_start_on_a_cache_line(ctx_factory, executor):
    ctx = ctx_factory(executor)
    ds = ctx.load("memory", data=np.ones((4, 5, 3, 7), np.float32), num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=AlignmentUDF())
    assert res["aligned"].data.all()  # in every worker, for every partition
    for name in ("s32", "s8", "s64", "one", "two", "three"):  # and on the main node
        assert res[name].raw_data.ctypes.data % 64 == 0, name


class RoiSeenUDF(UDF):
    """The number of selected frames of the whole roi, as each worker's ``meta.roi`` has it."""

    def get_result_buffers(self):
        return {"seen": self.buffer(kind="nav", dtype=np.int64)}

    def process_tile(self, tile):
        self.results.seen[:] = int(self.meta.roi.sum())


@pytest.mark.parametrize("num_partitions", [1, 3, 7])
def test_a_large_roi_travels_to_each_worker_once_not_with_every_task(
    dctx, dask_client, tmp_path, rng, monkeypatch, num_partitions
):
    import cloudpickle

    nav, sig = (1024, 1024), (2, 2)
    data = rng.integers(0, 200, size=nav + sig, dtype=np.uint8)
    path = tmp_path / "scan.raw"
    data.tofile(path)
    roi = rng.random(nav) < 0.3  # 1 MiB of bools
    sizes = []
    submit, map_ = dask_client.submit, dask_client.map

    def spy(fn, *args, **kwargs):
        if getattr(fn, "__name__", "") == "run_task":
            sizes.append(len(cloudpickle.dumps(args[:3])))  # fn, task, key
        return submit(fn, *args, **kwargs)

    def spy_map(fn, *iterables, **kwargs):
        if getattr(fn, "__name__", "") == "run_task":
            sizes.extend(len(cloudpickle.dumps(args)) for args in zip(*iterables[:3]))
        return map_(fn, *iterables, **kwargs)

    monkeypatch.setattr(dask_client, "submit", spy)
    monkeypatch.setattr(dask_client, "map", spy_map)
    ds = dctx.load(
        "raw",
        path=str(path),
        nav_shape=nav,
        sig_shape=sig,
        dtype=np.uint8,
        num_partitions=num_partitions,
    )
    total, sums, seen = dctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF(), RoiSeenUDF()], roi=roi)
    assert len(sizes) == num_partitions
    assert max(sizes) < 64 << 10, sizes  # without scattering, each task carried the 1 MiB roi
    want_total = data[roi].sum(axis=0, dtype=np.float64)
    np.testing.assert_allclose(total["intensity"].data, want_total, rtol=1e-5)  # float32 sums
    want = data.sum(axis=(2, 3), dtype=np.float64)
    got = sums["intensity"].data
    np.testing.assert_allclose(got[roi], want[roi])
    assert np.isnan(got[~roi]).all()
    assert (seen["seen"].data[roi] == roi.sum()).all()  # the whole roi, in every worker


# --- where tasks run -------------------------------------------------------------------


def test_workers_are_set_up_like_loky_workers(dctx, dask_client):
    reports = dask_client.run(worker_report)
    assert len(reports) == 2
    threads_here = sum(dask_client.nthreads().values())  # both workers on this host
    inner = max(1, (os.cpu_count() or 1) // threads_here)
    for rep in reports.values():
        assert rep["malloc"] is True and rep["in_client"] is False
        assert rep["keep_maps_up_to"] >= 1 << 60
        assert rep["inner_threads"] == inner
        assert rep["blas_threads"] in ([], [inner])
        # children of this process: moved out of its process group (Ctrl-C, kernel interrupt)
        assert rep["detached"] is True and rep["pgid"] != os.getpgid(0)


@pytest.mark.parametrize("n_jobs", [None, 1])
def test_tasks_always_run_on_the_cluster(dask_client, n_jobs):
    with Context(executor=DaskExecutor(n_jobs=n_jobs, client=dask_client)) as ctx:
        ds = ctx.load("memory", data=np.ones((4, 4, 2, 2), np.float32), num_partitions=4)
        pids = set(ctx.run_udf(dataset=ds, udf=PidUDF())["pid"].data.ravel().tolist())
    workers = {r["pid"] for r in dask_client.run(worker_report).values()}
    assert pids <= workers and os.getpid() not in pids


def test_runs_in_quick_succession_ask_the_scheduler_for_its_workers_once(dask_client, monkeypatch):
    calls = []
    info = dask_client.scheduler_info
    monkeypatch.setattr(
        dask_client, "scheduler_info", lambda *a, **k: calls.append(1) or info(*a, **k)
    )
    with Context(executor=DaskExecutor(client=dask_client)) as ctx:
        ds = ctx.load("memory", data=np.ones((4, 4, 2, 2), np.float32), num_partitions=4)
        calls.clear()
        for _ in range(3):  # planning and locality of three runs: one round trip
            assert ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data[0, 0] == 16
        assert len(calls) <= 1
        before = len(calls)
        time.sleep(dask_executor.WORKERS_TTL)  # then the scheduler is asked again
        ctx.run_udf(dataset=ds, udf=SumUDF())
        assert len(calls) > before


def _count_graphs(client, monkeypatch) -> list[int]:
    """Record how many keys each graph the client sends to the scheduler holds."""
    graphs: list[int] = []
    send = client._graph_to_futures  # what client.submit and client.map both go through

    def counting(expr, keys, *args, **kwargs):
        graphs.append(len(keys))
        return send(expr, keys, *args, **kwargs)

    monkeypatch.setattr(client, "_graph_to_futures", counting)
    return graphs


@pytest.mark.parametrize("locality", [True, False])
def test_the_first_tasks_of_a_run_go_out_as_one_graph(dask_client, monkeypatch, locality):
    # each graph costs the scheduler (in the client's process for a LocalCluster) a graph
    # update, and the client holds each message after the first back for 10 ms: one graph
    # per task made short runs up to 1.5x slower than the processes executor
    with Context(executor=DaskExecutor(client=dask_client, locality=locality)) as ctx:
        data = np.arange(8 * 4 * 2 * 2, dtype=np.float32).reshape(8, 4, 2, 2)
        ds = ctx.load("memory", data=data, num_partitions=8)
        ctx.run_udf(dataset=ds, udf=SumUDF())  # the workers are known from here on
        graphs = _count_graphs(dask_client, monkeypatch)
        res = ctx.run_udf(dataset=ds, udf=SumUDF())
    np.testing.assert_allclose(res["intensity"].data, data.sum(axis=(0, 1)))
    # two tasks per worker thread in flight: four at the start, then one per result
    assert graphs == [4, 1, 1, 1, 1]


def test_a_short_run_is_one_task_per_worker_thread(dask_client, monkeypatch, rng):
    # a worker's second task ran up to 1.5x slower while the first one's result was
    # fetched: one partition per thread, not two, for scans under two of 512 MiB per thread
    with Context(executor=DaskExecutor(client=dask_client)) as ctx:
        data = rng.random((8, 4, 2, 2)).astype(np.float32)
        ds = ctx.load("memory", data=data)
        ctx.run_udf(dataset=ds, udf=SumUDF())  # the workers are known from here on
        graphs = _count_graphs(dask_client, monkeypatch)
        res = ctx.run_udf(dataset=ds, udf=SumUDF())
        shown = ctx.display(ds)._repr_html_()
    np.testing.assert_allclose(res["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-6)
    assert graphs == [2]  # 2 single-threaded workers
    assert "<th style='text-align:left'>partitions</th><td>2</td>" in shown
    with Context(executor="threads", n_jobs=2) as local:  # the other executors: two per worker
        assert "<td>4</td>" in local.display(local.load("memory", data=data))._repr_html_()


def sleepy(task):
    time.sleep(0.5)
    return task.partition.index


def test_a_first_graph_of_in_memory_frames_gives_no_dask_warning(dctx):
    # the first tasks go out as one graph; with an in-memory dataset they carry 16 MiB of
    # frames, over dask's 10 MB "Sending large graph" warning (it showed up in notebook 05)
    data = np.arange(16 * 16 * 128 * 128, dtype=np.float32).reshape(16, 16, 128, 128)
    ds = dctx.load("memory", data=data, num_partitions=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = dctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data
    np.testing.assert_allclose(got, data.sum(axis=(0, 1), dtype=np.float64), rtol=1e-6)
    assert not [w for w in caught if "large graph" in str(w.message)]


def test_each_task_of_the_first_graph_asks_for_its_own_worker(dask_client):
    ex = DaskExecutor(client=dask_client)
    try:
        workers = sorted(ex.workers())
        tasks = [
            types.SimpleNamespace(partition=types.SimpleNamespace(index=i, path="/data/scan.raw"))
            for i in range(4)
        ]
        stream = ex.imap_unordered(sleepy, tasks)
        first = next(stream)  # all four were submitted before the first result
        scheduler = dask_client.cluster.scheduler
        asked = {
            int(key.rsplit("-", 1)[1]): (set(ts.worker_restrictions or ()), ts.loose_restrictions)
            for key, ts in scheduler.tasks.items()
            if str(key).startswith("udfwidgets-")
        }
        rest = sorted([first, *stream])
    finally:
        ex.close()
    assert rest == [0, 1, 2, 3]
    want = {i: ({workers[dask_executor._slot(t.partition, 2)]}, True) for i, t in enumerate(tasks)}
    assert {i: asked[i] for i in asked} == {i: want[i] for i in asked}
    assert len(asked) >= 3  # the first result's task may be released already
    assert len({w for w, _ in (want[i] for i in asked) for w in w}) == 2  # both workers


def test_the_same_partition_goes_to_the_same_worker(dctx):
    ds = dctx.load("memory", data=np.ones((8, 8, 2, 2), np.float32), num_partitions=8)
    first = dctx.run_udf(dataset=ds, udf=PidUDF())["pid"].data.reshape(8, 8)[:, 0]
    second = dctx.run_udf(dataset=ds, udf=PidUDF())["pid"].data.reshape(8, 8)[:, 0]
    assert len(set(first.tolist())) == 2  # both workers used
    # a busy worker's task may still be taken by the other one: most stay where they were
    assert (first == second).sum() >= 6


def test_path_map_rewrites_file_paths_for_the_workers(dask_client, tmp_path, rng):
    data = rng.random((4, 5, 6, 7), dtype=np.float32)
    client_dir = tmp_path / "client_view"
    client_dir.mkdir()
    data.tofile(client_dir / "scan.raw")
    kwargs = dict(
        path=str(client_dir / "scan.raw"), nav_shape=(4, 5), sig_shape=(6, 7), dtype=np.float32
    )
    worker_dir = tmp_path / "worker_view"
    with (
        Context(
            executor=DaskExecutor(client=dask_client, path_map={str(client_dir): str(worker_dir)})
        ) as mapped,
        Context(executor=DaskExecutor(client=dask_client)) as plain,
    ):
        ds_mapped, ds_plain = mapped.load("raw", **kwargs), plain.load("raw", **kwargs)
        os.rename(client_dir, worker_dir)  # only the workers' path exists now
        res = mapped.run_udf(dataset=ds_mapped, udf=SumUDF())
        np.testing.assert_allclose(res["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-5)
        with pytest.raises(FileNotFoundError):
            plain.run_udf(dataset=ds_plain, udf=SumUDF())


def test_map_path_matches_whole_components_and_the_longest_prefix():
    pm = {"/data": "/mnt/a", "/data/special": "/mnt/b/"}
    assert map_path("/data/x/y.raw", pm) == "/mnt/a/x/y.raw"
    assert map_path("/data/special/z.raw", pm) == "/mnt/b/z.raw"
    assert map_path("/database/z.raw", pm) == "/database/z.raw"
    assert map_path("/data", pm) == "/mnt/a"


@pytest.mark.parametrize("bad", [{"": "/x"}, {"/x": ""}, ["/a", "/b"], {"/a": 3}])
def test_bad_path_map_is_a_clear_error(bad):
    with pytest.raises((TypeError, ValueError), match="path_map"):
        DaskExecutor(path_map=bad)


# --- bad input, closed clients, no workers ---------------------------------------------


@pytest.mark.parametrize("n_jobs", [0, -5, "2", 2.5, True])
def test_bad_n_jobs_is_a_clear_error_at_the_context_call(n_jobs):
    with pytest.raises(ValueError, match="n_jobs must be a positive integer or None"):
        Context(executor="dask", n_jobs=n_jobs)


def test_client_must_be_a_client_or_an_address():
    with pytest.raises(TypeError, match="distributed.Client or a scheduler address"):
        Context(executor="dask", client=8786)


def test_runs_after_close_say_so(dask_client):
    ds_data = np.ones((2, 2, 2, 2), np.float32)
    ctx = Context(executor="dask", client=dask_client)
    ds = ctx.load("memory", data=ds_data)
    ctx.close()
    with pytest.raises(ContextClosedError, match="this Context was closed"):
        ctx.run_udf(dataset=ds, udf=SumUDF())
    other = distributed.Client(dask_client.scheduler.address, set_as_default=False)
    ctx = Context(executor="dask", client=other)
    assert ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data[0, 0] == 4
    other.close()
    # the message names the scheduler the closed client was connected to
    address = re.escape(dask_client.scheduler.address)
    with pytest.raises(ClusterClosedError, match=f"client of this Context is closed .*{address}"):
        ctx.run_udf(dataset=ds, udf=SumUDF())
    assert "dask" in repr(ctx)  # the repr of a Context with a closed client still works


def test_a_cluster_without_workers_is_a_clear_error():
    with (
        distributed.LocalCluster(
            n_workers=0, host="127.0.0.1", dashboard_address="127.0.0.1:0", silence_logs=50
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        ctx = Context(executor=DaskExecutor(client=client, wait_for_workers=0.3))
        ds = ctx.load("memory", data=np.ones((2, 2, 2, 2), np.float32))
        with pytest.raises(NoWorkersError, match="has no workers .* start workers"):
            ctx.run_udf(dataset=ds, udf=SumUDF())


# --- cancellation ----------------------------------------------------------------------


@pytest.fixture
def slow_ds(dctx):
    return dctx.load("memory", data=np.ones((8, 8, 4, 4), np.float32), num_partitions=8)


def test_break_stops_running_tasks_on_the_workers(dctx, dask_client, slow_ds, tmp_path):
    for _ in dctx.run_udf_iter(dataset=slow_ds, udf=SlowUDF(str(tmp_path), delay=0.1)):
        break
    at_break = frames_done(tmp_path)
    # the running partitions (8 frames of 0.1 s each) are stopped within a frame or two,
    # not finished (that would add 8 frames or more)
    assert no_tasks_left(dask_client)
    assert settled(tmp_path) - at_break <= 6
    t0 = time.perf_counter()
    assert dctx.run_udf(dataset=slow_ds, udf=SumUDF())["intensity"].data[0, 0] == 64
    assert time.perf_counter() - t0 < 3  # the next run does not wait behind the old one


def test_keyboard_interrupt_cancels_the_tasks(dctx, dask_client, slow_ds, tmp_path):
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        dctx.run_udf(dataset=slow_ds, udf=SlowUDF(str(tmp_path), delay=0.1))
    at_interrupt = frames_done(tmp_path)
    assert no_tasks_left(dask_client)
    assert settled(tmp_path) - at_interrupt <= 6
    assert dctx.run_udf(dataset=slow_ds, udf=SumUDF())["intensity"].data[0, 0] == 64


def test_async_cancel_cancels_the_tasks(dctx, dask_client, slow_ds, tmp_path):
    async def main():
        task = asyncio.create_task(
            dctx.run_udf(dataset=slow_ds, udf=SlowUDF(str(tmp_path), delay=0.1), sync=False)
        )
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    at_cancel = frames_done(tmp_path)
    assert no_tasks_left(dask_client)
    assert settled(tmp_path) - at_cancel <= 6


def test_stress_break_cancel_interrupt_loop(dctx, dask_client, tmp_path):
    """Many break / async-cancel / Ctrl-C cycles; a watchdog dumps every thread's stack
    and ends the process if one of them hangs."""
    ds = dctx.load("memory", data=np.ones((4, 8, 2, 2), np.float32), num_partitions=8)
    faulthandler.dump_traceback_later(120, exit=True)
    try:
        for i in range(12):
            marker = tmp_path / str(i)
            marker.mkdir()
            udf = SlowUDF(str(marker), delay=0.02)
            kind = i % 3
            if kind == 0:
                for _ in dctx.run_udf_iter(dataset=ds, udf=udf):
                    break
            elif kind == 1:

                async def main(udf):
                    task = asyncio.create_task(dctx.run_udf(dataset=ds, udf=udf, sync=False))
                    await asyncio.sleep(0.15)
                    task.cancel()
                    try:
                        await task
                    except asyncio.CancelledError:
                        pass

                asyncio.run(main(udf))
            else:
                timer = threading.Timer(0.15, os.kill, (os.getpid(), signal.SIGINT))
                timer.start()
                try:
                    dctx.run_udf(dataset=ds, udf=udf)
                except KeyboardInterrupt:
                    pass
                timer.join()
            res = dctx.run_udf(dataset=ds, udf=SumUDF())
            assert res["intensity"].data[0, 0] == 32
        assert no_tasks_left(dask_client)
    finally:
        faulthandler.cancel_dump_traceback_later()


# --- a cluster of our own ----------------------------------------------------------------


def test_without_a_client_a_local_cluster_is_started_and_closed_with_the_context(monkeypatch):
    def no_client():
        raise ValueError("No clients found")

    monkeypatch.setattr(distributed, "get_client", no_client)
    ctx = Context.make_with("dask", n_jobs=1)
    cluster = ctx.executor.cluster
    try:
        assert ctx.executor.client.scheduler.address.startswith("tcp://127.0.0.1:")
        workers = ctx.executor.client.scheduler_info()["workers"]
        assert len(workers) == 1 and all(a.startswith("tcp://127.0.0.1:") for a in workers)
        data = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
        res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=SumUDF())
        np.testing.assert_allclose(res["intensity"].data, data.sum(axis=(0, 1)))
        # dask's statistical profiler (a stack sample every 10 ms) is off in our workers
        callbacks = ctx.executor.client.run(
            lambda dask_worker: list(dask_worker.periodic_callbacks)
        )
        assert callbacks and not any("profile" in c for cbs in callbacks.values() for c in cbs)
        # the event-loop check runs once a second, not every 20 ms, in workers and scheduler
        ticks = ctx.executor.client.run(
            lambda dask_worker: dask_worker.periodic_callbacks["tick"].callback_time
        )
        assert list(ticks.values()) == [1000]
        assert cluster.scheduler.periodic_callbacks["tick"].callback_time == 1000
    finally:
        ctx.close()
    assert cluster.status.name == "closed"
    assert ctx.executor.client is None


SIGINT_SCRIPT = r"""
import time
import numpy as np
from udfwidgets import Context
from udfwidgets.udf.sum import SumUDF

if __name__ == "__main__":
    ctx = Context(executor="dask", n_jobs=2)
    ds = ctx.load("memory", data=np.ones((4, 4, 2, 2), np.float32))
    assert ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data[0, 0] == 16
    try:  # the signal may arrive while "ready" is still being printed
        print("ready", flush=True)
        time.sleep(60)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    time.sleep(1.0)  # workers hit by the signal would be gone by now
    res = ctx.run_udf(dataset=ds, udf=SumUDF())
    print("again", res["intensity"].data[0, 0], flush=True)
    ctx.close()
"""


def test_an_interrupt_to_the_process_group_does_not_kill_owned_workers(tmp_path):
    """What a Jupyter kernel interrupt does (SIGINT to the kernel's process group)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    script = tmp_path / "interrupted.py"
    script.write_text(SIGINT_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(tmp_path),
        start_new_session=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "interrupted" in out, err[-2000:]
    assert "again 16.0" in out, err[-2000:]
    assert proc.returncode == 0, err[-2000:]


def test_a_scheduler_and_workers_started_as_separate_commands(tmp_path, rng):
    """A cluster the way it runs on real machines: `dask scheduler` and two `dask worker`
    processes, on 127.0.0.1, shut down cleanly at the end."""
    dask_cli = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    worker_cli = [sys.executable, "-m", "distributed.cli.dask_worker"]
    # the workers import udfwidgets and this test module (its UDF classes) from here
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))
    sched_file = str(tmp_path / "scheduler.json")
    procs = [
        subprocess.Popen(
            dask_cli
            + [
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                sched_file,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    ]
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(sched_file) and time.monotonic() < deadline:
            time.sleep(0.1)
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    worker_cli
                    + [
                        "--scheduler-file",
                        sched_file,
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--nworkers",
                        "1",
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                    start_new_session=True,
                )
            )
        client = distributed.Client(scheduler_file=sched_file, set_as_default=False)
        client.wait_for_workers(2, timeout=60)
        data = rng.integers(0, 4000, size=(8, 6, 10, 12)).astype(np.uint16)
        path = tmp_path / "scan.raw"
        data.tofile(path)
        with Context(executor="dask", client=client) as ctx:
            assert ctx.executor.n_workers == 2
            ds = ctx.load(
                "raw", path=str(path), nav_shape=(8, 6), sig_shape=(10, 12), dtype=np.uint16
            )
            total, sums, sd = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF(), StdDevUDF()])
            pids = ctx.run_udf(dataset=ds, udf=PidUDF())["pid"].data
        np.testing.assert_allclose(total["intensity"].data, data.sum(axis=(0, 1), dtype=float))
        np.testing.assert_allclose(sums["intensity"].data, data.sum(axis=(2, 3), dtype=float))
        np.testing.assert_allclose(sd["var"].data, data.reshape(-1, 10, 12).var(axis=0), rtol=1e-5)
        assert len(set(pids.ravel().tolist())) == 2 and os.getpid() not in pids
        client.shutdown()  # scheduler and workers exit
        client.close()
        for p in procs:
            assert p.wait(timeout=30) == 0, p.stderr.read()[-2000:]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)


def test_dask_runs_use_larger_default_partitions(dctx, tmp_path):
    """Each dask task costs the main node more than a loky task: 512 MiB partitions."""
    path = tmp_path / "sparse.raw"
    with open(path, "wb") as f:
        f.truncate(2**30)  # 1 GiB of zeros, a sparse file: nothing is written to disk
    kw = dict(nav_shape=(128, 128), sig_shape=(128, 128), dtype="float32")
    with Context(executor="threads", n_jobs=2) as local:
        n_local = len(
            list(local.run_udf_iter(dataset=local.load("raw", path=path, **kw), udf=SumUDF()))
        )
    parts = list(dctx.run_udf_iter(dataset=dctx.load("raw", path=path, **kw), udf=SumUDF()))
    assert n_local == 8 and len(parts) == max(2, dctx.executor.n_workers)
    # ctx.display counts the partitions as the run splits them
    shown = dctx.display(dctx.load("raw", path=path, **kw))._repr_html_()
    assert f"<th style='text-align:left'>partitions</th><td>{len(parts)}</td>" in shown
    assert parts[-1].buffers[0]["intensity"].data.shape == (128, 128)
    assert not parts[-1].buffers[0]["intensity"].data.any()
