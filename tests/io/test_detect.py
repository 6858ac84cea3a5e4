"""ctx.load("auto"): by content first, then extension; every kind; named in repr; bad input."""

import shutil

import numpy as np
import pytest
from format_cases import WRITERS, check_frames

from udfwidgets import DataSetError
from udfwidgets.io.detect import REGISTRY, detect, kinds


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_auto_opens_every_kind(ctx, tmp_path, rng, kind):
    path, data, kwargs = WRITERS[kind](tmp_path, rng)
    ds = ctx.load("auto", path=path, **kwargs)
    assert ds.kind == kind and f"kind='{kind}'" in repr(ds) and "detected=" in repr(ds)
    check_frames(ctx, ds, data)


# raw has no content to recognise; EMPAD's description is recognised as an .xml file only
@pytest.mark.parametrize("kind", sorted(set(WRITERS) - {"raw", "empad"}))
def test_content_wins_over_a_misleading_extension(tmp_path, rng, kind):
    path, data, kwargs = WRITERS[kind](tmp_path, rng)
    moved = tmp_path / "renamed.dat"
    shutil.copy(path, moved)
    if kind == "tvips":  # the series is found from the _000 name; one file is sniffed alone
        moved = tmp_path / "renamed.tvips"
        shutil.copy(path, moved)
    if kind == "k2is":  # a .gtg is a DM4 file (known by its name); a sector file by content
        shutil.copy(tmp_path / "scan_1.bin", moved)
    assert detect(moved) == (kind, "content")


def test_extension_when_content_says_nothing(tmp_path):
    path = tmp_path / "frames.raw"
    np.zeros(16, np.uint8).tofile(path)
    assert detect(path) == ("raw", "extension .raw")


def test_registry_lists_the_hdf5_branch_kinds_lazily():
    names = [k.kind for k in REGISTRY]
    assert names.index("dectris") < names.index("hdf5")  # DECTRIS before generic HDF5
    assert {"hdf5", "dectris", "zarr", "dask"} <= set(names)
    assert {"mib", "blo", "empad", "mrc", "tvips", "dm", "k2is", "npy", "raw"} <= set(kinds())
    assert names.index("k2is") < names.index("dm")  # a .gtg is a DM4 file: K2 IS first


def test_auto_bad_input(ctx, tmp_path):
    with pytest.raises(DataSetError, match="needs a path"):
        ctx.load("auto")
    with pytest.raises(DataSetError, match="no such file"):
        ctx.load("auto", path=tmp_path / "nope.mib")
    (tmp_path / "empty.mib").write_bytes(b"")
    with pytest.raises(DataSetError, match="is empty"):
        ctx.load("auto", path=tmp_path / "empty.mib")
    with pytest.raises(DataSetError, match="is a folder that no reader recognises"):
        ctx.load("auto", path=tmp_path)
    (tmp_path / "x.unknown").write_bytes(b"something")
    with pytest.raises(DataSetError, match="cannot tell the layout"):
        ctx.load("auto", path=tmp_path / "x.unknown")
    # a file of another format under a known extension: the content decides, the error says so
    (tmp_path / "fake.blo").write_bytes(b"MQ1,garbage" + bytes(100))
    with pytest.raises(DataSetError, match="malformed|too short"):
        ctx.load("auto", path=tmp_path / "fake.blo")
    (tmp_path / "noise.mib").write_bytes(bytes(5000))
    with pytest.raises(DataSetError, match="not a Merlin .mib file"):
        ctx.load("auto", path=tmp_path / "noise.mib")


def test_a_reader_whose_library_is_missing_names_the_extra(ctx, tmp_path, monkeypatch):
    """A missing library never breaks "auto" for other formats; asking for its kind names the extra."""
    import importlib

    from udfwidgets.io import detect as det

    real = importlib.import_module

    def fake_import(name, *args):
        if name == "udfwidgets.io.mrc":  # as if io/mrc.py imported a library that is missing
            raise ModuleNotFoundError("No module named 'mrcfile'", name="mrcfile")
        return real(name, *args)

    monkeypatch.setattr(det.importlib, "import_module", fake_import)
    path = tmp_path / "a.npy"
    np.save(path, np.zeros((2, 3, 4)))
    assert ctx.load("auto", path=path).kind == "npy"
    entry = next(k for k in det.REGISTRY if k.kind == "mrc")
    assert det._module(entry) is None
    with pytest.raises(DataSetError, match=r"pip install 'udfwidgets\[formats\]'"):
        ctx.load("mrc", path=path)


def test_partitions_pickle_small_and_release_hooks_run(tmp_path, rng):
    import pickle

    from udfwidgets.io import files, load

    for kind in ("mib", "blo", "dm", "k2is"):
        path, data, kw = WRITERS[kind](tmp_path, rng)
        ds = load(kind, path=path, **kw)
        for part in ds.get_partitions(2):
            part.read(part.start, part.stop)
            assert len(pickle.dumps(part)) < 2000
    called = []
    files.RELEASE_HOOKS.append(lambda: called.append(1))
    try:
        assert files.release_maps() >= 1 and called == [1]
    finally:
        files.RELEASE_HOOKS.pop()
