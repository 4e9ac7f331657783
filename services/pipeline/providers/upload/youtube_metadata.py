"""What a video is sent to YouTube with: ``UploadSettings`` and the ``videos.insert`` body.

``video_body`` turns a Vietnamese title, description and tags into the ``snippet`` /
``status`` body of ``videos.insert``, inside YouTube's limits (title 100 characters,
description 5000 UTF-8 bytes, tags 500 characters, no ``<`` ``>``), NFC so the counts match
YouTube's. ``rfc3339`` writes a publish time as YouTube wants it; ``video_url`` is the watch
page. Pure: no I/O, no Google client.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "CHUNK_UNIT",
    "DESCRIPTION_MAX_BYTES",
    "PRIVACY_STATUSES",
    "TAGS_MAX_CHARS",
    "TITLE_MAX_CHARS",
    "UploadSettings",
    "rfc3339",
    "video_body",
    "video_url",
]

LANGUAGE = "vi"
PRIVACY_STATUSES = ("private", "unlisted", "public")
TITLE_MAX_CHARS = 100
DESCRIPTION_MAX_BYTES = 5000
TAGS_MAX_CHARS = 500
CHUNK_UNIT = 256 * 1024
_ELLIPSIS = "…"
_FORBIDDEN_CHARS = str.maketrans("", "", "<>")


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
