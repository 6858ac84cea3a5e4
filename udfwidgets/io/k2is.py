"""Gatan K2 IS raw data (eight ``.bin`` sector files and a ``.gtg``): ``ctx.load("k2is", ...)``.

Written from public descriptions of the format; no code of other readers. Our reading:

- An acquisition is eight sector files ``<stem>1.bin`` ... ``<stem>8.bin`` and a
  metadata file ``<stem>.gtg`` (DM4 tag structure) next to them; Gatan names them
  ``Capture52_1.bin`` ... ``Capture52_8.bin`` and ``Capture52_.gtg``. Sector ``k``
  (1-based) is the ``k``-th vertical stripe of the frame, from the left.
- A sector file is a sequence of fixed-size blocks. Each block is a 40-byte
  big-endian header (sync word ``0xFFFF0055``, 4 bytes, version and flags bytes,
  6 bytes, a block counter, the sector width and height, the frame id, and the
  first and last pixel ``x``/``y`` of the block within the sector, inclusive, then
  the block size), followed by the block's pixels, row by row, packed as 12-bit
  little-endian values (two pixels in three bytes: the low 8 bits of the first,
  its high 4 bits in the low nibble of the middle byte, the second's low 4 bits
  in the high nibble, its high 8 bits in the third byte).
- A real camera has blocks of 930 x 16 pixels (22 360 bytes with the header),
  32 blocks per sector and frame (2 x 16), sectors of 1860 x 256 pixels, frames
  of 1860 x 2048. The reader takes the block and sector geometry from the block
  headers, so smaller geometries (as our writer makes for tests) read the same way.
- The sector files start where the acquisition happened to begin: their first
  frame may be incomplete, and a different frame in each file. The reader syncs
  by frame id: the first frame whose blocks are all there in every sector file is
  frame 0; each sector file is then read from that frame's first block on, one
  frame every ``blocks per frame`` blocks. An incomplete frame at the end is not
  read.

- The scan shape of a STEM acquisition is in the ``.gtg`` (a DM4 tag file, read
  with :func:`udfwidgets.io.dm.read_tags`): the root group ``SI Dimensions`` with
  the tags ``Size Y`` and ``Size X``; it is the default ``nav_shape``. Without
  that group (a time series) the frames form one navigation axis. The scan size
  without flyback (``SI Image Tags/SI/Acquisition/Spatial Sampling``,
  ``Height (pixels)`` and ``Width (pixels)``) is reported in ``metadata`` only.
  Our reading does not look at the blocks' shutter flag (a real camera's first
  frames before the scan starts): ``sync_offset=`` skips them.

The layout is tested against our own writer (:func:`write_k2is`) and bytes built
by hand in ``tests/io/test_k2is.py``, **not against a file from a real camera**.
Each worker maps the eight files and reads only its partition's blocks; the
12-bit pixels are unpacked with NumPy array operations, one tile at a time, and
every block is put where its header says (the frame ids are checked).
"""

from __future__ import annotations

import os
import re
import struct
import warnings
from collections.abc import Sequence

import numpy as np

from .atomic import atomic_output, check_target
from .dataset import DataSet, DataSetError, Partition, existing_file
from .files import TruncatedFileWarning, file_map
from .geometry import ScanGeometry, resolve
from .shape import Shape

__all__ = ["K2ISDataSet", "gtg_scan_shape", "write_k2is", "sniff"]

SECTORS = 8
SYNC = 0xFFFF0055
HEADER_BYTES = 40
#: A real camera's block (rows, columns) and sector shape.
BLOCK_SHAPE = (930, 16)
SECTOR_SHAPE = (1860, 256)
_HEADER = np.dtype(
    [
        ("sync", ">u4"),
        ("pad1", "V4"),
        ("version", "u1"),
        ("flags", "u1"),
        ("pad2", "V6"),
        ("block_count", ">u4"),
        ("width", ">u2"),
        ("height", ">u2"),
        ("frame_id", ">u4"),
        ("x_start", ">u2"),
        ("y_start", ">u2"),
        ("x_end", ">u2"),
        ("y_end", ">u2"),
        ("block_size", ">u4"),
    ]
)
assert _HEADER.itemsize == HEADER_BYTES
#: Blocks looked at per sector file to find the first complete frame.
_SCAN_BLOCKS = 400
_BIN = re.compile(r"^(.*?)(\d+)\.bin$", re.IGNORECASE)


