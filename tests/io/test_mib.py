"""Merlin .mib: every counter depth, single and quad, RAW mode, several files, .hdr, bad input."""

import os
import warnings

import numpy as np
import pytest
from format_cases import NAV, check_frames, write_mib_file

from udfwidgets import DataSetError
from udfwidgets.data import write_mib
from udfwidgets.io.files import TruncatedFileWarning
from udfwidgets.io.geometry import MissingFramesWarning

VARIANTS = [
    (depth, layout, raw)
    for depth in (1, 6, 12, 24)
    for layout in ("single", "quad")
    for raw in (False, True)
    if not (raw and depth == 24)
]


@pytest.mark.parametrize("depth, layout, raw", VARIANTS)
def test_variants_read_frame_exact(ctx, tmp_path, rng, depth, layout, raw):
    path, data, _ = write_mib_file(tmp_path, rng, depth, layout, raw)
    ds = ctx.load("mib", path=path)
    assert ds.metadata["counter_depth"] == depth and ds.metadata["raw_mode"] is raw
    assert ds.metadata["detector"].startswith(
        "Merlin " + ("quad" if layout == "quad" else "single")
    )
    check_frames(ctx, ds, data)


def test_every_executor_and_auto(any_ctx, tmp_path, rng):
    path, data, _ = write_mib_file(tmp_path, rng, 12, "quad", False, frames_per_file=5)
    for p in (tmp_path / "scan.hdr", str(tmp_path / "scan*.mib")):
        ds = any_ctx.load("auto", path=p, nav_shape=NAV)
        assert "MIBDataSet kind='mib'" in repr(ds) and "files=3" in repr(ds)
        check_frames(any_ctx, ds, data)
    assert "detected='content'" in repr(any_ctx.load("auto", path=tmp_path / "scan.hdr"))
    # the first file alone: the .hdr's scan needs 12 frames, the file holds 5
    with pytest.warns(MissingFramesWarning, match="holds 5 frames.* 7 of 12"):
        ds = any_ctx.load("auto", path=path)
    expected = data.copy().reshape(12, 512, 512)
    expected[5:] = 0
    check_frames(any_ctx, ds, expected.reshape(data.shape))


def test_raw_mode_layout_from_hand_made_bytes(ctx, tmp_path):
    """RAW mode decoded from bytes built by hand (not by our encoder), per the documented layout.

    1 bit per pixel, 64-pixel words with their 8 bytes reversed: the first pixel of a row is
    the top bit of the word's last byte. Quad: chips 0 and 1 at the top, 2 and 3 rotated at
    the bottom.
    """
    row_bytes = 256 // 8
    body = np.zeros((256, 4, row_bytes), np.uint8)
    body[0, 0, 7] = 0x80  # chip 0, row 0, pixel 0
    body[0, 1, 7] = 0x40  # chip 1, row 0, pixel 1
    body[5, 2, 0] = 0x01  # chip 2, row 5, pixel 63 (last bit of the first word)
    body[0, 3, 31] = 0x80  # chip 3, row 0, pixel 192 (first pixel of the last word)
    path = tmp_path / "hand.mib"
    # borrow a valid header from our writer, then put the hand-made body behind it
    write_mib(
        tmp_path / "tmpl.mib",
        np.zeros((1, 512, 512), np.uint8),
        counter_depth=1,
        layout="quad",
        raw=True,
        header_file=False,
    )
    head = (tmp_path / "tmpl.mib").read_bytes()[:768]
    path.write_bytes(head + body.tobytes())
    frame = ctx.load("mib", path=path).get_partitions(1)[0].read(0, 1)[0]
    expected = np.zeros((512, 512), np.uint8)
    expected[0, 0] = 1  # chip 0: top left, as read
    expected[0, 256 + 1] = 1  # chip 1: top right, as read
    # chips 2 | 3 side by side, then the pair turned by 180 degrees into the bottom half
    expected[511 - 5, 511 - 63] = 1  # chip 2 ends up bottom right
    expected[511 - 0, 511 - (256 + 192)] = 1  # chip 3 ends up bottom left
    np.testing.assert_array_equal(frame, expected)
    assert frame.sum() == 4


def test_12bit_single_hand_made_big_endian(ctx, tmp_path):
    """U16 frames are big-endian words: bytes 0x01 0x02 read as 258."""
    write_mib(tmp_path / "tmpl.mib", np.zeros((1, 256, 256), np.uint16), header_file=False)
    head = (tmp_path / "tmpl.mib").read_bytes()[:384]
    body = np.zeros(256 * 256 * 2, np.uint8)
    body[0], body[1] = 0x01, 0x02
    (tmp_path / "be.mib").write_bytes(head + body.tobytes())
    frame = ctx.load("mib", path=tmp_path / "be.mib").get_partitions(1)[0].read(0, 1)[0]
    assert frame.dtype == np.uint16 and frame[0, 0] == 258 and frame.sum() == 258


