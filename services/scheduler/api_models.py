"""What the HTTP API documents: its one error body, its answers, and the schema pieces every router shares.

The OpenAPI document (``/openapi.json``) must tell the truth: a body it calls valid is
accepted, one it calls invalid is refused, and every status a route can answer is listed
with the body it carries (``tests/scheduler/test_openapi_contract.py`` runs schemathesis
against a real daemon to hold it to that). The pieces here make that cheap for a router:

- ``ErrorBody``: the one error shape ``{"error": code, "message": line[, "field": name]}``.
  ``create_app`` already documents it under 422 and 401 of every route (the app-level
  handlers answer those for any route), so a router lists only its own errors::

      from .api_models import error_responses

      @router.get("/api/v1/schedules/{schedule_id}", responses=error_responses(404))
      @router.post("/api/v1/schedules", status_code=201, responses=error_responses(409, 429, 507))

- ``answer(model, description)``: the ``responses=`` entry of a success answered with a
  plain dict or a ``JSONResponse`` (give the route ``response_model=None`` so FastAPI does
  not re-validate what it returns): ``responses={200: answer(Schedule, "the schedule"),
  **error_responses(404)}``.
- ``json_integer``: a JSON number without a fraction (``36.0``) as the int it is; JSON
  Schema's ``integer`` admits it, so a strict int field must too.
- Parameters whose parsing the route does itself (so its typed error and message stay)
  are documented with ``documented(str, schema)`` (``Annotated[..., WithJsonSchema]``):
  e.g. ``job_id: documented(str, JOB_ID_SCHEMA)``. A query filter that takes one of a
  few values is an enum (``enum_schema``); its empty value is then refused with 422.
- Text rules of the stored records as JSON Schema patterns, read the way the server reads
  them (stripped of whitespace at both ends, no control characters): ``text_schema``,
  ``ACCOUNT_ID_SCHEMA``, ``JOB_ID_SCHEMA``, ``PRIORITY_SCHEMA``, ``instant_schema``.
- A schema that depends on the day (a time window such as the one-year window of a
  ``scheduled_time``) cannot be fixed at import: put a ``$ref`` to
  ``#/components/schemas/<Name>`` in the route's ``openapi_extra`` and give the router an
  attribute ``dated_schemas = {"<Name>": builder}``, ``builder(now) -> dict``; the app
  rebuilds them each UTC day (see ``api.create_app``).

Patterns are ECMA-262 (``\\p{L}`` letters of any script) and are anchored with ``^...$``;
schemathesis and jsonschema read them that way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from .models import (
    ACCOUNT_ID_MAX_CHARS,
    CONTENT_MAX_CHARS,
    JOB_ID_PATTERN,
    MAX_RETRIES_LIMIT,
    SCHEDULE_WINDOW,
    JobPriority,
    ScheduledJob,
)

__all__ = [
    "ACCOUNT_ID_SCHEMA",
    "ERROR_DESCRIPTIONS",
    "JOB_ID_SCHEMA",
    "PRIORITY_SCHEMA",
    "CreatedJob",
    "DeletedJob",
    "ErrorBody",
    "Health",
    "Job",
    "JobList",
    "Liveness",
    "Readiness",
    "answer",
    "documented",
    "enum_schema",
    "error_responses",
    "instant_schema",
    "json_integer",
    "new_job_body_schema",
    "text_schema",
]


class ErrorBody(BaseModel):
    """Every error the API answers with, whatever raised it."""

    model_config = ConfigDict(extra="forbid", title="ErrorBody")

    error: str = Field(description="a machine-readable code, e.g. not_found, invalid_job, conflict")
    message: str = Field(description="one line a person can act on")
    field: str | SkipJsonSchema[None] = Field(
        default=None, description="the input at fault, when one is (a body key, a parameter, or body)"
    )


ERROR_DESCRIPTIONS: dict[int, str] = {
    401: "missing or wrong bearer token (the token is the file DATA_DIR/api_token)",
    404: "no such resource (or no such path)",
    409: "the resource's state forbids the change, or the id is taken by other fields",
    422: "a parameter or the body broke a rule: `field` names it",
    429: "a limit on how many the caller may hold is reached",
    500: "the data dir could not be read or written (storage_error), or the daemon failed",
    503: "the daemon is not ready (loading or stopping)",
    507: "the disk holding the data dir is full (disk_full); nothing was changed",
}
"""What each error status means, as the document says it."""

_UNAUTHORIZED_HEADERS = {
    "WWW-Authenticate": {"description": "always `Bearer`", "schema": {"type": "string"}, "required": True}
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting ``ErrorBody`` under each of ``statuses``.

    401 (any route with the token dependency) and 422 (any route with a parameter or a
    body) are added by the app to every route that can answer them; list the others.
    """
    entries: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entries[status] = {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[status]}
        if status == 401:
            entries[status]["headers"] = _UNAUTHORIZED_HEADERS
    return entries


