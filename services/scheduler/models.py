"""The job record: its status and priority enums, its fields, rules and time predicates.

A ``ScheduledJob`` is what a daily file stores under its id. The record validates itself
(account_id, content, priority, max_retries, aware UTC instants); the rule that depends on
*now* (scheduled_time within one year of it) is ``check_schedule_window``, applied when a
job is created, so an old record still loads. Unknown keys written by other tools are kept
as they are.
"""

from __future__ import annotations

import enum
import re
import unicodedata
import uuid
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from .clock import utc_now
from .errors import JobValidationError

__all__ = [
    "ACCOUNT_ID_MAX_CHARS",
    "CONTENT_MAX_CHARS",
    "DEFAULT_MAX_RUNNING_MINUTES",
    "EXPIRY_AFTER",
    "FINISHED_STATUSES",
    "JOB_ID_PATTERN",
    "MAX_RETRIES_LIMIT",
    "SCHEDULE_WINDOW",
    "JobPriority",
    "JobStatus",
    "ScheduledJob",
    "check_account_id",
    "check_job_id",
    "check_schedule_window",
    "normalize_text",
    "schedule_warnings",
    "validation_error_from_pydantic",
]

CONTENT_MAX_CHARS = 500
ACCOUNT_ID_MAX_CHARS = 64
MAX_RETRIES_LIMIT = 100
"""Upper bound of max_retries (and retry_count): far past any useful retry count (the
backoff is capped at a day), and well inside what every JSON reader holds as an integer."""
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
"""A job id: a letter or digit, then up to 63 letters, digits, ``-`` or ``_`` (a UUID, or
the pipeline's ``job-1a2b3c4d5e6f``). It is a file and URL path segment, so nothing else."""
_JOB_ID = re.compile(JOB_ID_PATTERN)
_ACCOUNT_ID = re.compile(rf"^[\w.@+-]{{1,{ACCOUNT_ID_MAX_CHARS}}}$")
_CONTROL = "\x00-\x08\x0b-\x1f\x7f-\x9f"
"""Control characters (C0 but tab and newline, DEL, C1): refused in every stored text, so
no record can carry a terminal escape (ESC, CSI) or a NUL into a listing."""
_CONTROL_CHAR = re.compile(f"[{_CONTROL}]")
EXPIRY_AFTER = timedelta(hours=24)
SCHEDULE_WINDOW = timedelta(days=365)
DEFAULT_MAX_RUNNING_MINUTES = 30


class JobStatus(str, enum.Enum):
    """Where a job is in its life. Stored as the lowercase value.

    PENDING is a job that exists but is not yet due for dispatch (no tool creates one yet;
    the loop leaves it alone). New jobs start SCHEDULED.
    """

    PENDING = "pending"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


FINISHED_STATUSES = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED}
)


class JobPriority(enum.IntEnum):
    """Dispatch order among ready jobs: higher first. Stored as the integer."""

    LOW = 1
    NORMAL = 2
    HIGH = 3
    URGENT = 4

    @classmethod
    def parse(cls, value: Any) -> JobPriority:
        """Accept a JobPriority, an int 1..4, a digit string or a name (any case)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, bool):
            raise ValueError("must be low, normal, high, urgent or 1..4")
        if isinstance(value, str):
            text = value.strip()
            if text.isdigit():
                value = int(text)
            elif text.upper() in cls.__members__:
                return cls[text.upper()]
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        raise ValueError("must be low, normal, high, urgent or 1..4")


def _parse_priority(value: Any) -> Any:
    # ints go straight to the enum check in pydantic-core; names and digit strings are parsed
    return value if type(value) is int else JobPriority.parse(value)


NonEmptyText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, pattern=f"^[^\n\t{_CONTROL}]+$")
]
JobIdText = Annotated[str, StringConstraints(pattern=JOB_ID_PATTERN)]
ContentText = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=CONTENT_MAX_CHARS, pattern=f"^[^{_CONTROL}]+$"
    ),
]
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_RETRIES_LIMIT)]
Priority = Annotated[JobPriority, BeforeValidator(_parse_priority)]

_UTC = timezone.utc
_INSTANT_FIELDS = ("scheduled_time", "created_at", "updated_at", "started_at", "completed_at")


BULK_LOAD: dict[str, Any] = {"bulk_load": True}
"""Validation context of a bulk load: the validator leaves the instants as parsed, and the
caller puts every job's in UTC itself, as ``in_utc`` does (``JobStorage`` inlines it in
the one pass it makes over each file's jobs)."""


