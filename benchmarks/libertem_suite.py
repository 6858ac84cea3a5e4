"""Run LiberTEM's own UDF tests (``tests/udf`` of its sdist) against udfwidgets.

    python benchmarks/libertem_suite.py                 # LiberTEM 0.16.*, all of tests/udf
    python benchmarks/libertem_suite.py -k test_sum     # a subset (pytest's -k)
    python benchmarks/libertem_suite.py --version 0.16.0 --cache ~/lt-cache

What it does:

1. ``pip download --no-deps --no-binary :all: libertem==VERSION`` into a cache
   folder outside the repository (``$UDFWIDGETS_LT_CACHE``, default
   ``~/.cache/udfwidgets/libertem-suite``). LiberTEM is GPL: its code and tests
   are never committed here and never imported; only its ``tests/udf`` folder
   and its test helper ``tests/utils.py`` are unpacked, into a fresh temporary
   folder, and run.
2. Installs the tests' pure-Python helper ``sparseconverter`` (MIT) into the
   cache with ``pip install --target`` (never into the environment).
3. Writes a ``conftest.py`` of our own into the temporary folder: it installs
   ``benchmarks/_libertem_shim.py`` (``import libertem.X`` -> udfwidgets names)
   and provides the fixtures the tests use (``lt_ctx`` -> inline Context, the
   ``delayed``/``concurrent`` contexts -> our threads executor, ``default_raw``
   -> a raw file of the same shape, ...).
4. Runs pytest there (LiberTEM's own marker filter: not slow, dist, flaky,
   compilation, web_api) and writes ``benchmarks/results/libertem-suite.json``
   (one row per test: outcome, category, reason, message) and
   ``benchmarks/results/libertem-suite.md`` (counts per module and per category).

Each failure is put in a category by :data:`RULES` (first match of the test id
and the error message): "a: ..." categories are outside the CPU UDF API this
project implements (LiberTEM internals, GPUs, library UDFs we do not have, its
analysis API, its other executors); "b: ..." is the CPU UDF API. A failure that
no rule matches is "b: unclassified", so nothing is hidden.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"

# (category, reason, test-id regex, message regex). First match wins.
# "a:" = outside the CPU UDF API; "b:" = the CPU UDF API (to fix or to document).
RULES: list[tuple[str, str, str, str]] = [
    (
        "a: library UDF not in udfwidgets",
        "LiberTEM's FEM, crystallinity and holography UDFs are not part of udfwidgets",
        r"test_(FEM|crystallinity|holography)\.py",
        r"",
    ),
    (
        "a: LiberTEM executors / async API",
        "AsyncAdapter, DaskJobExecutor.connect and the async run_for_dataset_async are LiberTEM's"
        " engine",
        r"test_udf_runner\.py::test_async",
        r"",
    ),
    (
        "a: GPU / CuPy / device classes",
        "no GPU: CUDA/CuPy device classes and their resource negotiation",
        r"(cuda|cupy|CUDA|CUPY|device_class)",
        r"(cuda|cupy|CUDA|set_use_cuda|device)",
    ),
    (
        "a: LiberTEM internals",
        "runner internals: execution plan, resources, UDFRunner/UDFPartRunner, TilingScheme,"
        " DataTile, Environment, IOBackend, corrections internals",
        r"test_(execution_plan|get_resources|resources_for_backends|udf_runner)\.py",
        r"",
    ),
    (
        "a: LiberTEM internals",
        "a LiberTEM internal name that udfwidgets has no counterpart for",
        r"",
        r"libertem\.(udf\.base\.(UDFRunner|UDFPartRunner|_execution_plan|_get_canonical_backends"
        r"|get_resources_for_backends|MergeAttrMapping)|io\.dataset\.base|common\.executor"
        r"|io\.corrections|executor\.delayed|common\.buffers\.reshaped_view|io\.dataset\.raw\.RawPartition)"
        r".* is not provided by udfwidgets",
    ),
    (
        "a: LiberTEM analysis API",
        "LiberTEM's analysis classes (FEMAnalysis, ApplyFFTMask, ...) are not part of udfwidgets",
        r"",
        r"libertem\.analysis.* is not provided",
    ),
    (
        "a: LiberTEM analysis API",
        "test_com.py uses LiberTEM's COM analysis (ctx.create_com_analysis) as its reference",
        r"",
        r"create_com_analysis",
    ),
    (
        "a: LiberTEM internals",
        "buffer and tiling internals: BufferWrapper.make_default_mask / _valid_mask,"
        " get_bbox / get_inner_slice, meta._slice, Partition.get_tiles, UDF.UDF_METHOD,"
        " the tile attributes of LiberTEM's old API, MemoryDataSet(base_shape=)",
        r"",
        r"make_default_mask|_valid_mask|get_inner_slice|get_bbox|'_slice'|get_tiles|UDF_METHOD"
        r"|scheme_idx|tile_slice|base_shape|buffers\.get_bbox",
    ),
    (
        "a: LiberTEM internals",
        "pickles a LiberTEM Partition and its tiles (get_partitions() is a list here)",
        r"test_udf_pickle",
        r"",
    ),
    (
        "b: documented difference",
        "only process_tile UDFs get tiles that split the frame (opt-in); a process_frame UDF"
        " keeps whole frames, so LiberTEM's error for part of a frame does not come",
        r"test_sig_slice.*CheckSigSliceFrame",
        r"DID NOT RAISE",
    ),
    (
        "b: documented difference",
        "sync_offset: positions without a frame read as zeros (with MissingFramesWarning)"
        " and are processed; LiberTEM does not visit them",
        r"test_coords\.py::test_tiles_(positive|negative)_offset",
        r"",
    ),
    (
        "b: documented difference",
        "datasets have 1 or 2 signal dimensions; CoMUDF() (our keywords) allows 1D and 3D"
        " scans (with LiberTEM's parameters it is a ValueError)",
        r"test_com\.py::test_invalid_(sig|nav)_shape",
        r"",
    ),
    (
        "b: documented difference",
        "same error, different wording (LiberTEM's message text is not copied)",
        r"test_buffer_visibility_default|test_previous_attrs",
        r"Regex pattern did not match",
    ),
    (
        "b: documented difference",
        "CoMUDF.with_params(regression=5) is refused when the UDF is made (LiberTEM: when it runs)",
        r"test_invalid_regression_val",
        r"",
    ),
    (
        "a: LiberTEM internals",
        "reads the private attribute RawFileDataSet._path",
        r"test_validation_skips",
        r"_path",
    ),
    (
        "b: flaky test",
        "compares two float32 sums of random data for exact equality; the summation order"
        " decides, so it passes or fails at random (on main too)",
        r"test_valid_mask\.py::test_masked_data$",
        r"AssertionError",
    ),
    (
        "b: not provided",
        "a LiberTEM UDF-API name udfwidgets does not have",
        r"",
        r"not provided by udfwidgets",
    ),
]


def cache_dir(arg: str | None) -> Path:
    base = arg or os.environ.get("UDFWIDGETS_LT_CACHE") or "~/.cache/udfwidgets/libertem-suite"
    path = Path(base).expanduser().resolve()
    if path == REPO or REPO in path.parents:
        raise SystemExit(
            f"--cache {path} is inside the repository: LiberTEM's GPL code stays outside it"
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def fetch_sdist(cache: Path, version: str) -> Path:
    have = sorted(cache.glob("libertem-*.tar.gz"))
    pattern = re.compile(
        r"libertem-" + re.escape(version).replace(r"\*", r"[\w.]*") + r"\.tar\.gz$"
    )
    matching = [p for p in have if pattern.search(p.name)]
    if not matching:
        pip(
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"libertem=={version}",
            "-d",
            str(cache),
        )
        matching = [p for p in sorted(cache.glob("libertem-*.tar.gz")) if pattern.search(p.name)]
    if not matching:
        raise SystemExit(f"no sdist of libertem=={version} in {cache} after pip download")
    return matching[-1]


def helpers(cache: Path) -> Path:
    site = cache / "site"
    if not (site / "sparseconverter").is_dir():
        pip("install", "--no-deps", "--target", str(site), "sparseconverter==0.6.*")
    return site


def unpack_tests(sdist: Path, dest: Path) -> str:
    """Extract tests/udf and tests/utils.py; return LiberTEM's version string."""
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        wanted = [
            m
            for m in tar.getmembers()
            if m.name.startswith(f"{top}/tests/udf/") or m.name == f"{top}/tests/utils.py"
        ]
        for m in wanted:
            m.name = m.name[len(top) + 1 :]
            tar.extract(m, dest, filter="data")
    return top.split("-", 1)[1]


