"""Embedded media backends: template narration, the tone voice, and a real MP4 from panels."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from services.pipeline.providers.fetch import sample_chapter
from services.pipeline.providers.render.narration_audio import measure_lufs
from services.pipeline.providers.render.render_local import Segment, frame_counts, render_video
from services.pipeline.providers.render.rhythm import PUSH_SECONDS
from services.pipeline.providers.script import script_template
from services.pipeline.providers.tts import tts_local
from services.pipeline.quality import measure
from tests.pipeline.media_probe import played_seconds


@pytest.mark.parametrize(
    ("durations", "counts"),
    [
        ([1.0, 1.0], [30, 30]),
        ([0.51, 0.51, 0.51], [15, 16, 15]),  # ends at 15.3 -> 15, 30.6 -> 31, 45.9 -> 46
        ([0.02] * 5, [1, 0, 1, 0, 1]),  # ends at 0.6, 1.2, 1.8, 2.4, 3.0 frames: rounding carried
        ([2.0166], [60]),
    ],
)
def test_frame_counts_carry_the_rounding_forward(durations, counts) -> None:
    assert frame_counts(durations) == counts
    assert abs(sum(counts) / 30 - sum(durations)) <= 0.5 / 30 + 1e-9


def test_template_narration_has_one_segment_per_panel() -> None:
    script = script_template.narrate(
        "Cậu bé và con rồng - Chương 1",
        ["p1.png", "p2.png", "p3.png"],
        {"p1.png": {"speaker": "Minh", "text": "Chào!"}, "p2.png": {"speaker": "", "text": "Gió thổi."}},
    )
    texts = [s["text"] for s in script["segments"]]
    assert texts[0] == "Chào mừng các bạn đến với Cậu bé và con rồng - Chương 1. Minh nói: Chào!"
    assert texts[1] == "Gió thổi."
    assert texts[2].startswith("Khung tranh thứ 3 tiếp tục câu chuyện.") and "hẹn gặp lại" in texts[2]
    assert [s["panel"] for s in script["segments"]] == ["p1.png", "p2.png", "p3.png"]
    assert script["tags"] and script["title"]


def test_the_tone_voice_lasts_as_long_as_the_text_and_is_marked_placeholder(tmp_path: Path) -> None:
    speech = tts_local.synthesize("Xin chào các bạn thân mến", tmp_path / "a.wav", engine="tone")
    assert speech.placeholder and speech.engine == "tone"
    assert speech.seconds == pytest.approx(tts_local.tone_seconds("Xin chào các bạn thân mến"), abs=0.01)
    longer = tts_local.synthesize(
        "một hai ba bốn năm sáu bảy tám chín mười", tmp_path / "b.wav", engine="tone"
    )
    assert longer.seconds > speech.seconds
    with pytest.raises(ValueError, match="empty narration"):
        tts_local.synthesize("  ", tmp_path / "c.wav")


def test_espeak_ng_speaks_vietnamese(tmp_path: Path) -> None:
    # espeak-ng is optional for the product; `make test` installs it so this runs
    assert shutil.which("espeak-ng"), "espeak-ng missing: run `make test`, which installs it"
    speech = tts_local.synthesize("Xin chào các bạn", tmp_path / "v.wav", engine="espeak-ng")
    assert speech.seconds > 0.5 and not speech.placeholder


def test_render_makes_an_mp4_whose_audio_and_video_end_together(tmp_path: Path) -> None:
    segments = []
    for index, panel in enumerate(sample_chapter.draw_panels(tmp_path / "panels", 3)):
        text = f"Đoạn {index + 1}: Minh và Lan gặp ông rồng trên núi."
        speech = tts_local.synthesize(text, tmp_path / f"s{index}.wav", engine="tone")
        segments.append(Segment(panel, text, speech.path))
    result = render_video(segments, tmp_path / "video.mp4", size=(640, 360))
    assert result.path.exists() and result.size == (640, 360)
    with av.open(str(result.path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert (video.codec_context.name, video.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (video.width, video.height) == (640, 360)
        assert (audio.codec_context.name, audio.codec_context.sample_rate) == ("aac", 48000)
    video_end, audio_end = played_seconds(result.path)
    assert abs(video_end - audio_end) < 1 / 30  # within one frame
    assert abs(video_end - sum(tts_local.tone_seconds(s.subtitle) for s in segments)) < 0.1
    head = result.path.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and head.find(b"moov") < max(head.find(b"mdat"), 4096)  # faststart
    integrated = measure_lufs(result.path)
    assert -16.0 <= integrated <= -12.0


@pytest.mark.parametrize("encoder", ["gop", "frames"])
def test_both_encoders_give_every_frame_and_regular_keyframes(tmp_path: Path, encoder: str) -> None:
    segments = []
    for index, panel in enumerate(sample_chapter.draw_panels(tmp_path / "panels", 2)):
        text = "một hai ba bốn năm sáu bảy tám chín mười" if index else "Xin chào"
        speech = tts_local.synthesize(text, tmp_path / f"s{index}.wav", engine="tone")
        segments.append(Segment(panel, text, speech.path))
    result = render_video(segments, tmp_path / f"{encoder}.mp4", size=(640, 360), encoder=encoder)
    keyframes, decoded = [], 0
    with av.open(str(result.path)) as container:
        for packet in container.demux(video=0):
            if packet.size:
                keyframes.append(packet.is_keyframe)
        container.seek(0)
        decoded = sum(1 for _ in container.decode(video=0))
    assert (
        decoded
        == len(keyframes)
        == result.frames
        == sum(frame_counts([tts_local.tone_seconds(s.subtitle) for s in segments]))
    )
    gaps = [i for i, key in enumerate(keyframes) if key]
    assert gaps[0] == 0 and max(b - a for a, b in zip(gaps, gaps[1:] + [len(keyframes)], strict=True)) <= 60


def test_an_unknown_encoder_is_refused(tmp_path: Path) -> None:
    speech = tts_local.synthesize("Xin chào", tmp_path / "a.wav", engine="tone")
    (panel,) = sample_chapter.draw_panels(tmp_path / "panels", 1)
    with pytest.raises(ValueError, match="unknown encoder 'magic'"):
        render_video([Segment(panel, "x", speech.path)], tmp_path / "x.mp4", encoder="magic")


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray").astype(np.int16) for f in container.decode(video=0)]


def test_push_motion_moves_every_frame_of_the_push_then_holds_where_it_ended(tmp_path: Path) -> None:
    segments = []
    for index, panel in enumerate(sample_chapter.draw_panels(tmp_path / "panels", 2)):
        text = "Minh và Lan gặp ông rồng hiền lành trên đỉnh núi cao."
        speech = tts_local.synthesize(text, tmp_path / f"s{index}.wav", engine="tone")
        segments.append(Segment(panel, text, speech.path))
    push = render_video(segments, tmp_path / "push.mp4", size=(640, 360), motion="push")
    still = render_video(segments, tmp_path / "still.mp4", size=(640, 360))
    assert push.frames == still.frames  # motion changes the pictures, not the timing
    moving, held = _frames(push.path), _frames(still.path)
    steps = round(PUSH_SECONDS * 30)
    change = [float(np.abs(b - a).mean()) for a, b in zip(moving, moving[1:steps])]
    assert min(change[2:-2]) > 0.2  # every frame of the push is a new picture (the encoder's own: < 0.05)
    assert max(float(np.abs(b - a).mean()) for a, b in zip(held, held[1:steps])) < 0.05  # the still holds
    assert float(np.abs(moving[steps] - moving[steps - 1]).mean()) < 1.0  # it settles, no jump
    assert float(np.abs(moving[steps + 10] - moving[steps + 3]).mean()) < 0.05  # then holds
    assert float(np.abs(moving[steps] - held[steps]).mean()) > 1.0  # closer than the still framing
    figures = measure(push.path).to_dict()
    assert figures["frozen_seconds"] <= 3 and figures["end_difference_seconds"] <= 1 / 30
    with pytest.raises(ValueError, match="MOTION must be one of none, push"):
        render_video(segments, tmp_path / "x.mp4", size=(640, 360), motion="zoom")
