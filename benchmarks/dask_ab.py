"""Interleaved A/B of the dask executor's fixes of 2026-12-07, in one process.

Three engines run the benchmark workloads of ``run.py`` in turn, repetition by
repetition, so that a busy machine slows them alike:

* ``processes``: the processes executor;
* ``dask``: a 2-worker ``LocalCluster`` (processes, 127.0.0.1) configured as
  docs/clusters.md recommends (``WORKER_CONFIG``: no statistical profiler), with
  the current code;
* ``dask-before``: a second such cluster with dask's default configuration
  (profiler on), whose workers and the main process allocate UDF buffers with
  plain ``np.zeros`` (16-byte aligned, as before), and which asks the scheduler
  for its workers on every call (``WORKERS_TTL = 0``), as before.

Prints the median of each engine and the ratios dask / processes and
dask-before / processes, with the load average before and after.

Examples
--------
::

    python benchmarks/dask_ab.py --workloads max,sum --files f32,u16 --reps 5
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _data import F32, U16, ensure  # noqa: E402
from _engines import dask_worker_config, ours_namespace  # noqa: E402
from _workloads import workloads  # noqa: E402


def legacy_zeros(shape, dtype):
    """The buffers before: NumPy's own allocation (16-byte aligned)."""
    dtype = np.dtype(dtype)
    return np.empty(shape, dtype=dtype) if dtype.kind == "O" else np.zeros(shape, dtype=dtype)


def use_legacy_zeros(dask_worker=None) -> bool:
    """In a worker process (``client.run``): UDF buffers as before."""
    from udfwidgets.executor import task

    task.zeros = legacy_zeros
    return True


def _cluster(config: dict):
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set(config):
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        )
    return cluster, Client(cluster, set_as_default=False)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default="sum,sumsig,sumoversig,max,stddev,masks,com")
    ap.add_argument("--files", default="f32,u16")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)

    from udfwidgets import Context
    from udfwidgets.executor import dask_executor, run

    load0 = os.getloadavg()
    files = [ensure({"f32": F32, "u16": U16}[name]) for name in args.files.split(",")]
    wl = workloads(lambda d: None)
    chosen = [wl[name] for name in args.workloads.split(",")]
    ns = ours_namespace()
    new_cluster, new_client = _cluster(dask_worker_config())
    old_cluster, old_client = _cluster({})
    old_client.run(use_legacy_zeros)
    contexts = {
        "processes": Context(executor="processes", n_jobs=2),
        "dask": Context(executor="dask", client=new_client),
        "dask-before": Context(executor="dask", client=old_client),
    }
    ttl, zeros = dask_executor.WORKERS_TTL, run.zeros

    def run_once(name, ds, udf):
        before = name == "dask-before"
        if before:
            dask_executor.WORKERS_TTL, run.zeros = 0.0, legacy_zeros
            contexts[name].executor._seen = None
        try:
            t0 = time.perf_counter()
            contexts[name].run_udf(dataset=ds, udf=udf)
            return time.perf_counter() - t0
        finally:
            dask_executor.WORKERS_TTL, run.zeros = ttl, zeros

    rows = []
    try:
        for w in chosen:
            for f in files:
                dss = {
                    n: c.load("raw", path=f.path, nav_shape=f.nav, sig_shape=f.sig, dtype=f.dtype)
                    for n, c in contexts.items()
                }
                times: dict[str, list[float]] = {n: [] for n in contexts}
                for rep in range(args.reps + 1):  # the first round warms up
                    for n in contexts:
                        dt = run_once(n, dss[n], w.make_ours(ns, tuple(f.sig)))
                        if rep:
                            times[n].append(dt)
                med = {n: statistics.median(v) for n, v in times.items()}
                row = (
                    f"| {w.label} | {f.name.split('_')[0]} | {1e3 * med['processes']:.0f} | "
                    f"{1e3 * med['dask']:.0f} | {1e3 * med['dask-before']:.0f} | "
                    f"{med['dask'] / med['processes']:.2f} | "
                    f"{med['dask-before'] / med['processes']:.2f} |"
                )
                rows.append(row)
                print(row, flush=True)
    finally:
        for c in contexts.values():
            c.close()
        for client, cluster in ((new_client, new_cluster), (old_client, old_cluster)):
            client.close()
            cluster.close()
    print()
    print(
        f"load average (1, 5, 15 min) at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
        f"at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; median of {args.reps}"
    )
    print(
        "| workload | file | processes ms | dask ms | dask-before ms | dask / processes "
        "| dask-before / processes |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
