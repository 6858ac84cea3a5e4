"""The shape of a dataset, split into navigation and signal parts."""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["Shape"]


class Shape(tuple):
    """A tuple of dimensions that knows which trailing ones are the signal.

    Parameters
    ----------
    dims : iterable of int
        The full shape, navigation dimensions first.
    sig_dims : int
        How many trailing dimensions belong to the signal (frame).

    Examples
    --------
    >>> s = Shape((4, 5, 16, 16), sig_dims=2)
    >>> tuple(s.nav), tuple(s.sig), s.nav.size
    ((4, 5), (16, 16), 20)
    >>> len(s)
    4
    """

    sig_dims: int

    def __new__(cls, dims: Iterable[int], sig_dims: int) -> Shape:
        dims = tuple(int(d) for d in dims)
        if not 0 <= sig_dims <= len(dims):
            raise ValueError(f"sig_dims={sig_dims} does not fit a shape of {len(dims)} dimensions")
        self = super().__new__(cls, dims)
        self.sig_dims = sig_dims
        return self

    def __getnewargs__(self):
        return (tuple(self), self.sig_dims)

    @property
    def nav(self) -> Shape:
        """The navigation (scan) part of the shape."""
        return Shape(self[: len(self) - self.sig_dims], sig_dims=0)

    @property
    def sig(self) -> Shape:
        """The signal (frame) part of the shape."""
        return Shape(self[len(self) - self.sig_dims :], sig_dims=self.sig_dims)

    @property
    def size(self) -> int:
        """The number of elements, the product of all dimensions."""
        return math.prod(self)

    @property
    def dims(self) -> int:
        """The number of dimensions."""
        return len(self)

    @property
    def flatten_nav(self) -> Shape:
        """The shape with all navigation dimensions folded into one."""
        return Shape((self.nav.size,) + tuple(self.sig), sig_dims=self.sig_dims)

    def to_tuple(self) -> tuple[int, ...]:
        """The plain tuple of dimensions."""
        return tuple(self)

    def __repr__(self) -> str:
        return f"Shape({tuple(self)}, sig_dims={self.sig_dims})"
