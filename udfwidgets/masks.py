"""Masks over the signal (detector) plane: disks, rings, rectangles, points, sectors.

Every factory takes the signal shape ``(height, width)`` first and returns a
NumPy array of that shape, ``float32`` by default (``dtype=bool`` gives a bool
mask). Coordinates are pixel indices: ``y`` is the row, ``x`` the column, and
a pixel belongs to a shape when its *centre* (its integer index) does.

Physical units: every factory also takes ``unit=`` (``"mrad"``, ``"1/nm"``,
...) and ``calibration=`` (usually ``ds.calibration``, a
:class:`~udfwidgets.calibration.Calibration`). Lengths (radii, widths) are
then in ``unit`` and positions (centres, corners) are physical detector
coordinates in ``unit`` relative to the calibration's origin, the beam
centre; ``centre=None`` is the beam centre itself. ``centre_unit="px"``
gives the centre in pixels while the lengths stay in ``unit``. The
conversion is the calibration's (:meth:`Calibration.to_pixels
<udfwidgets.calibration.Calibration.to_pixels>`), so angles and reciprocal
lengths convert into each other when the calibration has a beam energy.

The masks plug into :class:`~udfwidgets.udf.masks.ApplyMasksUDF`, either as
arrays or as factories (``functools.partial`` or a ``lambda``) that are called
on the workers. :func:`to_sparse` converts a mask (stack) to a
``scipy.sparse`` matrix when SciPy is installed; SciPy is optional and only
imported when a sparse mask is asked for.

Examples
--------
>>> from udfwidgets import masks
>>> masks.disk((5, 5), centre=(2, 2), radius=1, dtype=bool).astype(int)
array([[0, 0, 0, 0, 0],
       [0, 0, 1, 0, 0],
       [0, 1, 1, 1, 0],
       [0, 0, 1, 0, 0],
       [0, 0, 0, 0, 0]])
>>> from udfwidgets import Calibration
>>> cal = Calibration(sig_step=0.5, sig_unit="mrad", beam_centre=(2, 2))
>>> masks.disk((5, 5), radius=0.5, unit="mrad", calibration=cal, dtype=bool).astype(int)
array([[0, 0, 0, 0, 0],
       [0, 0, 1, 0, 0],
       [0, 1, 1, 1, 0],
       [0, 0, 1, 0, 0],
       [0, 0, 0, 0, 0]])
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from .calibration import PIXELS, Calibration, CalibrationError

__all__ = [
    "disk",
    "ring",
    "annulus",
    "rectangle",
    "point",
    "sector",
    "radial_bins",
    "angular_sectors",
    "radius_map",
    "angle_map",
    "to_sparse",
    "is_sparse",
    "circular",
    "rectangular",
]

#: LiberTEM's keyword names: a call using any of them (or a number as the
#: first positional argument) follows LiberTEM's signature.
_LT_NAMES = {
    "centerX",
    "centerY",
    "imageSizeX",
    "imageSizeY",
    "radius_inner",
    "antialiased",
    "normalize",
    "use_sparse",
    "radius",
}


def _libertem_style(args: tuple, kwargs: dict) -> bool:
    if _LT_NAMES & kwargs.keys() and "sig_shape" not in kwargs:
        return True
    return (
        bool(args)
        and isinstance(args[0], (int, float, np.integer, np.floating))
        and not isinstance(args[0], bool)
    )


# --- validation helpers --------------------------------------------------------
def check_sig_shape(sig_shape: Any, name: str = "sig_shape") -> tuple[int, int]:
    """Return ``sig_shape`` as a ``(height, width)`` tuple of positive ints, or raise ValueError.

    Examples
    --------
    >>> check_sig_shape(np.array([4, 5]))
    (4, 5)
    """
    try:
        dims = tuple(int(d) for d in sig_shape)
    except TypeError:
        raise ValueError(
            f"{name} must be a (height, width) tuple of positive integers, got {sig_shape!r}"
        ) from None
    if (
        len(dims) != 2
        or any(d < 1 for d in dims)
        or any(float(d) != float(s) for d, s in zip(dims, sig_shape))
    ):
        raise ValueError(
            f"{name} must be a (height, width) tuple of positive integers, got {sig_shape!r}"
        )
    return dims[0], dims[1]


def check_point(value: Any, name: str) -> tuple[float, float]:
    """Return ``value`` as a finite ``(y, x)`` pair of floats, or raise ValueError.

    Examples
    --------
    >>> check_point((1, 2.5), "centre")
    (1.0, 2.5)
    """
    try:
        y, x = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (y, x) pair of numbers, got {value!r}") from None
    if not (math.isfinite(y) and math.isfinite(x)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return y, x


def check_number(
    value: Any, name: str, minimum: float | None = 0.0, allow_inf: bool = False
) -> float:
    """Return ``value`` as a float ``>= minimum``, or raise ValueError naming ``name``.

    Examples
    --------
    >>> check_number(3, "radius")
    3.0
    >>> check_number(-1, "radius")
    Traceback (most recent call last):
    ...
    ValueError: radius must be >= 0, got -1
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {value!r}")
    return v


