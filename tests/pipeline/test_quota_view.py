"""check-quota counts from the scheduler's own view of its jobs, whatever zone names the files.

The quota's day is the Vietnam date of a video's ``scheduled_time``; the day files are
named in SCHEDULER_TIMEZONE. With ``UTC``, a video due 06:00 Vietnam time (23:00 UTC the
day before) lives in the previous UTC day's file: reading files named by Vietnam dates
missed it. Checked through the machine's CheckQuota (a Scheduler with the pipeline) and
through the ``quota`` command, on the files and through a running daemon.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from services.pipeline.cli_entry import main
from services.pipeline.engine.context import RunContext
from services.pipeline.engine.definition import load_definition
from services.pipeline.extension import PipelineExtension
from services.pipeline.jobs.video_job import VideoJobs
from services.pipeline.settings import PipelineSettings
from services.pipeline.stages import embedded_stages, quota
from services.scheduler.clock import load_timezone
from services.scheduler.lock import read_holder
from services.scheduler.models import ScheduledJob
from services.scheduler.scheduler import Scheduler
from services.scheduler.settings import Settings
from services.scheduler.storage import JobStorage

ROOT = Path(__file__).resolve().parents[2]

NOW = datetime(2026, 2, 8, 2, 0, tzinfo=timezone.utc)  # 09:00 on Feb 8 in Vietnam
DUE_0600_VN = datetime(2026, 2, 7, 23, 0, tzinfo=timezone.utc)  # 06:00 on Feb 8 in Vietnam
QUOTA_KEYS = {"quota", "used", "remaining", "quota_reached", "daily_quota", "daily_count"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, settings_path: Path) -> None:
    # installing the pipeline sets DATA_DIR for its stages: restore it after each test
    for name in ("DATA_DIR", "SAMPLES_DIR", "DAILY_QUOTA", "SCHEDULER_TIMEZONE"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def video(job_id: str, when: datetime, status: str, stage: str | None, **fields: Any) -> ScheduledJob:
    extra = {"stage": stage} if stage is not None else {}
    return ScheduledJob(
        job_id=job_id,
        account_id="acc",
        content="next",
        kind="pipeline.video",
        scheduled_time=when,
        status=status,
        created_at=when,
        updated_at=when,
        **extra,
        **fields,
    )


def write_day(data_dir: Path, zone: str) -> None:
    """Today's videos (Vietnam Feb 8) in files named in ``zone``, and records missing a field."""
    done_at = DUE_0600_VN + timedelta(minutes=10)
    storage = JobStorage(data_dir, load_timezone(zone))
    storage.load()
    for job in (
        video("done-0600", DUE_0600_VN, "completed", "completed", completed_at=done_at),  # counts
        video("failed-0600", DUE_0600_VN, "failed", "rendering", completed_at=done_at),
        video("cancelled-0600", DUE_0600_VN, "cancelled", "pending"),
        video("expired-0600", DUE_0600_VN, "expired", None),
        video("yesterday", datetime(2026, 2, 7, 16, 59, tzinfo=timezone.utc), "completed", "completed"),
    ):
        storage.put(job)
    storage.flush()
    # records another tool wrote without their status, or without their time
    path = data_dir / "jobs" / f"jobs_{storage.day_of(storage.jobs['cancelled-0600']).isoformat()}.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    model = raw["jobs"]["cancelled-0600"]
    raw["jobs"]["no-status"] = {k: v for k, v in model.items() if k not in ("status", "stage")} | {
        "job_id": "no-status"
    }
    raw["jobs"]["no-time"] = {k: v for k, v in model.items() if k != "scheduled_time"} | {
        "job_id": "no-time",
        "status": "completed",
    }
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")


def assert_skipped_with_warnings(caplog: pytest.LogCaptureFixture) -> None:
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    seen = {(r.getMessage(), getattr(r, "job_id", None)) for r in warned}
    assert ("skipping job with no status", "no-status") in seen
    refused = "skipping invalid job record (kept in its file and copied to jobs/rejected/)"
    assert (refused, "no-time") in seen  # the scheduler's storage refuses it: never counted


def test_in_utc_files_the_files_of_vietnam_dates_miss_the_0600_video(data_dir: Path) -> None:
    write_day(data_dir, "UTC")
    names = sorted(p.name for p in (data_dir / "jobs").glob("jobs_*.json"))
    assert names == ["jobs_2026-02-07.json"]  # no jobs_2026-02-08.json: guessing names misses it


