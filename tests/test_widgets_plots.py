"""Live plots: final and partial pictures, throttling, damage, widgets, environments.

Every picture is checked against plain-NumPy sums of the input data, read
back from the matplotlib artists (``AxesImage.get_array``, ``Line2D.get_ydata``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from matplotlib.colors import LogNorm, to_rgba

from udfwidgets import UDF
from udfwidgets.udf.sum import SumUDF
from udfwidgets.udf.sumsigudf import SumSigUDF
from udfwidgets.widgets import LivePlot, MatplotlibLivePlot, make_plots

N_PARTS = 4


class ChannelsUDF(UDF):
    """Nav buffer with extra_shape (3,): sum, max and min of each frame; a
    result_only buffer computed in get_results; an object buffer; a private one."""

    def get_result_buffers(self):
        return {
            "stats": self.buffer(kind="nav", extra_shape=(3,), dtype="float64"),
            "labels": self.buffer(kind="nav", dtype=object),
            "scratch": self.buffer(kind="nav", use="private"),
            "doubled": self.buffer(kind="nav", dtype="float64", use="result_only"),
        }

    def process_frame(self, frame):
        self.results.stats[:] = [frame.sum(), frame.max(), frame.min()]
        self.results.labels[:] = "x"

    def get_results(self):
        return {
            "stats": self.results.stats,
            "labels": self.results.labels,
            "doubled": self.results.stats[..., 0] * 2,
        }


class LeavesOutUDF(UDF):
    """Declares two nav buffers but get_results returns only one."""

    def get_result_buffers(self):
        return {"kept": self.buffer(kind="nav"), "dropped": self.buffer(kind="nav")}

    def process_frame(self, frame):
        self.results.kept[:] = frame.sum()
        self.results.dropped[:] = 0

    def get_results(self):
        return {"kept": self.results.kept}


class FrameMaxUDF(UDF):
    """Integer nav buffer: frames not merged yet hold 0, not NaN, so only the
    damage can tell them apart."""

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self):
        return {"peak": self.buffer(kind="nav", dtype=self.meta.input_dtype)}

    def process_frame(self, frame):
        self.results.peak[:] = frame.max()


class Recording(MatplotlibLivePlot):
    """Records, at each drawn update, the damage received and the artist's mask and data."""

    def new_data(self, udf_results, damage, force=False):
        self._damage_in = np.array(damage.data)
        return super().new_data(udf_results, damage, force)

    def update(self, array, valid_mask):
        super().update(array, valid_mask)
        shown = self.image.get_array()
        self.records = getattr(self, "records", [])
        self.records.append(
            (self._damage_in.copy(), np.ma.getmaskarray(shown).copy(), np.ma.getdata(shown).copy())
        )


@pytest.fixture(params=["inline", "threads"])
def run_ctx(request):
    return request.getfixturevalue("ctx" if request.param == "inline" else "threads_ctx")


@pytest.fixture
def ds(ctx, data4d):
    return ctx.load("memory", data=data4d, num_partitions=N_PARTS)


def robust(values):
    """The default colour limits: the 0.1 and 99.9 % percentiles (NumPy's, of the given values)."""
    return tuple(np.percentile(np.asarray(values, dtype=np.float64).ravel(), (0.1, 99.9)))


def shown_image(plot):
    arr = plot.image.get_array()
    return np.ma.getdata(arr), np.ma.getmaskarray(arr)


