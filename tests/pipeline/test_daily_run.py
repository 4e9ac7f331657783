"""The daily run through the scheduler: the quota loop records every video as its own job."""

from __future__ import annotations

from datetime import datetime, time, timezone
from pathlib import Path

import pytest

from services.pipeline.extension import PipelineExtension
from services.pipeline.jobs.daily_job import next_daily_time
from services.pipeline.providers.fetch import sample_chapter
from services.scheduler.models import JobStatus
from services.scheduler.scheduler import Scheduler


@pytest.fixture(autouse=True)
def clean_env(monkeypatch) -> None:
    for name in ("DATA_DIR", "SAMPLES_DIR", "DAILY_QUOTA", "VIDEO_FORMAT"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (
            datetime(2026, 11, 23, 23, 0, tzinfo=timezone.utc),
            datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc),
        ),
        (
            datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc),
            datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc),
        ),
        (
            datetime(2026, 11, 24, 0, 59, tzinfo=timezone.utc),
            datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc),
        ),
    ],
)
def test_next_daily_time_is_the_next_8am_in_vietnam(now, expected) -> None:
    assert next_daily_time(time(8, 0), now) == expected


async def test_quota_3_with_one_video_failing_for_good_publishes_3_and_records_4(
    data_dir: Path, monkeypatch
) -> None:
    monkeypatch.setenv("DAILY_QUOTA", "3")
    monkeypatch.setenv("VIDEO_FORMAT", "shorts")
    samples = data_dir / "samples"
    for _ in range(5):
        sample_chapter.make_chapter(samples, panels=1)
    broken = samples / "cau-be-va-con-rong" / "chapter-0002" / "panel-001.png"
    broken.write_bytes(b"not a picture")  # its render fails: RenderError, caught, HandleError

    scheduler = Scheduler(data_dir, extensions=[PipelineExtension()])
    scheduler.load()
    daily = scheduler.add_job("kenh-1", "daily", kind="pipeline.daily")
    await scheduler.run_once()

    daily = scheduler.get_job(daily.job_id)
    assert daily.status is JobStatus.COMPLETED, daily.error
    assert daily.result["ended"] == "Done"
    assert (daily.result["published"], daily.result["failed"]) == (3, 1)
    videos = sorted(
        (j for j in scheduler.list_jobs() if j.kind == "pipeline.video"), key=lambda j: j.created_at
    )
    assert len(videos) == 4
    assert [j.status for j in videos] == [
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.COMPLETED,
        JobStatus.COMPLETED,
    ]
    assert [j.model_extra["stage"] for j in videos] == ["completed", "failed", "completed", "completed"]
    assert videos[1].model_extra["failed_state"] == "WaitForRender"
    assert all(j.account_id == "kenh-1" and j.model_extra["daily_job_id"] == daily.job_id for j in videos)
    published = list((data_dir / "published").rglob("*.mp4"))
    assert len(published) == 3
    # a run no schedule made (as older versions added them) leaves its account a daily schedule
    (schedule,) = scheduler.schedules.store.schedules.values()
    assert (schedule.name, schedule.target_command, schedule.account_id) == ("daily-kenh-1", "pipeline.daily", "kenh-1")
    assert not [j for j in scheduler.list_jobs(status="scheduled") if j.kind == "pipeline.daily"]
    # the quota sees exactly the three published videos today
    from services.pipeline.stages import quota
    from services.scheduler.settings import Settings

    assert quota.handler({}, quota.view_of(Settings.from_env({}, data_dir=str(data_dir))))["used"] == 3


async def test_youtube_quota_stops_the_days_loop_and_the_upload_resumes_after_the_reset(
    data_dir: Path,
) -> None:
    from services.pipeline.engine.definition import load_definition
    from services.pipeline.errors import TaskFailed
    from services.pipeline.jobs.daily_job import DailyJobs
    from services.pipeline.jobs.video_job import VideoJobs, next_youtube_reset
    from services.scheduler.handlers import HandlerRegistry

    calls: list[tuple[str, str | None]] = []
    fetched = [0]
    counted = [0]
    upload_quota_spent = [True]  # ... for the second video: the first one got through

    def stage(name: str):
        def run(event, context):
            job_id = event.get("job_id")
            calls.append((name, job_id))
            if name == "CheckQuota":
                return {"quota_reached": False, "daily_quota": 10, "daily_count": counted[0]}
            if name == "FetchManga":
                fetched[0] += 1
                return {
                    "status": "success",
                    "job_id": f"job-v{fetched[0]}",
                    "manga_id": "m",
                    "manga_title": "t",
                }
            if name == "WaitForUpload":
                if job_id == "job-v2" and upload_quota_spent[0]:
                    raise TaskFailed("uploadLimitExceeded: daily upload cap", name="YouTubeQuotaError")
                return {"job_id": job_id, "status": "completed", "youtube_url": f"https://youtu.be/{job_id}"}
            if name == "IncrementCounter":
                counted[0] += 1
                return {"job_id": job_id, "daily_count": counted[0], "date": "2026-11-24"}
            return {"job_id": job_id}

        return run

    definition = load_definition()
    stages = {name: stage(name) for name, spec in definition.states.items() if spec.type == "Task"}
    scheduler = Scheduler(data_dir, registry=HandlerRegistry())
    VideoJobs(scheduler, definition, stages).install()
    DailyJobs(scheduler, definition, stages).install()
    scheduler.load()
    daily = await scheduler.executor.run_job(scheduler.add_job("kenh-1", "daily", kind="pipeline.daily"))

    # the day's loop stopped at the second video: no third fetch
    assert daily.status is JobStatus.COMPLETED, daily.error
    assert daily.result["ended"] == "QuotaReached"
    assert fetched[0] == 2 and ("StartRenderer", "job-v2") in calls
    first, second = scheduler.get_job("job-v1"), scheduler.get_job("job-v2")
    assert first.status is JobStatus.COMPLETED and first.model_extra["stage"] == "completed"
    # the rendered video waits for YouTube's reset (midnight Pacific), its upload next
    assert second.status is JobStatus.SCHEDULED and second.retry_count == 0
    assert second.scheduled_time == next_youtube_reset(second.updated_at)
    assert second.model_extra["stage"] == "uploading"
    assert second.model_extra["pipeline"]["state"] == "StartUploader"
    assert "WaitForRender" in second.model_extra["pipeline"]["outputs"]

    calls.clear()
    upload_quota_spent[0] = False  # after midnight Pacific
    second = await scheduler.executor.run_job(scheduler.get_job("job-v2"))
    assert second.status is JobStatus.COMPLETED, second.error
    assert second.result["youtube_url"] == "https://youtu.be/job-v2"
    assert [name for name, _ in calls] == [
        "StartUploader",
        "WaitForUpload",
        "Cleanup",
        "IncrementCounter",
    ]
