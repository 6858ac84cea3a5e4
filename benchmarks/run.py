"""Side-by-side benchmark: udfwidgets against plain NumPy and LiberTEM.

Run ``python benchmarks/run.py`` (full run, several minutes) or
``python benchmarks/run.py --quick`` (smoke run on small files, under a
minute). LiberTEM is used when it can be imported (install it into a separate
environment, see ``benchmarks/README.md``); without it, its columns are left
out and everything else still runs.

Engines are interleaved within every repetition, in a rotating order, so that
ratios between engines survive a noisy, shared machine. Every engine's result
is checked against a plain NumPy reference before it is timed; an engine that
disagrees is reported as MISMATCH and not timed.

The Markdown report is printed and written to ``benchmarks/results-latest.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np

import _data
import _engines
import _probes
from _workloads import check, run_numpy, workloads

DEFAULT_WORKLOADS = (
    "sum",
    "sumsig",
    "sumoversig",
    "max",
    "stddev",
    "masks",
    "com",
    "empty",
    "busy",
)
DEFAULT_ENGINES = (
    "numpy-1t",
    "numpy-2t",
    "uw-inline",
    "uw-threads",
    "uw-processes",
    "lt-inline",
    "lt-dask",
    "lt-threads",
    "lt-pipelined",
)


#: figures collected for the targets table: "iter", "first", "mem", "big"
FIG: dict = {"iter": {}, "first": {}, "mem": {}, "big": {}}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --- statistics -------------------------------------------------------------------------
def summary(times: list[float]) -> dict:
    """Median, min, max and quartiles of repeated timings.

    Examples
    --------
    >>> summary([3.0, 1.0, 2.0])["median"]
    2.0
    """
    q = np.percentile(times, [25, 75]) if len(times) > 1 else (times[0], times[0])
    return {
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "q1": float(q[0]),
        "q3": float(q[1]),
        "n": len(times),
    }


def fmt_s(t: float | None) -> str:
    """Seconds for the tables: milliseconds below one second.

    Examples
    --------
    >>> fmt_s(0.0312), fmt_s(2.5), fmt_s(None)
    ('31.2 ms', '2.50 s', '-')
    """
    if t is None:
        return "-"
    return f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None or not np.isfinite(r) else f"{r:.2f}x"


# --- the interleaved throughput benchmark --------------------------------------------------
def _prepare(eng, engines, f, cold, stats):
    """Before a cold run: evict the file and note how much of it stayed cached.

    Pages that any process still maps cannot be evicted, so the NumPy engines
    drop their maps and udfwidgets' release its kept ones (``Context.release_files``)
    first.
    """
    if cold:
        for e in engines:
            if hasattr(e, "forget"):
                e.forget(f)
        eng.open(f)
        _data.evict(f)
        frac = _data.resident_fraction(f)
        if frac is not None:
            stats.append(frac)


def bench_workload(w, f, engines, reps, reference, results, cold=False, tag=""):
    """Check every engine against ``reference``, then time them interleaved.

    With ``cold``, the file is evicted from the page cache before every run.
    """
    active = []
    resident = []
    for eng in engines:
        key = (w.name + tag, f.name, eng.name)
        why = eng.supports(w)
        if why:
            results[key] = {"status": f"n/a: {why}"}
            continue
        try:
            eng.open(f)
            udf = eng.make_udf(w, f)
            _prepare(eng, engines, f, cold, resident)
            t0 = time.perf_counter()
            got = eng.run(w, f, udf)
            first = time.perf_counter() - t0
        except Exception as e:  # an engine that fails is reported, not fatal
            results[key] = {"status": f"error: {type(e).__name__}: {str(e)[:120]}"}
            log(f"  {eng.name}: {type(e).__name__}: {e}")
            log(traceback.format_exc(limit=4))
            continue
        bad = check(w, got, reference) if eng.family != "numpy" else None
        if bad:
            results[key] = {"status": f"MISMATCH: {bad}", "first": first}
            log(f"  {eng.name}: MISMATCH {bad}")
            continue
        results[key] = {"status": "ok", "first": first, "times": []}
        active.append(eng)
    for rep in range(reps):
        if not cold:
            _data.warm(f)
        order = active[rep % max(1, len(active)) :] + active[: rep % max(1, len(active))]
        for eng in order:
            udf = eng.make_udf(w, f)
            _prepare(eng, engines, f, cold, resident)
            t0 = time.perf_counter()
            eng.run(w, f, udf)
            results[(w.name + tag, f.name, eng.name)]["times"].append(time.perf_counter() - t0)
    if cold and resident:
        log(
            f"  still cached after eviction: {max(resident) * 100:.1f}% at most "
            f"({sum(r > 0.01 for r in resident)} of {len(resident)} runs above 1%)"
        )
        results[("_cold_resident", f.name, "")] = max(resident)
    for eng in active:
        r = results[(w.name + tag, f.name, eng.name)]
        r.update(summary(r["times"]))
        log(
            f"  {eng.name:14s} median {fmt_s(r['median']):>10s}  "
            f"[{fmt_s(r['min'])} .. {fmt_s(r['max'])}]  first {fmt_s(r['first'])}"
        )


def throughput_table(wl, files, engine_names, results, tag="") -> list[str]:
    lines = [
        "| workload | file | engine | median | min-max | IQR | GB/s | vs NumPy-2t | "
        "vs LT best | 1st run | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for w in wl:
        for f in files[w.dataset]:
            rows = [(n, results.get((w.name + tag, f.name, n))) for n in engine_names]
            rows = [(n, r) for n, r in rows if r is not None]
            if not rows:
                continue
            np2 = results.get((w.name + tag, f.name, "numpy-2t"), {}).get("median")
            lt = [(r["median"], n) for n, r in rows if n.startswith("lt-") and "median" in r]
            lt_best = min(lt) if lt else None
            for n, r in rows:
                if "median" not in r:
                    lines.append(
                        f"| {w.label} | {f.name.split('_')[0]} | {n} | - | - | - | - | - "
                        f"| - | {fmt_s(r.get('first'))} | {r['status']} |"
                    )
                    continue
                med = r["median"]
                gbs = f.nbytes / med / 1e9
                note = "LT best" if lt_best and n == lt_best[1] else ""
                lines.append(
                    f"| {w.label} | {f.name.split('_')[0]} | {n} | {fmt_s(med)} | "
                    f"{fmt_s(r['min'])}-{fmt_s(r['max'])} | {fmt_s(r['q1'])}-{fmt_s(r['q3'])} | "
                    f"{gbs:.1f} | {fmt_ratio(np2 / med if np2 else None)} | "
                    f"{fmt_ratio(lt_best[0] / med if lt_best else None)} | "
                    f"{fmt_s(r.get('first'))} | {note} |"
                )
    return lines


# --- run_udf_iter --------------------------------------------------------------------------
def bench_iter(engines, f, w, reps):
    """Time to first partial, cadence of partials, and iter-vs-run_udf overhead."""
    rows = []
    for eng in engines:
        if not hasattr(eng, "run_iter") or eng.supports(w):
            continue
        eng.open(f)
        eng.run(w, f)  # warm
        firsts, gaps, iters, plain, counts = [], [], [], [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            stamps = []
            for part in eng.run_iter(w, f):
                part.buffers  # a user looks at every partial result
                stamps.append(time.perf_counter() - t0)
            iters.append(stamps[-1])
            firsts.append(stamps[0])
            counts.append(len(stamps))
            gaps += list(np.diff(stamps)) if len(stamps) > 1 else []
            t0 = time.perf_counter()
            eng.run(w, f)
            plain.append(time.perf_counter() - t0)
        mi, mp = statistics.median(iters), statistics.median(plain)
        FIG["iter"][eng.name] = {
            "overhead": mi / mp - 1,
            "first": statistics.median(firsts),
            "total": mi,
        }
        rows.append(
            f"| {eng.name} | {statistics.median(counts):.0f} | "
            f"{fmt_s(statistics.median(firsts))} | "
            f"{fmt_s(statistics.median(gaps)) if gaps else '-'} | {fmt_s(mi)} | "
            f"{fmt_s(mp)} | {(mi / mp - 1) * 100:+.1f}% |"
        )
        log(rows[-1])
    return [
        "| engine | items | first partial | median gap | run_udf_iter total | run_udf | overhead |",
        "|---|---|---|---|---|---|---|",
    ] + rows


# --- fresh-process probes -------------------------------------------------------------------
def bench_first_result(f, reps, lt_python, engines):
    """Time to first result in a fresh process (import + Context + load + run SumUDF)."""
    specs = []
    for name in ("uw-inline", "uw-threads", "uw-processes"):
        if name in engines:
            specs.append((name, _probes.FIRST_OURS, name[3:], sys.executable))
    if lt_python:
        for name in ("lt-inline", "lt-dask", "lt-pipelined"):
            if name in engines:
                specs.append((name, _probes.FIRST_LT, name[3:], lt_python))
    got = {s[0]: [] for s in specs}
    for _ in range(reps):
        for name, tmpl, executor, py in specs:
            r = _probes.run_probe(
                tmpl,
                python=py,
                EXECUTOR=executor,
                PATH=f.path,
                HERE=HERE,
                NAV=tuple(f.nav),
                SIG=tuple(f.sig),
                DTYPE=f.dtype,
            )
            got[name].append(r)
            log(f"  first result {name}: {r.get('wall', r.get('error'))}")
    lines = [
        "| engine | wall (median) | min-max | import | Context | load | first run | "
        "peak RSS main | peak anon main | peak anon workers |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rs in got.items():
        ok = [r for r in rs if "wall" in r]
        if not ok:
            lines.append(f"| {name} | {rs[0].get('error', '?')[:200]} |" + " - |" * 8)
            continue
        walls = [r["wall"] for r in ok]
        FIG["first"][name] = statistics.median(walls)
        mid = sorted(ok, key=lambda r: r["wall"])[len(ok) // 2]
        p = mid["peak"]
        lines.append(
            f"| {name} | {fmt_s(statistics.median(walls))} | {fmt_s(min(walls))}-"
            f"{fmt_s(max(walls))} | {fmt_s(mid['import'])} | {fmt_s(mid['context'])} | "
            f"{fmt_s(mid['load'])} | {fmt_s(mid['run'])} | {mib(p['main_hwm'])} | "
            f"{mib(p['main_anon'])} | {mib(p['workers_anon'])} |"
        )
    return lines


def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def bench_memory(wl, f, engine_names, lt_python):
    """Peak memory of each workload in a fresh process (main and worker processes)."""
    lines = [
        "| workload | engine | run | peak RSS main (HWM) | peak anon main | "
        "peak anon, all workers | peak anon, one worker | peak RSS, whole tree |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for w in wl:
        if w.dataset != "main" or w.name == "empty":
            continue
        for name in engine_names:
            py = lt_python if name.startswith("lt-") else sys.executable
            if py is None or name.startswith("numpy"):
                continue
            r = _probes.run_probe(
                _probes.WORKLOAD,
                python=py,
                HERE=HERE,
                FILE=(f.name, tuple(f.nav), tuple(f.sig), f.dtype),
                WORKLOAD_NAME=w.name,
                ENGINE=name,
                timeout=240,
            )
            if "error" in r:
                lines.append(f"| {w.label} | {name} | {r['error'][-150:]} | - | - | - | - | - |")
                continue
            p = r["peak"]
            FIG["mem"][(w.name, name)] = p
            lines.append(
                f"| {w.label} | {name} | {fmt_s(r['run'])} | {mib(p['main_hwm'])} | "
                f"{mib(p['main_anon'])} | {mib(p['workers_anon'])} | "
                f"{mib(p['worker_anon_max'])} | {mib(p['tree_rss'])} |"
            )
            log(lines[-1])
    return lines


def bench_big(f, engines):
    """Peak memory of the main process while udfwidgets reduces a 4 GiB file."""
    lines = [
        "| engine | run | peak RSS main (HWM) | peak anon main | peak anon, all workers | "
        "peak RSS, whole tree |",
        "|---|---|---|---|---|---|",
    ]
    for name in engines:
        r = _probes.run_probe(
            _probes.WORKLOAD,
            HERE=HERE,
            FILE=(f.name, tuple(f.nav), tuple(f.sig), f.dtype),
            WORKLOAD_NAME="sum",
            ENGINE=name,
            timeout=240,
        )
        if "error" in r:
            lines.append(f"| {name} | {r['error'][-200:]} | - | - | - | - |")
            continue
        p = r["peak"]
        FIG["big"][name] = p
        lines.append(
            f"| {name} | {fmt_s(r['run'])} | {mib(p['main_hwm'])} | "
            f"{mib(p['main_anon'])} | {mib(p['workers_anon'])} | {mib(p['tree_rss'])} |"
        )
        log(lines[-1])
    return lines


# --- targets of the issues ------------------------------------------------------------------
OURS_DEFAULT = ("uw-inline", "uw-threads", "uw-processes", "uw-dask")


def _best(results, wname, fname, prefix_or_names):
    """(median, engine) of the fastest engine among the given names / with the prefix."""
    cands = []
    for (w, f, e), r in results.items():
        if w != wname or f != fname or not isinstance(r, dict) or "median" not in r:
            continue
        ok = (
            (e in prefix_or_names)
            if isinstance(prefix_or_names, tuple)
            else e.startswith(prefix_or_names)
        )
        if ok:
            cands.append((r["median"], e))
    return min(cands) if cands else None


def targets_table(results, f, small, n_workers=2) -> list[str]:
    """The issues' targets against this run's numbers (ours = best of our executors)."""
    rows = []

    def row(target, measured, met):
        status = "-" if met is None else ("met" if met else "**missed**")
        rows.append(f"| {target} | {measured} | {status} |")

    fn = f.name
    np2 = _best(results, "sum", fn, ("numpy-2t",))
    for wname, label in (("sum", "SumUDF"), ("sumsig", "SumSigUDF")):
        ours, lt = _best(results, wname, fn, OURS_DEFAULT), _best(results, wname, fn, "lt-")
        if not ours:
            continue
        gbs = f.nbytes / ours[0] / 1e9
        ref = f.nbytes / np2[0] / 1e9 if np2 else None
        txt = f"{gbs:.1f} GB/s ({ours[1]})"
        if ref:
            txt += f"; NumPy 2 threads here: {ref:.1f} GB/s ({gbs / ref * 100:.0f}%)"
        if lt:
            txt += f"; LT best {f.nbytes / lt[0] / 1e9:.1f} GB/s ({lt[1]})"
        met = gbs >= 0.9 * 38.5 and (not lt or ours[0] <= lt[0])
        row(f"{label} at >= 90% of 38.5 GB/s and faster than LiberTEM's best", txt, met)
    for wname, label, factor in (
        ("sumoversig", "SumOverSig", 1.5),
        ("max", "MaxUDF", 1.5),
        ("masks", "ApplyMasksUDF x4", 1.5),
        ("com", "CoMUDF", 1.5),
        ("stddev", "StdDevUDF", 5.0),
    ):
        ours, lt = _best(results, wname, fn, OURS_DEFAULT), _best(results, wname, fn, "lt-")
        if not ours or not lt:
            continue
        ratio = lt[0] / ours[0]
        txt = f"{ratio:.2f}x ({fmt_s(ours[0])} {ours[1]} vs {fmt_s(lt[0])} {lt[1]})"
        row(f"{label} >= {factor:g}x faster than LiberTEM's best", txt, ratio >= factor)
    ours = _best(results, "stddev", fn, OURS_DEFAULT)
    if ours:
        r = results[("stddev", fn, ours[1])]
        row(
            "StdDevUDF: no first-run penalty",
            f"first run {fmt_s(r['first'])} vs median {fmt_s(r['median'])} ({ours[1]})",
            r["first"] <= 2 * r["median"],
        )
    for wname, label, limit in (("sumoversig", "SumOverSig", 0.08), ("max", "MaxUDF", 0.09)):
        ours = _best(results, wname, fn, OURS_DEFAULT)
        if ours:
            row(
                f"{label} under {limit * 1e3:.0f} ms (issue 2)",
                f"{fmt_s(ours[0])} ({ours[1]})",
                ours[0] < limit,
            )
    for name in ("uw-inline", "uw-processes"):
        r = results.get(("empty", fn, name), {})
        if "median" in r:
            row(
                f"framework cost under 2 us per frame ({name}, empty process_frame)",
                f"{r['median'] / f.n_frames * 1e6:.2f} us",
                r["median"] / f.n_frames < 2e-6,
            )
    for name in ("uw-processes", "uw-inline"):
        if name in FIG["first"]:
            lt = {k: v for k, v in FIG["first"].items() if k.startswith("lt-")}
            ltxt = ", ".join(f"{k} {fmt_s(v)}" for k, v in lt.items())
            row(
                f"first result in a fresh process under 0.8 s ({name}"
                f"{', the default' if name == 'uw-processes' else ''})",
                f"{fmt_s(FIG['first'][name])}" + (f" (LiberTEM: {ltxt})" if ltxt else ""),
                FIG["first"][name] < 0.8,
            )
    cold = _best(results, "sum-cold", fn, OURS_DEFAULT)
    npc = _best(results, "sum-cold", fn, ("numpy-1t", "numpy-2t"))
    if cold and npc:
        row(
            "cold cache: as fast as NumPy reading the same file",
            f"{fmt_s(cold[0])} ({cold[1]}) vs NumPy {fmt_s(npc[0])} ({npc[1]})",
            cold[0] <= 1.1 * npc[0],
        )
    if "uw-processes" in FIG["iter"]:
        it = FIG["iter"]["uw-processes"]
        row(
            "run_udf_iter overhead against run_udf under 5% (uw-processes)",
            f"{it['overhead'] * 100:+.1f}%, first partial after {fmt_s(it['first'])}",
            it["overhead"] < 0.05,
        )
    if FIG["big"]:
        for name, p in FIG["big"].items():
            row(
                f"main-process peak RSS under 1 GiB reducing a 4 GiB file ({name})",
                f"{mib(p['main_hwm'])} (anon {mib(p['main_anon'])})",
                p["main_hwm"] < 2**30,
            )
    bi = results.get(("busy", small.name, "uw-inline"), {}).get("median")
    bp = results.get(("busy", small.name, "uw-processes"), {}).get("median")
    if bi and bp:
        row(
            "processes >= 1.8x faster than inline, 1 ms/frame (2 cores)",
            f"{bi / bp:.2f}x",
            bi / bp >= 1.8,
        )
    if FIG["mem"]:
        parts = max(2 * n_workers, round(f.nbytes / (128 << 20)))
        budget = n_workers * (f.nbytes / parts + (64 << 20)) + (64 << 20)
        worst = max(
            (
                (p["workers_anon"] + p["main_anon"], w, e)
                for (w, e), p in FIG["mem"].items()
                if e.startswith("uw-")
            ),
            default=None,
        )
        if worst:
            row(
                "peak memory within one partition per worker + result buffers (all workloads)",
                f"worst {mib(worst[0])} anon, main + workers ({worst[1]}, {worst[2]}); budget "
                f"{mib(budget)} = {n_workers} x ({mib(f.nbytes / parts)} partition + 64 MiB "
                "interpreter) + 64 MiB results",
                worst[0] <= budget,
            )
    head = [
        "| target (issues 2, 3, 8) | measured (best of our executors) | status |",
        "|---|---|---|",
    ]
    return head + rows


# --- environment --------------------------------------------------------------------------
def environment(lt_version, lt_python) -> list[str]:
    import joblib

    import udfwidgets

    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if "model name" in line)
    except (OSError, StopIteration):
        pass
    blas = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    git = "?"
    try:
        import subprocess

        root = os.path.dirname(HERE)
        head = subprocess.run(
            ["git", "-C", root, "log", "-1", "--format=%h %s"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--", "udfwidgets"],
            capture_output=True,
            text=True,
        ).stdout.split("\n")
        dirty = [line[3:] for line in dirty if line.strip()]
        git = f"`{head[:70]}`" + (
            f", with uncommitted changes to {', '.join(dirty)}" if dirty else ""
        )
    except OSError:
        pass
    return [
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"NumPy {np.__version__}, joblib {joblib.__version__}, "
        f"udfwidgets {udfwidgets.__version__}",
        f"- udfwidgets measured at: {git}",
        f"- LiberTEM: {lt_version or 'not installed (its columns are missing)'}"
        + (f" (interpreter {lt_python})" if lt_python and lt_python != sys.executable else ""),
        f"- load average at start: {os.getloadavg()[0]:.2f}",
        "- main process: glibc malloc thresholds settled by one 30 MiB block (see "
        "`settle_malloc`); worker processes start fresh",
        f"- BLAS environment: {blas or 'default'}",
        f"- uw-dask cluster: {os.cpu_count() or 2}-worker LocalCluster (processes, 127.0.0.1) "
        "made by the benchmark, "
        f"dask config {_engines.dask_worker_config() or 'default'}",
    ]


def find_lt_python(args) -> tuple[str | None, str | None]:
    """(LiberTEM version, interpreter that has it), or (None, None)."""
    if args.no_lt:
        return None, None
    v = _engines.lt_available()
    if v:
        return v, sys.executable
    return None, None


# --- main ---------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="smoke run: small files, 2 repetitions, fewer probes"
    )
    p.add_argument(
        "--workloads",
        default=",".join(DEFAULT_WORKLOADS),
        help=f"comma-separated, from {','.join(DEFAULT_WORKLOADS)}",
    )
    p.add_argument(
        "--engines",
        default=",".join(DEFAULT_ENGINES),
        help="comma-separated, from " + ",".join(_engines.NUMPY + _engines.OURS + _engines.LT),
    )
    p.add_argument("--files", default="f32,u16", help="f32 (1 GiB float32), u16 (512 MiB uint16)")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions (default 5, quick 2)")
    p.add_argument(
        "--dask", action="store_true", help="also run udfwidgets on a local dask cluster"
    )
    p.add_argument(
        "--cold",
        action="store_true",
        help="also time SumUDF with the file evicted from the page cache",
    )
    p.add_argument("--no-lt", action="store_true", help="leave LiberTEM out even if installed")
    p.add_argument(
        "--no-probes",
        action="store_true",
        help="skip the fresh-process figures (first result, peak memory, 4 GiB file)",
    )
    p.add_argument("--no-memory", action="store_true", help="skip peak memory per workload")
    p.add_argument("--no-big", action="store_true", help="skip the 4 GiB file")
    p.add_argument("--no-iter", action="store_true", help="skip the run_udf_iter figures")
    p.add_argument("--out", default=os.path.join(HERE, "results-latest.md"))
    p.add_argument(
        "--readme",
        action="store_true",
        help="also copy the report into benchmarks/README.md (between its markers)",
    )
    return p.parse_args(argv)


def settle_malloc() -> None:
    """Put this process's glibc malloc in the state any long-lived process reaches.

    glibc raises its mmap threshold (128 KiB at start) to the size of the
    largest block freed so far (up to 32 MiB). In-process engines would
    otherwise be faster or slower depending on which workload ran before
    them; a notebook kernel that has handled real data is in this state too.
    """
    block = np.empty(30 << 20, dtype=np.uint8)
    del block


def main(argv=None) -> int:
    args = parse_args(argv)
    settle_malloc()
    reps = args.reps or (2 if args.quick else 5)
    lt_version, lt_python = find_lt_python(args)
    if not lt_version and not args.no_lt:
        log(
            "LiberTEM is not importable here: its engines are skipped. To compare, run this "
            "script with the interpreter of a venv that has libertem==0.16.* and udfwidgets "
            "(see benchmarks/README.md)."
        )
    engine_names = [e for e in args.engines.split(",") if e]
    if args.dask and "uw-dask" not in engine_names:
        engine_names.insert(
            engine_names.index("uw-processes") + 1
            if "uw-processes" in engine_names
            else len(engine_names),
            "uw-dask",
        )
    if not lt_version:
        engine_names = [e for e in engine_names if not e.startswith("lt-")]

    if args.quick:
        main_files = {"f32": _data.F32_QUICK, "u16": _data.U16_QUICK}
        small = _data.F32_QUICK
    else:
        main_files = {"f32": _data.F32, "u16": _data.U16}
        small = _data.F32_QUICK
    chosen = [main_files[k] for k in args.files.split(",") if k]
    files = {"main": chosen, "small": [small]}
    for f in set(chosen + [small]):
        _data.ensure(f, log)
    wl_all = workloads(lambda d: None)
    wl = [wl_all[n] for n in args.workloads.split(",") if n]

    engines = []
    for name in engine_names:
        try:
            engines.append(_engines.make_engine(name))
        except Exception as e:
            log(f"engine {name} unavailable: {type(e).__name__}: {e}")
    log("engines:", ", ".join(e.name for e in engines))

    report = ["# udfwidgets benchmark: latest results", ""]
    report += environment(lt_version, lt_python)
    results = {}
    try:
        for f in set(chosen + [small]):
            log(f"warming {f.name}: {_data.warm(f):.2f} s")
        for w in wl:
            for f in files[w.dataset]:
                log(f"== {w.label} on {f.name}")
                _data.warm(f)
                ref = run_numpy(w, f.memmap(), 1)
                bench_workload(w, f, engines, reps, ref, results)

        report += [
            "",
            "## Targets",
            "",
            "Throughput targets are evaluated on the float32 file; `-` = not measured "
            "in this run. The issue's absolute numbers were measured on a quiet "
            "machine: compare the ratios when this one is busy.",
            "",
        ]
        targets_at = len(report)
        report += [
            "",
            f"## Throughput (median of {reps}, file in page cache)",
            "",
            "GB/s = file size / median time. `vs X` = time of X / time of this engine "
            "(above 1x: faster than X). `1st run` is the untimed checking run (includes "
            "warm-up, e.g. LiberTEM's numba compilation).",
            "",
        ]
        report += throughput_table(wl, files, [e.name for e in engines], results)

        empty = [w for w in wl if w.name == "empty"]
        if empty:
            report += [
                "",
                "## Per-frame overhead (empty `process_frame`)",
                "",
                "Median time of a run of an empty `process_frame` UDF divided by the "
                "number of frames (includes reading and partition set-up).",
                "",
                "| file | engine | us/frame |",
                "|---|---|---|",
            ]
            for f in files["main"]:
                for e in engines:
                    r = results.get(("empty", f.name, e.name), {})
                    if "median" in r:
                        report.append(
                            f"| {f.name.split('_')[0]} | {e.name} | "
                            f"{r['median'] / f.n_frames * 1e6:.2f} |"
                        )
        if any(w.name == "busy" for w in wl):
            report += [
                "",
                f"## Parallel scaling (1 ms of CPU per frame, {small.n_frames} frames)",
                "",
                "| engine | median | speed-up over the same package's inline |",
                "|---|---|---|",
            ]
            for e in engines:
                r = results.get(("busy", small.name, e.name), {})
                if "median" not in r:
                    continue
                base = {"udfwidgets": "uw-inline", "libertem": "lt-inline", "numpy": "numpy-1t"}[
                    e.family
                ]
                b = results.get(("busy", small.name, base), {}).get("median")
                report.append(
                    f"| {e.name} | {fmt_s(r['median'])} | "
                    f"{fmt_ratio(b / r['median'] if b else None)} |"
                )

        if args.cold:
            f = chosen[0]
            log(f"== SumUDF, cold cache, on {f.name}")
            ref = run_numpy(wl_all["sum"], f.memmap(), 1)
            bench_workload(
                wl_all["sum"],
                f,
                engines,
                max(1, reps // 2 + 1),
                ref,
                results,
                cold=True,
                tag="-cold",
            )
            frac = results.get(("_cold_resident", f.name, ""))
            report += [
                "",
                "## Cold cache (SumUDF; the file is evicted before every run)",
                "",
                "Eviction uses `posix_fadvise(DONTNEED)` on this file only; "
                + (
                    f"at most {frac * 100:.1f}% of it was still cached before a run."
                    if frac is not None
                    else "residency was not checked (no fincore)."
                ),
                "",
            ]
            report += throughput_table(
                [wl_all["sum"]], {"main": [f]}, [e.name for e in engines], results, tag="-cold"
            )

        if not args.no_iter and "sum" in wl_all:
            f = chosen[0]
            log(f"== run_udf_iter on {f.name}")
            _data.warm(f)
            iter_engines = [
                e
                for e in engines
                if e.family != "numpy"
                and e.name in ("uw-processes", "uw-threads", "uw-inline", "lt-pipelined", "lt-dask")
            ]
            report += [
                "",
                f"## Partial results (`run_udf_iter`, SumUDF, {f.name.split('_')[0]}, "
                f"median of {reps})",
                "",
            ]
            report += bench_iter(iter_engines, f, wl_all["sum"], reps)

        if not args.no_probes:
            f = chosen[0]
            log("== first result in a fresh process")
            _data.warm(f)
            report += [
                "",
                f"## Time to first result in a fresh process (SumUDF, "
                f"{f.name.split('_')[0]}, median of {1 if args.quick else 3})",
                "",
                "`wall`: from starting the interpreter to the result (Python start-up, "
                "import, Context, load, first run).",
                "",
            ]
            report += bench_first_result(f, 1 if args.quick else 3, lt_python, engine_names)
            if not args.no_memory:
                log("== peak memory per workload")
                mem_engines = [
                    e
                    for e in ("uw-inline", "uw-processes", "lt-dask", "lt-pipelined")
                    if e in engine_names
                ]
                report += [
                    "",
                    f"## Peak memory per workload (fresh process, {f.name.split('_')[0]})",
                    "",
                    "Anonymous memory (heap, copies, buffers) is what counts against "
                    "the target; file-backed pages of the memory-mapped input are "
                    "reclaimable and show only in RSS.",
                    "",
                ]
                report += bench_memory([w for w in wl], f, mem_engines, lt_python)
            if not args.no_big and not args.quick:
                log("== 4 GiB file")
                big = _data.ensure(_data.BIG, log)
                _data.warm(big)
                report += [
                    "",
                    "## Main-process memory while reducing a 4 GiB file (SumUDF, target < 1 GiB)",
                    "",
                ]
                report += bench_big(
                    big,
                    [e for e in ("uw-processes", "uw-threads", "uw-inline") if e in engine_names],
                )
    finally:
        for e in engines:
            try:
                e.close()
            except Exception:
                pass
    if "targets_at" in locals():
        report[targets_at:targets_at] = targets_table(results, chosen[0], small)
    report += ["", f"- load average at end: {os.getloadavg()[0]:.2f}", ""]
    text = "\n".join(report)
    print(text)
    with open(args.out, "w") as fh:
        fh.write(text)
    log(f"written to {args.out}")
    if args.readme:
        update_readme(text)
    return 0


README = os.path.join(HERE, "README.md")
START, END = "<!-- results:start -->", "<!-- results:end -->"


def update_readme(text: str, path: str = README) -> None:
    """Replace the part of the README between the results markers with ``text``."""
    with open(path) as fh:
        doc = fh.read()
    if START not in doc or END not in doc:
        log(f"{path} has no {START} ... {END} markers: not updated")
        return
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    body = text.replace("# udfwidgets benchmark: latest results", "").strip()
    body = body.replace("\n## ", "\n### ")
    with open(path, "w") as fh:
        fh.write(f"{head}{START}\n{body}\n{END}{tail}")
    log(f"updated {path}")


if __name__ == "__main__":
    sys.exit(main())
