"""The data side of the buffer inspector: entries, statistics, slicing and HTML tables.

No widgets and no matplotlib here: everything is plain NumPy and strings,
so it can be tested (and reused for ``_repr_html_``) on its own.
"""

from __future__ import annotations

import html
import reprlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Entry",
    "entries_from",
    "buffer_stats",
    "value_stats",
    "STAT_LABELS",
    "view_axes",
    "take_view",
    "stats_table",
    "summary_table",
    "object_repr",
    "format_bytes",
]


@dataclass
class Entry:
    """One buffer (or plain array) to inspect.

    ``valid`` is a bool mask over the base shape (the shape without
    ``extra_shape``), or None when every entry is valid. :func:`entries_from`
    makes them from a run's results.

    Examples
    --------
    >>> import numpy as np
    >>> valid = np.array([[True, False, True], [False, False, False]])
    >>> e = Entry("sum", "intensity", "nav", np.arange(6.0).reshape(2, 3), valid=valid)
    >>> e.base_shape, e.n_valid, round(e.fraction_valid, 3), e.valid_values()
    ((2, 3), 2, 0.333, array([0., 2.]))
    """

    label: str
    name: str
    kind: str
    array: np.ndarray
    extra_shape: tuple = ()
    valid: np.ndarray | None = None
    udf_index: int = 0
    #: Names of the entries of the first extra axis (e.g. the masks of ApplyMasksUDF).
    extra_names: tuple = ()
    #: The run's :class:`~udfwidgets.calibration.Calibration` (result buffers), or None.
    calibration: Any = None
    base_shape: tuple = field(init=False)

    def __post_init__(self):
        n_extra = len(self.extra_shape)
        self.base_shape = self.array.shape[: self.array.ndim - n_extra]

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def n_valid(self) -> int:
        if self.valid is None:
            return int(np.prod(self.base_shape))
        return int(self.valid.sum())

    @property
    def fraction_valid(self) -> float:
        total = int(np.prod(self.base_shape))
        return 1.0 if total == 0 and self.valid is None else self.n_valid / max(total, 1)

    @property
    def is_scalar(self) -> bool:
        """One value: shown as a number, not as a one-point plot."""
        return self.array.size == 1 and self.kind in ("single", "array")

    def axis_name(self, axis: int) -> str:
        """The axis in words: scan row / column, detector row / column, channel, axis i.

        Examples
        --------
        >>> import numpy as np
        >>> e = Entry("s", "s", "nav", np.zeros((4, 5, 3)), (3,))
        >>> [e.axis_name(a) for a in range(3)]
        ['scan row', 'scan column', 'channel']
        """
        n_base = len(self.base_shape)
        if self.kind in ("nav", "sig") and axis < n_base:
            side = "scan" if self.kind == "nav" else "detector"
            if n_base == 1:
                return f"{side} position" if self.kind == "nav" else f"{side} pixel"
            if n_base == 2:
                return f"{side} {'row' if axis == 0 else 'column'}"
            return f"{side} axis {axis}"
        if self.kind in ("nav", "sig"):
            k = axis - n_base
            return "channel" if len(self.extra_shape) == 1 else f"channel axis {k}"
        return f"axis {axis}"

    def channel_label(self, index: int) -> str:
        """The name of entry ``index`` of the first extra axis (its number without names)."""
        if self.extra_names and 0 <= index < len(self.extra_names):
            return f"{index}: {self.extra_names[index]}"
        return str(index)

    def valid_values(self) -> np.ndarray:
        """The values at valid positions (all values if everything is valid)."""
        if self.valid is None:
            return self.array
        return self.array[self.valid]


def _entry(label: str, name: str, value: Any, udf_index: int, names: Any = ()) -> Entry:
    names = tuple(str(n) for n in (names or getattr(value, "extra_names", None) or ()))
    if hasattr(value, "raw_data") and hasattr(value, "kind"):  # BufferWrapper
        nav = value.kind == "nav" and hasattr(value, "nav_valid_mask")
        mask = np.asarray(value.nav_valid_mask if nav else value.valid_mask)
        data = np.asarray(value.data)
        extra = tuple(value.extra_shape)
        valid = None if mask.all() else mask
        context = getattr(value, "context", None)
        cal = context.get("calibration") if isinstance(context, dict) else None
        return Entry(label, name, value.kind, data, extra, valid, udf_index, names, cal)
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    return Entry(label, name, "array", arr, (), None, udf_index, names)


