"""Where a live plot's matplotlib figure lives: an ipympl canvas, a PNG in an
ipywidgets Image, or a plain Agg figure (terminal, tests), chosen by environment.

Figures are made without pyplot, so they never enter pyplot's figure list
(no duplicate display by ``%matplotlib inline``, no leak) and the global
backend is left alone.
"""
from __future__ import annotations

import io
import itertools
import sys
from typing import Any

__all__ = ["FigureHost", "BACKENDS", "in_ipython_kernel", "resolve_backend"]

#: "auto" chooses: ipympl under a kernel with ipympl installed, "image" under a
#: kernel without it, "agg" elsewhere (nothing is displayed; ``save`` works).
BACKENDS = ("auto", "ipympl", "image", "agg")

_numbers = itertools.count(1)


def in_ipython_kernel() -> bool:
    """True when running inside a Jupyter (IPython) kernel, not a terminal.

    Examples
    --------
    >>> in_ipython_kernel()
    False
    """
    if "IPython" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _has_ipympl() -> bool:
    try:
        import ipympl.backend_nbagg  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str = "auto") -> str:
    """Turn ``backend`` into one of ``"ipympl"``, ``"image"`` or ``"agg"``.

    Examples
    --------
    >>> resolve_backend("agg"), resolve_backend("auto")  # outside Jupyter
    ('agg', 'agg')
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {', '.join(map(repr, BACKENDS))}")
    if backend != "auto":
        if backend == "ipympl" and not _has_ipympl():
            raise ValueError("backend='ipympl' needs the ipympl package: pip install ipympl")
        return backend
    if not in_ipython_kernel():
        return "agg"
    return "ipympl" if _has_ipympl() else "image"


class FigureHost:
    """A matplotlib figure and the widget that shows it.

    Parameters
    ----------
    backend : {"auto", "ipympl", "image", "agg"}
        See :data:`BACKENDS`.
    figsize : tuple of float
        Figure size in inches.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
    view : ipywidgets.Widget or None
        The ipympl canvas, an ``ipywidgets.Image``, or None for ``"agg"``.
    mode : str
        The resolved backend.

    Examples
    --------
    >>> host = FigureHost("agg", figsize=(3, 2))
    >>> host.mode, host.view is None
    ('agg', True)
    """

    def __init__(self, backend: str = "auto", figsize: tuple[float, float] = (5.0, 4.0)):
        from matplotlib.figure import Figure

        self.mode = resolve_backend(backend)
        self.figure = Figure(figsize=figsize, layout="constrained")
        self.view: Any = None
        if self.mode == "ipympl":
            from ipympl.backend_nbagg import Canvas, FigureManager

            canvas = Canvas(self.figure)
            FigureManager(canvas, next(_numbers))  # sets canvas.manager; needed for messages
            canvas.header_visible = False
            canvas.toolbar_position = "left"
            self.view = canvas
        else:
            import ipywidgets
            from matplotlib.backends.backend_agg import FigureCanvasAgg

            FigureCanvasAgg(self.figure)
            if self.mode == "image":
                self.view = ipywidgets.Image(format="png")

    def refresh(self) -> None:
        """Ask for the figure to be shown again after its artists changed.

        ipympl: ``draw_idle`` (the browser asks for the picture; safe from a
        background thread). ``"image"``: render a PNG into the Image widget.
        ``"agg"``: nothing; rendering happens in :meth:`save`.
        """
        if self.mode == "ipympl":
            self.figure.canvas.draw_idle()
        elif self.mode == "image":
            self.view.value = self.png()

    def png(self) -> bytes:
        """The figure as PNG bytes."""
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png")
        return buf.getvalue()
