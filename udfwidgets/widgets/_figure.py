"""Where a live plot's matplotlib figure lives: an ipympl canvas, a PNG in an
ipywidgets Image, or a plain Agg figure (terminal, tests), chosen by environment.

Figures are made without pyplot, so they never enter pyplot's figure list
(no duplicate display by ``%matplotlib inline``, no leak) and the global
backend is left alone.
"""
from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=None)
def _locked_figure_class():
    from matplotlib.figure import Figure

    class LockedFigure(Figure):
        """A Figure that holds ``render_lock`` while it renders.

        ipympl renders in the kernel's main thread when the browser asks,
        while a run's thread may be updating the artists: the plot holds the
        same lock during its updates, so a picture is never drawn half-updated.
        ``before_draw`` lets the plot bring deferred work (the colour bar) up
        to date only when a picture is actually made.
        """

        render_lock = None
        before_draw = None  # a callable run (under the lock) before each render

        def draw(self, renderer):
            lock = self.render_lock
            if lock is None:
                return self._draw(renderer)
            with lock:
                return self._draw(renderer)

        def _draw(self, renderer):
            if self.before_draw is not None:
                self.before_draw()
            return super().draw(renderer)

    return LockedFigure


class FigureHost:
    """A matplotlib figure and the widget that shows it.

    Parameters
    ----------
    backend : {"auto", "ipympl", "image", "agg"}
        See :data:`BACKENDS`.
    figsize : tuple of float
        Figure size in inches.
    lock : threading.RLock, optional
        Held while the figure renders; hold it while changing artists.

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

    def __init__(self, backend: str = "auto", figsize: tuple[float, float] = (5.0, 4.0),
                 lock: Any = None):
        self.mode = resolve_backend(backend)
        self.figure = _locked_figure_class()(figsize=figsize, layout="constrained")
        self.figure.render_lock = lock
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
