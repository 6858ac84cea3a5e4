"""gzip HDF5 chunks, one process: h5py against our reader (udfwidgets.io.inflate), interleaved.

On the benchmark's gzip file (``benchmarks/formats.py`` writes it: (128, 256) x
(128, 128) ``uint16``, chunks of 16 frames of one scan row, gzip level 1), each
repetition times, in a rotating order:

- ``h5py``: ``read_direct`` of whole scan rows into one reused buffer (HDF5's zlib);
- ``zlib``: the compressed chunks (read beforehand) through the standard library's
  ``zlib.decompress`` (the decompression alone, as HDF5's gzip filter does it);
- ``ours``: ``GzipChunkReader.read_block`` of whole scan rows into one reused buffer
  (chunk offsets from the chunk index, libdeflate into the buffer);
- ``libdeflate``: the decompression alone, chunk by chunk into one buffer.

Medians over the repetitions and ratios to ``ours``; load average before and after.

    python benchmarks/formats_inflate.py --reps 5 --append benchmarks/results-formats.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from udfwidgets.io import inflate  # noqa: E402
from udfwidgets.io.hdf5 import open_file  # noqa: E402

DEFAULT = "/tmp/udfw-formats-bench/scan-128x256-h5-gzip.h5"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--file", default=DEFAULT)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--append", default=None)
    args = ap.parse_args()
    lib = inflate.libdeflate()
    if lib is None:
        raise SystemExit("libdeflate not found: pip install deflate")
    load0 = open("/proc/loadavg").read().split()[:3]
    f = open_file(args.file)
    dset = f["data"]
    nav = dset.shape[:2]
    reader = inflate.gzip_reader(args.file, "/data", dset, 2)
    assert reader is not None, "not a gzip dataset chunked by whole frames"
    t = reader.table
    with open(args.file, "rb") as fh:
        raw = [os.pread(fh.fileno(), s, o) for o, s in zip(t.offsets.ravel(), t.sizes.ravel())]
    row = np.empty((1, nav[1]) + dset.shape[2:], dset.dtype)
    chunk = np.empty(t.chunk_bytes, np.uint8)
    gib = dset.size * dset.dtype.itemsize / 2**30

    def h5py_rows():
        for r in range(nav[0]):
            dset.read_direct(row, source_sel=np.s_[r : r + 1])

    def ours_rows():
        for r in range(nav[0]):
            reader.read_block((slice(r, r + 1), slice(0, nav[1])), row)

    def zlib_only():
        for b in raw:
            zlib.decompress(b)

    def libdeflate_only():
        addr = chunk.ctypes.data
        for b in raw:
            src = np.frombuffer(b, np.uint8)
            lib.zlib_into(src.ctypes.data, len(b), addr, t.chunk_bytes)

    engines = {
        "h5py": h5py_rows,
        "zlib": zlib_only,
        "ours": ours_rows,
        "libdeflate": libdeflate_only,
    }
    # equal results first
    ref = np.empty_like(row)
    for r in (0, nav[0] // 2, nav[0] - 1):
        dset.read_direct(ref, source_sel=np.s_[r : r + 1])
        reader.read_block((slice(r, r + 1), slice(0, nav[1])), row)
        assert np.array_equal(ref, row), f"row {r} differs"
    times: dict[str, list[float]] = {k: [] for k in engines}
    names = list(engines)
    for rep in range(args.reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            t0 = time.perf_counter()
            engines[name]()
            times[name].append(time.perf_counter() - t0)
            print(f"{name:10s} {times[name][-1]:.3f} s", flush=True)
    load1 = open("/proc/loadavg").read().split()[:3]
    ours = statistics.median(times["ours"])
    lines = [
        f"## gzip chunks, one process: h5py against ours: "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Command: `python benchmarks/formats_inflate.py {' '.join(sys.argv[1:])}` "
        f"(file {os.path.basename(args.file)}, {gib:.2f} GiB of frames, "
        f"{len(raw)} chunks; libdeflate from {lib.origin}).",
        f"Load average (1/5/15 min) at the start: {' / '.join(load0)} on {os.cpu_count()} cores.",
        f"{args.reps} interleaved repetitions, median. `h5py` and `ours` fill a reused buffer "
        "scan row by scan row; `zlib` and `libdeflate` are the decompression alone.",
        "",
        "| engine | median s | GiB/s of frames | engine / ours |",
        "|---|---|---|---|",
    ]
    for name in names:
        med = statistics.median(times[name])
        lines.append(f"| {name} | {med:.3f} | {gib / med:.2f} | {med / ours:.2f} |")
    lines += ["", f"Load average at the end: {' / '.join(load1)}.", ""]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with open(args.append, "a") as fh:
            fh.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
