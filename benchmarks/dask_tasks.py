"""Where a dask run's time goes, task by task, next to the processes executor.

Runs one workload on the 1 GiB float32 (or 512 MiB uint16) file on a 2-worker
``LocalCluster`` (processes, 127.0.0.1) and on the processes executor,
interleaved, and prints for every task: the worker process, the partition, the
task thread's CPU time and its wall time inside the worker (``time.thread_time``
and ``time.perf_counter`` around ``run_partition``), and the run's wall time.
CPU time is far less sensitive to a busy machine than wall time: a task whose
thread CPU time is several times that of the same partition elsewhere does more
work, or the same work slower (this is how the unaligned-buffer ``memcpy`` was
found: the second task of each dask worker took 3-4x the CPU of the first).

``--memcpy`` times ``dst[:] = src`` of a 64 KiB frame for sources and
destinations at offsets 0/16/32/48 bytes from a cache line (glibc's ``memcpy``
on AMD Zen was 13-25x slower when the destination lies 16 bytes further into its
cache line than the source; never with a 64-byte aligned destination).

Examples
--------
::

    python benchmarks/dask_tasks.py --workload max --file f32 --reps 3
    python benchmarks/dask_tasks.py --workload max --partitions 8 --profiler
    python benchmarks/dask_tasks.py --memcpy
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _data import F32, U16, ensure  # noqa: E402
from _engines import dask_worker_config, ours_namespace  # noqa: E402


def timed_partition(task):
    """``run_partition(task)`` with the task thread's CPU and wall time (run in the worker)."""
    from udfwidgets.executor import task as task_module

    if os.environ.get("UW_BENCH_LEGACY_BUFFERS"):

        def legacy_zeros(shape, dtype):  # NumPy's own allocation: 16-byte aligned
            return np.zeros(shape, dtype=dtype)

        task_module.zeros = legacy_zeros
    run_partition = task_module.run_partition
    t0, c0 = time.perf_counter(), time.thread_time()
    out = run_partition(task)
    t1, c1 = time.perf_counter(), time.thread_time()
    return out, {
        "pid": os.getpid(),
        "index": task.partition.index,
        "cpu_ms": 1e3 * (c1 - c0),
        "wall_ms": 1e3 * (t1 - t0),
    }


def memcpy_table(n: int = 65536, reps: int = 400) -> list[str]:
    """Best time of ``dst[:] = src`` (64 KiB) for each offset of source and destination
    from a cache line."""
    buf = np.empty(1 << 22, np.uint8)
    base = -buf.ctypes.data % 4096
    offsets = (0, 16, 32, 48)
    rows = ["| src offset \\ dst offset | " + " | ".join(map(str, offsets)) + " |"]
    rows.append("|---" * (len(offsets) + 1) + "|")
    for src_off in offsets:
        cells = []
        for dst_off in offsets:
            src = buf[base + src_off : base + src_off + n]
            dst = buf[base + (1 << 21) + dst_off : base + (1 << 21) + dst_off + n]
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(reps // 5):
                    dst[:] = src
                best = min(best, (time.perf_counter() - t0) / (reps // 5))
            cells.append(f"{best * 1e6:.1f} us")
        rows.append(f"| {src_off} | " + " | ".join(cells) + " |")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="max", choices=["max", "sumoversig", "sum", "busy"])
    ap.add_argument("--file", default="f32", choices=["f32", "u16"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--partitions", type=int, default=None, help="num_partitions (default: each executor's own)"
    )
    ap.add_argument(
        "--profiler", action="store_true", help="keep dask's statistical profiler on in the workers"
    )
    ap.add_argument(
        "--legacy-buffers",
        action="store_true",
        help="allocate UDF buffers with plain np.zeros (16-byte aligned), as before 2026-12-07",
    )
    ap.add_argument("--memcpy", action="store_true", help="only the memcpy alignment table")
    args = ap.parse_args(argv)
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    if args.memcpy:
        print("\n".join(memcpy_table()))
        return

    import dask
    from distributed import Client, LocalCluster

    from udfwidgets import Context
    from udfwidgets.executor.run import UDFRun

    f = ensure({"f32": F32, "u16": U16}[args.file])
    ns = ours_namespace()
    make = {
        "max": lambda: ns.MaxUDF(),
        "sumoversig": lambda: ns.SumOverSig(),
        "sum": lambda: ns.SumUDF(),
        "busy": lambda: ns.Busy(0.05),
    }[args.workload]
    if args.legacy_buffers:  # read by timed_partition in every worker (they inherit it)
        os.environ["UW_BENCH_LEGACY_BUFFERS"] = "1"
    config = {} if args.profiler else dask_worker_config()
    with dask.config.set(config):
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        )
    client = Client(cluster)
    contexts = {
        "dask": Context(executor="dask", client=client),
        "processes": Context(executor="processes", n_jobs=2),
    }
    print(f"dask worker config: {config or 'default'}; legacy buffers: {args.legacy_buffers}")
    try:
        for rep in range(args.reps + 1):  # the first round warms up
            for name, ctx in contexts.items():
                ds = ctx.load(
                    "raw",
                    path=f.path,
                    nav_shape=f.nav,
                    sig_shape=f.sig,
                    dtype=f.dtype,
                    num_partitions=args.partitions,
                )
                run = UDFRun(ds, [make()], ctx.executor)
                t0 = time.perf_counter()
                infos = [
                    info for _, info in ctx.executor.imap_unordered(timed_partition, run.tasks())
                ]
                wall = 1e3 * (time.perf_counter() - t0)
                if not rep:
                    continue
                per_worker: dict[int, list[str]] = {}
                for i in infos:  # in the order they finished
                    per_worker.setdefault(i["pid"], []).append(
                        f"p{i['index']} {i['cpu_ms']:.0f}/{i['wall_ms']:.0f}"
                    )
                tasks = " | ".join(", ".join(v) for v in per_worker.values())
                print(f"{name:9s} rep {rep}: run {wall:6.0f} ms; per worker, cpu/wall ms: {tasks}")
    finally:
        for ctx in contexts.values():
            ctx.close()
        client.close()
        cluster.close()
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
