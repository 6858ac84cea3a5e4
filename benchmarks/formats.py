"""Format readers: udfwidgets against plain h5py, NumPy and LiberTEM 0.16 on the same files.

Synthetic scans (``udfwidgets.data.write_npy``, written block by block through a
memory map, so no scan is ever held whole in memory) of about 1 GiB each:

- ``npy``: (128, 256) x (128, 128) ``uint16``, also written (block by block,
  from its memory map) as uncompressed chunked HDF5 (``h5-raw``), bitshuffle-LZ4
  HDF5 (``h5-bslz4``) and gzip HDF5 (``h5-gzip``, level 1), chunks of 16 frames
  of one scan row;
- ``mib``: (32, 64) x (512, 512), Merlin quad, counter depth 12 (``>u2``),
  written by ``write_mib`` from the memory map of its own ``.npy`` source;
- ``blo``: (128, 128) x (256, 256) ``uint8`` NanoMegas blockfile, likewise.

Engines, each reading the same file:

- ``ours``: ``Context(executor="processes", n_jobs=2)`` and ``ctx.load("auto")``;
- ``ours-h5py`` (with ``--h5py-decoder``, HDF5 files): the same with
  ``decoder="h5py"``, every chunk read and decompressed by h5py (the "before"
  of our own gzip reader, :mod:`udfwidgets.io.inflate`);
- ``h5py-1p`` / ``h5py-2p`` (HDF5 files): plain h5py ``read_direct`` over whole
  chunk rows into one reused buffer, in one / two processes, then the same
  NumPy arithmetic (h5py decompressing the same chunks);
- ``numpy-1p``: a NumPy memory map, one process: the ``.npy`` copy for HDF5, a
  strided view of the frames of the MIB / BLO file itself (byte order fixed
  per block of frames);
- ``lt``: LiberTEM 0.16's reader (``hdf5``/``mib``/``blo``) on its default dask
  executor bound to 127.0.0.1, driven over a pipe so that its runs interleave
  with ours (``--lt-python``, or the running interpreter if it imports libertem).

Modes:

- ``--mode compare`` (default): SumUDF (float32, ours' and LiberTEM's default;
  the NumPy and h5py engines sum in float32 too), ApplyMasksUDF (4 masks), SumUDF
  on a 1% roi (``roi``) and, with ``--workloads ...,roi1``, on an roi of one frame
  (a run's fixed cost); one untimed LiberTEM run per file and workload first (numba
  compiles); warm (the file read once into the page cache before every run) and,
  for SumUDF, cold (``posix_fadvise(DONTNEED)`` on the file and our workers'
  files released before every run of every engine). Repetitions interleave
  (the engine order rotates per repetition); medians and ratios are reported.
- ``--mode disk``: the disk's sequential read speed (``dd bs=8M iflag=direct``)
  against our SumUDF cold read of the same file (page cache of the file
  dropped before every run), interleaved; the ratio is the issue's "cold reads
  at 90% of the disk's sequential speed".
- ``--mode memory``: peak memory of each of our two worker processes while
  reading a file (default ``h5-bslz4``) with SumUDF and ApplyMasksUDF: the
  peak resident size (``VmHWM``, reset through ``/proc/PID/clear_refs``
  after a warm-up run that reads one frame of the file) minus the resident size
  after the warm-up, against the budget of one partition plus one chunk row.

Examples (run as in benchmarks/README.md; each about 1-3 minutes)::

    python benchmarks/formats.py --files mib,blo --workloads sum,masks --no-cold --reps 3
    python benchmarks/formats.py --files h5-bslz4,h5-gzip --workloads sum --no-cold --reps 5
    python benchmarks/formats.py --mode disk --files npy,mib --reps 3
    python benchmarks/formats.py --mode memory --files h5-bslz4
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from udfwidgets import Context
from udfwidgets.data import write_blo, write_hdf5, write_mib, write_npy
from udfwidgets.udf.masks import ApplyMasksUDF
from udfwidgets.udf.sum import SumUDF

CHUNK_FRAMES = 16
ALL_FILES = ("h5-raw", "h5-bslz4", "h5-gzip", "mib", "blo", "npy")


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
    """Drop the file's pages from the page cache (clean pages: no root needed)."""
    paths = [os.path.join(path, n) for n in os.listdir(path)] if os.path.isdir(path) else [path]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def cached_fraction(path: str) -> float:
    """Fraction of the file's pages in the page cache (``fincore``), or nan without it."""
    try:
        out = subprocess.run(
            ["fincore", "--bytes", "--noheadings", "--output", "RES,SIZE", path],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split()
        return int(out[0]) / max(1, int(out[1]))
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return float("nan")


def warm(path: str) -> None:
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(64 << 20)
        while fh.readinto(buf):
            pass


# --- files ---------------------------------------------------------------------------------
@dataclass
class Item:
    """One benchmark file: what to open, its scan, and how NumPy reads its frames."""

    name: str
    path: str
    nav: tuple
    sig: tuple
    lt_kind: str | None
    np_path: str  # the file NumPy reads (the .npy copy for HDF5)
    np_offset: int | None = None  # strided view of the file itself: first frame's offset
    np_stride: int | None = None
    np_dtype: str | None = None
    itemsize: int = 2

    @property
    def frames(self) -> int:
        return math.prod(self.nav)

    @property
    def nbytes(self) -> int:
        """Bytes of the frames (uncompressed)."""
        return self.frames * math.prod(self.sig) * self.itemsize


def _source(folder: Path, name: str, nav, sig, dtype) -> str:
    p = folder / name
    if not p.exists():
        log(f"writing {p.name}: {nav} x {sig} {dtype} (block by block)")
        write_npy(p, nav, sig, dtype, seed=0)
    return str(p)


def make_files(folder: Path, size_gib: float, wanted) -> dict[str, Item]:
    """The benchmark's files (written once under ``folder``), every writer streaming."""
    folder.mkdir(parents=True, exist_ok=True)
    scale = max(1, round(size_gib * 4)) / 4  # quarter GiB steps
    n128 = int(scale * 2**30 // (128 * 128 * 2))
    nav = (n128 // 256, 256)
    items: dict[str, Item] = {}
    npy = _source(folder, f"scan-{nav[0]}x{nav[1]}.npy", nav, (128, 128), "uint16")
    items["npy"] = Item("npy", npy, nav, (128, 128), None, npy)
    data = np.load(npy, mmap_mode="r")
    chunks = (1, CHUNK_FRAMES, 128, 128)
    for name, comp, opts in (
        ("h5-raw", None, None),
        ("h5-bslz4", "bitshuffle-lz4", None),
        ("h5-gzip", "gzip", 1),
    ):
        if name not in wanted:
            continue
        p = folder / f"scan-{nav[0]}x{nav[1]}-{name}.h5"
        if not p.exists():
            log("writing", p.name)
            write_hdf5(p, data, chunks=chunks, compression=comp, compression_opts=opts)
        items[name] = Item(name, str(p), nav, (128, 128), "hdf5", npy)
    del data
    if "mib" in wanted:
        n = int(scale * 2**30 // (512 * 512 * 2))
        mnav = (n // 64, 64)
        src = _source(folder, f"src-mib-{mnav[0]}x{mnav[1]}.npy", mnav, (512, 512), "uint16")
        p = folder / f"quad12-{mnav[0]}x{mnav[1]}.mib"
        if not p.exists():
            m = np.load(src, mmap_mode="r")  # a memory map: write_mib streams it block by block
            if int(m.max()) >= 4096:
                raise SystemExit(f"{src} has values above 12 bit; lower the dose")
            log("writing", p.name)
            write_mib(p, m, counter_depth=12, layout="quad")
            del m
        items["mib"] = Item(
            "mib", str(p), mnav, (512, 512), "mib", str(p), 768, 768 + 512 * 512 * 2, ">u2"
        )
    if "blo" in wanted:
        n = int(scale * 2**30 // (256 * 256))
        bnav = (n // 128, 128)
        src = _source(folder, f"src-blo-{bnav[0]}x{bnav[1]}.npy", bnav, (256, 256), "uint8")
        p = folder / f"scan-{bnav[0]}x{bnav[1]}-256.blo"
        if not p.exists():
            log("writing", p.name)
            write_blo(p, np.load(src, mmap_mode="r"))
        first = 0x1000 + math.prod(bnav)  # header, then the virtual bright-field image
        items["blo"] = Item(
            "blo", str(p), bnav, (256, 256), "blo", str(p), first + 6, 6 + 256 * 256, "u1", 1
        )
    return {k: v for k, v in items.items() if k in wanted}


# --- plain h5py / NumPy engines ------------------------------------------------------------
_H5 = {}


def _h5_part(args):
    path, lo, hi, workload, masks, roi_rows = args
    import h5py
    import hdf5plugin  # noqa: F401

    f = _H5.get(path) or _H5.setdefault(path, h5py.File(path, "r"))
    d = f["/data"]
    n1 = d.shape[1]
    out_sum = np.zeros(d.shape[2:], np.float32)
    out_masks = []
    if workload == "roi":
        for r, c in roi_rows:
            if lo <= r < hi:
                out_sum += d[r, c].astype(np.float32)
        return out_sum
    buf = np.empty((1, n1) + d.shape[2:], d.dtype)
    for r in range(lo, hi):  # one scan row = whole chunks, each decompressed once
        d.read_direct(buf, source_sel=np.s_[r : r + 1])
        flat = buf.reshape(n1, -1)
        if workload == "sum":
            out_sum += flat.sum(axis=0, dtype=np.float32).reshape(d.shape[2:])
        else:
            out_masks.append(flat.astype(np.float32) @ masks.reshape(len(masks), -1).T)
    return out_sum if workload == "sum" else np.concatenate(out_masks)


class H5Engine:
    def __init__(self, procs: int):
        self.name = f"h5py-{procs}p"
        self.procs = procs
        self.pool = mp.get_context("fork").Pool(procs) if procs > 1 else None

    def applies(self, item: Item) -> bool:
        return item.lt_kind == "hdf5"

    def run(self, item: Item, workload, masks, roi):
        rows = np.argwhere(roi).tolist()
        edges = np.linspace(0, item.nav[0], self.procs + 1).round().astype(int)
        args = [
            (item.path, int(a), int(b), workload, masks, rows)
            for a, b in zip(edges[:-1], edges[1:])
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


def numpy_frames(item: Item) -> np.ndarray:
    """The frames of ``item`` as a NumPy view of a memory map (no copy)."""
    if item.np_offset is None:
        mm = np.load(item.np_path, mmap_mode="r")
        return mm.reshape((-1,) + mm.shape[-2:])
    raw = np.memmap(item.np_path, dtype=np.uint8, mode="r")
    dt = np.dtype(item.np_dtype)
    return np.ndarray(
        (item.frames,) + item.sig,
        dt,
        buffer=raw,
        offset=item.np_offset,
        strides=(item.np_stride, item.sig[1] * dt.itemsize, dt.itemsize),
    )


class NumpyEngine:
    name = "numpy-1p"

    def applies(self, item: Item) -> bool:
        return True

    def run(self, item: Item, workload, masks, roi):
        flat = numpy_frames(item)
        native = flat.dtype.newbyteorder("=")
        if workload == "roi":
            return flat[np.flatnonzero(roi)].astype(native).sum(axis=0, dtype=np.float32)
        acc = np.zeros(item.sig, np.float32)
        out = []
        step = max(1, (8 << 20) // (math.prod(item.sig) * flat.dtype.itemsize))
        for i in range(0, len(flat), step):
            b = flat[i : i + step].astype(native)  # byte order fixed per block
            if workload == "sum":
                acc += b.sum(axis=0, dtype=np.float32)
            else:
                out.append(b.reshape(len(b), -1).astype(np.float32) @ masks.reshape(4, -1).T)
        return acc if workload == "sum" else np.concatenate(out)

    def release(self):
        pass

    def close(self):
        pass


class OursEngine:
    """Ours; ``decoder="h5py"`` (engine ``ours-h5py``): HDF5 files read by h5py's zlib only."""

    def __init__(self, n_jobs: int = 2, decoder: str | None = None, ctx=None):
        self.ctx = ctx or Context(executor="processes", n_jobs=n_jobs)
        self.own_ctx = ctx is None
        self.decoder = decoder
        self.name = "ours" if decoder is None else f"ours-{decoder}"

    def applies(self, item: Item) -> bool:
        return self.decoder is None or item.lt_kind == "hdf5"

    def run(self, item: Item, workload, masks, roi):
        kw = {} if self.decoder is None else {"decoder": self.decoder}
        ds = self.ctx.load("auto", path=item.path, **kw)
        if tuple(ds.shape.nav) != item.nav:
            raise RuntimeError(f"{item.path}: auto gave nav {tuple(ds.shape.nav)}, not {item.nav}")
        if workload == "masks":
            udf = ApplyMasksUDF(masks=masks)
            return self.ctx.run_udf(dataset=ds, udf=udf)["intensity"].data.reshape(-1, 4)
        res = self.ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi if workload == "roi" else None)
        return res["intensity"].data

    def release(self):
        if self.own_ctx:
            self.ctx.release_files()

    def close(self):
        if self.own_ctx:
            self.ctx.close()


LT_SERVER = r"""
import json, sys, time, numpy as np
sys.path.insert(0, {bench!r})
from _ltlocal import loopback_dask_executor
from libertem.api import Context
from libertem.udf.sum import SumUDF
from libertem.udf.masks import ApplyMasksUDF
ctx = Context(executor=loopback_dask_executor())
print(json.dumps({{"ready": True}}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd.get("quit"):
        break
    masks = np.asarray(cmd["masks"], dtype=np.float32)
    kind = cmd["kind"]
    kw = {{"ds_path": "/data"}} if kind == "hdf5" else {{}}
    if kind == "mib":
        kw["nav_shape"] = tuple(cmd["nav"])
    t0 = time.perf_counter()
    ds = ctx.load(kind, path=cmd["path"], **kw)
    if cmd["workload"] == "masks":
        udf = ApplyMasksUDF(mask_factories=[(lambda m=m: m) for m in masks])
        out = ctx.run_udf(dataset=ds, udf=udf)["intensity"].data
    else:
        roi = np.asarray(cmd["roi"], bool) if cmd["workload"] == "roi" else None
        out = ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)["intensity"].data
    check = float(out.astype(np.float64).sum())
    print(json.dumps({{"seconds": time.perf_counter() - t0, "check": check}}), flush=True)
"""


class LTEngine:
    name = "lt"

    def __init__(self, python: str):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.proc = subprocess.Popen(
            [python, "-c", LT_SERVER.format(bench=str(HERE))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        first = self.proc.stdout.readline()
        if not first:
            raise RuntimeError("LiberTEM did not start")
        self.version = subprocess.run(
            [python, "-c", "import libertem; print(libertem.__version__)"],
            capture_output=True,
            text=True,
            env=env,
        ).stdout.strip()

    def applies(self, item: Item) -> bool:
        return item.lt_kind is not None

    def timed(self, item: Item, workload, masks, roi):
        cmd = {
            "path": item.path,
            "kind": item.lt_kind,
            "nav": list(item.nav),
            "workload": workload,
            "masks": masks.tolist(),
            "roi": roi.tolist(),
        }
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("LiberTEM's process ended (see its stderr above)")
        reply = json.loads(line)
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


def one_frame(item: Item) -> np.ndarray:
    """An roi of the first frame only."""
    roi = np.zeros(item.nav, bool)
    roi.flat[0] = True
    return roi


def worker_pids() -> list[int]:
    """This process's loky worker processes."""
    out = []
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            if f"PPid:\t{me}\n" not in status:
                continue
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"loky" not in cmdline or b"resource_tracker" in cmdline:
                continue
        except OSError:
            continue
        out.append(int(pid))
    return out


def proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _sample_anon(pids: list[int], peak: dict[int, int], running: threading.Event) -> None:
    """Keep the largest ``RssAnon`` (KiB) of each worker in ``peak`` while ``running`` is set."""
    while running.is_set():
        for pid in pids:
            peak[pid] = max(peak[pid], proc_kib(pid, "RssAnon"))
        time.sleep(0.002)


def _lt_python(arg: str | None) -> str | None:
    if arg:
        return arg
    try:
        import libertem  # noqa: F401

        return sys.executable
    except ImportError:
        return None


def _header(args, what: str) -> list[str]:
    load = open("/proc/loadavg").read().split()[:3]
    return [
        f"## {what}: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "Command: `python benchmarks/formats.py "
        + " ".join(shlex.quote(a) for a in sys.argv[1:])
        + "`",
        f"Load average (1/5/15 min) at the start: {' / '.join(load)} on {os.cpu_count()} cores.",
    ]


def _footer(lines: list[str], args) -> int:
    load = open("/proc/loadavg").read().split()[:3]
    lines.append(f"Load average at the end: {' / '.join(load)}.")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.append:
        with open(args.append, "a") as fh:
            fh.write("\n" + text)
    return 0


# --- modes ---------------------------------------------------------------------------------
def mode_compare(args, items: dict[str, Item]) -> int:
    lines = _header(args, "Format readers, interleaved")
    engines: dict = {"ours": OursEngine()}
    if args.h5py_decoder and any(i.lt_kind == "hdf5" for i in items.values()):
        engines["ours-h5py"] = OursEngine(decoder="h5py", ctx=engines["ours"].ctx)
    if any(i.lt_kind == "hdf5" for i in items.values()):
        engines["h5py-1p"] = H5Engine(1)
        engines["h5py-2p"] = H5Engine(2)
    engines["numpy-1p"] = NumpyEngine()
    lt_python = _lt_python(args.lt_python)
    lt_note = "LiberTEM: not run (no --lt-python and libertem not importable)"
    if lt_python and not args.no_lt:
        try:
            engines["lt"] = LTEngine(lt_python)
            lt_note = f"LiberTEM {engines['lt'].version} (dask executor, 127.0.0.1)"
        except Exception as e:  # noqa: BLE001
            lt_note = f"LiberTEM could not start: {e}"
    log(lt_note)
    if args.engines:
        keep = {"ours"} | set(args.engines.split(","))
        for name in [n for n in engines if n not in keep]:
            engines.pop(name).close()
    from udfwidgets.io.inflate import libdeflate

    lib = libdeflate()
    lines.append(
        "Ours' gzip chunks: "
        + (f"libdeflate from {lib.origin}" if lib else "h5py (libdeflate not installed)")
        + "."
    )
    ours = engines["ours"]
    small = next(iter(items.values()))
    ours.run(small, "roi", masks_for(small.sig), np.eye(*small.nav, dtype=bool))  # start workers
    results: dict = {}  # (file, workload, cache, engine) -> [seconds]
    checks: dict = {}
    jobs = []
    for fname, item in items.items():
        if fname == "npy" and len(items) > 1:
            continue
        for w in args.workloads.split(","):
            for cache in ("warm",) + (() if args.no_cold or w != "sum" else ("cold",)):
                jobs.append((item, w, cache))
    names = list(engines)
    rng = np.random.default_rng(0)
    lt_warm: set = set()
    for item, w, cache in jobs:
        masks = masks_for(item.sig)
        roi = rng.random(item.nav) < 0.01
        if w == "roi1":  # an roi of one frame: what a run costs besides reading
            roi = one_frame(item)
        run_w = "roi" if w == "roi1" else w
        if "lt" in engines and (item.name, w) not in lt_warm:
            # LiberTEM compiles its readers' and UDFs' numba code on first use: not timed
            lt_warm.add((item.name, w))
            engines["lt"].timed(item, run_w, masks, roi)
        for rep in range(args.reps):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for en in order:
                eng = engines[en]
                if not eng.applies(item):
                    continue
                target = item.np_path if en == "numpy-1p" else item.path
                if cache == "cold":
                    for e in engines.values():
                        e.release()
                    evict(target)
                else:
                    warm(target)
                if en == "lt":
                    dt, check = eng.timed(item, run_w, masks, roi)
                else:
                    t0 = time.perf_counter()
                    out = eng.run(item, run_w, masks, roi)
                    dt = time.perf_counter() - t0
                    check = float(np.asarray(out, np.float64).sum())
                results.setdefault((item.name, w, cache, en), []).append(dt)
                checks.setdefault((item.name, w), {})[en] = check
                log(f"{item.name:9s} {w:6s} {cache:5s} {en:9s} {dt:7.3f} s")
    for e in engines.values():
        e.close()
    lines += [
        f"{args.reps} interleaved repetitions, median; {lt_note}. Ours: processes executor, "
        "2 workers. `engine / ours`: the engine's time over ours (above 1: we are faster).",
        "",
        "| file | file size | workload | cache | engine | median s | GiB/s of frames | engine / ours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (fname, w, cache, en), ts in results.items():
        med = statistics.median(ts)
        mine = statistics.median(results[(fname, w, cache, "ours")])
        size = os.path.getsize(items[fname].path) / 2**30
        lines.append(
            f"| {fname} | {size:.2f} GiB | {w} | {cache} | {en} | {med:.3f} | "
            f"{items[fname].nbytes / 2**30 / med:.2f} | {med / mine:.2f} |"
        )
    lines += ["", "Result checks (sum of each engine's result; equal within float error):", ""]
    bad = []
    for (fname, w), c in checks.items():
        vals = list(c.values())
        ok = all(abs(v - vals[0]) <= 1e-5 * abs(vals[0]) + 1e-3 for v in vals)
        bad += [] if ok else [(fname, w)]
        lines.append(
            f"- {fname} {w}: "
            + ", ".join(f"{k} {v:.9g}" for k, v in c.items())
            + ("" if ok else " **DIFFER**")
        )
    lines.append("")
    code = _footer(lines, args)
    return 1 if bad else code


def mode_disk(args, items: dict[str, Item]) -> int:
    """Disk sequential speed (dd, O_DIRECT) against our cold SumUDF on the same file."""
    lines = _header(args, "Cold reads against the disk's sequential speed")
    ours = OursEngine()
    small = next(iter(items.values()))
    ours.run(small, "roi", masks_for(small.sig), np.eye(*small.nav, dtype=bool))
    res: dict = {}
    for item in items.values():
        size = os.path.getsize(item.path)
        for rep in range(args.reps):
            for what in ("dd", "ours") if rep % 2 == 0 else ("ours", "dd"):
                ours.release()  # restarts the workers: start them untimed (reads one frame)
                ours.run(item, "roi", masks_for(item.sig), one_frame(item))
                evict(item.path)
                frac = cached_fraction(item.path)
                t0 = time.perf_counter()
                if what == "dd":
                    subprocess.run(
                        ["dd", f"if={item.path}", "of=/dev/null", "bs=8M", "iflag=direct"],
                        check=True,
                        capture_output=True,
                    )
                else:
                    ours.run(item, "sum", None, None)
                dt = time.perf_counter() - t0
                res.setdefault((item.name, what), []).append(dt)
                log(
                    f"{item.name:6s} {what:5s} {dt:7.3f} s  {size / dt / 2**20:7.0f} MiB/s "
                    f"(cached before: {frac:.0%})"
                )
    ours.close()
    lines += [
        f"{args.reps} interleaved repetitions, median. `dd`: `dd if=FILE of=/dev/null bs=8M "
        "iflag=direct` (the disk's sequential read, no page cache). `ours`: SumUDF, processes "
        "executor with 2 workers, the file's pages dropped (`posix_fadvise(DONTNEED)`, checked "
        "with `fincore`) and our workers' files released (workers restarted and given one "
        "frame, untimed) before every run.",
        "",
        "| file | size | dd MiB/s | ours MiB/s | ours / dd |",
        "|---|---|---|---|---|",
    ]
    for item in items.values():
        size = os.path.getsize(item.path) / 2**20
        dd = size / statistics.median(res[(item.name, "dd")])
        us = size / statistics.median(res[(item.name, "ours")])
        lines.append(f"| {item.name} | {size:.0f} MiB | {dd:.0f} | {us:.0f} | {us / dd:.2f} |")
    lines.append("")
    return _footer(lines, args)


def mode_memory(args, items: dict[str, Item]) -> int:
    """Peak resident memory of each worker above its size after a warm-up."""
    lines = _header(args, "Peak memory per worker")
    lines += [
        "Ours: processes executor, 2 workers. Peak = `VmHWM` during the run (reset through "
        "`/proc/PID/clear_refs` after a warm-up run of the same UDF on the first 32 frames of every "
        "partition of the same file: imports and compiled kernels loaded, file open, whole chunks "
        "read) minus `VmRSS` after the warm-up. `VmHWM` counts the pages of memory-mapped files "
        "too (page cache, shared and reclaimable: the MIB, BLO and `.npy` readers map their "
        "files), so the private peak is also given: the largest `RssAnon` sampled every 2 ms "
        "during the run minus `RssAnon` after the warm-up. Budget: one partition plus one chunk "
        "row, judged on the private peak.",
        "",
        "| file | workload | partitions | largest partition MiB | chunk row MiB | worker | "
        "RSS after warm-up MiB | peak above it MiB | private peak above it MiB | within budget |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ok_all = True
    for item in items.values():
        for w in args.workloads.split(","):
            ours = OursEngine()
            masks = masks_for(item.sig)
            roi = np.random.default_rng(0).random(item.nav) < 0.01
            # warm-up: the workload's own UDF on the first 32 frames of every partition (so
            # every worker gets some): imports (h5py, hdf5plugin, numba and the compiled
            # kernels ApplyMasksUDF and the chunk readers load), the file opened, whole
            # chunks read (chunks of up to 32 frames)
            ends = np.zeros(item.nav, bool)
            for a, _ in ours.ctx.load("auto", path=item.path).partition_bounds(2):
                ends.flat[a : a + 32] = True
            warm_udf = ApplyMasksUDF(masks=masks) if w == "masks" else SumUDF()
            ours.ctx.run_udf(dataset=ours.ctx.load("auto", path=item.path), udf=warm_udf, roi=ends)
            pids = worker_pids()
            base = {}
            for pid in pids:
                Path(f"/proc/{pid}/clear_refs").write_text("5")
                base[pid] = proc_kib(pid, "VmRSS")
            anon0 = {pid: proc_kib(pid, "RssAnon") for pid in pids}
            anon = dict(anon0)
            running = threading.Event()
            running.set()
            sampler = threading.Thread(target=_sample_anon, args=(pids, anon, running), daemon=True)
            sampler.start()
            try:
                ours.run(item, w, masks, roi)
            finally:
                running.clear()
                sampler.join()
            peaks = {pid: proc_kib(pid, "VmHWM") for pid in pids}
            ds = ours.ctx.load("auto", path=item.path)
            bounds = ds.partition_bounds(2)
            frame = math.prod(item.sig) * np.dtype(ds.dtype).itemsize
            part = max(b - a for a, b in bounds) * frame
            chunks = getattr(ds, "chunks", None)
            row = (chunks[0] * math.prod(item.nav[1:]) * frame) if chunks else frame
            for pid in pids:
                above = (peaks[pid] - base[pid]) * 1024
                private = (anon[pid] - anon0[pid]) * 1024
                ok = private <= part + row
                ok_all &= ok
                lines.append(
                    f"| {item.name} | {w} | {len(bounds)} | {part / 2**20:.0f} | "
                    f"{row / 2**20:.0f} | {pid} | {base[pid] / 1024:.0f} | "
                    f"{above / 2**20:.0f} | {private / 2**20:.0f} | {'yes' if ok else 'NO'} |"
                )
            ours.close()
    lines.append("")
    _footer(lines, args)
    return 0 if ok_all else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=("compare", "disk", "memory"), default="compare")
    ap.add_argument("--size-gib", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--data", default=os.environ.get("UDFW_FORMATS_DATA", "/tmp/udfw-formats-bench")
    )
    ap.add_argument("--files", default=None, help=f"comma-separated, of {','.join(ALL_FILES)}")
    ap.add_argument("--lt-python", default=None, help="python of a venv with libertem 0.16")
    ap.add_argument("--no-lt", action="store_true", help="leave LiberTEM out")
    ap.add_argument("--workloads", default="sum,masks,roi")
    ap.add_argument("--no-cold", action="store_true")
    ap.add_argument(
        "--engines",
        default=None,
        help="comma-separated engines to run besides ours (default: all), e.g. h5py-2p,lt",
    )
    ap.add_argument(
        "--h5py-decoder",
        action="store_true",
        help="also run ours with decoder='h5py' (engine ours-h5py: h5py's zlib, the A/B of "
        "udfwidgets.io.inflate), interleaved with the others",
    )
    ap.add_argument("--append", default=None, help="append the markdown section to this file")
    args = ap.parse_args(argv)
    default = {
        "compare": "h5-raw,h5-bslz4,h5-gzip,mib,blo",
        "disk": "npy,mib",
        "memory": "h5-bslz4",
    }[args.mode]
    wanted = (args.files or default).split(",")
    unknown = set(wanted) - set(ALL_FILES)
    if unknown:
        ap.error(f"unknown --files {sorted(unknown)}; use {','.join(ALL_FILES)}")
    items = make_files(Path(args.data), args.size_gib, wanted)
    if args.mode == "disk":
        return mode_disk(args, items)
    if args.mode == "memory":
        return mode_memory(args, items)
    return mode_compare(args, items)


if __name__ == "__main__":
    sys.exit(main())
