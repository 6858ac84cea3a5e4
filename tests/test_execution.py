"""Partial results, async runs, cancellation, interrupts and faults, on every executor."""

import asyncio
import os
import signal
import threading
import time
import traceback

import numpy as np
import pytest

from udfwidgets import UDF, Context
from udfwidgets.executor import WorkerDiedError
from udfwidgets.udf.sum import SumUDF
from udfwidgets.udf.sumsigudf import SumSigUDF


class SlowUDF(UDF):
    """Sleeps per frame and leaves a file per frame in ``marker_dir``."""

    def __init__(self, marker_dir, delay=0.05):
        super().__init__(marker_dir=marker_dir, delay=delay)

    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav")}

    def process_frame(self, frame):
        time.sleep(self.params.delay)
        idx = int(
            np.ravel_multi_index(tuple(self.meta.coordinates[0]), self.meta.dataset_shape.nav)
        )
        open(os.path.join(self.params.marker_dir, str(idx)), "w").close()
        self.results.x[:] = 1


def frames_done(path):
    return len(os.listdir(path))


@pytest.fixture
def slow_ds(any_ctx):
    return any_ctx.load("memory", data=np.ones((8, 8, 4, 4), np.float32), num_partitions=8)


def loky_children():
    psutil = pytest.importorskip("psutil")
    kids = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "loky" in " ".join(p.cmdline()):
                kids.append(p)
        except psutil.Error:
            pass
    return kids


# --- partial results ----------------------------------------------------------


def test_run_udf_iter_yields_each_partition_then_the_final_result(any_ctx, data4d):
    ds = any_ctx.load("memory", data=data4d, num_partitions=5)
    items = []
    # partial results are views of the run's buffers: look at them inside the loop
    for it in any_ctx.run_udf_iter(dataset=ds, udf=[SumUDF(), SumSigUDF()]):
        items.append(it)
        nav = it.buffers[1]["intensity"]
        # merged frames hold their final value; the others are not computed yet (NaN)
        merged = it.damage.data
        np.testing.assert_allclose(nav.data[merged], data4d.sum(axis=(2, 3))[merged], rtol=1e-5)
        assert np.isnan(nav.data[~merged]).all()
        np.testing.assert_allclose(
            it.buffers[0]["intensity"].data, data4d[merged].sum(axis=0), rtol=1e-5, atol=1e-5
        )
    assert len(items) == 5
    assert [it.finished for it in items] == [False] * 4 + [True]
    done = [int(it.damage.data.sum()) for it in items]
    assert done == sorted(done) and done[-1] == 63 and done[0] < 63
    final = any_ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    for got, want in zip(items[-1].buffers, final):
        for name in want:
            # merge order varies between runs: float sums agree to rounding
            np.testing.assert_allclose(got[name].data, want[name].data, rtol=1e-6)


def test_damage_covers_only_selected_frames(any_ctx, data4d, rng):
    ds = any_ctx.load("memory", data=data4d, num_partitions=4)
    roi = rng.random((7, 9)) < 0.4
    items = list(any_ctx.run_udf_iter(dataset=ds, udf=SumSigUDF(), roi=roi))
    assert not (items[0].damage.data & ~roi).any()
    np.testing.assert_array_equal(items[-1].damage.data, roi)


def test_async_run_keeps_the_event_loop_ticking(any_ctx, slow_ds, tmp_path):
    async def main():
        ticks = 0
        stop = False

        async def ticker():
            nonlocal ticks
            while not stop:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        t0 = time.perf_counter()
        res = await any_ctx.run_udf(
            dataset=slow_ds, udf=SlowUDF(str(tmp_path), delay=0.01), sync=False
        )
        elapsed = time.perf_counter() - t0
        seen = []
        async for part in any_ctx.run_udf_iter(dataset=slow_ds, udf=SumUDF(), sync=False):
            seen.append(int(part.damage.data.sum()))
        stop = True
        await task
        return res, ticks, elapsed, seen

    res, ticks, elapsed, seen = asyncio.run(main())
    assert (res["x"].data == 1).all()
    # the ticker ran during the whole run: at least a third of the possible ticks
    assert ticks >= elapsed / 0.01 / 3
    assert seen[-1] == 64 and len(seen) == 8


