"""The demo's --dark/--gain/--exclude options and its results.h5."""

from __future__ import annotations

import sys

import h5py
import numpy as np

from udfwidgets.cli import main


def test_demo_applies_corrections_and_writes_results_h5(tmp_path, capsys):
    data = np.random.default_rng(3).integers(0, 50, size=(4, 5, 16, 16)).astype(np.uint16)
    data[..., 2, 3] = 60000  # hot pixel
    np.save(tmp_path / "scan.npy", data)
    dark = np.full((16, 16), 1.0)
    np.save(tmp_path / "dark.npy", dark)
    np.save(tmp_path / "gain.npy", np.full((16, 16), 2.0))
    (tmp_path / "bad.txt").write_text("2 3\n")
    out_dir = tmp_path / "out"
    code = main(
        [
            "demo",
            "--data",
            str(tmp_path / "scan.npy"),
            "--executor",
            "inline",
            "--dark",
            str(tmp_path / "dark.npy"),
            "--gain",
            str(tmp_path / "gain.npy"),
            "--exclude",
            str(tmp_path / "bad.txt"),
            "--out",
            str(out_dir),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    want = (data.astype(np.float64) - 1) * 2
    flat = want.reshape(-1, 16, 16)
    nb = [flat[:, y, x] for y in (1, 2, 3) for x in (2, 3, 4) if (y, x) != (2, 3)]
    flat[:, 2, 3] = np.median(np.stack(nb, -1), -1)
    with h5py.File(out_dir / "results.h5") as f:
        got = f["entry/SumUDF_intensity/data"][()]
        assert f["entry/SumUDF_intensity"].attrs["udf"] == "SumUDF"
        assert "SumSigUDF_intensity" in f["entry"]
    np.testing.assert_allclose(got, flat.sum(axis=0), rtol=1e-5)


def test_demo_refuses_corrections_of_the_wrong_shape(tmp_path, capsys):
    np.save(tmp_path / "dark.npy", np.zeros((3, 3)))
    code = main(
        [
            "demo",
            "--nav",
            "4",
            "4",
            "--sig",
            "16",
            "16",
            "--executor",
            "inline",
            "--dark",
            str(tmp_path / "dark.npy"),
            "--out",
            str(tmp_path / "o"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "dark has shape (3, 3)" in err and "(16, 16)" in err
    assert not (tmp_path / "o").exists()
    code = main(
        [
            "demo",
            "--nav",
            "4",
            "4",
            "--sig",
            "16",
            "16",
            "--executor",
            "inline",
            "--exclude",
            str(tmp_path / "missing.npy"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "cannot read --exclude" in capsys.readouterr().err


def test_demo_without_h5py_saves_results_npz(tmp_path, capsys, monkeypatch):
    # a plain `pip install udfwidgets` has no h5py: the demo must still finish and save
    monkeypatch.setitem(sys.modules, "h5py", None)
    data = np.random.default_rng(4).integers(0, 50, size=(3, 4, 8, 8)).astype(np.uint16)
    np.save(tmp_path / "scan.npy", data)
    out_dir = tmp_path / "out"
    code = main(
        [
            "demo",
            "--data",
            str(tmp_path / "scan.npy"),
            "--executor",
            "inline",
            "--out",
            str(out_dir),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert not (out_dir / "results.h5").exists()
    assert "results.npz" in captured.out and "udfwidgets[export]" in captured.out
    with np.load(out_dir / "results.npz") as f:
        sums = [f[k] for k in f.files if k.startswith("SumUDF") or k == "intensity"]
        assert any(s.shape == (8, 8) and np.allclose(s, data.sum(axis=(0, 1))) for s in sums), (
            f.files
        )
