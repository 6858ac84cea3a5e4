"""Jupyter widgets: live plots, roi and detector selectors, the buffer inspector.

Imported lazily (``import udfwidgets`` does not import matplotlib or
ipywidgets); the names below load their module on first use.
"""
from __future__ import annotations

import importlib

_LAZY = {
    # live plots (plots.py)
    "LivePlot": "plots",
    "MatplotlibLivePlot": "plots",
    "make_plots": "plots",
    # selectors and the linked explorer (roi.py, explorer.py)
    "RoiSelector": "roi",
    "SigMaskSelector": "roi",
    "explore": "explorer",
    "Explorer": "explorer",
    # buffer inspector (inspector.py)
    "BufferInspector": "inspector",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'udfwidgets.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
