"""ScheduleService through a real Scheduler on tmp_path, driven by a fake clock.

Each test builds a scheduler on ``data_dir`` with a ``FakeClock``, starts it, moves the
clock and lets the schedule loop and the executor do what is due (``settle``), then reads
the jobs, the execution history and ``schedules.json``. A restart is a new Scheduler on
the same folder with the same clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.scheduler import schedules as schedules_module
from services.scheduler.errors import CreatorLimitError, JobValidationError, ScheduleConflictError
from services.scheduler.execution_history import ExecutionHistory
from services.scheduler.handlers import default_registry
from services.scheduler.models import JobStatus, ScheduledJob
from services.scheduler.schedule_model import SCHEDULE_FORMAT_VERSION, Schedule
from services.scheduler.schedule_store import ScheduleStore
from services.scheduler.scheduler import Scheduler
from services.scheduler.schedules import ScheduleService
from tests.conftest import FakeClock

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


class Notes:
    """A notifier that keeps what it was told."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    def notify(self, event: str, message: str, **fields: Any) -> None:
        self.sent.append((event, message, fields))


class Kinds:
    """A registry with ``log``, ``fail`` (always raises), ``flaky`` (fails or not, as
    ``outcomes`` says) and ``slow`` (each run waits until its job's gate is opened)."""

    def __init__(self) -> None:
        self.registry = default_registry()
        self.gates: dict[str, asyncio.Event] = {}
        self.started: list[str] = []
        self.outcomes: list[bool] = []
        """The next ``flaky`` runs' results (True succeeds), in order."""

        async def fail(job: ScheduledJob) -> None:
            raise RuntimeError("boom")

        async def slow(job: ScheduledJob) -> None:
            self.started.append(job.job_id)
            await self.gate(job.job_id).wait()

        async def flaky(job: ScheduledJob) -> None:
            if not self.outcomes.pop(0):
                raise RuntimeError("flaky boom")

        self.registry.register("fail", fail)
        self.registry.register("slow", slow)
        self.registry.register("flaky", flaky)

    def gate(self, job_id: str) -> asyncio.Event:
        return self.gates.setdefault(job_id, asyncio.Event())


@pytest.fixture
def kinds() -> Kinds:
    return Kinds()


@pytest.fixture
def build(data_dir: Path, kinds: Kinds) -> Callable[..., Scheduler]:
    """A loaded Scheduler on ``data_dir`` (a restart: call it again with the same clock)."""

    def factory(clock: FakeClock, **kwargs: Any) -> Scheduler:
        kwargs.setdefault("max_concurrent_jobs", 10)
        scheduler = Scheduler(data_dir, registry=kinds.registry, clock=clock, **kwargs)
        scheduler.load()
        return scheduler

    return factory


def asleep(service: ScheduleService) -> bool:
    """The schedule loop waits in its sleep with no wake pending (its pass is over)."""
    if service._task is None or service._wake.is_set():
        return False
    awaited = service._task.get_coro()
    while awaited is not None:
        if getattr(awaited, "__qualname__", "") == "ScheduleService._sleep":
            return True
        awaited = getattr(awaited, "cr_await", None)
    return False


async def settle(scheduler: Scheduler, clock: FakeClock, timeout: float = 5.0, *, runs: bool = True) -> None:
    """Let the schedule loop and the executor do everything due at ``clock.now``.

    The schedule loop is idle when it sleeps with nothing due (``asleep``); the executor
    when nothing runs or is ready. ``runs=False``: wait for the schedule loop only (runs
    held by a gate go on).
    """
    service = scheduler.schedules
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    service.wake()
    quiet = 0
    while quiet < 3:
        scheduler.executor.wake()
        await asyncio.sleep(0.005)
        due = service.next_due()
        busy = (
            not asleep(service)
            or (due is not None and due[0] <= clock.now)
            or (runs and (scheduler.executor.running_job_ids or scheduler.manager.get_ready_jobs(clock.now)))
            or service._followups
        )
        quiet = 0 if busy else quiet + 1
        if loop.time() > deadline:
            raise AssertionError(f"not settled: next due {due}, running {scheduler.executor.running_job_ids}")
    await service.history.flush()


