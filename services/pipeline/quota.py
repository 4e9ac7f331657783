"""check-quota: how many videos today's quota allows (quota-checker.md, exactly).

``handler(event, context)`` returns::

    {"quota": 10, "used": 3, "remaining": 7, "quota_reached": false,
     "daily_quota": 10, "daily_count": 3}

``quota``/``daily_quota`` and ``used``/``daily_count`` are the same numbers under the two
names the seeds use. DAILY_QUOTA (default 10) and DATA_DIR (default ./data) are read at
each call, so a changed environment takes effect without a restart.

Which jobs count, and on which day:

- video jobs (kind ``pipeline.video``) whose pipeline status is one of QUOTA_STATUSES:
  pending, fetching, scripting, tts, rendering, uploading, completed. ``failed`` does not
  count: a failed video frees its slot.
- A job's pipeline status is its ``stage`` field. A job the scheduler ended without a
  video (lifecycle status failed, cancelled or expired) counts as failed whatever its
  stage says; one with no stage yet counts as pending (or completed, if completed).
- The day is the Vietnam date (Asia/Ho_Chi_Minh) of the job's ``scheduled_time``. The
  seed counted jobs *created* today, because there a job was created when its run began;
  here a job can be added days ahead, so it counts on the day it is due.
- Records with a bad ``scheduled_time`` or an unknown status are skipped with a warning.

Files read: a job due on day D is in ``jobs_D.json`` until it finishes, then in the file
of its completion day. A job runs at most 24 h after it is due (then it expires) and a run
is bounded by its kind's limit, so it finishes by D+2: the handler reads D, D+1 and D+2.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from services.scheduler.clock import local_date, utc_now

__all__ = [
    "DEFAULT_DAILY_QUOTA",
    "QUOTA_STATUSES",
    "VIDEO_KIND",
    "VIETNAM_TZ",
    "count_for_day",
    "daily_quota_from_env",
    "handler",
    "pipeline_status",
    "quota_result",
    "vietnam_today",
]

logger = logging.getLogger(__name__)

VIETNAM_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DEFAULT_DAILY_QUOTA = 10
VIDEO_KIND = "pipeline.video"
QUOTA_STATUSES = frozenset({"pending", "fetching", "scripting", "tts", "rendering", "uploading", "completed"})
PIPELINE_STATUSES = QUOTA_STATUSES | {"failed"}
_ENDED_WITHOUT_VIDEO = frozenset({"failed", "cancelled", "expired"})
_FILES_AFTER_DUE_DAY = 2


def vietnam_today(now: datetime | None = None) -> date:
    """Today's date in Vietnam (the quota's day)."""
    return local_date(now or utc_now(), VIETNAM_TZ)


def daily_quota_from_env(environ: Mapping[str, str] | None = None) -> int:
    """DAILY_QUOTA as an int >= 0 (default 10); ValueError naming the bad value."""
    env = os.environ if environ is None else environ
    raw = env.get("DAILY_QUOTA", "").strip()
    if not raw:
        return DEFAULT_DAILY_QUOTA
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"DAILY_QUOTA must be a whole number >= 0, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"DAILY_QUOTA must be a whole number >= 0, got {raw!r}")
    return value


def pipeline_status(record: Mapping[str, Any]) -> str | None:
    """The record's pipeline status (see the module docstring); None if it is unknown."""
    lifecycle = record.get("status")
    if lifecycle in _ENDED_WITHOUT_VIDEO:
        return "failed"
    stage = record.get("stage")
    if stage is None:
        return "completed" if lifecycle == "completed" else "pending"
    return stage if stage in PIPELINE_STATUSES else None


def count_for_day(records: Iterable[Mapping[str, Any]], day: date, *, exclude: str | None = None) -> int:
    """How many video records use a quota slot on the Vietnam date ``day`` (``exclude``: one id)."""
    newest: dict[str, Mapping[str, Any]] = {}
    for record in records:  # a job caught in two files mid-move: its newest copy counts
        if record.get("kind") != VIDEO_KIND:
            continue
        job_id = str(record.get("job_id"))
        if job_id == exclude:
            continue
        held = newest.get(job_id)
        if held is None or str(record.get("updated_at", "")) > str(held.get("updated_at", "")):
            newest[job_id] = record
    used = 0
    for job_id, record in newest.items():
        try:
            due = datetime.fromisoformat(str(record["scheduled_time"]))
            if due.tzinfo is None:
                raise ValueError("no UTC offset")
        except (KeyError, ValueError) as exc:
            logger.warning(
                "skipping job with a bad scheduled_time", extra={"job_id": job_id, "error": str(exc)}
            )
            continue
        status = pipeline_status(record)
        if status is None:
            logger.warning(
                "skipping job with an unknown status",
                extra={"job_id": job_id, "stage": record.get("stage"), "status": record.get("status")},
            )
            continue
        if local_date(due, VIETNAM_TZ) == day and status in QUOTA_STATUSES:
            used += 1
    return used


def quota_result(quota: int, used: int) -> dict[str, Any]:
    """The seed's output JSON for ``used`` of ``quota``."""
    return {
        "quota": quota,
        "used": used,
        "remaining": max(0, quota - used),
        "quota_reached": used >= quota,
        "daily_quota": quota,
        "daily_count": used,
    }


def read_records(data_dir: Path, day: date) -> list[dict[str, Any]]:
    """The raw job records of the files that can hold jobs due on ``day``."""
    records: list[dict[str, Any]] = []
    for offset in range(_FILES_AFTER_DUE_DAY + 1):
        path = data_dir / "jobs" / f"jobs_{(day + timedelta(days=offset)).isoformat()}.json"
        try:
            content = json.loads(path.read_bytes())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            logger.warning("skipping unreadable job file", extra={"file": path.name, "error": str(exc)})
            continue
        jobs = content.get("jobs") if isinstance(content, dict) else None
        if isinstance(jobs, dict):
            records.extend({"job_id": key, **rec} for key, rec in jobs.items() if isinstance(rec, dict))
    return records


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """check-quota: ``{}`` in, the quota JSON out (reads DAILY_QUOTA and DATA_DIR now).

    ``{"exclude_job_id": id}`` leaves that job out of the count: a single video checking
    whether there is room for itself.
    """
    quota = daily_quota_from_env()
    data_dir = Path(os.environ.get("DATA_DIR") or "./data")
    now = getattr(context, "now", None)
    today = vietnam_today(now() if callable(now) else None)
    used = count_for_day(read_records(data_dir, today), today, exclude=event.get("exclude_job_id"))
    result = quota_result(quota, used)
    logger.info("quota check complete", extra={"stage": "CheckQuota", "date": today.isoformat(), **result})
    return result
