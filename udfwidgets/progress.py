"""Progress bars for runs: a widget in Jupyter, text in a terminal (tqdm.auto)."""

from __future__ import annotations

from typing import Any

__all__ = ["make_progress"]


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def make_progress(progress: Any, total: int, desc: str = "frames"):
    """A progress bar counting frames, or a do-nothing stand-in when ``progress`` is falsy.

    ``progress=True`` gives ``tqdm.auto.tqdm`` (a widget under ipykernel, text
    elsewhere); a dict is passed to tqdm as keyword arguments.

    Examples
    --------
    >>> bar = make_progress(False, total=10)  # no bar: a stand-in that does nothing
    >>> bar.update(5)
    >>> bar.close()
    """
    if not progress:
        return _NoProgress()
    from tqdm.auto import tqdm

    kwargs = dict(total=total, unit="frame", unit_scale=True, desc=desc, smoothing=0.1)
    if isinstance(progress, dict):
        kwargs.update(progress)
    return tqdm(**kwargs)
