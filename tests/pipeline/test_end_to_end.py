"""One video through the machine on the embedded defaults: real stages, real worker
processes, a real MP4 published, the workspace cleaned and the day counted."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from services.pipeline.engine.definition import load_definition
from services.pipeline.engine.machine import Checkpoint, Machine
from services.pipeline.jobs.run_document import PipelineRun
from services.pipeline.providers.fetch import sample_chapter
from services.pipeline.stages import counter, embedded_stages
from services.pipeline.stages.quota import vietnam_today
from services.scheduler.clock import utc_now
from tests.pipeline.media_probe import played_seconds
from tests.pipeline.stage_context import RecordingContext


@pytest.fixture
def data(tmp_path: Path, monkeypatch) -> Path:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.delenv("SAMPLES_DIR", raising=False)
    monkeypatch.delenv("DAILY_QUOTA", raising=False)
    monkeypatch.setenv("VIDEO_FORMAT", "shorts")
    sample_chapter.make_chapter(data_dir / "samples", panels=2)
    return data_dir


async def test_a_video_is_rendered_published_and_counted(data: Path) -> None:
    saved: list[Checkpoint] = []

    async def save(cp: Checkpoint) -> None:
        saved.append(cp)

    definition = load_definition()
    machine = Machine(
        definition, embedded_stages(definition), save=save, clock=utc_now, context=RecordingContext(),
        hooks=PipelineRun(),
    )
    done = await machine.run(Checkpoint(manga="next"))
    assert done.state == "Done", done.error
    job_id = done.video_job_id
    day = vietnam_today()
    published = data / "published" / day.isoformat()
    video, metadata = published / f"{job_id}.mp4", json.loads((published / f"{job_id}.json").read_text())
    assert metadata["title"] == "Cậu bé và con rồng - Chương 1" and "Nguồn:" in metadata["description"]
    with av.open(str(video)) as container:
        streams = container.streams
        assert (streams.video[0].width, streams.video[0].height) == (1080, 1920)
    video_seconds, audio_seconds = played_seconds(video)
    assert abs(video_seconds - audio_seconds) < 0.1
    assert done.outputs["WaitForUpload"]["youtube_url"] == video.resolve().as_uri()
    assert not (data / "work" / job_id).exists()  # cleaned up
    assert not any((data / "tasks").iterdir())  # task folders removed when the waits ended
    assert counter.read_count(data, day) == 1
    assert [cp.state for cp in saved][-3:] == ["IncrementCounter", "CheckMoreVideos", "Done"]
