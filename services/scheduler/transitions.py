"""Pure job transitions: each takes a job and *now* and returns the changed copy.

No I/O, no clock: the caller reads the time once and saves the result. These are the
decisions of the seed's run_job and recovery (running, completed, retry with backoff or
failed, expired), kept apart so they are tested as tables.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from .models import JobStatus, ScheduledJob

__all__ = [
    "MAX_RESUMES_WITHOUT_PROGRESS",
    "MAX_RETRY_DELAY",
    "completed",
    "expired",
    "failed",
    "interrupted",
    "progress_mark",
    "resumed",
    "resumes_without_progress",
    "retry_delay",
    "started",
]

MAX_RESUMES_WITHOUT_PROGRESS = 2
"""A checkpointing job found RUNNING at start resumes without spending a retry, unless its
checkpoint has not changed across this many resumes in a row: then the crash is counted as
a failed run (a retry spent, in the end FAILED), so a job that takes the daemon down every
time cannot restart it forever."""
_RESUME_FIELDS = ("resume_mark", "resumes_without_progress")

MAX_RETRY_DELAY = timedelta(days=1)
"""Backoff cap: 2^retry_count minutes grows past a day at the 11th retry."""


def retry_delay(retry_count: int, first_seconds: float | None = None) -> timedelta:
    """Backoff before retry number ``retry_count`` (1-based): 2, 4, 8, ... minutes, capped.

    ``first_seconds``: the first delay, doubling after it (a schedule's runs carry
    DEFAULT_RETRY_DELAY, the seed's 300 s, as ``retry_delay_seconds``).
    """
    if retry_count >= 40:
        return MAX_RETRY_DELAY
    if first_seconds is not None:
        return min(timedelta(seconds=first_seconds * 2 ** (retry_count - 1)), MAX_RETRY_DELAY)
    if retry_count >= 11:
        return MAX_RETRY_DELAY
    return min(timedelta(minutes=2**retry_count), MAX_RETRY_DELAY)


def _first_delay(job: ScheduledJob) -> float | None:
    value = (job.__pydantic_extra__ or {}).get("retry_delay_seconds")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 86400:
        return float(value)
    return None


def started(job: ScheduledJob, now: datetime) -> ScheduledJob:
    """SCHEDULED -> RUNNING, stamping started_at."""
    return job.model_copy(
        update={"status": JobStatus.RUNNING, "started_at": now, "updated_at": now}
    )


def completed(job: ScheduledJob, now: datetime, result: dict[str, Any] | None) -> ScheduledJob:
    """RUNNING -> COMPLETED with the handler's result; the job moves to now's day file."""
    update: dict[str, Any] = {
        "status": JobStatus.COMPLETED,
        "completed_at": now,
        "updated_at": now,
        "result": result,
        "error": None,
    }
    if result and isinstance(result.get("thread_id"), str):
        update["thread_id"] = result["thread_id"]
    return job.model_copy(update=update)


def failed(job: ScheduledJob, now: datetime, error: str, *, retryable: bool = True) -> ScheduledJob:
    """A failed run: SCHEDULED again after 2^retry_count minutes if a retry is left, else FAILED.

    ``retryable=False`` (e.g. no handler for the job's kind) fails at once.
    """
    if retryable and job.can_retry():
        count = job.retry_count + 1
        return job.model_copy(
            update={
                "status": JobStatus.SCHEDULED,
                "retry_count": count,
                "scheduled_time": now + retry_delay(count, _first_delay(job)),
                "error": error,
                "updated_at": now,
            }
        )
    return job.model_copy(
        update={
            "status": JobStatus.FAILED,
            "error": error,
            "completed_at": now,
            "updated_at": now,
        }
    )


def interrupted(job: ScheduledJob, now: datetime) -> ScheduledJob:
    """A run cut short by shutdown: SCHEDULED again at its old time, no retry spent."""
    return job.model_copy(
        update={
            "status": JobStatus.SCHEDULED,
            "error": f"interrupted by shutdown at {now.isoformat()}",
            "updated_at": now,
        }
    )


def progress_mark(job: ScheduledJob) -> str:
    """A fingerprint of what a checkpointing job's handler has saved (its extra fields)."""
    saved = {k: v for k, v in (job.model_extra or {}).items() if k not in _RESUME_FIELDS}
    return hashlib.sha256(json.dumps(saved, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resumes_without_progress(job: ScheduledJob) -> int:
    """Resumes in a row, this one included, that found the checkpoint as the last resume left it.

    0 when the handler saved something since the last resume (or it is the first one).
    """
    extra = job.model_extra or {}
    if extra.get("resume_mark") != progress_mark(job):
        return 0
    return int(extra.get("resumes_without_progress") or 0) + 1


def resumed(job: ScheduledJob, now: datetime) -> ScheduledJob:
    """A checkpointing job whose process died: SCHEDULED again now, no retry spent.

    The checkpoint's fingerprint is kept (``resume_mark``) with the count of resumes that
    found it unchanged (``resumes_without_progress``), so recovery can tell a job that
    keeps taking the daemon down before it saves anything (see MAX_RESUMES_WITHOUT_PROGRESS).
    """
    return job.model_copy(
        update={
            "status": JobStatus.SCHEDULED,
            "scheduled_time": min(job.scheduled_time, now),
            "error": f"resumed after a restart at {now.isoformat()}",
            "updated_at": now,
            "resume_mark": progress_mark(job),
            "resumes_without_progress": resumes_without_progress(job),
        }
    )


def rescheduled(job: ScheduledJob, now: datetime, when: datetime, reason: str) -> ScheduledJob:
    """A run that asked to come back later (``Reschedule``): SCHEDULED at ``when``, no retry spent."""
    return job.model_copy(
        update={"status": JobStatus.SCHEDULED, "scheduled_time": when, "error": reason, "updated_at": now}
    )


def expired(job: ScheduledJob, now: datetime) -> ScheduledJob:
    """A job left waiting more than 24 h past its time -> EXPIRED (it never ran)."""
    return job.model_copy(
        update={
            "status": JobStatus.EXPIRED,
            "error": f"expired: not started within 24 h of {job.scheduled_time.isoformat()}",
            "updated_at": now,
        }
    )
