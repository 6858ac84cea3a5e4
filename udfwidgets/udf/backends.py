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

NUMPY = "numpy"
CUDA = "cuda"
CUPY = "cupy"
SPARSE_COO = "sparse.COO"
SPARSE_GCXS = "sparse.GCXS"
SPARSE_DOK = "sparse.DOK"
SCIPY_COO = "scipy.sparse.coo_matrix"
SCIPY_CSR = "scipy.sparse.csr_matrix"
SCIPY_CSC = "scipy.sparse.csc_matrix"
SCIPY_COO_ARRAY = "scipy.sparse.coo_array"
SCIPY_CSR_ARRAY = "scipy.sparse.csr_array"
SCIPY_CSC_ARRAY = "scipy.sparse.csc_array"
CUPY_SCIPY_COO = "cupyx.scipy.sparse.coo_matrix"
CUPY_SCIPY_CSR = "cupyx.scipy.sparse.csr_matrix"
CUPY_SCIPY_CSC = "cupyx.scipy.sparse.csc_matrix"

_SCIPY = (SCIPY_COO, SCIPY_CSR, SCIPY_CSC, SCIPY_COO_ARRAY, SCIPY_CSR_ARRAY, SCIPY_CSC_ARRAY)
_PYDATA = (SPARSE_COO, SPARSE_GCXS, SPARSE_DOK)
CUPY_BACKENDS = frozenset({CUPY, CUPY_SCIPY_COO, CUPY_SCIPY_CSR, CUPY_SCIPY_CSC})
CUDA_BACKENDS = frozenset(CUPY_BACKENDS | {CUDA})
CPU_BACKENDS = frozenset({NUMPY, *_SCIPY, *_PYDATA})
SPARSE_BACKENDS = frozenset({*_SCIPY, *_PYDATA, CUPY_SCIPY_COO, CUPY_SCIPY_CSR, CUPY_SCIPY_CSC})
DENSE_BACKENDS = frozenset({NUMPY, CUDA, CUPY})
D2_BACKENDS = frozenset({*_SCIPY, CUPY_SCIPY_COO, CUPY_SCIPY_CSR, CUPY_SCIPY_CSC})
ND_BACKENDS = frozenset({NUMPY, CUDA, CUPY, *_PYDATA})
ALL = frozenset(CPU_BACKENDS | CUDA_BACKENDS)


class BackendError(ValueError):
    """No array backend both the UDF and this machine support."""


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