def test_cancelling_the_async_task_stops_the_run(any_ctx, slow_ds, tmp_path):
    async def main():
        task = asyncio.create_task(
            any_ctx.run_udf(dataset=slow_ds, udf=SlowUDF(str(tmp_path)), sync=False)
        )
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    time.sleep(1.0)
    settled = frames_done(tmp_path)
    time.sleep(0.5)
    assert frames_done(tmp_path) == settled < 64  # nothing runs on after about a second
    res = any_ctx.run_udf(dataset=slow_ds, udf=SumUDF())
    assert res["intensity"].data[0, 0] == 64


def test_break_out_of_run_udf_iter_stops_the_run(any_ctx, slow_ds, tmp_path):
    for _ in any_ctx.run_udf_iter(dataset=slow_ds, udf=SlowUDF(str(tmp_path))):
        break
    time.sleep(1.0)
    settled = frames_done(tmp_path)
    time.sleep(0.5)
    assert frames_done(tmp_path) == settled < 64
    assert any_ctx.run_udf(dataset=slow_ds, udf=SumUDF())["intensity"].data[0, 0] == 64


def test_break_restarts_the_process_workers_in_the_background(processes_ctx, tmp_path):
    """The stopped run's workers are killed; the next run's start at once, not when it comes."""
    ds = processes_ctx.load("memory", data=np.ones((8, 8, 4, 4), np.float32), num_partitions=8)
    assert processes_ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data[0, 0] == 64
    before = {p.pid for p in loky_children() if p.is_running()}
    for _ in processes_ctx.run_udf_iter(dataset=ds, udf=SlowUDF(str(tmp_path))):
        break
    deadline = time.monotonic() + 60
    fresh: set = set()
    while time.monotonic() < deadline:  # no run is started meanwhile
        fresh = {
            p.pid for p in loky_children() if p.is_running() and p.status() != "zombie"
        } - before
        if processes_ctx.executor.ready and len(fresh) >= processes_ctx.executor.n_workers:
            break
        time.sleep(0.1)
    assert processes_ctx.executor.ready
    assert len(fresh) >= processes_ctx.executor.n_workers
    assert processes_ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data[0, 0] == 64


def test_closing_the_generator_stops_the_run(processes_ctx, tmp_path):
    ds = processes_ctx.load("memory", data=np.ones((8, 8, 4, 4), np.float32), num_partitions=8)
    gen = processes_ctx.run_udf_iter(dataset=ds, udf=SlowUDF(str(tmp_path)))
    next(gen)
    gen.close()
    time.sleep(1.0)
    assert frames_done(tmp_path) < 64
    assert processes_ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data[0, 0] == 64


@pytest.mark.parametrize("executor", ["inline", "threads", "processes"])
def test_keyboard_interrupt_stops_the_run_and_leaves_no_orphans(ctx_factory, tmp_path, executor):
    ctx = ctx_factory(executor)
    ds = ctx.load("memory", data=np.ones((8, 8, 4, 4), np.float32), num_partitions=8)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        ctx.run_udf(dataset=ds, udf=SlowUDF(str(tmp_path)))
    time.sleep(1.0)
    settled = frames_done(tmp_path)
    time.sleep(0.5)
    assert frames_done(tmp_path) == settled < 64
    assert ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data[0, 0] == 64
    if executor == "processes":
        assert len([p for p in loky_children() if p.is_running()]) <= ctx.executor.n_workers + 1


# --- faults ---------------------------------------------------------------------


class Explodes(Exception):
    pass


METHODS = [
    "preprocess",
    "process_frame",
    "process_tile",
    "process_partition",
    "merge",
    "postprocess",
    "get_results",
    "get_task_data",
]


