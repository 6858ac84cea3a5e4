"""Real-browser test: JupyterLab in headless Chromium runs notebooks 01 and 03.

What a DOM-free test cannot see: that the widgets render in JupyterLab, that a
live plot's canvas changes *while* a run progresses (ipympl only redraws when the
browser asks and the kernel is free), and that a mouse drag on a RoiSelector's
canvas reaches the Python side and updates the linked pattern.

The server serves a copy of the notebooks (outputs cleared), so the originals are
never touched. Python state is read back by running code in the notebook's kernel
and compared with plain-NumPy references computed there. Screenshots go to
``test-artifacts/browser/``.
"""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from browser_helpers import CHROMIUM, LabServer, NotebookPage, chromium_page

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
NOTEBOOKS = ("01-getting-started.ipynb", "03-roi-and-virtual-detectors.ipynb")
FRAMES = re.compile(r"(\d+)\s*/\s*(\d+) frames")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does this)")
    import nbformat

    root = tmp_path_factory.mktemp("lab-root")
    for name in NOTEBOOKS:
        nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, root / name)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with LabServer(root, log_path=ARTIFACTS / "jupyter-server.log") as lab:
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
            assert time.monotonic() - t0 < 60, "the live run did not finish in 60 s"
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

    # The run's results, read back from the browser's kernel, against NumPy there.
    assert nb.kernel_json(
        "bool(np.allclose(live[1]['intensity'].data, big.data.sum(axis=(2, 3)), rtol=1e-5))")
    check = find_cell(nb, "the live run's results match NumPy")
    assert "match NumPy" in "".join(nb.texts(check, ".jp-OutputArea-output"))

    # Rendered widgets: ipympl canvases, the plots' and inspector's controls.
    assert nb.count(".jupyter-matplotlib canvas") >= 4 * 2
    assert nb.count(".widget-checkbox") >= 2            # "log scale" of each live plot
    assert nb.count(".widget-dropdown") >= 3            # colour maps, inspector buffer choice
    assert nb.count(".widget-slider") >= 1              # inspector: the mask axis
    inspector = find_cell(nb, "BufferInspector(results)")
    assert "udf1.intensity" in "".join(nb.texts(inspector, "select, option"))
    assert "Error displaying widget" not in page.content()
    nb.screenshot(ARTIFACTS / "01-inspector.png", inspector)


def canvas_fractions(nb: NotebookPage, fig_expr: str, ax_expr: str, points) -> list:
    """Canvas positions (fractions of its box) of data points (x=col, y=row) of an axes."""
    pts = ", ".join(f"({x}, {y})" for x, y in points)
    return nb.kernel_json(
        f"[[float(px / {fig_expr}.bbox.width), float(1 - py / {fig_expr}.bbox.height)] "
        f"for px, py in {ax_expr}.transData.transform([{pts}])]")


def test_roi_selector_drag_updates_python_and_linked_pattern(server, page):
    nb = NotebookPage(page, server)
    nb.open("03-roi-and-virtual-detectors.ipynb")
    for i in nb.code_cells():
        nb.run_cell(i)
    nb.screenshot(ARTIFACTS / "03-after-run-all.png")

    # Rendered: tool and mode buttons, invert/clear, the ring slider, ipympl canvases.
    assert nb.count(".widget-toggle-buttons") >= 2 * 3
    assert nb.count(".widget-button") >= 2 * 3
    assert nb.count(".widget-slider") >= 2
    assert nb.count(".jupyter-matplotlib canvas") >= 5 * 2
    assert "Error displaying widget" not in page.content()

    # 1. The standalone RoiSelector: drag a rectangle over rows 20..27, columns 2..9.
    sel_cell = find_cell(nb, "RoiSelector.for_dataset(ctx, ds)")
    before = nb.kernel_json("int(selector.roi.sum())")
    start, end = canvas_fractions(nb, "selector.figure", "selector.ax", [(1.6, 19.6), (9.4, 27.4)])
    nb.drag(nb.figure_canvas(sel_cell), start, end)
    got = wait_until(lambda: nb.kernel_json(
        "[int(selector.roi.sum()), bool(selector.roi[20:28, 2:10].all())]")[1], timeout=10)
    assert got, "the drag did not select rows 20..27, columns 2..9 in selector.roi"
    assert nb.kernel_json("int(selector.roi.sum())") > before
    nb.screenshot(ARTIFACTS / "03-roi-selector-dragged.png", sel_cell)

    # 2. The explorer: a drag on its navigation image changes ex.nav.roi, and the
    #    summed pattern next to it follows (in Python and on the page).
    ex_cell = find_cell(nb, "explore(ctx, ds)")
    pattern_canvas_before = nb.canvas_images(ex_cell)[1]
    roi_before = nb.kernel_json("ex.nav.roi.astype(int).tolist()")
    start, end = canvas_fractions(nb, "ex.nav.figure", "ex.nav.ax", [(17.6, 1.6), (26.4, 9.4)])
    nb.drag(nb.figure_canvas(ex_cell, 0), start, end)
    assert wait_until(lambda: nb.kernel_json("bool(ex.nav.roi[2:10, 18:27].all())"), timeout=10), \
        "the drag on the explorer's navigation image did not reach ex.nav.roi"
    assert nb.kernel_json("ex.nav.roi.astype(int).tolist()") != roi_before
    assert nb.kernel_json("bool(ex.wait(30))")
    assert nb.kernel_json("ex.last_error is None and True")
    # the pattern shown is the sum of the selected frames (NumPy in the same kernel)
    assert nb.kernel_json(
        "bool(np.allclose(ex.pattern, data[ex.nav.roi].sum(axis=0), rtol=1e-5))")
    changed = wait_until(lambda: nb.canvas_images(ex_cell)[1] != pattern_canvas_before,
                         timeout=10)
    nb.screenshot(ARTIFACTS / "03-explorer-dragged.png", ex_cell)
    assert changed, "the linked pattern's canvas did not change after the drag"