def _first_header(path: str):
    with open(path, "rb") as f:
        raw = f.read(HEADER_BYTES)
    if len(raw) < HEADER_BYTES:
        return None
    h = np.frombuffer(raw, _HEADER)[0]
    if int(h["sync"]) != SYNC:
        return None
    if int(h["x_end"]) < int(h["x_start"]) or int(h["y_end"]) < int(h["y_start"]):
        return None
    return h


def sniff(path: str) -> bool:
    """True for a K2 IS sector file (a block header with the sync word) or a ``.gtg`` file.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> write_k2is(folder, np.zeros((2, 4, 64), np.uint16), block_shape=(2, 4))
    >>> sniff(os.path.join(folder, "scan_3.bin")), sniff(os.path.join(folder, "scan_.gtg"))
    (True, True)
    """
    if not os.path.isfile(path):
        return False
    if path.lower().endswith(".gtg"):
        from .dm import sniff as dm_sniff

        return dm_sniff(path)
    return _first_header(path) is not None


def _sector_paths(path) -> tuple[list[str], str | None, str]:
    """The eight sector files, the .gtg (or None) and the path as given."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise DataSetError(
            f'ctx.load("k2is", path=...) needs the path of a .gtg or .bin file, got {path!r}'
        ) from None
    if path.lower().endswith(".gtg"):
        existing_file(path, ".gtg file")
        stem = path[:-4]
    else:
        m = _BIN.match(path)
        if not m:
            raise DataSetError(
                f"{path!r} is neither a .gtg file nor a sector file named <stem><1-8>.bin; "
                'give ctx.load("k2is", path=...) one of the acquisition\'s .bin files or its .gtg'
            )
        existing_file(path, "K2 IS sector file")
        stem = m.group(1)
    bins = [f"{stem}{k}.bin" for k in range(1, SECTORS + 1)]
    missing = [os.path.basename(b) for b in bins if not os.path.isfile(b)]
    if missing:
        raise DataSetError(
            f"a K2 IS acquisition has {SECTORS} sector files {os.path.basename(stem)}1.bin ... "
            f"{os.path.basename(stem)}{SECTORS}.bin; {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing in "
            f"{os.path.dirname(os.path.abspath(path))!r}. Copy all {SECTORS} .bin files "
            "of the acquisition into one folder."
        )
    gtg = stem + ".gtg"
    return bins, (gtg if os.path.isfile(gtg) else None), path


def _headers(path: str, block_bytes: int, n: int) -> np.ndarray:
    """The headers of the first ``n`` blocks of a sector file (a strided view of a map)."""
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    return np.ndarray(shape=(n,), dtype=_HEADER, buffer=mm, offset=0, strides=(block_bytes,))


class _Sectors:
    """Where the synced frames are in the eight sector files, and how to assemble them.

    Pickles as its description; each process maps the files itself.
    """

    def __init__(
        self,
        paths: Sequence[str],
        offsets: Sequence[int],
        num_frames: int,
        blocks: int,
        block_shape: tuple[int, int],
        sector_shape: tuple[int, int],
        first_id: int,
    ) -> None:
        self.paths = list(paths)
        self.offsets = [int(o) for o in offsets]  # block index of frame 0 in each file
        self.num_frames = int(num_frames)
        self.blocks = int(blocks)  # blocks per frame and sector
        self.block_shape = tuple(int(v) for v in block_shape)
        self.sector_shape = tuple(int(v) for v in sector_shape)
        self.first_id = int(first_id)
        bh, bw = self.block_shape
        self.block_bytes = HEADER_BYTES + bh * bw * 3 // 2
        self._maps: dict[int, np.ndarray] = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    def with_paths(self, map_path) -> _Sectors:
        other = _Sectors.__new__(_Sectors)
        other.__dict__.update(self.__getstate__())
        other.paths = [map_path(p) for p in self.paths]
        return other

    def close(self) -> None:
        self._maps = {}

    def _map(self, s: int) -> np.ndarray:
        mm = self._maps.get(s)
        if mm is None:
            path, dtype = self.paths[s], np.dtype(np.uint8)
            offset, n = self.offsets[s] * self.block_bytes, self.num_frames * self.blocks
            kept = file_map(path, dtype, offset, n, (self.block_bytes,))
            if kept is None:  # a large file is mapped afresh, not kept in the process cache
                kept = file_map(path, dtype, offset, n, (self.block_bytes,), keep=False)
            assert kept is not None
            self._maps[s] = mm = kept
        return mm

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Frames ``[lo, hi)`` (file frame indices after the sync)."""
        b = self.blocks
        return self._assemble(
            [self._map(s)[lo * b : hi * b] for s in range(SECTORS)], np.arange(lo, hi)
        )

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Frames at ascending file frame indices ``idx``."""
        idx = np.asarray(idx, dtype=np.int64)
        rows = (idx[:, None] * self.blocks + np.arange(self.blocks)).ravel()
        return self._assemble([self._map(s)[rows] for s in range(SECTORS)], idx)

    def _assemble(self, per_sector: list[np.ndarray], frames: np.ndarray) -> np.ndarray:
        n, b = len(frames), self.blocks
        bh, bw = self.block_shape
        h, w = self.sector_shape
        rows_n, cols_n = h // bh, w // bw
        bb = self.block_bytes
        out = np.empty((n, h, SECTORS * w), dtype=np.uint16)
        row = np.dtype(f"V{2 * bw}")  # one row of a block
        grid = out.view(row).reshape(n, rows_n, bh, SECTORS, cols_n)
        expected = (self.first_id + frames)[:, None]
        fi = np.arange(n)[:, None]
        for s, blocks in enumerate(per_sector):
            hdr = np.ascontiguousarray(blocks[:, :HEADER_BYTES]).view(_HEADER)[:, 0]
            fid = hdr["frame_id"].reshape(n, b).astype(np.int64)
            if not (hdr["sync"] == SYNC).all() or not (fid == expected).all():
                bad = int(np.argmax((fid != expected).any(axis=1)))
                raise DataSetError(
                    f"{self.paths[s]!r}: the blocks of frame {int(frames[bad])} (frame id "
                    f"{int(expected[bad, 0])}) are not where they should be (found frame ids "
                    f"{sorted(set(fid[bad].tolist()))}): blocks were lost in this sector file "
                    "or it is damaged; such files are not supported"
                )
            r = hdr["y_start"].reshape(n, b).astype(np.intp) // bh
            c = hdr["x_start"].reshape(n, b).astype(np.intp) // bw
            code = r * cols_n + c
            if not (np.sort(code, axis=1) == np.arange(b)).all():
                raise DataSetError(
                    f"{self.paths[s]!r}: a frame between frame ids {int(expected[0, 0])} and "
                    f"{int(expected[-1, 0])} does not have every block position exactly once; "
                    "the sector file is damaged"
                )
            # two overlapping little-endian 16-bit views, 3 bytes apart: the first pixel of a
            # pair is the low 12 bits of bytes 0-1, the second the high 12 bits of bytes 1-2
            blocks = np.ascontiguousarray(blocks)
            pairs = (n * b, bh * bw // 2)
            lo16, hi16 = (
                np.ndarray(pairs, "<u2", buffer=blocks, offset=HEADER_BYTES + k, strides=(bb, 3))
                for k in (0, 1)
            )
            pix = np.empty(pairs + (2,), dtype=np.uint16)
            np.bitwise_and(lo16, 0x0FFF, out=pix[..., 0])
            np.right_shift(hi16, 4, out=pix[..., 1])
            # copy block rows (bw pixels) as one opaque element each: fast for short rows
            rows = pix.reshape(n * b, bh * bw).view(row).reshape(n, b, bh)
            if (code == np.arange(b)).all():  # blocks in row-major order in every frame
                grid[:, :, :, s, :] = rows.reshape(n, rows_n, cols_n, bh).transpose(0, 1, 3, 2)
            else:  # any other order: every block where its header says
                r, c = np.divmod(code, cols_n)
                grid[fi, r, :, s, c] = rows
        return out


class K2ISPartition(Partition):
    """Frames of a K2 IS acquisition, assembled from the blocks of the eight sector files."""

    def __init__(self, shape, dtype, start, stop, index, *, sectors: _Sectors, geometry):
        super().__init__(shape, dtype, start, stop, index)
        self.sectors = sectors
        self.geometry = geometry

    def with_paths(self, map_path):
        part = super().with_paths(map_path)
        part.sectors = self.sectors.with_paths(map_path)
        return part

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.geometry.read(self.sectors.read, start, stop, tuple(self.shape.sig), self.dtype)

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self.geometry.take(self.sectors.take, indices, tuple(self.shape.sig), self.dtype)

    def close(self) -> None:
        self.sectors.close()


def _sync(paths: list[str], path: str):
    """Block geometry, the first frame complete in every sector, its block index per file."""
    first = _first_header(paths[0])
    if first is None:
        raise DataSetError(
            f"{paths[0]!r} does not start with a K2 IS block header (sync word 0xFFFF0055); "
            "it is not a K2 IS sector file, or it is damaged"
        )
    bh = int(first["y_end"]) - int(first["y_start"]) + 1
    bw = int(first["x_end"]) - int(first["x_start"]) + 1
    if (bh * bw) % 2:
        raise DataSetError(f"{paths[0]!r}: blocks of {bh} x {bw} pixels cannot be 12-bit packed")
    block_bytes = HEADER_BYTES + bh * bw * 3 // 2
    nblocks, starts, first_ids, windows = [], [], [], []
    sector_shape = None
    for p in paths:
        h = _first_header(p)
        if h is None or (
            int(h["y_end"]) - int(h["y_start"]) + 1,
            int(h["x_end"]) - int(h["x_start"]) + 1,
        ) != (bh, bw):
            raise DataSetError(
                f"{p!r} is not a sector file of the same acquisition as {paths[0]!r} (no "
                f"block header, or blocks of another size than {bh} x {bw}); keep the eight "
                ".bin files of one acquisition together"
            )
        size = os.path.getsize(p)
        n, rest = divmod(size, block_bytes)
        if rest:
            warnings.warn(
                f"{p!r} ends inside block {n} (0-based): {rest} of its {block_bytes} bytes are "
                "there; it is not read. The file is truncated (an interrupted acquisition "
                "or copy).",
                TruncatedFileWarning,
                stacklevel=4,
            )
        if n >= 2 and int(_headers(p, block_bytes, 2)["sync"][1]) != SYNC:
            raise DataSetError(
                f"{p!r}: the second block does not start {block_bytes} bytes after the first "
                f"(the size of a {bh} x {bw} block); the file is damaged or not K2 IS data"
            )
        win = np.array(_headers(p, block_bytes, min(n, _SCAN_BLOCKS)))
        if sector_shape is None:
            sector_shape = (int(win["y_end"].max()) + 1, int(win["x_end"].max()) + 1)
        nblocks.append(n)
        windows.append(win)
    assert sector_shape is not None
    sh, sw = sector_shape
    if sh % bh or sw % bw:
        raise DataSetError(
            f"{paths[0]!r}: a sector of {sh} x {sw} pixels is not tiled by {bh} x {bw} blocks; "
            "the file is damaged"
        )
    blocks = (sh // bh) * (sw // bw)
    for p, win in zip(paths, windows):
        fid = win["frame_id"].astype(np.int64)
        start = None
        for i in range(0, len(win) - blocks + 1):
            if (i == 0 or fid[i - 1] != fid[i]) and fid[i + blocks - 1] == fid[i]:
                start = i
                break
        if start is None:
            raise DataSetError(
                f"{p!r} holds no complete frame ({blocks} blocks of one frame id) in its first "
                f"{len(win)} blocks; the acquisition is too short or the file is damaged"
            )
        starts.append(start)
        first_ids.append(int(fid[start]))
    first_id = max(first_ids)
    offsets, frames = [], []
    for n, start, fid0 in zip(nblocks, starts, first_ids):
        off = start + (first_id - fid0) * blocks
        frames.append(max(0, (n - off) // blocks))
        offsets.append(off)
    num_frames = min(frames)
    if num_frames < 1:
        raise DataSetError(
            f"the sector files of {path!r} have no frame in common (frame id {first_id} is "
            "not complete in every file); the acquisition is truncated"
        )
    for p, off in zip(paths, offsets):
        # the first and the last synced frame must carry the frame ids the sync expects
        hdr = _headers(p, block_bytes, off + num_frames * blocks)
        for k in (0, num_frames - 1):
            got = hdr["frame_id"][off + k * blocks : off + (k + 1) * blocks].astype(np.int64)
            if not (got == first_id + k).all():
                raise DataSetError(
                    f"{p!r}: frame {k} after the sync should be frame id {first_id + k}, "
                    f"found {sorted(set(got.tolist()))}; blocks were lost in this file. Such "
                    "files are not supported."
                )
    return _Sectors(paths, offsets, num_frames, blocks, (bh, bw), sector_shape, first_id), starts


def _tag(tags: dict, *names: str):
    for name in names:
        if not isinstance(tags, dict) or name not in tags:
            return None
        tags = tags[name]
    return tags


def _count(value) -> int | None:
    """A positive whole number from a tag value (integer or integral float), else None."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return None
    v = float(value)
    return int(v) if v >= 1 and v == int(v) else None


