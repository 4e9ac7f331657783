"""fire_times: when a schedule fires, as tables of fixed aware instants (no I/O, no clock).

Zones: Asia/Ho_Chi_Minh (UTC+7, no DST) and America/New_York across both 2026 transitions
(spring forward 2026-03-08 02:00 EST -> 03:00 EDT; fall back 2026-11-01 02:00 EDT -> 01:00 EST).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.scheduler.errors import JobValidationError
from services.scheduler.fire_times import CatchUp, catch_up, due_fires, next_fire, wall_text
from services.scheduler.models import JobPriority
from services.scheduler.schedule_model import Coalesce, Schedule, ScheduleSpec, check_definition, job_priority

UTC = timezone.utc
HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NY = ZoneInfo("America/New_York")
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def schedule(**fields: Any) -> Schedule:
    base: dict[str, Any] = {"name": "t", "schedule_type": "cron", "target_command": "log", "created_at": CREATED}
    return Schedule.model_validate({**base, **fields})


def walls(fires: list[datetime], zone) -> list[str]:
    return [wall_text(fire, zone) for fire in fires]


def step_through(item: Schedule, after: datetime, until: datetime, zone) -> list[datetime]:
    """The fires one by one, as the loop finds them: next_fire from the last, with its wall time."""
    found: list[datetime] = []
    last_wall = None
    while (fire := next_fire(item, after, zone, last_wall=last_wall)) is not None and fire <= until:
        found.append(fire)
        after, last_wall = fire, wall_text(fire, zone)
    return found


# -- cron -------------------------------------------------------------------------------------


def test_cron_daily_0800_in_ho_chi_minh_is_0100_utc_every_day() -> None:
    item = schedule(cron_expression="0 8 * * *", timezone="Asia/Ho_Chi_Minh")
    assert next_fire(item, utc(2026, 11, 23, 12), HCM) == utc(2026, 11, 24, 1)
    assert next_fire(item, utc(2026, 11, 24, 0, 59), HCM) == utc(2026, 11, 24, 1)
    assert next_fire(item, utc(2026, 11, 24, 1), HCM) == utc(2026, 11, 25, 1)  # strictly after
    fires, more = due_fires(item, utc(2026, 11, 23, 12), utc(2026, 11, 27, 1), HCM)
    assert fires == [utc(2026, 11, d, 1) for d in (24, 25, 26, 27)] and more is False
    assert walls(fires, HCM) == [f"2026-11-{d}T08:00:00" for d in (24, 25, 26, 27)]


@pytest.mark.parametrize("find", [step_through, lambda s, a, b, z: due_fires(s, a, b, z)[0]])
def test_spring_forward_0230_runs_once_at_0300_edt(find) -> None:
    item = schedule(cron_expression="30 2 * * *", timezone="America/New_York")
    fires = find(item, utc(2026, 3, 6, 12), utc(2026, 3, 10, 12), NY)
    assert walls(fires, NY) == [
        "2026-03-07T02:30:00",  # EST
        "2026-03-08T03:00:00",  # 02:30 does not exist: the first valid time after, once
        "2026-03-09T02:30:00",  # EDT
        "2026-03-10T02:30:00",
    ]
    assert fires[1] == utc(2026, 3, 8, 7)  # 03:00 EDT = 07:00 UTC
    assert fires[0] == utc(2026, 3, 7, 7, 30) and fires[2] == utc(2026, 3, 9, 6, 30)


@pytest.mark.parametrize("find", [step_through, lambda s, a, b, z: due_fires(s, a, b, z)[0]])
def test_fall_back_0130_runs_once_not_twice(find) -> None:
    item = schedule(cron_expression="30 1 * * *", timezone="America/New_York")
    fires = find(item, utc(2026, 10, 31, 12), utc(2026, 11, 2, 12), NY)
    assert fires == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]  # 01:30 EDT, then the next day
    # even asked from just after the first 01:30, the repeated 01:30 EST (06:30 UTC) is not a fire
    assert next_fire(item, utc(2026, 11, 1, 5, 30), NY, last_wall="2026-11-01T01:30:00") == utc(2026, 11, 2, 6, 30)


@pytest.mark.parametrize("find", [step_through, lambda s, a, b, z: due_fires(s, a, b, z)[0]])
def test_every_30_minutes_1_to_3_on_fall_back_day_never_repeats_a_wall_clock_time(find) -> None:
    item = schedule(cron_expression="*/30 1-3 * * *", timezone="America/New_York")
    fires = find(item, utc(2026, 11, 1, 0), utc(2026, 11, 1, 12), NY)
    assert walls(fires, NY) == [f"2026-11-01T{t}:00" for t in ("01:00", "01:30", "02:00", "02:30", "03:00", "03:30")]
    assert fires[:2] == [utc(2026, 11, 1, 5), utc(2026, 11, 1, 5, 30)]  # the EDT pass
    assert fires[2] == utc(2026, 11, 1, 7)  # 02:00 EST: the EST 01:00 and 01:30 were skipped
    # the dedupe itself: from the EDT 01:30 with its wall time, the EST 01:00 (06:00 UTC) is skipped
    assert next_fire(item, utc(2026, 11, 1, 5, 30), NY, last_wall="2026-11-01T01:30:00") == utc(2026, 11, 1, 7)


def test_every_30_minutes_1_to_3_on_spring_forward_day_skips_the_missing_hour_once() -> None:
    item = schedule(cron_expression="*/30 1-3 * * *", timezone="America/New_York")
    fires, _ = due_fires(item, utc(2026, 3, 8, 0), utc(2026, 3, 8, 12), NY)
    assert walls(fires, NY) == [f"2026-03-08T{t}:00" for t in ("01:00", "01:30", "03:00", "03:30")]
    assert len(set(fires)) == len(fires)


def test_cron_respects_start_and_end_dates() -> None:
    item = schedule(cron_expression="0 8 * * *", timezone="Asia/Ho_Chi_Minh",
                    start_date=utc(2026, 12, 1), end_date=utc(2026, 12, 3, 1))
    assert next_fire(item, utc(2026, 11, 23), HCM) == utc(2026, 12, 1, 1)
    fires, _ = due_fires(item, utc(2026, 11, 23), utc(2027, 1, 1), HCM)
    assert fires == [utc(2026, 12, 1, 1), utc(2026, 12, 2, 1), utc(2026, 12, 3, 1)]  # end inclusive
    assert next_fire(item, utc(2026, 12, 3, 1), HCM) is None


def test_next_fire_gives_up_past_the_horizon() -> None:
    item = schedule(cron_expression="0 0 29 2 *", timezone="UTC")  # 29 February: next in 2028
    assert next_fire(item, utc(2026, 3, 1), ZoneInfo("UTC"), horizon=timedelta(days=365)) is None
    assert next_fire(item, utc(2026, 3, 1), ZoneInfo("UTC"), horizon=timedelta(days=1100)) == utc(2028, 2, 29)


# -- interval, one-time, immediate -------------------------------------------------------------


def test_interval_without_start_begins_one_interval_after_creation() -> None:
    item = schedule(schedule_type="interval", interval_seconds=3600)
    assert next_fire(item, CREATED, HCM) == CREATED + timedelta(hours=1)
    fires, more = due_fires(item, CREATED, CREATED + timedelta(hours=3, minutes=30), HCM)
    assert fires == [CREATED + timedelta(hours=h) for h in (1, 2, 3)] and more is False
    assert next_fire(item, CREATED + timedelta(hours=2, minutes=1), HCM) == CREATED + timedelta(hours=3)


def test_interval_with_start_and_end() -> None:
    start, end = utc(2026, 2, 1, 10), utc(2026, 2, 1, 11)
    item = schedule(schedule_type="interval", interval_seconds=900, start_date=start, end_date=end)
    assert next_fire(item, CREATED, HCM) == start  # the start itself is the first fire
    fires, _ = due_fires(item, CREATED, utc(2026, 3, 1), HCM)
    assert fires == [start + timedelta(minutes=m) for m in (0, 15, 30, 45, 60)]
    assert next_fire(item, end, HCM) is None
    # asked from inside the window, off the grid: the next grid point
    assert next_fire(item, start + timedelta(minutes=20), HCM) == start + timedelta(minutes=30)


def test_interval_is_absolute_time_across_fall_back() -> None:
    item = schedule(schedule_type="interval", interval_seconds=3600, start_date=utc(2026, 11, 1, 4))  # 00:00 EDT
    fires, _ = due_fires(item, utc(2026, 11, 1), utc(2026, 11, 2, 4, 59), NY)  # up to 23:59 EST
    assert len(fires) == 25  # the local day has 25 hours; every one of them fires
    assert all(b - a == timedelta(hours=1) for a, b in zip(fires, fires[1:]))


def test_one_time_fires_once_at_run_at() -> None:
    run_at = utc(2026, 5, 1, 9)
    item = schedule(schedule_type="one_time", run_at=run_at)
    assert next_fire(item, CREATED, HCM) == run_at
    assert due_fires(item, CREATED, utc(2027, 1, 1), HCM) == ([run_at], False)
    fired = item.model_copy(update={"last_fire_time": run_at, "fires": 1})
    assert next_fire(fired, run_at, HCM) is None and due_fires(fired, run_at, utc(2027, 1, 1), HCM) == ([], False)


def test_immediate_fires_once_at_creation() -> None:
    item = schedule(schedule_type="immediate")
    assert next_fire(item, CREATED, HCM) == CREATED
    assert due_fires(item, CREATED, CREATED, HCM) == ([CREATED], False)
    fired = item.model_copy(update={"last_fire_time": CREATED, "fires": 1})
    assert next_fire(fired, CREATED, HCM) is None


def test_due_fires_stops_at_its_limit_and_says_more_are_left() -> None:
    item = schedule(cron_expression="* * * * *", timezone="UTC")
    fires, more = due_fires(item, utc(2026, 6, 1), utc(2026, 6, 1, 1), ZoneInfo("UTC"), limit=5)
    assert fires == [utc(2026, 6, 1, 0, m) for m in range(1, 6)] and more is True
    fires, more = due_fires(item, utc(2026, 6, 1), utc(2026, 6, 1, 0, 5), ZoneInfo("UTC"), limit=5)
    assert len(fires) == 5 and more is False


# -- catch-up ---------------------------------------------------------------------------------

NOW = utc(2026, 6, 1, 18)
OUTAGE = [NOW - timedelta(hours=6) + timedelta(minutes=15 * i) for i in range(1, 25)]  # 24 fires, last == NOW
GRACE = timedelta(seconds=300)


@pytest.mark.parametrize(
    ("coalesce", "runs"),
    [(Coalesce.LATEST, (OUTAGE[-1],)), (Coalesce.EARLIEST, (OUTAGE[0],)), (Coalesce.ALL, tuple(OUTAGE))],
)
def test_catch_up_after_a_six_hour_outage(coalesce: Coalesce, runs: tuple[datetime, ...]) -> None:
    plan = catch_up(OUTAGE, NOW, GRACE, coalesce)
    assert plan.run == runs
    assert set(plan.run) | set(plan.not_run) == set(OUTAGE) and not set(plan.run) & set(plan.not_run)
    assert plan.late == frozenset(OUTAGE[:-1])  # all but the fire at NOW are older than the grace


@pytest.mark.parametrize(
    ("coalesce", "first", "last", "runs"),
    [
        (Coalesce.LATEST, True, False, ()), (Coalesce.LATEST, False, False, ()), (Coalesce.LATEST, False, True, (-1,)),
        (Coalesce.EARLIEST, True, False, (0,)), (Coalesce.EARLIEST, False, False, ()),
        (Coalesce.EARLIEST, False, True, ()), (Coalesce.ALL, False, False, tuple(range(24))),
    ],
)
def test_catch_up_in_parts_runs_once_for_the_whole(coalesce, first: bool, last: bool, runs: tuple[int, ...]) -> None:
    plan = catch_up(OUTAGE, NOW, GRACE, coalesce, first=first, last=last)
    assert plan.run == tuple(OUTAGE[i] for i in runs)
    assert len(plan.run) + len(plan.not_run) == len(OUTAGE) and plan.late == frozenset(OUTAGE[:-1])
    one = catch_up(OUTAGE[-1:], NOW, GRACE, coalesce, first=first, last=last)  # a last part of one fire
    assert len(one.run) == (1 if coalesce is Coalesce.ALL or (last if coalesce is Coalesce.LATEST else first) else 0)


def test_catch_up_fires_within_the_grace_are_not_late() -> None:
    fires = [NOW - timedelta(seconds=300), NOW - timedelta(seconds=60), NOW]
    assert catch_up(fires, NOW, GRACE, Coalesce.LATEST) == CatchUp((NOW,), tuple(fires[:2]), frozenset())
    assert catch_up([NOW - timedelta(seconds=301)], NOW, GRACE, Coalesce.LATEST).late == {NOW - timedelta(seconds=301)}
    assert catch_up([], NOW, GRACE, Coalesce.ALL) == CatchUp((), (), frozenset())


# -- the definition ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"schedule_type": "cron"}, "cron_expression: is required for a cron schedule"),
        ({"schedule_type": "cron", "cron_expression": "0 8 * * * *"}, "cron_expression: must have 5 fields"),
        ({"schedule_type": "cron", "cron_expression": "61 8 * * *"}, "cron_expression: "),
        ({"schedule_type": "interval", "interval_seconds": 60, "run_at": "2026-05-01T00:00:00Z"},
         "run_at: does not apply to a interval schedule"),
        ({"schedule_type": "one_time"}, "run_at: is required"),
        ({"schedule_type": "immediate", "cron_expression": "0 8 * * *"}, "cron_expression: does not apply"),
        ({"schedule_type": "interval", "interval_seconds": 60, "start_date": "2026-05-02T00:00:00Z",
          "end_date": "2026-05-01T00:00:00Z"}, "end_date: must be after start_date"),
    ],
)
def test_check_definition_refuses_fields_that_do_not_fit_together(fields: dict[str, Any], message: str) -> None:
    spec = ScheduleSpec.model_validate({"name": "t", "target_command": "log", **fields})
    with pytest.raises(JobValidationError) as caught:
        check_definition(spec)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("priority", "expected"),
    [(1, JobPriority.LOW), (3, JobPriority.LOW), (4, JobPriority.NORMAL), (5, JobPriority.NORMAL),
     (6, JobPriority.NORMAL), (7, JobPriority.HIGH), (8, JobPriority.HIGH), (9, JobPriority.URGENT),
     (10, JobPriority.URGENT)],
)
def test_job_priority_maps_one_to_ten_onto_four(priority: int, expected: JobPriority) -> None:
    assert job_priority(priority) is expected


def test_wall_text_is_the_local_time_without_offset() -> None:
    assert wall_text(utc(2026, 11, 1, 5, 30), NY) == "2026-11-01T01:30:00"
    assert wall_text(utc(2026, 11, 1, 6, 30), NY) == "2026-11-01T01:30:00"  # the same wall time, an hour later
    assert wall_text(utc(2026, 11, 24, 1), HCM) == "2026-11-24T08:00:00"
