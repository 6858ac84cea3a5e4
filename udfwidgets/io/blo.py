"""NanoMegas blockfiles (``.blo``, ASTAR / TopSpin): ``ctx.load("blo", path=...)``.

Written from the public description of the format. A blockfile is
little-endian: a file header (``IMGBLO``, the offsets of the virtual
bright-field image and of the first frame, the frame size ``DP_SZ``, the scan
shape ``NX`` x ``NY``, scan step, beam energy, camera length, ...), the
virtual bright-field image (``NX * NY`` bytes), then the frames, each a 6-byte
frame header (``0x55AA`` magic and the frame number) followed by
``DP_SZ * DP_SZ`` ``uint8`` pixels. Frames are read as strided views of a
memory map; the virtual bright-field image is not read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .atomic import atomic_output
from .dataset import DataSetError, existing_file
from .files import FrameFiles, FramesDataSet, Segment, whole_frames
from .geometry import resolve
from .shape import Shape

__all__ = ["BloDataSet", "write_blo", "sniff", "HEADER_DTYPE"]

MAGIC = b"IMGBLO"
#: The file header, little-endian.
HEADER_DTYPE = np.dtype(
    [
        ("ID", "S6"),
        ("MAGIC", "<u2"),
        ("Data_offset_1", "<u4"),
        ("Data_offset_2", "<u4"),
        ("UNKNOWN1", "<u4"),
        ("DP_SZ", "<u2"),
        ("DP_rotation", "<u2"),
        ("NX", "<u2"),
        ("NY", "<u2"),
        ("Scan_rotation", "<u2"),
        ("SX", "<f8"),
        ("SY", "<f8"),
        ("Beam_energy", "<u4"),
        ("SDP", "<u2"),
        ("Camera_length", "<u4"),
        ("Acquisition_time", "<f8"),
        ("Centering_N", "<u2", (110,)),
        ("Distortion_N", "<u2", (95,)),
    ]
)
_FRAME_HEADER = 6
_FIRST_DATA = 0x1000


def sniff(path: str) -> bool:
    """True for a file that starts with ``IMGBLO``.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.blo")
    >>> _ = open(path, "wb").write(b"IMGBLO" + bytes(500))
    >>> sniff(path)
    True
    """
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        return f.read(6) == MAGIC


class BloDataSet(FramesDataSet):
    """A NanoMegas blockfile.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.blo`` file.
    nav_shape : tuple of int, optional
        The scan shape; by default the header's ``(NY, NX)``.
    sync_offset : int
        Navigation frame ``i`` is file frame ``i + sync_offset``.
    num_partitions : int, optional
        Override the default number of partitions.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.blo import BloDataSet, write_blo
    >>> path = os.path.join(tempfile.mkdtemp(), "scan.blo")
    >>> write_blo(path, np.ones((3, 4, 16, 16), np.uint8))
    >>> BloDataSet(path).shape
    Shape((3, 4, 16, 16), sig_dims=2)
    """

    kind = "blo"

    def __init__(
        self,
        path,
        nav_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
    ):
        super().__init__(num_partitions)
        self.path = existing_file(path, ".blo file")
        with open(self.path, "rb") as f:
            raw = f.read(HEADER_DTYPE.itemsize)
        if len(raw) < HEADER_DTYPE.itemsize or not raw.startswith(MAGIC):
            raise DataSetError(
                f"{self.path!r} is not a NanoMegas blockfile (it should start with 'IMGBLO'); "
                "check the file, or open it with the kind of its real format"
            )
        hdr = np.frombuffer(raw, HEADER_DTYPE)[0]
        dp, nx, ny = int(hdr["DP_SZ"]), int(hdr["NX"]), int(hdr["NY"])
        offset = int(hdr["Data_offset_2"])
        if dp < 1 or offset < HEADER_DTYPE.itemsize:
            raise DataSetError(
                f"{self.path!r}: the header gives frame size {dp} and data "
                f"offset {offset}; the file is damaged"
            )
        stride = _FRAME_HEADER + dp * dp
        n = whole_frames(self.path, offset, stride)
        self.dtype = np.dtype(np.uint8)
        self.files = FrameFiles(
            [Segment(self.path, offset + _FRAME_HEADER, n, stride)], self.dtype, (dp, dp)
        )
        file_nav = (ny, nx) if nx > 0 and ny > 0 else None
        self.geometry = resolve(n, nav_shape, sync_offset, file_nav, what=repr(self.path))
        self.shape = Shape(self.geometry.nav_shape + (dp, dp), sig_dims=2)
        self.metadata = {
            "format": "NanoMegas blockfile",
            "scan_shape": file_nav,
            # the header's numbers as stored; their units are not documented publicly
            "scan_step": (float(hdr["SY"]), float(hdr["SX"])),
            "beam_energy": int(hdr["Beam_energy"]),
            "camera_length": int(hdr["Camera_length"]),
            "acquisition_time": float(hdr["Acquisition_time"]),
            "dp_rotation": int(hdr["DP_rotation"]),
            "scan_rotation": int(hdr["Scan_rotation"]),
        }


def write_blo(
    path,
    data,
    overwrite: bool = False,
    scan_step: tuple[float, float] = (1.0, 1.0),
    beam_energy: int = 200000,
    camera_length: int = 100,
) -> None:
    """Write ``data`` ``(ny, nx, dp, dp)`` (or ``(n, dp, dp)``) as a blockfile, as ``uint8``.

    Values must lie in 0..255. A 1-D navigation is written as ``NY = 1``.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "scan.blo")
    >>> write_blo(path, np.zeros((2, 2, 8, 8), np.uint8))
    >>> open(path, "rb").read(6)
    b'IMGBLO'
    """
    data = np.asarray(data)
    if data.ndim not in (3, 4) or data.shape[-1] != data.shape[-2]:
        raise ValueError(f"data must be (ny, nx, dp, dp) or (n, dp, dp), got {data.shape}")
    if data.size and (data.min() < 0 or data.max() > 255):
        raise ValueError("blockfiles hold uint8 frames: values must lie in 0..255")
    ny, nx = data.shape[:2] if data.ndim == 4 else (1, data.shape[0])
    dp = data.shape[-1]
    frames = data.reshape(-1, dp, dp)
    n = len(frames)
    hdr = np.zeros((), HEADER_DTYPE)
    hdr["ID"], hdr["MAGIC"] = MAGIC, 0x0102
    hdr["Data_offset_1"] = _FIRST_DATA
    hdr["Data_offset_2"] = _FIRST_DATA + nx * ny
    hdr["DP_SZ"], hdr["NX"], hdr["NY"] = dp, nx, ny
    hdr["SY"], hdr["SX"] = scan_step
    hdr["Beam_energy"], hdr["Camera_length"] = beam_energy, camera_length
    vbf = frames[:, dp // 2 - 1 : dp // 2 + 2, dp // 2 - 1 : dp // 2 + 2].mean(axis=(1, 2))
    with atomic_output(path, overwrite=overwrite) as tmp, open(tmp, "wb") as f:
        f.write(hdr.tobytes().ljust(_FIRST_DATA, b"\x00"))
        f.write(vbf.astype(np.uint8).tobytes())
        block = max(1, (32 << 20) // (dp * dp))
        for a in range(0, n, block):
            b = min(n, a + block)
            heads = np.zeros(b - a, np.dtype([("magic", "<u2"), ("id", "<u4")]))
            heads["magic"], heads["id"] = 0x55AA, np.arange(a, b)
            body = frames[a:b].astype(np.uint8).reshape(b - a, -1)
            f.write(
                np.concatenate([heads.view(np.uint8).reshape(b - a, 6), body], axis=1).tobytes()
            )
