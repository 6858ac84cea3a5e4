"""Static fallbacks of the widgets: what GitHub, nbviewer or a docs site show.

A live widget needs a kernel. Every widget of the package adds to its
``_repr_mimebundle_`` a PNG of its figure(s) (``image/png``), an HTML view
(``text/html``: the same picture and a small table of what is shown), and a
one-line ``text/plain`` instead of ``VBox(children=...)``. Jupyter shows the
live widget; a static renderer picks the richest entry it understands.

The fallback shows the *latest* state, not the first: a widget is displayed
with a display id (:class:`StaticView`), and after every cell execution the
kernel's main thread replaces the stored output of each displayed widget whose
figure or summary changed (``update_display``), so a notebook executed by
nbconvert/nbclient stores a live plot's final image, not its empty axes.
Outputs shown live in a browser are left alone (see :func:`refresh_displays`).
"""

from __future__ import annotations

import base64
import html
import io
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "mimebundle",
    "html_table",
    "close_tree",
    "combine_pngs",
    "png_html",
    "StaticView",
    "refresh_displays",
]

_TABLE = "border-collapse:collapse;font-family:monospace;font-size:12px;margin:2px 0"
_CELL = "padding:1px 8px;text-align:left;border-bottom:1px solid #ddd"


def html_table(title: str | None, rows: Iterable[tuple[str, str]]) -> str:
    """A two-column HTML table (field, value) with an optional caption; text is escaped.

    Examples
    --------
    >>> html_table("t", [("a", "<1>")])
    "<table style='border-collapse:collapse;font-family:monospace;font-size:12px;margin:2px 0'><caption style='text-align:left;font-weight:bold'>t</caption><tr><th style='padding:1px 8px;text-align:left;border-bottom:1px solid #ddd'>a</th><td style='padding:1px 8px;text-align:left;border-bottom:1px solid #ddd'>&lt;1&gt;</td></tr></table>"
    """
    caption = (
        f"<caption style='text-align:left;font-weight:bold'>{html.escape(title)}</caption>"
        if title
        else ""
    )
    body = "".join(
        f"<tr><th style='{_CELL}'>{html.escape(str(k))}</th>"
        f"<td style='{_CELL}'>{html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    return f"<table style='{_TABLE}'>{caption}{body}</table>"


def png_html(png: bytes, alt: str = "figure") -> str:
    """An ``<img>`` with the PNG inline (a data URL).

    Examples
    --------
    >>> png_html(b"x")
    '<img alt="figure" src="data:image/png;base64,eA=="/>'
    """
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'


def mimebundle(
    widget: Any,
    png: Callable[[], bytes],
    table: Callable[[], str],
    text: str | None = None,
    hosts: Sequence[Any] = (),
) -> dict:
    """The widget's own bundle plus ``image/png``, ``text/html`` and a short ``text/plain``.

    ``hosts``: figure hosts whose picture goes into the widget state too
    (:meth:`~udfwidgets.widgets.figure.FigureHost.snapshot`).

    Examples
    --------
    >>> b = mimebundle(None, lambda: b"png", lambda: "<table></table>", "a plot")
    >>> sorted(b), b["text/plain"]
    (['image/png', 'text/html', 'text/plain'], 'a plot')
    """
    bundle: dict[str, Any] = {}
    if widget is not None:
        own = widget._repr_mimebundle_()
        if isinstance(own, tuple):  # (data, metadata)
            own = own[0]
        bundle.update(own or {})
    picture = png()
    for host in hosts:
        host.snapshot()
    image = ""
    if picture is not None:  # None: nothing drawn (a single value, a message)
        bundle["image/png"] = base64.b64encode(picture).decode("ascii")
        image = png_html(picture, text or "figure")
    bundle["text/html"] = f"<div class='udfw-static'>{image}{table()}</div>"
    bundle["text/plain"] = text or type(widget).__name__
    return bundle


def close_tree(widget: Any) -> None:
    """Close an ipywidget and every widget below it (children first).

    Examples
    --------
    >>> import ipywidgets as w
    >>> box = w.VBox([w.Label("a")]); close_tree(box); box.comm is None
    True
    """
    if getattr(widget, "_udfw_shared", False):  # shared by several widgets (the theme probe)
        return
    for child in getattr(widget, "children", ()) or ():
        close_tree(child)
    close = getattr(widget, "close", None)
    if close is not None:
        close()


def combine_pngs(pngs: Sequence[bytes]) -> bytes:
    """Several PNGs side by side in one (top-aligned, white padding).

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> def png(w):
    ...     buf = io.BytesIO(); Figure(figsize=(w, 1), dpi=10).savefig(buf, format="png")
    ...     return buf.getvalue()
    >>> import matplotlib.image as mi
    >>> mi.imread(io.BytesIO(combine_pngs([png(1), png(2)]))).shape[:2]
    (10, 30)
    """
    import matplotlib.image as mimage

    images = [mimage.imread(io.BytesIO(p)) for p in pngs]
    if not images:
        raise ValueError("combine_pngs needs at least one PNG")
    images = [
        im if im.shape[2] == 4 else np.dstack([im, np.ones(im.shape[:2], im.dtype)])
        for im in images
    ]
    height = max(im.shape[0] for im in images)
    padded = []
    for im in images:
        pad = np.ones((height - im.shape[0],) + im.shape[1:], dtype=im.dtype)
        padded.append(np.concatenate([im, pad], axis=0))
    out = io.BytesIO()
    mimage.imsave(out, np.concatenate(padded, axis=1), format="png")
    return out.getvalue()


class StaticView:
    """Mixin: shown with a display id whose stored fallback follows the widget's state.

    A class using it has ``_repr_mimebundle_``, ``summary_html`` and
    ``_static_hosts`` (its :class:`~udfwidgets.widgets.figure.FigureHost`
    objects). ``display(obj)`` (or ``obj`` as a cell's last line) then
    publishes the bundle as ``display_data`` with a display id, and
    :func:`refresh_displays`, run after each cell in the kernel's main thread,
    replaces it when the figure or the summary changed since.

    Examples
    --------
    >>> class Thing(StaticView):
    ...     def _repr_mimebundle_(self, **kwargs):
    ...         return {"text/plain": "a thing"}
    ...     def summary_html(self):
    ...         return "<table></table>"
    ...     def _static_hosts(self):
    ...         return []
    >>> Thing()._static_key()
    ((), '<table></table>')
    """

    def _static_hosts(self) -> Sequence[Any]:  # pragma: no cover - every user overrides
        return []

    def _static_key(self) -> tuple:
        """What the stored picture depends on: figure versions and the summary table."""
        hosts = tuple(getattr(h, "version", 0) for h in self._static_hosts())
        return hosts, self.summary_html()  # type: ignore[attr-defined]

    def _live_in_browser(self) -> bool:
        """True when a browser shows this widget's ipympl canvas (it sent ``initialized``).

        Replacing the output there would make the page re-create the live view
        (and the browser already stores the latest picture in the widget state).
        """
        for host in self._static_hosts():
            canvas = getattr(getattr(host, "figure", None), "canvas", None)
            if getattr(host, "mode", None) == "ipympl" and not getattr(
                canvas, "syncing_data_url", True
            ):
                return True
        return False

    def _ipython_display_(self) -> None:
        from IPython.display import display

        key = self._static_key()
        bundle = self._repr_mimebundle_()  # type: ignore[attr-defined]
        if isinstance(bundle, tuple):
            bundle = bundle[0]
        handle = display(bundle, raw=True, display_id=True)
        if handle is not None:
            _displayed.append(_Shown(self, handle.display_id, key))
            _register_refresh()


class _Shown:
    """One displayed output: the widget (weakly), its display id, the state it shows."""

    __slots__ = ("ref", "display_id", "key")

    def __init__(self, obj: Any, display_id: str, key: tuple):
        self.ref = weakref.ref(obj)
        self.display_id = display_id
        self.key = key


_displayed: list[_Shown] = []
_refresh_registered = False


def refresh_displays() -> int:
    """Replace the stored output of every displayed widget whose state changed; how many.

    Runs after each cell execution (IPython's ``post_execute`` event, the
    kernel's main thread): a notebook saved after running holds the final
    pictures, e.g. a live plot's last image. Outputs whose ipympl canvas is
    live in a browser are not replaced (see :meth:`StaticView._live_in_browser`).
    Never raises: a failed refresh keeps the previous picture.

    Examples
    --------
    >>> refresh_displays()  # nothing displayed outside Jupyter
    0
    """
    from IPython.display import update_display

    done = 0
    alive = []
    for shown in list(_displayed):
        obj = shown.ref()
        if obj is None:
            continue
        alive.append(shown)
        try:
            if obj._live_in_browser():
                continue
            key = obj._static_key()
            if key == shown.key:
                continue
            bundle = obj._repr_mimebundle_()
            if isinstance(bundle, tuple):
                bundle = bundle[0]
            update_display(bundle, raw=True, display_id=shown.display_id)
            shown.key = key
            done += 1
        except Exception:  # noqa: BLE001 - a stored picture is never worth an error after a cell
            continue
    _displayed[:] = alive
    return done


def _register_refresh() -> None:
    global _refresh_registered
    if _refresh_registered:
        return
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return
    shell = get_ipython()
    if shell is None:
        return
    shell.events.register("post_execute", refresh_displays)
    _refresh_registered = True
