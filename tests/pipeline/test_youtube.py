"""The YouTube uploader against googleapiclient's own HttpMockSequence: no network, no sleeping.

The real client library code runs (static discovery document, MediaFileUpload, resumable
``next_chunk``); only the HTTP answers are scripted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import socket
import stat
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import httplib2
import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import HttpMockSequence

from services.pipeline.errors import YouTubeQuotaError
from services.pipeline.providers.upload import youtube, youtube_upload
from services.pipeline.providers.upload.youtube import (
    UploadSettings,
    YouTubeAuthError,
    YouTubeUploadError,
    backoff_delay,
    check_token,
    classify,
    classify_status,
    load_credentials,
    upload_video,
    video_body,
    video_url,
)
from services.scheduler.settings import SettingsError
from tests.pipeline.loopback_services import LoopbackService, Recorded, Reply

KIB256 = 256 * 1024
SIZE = 3 * KIB256 + 1000  # four chunks of 256 KiB, the last one short
UPLOAD_URI = "https://youtube.googleapis.com/upload/youtube/v3/videos?uploadType=resumable&upload_id=xyz"
TOKEN_URI = "https://oauth2.googleapis.com/token"


@dataclass(frozen=True)
class Call:
    method: str
    uri: str
    headers: dict[str, str]
    body: bytes


class RecordingHttp(HttpMockSequence):
    """HttpMockSequence that records each request's body bytes and can raise an exception."""

    def __init__(self, answers: list[Any]) -> None:
        super().__init__(list(answers))
        self.calls: list[Call] = []

    def request(self, uri, method="GET", body=None, headers=None, redirections=1, connection_type=None):
        data = body.read() if hasattr(body, "read") else body
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.calls.append(Call(method, uri, {k.lower(): v for k, v in (headers or {}).items()}, data or b""))
        if self._iterable and isinstance(self._iterable[0], BaseException):
            raise self._iterable.pop(0)
        return super().request(uri, method, data, headers, redirections, connection_type)

    @property
    def left(self) -> int:
        return len(self._iterable)


def started() -> tuple[dict[str, str], str]:
    return {"status": "200", "location": UPLOAD_URI}, ""


def incomplete(upto: int | None) -> tuple[dict[str, str], str]:
    headers = {"status": "308"}
    if upto is not None:
        headers["range"] = f"bytes=0-{upto - 1}"
    return headers, ""


def done(video_id: str = "abc123") -> tuple[dict[str, str], str]:
    return {"status": "200"}, json.dumps({"id": video_id, "status": {"uploadStatus": "uploaded"}})


