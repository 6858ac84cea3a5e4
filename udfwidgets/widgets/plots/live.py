"""Live plots of UDF results: images and lines that grow while a run goes on.

``ctx.run_udf(..., plots=True)`` makes a :class:`MatplotlibLivePlot` for every
drawable buffer (see :func:`make_plots`); any object with a ``new_data``
method can subscribe instead (``plots=[my_plot]``), see :class:`LivePlot`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..axes import PointerReadout, apply_axes, axis_scales
from ..display import COLORMAPS, MISSING_COLOR, DisplayModel
from ..figure import FigureHost, resolve_backend
from ..static import StaticView
from .base import LivePlot
from .spec import declarations_of, parse_plot_spec

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colorbar import Colorbar
    from matplotlib.image import AxesImage
    from matplotlib.lines import Line2D

__all__ = [
    "LivePlot",
    "MatplotlibLivePlot",
    "LivePlotGrid",
    "make_plots",
    "COLORMAPS",
    "MISSING_COLOR",
]

#: Up to this many channels the channel control is a menu; beyond, one slider per axis.
MAX_CHANNEL_MENU = 256

_UNSET = object()


class MatplotlibLivePlot(LivePlot, StaticView):
    """A live matplotlib plot of one buffer: an image (2D) or a line (1D).

    In Jupyter with ipympl the figure is an interactive widget that updates in
    place while the run goes on (use ``sync=False`` to keep the cell free, so
    the browser can fetch new pictures). Under a kernel without ipympl, the
    figure is shown as a PNG in an ``ipywidgets.Image``. Elsewhere (terminal,
    tests) the figure is plain matplotlib (Agg): nothing is shown, and
    :meth:`save` writes it to a file.

    Above the figure: the display controls shared by every image of the
    package (:attr:`display_model`: linear / log / gamma scale, colour limits
    as percentiles of the computed pixels with a range slider, colour map;
    signal-side buffers start in log scale, navigation-side ones linear),
    compact home/zoom/pan buttons (ipympl's own toolbar is hidden: it covers
    the tick labels), a channel menu for buffers with ``extra_shape``
    (:attr:`channel_select`, or sliders :attr:`channel_sliders` for more than
    :data:`MAX_CHANNEL_MENU` channels; first channel by default). Below it a
    frames-done indicator (:attr:`frames_progress`, :attr:`frames_label`).
    Pixels not computed yet are masked (drawn light grey) and do not count
    for the colour limits. When the run's dataset has a calibration
    (``ds.calibration``), scan and detector images (and lines) get physical
    tick labels, axis labels with the unit and a scale bar, and
    :attr:`readout` shows the position under the pointer in pixels and in
    units (:mod:`udfwidgets.widgets.axes`); without one they show pixels.

    Parameters
    ----------
    name, udf_index, channel, channel_index, min_delta, title, roi, optional
        See :class:`LivePlot`.
    cmap : str
        Matplotlib colour map name (default ``"viridis"``).
    scale : {"linear", "log", "gamma"}, optional
        Start with this colour scale (images) or y axis (lines; gamma is
        linear there); default: log for signal-side buffers, else linear.
    log : bool, optional
        ``True`` is ``scale="log"``, ``False`` ``scale="linear"``.
    percentiles : (float, float)
        Colour limits as percentiles of the computed pixels (default 0.1-99.9).
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
    display_model : DisplayModel
        Scale, colour limits and colour map (traitlets; its controls are above the figure).
    widget : ipywidgets.VBox
        Controls, figure and indicator, as displayed by :meth:`display`.
    readout : ipywidgets.HTML
        ``(row r, column c) = (y ..., x ...): value`` under the pointer.

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

    def __init__(
        self,
        name: str,
        udf_index: int = 0,
        channel: Callable | None = None,
        *,
        channel_index: Sequence[int] | None = None,
        min_delta: float = 0.2,
        title: str | None = None,
        roi: Any = None,
        optional: bool = False,
        cmap: str = "viridis",
        scale: str | None = None,
        log: bool | None = None,
        percentiles: Sequence[float] = (0.1, 99.9),
        figsize: tuple[float, float] = (4.2, 3.4),
        backend: str = "auto",
    ):
        super().__init__(
            name,
            udf_index,
            channel,
            channel_index=channel_index,
            min_delta=min_delta,
            title=title,
            roi=roi,
            optional=optional,
        )
        import ipywidgets

        if log is not None:
            if scale is not None and scale != ("log" if log else "linear"):
                raise ValueError(f"log={log!r} contradicts scale={scale!r}; give one of them")
            scale = "log" if log else "linear"
        self._scale_given = scale is not None
        #: The :class:`LivePlotGrid` this plot is shown in, if any.
        self.grid: LivePlotGrid | None = None
        self.display_model = DisplayModel("nav", scale=scale, cmap=cmap, percentiles=percentiles)
        self._mode = resolve_backend(backend)
        self._figsize = figsize
        self._host: FigureHost | None = None  # made at once, or (agg) when first needed
        self._axes: Axes | None = None
        self._image: AxesImage | None = None
        self._line: Line2D | None = None
        self._colorbar: Colorbar | None = None
        self._drawn_title: str | None = None
        self._shown_axes: Any = _UNSET  # the calibrated axes drawn (udfwidgets.widgets.axes)
        #: Position and value under the pointer (pixels, and physical units when calibrated).
        self.readout = ipywidgets.HTML()
        self._readout: PointerReadout | None = None
        # agg: (array, valid_mask) not applied to the artists yet
        self._pending: tuple[np.ndarray, np.ndarray | None] | None = None
        self._colorbar_stale = False  # the colour bar follows the image when rendered
        if self._mode != "agg":
            self._make_host()

        self.channel_select = ipywidgets.Dropdown(
            options=[],
            description="channel",
            layout=ipywidgets.Layout(width="170px", display="none"),
            style={"description_width": "auto"},
        )
        total = self.frames_total
        self.frames_progress = ipywidgets.IntProgress(
            value=0, min=0, max=max(total or 1, 1), layout=ipywidgets.Layout(width="160px")
        )
        self.frames_label = ipywidgets.Label(
            value=f"0 / {total if total is not None else '?'} frames"
        )
        self.display_model.observe(
            self._on_style, names=["scale", "cmap", "percentiles", "gamma", "fixed_limits"]
        )
        self.channel_select.observe(self._on_channel, names="value")
        self._quiet = False  # True while the plot itself sets widget values

        self.channel_sliders = ipywidgets.HBox([], layout=ipywidgets.Layout(display="none"))
        self.controls = self.display_model.controls()
        tools: list[Any] = [self._host.toolbar()] if self._host is not None else []
        top = ipywidgets.HBox(
            [*tools, self.channel_select, self.channel_sliders, self.readout],
            layout=ipywidgets.Layout(flex_flow="row wrap"),
        )
        self.status = ipywidgets.HBox([self.frames_progress, self.frames_label])
        middle: list[Any] = [self._host.view] if self._host is not None else []
        self.widget = ipywidgets.VBox([self.controls, top, *middle, self.status])
        self.widget.add_class("udfw-live-plot")

    @property
    def log_scale(self) -> bool:
        """Whether the colour scale (images) or y axis (lines) is logarithmic."""
        return self.display_model.scale == "log"

    # --- figure and artists ------------------------------------------------------
    def _make_host(self) -> None:
        host = FigureHost(self._mode, self._figsize, lock=self._lock)
        self._host = host
        self._axes = host.figure.add_subplot()
        self._readout = PointerReadout(host.figure, self.readout)
        host.figure.before_draw = self._sync_colorbar
        host.style()
        self._draw_title()

    def _drawing(self) -> tuple[FigureHost, Axes]:
        """The host and axes to draw on; made in ``__init__``, or for agg by ``_flush``."""
        host, ax = self._host, self._axes
        assert host is not None and ax is not None, "the figure is made before drawing"
        return host, ax

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
        return self._drawing()[0]

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
        if self.grid is not None:
            self.grid.display()
            return
        from IPython.display import display

        display(self)

    def _repr_mimebundle_(self, **kwargs):
        """The widget, plus a PNG of the figure and an HTML summary for static viewers."""
        from ..static import mimebundle

        return mimebundle(
            self.widget,
            self.png,
            self.summary_html,
            self.title,
            hosts=[self._host] if self._host is not None else [],
        )

    def _static_hosts(self) -> list:
        return [self._host] if self._host is not None else []

    def png(self) -> bytes:
        """The figure as PNG bytes (what a static viewer shows)."""
        host = self.host
        with self._lock:
            return host.png()

    def summary_html(self) -> str:
        """A small HTML table: buffer, frames done, scale, colour limits."""
        from ..static import html_table

        limits = self.display_model.limits
        return html_table(
            self.title,
            [
                ("buffer", f"{self.name} of UDF {self.udf_index}"),
                (
                    "frames",
                    f"{self.frames_done} / {self.frames_total if self.frames_total else '?'}",
                ),
                ("display", self.display_model.describe()),
                ("colour limits", "–" if limits is None else f"{limits[0]:.4g} … {limits[1]:.4g}"),
            ],
        )

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
        from ..static import close_tree

        close_tree(self.widget)
        if self._host is not None and self._host.view is not None:
            self._host.view.close()

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
            if not self._scale_given and self.kind is not None and not self._kind_seen:
                self._kind_seen = True
                with self.display_model.hold_trait_notifications():
                    self._quiet = True
                    try:
                        self.display_model.scale = "log" if self.kind == "sig" else "linear"
                    finally:
                        self._quiet = False
            if self._mode == "agg":
                self._pending = (array, valid_mask)
                return
            self._apply(array, valid_mask)

    _kind_seen = False

    def _apply(self, array: np.ndarray, valid_mask: np.ndarray | None) -> None:
        array = np.asarray(array)
        if valid_mask is not None and valid_mask.shape != array.shape:
            valid_mask = None
        with self._lock:
            if array.ndim == 2:
                self._draw_image(array, valid_mask)
            else:
                self._draw_line(array, valid_mask)
            self._draw_title()
            self._drawing()[0].refresh()

    def _reset_axes(self) -> None:
        if self._image is None and self._line is None:
            return  # still empty
        if self._colorbar is not None:
            self._colorbar.remove()
            self._colorbar = None
        self._drawing()[1].clear()
        self._image = self._line = None
        self._drawn_title = None
        self._shown_axes = _UNSET

    def _draw_image(self, array, valid_mask) -> None:
        model = self.display_model
        host, ax = self._drawing()
        shown_before = None if self._image is None else self._image.get_array()
        if self._image is None or shown_before is None or shown_before.shape != array.shape:
            self._reset_axes()
            h, w = array.shape
            aspect: Literal["equal", "auto"] = "equal" if max(h, w) <= 8 * min(h, w) else "auto"
            shown, norm = model.prepare(array, valid_mask)
            image = ax.imshow(
                shown,
                cmap=model.colormap(),
                norm=norm,
                interpolation="nearest",
                aspect=aspect,
            )
            self._image = image
            self._colorbar = host.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
            # see _sync_colorbar; colorbar_cid is set by Colorbar, missing from matplotlib's stubs
            image.callbacks.disconnect(image.colorbar_cid)  # type: ignore[attr-defined]
            self._colorbar_stale = False
            self._show_axes(array.shape)
            host.style()
            return
        self._colorbar_stale = True
        model.show(self._image, array, valid_mask)
        self._show_axes(array.shape)

    def _show_axes(self, shape: tuple[int, ...]) -> None:
        """Calibrated axes (ticks, labels, scale bar, read-out) for the run's calibration."""
        kind = self.axes_kind
        scales = axis_scales(self.calibration, kind, shape) if kind is not None else None
        if scales == self._shown_axes:
            return
        self._shown_axes = scales
        self.display_model.axes = scales
        host, ax = self._drawing()
        apply_axes(ax, scales, shape)
        if self._readout is not None:
            image = self._image
            self._readout.watch(
                ax,
                scales,
                (lambda: image.get_array()) if image is not None else (lambda: self.data),
            )
        host.style()

    def _draw_line(self, array, valid_mask) -> None:
        from ..display import valid_pixels

        model = self.display_model
        log = model.scale == "log"
        if array.dtype.kind == "b":
            array = array.astype(np.uint8)
        keep = valid_pixels(array, valid_mask, "log" if log else "linear")
        masked = np.ma.masked_array(array, mask=~keep)
        limits = model.compute_limits(array, valid_mask) if model.fixed_limits else None
        if limits is None and keep.any():
            vals = np.asarray(array, dtype=np.float64)[keep]
            limits = (float(vals.min()), float(vals.max()))
            if limits[0] == limits[1]:
                limits = (
                    (limits[0] / 2, limits[1] * 2) if log else (limits[0] - 0.5, limits[1] + 0.5)
                )
        model.limits = limits
        n = masked.shape[0]
        host, ax = self._drawing()
        if self._line is None or len(np.asarray(self._line.get_ydata())) != n:
            self._reset_axes()
            (self._line,) = ax.plot(np.arange(n), masked, linewidth=1)
            ax.set_xlim(0, max(n - 1, 1))
            ax.set_xlabel("index")
            host.style()
        else:
            self._line.set_ydata(masked)
        self._show_axes((n,))
        scale = "log" if log else "linear"
        if ax.get_yscale() != scale:
            ax.set_yscale(scale)
        if limits is not None:
            lo, hi = limits
            if log:
                ax.set_ylim(lo / 1.2, hi * 1.2)
            else:
                pad = (hi - lo) * 0.05
                ax.set_ylim(lo - pad, hi + pad)

    def _draw_title(self) -> None:
        title = self.title
        if self.channel_shape:
            title += f" [{', '.join(map(str, self._current_channel()))}]"
        if self.missing:
            title += " (not in results)"
        if title != self._drawn_title and self._axes is not None:
            self._axes.set_title(title, fontsize="medium", loc="left")
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
        options = (
            [(", ".join(map(str, idx)), tuple(idx)) for idx in np.ndindex(*channel_shape)]
            if menu
            else []
        )
        self._quiet = True
        try:
            with self.channel_select.hold_sync():
                self.channel_select.options = options
                if options:
                    self.channel_select.value = self._current_channel()
                self.channel_select.layout.display = None if menu else "none"
            sliders = []
            if count > MAX_CHANNEL_MENU:
                for axis, (size, start) in enumerate(zip(channel_shape, self._current_channel())):
                    slider = ipywidgets.IntSlider(
                        value=start,
                        min=0,
                        max=size - 1,
                        description=f"channel {axis}",
                        continuous_update=False,
                    )
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
        if self.grid is not None:
            self.grid.plot_missing(self)
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


