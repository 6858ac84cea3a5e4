"""The UDF API: the :class:`UDF` base class, buffers, meta and the standard UDFs
(``udfwidgets.udf.sum``, ``udfwidgets.udf.sumsigudf``, ...)."""

from .base import UDF, NoOpUDF, UDFMethod, UDFParams, UseDiscouragedWarning
from .buffers import (
    BufferDeclaration,
    BufferError,
    BufferWrapper,
    InvalidMaskError,
    UDFException,
    UDFMethodError,
    UndeclaredBufferError,
)
from .meta import Slice, UDFMeta

__all__ = [
    "UDF",
    "NoOpUDF",
    "UDFMethod",
    "UDFParams",
    "UseDiscouragedWarning",
    "BufferDeclaration",
    "BufferError",
    "BufferWrapper",
    "InvalidMaskError",
    "UDFException",
    "UDFMethodError",
    "UndeclaredBufferError",
    "UDFMeta",
    "Slice",
]
