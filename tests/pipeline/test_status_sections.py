"""The pipeline's sections of the status page: the quota as check-quota counts it, the published videos."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from services.pipeline.extension import PipelineExtension
from services.pipeline.settings import PipelineSettings
from services.pipeline.stages import quota as check_quota
from services.pipeline.status_sections import published_videos
from services.scheduler.models import ScheduledJob
from services.scheduler.status_page import status_of
from tests.conftest import FakeClock

NOW = datetime(2026, 11, 23, 20, 30, tzinfo=timezone.utc)  # 03:30 on the 24th in Vietnam


def video(job_id: str, *, status: str, due: datetime, stage: str | None = None, **fields: Any) -> ScheduledJob:
    record = {"job_id": job_id, "account_id": "default", "content": f"manga {job_id}", "kind": "pipeline.video",
              "status": status, "scheduled_time": due, "created_at": due, "updated_at": due, **fields}
    if stage is not None:
        record["stage"] = stage
    return ScheduledJob.model_validate(record)


def published(job_id: str, done: datetime, **result: Any) -> ScheduledJob:
    return video(job_id, status="completed", due=done, stage="completed", completed_at=done,
                 result={"status": "published", "youtube_url": f"https://www.youtube.com/watch?v={job_id}", **result})


def test_the_quota_section_is_the_check_quota_stage_on_the_vietnam_day(make_scheduler) -> None:
    clock = FakeClock(NOW)
    scheduler = make_scheduler(
        clock=clock, extensions=[PipelineExtension(lambda: PipelineSettings.from_values({"daily_quota": 2}))]
    )
    vietnam_morning = datetime(2026, 11, 23, 18, 0, tzinfo=timezone.utc)  # the 24th, 01:00 in Vietnam
    for job in (
        published("a", vietnam_morning),
        video("b", status="running", due=vietnam_morning, stage="rendering"),
        video("c", status="failed", due=vietnam_morning, stage="failed", error="boom"),  # frees its slot
        published("d", vietnam_morning - timedelta(hours=2)),  # the 23rd in Vietnam
    ):
        scheduler.manager.storage.put(job)
    section = scheduler.status_sections["quota"]()
    expected = check_quota.handler({}, check_quota.JobsView(scheduler.jobs_snapshot(), clock=clock,
                                                            settings=PipelineSettings.from_values({"daily_quota": 2})))
    assert section == {"day": "2026-11-24", "timezone": "Asia/Ho_Chi_Minh", **expected}
    assert (section["used"], section["remaining"], section["quota_reached"]) == (2, 0, True)


def test_published_videos_newest_first_with_their_links() -> None:
    jobs = [
        published("old", NOW - timedelta(days=2)),
        published("new", NOW, manga_title="Thám tử — chương 3"),
        video("failed", status="failed", due=NOW, error="x"),
        video("plain", status="completed", due=NOW, result={"status": "skipped"}),
        ScheduledJob.model_validate({"job_id": "log", "account_id": "a", "content": "c", "kind": "log",
                                     "status": "completed", "scheduled_time": NOW, "result": {"status": "published"}}),
    ]
    answer = published_videos(jobs, limit=5)
    assert answer["total"] == 2
    assert [(v["job_id"], v["title"], v["url"]) for v in answer["videos"]] == [
        ("new", "Thám tử — chương 3", "https://www.youtube.com/watch?v=new"),
        ("old", "manga old", "https://www.youtube.com/watch?v=old"),
    ]
    assert answer["videos"][0]["published_at"] == "2026-11-24T03:30:00+07:00"
    assert published_videos(jobs, limit=1)["videos"][0]["job_id"] == "new"


def test_the_status_answer_carries_the_pipeline_sections_and_survives_a_broken_one(make_scheduler) -> None:
    scheduler = make_scheduler(clock=FakeClock(NOW), extensions=[PipelineExtension(PipelineSettings.embedded)])
    scheduler.manager.storage.put(published("a", NOW))

    def broken() -> dict[str, Any]:
        raise RuntimeError("the section's backend is down\nand says more")

    scheduler.status_sections["broken"] = broken
    answer = status_of(scheduler)
    assert set(answer["sections"]) == {"broken", "published", "quota"}
    assert answer["sections"]["broken"] == {"error": "RuntimeError: the section's backend is down …"}
    assert answer["sections"]["published"]["videos"][0]["job_id"] == "a"
    assert answer["sections"]["quota"]["used"] == 1