def answer(model: type[BaseModel], description: str, **headers: str) -> dict[str, Any]:
    """A ``responses=`` entry for a success answered with ``model``'s shape; ``headers``:
    name -> description of a header that answer always carries."""
    entry: dict[str, Any] = {"model": model, "description": description}
    if headers:
        entry["headers"] = {
            name: {"description": text, "schema": {"type": "string"}, "required": True}
            for name, text in headers.items()
        }
    return entry


def documented(kind: Any, schema: dict[str, Any]) -> Any:
    """``kind`` as a parameter type documented by ``schema`` (FastAPI checks only ``kind``)."""
    return Annotated[kind, WithJsonSchema(schema)]


def json_integer(value: Any) -> Any:
    """``value``, a JSON number without a fraction (``3.0``, ``3e0``) read as the integer it is.

    JSON Schema's ``integer`` admits 3.0 (schemathesis sends it); Python's parser makes it a
    float, which a strict int field refuses. Call it on a body's integers, or put it before
    a strict field: ``Annotated[Count, BeforeValidator(json_integer)]``.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def enum_schema(values: Iterable[str], description: str) -> dict[str, Any]:
    """A string parameter taking one of ``values`` (an empty value is none of them)."""
    return {"type": "string", "enum": list(values), "description": description}


# -- the answers -----------------------------------------------------------------------------


class Job(ScheduledJob):
    """A job as the API answers with it (the stored record; other keys a schedule's job
    carries, such as ``schedule_id`` or ``payload``, may follow)."""

    model_config = ConfigDict(extra="allow", title="Job", json_schema_serialization_defaults_required=True)


def _warnings_optional(schema: dict[str, Any]) -> None:
    schema["required"] = [name for name in schema.get("required", []) if name != "warnings"]


class CreatedJob(Job):
    """The job a create made (201) or, repeated, the job the first create made (200)."""

    model_config = ConfigDict(title="CreatedJob", json_schema_extra=_warnings_optional)

    warnings: list[str] | SkipJsonSchema[None] = Field(
        default=None, description="present when the job will not run as asked (e.g. due more than 24 h ago)"
    )


class JobList(BaseModel):
    """``GET /api/v1/jobs``: the jobs matching the filters, highest priority first, then earliest."""

    jobs: list[Job]
    count: int = Field(ge=0)


class DeletedJob(BaseModel):
    """``DELETE /api/v1/jobs/{job_id}``: the id and the job as it was."""

    deleted: str
    job: Job


class Health(BaseModel):
    """``GET /health``: the loop's state, the storage's, and the jobs by status."""

    status: str = Field(description="ok, or degraded (not ready, or the storage cannot write)")
    state: str = Field(description="the scheduler's run state")
    storage: str = Field(description="ok, or `cannot write: <why>`")
    jobs: int = Field(ge=0)
    running: list[str] = Field(description="ids of the jobs running now")
    by_status: dict[str, int]


class Readiness(BaseModel):
    """``GET /ready``: 200 once the loop runs, 503 before and while stopping."""

    ready: bool
    state: str


class Liveness(BaseModel):
    """``GET /live``: the process answers."""

    status: str


# -- the rules of the stored text, as patterns -----------------------------------------------

_TRIMMED = "\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
"""What the record's text fields strip at both ends (Unicode White_Space, pydantic's strip)."""
_STRIPPED = _TRIMMED + "\\x1c-\\x1f"
"""What Python's ``str.strip()`` strips (``JobPriority.parse``, ``parse_instant``)."""
_CONTROL = "\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f"
"""The control characters no stored text may hold (``models._CONTROL``): C0 but tab and
newline, DEL, C1."""


def text_schema(max_chars: int | None = None, *, newlines: bool = True, description: str = "") -> dict[str, Any]:
    """A text field as the records check it: stripped at both ends, then 1..``max_chars``
    characters without control characters (``newlines``: tab, newline and CRLF allowed
    inside, as in ``content``; else none of them, as in a name)."""
    if max_chars is not None and max_chars < 2:
        raise ValueError("max_chars must be at least 2")
    edge = f"[^{_TRIMMED}{_CONTROL}]"
    inner = f"(?:\\r\\n|[^{_CONTROL}])" if newlines else f"[^\\t\\n{_CONTROL}]"
    middle = "*" if max_chars is None else f"{{0,{max_chars - 2}}}"
    pattern = f"^[{_TRIMMED}]*{edge}(?:{inner}{middle}{edge})?[{_TRIMMED}]*$"
    return {"type": "string", "pattern": pattern, "description": description}


