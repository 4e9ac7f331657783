"""DataDirLock: one holder at a time, who holds it is readable, released on exit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.scheduler.errors import LockHeldError
from services.scheduler.lock import DataDirLock, read_holder


def test_second_holder_is_refused_with_the_holder_named(data_dir: Path) -> None:
    first = DataDirLock(data_dir, "daemon")
    first.acquire()
    first.update(api_port=1234, ready=True)
    holder = read_holder(data_dir)
    assert holder["pid"] == os.getpid() and holder["api_port"] == 1234 and holder["role"] == "daemon"
    second = DataDirLock(data_dir, "cli")
    assert not second.try_acquire()
    with pytest.raises(LockHeldError, match=rf"is locked by daemon pid {os.getpid()} on "):
        second.acquire(wait_seconds=0.05)
    first.release()
    assert read_holder(data_dir) is None
    with second:
        assert second.held and read_holder(data_dir)["role"] == "cli"
    assert not second.held


def test_update_without_the_lock_is_an_error(data_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="call acquire"):
        DataDirLock(data_dir, "cli").update(ready=True)