def gtg_scan_shape(tags: dict, where: str = ".gtg") -> tuple[int, int] | None:
    """The STEM scan shape ``(Size Y, Size X)`` of a ``.gtg`` tag tree, or None for a time series.

    Gatan records the scan size of a STEM acquisition in the root group
    ``SI Dimensions`` (tags ``Size X`` and ``Size Y``); a ``.gtg`` without that
    group is a time series. A group with only one of the two sizes, or sizes
    that are not positive whole numbers, is a :class:`DataSetError` (give
    ``nav_shape=`` to open the data anyway).

    Examples
    --------
    >>> gtg_scan_shape({"SI Dimensions": {"Size X": 64, "Size Y": 32}})
    (32, 64)
    >>> gtg_scan_shape({"Other": {}}) is None
    True
    >>> gtg_scan_shape({"SI Dimensions": {"Size X": 64}})
    Traceback (most recent call last):
    ...
    udfwidgets.io.dataset.DataSetError: '.gtg' has SI Dimensions/Size X but no Size Y...
    """
    dims = tags.get("SI Dimensions")
    if dims is None:
        return None
    if not isinstance(dims, dict):
        raise DataSetError(
            f"{where!r}: its 'SI Dimensions' is a single value, not the group of the scan "
            "size (Size X, Size Y); the .gtg is damaged: give nav_shape= to open the data"
        )
    y, x = dims.get("Size Y"), dims.get("Size X")
    if y is None and x is None:
        return None
    if y is None or x is None:
        have, lack = ("Size X", "Size Y") if y is None else ("Size Y", "Size X")
        raise DataSetError(
            f"{where!r} has SI Dimensions/{have} but no {lack}: the scan shape is incomplete; "
            "give nav_shape=(rows, columns) to open the data"
        )
    ny, nx = _count(y), _count(x)
    if ny is None or nx is None:
        raise DataSetError(
            f"{where!r}: its scan size SI Dimensions/Size Y = {y!r}, Size X = {x!r} is not "
            "two positive whole numbers; give nav_shape=(rows, columns) to open the data"
        )
    return (ny, nx)


