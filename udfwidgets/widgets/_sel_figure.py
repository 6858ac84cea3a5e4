"""Figures that work under ``%matplotlib widget`` (ipympl) and headless (Agg).

Under ipympl the figure is made with pyplot (inside ``plt.ioff()``, so it is
not displayed by itself) and its canvas is an ipywidget that our widgets lay
out. With any other backend a plain :class:`~matplotlib.figure.Figure` on an
Agg canvas is made, not registered with pyplot (no figure leaks in tests).
"""
from __future__ import annotations

import sys

import numpy as np

__all__ = ["make_figure", "canvas_widget", "close_figure", "overlay_rgba", "redraw",
           "finite_limits"]


def _is_ipympl() -> bool:
    import matplotlib

    backend = str(matplotlib.rcParams._get_backend_or_none() or "").lower()
    return "ipympl" in backend or backend == "widget"


def make_figure(figsize=(4.0, 4.0)):
    """A new figure: an ipympl figure under ``%matplotlib widget``, else an Agg one.

    Examples
    --------
    >>> fig = make_figure((3, 3))
    >>> fig.get_size_inches().tolist()
    [3.0, 3.0]
    """
    if _is_ipympl():
        import matplotlib.pyplot as plt

        with plt.ioff():
            fig = plt.figure(figsize=figsize)
        canvas = fig.canvas
        if hasattr(canvas, "header_visible"):
            canvas.header_visible = False  # "Figure 3": noise in a widget
        return fig
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def canvas_widget(fig):
    """The figure's canvas if it is an ipywidget (ipympl), else None."""
    import ipywidgets

    canvas = fig.canvas
    return canvas if isinstance(canvas, ipywidgets.DOMWidget) else None


def close_figure(fig) -> None:
    """Free a figure from :func:`make_figure` (under ipympl pyplot holds it); never raises,
    so it is safe in ``__del__`` while Python shuts down."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    try:
        plt.close(fig)
    except Exception:  # noqa: BLE001 - interpreter shutdown, figure already gone
        pass


def redraw(fig) -> None:
    """Ask for a redraw (ipympl sends the new image when the browser asks)."""
    fig.canvas.draw_idle()


def overlay_rgba(mask: np.ndarray, color=(1.0, 0.15, 0.1), alpha: float = 0.45) -> np.ndarray:
    """An RGBA image that tints the True pixels of ``mask`` and is transparent elsewhere.

    Examples
    --------
    >>> overlay_rgba(np.array([[True, False]]), alpha=0.5)[..., 3].tolist()
    [[0.5, 0.0]]
    """
    rgba = np.zeros(mask.shape + (4,), dtype=np.float32)
    rgba[..., :3] = color
    rgba[..., 3] = np.where(mask, np.float32(alpha), np.float32(0))
    return rgba


def finite_limits(values: np.ndarray, log: bool = False) -> tuple[float, float]:
    """Colour limits from the finite values (positive ones for a log scale); (0, 1) if none."""
    arr = np.asarray(values)
    if arr.dtype.kind == "c":
        arr = np.abs(arr)
    arr = arr.astype(np.float64, copy=False)
    keep = np.isfinite(arr)
    if log:
        keep &= arr > 0
    if not keep.any():
        return (1.0, 10.0) if log else (0.0, 1.0)
    vals = arr[keep]
    lo, hi = float(vals.min()), float(vals.max())
    if lo == hi:
        if log:
            return lo / 2, hi * 2
        return lo - 0.5, hi + 0.5
    return lo, hi
