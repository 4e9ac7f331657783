"""DataDirLock: one writer per data dir, enforced by an exclusive flock.

The daemon holds the lock for its whole life; a CLI command holds it for one command
when no daemon runs. The holder writes who it is (role, pid, host, start time and, for
the daemon, the API port once it listens) into the lock file, so a process that cannot
get the lock can name the holder or find the daemon's API. The OS drops the lock when
the holder dies, even on kill -9.

The info is written in place over a fixed-size block (INFO_SIZE bytes, padded with
spaces) that is allocated once, when the file is made: rewriting it needs no new disk
space, so the lock still works on a full disk (every read command takes it). Nothing
ever truncates the file; a released lock is a block of spaces (no holder).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from .atomic_file import storage_error
from .clock import utc_now
from .errors import DataDirMissingError, LockHeldError, StorageError

__all__ = ["INFO_SIZE", "LOCK_FILE", "DataDirLock", "read_holder"]

LOCK_FILE = "scheduler.lock"
INFO_SIZE = 1024
"""Bytes kept for the holder's info (a few hundred are used)."""

logger = logging.getLogger(__name__)


def read_holder(data_dir: Path | str) -> dict[str, Any] | None:
    """What the lock file says about its holder, or None if it is empty or unreadable."""
    try:
        text = (Path(data_dir) / LOCK_FILE).read_text(encoding="utf-8")
        holder = json.loads(text)
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


class DataDirLock:
    """An exclusive lock on ``data_dir``; use ``acquire``/``release`` or ``with``.

    :param data_dir: the data dir (created if missing, unless ``create`` is False).
    :param role: who takes it ("daemon" or "cli"), written for others to read.
    :param create: make the data dir if it does not exist; False (a command that only
        reads) raises DataDirMissingError instead.
    """

    def __init__(self, data_dir: Path | str, role: str, *, create: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_FILE
        self.role = role
        self.create = create
        self._fd: int | None = None
        self._info: dict[str, Any] = {}
        self.info_written = False
        """Whether the holder's info reached the file (it may not on a full disk)."""

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; return whether it was taken."""
        if self._fd is not None:
            return True
        if not self.create and not self.data_dir.is_dir():
            raise DataDirMissingError(str(self.data_dir))
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                if exc.errno not in (errno.EROFS, errno.EACCES) or not self.path.exists():
                    raise
                # a read-only data dir: the lock still excludes (flock needs no write access);
                # a write under it will fail and say so
                fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise storage_error("create the lock file", self.data_dir, exc) from exc
            raise StorageError(f"cannot open lock file {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        self._info = {
            "role": self.role,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": utc_now().isoformat(),
        }
        try:
            self._write_info()
        except OSError as exc:  # a full disk: the lock holds all the same, only unnamed
            logger.log(
                logging.WARNING if self.role == "daemon" else logging.INFO,
                "cannot write the lock holder's info: %s", exc.strerror or exc,
                extra={"path": str(self.path)},
            )
        return True

    def acquire(self, *, wait_seconds: float = 0.0) -> None:
        """Take the lock, waiting up to ``wait_seconds``; raise LockHeldError naming the holder."""
        deadline = time.monotonic() + wait_seconds
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise LockHeldError(str(self.data_dir), read_holder(self.data_dir))
            time.sleep(0.01)

    def update(self, **info: Any) -> None:
        """Add facts for others to read (e.g. ``api_port``, ``ready``)."""
        if self._fd is None:
            raise RuntimeError("update() needs the lock: call acquire() first")
        self._info.update(info)
        try:
            self._write_info()
        except OSError as exc:
            raise storage_error("write the lock file's holder info", self.data_dir, exc) from exc

    def _write_info(self) -> None:
        """Write the info over the block, padded with spaces (allocating it the first time)."""
        fd = self._fd
        if fd is None:
            raise RuntimeError("the lock is not held")
        self.info_written = False
        data = json.dumps(self._info).encode("utf-8")
        if os.fstat(fd).st_size < INFO_SIZE:  # a new file (or one an older version emptied)
            os.posix_fallocate(fd, 0, INFO_SIZE)
        os.pwrite(fd, data.ljust(INFO_SIZE), 0)
        self.info_written = True

    def release(self) -> None:
        """Drop the lock (the file stays; only the flock matters), its info blanked."""
        if self._fd is None:
            return
        try:
            if self.info_written:  # overwrite in place: no space needed, nothing truncated
                with contextlib.suppress(OSError):
                    os.pwrite(self._fd, b" " * INFO_SIZE, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None
            self.info_written = False

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
