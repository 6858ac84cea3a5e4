"""RecordUDF: the .npy file holds exactly the selected frames, written by the workers."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

from test_masks import run_configs
from udfwidgets.udf.record import RecordUDF


def expected_file(data, roi, dtype=None):
    out = data.astype(dtype or data.dtype, copy=True)
    if roi is not None:
        out[~roi] = 0
    return out


def test_record_writes_selected_frames(any_ctx, data4d_int, tmp_path):
    names = (str(tmp_path / f"rec{i}.npy") for i in itertools.count())
    paths = []

    def make():
        paths.append(next(names))
        return RecordUDF(paths[-1])

    for roi, n, res in run_configs(any_ctx, data4d_int, make):
        assert res == {}
        got = np.load(paths[-1])
        assert got.dtype == np.uint16 and got.shape == data4d_int.shape
        np.testing.assert_array_equal(
            got, expected_file(data4d_int, roi), err_msg=f"{n} partitions, roi {roi is not None}"
        )


def test_record_dtype_and_1d_signal(processes_ctx, rng, tmp_path):
    data = rng.integers(0, 5000, size=(4, 5, 9), dtype=np.uint16)
    path = tmp_path / "f.npy"
    ds = processes_ctx.load("memory", data=data, sig_dims=1, num_partitions=3)
    roi = rng.random((4, 5)) < 0.5
    processes_ctx.run_udf(dataset=ds, udf=RecordUDF(path, dtype="float32"), roi=roi)
    got = np.load(path)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected_file(data, roi, np.float32))


def test_overwrite_false_refuses_existing_file(ctx, data4d_int, tmp_path):
    path = tmp_path / "x.npy"
    ds = ctx.load("memory", data=data4d_int, num_partitions=2)
    udf = RecordUDF(path)
    ctx.run_udf(dataset=ds, udf=udf)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ctx.run_udf(dataset=ds, udf=udf)
    np.testing.assert_array_equal(np.load(path), data4d_int)  # untouched


def test_overwrite_true_starts_from_a_fresh_file(processes_ctx, data4d_int, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.full((3, 3), 7.0))  # some other content
    ds = processes_ctx.load("memory", data=data4d_int, num_partitions=3)
    processes_ctx.run_udf(dataset=ds, udf=RecordUDF(path, overwrite=True))
    np.testing.assert_array_equal(np.load(path), data4d_int)
    roi = np.zeros(data4d_int.shape[:2], dtype=bool)
    roi[2, 1:4] = True
    processes_ctx.run_udf(dataset=ds, udf=RecordUDF(path, overwrite=True), roi=roi)
    np.testing.assert_array_equal(np.load(path), expected_file(data4d_int, roi))


def test_relative_filename_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    udf = RecordUDF("rel.npy")
    assert udf.params.filename == os.path.join(str(tmp_path), "rel.npy")
    assert udf.copy().params.filename == udf.params.filename


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"filename": 3}, TypeError, "filename must be a path"),
        ({"filename": "/no/such/dir/x.npy"}, FileNotFoundError, "does not exist"),
        ({"filename": "x.npy", "dtype": "nope"}, ValueError, "dtype must be a NumPy dtype"),
        ({"filename": "x.npy", "dtype": object}, ValueError, "numeric dtype"),
        ({"filename": "x.npy", "overwrite": "yes"}, ValueError, "overwrite must be"),
    ],
)
def test_parameter_errors(kwargs, exc, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(exc, match=match):
        RecordUDF(**kwargs)


def test_directory_as_filename(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        RecordUDF(tmp_path)
