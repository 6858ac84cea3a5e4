"""The UDF API: parameters, clean copies, buffer declarations, method rules and their errors."""

import numpy as np
import pytest

from udfwidgets import UDF, Context
from udfwidgets.executor.plan import UDFConstructorError
from udfwidgets.udf.buffers import BufferError


@pytest.fixture
def ds(ctx, data4d):
    return ctx.load("memory", data=data4d, num_partitions=3)


class NavUDF(UDF):
    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav")}

    def process_frame(self, frame):
        self.results.x[:] = frame.sum()


def test_params_are_attributes_and_survive_the_clean_copy(ctx, ds):
    class ScaleUDF(UDF):
        def __init__(self, factor=2.0, offset=0):
            super().__init__(factor=factor, offset=offset)

        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav", dtype="float64")}

        def process_frame(self, frame):
            self.results.x[:] = frame.sum() * self.params.factor + self.params.offset

    udf = ScaleUDF(factor=3.0)
    assert udf.params.factor == 3.0 and udf.params.offset == 0
    assert udf.copy().params.factor == 3.0
    res = ctx.run_udf(dataset=ds, udf=udf)
    data = ds.data
    np.testing.assert_allclose(
        res["x"].data, data.sum(axis=(2, 3), dtype=np.float64) * 3.0, rtol=1e-6
    )
    with pytest.raises(AttributeError, match="ScaleUDF has no parameter 'factr'"):
        udf.params.factr


def test_constructor_renaming_a_parameter_is_a_type_error_naming_everything(ctx, ds):
    class BadUDF(NavUDF):
        def __init__(self, my_param=None):
            super().__init__(other_param=my_param)

    with pytest.raises(TypeError, match=r"BadUDF.*other_param.*super\(\).__init__") as info:
        ctx.run_udf(dataset=ds, udf=BadUDF(my_param=1))
    assert isinstance(info.value, UDFConstructorError)
    assert ctx.run_udf(dataset=ds, udf=NavUDF())["x"].data.shape == (7, 9)


def test_constructor_not_calling_super_is_a_type_error(ctx, ds):
    class NoSuperUDF(NavUDF):
        def __init__(self, p=1):
            self.p = p

    with pytest.raises(TypeError, match="NoSuperUDF.__init__ did not call super"):
        ctx.run_udf(dataset=ds, udf=NoSuperUDF())


def test_constructor_changing_the_parameter_set_is_a_type_error(ctx, ds):
    class AddsParamUDF(NavUDF):
        def __init__(self, a=1, **kwargs):
            if "b" not in kwargs:
                kwargs["b"] = 2
            super().__init__(a=a, **kwargs)

    # a clean copy of AddsParamUDF(a=1, b=2) is identical: fine
    ctx.run_udf(dataset=ds, udf=AddsParamUDF())

    class DropsParamUDF(NavUDF):
        def __init__(self, a=1, b=None):
            if b is None:
                super().__init__(a=a)
            else:
                super().__init__(a=a, b=b, extra=True)

    with pytest.raises(TypeError, match=r"DropsParamUDF.*extra"):
        ctx.run_udf(dataset=ds, udf=DropsParamUDF(b=1))


@pytest.mark.parametrize(
    "decl, message",
    [
        (
            dict(kind="navv"),
            r"buffer 'buf' of BadBufUDF: kind='navv' is not one of 'nav', 'sig', 'single'",
        ),
        (
            dict(kind="nav", dtype="floaty"),
            r"buffer 'buf' of BadBufUDF: dtype='floaty' is not a NumPy dtype",
        ),
        (dict(kind="nav", extra_shape=(-1,)), r"buffer 'buf' of BadBufUDF: extra_shape"),
        (dict(kind="nav", extra_shape="ab"), r"buffer 'buf' of BadBufUDF: extra_shape"),
        (dict(kind="nav", use="public"), r"buffer 'buf' of BadBufUDF: use='public'"),
    ],
)
def test_bad_buffer_declarations_name_the_buffer(ctx, ds, decl, message):
    class BadBufUDF(UDF):
        def get_result_buffers(self):
            return {"buf": self.buffer(**decl)}

        def process_frame(self, frame):
            pass

    with pytest.raises(BufferError, match=message):
        ctx.run_udf(dataset=ds, udf=BadBufUDF())


