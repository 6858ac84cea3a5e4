"""What detector corrections cost: SumUDF (and ApplyMasksUDF, CoMUDF) with and without corrections.

Three runs alternate in every repetition: plain, corrected (the UDF takes raw tiles and
applies the corrections itself, ``raw_tile_processor``) and corrected on the per-tile
path (the same UDF class without ``raw_tile_processor``, given corrected tiles).
``--udfs sum,masks,com`` chooses the UDFs (default: sum).

Run ``python benchmarks/corrections.py`` (a 1 GiB float32 file, 128x128 x
128x128, and a 1 GiB uint16 file, 64x128 x 256x256, like a counting
detector; 5 interleaved repetitions) or ``--quick`` (64 MiB file, 2
repetitions). The corrections are a dark frame, a gain map and 64 excluded
pixels (0.4% of a 128x128 frame), the worst realistic case: every part of the
correction is on. Plain and corrected runs alternate within every repetition,
so that the ratio survives a shared, noisy machine; the load average is
printed with the result. Results are checked against a plain NumPy reference
(:func:`numpy_reference`, independent of the package's code) before timing.
``--executor inline --n-jobs 1`` runs in this process and also gives the ratio
of CPU times; ``--breakdown`` instead times each step of a corrected SumUDF
(CPU time per MiB of float32 output, in this process).
Each run appends its table to ``benchmarks/results/corrections.md``
(``--out`` to change, ``--out -`` for none), with the ratio of every
repetition (corrected / plain within the same repetition) so that the spread
is visible.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np

import _data
from udfwidgets import Context, CorrectionSet
from udfwidgets.udf.com import CoMUDF
from udfwidgets.udf.masks import ApplyMasksUDF
from udfwidgets.udf.sum import SumUDF


class PerTileSumUDF(SumUDF):
    """SumUDF on corrected tiles (the per-tile path): it does not take raw tiles."""

    raw_tile_processor = None


class PerTileApplyMasksUDF(ApplyMasksUDF):
    raw_tile_processor = None


class PerTileCoMUDF(CoMUDF):
    raw_tile_processor = None


def masks_for(sig) -> list[np.ndarray]:
    """Two float32 masks: a disk of radius sig/8 and a ring, as virtual detectors are."""
    y, x = np.indices(sig)
    r = np.hypot(y - sig[0] / 2, x - sig[1] / 2)
    return [
        (r < sig[0] / 8).astype(np.float32),
        ((r > sig[0] / 4) & (r < sig[0] / 2)).astype(np.float32),
    ]


#: the UDFs timed (``--udfs``): (fused: takes the corrections itself, per-tile path)
UDFS = {
    "sum": (lambda sig: SumUDF(), lambda sig: PerTileSumUDF()),
    "masks": (
        lambda sig: ApplyMasksUDF(masks=masks_for(sig)),
        lambda sig: PerTileApplyMasksUDF(masks=masks_for(sig)),
    ),
    "com": (lambda sig: CoMUDF(), lambda sig: PerTileCoMUDF()),
}

#: 1 GiB of uint16 frames, a 64x128 scan of 256x256 frames
U16_1G = _data.RawFile("u16_64x128x256x256.raw", (64, 128), (256, 256), "uint16")


def corrections_for(sig, seed=1) -> CorrectionSet:
    rng = np.random.default_rng(seed)
    excluded = np.stack([rng.integers(0, s, 64) for s in sig], axis=1)
    return CorrectionSet(
        dark=rng.uniform(0, 20, sig), gain=rng.uniform(0.9, 1.1, sig), excluded_pixels=excluded
    )


def numpy_reference(frames: np.ndarray, corr: CorrectionSet) -> np.ndarray:
    """``(frames - dark) * gain`` in float64, each excluded pixel the median of its valid
    3x3 (else 5x5) neighbours: plain NumPy, written independently of the package's code."""
    out = (frames.astype(np.float64) - corr.dark) * corr.gain
    h, w = frames.shape[-2:]
    excluded = np.zeros((h, w), bool)
    excluded[tuple(np.asarray(corr.excluded_pixels).T)] = True
    for y, x in zip(*np.nonzero(excluded)):
        for r in (1, 2):
            nb = [
                (yy, xx)
                for yy in range(max(0, y - r), min(h, y + r + 1))
                for xx in range(max(0, x - r), min(w, x + r + 1))
                if not excluded[yy, xx]
            ]
            if nb:
                out[:, y, x] = np.median(np.stack([out[:, a, b] for a, b in nb], axis=-1), axis=-1)
                break
        else:
            out[:, y, x] = 0
    return out