def api_error(status: int, reason: str, message: str = "refused") -> tuple[dict[str, str], str]:
    body = {"error": {"code": status, "message": message, "errors": [{"reason": reason, "message": message}]}}
    return {"status": str(status), "content-type": "application/json"}, json.dumps(body)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "video.mp4"
    path.write_bytes(bytes(range(256)) * (SIZE // 256) + bytes(SIZE % 256))
    return path


@pytest.fixture
def session_file(tmp_path: Path) -> Path:
    return tmp_path / "upload-session.json"


SETTINGS = UploadSettings(chunk_size=KIB256, attempts=3, base_delay=1.0)
BODY = video_body("Chương 1: Khởi đầu", "Mô tả", ["manga", "truyện tranh"], SETTINGS)


def upload(video: Path, session_file: Path, http: RecordingHttp, sleeps: Sleeps, **settings: Any) -> str:
    chosen = UploadSettings(**{"chunk_size": KIB256, "attempts": 3, **settings})
    return upload_video(
        video, BODY, chosen, session_file=session_file, http=http, sleep=sleeps, job_id="job-1"
    )


def chunk_ranges(calls: list[Call]) -> list[str]:
    return [call.headers.get("content-range", "") for call in calls if call.method == "PUT"]


# --- the upload ------------------------------------------------------------------------------


def test_a_resumable_upload_in_chunks(video: Path, session_file: Path) -> None:
    http = RecordingHttp(
        [started(), incomplete(KIB256), incomplete(2 * KIB256), incomplete(3 * KIB256), done()]
    )
    sleeps = Sleeps()
    assert upload(video, session_file, http, sleeps) == "abc123"
    first = http.calls[0]
    assert first.method == "POST" and "uploadType=resumable" in first.uri
    assert first.headers["x-upload-content-length"] == str(SIZE)
    assert first.headers["x-upload-content-type"] == "video/mp4"
    sent = json.loads(first.body)
    assert sent["snippet"]["defaultLanguage"] == "vi" and sent["snippet"]["defaultAudioLanguage"] == "vi"
    assert sent["status"] == {
        "privacyStatus": "private",
        "selfDeclaredMadeForKids": False,
        "containsSyntheticMedia": True,
    }
    assert chunk_ranges(http.calls) == [
        f"bytes 0-{KIB256 - 1}/{SIZE}",
        f"bytes {KIB256}-{2 * KIB256 - 1}/{SIZE}",
        f"bytes {2 * KIB256}-{3 * KIB256 - 1}/{SIZE}",
        f"bytes {3 * KIB256}-{SIZE - 1}/{SIZE}",
    ]
    assert all(call.uri == UPLOAD_URI for call in http.calls[1:])
    assert b"".join(call.body for call in http.calls[1:]) == video.read_bytes()
    assert not session_file.exists() and sleeps == [] and http.left == 0


def test_a_restarted_worker_resumes_the_same_upload(video: Path, session_file: Path) -> None:
    dying = RecordingHttp([started(), incomplete(KIB256), ConnectionResetError("peer reset")])
    with pytest.raises(YouTubeUploadError, match="ConnectionResetError"):
        upload(video, session_file, dying, Sleeps(), attempts=1)
    saved = json.loads(session_file.read_text())
    assert saved["upload_uri"] == UPLOAD_URI and saved["bytes_sent"] == KIB256
    assert saved["size"] == SIZE and saved["video"] == str(video.resolve()) and saved["started_at"]
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600

    again = RecordingHttp(
        [incomplete(KIB256), incomplete(2 * KIB256), incomplete(3 * KIB256), done("resumed1")]
    )
    assert upload(video, session_file, again, Sleeps()) == "resumed1"
    assert [call.method for call in again.calls] == ["PUT"] * 4  # no new initiation POST
    query = again.calls[0]
    assert (
        query.uri == UPLOAD_URI and query.headers["content-range"] == f"bytes */{SIZE}" and query.body == b""
    )
    assert chunk_ranges(again.calls)[1] == f"bytes {KIB256}-{2 * KIB256 - 1}/{SIZE}"
    assert again.calls[1].body == video.read_bytes()[KIB256 : 2 * KIB256]
    assert not session_file.exists()


def test_a_session_of_a_rewritten_file_is_not_resumed(video: Path, session_file: Path) -> None:
    dying = RecordingHttp([started(), incomplete(KIB256), ConnectionResetError("peer reset")])
    with pytest.raises(YouTubeUploadError):
        upload(video, session_file, dying, Sleeps(), attempts=1)
    os.utime(video, ns=(1, 1))  # same path and size, another render
    again = RecordingHttp(
        [started(), incomplete(KIB256), incomplete(2 * KIB256), incomplete(3 * KIB256), done()]
    )
    assert upload(video, session_file, again, Sleeps()) == "abc123"
    assert again.calls[0].method == "POST"


def test_a_resumed_upload_that_had_finished_returns_its_video(video: Path, session_file: Path) -> None:
    dying = RecordingHttp(
        [started(), incomplete(KIB256), incomplete(2 * KIB256), TimeoutError("read timed out")]
    )
    with pytest.raises(YouTubeUploadError):
        upload(video, session_file, dying, Sleeps(), attempts=1)
    again = RecordingHttp([done("already")])
    assert upload(video, session_file, again, Sleeps()) == "already"
    assert len(again.calls) == 1 and not session_file.exists()


def test_an_expired_session_starts_a_new_upload(video: Path, session_file: Path, caplog) -> None:
    dying = RecordingHttp([started(), incomplete(KIB256), httplib2.HttpLib2Error("broken")])
    with pytest.raises(YouTubeUploadError):
        upload(video, session_file, dying, Sleeps(), attempts=1)
    again = RecordingHttp(
        [
            ({"status": "404"}, "Not Found"),
            started(),
            incomplete(KIB256),
            incomplete(2 * KIB256),
            incomplete(3 * KIB256),
            done("fresh"),
        ]
    )
    with caplog.at_level(logging.WARNING, logger=youtube_upload.__name__):
        assert upload(video, session_file, again, Sleeps()) == "fresh"
    assert [call.method for call in again.calls[:2]] == ["PUT", "POST"]
    assert chunk_ranges(again.calls)[1] == f"bytes 0-{KIB256 - 1}/{SIZE}"
    assert "starting a new upload" in caplog.text
    assert caplog.records[0].job_id == "job-1" and caplog.records[0].stage == "worker:upload"


def test_a_session_saved_for_another_file_is_not_resumed(video: Path, session_file: Path) -> None:
    session_file.write_text(
        json.dumps({"version": 1, "upload_uri": UPLOAD_URI, "video": "/x.mp4", "size": 9})
    )
    http = RecordingHttp(
        [started(), incomplete(KIB256), incomplete(2 * KIB256), incomplete(3 * KIB256), done()]
    )
    assert upload(video, session_file, http, Sleeps()) == "abc123"
    assert http.calls[0].method == "POST"


def test_a_server_error_is_retried_with_backoff(video: Path, session_file: Path) -> None:
    small = video.with_name("small.mp4")
    small.write_bytes(b"x" * 1000)
    http = RecordingHttp(
        [
            api_error(503, "backendError"),  # the initiation itself
            started(),
            api_error(503, "backendError"),  # the chunk
            incomplete(None),  # status query: nothing received
            api_error(500, "internalError"),
            incomplete(None),
            done(),
        ]
    )
    sleeps = Sleeps()
    assert upload(small, session_file, http, sleeps, attempts=4) == "abc123"
    assert sleeps == [1.0, 2.0, 4.0]  # three failed next_chunk calls in a row
    assert [call.method for call in http.calls] == ["POST", "POST", "PUT", "PUT", "PUT", "PUT", "PUT"]
    assert http.calls[3].headers["content-range"] == "bytes */1000"


def test_a_chunk_that_goes_through_resets_the_backoff(video: Path, session_file: Path) -> None:
    http = RecordingHttp(
        [
            started(),
            ConnectionResetError("reset"),  # chunk 1
            incomplete(None),  # query: nothing arrived
            incomplete(KIB256),  # chunk 1 again
            api_error(502, ""),  # chunk 2
            incomplete(KIB256),
            incomplete(2 * KIB256),
            incomplete(3 * KIB256),
            done(),
        ]
    )
    sleeps = Sleeps()
    assert upload(video, session_file, http, sleeps, attempts=2) == "abc123"
    assert sleeps == [1.0, 1.0] and http.left == 0


def test_retries_end_after_the_attempts(video: Path, session_file: Path) -> None:
    http = RecordingHttp([api_error(503, "backendError")] * 3)
    sleeps = Sleeps()
    with pytest.raises(YouTubeUploadError, match="3 times in a row, last: HTTP 503 backendError"):
        upload(video, session_file, http, sleeps, attempts=3, base_delay=0.5)
    assert sleeps == [0.5, 1.0]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (api_error(403, "quotaExceeded"), "quotaExceeded"),
        (api_error(429, "rateLimitExceeded"), "rateLimitExceeded"),
        (api_error(400, "uploadLimitExceeded"), "uploadLimitExceeded"),
    ],
    ids=["403-quotaExceeded", "429-daily-upload-cap", "400-uploadLimitExceeded"],
)
def test_quota_answers_are_not_retried(video: Path, session_file: Path, answer, reason: str) -> None:
    before = video.read_bytes()
    http = RecordingHttp([answer, done()])
    sleeps = Sleeps()
    with pytest.raises(YouTubeQuotaError, match=reason) as caught:
        upload(video, session_file, http, sleeps)
    assert caught.value.name == "YouTubeQuotaError"
    assert sleeps == [] and len(http.calls) == 1 and http.left == 1
    assert video.read_bytes() == before and not session_file.exists()