async def test_check_quota_in_the_machine_counts_from_the_schedulers_view(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_day(data_dir, "UTC")
    seen: list[dict[str, Any]] = []
    stages = embedded_stages(load_definition())

    def check_quota(event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert isinstance(context, RunContext)
        seen.append(quota.handler(event, context))
        return seen[-1]

    stages["CheckQuota"] = check_quota
    stages["FetchManga"] = lambda event, context: {"status": "no_manga_available"}
    scheduler = Scheduler(data_dir, timezone="UTC", clock=lambda: NOW)
    VideoJobs(scheduler, stages=stages).install()
    with caplog.at_level(logging.WARNING):
        scheduler.load()
        job = scheduler.add_job("acc", "next")  # due now; it leaves itself out of the count
        await scheduler.executor.run_job(job)
    assert seen == [quota.quota_result(10, 1)]
    assert set(seen[0]) == QUOTA_KEYS
    assert_skipped_with_warnings(caplog)


async def test_the_0600_video_fills_a_quota_of_one_on_utc_day_files(data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("DAILY_QUOTA", "1")
    write_day(data_dir, "UTC")
    scheduler = Scheduler(data_dir, timezone="UTC", clock=lambda: NOW, extensions=[PipelineExtension()])
    scheduler.load()
    job = await scheduler.executor.run_job(scheduler.add_job("acc", "next"))
    assert job.error == "daily quota reached; moved to the next Vietnam day"
    assert job.retry_count == 0 and job.model_extra["stage"] == "pending"


def test_the_job_context_view_is_a_snapshot_of_the_table(data_dir: Path) -> None:
    scheduler = Scheduler(data_dir, clock=lambda: NOW)
    scheduler.load()
    log = scheduler.add_job("acc", "hello", kind="log")
    context = RunContext(scheduler, PipelineSettings.embedded)
    view = context.jobs()
    assert [j.job_id for j in view] == [log.job_id] and context.jobs(kind="pipeline.video") == []
    scheduler.add_job("acc", "again", kind="log")
    assert len(view) == 1 and len(context.jobs()) == 2


@pytest.mark.parametrize("zone", ["UTC", "Asia/Ho_Chi_Minh", "America/Los_Angeles"])
def test_the_quota_command_counts_from_the_schedulers_view(
    data_dir: Path, zone: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    write_day(data_dir, zone)
    before = {p: p.read_bytes() for p in (data_dir / "jobs").glob("*.json")}
    with freeze_time(NOW), caplog.at_level(logging.WARNING):
        code = main(["quota", "--json", "--data-dir", str(data_dir)], environ={"SCHEDULER_TIMEZONE": zone})
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out) == quota.quota_result(10, 1)
    assert_skipped_with_warnings(caplog)
    after = {p: p.read_bytes() for p in (data_dir / "jobs").glob("*.json")}
    assert after == before  # a read writes no job file
    with freeze_time(NOW):
        assert main(["quota", "--data-dir", str(data_dir)], environ={"SCHEDULER_TIMEZONE": zone}) == 0
    assert capsys.readouterr().out == "2026-02-08: 1 of 10 videos (9 left)\n"


def test_the_view_of_a_data_dir_asks_the_scheduler_of_that_data_dir(data_dir: Path) -> None:
    write_day(data_dir, "UTC")
    view = quota.view_of(Settings.from_env({"SCHEDULER_TIMEZONE": "UTC"}, data_dir=str(data_dir)))
    with freeze_time(NOW):
        assert quota.handler({}, view)["used"] == 1
        assert quota.handler({"exclude_job_id": "done-0600"}, view)["used"] == 0


def test_the_quota_command_on_a_missing_data_dir_creates_nothing(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "never" / "data"
    assert main(["quota", "--json", "--data-dir", str(missing)], environ={}) == 0
    assert json.loads(capsys.readouterr().out)["used"] == 0
    assert not (tmp_path / "never").exists()


def test_records_from_a_view_missing_status_or_time_are_skipped_with_a_warning(caplog) -> None:
    today = DUE_0600_VN.isoformat()
    records = [
        {"job_id": "ok", "kind": "pipeline.video", "status": "scheduled", "scheduled_time": today},
        {"job_id": "no-status", "kind": "pipeline.video", "scheduled_time": today},
        {"job_id": "no-status-stage", "kind": "pipeline.video", "stage": "tts", "scheduled_time": today},
        {"job_id": "no-time", "kind": "pipeline.video", "status": "completed", "stage": "completed"},
        {"job_id": "failed", "kind": "pipeline.video", "status": "failed", "scheduled_time": today},
        {"job_id": "cancelled", "kind": "pipeline.video", "status": "cancelled", "scheduled_time": today},
        {"job_id": "expired", "kind": "pipeline.video", "status": "expired", "scheduled_time": today},
    ]
    with caplog.at_level(logging.WARNING):
        result = quota.handler({}, quota.JobsView(records, clock=lambda: NOW))
    assert result == quota.quota_result(10, 1)
    seen = {(r.getMessage(), getattr(r, "job_id", None)) for r in caplog.records}
    assert ("skipping job with no status", "no-status") in seen
    assert ("skipping job with no status", "no-status-stage") in seen
    assert ("skipping job with a bad scheduled_time", "no-time") in seen


# -- through a running daemon: the command asks its API ------------------------------------


def test_the_quota_command_asks_a_running_daemon(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # a video due at 06:00 Vietnam time today (the real today: the daemon runs on the real clock)
    vn = load_timezone("Asia/Ho_Chi_Minh")
    today = datetime.now(vn).date()
    due = datetime(today.year, today.month, today.day, 6, 0, tzinfo=vn).astimezone(timezone.utc)
    storage = JobStorage(data_dir, load_timezone("UTC"))
    storage.load()
    storage.put(video("done-0600", due, "completed", "completed", completed_at=due + timedelta(minutes=5)))
    storage.put(video("failed-0600", due, "failed", "failed", completed_at=due + timedelta(minutes=5)))
    storage.flush()
    env = {k: v for k, v in os.environ.items() if k not in ("DATA_DIR", "API_PORT", "DAILY_QUOTA")}
    env.update(
        {
            "DATA_DIR": str(data_dir),
            "API_PORT": "0",
            "SCHEDULER_TIMEZONE": "UTC",
            "PIPELINE_SETTINGS_FILE": os.devnull,
            "PYTHONPATH": str(ROOT),
        }
    )
    cli = [sys.executable, str(ROOT / "run_scheduler.py")]
    daemon = subprocess.Popen([*cli, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not ((h := read_holder(data_dir)) and h.get("ready") and h.get("pid") == daemon.pid):
            assert daemon.poll() is None, daemon.communicate()
            assert time.monotonic() < deadline, "daemon did not become ready"
            time.sleep(0.05)
        done = subprocess.run([*cli, "quota", "--json"], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == quota.quota_result(10, 1)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.communicate()
