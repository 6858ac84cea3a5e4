"""A synthetic 4D-STEM dataset with known ground truth: ``ctx.load("synthetic", ...)``."""

from __future__ import annotations

from collections.abc import Sequence

from ..data import SyntheticTruth, make_4dstem
from .dataset import DataSetError
from .memory import MemoryDataSet

__all__ = ["SyntheticDataSet"]


class SyntheticDataSet(MemoryDataSet):
    """A simulated scan over vacuum, an amorphous film and crystalline grains.

    The frames are made once, in memory, by :func:`udfwidgets.data.make_4dstem`
    (about 2 s for 64 x 64 x 128 x 128 on two cores); see there for what the
    simulation contains. :attr:`truth` holds what went into it: the region
    and grain of every frame, the pattern shift, the disk centre and radius.

    Parameters
    ----------
    nav_shape : tuple of int
        Scan shape, 1 to 3 dimensions.
    sig_shape : tuple of int
        Frame shape ``(height, width)``, each at least 8.
    dtype : numpy dtype
        Detector dtype, ``"uint16"`` by default.
    seed : int or None
        The same seed gives the same data.
    num_partitions : int, optional
        Override the default number of partitions.
    **kwargs
        ``n_grains``, ``dose`` and ``max_shift``, passed to
        :func:`~udfwidgets.data.make_4dstem`.

    Attributes
    ----------
    truth : udfwidgets.data.SyntheticTruth
        The ground truth of the data.
    data : numpy.ndarray
        The frames, shape ``nav_shape + sig_shape``.

    Examples
    --------
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sumsigudf import SumSigUDF
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("synthetic", nav_shape=(16, 16), sig_shape=(32, 32), seed=3)
    >>> ds.shape, ds.dtype
    (Shape((16, 16, 32, 32), sig_dims=2), dtype('uint16'))
    >>> total = ctx.run_udf(dataset=ds, udf=SumSigUDF())["intensity"].data
    >>> int(ds.truth.labels[0, 0])  # the left edge of the scan is vacuum
    0
    >>> bool(abs(total[0, 0] - ds.data[0, 0].sum()) < 1)
    True
    """

    def __init__(
        self,
        nav_shape: Sequence[int] | int = (64, 64),
        sig_shape: Sequence[int] = (128, 128),
        dtype="uint16",
        seed: int | None = 0,
        num_partitions: int | None = None,
        **kwargs,
    ):
        unknown = set(kwargs) - {"n_grains", "dose", "max_shift", "n_threads"}
        if unknown:
            raise DataSetError(
                f"unknown parameter(s) {', '.join(sorted(unknown))} for the synthetic dataset; "
                "it takes nav_shape, sig_shape, dtype, seed, num_partitions, n_grains, dose "
                "and max_shift"
            )
        try:
            data, truth = make_4dstem(
                nav_shape, sig_shape, dtype, seed, return_truth=True, **kwargs
            )
        except (ValueError, TypeError) as e:
            raise DataSetError(str(e)) from None
        super().__init__(data, sig_dims=2, num_partitions=num_partitions)
        self.truth: SyntheticTruth = truth
        self.seed = truth.seed

    def __repr__(self) -> str:
        return f"<SyntheticDataSet shape={tuple(self.shape)} dtype={self.dtype} seed={self.seed}>"
