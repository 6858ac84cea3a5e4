"""What ``run_udf_iter`` yields: the results of all UDFs after some partitions."""

from __future__ import annotations

from collections.abc import Callable

from .udf.buffers import BufferWrapper

__all__ = ["UDFResults"]


class UDFResults:
    """The results of every UDF of a run, after some (or all) partitions.

    Attributes
    ----------
    buffers : tuple of dict
        One ``{name: BufferWrapper}`` per UDF, in the order the UDFs were given.
        For partial results it is computed (``get_results``) when first read.
    damage : BufferWrapper
        Bool nav mask of the frames merged so far (only selected frames with an roi).
    finished : bool
        True for the complete result, the last item of ``run_udf_iter``.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sum import SumUDF
    >>> with Context(executor="inline") as ctx:
    ...     ds = ctx.load("memory", data=np.ones((4, 4, 2, 2)), num_partitions=2)
    ...     parts = list(ctx.run_udf_iter(dataset=ds, udf=SumUDF()))
    >>> len(parts), int(parts[0].damage.data.sum()), parts[-1].finished
    (2, 8, True)
    """

    def __init__(
        self,
        compute: Callable[[], tuple[dict[str, BufferWrapper], ...]],
        damage: BufferWrapper,
        finished: bool = False,
    ):
        self._compute: Callable[[], tuple[dict[str, BufferWrapper], ...]] | None = compute
        self._buffers: tuple[dict[str, BufferWrapper], ...] | None = None
        self.damage = damage
        self.finished = finished

    @property
    def buffers(self) -> tuple[dict[str, BufferWrapper], ...]:
        if self._buffers is None:
            assert self._compute is not None  # dropped only once the buffers are made
            self._buffers = self._compute()
            self._compute = None
        return self._buffers

    def __getitem__(self, index: int) -> dict[str, BufferWrapper]:
        return self.buffers[index]

    def __len__(self) -> int:
        return len(self.buffers)

    def __iter__(self):
        return iter(self.buffers)

    def __repr__(self) -> str:
        done = int(self.damage.raw_data.sum())
        state = "final" if self.finished else "partial"
        return f"<UDFResults {state}: {done} frames merged>"
