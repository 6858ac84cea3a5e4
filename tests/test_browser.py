"""Real-browser test: JupyterLab in headless Chromium shows and runs notebooks 01-05.

What a DOM-free test cannot see: that the stored notebooks show pictures (not
``VBox(...)`` text) before anything runs, that the widgets render in JupyterLab,
that a live plot's canvas changes *while* a run progresses (ipympl only redraws
when the browser asks and the kernel is free), that a mouse drag on a selector
reaches Python, that no toolbar covers a figure, and how long the explorer's live
cursor takes from a pointer move to the new frame on the page.

The server serves the stored notebooks as they are (``stored/``) and copies with
outputs cleared (run here), so the originals are never touched. Python state is
read back by running code in the notebook's kernel and compared with plain-NumPy
references computed there. Screenshots and the latency report go to
``test-artifacts/browser/``: look at the screenshots.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import time
from pathlib import Path

import pytest

from browser_helpers import CHROMIUM, LabServer, NotebookPage, chromium_page, overlaps

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
NOTEBOOKS = (
    "01-getting-started.ipynb",
    "02-writing-udfs.ipynb",
    "03-roi-and-virtual-detectors.ipynb",
    "04-partial-results-and-async.ipynb",
    "05-performance-and-scaling.ipynb",
)
#: notebooks with figures, and how many figures each shows at least
FIGURES = {"01-getting-started.ipynb": 5, "03-roi-and-virtual-detectors.ipynb": 6}
FRAMES = re.compile(r"(\d+)\s*/\s*(\d+) frames")
REPRS = (
    "VBox(",
    "HBox(",
    "RoiSelector(",
    "SigMaskSelector(",
    "Explorer(children",
    "BufferInspector(children",
    "Canvas(toolbar",
)

#: the dataset of the latency measurement: 64 x 64 scan of 128 x 128 frames, from a file
LATENCY_NOTEBOOK_CELLS = [
    """%matplotlib widget
import numpy as np

from udfwidgets import Context
from udfwidgets.widgets import explore

path = "scan-64x64x128x128.npy"
out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(64, 64, 128, 128))
yy, xx = np.mgrid[:128, :128]
disk = ((yy - 64) ** 2 + (xx - 64) ** 2 < 12 ** 2).astype(np.uint16)
rng = np.random.default_rng(0)
cols = np.arange(64)
for row in range(64):
    block = rng.integers(0, 4, size=(64, 128, 128), dtype=np.uint16)
    block += disk * np.uint16(100 + 10 * row)
    block[cols, 100, (2 * cols) % 128] = 5000       # a spot that moves with the column
    out[row] = block
out.flush()
del out""",
    """ctx = Context(executor="threads", n_jobs=2)
ds = ctx.load("npy", path=path)
ex = explore(ctx, ds)
ex""",
]


#: region and detector updates timed per way of redrawing (blitted, full render)
UPDATES = 6

#: a small explorer and live plot for the theme switch
THEME_NOTEBOOK_CELLS = [
    """%matplotlib widget
import numpy as np

from udfwidgets import Context
from udfwidgets.widgets import explore, theme