# --- final pictures -------------------------------------------------------------------
def test_final_images_equal_buffers(run_ctx, data4d):
    ds = run_ctx.load("memory", data=data4d, num_partitions=N_PARTS)
    udfs = [SumUDF(), SumSigUDF()]
    plots = make_plots(True, ds, udfs, min_delta=0)
    assert [p.title for p in plots] == ["SumUDF: intensity", "SumSigUDF: intensity"]
    run_ctx.run_udf(dataset=ds, udf=udfs, plots=plots)
    refs = [data4d.sum(axis=(0, 1), dtype=np.float64), data4d.sum(axis=(2, 3), dtype=np.float64)]
    for plot, ref in zip(plots, refs):
        values, mask = shown_image(plot)
        assert values.shape == ref.shape
        np.testing.assert_allclose(values, ref, rtol=1e-5)
        assert not mask.any()
        assert plot.image.get_clim() == pytest.approx(robust(ref), rel=1e-5)
        assert plot.finished and plot.frames_label.value == "63 / 63 frames"
        assert plot.frames_progress.value == plot.frames_progress.max == 63
    # a diffraction pattern (sig buffer) starts in log scale, a scan image (nav) linear
    assert isinstance(plots[0].image.norm, LogNorm) and plots[0].display_model.scale == "log"
    assert not isinstance(plots[1].image.norm, LogNorm)


def test_channel_function_applied(ctx, ds, data4d):
    plots = make_plots([[("intensity", np.log1p)]], ds, [SumSigUDF()], min_delta=0)
    ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=plots)
    values, _ = shown_image(plots[0])
    np.testing.assert_allclose(
        values, np.log1p(data4d.sum(axis=(2, 3), dtype=np.float64)), rtol=1e-5
    )
    assert plots[0].title == "SumSigUDF: intensity (log1p)"


def test_function_giving_inf_is_masked_without_warnings(ctx, data4d):
    import warnings

    data = data4d.copy()
    data[0, :3] = 0  # log(0) = -inf for these frames
    ds = ctx.load("memory", data=data, num_partitions=N_PARTS)
    plots = make_plots([[("intensity", np.log)]], ds, [SumSigUDF()], min_delta=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NumPy RuntimeWarning would fail the run
        ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=plots)
    values, mask = shown_image(plots[0])
    zero = np.zeros(data.shape[:2], dtype=bool)
    zero[0, :3] = True
    np.testing.assert_array_equal(mask, zero)
    sums = data.sum(axis=(2, 3), dtype=np.float64)
    np.testing.assert_allclose(values[~zero], np.log(sums[~zero]), rtol=1e-5)
    assert plots[0].image.get_clim() == pytest.approx(robust(np.log(sums[~zero])), rel=1e-5)


def test_flat_list_for_one_udf(ctx, ds, data4d):
    plots = make_plots(["intensity"], ds, SumUDF(), min_delta=0)
    ctx.run_udf(dataset=ds, udf=SumUDF(), plots=plots)
    np.testing.assert_allclose(shown_image(plots[0])[0], data4d.sum(axis=(0, 1)), rtol=1e-5)


def test_lines_for_1d_nav_and_1d_sig(ctx, rng):
    nav1d = rng.random((20, 4, 3), dtype=np.float32)
    ds = ctx.load("memory", data=nav1d, num_partitions=3)
    plots = make_plots(True, ds, [SumSigUDF()], min_delta=0)
    ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=plots)
    assert plots[0].image is None
    np.testing.assert_allclose(
        np.ma.getdata(plots[0].line.get_ydata()), nav1d.sum(axis=(1, 2)), rtol=1e-5
    )

    sig1d = rng.random((3, 4, 16), dtype=np.float32)
    ds = ctx.load("memory", data=sig1d, sig_dims=1, num_partitions=2)
    plots = make_plots(True, ds, [SumUDF()], min_delta=0)
    ctx.run_udf(dataset=ds, udf=SumUDF(), plots=plots)
    np.testing.assert_allclose(
        np.ma.getdata(plots[0].line.get_ydata()), sig1d.sum(axis=(0, 1)), rtol=1e-5
    )
    lo, hi = plots[0].axes.get_ylim()
    ref = sig1d.sum(axis=(0, 1))
    assert lo < ref.min() and hi > ref.max()


