"""The ``pipeline.video`` kind: one scheduled job becomes one narrated video.

The job's ``content`` names the manga (``next``, a title or a source id). Its run walks
the machine once (no loop) with the job's own id as the video's id, and after every state
saves the checkpoint on the job record::

    "stage": "rendering",                  the pipeline status quota.py counts
    "pipeline": {<Checkpoint JSON>}        state, outputs of finished states, retries

so a daemon killed mid-run resumes at the first unfinished state. How a run ends:

- Done: the job completes with ``{"status": "published", "youtube_url", "manga_title"}``;
- the day is already at quota (CheckQuota): the job moves to 08:00 of the next Vietnam day,
  not failed (``Reschedule``), its checkpoint reset;
- a stage failed for good (HandleError ran): the job fails without a scheduler retry —
  the machine already spent the state's own retries (``PermanentFailure``);
- NoMangaAvailable from the local folder (the default source): the job fails for good,
  without a scheduler retry, and its error says where chapters go (``PermanentFailure``;
  see ``no_manga_hint``): nothing appears in that folder unless someone adds it, so
  retrying in 2, 4, 8 minutes would only fail three more times;
- NoMangaAvailable from MangaDex: "no new chapter today" is normal there and one may be
  published later, so the job moves to 08:00 of the next Vietnam day (``Reschedule``, no
  retry spent, checkpoint reset) and looks again, for as many mornings as the job has
  retries (``max_retries``, counted in ``mornings_without_chapter``); then it fails for
  good with the hint;
- YouTube's quota is spent (QuotaReached after the upload): the job moves to just after
  the next midnight Pacific Time, when YouTube resets it, keeping its checkpoint, so the
  upload resumes without rendering again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from services.pipeline.engine.context import RunContext
from services.pipeline.engine.definition import Definition
from services.pipeline.engine.machine import Checkpoint, Machine, StageFunc
from services.pipeline.jobs.run_alerts import RunAlerts
from services.pipeline.jobs.run_document import PipelineRun
from services.pipeline.providers import registry
from services.pipeline.settings import PipelineSettings, load_settings
from services.pipeline.stages import embedded_stages, pipeline_definition
from services.pipeline.stages.names import State
from services.pipeline.stages.quota import VIDEO_KIND, VIETNAM_TZ
from services.pipeline.stages.worker_stages import sweep_at_start
from services.scheduler.handlers import PermanentFailure, Reschedule
from services.scheduler.models import ScheduledJob
from services.scheduler.scheduler import Scheduler
from services.scheduler.settings import SettingsError

__all__ = [
    "DAILY_START",
    "PACIFIC_TZ",
    "VideoJobs",
    "next_vietnam_morning",
    "next_youtube_reset",
    "no_manga_hint",
    "stage_of",
]

PACIFIC_TZ = ZoneInfo("America/Los_Angeles")
DAILY_START = time(8, 0)  # a video moved to the next day runs at 08:00 Vietnam time
VIDEO_MAX_RUNNING_MINUTES = 24 * 60  # the render alone may take 4 h (WaitForRender)

_STAGE_OF_STATE = {
    State.CHECK_QUOTA: "pending",
    State.QUOTA_CHOICE: "pending",
    State.FETCH_MANGA: "fetching",
    State.FETCH_CHOICE: "fetching",
    State.GENERATE_SCRIPT: "scripting",
    State.GENERATE_TTS: "tts",
    State.START_RENDERER: "rendering",
    State.WAIT_FOR_RENDER: "rendering",
    State.CHECK_VIDEO: "rendering",
    State.START_UPLOADER: "uploading",
    State.WAIT_FOR_UPLOAD: "uploading",
    State.CLEANUP: "completed",
    State.INCREMENT_COUNTER: "completed",
    State.CHECK_MORE_VIDEOS: "completed",
    State.DONE: "completed",
    State.HANDLE_ERROR: "failed",
}


def stage_of(cp: Checkpoint) -> str:
    """The pipeline status of a video at checkpoint ``cp`` (quota-checker.md's names)."""
    if cp.error is not None and State.HANDLE_ERROR in cp.outputs:
        return "failed"
    if cp.state == State.QUOTA_REACHED:
        return "uploading" if State.WAIT_FOR_RENDER in cp.outputs else "pending"
    if cp.state == State.NO_MANGA_AVAILABLE:
        return "failed"
    return _STAGE_OF_STATE.get(cp.state, "pending")


def no_manga_hint(content: str, samples_dir: Path) -> str:
    """The one-line error of a video that found no chapter to take, naming where chapters go."""
    return (
        f"no manga available for {content!r}: no chapter left to take in {samples_dir}; add chapters "
        "as SAMPLES_DIR/<manga>/chapter-0001/panel-*.png (SAMPLES_DIR defaults to DATA_DIR/samples), "
        "or set FETCH_SOURCE=mangadex with MANGA_IDS"
    )


def _new_chapters_appear(context: RunContext, account_id: str) -> bool:
    """Whether the account's fetch source gets new chapters by itself (MangaDex does; a
    local folder only when someone adds one): then "no chapter" means "look again tomorrow"."""
    try:
        return bool(registry.backend_class("fetch", context.settings_for(account_id)).new_chapters_appear)
    except SettingsError:  # FetchManga read the same settings: they were fine a moment ago
        return False


def _samples_dir(context: RunContext) -> Path:
    try:
        return context.samples_dir
    except SettingsError:
        return context.data_dir / "samples"


def next_youtube_reset(now: datetime) -> datetime:
    """The next midnight Pacific Time (when YouTube's daily quota resets), plus 5 minutes."""
    local = now.astimezone(PACIFIC_TZ)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(0, 5), tzinfo=PACIFIC_TZ)
    return midnight.astimezone(now.tzinfo)


