"""What a pipeline run tells a person: the notifications its checkpoints call for.

The machine saves a checkpoint after every state; both job kinds hand each one to
``RunAlerts.saw``, which, when the run enters a state a person should hear about, calls
the scheduler's notifier (``services.scheduler.notifications``):

- QuotaReached from CheckQuota (the day was full before this run made a video):
  ``quota_reached``;
- Done after the video just counted filled the day (IncrementCounter's ``daily_count`` >=
  ``daily_quota``): ``quota_reached``;
- QuotaReached caught from WaitForUpload's ``YouTubeQuotaError``: ``youtube_quota_exhausted``;
- HandleError for an upload refused over the channel's OAuth token (a ``YouTubeAuthError``:
  the refresh refused, the token revoked or missing; the upload worker reports it as the
  cause ``YouTubeAuthError: ...``, ``tasks/worker.py``): ``token_refresh_failed``.

``alerts_of`` is the rule (pure); ``RunAlerts`` remembers the last state it saw, so a state
saved twice (a retry of HandleError) is told once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.pipeline.engine.machine import Checkpoint
from services.pipeline.errors import YOUTUBE_QUOTA
from services.pipeline.jobs.run_document import PipelineRun
from services.pipeline.stages.names import State
from services.scheduler.notifications import (
    QUOTA_REACHED,
    TOKEN_REFRESH_FAILED,
    YOUTUBE_QUOTA_EXHAUSTED,
    Notifier,
)

__all__ = ["AUTH_ERROR", "Alert", "RunAlerts", "alerts_of"]

AUTH_ERROR = "YouTubeAuthError"
"""The class name of ``providers/upload/youtube_errors.YouTubeAuthError`` (not imported:
it would load the Google client), as the worker's cause begins with it."""


@dataclass(frozen=True)
class Alert:
    """One notification: its event, its one-line message and its fields."""

    event: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


def _token_refused(error: Mapping[str, Any]) -> bool:
    return error.get("Error") == AUTH_ERROR or str(error.get("Cause") or "").startswith(f"{AUTH_ERROR}:")


def alerts_of(cp: Checkpoint, job_id: str) -> list[Alert]:
    """What the run of job ``job_id`` should tell on entering ``cp.state`` (pure)."""
    account = cp.account_id or "default"
    video = cp.video_job_id or job_id
    base = {"account_id": account, "job_id": job_id, "video_job_id": video}
    error = cp.error or {}
    if cp.state == State.QUOTA_REACHED and error.get("Error") == YOUTUBE_QUOTA:
        return [
            Alert(
                YOUTUBE_QUOTA_EXHAUSTED,
                f"account {account}: YouTube's upload quota is spent for today; video {video} is rendered "
                "and uploads after the quota resets (00:05 Pacific time)",
                {**base, "cause": error.get("Cause")},
            )
        ]
    if cp.state == State.QUOTA_REACHED:
        counts = PipelineRun().variables(cp)
        quota, count = counts["daily_quota"], counts["daily_count"]
        then = (
            "today's daily run makes no video"
            if cp.loop
            else f"video job {job_id} moves to 08:00 tomorrow (Vietnam time)"
        )
        return [
            Alert(
                QUOTA_REACHED,
                f"account {account}: the daily quota is reached ({count} of {quota} videos); {then}",
                {**base, "daily_count": count, "daily_quota": quota},
            )
        ]
    if cp.state == State.DONE and State.INCREMENT_COUNTER in cp.outputs:
        counts = PipelineRun().variables(cp)
        quota, count = counts["daily_quota"], counts["daily_count"]
        if quota > 0 and count >= quota:
            return [
                Alert(
                    QUOTA_REACHED,
                    f"account {account} reached its daily quota: {count} of {quota} videos published today",
                    {**base, "daily_count": count, "daily_quota": quota},
                )
            ]
    if cp.state == State.HANDLE_ERROR and _token_refused(error):
        return [
            Alert(
                TOKEN_REFRESH_FAILED,
                f"account {account}: the YouTube token no longer works, so video {video} was not uploaded; "
                f"run `python run_scheduler.py youtube-auth --account {account}`",
                {**base, "cause": error.get("Cause")},
            )
        ]
    return []


class RunAlerts:
    """Sends the alerts of one run's checkpoints, each state once as the run enters it.

    :param notifier: where they go (the scheduler's ``notifier``).
    :param job_id: the job whose run this is.
    """

    def __init__(self, notifier: Notifier, job_id: str) -> None:
        self._notifier = notifier
        self._job_id = job_id
        self._last: str | None = None

    def saw(self, cp: Checkpoint) -> None:
        """``cp`` was just saved: notify what entering its state calls for."""
        if cp.state == self._last:
            return
        self._last = cp.state
        for alert in alerts_of(cp, self._job_id):
            self._notifier.notify(alert.event, alert.message, **alert.fields)
