"""The one place a matplotlib figure of the package lives: :class:`FigureHost`.

An ipympl canvas under a Jupyter kernel (with ipympl installed), a PNG in an
``ipywidgets.Image`` under a kernel without ipympl, or a plain Agg figure
elsewhere (terminal, tests), chosen by environment. Figures are made without
pyplot, so they never enter pyplot's figure list (no duplicate display by
``%matplotlib inline``, no leak) and the global backend is left alone.

Every host hides ipympl's own toolbar and "Figure N" header: the toolbar
floats over the axes and covers the y tick labels. :meth:`FigureHost.toolbar`
gives a compact row of home/zoom/pan buttons to put *above* the figure
instead. In the ``"auto"`` theme figures follow the page's light or dark theme
(:mod:`udfwidgets.widgets.theme`: background and text colours of JupyterLab);
until the page reported it (or without anywidget) they have a transparent
background and neutral grey text, readable on both.
"""

from __future__ import annotations

import functools
import io
import itertools
import sys
import threading
from typing import Any

__all__ = [
    "FigureHost",
    "BACKENDS",
    "THEMES",
    "in_ipython_kernel",
    "resolve_backend",
    "apply_theme",
    "tidy",
]

#: "auto" chooses: ipympl under a kernel with ipympl installed, "image" under a
#: kernel without it, "agg" elsewhere (nothing is displayed; ``png`` works).
BACKENDS = ("auto", "ipympl", "image", "agg")

#: Figure themes: colours of background and text.
THEMES = {
    # transparent: the notebook's background shows; grey text reads on white and on black
    "auto": {"face": "none", "text": "#7f7f7f"},
    "light": {"face": "white", "text": "#222222"},
    "dark": {"face": "#111111", "text": "#dddddd"},
}

_numbers = itertools.count(1)
_timer_lock = threading.Lock()


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
        _ipympl()
    except ImportError:
        return False
    return True


def _ipympl():
    """``ipympl.backend_nbagg``, imported without making ipympl matplotlib's backend.

    Importing that module sets ``rcParams["backend"]`` to ipympl as a side
    effect: pyplot, and every later ``backend="auto"`` figure, would then use
    ipympl, even outside a kernel. The module docstring promises that the
    global backend is left alone, so the previous value is put back.

    Examples
    --------
    >>> import matplotlib
    >>> before = dict.__getitem__(matplotlib.rcParams, "backend")
    >>> _ipympl().__name__, dict.__getitem__(matplotlib.rcParams, "backend") is before
    ('ipympl.backend_nbagg', True)
    """
    import matplotlib

    before = dict.__getitem__(matplotlib.rcParams, "backend")
    try:
        import ipympl.backend_nbagg as nbagg
    finally:
        dict.__setitem__(matplotlib.rcParams, "backend", before)
    return nbagg


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
    if _pyplot_backend_is_ipympl():
        return "ipympl"
    if not in_ipython_kernel():
        return "agg"
    return "ipympl" if _has_ipympl() else "image"


def _pyplot_backend_is_ipympl() -> bool:
    """True under ``%matplotlib widget`` (or ``matplotlib.use("module://ipympl...")``)."""
    if "matplotlib" not in sys.modules:
        return False
    import matplotlib

    # private, not in matplotlib's stubs; public only from 3.10 (get_backend(auto_select=False))
    backend = str(matplotlib.rcParams._get_backend_or_none() or "").lower()  # type: ignore[attr-defined]
    return "ipympl" in backend or backend == "widget"


