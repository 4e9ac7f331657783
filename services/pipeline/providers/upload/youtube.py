"""Upload a rendered video to YouTube (Data API v3) with google-api-python-client.

Three parts, each a module of its own beside this one, over the errors they share:

- **Metadata** (pure, ``youtube_metadata``): ``UploadSettings``, and ``video_body``, which
  turns a Vietnamese title, description and tags into the ``snippet``/``status`` body of
  ``videos.insert``, inside YouTube's limits (title 100 characters, description 5000 UTF-8
  bytes, tags 500 characters, no ``<`` ``>``).
- **OAuth** (``youtube_oauth``; for ``youtube-auth`` and ``doctor``): ``authorize`` runs the
  installed-app flow and writes the authorized-user token file (mode 0600);
  ``load_credentials`` reads it and refreshes the access token, saving it back;
  ``check_token`` forces a refresh.
- **Upload** (``youtube_upload``): ``upload_video`` sends the file in resumable chunks,
  saving the session after every chunk so a restarted worker continues the upload instead
  of starting a new one; server errors and dropped connections are retried with backoff; a
  quota answer is never retried and raises ``YouTubeQuotaError`` (the machine's
  QuotaReached path).
- **Errors** (pure, ``youtube_errors``): ``classify`` sorts an API error into ``quota`` /
  ``auth`` / ``retry`` / ``fatal``; ``describe`` and ``reauth_hint`` word them.

This module re-exports the names the worker, the CLI commands, ``doctor`` and the tests
use, so ``from services.pipeline.providers.upload import youtube`` is the one import.

Errors::

    YouTubeQuotaError    (services.pipeline.errors) the daily quota / upload cap is spent
    YouTubeAuthError     the token is missing, revoked or expired: run ``youtube-auth`` again
    YouTubeUploadError   any other refusal, or retries exhausted; names status and reason
"""

from __future__ import annotations

from services.pipeline.providers.upload.youtube_errors import (
    YouTubeAuthError,
    YouTubeUploadError,
    classify,
    classify_status,
    describe,
    reauth_hint,
)
from services.pipeline.providers.upload.youtube_metadata import UploadSettings, rfc3339, video_body, video_url
from services.pipeline.providers.upload.youtube_oauth import SCOPES, authorize, check_token, load_credentials
from services.pipeline.providers.upload.youtube_upload import backoff_delay, upload_video

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