async def until(condition: Callable[[], bool], scheduler: Scheduler, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition never held")
        scheduler.schedules.wake()
        scheduler.executor.wake()
        await asyncio.sleep(0.01)


async def walk(scheduler: Scheduler, clock: FakeClock, end: datetime, step: timedelta = timedelta(hours=6)) -> None:
    """Move the clock to ``end`` as a daemon lives through the time: to each next fire the
    service plans (or ``step`` on when that is later), settling at each."""
    while clock.now < end:
        due = scheduler.schedules.next_due()
        target = clock.now + step if due is None else min(clock.now + step, max(due[0], clock.now))
        clock.now = min(target, end)
        await settle(scheduler, clock)


def jobs_of(scheduler: Scheduler, schedule_id: str) -> list[ScheduledJob]:
    found = [job for job in scheduler.manager.jobs.values()
             if (job.model_extra or {}).get("schedule_id") == schedule_id]
    return sorted(found, key=lambda job: (job.model_extra["fire_time"], job.job_id))


def fire_walls(scheduler: Scheduler, schedule_id: str, zone) -> list[str]:
    return [
        datetime.fromisoformat(job.model_extra["fire_time"]).astimezone(zone).strftime("%Y-%m-%d %H:%M")
        for job in jobs_of(scheduler, schedule_id)
    ]


def records_of(service: ScheduleService, schedule_id: str) -> list[dict[str, Any]]:
    found, _ = service.history.list(schedule_id=schedule_id, limit=10_000)
    return sorted(found, key=lambda r: r["fire_time"])


def spec(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "s", "target_command": "log", "command_payload": {"message": "hi"}}
    return {**base, **fields}


# -- cron across zones and DST --------------------------------------------------------------------


async def test_cron_0800_ho_chi_minh_runs_at_0100_utc_each_day(build, data_dir: Path) -> None:
    clock = FakeClock(utc(2026, 11, 23, 12))
    scheduler = build(clock)
    await scheduler.start()
    try:
        made = await scheduler.schedules.create(spec(schedule_type="cron", cron_expression="0 8 * * *",
                                                     timezone="Asia/Ho_Chi_Minh"))
        assert scheduler.schedules.describe(made)["next_run_time"] == "2026-11-24T08:00:00+07:00"
        await walk(scheduler, clock, utc(2026, 11, 26, 12))
        jobs = jobs_of(scheduler, made.schedule_id)
        assert [job.job_id for job in jobs] == [f"{made.schedule_id}-202611{d}T080000" for d in (24, 25, 26)]
        assert all(job.status is JobStatus.COMPLETED for job in jobs)
        assert [job.model_extra["fire_time"] for job in jobs] == [utc(2026, 11, d, 1).isoformat() for d in (24, 25, 26)]
        assert [r["status"] for r in records_of(scheduler.schedules, made.schedule_id)] == ["succeeded"] * 3
        assert (data_dir / "executions" / "executions_2026-11-24.jsonl").exists()
    finally:
        await scheduler.stop()


@pytest.mark.parametrize(
    ("expression", "start", "end", "expected"),
    [
        ("30 2 * * *", utc(2026, 3, 8, 4), utc(2026, 3, 9, 8), ["2026-03-08 03:00", "2026-03-09 02:30"]),
        ("30 1 * * *", utc(2026, 11, 1, 3), utc(2026, 11, 2, 8), ["2026-11-01 01:30", "2026-11-02 01:30"]),
        ("*/30 1-3 * * *", utc(2026, 11, 1, 4), utc(2026, 11, 1, 10),
         ["2026-11-01 01:00", "2026-11-01 01:30", "2026-11-01 02:00", "2026-11-01 02:30", "2026-11-01 03:00",
          "2026-11-01 03:30"]),
    ],
    ids=["spring-forward-0230", "fall-back-0130", "fall-back-every-30-min"],
)
async def test_new_york_dst_through_the_service(build, expression, start, end, expected) -> None:
    clock = FakeClock(start)
    scheduler = build(clock)
    await scheduler.start()
    try:
        made = await scheduler.schedules.create(spec(schedule_type="cron", cron_expression=expression,
                                                     timezone="America/New_York"))
        await walk(scheduler, clock, end, timedelta(minutes=20))
        assert fire_walls(scheduler, made.schedule_id, NY) == expected
        jobs = jobs_of(scheduler, made.schedule_id)
        assert len({job.job_id for job in jobs}) == len(expected)
        assert all(job.status is JobStatus.COMPLETED for job in jobs)
        records = records_of(scheduler.schedules, made.schedule_id)
        assert [r["execution_id"] for r in records] == [job.job_id for job in jobs]
        assert not any(r["misfire"] for r in records) and scheduler.schedules.misfires_total == 0
    finally:
        await scheduler.stop()


async def test_fall_back_hour_is_not_repeated_after_a_restart_inside_it(build) -> None:
    """The 01:30 EDT fire's wall time survives a restart in the repeated hour (01:10 EST)."""
    clock = FakeClock(utc(2026, 11, 1, 4))
    scheduler = build(clock)
    await scheduler.start()
    made = await scheduler.schedules.create(spec(schedule_type="cron", cron_expression="*/30 1-3 * * *",
                                                 timezone="America/New_York"))
    await walk(scheduler, clock, utc(2026, 11, 1, 5, 40), timedelta(minutes=10))  # 01:40 EDT
    await scheduler.stop()
    clock.now = utc(2026, 11, 1, 6, 10)  # 01:10 EST: the EST 01:00 is in the past, 01:30 ahead
    again = build(clock)
    await again.start()
    try:
        await walk(again, clock, utc(2026, 11, 1, 8, 10), timedelta(minutes=10))
        assert fire_walls(again, made.schedule_id, NY) == [
            "2026-11-01 01:00", "2026-11-01 01:30", "2026-11-01 02:00", "2026-11-01 02:30", "2026-11-01 03:00"]
        assert again.schedules.misfires_total == 0
    finally:
        await again.stop()


# -- interval, one-time, immediate ------------------------------------------------------------------

T0 = utc(2026, 6, 1, 12)


async def test_interval_without_start_fires_every_interval_from_creation(build) -> None:
    clock = FakeClock(T0)
    scheduler = build(clock)
    await scheduler.start()
    try:
        made = await scheduler.schedules.create(spec(schedule_type="interval", interval_seconds=3600))
        await walk(scheduler, clock, T0 + timedelta(hours=3, minutes=30))
        fires = [job.model_extra["fire_time"] for job in jobs_of(scheduler, made.schedule_id)]
        assert fires == [(T0 + timedelta(hours=h)).isoformat() for h in (1, 2, 3)]
        assert scheduler.schedules.describe(scheduler.schedules.get(made.schedule_id))["next_run_time"] == (
            (T0 + timedelta(hours=4)).astimezone(HCM).isoformat())
    finally:
        await scheduler.stop()


async def test_interval_with_start_and_end_fires_inside_the_window_then_completes(build) -> None:
    clock = FakeClock(T0)
    scheduler = build(clock)
    await scheduler.start()
    try:
        made = await scheduler.schedules.create(spec(
            schedule_type="interval", interval_seconds=1800,
            start_date=(T0 + timedelta(hours=2)).isoformat(), end_date=(T0 + timedelta(hours=3)).isoformat()))
        await walk(scheduler, clock, T0 + timedelta(hours=6))
        fires = [job.model_extra["fire_time"] for job in jobs_of(scheduler, made.schedule_id)]
        assert fires == [(T0 + timedelta(hours=2, minutes=m)).isoformat() for m in (0, 30, 60)]
        described = scheduler.schedules.describe(scheduler.schedules.get(made.schedule_id))
        assert described["status"] == "completed" and described["next_run_time"] is None
    finally:
        await scheduler.stop()


async def test_one_time_runs_once(build) -> None:
    clock = FakeClock(T0)
    scheduler = build(clock)
    await scheduler.start()
    try:
        made = await scheduler.schedules.create(spec(schedule_type="one_time",
                                                     run_at=(T0 + timedelta(hours=1)).isoformat()))
        await walk(scheduler, clock, T0 + timedelta(days=2))
        jobs = jobs_of(scheduler, made.schedule_id)
        assert [job.job_id for job in jobs] == [f"{made.schedule_id}-20260601T200000"]  # 13:00 UTC, 20:00 HCM
        assert jobs[0].status is JobStatus.COMPLETED
        assert scheduler.schedules.status_of(scheduler.schedules.get(made.schedule_id)).value == "completed"
    finally:
        await scheduler.stop()
    again = build(clock)  # and not again after a restart
    await again.start()
    try:
        await walk(again, clock, T0 + timedelta(days=3))
        assert len(jobs_of(again, made.schedule_id)) == 1
    finally:
        await again.stop()


async def test_one_time_refused_far_in_the_past_or_beyond_the_lookahead(build, data_dir: Path) -> None:
    clock = FakeClock(T0)
    scheduler = build(clock)
    service = scheduler.schedules
    with pytest.raises(JobValidationError, match=r"^run_at: is in the past"):
        await service.create(spec(schedule_type="one_time", run_at=(T0 - timedelta(hours=1)).isoformat()))
    with pytest.raises(JobValidationError, match=r"^run_at: must be within 365 days \(MAX_SCHEDULE_LOOKAHEAD_DAYS\)"):
        await service.create(spec(schedule_type="one_time", run_at=(T0 + timedelta(days=366)).isoformat()))
    assert service.store.schedules == {} and not (data_dir / "schedules.json").exists()
    # a minute late is within the grace (300 s): accepted, and it runs at once
    await scheduler.start()
    try:
        made = await service.create(spec(schedule_type="one_time", run_at=(T0 - timedelta(minutes=1)).isoformat()))
        await settle(scheduler, clock)
        assert [job.status for job in jobs_of(scheduler, made.schedule_id)] == [JobStatus.COMPLETED]
    finally:
        await scheduler.stop()


async def test_immediate_runs_once_at_creation(build) -> None:
    clock = FakeClock(T0)
    scheduler = build(clock)
    await scheduler.start()
    try:
        made = await scheduler.schedules.create(spec(schedule_type="immediate"))
        await settle(scheduler, clock)
        jobs = jobs_of(scheduler, made.schedule_id)
        assert len(jobs) == 1 and jobs[0].model_extra["fire_time"] == T0.isoformat()
        assert jobs[0].status is JobStatus.COMPLETED
        await walk(scheduler, clock, T0 + timedelta(days=1))
        assert len(jobs_of(scheduler, made.schedule_id)) == 1
    finally:
        await scheduler.stop()


# -- misfires after downtime ------------------------------------------------------------------------


@pytest.mark.parametrize("parts", [1, 3], ids=["in-one-part", "in-three-parts"])
@pytest.mark.parametrize("coalesce", ["latest", "earliest", "all"])
async def test_misfires_after_a_six_hour_outage(build, monkeypatch, coalesce: str, parts: int) -> None:
    """24 fires missed; with ``parts`` 3 the catch-up lists at most 10 fires a pass, and still runs as one."""
    if parts > 1:
        monkeypatch.setattr(schedules_module, "MAX_CATCH_UP_FIRES", 10)
    clock = FakeClock(T0)
    scheduler = build(clock)
    await scheduler.start()
    made = await scheduler.schedules.create(spec(schedule_type="interval", interval_seconds=900, coalesce=coalesce))
    await walk(scheduler, clock, T0 + timedelta(hours=1))  # 4 fires, on time
    assert len(jobs_of(scheduler, made.schedule_id)) == 4
    await scheduler.stop()

    clock.now += timedelta(hours=6, minutes=2)  # down 6 h: 24 fires due; the last one 2 min ago
    again = build(clock)
    await again.start()
    try:
        await settle(again, clock)
        service = again.schedules
        missed = [T0 + timedelta(hours=1, minutes=15 * i) for i in range(1, 25)]
        ran = [datetime.fromisoformat(job.model_extra["fire_time"]) for job in jobs_of(again, made.schedule_id)][4:]
        expected = {"latest": [missed[-1]], "earliest": [missed[0]], "all": missed}[coalesce]
        assert ran == expected
        assert all(job.status is JobStatus.COMPLETED for job in jobs_of(again, made.schedule_id))
        records = {datetime.fromisoformat(r["fire_time"]): r for r in records_of(service, made.schedule_id)}
        assert sorted(records)[4:] == missed  # every fire of the outage has a record
        for fire in missed:
            record = records[fire]
            late = fire != missed[-1]  # the last is within the 300 s grace
            assert record["misfire"] is late, fire
            if fire in expected:
                assert record["status"] == "succeeded" and record["job_id"] == record["execution_id"]
            else:
                assert record["status"] == ("misfired" if late else "skipped") and record["job_id"] is None
        assert service.misfires_total == 23
        assert service.get(made.schedule_id).last_fire_time == missed[-1]
    finally:
        await again.stop()


async def test_fires_within_the_grace_are_not_misfires(build) -> None:
    clock = FakeClock(T0)
    scheduler = build(clock)
    await scheduler.start()
    made = await scheduler.schedules.create(spec(schedule_type="interval", interval_seconds=900,
                                                 misfire_grace_time=1800, coalesce="all"))
    await scheduler.stop()
    clock.now += timedelta(minutes=45)  # 3 fires due, the oldest 30 min ago: all within 1800 s
    again = build(clock)
    await again.start()
    try:
        await settle(again, clock)
        assert len(jobs_of(again, made.schedule_id)) == 3
        assert again.schedules.misfires_total == 0
        assert not any(r["misfire"] for r in records_of(again.schedules, made.schedule_id))
    finally:
        await again.stop()


# -- max_instances -----------------------------------------------------------------------------------


async def test_fires_over_max_instances_wait_pending_and_are_released_in_fire_order(build, kinds: Kinds) -> None:
    clock = FakeClock(T0)
    scheduler = build(clock, max_concurrent_jobs=10)
    await scheduler.start()
    try:
        service = scheduler.schedules
        made = await service.create(spec(schedule_type="interval", interval_seconds=60, max_instances=2,
                                          target_command="slow", command_payload={}))
        ids = []
        for minute in range(1, 6):  # five fires while none has ended
            clock.now = T0 + timedelta(minutes=minute)
            await settle(scheduler, clock, runs=False)
            assert len(jobs_of(scheduler, made.schedule_id)) == minute
            ids.append(f"{made.schedule_id}-{(clock.now.astimezone(HCM)):%Y%m%dT%H%M%S}")
        await until(lambda: len(kinds.started) == 2, scheduler)
        statuses = {job.job_id: job.status for job in jobs_of(scheduler, made.schedule_id)}
        assert [statuses[i] for i in ids] == [JobStatus.RUNNING] * 2 + [JobStatus.PENDING] * 3
        described = service.describe(service.get(made.schedule_id))
        assert described["running_instances"] == 2 and described["waiting_instances"] == 3
        assert service.history.get(ids[2])["status"] == "waiting"
        for ended in range(5):  # each run that ends lets the oldest waiting one start
            kinds.gate(ids[ended]).set()
            await until(lambda n=ended: len(kinds.started) == min(n + 3, 5)
                        and scheduler.get_job(ids[n]).status is JobStatus.COMPLETED, scheduler)
            running = [i for i in ids if scheduler.get_job(i).status is JobStatus.RUNNING]
            assert len(running) <= 2
        assert kinds.started == ids  # none dropped, in fire order
        await until(lambda: all(scheduler.get_job(i).status is JobStatus.COMPLETED for i in ids), scheduler)
    finally:
        for gate in kinds.gates.values():
            gate.set()
        await scheduler.stop()


# -- backfill -------------------------------------------------------------------------------------------


async def test_backfill_adds_the_missing_fires_only(build) -> None:
    clock = FakeClock(T0)
    scheduler = build(clock)
    await scheduler.start()
    try:
        service = scheduler.schedules
        made = await service.create(spec(schedule_type="cron", cron_expression="0 * * * *"))
        await walk(scheduler, clock, T0 + timedelta(hours=3, minutes=30))  # 13:00, 14:00, 15:00 UTC ran
        assert len(jobs_of(scheduler, made.schedule_id)) == 3
        first = await service.backfill(made.schedule_id, T0 - timedelta(hours=3), T0 + timedelta(hours=3))
        assert first["fires"] == 7 and len(first["added"]) == 4 and len(first["existing"]) == 3
        await settle(scheduler, clock)
        fires = [job.model_extra["fire_time"] for job in jobs_of(scheduler, made.schedule_id)]
        assert fires == [(T0 + timedelta(hours=h)).isoformat() for h in range(-3, 4)]
        assert all(job.model_extra["triggered_by"].startswith("backfill:")
                   for job in jobs_of(scheduler, made.schedule_id)[:4])
        second = await service.backfill(made.schedule_id, T0 - timedelta(hours=3), T0 + timedelta(hours=3))
        assert second["added"] == [] and len(second["existing"]) == 7
        assert len(jobs_of(scheduler, made.schedule_id)) == 7
        with pytest.raises(JobValidationError, match=r"^end: must not be in the future"):
            await service.backfill(made.schedule_id, T0, clock.now + timedelta(minutes=1))
        assert len(jobs_of(scheduler, made.schedule_id)) == 7
    finally:
        await scheduler.stop()


# -- pause_after_failures ------------------------------------------------------------------------------


async def test_pause_after_failures_pauses_and_notifies_and_a_success_resets_the_count(build, kinds: Kinds) -> None:
    clock = FakeClock(T0)
    scheduler = build(clock)
    notes = Notes()
    scheduler.notifier = notes
    await scheduler.start()
    try:
        service = scheduler.schedules
        made = await service.create(spec(schedule_type="interval", interval_seconds=60, target_command="flaky",
                                          command_payload={}, max_retries=0, pause_after_failures=3))
        kinds.outcomes = [False, False, True, False, False, False]
        for minute in range(1, 6):
            clock.now = T0 + timedelta(minutes=minute)
            await settle(scheduler, clock)
            expected = [1, 2, 0, 1, 2][minute - 1]
            assert service.get(made.schedule_id).failures_in_a_row == expected
        assert not service.get(made.schedule_id).paused and notes.sent == []  # 4 failures of 5, not in a row
        clock.now = T0 + timedelta(minutes=6)
        await settle(scheduler, clock)
        paused = service.get(made.schedule_id)
        assert paused.paused and paused.failures_in_a_row == 3
        assert paused.paused_reason.startswith("paused itself: its last 3 runs failed")
        assert "flaky boom" in paused.paused_reason
        assert [(event, fields["schedule_id"]) for event, _, fields in notes.sent] == [
            ("schedule_paused", made.schedule_id)]
        statuses = [job.status for job in jobs_of(scheduler, made.schedule_id)]
        assert statuses.count(JobStatus.FAILED) == 5 and statuses.count(JobStatus.COMPLETED) == 1
        await walk(scheduler, clock, clock.now + timedelta(minutes=10), timedelta(minutes=1))
        assert len(jobs_of(scheduler, made.schedule_id)) == 6  # paused: nothing more
    finally:
        await scheduler.stop()
    stored = json.loads(Path(scheduler.data_dir, "schedules.json").read_text(encoding="utf-8"))
    assert stored["schedules"][made.schedule_id]["paused"] is True


async def test_a_run_that_ends_while_its_fire_is_handled_keeps_what_it_changed(build, kinds: Kinds) -> None:
    """Runs that fail and pause the schedule while the fire still adds jobs: the pause holds."""
    clock = FakeClock(T0)
    scheduler = build(clock)
    await scheduler.start()
    service = scheduler.schedules
    made = await service.create(spec(schedule_type="interval", interval_seconds=60, target_command="fail",
                                      command_payload={}, max_retries=0, pause_after_failures=1, coalesce="all"))
    await scheduler.stop()
    clock.now += timedelta(minutes=2, seconds=30)  # two fires due at the next start
    again = build(clock)
    again.notifier = notes = Notes()
    real = again.add_async

    async def add_then_wait_for_the_end(new, **kwargs):  # each run ends before the fire goes on
        job = await real(new, **kwargs)
        await until(lambda: again.get_job(job.job_id).is_finished(), again)
        return job

    again.add_async = add_then_wait_for_the_end
    await again.start()
    try:
        await settle(again, clock)
        assert [job.status for job in jobs_of(again, made.schedule_id)] == [JobStatus.FAILED] * 2
        held = again.schedules.get(made.schedule_id)
        assert held.paused and held.paused_reason.startswith("paused itself")
        assert held.failures_in_a_row == 2 and held.last_fire_time == T0 + timedelta(minutes=2)
        assert [event for event, _, _ in notes.sent] == ["schedule_paused"]
    finally:
        await again.stop()
    assert ScheduleStore(again.data_dir).load()[made.schedule_id].paused


async def test_a_schedule_deleted_while_its_fire_is_handled_stays_deleted(build, data_dir: Path) -> None:
    clock = FakeClock(T0)
    scheduler = build(clock)
    service = scheduler.schedules
    real = scheduler.add_async

    async def add_then_delete(new, **kwargs):
        job = await real(new, **kwargs)
        await service.delete(made.schedule_id)
        return job

    scheduler.add_async = add_then_delete
    await scheduler.start()
    try:
        made = await service.create(spec(schedule_type="interval", interval_seconds=60))
        clock.now += timedelta(minutes=1)
        await settle(scheduler, clock)
        assert made.schedule_id not in service.store.schedules
    finally:
        await scheduler.stop()
    assert ScheduleStore(data_dir).load() == {}


# -- what is refused ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"target_command": "nope", "command_payload": {}},
         r"^target_command: must be .*fail, flaky, log, slow \(got 'nope'\)$"),
        ({"command_payload": {"msg": 1}}, r"^command_payload\.message: field required$"),
        ({"command_payload": {"message": "x", "msg": 1}},
         r"^command_payload\.msg: unknown key for log \(allowed: message\)$"),
        ({"command_payload": {"message": 3}}, r"^command_payload\.message: "),
        ({"command_payload": {}}, r"^command_payload\.message: "),
    ],
)
async def test_unknown_kinds_and_bad_payloads_are_refused_and_nothing_is_written(
    build, data_dir: Path, fields: dict[str, Any], message: str
) -> None:
    scheduler = build(FakeClock(T0))
    with pytest.raises(JobValidationError, match=message):
        await scheduler.schedules.create(spec(schedule_type="cron", cron_expression="0 8 * * *", **fields))
    assert scheduler.schedules.store.schedules == {} and not (data_dir / "schedules.json").exists()