def test_a_quota_answer_after_server_errors_ends_the_retries_at_once(
    video: Path, session_file: Path, caplog
) -> None:
    http = RecordingHttp(
        [
            started(),
            api_error(503, "backendError"),  # chunk 1
            incomplete(None),
            api_error(403, "quotaExceeded"),  # chunk 1 again: quota, never retried
            done(),
        ]
    )
    sleeps = Sleeps()
    with caplog.at_level(logging.WARNING, logger=youtube_upload.__name__):
        with pytest.raises(YouTubeQuotaError, match="quotaExceeded"):
            upload(video, session_file, http, sleeps, attempts=5)
    assert sleeps == [1.0] and http.left == 1
    ours = [r.getMessage() for r in caplog.records if r.name == youtube_upload.__name__]
    assert ours == ["upload try 1 of 5 failed (HTTP 503 backendError: refused); retrying in 1 s"]
    saved = json.loads(session_file.read_text())  # saved when the chunk failed, for a restart
    assert saved["upload_uri"] == UPLOAD_URI and saved["bytes_sent"] == 0


def test_the_upload_error_names_the_cause_of_the_last_try(video: Path, session_file: Path) -> None:
    http = RecordingHttp([ConnectionResetError("reset"), ConnectionResetError("reset again")])
    with pytest.raises(YouTubeUploadError, match="2 times in a row, last: ConnectionResetError") as caught:
        upload(video, session_file, http, Sleeps(), attempts=2)
    assert isinstance(caught.value.__cause__, ConnectionResetError)
    assert str(caught.value.__cause__) == "reset again"


