"""ScheduleService: recurring schedules that make jobs, and the history of what they ran.

Generic: a schedule names a registered job kind (``target_command``) and its payload; each
fire adds one job of that kind carrying ``schedule_id``, ``fire_time``, ``payload`` and
``triggered_by``, whose id is the execution's (``execution_history.py``). What the service
does, in the order a day sees it:

- **The loop** keeps each active schedule's next fire in a heap and sleeps until the
  earliest (or until a change wakes it): it never polls. Computing the next due fire is a
  look at the heap's top.
- **A fire** (``fire_times.due_fires``): the fires due since the schedule's cursor are
  found; after downtime there may be many. Those older than the misfire grace are
  misfires, recorded and counted; ``coalesce`` picks which of the due fires run
  (``fire_times.catch_up``); the rest get a record saying they did not run.
- **Instances**: a schedule's unfinished runs (jobs SCHEDULED or RUNNING) are capped at
  ``max_instances``; a fire over the cap adds its job PENDING, and the oldest pending job
  is released when a run ends: fires wait, they are not dropped (a waiting job still
  expires after 24 h, as every job does).
- **A run that ends** updates its record (the job observer), resets or counts the
  schedule's failures in a row, and with ``pause_after_failures`` N a schedule whose last
  N runs failed pauses itself, says why, and notifies.
- **Trigger** runs a schedule now, paused or not, over its cap or not; **backfill** adds
  the fires of a past window that have no job yet (dedupe by execution id).
- **Pause / resume**: a paused schedule does not fire; resuming starts from now (fires
  missed while paused are not misfires: nobody wanted them).

Every change to a schedule goes to ``schedules.json`` (``schedule_store.py``), to the
audit trail when one is attached (``audit``), and is made on the loop thread.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError

from .actor import SYSTEM_ACTOR, clean_actor, current_actor
from .clock import load_timezone
from .errors import (
    CreatorLimitError,
    JobValidationError,
    ScheduleConflictError,
    ScheduleNotFoundError,
    SchedulerError,
)
from .execution_history import ExecutionHistory, execution_day
from .fire_times import MAX_CATCH_UP_FIRES, catch_up, due_fires, next_fire, wall_text
from .models import FINISHED_STATUSES, JobStatus, ScheduledJob
from .new_job import NewJob
from .schedule_model import (
    Schedule,
    ScheduleSpec,
    ScheduleStatus,
    ScheduleType,
    ScheduleUpdate,
    check_definition,
    job_priority,
    schedule_error,
)
from .schedule_store import ScheduleStore

if TYPE_CHECKING:
    from .scheduler import Scheduler

__all__ = ["BULK_OPERATIONS", "EXECUTION_STATUSES", "ScheduleDefaults", "ScheduleService", "execution_id_for"]

logger = logging.getLogger(__name__)

_JOB_STATES = {
    JobStatus.PENDING: "waiting",
    JobStatus.SCHEDULED: "scheduled",
    JobStatus.RUNNING: "running",
    JobStatus.COMPLETED: "succeeded",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
    JobStatus.EXPIRED: "expired",
}
EXECUTION_STATUSES = ("waiting", "scheduled", "retrying", "running", "succeeded", "failed",
                      "cancelled", "expired", "misfired", "skipped")
"""An execution's status: its job's (``waiting`` = PENDING over the cap, ``retrying`` = a
failed attempt with a retry due), or ``misfired`` / ``skipped`` for a fire that did not run
(late past the grace, or coalesced away)."""
MAX_SLEEP_SECONDS = 60.0
MAX_BACKFILL_FIRES = 1000
_ACTIVE = (JobStatus.SCHEDULED, JobStatus.RUNNING)


BULK_OPERATIONS = ("pause", "resume", "delete")
"""What ``bulk_operation`` does to each schedule."""


def execution_id_for(schedule_id: str, fire: datetime, zone: tzinfo, *, trigger: bool = False) -> str:
    """The id of a fire's execution and job: the schedule's id and the fire's wall-clock time.

    The second pass of a repeated (fall-back) hour gets a ``b``; a trigger, which may
    come twice in one second, a random ``-t<4 hex>``.
    """
    local = fire.astimezone(zone)
    text = f"{schedule_id}-{local:%Y%m%dT%H%M%S}" + ("b" if local.fold else "")
    return f"{text}-t{secrets.token_hex(2)}" if trigger else text


@dataclass(frozen=True)
class ScheduleDefaults:
    """The daemon-wide defaults a schedule's unset policy fields take (the seed's env vars)."""

    timezone: str = "Asia/Ho_Chi_Minh"
    misfire_grace_seconds: float = 300.0
    max_instances: int = 3
    max_lookahead_days: int = 365
    max_retries: int = 3
    retry_delay_seconds: float = 300.0
    max_schedules_per_creator: int = 1000

    @classmethod
    def from_settings(cls, settings: Any) -> ScheduleDefaults:
        return cls(
            timezone=settings.timezone_name,
            misfire_grace_seconds=settings.misfire_grace_seconds,
            max_instances=settings.max_instances,
            max_lookahead_days=settings.max_lookahead_days,
            max_retries=settings.default_max_retries,
            retry_delay_seconds=settings.default_retry_delay_seconds,
            max_schedules_per_creator=settings.max_schedules_per_creator,
        )

    def policy(self, name: str) -> Any:
        """The default of a schedule's policy field ``name``."""
        return {
            "misfire_grace_time": self.misfire_grace_seconds,
            "max_instances": self.max_instances,
            "max_retries": self.max_retries,
            "retry_delay_seconds": self.retry_delay_seconds,
        }[name]