ctx = Context(executor="inline")
yy, xx = np.mgrid[:32, :32]
data = np.ones((16, 16, 32, 32)) + 50.0 * (((yy - 16) ** 2 + (xx - 16) ** 2) < 36)
ds = ctx.load("memory", data=data)
ex = explore(ctx, ds)
ex""",
]

#: the figure's corner pixel (its background) as the page shows it: [r, g, b, a]
_JS_CORNER_PIXEL = """([cell, figure]) => {
  const fig = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell]
    .querySelectorAll('.jupyter-matplotlib-figure')[figure];
  const c = fig.querySelector('canvas');
  const d = c.getContext('2d').getImageData(2, 2, 1, 1).data;
  return Array.from(d);
}"""


#: computed colours of the explorer's mode buttons (a toggle group): chosen and not chosen
_JS_TOGGLE_COLOURS = """(cell) => {
  const root = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell];
  const group = root.querySelector('.udfw-explorer .udfw-toggle');
  const style = (b) => { const s = getComputedStyle(b);
                         return {bg: s.backgroundColor, fg: s.color, weight: s.fontWeight}; };
  const buttons = Array.from(group.querySelectorAll('.jupyter-button'));
  return {
    chosen: buttons.filter(b => b.classList.contains('mod-active')).map(style),
    others: buttons.filter(b => !b.classList.contains('mod-active')).map(style),
  };
}"""


def css_contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two computed CSS colours ``rgb(...)``/``rgba(...)``."""

    def lum(css):
        r, g, b = (float(v) / 255 for v in re.findall(r"[\d.]+", css)[:3])
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def assert_chosen_button_marked(page, cell: int, theme_name: str) -> dict:
    colours = page.evaluate(_JS_TOGGLE_COLOURS, cell)
    assert len(colours["chosen"]) == 1 and colours["others"], colours
    chosen = colours["chosen"][0]
    for other in colours["others"]:
        assert css_contrast(chosen["bg"], other["bg"]) >= 3, (theme_name, colours)
    assert css_contrast(chosen["bg"], chosen["fg"]) >= 4.5, (theme_name, colours)
    return colours


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does this)")
    import nbformat

    root = tmp_path_factory.mktemp("lab-root")
    (root / "stored").mkdir()
    for name in NOTEBOOKS:
        nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        nbformat.write(nb, root / "stored" / name)  # as committed: outputs and widget state
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, root / name)
    latency = nbformat.v4.new_notebook()
    latency.cells = [nbformat.v4.new_code_cell(src) for src in LATENCY_NOTEBOOK_CELLS]
    latency.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(latency, root / "latency.ipynb")
    themed = nbformat.v4.new_notebook()
    themed.cells = [nbformat.v4.new_code_cell(src) for src in THEME_NOTEBOOK_CELLS]
    themed.metadata["kernelspec"] = latency.metadata["kernelspec"]
    nbformat.write(themed, root / "theme.ipynb")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with LabServer(root, log_path=ARTIFACTS / "jupyter-server.log") as lab:
        # trusted, as a notebook one ran oneself: the widgets render from the stored state
        lab.trust(*(root / "stored" / name for name in NOTEBOOKS))
        yield lab


@pytest.fixture(scope="module")
def page(server):
    with chromium_page() as p:
        yield p


def find_cell(nb: NotebookPage, *needles: str) -> int:
    """Index of the first code cell whose source contains every needle."""
    for i, cell in enumerate(nb.cells()):
        if cell["type"] == "code" and all(n in cell["source"] for n in needles):
            return i
    raise AssertionError(f"no code cell contains {needles}")


def wait_until(predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def stem(name: str) -> str:
    return name.split("-")[0]


def assert_no_toolbar_over_figures(nb: NotebookPage, page) -> None:
    """Hover every figure (ipympl fades its toolbar in on hover), then compare page boxes."""
    figures = page.locator(".jp-Notebook .jupyter-matplotlib-figure")
    for i in range(figures.count()):
        fig = figures.nth(i)
        fig.scroll_into_view_if_needed()
        box = fig.bounding_box()
        if box:
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_timeout(50)
            boxes = nb.boxes()
            bad = [(t, c) for t in boxes["toolbars"] for c in boxes["canvases"] if overlaps(t, c)]
            assert not bad, f"toolbar elements overlap figures (tick labels hidden): {bad[:3]}"
    assert figures.count() == 0 or nb.boxes()["canvases"], "no figure canvas found"


# --- stored notebooks, before anything runs ------------------------------------------------
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_stored_notebook_shows_pictures_not_reprs(server, page, name):
    nb = NotebookPage(page, server)
    nb.open(f"stored/{name}")
    want = FIGURES.get(name, 0)
    if want:
        drawn = wait_until(lambda: sum(n > 2000 for n in nb.figure_pixels()) >= want, timeout=30)
        first = page.locator(
            ".jp-Notebook .jupyter-matplotlib-figure, .jp-Notebook .jp-OutputArea img"
        ).first
        first.scroll_into_view_if_needed()
    else:
        page.wait_for_timeout(1500)
        drawn = True
    nb.screenshot(ARTIFACTS / f"{stem(name)}-before-run.png")
    text = nb.output_text()
    shown = [r for r in REPRS if r in text]
    assert not shown, f"{name} shows text reprs instead of pictures: {shown}"
    assert "Error displaying widget" not in page.content()
    assert drawn, (
        f"{name}: expected {want} figures with content, got pixel counts {nb.figure_pixels()}"
    )


# --- notebooks run in the browser -------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "02-writing-udfs.ipynb",
        "04-partial-results-and-async.ipynb",
        "05-performance-and-scaling.ipynb",
    ],
)
def test_notebook_runs_in_the_browser(server, page, name):
    nb = NotebookPage(page, server)
    nb.open(name)
    for i in nb.code_cells():
        source = nb.cells()[i]["source"]
        if "interrupt_main" in source:  # the interrupt demo raises KeyboardInterrupt on purpose
            nb.start_cell(i)
            wait_until(lambda: nb.page.evaluate("() => window.__udfwCell.done"), timeout=60)
            continue
        nb.run_cell(i)
    nb.screenshot(ARTIFACTS / f"{stem(name)}-after-run.png")
    assert "Error displaying widget" not in page.content()


