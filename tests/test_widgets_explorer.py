"""The linked explorer: images against plain NumPy sums; debouncing and cancellation."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from matplotlib.testing.widgets import click_and_drag

from udfwidgets.widgets import Explorer, explore

SHAPE = (16, 16, 32, 32)


@pytest.fixture
def data(rng):
    return rng.random(SHAPE, dtype=np.float32)


@pytest.fixture
def ds(ctx, data):
    return ctx.load("memory", data=data, num_partitions=4)


def shown(selector):
    """The image data of the matplotlib artist (what the user sees)."""
    return np.asarray(selector._im.get_array())


def test_initial_images(ctx, ds, data):
    ex = explore(ctx, ds)
    np.testing.assert_allclose(ex.virtual_image, data.sum(axis=(2, 3)), rtol=1e-5)
    np.testing.assert_allclose(ex.pattern, data.sum(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(shown(ex.sig), data.sum(axis=(0, 1)), rtol=1e-5)
    assert ex.nav.roi.shape == (16, 16) and ex.sig.mask.shape == (32, 32)
    ex.close()


def test_drawing_updates_both_images(ctx, ds, data):
    ex = Explorer(ctx, ds, debounce=0.0, mode="region")
    click_and_drag(ex.nav.selectors["rectangle"], start=(2.4, 3.3), end=(9.6, 7.7))
    assert ex.wait(30), ex.last_error
    roi = np.zeros((16, 16), bool)
    roi[4:8, 3:10] = True
    np.testing.assert_array_equal(ex.nav.roi, roi)
    np.testing.assert_allclose(ex.pattern, data[roi].sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(shown(ex.sig), data[roi].sum(axis=0), rtol=1e-5)

    click_and_drag(ex.sig.selectors["disk"], start=(15.2, 16.1), end=(21.1, 16.4))
    assert ex.wait(30), ex.last_error
    rows, cols = np.indices((32, 32))
    mask = (cols - 15.2) ** 2 + (rows - 16.1) ** 2 <= 5.9**2
    np.testing.assert_array_equal(ex.sig.mask, mask)
    expected = (data * mask).sum(axis=(2, 3))
    np.testing.assert_allclose(ex.virtual_image, expected, rtol=1e-4)
    np.testing.assert_allclose(shown(ex.nav), expected, rtol=1e-4)
    # the pattern did not change with the detector
    np.testing.assert_allclose(ex.pattern, data[roi].sum(axis=0), rtol=1e-5)
    assert set(ex.timings) == {"pattern", "virtual"}
    assert "updated" in ex._status.value and "last update" in ex._status.value
    assert ex.sig.title == f"sum of {roi.sum()} scan positions"
    assert ex.nav.title == "virtual image: disk r=5.9 px"
    assert ex.stats["completed"] == 2 and ex.stats["failed"] == 0
    ex.close()


def test_empty_selection_shows_totals(ctx, ds, data):
    ex = Explorer(ctx, ds, debounce=0.0)
    ex.nav.set_point(4, 3)
    ex.sig.set_rectangle(top=0, left=0, height=4, width=4)
    assert ex.wait(30)
    np.testing.assert_allclose(ex.pattern, data[4, 3], rtol=1e-6)
    np.testing.assert_allclose(ex.virtual_image, data[..., :4, :4].sum(axis=(2, 3)), rtol=1e-5)
    ex.nav.clear()
    ex.sig.clear()
    assert ex.wait(30)
    np.testing.assert_allclose(ex.pattern, data.sum(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(ex.virtual_image, data.sum(axis=(2, 3)), rtol=1e-5)
    ex.close()


def test_debounce_runs_only_the_last_selection(ctx, ds, data):
    ex = Explorer(ctx, ds, debounce=0.5)
    for i in range(5):
        ex.nav.set_rectangle(0, 0, i + 1, i + 1, mode="replace")
    assert ex.wait(30)
    assert ex.stats["submitted"] == 5 and ex.stats["started"] == 1
    ex.nav.roi = ex.nav.roi.copy()  # an equal array: no new run
    assert ex.stats["submitted"] == 5
    np.testing.assert_allclose(ex.pattern, data[:5, :5].sum(axis=(0, 1)), rtol=1e-5)
    ex.close()


class SlowContext:
    """Wraps a Context: every partial result arrives 0.1 s late; records runs and closings."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.started = threading.Event()
        self.log = []

    def run_udf(self, *args, **kwargs):
        return self.ctx.run_udf(*args, **kwargs)

    def run_udf_iter(self, *args, **kwargs):
        entry = {"items": 0, "finished": False, "closed": False}
        self.log.append(entry)
        gen = self.ctx.run_udf_iter(*args, **kwargs)

        def slow():
            try:
                for item in gen:
                    self.started.set()
                    time.sleep(0.1)
                    entry["items"] += 1
                    entry["finished"] = item.finished
                    yield item
            finally:
                entry["closed"] = True
                gen.close()

        return slow()


