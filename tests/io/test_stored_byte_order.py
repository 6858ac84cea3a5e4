"""Big-endian files (raw, MIB): workers swap the byte order while they convert each tile.

The partition is read in the file's byte order (a view of the memory map) and
every UDF still gets frames in native order: in its own input dtype, in the
dataset's dtype for ``USE_NATIVE_DTYPE``, whole for ``process_partition``, and
decoded first when corrections are applied.
"""

import numpy as np
import pytest

from udfwidgets import UDF
from udfwidgets.corrections import CorrectionSet
from udfwidgets.data import write_mib
from udfwidgets.udf.sum import SumUDF


class NativeFrames(UDF):
    """process_frame in the dataset's own dtype: records dtype and a checksum per frame."""

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self):
        return {
            "total": self.buffer(kind="nav", dtype="int64"),
            "native": self.buffer(kind="nav", dtype=bool),
        }

    def process_frame(self, frame):
        self.results.total[:] = frame.astype(np.int64).sum()
        self.results.native[:] = frame.dtype.isnative and frame.dtype == np.uint16


class WholePartition(UDF):
    def get_result_buffers(self):
        return {"maxima": self.buffer(kind="nav", dtype="float64")}

    def process_partition(self, partition):
        self.results.maxima[:] = partition.reshape(len(partition), -1).max(axis=1)


def _files(tmp_path, rng):
    data = rng.integers(0, 4096, (4, 5, 16, 12)).astype(np.uint16)
    raw = tmp_path / "be.raw"
    data.astype(">u2").tofile(raw)
    mib_data = rng.integers(0, 4096, (4, 5, 256, 256)).astype(np.uint16)
    mib = tmp_path / "scan.mib"
    write_mib(mib, mib_data, counter_depth=12)
    return [
        (("raw",), dict(path=raw, nav_shape=(4, 5), sig_shape=(16, 12), dtype=">u2"), data),
        (("mib",), dict(path=mib, nav_shape=(4, 5)), mib_data),
    ]


@pytest.mark.parametrize("with_roi", [False, True])
def test_big_endian_files_reach_every_udf_in_native_order(any_ctx, tmp_path, rng, with_roi):
    roi = rng.random((4, 5)) < 0.6 if with_roi else None
    for (kind,), kwargs, data in _files(tmp_path, rng):
        ds = any_ctx.load(kind, **kwargs)
        part = ds.get_partitions(1)[0]
        assert part.stored_order_only  # the path under test is taken
        sel = np.ones((4, 5), bool) if roi is None else roi
        flat = data.reshape(20, *data.shape[2:])[sel.ravel()]
        res = any_ctx.run_udf(dataset=ds, udf=[SumUDF(), NativeFrames(), WholePartition()], roi=roi)
        np.testing.assert_allclose(
            res[0]["intensity"].data, flat.sum(axis=0, dtype=np.float64), rtol=1e-6
        )
        assert res[1]["native"].data[sel].all()
        np.testing.assert_array_equal(
            res[1]["total"].data[sel], flat.reshape(len(flat), -1).sum(axis=1)
        )
        np.testing.assert_array_equal(
            res[2]["maxima"].data[sel], flat.reshape(len(flat), -1).max(axis=1)
        )


def test_big_endian_files_with_corrections(any_ctx, tmp_path, rng):
    for (kind,), kwargs, data in _files(tmp_path, rng):
        ds = any_ctx.load(kind, **kwargs)
        sig = data.shape[2:]
        dark = rng.uniform(0, 5, sig)
        corr = CorrectionSet(dark=dark)
        res = any_ctx.run_udf(dataset=ds, udf=SumUDF(), corrections=corr)
        ref = (data.astype(np.float32) - dark.astype(np.float32)).sum(axis=(0, 1), dtype=np.float64)
        np.testing.assert_allclose(res["intensity"].data, ref, rtol=1e-5, atol=1e-2)
