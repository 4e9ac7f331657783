"""check-quota: how many videos today's quota allows (quota-checker.md, exactly).

``handler(event, context)`` returns::

    {"quota": 10, "used": 3, "remaining": 7, "quota_reached": false,
     "daily_quota": 10, "daily_count": 3}

``quota``/``daily_quota`` and ``used``/``daily_count`` are the same numbers under the two
names the seeds use. DAILY_QUOTA (default 10) is the context's setting
(``context.settings.daily_quota``); the daemon reads the settings at the start of each
video run, so a changed value takes effect without a restart.

Where the jobs come from: the scheduler's own view of them, never file names. The machine
hands every stage a context whose ``jobs(kind=...)`` is a snapshot of the Scheduler's
in-memory table (``context.RunContext``), so the count is right whatever
``SCHEDULER_TIMEZONE`` names the day files by. The ``quota`` command (or any caller outside
the machine) hands it ``view_of(settings)``, which asks the scheduler that owns the data
dir: ``scheduler_jobs`` reads the files under the data-dir lock, or asks the running
daemon's API when the daemon holds the lock (``services.scheduler.cli``'s backends, as
``list`` does). It writes nothing, and a data dir that does not exist has no jobs.

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
- Records missing their lifecycle ``status`` or their ``scheduled_time``, or with a bad
  time or an unknown stage, are skipped with a warning (quota-checker.md skips records
  without their status or time). A record stored without ``status`` loads in the
  scheduler as ``scheduled`` (the model's default) but is still skipped until a run gives
  it one; one stored without ``scheduled_time`` is refused by the scheduler's storage at
  load (with its own warning) and never reaches the count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.pipeline.settings import DEFAULT_DAILY_QUOTA, PipelineSettings, load_settings
from services.pipeline.stages.names import State
from services.scheduler.clock import local_date, utc_now
from services.scheduler.models import ScheduledJob
from services.scheduler.settings import Settings

__all__ = [
    "DEFAULT_DAILY_QUOTA",
    "JobsView",
    "QUOTA_STATUSES",
    "VIDEO_KIND",
    "VIETNAM_TZ",
    "count_for_day",
    "view_of",
    "handler",
    "pipeline_status",
    "quota_result",
    "scheduler_jobs",
    "vietnam_today",
]

logger = logging.getLogger(__name__)

VIETNAM_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
VIDEO_KIND = "pipeline.video"
QUOTA_STATUSES = frozenset({"pending", "fetching", "scripting", "tts", "rendering", "uploading", "completed"})
PIPELINE_STATUSES = QUOTA_STATUSES | {"failed"}
_ENDED_WITHOUT_VIDEO = frozenset({"failed", "cancelled", "expired"})

Record = Mapping[str, Any] | ScheduledJob
"""A job as a view hands it: the Scheduler's ``ScheduledJob`` or its stored JSON form."""


def vietnam_today(now: datetime | None = None) -> date:
    """Today's date in Vietnam (the quota's day)."""
    return local_date(now or utc_now(), VIETNAM_TZ)


def _fields(record: Record) -> dict[str, Any]:
    """The fields the count reads, from either form of a record (a missing one is None)."""
    if isinstance(record, ScheduledJob):
        extra = record.model_extra or {}
        return {
            "job_id": record.job_id,
            "kind": record.kind,
            # a status the stored record did not have is the model's default, not the record's
            "status": record.status.value if "status" in record.model_fields_set else None,
            "stage": extra.get("stage"),
            "scheduled_time": record.scheduled_time,
            "updated_at": record.updated_at.isoformat(),
        }
    return {
        "job_id": record.get("job_id"),
        "kind": record.get("kind"),
        "status": record.get("status"),
        "stage": record.get("stage"),
        "scheduled_time": record.get("scheduled_time"),
        "updated_at": str(record.get("updated_at") or ""),
    }


def pipeline_status(record: Record) -> str | None:
    """The record's pipeline status (see the module docstring); None if it is unknown."""
    return _status(_fields(record))