def apply_theme(figure, theme: str = "auto", colours: dict[str, str] | None = None) -> None:
    """Colour the figure's background, its axes' spines, ticks, labels and titles.

    ``colours``: ``{"face": ..., "text": ...}`` instead of those of ``theme``
    (the page's, for a figure following it).

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> fig = Figure(); ax = fig.add_subplot(); _ = ax.set_title("t")
    >>> apply_theme(fig, "dark")
    >>> ax.title.get_color(), fig.get_facecolor()[:3] != (1.0, 1.0, 1.0)
    ('#dddddd', True)
    """
    if theme not in THEMES:
        raise ValueError(f"theme={theme!r} is not one of {', '.join(map(repr, THEMES))}")
    colours = colours or THEMES[theme]
    figure.set_facecolor(colours["face"])
    text = colours["text"]
    for ax in figure.axes:
        ax.set_facecolor(colours["face"])
        for spine in ax.spines.values():
            spine.set_edgecolor(text)
        ax.tick_params(colors=text, which="both")
        ax.xaxis.label.set_color(text)
        ax.yaxis.label.set_color(text)
        ax.title.set_color(text)


@functools.cache
def _locked_figure_class():
    from matplotlib.figure import Figure

    class LockedFigure(Figure):
        """A Figure that holds ``render_lock`` while it renders.

        ipympl renders in the kernel's main thread when the browser asks,
        while a background thread may be updating the artists: the owner holds
        the same lock during its updates, so a picture is never drawn
        half-updated. ``before_draw`` brings deferred work (a colour bar) up
        to date only when a picture is actually made. The constrained layout
        is solved again only when something it depends on changed
        (:meth:`layout_key`: a zoom, new labels, a resize), not for new
        image data or colours.
        """

        render_lock = None
        before_draw = None  # a callable run (under the lock) before each render
        #: True while a render may reuse the last layout (see FigureHost.blit)
        keep_layout = False
        #: renders made so far (a cached blitting background is valid for one of them)
        renders = 0

        def draw(self, renderer):
            lock = self.render_lock
            if lock is None:
                return self._draw(renderer)
            with lock:
                return self._draw(renderer)

        #: what the last layout was solved for (see layout_key)
        _laid_out_for = None

        def layout_key(self) -> tuple:
            """What the constrained layout depends on: size, and per axes its limits,
            labels, titles and tick formatting (the tick labels' sizes). A render whose
            key equals the last layout's keeps that layout."""
            per_axes = tuple(
                (
                    id(ax),
                    ax.get_visible(),
                    ax.get_xlim(),
                    ax.get_ylim(),
                    ax.get_xlabel(),
                    ax.get_ylabel(),
                    tuple(ax.get_title(loc) for loc in ("left", "center", "right")),
                    tuple(
                        id(f)
                        for axis in (ax.xaxis, ax.yaxis)
                        for f in (axis.get_major_formatter(), axis.get_major_locator())
                    ),
                )
                for ax in self.axes
            )
            suptitle = getattr(self, "_suptitle", None)
            return (
                tuple(self.bbox.size),
                self.dpi,
                None if suptitle is None else suptitle.get_text(),
                per_axes,
            )

        def _draw(self, renderer):
            if self.before_draw is not None:
                self.before_draw()
            self.renders += 1
            engine = self.get_layout_engine()
            key = None if engine is None else self.layout_key()
            if engine is None or not (
                self.renders > 1 and (self.keep_layout or key == self._laid_out_for)
            ):
                self._laid_out_for = key
                return super().draw(renderer)
            # the constrained layout (about half of a render) is skipped: nothing it depends
            # on changed (or keep_layout), the axes keep the positions of the last render
            self.set_layout_engine("none")
            try:
                return super().draw(renderer)
            finally:
                self.set_layout_engine(engine)

    return LockedFigure


