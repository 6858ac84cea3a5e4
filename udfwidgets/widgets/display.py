"""How every image of the package is shown: scale, colour limits, colour map, axes.

One :class:`DisplayModel` per image (live plots, selectors, explorer,
inspector). It owns

- the scale: ``"linear"``, ``"log"`` (zeros and negatives are masked, never
  painted as the brightest colour) or ``"gamma"`` (a power law, ``gamma`` < 1
  lifts faint features);
- the colour limits: robust percentiles of the valid pixels (finite, inside
  the valid mask, positive for log), 0.1-99.9 % by default, adjustable with a
  range slider (:meth:`DisplayModel.controls`); or fixed limits;
- the colour map, and the colour of pixels without a value (``bad``);
- the pixel axes: index axes by default, or calibrated ones
  (:class:`AxisScale`: an offset, a step and a unit per axis), which the
  widgets draw with :func:`udfwidgets.widgets.axes.apply_axes` (tick labels
  in the unit, a scale bar, read-outs) while the image stays in pixel
  coordinates.

Signal-side images (diffraction patterns) start in log scale, navigation-side
images linear: :func:`default_scale`. Pure NumPy and traitlets, matplotlib
only where a norm is made; the controls need ipywidgets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import traitlets

__all__ = [
    "DisplayModel",
    "AxisScale",
    "SCALES",
    "COLORMAPS",
    "DEFAULT_PERCENTILES",
    "default_scale",
    "robust_limits",
    "valid_pixels",
    "overlay_rgba",
    "MISSING_COLOR",
]

#: The scales a display model offers.
SCALES = ("linear", "log", "gamma")

#: Colour maps offered by the colour-map control (any other matplotlib name can be given).
#:
#: Examples
#: --------
#: >>> d = DisplayModel("sig", cmap="twilight")  # any matplotlib name
#: >>> d.cmap, "magma" in COLORMAPS
#: ('twilight', True)
#: >>> DisplayModel("sig", cmap="viridiss")
#: Traceback (most recent call last):
#: ...
#: ValueError: cmap='viridiss' is not a matplotlib colour map; try one of viridis, magma, inferno, plasma, cividis, gray, gray_r, hot, coolwarm, RdBu_r, twilight
COLORMAPS = (
    "viridis",
    "magma",
    "inferno",
    "plasma",
    "cividis",
    "gray",
    "gray_r",
    "hot",
    "coolwarm",
    "RdBu_r",
    "twilight",
)

#: Percentiles of the valid pixels that become the colour limits by default.
DEFAULT_PERCENTILES = (0.1, 99.9)

#: Colour of pixels without a value (not computed yet, outside the roi, <= 0 in log).
#:
#: Examples
#: --------
#: A matplotlib grey level; every display's colour map paints masked pixels in it:
#:
#: >>> from matplotlib.colors import to_hex
#: >>> to_hex(MISSING_COLOR), to_hex(DisplayModel("sig", cmap="magma").colormap().get_bad())
#: ('#d9d9d9', '#d9d9d9')
MISSING_COLOR = "0.85"


def default_scale(side: str) -> str:
    """The scale an image starts in: ``"log"`` for the signal side, else ``"linear"``.

    Diffraction patterns span several decades (a bright central disk, faint
    Bragg disks): linear grey hides everything but the centre.

    Examples
    --------
    >>> default_scale("sig"), default_scale("nav")
    ('log', 'linear')
    """
    if side not in ("sig", "nav", "other"):
        raise ValueError(f"side must be 'sig', 'nav' or 'other', got {side!r}")
    return "log" if side == "sig" else "linear"


def valid_pixels(
    array: np.ndarray, valid: np.ndarray | None = None, scale: str = "linear"
) -> np.ndarray:
    """Bool mask of the pixels that count: finite, in ``valid``, positive for ``"log"``.

    Complex values count by their magnitude; bool and integer values are
    always finite.

    Examples
    --------
    >>> valid_pixels(np.array([0.0, 1.0, np.nan, -2.0]), scale="log").tolist()
    [False, True, False, False]
    >>> valid_pixels(np.array([0.0, 1.0]), valid=np.array([True, False])).tolist()
    [True, False]
    """
    arr = np.asarray(array)
    if arr.dtype.kind == "c":
        arr = np.abs(arr)
    keep = np.isfinite(arr) if arr.dtype.kind == "f" else np.ones(arr.shape, dtype=bool)
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != arr.shape:
            raise ValueError(
                f"valid mask of shape {valid.shape} does not fit the image of shape {arr.shape}"
            )
        keep &= valid
    if scale == "log":
        keep &= arr > 0
    return keep


def robust_limits(
    array: np.ndarray,
    valid: np.ndarray | None = None,
    scale: str = "linear",
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
) -> tuple[float, float] | None:
    """Colour limits: the ``percentiles`` of the valid pixels (see :func:`valid_pixels`).

    None when no pixel is valid. Equal limits are widened, so that a constant
    image still gets a valid norm (a factor 2 in log, 5 % or 0.5 otherwise).
    ``(0, 100)`` gives the plain minimum and maximum.

    Examples
    --------
    >>> a = np.arange(1001, dtype=float)            # one hot pixel would not move these
    >>> [round(v, 6) for v in robust_limits(a)]
    [1.0, 999.0]
    >>> robust_limits(a, percentiles=(0, 100))
    (0.0, 1000.0)
    >>> robust_limits(np.array([0.0, -1.0]), scale="log") is None
    True
    >>> robust_limits(np.full(4, 3.0))
    (2.85, 3.15)
    """
    lo_p, hi_p = (float(p) for p in percentiles)
    if not 0.0 <= lo_p < hi_p <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles!r}")
    arr = np.asarray(array)
    if arr.dtype.kind == "c":
        arr = np.abs(arr)
    keep = valid_pixels(arr, valid, scale)
    if not keep.any():
        return None
    values = arr[keep] if not keep.all() else arr.ravel()
    if values.dtype.kind not in "f":
        values = values.astype(np.float64)
    if (lo_p, hi_p) == (0.0, 100.0):
        lo, hi = float(values.min()), float(values.max())
    else:
        lo, hi = (float(v) for v in np.percentile(values, (lo_p, hi_p)))
    if lo == hi:
        if scale == "log":
            return lo / 2, hi * 2
        pad = abs(lo) * 0.05 or 0.5
        return lo - pad, hi + pad
    return lo, hi


@dataclass(frozen=True)
class AxisScale:
    """A calibrated pixel axis: pixel ``i`` sits at ``offset + i * step`` in ``unit``.

    Made from a :class:`udfwidgets.calibration.Calibration` by
    :func:`udfwidgets.widgets.axes.axis_scales` and drawn by
    :func:`udfwidgets.widgets.axes.apply_axes`; without one, axes show pixel
    indices.

    Examples
    --------
    >>> AxisScale(step=0.5, unit="nm", name="x").edges(4)
    (-0.25, 1.75)
    >>> AxisScale(step=0.5, unit="nm", name="x").label
    'x (nm)'
    """

    offset: float = 0.0
    step: float = 1.0
    unit: str = "px"
    name: str = ""

    def __post_init__(self):
        if not np.isfinite(self.step) or self.step == 0:
            raise ValueError(f"AxisScale.step must be a finite non-zero number, got {self.step!r}")

    def edges(self, n: int) -> tuple[float, float]:
        """The outer edges of ``n`` pixels (imshow's extent along this axis)."""
        return (self.offset - self.step / 2, self.offset + (n - 0.5) * self.step)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.unit})" if self.name else self.unit


