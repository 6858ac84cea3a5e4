"""What a worker works out once per file version and keeps between runs.

Readers keep per-process state about the files they read (an open HDF5
file, what a file holds, where its chunks are) so that a run does not pay
for it again. A file rewritten since (another inode, size or modification
time) is a new file: :func:`file_identity` is part of every key.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["PerFileCache", "file_identity"]


def file_identity(path: str | os.PathLike) -> tuple:
    """``(absolute path, inode, size, modification time)``: a file version.

    Examples
    --------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a.bin")
    >>> _ = open(p, "wb").write(b"1234")
    >>> file_identity(p)[0] == os.path.abspath(p), file_identity(p)[2]
    (True, 4)
    """
    path = os.fspath(path)
    st = os.stat(path)
    return (os.path.abspath(path), st.st_ino, st.st_size, st.st_mtime_ns)


class PerFileCache:
    """A small thread-safe cache, least recently used out first.

    Parameters
    ----------
    size : int
        How many values it keeps.

    Examples
    --------
    >>> cache = PerFileCache(size=2)
    >>> cache.get("a", lambda: 1), cache.get("a", lambda: 2)  # made once
    (1, 1)
    >>> _ = cache.get("b", lambda: 3), cache.get("c", lambda: 4)  # "a" is dropped
    >>> cache.get("a", lambda: 5), len(cache)
    (5, 2)
    >>> cache.clear()
    2
    """

    def __init__(self, size: int = 16):
        self.size = int(size)
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value kept for ``key``, made by ``make()`` (outside the lock) when missing."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> int:
        """Forget every value; returns how many there were."""
        with self._lock:
            n = len(self._items)
            self._items.clear()
        return n

    def __len__(self) -> int:
        return len(self._items)