def _gtg_sampling(tags: dict) -> tuple[int, int] | None:
    """The scan size without flyback (``SI Image Tags/SI/Acquisition/Spatial Sampling``)."""
    base = ("SI Image Tags", "SI", "Acquisition", "Spatial Sampling")
    h = _count(_tag(tags, *base, "Height (pixels)"))
    w = _count(_tag(tags, *base, "Width (pixels)"))
    return None if h is None or w is None else (h, w)


class K2ISDataSet(DataSet):
    """A Gatan K2 IS acquisition: eight ``.bin`` sector files and a ``.gtg`` next to them.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.gtg`` file or any of the eight ``.bin`` sector files; the others
        are found next to it (``<stem>1.bin`` ... ``<stem>8.bin``, ``<stem>.gtg``).
    nav_shape : tuple of int, optional
        The scan shape. By default the ``.gtg``'s STEM scan size (its tags
        ``SI Dimensions/Size Y`` and ``Size X``, as ``(Size Y, Size X)``); a
        ``.gtg`` without them (a time series), or no readable ``.gtg`` next to
        the ``.bin`` files, gives ``(frames,)``. ``metadata["scan_shape_from"]``
        says which: ``"nav_shape"``, ``"gtg"`` or ``"frames"``.
    sync_offset : int
        Navigation frame ``i`` is frame ``i + sync_offset`` after the sync by
        frame id (see :mod:`udfwidgets.io.geometry`).
    num_partitions : int, optional
        Override the default number of partitions.

    Notes
    -----
    The first frame complete in every sector file is frame 0 (incomplete
    leading frames are skipped); ``metadata["first_frame_id"]`` is its frame
    id and ``metadata["skipped_blocks"]`` how many blocks were skipped in each
    file. Frames are ``uint16`` (12-bit values).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.k2is import K2ISDataSet, write_k2is
    >>> folder = tempfile.mkdtemp()
    >>> data = np.arange(6 * 4 * 64, dtype=np.uint16).reshape(2, 3, 4, 64) % 4096
    >>> write_k2is(folder, data, block_shape=(2, 4))
    >>> ds = K2ISDataSet(os.path.join(folder, "scan_.gtg"), nav_shape=(2, 3))
    >>> ds.shape, ds.dtype
    (Shape((2, 3, 4, 64), sig_dims=2), dtype('uint16'))
    >>> write_k2is(folder, data, block_shape=(2, 4), scan_shape=(2, 3), overwrite=True)
    >>> ds = K2ISDataSet(os.path.join(folder, "scan_1.bin"))  # the scan shape from the .gtg
    >>> tuple(ds.shape.nav), ds.metadata["scan_shape_from"]
    ((2, 3), 'gtg')
    """

    kind = "k2is"

    def __init__(
        self,
        path,
        nav_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
    ):
        super().__init__(num_partitions)
        bins, gtg, given = _sector_paths(path)
        self.path = given
        self.sectors, starts = _sync(bins, given)
        s = self.sectors
        self.dtype = np.dtype(np.uint16)
        sig = (s.sector_shape[0], SECTORS * s.sector_shape[1])
        tags: dict | None = None
        gtg_error = None
        if gtg is not None:
            from .dm import read_tags

            try:
                tags = read_tags(gtg)[0]
            except DataSetError as e:
                if given == gtg:
                    raise
                gtg_error = str(e)
        gtg_scan = None
        if tags is not None:
            try:
                gtg_scan = gtg_scan_shape(tags, str(gtg))
            except DataSetError as e:
                if nav_shape is None:  # nothing else says the scan shape
                    raise
                gtg_error = str(e)
        if nav_shape is not None:
            source = "nav_shape"
        elif gtg_scan is not None:
            nav_shape, source = gtg_scan, "gtg"
        else:
            source = "frames"
        self.geometry: ScanGeometry = resolve(
            s.num_frames, nav_shape, sync_offset, what=repr(given)
        )
        self.shape = Shape(self.geometry.nav_shape + sig, sig_dims=2)
        self.metadata = {
            "format": "Gatan K2 IS",
            "files": bins,
            "gtg": gtg,
            "frames": s.num_frames,
            "first_frame_id": s.first_id,
            "skipped_blocks": s.offsets,
            "block_shape": s.block_shape,
            "sector_shape": s.sector_shape,
            "scan_shape_from": source,
            "gtg_scan_shape": gtg_scan,
        }
        if tags is not None:
            self.metadata["gtg_tags"] = tags
            flyback = _gtg_sampling(tags)
            if flyback is not None:
                self.metadata["scan_shape_without_flyback"] = flyback
        if gtg_error is not None:
            self.metadata["gtg_error"] = gtg_error

    def _make_partition(self, start, stop, index):
        return K2ISPartition(
            self.shape,
            self.dtype,
            start,
            stop,
            index,
            sectors=self.sectors,
            geometry=self.geometry,
        )

    def _repr_items(self) -> dict:
        items = {"first_frame_id": self.sectors.first_id}
        if self.geometry.sync_offset:
            items["sync_offset"] = self.geometry.sync_offset
        if self.geometry.file_frames != self.geometry.num_frames:
            items["file_frames"] = self.geometry.file_frames
        return items


