"""Pure transitions: backoff 2, 4, 8 minutes, then FAILED; completion; interruption."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.scheduler import transitions
from services.scheduler.models import JobStatus, ScheduledJob

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def running_job(**fields) -> ScheduledJob:
    base = {"account_id": "a", "content": "c", "scheduled_time": T0, "status": "running", "started_at": T0}
    return ScheduledJob.from_dict({**base, **fields})


@pytest.mark.parametrize(("count", "minutes"), [(1, 2), (2, 4), (3, 8), (10, 1024), (11, 1440), (50, 1440)])
def test_retry_delay(count, minutes) -> None:
    assert transitions.retry_delay(count) == timedelta(minutes=minutes)


def test_failures_back_off_2_4_8_minutes_then_fail() -> None:
    job = running_job(max_retries=3)
    now = T0
    delays = []
    for _ in range(3):
        job = transitions.failed(job, now, "boom")
        assert job.status is JobStatus.SCHEDULED
        delays.append(job.scheduled_time - now)
        now = job.scheduled_time
    assert delays == [timedelta(minutes=2), timedelta(minutes=4), timedelta(minutes=8)]
    assert job.retry_count == 3
    final = transitions.failed(job, now, "boom again")
    assert final.status is JobStatus.FAILED
    assert final.error == "boom again"
    assert final.completed_at == now


def test_not_retryable_fails_at_once() -> None:
    job = transitions.failed(running_job(), T0, "no handler", retryable=False)
    assert job.status is JobStatus.FAILED and job.retry_count == 0


def test_completed_keeps_result_and_thread_id() -> None:
    job = transitions.completed(running_job(error="old"), T0, {"thread_id": "t-1", "n": 2})
    assert job.status is JobStatus.COMPLETED
    assert job.completed_at == T0 and job.error is None
    assert job.thread_id == "t-1" and job.result == {"thread_id": "t-1", "n": 2}


def test_interrupted_goes_back_without_spending_a_retry() -> None:
    job = transitions.interrupted(running_job(retry_count=1), T0 + timedelta(minutes=1))
    assert job.status is JobStatus.SCHEDULED
    assert job.retry_count == 1 and job.scheduled_time == T0


def test_resumes_count_only_while_the_checkpoint_stays_the_same() -> None:
    later = T0 + timedelta(minutes=1)
    job = running_job(stage="rendering", pipeline={"state": "WaitForRender"})
    first = transitions.resumed(job, later)
    assert first.status is JobStatus.SCHEDULED and first.retry_count == 0
    assert first.model_extra["resumes_without_progress"] == 0  # the first resume is free
    again = transitions.resumed(first.model_copy(update={"status": JobStatus.RUNNING}), later)
    assert again.model_extra["resumes_without_progress"] == 1  # nothing saved in between
    assert transitions.resumes_without_progress(again) == 2
    moved_on = again.model_copy(update={"pipeline": {"state": "StartUploader"}})
    assert transitions.resumes_without_progress(moved_on) == 0  # the handler saved progress
    assert transitions.resumed(moved_on, later).model_extra["resumes_without_progress"] == 0
    # the bookkeeping fields are not part of the fingerprint
    assert transitions.progress_mark(first) == transitions.progress_mark(job)


def test_transitions_do_not_mutate_their_input() -> None:
    job = running_job()
    transitions.failed(job, T0, "x")
    assert job.status is JobStatus.RUNNING