def in_utc(job: ScheduledJob) -> None:
    """Give every instant of ``job`` the one shared ``timezone.utc`` (in place)."""
    values = job.__dict__
    for name in _INSTANT_FIELDS:
        value = values[name]
        if value is not None and value.tzinfo is not _UTC:
            values[name] = value.astimezone(_UTC)


def _new_job_id() -> str:
    return str(uuid.uuid4())


class ScheduledJob(BaseModel):
    """One job. Field names are the stored JSON keys.

    :param job_id: unique id (a UUID unless the creator gives one).
    :param account_id: whose job this is; non-empty after stripping.
    :param content: what to do (text or a manga reference); 1..500 characters after stripping.
    :param kind: which registered handler runs the job (the whitelist of what may run).
    :param scheduled_time: when it becomes due (aware; stored in UTC).
    :param priority: JobPriority; higher runs first among ready jobs.
    :param max_retries: failures allowed before FAILED; an int >= 0.
    :param retry_count: failures so far.
    :param status: JobStatus.
    :param created_at / updated_at: creation and last change; updated_at settles duplicates.
    :param started_at: start of the latest run.
    :param completed_at: end of the run that finished the job (COMPLETED or FAILED); it
        also decides which daily file holds the job.
    :param error: the latest failure, if any.
    :param result: what the handler returned on success.
    :param thread_id: kept from the seed's record (a handler result may carry it).

    The rules run in pydantic-core where they can (a cold start validates every stored
    record); only the priority names and the UTC normalisation are Python.
    """

    model_config = ConfigDict(extra="allow")

    job_id: JobIdText = Field(default_factory=_new_job_id)
    account_id: NonEmptyText
    content: ContentText
    kind: NonEmptyText = "log"
    scheduled_time: AwareDatetime
    priority: Priority = JobPriority.NORMAL
    max_retries: Count = 3
    retry_count: Count = 0
    status: JobStatus = JobStatus.SCHEDULED
    created_at: AwareDatetime = Field(default_factory=utc_now)
    updated_at: AwareDatetime = Field(default_factory=utc_now)
    started_at: AwareDatetime | None = None
    completed_at: AwareDatetime | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    thread_id: str | None = None

    @model_validator(mode="after")
    def _instants_in_utc(self, info: ValidationInfo) -> ScheduledJob:
        # One shared tzinfo (datetime.timezone.utc) for every stored instant: comparisons
        # between datetimes with the same tzinfo object skip utcoffset() calls, which makes
        # sorting and the due-time heap several times faster. A bulk load (a whole day
        # file) passes BULK_LOAD and converts its jobs itself, in one loop: see in_utc.
        if info.context is not BULK_LOAD:
            in_utc(self)
        return self

    # -- predicates (pure functions of the record and now) -------------------------------

    def is_finished(self) -> bool:
        """True once the job can no longer run (completed, failed, cancelled, expired)."""
        return self.status in FINISHED_STATUSES

    def is_expired(self, now: datetime | None = None) -> bool:
        """More than 24 h past scheduled_time and not finished."""
        now = now or utc_now()
        return not self.is_finished() and now - self.scheduled_time > EXPIRY_AFTER

    def is_ready(self, now: datetime | None = None) -> bool:
        """SCHEDULED, due (now >= scheduled_time), and not expired."""
        now = now or utc_now()
        return (
            self.status is JobStatus.SCHEDULED
            and now >= self.scheduled_time
            and not self.is_expired(now)
        )

    def can_retry(self) -> bool:
        """True while failures so far are fewer than max_retries."""
        return self.retry_count < self.max_retries

    def is_stuck(
        self, now: datetime | None = None, max_running_minutes: float = DEFAULT_MAX_RUNNING_MINUTES
    ) -> bool:
        """RUNNING for longer than ``max_running_minutes`` (a missing started_at counts)."""
        if self.status is not JobStatus.RUNNING:
            return False
        if self.started_at is None:
            return True
        now = now or utc_now()
        return now - self.started_at > timedelta(minutes=max_running_minutes)

    # -- serialisation --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict stored in a daily file."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScheduledJob:
        """Validate a stored record; raises JobValidationError naming the field."""
        try:
            return cls.model_validate(data)
        except PydanticValidationError as exc:
            raise validation_error_from_pydantic(exc) from None


