"""Figures that follow JupyterLab's light or dark theme.

matplotlib draws in the kernel and knows nothing of the page. A tiny front-end
probe (:class:`ThemeProbe`, an `anywidget <https://anywidget.dev>`_ widget, MIT)
sits invisibly in every widget of the package: in the browser it reads the
page's theme (JupyterLab's ``data-jp-theme-light`` on ``<body>`` and its
``--jp-layout-color0`` / ``--jp-ui-font-color1`` colours), watches it change
(a ``MutationObserver``), and syncs it to the kernel as the :attr:`ThemeProbe.theme`
trait. Every figure in the ``"auto"`` theme reacts by taking the page's background
and text colours (:func:`~udfwidgets.widgets.figure.apply_theme`) and is shown again.

Without anywidget, or before a browser reported, ``"auto"`` figures keep a
transparent background and neutral grey text, readable on both themes.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

__all__ = [
    "probe",
    "page_theme",
    "set_page_theme",
    "follow",
    "css_colour",
    "TOGGLE_CLASS",
    "TOGGLE_CSS",
    "mark_toggles",
    "style_sheet",
]

_ESM = """
function resolved(property, value) {
  // a CSS variable's value may be var(...), a name or rgba(...): let the browser resolve it
  const probe = document.createElement("div");
  probe.style.display = "none";
  probe.style[property] = value;
  document.body.appendChild(probe);
  const out = getComputedStyle(probe)[property];
  probe.remove();
  return out;
}

function colours(el) {
  const body = document.body;
  const light = body.dataset.jpThemeLight;
  let name = light === "true" ? "light" : light === "false" ? "dark" : "";
  const face = resolved("backgroundColor", "var(--jp-layout-color0, transparent)");
  const text = resolved("color", "var(--jp-ui-font-color1, currentcolor)");
  if (!name) {
    // not JupyterLab: judge the page's background by its luminance
    const bg = getComputedStyle(el.closest("body")).backgroundColor || "rgb(255,255,255)";
    const v = (bg.match(/[0-9.]+/g) || [255, 255, 255]).map(Number);
    name = 0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2] < 128 ? "dark" : "light";
  }
  return { name: name, face: face, text: text };
}

