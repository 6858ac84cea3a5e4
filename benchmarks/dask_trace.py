"""Where a short dask run spends its time: a timeline of each task, from the worker to the main thread.

Runs one workload of ``run.py`` on a 2-worker ``LocalCluster`` (processes,
127.0.0.1, ``WORKER_CONFIG``) and records, for each run and task:

* ``start`` / ``end``: the task's state changes on its worker
  (``executing``, ``memory``), from a worker plugin;
* ``sched``: the scheduler's ``memory`` transition (a scheduler plugin; the
  scheduler of a ``LocalCluster`` runs in this process);
* ``client``: the client's future of the task finishing;
* ``yield``: the dask executor handing the result to the run (main thread);
* ``return``: ``run_udf`` returning.

All times are ``time.monotonic()`` in ms from the ``run_udf`` call; the clock
is the same in every process of the machine. A run on the processes executor
with the same partitions comes before each dask run, for its total.

Prints the timeline of the first ``--show`` runs and the medians over all runs
of the last task's path (worker end -> scheduler -> client -> main thread ->
return) and of the tasks' durations (first and second task of a worker).

Examples
--------
::

    python benchmarks/dask_trace.py --workload com --file u16 --runs 15
    python benchmarks/dask_trace.py --workload sum --file f32 --num-partitions 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

_SCHEDULER: list[tuple[float, str]] = []  # (time, key) of the scheduler's memory transitions


def _plugins():
    from distributed import SchedulerPlugin, WorkerPlugin

    class SchedulerTrace(SchedulerPlugin):
        def transition(self, key, start, finish, *args, **kwargs):
            if finish == "memory" and "udfwidgets" in str(key):
                _SCHEDULER.append((time.monotonic(), str(key)))

    class WorkerTrace(WorkerPlugin):
        name = "udfwidgets-trace"

        def setup(self, worker):
            self.log = []

        def transition(self, key, start, finish, **kwargs):
            if finish in ("executing", "memory") and "udfwidgets" in str(key):
                self.log.append((time.monotonic(), str(key), finish))

    return SchedulerTrace(), WorkerTrace()


def _worker_log(dask_worker=None):
    plugin = dask_worker.plugins["udfwidgets-trace"]
    out, plugin.log = plugin.log, []
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", default="com")
    ap.add_argument("--file", choices=["u16", "f32"], default="u16")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--show", type=int, default=3)
    ap.add_argument("--num-partitions", type=int, default=None, help="default: the executor's")
    args = ap.parse_args(argv)

    import distributed.client as dclient

    from _data import F32, U16, ensure
    from _engines import ours_namespace
    from _workloads import workloads
    from dask_graphs_ab import loadavg, local_cluster
    from udfwidgets import Context
    from udfwidgets.executor import dask_executor as de

    f = ensure({"u16": U16, "f32": F32}[args.file])
    cluster, client = local_cluster(dict(de.WORKER_CONFIG))
    scheduler_plugin, worker_plugin = _plugins()
    cluster.scheduler.add_plugin(scheduler_plugin)
    client.register_plugin(worker_plugin)

    finished: list[float] = []
    finish = dclient.FutureState.finish

    def traced_finish(self, *a, **k):
        finished.append(time.monotonic())
        return finish(self, *a, **k)

    dclient.FutureState.finish = traced_finish
    yields: list[float] = []
    stream = de.DaskExecutor._stream

    def traced_stream(self, *a, **k):
        for result in stream(self, *a, **k):
            yields.append(time.monotonic())
            yield result

    de.DaskExecutor._stream = traced_stream

    ctx = Context(executor=de.DaskExecutor(client=client))
    proc = Context(executor="processes", n_jobs=2)
    udf = workloads(lambda d: f.sig)[args.workload].make_ours(ours_namespace(), f.sig)
    kw = dict(path=f.path, nav_shape=f.nav, sig_shape=f.sig, dtype=f.dtype)
    if args.num_partitions:
        kw["num_partitions"] = args.num_partitions
    ds, pds = ctx.load("raw", **kw), proc.load("raw", **kw)
    for _ in range(3):
        ctx.run_udf(dataset=ds, udf=udf)
        proc.run_udf(dataset=pds, udf=udf)
    client.run(_worker_log)
    print(f"load average before: {loadavg()}")
    print(f"{args.workload} on the {args.file} file, {args.runs} runs\n")

    totals, path, first, second = [], [], [], []
    for run in range(args.runs):
        t = time.monotonic()
        proc.run_udf(dataset=pds, udf=udf)
        p_total = time.monotonic() - t
        _SCHEDULER.clear(), finished.clear(), yields.clear()
        t0 = time.monotonic()
        ctx.run_udf(dataset=ds, udf=udf)
        t1 = time.monotonic()
        tasks: dict[str, dict] = {}
        for addr, log in client.run(_worker_log).items():
            for when, key, state in log:
                tasks.setdefault(key, {"worker": addr})[state] = when
        for when, key in _SCHEDULER:
            tasks.setdefault(key, {})["sched"] = when

        def ms(v: float, t0: float = t0) -> float:
            return 1e3 * (v - t0)

        totals.append((p_total, t1 - t0))
        last = max(tasks.values(), key=lambda e: e["memory"])
        path.append(
            (
                ms(last["sched"]) - ms(last["memory"]),
                ms(max(finished)) - ms(last["sched"]),
                ms(max(yields)) - ms(max(finished)),
                ms(t1) - ms(max(yields)),
            )
        )
        by_worker: dict[str, list] = {}
        for e in tasks.values():
            by_worker.setdefault(e["worker"], []).append(e)
        for es in by_worker.values():
            es.sort(key=lambda e: e["executing"])
            first.append(1e3 * (es[0]["memory"] - es[0]["executing"]))
            second += [1e3 * (e["memory"] - e["executing"]) for e in es[1:]]
        if run < args.show:
            print(f"run {run}: dask {1e3 * (t1 - t0):.1f} ms, processes {1e3 * p_total:.1f} ms")
            for key in sorted(tasks, key=lambda k: tasks[k]["executing"]):
                e = tasks[key]
                print(
                    f"  task {key.rsplit('-', 1)[1]} on {e['worker']}: start {ms(e['executing']):.1f}"
                    f"  end {ms(e['memory']):.1f}  sched {ms(e['sched']):.1f}"
                )
            print(
                "  client finished: "
                + ", ".join(f"{ms(v):.1f}" for v in finished)
                + "; yields: "
                + ", ".join(f"{ms(v):.1f}" for v in yields)
                + f"; return {ms(t1):.1f}\n"
            )
    print(f"load average after: {loadavg()}\n")
    med = statistics.median
    print(
        f"median run: dask {1e3 * med(d for _, d in totals):.1f} ms, processes "
        f"{1e3 * med(p for p, _ in totals):.1f} ms"
    )
    names = (
        "worker end -> scheduler",
        "scheduler -> client future",
        "client future -> main thread",
        "main thread -> run returns",
    )
    print(
        "last task's path, median ms: "
        + ", ".join(f"{n} {med(p[i] for p in path):.1f}" for i, n in enumerate(names))
    )
    print(
        f"task durations, median ms: first of a worker {med(first):.1f}"
        + (f", later ones {med(second):.1f} ({len(second)} tasks)" if second else "")
    )
    ctx.close()
    proc.close()
    client.close()
    cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
