"""Writing files so that a failed or interrupted write never looks complete.

Every writer of the package writes to a temporary name in the target's folder
and renames it into place (``os.replace``, atomic on POSIX) only when the
write succeeded. An exception, Ctrl-C or a killed process leaves at most a
``.<name>.partial-*`` file next to the target, never a file at the target that
reads as whole; with ``overwrite=True`` the previous file stays until the new
one is complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

__all__ = ["atomic_output", "partial_name_prefix", "check_target", "PartialFile", "same_file"]


def partial_name_prefix(target: str | os.PathLike) -> str:
    """The prefix of the temporary names used for ``target``.

    Examples
    --------
    >>> partial_name_prefix("/data/scan.npy")
    '.scan.npy.partial-'
    """
    return "." + os.path.basename(os.fspath(target)) + ".partial-"


def check_target(
    target: str | os.PathLike, overwrite: bool = False, directory: bool = False
) -> str:
    """Check that ``target`` can be written, before any work starts; returns its path.

    Raises ``FileExistsError`` when it exists and ``overwrite`` is False, and
    ``FileNotFoundError`` / ``PermissionError`` when its folder is missing or
    not writable.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> check_target(os.path.join(folder, "out.npy")) == os.path.join(folder, "out.npy")
    True
    """
    path = os.fspath(target)
    if os.path.isdir(path) and not directory:
        raise IsADirectoryError(f"{path!r} is a folder: give a file name to write to")
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{path!r} exists; pass overwrite=True to replace it")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path!r}: the folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {path!r}: the folder {folder!r} is not writable")
    return path


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no /proc: read it the only portable way, and put it back
    os.umask(mask)
    return mask


def _final_mode(path: str, directory: bool) -> int:
    if os.path.exists(path) and os.path.isdir(path) == directory:
        return os.stat(path).st_mode & 0o7777
    return (0o777 if directory else 0o666) & ~_umask()


@contextlib.contextmanager
def atomic_output(
    target: str | os.PathLike, overwrite: bool = False, suffix: str = "", directory: bool = False
) -> Iterator[str]:
    """Yield a temporary path next to ``target``; rename it to ``target`` on success.

    On an exception (``KeyboardInterrupt`` included) the temporary file is
    removed and ``target`` is left as it was.

    Parameters
    ----------
    target : str or os.PathLike
        The file to create.
    overwrite : bool
        Replace an existing ``target`` (only once the new file is complete).
    suffix : str
        Ending of the temporary name (some libraries choose the format by it).
    directory : bool
        The output is a folder (a zarr store): an empty temporary folder is
        yielded instead of an empty file.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> target = os.path.join(tempfile.mkdtemp(), "a.npy")
    >>> with atomic_output(target) as tmp:
    ...     with open(tmp, "wb") as f:
    ...         np.save(f, np.arange(3))
    >>> np.load(target).tolist()
    [0, 1, 2]
    """
    path = check_target(target, overwrite, directory)
    folder = os.path.dirname(os.path.abspath(path))
    prefix = partial_name_prefix(path)
    if directory:
        tmp = tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=folder)
    else:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
        os.close(fd)
    # mkstemp/mkdtemp make private (0600/0700) entries; the result gets the mode a plain
    # open() would give it, or the mode of the file it replaces (cluster workers that run
    # as another user must be able to read what we write)
    os.chmod(tmp, _final_mode(path, directory))
    try:
        yield tmp
        if os.path.lexists(path):
            if not overwrite:
                raise FileExistsError(
                    f"{path!r} appeared while it was being written; "
                    "pass overwrite=True to replace it"
                )
            if os.path.isdir(path) and not os.path.islink(path):
                # a folder cannot be replaced in one step: move the old one aside first
                old = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".old-", dir=folder)
                os.rename(path, os.path.join(old, "x"))
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
                return
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            if os.path.isdir(tmp):
                shutil.rmtree(tmp)
            else:
                os.unlink(tmp)
        raise


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` are the same file (same path, a hard link or a symlink).

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> a = os.path.join(folder, "a.npy"); open(a, "wb").close()
    >>> os.symlink(a, os.path.join(folder, "b.npy"))
    >>> same_file(a, os.path.join(folder, "b.npy")), same_file(a, os.path.join(folder, "c.npy"))
    (True, False)
    """
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


class PartialFile:
    """A temporary file next to ``target`` with a name known in advance, renamed on success.

    :func:`atomic_output` for writers whose temporary file is written by
    other processes (``RecordUDF``'s workers): the name is fixed when the
    object is made (``token``), so it can travel to workers before the file
    exists. :meth:`create` makes it, :meth:`commit` renames it into place,
    :meth:`abort` removes it. A killed process leaves at most the
    ``.<name>.partial-*`` file, never a file at ``target``.

    Examples
    --------
    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "out.bin")
    >>> part = PartialFile(target, token="abc")
    >>> os.path.basename(part.tmp)
    '.out.bin.partial-abc'
    >>> with open(part.create(), "wb") as f:
    ...     _ = f.write(b"data")
    >>> os.path.exists(target)
    False
    >>> part.commit()
    >>> open(target, "rb").read()
    b'data'
    """

    def __init__(
        self, target: str | os.PathLike, overwrite: bool = False, token: str = "", suffix: str = ""
    ):
        self.target = os.path.abspath(os.fspath(target))
        self.overwrite = overwrite
        folder = os.path.dirname(self.target)
        self.tmp = os.path.join(folder, partial_name_prefix(self.target) + token + suffix)

    def check(self) -> str:
        """:func:`check_target` for the target (before any work starts)."""
        return check_target(self.target, self.overwrite)

    def create(self) -> str:
        """Check the target and create the (empty) temporary file; returns its path."""
        self.check()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)  # left by an earlier, killed attempt with the same token
        fd = os.open(self.tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        os.close(fd)
        return self.tmp

    def commit(self) -> None:
        """Rename the temporary file to the target (replacing it only with ``overwrite``)."""
        try:
            if os.path.lexists(self.target) and not self.overwrite:
                raise FileExistsError(
                    f"{self.target!r} appeared while it was being written; "
                    "pass overwrite=True to replace it"
                )
            os.replace(self.tmp, self.target)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Remove the temporary file (the target stays as it was)."""
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)
