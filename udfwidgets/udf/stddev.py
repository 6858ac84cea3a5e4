"""Mean, variance and standard deviation of the frames, numerically stable."""

from __future__ import annotations

import numpy as np

from .base import UDF

__all__ = ["StdDevUDF", "run_stddev", "merge_moments", "working_dtype", "check_float_dtype"]


def merge_moments(
    n_a: int, mean_a: np.ndarray, m2_a: np.ndarray, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray
) -> int:
    """Merge count, mean and sum of squared deviations of group ``b`` into group ``a``.

    The pairwise formula of Chan, Golub and LeVeque: with ``delta = mean_b -
    mean_a`` and ``n = n_a + n_b``, the mean becomes ``mean_a + delta * n_b / n``
    and ``m2 = m2_a + m2_b + delta**2 * n_a * n_b / n``. Unlike the
    sum-of-squares formula it never subtracts two large, nearly equal
    numbers, so a large common offset does not cost precision.

    ``mean_a`` and ``m2_a`` (float arrays) are updated in place; returns ``n``.
    With ``n_a == 0`` they only need to hold zeros. Complex means work too:
    ``delta**2`` is then ``|delta|**2`` and ``m2`` stays real (the sum of
    ``|x - mean|**2``, as ``np.var`` of complex data).

    Examples
    --------
    >>> x = np.array([1e9 + 1, 1e9 + 2, 1e9 + 3, 1e9 + 4])
    >>> a, b = x[:1], x[1:]
    >>> mean, m2 = a.copy(), np.zeros(1)
    >>> mean_b, m2_b = b.mean(keepdims=True), ((b - b.mean())**2).sum(keepdims=True)
    >>> n = merge_moments(1, mean, m2, 3, mean_b, m2_b)
    >>> n, float(mean[0] - 1e9), float(m2[0] / n)
    (4, 2.5, 1.25)
    """
    n = n_a + n_b
    if n_b == 0:
        return n
    delta = np.subtract(mean_b, mean_a)
    m2_a += m2_b
    mean_a += delta * (n_b / n)
    if delta.dtype.kind == "c":  # complex means: |delta|**2, real
        sq = delta.real * delta.real
        sq += delta.imag * delta.imag
    else:
        sq = delta
        sq *= delta
    sq *= n_a * n_b / n
    m2_a += sq
    return n


#: float32 sums run over at most this many frames before going on in float64,
#: which bounds their rounding error (about BLOCK_FRAMES * 6e-8 relative)
BLOCK_FRAMES = 32