# ----------------------------------------------------------------------------- writer
def _pack12(pix: np.ndarray) -> np.ndarray:
    """``(..., 2k)`` values < 4096 to ``(..., 3k)`` bytes, the inverse of the reader's unpacking."""
    p = pix.astype(np.uint16).reshape(pix.shape[:-1] + (-1, 2))
    out = np.empty(p.shape[:-1] + (3,), dtype=np.uint8)
    out[..., 0] = p[..., 0] & 0xFF
    out[..., 1] = (p[..., 0] >> 8) | ((p[..., 1] & 0x0F) << 4)
    out[..., 2] = p[..., 1] >> 4
    return out.reshape(pix.shape[:-1] + (-1,))


def _tag_items(w, tags: dict) -> list[bytes]:
    """DM tags of a nested dict: dicts are groups, str text, int ``u4`` (``i4`` below 0), float ``f4``."""
    items = []
    for name, value in tags.items():
        if isinstance(value, dict):
            items.append(w.group(name, _tag_items(w, value)))
        elif isinstance(value, str):
            items.append(w.string(name, value))
        elif isinstance(value, (bool, np.bool_)):
            items.append(w.simple(name, int(value), "u1"))
        elif isinstance(value, (int, np.integer)):
            items.append(w.simple(name, int(value), "u4" if value >= 0 else "i4"))
        else:
            items.append(w.simple(name, float(value), "f4"))
    return items