def test_getting_started_live_plots_and_widgets(server, page):
    nb = NotebookPage(page, server)
    nb.open("01-getting-started.ipynb")
    live = find_cell(nb, "plots=", "sync=False")

    for i in nb.code_cells():
        if i != live:
            nb.run_cell(i)
            continue
        # The live-plot cell: start it, and watch its canvases while the run goes on.
        nb.start_cell(i)
        states, partial_counts = [], set()
        t0 = time.monotonic()
        while not nb.cell_finished(i):
            assert time.monotonic() - t0 < 120, "the live run did not finish in 120 s"
            images = tuple(nb.canvas_images(i))
            if images and all(images) and (not states or states[-1] != images):
                states.append(images)
            for text in nb.texts(i, ".widget-label, .widget-html, .widget-inline-hbox"):
                m = FRAMES.search(text)
                if m and 0 < int(m.group(1)) < int(m.group(2)):
                    partial_counts.add(int(m.group(1)))
            if len(states) == 3:
                nb.screenshot(ARTIFACTS / "01-live-plot-running.png", i)
            time.sleep(0.1)
        nb.screenshot(ARTIFACTS / "01-live-plot-finished.png", i)
        assert len(states[0]) == 2, f"expected two live plots, saw {len(states[0])} figures"
        # blank -> partial -> ... -> final: the picture changed while the run progressed
        assert len(states) >= 3, f"the live plots showed only {len(states)} distinct pictures"
        assert partial_counts, "no partial 'n / total frames' count was shown during the run"
        # one grid, one progress bar for the run
        assert len(nb.texts(i, ".udfw-live-grid")) == 1
        assert len(nb.texts(i, ".widget-hprogress")) == 2  # one per plot, one of them hidden

    # The run's results, read back from the browser's kernel, against NumPy there.
    assert nb.kernel_json(
        "bool(np.allclose(live[1]['intensity'].data, big.data.sum(axis=(2, 3)), rtol=1e-5))"
    )
    check = find_cell(nb, "the live run's results match NumPy")
    assert "match NumPy" in "".join(nb.texts(check, ".jp-OutputArea-output"))

    # Rendered widgets: ipympl canvases, the plots' and inspector's controls.
    assert nb.count(".jupyter-matplotlib canvas") >= 4 * 2
    assert nb.count(".udfw-display-controls") >= 3  # two live plots, the inspector
    assert nb.count(".udfw-figure-toolbar") >= 3
    assert nb.count(".widget-dropdown") >= 3  # colour maps, inspector buffer choice
    assert nb.count(".widget-slider") >= 1  # inspector: the mask axis
    inspector = find_cell(nb, "BufferInspector(", "channel_names=")
    assert "udf1.intensity" in "".join(nb.texts(inspector, "select, option"))
    assert "Error displaying widget" not in page.content()
    nb.screenshot(ARTIFACTS / "01-inspector.png", inspector)
    nb.screenshot(ARTIFACTS / "01-after-run.png")
    assert_no_toolbar_over_figures(nb, page)