async def test_a_bad_payload_is_refused_on_update_too(build, data_dir: Path) -> None:
    scheduler = build(FakeClock(T0))
    made = await scheduler.schedules.create(spec(schedule_type="cron", cron_expression="0 8 * * *"))
    before = (data_dir / "schedules.json").read_bytes()
    with pytest.raises(JobValidationError, match=r"^command_payload\.message: "):
        await scheduler.schedules.update(made.schedule_id, {"command_payload": {"message": 3}})
    assert (data_dir / "schedules.json").read_bytes() == before
    assert scheduler.schedules.get(made.schedule_id).command_payload == {"message": "hi"}


# -- pause, resume, trigger, restart ----------------------------------------------------------------------


async def test_pause_resume_trigger_and_restart(build, data_dir: Path) -> None:
    clock = FakeClock(T0)
    scheduler = build(clock)
    await scheduler.start()
    service = scheduler.schedules
    made = await service.create(spec(schedule_type="interval", interval_seconds=60))
    await walk(scheduler, clock, T0 + timedelta(minutes=2))
    assert len(jobs_of(scheduler, made.schedule_id)) == 2
    await service.pause(made.schedule_id, "maintenance")
    await walk(scheduler, clock, T0 + timedelta(minutes=10), timedelta(minutes=1))
    assert len(jobs_of(scheduler, made.schedule_id)) == 2  # paused: nothing fired
    assert service.describe(service.get(made.schedule_id))["next_run_time"] is None
    job = await service.trigger(made.schedule_id, triggered_by="alice")
    await settle(scheduler, clock)
    assert scheduler.get_job(job.job_id).status is JobStatus.COMPLETED
    assert job.model_extra["triggered_by"] == "trigger:alice"
    await scheduler.stop()

    again = build(clock)  # restart: the pause, the schedule and its last fire are kept
    await again.start()
    try:
        service = again.schedules
        kept = service.get(made.schedule_id)
        assert kept.paused and kept.paused_reason == "maintenance"
        assert kept.last_fire_time == T0 + timedelta(minutes=2) and kept.fires == 2
        assert kept.model_dump(exclude={"updated_at", "next_fire_time", "next_fire_key"}) == made.model_copy(update={
            "paused": True, "paused_reason": "maintenance", "paused_at": kept.paused_at,
            "last_fire_time": kept.last_fire_time, "last_fire_wall": kept.last_fire_wall, "fires": 2,
        }).model_dump(exclude={"updated_at", "next_fire_time", "next_fire_key"})
        assert len(jobs_of(again, made.schedule_id)) == 3
        await walk(again, clock, T0 + timedelta(minutes=15), timedelta(minutes=1))
        assert len(jobs_of(again, made.schedule_id)) == 3
        resumed_at = clock.now
        await service.resume(made.schedule_id)
        await walk(again, clock, resumed_at + timedelta(minutes=2, seconds=30), timedelta(seconds=30))
        fired = [datetime.fromisoformat(j.model_extra["fire_time"]) for j in jobs_of(again, made.schedule_id)
                 if j.model_extra["triggered_by"] == "schedule"]
        # the 13 fires missed while paused did not run (nor count as misfires); the two after the resume did
        minutes = [timedelta(minutes=m) for m in (1, 2, 16, 17)]
        assert fired == [T0 + m for m in minutes] and resumed_at == T0 + timedelta(minutes=15)
        assert len(jobs_of(again, made.schedule_id)) == 5 and service.misfires_total == 0
    finally:
        await again.stop()


