"""Gatan K2 IS: eight sector files, sync by frame id, 12-bit blocks placed by header, bad input."""

import os
import warnings

import numpy as np
import pytest
from format_cases import check_frames, shifted, write_k2is_file

from udfwidgets import DataSetError
from udfwidgets.data import write_k2is
from udfwidgets.io.files import TruncatedFileWarning
from udfwidgets.io.geometry import MissingFramesWarning
from udfwidgets.io.k2is import K2ISDataSet, sniff
from udfwidgets.udf.pick import PickUDF

BLOCK = (6, 4)  # 2 x 2 blocks per 12 x 8 sector: frames of 12 x 64
BLOCK_BYTES = 40 + 6 * 4 * 3 // 2


def test_every_executor_and_auto(any_ctx, tmp_path, rng):
    path, data, kw = write_k2is_file(tmp_path, rng)
    for p in (path, tmp_path / "scan_1.bin", tmp_path / "scan_8.bin"):
        ds = any_ctx.load("auto", path=p, **kw)
        assert "K2ISDataSet kind='k2is'" in repr(ds) and "detected='content'" in repr(ds)
        assert ds.metadata["first_frame_id"] == 1000
        check_frames(any_ctx, ds, data)


@pytest.mark.parametrize("num_partitions", [1, 3, 12])
def test_partition_counts_across_executors(ctx_factory, tmp_path, rng, num_partitions):
    path, data, kw = write_k2is_file(tmp_path, rng)
    for name in ("threads", "processes"):
        ctx = ctx_factory(name)
        ds = ctx.load("k2is", path=path, num_partitions=num_partitions, **kw)
        assert len(ds.get_partitions(2)) == num_partitions
        check_frames(ctx, ds, data)


@pytest.mark.parametrize(
    "frames, nav, lead, trail, shuffle",
    [
        (1, (1,), None, None, None),
        (5, (5,), (1, 2, 3, 4, 0, 1, 2, 3), None, None),
        (12, (3, 4), None, (1, 2, 3, 1, 2, 3, 1, 2), 7),
        (12, (2, 2, 3), (4, 4, 4, 4, 4, 4, 4, 3), None, 1),  # frame 999 complete in 7 files
        (7, (7,), (4, 4, 4, 4, 4, 4, 4, 4), None, None),  # 999 complete everywhere: frame 0
    ],
)
def test_variants_read_frame_exact(ctx, tmp_path, rng, frames, nav, lead, trail, shuffle):
    data = rng.integers(0, 4096, (frames, 12, 64)).astype(np.uint16)
    write_k2is(
        tmp_path, data, block_shape=BLOCK, leading_blocks=lead, trailing_blocks=trail,
        shuffle_blocks=shuffle, first_frame_id=50,
    )  # fmt: skip
    expected = data
    if lead is not None and min(lead) == 4:  # the junk frame before the data is whole
        expected = np.concatenate([np.full((1, 12, 64), 4095, np.uint16), data])[:frames]
    ds = ctx.load("k2is", path=tmp_path / "scan_3.bin", nav_shape=nav)
    skipped = [0] * 8 if lead is None else [v if min(lead) < 4 else 0 for v in lead]
    assert ds.metadata["skipped_blocks"] == skipped
    assert ds.metadata["first_frame_id"] == (49 if lead is not None and min(lead) == 4 else 50)
    assert ds.metadata["block_shape"] == BLOCK and ds.metadata["sector_shape"] == (12, 8)
    check_frames(ctx, ds, expected.reshape(nav + (12, 64)))


def test_real_camera_geometry(ctx, tmp_path, rng):
    """1860 x 2048 frames of 930 x 16 blocks (22 360 bytes each, 32 per sector and frame)."""
    data = rng.integers(0, 4096, (2, 1860, 2048)).astype(np.uint16)
    write_k2is(tmp_path, data, leading_blocks=(31, 0, 5, 1, 0, 0, 2, 30))
    assert os.path.getsize(tmp_path / "scan_2.bin") == 2 * 32 * 22360
    ds = ctx.load("auto", path=tmp_path / "scan_.gtg")
    assert tuple(ds.shape) == (2, 1860, 2048) and ds.metadata["block_shape"] == (930, 16)
    assert ds.metadata["gtg_tags"]["udfwidgets K2 IS"]["Frames"] == 2
    got = ctx.run_udf(dataset=ds, udf=PickUDF())["intensity"].data
    np.testing.assert_array_equal(got, data)


