"""Errors of the video pipeline: one tree, under the scheduler's ``SchedulerError``.

Every exception the pipeline raises on purpose derives from ``VideoPipelineError``, which
is a ``SchedulerError``: its ``exit_code`` and ``http_status`` (set on each class, here
and on the providers' own errors) are how the CLI and the API show it, in the one place
the scheduler's shells already map errors (``services.scheduler.cli`` / ``api``)::

    VideoPipelineError             base (exit 1, HTTP 500)
    ├── DefinitionError            the definition file is wrong (exit 2: fix the file)
    ├── PipelineFailed             an error no Retry or Catch handled ended a run
    │                              (``engine/machine.py``)
    ├── the providers' errors      MangaDexError, YouTubeAuthError, YouTubeUploadError,
    │                              EdgeTTSUnavailable, RetryLater (``providers/``)
    └── PipelineError              a state's error, carrying the Step Functions error *name*

A state's Retry and Catch match on these names exactly as Step Functions does::

    PipelineError              ``name`` is what ErrorEquals matches
    ├── StateTimeout           States.Timeout: the state ran past its TimeoutSeconds
    ├── HeartbeatTimeout       States.HeartbeatTimeout: no heartbeat for HeartbeatSeconds
    ├── TaskFailed             States.TaskFailed, or the error a worker reported (name + cause)
    ├── WorkerLost             WorkerLost: the worker died without a result (killed by a signal,
    │                          its pid gone: a restart, a reboot, the OOM killer); the machine
    │                          relaunches it at its Start* state (policy.on_lost_worker)
    ├── YouTubeQuotaError      YouTubeQuotaError: the upload quota is spent until it resets
    └── LLMAuthError           the script writer's key was refused (``providers/script``)

Any other exception a stage raises is reported under its class name (``ValueError``...),
which ``States.ALL`` and ``States.TaskFailed`` match, as for a Lambda's errorType.
"""

from __future__ import annotations

from services.scheduler.errors import SchedulerError

__all__ = [
    "ALL",
    "DefinitionError",
    "HEARTBEAT_TIMEOUT",
    "HeartbeatTimeout",
    "PipelineError",
    "StateTimeout",
    "TASK_FAILED",
    "TIMEOUT",
    "TaskFailed",
    "VideoPipelineError",
    "WORKER_LOST",
    "WorkerLost",
    "YOUTUBE_QUOTA",
    "YouTubeQuotaError",
    "error_name",
]

ALL = "States.ALL"
TIMEOUT = "States.Timeout"
HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"
TASK_FAILED = "States.TaskFailed"
YOUTUBE_QUOTA = "YouTubeQuotaError"
WORKER_LOST = "WorkerLost"


class VideoPipelineError(SchedulerError):
    """Base of every error the pipeline raises on purpose (a ``SchedulerError``)."""

    code = "pipeline_error"


class PipelineError(VideoPipelineError):
    """Base of the errors a state raises on purpose; ``cause`` is the human-readable part."""

    name = TASK_FAILED

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class StateTimeout(PipelineError):
    """The state ran longer than its TimeoutSeconds."""

    name = TIMEOUT


class HeartbeatTimeout(PipelineError):
    """A worker sent no heartbeat for the state's HeartbeatSeconds."""

    name = HEARTBEAT_TIMEOUT


class TaskFailed(PipelineError):
    """A task failed with a given error name (a worker's SendTaskFailure ``error``)."""

    def __init__(self, cause: str, *, name: str = TASK_FAILED) -> None:
        super().__init__(cause)
        self.name = name


class WorkerLost(PipelineError):
    """A worker is gone without a result, and not by its own doing.

    It was killed by a signal (``systemctl restart`` under KillMode=control-group, the OOM
    killer), or its pid is gone or belongs to another program (the daemon restarted, the
    machine rebooted). A worker that *exited* with a code without reporting (a crash at
    import, bad arguments) is a TaskFailed instead: running it again would fail the same way.
    """

    name = WORKER_LOST


class YouTubeQuotaError(PipelineError):
    """YouTube refused the upload because the channel's daily quota is spent."""

    name = YOUTUBE_QUOTA


class DefinitionError(VideoPipelineError):
    """The pipeline definition file is invalid; the message names the state and field."""

    exit_code = 2
    code = "invalid_definition"


def error_name(exc: BaseException) -> str:
    """The name Retry/Catch match for ``exc``: its ``name``, else its class name."""
    if isinstance(exc, PipelineError):
        return exc.name
    if isinstance(exc, TimeoutError):
        return TIMEOUT
    return type(exc).__name__