def test_a_quota_answer_mid_upload_keeps_the_session(video: Path, session_file: Path) -> None:
    http = RecordingHttp([started(), incomplete(KIB256), api_error(429, "userRateLimitExceeded")])
    sleeps = Sleeps()
    with pytest.raises(YouTubeQuotaError):
        upload(video, session_file, http, sleeps)
    assert sleeps == [] and json.loads(session_file.read_text())["bytes_sent"] == KIB256


def test_401_asks_to_authorise_again(video: Path, session_file: Path) -> None:
    http = RecordingHttp([api_error(401, "authError", "Invalid Credentials")])
    sleeps = Sleeps()
    with pytest.raises(YouTubeAuthError, match=r"youtube-auth --account .*7 days"):
        upload(video, session_file, http, sleeps)
    assert sleeps == []


def test_a_refused_video_is_fatal(video: Path, session_file: Path) -> None:
    http = RecordingHttp([api_error(400, "invalidTitle", "bad title")])
    with pytest.raises(YouTubeUploadError, match="HTTP 400 invalidTitle: bad title"):
        upload(video, session_file, http, Sleeps())


def test_the_thumbnail_is_set_after_the_upload(video: Path, session_file: Path, tmp_path: Path) -> None:
    thumb = tmp_path / "panel.png"
    thumb.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    small = tmp_path / "small.mp4"
    small.write_bytes(b"y" * 10)
    http = RecordingHttp([started(), done("vid9"), ({"status": "200"}, json.dumps({"items": []}))])
    assert upload(small, session_file, http, Sleeps(), thumbnail=thumb) == "vid9"
    call = http.calls[-1]
    assert call.method == "POST" and "thumbnails/set" in call.uri and "videoId=vid9" in call.uri
    assert call.headers["content-type"] == "image/png" and call.body.endswith(b"fake")


def test_a_failing_thumbnail_only_warns(video: Path, session_file: Path, tmp_path: Path, caplog) -> None:
    thumb = tmp_path / "panel.jpg"
    thumb.write_bytes(b"\xff\xd8fake")
    small = tmp_path / "small.mp4"
    small.write_bytes(b"y" * 10)
    http = RecordingHttp([started(), done("vid9"), api_error(403, "forbidden", "channel not verified")])
    with caplog.at_level(logging.WARNING, logger=youtube_upload.__name__):
        assert upload(small, session_file, http, Sleeps(), thumbnail=thumb) == "vid9"
    assert "thumbnail not set for vid9" in caplog.text and "verified" in caplog.text
    assert not session_file.exists()


