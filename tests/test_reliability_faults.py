"""The fault x executor table: each fault gives the user a clear outcome, and the next run
on the same Context is correct, with no traceback left in any thread.

docs/reliability.md gives the counts. Worker death, Ctrl-C and SIGKILL of the main process are
in tests/test_execution.py, tests/test_reliability.py and tests/test_reliability_files.py.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from udfwidgets import UDF
from udfwidgets.udf.sum import SumUDF

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


class Boom(Exception):
    pass


class NeedsTwoArgs(Exception):
    """An exception that cannot be unpickled by the usual route (two required arguments)."""

    def __init__(self, a, b):
        super().__init__(f"needs two: {a} {b}")


def failing(method):
    class Failing(UDF):
        def get_result_buffers(self):
            return {"acc": self.buffer(kind="sig"), "x": self.buffer(kind="nav")}

        def get_task_data(self):
            if method == "get_task_data" and not self.meta.on_main_node:
                raise Boom("in get_task_data")
            return {}

        def preprocess(self):
            if method == "preprocess" and not self.meta.on_main_node:
                raise Boom("in preprocess")

        def merge(self, dest, src):
            if method == "merge":
                raise Boom("in merge")
            dest.acc[:] += src.acc

        def postprocess(self):
            if method == "postprocess":
                raise Boom("in postprocess")

        def get_results(self):
            if method == "get_results":
                raise Boom("in get_results")
            return {"acc": self.results.acc, "x": self.results.x}

    def fail(self, data):
        raise Boom(f"in {method}")

    if method in ("process_frame", "process_tile", "process_partition"):
        setattr(Failing, method, fail)
    else:
        Failing.process_frame = lambda self, frame: None
    return Failing()


class RaisesUnpicklable(UDF):
    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav")}

    def process_frame(self, frame):
        raise NeedsTwoArgs(1, 2)


class Slow(UDF):
    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav")}

    def process_frame(self, frame):
        time.sleep(0.05)  # 12 frames: a run lasts well beyond the 0.1 s before a cancel
        self.results.x[:] = 1


DATA = np.arange(6 * 5 * 4 * 3, dtype=np.float32).reshape(6, 5, 4, 3)


def check_next_run(ctx):
    ds = ctx.load("memory", data=DATA, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=SumUDF())
    np.testing.assert_array_equal(res["intensity"].data, DATA.sum(axis=(0, 1)))


def slow_ds(ctx):
    return ctx.load("memory", data=np.ones((12, 4, 4), np.float32), sig_dims=2, num_partitions=12)


def fault_break(ctx):
    for _ in ctx.run_udf_iter(dataset=slow_ds(ctx), udf=Slow()):
        break


def fault_close(ctx):
    gen = ctx.run_udf_iter(dataset=slow_ds(ctx), udf=Slow())
    next(gen)
    gen.close()


def fault_async_cancel(ctx):
    async def go():
        task = asyncio.ensure_future(ctx.run_udf(dataset=slow_ds(ctx), udf=Slow(), sync=False))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())


def fault_async_break(ctx):
    async def go():
        async for _ in ctx.run_udf_iter(dataset=slow_ds(ctx), udf=Slow(), sync=False):
            break

    asyncio.run(go())


def fault_unpicklable_exception(ctx):
    with pytest.raises(Exception, match="needs two") as info:
        ctx.run_udf(dataset=slow_ds(ctx), udf=RaisesUnpicklable())
    assert not isinstance(info.value, AssertionError)


def fault_interleaved_runs(ctx):
    ds = ctx.load("memory", data=DATA, num_partitions=3)
    a = ctx.run_udf_iter(dataset=ds, udf=SumUDF())
    b = ctx.run_udf_iter(dataset=ds, udf=SumUDF())
    last = {}
    for name, gen in (("a", a), ("b", b), ("a", a), ("b", b)):
        last[name] = next(gen)
    last["a"] = list(a)[-1]
    last["b"] = list(b)[-1]
    for item in last.values():
        np.testing.assert_array_equal(item.buffers[0]["intensity"].data, DATA.sum(axis=(0, 1)))


def fault_exception(method):
    def run(ctx):
        ds = ctx.load("memory", data=DATA, num_partitions=3)
        with pytest.raises(Boom, match=f"in {method}"):
            ctx.run_udf(dataset=ds, udf=failing(method))

    return run


FAULTS = {f"exception in {m}": fault_exception(m) for m in METHODS}
FAULTS.update(
    {
        "break in run_udf_iter": fault_break,
        "generator closed early": fault_close,
        "async run cancelled": fault_async_cancel,
        "break in async run_udf_iter": fault_async_break,
        "exception that does not unpickle": fault_unpicklable_exception,
        "two runs interleaved": fault_interleaved_runs,
    }
)


@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
def test_fault_then_next_run(any_ctx, fault):
    errors = []
    old = threading.excepthook
    threading.excepthook = lambda args: errors.append(f"{args.exc_type.__name__}: {args.exc_value}")
    try:
        FAULTS[fault](any_ctx)
        check_next_run(any_ctx)
        time.sleep(0.1)
    finally:
        threading.excepthook = old
    assert errors == []
