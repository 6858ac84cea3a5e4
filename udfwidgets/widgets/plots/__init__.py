"""Live plots of UDF results: images and lines that grow while a run goes on.

- :mod:`.base`: :class:`~.base.LivePlot`, the subscription and throttling (pure NumPy).
- :mod:`.spec`: reading the ``plots=`` argument of a run.
- :mod:`.live`: :class:`~.live.MatplotlibLivePlot`, :class:`~.live.LivePlotGrid`,
  :func:`~.live.make_plots`.

``ctx.run_udf(..., plots=True)`` makes a :class:`MatplotlibLivePlot` for every
drawable buffer (see :func:`make_plots`); any object with a ``new_data``
method can subscribe instead (``plots=[my_plot]``), see :class:`LivePlot`.
"""

from . import live
from .base import LivePlot
from .live import COLORMAPS, LivePlotGrid, MatplotlibLivePlot, make_plots

__all__ = ["LivePlot", "MatplotlibLivePlot", "LivePlotGrid", "make_plots", "COLORMAPS"]


def __getattr__(name):
    # MAX_CHANNEL_MENU lives (and is read) in .live; tests patch it there
    if name == "MAX_CHANNEL_MENU":
        return live.MAX_CHANNEL_MENU
    raise AttributeError(name)