def test_a_token_refused_during_the_upload_asks_to_authorise_again(video: Path, session_file: Path) -> None:
    credentials = Credentials(None, refresh_token="r", token_uri=TOKEN_URI, client_id="c", client_secret="s")
    http = RecordingHttp([({"status": "400"}, json.dumps({"error": "invalid_grant"}))])
    with pytest.raises(YouTubeAuthError, match="youtube-auth --account kenh-1"):
        upload_video(
            video,
            BODY,
            SETTINGS,
            session_file=session_file,
            credentials=credentials,
            http=http,
            sleep=Sleeps(),
            account="kenh-1",
        )
    assert http.calls[0].uri == TOKEN_URI  # google-auth-httplib2 refreshed through the same http


def test_a_ready_service_can_be_passed(video: Path, session_file: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.mp4"
    small.write_bytes(b"z" * 10)
    http = RecordingHttp([started(), done("given")])
    service = build("youtube", "v3", http=http, static_discovery=True)
    got = upload_video(small, BODY, SETTINGS, session_file=session_file, youtube=service, sleep=Sleeps())
    assert got == "given" and video_url(got) == "https://www.youtube.com/watch?v=given"


# --- classification and backoff -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "message", "kind"),
    [
        (403, "quotaExceeded", "", "quota"),
        (400, "uploadLimitExceeded", "", "quota"),
        (429, "rateLimitExceeded", "", "quota"),
        (429, "", "", "quota"),
        (403, "dailyLimitExceeded", "", "quota"),
        (401, "", "", "auth"),
        (401, "youtubeSignupRequired", "", "auth"),
        (400, "invalid_grant", "", "auth"),
        (403, "insufficientPermissions", "", "auth"),
        (403, "forbidden", "Request had insufficient authentication scopes.", "auth"),
        (500, "backendError", "", "retry"),
        (502, "", "", "retry"),
        (503, "", "", "retry"),
        (504, "", "", "retry"),
        (403, "forbidden", "not allowed", "fatal"),
        (400, "invalidTitle", "", "fatal"),
        (404, "notFound", "", "fatal"),
    ],
)
def test_classify_status(status: int, reason: str, message: str, kind: str) -> None:
    assert classify_status(status, reason, message) == kind


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (json.dumps({"error": {"code": 403, "errors": [{"reason": "quotaExceeded"}]}}), "quota"),
        (json.dumps({"error": "invalid_grant", "error_description": "Bad Request"}), "auth"),
        (
            json.dumps({"error": {"code": 403, "details": [{"reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT"}]}}),
            "auth",
        ),
        ("<html>Service Unavailable</html>", "retry"),
    ],
    ids=["errors-list", "oauth-body", "details-list", "not-json"],
)
def test_classify_reads_the_reason_from_the_body(content: str, kind: str) -> None:
    status = 503 if kind == "retry" else 400 if "invalid_grant" in content else 403
    error = HttpError(httplib2.Response({"status": str(status)}), content.encode())
    assert classify(error) == kind


@pytest.mark.parametrize(("failures", "delay"), [(1, 1.0), (2, 2.0), (3, 4.0), (7, 64.0), (12, 64.0)])
def test_backoff_doubles_up_to_a_cap(failures: int, delay: float) -> None:
    assert backoff_delay(failures, 1.0) == delay


# --- metadata -------------------------------------------------------------------------------------


def test_a_long_vietnamese_title_is_cut_at_a_word() -> None:
    title = ("Thám tử lừng danh Conan chương đặc biệt " * 5)[:150]
    got = video_body(title, "", [], UploadSettings())["snippet"]["title"]
    assert len(got) <= 100 and got.endswith("…")
    assert title.startswith(got[:-1]) and title[len(got) - 1] == " "  # cut where a word ended


