"""JobManager: validated adds, filters and order, ready selection, expiry, removal."""

from __future__ import annotations

import errno
import inspect
from datetime import timedelta
from pathlib import Path

import pytest

from services.scheduler import storage as storage_module
from services.scheduler import transitions
from services.scheduler.atomic_file import fsync_dir as real_fsync_dir
from services.scheduler.clock import load_timezone
from services.scheduler.errors import JobConflictError, JobNotFoundError, JobValidationError, StorageError
from services.scheduler.job_manager import JobManager
from services.scheduler.models import JobPriority, JobStatus
from services.scheduler.storage import JobStorage


@pytest.fixture
def manager(data_dir: Path, clock) -> JobManager:
    made = JobManager(JobStorage(data_dir, load_timezone("Asia/Ho_Chi_Minh")), clock=clock, kinds={"log"})
    made.load()
    return made


def test_add_job_is_durable_before_it_returns(manager: JobManager, data_dir: Path, clock) -> None:
    job = manager.add_job("acc", "Xin chào")
    assert job.status is JobStatus.SCHEDULED and job.scheduled_time == clock.now
    reloaded = JobManager(JobStorage(data_dir, manager.storage.zone), clock=clock)
    reloaded.load()
    assert reloaded.get_job(job.job_id) == job


@pytest.mark.parametrize(
    ("offset", "ok"),
    [(timedelta(days=365), True), (timedelta(days=365, microseconds=1), False),
     (-timedelta(days=365), True), (-timedelta(days=365, microseconds=1), False)],
    ids=["+1y", "+1y+1us", "-1y", "-1y-1us"],
)
def test_add_job_schedule_window(manager: JobManager, clock, offset, ok) -> None:
    if ok:
        manager.add_job("acc", "x", clock.now + offset)
    else:
        with pytest.raises(JobValidationError, match="^scheduled_time: must be within 1 year"):
            manager.add_job("acc", "x", clock.now + offset)


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (("", "x"), {}, "account_id"),
        (("acc", "x" * 501), {}, "content"),
        (("acc", "x", None, 9), {}, "priority"),
        (("acc", "x", None, 2, -1), {}, "max_retries"),
        (("acc", "x"), {"kind": "rm -rf"}, "kind"),
    ],
)
def test_rejected_add_changes_nothing(manager: JobManager, data_dir: Path, args, kwargs, field) -> None:
    with pytest.raises(JobValidationError) as caught:
        manager.add_job(*args, **kwargs)
    assert caught.value.field == field
    assert manager.jobs == {}
    assert not (data_dir / "jobs").exists() or not list((data_dir / "jobs").iterdir())


def test_duplicate_job_id_conflicts(manager: JobManager) -> None:
    manager.add_job("acc", "x", job_id="fixed")
    with pytest.raises(JobConflictError):
        manager.add_job("acc", "y", job_id="fixed")


def test_list_orders_by_priority_then_time_and_filters(manager: JobManager, clock) -> None:
    t = clock.now
    low = manager.add_job("a", "low", t, JobPriority.LOW)
    urgent_late = manager.add_job("a", "urgent late", t + timedelta(hours=2), JobPriority.URGENT)
    urgent_early = manager.add_job("b", "urgent early", t + timedelta(hours=1), JobPriority.URGENT)
    normal = manager.add_job("b", "normal", t, "normal")
    assert [j.content for j in manager.list_jobs()] == [
        urgent_early.content, urgent_late.content, normal.content, low.content
    ]
    assert [j.content for j in manager.list_jobs(account_id="b")] == ["urgent early", "normal"]
    assert manager.list_jobs(status="completed") == []
    assert len(manager.list_jobs(status="SCHEDULED")) == 4
    with pytest.raises(JobValidationError, match="^status: must be one of"):
        manager.list_jobs(status="done")


