"""Upload a rendered video to YouTube (Data API v3) with google-api-python-client.

Three parts:

- **Metadata** (pure): ``video_body`` turns a Vietnamese title, description and tags into
  the ``snippet``/``status`` body of ``videos.insert``, inside YouTube's limits (title 100
  characters, description 5000 UTF-8 bytes, tags 500 characters, no ``<`` ``>``).
  ``classify`` sorts an API error into ``quota`` / ``auth`` / ``retry`` / ``fatal``.
- **OAuth** (``youtube-auth`` and ``doctor``): ``authorize`` runs the installed-app flow and
  writes the authorized-user token file (mode 0600); ``load_credentials`` reads it and
  refreshes the access token, saving it back; ``check_token`` forces a refresh.
- **Upload**: ``upload_video`` sends the file in resumable chunks. After every chunk the
  session (upload URI, bytes sent) is saved to ``session_file``, so a worker restarted after
  a crash asks YouTube how far the upload got and continues it, instead of starting a new
  upload (which would cost another ``videos.insert`` quota charge and risk a duplicate).
  Server errors and dropped connections are retried with exponential backoff (the
  providers' shared ``retry_policy``; a chunk that goes through starts the count again); a
  quota answer is never retried and raises ``YouTubeQuotaError`` (the machine's
  QuotaReached path).

Errors::

    YouTubeQuotaError    (services.pipeline.errors) the daily quota / upload cap is spent
    YouTubeAuthError     the token is missing, revoked or expired: run ``youtube-auth`` again
    YouTubeUploadError   any other refusal, or retries exhausted; names status and reason
"""

from __future__ import annotations

import json
import logging
import ssl
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import google.auth.exceptions
import httplib2
from google.auth.transport.requests import Request as AuthRequest
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build, build_from_document
from googleapiclient.discovery_cache import get_static_doc
from googleapiclient.errors import Error as ApiClientError
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaFileUpload

from services.pipeline.errors import YouTubeQuotaError
from services.pipeline.providers.retry_policy import RetryEvent, RetryLater, RetryPolicy, backoff
from services.pipeline.settings import read_secret_file
from services.scheduler.atomic_file import write_atomic
from services.scheduler.clock import utc_now

__all__ = [
    "SCOPES",
    "UploadSettings",
    "YouTubeAuthError",
    "YouTubeUploadError",
    "authorize",
    "backoff_delay",
    "check_token",
    "classify",
    "classify_status",
    "describe",
    "load_credentials",
    "reauth_hint",
    "rfc3339",
    "upload_video",
    "video_body",
    "video_url",
]

logger = logging.getLogger(__name__)

SCOPES = ["https://www.googleapis.com/auth/youtube.upload"]
STAGE = "worker:upload"
LANGUAGE = "vi"
PRIVACY_STATUSES = ("private", "unlisted", "public")
TITLE_MAX_CHARS = 100
DESCRIPTION_MAX_BYTES = 5000
TAGS_MAX_CHARS = 500
CHUNK_UNIT = 256 * 1024
MAX_DELAY = 64.0
SESSION_VERSION = 1
_ELLIPSIS = "…"
_FORBIDDEN_CHARS = str.maketrans("", "", "<>")

# What a refused request means. Rate-limit reasons count as quota on purpose: on
# videos.insert they are the daily upload cap, and retrying would only burn more quota.
_QUOTA_REASONS = frozenset(
    {
        "quotaExceeded",
        "dailyLimitExceeded",
        "uploadLimitExceeded",
        "rateLimitExceeded",
        "userRateLimitExceeded",
    }
)
_AUTH_REASONS = frozenset(
    {
        "authError",
        "unauthorized",
        "invalid_grant",
        "invalid_client",
        "unauthorized_client",
        "insufficientPermissions",
        "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
        "youtubeSignupRequired",
    }
)
_RETRY_REASONS = frozenset({"backendError", "internalError"})
_RETRY_STATUSES = frozenset({500, 502, 503, 504})
_SESSION_GONE_STATUSES = frozenset({404, 410})
# Failures of the connection itself, worth another try (socket.timeout is TimeoutError).
_TRANSIENT = (httplib2.HttpLib2Error, ConnectionError, TimeoutError, ssl.SSLError)