def test_layout_from_hand_made_bytes(ctx, tmp_path):
    """Header fields big-endian at the documented offsets; 12-bit little-endian pixel pairs."""
    write_k2is(tmp_path, np.zeros((2, 12, 64), np.uint16), block_shape=BLOCK, first_frame_id=7)
    raw = bytearray((tmp_path / "scan_3.bin").read_bytes())
    # the second block of frame 0 in sector 3: the writer puts blocks row by row
    head = raw[BLOCK_BYTES : BLOCK_BYTES + 40]
    assert head[:4] == b"\xff\xff\x00\x55" and head[24:28] == (7).to_bytes(4, "big")
    x0, y0, x1, y1 = (int.from_bytes(head[k : k + 2], "big") for k in (28, 30, 32, 34))
    assert (x0, y0, x1, y1) == (4, 0, 7, 5)
    # pixels (0, 0) = 0x321 and (0, 1) = 0x654 of that block: bytes 21 43 65
    raw[BLOCK_BYTES + 40 : BLOCK_BYTES + 43] = bytes([0x21, 0x43, 0x65])
    (tmp_path / "scan_3.bin").write_bytes(bytes(raw))
    frame = ctx.load("k2is", path=tmp_path / "scan_.gtg").get_partitions(1)[0].read(0, 1)[0]
    expected = np.zeros((12, 64), np.uint16)
    expected[0, 2 * 8 + 4] = 0x321  # sector 3 starts at column 16; the block at column 4 of it
    expected[0, 2 * 8 + 5] = 0x654
    np.testing.assert_array_equal(frame, expected)


def test_nav_shape_and_sync_offset(ctx, tmp_path, rng):
    path, data, _ = write_k2is_file(tmp_path, rng)
    for nav, off in (((10,), 2), ((2, 5), 0), ((12,), -1), ((4, 4), 0)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingFramesWarning)
            ds = ctx.load("k2is", path=path, nav_shape=nav, sync_offset=off)
        check_frames(ctx, ds, shifted(data, nav, off))
    with pytest.warns(MissingFramesWarning, match="holds 12 frames.* 4 of 16"):
        ctx.load("k2is", path=path, nav_shape=(4, 4))
    with pytest.raises(DataSetError, match="nav_shape must be a tuple of positive integers"):
        ctx.load("k2is", path=path, nav_shape=(0, 4))
    with pytest.raises(DataSetError, match="sync_offset=12 leaves no frame"):
        ctx.load("k2is", path=path, sync_offset=12)


def test_missing_sector_file_and_wrong_names(ctx, tmp_path, rng):
    path, _, kw = write_k2is_file(tmp_path, rng)
    os.remove(tmp_path / "scan_5.bin")
    with pytest.raises(DataSetError, match=r"scan_5.bin is missing .* Copy all 8 .bin files"):
        ctx.load("k2is", path=path)
    for p in ("scan_2.bin", "scan_.gtg"):  # "auto" says so too (a .gtg is not opened as DM)
        with pytest.raises(DataSetError, match="scan_5.bin is missing"):
            ctx.load("auto", path=tmp_path / p)
    (tmp_path / "other.bin").write_bytes(bytes(100))
    assert not sniff(str(tmp_path / "other.bin")) and sniff(str(path))
    with pytest.raises(DataSetError, match=r"neither a .gtg file nor a sector file"):
        ctx.load("k2is", path=tmp_path / "other.bin")
    with pytest.raises(DataSetError, match="no such .gtg file"):
        ctx.load("k2is", path=tmp_path / "nope_.gtg")


def test_not_k2is_content(ctx, tmp_path, rng):
    path, _, _ = write_k2is_file(tmp_path, rng)
    (tmp_path / "scan_1.bin").write_bytes(bytes(5000))
    with pytest.raises(DataSetError, match="does not start with a K2 IS block header"):
        ctx.load("k2is", path=path)
    write_k2is(tmp_path, np.zeros((2, 24, 64), np.uint16), name="big", block_shape=(12, 4))
    os.replace(tmp_path / "big_1.bin", tmp_path / "scan_1.bin")  # a sector of another geometry
    with pytest.raises(DataSetError, match="not a sector file of the same acquisition"):
        ctx.load("k2is", path=path)


def test_truncated_sector_file(ctx, tmp_path, rng):
    path, data, kw = write_k2is_file(tmp_path, rng, trailing_blocks=None)
    sector = tmp_path / "scan_2.bin"
    size = os.path.getsize(sector)
    with open(sector, "r+b") as f:  # cut inside the second block of the last frame
        f.truncate(size - 2 * BLOCK_BYTES - 10)
    with pytest.warns(TruncatedFileWarning, match="scan_2.bin' ends inside block"):
        with pytest.warns(MissingFramesWarning, match="holds 11 frames"):
            ds = ctx.load("k2is", path=path, **kw)
    expected = data.copy().reshape(12, 12, 64)
    expected[11] = 0
    check_frames(ctx, ds, expected.reshape(data.shape))
    with open(sector, "r+b") as f:  # less than the first complete frame
        f.truncate(3 * BLOCK_BYTES)
    with pytest.raises(DataSetError, match="no complete frame|no frame in common"):
        ctx.load("k2is", path=path, **kw)


