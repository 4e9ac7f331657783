"""What a published video says about itself: title, description with credits, publish time, thumbnail.

Shared by both publishers (the local folder and YouTube). The description always ends
with the chapter's credits from ``source.json`` (for MangaDex: the site, the scanlation
group and the chapter's URL, as MangaDex's usage policy asks) and says the narration is
AI-made when an LLM wrote it.

Nothing published may carry a path of this machine, whatever ``source.json`` or the script
say: ``describe`` strips absolute filesystem paths (``/srv/data/…``, ``~/…``, ``C:\\…``,
``file://`` URLs) from every part of the description, with a warning in the log. Web
URLs (``https://mangadex.org/chapter/…``) stay.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from services.pipeline.stages.quota import VIETNAM_TZ

__all__ = ["THUMBNAIL_SIZE", "describe", "make_thumbnail", "publish_time", "without_paths"]

logger = logging.getLogger(__name__)

THUMBNAIL_SIZE = (1280, 720)
MIN_LEAD = timedelta(minutes=15)
"""A scheduled publish time is at least this far ahead of the upload."""


_SEGMENT = r"[^\s/\\()\[\]{}<>\"'“”‘’,;|]"
_SEGMENTS = _SEGMENT + r"+(?:(?:/| (?=" + _SEGMENT + r"*/))" + _SEGMENT + r"*)*"  # spaces inside
_PATH = re.compile(
    "|".join(
        (
            r"file:/+(?:" + _SEGMENTS + r")?",  # a file URL
            r"(?<![\w.:/~\\-])~?/" + _SEGMENTS,  # /abs/… or ~/… (not the // of a web URL)
            r"(?<![\w])[A-Za-z]:\\\S*",  # C:\…
        )
    ),
    re.IGNORECASE,
)


def without_paths(text: str) -> str:
    """``text`` with every absolute filesystem path taken out (web URLs stay)."""
    if not _PATH.search(text):
        return text
    logger.warning("a path was taken out of what is published", extra={"stage": "publish"})
    stripped = _PATH.sub("", text)
    stripped = re.sub(r"\(\s*\)|\[\s*\]", "", stripped)  # brackets the path was in
    stripped = re.sub(r"[ \t]+([)\]])", r"\1", stripped)
    return "\n".join(" ".join(line.split()) for line in stripped.splitlines()).strip()


def describe(script: dict[str, Any], source: dict[str, Any]) -> str:
    """The video's description: the script's, then the credits (and the AI notice); no paths."""
    parts = [without_paths(str(script.get("description") or "").strip())]
    credits = without_paths(str(source.get("credits") or "").strip())
    if credits:
        parts.append(f"Nguồn: {credits}")
    if script.get("writer") not in (None, "template"):
        parts.append("Lời dẫn do AI viết và đọc bằng giọng tổng hợp.")
    return "\n\n".join(part for part in parts if part)


def publish_time(at: str | None, now: datetime) -> datetime | None:
    """The next ``HH:MM`` Vietnam time at least MIN_LEAD after ``now`` (aware UTC), or None."""
    if not at:
        return None
    wall = time.fromisoformat(at)
    earliest = (now + MIN_LEAD).astimezone(VIETNAM_TZ)
    candidate = datetime.combine(earliest.date(), wall, tzinfo=VIETNAM_TZ)
    if candidate < earliest:
        candidate = datetime.combine(earliest.date() + timedelta(days=1), wall, tzinfo=VIETNAM_TZ)
    return candidate.astimezone(now.tzinfo)


def make_thumbnail(panel: Path, output: Path) -> Path:
    """A 1280×720 JPEG of ``panel`` (fitted, dark bars), well under YouTube's 2 MB limit."""
    from PIL import Image  # here: the daemon loads this module at start, and needs Pillow only to upload

    canvas = Image.new("RGB", THUMBNAIL_SIZE, (16, 16, 20))
    with Image.open(panel) as image:
        image = image.convert("RGB")
        image.thumbnail(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
        canvas.paste(image, ((THUMBNAIL_SIZE[0] - image.width) // 2, (THUMBNAIL_SIZE[1] - image.height) // 2))
    output.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(output, "JPEG", quality=88)
    return output
