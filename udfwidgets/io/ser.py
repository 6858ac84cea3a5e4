"""FEI/Thermo Fisher TIA series files (``.ser``) of 2-D images: ``ctx.load("ser", path=...)``.

Written from the public description of the SER format (little-endian): a
header (byte order ``0x4949``, series id ``0x0197``, version ``0x0210`` with
4-byte or ``0x0220`` with 8-byte offsets, data type ``0x4122`` for 2-D
images, tag type, total and valid number of elements, the offset of the
offset arrays, the number of dimensions), the dimension arrays (size,
calibration offset and delta, description, units), then the data elements,
each a 50-byte element header (calibrations, data type, ``ArraySizeX``,
``ArraySizeY``) followed by the pixels. Frames whose offsets are evenly spaced
(as TIA writes them) are read as one strided view; other layouts are refused.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

import numpy as np

from .atomic import atomic_output
from .dataset import DataSetError, existing_file
from .files import FrameFiles, FramesDataSet, Segment
from .geometry import resolve
from .shape import Shape

__all__ = ["SERDataSet", "write_ser", "sniff"]

_TYPES = {1: "<u1", 2: "<u2", 3: "<u4", 4: "<i1", 5: "<i2", 6: "<i4", 7: "<f4", 8: "<f8"}
_CODES = {np.dtype(v): k for k, v in _TYPES.items()}
_ELEMENT_HEADER = 50


def sniff(path: str) -> bool:
    """True for a file that starts like a SER file (``II``, series id 0x0197).

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.ser")
    >>> _ = open(path, "wb").write(bytes(64))
    >>> sniff(path)
    False
    """
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        head = f.read(6)
    return len(head) == 6 and struct.unpack("<HHH", head)[:2] == (0x4949, 0x0197)


class SERDataSet(FramesDataSet):
    """A TIA ``.ser`` series of 2-D images (a 4D-STEM scan or a movie).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.ser`` file.
    nav_shape : tuple of int, optional
        The scan shape; by default the series' dimensions, slowest first.
    sync_offset : int
        Navigation frame ``i`` is file frame ``i + sync_offset``.
    num_partitions : int, optional
        Override the default number of partitions.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.ser import SERDataSet, write_ser
    >>> path = os.path.join(tempfile.mkdtemp(), "scan.ser")
    >>> write_ser(path, np.ones((2, 3, 8, 8), np.uint16))
    >>> SERDataSet(path).shape
    Shape((2, 3, 8, 8), sig_dims=2)
    """

    kind = "ser"

    def __init__(
        self,
        path,
        nav_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
    ):
        super().__init__(num_partitions)
        self.path = existing_file(path, ".ser file")
        size = os.path.getsize(self.path)
        with open(self.path, "rb") as f:
            head = f.read(30)
            if len(head) < 30 or struct.unpack("<HH", head[:4]) != (0x4949, 0x0197):
                raise DataSetError(
                    f"{self.path!r} is not a TIA .ser file (it should start with "
                    "II and series id 0x0197); check the file or its kind"
                )
            version, dtype_id, _tag, total, valid = struct.unpack("<HIIII", head[4:22])
            if dtype_id != 0x4122:
                raise DataSetError(
                    f"{self.path!r} holds 1-D spectra (data type {dtype_id:#x}); "
                    "only series of 2-D images are read"
                )
            wide = version >= 0x0220
            fmt = "<Q" if wide else "<I"
            f.seek(18)
            f.seek(22)
            off_arr = struct.unpack(fmt, f.read(8 if wide else 4))[0]
            ndim = struct.unpack("<I", f.read(4))[0]
            dims, units = [], []
            for _ in range(ndim):
                dsize, cal_off, cal_delta, _elem, dlen = struct.unpack("<Iddii", f.read(28))
                f.read(dlen)
                ulen = struct.unpack("<I", f.read(4))[0]
                units.append((cal_delta, f.read(ulen).decode("latin-1")))
                dims.append(dsize)
            if valid < 1 or off_arr + total * (8 if wide else 4) > size:
                raise DataSetError(
                    f"{self.path!r} has no frames or is truncated (offset array "
                    "past the end of the file)"
                )
            f.seek(off_arr)
            offsets = np.frombuffer(
                f.read(valid * (8 if wide else 4)), "<u8" if wide else "<u4"
            ).astype(np.int64)
            f.seek(int(offsets[0]))
            el = f.read(_ELEMENT_HEADER)
        if len(el) < _ELEMENT_HEADER:
            raise DataSetError(f"{self.path!r} is truncated: its first frame is missing")
        (_, dx, _, _, dy, _, code, nx, ny) = struct.unpack("<ddiddiHII", el)
        if code not in _TYPES:
            raise DataSetError(f"{self.path!r} has frames of data type {code}, not read here")
        stored = np.dtype(_TYPES[code])
        frame_bytes = nx * ny * stored.itemsize
        stride = int(offsets[1] - offsets[0]) if valid > 1 else _ELEMENT_HEADER + frame_bytes
        if valid > 1 and not (np.diff(offsets) == stride).all():
            raise DataSetError(
                f"{self.path!r}: its frames are not evenly spaced in the file; "
                "this layout is not supported (convert the file)"
            )
        if int(offsets[-1]) + _ELEMENT_HEADER + frame_bytes > size:
            raise DataSetError(f"{self.path!r} is truncated: its last frame ends past the file")
        self.dtype = stored.newbyteorder("=")
        self.files = FrameFiles(
            [Segment(self.path, int(offsets[0]) + _ELEMENT_HEADER, valid, stride)], stored, (ny, nx)
        )
        file_nav = tuple(dims) if int(np.prod(dims)) == valid else None
        self.geometry = resolve(valid, nav_shape, sync_offset, file_nav, what=repr(self.path))
        self.shape = Shape(self.geometry.nav_shape + (ny, nx), sig_dims=2)
        self.metadata = {
            "format": "TIA SER",
            "pixel_size": (dy, dx),
            "pixel_unit": "m",
            "scan_step": tuple(u[0] for u in units),
            "scan_unit": units[0][1] if units else None,
        }


def write_ser(path, data, overwrite: bool = False, pixel_size_m: float = 1e-10) -> None:
    """Write ``data`` ``(*nav, h, w)`` (1 or 2 nav dims) as a TIA ``.ser`` file, version 0x0220.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "a.ser")
    >>> write_ser(path, np.zeros((4, 8, 8), np.float32))
    >>> sniff(path)
    True
    """
    data = np.asarray(data)
    dt = data.dtype.newbyteorder("<") if data.dtype.byteorder != "|" else data.dtype
    if np.dtype(dt.str) not in _CODES or data.ndim not in (3, 4):
        raise ValueError(
            f"write_ser writes (n, h, w) or (ny, nx, h, w) arrays of "
            f"{sorted(map(str, _CODES))}, got {data.ndim}-D {data.dtype}"
        )
    nav = data.shape[:-2]
    ny, nx = data.shape[-2:]
    frames = data.reshape((-1, ny, nx)).astype(dt.str)
    n = len(frames)
    head = struct.pack("<HHHIIIIQI", 0x4949, 0x0197, 0x0220, 0x4122, 0x4152, n, n, 0, len(nav))
    dims = b""
    for d in nav:
        unit = b"m"
        dims += struct.pack("<Iddii", d, 0.0, 1e-9, 0, 0) + struct.pack("<I", len(unit)) + unit
    first = len(head) + len(dims)
    stride = _ELEMENT_HEADER + nx * ny * dt.itemsize
    offsets = first + stride * np.arange(n, dtype=np.int64)
    off_arr = first + stride * n
    head = head[:22] + struct.pack("<Q", off_arr) + head[30:]
    el = struct.pack(
        "<ddiddiHII", 0.0, pixel_size_m, 0, 0.0, pixel_size_m, 0, _CODES[np.dtype(dt.str)], nx, ny
    )
    with atomic_output(path, overwrite=overwrite) as tmp, open(tmp, "wb") as f:
        f.write(head + dims)
        block = max(1, (32 << 20) // stride)
        for a in range(0, n, block):
            b = min(n, a + block)
            heads = np.frombuffer(el * (b - a), np.uint8).reshape(b - a, _ELEMENT_HEADER)
            f.write(
                np.concatenate(
                    [heads, frames[a:b].reshape(b - a, -1).view(np.uint8)], axis=1
                ).tobytes()
            )
        f.write(offsets.astype("<u8").tobytes())
        tags = np.zeros(n, np.dtype([("type", "<u2"), ("time", "<u4")]))
        tags["type"] = 0x4152
        tag_first = off_arr + 16 * n
        f.write((tag_first + 6 * np.arange(n, dtype=np.int64)).astype("<u8").tobytes())
        f.write(tags.tobytes())