def test_scan_shape_from_hdr_and_without(ctx, tmp_path, rng):
    path, data, _ = write_mib_file(tmp_path, rng, 6)
    assert ctx.load("mib", path=path).shape.nav == NAV
    assert (
        ctx.load("mib", path=tmp_path / "scan.hdr").metadata["acquisition"][
            "Frames in Acquisition (Number)"
        ]
        == "12"
    )
    os.remove(tmp_path / "scan.hdr")
    ds = ctx.load("mib", path=path)
    assert ds.shape.nav == (12,) and "acquisition" not in ds.metadata
    check_frames(ctx, ctx.load("mib", path=path, nav_shape=NAV), data)


def test_list_and_glob_of_files_in_sequence_order(ctx, tmp_path, rng):
    path, data, _ = write_mib_file(tmp_path, rng, 12, frames_per_file=4)
    files = sorted(str(p) for p in tmp_path.glob("scan*.mib"))
    assert len(files) == 3
    for spec in (files[::-1], str(tmp_path / "scan*.mib")):
        ds = ctx.load("mib", path=spec, nav_shape=NAV)
        check_frames(ctx, ds, data)


def test_one_frame_per_file(ctx, tmp_path, rng):
    path, data, _ = write_mib_file(tmp_path, rng, 1, frames_per_file=1)
    ds = ctx.load("mib", path=tmp_path / "scan.hdr")
    assert len(ds.files.segments) == 12
    check_frames(ctx, ds, data)


def test_truncated_last_frame_is_reported_not_read(ctx, tmp_path, rng):
    path, data, _ = write_mib_file(tmp_path, rng, 12)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 1000)
    with (
        pytest.warns(TruncatedFileWarning, match="ends inside frame 11"),
        pytest.warns(MissingFramesWarning, match="1 of 12"),
    ):
        ds = ctx.load("mib", path=path)
    expected = data.copy()
    expected[-1, -1] = 0
    check_frames(ctx, ds, expected)


def test_flyback_frames_skipped_with_nav_shape_and_sync_offset(ctx, tmp_path, rng):
    """A scan with one flyback frame per row: read as (3, 5) and crop in analysis, or offset."""
    data = rng.integers(0, 4096, (3, 5, 256, 256)).astype(np.uint16)
    write_mib(tmp_path / "fly.mib", data)
    ds = ctx.load("mib", path=tmp_path / "fly.mib", nav_shape=(2, 5), sync_offset=5)
    check_frames(ctx, ds, data[1:])


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x93NUMPY" + bytes(3000), "not a Merlin .mib file"),
        (b"MQ1,xx" + bytes(3000), "malformed"),
        (b"MQ1,000001", "too short"),
    ],
)
def test_foreign_or_broken_files_under_mib_extension(ctx, tmp_path, content, message):
    path = tmp_path / "bad.mib"
    path.write_bytes(content)
    with pytest.raises(DataSetError, match=message):
        ctx.load("mib", path=path)


def test_bad_input(ctx, tmp_path, rng):
    with pytest.raises(DataSetError, match="is a folder"):
        ctx.load("mib", path=tmp_path)
    (tmp_path / "empty.mib").write_bytes(b"")
    with pytest.raises(DataSetError, match="is empty"):
        ctx.load("mib", path=tmp_path / "empty.mib")
    with pytest.raises(DataSetError, match="no such .mib file"):
        ctx.load("mib", path=tmp_path / "nope.mib")
    with pytest.raises(DataSetError, match="no file matches"):
        ctx.load("mib", path=str(tmp_path / "nope*.mib"))
    path, data, _ = write_mib_file(tmp_path, rng, 12)
    os.rename(path, tmp_path / "moved.bin")
    with pytest.raises(DataSetError, match=r"no .mib file named scan\*.mib is next to it"):
        ctx.load("mib", path=tmp_path / "scan.hdr")
    # frames shorter than the first header says (a different acquisition appended)
    write_mib(tmp_path / "a.mib", data[:1], header_file=False)
    write_mib(
        tmp_path / "b.mib", data[:1].astype(np.uint8) % 64, counter_depth=6, header_file=False
    )
    with pytest.raises(DataSetError, match="not frames of the same acquisition"):
        ctx.load("mib", path=[tmp_path / "a.mib", tmp_path / "b.mib"])
    mixed = tmp_path / "mixed.mib"
    mixed.write_bytes((tmp_path / "a.mib").read_bytes() + 3 * (tmp_path / "b.mib").read_bytes())
    with pytest.raises(DataSetError, match="the header of its last frame"):
        ctx.load("mib", path=mixed)


def test_writer_checks(tmp_path):
    with pytest.raises(ValueError, match="values must lie in 0 .. 63"):
        write_mib(tmp_path / "x.mib", np.full((1, 256, 256), 64, np.uint8), counter_depth=6)
    with pytest.raises(ValueError, match="RAW mode quad frames are 512 x 512"):
        write_mib(
            tmp_path / "x.mib",
            np.zeros((1, 256, 256), np.uint8),
            counter_depth=1,
            layout="quad",
            raw=True,
        )
    write_mib(tmp_path / "x.mib", np.zeros((1, 256, 256), np.uint16))
    with pytest.raises(FileExistsError):
        write_mib(tmp_path / "x.mib", np.zeros((1, 256, 256), np.uint16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_mib(tmp_path / "x.mib", np.ones((1, 256, 256), np.uint16), overwrite=True)
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]
