"""Gatan Digital Micrograph files (``.dm3``, ``.dm4``): ``ctx.load("dm", path=...)``.

Our own minimal reader, written from the public description of the DM3/DM4
tag structure (ncempy's ``io`` module is MIT-licensed and could have been used;
a reader of our own needs no extra dependency, keeps the data memory-mapped
and pickles as the path). It reads:

- one file holding a 3-D or 4-D image (a 4D-STEM scan, a movie): the largest
  image of its ``ImageList``; ``Dimensions`` are listed fastest first, so the
  array is ``reversed(Dimensions)`` in C order (for 4D-STEM:
  ``(scan_y, scan_x, sig_y, sig_x)``);
- a stack of 2-D files (a list or a glob pattern), one frame per file.

The file's layout: a header (version, root length: 4 bytes in DM3, 8 in
DM4, byte order of the data), then a tree of tag groups and data tags; tag
names, lengths and type descriptions are big-endian, values in the header's
byte order. Only the image data, its dimensions and the calibrations
(scale, units) are read; other tags are not.
"""

from __future__ import annotations

import glob
import os
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from .atomic import atomic_output
from .dataset import DataSetError, existing_file
from .files import FrameFiles, FramesDataSet, Segment, _NativeOrder
from .geometry import resolve
from .shape import Shape

__all__ = ["DMDataSet", "write_dm", "sniff", "read_tags"]

_SIMPLE = {
    2: "i2",
    3: "i4",
    4: "u2",
    5: "u4",
    6: "f4",
    7: "f8",
    8: "u1",
    9: "i1",
    10: "u1",
    11: "i8",
    12: "u8",
}
_CODE = {np.dtype(v): k for k, v in _SIMPLE.items() if k not in (8, 9)}
_CODE[np.dtype("i1")] = 9
#: Gatan's image DataType codes.
_IMAGE_TYPE = {
    np.dtype("i2"): 1,
    np.dtype("f4"): 2,
    np.dtype("u1"): 6,
    np.dtype("i4"): 7,
    np.dtype("i1"): 9,
    np.dtype("u2"): 10,
    np.dtype("u4"): 11,
    np.dtype("f8"): 12,
    np.dtype("i8"): 13,
    np.dtype("u8"): 14,
}


def sniff(path: str) -> bool:
    """True for a file with a DM3/DM4 header (version 3 or 4, byte order 0 or 1).

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.dm4")
    >>> _ = open(path, "wb").write(bytes(64))
    >>> sniff(path)
    False
    """
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 16:
        return False
    version = struct.unpack(">I", head[:4])[0]
    if version == 3:
        order = struct.unpack(">I", head[8:12])[0]
    elif version == 4:
        order = struct.unpack(">I", head[12:16])[0]
    else:
        return False
    return order in (0, 1)


class _Array:
    """An array tag: where its data are, not the data."""

    def __init__(self, offset: int, dtype: np.dtype, length: int, text: str | None = None):
        self.offset, self.dtype, self.length, self.text = offset, dtype, length, text

    def __repr__(self):
        return f"<array {self.dtype} x {self.length} at {self.offset}>"


