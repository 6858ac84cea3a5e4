"""Interleaved A/B of the dask executor against an earlier revision of it, in one process.

Three engines run short workloads in turn, repetition by repetition (the order
alternates), so that a busy machine slows them alike:

* ``processes``: the processes executor (2 workers);
* ``before``: ``udfwidgets/executor/dask_executor.py`` of ``--before`` (a git
  revision, default ``main``) on a 2-worker ``LocalCluster`` (processes,
  127.0.0.1) made with that revision's ``WORKER_CONFIG``;
* ``after``: the current dask executor on a second such cluster made with the
  current ``WORKER_CONFIG``.

Jobs: ``tiny2`` (a 2-partition in-memory run of SumUDF: nothing but the fixed
cost of a run), ``tiny4`` (the same with 4 partitions), and ``<workload>-u16`` /
``<workload>-f32``: a workload of ``run.py`` (``sum``, ``masks``, ``com``, ...) on its 512 MiB
uint16 or 1 GiB float32 file, with each executor's default partitioning. Prints the median of each engine, the
ratios to processes, and the median of the paired ratios after/before, with the
load average before and after.

``--idle`` instead measures the CPU time an idle 2-worker cluster takes (main
process and each worker, over 5 s) with the current ``WORKER_CONFIG`` and with
the one of ``--before``, in a fresh process each, alternating.

Examples
--------
::

    python benchmarks/dask_graphs_ab.py --reps 21
    python benchmarks/dask_graphs_ab.py --jobs tiny2,com-u16 --before 0f36ab8
    python benchmarks/dask_graphs_ab.py --idle --rounds 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

JOBS = ("tiny2", "tiny4", "com-u16", "sumoversig-u16", "sum-u16", "masks-u16")


def load_revision(rev: str):
    """The dask executor module of git revision ``rev`` (imported under another name)."""
    src = subprocess.run(
        ["git", "show", f"{rev}:udfwidgets/executor/dask_executor.py"],
        cwd=HERE,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = os.path.join(tempfile.mkdtemp(), "dask_executor_before.py")
    with open(path, "w") as fh:
        fh.write(src)
    spec = importlib.util.spec_from_file_location("udfwidgets.executor.dask_executor_before", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def local_cluster(config: dict):
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
    return cluster, Client(cluster)


def loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def ab(args) -> None:
    from _data import F32, U16, ensure
    from _engines import ours_namespace
    from _workloads import workloads
    from udfwidgets import Context
    from udfwidgets.executor.dask_executor import WORKER_CONFIG, DaskExecutor
    from udfwidgets.udf.sum import SumUDF

    before = load_revision(args.before)
    jobs = args.jobs.split(",")
    files = {"u16": U16, "f32": F32}
    for job in jobs:
        if job not in ("tiny2", "tiny4"):
            ensure(files[job.rsplit("-", 1)[1]])
    print(f"load average before: {loadavg()}")
    cl_b, client_b = local_cluster(dict(getattr(before, "WORKER_CONFIG", {})))
    cl_a, client_a = local_cluster(dict(WORKER_CONFIG))
    ctxs = {
        "processes": Context(executor="processes", n_jobs=2),
        "before": Context(executor=before.DaskExecutor(client=client_b)),
        "after": Context(executor=DaskExecutor(client=client_a)),
    }
    ns = ours_namespace()
    runs = {}
    for name, ctx in ctxs.items():
        small = np.ones((4, 8, 16, 16), np.float32)
        runs[name] = {
            "tiny2": (ctx.load("memory", data=small, num_partitions=2), SumUDF()),
            "tiny4": (ctx.load("memory", data=small, num_partitions=4), SumUDF()),
        }
        for job in jobs:
            if job in runs[name]:
                continue
            workload, which = job.rsplit("-", 1)
            f = files[which]
            ds = ctx.load("raw", path=f.path, nav_shape=f.nav, sig_shape=f.sig, dtype=f.dtype)
            runs[name][job] = (ds, workloads(lambda d, f=f: f.sig)[workload].make_ours(ns, f.sig))
    times: dict[tuple[str, str], list[float]] = {}
    for rep in range(args.reps + 2):  # two warm-up rounds
        order = list(ctxs) if rep % 2 == 0 else list(ctxs)[::-1]
        for job in jobs:
            for name in order:
                ds, udf = runs[name][job]
                t0 = time.perf_counter()
                ctxs[name].run_udf(dataset=ds, udf=udf)
                if rep >= 2:
                    times.setdefault((job, name), []).append(time.perf_counter() - t0)
    print(f"load average after: {loadavg()}")
    print(f"\n{args.reps} interleaved repetitions; before = {args.before}\n")
    print(
        "| job | processes | dask before | dask after | before / proc | after / proc "
        "| after / before (paired) |"
    )
    print("|---|---|---|---|---|---|---|")
    for job in jobs:
        m = {n: statistics.median(times[job, n]) for n in ctxs}
        paired = statistics.median(a / b for a, b in zip(times[job, "after"], times[job, "before"]))
        print(
            f"| {job} | {m['processes'] * 1e3:.1f} ms | {m['before'] * 1e3:.1f} ms "
            f"| {m['after'] * 1e3:.1f} ms | {m['before'] / m['processes']:.2f}x "
            f"| {m['after'] / m['processes']:.2f}x | {paired:.2f} |"
        )
    for ctx in ctxs.values():
        ctx.close()
    for c in (client_a, cl_a, client_b, cl_b):
        c.close()


def idle_once(config: dict, seconds: float = 5.0) -> dict:
    cluster, client = local_cluster(config)
    time.sleep(2.0)
    w0, c0, t0 = client.run(time.process_time), time.process_time(), time.perf_counter()
    time.sleep(seconds)
    w1, c1, t1 = client.run(time.process_time), time.process_time(), time.perf_counter()
    out = {
        "main": 100 * (c1 - c0) / (t1 - t0),
        "workers": [100 * (w1[k] - w0[k]) / (t1 - t0) for k in sorted(w0)],
    }
    client.close()
    cluster.close()
    return out


def idle(args) -> None:
    print(f"load average before: {loadavg()}")
    print("| config | main process (% of a core) | each worker (% of a core) |")
    print("|---|---|---|")
    for _ in range(args.rounds):
        for which in ("before", "after"):
            out = subprocess.run(
                [sys.executable, __file__, "--idle-child", which, "--before", args.before],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            workers = ", ".join(f"{w:.1f}" for w in r["workers"])
            print(f"| {which}: {r['config']} | {r['main']:.1f} | {workers} |")
    print(f"load average after: {loadavg()}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", default="main", help="git revision to compare with")
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--jobs", default=",".join(JOBS))
    ap.add_argument("--idle", action="store_true", help="idle CPU of a cluster instead")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--idle-child", choices=["before", "after"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.idle_child:
        if args.idle_child == "before":
            config = dict(getattr(load_revision(args.before), "WORKER_CONFIG", {}))
        else:
            from udfwidgets.executor.dask_executor import WORKER_CONFIG

            config = dict(WORKER_CONFIG)
        print(json.dumps(dict(idle_once(config), config=config)))
    elif args.idle:
        idle(args)
    else:
        ab(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