def wait_figures_ready(nb: NotebookPage, cell: int, *selectors: str) -> None:
    """Wait until the page's views of these widgets' ipympl canvases are connected to the
    kernel (ipympl's "initialized" message: the kernel then sends pictures as diffs to the
    page) and their pictures have settled; a pointer event sent before that may find a
    figure that is not ready yet."""
    ready = " and ".join(f"not {s}.figure.canvas.syncing_data_url" for s in selectors)
    assert wait_until(lambda: nb.kernel_json(f"bool({ready})"), timeout=60), (
        f"the page never connected to the canvases of {selectors}"
    )
    assert nb.wait_pictures_settled(cell), "the figures kept changing (or stayed blank)"


def canvas_fractions(nb: NotebookPage, fig_expr: str, ax_expr: str, points) -> list:
    """Canvas positions (fractions of its box) of data points (x=col, y=row) of an axes."""
    pts = ", ".join(f"({x}, {y})" for x, y in points)
    return nb.kernel_json(
        f"[[float(px / {fig_expr}.bbox.width), float(1 - py / {fig_expr}.bbox.height)] "
        f"for px, py in {ax_expr}.transData.transform([{pts}])]"
    )


def test_roi_selector_drag_updates_python_and_linked_pattern(server, page):
    nb = NotebookPage(page, server)
    nb.open("03-roi-and-virtual-detectors.ipynb")
    for i in nb.code_cells():
        nb.run_cell(i)
    nb.screenshot(ARTIFACTS / "03-after-run.png")

    # Rendered: tool, mode and scale buttons, invert/clear/home, sliders, ipympl canvases.
    assert nb.count(".widget-toggle-buttons") >= 3 * 3
    assert nb.count(".widget-button") >= 3 * 3
    assert nb.count(".widget-slider") >= 2
    assert nb.count(".jupyter-matplotlib canvas") >= 5 * 2
    assert "Error displaying widget" not in page.content()

    # 1. The standalone RoiSelector: drag a rectangle over rows 20..27, columns 2..9.
    sel_cell = find_cell(nb, "RoiSelector.for_dataset(ctx, ds)")
    nb.figure_canvas(sel_cell).scroll_into_view_if_needed()
    wait_figures_ready(nb, sel_cell, "selector")
    before = nb.kernel_json("int(selector.roi.sum())")
    start, end = canvas_fractions(nb, "selector.figure", "selector.ax", [(1.6, 19.6), (9.4, 27.4)])
    nb.drag(nb.figure_canvas(sel_cell), start, end)
    got = wait_until(
        lambda: nb.kernel_json("[int(selector.roi.sum()), bool(selector.roi[20:28, 2:10].all())]")[
            1
        ],
        timeout=10,
    )
    assert got, "the drag did not select rows 20..27, columns 2..9 in selector.roi"
    assert nb.kernel_json("int(selector.roi.sum())") > before
    nb.screenshot(ARTIFACTS / "03-roi-selector-dragged.png", sel_cell)

    # 2. The explorer (region mode, set by the notebook): a drag on its navigation image
    #    changes ex.nav.roi, and the summed pattern next to it follows.
    ex_cell = find_cell(nb, "explore(ctx, ds)")
    assert nb.kernel_json("ex.mode") == "region"
    assert nb.kernel_json("bool(ex.wait(30))")
    nb.figure_canvas(ex_cell, 0).scroll_into_view_if_needed()
    wait_figures_ready(nb, ex_cell, "ex.nav", "ex.sig")
    pattern_canvas_before = nb.canvas_images(ex_cell)[1]
    roi_before = nb.kernel_json("ex.nav.roi.astype(int).tolist()")
    start, end = canvas_fractions(nb, "ex.nav.figure", "ex.nav.ax", [(17.6, 1.6), (26.4, 9.4)])
    nb.drag(nb.figure_canvas(ex_cell, 0), start, end)
    assert wait_until(lambda: nb.kernel_json("bool(ex.nav.roi[2:10, 18:27].all())"), timeout=10), (
        "the drag on the explorer's navigation image did not reach ex.nav.roi"
    )
    assert nb.kernel_json("ex.nav.roi.astype(int).tolist()") != roi_before
    assert nb.kernel_json("bool(ex.wait(30))")
    assert nb.kernel_json("ex.last_error is None and True")
    assert nb.kernel_json("bool(np.allclose(ex.pattern, data[ex.nav.roi].sum(axis=0), rtol=1e-5))")
    changed = wait_until(lambda: nb.canvas_images(ex_cell)[1] != pattern_canvas_before, timeout=10)
    nb.screenshot(ARTIFACTS / "03-explorer-dragged.png", ex_cell)
    assert changed, "the linked pattern's canvas did not change after the drag"

    # 3. The live cursor: back in cursor mode, hovering shows a frame.
    nb.kernel_exec("ex.mode = 'cursor'")
    (point,) = canvas_fractions(nb, "ex.nav.figure", "ex.nav.ax", [(5.0, 10.0)])
    canvas = nb.figure_canvas(ex_cell, 0)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + point[0] * box["width"], box["y"] + point[1] * box["height"])
    assert wait_until(lambda: nb.kernel_json("ex.cursor") == [10, 5], timeout=10)
    assert nb.kernel_json("bool(ex.wait(10) and np.array_equal(ex.pattern, data[10, 5]))")
    nb.screenshot(ARTIFACTS / "03-explorer-live-cursor.png", ex_cell)
    assert_no_toolbar_over_figures(nb, page)


