"""JobRecovery: resolves jobs left RUNNING with nobody running them.

At start every RUNNING job belongs to a process that died (the data-dir lock proves no
other daemon is alive), so all are recovered; during the loop, a RUNNING job that no task
of ours owns and that has run past its limit is recovered too. Recovery is a failed run:
SCHEDULED again after 2^retry_count minutes while retries remain, else FAILED.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container
from datetime import datetime

from . import transitions
from .job_manager import JobManager
from .models import DEFAULT_MAX_RUNNING_MINUTES, ScheduledJob

__all__ = ["JobRecovery"]

logger = logging.getLogger(__name__)


class JobRecovery:
    """Recover stuck and abandoned jobs.

    :param manager: where jobs are read and saved.
    :param max_running_minutes: the limit for a job's kind (default 30 minutes).
    :param resumable: whether a job's kind checkpoints its progress; such a job found
        RUNNING at start is put back to run at once, without spending a retry, unless its
        checkpoint stayed the same across ``transitions.MAX_RESUMES_WITHOUT_PROGRESS``
        resumes in a row (then it is a failed run like any other).
    """

    def __init__(
        self,
        manager: JobManager,
        *,
        max_running_minutes: Callable[[ScheduledJob], float] = lambda job: DEFAULT_MAX_RUNNING_MINUTES,
        resumable: Callable[[ScheduledJob], bool] = lambda job: False,
    ) -> None:
        self._manager = manager
        self._limit = max_running_minutes
        self._resumable = resumable

    def recover_stuck_jobs(
        self, now: datetime, *, owned: Container[str] = ()
    ) -> list[ScheduledJob]:
        """Recover RUNNING jobs past their limit that no live task in ``owned`` holds."""
        stuck = [
            job
            for job in self._manager.running_jobs()
            if job.job_id not in owned and job.is_stuck(now, self._limit(job))
        ]
        return [self._recover(job, now, "stuck: running longer than its limit") for job in stuck]

    def recover_all_running_jobs(
        self, now: datetime, *, owned: Container[str] = ()
    ) -> list[ScheduledJob]:
        """Recover every RUNNING job not in ``owned`` (call at start, before any work)."""
        recovered = []
        for job in self._manager.running_jobs():
            if job.job_id in owned:
                continue
            stalled = transitions.resumes_without_progress(job)
            if not self._resumable(job):
                reason = "recovered at start: the process running it stopped"
            elif stalled < transitions.MAX_RESUMES_WITHOUT_PROGRESS:
                recovered.append(self._resume(job, now))
                continue
            else:
                reason = f"resumed {stalled} times in a row without saving progress; counted as a failed run"
            recovered.append(self._recover(job, now, reason))
        return recovered

    def _resume(self, job: ScheduledJob, now: datetime) -> ScheduledJob:
        result = self._manager.save(transitions.resumed(job, now))
        logger.warning(
            "running job resumes from its checkpoint",
            extra={"job_id": job.job_id, "status": result.status.value, "retry_count": result.retry_count},
        )
        return result

    def _recover(self, job: ScheduledJob, now: datetime, reason: str) -> ScheduledJob:
        started = job.started_at.isoformat() if job.started_at else "unknown"
        result = self._manager.save(transitions.failed(job, now, f"{reason} (started {started})"))
        logger.warning(
            "running job recovered",
            extra={
                "job_id": job.job_id,
                "reason": reason,
                "status": result.status.value,
                "retry_count": result.retry_count,
                "scheduled_time": result.scheduled_time.isoformat(),
            },
        )
        return result