def make_failing_udf(method):
    class Failing(UDF):
        def get_result_buffers(self):
            return {"acc": self.buffer(kind="sig"), "x": self.buffer(kind="nav")}

        def merge(self, dest, src):
            if method == "merge":
                raise Explodes("boom in merge")
            dest.acc[:] += src.acc
            dest.x[:] = src.x

        def get_results(self):
            if method == "get_results":
                raise Explodes("boom in get_results")
            return {"acc": self.results.acc, "x": self.results.x}

    def fail(self, *args):
        raise Explodes(f"boom in {method}")

    def frame(self, frame):
        self.results.acc[:] += frame

    Failing.process_frame = frame
    if method not in ("merge", "get_results"):
        setattr(Failing, method, fail)
    if method == "process_partition":  # process_frame would win over it (LiberTEM's order)
        Failing.process_frame = None
    return Failing


@pytest.mark.parametrize("method", METHODS)
def test_exception_in_any_method_reaches_the_caller(any_ctx, data4d, method):
    ds = any_ctx.load("memory", data=data4d, num_partitions=3)
    with pytest.raises(Explodes, match=f"boom in {method}") as info:
        any_ctx.run_udf(dataset=ds, udf=make_failing_udf(method)())
    text = "".join(traceback.format_exception(info.value))
    assert "raise Explodes(" in text  # the UDF's own line is shown
    res = any_ctx.run_udf(dataset=ds, udf=SumUDF())  # the Context keeps working
    np.testing.assert_allclose(res["intensity"].data, data4d.sum(axis=(0, 1)), rtol=1e-5)


class ExitUDF(UDF):
    def __init__(self, how="exit"):
        super().__init__(how=how)

    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav")}

    def process_frame(self, frame):
        if self.params.how == "exit":
            os._exit(3)
        import ctypes

        ctypes.string_at(0)  # segfault


@pytest.mark.parametrize("how", ["exit", "segfault"])
def test_dead_worker_is_a_clear_error_and_the_next_run_works(processes_ctx, data4d, how):
    ds = processes_ctx.load("memory", data=data4d, num_partitions=4)
    with pytest.raises(WorkerDiedError, match="a worker process died while running ExitUDF"):
        processes_ctx.run_udf(dataset=ds, udf=ExitUDF(how=how))
    res = processes_ctx.run_udf(dataset=ds, udf=SumUDF())
    np.testing.assert_allclose(res["intensity"].data, data4d.sum(axis=(0, 1)), rtol=1e-5)


def test_all_executors_agree_bitwise(any_ctx, data4d_int, ctx_factory):
    """Integer input and order-independent reductions give identical bits everywhere."""
    inline = ctx_factory("inline")

    class IntStats(UDF):
        def get_preferred_input_dtype(self):
            return self.USE_NATIVE_DTYPE

        def get_result_buffers(self):
            return {
                "total": self.buffer(kind="sig", dtype="int64"),
                "peak": self.buffer(kind="nav", dtype="uint16"),
            }

        def process_tile(self, tile):
            self.results.total[:] += tile.sum(axis=0, dtype=np.int64)
            self.results.peak[:] = tile.max(axis=(1, 2))

        def merge(self, dest, src):
            dest.total[:] += src.total
            dest.peak[:] = src.peak

    roi = np.arange(30).reshape(6, 5) % 4 != 1
    for kwargs in ({}, {"roi": roi}):
        ds = any_ctx.load("memory", data=data4d_int, num_partitions=4)
        got = any_ctx.run_udf(dataset=ds, udf=IntStats(), **kwargs)
        want = inline.run_udf(
            dataset=inline.load("memory", data=data4d_int, num_partitions=1),
            udf=IntStats(),
            **kwargs,
        )
        for name in ("total", "peak"):
            assert got[name].data.tobytes() == want[name].data.tobytes()
        mask = kwargs.get("roi", np.ones((6, 5), bool))
        np.testing.assert_array_equal(
            got["total"].data, data4d_int[mask].sum(axis=0, dtype=np.int64)
        )


