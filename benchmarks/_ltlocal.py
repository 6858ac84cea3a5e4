"""LiberTEM's default (dask) executor, bound to the loopback interface.

``Context()`` / ``Context.make_with("dask")`` start a local dask cluster whose
scheduler and workers listen on the machine's network address. The benchmark
keeps all its traffic on 127.0.0.1, so it builds the same cluster (LiberTEM's
own worker spec for the detected CPUs) with every server bound to loopback.
"""

from __future__ import annotations


def loopback_dask_executor():
    """A ``DaskJobExecutor`` like LiberTEM's default, listening on 127.0.0.1 only.

    Examples
    --------
    >>> from libertem.api import Context                      # doctest: +SKIP
    >>> ctx = Context(executor=loopback_dask_executor())      # doctest: +SKIP
    """
    from distributed import Scheduler
    from libertem.executor.dask import DaskJobExecutor, cluster_spec
    from libertem.utils.devices import detect

    spec = cluster_spec(**detect())
    for worker in spec.values():
        worker["options"]["host"] = "127.0.0.1"
    scheduler = {
        "cls": Scheduler,
        "options": {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"},
    }
    return DaskJobExecutor.make_local(spec=spec, cluster_kwargs={"scheduler": scheduler})
