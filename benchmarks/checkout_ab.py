"""Two checkouts of udfwidgets on the same file, interleaved: warm run time and worker memory.

Each checkout (``--a``, ``--b``: a directory holding the ``udfwidgets``
package, e.g. ``/work/main`` and a worktree) runs in its own server process
(``PYTHONPATH`` = the checkout) with ``Context(executor="processes", n_jobs=2)``,
driven over a pipe, so that the two sides' runs alternate in one session
(order ``ab``, ``ba``, ``ab``, ...) and share the machine's load. Before every
timed run the file is read once into the page cache (warm). One untimed run
per side and workload comes first (workers started, file opened).

Workloads: ``sum`` (SumUDF over the whole scan), ``roi`` (SumUDF on a 1% roi,
the same random roi on both sides) and ``com`` (CoMUDF with its defaults). Reported per side and workload: the median
time, its ratio to side ``a``'s, the median of the ratios of each run to the run
of ``a`` next to it, and the workers' largest ``VmHWM`` (peak resident
size since the worker started, so it includes any memory map the worker keeps
between runs) and ``VmRSS`` after the last run. The results of the two sides
must agree (the sum of each result is compared).

    python benchmarks/checkout_ab.py --a /work/main --b . \\
        --file /tmp/udfw-formats-bench/scan-128x256-h5-gzip.h5 --reps 9
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SERVER = r"""
import json, os, sys, time
from pathlib import Path
import numpy as np
import udfwidgets
from udfwidgets import Context
from udfwidgets.udf.com import CoMUDF
from udfwidgets.udf.sum import SumUDF

ctx = Context(executor="processes", n_jobs=2)
me = os.getpid()


def workers():
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if f"PPid:\t{me}\n" in status and b"loky" in cmdline and b"resource_tracker" not in cmdline:
            out.append(int(pid))
    return out


def kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


print(json.dumps({"module": udfwidgets.__file__}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd.get("quit"):
        break
    ds = ctx.load("auto", path=cmd["path"])
    roi = None
    if cmd["workload"] == "roi":
        roi = np.random.default_rng(0).random(tuple(ds.shape.nav)) < 0.01
    udf, name = (CoMUDF(), "raw_com") if cmd["workload"] == "com" else (SumUDF(), "intensity")
    t0 = time.perf_counter()
    res = ctx.run_udf(dataset=ds, udf=udf, roi=roi)[name].data
    dt = time.perf_counter() - t0
    pids = workers()
    print(json.dumps({
        "seconds": dt,
        "check": float(np.nansum(np.asarray(res, np.float64))),
        "hwm_mib": max(kib(p, "VmHWM") for p in pids) / 1024,
        "rss_mib": max(kib(p, "VmRSS") for p in pids) / 1024,
    }), flush=True)
ctx.close()
"""


def warm(path: str) -> None:
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(64 << 20)
        while fh.readinto(buf):
            pass


class Side:
    def __init__(self, name: str, checkout: str, python: str):
        self.name = name
        self.checkout = os.path.abspath(checkout)
        env = dict(os.environ, PYTHONPATH=self.checkout)
        self.proc = subprocess.Popen(
            [python, "-c", SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=self.checkout,  # "python -c" puts the working directory first on sys.path
        )
        self.module = json.loads(self.proc.stdout.readline())["module"]
        if not self.module.startswith(self.checkout + os.sep):
            raise SystemExit(
                f"side {name}: udfwidgets came from {self.module}, not {self.checkout}"
            )

    def run(self, path: str, workload: str) -> dict:
        self.proc.stdin.write(json.dumps({"path": path, "workload": workload}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"side {self.name} ended (see its stderr above)")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="checkout A (the reference)")
    ap.add_argument("--b", required=True, help="checkout B")
    ap.add_argument("--file", required=True)
    ap.add_argument("--workloads", default="sum,roi")
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--append", default=None, help="append the markdown section to this file")
    args = ap.parse_args()
    load0 = open("/proc/loadavg").read().split()[:3]
    sides = [Side("a", args.a, args.python), Side("b", args.b, args.python)]
    res: dict = {}
    checks: dict = {}
    try:
        for w in args.workloads.split(","):
            for s in sides:  # untimed: workers started, file opened
                warm(args.file)
                s.run(args.file, w)
            for rep in range(args.reps):
                for s in sides if rep % 2 == 0 else sides[::-1]:
                    warm(args.file)
                    r = s.run(args.file, w)
                    res.setdefault((w, s.name), []).append(r)
                    checks.setdefault(w, {})[s.name] = r["check"]
                    print(
                        f"{w:4s} {s.name} {r['seconds']:.3f} s  hwm {r['hwm_mib']:.0f} MiB",
                        flush=True,
                    )
    finally:
        for s in sides:
            s.close()
    load1 = open("/proc/loadavg").read().split()[:3]
    lines = [
        f"## Checkout A/B, interleaved: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Command: `python benchmarks/checkout_ab.py {' '.join(sys.argv[1:])}`",
        f"a = `{sides[0].checkout}`, b = `{sides[1].checkout}`; file `{args.file}`.",
        f"Load average (1/5/15 min) at the start: {' / '.join(load0)} on {os.cpu_count()} cores.",
        f"{args.reps} interleaved repetitions per workload (order ab, ba, ...), warm, "
        "processes executor, 2 workers; median. Worker memory: the larger of the two workers' "
        "`VmHWM` (peak since the worker started) and `VmRSS` after the last run.",
        "",
        "| workload | side | median s | min s | median / a's | median of pair ratios to a | "
        "worker VmHWM MiB | worker VmRSS MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    bad = False
    for w in args.workloads.split(","):
        ref = statistics.median(r["seconds"] for r in res[(w, "a")])
        for s in sides:
            rs = res[(w, s.name)]
            med = statistics.median(r["seconds"] for r in rs)
            pairs = statistics.median(
                r["seconds"] / q["seconds"] for r, q in zip(rs, res[(w, "a")])
            )
            lines.append(
                f"| {w} | {s.name} | {med:.3f} | {min(r['seconds'] for r in rs):.3f} | "
                f"{med / ref:.3f} | {pairs:.3f} | {max(r['hwm_mib'] for r in rs):.0f} | "
                f"{rs[-1]['rss_mib']:.0f} |"
            )
        c = checks[w]
        if abs(c["a"] - c["b"]) > 1e-6 * abs(c["a"]) + 1e-3:
            bad = True
            lines.append(f"| {w} | results DIFFER: a {c['a']!r}, b {c['b']!r} | | | | | | |")
    lines += ["", f"Load average at the end: {' / '.join(load1)}.", ""]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with open(args.append, "a") as fh:
            fh.write("\n" + text)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
