"""Cost as the scan grows (issue 15): time per GiB, main-process memory, partitions,
merge time on the main node, and the live-plot cost of a 1 M-frame run_udf_iter.

The scans read sparse files (``truncate``: no disk space), so that the figures
measure the framework, not the disk. A hole is read at memory speed only once
its (zero) pages are in the page cache: a first read costs the kernel about
1.4 s/GiB to allocate and zero them, and a 64 GiB file does not fit the page
cache of a 24 GiB machine, so every run of it would pay that again. By default
a scan of G GiB is therefore G segments that all read the same 1 GiB sparse
file (one file per frame size): the framework sees a G GiB scan of
``G * frames_per_GiB`` frames in G files, tasks, partitions, maps and result
buffers grow with G, and the bytes come from 1 GiB of page cache.
``--single-file`` reads one sparse file of the whole size instead (the page
cache must hold it: slower first runs, and noisy when other processes
evict it).

* nav series: 64x64 float32 frames, ``SumSigUDF``; nav 256x256 (1 GiB),
  512x512 (4 GiB), 1024x1024 (16 GiB, 1 M frames), 2048x2048 (64 GiB).
* frame series (``--frames``): nav 64x64, ``SumUDF``; frames 128x128
  (256 MiB), 256x256 (1 GiB), 512x512 (4 GiB), 1024x1024 (16 GiB).
* live plots: ``ctx.run_udf_iter(SumSigUDF(), plots=[MatplotlibLivePlot])``
  over the 1024x1024 nav (16 GiB, Agg backend, no throttle): seconds from the
  call (figure creation included) to the first partial result, and the
  main-process time per update (merge + snapshot + plot + reading the
  results), with the first partitions ramped up (the default) and without
  (one 128 MiB first partition), interleaved.

Sizes are interleaved (1, 4, 16, 64, 1, 4, ...) so that the load of a shared
machine hits every size alike; every row carries the 1-minute load average
at its start. Results are checked against the known content (zeros).

Usage::

    python benchmarks/scaling.py --max-gib 4 --reps 1            # short
    python benchmarks/scaling.py --max-gib 64 --reps 3 --frames  # the recorded run
    python benchmarks/scaling.py --max-gib 64 --reps 3 --frames --dask
    python benchmarks/scaling.py --max-gib 64 --reps 2 --frames --executors dask
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from udfwidgets import Context
from udfwidgets.executor.run import UDFRun
from udfwidgets.io import dataset as dataset_module
from udfwidgets.io.files import FrameFiles, FramesDataSet, Segment
from udfwidgets.io.geometry import resolve
from udfwidgets.io.shape import Shape
from udfwidgets.udf.sum import SumUDF
from udfwidgets.udf.sumsigudf import SumSigUDF

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "sparse")
GIB = 1 << 30
DTYPE = np.dtype("float32")


def sparse_file(nbytes: int, tag: str) -> str:
    """A sparse file of ``nbytes`` (created once; takes no disk space)."""
    os.makedirs(DATA_DIR, exist_ok=True)
    path = os.path.join(DATA_DIR, f"{tag}_{nbytes}.raw")
    if not os.path.exists(path) or os.path.getsize(path) != nbytes:
        with open(path, "wb") as fh:
            fh.truncate(nbytes)
    return path


class SegmentScan(FramesDataSet):
    """A scan of ``nav x sig`` float32 frames read from segments of sparse files."""

    kind = "raw"

    def __init__(self, nav, sig, single_file: bool = False):
        super().__init__()
        self.dtype = DTYPE
        n = math.prod(nav)
        frame_bytes = math.prod(sig) * DTYPE.itemsize
        if single_file:
            self.path = sparse_file(n * frame_bytes, "x".join(map(str, nav + sig)))
            segments = [Segment(self.path, 0, n)]
        else:
            per = max(1, min(n, GIB // frame_bytes))  # frames per 1 GiB segment
            self.path = sparse_file(per * frame_bytes, f"base_{'x'.join(map(str, sig))}")
            segments = [Segment(self.path, 0, min(per, n - a)) for a in range(0, n, per)]
        self.files = FrameFiles(segments, DTYPE, sig)
        self.geometry = resolve(n, nav)
        self.shape = Shape(tuple(nav) + tuple(sig), sig_dims=len(sig))


def anon_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


class PeakMemory:
    """Samples this process's anonymous resident memory every 5 ms while active."""

    def __enter__(self):
        import gc

        gc.collect()
        self.base = anon_kib()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, anon_kib())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, anon_kib())

    @property
    def grown_mib(self) -> float:
        return (self.peak - self.base) / 1024