def check(ctx, ds, f, corr) -> None:
    """Corrected SumUDF, ApplyMasksUDF and CoMUDF (both paths) against a plain NumPy
    reference on the first 64 frames."""
    mm = f.memmap()
    n = min(64, f.n_frames)
    roi = np.zeros(f.n_frames, bool)
    roi[:n] = True
    ref = numpy_reference(np.asarray(mm[:n]), corr)
    sig = tuple(f.sig)
    for udfs in (
        (SumUDF(), ApplyMasksUDF(masks=masks_for(sig)), CoMUDF()),
        (PerTileSumUDF(), PerTileApplyMasksUDF(masks=masks_for(sig)), PerTileCoMUDF()),
    ):
        got = ctx.run_udf(dataset=ds, udf=list(udfs), roi=roi, corrections=corr)
        np.testing.assert_allclose(got[0]["intensity"].data, ref.sum(axis=0), rtol=1e-5)
        masks = np.stack(masks_for(sig)).reshape(2, -1).astype(np.float64)
        want = ref.reshape(n, -1) @ masks.T
        np.testing.assert_allclose(got[1]["intensity"].raw_data[:n], want, rtol=1e-5)
        y, x = np.indices(sig)
        total = ref.sum(axis=(1, 2))
        com = (
            np.stack([(ref * y).sum(axis=(1, 2)), (ref * x).sum(axis=(1, 2))], -1) / total[:, None]
        )
        np.testing.assert_allclose(got[2]["raw_com"].raw_data[:n], com, rtol=1e-5)


ARMS = ("plain", "corrected", "per-tile")


def bench(f, reps: int, executor: str, n_jobs: int, udf: str = "sum") -> dict:
    """Plain, corrected (the UDF takes the corrections itself where it can) and corrected
    on the per-tile path, interleaved (the order rotates every repetition)."""
    _data.ensure(f)
    _data.warm(f)
    corr = corrections_for(f.sig)
    fused, per_tile = UDFS[udf]
    sig = tuple(f.sig)
    arms = {"plain": (fused, False), "corrected": (fused, corr), "per-tile": (per_tile, corr)}
    with Context(executor=executor, n_jobs=n_jobs) as ctx:
        ds = ctx.load("raw", path=f.path, nav_shape=f.nav, sig_shape=f.sig, dtype=f.dtype)
        check(ctx, ds, f, corr)
        for make, c in arms.values():  # warm workers, file maps and compiled kernels
            ctx.run_udf(dataset=ds, udf=make(sig), corrections=c)
        times: dict[str, list[float]] = {k: [] for k in ARMS}
        cpu: dict[str, list[float]] = {k: [] for k in ARMS}
        for rep in range(reps):
            order = list(ARMS[rep % 3 :] + ARMS[: rep % 3])
            if rep % 2:
                order.reverse()
            for name in order:
                make, c = arms[name]
                u = make(sig)
                c0 = time.process_time()
                t0 = time.perf_counter()
                ctx.run_udf(dataset=ds, udf=u, corrections=c)
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    med = {k: statistics.median(v) for k, v in times.items()}
    per_rep = [c / p for c, p in zip(times["corrected"], times["plain"])]
    per_rep_tile = [c / p for c, p in zip(times["per-tile"], times["plain"])]
    # inline: all the work is this process's CPU time, which waiting for a busy
    # machine's cores does not inflate (the other executors work in other processes)
    cpu_ratio = (
        statistics.median(cpu["corrected"]) / statistics.median(cpu["plain"])
        if executor == "inline"
        else None
    )
    return {
        "udf": fused(sig).__class__.__name__,
        "cpu_ratio": cpu_ratio,
        "per_rep": per_rep,
        "per_rep_tile": per_rep_tile,
        "ratio_tile": med["per-tile"] / med["plain"],
        "file": os.path.basename(f.path),
        "gib": f.nbytes / 2**30,
        "times": times,
        "median": med,
        "ratio": med["corrected"] / med["plain"],
        "min_ratio": min(times["corrected"]) / min(times["plain"]),
    }


