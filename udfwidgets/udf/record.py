"""Record the frames of a run into a ``.npy`` file."""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any

import numpy as np

from ..io.atomic import PartialFile
from .base import UDF

# NumPy parses .npy headers with ast.literal_eval, which CPython 3.11 before 3.11.8 cannot run in
# two threads at once ("SystemError: AST constructor recursion depth mismatch"): the threads
# executor opens the file from several workers of one process.
_HEADER_LOCK = threading.Lock()

__all__ = ["RecordUDF"]


class RecordUDF(UDF):
    """Write every processed frame into a ``.npy`` file of the full dataset shape.

    The file is created on the main node before any partition runs (in
    :meth:`get_task_data`) with :func:`numpy.lib.format.open_memmap`; each worker
    then opens it as a writable memory map and writes its frames in place,
    so the frames never travel back to the main node. Load the result with
    ``np.load(filename)`` (add ``mmap_mode="r"`` for big files).

    The file has the dataset's full shape ``nav + sig``. With an ``roi`` only
    the selected frames are written; the others stay 0. The UDF has no result
    buffers.

    Nothing half-written is ever left at ``filename``: the frames go to a
    temporary file next to it (``.<name>.partial-<token>.npy``), which is
    renamed to ``filename`` only when the run has succeeded. A failed,
    interrupted or cancelled run (an exception, Ctrl-C, ``break`` in
    ``run_udf_iter``, even a killed Python process) leaves ``filename`` as it
    was; with ``overwrite=True`` the previous file stays until the new one is
    complete. A target that is one of the files the dataset reads (the same
    path, a hard link or a symlink) is refused before any work.

    Parameters
    ----------
    filename : str or os.PathLike
        Where to write; made absolute when the UDF is created, so that workers
        with another working directory write to the same file. Its directory
        must exist.
    dtype : numpy dtype, optional
        dtype of the file; default the dataset's own dtype (raw values).
    overwrite : bool
        Replace an existing file (default False: the run fails with
        ``FileExistsError`` before any frame is read, so that a result is
        never lost by accident; running a ``RecordUDF(overwrite=False)`` twice
        fails the second time).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.record import RecordUDF
    >>> ctx = Context(executor="inline")
    >>> data = np.arange(24, dtype=np.uint16).reshape(2, 3, 2, 2)
    >>> path = os.path.join(tempfile.mkdtemp(), "copy.npy")
    >>> _ = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=RecordUDF(path))
    >>> np.array_equal(np.load(path), data)
    True
    """

    ACCEPTS_SIG_SLICED_TILES = False  # writes whole frames

    def __init__(self, filename: str | os.PathLike, dtype: Any = None, overwrite: bool = False):
        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(
                f"filename must be a path (str or os.PathLike), got {type(filename).__name__}"
            )
        path = os.path.abspath(os.fspath(filename))
        if dtype is not None:
            try:
                dt = np.dtype(dtype)
            except TypeError:
                raise ValueError(
                    f"dtype must be a NumPy dtype or None (the dataset's dtype), got {dtype!r}"
                ) from None
            if dt.hasobject:
                raise ValueError(
                    f"dtype {dt} cannot be stored in a .npy memory map; use a numeric dtype"
                )
        if not isinstance(overwrite, bool):
            raise ValueError(f"overwrite must be True or False, got {overwrite!r}")
        folder = os.path.dirname(path)
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f"RecordUDF: the directory {folder!r} of filename does not exist; create it first"
            )
        if os.path.isdir(path):
            raise IsADirectoryError(
                f"RecordUDF: filename {path!r} is a directory; give a file "
                "name such as 'frames.npy'"
            )
        super().__init__(filename=path, dtype=dtype, overwrite=overwrite)
        # names this run's temporary file; travels with the pickled UDF to the workers
        self.__dict__["_token"] = uuid.uuid4().hex[:16]

    def copy(self) -> RecordUDF:
        """A clean copy that writes the same temporary file (in-process executors)."""
        new = super().copy()
        new.__dict__["_token"] = self.__dict__["_token"]
        return new

    # --- the output protocol (udfwidgets.executor.plan) ---------------------------
    def _partial(self) -> PartialFile:
        return PartialFile(
            self.params.filename,
            overwrite=self.params.overwrite,
            token=self.__dict__["_token"],
            suffix=".npy",
        )

    def _output_files(self) -> list[str]:
        """The files this UDF writes (checked against the dataset's own files)."""
        return [self.params.filename]

    def _commit_outputs(self) -> None:
        """The run succeeded: rename the temporary file to ``filename``."""
        self._partial().commit()

    def _abort_outputs(self) -> None:
        """The run failed or stopped: remove the temporary file."""
        self._partial().abort()

    # --- the file ----------------------------------------------------------------
    def _file_shape(self) -> tuple[int, ...]:
        return tuple(self.meta.dataset_shape)

    def _file_dtype(self) -> np.dtype:
        if self.params.dtype is None:
            return np.dtype(self.meta.dataset_dtype)
        return np.dtype(self.params.dtype)

    def _header_matches(self) -> bool:
        try:
            with _HEADER_LOCK:
                mm = np.load(self._partial().tmp, mmap_mode="r")
        except (OSError, ValueError):
            return False
        ok = mm.shape == self._file_shape() and mm.dtype == self._file_dtype()
        del mm
        return ok

    def _create(self) -> None:
        mm = np.lib.format.open_memmap(
            self._partial().create(), mode="w+", dtype=self._file_dtype(), shape=self._file_shape()
        )
        mm.flush()
        del mm

    def get_task_data(self):
        path = self.params.filename
        if self.meta.on_main_node:
            if os.path.lexists(path) and not self.params.overwrite:
                raise FileExistsError(
                    f"RecordUDF: {path!r} exists; pass overwrite=True to "
                    "replace it, or choose another filename"
                )
            self._create()  # a fresh temporary file of zeros, before any worker starts
        elif not self._header_matches():
            raise RuntimeError(
                f"RecordUDF: the temporary file {self._partial().tmp!r} for "
                f"{path!r} was changed or removed while the run was going on "
                "(or the run was stopped); run again"
            )
        return {}

    def preprocess(self):
        self.__dict__["_memmap"] = None

    def _flat_memmap(self) -> np.ndarray:
        mm = self.__dict__.get("_memmap")
        if mm is None:
            with _HEADER_LOCK:
                mm = np.lib.format.open_memmap(self._partial().tmp, mode="r+")
            self.__dict__["_memmap"] = mm
        sig = tuple(self.meta.dataset_shape.sig)
        return mm.reshape((-1,) + sig)

    # --- UDF interface -----------------------------------------------------------
    def get_preferred_input_dtype(self):
        if self.params.dtype is None:
            return self.USE_NATIVE_DTYPE
        return np.dtype(self.params.dtype)

    def get_result_buffers(self):
        return {}

    def process_tile(self, tile):
        flat = self._flat_memmap()
        nav = tuple(self.meta.dataset_shape.nav)
        idx = np.ravel_multi_index(tuple(self.meta.coordinates.T), nav)
        if len(idx) and idx[-1] - idx[0] + 1 == len(idx):  # contiguous frames: a slice
            flat[idx[0] : idx[-1] + 1] = tile
        else:
            flat[idx] = tile

    def postprocess(self):
        mm = self.__dict__.pop("_memmap", None)
        if mm is not None:
            mm.flush()
            del mm
