"""The worker's ``render`` task: a job's workspace to ``work/<job_id>/video.mp4``.

The panels, ``speech.json`` and ``script.json`` of ``work/<job_id>/`` become the video, at
the size VIDEO_FORMAT names (``landscape`` 1920×1080, or ``shorts`` 1080×1920), with the
push-ins MOTION asks for, the close views in the chapter's reading order. A video
already rendered for this job (a retry after the worker or the daemon died past the
render) is kept, not rendered again. Before rendering, every subtitle is checked against
the font (``fonts.displayable``): a character it has no glyph for is replaced by a
stand-in or dropped, with a warning.
"""

from __future__ import annotations

import logging
from typing import Any

from services.pipeline.providers.fonts import displayable
from services.pipeline.providers.render.render_local import LANDSCAPE, PORTRAIT, Segment, render_video
from services.pipeline.settings import PipelineSettings
from services.pipeline.workspace import Workspace

__all__ = ["VIDEO_FORMATS", "render", "video_size"]

logger = logging.getLogger(__name__)

VIDEO_FORMATS = {"landscape": LANDSCAPE, "shorts": PORTRAIT}
_ERRORS = {"render": "RenderError", "upload": "UploadError"}


def video_size(settings: PipelineSettings) -> tuple[int, int]:
    """VIDEO_FORMAT as a frame size."""
    return VIDEO_FORMATS[settings.video_format]


def render(work: Workspace, settings: PipelineSettings) -> dict[str, Any]:
    """Render the job's video (or keep the one already made); return the worker's output."""
    if not work.video.exists():
        speech = work.read("speech.json")
        segments = [_segment(work, item) for item in speech["segments"]]
        render_video(
            segments, work.video, size=video_size(settings), work_dir=work.root, motion=settings.motion,
            rtl=_reads_rtl(work),
        )
    return {"job_id": work.job_id, "status": "completed", "video": str(work.video)}


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
