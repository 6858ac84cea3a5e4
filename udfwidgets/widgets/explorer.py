"""Linked exploration: a navigation image and a diffraction pattern side by side.

Two titled panels, each with its own tools above its figure:

- **live cursor** (``mode="cursor"``, the default): hover over (or drag on)
  the navigation image and the pattern shows the single frame under the
  pointer, read straight from the dataset (a memory map for files), updated
  while the pointer moves: throttled to at most one frame every
  ``cursor_interval`` seconds, the latest position wins.
- **region** (``mode="region"``): draw a region on the navigation image; the
  pattern shows the sum over it (:class:`~udfwidgets.udf.sum.SumUDF` with
  that roi).
- in both modes, a detector drawn on the pattern re-runs
  :class:`~udfwidgets.udf.masks.ApplyMasksUDF` and the navigation image shows
  the virtual image.

Runs happen in a background thread (ipympl redraws only once the cell has
finished), are debounced, and a newer selection stops an older run still in
progress. A status line says what was updated, how fast, and when.
"""

from __future__ import annotations

import bisect
import html
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as widgets
import numpy as np

from ..udf.masks import ApplyMasksUDF
from ..udf.sum import SumUDF
from ..udf.sumsigudf import SumSigUDF
from .axes import calibration_of
from .selectors import RoiSelector, SigMaskSelector
from .selectors.runner import LatestRunner
from .static import StaticView, combine_pngs, html_table, mimebundle
from .theme import mark_toggles

__all__ = ["Explorer", "explore", "FrameReader", "MODES"]

#: What a pointer on the navigation image does.
MODES = ("cursor", "region")


def _virtual_detector_udf(mask: np.ndarray) -> tuple[ApplyMasksUDF, Callable[[dict], np.ndarray]]:
    """The UDF that makes a virtual image from ``mask``, and how to read its image."""
    return (ApplyMasksUDF(masks=mask.astype(np.float32)), lambda res: res["intensity"].data[..., 0])


class FrameReader:
    """Read single frames of a dataset in this process, by (row, column) scan position.

    Uses the dataset's partitions (a view of a memory map for raw and npy
    files: no copy of the file, no run through the executor).

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> data = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    >>> reader = FrameReader(Context(executor="inline").load("memory", data=data))
    >>> reader.frame(1, 2).tolist()
    [[20.0, 21.0], [22.0, 23.0]]
    """

    def __init__(self, dataset: Any):
        self.dataset = dataset
        self.nav_shape = tuple(dataset.shape.nav)
        self._partitions = dataset.get_partitions(1)
        self._starts = [p.start for p in self._partitions]
        self._lock = threading.Lock()

    def frame(self, row: int, col: int) -> np.ndarray:
        """The frame at scan position ``(row, col)`` as float32."""
        rows, cols = self.nav_shape
        if not (0 <= row < rows and 0 <= col < cols):
            raise ValueError(
                f"scan position (row={row}, column={col}) is outside the scan {self.nav_shape}"
            )
        index = row * cols + col
        part = self._partitions[bisect.bisect_right(self._starts, index) - 1]
        with self._lock:
            frame = part.read(index, index + 1)[0]
            return np.array(frame, dtype=np.float32)

    def close(self) -> None:
        for part in self._partitions:
            part.close()