def test_progress_bar_counts_frames(ctx, data4d, capsys):
    ds = ctx.load("memory", data=data4d, num_partitions=3)
    ctx.run_udf(dataset=ds, udf=SumUDF(), progress=True)
    err = capsys.readouterr().err
    assert "100%" in err and "63.0/63.0" in err and "frame/s" in err
    list(ctx.run_udf_iter(dataset=ds, udf=SumUDF(), progress=True))
    assert "63.0/63.0" in capsys.readouterr().err


def test_dask_executor_takes_a_scheduler_address(dask_client, data4d):
    address = dask_client.scheduler.address
    with Context(executor="dask", client=address) as ctx:
        assert ctx.executor.n_workers == 2
        res = ctx.run_udf(dataset=ctx.load("memory", data=data4d), udf=SumUDF())
        np.testing.assert_allclose(res["intensity"].data, data4d.sum(axis=(0, 1)), rtol=1e-5)


def test_dead_dask_worker_is_a_clear_error_and_the_next_run_works(data4d):
    """On dask, a task whose worker dies fails (here after the first death) instead of hanging."""
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with (
            distributed.LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                silence_logs=50,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            with Context(executor="dask", client=client) as ctx:
                ds = ctx.load("memory", data=data4d, num_partitions=4)
                with pytest.raises(WorkerDiedError, match="died while running ExitUDF"):
                    ctx.run_udf(dataset=ds, udf=ExitUDF())
                # ExitUDF's cancelled tasks may still be running (a running task cannot be
                # stopped) and kill the worker they run on: wait until they are gone and both
                # workers are back, as a user would see in the dashboard
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and (
                    client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
                    or len(client.scheduler_info()["workers"]) < 2
                ):
                    time.sleep(0.1)
                res = ctx.run_udf(dataset=ds, udf=SumUDF())
                np.testing.assert_allclose(
                    res["intensity"].data, data4d.sum(axis=(0, 1)), rtol=1e-5
                )


def test_processes_executor_starts_its_workers_in_the_background():
    with Context(executor="processes", n_jobs=2) as ctx:
        deadline = time.monotonic() + 60
        while not ctx.executor.ready and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ctx.executor.ready
        t0 = time.perf_counter()
        ds = ctx.load("memory", data=np.ones((4, 4, 8, 8), np.float32))
        assert ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data[0, 0] == 16
        assert time.perf_counter() - t0 < 5  # no worker start-up in the first run


def test_workers_keep_temporaries_on_the_heap():
    """tune_malloc works on this (glibc) system; checked in a fresh interpreter."""
    import subprocess
    import sys

    code = "from udfwidgets.executor.task import tune_malloc; print(tune_malloc())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    import platform

    expected = "True" if platform.libc_ver()[0] == "glibc" else "False"
    assert out.stdout.strip() == expected


class _BlasThreadsSeen(UDF):
    """Records how many BLAS threads the process allows while a partition runs."""

    def get_result_buffers(self):
        return {"blas": self.buffer(kind="nav", dtype="int64")}

    def process_frame(self, frame):
        from threadpoolctl import threadpool_info

        self.results.blas[:] = min(
            i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"
        )


def test_threads_executor_limits_blas_during_a_run_only():
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return min(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    # pretend a 4-core machine's BLAS setting, whatever this one has
    with threadpool_limits(4, user_api="blas"), Context(executor="threads", n_jobs=2) as ctx:
        before = blas_threads()
        inner = ctx.executor.inner_threads
        ds = ctx.load("memory", data=np.ones((4, 4, 2, 2), np.float32), num_partitions=4)
        seen = ctx.run_udf(dataset=ds, udf=_BlasThreadsSeen())["blas"].data
        assert (seen == min(before, inner)).all(), (seen, before, inner)
        assert blas_threads() == before  # restored after the run
        # also after a run that is abandoned half-way
        it = ctx.run_udf_iter(dataset=ds, udf=_BlasThreadsSeen())
        next(it)
        it.close()
        assert blas_threads() == before
