"""Going live without code changes: every remote endpoint is a setting, so test servers on
loopback stand in for MangaDex, an OpenAI-compatible LLM and YouTube.

The real pipeline runs (``Machine`` with the embedded stages, real render and upload
worker processes, which inherit the environment), configured only through settings in the
environment; the servers (``loopback_services.py``) are real HTTP servers on 127.0.0.1 and
record what the real clients sent them. ``doctor`` is checked the same way, as a process.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.pipeline.doctor import MANGADEX_POLICY
from services.pipeline.engine.definition import load_definition
from services.pipeline.engine.machine import Checkpoint, Machine
from services.pipeline.jobs.run_document import PipelineRun
from services.pipeline.providers.fetch.mangadex import DEFAULT_USER_AGENT, LEDGER
from services.pipeline.settings import PipelineSettings
from services.pipeline.stages import counter, embedded_stages, fetcher
from services.pipeline.stages.quota import vietnam_today
from services.scheduler.clock import utc_now
from tests.pipeline.loopback_services import (
    LoopbackMangaDex,
    LoopbackOpenAI,
    LoopbackYouTube,
    chapter_data,
    manga_data,
)
from tests.pipeline.stage_context import RecordingContext

ROOT = Path(__file__).resolve().parents[2]
MANGA = "a1c7c817-4e59-43b7-9365-09675a149a6f"
GROUP_ID = "4b1ee8c5-1f3b-4c6a-9d0f-2c9b6f2a7e11"
GROUP = "Nhóm Dịch Mây Trắng"
EXTERNAL = "0f2d7c3e-55aa-4c1b-8e0d-1a2b3c4d5e6f"  # hosted elsewhere: never to be fetched
CHAPTER_1 = "5d1e8a7b-3c2f-4e6d-9a0b-7c8d9e0f1a2b"
CHAPTER_2 = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
PAGES = ["1-3f0a9c1d.png", "2-77b1e2c3.png", "3-c4d5e6f7.png"]
MODEL = "loopback-narrator"
KIB = 1024

# every pipeline setting, plus what the clients read on their own: none may leak in from the
# machine running the tests (a real key, a proxy that would take the loopback traffic away)
CLEARED = (
    *(name.upper() for name in PipelineSettings.model_fields),
    "OPENAI_API_KEY",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "SAMPLES_DIR",
    "DAILY_QUOTA",
    "VIDEO_FORMAT",
    "GOOGLE_CLOUD_UNIVERSE_DOMAIN",
    *(f"{name}_proxy" for name in ("http", "https", "all", "no")),
    *(f"{name}_PROXY" for name in ("HTTP", "HTTPS", "ALL", "NO")),
)


@pytest.fixture
def mangadex() -> Iterator[LoopbackMangaDex]:
    def chapter(chapter_id: str, number: str, pages: int, **extra: Any) -> dict[str, Any]:
        return chapter_data(
            chapter_id, number, manga_id=MANGA, group_id=GROUP_ID, group=GROUP, pages=pages, **extra
        )

    feed = [
        chapter(EXTERNAL, "0.5", 3, external_url="https://comikey.com/read/dragon-boy/0-5/"),
        chapter(CHAPTER_1, "1", len(PAGES), title="Cuộc gặp gỡ"),
        chapter(CHAPTER_2, "2", 2),
    ]
    files = {EXTERNAL: ["1-ext.png"], CHAPTER_1: PAGES, CHAPTER_2: ["1-aa.png", "2-bb.png"]}
    with LoopbackMangaDex([manga_data(MANGA, "Dragon Boy", "Cậu bé rồng")], {MANGA: feed}, files) as server:
        yield server


@pytest.fixture
def llm() -> Iterator[LoopbackOpenAI]:
    with LoopbackOpenAI() as server:
        yield server


@pytest.fixture
def youtube() -> Iterator[LoopbackYouTube]:
    # keeps at most 64 KiB of each PUT: the client goes on from each 308's Range
    with LoopbackYouTube(accept_per_put=64 * KIB) as server:
        yield server


def write_token_file(path: Path, token_uri: str) -> Path:
    """An authorized-user token file as ``youtube-auth`` writes it, its access token expired."""
    token = {
        "token": "old-access-token",
        "refresh_token": "r",
        "token_uri": token_uri,
        "client_id": "c",
        "client_secret": "s",
        "scopes": ["https://www.googleapis.com/auth/youtube.upload"],
        "expiry": "2000-01-01T00:00:00Z",
    }
    path.write_text(json.dumps(token))
    path.chmod(0o600)
    return path


@pytest.fixture
def token_file(tmp_path: Path, youtube: LoopbackYouTube) -> Path:
    return write_token_file(tmp_path / "youtube-token.json", youtube.token_uri)


@pytest.fixture
def data(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mangadex: LoopbackMangaDex,
    llm: LoopbackOpenAI,
    youtube: LoopbackYouTube,
    token_file: Path,
) -> Path:
    """The pipeline pointed at the loopback services, by settings only (the environment)."""
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "data"
    settings = {
        "DATA_DIR": str(data_dir),
        "PIPELINE_SETTINGS_FILE": str(tmp_path / "none.toml"),  # no local config file
        "VIDEO_FORMAT": "shorts",
        "DAILY_QUOTA": "1",
        "FETCH_SOURCE": "mangadex",
        "MANGADEX_API_URL": mangadex.url,
        "MANGADEX_REPORT_URL": f"{mangadex.url}/report",
        "MANGA_IDS": json.dumps([MANGA]),
        "SCRIPT_WRITER": "openai",
        "OPENAI_BASE_URL": f"{llm.url}/v1",
        "OPENAI_MODEL": MODEL,
        "OPENAI_VISION": "true",
        "OPENAI_MAX_RETRIES": "0",
        "OPENAI_TIMEOUT_SECONDS": "30",
        "TTS_ENGINE": "local",
        "UPLOAD_TARGET": "youtube",
        "YOUTUBE_TOKEN_FILE": str(token_file),
        "YOUTUBE_API_URL": youtube.api_url,
        "YOUTUBE_PRIVACY": "private",
        "YOUTUBE_THUMBNAIL": "true",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return data_dir


class Rendered:
    """The rendered video's size and digest, read when the machine saves WaitForRender's end
    (the workspace, video included, is gone once the run is done)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.size: int | None = None
        self.sha256: str | None = None
        self.states: list[str] = []
        self.errors: list[dict[str, Any]] = []  # for a failing test's message

    async def save(self, cp: Checkpoint) -> None:
        self.states.append(cp.state)
        if cp.error and cp.error not in self.errors:
            self.errors.append(cp.error)
        if cp.state == "StartUploader" and cp.video_job_id and self.size is None:
            video = self.data_dir / "work" / cp.video_job_id / "video.mp4"
            content = video.read_bytes()
            self.size, self.sha256 = len(content), hashlib.sha256(content).hexdigest()


