"""Mean, variance and standard deviation of the frames, numerically stable."""
from __future__ import annotations

import numpy as np

from .base import UDF

__all__ = ["StdDevUDF", "merge_moments"]


def merge_moments(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Combine count, mean and sum of squared deviations of two disjoint groups.

    The pairwise formula of Chan, Golub and LeVeque: with ``delta = mean_b -
    mean_a`` and ``n = n_a + n_b``, the mean is ``mean_a + delta * n_b / n``
    and ``m2 = m2_a + m2_b + delta**2 * n_a * n_b / n``. Unlike the
    sum-of-squares formula it never subtracts two large, nearly equal
    numbers, so a large common offset does not cost precision.

    Returns ``(n, mean, m2)``; with ``n == 0`` the inputs of group ``a`` are
    returned unchanged.

    Examples
    --------
    >>> x = np.array([1e9 + 1, 1e9 + 2, 1e9 + 3, 1e9 + 4])
    >>> a, b = x[:1], x[1:]
    >>> n, mean, m2 = merge_moments(1, a.mean(), 0.0, 3, b.mean(), ((b - b.mean())**2).sum())
    >>> n, float(mean - 1e9), float(m2 / n)
    (4, 2.5, 1.25)
    """
    n = n_a + n_b
    if n == 0:
        return n_a, mean_a, m2_a
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    m2 = m2_a + m2_b + delta * delta * (n_a * n_b / n)
    return n, mean, m2


class StdDevUDF(UDF):
    """Per-pixel mean, variance and standard deviation over the scan.

    Each tile's mean and sum of squared deviations are computed in float64
    and merged into the running values with the pairwise update of Chan et
    al. (see :func:`merge_moments`); partitions are merged the same way. This
    stays exact for data with a large offset (say ``1e6 +`` small noise),
    where ``E[x**2] - E[x]**2`` loses all significant digits.

    Result buffers:

    mean, var, std : kind ``"sig"``, float64
        ``var`` is ``sum((x - mean)**2) / (num_frames - ddof)``, like
        ``np.var(..., ddof=ddof)``; NaN when ``num_frames <= ddof`` (for
        instance with an roi that selects nothing).
    num_frames : kind ``"single"``, int64
        The number of frames that went in.
    varsum : kind ``"sig"``, float64
        ``sum((x - mean)**2)``, the sum of squared deviations.

    Parameters
    ----------
    ddof : int
        Delta degrees of freedom: 0 (default) for the population variance, as
        ``np.var``; 1 for the unbiased sample variance.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.stddev import StdDevUDF
    >>> ctx = Context(executor="inline")
    >>> data = np.array([1, 2, 3, 4], dtype=np.float32).reshape(2, 2, 1, 1) + 1e6
    >>> res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=StdDevUDF())
    >>> res["mean"].data - 1e6, res["var"].data, int(res["num_frames"].data[0])
    (array([[2.5]]), array([[1.25]]), 4)
    """

    def __init__(self, ddof: int = 0):
        if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer)) or ddof < 0:
            raise ValueError(f"ddof must be a non-negative integer (0 for np.var's default), "
                             f"got {ddof!r}")
        super().__init__(ddof=ddof)

    def get_result_buffers(self):
        return {
            "num_frames": self.buffer(kind="single", dtype="int64"),
            "mean": self.buffer(kind="sig", dtype="float64"),
            "varsum": self.buffer(kind="sig", dtype="float64"),
            "var": self.buffer(kind="sig", dtype="float64", use="result_only"),
            "std": self.buffer(kind="sig", dtype="float64", use="result_only"),
        }

    def preprocess(self):
        self.results.num_frames[:] = 0
        self.results.mean[:] = 0
        self.results.varsum[:] = 0

    def process_tile(self, tile):
        r = self.results
        n_b = tile.shape[0]
        mean_b = tile.mean(axis=0, dtype=np.float64)
        dev = np.subtract(tile, mean_b, dtype=np.float64)
        m2_b = np.einsum("i...,i...->...", dev, dev)
        self._update(r, n_b, mean_b, m2_b)

    @staticmethod
    def _update(r, n_b, mean_b, m2_b):
        n_a = int(r.num_frames[0])
        n, mean, m2 = merge_moments(n_a, r.mean, r.varsum, n_b, mean_b, m2_b)
        r.mean[:] = mean
        r.varsum[:] = m2
        r.num_frames[:] = n

    def merge(self, dest, src):
        self._update(dest, int(src.num_frames[0]), src.mean, src.varsum)

    def get_results(self):
        r = self.results
        n = int(r.num_frames[0])
        dof = n - self.params.ddof
        if dof > 0:
            var = r.varsum / dof
        else:
            var = np.full(r.varsum.shape, np.nan)
        mean = r.mean if n > 0 else np.full(r.mean.shape, np.nan)
        return {"num_frames": r.num_frames, "mean": mean, "varsum": r.varsum, "var": var,
                "std": np.sqrt(var)}
