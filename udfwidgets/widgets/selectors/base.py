"""The machinery shared by :class:`RoiSelector` and :class:`SigMaskSelector`.

One image in a figure (:class:`~udfwidgets.widgets.figure.FigureHost`, shown
through a :class:`~udfwidgets.widgets.display.DisplayModel`), drawing tools
(matplotlib selectors) chosen with ipywidgets buttons, a combination mode,
and a bool mask kept in a traitlet (``roi`` or ``mask``, named by the
subclass) drawn as an RGBA overlay. Shapes are those of
:mod:`udfwidgets.masks`: ``centre=(y, x)``, ``y`` the row, ``x`` the column.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import ipywidgets as widgets
import numpy as np
import traitlets

from ..axes import PointerReadout, apply_axes, axis_scales, calibration_of
from ..display import DisplayModel, check_image, overlay_rgba
from ..figure import FigureHost
from ..static import StaticView, close_tree
from ..theme import mark_toggles
from . import shapes as geo

__all__ = ["MaskSelectorBase", "MODES", "as_image"]

#: How a new shape combines with the selection (the ``mode`` of every selector and of its
#: ``set_*`` methods): added to it, cut out of it, or replacing it.
#:
#: Examples
#: --------
#: >>> from udfwidgets.widgets import RoiSelector
#: >>> sel = RoiSelector(np.zeros((1, 4)))
#: >>> for mode, left in zip(MODES, (0, 1, 3)):
#: ...     _ = sel.set_rectangle(top=0, left=left, height=1, width=2, mode=mode)
#: ...     print(mode, sel.roi.astype(int).tolist())
#: add [[1, 1, 0, 0]]
#: subtract [[1, 0, 0, 0]]
#: replace [[0, 0, 0, 1]]
MODES = ("add", "subtract", "replace")

#: Words, not symbols: they render with any font.
_TOOL_LABELS = {
    "rectangle": "rectangle",
    "ellipse": "ellipse",
    "disk": "disk",
    "ring": "ring",
    "polygon": "polygon",
    "lasso": "lasso",
    "point": "point",
}

_SHAPE_PROPS = dict(facecolor="none", edgecolor="yellow", linewidth=1.5)

#: Kept for code that imported it from here: :func:`udfwidgets.widgets.display.check_image`.
as_image = check_image


class MaskSelectorBase(widgets.VBox, StaticView):
    """Base class: an image, drawing tools, and a bool mask of the image's shape.

    Subclasses set :attr:`_value_name` (the name of the mask trait), declare
    that trait, and list their :attr:`_tools` and :attr:`_side`.

    Examples
    --------
    A selector of pixels whose mask trait is ``picked``:

    >>> import numpy as np
    >>> import traitlets
    >>> class PixelPicker(MaskSelectorBase):
    ...     _value_name = "picked"
    ...     _tools = ("point", "rectangle")
    ...     picked = traitlets.Any(None, allow_none=True)
    ...     @traitlets.validate("picked")
    ...     def _check(self, proposal):
    ...         return self._validate_mask(proposal["value"])
    ...     @traitlets.observe("picked")
    ...     def _changed(self, change):
    ...         self._selection_changed(change)
    >>> sel = PixelPicker(np.zeros((2, 3)), tool="point")
    >>> _ = sel.set_point(1, 2)
    >>> _ = sel.set_point(0, 0)
    >>> sel.picked.astype(int).tolist(), sel.describe_selection()
    ([[1, 0, 0], [0, 0, 1]], '2 of 6 pixels selected')
    >>> sel.close()
    """

    _value_name: ClassVar[str] = "mask"
    _tools: ClassVar[tuple[str, ...]] = ()
    _what: ClassVar[str] = "image"
    _side: ClassVar[str] = "other"
    _unit: ClassVar[str] = "pixels"

    #: The active drawing tool.
    tool = traitlets.Unicode()
    #: How a new shape combines with the selection: "add", "subtract" or "replace".
    mode = traitlets.Enum(MODES, default_value="add")
    #: Radius of the inner circle of the ring tool, as a fraction of the outer radius.
    ring_ratio = traitlets.Float(0.5)
    #: False: the drawing tools ignore the mouse (the explorer's cursor mode).
    drawing = traitlets.Bool(True)

    def __init__(
        self,
        image: Any,
        *,
        title: str | None = None,
        cmap: str = "gray",
        scale: str | None = None,
        tool: str | None = None,
        mode: str = "add",
        figsize=(4.0, 3.6),
        color=(1.0, 0.15, 0.1),
        backend: str = "auto",
        percentiles: Sequence[float] = (0.1, 99.9),
        calibration: Any = None,
        **kwargs,
    ):
        self._calibration = calibration_of(image if calibration is None else calibration)
        self._image = check_image(image, self._what)
        self.shape = self._image.shape
        self._color = color
        self.display_model = DisplayModel(
            self._side, scale=scale, cmap=cmap, percentiles=percentiles
        )
        # held while the figure renders (ipympl, main thread) and while a background
        # thread (the explorer) changes the artists
        self._render_lock = threading.RLock()
        self.shape_words = ""  # the selection in words, e.g. "ring 12-30 px"
        self._words: str | None = None
        self._host = FigureHost(backend, figsize, lock=self._render_lock)
        self._fig = self._host.figure
        self._ax = self._fig.add_subplot(1, 1, 1)
        shown, norm = self.display_model.prepare(self._image)
        self._im = self._ax.imshow(
            shown, cmap=self.display_model.colormap(), norm=norm, interpolation="nearest"
        )
        self._overlay = self._ax.imshow(
            overlay_rgba(np.zeros(self.shape, bool), color), interpolation="nearest"
        )
        self._overlay.set_mouseover(False)  # the cursor read-out shows the image's values
        self._readout = PointerReadout(self._fig)
        self._apply_calibration()
        self._title_text = title or ""  # shown above the tools; on the axes only in png()
        self._host.style()
        self._selectors = self._make_selectors()
        self._point_cid = self._fig.canvas.mpl_connect("button_press_event", self._on_point_press)
        self.display_model.observe(
            self._restyle, names=["scale", "cmap", "percentiles", "gamma", "fixed_limits"]
        )

        compact = {"button_width": "auto"}
        self._tool_buttons = widgets.ToggleButtons(
            options=[(_TOOL_LABELS[t], t) for t in self._tools],
            style=compact,
            tooltips=[f"draw a {t}" for t in self._tools],
        )
        self._mode_buttons = widgets.ToggleButtons(
            options=list(MODES),
            style=compact,
            tooltips=[
                "add the new shape to the selection",
                "remove the new shape from it",
                "the new shape replaces the selection",
            ],
        )
        mark_toggles(self._tool_buttons, self._mode_buttons)  # the chosen ones clearly marked
        self._invert_button = widgets.Button(
            description="invert", layout={"width": "auto"}, tooltip="select what is not selected"
        )
        self._clear_button = widgets.Button(
            description="clear", layout={"width": "auto"}, tooltip="select nothing"
        )
        self._invert_button.on_click(lambda _b: self.invert())
        self._clear_button.on_click(lambda _b: self.clear())
        # always laid out (hidden, not removed), so panels side by side stay aligned
        self._ring_slider = widgets.FloatSlider(
            value=self.ring_ratio,
            min=0.0,
            max=0.95,
            step=0.05,
            description="ring inner/outer",
            style={"description_width": "auto"},
            layout={"visibility": "hidden", "width": "260px"},
        )
        self._status = widgets.HTML()
        self._heading = widgets.HTML()
        widgets.link((self._tool_buttons, "value"), (self, "tool"))
        widgets.link((self._mode_buttons, "value"), (self, "mode"))
        widgets.link((self._ring_slider, "value"), (self, "ring_ratio"))

        row = {"flex_flow": "row wrap", "align_items": "center"}
        self._tool_row = widgets.HBox([self._tool_buttons], layout=row)
        self._mode_row = widgets.HBox(
            [self._mode_buttons, self._invert_button, self._clear_button], layout=row
        )
        self.display_controls = self.display_model.controls()
        self.figure_toolbar = self._host.toolbar()
        controls = [
            self._heading,
            self._tool_row,
            self._mode_row,
            self._ring_slider,
            self.display_controls,
            widgets.HBox([self.figure_toolbar, self._status, self._readout.label], layout=row),
        ]
        view = [self._host.view] if self._host.view is not None else []
        super().__init__(children=controls + view, **kwargs)
        self.add_class("udfw-selector")
        self.mode = mode
        self.tool = tool or self._tools[0]
        setattr(self, self._value_name, np.zeros(self.shape, dtype=bool))
        self._activate(self.tool)
        self._set_heading()
        self._show(self._get_mask())

    # --- the mask trait ------------------------------------------------------
    def _get_mask(self) -> np.ndarray:
        value = getattr(self, self._value_name)
        return np.zeros(self.shape, bool) if value is None else value

    def _set_mask(self, mask: np.ndarray) -> None:
        """Assign the trait only if the mask changed (traitlets fires on every array assignment)."""
        current = getattr(self, self._value_name)
        if current is not None and np.array_equal(current, mask):
            return
        setattr(self, self._value_name, mask)

    def _validate_mask(self, value: Any) -> np.ndarray:
        name, cls = self._value_name, type(self).__name__
        if value is None:
            value = np.zeros(self.shape, dtype=bool)
        if hasattr(value, "raw_data") and hasattr(value, "kind"):
            value = value.data
        arr = np.asarray(value)
        if arr.dtype != bool:
            raise TypeError(
                f"{cls}.{name} must be a bool array, got dtype {arr.dtype}; "
                f"convert it, e.g. `{name} > 0`"
            )
        if arr.shape != self.shape:
            raise ValueError(
                f"{cls}.{name} must have the image's shape {self.shape}, got shape {arr.shape}"
            )
        arr = arr.copy()
        arr.flags.writeable = False  # in-place edits would not notify observers
        return arr

    def _selection_changed(self, change) -> None:
        self._show(change["new"])

    def _show(self, mask: np.ndarray) -> None:
        with self._render_lock:
            self._overlay.set_data(overlay_rgba(mask, self._color))
            self._overlay.set_visible(bool(mask.any()))  # nothing to draw: no cost per render
        self._status.value = f"<small>{self.describe_selection()}</small>"
        self._redraw_image(self.blit_updates)

    def describe_selection(self, mask: np.ndarray | None = None) -> str:
        """In words: how many of the image's pixels are selected.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import RoiSelector
        >>> sel = RoiSelector(np.zeros((4, 4)))
        >>> _ = sel.set_point(1, 2); sel.describe_selection()
        '1 of 16 scan positions selected'
        """
        mask = self._get_mask() if mask is None else mask
        return f"{int(mask.sum())} of {mask.size} {self._unit} selected"

    def _set_heading(self) -> None:
        import html

        self._heading.value = (
            f"<b>{html.escape(self._title_text)}</b>" if self._title_text else "&nbsp;"
        )

    def set_title(self, title: str) -> None:
        """Set the title shown above the figure and on the axes.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import RoiSelector
        >>> sel = RoiSelector(np.zeros((2, 2)))
        >>> sel.set_title("sum of 4 frames"); sel.title
        'sum of 4 frames'
        """
        self._title_text = str(title)
        self._set_heading()
        self._refresh()

    #: Render and send each new picture at once (the explorer sets it), not on request.
    push_updates = False
    #: A new image (:meth:`set_image`) or selection redraws only the image and what lies
    #: over it, on the figure's last rendered axes, and sends the picture at once
    #: (:meth:`FigureHost.blit <udfwidgets.widgets.figure.FigureHost.blit>`); the explorer
    #: sets it. Without a browser showing the figure: a full render, as for False.
    blit_updates = False

    def _refresh(self) -> None:
        self._host.refresh(push=self.push_updates)

    def _redraw_image(self, blit: bool) -> None:
        """Show a changed image or overlay: blitted if ``blit`` and possible, else rendered."""
        if not (blit and self._host.blit(self._image_artists())):
            self._refresh()

    @property
    def title(self) -> str:
        """The title above the figure (what is shown)."""
        return self._title_text

    def _restyle(self, change=None) -> None:
        with self._render_lock:
            self.display_model.show(self._im, self._image)
        self._refresh()

    # --- calibrated axes (udfwidgets.widgets.axes) ----------------------------------------
    @property
    def calibration(self) -> Any:
        """The :class:`~udfwidgets.calibration.Calibration` of the axes, or None (pixels).

        Given as ``calibration=``, or the one of a result buffer given as the
        image. Setting it redraws ticks, axis labels, scale bar and read-out.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets import Calibration
        >>> from udfwidgets.widgets import RoiSelector
        >>> sel = RoiSelector(np.zeros((4, 40)))
        >>> sel.calibration = Calibration(scan_step=0.5, scan_unit="nm")
        >>> sel.ax.get_xlabel(), sel.readout_text(1, 3)
        ('scan x (nm)', '(row 1, column 3) = (y 0.5 nm, x 1.5 nm)')
        """
        return self._calibration

    @calibration.setter
    def calibration(self, value: Any) -> None:
        self._calibration = calibration_of(value)
        self._apply_calibration()
        self._refresh()

    def _apply_calibration(self) -> None:
        with self._render_lock:
            scales = axis_scales(self._calibration, self._side, self.shape)
            self.display_model.axes = scales
            apply_axes(self._ax, scales, self.shape)
            self._readout.watch(self._ax, scales, lambda: self._image)

    @property
    def readout(self):
        """The ``ipywidgets.HTML`` read-out of the position (and value) under the pointer."""
        return self._readout.label

    def readout_text(self, row: float, col: float) -> str:
        """The position ``(row, col)`` in words, physical coordinates included when calibrated.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import SigMaskSelector
        >>> SigMaskSelector(np.zeros((3, 3))).readout_text(1, 2)
        '(row 1, column 2)'
        """
        from ..axes import readout_text

        return readout_text((row, col), self.display_model.axes)

    # --- static views ------------------------------------------------------------------
    def png(self) -> bytes:
        """The figure (image and selection, with the title) as PNG bytes."""
        with self._render_lock:
            self._ax.set_title(self._title_text, fontsize="medium", loc="left")
            try:
                return self._host.png()
            finally:
                self._ax.set_title("", loc="left")

    def summary_html(self) -> str:
        """An HTML table of what is shown: image, scale, limits, selection."""
        from ..static import html_table

        lim = self.display_model.limits
        return html_table(
            self._title_text or type(self).__name__,
            [
                (self._what, f"{self.shape[0]} rows x {self.shape[1]} columns"),
                ("display", self.display_model.describe()),
                ("colour limits", "–" if lim is None else f"{lim[0]:.4g} … {lim[1]:.4g}"),
                ("selection", self.describe_selection()),
            ],
        )

    def _static_hosts(self) -> list:
        return [self._host]

    def _repr_mimebundle_(self, **kwargs):
        from ..static import mimebundle

        return mimebundle(
            super(),
            self.png,
            self.summary_html,
            f"{type(self).__name__}: {self.describe_selection()}",
            hosts=[self._host],
        )

    # --- the image ---------------------------------------------------------------
    @property
    def image(self) -> np.ndarray:
        """The image shown under the selection."""
        return self._image

    def set_image(self, image: Any, title: str | None = None, blit: bool | None = None) -> None:
        """Show a new image of the same shape (the selection stays), optionally a new title.

        ``blit=True``: redraw only the image and what lies over it, on the
        figure's last rendered axes and ticks (:meth:`FigureHost.blit
        <udfwidgets.widgets.figure.FigureHost.blit>`; the explorer's live
        cursor, region and detector updates), when a browser shows the
        figure; a full render otherwise. None: :attr:`blit_updates`.
        The colour limits follow the new image either way; the title is
        the HTML heading above the figure, not part of the picture.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import RoiSelector
        >>> sel = RoiSelector(np.zeros((4, 4)))
        >>> sel.set_image(np.ones((4, 4)))
        >>> float(sel.image.sum())
        16.0
        """
        arr = check_image(image, self._what)
        if arr.shape != self.shape:
            raise ValueError(
                f"the new {self._what} must keep the shape {self.shape}, got {arr.shape}"
            )
        with self._render_lock:
            self._image = arr
            self.display_model.show(self._im, arr)
        if title is not None:
            self._title_text = str(title)  # above the figure (and on the axes only in png())
            self._set_heading()
        self._redraw_image(self.blit_updates if blit is None else blit)

    def _image_artists(self) -> list:
        """The image and every artist of the axes drawn over it (not the axes' ticks)."""
        from matplotlib.axis import Axis

        z = self._im.get_zorder()
        return [
            a
            for a in self._ax.get_children()
            if a is not self._ax.patch
            and not isinstance(a, Axis)
            and not a.get_animated()
            and a.get_zorder() >= z
        ]

    @property
    def figure(self):
        """The matplotlib figure."""
        return self._fig

    @property
    def host(self) -> FigureHost:
        """The :class:`~udfwidgets.widgets.figure.FigureHost` of the figure."""
        return self._host

    @property
    def artist(self):
        """The ``AxesImage`` that shows the image."""
        return self._im

    @property
    def ax(self):
        """The matplotlib axes the image and the selection are drawn in."""
        return self._ax

    @property
    def selectors(self) -> dict:
        """The matplotlib selector of each drawing tool (``"point"`` has none)."""
        return dict(self._selectors)

    # --- combining shapes ----------------------------------------------------------
    def apply(self, shape_mask: np.ndarray, mode: str | None = None) -> np.ndarray:
        """Combine a bool mask of the image's shape with the selection; return the new selection.

        Parameters
        ----------
        shape_mask : array of bool
            The pixels of a new shape.
        mode : {"add", "subtract", "replace"}, optional
            Defaults to the widget's current :attr:`mode`.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import RoiSelector
        >>> sel = RoiSelector(np.zeros((1, 3)))
        >>> sel.apply(np.array([[True, True, False]])).tolist()
        [[True, True, False]]
        >>> sel.apply(np.array([[False, True, True]]), mode="subtract").tolist()
        [[True, False, False]]
        """
        mode = self.mode if mode is None else mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        shape_mask = self._validate_mask(shape_mask)
        current = self._get_mask()
        words, self._words = self._words or "shape", None
        old = self.shape_words if current.any() else ""
        if mode == "replace" or not old:
            self.shape_words = words if mode != "subtract" else ""
        else:
            joined = f"{old} {'+' if mode == 'add' else 'minus'} {words}"
            self.shape_words = joined if len(joined) <= 48 else "several shapes"
        if mode == "add":
            new = current | shape_mask
        elif mode == "subtract":
            new = current & ~shape_mask
        else:
            new = shape_mask
        self._set_mask(new)
        return self._get_mask()

    def invert(self) -> None:
        """Select exactly the pixels that are not selected now.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import RoiSelector
        >>> sel = RoiSelector(np.zeros((2, 2)))
        >>> _ = sel.set_point(0, 0)
        >>> sel.invert()
        >>> sel.roi.tolist()
        [[False, True], [True, True]]
        """
        self.shape_words = f"all but {self.shape_words or 'nothing'}"
        self._set_mask(~self._get_mask())

    def clear(self) -> None:
        """Select nothing.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import RoiSelector
        >>> sel = RoiSelector(np.zeros((2, 2)))
        >>> sel.invert(); sel.clear()
        >>> int(sel.roi.sum())
        0
        """
        self.shape_words = ""
        self._set_mask(np.zeros(self.shape, dtype=bool))

    # --- shapes from code (the convention of udfwidgets.masks: y is the row, x the column) ---
    def set_rectangle(
        self, top: int, left: int, height: int, width: int, mode: str | None = None
    ) -> np.ndarray:
        """Apply rows ``top:top+height`` and columns ``left:left+width``.

        The same pixels as :func:`udfwidgets.masks.rectangle` with these
        arguments; see :meth:`apply` for ``mode``. Returns the new selection.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import RoiSelector
        >>> sel = RoiSelector(np.zeros((4, 5)))
        >>> sel.set_rectangle(top=0, left=1, height=2, width=3).astype(int)
        array([[0, 1, 1, 1, 0],
               [0, 1, 1, 1, 0],
               [0, 0, 0, 0, 0],
               [0, 0, 0, 0, 0]])
        """
        self._words = f"rectangle {height} x {width} px"
        return self.apply(geo.rectangle(self.shape, top, left, height, width), mode)

    def set_ellipse(
        self, centre: Sequence[float], radii: Sequence[float] | float, mode: str | None = None
    ) -> np.ndarray:
        """Apply the axis-aligned ellipse around ``centre = (y, x)``, ``radii = (ry, rx)``.

        A single number for ``radii`` gives a disk.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import RoiSelector
        >>> int(RoiSelector(np.zeros((5, 5))).set_ellipse((2, 2), (1, 2)).sum())
        7
        """
        r = np.asarray(radii, dtype=np.float64)
        pair = (float(r), float(r)) if r.ndim == 0 else tuple(float(v) for v in r)
        self._words = f"ellipse {pair[0]:.3g} x {pair[1]:.3g} px"
        return self.apply(geo.ellipse(self.shape, centre, pair), mode)

    def set_disk(
        self, centre: Sequence[float], radius: float, mode: str | None = None
    ) -> np.ndarray:
        """Apply ``masks.disk(shape, centre=(y, x), radius=radius)``.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import SigMaskSelector
        >>> int(SigMaskSelector(np.zeros((5, 5))).set_disk((2, 2), 1).sum())
        5
        """
        self._words = f"disk r={radius:.3g} px"
        return self.apply(geo.disk(self.shape, centre, radius), mode)

    def set_ring(
        self, centre: Sequence[float], inner: float, outer: float, mode: str | None = None
    ) -> np.ndarray:
        """Apply ``masks.ring(shape, centre=(y, x), inner=inner, outer=outer)``.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import SigMaskSelector
        >>> int(SigMaskSelector(np.zeros((5, 5))).set_ring((2, 2), 0.5, 1).sum())
        4
        """
        self._words = f"ring {inner:.3g}-{outer:.3g} px"
        return self.apply(geo.ring(self.shape, centre, inner, outer), mode)

    def set_polygon(
        self, vertices: Sequence[Sequence[float]], mode: str | None = None
    ) -> np.ndarray:
        """Apply the polygon through ``vertices``, ``(y, x)`` points (closed automatically).

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import RoiSelector
        >>> sel = RoiSelector(np.zeros((4, 4)))
        >>> int(sel.set_polygon([(-0.5, -0.5), (-0.5, 3.2), (3.2, -0.5)]).sum())
        6
        """
        self._words = f"polygon of {len(vertices)} points"
        return self.apply(geo.polygon(self.shape, vertices), mode)

    def set_point(self, y: float, x: float, mode: str | None = None) -> np.ndarray:
        """Apply the single pixel containing ``(y, x)`` (row, column).

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import RoiSelector
        >>> np.argwhere(RoiSelector(np.zeros((3, 3))).set_point(1, 2)).tolist()
        [[1, 2]]
        """
        mask = geo.point(self.shape, y, x)
        row, col = np.argwhere(mask)[0]
        self._words = f"pixel (row {row}, column {col})"
        return self.apply(mask, mode)

    # --- interactive tools -----------------------------------------------------------
    def _make_selectors(self) -> dict:
        from matplotlib.backend_bases import MouseButton
        from matplotlib.widgets import (
            AxesWidget,
            EllipseSelector,
            LassoSelector,
            PolygonSelector,
            RectangleSelector,
        )

        made: dict[str, AxesWidget] = {}
        for tool in self._tools:
            if tool == "rectangle":
                made[tool] = RectangleSelector(
                    self._ax,
                    self._box_callback(tool),
                    interactive=False,
                    button=[MouseButton.LEFT],
                    props=_SHAPE_PROPS,
                )
            elif tool in ("ellipse", "disk", "ring"):
                round_ = tool != "ellipse"
                # a round shape dragged exactly sideways has zero height ("square" copies
                # the sign of dy): a negative minimum span lets it through; r = max(hw, hh)
                span = -1.0 if round_ else 0.0
                sel = EllipseSelector(
                    self._ax,
                    self._box_callback(tool),
                    interactive=False,
                    button=[MouseButton.LEFT],
                    props=_SHAPE_PROPS,
                    minspanx=span,
                    minspany=span,
                )
                if round_:  # drag from the centre, keep it round
                    sel.add_state("center")
                    sel.add_state("square")
                made[tool] = sel
            elif tool == "polygon":
                made[tool] = PolygonSelector(
                    self._ax,
                    self._vertices_callback(tool),
                    props=dict(color="yellow", linewidth=1.5),
                )
            elif tool == "lasso":
                made[tool] = LassoSelector(
                    self._ax,
                    self._vertices_callback(tool),
                    useblit=False,
                    button=[MouseButton.LEFT],
                    props=dict(color="yellow", linewidth=1.5),
                )
        for widget in made.values():
            widget.update = self._blitted_update(widget)  # type: ignore[attr-defined]
        return made

    def _blitted_update(self, sel) -> Callable[[], None]:
        """The selector's redraw (rubber band, vertices) blitted through the figure host.

        ipympl's canvas does not support matplotlib's own blitting, so a selector
        would call ``draw_idle`` on every motion event of a drag: the page asks
        for a full render of the figure each time, a backlog that a region
        update waits behind after the mouse is released. Instead only the
        selector's artists are drawn over the host's saved background
        (:meth:`FigureHost.blit <udfwidgets.widgets.figure.FigureHost.blit>`, the
        one blitting mechanism of the package); without a page showing the
        figure: matplotlib's own way.
        """
        matplotlib_update = sel.update

        def update() -> None:
            if not (sel.ax.get_visible() and self._host.blit(list(sel.artists))):
                matplotlib_update()

        return update

    def _box_callback(self, tool: str) -> Callable:
        def onselect(eclick, erelease):
            x0, x1 = sorted((eclick.xdata, erelease.xdata))
            y0, y1 = sorted((eclick.ydata, erelease.ydata))
            self._apply_box(tool, x0, x1, y0, y1)

        return onselect

    def _apply_box(self, tool: str, x0: float, x1: float, y0: float, y1: float) -> None:
        """A box tool finished a drag with these (sorted) extents (x: column, y: row)."""
        cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        if tool == "rectangle":
            box = geo.box(self.shape, y0, x0, y1, x1)
            rows, cols = np.nonzero(box.any(axis=1))[0], np.nonzero(box.any(axis=0))[0]
            self._words = f"rectangle {len(rows)} x {len(cols)} px"
            self.apply(box)
        elif tool == "ellipse":
            if hw > 0 and hh > 0:
                self.set_ellipse((cy, cx), (hh, hw))
        else:
            r = max(hw, hh)
            if r <= 0:
                return
            if tool == "disk":
                self.set_disk((cy, cx), r)
            else:
                self.set_ring((cy, cx), self.ring_ratio * r, r)

    def _vertices_callback(self, tool: str) -> Callable:
        def onselect(verts):
            if len(verts) >= 3:
                self.set_polygon([(y, x) for x, y in verts])  # matplotlib gives (x, y)
            if tool == "polygon":  # ready for the next polygon; the overlay shows this one
                self._selectors[tool].clear()

        return onselect

    def _on_point_press(self, event) -> None:
        if (
            not self.drawing
            or self.tool != "point"
            or event.inaxes is not self._ax
            or event.button != 1
        ):
            return
        if event.xdata is None or not self._fig.canvas.widgetlock.available(self):
            return
        self.set_point(event.ydata, event.xdata)

    def _activate(self, tool: str) -> None:
        for name, sel in self._selectors.items():
            sel.set_active(self.drawing and name == tool)
            if name != tool or not self.drawing:
                sel.set_visible(False)
        self._ring_slider.layout.visibility = "visible" if tool == "ring" else "hidden"

    @traitlets.observe("drawing")
    def _drawing_changed(self, change) -> None:
        if getattr(self, "_selectors", None) is not None:
            self._activate(self.tool)
            for w in (
                self._tool_buttons,
                self._mode_buttons,
                self._invert_button,
                self._clear_button,
            ):
                w.disabled = not change["new"]

    @traitlets.validate("tool")
    def _check_tool(self, proposal):
        if proposal["value"] not in self._tools:
            raise traitlets.TraitError(
                f"{type(self).__name__}.tool must be one of "
                f"{self._tools}, got {proposal['value']!r}"
            )
        return proposal["value"]

    @traitlets.observe("tool")
    def _tool_changed(self, change) -> None:
        if getattr(self, "_selectors", None) is not None:
            self._activate(change["new"])

    def close(self) -> None:
        """Close the widget and free the figure."""
        if not hasattr(self, "_fig"):  # construction failed
            return super().close()
        self._fig.canvas.mpl_disconnect(self._point_cid)
        self._readout.close()
        for sel in self._selectors.values():
            sel.set_active(False)

        for child in self.children:
            close_tree(child)
        super().close()
