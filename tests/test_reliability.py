"""Faults that used to break the next run, clean shutdown, and the break/cancel stress test."""

from __future__ import annotations

import asyncio
import faulthandler
import glob
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import numpy as np
import pytest

from udfwidgets import UDF, Context
from udfwidgets.executor.errors import ContextClosedError
from udfwidgets.udf.sum import SumUDF

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
psutil = pytest.importorskip("psutil")


class Slow(UDF):
    def __init__(self, delay=0.05):
        super().__init__(delay=delay)

    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav")}

    def process_frame(self, frame):
        time.sleep(self.params.delay)
        self.results.x[:] = 1


def slow_ds(ctx, n=16):
    return ctx.load("memory", data=np.ones((n, 4, 4), np.float32), sig_dims=2, num_partitions=n)


def small_ds(ctx):
    return ctx.load(
        "memory",
        data=np.arange(6 * 4 * 3, dtype=np.float32).reshape(6, 4, 3),
        sig_dims=2,
        num_partitions=3,
    )


def check_sum(ctx):
    res = ctx.run_udf(dataset=small_ds(ctx), udf=SumUDF())
    expected = np.arange(6 * 4 * 3, dtype=np.float32).reshape(6, 4, 3).sum(axis=0)
    np.testing.assert_array_equal(res["intensity"].data, expected)


class ThreadErrors:
    """Collects exceptions raised in any thread (loky's manager thread included)."""

    def __enter__(self):
        self.errors = []
        self._old = threading.excepthook
        threading.excepthook = lambda args: self.errors.append(
            f"{args.thread.name if args.thread else '?'}: {args.exc_type.__name__}: "
            f"{args.exc_value}"
        )
        return self

    def __exit__(self, *exc):
        time.sleep(0.3)  # let loky's threads finish their clean-up
        threading.excepthook = self._old


# --- processes: the next run after a stopped one ----------------------------------


async def _cancel_then_run(ctx, ds):
    task = asyncio.ensure_future(ctx.run_udf(dataset=ds, udf=Slow(), sync=False))
    await asyncio.sleep(0.15)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    return await ctx.run_udf(dataset=small_ds(ctx), udf=SumUDF(), sync=False)


async def _cancel_and_run_at_once(ctx, ds):
    """The next run starts while the cancelled one is still cleaning up."""
    task = asyncio.ensure_future(ctx.run_udf(dataset=ds, udf=Slow(), sync=False))
    await asyncio.sleep(0.15)
    task.cancel()
    return await ctx.run_udf(dataset=small_ds(ctx), udf=SumUDF(), sync=False)


async def _break_async_iter_then_run(ctx, ds):
    async for _ in ctx.run_udf_iter(dataset=ds, udf=Slow(), sync=False):
        break
    return await ctx.run_udf(dataset=small_ds(ctx), udf=SumUDF(), sync=False)


@pytest.mark.parametrize(
    "scenario", [_cancel_then_run, _cancel_and_run_at_once, _break_async_iter_then_run]
)
def test_next_run_after_async_cancel_or_break_works(processes_ctx, scenario):
    """Before: ShutdownExecutorError in the next run (28 of 28 cancels, 16 of 24 breaks)."""
    ds = slow_ds(processes_ctx)
    expected = np.arange(72, dtype=np.float32).reshape(6, 4, 3).sum(axis=0)
    with ThreadErrors() as te:
        for _ in range(4):
            res = asyncio.run(scenario(processes_ctx, ds))
            np.testing.assert_array_equal(res["intensity"].data, expected)
    assert te.errors == []


