"""The worker's ``render`` task: a job's workspace to ``work/<job_id>/video.mp4``.

The panels, ``speech.json`` and ``script.json`` of ``work/<job_id>/`` become the video, at
the size VIDEO_FORMAT names (``landscape`` 1920×1080, or ``shorts`` 1080×1920), with the
push-ins MOTION asks for, the close views in the chapter's reading order, and a bed from
MUSIC_DIR under the voice when that folder holds a track. With SHORTS_CUT (and a 16:9
video), the chapter's opening is rendered again in 9:16 as ``shorts.mp4``: whole
segments up to SHORTS_SECONDS, from the same plan. A video
already rendered for this job (a retry after the worker or the daemon died past the
render) is kept, not rendered again. Before rendering, every subtitle is checked against
the font (``fonts.displayable``): a character it has no glyph for is replaced by a
stand-in or dropped, with a warning.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.pipeline.providers.fonts import displayable
from services.pipeline.providers.render.narration_audio import music_tracks
from services.pipeline.providers.render.render_local import LANDSCAPE, PORTRAIT, Pieces, Segment, render_video
from services.pipeline.settings import PipelineSettings
from services.pipeline.workspace import Workspace

__all__ = ["VIDEO_FORMATS", "music_for", "opening_count", "render", "video_size"]

logger = logging.getLogger(__name__)

VIDEO_FORMATS = {"landscape": LANDSCAPE, "shorts": PORTRAIT}
SHORTS_MAX_SECONDS = 180  # YouTube takes Shorts up to 3 minutes
_ERRORS = {"render": "RenderError", "upload": "UploadError"}


def video_size(settings: PipelineSettings) -> tuple[int, int]:
    """VIDEO_FORMAT as a frame size."""
    return VIDEO_FORMATS[settings.video_format]


def render(work: Workspace, settings: PipelineSettings, pieces: Pieces | None = None) -> dict[str, Any]:
    """Render the job's video (or keep the one already made), and its Shorts cut when
    SHORTS_CUT asks for one; return the worker's output. ``pieces`` keeps the finished
    pieces between attempts (a Spot worker's bucket). The account's settings apply
    (``[accounts.<id>]``: MOTION, MUSIC_DIR, SHORTS_CUT, SHORTS_SECONDS), as the upload's do."""
    settings = _account_settings(work, settings)
    wants_shorts = settings.shorts_cut and settings.video_format == "landscape"
    if work.video.exists() and (work.shorts.exists() or not wants_shorts):
        return _output(work)
    speech = work.read("speech.json")
    segments = [_segment(work, item) for item in speech["segments"]]
    options = {"work_dir": work.root, "motion": settings.motion, "rtl": _reads_rtl(work),
               "music": music_for(work, settings), "pieces": pieces}
    if not work.video.exists():
        render_video(segments, work.video, size=video_size(settings), **options)
    if wants_shorts and not work.shorts.exists():
        count = opening_count([float(item["seconds"]) for item in speech["segments"]], settings.shorts_seconds)
        if count:
            render_video(segments[:count], work.shorts, size=PORTRAIT, **options)
    return _output(work)


def opening_count(seconds: Sequence[float], limit: float) -> int:
    """How many segments from the start make the Shorts cut: whole segments (no sentence
    cut in half) as long as they fit in ``limit`` seconds; the first alone when it is longer
    but still a Short (SHORTS_MAX_SECONDS); none when even that is too long."""
    total, count = 0.0, 0
    for length in seconds:
        if total + length > limit:
            break
        total, count = total + length, count + 1
    if count == 0 and seconds and seconds[0] <= SHORTS_MAX_SECONDS:
        return 1
    return count


def _output(work: Workspace) -> dict[str, Any]:
    shorts = {"shorts": str(work.shorts)} if work.shorts.exists() else {}
    return {"job_id": work.job_id, "status": "completed", "video": str(work.video), **shorts}


def music_for(work: Workspace, settings: PipelineSettings) -> Path | None:
    """The bed for this job's video: one of MUSIC_DIR's tracks (default ``DATA_DIR/music``),
    the same for a job every time it is rendered and turning over from job to job; None
    when the folder is missing or holds no audio file (a video without music)."""
    tracks = music_tracks(settings.music_folder(work.data_dir))
    if not tracks:
        return None
    return tracks[zlib.crc32(work.job_id.encode()) % len(tracks)]


def _account_settings(work: Workspace, settings: PipelineSettings) -> PipelineSettings:
    """``settings`` with the job's account applied (its ``source.json`` names it)."""
    if not settings.accounts:
        return settings
    try:
        account = work.read("source.json").get("account_id")
    except (OSError, ValueError):
        return settings
    return settings.for_account(str(account or "default"))


def _reads_rtl(work: Workspace) -> bool:
    """Whether the chapter reads right to left (``source.json``, as the panel cut decided):
    a close view of a panel starts at its top right then."""
    try:
        return work.read("source.json").get("reading_direction") == "rtl"
    except (OSError, ValueError):
        return False


def _segment(work: Workspace, item: dict[str, Any]) -> Segment:
    """A speech.json entry as the renderer's Segment, its texts made drawable by the font."""
    panels = [work.panels / name for name in (item.get("panels") or [item["panel"]])]
    cues = tuple(
        (float(cue["start"]), float(cue["end"]), _drawable(work, cue["text"])) for cue in item.get("cues", [])
    )
    return Segment(
        panels[0], _drawable(work, item["text"]), work.audio / item["audio"], cues, tuple(panels[1:])
    )


def _drawable(work: Workspace, text: str) -> str:
    clean, dropped = displayable(text)
    if dropped:
        logger.warning(
            "subtitle characters the font cannot draw were dropped",
            extra={"job_id": work.job_id, "stage": "worker:render", "dropped": dropped},
        )
    return clean