CONFTEST = """\
# Generated by udfwidgets' benchmarks/libertem_suite.py: our fixtures for LiberTEM's tests/udf.
import sys

sys.path.insert(0, {bench!r})
import _libertem_shim

_libertem_shim.install()

import numpy as np
import pytest

from udfwidgets import Context
from udfwidgets.executor.backends import make_executor


def _ctx(kind, **kw):
    ctx = Context(executor=kind, **kw)
    yield ctx
    ctx.close()


@pytest.fixture
def lt_ctx():
    yield from _ctx("inline")


@pytest.fixture
def lt_ctx_fast():
    yield from _ctx("inline")


@pytest.fixture
def delayed_ctx():
    # LiberTEM's DelayedJobExecutor has no counterpart: a second, parallel executor stands in.
    yield from _ctx("threads", n_jobs=2)


@pytest.fixture
def delayed_executor():
    return make_executor("threads", n_jobs=2)


@pytest.fixture
def concurrent_ctx():
    yield from _ctx("threads", n_jobs=2)


@pytest.fixture
def local_cluster_ctx():
    yield from _ctx("dask", n_jobs=2)


@pytest.fixture
def async_executor():
    raise _libertem_shim.NotProvidedByUdfwidgets("libertem.executor AsyncAdapter/DaskJobExecutor")


@pytest.fixture(scope="session")
def default_raw_data():
    import utils

    return utils._mk_random(size=(16, 16, 128, 128), dtype="float32")


@pytest.fixture(scope="session")
def default_raw(tmp_path_factory, default_raw_data):
    path = tmp_path_factory.mktemp("data") / "raw-test-default"
    default_raw_data.tofile(path)
    ctx = Context(executor="inline")
    return ctx.load(
        "raw", path=str(path), dtype="float32", nav_shape=(16, 16), sig_shape=(128, 128),
        num_partitions=2,
    )


@pytest.fixture(scope="session")
def npy_8x8x8x8_ds(tmp_path_factory):
    import utils

    path = tmp_path_factory.mktemp("npy") / "8x8x8x8.npy"
    np.save(path, utils._mk_random(size=(8, 8, 8, 8), dtype="float32"))
    return Context(executor="inline").load("npy", path=str(path))
"""