def next_vietnam_morning(now: datetime) -> datetime:
    """08:00 of the next Vietnam day."""
    local = now.astimezone(VIETNAM_TZ)
    return datetime.combine(local.date() + timedelta(days=1), DAILY_START, tzinfo=VIETNAM_TZ).astimezone(
        now.tzinfo
    )


class VideoJobs:
    """Runs ``pipeline.video`` jobs for a Scheduler (installed by the pipeline extension).

    :param scheduler: the Scheduler whose jobs these are.
    :param definition: the state definition (default ``config/pipeline.json``).
    :param stages: the stage of every Task state (default: the embedded backends).
    :param settings: reads the pipeline settings at the start of each run (default
        ``load_settings``: the environment and the settings file); the stages get them from
        their context (``RunContext``), with the scheduler's data dir and clock.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        definition: Definition | None = None,
        stages: Mapping[str, StageFunc] | None = None,
        settings: Callable[[], PipelineSettings] = load_settings,
    ) -> None:
        self.scheduler = scheduler
        self.definition = definition or pipeline_definition()
        self.stages = dict(stages) if stages is not None else embedded_stages(self.definition)
        self.load_settings = settings

    def context(self) -> RunContext:
        """A fresh context for one run's stages (its settings read once, when first asked)."""
        return RunContext(self.scheduler, self.load_settings, asyncio.get_running_loop())

    def install(self) -> None:
        """Register the kind and make it add-job's default."""
        self.scheduler.registry.register(
            VIDEO_KIND, self.run, max_running_minutes=VIDEO_MAX_RUNNING_MINUTES, resumable=True
        )
        self.scheduler.default_kind = VIDEO_KIND

    async def run(self, job: ScheduledJob) -> dict[str, Any]:
        """The handler of one ``pipeline.video`` run."""
        saved = (job.model_extra or {}).get("pipeline")
        start = Checkpoint(
            state=self.definition.start_at,
            manga=job.content,
            video_job_id=job.job_id,
            loop=False,
            account_id=job.account_id,
        )
        checkpoint = Checkpoint.model_validate(saved) if isinstance(saved, dict) else start
        alerts = RunAlerts(self.scheduler.notifier, job.job_id)

        async def save(cp: Checkpoint) -> None:
            await self.scheduler.update_fields(
                job.job_id, {"pipeline": cp.model_dump(mode="json"), "stage": stage_of(cp)}
            )
            alerts.saw(cp)

        context = self.context()
        await asyncio.to_thread(sweep_at_start, context)  # Spot workers nobody owns since a restart
        machine = Machine(
            self.definition, self.stages, save=save, clock=self.scheduler.clock, context=context, hooks=PipelineRun()
        )
        done = await machine.run(checkpoint)
        now = self.scheduler.clock()
        if done.state == State.QUOTA_REACHED and State.WAIT_FOR_RENDER in done.outputs:
            resume = done.model_copy(update={"state": State.START_UPLOADER, "error": None})
            await save(resume)
            raise Reschedule(
                next_youtube_reset(now), "YouTube upload quota spent; the upload resumes after it resets"
            )
        if done.state == State.QUOTA_REACHED:
            await self.scheduler.update_fields(
                job.job_id, {"pipeline": start.model_dump(mode="json"), "stage": "pending"}
            )
            raise Reschedule(next_vietnam_morning(now), "daily quota reached; moved to the next Vietnam day")
        if done.state == State.NO_MANGA_AVAILABLE:
            await self._no_manga(job, start, now, context)
        if done.error is not None:
            error = done.error
            raise PermanentFailure(f"{error['state']} failed with {error['Error']}: {error['Cause']}")
        upload = done.outputs.get(State.WAIT_FOR_UPLOAD, {})
        fetched = done.outputs.get(State.FETCH_MANGA, {})
        return {
            "status": "published",
            "youtube_url": upload.get("youtube_url"),
            "manga_title": fetched.get("manga_title"),
        }

    async def _no_manga(
        self, job: ScheduledJob, start: Checkpoint, now: datetime, context: RunContext
    ) -> NoReturn:
        """FetchManga found no chapter: look again tomorrow (MangaDex) or fail with the hint."""
        fresh = start.model_dump(mode="json")
        if _new_chapters_appear(context, job.account_id):
            waited = int((job.model_extra or {}).get("mornings_without_chapter") or 0)
            if waited < job.max_retries:
                waiting = {"pipeline": fresh, "stage": "pending", "mornings_without_chapter": waited + 1}
                await self.scheduler.update_fields(job.job_id, waiting)
                raise Reschedule(
                    next_vietnam_morning(now),
                    f"no new chapter on MangaDex for {job.content!r} yet; looking again at 08:00 Vietnam "
                    f"time ({waited + 1} of {job.max_retries} mornings)",
                )
            await self.scheduler.update_fields(job.job_id, {"pipeline": fresh, "stage": "failed"})
            raise PermanentFailure(
                f"no new chapter on MangaDex for {job.content!r}, after looking again on {waited} "
                "mornings: check MANGA_IDS or MANGA_SEARCH and MANGA_LANGUAGE"
            )
        await self.scheduler.update_fields(job.job_id, {"pipeline": fresh, "stage": "failed"})
        raise PermanentFailure(no_manga_hint(job.content, _samples_dir(context)))
