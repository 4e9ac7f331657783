"""JobManager: validates and applies every change to the job table.

It owns the due-time index, so choosing the next job never scans all jobs. Every change
goes through ``save`` (memory + index) and becomes durable at ``commit`` (one flush of the
changed days); the public operations commit before they return, so a returned job is on
disk. Each operation that writes has an ``*_async`` twin for the event loop, which awaits
the writer thread instead of blocking (see ``storage.py``); the CLI's direct mode uses the
plain ones. Storage is reached only through the ``JobStore`` protocol (``job_store.py``);
a job to add arrives as a ``NewJob`` (``new_job.py``), which has checked its own fields.

Whoever needs to follow the table (the execution history, the audit trail, the metrics)
adds a ``JobObserver`` to ``observers``: it is called with the record before and after
each change (None for an added or a removed job), on the loop thread, after the change
is in memory (an add: after it is durable). An observer must be quick and must not
raise; one that raises is logged and the change goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from . import transitions
from .clock import Clock, utc_now
from .due_queue import DueQueue
from .errors import JobConflictError, JobNotFoundError, JobValidationError, StorageError
from .gc_pause import gc_paused
from .job_store import JobStore
from .models import (
    EXPIRY_AFTER,
    JobPriority,
    JobStatus,
    ScheduledJob,
    check_schedule_window,
    normalize_text,
    validation_error_from_pydantic,
)
from .new_job import NewJob

__all__ = ["JobManager", "JobObserver"]

JobObserver = Callable[["ScheduledJob | None", "ScheduledJob | None"], None]
"""Called as ``observer(before, after)`` for each change to the job table."""

logger = logging.getLogger(__name__)

class JobManager:
    """Add, remove, list and select jobs.

    :param storage: the job table and where it is kept (a ``JobStore``: the daily files of
        ``storage.JobStorage``, or any other store that keeps its contract).
    :param clock: the wall clock.
    :param kinds: the kinds a new job may have; ``None`` accepts any.
    """

    def __init__(
        self,
        storage: JobStore,
        *,
        clock: Clock = utc_now,
        kinds: Collection[str] | None = None,
    ) -> None:
        self.storage = storage
        self.jobs = storage.jobs
        self._clock = clock
        self._kinds = kinds
        self.queue = DueQueue(self.jobs.get)
        self._running: set[str] = set()
        self.observers: list[JobObserver] = []

    def _notify(self, before: ScheduledJob | None, after: ScheduledJob | None) -> None:
        for observer in self.observers:
            try:
                observer(before, after)
            except Exception:
                job = after or before
                logger.exception("a job observer failed", extra={"job_id": job.job_id if job else None})

    # -- loading and saving --------------------------------------------------------------

    def load(self) -> int:
        """Read the files and index the waiting jobs; return how many jobs loaded."""
        with gc_paused():  # the files and then the index: no garbage, only new objects
            self.storage.load()
            self.queue = DueQueue(self.jobs.get)
            self.queue.track_all(self.jobs.values())
            self._running = {job_id for job_id, job in self.jobs.items() if job.status is JobStatus.RUNNING}
        return len(self.jobs)

    def _index(self, job: ScheduledJob) -> None:
        self.queue.track(job)
        if job.status is JobStatus.RUNNING:
            self._running.add(job.job_id)
        else:
            self._running.discard(job.job_id)

    def save(self, job: ScheduledJob) -> ScheduledJob:
        """Put ``job`` in the table and index (durable at the next ``commit``)."""
        before = self.jobs.get(job.job_id)
        self.storage.put(job)
        self._index(job)
        if self.observers and before is not job:
            self._notify(before, job)
        return job

    def commit(self) -> None:
        """Flush the changed days to disk."""
        self.storage.flush()

    async def commit_async(self) -> None:
        """``commit`` for the event loop (awaits the writer thread)."""
        await self.storage.flush_async()

    # -- the public operations ------------------------------------------------------------

    def add(
        self, new: NewJob, *, extra: dict[str, Any] | None = None, status: JobStatus = JobStatus.SCHEDULED
    ) -> ScheduledJob:
        """Create a SCHEDULED job from ``new``, save it durably and return it.

        ``new`` has checked its own fields; here come the rules that need more: its
        ``scheduled_time`` (default now) must be within one year of now, its kind must be
        registered (None: ``log``), and a ``job_id`` that exists already is a repeat of the
        same create (answered with the stored job) or, with other fields, a
        JobConflictError. Raises JobValidationError (field and rule) and changes nothing if
        a rule is broken. A StorageError says whether the disk was changed.

        ``extra``: more fields for the record, none of the scheduler's own (a schedule's
        fire carries ``schedule_id``, ``fire_time`` and ``payload``). ``status``: SCHEDULED,
        or PENDING for a job that waits until ``release`` (a fire over its schedule's cap).
        """
        job = self._new_job(new, extra, status)
        given_time = new.scheduled_time is not None
        if (held := self._check_new_id(job, given_time=given_time)) is not None:
            return held  # a repeat of a create already done: its first answer
        self.commit()  # earlier changes first, so a failure below concerns this job only
        self.storage.put(job)
        try:
            self.commit()
        except StorageError as exc:
            self.storage.delete(job.job_id)
            raise self._undo_on_disk(job.job_id, exc, "the job was not added") from exc
        return self._added(job)

    async def add_async(
        self, new: NewJob, *, extra: dict[str, Any] | None = None, status: JobStatus = JobStatus.SCHEDULED
    ) -> ScheduledJob:
        """``add`` for the event loop. The job is indexed (can run) once it is on disk."""
        job = self._new_job(new, extra, status)
        given_time = new.scheduled_time is not None
        if (held := self._check_new_id(job, given_time=given_time)) is not None:
            return held
        await self.commit_async()
        # after the await: the table may have changed meanwhile (the same create, twice)
        if (held := self._check_new_id(job, given_time=given_time)) is not None:
            return held
        self.storage.put(job)
        try:
            await self.commit_async()
        except StorageError as exc:
            if self.jobs.get(job.job_id) is job:
                self.storage.delete(job.job_id)
            raise await self._undo_on_disk_async(job.job_id, exc, "the job was not added") from exc
        return self._added(job)

    def add_job(
        self,
        account_id: Any,
        content: Any,
        scheduled_time: datetime | None = None,
        priority: Any = JobPriority.NORMAL,
        max_retries: Any = 3,
        *,
        kind: Any = "log",
        job_id: str | None = None,
    ) -> ScheduledJob:
        """``add`` with the fields as arguments (see ``NewJob``): validate, add, return.

        Text fields are stored in Unicode NFC. Raises JobValidationError naming the field.
        """
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
        kind: Any = "log",
        job_id: str | None = None,
    ) -> ScheduledJob:
        """``add_async`` with the fields as arguments (see ``add_job``)."""
        return await self.add_async(NewJob(
            account_id=account_id, content=content, scheduled_time=scheduled_time,
            priority=priority, max_retries=max_retries, kind=kind, job_id=job_id,
        ))

    def _new_job(
        self, new: NewJob, extra: dict[str, Any] | None = None, status: JobStatus = JobStatus.SCHEDULED
    ) -> ScheduledJob:
        now = self._clock()
        if status not in (JobStatus.SCHEDULED, JobStatus.PENDING):
            raise ValueError(f"a new job is scheduled or pending, not {status.value}")
        core = sorted(set(extra or ()) & set(ScheduledJob.model_fields))
        if core:
            raise JobValidationError(core[0], "is managed by the scheduler and cannot be set here")
        fields: dict[str, Any] = {
            **(extra or {}),
            "account_id": new.account_id,
            "content": new.content,
            "scheduled_time": now if new.scheduled_time is None else new.scheduled_time,
            "priority": new.priority,
            "max_retries": new.max_retries,
            "status": status,
            "created_at": now,
            "updated_at": now,
        }
        if new.kind is not None:
            fields["kind"] = new.kind
        if new.job_id is not None:
            fields["job_id"] = new.job_id
        try:  # NewJob checked each field with the record's own rules: this does not refuse
            job = ScheduledJob.model_validate(fields)
        except PydanticValidationError as exc:
            raise validation_error_from_pydantic(exc) from None
        check_schedule_window(job.scheduled_time, now)
        if self._kinds is not None and job.kind not in self._kinds:
            raise JobValidationError("kind", f"must be one of: {', '.join(sorted(self._kinds))}")
        return job

    def _check_new_id(self, job: ScheduledJob, *, given_time: bool = True) -> ScheduledJob | None:
        """None if ``job``'s id is free; the stored job if it is a repeat of the same request.

        A create that names its id (the CLI mints one; an API client sends ``job_id`` or an
        ``Idempotency-Key``) may be sent twice, e.g. after a timeout: the repeat answers
        with the job the first one made. The same id with other fields is a conflict.
        """
        held = self.jobs.get(job.job_id)
        if held is None:
            return None
        differs = [
            name
            for name in ("account_id", "content", "kind", "priority", "max_retries")
            if getattr(held, name) != getattr(job, name)
        ]
        # the time counts only while the stored job still waits for its first run
        if given_time and held.retry_count == 0 and held.scheduled_time != job.scheduled_time:
            if held.status is JobStatus.SCHEDULED:
                differs.append("scheduled_time")
        if differs:
            raise JobConflictError(
                f"job {job.job_id} already exists ({held.kind}, due {held.scheduled_time.isoformat()}) "
                f"with another {', '.join(differs)}; remove it first or use another job id"
            )
        return held

    def _added(self, job: ScheduledJob) -> ScheduledJob:
        if self.jobs.get(job.job_id) is job:  # not removed while its write was under way
            self._index(job)
            if self.observers:
                self._notify(None, job)
        logger.info(
            "job added",
            extra={"job_id": job.job_id, "kind": job.kind, "scheduled_time": job.scheduled_time.isoformat()},
        )
        return job

    def remove_job(self, job_id: str) -> ScheduledJob:
        """Delete a job that is not running; return it. Raises JobNotFoundError / JobConflictError."""
        self._removable(job_id)
        self.commit()  # earlier changes first, so a failure below concerns this job only
        job = self._delete(job_id)
        try:
            self.commit()
        except StorageError as exc:
            self.save(job)
            raise self._undo_on_disk(job_id, exc, "the job was not removed") from exc
        logger.info("job removed", extra={"job_id": job_id})
        return job

    async def remove_job_async(self, job_id: str) -> ScheduledJob:
        """``remove_job`` for the event loop."""
        self._removable(job_id)
        await self.commit_async()
        job = self._delete(job_id)  # checks again: the job may have changed meanwhile
        try:
            await self.commit_async()
        except StorageError as exc:
            if job_id not in self.jobs:
                self.save(job)
            raise await self._undo_on_disk_async(job_id, exc, "the job was not removed") from exc
        logger.info("job removed", extra={"job_id": job_id})
        return job

    def _removable(self, job_id: str) -> ScheduledJob:
        job = self.get_job(job_id)
        if job.status is JobStatus.RUNNING:
            raise JobConflictError(f"job is running: {job_id} (remove it after the run ends)")
        return job

    def _delete(self, job_id: str) -> ScheduledJob:
        job = self._removable(job_id)
        self.storage.delete(job_id)
        self.queue.forget(job_id)
        self._running.discard(job_id)
        if self.observers:
            self._notify(job, None)
        return job

    def _undo_on_disk(self, job_id: str, exc: StorageError, outcome: str) -> StorageError:
        """After a failed commit (memory already rolled back): the error to raise.

        A write that failed before it replaced any file left the disk as it was. One that
        got further (a file replaced, then the folder fsync failed) may have put the change
        on disk: the day is written again as memory has it, so the disk agrees with the
        error; if even that fails, the day stays dirty and the next write corrects it.
        """
        if exc.disk_changed:
            try:
                self.commit()
            except StorageError:
                return self._undo_failed(job_id, exc)
        return exc.with_note(f"{outcome}; nothing was changed")

    async def _undo_on_disk_async(self, job_id: str, exc: StorageError, outcome: str) -> StorageError:
        if exc.disk_changed:
            try:
                await self.commit_async()
            except StorageError:
                return self._undo_failed(job_id, exc)
        return exc.with_note(f"{outcome}; nothing was changed")

    @staticmethod
    def _undo_failed(job_id: str, exc: StorageError) -> StorageError:
        logger.error("could not undo a failed change on disk; it is retried at the next change",
                     extra={"job_id": job_id})
        return exc.with_note("the change may have reached the disk; the next write undoes it")

    async def update_fields_async(self, job_id: str, fields: dict[str, Any]) -> ScheduledJob:
        """Merge extra ``fields`` (not the core ones) into a job's record and save it durably.

        For a running job's handler to checkpoint its progress (e.g. a pipeline's stage).
        """
        core = sorted(set(fields) & set(ScheduledJob.model_fields))
        if core:
            raise JobValidationError(core[0], "is managed by the scheduler and cannot be set here")
        job = self.get_job(job_id)
        try:
            updated = ScheduledJob.model_validate({**job.model_dump(), **fields, "updated_at": self._clock()})
        except PydanticValidationError as exc:
            raise validation_error_from_pydantic(exc) from None
        self.save(updated)
        await self.commit_async()
        return updated

    async def release_async(self, job_id: str) -> ScheduledJob:
        """A PENDING job becomes SCHEDULED (due at once if its time has passed), durably.

        Raises JobNotFoundError, or JobConflictError if the job is not pending.
        """
        job = self.get_job(job_id)
        if job.status is not JobStatus.PENDING:
            raise JobConflictError(f"job {job_id} is {job.status.value}, not pending")
        released = job.model_copy(update={"status": JobStatus.SCHEDULED, "updated_at": self._clock()})
        self.save(released)
        await self.commit_async()
        return released

    def get_job(self, job_id: str) -> ScheduledJob:
        """The job with this id; raises JobNotFoundError."""
        job = self.jobs.get(job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    def list_jobs(
        self, account_id: str | None = None, status: JobStatus | str | None = None
    ) -> list[ScheduledJob]:
        """Jobs matching the filters, highest priority first, then earliest scheduled_time.

        The account is compared in NFC, as jobs store it (however it was typed)."""
        account_id = normalize_text(account_id)
        if status is not None and not isinstance(status, JobStatus):
            try:
                status = JobStatus(str(status).lower())
            except ValueError:
                allowed = ", ".join(s.value for s in JobStatus)
                raise JobValidationError("status", f"must be one of: {allowed}") from None
        selected = [
            job
            for job in self.jobs.values()
            if (account_id is None or job.account_id == account_id)
            and (status is None or job.status is status)
        ]
        selected.sort(key=lambda j: (-int(j.priority), j.scheduled_time, j.job_id))
        return selected

    def get_ready_jobs(self, now: datetime | None = None) -> list[ScheduledJob]:
        """Ready jobs in dispatch order (priority, then scheduled_time); removes none."""
        now = now or self._clock()
        self.queue.collect(now)
        return [job for job in self.queue.ready() if job.is_ready(now)]

    def pop_next_ready(self, now: datetime) -> ScheduledJob | None:
        """Take the next job to run at ``now`` out of the index, or None."""
        self.queue.collect(now)
        while (job := self.queue.pop_ready()) is not None:
            if job.is_ready(now):
                return job
            self.queue.track(job)  # not ready after all (changed meanwhile): re-index
        return None

    def cleanup_expired_jobs(self, now: datetime | None = None) -> list[ScheduledJob]:
        """Mark EXPIRED every waiting job more than 24 h past its time; return them."""
        now = now or self._clock()
        self.queue.collect(now)
        stale = self.queue.take_ready_if(lambda job: job.is_expired(now))
        done = [self.save(transitions.expired(job, now)) for job in stale]
        for job in done:
            logger.warning("job expired", extra={"job_id": job.job_id, "error": job.error})
        return done

    def next_wake_time(self) -> datetime | None:
        """When the loop next has something to do on its own (a job due or expiring)."""
        due = self.queue.next_due()
        oldest_ready = self.queue.earliest_ready_time()
        expiry = oldest_ready + EXPIRY_AFTER if oldest_ready is not None else None
        return min((t for t in (due, expiry) if t is not None), default=None)

    def running_jobs(self) -> list[ScheduledJob]:
        """Jobs whose status is RUNNING."""
        return [self.jobs[job_id] for job_id in sorted(self._running)]