class YouTubeAuthError(Exception):
    """The channel's OAuth token cannot be used; the message says how to authorise again."""


class YouTubeUploadError(Exception):
    """YouTube refused the upload for a reason other than quota or auth (status + reason)."""


@dataclass(frozen=True)
class UploadSettings:
    """How a video is uploaded.

    :param privacy: ``private``, ``unlisted`` or ``public`` (forced ``private`` with publish_at).
    :param category_id: the video category (24 = Entertainment).
    :param publish_at: aware instant YouTube makes the private video public.
    :param chunk_size: bytes per resumable chunk, a multiple of 256 KiB.
    :param attempts: tries in a row without progress (5xx, dropped connection) before giving up.
    :param base_delay: first backoff delay in seconds; doubled each failure, capped at 64 s.
    :param synthetic_media: declare the video as containing synthetic (AI narrated) media.
    :param thumbnail: a JPEG/PNG of at most 2 MB set as the thumbnail (verified channels only).
    """

    privacy: str = "private"
    category_id: str = "24"
    publish_at: datetime | None = None
    chunk_size: int = 8 * 1024 * 1024
    attempts: int = 8
    base_delay: float = 1.0
    synthetic_media: bool = True
    thumbnail: Path | None = None

    def __post_init__(self) -> None:
        if self.privacy not in PRIVACY_STATUSES:
            raise ValueError(f"privacy must be one of {', '.join(PRIVACY_STATUSES)}, got {self.privacy!r}")
        if self.publish_at is not None and self.publish_at.utcoffset() is None:
            raise ValueError(f"publish_at must be timezone-aware, got {self.publish_at!r}")
        if self.chunk_size <= 0 or self.chunk_size % CHUNK_UNIT:
            raise ValueError(f"chunk_size must be a positive multiple of {CHUNK_UNIT}, got {self.chunk_size}")
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.base_delay < 0:
            raise ValueError(f"base_delay must not be negative, got {self.base_delay}")


# --- metadata (pure) -----------------------------------------------------------------------


def _clean(text: str) -> str:
    """NFC (Vietnamese marks composed, so counts match YouTube's) without ``<`` ``>``."""
    return unicodedata.normalize("NFC", text).translate(_FORBIDDEN_CHARS)


