"""JobExecutor and Scheduler lifecycle: runs, retries, order, concurrency, recovery, stop."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from services.scheduler.clock import utc_now
from services.scheduler.handlers import HandlerRegistry, PermanentFailure, Reschedule
from services.scheduler.models import JobStatus, ScheduledJob
from services.scheduler.scheduler import RunState, Scheduler


def registry_with(**handlers) -> HandlerRegistry:
    registry = HandlerRegistry()
    for kind, (func, limit) in handlers.items():
        registry.register(kind, func, max_running_minutes=limit)
    return registry


async def ok(job: ScheduledJob) -> dict:
    return {"echo": job.content}


async def boom(job: ScheduledJob) -> dict:
    raise RuntimeError("renderer exploded")


def on_disk(data_dir: Path, job_id: str) -> dict:
    for path in (data_dir / "jobs").glob("jobs_*.json"):
        jobs = json.loads(path.read_text(encoding="utf-8"))["jobs"]
        if job_id in jobs:
            return jobs[job_id]
    raise AssertionError(f"{job_id} not on disk")


async def test_run_job_success_records_result(data_dir: Path, clock) -> None:
    scheduler = Scheduler(data_dir, registry=registry_with(ok=(ok, 30)), clock=clock)
    scheduler.load()
    job = scheduler.add_job("acc", "Xin chào", kind="ok")
    done = await scheduler.executor.run_job(job)
    assert done.status is JobStatus.COMPLETED
    assert done.result == {"echo": "Xin chào"}
    assert done.started_at == clock.now and done.completed_at == clock.now
    assert on_disk(data_dir, job.job_id)["status"] == "completed"


async def test_failures_retry_with_backoff_then_fail(data_dir: Path, clock) -> None:
    scheduler = Scheduler(data_dir, registry=registry_with(boom=(boom, 30)), clock=clock)
    scheduler.load()
    job = scheduler.add_job("acc", "x", kind="boom", max_retries=3)
    delays = []
    for _ in range(3):
        failed_at = clock.now
        job = await scheduler.executor.run_job(job)
        assert job.status is JobStatus.SCHEDULED
        assert job.error == "RuntimeError: renderer exploded"
        delays.append(job.scheduled_time - failed_at)
        clock.now = job.scheduled_time
    assert delays == [timedelta(minutes=2), timedelta(minutes=4), timedelta(minutes=8)]
    job = await scheduler.executor.run_job(job)
    assert job.status is JobStatus.FAILED and job.retry_count == 3
    assert on_disk(data_dir, job.job_id)["status"] == "failed"


async def test_unknown_kind_fails_clearly_without_retry(data_dir: Path, clock) -> None:
    scheduler = Scheduler(data_dir, registry=registry_with(ok=(ok, 30)), clock=clock)
    scheduler.load()
    job = scheduler.add_job("acc", "x", kind="ok")
    job = job.model_copy(update={"kind": "gone"})  # e.g. a kind removed since the job was added
    done = await scheduler.executor.run_job(job)
    assert done.status is JobStatus.FAILED
    assert done.error == "no handler for kind 'gone' (registered: ok)"


async def test_run_longer_than_the_limit_times_out(data_dir: Path) -> None:
    async def slow(job: ScheduledJob) -> None:
        await asyncio.sleep(10)

    scheduler = Scheduler(data_dir, registry=registry_with(slow=(slow, 0.05 / 60)))
    scheduler.load()
    job = scheduler.add_job("acc", "x", kind="slow")
    done = await scheduler.executor.run_job(job)
    assert done.status is JobStatus.SCHEDULED
    assert done.error.startswith("timed out: running longer than")


async def test_non_json_result_is_a_failure_not_a_crash(data_dir: Path, clock) -> None:
    async def weird(job: ScheduledJob) -> dict:
        return {"obj": object()}

    scheduler = Scheduler(data_dir, registry=registry_with(weird=(weird, 30)), clock=clock)
    scheduler.load()
    done = await scheduler.executor.run_job(scheduler.add_job("acc", "x", kind="weird", max_retries=0))
    assert done.status is JobStatus.FAILED and done.error.startswith("TypeError")


async def test_run_once_runs_due_jobs_by_priority_and_leaves_future_ones(data_dir: Path) -> None:
    order: list[str] = []

    async def record(job: ScheduledJob) -> None:
        order.append(job.content)

    scheduler = Scheduler(data_dir, registry=registry_with(rec=(record, 30)))
    scheduler.load()
    now = utc_now()
    scheduler.add_job("a", "low", now - timedelta(minutes=3), "low", kind="rec")
    scheduler.add_job("a", "urgent", now - timedelta(minutes=1), "urgent", kind="rec")
    scheduler.add_job("a", "high-old", now - timedelta(minutes=2), "high", kind="rec")
    scheduler.add_job("a", "high-new", now - timedelta(seconds=1), "high", kind="rec")
    future = scheduler.add_job("a", "future", now + timedelta(hours=1), "urgent", kind="rec")
    await scheduler.run_once()
    assert order == ["urgent", "high-old", "high-new", "low"]
    assert scheduler.get_job(future.job_id).status is JobStatus.SCHEDULED
    assert scheduler.state is RunState.STOPPED


async def test_max_concurrent_jobs_bounds_overlap(data_dir: Path) -> None:
    active = 0
    peak = 0

    async def busy(job: ScheduledJob) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.02)
        active -= 1

    for limit, expected in ((1, 1), (3, 3)):
        folder = data_dir / str(limit)
        scheduler = Scheduler(folder, registry=registry_with(busy=(busy, 30)), max_concurrent_jobs=limit)
        scheduler.load()
        for i in range(6):
            scheduler.add_job("a", f"j{i}", kind="busy")
        peak = 0
        await scheduler.run_once()
        assert peak == expected
        assert all(j.status is JobStatus.COMPLETED for j in scheduler.list_jobs())


async def test_loop_wakes_when_a_job_is_added_and_sleeps_until_due(data_dir: Path) -> None:
    started: dict[str, object] = {}
    seen = asyncio.Event()

    async def record(job: ScheduledJob) -> None:
        started[job.content] = utc_now()
        if len(started) == 2:
            seen.set()

    scheduler = Scheduler(data_dir, registry=registry_with(rec=(record, 30)))
    scheduler.load()
    await scheduler.start()
    assert scheduler.is_ready
    await asyncio.sleep(0)  # the loop is now asleep with nothing to do
    due = utc_now() + timedelta(milliseconds=150)
    scheduler.add_job("a", "later", due, kind="rec")
    scheduler.add_job("a", "now", kind="rec")
    await asyncio.wait_for(seen.wait(), timeout=5)
    await scheduler.stop()
    assert started["now"] < started["later"]
    assert started["later"] >= due


async def test_start_recovers_jobs_left_running(data_dir: Path, clock) -> None:
    first = Scheduler(data_dir, clock=clock)
    first.load()
    retryable = first.add_job("a", "retry me")
    spent = first.add_job("a", "no retries left", max_retries=0)
    for job in (retryable, spent):
        first.manager.save(job.model_copy(update={"status": JobStatus.RUNNING, "started_at": clock.now}))
    first.manager.commit()  # the process "dies" here with both jobs RUNNING

    clock.advance(minutes=1)
    second = Scheduler(data_dir, clock=clock)
    second.load()
    again = second.get_job(retryable.job_id)
    assert again.status is JobStatus.SCHEDULED and again.retry_count == 1
    assert again.scheduled_time == clock.now + timedelta(minutes=2)
    assert "recovered at start" in again.error
    assert second.get_job(spent.job_id).status is JobStatus.FAILED
    assert on_disk(data_dir, retryable.job_id)["status"] == "scheduled"


def resumable_registry() -> HandlerRegistry:
    made = HandlerRegistry()
    made.register("video", ok, resumable=True)
    return made


async def test_a_resumable_job_left_running_runs_again_at_once_without_a_retry(data_dir: Path, clock) -> None:
    first = Scheduler(data_dir, registry=resumable_registry(), clock=clock)
    first.load()
    job = first.add_job("a", "next", kind="video", max_retries=0)
    first.manager.save(job.model_copy(update={"status": JobStatus.RUNNING, "started_at": clock.now}))
    first.manager.commit()  # the daemon dies mid-run

    clock.advance(minutes=5)
    second = Scheduler(data_dir, registry=resumable_registry(), clock=clock)
    second.load()
    again = second.get_job(job.job_id)
    assert (again.status, again.retry_count, again.scheduled_time) == (JobStatus.SCHEDULED, 0, job.scheduled_time)
    assert "resumed after a restart" in again.error
    assert [j.job_id for j in second.get_ready_jobs()] == [job.job_id]


async def test_a_resumable_job_that_keeps_crashing_the_daemon_spends_its_retries(
    data_dir: Path, clock
) -> None:
    first = Scheduler(data_dir, registry=resumable_registry(), clock=clock)
    first.load()
    job = first.add_job("a", "next", kind="video", max_retries=1)
    first.manager.save(job.model_copy(update={"status": JobStatus.RUNNING, "started_at": clock.now}))
    first.manager.commit()
    seen = []
    for _ in range(5):  # each daemon resumes it, starts it, and dies before it saves anything
        clock.advance(minutes=5)
        daemon = Scheduler(data_dir, registry=resumable_registry(), clock=clock)
        daemon.load()
        again = daemon.get_job(job.job_id)
        seen.append((again.status, again.retry_count))
        if again.status is JobStatus.FAILED:
            break
        daemon.manager.save(again.model_copy(update={"status": JobStatus.RUNNING, "started_at": clock.now}))
        daemon.manager.commit()
    assert seen == [
        (JobStatus.SCHEDULED, 0),  # resumed: the first crash is free
        (JobStatus.SCHEDULED, 0),  # resumed again, nothing saved in between
        (JobStatus.SCHEDULED, 1),  # third crash without progress: a failed run, retry 1
        (JobStatus.FAILED, 1),  # and again: no retry left
    ]
    assert "without saving progress" in daemon.get_job(job.job_id).error


async def test_orphaned_stuck_job_is_recovered_after_30_minutes(data_dir: Path, clock) -> None:
    scheduler = Scheduler(data_dir, clock=clock)
    scheduler.load()
    job = scheduler.add_job("a", "x")
    scheduler.manager.save(job.model_copy(update={"status": JobStatus.RUNNING, "started_at": clock.now}))
    clock.advance(minutes=30)
    assert scheduler.recover_stuck_jobs() == []
    clock.advance(seconds=1)
    [recovered] = scheduler.recover_stuck_jobs()
    assert recovered.status is JobStatus.SCHEDULED and recovered.retry_count == 1


async def test_stop_waits_for_a_job_that_finishes_within_grace(data_dir: Path) -> None:
    running = asyncio.Event()

    async def short(job: ScheduledJob) -> dict:
        running.set()
        await asyncio.sleep(0.05)
        return {"done": True}

    scheduler = Scheduler(data_dir, registry=registry_with(short=(short, 30)))
    scheduler.load()
    await scheduler.start()
    job = scheduler.add_job("a", "x", kind="short")
    await asyncio.wait_for(running.wait(), 5)
    await scheduler.stop(grace_seconds=5)
    assert on_disk(data_dir, job.job_id)["status"] == "completed"


async def test_stop_interrupts_a_job_past_grace_and_saves_it_scheduled(data_dir: Path) -> None:
    running = asyncio.Event()

    async def long(job: ScheduledJob) -> None:
        running.set()
        await asyncio.sleep(60)

    scheduler = Scheduler(data_dir, registry=registry_with(long=(long, 30)))
    scheduler.load()
    await scheduler.start()
    job = scheduler.add_job("a", "x", kind="long")
    await asyncio.wait_for(running.wait(), 5)
    await scheduler.stop(grace_seconds=0.05)
    stored = on_disk(data_dir, job.job_id)
    assert stored["status"] == "scheduled" and stored["retry_count"] == 0
    assert stored["error"].startswith("interrupted by shutdown")


async def test_wrong_state_calls_say_what_to_do(data_dir: Path) -> None:
    scheduler = Scheduler(data_dir)
    with pytest.raises(Exception, match="cannot start while the scheduler is created"):
        await scheduler.start()


def test_registry_refuses_sync_handlers_and_duplicates() -> None:
    registry = HandlerRegistry()
    with pytest.raises(TypeError, match="must be an async function"):
        registry.register("sync", lambda job: None)
    registry.register("ok", ok)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("ok", ok)


async def test_handler_raising_cancelled_error_is_a_failed_run_not_a_respin(data_dir: Path, clock) -> None:
    calls = 0

    async def rogue(job: ScheduledJob) -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError  # leaked from some inner task, nobody cancelled us

    scheduler = Scheduler(data_dir, registry=registry_with(rogue=(rogue, 30)), clock=clock)
    scheduler.load()
    job = scheduler.add_job("a", "x", kind="rogue", max_retries=0)
    await scheduler.run_once()
    assert calls == 1
    stored = scheduler.get_job(job.job_id)
    assert stored.status is JobStatus.FAILED and "CancelledError" in stored.error


async def test_a_handler_can_reschedule_its_job_without_spending_a_retry(data_dir: Path, clock) -> None:
    later = clock.now + timedelta(hours=20)

    async def full_today(job: ScheduledJob) -> dict:
        raise Reschedule(later, "daily quota reached; moved to the next day")

    scheduler = Scheduler(data_dir, registry=registry_with(video=(full_today, 30)), clock=clock)
    scheduler.load()
    job = await scheduler.executor.run_job(scheduler.add_job("acc", "next", kind="video"))
    assert (job.status, job.scheduled_time, job.retry_count) == (JobStatus.SCHEDULED, later, 0)
    assert job.error == "daily quota reached; moved to the next day"
    assert on_disk(data_dir, job.job_id)["scheduled_time"] == "2026-11-24T08:00:00Z"


async def test_fields_a_handler_saves_on_its_record_survive_the_outcome(data_dir: Path, clock) -> None:
    scheduler = Scheduler(data_dir, registry=HandlerRegistry(), clock=clock)

    async def checkpointing(job: ScheduledJob) -> dict:
        await scheduler.manager.update_fields_async(job.job_id, {"stage": "rendering", "pipeline": {"n": 1}})
        raise RuntimeError("render failed")

    scheduler.registry.register("video", checkpointing)
    scheduler.load()
    job = await scheduler.executor.run_job(scheduler.add_job("acc", "x", kind="video"))
    assert job.status is JobStatus.SCHEDULED and job.retry_count == 1
    stored = on_disk(data_dir, job.job_id)
    assert (stored["stage"], stored["pipeline"]) == ("rendering", {"n": 1})


async def test_update_fields_refuses_core_fields(data_dir: Path, clock) -> None:
    from services.scheduler.errors import JobValidationError

    scheduler = Scheduler(data_dir, clock=clock)
    scheduler.load()
    job = scheduler.add_job("acc", "x")
    with pytest.raises(JobValidationError, match="status"):
        await scheduler.manager.update_fields_async(job.job_id, {"status": "completed"})


async def test_a_permanent_failure_is_not_retried(data_dir: Path, clock) -> None:
    async def hopeless(job: ScheduledJob) -> dict:
        raise PermanentFailure("GenerateScript failed after its retries: LLM refused")

    scheduler = Scheduler(data_dir, registry=registry_with(video=(hopeless, 30)), clock=clock)
    scheduler.load()
    job = await scheduler.executor.run_job(scheduler.add_job("acc", "x", kind="video", max_retries=3))
    assert (job.status, job.retry_count) == (JobStatus.FAILED, 0)
    assert job.error == "GenerateScript failed after its retries: LLM refused"


async def test_a_handler_that_changes_its_job_in_place_changes_nothing_stored(data_dir: Path, clock) -> None:
    # the handler gets its own copy: nested dicts and lists in the fields and the extra
    # keys included, so a handler cannot change the table (or the file) behind its back
    scheduler = Scheduler(data_dir, registry=HandlerRegistry(), clock=clock)
    seen: list[ScheduledJob] = []

    async def meddling(job: ScheduledJob) -> dict:
        seen.append(job)
        job.__pydantic_extra__["pipeline"]["stages"].append("hacked")
        job.__pydantic_extra__["pipeline"]["n"] = 99
        job.result["nested"]["x"] = "hacked"  # type: ignore[index]
        job.content = "hacked"
        raise RuntimeError("stop here")

    scheduler.registry.register("video", meddling)
    scheduler.load()
    job = scheduler.add_job("acc", "x", kind="video")
    record = {**job.to_dict(), "result": {"nested": {"x": 1}}, "pipeline": {"stages": ["fetch"], "n": 1}}
    stored = scheduler.manager.save(ScheduledJob.model_validate(record))
    await scheduler.manager.commit_async()
    await scheduler.executor.run_job(stored)
    kept = scheduler.manager.jobs[job.job_id]
    assert seen and seen[0] is not kept
    assert kept.content == "x" and kept.result == {"nested": {"x": 1}}
    assert kept.__pydantic_extra__["pipeline"] == {"stages": ["fetch"], "n": 1}
    disk = on_disk(data_dir, job.job_id)
    assert disk["pipeline"] == {"stages": ["fetch"], "n": 1} and disk["content"] == "x"
