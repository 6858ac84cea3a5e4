"""Kernel-side cost of one explorer update, A/B between two checkouts.

What the kernel does per update on a 64 x 64 scan of 128 x 128 uint16 frames read from a
``.npy`` memory map (ipympl canvases marked as shown in a browser), ``--what``:

- ``cursor`` (default): a live-cursor move: read the frame, update both figures, render and
  PNG-encode the pictures sent to the browser;
- ``region``: a new rectangle on the scan (region mode): its overlay redrawn, then SumUDF over
  the region (threads executor, 2 workers, debounce 0.05 s) and the new pattern drawn;
- ``detector``: a new disk on the pattern: its overlay redrawn, then ApplyMasksUDF over the
  file and the new virtual image drawn.

Each is timed from the change in Python to the last picture sent (``ex.wait()``). The
browser's own part (websocket, decoding) is measured by ``tests/test_browser.py`` (latency
report). Runs alternate between the checkouts (A, B, A, B, ...) so that both see the same load::

    python benchmarks/cursor_render.py --a /path/to/old/checkout --b . --rounds 4
    python benchmarks/cursor_render.py --a /path/to/old/checkout --b . --what region

Prints the median milliseconds per move of each run, the medians per checkout, their ratio
and the load average before and after; ``--out FILE`` also writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SHAPE = (64, 64, 128, 128)

MAKE = """
import numpy as np, sys
out = np.lib.format.open_memmap(sys.argv[1], mode="w+", dtype=np.uint16, shape={shape})
yy, xx = np.mgrid[:128, :128]
disk = ((yy - 64) ** 2 + (xx - 64) ** 2 < 12 ** 2).astype(np.uint16)
rng = np.random.default_rng(0)
for row in range(64):
    block = rng.integers(0, 4, size=(64, 128, 128), dtype=np.uint16)
    block += disk * np.uint16(100 + 10 * row)
    out[row] = block
out.flush()
"""

MOVE = """
import json, statistics, sys, time
from udfwidgets import Context
from udfwidgets.widgets import explore
ctx = Context(executor="threads", n_jobs=2)
ds = ctx.load("npy", path=sys.argv[1])
ex = explore(ctx, ds, backend="ipympl")
assert ex.wait(120)
for h in (ex.nav.host, ex.sig.host):
    h.figure.canvas.syncing_data_url = False  # as ipympl sets it when a browser shows it
    h.figure.canvas.draw()  # the first picture the browser asked for
ex.show_frame(1, 1)
what = "{what}"
if what != "cursor":
    ex.mode = "region"
    ex.nav.mode = ex.sig.mode = "replace"
    assert ex.wait(60)
times = []
for i in range({moves}):
    t = time.perf_counter()
    if what == "cursor":
        ex.show_frame(i % 64, (3 * i) % 64)
    elif what == "region":
        ex.nav.set_rectangle(top=i % 40, left=(3 * i) % 40, height=10 + i % 7, width=12)
        assert ex.wait(60)
    else:
        ex.sig.set_disk(centre=(64, 64), radius=8 + i % 20)
        assert ex.wait(60)
    times.append(time.perf_counter() - t)
assert ex.last_error is None, ex.last_error
print(json.dumps(statistics.median(times) * 1e3))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="checkout A (e.g. the main branch)")
    parser.add_argument("--b", default=".", help="checkout B (default: this one)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--moves", type=int, default=40, help="updates per run")
    parser.add_argument("--what", choices=("cursor", "region", "detector"), default="cursor")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    checkouts = {"A": str(Path(args.a).resolve()), "B": str(Path(args.b).resolve())}
    load_before = os.getloadavg()
    runs: dict[str, list[float]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "scan.npy")
        subprocess.run([sys.executable, "-c", MAKE.format(shape=SHAPE), path], check=True)
        for _ in range(args.rounds):
            for name, root in checkouts.items():
                env = dict(os.environ, PYTHONPATH=root, MPLBACKEND="agg")
                out = subprocess.run(
                    [sys.executable, "-c", MOVE.format(moves=args.moves, what=args.what), path],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=True,
                )
                runs[name].append(float(out.stdout.strip().splitlines()[-1]))
                print(f"{name} {root}: {runs[name][-1]:.1f} ms per {args.what}", flush=True)
    result = {
        "what": f"median ms per explorer {args.what} update (kernel: to the last picture sent)",
        "dataset": "64 x 64 x 128 x 128 uint16 .npy (memory map)",
        "checkouts": checkouts,
        "runs_ms": runs,
        "median_ms": {k: statistics.median(v) for k, v in runs.items()},
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "cpu_count": os.cpu_count(),
    }
    result["ratio_A_over_B"] = result["median_ms"]["A"] / result["median_ms"]["B"]
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
