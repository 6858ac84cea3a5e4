"""The ``udfwidgets demo`` command: table numbers against plain NumPy, PNGs, errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from udfwidgets.cli import main
from udfwidgets.data import make_4dstem, write_npy, write_raw

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIX_UDFS = ("SumUDF", "SumSigUDF", "ApplyMasksUDF", "CoMUDF", "StdDevUDF")


def run(capsys, *args) -> tuple[int, str, str]:
    code = main(["demo", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def parse_table(out: str) -> dict[str, tuple[tuple[int, ...], float, float, float]]:
    """``{buffer: (shape, min, max, mean)}`` from the printed table."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["buffer", "shape"])
    table = {}
    for line in lines[start + 1 :]:
        if line.startswith("pass:"):
            break
        name, shape, lo, hi, mean = line.split()
        table[name] = (tuple(int(d) for d in shape.split("x")), float(lo), float(hi), float(mean))
    return table


def reference(data: np.ndarray, centre, bf: float, adf: tuple[float, float]) -> dict:
    """The demo's results, computed with plain NumPy."""
    h, w = data.shape[-2:]
    nav = data.shape[:-2]
    f = data.astype(np.float64)
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - centre[0], xx - centre[1])
    disk, ring = r <= bf, (r > adf[0]) & (r <= adf[1])
    inside = f[..., disk]
    total = inside.sum(axis=-1)
    com_y = (inside * yy[disk]).sum(axis=-1) / total - centre[0]
    com_x = (inside * xx[disk]).sum(axis=-1) / total - centre[1]
    ref = {
        "sum": f.sum(axis=tuple(range(len(nav)))),
        "sumsig": f.sum(axis=(-2, -1)),
        "bf": total,
        "adf": f[..., ring].sum(axis=-1),
        "com_y": com_y,
        "com_x": com_x,
        "com_magnitude": np.hypot(com_y, com_x),
    }
    if len(nav) == 2:
        ref["com_divergence"] = np.gradient(com_y, axis=0) + np.gradient(com_x, axis=1)
        ref["com_curl"] = np.gradient(com_y, axis=1) - np.gradient(com_x, axis=0)
    ref["std"] = f.reshape(-1, h, w).std(axis=0)
    return ref


def check_table(table: dict, ref: dict) -> None:
    assert list(table) == list(ref)  # the rows, in this order
    for name, expected in ref.items():
        shape, lo, hi, mean = table[name]
        assert shape == expected.shape, name
        # the table prints 6 significant digits
        np.testing.assert_allclose(
            [lo, hi, mean],
            [expected.min(), expected.max(), expected.mean()],
            rtol=2e-5,
            atol=1e-5,
            err_msg=name,
        )


def check_pngs(out: str, folder, names) -> None:
    import matplotlib.image as mpimg

    assert f"saved {len(names)} PNGs to {os.path.abspath(folder)}" in out
    for name in names:
        path = os.path.join(folder, f"{name}.png")
        with open(path, "rb") as fh:
            assert fh.read(8) == PNG_SIGNATURE, path
        img = mpimg.imread(path)
        assert img.shape == (460, 560, 4), path
        assert img[..., :3].std() > 0.05, f"{path} is blank"


# ------------------------------------------------------------------------------ synthetic data
def test_demo_table_matches_numpy_and_pngs_are_images(tmp_path, capsys):
    code, out, err = run(
        capsys,
        "--nav",
        6,
        7,
        "--sig",
        32,
        32,
        "--seed",
        3,
        "--executor",
        "inline",
        "--out",
        tmp_path,
    )
    assert code == 0, err
    data, truth = make_4dstem((6, 7), (32, 32), seed=3, return_truth=True)
    radii = truth.detector_radii()
    bf, adf = radii["bf"][1], radii["adf"]
    assert f"bright field r <= {bf:g} px" in out
    assert f"annular dark field {adf[0]:g} < r <= {adf[1]:g} px" in out
    assert "nav (6, 7) x sig (32, 32), uint16" in out
    assert all(name in out for name in SIX_UDFS)  # one pass with all of them
    check_table(parse_table(out), reference(data, truth.centre, bf, adf))
    pass_line = next(line for line in out.splitlines() if line.startswith("pass:"))
    assert "42 frames" in pass_line and "GB/s" in pass_line
    names = list(parse_table(out)) + ["truth_labels"]
    check_pngs(out, tmp_path, names)