@pytest.mark.parametrize("name", ["1abc", "with space", "class", "a-b", ""])
def test_buffer_names_must_be_identifiers(ctx, ds, name):
    class BadNameUDF(UDF):
        def get_result_buffers(self):
            return {name: self.buffer(kind="nav")}

        def process_frame(self, frame):
            pass

    with pytest.raises(
        BufferError,
        match=f"buffer {name!r} of BadNameUDF: buffer names must be valid Python identifiers",
    ):
        ctx.run_udf(dataset=ds, udf=BadNameUDF())


def test_writing_to_an_undeclared_buffer_names_it(ctx, ds):
    class TypoUDF(UDF):
        def get_result_buffers(self):
            return {"intensity": self.buffer(kind="nav")}

        def process_frame(self, frame):
            self.results.intensty[:] = 1

    with pytest.raises(
        AttributeError,
        match=r"TypoUDF has no result buffer 'intensty' "
        r"\(declared buffers: intensity\)",
    ):
        ctx.run_udf(dataset=ds, udf=TypoUDF())


def test_assigning_to_a_buffer_writes_into_it(ctx, ds):
    # LiberTEM's behaviour: `self.results.x = value` writes into the buffer
    class ReplaceUDF(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

        def process_frame(self, frame):
            self.results.x = frame.sum()

    res = ctx.run_udf(dataset=ds, udf=ReplaceUDF())
    np.testing.assert_allclose(res["x"].data, ds.data.sum(axis=(2, 3)), rtol=1e-5)


def test_sig_buffer_without_merge_is_a_clear_not_implemented_error(ctx, ds):
    class NoMergeUDF(UDF):
        def get_result_buffers(self):
            return {"acc": self.buffer(kind="sig"), "n": self.buffer(kind="nav")}

        def process_frame(self, frame):
            self.results.acc[:] += frame

    with pytest.raises(
        NotImplementedError,
        match=r"NoMergeUDF has sig/single buffers \('acc'\) "
        r"but no merge\(\) method.*dest.acc\[:\] \+= src.acc",
    ):
        ctx.run_udf(dataset=ds, udf=NoMergeUDF())


def test_udf_without_a_process_method(ctx, ds):
    class LazyUDF(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

    with pytest.raises(
        TypeError, match="LazyUDF implements none of process_frame, process_tile, process_partition"
    ):
        ctx.run_udf(dataset=ds, udf=LazyUDF())


def test_tile_beats_frame_beats_partition(ctx, ds):
    class AllThree(UDF):
        def get_result_buffers(self):
            return {"which": self.buffer(kind="nav", dtype="int8")}

        def process_frame(self, frame):
            self.results.which[:] = 1

        def process_tile(self, tile):
            self.results.which[:] = 2

        def process_partition(self, partition):
            self.results.which[:] = 3

    class FrameAndPartition(AllThree):
        process_tile = None

    class PartitionOnly(FrameAndPartition):
        process_frame = None

    # LiberTEM's order: tile, then frame, then partition
    assert (ctx.run_udf(dataset=ds, udf=AllThree())["which"].data == 2).all()
    assert (ctx.run_udf(dataset=ds, udf=FrameAndPartition())["which"].data == 1).all()
    assert (ctx.run_udf(dataset=ds, udf=PartitionOnly())["which"].data == 3).all()


def test_process_tile_nav_buffers_are_views_of_the_tile(ctx, ds):
    class TileShapes(UDF):
        def get_result_buffers(self):
            return {
                "n": self.buffer(kind="nav", dtype="int64"),
                "ok": self.buffer(kind="nav", dtype=bool),
            }

        def process_tile(self, tile):
            self.results.n[:] = len(tile)
            self.results.ok[:] = self.results.n.shape == (len(tile),) and len(
                self.meta.coordinates
            ) == len(tile)

    res = ctx.run_udf(dataset=ds, udf=TileShapes())
    assert res["ok"].data.all()
    assert res["n"].data.min() >= 1


def test_get_task_data_and_meta(ctx, data4d):
    class TaskDataUDF(UDF):
        def get_task_data(self):
            return {"weights": np.full(self.meta.dataset_shape.sig, 2.0)}

        def get_result_buffers(self):
            return {
                "x": self.buffer(kind="nav", dtype="float64"),
                "pshape": self.buffer(kind="nav", dtype="int64"),
                "origin": self.buffer(kind="nav", dtype="int64"),
            }

        def process_frame(self, frame):
            self.results.x[:] = np.sum(frame * self.task_data.weights)
            self.results.pshape[:] = self.meta.partition_shape[0]
            self.results.origin[:] = self.meta.slice.origin[0]

    ds = ctx.load("memory", data=data4d, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=TaskDataUDF())
    np.testing.assert_allclose(res["x"].data, data4d.sum(axis=(2, 3)) * 2, rtol=1e-5)
    bounds = ds.partition_bounds(1)
    sizes = np.concatenate([np.full(b - a, b - a) for a, b in bounds])
    np.testing.assert_array_equal(res["pshape"].data.reshape(-1), sizes)
    np.testing.assert_array_equal(
        res["origin"].data.reshape(-1), np.arange(data4d.shape[0] * data4d.shape[1])
    )


def test_get_results_rejects_undeclared_names_and_wrong_shapes(ctx, ds):
    class ExtraResult(NavUDF):
        def get_results(self):
            return {"x": self.results.x, "y": self.results.x * 2}

    with pytest.raises(BufferError, match="returned 'y', which is not a declared buffer"):
        ctx.run_udf(dataset=ds, udf=ExtraResult())

    class WrongShape(NavUDF):
        def get_results(self):
            return {"x": np.zeros(3)}

    with pytest.raises(
        BufferError,
        match=r"returned 'x' with shape \(3,\); a nav buffer must have "
        r"shape \(7, 9\)",
    ):
        ctx.run_udf(dataset=ds, udf=WrongShape())


def test_get_results_sees_flat_roi_compressed_nav_buffers(ctx, ds, rng):
    class Doubled(NavUDF):
        def get_result_buffers(self):
            return {
                "x": self.buffer(kind="nav"),
                "twice": self.buffer(kind="nav", use="result_only"),
            }

        def get_results(self):
            # LiberTEM's contract: flat, one entry per selected frame
            assert self.results.x.shape == (int(np.count_nonzero(self.meta.roi)),)
            return {"x": self.results.x, "twice": self.results.x * 2}

    roi = rng.random((7, 9)) < 0.5
    res = ctx.run_udf(dataset=ds, udf=Doubled(), roi=roi)
    expected = ds.data.sum(axis=(2, 3))
    np.testing.assert_allclose(res["twice"].data[roi], 2 * expected[roi], rtol=1e-5)
    assert np.isnan(res["twice"].data[~roi]).all()
    np.testing.assert_allclose(res["twice"].raw_data, 2 * expected[roi], rtol=1e-5)


def test_unpicklable_parameter_is_named(processes_ctx, data4d):
    import threading

    ctx = processes_ctx
    ds = ctx.load("memory", data=data4d, num_partitions=3)

    class LockUDF(NavUDF):
        def __init__(self, lock=None):
            super().__init__(lock=lock)

    with pytest.raises(TypeError, match=r"parameter 'lock' of LockUDF cannot be pickled"):
        ctx.run_udf(dataset=ds, udf=LockUDF(lock=threading.Lock()))

    class AttrUDF(NavUDF):
        def __init__(self):
            super().__init__()
            self.lock = threading.Lock()

    with pytest.raises(TypeError, match=r"attribute 'lock' of AttrUDF cannot be pickled"):
        ctx.run_udf(dataset=ds, udf=AttrUDF())
    assert ctx.run_udf(dataset=ds, udf=NavUDF())["x"].data.shape == (7, 9)


def test_in_process_executors_do_not_pickle(ctx, threads_ctx, ds):
    import threading

    class LockUDF(NavUDF):
        def __init__(self, lock=None):
            super().__init__(lock=lock)

        def process_frame(self, frame):
            with self.params.lock:
                self.results.x[:] = frame.sum()

    for c in (ctx, threads_ctx):
        res = c.run_udf(dataset=ds, udf=LockUDF(lock=threading.Lock()))
        np.testing.assert_allclose(res["x"].data, ds.data.sum(axis=(2, 3)), rtol=1e-5)


def test_frames_are_read_only(ctx, ds):
    class Mutator(NavUDF):
        def process_frame(self, frame):
            frame[:] = 0

    with pytest.raises(ValueError, match="read-only"):
        ctx.run_udf(dataset=ds, udf=Mutator())
    assert ds.data.sum() > 0


def test_not_a_udf(ctx, ds):
    with pytest.raises(TypeError, match="expected UDF instances"):
        ctx.run_udf(dataset=ds, udf=[object()])
    with pytest.raises(ValueError, match="no UDF given"):
        ctx.run_udf(dataset=ds, udf=[])


def test_meta_tells_main_node_from_workers(ctx, ds):
    class WhereUDF(UDF):
        def get_task_data(self):
            return {"main": self.meta.on_main_node}

        def get_result_buffers(self):
            return {
                "main": self.buffer(kind="nav", dtype=bool),
                "init_on_main": self.buffer(kind="single", dtype=bool),
            }

        def preprocess(self):
            if self.meta.on_main_node:
                self.results.init_on_main[:] = True

        def process_frame(self, frame):
            self.results.main[:] = self.task_data.main

        def merge(self, dest, src):
            dest.main[:] = src.main

    res = ctx.run_udf(dataset=ds, udf=WhereUDF())
    assert not res["main"].data.any()
    assert res["init_on_main"].data[0]


def test_tiling_preferences_set_the_tile_size(ctx):
    class TileLength(UDF):
        def __init__(self, size=0):
            super().__init__(size=size)

        def get_tiling_preferences(self):
            return {"total_size": self.params.size} if self.params.size else {}

        def get_result_buffers(self):
            return {"n": self.buffer(kind="nav", dtype="int64")}

        def process_tile(self, tile):
            self.results.n[:] = len(tile)

    data = np.zeros((8, 64, 64, 64), np.float32)  # 16 KiB frames, one partition of 512
    ds = ctx.load("memory", data=data, num_partitions=1)
    default = ctx.run_udf(dataset=ds, udf=TileLength())["n"].data
    assert default.max() == 256  # 4 MiB tiles
    bigger, _ = ctx.run_udf(dataset=ds, udf=[TileLength(size=8 << 20), TileLength()])
    assert bigger["n"].data.max() == 512  # 8 MiB tiles, shared by both UDFs
    with Context(executor="inline", tile_bytes=1 << 20) as small_ctx:
        small = small_ctx.run_udf(
            dataset=small_ctx.load("memory", data=data, num_partitions=1), udf=TileLength()
        )["n"].data
    assert small.max() == 64  # the Context's tile_bytes


def test_frames_as_large_as_a_tile_still_come_several_per_tile():
    """A 1024x1024 float32 frame fills a default 4 MiB tile alone; tiles hold 8 of them."""

    class TileLength(UDF):
        def get_result_buffers(self):
            return {"n": self.buffer(kind="nav", dtype="int64"), "s": self.buffer(kind="sig")}

        def process_tile(self, tile):
            self.results.n[:] = len(tile)
            self.results.s += tile.sum(axis=0)

        def merge(self, dest, src):
            dest.n[:] = src.n
            dest.s += src.s

    data = np.random.default_rng(0).random((3, 7, 1024, 1024), dtype=np.float32)
    with Context(executor="inline") as ctx:
        ds = ctx.load("memory", data=data, num_partitions=1)
        res = ctx.run_udf(dataset=ds, udf=TileLength())
        assert res["n"].data.max() == 8  # 32 MiB tiles of 8 frames, the last one of 5
        assert sorted(set(res["n"].data.ravel())) == [5, 8]
        np.testing.assert_allclose(
            res["s"].data, data.sum(axis=(0, 1), dtype=np.float64), rtol=1e-5
        )
        # a Context asking for tiles of at most one frame gets the same floor
        with Context(executor="inline", tile_bytes=1 << 20) as small:
            small_ds = small.load("memory", data=data, num_partitions=1)
            n = small.run_udf(dataset=small_ds, udf=TileLength())["n"]
        assert n.data.max() == 8
