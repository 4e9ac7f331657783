"""DataDirLock: one writer per data dir, enforced by an exclusive flock.

The daemon holds the lock for its whole life; a CLI command holds it for one command
when no daemon runs. The holder writes who it is (role, pid, host, start time and, for
the daemon, the API port once it listens) into the lock file, so a process that cannot
get the lock can name the holder or find the daemon's API. The OS drops the lock when
the holder dies, even on kill -9.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from .clock import utc_now
from .errors import LockHeldError, StorageError

__all__ = ["LOCK_FILE", "DataDirLock", "read_holder"]

LOCK_FILE = "scheduler.lock"


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

    :param data_dir: the data dir (created if missing).
    :param role: who takes it ("daemon" or "cli"), written for others to read.
    """

    def __init__(self, data_dir: Path | str, role: str) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_FILE
        self.role = role
        self._fd: int | None = None
        self._info: dict[str, Any] = {}

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; return whether it was taken."""
        if self._fd is not None:
            return True
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot open lock file {self.path}: {exc}") from exc
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
        self._write_info()
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
        self._write_info()

    def _write_info(self) -> None:
        assert self._fd is not None  # callers hold the lock
        data = json.dumps(self._info).encode("utf-8")
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        """Drop the lock (the file stays; only the flock matters)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