def test_ready_jobs_come_by_priority_then_scheduled_time(manager: JobManager, clock) -> None:
    t = clock.now
    manager.add_job("a", "normal old", t - timedelta(minutes=10), "normal")
    manager.add_job("a", "high new", t - timedelta(minutes=1), "high")
    manager.add_job("a", "high old", t - timedelta(minutes=5), "high")
    manager.add_job("a", "future urgent", t + timedelta(minutes=1), "urgent")
    assert [j.content for j in manager.get_ready_jobs(t)] == ["high old", "high new", "normal old"]
    taken = [manager.pop_next_ready(t).content for _ in range(3)]
    assert taken == ["high old", "high new", "normal old"]
    assert manager.pop_next_ready(t) is None
    assert manager.pop_next_ready(t + timedelta(minutes=1)).content == "future urgent"


def test_rescheduled_job_is_not_dispatched_twice(manager: JobManager, clock) -> None:
    job = manager.add_job("a", "x", clock.now)
    popped = manager.pop_next_ready(clock.now)
    manager.save(transitions.failed(transitions.started(popped, clock.now), clock.now, "boom"))
    assert manager.pop_next_ready(clock.now) is None
    later = clock.now + timedelta(minutes=2)
    assert manager.pop_next_ready(later).job_id == job.job_id
    assert manager.pop_next_ready(later) is None


def test_cleanup_expires_jobs_more_than_24h_late(manager: JobManager, clock) -> None:
    t = clock.now
    old = manager.add_job("a", "old", t - timedelta(hours=24, seconds=1))
    edge = manager.add_job("a", "edge", t - timedelta(hours=24))
    expired = manager.cleanup_expired_jobs(t)
    assert [j.job_id for j in expired] == [old.job_id]
    assert manager.get_job(old.job_id).status is JobStatus.EXPIRED
    assert manager.get_job(edge.job_id).status is JobStatus.SCHEDULED
    assert [j.job_id for j in manager.get_ready_jobs(t)] == [edge.job_id]


def test_remove(manager: JobManager, clock) -> None:
    job = manager.add_job("a", "x")
    assert manager.remove_job(job.job_id).job_id == job.job_id
    with pytest.raises(JobNotFoundError, match=f"^job not found: {job.job_id}$"):
        manager.remove_job(job.job_id)
    assert manager.pop_next_ready(clock.now) is None


def test_running_job_cannot_be_removed(manager: JobManager, clock) -> None:
    job = manager.add_job("a", "x")
    manager.save(transitions.started(job, clock.now))
    with pytest.raises(JobConflictError, match="job is running"):
        manager.remove_job(job.job_id)


def test_next_wake_time_is_the_earliest_due(manager: JobManager, clock) -> None:
    assert manager.next_wake_time() is None
    manager.add_job("a", "x", clock.now + timedelta(minutes=5))
    manager.add_job("a", "y", clock.now + timedelta(minutes=3))
    assert manager.next_wake_time() == clock.now + timedelta(minutes=3)


def test_an_add_refused_because_earlier_changes_cannot_be_written_changes_nothing(
    manager: JobManager, clock, data_dir
) -> None:
    import os

    from services.scheduler.errors import StorageError

    manager.add_job("a", "existing", clock.now)
    # an earlier change whose day cannot be written (a directory blocks its temp file)
    blocked = manager.add_job("a", "other day", clock.now + timedelta(days=3))
    manager.save(blocked.model_copy(update={"content": "edited"}))
    blocker = data_dir / "jobs" / f".jobs_2026-11-26.json.{os.getpid()}.tmp"
    blocker.mkdir()
    before = sorted(p.name for p in (data_dir / "jobs").glob("jobs_*.json"))
    snapshot = {p.name: p.read_bytes() for p in (data_dir / "jobs").glob("jobs_*.json")}
    with pytest.raises(StorageError):
        manager.add_job("a", "new", clock.now + timedelta(days=1))
    assert [j.content for j in manager.list_jobs() if j.content == "new"] == []
    assert sorted(p.name for p in (data_dir / "jobs").glob("jobs_*.json")) == before
    assert {p.name: p.read_bytes() for p in (data_dir / "jobs").glob("jobs_*.json")} == snapshot
    blocker.rmdir()


# -- a commit that fails after its file reached the disk: the rollback -----------------------


