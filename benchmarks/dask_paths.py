"""The dask executor's two paths, measured: joblib's dask backend (before) against
dask.distributed's futures API (now), on one 2-worker LocalCluster on 127.0.0.1,
with the processes executor alongside for the issue-15 target (dask at most 1.3x).

Phase A: a fresh cluster, the joblib path exactly as it ran before (no worker
set-up plugin: dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536``). Phase B: the
futures executor registers its worker plugin; then joblib path, futures path and
processes executor run interleaved (order rotated per repetition), so that the
ratio futures/joblib isolates the submission mechanism and the ratio
futures/processes is the target figure.

Usage::

    python benchmarks/dask_paths.py                 # f32 + u16, sum/stddev/masks/tasks, 5 reps
    python benchmarks/dask_paths.py --quick         # small files, 3 reps

Every result is checked against the NumPy reference before it is timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _data import F32, F32_QUICK, U16, U16_QUICK, ensure, warm
from _engines import ours_namespace
from _workloads import check, run_numpy, workloads
from udfwidgets import Context
from udfwidgets.executor.backends import Executor


class JoblibDaskExecutor(Executor):
    """The previous dask path: joblib.Parallel's unordered generator over joblib's dask
    backend (kept here only to measure against)."""

    name = "dask-joblib"
    pickles_tasks = True

    def __init__(self, client):
        self.client = client
        self.n_workers = sum(client.nthreads().values())

    def imap_unordered(self, fn, tasks):
        from joblib import Parallel, delayed, parallel_config

        with parallel_config(backend="dask", n_jobs=self.n_workers, client=self.client):
            parallel = Parallel(
                return_as="generator_unordered", batch_size=1, pre_dispatch="2 * n_jobs"
            )
            return parallel(delayed(fn)(t) for t in tasks)


def load():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def timed(ctx, ds, udf):
    t0 = time.perf_counter()
    res = ctx.run_udf(dataset=ds, udf=udf)
    return time.perf_counter() - t0, res


def first_partial(ctx, ds, udf):
    """Seconds to the first partial result (the run is then finished, not broken off:
    breaking off would restart the processes executor's workers)."""
    t0 = time.perf_counter()
    dt = None
    for _ in ctx.run_udf_iter(dataset=ds, udf=udf):
        if dt is None:
            dt = time.perf_counter() - t0
    return dt


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--workloads", default="sum,stddev,masks")
    p.add_argument("--files", default="f32,u16")
    args = p.parse_args(argv)
    reps = args.reps or (3 if args.quick else 5)
    files = {"f32": F32_QUICK if args.quick else F32, "u16": U16_QUICK if args.quick else U16}
    files = {k: ensure(files[k]) for k in args.files.split(",")}
    ws = workloads(lambda d: None)
    names = args.workloads.split(",")
    ns = ours_namespace()

    import distributed

    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=40,
    )
    client = distributed.Client(cluster)
    lines = [
        f"# dask paths, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"cores {os.cpu_count()}, 2-worker LocalCluster (1 thread each), {reps} reps, "
        "median seconds; load = 1-min load average at the start of each row",
        "",
    ]

    def ds_for(ctx, f):
        return ctx.load("raw", path=f.path, nav_shape=f.nav, sig_shape=f.sig, dtype=f.dtype)

    # per-task cost: a tiny in-memory dataset in 64 partitions
    tiny = np.ones((64, 4, 8, 8), np.float32)

    def tasks_row(ctx):
        ds = ctx.load("memory", data=tiny, num_partitions=64)
        return timed(ctx, ds, ns.SumUDF())

    # --- phase A: the joblib path on a fresh cluster -------------------------------
    old = Context(executor=JoblibDaskExecutor(client))
    lines += [
        "## A: joblib dask backend, fresh cluster (no worker plugin)",
        "",
        "| workload | file | load | joblib path (s) |",
        "|---|---|---|---|",
    ]
    refs = {}
    for fk, f in files.items():
        mm = f.memmap()
        for name in names:
            w = ws[name]
            refs[(name, fk)] = run_numpy(w, mm, 2)
            warm(f)
            ds = ds_for(old, f)
            _, res = timed(old, ds, w.make_ours(ns, tuple(f.sig)))
            bad = check(w, {k: v.data for k, v in res.items()}, refs[(name, fk)])
            assert bad is None, bad
            la = load()
            t = statistics.median(
                timed(old, ds, w.make_ours(ns, tuple(f.sig)))[0] for _ in range(reps)
            )
            lines.append(f"| {w.label} | {fk} | {la:.1f} | {t:.3f} |")
    la = load()
    t = statistics.median(tasks_row(old)[0] for _ in range(reps))
    lines.append(
        f"| 64 tiny partitions (per-task cost) | mem | {la:.1f} | {t:.3f} "
        f"({t / 64 * 1e3:.1f} ms/task) |"
    )
    lines.append("")

    # --- phase B: interleaved ------------------------------------------------------
    new = Context(executor="dask", client=client)  # registers the worker plugin
    procs = Context(executor="processes", n_jobs=2)
    engines = {"joblib": old, "futures": new, "processes": procs}
    lines += [
        "## B: interleaved on the same cluster (worker plugin now registered)",
        "",
        "| workload | file | load | joblib | futures | processes | futures/joblib | "
        "futures/processes |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def row(label, fk, run_one):
        times = {k: [] for k in engines}
        la = load()
        for r in range(reps):
            order = list(engines)[r % 3 :] + list(engines)[: r % 3]
            for k in order:
                times[k].append(run_one(k))
        med = {k: statistics.median(v) for k, v in times.items()}
        lines.append(
            f"| {label} | {fk} | {la:.1f} | {med['joblib']:.3f} | "
            f"{med['futures']:.3f} | {med['processes']:.3f} | "
            f"{med['futures'] / med['joblib']:.2f} | "
            f"{med['futures'] / med['processes']:.2f} |"
        )
        print(lines[-1], flush=True)

    for fk, f in files.items():
        dss = {k: ds_for(c, f) for k, c in engines.items()}
        for name in names:
            w = ws[name]
            warm(f)
            for k, c in engines.items():
                _, res = timed(c, dss[k], w.make_ours(ns, tuple(f.sig)))
                bad = check(w, {n: v.data for n, v in res.items()}, refs[(name, fk)])
                assert bad is None, (k, bad)
            # row() calls the lambdas at once; the defaults bind this pass's values anyway
            row(
                w.label,
                fk,
                lambda k, w=w, f=f, dss=dss: timed(
                    engines[k], dss[k], w.make_ours(ns, tuple(f.sig))
                )[0],
            )
        row(
            "first partial (SumUDF)",
            fk,
            lambda k, dss=dss: first_partial(engines[k], dss[k], ns.SumUDF()),
        )
    row("64 tiny partitions", "mem", lambda k: tasks_row(engines[k])[0])
    lines.append("")
    text = "\n".join(lines)
    print(text)
    procs.close()
    new.close()
    client.close()
    cluster.close()
    return text


if __name__ == "__main__":
    main()
