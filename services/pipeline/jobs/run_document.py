"""What the pipeline adds to the generic machine: its document variables and bookkeeping.

The machine (``engine/machine.py``) knows states, rules and retries, not videos. A
pipeline run hands it a ``PipelineRun`` as its hooks:

- ``variables``: fields of the run's document (``$``) that the definition's rules and
  Parameters read besides the stages' outputs: ``daily_count`` (IncrementCounter's, else
  CheckQuota's: after a failed video the counter did not run), ``daily_quota``,
  ``failed_in_a_row`` (how many of the day's videos in a row ended in HandleError) and
  ``exclude_job_id`` (a single video leaves itself out of the quota count);
- ``after_task``: FetchManga's new video id (and ``on_video``, with which the daily run
  records each video as its own job); each video's outcome when IncrementCounter
  (published) or HandleError (failed) ends it;
- ``after_choice``: CheckMoreVideos going back to FetchManga starts a new video, so the
  last one's outputs, error and relaunch counts are forgotten (CheckQuota's stays).

The rules themselves (quota reached, no manga, another video) are in
``config/pipeline.json``. Pure but for ``on_video``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from services.pipeline.engine.machine import Checkpoint
from services.pipeline.stages.names import State

__all__ = ["MAX_FAILED_IN_A_ROW", "PipelineRun", "check_more_videos", "failed_in_a_row"]

logger = logging.getLogger(__name__)

MAX_FAILED_IN_A_ROW = 3
"""The day's loop stops after this many videos in a row ended in HandleError (the first
rule of CheckMoreVideos in config/pipeline.json says the same number). A failed video does
not count against the quota, so without this a broken backend (an expired YouTube token,
a full disk) would take every chapter the source has, one failure at a time."""


def failed_in_a_row(outcomes: Sequence[str]) -> int:
    """How many of the last ``outcomes`` (``published`` / ``failed``, in order) are failures."""
    count = 0
    for outcome in reversed(outcomes):
        if outcome != "failed":
            break
        count += 1
    return count


def check_more_videos(daily_count: int, daily_quota: int, *, loop: bool, failed_in_a_row: int = 0) -> str:
    """What CheckMoreVideos' rules in config/pipeline.json decide, as a plain function (for
    reading and for tests that pin the definition to it)."""
    if failed_in_a_row >= MAX_FAILED_IN_A_ROW:
        return State.DONE
    return State.FETCH_MANGA if loop and daily_count < daily_quota else State.DONE


class PipelineRun:
    """The machine's hooks for a pipeline run (a single video, or the daily loop).

    :param on_video: called when FetchManga starts a video (its output, the checkpoint).
    """

    def __init__(self, on_video: Callable[[dict[str, Any], Checkpoint], Awaitable[None]] | None = None) -> None:
        self._on_video = on_video

    def variables(self, cp: Checkpoint) -> dict[str, Any]:
        quota_check = cp.outputs.get(State.CHECK_QUOTA, {})
        counted = cp.outputs.get(State.INCREMENT_COUNTER, {}).get("daily_count")
        count = counted if counted is not None else quota_check.get("daily_count", 0)
        return {
            "daily_count": int(count),
            "daily_quota": int(quota_check.get("daily_quota", 0)),
            "failed_in_a_row": failed_in_a_row([str(v.get("outcome")) for v in cp.videos]),
            "exclude_job_id": cp.video_job_id if cp.video_job_id and not cp.loop else None,
        }

    async def after_task(self, state: str, output: dict[str, Any], cp: Checkpoint) -> None:
        if state == State.FETCH_MANGA and output.get("status") == "success":
            cp.video_job_id = str(output["job_id"])
            if self._on_video is not None:
                await self._on_video(output, cp)
        if state in (State.INCREMENT_COUNTER, State.HANDLE_ERROR):
            outcome = "failed" if state == State.HANDLE_ERROR else "published"
            cp.videos.append({"job_id": cp.video_job_id, "outcome": outcome})

    def after_choice(self, state: str, next_state: str, cp: Checkpoint) -> None:
        if state != State.CHECK_MORE_VIDEOS:
            return
        failures = self.variables(cp)["failed_in_a_row"]
        if next_state == State.DONE and cp.loop and failures >= MAX_FAILED_IN_A_ROW:
            logger.warning(
                "the day's loop stops: videos keep failing",
                extra={"stage": state, "job_id": cp.video_job_id, "failed_in_a_row": failures},
            )
        if next_state == State.FETCH_MANGA:  # a new video: forget the last one's outputs and error
            cp.outputs = {k: v for k, v in cp.outputs.items() if k == State.CHECK_QUOTA}
            cp.video_job_id, cp.error = None, None
            cp.relaunches = {}
