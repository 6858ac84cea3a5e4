"""RoiSelector and SigMaskSelector: tools, modes and the mask trait, against NumPy index grids."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.backend_bases import MouseEvent
from matplotlib.testing.widgets import click_and_drag

from udfwidgets.widgets import RoiSelector, SigMaskSelector

NAV = (16, 20)  # not square: catches a swapped x / y
SIG = (24, 28)


def grids(shape):
    rows, cols = np.indices(shape)
    return rows.astype(float), cols.astype(float)


def no_centre_near(values, edge, tol=1e-3):
    """The reference must not depend on rounding at the boundary."""
    assert np.abs(values - edge).min() > tol


@pytest.fixture
def nav_sel(rng):
    sel = RoiSelector(rng.random(NAV), title="nav")
    yield sel
    sel.close()


@pytest.fixture
def sig_sel(rng):
    sel = SigMaskSelector(rng.random(SIG))
    yield sel
    sel.close()


def press(sel, x, y, button=1):
    """A real mouse press at data coordinates (x, y) through the canvas callbacks."""
    px, py = sel.ax.transData.transform((x, y))
    event = MouseEvent("button_press_event", sel.figure.canvas, px, py, button=button)
    sel.figure.canvas.callbacks.process(event.name, event)


def test_initial_roi_is_empty_bool_of_nav_shape(nav_sel):
    assert nav_sel.roi.dtype == bool and nav_sel.roi.shape == NAV and not nav_sel.roi.any()
    assert nav_sel.tool == "rectangle" and nav_sel.mode == "add"


def test_rectangle_drag(nav_sel):
    click_and_drag(nav_sel.selectors["rectangle"], start=(7.6, 9.2), end=(2.3, 3.4))
    rows, cols = grids(NAV)
    expected = (cols >= 2.3) & (cols <= 7.6) & (rows >= 3.4) & (rows <= 9.2)
    np.testing.assert_array_equal(nav_sel.roi, expected)
    assert nav_sel.roi.sum() == 5 * 6


def test_ellipse_drag(nav_sel):
    nav_sel.tool = "ellipse"
    click_and_drag(nav_sel.selectors["ellipse"], start=(2.3, 3.3), end=(12.7, 9.7))
    rows, cols = grids(NAV)
    dist = ((cols - 7.5) / 5.2) ** 2 + ((rows - 6.5) / 3.2) ** 2
    no_centre_near(dist, 1.0)
    np.testing.assert_array_equal(nav_sel.roi, dist <= 1)


def test_polygon_clicks(nav_sel):
    nav_sel.tool = "polygon"
    verts = [(1.2, 1.3), (15.7, 2.1), (6.4, 13.6)]
    tool = nav_sel.selectors["polygon"]
    for v in verts + [verts[0]]:
        click_and_drag(tool, start=v, end=v)
    rows, cols = grids(NAV)
    inside = np.ones(NAV, bool)
    for (x0, y0), (x1, y1) in zip(verts, verts[1:] + verts[:1]):
        cross = (x1 - x0) * (rows - y0) - (y1 - y0) * (cols - x0)
        no_centre_near(cross, 0.0)
        inside &= cross > 0  # vertices go clockwise on screen (y down): interior on the left
    assert inside.sum() > 20
    np.testing.assert_array_equal(nav_sel.roi, inside)
    # the polygon tool is ready for the next shape
    assert not tool._selection_completed


def test_lasso_callback(nav_sel):
    nav_sel.tool = "lasso"
    verts = [(0.5, 0.5), (6.5, 0.5), (6.5, 4.5), (0.5, 4.5)]
    nav_sel.selectors["lasso"].onselect(verts)
    expected = np.zeros(NAV, bool)
    expected[1:5, 1:7] = True
    np.testing.assert_array_equal(nav_sel.roi, expected)


def test_point_click_and_other_button_ignored(nav_sel):
    nav_sel.tool = "point"
    press(nav_sel, 11.3, 4.6)
    press(nav_sel, 3.0, 3.0, button=3)
    expected = np.zeros(NAV, bool)
    expected[5, 11] = True
    np.testing.assert_array_equal(nav_sel.roi, expected)


def test_point_ignored_with_other_tool(nav_sel):
    press(nav_sel, 11.3, 4.6)  # rectangle tool: a click is not a point
    assert not nav_sel.roi.any()


def test_only_the_chosen_tool_is_active(nav_sel):
    for tool in ("ellipse", "polygon", "lasso", "point", "rectangle"):
        nav_sel.tool = tool
        assert {name for name, s in nav_sel.selectors.items() if s.active} == (
            {tool} if tool != "point" else set()
        )
        assert nav_sel._tool_buttons.value == tool
    nav_sel._tool_buttons.value = "lasso"  # the buttons drive the trait
    assert nav_sel.tool == "lasso"
    with pytest.raises(Exception, match="tool must be one of"):
        nav_sel.tool = "ring"


def test_modes_add_subtract_replace_invert_clear(nav_sel):
    rows, cols = grids(NAV)
    a = (cols >= 2) & (cols <= 9) & (rows >= 1) & (rows <= 6)
    b = (cols - 8) ** 2 + (rows - 6) ** 2 <= 3.5**2
    nav_sel.set_rectangle(top=1, left=2, height=6, width=8)
    np.testing.assert_array_equal(nav_sel.roi, a)
    nav_sel.set_ellipse((6, 8), 3.5)  # mode "add"
    np.testing.assert_array_equal(nav_sel.roi, a | b)
    nav_sel.mode = "subtract"
    nav_sel.set_rectangle(top=1, left=2, height=6, width=8)
    np.testing.assert_array_equal(nav_sel.roi, b & ~a)
    nav_sel._invert_button.click()
    np.testing.assert_array_equal(nav_sel.roi, ~(b & ~a))
    nav_sel._mode_buttons.value = "replace"
    assert nav_sel.mode == "replace"
    nav_sel.set_ellipse((6, 8), 3.5)
    np.testing.assert_array_equal(nav_sel.roi, b)
    nav_sel.set_rectangle(1, 2, 6, 8, mode="add")  # explicit mode wins
    np.testing.assert_array_equal(nav_sel.roi, a | b)
    nav_sel._clear_button.click()
    assert not nav_sel.roi.any()


def test_mode_applies_to_drawn_shapes(nav_sel):
    nav_sel.roi = np.ones(NAV, bool)
    nav_sel.mode = "subtract"
    click_and_drag(nav_sel.selectors["rectangle"], start=(0.6, 0.6), end=(3.4, 2.4))
    expected = np.ones(NAV, bool)
    expected[1:3, 1:4] = False
    np.testing.assert_array_equal(nav_sel.roi, expected)


def test_overlay_shows_selection(nav_sel):
    nav_sel.set_rectangle(top=2, left=3, height=3, width=3)
    alpha = np.asarray(nav_sel._overlay.get_array())[..., 3]
    np.testing.assert_array_equal(alpha > 0, nav_sel.roi)
    assert "9 of 320" in nav_sel._status.value


def test_roi_trait_set_validate_and_notify(nav_sel, rng):
    seen = []
    nav_sel.observe(lambda change: seen.append(change["new"].sum()), "roi")
    mask = rng.random(NAV) > 0.5
    nav_sel.roi = mask
    np.testing.assert_array_equal(nav_sel.roi, mask)
    assert seen == [mask.sum()]
    nav_sel.apply(mask, mode="add")  # no change: no notification
    assert len(seen) == 1
    with pytest.raises(ValueError, match=r"roi must have the image's shape \(16, 20\)"):
        nav_sel.roi = np.zeros((20, 16), bool)
    with pytest.raises(TypeError, match="must be a bool array"):
        nav_sel.roi = mask.astype(np.uint8)
    with pytest.raises(ValueError, match="read-only"):
        nav_sel.roi[0, 0] = True
    mask[0, 0] = ~mask[0, 0]  # the trait holds a copy
    assert nav_sel.roi[0, 0] != mask[0, 0]


def test_roi_usable_for_run(ctx, rng):
    data = rng.random((6, 7, 4, 5)).astype(np.float32)
    ds = ctx.load("memory", data=data)
    sel = RoiSelector.for_dataset(ctx, ds)
    np.testing.assert_allclose(sel.image, data.sum(axis=(2, 3)), rtol=1e-5)
    sel.set_rectangle(top=1, left=1, height=4, width=3)
    from udfwidgets.udf.sum import SumUDF

    res = ctx.run_udf(dataset=ds, udf=SumUDF(), roi=sel.roi)
    np.testing.assert_allclose(res["intensity"].data, data[1:5, 1:4].sum(axis=(0, 1)), rtol=1e-5)
    sel.close()


def test_bad_images():
    with pytest.raises(ValueError, match="must be a 2D array"):
        RoiSelector(np.zeros((3, 4, 5)))
    with pytest.raises(TypeError, match="must be numeric"):
        RoiSelector(np.array([["a", "b"]]))


def test_set_image_keeps_selection(nav_sel):
    nav_sel.set_point(1, 1)
    new = np.arange(np.prod(NAV), dtype=float).reshape(NAV)
    nav_sel.set_image(new)
    np.testing.assert_array_equal(nav_sel._im.get_array(), new)
    # robust limits: the 0.1 and 99.9 % percentiles of the pixels
    assert nav_sel._im.get_clim() == pytest.approx(tuple(np.percentile(new, (0.1, 99.9))))
    assert nav_sel.roi.sum() == 1
    with pytest.raises(ValueError, match="keep the shape"):
        nav_sel.set_image(np.zeros((2, 2)))


# --- the signal side ------------------------------------------------------------------------
def test_sig_tools_and_mask(sig_sel):
    assert sig_sel.tool == "disk" and set(sig_sel.selectors) == {
        "disk",
        "ring",
        "rectangle",
        "polygon",
    }
    rows, cols = grids(SIG)
    click_and_drag(sig_sel.selectors["disk"], start=(13.2, 11.1), end=(18.1, 12.0))
    r = 18.1 - 13.2
    d2 = (cols - 13.2) ** 2 + (rows - 11.1) ** 2
    no_centre_near(d2, r**2)
    np.testing.assert_array_equal(sig_sel.mask, d2 <= r**2)
    factory = sig_sel.mask_factory()
    assert factory().dtype == np.float32
    np.testing.assert_array_equal(factory(), (d2 <= r**2).astype(np.float32))


def test_sig_ring_drag_uses_ratio(sig_sel):
    sig_sel.tool = "ring"
    assert sig_sel._ring_slider.layout.visibility == "visible"
    sig_sel._ring_slider.value = 0.4
    click_and_drag(sig_sel.selectors["ring"], start=(13.2, 11.1), end=(13.9, 18.3))
    r = 18.3 - 11.1
    rows, cols = grids(SIG)
    d2 = (cols - 13.2) ** 2 + (rows - 11.1) ** 2
    no_centre_near(d2, r**2)
    no_centre_near(d2, (0.4 * r) ** 2)
    np.testing.assert_array_equal(sig_sel.mask, (d2 <= r**2) & (d2 > (0.4 * r) ** 2))


def test_sig_set_ring_and_validation(sig_sel):
    rows, cols = grids(SIG)
    sig_sel.set_ring((10, 12), 3, 6)
    d2 = (cols - 12) ** 2 + (rows - 10) ** 2
    np.testing.assert_array_equal(sig_sel.mask, (d2 <= 36) & (d2 > 9))
    with pytest.raises(ValueError, match="outer must be larger than inner"):
        sig_sel.set_ring((10, 12), 6, 3)
    with pytest.raises(ValueError, match=r"mask must have the image's shape \(24, 28\)"):
        sig_sel.mask = np.zeros(NAV, bool)
    with pytest.raises(ValueError, match="outside the image"):
        sig_sel.set_point(40, 2)


def test_tiny_drag_selects_nothing(nav_sel):
    click_and_drag(nav_sel.selectors["rectangle"], start=(3.2, 3.2), end=(3.2, 3.2))
    assert not nav_sel.roi.any()


def test_constructs_under_ipympl():
    """Under ``%matplotlib widget`` the canvas is an ipywidget laid out in the VBox."""
    code = (
        "import matplotlib; matplotlib.use('module://ipympl.backend_nbagg')\n"
        "import numpy as np, ipywidgets\n"
        "from udfwidgets.widgets import RoiSelector, SigMaskSelector\n"
        "for cls in (RoiSelector, SigMaskSelector):\n"
        "    s = cls(np.zeros((4, 5)))\n"
        "    assert s.children[-1] is s.figure.canvas, s.children\n"
        "    assert isinstance(s.figure.canvas, ipywidgets.DOMWidget)\n"
        "    s.close()\n"
        "print('ok')\n"
    )
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def _drawn_pixels(png: bytes) -> int:
    """How many pixels of a PNG are not white (a blank render has none)."""
    import io

    import matplotlib.image as mimage

    rgb = mimage.imread(io.BytesIO(png))[..., :3]
    return int((rgb < 0.96).any(axis=-1).sum())


def test_pictures_rendered_in_two_threads_at_once_are_never_blank(rng, ipympl):
    """The browser's draw (main thread) and a stored or pushed picture (another thread)
    share the ipympl canvas' one Agg buffer: each render holds the figure's lock from
    clearing it to reading it back, so neither picture comes out blank (issue 17: blank
    figures in saved notebooks and in the page)."""
    import threading

    sel = RoiSelector(rng.random((32, 32)), backend="ipympl")
    try:
        canvas = sel.figure.canvas
        reference = _drawn_pixels(sel.host.png())
        assert reference > 2000
        pictures, errors = [], []

        def render(n):
            try:
                for _ in range(n):
                    pictures.append(sel.host.png())
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=render, args=(12,)) for _ in range(2)]
        for t in threads:
            t.start()
        for _ in range(12):  # what a draw request from the browser does
            canvas.draw()
        for t in threads:
            t.join()
        assert not errors, errors
        counts = [_drawn_pixels(p) for p in pictures]
        assert len(counts) == 24
        assert min(counts) > reference // 2, counts
    finally:
        sel.close()


def test_pending_picture_stored_when_the_cell_ends(rng, ipympl):
    """Without a browser (nbconvert --execute) a change is stored in the widget state by a
    timer; the end of a cell stores it at once, so the last cell's change is saved too."""
    import base64
    import io

    import matplotlib.image as mimage

    from udfwidgets.widgets import figure

    sel = RoiSelector(rng.random((16, 16)), backend="ipympl")
    try:
        canvas = sel.figure.canvas
        assert canvas.syncing_data_url  # no browser has connected
        figure._flush_snapshots()
        sel.host.snapshot_delay = 3600.0  # the timer never fires during this test
        sel.set_rectangle(top=2, left=3, height=4, width=5)
        assert id(sel.host) in figure._pending_snapshots
        before = canvas._data_url
        assert figure._flush_snapshots() >= 1
        assert not figure._pending_snapshots
        assert canvas._data_url != before
        stored = base64.b64decode(canvas._data_url.split(",", 1)[1])
        now = sel.host.png()
        np.testing.assert_array_equal(
            mimage.imread(io.BytesIO(stored)), mimage.imread(io.BytesIO(now))
        )
    finally:
        sel.close()


