"""ScheduledJob: validation at each boundary, time predicates under frozen time, round trip."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from services.scheduler.errors import JobValidationError
from services.scheduler.models import (
    JobPriority,
    JobStatus,
    ScheduledJob,
    check_schedule_window,
)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def job(**fields) -> ScheduledJob:
    base = {"account_id": "acc", "content": "Xin chào", "scheduled_time": T0}
    return ScheduledJob.from_dict({**base, **fields})


def test_defaults() -> None:
    made = job()
    assert made.priority is JobPriority.NORMAL
    assert made.max_retries == 3
    assert made.retry_count == 0
    assert made.status is JobStatus.SCHEDULED
    assert made.kind == "log"
    assert made.created_at.tzinfo is not None and made.created_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"account_id": ""}, "account_id: must be a non-empty string"),
        ({"account_id": "   "}, "account_id: must be a non-empty string"),
        ({"account_id": 5}, "account_id: must be a string"),
        ({"content": ""}, "content: must be a non-empty string"),
        ({"content": " \n "}, "content: must be a non-empty string"),
        ({"content": "x" * 501}, "content: must be at most 500 characters (got 501)"),
        ({"priority": 0}, "priority: must be low, normal, high, urgent or 1..4"),
        ({"priority": 5}, "priority: must be low, normal, high, urgent or 1..4"),
        ({"priority": "huge"}, "priority: must be low, normal, high, urgent or 1..4"),
        ({"priority": True}, "priority: must be low, normal, high, urgent or 1..4"),
        ({"max_retries": -1}, "max_retries: must be an integer >= 0"),
        ({"max_retries": 1.5}, "max_retries: must be an integer >= 0"),
        ({"max_retries": True}, "max_retries: must be an integer >= 0"),
        ({"max_retries": "3"}, "max_retries: must be an integer >= 0"),
        ({"scheduled_time": "2026-11-23T12:00:00"}, "scheduled_time: must include a UTC offset"),
        ({"scheduled_time": None}, "scheduled_time: "),
    ],
    ids=lambda v: str(v)[:40],
)
def test_invalid_fields_name_field_and_rule(fields, message) -> None:
    with pytest.raises(JobValidationError) as caught:
        job(**fields)
    assert str(caught.value).startswith(message)


def test_missing_field_is_named() -> None:
    with pytest.raises(JobValidationError, match="^content: is required$"):
        ScheduledJob.from_dict({"account_id": "a", "scheduled_time": T0})


def test_content_boundary_500_ok_501_rejected() -> None:
    assert len(job(content="ắ" * 500).content) == 500
    with pytest.raises(JobValidationError, match="at most 500"):
        job(content="ắ" * 501)


def test_strings_are_stripped() -> None:
    made = job(account_id="  acc  ", content="  nội dung  ")
    assert (made.account_id, made.content) == ("acc", "nội dung")


@pytest.mark.parametrize(
    ("given", "expected"),
    [(1, JobPriority.LOW), ("normal", JobPriority.NORMAL), ("HIGH", JobPriority.HIGH), ("4", JobPriority.URGENT)],
)
def test_priority_accepts_names_and_numbers(given, expected) -> None:
    assert job(priority=given).priority is expected


def test_offset_times_are_stored_in_utc() -> None:
    vietnam = timezone(timedelta(hours=7))
    made = job(scheduled_time=datetime(2026, 11, 24, 0, 0, tzinfo=vietnam))
    assert made.scheduled_time == datetime(2026, 11, 23, 17, 0, tzinfo=timezone.utc)
    assert made.scheduled_time.utcoffset() == timedelta(0)
    assert made.to_dict()["scheduled_time"] == "2026-11-23T17:00:00Z"


def test_round_trip_keeps_every_field_and_unknown_keys() -> None:
    made = job(extra_tool_field={"a": 1}, result={"url": "x"}, error="boom", priority=4)
    again = ScheduledJob.from_dict(made.to_dict())
    assert again == made
    assert again.to_dict()["extra_tool_field"] == {"a": 1}


@pytest.mark.parametrize(
    ("offset", "ok"),
    [
        (timedelta(days=365), True),
        (timedelta(days=365, seconds=1), False),
        (-timedelta(days=365), True),
        (-timedelta(days=365, seconds=1), False),
    ],
    ids=["+1y", "+1y+1s", "-1y", "-1y-1s"],
)
def test_schedule_window_is_one_year_each_way(offset, ok) -> None:
    if ok:
        check_schedule_window(T0 + offset, T0)
    else:
        with pytest.raises(JobValidationError, match="^scheduled_time: must be within 1 year"):
            check_schedule_window(T0 + offset, T0)


class TestPredicatesUnderFrozenTime:
    def test_is_expired_after_24_hours(self) -> None:
        made = job()
        with freeze_time(T0 + timedelta(hours=24)):
            assert not made.is_expired()
        with freeze_time(T0 + timedelta(hours=24, seconds=1)):
            assert made.is_expired()
            assert not job(status="completed").is_expired()
            assert not job(status="failed").is_expired()

    def test_is_ready_when_due_and_scheduled(self) -> None:
        made = job()
        with freeze_time(T0 - timedelta(seconds=1)):
            assert not made.is_ready()
        with freeze_time(T0):
            assert made.is_ready()
            assert not job(status="running").is_ready()
            assert not job(status="pending").is_ready()
        with freeze_time(T0 + timedelta(hours=25)):
            assert not made.is_ready()  # expired

    def test_is_stuck_after_max_running_minutes(self) -> None:
        running = job(status="running", started_at=T0)
        with freeze_time(T0 + timedelta(minutes=30)):
            assert not running.is_stuck()
        with freeze_time(T0 + timedelta(minutes=30, seconds=1)):
            assert running.is_stuck()
            assert not running.is_stuck(max_running_minutes=60)
            assert not job(status="scheduled", started_at=T0).is_stuck()

    def test_can_retry_until_max_retries(self) -> None:
        assert job(retry_count=2, max_retries=3).can_retry()
        assert not job(retry_count=3, max_retries=3).can_retry()
        assert not job(max_retries=0).can_retry()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-24T08:00", datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)),
        ("2026-11-24T08:00:00+07:00", datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)),
        ("2026-11-24T01:00:00Z", datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)),
        ("2026-11-24", datetime(2026, 11, 23, 17, 0, tzinfo=timezone.utc)),
        ("now", T0),
    ],
)
def test_parse_instant_reads_local_time_without_offset(text, expected) -> None:
    from services.scheduler.clock import load_timezone, parse_instant

    assert parse_instant(text, load_timezone("Asia/Ho_Chi_Minh"), now=T0) == expected


def test_parse_instant_rejects_garbage() -> None:
    from services.scheduler.clock import load_timezone, parse_instant

    with pytest.raises(ValueError, match="must be ISO-8601"):
        parse_instant("tomorrow morning", load_timezone("UTC"))


@pytest.mark.parametrize(
    ("zone", "day", "start", "end"),
    [
        ("Asia/Ho_Chi_Minh", date(2026, 11, 24),
         datetime(2026, 11, 23, 17, 0), datetime(2026, 11, 24, 17, 0)),
        ("UTC", date(2026, 11, 24), datetime(2026, 11, 24, 0, 0), datetime(2026, 11, 25, 0, 0)),
        # a 23-hour day: clocks skip 02:00-03:00 on 2026-03-08 in New York
        ("America/New_York", date(2026, 3, 8), datetime(2026, 3, 8, 5, 0), datetime(2026, 3, 9, 4, 0)),
        # midnight itself skipped: Sao Paulo went from 00:00 to 01:00 on 2018-11-04
        ("America/Sao_Paulo", date(2018, 11, 4), datetime(2018, 11, 4, 3, 0), datetime(2018, 11, 5, 2, 0)),
    ],
)
def test_local_day_bounds_are_the_utc_range_of_a_local_date(zone, day, start, end) -> None:
    from services.scheduler.clock import load_timezone, local_date, local_day_bounds

    tz = load_timezone(zone)
    bounds = local_day_bounds(day, tz)
    assert bounds == (start.replace(tzinfo=timezone.utc), end.replace(tzinfo=timezone.utc))
    tick = timedelta(microseconds=1)
    assert local_date(bounds[0], tz) == day and local_date(bounds[0] - tick, tz) != day
    assert local_date(bounds[1] - tick, tz) == day and local_date(bounds[1], tz) != day