def breakdown(f, reps: int) -> list[str]:
    """CPU time per MiB of float32 output of each step of a corrected SumUDF, in this process.

    The source tiles stream from the file (page cache) as in a run; every step is
    timed over the same 128 MiB of tiles, the steps interleaved within each repetition.
    """
    from udfwidgets.corrections import correct_tile
    from udfwidgets.executor.task import CORRECTED_TILE_BYTES

    _data.ensure(f)
    _data.warm(f)
    src = np.asarray(f.memmap()).view(np.ndarray)
    sig = tuple(f.sig)
    frame_out = int(np.prod(sig)) * 4
    depth = max(1, CORRECTED_TILE_BYTES // frame_out)
    n_tiles = min(len(src) // depth, (128 << 20) // (depth * frame_out))
    full = corrections_for(sig).prepare(sig, f.dtype)
    c = corrections_for(sig)
    no_patch = CorrectionSet(dark=c.dark, gain=c.gain).prepare(sig, f.dtype)
    out = np.empty((depth,) + sig, np.float32)
    acc = np.zeros(sig, np.float32)
    correct_tile(src[:depth], full, out=out)
    np.testing.assert_allclose(out, numpy_reference(src[:depth], c), rtol=1e-5, atol=1e-3)

    def tiles():
        return (src[i * depth : (i + 1) * depth] for i in range(n_tiles))

    def sum_native():  # a plain float32 SumUDF sums the file's tiles without a copy
        for t in tiles():
            acc[:] += t.sum(axis=0, dtype=np.float32)

    def convert():  # a plain SumUDF on integer data first converts every tile
        for t in tiles():
            np.copyto(out, t, casting="unsafe")

    def corrected(state):
        def run():
            for t in tiles():
                correct_tile(t, state, out=out)

        return run

    def sum_tile():  # SumUDF reading a corrected tile back from the cache
        for _ in range(n_tiles):
            acc[:] += out.sum(axis=0, dtype=np.float32)

    steps = {
        "SumUDF of the native tile" if f.dtype == "float32" else "-": sum_native,
        "convert to float32 (np.copyto)": convert,
        "correct_tile: dark, gain, excluded": corrected(full),
        "correct_tile: dark, gain": corrected(no_patch),
        "SumUDF of a corrected tile (in cache)": sum_tile,
    }
    steps.pop("-", None)
    for fn in steps.values():
        fn()
    cpu: dict[str, list[float]] = {k: [] for k in steps}
    for rep in range(reps):
        for k, fn in steps.items() if rep % 2 == 0 else reversed(steps.items()):
            c0 = time.process_time()
            fn()
            cpu[k].append((time.process_time() - c0) / (n_tiles * depth * frame_out / 2**20))
    lines = [
        f"| {os.path.basename(f.path)} ({depth} frames a tile) | {k} | "
        f"{statistics.median(v) * 1e6:.0f} "
        f"({min(v) * 1e6:.0f}-{max(v) * 1e6:.0f}) |"
        for k, v in cpu.items()
    ]
    return ["| file | step | CPU us per MiB of float32 output (min-max) |", "|---|---|---|", *lines]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="64 MiB file, 2 repetitions")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument(
        "--executor",
        default="processes",
        help="processes (default) or inline: one process, whose CPU time is also compared",
    )
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument(
        "--numpy",
        action="store_true",
        help="NumPy corrections even when numba is installed (UDFWIDGETS_NUMBA=0)",
    )
    p.add_argument("--files", default="f32,u16", help="f32 (1 GiB float32), u16 (1 GiB uint16)")
    p.add_argument(
        "--udfs",
        default="sum",
        help="comma-separated: sum (SumUDF), masks (ApplyMasksUDF, 2 masks), com (CoMUDF)",
    )
    p.add_argument(
        "--out",
        default=os.path.join(HERE, "results", "corrections.md"),
        help="append the table to this file ('-': print only)",
    )
    p.add_argument("--label", default="", help="a note for the table's heading (e.g. a commit)")
    p.add_argument(
        "--breakdown",
        action="store_true",
        help="instead: CPU time of each step of a corrected SumUDF, per MiB, in this process",
    )
    a = p.parse_args(argv)
    if a.numpy:
        os.environ["UDFWIDGETS_NUMBA"] = "0"  # before any worker starts: they inherit it
    from udfwidgets._corrections_kernel import get_kernel

    path = "numba kernel" if get_kernel() is not None else "NumPy"
    files = {"f32": _data.F32, "u16": U16_1G}
    chosen = [_data.F32_QUICK] if a.quick else [files[k] for k in a.files.split(",")]
    reps = 2 if a.quick else a.reps
    load0 = os.getloadavg()
    if a.breakdown:
        table = [line for f in chosen for line in breakdown(f, max(reps, 3))]
        table = table[:2] + [line for line in table if not line.startswith(("| file", "|---"))]
        load1 = os.getloadavg()
        lines = [
            f"Steps of a corrected SumUDF ({path}), one process, CPU time, {max(reps, 3)} "
            f"interleaved repetitions; load average {load0[0]:.1f} before, {load1[0]:.1f} "
            "after (1 min)",
            "",
            *table,
        ]
        return _report(lines, a)
    rows = [bench(f, reps, a.executor, a.n_jobs, u) for u in a.udfs.split(",") for f in chosen]
    load1 = os.getloadavg()
    lines = [
        f"Corrections by {path}, executor={a.executor} n_jobs={a.n_jobs}, "
        f"{reps} interleaved repetitions of plain, corrected and corrected on the per-tile "
        f"path (UDF given corrected tiles); "
        f"load average {load0[0]:.1f} before, {load1[0]:.1f} after (1 min)",
        "",
        "| UDF | file | GiB | plain (median s) | corrected (median s) | corrected / plain "
        "(median) | (best of each) | per repetition (min-max) | CPU time ratio (inline) "
        "| per-tile path / plain (median) | per repetition (min-max) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cpu = "-" if r["cpu_ratio"] is None else f"{r['cpu_ratio']:.2f}"
        lines.append(
            f"| {r['udf']} | {r['file']} | {r['gib']:.2f} | {r['median']['plain']:.3f} | "
            f"{r['median']['corrected']:.3f} | {r['ratio']:.2f} | {r['min_ratio']:.2f} | "
            f"{min(r['per_rep']):.2f}-{max(r['per_rep']):.2f} | {cpu} | "
            f"{r['ratio_tile']:.2f} | {min(r['per_rep_tile']):.2f}-{max(r['per_rep_tile']):.2f} |"
        )
    return _report(lines, a)


def _report(lines: list[str], a) -> int:
    print("\n".join(lines))
    if a.out != "-":
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        head = f"## {stamp}" + (f", {a.label}" if a.label else "")
        new = not os.path.exists(a.out)
        with open(a.out, "a") as fh:
            if new:
                fh.write("# benchmarks/corrections.py results (appended by each run)\n\n")
            fh.write(head + "\n\n" + "\n".join(lines) + "\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