def test_agrees_with_udfwidgets_masks(sig_sel):
    """The drawn detectors select the same pixels as the mask factories (centre (y, x) there)."""
    from udfwidgets import masks

    sig_sel.set_disk((9.25, 11.5), 6.3, mode="replace")
    np.testing.assert_array_equal(
        sig_sel.mask, masks.disk(SIG, centre=(9.25, 11.5), radius=6.3, dtype=bool)
    )
    sig_sel.set_ring((9.25, 11.5), 3.1, 7.7, mode="replace")
    np.testing.assert_array_equal(
        sig_sel.mask, masks.ring(SIG, centre=(9.25, 11.5), inner=3.1, outer=7.7, dtype=bool)
    )


@pytest.mark.parametrize("end", [(18.1, 11.1), (13.2, 16.0), (8.3, 11.1)])
def test_disk_drag_straight_sideways_or_down(sig_sel, end):
    """A drag along one axis still gives a disk (its other span is zero while dragging)."""
    click_and_drag(sig_sel.selectors["disk"], start=(13.2, 11.1), end=end)
    r = max(abs(end[0] - 13.2), abs(end[1] - 11.1))
    rows, cols = grids(SIG)
    d2 = (cols - 13.2) ** 2 + (rows - 11.1) ** 2
    no_centre_near(d2, r**2)
    np.testing.assert_array_equal(sig_sel.mask, d2 <= r**2)


