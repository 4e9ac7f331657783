"""Scheduler's typed views for code built on it: ``jobs_snapshot`` and ``update_fields``."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from services.scheduler.errors import JobNotFoundError, JobValidationError
from services.scheduler.handlers import HandlerRegistry
from services.scheduler.models import ScheduledJob
from services.scheduler.scheduler import Scheduler


@pytest.fixture
def registry() -> HandlerRegistry:
    async def nothing(job: ScheduledJob) -> None:
        return None

    made = HandlerRegistry()
    for kind in ("log", "video"):
        made.register(kind, nothing)
    return made


def test_jobs_snapshot_is_a_copy_filtered_by_kind(make_scheduler) -> None:
    scheduler: Scheduler = make_scheduler()
    log = scheduler.add_job("a", "x", kind="log")
    video = scheduler.add_job("a", "y", kind="video")
    everything = scheduler.jobs_snapshot()
    assert sorted(job.job_id for job in everything) == sorted((log.job_id, video.job_id))
    assert scheduler.jobs_snapshot("video") == [video] and scheduler.jobs_snapshot("other") == []
    later = scheduler.add_job("a", "z", kind="log")
    everything.clear()
    assert len(scheduler.manager.jobs) == 3  # the table is not the list handed out
    assert later not in scheduler.jobs_snapshot("video")


def test_jobs_snapshot_from_another_thread_while_the_table_changes(make_scheduler, clock) -> None:
    scheduler: Scheduler = make_scheduler(clock=clock)
    stop = threading.Event()
    sizes: list[int] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                sizes.append(len(scheduler.jobs_snapshot("log")))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    reader = threading.Thread(target=read, name="snapshot-reader")
    reader.start()
    try:
        for i in range(3000):  # in memory only: each one grows the dict, resizing it now and then
            scheduler.manager.save(ScheduledJob(account_id="a", content=f"j{i}", scheduled_time=clock.now))
    finally:
        stop.set()
        reader.join()
    assert errors == [] and sizes == sorted(sizes)
    assert len(scheduler.jobs_snapshot("log")) == 3000


async def test_update_fields_merges_and_saves_durably(make_scheduler, data_dir: Path) -> None:
    scheduler: Scheduler = make_scheduler()
    job = scheduler.add_job("a", "x", kind="video")
    updated = await scheduler.update_fields(job.job_id, {"stage": "fetching", "pipeline": {"state": "Fetch"}})
    assert updated.model_extra == {"stage": "fetching", "pipeline": {"state": "Fetch"}}
    assert scheduler.get_job(job.job_id) is updated and updated.status is job.status
    reloaded = Scheduler(data_dir, registry=scheduler.registry)
    reloaded.load()
    assert reloaded.get_job(job.job_id).model_extra == updated.model_extra


async def test_update_fields_refuses_the_schedulers_own_fields_and_unknown_jobs(make_scheduler) -> None:
    scheduler: Scheduler = make_scheduler()
    job = scheduler.add_job("a", "x")
    with pytest.raises(JobValidationError, match="^status: is managed by the scheduler and cannot be set here$"):
        await scheduler.update_fields(job.job_id, {"status": "completed", "stage": "x"})
    with pytest.raises(JobNotFoundError, match="^job not found: nope$"):
        await scheduler.update_fields("nope", {"stage": "x"})
    assert scheduler.get_job(job.job_id) == job


async def test_a_worker_thread_reads_and_updates_through_the_loop(make_scheduler) -> None:
    scheduler: Scheduler = make_scheduler()
    job = scheduler.add_job("a", "x", kind="video")
    loop = asyncio.get_running_loop()

    def stage() -> ScheduledJob:  # as a pipeline stage run by asyncio.to_thread does
        seen = scheduler.jobs_snapshot("video")
        assert [j.job_id for j in seen] == [job.job_id]
        return asyncio.run_coroutine_threadsafe(scheduler.update_fields(job.job_id, {"stage": "tts"}), loop).result()

    updated = await asyncio.to_thread(stage)
    assert scheduler.get_job(job.job_id).model_extra == {"stage": "tts"} == updated.model_extra


async def test_store_job_saves_a_whole_record_durably_and_find_job_finds_it(make_scheduler, data_dir: Path) -> None:
    scheduler: Scheduler = make_scheduler()
    assert scheduler.find_job("nope") is None
    made = scheduler.add_job("a", "x", kind="log")
    # an extension's own field ("stage") is kept as it is
    record = ScheduledJob.model_validate({**made.model_dump(), "content": "y", "stage": "fetching"})
    await scheduler.store_job(record)
    assert scheduler.find_job(made.job_id).content == "y"
    again = Scheduler(data_dir, registry=scheduler.registry)
    again.load()
    stored = again.get_job(made.job_id)
    assert stored.content == "y" and stored.model_extra["stage"] == "fetching"


def test_read_jobs_reads_a_data_dir_without_changing_it(data_dir: Path) -> None:
    from services.scheduler.cli import read_jobs
    from services.scheduler.settings import Settings

    scheduler = Scheduler(data_dir)
    scheduler.load()
    job = scheduler.add_job("a", "x", kind="log")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (data_dir / "jobs").iterdir())
    assert [j.job_id for j in read_jobs(Settings.from_env({}, data_dir=str(data_dir)))] == [job.job_id]
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (data_dir / "jobs").iterdir()) == before
