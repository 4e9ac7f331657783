"""The Shorts cut (SHORTS_CUT): the chapter's opening in 9:16, whole segments up to
SHORTS_SECONDS, judged by the gate and published after the video with a link to it."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from services.pipeline import publishing
from services.pipeline.engine.definition import load_definition
from services.pipeline.engine.machine import Checkpoint, Machine
from services.pipeline.jobs.run_document import PipelineRun
from services.pipeline.providers.fetch import sample_chapter
from services.pipeline.stages import embedded_stages
from services.pipeline.stages.quota import vietnam_today
from services.pipeline.tasks.render_task import opening_count
from services.scheduler.clock import utc_now
from tests.pipeline.stage_context import RecordingContext


@pytest.mark.parametrize(
    ("seconds", "limit", "count"),
    [
        ([20.0, 25.0, 30.0], 60, 2),  # whole segments only: the third would pass 60 s
        ([20.0, 25.0, 15.0, 1.0], 60, 3),  # exactly 60 s fits
        ([70.0, 5.0], 60, 1),  # a long opening segment alone, still a Short
        ([200.0], 60, 0),  # longer than YouTube takes: no Shorts cut
        ([], 60, 0),
    ],
)
def test_the_opening_is_whole_segments_up_to_the_limit(seconds: list[float], limit: int, count: int) -> None:
    assert opening_count(seconds, limit) == count


def test_the_shorts_title_and_description_point_at_the_video() -> None:
    assert publishing.shorts_title("Cậu bé và con rồng - Chương 1") == "Cậu bé và con rồng - Chương 1 #Shorts"
    long = publishing.shorts_title("Một tựa đề rất dài " * 10)
    assert len(long) <= 100 and long.endswith(" #Shorts") and "  " not in long
    script = {"description": "Chương đầu.", "writer": "template"}
    source = {"credits": "MangaDex, nhóm dịch Rồng Xanh"}
    text = publishing.describe_shorts("https://www.youtube.com/watch?v=abc", script, source)
    assert text.splitlines()[0] == "Xem cả chương: https://www.youtube.com/watch?v=abc"
    assert text.endswith("Nguồn: MangaDex, nhóm dịch Rồng Xanh")
    local = publishing.describe_shorts("file:///srv/data/published/x.mp4", script, source)
    assert "/srv" not in local and local.startswith("Xem cả chương trên kênh.")


async def test_a_video_with_its_shorts_cut_is_published_and_the_cut_links_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("PIPELINE_SETTINGS_FILE", str(tmp_path / "none.toml"))
    for name in ("SAMPLES_DIR", "VIDEO_FORMAT", "MUSIC_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHORTS_CUT", "true")
    monkeypatch.setenv("SHORTS_SECONDS", "20")
    sample_chapter.make_chapter(data / "samples", panels=8)
    definition = load_definition()
    machine = Machine(definition, embedded_stages(definition), save=_discard, clock=utc_now,
                      context=RecordingContext(), hooks=PipelineRun())
    done = await machine.run(Checkpoint(manga="next"))
    assert done.state == "Done", done.error
    folder = data / "published" / vietnam_today().isoformat()
    job = done.video_job_id
    full, short = folder / f"{job}.mp4", folder / f"{job}.shorts.mp4"
    with av.open(str(full)) as a, av.open(str(short)) as b:
        assert (a.streams.video[0].width, a.streams.video[0].height) == (1920, 1080)
        assert (b.streams.video[0].width, b.streams.video[0].height) == (1080, 1920)
        full_seconds, short_seconds = a.duration / av.time_base, b.duration / av.time_base
    assert short_seconds < full_seconds
    about = json.loads((folder / f"{job}.shorts.json").read_text(encoding="utf-8"))
    assert about["title"].endswith(" #Shorts") and about["full_video"] == full.name
    assert about["video"] == short.name
    upload = done.outputs["WaitForUpload"]
    assert upload["youtube_url"] == full.resolve().as_uri() and upload["shorts_url"] == short.resolve().as_uri()
    gate = done.outputs["CheckVideo"]
    assert gate["passed"] and gate["shorts_figures"]["height"] == 1920
    assert gate["shorts_figures"]["duration_seconds"] <= 20 + 1 / 30  # whole segments, up to SHORTS_SECONDS


async def _discard(cp: Checkpoint) -> None:
    return None
