"""Run one workload on one engine in a loop, for a profiler to watch.

Examples
--------
Sample it with py-spy (``pip install py-spy``), workers included::

    py-spy record --subprocesses -o /tmp/sumoversig.svg -- \\
        python benchmarks/_profile.py sumoversig uw-inline --seconds 10

or time the breakdown of one run with cProfile::

    python benchmarks/_profile.py max uw-inline --cprofile
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _data
from _engines import make_engine
from _workloads import workloads


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("workload")
    p.add_argument("engine")
    p.add_argument("--file", default="f32", choices=["f32", "u16", "small"])
    p.add_argument("--seconds", type=float, default=10.0, help="keep running this long")
    p.add_argument("--cprofile", action="store_true", help="print a cProfile of one run")
    args = p.parse_args(argv)
    f = {"f32": _data.F32, "u16": _data.U16, "small": _data.F32_QUICK}[args.file]
    _data.ensure(f)
    _data.warm(f)
    w = workloads(lambda d: f.sig)[args.workload]
    eng = make_engine(args.engine)
    eng.open(f)
    eng.run(w, f)
    if args.cprofile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        eng.run(w, f)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    else:
        end = time.perf_counter() + args.seconds
        n, t_all = 0, 0.0
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            eng.run(w, f)
            t_all += time.perf_counter() - t0
            n += 1
        print(f"{args.workload} on {args.engine}: {n} runs, mean {t_all / n * 1e3:.1f} ms")
    eng.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