def test_newer_selection_cancels_running(ctx, data):
    ds = ctx.load("memory", data=data, num_partitions=8)
    slow = SlowContext(ctx)
    ex = Explorer(slow, ds, debounce=0.0, partial_interval=100.0)
    ex.nav.set_rectangle(0, 0, 16, 16)  # everything: 8 slow partitions
    assert slow.started.wait(10)
    ex.nav.set_rectangle(2, 2, 3, 3, mode="replace")
    assert ex.wait(30), ex.last_error
    first, second = slow.log
    assert first["closed"] and not first["finished"] and first["items"] < 8
    assert second["finished"]
    assert ex.stats["cancelled"] == 1 and ex.stats["completed"] == 1
    np.testing.assert_allclose(ex.pattern, data[2:5, 2:5].sum(axis=(0, 1)), rtol=1e-5)
    ex.close()


def test_update_now_is_synchronous(ctx, ds, data):
    ex = Explorer(ctx, ds, debounce=60.0)  # the background would wait a minute
    roi = np.zeros((16, 16), bool)
    roi[::3, 1::2] = True
    ex.nav.roi = roi
    mask = np.zeros((32, 32), bool)
    mask[10:20, 5:9] = True
    ex.sig.mask = mask
    ex.update_now()
    assert not ex._runner.busy()  # the pending requests were dropped
    np.testing.assert_allclose(ex.pattern, data[roi].sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(ex.virtual_image, (data * mask).sum(axis=(2, 3)), rtol=1e-4)
    ex.close()


def test_threads_executor(threads_ctx, data):
    ds = threads_ctx.load("memory", data=data)
    ex = Explorer(threads_ctx, ds, debounce=0.0)
    ex.nav.set_ellipse((8, 8), (3, 4))
    ex.sig.set_ring((16, 16), 4, 9)
    assert ex.wait(30), ex.last_error
    rows, cols = np.indices((16, 16))
    roi = ((cols - 8) / 4) ** 2 + ((rows - 8) / 3) ** 2 <= 1
    rows, cols = np.indices((32, 32))
    d2 = (cols - 16) ** 2 + (rows - 16) ** 2
    mask = (d2 <= 81) & (d2 > 16)
    np.testing.assert_allclose(ex.pattern, data[roi].sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(ex.virtual_image, (data * mask).sum(axis=(2, 3)), rtol=1e-4)
    ex.close()


class FailingContext(SlowContext):
    def run_udf_iter(self, *args, **kwargs):
        raise RuntimeError("disk on fire")


def test_errors_are_shown_not_raised(ctx, ds):
    ex = Explorer(FailingContext(ctx), ds, debounce=0.0)
    ex.nav.set_point(1, 1)
    assert ex.wait(30)
    assert isinstance(ex.last_error, RuntimeError)
    assert "disk on fire" in ex._status.value and ex.stats["failed"] == 1
    ex.close()


def test_needs_2d_shapes(ctx):
    ds = ctx.load("memory", data=np.zeros((5, 4, 4)))
    with pytest.raises(ValueError, match="2D navigation and 2D signal"):
        Explorer(ctx, ds)


def test_everything_selected(ctx, ds, data):
    ex = Explorer(ctx, ds, debounce=0.0)
    ex.nav.set_point(0, 0)
    assert ex.wait(30)
    ex.nav.invert()  # all but one frame
    assert ex.wait(30)
    np.testing.assert_allclose(ex.pattern, data.sum(axis=(0, 1)) - data[0, 0], rtol=1e-4)
    ex.nav.set_point(0, 0)  # now every frame
    assert ex.wait(30) and ex.nav.roi.all()
    np.testing.assert_allclose(ex.pattern, data.sum(axis=(0, 1)), rtol=1e-5)
    assert ex.stats["completed"] == 3
    ex.close()


def hover(ex, x, y, name="motion_notify_event"):
    """A pointer event at data coordinates (x=column, y=row) on the navigation image."""
    from matplotlib.backend_bases import MouseEvent

    px, py = ex.nav.ax.transData.transform((x, y))
    event = MouseEvent(name, ex.nav.figure.canvas, px, py, button=None)
    ex.nav.figure.canvas.callbacks.process(event.name, event)


def test_live_cursor_shows_the_frame_under_the_pointer(ctx, tmp_path, data):
    """From a file: hovering shows that frame, read from the file; region mode sums again."""
    path = tmp_path / "scan.npy"
    np.save(path, data)
    ds = ctx.load("npy", path=str(path))
    ex = Explorer(ctx, ds, debounce=0.0, cursor_interval=0.0)
    assert ex.mode == "cursor" and not ex.nav.drawing
    assert not ex.nav.selectors["rectangle"].active  # the pointer does not draw
    hover(ex, 5.2, 9.9)  # column 5, row 10
    assert ex.wait(10), ex.last_error
    assert ex.cursor == (10, 5)
    np.testing.assert_array_equal(ex.pattern, data[10, 5])
    np.testing.assert_array_equal(shown(ex.sig).data, data[10, 5])
    assert ex.sig.title == "frame at scan position (row 10, column 5)"
    assert list(ex._marker.get_xdata()) == [5] and list(ex._marker.get_ydata()) == [10]
    assert "cursor" in ex.timings and "frame (row 10, column 5)" in ex._status.value
    hover(ex, 40.0, 3.0)  # outside the scan: ignored
    assert ex.wait(10) and ex.cursor == (10, 5)
    # region mode: the drawn region's sum, as before
    ex.mode = "region"
    assert ex.nav.drawing and ex.nav.selectors["rectangle"].active
    _ = ex.nav.set_rectangle(top=2, left=3, height=2, width=4)
    assert ex.wait(30), ex.last_error
    np.testing.assert_allclose(ex.pattern, data[2:4, 3:7].sum(axis=(0, 1)), rtol=1e-5)
    assert ex.sig.title == "sum of 8 scan positions"
    hover(ex, 1.0, 1.0)  # no cursor in region mode
    assert ex.wait(10) and ex.cursor is None
    ex.close()


def test_cursor_latest_wins(ctx, ds, data):
    ex = Explorer(ctx, ds, cursor_interval=0.3)
    ex.request_frame(0, 0)
    time.sleep(0.05)  # the first frame shows at once ...
    for col in range(1, 9):  # ... then 8 moves within the throttle interval
        ex.request_frame(3, col)
    assert ex.wait(10), ex.last_error
    assert ex.cursor == (3, 8)  # only the latest was shown
    np.testing.assert_array_equal(ex.pattern, data[3, 8])
    ex.close()


def test_layout_titles_and_static_view(ctx, ds, data):
    import base64

    ex = Explorer(ctx, ds)
    header, panels, status = ex.children
    assert panels.children == (ex.nav, ex.sig)
    assert ex.nav.title == "total intensity of each frame"
    assert ex.sig.title == "sum of all 256 scan positions"
    assert ex.sig.display_model.scale == "log" and ex.nav.display_model.scale == "linear"
    # the panels have the same rows above their figures, whatever tool is chosen
    ex.sig.tool = "ring"
    assert len(ex.nav.children) == len(ex.sig.children)
    assert ex.nav.layout.width == ex.sig.layout.width
    bundle = ex._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"])[:4] == b"\x89PNG"
    assert "sum of all 256 scan positions" in bundle["text/html"]
    assert bundle["text/plain"].startswith("Explorer:") and "VBox(" not in bundle["text/plain"]
    ex.close()


def _connect_fake_browser(selector) -> list:
    """Make an ipympl canvas behave as shown in a page: pictures are sent (recorded here)."""
    canvas = selector.figure.canvas
    canvas.syncing_data_url = False  # what the page's "initialized" message does
    sent: list = []  # (image mode, picture) of each message with a picture

    def send(content=None, buffers=None):
        if buffers:
            sent.append((canvas._current_image_mode, bytes(buffers[0])))

    canvas.send = send
    selector.host.refresh(push=True)  # the first picture: a full render (the layout)
    return sent


def _page_picture(sent: list) -> np.ndarray:
    """The picture the page shows after these messages: a "full" picture replaces it, a
    "diff" one (opaque changed pixels, transparent elsewhere) is drawn over it."""
    import io

    from PIL import Image

    page = None
    for mode, png in sent:
        picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
        if mode == "full" or page is None:
            page = picture.copy()
        else:
            changed = picture[..., 3] != 0
            page[changed] = picture[changed]
    assert page is not None, "no picture was sent"
    return page


def test_region_and_detector_updates_are_blitted_and_exact(ctx, ds, data, ipympl, monkeypatch):
    """Issue 17: with a page showing the figures, a region or detector update redraws only
    the image and its overlay (no full render with its layout); the artist's data is the
    NumPy reference, the heading says what is shown, and the blitted picture is the one a
    full render would make."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from udfwidgets.widgets.figure import FigureHost

    # no picture stored for a browser-less notebook (a timer thread) renders meanwhile
    monkeypatch.setattr(FigureHost, "_snapshot_soon", lambda self: None)
    ex = Explorer(ctx, ds, debounce=0.0, mode="region", backend="ipympl")
    try:
        assert ex.nav.blit_updates and ex.sig.blit_updates
        sent = {s: _connect_fake_browser(s) for s in (ex.nav, ex.sig)}
        renders = {s: s.figure.renders for s in (ex.nav, ex.sig)}
        blits = {ex.nav: 0, ex.sig: 0}
        for sel in blits:
            real = sel.host.blit

            def counting(artists, sel=sel, real=real):
                done = real(artists)
                blits[sel] += bool(done)
                return done

            sel.host.blit = counting
        for k in range(3):  # region updates: overlay on the scan, sum in the pattern
            ex.nav.set_rectangle(top=2 + k, left=3, height=4, width=5 + k, mode="replace")
            assert ex.wait(30), ex.last_error
            expected = data[ex.nav.roi].sum(axis=0)
            np.testing.assert_allclose(shown(ex.sig), expected, rtol=1e-5)
            assert ex.sig.title == f"sum of {4 * (5 + k)} scan positions"
        for r in (3, 5):  # detector updates: overlay on the pattern, virtual image in the scan
            ex.sig.set_disk(centre=(16, 16), radius=r, mode="replace")
            assert ex.wait(30), ex.last_error
            expected = data[..., ex.sig.mask].sum(axis=-1)
            np.testing.assert_allclose(shown(ex.nav), expected, rtol=1e-4)
            assert ex.nav.title == f"virtual image: disk r={r} px"
        # each change was blitted (overlay + image), and at most the first of each figure
        # rendered the rest of the figure again (the background kept for the next ones)
        assert blits[ex.nav] >= 3 + 2 and blits[ex.sig] >= 3 + 2, blits
        for sel in (ex.nav, ex.sig):
            assert sel.figure.renders - renders[sel] <= 2, (sel.figure.renders, renders[sel])
            assert sent[sel], "no picture was sent to the page"
        # the picture on the page is the one a full render makes
        for sel in (ex.nav, ex.sig):
            shown_on_page = _page_picture(sent[sel])
            with sel.host.lock:  # a picture stored for the notebook uses the same buffer
                # rendered whole, on the same layout (a new constrained-layout solve may move
                # the axes by a fraction of a pixel)
                sel.figure.keep_layout = True
                try:
                    FigureCanvasAgg.draw(sel.figure.canvas)
                finally:
                    sel.figure.keep_layout = False
                full = np.asarray(sel.figure.canvas.get_renderer().buffer_rgba()).copy()
            np.testing.assert_array_equal(shown_on_page, full)
    finally:
        ex.close()


def _full_render(selector) -> np.ndarray:
    """The picture a full render makes, on the figure's last layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    with selector.host.lock:
        selector.figure.keep_layout = True
        try:
            FigureCanvasAgg.draw(selector.figure.canvas)
        finally:
            selector.figure.keep_layout = False
        return np.asarray(selector.figure.canvas.get_renderer().buffer_rgba()).copy()


def test_rubber_band_drag_is_blitted_not_rendered(ctx, ds, data, ipympl, monkeypatch):
    """Issue 17: ipympl's canvas does not support matplotlib's blitting, so a selector
    redrew its rubber band with ``draw_idle``: the page asked for a full render of the
    figure per motion event, a backlog the region update waited behind after mouseup.
    The rubber band is now blitted through the figure host: no render requested during the
    drag, at most one background render; on the background showing the newest image (a
    detector change blitted a new virtual image just before); the result is exact."""
    from udfwidgets.widgets.figure import FigureHost

    monkeypatch.setattr(FigureHost, "_snapshot_soon", lambda self: None)
    ex = Explorer(ctx, ds, debounce=0.0, mode="region", backend="ipympl")
    try:
        sent = {s: _connect_fake_browser(s) for s in (ex.nav, ex.sig)}
        # a detector change: a new virtual image, blitted into the navigation figure
        ex.sig.set_disk(centre=(16, 16), radius=4, mode="replace")
        assert ex.wait(30), ex.last_error
        expected = data[..., ex.sig.mask].sum(axis=-1)
        np.testing.assert_allclose(shown(ex.nav), expected, rtol=1e-4)

        canvas = ex.nav.figure.canvas
        requested = []  # draw requests: the page answers each with a full render
        real_idle = canvas.draw_idle
        canvas.draw_idle = lambda *a, **k: (requested.append(1), real_idle(*a, **k))[1]
        from matplotlib.backend_bases import MouseEvent

        ax = ex.nav.ax

        def event(name, xy):
            x, y = ax.transData.transform(xy)
            MouseEvent(name, canvas, x, y, button=1)._process()

        start, end = (3.3, 2.4), (9.6, 7.7)
        renders = ex.nav.figure.renders
        event("button_press_event", start)
        for k in range(1, 16):
            t = k / 15
            event(
                "motion_notify_event",
                (start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1])),
            )
        during = len(requested), ex.nav.figure.renders - renders
        assert during[0] == 0 and during[1] <= 1, (
            f"{during[0]} draw requests, {during[1]} renders during 15 motion events"
        )
        # the page shows the rubber band over the new virtual image: a full render's picture
        np.testing.assert_array_equal(_page_picture(sent[ex.nav]), _full_render(ex.nav))
        event("button_release_event", end)
        assert ex.wait(30), ex.last_error
        rows, cols = np.indices((16, 16))  # pixel centres inside the dragged box
        roi = (cols >= 3.3) & (cols <= 9.6) & (rows >= 2.4) & (rows <= 7.7)
        np.testing.assert_array_equal(ex.nav.roi, roi)
        np.testing.assert_allclose(shown(ex.sig), data[roi].sum(axis=0), rtol=1e-5)
        np.testing.assert_allclose(shown(ex.nav), expected, rtol=1e-4)
        for sel in (ex.nav, ex.sig):
            np.testing.assert_array_equal(_page_picture(sent[sel]), _full_render(sel))
    finally:
        ex.close()
