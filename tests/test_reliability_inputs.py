"""The bad-input table: each bad input gets a clear error at the call, before any work.

Every row is (what the user did, the exception type, a pattern the message must match).
The patterns check that the message names what is wrong and, where there is one, the way out.
docs/reliability.md gives the count of rows.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from udfwidgets import UDF, Context
from udfwidgets.executor.errors import ContextClosedError
from udfwidgets.executor.plan import ProcessReturnWarning
from udfwidgets.udf.record import RecordUDF
from udfwidgets.udf.sum import SumUDF

NAV, SIG = (4, 5), (3, 3)
# some rows use lambdas as process methods; their return values are not the point there
pytestmark = pytest.mark.filterwarnings("ignore::udfwidgets.executor.plan.ProcessReturnWarning")


def _data():
    return np.arange(np.prod(NAV + SIG), dtype=np.float32).reshape(NAV + SIG)


def _ds(ctx):
    return ctx.load("memory", data=_data())


def buf_udf(**decl):
    """A UDF with one buffer declared as ``self.buffer(**decl)``."""

    class Declares(UDF):
        def get_result_buffers(self):
            return {"b": self.buffer(**decl)}

        def process_frame(self, frame):
            pass

        def merge(self, dest, src):
            pass

    return Declares()


def udf_with(**methods):
    """A UDF with a nav buffer 'x' and the given methods."""
    body = {
        "get_result_buffers": lambda self: {"x": self.buffer(kind="nav")},
        "process_frame": lambda self, frame: None,
    }
    body.update(methods)
    return type("Custom", (UDF,), body)()


class NoSuper(UDF):
    def __init__(self, a=1):
        self.a = a

    def get_result_buffers(self):
        return {}

    def process_frame(self, frame):
        pass


class Renamed(UDF):
    def __init__(self, radius=1):
        super().__init__(r=radius)

    def get_result_buffers(self):
        return {}

    def process_frame(self, frame):
        pass


class HoldsLock(UDF):
    def __init__(self, lock=None):
        super().__init__(lock=lock)

    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav")}

    def process_frame(self, frame):
        pass


def run(ctx, **kwargs):
    kwargs.setdefault("dataset", _ds(ctx))
    kwargs.setdefault("udf", SumUDF())
    return ctx.run_udf(**kwargs)


def closed_ctx():
    ctx = Context(executor="inline")
    ctx.close()
    return ctx


def record(tmp, **kw):
    return RecordUDF(os.path.join(tmp, "out.npy"), **kw)


def existing_target(ctx, tmp):
    np.save(os.path.join(tmp, "out.npy"), np.zeros(2))
    return run(ctx, udf=record(tmp))


def record_into_input(ctx, tmp):
    src = os.path.join(tmp, "in.npy")
    np.save(src, _data())
    return run(ctx, dataset=ctx.load("npy", path=src), udf=RecordUDF(src, overwrite=True))


ROI_HINT = r"list of tuples"

CASES = [
    # --- Context -----------------------------------------------------------------
    (
        "executor='gpu'",
        lambda ctx, tmp: Context(executor="gpu"),
        ValueError,
        r"unknown executor 'gpu'; use one of inline, threads, processes, dask",
    ),
    (
        "n_jobs=0",
        lambda ctx, tmp: Context(executor="threads", n_jobs=0),
        ValueError,
        r"n_jobs must not be 0: use None for all cores",
    ),
    (
        "n_jobs='2'",
        lambda ctx, tmp: Context(executor="threads", n_jobs="2"),
        TypeError,
        r"n_jobs must be an integer .* got '2'",
    ),
    (
        "n_jobs=2.5",
        lambda ctx, tmp: Context(executor="processes", n_jobs=2.5, warm_start=False),
        TypeError,
        r"n_jobs must be an integer",
    ),
    (
        "n_jobs=True",
        lambda ctx, tmp: Context(executor="threads", n_jobs=True),
        TypeError,
        r"n_jobs must be an integer",
    ),
    (
        "tile_bytes=0",
        lambda ctx, tmp: Context(executor="inline", tile_bytes=0),
        ValueError,
        r"tile_bytes must be a positive integer",
    ),
    (
        "tile_bytes='4M'",
        lambda ctx, tmp: Context(executor="inline", tile_bytes="4M"),
        ValueError,
        r"tile_bytes must be a positive integer",
    ),
    (
        "run on a closed Context",
        lambda ctx, tmp: run(closed_ctx(), dataset=_ds(ctx)),
        ContextClosedError,
        r"this Context was closed .* make a new one",
    ),
    (
        "run_udf_iter on a closed Context",
        lambda ctx, tmp: closed_ctx().run_udf_iter(dataset=_ds(ctx), udf=SumUDF()),
        ContextClosedError,
        r"Context was closed",
    ),
    (
        "release_files on a closed Context",
        lambda ctx, tmp: closed_ctx().release_files(),
        ContextClosedError,
        r"Context was closed",
    ),
    # --- run_udf arguments -------------------------------------------------------
    (
        "dataset=None",
        lambda ctx, tmp: run(ctx, dataset=None),
        TypeError,
        r"dataset must be a udfwidgets dataset, got NoneType: open one with ctx.load",
    ),
    (
        "dataset=ndarray",
        lambda ctx, tmp: run(ctx, dataset=_data()),
        TypeError,
        r"got ndarray: wrap an array with ctx.load\(\"memory\", data=array\)",
    ),
    (
        "dataset='scan.npy'",
        lambda ctx, tmp: run(ctx, dataset="scan.npy"),
        TypeError,
        r"got str: open the file with ctx.load\(\"auto\", path='scan.npy'\)",
    ),
    (
        "udf=SumUDF (the class)",
        lambda ctx, tmp: run(ctx, udf=SumUDF),
        TypeError,
        r"udf=SumUDF is the class, not a UDF: pass an instance, SumUDF\(\)",
    ),
    (
        "udf=[SumUDF(), SumUDF]",
        lambda ctx, tmp: run(ctx, udf=[SumUDF(), SumUDF]),
        TypeError,
        r"udf\[1\]=SumUDF is the class",
    ),
    (
        "udf=None",
        lambda ctx, tmp: run(ctx, udf=None),
        TypeError,
        r"udf=: expected UDF instances .* got NoneType",
    ),
    ("udf=[]", lambda ctx, tmp: run(ctx, udf=[]), ValueError, r"no UDF given"),
    ("udf='sum'", lambda ctx, tmp: run(ctx, udf="sum"), TypeError, r"got str"),
    ("udf=42", lambda ctx, tmp: run(ctx, udf=42), TypeError, r"got int"),
    (
        "udf=[SumUDF(), 3]",
        lambda ctx, tmp: run(ctx, udf=[SumUDF(), 3]),
        TypeError,
        r"udf\[1\]=: expected UDF instances .* got int",
    ),
    ("udf=dict", lambda ctx, tmp: run(ctx, udf=dict), TypeError, r"dict is a class, not a UDF"),
    (
        "rio= (typo)",
        lambda ctx, tmp: run(ctx, rio=None),
        TypeError,
        r"unexpected keyword argument 'rio' \(did you mean 'roi'\?\)",
    ),
    (
        "progres= (typo)",
        lambda ctx, tmp: run(ctx, progres=True),
        TypeError,
        r"'progres' \(did you mean 'progress'\?\)",
    ),
    (
        "two unknown keywords",
        lambda ctx, tmp: run(ctx, foo=1, bar=2),
        TypeError,
        r"unexpected keyword arguments 'foo', 'bar'",
    ),
    (
        "corrections= not a CorrectionSet",
        lambda ctx, tmp: run(ctx, corrections=object()),
        TypeError,
        r"corrections must be a udfwidgets.corrections.CorrectionSet",
    ),
    (
        "backends= naming an unknown backend",
        lambda ctx, tmp: run(ctx, backends=("numpi",)),
        ValueError,
        r"unknown array backends",
    ),
    (
        "run_udf_iter(rio=)",
        lambda ctx, tmp: ctx.run_udf_iter(dataset=_ds(ctx), udf=SumUDF(), rio=1),
        TypeError,
        r"run_udf_iter\(\) got an unexpected keyword argument 'rio'",
    ),
    (
        "sync='no'",
        lambda ctx, tmp: run(ctx, sync="no"),
        TypeError,
        r"sync must be True .* or False",
    ),
    # --- roi -----------------------------------------------------------------------
    (
        "roi of the wrong shape",
        lambda ctx, tmp: run(ctx, roi=np.ones((3, 3), bool)),
        ValueError,
        r"bool roi must have the navigation shape \(4, 5\)",
    ),
    (
        "roi with values 0/2",
        lambda ctx, tmp: run(ctx, roi=np.full(NAV, 2)),
        ValueError,
        r"values other than 0 and 1 \(2\).*" + ROI_HINT,
    ),
    (
        "roi of floats 0.5",
        lambda ctx, tmp: run(ctx, roi=np.full(NAV, 0.5)),
        ValueError,
        r"values other than 0 and 1",
    ),
    ("roi=True", lambda ctx, tmp: run(ctx, roi=True), ValueError, r"single value: use roi=None"),
    (
        "roi='all'",
        lambda ctx, tmp: run(ctx, roi="all"),
        ValueError,
        r"neither a mask nor a list of coordinates.*" + ROI_HINT,
    ),
    (
        "roi coordinate outside",
        lambda ctx, tmp: run(ctx, roi=[(0, 9)]),
        ValueError,
        r"\(0, 9\) is not inside the navigation shape \(4, 5\)",
    ),
    (
        "roi negative coordinate",
        lambda ctx, tmp: run(ctx, roi=[(-1, 0)]),
        ValueError,
        r"negative ones are not allowed",
    ),
    (
        "roi tuple of 3 for 2-D nav",
        lambda ctx, tmp: run(ctx, roi=(1, 2, 3)),
        ValueError,
        r"needs 2 integers",
    ),
    (
        "roi float coordinates",
        lambda ctx, tmp: run(ctx, roi=np.array([[0.0, 1.0]] * 3)),
        ValueError,
        r"coordinates must be integers",
    ),
    (
        "roi pairs mixed values",
        lambda ctx, tmp: run(ctx, roi=[((0, 0), True), ((1, 1), False)]),
        ValueError,
        r"must all have the same value",
    ),
    (
        "roi of strings",
        lambda ctx, tmp: run(ctx, roi=np.full(NAV, "x")),
        ValueError,
        r"cannot be a mask",
    ),
    (
        "roi of dicts",
        lambda ctx, tmp: run(ctx, roi=[{"a": 1}]),
        ValueError,
        r"not an array of numbers",
    ),
    # --- datasets ------------------------------------------------------------------
    ("load kind 'foo'", lambda ctx, tmp: ctx.load("foo"), ValueError, r"foo"),
    (
        "memory with data=None",
        lambda ctx, tmp: ctx.load("memory", data=None),
        ValueError,
        r"needs a NumPy array as data=",
    ),
    (
        "memory of strings",
        lambda ctx, tmp: ctx.load("memory", data=np.full((2, 2, 2, 2), "a")),
        ValueError,
        r"dtype <U1 are not supported: detector data must be numbers",
    ),
    (
        "memory of objects",
        lambda ctx, tmp: ctx.load("memory", data=np.empty((2, 2, 2), object), sig_dims=1),
        ValueError,
        r"dtype object are not supported",
    ),
    (
        "memory of datetimes",
        lambda ctx, tmp: ctx.load("memory", data=np.zeros((2, 2, 2), "datetime64[s]"), sig_dims=1),
        ValueError,
        r"not supported: detector data must be numbers",
    ),
    (
        "memory sig_dims=3",
        lambda ctx, tmp: ctx.load("memory", data=np.zeros((2, 2, 2, 2)), sig_dims=3),
        ValueError,
        r"sig_dims",
    ),
    (
        "npy file missing",
        lambda ctx, tmp: ctx.load("npy", path=os.path.join(tmp, "no.npy")),
        Exception,
        r"no\.npy",
    ),
    (
        "npy of strings",
        lambda ctx, tmp: (
            np.save(os.path.join(tmp, "s.npy"), np.full((2, 2, 2), "ab")),
            ctx.load("npy", path=os.path.join(tmp, "s.npy"), sig_dims=1),
        ),
        ValueError,
        r"holds dtype <U2, not numbers",
    ),
    (
        "raw dtype 'U4'",
        lambda ctx, tmp: (
            open(os.path.join(tmp, "r.raw"), "wb").write(b"0" * 64),
            ctx.load(
                "raw", path=os.path.join(tmp, "r.raw"), nav_shape=(2, 2), sig_shape=(1,), dtype="U4"
            ),
        ),
        ValueError,
        r"not a numeric dtype",
    ),
    (
        "raw of the wrong size",
        lambda ctx, tmp: (
            open(os.path.join(tmp, "r.raw"), "wb").write(b"0" * 61),
            ctx.load(
                "raw",
                path=os.path.join(tmp, "r.raw"),
                nav_shape=(2, 2),
                sig_shape=(2, 2),
                dtype="uint8",
            ),
        ),
        ValueError,
        r"has 61 bytes, not a whole number of frames",
    ),
    # --- buffers -------------------------------------------------------------------
    (
        "extra_shape=(2.5,)",
        lambda ctx, tmp: run(ctx, udf=buf_udf(kind="nav", extra_shape=(2.5,))),
        ValueError,
        r"buffer 'b' of Declares: extra_shape=\(2.5,\) must be a tuple of non-negative "
        r"integers",
    ),
    (
        "extra_shape=(-1,)",
        lambda ctx, tmp: run(ctx, udf=buf_udf(kind="nav", extra_shape=(-1,))),
        ValueError,
        r"non-negative integers",
    ),
    (
        "extra_shape='ab'",
        lambda ctx, tmp: run(ctx, udf=buf_udf(kind="nav", extra_shape="ab")),
        ValueError,
        r"extra_shape='ab'",
    ),
    (
        "extra_shape=(True,)",
        lambda ctx, tmp: run(ctx, udf=buf_udf(kind="sig", extra_shape=(True,))),
        ValueError,
        r"extra_shape=\(True,\)",
    ),
    (
        "kind='navv'",
        lambda ctx, tmp: run(ctx, udf=buf_udf(kind="navv")),
        ValueError,
        r"kind='navv' is not one of 'nav', 'sig', 'single'",
    ),
    (
        "dtype='nope'",
        lambda ctx, tmp: run(ctx, udf=buf_udf(kind="nav", dtype="nope")),
        ValueError,
        r"dtype='nope' is not a NumPy dtype",
    ),
    (
        "use='privat'",
        lambda ctx, tmp: run(ctx, udf=buf_udf(kind="nav", use="privat")),
        ValueError,
        r"use='privat' must be None, 'private' or 'result_only'",
    ),
    (
        "buffer name '1x'",
        lambda ctx, tmp: run(
            ctx, udf=udf_with(get_result_buffers=lambda self: {"1x": self.buffer(kind="nav")})
        ),
        ValueError,
        r"valid Python identifiers",
    ),
    (
        "get_result_buffers returns a list",
        lambda ctx, tmp: run(
            ctx, udf=udf_with(get_result_buffers=lambda self: [self.buffer(kind="nav")])
        ),
        ValueError,
        r"must return a dict of name -> self.buffer",
    ),
    (
        "buffer is an array",
        lambda ctx, tmp: run(ctx, udf=udf_with(get_result_buffers=lambda self: {"x": np.zeros(3)})),
        ValueError,
        r"declare it with self.buffer\(kind=..., dtype=...\), got ndarray",
    ),
    (
        "sig buffer without merge",
        lambda ctx, tmp: run(
            ctx, udf=udf_with(get_result_buffers=lambda self: {"s": self.buffer(kind="sig")})
        ),
        NotImplementedError,
        r"no merge\(\) method.*dest.s\[:\] \+= src.s",
    ),
    (
        "no process method",
        lambda ctx, tmp: run(
            ctx, udf=type("Lazy", (UDF,), {"get_result_buffers": lambda self: {}})()
        ),
        TypeError,
        r"Lazy implements none of process_frame, process_tile, process_partition",
    ),
    (
        "get_results returns a list",
        lambda ctx, tmp: run(ctx, udf=udf_with(get_results=lambda self: [1])),
        ValueError,
        r"get_results\(\) must return a dict",
    ),
    (
        "get_results returns an undeclared name",
        lambda ctx, tmp: run(ctx, udf=udf_with(get_results=lambda self: {"y": 1})),
        ValueError,
        r"returned 'y', which is not a declared buffer",
    ),
    (
        "get_results nav of the wrong shape",
        lambda ctx, tmp: run(ctx, udf=udf_with(get_results=lambda self: {"x": np.zeros(3)})),
        ValueError,
        r"a nav buffer must have shape \(4, 5\)",
    ),
    # assignment writes into the buffer (LiberTEM's `dest.x = src.x`); a wrong shape says so
    (
        "assigning a wrong-shaped array to a buffer",
        lambda ctx, tmp: run(
            ctx,
            udf=udf_with(process_frame=lambda self, frame: setattr(self.results, "x", np.zeros(7))),
        ),
        ValueError,
        r"cannot write into buffer 'x' of .* \(shape",
    ),
    (
        "reading an undeclared buffer",
        lambda ctx, tmp: run(ctx, udf=udf_with(process_frame=lambda self, frame: self.results.y)),
        AttributeError,
        r"no result buffer 'y' \(declared buffers: x\)",
    ),
    (
        "unknown parameter",
        lambda ctx, tmp: run(
            ctx, udf=udf_with(process_frame=lambda self, frame: self.params.radius)
        ),
        AttributeError,
        r"has no parameter 'radius'",
    ),
    # --- UDF constructors and pickling ---------------------------------------------
    (
        "__init__ without super().__init__",
        lambda ctx, tmp: run(ctx, udf=NoSuper()),
        TypeError,
        r"NoSuper.__init__ did not call super\(\).__init__\(\)",
    ),
    (
        "parameter renamed in super().__init__",
        lambda ctx, tmp: run(ctx, udf=Renamed(3)),
        TypeError,
        r"cannot make a clean copy of Renamed",
    ),
    # --- RecordUDF -------------------------------------------------------------------
    ("RecordUDF(filename=3)", lambda ctx, tmp: RecordUDF(3), TypeError, r"filename must be a path"),
    (
        "RecordUDF in a missing folder",
        lambda ctx, tmp: RecordUDF(os.path.join(tmp, "a", "b.npy")),
        FileNotFoundError,
        r"does not exist; create it first",
    ),
    (
        "RecordUDF(dtype='nope')",
        lambda ctx, tmp: record(tmp, dtype="nope"),
        ValueError,
        r"dtype must be a NumPy dtype",
    ),
    (
        "RecordUDF(dtype=object)",
        lambda ctx, tmp: record(tmp, dtype=object),
        ValueError,
        r"use a numeric dtype",
    ),
    (
        "RecordUDF(overwrite='yes')",
        lambda ctx, tmp: record(tmp, overwrite="yes"),
        ValueError,
        r"overwrite must be True or False",
    ),
    ("RecordUDF(a folder)", lambda ctx, tmp: RecordUDF(tmp), IsADirectoryError, r"is a directory"),
    (
        "RecordUDF onto an existing file",
        existing_target,
        FileExistsError,
        r"exists; pass overwrite=True",
    ),
    (
        "RecordUDF onto its own input",
        record_into_input,
        ValueError,
        r"which is the file the dataset reads .* would destroy the input",
    ),
]


@pytest.mark.parametrize("what, call, exc, match", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(ctx, tmp_path, what, call, exc, match):
    with pytest.raises(exc, match=match):
        call(ctx, str(tmp_path))


def test_the_table_has_at_least_60_rows():
    assert len(CASES) + len(PROCESS_CASES) >= 60


PROCESS_CASES = [
    (
        "an unpicklable parameter (processes)",
        lambda ctx: ctx.run_udf(dataset=_ds(ctx), udf=HoldsLock(threading.Lock())),
        TypeError,
        r"parameter 'lock' of HoldsLock cannot be pickled",
    ),
]


@pytest.mark.parametrize("what, call, exc, match", PROCESS_CASES, ids=[c[0] for c in PROCESS_CASES])
def test_bad_input_on_processes(processes_ctx, what, call, exc, match):
    with pytest.raises(exc, match=match):
        call(processes_ctx)


def test_the_context_stays_usable_after_every_bad_input(ctx, tmp_path):
    for _, call, exc, _ in CASES:
        with pytest.raises(exc):
            call(ctx, str(tmp_path))
    res = ctx.run_udf(dataset=_ds(ctx), udf=SumUDF())
    np.testing.assert_array_equal(res["intensity"].data, _data().sum(axis=(0, 1)))


# --- process methods that return instead of writing a buffer -----------------------


class ReturnsFrameSum(UDF):
    def get_result_buffers(self):
        return {"s": self.buffer(kind="nav")}

    def process_frame(self, frame):
        return frame.sum()  # wrong: the result is lost, 's' stays zero


class ReturnsTile(UDF):
    def get_result_buffers(self):
        return {"s": self.buffer(kind="nav")}

    def process_tile(self, tile):
        if tile.size:
            return tile.sum(axis=(1, 2))
        return None


class WritesProperly(UDF):
    def get_result_buffers(self):
        return {"s": self.buffer(kind="nav")}

    def process_frame(self, frame):
        if frame.size == 0:
            return
        self.results.s[:] = frame.sum()


@pytest.mark.filterwarnings("error::udfwidgets.executor.plan.ProcessReturnWarning")
@pytest.mark.parametrize("executor", ["inline", "threads", "processes"])
def test_process_method_returning_a_value_warns_once_per_run(ctx_factory, executor):
    """Before: silently all zeros."""
    ctx = ctx_factory(executor)
    ds = ctx.load("memory", data=_data(), num_partitions=4)
    # twice: the finding is kept per code object, the warning comes with every run
    pairs = ((ReturnsFrameSum(), "process_frame"), (ReturnsTile(), "process_tile")) * 2
    for udf, method in pairs:
        with pytest.warns(ProcessReturnWarning) as record:
            ctx.run_udf(dataset=ds, udf=udf)
        assert len(record) == 1, [str(r.message) for r in record]
        text = str(record[0].message)
        assert f"{type(udf).__name__}.{method}() returns a value, which is ignored" in text
        assert "self.results.<name>[:] = value" in text
        assert record[0].filename == __file__  # points at the user's call


@pytest.mark.filterwarnings("error::udfwidgets.executor.plan.ProcessReturnWarning")
def test_udfs_that_write_their_buffers_do_not_warn(ctx):
    from udfwidgets.udf.com import CoMUDF
    from udfwidgets.udf.logsum import LogsumUDF
    from udfwidgets.udf.masks import ApplyMasksUDF
    from udfwidgets.udf.pick import PickUDF
    from udfwidgets.udf.radial import RadialProfileUDF
    from udfwidgets.udf.stddev import StdDevUDF
    from udfwidgets.udf.sumsigudf import SumSigUDF

    ds = _ds(ctx)
    udfs = [
        WritesProperly(),
        SumUDF(),
        SumSigUDF(),
        LogsumUDF(),
        StdDevUDF(),
        PickUDF(),
        ApplyMasksUDF(mask_factories=[lambda: np.ones(SIG)]),
        CoMUDF(),
        RadialProfileUDF(),
    ]
    for udf in udfs:
        ctx.run_udf(dataset=ds, udf=udf, roi=(1, 2) if isinstance(udf, PickUDF) else None)