def entries_from(results: Any, channel_names: dict | None = None) -> list[Entry]:
    """Entries for a run's result dict, a tuple/list of them, or a ``UDFResults``.

    Labels are the buffer names, prefixed with ``"udf<i>."`` when several
    UDFs' results are given. ``channel_names`` maps a label or buffer name to
    the names of its first extra axis' entries.

    Examples
    --------
    >>> import numpy as np
    >>> [e.label for e in entries_from({"a": np.zeros(3)})]
    ['a']
    >>> [e.label for e in entries_from(({"a": np.zeros(3)}, {"a": np.ones(2)}))]
    ['udf0.a', 'udf1.a']
    """
    if hasattr(results, "buffers") and hasattr(results, "damage"):  # UDFResults
        results = tuple(results.buffers)
    if isinstance(results, dict):
        groups = (results,)
    elif isinstance(results, (tuple, list)) and all(isinstance(r, dict) for r in results):
        groups = tuple(results)
    else:
        raise TypeError(
            f"BufferInspector needs a result dict (from ctx.run_udf), a tuple of "
            f"them, or a UDFResults (from run_udf_iter); got {type(results).__name__}"
        )
    entries = []
    for i, group in enumerate(groups):
        for name, value in group.items():
            label = name if len(groups) == 1 else f"udf{i}.{name}"
            names = (channel_names or {}).get(label, (channel_names or {}).get(name, ()))
            entries.append(_entry(label, str(name), value, i, names))
    return entries


def value_stats(vals: np.ndarray) -> dict[str, Any]:
    """min, max, mean, std and NaN count of ``vals`` (complex by magnitude, bool as 0/1).

    Examples
    --------
    >>> s = value_stats(np.array([1.0, np.nan, 3.0]))
    >>> s["min"], s["max"], s["mean"], s["nan_count"], s["count"]
    (1.0, 3.0, 2.0, 1, 3)
    """
    vals = np.asarray(vals)
    if np.ma.isMaskedArray(vals):
        vals = np.ma.compressed(vals)
    out: dict[str, Any] = {
        "min": None,
        "max": None,
        "mean": None,
        "std": None,
        "nan_count": None,
        "of": "x",
        "count": int(vals.size),
    }
    kind = vals.dtype.kind
    if kind not in "biufc" or vals.size == 0:
        return out
    if kind == "c":
        vals = np.abs(vals)
        out["of"] = "|x|"
    elif kind == "b":
        vals = vals.astype(np.uint8)
    if vals.dtype.kind == "f":
        nan = np.isnan(vals)
        out["nan_count"] = int(nan.sum())
        vals = vals[~nan]
    else:
        out["nan_count"] = 0
    if vals.size:
        acc = np.float64
        out.update(
            min=vals.min().item(),
            max=vals.max().item(),
            mean=float(vals.mean(dtype=acc)),
            std=float(vals.std(dtype=acc)),
        )
    return out


def buffer_stats(entry: Entry) -> dict[str, Any]:
    """min, max, mean, std and NaN count over the valid values (None where not applicable).

    Complex values are summarised by their magnitude (``"of": "|x|"``);
    bool values as 0/1; object arrays get no numbers.

    Examples
    --------
    >>> import numpy as np
    >>> s = buffer_stats(Entry("a", "a", "array", np.array([1.0, np.nan, 3.0])))
    >>> s["min"], s["max"], s["mean"], s["nan_count"]
    (1.0, 3.0, 2.0, 1)
    """
    return value_stats(entry.valid_values())


