"""Overhead of live plots: ``plots=True`` against no plots.

A 1 GiB raw float32 file (128 x 128 navigation x 128 x 128 signal) in 16
partitions, run with SumUDF (a sig image) and SumSigUDF (a nav image) in one
pass. Modes:

- ``none``: no plots.
- ``plots=True``: what a terminal gets (Agg; artists updated in place, nothing
  rendered until ``save``). Under ipympl the updates are the same, and the
  rendering happens in the kernel's main thread when the browser asks.
- ``ipympl``: plots made with ``backend="ipympl"`` (no browser here): the
  artists are updated in place in the run's thread and ``draw_idle`` messages
  are sent, as in Jupyter; the rendering a browser would ask for is not included.
- ``rendered``: plots made with ``backend="image"``: every drawn update also
  renders a PNG in the run's thread (what Jupyter without ipympl gets); an upper
  bound for the cost of rendering.

Usage::

    python benchmarks/bench_plots.py [--repeats 9] [--executor processes] [--n-jobs 2]

Reported: wall time (median and best of the repeats, each against the run
without plots) and the CPU time of the main process, where all plot work
happens (less sensitive to other load on the machine than wall time).

The data file is created under benchmarks/data/ (gitignored) on first use.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from udfwidgets import Context
from udfwidgets.udf.sum import SumUDF
from udfwidgets.udf.sumsigudf import SumSigUDF

NAV = (128, 128)
SIG = (128, 128)
HERE = Path(__file__).resolve().parent
DEFAULT_PATH = HERE / "data" / "bench_plots_1gib_float32.raw"


def make_file(path: Path) -> None:
    """Write the 1 GiB file in 64 MiB chunks (random values, reproducible)."""
    n_frames = NAV[0] * NAV[1]
    nbytes = n_frames * SIG[0] * SIG[1] * 4
    if path.exists() and path.stat().st_size == nbytes:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    chunk = 1024
    with open(path, "wb") as f:
        for _ in range(n_frames // chunk):
            rng.random((chunk,) + SIG, dtype=np.float32).tofile(f)
    print(f"created {path} ({nbytes / 2**30:.2f} GiB)")


def run_once(ctx: Context, ds, mode: str) -> tuple[float, float, int]:
    udfs = [SumUDF(), SumSigUDF()]
    if mode == "none":
        plots = None
    elif mode == "plots=True":
        plots = True
    elif mode in ("ipympl", "rendered"):
        from udfwidgets.widgets import make_plots

        plots = make_plots(True, ds, udfs, backend="image" if mode == "rendered" else "ipympl")
    else:
        raise ValueError(mode)
    t0, c0 = time.perf_counter(), time.process_time()
    ctx.run_udf(dataset=ds, udf=udfs, plots=plots)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    updates = sum(p.n_updates for p in plots) if isinstance(plots, list) else -1
    return elapsed, cpu, updates


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "?"


def main() -> None:
    warnings.filterwarnings("ignore", "Passing unrecognized arguments", DeprecationWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--executor", default="processes")
    parser.add_argument("--n-jobs", type=int, default=None)
    args = parser.parse_args()

    make_file(args.path)
    load_before = _load()
    modes = ["none", "plots=True", "ipympl", "rendered"]
    with Context(executor=args.executor, n_jobs=args.n_jobs) as ctx:
        ds = ctx.load(
            "raw",
            path=str(args.path),
            nav_shape=NAV,
            sig_shape=SIG,
            dtype="float32",
            num_partitions=16,
        )
        for _ in range(2):  # warm up: page cache, workers, imports
            run_once(ctx, ds, "none")
        run_once(ctx, ds, "rendered")
        times = {m: [] for m in modes}
        cpus = {m: [] for m in modes}
        updates = {m: [] for m in modes}
        for _ in range(args.repeats):
            for mode in modes:  # interleaved, so that drifts hit every mode alike
                t, c, n = run_once(ctx, ds, mode)
                times[mode].append(t)
                cpus[mode].append(c)
                updates[mode].append(n)
    print(
        f"1 GiB float32, nav {NAV} x sig {SIG}, 16 partitions, executor={args.executor}, "
        f"n_jobs={args.n_jobs or os.cpu_count()}, {args.repeats} interleaved repeats"
    )
    print(f"  load average before/after: {load_before} / {_load()}")
    print("  mode        wall median (overhead)   wall min (overhead)   main-process CPU median")
    med0, min0 = statistics.median(times["none"]), min(times["none"])
    cpu0 = statistics.median(cpus["none"])
    for mode in modes:
        med, best = statistics.median(times[mode]), min(times[mode])
        cpu = statistics.median(cpus[mode])
        n = statistics.median(updates[mode])
        extra = f"  {n:.0f} drawn updates" if n >= 0 else ""
        print(
            f"  {mode:11s} {med:6.3f} s ({(med / med0 - 1) * 100:+6.1f} %)   "
            f"{best:6.3f} s ({(best / min0 - 1) * 100:+6.1f} %)   "
            f"{cpu * 1e3:6.0f} ms ({(cpu - cpu0) * 1e3:+5.0f} ms){extra}"
        )


if __name__ == "__main__":
    main()
