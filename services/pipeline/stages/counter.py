"""increment-counter: the daily video counter in ``DATA_DIR/counters.json``.

The file is ``{"YYYY-MM-DD": {"count": 4, "updated_at": "<UTC ISO-8601>"}, ...}``, one
entry per Vietnam day, pretty-printed. An increment is an atomic read-modify-write: it
holds an exclusive flock on ``counters.json.lock`` while it reads the file, adds one and
replaces the file (temp file, fsync, os.replace, fsync of the folder), so two processes
incrementing at once both count. This replaces the seed's DynamoDB ``ADD #count :inc``.

``handler({"job_id": ...}, context)`` returns ``{"daily_count": 4, "date": "2026-02-07",
"job_id": ...}`` as stage-functions.md specifies.
"""

from __future__ import annotations

import fcntl
import json
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any

from services.pipeline.stages.quota import vietnam_today
from services.scheduler.atomic_file import write_atomic

__all__ = ["COUNTERS_FILE", "handler", "increment", "read_count"]

logger = logging.getLogger(__name__)

COUNTERS_FILE = "counters.json"


def read_count(data_dir: Path, day: date) -> int:
    """The counter of ``day`` (0 if none)."""
    entry = _read(data_dir / COUNTERS_FILE).get(day.isoformat())
    return int(entry["count"]) if isinstance(entry, dict) and "count" in entry else 0


def increment(data_dir: Path, day: date, now: datetime) -> int:
    """Add one to ``day``'s counter atomically; return the new count."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / COUNTERS_FILE
    with open(data_dir / f"{COUNTERS_FILE}.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        counters = _read(path)
        entry = counters.get(day.isoformat())
        count = (int(entry.get("count", 0)) if isinstance(entry, dict) else 0) + 1
        counters[day.isoformat()] = {"count": count, "updated_at": now.isoformat()}
        write_atomic(path, (json.dumps(dict(sorted(counters.items())), indent=2) + "\n").encode())
    return count


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


def _read(path: Path) -> dict[str, Any]:
    try:
        content = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); fix or remove it") from None
    if not isinstance(content, dict):
        raise ValueError(f"{path} must hold a JSON object of dates")
    return content
