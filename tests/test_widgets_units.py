"""Physical units in the widgets: calibrated ticks, axis labels, scale bar, read-outs; saving.

Every check reads real widget state: matplotlib tick locations and labels,
the scale bar artist in the axes, the read-out and status widgets' values;
coordinates are compared with plain NumPy (``offset + index * step``), files
are read back with h5py / ``np.load``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from matplotlib.backend_bases import MouseEvent
from matplotlib.colors import to_rgba
from matplotlib.ticker import ScalarFormatter

from udfwidgets import Calibration
from udfwidgets.udf.sum import SumUDF
from udfwidgets.udf.sumsigudf import SumSigUDF
from udfwidgets.widgets import BufferInspector, Explorer, MatplotlibLivePlot, RoiSelector
from udfwidgets.widgets.axes import (
    SCALE_BAR_FRACTION,
    apply_axes,
    axis_scales,
    nice_length,
    readout_text,
    scale_bar_of,
)
from udfwidgets.widgets.display import AxisScale

NAV, SIG = (12, 40), (16, 16)
CAL = Calibration(
    scan_step=0.25, scan_unit="nm", sig_step=0.5, sig_unit="mrad", beam_centre=(7.5, 8.0)
)


@pytest.fixture
def data(rng):
    return rng.random(NAV + SIG, dtype=np.float32)


@pytest.fixture
def ds(ctx, data):
    ds = ctx.load("memory", data=data, num_partitions=3)
    ds.calibration = CAL
    return ds


@pytest.fixture
def plain_ds(ctx, data):
    return ctx.load("memory", data=data, num_partitions=3)


def round_lengths() -> np.ndarray:
    """Every 1-2-5 length from 1e-6 to 1e6, the reference for scale bar lengths."""
    return np.array([m * 10.0**e for e in range(-6, 7) for m in (1, 2, 5)])


def is_round(length: float) -> bool:
    return bool(np.any(np.isclose(round_lengths(), length, rtol=1e-9)))


def tick_labels(ax, which="x"):
    """(tick positions in data coordinates, their label texts) after a draw."""
    ax.figure.canvas.draw()
    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = sorted(axis.get_view_interval())
    pairs = [
        (t.get_loc(), t.label1.get_text())
        for t in axis.get_major_ticks()
        if lo - 1e-9 <= t.get_loc() <= hi + 1e-9
    ]
    return np.array([p for p, _ in pairs]), [s for _, s in pairs]


def as_number(text: str) -> float:
    return float(text.replace("\N{MINUS SIGN}", "-"))


def check_calibrated(ax, kind: str, shape, name_x: str, unit: str):
    """Ticks at round physical values with the right labels; unit in the labels; scale bar."""
    cal_axes = CAL.axes(kind, shape)
    for which, axis in (("x", cal_axes[-1]), ("y", cal_axes[0])):
        locs, labels = tick_labels(ax, which)
        assert len(locs) >= 2
        physical = axis.offset + axis.scale * locs  # plain NumPy reference
        np.testing.assert_allclose([as_number(s) for s in labels], physical, atol=1e-9)
        spacing = np.diff(physical)
        np.testing.assert_allclose(spacing, spacing[0])
        m = spacing[0] / 10 ** np.floor(np.log10(spacing[0]))
        assert np.isclose(m, [1, 2, 2.5, 5, 10]).any(), spacing[0]
    assert ax.get_xlabel() == f"{name_x} ({unit})"
    assert unit in ax.get_ylabel()
    bar = scale_bar_of(ax)
    assert bar is not None
    step = cal_axes[-1].scale
    assert bar.unit == cal_axes[-1].unit
    assert is_round(bar.length)
    np.testing.assert_allclose(bar.pixels * step, bar.length)
    rect = bar.size_bar.get_children()[0]
    np.testing.assert_allclose(rect.get_width(), bar.pixels)  # data units of the bar itself
    x0, x1 = ax.get_xlim()
    view = abs(x1 - x0) * step
    assert SCALE_BAR_FRACTION * view / 2.5 < bar.length <= SCALE_BAR_FRACTION * view
    label = bar.txt_label.get_children()[0].get_text()
    assert label.endswith(unit) and as_number(label.split()[0]) == bar.length
    return bar


def check_plain(ax):
    assert scale_bar_of(ax) is None
    assert isinstance(ax.xaxis.get_major_formatter(), ScalarFormatter)
    locs, labels = tick_labels(ax)
    np.testing.assert_allclose([as_number(s) for s in labels], locs)  # pixel indices


SMALL = "<small style='white-space:nowrap'>"


def hover(figure, ax, x, y):
    px, py = ax.transData.transform((x, y))
    event = MouseEvent("motion_notify_event", figure.canvas, px, py, button=None)
    figure.canvas.callbacks.process(event.name, event)


# --- the helper ------------------------------------------------------------------------------
def test_nice_length_is_the_longest_round_length_that_fits():
    ref = round_lengths()
    for limit in np.geomspace(1.3e-5, 7.7e5, 200):
        expected = ref[ref <= limit * (1 + 1e-12)].max()
        assert nice_length(limit) == pytest.approx(expected)
    with pytest.raises(ValueError, match="positive"):
        nice_length(0)


def test_axis_scales_follow_the_calibration():
    ys, xs = axis_scales(CAL, "sig", SIG)
    np.testing.assert_allclose(xs.offset + xs.step * np.arange(16), CAL.coords("sig", SIG)[1])
    np.testing.assert_allclose(ys.offset + ys.step * np.arange(16), CAL.coords("sig", SIG)[0])
    assert axis_scales(Calibration(), "nav", NAV) is None  # pixels
    assert axis_scales(CAL, "single", NAV) is None
    assert axis_scales(None, "nav", NAV) is None
    assert axis_scales(CAL, "nav", (2, 3, 4)) is None  # nothing 3D is drawn


def test_readout_text_is_row_column_first():
    scales = axis_scales(CAL, "nav", NAV)
    assert readout_text((2, 6), scales) == "(row 2, column 6) = (y 0.5 nm, x 1.5 nm)"
    assert readout_text((2.4, 5.6)) == "(row 2, column 6)"
    sig = axis_scales(CAL, "sig", SIG)
    assert readout_text((7.6, 8), sig) == "(row 8, column 8) = (y 0.25 mrad, x 0 mrad)"


def test_scale_bar_follows_zoom_and_undo(ctx):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(np.zeros((10, 400)))
    xs = AxisScale(step=0.1, unit="nm", name="scan_x")
    apply_axes(ax, (AxisScale(step=0.1, unit="nm", name="scan_y"), xs), (10, 400))
    assert scale_bar_of(ax).length == 10.0  # 40 nm wide: 10 nm
    ax.set_xlim(0, 40)  # 4 nm wide
    bar = scale_bar_of(ax)
    assert bar.length == 1.0
    ax.set_xlim(100, 140)  # panned: the same bar stays
    assert scale_bar_of(ax) is bar
    assert len([a for a in ax.artists if a.get_gid() == "udfw-scale-bar"]) == 1
    apply_axes(ax, None)
    assert scale_bar_of(ax) is None and ax.get_xlabel() == ""
    check_plain(ax)


@pytest.mark.parametrize("cmap", ["gray", "gray_r", "viridis", "magma"])
def test_scale_bar_readable_on_light_and_dark_maps(ctx, data, cmap):
    """White bar and text on a dark box: a contrast that does not depend on the image."""
    image = np.linspace(0, 1, 16 * 40).reshape(16, 40)
    sel = RoiSelector(image, cmap=cmap, calibration=CAL, backend="agg")
    bar = scale_bar_of(sel.ax)
    box = np.array(to_rgba(bar.patch.get_facecolor()))
    line = np.array(to_rgba(bar.size_bar.get_children()[0].get_facecolor()))
    text = np.array(to_rgba(bar.txt_label.get_children()[0].get_color()))
    assert box[3] >= 0.5 and box[:3].max() <= 0.1  # dark and mostly opaque
    assert line[:3].min() >= 0.9 and text[:3].min() >= 0.9  # white
    # the darkest the box can be behind it vs the lightest: the bar stays above 0.5 contrast
    for under in (0.0, 1.0):
        composite = box[3] * box[:3] + (1 - box[3]) * under
        assert line[:3].mean() - composite.mean() > 0.5
    sel.close()


# --- live plots --------------------------------------------------------------------------------
def test_live_plot_nav_image_in_nm(ctx, ds, data):
    plot = MatplotlibLivePlot("intensity", min_delta=0, backend="agg")
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[plot])
    np.testing.assert_allclose(plot.image.get_array(), data.sum(axis=(2, 3)), rtol=1e-5)
    assert plot.axes_kind == "nav" and plot.calibration == CAL
    check_calibrated(plot.axes, "nav", NAV, "scan x", "nm")
    # the image stays in pixel coordinates: the extent is that of the pixel grid
    assert plot.image.get_extent() == [-0.5, NAV[1] - 0.5, NAV[0] - 0.5, -0.5]
    assert plot.axes.format_coord(6, 2) == "(row 2, column 6) = (y 0.5 nm, x 1.5 nm)"
    assert res["intensity"].context["calibration"] == CAL


def test_live_plot_sig_image_in_mrad_with_beam_centre(ctx, ds, data):
    plot = MatplotlibLivePlot("intensity", min_delta=0, backend="agg")
    ctx.run_udf(dataset=ds, udf=SumUDF(), plots=[plot])
    check_calibrated(plot.axes, "sig", SIG, "detector x", "mrad")
    locs, labels = tick_labels(plot.axes)
    assert labels[list(locs).index(8.0)] == "0"  # the beam centre column is 0 mrad


def test_live_plot_without_calibration_is_unchanged(ctx, plain_ds):
    plot = MatplotlibLivePlot("intensity", min_delta=0, backend="agg")
    ctx.run_udf(dataset=plain_ds, udf=SumSigUDF(), plots=[plot])
    check_plain(plot.axes)
    assert plot.axes.get_xlabel() == "" and plot.display_model.axes is None


def test_live_plot_reduced_by_a_function_has_no_units(ctx, ds):
    plot = MatplotlibLivePlot(
        "intensity", channel=lambda a: a.sum(axis=0)[None, :], min_delta=0, backend="agg"
    )
    ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[plot])
    assert plot.axes_kind is None
    check_plain(plot.axes)


def test_live_plot_line_of_a_1d_scan(ctx, rng):
    data = rng.random((30, 4, 4), dtype=np.float32)
    ds = ctx.load("memory", data=data)
    ds.calibration = Calibration(scan_step=2.0, scan_unit="um")
    plot = MatplotlibLivePlot("intensity", min_delta=0, backend="agg")
    ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[plot])
    np.testing.assert_allclose(plot.line.get_ydata(), data.sum(axis=(1, 2)), rtol=1e-5)
    locs, labels = tick_labels(plot.axes)
    np.testing.assert_allclose([as_number(s) for s in labels], 2.0 * locs)
    assert plot.axes.get_xlabel() == "scan x (µm)" and scale_bar_of(plot.axes) is None


# --- selectors and the explorer ----------------------------------------------------------------
def test_selector_readout_follows_the_pointer(ctx, ds, data):
    sel = RoiSelector.for_dataset(ctx, ds, backend="agg")  # calibration from the buffer
    check_calibrated(sel.ax, "nav", NAV, "scan x", "nm")
    hover(sel.figure, sel.ax, 6.2, 1.8)
    value = data[2, 6].sum()
    assert sel.readout.value.startswith(SMALL + "(row 2, column 6) = (y 0.5 nm, x 1.5 nm): ")
    shown = float(sel.readout.value.split(": ")[1].split("<")[0])
    assert shown == pytest.approx(value, rel=1e-4)
    # drawing stays in pixels
    sel.set_rectangle(top=1, left=2, height=3, width=4)
    assert sel.roi.sum() == 12 and sel.roi[1:4, 2:6].all()
    sel.close()


def test_selector_without_calibration(ctx, plain_ds, data):
    sel = RoiSelector.for_dataset(ctx, plain_ds, backend="agg")
    check_plain(sel.ax)
    hover(sel.figure, sel.ax, 6, 2)
    assert sel.readout.value.startswith(SMALL + "(row 2, column 6): ")
    sel.calibration = CAL  # set later
    check_calibrated(sel.ax, "nav", NAV, "scan x", "nm")
    sel.calibration = None
    check_plain(sel.ax)
    sel.close()


def test_explorer_both_panels_and_cursor_text(ctx, ds, data):
    ex = Explorer(ctx, ds, backend="agg")
    assert ex.wait(30)
    check_calibrated(ex.nav.ax, "nav", NAV, "scan x", "nm")
    check_calibrated(ex.sig.ax, "sig", SIG, "detector x", "mrad")
    ex.show_frame(2, 6)
    np.testing.assert_allclose(ex.pattern, data[2, 6])
    assert ex.sig.title == "frame at (row 2, column 6) = (y 0.5 nm, x 1.5 nm)"
    assert "(row 2, column 6) = (y 0.5 nm, x 1.5 nm)" in ex._status.value
    ex.close()


def test_explorer_without_calibration_keeps_pixel_words(ctx, plain_ds):
    ex = Explorer(ctx, plain_ds, backend="agg")
    ex.show_frame(1, 3)
    assert ex.sig.title == "frame at scan position (row 1, column 3)"
    check_plain(ex.nav.ax)
    check_plain(ex.sig.ax)
    ex.close()


# --- the inspector -------------------------------------------------------------------------------
def test_inspector_nav_and_sig_views(ctx, ds, data):
    res = ctx.run_udf(dataset=ds, udf=[SumSigUDF(), SumUDF()])
    insp = BufferInspector(res, backend="agg")
    assert insp.buffer == "udf0.intensity"
    check_calibrated(insp._main_ax, "nav", NAV, "scan x", "nm")
    hover(insp.figure, insp._main_ax, 6, 2)
    assert "(row 2, column 6) = (y 0.5 nm, x 1.5 nm)" in insp._readout.label.value
    insp.buffer = "udf1.intensity"
    check_calibrated(insp._main_ax, "sig", SIG, "detector x", "mrad")
    insp.close()


def test_inspector_calibration_set_on_the_result(ctx, plain_ds):
    res = ctx.run_udf(dataset=plain_ds, udf=SumSigUDF())
    insp = BufferInspector(res, backend="agg")
    check_plain(insp._main_ax)
    insp.close()
    res["intensity"].context["calibration"] = CAL
    insp = BufferInspector(res, backend="agg")
    check_calibrated(insp._main_ax, "nav", NAV, "scan x", "nm")
    insp.close()


def test_inspector_plain_arrays_have_pixel_axes():
    insp = BufferInspector({"a": np.arange(40.0).reshape(4, 10)}, backend="agg")
    check_plain(insp._main_ax)
    insp.close()


# --- saving from the inspector ----------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_inspector_save_reads_back_equal(ctx, ds, tmp_path, suffix):
    if suffix == ".h5":
        h5py = pytest.importorskip("h5py")
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF())
    insp = BufferInspector(res, backend="agg")
    path = tmp_path / f"out{suffix}"
    insp.save_path.value = str(path)
    insp.save_button.click()
    assert "udfw-save-ok" in insp.save_status.value and str(path) in insp.save_status.value
    expected = np.asarray(res["intensity"].data)
    if suffix == ".h5":
        with h5py.File(path) as f:
            np.testing.assert_array_equal(f["entry/intensity/data"][()], expected)
            assert f["entry/intensity/scan_x"].attrs["units"] == "nm"
    else:
        with np.load(path) as f:
            np.testing.assert_array_equal(f["intensity"], expected)
    insp.close()


def test_inspector_save_refuses_to_overwrite(ctx, ds, tmp_path):
    path = tmp_path / "out.npz"
    path.write_bytes(b"keep me")
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF())
    insp = BufferInspector(res, backend="agg")
    insp.save_path.value = str(path)
    insp.save_button.click()
    status = insp.save_status.value
    assert "udfw-save-error" in status and "exists" in status and "overwrite" in status
    assert "Traceback" not in status
    assert path.read_bytes() == b"keep me"
    insp.save_overwrite.value = True
    insp.save_button.click()
    assert "udfw-save-ok" in insp.save_status.value
    with np.load(path) as f:
        np.testing.assert_array_equal(f["intensity"], np.asarray(res["intensity"].data))
    insp.close()


def test_inspector_save_errors_in_words(ctx, ds, tmp_path):
    insp = BufferInspector(ctx.run_udf(dataset=ds, udf=SumSigUDF()), backend="agg")
    insp.save_path.value = "   "
    insp.save_button.click()
    assert "give a file name" in insp.save_status.value
    insp.save_path.value = str(tmp_path / "out.txt")
    insp.save_button.click()
    assert "cannot tell the format" in insp.save_status.value
    insp.save_path.value = str(tmp_path / "missing" / "out.npz")
    insp.save_button.click()
    assert "does not exist" in insp.save_status.value
    assert not os.listdir(tmp_path)
    empty = BufferInspector(backend="agg")
    empty.save_path.value = str(tmp_path / "x.npz")
    empty.save_button.click()
    assert "no results to save yet" in empty.save_status.value
    insp.close()
    empty.close()
