"""A background worker that runs the latest request of each channel, debounced and cancellable.

Each channel (``"pattern"``, ``"virtual"`` in the explorer) holds at most one
pending request: a newer one replaces it. The worker waits ``debounce``
seconds after the newest request before starting, and while it iterates a
run's partial results it stops as soon as a newer request for the same
channel arrives (leaving ``run_udf_iter`` closes the run and its outstanding
work). Nothing here prints or displays: errors are stored in
:attr:`LatestRunner.last_error` and passed to ``on_error``.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["LatestRunner"]


class LatestRunner:
    """Run the newest job of each channel in one daemon thread.

    Parameters
    ----------
    debounce : float
        Seconds to wait for a newer request before starting a run.
    on_error : callable, optional
        Called as ``on_error(channel, exception)`` in the worker thread.

    A job is a callable ``job(is_current) -> iterable``: the worker iterates
    it and stops early when ``is_current()`` turns False; each item is the
    job's business (the job updates its widgets itself).

    Examples
    --------
    >>> runner = LatestRunner(debounce=0.0)
    >>> out = []
    >>> runner.submit("a", lambda is_current: out.append(1) or [])
    >>> runner.wait(5)
    True
    >>> out
    [1]
    >>> runner.close()
    """

    def __init__(
        self, debounce: float = 0.1, on_error: Callable[[str, BaseException], None] | None = None
    ):
        self.debounce = float(debounce)
        self.on_error = on_error
        self.last_error: BaseException | None = None
        self.stats = {"submitted": 0, "started": 0, "completed": 0, "cancelled": 0, "failed": 0}
        self._cond = threading.Condition()
        self._pending: dict[str, tuple[int, float, Callable]] = {}
        self._generation: dict[str, int] = {}
        self._running: str | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    # --- requests ------------------------------------------------------------------
    def submit(self, channel: str, job: Callable[[Callable[[], bool]], Iterable[Any]]) -> None:
        """Queue ``job`` for ``channel``, replacing (and cancelling) any older one."""
        with self._cond:
            if self._closed:
                raise RuntimeError("this runner is closed")
            gen = self._generation.get(channel, 0) + 1
            self._generation[channel] = gen
            self._pending[channel] = (gen, time.monotonic(), job)
            self.stats["submitted"] += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="udfwidgets-explorer", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def cancel(self, channel: str | None = None) -> None:
        """Drop the pending request and stop the running one (of ``channel``, or of all)."""
        with self._cond:
            for ch in [channel] if channel else list(self._generation):
                self._generation[ch] = self._generation.get(ch, 0) + 1
                self._pending.pop(ch, None)
            self._cond.notify_all()

    def is_current(self, channel: str, generation: int) -> bool:
        return not self._closed and self._generation.get(channel) == generation

    def busy(self) -> bool:
        """True while a request is pending or running."""
        with self._cond:
            return bool(self._pending) or self._running is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending or running; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending or self._running is not None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self) -> None:
        """Stop the worker (the running job stops at its next partial result)."""
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()

    # --- the worker --------------------------------------------------------------
    def _next(self):
        """Wait for a request whose debounce time has passed; mark it running."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                if self._pending:
                    now = time.monotonic()
                    channel, (gen, t, job) = min(self._pending.items(), key=lambda kv: kv[1][1])
                    wait = t + self.debounce - now
                    if wait <= 0:
                        del self._pending[channel]
                        self._running = channel
                        return channel, gen, job
                    self._cond.wait(wait)
                else:
                    self._cond.wait()

    def _loop(self) -> None:
        while True:
            item = self._next()
            if item is None:
                return
            channel, gen, job = item
            self.stats["started"] += 1
            try:
                # bound to this job's channel and generation, even if the job keeps it
                current = functools.partial(self.is_current, channel, gen)
                iterator = iter(job(current))
                try:
                    for _ in iterator:
                        if not current():
                            break
                    self.stats["completed" if current() else "cancelled"] += 1
                finally:
                    close = getattr(iterator, "close", None)
                    if close is not None:
                        close()
            except Exception as e:  # noqa: BLE001 - reported, never printed
                self.stats["failed"] += 1
                self.last_error = e
                if self.on_error is not None:
                    try:
                        self.on_error(channel, e)
                    except Exception:  # noqa: BLE001
                        pass
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()