class ScheduleService:
    """The schedules of one scheduler: their file, their loop, their history.

    :param scheduler: the scheduler whose jobs the fires become (its clock, registry,
        notifier and job table are used).
    :param defaults: the daemon-wide policy defaults.
    :param store: where the schedules are kept (default ``DATA_DIR/schedules.json``).
    :param history: the execution records (default ``DATA_DIR/executions/``).
    """

    name = "schedules"

    def __init__(
        self,
        scheduler: Scheduler,
        defaults: ScheduleDefaults | None = None,
        *,
        store: ScheduleStore | None = None,
        history: ExecutionHistory | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.clock = scheduler.clock
        self.defaults = defaults or ScheduleDefaults(timezone=getattr(scheduler.zone, "key", "UTC"))
        self.store = store or ScheduleStore(scheduler.data_dir)
        self.history = history or ExecutionHistory(scheduler.data_dir)
        self.audit: Any = None
        """An object with ``record(action, target, target_id, before, after)`` (the audit trail), or None."""
        self._heap: list[tuple[datetime, int, str]] = []
        self._next: dict[str, datetime] = {}
        self._seq = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._active: dict[str, set[str]] = {}
        self._waiting: dict[str, deque[str]] = {}
        self._followups: set[asyncio.Task[Any]] = set()
        self._catching_up: set[str] = set()
        """Schedules whose catch-up is longer than one part (MAX_CATCH_UP_FIRES) and under way."""
        self._zones: dict[str, tzinfo] = {}
        self.misfires_total = 0
        """Fires found later than their grace since the daemon started."""
        self.executions_ended: dict[tuple[str, str], int] = {}
        """(schedule_type, status) -> runs ended since start (the metrics' counter)."""
        self.durations: list[float] = []
        """Durations in seconds of runs ended since start, newest last (the last 10,000)."""
        self.duration_listeners: list[Callable[[str, float], None]] = []
        self.loaded = False
        self._order: list[Schedule] = []
        self._order_version = -1
        self._done: set[str] = set()
        """Schedules with no fire left (as ``_plan`` last found): ``status_of`` needs no cronsim."""

    # -- lifecycle ---------------------------------------------------------------------------

    def load(self) -> int:
        """Read the schedules and index the jobs they made (after the scheduler loaded)."""
        self.store.load()
        self._active.clear()
        self._waiting.clear()
        waiting: list[ScheduledJob] = []
        for job in self.scheduler.manager.jobs.values():
            schedule_id = _schedule_of(job)
            if schedule_id is None:
                continue
            if job.status in _ACTIVE:
                self._active.setdefault(schedule_id, set()).add(job.job_id)
            elif job.status is JobStatus.PENDING:
                waiting.append(job)
        for job in sorted(waiting, key=lambda j: (str(getattr(j, "fire_time", "")), j.job_id)):
            self._waiting.setdefault(_schedule_of(job) or "", deque()).append(job.job_id)
        if self._observe not in self.scheduler.manager.observers:
            self.scheduler.manager.observers.append(self._observe)
        self._heap.clear()
        self._next.clear()
        now = self.clock()
        for schedule in self.store.schedules.values():
            self._plan(schedule, now, reuse=True)
        self.loaded = True
        logger.info("schedules loaded", extra={"schedules": len(self.store.schedules), "problems": len(self.store.problems)})
        return len(self.store.schedules)

    async def start(self) -> None:
        if not self.loaded:
            self.load()
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="schedule-loop")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._followups:
            await asyncio.gather(*self._followups, return_exceptions=True)
        await self.store.flush_async()
        await self.history.flush()
        self.history.close()

    def wake(self) -> None:
        """Ask the loop to look at the clock now (the clock moved, a test stepped it)."""
        self._wake.set()

    @property
    def alive(self) -> bool:
        """The schedule loop is running."""
        return self._task is not None and not self._task.done()

    # -- the loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()  # before the pass: a wake during it (a change, a stop) is kept
            now = self.clock()
            try:
                for schedule_id in self._pop_due(now):
                    await self._fire_due(schedule_id, now)
                if self.store.dirty:
                    await self.store.flush_async()
            except Exception:
                logger.exception("schedule pass failed; retrying in 10 s")
                await self._sleep(10.0)
                continue
            nxt = self.next_due()
            delay = MAX_SLEEP_SECONDS if nxt is None else (nxt[0] - self.clock()).total_seconds()
            await self._sleep(min(max(delay, 0.0), MAX_SLEEP_SECONDS))

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def _pop_due(self, now: datetime) -> list[str]:
        due = []
        while self._heap and self._heap[0][0] <= now:
            when, _, schedule_id = heapq.heappop(self._heap)
            if self._next.get(schedule_id) == when:
                del self._next[schedule_id]
                due.append(schedule_id)
        return due

    def next_due(self) -> tuple[datetime, str] | None:
        """The earliest next fire of all schedules and whose it is (a look at the heap's top)."""
        heap = self._heap
        while heap and self._next.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)  # stale: the schedule changed, paused or went
        return (heap[0][0], heap[0][2]) if heap else None

    def _zone(self, schedule: Schedule) -> tzinfo:
        name = schedule.zone_name(self.defaults.timezone)
        zone = self._zones.get(name)
        if zone is None:
            zone = self._zones[name] = load_timezone(name)
        return zone

    def _cursor(self, schedule: Schedule) -> datetime:
        start = schedule.last_fire_time or schedule.created_at
        cursor = schedule.cursor
        return cursor if cursor is not None and cursor > start else start

    def _compute_next(self, schedule: Schedule) -> datetime | None:
        if schedule.paused:
            return None
        horizon = timedelta(days=self.defaults.max_lookahead_days + 1)
        return next_fire(schedule, self._cursor(schedule), self._zone(schedule),
                         last_wall=schedule.last_fire_wall, horizon=horizon)

    def _plan(self, schedule: Schedule, now: datetime, *, reuse: bool = False) -> None:
        """Put the schedule's next fire in the heap (or take it out: paused, finished).

        ``reuse`` (at load): take the stored ``next_fire_time`` if it was computed from the
        timing the schedule has now. A newly computed one is noted in the file's record.
        """
        key = schedule.timing_key()
        if reuse and schedule.next_fire_key == key:
            when = schedule.next_fire_time
        else:
            when = self._compute_next(schedule)
            if schedule.next_fire_key != key or schedule.next_fire_time != when:
                self.store.note_next(schedule.schedule_id, when, key)
        if when is None:
            self._next.pop(schedule.schedule_id, None)
            if schedule.paused:
                self._done.discard(schedule.schedule_id)
            else:
                self._done.add(schedule.schedule_id)
            return
        self._done.discard(schedule.schedule_id)
        self._next[schedule.schedule_id] = when
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, schedule.schedule_id))
        self._wake.set()

    async def _fire_due(self, schedule_id: str, now: datetime) -> None:
        schedule = self.store.schedules.get(schedule_id)
        if schedule is None or schedule.paused:
            return
        zone = self._zone(schedule)
        fires, more = due_fires(schedule, self._cursor(schedule), now, zone, limit=MAX_CATCH_UP_FIRES)
        if not fires:
            self._plan(schedule, now)
            return
        grace = timedelta(seconds=self._policy(schedule, "misfire_grace_time"))
        continued = schedule_id in self._catching_up  # an earlier pass had the catch-up's first part
        if more:
            self._catching_up.add(schedule_id)
        else:
            self._catching_up.discard(schedule_id)
        plan = catch_up(fires, now, grace, schedule.coalesce, first=not continued, last=not more)
        late_count = len(plan.late)  # the fires past this part come in the next pass, counted there
        if late_count:
            self.misfires_total += late_count
            logger.warning(
                "schedule misfired",
                extra={"schedule_id": schedule_id, "misfires": late_count, "coalesce": schedule.coalesce.value,
                       "runs": len(plan.run), "more_than_listed": more},
            )
        for fire in plan.not_run:
            state = "misfired" if fire in plan.late else "skipped"
            self._record_unrun(schedule, fire, zone, now, state)
        for fire in plan.run:
            await self._add_run(schedule, fire, zone, now, triggered_by="schedule", late=fire in plan.late)
        last = fires[-1]
        # the record as it is now: while the runs were added, one may have ended (and counted a
        # failure, or paused the schedule), or a request paused, changed or deleted it
        current = self.store.schedules.get(schedule_id)
        if current is None:
            return
        updated = current.model_copy(update={
            "last_fire_time": last,
            "last_fire_wall": wall_text(last, zone),
            "fires": current.fires + len(fires),
        })
        self.store.put(updated)
        self._plan(updated, now)

    def _record_unrun(self, schedule: Schedule, fire: datetime, zone: tzinfo, now: datetime, state: str) -> None:
        execution_id = execution_id_for(schedule.schedule_id, fire, zone)
        self.history.record(fire.astimezone(zone).date(), {
            "execution_id": execution_id,
            "schedule_id": schedule.schedule_id,
            "schedule_name": schedule.name,
            "job_id": None,
            "fire_time": fire.isoformat(),
            "status": state,
            "misfire": state == "misfired",
            "late_seconds": round((now - fire).total_seconds(), 3),
            "triggered_by": "schedule",
            "recorded_at": now.isoformat(),
            "error": None,
        })

    def _policy(self, schedule: Schedule, name: str) -> Any:
        value = getattr(schedule, name)
        return self.defaults.policy(name) if value is None else value

    async def _add_run(
        self,
        schedule: Schedule,
        fire: datetime,
        zone: tzinfo,
        now: datetime,
        *,
        triggered_by: str,
        late: bool = False,
        execution_id: str | None = None,
    ) -> ScheduledJob | None:
        """Add the job of one fire (PENDING when over the cap); None if it exists.

        A trigger passes its own ``execution_id`` (``execution_id_for(..., trigger=True)``):
        its job runs at once, over the cap or not.
        """
        trigger = execution_id is not None
        execution_id = execution_id or execution_id_for(schedule.schedule_id, fire, zone)
        manager = self.scheduler.manager
        if execution_id in manager.jobs:
            return None  # this wall-clock fire already has its job: run once
        active = self._active.get(schedule.schedule_id, set())
        over = not trigger and len(active) >= self._policy(schedule, "max_instances")
        new = NewJob(
            job_id=execution_id,
            account_id=schedule.account_id or _account(schedule.created_by),
            content=f"schedule {schedule.name}"[:500],
            kind=schedule.target_command,
            scheduled_time=now,
            priority=job_priority(schedule.priority),
            max_retries=self._policy(schedule, "max_retries"),
        )
        extra = {
            "schedule_id": schedule.schedule_id,
            "fire_time": fire.isoformat(),
            "payload": schedule.command_payload,
            "triggered_by": triggered_by,
            "retry_delay_seconds": self._policy(schedule, "retry_delay_seconds"),
        }
        status = JobStatus.PENDING if over else JobStatus.SCHEDULED
        job = await self.scheduler.add_async(new, extra=extra, status=status)
        self.history.record(fire.astimezone(zone).date(), {
            "execution_id": execution_id,
            "schedule_id": schedule.schedule_id,
            "schedule_name": schedule.name,
            "schedule_type": schedule.schedule_type.value,
            "job_id": execution_id,
            "fire_time": fire.isoformat(),
            "status": "waiting" if job.status is JobStatus.PENDING else "scheduled",
            "misfire": late,
            "late_seconds": round(max((now - fire).total_seconds(), 0.0), 3),
            "triggered_by": triggered_by,
            "recorded_at": now.isoformat(),
            "started_at": None,
            "ended_at": None,
            "duration_seconds": None,
            "attempts": 0,
            "error": None,
        })
        logger.info(
            "schedule fired",
            extra={"schedule_id": schedule.schedule_id, "job_id": job.job_id, "fire_time": fire.isoformat(),
                   "triggered_by": triggered_by, "waiting": over},
        )
        return job

    # -- following the jobs -------------------------------------------------------------------

    def _observe(self, before: ScheduledJob | None, after: ScheduledJob | None) -> None:
        job = after or before
        if job is None:
            return
        schedule_id = _schedule_of(job)
        if schedule_id is None:
            return
        if after is None:  # removed
            self._active.get(schedule_id, set()).discard(job.job_id)
            waiting = self._waiting.get(schedule_id)
            if waiting and job.job_id in waiting:
                waiting.remove(job.job_id)
            if before is not None and not before.is_finished():
                self._update_record(before, status="cancelled", ended_at=self.clock())
            self._release_soon(schedule_id)
            return
        if before is not None and before.status is after.status and before.retry_count == after.retry_count:
            return  # a checkpoint, not a change of state
        active = self._active.setdefault(schedule_id, set())
        if after.status in _ACTIVE:
            active.add(after.job_id)
        else:
            active.discard(after.job_id)
        if after.status is JobStatus.PENDING:
            waiting = self._waiting.setdefault(schedule_id, deque())
            if after.job_id not in waiting:
                waiting.append(after.job_id)
        else:
            waiting = self._waiting.get(schedule_id)
            if waiting and after.job_id in waiting:
                waiting.remove(after.job_id)
        state = _JOB_STATES[after.status]
        if after.status is JobStatus.SCHEDULED and after.retry_count > 0:
            state = "retrying"
        fields: dict[str, Any] = {"status": state, "attempts": after.retry_count + (1 if after.started_at else 0),
                                  "error": after.error}
        if after.started_at is not None:
            fields["started_at"] = after.started_at.isoformat()
        if after.status in FINISHED_STATUSES:
            ended = after.completed_at or after.updated_at
            fields["ended_at"] = ended.isoformat()
            if after.started_at is not None and after.status in (JobStatus.COMPLETED, JobStatus.FAILED):
                duration = round((ended - after.started_at).total_seconds(), 3)
                fields["duration_seconds"] = duration
                self.durations.append(duration)
                del self.durations[:-10_000]
                for listener in self.duration_listeners:
                    listener(state, duration)
            schedule = self.store.schedules.get(schedule_id)
            kind = schedule.schedule_type.value if schedule else "unknown"
            self.executions_ended[(kind, state)] = self.executions_ended.get((kind, state), 0) + 1
            self._ended(schedule_id, after)
        self._update_record(after, **fields)

    def _update_record(self, job: ScheduledJob, **fields: Any) -> None:
        day = execution_day(job.job_id)
        if day is None:
            return
        for key, value in list(fields.items()):
            if isinstance(value, datetime):
                fields[key] = value.isoformat()
        self.history.record(day, {"execution_id": job.job_id, "schedule_id": _schedule_of(job), **fields})

    def _ended(self, schedule_id: str, job: ScheduledJob) -> None:
        self._release_soon(schedule_id)
        schedule = self.store.schedules.get(schedule_id)
        if schedule is None or job.status not in (JobStatus.COMPLETED, JobStatus.FAILED):
            return
        count = 0 if job.status is JobStatus.COMPLETED else schedule.failures_in_a_row + 1
        if count == schedule.failures_in_a_row == 0:
            return  # a success after a success: nothing to write (schedules.json is rewritten whole)
        updated = schedule.model_copy(update={"failures_in_a_row": count})
        limit = schedule.pause_after_failures
        if limit is not None and count >= limit and not schedule.paused:
            reason = f"paused itself: its last {count} runs failed (last error: {job.error or 'unknown'})"
            updated = updated.model_copy(update={
                "paused": True, "paused_reason": reason[:500], "paused_at": self.clock(), "updated_at": self.clock(),
            })
            logger.error("schedule paused itself", extra={"schedule_id": schedule_id, "failures": count})
            self._audit("schedule.pause", schedule, updated, actor=SYSTEM_ACTOR)
            self.scheduler.notifier.notify(
                "schedule_paused",
                f"schedule {schedule.name} paused itself after {count} failed runs; fix it, then resume it "
                f"(schedule resume {schedule_id})",
                schedule_id=schedule_id, error=job.error,
            )
        self.store.put(updated)
        self._plan(updated, self.clock())
        self._wake.set()  # the loop writes the file

    def _release_soon(self, schedule_id: str) -> None:
        waiting = self._waiting.get(schedule_id)
        if not waiting:
            return
        schedule = self.store.schedules.get(schedule_id)
        cap = self._policy(schedule, "max_instances") if schedule else 1
        if len(self._active.get(schedule_id, ())) >= cap:
            return
        job_id = waiting.popleft()
        self._active.setdefault(schedule_id, set()).add(job_id)  # counted now: no double release
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the CLI's direct mode: no loop runs jobs; the daemon releases it
            waiting.appendleft(job_id)
            self._active[schedule_id].discard(job_id)
            return
        task = loop.create_task(self._release(job_id), name=f"release-{job_id}")
        self._followups.add(task)
        task.add_done_callback(self._followups.discard)

    async def _release(self, job_id: str) -> None:
        try:
            await self.scheduler.release_async(job_id)
        except SchedulerError as exc:
            logger.warning("could not release a waiting run", extra={"job_id": job_id, "error": exc.message})

    # -- the API --------------------------------------------------------------------------------

    def get(self, schedule_id: str) -> Schedule:
        schedule = self.store.schedules.get(schedule_id)
        if schedule is None:
            raise ScheduleNotFoundError(schedule_id)
        return schedule

    def status_of(self, schedule: Schedule) -> ScheduleStatus:
        if schedule.paused:
            return ScheduleStatus.PAUSED
        if schedule.schedule_id in self._next:
            return ScheduleStatus.ACTIVE
        if schedule.schedule_id in self._done or self._compute_next(schedule) is None:
            return ScheduleStatus.COMPLETED
        return ScheduleStatus.ACTIVE

    def next_run_time(self, schedule: Schedule) -> datetime | None:
        """The next fire as planned (the heap's), None when paused or finished."""
        if schedule.paused or schedule.schedule_id in self._done:
            return None
        when = self._next.get(schedule.schedule_id)
        return when if when is not None else self._compute_next(schedule)

    def describe(self, schedule: Schedule) -> dict[str, Any]:
        """The schedule as every answer gives it: its record, its defaults filled in, its
        status and ``next_run_time`` (aware ISO-8601, null when paused or finished), and
        how many of its runs are unfinished and waiting."""
        data = schedule.to_dict()
        for name in ("misfire_grace_time", "max_instances", "max_retries", "retry_delay_seconds"):
            data[name] = int(self._policy(schedule, name))
        data["timezone"] = schedule.zone_name(self.defaults.timezone)
        when = self.next_run_time(schedule)
        data["next_run_time"] = None if when is None else when.astimezone(self._zone(schedule)).isoformat()
        data["status"] = self.status_of(schedule).value
        data["running_instances"] = len(self._active.get(schedule.schedule_id, ()))
        data["waiting_instances"] = len(self._waiting.get(schedule.schedule_id, ()))
        return data

    def list(
        self,
        *,
        tag: str | None = None,
        status: str | None = None,
        created_by: str | None = None,
        schedule_type: str | None = None,
        name: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Schedule], int]:
        """Schedules matching every filter given, by name then id; and how many matched."""
        order = self._in_order()
        if tag is None and created_by is None and schedule_type is None and name is None and status is None:
            return order[offset:offset + limit], len(order)
        matched = [
            s for s in order
            if (tag is None or tag in s.tags)
            and (created_by is None or s.created_by == created_by)
            and (schedule_type is None or s.schedule_type.value == schedule_type)
            and (name is None or s.name == name)
            and (status is None or self.status_of(s).value == status)
        ]
        return matched[offset:offset + limit], len(matched)

    def _in_order(self) -> list[Schedule]:
        """Every schedule by name then id, sorted once per change of the set."""
        if self._order_version != self.store.version:
            self._order = sorted(self.store.schedules.values(), key=lambda s: (s.name, s.schedule_id))
            self._order_version = self.store.version
        return self._order

    def _validate(self, spec: ScheduleSpec | Schedule, now: datetime, *, new: bool) -> None:
        check_definition(spec)
        registry = self.scheduler.registry
        if spec.target_command not in registry:
            raise JobValidationError(
                "target_command", f"must be a registered kind: {', '.join(registry.kinds())} (got {spec.target_command!r})"
            )
        registry.check_payload(spec.target_command, spec.command_payload)
        lookahead = timedelta(days=self.defaults.max_lookahead_days)
        if spec.schedule_type is ScheduleType.ONE_TIME and spec.run_at is not None:
            grace = timedelta(seconds=spec.misfire_grace_time if spec.misfire_grace_time is not None
                              else self.defaults.misfire_grace_seconds)
            if new and spec.run_at < now - grace:
                raise JobValidationError("run_at", f"is in the past ({spec.run_at.isoformat()}); give a later time")
            if spec.run_at > now + lookahead:
                raise JobValidationError(
                    "run_at", f"must be within {self.defaults.max_lookahead_days} days (MAX_SCHEDULE_LOOKAHEAD_DAYS)"
                )
        if spec.schedule_type in (ScheduleType.CRON, ScheduleType.INTERVAL):
            probe = Schedule.model_validate({**spec.model_dump(exclude={"schedule_id"}), "created_at": now,
                                             "last_fire_time": None, "fires": 0, "last_fire_wall": None})
            zone = load_timezone(spec.timezone or self.defaults.timezone)
            if next_fire(probe, max(now, spec.start_date or now), zone, horizon=lookahead) is None:
                raise JobValidationError(
                    "cron_expression" if spec.schedule_type is ScheduleType.CRON else "interval_seconds",
                    f"never fires within {self.defaults.max_lookahead_days} days (MAX_SCHEDULE_LOOKAHEAD_DAYS)"
                    + (" of its start_date" if spec.start_date else "") + (" before its end_date" if spec.end_date else ""),
                )

    def _check_name(self, name: str, schedule_id: str | None = None) -> None:
        for other in self.store.schedules.values():
            if other.name == name and other.schedule_id != schedule_id:
                raise ScheduleConflictError(f"a schedule named {name!r} exists already ({other.schedule_id})")

    async def create(self, spec: ScheduleSpec | dict[str, Any], *, created_by: str | None = None) -> Schedule:
        """Add a schedule; raises JobValidationError (422), ScheduleConflictError (409), CreatorLimitError (429)."""
        spec = _spec(spec)
        now = self.clock()
        creator = clean_actor(created_by or current_actor())
        self._validate(spec, now, new=True)
        self._check_name(spec.name)
        held = sum(1 for s in self.store.schedules.values() if s.created_by == creator)
        if held >= self.defaults.max_schedules_per_creator:
            raise CreatorLimitError(creator, self.defaults.max_schedules_per_creator)
        fields = spec.model_dump()
        if spec.command_payload:
            fields["command_payload"] = self.scheduler.registry.check_payload(spec.target_command, spec.command_payload)
        schedule = Schedule.model_validate({
            **fields, "created_by": creator, "created_at": now, "updated_at": now,
            "paused_at": now if spec.paused else None,
            "paused_reason": "created paused" if spec.paused else None,
        })
        self.store.put(schedule)
        await self._saved()
        self._audit("schedule.create", None, schedule)
        self._plan(schedule, now)
        logger.info("schedule created", extra={"schedule_id": schedule.schedule_id, "schedule_name": schedule.name,
                                                "type": schedule.schedule_type.value, "created_by": creator})
        return schedule

    async def create_many(self, specs: Iterable[Any], *, created_by: str | None = None) -> list[dict[str, Any]]:
        """``create`` each; one answer per spec: ``{"ok": true, "schedule": …}`` or ``{"ok": false, "error": …}``."""
        answers = []
        for index, spec in enumerate(specs):
            try:
                schedule = await self.create(spec, created_by=created_by)
                answers.append({"index": index, "ok": True, "schedule": self.describe(schedule)})
            except SchedulerError as exc:
                answers.append({"index": index, "ok": False, "error": exc.to_dict(), "status": exc.http_status})
        return answers

    async def upsert(self, spec: ScheduleSpec | dict[str, Any], *, created_by: str | None = None) -> tuple[Schedule, str]:
        """Create the schedule named ``spec.name``, or update it to ``spec``: idempotent.

        Returns the schedule and ``created``, ``updated`` or ``unchanged``.
        """
        spec = _spec(spec)
        held = next((s for s in self.store.schedules.values() if s.name == spec.name), None)
        if held is None:
            return await self.create(spec, created_by=created_by), "created"
        given = spec.model_dump(exclude={"paused"})
        changed = {key: value for key, value in given.items() if getattr(held, key) != value}
        if not changed:
            return held, "unchanged"
        # only what differs: an unchanged timing must not restart the schedule (a one-time
        # schedule that fired would fire again, or be refused as being in the past)
        if "schedule_type" in changed:  # a new type takes its timing fields whole
            changed.update({name: given[name] for name in ("cron_expression", "interval_seconds", "run_at")})
        update = ScheduleUpdate.model_validate(changed)
        return await self.update(held.schedule_id, update), "updated"

    async def update(self, schedule_id: str, changes: ScheduleUpdate | dict[str, Any]) -> Schedule:
        """Replace the fields given; the next fire is computed from now under the new definition."""
        if isinstance(changes, dict):
            try:
                changes = ScheduleUpdate.model_validate(changes)
            except PydanticValidationError as exc:
                raise schedule_error(exc) from None
        schedule = self.get(schedule_id)
        now = self.clock()
        given = changes.model_dump(exclude_unset=True)
        merged = {**schedule.to_dict(), **changes.model_dump(mode="json", exclude_unset=True)}
        timing = {"schedule_type", "cron_expression", "interval_seconds", "run_at", "start_date", "end_date", "timezone"}
        if "schedule_type" in given:  # a new type: the old type's timing fields no longer apply
            for name in ("cron_expression", "interval_seconds", "run_at"):
                if name not in given:
                    merged[name] = None
        try:
            candidate = Schedule.model_validate({**merged, "updated_at": now})
        except PydanticValidationError as exc:
            raise schedule_error(exc) from None
        self._validate(candidate, now, new=bool(timing & set(given)) and candidate.schedule_type is ScheduleType.ONE_TIME)
        if "name" in given:
            self._check_name(candidate.name, schedule_id)
        if "command_payload" in given or "target_command" in given:
            payload = self.scheduler.registry.check_payload(candidate.target_command, candidate.command_payload)
            candidate = candidate.model_copy(update={"command_payload": payload})
        if timing & set(given):
            # fires are counted from now under the new timing; a one-time schedule may fire again
            restart: dict[str, Any] = {"last_fire_wall": None}
            if candidate.schedule_type in (ScheduleType.ONE_TIME, ScheduleType.IMMEDIATE):
                restart.update(fires=0, last_fire_time=None)
            candidate = Schedule.model_validate({**candidate.to_dict(), **_json(restart), "cursor": now.isoformat()})
        self.store.put(candidate)
        await self._saved()
        self._audit("schedule.update", schedule, candidate)
        self._plan(candidate, now)
        return candidate

    async def delete(self, schedule_id: str) -> Schedule:
        """Remove a schedule; its waiting (PENDING) runs go with it, its running ones finish."""
        schedule = self.get(schedule_id)
        self.store.delete(schedule_id)
        self._next.pop(schedule_id, None)
        self._done.discard(schedule_id)
        await self._saved()
        for job_id in list(self._waiting.pop(schedule_id, ())):
            try:
                await self.scheduler.remove_job_async(job_id)
            except SchedulerError:
                pass
        self._audit("schedule.delete", schedule, None)
        logger.info("schedule deleted", extra={"schedule_id": schedule_id})
        return schedule

    async def pause(self, schedule_id: str, reason: str | None = None) -> Schedule:
        schedule = self.get(schedule_id)
        if schedule.paused:
            return schedule
        now = self.clock()
        text = (reason or f"paused by {current_actor()}")[:500]
        updated = schedule.model_copy(update={"paused": True, "paused_reason": text, "paused_at": now, "updated_at": now})
        self.store.put(updated)
        self._next.pop(schedule_id, None)
        await self._saved()
        self._audit("schedule.pause", schedule, updated)
        return updated

    async def resume(self, schedule_id: str, reason: str | None = None) -> Schedule:
        schedule = self.get(schedule_id)
        if not schedule.paused:
            return schedule
        now = self.clock()
        data = {**schedule.to_dict(), "paused": False, "paused_reason": None, "paused_at": None,
                "failures_in_a_row": 0, "updated_at": now.isoformat()}
        if schedule.schedule_type in (ScheduleType.CRON, ScheduleType.INTERVAL):
            data["cursor"] = now.isoformat()  # fires missed while paused were not wanted
        updated = Schedule.model_validate(data)
        self.store.put(updated)
        await self._saved()
        self._audit("schedule.resume", schedule, updated, reason=reason)
        self._plan(updated, now)
        return updated

    async def trigger(self, schedule_id: str, *, triggered_by: str | None = None) -> ScheduledJob:
        """Run the schedule now, paused or not, over its cap or not; return the job it made."""
        schedule = self.get(schedule_id)
        now = self.clock()
        zone = self._zone(schedule)
        who = clean_actor(triggered_by or current_actor())
        execution_id = execution_id_for(schedule_id, now, zone, trigger=True)
        twice = ScheduleConflictError(f"schedule {schedule_id} was triggered twice at once; try again")
        if execution_id in self.scheduler.manager.jobs:  # random: only a collision in the same second
            raise twice
        # Its audit line is queued before the job's write, so the two fsyncs overlap (the
        # job.add line is queued the same way); a write that fails is followed by its own line.
        self._audit("schedule.trigger", None, None, actor=who, target_id=schedule_id, extra={"job_id": execution_id})
        try:
            job = await self._add_run(schedule, now, zone, now, triggered_by=f"trigger:{who}",
                                      execution_id=execution_id)
        except SchedulerError as exc:
            self._audit("schedule.trigger_failed", None, None, actor=who, target_id=schedule_id,
                        extra={"job_id": execution_id, "error": exc.message})
            raise
        if job is None:  # checked above with no await between: cannot happen, but never a None job
            raise twice
        return job

    async def backfill(self, schedule_id: str, start: datetime, end: datetime, *, triggered_by: str | None = None) -> dict[str, Any]:
        """Add a job for each fire in [start, end] that has none yet (at most 1000)."""
        schedule = self.get(schedule_id)
        now = self.clock()
        if end <= start:
            raise JobValidationError("end", "must be after start")
        if end > now:
            raise JobValidationError("end", f"must not be in the future (now {now.isoformat()})")
        if schedule.schedule_type not in (ScheduleType.CRON, ScheduleType.INTERVAL):
            raise JobValidationError("schedule_type", "backfill applies to cron and interval schedules")
        zone = self._zone(schedule)
        probe = schedule.model_copy(update={"last_fire_wall": None, "paused": False})
        fires, more = due_fires(probe, start - timedelta(microseconds=1), end, zone, limit=MAX_BACKFILL_FIRES)
        who = clean_actor(triggered_by or current_actor())
        added, existing = [], []
        for fire in fires:
            job = await self._add_run(schedule, fire, zone, now, triggered_by=f"backfill:{who}")
            (added if job is not None else existing).append(execution_id_for(schedule_id, fire, zone))
        self._audit("schedule.backfill", None, None, target_id=schedule_id,
                    extra={"start": start.isoformat(), "end": end.isoformat(), "added": len(added)})
        return {"schedule_id": schedule_id, "fires": len(fires), "added": added, "existing": existing,
                "truncated": more}

    async def bulk_operation(self, schedule_ids: list[str], operation: str, reason: str | None = None) -> dict[str, Any]:
        """pause / resume / delete each id; one result per id (an unknown id is reported, not fatal)."""
        if operation not in BULK_OPERATIONS:
            raise JobValidationError("operation", f"must be one of: {', '.join(BULK_OPERATIONS)}")
        results = []
        for schedule_id in schedule_ids:
            try:
                if operation == "pause":
                    await self.pause(schedule_id, reason)
                elif operation == "resume":
                    await self.resume(schedule_id, reason)
                else:
                    await self.delete(schedule_id)
                results.append({"schedule_id": schedule_id, "ok": True})
            except SchedulerError as exc:
                results.append({"schedule_id": schedule_id, "ok": False, "error": exc.to_dict()})
        done = sum(1 for r in results if r["ok"])
        return {"operation": operation, "reason": reason, "succeeded": done, "failed": len(results) - done,
                "results": results}

    def running(self) -> list[dict[str, Any]]:
        """The executions running now (from the job table)."""
        found = []
        for job in self.scheduler.manager.running_jobs():
            if _schedule_of(job) is None:
                continue
            record = self.history.get(job.job_id) or {}
            found.append({**record, "execution_id": job.job_id, "job_id": job.job_id, "schedule_id": _schedule_of(job),
                          "status": "running", "started_at": job.started_at.isoformat() if job.started_at else None})
        return found

    async def _saved(self) -> None:
        await self.store.flush_async()

    def _audit(self, action: str, before: Schedule | None, after: Schedule | None, *, actor: str | None = None,
               target_id: str | None = None, reason: str | None = None, extra: dict[str, Any] | None = None) -> None:
        """One audit line for a change to a schedule (``audit.AuditLog.record``; never raises)."""
        if self.audit is None:
            return
        target = target_id or (after or before).schedule_id  # type: ignore[union-attr]
        new: dict[str, Any] | None = None if after is None else after.to_dict()
        if extra or reason:
            new = {**(new or {}), **(extra or {}), **({"reason": reason} if reason else {})}
        self.audit.record(action, target, before=None if before is None else before.to_dict(), after=new,
                          target="schedule", actor=actor)


def _schedule_of(job: ScheduledJob) -> str | None:
    extra = job.__pydantic_extra__
    value = extra.get("schedule_id") if extra else None
    return value if isinstance(value, str) else None


def _account(created_by: str) -> str:
    text = clean_actor(created_by).replace(":", "_").replace("/", "_")
    return text or "scheduler"


def _spec(spec: ScheduleSpec | dict[str, Any]) -> ScheduleSpec:
    if isinstance(spec, ScheduleSpec):
        return spec
    if not isinstance(spec, dict):
        raise JobValidationError("schedule", f"must be a JSON object, got {type(spec).__name__}")
    try:
        return ScheduleSpec.model_validate(spec)
    except PydanticValidationError as exc:
        raise schedule_error(exc) from None
    except ValueError as exc:  # a validator's own error (an unknown zone)
        raise JobValidationError("timezone", str(exc)) from None


def _json(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in fields.items()}
