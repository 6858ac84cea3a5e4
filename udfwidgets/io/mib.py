"""Quantum Detectors Merlin ``.mib`` files: ``ctx.load("mib", path=...)``.

Written from the public description of the format (Merlin manual, and what
the LiberTEM and rosettasciio documentation say about it); no code of theirs.

A ``.mib`` file is a sequence of frames, each an ASCII header followed by the
pixel data in big-endian words:

- The header is comma-separated text: ``MQ1``, the frame's sequence number
  (1-based), the header size in bytes (384 for one chip, 768 for a quad),
  the number of chips, width, height, the pixel type (``U08``, ``U16``,
  ``U32``, or ``R64`` for RAW mode), the chip layout (``1x1``, ``2x2``), the
  chip select, the time stamp, the shutter time in seconds, thresholds and
  DACs, and in the extended header after ``MQ1A`` the time stamp in
  nanoseconds, the exposure in ns and the counter depth.
- Counter depths 1 and 6 are stored as ``uint8``, 12 as ``>u2``, 24 as
  ``>u4`` (the "U" types). Quad frames of the U types are assembled by the
  Merlin software (512 x 512, in the detector's orientation).
- RAW mode (``R64``) stores the chips' own read-out: for each of the 256 chip
  rows, the row of every chip one after the other, each row packed in 64-bit
  words with ``bits`` bits per pixel (1 for counter depth 1, 8 for 6, 16 for
  12), the bytes of every word in reverse order. For a quad the two bottom
  chips come out rotated by 180 degrees: the assembled frame has chips 0 and 1
  side by side at the top and chips 2 and 3, rotated, at the bottom. (This
  layout is our reading of the descriptions; it is tested against our own
  writer, :func:`write_mib`, not against a real RAW-mode acquisition.)
- The optional ``.hdr`` acquisition header (text, ``key:\\tvalue`` lines) gives
  the number of frames and the frames per trigger, from which the scan shape
  ``(frames // frames_per_trigger, frames_per_trigger)`` is taken.

Frames are read through strided views of memory maps (offset = header size,
stride = header + frame bytes); byte order is fixed, and RAW data unpacked,
one tile at a time.
"""

from __future__ import annotations

import glob
import math
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .atomic import atomic_output, check_target
from .dataset import DataSetError, existing_file
from .files import FrameFiles, FramesDataSet, Segment, _NativeOrder, whole_frames
from .geometry import resolve
from .shape import Shape

__all__ = ["MIBDataSet", "write_mib", "sniff", "read_hdr"]

_MAGIC = b"MQ1"
#: Stored dtype of the U pixel types.
_U_TYPES: dict[str, np.dtype] = {
    "U01": np.dtype("u1"),
    "U08": np.dtype("u1"),
    "U16": np.dtype(">u2"),
    "U32": np.dtype(">u4"),
}
#: Native dtype per counter depth.
_DEPTH_DTYPE: dict[int, np.dtype] = {
    1: np.dtype("u1"),
    6: np.dtype("u1"),
    12: np.dtype("u2"),
    24: np.dtype("u4"),
}
_DEPTH_UTYPE = {1: "U08", 6: "U08", 12: "U16", 24: "U32"}
#: Bits per pixel in RAW mode, per counter depth.
_RAW_BITS = {1: 1, 6: 8, 12: 16}
_CHIP = 256


def sniff(path: str) -> bool:
    """True for a ``.mib`` file (starts with ``MQ1,``) or a Merlin ``.hdr`` (starts with ``HDR,``).

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.bin")
    >>> _ = open(path, "wb").write(b"not a merlin file")
    >>> sniff(path)
    False
    """
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        start = f.read(4)
    return start == b"MQ1," or (start == b"HDR," and path.lower().endswith(".hdr"))


