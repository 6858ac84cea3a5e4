"""The package surface: public names, a light import, the version, the built artefacts."""

import subprocess
import sys

import pytest


def test_import_is_light():
    code = (
        "import sys, udfwidgets; "
        "heavy = [m for m in ('matplotlib', 'ipywidgets', 'ipympl', 'distributed', 'tqdm') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names():
    import udfwidgets
    from udfwidgets import UDF, BufferWrapper, Context, UDFResults  # noqa: F401
    from udfwidgets.udf import UDF as UDF2
    from udfwidgets.udf.sum import SumUDF  # noqa: F401
    from udfwidgets.udf.sumsigudf import SumSigUDF  # noqa: F401

    assert UDF is UDF2
    assert udfwidgets.__version__


# ------------------------------------------------------------------------------ the version
def project_table() -> dict:
    import tomllib
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    return tomllib.loads(text)["project"]


def test_one_version_everywhere():
    import udfwidgets

    version = project_table()["version"]
    assert udfwidgets.__version__ == version
    out = subprocess.run(
        [sys.executable, "-m", "udfwidgets", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"udfwidgets {version}"
    import re
    from pathlib import Path

    changelog = (Path(__file__).resolve().parents[1] / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## (\S+)", changelog, re.M)
    assert versions[:1] == ["Unreleased"] or versions[:1] == [version], versions
    assert version in versions, f"CHANGELOG.md has no section for {version}"


def test_project_metadata_for_publishing():
    project = project_table()
    assert {"Homepage", "Documentation", "Source", "Issues", "Changelog"} <= set(project["urls"])
    assert "License :: OSI Approved :: MIT License" in project["classifiers"]
    assert "Typing :: Typed" in project["classifiers"]
    assert "4D-STEM" in project["keywords"]
    py_versions = [
        c.rsplit(" ", 1)[-1]
        for c in project["classifiers"]
        if c.startswith("Programming Language :: Python :: 3.")
    ]
    assert min(py_versions, key=lambda v: tuple(map(int, v.split(".")))) == project[
        "requires-python"
    ].removeprefix(">=")


# ------------------------------------------------------------------------------ the artefacts
def test_wheel_and_sdist_contents(tmp_path):
    """`python -m build` (without isolation: the venv's setuptools) makes both artefacts.

    The full check, installing them into a fresh venv with their dependencies and running
    the demo there, is `.ci/package-smoke` (run by `.ci/run`).
    """
    import tarfile
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    version = project_table()["version"]
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path), str(root)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = tmp_path.glob(f"udfwidgets-{version}-py3-none-any.whl")
    (sdist,) = tmp_path.glob(f"udfwidgets-{version}.tar.gz")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        info = f"udfwidgets-{version}.dist-info"
        metadata = zf.read(f"{info}/METADATA").decode()
        entry_points = zf.read(f"{info}/entry_points.txt").decode()
    assert "udfwidgets/py.typed" in names
    assert "udfwidgets/udf/sum.py" in names and "udfwidgets/widgets/plots/live.py" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "docs/"))]
    assert f"Version: {version}" in metadata
    assert "Project-URL: Documentation, " in metadata
    assert "Classifier: Typing :: Typed" in metadata
    assert "udfwidgets = udfwidgets.cli:main" in entry_points
    with tarfile.open(sdist) as tf:
        members = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}
    assert {"pyproject.toml", "README.md", "udfwidgets/py.typed", "udfwidgets/cli.py"} <= members


# ------------------------------------------------------------------------------ Binder's 2 GB
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_notebook_01_leaves_room_in_binders_two_gigabytes():
    """Peak memory (PSS) of notebook 01 in a fresh kernel, as docs/installation.md reports."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from footprint import notebook_memory

    mem = notebook_memory()
    assert mem["peak_pss_mb"] > 50, mem  # the kernel was measured at all
    # half of Binder's 2 GB: the rest is for the Jupyter server and the browser's messages
    assert mem["peak_pss_mb"] < 1024, mem
