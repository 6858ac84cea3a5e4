"""Static fallbacks show the widgets' final state in a notebook saved after running.

A real kernel executes a small notebook (nbclient, as ``jupyter nbconvert --execute`` does);
the test then reads the stored ``image/png`` outputs.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np
import pytest

import udfwidgets

pytest.importorskip("nbclient")
pytestmark = pytest.mark.usefixtures("ipympl")

ROOT = Path(udfwidgets.__file__).resolve().parent.parent

SETUP = """\
import numpy as np
from udfwidgets import Context
from udfwidgets.udf.sum import SumUDF
from udfwidgets.udf.sumsigudf import SumSigUDF
from udfwidgets.widgets import MatplotlibLivePlot, explore
ctx = Context(executor="threads")
yy, xx = np.mgrid[:16, :20]
data = (1.0 + yy[:, :, None, None] * 3 + xx[:, :, None, None]) * np.ones((16, 20, 8, 8))
data[..., 3:5, 3:5] += 50.0
ds = ctx.load("memory", data=data, num_partitions=4)
"""

# the live plot is displayed when the run starts (empty axes), the run fills it
LIVE = """\
plot = MatplotlibLivePlot("intensity", min_delta=0)
plot.display()  # empty axes: no data yet
res = await ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[plot], sync=False)
"""
FINAL = """\
import base64
print(base64.b64encode(plot.png()).decode())
"""
# a grid of two plots, as notebook 01 shows it
GRID = """\
res2 = await ctx.run_udf(
    dataset=ds, udf=[SumUDF(), SumSigUDF()], plots=[["intensity"], ["intensity"]], sync=False
)
"""
EXPLORER = """\
ex = explore(ctx, ds)
ex
"""
# a later cell changes the explorer (the live cursor shows one frame)
CURSOR = """\
assert ex.wait(60)
ex.show_frame(3, 4)
assert ex.wait(60)
print(base64.b64encode(ex.png()).decode())
"""
# the plot's canvas is shown live by a browser: its output must not be replaced
LIVE_IN_BROWSER = """\
plot.host.figure.canvas.syncing_data_url = False  # what ipympl does on the browser's 'initialized'
plot.display_model.cmap = "gray"
assert plot.image.get_cmap().name == "gray"
"""


def _run(cells: list[str], tmp_path: Path):
    import nbclient
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + env_path if env_path else "")
    try:
        client = nbclient.NotebookClient(
            nb,
            timeout=180,
            kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
        )
        client.execute()
    finally:
        if env_path:
            os.environ["PYTHONPATH"] = env_path
        else:
            os.environ.pop("PYTHONPATH", None)
    return nb


def _pngs(cell) -> list[bytes]:
    return [
        base64.b64decode(o["data"]["image/png"])
        for o in cell.outputs
        if "image/png" in o.get("data", {})
    ]


def _rgb(png: bytes) -> np.ndarray:
    import matplotlib.image as mimage

    return mimage.imread(io.BytesIO(png))[..., :3]


def _colourful(png: bytes) -> float:
    """Fraction of pixels with a colour (viridis), not grey/white/black (axes, text)."""
    rgb = _rgb(png)
    return float(((rgb.max(axis=2) - rgb.min(axis=2)) > 0.15).mean())


@pytest.mark.slow
def test_stored_fallbacks_show_final_state(tmp_path):
    nb = _run([SETUP, LIVE, FINAL, GRID, EXPLORER, CURSOR, LIVE_IN_BROWSER], tmp_path)
    live, final, grid, explorer, cursor = nb.cells[1:6]

    # the live plot: one stored output (replaced in place, not appended), showing the final image
    (stored,) = _pngs(live)
    final_png = base64.b64decode("".join(o["text"] for o in final.outputs).strip())
    assert _colourful(final_png) > 0.2  # the reference itself shows the image
    assert _rgb(stored).shape == _rgb(final_png).shape
    # the same picture (constrained layout may move an edge by a pixel between two renders)
    assert np.abs(_rgb(stored) - _rgb(final_png)).mean() < 0.02
    assert _colourful(stored) > 0.2  # not the empty axes first displayed
    (out,) = live.outputs
    assert out["output_type"] == "display_data"
    assert "intensity" in out["data"]["text/plain"] and "VBox" not in out["data"]["text/plain"]

    # the grid of two plots: both images, not empty axes
    (grid_png,) = _pngs(grid)
    left, right = np.array_split(_rgb(grid_png), 2, axis=1)
    for half in (left, right):
        assert ((half.max(axis=2) - half.min(axis=2)) > 0.15).mean() > 0.1

    # the explorer shown in one cell, changed in a later one: its output shows the change
    (ex_png,) = _pngs(explorer)
    cursor_png = base64.b64decode("".join(o["text"] for o in cursor.outputs).strip())
    assert np.abs(_rgb(ex_png) - _rgb(cursor_png)).mean() < 0.02
    assert "frame at scan" in str(explorer.outputs[0]["data"]["text/html"])

    # a canvas live in a browser keeps its output (viridis stays, no grey re-render)
    assert _colourful(stored) > 0.2


def test_displays_refresh_only_when_changed(monkeypatch):
    """refresh_displays replaces an output only when the figure or the summary changed."""
    from udfwidgets.widgets import static

    updates = []
    monkeypatch.setattr(
        "IPython.display.update_display",
        lambda bundle, raw, display_id: updates.append((display_id, bundle["text/plain"])),
    )

    class Host:
        version = 0
        mode = "image"

    class Thing(static.StaticView):
        def __init__(self):
            self.host, self.summary = Host(), "a"

        def _static_hosts(self):
            return [self.host]

        def summary_html(self):
            return self.summary

        def _repr_mimebundle_(self, **kwargs):
            return {"text/plain": f"v{self.host.version}{self.summary}"}

    thing = Thing()
    monkeypatch.setattr(static, "_displayed", [static._Shown(thing, "id1", thing._static_key())])
    assert static.refresh_displays() == 0 and updates == []
    thing.host.version += 1
    assert static.refresh_displays() == 1 and updates == [("id1", "v1a")]
    assert static.refresh_displays() == 0
    thing.summary = "b"
    assert static.refresh_displays() == 1 and updates[-1] == ("id1", "v1b")
    del thing  # a closed, collected widget leaves the list
    assert static.refresh_displays() == 0 and static._displayed == []
