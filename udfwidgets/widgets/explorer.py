"""Linked exploration: a navigation image and a diffraction pattern side by side.

Drawing a region on the navigation image re-runs :class:`~udfwidgets.udf.sum.SumUDF`
on that roi and shows the summed pattern; drawing a detector on the pattern
re-runs :class:`~udfwidgets.udf.masks.ApplyMasksUDF` with that detector and
shows the virtual image. Runs happen in a background thread (ipympl redraws
only once the cell has finished), are debounced, and a newer selection stops
an older run still in progress.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator

import ipywidgets as widgets
import numpy as np

from ..udf.masks import ApplyMasksUDF
from ..udf.sum import SumUDF
from ..udf.sumsigudf import SumSigUDF
from ._sel_runner import LatestRunner
from .roi import RoiSelector, SigMaskSelector

__all__ = ["Explorer", "explore"]


def _virtual_detector_udf(mask: np.ndarray) -> tuple[ApplyMasksUDF, Callable[[dict], np.ndarray]]:
    """The UDF that makes a virtual image from ``mask``, and how to read its image."""
    return (ApplyMasksUDF(masks=mask.astype(np.float32)),
            lambda res: res["intensity"].data[..., 0])


class Explorer(widgets.VBox):
    """A navigation image and a summed diffraction pattern, linked by drawing on them.

    Parameters
    ----------
    ctx : Context
        Runs the UDFs (any executor).
    dataset : DataSet
        A dataset with 2D navigation and 2D signal shapes.
    debounce : float
        Seconds a selection must stay unchanged before a run starts.
    partial_interval : float
        Minimum seconds between updates from partial results of a long run.
    figsize : tuple of float
        Size of each of the two figures, in inches.

    Attributes
    ----------
    nav : RoiSelector
        The navigation image; its ``roi`` selects the frames that are summed.
    sig : SigMaskSelector
        The pattern; its ``mask`` is the virtual detector.
    timings : dict
        Per channel (``"pattern"``, ``"virtual"``), the seconds from the last
        selection change to its final image (debounce included).

    An empty roi shows the sum over all frames; an empty detector shows the
    total intensity (sum over the signal) of every frame.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.widgets import Explorer
    >>> ctx = Context(executor="inline")
    >>> data = np.ones((4, 4, 6, 6), dtype=np.float32)
    >>> ex = Explorer(ctx, ctx.load("memory", data=data))
    >>> _ = ex.nav.set_rectangle(0, 0, 1, 0)       # two frames
    >>> _ = ex.sig.set_disk(2, 2, 1)               # five pixels
    >>> ex.wait(10)
    True
    >>> float(ex.pattern[0, 0]), float(ex.virtual_image[0, 0])
    (2.0, 5.0)
    >>> ex.close()
    """

    def __init__(self, ctx: Any, dataset: Any, *, debounce: float = 0.1,
                 partial_interval: float = 0.3, figsize=(4.0, 4.0), cmap: str = "gray"):
        nav, sig = tuple(dataset.shape.nav), tuple(dataset.shape.sig)
        if len(nav) != 2 or len(sig) != 2:
            raise ValueError(f"the explorer needs 2D navigation and 2D signal shapes, the dataset "
                             f"has nav {nav} and sig {sig}")
        self.ctx = ctx
        self.dataset = dataset
        self.partial_interval = float(partial_interval)
        nav_res, sig_res = ctx.run_udf(dataset=dataset, udf=[SumSigUDF(), SumUDF()])
        #: Sum over the signal of every frame (shown for an empty detector).
        self.total_image = np.asarray(nav_res["intensity"].data)
        #: Sum of all frames (shown for an empty roi).
        self.total_pattern = np.asarray(sig_res["intensity"].data)
        self.nav = RoiSelector(self.total_image, title="navigation: draw a region",
                               figsize=figsize, cmap=cmap)
        self.sig = SigMaskSelector(self.total_pattern, title="pattern: draw a detector",
                                   figsize=figsize, cmap=cmap)
        self.timings: dict[str, float] = {}
        self._requested: dict[str, float] = {}
        self._apply_lock = threading.Lock()
        self._status = widgets.HTML("<small>draw on either image</small>")
        self._runner = LatestRunner(debounce=debounce, on_error=self._report_error)
        self.nav.observe(self._roi_changed, "roi")
        self.sig.observe(self._mask_changed, "mask")
        super().__init__(children=[widgets.HBox([self.nav, self.sig]), self._status])

    # --- what is shown -------------------------------------------------------------
    @property
    def pattern(self) -> np.ndarray:
        """The pattern shown now (sum over the roi, or over everything)."""
        return self.sig.image

    @property
    def virtual_image(self) -> np.ndarray:
        """The navigation image shown now (virtual detector, or total intensity)."""
        return self.nav.image

    @property
    def last_error(self) -> BaseException | None:
        """The last exception of a background run, if any."""
        return self._runner.last_error

    @property
    def stats(self) -> dict:
        """Counts of runs submitted, started, completed, cancelled and failed."""
        return dict(self._runner.stats)

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

        def job(is_current):
            if everything:
                return self._iterate("pattern", self.sig, SumUDF(), None,
                                     lambda res: res["intensity"].data, is_current)
            if not roi.any():
                self._apply("pattern", self.sig, self.total_pattern, is_current, final=True)
                return iter(())
            return self._iterate("pattern", self.sig, SumUDF(), roi,
                                 lambda res: res["intensity"].data, is_current)
        return job

    def _virtual_job(self, mask: np.ndarray):
        mask = np.array(mask, dtype=bool)

        def job(is_current):
            if not mask.any():
                self._apply("virtual", self.nav, self.total_image, is_current, final=True)
                return iter(())
            udf, read = _virtual_detector_udf(mask)
            return self._iterate("virtual", self.nav, udf, None, read, is_current)
        return job

    def _iterate(self, channel, target, udf, roi, read, is_current) -> Iterator[None]:
        """Run ``udf``, show partial images now and then and the final one; yield per partial."""
        run = self.ctx.run_udf_iter(dataset=self.dataset, udf=udf, roi=roi)
        last = time.perf_counter()
        try:
            for part in run:
                if not is_current():
                    return
                now = time.perf_counter()
                if part.finished or now - last >= self.partial_interval:
                    self._apply(channel, target, read(part.buffers[0]), is_current,
                                final=part.finished)
                    last = now
                yield
        finally:
            run.close()

    def _apply(self, channel, target, image, is_current, final: bool) -> None:
        with self._apply_lock:
            if not is_current():
                return
            target.set_image(np.nan_to_num(np.asarray(image), nan=0.0))
            if final:
                started = self._requested.get(channel)
                if started is not None:
                    self.timings[channel] = time.perf_counter() - started
                self._status.value = (f"<small>{channel} updated in "
                                      f"{self.timings.get(channel, 0.0):.2f} s</small>")

    def _report_error(self, channel: str, error: BaseException) -> None:
        self._status.value = (f"<span style='color:#b00'>{channel} update failed: "
                              f"{type(error).__name__}: {error}</span>")

    # --- control ---------------------------------------------------------------------
    def wait(self, timeout: float | None = 30.0) -> bool:
        """Block until the background runs are done; False if ``timeout`` passed first.

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
        return self._runner.wait(timeout)

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
        for channel, job in (("pattern", self._pattern_job(self.nav.roi)),
                             ("virtual", self._virtual_job(self.sig.mask))):
            self._requested[channel] = time.perf_counter()
            for _ in job(lambda: True):
                pass

    def close(self) -> None:
        """Stop background work and close both selectors."""
        if not hasattr(self, "_runner"):  # construction failed
            return super().close()
        self._runner.close()
        self.nav.close()
        self.sig.close()
        super().close()


def explore(ctx: Any, dataset: Any, **kwargs) -> Explorer:
    """Open a linked explorer on ``dataset``; see :class:`Explorer` for the parameters.

    In a notebook, make it the last expression of a cell (or ``display`` it)
    and draw on either image.

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
