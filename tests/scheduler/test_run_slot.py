"""A run holds its slot while its handler runs, not while its outcome is being written.

With max_concurrent_jobs=1, a job due right after another used to wait for the other's
outcome to be fsynced (one whole day file) before it could start: on a busy disk that
was the dispatch jitter of bench/bench_dispatch_jitter.py. These tests hold the writer
thread on the first job's outcome and check that the next job starts meanwhile, that the
held outcome still reaches the disk (stop waits for it, never cancels it), and that a job
re-run while its previous outcome is still being written is tracked as running.
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from services.scheduler import storage as storage_module
from services.scheduler.clock import utc_now
from services.scheduler.handlers import HandlerRegistry, Reschedule
from services.scheduler.models import JobStatus, ScheduledJob
from services.scheduler.scheduler import Scheduler


class OutcomeGate:
    """Stands in for ``_put_file``: holds the first write whose bytes show ``marker``."""

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.real = storage_module._put_file
        self._armed = True

    def __call__(self, path: Path, data: bytes | None) -> int:
        if self._armed and data is not None and self.marker in data:
            self._armed = False
            self.entered.set()
            if not self.opened.wait(timeout=10):
                raise AssertionError("the held write was never let go")
        return self.real(path, data)


async def until(event: threading.Event) -> None:
    for _ in range(2000):
        if event.is_set():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the writer thread never reached the held write")


def stored(data_dir: Path, job_id: str) -> dict:
    for path in (data_dir / "jobs").glob("jobs_*.json"):
        jobs = json.loads(path.read_text(encoding="utf-8"))["jobs"]
        if job_id in jobs:
            return jobs[job_id]
    raise AssertionError(f"{job_id} not on disk")


def one_kind(func) -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.register("k", func)
    return registry


async def test_the_next_job_starts_while_the_last_outcome_is_being_written(data_dir: Path, monkeypatch) -> None:
    calls: list[str] = []
    second_started = asyncio.Event()

    async def handler(job: ScheduledJob) -> dict:
        calls.append(job.content)
        if job.content == "second":
            second_started.set()
        return {"echo_of": job.content}

    gate = OutcomeGate(b'"echo_of": "first"')  # the first job's outcome (its result) on disk
    monkeypatch.setattr(storage_module, "_put_file", gate)
    scheduler = Scheduler(data_dir, registry=one_kind(handler), max_concurrent_jobs=1)
    scheduler.load()
    first = scheduler.add_job("acc", "first", kind="k")
    second = scheduler.add_job("acc", "second", utc_now() + timedelta(milliseconds=50), kind="k")
    await scheduler.start()
    try:
        await until(gate.entered)  # the first outcome's write is held by the writer thread
        await asyncio.wait_for(second_started.wait(), 5)
        assert calls == ["first", "second"]
        assert stored(data_dir, first.job_id)["status"] != "completed"  # its outcome is not on disk yet
    finally:
        gate.opened.set()
        await scheduler.stop(grace_seconds=5)
    assert stored(data_dir, first.job_id)["status"] == "completed"
    assert stored(data_dir, second.job_id)["status"] == "completed"


async def test_stop_waits_for_an_outcome_still_being_written_and_never_cancels_it(
    data_dir: Path, monkeypatch, caplog
) -> None:
    async def handler(job: ScheduledJob) -> dict:
        return {"echo_of": job.content}

    gate = OutcomeGate(b'"echo_of": "only"')
    monkeypatch.setattr(storage_module, "_put_file", gate)
    scheduler = Scheduler(data_dir, registry=one_kind(handler))
    scheduler.load()
    job = scheduler.add_job("acc", "only", kind="k")
    await scheduler.start()
    await until(gate.entered)
    assert scheduler.executor.running_job_ids == frozenset()  # its handler is done
    stopping = asyncio.create_task(scheduler.stop(grace_seconds=0.01))  # grace shorter than the write
    await asyncio.sleep(0.1)
    assert not stopping.done()  # stop waits for the write, past the grace
    gate.opened.set()
    await asyncio.wait_for(stopping, 5)
    assert stored(data_dir, job.job_id)["status"] == "completed"
    interrupted = [r for r in caplog.records if "interrupt" in r.getMessage()]
    assert interrupted == []  # a run whose handler had returned is not "interrupted"


async def test_a_job_run_again_while_its_last_outcome_is_written_is_tracked_as_running(
    data_dir: Path, monkeypatch
) -> None:
    runs = 0
    second_run = asyncio.Event()
    release = asyncio.Event()

    async def handler(job: ScheduledJob) -> dict:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise Reschedule(utc_now(), "come back at once")
        second_run.set()
        await release.wait()
        return {"runs": runs}

    gate = OutcomeGate(b"come back at once")
    monkeypatch.setattr(storage_module, "_put_file", gate)
    scheduler = Scheduler(data_dir, registry=one_kind(handler))
    scheduler.load()
    job = scheduler.add_job("acc", "again", kind="k")
    await scheduler.start()
    try:
        await until(gate.entered)  # the reschedule's write is held
        await asyncio.wait_for(second_run.wait(), 5)
        gate.opened.set()
        await asyncio.sleep(0.1)  # the first run's task ends: it must not untrack the second
        assert scheduler.executor.running_job_ids == {job.job_id}
        assert scheduler.get_job(job.job_id).status is JobStatus.RUNNING
    finally:
        gate.opened.set()
        release.set()
        await scheduler.stop(grace_seconds=5)
    assert stored(data_dir, job.job_id)["status"] == "completed"
    assert stored(data_dir, job.job_id)["result"] == {"runs": 2}


@pytest.mark.parametrize("limit", [1, 2])
async def test_handlers_still_never_overlap_past_the_limit(data_dir: Path, limit: int) -> None:
    active = peak = 0

    async def busy(job: ScheduledJob) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.005)
        active -= 1

    scheduler = Scheduler(data_dir, registry=one_kind(busy), max_concurrent_jobs=limit)
    scheduler.load()
    for i in range(8):
        scheduler.add_job("acc", f"j{i}", kind="k")
    await scheduler.run_once()
    assert peak == limit
    assert all(j.status is JobStatus.COMPLETED for j in scheduler.list_jobs())
