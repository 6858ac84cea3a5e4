"""The atomic-output rule every writer follows."""

import os

import numpy as np
import pytest

from udfwidgets.io.atomic import atomic_output, check_target


def test_success_renames_into_place(tmp_path):
    target = tmp_path / "a.npy"
    with atomic_output(target) as tmp:
        assert not target.exists()
        np.save(open(tmp, "wb"), np.arange(4))
    assert np.load(target).tolist() == [0, 1, 2, 3]
    assert sorted(os.listdir(tmp_path)) == ["a.npy"]


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_failure_keeps_the_old_file_and_leaves_no_partial(tmp_path, exc):
    target = tmp_path / "a.npy"
    np.save(target, np.arange(3))
    with pytest.raises(exc):
        with atomic_output(target, overwrite=True) as tmp:
            np.save(open(tmp, "wb"), np.zeros(10))
            raise exc()
    assert np.load(target).tolist() == [0, 1, 2]
    assert sorted(os.listdir(tmp_path)) == ["a.npy"]


def test_existing_target_without_overwrite_is_refused_before_writing(tmp_path):
    target = tmp_path / "a.npy"
    target.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        with atomic_output(target):
            pytest.fail("must not get here")
    assert target.read_bytes() == b"old"


def test_directory_output_replaces_an_old_folder(tmp_path):
    target = tmp_path / "store.zarr"
    target.mkdir()
    (target / "old").write_text("x")
    with atomic_output(target, overwrite=True, directory=True) as tmp:
        assert os.path.isdir(tmp)
        open(os.path.join(tmp, "new"), "w").close()
    assert sorted(os.listdir(target)) == ["new"]
    assert sorted(os.listdir(tmp_path)) == ["store.zarr"]


def test_missing_folder_and_folder_target_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_target(tmp_path / "nope" / "a.npy")
    with pytest.raises(IsADirectoryError, match="folder"):
        check_target(tmp_path)


def test_written_files_get_the_umask_mode_or_that_of_the_file_they_replace(tmp_path):
    # mkstemp's 0600 would make our outputs unreadable for cluster workers of another user
    old = os.umask(0o022)
    try:
        target = tmp_path / "new.npy"
        with atomic_output(target) as tmp:
            np.save(tmp, np.arange(3))
        assert os.stat(target).st_mode & 0o777 == 0o644
        with atomic_output(tmp_path / "store.zarr", directory=True):
            pass
        assert os.stat(tmp_path / "store.zarr").st_mode & 0o777 == 0o755
        os.chmod(target, 0o640)
        with atomic_output(target, overwrite=True) as tmp:
            np.save(tmp, np.arange(4))
        assert os.stat(target).st_mode & 0o777 == 0o640
        os.umask(0o077)
        with atomic_output(tmp_path / "private.npy") as tmp:
            np.save(tmp, np.arange(3))
        assert os.stat(tmp_path / "private.npy").st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
