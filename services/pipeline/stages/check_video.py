"""CheckVideo: the quality gate between the render and the upload.

Input ``{"job_id"}``. The rendered file (``work/<job_id>/video.mp4``) is measured
(``quality.measure``: codecs, faststart, A/V ends, keyframes, loudness, true peak, cuts a
minute, the longest shot, black and frozen stretches, every subtitle character in the
font) and judged (``quality.gate.judge``). The figures go on the job's record under
``quality`` (``{"passed", "figures", "failures"}``) whatever the verdict, so a person
reading the day's file sees them. Output on a pass::

    {"job_id": ..., "passed": true, "figures": {...}}

A video that fails is never uploaded: ``VideoQualityError`` names each figure outside its
limit in one line, and the definition's Catch takes the video to HandleError with it.
Its Retry is empty for that error (measuring the same file again gives the same figures).
``run_scheduler.py check FILE.mp4`` runs the same gate on any file.
"""

from __future__ import annotations

import logging
from typing import Any

from services.pipeline.errors import PipelineError
from services.pipeline.stages.names import State
from services.pipeline.workspace import Workspace

__all__ = ["VIDEO_QUALITY", "VideoQualityError", "handler", "subtitles_of"]

logger = logging.getLogger(__name__)

VIDEO_QUALITY = "VideoQualityError"


class VideoQualityError(PipelineError):
    """The rendered video falls short of the gate's limits (the cause names each figure)."""

    name = VIDEO_QUALITY


def subtitles_of(work: Workspace) -> str:
    """Every subtitle text of the job (``speech.json``'s segments and their cue lines)."""
    try:
        speech = work.read("speech.json")
    except (OSError, ValueError):
        return ""
    texts = []
    for segment in speech.get("segments", []):
        texts.append(str(segment.get("text", "")))
        texts.extend(str(cue.get("text", "")) for cue in segment.get("cues", []))
    return "\n".join(texts)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """CheckVideo: measure and judge the job's video; VideoQualityError if it falls short."""
    from services.pipeline.quality.gate import judge  # PyAV and numpy: loaded when a video is checked
    from services.pipeline.quality.measure import measure

    job_id = str(event["job_id"])
    work = Workspace(context.data_dir, job_id)
    if not work.video.exists():
        raise FileNotFoundError(f"{work.video} is missing: the render did not leave a video to check")
    figures = measure(work.video, subtitles=subtitles_of(work)).to_dict()
    failures = judge(figures)
    record = {
        "passed": not failures,
        "figures": figures,
        "failures": [{"figure": f.figure, "value": f.value, "limit": f.limit} for f in failures],
    }
    context.update_job(job_id, {"quality": record})
    if failures:
        cause = "the video fails the quality gate: " + "; ".join(str(f) for f in failures)
        logger.error("video refused by the gate", extra={"job_id": job_id, "stage": State.CHECK_VIDEO,
                                                         "failures": record["failures"]})
        raise VideoQualityError(cause + " (figures on the job under 'quality'; run_scheduler.py check FILE shows them)")
    logger.info("video passes the gate", extra={"job_id": job_id, "stage": State.CHECK_VIDEO,
                                                "cuts_per_minute": figures.get("cuts_per_minute"),
                                                "loudness_lufs": figures.get("loudness_lufs")})
    return {"job_id": job_id, "passed": True, "figures": figures}