def test_result_only_and_channels_with_plots_true(ctx, ds, data4d):
    plots = make_plots(True, ds, [ChannelsUDF()], min_delta=0)
    # the object buffer cannot be drawn and the private one is no result: both skipped
    assert [p.name for p in plots] == ["stats", "doubled"]
    ctx.run_udf(dataset=ds, udf=ChannelsUDF(), plots=plots)
    sums = data4d.sum(axis=(2, 3), dtype=np.float64)
    np.testing.assert_allclose(shown_image(plots[0])[0], sums, rtol=1e-5)  # channel 0
    np.testing.assert_allclose(shown_image(plots[1])[0], 2 * sums, rtol=1e-5)


class ComplexBoolUDF(UDF):
    """A complex nav buffer (drawn as its absolute value) and a bool one."""

    def get_result_buffers(self):
        return {
            "wave": self.buffer(kind="nav", dtype="complex64"),
            "bright": self.buffer(kind="nav", dtype=bool),
        }

    def process_frame(self, frame):
        self.results.wave[:] = frame[0, 0] - 1j * frame[0, 1]
        self.results.bright[:] = frame.mean() > 0.5


def test_complex_and_bool_buffers(ctx, ds, data4d):
    plots = make_plots(True, ds, [ComplexBoolUDF()], min_delta=0)
    ctx.run_udf(dataset=ds, udf=ComplexBoolUDF(), plots=plots)
    wave = data4d[:, :, 0, 0].astype(np.float64) - 1j * data4d[:, :, 0, 1]
    np.testing.assert_allclose(shown_image(plots[0])[0], np.abs(wave), rtol=1e-5)
    bright = data4d.mean(axis=(2, 3)) > 0.5
    np.testing.assert_array_equal(shown_image(plots[1])[0], bright.astype(np.uint8))


def test_undrawable_buffers_skipped(ctx, rng):
    nav3d = rng.random((2, 3, 4, 5, 5), dtype=np.float32)
    ds = ctx.load("memory", data=nav3d)
    plots = make_plots(True, ds, [SumUDF(), SumSigUDF()])
    assert [(p.udf_index, p.name) for p in plots] == [(0, "intensity")]  # 3D nav image skipped


def test_buffer_left_out_by_get_results(ctx, ds, data4d):
    # LiberTEM's contract: buffers a get_results() leaves out pass through unchanged
    plots = make_plots(True, ds, [LeavesOutUDF()], min_delta=0)
    assert [p.name for p in plots] == ["kept", "dropped"]
    ctx.run_udf(dataset=ds, udf=LeavesOutUDF(), plots=plots)
    np.testing.assert_allclose(shown_image(plots[0])[0], data4d.sum(axis=(2, 3)), rtol=1e-5)
    assert not plots[1].missing and plots[1].n_updates >= 1
    np.testing.assert_array_equal(shown_image(plots[1])[0], np.zeros(data4d.shape[:2]))
    # named explicitly, an undeclared buffer is an error that lists the results
    explicit = MatplotlibLivePlot("nonexistent")
    with pytest.raises(ValueError, match=r"'nonexistent' is not in the results.*kept"):
        ctx.run_udf(dataset=ds, udf=LeavesOutUDF(), plots=[explicit])


def test_plots_true_through_context(ctx, ds, data4d):
    res = ctx.run_udf(dataset=ds, udf=[SumUDF(), ChannelsUDF()], plots=True)
    np.testing.assert_allclose(res[0]["intensity"].data, data4d.sum(axis=(0, 1)), rtol=1e-5)
    parts = list(ctx.run_udf_iter(dataset=ds, udf=SumSigUDF(), plots=[["intensity"]]))
    assert len(parts) == N_PARTS