async def test_a_trigger_whose_write_fails_says_so_in_the_audit_trail(build, data_dir: Path, monkeypatch) -> None:
    """The trigger's audit line is queued before the job's write (so the two fsyncs
    overlap); when that write fails, a ``schedule.trigger_failed`` line follows it."""
    from services.scheduler import storage as storage_module
    from services.scheduler.audit import read_audit
    from services.scheduler.errors import StorageError

    clock = FakeClock(T0)
    scheduler = build(clock)
    await scheduler.start()
    try:
        service = scheduler.schedules
        made = await service.create(spec(schedule_type="interval", interval_seconds=3600))
        job = await service.trigger(made.schedule_id, triggered_by="alice")

        def refuse(path: Path, data: bytes | None) -> int:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(storage_module, "_put_file", refuse)
        with pytest.raises(StorageError):
            await service.trigger(made.schedule_id, triggered_by="bob")
        await scheduler.audit.flush()
        lines = read_audit(data_dir, target_id=made.schedule_id, limit=10)
        actions = [(line["action"], line["actor"]) for line in reversed(lines)]
        assert actions[-3:] == [("schedule.trigger", "alice"), ("schedule.trigger", "bob"),
                                ("schedule.trigger_failed", "bob")]
        failed = lines[0]["after"]
        assert "no space left" in failed["error"] and failed["job_id"] != job.job_id
        assert lines[2]["after"]["job_id"] == job.job_id
        assert [j.job_id for j in jobs_of(scheduler, made.schedule_id)] == [job.job_id]
    finally:
        monkeypatch.undo()
        await scheduler.stop()


