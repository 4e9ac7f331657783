"""The resumable upload of a rendered video to YouTube (Data API v3, google-api-python-client).

``upload_video`` sends the file in resumable chunks. After every chunk the session (upload
URI, bytes sent) is saved to ``session_file`` (versioned, mode 0600), so a worker restarted
after a crash asks YouTube how far the upload got and continues it, instead of starting a
new upload (which would cost another ``videos.insert`` quota charge and risk a duplicate).
Server errors and dropped connections are retried with exponential backoff (the
providers' shared ``retry_policy``; a chunk that goes through starts the count again); a
quota answer is never retried and raises ``YouTubeQuotaError`` (the machine's QuotaReached
path). The thumbnail, when asked for, is set after the upload; a refusal only warns.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import google.auth.exceptions
import httplib2
from googleapiclient.discovery import build, build_from_document
from googleapiclient.discovery_cache import get_static_doc
from googleapiclient.errors import Error as ApiClientError
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaFileUpload

from services.pipeline.errors import YouTubeQuotaError
from services.pipeline.providers.retry_policy import RetryEvent, RetryLater, RetryPolicy, backoff
from services.pipeline.providers.upload.youtube_errors import (
    YouTubeAuthError,
    YouTubeUploadError,
    classify,
    describe,
    reauth_hint,
)
from services.pipeline.providers.upload.youtube_metadata import UploadSettings
from services.scheduler.atomic_file import write_atomic
from services.scheduler.clock import utc_now

__all__ = ["MAX_DELAY", "SESSION_VERSION", "backoff_delay", "upload_video"]

logger = logging.getLogger(__name__)

STAGE = "worker:upload"
MAX_DELAY = 64.0
SESSION_VERSION = 1
_SESSION_GONE_STATUSES = frozenset({404, 410})
# Failures of the connection itself, worth another try (socket.timeout is TimeoutError).
_TRANSIENT = (httplib2.HttpLib2Error, ConnectionError, TimeoutError, ssl.SSLError)


def backoff_delay(failures: int, base: float, cap: float = MAX_DELAY) -> float:
    """Seconds to wait after ``failures`` failures in a row: base, 2·base, 4·base... up to cap.

    The arithmetic of the upload's :class:`RetryPolicy` (see ``_upload_policy``).
    """
    return backoff(failures, base=base, cap=cap)


def _upload_policy(settings: UploadSettings) -> RetryPolicy:
    """Retries of one chunk: ``settings.attempts`` tries, ``base_delay`` doubling up to 64 s."""
    return RetryPolicy(attempts=settings.attempts, base=settings.base_delay, cap=MAX_DELAY, name="upload")


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
