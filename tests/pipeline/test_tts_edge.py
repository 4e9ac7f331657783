"""edge-tts narration against a local websocket server speaking the service's framing.

The real ``edge_tts.Communicate`` runs (its handshake, its frame parser, its 403 handling);
only ``edge_tts.communicate.WSS_URL`` points at ``ws://127.0.0.1:<port>``. Backoff waits go
to a recorder instead of the clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import string
import subprocess
import wave
from pathlib import Path
from xml.sax.saxutils import unescape

import edge_tts.communicate
import imageio_ffmpeg
import pytest
from aiohttp import WSMsgType, web
from edge_tts.drm import DRM

from services.pipeline.providers.fetch import sample_chapter
from services.pipeline.providers.render.render_local import plan
from services.pipeline.providers.tts import tts_edge
from services.pipeline.providers.tts.tts_edge import (
    Cue,
    EdgeTTSUnavailable,
    EdgeVoice,
    backoff_seconds,
    cues_from_words,
    speak_segments,
    ticks_to_seconds,
)
from services.pipeline.stages import fetcher, scriptgen, ttsgen
from services.pipeline.tasks import render_task
from services.pipeline.workspace import Workspace

from .stage_context import RecordingContext

MP3_SECONDS = 1.2
FIRST_TICKS = 1_000_000  # the first word starts at 0.1 s
STEP_TICKS = 2_000_000  # one word every 0.2 s
WORD_TICKS = 1_500_000  # each lasts 0.15 s
HOAI_MY = "Microsoft Server Speech Text to Speech Voice (vi-VN, HoaiMyNeural)"
NAM_MINH = "Microsoft Server Speech Text to Speech Voice (vi-VN, NamMinhNeural)"


# -- pure -----------------------------------------------------------------------------------


def _words(spoken: str, step: float = 0.2, first: float = 0.1) -> list[tuple[float, float, str]]:
    return [(round(first + i * step, 3), 0.15, word) for i, word in enumerate(spoken.split())]


@pytest.mark.parametrize(
    ("ticks", "seconds"),
    [(0, 0.0), (1, 1e-7), (10_000_000, 1.0), (1_000_000, 0.1), (123_456_789, 12.3456789)],
)
def test_ticks_are_100_nanoseconds(ticks: int, seconds: float) -> None:
    assert ticks_to_seconds(ticks) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("attempt", "base", "jitter", "expected"),
    [(1, 1.0, 0.0, 1.0), (2, 1.0, 0.0, 2.0), (3, 1.0, 0.0, 4.0), (3, 0.5, 0.1, 2.2), (9, 1.0, 0.0, 30.0)],
)
def test_backoff_doubles_and_is_capped(attempt: int, base: float, jitter: float, expected: float) -> None:
    assert backoff_seconds(attempt, base, jitter=jitter) == pytest.approx(expected)


def test_lines_break_at_max_chars() -> None:
    cues = cues_from_words(_words("một hai ba bốn năm sáu bảy tám chín mười"), max_chars=12)
    assert [cue.text for cue in cues] == ["một hai ba", "bốn năm sáu", "bảy tám chín", "mười"]
    assert all(len(cue.text) <= 12 for cue in cues)
    assert (cues[0].start, cues[0].end) == (0.1, 0.65)
    assert (cues[1].start, cues[1].end) == (0.7, 1.25)


def test_lines_break_at_a_pause_and_at_max_seconds() -> None:
    words = [(0.0, 0.3, "Xin"), (0.4, 0.3, "chào"), (1.6, 0.3, "các"), (2.0, 0.3, "bạn")]
    assert [c.text for c in cues_from_words(words)] == ["Xin chào", "các bạn"]
    assert [c.text for c in cues_from_words(words, gap_seconds=2.0)] == ["Xin chào các bạn"]
    slow = _words("một hai ba bốn năm sáu", step=1.0)
    assert [c.text for c in cues_from_words(slow, max_seconds=2.5, gap_seconds=1.0)] == [
        "một hai ba",
        "bốn năm sáu",
    ]


def test_punctuation_is_restored_from_the_original_text() -> None:
    text = "«Xin chào!» Hôm nay, chúng ta có 3 người bạn mới. Tom & Jerry trở lại…"
    spoken = "xin chào Hôm nay chúng ta có ba người bạn mới Tom Jerry trở lại"
    cues = cues_from_words(_words(spoken), text=text)
    assert [cue.text for cue in cues] == [
        "«Xin chào!»",
        "Hôm nay, chúng ta có 3 người bạn mới.",
        "Tom & Jerry trở lại…",
    ]
    assert (cues[0].start, cues[0].end) == (0.1, 0.45)
    assert (cues[1].start, cues[1].end) == (0.5, 2.25)


def test_a_comma_ends_a_line_only_once_it_is_long() -> None:
    text = "Vâng, anh ấy đã đi thật xa, rồi không bao giờ trở về nữa."
    spoken = "Vâng anh ấy đã đi thật xa rồi không bao giờ trở về nữa"
    cues = cues_from_words(_words(spoken), text=text)
    assert [cue.text for cue in cues] == ["Vâng, anh ấy đã đi thật xa,", "rồi không bao giờ trở về nữa."]


def test_alignment_falls_back_to_the_spoken_words() -> None:
    words = _words("Xin chào các bạn")
    assert [c.text for c in cues_from_words(words, text="something else entirely")] == ["Xin chào các bạn"]
    punctuated = [*_words("Xin chào"), (0.5, 0.0, "!")]
    assert [c.text for c in cues_from_words(punctuated)] == ["Xin chào!"]
    assert cues_from_words([]) == []


def test_cue_as_json() -> None:
    assert Cue(0.1, 0.85, "Xin chào!").as_json() == {"start": 0.1, "end": 0.85, "text": "Xin chào!"}


@pytest.mark.parametrize(
    "options", [{"concurrency": 0}, {"attempts": 0}, {"base_delay": -1.0}, {"timeout_seconds": 0.0}]
)
def test_voice_settings_are_checked(options: dict) -> None:
    with pytest.raises(ValueError):
        EdgeVoice(**options)


# -- a local edge-tts service ----------------------------------------------------------------


def _frame(path: str, body: str = "{}") -> str:
    return (
        "X-RequestId:0123456789abcdef0123456789abcdef\r\n"
        "Content-Type:application/json; charset=utf-8\r\n"
        f"Path:{path}\r\n\r\n{body}"
    )


def _audio_frame(data: bytes, content_type: str | None = "audio/mpeg") -> bytes:
    headers = "X-RequestId:0123456789abcdef0123456789abcdef\r\n"
    if content_type:
        headers += f"Content-Type:{content_type}\r\n"
    head = (headers + "Path:audio\r\n").encode()
    return len(head).to_bytes(2, "big") + head + data


def _spoken_words(ssml: str) -> list[str]:
    """The words the service would report: bare, without punctuation (as edge-tts does)."""
    inner = re.search(r"<prosody[^>]*>(.*)</prosody>", ssml, re.S)
    assert inner is not None
    stripped = (word.strip(string.punctuation + "«»…“”") for word in unescape(inner.group(1)).split())
    return [word for word in stripped if word]


class EdgeServer:
    """Answers each connection per ``script`` (then ``default``): audio, silent, 403 or hang."""

    def __init__(self, mp3: bytes) -> None:
        self.mp3 = mp3
        self.script: list[str] = []
        self.default = "audio"
        self.latency = 0.0
        self.connections = 0
        self.open = 0
        self.max_open = 0
        self.configs: list[str] = []
        self.ssml: list[str] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.connections += 1
        behaviour = self.script.pop(0) if self.script else self.default
        if behaviour == "403":
            return web.Response(status=403, text="Forbidden")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            self.configs.append(await ws.receive_str())
            ssml = await ws.receive_str()
            self.ssml.append(ssml)
            if behaviour == "hang":
                await ws.receive()  # until the client gives up and closes
                return ws
            if self.latency:
                await asyncio.sleep(self.latency)  # the service thinking: lets connections overlap
            await ws.send_str(_frame("turn.start", '{"context":{"serviceTag":"x"}}'))
            if behaviour == "audio":
                await self._speak(ws, ssml)
            await ws.send_str(_frame("turn.end"))
            message = await ws.receive()  # the client closes after turn.end
            assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
        finally:
            self.open -= 1
        return ws

    async def _speak(self, ws: web.WebSocketResponse, ssml: str) -> None:
        for number, word in enumerate(_spoken_words(ssml)):
            event = {
                "Type": "WordBoundary",
                "Data": {
                    "Offset": FIRST_TICKS + number * STEP_TICKS,
                    "Duration": WORD_TICKS,
                    "text": {"Text": word, "Length": len(word), "BoundaryType": "WordBoundary"},
                },
            }
            await ws.send_str(_frame("audio.metadata", json.dumps({"Metadata": [event]})))
        for start in range(0, len(self.mp3), 2048):
            await ws.send_bytes(_audio_frame(self.mp3[start : start + 2048]))
        await ws.send_bytes(_audio_frame(b"", content_type=None))  # the end-of-audio marker


@pytest.fixture(scope="module")
def mp3(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("mp3") / "sine.mp3"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"]
        + ["-i", f"sine=frequency=220:duration={MP3_SECONDS}", "-ac", "1", "-ar", "24000", "-b:a", "48k"]
        + [str(path)],
        check=True,
    )
    return path.read_bytes()


@pytest.fixture
async def server(mp3: bytes, monkeypatch: pytest.MonkeyPatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "WS_PROXY", "WSS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setattr(DRM, "clock_skew_seconds", 0.0)  # a 403 makes the library adjust it
    edge = EdgeServer(mp3)
    app = web.Application()
    app.router.add_get("/edge/v1", edge.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    monkeypatch.setattr(
        edge_tts.communicate, "WSS_URL", f"ws://127.0.0.1:{port}/edge/v1?TrustedClientToken=x"
    )
    yield edge
    await runner.cleanup()


class Sleeps:
    """A stand-in for ``asyncio.sleep`` that only records the backoff."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _assert_backoff(waits: list[float], expected: list[float]) -> None:
    assert len(waits) == len(expected)
    for wait, base in zip(waits, expected, strict=True):
        assert base <= wait <= base * (1 + tts_edge.JITTER)


