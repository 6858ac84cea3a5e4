"""Centre of mass of every frame, its shift field and the field's derived maps."""

from __future__ import annotations

import enum
import functools
from typing import Any, NamedTuple

import numpy as np

from ..masks import check_number, disk, radius_map
from ._products import float32_product, get_kernel, pack_weights, pixel_span
from .base import UDF
from .stddev import check_float_dtype, working_dtype

__all__ = ["CoMUDF", "CoMParams", "RegressionOptions", "fit_linear_field", "divergence_curl"]

REGRESSIONS = {0: "none", 1: "linear"}


class RegressionOptions(enum.IntEnum):
    """LiberTEM's numbering of ``regression`` (used with :class:`CoMParams` and
    :meth:`CoMUDF.with_params`; our own ``CoMUDF(regression=...)`` keyword
    numbers 0 = none, 1 = linear).

    Examples
    --------
    A spot that moves one pixel right per scan position, with each option:

    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> data = np.zeros((1, 3, 5, 5))
    >>> for x in range(3):
    ...     data[0, x, 2, 2 + x] = 1
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("memory", data=data)
    >>> for option in RegressionOptions:
    ...     udf = CoMUDF.with_params(cy=2, cx=2, regression=option)
    ...     field_x = ctx.run_udf(dataset=ds, udf=udf)["field_x"].data
    ...     print(option.name, int(option), (np.round(field_x, 6) + 0.0).tolist())
    NO_REGRESSION -1 [[0.0, 1.0, 2.0]]
    SUBTRACT_MEAN 0 [[-1.0, 0.0, 1.0]]
    SUBTRACT_LINEAR 1 [[0.0, 0.0, 0.0]]
    """

    NO_REGRESSION = -1
    SUBTRACT_MEAN = 0
    SUBTRACT_LINEAR = 1