def _status(fields: dict[str, Any]) -> str | None:
    lifecycle, stage = fields["status"], fields["stage"]
    if lifecycle is None:
        return None
    if lifecycle in _ENDED_WITHOUT_VIDEO:
        return "failed"
    if stage is None:
        return "completed" if lifecycle == "completed" else "pending"
    return stage if stage in PIPELINE_STATUSES else None


def _due(value: Any) -> datetime:
    if value is None:
        raise ValueError("no scheduled_time")
    due = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if due.tzinfo is None:
        raise ValueError("no UTC offset")
    return due


def count_for_day(records: Iterable[Record], day: date, *, exclude: str | None = None) -> int:
    """How many video records use a quota slot on the Vietnam date ``day`` (``exclude``: one id)."""
    newest: dict[str, dict[str, Any]] = {}
    for record in records:  # the same job twice (a copy mid-move): its newest copy counts
        fields = _fields(record)
        if fields["kind"] != VIDEO_KIND:
            continue
        job_id = str(fields["job_id"])
        if job_id == exclude:
            continue
        held = newest.get(job_id)
        if held is None or fields["updated_at"] > held["updated_at"]:
            newest[job_id] = fields
    used = 0
    for job_id, fields in newest.items():
        try:
            due = _due(fields["scheduled_time"])
        except (TypeError, ValueError) as exc:
            logger.warning(
                "skipping job with a bad scheduled_time", extra={"job_id": job_id, "error": str(exc)}
            )
            continue
        if fields["status"] is None:
            logger.warning("skipping job with no status", extra={"job_id": job_id, "stage": fields["stage"]})
            continue
        status = _status(fields)
        if status is None:
            logger.warning(
                "skipping job with an unknown status",
                extra={"job_id": job_id, "stage": fields["stage"], "status": fields["status"]},
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


def scheduler_jobs(settings: Settings, kind: str | None = VIDEO_KIND) -> list[ScheduledJob]:
    """The jobs (of ``kind``; None: all) as the scheduler owning ``settings.data_dir`` has them.

    Its files, read under the data-dir lock like ``list`` (no recovery, nothing saved), or
    the running daemon's API when the daemon holds the lock. A data dir that does not
    exist has no jobs (and is not created).
    """
    if not settings.data_dir.is_dir():
        return []
    from services.scheduler.cli import read_jobs  # the CLI's own choice of backend

    jobs = read_jobs(settings)
    return [job for job in jobs if kind is None or job.kind == kind]


class JobsView:
    """The settings, clock and jobs of a StageContext over jobs read once (``quota``'s).

    :param settings: the pipeline settings (their ``daily_quota``); default: the embedded
        defaults (DAILY_QUOTA 10), not the environment.
    """

    def __init__(
        self,
        jobs: Iterable[Record],
        clock: Callable[[], datetime] = utc_now,
        settings: PipelineSettings | None = None,
    ) -> None:
        self._jobs = list(jobs)
        self._clock = clock
        self.settings = settings if settings is not None else PipelineSettings.from_values({})

    def now(self) -> datetime:
        return self._clock()

    def jobs(self, kind: str | None = None) -> list[Record]:
        return [job for job in self._jobs if kind is None or _fields(job)["kind"] == kind]


def view_of(settings: Settings, pipeline: PipelineSettings | None = None) -> JobsView:
    """The jobs of the scheduler owning ``settings.data_dir`` (``scheduler_jobs``) as a context.

    ``pipeline``: the pipeline settings (DAILY_QUOTA); default ``load_settings()``.
    """
    return JobsView(scheduler_jobs(settings), settings=pipeline if pipeline is not None else load_settings())


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """check-quota: ``{}`` in, the quota JSON out.

    ``context.jobs(kind=...)`` is the scheduler's view of the jobs, ``context.settings``
    holds DAILY_QUOTA, ``context.now()`` says which Vietnam day it is (see the module
    docstring). ``{"exclude_job_id": id}`` leaves that job out of the count: a single video
    checking whether there is room for itself.
    """
    quota = context.settings.daily_quota
    today = vietnam_today(context.now())
    used = count_for_day(context.jobs(kind=VIDEO_KIND), today, exclude=event.get("exclude_job_id"))
    result = quota_result(quota, used)
    logger.info("quota check complete", extra={"stage": State.CHECK_QUOTA, "date": today.isoformat(), **result})
    return result
