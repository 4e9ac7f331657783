"""The daily file's format: its name, its schema, how its entries are encoded and joined.

``jobs_YYYY-MM-DD.json`` holds ``{"version": 1, "date": ..., "jobs": {<id>: {...}}}``,
pretty-printed, one job's entry per block (``encode_entry``). ``JobStorage`` keeps the
entries and joins them with ``document``; ``join_entries`` (also used for
``schedules.json``) makes the file in one join over the megabytes, the head and tail
riding on the first and last entries. ``in_utc_outside`` is the one pass a load makes
over a file's jobs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict

from .models import ScheduledJob

__all__ = [
    "FILE_PREFIX",
    "FILE_SUFFIX",
    "FORMAT_VERSION",
    "DayFile",
    "day_from_name",
    "document",
    "encode_entry",
    "encode_record",
    "file_order",
    "in_utc_outside",
    "join_entries",
]

FORMAT_VERSION = 1
FILE_PREFIX = "jobs_"
FILE_SUFFIX = ".json"


class DayFile(BaseModel):
    """The whole-file schema, used to validate a good file in one pass of pydantic-core."""

    model_config = ConfigDict(extra="allow")

    version: int
    date: str
    jobs: dict[str, ScheduledJob]


def day_from_name(name: str) -> date | None:
    """The day a file's name gives (``jobs_2026-11-23.json``), or None for another name."""
    stem = name[len(FILE_PREFIX) : -len(FILE_SUFFIX)]
    try:
        return date.fromisoformat(stem)
    except ValueError:
        return None


def file_order(job: ScheduledJob) -> tuple[datetime, str]:
    """Where a job goes in its day's file: by scheduled time, then id."""
    return (job.scheduled_time, job.job_id)


def encode_entry(job: ScheduledJob) -> bytes:
    """A job's block in its day file (indented as the file's ``jobs`` object holds it)."""
    body = job.model_dump_json(indent=2).encode("utf-8").replace(b"\n", b"\n    ")
    return b"".join((b"    ", _json_key(job.job_id), b": ", body))


def encode_record(key: str, record: Any) -> bytes:
    """A record kept verbatim (one that failed validation), formatted like the others."""
    body = json.dumps(record, ensure_ascii=False, indent=2).encode("utf-8").replace(b"\n", b"\n    ")
    return b"".join((b"    ", _json_key(key), b": ", body))


def document(day: date, entries: list[bytes]) -> bytes:
    """The day file holding ``entries`` (at least one), in their order."""
    head = f'{{\n  "version": {FORMAT_VERSION},\n  "date": "{day.isoformat()}",\n  "jobs": {{\n'.encode()
    return join_entries(head, entries, b"\n  }\n}\n")


def join_entries(head: bytes, entries: list[bytes], tail: bytes) -> bytes:
    """``head``, the entries separated by ``,\\n``, ``tail``: one join over the megabytes
    (a day of thousands of jobs, 10,000 schedules), not a second copy of the whole."""
    parts = entries[:]  # the caller's list (a day's kept entries) is not ours to change
    parts[0] = head + parts[0]
    parts[-1] = parts[-1] + tail
    return b",\n".join(parts)


def in_utc_outside(
    jobs: Iterable[ScheduledJob], day_range: tuple[datetime, datetime] | None
) -> list[ScheduledJob]:
    """Put each job's instants in UTC (``models.in_utc``, inlined: a cold start runs this
    for every stored job); return those whose day instant is outside ``day_range``, or all
    of them when the range is None (a zone whose midnight cannot be pinned down)."""
    utc = timezone.utc
    outside = []
    low, high = day_range if day_range is not None else (None, None)
    for job in jobs:
        values = job.__dict__
        values["scheduled_time"] = scheduled = values["scheduled_time"].astimezone(utc)
        values["created_at"] = values["created_at"].astimezone(utc)
        values["updated_at"] = values["updated_at"].astimezone(utc)
        started = values["started_at"]
        if started is not None:
            values["started_at"] = started.astimezone(utc)
        completed = values["completed_at"]
        if completed is not None:
            values["completed_at"] = completed = completed.astimezone(utc)
        instant = completed or scheduled
        if low is None or not low <= instant < high:
            outside.append(job)
    return outside


def _json_key(key: str) -> bytes:
    return json.dumps(key, ensure_ascii=False).encode("utf-8")
