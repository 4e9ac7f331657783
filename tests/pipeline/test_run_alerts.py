"""The pipeline's notifications: quota_reached, youtube_quota_exhausted and token_refresh_failed,
from the rule (``alerts_of``) and from real video and daily runs into a recording notifier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.pipeline.engine.definition import load_definition
from services.pipeline.engine.machine import Checkpoint
from services.pipeline.errors import TaskFailed
from services.pipeline.extension import PipelineExtension
from services.pipeline.jobs.daily_job import DailyJobs
from services.pipeline.jobs.run_alerts import RunAlerts, alerts_of
from services.pipeline.jobs.video_job import VideoJobs
from services.pipeline.settings import PipelineSettings
from services.pipeline.tasks.task_tokens import LocalTransport, judge, mint_token
from services.pipeline.tasks.worker import run_task
from services.pipeline.workspace import Workspace
from services.scheduler.clock import utc_now
from services.scheduler.handlers import HandlerRegistry
from services.scheduler.models import JobStatus
from services.scheduler.notifications import QUOTA_REACHED, TOKEN_REFRESH_FAILED, YOUTUBE_QUOTA_EXHAUSTED
from services.scheduler.scheduler import Scheduler


class RecordingNotifier:
    """A Notifier that keeps every call as (event, message, fields)."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, str, dict[str, Any]]] = []

    def notify(self, event: str, message: str, **fields: Any) -> None:
        self.notes.append((event, message, fields))

    def events(self) -> list[str]:
        return [event for event, _, _ in self.notes]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch) -> None:
    for name in ("DATA_DIR", "SAMPLES_DIR", "DAILY_QUOTA", "VIDEO_FORMAT"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


AUTH_CAUSE = "YouTubeAuthError: the YouTube token in /etc/t.json cannot be refreshed (invalid_grant); run ..."


@pytest.mark.parametrize(
    ("cp", "events"),
    [
        (Checkpoint(state="QuotaReached", outputs={"CheckQuota": {"daily_quota": 2, "daily_count": 2}}),
         [QUOTA_REACHED]),
        (Checkpoint(state="QuotaReached", outputs={"WaitForRender": {}},
                    error={"Error": "YouTubeQuotaError", "Cause": "quotaExceeded", "state": "WaitForUpload"}),
         [YOUTUBE_QUOTA_EXHAUSTED]),
        (Checkpoint(state="Done", loop=True,
                    outputs={"CheckQuota": {"daily_quota": 3, "daily_count": 2}, "IncrementCounter": {"daily_count": 3}}),
         [QUOTA_REACHED]),
        (Checkpoint(state="Done", outputs={"CheckQuota": {"daily_quota": 3}, "IncrementCounter": {"daily_count": 2}}),
         []),
        (Checkpoint(state="Done", loop=True, outputs={"CheckQuota": {"daily_quota": 3, "daily_count": 3}}), []),
        (Checkpoint(state="HandleError",
                    error={"Error": "UploadError", "Cause": AUTH_CAUSE, "state": "WaitForUpload"}),
         [TOKEN_REFRESH_FAILED]),
        (Checkpoint(state="HandleError", error={"Error": "UploadError", "Cause": "YouTubeUploadError: HTTP 400"}),
         []),
        (Checkpoint(state="FetchManga"), []),
    ],
    ids=["day-full-at-check", "youtube-quota", "day-filled", "day-not-filled", "stopped-by-failures",
         "token", "other-upload-error", "other-state"],
)
def test_alerts_of_each_checkpoint(cp: Checkpoint, events: list[str]) -> None:
    assert [alert.event for alert in alerts_of(cp, "job-1")] == events


def test_a_state_saved_twice_is_told_once() -> None:
    notes = RecordingNotifier()
    alerts = RunAlerts(notes, "job-1")
    failed = Checkpoint(state="HandleError", account_id="kenh-1", video_job_id="v1",
                        error={"Error": "UploadError", "Cause": AUTH_CAUSE})
    alerts.saw(failed)
    alerts.saw(failed)  # HandleError's own retry saves it again
    assert notes.notes == [(
        TOKEN_REFRESH_FAILED,
        "account kenh-1: the YouTube token no longer works, so video v1 was not uploaded; "
        "run `python run_scheduler.py youtube-auth --account kenh-1`",
        {"account_id": "kenh-1", "job_id": "job-1", "video_job_id": "v1", "cause": AUTH_CAUSE},
    )]


def fake_stages(outputs: dict[str, dict], fail: dict[str, Exception] | None = None) -> dict[str, Any]:
    """A stage for every Task state: ``outputs[name]`` (with the event's job id), or ``fail[name]``."""

    def stage(name: str):
        def run(event, context):
            if fail and name in fail:
                raise fail[name]
            return {"job_id": event.get("job_id") or "video-1", **outputs.get(name, {})}

        return run

    return {name: stage(name) for name, spec in load_definition().states.items() if spec.type == "Task"}


OPEN_DAY = {
    "CheckQuota": {"quota_reached": False, "daily_quota": 10, "daily_count": 0},
    "FetchManga": {"status": "success", "manga_id": "m", "manga_title": "t"},
}


async def test_a_video_on_a_full_day_tells_quota_reached(data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("DAILY_QUOTA", "0")
    scheduler = Scheduler(data_dir, extensions=[PipelineExtension()])
    scheduler.notifier = notes = RecordingNotifier()
    scheduler.load()
    job = await scheduler.executor.run_job(scheduler.add_job("kenh-1", "next"))
    assert job.status is JobStatus.SCHEDULED  # moved to tomorrow (the real CheckQuota said so)
    ((event, message, fields),) = notes.notes
    assert event == QUOTA_REACHED
    assert message == (
        f"account kenh-1: the daily quota is reached (0 of 0 videos); video job {job.job_id} moves to "
        "08:00 tomorrow (Vietnam time)"
    )
    assert fields["daily_quota"] == 0 and fields["job_id"] == job.job_id


async def test_the_daily_run_that_fills_the_day_tells_quota_reached(data_dir: Path) -> None:
    outputs = {
        "CheckQuota": {"quota_reached": False, "daily_quota": 1, "daily_count": 0},
        "FetchManga": {"status": "success", "manga_id": "m", "manga_title": "t"},
        "WaitForUpload": {"status": "completed", "youtube_url": "https://youtu.be/x"},
        "IncrementCounter": {"daily_count": 1},
    }
    scheduler = Scheduler(data_dir, registry=HandlerRegistry())
    DailyJobs(scheduler, load_definition(), fake_stages(outputs)).install()
    VideoJobs(scheduler, load_definition(), fake_stages(outputs)).install()
    scheduler.notifier = notes = RecordingNotifier()
    scheduler.load()
    daily = await scheduler.executor.run_job(scheduler.add_job("kenh-1", "daily", kind="pipeline.daily"))
    assert daily.status is JobStatus.COMPLETED and daily.result["published"] == 1
    assert notes.events() == [QUOTA_REACHED]
    assert notes.notes[0][1] == "account kenh-1 reached its daily quota: 1 of 1 videos published today"


async def test_youtubes_quota_tells_youtube_quota_exhausted(data_dir: Path) -> None:
    spent = TaskFailed("quotaExceeded: the channel's daily upload quota is spent", name="YouTubeQuotaError")
    scheduler = Scheduler(data_dir, registry=HandlerRegistry())
    VideoJobs(scheduler, load_definition(), fake_stages(OPEN_DAY, {"WaitForUpload": spent})).install()
    scheduler.notifier = notes = RecordingNotifier()
    scheduler.load()
    job = await scheduler.executor.run_job(scheduler.add_job("kenh-1", "next"))
    assert job.status is JobStatus.SCHEDULED and job.model_extra["stage"] == "uploading"
    ((event, message, fields),) = notes.notes
    assert event == YOUTUBE_QUOTA_EXHAUSTED
    assert message == (
        f"account kenh-1: YouTube's upload quota is spent for today; video {job.job_id} is rendered and "
        "uploads after the quota resets (00:05 Pacific time)"
    )
    assert fields["cause"] == "quotaExceeded: the channel's daily upload quota is spent"


def failed_upload_worker(data_dir: Path, job_id: str) -> Exception:
    """What WaitForUpload raises after the real upload worker ran without a usable token.

    The worker (in this process, not a subprocess) publishes through the YouTube backend,
    which refuses for want of a token (YouTubeAuthError); the worker reports it in
    result.json, and ``judge`` turns the report into the state's error, as WaitForUpload does.
    """
    transport = LocalTransport(data_dir / "tasks")
    token = mint_token()
    transport.open(token)
    settings = PipelineSettings.from_values({"upload_target": "youtube"})
    transport.write_task(token, {"task": "upload", "job_id": job_id, "settings": settings.for_worker()})
    work = Workspace(data_dir, job_id)
    work.root.mkdir(parents=True, exist_ok=True)
    work.video.write_bytes(b"a rendered video")
    work.write("source.json", {"account_id": "kenh-1", "panels": ["p1.png"]})
    work.write("script.json", {"title": "t", "tags": []})
    assert run_task("upload", job_id, token, data_dir=data_dir, heartbeat_seconds=60) == 1
    now = utc_now()
    try:
        judge(transport.report(token), started=now, now=now, heartbeat_seconds=None, timeout_seconds=None)
    except TaskFailed as exc:
        return exc
    raise AssertionError("the worker did not fail")


async def test_a_channel_token_that_no_longer_works_tells_token_refresh_failed(data_dir: Path) -> None:
    scheduler = Scheduler(data_dir, registry=HandlerRegistry())

    def wait_for_upload(event, context):
        raise failed_upload_worker(data_dir, event["job_id"])

    stages = fake_stages(OPEN_DAY)
    stages["WaitForUpload"] = wait_for_upload
    VideoJobs(scheduler, load_definition(), stages).install()
    scheduler.notifier = notes = RecordingNotifier()
    scheduler.load()
    job = await scheduler.executor.run_job(scheduler.add_job("kenh-1", "next"))
    assert job.status is JobStatus.FAILED  # HandleError ran; the job fails for good
    ((event, message, fields),) = notes.notes
    assert event == TOKEN_REFRESH_FAILED
    assert message == (
        f"account kenh-1: the YouTube token no longer works, so video {job.job_id} was not uploaded; "
        "run `python run_scheduler.py youtube-auth --account kenh-1`"
    )
    assert fields["cause"].startswith("YouTubeAuthError: UPLOAD_TARGET=youtube needs YOUTUBE_TOKEN_FILE")