class CoMParams(NamedTuple):
    """LiberTEM's parameter set of :class:`CoMUDF` (see :meth:`CoMUDF.with_params`).

    Examples
    --------
    >>> CoMParams(cy=3.0).r
    inf
    """

    cy: float | None = None
    cx: float | None = None
    r: float = float("inf")
    ri: float | None = 0.0
    scan_rotation: float = 0.0
    flip_y: bool = False
    regression: Any = RegressionOptions.NO_REGRESSION


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

    Two ways to configure it. Our keywords, ``CoMUDF(cy=..., cx=..., r=...,
    regression=0|1, flip_y=..., scan_rotation=..., dtype=...)``, described
    below; or LiberTEM's, ``CoMUDF(CoMParams(...))`` /
    :meth:`with_params`, which behave as LiberTEM documents (centre default
    ``(h // 2, w // 2)``, ``r``/``ri`` annulus, ``regression`` numbered
    -1 none / 0 subtract mean / 1 subtract linear fit, or a ``(3, 2)``
    array, fitted to and subtracted from ``field`` over the valid
    positions; frames without intensity get shift 0).

    For every frame the intensity-weighted mean pixel position ``(y, x)`` is
    computed over the pixels of the mask: one matrix product per tile (with
    numba installed, a compiled kernel that reads the tile once, at about the
    speed of a plain sum; see :class:`~udfwidgets.udf.masks.ApplyMasksUDF`).
    ``get_results`` then derives the shift field and its maps.

    Result buffers (all float64):

    ``raw_mask_result`` (nav, extra ``(3,)``, private)
        ``(sum I, sum I*y, sum I*x)`` over the mask, per frame (LiberTEM's name).
    ``raw_com`` (nav, extra ``(2,)``)
        ``(y, x)`` centre of mass in pixels; NaN for a frame whose masked
        intensity sums to 0.
    ``raw_shifts`` (nav, ``(2,)``)
        ``raw_com - (cy, cx)``.
    ``field`` (nav, ``(2,)``), ``field_y``, ``field_x`` (nav)
        The shifts after the regression correction, then flipped and rotated
        into scan coordinates (``flip_y``, ``scan_rotation``); equal to
        ``raw_shifts`` with the defaults. ``field_y``/``field_x`` are its components.
    ``magnitude`` (nav)
        ``|field|``.
    ``divergence``, ``curl`` (nav)
        ``dF_y/dy + dF_x/dx`` and ``dF_y/dx - dF_x/dy`` over a 2D scan
        (see :func:`divergence_curl`); NaN next to positions outside the roi,
        and everywhere for scans that are not 2D.
    ``regression_coefficients``, ``regression`` (single, ``(1 + nav_dims, 2)``)
        The offset and slopes per nav axis that were subtracted, for
        ``(y, x)``: ``[[y, x], [dy/dy, dx/dy], [dy/dx, dx/dx]]`` on a 2D scan
        (zeros without regression; see :func:`fit_linear_field`).

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
        over the frames processed (the roi), before flip and rotation.
        LiberTEM numbers its regression options differently (see above).
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
    com_params : CoMParams, optional
        LiberTEM's parameters (also accepted as the first positional
        argument); the other keywords must then be left at their defaults.

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
    >>> lt = CoMUDF.with_params(cy=2, cx=2, r=2.5)  # LiberTEM's way
    >>> ctx.run_udf(dataset=ctx.load("memory", data=data), udf=lt)["field_x"].data
    array([[1., 0.]])
    """

    ACCEPTS_SIG_SLICED_TILES = False  # masks over the whole frame

    def __init__(
        self,
        cy: float | None = None,
        cx: float | None = None,
        r: float | None = None,
        regression: int = 0,
        flip_y: bool = False,
        scan_rotation: float = 0.0,
        dtype=None,
        com_params: CoMParams | None = None,
    ):
        if isinstance(cy, CoMParams):  # LiberTEM's CoMUDF(com_params)
            cy, com_params = None, cy
        if com_params is not None:
            if not isinstance(com_params, CoMParams):
                raise TypeError(f"com_params must be a CoMParams, got {type(com_params).__name__}")
            if (cy, cx, r, regression, flip_y, scan_rotation) != (None, None, None, 0, False, 0.0):
                raise ValueError(
                    "give either com_params (LiberTEM's parameters) or the keywords "
                    "cy, cx, r, regression, flip_y, scan_rotation, not both"
                )
            _check_lt_params(com_params)
        for name, v in (("cy", cy), ("cx", cx)):
            if v is not None:
                check_number(v, name, minimum=None)
        if r is not None and check_number(r, "r") <= 0:
            raise ValueError(f"r must be a positive radius in pixels or None, got {r!r}")
        if isinstance(regression, bool) or regression not in REGRESSIONS:
            raise ValueError(
                f"regression must be 0 (none) or 1 (subtract a linear fit), "
                f"got {regression!r} (LiberTEM's numbering -1/0/1 works through "
                "CoMUDF.with_params(regression=...))"
            )
        if not isinstance(flip_y, (bool, np.bool_)):
            raise ValueError(f"flip_y must be True or False, got {flip_y!r}")
        check_number(scan_rotation, "scan_rotation", minimum=None)
        check_float_dtype(dtype)
        super().__init__(
            cy=cy,
            cx=cx,
            r=r,
            regression=regression,
            flip_y=flip_y,
            scan_rotation=scan_rotation,
            dtype=dtype,
            com_params=com_params,
        )

    @classmethod
    def with_params(
        cls,
        *,
        cy: float | None = None,
        cx: float | None = None,
        r: float = float("inf"),
        ri: float = 0.0,
        scan_rotation: float = 0.0,
        flip_y: bool = False,
        regression: Any = RegressionOptions.NO_REGRESSION,
        dtype=None,
    ) -> CoMUDF:
        """A CoMUDF with LiberTEM's parameters (see the class docstring).

        Examples
        --------
        >>> CoMUDF.with_params(r=5.0, ri=2.0).params.com_params.ri
        2.0
        """
        return cls(
            com_params=CoMParams(
                cy=cy,
                cx=cx,
                r=r,
                ri=ri,
                scan_rotation=scan_rotation,
                flip_y=flip_y,
                regression=regression,
            ),
            dtype=dtype,
        )

    def _lt(self) -> CoMParams | None:
        return self.params.com_params

    def _centre(self) -> tuple[float, float]:
        h, w = tuple(self.meta.dataset_shape.sig)
        lt = self._lt()
        if lt is not None:
            return (
                h // 2 if lt.cy is None else float(lt.cy),
                w // 2 if lt.cx is None else float(lt.cx),
            )
        cy = (h - 1) / 2 if self.params.cy is None else float(self.params.cy)
        cx = (w - 1) / 2 if self.params.cx is None else float(self.params.cx)
        return cy, cx

    def _flip_rotation(self) -> tuple[bool, float]:
        lt = self._lt()
        if lt is not None:
            return bool(lt.flip_y), float(lt.scan_rotation)
        return bool(self.params.flip_y), float(self.params.scan_rotation)

    def get_result_buffers(self):
        sig = tuple(self.meta.dataset_shape.sig)
        if len(sig) != 2:
            raise ValueError(f"CoMUDF needs 2D frames (sig_dims=2), got signal shape {sig}")
        nav = tuple(self.meta.dataset_shape.nav)
        nav_dims = len(nav)
        if self._lt() is not None and nav_dims != 2:  # as LiberTEM's CoMUDF
            raise ValueError(
                f"CoMUDF with LiberTEM's parameters (CoMParams, with_params) needs a 2D scan, "
                f"got navigation shape {nav}: reshape the scan with ctx.load(..., "
                "nav_shape=(h, w)), or use our keywords, CoMUDF(cy=..., cx=..., r=...), "
                "which also work on 1D and 3D scans"
            )
        f8 = "float64"
        yx = [("component", ["y", "x"])]
        terms = [
            ("term", ["offset"] + [f"slope_{i}" for i in range(nav_dims)]),
            ("component", ["y", "x"]),
        ]
        nav2 = dict(kind="nav", extra_shape=(2,), dtype=f8, use="result_only", axes=yx)
        nav1 = dict(kind="nav", dtype=f8, use="result_only")
        coef = dict(
            kind="single", extra_shape=(1 + nav_dims, 2), dtype=f8, use="result_only", axes=terms
        )
        return {
            "raw_mask_result": self.buffer(kind="nav", extra_shape=(3,), dtype=f8, use="private"),
            "raw_com": self.buffer(**nav2),
            "raw_shifts": self.buffer(**nav2),
            "field": self.buffer(**nav2),
            "field_y": self.buffer(**nav1),
            "field_x": self.buffer(**nav1),
            "magnitude": self.buffer(**nav1),
            "divergence": self.buffer(**nav1),
            "curl": self.buffer(**nav1),
            "regression_coefficients": self.buffer(**coef),
            "regression": self.buffer(**coef),
        }

    def get_preferred_input_dtype(self):
        # frames come as stored: process_tile converts only the pixels the disk covers
        return self.USE_NATIVE_DTYPE

    def get_tiling_preferences(self) -> dict[str, Any]:
        # one matrix product per tile: BLAS is faster per frame on more rows
        return {"total_size": 4 << 20}

    def _mask_key(self) -> tuple:
        """What the mask depends on besides the frame shape and centre (hashable)."""
        lt = self._lt()
        if lt is not None:
            return ("annulus", float(lt.r), 0.0 if lt.ri is None else float(lt.ri))
        if self.params.r is None:
            return ("frame",)
        return ("disk", float(self.params.r))

    def get_task_data(self) -> dict[str, Any]:
        sig = tuple(self.meta.dataset_shape.sig)
        cy, cx = self._centre()
        work = working_dtype(self.meta.input_dtype, self.params.dtype)
        # the compiled kernel's layout only where frames are processed (imports numba)
        packed = work == np.float32 and not self.meta.on_main_node and get_kernel() is not None
        key = (sig, cy, cx, self._mask_key(), np.dtype(work))
        span, w = _weights(*key)
        packed_w = _packed_weights(*key) if packed else None
        return {"span": span, "weights": w, "packed": packed_w, "centre": np.array([0.0, cy, cx])}

    def process_tile(self, tile):
        td = self.task_data
        start, stop = td.span
        n = tile.shape[0]
        flat = tile.reshape(n, -1)
        if td.weights.dtype == np.float64:
            sums = flat[:, start:stop].astype(np.float64, copy=False) @ td.weights
        else:
            sums = float32_product(flat, td.weights, start=start, packed=td.packed)
        self._store(sums)

    def _store(self, sums):
        # sums: total, sum(I*(y - cy)), sum(I*(x - cx)); stored as total, sum(I*y), sum(I*x)
        out = self.results.raw_mask_result
        out[:] = sums
        out[:, 1:] += sums[:, :1] * self.task_data.centre[1:]

    def raw_tile_processor(self, corrections, raw_dtype):
        """The weighted sums of raw tiles, with the corrections folded into the weights.

        The protocol of :mod:`udfwidgets.corrections` ("UDFs that correct their own
        tiles"), as for :meth:`ApplyMasksUDF.raw_tile_processor
        <udfwidgets.udf.masks.ApplyMasksUDF.raw_tile_processor>`: float32 weights only,
        else None (corrected tiles).

        Examples
        --------
        >>> callable(CoMUDF().raw_tile_processor)
        True
        """
        td = self.task_data
        if td.weights.dtype != np.float32:
            return None
        from ..corrections import linear_tiles

        product = linear_tiles(corrections, raw_dtype, td.weights, td.span[0])
        if product is None:
            return None

        def process(tile):
            self._store(product(tile.reshape(tile.shape[0], -1)))

        return process

    def _to_scan_axes(self, field: np.ndarray) -> np.ndarray:
        flip, angle = self._flip_rotation()
        y, x = field[..., 0], field[..., 1]
        if flip:
            y = -y
        a = np.radians(angle)
        if a == 0:
            return np.stack([y, x], axis=-1)
        return np.stack([np.sin(a) * x + np.cos(a) * y, np.cos(a) * x - np.sin(a) * y], axis=-1)

    def get_results(self):
        # nav buffers are flat and roi-compressed here: rebuild the scan for the derivatives
        sums = np.asarray(self.results.raw_mask_result, dtype=np.float64)
        nav_shape = tuple(self.meta.dataset_shape.nav)
        roi = self.meta.roi
        sel = np.ones(int(np.prod(nav_shape)), dtype=bool) if roi is None else roi.reshape(-1)
        valid = self.meta.get_valid_nav_mask()
        valid = np.ones(len(sums), dtype=bool) if valid is None else valid
        centre = np.array(self._centre())
        lt = self._lt()
        with np.errstate(divide="ignore", invalid="ignore"):
            raw_com = sums[:, 1:] / sums[:, :1]
        empty = sums[:, 0] == 0
        raw_com[empty] = centre if lt is not None else np.nan  # LiberTEM: shift 0
        shifts_flat = raw_com - centre
        full = np.full((len(sel), 2), np.nan)
        # frames not merged yet: NaN here, shift 0 in LiberTEM's mode (its raw sums are 0)
        full[sel] = np.where(valid[:, None], shifts_flat, np.nan if lt is None else 0.0)
        shifts = full.reshape(nav_shape + (2,))
        if lt is not None:
            field = self._to_scan_axes(shifts)
            merged = np.zeros(len(sel), dtype=bool)
            merged[np.flatnonzero(sel)[valid]] = True
            merged = merged.reshape(nav_shape)
            fit_on = field.copy()
            fit_on[~merged] = np.nan  # fitted over the merged frames only
            coef = _lt_regression(lt.regression, fit_on, nav_shape)
            corrected = _subtract_fit(field, coef)
            field[merged] = corrected[merged]  # and applied to them only
        elif self.params.regression == 1:
            coef = fit_linear_field(shifts)
            field = _subtract_fit(shifts, coef) if np.isfinite(coef).all() else shifts.copy()
            field = self._to_scan_axes(field)
        else:
            coef = np.zeros((1 + len(nav_shape), 2))
            field = self._to_scan_axes(shifts)
        if len(nav_shape) == 2:
            div, curl = divergence_curl(field)
        else:
            div = curl = np.full(nav_shape, np.nan)
        flat = lambda a: a.reshape((len(sel),) + a.shape[len(nav_shape) :])[sel]  # noqa: E731
        field_f = flat(field)
        return {
            "raw_com": raw_com,
            "raw_shifts": shifts_flat,
            "field": field_f,
            "field_y": field_f[:, 0],
            "field_x": field_f[:, 1],
            "magnitude": np.hypot(field_f[:, 0], field_f[:, 1]),
            "divergence": flat(div),
            "curl": flat(curl),
            "regression_coefficients": coef,
            "regression": coef,
        }


def _subtract_fit(field: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """``field - (coef[0] + sum_d coef[1 + d] * nav_index_d)`` over the scan."""
    if not coef[1:].any():
        return field - coef[0]
    coords = np.indices(field.shape[:-1], dtype=np.float64)
    return field - (coef[0] + np.tensordot(np.moveaxis(coords, 0, -1), coef[1:], axes=1))


def _check_lt_params(p: CoMParams) -> None:
    ri = 0.0 if p.ri is None else p.ri
    if ri >= p.r:
        raise ValueError(
            f"the inner radius ri={p.ri!r} must be smaller than the outer radius "
            f"r={p.r!r} for an annular CoM"
        )
    reg = p.regression
    if isinstance(reg, (int, np.integer)) and not isinstance(reg, bool):
        if int(reg) not in (-1, 0, 1):
            raise ValueError(
                f"regression={reg!r}: LiberTEM's options are -1 (none), 0 (subtract "
                "the mean), 1 (subtract a linear fit), or a (3, 2) array"
            )
    elif np.shape(reg) != (3, 2):
        raise ValueError(
            f"regression must be -1, 0, 1 or a (3, 2) array of coefficients "
            f"[[y, x], [dy/dy, dx/dy], [dy/dx, dx/dx]], got {reg!r}"
        )


@functools.lru_cache(maxsize=8)
def _weights(
    sig: tuple[int, int], cy: float, cx: float, mask_key: tuple, work: np.dtype
) -> tuple[tuple[int, int], np.ndarray]:
    """``(pixel span, weights)`` of CoMUDF (a read-only array).

    Kept for the last few frame shapes and parameters: a 256x256 frame's weights
    took 8 ms to make, once per run on the main node and once per task in every
    worker, a tenth of a short run.
    """
    if mask_key[0] == "annulus":
        rr = radius_map(sig, (cy, cx))
        r, ri = mask_key[1:]
        mask = ((rr <= r) & ((rr > ri) if ri > 0 else True)).astype(np.float64)
    elif mask_key[0] == "disk":
        mask = disk(sig, (cy, cx), mask_key[1], dtype=np.float64)
    else:
        mask = np.ones(sig)
    # coordinates relative to the centre keep the weighted sums small (float32 work)
    y, x = np.indices(sig, dtype=np.float64)
    weights = np.stack([mask, mask * (y - cy), mask * (x - cx)], axis=-1).reshape(-1, 3)
    # only the pixels from the mask's first to its last non-zero one take part
    start, stop = pixel_span(weights)
    w = weights[start:stop].astype(work)
    w.flags.writeable = False
    return (start, stop), w


@functools.lru_cache(maxsize=8)
def _packed_weights(*key) -> np.ndarray | None:
    """:func:`_weights` laid out for the compiled kernel (read-only), or None."""
    packed = pack_weights(_weights(*key)[1])
    if packed is not None:
        packed.flags.writeable = False
    return packed


def _lt_regression(reg, field: np.ndarray, nav_shape) -> np.ndarray:
    """LiberTEM's regression: coefficients fitted to (or given for) the field."""
    n = 1 + len(nav_shape)
    if not (isinstance(reg, (int, np.integer)) and not isinstance(reg, bool)):
        return np.array(reg, dtype=np.float64)
    coef = np.zeros((n, 2))
    ok = np.isfinite(field).all(axis=-1)
    if int(reg) == 0 and ok.any():
        coef[0] = field[ok].mean(axis=0)
    elif int(reg) == 1 and ok.any():
        coef = fit_linear_field(field)
    return coef
