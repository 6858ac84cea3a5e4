"""Data safety of RecordUDF: never the input, never a half-written file at the target."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from udfwidgets import UDF
from udfwidgets.udf.record import RecordUDF
from udfwidgets.udf.sum import SumUDF

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def partials(folder):
    return sorted(glob.glob(os.path.join(str(folder), ".*.partial-*")))


class FailAfter(UDF):
    """Raises ``exc`` in process_frame once it has seen ``after`` frames of its partition."""

    def __init__(self, after=3, exc="RuntimeError"):
        super().__init__(after=after, exc=exc)

    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav")}

    def preprocess(self):
        self.__dict__["_seen"] = 0

    def process_frame(self, frame):
        self.__dict__["_seen"] = self.__dict__.get("_seen", 0) + 1
        if self.meta.coordinates[0][0] >= self.params.after:
            raise {"RuntimeError": RuntimeError, "KeyboardInterrupt": KeyboardInterrupt}[
                self.params.exc
            ]("fails on purpose")
        self.results.x[:] = 1


@pytest.fixture
def npy_ds(any_ctx, tmp_path, data4d_int):
    path = tmp_path / "scan.npy"
    np.save(path, data4d_int)
    return any_ctx.load("npy", path=str(path), num_partitions=3), str(path)


@pytest.mark.parametrize("how", ["same path", "hard link", "symlink", "relative path"])
def test_record_refuses_to_write_the_file_it_reads(
    any_ctx, npy_ds, data4d_int, tmp_path, how, monkeypatch
):
    """Before: the input was zeroed and the run reported success."""
    ds, src = npy_ds
    target = {
        "same path": src,
        "hard link": str(tmp_path / "link.npy"),
        "symlink": str(tmp_path / "sym.npy"),
        "relative path": "scan.npy",
    }[how]
    if how == "hard link":
        os.link(src, target)
    elif how == "symlink":
        os.symlink(src, target)
    monkeypatch.chdir(tmp_path)
    udf = RecordUDF(target, overwrite=True)
    with pytest.raises(ValueError, match="would destroy the input") as info:
        any_ctx.run_udf(dataset=ds, udf=udf)
    assert os.path.abspath(target) in str(info.value) and src in str(info.value)
    np.testing.assert_array_equal(np.load(src), data4d_int)
    assert partials(tmp_path) == []


def test_record_refuses_the_file_behind_a_memory_mapped_array(ctx, tmp_path, data4d_int):
    src = tmp_path / "scan.npy"
    np.save(src, data4d_int)
    ds = ctx.load("memory", data=np.load(src, mmap_mode="r"))
    with pytest.raises(ValueError, match="would destroy the input"):
        ctx.run_udf(dataset=ds, udf=RecordUDF(src, overwrite=True))
    np.testing.assert_array_equal(np.load(src), data4d_int)


@pytest.mark.parametrize("overwrite", [False, True])
def test_failed_run_leaves_no_file_and_keeps_the_old_one(any_ctx, tmp_path, data4d_int, overwrite):
    target = tmp_path / "out.npy"
    old = np.arange(6.0)
    if overwrite:
        np.save(target, old)
    ds = any_ctx.load("memory", data=data4d_int, num_partitions=3)
    with pytest.raises(RuntimeError, match="fails on purpose"):
        any_ctx.run_udf(dataset=ds, udf=[RecordUDF(target, overwrite=overwrite), FailAfter(3)])
    if overwrite:
        np.testing.assert_array_equal(np.load(target), old)
    else:
        assert not target.exists()
    time.sleep(0.2)  # a threads worker may still finish its partition
    assert partials(tmp_path) == []
    # and the next run writes the file
    any_ctx.run_udf(dataset=ds, udf=RecordUDF(target, overwrite=True))
    np.testing.assert_array_equal(np.load(target), data4d_int)


def test_keyboard_interrupt_leaves_no_file(ctx, tmp_path, data4d_int):
    target = tmp_path / "out.npy"
    np.save(target, np.zeros(3))
    ds = ctx.load("memory", data=data4d_int, num_partitions=3)
    with pytest.raises(KeyboardInterrupt):
        ctx.run_udf(
            dataset=ds,
            udf=[RecordUDF(target, overwrite=True), FailAfter(2, exc="KeyboardInterrupt")],
        )
    np.testing.assert_array_equal(np.load(target), np.zeros(3))
    assert partials(tmp_path) == []


def test_break_in_run_udf_iter_leaves_no_file(any_ctx, tmp_path, data4d_int):
    target = tmp_path / "out.npy"
    ds = any_ctx.load("memory", data=data4d_int, num_partitions=4)
    for _ in any_ctx.run_udf_iter(dataset=ds, udf=[RecordUDF(target), SumUDF()]):
        assert not target.exists()  # partial results: the file is not there yet
        break
    assert not target.exists()
    time.sleep(0.2)
    assert partials(tmp_path) == []


def test_run_udf_iter_renames_when_finished(any_ctx, tmp_path, data4d_int):
    target = tmp_path / "out.npy"
    ds = any_ctx.load("memory", data=data4d_int, num_partitions=3)
    items = list(any_ctx.run_udf_iter(dataset=ds, udf=[RecordUDF(target), SumUDF()]))
    assert items[-1].finished
    np.testing.assert_array_equal(np.load(target), data4d_int)
    assert partials(tmp_path) == []


def test_a_run_that_is_never_iterated_leaves_no_temporary_file(ctx, tmp_path, data4d_int):
    import gc

    target = tmp_path / "out.npy"
    ds = ctx.load("memory", data=data4d_int)
    gen = ctx.run_udf_iter(dataset=ds, udf=RecordUDF(target))
    assert len(partials(tmp_path)) == 1
    del gen
    gc.collect()
    assert partials(tmp_path) == [] and not target.exists()


SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    from udfwidgets import UDF, Context
    from udfwidgets.udf.record import RecordUDF

    class Slow(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}
        def process_frame(self, frame):
            time.sleep(0.02)

    executor, target, overwrite = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    ctx = Context(executor=executor, n_jobs=2)
    ds = ctx.load("memory", data=np.ones((40, 8, 8), np.uint16), sig_dims=2, num_partitions=4)
    print("running", flush=True)
    ctx.run_udf(dataset=ds, udf=[RecordUDF(target, overwrite=overwrite), Slow()])
    print("finished", flush=True)
""")


@pytest.mark.parametrize("executor, overwrite", [("inline", False), ("processes", True)])
def test_sigkill_of_the_main_process_never_leaves_a_full_file(tmp_path, executor, overwrite):
    target = tmp_path / "out.npy"
    old = np.arange(5)
    if overwrite:
        np.save(target, old)
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(
        [sys.executable, str(script), executor, str(target), "1" if overwrite else "0"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not partials(tmp_path) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert partials(tmp_path), f"the run did not start: {proc.communicate()}"
        time.sleep(0.3)  # frames are being written into the temporary file
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    if overwrite:
        np.testing.assert_array_equal(np.load(target), old)
    else:
        assert not target.exists()
    # what is left is only the hidden partial file, never the target
    assert all(os.path.basename(p).startswith(".out.npy.partial-") for p in partials(tmp_path))