def _truncate_chars(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, cut at a word boundary when one is near."""
    if len(text) <= limit:
        return text
    head = text[: limit - len(_ELLIPSIS)]
    space = head.rfind(" ")
    if space >= limit // 2:
        head = head[:space]
    return head.rstrip(" ,.;:-–—") + _ELLIPSIS


def _truncate_bytes(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` UTF-8 bytes, never splitting a character."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = limit - len(_ELLIPSIS.encode("utf-8"))
    head = data[:room].decode("utf-8", errors="ignore")  # drops a trailing partial character
    cut = max(head.rfind(" "), head.rfind("\n"))
    if cut >= len(head) - 200:
        head = head[:cut]
    return head.rstrip() + _ELLIPSIS


def _tag_cost(tag: str) -> int:
    """A tag's share of the 500-character budget: YouTube quotes tags containing a space."""
    return len(tag) + (2 if " " in tag else 0)


def _tags(tags: Sequence[str]) -> list[str]:
    """Cleaned, de-duplicated tags, in order, within the budget (a comma between each counts)."""
    kept: list[str] = []
    seen: set[str] = set()
    used = 0
    for raw in tags:
        tag = " ".join(_clean(raw).replace(",", " ").split())
        if not tag or tag.casefold() in seen:
            continue
        cost = _tag_cost(tag) + (1 if kept else 0)
        if used + cost > TAGS_MAX_CHARS:
            continue
        kept.append(tag)
        seen.add(tag.casefold())
        used += cost
    return kept


def rfc3339(instant: datetime) -> str:
    """An aware instant as RFC 3339 UTC (``2026-01-02T03:04:05Z``)."""
    return instant.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def video_body(title: str, description: str, tags: Sequence[str], settings: UploadSettings) -> dict[str, Any]:
    """The ``videos.insert`` body (parts snippet and status) within YouTube's limits."""
    clean_title = _truncate_chars(" ".join(_clean(title).split()), TITLE_MAX_CHARS)
    if not clean_title:
        raise ValueError("a YouTube video needs a title")
    status: dict[str, Any] = {
        "privacyStatus": settings.privacy,
        "selfDeclaredMadeForKids": False,
        "containsSyntheticMedia": settings.synthetic_media,
    }
    if settings.publish_at is not None:
        status["privacyStatus"] = "private"  # YouTube only schedules private videos
        status["publishAt"] = rfc3339(settings.publish_at)
    return {
        "snippet": {
            "title": clean_title,
            "description": _truncate_bytes(_clean(description).strip(), DESCRIPTION_MAX_BYTES),
            "tags": _tags(tags),
            "categoryId": settings.category_id,
            "defaultLanguage": LANGUAGE,
            "defaultAudioLanguage": LANGUAGE,
        },
        "status": status,
    }


def video_url(video_id: str) -> str:
    """The watch page of a video."""
    return f"https://www.youtube.com/watch?v={video_id}"


# --- errors (pure) --------------------------------------------------------------------------


def classify_status(status: int, reason: str, message: str = "") -> str:
    """``quota``, ``auth``, ``retry`` or ``fatal`` for an answer's status and first reason."""
    if reason in _QUOTA_REASONS or status == 429:
        return "quota"
    if status == 401 or reason in _AUTH_REASONS:
        return "auth"
    if status == 403 and "scope" in message.lower():
        return "auth"
    if status in _RETRY_STATUSES or reason in _RETRY_REASONS:
        return "retry"
    return "fatal"


def _error_fields(error: HttpError) -> tuple[int, str, str]:
    """(status, first reason, message) of an API error, from its JSON body when it has one."""
    status = int(getattr(error.resp, "status", 0) or 0)
    try:
        data: Any = json.loads(error.content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return status, "", ""
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return status, "", ""
    body = data.get("error")
    if isinstance(body, str):  # an OAuth answer: {"error": "invalid_grant", ...}
        return status, body, str(data.get("error_description", ""))
    if not isinstance(body, dict):
        return status, "", ""
    message = str(body.get("message", ""))
    for key in ("errors", "details"):
        items = body.get(key)
        if isinstance(items, list):
            for item in items:
                if isinstance(item, dict) and item.get("reason"):
                    return status, str(item["reason"]), message
    return status, "", message


def classify(error: HttpError) -> str:
    """``quota``, ``auth``, ``retry`` or ``fatal`` for an API error (decided before any retry)."""
    return classify_status(*_error_fields(error))


def describe(error: HttpError) -> str:
    """``HTTP 403 quotaExceeded: <message>`` for logs and error causes."""
    status, reason, message = _error_fields(error)
    text = f"HTTP {status} {reason or getattr(error.resp, 'reason', '') or 'error'}"
    return f"{text}: {message[:300]}" if message else text


def backoff_delay(failures: int, base: float, cap: float = MAX_DELAY) -> float:
    """Seconds to wait after ``failures`` failures in a row: base, 2·base, 4·base... up to cap.

    The arithmetic of the upload's :class:`RetryPolicy` (see ``_upload_policy``).
    """
    return backoff(failures, base=base, cap=cap)


def _upload_policy(settings: UploadSettings) -> RetryPolicy:
    """Retries of one chunk: ``settings.attempts`` tries, ``base_delay`` doubling up to 64 s."""
    return RetryPolicy(attempts=settings.attempts, base=settings.base_delay, cap=MAX_DELAY, name="upload")


def reauth_hint(account: str = "<id>") -> str:
    """How to get a working token again."""
    return (
        f"run `python run_scheduler.py youtube-auth --account {account}` to authorise the channel again "
        '(an OAuth app left in Google\'s "Testing" publishing status gets refresh tokens that expire '
        'after 7 days: set it to "In production" in the Google Cloud console to keep them)'
    )


# --- OAuth token file ---------------------------------------------------------------------------


def _write_token(token_file: Path, credentials: Credentials) -> None:
    """Save the authorized-user JSON atomically, created 0600."""
    token_file.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(token_file, (credentials.to_json() + "\n").encode("utf-8"), mode=0o600)


def _read_token(token_file: Path, account: str) -> Credentials:
    text = read_secret_file(token_file, "YOUTUBE_TOKEN_FILE")  # SettingsError: missing, empty, not 0600
    try:
        info = json.loads(text)
        credentials = Credentials.from_authorized_user_info(info, SCOPES)
    except ValueError as exc:  # not JSON, or no refresh_token / client_id / client_secret
        raise YouTubeAuthError(
            f"{token_file} is not a usable token file ({exc}); {reauth_hint(account)}"
        ) from None
    # google-auth always sets Google's token endpoint here; the file's own token_uri (a
    # proxy, a test server) is kept, as the file says (and as the refresh saves it back)
    token_uri = info.get("token_uri")
    if isinstance(token_uri, str) and token_uri and token_uri != credentials.token_uri:
        expiry = credentials.expiry
        credentials = credentials.with_token_uri(token_uri)
        credentials.expiry = expiry  # the copy forgets it: an expired token would look valid
    return credentials


def _refresh(credentials: Credentials, token_file: Path, request: Any, account: str) -> None:
    """Refresh the access token and save it back; YouTubeAuthError when Google refuses."""
    try:
        credentials.refresh(request if request is not None else AuthRequest())
    except google.auth.exceptions.RefreshError as exc:
        reason = exc.args[0] if exc.args else exc
        raise YouTubeAuthError(
            f"the YouTube token in {token_file} cannot be refreshed ({reason}); {reauth_hint(account)}"
        ) from None
    _write_token(token_file, credentials)


def load_credentials(token_file: Path, *, request: Any = None, account: str = "<id>") -> Credentials:
    """The channel's credentials from its 0600 token file, refreshed (and saved) if expired.

    :param request: a ``google.auth.transport.Request`` for the refresh (default: requests).
    :param account: the account id named in the re-authorisation hint.
    """
    credentials = _read_token(token_file, account)
    if not credentials.valid:
        _refresh(credentials, token_file, request, account)
    return credentials


def check_token(token_file: Path, *, request: Any = None, account: str = "<id>") -> str:
    """Refresh the token now (for ``doctor``); say until when it is valid."""
    credentials = _read_token(token_file, account)
    _refresh(credentials, token_file, request, account)
    if credentials.expiry is None:
        return "token refreshed"
    until = credentials.expiry.replace(tzinfo=timezone.utc)  # google-auth keeps naive UTC
    return f"token refreshed, valid until {rfc3339(until)}"


def _stderr_line(text: str) -> None:
    sys.stderr.write(text + "\n")


def authorize(
    client_secrets: Path, token_file: Path, *, port: int = 8080, write: Callable[[str], None] = _stderr_line
) -> Path:
    """Run the OAuth consent for a channel and write its token file (0600); return its path.

    The flow listens on ``localhost:<port>`` for Google's redirect. On a headless server,
    forward the port from the machine with the browser (``ssh -L <port>:localhost:<port>``).
    """
    from google_auth_oauthlib.flow import InstalledAppFlow  # only the youtube-auth command needs it

    write(
        f"Authorising YouTube uploads. Google redirects the browser to http://localhost:{port}/ "
        f"when you accept; on a remote server, first run `ssh -L {port}:localhost:{port} <server>`."
    )
    flow = InstalledAppFlow.from_client_secrets_file(str(client_secrets), SCOPES)
    credentials = flow.run_local_server(
        host="localhost",
        port=port,
        open_browser=False,
        authorization_prompt_message="Open this URL in a browser: {url}",
        access_type="offline",
        prompt="consent",
    )
    if not credentials.refresh_token:
        raise YouTubeAuthError(
            "Google returned no refresh token; remove the app's access at "
            "https://myaccount.google.com/permissions and authorise again"
        )
    _write_token(token_file, credentials)
    write(f"Token saved to {token_file} (mode 600).")
    return token_file


# --- resumable upload -------------------------------------------------------------------------------


def _build_client(credentials: Any, http: Any, api_url: str | None = None) -> Any:
    if http is not None and credentials is not None:
        from google_auth_httplib2 import AuthorizedHttp

        http, credentials = AuthorizedHttp(credentials, http=http), None
    if http is None and credentials is None:
        raise ValueError("upload_video needs youtube=, credentials= or http=")
    if not api_url:
        return build(
            "youtube", "v3", credentials=credentials, http=http, static_discovery=True, cache_discovery=False
        )
    # googleapiclient's api_endpoint moves the API calls, but gives the upload URLs only its
    # host (they keep https and lose any path): move the static document's root as well
    root = api_url if api_url.endswith("/") else f"{api_url}/"
    document = json.loads(get_static_doc("youtube", "v3"))
    document.update(rootUrl=root, baseUrl=root)
    return build_from_document(
        document, credentials=credentials, http=http, client_options={"api_endpoint": root}
    )


def _saved_session(session_file: Path, video: Path, size: int, log: dict[str, str]) -> dict[str, Any] | None:
    """The saved session of this same video file (path, size, mtime), else None."""
    if not session_file.exists():
        return None
    try:
        saved = json.loads(session_file.read_text(encoding="utf-8"))
        matches = (
            saved.get("version") == SESSION_VERSION
            and saved.get("video") == str(video.resolve())
            and saved.get("size") == size
            and saved.get("mtime_ns") == video.stat().st_mtime_ns  # not a re-rendered file
            and isinstance(saved.get("upload_uri"), str)
        )
    except (OSError, ValueError, AttributeError):
        matches = False
    if not matches:
        logger.warning("ignoring upload session %s: not for this video file", session_file, extra=log)
        return None
    return saved


def _save_session(session_file: Path, video: Path, size: int, request: Any, started_at: str) -> None:
    record = {
        "version": SESSION_VERSION,
        "upload_uri": request.resumable_uri,
        "video": str(video.resolve()),
        "size": size,
        "mtime_ns": video.stat().st_mtime_ns,
        "bytes_sent": request.resumable_progress,
        "started_at": started_at,
    }
    # 0600: the upload URI alone lets anyone send bytes into this upload
    write_atomic(session_file, (json.dumps(record, indent=2) + "\n").encode("utf-8"), mode=0o600)


def _resume(request: Any, upload_uri: str) -> None:
    """Point the request at a saved session and make googleapiclient ask where it stands.

    ``HttpRequest.next_chunk`` in the error state PUTs ``Content-Range: bytes */<size>``
    to ``resumable_uri`` and continues from the ``Range`` of the 308 (or returns the
    video if the 200 says it is complete), exactly as after a failed chunk.
    """
    request.resumable_uri = upload_uri
    request.resumable_progress = 0
    request._in_error_state = True


def _restart(request: Any) -> None:
    """Forget the session: the next ``next_chunk`` starts a new upload (initiation POST)."""
    request.resumable_uri = None
    request.resumable_progress = 0
    request._in_error_state = False


def _send(
    request: Any,
    video: Path,
    size: int,
    settings: UploadSettings,
    session_file: Path,
    started_at: str,
    sleep: Callable[[float], None],
    log: dict[str, str],
    account: str,
) -> dict[str, Any]:
    """Drive ``next_chunk`` to the end, saving the session and retrying what is transient.

    Each chunk is one run of the retry policy, so a chunk that goes through starts the
    count of failures in a row again. Only a server error or a dropped connection
    (``RetryLater``) is retried; quota, auth and fatal answers are raised at once.
    """
    restarted = False

    def chunk() -> dict[str, Any] | None:
        """One ``next_chunk``: the video when done, None when more is to send; RetryLater if transient."""
        nonlocal restarted, started_at
        while True:
            try:
                _, response = request.next_chunk(num_retries=0)
                return response
            except HttpError as exc:
                kind = classify(exc)  # before any retry: a quota answer is never repeated
                if kind == "quota":
                    raise YouTubeQuotaError(f"YouTube refused the upload: {describe(exc)}") from exc
                if kind == "auth":
                    raise YouTubeAuthError(
                        f"YouTube refused the token: {describe(exc)}; {reauth_hint(account)}"
                    ) from exc
                gone = exc.resp.status in _SESSION_GONE_STATUSES and request.resumable_uri is not None
                if kind == "fatal" and gone and not restarted:
                    logger.warning(
                        "upload session expired (%s); starting a new upload", describe(exc), extra=log
                    )
                    _restart(request)
                    session_file.unlink(missing_ok=True)
                    restarted, started_at = True, utc_now().isoformat()
                    continue  # not a failure: the new upload is tried at once
                if kind == "fatal":
                    raise YouTubeUploadError(f"YouTube refused the upload: {describe(exc)}") from exc
                error: BaseException = exc
                cause = describe(exc)
            except google.auth.exceptions.RefreshError as exc:
                raise YouTubeAuthError(
                    f"the YouTube token cannot be refreshed ({exc}); {reauth_hint(account)}"
                ) from exc
            except _TRANSIENT as exc:
                error, cause = exc, f"{type(exc).__name__}: {exc}"
            if request.resumable_uri is not None:
                _save_session(session_file, video, size, request, started_at)
            raise RetryLater(cause) from error

    def log_retry(event: RetryEvent) -> None:
        logger.warning(
            "upload try %d of %d failed (%s); retrying in %.0f s",
            event.attempt,
            event.attempts,
            event.error,
            event.delay,
            extra=log,
        )

    policy = _upload_policy(settings)
    while True:
        try:
            response = policy.call(chunk, sleep=sleep, on_retry=log_retry)
        except RetryLater as exc:
            raise YouTubeUploadError(
                f"upload failed {policy.attempts} times in a row, last: {exc}"
            ) from exc.__cause__
        if response is not None:
            return response
        _save_session(session_file, video, size, request, started_at)
        logger.debug("uploaded %d of %d bytes", request.resumable_progress, size, extra=log)


def _set_thumbnail(client: Any, video_id: str, thumbnail: Path, log: dict[str, str]) -> None:
    """Set the thumbnail; a refusal (unverified channel...) only warns."""
    mimetype = "image/png" if thumbnail.suffix.lower() == ".png" else "image/jpeg"
    try:
        media = MediaFileUpload(str(thumbnail), mimetype=mimetype)
        client.thumbnails().set(videoId=video_id, media_body=media).execute()
    except HttpError as exc:
        logger.warning(
            "thumbnail not set for %s (%s; custom thumbnails need a verified channel)",
            video_id,
            describe(exc),
            extra=log,
        )
    except (ApiClientError, OSError, httplib2.HttpLib2Error, google.auth.exceptions.GoogleAuthError) as exc:
        logger.warning("thumbnail not set for %s (%s: %s)", video_id, type(exc).__name__, exc, extra=log)
    else:
        logger.info("thumbnail set for %s", video_id, extra=log)


def upload_video(
    video: Path,
    body: dict[str, Any],
    settings: UploadSettings,
    *,
    session_file: Path,
    youtube: Any = None,
    credentials: Any = None,
    http: Any = None,
    sleep: Callable[[float], None] = time.sleep,
    job_id: str = "",
    account: str = "<id>",
    api_url: str | None = None,
) -> str:
    """Upload ``video`` with metadata ``body`` (see ``video_body``); return the video id.

    :param session_file: where the resumable session is kept between chunks (and restarts).
    :param youtube: a ready ``youtube`` v3 service; else one is built from ``credentials``
        and/or ``http`` (static discovery document, no network needed to build it).
    :param sleep: waits between retries (tests pass a recorder).
    :param job_id: named in the log lines.
    :param account: the account id named in the re-authorisation hint.
    :param api_url: another root than Google's for the API (YOUTUBE_API_URL: a proxy, or a
        test server on loopback); uploads go to its ``/upload/youtube/v3/`` path.
    """
    log = {"job_id": job_id, "stage": STAGE}
    size = video.stat().st_size
    client = youtube if youtube is not None else _build_client(credentials, http, api_url)
    media = MediaFileUpload(str(video), mimetype="video/mp4", chunksize=settings.chunk_size, resumable=True)
    try:
        request = client.videos().insert(part="snippet,status", body=body, media_body=media)
        saved = _saved_session(session_file, video, size, log)
        if saved is not None:
            _resume(request, saved["upload_uri"])
            started_at = str(saved.get("started_at") or utc_now().isoformat())
            logger.info(
                "resuming the upload started at %s (%s of %d bytes sent before)",
                started_at,
                saved.get("bytes_sent"),
                size,
                extra=log,
            )
        else:
            started_at = utc_now().isoformat()
            logger.info("starting a new upload of %d bytes", size, extra=log)
        response = _send(request, video, size, settings, session_file, started_at, sleep, log, account)
    finally:
        media.stream().close()
    session_file.unlink(missing_ok=True)
    video_id = str(response["id"])
    logger.info("uploaded video %s", video_id, extra=log)
    if settings.thumbnail is not None:
        _set_thumbnail(client, video_id, settings.thumbnail, log)
    return video_id