class _Reader:
    def __init__(self, f, path: str):
        self.f, self.path = f, path
        head = f.read(16)
        if len(head) < 16:
            raise DataSetError(f"{path!r} is too short for a DM header: truncated or not a DM file")
        self.version = struct.unpack(">I", head[:4])[0]
        if self.version not in (3, 4):
            raise DataSetError(
                f"{path!r} is not a Gatan DM3/DM4 file (version field "
                f"{self.version}); check the file or open it with its real kind"
            )
        self.isize = 8 if self.version == 4 else 4
        order_pos = 12 if self.version == 4 else 8
        order = struct.unpack(">I", head[order_pos : order_pos + 4])[0]
        self.bo = "<" if order == 1 else ">"
        f.seek(order_pos + 4)
        self.size = os.fstat(f.fileno()).st_size

    def _int(self) -> int:
        raw = self.f.read(self.isize)
        if len(raw) < self.isize:
            raise EOFError
        return struct.unpack(">Q" if self.isize == 8 else ">I", raw)[0]

    def group(self) -> dict:
        self.f.read(2)  # sorted, open
        n = self._int()
        if n > 10**7:
            raise DataSetError(
                f"{self.path!r}: a tag group claims {n} entries; the file is damaged"
            )
        out: dict = {}
        for i in range(n):
            kind = self.f.read(1)
            if not kind or kind == b"\x00":
                break
            name_len = struct.unpack(">H", self.f.read(2))[0]
            name = self.f.read(name_len).decode("latin-1") or f"#{i}"
            if self.version == 4:
                self._int()  # total length of the tag
            if kind == b"\x14":
                out[name] = self.group()
            elif kind == b"\x15":
                out[name] = self.data()
            else:
                raise DataSetError(f"{self.path!r}: unknown tag kind {kind!r}; the file is damaged")
        return out

    def _simple(self, code: int):
        dt = np.dtype(self.bo + _SIMPLE[code])
        return np.frombuffer(self.f.read(dt.itemsize), dt)[0].item()

    def data(self):
        if self.f.read(4) != b"%%%%":
            raise DataSetError(f"{self.path!r}: a data tag lacks its '%%%%' mark; damaged file")
        n = self._int()
        info = [self._int() for _ in range(n)]
        code = info[0]
        if code in _SIMPLE:
            return self._simple(code)
        if code == 18:  # string: UTF-16 of info[1] characters
            return self.f.read(2 * info[1]).decode(
                "utf-16-le" if self.bo == "<" else "utf-16-be", "replace"
            )
        if code == 15:  # struct
            nfields = info[2]
            return tuple(self._simple(info[4 + 2 * k]) for k in range(nfields))
        if code == 20:
            elem = info[1]
            if elem in _SIMPLE:
                length = info[2]
                dt = np.dtype(self.bo + _SIMPLE[elem])
                offset = self.f.tell()
                nbytes = length * dt.itemsize
                text = None
                if elem == 4 and length <= 256:  # short uint16 arrays are mostly text (units)
                    text = "".join(map(chr, np.frombuffer(self.f.read(nbytes), dt)))
                self.f.seek(offset + nbytes)
                if offset + nbytes > self.size:
                    raise DataSetError(
                        f"{self.path!r} ends inside an array of {length} values: the file is "
                        "truncated; copy it again"
                    )
                return _Array(offset, dt, length, text)
            if elem == 15:  # array of structs
                nfields = info[3]
                codes = [info[5 + 2 * k] for k in range(nfields)]
                length = info[4 + 2 * nfields]
                size = sum(np.dtype(_SIMPLE[c]).itemsize for c in codes)
                self.f.seek(self.f.tell() + length * size)
                return None
        raise DataSetError(f"{self.path!r}: unknown DM type code {code}; damaged or unsupported")


def read_tags(path: str) -> tuple[dict, str, int]:
    """The tag tree of a DM file (arrays as locations), its byte order and version.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "a.dm4")
    >>> write_dm(path, np.zeros((2, 3, 4, 5), np.float32))
    >>> tags, order, version = read_tags(path)
    >>> tags["ImageList"]["#0"]["ImageData"]["Dimensions"], version
    ({'#0': 5, '#1': 4, '#2': 3, '#3': 2}, 4)
    """
    with open(path, "rb") as f:
        r = _Reader(f, path)
        try:
            tree = r.group()
        except (EOFError, struct.error):
            raise DataSetError(
                f"{path!r} ends inside its tag structure: the file is truncated "
                "or not a DM file; copy it again"
            ) from None
    return tree, r.bo, r.version


def _largest_image(tree: dict, path: str):
    images = []
    for entry in (tree.get("ImageList") or {}).values():
        data = entry.get("ImageData", {}) if isinstance(entry, dict) else {}
        arr, dims = data.get("Data"), data.get("Dimensions")
        if isinstance(arr, _Array) and isinstance(dims, dict) and dims:
            images.append((arr.length, arr, [int(v) for v in dims.values()], data))
    if not images:
        raise DataSetError(
            f"{path!r} holds no image data (ImageList/ImageData/Data); it is not a DM image file"
        )
    return max(images, key=lambda t: t[0])[1:]


def _calibrations(data: dict) -> list:
    dims = (data.get("Calibrations") or {}).get("Dimension") or {}
    out = []
    for d in dims.values():
        if isinstance(d, dict):
            units = d.get("Units")
            out.append((d.get("Scale"), units.text if isinstance(units, _Array) else units))
    return out[::-1]


