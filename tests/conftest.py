"""Shared fixtures: Contexts for every executor, a dask LocalCluster, small datasets."""

from __future__ import annotations

import os

import numpy as np
import pytest

from udfwidgets import Context

os.environ.setdefault("MPLBACKEND", "Agg")

EXECUTORS = ["inline", "threads", "processes", "dask"]


def _global_figure_state() -> dict[str, bool]:
    """What makes ``backend="auto"`` choose ipympl: the global backend, or a running kernel."""
    from udfwidgets.widgets.figure import _pyplot_backend_is_ipympl, in_ipython_kernel

    return {
        "ipympl_is_global_backend": _pyplot_backend_is_ipympl(),
        "in_kernel": in_ipython_kernel(),
    }


_FIGURE_STATE_AT_START = _global_figure_state()


def pytest_collection_finish(session):
    """Collecting must not switch the backend either (``import ipympl`` does, at module level)."""
    if _global_figure_state() != _FIGURE_STATE_AT_START:
        raise pytest.UsageError(
            f"importing the test modules changed global figure state from "
            f"{_FIGURE_STATE_AT_START} to {_global_figure_state()}; use the `ipympl` fixture "
            "instead of importing ipympl"
        )


@pytest.fixture
def ipympl():
    """ipympl's backend module, imported without switching matplotlib's global backend.

    ``import ipympl`` (so also ``pytest.importorskip("ipympl")``) calls
    ``matplotlib.use("module://ipympl.backend_nbagg")`` when matplotlib is loaded.
    """
    from udfwidgets.widgets.figure import _has_ipympl, _ipympl

    if not _has_ipympl():
        pytest.skip("needs ipympl: pip install udfwidgets[test]")
    return _ipympl()


@pytest.fixture(autouse=True)
def _no_leaked_figure_state():
    """Fail the test that switches the global matplotlib backend or leaves a kernel behind.

    Either one turns every later ``backend="auto"`` figure in the pytest process into an
    ipympl figure, so tests (and doctests) that run afterwards fail far from the cause.
    """
    before = _global_figure_state()
    yield
    after = _global_figure_state()
    assert after == before, (
        f"this test changed global figure state from {before} to {after}; "
        "restore it, e.g. import ipympl through udfwidgets.widgets.figure._ipympl()"
    )


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
