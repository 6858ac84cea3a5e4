"""Measurements that need a fresh process: time to first result and peak memory.

Each probe runs a short script in a new interpreter (``sys.executable``), which
samples the resident memory of itself and of its child processes (workers)
from ``/proc`` every few milliseconds and prints one JSON line at the end.
Anonymous memory (``RssAnon``: heap, copies, result buffers) is reported apart
from file-backed pages (``RssFile``: pages of the memory-mapped input file,
which the kernel can drop at any time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

#: the sampler, pasted at the top of every probe script (kept dependency-free)
SAMPLER = r"""
import os, threading, time
def _status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS", "RssAnon", "RssFile", "VmHWM")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return out
def _children(pid):
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids += [int(p) for p in fh.read().split()]
    except OSError:
        pass
    return kids
class Sampler(threading.Thread):
    def __init__(self, period=0.01):
        super().__init__(daemon=True)
        self.period = period
        self.peak = {"main_anon": 0, "main_rss": 0, "workers_anon": 0, "worker_anon_max": 0,
                     "tree_rss": 0}
        self.stop = False
    def sample(self):
        me = os.getpid()
        s = _status(me)
        p = self.peak
        p["main_anon"] = max(p["main_anon"], s.get("RssAnon", 0))
        p["main_rss"] = max(p["main_rss"], s.get("VmRSS", 0))
        todo, seen, anon, rss = _children(me), set(), 0, s.get("VmRSS", 0)
        while todo:
            c = todo.pop()
            if c in seen:
                continue
            seen.add(c)
            cs = _status(c)
            anon += cs.get("RssAnon", 0)
            rss += cs.get("VmRSS", 0)
            p["worker_anon_max"] = max(p["worker_anon_max"], cs.get("RssAnon", 0))
            todo += _children(c)
        p["workers_anon"] = max(p["workers_anon"], anon)
        p["tree_rss"] = max(p["tree_rss"], rss)
    def run(self):
        while not self.stop:
            self.sample()
            time.sleep(self.period)
    def finish(self):
        self.stop = True
        self.sample()
        self.peak["main_hwm"] = _status(os.getpid()).get("VmHWM", 0)
        return self.peak
_SAMPLER = Sampler()
_SAMPLER.start()
"""

#: the end of both first-result scripts: run SumUDF, report the times of each step
_FIRST_TAIL = r"""res = ctx.run_udf(dataset=ds, udf=SumUDF())
v = float(res["intensity"].data.sum())
T4 = time.perf_counter()
print("RESULT " + json.dumps({"import": T1 - T0, "context": T2 - T1, "load": T3 - T2,
      "run": T4 - T3, "total_in_process": T4 - T0, "value": v, "peak": _SAMPLER.finish()}),
      flush=True)
ctx.close()
"""

#: time to first result, the way a user writes it: import, Context, load, run
FIRST_OURS = (
    r"""
import time, json, sys
T0 = time.perf_counter()
from udfwidgets import Context
from udfwidgets.udf.sum import SumUDF
T1 = time.perf_counter()
ctx = Context(executor=EXECUTOR)
T2 = time.perf_counter()
ds = ctx.load("raw", path=PATH, nav_shape=NAV, sig_shape=SIG, dtype=DTYPE)
T3 = time.perf_counter()
"""
    + _FIRST_TAIL
)

FIRST_LT = (
    r"""
import time, json, sys
T0 = time.perf_counter()
from libertem.api import Context
from libertem.udf.sum import SumUDF
T1 = time.perf_counter()
if EXECUTOR == "dask":  # LiberTEM's default executor, on the loopback interface
    sys.path.insert(0, HERE)
    from _ltlocal import loopback_dask_executor
    ctx = Context(executor=loopback_dask_executor())
else:
    ctx = Context.make_with(EXECUTOR)
T2 = time.perf_counter()
ds = ctx.load("raw", path=PATH, nav_shape=NAV, sig_shape=SIG, dtype=DTYPE)
T3 = time.perf_counter()
"""
    + _FIRST_TAIL
)

#: one workload on one engine in a fresh process, for peak memory
WORKLOAD = r"""
import time, json, sys
sys.path.insert(0, HERE)
from _data import RawFile
from _engines import make_engine
from _workloads import workloads
f = RawFile(*FILE)
w = workloads(lambda d: f.sig)[WORKLOAD_NAME]
eng = make_engine(ENGINE)
eng.open(f)
t0 = time.perf_counter()
res = eng.run(w, f)
t1 = time.perf_counter()
print("RESULT " + json.dumps({"run": t1 - t0, "peak": _SAMPLER.finish()}), flush=True)
eng.close()
"""


def _script(template: str, **consts) -> str:
    head = "".join(f"{k} = {v!r}\n" for k, v in consts.items())
    return SAMPLER + head + template


def run_probe(
    template: str,
    timeout: float = 300,
    python: str | None = None,
    env: dict | None = None,
    **consts,
) -> dict:
    """Run a probe script in a fresh interpreter; return its JSON plus ``wall`` seconds.

    ``wall`` runs from starting the interpreter to the moment the result line
    arrives (interpreter start-up included, shutdown excluded).
    """
    code = _script(template, **consts)
    t0 = time.perf_counter()
    errfile = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(
        [python or sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=errfile,
        text=True,
        cwd=HERE,
        env=env if env is not None else os.environ.copy(),
    )
    result = None
    try:
        deadline = t0 + timeout
        for line in proc.stdout:
            if line.startswith("RESULT "):
                wall = time.perf_counter() - t0
                result = json.loads(line[7:])
                result["wall"] = wall
                break
            if time.perf_counter() > deadline:
                break
        try:
            proc.wait(timeout=max(5.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if result is None:
        errfile.seek(0)
        err = errfile.read()[-2000:]
        return {"error": f"probe gave no result (exit {proc.returncode}): {err.strip()}"}
    return result