async def run_the_day(rendered: Rendered) -> Checkpoint:
    definition = load_definition()
    machine = Machine(
        definition, embedded_stages(definition), save=rendered.save, clock=utc_now, context=RecordingContext(),
        hooks=PipelineRun(),
    )
    return await machine.run(Checkpoint(manga="next", loop=True))


async def test_a_daily_run_publishes_from_loopback_services(
    data: Path, mangadex: LoopbackMangaDex, llm: LoopbackOpenAI, youtube: LoopbackYouTube, token_file: Path
) -> None:
    rendered = Rendered(data)
    done = await run_the_day(rendered)

    assert done.state == "Done", rendered.errors
    job_id = done.video_job_id
    assert job_id and done.outputs["WaitForUpload"]["youtube_url"] == "https://www.youtube.com/watch?v=vid123"
    assert rendered.states[-3:] == ["IncrementCounter", "CheckMoreVideos", "Done"]  # quota 1: one video

    # MangaDex: the feed asked the way the product promises, the external chapter was skipped
    feeds = mangadex.received("GET", f"/manga/{MANGA}/feed")
    assert len(feeds) == 1
    query = feeds[0].query
    assert query["translatedLanguage[]"] == ["vi"] and query["order[chapter]"] == ["asc"]
    assert query["includeExternalUrl"] == ["0"] and query["includeFuturePublishAt"] == ["0"]
    assert query["includes[]"] == ["scanlation_group"]
    assert mangadex.received("GET", "/manga")[0].query["ids[]"] == [MANGA]
    assert all(r.headers["user-agent"] == DEFAULT_USER_AGENT for r in mangadex.requests)
    assert "video-scheduler" in feeds[0].headers["user-agent"]
    assert mangadex.at_home_calls() == [CHAPTER_1]  # never EXTERNAL
    chapter_hash = mangadex.chapter_hash(CHAPTER_1)
    pages = mangadex.received("GET", prefix=f"/node/data/{chapter_hash}/")
    assert sorted(r.path.rsplit("/", 1)[1] for r in pages) == sorted(PAGES)
    # the node is 127.0.0.1, not *.mangadex.org: every image is reported to MangaDex@Home
    reports = mangadex.reports
    assert sorted(r["url"] for r in reports) == sorted(
        f"{mangadex.url}/node/data/{chapter_hash}/{page}" for page in PAGES
    )
    assert all(r["success"] is True and r["cached"] is False and r["bytes"] > 0 for r in reports)
    ledger = json.loads((data / LEDGER).read_text())
    assert ledger[CHAPTER_1]["job_id"] == job_id and EXTERNAL not in ledger

    # the LLM: one strict json_schema request for the model, the panels as images: each of
    # the three pages holds two framed panels, and the fetch cut them apart
    (request,) = llm.received("POST", "/v1/chat/completions")
    asked = request.json()
    assert asked["model"] == MODEL
    assert asked["response_format"]["type"] == "json_schema"
    assert asked["response_format"]["json_schema"]["name"] == "narration_script"
    assert asked["response_format"]["json_schema"]["strict"] is True
    parts = [part for m in asked["messages"] if isinstance(m["content"], list) for part in m["content"]]
    images = [part["image_url"]["url"] for part in parts if part["type"] == "image_url"]
    assert len(images) == 2 * len(PAGES) and all(url.startswith("data:image/jpeg;base64,") for url in images)
    assert request.headers["authorization"] == "Bearer not-needed"  # no key leaks to a local server

    # YouTube: the token was refreshed on loopback and saved back, still 0600
    (refresh,) = youtube.token_requests()
    form = refresh.form()
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["r"]
    assert form["client_id"] == ["c"]
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert json.loads(token_file.read_text())["token"] == LoopbackYouTube.ACCESS_TOKEN

    # ... one videos.insert with the Vietnamese metadata and MangaDex's credits
    (initiation,) = youtube.initiations()
    assert initiation.param("part") == "snippet,status" and initiation.param("uploadType") == "resumable"
    assert initiation.headers["authorization"] == f"Bearer {LoopbackYouTube.ACCESS_TOKEN}"
    assert initiation.headers["x-upload-content-type"] == "video/mp4"
    assert initiation.headers["x-upload-content-length"] == str(rendered.size)
    body = initiation.json()
    snippet = body["snippet"]
    assert snippet["title"] == LoopbackOpenAI.TITLE
    assert GROUP in snippet["description"]
    assert f"https://mangadex.org/chapter/{CHAPTER_1}" in snippet["description"]
    assert "Nguồn: MangaDex" in snippet["description"]
    assert snippet["defaultLanguage"] == "vi" and snippet["defaultAudioLanguage"] == "vi"
    assert snippet["categoryId"] == "24" and "truyện tranh" in snippet["tags"]
    assert body["status"] == {
        "privacyStatus": "private",
        "selfDeclaredMadeForKids": False,
        "containsSyntheticMedia": True,
    }

    # ... the bytes, resumably: every 308's Range followed, the whole rendered file arrived
    (session,) = youtube.uploaded()
    assert rendered.size is not None and len(session.data) == rendered.size
    assert hashlib.sha256(session.data).hexdigest() == rendered.sha256
    chunks = youtube.chunks()
    assert len(chunks) == math.ceil(rendered.size / (64 * KIB)) > 1
    assert all(c.headers["authorization"] == f"Bearer {LoopbackYouTube.ACCESS_TOKEN}" for c in chunks)
    assert chunks[0].headers["content-range"] == f"bytes 0-{rendered.size - 1}/{rendered.size}"
    assert chunks[1].headers["content-range"] == f"bytes {64 * KIB}-{rendered.size - 1}/{rendered.size}"

    # ... and the thumbnail (the most striking panel, with the title)
    (thumbnail,) = youtube.received("POST", "/upload/youtube/v3/thumbnails/set")
    assert thumbnail.param("videoId") == "vid123" and thumbnail.body.startswith(b"\xff\xd8")

    # the day: the workspace cleaned, the video counted
    assert not (data / "work" / job_id).exists()
    assert counter.read_count(data, vietnam_today()) == 1


