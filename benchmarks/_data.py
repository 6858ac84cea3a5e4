"""Benchmark data files: created once, cached under ``benchmarks/data/``.

Files are written with real (non-zero, varying) content in chunks, so that
they are not sparse and every engine reads real pages. A file is only
re-created when its size does not match.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


@dataclass(frozen=True)
class RawFile:
    """A raw file of frames in C order: its path, nav and sig shape, dtype."""

    name: str
    nav: tuple
    sig: tuple
    dtype: str

    @property
    def path(self) -> str:
        return os.path.join(DATA_DIR, self.name)

    @property
    def n_frames(self) -> int:
        return math.prod(self.nav)

    @property
    def nbytes(self) -> int:
        return self.n_frames * math.prod(self.sig) * np.dtype(self.dtype).itemsize

    def memmap(self) -> np.memmap:
        """The file as a read-only ``(frames, *sig)`` memory map."""
        return np.memmap(
            self.path, dtype=self.dtype, mode="r", shape=(self.n_frames,) + tuple(self.sig)
        )


#: the issue's files: 1 GiB float32 (128x128 x 128x128) and 512 MiB uint16 (64x64 x 256x256)
F32 = RawFile("f32_128x128x128x128.raw", (128, 128), (128, 128), "float32")
U16 = RawFile("u16_64x64x256x256.raw", (64, 64), (256, 256), "uint16")
#: 4 GiB float32 for the main-process memory figure
BIG = RawFile("f32_256x256x128x128.raw", (256, 256), (128, 128), "float32")
#: small files for the quick smoke run
F32_QUICK = RawFile("f32_quick_32x32x128x128.raw", (32, 32), (128, 128), "float32")
U16_QUICK = RawFile("u16_quick_16x16x256x256.raw", (16, 16), (256, 256), "uint16")


def ensure(f: RawFile, log=print) -> RawFile:
    """Create ``f`` (once) with deterministic, non-trivial content."""
    os.makedirs(DATA_DIR, exist_ok=True)
    if os.path.exists(f.path) and os.path.getsize(f.path) == f.nbytes:
        return f
    t0 = time.perf_counter()
    rng = np.random.default_rng(42)
    frame = math.prod(f.sig)
    per_chunk = max(1, (64 << 20) // (frame * np.dtype(f.dtype).itemsize))
    # a smooth disc-like pattern plus noise, varying from frame to frame
    yy, xx = np.mgrid[: f.sig[0], : f.sig[1]] if len(f.sig) == 2 else (None, None)
    base = np.exp(-(((yy - f.sig[0] / 2) ** 2 + (xx - f.sig[1] / 2) ** 2) / (f.sig[0] ** 2 / 8)))
    tmp = f.path + ".part"
    with open(tmp, "wb") as fh:
        for start in range(0, f.n_frames, per_chunk):
            n = min(per_chunk, f.n_frames - start)
            scale = 1.0 + (np.arange(start, start + n) % 97)[:, None, None] / 97.0
            block = base[None] * scale * 1000.0 + rng.random((n,) + tuple(f.sig)) * 100.0
            fh.write(block.astype(f.dtype).tobytes())
    os.replace(tmp, f.path)
    log(f"created {f.path} ({f.nbytes / 2**30:.2f} GiB) in {time.perf_counter() - t0:.1f} s")
    return f


def warm(f: RawFile) -> float:
    """Read the whole file once so it sits in the page cache; returns seconds taken."""
    t0 = time.perf_counter()
    with open(f.path, "rb", buffering=0) as fh:
        buf = bytearray(64 << 20)
        while fh.readinto(buf):
            pass
    return time.perf_counter() - t0


def resident_fraction(f: RawFile) -> float | None:
    """Fraction of the file in the page cache (via util-linux ``fincore``), or None."""
    import shutil
    import subprocess

    if not shutil.which("fincore"):
        return None
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", f.path],
        capture_output=True,
        text=True,
    )
    try:
        return int(out.stdout.split()[0]) / f.nbytes
    except (IndexError, ValueError):
        return None


def evict(f: RawFile) -> None:
    """Drop this file's pages from the page cache (only this file, not the machine's)."""
    fd = os.open(f.path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
