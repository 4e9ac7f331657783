"""The schedule record: what to run (a registered kind and its payload), when, and how.

A ``Schedule`` is what ``DATA_DIR/schedules.json`` stores under its id: the seed's fields
(name, description, schedule_type, cron_expression / interval_seconds / run_at, timezone,
target_command, command_payload, tags, priority, max_retries, created_by, paused), the
catch-up policy (misfire_grace_time, coalesce, max_instances, pause_after_failures), and
the state the service keeps (last fire, failures in a row, why it paused). Its
``next_run_time`` is computed (``fire_times.next_fire``) and given in every answer.

``ScheduleSpec`` is what a create sends; ``ScheduleUpdate`` what an update sends (every
field optional: the ones given replace the stored ones). Both refuse unknown keys, and
``check_definition`` checks what depends on several fields together (a cron schedule has
a cron expression and no run_at, and so on).

Priorities: the seed's schedules carry 1..10 (its example uses 7); a job has four
(``JobPriority``). ``job_priority`` maps 1-3 to low, 4-6 to normal, 7-8 to high and 9-10
to urgent, so the seed's default 5 runs as a normal job.
"""

from __future__ import annotations

import enum
import re
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any
from zoneinfo import available_timezones

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from .clock import load_timezone, utc_now
from .errors import JobValidationError
from .models import JobPriority, normalize_text

__all__ = [
    "SCHEDULE_FORMAT_VERSION",
    "Coalesce",
    "Schedule",
    "ScheduleSpec",
    "ScheduleStatus",
    "ScheduleType",
    "ScheduleUpdate",
    "check_definition",
    "job_priority",
    "schedule_error",
]

SCHEDULE_FORMAT_VERSION = 1
"""The ``version`` written in schedules.json."""
MAX_INTERVAL_SECONDS = 366 * 86400
MAX_TAGS = 20
_CONTROL = "\x00-\x1f\x7f-\x9f"


class ScheduleType(str, enum.Enum):
    """When a schedule fires: on a cron expression, every N seconds, once at a time, or now."""

    CRON = "cron"
    INTERVAL = "interval"
    ONE_TIME = "one_time"
    IMMEDIATE = "immediate"


class ScheduleStatus(str, enum.Enum):
    """A schedule's state as lists show and filter it (not stored: derived)."""

    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    """No fire is left: a one-time or immediate schedule that fired, an interval past its end."""