def normalize_text(value: Any) -> Any:
    """A text field as it is stored: Unicode NFC (so a length counts characters as typed on
    any keyboard: macOS and some IMEs send Vietnamese decomposed), Windows line ends made
    plain. Anything that is not a string is returned as it is, for the model to refuse."""
    if not isinstance(value, str):
        return value
    if "\r" in value:
        value = value.replace("\r\n", "\n")
    return value if unicodedata.is_normalized("NFC", value) else unicodedata.normalize("NFC", value)


def check_job_id(job_id: Any) -> str:
    """``job_id`` if it has a job id's shape (JOB_ID_PATTERN); JobValidationError if not."""
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        shown = job_id if isinstance(job_id, str) else type(job_id).__name__
        raise JobValidationError(
            "job_id",
            f"must be 1-64 letters, digits, '-' or '_', starting with a letter or digit (got {_shown(shown)})",
        )
    return job_id


def check_account_id(account_id: Any) -> None:
    """A new job's account: 1-64 letters (any script), digits, ``.``, ``_``, ``-``, ``@``, ``+``.

    Applied when a job is created (records already stored load as they are)."""
    if isinstance(account_id, str) and account_id.strip() and not _ACCOUNT_ID.match(account_id.strip()):
        text = account_id.strip()
        if _CONTROL_CHAR.search(text) or "\n" in text or "\t" in text:
            rule = "must not contain control characters, newlines or tabs"
        elif len(text) > ACCOUNT_ID_MAX_CHARS:
            rule = f"must be at most {ACCOUNT_ID_MAX_CHARS} characters (got {len(text)})"
        else:
            rule = f"may hold only letters, digits, '.', '_', '-', '@' and '+' (got {_shown(text)})"
        raise JobValidationError("account_id", rule)


def _shown(text: str, limit: int = 80) -> str:
    """``text`` quoted for a one-line message: control characters escaped, long text cut."""
    quoted = repr(text[:limit] + ("…" if len(text) > limit else ""))
    return quoted


def schedule_warnings(job: ScheduledJob, now: datetime) -> list[str]:
    """What a user adding ``job`` at ``now`` should be told (the job is stored all the same).

    A job due more than 24 h ago is accepted (the seed's window is one year either way) but
    the next pass expires it without running it: say so, so a mistyped date is noticed.
    """
    if job.status is JobStatus.SCHEDULED and now - job.scheduled_time > EXPIRY_AFTER:
        return [
            f"scheduled_time {job.scheduled_time.isoformat()} is more than 24 h ago: the job will "
            "expire without running (give a later --at to run it)"
        ]
    return []


def check_schedule_window(scheduled_time: datetime, now: datetime) -> None:
    """Refuse a new job's scheduled_time more than one year (365 days) from now."""
    if abs(scheduled_time - now) > SCHEDULE_WINDOW:
        raise JobValidationError(
            "scheduled_time",
            f"must be within 1 year (365 days) of now; got {scheduled_time.isoformat()}",
        )


def validation_error_from_pydantic(exc: PydanticValidationError) -> JobValidationError:
    """The first problem of a pydantic error as one ``field: rule`` line."""
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or "job"
    kind = first["type"]
    rule = _RULES.get(kind) or first["msg"].removeprefix("Value error, ")
    if kind == "string_too_long":
        rule = f"must be at most {first['ctx']['max_length']} characters (got {len(first['input'].strip())})"
    elif field in ("max_retries", "retry_count") and kind in ("int_type", "greater_than_equal"):
        rule = "must be an integer >= 0"
    elif field in ("max_retries", "retry_count") and kind == "less_than_equal":
        rule = f"must be an integer from 0 to {MAX_RETRIES_LIMIT}"
    elif field == "priority":
        rule = "must be low, normal, high, urgent or 1..4"
    elif kind == "string_pattern_mismatch":
        if field == "job_id":
            rule = "must be 1-64 letters, digits, '-' or '_', starting with a letter or digit"
        elif field == "content":
            rule = "must not contain control characters (ESC, NUL, ...; newlines and tabs are fine)"
        else:
            rule = "must not contain control characters, newlines or tabs"
    return JobValidationError(field, rule[:1].lower() + rule[1:])


_RULES = {
    "missing": "is required",
    "string_too_short": "must be a non-empty string",
    "string_type": "must be a string",
    "timezone_aware": "must include a UTC offset (naive times are ambiguous)",
}
