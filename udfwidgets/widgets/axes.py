"""Calibrated axes of every image: physical tick labels, axis labels, a scale bar, read-outs.

One helper for all widget families (live plots, selectors, the explorer, the
inspector). The images keep their pixel data coordinates (``event.xdata`` is
a column, ``event.ydata`` a row, so drawing, clicking and the live cursor work
the same with and without a calibration); only what is *shown* changes:

- tick labels in physical units, placed at round physical values
  (1-2-2.5-5 steps), and axis labels with the unit (``"scan x (nm)"``);
- a scale bar: a round length (1-2-5 steps, about a fifth of the view's
  width) in the lower left corner, a white bar and label on a translucent
  dark box, readable on light and dark colour maps; it follows zoom;
- cursor read-outs with both the pixel and the physical position, always
  (row, column) first: ``"(row 12, column 30) = (y 0.6 nm, x 1.5 nm)"``.

The calibrated axes are :class:`~udfwidgets.widgets.display.AxisScale`
objects (made from a :class:`~udfwidgets.calibration.Calibration` by
:func:`axis_scales`), kept on each image's
:class:`~udfwidgets.widgets.display.DisplayModel` (``display_model.axes``).
Without a calibration (or with one in pixels) nothing is changed: the axes
show pixel indices as before.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .display import AxisScale

__all__ = [
    "axis_scales",
    "calibration_of",
    "nice_length",
    "scale_bar_length",
    "format_length",
    "readout_text",
    "apply_axes",
    "scale_bar_of",
    "PointerReadout",
    "SCALE_BAR_FRACTION",
    "TICK_BINS",
]

#: The scale bar is the longest round length that fits in this fraction of the view's width.
SCALE_BAR_FRACTION = 0.25

#: At most this many intervals between calibrated ticks.
TICK_BINS = 6

#: How units are written on screen.
_PRETTY = {"um": "µm", "A": "Å", "urad": "µrad", "1/A": "1/Å", "1/um": "1/µm"}

_SCALE_BAR_GID = "udfw-scale-bar"
_STATE = "_udfw_calibrated_axes"


def _pretty(unit: str) -> str:
    return _PRETTY.get(unit, unit)


def _short(scale: AxisScale) -> str:
    """The short name of an axis for read-outs: ``scan_x`` -> ``x``."""
    return scale.name.rsplit("_", 1)[-1] if scale.name else ""


def calibration_of(obj: Any) -> Any:
    """The :class:`~udfwidgets.calibration.Calibration` an object carries, or None.

    A ``Calibration`` itself, a dataset (``ds.calibration``), or a result
    buffer (``BufferWrapper.context["calibration"]``, set by every run).
    Plain arrays have none.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context, Calibration
    >>> from udfwidgets.udf.sumsigudf import SumSigUDF
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("memory", data=np.ones((2, 3, 4, 4)))
    >>> ds.calibration = Calibration(scan_step=0.5, scan_unit="nm")
    >>> res = ctx.run_udf(dataset=ds, udf=SumSigUDF())
    >>> calibration_of(res["intensity"]).scan_unit, calibration_of(np.zeros(2))
    ('nm', None)
    """
    from ..calibration import Calibration

    if obj is None or isinstance(obj, Calibration):
        return obj
    context = getattr(obj, "context", None)
    if isinstance(context, dict):
        cal = context.get("calibration")
        return cal if isinstance(cal, Calibration) else None
    if hasattr(obj, "shape") and hasattr(type(obj), "calibration"):  # a DataSet
        try:
            cal = obj.calibration
        except Exception:  # noqa: BLE001 - a dataset class without a usable calibration
            return None
        return cal if isinstance(cal, Calibration) else None
    return None


def axis_scales(calibration: Any, kind: str, shape: Sequence[int]) -> tuple[AxisScale, ...] | None:
    """The calibrated axes of an image (or line) of ``shape`` on the ``kind`` side.

    ``kind`` is ``"nav"`` (scan) or ``"sig"`` (detector); anything else, a
    missing calibration or one in pixels for that side gives None (pixel
    axes). Only 1D and 2D shapes get axes.

    Examples
    --------
    >>> from udfwidgets import Calibration
    >>> cal = Calibration(scan_step=0.5, scan_unit="nm", sig_step=0.2, sig_unit="mrad",
    ...                   beam_centre=(2, 2))
    >>> [(a.name, a.step, a.unit) for a in axis_scales(cal, "nav", (3, 4))]
    [('scan_y', 0.5, 'nm'), ('scan_x', 0.5, 'nm')]
    >>> axis_scales(cal, "sig", (5, 5))[1].offset
    -0.4
    >>> axis_scales(Calibration(), "nav", (3, 4)) is None
    True
    """
    cal = calibration_of(calibration)
    if cal is None or kind not in ("nav", "sig") or not cal.is_calibrated(kind):
        return None
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (1, 2):
        return None
    try:
        axes = cal.axes(kind, shape)
    except ValueError:  # e.g. two scan steps for a 1D line
        return None
    return tuple(AxisScale(offset=a.offset, step=a.scale, unit=a.unit, name=a.name) for a in axes)


def nice_length(limit: float) -> float:
    """The longest 1-2-5 length (1, 2, 5, 10, 20, ...) that is not longer than ``limit``.

    Examples
    --------
    >>> nice_length(7.3), nice_length(0.042), nice_length(20)
    (5.0, 0.02, 20.0)
    """
    limit = float(limit)
    if not math.isfinite(limit) or limit <= 0:
        raise ValueError(f"limit must be a positive finite length, got {limit!r}")
    power = 10.0 ** math.floor(math.log10(limit))
    for m in (5.0, 2.0, 1.0):
        if m * power <= limit * (1 + 1e-9):
            return float(f"{m * power:.12g}")
    return float(f"{power:.12g}")  # pragma: no cover - m=1 always fits


def scale_bar_length(
    scale: AxisScale, view_pixels: float, fraction: float = SCALE_BAR_FRACTION
) -> tuple[float, float]:
    """``(length, pixels)`` of the scale bar for a view ``view_pixels`` wide.

    ``length`` is in ``scale.unit``: the longest round length
    (:func:`nice_length`) within ``fraction`` of the view; ``pixels`` is how
    many pixels that is (the bar's width in data coordinates).

    Examples
    --------
    >>> scale_bar_length(AxisScale(step=0.5, unit="nm"), 64)   # 32 nm wide view
    (5.0, 10.0)
    """
    step = abs(float(scale.step))
    length = nice_length(abs(float(view_pixels)) * step * fraction)
    return length, length / step


def format_length(value: float, unit: str) -> str:
    """A length with its unit, as the scale bar and read-outs write it.

    Examples
    --------
    >>> format_length(5.0, "nm"), format_length(0.25, "um"), format_length(2e-05, "rad")
    ('5 nm', '0.25 µm', '2e-05 rad')
    """
    return f"{float(value):.4g} {_pretty(unit)}"


def readout_text(position: Sequence[float], axes: Sequence[AxisScale] | None = None) -> str:
    """A position in words: pixel indices, and physical coordinates when calibrated.

    ``position`` is ``(row, column)`` for an image or ``(index,)`` for a line,
    in pixels (fractional positions are rounded to the pixel they fall in).

    Examples
    --------
    >>> readout_text((12, 30))
    '(row 12, column 30)'
    >>> ys = AxisScale(step=0.05, unit="nm", name="scan_y")
    >>> xs = AxisScale(step=0.05, unit="nm", name="scan_x")
    >>> readout_text((12, 30), (ys, xs))
    '(row 12, column 30) = (y 0.6 nm, x 1.5 nm)'
    >>> readout_text((3,), (AxisScale(step=0.5, unit="mrad", name="det_x"),))
    '(index 3) = (x 1.5 mrad)'
    """
    idx = [int(np.floor(float(p) + 0.5)) for p in position]
    if len(idx) == 2:
        words = f"(row {idx[0]}, column {idx[1]})"
    else:
        words = "(" + ", ".join(f"index {i}" for i in idx) + ")"
    if not axes or len(axes) != len(idx):
        return words
    parts = []
    for i, a in zip(idx, axes):
        name = _short(a)
        value = a.offset + a.step * i
        value = 0.0 if abs(value) < abs(a.step) * 1e-9 else value
        parts.append(f"{name} {format_length(value, a.unit)}".strip())
    return f"{words} = ({', '.join(parts)})"


@functools.cache
def _ticker_classes():
    from matplotlib import rcParams
    from matplotlib.ticker import Formatter, Locator, MaxNLocator

    class PhysicalLocator(Locator):
        """Ticks at round physical values, returned as pixel positions."""

        def __init__(self, scale: AxisScale):
            self.scale = scale
            # a fixed number of bins: with "auto" the ticks (and the width of their labels)
            # change when constrained layout resizes the axes, and a label could be cut off
            self._inner = MaxNLocator(nbins=TICK_BINS, steps=[1, 2, 2.5, 5, 10])
            self._cache: tuple | None = None

        def __call__(self):
            vmin, vmax = self.axis.get_view_interval()
            key = (float(vmin), float(vmax))  # one render asks about 25 times
            if self._cache is None or self._cache[0] != key:
                self._cache = (key, self.tick_values(vmin, vmax))
            return self._cache[1]

        def tick_values(self, vmin, vmax):
            s = self.scale
            lo, hi = sorted((s.offset + s.step * vmin, s.offset + s.step * vmax))
            phys = np.asarray(self._inner.tick_values(lo, hi), dtype=np.float64)
            phys = phys[(phys >= lo - 1e-9 * abs(hi - lo)) & (phys <= hi + 1e-9 * abs(hi - lo))]
            return (phys - s.offset) / s.step

    class PhysicalFormatter(Formatter):
        """Tick labels: the physical value of a pixel position, as many decimals as needed."""

        def __init__(self, scale: AxisScale):
            self.scale = scale
            self.decimals = 3

        def set_locs(self, locs):
            super().set_locs(locs)
            key = tuple(np.asarray(locs, dtype=np.float64).tolist())
            if key != getattr(self, "_key", None):
                self._key = key
                phys = self.scale.offset + self.scale.step * np.asarray(key, dtype=np.float64)
                self.decimals = _decimals(phys)

        def __call__(self, x, pos=None):
            value = self.scale.offset + self.scale.step * float(x)
            text = f"{value:.{self.decimals}f}"
            if float(text) == 0:
                text = f"{0.0:.{self.decimals}f}"
            return text.replace("-", "\N{MINUS SIGN}") if rcParams["axes.unicode_minus"] else text

    return PhysicalLocator, PhysicalFormatter


def _decimals(values: np.ndarray) -> int:
    """The fewest decimals (0-8) that write every value of ``values`` exactly enough."""
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return 3
    spacing = float(np.min(np.abs(np.diff(np.sort(values))))) or 1.0
    for d in range(9):
        if np.all(np.abs(np.round(values, d) - values) <= spacing * 1e-6):
            return d
    return 8


def _label(scale: AxisScale) -> str:
    name = scale.name.replace("_", " ").replace("det ", "detector ")
    return f"{name} ({_pretty(scale.unit)})" if name else _pretty(scale.unit)


def scale_bar_of(ax: Any) -> Any:
    """The scale bar drawn by :func:`apply_axes` in ``ax``, or None.

    The artist has ``length`` (in ``unit``), ``unit`` and ``pixels`` (its
    width in data coordinates, which are pixels) attributes.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> ax = Figure().add_subplot(); _ = ax.imshow(np.zeros((4, 64)))
    >>> apply_axes(ax, (AxisScale(step=0.5, unit="nm", name="scan_y"),
    ...                 AxisScale(step=0.5, unit="nm", name="scan_x")), (4, 64))
    >>> bar = scale_bar_of(ax); bar.length, bar.unit, bar.pixels
    (5.0, 'nm', 10.0)
    """
    for artist in ax.artists:
        if artist.get_gid() == _SCALE_BAR_GID:
            return artist
    return None


def _remove_scale_bar(ax: Any) -> None:
    bar = scale_bar_of(ax)
    if bar is not None:
        bar.remove()


def _draw_scale_bar(ax: Any, scale: AxisScale) -> None:
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar  # type: ignore[import-untyped]

    x0, x1 = ax.get_xlim()
    if not (math.isfinite(x0) and math.isfinite(x1)) or x0 == x1:
        _remove_scale_bar(ax)
        return
    length, pixels = scale_bar_length(scale, abs(x1 - x0))
    old = scale_bar_of(ax)
    if old is not None and (old.length, old.unit, old.pixels) == (length, scale.unit, pixels):
        return  # panning, or a zoom that keeps the length: the bar stays
    _remove_scale_bar(ax)
    bar = AnchoredSizeBar(
        ax.transData,
        pixels,
        format_length(length, scale.unit),
        "lower left",
        pad=0.3,
        borderpad=0.4,
        sep=3,
        color="white",
        frameon=True,
        size_vertical=0,
        fontproperties={"size": "small"},
    )
    bar.size_bar.get_children()[0].set_linewidth(3)  # a line, whatever the zoom
    bar.patch.set_facecolor("black")
    bar.patch.set_alpha(0.6)
    bar.patch.set_edgecolor("none")
    bar.set_gid(_SCALE_BAR_GID)
    bar.length, bar.unit, bar.pixels = length, scale.unit, pixels
    bar.set_mouseover(False)
    ax.add_artist(bar)


def apply_axes(
    ax: Any,
    axes: Sequence[AxisScale] | None,
    shape: Sequence[int] | None = None,
    *,
    scale_bar: bool = True,
) -> None:
    """Show calibrated ``axes`` on a matplotlib ``ax`` that draws in pixel coordinates.

    ``axes``: ``(rows, columns)`` for an image, ``(x,)`` for a line, or None.
    Sets tick positions and labels in physical units, axis labels with the
    unit, the pointer read-out (``ax.format_coord``, see :func:`readout_text`)
    and, for images, a scale bar (:func:`scale_bar_of`) that is redrawn when
    the view is zoomed. ``axes=None`` undoes what an earlier call did and
    otherwise leaves ``ax`` as it is (pixel indices). Call it again after
    ``ax.clear()``.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> fig = Figure(); ax = fig.add_subplot(); _ = ax.imshow(np.zeros((8, 10)))
    >>> ys, xs = AxisScale(step=2.0, unit="nm", name="scan_y"), AxisScale(step=2.0, unit="nm",
    ...                                                                    name="scan_x")
    >>> apply_axes(ax, (ys, xs), (8, 10))
    >>> ax.get_xlabel(), ax.format_coord(3.2, 1.9)
    ('scan x (nm)', '(row 2, column 3) = (y 4 nm, x 6 nm)')
    >>> fig.canvas.draw()  # doctest: +SKIP
    >>> apply_axes(ax, None); ax.get_xlabel(), scale_bar_of(ax) is None
    ('', True)
    """
    from matplotlib.ticker import AutoLocator, ScalarFormatter

    state = ax.__dict__.get(_STATE)
    if state is not None and ax.xaxis.get_major_locator() is not state.get("locator"):
        ax.__dict__.pop(_STATE)  # ax.clear() (or someone else) reset the axes since
        ax.__dict__.pop("format_coord", None)
        state = None
    if axes is None:
        if state is None:
            return
        _remove_scale_bar(ax)
        for axis, label in ((ax.xaxis, state["xlabel"]), (ax.yaxis, state["ylabel"])):
            axis.set_major_locator(AutoLocator())
            axis.set_major_formatter(ScalarFormatter())
            axis.set_label_text(label)
        ax.__dict__.pop("format_coord", None)
        if state.get("registry") is ax.callbacks:
            ax.callbacks.disconnect(state["cid"])
        del ax.__dict__[_STATE]
        return
    axes = tuple(axes)
    if len(axes) not in (1, 2):
        raise ValueError(f"axes must be (rows, columns) or (x,), got {len(axes)} axes")
    Locator, Formatter = _ticker_classes()
    if state is None:
        state = {"xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel()}
        ax.__dict__[_STATE] = state
    state["axes"] = axes
    pairs = [(ax.xaxis, axes[-1])] + ([(ax.yaxis, axes[0])] if len(axes) == 2 else [])
    for axis, scale in pairs:
        axis.set_major_locator(Locator(scale))
        axis.set_major_formatter(Formatter(scale))
        axis.set_label_text(_label(scale), fontsize="small")
    state["locator"] = ax.xaxis.get_major_locator()

    if len(axes) == 2:
        ax.format_coord = lambda x, y: readout_text((y, x), axes)
    else:
        ax.format_coord = lambda x, y: readout_text((x,), axes)

    if state.get("registry") is ax.callbacks:
        ax.callbacks.disconnect(state["cid"])
        state.pop("registry")
    if len(axes) == 2 and scale_bar:
        _draw_scale_bar(ax, axes[1])

        def zoomed(_ax):
            current = ax.__dict__.get(_STATE)
            if current is not None and current.get("axes"):
                _draw_scale_bar(ax, current["axes"][-1])

        state["cid"] = ax.callbacks.connect("xlim_changed", zoomed)
        state["registry"] = ax.callbacks
    else:
        _remove_scale_bar(ax)


class PointerReadout:
    """A read-out that follows the pointer over images: position (pixels and physical), value.

    Listens to the figure's ``motion_notify_event`` and writes into
    :attr:`label` (an ``ipywidgets.HTML``) for the image axes it
    :meth:`watch` es; the text changes only when the pointer enters another
    pixel. Without a calibration it shows pixel positions only.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
    label : ipywidgets.HTML, optional
        Where the text goes (a new one by default).

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> fig = Figure(); ax = fig.add_subplot()
    >>> image = np.arange(12.0).reshape(3, 4)
    >>> readout = PointerReadout(fig)
    >>> readout.watch(ax, (AxisScale(step=0.5, unit="nm", name="scan_y"),
    ...                    AxisScale(step=0.5, unit="nm", name="scan_x")), lambda: image)
    >>> readout.text_at(ax, 2.2, 1.0)
    '(row 1, column 2) = (y 0.5 nm, x 1 nm): 6'
    """

    def __init__(self, figure: Any, label: Any = None):
        import ipywidgets

        self.figure = figure
        self.label = label if label is not None else ipywidgets.HTML()
        # a fixed size: the first read-out must not move the figure (the row wraps from the
        # start); 28 px is the height ipywidgets gives a line of text, empty or not
        self.label.layout.width = "340px"
        self.label.layout.height = "28px"
        self.label.layout.overflow = "hidden"
        self.label.add_class("udfw-readout")
        self._targets: dict[Any, tuple[Any, Callable[[], Any] | None]] = {}
        self._last: tuple | None = None
        self._cid = figure.canvas.mpl_connect("motion_notify_event", self._on_move)

    def watch(
        self,
        ax: Any,
        axes: Sequence[AxisScale] | None,
        values: Callable[[], Any] | None = None,
    ) -> None:
        """Read out positions over ``ax`` with these calibrated ``axes`` (None: pixels).

        ``values`` returns the array drawn (its value under the pointer is shown).
        """
        self._targets[ax] = (None if axes is None else tuple(axes), values)
        self._last = None

    def forget(self, ax: Any = None) -> None:
        """Stop reading out over ``ax`` (every axes when None)."""
        if ax is None:
            self._targets.clear()
        else:
            self._targets.pop(ax, None)
        self._last = None

    def text_at(self, ax: Any, x: float, y: float) -> str:
        """The read-out for data coordinates ``(x, y)`` (column, row) in ``ax``; "" outside."""
        if ax not in self._targets:
            return ""
        axes, values = self._targets[ax]
        array = None if values is None else values()
        two_d = array is None or np.ndim(array) == 2
        pos = (y, x) if two_d else (x,)
        idx = tuple(int(np.floor(float(p) + 0.5)) for p in pos)
        text = readout_text(pos, axes)
        if array is not None:
            arr = np.asarray(array)
            if arr.ndim == len(idx) and all(0 <= i < n for i, n in zip(idx, arr.shape)):
                text += f": {_value(arr[idx])}"
            else:
                return ""
        return text

    def _on_move(self, event) -> None:
        ax = event.inaxes
        if ax not in self._targets or event.xdata is None:
            return
        key = (id(ax), int(np.floor(event.xdata + 0.5)), int(np.floor(event.ydata + 0.5)))
        if key == self._last:
            return
        self._last = key
        text = self.text_at(ax, event.xdata, event.ydata)
        if text:
            self.label.value = f"<small style='white-space:nowrap'>{text}</small>"

    def close(self) -> None:
        """Stop listening to the figure."""
        self.figure.canvas.mpl_disconnect(self._cid)
        self._targets.clear()


def _value(v: Any) -> str:
    if np.ma.is_masked(v):
        return "–"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.5g}"
    return str(v)
