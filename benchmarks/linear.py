"""The linear UDFs at the streaming limit (issue 15): whole-frame masks and CoM against SumUDF.

    python benchmarks/linear.py                      # f32 and u16 files, 7 repetitions
    python benchmarks/linear.py --files f32 --reps 5 --out /tmp/linear.md
    UDFWIDGETS_NUMBA=0 python benchmarks/linear.py   # udfwidgets' NumPy-only path

Three workloads on the same file: ``SumUDF``, ``ApplyMasksUDF`` with four
dense float32 masks that cover every pixel (``masks-dense``: no pixel span to
skip) and ``CoMUDF`` with its default whole-frame centre of mass
(``com-full``; LiberTEM: ``CoMUDF.with_params()``), run by udfwidgets'
processes executor (2 workers) and LiberTEM 0.16's executors when the
interpreter has LiberTEM (run it with the LiberTEM venv, see README.md).

Every (workload, engine) pair is checked against a NumPy reference before it
is timed (float64 for the two whole-frame workloads), then every repetition
runs every pair once, in an order rotated per repetition, so that the ratios
ApplyMasks/SumUDF, CoM/SumUDF and ours/LiberTEM's best come from neighbouring
runs on a busy machine. A second part times the per-tile kernels in this
process (one core, half the file, interleaved): a plain sum, NumPy's blocked
BLAS product and the compiled (numba) product, which shows what limits each.

The Markdown report is printed and written to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np

import _data
import _engines
from _workloads import check, make_dense_masks, run_numpy, workloads
from run import fmt_s, settle_malloc

WORKLOADS = ("sum", "masks-dense", "com-full")
ENGINES = ("uw-processes", "lt-inline", "lt-threads", "lt-pipelined", "lt-dask")
#: issue 15's targets: at most this times SumUDF's time, at least this much faster than LT
MAX_VS_SUM, MIN_VS_LT = 1.3, 1.5


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def bench_engines(files, engines, reps):
    """``{(workload, file, engine): {"times": [...], "first": s}}`` or ``{"status": why}``."""
    wl = workloads(lambda d: None)
    res: dict = {}
    for f in files:
        _data.warm(f)
        pairs = []
        for wname in WORKLOADS:
            w = wl[wname]
            t0 = time.perf_counter()
            ref = run_numpy(w, f.memmap(), 1)
            log(f"{f.name} {wname}: reference in {time.perf_counter() - t0:.1f} s")
            for eng in engines:
                key = (wname, f.name, eng.name)
                why = eng.supports(w)
                if why:
                    res[key] = {"status": f"n/a: {why}"}
                    continue
                try:
                    eng.open(f)
                    t0 = time.perf_counter()
                    got = eng.run(w, f, eng.make_udf(w, f))
                    first = time.perf_counter() - t0
                except Exception as e:  # an engine that fails is reported, not fatal
                    res[key] = {"status": f"error: {type(e).__name__}: {str(e)[:120]}"}
                    log(f"  {eng.name} {wname}: {type(e).__name__}: {e}")
                    continue
                bad = check(w, got, ref)
                if bad:
                    res[key] = {"status": f"MISMATCH: {bad}"}
                    log(f"  {eng.name} {wname}: MISMATCH {bad}")
                    continue
                res[key] = {"status": "ok", "first": first, "times": []}
                pairs.append((w, eng))
        for rep in range(reps):
            _data.warm(f)
            k = rep % max(1, len(pairs))
            for w, eng in pairs[k:] + pairs[:k]:
                udf = eng.make_udf(w, f)
                t0 = time.perf_counter()
                eng.run(w, f, udf)
                res[(w.name, f.name, eng.name)]["times"].append(time.perf_counter() - t0)
            log(f"{f.name} rep {rep + 1}/{reps} done, load {loadavg()}")
    return res


def per_rep_ratio(a: list[float], b: list[float]) -> float:
    """Median of the ratios of neighbouring runs (same repetition)."""
    return statistics.median(x / y for x, y in zip(a, b))


def engine_tables(res, files, engine_names) -> tuple[list[str], list[str]]:
    lines = [
        "| file | workload | engine | median | min-max | GB/s | vs SumUDF, same engine "
        "(median of per-rep ratios) | LT best / this | 1st run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    targets = [
        "| file | target | measured | status |",
        "|---|---|---|---|",
    ]
    labels = {"sum": "SumUDF", "masks-dense": "ApplyMasksUDF x4 dense", "com-full": "CoMUDF()"}
    for f in files:
        for wname in WORKLOADS:
            lt = [
                (statistics.median(r["times"]), n)
                for n in engine_names
                if n.startswith("lt-") and (r := res.get((wname, f.name, n), {})).get("times")
            ]
            lt_best = min(lt) if lt else None
            for n in engine_names:
                r = res.get((wname, f.name, n))
                if r is None:
                    continue
                row = f"| {f.name.split('_')[0]} | {labels[wname]} | {n} |"
                if not r.get("times"):
                    lines.append(row + f" - | - | - | - | - | {r['status']} |")
                    continue
                t = r["times"]
                med = statistics.median(t)
                s = res.get(("sum", f.name, n), {}).get("times")
                vs_sum = "-"
                if s and wname != "sum":
                    vs_sum = f"{med / statistics.median(s):.2f}x ({per_rep_ratio(t, s):.2f}x)"
                vs_lt = f"{lt_best[0] / med:.2f}x" if lt_best else "-"
                lines.append(
                    row + f" {fmt_s(med)} | {fmt_s(min(t))}-{fmt_s(max(t))} | "
                    f"{f.nbytes / med / 1e9:.1f} | {vs_sum} | {vs_lt} | {fmt_s(r['first'])} |"
                )
                if n == "uw-processes" and wname != "sum" and s:
                    ratio = med / statistics.median(s)
                    targets.append(
                        f"| {f.name.split('_')[0]} | {labels[wname]} within {MAX_VS_SUM}x of "
                        f"SumUDF (uw-processes) | {ratio:.2f}x (per-rep {per_rep_ratio(t, s):.2f}x;"
                        f" {fmt_s(med)} vs {fmt_s(statistics.median(s))}) | "
                        f"{'met' if ratio <= MAX_VS_SUM else '**missed**'} |"
                    )
                    if lt_best:
                        targets.append(
                            f"| {f.name.split('_')[0]} | {labels[wname]} at least {MIN_VS_LT}x "
                            f"faster than LiberTEM's best | {lt_best[0] / med:.2f}x "
                            f"({fmt_s(med)} vs {fmt_s(lt_best[0])} {lt_best[1]}) | "
                            f"{'met' if lt_best[0] / med >= MIN_VS_LT else '**missed**'} |"
                        )
    return targets, lines


# --- per-tile kernels, one core -----------------------------------------------------------
def bench_kernels(f, reps) -> list[str]:
    """Single-thread time over half the file, 4 MiB tiles, per kernel (interleaved)."""
    from threadpoolctl import threadpool_limits

    from udfwidgets.udf import _products as P

    mm = f.memmap()
    n = len(mm) // 2
    h, w = f.sig
    pixels = h * w
    per_tile = max(1, (4 << 20) // (pixels * mm.dtype.itemsize))
    masks = make_dense_masks((h, w)).reshape(4, -1).T.copy()
    yy, xx = np.indices((h, w), dtype=np.float64)
    com = np.stack([np.ones(pixels), (yy - h / 2).ravel(), (xx - w / 2).ravel()], axis=1)
    com = com.astype(np.float32)
    packed_m, packed_c = P.pack_weights(masks), P.pack_weights(com)

    def tiles():
        for a in range(0, n, per_tile):
            t = mm[a : min(n, a + per_tile)]
            yield t, t.reshape(len(t), -1)

    def k_sum():
        acc = np.zeros((h, w), np.float32)
        for t, _ in tiles():
            acc += t.sum(axis=0, dtype=np.float32)

    kernels = {"tile.sum(axis=0) (SumUDF's work)": k_sum}
    for name, wts, packed in (("4 dense masks", masks, packed_m), ("CoM weights", com, packed_c)):
        kernels[f"{name}: NumPy, BLAS sgemm in blocks"] = lambda wts=wts: [
            P.float32_product(flat, wts) for _, flat in tiles()
        ]
        if packed is not None:
            kernels[f"{name}: compiled kernel"] = lambda wts=wts, packed=packed: [
                P.float32_product(flat, wts, packed=packed) for _, flat in tiles()
            ]
    times: dict[str, list[float]] = {k: [] for k in kernels}
    with threadpool_limits(1):
        for fn in kernels.values():  # compile, map the pages
            fn()
        for rep in range(reps):
            names = list(kernels)
            names = names[rep % len(names) :] + names[: rep % len(names)]
            for k in names:
                t0 = time.perf_counter()
                kernels[k]()
                times[k].append(time.perf_counter() - t0)
    base = statistics.median(times["tile.sum(axis=0) (SumUDF's work)"])
    lines = [
        "| kernel | median | GB/s | vs sum |",
        "|---|---|---|---|",
    ]
    nbytes = n * pixels * mm.dtype.itemsize
    for k, t in times.items():
        med = statistics.median(t)
        lines.append(f"| {k} | {fmt_s(med)} | {nbytes / med / 1e9:.1f} | {med / base:.2f}x |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", default="f32,u16")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--no-kernels", action="store_true", help="skip the per-tile kernel table")
    p.add_argument("--out", default=os.path.join(HERE, "results", "linear-latest.md"))
    args = p.parse_args(argv)
    settle_malloc()
    load_start = loadavg()
    files = [{"f32": _data.F32, "u16": _data.U16}[k] for k in args.files.split(",") if k]
    for f in files:
        _data.ensure(f, log)
    names = [e for e in args.engines.split(",") if e]
    lt_version = _engines.lt_available()
    if not lt_version:
        log("LiberTEM is not importable here: its engines are skipped")
        names = [e for e in names if not e.startswith("lt-")]
    import udfwidgets
    from udfwidgets.udf._products import get_kernel

    engines = [_engines.make_engine(n) for n in names]
    try:
        res = bench_engines(files, engines, args.reps)
    finally:
        for e in engines:
            try:
                e.close()
            except Exception:
                pass
    targets, table = engine_tables(res, files, names)
    head = subprocess.run(
        ["git", "-C", os.path.dirname(HERE), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", os.path.dirname(HERE), "status", "--porcelain", "--", "udfwidgets"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    kernel = "compiled (numba)" if get_kernel() is not None else "NumPy only (BLAS blocks)"
    report = [
        "# Linear UDFs at the streaming limit (`benchmarks/linear.py`)",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- udfwidgets {udfwidgets.__version__} from `{os.path.dirname(udfwidgets.__file__)}`, "
        f"at `{head[:70]}`" + (" (uncommitted changes in udfwidgets/)" if dirty else ""),
        f"- udfwidgets' product path: {kernel} "
        f"(UDFWIDGETS_NUMBA={os.environ.get('UDFWIDGETS_NUMBA', 'unset')})",
        f"- LiberTEM: {lt_version or 'not installed'}; NumPy {np.__version__}; "
        f"{os.cpu_count()} cores",
        f"- repetitions: {args.reps}, interleaved (workloads and engines in a rotated order)",
        f"- load average (1, 5, 15 min) at start: {load_start}",
        "",
        "## Targets (issue 15)",
        "",
        *targets,
        "",
        "## Times",
        "",
        "`vs SumUDF`: median time of the workload / median time of SumUDF on the same "
        "file and engine (in brackets: the median of the per-repetition ratios). "
        "`LT best / this`: LiberTEM's fastest executor's median / this median.",
        "",
        *table,
    ]
    if not args.no_kernels:
        for f in files:
            log(f"kernels on {f.name}")
            _data.warm(f)
            report += [
                "",
                f"## Per-tile kernels, one core ({f.name.split('_')[0]}, half the file, "
                f"4 MiB tiles, median of {args.reps})",
                "",
                *bench_kernels(f, args.reps),
            ]
    report += ["", f"- load average at end: {loadavg()}", ""]
    text = "\n".join(report)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write(text)
    log(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
