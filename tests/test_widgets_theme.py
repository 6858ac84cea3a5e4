"""Figures follow the page's light/dark theme, reported by the theme probe widget.

The probe's state is changed as the browser changes it (``set_state``, what ipywidgets
does with a front-end message); the figures' artists must take the page's colours.
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgba

pytest.importorskip("anywidget")
pytestmark = pytest.mark.usefixtures("ipympl")

from udfwidgets import Context  # noqa: E402
from udfwidgets.udf.sumsigudf import SumSigUDF  # noqa: E402
from udfwidgets.widgets import BufferInspector, MatplotlibLivePlot, explore, theme  # noqa: E402

DARK = {"name": "dark", "face": "rgb(17, 17, 17)", "text": "rgba(255, 255, 255, 0.87)"}
LIGHT = {"name": "light", "face": "rgb(255, 255, 255)", "text": "rgba(0, 0, 0, 0.87)"}


@pytest.fixture(autouse=True)
def fresh_page():
    theme._page.clear()
    yield
    theme._page.clear()


def descendants(widget):
    yield widget
    for child in getattr(widget, "children", ()) or ():
        yield from descendants(child)


def colours_of(host):
    """Figure face, and the colours of every axes' face, tick labels, spines.

    Read under the render lock: a PNG being made (a stored snapshot, in a timer thread)
    paints the face white for its duration.
    """
    with host.lock:
        return _colours(host.figure)


def _colours(fig):
    out = {"face": {to_rgba(fig.get_facecolor())}, "text": set(), "spine": set()}
    for ax in fig.axes:
        out["face"].add(to_rgba(ax.get_facecolor()))
        for label in ax.get_xticklabels() + ax.get_yticklabels():
            out["text"].add(to_rgba(label.get_color()))
        out["spine"].update(to_rgba(s.get_edgecolor()) for s in ax.spines.values())
    return out


@pytest.fixture
def widgets_shown():
    ctx = Context(executor="inline")
    data = np.arange(4 * 5 * 6 * 6, dtype=np.float64).reshape(4, 5, 6, 6)
    ds = ctx.load("memory", data=data, num_partitions=2)
    ex = explore(ctx, ds, backend="ipympl")
    assert ex.wait(30)
    plot = MatplotlibLivePlot("intensity", min_delta=0, backend="ipympl")
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[plot])
    insp = BufferInspector(res, backend="ipympl")
    yield ex, plot, insp
    for w in (ex, insp):
        w.close()
    plot.close()


def test_figures_follow_page_theme(widgets_shown):
    ex, plot, insp = widgets_shown
    hosts = [ex.nav.host, ex.sig.host, plot.host, insp._host]
    # each widget carries the (one, invisible) probe in its layout
    probe = theme.probe()
    for w in (ex, plot.widget, insp):
        assert any(c is probe for c in descendants(w)), w
    # transparent until the page reported its theme
    assert all(colours_of(h)["face"] == {(0.0, 0.0, 0.0, 0.0)} for h in hosts[:3])
    versions = [h.version for h in hosts]

    probe.set_state({"theme": DARK})  # the browser reports JupyterLab Dark
    dark_face, dark_text = to_rgba("#111111"), to_rgba("#ffffffde")  # alpha 0.87 = 0xde / 255
    for host in hosts:
        c = colours_of(host)
        assert c["face"] == {dark_face}
        assert c["text"] == c["spine"] == {dark_text}
    # each figure was shown again
    after = [h.version for h in hosts]
    assert all(a > b for a, b in zip(after, versions, strict=True))

    probe.set_state({"theme": LIGHT})  # and back
    for host in hosts:
        c = colours_of(host)
        assert c["face"] == {to_rgba("white")}
        assert c["text"] == c["spine"] == {to_rgba("#000000de")}


def test_new_figure_takes_known_theme_and_fixed_themes_stay():
    theme.set_page_theme(DARK)
    plot = MatplotlibLivePlot("intensity", min_delta=0, backend="ipympl")
    plot.update(np.ones((3, 4)), None)
    assert to_rgba(plot.figure.get_facecolor()) == to_rgba("#111111")
    from udfwidgets.widgets.figure import FigureHost

    light = FigureHost("agg", theme="light")
    light.figure.add_subplot()
    light.style()
    theme.set_page_theme(LIGHT)
    theme.set_page_theme(DARK)
    assert to_rgba(light.figure.get_facecolor()) == to_rgba("white")  # "light" is not "auto"
    plot.close()


def test_unreadable_page_colours_fall_back_to_theme_defaults():
    assert theme.set_page_theme({"name": "dark", "face": "var(--x)", "text": ""}) >= 0
    assert theme.page_theme() == {"name": "dark", "face": "#111111", "text": "#dddddd"}
    assert theme.set_page_theme({"name": "sepia"}) == 0  # not a theme we know: ignored


def _contrast(a, b) -> float:
    """WCAG contrast ratio of two colours."""

    def lum(c):
        rgb = np.array(to_rgba(c)[:3])
        lin = np.where(rgb <= 0.03928, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
        return float(lin @ [0.2126, 0.7152, 0.0722])

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_chosen_toggle_button_is_marked_in_both_themes(widgets_shown):
    """Issue 17: the selected tool (mode, scale, zoom/pan) button is clearly marked in the
    light and the dark theme: every toggle of the widgets carries the class the package's
    style sheet fills, and each widget shows that style sheet."""
    import re

    import ipywidgets

    ex, plot, insp = widgets_shown
    for w in (ex, plot.widget, insp):
        toggles = [
            c
            for c in descendants(w)
            if isinstance(c, ipywidgets.ToggleButtons | ipywidgets.ToggleButton)
        ]
        assert toggles, w
        unmarked = [t for t in toggles if theme.TOGGLE_CLASS not in t._dom_classes]
        assert not unmarked, unmarked
        sheets = [c for c in descendants(w) if "udfw-style" in getattr(c, "_dom_classes", ())]
        assert sheets and all(theme.TOGGLE_CSS in s.value for s in sheets), w
    # the explorer: its mode, the selectors' tools and modes, the scales, zoom and pan
    assert {t.description for t in descendants(ex) if isinstance(t, ipywidgets.ToggleButton)} == {
        "zoom",
        "pan",
    }
    # one rule per theme; each fills the chosen button with a colour of its own and keeps
    # its text readable on it (WCAG AA: contrast 4.5)
    rules = re.findall(r"([^{}]+)\{([^}]*)\}", theme.TOGGLE_CSS)
    assert len(rules) == 2
    seen = {}
    for selector, body in rules:
        assert selector.count(".mod-active") == 2, selector
        props = dict(
            (k.strip(), v.strip()) for k, v in (p.split(":") for p in body.split(";") if ":" in p)
        )
        which = "dark" if 'theme-light="false"' in selector else "light"
        seen[which] = props["background-color"]
        assert _contrast(props["background-color"], props["color"]) >= 4.5, (which, props)
        assert props["font-weight"] == "bold"
    assert set(seen) == {"light", "dark"}
    # against JupyterLab's unchosen buttons (layout-color2: #eeeeee light, #424242 dark)
    assert _contrast(seen["light"], "#eeeeee") >= 3 and _contrast(seen["dark"], "#424242") >= 3
