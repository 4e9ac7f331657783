"""pipeline.video jobs through the scheduler, and the demo command."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import av
import pytest
from freezegun import freeze_time

from services.pipeline.cli_entry import main
from services.pipeline.engine.machine import Checkpoint
from services.pipeline.extension import PipelineExtension
from services.pipeline.jobs.video_job import (
    next_vietnam_morning,
    next_youtube_reset,
    stage_of,
)
from services.scheduler.models import JobStatus
from services.scheduler.scheduler import Scheduler


@pytest.fixture(autouse=True)
def clean_env(monkeypatch) -> None:
    # installing the pipeline sets DATA_DIR for its stages: restore it after each test
    for name in ("DATA_DIR", "SAMPLES_DIR", "DAILY_QUOTA", "VIDEO_FORMAT"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def test_add_job_defaults_to_a_video_job(data_dir: Path) -> None:
    scheduler = Scheduler(data_dir, extensions=[PipelineExtension()])
    scheduler.load()
    job = scheduler.add_job("acc", "next")
    assert job.kind == "pipeline.video"
    assert "pipeline.video" in scheduler.registry and "log" in scheduler.registry


async def test_a_video_on_a_full_day_moves_to_the_next_vietnam_morning(data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("DAILY_QUOTA", "0")
    scheduler = Scheduler(data_dir, extensions=[PipelineExtension()])
    scheduler.load()
    job = await scheduler.executor.run_job(scheduler.add_job("acc", "next"))
    assert job.status is JobStatus.SCHEDULED and job.retry_count == 0
    assert job.error == "daily quota reached; moved to the next Vietnam day"
    assert job.scheduled_time == next_vietnam_morning(job.updated_at)
    assert job.model_extra["stage"] == "pending"
    assert job.model_extra["pipeline"]["state"] == "CheckQuota"


@pytest.mark.parametrize(
    ("now", "reset"),
    [
        (
            datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc),
            datetime(2026, 11, 24, 8, 5, tzinfo=timezone.utc),
        ),
        (datetime(2026, 7, 1, 6, 59, tzinfo=timezone.utc), datetime(2026, 7, 1, 7, 5, tzinfo=timezone.utc)),
        (datetime(2026, 7, 1, 7, 0, tzinfo=timezone.utc), datetime(2026, 7, 2, 7, 5, tzinfo=timezone.utc)),
    ],
)
def test_youtube_quota_resets_at_midnight_pacific_not_vietnam(now, reset) -> None:
    assert next_youtube_reset(now) == reset


def test_next_vietnam_morning_is_8am_the_next_day() -> None:
    with freeze_time("2026-11-23T18:00:00Z"):  # 01:00 on the 24th in Vietnam
        now = datetime.now(timezone.utc)
    assert next_vietnam_morning(now) == datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("state", "outputs", "error", "stage"),
    [
        ("FetchManga", {}, None, "fetching"),
        ("WaitForRender", {}, None, "rendering"),
        ("WaitForUpload", {}, None, "uploading"),
        ("Done", {}, None, "completed"),
        ("CheckMoreVideos", {"HandleError": {}}, {"Error": "E"}, "failed"),
        ("QuotaReached", {"WaitForRender": {}}, {"Error": "YouTubeQuotaError"}, "uploading"),
        ("QuotaReached", {}, None, "pending"),
    ],
)
def test_stage_names_follow_the_quota_vocabulary(state, outputs, error, stage) -> None:
    assert stage_of(Checkpoint(state=state, outputs=outputs, error=error)) == stage


def test_demo_makes_a_video_and_prints_its_path(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--dir", str(tmp_path / "demo"), "--panels", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    video = Path(next(line for line in out if line.endswith(".mp4")))
    assert video.exists() and video.parent.parent.name == "published"
    assert out[-1].startswith('published "Cậu bé và con rồng - Chương 1": 2 panels')
    assert any(line.strip().startswith("WaitForRender") for line in out)
    with av.open(str(video)) as container:
        assert {s.type for s in container.streams} == {"video", "audio"}
    metadata = video.with_suffix(".json").read_text(encoding="utf-8")  # what is published
    assert str(tmp_path) not in metadata and "chapter-0001" not in metadata
    assert "Nguồn: Truyện: Cậu bé và con rồng (chương 1)" in json.loads(metadata)["description"]
    jobs = {}
    for path in (tmp_path / "demo" / "jobs").glob("jobs_*.json"):
        jobs.update(json.loads(path.read_text(encoding="utf-8"))["jobs"])
    (job,) = jobs.values()
    assert (job["status"], job["stage"], job["kind"]) == ("completed", "completed", "pipeline.video")
    assert job["pipeline"]["state"] == "Done"


def test_demo_refuses_zero_panels(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--dir", str(tmp_path / "d"), "--panels", "0"]) == 2
    assert "--panels must be at least 1" in capsys.readouterr().err


async def test_youtube_quota_keeps_the_render_and_the_upload_resumes_after_the_reset(data_dir: Path) -> None:
    from services.pipeline.engine.definition import load_definition
    from services.pipeline.errors import TaskFailed
    from services.pipeline.jobs.video_job import VideoJobs
    from services.scheduler.handlers import HandlerRegistry

    calls: list[str] = []
    quota_spent = [True]

    def stage(name: str, output: dict):
        def run(event, context):
            calls.append(name)
            if name == "WaitForUpload" and quota_spent[0]:
                raise TaskFailed(
                    "quotaExceeded: the channel's daily upload quota is spent", name="YouTubeQuotaError"
                )
            return {"job_id": event.get("job_id"), **output}

        return run

    outputs = {
        "CheckQuota": {"quota_reached": False, "daily_quota": 10, "daily_count": 0},
        "FetchManga": {"status": "success", "manga_id": "m", "manga_title": "t"},
        "WaitForUpload": {"status": "completed", "youtube_url": "https://youtu.be/x"},
    }
    definition = load_definition()
    stages = {
        name: stage(name, outputs.get(name, {}))
        for name, spec in definition.states.items()
        if spec.type == "Task"
    }
    scheduler = Scheduler(data_dir, registry=HandlerRegistry())
    VideoJobs(scheduler, definition, stages).install()
    scheduler.load()
    job = await scheduler.executor.run_job(scheduler.add_job("acc", "next"))
    assert job.status is JobStatus.SCHEDULED and job.retry_count == 0
    assert job.scheduled_time == next_youtube_reset(job.updated_at)
    assert job.model_extra["stage"] == "uploading"
    assert calls.count("WaitForRender") == 1

    calls.clear()
    quota_spent[0] = False
    job = await scheduler.executor.run_job(scheduler.get_job(job.job_id))
    assert job.status is JobStatus.COMPLETED and job.result["youtube_url"] == "https://youtu.be/x"
    assert calls == ["StartUploader", "WaitForUpload", "Cleanup", "IncrementCounter"]  # no second render


async def test_no_manga_on_the_local_source_fails_at_once_and_says_where_chapters_go(
    data_dir: Path, settings_path: Path
) -> None:
    scheduler = Scheduler(data_dir, extensions=[PipelineExtension()])
    scheduler.load()
    job = await scheduler.executor.run_job(scheduler.add_job("acc", "next"))
    assert job.status is JobStatus.FAILED and job.retry_count == 0  # no retry of a permanent "nothing"
    assert job.error == (
        f"no manga available for 'next': no chapter left to take in {data_dir / 'samples'}; add chapters as "
        "SAMPLES_DIR/<manga>/chapter-0001/panel-*.png (SAMPLES_DIR defaults to DATA_DIR/samples), "
        "or set FETCH_SOURCE=mangadex with MANGA_IDS"
    )
    assert job.model_extra["stage"] == "failed"


async def test_no_new_chapter_on_mangadex_looks_again_each_morning_then_fails(
    data_dir: Path, settings_path: Path, monkeypatch
) -> None:
    from services.pipeline.engine.definition import load_definition
    from services.pipeline.jobs.video_job import VideoJobs
    from services.pipeline.stages import embedded_stages

    monkeypatch.setenv("FETCH_SOURCE", "mangadex")
    monkeypatch.setenv("MANGA_IDS", '["8f1c2d3e-0000-4000-8000-000000000001"]')
    stages = embedded_stages(load_definition())
    stages["FetchManga"] = lambda event, context: {"status": "no_manga_available"}  # nothing new today
    scheduler = Scheduler(data_dir)
    VideoJobs(scheduler, stages=stages).install()
    scheduler.load()
    job = scheduler.add_job("acc", "next", max_retries=2)
    for morning in (1, 2):
        job = await scheduler.executor.run_job(job)
        assert job.status is JobStatus.SCHEDULED and job.retry_count == 0
        assert job.scheduled_time == next_vietnam_morning(job.updated_at)
        assert job.error == (
            "no new chapter on MangaDex for 'next' yet; looking again at 08:00 Vietnam time "
            f"({morning} of 2 mornings)"
        )
        assert (job.model_extra["stage"], job.model_extra["mornings_without_chapter"]) == ("pending", morning)
        assert job.model_extra["pipeline"]["state"] == "CheckQuota"
    job = await scheduler.executor.run_job(job)
    assert job.status is JobStatus.FAILED and job.retry_count == 0
    assert job.error.startswith("no new chapter on MangaDex for 'next', after looking again on 2 mornings")