PYTEST_INI = """\
[pytest]
markers =
    slow: slow
    web_api: web api
    dist: distributed
    with_numba: numba
    flaky: flaky
    compilation: compilation
addopts = -m "not slow and not dist and not flaky and not compilation and not web_api"
"""


def classify(test_id: str, message: str) -> tuple[str, str]:
    for category, reason, id_re, msg_re in RULES:
        if (not id_re or re.search(id_re, test_id)) and (not msg_re or re.search(msg_re, message)):
            if id_re or msg_re:
                return category, reason
    return "b: unclassified", "CPU UDF API: a real difference to fix or to document"


def _short(message: str) -> str:
    """The failure's kind, without quoting LiberTEM's test source (it is GPL).

    Assertion reports and setup errors print lines of the test; only their kind is kept.
    Our own exception messages (udfwidgets' text) are kept, first line only.
    """
    first = message.strip().splitlines()[0] if message.strip() else ""
    if first.startswith("failed on setup"):
        return "error in the test's setup (fixture)"
    if first.startswith(("AssertionError", "assert ")):
        return "AssertionError (the test's assertion failed)"
    if "Regex pattern did not match" in first:
        return "AssertionError: the error message text differs"
    return first[:240]


def parse_junit(path: Path) -> list[dict]:
    rows = []
    for case in ET.parse(path).getroot().iter("testcase"):
        parts = case.get("classname", "").split(".")
        if parts and parts[0] == "udf":
            parts = parts[1:]
        module = (parts[0] if parts else "?") + ".py"
        cls = ".".join(parts[1:])
        test_id = f"udf/{module}::" + (f"{cls}::" if cls else "") + case.get("name", "")
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = (el.get("message") or "").strip()
                if tag != "skipped" and el.text and "not provided by udfwidgets" in el.text:
                    found = re.findall(r"(?:libertem\.[\w.]+)(?: [\w/]+)? is not provided", el.text)
                    if found:
                        message = f"{found[-1]} by udfwidgets | {message}"
                break
        row = {"test": test_id, "module": module, "outcome": outcome, "message": _short(message)}
        if outcome in ("failed", "error"):
            row["category"], row["reason"] = classify(test_id, message)
        elif outcome == "skipped":
            row["category"], row["reason"] = "skipped", message[:200]
        rows.append(row)
    return rows