def _parse_header(raw: bytes, path: str) -> dict:
    if not raw.startswith(b"MQ1,"):
        raise DataSetError(
            f"{path!r} is not a Merlin .mib file (a frame header starting with 'MQ1,' was "
            "expected); check the file, or open it with the kind of its real format"
        )
    text = raw.split(b"\x00", 1)[0].decode("ascii", errors="replace")
    fields = [f.strip() for f in text.split(",")]
    try:
        hdr: dict[str, Any] = {
            "sequence": int(fields[1]),
            "header_bytes": int(fields[2]),
            "chips": int(fields[3]),
            "width": int(fields[4]),
            "height": int(fields[5]),
            "pixel_type": fields[6].upper(),
            "layout": fields[7].strip(),
            "timestamp": fields[9],
            "exposure_s": float(fields[10]),
        }
    except (IndexError, ValueError):
        raise DataSetError(
            f"{path!r}: the first frame header is malformed ({text[:80]!r}...); "
            "the file is not a readable Merlin .mib file"
        ) from None
    depth = None
    if "MQ1A" in fields:
        i = fields.index("MQ1A")
        try:
            depth = int(fields[i + 3])
        except (IndexError, ValueError):
            depth = None
    hdr["counter_depth"] = depth
    if hdr["header_bytes"] < 16 or hdr["width"] < 1 or hdr["height"] < 1:
        raise DataSetError(
            f"{path!r}: the frame header gives header size {hdr['header_bytes']} "
            f"and frame {hdr['width']} x {hdr['height']}; not a readable .mib file"
        )
    return hdr


def _read_first_header(path: str) -> dict:
    with open(path, "rb") as f:
        start = f.read(2048)
    if len(start) < 64:
        raise DataSetError(
            f"{path!r} has only {len(start)} bytes: too short for a .mib frame "
            "header; the file is truncated or not a .mib file"
        )
    hdr = _parse_header(start, path)
    if len(start) < hdr["header_bytes"] and os.path.getsize(path) > len(start):
        with open(path, "rb") as f:
            hdr = _parse_header(f.read(hdr["header_bytes"]), path)
    return hdr