@functools.cache
def _locked_canvas_class():
    Canvas = _ipympl().Canvas

    class LockedCanvas(Canvas):
        """ipympl's canvas, rendering under the figure's ``render_lock``.

        A render clears the canvas' one Agg buffer, draws into it and reads
        it back (the picture sent to the browser). Two threads rendering at
        once (the browser's draw request in the main thread, a picture
        pushed or stored from a background thread) would read each other's
        half-cleared buffer: a blank figure in the page or in the saved
        notebook. Holding the lock for the whole render keeps them apart.
        """

        def draw(self):
            lock = getattr(self.figure, "render_lock", None)
            if lock is None:
                return super().draw()
            with lock:
                return super().draw()

        #: zlib level of the PNGs sent to the browser: 1 encodes several times faster than
        #: Pillow's default 6 (the explorer's live cursor sends two per pointer move)
        png_compress_level = 1

        def get_diff_image(self):
            """The picture to send (PNG): whole, or only the pixels changed since the last one.

            matplotlib's web canvas protocol ("full" or "diff" image mode, a
            diff only when every pixel is opaque), with a faster compression.
            """
            if not all(hasattr(self, a) for a in ("_png_is_old", "_force_full", "_last_buff")):
                return super().get_diff_image()  # another matplotlib: its own way
            if not self._png_is_old:
                return None
            import numpy as np
            from PIL import Image

            pixels = np.asarray(self.get_renderer().buffer_rgba())
            words = pixels.view(np.uint32)[..., 0]  # one 32-bit word per RGBA pixel
            full = (
                self._force_full
                or words.shape != self._last_buff.shape
                or bool((pixels[..., 3] != 255).any())  # transparent: no diff on top of it
            )
            self.set_image_mode("full" if full else "diff")
            out = words if full else np.where(words != self._last_buff, words, 0)
            self._last_buff = words.copy()
            self._force_full = self._png_is_old = False
            rgba = np.ascontiguousarray(out).view(np.uint8).reshape(*out.shape, 4)
            buf = io.BytesIO()
            Image.fromarray(rgba).save(buf, format="png", compress_level=self.png_compress_level)
            return buf.getvalue()

    return LockedCanvas


