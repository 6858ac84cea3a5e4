"""Engines under test: NumPy, udfwidgets (each executor) and LiberTEM (if installed).

Each engine opens a dataset once per file and runs a UDF built by a workload,
returning plain NumPy arrays so that results can be compared across engines.
"""

from __future__ import annotations

import importlib
import os
import time
from types import SimpleNamespace

import numpy as np

from _data import RawFile
from _workloads import Workload, guide_udfs, run_numpy

OURS = ("uw-inline", "uw-threads", "uw-processes", "uw-dask")
LT = ("lt-inline", "lt-dask", "lt-threads", "lt-pipelined")
NUMPY = ("numpy-1t", "numpy-2t")


def lt_available() -> str | None:
    """LiberTEM's version, or None when it is not importable in this interpreter."""
    try:
        import libertem
    except Exception:
        return None
    return libertem.__version__


def _optional_attr(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def ours_namespace() -> SimpleNamespace:
    from udfwidgets import UDF

    ns = dict(guide_udfs(UDF))
    ns["SumUDF"] = _optional_attr("udfwidgets.udf.sum", "SumUDF")
    ns["SumSigUDF"] = _optional_attr("udfwidgets.udf.sumsigudf", "SumSigUDF")
    ns["StdDevUDF"] = _optional_attr("udfwidgets.udf.stddev", "StdDevUDF")
    ns["ApplyMasksUDF"] = _optional_attr("udfwidgets.udf.masks", "ApplyMasksUDF")
    ns["CoMUDF"] = _optional_attr("udfwidgets.udf.com", "CoMUDF")
    return SimpleNamespace(**ns)


def lt_namespace() -> SimpleNamespace:
    from libertem.udf import UDF

    ns = dict(guide_udfs(UDF))
    ns["SumUDF"] = _optional_attr("libertem.udf.sum", "SumUDF")
    ns["SumSigUDF"] = _optional_attr("libertem.udf.sumsigudf", "SumSigUDF")
    ns["StdDevUDF"] = _optional_attr("libertem.udf.stddev", "StdDevUDF")
    ns["ApplyMasksUDF"] = _optional_attr("libertem.udf.masks", "ApplyMasksUDF")
    ns["CoMUDF"] = _optional_attr("libertem.udf.com", "CoMUDF")
    return SimpleNamespace(**ns)


def _plain(results) -> dict[str, np.ndarray]:
    out = {}
    for k, v in results.items():
        try:
            out[k] = np.asarray(v.data)
        except Exception:  # pragma: no cover - a buffer that cannot be materialised
            continue
    return out


class Engine:
    """Base: ``open(f)`` a file, ``run(workload)`` and ``run_iter(workload)``."""

    name = "?"
    family = "?"

    def open(self, f: RawFile):
        raise NotImplementedError

    def make_udf(self, w: Workload, f: RawFile):
        return None

    def supports(self, w: Workload) -> str | None:
        """None if the workload can run here, else why not."""
        return None

    def run(self, w: Workload, f: RawFile, udf=None) -> dict:
        raise NotImplementedError

    def close(self):
        pass


class NumpyEngine(Engine):
    family = "numpy"

    def __init__(self, threads: int):
        self.threads = threads
        self.name = f"numpy-{threads}t"
        self._maps = {}

    def open(self, f):
        if f.path not in self._maps:
            self._maps[f.path] = f.memmap()

    def run(self, w, f, udf=None):
        return run_numpy(w, self._maps[f.path], self.threads)

    def forget(self, f):
        """Drop the cached map (its pages would stay mapped and could not be evicted)."""
        self._maps.pop(f.path, None)


class _UDFEngine(Engine):
    ns: SimpleNamespace

    def __init__(self):
        self._ds = {}

    def _udf_factory(self, w):
        return None

    def supports(self, w):
        make = self._udf_factory(w)
        if make is None:
            return "no such UDF"
        try:
            make(self.ns, (8, 8))
        except (AttributeError, TypeError) as e:
            return f"{self.family} has no such UDF yet ({e})"
        return None

    def make_udf(self, w, f):
        return self._udf_factory(w)(self.ns, tuple(f.sig))

    def open(self, f):
        if f.path not in self._ds:
            self._ds[f.path] = self.ctx.load(
                "raw", path=f.path, nav_shape=f.nav, sig_shape=f.sig, dtype=f.dtype
            )

    def run(self, w, f, udf=None):
        udf = udf if udf is not None else self.make_udf(w, f)
        return _plain(self.ctx.run_udf(dataset=self._ds[f.path], udf=udf))

    def run_iter(self, w, f, udf=None):
        """Iterate partial results; yields the buffers dict of each (last is final)."""
        udf = udf if udf is not None else self.make_udf(w, f)
        yield from self.ctx.run_udf_iter(dataset=self._ds[f.path], udf=udf)


def dask_worker_config() -> dict:
    """The dask configuration udfwidgets recommends for worker processes
    (``udfwidgets.executor.dask_executor.WORKER_CONFIG``; empty in versions without it)."""
    try:
        from udfwidgets.executor.dask_executor import WORKER_CONFIG
    except ImportError:
        return {}
    return dict(WORKER_CONFIG)


class OursEngine(_UDFEngine):
    family = "udfwidgets"

    def __init__(self, executor: str, n_jobs: int | None = None):
        super().__init__()
        from udfwidgets import Context

        self.name = f"uw-{executor}"
        self.ns = ours_namespace()
        kwargs = {}
        self._cluster = None
        if executor == "dask":
            import dask
            from distributed import Client, LocalCluster

            # a cluster of the user's own, configured as docs/clusters.md recommends
            with dask.config.set(dask_worker_config()):
                self._cluster = LocalCluster(
                    n_workers=os.cpu_count() or 2,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",
                )
            kwargs["client"] = Client(self._cluster)
        self.ctx = Context(executor=executor, n_jobs=n_jobs, **kwargs)

    def _udf_factory(self, w):
        return w.make_ours

    def forget(self, f):
        """Drop the maps our processes keep between runs, so the file can be evicted."""
        self.ctx.release_files()
        ready = getattr(self.ctx.executor, "ready", True)
        while not ready:  # restarted workers: wait, so that start-up is not timed
            time.sleep(0.01)
            ready = self.ctx.executor.ready

    def close(self):
        self.ctx.close()
        if self._cluster is not None:
            self._cluster.close()


class LTEngine(_UDFEngine):
    family = "libertem"

    def __init__(self, executor: str):
        super().__init__()
        from libertem.api import Context

        self.name = f"lt-{executor}"
        self.ns = lt_namespace()
        if executor == "dask":  # the default executor, kept on the loopback interface
            from _ltlocal import loopback_dask_executor

            self.ctx = Context(executor=loopback_dask_executor())
        else:
            self.ctx = Context.make_with(executor)

    def _udf_factory(self, w):
        return w.make_lt

    def close(self):
        self.ctx.close()


def make_engine(name: str) -> Engine:
    if name.startswith("numpy-"):
        return NumpyEngine(int(name.split("-")[1].rstrip("t")))
    family, executor = name.split("-", 1)
    if family == "uw":
        return OursEngine(executor)
    if family == "lt":
        return LTEngine(executor)
    raise ValueError(f"unknown engine {name!r}; use one of {', '.join(NUMPY + OURS + LT)}")