function render({ model, el }) {
  el.style.display = "none";
  const report = () => {
    const now = colours(el);
    const old = model.get("theme") || {};
    if (old.name !== now.name || old.face !== now.face || old.text !== now.text) {
      model.set("theme", now);
      model.save_changes();
    }
  };
  report();
  const observer = new MutationObserver(() => setTimeout(report, 50));
  observer.observe(document.body, {
    attributes: true,
    attributeFilter: ["data-jp-theme-light", "data-jp-theme-name", "class", "style"],
  });
  return () => observer.disconnect();
}
export default { render };
"""

#: The CSS class of every toggle group (and single toggle button) of the package.
TOGGLE_CLASS = "udfw-toggle"

#: How the chosen button of a toggle group looks (a tool, a mode, a scale, zoom or pan).
#: ipywidgets marks it only with a slightly lighter grey, which in JupyterLab's dark theme
#: is hard to tell from the others: here it is filled blue, with bold text, in both themes
#: (JupyterLab's ``data-jp-theme-light`` on ``<body>`` chooses the shade; a page without it
#: gets the light one, readable on any background).
TOGGLE_CSS = f"""
.{TOGGLE_CLASS} .jupyter-button.mod-active, .jupyter-button.{TOGGLE_CLASS}.mod-active {{
  background-color: #1565c0; color: #ffffff; font-weight: bold;
  box-shadow: inset 0 0 0 1px #0d47a1;
}}
body[data-jp-theme-light="false"] .{TOGGLE_CLASS} .jupyter-button.mod-active,
body[data-jp-theme-light="false"] .jupyter-button.{TOGGLE_CLASS}.mod-active {{
  background-color: #64b5f6; color: #111111; font-weight: bold;
  box-shadow: inset 0 0 0 1px #bbdefb;
}}
"""


def mark_toggles(*toggles: Any) -> None:
    """Give toggle groups (``ToggleButtons``) or buttons (``ToggleButton``) the marked look.

    The look itself comes with :func:`style_sheet`, in every figure's toolbar.

    Examples
    --------
    >>> import ipywidgets as w
    >>> tools = w.ToggleButtons(options=["a", "b"])
    >>> mark_toggles(tools); TOGGLE_CLASS in tools._dom_classes
    True
    """
    for toggle in toggles:
        toggle.add_class(TOGGLE_CLASS)


def style_sheet() -> Any:
    """An invisible ``ipywidgets.HTML`` holding :data:`TOGGLE_CSS` (a ``<style>`` element).

    Shown anywhere on the page (the package puts one in every figure
    toolbar), it styles every marked toggle of the page.

    Examples
    --------
    >>> sheet = style_sheet()
    >>> sheet.value.startswith("<style>"), sheet.layout.display
    (True, 'none')
    """
    import ipywidgets as w

    sheet = w.HTML(f"<style>{TOGGLE_CSS}</style>", layout=w.Layout(display="none"))
    sheet.add_class("udfw-style")
    return sheet


_lock = threading.Lock()
_probe: Any = None
_followers: weakref.WeakSet = weakref.WeakSet()
#: The last theme the page reported: {"name": "light"|"dark", "face": css, "text": css}.
_page: dict[str, str] = {}


def _probe_class():
    import anywidget
    import traitlets

    class ThemeProbe(anywidget.AnyWidget):
        """An invisible widget reporting the page's theme to the kernel.

        Attributes
        ----------
        theme : dict
            ``{"name": "light" or "dark", "face": css colour, "text": css colour}``,
            empty until a browser shows the probe.
        """

        _esm = _ESM
        theme = traitlets.Dict().tag(sync=True)

    return ThemeProbe


def probe() -> Any:
    """The kernel's one theme probe widget (None without anywidget), to put in a layout.

    Examples
    --------
    >>> p = probe()
    >>> p is None or p is probe()
    True
    """
    global _probe
    with _lock:
        if _probe is None or getattr(_probe, "comm", None) is None:  # none yet, or closed
            try:
                cls = _probe_class()
            except ImportError:
                return None
            _probe = cls(layout={"display": "none"})
            _probe._udfw_shared = True  # in every widget's layout: closing one keeps it
            _probe.observe(lambda change: set_page_theme(change["new"]), "theme")
        return _probe


def page_theme() -> dict[str, str]:
    """The page's theme as last reported (empty before a browser reported one).

    Examples
    --------
    >>> isinstance(page_theme(), dict)
    True
    """
    return dict(_page)


def css_colour(colour: str) -> str | None:
    """A CSS colour as matplotlib understands it (``#rrggbbaa``), None if it is not one.

    Examples
    --------
    >>> css_colour("rgba(0, 0, 0, 0.87)"), css_colour("rgb(17, 17, 17)"), css_colour("white")
    ('#000000de', '#111111ff', '#ffffffff')
    >>> css_colour("var(--x)") is None, css_colour("rgba(0, 0, 0, 0)") is None
    (True, True)
    """
    import re

    from matplotlib.colors import to_hex, to_rgba

    text = str(colour).strip()
    m = re.fullmatch(
        r"rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)(?:[\s,/]+([\d.]+))?\s*\)", text
    )
    try:
        if m:
            r, g, b = (float(v) / 255 for v in m.groups()[:3])
            a = float(m.group(4)) if m.group(4) is not None else 1.0
            rgba = to_rgba((r, g, b, a))
        else:
            rgba = to_rgba(text)
    except ValueError:
        return None
    if rgba[3] == 0:  # transparent: the page did not say
        return None
    return to_hex(rgba, keep_alpha=True)


def set_page_theme(theme: dict[str, str]) -> int:
    """Take a theme reported by the page; restyle every following figure; how many.

    CSS colours matplotlib does not understand are replaced by the light or
    dark defaults of :data:`~udfwidgets.widgets.figure.THEMES`.

    Examples
    --------
    >>> set_page_theme({})  # nothing reported: nothing changes
    0
    """
    from .figure import THEMES

    name = theme.get("name") if theme else None
    if name not in ("light", "dark"):
        return 0
    face, text = css_colour(theme.get("face", "")), css_colour(theme.get("text", ""))
    new = {
        "name": name,
        "face": face or THEMES[name]["face"],
        "text": text or THEMES[name]["text"],
    }
    if new == _page:
        return 0
    _page.clear()
    _page.update(new)
    done = 0
    for host in list(_followers):
        try:
            host.follow_page()
            done += 1
        except Exception:  # noqa: BLE001 - one broken figure must not stop the others
            continue
    return done


def follow(host: Any) -> None:
    """Let a :class:`~udfwidgets.widgets.figure.FigureHost` follow the page's theme.

    Hosts in the ``"auto"`` theme call it themselves.

    Examples
    --------
    >>> from udfwidgets.widgets.figure import FigureHost
    >>> host = FigureHost("agg")
    >>> host in _followers
    True
    """
    _followers.add(host)