def test_demo_on_threads_gives_the_same_table(tmp_path, capsys):
    # (processes, the default for files, run in test_demo_on_a_npy_file)
    code, out, err = run(
        capsys,
        "--nav",
        5,
        6,
        "--sig",
        24,
        32,
        "--executor",
        "threads",
        "--n-jobs",
        2,
        "--out",
        tmp_path,
    )
    assert code == 0, err
    data, truth = make_4dstem((5, 6), (24, 32), seed=0, return_truth=True)
    radii = truth.detector_radii()
    check_table(parse_table(out), reference(data, truth.centre, radii["bf"][1], radii["adf"]))
    assert "2 workers" in out


@pytest.mark.parametrize("nav", [(9,), (2, 3, 4)])
def test_demo_on_one_and_three_dimensional_scans(tmp_path, capsys, nav):
    code, out, err = run(
        capsys, "--nav", *nav, "--sig", 16, 16, "--executor", "inline", "--out", tmp_path
    )
    assert code == 0, err
    data, truth = make_4dstem(nav, (16, 16), return_truth=True)
    radii = truth.detector_radii()
    ref = reference(data, truth.centre, radii["bf"][1], radii["adf"])
    table = parse_table(out)
    check_table(table, ref)
    assert "com_divergence" not in table  # only defined on 2D scans
    check_pngs(out, tmp_path, list(table) + ["truth_labels"])


def test_detector_options_override_the_defaults(tmp_path, capsys):
    code, out, err = run(
        capsys,
        "--nav",
        4,
        4,
        "--sig",
        32,
        32,
        "--executor",
        "inline",
        "--centre",
        15,
        16,
        "--bf-radius",
        5,
        "--adf",
        8,
        14,
        "--out",
        tmp_path,
    )
    assert code == 0, err
    data = make_4dstem((4, 4), (32, 32))
    check_table(parse_table(out), reference(data, (15.0, 16.0), 5.0, (8.0, 14.0)))


def test_quiet_prints_nothing_but_writes_the_pngs(tmp_path, capsys):
    code, out, err = run(
        capsys,
        "--nav",
        4,
        4,
        "--sig",
        16,
        16,
        "--executor",
        "inline",
        "--out",
        tmp_path / "deep" / "er",
        "--quiet",
    )
    assert code == 0 and out == "" and err == ""
    assert len(list((tmp_path / "deep" / "er").glob("*.png"))) == 11


# ------------------------------------------------------------------------------ user data
def test_demo_on_a_npy_file(tmp_path, capsys):
    path = tmp_path / "scan.npy"
    write_npy(path, (5, 4), (32, 32), dtype="float32", seed=8)
    data = np.load(path)
    code, out, err = run(capsys, "--data", path, "--n-jobs", 2, "--out", tmp_path)
    assert code == 0, err
    assert "float32" in out and str(path) in out
    assert "(processes, 2 workers)" in out  # the default for files
    # without ground truth: the middle of the frame, r <= 0.1 side, 0.2 side < r <= 0.5 side
    check_table(parse_table(out), reference(data, (15.5, 15.5), 3.2, (6.4, 16.0)))
    check_pngs(out, tmp_path, list(parse_table(out)))  # no truth_labels.png
    assert not (tmp_path / "truth_labels.png").exists()


def test_demo_on_a_raw_file(tmp_path, capsys):
    path = tmp_path / "scan.raw"
    write_raw(path, (3, 5), (16, 20), dtype="uint8", seed=1)
    data = np.fromfile(path, dtype=np.uint8).reshape(3, 5, 16, 20)
    code, out, err = run(
        capsys,
        "--data",
        path,
        "--nav",
        3,
        5,
        "--sig",
        16,
        20,
        "--dtype",
        "uint8",
        "--executor",
        "inline",
        "--out",
        tmp_path,
    )
    assert code == 0, err
    check_table(parse_table(out), reference(data, (7.5, 9.5), 1.6, (3.2, 8.0)))


