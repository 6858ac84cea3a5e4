"""The ``udfwidgets`` command line: ``udfwidgets demo`` runs a standard analysis in one pass.

``udfwidgets demo`` makes a synthetic 4D-STEM scan (or opens ``--data``),
runs six standard UDFs over it in a single pass over the data (sum pattern,
total intensity, bright-field and annular dark-field virtual detectors,
centre of mass, standard deviation), prints a table of the results with
the time and throughput of the pass, and saves a PNG of every result.

Examples
--------
From a shell::

    udfwidgets demo
    udfwidgets demo --nav 32 32 --sig 64 64 --executor threads --out /tmp/demo
    udfwidgets demo --data scan.raw --nav 128 128 --sig 256 256 --dtype uint16
    udfwidgets --version
    python -m udfwidgets demo --help

Every problem with the input (a file that is not what its name says, a
detector outside the frame, an output folder that cannot be written, more
workers than cores, an option that does not apply) is reported in one line
before any work starts.

From Python:

>>> from udfwidgets.cli import main
>>> main(["demo", "--nav", "4", "4", "--sig", "16", "16", "--executor", "inline",
...       "--out", __import__("tempfile").mkdtemp(), "--quiet"])
0
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import numpy as np

__all__ = ["main", "build_parser", "CLIError"]

PROG = "udfwidgets"
EXECUTORS = ("processes", "threads", "inline")


class CLIError(Exception):
    """A problem with the command's input; reported as one line on stderr, exit code 2.

    Examples
    --------
    >>> main(["demo", "--dtype", "uint17"])  # prints: udfwidgets: error: --dtype 'uint17' ...
    2
    """


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (raised, not printed and exited)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise CLIError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``udfwidgets`` command.

    Examples
    --------
    >>> args = build_parser().parse_args(["demo", "--nav", "8", "8"])
    >>> args.command, args.nav, args.executor
    ('demo', [8, 8], None)
    """
    from . import __version__

    parser = _Parser(
        prog=PROG,
        description="Interactive UDF analysis of large N-dimensional detector data (4D-STEM).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    demo = sub.add_parser(
        "demo",
        help="run a standard analysis in one pass and save PNGs of the results",
        description="Make a synthetic 4D-STEM scan (or open --data), run SumUDF, SumSigUDF, "
        "bright-field and annular dark-field virtual detectors, CoMUDF and StdDevUDF in ONE "
        "pass over the data, print a table of the results with the pass's speed, and save a "
        "PNG of every result.",
    )
    data = demo.add_argument_group("data")
    data.add_argument(
        "--data",
        metavar="PATH",
        help="a dataset in any format udfwidgets reads (found by its content "
        "and name), e.g. a .npy file, or a raw file (then give --nav, --sig and "
        "--dtype); default: synthetic data",
    )
    data.add_argument(
        "--nav",
        type=int,
        nargs="+",
        metavar="N",
        help="scan shape, 1 to 3 numbers (default for synthetic data: 64 64)",
    )
    data.add_argument(
        "--sig",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="frame shape (default for synthetic data: 128 128)",
    )
    data.add_argument(
        "--dtype",
        help="detector dtype, e.g. uint16, uint8, float32 "
        "(default: uint16; a .npy file's own dtype)",
    )
    data.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the synthetic data (default: 0; not with --data)",
    )
    det = demo.add_argument_group(
        "virtual detectors (default: from the synthetic data's "
        "ground truth, or fractions of the frame for --data)"
    )
    det.add_argument(
        "--centre",
        type=float,
        nargs=2,
        metavar=("CY", "CX"),
        help="centre of the pattern in pixels (default: middle of the frame)",
    )
    det.add_argument(
        "--bf-radius",
        type=float,
        metavar="R",
        help="radius of the bright-field disk, also used for the centre of mass",
    )
    det.add_argument(
        "--adf",
        type=float,
        nargs=2,
        metavar=("INNER", "OUTER"),
        help="inner and outer radius of the annular dark-field detector",
    )
    corr = demo.add_argument_group(
        "detector corrections (applied to every frame; see docs/corrections.md)"
    )
    corr.add_argument("--dark", metavar="NPY", help="dark frame to subtract (.npy, frame shape)")
    corr.add_argument("--gain", metavar="NPY", help="gain map to multiply by (.npy, frame shape)")
    corr.add_argument(
        "--exclude",
        metavar="PATH",
        help="pixels to patch from their neighbours: a .npy bool mask of the "
        "frame shape or (n, 2) (y, x) coordinates, or a text file of 'y x' lines",
    )
    run = demo.add_argument_group("run")
    run.add_argument(
        "--executor",
        choices=EXECUTORS,
        help="where the UDFs run (default: threads for the synthetic data, "
        "which is held in memory; processes for --data files)",
    )
    run.add_argument(
        "--n-jobs",
        type=int,
        metavar="N",
        help="number of workers, at most the number of cores (default: all cores)",
    )
    run.add_argument(
        "--out",
        default="udfwidgets-demo",
        metavar="DIR",
        help="folder for the PNGs and results.h5 (results.npz without h5py; "
        "default: ./udfwidgets-demo/)",
    )
    run.add_argument(
        "--quiet", action="store_true", help="no progress bar and no table, only errors"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``udfwidgets`` command; return its exit code.

    Errors in the input (a missing file, a wrong shape or dtype, a bad
    option) print one line ``udfwidgets: error: ...`` on stderr and return 2.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for bad input, 130 when interrupted.

    Examples
    --------
    >>> main(["demo", "--nav", "0", "4"])
    2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "demo":
            return _demo(args)
        raise CLIError(f"unknown command {args.command!r}")  # pragma: no cover - argparse refuses
    except CLIError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help, --version
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


# ------------------------------------------------------------------------------- the data
@dataclass
class _Input:
    dataset: Any
    description: str
    truth: Any = None
    seconds: float = 0.0


def _check_shape(value, name: str, min_dims: int, max_dims: int) -> tuple[int, ...]:
    if not min_dims <= len(value) <= max_dims or any(v < 1 for v in value):
        count = str(min_dims) if min_dims == max_dims else f"{min_dims} to {max_dims}"
        raise CLIError(f"--{name} needs {count} positive integers, got {' '.join(map(str, value))}")
    return tuple(value)


def _check_dtype(text: str) -> np.dtype:
    from .data import _dtype  # the same rule as the synthetic data: integer or float

    try:
        return _dtype(text)
    except ValueError as e:
        raise CLIError(f"--dtype {text!r}: {e}") from None


NPY_MAGIC = b"\x93NUMPY"


def _check_data_path(path: str) -> None:
    """Refuse, with a clear message, files whose name says one thing and content another."""
    lower = path.lower()
    if lower.endswith(".npz") and os.path.isfile(path):
        raise CLIError(
            f"{path!r} is a NumPy .npz archive (a zip of several arrays), not one "
            "4D array: save the scan with np.save('scan.npy', array) and pass "
            "the .npy file"
        )
    if lower.endswith(".npy") and os.path.isfile(path):
        with open(path, "rb") as fh:
            head = fh.read(len(NPY_MAGIC))
        if head != NPY_MAGIC:
            what = (
                "a text file"
                if head and all(32 <= c < 127 or c in b"\t\r\n" for c in head)
                else "some other file"
            )
            raise CLIError(
                f"{path!r} is named .npy but is not a NumPy .npy file (it does not "
                f"start with the .npy header; it looks like {what}): write it with "
                "np.save, or, if it holds raw detector data, give it another name "
                "and its layout with --nav, --sig and --dtype"
            )


def _open_input(args) -> _Input:
    from .io import DataSetError, load
    from .io.synthetic import SyntheticDataSet

    nav = _check_shape(args.nav, "nav", 1, 3) if args.nav is not None else None
    sig = _check_shape(args.sig, "sig", 2, 2) if args.sig is not None else None
    dtype = _check_dtype(args.dtype) if args.dtype is not None else None
    if args.data is None:
        seed = 0 if args.seed is None else args.seed
        nav, sig, dtype = nav or (64, 64), sig or (128, 128), dtype or np.dtype("uint16")
        t0 = time.perf_counter()
        try:
            ds = load("synthetic", nav_shape=nav, sig_shape=sig, dtype=dtype, seed=seed)
        except DataSetError as e:
            raise CLIError(str(e)) from None
        truth = cast(SyntheticDataSet, ds).truth  # load("synthetic") made it
        return _Input(ds, f"synthetic 4D-STEM data, seed {seed}", truth, time.perf_counter() - t0)
    path = str(args.data)
    if args.seed is not None:
        raise CLIError(
            f"--seed only applies to the synthetic data; leave it out with --data {path!r}"
        )
    _check_data_path(path)
    try:
        if path.lower().endswith(".npy"):
            ds = load("auto", path=path)
            for name, given, actual in (
                ("nav", nav, tuple(ds.shape.nav)),
                ("sig", sig, tuple(ds.shape.sig)),
                ("dtype", dtype, ds.dtype),
            ):
                if given is not None and given != actual:
                    shown = given if isinstance(given, np.dtype) else " ".join(map(str, given))
                    raise CLIError(
                        f"--{name} {shown} does not match {path!r}, which has "
                        f"{name} {actual}; leave --{name} out for .npy files"
                    )
            return _Input(ds, path)
        layout: dict[str, Any] = {}
        if nav is not None:
            layout["nav_shape"] = nav
        if sig is not None:
            layout["sig_shape"] = sig
        if dtype is not None:
            layout["dtype"] = dtype
        return _Input(_load_auto(load, path, layout), path)
    except (DataSetError, OSError) as e:
        raise CLIError(str(e)) from None


def _load_auto(load_dataset, path: str, layout: dict):
    """``load("auto", ...)``: any format the package detects, else a raw file of ``layout``."""
    from .io import DataSetError

    if not os.path.exists(path):
        raise CLIError(f"no such file or folder: {path!r}")
    is_dir = os.path.isdir(path)

    def load(kind, **kwargs):
        import warnings

        from .io.geometry import MissingFramesWarning

        with warnings.catch_warnings():
            # a raw file too small for --nav is a layout mistake here, not a short scan
            warnings.simplefilter("error", MissingFramesWarning)
            try:
                return load_dataset(kind, **kwargs)
            except MissingFramesWarning as w:
                raise CLIError(
                    f"{w} The file has {os.path.getsize(path)} bytes. Check the "
                    "shapes and dtype given with --nav, --sig and --dtype."
                ) from None

    try:
        return load("auto", path=path, **layout)
    except DataSetError as e:
        first = e
    if is_dir:
        raise CLIError(
            f"{path!r} is a folder that udfwidgets cannot read as a dataset: give "
            "the data file itself (e.g. a .npy file, or a raw file with --nav, --sig "
            "and --dtype)"
        )
    if "nav_shape" in layout and "sig_shape" in layout and "dtype" not in layout:
        # a raw file with the documented default dtype
        return load("auto", path=path, dtype=np.dtype("uint16"), **layout)
    if "nav_shape" not in layout or "sig_shape" not in layout:
        raise CLIError(
            f"cannot tell the layout of {path!r} ({first}); for a raw file give it "
            "with --nav, --sig (and --dtype, default uint16)"
        )
    raise first


# ------------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class _Detectors:
    centre: tuple[float, float]
    bf: float
    adf: tuple[float, float]

    def describe(self) -> str:
        cy, cx = self.centre
        return (
            f"centre ({cy:g}, {cx:g}); bright field r <= {self.bf:g} px; "
            f"annular dark field {self.adf[0]:g} < r <= {self.adf[1]:g} px"
        )


def _detectors(args, sig: tuple[int, int], truth) -> _Detectors:
    h, w = sig
    m = min(h, w)
    if truth is not None:
        radii = truth.detector_radii()
        centre, bf, adf = tuple(truth.centre), radii["bf"][1], radii["adf"]
    else:
        centre, bf, adf = ((h - 1) / 2, (w - 1) / 2), 0.1 * m, (0.2 * m, 0.5 * m)
    if args.centre is not None:
        centre = tuple(args.centre)
        if not all(math.isfinite(c) for c in centre):
            raise CLIError(f"--centre must be two finite numbers, got {args.centre}")
    if args.bf_radius is not None:
        bf = args.bf_radius
        if not (math.isfinite(bf) and bf > 0):
            raise CLIError(f"--bf-radius must be a positive number of pixels, got {bf:g}")
    if args.adf is not None:
        adf = tuple(args.adf)
        if not (math.isfinite(adf[0]) and math.isfinite(adf[1]) and 0 <= adf[0] < adf[1]):
            raise CLIError(f"--adf needs 0 <= INNER < OUTER, got {adf[0]:g} {adf[1]:g}")
    det = _Detectors(
        (float(centre[0]), float(centre[1])), float(bf), (float(adf[0]), float(adf[1]))
    )
    _check_inside(det, sig)
    return det


def _check_centre(centre: tuple[float, float], sig: tuple[int, int]) -> None:
    h, w = sig
    cy, cx = centre
    if not (math.isfinite(cy) and math.isfinite(cx)):
        raise CLIError(f"--centre must be two finite numbers, got {cy} {cx}")
    if not (-0.5 <= cy <= h - 0.5 and -0.5 <= cx <= w - 0.5):
        raise CLIError(
            f"--centre {cy:g} {cx:g} is outside the frame of {h} x {w} pixels "
            f"(rows 0 to {h - 1}, columns 0 to {w - 1})"
        )


def _check_inside(det: _Detectors, sig: tuple[int, int]) -> None:
    """The centre lies on the frame and each detector covers at least one pixel of it."""
    from . import masks

    h, w = sig
    cy, cx = det.centre
    _check_centre(det.centre, sig)
    if not masks.disk(sig, centre=det.centre, radius=det.bf).any():
        raise CLIError(
            f"the bright-field disk (r <= {det.bf:g} px around ({cy:g}, {cx:g})) "
            f"covers no pixel of the {h} x {w} frame: give a larger --bf-radius"
        )
    if not masks.ring(sig, centre=det.centre, inner=det.adf[0], outer=det.adf[1]).any():
        raise CLIError(
            f"the annular dark-field detector ({det.adf[0]:g} < r <= "
            f"{det.adf[1]:g} px around ({cy:g}, {cx:g})) covers no pixel of the "
            f"{h} x {w} frame: choose --adf INNER OUTER within the frame"
        )


# ------------------------------------------------------------------------------- the run
@dataclass
class _Row:
    """One line of the table and one PNG."""

    name: str
    data: np.ndarray
    kind: str  # "nav" or "sig"
    title: str
    cmap: str
    unit: str = ""
    diverging: bool = False
    log: bool = False


def _make_udfs(sig: tuple[int, int], det: _Detectors) -> list:
    from . import masks
    from .udf.com import CoMUDF
    from .udf.masks import ApplyMasksUDF
    from .udf.stddev import StdDevUDF
    from .udf.sum import SumUDF
    from .udf.sumsigudf import SumSigUDF

    detectors = ApplyMasksUDF(
        mask_factories=[
            partial(masks.disk, sig, centre=det.centre, radius=det.bf),
            partial(masks.ring, sig, centre=det.centre, inner=det.adf[0], outer=det.adf[1]),
        ]
    )
    com = CoMUDF(cy=det.centre[0], cx=det.centre[1], r=det.bf)
    return [SumUDF(), SumSigUDF(), detectors, com, StdDevUDF()]


def _rows(results, det: _Detectors, nav_dims: int) -> list[_Row]:
    total, per_frame, virtual, com, std = results
    bf_title = f"Virtual bright field (r <= {det.bf:g} px)"
    adf_title = f"Virtual annular dark field ({det.adf[0]:g} < r <= {det.adf[1]:g} px)"
    rows = [
        _Row(
            "sum",
            total["intensity"].data,
            "sig",
            "Sum of all frames (log scale)",
            "inferno",
            "counts",
            log=True,
        ),
        _Row(
            "sumsig",
            per_frame["intensity"].data,
            "nav",
            "Total intensity of each frame",
            "gray",
            "counts",
        ),
        _Row("bf", virtual["intensity"].data[..., 0], "nav", bf_title, "gray", "counts"),
        _Row("adf", virtual["intensity"].data[..., 1], "nav", adf_title, "inferno", "counts"),
        _Row(
            "com_y",
            com["field"].data[..., 0],
            "nav",
            f"Centre-of-mass shift y (r <= {det.bf:g} px)",
            "RdBu_r",
            "px",
            diverging=True,
        ),
        _Row(
            "com_x",
            com["field"].data[..., 1],
            "nav",
            f"Centre-of-mass shift x (r <= {det.bf:g} px)",
            "RdBu_r",
            "px",
            diverging=True,
        ),
        _Row(
            "com_magnitude",
            com["magnitude"].data,
            "nav",
            "Centre-of-mass shift magnitude",
            "viridis",
            "px",
        ),
    ]
    if nav_dims == 2:
        rows += [
            _Row(
                "com_divergence",
                com["divergence"].data,
                "nav",
                "Divergence of the centre-of-mass field",
                "RdBu_r",
                "px / scan step",
                diverging=True,
            ),
            _Row(
                "com_curl",
                com["curl"].data,
                "nav",
                "Curl of the centre-of-mass field",
                "RdBu_r",
                "px / scan step",
                diverging=True,
            ),
        ]
    rows.append(
        _Row(
            "std",
            std["std"].data,
            "sig",
            "Standard deviation over the scan (log scale)",
            "viridis",
            "counts",
            log=True,
        )
    )
    return rows


def _stats(a: np.ndarray) -> tuple[float, float, float]:
    a = np.asarray(a, dtype=np.float64)
    finite = a[np.isfinite(a)]
    if not finite.size:
        return (math.nan,) * 3
    return float(finite.min()), float(finite.max()), float(finite.mean())


def _format_table(rows: list[_Row]) -> str:
    """The results as an aligned text table: buffer, shape, min, max, mean."""
    lines = [f"{'buffer':<16}{'shape':<14}{'min':>14}{'max':>14}{'mean':>14}"]
    for r in rows:
        lo, hi, mean = _stats(r.data)
        shape = "x".join(str(d) for d in r.data.shape)
        lines.append(f"{r.name:<16}{shape:<14}{lo:>14.6g}{hi:>14.6g}{mean:>14.6g}")
    return "\n".join(lines)


def _size(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= 0.1 * scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes} bytes"


def _demo(args) -> int:
    from . import Context

    if args.n_jobs is not None and args.n_jobs < 1:
        raise CLIError(f"--n-jobs must be a positive integer, got {args.n_jobs}")
    cores = _cores()
    if args.n_jobs is not None and args.n_jobs > cores:
        raise CLIError(
            f"--n-jobs {args.n_jobs} is more than the {cores} CPU core"
            f"{'s' * (cores > 1)} this process may use: extra workers only compete "
            f"for the same cores and make the run slower; use --n-jobs {cores} or "
            "less (or leave it out for all cores)"
        )
    out_dir = _check_out(args.out)
    if (
        args.data is None and args.centre is not None and not (args.sig and min(args.sig) < 1)
    ):  # before the synthetic data is made
        _check_centre(tuple(args.centre), tuple(args.sig) if args.sig else (128, 128))
    say = (lambda *a, **k: None) if args.quiet else print

    inp = _open_input(args)
    ds = inp.dataset
    shape = tuple(ds.shape)
    if ds.shape.sig_dims != 2:
        raise CLIError(
            f"the demo needs 2D frames; {inp.description} has frames of shape {tuple(ds.shape.sig)}"
        )
    sig = tuple(ds.shape.sig)
    corrections = _corrections(args, ds)
    det = _detectors(args, sig, inp.truth)
    made = f" (made in {inp.seconds:.2f} s)" if inp.truth is not None else ""
    say(
        f"data: {inp.description}: nav {tuple(ds.shape.nav)} x sig {sig}, {ds.dtype}, "
        f"{_size(ds.nbytes)}{made}"
    )
    say(f"virtual detectors: {det.describe()}")
    udfs = _make_udfs(sig, det)
    # In-memory data would be copied to worker processes: threads share it.
    executor = args.executor or ("threads" if inp.truth is not None else "processes")
    with Context(executor=executor, n_jobs=args.n_jobs) as ctx:
        names = ", ".join(type(u).__name__ for u in udfs).replace(
            "ApplyMasksUDF", "ApplyMasksUDF (BF + ADF)"
        )
        n = ctx.executor.n_workers
        say(f"running {names} in one pass ({executor}, {n} worker{'s' * (n > 1)}) ...")
        t0 = time.perf_counter()
        results = ctx.run_udf(
            dataset=ds, udf=udfs, progress=not args.quiet, corrections=corrections
        )
        seconds = time.perf_counter() - t0

    rows = _rows(results, det, len(ds.shape.nav))
    say(_format_table(rows))
    n_frames = math.prod(shape[:-2])
    say(
        f"pass: {n_frames} frames, {_size(ds.nbytes)} in {seconds:.3g} s = "
        f"{ds.nbytes / 1e9 / seconds:.3g} GB/s"
    )

    try:
        os.makedirs(out_dir, exist_ok=True)
        paths = _save_pngs(rows, out_dir, det, inp.truth)
    except OSError as e:
        raise CLIError(f"cannot write the PNGs to {args.out!r}: {e}") from None
    say(
        f"saved {len(paths)} PNGs to {out_dir}{os.sep}: "
        + ", ".join(os.path.basename(p) for p in paths)
    )
    from .export import save_results

    # HDF5 needs h5py (the `export` extra); a plain install still saves every buffer, as .npz.
    have_h5py = importlib.util.find_spec("h5py") is not None
    target = os.path.join(out_dir, "results.h5" if have_h5py else "results.npz")
    try:
        save_results(results, target, overwrite=True)
    except OSError as e:
        raise CLIError(f"cannot write {target!r}: {e}") from None
    say(
        f"saved every result buffer with its axes to {target}"
        + ("" if have_h5py else " (for HDF5: pip install 'udfwidgets[export]')")
    )
    return 0


def _corrections(args, ds):
    """The CorrectionSet of --dark/--gain/--exclude, checked against the dataset (or None)."""
    if args.dark is None and args.gain is None and args.exclude is None:
        return None
    from .corrections import CorrectionError, CorrectionSet

    def load_array(path: str, what: str) -> np.ndarray:
        try:
            if str(path).lower().endswith(".npy"):
                return np.load(path, allow_pickle=False)
            return np.loadtxt(path, dtype=np.int64, ndmin=2)
        except (OSError, ValueError) as e:
            raise CLIError(f"cannot read {what} {path!r}: {e}") from None

    try:
        corr = CorrectionSet(
            dark=None if args.dark is None else load_array(args.dark, "--dark"),
            gain=None if args.gain is None else load_array(args.gain, "--gain"),
            excluded_pixels=None if args.exclude is None else load_array(args.exclude, "--exclude"),
        )
        corr.check(tuple(ds.shape.sig))
    except CorrectionError as e:
        raise CLIError(str(e)) from None
    return corr


def _cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _check_out(out: str) -> str:
    """The absolute output folder, checked writable before any work (nothing is created)."""
    out_dir = os.path.abspath(out)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise CLIError(f"--out {out!r} exists and is not a folder")
    existing = out_dir
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise CLIError(f"--out {out!r} cannot be made: {existing!r} is a file, not a folder")
    try:  # a real probe: permissions, read-only file systems and /proc all show here
        fd, probe = tempfile.mkstemp(prefix=".udfwidgets-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
        if existing != out_dir:  # can the missing folders be made? (made for real later)
            probe_dir = tempfile.mkdtemp(prefix=".udfwidgets-probe-", dir=existing)
            os.rmdir(probe_dir)
    except OSError as e:
        raise CLIError(
            f"--out {out!r} is not writable ({existing!r}: "
            f"{e.strerror or e}); choose another folder"
        ) from None
    return out_dir


# ------------------------------------------------------------------------------- pictures
def _nav_view(data: np.ndarray) -> tuple[np.ndarray, str]:
    """A nav result as something to draw (1D line or 2D image) and a note on slicing."""
    if data.ndim == 3:
        return data[0], f" [first of {data.shape[0]} scans]"
    return data, ""


def _save_pngs(rows: list[_Row], out_dir: str, det: _Detectors, truth) -> list[str]:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    from .io.atomic import atomic_output

    todo = list(rows)
    if truth is not None:
        todo.append(
            _Row(
                "truth_labels",
                truth.labels,
                "nav",
                "Ground truth: 0 vacuum, 1 amorphous, 2+ grains",
                "tab10",
                "label",
            )
        )
    paths = []
    for row in todo:
        # Fixed axes positions: a layout engine would double the drawing time.
        fig = Figure(figsize=(5.6, 4.6), dpi=100)
        _draw(fig, row, det)
        path = os.path.join(out_dir, f"{row.name}.png")
        with atomic_output(path, overwrite=True, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
        paths.append(path)
    return paths


def _draw(fig, row: _Row, det: _Detectors) -> None:
    from matplotlib.patches import Circle

    data = np.asarray(row.data, dtype=np.float64)
    note = ""
    if row.kind == "nav":
        data, note = _nav_view(data)
    if data.ndim == 1:
        ax = fig.add_axes((0.13, 0.11, 0.82, 0.8))
        ax.set_title(row.title + note, fontsize=10)
        ax.plot(np.arange(data.size), data, color="C0")
        ax.set_xlabel("scan position")
        ax.set_ylabel(row.unit)
        return
    ax = fig.add_axes((0.1, 0.1, 0.7, 0.8))
    ax.set_title(row.title + note, fontsize=10)
    shown = np.log10(1 + np.clip(data, 0, None)) if row.log else data
    kwargs: dict[str, Any] = {"cmap": row.cmap, "interpolation": "nearest"}
    finite = shown[np.isfinite(shown)]
    if row.diverging and finite.size:
        lim = float(np.abs(finite).max()) or 1.0
        kwargs.update(vmin=-lim, vmax=lim)
    ticks = None
    if row.name == "truth_labels":  # one colour per label
        import matplotlib

        n = int(np.nanmax(data)) + 1
        kwargs.update(
            cmap=matplotlib.colormaps["tab10" if n <= 10 else "tab20"].resampled(n),
            vmin=-0.5,
            vmax=n - 0.5,
        )
        ticks = range(n)
    im = ax.imshow(shown, **kwargs)
    label = f"log10(1 + {row.unit})" if row.log else row.unit
    fig.colorbar(im, cax=fig.add_axes((0.83, 0.1, 0.03, 0.8)), label=label, ticks=ticks)
    if row.kind == "nav":
        ax.set_xlabel("scan x")
        ax.set_ylabel("scan y")
        return
    ax.set_xlabel("detector x (px)")
    ax.set_ylabel("detector y (px)")
    if row.name == "sum":  # show where the virtual detectors are
        cy, cx = det.centre
        for r, colour in ((det.bf, "cyan"), (det.adf[0], "lime"), (det.adf[1], "lime")):
            ax.add_patch(Circle((cx, cy), r, fill=False, lw=0.8, ls="--", color=colour))
        ax.set_xlim(-0.5, data.shape[1] - 0.5)
        ax.set_ylim(data.shape[0] - 0.5, -0.5)
