"""Jupyter widgets: live plots, roi and detector selectors, the explorer, the buffer inspector.

Where each piece lives:

- :mod:`.display`: the one display model of every image (scale, colour limits, colour map, axes).
- :mod:`.axes`: calibrated axes of every image (tick labels in units, scale bar, read-outs).
- :mod:`.figure`: the one figure host (ipympl canvas, PNG image or headless), its toolbar.
- :mod:`.static`: static fallbacks (PNG and HTML) for GitHub, nbviewer and docs.
- :mod:`.plots`: live plots of a run (``plots=True``).
- :mod:`.selectors`: drawing a roi or a detector; shapes from :mod:`udfwidgets.masks`.
- :mod:`.explorer`: navigation image and pattern side by side, with a live cursor.
- :mod:`.inspector` (and :mod:`.inspector_data`): looking inside any result.

Imported lazily (``import udfwidgets`` does not import matplotlib or
ipywidgets); the names below load their module on first use.
"""

from __future__ import annotations

import importlib

_LAZY = {
    # live plots
    "LivePlot": "plots",
    "MatplotlibLivePlot": "plots",
    "LivePlotGrid": "plots",
    "make_plots": "plots",
    # selectors and the linked explorer
    "RoiSelector": "selectors",
    "SigMaskSelector": "selectors",
    "explore": "explorer",
    "Explorer": "explorer",
    # buffer inspector
    "BufferInspector": "inspector",
    # the display model
    "DisplayModel": "display",
    "AxisScale": "display",
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
