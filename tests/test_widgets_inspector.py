"""BufferInspector: statistics, slices, clicks and live updates against plain NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backend_bases import MouseEvent
from matplotlib.colors import LogNorm

from udfwidgets import UDF
from udfwidgets.udf.sum import SumUDF
from udfwidgets.udf.sumsigudf import SumSigUDF
from udfwidgets.widgets import BufferInspector

SHAPE = (8, 10, 6, 7)


@pytest.fixture
def data(rng):
    return rng.random(SHAPE, dtype=np.float32)


@pytest.fixture
def ds(ctx, data):
    return ctx.load("memory", data=data, num_partitions=4)


class FrameStatsUDF(UDF):
    """Per frame: (sum, max, min) as a nav buffer with extra_shape (3,)."""

    def get_result_buffers(self):
        return {"stats": self.buffer(kind="nav", extra_shape=(3,), dtype="float64")}

    def process_frame(self, frame):
        self.results.stats[:] = (frame.sum(), frame.max(), frame.min())


class NaNyUDF(UDF):
    """Frame sum, NaN where the first pixel exceeds 0.5."""

    def get_result_buffers(self):
        return {"value": self.buffer(kind="nav", dtype="float64")}

    def process_frame(self, frame):
        self.results.value[:] = np.nan if frame[0, 0] > 0.5 else frame.sum()


class ObjectUDF(UDF):
    def get_result_buffers(self):
        return {"peaks": self.buffer(kind="nav", dtype=object)}

    def process_frame(self, frame):
        self.results.peaks[0] = {"n": int((frame > 0.9).sum())}


def table_rows(insp):
    """The description table as {field: text}, parsed from the HTML widget."""
    import re

    return dict(
        re.findall(r"<tr><th[^>]*>([^<]*)</th><td[^>]*>([^<]*)</td></tr>", insp._table.value)
    )


def stat_rows(insp):
    """The statistics table as {label: (on screen, whole buffer)}."""
    import re

    found = re.findall(
        r"<tr><th[^>]*>([^<]*)</th><td[^>]*>([^<]*)</td><td[^>]*>([^<]*)</td>", insp._table.value
    )
    return {k: (a, b) for k, a, b in found}


def click(insp, ax, x, y):
    px, py = ax.transData.transform((x, y))
    event = MouseEvent("button_press_event", insp.figure.canvas, px, py, button=1)
    insp.figure.canvas.callbacks.process(event.name, event)


def test_nav_buffer_stats_with_roi(ctx, ds, data):
    roi = np.zeros(SHAPE[:2], bool)
    roi[2:6, 1:9:2] = True
    insp = BufferInspector(ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi))
    ref = data.sum(axis=(2, 3))[roi].astype(np.float64)
    rows = table_rows(insp)
    assert rows["name"] == "intensity" and rows["kind"] == "nav"
    assert rows["dtype"] == "float32" and rows["shape"] == "(8, 10)"
    assert rows["extra_shape"] == "()"
    assert rows["valid"] == f"{roi.sum()} / 80 ({100 * roi.mean():.1f} %)"
    stats = stat_rows(insp)
    assert stats["NaN values"] == ("0", "0")  # the NaN outside the roi is not a value
    s = insp.stats
    np.testing.assert_allclose(
        [s["min"], s["max"], s["mean"], s["std"]],
        [ref.min(), ref.max(), ref.mean(), ref.std()],
        rtol=1e-5,
    )
    # the whole scan is on screen: both columns agree, in words
    assert stats["smallest"] == (f"{s['min']:.6g}",) * 2
    assert stats["standard deviation"] == (f"{s['std']:.6g}",) * 2
    assert stats["values counted"] == (str(roi.sum()),) * 2
    # the image: the scan, invalid positions masked
    im = insp._main_ax.images[0]
    arr = im.get_array()
    np.testing.assert_array_equal(np.ma.getmaskarray(arr), ~roi)
    np.testing.assert_allclose(arr.compressed(), ref, rtol=1e-5)
    assert insp.selected.shape == (8, 10)


def test_nan_count(ctx, ds, data):
    insp = BufferInspector(ctx.run_udf(dataset=ds, udf=NaNyUDF()))
    nan = data[..., 0, 0] > 0.5
    sums = data.sum(axis=(2, 3), dtype=np.float64)[~nan]
    assert insp.stats["nan_count"] == nan.sum() > 0
    np.testing.assert_allclose(insp.stats["mean"], sums.mean(), rtol=1e-6)
    assert stat_rows(insp)["NaN values"] == (str(nan.sum()),) * 2


def test_several_udfs_and_switching(ctx, ds, data):
    res = ctx.run_udf(dataset=ds, udf=[SumSigUDF(), SumUDF()])
    insp = BufferInspector(res)
    assert insp.entries == ["udf0.intensity", "udf1.intensity"]
    assert insp._dropdown.options == ("udf0.intensity", "udf1.intensity")
    np.testing.assert_allclose(insp.selected, data.sum(axis=(2, 3)), rtol=1e-5)
    insp._dropdown.value = "udf1.intensity"
    assert insp.buffer == "udf1.intensity"
    np.testing.assert_allclose(insp.selected, data.sum(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(
        insp._main_ax.images[0].get_array(), data.sum(axis=(0, 1)), rtol=1e-5
    )
    assert table_rows(insp)["kind"] == "sig"
    html = insp._repr_html_()
    assert "udf0.intensity" in html and "udf1.intensity" in html


def test_extra_dims_slider_and_click(ctx, ds, data):
    insp = BufferInspector(ctx.run_udf(dataset=ds, udf=FrameStatsUDF()))
    assert set(insp.slider_axes) == {2}
    assert insp.slider_axes[2].description == "channel" and insp.slider_axes[2].max == 2
    np.testing.assert_allclose(insp.selected, data.sum(axis=(2, 3)), rtol=1e-5)
    insp.slider_axes[2].value = 1  # through the slider widget
    np.testing.assert_allclose(insp.selected, data.max(axis=(2, 3)))
    np.testing.assert_allclose(insp._main_ax.images[0].get_array(), data.max(axis=(2, 3)))
    assert insp._main_ax.get_title(loc="left") == "stats (channel = 1)"
    assert insp._main_ax.get_ylabel() == "scan row" and insp._main_ax.get_xlabel() == "scan column"
    # on screen: the max of each frame; whole buffer: all three channels
    maxes = data.max(axis=(2, 3)).astype(np.float64)
    whole = np.stack(
        [data.sum(axis=(2, 3)), data.max(axis=(2, 3)), data.min(axis=(2, 3))], axis=-1
    ).astype(np.float64)
    on_screen, everything = stat_rows(insp)["largest"]
    assert float(on_screen) == pytest.approx(maxes.max(), rel=1e-5)
    assert float(everything) == pytest.approx(whole.max(), rel=1e-5)
    assert insp.shown_stats["mean"] == pytest.approx(maxes.mean(), rel=1e-6)
    assert stat_rows(insp)["mean"][0] == f"{insp.shown_stats['mean']:.6g}"
    assert table_rows(insp)["extra_shape"] == "(3,)"
    # a click on the scan at column 7, row 3 shows that frame's values
    click(insp, insp._main_ax, 7.2, 2.8)
    assert insp.position == (3, 7)
    frame = data[3, 7].astype(np.float64)
    expected = [frame.sum(), frame.max(), frame.min()]
    np.testing.assert_allclose(insp.position_values, expected, rtol=1e-6)
    np.testing.assert_allclose([b.get_height() for b in insp._pick_ax.patches], expected, rtol=1e-6)
    assert insp._pick_ax.get_title() == "at scan position (row 3, column 7)"
    # the selection survives a slider move; clicks outside the scan are ignored
    insp.set_index(2, 2)
    np.testing.assert_allclose(insp.selected, data.min(axis=(2, 3)))
    click(insp, insp._main_ax, 12.0, 2.0)
    assert insp.position == (3, 7)
    with pytest.raises(Exception, match="outside the navigation shape"):
        insp.position = (8, 0)
    with pytest.raises(ValueError, match="out of range"):
        insp.set_index(2, 3)


def test_plain_arrays_lines_slices_and_log(rng):
    cube = rng.random((3, 4, 5))
    line = np.linspace(-1, 4, 11)
    insp = BufferInspector({"cube": cube, "line": line})
    assert insp.buffer == "cube" and set(insp.slider_axes) == {0}
    assert insp.slider_axes[0].description == "axis 0"
    insp.set_index(0, 2)
    np.testing.assert_array_equal(insp.selected, cube[2])
    assert stat_rows(insp)["smallest"] == (f"{cube[2].min():.6g}", f"{cube.min():.6g}")
    insp.display_model.cmap = "magma"
    assert insp.display_controls.children[2].value == "magma"
    assert insp._main_ax.images[0].get_cmap().name == "magma"
    insp.display_controls.children[0].value = "log"  # the scale buttons
    assert insp.log and isinstance(insp._main_ax.images[0].norm, LogNorm)
    insp.buffer = "line"
    assert insp.slider_axes == {}
    np.testing.assert_array_equal(insp._main_ax.lines[0].get_ydata(), line)
    assert insp._main_ax.get_yscale() == "linear"  # a new buffer starts in its default scale
    insp.display_model.scale = "log"
    assert insp._main_ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="axes with sliders"):
        insp.set_index(0, 0)
    assert stat_rows(insp)["NaN values"] == ("0", "0")
    assert float(stat_rows(insp)["smallest"][1]) == -1


def test_complex_and_bool(rng):
    z = rng.random((4, 4)) + 1j * rng.random((4, 4))
    insp = BufferInspector({"z": z, "b": np.eye(3, dtype=bool)})
    assert insp.stats["of"] == "|x|"
    np.testing.assert_allclose(insp.stats["max"], np.abs(z).max())
    np.testing.assert_allclose(insp._main_ax.images[0].get_array(), np.abs(z))
    insp.buffer = "b"
    np.testing.assert_allclose(insp.stats["mean"], 3 / 9)


def test_object_buffer_shows_repr(ctx, ds, data):
    insp = BufferInspector(ctx.run_udf(dataset=ds, udf=ObjectUDF()))
    n = int((data[0, 0] > 0.9).sum())
    assert f"(0, 0): {{&#x27;n&#x27;: {n}}}" in insp._message.value
    assert insp.stats["min"] is None and stat_rows(insp)["smallest"] == ("–", "–")
    assert insp._main_ax is None  # nothing plotted
    assert insp.selected.dtype == object and insp.selected[0, 0] == {"n": n}


def test_empty_roi_message(ctx, ds):
    roi = np.zeros(SHAPE[:2], bool)
    insp = BufferInspector(ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi))
    assert "No valid values" in insp._message.value
    assert table_rows(insp)["valid"] == "0 / 80 (0.0 %)"
    assert insp.stats["mean"] is None


def test_live_updates_from_a_run(ctx, ds, data):
    insp = BufferInspector(throttle=0.0)
    assert "no results yet" in insp._message.value and insp.selected is None
    seen = []
    for part in ctx.run_udf_iter(dataset=ds, udf=SumSigUDF(), plots=[insp]):
        done = part.damage.data
        seen.append(insp.entry.n_valid)
        np.testing.assert_array_equal(np.isnan(insp.selected), ~done)
        np.testing.assert_allclose(insp.selected[done], data.sum(axis=(2, 3))[done], rtol=1e-5)
    assert seen == [20, 40, 60, 80]
    assert table_rows(insp)["valid"] == "80 / 80 (100.0 %)"


def test_throttle_and_force(ctx, ds):
    insp = BufferInspector(throttle=60.0)
    parts = []
    for part in ctx.run_udf_iter(dataset=ds, udf=SumSigUDF()):
        part.buffers  # partial results are computed lazily: compute them now
        parts.append(part)
    insp.new_data(parts[0], parts[0].damage)
    assert insp.entry.n_valid == 20
    insp.new_data(parts[1], parts[1].damage)  # within the throttle: skipped
    assert insp.entry.n_valid == 20
    insp.new_data(parts[-1], parts[-1].damage, force=True)
    assert insp.entry.n_valid == 80


def test_bad_input():
    with pytest.raises(TypeError, match="needs a result dict"):
        BufferInspector([1, 2, 3])


def test_subscribes_to_async_run(threads_ctx, data):
    """With sync=False, new_data runs in the run's driver thread; the final result shows."""
    import asyncio
    import threading

    ds = threads_ctx.load("memory", data=data, num_partitions=4)
    insp = BufferInspector(throttle=0.0)
    threads_seen = set()
    original = insp.new_data

    def spy(*args, **kwargs):
        threads_seen.add(threading.get_ident())
        original(*args, **kwargs)

    insp.new_data = spy
    res = asyncio.run(threads_ctx.run_udf(dataset=ds, udf=SumUDF(), plots=[insp], sync=False))
    assert threading.get_ident() not in threads_seen
    np.testing.assert_allclose(insp.selected, data.sum(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(res["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-5)


def test_scalar_is_a_value_and_signal_starts_in_log(ctx, ds, data):
    insp = BufferInspector({"total": np.float64(12.5), "pattern": data.sum(axis=(0, 1))})
    assert insp.buffer == "pattern"  # it starts with something to look at
    insp.buffer = "total"
    assert "total = <b>12.5</b>" in insp._message.value
    assert insp._main_ax is None  # no one-point plot
    assert "image/png" not in insp._repr_mimebundle_()  # and no blank picture
    res = ctx.run_udf(dataset=ds, udf=SumUDF())
    insp = BufferInspector(res)
    assert insp.display_model.scale == "log"  # a diffraction pattern
    assert isinstance(insp._main_ax.images[0].norm, LogNorm)
    insp = BufferInspector(ctx.run_udf(dataset=ds, udf=SumSigUDF()))
    assert insp.display_model.scale == "linear"  # a scan image


def test_channel_names_label_slider_and_bars(ctx, ds, data):
    names = ["sum", "max", "min"]
    insp = BufferInspector(
        ctx.run_udf(dataset=ds, udf=FrameStatsUDF()), channel_names={"stats": names}
    )
    insp.set_index(2, 1)
    assert insp._main_ax.get_title(loc="left") == "stats (channel 1: max)"
    insp.position = (2, 4)
    labels = [t.get_text() for t in insp._pick_ax.get_xticklabels()]
    assert labels == ["0: sum", "1: max", "2: min"]
    frame = data[2, 4].astype(np.float64)
    np.testing.assert_allclose(
        [b.get_height() for b in insp._pick_ax.patches],
        [frame.sum(), frame.max(), frame.min()],
        rtol=1e-6,
    )


def test_static_bundle_has_png_and_table(ctx, ds):
    insp = BufferInspector(ctx.run_udf(dataset=ds, udf=SumUDF()))
    bundle = insp._repr_mimebundle_()
    import base64

    assert base64.b64decode(bundle["image/png"])[:4] == b"\x89PNG"
    assert "<table" in bundle["text/html"] and "<img" in bundle["text/html"]
    assert bundle["text/plain"] == "BufferInspector: 1 buffers"
    assert "VBox(" not in bundle["text/plain"]
