"""Kernel-side cost of dragging a selection tool's rubber band, the way before and after issue 17.

A drag in the page (press, 15 motion events, release; ``tests/test_browser.py`` drags with
``mouse.move(..., steps=15)``) on the explorer's figures (64 x 64 scan, 128 x 128 pattern;
ipympl canvases marked as shown in a browser, pictures PNG-encoded and dropped):

- ``full``: how the selectors redrew before: ipympl's canvas has no matplotlib blitting, so
  each motion event asked the page for a picture and the page's request made a full render
  (counted here as one render per event, the most the page asks for);
- ``blit``: the rubber band drawn over the figure host's saved background
  (``FigureHost.blit``), the selectors' way now.

Both ways alternate in one process (full, blit, blit, full, ...), so that they see the same
load. Prints the median milliseconds per drag of each, their ratio and the load average
before and after::

    python benchmarks/selector_drag.py --rounds 12
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()

    import numpy as np
    from matplotlib.backend_bases import MouseEvent

    from udfwidgets.widgets import RoiSelector, SigMaskSelector
    from udfwidgets.widgets.figure import FigureHost

    FigureHost._snapshot_soon = lambda self: None  # type: ignore[method-assign]
    print("load average before:", open("/proc/loadavg").read().strip())
    rng = np.random.default_rng(0)
    for cls, shape, tool in (
        (RoiSelector, (64, 64), "rectangle"),
        (SigMaskSelector, (128, 128), "disk"),
    ):
        sel = cls(rng.random(shape), backend="ipympl", tool=tool)
        sel.blit_updates = True  # as in the explorer
        canvas = sel.figure.canvas
        canvas.syncing_data_url = False  # a page shows the figure
        canvas.send = lambda content=None, buffers=None: None
        sel.host.refresh(push=True)
        selector = sel.selectors[tool]
        blitted = selector.update
        ax = sel.ax

        def event(name, xy, canvas=canvas, ax=ax):
            x, y = ax.transData.transform(xy)
            MouseEvent(name, canvas, x, y, button=1)._process()

        times: dict[str, list[float]] = {"full": [], "blit": []}
        for r in range(args.rounds):
            for way in ("full", "blit") if r % 2 == 0 else ("blit", "full"):
                # full: the render the page's draw request makes (ipympl's handle_draw)
                selector.update = canvas.draw if way == "full" else blitted
                t = time.perf_counter()
                event("button_press_event", (5, 5))
                for k in range(1, 16):
                    event("motion_notify_event", (5 + 2 * k, 5 + 1.5 * k))
                event("button_release_event", (35, 27.5))
                times[way].append((time.perf_counter() - t) * 1000)
        full, blit = statistics.median(times["full"]), statistics.median(times["blit"])
        print(
            f"{cls.__name__} {tool}: ms per drag, median of {args.rounds}: "
            f"full {full:.0f}, blit {blit:.0f}, ratio {full / blit:.1f}"
        )
        sel.close()
    print("load average after:", open("/proc/loadavg").read().strip())


if __name__ == "__main__":
    main()
