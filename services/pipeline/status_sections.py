"""The pipeline's sections of the status page: today's quota and the last published videos.

The scheduler's status page (``services/scheduler/status_page.py``) knows nothing of
videos; it shows what ``scheduler.status_sections`` hands it. ``PipelineStatus.install``
adds two sections there:

- ``quota``: the check-quota stage's numbers for the Vietnam day (``stages/quota.py``:
  ``count_for_day`` over the scheduler's own table, ``quota_result``, DAILY_QUOTA read
  from the settings at each call, so a changed value shows without a restart)::

      {"day": "2026-11-23", "timezone": "Asia/Ho_Chi_Minh", "quota": 10, "used": 3,
       "remaining": 7, "quota_reached": false, ...}

- ``published``: the last ``PUBLISHED_SHOWN`` video jobs that ended published (kind
  ``pipeline.video``, completed, ``result.status == "published"``), newest first, with
  the URL the upload recorded (``result.youtube_url``: a YouTube watch URL, or the
  local publisher's ``file://``)::

      {"videos": [{"job_id", "title", "url", "published_at", "account_id"}, ...], "total": n}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from services.pipeline.settings import PipelineSettings, load_settings
from services.pipeline.stages.quota import VIDEO_KIND, VIETNAM_TZ, count_for_day, quota_result, vietnam_today
from services.scheduler.models import JobStatus, ScheduledJob
from services.scheduler.scheduler import Scheduler

__all__ = ["PUBLISHED_SHOWN", "PipelineStatus", "published_videos"]

PUBLISHED_SHOWN = 10


def published_videos(jobs: Iterable[ScheduledJob], *, limit: int = PUBLISHED_SHOWN) -> dict[str, Any]:
    """The last ``limit`` published videos among ``jobs``, newest first, and how many there are (pure)."""
    done = [
        job for job in jobs
        if job.kind == VIDEO_KIND and job.status is JobStatus.COMPLETED
        and isinstance(job.result, dict) and job.result.get("status") == "published"
    ]
    done.sort(key=lambda job: (job.completed_at or job.updated_at, job.job_id), reverse=True)
    videos = [
        {
            "job_id": job.job_id,
            "title": str(job.result.get("manga_title") or job.content),
            "url": job.result.get("youtube_url"),
            "published_at": (job.completed_at or job.updated_at).astimezone(VIETNAM_TZ).isoformat(),
            "account_id": job.account_id,
        }
        for job in done[:limit]
    ]
    return {"videos": videos, "total": len(done)}


class PipelineStatus:
    """The ``quota`` and ``published`` sections of a scheduler's status page.

    :param scheduler: whose jobs are counted (``jobs_snapshot``) and whose clock says the day.
    :param settings: reads the pipeline settings (DAILY_QUOTA) at each call (default
        ``load_settings``).
    """

    def __init__(self, scheduler: Scheduler, settings: Callable[[], PipelineSettings] = load_settings) -> None:
        self.scheduler = scheduler
        self.load_settings = settings

    def install(self) -> None:
        """Add the two sections to ``scheduler.status_sections``."""
        self.scheduler.status_sections["quota"] = self.quota
        self.scheduler.status_sections["published"] = self.published

    def quota(self) -> dict[str, Any]:
        """Today's quota (Vietnam day), as the check-quota stage counts it."""
        daily_quota = self.load_settings().daily_quota
        today = vietnam_today(self.scheduler.clock())
        used = count_for_day(self.scheduler.jobs_snapshot(kind=VIDEO_KIND), today)
        return {"day": today.isoformat(), "timezone": VIETNAM_TZ.key, **quota_result(daily_quota, used)}

    def published(self) -> dict[str, Any]:
        """The last published videos with their links."""
        return published_videos(self.scheduler.jobs_snapshot(kind=VIDEO_KIND))
