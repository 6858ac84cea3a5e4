"""The Binder setup (``binder/``) is complete and installs into a fresh environment.

repo2docker ignores ``pyproject.toml`` when ``binder/`` exists, so
``binder/requirements.txt`` must bring the package itself and its widget
dependencies. The slow test proves it the way Binder does: a brand-new venv
(no system site-packages), ``pip install -r binder/requirements.txt`` run from
the repository root, then imports from a directory outside the repository.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
FIRST_NOTEBOOK = "notebooks/01-getting-started.ipynb"


def requirement_lines() -> list[str]:
    lines = (BINDER / "requirements.txt").read_text().splitlines()
    return [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]


def pinned_versions() -> dict[str, str]:
    pins = {}
    for line in requirement_lines():
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([0-9][^\s;]*)", line)
        if match:
            pins[match.group(1).lower()] = match.group(3)
    return pins


def test_requirements_list_the_package_and_pin_everything_else():
    lines = requirement_lines()
    assert "." in lines or "-e ." in lines, "binder/requirements.txt must install the repo itself"
    others = [ln for ln in lines if ln not in (".", "-e .")]
    unpinned = [ln for ln in others if "==" not in ln]
    assert not unpinned, f"unpinned Binder requirements: {unpinned}"
    pins = pinned_versions()
    for needed in ("ipympl", "ipywidgets", "matplotlib", "numpy", "joblib", "jupyterlab"):
        assert needed in pins, f"binder/requirements.txt should pin {needed}"


def test_pins_satisfy_the_package_dependencies():
    """Every dependency of pyproject.toml that Binder pins must meet its lower bound."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = pinned_versions()

    def as_tuple(version: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", version)[:3])

    for dep in project["dependencies"]:
        match = re.match(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?(?:>=([0-9.]+))?", dep.replace(" ", ""))
        name, lower = match.group(1).lower(), match.group(3)
        assert name in pins, f"{name} (a dependency of the package) is not pinned for Binder"
        if lower:
            assert as_tuple(pins[name]) >= as_tuple(lower), f"{name}=={pins[name]} < {lower}"


def test_runtime_matches_requires_python():
    runtime = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-3\.(\d+)", runtime)
    assert match, f"binder/runtime.txt should read like python-3.11, got {runtime!r}"
    assert int(match.group(1)) >= 10


def test_post_build_is_an_executable_bash_script_opening_the_first_notebook():
    script = BINDER / "postBuild"
    assert os.access(script, os.X_OK), "binder/postBuild must be executable"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert f"/lab/tree/{FIRST_NOTEBOOK}" in text
    assert (ROOT / FIRST_NOTEBOOK).is_file(), f"postBuild opens {FIRST_NOTEBOOK}, which is missing"


def test_docs_badge_opens_jupyterlab_on_the_first_notebook():
    doc = (ROOT / "docs" / "notebooks-and-binder.md").read_text()
    assert "mybinder.org/v2/gh/" in doc
    assert f"urlpath=lab/tree/{FIRST_NOTEBOOK}" in doc.replace("%2F", "/")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fresh_venv_from_binder_requirements_imports_package_and_widgets(tmp_path):
    env_dir = tmp_path / "binder-env"
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(env_dir)
    cfg = (env_dir / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg
    py = env_dir / "bin" / "python"
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    # Like repo2docker: pip runs from the repository root, so "." is this repo.
    install = subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
            str(BINDER / "requirements.txt"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-4000:]

    # Import from outside the repo, so the working tree cannot shadow the install.
    probe = (
        "import json, sys, importlib.metadata as md\n"
        "import udfwidgets, ipympl, ipywidgets, matplotlib, numpy as np\n"
        "from udfwidgets import Context\n"
        "from udfwidgets.udf.sum import SumUDF\n"
        "import matplotlib; matplotlib.use('module://ipympl.backend_nbagg')\n"
        "data = np.arange(2 * 3 * 4 * 5, dtype='float32').reshape(2, 3, 4, 5)\n"
        "res = Context(executor='inline').load('memory', data=data)\n"
        "total = Context(executor='inline').run_udf(dataset=res, udf=SumUDF())['intensity'].data\n"
        "print(json.dumps({'file': udfwidgets.__file__, 'prefix': sys.prefix,\n"
        "  'ok': bool(np.allclose(total, data.sum(axis=(0, 1)))),\n"
        "  'backend': matplotlib.get_backend(),\n"
        "  'versions': {n: md.version(n) for n in ('ipympl', 'ipywidgets', 'matplotlib',\n"
        "                                          'numpy', 'jupyterlab')}}))\n"
    )
    out = subprocess.run(
        [str(py), "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-4000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(info["file"]).is_relative_to(env_dir), info["file"]
    assert Path(info["prefix"]) == env_dir
    assert info["ok"]
    assert "ipympl" in info["backend"]
    pins = pinned_versions()
    for name, version in info["versions"].items():
        assert version == pins[name], f"{name}: installed {version}, pinned {pins[name]}"

    # JupyterLab in that environment sees the widget front-ends (prebuilt extensions).
    lab = subprocess.run(
        [str(env_dir / "bin" / "jupyter"), "labextension", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    listing = lab.stdout + lab.stderr
    assert "jupyter-matplotlib" in listing and "enabled" in listing, listing
    assert "@jupyter-widgets/jupyterlab-manager" in listing, listing


NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def test_the_seven_teaching_notebooks_exist():
    names = [p.stem for p in NOTEBOOKS]
    assert names == [
        "01-getting-started",
        "02-writing-udfs",
        "03-roi-and-virtual-detectors",
        "04-partial-results-and-async",
        "05-performance-and-scaling",
        "06-your-own-data",
        "07-corrections-units-export",
    ], names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_executed_top_to_bottom_from_a_fresh_kernel(path):
    """What Binder visitors see first: outputs present, no errors, cells run once in order."""
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in code]
    # 1, 2, 3, ...: every cell ran exactly once, in order, in a fresh kernel
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: execution counts {counts}"

    def tagged(cell, tag):
        return tag in cell.get("metadata", {}).get("tags", [])

    # an error is stored only where the notebook shows one on purpose (nbval's raises-exception)
    errors = [
        o
        for c in code
        if not tagged(c, "raises-exception")
        for o in c["outputs"]
        if o["output_type"] == "error"
    ]
    assert not errors, f"{path.name} stores an error: {errors[0].get('ename')}"
    stderr = [
        o
        for c in code
        for o in c["outputs"]
        if o["output_type"] == "stream" and o["name"] == "stderr"
    ]
    assert not stderr, f"{path.name} stores stderr output: {stderr[0]['text'][:300]}"
    checked = [c for c in code if tagged(c, "nbval-check-output")]
    assert checked, f"{path.name} has no cell whose output nbval compares"
    assert all(c["outputs"] for c in checked), f"{path.name}: a checked cell has no output"
    source = "\n".join("".join(c["source"]) for c in code)
    if "udfwidgets.widgets" in source or "plots=" in source or "plt." in source:
        assert "".join(code[0]["source"]).startswith("%matplotlib widget")