def test_a_decomposed_title_is_counted_composed() -> None:
    import unicodedata

    title = unicodedata.normalize("NFD", "Đường về nhà " * 7).strip()  # 90 letters, ~130 code points
    got = video_body(title, "", [], UploadSettings())["snippet"]["title"]
    assert got == unicodedata.normalize("NFC", title)


def test_a_long_vietnamese_description_fits_5000_bytes() -> None:
    description = "Người đọc truyện ở Việt Nam thích những chương hay. " * 200
    got = video_body("t", description, [], UploadSettings())["snippet"]["description"]
    data = got.encode("utf-8")
    assert len(data) <= 5000 and len(data) > 4700
    assert data.decode("utf-8") == got and got.endswith("…")


def test_a_cut_never_splits_a_character() -> None:
    description = "ữ" * 3000  # 3 bytes each, no spaces
    got = video_body("t", description, [], UploadSettings())["snippet"]["description"]
    assert len(got.encode("utf-8")) <= 5000 and set(got[:-1]) == {"ữ"}


def test_angle_brackets_are_removed_everywhere() -> None:
    body = video_body("<b>Tựa</b>", "a <script> b", ["<tag>", "  ", "", "ok"], UploadSettings())
    assert body["snippet"]["title"] == "bTựa/b"
    assert body["snippet"]["description"] == "a script b"
    assert body["snippet"]["tags"] == ["tag", "ok"]


def test_tags_fit_500_characters_counting_quotes() -> None:
    tags = [f"truyện tranh {n:03d}" for n in range(60)]  # 16 letters + 2 quotes + a comma each
    got = video_body("t", "", tags, UploadSettings())["snippet"]["tags"]
    assert sum(len(tag) + 2 for tag in got) + len(got) - 1 <= 500
    assert got == tags[: len(got)] and len(got) == 26


def test_publish_at_forces_private_and_rfc3339_utc() -> None:
    when = datetime(2026, 12, 1, 19, 30, tzinfo=timezone(timedelta(hours=7)))
    body = video_body("t", "", [], UploadSettings(privacy="public", publish_at=when, category_id="1"))
    assert body["status"]["privacyStatus"] == "private"
    assert body["status"]["publishAt"] == "2026-12-01T12:30:00Z"
    assert body["snippet"]["categoryId"] == "1"


@pytest.mark.parametrize(
    "options",
    [
        {"privacy": "secret"},
        {"chunk_size": 1000},
        {"attempts": 0},
        {"publish_at": datetime(2026, 12, 1, 12, 0)},
    ],
    ids=["privacy", "chunk", "attempts", "naive"],
)
def test_bad_settings_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        UploadSettings(**options)


# --- OAuth token ------------------------------------------------------------------------------------


@dataclass
class FakeResponse:
    status: int
    data: bytes
    headers: dict[str, str]


class FakeTokenEndpoint:
    """A google.auth.transport.Request answering the token endpoint with one fixed response."""

    def __init__(self, status: int, answer: dict[str, Any]) -> None:
        self.status, self.answer, self.calls = status, answer, []

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        self.calls.append((method, url, body))
        return FakeResponse(
            self.status, json.dumps(self.answer).encode(), {"content-type": "application/json"}
        )


