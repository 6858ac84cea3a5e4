"""Shared by the format tests: one small file per kind, written by our writers, and checks.

Each ``write_<kind>(folder, rng)`` returns ``(path, expected, kwargs)``: the path to open,
the array the file holds ``(*nav, *sig)`` in the dataset's native dtype, and the extra
``ctx.load`` keywords the kind needs (e.g. the raw layout).
"""

from __future__ import annotations

import numpy as np

from udfwidgets.data import (
    write_blo,
    write_dm,
    write_empad,
    write_k2is,
    write_mib,
    write_mrc,
    write_ser,
    write_tvips,
)
from udfwidgets.udf.pick import PickUDF
from udfwidgets.udf.sumsigudf import SumSigUDF

NAV = (3, 4)


def write_npy(folder, rng):
    data = rng.integers(0, 1000, NAV + (9, 7)).astype(np.uint16)
    np.save(folder / "scan.npy", data)
    return folder / "scan.npy", data, {}


def write_raw(folder, rng):
    data = rng.random(NAV + (9, 7)).astype(np.float32)
    data.tofile(folder / "scan.raw")
    return folder / "scan.raw", data, {"nav_shape": NAV, "sig_shape": (9, 7), "dtype": "float32"}


def write_mib_file(folder, rng, counter_depth=12, layout="single", raw=False, **kw):
    sig = (512, 512) if layout == "quad" else (256, 256)
    dtype = {1: np.uint8, 6: np.uint8, 12: np.uint16, 24: np.uint32}[counter_depth]
    data = rng.integers(0, 2**counter_depth, NAV + sig).astype(dtype)
    path = folder / "scan.mib"
    write_mib(path, data, counter_depth=counter_depth, layout=layout, raw=raw, **kw)
    return path, data, {}


def write_blo_file(folder, rng):
    data = rng.integers(0, 256, NAV + (16, 16)).astype(np.uint8)
    write_blo(folder / "scan.blo", data)
    return folder / "scan.blo", data, {}


def write_empad_file(folder, rng):
    data = rng.random(NAV + (128, 128)).astype(np.float32)
    write_empad(folder / "scan.xml", data)
    return folder / "scan.xml", data, {}


def write_mrc_file(folder, rng):
    data = (rng.random(NAV + (10, 12)) * 1000).astype(np.float32)
    write_mrc(folder / "scan.mrc", data)
    return folder / "scan.mrc", data, {"nav_shape": NAV}


def write_tvips_file(folder, rng):
    data = rng.integers(0, 65536, NAV + (10, 12)).astype(np.uint16)
    write_tvips(folder / "scan_000.tvips", data, frames_per_file=5)
    return folder / "scan_000.tvips", data, {"nav_shape": NAV}


def write_dm_file(folder, rng):
    data = rng.integers(-1000, 1000, NAV + (10, 12)).astype(np.int16)
    write_dm(folder / "scan.dm4", data)
    return folder / "scan.dm4", data, {}


def write_ser_file(folder, rng):
    data = (rng.random(NAV + (10, 12)) * 100).astype(np.float32)
    write_ser(folder / "scan.ser", data)
    return folder / "scan.ser", data, {}


def write_k2is_file(folder, rng, **kw):
    """Small K2 IS geometry (6 x 4 blocks, 2 x 2 per sector: frames 12 x 64), incomplete leading
    frames in most sector files, an incomplete last frame."""
    data = rng.integers(0, 4096, NAV + (12, 64)).astype(np.uint16)
    kw.setdefault("leading_blocks", (4, 3, 0, 1, 2, 4, 2, 1))
    kw.setdefault("trailing_blocks", (1, 0, 3, 0, 2, 0, 0, 1))
    write_k2is(folder, data, block_shape=(6, 4), **kw)
    return folder / "scan_.gtg", data, {"nav_shape": NAV}


WRITERS = {
    "npy": write_npy,
    "raw": write_raw,
    "mib": write_mib_file,
    "blo": write_blo_file,
    "empad": write_empad_file,
    "mrc": write_mrc_file,
    "tvips": write_tvips_file,
    "dm": write_dm_file,
    "ser": write_ser_file,
    "k2is": write_k2is_file,
}


def picked(ctx, ds, roi=None) -> np.ndarray:
    """Every frame in nav order and shape, or the roi's frames ``(n, *sig)``, read by PickUDF."""
    res = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"]
    return res.data if roi is not None else res.data.reshape(tuple(ds.shape))


def shifted(expected: np.ndarray, nav_shape, sync_offset: int, sig_dims: int = 2) -> np.ndarray:
    """The reference for nav_shape/sync_offset, one frame at a time (the io.geometry rule)."""
    sig = expected.shape[expected.ndim - sig_dims :]
    flat = expected.reshape((-1,) + sig)
    out = np.zeros((int(np.prod(nav_shape)),) + sig, dtype=expected.dtype)
    for i in range(len(out)):
        j = i + sync_offset
        if 0 <= j < len(flat):
            out[i] = flat[j]
    return out.reshape(tuple(nav_shape) + sig)


def check_frames(ctx, ds, expected: np.ndarray, rng=None) -> None:
    """``ds`` holds exactly ``expected``: through UDF runs (all, and an roi) and direct reads."""
    assert tuple(ds.shape) == expected.shape, (tuple(ds.shape), expected.shape)
    assert ds.dtype == expected.dtype
    nav = expected.shape[: len(ds.shape.nav)]
    res = ctx.run_udf(dataset=ds, udf=[PickUDF(), SumSigUDF()])
    np.testing.assert_array_equal(res[0]["intensity"].data.reshape(expected.shape), expected)
    sig_axes = tuple(range(len(nav), expected.ndim))
    np.testing.assert_allclose(
        res[1]["intensity"].data, expected.sum(axis=sig_axes, dtype=np.float64), rtol=1e-6
    )
    rng = rng or np.random.default_rng(7)
    roi = rng.random(nav) < 0.4
    roi.flat[-1] = True
    picked = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"].data
    np.testing.assert_array_equal(picked, expected[roi])
    flat = expected.reshape((-1,) + expected.shape[len(nav) :])
    parts = ds.get_partitions(2)
    got = np.concatenate([p.read(p.start, p.stop) for p in parts])
    np.testing.assert_array_equal(got, flat)
    for p in parts:
        idx = np.arange(p.start, p.stop)[::2]
        np.testing.assert_array_equal(p.take(idx), flat[idx])
        p.close()
