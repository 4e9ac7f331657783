"""check-quota as quota-checker.md specifies, through the handler and the scheduler's view of its files."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from freezegun import freeze_time

from services.pipeline.stages import quota
from services.scheduler.clock import load_timezone
from services.scheduler.models import ScheduledJob
from services.scheduler.settings import Settings, SettingsError
from services.scheduler.storage import JobStorage

# 2026-02-07 23:00 UTC is 2026-02-08 06:00 in Vietnam (the seed's example)
NOW = datetime(2026, 2, 7, 23, 0, tzinfo=timezone.utc)
TODAY_VN = datetime(2026, 2, 8, 1, 0, tzinfo=timezone.utc)  # 08:00 Vietnam, Feb 8


@pytest.fixture
def env(data_dir: Path, monkeypatch) -> Path:
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.delenv("DAILY_QUOTA", raising=False)
    return data_dir


def store(data_dir: Path, *jobs: ScheduledJob) -> None:
    storage = JobStorage(data_dir, load_timezone("Asia/Ho_Chi_Minh"))
    storage.load()
    for job in jobs:
        storage.put(job)
    storage.flush()


def video(when: datetime = TODAY_VN, stage: str | None = "completed", **fields) -> ScheduledJob:
    fields.setdefault("kind", "pipeline.video")
    if stage is not None:
        fields["stage"] = stage
    return ScheduledJob(
        account_id="acc", content="next", scheduled_time=when, created_at=when, updated_at=when, **fields
    )


def check() -> dict:
    """CheckQuota as the ``quota`` command runs it: DATA_DIR and the settings read now."""
    with freeze_time(NOW):
        return quota.handler({}, quota.view_of(Settings.from_env()))


def test_no_jobs_today_leaves_the_whole_quota(env: Path) -> None:
    assert check() == {
        "quota": 10,
        "used": 0,
        "remaining": 10,
        "quota_reached": False,
        "daily_quota": 10,
        "daily_count": 0,
    }


def test_jobs_equal_to_quota_reach_it(env: Path, monkeypatch) -> None:
    monkeypatch.setenv("DAILY_QUOTA", "3")
    store(env, *(video() for _ in range(3)))
    assert check() == {
        "quota": 3,
        "used": 3,
        "remaining": 0,
        "quota_reached": True,
        "daily_quota": 3,
        "daily_count": 3,
    }


def test_jobs_beyond_quota_leave_zero_remaining(env: Path, monkeypatch) -> None:
    monkeypatch.setenv("DAILY_QUOTA", "2")
    store(env, *(video() for _ in range(5)))
    result = check()
    assert (result["used"], result["remaining"], result["quota_reached"]) == (5, 0, True)


# quota-checker.md's list, written out: taken from QUOTA_STATUSES, a status dropped there
# would drop out of this test too
SPEC_COUNTED_STAGES = ("pending", "fetching", "scripting", "tts", "rendering", "uploading", "completed")


@pytest.mark.parametrize("stage", SPEC_COUNTED_STAGES)
def test_every_active_stage_counts(env: Path, stage: str) -> None:
    store(env, video(stage=stage))
    assert check()["used"] == 1


def test_failed_videos_do_not_count(env: Path) -> None:
    store(env, video(stage="failed"), video(stage="rendering", status="failed"), video(stage="completed"))
    assert check()["used"] == 1


def test_a_scheduled_video_without_a_stage_counts_as_pending(env: Path) -> None:
    store(env, video(stage=None, status="scheduled"))
    assert check()["used"] == 1


def test_only_todays_videos_count_in_vietnam_time(env: Path) -> None:
    store(
        env,
        video(TODAY_VN),
        video(datetime(2026, 2, 7, 17, 0, tzinfo=timezone.utc)),  # 00:00 Feb 8 in Vietnam: today
        video(datetime(2026, 2, 7, 16, 59, 59, tzinfo=timezone.utc)),  # 23:59:59 Feb 7: yesterday
        video(datetime(2026, 2, 8, 17, 0, tzinfo=timezone.utc)),  # 00:00 Feb 9: tomorrow
    )
    assert check()["used"] == 2


def test_a_video_completed_the_next_day_still_counts_on_its_due_day(env: Path) -> None:
    job = video(datetime(2026, 2, 8, 16, 30, tzinfo=timezone.utc))  # 23:30 Feb 8 in Vietnam
    done = ScheduledJob.model_validate(
        {**job.model_dump(), "status": "completed", "completed_at": job.scheduled_time + timedelta(hours=2)}
    )
    store(env, done)  # lives in jobs_2026-02-09.json
    assert (env / "jobs" / "jobs_2026-02-09.json").exists()
    assert check()["used"] == 1


def test_other_kinds_do_not_count(env: Path) -> None:
    store(env, video(kind="log"))
    assert check()["used"] == 0


def test_bad_records_are_skipped_with_a_warning(env: Path, caplog) -> None:
    store(env, video())
    path = env / "jobs" / "jobs_2026-02-08.json"
    raw = json.loads(path.read_text())
    good = next(iter(raw["jobs"].values()))
    raw["jobs"]["bad-time"] = {**good, "job_id": "bad-time", "scheduled_time": "yesterday"}
    raw["jobs"]["no-time"] = {k: v for k, v in good.items() if k != "scheduled_time"} | {"job_id": "no-time"}
    raw["jobs"]["no-status"] = {k: v for k, v in good.items() if k != "status"} | {"job_id": "no-status"}
    raw["jobs"]["bad-stage"] = {**good, "job_id": "bad-stage", "stage": "dancing"}
    path.write_text(json.dumps(raw))
    with caplog.at_level(logging.WARNING):
        assert check()["used"] == 1
    messages = {(r.getMessage(), getattr(r, "job_id", None)) for r in caplog.records}
    # the scheduler's storage refuses a record without a valid time, with its warning
    refused = "skipping invalid job record (kept in its file and copied to jobs/rejected/)"
    assert (refused, "bad-time") in messages and (refused, "no-time") in messages
    assert ("skipping job with no status", "no-status") in messages
    assert ("skipping job with an unknown status", "bad-stage") in messages


def test_quota_and_data_dir_are_read_at_each_call(env: Path, monkeypatch, tmp_path: Path) -> None:
    store(env, video())
    assert check()["used"] == 1
    monkeypatch.setenv("DAILY_QUOTA", "1")
    assert check()["quota_reached"] is True
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "elsewhere"))
    assert check()["used"] == 0


@pytest.mark.parametrize("raw", ["abc", "-1", "2.5"])
def test_a_bad_daily_quota_is_named(env: Path, monkeypatch, raw: str) -> None:
    monkeypatch.setenv("DAILY_QUOTA", raw)
    with pytest.raises(SettingsError, match=f"DAILY_QUOTA must be a whole number >= 0, got '{raw}'"):
        check()