# ------------------------------------------------------------------------------ errors
def one_line_error(code: int, out: str, err: str, *words: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("udfwidgets: error: ")
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.mark.parametrize(
    "args, words",
    [
        (["--data", "/no/such/file.npy"], ["no such file", "/no/such/file.npy"]),
        (["--data", "/no/such/file.raw", "--nav", "2", "2", "--sig", "8", "8"], ["no such file"]),
        (["--nav", "1", "2", "3", "4"], ["--nav", "1 to 3"]),
        (["--nav", "0", "4"], ["--nav", "positive"]),
        (["--nav", "four"], ["--nav", "invalid int value"]),
        (["--sig", "4", "4"], ["sig_shape", ">= 8"]),
        (["--sig", "32"], ["--sig", "2 arguments"]),
        (["--dtype", "uint17"], ["--dtype", "uint17", "not a NumPy dtype"]),
        (["--dtype", "complex64"], ["--dtype", "integer or float"]),
        (["--executor", "gpu"], ["--executor", "invalid choice"]),
        (["--adf", "10", "5"], ["--adf", "INNER < OUTER"]),
        (["--bf-radius", "-1"], ["--bf-radius", "positive"]),
        (["--n-jobs", "0"], ["--n-jobs", "positive"]),
        (["--bogus"], ["unrecognized arguments", "--bogus"]),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(tmp_path, capsys, args, words):
    executor = [] if "--executor" in args else ["--executor", "inline"]
    code, out, err = run(capsys, *args, *executor, "--out", tmp_path)
    one_line_error(code, out, err, *words)
    assert not list(tmp_path.glob("*.png"))


def test_raw_file_with_wrong_layout(tmp_path, capsys):
    path = tmp_path / "scan.raw"
    write_raw(path, (4, 4), (16, 16), dtype="uint16")
    code, out, err = run(
        capsys,
        "--data",
        path,
        "--nav",
        4,
        4,
        "--sig",
        16,
        16,
        "--dtype",
        "float32",
        "--executor",
        "inline",
        "--out",
        tmp_path,
    )
    one_line_error(code, out, err, "bytes", "Check the shapes and dtype")
    code, out, err = run(capsys, "--data", path, "--executor", "inline", "--out", tmp_path)
    one_line_error(code, out, err, "--nav", "--sig")


def test_npy_file_with_contradicting_shape(tmp_path, capsys):
    path = tmp_path / "scan.npy"
    write_npy(path, (4, 4), (16, 16))
    code, out, err = run(
        capsys, "--data", path, "--nav", 8, 2, "--executor", "inline", "--out", tmp_path
    )
    one_line_error(code, out, err, "--nav 8 2", "(4, 4)")


def test_output_folder_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    code, out, err = run(
        capsys, "--nav", 2, 2, "--sig", 16, 16, "--executor", "inline", "--out", target
    )
    one_line_error(code, out, err, "--out", "not a folder")


def test_help_and_missing_command(capsys):
    assert main(["demo", "--help"]) == 0
    assert "--executor" in capsys.readouterr().out
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "required: COMMAND" in err
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice" in err


# ------------------------------------------------------------------------------ as a program
def test_python_dash_m_runs_the_demo(tmp_path):
    """``python -m udfwidgets demo`` in a fresh process, default executor and output folder."""
    proc = subprocess.run(
        [sys.executable, "-m", "udfwidgets", "demo", "--nav", "8", "8", "--sig", "32", "32"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "(threads, " in proc.stdout and "GB/s" in proc.stdout
    data, truth = make_4dstem((8, 8), (32, 32), return_truth=True)
    radii = truth.detector_radii()
    check_table(
        parse_table(proc.stdout), reference(data, truth.centre, radii["bf"][1], radii["adf"])
    )
    check_pngs(
        proc.stdout, tmp_path / "udfwidgets-demo", list(parse_table(proc.stdout)) + ["truth_labels"]
    )
    assert "frames" in proc.stderr  # the text progress bar


def test_python_dash_m_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "udfwidgets", "demo", "--data", "missing.npy"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    one_line_error(proc.returncode, proc.stdout, proc.stderr, "no such file", "missing.npy")


# ------------------------------------------------------------------------------ checked before any work
@pytest.fixture
def no_work(monkeypatch):
    """Make running (a Context) or making synthetic data fail the test: errors must come first."""
    import udfwidgets
    import udfwidgets.io.synthetic

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    monkeypatch.setattr(udfwidgets, "Context", refuse)
    monkeypatch.setattr(udfwidgets.io.synthetic, "SyntheticDataSet", refuse)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--centre", "500", "500"], ["--centre 500 500", "outside the frame", "128 x 128"]),
        (["--sig", "16", "16", "--centre", "-3", "8"], ["--centre -3 8", "outside the frame"]),
        (["--centre", "nan", "3"], ["--centre", "finite"]),
    ],
)
def test_centre_outside_the_synthetic_frame_before_the_data_is_made(
    tmp_path, capsys, no_work, args, words
):
    code, out, err = run(capsys, *args, "--out", tmp_path / "out")
    one_line_error(code, out, err, *words)
    assert not (tmp_path / "out").exists()


@pytest.fixture
def npy_file(tmp_path):
    path = tmp_path / "scan.npy"
    write_npy(path, (3, 3), (16, 20))
    return path


@pytest.mark.parametrize(
    "args, words",
    [
        (
            ["--centre", "16", "8"],
            ["--centre 16 8", "outside the frame of 16 x 20", "rows 0 to 15"],
        ),
        (["--centre", "8", "20"], ["outside the frame", "columns 0 to 19"]),
        (["--centre", "15", "19", "--bf-radius", "12", "--adf", "13", "20"], []),  # corner: fine
        (
            ["--centre", "7.5", "7.5", "--bf-radius", "0.2"],
            ["bright-field disk", "covers no pixel", "--bf-radius"],
        ),
        (["--adf", "30", "40"], ["annular dark-field", "30 < r <= 40", "covers no pixel", "--adf"]),
        (["--centre", "0", "0", "--adf", "26", "30"], ["annular dark-field", "covers no pixel"]),
    ],
)
def test_detector_outside_the_frame_of_a_file(tmp_path, capsys, monkeypatch, npy_file, args, words):
    if not words:  # the accepted case runs for real
        code, out, err = run(
            capsys, "--data", npy_file, *args, "--executor", "inline", "--out", tmp_path / "out"
        )
        assert code == 0, err
        data = np.load(npy_file)
        check_table(parse_table(out), reference(data, (15.0, 19.0), 12.0, (13.0, 20.0)))
        return
    import udfwidgets

    monkeypatch.setattr(udfwidgets, "Context", lambda *a, **k: pytest.fail("work started"))
    code, out, err = run(capsys, "--data", npy_file, *args, "--out", tmp_path / "out")
    one_line_error(code, out, err, *words)
    assert not (tmp_path / "out").exists()


def test_unwritable_output_folder_before_any_work(tmp_path, capsys, no_work):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for out_dir, words in (
        (blocker / "sub", ["--out", "a-file", "is a file, not a folder"]),
        ("/proc/udfwidgets-demo", ["--out", "/proc/udfwidgets-demo", "not writable"]),
    ):
        code, out, err = run(capsys, "--out", out_dir)
        one_line_error(code, out, err, *words)
        assert not os.path.exists(out_dir)


def test_read_only_output_folder(tmp_path, capsys, no_work):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders: the /proc case above covers this")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        code, out, err = run(capsys, "--out", folder / "demo")
        one_line_error(code, out, err, "--out", "not writable")
    finally:
        folder.chmod(0o700)


def test_folder_given_as_data(tmp_path, capsys, no_work):
    folder = tmp_path / "scans"
    folder.mkdir()
    for layout in ([], ["--nav", "2", "2", "--sig", "8", "8"]):
        code, out, err = run(capsys, "--data", folder, *layout, "--out", tmp_path / "out")
        one_line_error(code, out, err, "is a folder", "give the data file itself")


def test_npz_is_not_read_as_raw(tmp_path, capsys, no_work):
    path = tmp_path / "scan.npz"
    np.savez(path, data=np.zeros((2, 2, 8, 8), dtype=np.uint16))
    for layout in ([], ["--nav", "2", "2", "--sig", "8", "8"]):
        code, out, err = run(capsys, "--data", path, *layout, "--out", tmp_path / "out")
        one_line_error(code, out, err, ".npz archive", "np.save")


@pytest.mark.parametrize("content", [b"1 2 3\n4 5 6\n" * 20, bytes(range(256)) * 4])
def test_npy_name_on_something_else(tmp_path, capsys, no_work, content):
    path = tmp_path / "scan.npy"
    path.write_bytes(content)
    code, out, err = run(capsys, "--data", path, "--out", tmp_path / "out")
    one_line_error(code, out, err, "is named .npy but is not a NumPy .npy file")
    assert "pickle" not in err  # NumPy's advice to unpickle does not apply
    assert ("text file" in err) == content.startswith(b"1 2")


def test_seed_with_data_is_refused(tmp_path, capsys, no_work, npy_file):
    code, out, err = run(capsys, "--data", npy_file, "--seed", 3, "--out", tmp_path / "out")
    one_line_error(code, out, err, "--seed", "synthetic", "--data")


def test_more_workers_than_cores_is_refused(tmp_path, capsys, no_work):
    n = cores()
    code, out, err = run(capsys, "--n-jobs", n + 1, "--executor", "threads", "--out", tmp_path)
    one_line_error(code, out, err, f"--n-jobs {n + 1}", f"{n} CPU core", f"--n-jobs {n} or less")


def test_raw_file_with_the_default_dtype(tmp_path, capsys):
    path = tmp_path / "scan.bin"
    write_raw(path, (2, 3), (16, 16), dtype="uint16", seed=2)
    data = np.fromfile(path, dtype=np.uint16).reshape(2, 3, 16, 16)
    code, out, err = run(
        capsys,
        "--data",
        path,
        "--nav",
        2,
        3,
        "--sig",
        16,
        16,
        "--executor",
        "inline",
        "--out",
        tmp_path,
    )
    assert code == 0, err
    assert "uint16" in out
    check_table(parse_table(out), reference(data, (7.5, 7.5), 1.6, (3.2, 8.0)))


def test_version(capsys):
    import udfwidgets

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"udfwidgets {udfwidgets.__version__}"
