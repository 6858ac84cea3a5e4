"""Masks from shapes drawn on an image, evaluated at pixel centres.

Coordinates follow matplotlib's ``imshow`` defaults: ``x`` is the column,
``y`` the row, and the centre of pixel ``[row, col]`` sits at ``(x=col, y=row)``.
A pixel belongs to a shape when its centre lies inside it (edges included
for rectangles, ellipses and disks).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["rectangle_mask", "ellipse_mask", "disk_mask", "ring_mask", "polygon_mask",
           "point_mask", "check_shape"]


def check_shape(shape) -> tuple[int, int]:
    """Return ``shape`` as a tuple of two positive ints, or raise a ValueError that says why."""
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise ValueError(f"shape must be a tuple of two ints (rows, columns), "
                         f"got {shape!r}") from None
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be two positive ints (rows, columns), got {shape!r}: "
                         "the selectors work on 2D images")
    return shape


def _grid(shape):
    rows, cols = check_shape(shape)
    return np.arange(rows, dtype=np.float64)[:, None], np.arange(cols, dtype=np.float64)[None, :]


def rectangle_mask(shape, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Pixels whose centres lie in the rectangle with corners ``(x0, y0)`` and ``(x1, y1)``.

    Examples
    --------
    >>> rectangle_mask((3, 4), 0.5, 0, 2, 1).astype(int)
    array([[0, 1, 1, 0],
           [0, 1, 1, 0],
           [0, 0, 0, 0]])
    """
    y, x = _grid(shape)
    xlo, xhi = sorted((float(x0), float(x1)))
    ylo, yhi = sorted((float(y0), float(y1)))
    return (x >= xlo) & (x <= xhi) & (y >= ylo) & (y <= yhi)


def ellipse_mask(shape, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """Pixels whose centres lie in the axis-aligned ellipse centred at ``(cx, cy)``.

    Examples
    --------
    >>> ellipse_mask((3, 5), 2, 1, 2, 1).astype(int)
    array([[0, 0, 1, 0, 0],
           [1, 1, 1, 1, 1],
           [0, 0, 1, 0, 0]])
    """
    if rx <= 0 or ry <= 0:
        raise ValueError(f"ellipse radii must be positive, got rx={rx}, ry={ry}")
    y, x = _grid(shape)
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


def disk_mask(shape, cx: float, cy: float, r: float) -> np.ndarray:
    """Pixels whose centres lie within distance ``r`` of ``(cx, cy)``.

    Examples
    --------
    >>> disk_mask((3, 3), 1, 1, 1).astype(int)
    array([[0, 1, 0],
           [1, 1, 1],
           [0, 1, 0]])
    """
    if r < 0:
        raise ValueError(f"disk radius must be >= 0, got r={r}")
    y, x = _grid(shape)
    return (x - cx) ** 2 + (y - cy) ** 2 <= float(r) ** 2


def ring_mask(shape, cx: float, cy: float, r_inner: float, r_outer: float) -> np.ndarray:
    """The disk of radius ``r_outer`` without the disk of radius ``r_inner``.

    Examples
    --------
    >>> ring_mask((3, 3), 1, 1, 0.5, 1).astype(int)
    array([[0, 1, 0],
           [1, 0, 1],
           [0, 1, 0]])
    """
    if not 0 <= r_inner < r_outer:
        raise ValueError(f"ring radii must satisfy 0 <= r_inner < r_outer, got "
                         f"r_inner={r_inner}, r_outer={r_outer}")
    return disk_mask(shape, cx, cy, r_outer) & ~disk_mask(shape, cx, cy, r_inner)


def polygon_mask(shape, vertices: Sequence[Sequence[float]]) -> np.ndarray:
    """Pixels whose centres lie inside the polygon (or lasso path) through ``vertices``.

    ``vertices`` is a sequence of ``(x, y)`` points; the polygon is closed
    automatically. Uses :meth:`matplotlib.path.Path.contains_points`.

    Examples
    --------
    >>> polygon_mask((3, 3), [(-0.5, -0.5), (2.2, -0.5), (-0.5, 2.2)]).astype(int)
    array([[1, 1, 0],
           [1, 0, 0],
           [0, 0, 0]])
    """
    from matplotlib.path import Path

    verts = np.asarray(vertices, dtype=np.float64)
    if verts.ndim != 2 or verts.shape[1] != 2 or len(verts) < 3:
        raise ValueError(f"vertices must be at least 3 (x, y) points, got an array of shape "
                         f"{verts.shape}")
    rows, cols = check_shape(shape)
    yy, xx = np.mgrid[:rows, :cols]
    centres = np.column_stack([xx.ravel(), yy.ravel()]).astype(np.float64)
    return Path(verts).contains_points(centres).reshape(rows, cols)


def point_mask(shape, x: float, y: float) -> np.ndarray:
    """The single pixel that contains the point ``(x, y)``.

    Examples
    --------
    >>> np.argwhere(point_mask((3, 4), 2.2, 0.9))
    array([[1, 2]])
    """
    rows, cols = check_shape(shape)
    col, row = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
    if not (0 <= row < rows and 0 <= col < cols):
        raise ValueError(f"point (x={x}, y={y}) lies outside the image of shape {(rows, cols)}")
    mask = np.zeros((rows, cols), dtype=bool)
    mask[row, col] = True
    return mask