def _gtg_bytes(n: int, frame_shape, block_shape, tags: dict | None = None) -> bytes:
    """A small DM4 file with the acquisition's description (our own tags, then ``tags``)."""
    from .dm import _Writer

    w = _Writer(4)
    ours = {
        "udfwidgets K2 IS": {
            "Frames": n,
            "Frame height": frame_shape[0],
            "Frame width": frame_shape[1],
            "Block height": block_shape[0],
            "Block width": block_shape[1],
            "Source": "udfwidgets write_k2is",
        }
    }
    items = _tag_items(w, {**ours, **(tags or {})})
    root = b"\x01\x00" + w._i(len(items)) + b"".join(items)
    return struct.pack(">I", 4) + w._i(len(root)) + struct.pack(">I", 1) + root + b"\x00" * 8


def write_k2is(
    folder,
    data,
    name: str = "scan",
    overwrite: bool = False,
    block_shape: tuple[int, int] = BLOCK_SHAPE,
    first_frame_id: int = 1000,
    leading_blocks: Sequence[int] | None = None,
    trailing_blocks: Sequence[int] | None = None,
    shuffle_blocks: int | None = None,
    scan_shape: tuple[int, int] | None = None,
    gtg_tags: dict | None = None,
) -> None:
    """Write ``data`` ``(*nav, h, w)`` as a K2 IS acquisition: 8 sector ``.bin`` files and a ``.gtg``.

    The files are ``<name>_1.bin`` ... ``<name>_8.bin`` and ``<name>_.gtg`` in
    ``folder``. Values must lie in 0..4095 (12 bits). ``w`` is split into eight
    sectors of ``w / 8`` columns, each tiled by blocks of ``block_shape``
    (rows, columns); a real camera's frames are 1860 x 2048 with 930 x 16
    blocks, smaller geometries make small test files.

    Parameters
    ----------
    folder : str or os.PathLike
        An existing folder.
    data : array_like
        The frames, ``(*nav, h, w)``.
    name : str
        The files' stem.
    overwrite : bool
        Replace existing files.
    block_shape : (int, int)
        Block rows and columns; they must tile a sector, with an even number of pixels.
    first_frame_id : int
        The frame id of the first frame of ``data``.
    leading_blocks : sequence of 8 int, optional
        Per sector file, how many blocks of the frame before the data (frame id
        ``first_frame_id - 1``, every pixel 4095) come first: the last ones of
        that frame, as in an acquisition that started mid-frame. Up to the blocks
        per frame; if every file has the whole frame, it is frame 0 when read.
    trailing_blocks : sequence of 8 int, optional
        Per sector file, how many blocks of one more, incomplete frame follow the data.
    shuffle_blocks : int, optional
        A seed: the blocks of every frame are written in a random order (the
        reader places blocks by their headers).
    scan_shape : (int, int), optional
        Written to the ``.gtg`` as Gatan's STEM scan size, the tags
        ``SI Dimensions/Size Y`` and ``SI Dimensions/Size X`` (the reader's
        default ``nav_shape``). Without it the ``.gtg`` has no scan size (a
        time series).
    gtg_tags : dict, optional
        More tags for the ``.gtg`` (nested dicts are groups; ``int`` values are
        written as ``uint32``, ``int32`` below 0, ``float`` as ``float32``,
        ``str`` as text), written after ``scan_shape`` (they may replace it).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> write_k2is(folder, np.zeros((3, 4, 64), np.uint16), block_shape=(2, 4))
    >>> sorted(os.listdir(folder))[:2], os.path.getsize(os.path.join(folder, "scan_1.bin"))
    (['scan_.gtg', 'scan_1.bin'], 624)
    """
    data = np.asarray(data)
    if data.ndim < 3:
        raise ValueError(f"data must be (*nav, height, width), got {data.shape}")
    if data.size and (data.min() < 0 or data.max() > 4095):
        raise ValueError("values must lie in 0..4095 (12 bits per pixel)")
    h, w = data.shape[-2:]
    bh, bw = (int(v) for v in block_shape)
    if w % SECTORS or h % bh or (w // SECTORS) % bw or (bh * bw) % 2:
        raise ValueError(
            f"frames of {h} x {w} are not 8 sectors tiled by {bh} x {bw} blocks (the width "
            "must be 8 x a multiple of the block width, the height a multiple of the block "
            "height, and a block must have an even number of pixels)"
        )
    sw = w // SECTORS
    rows, cols = h // bh, sw // bw
    b = rows * cols
    frames = data.reshape(-1, h, w)
    n = len(frames)
    lead = [0] * SECTORS if leading_blocks is None else [int(v) for v in leading_blocks]
    trail = [0] * SECTORS if trailing_blocks is None else [int(v) for v in trailing_blocks]
    if len(lead) != SECTORS or len(trail) != SECTORS or not all(0 <= v <= b for v in lead):
        raise ValueError(f"leading_blocks and trailing_blocks need 8 values in 0..{b}")
    if not all(0 <= v < b for v in trail):
        raise ValueError(f"trailing_blocks must lie in 0..{b - 1} (an incomplete frame)")
    folder = os.fspath(folder)
    names = [os.path.join(folder, f"{name}_{k}.bin") for k in range(1, SECTORS + 1)]
    gtg = os.path.join(folder, f"{name}_.gtg")
    for p in names + [gtg]:
        check_target(p, overwrite)
    rng = np.random.default_rng(shuffle_blocks) if shuffle_blocks is not None else None
    pos_r, pos_c = np.divmod(np.arange(b), cols)
    block_bytes = HEADER_BYTES + bh * bw * 3 // 2

    def blocks_of(sector: np.ndarray, ids: np.ndarray, counter: int) -> np.ndarray:
        """Frames ``(m, h, sw)`` of one sector to block bytes ``(m * b, block_bytes)``."""
        m = len(sector)
        tiles = sector.reshape(m, rows, bh, cols, bw).transpose(0, 1, 3, 2, 4).reshape(m, b, -1)
        order = np.tile(np.arange(b), (m, 1))
        if rng is not None:
            order = rng.permuted(order, axis=1)
        tiles = np.take_along_axis(tiles, order[:, :, None], axis=1)
        hdr = np.zeros((m, b), _HEADER)
        hdr["sync"], hdr["version"], hdr["block_size"] = SYNC, 1, block_bytes
        hdr["width"], hdr["height"] = sw, h
        hdr["block_count"] = counter + np.arange(m * b).reshape(m, b)
        hdr["frame_id"] = ids[:, None]
        hdr["y_start"], hdr["x_start"] = pos_r[order] * bh, pos_c[order] * bw
        hdr["y_end"], hdr["x_end"] = hdr["y_start"] + bh - 1, hdr["x_start"] + bw - 1
        body = _pack12(tiles)
        return np.concatenate([hdr.view(np.uint8).reshape(m, b, HEADER_BYTES), body], axis=2)

    junk = np.full((1, h, sw), 4095, np.uint16)
    step = max(1, (64 << 20) // max(1, h * sw * 2))
    for s, p in enumerate(names):
        with atomic_output(p, overwrite=overwrite) as tmp, open(tmp, "wb") as f:
            counter = 0
            if lead[s]:
                pre = blocks_of(junk, np.array([first_frame_id - 1]), 0)
                f.write(pre.reshape(b, block_bytes)[b - lead[s] :].tobytes())
                counter = lead[s]
            for a in range(0, n, step):
                part = frames[a : a + step, :, s * sw : (s + 1) * sw]
                ids = first_frame_id + np.arange(a, a + len(part))
                f.write(blocks_of(part, ids, counter).tobytes())
                counter += len(part) * b
            if trail[s]:
                post = blocks_of(junk, np.array([first_frame_id + n]), counter)
                f.write(post.reshape(b, block_bytes)[: trail[s]].tobytes())
    with atomic_output(gtg, overwrite=overwrite) as tmp, open(tmp, "wb") as f:
        tags: dict = {}
        if scan_shape is not None:
            sy, sx = (int(v) for v in scan_shape)
            tags["SI Dimensions"] = {"Size X": sx, "Size Y": sy}
        tags.update(gtg_tags or {})
        f.write(_gtg_bytes(n, (h, w), (bh, bw), tags))
