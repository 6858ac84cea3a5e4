"""Look inside any result: one entry per buffer with its statistics and a view.

The numbers and tables come from :mod:`.inspector_data` (plain NumPy); this
module is the widget: a buffer selector, a table with the statistics of the
slice on screen next to those of the whole buffer, sliders over the axes
that are not drawn (named: scan row, detector column, channel, ...), the
display controls every image shares (:mod:`udfwidgets.widgets.display`), and a figure (image
for 2D, line for 1D, a number for a scalar; for nav buffers with extra dims a
click on the scan shows that position's values as a labelled bar chart).
Positions are (row, column) everywhere. With a calibration on the run's
dataset, the scan or detector image gets physical axes and a scale bar
(:mod:`udfwidgets.widgets.axes`). A save row writes the results with
:func:`udfwidgets.export.save_results`.
"""

from __future__ import annotations

import html
import os
import threading
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np
import traitlets

from .axes import PointerReadout, apply_axes, axis_scales, readout_text
from .display import DisplayModel, default_scale
from .figure import FigureHost
from .inspector_data import (
    Entry,
    entries_from,
    object_repr,
    stats_table,
    summary_table,
    take_view,
    view_axes,
)
from .static import StaticView, close_tree

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["BufferInspector"]


class BufferInspector(widgets.VBox, StaticView):
    """Inspect the result buffers of a run.

    Parameters
    ----------
    results : dict, tuple of dict, UDFResults, optional
        What ``ctx.run_udf`` returns (for one UDF or a list of them), or an
        item of ``ctx.run_udf_iter``. Plain arrays in a dict work too. Leave
        it out to fill the inspector from a run with ``plots=[inspector]``.
    throttle : float
        Minimum seconds between refreshes from partial results of a run.
    figsize : tuple of float
        Figure size in inches.
    channel_names : dict, optional
        For buffers with ``extra_shape``: buffer name (or label) -> names of
        the entries of the first extra axis, e.g. the masks of an
        ``ApplyMasksUDF`` run: ``{"intensity": ["bright field", "annular"]}``.
    backend : {"auto", "ipympl", "image", "agg"}
        Where the figure lives (see :class:`~udfwidgets.widgets.figure.FigureHost`).

    Attributes
    ----------
    buffer : str
        Label of the buffer shown (``"name"``, or ``"udf<i>.name"`` for several
        UDFs); a traitlet linked to the drop-down.
    display_model : DisplayModel
        Scale, colour limits and colour map of the view; a signal-side buffer
        starts in log scale, others linear.
    position : tuple of int or None
        For nav buffers with extra dims: the navigation position (row, column)
        whose values are shown next to the scan (set by a click on the scan,
        or from code).
    save_path, save_overwrite, save_button, save_status : ipywidgets
        The save row: a file name (the suffix picks the format: ``.h5``,
        ``.npz``, ``.zarr``, ...), an "overwrite" checkbox (off: an existing
        file is never replaced), the button (:meth:`save_clicked`) and what
        the last save did, or what went wrong, in words.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sum import SumUDF
    >>> from udfwidgets.widgets import BufferInspector
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("memory", data=np.ones((2, 2, 3, 3), dtype=np.float32))
    >>> insp = BufferInspector(ctx.run_udf(dataset=ds, udf=SumUDF()))
    >>> insp.buffer, insp.selected.shape, float(insp.stats["mean"])
    ('intensity', (3, 3), 4.0)
    """

    buffer = traitlets.Unicode(None, allow_none=True)
    position = traitlets.Any(None, allow_none=True)

    def __init__(
        self,
        results: Any = None,
        *,
        throttle: float = 0.5,
        figsize=(7.0, 3.2),
        channel_names: dict | None = None,
        backend: str = "auto",
    ):
        self.throttle = float(throttle)
        self.channel_names = dict(channel_names or {})
        self._entries: dict[str, Entry] = {}
        self._indices: dict[int, int] = {}
        self._view: tuple[int, ...] = ()
        self._selected: np.ndarray | None = None
        self._last_refresh = float("-inf")
        self._lock = threading.RLock()
        self._host = FigureHost(backend, figsize, lock=self._lock)
        self._fig = self._host.figure
        self.display_model = DisplayModel("other")
        self._main_ax: Axes | None = None  # the buffer's plot
        self._pick_ax: Axes | None = None  # the values at the clicked position
        self._cid = self._fig.canvas.mpl_connect("button_press_event", self._on_click)
        self._readout = PointerReadout(self._fig)

        self._dropdown = widgets.Dropdown(description="buffer", options=[])
        self._table = widgets.HTML()
        self._message = widgets.HTML()
        self._sliders = widgets.VBox()
        self._pos_label = widgets.HTML()
        widgets.link((self._dropdown, "value"), (self, "buffer"))
        self.display_controls = self.display_model.controls()
        self.display_model.observe(
            self._style_changed, names=["scale", "cmap", "percentiles", "gamma", "fixed_limits"]
        )

        canvas = self._host.view
        tools = widgets.HBox(
            [self._host.toolbar(), self._readout.label], layout={"align_items": "center"}
        )
        view = [self._sliders, self._message, self._pos_label, tools] + (
            [canvas] if canvas is not None else []
        )
        super().__init__(
            children=[
                widgets.HBox(
                    [self._dropdown, self.display_controls],
                    layout={"flex_flow": "row wrap", "align_items": "center"},
                ),
                widgets.HBox([self._table, widgets.VBox(view)], layout={"flex_flow": "row wrap"}),
                self._make_save_controls(),
            ]
        )
        self.add_class("udfw-inspector")
        self._results = results
        if results is not None:
            self._load(entries_from(results, self.channel_names))
        else:
            self._draw()

    # --- public read-outs ---------------------------------------------------------
    @property
    def entries(self) -> list[str]:
        """Labels of all buffers, in order.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import BufferInspector
        >>> BufferInspector(({"a": np.zeros(2)}, {"a": np.ones(2)})).entries
        ['udf0.a', 'udf1.a']
        """
        return list(self._entries)

    @property
    def entry(self) -> Entry | None:
        """The entry shown now."""
        return self._entries.get(self.buffer) if self.buffer is not None else None

    @property
    def selected(self) -> np.ndarray | None:
        """A copy of the array shown in the main view (the slice the sliders pick).

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import BufferInspector
        >>> insp = BufferInspector({"cube": np.arange(24).reshape(2, 3, 4)})
        >>> insp.set_index(0, 1)
        >>> insp.selected[0].tolist()
        [12, 13, 14, 15]
        """
        return None if self._selected is None else np.array(self._selected)

    @property
    def stats(self) -> dict[str, Any]:
        """Statistics of the shown buffer over its valid values (see the table).

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import BufferInspector
        >>> s = BufferInspector({"a": np.array([1.0, 3.0, np.nan])}).stats
        >>> s["mean"], s["nan_count"]
        (2.0, 1)
        """
        from .inspector_data import buffer_stats

        entry = self.entry
        return {} if entry is None else buffer_stats(entry)

    @property
    def slider_axes(self) -> dict[int, widgets.IntSlider]:
        """The slider of each axis that is not drawn, by axis number."""
        return {s.axis: s for s in self._sliders.children}

    @property
    def position_values(self) -> np.ndarray | None:
        """The values at :attr:`position` (nav buffers with extra dims), else None.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets import Context, UDF
        >>> from udfwidgets.widgets import BufferInspector
        >>> class Pair(UDF):
        ...     def get_result_buffers(self):
        ...         return {"p": self.buffer(kind="nav", extra_shape=(2,))}
        ...     def process_frame(self, frame):
        ...         self.results.p[:] = (frame.min(), frame.max())
        >>> ctx = Context(executor="inline")
        >>> ds = ctx.load("memory", data=np.arange(16.).reshape(2, 2, 2, 2))
        >>> insp = BufferInspector(ctx.run_udf(dataset=ds, udf=Pair()))
        >>> insp.position = (1, 0)
        >>> insp.position_values.tolist()
        [8.0, 11.0]
        """
        entry = self.entry
        if entry is None or self.position is None:
            return None
        return np.array(entry.array[tuple(self.position)])

    def set_index(self, axis: int, index: int) -> None:
        """Fix a non-drawn ``axis`` at ``index`` (what its slider does).

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import BufferInspector
        >>> insp = BufferInspector({"a": np.zeros((3, 4, 5))})
        >>> insp.set_index(0, 2); insp.slider_axes[0].value
        2
        """
        sliders = self.slider_axes
        if axis not in sliders:
            raise ValueError(
                f"axis {axis} of {self.buffer!r} is drawn or does not exist; the "
                f"axes with sliders are {sorted(sliders)}"
            )
        slider = sliders[axis]
        if not slider.min <= index <= slider.max:
            raise ValueError(f"index {index} is out of range for axis {axis} (0 to {slider.max})")
        slider.value = int(index)

    def summary_html(self) -> str:
        """An HTML table with one row per buffer (also the ``_repr_html_``).

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import BufferInspector
        >>> "<table" in BufferInspector({"a": np.zeros(3)}).summary_html()
        True
        """
        with self._lock:
            entries = list(self._entries.values())
        if not entries:
            return "<p>BufferInspector: no results yet</p>"
        return summary_table(entries)

    def _repr_html_(self) -> str:
        return self.summary_html()

    def png(self) -> bytes | None:
        """The view's figure as PNG bytes (None when nothing is drawn: a value, a message)."""
        with self._lock:
            return self._host.png() if self._main_ax is not None else None

    def _static_hosts(self) -> list:
        return [self._host]

    def _repr_mimebundle_(self, **kwargs):
        from .static import mimebundle

        return mimebundle(
            super(),
            self.png,
            self.summary_html,
            f"BufferInspector: {len(self._entries)} buffers",
            hosts=[self._host],
        )

    @property
    def log(self) -> bool:
        """Whether the view is in log scale (colours of images, y axis of lines)."""
        return self.display_model.scale == "log"

    @property
    def shown_stats(self) -> dict[str, Any]:
        """Statistics of the slice on screen (valid values only), as in the table.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import BufferInspector
        >>> insp = BufferInspector({"cube": np.arange(24.0).reshape(2, 3, 4)})
        >>> insp.set_index(0, 1)
        >>> insp.shown_stats["min"], insp.stats["min"]
        (12.0, 0.0)
        """
        from .inspector_data import value_stats

        entry = self.entry
        if entry is None or self._selected is None or entry.dtype.kind == "O":
            return {}
        valid = self._valid_view(entry)
        data = self._selected
        if valid is not None and valid.shape == data.shape[: valid.ndim]:
            data = data[valid]
        return value_stats(data)

    @property
    def figure(self):
        """The matplotlib figure of the view."""
        return self._fig

    # --- live updates --------------------------------------------------------------------
    def new_data(self, udf_results: Any, damage: Any = None, force: bool = False) -> None:
        """Show new (partial) results; for ``ctx.run_udf_iter(..., plots=[inspector])``.

        Refreshes at most every :attr:`throttle` seconds unless ``force``
        (the final result of a run comes with ``force=True``). Safe to call
        from a background thread: it only updates widget state, never prints.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets import Context
        >>> from udfwidgets.udf.sum import SumUDF
        >>> from udfwidgets.widgets import BufferInspector
        >>> ctx = Context(executor="inline")
        >>> ds = ctx.load("memory", data=np.ones((4, 2, 2)), num_partitions=2)
        >>> insp = BufferInspector()
        >>> _ = ctx.run_udf(dataset=ds, udf=SumUDF(), plots=[insp])
        >>> insp.selected.tolist()
        [[4.0, 4.0], [4.0, 4.0]]
        """
        now = time.monotonic()
        if not force and now - self._last_refresh < self.throttle:
            return
        self._last_refresh = now
        self._results = udf_results
        self._load(entries_from(udf_results, self.channel_names))

    def refresh(self) -> None:
        """Redraw the view and the table (after changing the arrays in place).

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import BufferInspector
        >>> a = np.zeros(3)
        >>> insp = BufferInspector({"a": a})
        >>> a[:] = 2; insp.refresh()
        >>> insp.stats["mean"]
        2.0
        """
        with self._lock:
            self._draw()
            entry = self.entry
            if entry is None:
                self._table.value = ""
            else:
                shown = None if entry.dtype.kind == "O" else self._shown_values(entry)
                self._table.value = stats_table(entry, shown, self._where(bare=True))

    def _shown_values(self, entry: Entry) -> np.ndarray | None:
        if self._selected is None:
            return None
        valid = self._valid_view(entry)
        data = self._selected
        if valid is not None and valid.shape == data.shape[: valid.ndim]:
            return data[valid]
        return data

    # --- saving ----------------------------------------------------------------------------
    def _make_save_controls(self):
        from ..export import SUFFIXES

        #: The file to write (the suffix picks the format, as for ``save_results``).
        self.save_path = widgets.Text(
            placeholder="results.h5",
            description="save to",
            tooltip=f"file name ending in {', '.join(SUFFIXES)}",
            style={"description_width": "auto"},
            layout={"width": "280px"},
        )
        #: Replace an existing file (off: an existing file is never touched).
        self.save_overwrite = widgets.Checkbox(
            value=False, description="overwrite", indent=False, layout={"width": "auto"}
        )
        self.save_button = widgets.Button(
            description="save",
            tooltip="write all results shown here (udfwidgets.export.save_results)",
            layout={"width": "auto"},
        )
        #: What the last save did: the file written, or what went wrong.
        self.save_status = widgets.HTML()
        self.save_button.on_click(lambda _b: self.save_clicked())
        box = widgets.HBox(
            [self.save_path, self.save_overwrite, self.save_button, self.save_status],
            layout={"flex_flow": "row wrap", "align_items": "center"},
        )
        box.add_class("udfw-inspector-save")
        return box

    def save(self, path: Any, overwrite: bool = False) -> str:
        """Write the results shown here with :func:`udfwidgets.export.save_results`.

        The format comes from the suffix (``.h5``, ``.npz``, ``.zarr``, ...);
        an existing file is kept unless ``overwrite``. Returns the absolute
        path written; errors are raised (the save button shows them instead).

        Examples
        --------
        >>> import os, tempfile, numpy as np
        >>> from udfwidgets import Context
        >>> from udfwidgets.udf.sum import SumUDF
        >>> from udfwidgets.widgets import BufferInspector
        >>> ctx = Context(executor="inline")
        >>> ds = ctx.load("memory", data=np.ones((2, 2, 3, 3), dtype=np.float32))
        >>> insp = BufferInspector(ctx.run_udf(dataset=ds, udf=SumUDF()))
        >>> path = os.path.join(tempfile.mkdtemp(), "sum.npz")
        >>> insp.save(path) == os.path.abspath(path), np.load(path)["intensity"][0, 0]
        (True, np.float32(4.0))
        """
        from ..export import save_results

        if self._results is None:
            raise ValueError("there are no results to save yet: run a UDF first")
        text = os.fspath(path).strip() if isinstance(path, (str, os.PathLike)) else path
        if not text:
            raise ValueError("give a file name to save to, e.g. results.h5 or results.npz")
        text = os.path.expanduser(text)
        save_results(self._results, text, overwrite=overwrite)
        return os.path.abspath(text)

    def save_clicked(self) -> None:
        """What the save button does: :meth:`save` to the typed path; the outcome in words.

        Success names the file; a failure (an existing file without
        "overwrite", an unknown suffix, a missing folder or library) shows
        what is wrong and what to do, in :attr:`save_status`, never a traceback.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import BufferInspector
        >>> insp = BufferInspector({"a": np.zeros(3)})
        >>> insp.save_path.value = "out.txt"; insp.save_clicked()
        >>> "could not save" in insp.save_status.value
        True
        """
        path = self.save_path.value
        try:
            written = self.save(path, overwrite=self.save_overwrite.value)
        except FileExistsError:
            self._save_message(
                f"could not save: {path.strip()!r} exists; tick “overwrite” to replace it, "
                "or choose another name",
                error=True,
            )
        except Exception as e:  # noqa: BLE001 - shown to the user, who can fix it
            self._save_message(f"could not save: {type(e).__name__}: {e}", error=True)
        else:
            n = len(self._entries)
            self._save_message(f"saved {n} buffer{'s' if n != 1 else ''} to {written}")

    def _save_message(self, text: str, error: bool = False) -> None:
        colour = "#b00" if error else "#080"
        self.save_status.value = (
            f"<span class='udfw-save-{'error' if error else 'ok'}' "
            f"style='color:{colour}'>{html.escape(text)}</span>"
        )

    # --- internals -----------------------------------------------------------------------
    def _load(self, entries: list[Entry]) -> None:
        with self._lock:
            old = self.entry
            self._entries = {e.label: e for e in entries}
            labels = list(self._entries)
            if list(self._dropdown.options) != labels:
                with self.hold_trait_notifications():
                    self._dropdown.options = labels
            keep = self.buffer in self._entries
            new = self.entry if keep else None
            same_layout = (
                new is not None
                and old is not None
                and new.array.shape == old.array.shape
                and new.kind == old.kind
            )
            if not keep:
                # start with something to look at: the first buffer that is not a single value
                drawable = [e.label for e in entries if not e.is_scalar and e.dtype.kind != "O"]
                first = drawable[0] if drawable else (labels[0] if labels else None)
                self.buffer = first  # the observer rebuilds and draws
                if not labels:
                    self.refresh()
            elif not same_layout:
                self._setup_entry()
            else:
                self.refresh()

    @traitlets.observe("buffer")
    def _buffer_changed(self, change) -> None:
        if hasattr(self, "_sliders"):
            self._setup_entry()

    def _style_changed(self, change) -> None:
        if hasattr(self, "_sliders"):
            self.refresh()

    @traitlets.validate("position")
    def _check_position(self, proposal):
        value = proposal["value"]
        if value is None:
            return None
        entry = self.entry
        if entry is None or not self._picking(entry):
            raise traitlets.TraitError(
                "position applies only to nav buffers with extra "
                f"dimensions; {self.buffer!r} is not one"
            )
        nav = entry.base_shape
        try:
            pos = tuple(int(v) for v in value)
        except TypeError:
            raise traitlets.TraitError(f"position must be a tuple of {len(nav)} ints") from None
        if len(pos) != len(nav) or any(not 0 <= p < n for p, n in zip(pos, nav)):
            raise traitlets.TraitError(
                f"position {value!r} lies outside the navigation shape {nav}"
            )
        return pos

    @traitlets.observe("position")
    def _position_changed(self, change) -> None:
        self.refresh()

    def _setup_entry(self) -> None:
        """New buffer: new sliders, indices and position; then draw."""
        with self._lock:
            entry = self.entry
            self._indices = {}
            sliders = []
            if entry is not None:
                self._view, others = view_axes(entry)
                with self.display_model.hold_trait_notifications():
                    self.display_model.scale = default_scale(
                        entry.kind if entry.kind in ("nav", "sig") else "other"
                    )
                for ax in others:
                    slider = widgets.IntSlider(
                        value=0,
                        min=0,
                        max=entry.array.shape[ax] - 1,
                        description=self._axis_name(entry, ax),
                        continuous_update=False,
                        style={"description_width": "auto"},
                    )
                    slider.axis = ax
                    slider.observe(self._slider_moved, "value")
                    self._indices[ax] = 0
                    sliders.append(slider)
            self._sliders.children = sliders
            with self.hold_trait_notifications():
                self.position = None
            self.refresh()

    @staticmethod
    def _axis_name(entry: Entry, axis: int) -> str:
        return entry.axis_name(axis)

    def _slider_moved(self, change) -> None:
        self._indices[change["owner"].axis] = int(change["new"])
        self.refresh()

    @staticmethod
    def _picking(entry: Entry) -> bool:
        return entry.kind == "nav" and len(entry.extra_shape) > 0

    def _draw(self) -> None:
        with self._lock:
            fig = self._fig
            fig.clear()
            self._readout.forget()
            self.display_model.axes = None
            self._show_figure(False)
            self._main_ax = self._pick_ax = None
            self._selected = None
            entry = self.entry
            self._pos_label.value = ""
            if entry is None:
                self._message.value = "<i>no results yet</i>"
                self._host.refresh()
                return
            data = take_view(entry.array, self._view, self._indices)
            self._selected = data
            if entry.dtype.kind == "O":
                self._message.value = f"<pre>{html.escape(object_repr(data))}</pre>"
                self._host.refresh()
                return
            if entry.n_valid == 0:
                self._message.value = (
                    "<b>No valid values</b> in this buffer: the roi selected no frames, or no "
                    "partition has finished yet."
                )
                self._host.refresh()
                return
            if entry.is_scalar:
                value = entry.array.reshape(-1)[0]
                self._message.value = (
                    f"<span style='font-size:1.4em'>{html.escape(entry.label)}"
                    f" = <b>{html.escape(_number(value))}</b></span>"
                )
                self._host.refresh()
                return
            self._message.value = ""
            self._show_figure(True)
            picking = self._picking(entry)
            self._main_ax = fig.add_subplot(1, 2 if picking else 1, 1)
            valid = self._valid_view(entry)
            where = self._where()
            self._plot(
                self._main_ax,
                data,
                valid,
                entry.label + (f" ({where})" if where else ""),
                entry,
                main=True,
            )
            if picking:
                pick_ax = fig.add_subplot(1, 2, 2)
                self._pick_ax = pick_ax
                if self.position is None:
                    pick_ax.set_axis_off()
                    pick_ax.text(
                        0.5,
                        0.5,
                        "click the scan to see\nthe values there",
                        ha="center",
                        va="center",
                        transform=pick_ax.transAxes,
                    )
                else:
                    self._plot_position(entry, pick_ax)
            self._host.style()
            self._host.refresh()

    def _show_figure(self, shown: bool) -> None:
        if self._host.view is not None:
            self._host.view.layout.display = None if shown else "none"

    def _plot_position(self, entry: Entry, ax: Axes) -> None:
        """The values at :attr:`position` on ``ax``: a labelled bar chart (one extra axis) or
        an image."""
        values = np.asarray(entry.array[self.position])
        if values.dtype.kind == "c":
            values = np.abs(values)
        where = self._position_words()
        if values.ndim == 1:
            labels = [entry.channel_label(i) for i in range(len(values))]
            ax.bar(np.arange(len(values)), values.astype(np.float64), color="tab:blue")
            ax.set_xticks(
                np.arange(len(values)),
                labels,
                rotation=0 if len(values) <= 4 else 60,
                fontsize="small",
            )
            ax.set_xlabel(entry.axis_name(len(entry.base_shape)), fontsize="small")
            ax.set_title(f"at {where}", fontsize=9)
        else:
            while values.ndim > 2:
                values = values[0]
            self._plot(ax, values, None, f"at {where}", entry, main=False)
        self._pos_label.value = f"<small>{html.escape(where)}</small>"

    def _position_words(self) -> str:
        pos = self.position
        if pos is None:
            return ""
        if len(pos) == 2:
            entry = self.entry
            scales = (
                None if entry is None else axis_scales(entry.calibration, "nav", entry.base_shape)
            )
            return f"scan position {readout_text(pos, scales)}"
        return f"scan position {tuple(pos)}"

    def _calibrated(self, entry: Entry, shape: tuple[int, ...]):
        """Calibrated axes of the main view when it draws the buffer's scan or detector axes."""
        n_base = len(entry.base_shape)
        if entry.kind not in ("nav", "sig") or self._view != tuple(range(n_base)):
            return None
        return axis_scales(entry.calibration, entry.kind, shape)

    def _where(self, bare: bool = False) -> str:
        entry = self.entry
        if not self._indices or entry is None:
            return ""
        parts = []
        for ax, i in sorted(self._indices.items()):
            name = self._axis_name(entry, ax)
            if ax == len(entry.base_shape) and entry.kind in ("nav", "sig") and entry.extra_names:
                parts.append(f"{name} {entry.channel_label(i)}")
            else:
                parts.append(f"{name} = {i}")
        return ", ".join(parts)

    def _valid_view(self, entry: Entry) -> np.ndarray | None:
        """The valid mask over the drawn axes (nav buffers only; they draw nav axes)."""
        if entry.valid is None:
            return None
        base_idx = {ax: i for ax, i in self._indices.items() if ax < len(entry.base_shape)}
        return take_view(entry.valid, self._view, base_idx)

    def _plot(
        self, ax, data: np.ndarray, valid: np.ndarray | None, title: str, entry: Entry, main: bool
    ) -> None:
        values = np.abs(data) if data.dtype.kind == "c" else data
        values = values.astype(np.float64) if values.dtype.kind in "bui" else values
        if data.dtype.kind == "c":
            title = f"|{title}|"
        ax.set_title(title, fontsize=9, loc="left")
        model = self.display_model
        if values.ndim == 1:
            from matplotlib.ticker import MaxNLocator

            shown = values if valid is None else np.ma.masked_array(values, mask=~valid)
            ax.plot(np.arange(len(values)), shown, "-", marker="." if len(values) < 50 else "")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if main:
                ax.set_xlabel(self._axis_name(entry, self._view[0]), fontsize="small")
                self._show_axes(ax, entry, values)
            if model.scale == "log":
                ax.set_yscale("log", nonpositive="mask")
            return
        shown, norm = model.prepare(values, valid)
        im = ax.imshow(shown, cmap=model.colormap(), norm=norm, interpolation="nearest")
        if main and len(self._view) == 2:
            ax.set_ylabel(self._axis_name(entry, self._view[0]), fontsize="small")
            ax.set_xlabel(self._axis_name(entry, self._view[1]), fontsize="small")
        if main:
            self._show_axes(ax, entry, shown)
        self._fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)

    def _show_axes(self, ax, entry: Entry, values: np.ndarray) -> None:
        scales = self._calibrated(entry, values.shape)
        self.display_model.axes = scales
        apply_axes(ax, scales, values.shape)
        self._readout.watch(ax, scales, lambda: values)

    def _on_click(self, event) -> None:
        entry = self.entry
        if (
            entry is None
            or not self._picking(entry)
            or event.inaxes is None
            or event.inaxes is not self._main_ax
            or event.xdata is None
        ):
            return
        pos = dict(self._indices)
        if len(self._view) == 2:
            pos[self._view[0]] = int(np.floor(event.ydata + 0.5))
            pos[self._view[1]] = int(np.floor(event.xdata + 0.5))
        else:
            pos[self._view[0]] = int(np.floor(event.xdata + 0.5))
        position = tuple(pos.get(ax, 0) for ax in range(len(entry.base_shape)))
        try:
            self.position = position
        except traitlets.TraitError:
            pass  # a click just outside the scan

    def close(self) -> None:
        """Close the widget and its figure."""
        if hasattr(self, "_fig"):
            self._fig.canvas.mpl_disconnect(self._cid)
            self._readout.close()
        for child in self.children:
            close_tree(child)
        super().close()


def _number(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return str(value)
