"""Drawing on images: roi and detector selectors, their shapes, the latest-wins runner.

- :mod:`.shapes`: the masks the tools draw (those of :mod:`udfwidgets.masks`).
- :mod:`.base`: :class:`~.base.MaskSelectorBase`, the image, tools and mask trait.
- :mod:`.roi`: :class:`~.roi.RoiSelector` (navigation) and :class:`~.roi.SigMaskSelector`.
- :mod:`.runner`: :class:`~.runner.LatestRunner`, background runs where the newest wins.
"""

from .roi import RoiSelector, SigMaskSelector

__all__ = ["RoiSelector", "SigMaskSelector"]