# --- partial updates, throttle, damage ------------------------------------------------
@pytest.mark.filterwarnings("ignore:Passing unrecognized arguments:DeprecationWarning")
@pytest.mark.parametrize("backend", ["agg", "ipympl"])
@pytest.mark.parametrize("case", ["float_sum", "int_max"])
def test_partial_updates_show_damage(run_ctx, data4d, data4d_int, case, backend, request):
    if backend == "ipympl":
        request.getfixturevalue("ipympl")
    if case == "float_sum":
        data, udf, name = data4d, SumSigUDF(), "intensity"
        ref = data.sum(axis=(2, 3), dtype=np.float64)
    else:
        data, udf, name = data4d_int, FrameMaxUDF(), "peak"
        ref = data.max(axis=(2, 3))
    ds = run_ctx.load("memory", data=data, num_partitions=N_PARTS)
    plot = Recording(name, min_delta=0, backend=backend)
    run_ctx.run_udf(dataset=ds, udf=udf, plots=[plot])
    assert plot.n_calls == plot.n_updates == N_PARTS
    done_counts = []
    for damage, mask, values in plot.records:
        np.testing.assert_array_equal(mask, ~damage)  # not-yet-merged frames are masked
        np.testing.assert_allclose(values[damage], ref[damage], rtol=1e-5)
        done_counts.append(int(damage.sum()))
    assert done_counts == sorted(done_counts) and len(set(done_counts)) == N_PARTS
    assert done_counts[0] < data.shape[0] * data.shape[1] == done_counts[-1]


def test_partial_colour_limits_from_valid_pixels(ctx, ds, data4d):
    class Limits(MatplotlibLivePlot):
        def update(self, array, valid_mask):
            super().update(array, valid_mask)
            self.limits = getattr(self, "limits", []) + [(self.image.get_clim(), valid_mask.copy())]

    plot = Limits("intensity", min_delta=0)
    ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[plot])
    ref = data4d.sum(axis=(2, 3), dtype=np.float64)
    for (lo, hi), valid in plot.limits:
        assert (lo, hi) == pytest.approx(robust(ref[valid]), rel=1e-5)


def test_throttle_draws_first_and_final_only(run_ctx, data4d):
    ds = run_ctx.load("memory", data=data4d, num_partitions=N_PARTS)
    plot = MatplotlibLivePlot("intensity", min_delta=1e6)
    run_ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[plot])
    assert plot.n_calls == N_PARTS
    assert plot.n_updates == 2  # the first partial and the forced final one
    np.testing.assert_allclose(shown_image(plot)[0], data4d.sum(axis=(2, 3)), rtol=1e-5)
    # a second run with the same plot draws its own first and final updates
    run_ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[plot])
    assert (plot.n_calls, plot.n_updates) == (2 * N_PARTS, 4)


def test_throttle_is_time_based():
    from udfwidgets.udf.buffers import BufferWrapper

    class Count(LivePlot):
        def update(self, array, valid_mask):
            pass

    buf = BufferWrapper("sig", "float32", (), np.ones((2, 2), np.float32), (3,))
    damage = BufferWrapper("nav", bool, (), np.ones(3, bool), (3,))
    plot = Count("x", min_delta=0.5)
    results = [{"x": buf}]
    assert plot.new_data(results, damage) and not plot.new_data(results, damage)
    import time

    time.sleep(0.55)
    assert plot.new_data(results, damage)
    assert (plot.n_calls, plot.n_updates) == (3, 2)


def test_busy_plot_skips_partial_but_not_final_update():
    """While a figure renders (holding the plot's lock in another thread), a
    partial update is skipped at once and the final one waits for it."""
    import threading

    from udfwidgets.udf.buffers import BufferWrapper

    class Count(LivePlot):
        def update(self, array, valid_mask):
            self.drawn = array.copy()

    buf = BufferWrapper("sig", "float32", (), np.full((2, 2), 7, np.float32), (3,))
    damage = BufferWrapper("nav", bool, (), np.ones(3, bool), (3,))
    plot = Count("x", min_delta=0)
    held, release = threading.Event(), threading.Event()

    def render():
        with plot._lock:
            held.set()
            release.wait(5)

    renderer = threading.Thread(target=render)
    renderer.start()
    held.wait(5)
    assert plot.new_data([{"x": buf}], damage) is False and plot.n_updates == 0
    final = threading.Thread(target=plot.new_data, args=([{"x": buf}], damage, True))
    final.start()
    final.join(0.2)
    assert final.is_alive()  # waits for the render to finish
    release.set()
    final.join(5)
    renderer.join(5)
    assert plot.n_updates == 1 and plot.finished
    np.testing.assert_array_equal(plot.drawn, np.full((2, 2), 7))