ACCOUNT_ID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": f"^[{_TRIMMED}]*[\\p{{L}}\\p{{N}}_.@+-]{{1,{ACCOUNT_ID_MAX_CHARS}}}[{_TRIMMED}]*$",
    "description": f"whose job this is: 1-{ACCOUNT_ID_MAX_CHARS} letters (any script), digits, '.', '_', "
    "'-', '@' or '+' (stored in Unicode NFC)",
}
JOB_ID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": JOB_ID_PATTERN,
    "description": "1-64 letters, digits, '-' or '_', starting with a letter or digit",
}


def _any_case(word: str) -> str:
    # what JobPriority.parse reads as the name: str.upper() of it ("ı".upper() is "I")
    return "".join(f"[{c}{c.lower()}{'ı' if c == 'I' else ''}]" for c in word.upper())


PRIORITY_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": int(min(JobPriority)), "maximum": int(max(JobPriority))},
        {
            "type": "string",
            "pattern": f"^[{_STRIPPED}]*(?:0*[1-4]|{'|'.join(_any_case(p.name) for p in JobPriority)})[{_STRIPPED}]*$",
        },
    ],
    "description": "1 low, 2 normal, 3 high, 4 urgent: the number, or the name in any case; higher runs first",
}

_DAY_MARGIN = timedelta(days=3)
"""Days the documented window keeps off each end of the real one: an offset moves an
instant by up to a day, a naive time by the zone's offset, and the document is rebuilt
once a day."""


def instant_schema(now: datetime, window: timedelta = SCHEDULE_WINDOW, *, description: str = "") -> dict[str, Any]:
    """An ISO-8601 instant ``parse_instant`` reads and that lies within ``window`` of ``now``.

    ``YYYY-MM-DD``, optionally ``THH:MM[:SS[.ffffff]]`` and ``Z`` or ``+HH:MM``; without an
    offset the time is in the scheduler's zone. The pattern lists the calendar days safely
    inside the window on the day the document is built (the server accepts a few more at
    the edges, and ``now``).
    """
    first, last = (now - window + _DAY_MARGIN).date(), (now + window - _DAY_MARGIN).date()
    clock = "(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\\.[0-9]{1,6})?)?"
    offset = "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
    pattern = f"^[{_STRIPPED}]*(?:[Nn][Oo][Ww]|{_days_pattern(first, last)}(?:T{clock}{offset}?)?)[{_STRIPPED}]*$"
    return {"type": "string", "pattern": pattern, "description": description}


def _days_pattern(first: date, last: date) -> str:
    """A pattern matching each ``YYYY-MM-DD`` from ``first`` to ``last``, and no other."""
    years: dict[int, list[str]] = {}
    month = first.replace(day=1)
    while month <= last:
        following = (month + timedelta(days=32)).replace(day=1)
        low = max(first, month).day
        high = min(last, following - timedelta(days=1)).day
        years.setdefault(month.year, []).append(f"{month.month:02d}-(?:{_number_range(low, high)})")
        month = following
    return "(?:" + "|".join(f"{year}-(?:{'|'.join(months)})" for year, months in years.items()) + ")"


def _number_range(low: int, high: int) -> str:
    """Two-digit numbers ``low..high`` (1..31) as alternatives by tens digit."""
    parts = []
    for tens in range(low // 10, high // 10 + 1):
        a, b = max(low, tens * 10) % 10, min(high, tens * 10 + 9) % 10
        parts.append(f"{tens}{a}" if a == b else f"{tens}[{a}-{b}]")
    return "|".join(parts)


def new_job_body_schema(kinds: Iterable[str], now: datetime) -> dict[str, Any]:
    """The body of ``POST /api/v1/jobs`` (``NewJob``'s fields), as the API accepts it at ``now``."""
    return {
        "title": "NewJobBody",
        "type": "object",
        "additionalProperties": False,
        "required": ["account_id", "content"],
        "properties": {
            "account_id": ACCOUNT_ID_SCHEMA,
            "content": text_schema(
                CONTENT_MAX_CHARS, description=f"what to do: 1-{CONTENT_MAX_CHARS} characters after stripping"
            ),
            "kind": {
                "anyOf": [{"type": "string", "enum": sorted(kinds)}, {"type": "null"}],
                "description": "the handler that runs it; absent or null: the scheduler's default kind",
            },
            "scheduled_time": {
                "anyOf": [instant_schema(now), {"type": "null"}],
                "description": "when it becomes due, within 365 days of now; absent or null: now. A time more "
                "than 24 h ago is stored but will expire (the answer's `warnings` says so)",
            },
            "priority": PRIORITY_SCHEMA,
            "max_retries": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_RETRIES_LIMIT,
                "description": "failures allowed before the job is FAILED (default 3)",
            },
            "job_id": {
                "anyOf": [JOB_ID_SCHEMA, {"type": "null"}],
                "description": "the new job's id (sent again, the same create answers 200 with the job the first "
                "made); absent or null: from the Idempotency-Key header, else a new UUID",
            },
        },
    }
