"""The pipeline's state names, in one place: the names ``config/pipeline.json`` uses.

``State`` is a ``StrEnum``, so each member is the string the definition, the checkpoints
and the logs hold (``State.CHECK_QUOTA == "CheckQuota"``). ``TASKS`` are the states with
a stage (the table in ``stages/__init__.py``); the rest are the Choice and Succeed states
the definition must also have.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["CHOICES", "State", "TASKS", "TERMINAL"]


class State(StrEnum):
    """Every state of the pipeline's definition."""

    CHECK_QUOTA = "CheckQuota"
    QUOTA_CHOICE = "QuotaChoice"
    FETCH_MANGA = "FetchManga"
    FETCH_CHOICE = "FetchChoice"
    GENERATE_SCRIPT = "GenerateScript"
    GENERATE_TTS = "GenerateTTS"
    START_RENDERER = "StartRenderer"
    WAIT_FOR_RENDER = "WaitForRender"
    CHECK_VIDEO = "CheckVideo"
    START_UPLOADER = "StartUploader"
    WAIT_FOR_UPLOAD = "WaitForUpload"
    CLEANUP = "Cleanup"
    INCREMENT_COUNTER = "IncrementCounter"
    CHECK_MORE_VIDEOS = "CheckMoreVideos"
    HANDLE_ERROR = "HandleError"
    QUOTA_REACHED = "QuotaReached"
    NO_MANGA_AVAILABLE = "NoMangaAvailable"
    DONE = "Done"


TASKS = (
    State.CHECK_QUOTA,
    State.FETCH_MANGA,
    State.GENERATE_SCRIPT,
    State.GENERATE_TTS,
    State.START_RENDERER,
    State.WAIT_FOR_RENDER,
    State.CHECK_VIDEO,
    State.START_UPLOADER,
    State.WAIT_FOR_UPLOAD,
    State.CLEANUP,
    State.INCREMENT_COUNTER,
    State.HANDLE_ERROR,
)
"""The Task states, each run by one stage function."""

CHOICES = (State.QUOTA_CHOICE, State.FETCH_CHOICE, State.CHECK_MORE_VIDEOS)
TERMINAL = (State.QUOTA_REACHED, State.NO_MANGA_AVAILABLE, State.DONE)