def test_roi_pixels_stay_masked(ctx, ds, data4d, data4d_int):
    roi = np.zeros(data4d.shape[:2], dtype=bool)
    roi[1:5, 2:7] = True
    plots = make_plots(True, ds, [SumSigUDF()], roi=roi, min_delta=0)
    ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=plots, roi=roi)
    values, mask = shown_image(plots[0])
    np.testing.assert_array_equal(mask, ~roi)
    ref = data4d.sum(axis=(2, 3), dtype=np.float64)
    np.testing.assert_allclose(values[roi], ref[roi], rtol=1e-5)
    assert plots[0].frames_label.value == f"{roi.sum()} / {roi.sum()} frames"
    assert plots[0].image.get_clim() == pytest.approx(robust(ref[roi]), rel=1e-5)
    # an integer buffer holds 0 outside the roi: the roi, not NaN, must mask it
    ds_int = ctx.load("memory", data=data4d_int, num_partitions=3)
    roi_int = np.zeros(data4d_int.shape[:2], dtype=bool)
    roi_int[2:5, 1:3] = True
    plot = MatplotlibLivePlot("peak")
    ctx.run_udf(dataset=ds_int, udf=FrameMaxUDF(), plots=[plot], roi=roi_int)
    values, mask = shown_image(plot)
    np.testing.assert_array_equal(mask, ~roi_int)
    np.testing.assert_array_equal(values[roi_int], data4d_int.max(axis=(2, 3))[roi_int])


# --- widgets ------------------------------------------------------------------------
def test_log_scale_widget(ctx, ds, data4d):
    plot = MatplotlibLivePlot("intensity", min_delta=0)
    ctx.run_udf(dataset=ds, udf=SumUDF(), plots=[plot])
    ref = data4d.sum(axis=(0, 1), dtype=np.float64)
    assert isinstance(plot.image.norm, LogNorm) and plot.log_scale  # a pattern: log first
    plot.controls.children[0].value = "linear"  # the scale buttons
    assert not isinstance(plot.image.norm, LogNorm) and not plot.log_scale
    plot.display_model.scale = "log"
    assert isinstance(plot.image.norm, LogNorm)
    assert (plot.image.norm.vmin, plot.image.norm.vmax) == pytest.approx(robust(ref), rel=1e-5)
    assert plot.colorbar.norm is plot.image.norm
    plot.display_model.scale = "gamma"
    assert type(plot.image.norm).__name__ == "PowerNorm" and plot.image.norm.gamma == 0.5
    # the percentile slider moves the limits
    plot.controls.children[1].value = (5.0, 95.0)
    assert plot.image.get_clim() == pytest.approx(tuple(np.percentile(ref, (5, 95))), rel=1e-5)


def test_log_scale_ignores_non_positive_values(ctx, rng):
    data = rng.normal(size=(4, 4, 3, 3)).astype(np.float32)
    ds = ctx.load("memory", data=data)
    plot = MatplotlibLivePlot("intensity", log=True)
    ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[plot])
    ref = data.sum(axis=(2, 3), dtype=np.float64)
    assert isinstance(plot.image.norm, LogNorm)
    assert plot.image.get_clim() == pytest.approx(robust(ref[ref > 0]), rel=1e-5)
    assert np.array_equal(shown_image(plot)[1], ref <= 0)  # masked, not painted


def test_log_scale_on_line(ctx, rng):
    data = rng.random((12, 3, 3), dtype=np.float32) + 1
    ds = ctx.load("memory", data=data)
    plot = MatplotlibLivePlot("intensity")
    ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[plot])
    assert plot.axes.get_yscale() == "linear"
    plot.display_model.scale = "log"
    assert plot.axes.get_yscale() == "log"