class FsyncFailsOnce:
    """``fsync_dir`` for the storage: fails once, on the first fsync after ``reached(files)``.

    The change is then in the day file (it was replaced) but not known to be durable, the
    way a failing disk reports it; the manager must undo it in memory and on disk.
    """

    def __init__(self, jobs_dir: Path, reached) -> None:
        self.jobs_dir, self.reached, self.failed = jobs_dir, reached, 0

    def __call__(self, folder: Path) -> None:
        real_fsync_dir(folder)
        files = b"".join(path.read_bytes() for path in sorted(self.jobs_dir.glob("jobs_*.json")))
        if not self.failed and self.reached(files):
            self.failed += 1
            raise OSError(errno.EIO, "Input/output error (injected)")


def disk(data_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((data_dir / "jobs").glob("jobs_*.json"))}


def on_disk(data_dir: Path) -> dict[str, str]:
    """job id -> content, as a fresh process would load it."""
    return {job_id: job.content for job_id, job in JobStorage(data_dir, load_timezone("Asia/Ho_Chi_Minh")).load().items()}


async def call(operation, *args, **kwargs):
    result = operation(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result


@pytest.mark.parametrize("name", ["add_job", "add_job_async"])
async def test_an_add_whose_own_write_fails_is_rolled_back_in_memory_and_on_disk(
    manager: JobManager, clock, data_dir: Path, monkeypatch, name: str
) -> None:
    existing = manager.add_job("a", "existing", clock.now)
    other = manager.add_job("a", "other day", clock.now + timedelta(days=3))
    manager.save(other.model_copy(update={"content": "edited"}))  # an earlier change, not yet on disk
    before = disk(data_dir)
    fault = FsyncFailsOnce(data_dir / "jobs", lambda files: "Chương mới".encode() in files)
    monkeypatch.setattr(storage_module, "fsync_dir", fault)
    with pytest.raises(StorageError, match="the job was not added; nothing was changed"):
        await call(getattr(manager, name), "a", "Chương mới", clock.now, job_id="new-job")
    assert fault.failed == 1  # the failure was this job's own write, after its file changed
    # memory: as before the call, with the earlier change kept
    assert {job_id: job.content for job_id, job in manager.jobs.items()} == {
        existing.job_id: "existing", other.job_id: "edited"
    }
    assert [job.job_id for job in manager.get_ready_jobs(clock.now)] == [existing.job_id]
    # disk: the day the add touched is back as it was; the earlier change is durable
    after = disk(data_dir)
    assert after["jobs_2026-11-23.json"] == before["jobs_2026-11-23.json"]
    assert on_disk(data_dir) == {existing.job_id: "existing", other.job_id: "edited"}
    # and the manager goes on: the same add now succeeds
    await call(getattr(manager, name), "a", "Chương mới", clock.now, job_id="new-job")
    assert on_disk(data_dir)["new-job"] == "Chương mới"


@pytest.mark.parametrize("name", ["remove_job", "remove_job_async"])
async def test_a_remove_whose_own_write_fails_is_rolled_back_in_memory_and_on_disk(
    manager: JobManager, clock, data_dir: Path, monkeypatch, name: str
) -> None:
    kept = manager.add_job("a", "kept", clock.now)
    doomed = manager.add_job("a", "doomed", clock.now - timedelta(minutes=1), job_id="doomed-job")
    other = manager.add_job("a", "other day", clock.now + timedelta(days=3))
    manager.save(other.model_copy(update={"content": "edited"}))  # an earlier change, not yet on disk
    before = disk(data_dir)
    fault = FsyncFailsOnce(data_dir / "jobs", lambda files: b'"doomed-job"' not in files)
    monkeypatch.setattr(storage_module, "fsync_dir", fault)
    with pytest.raises(StorageError, match="the job was not removed; nothing was changed"):
        await call(getattr(manager, name), doomed.job_id)
    assert fault.failed == 1  # the failure was this removal's own write, after its file changed
    assert manager.get_job(doomed.job_id) == doomed
    assert [job.job_id for job in manager.get_ready_jobs(clock.now)] == [doomed.job_id, kept.job_id]
    after = disk(data_dir)
    assert after["jobs_2026-11-23.json"] == before["jobs_2026-11-23.json"]
    assert on_disk(data_dir) == {kept.job_id: "kept", doomed.job_id: "doomed", other.job_id: "edited"}
    await call(getattr(manager, name), doomed.job_id)
    assert doomed.job_id not in on_disk(data_dir)
