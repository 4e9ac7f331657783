"""Durable whole-file replacement: the one way this project writes a file it must not lose.

``write_atomic`` writes a temp file ``.<name>.<pid>.tmp`` in the same folder, flushes and
fsyncs it, moves it over the target with ``os.replace`` and fsyncs the folder, so after a
crash the target holds either the old bytes or the new ones, never a mix.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .errors import DiskFullError, StorageError

__all__ = ["TEMP_SUFFIX", "fsync_dir", "mount_point", "storage_error", "write_atomic"]

_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})

TEMP_SUFFIX = ".tmp"


def write_atomic(path: Path, data: bytes, *, sync_dir: bool = True, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` durably (``sync_dir=False``: the caller fsyncs the folder)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """fsync a folder, so a rename or unlink in it survives a crash."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mount_point(path: Path) -> Path:
    """The mount point of the filesystem holding ``path`` (its nearest existing folder)."""
    current = Path(os.path.abspath(path))
    while not current.exists() and current != current.parent:
        current = current.parent
    while not os.path.ismount(current) and current != current.parent:
        current = current.parent
    return current


def storage_error(what: str, path: Path, exc: OSError, *, disk_changed: bool = True) -> StorageError:
    """One line for a failed write of ``what`` under ``path``; a full disk says which disk.

    E.g. ``no space left on the disk mounted at /srv: cannot write job files in
    /srv/data/jobs; free some space``.
    """
    if exc.errno in _NO_SPACE:
        reason = "no space left" if exc.errno == errno.ENOSPC else "disk quota exceeded"
        return DiskFullError(
            f"{reason} on the disk mounted at {mount_point(path)}: cannot {what} in {path}; free some space",
            disk_changed=disk_changed,
        )
    return StorageError(f"cannot {what} in {path}: {exc.strerror or exc}", disk_changed=disk_changed)
