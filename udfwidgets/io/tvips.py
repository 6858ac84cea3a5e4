"""TVIPS recorder movies (``.tvips``, e.g. from EM-Menu / TemCam-XF): ``ctx.load("tvips", ...)``.

Written from the public description of the format: a little-endian 256-byte
general header (``size, version, dimx, dimy, bitsperpixel, offsetx, offsety,
binx, biny, pixelsize, ht, magtotal, frameheaderbytes``), then the frames,
each a frame header (``frameheaderbytes`` bytes for version 2, 12 for
version 1: frame number, time stamp, ...) followed by ``dimy x dimx`` pixels
of 8 or 16 bits. A long recording is a series ``name_000.tvips``,
``name_001.tvips``, ...; files after the first start with their frames (a
general header there is recognised and skipped). A frame split over two
files is not supported (the first file's incomplete last frame is reported
as truncated). The scan shape is not read from the frame headers: give
``nav_shape=``.
"""

from __future__ import annotations

import glob
import math
import os
import re
from collections.abc import Sequence

import numpy as np

from .atomic import atomic_output, check_target
from .dataset import DataSetError, existing_file
from .files import FrameFiles, FramesDataSet, Segment, whole_frames
from .geometry import resolve
from .shape import Shape

__all__ = ["TVIPSDataSet", "write_tvips", "sniff", "HEADER_DTYPE"]

#: The 256-byte file header of a TVIPS .tvips file (little-endian fields), as a structured dtype.
HEADER_DTYPE = np.dtype(
    [
        ("size", "<u4"),
        ("version", "<u4"),
        ("dimx", "<u4"),
        ("dimy", "<u4"),
        ("bitsperpixel", "<u4"),
        ("offsetx", "<u4"),
        ("offsety", "<u4"),
        ("binx", "<u4"),
        ("biny", "<u4"),
        ("pixelsize", "<u4"),
        ("ht", "<u4"),
        ("magtotal", "<u4"),
        ("frameheaderbytes", "<u4"),
        ("dummy", "S204"),
    ]
)
FRAME_HEADER_DTYPE = np.dtype(
    [
        ("num", "<u4"),
        ("timestamp", "<u4"),
        ("ms", "<u4"),
        ("LUTidx", "<u4"),
        ("fcurrent", "<f4"),
        ("mag", "<u4"),
        ("mode", "<u4"),
        ("stagex", "<f4"),
        ("stagey", "<f4"),
        ("stagez", "<f4"),
        ("stagea", "<f4"),
        ("stageb", "<f4"),
        ("rotidx", "<u4"),
        ("temperature", "<f4"),
        ("objective", "<f4"),
    ]
)
_SERIES = re.compile(r"^(.*)_(\d{3})\.tvips$", re.IGNORECASE)


def _header(raw: bytes):
    if len(raw) < HEADER_DTYPE.itemsize:
        return None
    hdr = np.frombuffer(raw[: HEADER_DTYPE.itemsize], HEADER_DTYPE)[0]
    if int(hdr["version"]) not in (1, 2) or int(hdr["bitsperpixel"]) not in (8, 16):
        return None
    if not (0 < int(hdr["dimx"]) <= 65536 and 0 < int(hdr["dimy"]) <= 65536):
        return None
    return hdr


def sniff(path: str) -> bool:
    """True for a ``.tvips`` file with a plausible general header.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.tvips")
    >>> _ = open(path, "wb").write(bytes(300))
    >>> sniff(path)
    False
    """
    if not (os.path.isfile(path) and path.lower().endswith(".tvips")):
        return False
    with open(path, "rb") as f:
        return _header(f.read(HEADER_DTYPE.itemsize)) is not None


