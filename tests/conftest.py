"""Shared fixtures: Contexts for every executor, a dask LocalCluster, small datasets."""

from __future__ import annotations

import os

import numpy as np
import pytest

from udfwidgets import Context

os.environ.setdefault("MPLBACKEND", "Agg")

EXECUTORS = ["inline", "threads", "processes", "dask"]


@pytest.fixture(scope="session")
def dask_client():
    """A real dask.distributed LocalCluster on 127.0.0.1 with two worker processes."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=40,
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="session")
def _contexts():
    made = {}
    yield made
    for ctx in made.values():
        ctx.close()


def _get_ctx(name, _contexts, request):
    if name not in _contexts:
        if name == "dask":
            client = request.getfixturevalue("dask_client")
            _contexts[name] = Context(executor="dask", client=client)
        else:
            _contexts[name] = Context(executor=name, n_jobs=None if name == "inline" else 2)
    return _contexts[name]


@pytest.fixture
def ctx_factory(request, _contexts):
    """``ctx_factory("threads")``: the session's Context for an executor by name."""
    return lambda name: _get_ctx(name, _contexts, request)


@pytest.fixture(params=EXECUTORS)
def any_ctx(request, _contexts):
    """A Context for each executor (inline, threads, processes, dask); shared per session."""
    return _get_ctx(request.param, _contexts, request)


@pytest.fixture
def ctx(request, _contexts):
    """An inline Context: fast, exceptions surface directly."""
    return _get_ctx("inline", _contexts, request)


@pytest.fixture
def threads_ctx(request, _contexts):
    return _get_ctx("threads", _contexts, request)


@pytest.fixture
def processes_ctx(request, _contexts):
    return _get_ctx("processes", _contexts, request)


@pytest.fixture
def rng():
    return np.random.default_rng(42)


@pytest.fixture
def data4d(rng):
    """A small 4D float32 dataset, 2D nav (7, 9) x 2D sig (6, 5)."""
    return rng.random((7, 9, 6, 5), dtype=np.float32)


@pytest.fixture
def data4d_int(rng):
    """A small 4D uint16 dataset, like a counting detector."""
    return rng.integers(0, 1000, size=(6, 5, 8, 7), dtype=np.uint16)