class FigureHost:
    """A matplotlib figure and the widget that shows it.

    Parameters
    ----------
    backend : {"auto", "ipympl", "image", "agg"}
        See :data:`BACKENDS`.
    figsize : tuple of float
        Figure size in inches (at 100 dpi: 4 inches are 400 CSS pixels; two
        explorer panels fit a notebook column next to JupyterLab's file browser).
    lock : threading.RLock, optional
        Held while the figure renders (drawing, reading the picture back, a
        PNG); hold it while changing artists. A new one when not given.
    theme : {"auto", "light", "dark"}
        See :data:`THEMES`; applied by :meth:`style`.

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
    >>> host.png()[:4]
    b'\\x89PNG'
    """

    def __init__(
        self,
        backend: str = "auto",
        figsize: tuple[float, float] = (4.0, 3.4),
        lock: Any = None,
        theme: str = "auto",
    ):
        if theme not in THEMES:
            raise ValueError(f"theme={theme!r} is not one of {', '.join(map(repr, THEMES))}")
        self.mode = resolve_backend(backend)
        self.theme = theme
        self.figure = _locked_figure_class()(figsize=figsize, dpi=100, layout="constrained")
        #: held for the whole of every render (see ``lock`` above)
        self.lock = threading.RLock() if lock is None else lock
        self.figure.render_lock = self.lock
        self.view: Any = None
        self._toolbar = None
        if self.mode == "ipympl":
            canvas = _locked_canvas_class()(self.figure)
            # sets canvas.manager; needed for messages
            _ipympl().FigureManager(canvas, next(_numbers))
            canvas.header_visible = False  # no "Figure 3" header
            canvas.footer_visible = False
            canvas.toolbar_visible = False  # it would float over the y tick labels
            canvas.resizable = False
            canvas.capture_scroll = False
            canvas.layout.max_width = "100%"
            self.view = canvas
        else:
            from matplotlib.backends.backend_agg import FigureCanvasAgg

            FigureCanvasAgg(self.figure)
            if self.mode == "image":
                import ipywidgets

                self.view = ipywidgets.Image(
                    format="png", layout=ipywidgets.Layout(max_width="100%")
                )
        self.figure.set_facecolor(self.colours()["face"])
        if theme == "auto":
            from .theme import follow

            follow(self)

    def colours(self) -> dict[str, str]:
        """Background and text colours: the theme's, or the page's for ``"auto"`` once known.

        Examples
        --------
        >>> FigureHost("agg", theme="dark").colours()
        {'face': '#111111', 'text': '#dddddd'}
        """
        if self.theme == "auto":
            from .theme import page_theme

            page = page_theme()
            if page:
                return {"face": page["face"], "text": page["text"]}
        return dict(THEMES[self.theme])

    def follow_page(self) -> None:
        """Restyle with the page's theme (it changed) and show the figure again.

        Examples
        --------
        >>> host = FigureHost("agg"); _ = host.figure.add_subplot()
        >>> host.follow_page(); host.version
        1
        """
        with self.lock:
            self.style()
        self.refresh()

    @property
    def canvas(self):
        return self.figure.canvas

    def style(self) -> None:
        """Apply the theme to the figure's current axes (call after adding axes)."""
        apply_theme(self.figure, self.theme, self.colours())

    def refresh(self, push: bool = False) -> None:
        """Ask for the figure to be shown again after its artists changed.

        ipympl: ``draw_idle`` (the browser asks for the picture; safe from a
        background thread), or with ``push=True`` render now, in this thread,
        and send the picture to the browser at once (one round trip less: the
        explorer's live cursor). ``"image"``: render a PNG into the Image
        widget. ``"agg"``: nothing; rendering happens in :meth:`png`.
        Each call counts in :attr:`version` (the stored static picture is
        replaced after a cell when it changed, see
        :func:`~udfwidgets.widgets.static.refresh_displays`).
        """
        self.version += 1
        if self.mode == "ipympl":
            canvas = self.figure.canvas
            if getattr(canvas, "syncing_data_url", False):
                canvas.draw_idle()
                self._snapshot_soon()  # no browser connected: keep the stored picture current
            elif push and getattr(canvas, "manager", None) is not None:
                with self.lock:
                    canvas.draw()
                    canvas.manager.refresh_all()
            else:
                canvas.draw_idle()
        elif self.mode == "image":
            self.view.value = self.png()

    #: How many times :meth:`refresh` was called: the figure changed.
    version = 0
    _background: Any = None  # (key, renders, saved region, version) for blit

    def blit(self, artists) -> bool:
        """Show changed ``artists`` by redrawing only them, and send the picture now.

        For a change that moves or recolours a few artists and nothing else
        (the explorer's live cursor: the marker on the navigation image, the
        frame in the pattern): the rest of the figure (axes, ticks, labels) is
        rendered once without ``artists`` and kept (matplotlib's blitting,
        ``copy_from_bbox`` / ``restore_region``); each call restores it, draws
        ``artists`` over it in z-order and sends the picture to the browser.
        The background is rendered again after any other render of the figure
        (a zoom, a new image, a resize), after a :meth:`refresh` (a change whose
        render the page has not asked for yet) and when other artists are
        blitted (the explorer's rubber band after a new image: it is drawn on
        the new one), reusing the last layout.

        Returns False, and does nothing, unless the figure is an ipympl canvas
        shown in a browser: call :meth:`refresh` then.

        Examples
        --------
        >>> host = FigureHost("agg")
        >>> (line,) = host.figure.add_subplot().plot([1, 2])
        >>> host.blit([line])  # only for an ipympl canvas in a browser
        False
        """
        canvas = self.figure.canvas
        if (
            self.mode != "ipympl"
            or getattr(canvas, "syncing_data_url", True)  # no browser connected
            or getattr(canvas, "manager", None) is None
        ):
            return False
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig = self.figure
        artists = sorted(artists, key=lambda a: a.get_zorder())
        with self.lock:
            key = (tuple(map(id, artists)), tuple(fig.bbox.size), fig.dpi)
            bg = self._background
            self.version += 1
            if (
                bg is None
                or bg[0] != key
                or bg[1] != fig.renders
                or bg[3] != self.version - 1  # a refresh since: the rest changed too
                or fig.renders == 0
            ):
                shown = [a.get_visible() for a in artists]
                for a in artists:
                    a.set_visible(False)
                fig.keep_layout = True
                try:
                    FigureCanvasAgg.draw(canvas)  # render only; the picture is sent below
                finally:
                    fig.keep_layout = False
                    for a, visible in zip(artists, shown, strict=True):
                        a.set_visible(visible)
                self._background = (key, fig.renders, canvas.copy_from_bbox(fig.bbox), 0)
            else:
                canvas.restore_region(bg[2])
            renderer = canvas.get_renderer()
            for a in artists:
                if a.get_visible():
                    a.draw(renderer)
            canvas.blit(fig.bbox)  # webagg: send the changed picture to the browser
            self._background = (*self._background[:3], self.version)
        return True

    #: Seconds a snapshot waits for more changes (rendering costs; a run keeps changing).
    snapshot_delay = 0.5
    _snapshot_timer: threading.Timer | None = None  # a pending snapshot

    def _snapshot_soon(self) -> None:
        with _timer_lock:
            if getattr(self, "_snapshot_timer", None) is not None:
                return  # one is pending; it will see this change too
            timer = threading.Timer(self.snapshot_delay, self._snapshot_now)
            timer.daemon = True
            self._snapshot_timer = timer
            _pending_snapshots[id(self)] = self
        _flush_after_each_cell()
        timer.start()

    def _snapshot_now(self) -> None:
        with _timer_lock:
            timer, self._snapshot_timer = getattr(self, "_snapshot_timer", None), None
            _pending_snapshots.pop(id(self), None)
        if timer is not None:
            timer.cancel()  # when called before the timer fired (_flush_snapshots)
        try:
            self.snapshot()
        except Exception:  # noqa: BLE001 - a picture for saved notebooks; never worth an error
            pass

    def snapshot(self, png: bytes | None = None) -> bytes | None:
        """Store the current picture in the ipympl canvas' widget state.

        A notebook saved with its widget state (nbconvert's
        ``store_widget_state``, JupyterLab's "save widget state") then shows
        the figure in nbviewer, on a docs site, and in JupyterLab before the
        kernel runs. ipympl fills this picture only once a browser has asked
        for one, so a notebook executed without a browser would store none.
        Returns the PNG (None outside ipympl).
        """
        if self.mode != "ipympl":
            return None
        import base64

        png = self.png() if png is None else png
        canvas = self.figure.canvas
        w, h = (
            self.figure.get_figwidth() * self.figure.dpi,
            self.figure.get_figheight() * self.figure.dpi,
        )
        with canvas.hold_sync():
            canvas._size = (w, h)
            canvas._data_url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        return png

    def png(self, dpi: float | None = None) -> bytes:
        """The figure as PNG bytes.

        Safe from any thread: the render holds :attr:`lock` from clearing
        the canvas' buffer to reading it back, so a picture made meanwhile
        elsewhere (the browser's, a stored snapshot) never blanks this one.
        """
        buf = io.BytesIO()
        with self.lock:
            self.figure.savefig(
                buf,
                format="png",
                dpi=dpi or self.figure.dpi,
                # transparent: on white, where the grey text reads too
                facecolor="white" if self.colours()["face"] == "none" else "auto",
            )
        return buf.getvalue()

    def navigation(self):
        """matplotlib's navigation (home/zoom/pan) for this canvas, made once."""
        if self._toolbar is None:
            toolbar = getattr(self.figure.canvas, "toolbar", None)
            if toolbar is None:
                from matplotlib.backend_bases import NavigationToolbar2

                toolbar = NavigationToolbar2(self.figure.canvas)
            self._toolbar = toolbar
        return self._toolbar

    def toolbar(self):
        """A compact row of home / zoom / pan buttons to show above the figure.

        The chosen tool is a pressed toggle button, filled blue in both themes
        (:data:`~udfwidgets.widgets.theme.TOGGLE_CSS`, in a hidden style sheet
        widget of the row);
        "home" restores the original view. The row sits in the layout above
        the figure, so it never covers the axes.

        Examples
        --------
        >>> host = FigureHost("agg")
        >>> _ = host.figure.add_subplot()
        >>> bar = host.toolbar()
        >>> [c.description for c in bar.children[:3]]
        ['home', 'zoom', 'pan']
        """
        import ipywidgets as w

        nav = self.navigation()
        home = w.Button(
            description="home",
            tooltip="reset the view (zoom and pan)",
            layout=w.Layout(width="auto"),
        )
        zoom = w.ToggleButton(
            description="zoom", tooltip="drag a rectangle to zoom in", layout=w.Layout(width="auto")
        )
        pan = w.ToggleButton(
            description="pan", tooltip="drag to move the view", layout=w.Layout(width="auto")
        )
        from .theme import mark_toggles, style_sheet

        for b in (zoom, pan):
            b.add_class("udfw-tool")
        mark_toggles(zoom, pan)  # the chosen one filled blue in both themes

        def on_home(_b):
            nav.home()
            self.refresh()

        def mode_of() -> str:
            mode = getattr(nav, "mode", None)
            return str(getattr(mode, "name", "")).lower()  # "zoom", "pan" or "none"

        def toggled(change, which):
            want = change["new"]
            other = pan if which == "zoom" else zoom
            active = mode_of() == which
            if want != active:
                getattr(nav, which)()
            if want and other.value:
                other.value = False

        home.on_click(on_home)
        zoom.observe(lambda c: toggled(c, "zoom"), "value")
        pan.observe(lambda c: toggled(c, "pan"), "value")
        children: list = [home, zoom, pan, style_sheet()]
        if self.mode != "agg" and self.theme == "auto":
            from .theme import probe

            page = probe()  # invisible: tells the kernel the page's theme (None without anywidget)
            if page is not None:
                children.append(page)
        row = w.HBox(children, layout=w.Layout(flex_flow="row"))
        row.add_class("udfw-figure-toolbar")
        return row


