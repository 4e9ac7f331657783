"""The one place the scheduler reads the wall clock, and the time-zone arithmetic on it.

Every stored instant is timezone-aware UTC. "Today" and the day a job belongs to are
dates in the configured zone (SCHEDULER_TIMEZONE, default Asia/Ho_Chi_Minh). Tests move
the clock with freezegun or pass their own ``Clock`` callable.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_TIMEZONE",
    "Clock",
    "load_timezone",
    "local_date",
    "local_day_bounds",
    "parse_instant",
    "utc_now",
]

DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"

Clock = Callable[[], datetime]
"""A zero-argument callable returning the current instant as an aware UTC datetime."""


def utc_now() -> datetime:
    """Return the current instant, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


def load_timezone(name: str) -> tzinfo:
    """Return the IANA zone ``name``; raise ValueError with the name if it is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone: {name!r}") from exc


def local_date(instant: datetime, zone: tzinfo) -> date:
    """The calendar date of ``instant`` as seen in ``zone``."""
    return instant.astimezone(zone).date()


def local_day_bounds(day: date, zone: tzinfo) -> tuple[datetime, datetime] | None:
    """The UTC instants ``[start, end)`` whose local date in ``zone`` is ``day``.

    Lets a caller test many instants against one day with two comparisons instead of a
    zone conversion each. Returns None in the rare zone where local midnight is ambiguous
    or skipped in a way the conversion cannot pin down; then convert each instant.
    """
    start = _midnight_utc(day, zone)
    end = _midnight_utc(day + timedelta(days=1), zone)
    tick = timedelta(microseconds=1)
    for edge, first_day in ((start, day), (end, day + timedelta(days=1))):
        day_before = first_day - timedelta(days=1)
        if local_date(edge, zone) != first_day or local_date(edge - tick, zone) != day_before:
            return None
    return start, end


def _midnight_utc(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone).astimezone(timezone.utc)


def parse_instant(text: str, zone: tzinfo, *, now: datetime | None = None) -> datetime:
    """Parse ISO-8601 (or ``now``) into aware UTC; a time without offset is in ``zone``.

    Raises ValueError with a one-line reason.
    """
    value = text.strip()
    if value.lower() == "now":
        return now or utc_now()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"must be ISO-8601 like 2026-11-24T08:00 or 2026-11-24T01:00:00Z, got {text!r}"
        ) from None
    if parsed.tzinfo is None or parsed.tzinfo.utcoffset(parsed) is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(timezone.utc)
