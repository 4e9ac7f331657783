"""The storage's writer thread: the event loop never waits for a disk write, and a write
acknowledged to a caller is on disk, even when an earlier write failed or the caller was
cancelled."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from services.scheduler import storage as storage_module
from services.scheduler.clock import load_timezone
from services.scheduler.errors import JobNotFoundError, StorageError
from services.scheduler.job_manager import JobManager
from services.scheduler.models import ScheduledJob
from services.scheduler.storage import JobStorage

NOW = datetime(2026, 11, 23, 5, 0, tzinfo=timezone.utc)


def make(job_id: str, content: str = "Xin chào") -> ScheduledJob:
    return ScheduledJob(job_id=job_id, account_id="acc", content=content, scheduled_time=NOW,
                        created_at=NOW, updated_at=NOW)


def on_disk(data_dir: Path) -> set[str]:
    return set(JobStorage(data_dir, load_timezone("Asia/Ho_Chi_Minh")).load())


class Gate:
    """Stands in for ``_put_file``: holds every write until opened; can fail the next ones."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.entered = threading.Event()
        self.failures = 0
        self.real = storage_module._put_file

    def __call__(self, path: Path, data: bytes | None) -> int:
        self.entered.set()
        if not self.opened.wait(timeout=10):
            raise AssertionError("the gate was never opened: the event loop was blocked")
        if self.failures:
            self.failures -= 1
            raise OSError("simulated disk error")
        return self.real(path, data)


@pytest.fixture
def gate(monkeypatch) -> Gate:
    made = Gate()
    monkeypatch.setattr(storage_module, "_put_file", made)
    return made


@pytest.fixture
def store(data_dir: Path) -> JobStorage:
    made = JobStorage(data_dir, load_timezone("Asia/Ho_Chi_Minh"))
    made.load()
    return made


async def wait_for(event: threading.Event) -> None:
    for _ in range(1000):
        if event.is_set():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the writer thread never started the write")


async def test_the_loop_runs_while_a_write_is_held(store: JobStorage, gate: Gate, data_dir: Path) -> None:
    store.put(make("a"))
    flushing = asyncio.create_task(store.flush_async())
    await wait_for(gate.entered)  # the writer holds the write; this coroutine still runs
    ticks = 0
    for _ in range(5):
        await asyncio.sleep(0)
        ticks += 1
    assert ticks == 5 and not flushing.done()
    assert on_disk(data_dir) == set()
    gate.opened.set()
    assert await flushing == 1
    assert on_disk(data_dir) == {"a"}


async def test_a_flush_waits_for_earlier_writes_it_did_not_take(
    store: JobStorage, gate: Gate, data_dir: Path
) -> None:
    store.put(make("a"))
    first = asyncio.create_task(store.flush_async())
    await wait_for(gate.entered)
    second = asyncio.create_task(store.flush_async())  # nothing dirty: waits for the first
    await asyncio.sleep(0.01)
    assert not second.done()
    gate.opened.set()
    await asyncio.gather(first, second)
    assert on_disk(data_dir) == {"a"}


async def test_a_failed_earlier_write_is_written_again_by_the_next_flush(
    store: JobStorage, gate: Gate, data_dir: Path
) -> None:
    store.put(make("a"))
    first = asyncio.create_task(store.flush_async())
    await wait_for(gate.entered)
    second = asyncio.create_task(store.flush_async())
    await asyncio.sleep(0)
    gate.failures = 1
    gate.opened.set()
    with pytest.raises(StorageError, match="simulated disk error"):
        await first
    await second  # re-wrote the day the first one failed to write
    assert on_disk(data_dir) == {"a"}
    assert store.pending_days == frozenset()


async def test_a_flush_that_keeps_failing_raises_and_keeps_the_day_dirty(
    store: JobStorage, gate: Gate, data_dir: Path
) -> None:
    store.put(make("a"))
    gate.failures = 100
    gate.opened.set()
    with pytest.raises(StorageError):
        await store.flush_async()
    assert store.pending_days and on_disk(data_dir) == set()
    gate.failures = 0
    await store.flush_async()
    assert on_disk(data_dir) == {"a"}


