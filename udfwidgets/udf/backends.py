"""Array backends: in which array type a UDF gets its frames (LiberTEM's ``get_backends``).

udfwidgets computes on the CPU. Frames are NumPy arrays unless a UDF asks
only for sparse backends, in which case each tile is converted once to the
first sparse type it lists (``scipy.sparse`` matrices or arrays of shape
``(frames, pixels)``, or pydata ``sparse`` arrays of shape ``(frames, *sig)``).
CuPy and CUDA backends are known by name but never chosen: no GPU is used here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

__all__ = [
    "NUMPY",
    "CUDA",
    "CUPY",
    "SPARSE_COO",
    "SPARSE_GCXS",
    "SPARSE_DOK",
    "SCIPY_COO",
    "SCIPY_CSR",
    "SCIPY_CSC",
    "SCIPY_COO_ARRAY",
    "SCIPY_CSR_ARRAY",
    "SCIPY_CSC_ARRAY",
    "CUPY_SCIPY_COO",
    "CUPY_SCIPY_CSR",
    "CUPY_SCIPY_CSC",
    "ALL",
    "CPU_BACKENDS",
    "CUDA_BACKENDS",
    "CUPY_BACKENDS",
    "DENSE_BACKENDS",
    "SPARSE_BACKENDS",
    "D2_BACKENDS",
    "ND_BACKENDS",
    "choose_backend",
    "converter",
    "BackendError",
]

#: NumPy arrays: the default, and what a UDF gets whenever it lists this backend.
#:
#: Examples
#: --------
#: >>> choose_backend((CUPY, NUMPY), None, "MyUDF")
#: 'numpy'
NUMPY = "numpy"

#: CUDA (LiberTEM's GPU backend with NumPy-API frames): known by name, never chosen here.
#:
#: Examples
#: --------
#: >>> choose_backend((CUDA, NUMPY), None, "MyUDF")  # falls back to NumPy
#: 'numpy'
CUDA = "cuda"

#: CuPy arrays on a GPU: known by name, never chosen here (no GPU is used).
#:
#: Examples
#: --------
#: >>> choose_backend((CUPY,), None, "MyUDF")
#: Traceback (most recent call last):
#: ...
#: udfwidgets.udf.backends.BackendError: MyUDF.get_backends() offers only ['cupy'], which need a GPU (CuPy/CUDA); udfwidgets computes on the CPU: add UDF.BACKEND_NUMPY to get_backends()
CUPY = "cupy"

#: pydata ``sparse.COO`` tiles of shape ``(frames, *sig)`` (needs ``pip install sparse``).
#:
#: Examples
#: --------
#: >>> tile = converter(SPARSE_COO)(np.eye(3).reshape(3, 1, 3))
#: >>> type(tile).__name__, tile.shape, tile.nnz
#: ('COO', (3, 1, 3), 3)
SPARSE_COO = "sparse.COO"

#: pydata ``sparse.GCXS`` tiles of shape ``(frames, *sig)`` (needs ``pip install sparse``).
#:
#: Examples
#: --------
#: >>> tile = converter(SPARSE_GCXS)(np.eye(3).reshape(3, 1, 3))
#: >>> type(tile).__name__, tile.shape, tile.nnz
#: ('GCXS', (3, 1, 3), 3)
SPARSE_GCXS = "sparse.GCXS"

#: pydata ``sparse.DOK`` tiles of shape ``(frames, *sig)`` (needs ``pip install sparse``).
#:
#: Examples
#: --------
#: >>> tile = converter(SPARSE_DOK)(np.eye(3).reshape(3, 1, 3))
#: >>> type(tile).__name__, tile.shape, tile.nnz
#: ('DOK', (3, 1, 3), 3)
SPARSE_DOK = "sparse.DOK"

#: ``scipy.sparse.coo_matrix`` tiles of shape ``(frames, pixels)``.
#:
#: Examples
#: --------
#: >>> tile = converter(SCIPY_COO)(np.eye(3).reshape(3, 1, 3))
#: >>> type(tile).__name__, tile.shape, tile.nnz
#: ('coo_matrix', (3, 3), 3)
SCIPY_COO = "scipy.sparse.coo_matrix"

#: ``scipy.sparse.csr_matrix`` tiles of shape ``(frames, pixels)``.
#:
#: Examples
#: --------
#: A UDF that counts the non-zero pixels of each frame in CSR tiles:
#:
#: >>> from udfwidgets import UDF, Context
#: >>> class NonZero(UDF):
#: ...     def get_result_buffers(self):
#: ...         return {"nnz": self.buffer(kind="nav", dtype="int64")}
#: ...     def get_backends(self):
#: ...         return (self.BACKEND_SCIPY_CSR,)  # = SCIPY_CSR
#: ...     def process_tile(self, tile):
#: ...         self.results.nnz[:] = tile.getnnz(axis=1)
#: >>> ctx = Context(executor="inline")
#: >>> data = np.zeros((1, 2, 3, 3))
#: >>> data[0, 1, 0, :2] = 1
#: >>> ctx.run_udf(dataset=ctx.load("memory", data=data), udf=NonZero())["nnz"].data
#: array([[0, 2]])
SCIPY_CSR = "scipy.sparse.csr_matrix"

#: ``scipy.sparse.csc_matrix`` tiles of shape ``(frames, pixels)``.
#:
#: Examples
#: --------
#: >>> tile = converter(SCIPY_CSC)(np.eye(3).reshape(3, 1, 3))
#: >>> type(tile).__name__, tile.shape, tile.nnz
#: ('csc_matrix', (3, 3), 3)
SCIPY_CSC = "scipy.sparse.csc_matrix"

#: ``scipy.sparse.coo_array`` tiles of shape ``(frames, pixels)``.
#:
#: Examples
#: --------
#: >>> tile = converter(SCIPY_COO_ARRAY)(np.eye(3).reshape(3, 1, 3))
#: >>> type(tile).__name__, tile.shape, tile.nnz
#: ('coo_array', (3, 3), 3)
SCIPY_COO_ARRAY = "scipy.sparse.coo_array"

#: ``scipy.sparse.csr_array`` tiles of shape ``(frames, pixels)``.
#:
#: Examples
#: --------
#: >>> tile = converter(SCIPY_CSR_ARRAY)(np.eye(3).reshape(3, 1, 3))
#: >>> type(tile).__name__, tile.shape, tile.nnz
#: ('csr_array', (3, 3), 3)
SCIPY_CSR_ARRAY = "scipy.sparse.csr_array"

#: ``scipy.sparse.csc_array`` tiles of shape ``(frames, pixels)``.
#:
#: Examples
#: --------
#: >>> tile = converter(SCIPY_CSC_ARRAY)(np.eye(3).reshape(3, 1, 3))
#: >>> type(tile).__name__, tile.shape, tile.nnz
#: ('csc_array', (3, 3), 3)
SCIPY_CSC_ARRAY = "scipy.sparse.csc_array"

#: ``cupyx.scipy.sparse.coo_matrix`` on a GPU: known by name, never chosen here.
#:
#: Examples
#: --------
#: >>> choose_backend((CUPY_SCIPY_COO, SCIPY_COO), None, "MyUDF")  # the CPU form instead
#: 'scipy.sparse.coo_matrix'
CUPY_SCIPY_COO = "cupyx.scipy.sparse.coo_matrix"

#: ``cupyx.scipy.sparse.csr_matrix`` on a GPU: known by name, never chosen here.
#:
#: Examples
#: --------
#: >>> choose_backend((CUPY_SCIPY_CSR, SCIPY_CSR), None, "MyUDF")  # the CPU form instead
#: 'scipy.sparse.csr_matrix'
CUPY_SCIPY_CSR = "cupyx.scipy.sparse.csr_matrix"

#: ``cupyx.scipy.sparse.csc_matrix`` on a GPU: known by name, never chosen here.
#:
#: Examples
#: --------
#: >>> choose_backend((CUPY_SCIPY_CSC, SCIPY_CSC), None, "MyUDF")  # the CPU form instead
#: 'scipy.sparse.csc_matrix'
CUPY_SCIPY_CSC = "cupyx.scipy.sparse.csc_matrix"

_SCIPY = (SCIPY_COO, SCIPY_CSR, SCIPY_CSC, SCIPY_COO_ARRAY, SCIPY_CSR_ARRAY, SCIPY_CSC_ARRAY)
_PYDATA = (SPARSE_COO, SPARSE_GCXS, SPARSE_DOK)

#: The CuPy backends (dense and sparse), all on a GPU.
#:
#: Examples
#: --------
#: >>> sorted(CUPY_BACKENDS)
#: ['cupy', 'cupyx.scipy.sparse.coo_matrix', 'cupyx.scipy.sparse.csc_matrix', 'cupyx.scipy.sparse.csr_matrix']
CUPY_BACKENDS = frozenset({CUPY, CUPY_SCIPY_COO, CUPY_SCIPY_CSR, CUPY_SCIPY_CSC})

#: Every backend that needs a GPU: :data:`CUPY_BACKENDS` and :data:`CUDA`.
#:
#: Examples
#: --------
#: >>> CUDA in CUDA_BACKENDS, NUMPY in CUDA_BACKENDS
#: (True, False)
CUDA_BACKENDS = frozenset(CUPY_BACKENDS | {CUDA})

#: Every backend udfwidgets can give frames in: NumPy, scipy.sparse and pydata sparse.
#:
#: Examples
#: --------
#: A UDF that takes any CPU backend gets NumPy frames:
#:
#: >>> choose_backend(CPU_BACKENDS, None, "MyUDF")
#: 'numpy'
#: >>> ALL - CPU_BACKENDS == CUDA_BACKENDS
#: True
CPU_BACKENDS = frozenset({NUMPY, *_SCIPY, *_PYDATA})

#: Every sparse backend (scipy.sparse, pydata sparse, CuPy's sparse matrices).
#:
#: Examples
#: --------
#: >>> SCIPY_CSR in SPARSE_BACKENDS, SPARSE_COO in SPARSE_BACKENDS, NUMPY in SPARSE_BACKENDS
#: (True, True, False)
SPARSE_BACKENDS = frozenset({*_SCIPY, *_PYDATA, CUPY_SCIPY_COO, CUPY_SCIPY_CSR, CUPY_SCIPY_CSC})

#: The dense backends: NumPy, CuPy and CUDA.
#:
#: Examples
#: --------
#: >>> sorted(DENSE_BACKENDS)
#: ['cuda', 'cupy', 'numpy']
DENSE_BACKENDS = frozenset({NUMPY, CUDA, CUPY})

#: The backends whose tiles are 2D, ``(frames, pixels)``: scipy.sparse and CuPy's sparse
#: matrices.
#:
#: Examples
#: --------
#: >>> converter(SCIPY_CSR)(np.ones((2, 3, 4))).shape, SCIPY_CSR in D2_BACKENDS
#: ((2, 12), True)
D2_BACKENDS = frozenset({*_SCIPY, CUPY_SCIPY_COO, CUPY_SCIPY_CSR, CUPY_SCIPY_CSC})

#: The backends whose tiles keep the signal shape, ``(frames, *sig)``: the dense ones and
#: pydata sparse.
#:
#: Examples
#: --------
#: >>> converter(SPARSE_COO)(np.ones((2, 3, 4))).shape, SPARSE_COO in ND_BACKENDS
#: ((2, 3, 4), True)
ND_BACKENDS = frozenset({NUMPY, CUDA, CUPY, *_PYDATA})

#: Every backend name udfwidgets knows (LiberTEM's ``UDF.BACKEND_ALL``).
#:
#: Examples
#: --------
#: >>> len(ALL), NUMPY in ALL, "tensorflow" in ALL
#: (15, True, False)
ALL = frozenset(CPU_BACKENDS | CUDA_BACKENDS)


class BackendError(ValueError):
    """No array backend both the UDF and this machine support.

    Examples
    --------
    A UDF that runs only on a GPU:

    >>> from udfwidgets import UDF, Context
    >>> class GpuOnly(UDF):
    ...     def get_result_buffers(self):
    ...         return {"total": self.buffer(kind="nav")}
    ...     def get_backends(self):
    ...         return (self.BACKEND_CUPY,)
    ...     def process_frame(self, frame):
    ...         self.results.total[:] = frame.sum()
    >>> ctx = Context(executor="inline")
    >>> ctx.run_udf(dataset=ctx.load("memory", data=np.ones((2, 2, 3, 3))), udf=GpuOnly())
    Traceback (most recent call last):
    ...
    udfwidgets.udf.backends.BackendError: GpuOnly.get_backends() offers only ['cupy'], which need a GPU (CuPy/CUDA); udfwidgets computes on the CPU: add UDF.BACKEND_NUMPY to get_backends()
    """


def as_backend_set(backends: Any, what: str) -> tuple[str, ...]:
    """``get_backends()`` output (a name or an iterable of names) as a tuple, checked."""
    if isinstance(backends, str):
        backends = (backends,)
    try:
        out = tuple(backends)
    except TypeError:
        raise BackendError(
            f"{what} must be a backend name or an iterable of names "
            f"(like UDF.BACKEND_NUMPY), got {backends!r}"
        ) from None
    unknown = [b for b in out if b not in ALL]
    if unknown:
        raise BackendError(
            f"{what} names unknown array backends {unknown}; known: {', '.join(sorted(ALL))}"
        )
    return out


def choose_backend(udf_backends: Any, allowed: Iterable[str] | None, udf_name: str) -> str:
    """The backend a UDF's frames come in: NumPy if the UDF takes it, else the
    first CPU backend it lists (in its own order of preference).

    Examples
    --------
    >>> choose_backend((CUPY, NUMPY), None, "U")
    'numpy'
    >>> choose_backend((SCIPY_CSR,), None, "U")
    'scipy.sparse.csr_matrix'
    """
    offered = as_backend_set(udf_backends, f"{udf_name}.get_backends()")
    if allowed is not None:
        allowed = set(as_backend_set(allowed, "run_udf(backends=...)"))
        if CUDA in allowed or CUPY in allowed:  # LiberTEM's device names cover their sparse forms
            allowed |= CUPY_BACKENDS if CUPY in allowed else set()
        if NUMPY in allowed:
            allowed |= set(_SCIPY) | set(_PYDATA)
        offered = tuple(b for b in offered if b in allowed)
        if not offered:
            raise BackendError(
                f"{udf_name} supports none of the backends given as backends={sorted(allowed)}"
            )
    if NUMPY in offered:
        return NUMPY
    for b in offered:
        if b in CPU_BACKENDS:
            return b
    raise BackendError(
        f"{udf_name}.get_backends() offers only {list(offered)}, which need a GPU (CuPy/CUDA); "
        "udfwidgets computes on the CPU: add UDF.BACKEND_NUMPY to get_backends()"
    )


def xp_for(backend: str):
    """The array module a UDF should use (``self.xp``): NumPy for every CPU backend."""
    if backend in CUPY_BACKENDS:  # pragma: no cover - never chosen here
        import cupy

        return cupy
    return np


def converter(backend: str) -> Callable[[np.ndarray], Any] | None:
    """A function turning a dense tile ``(n, *sig)`` into ``backend``'s type; None for NumPy.

    Examples
    --------
    >>> converter("numpy") is None
    True
    >>> converter(SCIPY_CSR)(np.eye(2).reshape(2, 1, 2)).shape
    (2, 2)
    """
    if backend == NUMPY or backend == CUDA:
        return None
    if backend in _SCIPY:
        import scipy.sparse as sp

        cls = getattr(sp, backend.rsplit(".", 1)[1])
        return lambda tile: cls(tile.reshape(tile.shape[0], -1))
    if backend in _PYDATA:
        try:
            import sparse
        except ImportError:
            raise BackendError(
                f"backend {backend!r} needs the 'sparse' package: pip install sparse"
            ) from None
        cls = getattr(sparse, backend.split(".", 1)[1])
        return lambda tile: cls.from_numpy(np.asarray(tile))
    raise BackendError(f"backend {backend!r} is not available on the CPU")  # pragma: no cover


def to_dense(value: Any) -> Any:
    """A dense NumPy view of a sparse array or matrix; anything else unchanged.

    Examples
    --------
    >>> to_dense([1, 2])
    [1, 2]
    """
    if hasattr(value, "todense") and not isinstance(value, np.ndarray):
        return np.asarray(value.todense())
    if hasattr(value, "toarray") and not isinstance(value, np.ndarray):
        return value.toarray()
    return value
