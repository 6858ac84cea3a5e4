"""EMPAD (Electron Microscope Pixel Array Detector) scans: ``ctx.load("empad", path=...)``.

Written from the public description of the format: an ``.xml`` file describes
the acquisition and names the ``.raw`` file (``<raw_file filename=...>``);
the scan size is in ``<scan_parameters mode="acquire">`` as
``scan_resolution_x`` / ``scan_resolution_y``. The ``.raw`` file holds
little-endian ``float32`` frames of 130 rows x 128 columns: 128 rows of
pixels followed by two rows of per-frame metadata, which are dropped (the
reader's view skips them, nothing is copied).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence

import numpy as np

from .atomic import atomic_output, check_target
from .dataset import DataSetError, existing_file
from .files import FrameFiles, FramesDataSet, Segment, whole_frames
from .geometry import resolve
from .shape import Shape

__all__ = ["EMPADDataSet", "write_empad", "sniff"]

SIG_SHAPE = (128, 128)
RAW_ROWS = 130
_FRAME_BYTES = RAW_ROWS * 128 * 4


def sniff(path: str) -> bool:
    """True for an EMPAD ``.xml`` file (an XML file with a ``raw_file`` element).

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.xml")
    >>> _ = open(path, "w").write('<root><raw_file filename="a.raw"/></root>')
    >>> sniff(path)
    True
    """
    if not (os.path.isfile(path) and path.lower().endswith(".xml")):
        return False
    with open(path, "rb") as f:
        start = f.read(1 << 16)
    return start.lstrip().startswith(b"<") and b"<raw_file" in start


def _parse_xml(path: str) -> tuple[str, tuple[int, int] | None, dict]:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise DataSetError(f"{path!r} is not a readable EMPAD .xml file: {e}") from None
    node = root.find(".//raw_file")
    filename = node.get("filename") if node is not None else None
    if not filename:
        raise DataSetError(
            f"{path!r} names no raw file (<raw_file filename=...>): it is not an "
            "EMPAD acquisition description"
        )
    raw = os.path.join(
        os.path.dirname(os.path.abspath(path)),
        os.path.basename(filename.replace("\\", "/")),
    )
    nav = None
    meta: dict = {}
    for sp in root.iter("scan_parameters"):
        if sp.get("mode", "acquire") != "acquire":
            continue
        x, y = sp.findtext("scan_resolution_x"), sp.findtext("scan_resolution_y")
        if x is not None and y is not None:
            try:
                nav = (int(y), int(x))
            except ValueError:
                pass
        for key in ("scan_size", "scan_rotation"):
            if sp.findtext(key) is not None:
                meta[key] = sp.findtext(key)
    for key in ("timestamp", "camera_length", "high_tension"):
        el = root.find(f".//{key}")
        if el is not None and el.text:
            meta[key] = el.text.strip()
    return raw, nav, meta


class EMPADDataSet(FramesDataSet):
    """An EMPAD acquisition: the ``.xml`` description and the ``.raw`` frames it names.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.xml`` file (a ``.raw`` file is accepted when exactly one
        ``.xml`` next to it names it).
    nav_shape : tuple of int, optional
        The scan shape; by default from the ``.xml``.
    sync_offset : int
        Navigation frame ``i`` is file frame ``i + sync_offset``.
    num_partitions : int, optional
        Override the default number of partitions.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.empad import EMPADDataSet, write_empad
    >>> path = os.path.join(tempfile.mkdtemp(), "scan.xml")
    >>> write_empad(path, np.ones((2, 3, 128, 128), np.float32))
    >>> ds = EMPADDataSet(path)
    >>> ds.shape, ds.dtype
    (Shape((2, 3, 128, 128), sig_dims=2), dtype('float32'))
    """

    kind = "empad"

    def __init__(
        self,
        path,
        nav_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
    ):
        super().__init__(num_partitions)
        path = existing_file(path, "EMPAD .xml file")
        if path.lower().endswith(".raw"):
            path = self._xml_for(path)
        self.path = path
        raw, file_nav, meta = _parse_xml(path)
        if not os.path.isfile(raw):
            raise DataSetError(
                f"{path!r} names the raw file {os.path.basename(raw)!r}, which is not next to "
                f"it in {os.path.dirname(raw)!r}; copy the .raw file there (the .xml and the "
                ".raw belong together)"
            )
        self.raw_path = existing_file(raw, "EMPAD .raw file")
        n = whole_frames(self.raw_path, 0, _FRAME_BYTES)
        self.dtype = np.dtype(np.float32)
        # the view is (n, 128, 128) with the frame stride of 130 rows: metadata rows skipped
        self.files = FrameFiles([Segment(self.raw_path, 0, n, _FRAME_BYTES)], "<f4", SIG_SHAPE)
        self.geometry = resolve(n, nav_shape, sync_offset, file_nav, what=repr(self.path))
        self.shape = Shape(self.geometry.nav_shape + SIG_SHAPE, sig_dims=2)
        self.metadata = {
            "format": "EMPAD",
            "detector": "EMPAD",
            "scan_shape": file_nav,
            "raw_file": self.raw_path,
            **meta,
        }

    @staticmethod
    def _xml_for(raw: str) -> str:
        folder = os.path.dirname(os.path.abspath(raw))
        found = []
        for name in sorted(os.listdir(folder)):
            cand = os.path.join(folder, name)
            if name.lower().endswith(".xml") and sniff(cand):
                try:
                    if os.path.samefile(_parse_xml(cand)[0], raw):
                        found.append(cand)
                except (DataSetError, OSError):
                    continue
        if len(found) != 1:
            raise DataSetError(
                f"{raw!r} is an EMPAD .raw file; open its .xml description instead "
                + (
                    "(none next to it names this file: copy the .xml too)"
                    if not found
                    else f"({len(found)} .xml files name it: choose one)"
                )
            )
        return found[0]


def write_empad(path_xml, data, overwrite: bool = False) -> None:
    """Write ``data`` ``(ny, nx, 128, 128)`` as an EMPAD ``.xml`` + ``.raw`` pair.

    The ``.raw`` file is ``<stem>.raw`` next to the ``.xml``; the two metadata
    rows of each frame are written as zeros.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "scan.xml")
    >>> write_empad(path, np.zeros((2, 2, 128, 128), np.float32))
    >>> sorted(os.listdir(os.path.dirname(path)))
    ['scan.raw', 'scan.xml']
    """
    data = np.asarray(data)
    if data.ndim not in (3, 4) or data.shape[-2:] != SIG_SHAPE:
        raise ValueError(
            f"EMPAD frames are 128 x 128: data must be (ny, nx, 128, 128) or "
            f"(n, 128, 128), got {data.shape}"
        )
    ny, nx = data.shape[:2] if data.ndim == 4 else (1, data.shape[0])
    path_xml = os.fspath(path_xml)
    raw_path = os.path.splitext(path_xml)[0] + ".raw"
    check_target(path_xml, overwrite)
    check_target(raw_path, overwrite)
    frames = data.reshape(-1, 128, 128)
    with atomic_output(raw_path, overwrite=overwrite) as tmp, open(tmp, "wb") as f:
        block = 1024
        for a in range(0, len(frames), block):
            b = min(len(frames), a + block)
            out = np.zeros((b - a, RAW_ROWS, 128), "<f4")
            out[:, :128] = frames[a:b]
            f.write(out.tobytes())
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<root>\n'
        "  <timestamp>2026-01-01T00:00:00</timestamp>\n"
        f'  <raw_file filename="{os.path.basename(raw_path)}"/>\n'
        '  <scan_parameters mode="acquire">\n'
        f"    <scan_resolution_x>{nx}</scan_resolution_x>\n"
        f"    <scan_resolution_y>{ny}</scan_resolution_y>\n"
        "  </scan_parameters>\n</root>\n"
    )
    with atomic_output(path_xml, overwrite=overwrite) as tmp, open(tmp, "w") as f:
        f.write(xml)
