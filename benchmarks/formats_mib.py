"""Warm-cache reads of MIB, BLO and K2 IS files: udfwidgets' readers against a NumPy memmap read.

Writes (once, under benchmarks/data/, git-ignored) a quad 12-bit MIB scan, the same scan
in RAW mode, a BLO scan of real, varying content, and a K2 IS acquisition (eight sector
files of 12-bit blocks, 1860 x 2048 frames, a sixteenth as many frames as the MIB scan); then times SumUDF over each with
the inline and threads executors, and the same reduction done by hand with NumPy on a
strided memory map of the frames (the fastest a Python reader can be: one view, byte
order fixed and converted to float32 per block of frames, summed). Best of ``--reps``
runs after one warm-up, so the page cache holds the file (warm reads).

    python benchmarks/formats_mib.py            # about 1-2 minutes on 2 cores
    python benchmarks/formats_mib.py --frames 2048 --reps 5
    python benchmarks/formats_mib.py --only k2is  # one row
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from udfwidgets import Context
from udfwidgets.data import write_blo, write_k2is, write_mib
from udfwidgets.udf.sum import SumUDF

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def _scan(n, sig, maxval, dtype, seed=0):
    rng = np.random.default_rng(seed)
    side = int(np.sqrt(n))
    base = rng.integers(0, maxval, (16,) + sig).astype(dtype)
    return np.stack([base[i % 16] for i in range(n)]).reshape(side, n // side, *sig)


def files(frames: int, only: str = ""):
    """The benchmark's files (written once), by row name; only the rows whose name has ``only``."""
    os.makedirs(DATA, exist_ok=True)
    out = {}
    mib = os.path.join(DATA, f"quad12_{frames}.mib")
    if only in "mib quad 12-bit" and not os.path.exists(mib):
        write_mib(mib, _scan(frames, (512, 512), 4096, np.uint16), counter_depth=12, layout="quad")
    out["mib quad 12-bit"] = (mib, 768, 768 + 512 * 512 * 2, ">u2", (512, 512))
    raw = os.path.join(DATA, f"quad12raw_{frames}.mib")
    if only in "mib quad 12-bit RAW" and not os.path.exists(raw):
        write_mib(
            raw,
            _scan(frames, (512, 512), 4096, np.uint16),
            counter_depth=12,
            layout="quad",
            raw=True,
        )
    out["mib quad 12-bit RAW"] = (raw, None, None, None, None)
    blo = os.path.join(DATA, f"scan_{frames * 4}.blo")
    if only in "blo 256x256 uint8" and not os.path.exists(blo):
        write_blo(blo, _scan(frames * 4, (256, 256), 256, np.uint8))
    hdr_off = 0x1000 + frames * 4
    out["blo 256x256 uint8"] = (blo, hdr_off + 6, 6 + 256 * 256, "u1", (256, 256))
    k2 = os.path.join(DATA, f"k2is_{frames // 16}")
    if only in "k2is 1860x2048 12-bit" and not os.path.exists(os.path.join(k2, "scan_.gtg")):
        os.makedirs(k2, exist_ok=True)
        write_k2is(k2, _scan(frames // 16, (1860, 2048), 4096, np.uint16), overwrite=True)
    out["k2is 1860x2048 12-bit"] = (os.path.join(k2, "scan_.gtg"), None, None, None, None)
    return {name: row for name, row in out.items() if only in name}


def _size(path: str) -> int:
    """Bytes of a file, or of the eight sector files next to a K2 IS .gtg."""
    if path.endswith(".gtg"):
        return sum(os.path.getsize(path[:-4] + f"{k}.bin") for k in range(1, 9))
    return os.path.getsize(path)


def numpy_sum(path, offset, stride, dtype, sig, block=64):
    size = os.path.getsize(path)
    n = (size - offset) // stride + (
        1 if (size - offset) % stride >= np.prod(sig) * np.dtype(dtype).itemsize else 0
    )
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    dt = np.dtype(dtype)
    view = np.ndarray(
        (n,) + sig,
        dt,
        buffer=raw,
        offset=offset,
        strides=(stride, sig[1] * dt.itemsize, dt.itemsize),
    )
    acc = np.zeros(sig, np.float32)
    for a in range(0, n, block):
        acc += view[a : a + block].astype(np.float32).sum(axis=0)
    return acc


def best(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1024, help="MIB frames (BLO gets 4x as many)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="", help="only the rows whose name contains this")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    print(f"load average at start: {load:.1f} on {os.cpu_count()} cores")
    print("| file | size | NumPy memmap (1 thread) | udfwidgets inline | udfwidgets threads (2) |")
    print("|---|---|---|---|---|")
    with Context(executor="inline") as ctx_i, Context(executor="threads", n_jobs=2) as ctx_t:
        for name, (path, off, stride, dtype, sig) in files(args.frames, args.only).items():
            ds = ctx_i.load(os.path.splitext(path)[1][1:].replace("gtg", "k2is"), path=path)
            ref = ctx_i.run_udf(dataset=ds, udf=SumUDF())["intensity"].data
            size = _size(path) / 2**20
            if off is not None:
                np.testing.assert_allclose(numpy_sum(path, off, stride, dtype, sig), ref, rtol=1e-5)
                t_np = best(partial(numpy_sum, path, off, stride, dtype, sig), args.reps)
                np_cell = f"{t_np:.3f} s ({size / t_np:.0f} MiB/s)"
            else:
                np_cell = "n/a (bit-packed)"
            # best() calls its function at once; the default binds this pass's dataset anyway
            t_i = best(lambda ds=ds: ctx_i.run_udf(dataset=ds, udf=SumUDF()), args.reps)
            t_t = best(lambda ds=ds: ctx_t.run_udf(dataset=ds, udf=SumUDF()), args.reps)
            print(
                f"| {name} | {size:.0f} MiB | {np_cell} | {t_i:.3f} s ({size / t_i:.0f} MiB/s)"
                f" | {t_t:.3f} s ({size / t_t:.0f} MiB/s) |",
                flush=True,
            )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
