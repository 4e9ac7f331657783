"""When a schedule fires: pure functions of its definition, its last fire and now.

No I/O, no clock: every function is given the instants it needs, so the tests are tables
of fixed aware datetimes (and the loop computes each schedule's next fire once, then
sleeps on it).

- cron: cronsim (5 fields) in the schedule's IANA zone. Time as cron users expect it: on
  a spring-forward day a fire in the missing hour (02:30 in New York) runs once, at the
  first valid time after (03:00); on the fall-back day the repeated hour does not run
  twice: a fire whose local wall-clock time is not later than the last fire's is skipped
  (dedupe by schedule and wall-clock fire time, as DBOS does; croniter and APScheduler
  fire 01:30 twice).
- interval: every ``interval_seconds`` from ``start_date`` (or one interval after the
  schedule was made), until ``end_date``; absolute time, so DST does not move it.
- one_time: ``run_at``, once. immediate: when it was made, once.

``catch_up`` decides what runs of several due fires (after downtime): fires older than the
misfire grace are misfires (recorded and counted whether they run or not), and the
schedule's ``coalesce`` picks the runs: ``latest`` (one run, the last fire), ``earliest``
(one run, the first) or ``all``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo

from cronsim import CronSim

from .schedule_model import Coalesce, Schedule, ScheduleType

__all__ = ["MAX_CATCH_UP_FIRES", "CatchUp", "catch_up", "due_fires", "next_fire", "wall_text"]

MAX_CATCH_UP_FIRES = 1000
"""At most this many past fires are enumerated at once (a minutely schedule down for a week
has 10,080): a longer catch-up is handled in parts of this many, one per pass, and
``catch_up`` is told which part it has (``latest`` runs the last part's last fire only)."""
_UTC = timezone.utc
_ONE_MICROSECOND = timedelta(microseconds=1)


def wall_text(instant: datetime, zone: tzinfo) -> str:
    """The local wall-clock time of ``instant`` in ``zone``, ``YYYY-MM-DDTHH:MM:SS``."""
    return instant.astimezone(zone).replace(tzinfo=None).isoformat(timespec="seconds")


def next_fire(
    schedule: Schedule,
    after: datetime,
    zone: tzinfo,
    *,
    last_wall: str | None = None,
    horizon: timedelta = timedelta(days=366),
) -> datetime | None:
    """The schedule's first fire strictly after ``after`` (aware UTC), or None if none is left.

    ``zone``: the schedule's zone. ``last_wall``: the last fire's wall-clock time (a cron
    fire not later than it is skipped). ``horizon``: how far past ``after`` to look.
    """
    kind = schedule.schedule_type
    fired = schedule.last_fire_time is not None or schedule.fires > 0
    if kind is ScheduleType.IMMEDIATE:
        return None if fired else schedule.created_at
    if kind is ScheduleType.ONE_TIME:
        return None if fired or schedule.run_at is None else schedule.run_at
    start = schedule.start_date
    if start is not None and after < start:
        after = start - _ONE_MICROSECOND
    limit = after + horizon
    if schedule.end_date is not None and schedule.end_date < limit:
        limit = schedule.end_date
    if kind is ScheduleType.INTERVAL:
        found = _next_interval(schedule, after)
    else:
        found = _next_cron(schedule.cron_expression or "", after, zone, last_wall, limit)
    if found is None or found > limit:
        return None
    return found


def _next_interval(schedule: Schedule, after: datetime) -> datetime | None:
    step = timedelta(seconds=schedule.interval_seconds or 0)
    if step <= timedelta(0):
        return None
    anchor = schedule.start_date or schedule.created_at + step
    if after < anchor:
        return anchor
    count = (after - anchor) // step + 1
    return anchor + count * step


def _next_cron(expression: str, after: datetime, zone: tzinfo, last_wall: str | None, limit: datetime) -> datetime | None:
    start = after.astimezone(zone)
    for candidate in CronSim(expression, start):
        instant = candidate.astimezone(_UTC)
        if instant <= after:  # cronsim may repeat the start instant across a DST change
            continue
        if instant > limit:
            return None
        wall = candidate.replace(tzinfo=None).isoformat(timespec="seconds")
        if last_wall is not None and wall <= last_wall:
            continue  # the fall-back hour again: this wall-clock time already fired
        return instant
    return None


def due_fires(
    schedule: Schedule, after: datetime, now: datetime, zone: tzinfo, *, limit: int = MAX_CATCH_UP_FIRES
) -> tuple[list[datetime], bool]:
    """The fires in (``after``, ``now``], oldest first, at most ``limit``; and whether more were left."""
    fires: list[datetime] = []
    last_wall = schedule.last_fire_wall
    probe = schedule
    cursor = after
    while True:
        fire = next_fire(probe, cursor, zone, last_wall=last_wall, horizon=max(now - cursor, timedelta(0)) + _ONE_MICROSECOND)
        if fire is None or fire > now:
            return fires, False
        if len(fires) >= limit:
            return fires, True
        fires.append(fire)
        cursor = fire
        last_wall = wall_text(fire, zone)
        if schedule.schedule_type in (ScheduleType.ONE_TIME, ScheduleType.IMMEDIATE):
            return fires, False


@dataclass(frozen=True)
class CatchUp:
    """What to do with the due fires: which run, which not, which were late."""

    run: tuple[datetime, ...]
    not_run: tuple[datetime, ...]
    late: frozenset[datetime]
    """Fires older than the misfire grace when found: misfires, counted (run or not)."""


def catch_up(
    fires: list[datetime], now: datetime, grace: timedelta, coalesce: Coalesce, *, first: bool = True, last: bool = True
) -> CatchUp:
    """Pick the runs among due ``fires`` (oldest first) by ``coalesce``; mark the late ones.

    ``first`` / ``last``: whether ``fires`` begin / end the catch-up (False for a part of a
    longer one, see MAX_CATCH_UP_FIRES): ``earliest`` runs a fire of the first part only,
    ``latest`` of the last part only, so a catch-up in parts still runs once.
    """
    late = frozenset(fire for fire in fires if now - fire > grace)
    if coalesce is Coalesce.ALL or (len(fires) <= 1 and first and last):
        return CatchUp(tuple(fires), (), late)
    wanted = last if coalesce is Coalesce.LATEST else first
    if not fires or not wanted:
        return CatchUp((), tuple(fires), late)
    chosen = fires[-1] if coalesce is Coalesce.LATEST else fires[0]
    return CatchUp((chosen,), tuple(fire for fire in fires if fire != chosen), late)
