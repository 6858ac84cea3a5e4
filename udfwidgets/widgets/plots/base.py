"""The :class:`LivePlot` base class: subscribe to partial results, throttle,
pick one buffer (and one channel of it) to draw.

Pure NumPy: no matplotlib or ipywidgets here, so that custom plots (or
loggers) can build on it without a GUI toolkit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["LivePlot", "function_name"]


def function_name(function: Callable | None) -> str:
    """The name of a function for titles and messages ("" for None).

    Examples
    --------
    >>> import numpy as np
    >>> function_name(np.log1p), function_name(None)
    ('log1p', '')
    """
    if function is None:
        return ""
    return getattr(function, "__name__", None) or type(function).__name__


def _buffers_of(udf_results: Any, udf_index: int) -> dict:
    """The ``{name: buffer}`` dict of UDF ``udf_index`` in what a run publishes."""
    buffers = getattr(udf_results, "buffers", udf_results)
    if isinstance(buffers, dict):  # a single UDF's results
        buffers = (buffers,)
    try:
        return buffers[udf_index]
    except IndexError:
        raise ValueError(
            f"live plot asks for UDF number {udf_index}, but the run has only "
            f"{len(buffers)} UDF(s): pass udf_index=0..{len(buffers) - 1}"
        ) from None


class LivePlot:
    """Base class of live plots: any object with ``new_data`` can subscribe to a run.

    A run calls ``new_data(udf_results, damage, force=False)`` after every
    merged partition and ``new_data(final, damage, force=True)`` at the end.
    This class throttles those calls to at most one drawn update every
    ``min_delta`` seconds (the first and the final ones are always drawn;
    a partial update is also skipped while the plot is busy rendering),
    takes buffer ``name`` of UDF number ``udf_index`` from the results,
    applies the optional ``channel`` function, picks one entry of any axes
    left over from ``extra_shape`` (:attr:`channel_index`), and hands the
    result to :meth:`update`, which subclasses implement.

    Parameters
    ----------
    name : str
        Buffer to draw, as returned by the UDF's ``get_results`` (buffers with
        ``use="result_only"`` included).
    udf_index : int
        Which UDF of the run (in the order the UDFs were given).
    channel : callable, optional
        Applied to the buffer's data (nav buffers in the full navigation
        shape, ``extra_shape`` axes last) before drawing, e.g. ``np.log1p`` or
        ``lambda a: a[..., 1]`` to pick from ``extra_shape`` yourself.
    channel_index : tuple of int, optional
        Entry of the axes left over after the buffer's navigation or signal
        axes (the ``extra_shape`` axes): the first one by default.
    min_delta : float
        Minimum seconds between two drawn updates (default 0.2: at most about
        five per second). The final update (``force=True``) is always drawn.
    title : str, optional
        Title of the plot (default: the buffer name).
    roi : array of bool, optional
        The run's roi, to show the right total in "frames done".
    optional : bool
        If True, a buffer missing from the results is skipped quietly (used by
        ``plots=True``, where a custom ``get_results`` may leave buffers out);
        otherwise a missing buffer is a ``ValueError``.

    Attributes
    ----------
    n_calls : int
        ``new_data`` calls received.
    n_updates : int
        Updates drawn (calls that passed the throttle).
    frames_done, frames_total : int
        Frames merged so far, and to be merged in all.
    finished : bool
        True once the final (``force=True``) update was drawn.
    missing : bool
        True when an ``optional`` buffer was not in the results.
    calibration : Calibration or None
        The calibration of the run's dataset, as the buffer carries it.
    axes_kind : {"nav", "sig"} or None
        Whether the drawn axes are the buffer's scan or detector axes (then
        they can be calibrated); None after a function changed the shape.

    Examples
    --------
    A subclass only implements :meth:`update`:

    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sumsigudf import SumSigUDF
    >>> from udfwidgets.widgets import LivePlot
    >>> class Peak(LivePlot):
    ...     def update(self, array, valid_mask):
    ...         self.peak = float(np.nanmax(array))
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("memory", data=np.ones((4, 4, 2, 2)), num_partitions=2)
    >>> peak = Peak("intensity", min_delta=0)
    >>> _ = ctx.run_udf(dataset=ds, udf=SumSigUDF(), plots=[peak])
    >>> peak.n_updates, peak.frames_done, peak.peak
    (2, 16, 4.0)
    """

    def __init__(
        self,
        name: str,
        udf_index: int = 0,
        channel: Callable | None = None,
        *,
        channel_index: Sequence[int] | None = None,
        min_delta: float = 0.2,
        title: str | None = None,
        roi: Any = None,
        optional: bool = False,
    ):
        if not isinstance(name, str):
            raise TypeError(f"name must be a buffer name (str), got {type(name).__name__}")
        if channel is not None and not callable(channel):
            raise TypeError(
                f"channel must be a function applied to the buffer's data (like "
                f"np.log1p), got {type(channel).__name__}"
            )
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0 seconds, got {min_delta!r}")
        self.name = name
        self.udf_index = int(udf_index)
        self.channel = channel
        self.channel_index = None if channel_index is None else tuple(int(i) for i in channel_index)
        self.min_delta = float(min_delta)
        self.title = (
            title
            if title is not None
            else (name + (f" ({function_name(channel)})" if channel is not None else ""))
        )
        self.optional = optional
        self.frames_total = None if roi is None else int(np.count_nonzero(roi))
        self.frames_done = 0
        self.n_calls = 0
        self.n_updates = 0
        self.finished = False
        self.missing = False
        self.channel_shape: tuple[int, ...] = ()
        #: Kind of the buffer drawn ("nav", "sig" or "single"), once data arrived.
        self.kind: str | None = None
        #: The Calibration of the buffer's run (``BufferWrapper.context``), or None.
        self.calibration: Any = None
        #: "nav" or "sig" when the drawn axes are the buffer's scan or detector axes
        #: (they get calibrated axes), else None (a function changed the shape).
        self.axes_kind: str | None = None
        self._data: np.ndarray | None = None  # the buffer after the channel function
        self._valid: np.ndarray | None = None  # bool mask over the drawn axes, or None (all valid)
        self._last_time: float | None = None
        self._lock = threading.RLock()

    # --- the subscription interface -------------------------------------------
    def new_data(self, udf_results: Any, damage: Any, force: bool = False) -> bool:
        """Receive (partial) results; draw them unless throttled.

        Parameters
        ----------
        udf_results : UDFResults
            What the run publishes (``.buffers[i][name]`` is a BufferWrapper).
        damage : BufferWrapper
            Bool nav mask of the frames merged so far.
        force : bool
            Draw regardless of the throttle (the run's final call).

        Returns
        -------
        bool
            Whether the update was drawn.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.udf.buffers import BufferWrapper
        >>> class Keep(LivePlot):
        ...     def update(self, array, valid_mask):
        ...         self.seen = array.copy()
        >>> buf = BufferWrapper("sig", "float32", (), np.eye(2, dtype="float32"), (3,))
        >>> damage = BufferWrapper("nav", bool, (), np.ones(3, bool), (3,))
        >>> p = Keep("x", min_delta=60)
        >>> p.new_data([{"x": buf}], damage), p.new_data([{"x": buf}], damage)
        (True, False)
        >>> p.new_data([{"x": buf}], damage, force=True), p.n_updates, p.n_calls
        (True, 2, 3)
        """
        self.n_calls += 1
        if self.finished:  # a call after the final update starts a new run: draw its first
            self._last_time = None
            self.finished = False
        if (
            not force
            and self._last_time is not None
            and time.monotonic() - self._last_time < self.min_delta
        ):
            return False
        # A plot busy elsewhere (ipympl renders in the kernel's main thread under
        # this lock) skips a partial update rather than holding up the run.
        if not self._lock.acquire(blocking=force):
            return False
        try:
            buffers = _buffers_of(udf_results, self.udf_index)  # runs get_results
            if self.name not in buffers:
                if self.optional:
                    self.missing = True
                    self.on_missing()
                    return False
                known = ", ".join(sorted(buffers)) or "none"
                raise ValueError(
                    f"live plot: buffer {self.name!r} is not in the results of UDF "
                    f"number {self.udf_index} (results: {known}); check the name, "
                    "or return it from get_results()"
                )
            # NaN/inf from a function are masked when drawn; NumPy's warnings about
            # them would be stray output from a background thread (errstate is per thread)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                self._receive(buffers[self.name], damage, force)
        finally:
            self._lock.release()
        self.n_updates += 1
        self._last_time = time.monotonic()
        return True

    def _receive(self, buf: Any, damage: Any, force: bool) -> None:
        data, valid, channel_shape = self._extract(buf, damage)
        self.kind = getattr(buf, "kind", "single")
        context = getattr(buf, "context", None)
        self.calibration = context.get("calibration") if isinstance(context, dict) else None
        self.axes_kind = self.kind if self._base_kept else None
        self._data, self._valid = data, valid
        if channel_shape != self.channel_shape or not self._index_fits(channel_shape):
            self.channel_shape = channel_shape
            if not self._index_fits(channel_shape):
                self.channel_index = (0,) * len(channel_shape)
            self.on_channels(channel_shape)
        if damage is not None:
            self.frames_done = int(np.count_nonzero(np.asarray(damage.data)))
            if self.frames_total is None:
                self.frames_total = int(np.size(damage.data))
        self.finished = bool(force)
        self.redraw()

    def update(self, array: np.ndarray, valid_mask: np.ndarray | None) -> None:
        """Draw ``array`` (1D or 2D); ``valid_mask`` marks the computed entries.

        Subclasses implement this. ``valid_mask`` is None when every entry is
        valid (sig and single buffers); for nav buffers it is False at frames
        not merged yet and outside the roi.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement update(array, valid_mask)")

    def display(self) -> None:
        """Show the plot (the Context calls it before a run with ``plots=True``).

        The base class shows nothing; subclasses with a view override it.
        """

    # --- hooks for subclasses -------------------------------------------------
    def on_channels(self, channel_shape: tuple[int, ...]) -> None:
        """Called when the shape of the channel axes becomes known or changes."""

    def on_missing(self) -> None:
        """Called when an ``optional`` buffer is not in the results."""

    # --- data -----------------------------------------------------------------
    @property
    def data(self) -> np.ndarray | None:
        """The last drawn array (after the channel function and channel choice)."""
        with self._lock:
            return None if self._data is None else self._select(self._data)

    def redraw(self) -> None:
        """Draw the last received data again (after a change of channel or style)."""
        with self._lock:
            if self._data is None:
                return
            array = self._select(self._data)
            if array.ndim not in (1, 2) or array.size == 0 or array.dtype.kind not in "biuf":
                raise ValueError(
                    f"live plot of {self.name!r}: cannot draw an array of shape {array.shape} and "
                    f"dtype {array.dtype}; only numeric 1D (line) and 2D (image) arrays can be "
                    f"drawn. Give a function that reduces it, e.g. "
                    f"plots=[[({self.name!r}, lambda a: a.sum(axis=0))]]"
                )
            self.update(array, self._valid)

    def _index_fits(self, channel_shape: tuple[int, ...]) -> bool:
        idx = self.channel_index
        return (
            idx is not None
            and len(idx) == len(channel_shape)
            and all(0 <= i < n for i, n in zip(idx, channel_shape))
        )

    def _current_channel(self) -> tuple[int, ...]:
        """:attr:`channel_index`, set together with :attr:`channel_shape` by ``_receive``."""
        idx = self.channel_index
        assert idx is not None or not self.channel_shape, "channel_index is set with channel_shape"
        return () if idx is None else idx

    def _select(self, data: np.ndarray) -> np.ndarray:
        if not self.channel_shape:
            return data
        return data[(Ellipsis,) + self._current_channel()]

    def _extract(self, buf: Any, damage: Any):
        """The buffer's data after the channel function, its valid mask and channel axes."""
        data = np.asarray(buf.data if hasattr(buf, "raw_data") else buf)
        kind = getattr(buf, "kind", "single")
        extra = tuple(getattr(buf, "extra_shape", ()))
        base = data.shape if kind == "single" else data.shape[: data.ndim - len(extra)]
        if self.channel is not None:
            try:
                out = np.asarray(self.channel(data))
            except Exception as e:
                raise ValueError(
                    f"live plot of {self.name!r}: the function {function_name(self.channel)} "
                    f"failed on the buffer's data (shape {data.shape}, dtype {data.dtype}): "
                    f"{type(e).__name__}: {e}"
                ) from e
        else:
            out = data
        if out.dtype.kind == "c":
            out = np.abs(out)
        self._base_kept = kind in ("nav", "sig") and out.shape[: len(base)] == base
        if kind != "single" and out.shape[: len(base)] == base:
            channel_shape = out.shape[len(base) :]
        else:
            base, channel_shape = out.shape, ()
        valid = None
        if kind == "nav":
            nav_shape = tuple(getattr(buf, "nav_shape", base))
            if base == nav_shape:
                if damage is not None:  # merged frames; a subset of the roi
                    valid = np.asarray(damage.data, dtype=bool).reshape(nav_shape)
                elif hasattr(buf, "valid_mask"):
                    valid = buf.valid_mask
        return out, valid, tuple(channel_shape)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.title!r}: udf {self.udf_index}, buffer "
            f"{self.name!r}, {self.n_updates} updates>"
        )
