"""A corpus of UDFs written the way LiberTEM users write them, run unchanged except
for the import (``libertem.udf`` -> ``udfwidgets.udf``), each checked against NumPy
on every executor, with and without an roi, over several partition counts."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

from udfwidgets.udf import UDF  # was: from libertem.udf import UDF

SIG = (6, 5)


# --- the corpus ------------------------------------------------------------------------
class MaxUDF(UDF):
    def get_result_buffers(self):
        return {"maxbuf": self.buffer(kind="sig", dtype=self.meta.input_dtype)}

    def preprocess(self):
        self.results.maxbuf[:] = -np.inf

    def process_frame(self, frame):
        self.results.maxbuf[:] = np.maximum(frame, self.results.maxbuf)

    def merge(self, dest, src):
        dest.maxbuf[:] = np.maximum(dest.maxbuf, src.maxbuf)


class SumOverSig(UDF):
    def get_result_buffers(self):
        return {"pixelsum": self.buffer(kind="nav", dtype="float32")}

    def process_frame(self, frame):
        self.results.pixelsum[:] = np.sum(frame)


class CountAndSum(UDF):
    """`+=` everywhere, no slice assignment."""

    def get_result_buffers(self):
        return {
            "count": self.buffer(kind="single", dtype="int64"),
            "total": self.buffer(kind="sig", dtype="float64"),
        }

    def process_tile(self, tile):
        self.results.count += tile.shape[0]
        self.results.total += tile.sum(axis=0)

    def merge(self, dest, src):
        dest.count += src.count
        dest.total += src.total


class WhereAmI(UDF):
    def get_result_buffers(self):
        return {"coords": self.buffer(kind="nav", extra_shape=(2,), dtype="int64")}

    def process_frame(self, frame):
        self.results.coords[:] = self.meta.coordinates[0]


class SparseVirtualDetector(UDF):
    """A scipy.sparse mask built once per partition in get_task_data."""

    def __init__(self, radius=2.0):
        super().__init__(radius=radius)

    def get_task_data(self):
        sig = tuple(self.meta.dataset_shape.sig)
        y, x = np.indices(sig)
        cy, cx = sig[0] // 2, sig[1] // 2
        mask = ((y - cy) ** 2 + (x - cx) ** 2 <= self.params.radius**2).astype(np.float32)
        return {"mask": scipy.sparse.csr_matrix(mask.reshape(1, -1))}

    def get_result_buffers(self):
        return {"intensity": self.buffer(kind="nav", dtype="float32")}

    def process_tile(self, tile):
        flat = tile.reshape(tile.shape[0], -1)
        self.results.intensity[:] = self.forbuf(
            self.task_data.mask @ flat.T, self.results.intensity
        )


class SparseRowSums(UDF):
    """Asks for scipy.sparse tiles: (frames, pixels) CSR matrices."""

    def get_backends(self):
        return (self.BACKEND_SCIPY_CSR, self.BACKEND_NUMPY)

    def get_result_buffers(self):
        return {"rowsum": self.buffer(kind="nav", dtype="float64")}

    def process_tile(self, tile):
        # dense tiles are (n, *sig), scipy.sparse ones (n, pixels): flatten either way
        flat = tile.reshape((tile.shape[0], -1))
        self.results.rowsum[:] = self.forbuf(flat.sum(axis=1), self.results.rowsum)


class SparseOnlyRowSums(SparseRowSums):
    def get_backends(self):
        return (self.BACKEND_SCIPY_CSR,)


class PydataSparseMax(UDF):
    def get_backends(self):
        return (self.BACKEND_SPARSE_COO,)

    def get_result_buffers(self):
        return {"peak": self.buffer(kind="nav", dtype="float64")}

    def process_tile(self, tile):
        self.results.peak[:] = self.forbuf(tile.max(axis=(1, 2)), self.results.peak)


class AuxWeightedSum(UDF):
    """sum_i w_i * frame_i, w from aux data (LiberTEM's UDF.aux_data)."""

    def get_result_buffers(self):
        return {"weighted": self.buffer(kind="sig", dtype="float64")}

    def process_frame(self, frame):
        self.results.weighted += frame * self.params.weights[0]

    def merge(self, dest, src):
        dest.weighted += src.weighted


class RunningMean(UDF):
    def get_result_buffers(self):
        return {
            "sum": self.buffer(kind="sig", dtype="float64"),
            "n": self.buffer(kind="single", dtype="int64"),
            "mean": self.buffer(kind="sig", dtype="float64", use="result_only"),
        }

    def process_frame(self, frame):
        self.results.sum += frame
        self.results.n += 1

    def merge(self, dest, src):
        dest.sum += src.sum
        dest.n += src.n

    def get_results(self):
        return {"mean": self.results.sum / self.results.n[0]}


class Histogram(UDF):
    def __init__(self, bins=8):
        super().__init__(bins=bins)

    def get_result_buffers(self):
        return {"hist": self.buffer(kind="single", extra_shape=(self.params.bins,), dtype="int64")}

    def process_frame(self, frame):
        h, _ = np.histogram(frame, bins=self.params.bins, range=(0, 1))
        self.results.hist += h

    def merge(self, dest, src):
        dest.hist += src.hist


class SliceCollector(UDF):
    """Writes into a kind='single' buffer of the selected frames with meta.slice.get()."""

    def get_result_buffers(self):
        n = (
            np.count_nonzero(self.meta.roi)
            if self.meta.roi is not None
            else np.prod(self.meta.dataset_shape.nav)
        )
        return {"means": self.buffer(kind="single", extra_shape=(int(n),), dtype="float64")}

    def process_tile(self, tile):
        self.results.means[self.meta.slice.get(nav_only=True)] = tile.mean(axis=(1, 2))

    def merge(self, dest, src):
        dest.means += src.means


class PartitionMean(UDF):
    def get_result_buffers(self):
        return {"centered": self.buffer(kind="nav", dtype="float64")}

    def process_partition(self, partition):
        sums = partition.sum(axis=(1, 2))
        self.results.centered[:] = sums


class NavStatistics(UDF):
    """Reduces a nav buffer in get_results: flat and roi-compressed there."""

    def get_result_buffers(self):
        return {
            "sums": self.buffer(kind="nav", dtype="float64"),
            "stats": self.buffer(
                kind="single", extra_shape=(2,), dtype="float64", use="result_only"
            ),
        }

    def process_frame(self, frame):
        self.results.sums[:] = frame.sum()

    def get_results(self):
        sums = self.results.sums
        return {"stats": np.array([sums.mean(), sums.std()])}


class MyParamUDF(UDF):
    def __init__(self, my_param=None):
        if my_param is None:
            my_param = "Eins, zwei drei!"
        super().__init__(my_param=my_param)

    def get_result_buffers(self):
        return {"demo": self.buffer(kind="single", dtype=object)}

    def process_frame(self, frame):
        self.results.demo[:] = self.params.my_param

    def merge(self, dest, src):
        dest.demo[:] = src.demo


# --- the checks --------------------------------------------------------------------------
@pytest.fixture
def data(rng):
    return rng.random((6, 7) + SIG, dtype=np.float32)


@pytest.fixture(params=["none", "random"])
def roi(request, rng):
    if request.param == "none":
        return None
    mask = rng.random((6, 7)) < 0.45
    mask[2, 3] = True
    return mask


def _sel(data, roi):
    return data.reshape((-1,) + SIG) if roi is None else data[roi]


def _nav(res, name, roi):
    return res[name].raw_data


def check_all(res, data, roi, weights):
    sel = _sel(data, roi).astype(np.float64)
    sums = sel.sum(axis=(1, 2))
    flat_idx = np.flatnonzero(np.ones(data.shape[:2], bool) if roi is None else roi)
    np.testing.assert_array_equal(res["MaxUDF"]["maxbuf"].data, sel.max(axis=0))
    np.testing.assert_allclose(_nav(res["SumOverSig"], "pixelsum", roi), sums, rtol=1e-5)
    assert int(res["CountAndSum"]["count"].data[0]) == len(sel)
    np.testing.assert_allclose(res["CountAndSum"]["total"].data, sel.sum(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(
        _nav(res["WhereAmI"], "coords", roi),
        np.stack(np.unravel_index(flat_idx, data.shape[:2]), axis=1),
    )
    y, x = np.indices(SIG)
    disk = ((y - 3) ** 2 + (x - 2) ** 2 <= 4).astype(np.float64)
    np.testing.assert_allclose(
        _nav(res["SparseVirtualDetector"], "intensity", roi),
        (sel * disk).sum(axis=(1, 2)),
        rtol=1e-5,
    )
    for name in ("SparseRowSums", "SparseOnlyRowSums"):
        np.testing.assert_allclose(_nav(res[name], "rowsum", roi), sums, rtol=1e-5)
    np.testing.assert_allclose(
        _nav(res["PydataSparseMax"], "peak", roi), sel.max(axis=(1, 2)), rtol=1e-6
    )
    w = weights.reshape(-1) if roi is None else weights[roi]
    np.testing.assert_allclose(
        res["AuxWeightedSum"]["weighted"].data, (sel * w[:, None, None]).sum(axis=0), rtol=1e-5
    )
    np.testing.assert_allclose(res["RunningMean"]["mean"].data, sel.mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(
        res["Histogram"]["hist"].data, np.histogram(sel, bins=8, range=(0, 1))[0]
    )
    np.testing.assert_allclose(
        res["SliceCollector"]["means"].data, sel.mean(axis=(1, 2)), rtol=1e-5
    )
    np.testing.assert_allclose(_nav(res["PartitionMean"], "centered", roi), sums, rtol=1e-5)
    np.testing.assert_allclose(
        res["NavStatistics"]["stats"].data, [sums.mean(), sums.std()], rtol=1e-5
    )
    assert res["MyParamUDF"]["demo"].data[0] == "Eins, zwei drei!"


def make_corpus(weights):
    from udfwidgets.udf import UDF as Base

    aux = Base.aux_data(weights, kind="nav", dtype="float64")
    return {
        "MaxUDF": MaxUDF(),
        "SumOverSig": SumOverSig(),
        "CountAndSum": CountAndSum(),
        "WhereAmI": WhereAmI(),
        "SparseVirtualDetector": SparseVirtualDetector(radius=2),
        "SparseRowSums": SparseRowSums(),
        "SparseOnlyRowSums": SparseOnlyRowSums(),
        "PydataSparseMax": PydataSparseMax(),
        "AuxWeightedSum": AuxWeightedSum(weights=aux),
        "RunningMean": RunningMean(),
        "Histogram": Histogram(bins=8),
        "SliceCollector": SliceCollector(),
        "PartitionMean": PartitionMean(),
        "NavStatistics": NavStatistics(),
        "MyParamUDF": MyParamUDF(),
    }


def test_corpus_in_one_pass(any_ctx, data, roi, rng):
    weights = rng.random(data.shape[:2])
    corpus = make_corpus(weights)
    assert len(corpus) >= 10
    for n in (1, 4):
        ds = any_ctx.load("memory", data=data, num_partitions=n)
        results = any_ctx.run_udf(dataset=ds, udf=list(corpus.values()), roi=roi)
        check_all(dict(zip(corpus, results)), data, roi, weights)


def test_corpus_one_by_one_with_libertem_api_names(data, rng):
    from udfwidgets.api import Context  # was: from libertem.api import Context
    from udfwidgets.io.memory import MemoryDataSet  # was: libertem.io.dataset.memory

    weights = rng.random(data.shape[:2])
    with Context.make_with("inline") as ctx:
        ds = MemoryDataSet(data=data, tileshape=(3,) + SIG, num_partitions=3, sig_dims=2)
        results = {
            name: ctx.run_udf(dataset=ds, udf=udf) for name, udf in make_corpus(weights).items()
        }
    check_all(results, data, None, weights)
