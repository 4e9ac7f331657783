"""CheckVideo, the gate as a pipeline state: a rendered video that passes goes on with its
figures on the job; one that falls short raises VideoQualityError (which the definition
takes straight to HandleError) with every failing figure named, and nothing is uploaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.pipeline.engine.definition import load_definition
from services.pipeline.engine.policy import Catch, on_error
from services.pipeline.stages import check_video
from services.pipeline.stages.check_video import VideoQualityError
from services.pipeline.workspace import Workspace
from tests.pipeline.stage_context import RecordingContext
from tests.pipeline.test_quality_gate import GOOD_VIDEO, make

JOB = "job-gate"


def _workspace(data: Path, video: Path | None, texts: list[str]) -> Workspace:
    work = Workspace(data, JOB)
    work.root.mkdir(parents=True)
    segments = [{"text": text, "audio": f"seg-{n:03d}.wav", "cues": [{"start": 0, "end": 1, "text": text}]}
                for n, text in enumerate(texts)]
    (work.root / "speech.json").write_text(json.dumps({"segments": segments}, ensure_ascii=False), encoding="utf-8")
    if video is not None:
        video.replace(work.video)
    return work


def test_a_video_that_passes_goes_on_with_its_figures_on_the_job(tmp_path: Path) -> None:
    work = _workspace(tmp_path / "data", make(tmp_path / "good.mp4"), ["Xin chào các bạn!", "Chương một."])
    context = RecordingContext(data_dir=tmp_path / "data")
    answer = check_video.handler({"job_id": JOB}, context)
    assert answer["job_id"] == JOB and answer["passed"] is True
    assert answer["figures"]["cuts"] == 9 and answer["figures"]["video_profile"] == "High"
    ((job_id, fields),) = context.updates
    assert job_id == JOB and fields["quality"]["passed"] is True and fields["quality"]["failures"] == []
    assert fields["quality"]["figures"] == answer["figures"]
    assert work.video.exists()  # the gate reads the file, it does not touch it


def test_a_video_that_falls_short_is_refused_with_each_figure_named(tmp_path: Path) -> None:
    frozen = f"{GOOD_VIDEO},drawbox=enable='between(t,10,14)':color=gray:t=fill"
    bad = make(tmp_path / "bad.mp4", video=frozen, args=("-ar", "44100"))
    _workspace(tmp_path / "data", bad, ["Chữ này có 😀 không vẽ được"])
    context = RecordingContext(data_dir=tmp_path / "data")
    with pytest.raises(VideoQualityError) as refused:
        check_video.handler({"job_id": JOB}, context)
    cause = refused.value.cause
    assert refused.value.name == "VideoQualityError"
    assert "audio_rate is 44100, must be 48000" in cause and "frozen_seconds is" in cause
    assert "missing_glyphs is 😀" in cause and "\n" not in cause  # one line
    quality = context.updates[-1][1]["quality"]
    assert quality["passed"] is False
    assert {f["figure"] for f in quality["failures"]} == {"audio_rate", "frozen_seconds", "missing_glyphs"}


def test_no_video_is_a_plain_error_the_state_retries(tmp_path: Path) -> None:
    _workspace(tmp_path / "data", None, ["a"])
    with pytest.raises(FileNotFoundError, match="the render did not leave a video to check"):
        check_video.handler({"job_id": JOB}, RecordingContext(data_dir=tmp_path / "data"))


def test_the_definition_puts_the_gate_between_the_render_and_the_upload() -> None:
    definition = load_definition()
    assert definition.state("WaitForRender").next == "CheckVideo"
    gate = definition.state("CheckVideo")
    assert gate.next == "StartUploader"
    # a refused video is not measured again: straight to HandleError
    assert on_error(gate, "VideoQualityError", "short", [0] * len(gate.retry)) == Catch(
        next_state="HandleError", error="VideoQualityError", cause="short"
    )
