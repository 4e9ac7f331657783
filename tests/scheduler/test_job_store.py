"""JobStore: the storage seam. A store that keeps the protocol's contract drives the manager
and the scheduler as the daily files do."""

from __future__ import annotations

import inspect
from datetime import date
from pathlib import Path

import pytest

from services.scheduler.clock import load_timezone
from services.scheduler.errors import StorageError
from services.scheduler.job_manager import JobManager
from services.scheduler.job_store import JobStore
from services.scheduler.models import JobPriority, JobStatus, ScheduledJob
from services.scheduler.scheduler import Scheduler
from services.scheduler.storage import JobStorage


class MemoryStore:
    """The least a JobStore can be: the table in memory, a flush that only counts.

    ``durable`` is what a restart would see; ``refuse`` makes the next flushes fail.
    """

    def __init__(self) -> None:
        self.jobs: dict[str, ScheduledJob] = {}
        self.write_failure: str | None = None
        self.durable: dict[str, ScheduledJob] = {}
        self.flushes = 0
        self.refuse = False
        self._pending: set[str] = set()

    def load(self) -> dict[str, ScheduledJob]:
        self.jobs.clear()
        self.jobs.update(self.durable)
        return self.jobs

    def put(self, job: ScheduledJob) -> None:
        self.jobs[job.job_id] = job
        self._pending.add(job.job_id)

    def delete(self, job_id: str) -> ScheduledJob | None:
        self._pending.add(job_id)
        return self.jobs.pop(job_id, None)

    def flush(self) -> int:
        if not self._pending:  # nothing to write: as the files, no write is tried
            return 0
        if self.refuse:
            self.write_failure = "refused"
            raise StorageError("the store refuses writes", disk_changed=False)
        written = len(self._pending)
        for job_id in self._pending:
            if job_id in self.jobs:
                self.durable[job_id] = self.jobs[job_id]
            else:
                self.durable.pop(job_id, None)
        self._pending.clear()
        self.flushes += 1
        self.write_failure = None
        return written

    async def flush_async(self) -> int:
        return self.flush()

    def probe_write(self) -> None:
        if self.refuse:
            raise StorageError("the store refuses writes", disk_changed=False)
        self.write_failure = None

    @property
    def pending_days(self) -> frozenset[date]:
        return frozenset(job.scheduled_time.date() for i in self._pending if (job := self.jobs.get(i)))


def _members(cls: type) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_")} | set(cls.__annotations__)


def test_both_stores_satisfy_the_protocol(tmp_path: Path) -> None:
    assert isinstance(MemoryStore(), JobStore)
    assert isinstance(JobStorage(tmp_path, load_timezone("UTC")), JobStore)
    assert not isinstance(object(), JobStore)


def test_the_protocol_names_what_the_scheduler_uses_and_no_more() -> None:
    assert _members(JobStore) == {
        "jobs", "write_failure", "load", "put", "delete", "flush", "flush_async", "probe_write", "pending_days",
    }


@pytest.mark.parametrize("name", ["load", "put", "delete", "flush", "flush_async", "probe_write"])
def test_the_files_implement_each_method_with_the_protocols_signature(name: str) -> None:
    ours, theirs = getattr(JobStore, name), getattr(JobStorage, name)
    assert inspect.signature(ours) == inspect.signature(theirs)
    assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(theirs)


def test_a_memory_store_drives_add_commit_and_list(clock) -> None:
    store = MemoryStore()
    manager = JobManager(store, clock=clock, kinds={"log"})
    assert manager.load() == 0
    low = manager.add_job("acc", "thấp", priority=JobPriority.LOW)
    high = manager.add_job("acc", "cao", priority="high")
    manager.add_job("other", "x")
    assert store.durable.keys() == store.jobs.keys() == {job.job_id for job in manager.list_jobs()}
    assert [job.job_id for job in manager.list_jobs("acc")] == [high.job_id, low.job_id]
    assert manager.list_jobs(status="scheduled")[0].status is JobStatus.SCHEDULED

    changed = manager.cleanup_expired_jobs(clock.advance(days=2))  # a change made in memory ...
    assert len(changed) == 3 and store.pending_days
    manager.commit()  # ... is durable at commit
    assert not store.pending_days
    assert {job.status for job in store.durable.values()} == {JobStatus.EXPIRED}

    again = JobManager(store, clock=clock)  # a restart reads what was flushed
    assert again.load() == 3 and again.get_job(high.job_id).status is JobStatus.EXPIRED


async def test_a_memory_store_drives_the_async_add_and_remove(clock) -> None:
    store = MemoryStore()
    manager = JobManager(store, clock=clock)
    manager.load()
    job = await manager.add_job_async("acc", "Chương 1", job_id="chapter-1")
    assert store.durable == {"chapter-1": job}
    assert await manager.add_job_async("acc", "Chương 1", job_id="chapter-1") is job  # a repeat
    await manager.remove_job_async("chapter-1")
    assert store.durable == {} and manager.list_jobs() == []


def test_a_refusing_store_leaves_the_table_as_it_was(clock) -> None:
    store = MemoryStore()
    manager = JobManager(store, clock=clock)
    manager.load()
    kept = manager.add_job("acc", "kept")
    store.refuse = True
    with pytest.raises(StorageError, match="the job was not added; nothing was changed"):
        manager.add_job("acc", "refused")
    assert list(store.jobs) == [kept.job_id] and store.write_failure == "refused"


async def test_a_scheduler_runs_on_an_injected_store(data_dir: Path, registry) -> None:
    store = MemoryStore()
    scheduler = Scheduler(data_dir, registry=registry, store=store)
    assert scheduler.storage is store and scheduler.manager.storage is store
    scheduler.load()
    job = scheduler.add_job("acc", "Xin chào")
    await scheduler.run_once()
    assert store.durable[job.job_id].status is JobStatus.COMPLETED
    assert not (data_dir / "jobs").exists()  # the daily files were never touched (audit/ holds the audit trail)
