"""The gzip reader of another checkout against this one's, in one process, interleaved (CPU time).

Loads ``udfwidgets/io/inflate.py`` of ``--ref`` (e.g. ``/work/main``) under
another module name next to this checkout's, builds both readers on the same
gzip HDF5 file (``benchmarks/formats.py`` writes it) and times, one thread,
``time.thread_time`` (so other processes' load counts less than in wall time):

- ``read_block``: one partition of 16 scan rows (128 MiB of frames), each
  repetition the next one;
- ``take``: the frames of a 1% roi (the same random roi as ``formats.py``)
  of one such partition.

Each repetition runs ``ref``, ``new`` and ``ref2`` (``ref`` again: the noise
floor) in a rotating order; reported are the medians and the median of the
per-repetition ratios to ``ref``. Both readers' results are checked equal first.

    python benchmarks/inflate_ab.py --ref /work/main --reps 150
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from udfwidgets.io import inflate as new  # noqa: E402
from udfwidgets.io.hdf5 import open_file  # noqa: E402

DEFAULT = "/tmp/udfw-formats-bench/scan-128x256-h5-gzip.h5"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", required=True, help="checkout whose inflate.py is the reference")
    ap.add_argument("--file", default=DEFAULT)
    ap.add_argument("--reps", type=int, default=150)
    ap.add_argument("--append", default=None)
    args = ap.parse_args()
    spec = importlib.util.spec_from_file_location(
        "udfwidgets.io._inflate_ref", os.path.join(args.ref, "udfwidgets", "io", "inflate.py")
    )
    ref = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = ref
    spec.loader.exec_module(ref)
    load0 = open("/proc/loadavg").read().split()[:3]
    dset = open_file(args.file)["data"]
    nav, sig = dset.shape[:2], dset.shape[2:]
    readers = {
        "ref": ref.gzip_reader(args.file, "/data", dset, 2),
        "new": new.gzip_reader(args.file, "/data", dset, 2),
    }
    readers["ref2"] = readers["ref"]
    rows = 16
    blocks = [(slice(r, r + rows), slice(0, nav[1])) for r in range(0, nav[0], rows)]
    roi = np.flatnonzero(np.random.default_rng(0).random(nav) < 0.01)
    per = rows * nav[1]
    picks = [roi[(roi >= a) & (roi < a + per)] for a in range(0, nav[0] * nav[1], per)]
    out = np.empty((rows, nav[1]) + sig, dset.dtype)
    want = np.empty_like(out)
    for b, p in zip(blocks, picks):  # equal results; every page of the reference's map touched
        readers["ref"].read_block(b, want)
        readers["new"].read_block(b, out)
        assert np.array_equal(out, want)
        x, y = np.empty((len(p),) + sig, dset.dtype), np.empty((len(p),) + sig, dset.dtype)
        readers["ref"].take(p, x)
        readers["new"].take(p, y)
        assert np.array_equal(x, y)
    names = list(readers)
    res: dict = {}
    for rep in range(args.reps):
        b, p = blocks[rep % len(blocks)], picks[rep % len(picks)]
        got = np.empty((len(p),) + sig, dset.dtype)
        for name in names[rep % 3 :] + names[: rep % 3]:
            t0 = time.thread_time()
            readers[name].read_block(b, out)
            t1 = time.thread_time()
            readers[name].take(p, got)
            t2 = time.thread_time()
            res.setdefault(("read_block", name), []).append(t1 - t0)
            res.setdefault(("take", name), []).append(t2 - t1)
    load1 = open("/proc/loadavg").read().split()[:3]
    lines = [
        f"## gzip reader, one process, {args.ref} against this checkout: "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Command: `python benchmarks/inflate_ab.py {' '.join(sys.argv[1:])}` "
        f"(file {os.path.basename(args.file)}; partitions of {rows} scan rows, "
        f"{out.nbytes >> 20} MiB of frames; take: a 1% roi, {np.median([len(p) for p in picks]):.0f} "
        "frames per partition).",
        f"Load average (1/5/15 min) at the start: {' / '.join(load0)} on {os.cpu_count()} cores.",
        f"{args.reps} repetitions, order rotating over ref, new, ref2 (ref again); CPU time of "
        "the thread (`time.thread_time`), median; `pair ratio`: median over repetitions of "
        "the time over ref's.",
        "",
        "| what | reader | median ms | pair ratio to ref |",
        "|---|---|---|---|",
    ]
    for what in ("read_block", "take"):
        base = res[(what, "ref")]
        for name in names:
            ts = res[(what, name)]
            pair = statistics.median(t / r for t, r in zip(ts, base))
            lines.append(f"| {what} | {name} | {statistics.median(ts) * 1e3:.2f} | {pair:.4f} |")
    lines += ["", f"Load average at the end: {' / '.join(load1)}.", ""]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with open(args.append, "a") as fh:
            fh.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