# -- speaking -------------------------------------------------------------------------------


async def test_a_segment_becomes_a_wav_with_cues(server: EdgeServer, tmp_path: Path) -> None:
    text = "Xin chào, các bạn! Tom & Jerry <3 trở lại."
    voice = EdgeVoice(rate="+10%", pitch="-5Hz")
    [segment] = await speak_segments([text], tmp_path / "audio", voice, sleep=Sleeps(), job_id="job-1")

    assert len(server.ssml) == 1
    ssml = server.ssml[0]
    assert f"<voice name='{HOAI_MY}'>" in ssml
    assert "rate='+10%'" in ssml and "pitch='-5Hz'" in ssml
    assert "Xin chào, các bạn! Tom &amp; Jerry &lt;3 trở lại." in ssml
    assert '"wordBoundaryEnabled":"true"' in server.configs[0]

    assert segment.index == 1 and segment.voice == "vi-VN-HoaiMyNeural"
    assert segment.path == tmp_path / "audio" / "seg-001.wav"
    with wave.open(str(segment.path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24_000)
        assert wav.getnframes() / wav.getframerate() == pytest.approx(segment.seconds)
    assert segment.seconds == pytest.approx(MP3_SECONDS, abs=0.06)

    # words: Xin chào các bạn Tom Jerry 3 trở lại, one every 0.2 s from 0.1 s, 0.15 s each
    assert segment.cues == (
        Cue(0.1, 0.85, "Xin chào, các bạn!"),
        Cue(0.9, 1.85, "Tom & Jerry <3 trở lại."),
    )
    record = json.loads((tmp_path / "audio" / "seg-001.cues.json").read_text(encoding="utf-8"))
    assert record["version"] == tts_edge.CUES_VERSION
    assert record["voice"] == "vi-VN-HoaiMyNeural"
    assert record["seconds"] == pytest.approx(segment.seconds, abs=0.001)
    assert record["cues"] == [cue.as_json() for cue in segment.cues]
    assert sorted(p.name for p in (tmp_path / "audio").iterdir()) == ["seg-001.cues.json", "seg-001.wav"]


async def test_no_audio_is_retried_with_backoff(server: EdgeServer, tmp_path: Path) -> None:
    server.script = ["silent", "silent"]
    sleeps = Sleeps()
    [segment] = await speak_segments(["Xin chào."], tmp_path, EdgeVoice(base_delay=0.5), sleep=sleeps)
    assert server.connections == 3
    _assert_backoff(sleeps.waits, [0.5, 1.0])
    assert segment.voice == "vi-VN-HoaiMyNeural"
    assert segment.cues == (Cue(0.1, 0.45, "Xin chào."),)


async def test_a_refused_handshake_falls_back_to_the_second_voice(server: EdgeServer, tmp_path: Path) -> None:
    # each attempt is two connections: edge-tts itself retries a 403 once after fixing its clock
    server.script = ["403"] * 4
    sleeps = Sleeps()
    voice = EdgeVoice(attempts=2)
    [segment] = await speak_segments(["Xin chào."], tmp_path, voice, sleep=sleeps)
    assert segment.voice == "vi-VN-NamMinhNeural"
    assert server.connections == 5
    assert f"<voice name='{NAM_MINH}'>" in server.ssml[0]
    _assert_backoff(sleeps.waits, [1.0])
    record = json.loads((tmp_path / "seg-001.cues.json").read_text(encoding="utf-8"))
    assert record["voice"] == "vi-VN-NamMinhNeural"


async def test_retries_and_the_fallback_log_as_before(
    server: EdgeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.script = ["silent", "silent"]
    voice = EdgeVoice(attempts=2)
    with caplog.at_level(logging.WARNING, logger=tts_edge.__name__):
        [segment] = await speak_segments(["Xin chào."], tmp_path, voice, sleep=Sleeps(), job_id="job-1")
    assert segment.voice == "vi-VN-NamMinhNeural"
    lines = [r.getMessage() for r in caplog.records if r.name == tts_edge.__name__]
    assert len(lines) == 3
    assert re.fullmatch(
        r"segment 001: vi-VN-HoaiMyNeural attempt 1/2 failed \(NoAudioReceived: .*\); retrying in 1\.[01] s",
        lines[0],
    )
    assert re.fullmatch(
        r"segment 001: vi-VN-HoaiMyNeural attempt 2/2 failed \(NoAudioReceived: .*\)", lines[1]
    )
    assert lines[2] == (
        "segment 001: voice vi-VN-HoaiMyNeural kept failing; trying the fallback voice vi-VN-NamMinhNeural"
    )
    assert {r.job_id for r in caplog.records if r.name == tts_edge.__name__} == {"job-1"}


async def test_a_service_that_always_refuses_is_unavailable(server: EdgeServer, tmp_path: Path) -> None:
    server.default = "403"
    sleeps = Sleeps()
    with pytest.raises(EdgeTTSUnavailable) as caught:
        await speak_segments(["Một.", "Hai."], tmp_path, EdgeVoice(concurrency=1), sleep=sleeps)
    error = caught.value
    message = str(error)
    assert "segment 001" in message
    assert "vi-VN-HoaiMyNeural" in message and "vi-VN-NamMinhNeural" in message
    assert "HTTP 403" in message
    assert (error.segment, error.voices, error.attempts) == (
        1,
        ("vi-VN-HoaiMyNeural", "vi-VN-NamMinhNeural"),
        4,
    )
    _assert_backoff(sleeps.waits, [1.0, 2.0, 4.0, 1.0, 2.0, 4.0])
    assert server.connections == 16  # segment 2 never got its turn: it was cancelled
    assert list(tmp_path.iterdir()) == []


async def test_a_timeout_is_retried_then_reported(server: EdgeServer, tmp_path: Path) -> None:
    server.default = "hang"
    sleeps = Sleeps()
    voice = EdgeVoice(fallback_voice=None, attempts=2, timeout_seconds=0.2)
    with pytest.raises(EdgeTTSUnavailable, match="segment 001.*vi-VN-HoaiMyNeural.*timed out"):
        await speak_segments(["Xin chào."], tmp_path, voice, sleep=sleeps)
    assert server.connections == 2
    _assert_backoff(sleeps.waits, [1.0])


async def test_at_most_concurrency_segments_are_spoken_at_once(server: EdgeServer, tmp_path: Path) -> None:
    server.latency = 0.05
    texts = [f"Đoạn số {n}." for n in range(1, 6)]
    segments = await speak_segments(texts, tmp_path, EdgeVoice(concurrency=2), sleep=Sleeps())
    assert server.connections == 5
    assert server.max_open == 2
    assert [s.index for s in segments] == [1, 2, 3, 4, 5]
    assert [s.cues[0].text for s in segments] == texts
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == [f"seg-00{n}.wav" for n in range(1, 6)]


async def test_spoken_segments_are_not_spoken_again(server: EdgeServer, tmp_path: Path) -> None:
    texts = ["Một.", "Hai."]
    first = await speak_segments(texts, tmp_path, EdgeVoice(), sleep=Sleeps())
    assert server.connections == 2
    again = await speak_segments(texts, tmp_path, EdgeVoice(), sleep=Sleeps())
    assert server.connections == 2
    assert again == first

    await speak_segments(texts, tmp_path, EdgeVoice(), sleep=Sleeps(), skip_existing=False)
    assert server.connections == 4


async def test_an_unreadable_previous_result_is_spoken_again(server: EdgeServer, tmp_path: Path) -> None:
    await speak_segments(["Một."], tmp_path, EdgeVoice(), sleep=Sleeps())
    (tmp_path / "seg-001.cues.json").write_text("{not json", encoding="utf-8")
    [segment] = await speak_segments(["Một."], tmp_path, EdgeVoice(), sleep=Sleeps())
    assert server.connections == 2
    assert segment.cues == (Cue(0.1, 0.25, "Một."),)


async def test_an_empty_segment_is_refused_before_any_connection(server: EdgeServer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="segment 002 is empty"):
        await speak_segments(["Một.", "  "], tmp_path, EdgeVoice(), sleep=Sleeps())
    assert server.connections == 0


# -- through the stage and the renderer --------------------------------------------------------


async def test_generate_tts_on_edge_tts_gives_the_render_word_timed_subtitles(
    server: EdgeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("PIPELINE_SETTINGS_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("TTS_ENGINE", "edge-tts")
    monkeypatch.setenv("SCRIPT_WRITER", "template")
    monkeypatch.setenv("VIDEO_FORMAT", "shorts")
    monkeypatch.delenv("SAMPLES_DIR", raising=False)
    sample_chapter.make_chapter(data / "samples", panels=2)
    # the stages run in a worker thread with their own event loop, as the machine runs them
    context = RecordingContext(data_dir=data)
    job_id = (await asyncio.to_thread(fetcher.handler, {}, context))["job_id"]
    await asyncio.to_thread(scriptgen.handler, {"job_id": job_id}, context)
    answer = await asyncio.to_thread(ttsgen.handler, {"job_id": job_id}, context)
    assert answer == {
        "job_id": job_id,
        "audio_generated": True,
        "segment_count": 2,
        "continuation_token": None,
    }
    work = Workspace(data, job_id)
    speech = json.loads((work.root / "speech.json").read_text(encoding="utf-8"))
    assert speech["engine"] == "edge-tts" and not speech["placeholder"]
    first = speech["segments"][0]
    assert first["voice"] == "vi-VN-HoaiMyNeural" and first["audio"] == "seg-001.wav"
    assert len(first["cues"]) > 1  # a long sentence is cut into lines at the spoken words
    assert first["cues"][0]["text"].startswith("Chào mừng các bạn")
    segment = render_task._segment(work, first)
    shots = plan([segment], [first["seconds"]])
    assert [s.subtitle for s in shots] == [c["text"] for c in first["cues"] if c["start"] < first["seconds"]]

    render_task.render(work, context.settings)
    assert work.video.exists() and work.video.stat().st_size > 0
