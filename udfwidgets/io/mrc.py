"""MRC image stacks (``.mrc``, ``.mrcs``; Direct Electron movies): ``ctx.load("mrc", path=...)``.

The header (and extended header) is parsed with **mrcfile** (BSD licence,
in the ``formats`` extra); the frames are then read through this package's own
memory maps at the data offset mrcfile found, so datasets pickle as the path
and every worker maps the file itself. An MRC stack records no scan shape:
give ``nav_shape=``. Volume stacks (4-D MRC) give theirs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np

from .atomic import atomic_output
from .dataset import DataSetError, existing_file
from .files import FrameFiles, FramesDataSet, Segment, _NativeOrder
from .geometry import resolve
from .shape import Shape

__all__ = ["MRCDataSet", "write_mrc", "sniff"]

_EXTRA = "pip install 'udfwidgets[formats]'"


def _mrcfile():
    try:
        import mrcfile
    except ImportError:
        raise DataSetError(
            f"reading and writing MRC files needs the mrcfile package: {_EXTRA}"
        ) from None
    return mrcfile


def sniff(path: str) -> bool:
    """True for a file with the ``MAP`` signature of MRC2014 at byte 208.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.mrc")
    >>> _ = open(path, "wb").write(bytes(1024))
    >>> sniff(path)
    False
    """
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        f.seek(208)
        return f.read(4) == b"MAP "


class MRCDataSet(FramesDataSet):
    """An MRC stack of frames.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.mrc`` / ``.mrcs`` file.
    nav_shape : tuple of int, optional
        The scan shape; by default ``(frames,)`` (a volume stack: its
        ``(volumes, sections)``).
    sync_offset : int
        Navigation frame ``i`` is file frame ``i + sync_offset``.
    num_partitions : int, optional
        Override the default number of partitions.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.mrc import MRCDataSet, write_mrc
    >>> path = os.path.join(tempfile.mkdtemp(), "movie.mrc")
    >>> write_mrc(path, np.ones((2, 3, 16, 16), np.float32))
    >>> MRCDataSet(path, nav_shape=(2, 3)).shape
    Shape((2, 3, 16, 16), sig_dims=2)
    """

    kind = "mrc"

    def __init__(
        self,
        path,
        nav_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
    ):
        super().__init__(num_partitions)
        self.path = existing_file(path, "MRC file")
        mrcfile = _mrcfile()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # permissive: reported below as our own error
                m = mrcfile.mmap(self.path, mode="r", permissive=True)
        except Exception as e:
            raise DataSetError(f"{self.path!r} is not a readable MRC file: {e}") from None
        try:
            data = m.data
            if data is None:
                raise DataSetError(
                    f"{self.path!r} is not a readable MRC file (bad header, or shorter than its "
                    "header says: truncated?); check the file"
                )
            stored = data.dtype
            shape = data.shape
            offset = int(m.header.nbytes + m.extended_header.nbytes)
            vox = m.voxel_size
            pixel = (float(vox.y), float(vox.x))
            exttype = bytes(m.header.exttyp).decode("ascii", "replace").strip("\x00 ")
        finally:
            m.close()
        if len(shape) < 2 or 0 in shape:
            raise DataSetError(
                f"{self.path!r} is not a readable MRC file: its header describes "
                f"an array of shape {shape}, not images"
            )
        sig = tuple(shape[-2:])
        frames = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        expected = offset + frames * int(np.prod(sig)) * stored.itemsize
        if os.path.getsize(self.path) < expected:
            raise DataSetError(
                f"{self.path!r} has {os.path.getsize(self.path)} bytes but its "
                f"header needs {expected}: the file is truncated"
            )
        file_nav = tuple(shape[:-2]) if len(shape) == 4 else None
        self.dtype = stored.newbyteorder("=") if stored.byteorder not in ("=", "|") else stored
        if self.dtype != stored:
            self.decode = _NativeOrder(self.dtype)
        self.files = FrameFiles([Segment(self.path, offset, frames)], stored, sig)
        self.geometry = resolve(frames, nav_shape, sync_offset, file_nav, what=repr(self.path))
        self.shape = Shape(self.geometry.nav_shape + sig, sig_dims=2)
        self.metadata = {
            "format": "MRC",
            "pixel_size": pixel,
            "pixel_unit": "Å",
            "extended_header_type": exttype or None,
        }


def write_mrc(path, data, overwrite: bool = False, voxel_size: float = 1.0) -> None:
    """Write ``data`` ``(*nav, h, w)`` as an MRC stack of ``prod(nav)`` frames (via mrcfile).

    The dtype must be one MRC stores (int8, int16, uint16, float16, float32,
    ...). The scan shape is not recorded (MRC has no place for it).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "m.mrc")
    >>> write_mrc(path, np.zeros((4, 8, 8), np.uint16))
    >>> os.path.getsize(path)
    1536
    """
    mrcfile = _mrcfile()
    data = np.asarray(data)
    if data.ndim < 3:
        raise ValueError(f"data must be (*nav, height, width), got {data.shape}")
    frames = np.ascontiguousarray(data.reshape((-1,) + data.shape[-2:]))
    with atomic_output(path, overwrite=overwrite, suffix=".mrc") as tmp:
        with mrcfile.new(tmp, overwrite=True) as m:
            m.set_data(frames)
            m.voxel_size = voxel_size