def _moment_sums(dev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sum(dev)`` and ``sum(dev**2)`` over axis 0, in float64, shaped like one frame.

    float32 input is summed in float32 over blocks of at most BLOCK_FRAMES
    frames, and the block sums in float64.
    """
    n, frame = dev.shape[0], dev.shape[1:]
    flat = dev.reshape(n, -1)
    if dev.dtype == np.float64 or n <= BLOCK_FRAMES:
        s1 = flat.sum(axis=0).astype(np.float64, copy=False)
        s2 = np.einsum("ij,ij->j", flat, flat).astype(np.float64, copy=False)
    else:
        m = n - n % BLOCK_FRAMES
        blocks = flat[:m].reshape(m // BLOCK_FRAMES, BLOCK_FRAMES, -1)
        s1 = blocks.sum(axis=1).sum(axis=0, dtype=np.float64)
        s2 = np.einsum("ijk,ijk->ik", blocks, blocks).sum(axis=0, dtype=np.float64)
        if m < n:
            rest = flat[m:]
            s1 += rest.sum(axis=0)
            s2 += np.einsum("ij,ij->j", rest, rest)
    return s1.reshape(frame), s2.reshape(frame)


def check_float_dtype(dtype) -> None:
    """Raise ValueError unless ``dtype`` is None or a NumPy float type.

    Examples
    --------
    >>> check_float_dtype(np.float64)
    >>> check_float_dtype("int32")
    Traceback (most recent call last):
    ...
    ValueError: dtype must be None or a float type such as np.float64, got 'int32'
    """
    if dtype is None:
        return
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        kind = None
    if kind != "f":
        raise ValueError(f"dtype must be None or a float type such as np.float64, got {dtype!r}")


def working_dtype(input_dtype, dtype=None) -> np.dtype:
    """The float type :class:`StdDevUDF` computes a tile's moments in.

    ``dtype=None`` picks float32 for input that float32 holds exactly enough
    (float16, float32 and integers of up to 16 bits) and float64 for anything
    else; an explicit ``dtype`` is used as given (at least float32). For
    complex input it is the type of the real and imaginary parts (float32 for
    complex64).

    Examples
    --------
    >>> working_dtype(np.uint16), working_dtype(np.int32), working_dtype(np.float32, np.float64)
    (dtype('float32'), dtype('float64'), dtype('float64'))
    >>> working_dtype(np.complex64), working_dtype(np.complex128)
    (dtype('float32'), dtype('float64'))
    """
    input_dtype = np.dtype(input_dtype)
    if input_dtype.kind == "c":  # the float type of the real and imaginary parts
        input_dtype = np.dtype(input_dtype.char.lower())
    if dtype is not None:
        return np.result_type(np.float32, dtype)
    small_int = input_dtype.kind in "uib" and input_dtype.itemsize <= 2
    if small_int or input_dtype in (np.float16, np.float32):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


class StdDevUDF(UDF):
    """Per-pixel mean, variance and standard deviation over the scan.

    Every tile's frames are reduced around a reference close to their mean
    (the running mean of the partition so far; the tile's own mean for a
    partition's first tile), which keeps the squares small, and the tile's
    count, mean and sum of squared deviations are merged into the running
    values in float64 with the pairwise update of Chan et al. (see
    :func:`merge_moments`); partitions are merged the same way. A large
    common offset (say ``1e6 +`` small noise), where ``E[x**2] - E[x]**2``
    loses all significant digits, costs no precision.

    Inside a tile the arithmetic is done in the working type given by
    ``dtype`` (see :func:`working_dtype`): by default float32 for float32 and
    up-to-16-bit integer data, like ``np.var`` on float32 input, which is
    about twice as fast as float64. float32 sums run over at most
    ``BLOCK_FRAMES`` (32) frames and go on in float64, so the relative error
    of ``var`` is around 1e-7 and at most about 2e-6 (when a single frame
    dominates a pixel), whatever the offset or the number of frames.
    ``dtype=np.float64`` gives float64 arithmetic throughout (relative error
    around 1e-15). Result buffers are float64 either way.

    Result buffers:

    mean, var, std : kind ``"sig"``, float64
        ``var`` is ``sum(|x - mean|**2) / (num_frames - ddof)``, like
        ``np.var(..., ddof=ddof)``; NaN when ``num_frames <= ddof`` (for
        instance with an roi that selects nothing). On complex data ``mean``
        is complex128 and ``var``, ``std`` stay real, as ``np.var`` and
        ``np.std`` of complex arrays.
    num_frames : kind ``"single"``, int64
        The number of frames that went in.
    varsum : kind ``"sig"``, float64
        ``sum(|x - mean|**2)``, the sum of squared deviations.
    sum : kind ``"sig"``, float64 (complex128 on complex data)
        ``sum(x)`` over the frames (LiberTEM's result; ``mean * num_frames``).

    Parameters
    ----------
    ddof : int
        Delta degrees of freedom: 0 (default) for the population variance, as
        ``np.var``; 1 for the unbiased sample variance.
    dtype : numpy dtype or None
        Working precision inside a tile (LiberTEM's ``StdDevUDF`` has a
        parameter of the same name): ``None`` (default) for float32 on
        float32 and small-integer data and float64 otherwise, or a float type
        such as ``np.float64`` to choose.
    use_numba : bool
        Accepted for LiberTEM compatibility and ignored (no numba here).

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

    def __init__(self, ddof: int = 0, dtype=None, use_numba: bool = True):
        if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer)) or ddof < 0:
            raise ValueError(
                f"ddof must be a non-negative integer (0 for np.var's default), got {ddof!r}"
            )
        check_float_dtype(dtype)
        super().__init__(ddof=ddof, dtype=dtype, use_numba=use_numba)

    def get_result_buffers(self):
        # complex data: complex mean and sum, real var, std and varsum (as np.var)
        mean_dtype = "complex128" if np.dtype(self.meta.input_dtype).kind == "c" else "float64"
        return {
            "num_frames": self.buffer(kind="single", dtype="int64"),
            "mean": self.buffer(kind="sig", dtype=mean_dtype),
            "varsum": self.buffer(kind="sig", dtype="float64"),
            "var": self.buffer(kind="sig", dtype="float64", use="result_only"),
            "std": self.buffer(kind="sig", dtype="float64", use="result_only"),
            "sum": self.buffer(kind="sig", dtype=mean_dtype, use="result_only"),
        }

    def preprocess(self):
        self.results.num_frames[:] = 0
        self.results.mean[:] = 0
        self.results.varsum[:] = 0

    def get_preferred_input_dtype(self):
        # frames come as stored; process_tile converts them once, to the working type
        return self.USE_NATIVE_DTYPE

    def get_tiling_preferences(self):
        # the pairwise merge costs a few sig-sized passes per tile: fewer, larger tiles
        return {"total_size": 4 << 20}

    def get_task_data(self):
        # counts: frames merged so far per part of the frame (tiles that split the
        # frame, see UDFMeta.sig_slice, reach each part of it separately)
        return {"work": working_dtype(self.meta.input_dtype, self.params.dtype), "counts": {}}

    def process_tile(self, tile):
        r = self.results
        td = self.task_data
        key = self.meta._sig_origin
        n_a = td.counts.get(key, 0)
        n_b = tile.shape[0]
        if tile.dtype.kind == "c":
            mean_b, m2_b = self._complex_tile_moments(tile, r.mean if n_a else None, td.work)
        else:
            work = td.work
            # reference for this tile: the running mean, or the tile's own mean at first
            ref = r.mean if n_a else tile.mean(axis=0, dtype=np.float64)
            ref_work = ref.astype(work)
            dev = tile.astype(work)
            dev -= ref_work
            s1, m2_b = _moment_sums(dev)
            # the tile's mean and sum of squared deviations, in float64
            s1 /= n_b  # now mean_b - ref
            m2_b -= s1 * s1 * n_b
            np.maximum(m2_b, 0, out=m2_b)
            mean_b = ref_work.astype(np.float64)
            mean_b += s1
        n = merge_moments(n_a, r.mean, r.varsum, n_b, mean_b, m2_b)
        td.counts[key] = n
        r.num_frames[:] = n

    @staticmethod
    def _complex_tile_moments(tile, ref, work):
        """Mean (complex128) and sum of ``|x - mean|**2`` (float64) of a complex tile."""
        n_b = tile.shape[0]
        if ref is None:
            ref = tile.mean(axis=0, dtype=np.complex128)
        cwork = np.result_type(work, np.complex64)
        ref_work = ref.astype(cwork)
        dev = tile.astype(cwork)
        dev -= ref_work
        # the real and imaginary parts side by side: (frames, ..., 2 * last axis) floats
        s1f, s2f = _moment_sums(dev.view(work))
        s1 = np.ascontiguousarray(s1f).view(np.complex128)
        s2 = s2f.reshape(tile.shape[1:] + (2,)).sum(axis=-1)
        s1 /= n_b  # mean_b - ref
        s2 -= (s1.real * s1.real + s1.imag * s1.imag) * n_b
        np.maximum(s2, 0, out=s2)
        mean_b = ref_work.astype(np.complex128)
        mean_b += s1
        return mean_b, s2

    def merge(self, dest, src):
        dest.num_frames[:] = merge_moments(
            int(dest.num_frames[0]),
            dest.mean,
            dest.varsum,
            int(src.num_frames[0]),
            src.mean,
            src.varsum,
        )

    def get_results(self):
        r = self.results
        n = int(r.num_frames[0])
        dof = n - self.params.ddof
        if dof > 0:
            var = r.varsum / dof
        else:
            var = np.full(r.varsum.shape, np.nan)
        mean = r.mean if n > 0 else np.full(r.mean.shape, np.nan, dtype=r.mean.dtype)
        return {
            "num_frames": r.num_frames,
            "mean": mean,
            "varsum": r.varsum,
            "var": var,
            "std": np.sqrt(var),
            "sum": r.mean * n,
        }


def run_stddev(ctx, dataset, roi=None, progress=False, use_numba=True):
    """Run :class:`StdDevUDF` (LiberTEM's helper): the results dict with ``sum``,
    ``num_frames``, ``mean``, ``var``, ``std`` and ``varsum``.

    Examples
    --------
    >>> from udfwidgets import Context
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("memory", data=np.arange(4.0).reshape(4, 1, 1, 1))
    >>> res = run_stddev(ctx, ds)
    >>> float(res["sum"].data[0, 0]), float(res["var"].data[0, 0])
    (6.0, 1.25)
    """
    return ctx.run_udf(
        dataset=dataset, udf=StdDevUDF(use_numba=use_numba), roi=roi, progress=progress
    )