def check_positive_int(value: Any, name: str) -> int:
    """Return ``value`` as an int ``>= 1``, or raise ValueError naming ``name``.

    Examples
    --------
    >>> check_positive_int(np.int64(4), "n_bins")
    4
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _finish(mask: np.ndarray, dtype: Any) -> np.ndarray:
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise ValueError(f"dtype={dtype!r} is not a NumPy dtype ({e})") from None
    return mask.astype(dt)


# --- physical units -------------------------------------------------------------
def _in_pixels(unit: Any) -> bool:
    return unit is None or unit == PIXELS


def _check_calibration(calibration: Any, unit: Any, what: str) -> tuple[Calibration, str]:
    """``calibration`` and ``unit``, checked: a Calibration and a unit string."""
    if calibration is None:
        raise CalibrationError(
            f"{what} in {unit!r} needs calibration= (usually ds.calibration, with the "
            f"detector pixel size in an angle or reciprocal unit); or give {what} in pixels "
            "(leave unit unset)"
        )
    if not isinstance(calibration, Calibration):
        raise CalibrationError(
            "calibration must be a udfwidgets.Calibration (e.g. ds.calibration), "
            f"got {type(calibration).__name__}"
        )
    if not isinstance(unit, str):
        raise CalibrationError(f"unit must be a string such as 'mrad' or '1/nm', got {unit!r}")
    return calibration, unit


def length_to_pixels(
    value: Any, name: str, unit: str | None, calibration: Calibration | None
) -> Any:
    """A length (radius, width) in ``unit`` as a number of detector pixels.

    ``unit=None`` or ``"px"``: ``value`` is returned unchanged (checked later
    by the factory). Otherwise the calibration converts it; the detector
    pixels must be square.

    Examples
    --------
    >>> cal = Calibration(sig_step=0.25, sig_unit="mrad")
    >>> length_to_pixels(1.5, "radius", "mrad", cal)
    6.0
    >>> length_to_pixels(1.5, "radius", "mrad", None)
    Traceback (most recent call last):
    ...
    udfwidgets.calibration.CalibrationError: radius in 'mrad' needs calibration= (usually ds.calibration, with the detector pixel size in an angle or reciprocal unit); or give radius in pixels (leave unit unset)
    """
    if _in_pixels(unit):
        return value
    cal, u = _check_calibration(calibration, unit, name)
    v = check_number(value, name, minimum=None, allow_inf=True)
    if math.isinf(v):
        return v
    return cal.to_pixels(v, _sig_unit(cal, u, name))


def position_to_pixels(
    value: Any, name: str, unit: str | None, calibration: Calibration | None
) -> Any:
    """A detector position ``(y, x)`` in ``unit`` (relative to the beam centre) as pixel indices.

    ``unit=None`` or ``"px"``: ``value`` is returned unchanged.

    Examples
    --------
    >>> cal = Calibration(sig_step=0.5, sig_unit="mrad", beam_centre=(8, 8))
    >>> position_to_pixels((1.0, -2.0), "centre", "mrad", cal)
    (10.0, 4.0)
    """
    if _in_pixels(unit):
        return value
    cal, u = _check_calibration(calibration, unit, name)
    y, x = check_point(value, name)
    return cal.point_to_pixels((y, x), _sig_unit(cal, u, name))


def _sig_unit(cal: Calibration, unit: str, name: str) -> str:
    """``unit``, after checking the calibration can turn it into its detector unit."""
    own = cal.sig_unit
    if own == PIXELS:
        raise CalibrationError(
            f"{name} is in {unit!r}, but the calibration's detector axes are in pixels: "
            "set the detector pixel size first (ds.calibration = Calibration(sig_step=..., "
            "sig_unit='mrad', beam_centre=(y, x)) or Calibration.from_camera(...))"
        )
    try:
        cal.convert_sig(1.0, unit, own)
    except CalibrationError as e:
        raise CalibrationError(
            f"{name} is in {unit!r}, which this calibration (detector unit {own!r}) "
            f"cannot convert: {e}. Detector masks take an angle (urad, mrad, rad) or a "
            "reciprocal length (1/nm, 1/A, ...); angles and reciprocal lengths convert "
            "into each other only with beam_energy_kev set"
        ) from None
    return unit


def _centre(
    centre: Any,
    unit: str | None,
    calibration: Calibration | None,
    centre_unit: str | None,
) -> Any:
    """The centre in pixels: ``None`` is the calibration's beam centre.

    Checks first that the calibration converts ``unit`` (the lengths' unit),
    so that a unit error is reported before a missing centre.
    """
    if not _in_pixels(unit):
        cal, u = _check_calibration(calibration, unit, "the mask")
        _sig_unit(cal, u, "the mask")
    cu = unit if centre_unit is None else centre_unit
    if centre is None:
        beam_centre = None if calibration is None else getattr(calibration, "beam_centre", None)
        if beam_centre is not None:
            _check_calibration(calibration, PIXELS, "centre")
            return tuple(beam_centre)
        raise ValueError(
            "centre is missing: give centre=(y, x), or calibration= with a beam centre "
            "(Calibration(..., beam_centre=(y, x))) to centre the mask on the beam"
        )
    return position_to_pixels(centre, "centre", cu, calibration)


def _required(value: Any, name: str, call: str) -> Any:
    if value is None:
        raise ValueError(f"{name} is missing: {call}")
    return value


def _physical_rectangle(sig, top, left, height, width, unit, calibration) -> np.ndarray:
    for name, v in (("top", top), ("left", left)):
        check_number(v, name, minimum=None)
    for name, v in (("height", height), ("width", width)):
        if check_number(v, name) <= 0:
            raise ValueError(
                f"height and width must be positive, got height={height!r}, width={width!r}"
            )
    y0, x0 = position_to_pixels((top, left), "(top, left)", unit, calibration)
    y1, x1 = position_to_pixels((top + height, left + width), "(top, left)", unit, calibration)
    # pixel centres i with start <= i < stop; a hair of tolerance for round-off of the unit
    eps = 1e-9
    rows = slice(max(0, math.ceil(y0 - eps)), max(0, math.ceil(y1 - eps)))
    cols = slice(max(0, math.ceil(x0 - eps)), max(0, math.ceil(x1 - eps)))
    mask = np.zeros(sig, dtype=bool)
    mask[rows, cols] = True
    return mask


# --- coordinate maps ------------------------------------------------------------
def radius_map(sig_shape: Sequence[int], centre: Sequence[float]) -> np.ndarray:
    """Distance of every pixel from ``centre = (cy, cx)``, float64 of ``sig_shape``.

    Examples
    --------
    >>> radius_map((1, 3), centre=(0, 0))
    array([[0., 1., 2.]])
    """
    h, w = check_sig_shape(sig_shape)
    cy, cx = check_point(centre, "centre")
    y = np.arange(h, dtype=np.float64)[:, None] - cy
    x = np.arange(w, dtype=np.float64)[None, :] - cx
    return np.hypot(y, x)


def angle_map(sig_shape: Sequence[int], centre: Sequence[float]) -> np.ndarray:
    """Angle of every pixel around ``centre`` in radians, in ``[0, 2 pi)``.

    The angle is ``atan2(y - cy, x - cx)``: 0 along +x (to the right), pi/2
    along +y (downwards in an image shown with the origin at the top).

    Examples
    --------
    >>> np.degrees(angle_map((3, 3), centre=(1, 1))).round()
    array([[225., 270., 315.],
           [180.,   0.,   0.],
           [135.,  90.,  45.]])
    """
    h, w = check_sig_shape(sig_shape)
    cy, cx = check_point(centre, "centre")
    y = np.arange(h, dtype=np.float64)[:, None] - cy
    x = np.arange(w, dtype=np.float64)[None, :] - cx
    return np.mod(np.arctan2(y, x), 2 * np.pi)


# --- factories ------------------------------------------------------------------
def disk(
    sig_shape: Sequence[int],
    centre: Sequence[float] | None = None,
    radius: float | None = None,
    dtype: Any = np.float32,
    *,
    unit: str | None = None,
    calibration: Calibration | None = None,
    centre_unit: str | None = None,
) -> np.ndarray:
    """Pixels within ``radius`` of ``centre = (cy, cx)`` (distance ``<= radius``).

    ``unit``, ``calibration`` and ``centre_unit``: see the module docstring
    (lengths and positions in physical units, ``centre=None`` the beam centre).

    Examples
    --------
    >>> int(disk((9, 9), centre=(4, 4), radius=2).sum())
    13
    >>> from udfwidgets import Calibration
    >>> cal = Calibration(sig_step=0.5, sig_unit="mrad", beam_centre=(4, 4))
    >>> int(disk((9, 9), radius=1.0, unit="mrad", calibration=cal).sum())  # 2 pixels
    13
    """
    r = check_number(_required(radius, "radius", "disk(sig_shape, centre, radius)"), "radius")
    c = _centre(centre, unit, calibration, centre_unit)
    r = length_to_pixels(r, "radius", unit, calibration)
    return _finish(radius_map(sig_shape, c) <= r, dtype)


def ring(*args, **kwargs) -> np.ndarray:
    """Pixels with ``inner < distance <= outer`` from ``centre`` (an annulus).

    ``ring(sig_shape, centre, inner, outer, dtype=np.float32, *, unit=None,
    calibration=None, centre_unit=None)``. A ring with ``inner=a, outer=b``
    plus a disk of radius ``a`` is the disk of radius ``b``: neighbouring
    rings never share a pixel. ``unit``, ``calibration``, ``centre_unit``:
    physical units, see the module docstring.

    LiberTEM's signature works too: ``ring(centerX, centerY, imageSizeX,
    imageSizeY, radius, radius_inner, antialiased=False)`` gives LiberTEM's
    result (a bool mask, or LiberTEM's anti-aliased one-bin
    :func:`radial_bins` with ``antialiased=True``).

    Examples
    --------
    >>> int(ring((9, 9), centre=(4, 4), inner=1, outer=2).sum())
    8
    >>> int(ring(centerX=4, centerY=4, imageSizeX=9, imageSizeY=9, radius=2, radius_inner=1).sum())
    8
    >>> from udfwidgets import Calibration
    >>> cal = Calibration(sig_step=0.5, sig_unit="mrad", beam_centre=(4, 4))
    >>> int(ring((9, 9), inner=0.5, outer=1.0, unit="mrad", calibration=cal).sum())
    8
    """
    if _libertem_style(args, kwargs):
        return _lt_ring(*args, **kwargs)
    return _ring(*args, **kwargs)


def _ring(
    sig_shape: Sequence[int],
    centre: Sequence[float] | None = None,
    inner: float | None = None,
    outer: float | None = None,
    dtype: Any = np.float32,
    *,
    unit: str | None = None,
    calibration: Calibration | None = None,
    centre_unit: str | None = None,
) -> np.ndarray:
    call = "ring(sig_shape, centre, inner, outer)"
    ri = check_number(_required(inner, "inner", call), "inner")
    ro = check_number(_required(outer, "outer", call), "outer")
    if ro <= ri:
        raise ValueError(f"outer must be larger than inner, got inner={inner!r}, outer={outer!r}")
    c = _centre(centre, unit, calibration, centre_unit)
    ri = length_to_pixels(ri, "inner", unit, calibration)
    ro = length_to_pixels(ro, "outer", unit, calibration)
    r = radius_map(sig_shape, c)
    return _finish((r > ri) & (r <= ro), dtype)


#: Another name for :func:`ring`.
annulus = ring


def rectangle(
    sig_shape: Sequence[int],
    top: Any,
    left: Any,
    height: Any,
    width: Any,
    dtype: Any = np.float32,
    *,
    unit: str | None = None,
    calibration: Calibration | None = None,
) -> np.ndarray:
    """Rows ``top:top+height`` and columns ``left:left+width`` (clipped to the frame).

    In pixels the four values are integers. With ``unit`` (and
    ``calibration``) they are physical: ``(top, left)`` a detector position
    relative to the beam centre and ``height``, ``width`` lengths; the mask
    holds the pixels whose centre lies in ``[top, top + height)`` x
    ``[left, left + width)``.

    Examples
    --------
    >>> rectangle((3, 4), top=1, left=1, height=2, width=2, dtype=bool).astype(int)
    array([[0, 0, 0, 0],
           [0, 1, 1, 0],
           [0, 1, 1, 0]])
    >>> from udfwidgets import Calibration
    >>> cal = Calibration(sig_step=0.5, sig_unit="mrad", beam_centre=(1, 1))
    >>> rectangle((3, 4), 0, 0, 1.0, 1.0, unit="mrad", calibration=cal, dtype=bool).astype(int)
    array([[0, 0, 0, 0],
           [0, 1, 1, 0],
           [0, 1, 1, 0]])
    """
    h, w = check_sig_shape(sig_shape)
    if not _in_pixels(unit):
        return _finish(
            _physical_rectangle((h, w), top, left, height, width, unit, calibration), dtype
        )
    vals = {"top": top, "left": left, "height": height, "width": width}
    for name, v in vals.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {v!r}")
    if height < 1 or width < 1:
        raise ValueError(
            f"height and width must be positive, got height={height!r}, width={width!r}"
        )
    mask = np.zeros((h, w), dtype=bool)
    mask[max(0, top) : max(0, top + height), max(0, left) : max(0, left + width)] = True
    return _finish(mask, dtype)


def point(
    sig_shape: Sequence[int],
    y: Any,
    x: Any,
    dtype: Any = np.float32,
    *,
    unit: str | None = None,
    calibration: Calibration | None = None,
) -> np.ndarray:
    """A single pixel ``(y, x)``: applying it picks that pixel's value from every frame.

    With ``unit`` (and ``calibration``), ``(y, x)`` is a physical detector
    position relative to the beam centre and the mask is the nearest pixel.

    Examples
    --------
    >>> point((2, 3), y=1, x=2, dtype=bool).astype(int)
    array([[0, 0, 0],
           [0, 0, 1]])
    >>> from udfwidgets import Calibration
    >>> cal = Calibration(sig_step=0.5, sig_unit="mrad", beam_centre=(0, 0))
    >>> point((2, 3), 0.4, 0.9, unit="mrad", calibration=cal, dtype=bool).astype(int)
    array([[0, 0, 0],
           [0, 0, 1]])
    """
    h, w = check_sig_shape(sig_shape)
    if not _in_pixels(unit):
        py, px = position_to_pixels((y, x), "(y, x)", unit, calibration)
        iy, ix = int(np.floor(py + 0.5)), int(np.floor(px + 0.5))
        if not (0 <= iy < h and 0 <= ix < w):
            raise ValueError(
                f"the point ({y}, {x}) {unit} is pixel ({py:g}, {px:g}), outside the "
                f"frame of shape {(h, w)}"
            )
        y, x = iy, ix
    for name, v, n in (("y", y, h), ("x", x, w)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < n:
            raise ValueError(f"{name} must be an integer pixel index in [0, {n}), got {v!r}")
    mask = np.zeros((h, w), dtype=bool)
    mask[y, x] = True
    return _finish(mask, dtype)


def sector(
    sig_shape: Sequence[int],
    centre: Sequence[float] | None = None,
    start: float | None = None,
    stop: float | None = None,
    inner: float = 0.0,
    outer: float = math.inf,
    dtype: Any = np.float32,
    *,
    unit: str | None = None,
    calibration: Calibration | None = None,
    centre_unit: str | None = None,
) -> np.ndarray:
    """Pixels at angles ``start <= angle < stop`` (degrees) with ``inner <= distance < outer``.

    Angles are those of :func:`angle_map` in degrees, in ``[0, 360)``; a sector
    may wrap around 0 (``start=-60, stop=60`` or ``start=300, stop=420``);
    ``stop`` must be larger than ``start``. The centre pixel itself
    (distance 0) has angle 0. ``unit``, ``calibration``, ``centre_unit``:
    ``inner``, ``outer`` and the centre in physical units (module docstring);
    the angles stay in degrees.

    Examples
    --------
    >>> m = sector((3, 3), centre=(1, 1), start=0, stop=90, inner=0.5, outer=1.2, dtype=bool)
    >>> m.astype(int)
    array([[0, 0, 0],
           [0, 0, 1],
           [0, 0, 0]])
    """
    call = "sector(sig_shape, centre, start, stop)"
    a0 = check_number(_required(start, "start", call), "start", minimum=None)
    a1 = check_number(_required(stop, "stop", call), "stop", minimum=None)
    if a1 <= a0:
        raise ValueError(
            f"stop must be larger than start (degrees; use e.g. start=300, "
            f"stop=420 to wrap around 0), got start={start!r}, stop={stop!r}"
        )
    ri = check_number(inner, "inner")
    ro = check_number(outer, "outer", allow_inf=True)
    if ro <= ri:
        raise ValueError(f"outer must be larger than inner, got inner={inner!r}, outer={outer!r}")
    centre = _centre(centre, unit, calibration, centre_unit)
    ri = length_to_pixels(ri, "inner", unit, calibration)
    ro = length_to_pixels(ro, "outer", unit, calibration)
    span = a1 - a0
    ang = np.degrees(angle_map(sig_shape, centre))
    if span >= 360.0:
        in_angle = np.ones(ang.shape, dtype=bool)
    else:
        in_angle = np.mod(ang - a0, 360.0) < span
    r = radius_map(sig_shape, centre)
    return _finish(in_angle & (r >= ri) & (r < ro), dtype)


def radial_bins(*args, **kwargs) -> np.ndarray:
    """A stack of ``n_bins`` rings of equal width between ``r_min`` and ``r_max``.

    ``radial_bins(sig_shape, centre, n_bins, r_max, r_min=0.0, dtype=np.float32,
    *, unit=None, calibration=None, centre_unit=None)``: bin ``k`` holds the
    pixels with ``edges[k] <= distance < edges[k + 1]``, ``edges =
    np.linspace(r_min, r_max, n_bins + 1)``. Shape ``(n_bins, h, w)``. With
    ``unit``, ``r_min``, ``r_max`` and the centre are physical (module docstring).

    LiberTEM's signature gives LiberTEM's anti-aliased bins:
    ``radial_bins(centerX, centerY, imageSizeX, imageSizeY, radius=None,
    radius_inner=0, n_bins=None, normalize=False, use_sparse=None, dtype=None)``
    (pixel weight ``clip(width / 2 + 0.5 - |r - r_k|, 0, 1)`` around each bin's
    middle radius ``r_k``, neighbouring bins summing to 1; ``use_sparse=True``
    returns a pydata ``sparse.COO`` stack).

    Examples
    --------
    >>> radial_bins((5, 5), centre=(2, 2), n_bins=2, r_max=2).sum(axis=(1, 2))
    array([1., 8.], dtype=float32)
    >>> radial_bins(centerX=2, centerY=2, imageSizeX=5, imageSizeY=5, radius=2, n_bins=2,
    ...             use_sparse=False).shape
    (2, 5, 5)
    """
    if _libertem_style(args, kwargs):
        return _lt_radial_bins(*args, **kwargs)
    return _radial_bins(*args, **kwargs)


def _radial_bins(
    sig_shape: Sequence[int],
    centre: Sequence[float] | None = None,
    n_bins: int | None = None,
    r_max: float | None = None,
    r_min: float = 0.0,
    dtype: Any = np.float32,
    *,
    unit: str | None = None,
    calibration: Calibration | None = None,
    centre_unit: str | None = None,
) -> np.ndarray:
    call = "radial_bins(sig_shape, centre, n_bins, r_max)"
    n = check_positive_int(_required(n_bins, "n_bins", call), "n_bins")
    lo = check_number(r_min, "r_min")
    hi = check_number(_required(r_max, "r_max", call), "r_max")
    if hi <= lo:
        raise ValueError(f"r_max must be larger than r_min, got r_min={r_min!r}, r_max={r_max!r}")
    centre = _centre(centre, unit, calibration, centre_unit)
    lo = length_to_pixels(lo, "r_min", unit, calibration)
    hi = length_to_pixels(hi, "r_max", unit, calibration)
    edges = np.linspace(lo, hi, n + 1)
    r = radius_map(sig_shape, centre)
    stack = (r[None] >= edges[:-1, None, None]) & (r[None] < edges[1:, None, None])
    return _finish(stack, dtype)


def angular_sectors(
    sig_shape: Sequence[int],
    centre: Sequence[float] | None = None,
    n_sectors: int | None = None,
    inner: float = 0.0,
    outer: float = math.inf,
    offset: float = 0.0,
    dtype: Any = np.float32,
    *,
    unit: str | None = None,
    calibration: Calibration | None = None,
    centre_unit: str | None = None,
) -> np.ndarray:
    """A stack of ``n_sectors`` equal sectors covering the full circle, ``(n, h, w)``.

    Sector ``k`` spans ``offset + k * 360 / n`` to ``offset + (k + 1) * 360 / n``
    degrees (see :func:`sector`, also for ``unit``, ``calibration``, ``centre_unit``).

    Examples
    --------
    >>> angular_sectors((3, 3), centre=(1, 1), n_sectors=4, inner=0.5).sum(axis=(1, 2))
    array([2., 2., 2., 2.], dtype=float32)
    """
    call = "angular_sectors(sig_shape, centre, n_sectors)"
    n = check_positive_int(_required(n_sectors, "n_sectors", call), "n_sectors")
    off = check_number(offset, "offset", minimum=None)
    step = 360.0 / n
    return np.stack(
        [
            sector(
                sig_shape,
                centre,
                off + k * step,
                off + (k + 1) * step,
                inner=inner,
                outer=outer,
                dtype=dtype,
                unit=unit,
                calibration=calibration,
                centre_unit=centre_unit,
            )
            for k in range(n)
        ]
    )


# --- LiberTEM's signatures ---------------------------------------------------------
def circular(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float,
    antialiased: bool = False,
) -> np.ndarray:
    """LiberTEM's disk: bool ``(imageSizeY, imageSizeX)``, pixels with distance ``<= radius``.

    Same pixels as :func:`disk` ``((imageSizeY, imageSizeX), (centerY, centerX), radius)``;
    ``antialiased=True`` gives the one-bin anti-aliased :func:`radial_bins` instead.

    Examples
    --------
    >>> m = circular(centerX=4, centerY=4, imageSizeX=9, imageSizeY=9, radius=2)
    >>> m.dtype, int(m.sum())
    (dtype('bool'), 13)
    """
    if antialiased:
        return _lt_radial_bins(
            centerX, centerY, imageSizeX, imageSizeY, radius=radius, n_bins=1, use_sparse=False
        )[0]
    shape = check_sig_shape((imageSizeY, imageSizeX))
    return radius_map(shape, (centerY, centerX)) <= check_number(radius, "radius")


def _lt_ring(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float,
    radius_inner: float,
    antialiased: bool = False,
) -> np.ndarray:
    if antialiased:
        return _lt_radial_bins(
            centerX,
            centerY,
            imageSizeX,
            imageSizeY,
            radius=radius,
            radius_inner=radius_inner,
            n_bins=1,
            use_sparse=False,
        )[0]
    outer = circular(centerX, centerY, imageSizeX, imageSizeY, radius)
    return outer & ~circular(centerX, centerY, imageSizeX, imageSizeY, radius_inner)


def rectangular(
    X: int, Y: int, Width: int, Height: int, imageSizeX: int, imageSizeY: int
) -> np.ndarray:
    """LiberTEM's rectangle: bool ``(imageSizeY, imageSizeX)``, corner ``(X, Y)``.

    ``Width`` and ``Height`` may be negative (the rectangle then extends left
    or up from the corner); clipped to the frame.

    Examples
    --------
    >>> rectangular(X=1, Y=0, Width=2, Height=1, imageSizeX=4, imageSizeY=2).astype(int)
    array([[0, 1, 1, 0],
           [0, 0, 0, 0]])
    """
    h, w = check_sig_shape((imageSizeY, imageSizeX))
    mask = np.zeros((h, w), dtype=bool)
    y0, y1 = sorted((int(Y), int(Y) + int(Height)))
    x0, x1 = sorted((int(X), int(X) + int(Width)))
    mask[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
    return mask


def _lt_radial_bins(
    centerX,
    centerY,
    imageSizeX,
    imageSizeY,
    radius=None,
    radius_inner=0,
    n_bins=None,
    normalize=False,
    use_sparse=None,
    dtype=None,
):
    h, w = check_sig_shape((imageSizeY, imageSizeX))
    r = radius_map((h, w), (centerY, centerX))
    if radius is None:  # reach the farthest corner
        radius = float(r.max())
    if n_bins is None:
        n_bins = int(np.round(radius - radius_inner))
    n_bins = check_positive_int(n_bins, "n_bins")
    width = (radius - radius_inner) / n_bins
    middles = radius_inner + width / 2 + width * np.arange(n_bins)
    stack = np.clip(width / 2 + 0.5 - np.abs(r[None] - middles[:, None, None]), 0, 1)
    cy, cx = int(np.round(centerY)), int(np.round(centerX))
    if radius_inner < 0.5 and 0 <= cy < h and 0 <= cx < w:
        stack[0, cy, cx] = 1 - radius_inner  # the centre pixel belongs to the first bin
    if normalize:
        sums = stack.sum(axis=(1, 2), keepdims=True)
        stack = np.divide(stack, sums, out=stack, where=~np.isclose(sums, 0))
    if dtype is not None:
        stack = stack.astype(dtype)
    if use_sparse is None:
        bin_area = np.pi * (radius**2 - (radius - width) ** 2)
        use_sparse = bin_area / (h * w) < 0.1
    if use_sparse:
        import sparse

        return sparse.COO.from_numpy(stack)
    return stack


# --- sparse masks (optional SciPy) ------------------------------------------------
def is_sparse(obj: Any) -> bool:
    """True if ``obj`` is a ``scipy.sparse`` matrix or array.

    Never imports SciPy: a sparse object can only exist if SciPy was imported.

    Examples
    --------
    >>> is_sparse(np.zeros((2, 2)))
    False
    """
    sp = sys.modules.get("scipy.sparse")
    return sp is not None and bool(sp.issparse(obj))


def _import_scipy_sparse():
    try:
        import scipy.sparse as sp
    except ImportError:
        raise ImportError(
            "sparse masks need SciPy, which is optional for udfwidgets: "
            "`pip install scipy`, or use dense masks"
        ) from None
    return sp


def to_sparse(mask: Any) -> Any:
    """A mask ``(h, w)`` or stack ``(n, h, w)`` as a ``scipy.sparse`` CSR matrix ``(n, h * w)``.

    Needs SciPy (imported only here). This is the layout
    :class:`~udfwidgets.udf.masks.ApplyMasksUDF` uses internally for sparse masks.

    Examples
    --------
    >>> m = to_sparse(disk((64, 64), centre=(32, 32), radius=3))  # doctest: +SKIP
    >>> m.shape, m.nnz  # doctest: +SKIP
    ((1, 4096), 29)
    """
    sp = _import_scipy_sparse()
    if sp.issparse(mask):
        return sp.csr_matrix(mask)
    arr = np.asarray(mask)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"mask must have shape (h, w) or (n, h, w), got {arr.shape}")
    return sp.csr_matrix(arr.reshape(arr.shape[0], -1))