def write_report(rows: list[dict], version: str, out: Path, argv: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    totals = Counter(r["outcome"] for r in rows)
    meta = {"libertem": version, "date": date, "args": argv, "totals": dict(totals)}
    (out / "libertem-suite.json").write_text(
        json.dumps({"meta": meta, "tests": rows}, indent=1) + "\n"
    )

    per_module: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        per_module[r["module"]][r["outcome"]] += 1
    per_cat: Counter = Counter(r["category"] for r in rows if r["outcome"] in ("failed", "error"))
    lines = [
        f"# LiberTEM {version} `tests/udf` against udfwidgets",
        "",
        f"Run {date} by `python benchmarks/libertem_suite.py {' '.join(argv)}`".rstrip() + ".",
        "",
        f"**{totals['passed']} passed, {totals['failed'] + totals['error']} failed** "
        f"({totals['failed']} failures, {totals['error']} errors), {totals['skipped']} skipped, "
        f"of {len(rows)} collected.",
        "",
        "| module | passed | failed | errors | skipped |",
        "|---|---|---|---|---|",
    ]
    for mod in sorted(per_module):
        c = per_module[mod]
        lines.append(f"| {mod} | {c['passed']} | {c['failed']} | {c['error']} | {c['skipped']} |")
    lines += ["", "| failure category | tests |", "|---|---|"]
    for cat, n in sorted(per_cat.items()):
        lines.append(f"| {cat} | {n} |")
    lines += ["", "## Failures", "", "| test | category | message |", "|---|---|---|"]
    for r in rows:
        if r["outcome"] in ("failed", "error"):
            msg = r["message"].replace("|", "\\|").replace("\n", " ")[:160]
            lines.append(f"| `{r['test']}` | {r['category']} | {msg} |")
    (out / "libertem-suite.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--version", default="0.16.*", help="libertem version spec (default 0.16.*)")
    ap.add_argument("--cache", default=None, help="cache folder outside the repository")
    ap.add_argument("--out", default=str(RESULTS), help="where the JSON and Markdown go")
    ap.add_argument("-k", default=None, help="pytest -k expression")
    ap.add_argument("--timeout", type=int, default=300, help="per-test timeout in seconds")
    ap.add_argument("--reparse", action="store_true", help="re-classify the last run's results")
    ap.add_argument("files", nargs="*", help="test files of tests/udf (default: all)")
    args = ap.parse_args(argv)

    cache = cache_dir(args.cache)
    if args.reparse:
        rows = parse_junit(cache / "last-junit.xml")
        have = sorted(cache.glob("libertem-*.tar.gz"))
        version = have[-1].name[len("libertem-") : -len(".tar.gz")] if have else args.version
        write_report(rows, version, Path(args.out), ["--reparse"])
        return 0
    sdist = fetch_sdist(cache, args.version)
    site = helpers(cache)
    with tempfile.TemporaryDirectory(prefix="lt-suite-") as tmp:
        work = Path(tmp)
        version = unpack_tests(sdist, work)
        tests = work / "tests"
        (tests / "conftest.py").write_text(CONFTEST.format(bench=str(HERE)))
        (tests / "pytest.ini").write_text(PYTEST_INI)
        junit = work / "junit.xml"
        targets = [f"udf/{f}" for f in args.files] or ["udf"]
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rN"]
        cmd += [
            "--junitxml",
            str(junit),
            "-o",
            "junit_family=xunit1",
            "--timeout",
            str(args.timeout),
        ]
        if args.k:
            cmd += ["-k", args.k]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(site), str(tests)])
        env.setdefault("NUMBA_NUM_THREADS", "2")
        proc = subprocess.run(cmd + targets, cwd=tests, env=env)
        if not junit.exists():
            print(f"pytest wrote no report (exit {proc.returncode})", file=sys.stderr)
            return 2
        (cache / "last-junit.xml").write_bytes(junit.read_bytes())
        rows = parse_junit(junit)
    shown = (["-k", args.k] if args.k else []) + args.files
    write_report(rows, version, Path(args.out), shown)
    totals = Counter(r["outcome"] for r in rows)
    print(
        f"LiberTEM {version} tests/udf: {totals['passed']} passed, "
        f"{totals['failed'] + totals['error']} failed, {totals['skipped']} skipped "
        f"-> {Path(args.out) / 'libertem-suite.md'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
