"""The ``pipeline.daily`` kind: the day's run, in place of the seed's EventBridge rule.

One run walks the machine's quota loop (CheckQuota → FetchManga → … → CheckMoreVideos →
FetchManga …) until the day's quota is met, no chapter is left, or YouTube's quota is
spent. Each video it starts is recorded as its own job (kind ``pipeline.video``, the id
FetchManga gave it), parked in lifecycle status ``pending`` (the loop never runs a pending
job itself) while the daily run advances its ``stage``, and ended ``completed`` or
``failed`` with the video. So the day files and the quota see every video.

The daily job keeps its own checkpoint (``pipeline``) and resumes after a restart. The
runs come from a cron schedule (``daily_schedule_spec``, made by the ``daily`` command);
a daily job left by an older version, which re-added itself each day, makes that
schedule when it ends instead.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, time, timedelta
from typing import Any

from services.pipeline.engine.context import RunContext
from services.pipeline.engine.definition import Definition
from services.pipeline.engine.machine import Checkpoint, Machine
from services.pipeline.jobs.run_alerts import RunAlerts
from services.pipeline.jobs.run_document import PipelineRun
from services.pipeline.jobs.video_job import next_youtube_reset, stage_of
from services.pipeline.jobs.video_records import video_outcome
from services.pipeline.settings import PipelineSettings, load_settings
from services.pipeline.stages import embedded_stages, pipeline_definition
from services.pipeline.stages.quota import VIDEO_KIND, VIETNAM_TZ
from services.pipeline.stages.worker_stages import sweep_at_start
from services.scheduler.errors import SchedulerError
from services.scheduler.models import JobStatus, ScheduledJob, normalize_text
from services.scheduler.scheduler import Scheduler

__all__ = ["DAILY_KIND", "DailyJobs", "daily_job_id", "daily_schedule_spec", "next_daily_time"]

logger = logging.getLogger(__name__)

DAILY_KIND = "pipeline.daily"
DAILY_MAX_RUNNING_MINUTES = 24 * 60


DAILY_NAMESPACE = uuid.UUID("0f5d3c1e-8a2b-4c6d-9e7f-1a2b3c4d5e6f")


def daily_job_id(account_id: str, when: datetime) -> str:
    """The id of ``account_id``'s daily run on the Vietnam day of ``when``.

    The same for every way the run is added (the ``daily`` command, the run that adds
    tomorrow's), so a day never gets two runs: a second add is a repeat of the first.
    """
    day = when.astimezone(VIETNAM_TZ).date().isoformat()
    return str(uuid.uuid5(DAILY_NAMESPACE, f"{DAILY_KIND}/{normalize_text(account_id)}/{day}"))


DAILY_SCHEDULE_PREFIX = "daily-"


def daily_schedule_spec(account_id: str, at: time) -> dict[str, Any]:
    """The daily run of ``account_id`` as a schedule: a cron at ``at`` Vietnam time.

    ``config/schedules.example`` holds this for the account ``default`` at 08:00 (a test
    keeps the two equal); ``daily`` creates or updates it. One run at a time
    (``max_instances`` 1), and after downtime only the latest missed day runs.
    """
    return {
        "name": f"{DAILY_SCHEDULE_PREFIX}{account_id}",
        "description": f"the day's videos for {account_id}: the quota loop at {at:%H:%M} Vietnam time",
        "schedule_type": "cron",
        "cron_expression": f"{at.minute} {at.hour} * * *",
        "timezone": "Asia/Ho_Chi_Minh",
        "target_command": DAILY_KIND,
        "command_payload": {},
        "account_id": account_id,
        "tags": ["pipeline", "daily"],
        "priority": 5,
        "max_retries": 3,
        "coalesce": "latest",
        "max_instances": 1,
    }


def next_daily_time(at: time, now: datetime) -> datetime:
    """The next ``at`` (Vietnam wall time) strictly after ``now``, as aware UTC."""
    local = now.astimezone(VIETNAM_TZ)
    candidate = datetime.combine(local.date(), at, tzinfo=VIETNAM_TZ)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=VIETNAM_TZ)
    return candidate.astimezone(now.tzinfo)


class DailyJobs:
    """Runs ``pipeline.daily`` jobs for a Scheduler (installed by the pipeline extension)."""

    def __init__(
        self,
        scheduler: Scheduler,
        definition: Definition | None = None,
        stages: Mapping[str, Callable[..., Any]] | None = None,
        settings: Callable[[], PipelineSettings] = load_settings,
    ) -> None:
        self.scheduler = scheduler
        self.definition = definition or pipeline_definition()
        self.stages = stages  # None: the configured backends (embedded_stages)
        self.load_settings = settings  # read at the start of each run, as VideoJobs does

    def install(self) -> None:
        """Register the kind (resumable: it checkpoints)."""
        self.scheduler.registry.register(
            DAILY_KIND, self.run, max_running_minutes=DAILY_MAX_RUNNING_MINUTES, resumable=True
        )

    async def run(self, job: ScheduledJob) -> dict[str, Any]:
        """The handler of one daily run."""
        saved = (job.model_extra or {}).get("pipeline")
        start = Checkpoint(state=self.definition.start_at, manga="next", loop=True, account_id=job.account_id)
        checkpoint = Checkpoint.model_validate(saved) if isinstance(saved, dict) else start
        alerts = RunAlerts(self.scheduler.notifier, job.job_id)

        async def save(cp: Checkpoint) -> None:
            await self.scheduler.update_fields(job.job_id, {"pipeline": cp.model_dump(mode="json")})
            await self._track_video(cp)
            alerts.saw(cp)

        async def on_video(output: dict[str, Any], cp: Checkpoint) -> None:
            await self._record_video(job, output)

        context = RunContext(self.scheduler, self.load_settings, asyncio.get_running_loop())
        await asyncio.to_thread(sweep_at_start, context)  # Spot workers nobody owns since a restart
        machine = Machine(
            self.definition,
            self.stages if self.stages is not None else embedded_stages(self.definition),
            save=save,
            clock=self.scheduler.clock,
            context=context,
            hooks=PipelineRun(on_video=on_video),
        )
        try:
            done = await machine.run(checkpoint)
        finally:  # a failed or interrupted run still leaves tomorrow's in place
            await self._schedule_next(job)
        published = sum(1 for v in done.videos if v["outcome"] == "published")
        return {
            "ended": done.state,
            "published": published,
            "failed": len(done.videos) - published,
            "videos": done.videos,
        }

    async def _record_video(self, daily: ScheduledJob, fetched: dict[str, Any]) -> None:
        """FetchManga started a video: record it as its own (pending) job."""
        job_id = str(fetched["job_id"])
        if self.scheduler.find_job(job_id) is not None:  # a resumed run fetched it already
            return
        now = self.scheduler.clock()
        video = ScheduledJob(
            job_id=job_id,
            account_id=daily.account_id,
            content=str(fetched.get("manga_title") or "next")[:500],
            kind=VIDEO_KIND,
            scheduled_time=now,
            status=JobStatus.PENDING,
            created_at=now,
            updated_at=now,
            stage="fetching",
            daily_job_id=daily.job_id,
        )
        await self.scheduler.store_job(video)

    async def _track_video(self, cp: Checkpoint) -> None:
        """Mirror the loop's progress on the current video's job."""
        job_id = cp.video_job_id
        video = self.scheduler.find_job(job_id) if job_id is not None else None
        if video is None:
            return
        if video.status is not JobStatus.PENDING:
            return
        stage = stage_of(cp)
        now = self.scheduler.clock()
        ended = video_outcome(video, cp, now, next_youtube_reset(now))
        if ended is not None:
            await self.scheduler.store_job(ended)
        elif (video.model_extra or {}).get("stage") != stage:
            await self.scheduler.update_fields(video.job_id, {"stage": stage})

    async def _schedule_next(self, daily: ScheduledJob) -> None:
        """After a run that no schedule made (a daily job added by an older version, which
        re-added itself each day): make its account's daily schedule at the same Vietnam
        time, so the days go on as before. A run a schedule made needs nothing: the
        schedule fires tomorrow."""
        if (daily.model_extra or {}).get("schedule_id"):
            return
        at = daily.scheduled_time.astimezone(VIETNAM_TZ).time().replace(second=0, microsecond=0)
        try:
            await self.scheduler.schedules.upsert(daily_schedule_spec(daily.account_id, at), created_by="pipeline")
        except SchedulerError as exc:
            logger.error("could not make the daily schedule", extra={"job_id": daily.job_id, "error": exc.message})