class Coalesce(str, enum.Enum):
    """Which of several due fires run when the daemon finds more than one (after downtime)."""

    LATEST = "latest"
    EARLIEST = "earliest"
    ALL = "all"


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=f"^[^{_CONTROL}]+$")]
Description = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50, pattern=r"^[\w.:/-]+$")]
Kind = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[\w.:-]+$")]
Actor = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[\w.@+:/-]+$")]
AccountId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[\w.@+-]+$")]
def _whole_number(value: Any) -> Any:
    """A JSON number without a fraction (``36.0``) as the integer it is: JSON Schema's
    ``integer`` admits it. Anything else (``"36"``, ``true``, ``36.5``) is left for the
    strict field to refuse."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


_Whole = BeforeValidator(_whole_number)
SchedulePriority = Annotated[int, Field(strict=True, ge=1, le=10), _Whole]
Seconds = Annotated[int, Field(strict=True, ge=1, le=MAX_INTERVAL_SECONDS), _Whole]
Retries = Annotated[int, Field(strict=True, ge=0, le=100), _Whole]
Instances = Annotated[int, Field(strict=True, ge=1, le=1000), _Whole]
Grace = Annotated[int, Field(strict=True, ge=0, le=MAX_INTERVAL_SECONDS), _Whole]
Failures = Annotated[int, Field(strict=True, ge=1, le=1000), _Whole]
RetryDelay = Annotated[int, Field(strict=True, ge=0, le=86400), _Whole]


_ZONE_NAMES = sorted(available_timezones())
"""The IANA zones ``timezone`` may name (tzdata's): the API's document lists them."""


def job_priority(priority: int) -> JobPriority:
    """The job priority a schedule's 1..10 maps to (see the module docstring)."""
    if priority <= 3:
        return JobPriority.LOW
    if priority <= 6:
        return JobPriority.NORMAL
    if priority <= 8:
        return JobPriority.HIGH
    return JobPriority.URGENT


class _Definition(BaseModel):
    """The fields a creator sets (shared by the spec, the update and the record)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description | None = None
    schedule_type: ScheduleType
    cron_expression: str | None = Field(default=None, max_length=200)
    interval_seconds: Seconds | None = None
    run_at: AwareDatetime | None = None
    start_date: AwareDatetime | None = None
    end_date: AwareDatetime | None = None
    timezone: str | None = Field(
        default=None, min_length=1, max_length=64, json_schema_extra={"enum": [*_ZONE_NAMES, None]}
    )
    target_command: Kind
    command_payload: dict[str, Any] = Field(default_factory=dict)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    priority: SchedulePriority = 5
    max_retries: Retries | None = None
    retry_delay_seconds: RetryDelay | None = None
    account_id: AccountId | None = None
    misfire_grace_time: Grace | None = None
    coalesce: Coalesce = Coalesce.LATEST
    max_instances: Instances | None = None
    pause_after_failures: Failures | None = None
    paused: bool = False

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            load_timezone(value)  # ValueError names the zone
        return value

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


def _nfc_fields(data: Any) -> Any:
    """Text as it is stored (``models.normalize_text``): applied to what a client sends, not
    to what is loaded back (already stored that way)."""
    if isinstance(data, dict):
        data = {key: normalize_text(value) for key, value in data.items()}
    return data


class ScheduleSpec(_Definition):
    """A create's body. ``created_by`` comes from the request (X-Created-By), not the body."""

    _nfc = model_validator(mode="before")(classmethod(lambda cls, data: _nfc_fields(data)))


class ScheduleUpdate(BaseModel):
    """An update's body: each field given replaces the stored one (``null`` clears an optional one)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None
    schedule_type: ScheduleType | None = None
    cron_expression: str | None = Field(default=None, max_length=200)
    interval_seconds: Seconds | None = None
    run_at: AwareDatetime | None = None
    start_date: AwareDatetime | None = None
    end_date: AwareDatetime | None = None
    timezone: str | None = Field(
        default=None, min_length=1, max_length=64, json_schema_extra={"enum": [*_ZONE_NAMES, None]}
    )
    target_command: Kind | None = None
    command_payload: dict[str, Any] | None = None
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    priority: SchedulePriority | None = None
    max_retries: Retries | None = None
    retry_delay_seconds: RetryDelay | None = None
    account_id: AccountId | None = None
    misfire_grace_time: Grace | None = None
    coalesce: Coalesce | None = None
    max_instances: Instances | None = None
    pause_after_failures: Failures | None = None

    _nfc = model_validator(mode="before")(classmethod(lambda cls, data: _nfc_fields(data)))


_SCHEDULE_INSTANTS = ("run_at", "start_date", "end_date", "created_at", "updated_at", "paused_at", "last_fire_time",
                      "cursor")


def _new_schedule_id() -> str:
    return str(uuid.uuid4())


class Schedule(_Definition):
    """One schedule as stored. ``None`` policy fields take the daemon's defaults."""

    model_config = ConfigDict(extra="allow")  # keys written by a newer version are kept

    schedule_id: str = Field(default_factory=_new_schedule_id, pattern=r"^[0-9a-f-]{36}$")
    created_by: Actor = "scheduler"
    created_at: AwareDatetime = Field(default_factory=utc_now)
    updated_at: AwareDatetime = Field(default_factory=utc_now)
    paused_reason: str | None = None
    paused_at: AwareDatetime | None = None
    last_fire_time: AwareDatetime | None = None
    """The last fire handled (run, skipped or misfired): catch-up starts after it."""
    last_fire_wall: str | None = None
    """That fire's local wall-clock time (``YYYY-MM-DDTHH:MM:SS``): a cron fire not later than it
    is the fall-back hour repeating, and is not run twice."""
    cursor: AwareDatetime | None = None
    """Fires at or before it are not wanted any more (set when the schedule is resumed or
    its timing changes): catch-up starts after the later of it and ``last_fire_time``."""
    failures_in_a_row: int = 0
    fires: int = 0
    next_fire_time: AwareDatetime | None = None
    """The next fire as last computed, and ``next_fire_key`` the timing it was computed
    from: a start reuses it when the key still matches (computing 10,000 cron fires
    costs more than the rest of the start)."""
    next_fire_key: str | None = None

    def timing_key(self) -> str:
        """What the next fire depends on, as one string (a start computes it for every
        schedule: one f-string of the fields, read from ``__dict__``)."""
        v = self.__dict__
        return (f"{v['schedule_type'].value}|{v['cron_expression']}|{v['interval_seconds']}|{v['run_at']}|"
                f"{v['start_date']}|{v['end_date']}|{v['timezone']}|{v['created_at']}|{v['last_fire_time']}|"
                f"{v['last_fire_wall']}|{v['cursor']}|{v['fires']}|{v['paused']}")

    @model_validator(mode="after")
    def _utc(self) -> Schedule:
        values = self.__dict__  # a dict lookup, cheaper than getattr: a start runs this for every schedule
        for name in _SCHEDULE_INSTANTS:
            value = values[name]
            if value is not None and value.tzinfo is not timezone.utc:
                values[name] = value.astimezone(timezone.utc)
        return self

    def zone_name(self, default: str) -> str:
        return self.timezone or default

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        try:
            return cls.model_validate(data)
        except PydanticValidationError as exc:
            raise schedule_error(exc) from None


def check_definition(schedule: _Definition) -> None:
    """The rules across fields; JobValidationError naming the field at fault."""
    kind = schedule.schedule_type
    has = {
        "cron_expression": schedule.cron_expression is not None,
        "interval_seconds": schedule.interval_seconds is not None,
        "run_at": schedule.run_at is not None,
    }
    needs = {
        ScheduleType.CRON: "cron_expression",
        ScheduleType.INTERVAL: "interval_seconds",
        ScheduleType.ONE_TIME: "run_at",
        ScheduleType.IMMEDIATE: None,
    }[kind]
    if needs is not None and not has[needs]:
        raise JobValidationError(needs, f"is required for a {kind.value} schedule")
    for name, given in has.items():
        if given and name != needs:
            raise JobValidationError(name, f"does not apply to a {kind.value} schedule (it takes {needs or 'no timing field'})")
    if kind is ScheduleType.CRON:
        check_cron(schedule.cron_expression or "")
    if schedule.start_date and schedule.end_date and schedule.end_date <= schedule.start_date:
        raise JobValidationError("end_date", "must be after start_date")


_FIELD_COUNT = re.compile(r"\S+")


def check_cron(expression: str) -> None:
    """A 5-field cron expression cronsim accepts; JobValidationError("cron_expression") if not."""
    from cronsim import CronSim, CronSimError

    fields = _FIELD_COUNT.findall(expression)
    if len(fields) != 5:
        raise JobValidationError(
            "cron_expression", f"must have 5 fields (minute hour day month weekday), got {len(fields)}: {expression!r}"
        )
    try:
        CronSim(expression, datetime(2026, 1, 1, tzinfo=timezone.utc))
    except CronSimError as exc:
        raise JobValidationError("cron_expression", f"{exc} in {expression!r}") from None


def schedule_error(exc: PydanticValidationError) -> JobValidationError:
    """The first problem of a pydantic error on a schedule as one ``field: rule`` line."""
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or "schedule"
    kind = first["type"]
    rule = first["msg"].removeprefix("Value error, ")
    if kind == "missing":
        rule = "is required"
    elif kind == "extra_forbidden":
        rule = "unknown field"
    elif kind == "timezone_aware":
        rule = "must include a UTC offset (naive times are ambiguous)"
    elif kind == "string_pattern_mismatch":
        rule = "holds characters it may not (control characters, or outside its allowed set)"
    elif kind == "enum" and field == "schedule_type":
        rule = "must be one of: cron, interval, one_time, immediate"
    return JobValidationError(field, rule[:1].lower() + rule[1:])