class DisplayModel(traitlets.HasTraits):
    """Scale, colour limits and colour map of one image; shared logic of every widget.

    Parameters
    ----------
    side : {"sig", "nav", "other"}
        What is shown: the scale starts as :func:`default_scale` says, unless
        ``scale`` is given.
    scale : {"linear", "log", "gamma"}, optional
    cmap : str
        Matplotlib colour map name.
    percentiles : (float, float)
        Percentiles of the valid pixels used as colour limits.
    gamma : float
        Exponent of the ``"gamma"`` scale.
    axes : (AxisScale, AxisScale), optional
        Calibrated (row, column) axes; pixel indices without.

    Attributes
    ----------
    limits : (float, float) or None
        The colour limits of the last prepared image.

    Examples
    --------
    >>> import numpy as np
    >>> d = DisplayModel("sig")
    >>> d.scale
    'log'
    >>> shown, norm = d.prepare(np.array([[0.0, 1.0], [10.0, 100.0]]))
    >>> shown.mask.tolist()                   # zero is masked in log, not painted
    [[True, False], [False, False]]
    >>> type(norm).__name__, d.limits == (norm.vmin, norm.vmax)
    ('LogNorm', True)
    >>> d.scale = "linear"; type(d.prepare(np.ones((2, 2)))[1]).__name__
    'Normalize'
    """

    scale = traitlets.Enum(SCALES, default_value="linear")
    cmap = traitlets.Unicode("viridis")
    percentiles = traitlets.Tuple(
        traitlets.Float(), traitlets.Float(), default_value=DEFAULT_PERCENTILES
    )
    gamma = traitlets.Float(0.5)
    #: Fixed colour limits; None: robust limits from :attr:`percentiles`.
    fixed_limits = traitlets.Any(None, allow_none=True)

    def __init__(
        self,
        side: str = "other",
        *,
        scale: str | None = None,
        cmap: str = "viridis",
        percentiles: Sequence[float] = DEFAULT_PERCENTILES,
        gamma: float = 0.5,
        axes: tuple[AxisScale, AxisScale] | None = None,
    ):
        import matplotlib

        try:
            matplotlib.colormaps[cmap]
        except KeyError:
            raise ValueError(
                f"cmap={cmap!r} is not a matplotlib colour map; try one of {', '.join(COLORMAPS)}"
            ) from None
        robust_limits(np.ones(1), percentiles=percentiles)  # validates them
        if not gamma > 0:
            raise ValueError(f"gamma must be positive, got {gamma!r}")
        super().__init__(
            scale=default_scale(side) if scale is None else scale,
            cmap=cmap,
            percentiles=tuple(float(p) for p in percentiles),
            gamma=float(gamma),
        )
        self.side = side
        #: the calibrated axes shown: (rows, columns) of an image, (x,) of a line plot
        self.axes: tuple[AxisScale, ...] | None = axes
        self.limits: tuple[float, float] | None = None

    @traitlets.validate("percentiles")
    def _check_percentiles(self, proposal):
        value = tuple(float(p) for p in proposal["value"])
        robust_limits(np.ones(1), percentiles=value)
        return value

    @traitlets.validate("cmap")
    def _check_cmap(self, proposal):
        import matplotlib

        if proposal["value"] not in matplotlib.colormaps:
            raise traitlets.TraitError(
                f"cmap={proposal['value']!r} is not a matplotlib colour "
                f"map; try one of {', '.join(COLORMAPS)}"
            )
        return proposal["value"]

    # --- limits and norms ----------------------------------------------------------
    def compute_limits(
        self, array: np.ndarray, valid: np.ndarray | None = None
    ) -> tuple[float, float] | None:
        """The colour limits for ``array`` under the current settings (None: no valid pixel).

        Examples
        --------
        >>> DisplayModel(percentiles=(0, 100)).compute_limits(np.array([1.0, 5.0]))
        (1.0, 5.0)
        """
        if self.fixed_limits is not None:
            lo, hi = (float(v) for v in self.fixed_limits)
            return lo, hi
        return robust_limits(array, valid, self.scale, self.percentiles)

    def norm(self, limits: tuple[float, float] | None):
        """A matplotlib norm for the scale and ``limits``.

        Examples
        --------
        >>> type(DisplayModel(scale="gamma").norm((0, 1))).__name__
        'PowerNorm'
        """
        from matplotlib.colors import LogNorm, Normalize, PowerNorm

        if limits is None:
            limits = (1.0, 10.0) if self.scale == "log" else (0.0, 1.0)
        lo, hi = limits
        if self.scale == "log":
            return LogNorm(lo, hi, clip=False)
        if self.scale == "gamma":
            return PowerNorm(self.gamma, lo, hi)
        return Normalize(lo, hi)

    def colormap(self):
        """The colour map, with :data:`MISSING_COLOR` for masked pixels."""
        import matplotlib

        return matplotlib.colormaps[self.cmap].with_extremes(bad=MISSING_COLOR)

    def prepare(self, array: np.ndarray, valid: np.ndarray | None = None):
        """``(masked array, norm)`` ready for ``imshow``/``set_data`` + ``set_norm``.

        Masked: pixels that do not count (:func:`valid_pixels`). Sets :attr:`limits`.
        """
        arr = np.asarray(array)
        if arr.dtype.kind == "c":
            arr = np.abs(arr)
        if arr.dtype.kind == "b":
            arr = arr.astype(np.uint8)
        elif arr.dtype == np.float16:
            arr = arr.astype(np.float32)
        keep = valid_pixels(arr, valid, self.scale)
        shown = np.ma.masked_array(arr, mask=~keep)
        self.limits = self.compute_limits(arr, valid)
        return shown, self.norm(self.limits)

    def show(self, artist, array: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Put ``array`` into an ``AxesImage`` with this model's norm and colour map.

        Examples
        --------
        >>> from matplotlib.figure import Figure
        >>> ax = Figure().add_subplot()
        >>> im = ax.imshow(np.zeros((2, 2)))
        >>> d = DisplayModel("nav", percentiles=(0, 100))
        >>> d.show(im, np.array([[1.0, 2.0], [3.0, 4.0]]))
        >>> im.norm.vmin, im.norm.vmax
        (1.0, 4.0)
        """
        shown, norm = self.prepare(array, valid)
        artist.set_data(shown)
        current = artist.norm
        if type(current) is type(norm) and getattr(current, "gamma", None) == getattr(
            norm, "gamma", None
        ):
            current.vmin, current.vmax = norm.vmin, norm.vmax  # one 'changed' signal
        else:
            artist.set_norm(norm)
        if artist.get_cmap().name != self.cmap:
            artist.set_cmap(self.colormap())

    def extent(self, shape: Sequence[int]) -> tuple[float, float, float, float] | None:
        """imshow's ``extent`` for calibrated :attr:`axes`, or None for pixel indices.

        For a static plot in physical data coordinates. The widgets keep pixel
        data coordinates (clicks and drawing are in pixels) and show the
        units with :func:`udfwidgets.widgets.axes.apply_axes` instead.

        Examples
        --------
        >>> DisplayModel(axes=(AxisScale(step=2.0), AxisScale(step=0.5))).extent((2, 4))
        (-0.25, 1.75, 3.0, -1.0)
        >>> DisplayModel().extent((2, 4)) is None
        True
        """
        if self.axes is None:
            return None
        ya, xa = self.axes
        x0, x1 = xa.edges(int(shape[1]))
        y0, y1 = ya.edges(int(shape[0]))
        return (x0, x1, y1, y0)  # origin="upper": row 0 at the top

    def label_axes(self, ax) -> None:
        """Axis labels: calibrated names and units, or ``column``/``row`` indices."""
        if self.axes is None:
            ax.set_xlabel("column (x)", fontsize="small")
            ax.set_ylabel("row (y)", fontsize="small")
        else:
            ax.set_xlabel(self.axes[1].label, fontsize="small")
            ax.set_ylabel(self.axes[0].label, fontsize="small")

    def describe(self) -> str:
        """A few words on how the image is scaled, for titles and tables.

        Examples
        --------
        >>> DisplayModel("sig").describe()
        'log scale, limits 0.1-99.9 %'
        """
        if self.fixed_limits is not None:
            lim = "fixed limits"
        else:
            lo, hi = self.percentiles
            lim = f"limits {lo:g}-{hi:g} %"
        scale = f"gamma {self.gamma:g}" if self.scale == "gamma" else f"{self.scale} scale"
        return f"{scale}, {lim}"

    # --- controls ---------------------------------------------------------------------
    def controls(self, compact: bool = True):
        """ipywidgets linked to this model: scale buttons, a percentile range slider, colours.

        The same controls are made for every image of the package, so a
        microscopist learns them once.

        Examples
        --------
        >>> d = DisplayModel("sig")
        >>> box = d.controls()
        >>> box.children[0].value
        'log'
        >>> box.children[1].value = (1.0, 99.0); d.percentiles
        (1.0, 99.0)
        """
        import ipywidgets as w

        scale = w.ToggleButtons(
            options=[("lin", "linear"), ("log", "log"), ("γ", "gamma")],
            value=self.scale,
            tooltips=[
                "linear colour scale",
                "logarithmic (zeros masked)",
                f"power law, gamma {self.gamma:g}",
            ],
            style={"button_width": "48px"},  # room for "log" with the theme's padding
            layout=w.Layout(width="auto"),
        )
        scale.add_class("udfw-scale")
        from .theme import mark_toggles

        mark_toggles(scale)
        limits = w.FloatRangeSlider(
            value=self.percentiles,
            min=0.0,
            max=100.0,
            step=0.1,
            description="limits %",
            readout_format=".1f",
            continuous_update=False,
            style={"description_width": "auto"},
            layout=w.Layout(width="260px"),
        )
        colours = w.Dropdown(
            options=list(dict.fromkeys((*COLORMAPS, self.cmap))),
            value=self.cmap,
            layout=w.Layout(width="100px"),
            tooltip="colour map",
        )
        w.link((scale, "value"), (self, "scale"))
        w.link((limits, "value"), (self, "percentiles"))
        w.link((colours, "value"), (self, "cmap"))
        box = w.HBox(
            [scale, limits, colours], layout=w.Layout(flex_flow="row wrap", align_items="center")
        )
        box.add_class("udfw-display-controls")
        return box


def overlay_rgba(mask: np.ndarray, color=(1.0, 0.15, 0.1), alpha: float = 0.45) -> np.ndarray:
    """An RGBA image that tints the True pixels of ``mask`` and is transparent elsewhere.

    Examples
    --------
    >>> overlay_rgba(np.array([[True, False]]), alpha=0.5)[..., 3].tolist()
    [[0.5, 0.0]]
    """
    rgba = np.zeros(np.shape(mask) + (4,), dtype=np.float32)
    rgba[..., :3] = color
    rgba[..., 3] = np.where(mask, np.float32(alpha), np.float32(0))
    return rgba


def check_image(image: Any, what: str) -> np.ndarray:
    """A 2D numeric array from an array, a BufferWrapper or anything array-like.

    Examples
    --------
    >>> check_image(np.array([[1, 2]], dtype=np.uint16), "image").dtype
    dtype('float32')
    """
    if hasattr(image, "raw_data") and hasattr(image, "kind"):  # BufferWrapper
        image = image.data
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(
            f"{what} must be a 2D array (rows, columns), got shape {arr.shape}; "
            "for a 1D navigation or signal there is nothing to draw on"
        )
    if arr.dtype.kind == "c":
        arr = np.abs(arr)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float32 if arr.dtype.itemsize <= 4 else np.float64)
