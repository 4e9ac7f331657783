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

__all__ = [
    "THUMBNAIL_SIZE",
    "describe",
    "describe_shorts",
    "make_thumbnail",
    "publish_time",
    "shorts_title",
    "striking_panel",
    "without_paths",
]

logger = logging.getLogger(__name__)

THUMBNAIL_SIZE = (1280, 720)
THUMBNAIL_MAX_BYTES = 2 * 1024 * 1024  # what thumbnails.set accepts
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


SHORTS_TAG = "#Shorts"
TITLE_LIMIT = 100  # YouTube's, in characters


def shorts_title(title: str) -> str:
    """The Shorts cut's title: the video's, cut at a word to leave room, then ``#Shorts``."""
    room = TITLE_LIMIT - len(SHORTS_TAG) - 1
    text = " ".join(title.split())
    if len(text) > room:
        text = text[:room].rsplit(" ", 1)[0].rstrip(" -–—:,") or text[:room]
    return f"{text} {SHORTS_TAG}"


def describe_shorts(full_url: str, script: dict[str, Any], source: dict[str, Any]) -> str:
    """The Shorts cut's description: where the whole chapter is first, then the video's own
    (credits included). ``full_url`` is the full video's (a web URL; a local file's path is
    kept out, as in every description)."""
    link = without_paths(full_url) if not full_url.startswith(("https://", "http://")) else full_url
    lead = f"Xem cả chương: {link}" if link else "Xem cả chương trên kênh."
    return "\n\n".join(part for part in (lead, describe(script, source)) if part)


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


def striking_panel(panels: list[Path]) -> Path:
    """The panel a thumbnail shows: the most striking, by colourfulness (Hasler and
    Süsstrunk's measure) plus contrast, on a small copy; a panel too narrow or too flat to
    crop to 16:9 counts less. ValueError for no panels; an unreadable one is passed over."""
    from PIL import Image

    best, best_score = None, -1.0
    for path in panels:
        try:
            with Image.open(path) as image:
                small = image.convert("RGB")
                small.thumbnail((160, 160))
        except OSError:
            continue
        best_score, best = max((best_score, best), (_striking(small), path), key=lambda pair: pair[0])
    if best is None:
        raise ValueError("no readable panel to make a thumbnail of")
    return best


def _striking(image: Any) -> float:
    import numpy as np

    rgb = np.asarray(image, dtype=np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    colourful = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    contrast = float((0.299 * r + 0.587 * g + 0.114 * b).std())
    aspect = image.width / image.height
    shape = min(aspect / (16 / 9), (16 / 9) / aspect) ** 0.25  # a tall strip crops worst
    return (colourful + contrast) * shape


def make_thumbnail(panel: Path, output: Path, title: str = "") -> Path:
    """A 1280×720 JPEG under 2 MB: ``panel`` cropped to fill the frame (its upper part
    kept, where faces and bubbles usually are), the ``title`` in Be Vietnam Pro over a
    darkened lower edge."""
    from PIL import Image, ImageDraw, ImageFont, ImageOps  # here: the daemon loads this module at start

    from services.pipeline.providers.fonts import font_path, wrap_text

    with Image.open(panel) as image:
        canvas = ImageOps.fit(image.convert("RGB"), THUMBNAIL_SIZE, Image.Resampling.LANCZOS, centering=(0.5, 0.35))
    width, height = THUMBNAIL_SIZE
    if title.strip():
        shade = Image.new("L", THUMBNAIL_SIZE, 0)  # darkening from half way down to the bottom edge
        fade = Image.linear_gradient("L").resize((width, height - height // 2)).point(lambda v: v * 190 // 255)
        shade.paste(fade, (0, height // 2))
        canvas.paste(Image.new("RGB", THUMBNAIL_SIZE, (0, 0, 0)), (0, 0), shade)
        draw = ImageDraw.Draw(canvas)
        for size in (84, 72, 60, 50, 42):
            font = ImageFont.truetype(str(font_path("Bold")), size)
            lines = wrap_text(draw, title.strip(), font, int(width * 0.9))
            if len(lines) <= 2:
                break
        lines = lines[:2]
        line_height = int(font.size * 1.2)
        top = height - int(height * 0.06) - line_height * len(lines)
        for n, line in enumerate(lines):
            x = (width - draw.textlength(line, font=font)) / 2
            draw.text((x, top + n * line_height), line, font=font, fill=(255, 236, 120),
                      stroke_width=max(3, font.size // 14), stroke_fill=(0, 0, 0))
    output.parent.mkdir(parents=True, exist_ok=True)
    for quality in (90, 80, 70, 60):  # YouTube takes up to 2 MB
        canvas.save(output, "JPEG", quality=quality)
        if output.stat().st_size < THUMBNAIL_MAX_BYTES:
            break
    return output