async def test_cancelling_the_caller_does_not_cancel_its_write(
    store: JobStorage, gate: Gate, data_dir: Path
) -> None:
    store.put(make("a"))
    flushing = asyncio.create_task(store.flush_async())
    await wait_for(gate.entered)
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    gate.opened.set()
    await store.flush_async()  # waits for the write the cancelled caller handed over
    assert on_disk(data_dir) == {"a"}


def test_sync_and_async_flushes_share_one_ordered_writer(store: JobStorage, data_dir: Path) -> None:
    async def writes() -> None:
        for i in range(20):
            store.put(make("a", f"version {i}"))
            if i % 2:
                await store.flush_async()
            else:
                store.flush()

    asyncio.run(writes())
    reloaded = JobStorage(data_dir, store.zone)
    assert reloaded.load()["a"].content == "version 19"


async def test_an_added_job_cannot_run_before_it_is_on_disk(data_dir: Path, gate: Gate) -> None:
    manager = JobManager(JobStorage(data_dir, load_timezone("Asia/Ho_Chi_Minh")), clock=lambda: NOW)
    manager.load()
    adding = asyncio.create_task(manager.add_job_async("acc", "Chương 1"))
    await wait_for(gate.entered)
    assert manager.get_ready_jobs(NOW) == []
    gate.opened.set()
    job = await adding
    assert [j.job_id for j in manager.get_ready_jobs(NOW)] == [job.job_id]
    assert on_disk(data_dir) == {job.job_id}


async def test_a_failed_async_add_changes_nothing(data_dir: Path, gate: Gate) -> None:
    manager = JobManager(JobStorage(data_dir, load_timezone("Asia/Ho_Chi_Minh")), clock=lambda: NOW)
    manager.load()
    gate.failures = 1
    gate.opened.set()
    with pytest.raises(StorageError):
        await manager.add_job_async("acc", "Chương 1")
    assert manager.list_jobs() == [] and manager.get_ready_jobs(NOW) == []
    assert on_disk(data_dir) == set()


async def test_async_remove_is_durable_and_refuses_a_missing_job(data_dir: Path) -> None:
    manager = JobManager(JobStorage(data_dir, load_timezone("Asia/Ho_Chi_Minh")), clock=lambda: NOW)
    manager.load()
    job = await manager.add_job_async("acc", "Chương 1")
    await manager.remove_job_async(job.job_id)
    assert on_disk(data_dir) == set()
    with pytest.raises(JobNotFoundError):
        await manager.remove_job_async(job.job_id)


async def test_flushes_that_arrive_during_a_write_share_the_next_one(
    store: JobStorage, gate: Gate, data_dir: Path, monkeypatch
) -> None:
    """Group commit: changes made while a write is on the disk go out together in one
    write, not one rewrite of the day each (what kept a burst of triggers slow)."""
    writes = []
    real_write = store._write
    monkeypatch.setattr(store, "_write", lambda snapshot: writes.append(snapshot) or real_write(snapshot))
    store.put(make("a"))
    first = asyncio.create_task(store.flush_async())
    await wait_for(gate.entered)
    later = []
    for name in ("b", "c", "d", "e"):
        store.put(make(name))
        later.append(asyncio.create_task(store.flush_async()))
        await asyncio.sleep(0)
    gate.opened.set()
    await asyncio.gather(first, *later)
    assert len([w for w in writes if w is not None]) == 2
    assert on_disk(data_dir) == {"a", "b", "c", "d", "e"}
    assert store.pending_days == frozenset()


async def test_a_flush_waiting_behind_a_failed_write_writes_its_own_change(
    store: JobStorage, gate: Gate, data_dir: Path
) -> None:
    store.put(make("a"))
    first = asyncio.create_task(store.flush_async())
    await wait_for(gate.entered)
    store.put(make("b"))
    second = asyncio.create_task(store.flush_async())
    await asyncio.sleep(0)
    gate.failures = 1
    gate.opened.set()
    with pytest.raises(StorageError, match="simulated disk error"):
        await first
    await second
    assert on_disk(data_dir) == {"a", "b"}