class TVIPSDataSet(FramesDataSet):
    """A TVIPS recording: one ``.tvips`` file or a ``_000``, ``_001``, ... series.

    Parameters
    ----------
    path : str or os.PathLike
        The first file (``name_000.tvips``: the rest of the series next to it
        is found) or a single ``.tvips`` file.
    nav_shape : tuple of int, optional
        The scan shape; by default ``(frames,)``.
    sync_offset : int
        Navigation frame ``i`` is file frame ``i + sync_offset``.
    num_partitions : int, optional
        Override the default number of partitions.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.tvips import TVIPSDataSet, write_tvips
    >>> path = os.path.join(tempfile.mkdtemp(), "movie_000.tvips")
    >>> write_tvips(path, np.ones((6, 16, 16), np.uint16), frames_per_file=4)
    >>> TVIPSDataSet(path, nav_shape=(2, 3)).shape
    Shape((2, 3, 16, 16), sig_dims=2)
    """

    kind = "tvips"

    def __init__(
        self,
        path,
        nav_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
    ):
        super().__init__(num_partitions)
        self.path = existing_file(path, ".tvips file")
        with open(self.path, "rb") as f:
            hdr = _header(f.read(HEADER_DTYPE.itemsize))
        if hdr is None:
            raise DataSetError(
                f"{self.path!r} has no TVIPS general header (version 1 or 2, 8 or 16 bits per "
                "pixel); if it is a later file of a series, open the _000 file"
            )
        m = _SERIES.match(self.path)
        files = [self.path]
        if m:
            first = int(m.group(2))
            files = sorted(
                p
                for p in glob.glob(glob.escape(m.group(1)) + "_[0-9][0-9][0-9].tvips")
                if (part := _SERIES.match(p)) is not None and int(part.group(2)) >= first
            )
        version = int(hdr["version"])
        fh = int(hdr["frameheaderbytes"]) if version == 2 else 12
        dimx, dimy, bits = int(hdr["dimx"]), int(hdr["dimy"]), int(hdr["bitsperpixel"])
        stored = np.dtype("<u2" if bits == 16 else "u1")
        frame_bytes = dimx * dimy * stored.itemsize
        stride = fh + frame_bytes
        segments = []
        for i, p in enumerate(files):
            existing_file(p, ".tvips file")
            start = HEADER_DTYPE.itemsize
            if i:
                with open(p, "rb") as f:
                    start = (
                        HEADER_DTYPE.itemsize
                        if _header(f.read(HEADER_DTYPE.itemsize)) is not None
                        else 0
                    )
            n = whole_frames(p, start, stride)
            segments.append(Segment(p, start + fh, n, stride))
        self.dtype = stored.newbyteorder("=")
        self.files = FrameFiles(segments, stored, (dimy, dimx))
        self.geometry = resolve(self.files.num_frames, nav_shape, sync_offset, what=repr(self.path))
        self.shape = Shape(self.geometry.nav_shape + (dimy, dimx), sig_dims=2)
        self.metadata = {
            "format": "TVIPS",
            "version": version,
            "bits_per_pixel": bits,
            "pixel_size": int(hdr["pixelsize"]),
            "pixel_unit": "nm",
            "high_tension_kV": int(hdr["ht"]),
            "magnification": int(hdr["magtotal"]),
            "binning": (int(hdr["biny"]), int(hdr["binx"])),
            "files": files,
        }


def write_tvips(
    path, data, overwrite: bool = False, frames_per_file: int | None = None, pixel_size_nm: int = 1
) -> None:
    """Write ``data`` ``(*nav, h, w)`` as a TVIPS version-2 recording, 16 bits per pixel.

    With ``frames_per_file`` the frames are split into a series; ``path`` must
    then end in ``_000.tvips``. Values must lie in 0..65535.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "movie_000.tvips")
    >>> write_tvips(path, np.zeros((3, 8, 8), np.uint16))
    >>> os.path.getsize(path)  # general header, then 3 x (60-byte frame header + 8 x 8 x 2 bytes)
    820
    """
    data = np.asarray(data)
    if data.ndim < 3:
        raise ValueError(f"data must be (*nav, height, width), got {data.shape}")
    if data.size and (data.min() < 0 or data.max() > 65535):
        raise ValueError("values must lie in 0..65535 (16 bits per pixel)")
    h, w = data.shape[-2:]
    frames = data.reshape(-1, h, w)
    n = len(frames)
    per = n if frames_per_file is None else int(frames_per_file)
    nfiles = math.ceil(n / per)
    path = os.fspath(path)
    if nfiles > 1:
        m = _SERIES.match(path)
        if not m or m.group(2) != "000":
            raise ValueError("a series of files needs a path ending in _000.tvips")
        names = [f"{m.group(1)}_{k:03d}.tvips" for k in range(nfiles)]
    else:
        names = [path]
    for p in names:
        check_target(p, overwrite)
    fh = FRAME_HEADER_DTYPE.itemsize
    hdr = np.zeros((), HEADER_DTYPE)
    hdr["size"], hdr["version"], hdr["dimx"], hdr["dimy"] = 256, 2, w, h
    hdr["bitsperpixel"], hdr["binx"], hdr["biny"] = 16, 1, 1
    hdr["pixelsize"], hdr["ht"], hdr["frameheaderbytes"] = pixel_size_nm, 300, fh
    for k, name in enumerate(names):
        lo, hi = k * per, min(n, (k + 1) * per)
        with atomic_output(name, overwrite=overwrite) as tmp, open(tmp, "wb") as f:
            if k == 0:
                f.write(hdr.tobytes())
            fhs = np.zeros(hi - lo, FRAME_HEADER_DTYPE)
            fhs["num"] = np.arange(lo, hi)
            body = frames[lo:hi].astype("<u2").reshape(hi - lo, -1).view(np.uint8)
            f.write(
                np.concatenate([fhs.view(np.uint8).reshape(hi - lo, fh), body], axis=1).tobytes()
            )
