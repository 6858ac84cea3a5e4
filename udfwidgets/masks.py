"""Masks over the signal (detector) plane: disks, rings, rectangles, points, sectors.

Every factory takes the signal shape ``(height, width)`` first and returns a
NumPy array of that shape, ``float32`` by default (``dtype=bool`` gives a bool
mask). Coordinates are pixel indices: ``y`` is the row, ``x`` the column, and
a pixel belongs to a shape when its *centre* (its integer index) does.

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
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

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
    return dims  # type: ignore[return-value]


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
    sig_shape: Sequence[int], centre: Sequence[float], radius: float, dtype: Any = np.float32
) -> np.ndarray:
    """Pixels within ``radius`` of ``centre = (cy, cx)`` (distance ``<= radius``).

    Examples
    --------
    >>> int(disk((9, 9), centre=(4, 4), radius=2).sum())
    13
    """
    r = check_number(radius, "radius")
    return _finish(radius_map(sig_shape, centre) <= r, dtype)


def ring(*args, **kwargs) -> np.ndarray:
    """Pixels with ``inner < distance <= outer`` from ``centre`` (an annulus).

    ``ring(sig_shape, centre, inner, outer, dtype=np.float32)``. A ring with
    ``inner=a, outer=b`` plus a disk of radius ``a`` is the disk of radius
    ``b``: neighbouring rings never share a pixel.

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
    """
    if _libertem_style(args, kwargs):
        return _lt_ring(*args, **kwargs)
    return _ring(*args, **kwargs)


def _ring(
    sig_shape: Sequence[int],
    centre: Sequence[float],
    inner: float,
    outer: float,
    dtype: Any = np.float32,
) -> np.ndarray:
    ri = check_number(inner, "inner")
    ro = check_number(outer, "outer")
    if ro <= ri:
        raise ValueError(f"outer must be larger than inner, got inner={inner!r}, outer={outer!r}")
    r = radius_map(sig_shape, centre)
    return _finish((r > ri) & (r <= ro), dtype)


#: Another name for :func:`ring`.
annulus = ring


def rectangle(
    sig_shape: Sequence[int], top: int, left: int, height: int, width: int, dtype: Any = np.float32
) -> np.ndarray:
    """Rows ``top:top+height`` and columns ``left:left+width`` (clipped to the frame).

    Examples
    --------
    >>> rectangle((3, 4), top=1, left=1, height=2, width=2, dtype=bool).astype(int)
    array([[0, 0, 0, 0],
           [0, 1, 1, 0],
           [0, 1, 1, 0]])
    """
    h, w = check_sig_shape(sig_shape)
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


def point(sig_shape: Sequence[int], y: int, x: int, dtype: Any = np.float32) -> np.ndarray:
    """A single pixel ``(y, x)``: applying it picks that pixel's value from every frame.

    Examples
    --------
    >>> point((2, 3), y=1, x=2, dtype=bool).astype(int)
    array([[0, 0, 0],
           [0, 0, 1]])
    """
    h, w = check_sig_shape(sig_shape)
    for name, v, n in (("y", y, h), ("x", x, w)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < n:
            raise ValueError(f"{name} must be an integer pixel index in [0, {n}), got {v!r}")
    mask = np.zeros((h, w), dtype=bool)
    mask[y, x] = True
    return _finish(mask, dtype)


def sector(
    sig_shape: Sequence[int],
    centre: Sequence[float],
    start: float,
    stop: float,
    inner: float = 0.0,
    outer: float = math.inf,
    dtype: Any = np.float32,
) -> np.ndarray:
    """Pixels at angles ``start <= angle < stop`` (degrees) with ``inner <= distance < outer``.

    Angles are those of :func:`angle_map` in degrees, in ``[0, 360)``; a sector
    may wrap around 0 (``start=-60, stop=60`` or ``start=300, stop=420``);
    ``stop`` must be larger than ``start``. The centre pixel itself
    (distance 0) has angle 0.

    Examples
    --------
    >>> m = sector((3, 3), centre=(1, 1), start=0, stop=90, inner=0.5, outer=1.2, dtype=bool)
    >>> m.astype(int)
    array([[0, 0, 0],
           [0, 0, 1],
           [0, 0, 0]])
    """
    a0 = check_number(start, "start", minimum=None)
    a1 = check_number(stop, "stop", minimum=None)
    if a1 <= a0:
        raise ValueError(
            f"stop must be larger than start (degrees; use e.g. start=300, "
            f"stop=420 to wrap around 0), got start={start!r}, stop={stop!r}"
        )
    ri = check_number(inner, "inner")
    ro = check_number(outer, "outer", allow_inf=True)
    if ro <= ri:
        raise ValueError(f"outer must be larger than inner, got inner={inner!r}, outer={outer!r}")
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

    ``radial_bins(sig_shape, centre, n_bins, r_max, r_min=0.0, dtype=np.float32)``:
    bin ``k`` holds the pixels with ``edges[k] <= distance < edges[k + 1]``,
    ``edges = np.linspace(r_min, r_max, n_bins + 1)``. Shape ``(n_bins, h, w)``.

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
    centre: Sequence[float],
    n_bins: int,
    r_max: float,
    r_min: float = 0.0,
    dtype: Any = np.float32,
) -> np.ndarray:
    n = check_positive_int(n_bins, "n_bins")
    lo = check_number(r_min, "r_min")
    hi = check_number(r_max, "r_max")
    if hi <= lo:
        raise ValueError(f"r_max must be larger than r_min, got r_min={r_min!r}, r_max={r_max!r}")
    edges = np.linspace(lo, hi, n + 1)
    r = radius_map(sig_shape, centre)
    stack = (r[None] >= edges[:-1, None, None]) & (r[None] < edges[1:, None, None])
    return _finish(stack, dtype)


def angular_sectors(
    sig_shape: Sequence[int],
    centre: Sequence[float],
    n_sectors: int,
    inner: float = 0.0,
    outer: float = math.inf,
    offset: float = 0.0,
    dtype: Any = np.float32,
) -> np.ndarray:
    """A stack of ``n_sectors`` equal sectors covering the full circle, ``(n, h, w)``.

    Sector ``k`` spans ``offset + k * 360 / n`` to ``offset + (k + 1) * 360 / n``
    degrees (see :func:`sector`).

    Examples
    --------
    >>> angular_sectors((3, 3), centre=(1, 1), n_sectors=4, inner=0.5).sum(axis=(1, 2))
    array([2., 2., 2., 2.], dtype=float32)
    """
    n = check_positive_int(n_sectors, "n_sectors")
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
