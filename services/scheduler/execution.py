"""JobExecutor: runs jobs (the seed's run_job) and the loop that dispatches them.

The loop is event-driven: it sleeps until the next due time, or until woken (a job added,
a run finished, stop asked); there is no polling interval. A pass reads the clock once,
expires old jobs, recovers orphaned RUNNING ones, starts ready jobs by priority up to
``max_concurrent_jobs``, and commits what it changed in one flush. Commits go through the
storage's writer thread (``flush_async``), so no disk write ever stalls the loop.

A run holds its slot while its handler runs, not while its outcome is written: once the
handler returns, the outcome is saved in memory, the slot is freed and the loop woken,
and the run's task then waits for the write (``drain`` waits for it too). So a job due
right after another starts at once instead of behind the other's fsync. Writes linger
COMMIT_LINGER_SECONDS (50 ms) before their snapshot is taken, so the outcomes and RUNNING
marks of jobs ending and starting within that time share one write of their day file.
The crash window is the one there always was, 50 ms longer: a crash before the outcome is
on disk leaves the job RUNNING on disk, and recovery at the next start treats it as an
interrupted run (a resumable job resumes from its last checkpoint, which its handler wrote
durably). On disk, one job's outcome never
lands after a later job's RUNNING mark: the writer writes snapshots in the order taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
from datetime import datetime, timedelta
from typing import Any

from . import transitions
from .clock import Clock, utc_now
from .handlers import HandlerRegistry, PermanentFailure, Reschedule
from .job_manager import JobManager
from .models import DEFAULT_MAX_RUNNING_MINUTES, JobStatus, ScheduledJob
from .recovery import JobRecovery

__all__ = ["JobExecutor"]

logger = logging.getLogger(__name__)

_PASS_ERROR_PAUSE = 10.0  # seconds to wait after a pass that raised (seed: "sleep 10s")
STORAGE_RETRY_SECONDS = 5.0
"""While the data dir refuses writes, how often the loop tries again."""
COMMIT_LINGER_SECONDS = 0.05
"""How long a run's outcome (or a pass's RUNNING marks) waits before its write, so the
changes of jobs ending or starting within it share one write of their day file instead of
one write each: on a busy host, fewer writes leave the loop more of the CPU."""
MAX_SLEEP_SECONDS = 60.0
"""Longest single sleep: the wait is measured on the monotonic clock, so after this long
the loop re-reads the wall clock (a clock stepped by NTP is noticed within a minute)."""


class JobExecutor:
    """Runs jobs and the dispatch loop.

    :param manager: the job table.
    :param recovery: resolves orphaned RUNNING jobs.
    :param registry: handlers by kind.
    :param clock: the wall clock.
    :param max_concurrent_jobs: how many runs may overlap (default 1, as the seed).
    """

    def __init__(
        self,
        manager: JobManager,
        recovery: JobRecovery,
        registry: HandlerRegistry,
        *,
        clock: Clock = utc_now,
        max_concurrent_jobs: int = 1,
    ) -> None:
        if max_concurrent_jobs < 1:
            raise ValueError("max_concurrent_jobs must be >= 1")
        self._manager = manager
        self._recovery = recovery
        self._registry = registry
        self._clock = clock
        self.max_concurrent_jobs = max_concurrent_jobs
        self._tasks: dict[str, asyncio.Task[ScheduledJob]] = {}  # runs whose handler is under way
        self._settling: set[asyncio.Task[ScheduledJob]] = set()  # handler done, outcome being written
        self._wake = asyncio.Event()
        self._accepting = True
        self._saving: set[asyncio.Future[None]] = set()  # background commits under way
        self._lingering: asyncio.Task[None] | None = None  # the next write, not yet begun
        self._storage_down = False  # the loop has said the data dir refuses writes

    # -- state ----------------------------------------------------------------------------

    @property
    def running_job_ids(self) -> frozenset[str]:
        """Ids of jobs whose run is in progress in this process."""
        return frozenset(self._tasks)

    def wake(self) -> None:
        """Ask the loop to make a pass now (a job was added, something changed)."""
        self._wake.set()

    def limit_minutes(self, job: ScheduledJob) -> float:
        """How long one run of this job may take (its kind's limit)."""
        handler = self._registry.get(job.kind)
        return handler.max_running_minutes if handler else DEFAULT_MAX_RUNNING_MINUTES

    # -- one job --------------------------------------------------------------------------

    async def run_job(self, job: ScheduledJob) -> ScheduledJob:
        """Run one job: RUNNING -> handler -> COMPLETED, or retry / FAILED; return the result.

        Shutdown cancellation puts the job back to SCHEDULED (no retry spent) and re-raises.
        """
        if job.status is not JobStatus.RUNNING:
            job = self._manager.save(transitions.started(job, self._clock()))
            await self._manager.commit_async()
        log = {"job_id": job.job_id, "kind": job.kind, "stage": "run"}
        handler = self._registry.get(job.kind)
        if handler is None:
            error = f"no handler for kind {job.kind!r} (registered: {', '.join(self._registry.kinds())})"
            return await self._finish(transitions.failed(job, self._clock(), error, retryable=False), log)
        logger.info("job started", extra={**log, "attempt": job.retry_count + 1})
        scope = asyncio.timeout(handler.max_running_minutes * 60)
        try:
            async with scope:
                raw = await handler.func(_own_copy(job))
            result = _json_result(raw)
        except Reschedule as later:
            job = self._current(job)
            changed = transitions.rescheduled(job, self._clock(), later.when, later.reason)
            return await self._finish(changed, log, outcome="rescheduled")
        except asyncio.CancelledError:
            job = self._current(job)
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # we were cancelled (shutdown past its grace): put the job back, re-raise
                await self._finish(transitions.interrupted(job, self._clock()), log, outcome="interrupted")
                raise
            # the handler raised CancelledError on its own: a failed run like any other
            error = "CancelledError raised by the handler"
            return await self._finish(transitions.failed(job, self._clock(), error), log)
        except Exception as exc:  # any handler failure is a failed run
            job = self._current(job)
            if isinstance(exc, TimeoutError) and scope.expired():
                error = f"timed out: running longer than {handler.max_running_minutes:g} minutes"
            elif isinstance(exc, PermanentFailure):
                error = str(exc)
            else:
                error = f"{type(exc).__name__}: {exc}"
            retryable = not isinstance(exc, PermanentFailure)
            return await self._finish(transitions.failed(job, self._clock(), error, retryable=retryable), log)
        return await self._finish(transitions.completed(self._current(job), self._clock(), result), log)

    def _current(self, job: ScheduledJob) -> ScheduledJob:
        """The job as the table holds it now (its handler may have saved fields on it)."""
        return self._manager.jobs.get(job.job_id, job)

    async def _finish(self, job: ScheduledJob, log: dict[str, Any], *, outcome: str = "ran") -> ScheduledJob:
        """Save how a run ended and log it in words that match what happened.

        ``outcome``: ``ran`` (completed, failed, or failed with a retry scheduled),
        ``rescheduled`` (the handler asked to come back later) or ``interrupted`` (shutdown
        cut it short): neither of the last two spends a retry, and the log says so.
        """
        self._manager.save(job)
        self._free_slot(job.job_id)
        try:
            # shielded: a shutdown cancelling this run must not cancel the shared write
            await asyncio.shield(self._commit_soon())
        except Exception:
            logger.exception("could not save the job's outcome; retrying at the next pass", extra=log)
            self.wake()
        extra = {**log, "status": job.status.value, "retry_count": job.retry_count}
        if outcome == "interrupted":
            logger.warning(
                "job interrupted by shutdown; it runs again at the next start (no retry spent)", extra=extra
            )
        elif outcome == "rescheduled":
            logger.info(
                "job rescheduled (no retry spent)",
                extra={**extra, "reason": job.error, "scheduled_time": job.scheduled_time.isoformat()},
            )
        elif job.status is JobStatus.COMPLETED:
            logger.info("job completed", extra=extra)
        elif job.status is JobStatus.SCHEDULED:
            logger.warning(
                "job failed; retry scheduled",
                extra={**extra, "error": job.error, "scheduled_time": job.scheduled_time.isoformat()},
            )
        else:
            logger.error("job ended", extra={**extra, "error": job.error})
        return job

    def _free_slot(self, job_id: str) -> None:
        """The calling run's handler is done: give its slot to the next job now.

        Its task moves from ``_tasks`` to ``_settling`` while it waits for the outcome's
        write, so the same job may even run again (a retry due at once) meanwhile.
        """
        task = asyncio.current_task()
        if task is not None and self._tasks.get(job_id) is task:
            del self._tasks[job_id]
            self._settling.add(task)
            self._wake.set()

    # -- the loop -------------------------------------------------------------------------

    def run_pass(self, now: datetime) -> list[ScheduledJob]:
        """One pass at ``now``: expire, recover, start ready jobs; return those started."""
        self._manager.cleanup_expired_jobs(now)
        self._recovery.recover_stuck_jobs(now, owned=self._tasks)
        started = []
        while self._accepting and len(self._tasks) + len(started) < self.max_concurrent_jobs:
            job = self._manager.pop_next_ready(now)
            if job is None:
                break
            job = self._manager.save(transitions.started(job, now))
            started.append(job)
        for job in started:
            task = asyncio.create_task(self.run_job(job), name=f"job:{job.job_id}")
            self._tasks[job.job_id] = task
            task.add_done_callback(self._run_ended)
        if started or self._manager.storage.pending_days:
            # The RUNNING marks are snapshotted after the handlers take their first steps
            # (COMMIT_LINGER_SECONDS later) and written by the writer thread, so no disk
            # write delays a start. A crash inside that window re-runs the job without
            # spending a retry, as if it had not started.
            self._commit_soon()
        return started

    def _commit_soon(self) -> asyncio.Future[None]:
        """The next write of what changed: one task, after COMMIT_LINGER_SECONDS, that
        every caller until it starts writing shares (await it for durability)."""
        if self._lingering is None or self._lingering.done():
            self._lingering = asyncio.create_task(self._linger_then_commit(), name="commit")
            self._saving.add(self._lingering)
            self._lingering.add_done_callback(_forget_commit(self._saving))
        return self._lingering

    async def _linger_then_commit(self) -> None:
        """Wait, then write; a failure is logged and the loop woken (it retries), and the
        awaiting runs see it raised."""
        await asyncio.sleep(COMMIT_LINGER_SECONDS)
        self._lingering = None  # changes made from now on go in the next write
        try:
            await self._manager.commit_async()
        except Exception:
            logger.exception("could not save job state; retrying at the next change")
            self.wake()
            raise

    def _run_ended(self, task: asyncio.Task[ScheduledJob]) -> None:
        job_id = task.get_name().removeprefix("job:")
        if self._tasks.get(job_id) is task:
            del self._tasks[job_id]
        self._settling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("job run crashed", exc_info=task.exception(), extra={"job_id": job_id})
        self._wake.set()

    def _seconds_until_next(self, now: datetime) -> float:
        times = []
        if len(self._tasks) < self.max_concurrent_jobs:
            due = self._manager.next_wake_time()
            if due is not None:
                times.append(due)
        for job in self._manager.running_jobs():
            if job.job_id not in self._tasks and job.started_at is not None:
                times.append(job.started_at + timedelta(minutes=self.limit_minutes(job)))
        if not times:
            return MAX_SLEEP_SECONDS
        return min(MAX_SLEEP_SECONDS, max(0.0, (min(times) - now).total_seconds()))

    async def _storage_writable(self) -> bool:
        """Whether the job files take writes; after a failure, try again (flush or probe).

        While the disk refuses (full, read-only), the loop starts no job: its RUNNING mark
        could not be saved, and its stages would fail on the same disk. It retries every
        STORAGE_RETRY_SECONDS and resumes on its own once space is freed.
        """
        storage = self._manager.storage
        if storage.write_failure is None:
            if self._storage_down:
                self._storage_down = False
                logger.warning("the data dir takes writes again; resuming")
            return True
        if not self._storage_down:
            self._storage_down = True
            logger.error(
                "cannot write the data dir; starting no job and refusing changes until it can",
                extra={"error": storage.write_failure, "retry_seconds": STORAGE_RETRY_SECONDS},
            )
        try:
            if storage.pending_days:
                await self._manager.commit_async()
            else:
                await asyncio.to_thread(storage.probe_write)
        except Exception:
            return False
        if storage.write_failure is not None:
            return False
        self._storage_down = False
        logger.warning("the data dir takes writes again; resuming")
        return True

    async def run(self, *, until_idle: bool = False) -> None:
        """The dispatch loop; returns after ``stop_accepting`` (or when idle, if asked)."""
        while self._accepting:
            self._wake.clear()
            if not await self._storage_writable():
                if until_idle and not self._tasks and not self._settling:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(STORAGE_RETRY_SECONDS):
                        await self._wake.wait()
                continue
            now = self._clock()
            try:
                self.run_pass(now)
                delay = self._seconds_until_next(now)
            except Exception:
                logger.exception("scheduler pass failed; pausing before the next one")
                delay = _PASS_ERROR_PAUSE
            if until_idle and not self._tasks and not self._settling:
                if not self._manager.get_ready_jobs(self._clock()):
                    return
                delay = 0.0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def stop_accepting(self) -> None:
        """Start no new run; wake the loop so it returns."""
        self._accepting = False
        self._wake.set()

    async def drain(self, grace_seconds: float) -> None:
        """Wait up to ``grace_seconds`` for running jobs, then cancel the rest.

        Background commits are awaited too (they never take long: no grace needed).
        """
        tasks = [*self._tasks.values(), *self._settling]
        if not tasks:
            await self._saved()
            return
        logger.info("waiting for running jobs", extra={"count": len(tasks), "grace_seconds": grace_seconds})
        _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
        for task in pending:
            if task in self._settling:
                continue  # its handler is done: only the outcome's write is left, let it end
            logger.warning("grace period over; interrupting job", extra={"job_id": task.get_name()[4:]})
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        await self._saved()

    async def _saved(self) -> None:
        if self._saving:
            await asyncio.gather(*self._saving, return_exceptions=True)


def _forget_commit(saving: set[asyncio.Future[None]]) -> Any:
    """A done callback: drop the commit from ``saving`` and mark its error as seen (it was
    logged; the runs that awaited it got it), so asyncio does not report it again."""

    def forget(task: asyncio.Future[None]) -> None:
        saving.discard(task)
        if not task.cancelled():
            task.exception()

    return forget


def _own_copy(job: ScheduledJob) -> ScheduledJob:
    """A copy of ``job`` its handler may change at will, the table's record untouched.

    Its containers (``result``, a dict or list among the extra keys) are deep-copied; the
    rest (text, numbers, datetimes, enums) cannot change and is shared.
    ``model_copy(deep=True)`` also deep-copied every datetime: a tenth of a run's own cost.
    """
    copied = job.model_copy()
    values = copied.__dict__
    for name, value in values.items():
        if isinstance(value, (dict, list, set)):
            values[name] = copy.deepcopy(value)
    extra = copied.__pydantic_extra__
    if extra:
        copied.__pydantic_extra__ = {
            key: copy.deepcopy(value) if isinstance(value, (dict, list, set)) else value
            for key, value in extra.items()
        }
    return copied


def _json_result(raw: Any) -> dict[str, Any] | None:
    """A handler's return value as a JSON-safe dict (raises TypeError if it is not JSON)."""
    if raw is None:
        return None
    result = raw if isinstance(raw, dict) else {"value": raw}
    json.dumps(result)
    return result