# --- the live cursor's latency, from a file ---------------------------------------------------
def test_live_cursor_and_update_latency(server, page):
    load_at_start = os.getloadavg()
    nb = NotebookPage(page, server)
    nb.open("latency.ipynb")
    for i in nb.code_cells():
        nb.run_cell(i)
    ex_cell = find_cell(nb, "explore(ctx, ds)")
    nav_canvas = nb.figure_canvas(ex_cell, 0)
    sig_canvas = nb.figure_canvas(ex_cell, 1)
    nav_canvas.scroll_into_view_if_needed()
    assert nb.kernel_json("bool(ex.wait(60))")
    wait_figures_ready(nb, ex_cell, "ex.nav", "ex.sig")

    def page_point(canvas, fraction):
        box = canvas.bounding_box()
        return box["x"] + fraction[0] * box["width"], box["y"] + fraction[1] * box["height"]

    # 1. cursor: move to 24 scan positions, one after the other
    positions = [(r, c) for r in (5, 20, 35, 50) for c in (3, 13, 23, 33, 43, 58)]
    fractions = canvas_fractions(nb, "ex.nav.figure", "ex.nav.ax", [(c, r) for r, c in positions])
    cursor_ms = []
    for frac in fractions:
        nb.probe_start(ex_cell, 0, 1, "mousemove")
        page.mouse.move(*page_point(nav_canvas, frac))
        cursor_ms.append(nb.probe_wait())
        nb.wait_pictures_settled(ex_cell, quiet=0.2, timeout=10)
    last = positions[-1]

    def near_last():  # the page point may land on a neighbouring scan position (rounding)
        got = nb.kernel_json("ex.cursor")
        return got is not None and all(abs(g - w) <= 1 for g, w in zip(got, last))

    assert wait_until(near_last, timeout=20), nb.kernel_json(
        "[ex.cursor, repr(ex.last_error), ex.nav.figure.canvas.syncing_data_url]"
    )
    assert nb.kernel_json(
        "bool(ex.wait(10) and np.array_equal(ex.pattern, "
        "np.load(path, mmap_mode='r')[ex.cursor[0], ex.cursor[1]]))"
    )
    nb.screenshot(ARTIFACTS / "latency-live-cursor.png", ex_cell)

    # 2. region: drag rectangles on the scan; 3. detector: drag disks on the pattern
    #    Before each probe, the pictures of the last update have landed on the page (else the
    #    probe would time that one). Each update is timed with the blitted redraw of the
    #    explorer (only image and overlay, the default) and, interleaved, with a full render
    #    of the figure (blit_updates off): the ratio of the two medians is what the machine's
    #    load does not change much.
    nb.kernel_exec("ex.mode = 'region'\nex.nav.mode = 'replace'\nex.sig.mode = 'replace'")
    ms: dict[str, list] = {k: [] for k in ("region", "region_full", "detector", "detector_full")}
    kernel_ms: dict[str, list] = {k: [] for k in ms}

    def set_blit(on: bool) -> None:
        nb.kernel_exec(f"ex.nav.blit_updates = ex.sig.blit_updates = {on}")

    for k in range(2 * UPDATES):
        blit = k % 2 == 0
        key = "region" if blit else "region_full"
        set_blit(blit)
        (a, b) = canvas_fractions(
            nb,
            "ex.nav.figure",
            "ex.nav.ax",
            [(4 + 4 * k, 6 + 2 * (k % 8)), (14 + 4 * k, 20 + 2 * (k % 8))],
        )
        assert nb.kernel_json("bool(ex.wait(30))")
        assert nb.wait_pictures_settled(ex_cell)
        nb.probe_start(ex_cell, 0, 1, "mouseup")
        nb.drag(nav_canvas, a, b)
        ms[key].append(nb.probe_wait())
        assert nb.kernel_json("bool(ex.wait(30))")
        kernel_ms[key].append(nb.kernel_json("round(ex.timings['pattern'] * 1000, 1)"))
        assert nb.kernel_json(
            "bool(np.allclose(ex.pattern, np.load(path, mmap_mode='r')"
            "[ex.nav.roi].sum(axis=0, dtype=np.float64), rtol=1e-5))"
        )
    sig_canvas.scroll_into_view_if_needed()
    for k in range(2 * UPDATES):
        blit = k % 2 == 0
        key = "detector" if blit else "detector_full"
        set_blit(blit)
        (a, b) = canvas_fractions(
            nb, "ex.sig.figure", "ex.sig.ax", [(64, 64), (64 + 8 + 2 * k, 64)]
        )
        assert nb.wait_pictures_settled(ex_cell)
        nb.probe_start(ex_cell, 1, 0, "mouseup")
        nb.drag(sig_canvas, a, b)
        ms[key].append(nb.probe_wait())
        assert nb.kernel_json("bool(ex.wait(30))")
        kernel_ms[key].append(nb.kernel_json("round(ex.timings['virtual'] * 1000, 1)"))
        assert nb.kernel_json(
            "bool(np.allclose(ex.virtual_image, np.load(path, mmap_mode='r')"
            "[..., ex.sig.mask].sum(axis=-1, dtype=np.float64), rtol=1e-4))"
        )
    set_blit(True)
    # what the page shows is what the kernel has: the artists' data are the NumPy references
    assert nb.kernel_json(
        "bool(np.allclose(np.asarray(ex.sig.artist.get_array()), np.load(path, mmap_mode='r')"
        "[ex.nav.roi].sum(axis=0, dtype=np.float64), rtol=1e-5))"
    )
    assert nb.kernel_json(
        "bool(np.allclose(np.asarray(ex.nav.artist.get_array()), np.load(path, mmap_mode='r')"
        "[..., ex.sig.mask].sum(axis=-1, dtype=np.float64), rtol=1e-4))"
    )
    assert nb.kernel_json("ex.nav.title").startswith("virtual image: disk")
    nb.screenshot(ARTIFACTS / "latency-region-and-detector.png", ex_cell)

    def median(values):
        good = [v for v in values if v is not None]
        return statistics.median(good) if len(good) == len(values) else float("inf")

    load_before = os.getloadavg()
    report = {
        "dataset": "64 x 64 scan of 128 x 128 uint16 frames, .npy file (memory map)",
        "executor": "threads, 2 workers",
        "cursor_ms": cursor_ms,
        "cursor_median_ms": median(cursor_ms),
    }
    for key, values in ms.items():
        report[f"{key}_ms"] = values
        report[f"{key}_median_ms"] = median(values)
        report[f"{key}_kernel_ms"] = kernel_ms[key]  # request to final image, in the kernel
    report["full_over_blit_ratio"] = {
        what: round(report[f"{what}_full_median_ms"] / report[f"{what}_median_ms"], 2)
        for what in ("region", "detector")
    }
    report.update(
        {
            "kernel_timings_s": nb.kernel_json("{k: round(v, 4) for k, v in ex.timings.items()}"),
            "load_average": load_before,
            "load_average_at_start": load_at_start,
            "cpu_count": os.cpu_count(),
            "measured": "from the pointer event in the page to the changed picture on the page",
            "updates": "region/detector: blitted (the default); *_full: full render, "
            "interleaved with them in the same run",
        }
    )
    # The targets (cursor < 150 ms, region and detector < 300 ms) are judged from this report,
    # not asserted: a timed assertion fails on a loaded machine. Every update must have
    # arrived, though (a missing one makes its median infinite).
    report["targets_ms"] = {"cursor": 150, "region": 300, "detector": 300}
    report["targets_met"] = {
        what: report[f"{what}_median_ms"] < target for what, target in report["targets_ms"].items()
    }
    (ARTIFACTS / "latency-report.json").write_text(json.dumps(report, indent=2))
    for what in ms:
        assert math.isfinite(report[f"{what}_median_ms"]), (what, report)
    assert math.isfinite(report["cursor_median_ms"]), report


