"""Cost as the scan grows (issue 15): time per GiB, main-process memory, partitions,
merge time on the main node, and the live-plot cost of a 1 M-frame run_udf_iter.

The scans are sparse files (``truncate``: no disk space, their holes read as zero
pages at memory speed), so that the figures measure the framework, not the disk.

* nav series: 64x64 float32 frames, nav 256x256 (1 GiB), 512x512 (4 GiB),
  1024x1024 (16 GiB, 1 M frames) and with ``--max-gib 64`` 1024x1024 x 128x128
  (64 GiB).
* frame series: nav 64x64, frames 128x128 (256 MiB), 256x256 (1 GiB), 512x512
  (4 GiB), 1024x1024 (16 GiB).
* live plots: ``run_udf_iter(SumSigUDF)`` over a 1024x1024 nav with a
  :class:`~udfwidgets.widgets.plots.MatplotlibLivePlot` (Agg, no throttle):
  seconds to the first partial result, and the main-process time per update
  (merge + snapshot + plot).

Usage::

    python benchmarks/scaling.py --max-gib 4 --reps 1      # short variant
    python benchmarks/scaling.py                           # up to 16 GiB, 2 reps
    python benchmarks/scaling.py --max-gib 64 --dask       # everything, dask too

Every figure is printed together with the 1-minute load average (the machine
may be shared). Results are checked against the known content (zeros, and for
the live-plot file, too) before they count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from udfwidgets import Context
from udfwidgets.executor.run import UDFRun
from udfwidgets.udf.sum import SumUDF
from udfwidgets.udf.sumsigudf import SumSigUDF

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "sparse")
GIB = 1 << 30


def sparse_file(nav, sig, dtype="float32") -> str:
    """A sparse raw file of ``nav x sig`` frames (created once; takes no disk space)."""
    os.makedirs(DATA_DIR, exist_ok=True)
    name = "x".join(map(str, nav + sig)) + f"_{dtype}.raw"
    path = os.path.join(DATA_DIR, name)
    size = int(np.prod(nav + sig)) * np.dtype(dtype).itemsize
    if not os.path.exists(path) or os.path.getsize(path) != size:
        with open(path, "wb") as fh:
            fh.truncate(size)
    return path


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


def timed_run(ctx, ds, udf):
    """(seconds, partitions, merge seconds, main-process growth MiB, result bytes)."""
    run = UDFRun(ds, [udf], ctx.executor, tile_bytes=ctx.tile_bytes)
    merge = [0.0]
    inner = run._merge

    def counted(*a):
        t0 = time.perf_counter()
        inner(*a)
        merge[0] += time.perf_counter() - t0

    run._merge = counted
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        final = list(run.results(partials=False))[-1]
        dt = time.perf_counter() - t0
    bufs = final.buffers[0]
    result_bytes = sum(np.asarray(b.raw_data).nbytes for b in bufs.values())
    for b in bufs.values():  # the sparse file holds zeros only
        data = np.asarray(b.data)
        assert np.all((data == 0) | np.isnan(data)), "wrong result on an all-zero file"
    return dt, len(run.partitions), merge[0], mem.grown_mib, result_bytes


def load1() -> float:
    return os.getloadavg()[0]


def live_plot(ctx, nav, sig):
    """First partial and per-update main-process cost of run_udf_iter with a live plot."""
    from udfwidgets.widgets.plots import MatplotlibLivePlot

    path = sparse_file(nav, sig)
    ds = ctx.load("raw", path=path, nav_shape=nav, sig_shape=sig, dtype="float32")
    plot = MatplotlibLivePlot("intensity", min_delta=0, backend="agg")
    plot_time = [0.0, 0]
    inner = plot.new_data

    def counted(*a, **k):
        t0 = time.perf_counter()
        out = inner(*a, **k)
        plot_time[0] += time.perf_counter() - t0
        plot_time[1] += 1
        return out

    plot.new_data = counted
    run = UDFRun(ds, [SumSigUDF()], ctx.executor, tile_bytes=ctx.tile_bytes)
    merge = [0.0]
    inner_merge = run._merge

    def counted_merge(*a):
        t0 = time.perf_counter()
        inner_merge(*a)
        merge[0] += time.perf_counter() - t0

    run._merge = counted_merge
    snap = [0.0]
    inner_snap = run._snapshot

    def counted_snap(*a, **k):
        t0 = time.perf_counter()
        out = inner_snap(*a, **k)
        snap[0] += time.perf_counter() - t0
        return out

    run._snapshot = counted_snap
    t0 = time.perf_counter()
    first = None
    n = 0
    for part in run.results(subscribers=[plot], partials=True):
        part.buffers  # what a loop body that reads the results pays
        n += 1
        if first is None:
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    per_update = (merge[0] + snap[0] + plot_time[0]) / max(n, 1)
    return {
        "frames": int(np.prod(nav)),
        "partials": n,
        "first_s": first,
        "total_s": total,
        "per_update_ms": per_update * 1e3,
        "plot_ms": plot_time[0] / max(plot_time[1], 1) * 1e3,
        "merge_ms": merge[0] / max(n, 1) * 1e3,
        "snapshot_ms": snap[0] / max(n, 1) * 1e3,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description="cost as the scan grows (sparse files)")
    p.add_argument("--max-gib", type=float, default=16, help="largest scan (1, 4, 16 or 64)")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--dask", action="store_true", help="also on a 2-worker LocalCluster")
    p.add_argument(
        "--live-sig",
        type=int,
        default=64,
        help="frame side of the 1024x1024-nav live-plot scan (default 64: 16 GiB)",
    )
    args = p.parse_args(argv)

    nav_series = [
        ((256, 256), (64, 64)),
        ((512, 512), (64, 64)),
        ((1024, 1024), (64, 64)),
        ((1024, 1024), (128, 128)),
    ]
    frame_series = [
        ((64, 64), (128, 128)),
        ((64, 64), (256, 256)),
        ((64, 64), (512, 512)),
        ((64, 64), (1024, 1024)),
    ]

    def size(nav, sig):
        return int(np.prod(nav + sig)) * 4

    contexts = {"processes": Context(executor="processes", n_jobs=2)}
    cluster = None
    if args.dask:
        import distributed

        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=40,
        )
        contexts["dask"] = Context(executor="dask", client=distributed.Client(cluster))
    print(
        f"# scaling, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores, {args.reps} reps (median), sparse float32 files\n"
    )
    print(
        "| series | scan | GiB | executor | load | s | s/GiB | partitions | merge ms | "
        "main MiB (growth) | result MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for series, items in (("nav", nav_series), ("frame", frame_series)):
        for nav, sig in items:
            nbytes = size(nav, sig)
            if nbytes > args.max_gib * GIB:
                continue
            path = sparse_file(nav, sig)
            for name, ctx in contexts.items():
                ds = ctx.load("raw", path=path, nav_shape=nav, sig_shape=sig, dtype="float32")
                udf_cls = SumSigUDF if series == "nav" else SumUDF
                timed_run(ctx, ds, udf_cls())  # warm-up: maps the file in the workers
                la = load1()
                runs = [timed_run(ctx, ds, udf_cls()) for _ in range(args.reps)]
                dt = statistics.median(r[0] for r in runs)
                gib = nbytes / GIB
                print(
                    f"| {series} ({udf_cls.__name__}) | {'x'.join(map(str, nav))} x "
                    f"{'x'.join(map(str, sig))} | {gib:g} | {name} | {la:.1f} | {dt:.2f} | "
                    f"{dt / gib:.3f} | {runs[0][1]} | "
                    f"{statistics.median(r[2] for r in runs) * 1e3:.1f} | "
                    f"{max(r[3] for r in runs):.0f} | {runs[0][4] / 2**20:.1f} |",
                    flush=True,
                )
    print()
    print(
        "| live plot | executor | load | frames | partials | first partial s | "
        "per update ms (merge + snapshot + plot) | plot ms | total s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    sig = (args.live_sig, args.live_sig)
    for name, ctx in contexts.items():
        live_plot(ctx, (1024, 1024), sig)  # warm-up
        la = load1()
        r = live_plot(ctx, (1024, 1024), sig)
        print(
            f"| 1024x1024 x {sig[0]}x{sig[1]} SumSigUDF | {name} | {la:.1f} | {r['frames']} | "
            f"{r['partials']} | {r['first_s']:.2f} | {r['per_update_ms']:.1f} "
            f"({r['merge_ms']:.1f} + {r['snapshot_ms']:.1f} + {r['plot_ms']:.1f}) | "
            f"{r['plot_ms']:.1f} | {r['total_s']:.2f} |",
            flush=True,
        )
    for ctx in contexts.values():
        ctx.close()
    if cluster is not None:
        cluster.close()


if __name__ == "__main__":
    main()