def test_colormap_widget(ctx, ds):
    plot = MatplotlibLivePlot("intensity")
    ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[plot])
    assert plot.image.get_cmap().name == "viridis"
    plot.controls.children[2].value = "magma"  # the colour menu
    assert plot.image.get_cmap().name == "magma"
    assert plot.image.get_cmap().get_bad() == pytest.approx(to_rgba("0.85"))
    with pytest.raises(ValueError, match="not a matplotlib colour map"):
        MatplotlibLivePlot("intensity", cmap="no-such-map")


def test_channel_widget(ctx, ds, data4d):
    plot = MatplotlibLivePlot("stats", min_delta=0)
    ctx.run_udf(dataset=ds, udf=ChannelsUDF(), plots=[plot])
    frames = data4d.astype(np.float64)
    refs = [frames.sum(axis=(2, 3)), frames.max(axis=(2, 3)), frames.min(axis=(2, 3))]
    assert [v for _, v in plot.channel_select.options] == [(0,), (1,), (2,)]
    assert plot.channel_select.layout.display is None  # shown
    np.testing.assert_allclose(shown_image(plot)[0], refs[0], rtol=1e-5)
    plot.channel_select.value = (2,)
    np.testing.assert_allclose(shown_image(plot)[0], refs[2], rtol=1e-5)
    assert plot.image.get_clim() == pytest.approx(robust(refs[2]), rel=1e-5)
    assert plot.axes.get_title(loc="left").endswith("[2]")
    # a plot of a buffer without extra_shape hides the menu
    plain = MatplotlibLivePlot("doubled")
    ctx.run_udf(dataset=ds, udf=ChannelsUDF(), plots=[plain])
    assert plain.channel_select.layout.display == "none"


class PatchUDF(UDF):
    """Nav buffer with a 2D extra_shape (4, 5): the top-left corner of each frame."""

    def get_result_buffers(self):
        return {"patch": self.buffer(kind="nav", extra_shape=(4, 5), dtype="float32")}

    def process_frame(self, frame):
        self.results.patch[:] = frame[:4, :5]


def test_channel_sliders_for_many_channels(ctx, ds, data4d, monkeypatch):
    import udfwidgets.widgets.plots.live as plots_module

    monkeypatch.setattr(plots_module, "MAX_CHANNEL_MENU", 8)  # 20 channels > 8: sliders
    plot = MatplotlibLivePlot("patch")
    ctx.run_udf(dataset=ds, udf=PatchUDF(), plots=[plot])
    sliders = plot.channel_sliders.children
    assert [(s.min, s.max, s.value) for s in sliders] == [(0, 3, 0), (0, 4, 0)]
    assert plot.channel_select.layout.display == "none"
    assert plot.channel_sliders.layout.display is None  # shown
    np.testing.assert_allclose(shown_image(plot)[0], data4d[:, :, 0, 0])
    sliders[0].value, sliders[1].value = 3, 2
    np.testing.assert_allclose(shown_image(plot)[0], data4d[:, :, 3, 2])
    assert plot.axes.get_title(loc="left").endswith("[3, 2]")


def test_channel_index_chosen_upfront(ctx, ds, data4d):
    plot = MatplotlibLivePlot("stats", channel_index=(1,))
    ctx.run_udf(dataset=ds, udf=ChannelsUDF(), plots=[plot])
    np.testing.assert_allclose(shown_image(plot)[0], data4d.max(axis=(2, 3)), rtol=1e-6)
    assert plot.channel_select.value == (1,)


# --- subscription interface and environments ------------------------------------------
def test_custom_subscriber_with_only_new_data(run_ctx, data4d):
    ds = run_ctx.load("memory", data=data4d, num_partitions=N_PARTS)

    class Logger:
        def __init__(self):
            self.calls = []

        def new_data(self, udf_results, damage, force=False):
            total = float(np.nansum(udf_results.buffers[0]["intensity"].data))
            self.calls.append((int(damage.data.sum()), total, force))

    log = Logger()
    run_ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[log])
    assert len(log.calls) == N_PARTS
    assert [f for _, _, f in log.calls] == [False] * (N_PARTS - 1) + [True]
    assert log.calls[-1][0] == 63
    assert log.calls[-1][1] == pytest.approx(float(data4d.sum(dtype=np.float64)), rel=1e-5)
    counts = [c for c, _, _ in log.calls]
    assert counts == sorted(counts) and counts[0] < 63


