"""Static fallbacks of the widgets: what GitHub, nbviewer or a docs site show.

A live widget needs a kernel. Every widget of the package adds to its
``_repr_mimebundle_`` a PNG of its figure(s) (``image/png``), an HTML view
(``text/html``: the same picture and a small table of what is shown), and a
one-line ``text/plain`` instead of ``VBox(children=...)``. Jupyter shows the
live widget; a static renderer picks the richest entry it understands.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["mimebundle", "html_table", "close_tree", "combine_pngs", "png_html"]

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
