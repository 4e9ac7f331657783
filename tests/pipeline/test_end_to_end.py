"""One video through the machine on the embedded defaults: real stages, real worker
processes, a real MP4 published, the workspace cleaned and the day counted."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from services.pipeline.engine.definition import load_definition
from services.pipeline.engine.machine import Checkpoint, Machine
from services.pipeline.jobs.run_document import PipelineRun
from services.pipeline.providers.fetch import sample_chapter
from services.pipeline.stages import counter, embedded_stages
from services.pipeline.stages.quota import vietnam_today
from services.scheduler.clock import utc_now
from tests.pipeline.media_probe import played_seconds
from tests.pipeline.stage_context import RecordingContext

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def save_frames(video: Path, named: dict[str, float]) -> dict[str, Path]:
    """The frames shown at the given seconds, saved as PNGs under test-artifacts/ for a reviewer."""
    ARTIFACTS.mkdir(exist_ok=True)
    saved, wanted = {}, sorted(named.items(), key=lambda item: item[1])
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            while wanted and (frame.time or 0.0) >= wanted[0][1]:
                name, _ = wanted.pop(0)
                saved[name] = ARTIFACTS / f"{name}.png"
                frame.to_image().save(saved[name])
            if not wanted:
                break
    return saved


def first_cut(video: Path) -> float:
    """When the picture first changes wholesale (the first cut), in seconds."""
    previous = None
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            small = frame.reformat(width=96, height=54, format="gray").to_ndarray().astype(np.int16)
            if previous is not None and np.abs(small - previous).mean() > 5:
                return float(frame.time)
            previous = small
    raise AssertionError("no cut in the video")


@pytest.fixture
def data(tmp_path: Path, monkeypatch) -> Path:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.delenv("SAMPLES_DIR", raising=False)
    monkeypatch.delenv("DAILY_QUOTA", raising=False)
    monkeypatch.setenv("VIDEO_FORMAT", "shorts")
    sample_chapter.make_chapter(data_dir / "samples", panels=2)
    return data_dir


async def run_machine(data: Path) -> tuple[Checkpoint, list[Checkpoint]]:
    """One video through the machine on the embedded stages; its end and every checkpoint."""
    saved: list[Checkpoint] = []

    async def save(cp: Checkpoint) -> None:
        saved.append(cp)

    definition = load_definition()
    machine = Machine(
        definition, embedded_stages(definition), save=save, clock=utc_now, context=RecordingContext(),
        hooks=PipelineRun(),
    )
    return await machine.run(Checkpoint(manga="next")), saved


async def test_a_video_is_rendered_published_and_counted(data: Path) -> None:
    done, saved = await run_machine(data)
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
    gate = done.outputs["CheckVideo"]  # the gate passed it on its figures before the upload
    assert gate["passed"] and gate["figures"]["height"] == 1920 and gate["figures"]["frozen_seconds"] <= 3
    assert not (data / "work" / job_id).exists()  # cleaned up
    assert not any((data / "tasks").iterdir())  # task folders removed when the waits ended
    assert counter.read_count(data, day) == 1
    assert [cp.state for cp in saved][-3:] == ["IncrementCounter", "CheckMoreVideos", "Done"]
    (frame,) = save_frames(video, {"demo-shorts-frame": 1.0}).values()
    with av.open(str(video)) as container:
        assert frame.stat().st_size > 0 and container.streams.video[0].height == 1920


async def test_the_demo_chapter_renders_its_cut_panels_framed_and_a_reviewer_can_see_them(
    tmp_path: Path, monkeypatch
) -> None:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.delenv("SAMPLES_DIR", raising=False)
    monkeypatch.delenv("VIDEO_FORMAT", raising=False)
    sample_chapter.make_chapter(data_dir / "samples", panels=4)  # one manga page of four panels
    done, _ = await run_machine(data_dir)
    assert done.state == "Done", done.error
    assert done.outputs["CheckVideo"]["passed"]
    video = data_dir / "published" / vietnam_today().isoformat() / f"{done.video_job_id}.mp4"
    cut = first_cut(video)
    frames = save_frames(video, {"demo-first-panel": 1.0, "demo-after-cut": cut + 0.5})
    with av.open(str(video)) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (1920, 1080)
    for path in frames.values():
        with Image.open(path) as image:
            picture = np.asarray(image.convert("L"), dtype=float)
        assert picture[:, :100].std() > 2  # the panel's blurred copy beside it, not a flat bar
    assert 1.5 < cut < 15