@contextlib.contextmanager
def counting():
    """Seconds spent in UDFRun._merge and UDFRun._snapshot (every run in the block)."""
    spent = {"merge": 0.0, "snapshot": 0.0}
    merge, snapshot = UDFRun._merge, UDFRun._snapshot

    def counted_merge(self, *a):
        t0 = time.perf_counter()
        try:
            return merge(self, *a)
        finally:
            spent["merge"] += time.perf_counter() - t0

    def counted_snapshot(self, *a, **k):
        t0 = time.perf_counter()
        try:
            return snapshot(self, *a, **k)
        finally:
            spent["snapshot"] += time.perf_counter() - t0

    UDFRun._merge, UDFRun._snapshot = counted_merge, counted_snapshot
    try:
        yield spent
    finally:
        UDFRun._merge, UDFRun._snapshot = merge, snapshot


@contextlib.contextmanager
def no_ramp():
    """Partitions as before the ramp: the first one as large as the others."""
    ramp = dataset_module.ramp_up
    dataset_module.ramp_up = lambda bounds, frame_bytes, first=None: [bounds]
    try:
        yield
    finally:
        dataset_module.ramp_up = ramp


def check_zero(buffers) -> None:
    for b in buffers.values():  # the sparse files hold zeros only
        data = np.asarray(b.data)
        assert np.all((data == 0) | np.isnan(data)), "wrong result on an all-zero file"


def timed_run(ctx, ds, udf):
    """seconds, partials (= partitions = tasks), merge s, main growth MiB, result bytes."""
    with counting() as spent, PeakMemory() as mem:
        t0 = time.perf_counter()
        n = 0
        for part in ctx.run_udf_iter(dataset=ds, udf=udf):
            n += 1
            final = part
        dt = time.perf_counter() - t0
    bufs = final.buffers[0]
    check_zero(bufs)
    result_bytes = sum(np.asarray(b.raw_data).nbytes for b in bufs.values())
    return dt, n, spent["merge"], mem.grown_mib, result_bytes


def live_plot(ctx, ds):
    """First partial (from the call, figures included) and per-update main-process cost."""
    from udfwidgets.widgets.plots import MatplotlibLivePlot

    plot_time = [0.0, 0]
    read_time = [0.0]
    with counting() as spent, PeakMemory() as mem:
        t0 = time.perf_counter()
        plot = MatplotlibLivePlot("intensity", min_delta=0, backend="agg")
        inner = plot.new_data

        def counted(*a, **k):
            t = time.perf_counter()
            try:
                return inner(*a, **k)
            finally:
                plot_time[0] += time.perf_counter() - t
                plot_time[1] += 1

        plot.new_data = counted
        first = None
        n = 0
        for part in ctx.run_udf_iter(dataset=ds, udf=SumSigUDF(), plots=[plot]):
            t = time.perf_counter()
            part.buffers  # what a loop body that reads the results pays
            read_time[0] += time.perf_counter() - t
            n += 1
            if first is None:
                first = time.perf_counter() - t0
            final = part
        total = time.perf_counter() - t0
    check_zero(final.buffers[0])
    per_update = (spent["merge"] + spent["snapshot"] + plot_time[0] + read_time[0]) / n
    plot.close()
    return {
        "partials": n,
        "first_s": first,
        "total_s": total,
        "per_update_ms": per_update * 1e3,
        "merge_ms": spent["merge"] / n * 1e3,
        "snapshot_ms": spent["snapshot"] / n * 1e3,
        "plot_ms": plot_time[0] / max(plot_time[1], 1) * 1e3,
        "read_ms": read_time[0] / n * 1e3,
        "main_mib": mem.grown_mib,
    }


def load1() -> float:
    return os.getloadavg()[0]


def fmt_scan(nav, sig) -> str:
    return f"{'x'.join(map(str, nav))} x {'x'.join(map(str, sig))}"


