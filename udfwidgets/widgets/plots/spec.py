"""Read the ``plots=`` argument of a run: which buffer of which UDF to draw, and how."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import function_name

__all__ = ["PlotChoice", "drawable_problem", "declarations_of", "parse_plot_spec"]


@dataclass(frozen=True)
class PlotChoice:
    """One plot to make: buffer ``name`` of UDF ``udf_index``, through ``function``.

    ``optional`` plots (from ``plots=True``) are skipped instead of failing when
    their buffer turns out not to be drawable.

    Examples
    --------
    >>> choice = PlotChoice(0, "intensity", np.log1p, "SumUDF: intensity (log1p)", False)
    >>> choice.name, float(choice.function(np.e - 1))
    ('intensity', 1.0)
    """

    udf_index: int
    name: str
    function: Callable | None
    title: str
    optional: bool


def drawable_problem(
    decl: Any, nav_shape: tuple[int, ...], sig_shape: tuple[int, ...]
) -> str | None:
    """Why a declared buffer cannot be drawn as a line or image, or None if it can.

    Nav buffers have the navigation shape, sig buffers the signal shape,
    ``extra_shape`` axes are chosen from by a channel selector; single
    buffers are drawn as they are when 1D or 2D and more than one value.

    Examples
    --------
    >>> from udfwidgets.udf.buffers import BufferDeclaration
    >>> drawable_problem(BufferDeclaration("nav", (), np.dtype("float32")), (8, 8), (4, 4)) is None
    True
    >>> drawable_problem(BufferDeclaration("nav", (), np.dtype("O")), (8, 8), (4, 4))
    'dtype object is not numeric'
    """
    dtype = np.dtype(decl.dtype)
    if dtype.kind not in "biufc":
        return f"dtype {dtype} is not numeric"
    if decl.kind == "nav":
        base, what = tuple(nav_shape), "navigation shape"
    elif decl.kind == "sig":
        base, what = tuple(sig_shape), "signal shape"
    else:
        base, what = tuple(decl.extra_shape), "shape"
        if int(np.prod(base)) <= 1:
            return "it holds a single value"
    if len(base) not in (1, 2):
        return (
            f"its {what} {base} has {len(base)} dimensions; only 1D (line) and 2D (image) "
            "can be drawn"
        )
    return None


def declarations_of(udf: Any, dataset: Any, roi: np.ndarray | None) -> dict:
    """The validated buffer declarations of ``udf`` for a run on ``dataset``.

    Works on a clean copy, so ``udf`` itself is not changed.

    Examples
    --------
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sumsigudf import SumSigUDF
    >>> ds = Context(executor="inline").load("memory", data=np.ones((2, 3, 4, 4)))
    >>> declarations_of(SumSigUDF(), ds, roi=None)
    {'intensity': BufferDeclaration(kind='nav', extra_shape=(), dtype=dtype('float64'), use=None)}
    """
    from ...executor.plan import validate_buffers
    from ...executor.task import make_meta

    copy = udf.copy()
    n = dataset.shape.nav.size if roi is None else int(np.count_nonzero(roi))
    copy.meta = make_meta(copy, dataset.shape, dataset.dtype, roi, n)
    return validate_buffers(copy)


def _is_pair(item: Any) -> bool:
    return (
        isinstance(item, tuple)
        and len(item) == 2
        and isinstance(item[0], str)
        and callable(item[1])
    )


def parse_plot_spec(
    spec: Any,
    udfs: Sequence[Any],
    decls: Sequence[dict],
    nav_shape: tuple[int, ...],
    sig_shape: tuple[int, ...],
) -> list[PlotChoice]:
    """Turn ``plots=`` into a list of :class:`PlotChoice`.

    Accepted: ``True`` (every drawable buffer of every UDF), one list per UDF
    (each ``True``, ``None`` or a list of names and ``(name, function)``
    pairs), or, for a run of one UDF, a flat list of names and pairs.

    Examples
    --------
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sum import SumUDF
    >>> from udfwidgets.udf.sumsigudf import SumSigUDF
    >>> ds = Context(executor="inline").load("memory", data=np.ones((2, 3, 4, 4)))
    >>> udfs = [SumUDF(), SumSigUDF()]
    >>> decls = [declarations_of(udf, ds, None) for udf in udfs]
    >>> spec = [["intensity"], [("intensity", np.log1p)]]
    >>> [c.title for c in parse_plot_spec(spec, udfs, decls, (2, 3), (4, 4))]
    ['SumUDF: intensity', 'SumSigUDF: intensity (log1p)']
    >>> parse_plot_spec([["intensty"], []], udfs, decls, (2, 3), (4, 4))
    Traceback (most recent call last):
    ...
    ValueError: SumUDF (UDF number 0) has no buffer 'intensty'; its buffers are: intensity
    """
    n = len(udfs)
    per_udf: list[Any]  # per UDF: True, None/False, or a list of names and pairs (checked below)
    if spec is True:
        per_udf = [True] * n
    elif isinstance(spec, (list, tuple)):
        items = list(spec)
        if items and all(isinstance(i, str) or _is_pair(i) for i in items):
            if n != 1:
                raise ValueError(
                    f"plots={spec!r} is a flat list of buffer names, but the run has {n} UDFs: "
                    "give one list per UDF, e.g. plots=[['intensity'], []]"
                )
            per_udf = [items]
        elif len(items) == n:
            per_udf = items
        else:
            raise ValueError(
                f"plots= has {len(items)} entries but the run has {n} UDF(s): give one list of "
                "buffer names per UDF, e.g. plots=[['intensity'], [('std', np.log1p)]], or "
                "plots=True"
            )
    else:
        raise TypeError(
            f"plots must be True, a list of buffer names per UDF, or a list of plot "
            f"objects with a new_data method; got {type(spec).__name__}"
        )

    choices = []
    for index, (udf, entry, udf_decls) in enumerate(zip(udfs, per_udf, decls)):
        cls = type(udf).__name__
        public = [name for name, d in udf_decls.items() if d.use != "private"]
        if entry is True:
            for name in public:
                if drawable_problem(udf_decls[name], nav_shape, sig_shape) is None:
                    choices.append(PlotChoice(index, name, None, f"{cls}: {name}", True))
            continue
        if entry is None or entry is False:
            continue
        if not isinstance(entry, (list, tuple)) or _is_pair(entry):
            raise TypeError(
                f"plots entry for {cls} (UDF number {index}) must be a list of buffer "
                f"names or (name, function) pairs, True or None; got {entry!r}"
            )
        for item in entry:
            if isinstance(item, str):
                name, function = item, None
            elif isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str):
                name, function = item
                if not callable(function):
                    raise TypeError(
                        f"in ({name!r}, function) for {cls}: the function must be "
                        f"callable (like np.log1p), got {type(function).__name__}"
                    )
            else:
                raise TypeError(
                    f"plots entry {item!r} for {cls}: give a buffer name (str) or a "
                    "(name, function) pair"
                )
            if name not in udf_decls:
                raise ValueError(
                    f"{cls} (UDF number {index}) has no buffer {name!r}; its buffers "
                    f"are: {', '.join(public) or 'none'}"
                )
            if udf_decls[name].use == "private":
                raise ValueError(
                    f"buffer {name!r} of {cls} is private (use='private') and not "
                    f"part of the results; plottable buffers: {', '.join(public)}"
                )
            problem = drawable_problem(udf_decls[name], nav_shape, sig_shape)
            if problem is not None and function is None:
                raise ValueError(
                    f"buffer {name!r} of {cls} cannot be drawn: {problem}. Give a function that "
                    "makes a numeric 1D or 2D array of it, e.g. "
                    f"({name!r}, lambda a: a.sum(axis=0))"
                )
            title = f"{cls}: {name}" + (f" ({function_name(function)})" if function else "")
            choices.append(PlotChoice(index, name, function, title, False))
    return choices
