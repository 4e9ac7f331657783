"""The daily run through the scheduler: the quota loop records every video as its own job."""

from __future__ import annotations

from datetime import datetime, time, timezone
from pathlib import Path

import pytest

from services.pipeline.daily_job import next_daily_time
from services.pipeline.extension import PipelineExtension
from services.pipeline.providers import sample_chapter
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
    tomorrow = [j for j in scheduler.list_jobs(status="scheduled") if j.kind == "pipeline.daily"]
    assert len(tomorrow) == 1 and tomorrow[0].scheduled_time > daily.scheduled_time
    # the quota sees exactly the three published videos today
    from services.pipeline import quota

    monkeypatch.setenv("DATA_DIR", str(data_dir))
    assert quota.handler({}, None)["used"] == 3
