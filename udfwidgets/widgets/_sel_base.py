"""The machinery shared by :class:`RoiSelector` and :class:`SigMaskSelector`.

One image in a matplotlib figure, drawing tools (matplotlib selectors) chosen
with ipywidgets buttons, a combination mode, and a bool mask kept in a
traitlet (``roi`` or ``mask``, named by the subclass) drawn as an RGBA overlay.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Sequence

import ipywidgets as widgets
import numpy as np
import traitlets

from . import _sel_geometry as geo
from ._sel_figure import (canvas_widget, close_figure, finite_limits, make_figure, overlay_rgba,
                          redraw)

__all__ = ["MaskSelectorBase", "MODES", "as_image"]

MODES = ("add", "subtract", "replace")

_TOOL_LABELS = {
    "rectangle": "▭ rectangle", "ellipse": "⬭ ellipse", "disk": "● disk", "ring": "◎ ring",
    "polygon": "⬠ polygon", "lasso": "∿ lasso", "point": "· point",
}

_SHAPE_PROPS = dict(facecolor="none", edgecolor="yellow", linewidth=1.5)


def as_image(image: Any, what: str) -> np.ndarray:
    """A 2D float array from an array, a BufferWrapper or anything array-like."""
    if hasattr(image, "raw_data") and hasattr(image, "kind"):  # BufferWrapper
        image = image.data
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2D array (rows, columns), got shape {arr.shape}; "
                         "for a 1D navigation or signal there is nothing to draw on")
    if arr.dtype.kind == "c":
        arr = np.abs(arr)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float32 if arr.dtype.itemsize <= 4 else np.float64)


class MaskSelectorBase(widgets.VBox):
    """Base class: an image, drawing tools, and a bool mask of the image's shape.

    Subclasses set :attr:`_value_name` (the name of the mask trait), declare
    that trait with :func:`mask_trait`, and list their :attr:`_tools`.
    """

    _value_name: ClassVar[str] = "mask"
    _tools: ClassVar[tuple[str, ...]] = ()
    _what: ClassVar[str] = "image"

    #: The active drawing tool.
    tool = traitlets.Unicode()
    #: How a new shape combines with the selection: "add", "subtract" or "replace".
    mode = traitlets.Enum(MODES, default_value="add")
    #: Radius of the inner circle of the ring tool, as a fraction of the outer radius.
    ring_ratio = traitlets.Float(0.5)

    def __init__(self, image: Any, *, title: str | None = None, cmap: str = "gray",
                 tool: str | None = None, mode: str = "add", figsize=(4.0, 4.0),
                 color=(1.0, 0.15, 0.1), **kwargs):
        self._image = as_image(image, self._what)
        self.shape = self._image.shape
        self._color = color
        self._fig = make_figure(figsize)
        self._ax = self._fig.add_subplot(1, 1, 1)
        self._im = self._ax.imshow(self._image, cmap=cmap, interpolation="nearest")
        self._im.set_clim(*finite_limits(self._image))
        self._overlay = self._ax.imshow(overlay_rgba(np.zeros(self.shape, bool), color),
                                        interpolation="nearest")
        self._overlay.set_mouseover(False)  # the cursor read-out shows the image's values
        if title:
            self._ax.set_title(title)
        self._fig.tight_layout()
        self._selectors = self._make_selectors()
        self._point_cid = self._fig.canvas.mpl_connect("button_press_event", self._on_point_press)

        compact = {"button_width": "auto"}
        self._tool_buttons = widgets.ToggleButtons(
            options=[(_TOOL_LABELS[t], t) for t in self._tools], style=compact,
            tooltips=[f"draw a {t}" for t in self._tools])
        self._mode_buttons = widgets.ToggleButtons(
            options=list(MODES), style=compact,
            tooltips=["add the new shape to the selection", "remove the new shape from it",
                      "the new shape replaces the selection"])
        self._invert_button = widgets.Button(description="invert", icon="adjust",
                                             layout={"width": "auto"},
                                             tooltip="select what is not selected")
        self._clear_button = widgets.Button(description="clear", icon="eraser",
                                            layout={"width": "auto"}, tooltip="select nothing")
        self._invert_button.on_click(lambda _b: self.invert())
        self._clear_button.on_click(lambda _b: self.clear())
        self._ring_slider = widgets.FloatSlider(value=self.ring_ratio, min=0.0, max=0.95,
                                                step=0.05, description="inner/outer",
                                                layout={"display": "none"})
        self._status = widgets.HTML()
        widgets.link((self._tool_buttons, "value"), (self, "tool"))
        widgets.link((self._mode_buttons, "value"), (self, "mode"))
        widgets.link((self._ring_slider, "value"), (self, "ring_ratio"))

        controls = [widgets.HBox([self._tool_buttons]),
                    widgets.HBox([self._mode_buttons, self._invert_button, self._clear_button]),
                    self._ring_slider, self._status]
        canvas = canvas_widget(self._fig)
        super().__init__(children=controls + ([canvas] if canvas is not None else []), **kwargs)
        self.mode = mode
        self.tool = tool or self._tools[0]
        setattr(self, self._value_name, np.zeros(self.shape, dtype=bool))
        self._activate(self.tool)
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
            raise TypeError(f"{cls}.{name} must be a bool array, got dtype {arr.dtype}; "
                            f"convert it, e.g. `{name} > 0`")
        if arr.shape != self.shape:
            raise ValueError(f"{cls}.{name} must have the image's shape {self.shape}, "
                             f"got shape {arr.shape}")
        arr = arr.copy()
        arr.flags.writeable = False  # in-place edits would not notify observers
        return arr

    def _selection_changed(self, change) -> None:
        self._show(change["new"])

    def _show(self, mask: np.ndarray) -> None:
        self._overlay.set_data(overlay_rgba(mask, self._color))
        n = int(mask.sum())
        self._status.value = f"<small>{n} of {mask.size} pixels selected</small>"
        redraw(self._fig)

    # --- the image ---------------------------------------------------------------
    @property
    def image(self) -> np.ndarray:
        """The image shown under the selection."""
        return self._image

    def set_image(self, image: Any) -> None:
        """Show a new image of the same shape (the selection stays).

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import RoiSelector
        >>> sel = RoiSelector(np.zeros((4, 4)))
        >>> sel.set_image(np.ones((4, 4)))
        >>> float(sel.image.sum())
        16.0
        """
        arr = as_image(image, self._what)
        if arr.shape != self.shape:
            raise ValueError(f"the new {self._what} must keep the shape {self.shape}, "
                             f"got {arr.shape}")
        self._image = arr
        self._im.set_data(arr)
        self._im.set_clim(*finite_limits(arr))
        redraw(self._fig)

    @property
    def figure(self):
        """The matplotlib figure."""
        return self._fig

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
        self._set_mask(np.zeros(self.shape, dtype=bool))

    # --- shapes from code ------------------------------------------------------------
    def set_rectangle(self, x0: float, y0: float, x1: float, y1: float,
                      mode: str | None = None) -> np.ndarray:
        """Apply the rectangle with corners ``(x0, y0)`` and ``(x1, y1)`` (x: column, y: row).

        Pixels whose centres lie inside or on the edge are taken; see :meth:`apply`
        for ``mode``. Returns the new selection.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import RoiSelector
        >>> sel = RoiSelector(np.zeros((4, 5)))
        >>> int(sel.set_rectangle(1, 0, 3, 1).sum())
        6
        """
        return self.apply(geo.rectangle_mask(self.shape, x0, y0, x1, y1), mode)

    def set_ellipse(self, cx: float, cy: float, rx: float, ry: float | None = None,
                    mode: str | None = None) -> np.ndarray:
        """Apply the axis-aligned ellipse centred at ``(cx, cy)`` with radii ``rx``, ``ry``
        (``ry`` defaults to ``rx``: a disk).

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import RoiSelector
        >>> int(RoiSelector(np.zeros((5, 5))).set_ellipse(2, 2, 1).sum())
        5
        """
        ry = rx if ry is None else ry
        return self.apply(geo.ellipse_mask(self.shape, cx, cy, rx, ry), mode)

    def set_disk(self, cx: float, cy: float, r: float, mode: str | None = None) -> np.ndarray:
        """Apply the disk of radius ``r`` centred at ``(cx, cy)``.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import SigMaskSelector
        >>> int(SigMaskSelector(np.zeros((5, 5))).set_disk(2, 2, 1).sum())
        5
        """
        return self.apply(geo.disk_mask(self.shape, cx, cy, r), mode)

    def set_ring(self, cx: float, cy: float, r_inner: float, r_outer: float,
                 mode: str | None = None) -> np.ndarray:
        """Apply the ring ``r_inner < distance <= r_outer`` around ``(cx, cy)``.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import SigMaskSelector
        >>> int(SigMaskSelector(np.zeros((5, 5))).set_ring(2, 2, 0.5, 1).sum())
        4
        """
        return self.apply(geo.ring_mask(self.shape, cx, cy, r_inner, r_outer), mode)

    def set_polygon(self, vertices: Sequence[Sequence[float]],
                    mode: str | None = None) -> np.ndarray:
        """Apply the polygon through ``vertices`` (``(x, y)`` points; closed automatically).

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import RoiSelector
        >>> sel = RoiSelector(np.zeros((4, 4)))
        >>> int(sel.set_polygon([(-0.5, -0.5), (3.2, -0.5), (-0.5, 3.2)]).sum())
        6
        """
        return self.apply(geo.polygon_mask(self.shape, vertices), mode)

    def set_point(self, x: float, y: float, mode: str | None = None) -> np.ndarray:
        """Apply the single pixel containing ``(x, y)`` (x: column, y: row).

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import RoiSelector
        >>> np.argwhere(RoiSelector(np.zeros((3, 3))).set_point(2, 1)).tolist()
        [[1, 2]]
        """
        return self.apply(geo.point_mask(self.shape, x, y), mode)

    # --- interactive tools -----------------------------------------------------------
    def _make_selectors(self) -> dict:
        from matplotlib.widgets import (EllipseSelector, LassoSelector, PolygonSelector,
                                        RectangleSelector)

        made = {}
        for tool in self._tools:
            if tool == "rectangle":
                made[tool] = RectangleSelector(self._ax, self._box_callback(tool),
                                               interactive=False, button=[1], props=_SHAPE_PROPS)
            elif tool in ("ellipse", "disk", "ring"):
                round_ = tool != "ellipse"
                # a round shape dragged exactly sideways has zero height ("square" copies
                # the sign of dy): a negative minimum span lets it through; r = max(hw, hh)
                span = -1.0 if round_ else 0.0
                sel = EllipseSelector(self._ax, self._box_callback(tool), interactive=False,
                                      button=[1], props=_SHAPE_PROPS, minspanx=span,
                                      minspany=span)
                if round_:  # drag from the centre, keep it round
                    sel.add_state("center")
                    sel.add_state("square")
                made[tool] = sel
            elif tool == "polygon":
                made[tool] = PolygonSelector(self._ax, self._vertices_callback(tool),
                                             props=dict(color="yellow", linewidth=1.5))
            elif tool == "lasso":
                made[tool] = LassoSelector(self._ax, self._vertices_callback(tool), useblit=False,
                                           button=[1], props=dict(color="yellow", linewidth=1.5))
        return made

    def _box_callback(self, tool: str) -> Callable:
        def onselect(eclick, erelease):
            x0, x1 = sorted((eclick.xdata, erelease.xdata))
            y0, y1 = sorted((eclick.ydata, erelease.ydata))
            self._apply_box(tool, x0, x1, y0, y1)
        return onselect

    def _apply_box(self, tool: str, x0: float, x1: float, y0: float, y1: float) -> None:
        """A box tool finished a drag with these (sorted) extents."""
        cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        if tool == "rectangle":
            self.set_rectangle(x0, y0, x1, y1)
        elif tool == "ellipse":
            if hw > 0 and hh > 0:
                self.set_ellipse(cx, cy, hw, hh)
        else:
            r = max(hw, hh)
            if r <= 0:
                return
            if tool == "disk":
                self.set_disk(cx, cy, r)
            else:
                self.set_ring(cx, cy, self.ring_ratio * r, r)

    def _vertices_callback(self, tool: str) -> Callable:
        def onselect(verts):
            if len(verts) >= 3:
                self.set_polygon(verts)
            if tool == "polygon":  # ready for the next polygon; the overlay shows this one
                self._selectors[tool].clear()
        return onselect

    def _on_point_press(self, event) -> None:
        if self.tool != "point" or event.inaxes is not self._ax or event.button != 1:
            return
        if event.xdata is None or not self._fig.canvas.widgetlock.available(self):
            return
        self.set_point(event.xdata, event.ydata)

    def _activate(self, tool: str) -> None:
        for name, sel in self._selectors.items():
            sel.set_active(name == tool)
            if name != tool:
                sel.set_visible(False)
        self._ring_slider.layout.display = "" if tool == "ring" else "none"

    @traitlets.validate("tool")
    def _check_tool(self, proposal):
        if proposal["value"] not in self._tools:
            raise traitlets.TraitError(f"{type(self).__name__}.tool must be one of "
                                       f"{self._tools}, got {proposal['value']!r}")
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
        for sel in self._selectors.values():
            sel.set_active(False)
        close_figure(self._fig)
        super().close()
