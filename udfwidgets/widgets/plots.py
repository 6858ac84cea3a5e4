"""Live plots of UDF results: images and lines that grow while a run goes on.

``ctx.run_udf(..., plots=True)`` makes a :class:`MatplotlibLivePlot` for every
drawable buffer (see :func:`make_plots`); any object with a ``new_data``
method can subscribe instead (``plots=[my_plot]``), see :class:`LivePlot`.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ._figure import FigureHost, resolve_backend
from ._plotbase import LivePlot
from ._plotspec import declarations_of, parse_plot_spec

__all__ = ["LivePlot", "MatplotlibLivePlot", "make_plots", "COLORMAPS"]

#: Colour maps offered by the colour-map control (any other name can be given).
COLORMAPS = ("viridis", "magma", "inferno", "plasma", "cividis", "gray", "gray_r", "hot",
             "coolwarm", "RdBu_r", "twilight")

#: Up to this many channels the channel control is a menu; beyond, one slider per axis.
MAX_CHANNEL_MENU = 256

#: Colour of pixels not computed yet (and outside the roi).
MISSING_COLOR = "0.85"


def value_range(array: np.ndarray, bad: np.ndarray | None, log: bool) -> tuple[float, float] | None:
    """Colour limits from the good entries (``~bad``; positive ones only for ``log``).

    None when there is no good entry. Equal limits are widened, so that a
    constant image still has a valid norm.

    Examples
    --------
    >>> a = np.array([[0., 5.], [2., 100.]])
    >>> value_range(a, np.array([[False, False], [False, True]]), log=False)
    (0.0, 5.0)
    >>> value_range(a, None, log=True)
    (2.0, 100.0)
    """
    good = None if bad is None else ~bad
    if log:
        positive = array > 0
        good = positive if good is None else good & positive
    if good is not None and not good.any():
        return None
    kind = array.dtype.kind
    if kind == "f":
        top, bottom = np.inf, -np.inf
    elif kind in "iu":
        info = np.iinfo(array.dtype)
        top, bottom = info.max, info.min
    else:
        array = array.astype(np.float64)
        top, bottom = np.inf, -np.inf
    if good is None:
        lo, hi = float(array.min()), float(array.max())
    else:
        lo = float(np.min(array, where=good, initial=top))
        hi = float(np.max(array, where=good, initial=bottom))
    if lo == hi:
        if log:
            lo, hi = lo / 2, hi * 2
        else:
            pad = abs(lo) * 0.05 or 0.5
            lo, hi = lo - pad, hi + pad
    return lo, hi


def _drawable(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "b":
        return array.astype(np.uint8)
    if array.dtype == np.float16:
        return array.astype(np.float32)
    return array


class MatplotlibLivePlot(LivePlot):
    """A live matplotlib plot of one buffer: an image (2D) or a line (1D).

    In Jupyter with ipympl the figure is an interactive widget that updates in
    place while the run goes on (use ``sync=False`` to keep the cell free, so
    the browser can fetch new pictures). Under a kernel without ipympl, the
    figure is shown as a PNG in an ``ipywidgets.Image``. Elsewhere (terminal,
    tests) the figure is plain matplotlib (Agg): nothing is shown, and
    :meth:`save` writes it to a file.

    Next to the figure: a log-scale checkbox (:attr:`log_scale`), a colour-map
    menu (:attr:`colormap`), a channel menu for buffers with ``extra_shape``
    (:attr:`channel_select`, or sliders :attr:`channel_sliders` for more than
    :data:`MAX_CHANNEL_MENU` channels; first channel by default) and a frames-done
    indicator (:attr:`frames_progress`, :attr:`frames_label`). Pixels not
    computed yet are masked (drawn light grey); colour limits come from the
    computed pixels only.

    Parameters
    ----------
    name, udf_index, channel, channel_index, min_delta, title, roi, optional
        See :class:`LivePlot`.
    cmap : str
        Matplotlib colour map name (default ``"viridis"``).
    log : bool
        Start with a logarithmic colour scale (images) or y axis (lines).
    figsize : tuple of float
        Figure size in inches.
    backend : {"auto", "ipympl", "image", "agg"}
        Where the figure lives; ``"auto"`` chooses by environment.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
    axes : matplotlib.axes.Axes
    image : matplotlib.image.AxesImage or None
        The image artist, once 2D data arrived.
    line : matplotlib.lines.Line2D or None
        The line artist, once 1D data arrived.
    colorbar : matplotlib.colorbar.Colorbar or None
    widget : ipywidgets.VBox
        Controls, figure and indicator, as displayed by :meth:`display`.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sumsigudf import SumSigUDF
    >>> from udfwidgets.widgets import MatplotlibLivePlot
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("memory", data=np.ones((4, 6, 2, 2)), num_partitions=3)
    >>> plot = MatplotlibLivePlot("intensity", min_delta=0)
    >>> res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[plot])
    >>> plot.image.get_array().shape, plot.n_updates, plot.frames_label.value
    ((4, 6), 3, '24 / 24 frames')
    >>> plot.save("intensity.png")  # doctest: +SKIP
    """

    def __init__(self, name: str, udf_index: int = 0, channel: Callable | None = None, *,
                 channel_index: Sequence[int] | None = None, min_delta: float = 0.2,
                 title: str | None = None, roi: Any = None, optional: bool = False,
                 cmap: str = "viridis", log: bool = False,
                 figsize: tuple[float, float] = (5.0, 4.0), backend: str = "auto"):
        super().__init__(name, udf_index, channel, channel_index=channel_index,
                         min_delta=min_delta, title=title, roi=roi, optional=optional)
        import ipywidgets
        import matplotlib

        try:
            matplotlib.colormaps[cmap]
        except KeyError:
            raise ValueError(f"cmap={cmap!r} is not a matplotlib colour map; try one of "
                             f"{', '.join(COLORMAPS)}") from None
        self._mode = resolve_backend(backend)
        self._figsize = figsize
        self._host = None
        self._axes = self._image = self._line = self._colorbar = None
        self._drawn_title = None
        self._pending = None  # agg: (array, valid_mask) not applied to the artists yet
        self._colorbar_stale = False  # the colour bar follows the image when rendered
        if self._mode != "agg":
            self._make_host()

        options = list(COLORMAPS) + ([cmap] if cmap not in COLORMAPS else [])
        self.log_scale = ipywidgets.Checkbox(value=bool(log), description="log scale",
                                             indent=False, layout=ipywidgets.Layout(width="auto"))
        self.colormap = ipywidgets.Dropdown(options=options, value=cmap, description="colours",
                                            layout=ipywidgets.Layout(width="190px"))
        self.channel_select = ipywidgets.Dropdown(options=[], description="channel",
                                                  layout=ipywidgets.Layout(width="190px",
                                                                           display="none"))
        total = self.frames_total
        self.frames_progress = ipywidgets.IntProgress(value=0, min=0, max=max(total or 1, 1),
                                                      layout=ipywidgets.Layout(width="160px"))
        self.frames_label = ipywidgets.Label(
            value=f"0 / {total if total is not None else '?'} frames")
        self.log_scale.observe(self._on_style, names="value")
        self.colormap.observe(self._on_style, names="value")
        self.channel_select.observe(self._on_channel, names="value")
        self._quiet = False  # True while the plot itself sets widget values

        self.channel_sliders = ipywidgets.HBox([], layout=ipywidgets.Layout(display="none"))
        controls = ipywidgets.HBox([self.log_scale, self.colormap, self.channel_select,
                                    self.channel_sliders])
        status = ipywidgets.HBox([self.frames_progress, self.frames_label])
        middle = [self._host.view] if self._host is not None else []
        self.widget = ipywidgets.VBox([controls, *middle, status])

    # --- figure and artists ------------------------------------------------------
    def _make_host(self) -> None:
        self._host = FigureHost(self._mode, self._figsize, lock=self._lock)
        self._axes = self._host.figure.add_subplot()
        self._host.figure.before_draw = self._sync_colorbar
        self._draw_title()

    def _sync_colorbar(self) -> None:
        # Colorbar.update_normal redraws the whole bar (~10 ms); matplotlib calls
        # it on every clim change. We call it once per rendered picture instead.
        if self._colorbar_stale and self._colorbar is not None:
            self._colorbar.update_normal(self._image)
        self._colorbar_stale = False

    def _flush(self) -> None:
        """Make the figure (agg: on first use) and apply a pending update."""
        with self._lock:
            if self._host is None:
                self._make_host()
            if self._pending is not None:
                array, valid_mask = self._pending
                self._pending = None
                self._apply(array, valid_mask)

    @property
    def host(self) -> FigureHost:
        """The :class:`~udfwidgets.widgets._figure.FigureHost` (figure and its view)."""
        self._flush()
        return self._host

    @property
    def figure(self):
        """The matplotlib Figure."""
        return self.host.figure

    @property
    def axes(self):
        """The matplotlib Axes of the plot."""
        self._flush()
        return self._axes

    @property
    def image(self):
        """The ``AxesImage`` of 2D data, or None."""
        self._flush()
        return self._image

    @property
    def line(self):
        """The ``Line2D`` of 1D data, or None."""
        self._flush()
        return self._line

    @property
    def colorbar(self):
        """The colour bar of an image, or None."""
        self._flush()
        with self._lock:
            self._sync_colorbar()
        return self._colorbar

    # --- showing ----------------------------------------------------------------
    @property
    def backend(self) -> str:
        """The resolved backend: ``"ipympl"``, ``"image"`` or ``"agg"``."""
        return self._mode

    def display(self) -> None:
        """Show controls, figure and indicator in Jupyter; does nothing elsewhere.

        Examples
        --------
        >>> MatplotlibLivePlot("intensity", backend="agg").display()  # no output outside Jupyter
        """
        if self._mode == "agg":
            return
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def save(self, path: Any, **kwargs: Any) -> None:
        """Write the figure to ``path`` (format from the suffix: png, pdf, svg, ...).

        Keyword arguments go to :meth:`matplotlib.figure.Figure.savefig`.

        Examples
        --------
        >>> import os, tempfile
        >>> plot = MatplotlibLivePlot("intensity", backend="agg")
        >>> path = os.path.join(tempfile.mkdtemp(), "plot.png")
        >>> plot.save(path); open(path, "rb").read(4)
        b'\\x89PNG'
        """
        with self._lock:
            self.figure.savefig(path, **kwargs)

    def close(self) -> None:
        """Close the widgets (and the ipympl canvas) of this plot."""
        view = self._host.view if self._host is not None else None
        for w in (*self.channel_sliders.children, self.channel_sliders,
                  self.log_scale, self.colormap, self.channel_select, self.frames_progress,
                  self.frames_label, self.widget) + ((view,) if view is not None else ()):
            w.close()

    # --- drawing ----------------------------------------------------------------
    def update(self, array: np.ndarray, valid_mask: np.ndarray | None) -> None:
        """Draw ``array`` in place: ``set_data`` on the image, ``set_ydata`` on the line.

        Entries that are not finite or not in ``valid_mask`` are masked and do
        not count for the colour limits. With the ``"agg"`` backend (nothing
        on screen) the artists are updated when first looked at (``image``,
        ``figure``, :meth:`save`), so a run outside Jupyter pays nothing for
        pictures nobody sees.
        """
        with self._lock:
            self._show_frames()
            self.colormap.disabled = np.ndim(array) == 1  # one colour for a line
            if self._mode == "agg":
                self._pending = (array, valid_mask)
                return
            self._apply(array, valid_mask)

    def _apply(self, array: np.ndarray, valid_mask: np.ndarray | None) -> None:
        array = _drawable(np.asarray(array))
        bad = ~np.isfinite(array) if array.dtype.kind == "f" else None
        if valid_mask is not None and valid_mask.shape == array.shape:
            bad = ~valid_mask if bad is None else (bad | ~valid_mask)
        masked = np.ma.masked_array(array, mask=np.ma.nomask if bad is None else bad)
        log = bool(self.log_scale.value)
        limits = value_range(array, bad, log)
        with self._lock:
            if array.ndim == 2:
                self._draw_image(masked, limits, log)
            else:
                self._draw_line(masked, limits, log)
            self._draw_title()
            self._host.refresh()

    def _reset_axes(self) -> None:
        if self._image is None and self._line is None:
            return  # still empty
        if self._colorbar is not None:
            self._colorbar.remove()
            self._colorbar = None
        self._axes.clear()
        self._image = self._line = None
        self._drawn_title = None

    def _norm(self, limits, log: bool):
        from matplotlib.colors import LogNorm, Normalize

        lo, hi = limits if limits is not None else ((1.0, 10.0) if log else (0.0, 1.0))
        return LogNorm(lo, hi) if log else Normalize(lo, hi)

    def _cmap(self):
        import matplotlib

        return matplotlib.colormaps[self.colormap.value].with_extremes(bad=MISSING_COLOR)

    def _draw_image(self, masked, limits, log: bool) -> None:
        from matplotlib.colors import LogNorm

        if self._image is None or self._image.get_array().shape != masked.shape:
            self._reset_axes()
            h, w = masked.shape
            aspect = "equal" if max(h, w) <= 8 * min(h, w) else "auto"
            self._image = self._axes.imshow(masked, cmap=self._cmap(), norm=self._norm(limits, log),
                                          interpolation="nearest", aspect=aspect)
            self._colorbar = self._host.figure.colorbar(self._image, ax=self._axes)
            self._image.callbacks.disconnect(self._image.colorbar_cid)  # see _sync_colorbar
            self._colorbar_stale = False
            return
        self._colorbar_stale = True
        self._image.set_data(masked)
        if isinstance(self._image.norm, LogNorm) != log:
            self._image.set_norm(self._norm(limits, log))
        elif limits is not None:
            self._image.set_clim(*limits)
        if self._image.get_cmap().name != self.colormap.value:
            self._image.set_cmap(self._cmap())

    def _draw_line(self, masked, limits, log: bool) -> None:
        n = masked.shape[0]
        if self._line is None or len(self._line.get_ydata()) != n:
            self._reset_axes()
            (self._line,) = self._axes.plot(np.arange(n), masked, linewidth=1)
            self._axes.set_xlim(0, max(n - 1, 1))
            self._axes.set_xlabel("index")
        else:
            self._line.set_ydata(masked)
        scale = "log" if log else "linear"
        if self._axes.get_yscale() != scale:
            self._axes.set_yscale(scale)
        if limits is not None:
            lo, hi = limits
            if log:
                self._axes.set_ylim(lo / 1.2, hi * 1.2)
            else:
                pad = (hi - lo) * 0.05
                self._axes.set_ylim(lo - pad, hi + pad)

    def _draw_title(self) -> None:
        title = self.title
        if self.channel_shape:
            title += f" [{', '.join(map(str, self.channel_index))}]"
        if self.missing:
            title += " (not in results)"
        if title != self._drawn_title and self._axes is not None:
            self._axes.set_title(title, fontsize="medium")
            self._drawn_title = title

    def _show_frames(self) -> None:
        total = self.frames_total if self.frames_total is not None else 0
        with self.frames_progress.hold_sync():
            self.frames_progress.max = max(total, 1)
            self.frames_progress.value = min(self.frames_done, max(total, 1))
            self.frames_progress.bar_style = "success" if self.finished else ""
        self.frames_label.value = f"{self.frames_done} / {total} frames"

    # --- widget callbacks and hooks ----------------------------------------------
    def on_channels(self, channel_shape: tuple[int, ...]) -> None:
        """Set up the channel control for the channel axes ``channel_shape``.

        Up to :data:`MAX_CHANNEL_MENU` channels: a menu (:attr:`channel_select`)
        with one entry per index; more: one slider per axis
        (:attr:`channel_sliders`); none: both hidden.
        """
        import ipywidgets

        count = int(np.prod(channel_shape)) if channel_shape else 0
        menu = 0 < count <= MAX_CHANNEL_MENU
        options = ([(", ".join(map(str, idx)), tuple(idx)) for idx in np.ndindex(*channel_shape)]
                   if menu else [])
        self._quiet = True
        try:
            with self.channel_select.hold_sync():
                self.channel_select.options = options
                if options:
                    self.channel_select.value = tuple(self.channel_index)
                self.channel_select.layout.display = None if menu else "none"
            sliders = []
            if count > MAX_CHANNEL_MENU:
                for axis, (size, start) in enumerate(zip(channel_shape, self.channel_index)):
                    slider = ipywidgets.IntSlider(value=start, min=0, max=size - 1,
                                                  description=f"channel {axis}",
                                                  continuous_update=False)
                    slider.observe(self._on_slider, names="value")
                    sliders.append(slider)
            for old in self.channel_sliders.children:
                old.close()
            self.channel_sliders.children = sliders
            self.channel_sliders.layout.display = None if sliders else "none"
        finally:
            self._quiet = False

    def on_missing(self) -> None:
        """Hide a ``plots=True`` plot whose buffer ``get_results`` did not return."""
        self.widget.layout.display = "none"
        with self._lock:
            self._draw_title()

    def _on_style(self, change) -> None:
        if not self._quiet:
            self.redraw()

    def _on_slider(self, change) -> None:
        if self._quiet:
            return
        self.channel_index = tuple(int(sl.value) for sl in self.channel_sliders.children)
        self.redraw()

    def _on_channel(self, change) -> None:
        if self._quiet or change["new"] is None:
            return
        self.channel_index = tuple(change["new"])
        self.redraw()


def make_plots(spec: Any, dataset: Any, udfs: Any, decls: Sequence[dict] | None = None,
               roi: Any = None, **plot_kwargs: Any) -> list[MatplotlibLivePlot]:
    """Make the live plots that ``plots=`` asks for.

    Parameters
    ----------
    spec : True or list
        ``True``: a plot for every drawable buffer of every UDF (nav buffers of
        1D/2D-nav datasets, sig buffers of 1D/2D-sig datasets; 2D as images,
        1D as lines; ``extra_shape`` through a channel menu; buffers of
        non-numeric dtype or with more than two axes are skipped).
        A list with one entry per UDF: a list of buffer names or
        ``(name, function)`` pairs (the function is applied to the data before
        drawing, e.g. ``np.log1p``), ``True`` (all of that UDF) or ``None``.
        For a run of one UDF, a flat list of names and pairs also works.
    dataset : DataSet
        The dataset the UDFs run on.
    udfs : UDF or list of UDF
        The UDFs of the run, in order.
    decls : list of dict, optional
        Validated buffer declarations per UDF (the Context passes them);
        computed from the UDFs when not given.
    roi : array of bool, optional
        The run's roi.
    **plot_kwargs
        Passed to every :class:`MatplotlibLivePlot` (``min_delta``, ``cmap``,
        ``log``, ``figsize``, ``backend``).

    Returns
    -------
    list of MatplotlibLivePlot

    Raises
    ------
    ValueError
        For an unknown or private buffer name (the message lists the
        available ones), a buffer that cannot be drawn without a function, or
        a list whose length does not match the number of UDFs.

    Examples
    --------
    Make the plots yourself to keep them (and save them after the run):

    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sum import SumUDF
    >>> from udfwidgets.udf.sumsigudf import SumSigUDF
    >>> from udfwidgets.widgets import make_plots
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("memory", data=np.ones((4, 4, 3, 3)), num_partitions=2)
    >>> udfs = [SumUDF(), SumSigUDF()]
    >>> plots = make_plots([["intensity"], [("intensity", np.log1p)]], ds, udfs)
    >>> [p.title for p in plots]
    ['SumUDF: intensity', 'SumSigUDF: intensity (log1p)']
    >>> _ = ctx.run_udf(dataset=ds, udf=udfs, plots=plots)
    >>> float(plots[1].image.get_array().max()) == float(np.log1p(9))
    True
    """
    from ..executor.plan import normalize_roi
    from ..udf.base import UDF

    udf_list = [udfs] if isinstance(udfs, UDF) else list(udfs)
    nav_shape, sig_shape = tuple(dataset.shape.nav), tuple(dataset.shape.sig)
    roi_flat = normalize_roi(roi, nav_shape)
    if decls is None:
        decls = [declarations_of(udf, dataset, roi_flat) for udf in udf_list]
    choices = parse_plot_spec(spec, udf_list, decls, nav_shape, sig_shape)
    return [MatplotlibLivePlot(c.name, c.udf_index, c.function, title=c.title, roi=roi_flat,
                               optional=c.optional, **plot_kwargs)
            for c in choices]
