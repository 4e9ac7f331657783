"""CheckVideo: the quality gate between the render and the upload.

Input ``{"job_id"}``. The rendered file (``work/<job_id>/video.mp4``) is measured
(``quality.measure``: codecs, faststart, A/V ends, keyframes, loudness, true peak, cuts a
minute, the longest shot, black and frozen stretches, every subtitle character in the
font) and judged (``quality.gate.judge``). The figures go on the job's record under
``quality`` (``{"passed", "figures", "failures"}``, and the same under ``shorts`` for a
Shorts cut, which is judged too) whatever the verdict, so a person reading the day's
file sees them. Output on a pass::

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


def _record(figures: dict[str, Any], failures: list[Any]) -> dict[str, Any]:
    return {
        "passed": not failures,
        "figures": figures,
        "failures": [{"figure": f.figure, "value": f.value, "limit": f.limit} for f in failures],
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """CheckVideo: measure and judge the job's video; VideoQualityError if it falls short."""
    from services.pipeline.quality.gate import judge  # PyAV and numpy: loaded when a video is checked
    from services.pipeline.quality.measure import measure

    job_id = str(event["job_id"])
    work = Workspace(context.data_dir, job_id)
    if not work.video.exists():
        raise FileNotFoundError(f"{work.video} is missing: the render did not leave a video to check")
    subtitles = subtitles_of(work)
    figures = measure(work.video, subtitles=subtitles).to_dict()
    failures = judge(figures)
    record = _record(figures, failures)
    causes = ["the video fails the quality gate: " + "; ".join(str(f) for f in failures)] if failures else []
    if work.shorts.exists():  # its Shorts cut is published too: held to the same limits
        shorts_figures = measure(work.shorts, subtitles=subtitles).to_dict()
        shorts_failures = judge(shorts_figures)
        record["shorts"] = _record(shorts_figures, shorts_failures)
        record["passed"] = record["passed"] and not shorts_failures
        if shorts_failures:
            causes.append("its Shorts cut fails: " + "; ".join(str(f) for f in shorts_failures))
    context.update_job(job_id, {"quality": record})
    if causes:
        logger.error("video refused by the gate", extra={"job_id": job_id, "stage": State.CHECK_VIDEO,
                                                         "failures": record["failures"]})
        raise VideoQualityError(
            "; ".join(causes) + " (figures on the job under 'quality'; run_scheduler.py check FILE shows them)"
        )
    logger.info("video passes the gate", extra={"job_id": job_id, "stage": State.CHECK_VIDEO,
                                                "cuts_per_minute": figures.get("cuts_per_minute"),
                                                "loudness_lufs": figures.get("loudness_lufs")})
    return {"job_id": job_id, "passed": True, "figures": figures,
            **({"shorts_figures": record["shorts"]["figures"]} if "shorts" in record else {})}
