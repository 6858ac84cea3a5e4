"""A short description of a dataset for people: text and an HTML table (Jupyter)."""

from __future__ import annotations

import html

from .dataset import PARTITIONS_PER_WORKER, TARGET_PARTITION_BYTES, partition_size

__all__ = ["DataSetDisplay", "dataset_html", "format_bytes"]


def format_bytes(n: int) -> str:
    """``n`` bytes in B, KiB, MiB, GiB or TiB.

    Examples
    --------
    >>> format_bytes(384), format_bytes(3 << 20)
    ('384 B', '3.0 MiB')
    """
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _rows(
    ds,
    n_workers: int = 1,
    partition_bytes: int = TARGET_PARTITION_BYTES,
    per_worker: int = PARTITIONS_PER_WORKER,
) -> list[tuple[str, str]]:
    with partition_size(partition_bytes, per_worker):  # as a run on that executor splits it
        bounds = ds.partition_bounds(n_workers)
    rows = [
        ("type", type(ds).__name__),
        ("shape", str(tuple(ds.shape))),
        ("navigation", str(tuple(ds.shape.nav))),
        ("signal", str(tuple(ds.shape.sig))),
        ("dtype", str(ds.dtype)),
        ("size", format_bytes(ds.nbytes)),
        ("partitions", str(len(bounds))),
    ]
    for attr in ("path", "sync_offset"):
        value = getattr(ds, attr, None)
        if value not in (None, 0):
            rows.append((attr, str(value)))
    return rows


def dataset_html(
    ds,
    n_workers: int = 1,
    partition_bytes: int = TARGET_PARTITION_BYTES,
    per_worker: int = PARTITIONS_PER_WORKER,
) -> str:
    """An HTML table describing ``ds`` (what ``DataSet._repr_html_`` shows).

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets.io.memory import MemoryDataSet
    >>> "<td>(2, 3)</td>" in dataset_html(MemoryDataSet(np.zeros((2, 3, 4, 4))))
    True
    """
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in _rows(ds, n_workers, partition_bytes, per_worker)
    )
    return f"<table class='udfwidgets-dataset'>{body}</table>"


class DataSetDisplay:
    """What ``ctx.display(dataset)`` returns: prints as one line, shows as a table.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets.io.memory import MemoryDataSet
    >>> d = DataSetDisplay(MemoryDataSet(np.zeros((2, 3, 4, 4), dtype=np.uint16)))
    >>> str(d)
    'MemoryDataSet: nav (2, 3), sig (4, 4), uint16, 192 B'
    """

    def __init__(
        self,
        dataset,
        n_workers: int = 1,
        partition_bytes: int = TARGET_PARTITION_BYTES,
        per_worker: int = PARTITIONS_PER_WORKER,
    ):
        self.dataset = dataset
        self.n_workers = n_workers
        self.partition_bytes = partition_bytes
        self.per_worker = per_worker

    def _repr_html_(self) -> str:
        return dataset_html(self.dataset, self.n_workers, self.partition_bytes, self.per_worker)

    def __str__(self) -> str:
        ds = self.dataset
        return (
            f"{type(ds).__name__}: nav {tuple(ds.shape.nav)}, sig {tuple(ds.shape.sig)}, "
            f"{ds.dtype}, {format_bytes(ds.nbytes)}"
        )

    __repr__ = __str__
