"""LiberTEM's ``libertem.api`` names: ``from udfwidgets.api import Context``.

Examples
--------
>>> from udfwidgets.api import Context
>>> Context.make_with("inline").executor.name
'inline'
"""

from .context import Context, RunCancelled, UDFRunCancelled
from .io.memory import MemoryDataSet
from .udf.base import UDF

__all__ = ["Context", "UDF", "MemoryDataSet", "RunCancelled", "UDFRunCancelled"]