# --- figures follow JupyterLab's theme --------------------------------------------------------
def test_figures_follow_jupyterlab_theme(server, page):
    nb = NotebookPage(page, server)
    nb.open("theme.ipynb")
    for i in nb.code_cells():
        nb.run_cell(i)
    ex_cell = find_cell(nb, "explore(ctx, ds)")
    nb.figure_canvas(ex_cell, 0).scroll_into_view_if_needed()
    assert nb.kernel_json("bool(ex.wait(30))")
    wait_figures_ready(nb, ex_cell, "ex.nav", "ex.sig")

    def state():
        # under the render lock: a PNG being made (a stored snapshot) paints the face white
        return nb.kernel_json(
            "(lambda h: (h.lock.acquire(), [theme.page_theme().get('name'), "
            "[float(v) for v in h.figure.get_facecolor()]], h.lock.release())[1])(ex.nav.host)"
        )

    def luminance(rgba):
        return 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]

    # the probe reported JupyterLab Light: white figures
    assert wait_until(lambda: state()[0] == "light", timeout=20), state()
    assert state()[1] == [1.0, 1.0, 1.0, 1.0]
    assert nb.wait_pictures_settled(ex_cell)
    light_corner = page.evaluate(_JS_CORNER_PIXEL, [ex_cell, 0])
    assert luminance(light_corner) > 200, light_corner
    nb.screenshot(ARTIFACTS / "theme-light.png", ex_cell)
    toggles = {"light": assert_chosen_button_marked(page, ex_cell, "light")}
    try:
        page.evaluate(
            "() => window.jupyterapp.commands.execute("
            "'apputils:change-theme', {theme: 'JupyterLab Dark'})"
        )
        # the kernel got the dark theme and restyled the artists; the page shows them
        assert wait_until(lambda: state()[0] == "dark", timeout=20), state()
        face = state()[1]
        assert luminance([255 * v for v in face[:3]]) < 60 and face[3] == 1.0, face
        dark = wait_until(
            lambda: luminance(page.evaluate(_JS_CORNER_PIXEL, [ex_cell, 0])) < 60, timeout=20
        )
        nb.wait_pictures_settled(ex_cell)
        nb.screenshot(ARTIFACTS / "theme-dark.png", ex_cell)
        assert dark, page.evaluate(_JS_CORNER_PIXEL, [ex_cell, 0])
        assert luminance(page.evaluate(_JS_CORNER_PIXEL, [ex_cell, 1])) < 60  # the pattern too
        toggles["dark"] = assert_chosen_button_marked(page, ex_cell, "dark")
        (ARTIFACTS / "toggle-colours.json").write_text(json.dumps(toggles, indent=2))
    finally:  # the theme is a saved setting: the next page must start light again
        page.evaluate(
            "() => window.jupyterapp.commands.execute("
            "'apputils:change-theme', {theme: 'JupyterLab Light'})"
        )
    assert wait_until(lambda: state()[0] == "light", timeout=20), state()
