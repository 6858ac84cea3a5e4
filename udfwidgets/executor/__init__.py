"""Running partitions: plan (roi, clean copies), worker task, joblib backends."""

from .backends import EXECUTORS, DaskExecutor, Executor, InlineExecutor, make_executor
from .run import UDFRun, WorkerDiedError

__all__ = [
    "EXECUTORS",
    "Executor",
    "InlineExecutor",
    "DaskExecutor",
    "make_executor",
    "UDFRun",
    "WorkerDiedError",
]