class DMDataSet(FramesDataSet):
    """A Gatan DM3/DM4 file with a 3-D/4-D image, or a stack of 2-D DM files.

    Parameters
    ----------
    path : str, os.PathLike, list or glob pattern
        One ``.dm4``/``.dm3`` file, or several (a list, or a pattern such as
        ``"frames/*.dm4"``, sorted by name), each holding one 2-D frame.
    nav_shape : tuple of int, optional
        The scan shape; by default the file's own (3-D: ``(frames,)``,
        4-D: its two scan dimensions; a stack: ``(files,)``).
    sync_offset : int
        Navigation frame ``i`` is file frame ``i + sync_offset``.
    num_partitions : int, optional
        Override the default number of partitions.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.dm import DMDataSet, write_dm
    >>> path = os.path.join(tempfile.mkdtemp(), "scan.dm4")
    >>> write_dm(path, np.ones((2, 3, 8, 8), np.uint16))
    >>> DMDataSet(path).shape
    Shape((2, 3, 8, 8), sig_dims=2)
    """

    kind = "dm"

    def __init__(
        self,
        path,
        nav_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
    ):
        super().__init__(num_partitions)
        if isinstance(path, (list, tuple)):
            paths = [existing_file(p, "DM file") for p in path]
        elif isinstance(path, (str, os.PathLike)) and any(
            c in os.path.basename(os.fspath(path)) for c in "*?["
        ):
            paths = sorted(glob.glob(os.fspath(path)))
            if not paths:
                raise DataSetError(f"no file matches {os.fspath(path)!r}")
        else:
            paths = [existing_file(path, "DM file")]
        if not paths:
            raise DataSetError('ctx.load("dm", path=[]) got an empty list of files')
        self.path = (
            paths[0]
            if len(paths) == 1
            else os.fspath(path)
            if not isinstance(path, (list, tuple))
            else paths[0]
        )
        segments: list[Segment] = []
        first: tuple[np.dtype, tuple[int, ...], Any, int] | None = None
        for p in paths:
            tree, _, version = read_tags(p)
            arr, dims, data = _largest_image(tree, p)
            shape = tuple(reversed(dims))
            if int(np.prod(shape)) != arr.length:
                raise DataSetError(
                    f"{p!r}: Dimensions {dims} do not match the {arr.length} "
                    "values of its data; the file is damaged"
                )
            if arr.offset + arr.length * arr.dtype.itemsize > os.path.getsize(p):
                raise DataSetError(f"{p!r} is truncated: its image data end past the file")
            if len(paths) > 1:
                if len(shape) != 2:
                    raise DataSetError(
                        f"{p!r} holds a {len(shape)}-D image; a stack of files "
                        "needs one 2-D frame per file"
                    )
                shape = (1,) + shape
            elif len(shape) not in (3, 4):
                raise DataSetError(
                    f"{p!r} holds a {len(shape)}-D image; one file must hold 3-D or 4-D data "
                    "(a stack of 2-D files is opened as a list or pattern of files)"
                )
            if first is None:
                first = (arr.dtype, shape[-2:], data, version)
            elif (arr.dtype, shape[-2:]) != first[:2]:
                raise DataSetError(
                    f"{p!r} has frames of {shape[-2:]} {arr.dtype}, unlike "
                    f"{paths[0]!r} ({first[1]} {first[0]}); not one stack"
                )
            segments.append(Segment(p, arr.offset, int(np.prod(shape[:-2]))))
        assert first is not None  # paths is not empty (checked above)
        stored, sig, data, version = first
        self.dtype = stored.newbyteorder("=") if stored.byteorder not in ("=", "|") else stored
        if self.dtype != stored:
            self.decode = _NativeOrder(self.dtype)
        self.files = FrameFiles(segments, stored, tuple(sig))
        file_nav = tuple(reversed(dims))[:2] if len(paths) == 1 and len(dims) == 4 else None
        self.geometry = resolve(
            self.files.num_frames, nav_shape, sync_offset, file_nav, what=repr(self.path)
        )
        self.shape = Shape(self.geometry.nav_shape + tuple(sig), sig_dims=2)
        cal = _calibrations(data)
        self.metadata = {"format": f"Gatan DM{version}", "files": paths}
        if len(cal) >= 2:
            (sy, uy), (sx, ux) = cal[-2], cal[-1]
            self.metadata.update(pixel_size=(sy, sx), pixel_unit=ux or uy)
        if len(cal) == 4:
            (sy, uy), (sx, ux) = cal[0], cal[1]
            self.metadata.update(scan_step=(sy, sx), scan_unit=ux or uy)


# ----------------------------------------------------------------------------- writer
class _Writer:
    def __init__(self, version: int):
        self.version = version
        self.q = ">Q" if version == 4 else ">I"

    def _i(self, v: int) -> bytes:
        return struct.pack(self.q, v)

    def _named(self, kind: int, name: str, body: bytes) -> bytes:
        raw = name.encode("latin-1")
        out = bytes([kind]) + struct.pack(">H", len(raw)) + raw
        if self.version == 4:
            out += self._i(len(body))
        return out + body

    def group(self, name: str, items: list[bytes]) -> bytes:
        return self._named(20, name, b"\x00\x00" + self._i(len(items)) + b"".join(items))

    def simple(self, name: str, value, dtype) -> bytes:
        dt = np.dtype(dtype).newbyteorder("<")
        info = self._i(1) + self._i(_CODE[np.dtype(dtype)])
        return self._named(21, name, b"%%%%" + info + np.asarray(value, dt).tobytes())

    def array_header(self, dtype, length: int) -> bytes:
        return (
            b"%%%%" + self._i(3) + self._i(20) + self._i(_CODE[np.dtype(dtype)]) + self._i(length)
        )

    def string(self, name: str, text: str) -> bytes:
        vals = np.frombuffer(text.encode("utf-16-le"), "<u2")
        return self._named(21, name, self.array_header("u2", len(vals)) + vals.tobytes())


