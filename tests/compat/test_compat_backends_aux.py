"""Array backends, aux data, ctx.map/AutoUDF and the Context's LiberTEM entry points."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from udfwidgets import UDF, Context
from udfwidgets.udf.backends import BackendError


@pytest.fixture
def data(rng):
    return rng.random((4, 5, 6, 4), dtype=np.float32)


@pytest.fixture
def roi(rng):
    mask = rng.random((4, 5)) < 0.5
    mask[0, 0] = True
    return mask


# --- backends --------------------------------------------------------------------
class BackendProbe(UDF):
    def __init__(self, backends=("numpy",)):
        super().__init__(backends=backends)

    def get_backends(self):
        return self.params.backends

    def get_result_buffers(self):
        return {
            "total": self.buffer(kind="nav", dtype="float64"),
            "numpy_xp": self.buffer(kind="nav", dtype=bool),
        }

    def process_tile(self, tile):
        dense = (
            tile.toarray()
            if hasattr(tile, "toarray")
            else (tile.todense() if hasattr(tile, "todense") else tile)
        )
        dense = np.asarray(dense).reshape(dense.shape[0], -1)
        self.results.total[:] = dense.sum(axis=1)
        self.results.numpy_xp[:] = self.xp is np and self.meta.device_class == "cpu"


def test_default_backend_is_numpy_with_constants(ctx, data):
    udf = UDF()
    assert udf.get_backends() == (UDF.BACKEND_NUMPY,)
    assert UDF.BACKEND_NUMPY in UDF.BACKEND_ALL and UDF.BACKEND_CUPY in UDF.BACKEND_ALL
    assert UDF.BACKEND_SCIPY_CSR in UDF.SPARSE_BACKENDS and UDF.BACKEND_NUMPY in UDF.CPU_BACKENDS
    udf = BackendProbe()
    ctx.run_udf(dataset=ctx.load("memory", data=data), udf=udf)
    assert udf.meta.array_backend == "numpy" and udf.meta.device_class == "cpu"


@pytest.mark.parametrize(
    "backends, expected_type",
    [
        (("cupy", "numpy"), np.ndarray),
        (UDF.BACKEND_ALL, np.ndarray),
        (("scipy.sparse.csr_matrix",), "csr_matrix"),
        (("sparse.COO", "cupy"), "COO"),
    ],
)
def test_backend_choice_and_sparse_tiles(any_ctx, data, roi, backends, expected_type):
    seen = {}

    class TypeProbe(BackendProbe):
        def process_tile(self, tile):
            super().process_tile(tile)
            seen.setdefault("type", type(tile))

    ds = any_ctx.load("memory", data=data, num_partitions=2)
    res = any_ctx.run_udf(dataset=ds, udf=BackendProbe(backends=tuple(backends)), roi=roi)
    np.testing.assert_allclose(res["total"].raw_data, data.sum(axis=(2, 3))[roi], rtol=1e-5)
    assert res["numpy_xp"].raw_data.all()
    if any_ctx.executor.name == "inline":
        any_ctx.run_udf(dataset=ds, udf=TypeProbe(backends=tuple(backends)))
        name = expected_type if isinstance(expected_type, str) else expected_type.__name__
        assert seen["type"].__name__ == name


def test_gpu_only_udf_is_refused_before_work(ctx, data):
    with pytest.raises(BackendError, match=r"need a GPU .*add UDF.BACKEND_NUMPY"):
        ctx.run_udf(dataset=ctx.load("memory", data=data), udf=BackendProbe(backends=("cupy",)))


def test_run_udf_backends_restricts_the_choice(ctx, data):
    ds = ctx.load("memory", data=data)
    udf = BackendProbe(backends=("scipy.sparse.csr_matrix", "numpy"))
    ctx.run_udf(dataset=ds, udf=udf, backends=("numpy",))
    assert udf.meta.array_backend == "numpy"
    with pytest.raises(BackendError, match=r"supports none of the backends"):
        ctx.run_udf(dataset=ds, udf=BackendProbe(backends=("numpy",)), backends=("cupy",))
    it = ctx.run_udf_iter(dataset=ds, udf=BackendProbe(), backends=("numpy",))
    assert list(it)[-1].finished


# --- aux data ----------------------------------------------------------------------
class EchoAux(UDF):
    def get_result_buffers(self):
        return {
            "echo": self.buffer(kind="nav", extra_shape=(2,), dtype="float32"),
            "weighted": self.buffer(kind="nav", dtype="float32"),
        }

    def process_frame(self, frame):
        self.results.echo[:] = self.params.aux
        self.results.weighted[:] = frame.sum() * self.params.aux[0]


class EchoAuxTiled(EchoAux):
    def process_tile(self, tile):
        self.results.echo[:] = self.params.aux
        self.results.weighted[:] = tile.sum(axis=(1, 2)) * self.params.aux[:, 0]


@pytest.mark.parametrize("cls", [EchoAux, EchoAuxTiled])
def test_aux_data_arrives_as_views_with_roi(any_ctx, data, roi, rng, cls):
    aux = rng.random((4, 5, 2), dtype=np.float32)
    ds = any_ctx.load("memory", data=data, num_partitions=3)
    for r in (None, roi):
        sel = np.ones((4, 5), bool) if r is None else r
        udf = cls(aux=cls.aux_data(data=aux, kind="nav", extra_shape=(2,), dtype="float32"))
        res = any_ctx.run_udf(dataset=ds, udf=udf, roi=r)
        np.testing.assert_array_equal(res["echo"].raw_data, aux[sel])
        np.testing.assert_allclose(
            res["weighted"].raw_data, data.sum(axis=(2, 3))[sel] * aux[sel][:, 0], rtol=1e-5
        )


def test_libertem_style_buffer_wrapper_as_aux(ctx, data, rng):
    from udfwidgets.udf.buffers import BufferWrapper

    aux = BufferWrapper(kind="nav", dtype="float32", extra_shape=(2,))
    values = rng.random((4, 5, 2), dtype=np.float32)
    aux.set_buffer(values)
    res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=EchoAux(aux=aux))
    np.testing.assert_array_equal(res["echo"].raw_data, aux.raw_data)


# --- ctx.map / AutoUDF ----------------------------------------------------------------
def test_map_numeric_and_object_results(any_ctx, data):
    import functools

    ds = any_ctx.load("memory", data=data, num_partitions=2)
    res = any_ctx.map(dataset=ds, f=functools.partial(np.sum, axis=-1))
    np.testing.assert_allclose(res.data, data.sum(axis=-1), rtol=1e-5)

    def describe(frame):
        return [f"shape {frame.shape}", {"sum": float(frame.sum())}]

    item = any_ctx.map(dataset=ds, f=describe).data[1, 2]
    assert item[0] == "shape (6, 4)"
    assert item[1]["sum"] == pytest.approx(float(data[1, 2].sum()), rel=1e-5)


# --- Context entry points ---------------------------------------------------------------
def test_make_with_cpus_and_gpus():
    with Context.make_with("threads", cpus=2) as ctx:
        assert ctx.executor.name == "threads" and ctx.executor.n_workers == 2
    with Context.make_with("inline", cpus=range(3)) as ctx:
        assert ctx.executor.name == "inline"
    assert Context.make_with("synchronous").executor.name == "inline"
    with pytest.raises(ValueError, match="CPU only"):
        Context.make_with("inline", gpus=1)
    with pytest.raises(ValueError, match="cpus must be"):
        Context.make_with("threads", cpus=0)


def test_udf_run_cancelled_is_the_cancellation(ctx, data):
    from udfwidgets.api import UDFRunCancelled as api_name
    from udfwidgets.context import RunCancelled, UDFRunCancelled

    assert api_name is UDFRunCancelled and issubclass(UDFRunCancelled, RunCancelled)
    started = []

    class Slow(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

        def process_frame(self, frame):
            started.append(1)
            import time

            time.sleep(0.02)
            self.results.x[:] = 1

    async def main():
        ds = ctx.load("memory", data=np.zeros((20, 10, 2, 2), np.float32), num_partitions=20)
        task = asyncio.ensure_future(ctx.run_udf(dataset=ds, udf=Slow(), sync=False))
        while not started:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert len(started) < 200  # the run stopped early


def test_display_and_html_repr(ctx, data):
    ds = ctx.load("memory", data=data, num_partitions=2)
    shown = ctx.display(ds)
    html = shown._repr_html_()
    assert "<table" in html and "(4, 5)" in html and "(6, 4)" in html and "float32" in html
    assert str(shown) == "MemoryDataSet: nav (4, 5), sig (6, 4), float32, 1.9 KiB"
    assert "<td>2</td>" in html  # partitions
    assert ds._repr_html_().startswith("<table")


def test_api_module_reexports_context():
    from udfwidgets import api

    assert api.Context is Context
    from udfwidgets.io.memory import MemoryDataSet

    assert api.MemoryDataSet is MemoryDataSet