def test_break_and_failed_run_leave_no_thread_traceback(processes_ctx):
    """Before: loky's ExecutorManagerThread died with a KeyError (6 of 6)."""

    class Fails(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

        def process_frame(self, frame):
            raise ValueError("no")

    ds = slow_ds(processes_ctx, n=24)
    with ThreadErrors() as te:
        for _ in range(3):
            for _ in processes_ctx.run_udf_iter(dataset=ds, udf=Slow()):
                break
            with pytest.raises(ValueError, match="no"):
                processes_ctx.run_udf(dataset=ds, udf=Fails())
    assert te.errors == []
    check_sum(processes_ctx)


def _shm_folders():
    root = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    return glob.glob(os.path.join(root, f"joblib_memmapping_folder_{os.getpid()}_*"))


def test_no_memmapping_folder_left_per_run(processes_ctx):
    """Before: every run left an empty /dev/shm/joblib_memmapping_folder_* (100 runs, 100)."""
    data = np.ones((8, 128, 256), np.float32)  # partitions over 1 MB travel as memory maps
    ds = processes_ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    processes_ctx.run_udf(dataset=ds, udf=SumUDF())  # the pool's own folder is made once
    before = set(_shm_folders())
    for _ in range(6):
        res = processes_ctx.run_udf(dataset=ds, udf=SumUDF())
        assert res["intensity"].data[0, 0] == 8
    deadline = time.monotonic() + 10
    while set(_shm_folders()) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(_shm_folders()) - before == set()


def test_a_run_does_not_list_the_temp_folder(processes_ctx, monkeypatch):
    # globbing a temp folder of 2000 entries for joblib's folders cost 19 ms per run
    import udfwidgets.executor.pools as pools

    listed = []  # directories listed (scandir) or globbed, as absolute paths
    real_scandir, real_glob = os.scandir, glob.glob

    def scandir(path="."):
        if isinstance(path, str):  # (not a file descriptor)
            listed.append(os.path.realpath(path))
        return real_scandir(path)

    def globbing(pattern, **kwargs):
        listed.append(os.path.realpath(os.path.dirname(pattern)))
        return real_glob(pattern, **kwargs)

    monkeypatch.setattr(pools.os, "scandir", scandir)
    monkeypatch.setattr(glob, "glob", globbing)
    ds = processes_ctx.load("memory", data=np.ones((4, 4, 8, 8), np.float32))
    for _ in range(2):
        assert processes_ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data[0, 0] == 16
    assert os.path.realpath(tempfile.gettempdir()) not in listed, listed


# --- closing and dying ------------------------------------------------------------

CLOSE_SCRIPT = textwrap.dedent("""
    import os, sys, time
    import numpy as np, psutil
    from udfwidgets import Context
    from udfwidgets.udf.sum import SumUDF

    def workers():
        return sorted(p.pid for p in psutil.Process().children(recursive=True)
                      if "loky" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline()))

    mode = sys.argv[1]
    ctx = Context(executor="processes", n_jobs=2)
    other = Context(executor="processes", n_jobs=2) if mode == "shared" else None
    ds = ctx.load("memory", data=np.ones((8, 4, 4)), num_partitions=4)
    ctx.run_udf(dataset=ds, udf=SumUDF())
    print("workers", workers(), flush=True)
    if mode == "kill":
        time.sleep(120)
    ctx.close()
    time.sleep(0.5)
    print("after close", workers(), flush=True)
    if other is not None:
        print("other runs", float(other.run_udf(dataset=ds, udf=SumUDF())["intensity"].data[0, 0]))
        other.close()
        time.sleep(0.5)
        print("after both", workers(), flush=True)
""")


def _run_script(tmp_path, mode):
    script = tmp_path / "close.py"
    script.write_text(CLOSE_SCRIPT)
    return subprocess.Popen(
        [sys.executable, str(script), mode],
        cwd=ROOT,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _parse(line):
    return eval(line.split(" ", 1)[1] if line.startswith("workers") else line.split(" ", 2)[2])


def test_close_shuts_the_worker_processes_down(tmp_path):
    """Before: ctx.close() left the workers running."""
    out, err = _run_script(tmp_path, "alone").communicate(timeout=120)
    lines = out.splitlines()
    assert len(_parse(lines[0])) == 2, (out, err)
    assert _parse(lines[1]) == [], (out, err)


def test_close_keeps_the_pool_another_context_uses(tmp_path):
    out, err = _run_script(tmp_path, "shared").communicate(timeout=120)
    lines = out.splitlines()
    assert len(_parse(lines[0])) == 2, (out, err)
    assert len(_parse(lines[1])) == 2, (out, err)  # the other Context still uses them
    assert lines[2] == "other runs 8.0", (out, err)
    assert _parse(lines[3]) == [], (out, err)


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    """Before: after kill -9 of the main process its loky workers stayed up to 10 minutes."""
    proc = _run_script(tmp_path, "kill")
    try:
        line = proc.stdout.readline()
        pids = _parse(line)
        assert len(pids) == 2, (line, proc.stderr.read() if proc.poll() is not None else "")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 5
        alive = pids
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = [
                p
                for p in pids
                if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
            ]
        assert alive == [], [" ".join(psutil.Process(p).cmdline()) for p in alive]
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("executor", ["inline", "threads", "processes"])
def test_closed_context_says_so(executor, data4d):
    """Before (dask): AttributeError: 'NoneType' object has no attribute 'ncores'."""
    ctx = Context(executor=executor, n_jobs=1, warm_start=False)
    ds = ctx.load("memory", data=data4d)
    ctx.close()
    for call in (
        lambda: ctx.run_udf(dataset=ds, udf=SumUDF()),
        lambda: ctx.run_udf_iter(dataset=ds, udf=SumUDF()),
        lambda: ctx.run_udf(dataset=ds, udf=SumUDF(), sync=False),
        ctx.release_files,
    ):
        with pytest.raises(ContextClosedError, match="this Context was closed"):
            call()
    ctx.close()  # twice is fine
    assert "closed" in repr(ctx)


def test_closed_dask_context_says_so(dask_client, data4d):
    ctx = Context(executor="dask", client=dask_client)
    ds = ctx.load("memory", data=data4d)
    ctx.close()
    with pytest.raises(ContextClosedError, match="make a new one"):
        ctx.run_udf(dataset=ds, udf=SumUDF())
    # the shared client stays usable for others
    check_sum(Context(executor="dask", client=dask_client))


# --- the stress test -------------------------------------------------------------


def _interrupt_soon(delay=0.1):
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_stress_break_cancel_interrupt(ctx_factory, executor, tmp_path):
    """Many stop cycles in a row; a watchdog dumps every thread's stack if anything hangs.

    Before: one hang of over 300 s in 9 runs of such a loop on processes.
    """
    ctx = ctx_factory(executor)
    ds = slow_ds(ctx, n=12)
    stacks = open(tmp_path / "stacks.txt", "w+")
    faulthandler.dump_traceback_later(150, exit=True, file=stacks)
    try:
        with ThreadErrors() as te:
            for _round in range(3):
                for _ in ctx.run_udf_iter(dataset=ds, udf=Slow()):
                    break
                asyncio.run(_cancel_and_run_at_once(ctx, ds))
                timer = _interrupt_soon()
                try:
                    ctx.run_udf(dataset=ds, udf=Slow(delay=0.1))
                except KeyboardInterrupt:
                    pass
                finally:
                    timer.join()
                check_sum(ctx)
    finally:
        faulthandler.cancel_dump_traceback_later()
    stacks.seek(0)
    assert stacks.read() == ""
    assert te.errors == []


# --- resident size of workers: kept file maps are page cache, not private memory ----


def _rss(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_worker_rss_counts_kept_file_maps_and_release_files_drops_them(processes_ctx, tmp_path):
    """docs/execution.md: a worker's RSS includes the pages of the files it keeps mapped
    (RssFile), which is not private memory (RssAnon); release_files() drops them."""
    size = 48 << 20
    path = tmp_path / "big.npy"
    np.save(path, np.ones((48, 512, 512), np.float32))

    def pool_pids():
        return sorted(
            p.pid
            for p in psutil.Process().children(recursive=True)
            if "loky" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline())
        )

    # the workers' private memory before: what earlier tests' imports left (scipy, sparse,
    # numba can be more than the file's size), measured after a tiny run on the same workers
    tiny = processes_ctx.load("memory", data=np.ones((2, 2, 4, 4), np.float32))
    processes_ctx.run_udf(dataset=tiny, udf=SumUDF())
    before = {p: _rss(p, "RssAnon") for p in pool_pids()}
    ds = processes_ctx.load("npy", path=str(path), num_partitions=4)
    processes_ctx.run_udf(dataset=ds, udf=SumUDF())
    pids = pool_pids()
    assert sorted(before) == pids  # the same workers ran both
    file_pages = sum(_rss(p, "RssFile") for p in pids)
    grown = [_rss(p, "RssAnon") - before[p] for p in pids]
    assert file_pages > 0.9 * size  # the whole file is resident in the workers' RSS
    assert all(g < size / 4 for g in grown)  # but it is not their private memory
    processes_ctx.release_files()
    processes_ctx.executor._ready.wait(60)
    after = sum(_rss(p, "RssFile") for p in pool_pids())
    assert after < file_pages - 0.8 * size