def write_token(path: Path, *, mode: int = 0o600, expired: bool = True) -> Path:
    expiry = datetime.now(timezone.utc) + timedelta(hours=-1 if expired else 1)
    info = {
        "token": "old-access",
        "refresh_token": "refresh-me",
        "token_uri": TOKEN_URI,
        "client_id": "client.apps.googleusercontent.com",
        "client_secret": "shh",
        "scopes": youtube.SCOPES,
        "expiry": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    path.write_text(json.dumps(info))
    os.chmod(path, mode)
    return path


def test_a_token_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    token = write_token(tmp_path / "token.json", mode=0o644)
    with pytest.raises(SettingsError, match="chmod 600"):
        load_credentials(token, request=FakeTokenEndpoint(200, {}))


def test_an_expired_token_is_refreshed_and_saved(tmp_path: Path) -> None:
    token = write_token(tmp_path / "token.json")
    endpoint = FakeTokenEndpoint(200, {"access_token": "new-access", "expires_in": 3600})
    credentials = load_credentials(token, request=endpoint)
    assert credentials.token == "new-access" and len(endpoint.calls) == 1
    assert (
        endpoint.calls[0][:2] == ("POST", TOKEN_URI) and b"refresh_token=refresh-me" in endpoint.calls[0][2]
    )
    saved = json.loads(token.read_text())
    assert saved["token"] == "new-access" and saved["refresh_token"] == "refresh-me"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600


def test_a_valid_token_is_used_as_is(tmp_path: Path) -> None:
    token = write_token(tmp_path / "token.json", expired=False)
    endpoint = FakeTokenEndpoint(500, {})
    assert load_credentials(token, request=endpoint).token == "old-access" and endpoint.calls == []


def test_check_token_refreshes_now(tmp_path: Path) -> None:
    token = write_token(tmp_path / "token.json", expired=False)
    endpoint = FakeTokenEndpoint(200, {"access_token": "new-access", "expires_in": 3600})
    message = check_token(token, request=endpoint)
    assert message.startswith("token refreshed, valid until ") and message.endswith("Z")
    assert len(endpoint.calls) == 1


def test_a_revoked_token_asks_to_authorise_again(tmp_path: Path) -> None:
    token = write_token(tmp_path / "token.json")
    endpoint = FakeTokenEndpoint(
        400, {"error": "invalid_grant", "error_description": "Token has been expired"}
    )
    with pytest.raises(YouTubeAuthError, match="invalid_grant") as caught:
        check_token(token, request=endpoint, account="kenh-1")
    message = str(caught.value)
    assert "youtube-auth --account kenh-1" in message and "Testing" in message and "7 days" in message
    assert "refresh-me" not in message and "shh" not in message


def test_a_token_file_without_a_refresh_token_asks_to_authorise_again(tmp_path: Path) -> None:
    token = tmp_path / "token.json"
    token.write_text(json.dumps({"token": "x", "client_id": "c", "client_secret": "s"}))
    token.chmod(0o600)
    with pytest.raises(YouTubeAuthError, match="youtube-auth"):
        load_credentials(token)


class LoopbackGoogleAccounts(LoopbackService):
    """Google's side of the installed-app flow: the consent a person gives, then the code exchange.

    ``consent`` reads the authorization URL the flow printed, as a browser opens it, and
    issues a code bound to what that URL asked for (client, redirect, PKCE challenge,
    offline access). ``POST /token`` exchanges the code as Google does: the same client,
    redirect and a verifier matching the challenge, once; a refresh token only for a
    consent given with ``access_type=offline``.
    """

    CLIENT_ID = "client.apps.googleusercontent.com"
    CLIENT_SECRET = "shh"
    ACCESS_TOKEN = "ya29.loopback-access"
    REFRESH_TOKEN = "1//loopback-refresh"

    def __init__(self) -> None:
        super().__init__()
        self.codes: dict[str, dict[str, str]] = {}

    def client_secrets(self, path: Path) -> Path:
        """An installed-app client secrets file whose token endpoint is this server."""
        path.write_text(json.dumps({"installed": {
            "client_id": self.CLIENT_ID,
            "client_secret": self.CLIENT_SECRET,
            "auth_uri": f"{self.url}/o/oauth2/auth",
            "token_uri": f"{self.url}/token",
            "redirect_uris": ["http://localhost"],
        }}))
        return path

    def consent(self, auth_url: str) -> str:
        """The person accepts: return the redirect (with ``state`` and ``code``) the browser follows."""
        parts = urlsplit(auth_url)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{self.url}/o/oauth2/auth"
        asked = {name: values[0] for name, values in parse_qs(parts.query).items()}
        assert (asked["response_type"], asked["client_id"]) == ("code", self.CLIENT_ID)
        assert asked["code_challenge_method"] == "S256" and asked["code_challenge"]
        code = f"4/loopback-code-{len(self.codes)}"
        self.codes[code] = asked
        query = urlencode({"state": asked["state"], "code": code, "scope": asked["scope"]})
        return f"{asked['redirect_uri']}?{query}"

    def handle(self, request: Recorded) -> Reply:
        if (request.method, request.path) != ("POST", "/token"):
            return Reply.json({"error": "not_found"}, 404)
        form = {name: values[0] for name, values in request.form().items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if request.headers.get("authorization", "").startswith("Basic "):
            basic = base64.b64decode(request.headers["authorization"][6:]).decode()
            client_id, _, client_secret = (unquote(part) for part in basic.partition(":"))
        if (client_id, client_secret) != (self.CLIENT_ID, self.CLIENT_SECRET):
            return Reply.json({"error": "invalid_client"}, 401)
        asked = self.codes.pop(form.get("code", ""), None)  # a code is good once
        if form.get("grant_type") != "authorization_code" or asked is None:
            return Reply.json({"error": "invalid_grant", "error_description": "Malformed auth code."}, 400)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != asked["code_challenge"] or form.get("redirect_uri") != asked["redirect_uri"]:
            return Reply.json({"error": "invalid_grant", "error_description": "Bad Request"}, 400)
        answer = {"access_token": self.ACCESS_TOKEN, "expires_in": 3599, "scope": asked["scope"], "token_type": "Bearer"}
        if asked.get("access_type") == "offline":
            answer["refresh_token"] = self.REFRESH_TOKEN
        return Reply.json(answer)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_authorize_runs_the_consent_and_code_exchange_and_writes_the_token_0600(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # oauthlib wants https; this endpoint is loopback http
    lines: list[str] = []
    token = tmp_path / "secrets" / "token.json"
    port = free_port()
    with LoopbackGoogleAccounts() as google:
        secrets, token_uri = google.client_secrets(tmp_path / "client.json"), f"{google.url}/token"
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["path"] = youtube.authorize(secrets, token, port=port, write=lines.append)
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                outcome["error"] = exc

        flow = threading.Thread(target=run, daemon=True)
        flow.start()
        shown = ""  # what the person reads: the flow's prompt, wherever it is written
        deadline = time.monotonic() + 20
        while (found := re.search(r"Open this URL in a browser: (\S+)", shown + "\n".join(lines))) is None:
            assert flow.is_alive() and time.monotonic() < deadline, outcome.get("error", "no URL shown")
            time.sleep(0.01)
            shown += capsys.readouterr().out
        auth_url = found.group(1)
        asked = {name: values[0] for name, values in parse_qs(urlsplit(auth_url).query).items()}
        assert asked["redirect_uri"] == f"http://localhost:{port}/"
        assert (asked["access_type"], asked["prompt"]) == ("offline", "consent")
        assert asked["scope"].split() == youtube.SCOPES
        with urllib.request.urlopen(google.consent(auth_url), timeout=10) as browser:  # the redirect
            assert browser.status == 200
        flow.join(timeout=20)
        assert not flow.is_alive() and "error" not in outcome, outcome.get("error")
        (exchange,) = google.received("POST", "/token")
    assert outcome["path"] == token
    form = {name: values[0] for name, values in exchange.form().items()}
    assert (form["grant_type"], form["code"]) == ("authorization_code", "4/loopback-code-0") and google.codes == {}
    assert form["redirect_uri"] == f"http://localhost:{port}/" and len(form["code_verifier"]) >= 43  # PKCE
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    saved = json.loads(token.read_text())
    assert (saved["refresh_token"], saved["token"]) == (google.REFRESH_TOKEN, google.ACCESS_TOKEN)
    assert (saved["token_uri"], saved["client_id"], saved["scopes"]) == (
        token_uri, google.CLIENT_ID, youtube.SCOPES
    )
    assert any(f"ssh -L {port}:localhost:{port}" in line for line in lines)
    assert lines[-1] == f"Token saved to {token} (mode 600)."
    assert load_credentials(token, request=FakeTokenEndpoint(500, {})).token == google.ACCESS_TOKEN  # valid as saved