def view_axes(entry: Entry) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Which axes are drawn (one or two) and which get a slider.

    Nav and sig buffers draw their last two base axes (the image of the scan
    or of the frame) and slide over the others, extra axes included; plain
    arrays and ``single`` buffers draw their last two axes.

    Examples
    --------
    >>> import numpy as np
    >>> view_axes(Entry("a", "a", "nav", np.zeros((4, 5, 3)), (3,)))
    ((0, 1), (2,))
    >>> view_axes(Entry("b", "b", "array", np.zeros((2, 3, 4, 5))))
    ((2, 3), (0, 1))
    """
    ndim = entry.array.ndim
    base = len(entry.base_shape) if entry.kind in ("nav", "sig") else ndim
    base = max(base, 1)
    n_view = min(2, base)
    view = tuple(range(base - n_view, base))
    return view, tuple(a for a in range(ndim) if a not in view)


def take_view(array: np.ndarray, view: tuple[int, ...], indices: dict[int, int]) -> np.ndarray:
    """``array`` with every non-view axis fixed at ``indices[axis]``.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.arange(24).reshape(2, 3, 4)
    >>> take_view(a, (0, 1), {2: 1}).tolist()
    [[1, 5, 9], [13, 17, 21]]
    """
    key = tuple(slice(None) if ax in view else int(indices.get(ax, 0)) for ax in range(array.ndim))
    return array[key]


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_bytes(n: int) -> str:
    """A byte count for humans.

    Examples
    --------
    >>> format_bytes(2048)
    '2.0 KiB'
    """
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover


def stats_rows(entry: Entry) -> list[tuple[str, str]]:
    """(field, value) pairs describing one entry (what it is, not its numbers)."""
    total = int(np.prod(entry.base_shape))
    return [
        ("name", entry.name),
        ("kind", entry.kind),
        ("dtype", str(entry.dtype)),
        ("shape", str(tuple(entry.array.shape))),
        ("extra_shape", str(tuple(entry.extra_shape))),
        ("valid", f"{entry.n_valid} / {total} ({100 * entry.fraction_valid:.1f} %)"),
        ("size", format_bytes(entry.array.nbytes)),
    ]


#: The statistics in words, in table order.
STAT_LABELS = (
    ("count", "values counted"),
    ("min", "smallest"),
    ("max", "largest"),
    ("mean", "mean"),
    ("std", "standard deviation"),
    ("nan_count", "NaN values"),
)

_TABLE_STYLE = "border-collapse:collapse;font-family:monospace;font-size:12px"
_CELL = "padding:1px 8px;text-align:left;border-bottom:1px solid #ddd"


def stats_table(entry: Entry, shown: np.ndarray | None = None, where: str = "") -> str:
    """An HTML table: what the entry is, then its statistics on screen and over the whole buffer.

    ``shown`` is the slice on screen (a masked array for partly valid
    buffers); its statistics stand next to those of every valid value of
    the buffer, so the numbers are those of what is shown.

    Examples
    --------
    >>> import numpy as np
    >>> e = Entry("a", "a", "array", np.arange(6.0).reshape(2, 3))
    >>> t = stats_table(e, e.array[1], "axis 0 = 1")
    >>> "on screen (axis 0 = 1)" in t and "whole buffer" in t
    True
    """

    def cell(v, tag="td"):
        return f"<{tag} style='{_CELL}'>{html.escape(v)}</{tag}>"

    rows = "".join(f"<tr>{cell(k, 'th')}{cell(v)}</tr>" for k, v in stats_rows(entry))
    whole = buffer_stats(entry)
    of = "" if whole["of"] == "x" else " of |x|"
    head = "on screen" + (f" ({where})" if where else "")
    stats = [
        f"<tr>{cell('statistics' + of, 'th')}{cell(head, 'th')}{cell('whole buffer', 'th')}</tr>"
    ]
    on_screen = value_stats(shown) if shown is not None else None
    for key, label in STAT_LABELS:
        here = "–" if on_screen is None else _fmt(on_screen[key])
        stats.append(f"<tr>{cell(label, 'th')}{cell(here)}{cell(_fmt(whole[key]))}</tr>")
    return (
        f"<table style='{_TABLE_STYLE}'>{rows}</table>"
        f"<table style='{_TABLE_STYLE};margin-top:6px'>{''.join(stats)}</table>"
    )


def summary_table(entries: list[Entry]) -> str:
    """An HTML table with one row per entry (a static summary of all buffers).

    Examples
    --------
    >>> import numpy as np
    >>> summary_table([Entry("a", "a", "array", np.zeros(3))]).count("<tr>")
    2
    """
    head = ["buffer", "kind", "dtype", "shape", "valid", "min", "max", "mean", "NaN"]
    out = [
        f"<table style='{_TABLE_STYLE}'><tr>"
        + "".join(f"<th style='{_CELL}'>{h}</th>" for h in head)
        + "</tr>"
    ]
    for e in entries:
        s = buffer_stats(e)
        cells = [
            e.label,
            e.kind,
            str(e.dtype),
            str(tuple(e.array.shape)),
            f"{100 * e.fraction_valid:.1f} %",
            _fmt(s["min"]),
            _fmt(s["max"]),
            _fmt(s["mean"]),
            _fmt(s["nan_count"]),
        ]
        out.append(
            "<tr>" + "".join(f"<td style='{_CELL}'>{html.escape(c)}</td>" for c in cells) + "</tr>"
        )
    out.append("</table>")
    return "".join(out)


_REPR = reprlib.Repr()
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 6
_REPR.maxstring = _REPR.maxother = 60


def object_repr(array: np.ndarray, max_items: int = 12) -> str:
    """A short readable text of an object array: shape, then the first items by index.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.empty(2, dtype=object); a[0] = {"peaks": [1, 2]}
    >>> print(object_repr(a))
    object array of shape (2,)
    (0,): {'peaks': [1, 2]}
    (1,): None
    """
    lines = [f"object array of shape {array.shape}"]
    for i, index in enumerate(np.ndindex(array.shape)):
        if i >= max_items:
            lines.append(f"… {array.size - max_items} more")
            break
        lines.append(f"{index}: {_REPR.repr(array[index])}")
    return "\n".join(lines)
