"""How a daily run's video job ends, from the loop's checkpoint (pure: no I/O, no clock).

- the video's last state (IncrementCounter) is done: ``completed``, with its URL;
- HandleError ran for it: ``failed``, with the state and cause;
- YouTube's quota stopped it after the render: it becomes a standalone ``pipeline.video``
  job, ``scheduled`` just after YouTube's reset, with a checkpoint at StartUploader, so
  it uploads then without rendering again;
- otherwise it is still under way: None.
"""

from __future__ import annotations

from datetime import datetime

from services.pipeline.engine.machine import Checkpoint
from services.pipeline.stages.names import State
from services.scheduler.models import JobStatus, ScheduledJob

__all__ = ["video_outcome"]


def video_outcome(
    video: ScheduledJob, cp: Checkpoint, now: datetime, youtube_reset: datetime
) -> ScheduledJob | None:
    """The video job as it ends at checkpoint ``cp``, or None while it is under way."""
    extra = dict(video.model_extra or {})
    if State.HANDLE_ERROR in cp.outputs and cp.error is not None:
        error = f"{cp.error.get('state')} failed with {cp.error.get('Error')}: {cp.error.get('Cause')}"
        return _with(
            video,
            extra,
            status=JobStatus.FAILED,
            error=error,
            completed_at=now,
            updated_at=now,
            stage="failed",
        )
    if State.INCREMENT_COUNTER in cp.outputs or (
        State.WAIT_FOR_UPLOAD in cp.outputs and cp.state in (State.DONE, State.CHECK_MORE_VIDEOS)
    ):
        upload = cp.outputs.get(State.WAIT_FOR_UPLOAD, {})
        result = {"status": "published", "youtube_url": upload.get("youtube_url")}
        return _with(
            video,
            extra,
            status=JobStatus.COMPLETED,
            result=result,
            error=None,
            completed_at=now,
            updated_at=now,
            stage="completed",
        )
    if cp.state == State.QUOTA_REACHED and State.WAIT_FOR_RENDER in cp.outputs:
        resume = cp.model_copy(update={"state": State.START_UPLOADER, "loop": False, "error": None, "videos": []})
        resume.outputs.pop(State.START_UPLOADER, None)
        return _with(
            video,
            extra,
            status=JobStatus.SCHEDULED,
            scheduled_time=youtube_reset,
            updated_at=now,
            error="YouTube upload quota spent; the upload resumes after it resets",
            stage="uploading",
            pipeline=resume.model_dump(mode="json"),
        )
    return None


def _with(video: ScheduledJob, extra: dict, **changes) -> ScheduledJob:
    return ScheduledJob.model_validate({**video.model_dump(), **extra, **changes})