def write_dm(
    path,
    data,
    overwrite: bool = False,
    version: int = 4,
    pixel_size: float = 1.0,
    pixel_unit: str = "1/nm",
) -> None:
    """Write ``data`` (2-D to 4-D) as a little-endian DM4 (or DM3) file with one image.

    Dimensions are written fastest first (``reversed(data.shape)``), the
    frame calibration as ``pixel_size`` in ``pixel_unit``.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "a.dm3")
    >>> write_dm(path, np.zeros((3, 8, 8), np.float32), version=3)
    >>> sniff(path)
    True
    """
    data = np.asarray(data)
    dt = data.dtype.newbyteorder("=")
    if dt not in _IMAGE_TYPE or not 2 <= data.ndim <= 4:
        raise ValueError(
            f"write_dm writes 2-D to 4-D arrays of {sorted(map(str, _IMAGE_TYPE))}, "
            f"got {data.ndim}-D {data.dtype}"
        )
    if version not in (3, 4):
        raise ValueError("version must be 3 or 4")
    w = _Writer(version)
    dims = [w.simple("", int(d), "u4") for d in reversed(data.shape)]
    cal = []
    for k in range(data.ndim):
        scale = pixel_size if k < 2 else 1.0
        unit = pixel_unit if k < 2 else "nm"
        cal.append(
            w.group(
                "",
                [
                    w.simple("Origin", 0.0, "f4"),
                    w.simple("Scale", scale, "f4"),
                    w.string("Units", unit),
                ],
            )
        )
    arr = np.ascontiguousarray(data, dtype=dt.newbyteorder("<"))
    image_data_items_before = [w.group("Calibrations", [w.group("Dimension", cal)])]
    data_body_head = w.array_header(dt, arr.size)
    data_tag_head = bytes([21]) + struct.pack(">H", 4) + b"Data"
    if version == 4:
        data_tag_head += w._i(len(data_body_head) + arr.nbytes)
    data_tag_head += data_body_head
    after = [
        w.simple("DataType", _IMAGE_TYPE[dt], "i4"),
        w.group("Dimensions", dims),
        w.simple("PixelDepth", dt.itemsize, "u4"),
    ]
    before = b"".join(image_data_items_before)
    tail = b"".join(after)
    n_items = len(image_data_items_before) + 1 + len(after)
    # the groups around the data array are sized by hand: the array is streamed, not built
    isz = 8 if version == 4 else 4
    body_len = 2 + isz + len(before) + len(data_tag_head) + arr.nbytes + len(tail)

    def group_head(name: str, n: int, blen: int) -> bytes:
        raw = name.encode("latin-1")
        out = bytes([20]) + struct.pack(">H", len(raw)) + raw
        if version == 4:
            out += w._i(blen)
        return out + b"\x00\x00" + w._i(n)

    image_data = group_head("ImageData", n_items, body_len)
    image_tags = w.group("ImageTags", [w.string("Source", "udfwidgets write_dm")])
    entry_items_len = (
        len(image_data)
        + len(before)
        + len(data_tag_head)
        + arr.nbytes
        + len(tail)
        + len(image_tags)
    )
    entry = group_head("", 2, 2 + isz + entry_items_len)
    image_list = group_head("ImageList", 1, 2 + isz + len(entry) + entry_items_len)
    root_items = b"\x01\x00" + w._i(1)
    header_len = len(root_items) + len(image_list) + len(entry) + entry_items_len
    with atomic_output(path, overwrite=overwrite) as tmp, open(tmp, "wb") as f:
        f.write(struct.pack(">I", version))
        f.write(w._i(header_len))
        f.write(struct.pack(">I", 1))
        f.write(root_items + image_list + entry + image_data + before + data_tag_head)
        flat = arr.reshape(-1)
        step = 1 << 22
        for a in range(0, flat.size, step):
            f.write(flat[a : a + step].tobytes())
        f.write(tail + image_tags)
        f.write(b"\x00" * 8)