# -- schedules.json ----------------------------------------------------------------------------------------


def full_schedule() -> Schedule:
    return Schedule.model_validate({
        "name": "Chương 5 hằng ngày", "description": "mô tả\nhai dòng", "schedule_type": "interval",
        "interval_seconds": 900, "start_date": "2026-06-01T00:00:00+07:00", "end_date": "2026-12-01T00:00:00Z",
        "timezone": "America/New_York", "target_command": "log", "command_payload": {"message": "xin chào"},
        "tags": ["daily", "vn"], "priority": 7, "max_retries": 2, "retry_delay_seconds": 30, "account_id": "acc-1",
        "misfire_grace_time": 120, "coalesce": "all", "max_instances": 4, "pause_after_failures": 5, "paused": True,
        "created_by": "alice", "created_at": "2026-05-01T00:00:00Z", "updated_at": "2026-05-02T00:00:00Z",
        "paused_reason": "held", "paused_at": "2026-05-03T00:00:00Z", "last_fire_time": "2026-06-01T01:00:00Z",
        "last_fire_wall": "2026-05-31T21:00:00", "cursor": "2026-06-01T02:00:00Z", "failures_in_a_row": 2,
        "fires": 9,
    })


def test_schedules_json_round_trips_every_field_readably(data_dir: Path) -> None:
    item = full_schedule()
    cron = Schedule.model_validate({**item.to_dict(), "schedule_id": "11111111-1111-1111-1111-111111111111",
                                    "name": "cron", "schedule_type": "cron", "interval_seconds": None,
                                    "cron_expression": "*/5 8 * * 1-5"})
    once = Schedule.model_validate({**item.to_dict(), "schedule_id": "22222222-2222-2222-2222-222222222222",
                                    "name": "once", "schedule_type": "one_time", "interval_seconds": None,
                                    "run_at": "2026-07-01T00:00:00Z"})
    # every field is given a value that is not its default, on one of the three
    assert set(Schedule.model_fields) - {"cron_expression", "run_at", "schedule_id", "next_fire_time", "next_fire_key"} <= item.model_fields_set
    store = ScheduleStore(data_dir)
    for schedule_ in (item, cron, once):
        store.put(schedule_)
    store.flush()
    text = (data_dir / "schedules.json").read_text(encoding="utf-8")
    assert "Chương 5 hằng ngày" in text and "xin chào" in text and "\\u" not in text  # UTF-8, not escaped
    document = json.loads(text)
    assert document["version"] == SCHEDULE_FORMAT_VERSION and len(document["schedules"]) == 3
    assert (data_dir / "schedules.json").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in data_dir.iterdir()) == ["schedules.json"]  # no temp file left
    loaded = ScheduleStore(data_dir).load()
    assert loaded == {s.schedule_id: s for s in (item, cron, once)}
    assert loaded[item.schedule_id].start_date == utc(2026, 5, 31, 17)
    assert loaded[cron.schedule_id].cron_expression == "*/5 8 * * 1-5"
    assert loaded[once.schedule_id].run_at == utc(2026, 7, 1)