async def test_quota_exceeded_on_upload_ends_at_quota_reached_with_the_render_kept(
    data: Path, mangadex: LoopbackMangaDex, youtube: LoopbackYouTube
) -> None:
    youtube.quota_exceeded = True
    rendered = Rendered(data)
    done = await run_the_day(rendered)  # no PipelineFailed: the quota is a normal end

    assert done.state == "QuotaReached", done.error
    assert done.error is not None and done.error["Error"] == "YouTubeQuotaError"
    assert done.error["state"] == "WaitForUpload" and "quotaExceeded" in done.error["Cause"]
    video = data / "work" / str(done.video_job_id) / "video.mp4"
    assert video.exists() and video.stat().st_size == rendered.size  # kept for tomorrow's upload
    assert len(youtube.initiations()) == 1  # never retried: a retry would only burn quota
    assert youtube.chunks() == [] and youtube.received(prefix="/upload/youtube/v3/thumbnails") == []
    assert "IncrementCounter" not in done.outputs and "Cleanup" not in done.outputs
    assert counter.read_count(data, vietnam_today()) == 0

    # the kept job asking MangaDex again gets its own chapter back (GET /chapter/{id})
    event = {"job_id": done.video_job_id, "manga": "next"}
    again = await asyncio.to_thread(fetcher.handler, event, RecordingContext())  # as the machine calls it
    assert again["status"] == "success" and again["manga_id"] == MANGA
    (asked,) = mangadex.received("GET", f"/chapter/{CHAPTER_1}")
    assert asked.query["includes[]"] == ["scanlation_group", "manga"]
    assert mangadex.at_home_calls() == [CHAPTER_1, CHAPTER_1] and len(mangadex.received("GET", "/manga")) == 1


