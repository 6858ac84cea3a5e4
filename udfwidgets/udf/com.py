"""Centre of mass of every frame, its shift field and the field's derived maps."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..masks import check_number, disk
from .base import UDF
from ._products import float32_product, pixel_span
from .stddev import check_float_dtype, working_dtype

__all__ = ["CoMUDF", "fit_linear_field", "divergence_curl"]

REGRESSIONS = {0: "none", 1: "linear"}


def fit_linear_field(field: np.ndarray) -> np.ndarray:
    """Least-squares plane through each component of a vector field over the scan.

    ``field`` has shape ``nav_shape + (2,)``; positions holding NaN are left
    out. Returns coefficients ``(1 + nav_dims, 2)``: row 0 the offset, row
    ``1 + d`` the slope along nav axis ``d`` (per component). Rows are NaN
    when no position is finite. When the finite positions do not determine
    all slopes (e.g. a single scan row), the minimum-norm solution is used.

    Examples
    --------
    >>> y, x = np.mgrid[0:3, 0:4]
    >>> field = np.stack([1 + 0.5 * y, 2 - 0.25 * x], axis=-1).astype(float)
    >>> fit_linear_field(field).round(6) + 0.0  # + 0.0 turns -0. into 0.
    array([[ 1.  ,  2.  ],
           [ 0.5 ,  0.  ],
           [ 0.  , -0.25]])
    """
    nav_shape = field.shape[:-1]
    coords = np.indices(nav_shape).reshape(len(nav_shape), -1).T.astype(np.float64)
    values = field.reshape(-1, field.shape[-1])
    ok = np.isfinite(values).all(axis=1)
    coef = np.full((1 + len(nav_shape), field.shape[-1]), np.nan)
    if ok.any():
        design = np.column_stack([np.ones(int(ok.sum())), coords[ok]])
        coef[:] = np.linalg.lstsq(design, values[ok], rcond=None)[0]
    return coef


def _derivative(f: np.ndarray, axis: int) -> np.ndarray:
    """Central differences along ``axis`` (one-sided at the ends); 0 for a length-1 axis."""
    if f.shape[axis] < 2:
        return np.zeros_like(f)
    return np.gradient(f, axis=axis)


def divergence_curl(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Divergence and curl of a field ``(ny, nx, 2)`` holding ``(F_y, F_x)``.

    ``divergence = dF_y/dy + dF_x/dx`` and ``curl = dF_y/dx - dF_x/dy``, with
    derivatives by central differences over the scan grid (unit spacing,
    one-sided at the borders, ``np.gradient``). NaN entries (positions
    outside the roi) make their neighbours' derivatives NaN; an axis of
    length 1 contributes 0.

    Examples
    --------
    >>> y, x = np.mgrid[0:3, 0:3].astype(float)
    >>> div, curl = divergence_curl(np.stack([y, x], axis=-1))  # F = r: div 2, curl 0
    >>> float(div[1, 1]), float(curl[1, 1])
    (2.0, 0.0)
    """
    fy, fx = field[..., 0], field[..., 1]
    div = _derivative(fy, 0) + _derivative(fx, 1)
    curl = _derivative(fy, 1) - _derivative(fx, 0)
    return div, curl


