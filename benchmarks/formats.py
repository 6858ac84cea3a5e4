"""Format readers: udfwidgets against plain h5py, NumPy and LiberTEM 0.16 on the same files.

A synthetic scan (``udfwidgets.data.make_4dstem``, uint16, 128x128 frames) is
written as uncompressed chunked HDF5 and as bitshuffle-LZ4 HDF5 (chunks of 16
frames of one scan row), and, where branch ``mib``'s writers are importable,
as MIB (quad, 12 bit) and BLO. Each file is read by

- ``ours``: ``Context(executor="processes", n_jobs=2)`` and ``ctx.load("auto")``;
- ``h5py-1p`` / ``h5py-2p``: plain h5py ``read_direct`` over whole chunk rows in
  one / two processes, then the same NumPy arithmetic (h5py decompressing the
  same chunks: the target is within 1.2x of ``h5py-2p``);
- ``numpy-1p``: a ``.npy`` copy of the data through a memory map (the ceiling);
- ``lt``: LiberTEM 0.16's reader (``hdf5``/``mib``/``blo``) on its default dask
  executor bound to 127.0.0.1, in its own virtual environment, driven over a
  pipe so that its runs interleave with ours.

Workloads: SumUDF, ApplyMasksUDF (4 masks), SumUDF on a 1% roi. Warm: the file
is in the page cache; cold: ``ctx.release_files()`` and ``posix_fadvise(DONTNEED)``
on the file before every run (every engine). Repetitions are interleaved
(engine order rotates per repetition); the median is reported. Peak memory
per worker is the ``VmHWM`` of our loky workers minus their resident size
before the first run.

    python benchmarks/formats.py --size-gib 1 --reps 3 --lt-python /tmp/ltvenv-hdf5/bin/python
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from udfwidgets import Context
from udfwidgets.data import make_4dstem
from udfwidgets.io.hdf5 import write_hdf5
from udfwidgets.udf.masks import ApplyMasksUDF
from udfwidgets.udf.sum import SumUDF

SIG = (128, 128)
CHUNK_FRAMES = 16


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def masks_for(sig):
    h, w = sig
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - h / 2, xx - w / 2)
    return np.stack([r < h / 8, (r >= h / 6) & (r < h / 3), xx < w / 2, yy < h / 2]).astype(
        np.float32
    )


def evict(path: str) -> None:
    paths = [os.path.join(path, n) for n in os.listdir(path)] if os.path.isdir(path) else [path]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm(path: str) -> None:
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(64 << 20)
        while fh.readinto(buf):
            pass


# --- files ---------------------------------------------------------------------------------
def make_files(folder: Path, size_gib: float) -> tuple[dict, tuple]:
    folder.mkdir(parents=True, exist_ok=True)
    frame = math.prod(SIG) * 2
    n = int(size_gib * 2**30 // frame)
    nav = (n // 256, 256) if n >= 256 else (1, n)
    npy = folder / f"scan-{nav[0]}x{nav[1]}.npy"
    files = {"npy": str(npy)}
    if not npy.exists():
        log(f"making the synthetic scan {nav} x {SIG} uint16")
        data = make_4dstem(nav, SIG, "uint16", seed=0)
        np.save(npy, data)
        del data
    data = np.load(npy, mmap_mode="r")
    chunks = (1, CHUNK_FRAMES) + SIG
    for name, comp in (("h5-raw", None), ("h5-bslz4", "bitshuffle-lz4")):
        p = folder / f"scan-{nav[0]}x{nav[1]}-{name}.h5"
        if not p.exists():
            log("writing", p.name)
            write_hdf5(p, data, chunks=chunks, compression=comp)
        files[name] = str(p)
    # MIB quad frames are 512 x 512: the masks, roi and cross-engine checks below assume one
    # signal shape for every file, so the MIB row needs its own scan (tiling the whole 1 GiB
    # scan 4 x 4 in memory, as an earlier version did, takes 16 GiB and more). Not wired yet:
    # benchmarks/formats_mib.py times our MIB reader against NumPy in the meantime.
    log("NOTE: MIB is left out here (its frames have another shape); see formats_mib.py")
    try:
        from udfwidgets.io.blo import write_blo

        p = folder / f"scan-{nav[0]}x{nav[1]}.blo"
        if not p.exists():
            write_blo(p, (np.asarray(data) >> 4).astype(np.uint8))
        files["blo"] = str(p)
    except ImportError:
        log("NOTE: udfwidgets.io.blo.write_blo is not importable on this branch: BLO skipped")
    return files, nav


# --- plain h5py / NumPy engines ------------------------------------------------------------
_H5 = {}


def _h5_part(args):
    path, lo, hi, workload, masks, roi_rows = args
    import h5py
    import hdf5plugin  # noqa: F401

    f = _H5.get(path) or _H5.setdefault(path, h5py.File(path, "r"))
    d = f["/data"]
    n1 = d.shape[1]
    out_sum = np.zeros(d.shape[2:], np.float64)
    out_masks = []
    if workload == "roi":
        for r, c in roi_rows:
            if lo <= r < hi:
                out_sum += d[r, c]
        return out_sum
    buf = np.empty((1, n1) + d.shape[2:], d.dtype)
    for r in range(lo, hi):  # one scan row = whole chunks, each decompressed once
        d.read_direct(buf, source_sel=np.s_[r : r + 1])
        flat = buf.reshape(n1, -1)
        if workload == "sum":
            out_sum += flat.sum(axis=0, dtype=np.float64).reshape(d.shape[2:])
        else:
            out_masks.append(flat.astype(np.float32) @ masks.reshape(len(masks), -1).T)
    return out_sum if workload == "sum" else np.concatenate(out_masks)


class H5Engine:
    def __init__(self, procs: int):
        self.name = f"h5py-{procs}p"
        self.procs = procs
        self.pool = mp.get_context("fork").Pool(procs) if procs > 1 else None

    def run(self, path, nav, workload, masks, roi):
        rows = np.argwhere(roi).tolist()
        edges = np.linspace(0, nav[0], self.procs + 1).round().astype(int)
        args = [
            (path, int(a), int(b), workload, masks, rows) for a, b in zip(edges[:-1], edges[1:])
        ]
        parts = self.pool.map(_h5_part, args) if self.pool else [_h5_part(a) for a in args]
        return sum(parts) if workload != "masks" else np.concatenate(parts)

    def release(self):
        if self.pool is None:
            for f in _H5.values():
                f.close()
            _H5.clear()
        else:  # the pool's processes keep their files open: replace the pool
            self.pool.terminate()
            self.pool = mp.get_context("fork").Pool(self.procs)

    def close(self):
        if self.pool:
            self.pool.terminate()


class NumpyEngine:
    name = "numpy-1p"

    def run(self, path, nav, workload, masks, roi):
        mm = np.load(path, mmap_mode="r")
        flat = mm.reshape((-1,) + mm.shape[2:])
        if workload == "roi":
            return flat[np.flatnonzero(roi)].sum(axis=0, dtype=np.float64)
        acc = np.zeros(mm.shape[2:], np.float64)
        out = []
        for i in range(0, len(flat), 256):
            b = flat[i : i + 256]
            if workload == "sum":
                acc += b.sum(axis=0, dtype=np.float64)
            else:
                out.append(b.reshape(len(b), -1).astype(np.float32) @ masks.reshape(4, -1).T)
        return acc if workload == "sum" else np.concatenate(out)

    def release(self):
        pass

    def close(self):
        pass


class OursEngine:
    name = "ours"

    def __init__(self):
        self.ctx = Context(executor="processes", n_jobs=2)

    def run(self, path, nav, workload, masks, roi):
        ds = self.ctx.load("auto", path=path)
        if workload == "masks":
            udf = ApplyMasksUDF(masks=masks)
            return self.ctx.run_udf(dataset=ds, udf=udf)["intensity"].data.reshape(-1, 4)
        res = self.ctx.run_udf(
            dataset=ds, udf=SumUDF(dtype="float64"), roi=roi if workload == "roi" else None
        )
        return res["intensity"].data

    def release(self):
        self.ctx.release_files()

    def close(self):
        self.ctx.close()


LT_SERVER = r"""
import json, sys, time, numpy as np
sys.path.insert(0, {bench!r})
from _ltlocal import loopback_dask_executor
from libertem.api import Context
from libertem.udf.sum import SumUDF
from libertem.udf.masks import ApplyMasksUDF
ctx = Context(executor=loopback_dask_executor())
kinds = {{".h5": "hdf5", ".mib": "mib", ".blo": "blo"}}
print(json.dumps({{"ready": True}}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd.get("quit"):
        break
    masks = np.asarray(cmd["masks"], dtype=np.float32)
    kind = kinds[cmd["path"][cmd["path"].rfind("."):]]
    kw = {{"ds_path": "/data"}} if kind == "hdf5" else {{}}
    t0 = time.perf_counter()
    ds = ctx.load(kind, path=cmd["path"], **kw)
    if cmd["workload"] == "masks":
        udf = ApplyMasksUDF(mask_factories=[(lambda m=m: m) for m in masks])
        out = ctx.run_udf(dataset=ds, udf=udf)["intensity"].data
        check = float(out.astype(np.float64).sum())
    else:
        roi = np.asarray(cmd["roi"], bool) if cmd["workload"] == "roi" else None
        out = ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)["intensity"].data
        check = float(out.astype(np.float64).sum())
    print(json.dumps({{"seconds": time.perf_counter() - t0, "check": check}}), flush=True)
"""


class LTEngine:
    name = "lt"

    def __init__(self, python: str):
        self.proc = subprocess.Popen(
            [python, "-c", LT_SERVER.format(bench=str(HERE))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": ""},
        )
        first = self.proc.stdout.readline()
        if not first:
            raise RuntimeError("LiberTEM did not start")
        self.version = subprocess.run(
            [python, "-c", "import libertem; print(libertem.__version__)"],
            capture_output=True,
            text=True,
        ).stdout.strip()

    def timed(self, path, nav, workload, masks, roi):
        self.proc.stdin.write(
            json.dumps(
                {"path": path, "workload": workload, "masks": masks.tolist(), "roi": roi.tolist()}
            )
            + "\n"
        )
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        return reply["seconds"], reply["check"]

    def release(self):
        pass

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)
        except Exception:  # noqa: BLE001
            self.proc.kill()


def worker_memory(ctx) -> list[tuple[int, int, int]]:
    """(pid, VmRSS kB, VmHWM kB) of this process's child processes (the loky workers)."""
    out = []
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields.get("PPid", "0").strip()) != me or "VmHWM" not in fields:
            continue
        try:
            if b"loky" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
        except OSError:
            continue
        out.append((int(pid), int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-gib", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--data", default=os.environ.get("UDFW_FORMATS_DATA", "/tmp/udfw-formats-bench")
    )
    ap.add_argument("--lt-python", default=None, help="python of a venv with libertem 0.16")
    ap.add_argument("--workloads", default="sum,masks,roi")
    ap.add_argument("--no-cold", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results-formats.md"))
    args = ap.parse_args(argv)

    files, nav = make_files(Path(args.data), args.size_gib)
    masks = masks_for(SIG)
    rng = np.random.default_rng(0)
    roi = rng.random(nav) < 0.01
    load0 = os.getloadavg()
    engines = {
        "ours": OursEngine(),
        "h5py-1p": H5Engine(1),
        "h5py-2p": H5Engine(2),
        "numpy-1p": NumpyEngine(),
    }
    ours = engines["ours"]
    # warm the workers up (imports, first map) on a small file, then note their resident size
    tiny = os.path.join(args.data, "tiny.h5")
    if not os.path.exists(tiny):
        write_hdf5(tiny, np.zeros((2, 16) + SIG, np.uint16), chunks=(1, 16) + SIG)
    ours.run(tiny, (2, 16), "sum", masks, np.zeros((2, 16), bool))
    base_mem = {pid: rss for pid, rss, _ in worker_memory(ours.ctx)}
    lt_note = "LiberTEM: not run (no --lt-python)"
    if args.lt_python:
        try:
            engines["lt"] = LTEngine(args.lt_python)
            lt_note = f"LiberTEM {engines['lt'].version} (dask executor, 127.0.0.1)"
        except Exception as e:  # noqa: BLE001
            lt_note = f"LiberTEM could not start: {e}"
    log(lt_note)

    results = {}  # (file, workload, cache, engine) -> [seconds]
    checks = {}
    jobs = []
    for fname in [f for f in ("h5-raw", "h5-bslz4", "mib", "blo") if f in files]:
        for w in args.workloads.split(","):
            for cache in ("warm",) + (() if args.no_cold or w != "sum" else ("cold",)):
                jobs.append((fname, w, cache))
    names = list(engines)
    for fname, w, cache in jobs:
        path = files[fname]
        for rep in range(args.reps):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for en in order:
                if en.startswith("h5py") and not fname.startswith("h5"):
                    continue
                eng = engines[en]
                target = files["npy"] if en == "numpy-1p" else path
                if cache == "cold":
                    for e in engines.values():
                        e.release()
                    # page cache cold, workers not: restart the released loky workers untimed
                    ours.run(tiny, (2, 16), "sum", masks, np.zeros((2, 16), bool))
                    evict(target)
                else:
                    warm(target)
                if en == "lt":
                    dt, check = eng.timed(target, nav, w, masks, roi)
                else:
                    t0 = time.perf_counter()
                    out = eng.run(target, nav, w, masks, roi)
                    dt = time.perf_counter() - t0
                    check = float(np.asarray(out, np.float64).sum())
                results.setdefault((fname, w, cache, en), []).append(dt)
                checks.setdefault((fname, w), {})[en] = check
                log(f"{fname:9s} {w:6s} {cache:5s} {en:9s} {dt:7.3f} s")
    hwm = worker_memory(ours.ctx)
    load1 = os.getloadavg()
    for e in engines.values():
        e.close()

    nbytes = os.path.getsize(files["npy"])
    lines = [
        f"# Format readers: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Data: {nav} x {SIG} uint16 ({nbytes / 2**30:.2f} GiB), HDF5 chunks "
        f"(1, {CHUNK_FRAMES}, 128, 128); {args.reps} interleaved repetitions, median. "
        f"{lt_note}.",
        f"Load average before/after: {load0[0]:.1f} / {load1[0]:.1f} "
        f"on {os.cpu_count()} cores (shared machine).",
        "",
        "| file | workload | cache | engine | median s | GiB/s | ours / engine |",
        "|---|---|---|---|---|---|---|",
    ]
    for (fname, w, cache, en), ts in results.items():
        med = statistics.median(ts)
        mine = statistics.median(results[(fname, w, cache, "ours")])
        lines.append(
            f"| {fname} | {w} | {cache} | {en} | {med:.3f} | "
            f"{nbytes / 2**30 / med:.2f} | {mine / med:.2f} |"
        )
    lines += ["", "Result checks (sum of each engine's result; equal within float error):", ""]
    for (fname, w), c in checks.items():
        lines.append(f"- {fname} {w}: " + ", ".join(f"{k} {v:.6g}" for k, v in c.items()))
    part = 128 << 20
    row = nav[1] * math.prod(SIG) * 2  # chunks (1, 16, ...): a chunk row is one scan row
    lines += ["", "Peak memory of our loky workers (VmHWM minus resident size after warm-up):", ""]
    for pid, _rss, peak in hwm:
        b = base_mem.get(pid)
        extra = f"{(peak - b) / 1024:.0f} MiB above warm-up" if b else "new worker"
        lines.append(
            f"- pid {pid}: peak {peak / 1024:.0f} MiB ({extra}); budget: one "
            f"partition (~{part >> 20} MiB) + one chunk row ({row >> 20} MiB)"
        )
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
