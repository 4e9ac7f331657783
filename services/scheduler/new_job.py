"""NewJob: a request to add one job, the seven add-job arguments in one record.

Every way of adding a job builds one: the CLI from its options, the API from its JSON body,
``DaemonClient`` sends one as that body, and ``JobManager.add`` turns it into a
``ScheduledJob``. The positional ``add_job(account_id, content, ...)`` methods of
``JobManager``, ``Scheduler`` and ``DaemonClient`` are thin wrappers that build one.

A NewJob checks what depends on the values alone, with the rules and messages of the
stored record (``models.py``), in the order the manager always checked them: text in NFC,
the account id's rule, the job id's shape, then the fields in record order. A bad value
raises ``JobValidationError`` naming the field. What depends on more than the values (the
one-year window around *now*, the registered kinds, a job id already in use) is checked
by ``JobManager`` when the job is added.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, field_serializer, model_validator
from pydantic import ValidationError as PydanticValidationError

from .models import (
    ContentText,
    Count,
    JobIdText,
    JobPriority,
    NonEmptyText,
    Priority,
    check_account_id,
    check_job_id,
    normalize_text,
    validation_error_from_pydantic,
)

__all__ = ["NewJob"]

_TEXT_FIELDS = ("account_id", "content", "kind")


class NewJob(BaseModel):
    """What to add. Field names are the API body's keys and the stored record's.

    :param account_id: whose job this is (the rule of ``models.check_account_id``).
    :param content: what to do; 1..500 characters after stripping.
    :param scheduled_time: when it becomes due (aware); None: now, when it is added.
    :param priority: a JobPriority, 1..4 or a name (any case); default normal.
    :param max_retries: failures allowed before FAILED, 0..100; default 3.
    :param kind: the handler that runs it; None: the scheduler's default kind.
    :param job_id: the new job's id (the same create sent again answers with the job
        the first one made); None: a new UUID.

    Frozen, and no other keys are accepted. ``NewJob(...)`` raises JobValidationError (not
    pydantic's ValidationError), like every other check of a job's fields.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # the order of the stored record (models.ScheduledJob): the first bad field is reported
    job_id: JobIdText | None = None
    account_id: NonEmptyText
    content: ContentText
    kind: NonEmptyText | None = None
    scheduled_time: AwareDatetime | None = None
    priority: Priority = JobPriority.NORMAL
    max_retries: Count = 3

    def __init__(self, **fields: Any) -> None:
        try:
            super().__init__(**fields)
        except PydanticValidationError as exc:
            raise validation_error_from_pydantic(exc) from None

    @model_validator(mode="before")
    @classmethod
    def _normalize_and_check_ids(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {**data, **{name: normalize_text(data[name]) for name in _TEXT_FIELDS if name in data}}
        check_account_id(data.get("account_id"))
        if data.get("job_id") is not None:
            check_job_id(data["job_id"])
        return data

    @field_serializer("scheduled_time", when_used="json")
    def _iso(self, value: AwareDatetime | None) -> str | None:
        return None if value is None else value.isoformat()

    def to_body(self) -> dict[str, Any]:
        """The JSON body of ``POST /api/v1/jobs`` (read back by ``api.py``); unset fields left out."""
        return self.model_dump(mode="json", exclude_none=True)