class CoMUDF(UDF):
    """Centre of mass (CoM) of each frame, inside an optional disk, and its shift field.

    For every frame the intensity-weighted mean pixel position ``(y, x)`` is
    computed over the pixels within ``r`` of ``(cy, cx)`` (the whole frame when
    ``r`` is None): one matrix product per tile. ``get_results`` then derives
    the shift field and its maps.

    Result buffers (all float64):

    ``raw_com`` (nav, extra ``(2,)``)
        ``(y, x)`` centre of mass in pixels; NaN for a frame whose masked
        intensity sums to 0.
    ``raw_shifts`` (nav, ``(2,)``)
        ``raw_com - (cy, cx)``.
    ``field`` (nav, ``(2,)``)
        The shifts after the regression correction, then flipped and rotated
        into scan coordinates (``flip_y``, ``scan_rotation``); equal to
        ``raw_shifts`` with the defaults.
    ``magnitude`` (nav)
        ``|field|``.
    ``divergence``, ``curl`` (nav)
        ``dF_y/dy + dF_x/dx`` and ``dF_y/dx - dF_x/dy`` over a 2D scan
        (see :func:`divergence_curl`); NaN next to positions outside the roi,
        and everywhere for scans that are not 2D.
    ``regression_coefficients`` (single, ``(1 + nav_dims, 2)``)
        The fitted offset and slopes per nav axis of ``raw_shifts`` (detector
        axes, before flip and rotation) for ``(y, x)`` (zeros for
        ``regression=0``; see :func:`fit_linear_field`).

    Parameters
    ----------
    cy, cx : float, optional
        Centre of the mask and reference point of the shifts, in pixels;
        default the middle of the frame, ``((h - 1) / 2, (w - 1) / 2)``.
    r : float, optional
        Radius of the disk the CoM is computed in; None (default) for the
        whole frame.
    regression : {0, 1}
        0: no correction. 1: subtract a least-squares linear fit of the shifts
        over the scan position (removes descan and a constant offset), fitted
        over the frames processed (the roi). Note that LiberTEM numbers its
        regression options differently.
    flip_y : bool
        Negate the y component of the shifts (detector y axis flipped with
        respect to the scan's).
    scan_rotation : float
        Angle in degrees from the detector axes to the scan axes: after the
        flip, ``(y, x)`` becomes ``(sin(a) x + cos(a) y, cos(a) x - sin(a) y)``.
    dtype : numpy float dtype or None
        Working precision of the product: None (default) for float32 on
        float32 and up-to-16-bit integer data and float64 otherwise, or
        ``np.float64`` to force double precision.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.com import CoMUDF
    >>> data = np.zeros((1, 2, 5, 5), dtype=np.float32)
    >>> data[0, 0, 2, 3] = 1  # a spot one pixel right of the centre
    >>> data[0, 1, 1, 2] = 1  # ... one pixel above it
    >>> ctx = Context(executor="inline")
    >>> res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=CoMUDF(r=2))
    >>> res["raw_shifts"].data
    array([[[ 0.,  1.],
            [-1.,  0.]]])
    """

    def __init__(self, cy: float | None = None, cx: float | None = None, r: float | None = None,
                 regression: int = 0, flip_y: bool = False, scan_rotation: float = 0.0,
                 dtype=None):
        for name, v in (("cy", cy), ("cx", cx)):
            if v is not None:
                check_number(v, name, minimum=None)
        if r is not None and check_number(r, "r") <= 0:
            raise ValueError(f"r must be a positive radius in pixels or None, got {r!r}")
        if isinstance(regression, bool) or regression not in REGRESSIONS:
            raise ValueError(f"regression must be 0 (none) or 1 (subtract a linear fit), "
                             f"got {regression!r}")
        if not isinstance(flip_y, (bool, np.bool_)):
            raise ValueError(f"flip_y must be True or False, got {flip_y!r}")
        check_number(scan_rotation, "scan_rotation", minimum=None)
        check_float_dtype(dtype)
        super().__init__(cy=cy, cx=cx, r=r, regression=regression, flip_y=flip_y,
                         scan_rotation=scan_rotation, dtype=dtype)

    def _centre(self) -> tuple[float, float]:
        h, w = tuple(self.meta.dataset_shape.sig)
        cy = (h - 1) / 2 if self.params.cy is None else float(self.params.cy)
        cx = (w - 1) / 2 if self.params.cx is None else float(self.params.cx)
        return cy, cx

    def get_result_buffers(self):
        sig = tuple(self.meta.dataset_shape.sig)
        if len(sig) != 2:
            raise ValueError(f"CoMUDF needs 2D frames (sig_dims=2), got signal shape {sig}")
        nav_dims = len(tuple(self.meta.dataset_shape.nav))
        f8 = "float64"
        yx = [("component", ["y", "x"])]
        return {
            "raw_com": self.buffer(kind="nav", extra_shape=(2,), dtype=f8, axes=yx),
            "raw_shifts": self.buffer(kind="nav", extra_shape=(2,), dtype=f8, use="result_only",
                                      axes=yx),
            "field": self.buffer(kind="nav", extra_shape=(2,), dtype=f8, use="result_only",
                                 axes=yx),
            "magnitude": self.buffer(kind="nav", dtype=f8, use="result_only"),
            "divergence": self.buffer(kind="nav", dtype=f8, use="result_only"),
            "curl": self.buffer(kind="nav", dtype=f8, use="result_only"),
            "regression_coefficients": self.buffer(
                kind="single", extra_shape=(1 + nav_dims, 2), dtype=f8, use="result_only",
                axes=[("term", ["offset"] + [f"slope_{i}" for i in range(nav_dims)]),
                      ("component", ["y", "x"])]),
        }

    def get_preferred_input_dtype(self):
        # frames come as stored: process_tile converts only the pixels the disk covers
        return self.USE_NATIVE_DTYPE

    def get_tiling_preferences(self) -> dict[str, Any]:
        # one matrix product per tile: BLAS is faster per frame on more rows
        return {"total_size": 4 << 20}

    def get_task_data(self) -> dict[str, Any]:
        sig = tuple(self.meta.dataset_shape.sig)
        cy, cx = self._centre()
        if self.params.r is None:
            mask = np.ones(sig)
        else:
            mask = disk(sig, (cy, cx), self.params.r, dtype=np.float64)
        # coordinates relative to the centre keep the weighted sums small (float32 work)
        y, x = np.indices(sig, dtype=np.float64)
        weights = np.stack([mask, mask * (y - cy), mask * (x - cx)], axis=-1).reshape(-1, 3)
        # only the pixels from the mask's first to its last non-zero one take part
        start, stop = pixel_span(weights)
        work = working_dtype(self.meta.input_dtype, self.params.dtype)
        return {"span": (start, stop), "weights": weights[start:stop].astype(work),
                "centre": np.array([cy, cx])}

    def process_tile(self, tile):
        td = self.task_data
        start, stop = td.span
        n = tile.shape[0]
        flat = tile.reshape(n, -1)[:, start:stop]
        if td.weights.dtype == np.float64:
            sums = flat.astype(np.float64, copy=False) @ td.weights
        else:
            sums = float32_product(flat, td.weights)
        # sums: total, sum(I*(y - cy)), sum(I*(x - cx))
        with np.errstate(divide="ignore", invalid="ignore"):
            com = sums[:, 1:] / sums[:, :1]
        com += td.centre
        com[sums[:, 0] == 0] = np.nan
        self.results.raw_com[:] = com

    def _to_scan_axes(self, field: np.ndarray) -> np.ndarray:
        y, x = field[..., 0], field[..., 1]
        if self.params.flip_y:
            y = -y
        a = np.radians(float(self.params.scan_rotation))
        if a == 0:
            return np.stack([y, x], axis=-1)
        return np.stack([np.sin(a) * x + np.cos(a) * y, np.cos(a) * x - np.sin(a) * y], axis=-1)

    def get_results(self):
        raw_com = np.asarray(self.results.raw_com, dtype=np.float64)
        nav_shape = raw_com.shape[:-1]
        shifts = raw_com - np.array(self._centre())
        if self.params.regression == 1:
            coef = fit_linear_field(shifts)
            coords = np.indices(nav_shape, dtype=np.float64)
            fit = coef[0] + np.tensordot(np.moveaxis(coords, 0, -1), coef[1:], axes=1)
            field = shifts - fit if np.isfinite(coef).all() else shifts.copy()
        else:
            coef = np.zeros((1 + len(nav_shape), 2))
            field = shifts.copy()
        field = self._to_scan_axes(field)
        if len(nav_shape) == 2:
            div, curl = divergence_curl(field)
        else:
            div = curl = np.full(nav_shape, np.nan)
        return {"raw_com": raw_com, "raw_shifts": shifts, "field": field,
                "magnitude": np.hypot(field[..., 0], field[..., 1]), "divergence": div,
                "curl": curl, "regression_coefficients": coef}