async def stored_schedules(data_dir: Path, count: int) -> tuple[ScheduleStore, list[str]]:
    """A store holding ``count`` copies of ``full_schedule()`` with ids in order, written."""
    base = full_schedule()
    ids = [f"{n:08d}-0000-0000-0000-000000000000" for n in range(count)]
    store = ScheduleStore(data_dir)
    for sid in ids:
        store.put(base.model_copy(update={"schedule_id": sid}))
    await store.flush_async()
    return store, ids


def assert_written_as_a_fresh_encode(data_dir: Path, store: ScheduleStore) -> None:
    """schedules.json is byte for byte what a store encoding every record afresh writes."""
    from services.scheduler import schedule_store as store_module

    fresh = ScheduleStore(data_dir / "fresh")
    fresh._records = dict(store._records)
    fresh._ids = sorted(fresh._records)
    assert (data_dir / "schedules.json").read_bytes() == store_module._document(fresh._file_lines())


async def test_a_rewrite_encodes_only_the_changed_schedules_and_writes_what_a_fresh_encode_would(
    data_dir: Path, monkeypatch
) -> None:
    """Each schedule's line is kept until its record changes (put, note_next, delete), so
    a write after one fire encodes one line; the file is still exactly the whole set."""
    import random

    from services.scheduler import schedule_store as store_module

    encoded: list[str] = []
    real_line = store_module._line
    monkeypatch.setattr(store_module, "_line", lambda sid, record: encoded.append(sid) or real_line(sid, record))
    base = full_schedule()
    store, ids = await stored_schedules(data_dir, 30)
    assert sorted(encoded) == sorted(ids)
    rng = random.Random(5)
    for round_ in range(20):
        encoded.clear()
        touched = set()
        for _ in range(3):
            sid = rng.choice(ids)
            roll = rng.random()
            if roll < 0.2 and sid in store.schedules:
                store.delete(sid)
            elif roll < 0.5 and sid in store.schedules:
                store.note_next(sid, T0 + timedelta(minutes=round_), f"key-{round_}")
                touched.add(sid)
            else:
                store.put(base.model_copy(update={"schedule_id": sid, "fires": round_}))
                touched.add(sid)
        await store.flush_async()
        assert set(encoded) == {sid for sid in touched if sid in store.schedules}
        assert_written_as_a_fresh_encode(data_dir, store)
    loaded = ScheduleStore(data_dir).load()  # note_next changed the records, not the schedules
    cached = {"next_fire_time", "next_fire_key"}
    assert {k: v.model_dump(exclude=cached) for k, v in loaded.items()} == {
        k: v.model_dump(exclude=cached) for k, v in store.schedules.items()}