def test_lost_blocks_are_refused(ctx, tmp_path, rng):
    path, _, kw = write_k2is_file(tmp_path, rng, leading_blocks=None, trailing_blocks=None)
    sector = tmp_path / "scan_6.bin"
    raw = sector.read_bytes()
    k = 5 * 4 + 1  # a block of frame 5
    sector.write_bytes(raw[: k * BLOCK_BYTES] + raw[(k + 1) * BLOCK_BYTES :])
    with pytest.raises(DataSetError, match="blocks were lost"):
        ctx.load("k2is", path=path, **kw)


def test_writer_refuses_bad_input(tmp_path):
    with pytest.raises(ValueError, match="0..4095"):
        write_k2is(tmp_path, np.full((1, 12, 64), 4096), block_shape=BLOCK)
    with pytest.raises(ValueError, match="not 8 sectors tiled"):
        write_k2is(tmp_path, np.zeros((1, 12, 60)), block_shape=BLOCK)
    with pytest.raises(ValueError, match="8 values"):
        write_k2is(tmp_path, np.zeros((1, 12, 64)), block_shape=BLOCK, leading_blocks=(1, 2))
    write_k2is(tmp_path, np.zeros((1, 12, 64)), block_shape=BLOCK)
    with pytest.raises(FileExistsError):
        write_k2is(tmp_path, np.zeros((1, 12, 64)), block_shape=BLOCK)


def test_partitions_read_only_their_blocks(tmp_path, rng):
    """A partition pickles small and reads through maps of the eight files (no whole-file load)."""
    import pickle

    path, data, kw = write_k2is_file(tmp_path, rng)
    ds = K2ISDataSet(path, num_partitions=4, **kw)
    for part in ds.get_partitions(2):
        blob = pickle.dumps(part)
        assert len(blob) < 2000
        clone = pickle.loads(blob)
        got = clone.read(part.start, part.stop)
        np.testing.assert_array_equal(got, data.reshape(12, 12, 64)[part.start : part.stop])
        assert len(clone.sectors._maps) == 8  # one map per sector file, kept for the next read
        clone.close()


def test_partitions_follow_a_path_map(tmp_path, rng):
    """``with_paths`` (the dask executor's ``path_map``) moves all eight sector files."""
    import shutil

    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    path, data, kw = write_k2is_file(here, rng)
    ds = K2ISDataSet(path, **kw)
    shutil.move(here, there)
    for part in ds.get_partitions(2):
        moved = part.with_paths(lambda p: p.replace(str(here), str(there)))
        assert all(p.startswith(str(there)) for p in moved.sectors.paths)
        got = moved.read(part.start, part.stop)
        np.testing.assert_array_equal(got, data.reshape(12, 12, 64)[part.start : part.stop])


# --- the scan shape from the .gtg (Gatan's "SI Dimensions/Size Y, Size X") -----------------
def _gtg_tags(path):
    from udfwidgets.io.dm import read_tags

    return read_tags(str(path))[0]


@pytest.mark.parametrize("scan", [(3, 4), (4, 3), (2, 6), (1, 12)])
def test_scan_shape_from_gtg_every_executor(any_ctx, tmp_path, rng, scan):
    path, data, _ = write_k2is_file(tmp_path, rng, scan_shape=scan)
    # what our writer put in the DM4 file, read back by the DM tag reader
    assert _gtg_tags(path)["SI Dimensions"] == {"Size X": scan[1], "Size Y": scan[0]}
    for p in (path, tmp_path / "scan_5.bin"):
        ds = any_ctx.load("k2is", path=p)
        assert tuple(ds.shape.nav) == scan
        assert ds.metadata["scan_shape_from"] == "gtg" and ds.metadata["gtg_scan_shape"] == scan
        check_frames(any_ctx, ds, data.reshape(scan + data.shape[-2:]))
    ds = any_ctx.load("auto", path=path)
    assert tuple(ds.shape.nav) == scan


def test_scan_shape_from_gtg_with_partitions_and_sync_offset(ctx_factory, tmp_path, rng):
    path, data, _ = write_k2is_file(tmp_path, rng, scan_shape=(2, 5))
    for name in ("inline", "threads", "processes"):
        ctx = ctx_factory(name)
        for n in (1, 3, 10):
            ds = ctx.load("k2is", path=path, sync_offset=1, num_partitions=n)
            assert tuple(ds.shape.nav) == (2, 5) and len(ds.get_partitions(2)) == n
            check_frames(ctx, ds, shifted(data, (2, 5), 1))


