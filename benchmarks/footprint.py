"""How heavy is udfwidgets for a Binder user: installed size and memory of notebook 01.

    python benchmarks/footprint.py                 # memory of notebook 01 (this environment)
    python benchmarks/footprint.py --venv DIR      # also: the size of that venv's site-packages

The memory is the peak, over the whole run of ``notebooks/01-getting-started.ipynb`` in a
fresh kernel, of the proportional set size (PSS: shared pages split between the processes
that share them) summed over the kernel and every process it starts (loky workers); PSS
sums to what the processes cost together, which is what Binder's 2 GB limit counts. RSS
summed is printed too (it counts shared libraries once per process, an upper bound).
Sampled every 20 ms with psutil.

The installed size is ``du`` of a venv's site-packages made by ``.ci/package-smoke``
(``pip install`` of the wheel with its dependencies into a fresh venv), with pip and
setuptools (part of every venv) given apart.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "01-getting-started.ipynb")


def _tree(pid: int):
    import psutil

    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _sample(pid: int) -> tuple[int, int]:
    import psutil

    pss = rss = 0
    for proc in _tree(pid):
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        pss += getattr(info, "pss", info.rss)
        rss += info.rss
    return pss, rss


def notebook_memory(path: str = NOTEBOOK, timeout: int = 600) -> dict:
    """Run a notebook in a fresh kernel; peak PSS and RSS of the kernel and its children."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env_path = os.environ.get("PYTHONPATH")
    # the kernel imports this source tree (the kernel manager passes os.environ on)
    os.environ["PYTHONPATH"] = ROOT + (os.pathsep + env_path if env_path else "")
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": os.path.dirname(path)}},
    )
    peak = {"pss": 0, "rss": 0}
    done = threading.Event()

    def watch():
        while not done.is_set():
            km = client.km
            pid = getattr(getattr(km, "provisioner", None), "pid", None) if km else None
            if pid:
                pss, rss = _sample(pid)
                peak["pss"] = max(peak["pss"], pss)
                peak["rss"] = max(peak["rss"], rss)
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    try:
        client.execute()
    finally:
        done.set()
        thread.join()
        if env_path is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = env_path
    return {
        "peak_pss_mb": peak["pss"] / 2**20,
        "peak_rss_mb": peak["rss"] / 2**20,
        "seconds": time.perf_counter() - t0,
    }


def installed_size(venv: str) -> dict:
    """MiB of a venv's site-packages, all of it and without pip/setuptools."""
    py = os.path.join(venv, "bin", "python")
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    def du(path: str) -> float:
        out = subprocess.run(["du", "-sk", path], capture_output=True, text=True, check=True)
        return int(out.stdout.split()[0]) / 1024

    total = du(site)
    tools = sum(
        du(os.path.join(site, name))
        for name in os.listdir(site)
        if name.split("-")[0].split(".")[0] in ("pip", "setuptools", "_distutils_hack")
        and os.path.exists(os.path.join(site, name))
    )
    own = du(os.path.join(site, "udfwidgets"))
    return {
        "site_packages_mb": total,
        "without_pip_setuptools_mb": total - tools,
        "udfwidgets_mb": own,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", help="a venv made by .ci/package-smoke --keep DIR")
    parser.add_argument("--skip-notebook", action="store_true")
    args = parser.parse_args(argv)
    if args.venv:
        size = installed_size(args.venv)
        print(
            "installed: site-packages {site_packages_mb:.0f} MiB, without pip/setuptools "
            "{without_pip_setuptools_mb:.0f} MiB, udfwidgets itself {udfwidgets_mb:.1f} MiB".format(
                **size
            )
        )
    if not args.skip_notebook:
        mem = notebook_memory()
        print(
            "notebook 01 in a fresh kernel: peak PSS {peak_pss_mb:.0f} MiB (kernel + workers), "
            "peak RSS summed {peak_rss_mb:.0f} MiB, {seconds:.0f} s".format(**mem)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