@pytest.mark.parametrize("content", [b"{not json", b'{"version": 2, "schedules": {}}', b"[1, 2]"])
def test_a_corrupt_schedules_file_is_moved_aside_and_reported(data_dir: Path, content: bytes) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "schedules.json").write_bytes(content)
    store = ScheduleStore(data_dir)
    assert store.load() == {}
    assert len(store.problems) == 1 and "moved to schedules.json.corrupt-" in store.problems[0]
    aside = list(data_dir.glob("schedules.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == content
    assert not (data_dir / "schedules.json").exists()


def test_a_record_that_does_not_validate_is_skipped_the_others_load(data_dir: Path) -> None:
    good = full_schedule()
    data_dir.mkdir(parents=True)
    bad_id = "00000000-0000-0000-0000-000000000000"
    document = {"version": 1, "schedules": {good.schedule_id: good.to_dict(), bad_id: {"name": "x"}}}
    (data_dir / "schedules.json").write_text(json.dumps(document), encoding="utf-8")
    store = ScheduleStore(data_dir)
    assert store.load() == {good.schedule_id: good}
    assert len(store.problems) == 1 and store.problems[0].startswith(f"schedule {bad_id} skipped")


async def test_a_skipped_record_is_kept_as_it_is_when_the_file_is_rewritten(data_dir: Path) -> None:
    # nothing is lost: a record this version cannot read (a typo made by hand, a newer
    # version's) stays in the file, word for word, until a person mends or removes it
    good = full_schedule()
    data_dir.mkdir(parents=True)
    bad_id = "00000000-0000-0000-0000-000000000000"
    broken = {"name": "x", "schedule_type": "cron", "cron_expression": "every tuesday", "note": "sửa tay"}
    document = {"version": 1, "schedules": {good.schedule_id: good.to_dict(), bad_id: broken}}
    (data_dir / "schedules.json").write_text(json.dumps(document), encoding="utf-8")
    store = ScheduleStore(data_dir)
    store.load()
    other = full_schedule().model_copy(update={"schedule_id": "ffffffff-0000-0000-0000-000000000000"})
    store.put(other)
    await store.flush_async()
    written = json.loads((data_dir / "schedules.json").read_text(encoding="utf-8"))["schedules"]
    assert written[bad_id] == broken
    assert set(written) == {good.schedule_id, other.schedule_id, bad_id}
    again = ScheduleStore(data_dir)
    assert set(again.load()) == {good.schedule_id, other.schedule_id} and len(again.problems) == 1
    assert store.delete(bad_id) is None  # the store can still drop it (no API route reaches it)
    await store.flush_async()
    assert bad_id not in json.loads((data_dir / "schedules.json").read_text(encoding="utf-8"))["schedules"]


async def test_the_daemon_starts_with_a_corrupt_schedules_file(build, data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "schedules.json").write_bytes(b"\x00garbage")
    scheduler = build(FakeClock(T0))
    assert scheduler.schedules.store.schedules == {} and len(scheduler.schedules.store.problems) == 1
    made = await scheduler.schedules.create(spec(schedule_type="cron", cron_expression="0 8 * * *"))
    assert list(ScheduleStore(data_dir).load()) == [made.schedule_id]


# -- execution history -------------------------------------------------------------------------------------

SID_A = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
SID_B = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb"


def put(history: ExecutionHistory, schedule_id: str, day: int, hour: int, status: str, duration: float | None) -> str:
    execution_id = f"{schedule_id}-202606{day:02d}T{hour:02d}0000"
    history.record(datetime(2026, 6, day).date(), {"execution_id": execution_id, "schedule_id": schedule_id,
                                                   "fire_time": f"2026-06-{day:02d}T{hour:02d}:00:00+07:00",
                                                   "status": "scheduled"})
    history.record(datetime(2026, 6, day).date(), {"execution_id": execution_id, "status": status,
                                                   "duration_seconds": duration})
    return execution_id


@pytest.fixture
async def history(data_dir: Path) -> ExecutionHistory:
    writer = ExecutionHistory(data_dir)
    ids = []
    for day in (1, 2, 3):
        for hour in (8, 9, 10, 11):
            ids.append(put(writer, SID_A, day, hour, "succeeded" if hour != 11 else "failed", float(hour - 7)))
        put(writer, SID_B, day, 12, "misfired", None)
    await writer.flush()
    writer.close()
    return ExecutionHistory(data_dir)  # a fresh reader: everything comes from the files


async def test_history_get_by_id_reads_only_its_day(history: ExecutionHistory, monkeypatch) -> None:
    read: list[Any] = []
    real = history.day
    monkeypatch.setattr(history, "day", lambda day: read.append(day) or real(day))
    record = history.get(f"{SID_A}-20260602T090000")
    assert record is not None and record["status"] == "succeeded" and record["duration_seconds"] == 2.0
    assert record["fire_time"] == "2026-06-02T09:00:00+07:00"  # the lines of one id folded
    assert read == [datetime(2026, 6, 2).date()]
    assert history.get(f"{SID_A}-20260602T070000") is None and history.get("not-an-id") is None


async def test_history_lists_newest_first_with_pages_and_filters(history: ExecutionHistory) -> None:
    everything, more = history.list(limit=100)
    assert len(everything) == 15 and more is False
    assert [r["fire_time"] for r in everything] == sorted((r["fire_time"] for r in everything), reverse=True)
    page1, more1 = history.list(schedule_id=SID_A, limit=5)
    page2, more2 = history.list(schedule_id=SID_A, limit=5, offset=5)
    page3, more3 = history.list(schedule_id=SID_A, limit=5, offset=10)
    assert (more1, more2, more3) == (True, True, False)
    assert [len(page1), len(page2), len(page3)] == [5, 5, 2]
    ids = [r["execution_id"] for r in page1 + page2 + page3]
    assert len(set(ids)) == 12 and ids[0] == f"{SID_A}-20260603T110000" and ids[-1] == f"{SID_A}-20260601T080000"
    failed, _ = history.list(schedule_id=SID_A, status="failed")
    assert [r["execution_id"] for r in failed] == [f"{SID_A}-202606{d}T110000" for d in ("03", "02", "01")]
    assert [r["schedule_id"] for r in history.list(status="misfired")[0]] == [SID_B] * 3


async def test_history_stats(history: ExecutionHistory) -> None:
    stats = history.stats(SID_A, today=datetime(2026, 6, 3).date(), days=30)
    assert stats["total"] == 12 and stats["counts"] == {"failed": 3, "succeeded": 9}
    assert stats["success_rate"] == 0.75
    # durations 1,2,3,4 on each of 3 days: nearest rank p50 is 2, p95 is 4
    assert stats["duration_p50_seconds"] == 2.0 and stats["duration_p95_seconds"] == 4.0
    assert history.stats(SID_A, today=datetime(2026, 6, 3).date(), days=1)["total"] == 4  # one day
    other = history.stats(SID_B, today=datetime(2026, 6, 3).date())
    assert other["misfired"] == 3 and other["success_rate"] is None and other["duration_p50_seconds"] is None


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [(list(range(1, 101)), 0.95, 95), (list(range(1, 101)), 0.5, 50), (list(range(1, 21)), 0.95, 19),
     (list(range(1, 21)), 0.5, 10), ([7.0], 0.95, 7.0), (list(range(1, 11)), 0.95, 10), ([3, 1, 2], 0.5, 2)],
)
def test_percentile_is_nearest_rank(values: list[float], fraction: float, expected: float) -> None:
    from services.scheduler.execution_history import percentile

    assert percentile(values, fraction) == expected


async def test_a_record_is_visible_before_the_writer_has_written_it(data_dir: Path, monkeypatch) -> None:
    history = ExecutionHistory(data_dir)
    execution_id = put(history, SID_A, 5, 8, "succeeded", 1.0)  # not flushed: may still be queued
    assert history.get(execution_id)["status"] == "succeeded"
    assert history.list(schedule_id=SID_A)[0][0]["execution_id"] == execution_id
    await history.flush()
    history.close()


# -- names, limits, upsert -----------------------------------------------------------------------------------


async def test_a_duplicate_name_is_a_conflict(build) -> None:
    service = build(FakeClock(T0)).schedules
    made = await service.create(spec(name="daily", schedule_type="cron", cron_expression="0 8 * * *"))
    with pytest.raises(ScheduleConflictError, match=made.schedule_id):
        await service.create(spec(name="daily", schedule_type="interval", interval_seconds=60))
    other = await service.create(spec(name="other", schedule_type="interval", interval_seconds=60))
    with pytest.raises(ScheduleConflictError):
        await service.update(other.schedule_id, {"name": "daily"})
    assert sorted(s.name for s in service.store.schedules.values()) == ["daily", "other"]


async def test_max_schedules_per_creator(build) -> None:
    service = build(FakeClock(T0)).schedules
    service.defaults = dataclasses.replace(service.defaults, max_schedules_per_creator=2)
    for n in range(2):
        await service.create(spec(name=f"a{n}", schedule_type="interval", interval_seconds=60), created_by="alice")
    with pytest.raises(CreatorLimitError, match=r"^alice already has 2 schedules \(MAX_SCHEDULES_PER_CREATOR\)"):
        await service.create(spec(name="a2", schedule_type="interval", interval_seconds=60), created_by="alice")
    await service.create(spec(name="b0", schedule_type="interval", interval_seconds=60), created_by="bob")
    assert len(service.store.schedules) == 3


async def test_upsert_is_idempotent(build, data_dir: Path) -> None:
    clock = FakeClock(T0)
    service = build(clock).schedules
    body = spec(name="nightly", schedule_type="cron", cron_expression="0 2 * * *", tags=["x"])
    made, outcome = await service.upsert(body)
    assert outcome == "created"
    file = (data_dir / "schedules.json").read_bytes()
    clock.now += timedelta(minutes=5)
    same, outcome = await service.upsert(dict(body))
    assert outcome == "unchanged" and same == made and (data_dir / "schedules.json").read_bytes() == file
    changed, outcome = await service.upsert({**body, "description": "now with words"})
    assert outcome == "updated" and changed.schedule_id == made.schedule_id
    assert changed.description == "now with words" and changed.updated_at == clock.now
    assert len(service.store.schedules) == 1
    _, outcome = await service.upsert({**body, "description": "now with words"})
    assert outcome == "unchanged"


async def test_upsert_of_a_fired_one_time_schedule_does_not_fire_it_again(build) -> None:
    clock = FakeClock(T0)
    scheduler = build(clock)
    await scheduler.start()
    try:
        body = spec(name="once", schedule_type="one_time", run_at=(T0 + timedelta(minutes=10)).isoformat())
        made, _ = await scheduler.schedules.upsert(body)
        await walk(scheduler, clock, T0 + timedelta(hours=1))
        assert len(jobs_of(scheduler, made.schedule_id)) == 1
        _, outcome = await scheduler.schedules.upsert({**body, "description": "words only"})
        assert outcome == "updated"
        await walk(scheduler, clock, T0 + timedelta(hours=2))
        assert len(jobs_of(scheduler, made.schedule_id)) == 1
    finally:
        await scheduler.stop()


@pytest.mark.parametrize("layout", ["ours", "hand-made"])
async def test_a_start_keeps_the_files_own_lines_and_its_first_write_encodes_only_the_change(
    data_dir: Path, monkeypatch, layout: str
) -> None:
    from services.scheduler import schedule_store as store_module

    _, ids = await stored_schedules(data_dir, 12)
    if layout == "hand-made":  # re-indented by a person: the same schedules, another layout
        document = json.loads((data_dir / "schedules.json").read_bytes())
        (data_dir / "schedules.json").write_text(json.dumps(document, indent=4, ensure_ascii=False))
    encoded: list[str] = []
    real_line = store_module._line
    monkeypatch.setattr(store_module, "_line", lambda sid, record: encoded.append(sid) or real_line(sid, record))
    again = ScheduleStore(data_dir)
    again.load()
    again.note_next(ids[3], T0, "key")
    await again.flush_async()
    assert encoded == ([ids[3]] if layout == "ours" else ids)
    assert_written_as_a_fresh_encode(data_dir, again)
