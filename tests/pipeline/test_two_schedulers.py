"""Two schedulers on two data dirs in one process do not see each other.

The pipeline once handed its data dir to the stages and workers through ``os.environ``:
the second scheduler installed in a process took the first one's stages with it. Now each
run's stages get the data dir, settings and jobs from their context, and each worker from
its task file, so the environment of the process says nothing to either.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import av

from services.pipeline.extension import PipelineExtension
from services.pipeline.providers.fetch import sample_chapter
from services.pipeline.settings import EMBEDDED_VALUES, PipelineSettings
from services.scheduler.models import JobStatus
from services.scheduler.scheduler import Scheduler


def scheduler_on(data_dir: Path, **settings) -> Scheduler:
    values = PipelineSettings.from_values({**EMBEDDED_VALUES, **settings})
    scheduler = Scheduler(data_dir, extensions=[PipelineExtension(settings=lambda: values)])
    scheduler.load()
    return scheduler


async def test_two_schedulers_in_one_process_keep_to_their_own_data_dir_and_settings(
    tmp_path: Path, monkeypatch
) -> None:
    # what the process environment says must reach neither the stages nor the workers
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "not-this-one"))
    monkeypatch.setenv("VIDEO_FORMAT", "shorts")
    monkeypatch.setenv("UPLOAD_TARGET", "youtube")
    monkeypatch.setenv("DAILY_QUOTA", "0")
    environment = dict(os.environ)
    full, makes = tmp_path / "full", tmp_path / "makes"
    for folder in (full, makes):
        sample_chapter.make_chapter(folder / "samples", panels=2)
    at_quota = scheduler_on(full, daily_quota=0)
    publishing = scheduler_on(makes, daily_quota=5, video_format="landscape")
    waiting = at_quota.add_job("kenh-a", "next")
    video = publishing.add_job("kenh-b", "next")

    await asyncio.gather(at_quota.run_once(), publishing.run_once())

    waiting, video = at_quota.get_job(waiting.job_id), publishing.get_job(video.job_id)
    assert waiting.status is JobStatus.SCHEDULED and waiting.error is not None
    assert waiting.error.startswith("daily quota reached")  # its own quota of 0
    assert video.status is JobStatus.COMPLETED, video.error  # its quota of 5, not DAILY_QUOTA=0
    published = list((makes / "published").rglob("*.mp4"))
    assert len(published) == 1 and video.result["youtube_url"] == published[0].resolve().as_uri()
    with av.open(str(published[0])) as container:  # its settings' format, not VIDEO_FORMAT
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (1920, 1080)
    assert (makes / "counters.json").is_file()
    for stray in ("published", "counters.json", "work"):
        assert not (full / stray).exists(), stray  # nothing of the other's run landed here
    assert not (tmp_path / "not-this-one").exists()
    assert not any((makes / "work").iterdir()) if (makes / "work").exists() else True
    assert dict(os.environ) == environment  # and nothing was written into the environment