class Explorer(widgets.VBox, StaticView):
    """A navigation image and a diffraction pattern, linked by a live cursor and drawing.

    Parameters
    ----------
    ctx : Context
        Runs the UDFs (any executor).
    dataset : DataSet
        A dataset with 2D navigation and 2D signal shapes.
    mode : {"cursor", "region"}
        What the pointer on the navigation image does (see the module doc);
        switch with the buttons above the panels or :attr:`mode`.
    debounce : float
        Seconds a drawn selection must stay unchanged before a run starts.
    partial_interval : float
        Minimum seconds between updates from partial results of a long run.
    cursor_interval : float
        Minimum seconds between two frames shown by the live cursor.
    figsize : tuple of float
        Size of each of the two figures, in inches.
    cmap : str
        Colour map of both images.

    With a calibration on the dataset (``ds.calibration``), both images show
    physical axes (tick labels and axis labels in the unit, a scale bar) and
    the read-outs give both the pixel and the physical position; see
    :mod:`udfwidgets.widgets.axes`.

    Attributes
    ----------
    nav : RoiSelector
        The navigation image; its ``roi`` selects the frames that are summed.
    sig : SigMaskSelector
        The pattern (log scale); its ``mask`` is the virtual detector.
    cursor : tuple of int or None
        The (row, column) scan position of the frame shown by the live cursor.
    timings : dict
        Per channel (``"pattern"``, ``"virtual"``, ``"cursor"``), the seconds
        from the last request to its final image (debounce included).

    An empty roi shows the sum over all frames; an empty detector shows the
    total intensity (sum over the signal) of every frame.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.widgets import Explorer
    >>> ctx = Context(executor="inline")
    >>> data = np.ones((4, 4, 6, 6), dtype=np.float32)
    >>> ex = Explorer(ctx, ctx.load("memory", data=data), mode="region")
    >>> _ = ex.nav.set_rectangle(top=0, left=0, height=1, width=2)   # two frames
    >>> _ = ex.sig.set_disk(centre=(2, 2), radius=1)                 # five pixels
    >>> ex.wait(10)
    True
    >>> float(ex.pattern[0, 0]), float(ex.virtual_image[0, 0])
    (2.0, 5.0)
    >>> ex.show_frame(1, 3); ex.sig.title
    'frame at scan position (row 1, column 3)'
    >>> ex.close()
    """

    def __init__(
        self,
        ctx: Any,
        dataset: Any,
        *,
        mode: str = "cursor",
        debounce: float = 0.05,
        partial_interval: float = 0.3,
        cursor_interval: float = 0.03,
        figsize=(4.0, 3.6),
        cmap: str = "gray",
        backend: str = "auto",
    ):
        nav, sig = tuple(dataset.shape.nav), tuple(dataset.shape.sig)
        if len(nav) != 2 or len(sig) != 2:
            raise ValueError(
                f"the explorer needs 2D navigation and 2D signal shapes, the dataset "
                f"has nav {nav} and sig {sig}"
            )
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.ctx = ctx
        self.dataset = dataset
        self.partial_interval = float(partial_interval)
        self.cursor_interval = float(cursor_interval)
        nav_res, sig_res = ctx.run_udf(dataset=dataset, udf=[SumSigUDF(), SumUDF()])
        #: Sum over the signal of every frame (shown for an empty detector).
        self.total_image = np.asarray(nav_res["intensity"].data)
        #: Sum of all frames (shown for an empty roi).
        self.total_pattern = np.asarray(sig_res["intensity"].data)
        self.n_frames = int(np.prod(nav))
        self.nav = RoiSelector(
            self.total_image,
            title=self._virtual_title(None),
            figsize=figsize,
            cmap=cmap,
            backend=backend,
            calibration=calibration_of(dataset),
        )
        self.sig = SigMaskSelector(
            self.total_pattern,
            title=self._pattern_title(None),
            figsize=figsize,
            cmap=cmap,
            backend=backend,
            calibration=calibration_of(dataset),
        )
        self.nav.push_updates = self.sig.push_updates = True
        # a new image, region or detector redraws only the images and overlays (the layout,
        # axes and ticks of the last full render stay): several times faster than a render
        self.nav.blit_updates = self.sig.blit_updates = True
        self.timings: dict[str, float] = {}
        self.cursor: tuple[int, int] | None = None
        self._requested: dict[str, float] = {}
        self._apply_lock = threading.Lock()
        self._status = widgets.HTML(
            "<small>move the pointer over the navigation image, or draw on either image</small>"
        )
        self._runner = LatestRunner(debounce=debounce, on_error=self._report_error)
        self._reader: FrameReader | None = None
        self._cursor_cond = threading.Condition()
        self._cursor_pending: tuple[int, int, float] | None = None
        self._cursor_busy = False  # a frame taken from _cursor_pending is being shown
        self._cursor_thread: threading.Thread | None = None
        self._closed = False
        (self._marker,) = self.nav.ax.plot(
            [],
            [],
            marker="+",
            color="#ff3b30",
            markersize=12,
            markeredgewidth=1.5,
            linestyle="none",
        )
        self._marker.set_mouseover(False)
        self.nav.observe(self._roi_changed, "roi")
        self.sig.observe(self._mask_changed, "mask")
        self._motion_cid = self.nav.figure.canvas.mpl_connect(
            "motion_notify_event", self._on_motion
        )
        self._press_cid = self.nav.figure.canvas.mpl_connect("button_press_event", self._on_motion)
        self._mode_buttons = widgets.ToggleButtons(
            options=[("live cursor", "cursor"), ("region", "region")],
            value=mode,
            tooltips=[
                "the pattern shows the frame under the pointer",
                "the pattern shows the sum over a region drawn on the scan",
            ],
            style={"button_width": "auto"},
        )
        mark_toggles(self._mode_buttons)  # the chosen mode clearly marked in both themes
        self._mode_buttons.observe(self._mode_changed, "value")
        header = widgets.HBox(
            [widgets.HTML("<b>navigation pointer:</b>&nbsp;"), self._mode_buttons],
            layout={"align_items": "center", "flex_flow": "row wrap"},
        )
        panel = {"width": f"{int(figsize[0] * 100) + 30}px", "margin": "0 12px 0 0"}
        self.nav.layout = widgets.Layout(**panel)
        self.sig.layout = widgets.Layout(**panel)
        self.panels = widgets.HBox(
            [self.nav, self.sig], layout={"flex_flow": "row wrap", "align_items": "flex-start"}
        )
        super().__init__(children=[header, self.panels, self._status])
        self.add_class("udfw-explorer")
        self._apply_mode(mode)

    # --- modes -------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """``"cursor"`` (the pattern follows the pointer) or ``"region"`` (sum over a region)."""
        return self._mode_buttons.value

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {value!r}")
        self._mode_buttons.value = value

    def _mode_changed(self, change) -> None:
        self._apply_mode(change["new"], refresh=True)

    def _apply_mode(self, mode: str, refresh: bool = False) -> None:
        self.nav.drawing = mode == "region"
        if mode == "region" and refresh:
            self._marker.set_data([], [])
            self.cursor = None
            self._submit("pattern", self._pattern_job(self.nav.roi))

    # --- titles ------------------------------------------------------------------
    def _pattern_title(self, roi: np.ndarray | None) -> str:
        n = 0 if roi is None else int(np.count_nonzero(roi))
        if roi is None or n == 0 or n == roi.size:
            return f"sum of all {self.n_frames} scan positions"
        return f"sum of {n} scan position{'s' if n != 1 else ''}"

    def _virtual_title(self, mask: np.ndarray | None) -> str:
        if mask is None or not mask.any():
            return "total intensity of each frame"
        return f"virtual image: {getattr(self, 'sig', None) and self.sig.shape_words or 'detector'}"

    # --- what is shown -------------------------------------------------------------
    @property
    def pattern(self) -> np.ndarray:
        """The pattern shown now (a frame, the sum over the roi, or over everything)."""
        return self.sig.image

    @property
    def virtual_image(self) -> np.ndarray:
        """The navigation image shown now (virtual detector, or total intensity)."""
        return self.nav.image

    @property
    def last_error(self) -> BaseException | None:
        """The last exception of a background run, if any."""
        return self._runner.last_error or getattr(self, "_cursor_error", None)

    @property
    def stats(self) -> dict:
        """Counts of runs submitted, started, completed, cancelled and failed."""
        return dict(self._runner.stats)

    # --- the live cursor -----------------------------------------------------------------
    def _on_motion(self, event) -> None:
        if self.mode != "cursor" or event.inaxes is not self.nav.ax or event.xdata is None:
            return
        row, col = int(np.floor(event.ydata + 0.5)), int(np.floor(event.xdata + 0.5))
        rows, cols = self.nav.shape
        if 0 <= row < rows and 0 <= col < cols:
            self.request_frame(row, col)

    def request_frame(self, row: int, col: int) -> None:
        """Ask for the frame at (row, col) in the background; the latest request wins.

        What a pointer move over the navigation image does in cursor mode.
        """
        with self._cursor_cond:
            if self._closed:
                return
            pending = self._cursor_pending
            if pending is not None and pending[:2] == (row, col):
                return
            if pending is None and self.cursor == (row, col):
                return
            self._cursor_pending = (int(row), int(col), time.perf_counter())
            if self._cursor_thread is None:
                self._cursor_thread = threading.Thread(
                    target=self._cursor_loop, name="udfwidgets-cursor", daemon=True
                )
                self._cursor_thread.start()
            self._cursor_cond.notify_all()

    def _cursor_loop(self) -> None:
        last = 0.0
        while True:
            with self._cursor_cond:
                while self._cursor_pending is None and not self._closed:
                    self._cursor_cond.wait()
                if self._closed:
                    return
                wait = last + self.cursor_interval - time.perf_counter()
                if wait > 0:  # throttle; a newer position may replace the pending one meanwhile
                    self._cursor_cond.wait(wait)
                    if self._closed:
                        return
                pending = self._cursor_pending
                if pending is None:  # only this thread takes it; kept for the type checker
                    continue
                row, col, requested = pending
                self._cursor_pending = None
                self._cursor_busy = True
            try:
                self.show_frame(row, col, requested=requested)
            except Exception as e:  # noqa: BLE001 - reported, never printed
                self._cursor_error = e
                self._report_error("cursor", e)
            finally:
                with self._cursor_cond:
                    self._cursor_busy = False
            last = time.perf_counter()

    def show_frame(self, row: int, col: int, requested: float | None = None) -> None:
        """Show the single frame at scan position (row, col) in the pattern panel, now.

        A run of the pattern channel still going on is stopped first.
        """
        if self._reader is None:
            self._reader = FrameReader(self.dataset)
        start = time.perf_counter() if requested is None else requested
        frame = self._reader.frame(int(row), int(col))
        self._runner.cancel("pattern")
        with self._apply_lock:
            self.cursor = (int(row), int(col))
            self._marker.set_data([col], [row])
            where = self.nav.readout_text(row, col)  # (row, column), and = (y, x) when calibrated
            # calibrated: shorter words, so that the title fits the panel
            at = "at" if self.nav.display_model.axes is not None else "at scan position"
            # only the frame and the marker are drawn again, on the figures' last render
            self.sig.set_image(frame, title=f"frame {at} {where}", blit=True)
            if not self.nav.host.blit([self._marker]):
                self.nav.host.refresh(push=True)
            self.timings["cursor"] = time.perf_counter() - start
            self._set_status(f"frame {where}", self.timings["cursor"])

    # --- reacting to selections ----------------------------------------------------
    @staticmethod
    def _same(change) -> bool:
        """traitlets reports every array assignment, equal or not."""
        old = change["old"]
        return old is not None and np.array_equal(old, change["new"])

    def _roi_changed(self, change) -> None:
        if not self._same(change):
            self._submit("pattern", self._pattern_job(change["new"]))

    def _mask_changed(self, change) -> None:
        if not self._same(change):
            self._submit("virtual", self._virtual_job(change["new"]))

    def _submit(self, channel: str, job) -> None:
        self._requested[channel] = time.perf_counter()
        self._status.value = "<small>updating…</small>"
        self._runner.submit(channel, job)

    def _pattern_job(self, roi: np.ndarray):
        roi = np.array(roi, dtype=bool)
        everything = roi.all()  # roi=None: the plain, faster path through the data
        title = self._pattern_title(roi)

        def job(is_current):
            if everything:
                return self._iterate(
                    "pattern",
                    self.sig,
                    SumUDF(),
                    None,
                    lambda res: res["intensity"].data,
                    is_current,
                    title,
                )
            if not roi.any():
                self._apply("pattern", self.sig, self.total_pattern, is_current, True, title)
                return iter(())
            return self._iterate(
                "pattern",
                self.sig,
                SumUDF(),
                roi,
                lambda res: res["intensity"].data,
                is_current,
                title,
            )

        return job

    def _virtual_job(self, mask: np.ndarray):
        mask = np.array(mask, dtype=bool)
        title = self._virtual_title(mask)

        def job(is_current):
            if not mask.any():
                self._apply("virtual", self.nav, self.total_image, is_current, True, title)
                return iter(())
            udf, read = _virtual_detector_udf(mask)
            return self._iterate("virtual", self.nav, udf, None, read, is_current, title)

        return job

    def _iterate(self, channel, target, udf, roi, read, is_current, title) -> Iterator[None]:
        """Run ``udf``, show partial images now and then and the final one; yield per partial."""
        run = self.ctx.run_udf_iter(dataset=self.dataset, udf=udf, roi=roi)
        last = time.perf_counter()
        try:
            for part in run:
                if not is_current():
                    return
                now = time.perf_counter()
                if part.finished or now - last >= self.partial_interval:
                    self._apply(
                        channel, target, read(part.buffers[0]), is_current, part.finished, title
                    )
                    last = now
                yield
        finally:
            run.close()

    def _apply(self, channel, target, image, is_current, final: bool, title: str) -> None:
        with self._apply_lock:
            if not is_current():
                return
            if channel == "pattern":
                self.cursor = None
            target.set_image(np.nan_to_num(np.asarray(image), nan=0.0), title=title)
            if final:
                started = self._requested.get(channel)
                if started is not None:
                    self.timings[channel] = time.perf_counter() - started
                what = "pattern" if channel == "pattern" else "virtual image"
                self._set_status(f"{what} updated", self.timings.get(channel, 0.0))

    def _set_status(self, what: str, seconds: float) -> None:
        stamp = time.strftime("%H:%M:%S")
        self._status.value = (
            f"<small>{html.escape(what)} in {seconds * 1000:.0f} ms (last update {stamp})</small>"
        )

    def _report_error(self, channel: str, error: BaseException) -> None:
        self._status.value = (
            f"<span style='color:#b00'>{channel} update failed: "
            f"{html.escape(type(error).__name__)}: "
            f"{html.escape(str(error))}</span>"
        )

    # --- static views -----------------------------------------------------------------
    def png(self) -> bytes:
        """Both panels side by side as one PNG."""
        return combine_pngs([self.nav.png(), self.sig.png()])

    def summary_html(self) -> str:
        return html_table(
            "Explorer",
            [
                (
                    "dataset",
                    f"scan {self.nav.shape[0]} x {self.nav.shape[1]}, frames "
                    f"{self.sig.shape[0]} x {self.sig.shape[1]}",
                ),
                ("navigation image", self.nav.title),
                ("pattern", self.sig.title),
                ("region", self.nav.describe_selection()),
                ("detector", self.sig.describe_selection()),
            ],
        )

    def _static_hosts(self) -> list:
        return [self.nav.host, self.sig.host]

    def _repr_mimebundle_(self, **kwargs):
        return mimebundle(
            super(),
            self.png,
            self.summary_html,
            f"Explorer: {self.nav.title} | {self.sig.title}",
            hosts=[self.nav.host, self.sig.host],
        )

    # --- control ---------------------------------------------------------------------
    def wait(self, timeout: float | None = 30.0) -> bool:
        """Block until the background runs (and a pending cursor frame) are done.

        False if ``timeout`` passed first.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets import Context
        >>> from udfwidgets.widgets import Explorer
        >>> ctx = Context(executor="inline")
        >>> ex = Explorer(ctx, ctx.load("memory", data=np.ones((2, 2, 3, 3))))
        >>> ex.wait()
        True
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cursor_cond:
                pending = self._cursor_pending is not None or self._cursor_busy
            if not pending:
                break
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._runner.wait(left)

    def update_now(self) -> None:
        """Recompute both images for the current selections in this thread, synchronously.

        Pending and running background updates are dropped first.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets import Context
        >>> from udfwidgets.widgets import Explorer
        >>> ctx = Context(executor="inline")
        >>> ex = Explorer(ctx, ctx.load("memory", data=np.ones((2, 2, 3, 3))))
        >>> ex.nav.roi = np.eye(2, dtype=bool)
        >>> ex.update_now()
        >>> float(ex.pattern[0, 0])
        2.0
        """
        self._runner.cancel()
        for channel, job in (
            ("pattern", self._pattern_job(self.nav.roi)),
            ("virtual", self._virtual_job(self.sig.mask)),
        ):
            self._requested[channel] = time.perf_counter()
            for _ in job(lambda: True):
                pass

    def close(self) -> None:
        """Stop background work and close both selectors."""
        if not hasattr(self, "_runner"):  # construction failed
            return super().close()
        with self._cursor_cond:
            self._closed = True
            self._cursor_pending = None
            self._cursor_cond.notify_all()
        self._runner.close()
        canvas = self.nav.figure.canvas
        canvas.mpl_disconnect(self._motion_cid)
        canvas.mpl_disconnect(self._press_cid)
        if self._reader is not None:
            self._reader.close()
        self.nav.close()
        self.sig.close()
        self._mode_buttons.close()
        self._status.close()
        super().close()


def explore(ctx: Any, dataset: Any, **kwargs) -> Explorer:
    """Open a linked explorer on ``dataset``; see :class:`Explorer` for the parameters.

    In a notebook, make it the last expression of a cell (or ``display`` it),
    move the pointer over the navigation image, or draw on either image.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.widgets import explore
    >>> ctx = Context(executor="inline")
    >>> ex = explore(ctx, ctx.load("memory", data=np.ones((3, 3, 4, 4))))
    >>> ex.pattern.shape, ex.virtual_image.shape
    ((4, 4), (3, 3))
    """
    return Explorer(ctx, dataset, **kwargs)
