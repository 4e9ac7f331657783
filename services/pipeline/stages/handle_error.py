"""handle-error: mark a video failed, record where and why, and log it.

Input (stage-functions.md)::

    {"job_id": "job-abc123",
     "error": {"Error": "States.TaskFailed", "Cause": "{\"errorMessage\": \"Timeout\", ...}"},
     "state": "GenerateScript",
     "execution_id": "..."}

Output: ``{"job_id": "job-abc123", "status": "failed", "error_logged": true}``.

The job's record gets ``stage: "failed"``, ``error_message`` (the Cause), ``failed_at``
(UTC ISO-8601), ``failed_state`` and ``failed_error`` (the error name). A failed video no
longer counts toward the day's quota (see ``quota.py``), so its slot is free again.
"""

from __future__ import annotations

import logging
from typing import Any

from services.pipeline.engine.context import StageContext
from services.pipeline.stages.names import State

__all__ = ["handler"]

logger = logging.getLogger(__name__)


def handler(event: dict[str, Any], context: StageContext) -> dict[str, Any]:
    """handle-error: the seed's input in, ``{"job_id", "status": "failed", "error_logged"}`` out."""
    job_id = event.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise ValueError("handle-error needs the job_id of the failed video")
    error = event.get("error") if isinstance(event.get("error"), dict) else {}
    name = str(error.get("Error") or "States.TaskFailed")
    cause = str(error.get("Cause") or name)
    state = str(event.get("state") or "unknown")
    fields = {
        "stage": "failed",
        "error_message": cause,
        "failed_at": context.now().isoformat(),
        "failed_state": state,
        "failed_error": name,
    }
    context.update_job(job_id, fields)
    logger.error(
        "video failed",
        extra={
            "job_id": job_id,
            "stage": State.HANDLE_ERROR,
            "failed_state": state,
            "error": name,
            "cause": cause,
            "execution_id": event.get("execution_id"),
        },
    )
    return {"job_id": job_id, "status": "failed", "error_logged": True}