def test_plots_true_async(threads_ctx, data4d):
    ds = threads_ctx.load("memory", data=data4d, num_partitions=N_PARTS)
    res = asyncio.run(threads_ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=True, sync=False))
    np.testing.assert_allclose(res["intensity"].data, data4d.sum(axis=(2, 3)), rtol=1e-5)

    plots = make_plots(True, ds, [SumSigUDF()], min_delta=0)

    async def iterate():
        n = 0
        async for _ in threads_ctx.run_udf_iter(
            dataset=ds, udf=SumSigUDF(), plots=plots, sync=False
        ):
            n += 1
        return n

    assert asyncio.run(iterate()) == N_PARTS
    assert plots[0].n_updates == N_PARTS
    np.testing.assert_allclose(shown_image(plots[0])[0], data4d.sum(axis=(2, 3)), rtol=1e-5)


def test_plain_process_plots_true_and_save(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        from udfwidgets import Context
        from udfwidgets.udf.sumsigudf import SumSigUDF
        from udfwidgets.widgets import make_plots
        ctx = Context(executor="inline")
        data = np.arange(6 * 8 * 4 * 4, dtype=np.float32).reshape(6, 8, 4, 4)
        ds = ctx.load("memory", data=data, num_partitions=3)
        ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=True)
        plots = make_plots(True, ds, [SumSigUDF()])
        ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=plots)
        assert plots[0].backend == "agg", plots[0].backend
        plots[0].save({str(tmp_path / "final.png")!r})
        print("pyplot imported:", "matplotlib.pyplot" in sys.modules)
    """)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "pyplot imported: False" in out.stdout
    png = (tmp_path / "final.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    picture = matplotlib.image.imread(tmp_path / "final.png")
    assert picture.shape[0] == 340 and picture.shape[1] == 420  # 4.2 x 3.4 inches at 100 dpi
    assert picture[..., :3].std() > 0.05  # not blank


@pytest.mark.filterwarnings("ignore:Passing unrecognized arguments:DeprecationWarning")
def test_ipympl_canvas_backend(ctx, ds, data4d, ipympl):
    Canvas = ipympl.Canvas

    plot = MatplotlibLivePlot("intensity", backend="ipympl", min_delta=0)
    assert isinstance(plot.figure.canvas, Canvas) and plot.figure.canvas in plot.widget.children
    ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[plot])
    np.testing.assert_allclose(shown_image(plot)[0], data4d.sum(axis=(2, 3)), rtol=1e-5)


def test_image_backend_renders_png(ctx, ds):
    plot = MatplotlibLivePlot("intensity", backend="image", min_delta=0)
    assert plot.host.view in plot.widget.children and plot.host.view.value == b""
    ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[plot])
    assert plot.host.view.value[:4] == b"\x89PNG"


# --- errors ---------------------------------------------------------------------------
def test_unknown_buffer_name_lists_available(ds):
    with pytest.raises(ValueError, match=r"no buffer 'intensty'.*intensity"):
        make_plots([["intensty"]], ds, [SumUDF()])
    with pytest.raises(ValueError, match=r"'scratch' of ChannelsUDF is private"):
        make_plots([["scratch"]], ds, [ChannelsUDF()])
    with pytest.raises(ValueError, match=r"'labels' of ChannelsUDF cannot be drawn: dtype object"):
        make_plots([["labels"]], ds, [ChannelsUDF()])
    with pytest.raises(ValueError, match="2 UDFs"):
        make_plots(["intensity"], ds, [SumUDF(), SumSigUDF()])
    with pytest.raises(ValueError, match="has 1 entries but the run has 2"):
        make_plots([["intensity"]], ds, [SumUDF(), SumSigUDF()])
    with pytest.raises(TypeError, match="must be callable"):
        make_plots([[("intensity", 3)]], ds, [SumUDF()])
    with pytest.raises(ValueError, match="backend='nope'"):
        MatplotlibLivePlot("intensity", backend="nope")


def test_function_that_does_not_give_1d_or_2d(ctx, ds):
    plot = MatplotlibLivePlot("intensity", channel=lambda a: a[None, None])
    with pytest.raises(ValueError, match="cannot draw an array of shape"):
        ctx.run_udf(dataset=ds, udf=SumUDF(), plots=[plot])


# --- layout, toolbar, theme, static views ------------------------------------------------
@pytest.mark.filterwarnings("ignore:Passing unrecognized arguments:DeprecationWarning")
def test_grid_of_one_run_with_one_progress_bar(ctx, ds, data4d, ipympl):
    udfs = [SumUDF(), SumSigUDF()]
    plots = make_plots(True, ds, udfs, min_delta=0, backend="ipympl")
    grid = plots[0].grid
    assert grid is plots[1].grid
    assert grid.row.children == (plots[0].widget, plots[1].widget)
    assert grid.row.layout.flex_flow == "row wrap"  # side by side, wrapping
    assert grid.widget.children == (grid.row, plots[0].status)  # one bar, below all plots
    assert plots[1].status.layout.display == "none"
    ctx.run_udf(dataset=ds, udf=udfs, plots=plots)
    assert plots[0].frames_label.value == "63 / 63 frames"
    assert [p.axes.get_title(loc="left") for p in plots] == [
        "SumUDF: intensity",
        "SumSigUDF: intensity",
    ]
    for p in plots:  # ipympl's floating toolbar and "Figure N" header are off
        canvas = p.figure.canvas
        assert canvas.toolbar_visible is False and canvas.header_visible is False
        row = p.widget.children[1].children[0].children
        tools = [c.description for c in row if getattr(c, "description", "")]
        assert tools == ["home", "zoom", "pan"]  # (and the invisible probe, style sheet)


def test_own_toolbar_drives_navigation(ctx, ds):
    plot = MatplotlibLivePlot("intensity", backend="image", min_delta=0)
    ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[plot])
    row = plot.widget.children[1].children[0].children
    home, zoom, pan = [c for c in row if getattr(c, "description", "")]  # buttons only
    nav = plot.host.navigation()
    zoom.value = True
    assert nav.mode.name == "ZOOM" and zoom.value and not pan.value
    pan.value = True
    assert nav.mode.name == "PAN" and not zoom.value
    pan.value = False
    assert nav.mode.name == "NONE"


def test_theme_colours_text_and_background(ctx, ds):
    from udfwidgets.widgets.figure import THEMES

    plot = MatplotlibLivePlot("intensity", min_delta=0)
    ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[plot])
    ax = plot.axes
    grey = THEMES["auto"]["text"]
    assert to_rgba(ax.title.get_color()) == to_rgba(grey)
    assert to_rgba(ax.xaxis.get_ticklabels()[0].get_color()) == to_rgba(grey)
    assert plot.figure.get_facecolor()[3] == 0  # transparent: the notebook's background shows


def test_static_bundle(ctx, ds):
    import base64

    plots = make_plots(True, ds, [SumUDF(), SumSigUDF()], min_delta=0)
    ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()], plots=plots)
    for obj in (plots[0], plots[0].grid):
        bundle = obj._repr_mimebundle_()
        png = base64.b64decode(bundle["image/png"])
        assert png[:4] == b"\x89PNG"
        assert "<table" in bundle["text/html"] and "SumUDF: intensity" in bundle["text/html"]
        assert "VBox(" not in bundle["text/plain"]
    import io

    import matplotlib.image

    side_by_side = matplotlib.image.imread(
        io.BytesIO(base64.b64decode(plots[0].grid._repr_mimebundle_()["image/png"]))
    )
    assert side_by_side.shape[1] == 2 * 420
