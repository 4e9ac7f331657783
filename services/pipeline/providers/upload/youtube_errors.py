"""How the YouTube uploader sorts Google's refusals, and the errors it raises.

``classify`` (of an ``HttpError``) and ``classify_status`` (of a status and reason) answer
``quota``, ``auth``, ``retry`` or ``fatal``, decided before any retry so a quota answer is
never repeated; ``describe`` is the one line a log or an error cause shows;
``reauth_hint`` says how to get a working token again. Pure: no I/O.

Errors::

    YouTubeQuotaError    (services.pipeline.errors) the daily quota / upload cap is spent
    YouTubeAuthError     the token is missing, revoked or expired: run ``youtube-auth`` again
    YouTubeUploadError   any other refusal, or retries exhausted; names status and reason
"""

from __future__ import annotations

import json
from typing import Any

from googleapiclient.errors import HttpError

from services.pipeline.errors import VideoPipelineError

__all__ = [
    "YouTubeAuthError",
    "YouTubeUploadError",
    "classify",
    "classify_status",
    "describe",
    "reauth_hint",
]

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


class YouTubeAuthError(VideoPipelineError):
    """The channel's OAuth token cannot be used; the message says how to authorise again."""


class YouTubeUploadError(VideoPipelineError):
    """YouTube refused the upload for a reason other than quota or auth (status + reason)."""


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


def reauth_hint(account: str = "<id>") -> str:
    """How to get a working token again."""
    return (
        f"run `python run_scheduler.py youtube-auth --account {account}` to authorise the channel again "
        '(an OAuth app left in Google\'s "Testing" publishing status gets refresh tokens that expire '
        'after 7 days: set it to "In production" in the Google Cloud console to keep them)'
    )
