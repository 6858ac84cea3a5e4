"""The shapes the selectors draw, as bool masks, in the convention of :mod:`udfwidgets.masks`.

Disks, rings, rectangles and points *are* :mod:`udfwidgets.masks`
(``centre=(y, x)``, ``y`` the row and ``x`` the column; a pixel belongs to a
shape when its centre does): a detector drawn with the mouse is exactly the
mask the same numbers give in code. This module adds only what ``masks`` has
no factory for (axis-aligned ellipses, polygons) and the conversion of a
dragged box (float corners) to pixel rows and columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ... import masks

__all__ = ["check_shape", "disk", "ring", "rectangle", "box", "ellipse", "polygon", "point"]


def check_shape(shape) -> tuple[int, int]:
    """Return ``shape`` as a tuple of two positive ints, or raise a ValueError that says why.

    Examples
    --------
    >>> check_shape([3, 4])
    (3, 4)
    """
    try:
        return masks.check_sig_shape(shape, "shape")
    except ValueError:
        raise ValueError(
            f"shape must be two positive ints (rows, columns), got {shape!r}: "
            "the selectors work on 2D images"
        ) from None


def disk(shape, centre: Sequence[float], radius: float) -> np.ndarray:
    """:func:`udfwidgets.masks.disk` as a bool mask.

    Examples
    --------
    >>> disk((3, 3), (1, 1), 1).astype(int)
    array([[0, 1, 0],
           [1, 1, 1],
           [0, 1, 0]])
    """
    return masks.disk(check_shape(shape), centre=centre, radius=radius, dtype=bool)


def ring(shape, centre: Sequence[float], inner: float, outer: float) -> np.ndarray:
    """:func:`udfwidgets.masks.ring` (``inner < distance <= outer``) as a bool mask.

    Examples
    --------
    >>> ring((3, 3), (1, 1), 0.5, 1).astype(int)
    array([[0, 1, 0],
           [1, 0, 1],
           [0, 1, 0]])
    """
    return masks.ring(check_shape(shape), centre=centre, inner=inner, outer=outer, dtype=bool)


def rectangle(shape, top: int, left: int, height: int, width: int) -> np.ndarray:
    """:func:`udfwidgets.masks.rectangle` (rows ``top:top+height``, columns ``left:left+width``).

    Examples
    --------
    >>> rectangle((3, 4), 0, 1, 2, 2).astype(int)
    array([[0, 1, 1, 0],
           [0, 1, 1, 0],
           [0, 0, 0, 0]])
    """
    return masks.rectangle(
        check_shape(shape),
        top=int(top),
        left=int(left),
        height=int(height),
        width=int(width),
        dtype=bool,
    )


def box(shape, y0: float, x0: float, y1: float, x1: float) -> np.ndarray:
    """The pixels whose centres lie in the box with float corners ``(y0, x0)``, ``(y1, x1)``.

    What a dragged rectangle selects (edges included); empty when no pixel
    centre lies inside.

    Examples
    --------
    >>> box((3, 4), 0, 0.5, 1, 2).astype(int)
    array([[0, 1, 1, 0],
           [0, 1, 1, 0],
           [0, 0, 0, 0]])
    """
    rows, cols = check_shape(shape)
    ylo, yhi = sorted((float(y0), float(y1)))
    xlo, xhi = sorted((float(x0), float(x1)))
    top, left = max(0, math.ceil(ylo)), max(0, math.ceil(xlo))
    bottom, right = min(rows - 1, math.floor(yhi)), min(cols - 1, math.floor(xhi))
    if bottom < top or right < left:
        return np.zeros((rows, cols), dtype=bool)
    return rectangle((rows, cols), top, left, bottom - top + 1, right - left + 1)


def ellipse(shape, centre: Sequence[float], radii: Sequence[float]) -> np.ndarray:
    """The axis-aligned ellipse around ``centre = (y, x)`` with ``radii = (ry, rx)``.

    Examples
    --------
    >>> ellipse((3, 5), (1, 2), (1, 2)).astype(int)
    array([[0, 0, 1, 0, 0],
           [1, 1, 1, 1, 1],
           [0, 0, 1, 0, 0]])
    """
    rows, cols = check_shape(shape)
    cy, cx = masks.check_point(centre, "centre")
    ry, rx = (float(r) for r in radii)
    if not (ry > 0 and rx > 0):
        raise ValueError(f"ellipse radii (ry, rx) must be positive, got {tuple(radii)!r}")
    y = np.arange(rows, dtype=np.float64)[:, None]
    x = np.arange(cols, dtype=np.float64)[None, :]
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def polygon(shape, vertices: Sequence[Sequence[float]]) -> np.ndarray:
    """Pixels whose centres lie inside the polygon through ``vertices``, ``(y, x)`` points.

    Closed automatically; uses :meth:`matplotlib.path.Path.contains_points`.

    Examples
    --------
    >>> polygon((3, 3), [(-0.5, -0.5), (-0.5, 2.2), (2.2, -0.5)]).astype(int)
    array([[1, 1, 0],
           [1, 0, 0],
           [0, 0, 0]])
    """
    from matplotlib.path import Path

    verts = np.asarray(vertices, dtype=np.float64)
    if verts.ndim != 2 or verts.shape[1] != 2 or len(verts) < 3:
        raise ValueError(
            f"vertices must be at least 3 (y, x) points, got an array of shape {verts.shape}"
        )
    rows, cols = check_shape(shape)
    yy, xx = np.mgrid[:rows, :cols]
    centres = np.column_stack([yy.ravel(), xx.ravel()]).astype(np.float64)
    return Path(verts).contains_points(centres).reshape(rows, cols)


def point(shape, y: float, x: float) -> np.ndarray:
    """The single pixel that contains the point ``(y, x)`` (:func:`udfwidgets.masks.point`).

    Examples
    --------
    >>> np.argwhere(point((3, 4), 0.9, 2.2))
    array([[1, 2]])
    """
    rows, cols = check_shape(shape)
    row, col = int(np.floor(float(y) + 0.5)), int(np.floor(float(x) + 0.5))
    if not (0 <= row < rows and 0 <= col < cols):
        raise ValueError(f"point (y={y}, x={x}) lies outside the image of shape {(rows, cols)}")
    return masks.point((rows, cols), y=row, x=col, dtype=bool)
