"""increment-counter: the daily video counter in ``DATA_DIR/counters.json``.

The file is one entry per Vietnam day, pretty-printed, the days in order after the format
version::

    {"version": 1, "2026-02-07": {"count": 4, "updated_at": "<UTC ISO-8601>"}, ...}

Why the dates stay at the top level beside ``"version"`` (and not under a ``"days"`` key):
the file from before versions, ``{"YYYY-MM-DD": {"count", "updated_at"}}``, is then a
version-1 file as it stands, so an upgrade reads it with no second shape and no
migration, and a daemon rolled back to the release before reads the new file too (it
looks a day up by its key and keeps the extra one). A date is never ``"version"``.
``json_records`` reads a missing ``"version"`` as 1 and refuses a version it does not know.

An increment is an atomic read-modify-write (``json_records.update_json``): an exclusive
flock on ``counters.json.lock`` while it reads the file, adds one and replaces the file
(temp file, fsync, os.replace, fsync of the folder), so two processes incrementing at once
both count. This replaces the seed's DynamoDB ``ADD #count :inc``.

``handler({"job_id": ...}, context)`` returns ``{"daily_count": 4, "date": "2026-02-07",
"job_id": ...}`` as stage-functions.md specifies.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any

from services.pipeline.json_records import read_json, update_json
from services.pipeline.stages.quota import vietnam_today

__all__ = ["COUNTERS_FILE", "COUNTERS_VERSION", "handler", "increment", "read_count", "read_counters"]

logger = logging.getLogger(__name__)

COUNTERS_FILE = "counters.json"
COUNTERS_VERSION = 1


def read_counters(data_dir: Path) -> dict[str, dict[str, Any]]:
    """Every day's entry, ``{"YYYY-MM-DD": {"count", "updated_at"}}``, from a version-1 or unversioned file."""
    return read_json(data_dir / COUNTERS_FILE, version=COUNTERS_VERSION)


def read_count(data_dir: Path, day: date) -> int:
    """The counter of ``day`` (0 if none)."""
    return _count(read_counters(data_dir).get(day.isoformat()))


def increment(data_dir: Path, day: date, now: datetime) -> int:
    """Add one to ``day``'s counter atomically; return the new count."""

    def add_one(counters: dict[str, Any]) -> int:
        count = _count(counters.get(day.isoformat())) + 1
        counters[day.isoformat()] = {"count": count, "updated_at": now.isoformat()}
        return count

    return update_json(data_dir / COUNTERS_FILE, add_one, version=COUNTERS_VERSION, sort_keys=True)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """increment-counter: ``{"job_id"}`` in, ``{"daily_count", "date", "job_id"}`` out."""
    job_id = event.get("job_id")
    now = context.now()
    day = vietnam_today(now)
    count = increment(context.data_dir, day, now)
    logger.info(
        "daily counter incremented",
        extra={"job_id": job_id, "stage": "IncrementCounter", "date": day.isoformat(), "daily_count": count},
    )
    return {"daily_count": count, "date": day.isoformat(), "job_id": job_id}


def _count(entry: Any) -> int:
    return int(entry.get("count", 0)) if isinstance(entry, dict) else 0