def test_scan_shape_given_wins_over_gtg(ctx, tmp_path, rng):
    path, data, _ = write_k2is_file(tmp_path, rng, scan_shape=(3, 4))
    ds = ctx.load("k2is", path=path, nav_shape=(6, 2))
    assert tuple(ds.shape.nav) == (6, 2) and ds.metadata["scan_shape_from"] == "nav_shape"
    assert ds.metadata["gtg_scan_shape"] == (3, 4)
    check_frames(ctx, ds, data.reshape((6, 2) + data.shape[-2:]))


def test_gtg_scan_larger_or_smaller_than_the_frames(ctx, tmp_path, rng):
    path, data, _ = write_k2is_file(tmp_path, rng, scan_shape=(4, 4))  # 12 frames in the files
    with pytest.warns(MissingFramesWarning, match="holds 12 frames.* 4 of 16"):
        ds = ctx.load("k2is", path=path)
    check_frames(ctx, ds, shifted(data, (4, 4), 0))
    path, data, _ = write_k2is_file(tmp_path, rng, scan_shape=(2, 5), overwrite=True)
    ds = ctx.load("k2is", path=path)  # two frames more than the scan: not read
    check_frames(ctx, ds, shifted(data, (2, 5), 0))


def test_gtg_without_scan_size_is_a_time_series(ctx, tmp_path, rng):
    # a .gtg with other tags, even the flyback-free sampling, but no SI Dimensions
    sampling = {
        "SI": {"Acquisition": {"Spatial Sampling": {"Height (pixels)": 3, "Width (pixels)": 3}}}
    }
    path, data, _ = write_k2is_file(tmp_path, rng, gtg_tags={"SI Image Tags": sampling})
    ds = ctx.load("k2is", path=path)
    assert tuple(ds.shape.nav) == (12,) and ds.metadata["scan_shape_from"] == "frames"
    assert ds.metadata["gtg_scan_shape"] is None
    assert ds.metadata["scan_shape_without_flyback"] == (3, 3)
    check_frames(ctx, ds, data.reshape((12,) + data.shape[-2:]))
    # an empty SI Dimensions group: the same
    path, data, _ = write_k2is_file(tmp_path, rng, gtg_tags={"SI Dimensions": {}}, overwrite=True)
    assert tuple(ctx.load("k2is", path=path).shape.nav) == (12,)


def test_gtg_sizes_as_whole_floats(ctx, tmp_path, rng):
    tags = {"SI Dimensions": {"Size Y": 3.0, "Size X": 4.0}}
    path, data, _ = write_k2is_file(tmp_path, rng, gtg_tags=tags)
    assert tuple(ctx.load("k2is", path=path).shape.nav) == (3, 4)


@pytest.mark.parametrize(
    "dims, match",
    [
        ({"Size X": 4}, "has SI Dimensions/Size X but no Size Y.*nav_shape="),
        ({"Size Y": 3}, "has SI Dimensions/Size Y but no Size X.*nav_shape="),
        ({"Size Y": 0, "Size X": 4}, "not two positive whole numbers.*nav_shape="),
        ({"Size Y": -3, "Size X": 4}, "not two positive whole numbers"),
        ({"Size Y": 2.5, "Size X": 4}, "not two positive whole numbers"),
        ({"Size Y": "3", "Size X": 4}, "not two positive whole numbers"),
    ],
)
def test_bad_gtg_scan_size_is_a_clear_error(ctx, tmp_path, rng, dims, match):
    path, data, _ = write_k2is_file(tmp_path, rng, gtg_tags={"SI Dimensions": dims})
    for p in (path, tmp_path / "scan_2.bin"):
        with pytest.raises(DataSetError, match=match):
            ctx.load("k2is", path=p)
    # nav_shape= opens the data anyway; the problem is kept in the metadata
    ds = ctx.load("k2is", path=path, nav_shape=(3, 4))
    assert "gtg_error" in ds.metadata and ds.metadata["scan_shape_from"] == "nav_shape"
    check_frames(ctx, ds, data)


def test_missing_or_damaged_gtg_next_to_the_bins(ctx, tmp_path, rng):
    path, data, _ = write_k2is_file(tmp_path, rng, scan_shape=(3, 4))
    with open(path, "r+b") as fh:  # truncate the .gtg inside its tags
        fh.truncate(40)
    with pytest.raises(DataSetError, match="truncated"):
        ctx.load("k2is", path=path)  # the .gtg itself was asked for
    ds = ctx.load("k2is", path=tmp_path / "scan_1.bin")
    assert tuple(ds.shape.nav) == (12,) and "truncated" in ds.metadata["gtg_error"]
    os.remove(path)
    ds = ctx.load("k2is", path=tmp_path / "scan_1.bin")
    assert tuple(ds.shape.nav) == (12,) and ds.metadata["scan_shape_from"] == "frames"
    check_frames(ctx, ds, data.reshape((12,) + data.shape[-2:]))