#: Hosts whose stored picture is out of date (a snapshot timer is pending), by id.
_pending_snapshots: dict[int, FigureHost] = {}
_flush_registered = False


def _flush_snapshots() -> int:
    """Store every pending picture now (see :meth:`FigureHost.snapshot`); how many.

    A change shown under ipympl without a browser (``nbconvert --execute``)
    is stored in the widget state half a second later, so that a run's many
    updates cost one picture. Inside IPython this runs after every cell too:
    the last cell's changes reach the saved notebook before the kernel stops.

    Examples
    --------
    >>> _ = _flush_snapshots()  # figures made moments ago may still be pending
    >>> _flush_snapshots()  # nothing is left
    0
    """
    with _timer_lock:
        hosts = list(_pending_snapshots.values())
    for host in hosts:
        host._snapshot_now()
    return len(hosts)


def _flush_after_each_cell() -> None:
    global _flush_registered
    if _flush_registered or not in_ipython_kernel():
        return
    from IPython import get_ipython

    get_ipython().events.register("post_execute", _flush_snapshots)
    _flush_registered = True


def tidy(figure, theme: str | None = None) -> None:
    """Tidy a plain (pyplot) figure for a notebook: no "Figure N" header, no floating toolbar.

    Under ipympl the header and footer are hidden and the toolbar, which would
    float over the y tick labels, is switched off (zoom and pan stay available
    through matplotlib's keyboard shortcuts); the layout is tightened.
    ``theme`` (see :data:`THEMES`) also recolours background and text.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> fig = Figure(); ax = fig.add_subplot(); _ = ax.plot([1, 2])
    >>> tidy(fig, theme="dark"); ax.title.get_color()
    '#dddddd'
    """
    canvas = getattr(figure, "canvas", None)
    for name, value in (
        ("header_visible", False),
        ("footer_visible", False),
        ("toolbar_visible", False),
    ):
        if canvas is not None and hasattr(canvas, name):
            setattr(canvas, name, value)
    if theme is not None:
        apply_theme(figure, theme)
    if figure.get_layout_engine() is None:
        figure.tight_layout()
