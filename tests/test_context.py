"""Every buffer kind and process method against a NumPy reference, over executors,
partition counts, rois, navigation dimensions and input dtypes."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from udfwidgets import UDF, Context
from udfwidgets.udf.sum import SumUDF
from udfwidgets.udf.sumsigudf import SumSigUDF


class KindsFrameUDF(UDF):
    """Touches every buffer kind, extra_shape, object dtype, private and result_only buffers."""

    def get_result_buffers(self):
        nav_dims = len(self.meta.dataset_shape.nav)
        return {
            "total": self.buffer(kind="nav", dtype="float64"),
            "minmax": self.buffer(kind="nav", extra_shape=(2,), dtype="float64"),
            "coords": self.buffer(kind="nav", extra_shape=(nav_dims,), dtype="int64"),
            "label": self.buffer(kind="nav", dtype=object),
            "sigsum": self.buffer(kind="sig", dtype="float64"),
            "count": self.buffer(kind="single", dtype="int64"),
            "scratch": self.buffer(kind="sig", dtype="float64", use="private"),
            "mean": self.buffer(kind="sig", dtype="float64", use="result_only"),
        }

    def preprocess(self):
        self.results.scratch[:] = 1.0

    def process_frame(self, frame):
        self.results.total[:] = frame.sum(dtype=np.float64)
        self.results.minmax[:] = (frame.min(), frame.max())
        self.results.coords[:] = self.meta.coordinates[0]
        self.results.label[0] = f"frame at {tuple(int(c) for c in self.meta.coordinates[0])}"
        self.results.sigsum[:] += frame * self.results.scratch
        self.results.count[:] += 1

    def merge(self, dest, src):
        for name in ("total", "minmax", "coords", "label"):
            getattr(dest, name)[:] = getattr(src, name)
        dest.sigsum[:] += src.sigsum
        dest.count[:] += src.count

    def get_results(self):
        count = self.results.count[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.results.sigsum / count
        return {
            "total": self.results.total,
            "minmax": self.results.minmax,
            "coords": self.results.coords,
            "label": self.results.label,
            "sigsum": self.results.sigsum,
            "count": self.results.count,
            "mean": mean,
        }


class KindsTileUDF(KindsFrameUDF):
    def process_tile(self, tile):
        sig_axes = tuple(range(1, tile.ndim))
        self.results.total[:] = tile.sum(axis=sig_axes, dtype=np.float64)
        self.results.minmax[:, 0] = tile.min(axis=sig_axes)
        self.results.minmax[:, 1] = tile.max(axis=sig_axes)
        self.results.coords[:] = self.meta.coordinates
        self.results.label[:] = [
            f"frame at {tuple(int(c) for c in xy)}" for xy in self.meta.coordinates
        ]
        self.results.sigsum[:] += tile.sum(axis=0, dtype=np.float64)
        self.results.count[:] += len(tile)


class KindsPartitionUDF(KindsTileUDF):
    def process_partition(self, partition):
        self.process_tile(partition)


def reference(data, sig_dims, roi):
    nav_shape = data.shape[: data.ndim - sig_dims]
    n = int(np.prod(nav_shape))
    flat = data.reshape((n,) + data.shape[data.ndim - sig_dims :]).astype(np.float64)
    mask = np.ones(n, bool) if roi is None else np.asarray(roi).reshape(n)
    axes = tuple(range(1, flat.ndim))
    coords = np.stack(np.unravel_index(np.arange(n), nav_shape), axis=1)
    return {
        "total": flat.sum(axis=axes),
        "min": flat.min(axis=axes) if flat.size else None,
        "max": flat.max(axis=axes) if flat.size else None,
        "coords": coords,
        "mask": mask,
        "nav_shape": nav_shape,
        "sigsum": flat[mask].sum(axis=0),
        "count": int(mask.sum()),
    }


def check_kinds(res, data, sig_dims, roi):
    ref = reference(data, sig_dims, roi)
    mask, nav_shape = ref["mask"], ref["nav_shape"]
    total = res["total"].data.reshape(-1)
    np.testing.assert_allclose(total[mask], ref["total"][mask], rtol=1e-6)
    assert np.isnan(total[~mask]).all()
    np.testing.assert_allclose(res["total"].raw_data, ref["total"][mask], rtol=1e-6)
    mm = res["minmax"].data.reshape(-1, 2)
    np.testing.assert_array_equal(mm[mask, 0], ref["min"][mask])
    np.testing.assert_array_equal(mm[mask, 1], ref["max"][mask])
    coords = res["coords"].data.reshape(-1, len(nav_shape))
    np.testing.assert_array_equal(coords[mask], ref["coords"][mask])
    assert (coords[~mask] == 0).all()  # integer fill value
    labels = res["label"].data.reshape(-1)
    assert list(labels[mask]) == [
        f"frame at {tuple(int(c) for c in xy)}" for xy in ref["coords"][mask]
    ]
    assert all(x is None for x in labels[~mask])  # object fill value
    np.testing.assert_allclose(res["sigsum"].data, ref["sigsum"], rtol=1e-9)
    assert res["count"].data.shape == (1,) and res["count"].data[0] == ref["count"]
    if ref["count"]:
        np.testing.assert_allclose(res["mean"].data, ref["sigsum"] / ref["count"], rtol=1e-9)
    else:
        assert np.isnan(res["mean"].data).all()
    assert "scratch" not in res
    np.testing.assert_array_equal(res["total"].valid_mask.reshape(-1), mask)


def make_roi(kind, nav_shape, rng):
    n = int(np.prod(nav_shape))
    if kind is None:
        return None
    if kind == "random":
        return rng.random(nav_shape) < 0.5
    if kind == "none_selected":
        return np.zeros(nav_shape, bool)
    if kind == "all_selected":
        return np.ones(nav_shape, bool)
    if kind == "single":
        roi = np.zeros(n, bool)
        roi[n // 2] = True
        return roi.reshape(nav_shape)
    raise ValueError(kind)


ROIS = [None, "random", "none_selected", "all_selected", "single"]
PARTITIONS = [1, 3, 7, "per_frame"]
UDFS = [KindsFrameUDF, KindsTileUDF, KindsPartitionUDF]


@pytest.mark.parametrize("udf_cls", UDFS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("partitions", PARTITIONS)
@pytest.mark.parametrize("roi_kind", ROIS)
def test_kinds_against_numpy_all_executors(any_ctx, data4d, rng, udf_cls, partitions, roi_kind):
    n = int(np.prod(data4d.shape[:2]))
    num = n if partitions == "per_frame" else partitions
    ds = any_ctx.load("memory", data=data4d, num_partitions=num)
    roi = make_roi(roi_kind, data4d.shape[:2], rng)
    res = any_ctx.run_udf(dataset=ds, udf=udf_cls(), roi=roi)
    check_kinds(res, data4d, 2, roi)


@pytest.mark.parametrize("nav_shape", [(11,), (4, 5), (2, 3, 4)], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("sig_shape", [(6,), (5, 4)], ids=["sig1d", "sig2d"])
@pytest.mark.parametrize("dtype", ["uint16", "int32", "float32", "float64"])
@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_nav_dims_and_dtypes(ctx_factory, rng, nav_shape, sig_shape, dtype, executor):
    ctx = ctx_factory(executor)
    data = (rng.random(nav_shape + sig_shape) * 500).astype(dtype)
    ds = ctx.load("memory", data=data, sig_dims=len(sig_shape), num_partitions=3)
    roi = rng.random(nav_shape) < 0.6
    for udf_cls in UDFS:
        res = ctx.run_udf(dataset=ds, udf=udf_cls(), roi=roi)
        check_kinds(res, data, len(sig_shape), roi)
        res = ctx.run_udf(dataset=ds, udf=udf_cls())
        check_kinds(res, data, len(sig_shape), None)


@pytest.mark.parametrize(
    "dtype, expected",
    [
        ("uint8", np.float32),
        ("uint16", np.float32),
        ("int16", np.float32),
        ("int32", np.float64),
        ("float32", np.float32),
        ("float64", np.float64),
        ("complex64", np.complex64),
    ],
)
def test_input_dtype_follows_result_type(ctx, dtype, expected):
    class DtypeUDF(UDF):
        def get_result_buffers(self):
            return {"seen": self.buffer(kind="nav", dtype=object)}

        def process_frame(self, frame):
            self.results.seen[0] = (frame.dtype, self.meta.input_dtype)

    ds = ctx.load("memory", data=np.ones((2, 2, 3, 3), dtype=dtype))
    seen = ctx.run_udf(dataset=ds, udf=DtypeUDF())["seen"].data.reshape(-1)
    assert len(seen) == 4 and all(f == expected and m == expected for f, m in seen)


def test_native_dtype_is_kept_with_use_native(ctx):
    class NativeUDF(UDF):
        def get_preferred_input_dtype(self):
            return self.USE_NATIVE_DTYPE

        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav", dtype=self.meta.input_dtype)}

        def process_tile(self, tile):
            assert tile.dtype == np.uint16
            self.results.x[:] = tile.max(axis=(1, 2))

    data = np.arange(4 * 4 * 2 * 2, dtype=np.uint16).reshape(4, 4, 2, 2)
    res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=NativeUDF())
    assert res["x"].data.dtype == np.uint16
    np.testing.assert_array_equal(res["x"].data, data.max(axis=(2, 3)))


def test_several_udfs_one_pass_read_each_partition_once(ctx, data4d):
    """Two UDFs in one run: each partition is read once and fed to both."""
    from udfwidgets.io.memory import MemoryPartition

    reads = []
    original = MemoryPartition.read

    def counting_read(self, start, stop):
        reads.append((start, stop))
        return original(self, start, stop)

    MemoryPartition.read = counting_read
    try:
        ds = ctx.load("memory", data=data4d, num_partitions=3)
        a, b = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    finally:
        MemoryPartition.read = original
    assert len(reads) == 3
    np.testing.assert_allclose(a["intensity"].data, data4d.sum(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(b["intensity"].data, data4d.sum(axis=(2, 3)), rtol=1e-5)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    nav_shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
    sig_shape=st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple),
    partitions=st.integers(1, 9),
    seed=st.integers(0, 2**31),
    roi_p=st.sampled_from([None, 0.0, 0.3, 1.0]),
)
def test_property_any_shape_partition_and_roi(ctx, nav_shape, sig_shape, partitions, seed, roi_p):
    rng = np.random.default_rng(seed)
    data = rng.normal(size=nav_shape + sig_shape).astype(np.float32)
    ds = ctx.load("memory", data=data, sig_dims=len(sig_shape), num_partitions=partitions)
    roi = None if roi_p is None else rng.random(nav_shape) < roi_p
    res, res_sum = ctx.run_udf(dataset=ds, udf=[KindsTileUDF(), SumUDF(dtype="float64")], roi=roi)
    check_kinds(res, data, len(sig_shape), roi)
    mask = np.ones(nav_shape, bool) if roi is None else roi
    np.testing.assert_allclose(
        res_sum["intensity"].data, data[mask].sum(axis=0, dtype=np.float64), rtol=1e-6, atol=1e-6
    )


def test_roi_as_flat_mask_and_coordinates(ctx, data4d):
    ds = ctx.load("memory", data=data4d)
    coords = [(0, 1), (3, 4), (6, 8)]
    mask = np.zeros(data4d.shape[:2], bool)
    for c in coords:
        mask[c] = True
    expected = ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=mask)["intensity"].data
    for roi in (mask.reshape(-1), coords, np.array(coords)):
        got = ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi)["intensity"].data
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "roi, message",
    [
        (np.ones((3, 3), bool), r"navigation shape \(7, 9\)"),
        (np.full((7, 9), 0.5, np.float32), r"values other than 0 and 1 \(0.5\)"),
        (np.ones((7, 9, 1), bool), r"got shape \(7, 9, 1\)"),
        ([(0, 100)], r"inside the navigation shape \(7, 9\)"),
        ("abc", r"navigation shape \(7, 9\)"),
    ],
)
def test_bad_roi_is_a_clear_value_error(ctx, data4d, roi, message):
    ds = ctx.load("memory", data=data4d)
    with pytest.raises(ValueError, match=message):
        ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)
    # the Context stays usable
    assert ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data.shape == (6, 5)


def test_all_false_roi_gives_neutral_results(any_ctx, data4d):
    class MaxUDF(UDF):
        def get_result_buffers(self):
            return {"maxbuf": self.buffer(kind="sig", dtype=self.meta.input_dtype)}

        def preprocess(self):
            self.results.maxbuf[:] = -np.inf

        def process_frame(self, frame):
            self.results.maxbuf[:] = np.maximum(frame, self.results.maxbuf)

        def merge(self, dest, src):
            dest.maxbuf[:] = np.maximum(dest.maxbuf, src.maxbuf)

    ds = any_ctx.load("memory", data=data4d, num_partitions=3)
    roi = np.zeros(data4d.shape[:2], bool)
    res_max, res_sum, res_nav = any_ctx.run_udf(
        dataset=ds, udf=[MaxUDF(), SumUDF(), SumSigUDF()], roi=roi
    )
    assert (res_max["maxbuf"].data == -np.inf).all()
    assert (res_sum["intensity"].data == 0).all()
    assert res_nav["intensity"].raw_data.shape == (0,)
    assert np.isnan(res_nav["intensity"].data).all()


def test_context_constructors_and_close():
    with Context.make_with("inline") as ctx:
        assert ctx.executor.name == "inline"
    assert Context(executor="threads", n_jobs=2).executor.n_workers == 2
    assert Context().executor.name == "processes"
    with pytest.raises(ValueError, match="unknown executor 'gpu'"):
        Context(executor="gpu")


def test_processes_pool_is_reused_between_runs(processes_ctx, data4d):
    """The loky pool stays warm: the second run uses the same worker processes."""
    import os

    class PidUDF(UDF):
        def get_result_buffers(self):
            return {"pid": self.buffer(kind="nav", dtype="int64")}

        def process_tile(self, tile):
            self.results.pid[:] = os.getpid()

    ds = processes_ctx.load("memory", data=data4d, num_partitions=4)
    pids1 = set(np.unique(processes_ctx.run_udf(dataset=ds, udf=PidUDF())["pid"].data))
    pids2 = set(np.unique(processes_ctx.run_udf(dataset=ds, udf=PidUDF())["pid"].data))
    assert os.getpid() not in pids1
    assert pids1 & pids2


def _processes_mapping(path: str) -> list[int]:
    """PIDs of this process and its children that have ``path`` memory-mapped."""
    import gc
    import os

    import psutil

    gc.collect()  # maps dropped by us go once no array refers to them
    me = psutil.Process()
    found = []
    for proc in [me] + me.children(recursive=True):
        try:
            with open(f"/proc/{proc.pid}/maps") as fh:
                if any(line.rstrip().endswith(os.path.realpath(path)) for line in fh):
                    found.append(proc.pid)
        except OSError:  # a process that ended meanwhile
            pass
    return found


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/maps"), reason="needs /proc")
@pytest.mark.parametrize("executor", ["inline", "threads", "processes"])
def test_release_files_unmaps_the_file_everywhere(executor, tmp_path, rng):
    data = rng.random((4, 6, 8, 8), dtype=np.float32)
    path = str(tmp_path / "scan.npy")
    np.save(path, data)
    with Context(executor=executor, n_jobs=2) as ctx:
        ds = ctx.load("npy", path=path)
        assert np.allclose(
            ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data, data.sum(axis=(0, 1))
        )
        assert _processes_mapping(path), "maps are kept between runs: nothing to release?"
        ctx.release_files()
        assert _processes_mapping(path) == []
        # the next run maps the file again and gives the same result
        assert np.allclose(
            ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data, data.sum(axis=(0, 1))
        )
    # closing the Context lets go of this process's maps (workers may keep theirs until idle)
    assert __import__("os").getpid() not in _processes_mapping(path)


def test_release_files_on_a_dask_cluster(dask_client, tmp_path, rng):
    import os

    data = rng.random((4, 6, 8, 8), dtype=np.float32)
    path = str(tmp_path / "scan.npy")
    np.save(path, data)

    def mapped() -> bool:
        import gc

        gc.collect()
        with open("/proc/self/maps") as fh:
            return any(line.rstrip().endswith(os.path.realpath(path)) for line in fh)

    ctx = Context(executor="dask", client=dask_client)
    ds = ctx.load("npy", path=path)
    ctx.run_udf(dataset=ds, udf=SumUDF())
    assert any(dask_client.run(mapped).values())
    ctx.release_files()
    assert not any(dask_client.run(mapped).values())
    assert np.allclose(
        ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data, data.sum(axis=(0, 1))
    )


# --- the first partitions of a long run are smaller (issue 15) -------------------------


def test_long_runs_start_with_small_partitions_results_equal_numpy(any_ctx, rng, monkeypatch):
    """More than four partitions per worker: the first is split into pieces that double."""
    data = rng.random((16, 16, 8, 8), dtype=np.float32)  # 64 KiB
    monkeypatch.setattr(any_ctx.executor, "partition_bytes", 2048, raising=False)
    ds = any_ctx.load("memory", data=data)
    from udfwidgets.io.dataset import partition_size

    with partition_size(2048):
        bounds = ds.partition_bounds(any_ctx.executor.n_workers)
    sizes = [b - a for a, b in bounds]
    # 2 KiB partitions of 256 B frames: 8 frames each; the first split as 1, 1, 2, 4 frames
    assert sizes[:4] == [1, 1, 2, 4] and set(sizes[4:]) == {8}
    assert bounds[0][0] == 0 and bounds[-1][1] == 256
    assert all(a1 == b0 for (_, b0), (a1, _) in zip(bounds, bounds[1:]))
    parts = list(any_ctx.run_udf_iter(dataset=ds, udf=KindsTileUDF()))
    assert len(parts) == len(bounds)
    check_kinds(parts[-1].buffers[0], data, 2, None)
    roi = rng.random((16, 16)) < 0.5
    check_kinds(any_ctx.run_udf(dataset=ds, udf=KindsFrameUDF(), roi=roi), data, 2, roi)


def test_few_or_fixed_partitions_are_not_split(rng):
    from udfwidgets.io import load
    from udfwidgets.io.dataset import partition_size

    data = rng.random((16, 16, 8, 8), dtype=np.float32)
    with partition_size(2048):
        assert len(load("memory", data=data, num_partitions=40).partition_bounds(2)) == 40
    with partition_size(8192):  # 8 partitions for 2 workers: not more than four per worker
        assert [b - a for a, b in load("memory", data=data).partition_bounds(2)] == [32] * 8