def make_plots(
    spec: Any,
    dataset: Any,
    udfs: Any,
    decls: Sequence[dict] | None = None,
    roi: Any = None,
    **plot_kwargs: Any,
) -> list[MatplotlibLivePlot]:
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
    from ...executor.plan import normalize_roi
    from ...udf.base import UDF

    udf_list = [udfs] if isinstance(udfs, UDF) else list(udfs)
    nav_shape, sig_shape = tuple(dataset.shape.nav), tuple(dataset.shape.sig)
    roi_flat = normalize_roi(roi, nav_shape)
    if decls is None:
        decls = [declarations_of(udf, dataset, roi_flat) for udf in udf_list]
    choices = parse_plot_spec(spec, udf_list, decls, nav_shape, sig_shape)
    plots = [
        MatplotlibLivePlot(
            c.name,
            c.udf_index,
            c.function,
            title=c.title,
            roi=roi_flat,
            optional=c.optional,
            **plot_kwargs,
        )
        for c in choices
    ]
    if len(plots) > 1:
        LivePlotGrid(plots)
    return plots


class LivePlotGrid(StaticView):
    """The live plots of one run in one widget: side by side, wrapping, one progress bar.

    :func:`make_plots` groups the plots it makes; the first plot's
    ``display()`` shows the grid (the Context calls ``display()`` on each
    plot), the others show nothing more. Each plot keeps its own title
    (``UDF: buffer``) and controls; the frames-done bar of the first plot is
    the run's bar, the others' are hidden (every plot of a run sees the same
    frames).

    Parameters
    ----------
    plots : list of MatplotlibLivePlot

    Attributes
    ----------
    widget : ipywidgets.VBox
        The grid (a wrapping row of the plots) above the run's progress bar.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sum import SumUDF
    >>> from udfwidgets.udf.sumsigudf import SumSigUDF
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("memory", data=np.ones((4, 4, 3, 3)))
    >>> plots = make_plots(True, ds, [SumUDF(), SumSigUDF()])
    >>> grid = plots[0].grid
    >>> grid is plots[1].grid, len(grid.row.children)
    (True, 2)
    >>> [p.status.layout.display for p in plots]
    [None, 'none']
    """

    def __init__(self, plots: Sequence[MatplotlibLivePlot]):
        import ipywidgets

        self.plots = list(plots)
        if not self.plots:
            raise ValueError("LivePlotGrid needs at least one plot")
        for i, plot in enumerate(self.plots):
            plot.grid = self
            if i:
                plot.status.layout.display = "none"
        self.row = ipywidgets.HBox(
            [p.widget for p in self.plots],
            layout=ipywidgets.Layout(flex_flow="row wrap", align_items="flex-start"),
        )
        first = self.plots[0]
        first.status.layout.display = None
        # the run's bar, below all plots (moved out of the first plot's panel)
        first.widget.children = tuple(c for c in first.widget.children if c is not first.status)
        self.widget = ipywidgets.VBox([self.row, first.status])
        self.widget.add_class("udfw-live-grid")
        self._shown = False

    def display(self) -> None:
        """Show the grid once (later calls, from the other plots, do nothing)."""
        if self._shown:
            return
        self._shown = True
        from IPython.display import display

        display(self)

    def plot_missing(self, plot: MatplotlibLivePlot) -> None:
        """A plot's buffer is not in the results: take it out of the grid."""
        self.row.children = tuple(c for c in self.row.children if c is not plot.widget)

    def _static_hosts(self) -> list:
        return [p._host for p in self.plots if p._host is not None]

    def png(self) -> bytes:
        """All plots of the grid side by side, as one PNG."""
        from ..static import combine_pngs

        return combine_pngs([p.png() for p in self.plots if not p.missing])

    def summary_html(self) -> str:
        return "".join(p.summary_html() for p in self.plots if not p.missing)

    def _repr_mimebundle_(self, **kwargs):
        from ..static import mimebundle

        return mimebundle(
            self.widget,
            self.png,
            self.summary_html,
            "live plots: " + ", ".join(p.title for p in self.plots),
            hosts=[p._host for p in self.plots if p._host is not None],
        )