def main(argv=None):
    p = argparse.ArgumentParser(description="cost as the scan grows (sparse files)")
    p.add_argument("--max-gib", type=float, default=16, help="largest scan (1, 4, 16 or 64)")
    p.add_argument("--reps", type=int, default=2, help="timed runs per scan (interleaved)")
    p.add_argument("--dask", action="store_true", help="also on a 2-worker LocalCluster")
    p.add_argument(
        "--executors",
        default="processes",
        help="comma-separated, of processes and dask (default processes; --dask adds dask)",
    )
    p.add_argument("--frames", action="store_true", help="also the frame-size series")
    p.add_argument("--no-live", action="store_true", help="leave out the live-plot runs")
    p.add_argument("--live-reps", type=int, default=3)
    p.add_argument(
        "--single-file",
        action="store_true",
        help="one sparse file per scan instead of segments of a 1 GiB one",
    )
    args = p.parse_args(argv)

    scans = [  # (series, nav, sig, UDF class)
        ("nav", (256, 256), (64, 64), SumSigUDF),
        ("nav", (512, 512), (64, 64), SumSigUDF),
        ("nav", (1024, 1024), (64, 64), SumSigUDF),
        ("nav", (2048, 2048), (64, 64), SumSigUDF),
    ]
    if args.frames:
        scans += [
            ("frame", (64, 64), (128, 128), SumUDF),
            ("frame", (64, 64), (256, 256), SumUDF),
            ("frame", (64, 64), (512, 512), SumUDF),
            ("frame", (64, 64), (1024, 1024), SumUDF),
        ]
    scans = [s for s in scans if math.prod(s[1] + s[2]) * DTYPE.itemsize <= args.max_gib * GIB]

    names = [n.strip() for n in args.executors.split(",") if n.strip()]
    if args.dask and "dask" not in names:
        names.append("dask")
    unknown = set(names) - {"processes", "dask"}
    if unknown or not names:
        p.error(f"--executors takes processes and/or dask, got {args.executors!r}")
    contexts = {}
    if "processes" in names:
        contexts["processes"] = Context(executor="processes", n_jobs=2)
        contexts["processes"].executor._ready.wait()
    cluster = None
    if "dask" in names:
        import distributed

        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=40,
        )
        contexts["dask"] = Context(executor="dask", client=distributed.Client(cluster))
    how = "one sparse file per scan" if args.single_file else "segments of one 1 GiB sparse file"
    print(
        f"# scaling, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores, {args.reps} interleaved reps, float32 scans read from {how}\n"
    )
    print(
        f"command: python benchmarks/scaling.py {' '.join(sys.argv[1:] if argv is None else argv)}"
    )
    print(f"load before: {open('/proc/loadavg').read().strip()}\n")

    datasets = {s: SegmentScan(s[1], s[2], args.single_file) for s in scans}
    # warm-up: maps the files in the workers, fills the page cache
    for s, ds in datasets.items():
        for ctx in contexts.values():
            timed_run(ctx, ds, s[3]())

    rows: dict = {}
    print(
        "| rep | series | scan | GiB | executor | load | s | s/GiB | partitions (tasks) | "
        "merge ms | main MiB (growth) | result MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for rep in range(args.reps):
        for s, ds in datasets.items():
            for name, ctx in contexts.items():
                la = load1()
                r = timed_run(ctx, ds, s[3]())
                rows.setdefault((s, name), []).append((la,) + r)
                gib = ds.nbytes / GIB
                print(
                    f"| {rep + 1} | {s[0]} ({s[3].__name__}) | {fmt_scan(s[1], s[2])} | {gib:g} | "
                    f"{name} | {la:.1f} | {r[0]:.2f} | {r[0] / gib:.3f} | {r[1]} | "
                    f"{r[2] * 1e3:.1f} | {r[3]:.1f} | {r[4] / 2**20:.2f} |",
                    flush=True,
                )

    print("\n## medians\n")
    print(
        "| series | scan | GiB | executor | load (median) | s | s/GiB | vs smallest | "
        "partitions | merge ms | main MiB (max growth) | result MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    smallest: dict = {}
    for (s, name), rs in rows.items():
        gib = datasets[s].nbytes / GIB
        dt = statistics.median(r[1] for r in rs)
        per = dt / gib
        ref = smallest.setdefault((s[0], name), per)
        print(
            f"| {s[0]} ({s[3].__name__}) | {fmt_scan(s[1], s[2])} | {gib:g} | {name} | "
            f"{statistics.median(r[0] for r in rs):.1f} | {dt:.2f} | {per:.3f} | "
            f"{per / ref:.2f} | {rs[0][2]} | {statistics.median(r[3] for r in rs) * 1e3:.1f} | "
            f"{max(r[4] for r in rs):.1f} | {rs[0][5] / 2**20:.2f} |",
            flush=True,
        )

    if not args.no_live:
        live = SegmentScan((1024, 1024), (64, 64), args.single_file)
        print(
            "\n## live plot: run_udf_iter(SumSigUDF, plots=[MatplotlibLivePlot]) over "
            f"{fmt_scan((1024, 1024), (64, 64))} (1048576 frames, 16 GiB)\n"
        )
        print(
            "| rep | executor | first partitions | load | partials | first partial s | "
            "per update ms (merge + snapshot + plot + read) | main MiB | total s |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for ctx in contexts.values():
            live_plot(ctx, live)  # warm-up (imports matplotlib, maps the file)
        for rep in range(args.live_reps):
            for name, ctx in contexts.items():
                for variant in ("ramped (default)", "one full first partition (no ramp)"):
                    la = load1()
                    with no_ramp() if variant.endswith("(no ramp)") else contextlib.nullcontext():
                        r = live_plot(ctx, live)
                    print(
                        f"| {rep + 1} | {name} | {variant} | {la:.1f} | {r['partials']} | "
                        f"{r['first_s']:.3f} | {r['per_update_ms']:.1f} ({r['merge_ms']:.1f} + "
                        f"{r['snapshot_ms']:.1f} + {r['plot_ms']:.1f} + {r['read_ms']:.1f}) | "
                        f"{r['main_mib']:.1f} | {r['total_s']:.2f} |",
                        flush=True,
                    )
    print(f"\nload after: {open('/proc/loadavg').read().strip()}")
    for ctx in contexts.values():
        ctx.close()
    if cluster is not None:
        cluster.close()


if __name__ == "__main__":
    main()