def read_hdr(path: str) -> dict:
    """The ``key: value`` pairs of a Merlin ``.hdr`` acquisition header.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "scan.hdr")
    >>> _ = open(path, "w").write("HDR,\\nFrames in Acquisition (Number):\\t16\\nEnd\\t\\n")
    >>> read_hdr(path)["Frames in Acquisition (Number)"]
    '16'
    """
    with open(path, "rb") as f:
        raw = f.read(1 << 16)
    text = raw.decode("latin-1")
    if not text.startswith("HDR"):
        raise DataSetError(
            f"{path!r} is not a Merlin .hdr acquisition header (it should start with 'HDR,')"
        )
    out = {}
    for line in text.splitlines()[1:]:
        key, sep, value = line.partition(":\t")
        if not sep:
            key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _hdr_nav_shape(acq: dict) -> tuple[int, ...] | None:
    try:
        frames = int(acq["Frames in Acquisition (Number)"])
    except (KeyError, ValueError):
        return None
    try:
        per_trigger = int(acq.get("Frames per Trigger (Number)", frames))
    except ValueError:
        per_trigger = frames
    if 1 < per_trigger < frames and frames % per_trigger == 0:
        return (frames // per_trigger, per_trigger)
    return (frames,) if frames > 0 else None


def _strip_index(stem: str) -> str:
    return re.sub(r"_?\d+$", "", stem)


def _find_files(path) -> tuple[list[str], str | None]:
    """The .mib files of one scan and its .hdr (or None)."""
    if isinstance(path, (list, tuple)):
        files = [existing_file(p, ".mib file") for p in path]
        if not files:
            raise DataSetError('ctx.load("mib", path=[]) got an empty list of files')
        hdr = None
    else:
        try:
            path = os.fspath(path)
        except TypeError:
            raise DataSetError(
                f"path must be a .mib/.hdr file, a pattern or a list of .mib files, got {path!r}"
            ) from None
        if any(c in os.path.basename(path) for c in "*?["):
            files = sorted(glob.glob(path))
            if not files:
                raise DataSetError(f"no file matches {path!r}")
            hdr = None
        elif path.lower().endswith(".hdr"):
            hdr = existing_file(path, ".hdr file")
            stem = os.path.splitext(path)[0]
            files = sorted(glob.glob(glob.escape(stem) + "*.mib"))
            if not files:
                raise DataSetError(
                    f"{path!r} is a Merlin acquisition header, but no .mib file named "
                    f"{os.path.basename(stem)}*.mib is next to it; copy the .mib files into "
                    f"{os.path.dirname(os.path.abspath(path))!r} or give their paths"
                )
            files = [existing_file(p, ".mib file") for p in files]
        else:
            files = [existing_file(path, ".mib file")]
            hdr = None
        if hdr is None and len(files) >= 1:
            stem = os.path.splitext(files[0])[0]
            for cand in (stem + ".hdr", _strip_index(stem) + ".hdr"):
                if os.path.isfile(cand):
                    hdr = cand
                    break
    return files, hdr


class _RawDecoder:
    """Unpack RAW-mode frames (bytes) to ``(n, height, width)`` counts, one tile at a time."""

    def __init__(self, bits: int, chips: int, dtype):
        self.bits, self.chips, self.dtype = bits, chips, np.dtype(dtype)

    def __call__(self, stored: np.ndarray) -> np.ndarray:
        # one byte swap of every 64-bit word puts the pixels in order (a fast, vectorised
        # copy); the chip assembly then copies contiguous rows, converting the dtype
        n = len(stored)
        rev = stored.view("<u8").byteswap()
        if self.bits == 1:
            px = np.unpackbits(rev.view(np.uint8), axis=-1)
        elif self.bits == 8:
            px = rev.view(np.uint8)
        else:
            px = rev.view(">u2")
        chips = px.reshape(n, _CHIP, self.chips, _CHIP)
        if self.chips == 1:
            return chips[:, :, 0, :].astype(self.dtype)
        out = np.empty((n, 2 * _CHIP, 2 * _CHIP), dtype=self.dtype)
        out[:, :_CHIP, :_CHIP] = chips[:, :, 0]
        out[:, :_CHIP, _CHIP:] = chips[:, :, 1]
        bottom = out[:, _CHIP:, :][:, ::-1, ::-1]  # the bottom half, turned by 180 degrees
        bottom[:, :, :_CHIP] = chips[:, :, 2]
        bottom[:, :, _CHIP:] = chips[:, :, 3]
        return out


def _encode_raw(frames: np.ndarray, bits: int, chips: int) -> np.ndarray:
    """The inverse of :class:`_RawDecoder`: frames ``(n, h, w)`` to RAW bytes ``(n, nbytes)``."""
    n = len(frames)
    if chips == 1:
        parts = frames[:, :, None, :]
    else:
        bottom = frames[:, _CHIP:, :][:, ::-1, ::-1]
        parts = np.stack(
            [
                frames[:, :_CHIP, :_CHIP],
                frames[:, :_CHIP, _CHIP:],
                bottom[:, :, :_CHIP],
                bottom[:, :, _CHIP:],
            ],
            axis=2,
        )
    if bits == 1:
        packed = np.packbits(parts.astype(np.uint8) & 1, axis=-1)
    elif bits == 8:
        packed = parts.astype(np.uint8)
    else:
        packed = np.ascontiguousarray(parts.astype(">u2")).view(np.uint8)
    words = np.ascontiguousarray(packed).reshape(n, -1, 8)[:, :, ::-1]
    return np.ascontiguousarray(words).reshape(n, -1)


class MIBDataSet(FramesDataSet):
    """A Merlin (Quantum Detectors) scan: one or more ``.mib`` files, optionally a ``.hdr``.

    Parameters
    ----------
    path : str, os.PathLike, list or glob pattern
        A ``.mib`` file (its ``.hdr`` is looked for next to it), the ``.hdr``
        (every ``<stem>*.mib`` next to it belongs to the scan), a list of
        ``.mib`` files or a pattern like ``"scan/*.mib"``. Files are put in
        acquisition order by the sequence number of their first frame.
    nav_shape : tuple of int, optional
        The scan shape; by default from the ``.hdr`` (frames and frames per
        trigger), else ``(frames,)``.
    sync_offset : int
        Navigation frame ``i`` is file frame ``i + sync_offset`` (see
        :mod:`udfwidgets.io.geometry`).
    num_partitions : int, optional
        Override the default number of partitions.

    Notes
    -----
    A file that ends inside a frame (an interrupted acquisition) is read up
    to its last whole frame with a :class:`~udfwidgets.io.files.TruncatedFileWarning`;
    scan positions left without a frame read as zeros with a
    :class:`~udfwidgets.io.geometry.MissingFramesWarning`.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.mib import MIBDataSet, write_mib
    >>> path = os.path.join(tempfile.mkdtemp(), "scan.mib")
    >>> data = np.arange(2 * 3 * 256 * 256, dtype=np.uint16).reshape(2, 3, 256, 256) % 4096
    >>> write_mib(path, data, counter_depth=12)
    >>> ds = MIBDataSet(path)
    >>> ds.shape, ds.dtype, ds.metadata["counter_depth"]
    (Shape((2, 3, 256, 256), sig_dims=2), dtype('uint16'), 12)
    """

    kind = "mib"

    def __init__(
        self,
        path,
        nav_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
    ):
        super().__init__(num_partitions)
        files, hdr_path = _find_files(path)
        headers = [_read_first_header(p) for p in files]
        order = sorted(range(len(files)), key=lambda i: (headers[i]["sequence"], files[i]))
        files = [files[i] for i in order]
        headers = [headers[i] for i in order]
        first = headers[0]
        for p, h in zip(files[1:], headers[1:]):
            for key in ("header_bytes", "chips", "width", "height", "pixel_type"):
                if h[key] != first[key]:
                    raise DataSetError(
                        f"{p!r} has {key}={h[key]!r} but {files[0]!r} has {first[key]!r}: "
                        "they are not frames of the same acquisition; open them separately"
                    )
        acq = read_hdr(hdr_path) if hdr_path is not None else {}
        depth = first["counter_depth"]
        if depth is None:
            try:
                depth = int(acq.get("Counter Depth (number)", ""))
            except ValueError:
                depth = None
        ptype = first["pixel_type"]
        h, w, chips = first["height"], first["width"], first["chips"]
        if ptype in _U_TYPES:
            stored = _U_TYPES[ptype]
            frame_bytes = h * w * stored.itemsize
            stored_shape: tuple[int, ...] = (h, w)
            self.dtype = stored.newbyteorder("=")
            self.decode = None if stored.itemsize == 1 else _NativeOrder(self.dtype)
            if depth is None:
                depth = {1: 6, 2: 12, 4: 24}[stored.itemsize]
        elif ptype == "R64":
            if depth not in _RAW_BITS:
                raise DataSetError(
                    f"{files[0]!r} is RAW mode with counter depth {depth}; RAW mode is read "
                    "for counter depths 1, 6 and 12. Record in a 'U' mode or convert the file."
                )
            if chips not in (1, 4) or (chips, h, w) not in ((1, 256, 256), (4, 512, 512)):
                raise DataSetError(
                    f"{files[0]!r}: RAW mode with {chips} chips and {h} x {w} frames is not "
                    "supported (single chip 256 x 256 and quad 512 x 512 are)"
                )
            bits = _RAW_BITS[depth]
            frame_bytes = chips * _CHIP * _CHIP * bits // 8
            stored, stored_shape = np.dtype(np.uint8), (frame_bytes,)
            self.dtype = _DEPTH_DTYPE[depth]
            self.decode = _RawDecoder(bits, chips, self.dtype)
        else:
            raise DataSetError(
                f"{files[0]!r} has pixel type {ptype!r}; this reader knows "
                f"{', '.join(sorted(_U_TYPES))} and R64 (RAW mode)"
            )
        head = first["header_bytes"]
        stride = head + frame_bytes
        segments = []
        for p in files:
            n = whole_frames(p, 0, stride)
            self._check_last_header(p, (n - 1) * stride, first)
            segments.append(Segment(p, head, n, stride))
        self.files = FrameFiles(segments, stored, stored_shape)
        self.path = (
            files[0]
            if len(files) == 1 or not isinstance(path, (str, os.PathLike))
            else os.fspath(path)
        )
        self.hdr_path = hdr_path
        self.geometry = resolve(
            self.files.num_frames, nav_shape, sync_offset, _hdr_nav_shape(acq), what=repr(self.path)
        )
        self.shape = Shape(self.geometry.nav_shape + (h, w), sig_dims=2)
        self.metadata = {
            "format": "Merlin MIB",
            "detector": "Merlin "
            + ("quad" if chips == 4 else "single chip")
            + f" ({first['layout']})",
            "counter_depth": depth,
            "raw_mode": ptype == "R64",
            "pixel_type": ptype,
            "exposure_s": first["exposure_s"],
            "timestamps": {"first_frame": first["timestamp"]},
            "header_bytes": head,
            "files": list(files),
        }
        if acq:
            self.metadata["acquisition"] = acq

    @staticmethod
    def _check_last_header(path: str, pos: int, first: dict) -> None:
        with open(path, "rb") as f:
            f.seek(pos)
            raw = f.read(first["header_bytes"])
        try:
            last = _parse_header(raw, path)
        except DataSetError:
            last = None
        keys = ("header_bytes", "chips", "width", "height", "pixel_type")
        if last is None or any(last[k] != first[k] for k in keys):
            raise DataSetError(
                f"{path!r}: the header of its last frame (byte {pos}) does not match the first "
                "frame's (header size, frame size, pixel type): frame sizes change within the "
                "file, or it is damaged; it cannot be read as one scan"
            )

    def _repr_items(self) -> dict:
        items = {"counter_depth": self.metadata["counter_depth"]}
        if self.metadata["raw_mode"]:
            items["raw_mode"] = True
        items.update(super()._repr_items())
        return items


def _header_text(
    seq: int,
    head: int,
    chips: int,
    w: int,
    h: int,
    ptype: str,
    layout: str,
    depth: int,
    exposure_s: float,
) -> bytes:
    fields = [
        "MQ1",
        f"{seq:06d}",
        f"{head:05d}",
        f"{chips:02d}",
        f"{w:04d}",
        f"{h:04d}",
        ptype,
        f"{layout:>6}",
        "0F" if chips == 4 else "01",
        "2026-01-01 00:00:00.000000",
        f"{exposure_s:.6f}",
        "0",
        "0",
        "0",
    ]
    fields += ["0.000000E+0"] * 8 + ["3RX"] + ["000"] * 25 * chips
    fields += ["MQ1A", "2026-01-01T00:00:00.000000000Z", f"{round(exposure_s * 1e9)}ns", f"{depth}"]
    text = ",".join(fields).encode("ascii") + b","
    if len(text) > head:
        raise AssertionError("header text longer than its size")  # pragma: no cover
    return text + b"\x00" * (head - len(text))


def write_mib(
    path,
    data,
    counter_depth: int = 12,
    layout: str = "single",
    raw: bool = False,
    frames_per_file: int | None = None,
    header_file: bool = True,
    overwrite: bool = False,
    exposure_s: float = 0.001,
) -> None:
    """Write ``data`` ``(*nav, h, w)`` as a Merlin acquisition (``.mib`` files and a ``.hdr``).

    Parameters
    ----------
    path : str or os.PathLike
        The first ``.mib`` file. With ``frames_per_file``, the next files are
        ``<stem>_00002.mib``, ... The ``.hdr`` is ``<stem>.hdr``.
    data : array_like
        Frames, 256 x 256 for ``layout="single"`` and 512 x 512 for
        ``"quad"`` (other frame sizes only without RAW mode); values must fit
        the counter depth.
    counter_depth : int
        1, 6, 12 or 24.
    layout : str
        ``"single"`` (one chip, header 384 bytes) or ``"quad"`` (2 x 2 chips,
        header 768 bytes).
    raw : bool
        Write RAW mode (``R64``, bit-packed chip read-out; counter depths 1,
        6, 12).
    frames_per_file : int, optional
        Split the frames over several files.
    header_file : bool
        Write the ``.hdr`` acquisition header (with the scan shape of a 2-D
        ``data``'s navigation).
    overwrite : bool
        Replace existing files.
    exposure_s : float
        Shutter time written into each frame header.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "quad.mib")
    >>> write_mib(path, np.ones((2, 2, 512, 512), np.uint8), counter_depth=1,
    ...           layout="quad", raw=True)
    >>> sorted(os.listdir(os.path.dirname(path)))
    ['quad.hdr', 'quad.mib']
    """
    data = np.asarray(data)
    if data.ndim < 3:
        raise ValueError(f"data must be (*nav, height, width), got shape {data.shape}")
    if counter_depth not in _DEPTH_DTYPE:
        raise ValueError(f"counter_depth must be 1, 6, 12 or 24, got {counter_depth!r}")
    if layout not in ("single", "quad"):
        raise ValueError(f"layout must be 'single' or 'quad', got {layout!r}")
    chips = 4 if layout == "quad" else 1
    h, w = data.shape[-2:]
    if raw:
        if counter_depth not in _RAW_BITS:
            raise ValueError("RAW mode is written for counter depths 1, 6 and 12")
        if (h, w) != ((512, 512) if chips == 4 else (256, 256)):
            raise ValueError(
                f"RAW mode {layout} frames are {'512 x 512' if chips == 4 else '256 x 256'}"
                f", got {h} x {w}"
            )
    if data.size and (data.min() < 0 or data.max() >= 2**counter_depth):
        raise ValueError(
            f"values must lie in 0 .. {2**counter_depth - 1} for counter depth {counter_depth}"
        )
    frames = data.reshape((-1, h, w))
    n = len(frames)
    per_file = n if frames_per_file is None else int(frames_per_file)
    if per_file < 1:
        raise ValueError("frames_per_file must be positive")
    path = os.fspath(path)
    stem, ext = os.path.splitext(path)
    names = [path] + [f"{stem}_{k + 1:05d}{ext}" for k in range(1, math.ceil(n / per_file))]
    hdr_path = stem + ".hdr"
    for p in names + ([hdr_path] if header_file else []):
        check_target(p, overwrite)
    head = 768 if chips == 4 else 384
    ptype = "R64" if raw else _DEPTH_UTYPE[counter_depth]
    lay = "2x2" if chips == 4 else "1x1"
    stored = None if raw else _U_TYPES[ptype]
    block = max(1, (32 << 20) // (h * w * 4))
    for k, name in enumerate(names):
        lo, hi = k * per_file, min(n, (k + 1) * per_file)
        with atomic_output(name, overwrite=overwrite) as tmp, open(tmp, "wb") as f:
            for a in range(lo, hi, block):
                b = min(hi, a + block)
                body = (
                    _encode_raw(frames[a:b], _RAW_BITS[counter_depth], chips)
                    if raw
                    else frames[a:b].astype(stored).reshape(b - a, -1).view(np.uint8)
                )
                heads = np.frombuffer(
                    b"".join(
                        _header_text(
                            i + 1, head, chips, w, h, ptype, lay, counter_depth, exposure_s
                        )
                        for i in range(a, b)
                    ),
                    np.uint8,
                ).reshape(b - a, head)
                f.write(np.concatenate([heads, body], axis=1).tobytes())
    if header_file:
        nav = data.shape[:-2]
        per_trigger = nav[-1] if len(nav) >= 2 else n
        lines = [
            "HDR,",
            "Time and Date Started:\t01/01/2026 00:00:00",
            "Chip ID:\tW000_A0" + (",W000_A1,W000_A2,W000_A3" if chips == 4 else ",-,-,-"),
            "Chip Type (Medipix 3.0, Medipix 3.1, Medipix 3RX):\tMedipix 3RX",
            f"Assembly Size (NX1, 2X2):\t   {lay}",
            "Chip Mode  (SPM, CSM, CM, CSCM):\tSPM",
            f"Counter Depth (number):\t{counter_depth}",
            "Gain:\tSLGM",
            "Active Counters:\tAlternating",
            "Acquisition Type (Normal, Th_scan, Config):\tNormal",
            f"Frames in Acquisition (Number):\t{n}",
            f"Frames per Trigger (Number):\t{per_trigger}",
            "Trigger Start (Positive, Negative, Internal):\tRising Edge",
            "Sensor Bias (V):\t120 V",
            "Readout System:\tMerlin " + ("Quad" if chips == 4 else "Single"),
            "Software Version:\tudfwidgets write_mib",
            "End\t",
        ]
        with atomic_output(hdr_path, overwrite=overwrite) as tmp, open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