async def test_a_shorts_cut_is_uploaded_after_the_video_and_links_to_it(
    data: Path, mangadex: LoopbackMangaDex, llm: LoopbackOpenAI, youtube: LoopbackYouTube,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VIDEO_FORMAT", "landscape")
    monkeypatch.setenv("SHORTS_CUT", "true")
    monkeypatch.setenv("SHORTS_SECONDS", "15")
    rendered = Rendered(data)
    done = await run_the_day(rendered)
    assert done.state == "Done", rendered.errors
    full, short = youtube.initiations()  # the video first, then its Shorts cut
    assert full.json()["snippet"]["title"] == LoopbackOpenAI.TITLE
    snippet = short.json()["snippet"]
    assert snippet["title"] == f"{LoopbackOpenAI.TITLE} #Shorts"
    assert snippet["description"].startswith("Xem cả chương: https://www.youtube.com/watch?v=vid123\n\n")
    assert "Nguồn: MangaDex" in snippet["description"]  # the credits in the Short too
    assert short.json()["status"]["containsSyntheticMedia"] is True
    assert len(youtube.uploaded()) == 2
    (thumbnail,) = youtube.received("POST", "/upload/youtube/v3/thumbnails/set")  # the video's only
    assert thumbnail.param("videoId") == "vid123"
    upload = done.outputs["WaitForUpload"]
    assert upload["youtube_url"].endswith("vid123") and upload["shorts_url"].endswith("vid124")
    assert done.outputs["CheckVideo"]["shorts_figures"]["height"] == 1920
    gate = done.outputs["CheckVideo"]
    assert gate["shorts_figures"]["duration_seconds"] < gate["figures"]["duration_seconds"]  # the opening


def doctor(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, str(ROOT / "run_scheduler.py"), "doctor"],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_doctor_refreshes_the_youtube_token_against_the_token_endpoint(
    tmp_path: Path,
    mangadex: LoopbackMangaDex,
    llm: LoopbackOpenAI,
    youtube: LoopbackYouTube,
    token_file: Path,
) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(
        "\n".join(
            [
                'fetch_source = "mangadex"',
                f'mangadex_api_url = "{mangadex.url}"',
                f'manga_ids = ["{MANGA}"]',
                'upload_target = "youtube"',
                f'youtube_token_file = "{token_file}"',
                f'youtube_api_url = "{youtube.api_url}"',
                'tts_engine = "edge-tts"',
                f'openai_base_url = "{llm.url}/v1"',
                "",
            ]
        )
    )
    env = {"PIPELINE_SETTINGS_FILE": str(settings), "DATA_DIR": str(tmp_path / "data")}

    healthy = doctor(env)
    out = healthy.stdout
    assert healthy.returncode == 0, out + healthy.stderr
    lines = out.splitlines()
    assert f"fetch:  mangadex at {mangadex.url}, 1 manga id(s) from MANGA_IDS, chapters in vi" in lines
    assert any(line.startswith(f"script: openai at {llm.url}/v1, model gpt-4o-mini") for line in lines)
    assert any(line.startswith("tts:    edge-tts, voice vi-VN-HoaiMyNeural") for line in lines)
    assert f"upload: youtube, private, token {token_file}" in lines
    assert f"note:   {MANGADEX_POLICY}" in lines
    (token_line,) = [line for line in lines if "youtube token" in line]
    assert (
        token_line.strip().startswith("ok    youtube token") and "token refreshed, valid until" in token_line
    )
    (refresh,) = youtube.token_requests()
    assert refresh.form()["grant_type"] == ["refresh_token"] and refresh.form()["refresh_token"] == ["r"]
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    # doctor only refreshes: nothing else was asked of the services
    assert mangadex.requests == [] and llm.requests == [] and len(youtube.requests) == 1

    youtube.token_refused = True
    revoked = doctor(env)
    assert revoked.returncode == 1, revoked.stdout + revoked.stderr
    (token_line,) = [line for line in revoked.stdout.splitlines() if "youtube token" in line]
    assert token_line.strip().startswith("FAIL  youtube token")
    assert "invalid_grant" in token_line and "youtube-auth" in token_line
    assert "Traceback" not in revoked.stderr
    assert len(youtube.token_requests()) == 2
