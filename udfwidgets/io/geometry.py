"""Scan geometry shared by every dataset: ``nav_shape`` and ``sync_offset``.

A file (or array) holds ``file_frames`` frames in acquisition order. The scan
that the user analyses has ``nav_shape`` positions; navigation frame ``i``
(flat, C order) is file frame ``i + sync_offset``:

- ``sync_offset > 0`` skips the first frames of the file (frames recorded
  before the scan started);
- ``sync_offset < 0`` means the scan started before the file: the first
  ``-sync_offset`` navigation positions have no frame;
- navigation positions whose file frame does not exist (before the file's
  start, or past its end when the file holds fewer frames than
  ``prod(nav_shape) + sync_offset``) read as frames of zeros, and
  :func:`resolve` warns with the numbers (:class:`MissingFramesWarning`);
- file frames past the scan are skipped silently.

Every dataset kind uses :func:`resolve` once when it opens and
:meth:`ScanGeometry.read` / :meth:`ScanGeometry.take` in its partitions, so the
rule is written once.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .dataset import DataSetError, as_shape_tuple

__all__ = ["ScanGeometry", "MissingFramesWarning", "resolve"]


class MissingFramesWarning(UserWarning):
    """Some navigation positions have no frame in the file; they read as zeros.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     g = resolve(3, nav_shape=(4,), sync_offset=0, what="scan.raw")
    >>> [w.category.__name__ for w in caught]
    ['MissingFramesWarning']
    """


@dataclass(frozen=True)
class ScanGeometry:
    """Where each navigation frame is in the file.

    Attributes
    ----------
    nav_shape : tuple of int
        The scan shape (1 to 3 dimensions).
    file_frames : int
        How many frames the file holds.
    sync_offset : int
        Navigation frame ``i`` is file frame ``i + sync_offset``.

    Examples
    --------
    >>> g = ScanGeometry(nav_shape=(2, 3), file_frames=7, sync_offset=1)
    >>> g.file_range(0, 6)
    (1, 7, 0, 0)
    >>> g.missing
    0
    """

    nav_shape: tuple[int, ...]
    file_frames: int
    sync_offset: int = 0

    @property
    def num_frames(self) -> int:
        """Number of navigation positions, ``prod(nav_shape)``."""
        return math.prod(self.nav_shape)

    @property
    def missing(self) -> int:
        """How many navigation positions have no frame in the file.

        Examples
        --------
        >>> ScanGeometry((4,), file_frames=3, sync_offset=-1).missing
        1
        """
        lo, hi, _, _ = self.file_range(0, self.num_frames)
        return self.num_frames - (hi - lo)

    def file_range(self, start: int, stop: int) -> tuple[int, int, int, int]:
        """File frames ``[lo, hi)`` behind navigation frames ``[start, stop)``.

        Returns ``(lo, hi, before, after)``: ``before`` navigation frames
        precede the file's first frame, ``after`` follow its last one.

        Examples
        --------
        >>> ScanGeometry((10,), file_frames=8, sync_offset=-2).file_range(0, 10)
        (0, 8, 2, 0)
        """
        a, b = start + self.sync_offset, stop + self.sync_offset
        lo = min(max(a, 0), self.file_frames)
        hi = max(min(b, self.file_frames), lo)
        before = min(max(0, -a), stop - start)
        after = (stop - start) - before - (hi - lo)
        return lo, hi, before, after

    def read(
        self,
        read_file: Callable[[int, int], np.ndarray],
        start: int,
        stop: int,
        sig: Sequence[int],
        dtype,
    ) -> np.ndarray:
        """Navigation frames ``[start, stop)`` as ``(n, *sig)``.

        ``read_file(lo, hi)`` returns file frames ``[lo, hi)``; it is called
        once, and its result is returned as is (a view, if it is one) when
        every frame exists. Missing frames are zeros.

        Examples
        --------
        >>> import numpy as np
        >>> frames = np.arange(3 * 2).reshape(3, 2)
        >>> g = ScanGeometry((4,), file_frames=3, sync_offset=-1)
        >>> g.read(lambda lo, hi: frames[lo:hi], 0, 4, (2,), frames.dtype).tolist()
        [[0, 0], [0, 1], [2, 3], [4, 5]]
        """
        lo, hi, before, after = self.file_range(start, stop)
        if before == 0 and after == 0:
            return read_file(lo, hi)
        out = np.zeros((stop - start,) + tuple(sig), dtype=dtype)
        if hi > lo:
            out[before : before + (hi - lo)] = read_file(lo, hi)
        return out

    def take(
        self,
        take_file: Callable[[np.ndarray], np.ndarray],
        indices: np.ndarray,
        sig: Sequence[int],
        dtype,
    ) -> np.ndarray:
        """Navigation frames at ascending ``indices`` as ``(len(indices), *sig)``.

        ``take_file(file_indices)`` returns the file frames at ascending
        indices that all exist; missing frames are zeros.

        Examples
        --------
        >>> import numpy as np
        >>> frames = np.arange(3)[:, None]
        >>> g = ScanGeometry((5,), file_frames=3, sync_offset=1)
        >>> g.take(lambda i: frames[i], np.array([0, 1, 4]), (1,), frames.dtype).ravel().tolist()
        [1, 2, 0]
        """
        indices = np.asarray(indices, dtype=np.int64)
        file_idx = indices + self.sync_offset
        ok = (file_idx >= 0) & (file_idx < self.file_frames)
        if ok.all():
            return take_file(file_idx)
        out = np.zeros((len(indices),) + tuple(sig), dtype=dtype)
        if ok.any():
            out[ok] = take_file(file_idx[ok])
        return out


def resolve(
    file_frames: int,
    nav_shape: Sequence[int] | int | None = None,
    sync_offset: int = 0,
    file_nav_shape: Sequence[int] | None = None,
    what: str = "the data",
) -> ScanGeometry:
    """Check ``nav_shape`` and ``sync_offset`` against a file of ``file_frames`` frames.

    Parameters
    ----------
    file_frames : int
        Frames stored in the file.
    nav_shape : tuple of int, optional
        The scan shape the user asks for. Defaults to ``file_nav_shape``
        (the scan shape the file records), else ``(file_frames,)``.
    sync_offset : int
        See the module docstring. ``|sync_offset|`` must be smaller than
        ``file_frames``.
    file_nav_shape : tuple of int, optional
        The scan shape recorded in the file, if any.
    what : str
        How to name the file in messages (its path).

    Raises
    ------
    DataSetError
        For a malformed ``nav_shape`` or a ``sync_offset`` that leaves no frame.

    Warns
    -----
    MissingFramesWarning
        When some navigation positions have no frame (they read as zeros).

    Examples
    --------
    >>> resolve(16, nav_shape=(4, 4))
    ScanGeometry(nav_shape=(4, 4), file_frames=16, sync_offset=0)
    >>> resolve(12, file_nav_shape=(3, 4)).nav_shape
    (3, 4)
    """
    if not isinstance(file_frames, (int, np.integer)) or file_frames < 1:
        raise DataSetError(f"{what} holds no frames")
    file_frames = int(file_frames)
    if nav_shape is None:
        nav_shape = tuple(file_nav_shape) if file_nav_shape is not None else (file_frames,)
    nav = as_shape_tuple(nav_shape, "nav_shape")
    if not 1 <= len(nav) <= 3:
        raise DataSetError(f"nav_shape={nav} has {len(nav)} dimensions; 1 to 3 are supported")
    if isinstance(sync_offset, bool) or not isinstance(sync_offset, (int, np.integer)):
        raise DataSetError(f"sync_offset must be an integer, got {sync_offset!r}")
    sync_offset = int(sync_offset)
    if abs(sync_offset) >= file_frames:
        raise DataSetError(
            f"sync_offset={sync_offset} leaves no frame of {what} in the scan: it must lie "
            f"between {-(file_frames - 1)} and {file_frames - 1} ({what} holds {file_frames} "
            "frames)"
        )
    geometry = ScanGeometry(nav, file_frames, sync_offset)
    missing = geometry.missing
    if missing:
        warnings.warn(
            f"{what} holds {file_frames} frames; nav_shape={nav} with sync_offset={sync_offset} "
            f"needs file frames {sync_offset} to {sync_offset + geometry.num_frames - 1}, so "
            f"{missing} of {geometry.num_frames} scan positions have no frame and read as zeros. "
            "Check nav_shape and sync_offset.",
            MissingFramesWarning,
            stacklevel=3,
        )
    return geometry
