"""Scheduler: wires storage, manager, recovery and executor, and owns their lifecycle.

This is the public API every shell (the CLI, the HTTP API, the pipeline) calls. It does no
locking of the data dir: whoever builds a Scheduler must hold the lock (``lock.py``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from .audit import AuditLog
from .clock import DEFAULT_TIMEZONE, Clock, load_timezone, utc_now
from .errors import SchedulerError, StorageError
from .execution import JobExecutor
from .extensions import Extension
from .gc_pause import gc_paused
from .handlers import HandlerRegistry, default_registry
from .job_manager import JobManager
from .job_store import JobStore
from .models import JobPriority, JobStatus, ScheduledJob
from .new_job import NewJob
from .notifications import JobFailedAlert, Notifier, NullNotifier, WebhookNotifier
from .recovery import JobRecovery
from .scheduler_config import load_scheduler_config
from .schedules import ScheduleDefaults, ScheduleService
from .settings import Settings
from .storage import JobStorage

__all__ = ["Companion", "RunState", "Scheduler"]

logger = logging.getLogger(__name__)


class Companion(Protocol):
    """A service that lives as long as the scheduler's loop (the schedules, the notifier).

    ``start`` runs after the loop starts; ``stop`` after the running jobs are drained and
    saved, in the reverse order of ``companions``.
    """

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class RunState(str, enum.Enum):
    """Where the scheduler is in its life."""

    CREATED = "created"
    LOADED = "loaded"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Scheduler:
    """The scheduler core.

    :param data_dir: where ``jobs/`` lives.
    :param timezone: IANA zone of the daily files (default Asia/Ho_Chi_Minh).
    :param registry: handlers by kind (default: the built-in ``log``).
    :param clock: the wall clock (aware UTC).
    :param max_concurrent_jobs: overlapping runs allowed (default 1).
    :param shutdown_grace_seconds: how long ``stop`` waits for running jobs.
    :param extensions: packages built on the scheduler (kinds, default kind); see
        ``extensions.py``.
    :param store: where the jobs are kept (a ``JobStore``); default: the daily files
        under ``data_dir/jobs`` (``storage.JobStorage``).
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        timezone: str = DEFAULT_TIMEZONE,
        registry: HandlerRegistry | None = None,
        clock: Clock = utc_now,
        max_concurrent_jobs: int = 1,
        shutdown_grace_seconds: float = 30.0,
        extensions: Sequence[Extension] = (),
        store: JobStore | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.zone = load_timezone(timezone)
        self.registry = registry or default_registry()
        self.clock = clock
        self.shutdown_grace_seconds = shutdown_grace_seconds
        self.storage: JobStore = store if store is not None else JobStorage(self.data_dir, self.zone, clock=clock)
        self.manager = JobManager(self.storage, clock=clock, kinds=self.registry)
        self.recovery = JobRecovery(
            self.manager, max_running_minutes=self._limit_minutes, resumable=self._resumable
        )
        self.executor = JobExecutor(
            self.manager,
            self.recovery,
            self.registry,
            clock=clock,
            max_concurrent_jobs=max_concurrent_jobs,
        )
        self.state = RunState.CREATED
        self._loop_task: asyncio.Task[None] | None = None
        self.default_kind = "log"
        self.settings: Settings | None = None
        self.notifier: Notifier = NullNotifier()
        """Where messages for a person go (``notifications.py``); nobody by default."""
        self.companions: list[Companion] = []
        """Services started with the loop and stopped after it (see ``Companion``)."""
        self.status_sections: dict[str, Callable[[], dict[str, Any]]] = {}
        """Sections of the status page's data by name, added by extensions (``status_page.py``)."""
        self.audit = AuditLog(self.data_dir, self.zone, clock=clock)
        """Every change to a job or a schedule, as JSON lines under ``audit/`` (``audit.py``)."""
        self.audit.attach(self.manager)
        self.companions.append(self.audit)
        self.schedules = ScheduleService(self, ScheduleDefaults(timezone=timezone))
        """The recurring schedules and their execution history (``schedules.py``)."""
        self.schedules.audit = self.audit
        self.companions.append(self.schedules)  # stopped before the audit log it writes to
        for extension in extensions:
            extension.install(self)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        registry: HandlerRegistry | None = None,
        clock: Clock = utc_now,
        extensions: Sequence[Extension] = (),
    ) -> Scheduler:
        """Build from ``Settings``."""
        scheduler = cls(
            settings.data_dir,
            timezone=settings.timezone_name,
            registry=registry,
            clock=clock,
            max_concurrent_jobs=settings.max_concurrent_jobs,
            shutdown_grace_seconds=settings.shutdown_grace_seconds,
        )
        scheduler.settings = settings
        config = load_scheduler_config(settings.config_path)
        from .http_post_kind import HttpPostKind  # here: importing the package loads no httpx

        HttpPostKind(config.targets).register(scheduler.registry)  # [targets] of SCHEDULER_CONFIG
        notifier = WebhookNotifier(  # the [[webhooks]] of SCHEDULER_CONFIG; none: it sends nothing
            config.webhooks, service=settings.service_name, clock=clock
        )
        scheduler.notifier = notifier
        scheduler.companions.insert(0, notifier)  # started first, stopped last: the others may notify
        scheduler.manager.observers.append(JobFailedAlert(scheduler))
        scheduler.schedules.defaults = ScheduleDefaults.from_settings(settings)
        for extension in extensions:
            extension.install(scheduler)
        return scheduler

    def _limit_minutes(self, job: ScheduledJob) -> float:
        return self.executor.limit_minutes(job)

    def _resumable(self, job: ScheduledJob) -> bool:
        handler = self.registry.get(job.kind)
        return handler is not None and handler.resumable

    def _require(self, *states: RunState, action: str) -> None:
        if self.state not in states:
            allowed = " or ".join(s.value for s in states)
            raise SchedulerError(f"cannot {action} while the scheduler is {self.state.value} (needs {allowed})")

    # -- lifecycle -------------------------------------------------------------------------

    def load(self) -> int:
        """Load the files, then recover every job left RUNNING by a dead process."""
        self._require(RunState.CREATED, action="load")
        with gc_paused():  # jobs and schedules: no collection until both are in, then frozen
            count = self.manager.load()
            recovered = self.recovery.recover_all_running_jobs(self.clock())
            try:
                self.manager.commit()
            except StorageError as exc:  # a full disk: start anyway; the loop retries the write
                logger.error("cannot save the recovered jobs yet: %s", exc.message)
            self.schedules.load()
        self.state = RunState.LOADED
        logger.info("jobs loaded", extra={"jobs": count, "recovered": len(recovered)})
        return count

    async def start(self) -> None:
        """Start the dispatch loop as a task (call ``load`` first)."""
        self._require(RunState.LOADED, action="start")
        self.state = RunState.RUNNING
        self._loop_task = asyncio.create_task(self.executor.run(), name="scheduler-loop")
        for companion in self.companions:
            await companion.start()

    async def stop(self, grace_seconds: float | None = None) -> None:
        """Take no new work, give running jobs the grace period, save, and return."""
        if self.state in (RunState.STOPPING, RunState.STOPPED):
            return
        self.state = RunState.STOPPING
        self.executor.stop_accepting()
        if self._loop_task is not None:
            await self._loop_task
        grace = self.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        await self.executor.drain(grace)
        await self.manager.commit_async()
        await self._stop_companions()
        self.state = RunState.STOPPED
        logger.info("scheduler stopped")

    async def _stop_companions(self) -> None:
        for companion in reversed(self.companions):
            try:
                await companion.stop()
            except Exception:
                logger.exception("a companion failed to stop", extra={"companion": companion.name})

    async def run_once(self) -> None:
        """Process what is due now (and what becomes due while it runs), then return."""
        self._require(RunState.LOADED, action="run once")
        self.state = RunState.RUNNING
        # the companions but the schedule loop (a single pass fires nothing): the notifier
        # sends what the runs raise, and every writer is flushed before returning
        for companion in self.companions:
            if companion is not self.schedules:
                await companion.start()
        try:
            await self.executor.run(until_idle=True)
        finally:
            self.state = RunState.STOPPING
            self.executor.stop_accepting()
            await self.executor.drain(self.shutdown_grace_seconds)
            await self.manager.commit_async()
            await self._stop_companions()
            self.state = RunState.STOPPED

    @property
    def is_ready(self) -> bool:
        """Loaded and running its loop."""
        return self.state is RunState.RUNNING and self._loop_task is not None and not self._loop_task.done()

    # -- public API (delegates) ------------------------------------------------------------

    def add(self, new: NewJob) -> ScheduledJob:
        """Add a job durably (``new.kind`` None: ``default_kind``); wakes the loop."""
        job = self.manager.add(self._with_kind(new))
        self.executor.wake()
        return job

    async def add_async(
        self, new: NewJob, *, extra: dict[str, Any] | None = None, status: JobStatus = JobStatus.SCHEDULED
    ) -> ScheduledJob:
        """``add`` for code on the event loop (the API): the write does not block the loop.

        ``extra`` and ``status`` as ``JobManager.add`` (a schedule's fire uses both).
        """
        try:
            job = await self.manager.add_async(self._with_kind(new), extra=extra, status=status)
        finally:
            self.executor.wake()  # a failed write too: the loop notices the disk refusing
        return job

    def _with_kind(self, new: NewJob) -> NewJob:
        return new if new.kind is not None else new.model_copy(update={"kind": self.default_kind})

    def add_job(
        self,
        account_id: Any,
        content: Any,
        scheduled_time: datetime | None = None,
        priority: Any = JobPriority.NORMAL,
        max_retries: Any = 3,
        *,
        kind: Any = None,
        job_id: str | None = None,
    ) -> ScheduledJob:
        """``add`` with the fields as arguments (see ``NewJob``). ``kind`` defaults to default_kind."""
        return self.add(NewJob(
            account_id=account_id, content=content, scheduled_time=scheduled_time,
            priority=priority, max_retries=max_retries, kind=kind, job_id=job_id,
        ))

    async def add_job_async(
        self,
        account_id: Any,
        content: Any,
        scheduled_time: datetime | None = None,
        priority: Any = JobPriority.NORMAL,
        max_retries: Any = 3,
        *,
        kind: Any = None,
        job_id: str | None = None,
    ) -> ScheduledJob:
        """``add_async`` with the fields as arguments (see ``add_job``)."""
        return await self.add_async(NewJob(
            account_id=account_id, content=content, scheduled_time=scheduled_time,
            priority=priority, max_retries=max_retries, kind=kind, job_id=job_id,
        ))

    async def release_async(self, job_id: str) -> ScheduledJob:
        """Let a PENDING job run (it becomes SCHEDULED) and wake the loop."""
        try:
            return await self.manager.release_async(job_id)
        finally:
            self.executor.wake()

    def remove_job(self, job_id: str) -> ScheduledJob:
        """Delete a job that is not running."""
        return self.manager.remove_job(job_id)

    async def remove_job_async(self, job_id: str) -> ScheduledJob:
        """``remove_job`` for code on the event loop."""
        try:
            return await self.manager.remove_job_async(job_id)
        finally:
            self.executor.wake()

    def get_job(self, job_id: str) -> ScheduledJob:
        """One job by id (JobNotFoundError if absent)."""
        return self.manager.get_job(job_id)

    def list_jobs(
        self, account_id: str | None = None, status: JobStatus | str | None = None
    ) -> list[ScheduledJob]:
        """Jobs by filter, highest priority first, then earliest."""
        return self.manager.list_jobs(account_id, status)

    def get_ready_jobs(self) -> list[ScheduledJob]:
        """Jobs ready to run now, in dispatch order."""
        return self.manager.get_ready_jobs(self.clock())

    def cleanup_expired_jobs(self) -> list[ScheduledJob]:
        """Expire waiting jobs more than 24 h late, durably."""
        done = self.manager.cleanup_expired_jobs(self.clock())
        self.manager.commit()
        return done

    def recover_stuck_jobs(self) -> list[ScheduledJob]:
        """Recover RUNNING jobs past their limit that this process is not running."""
        done = self.recovery.recover_stuck_jobs(self.clock(), owned=self.executor.running_job_ids)
        self.manager.commit()
        return done

    def recover_all_running_jobs(self) -> list[ScheduledJob]:
        """Recover every RUNNING job this process is not running."""
        done = self.recovery.recover_all_running_jobs(
            self.clock(), owned=self.executor.running_job_ids
        )
        self.manager.commit()
        return done

    def jobs_snapshot(self, kind: str | None = None) -> list[ScheduledJob]:
        """Every job (of ``kind``, if given) as the table holds it now, in no set order.

        Safe to call from a worker thread (a stage run by ``asyncio.to_thread``): the
        table's values are copied in one C-level call, so a change the loop thread makes
        meanwhile cannot break the copy. The records are the table's own: a change replaces
        a record, never alters it, so they stay as they were; do not change them.
        """
        table = list(self.manager.jobs.values())
        return table if kind is None else [job for job in table if job.kind == kind]

    async def update_fields(self, job_id: str, fields: dict[str, Any]) -> ScheduledJob:
        """Merge extra ``fields`` (not the scheduler's own) into a job's record, durably.

        For a running job's handler to checkpoint its progress (the pipeline's ``stage``
        and ``pipeline`` fields). Call it on the loop; from a worker thread, hand it to the
        loop (``asyncio.run_coroutine_threadsafe``). Raises JobNotFoundError, or
        JobValidationError naming a field that cannot be set here.
        """
        return await self.manager.update_fields_async(job_id, fields)

    def find_job(self, job_id: str) -> ScheduledJob | None:
        """One job by id, or None if there is none (``get_job`` raises instead)."""
        return self.manager.jobs.get(job_id)

    async def store_job(self, job: ScheduledJob) -> ScheduledJob:
        """Save a whole record as it is, durably (insert or replace), and wake the loop.

        For an extension that keeps records of its own work as jobs (the pipeline's daily
        run records each video it makes, and ends it); ``add`` is for new work to run.
        """
        saved = self.manager.save(job)
        try:
            await self.manager.commit_async()
        finally:
            self.executor.wake()
        return saved

    def counts_by_status(self) -> dict[str, int]:
        """How many jobs are in each status."""
        counts = {status.value: 0 for status in JobStatus}
        for job in self.manager.jobs.values():
            counts[job.status.value] += 1
        return counts