def test_disk_click_without_drag_selects_nothing(sig_sel):
    click_and_drag(sig_sel.selectors["disk"], start=(13.2, 11.1), end=(13.2, 11.1))
    assert not sig_sel.mask.any()


def test_cursor_readout_shows_image_not_overlay(nav_sel):
    """Hovering reports the image value: the overlay layer is excluded from the read-out."""
    assert nav_sel._im.get_mouseover() and not nav_sel._overlay.get_mouseover()


def test_mask_drives_apply_masks_udf(ctx, rng):
    from udfwidgets.udf.masks import ApplyMasksUDF

    data = rng.random((5, 6) + SIG).astype(np.float32)
    ds = ctx.load("memory", data=data)
    sel = SigMaskSelector(data.sum(axis=(0, 1)))
    sel.set_polygon([(3.1, 2.2), (5.3, 20.6), (19.8, 9.4)])  # (y, x)
    res = ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(mask_factories=[sel.mask_factory()]))
    expected = (data * sel.mask).sum(axis=(2, 3))
    np.testing.assert_allclose(res["intensity"].data[..., 0], expected, rtol=1e-4)
    res = ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(masks=sel.mask))  # the bool mask as is
    np.testing.assert_allclose(res["intensity"].data[..., 0], expected, rtol=1e-4)
    sel.close()
