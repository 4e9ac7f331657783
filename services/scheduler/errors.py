"""Typed errors of the scheduler core.

::

    SchedulerError                 base; ``exit_code`` and ``http_status`` say how shells show it
    ├── JobValidationError         bad input: a field and the rule it broke (exit 2, HTTP 422)
    ├── JobNotFoundError           no job with that id (exit 1, HTTP 404)
    ├── JobConflictError           the job's state forbids the change (exit 1, HTTP 409)
    ├── ScheduleNotFoundError      no schedule with that id (exit 1, HTTP 404)
    ├── ExecutionNotFoundError     no execution with that id (exit 1, HTTP 404)
    ├── ScheduleConflictError      the schedule's state or name forbids the change (exit 1, HTTP 409)
    ├── CreatorLimitError          a creator holds MAX_SCHEDULES_PER_CREATOR already (exit 1, HTTP 429)
    ├── StorageError               the data dir could not be read or written (exit 1, HTTP 500)
    │   └── DiskFullError          its disk has no space left (exit 1, HTTP 507)
    ├── DataDirMissingError        a read asked for a data dir that does not exist (exit 1, HTTP 404)
    ├── OutcomeUnknownError        the daemon took a change but did not answer in time (exit 1)
    ├── LockHeldError              another process owns the data dir (exit 1, HTTP 503)
    └── DaemonUnavailableError     the daemon holds the lock but its API does not answer (exit 1)

Every message is one line a user can act on.
"""

from __future__ import annotations

import copy

__all__ = [
    "DaemonUnavailableError",
    "DataDirMissingError",
    "DiskFullError",
    "JobConflictError",
    "JobNotFoundError",
    "JobValidationError",
    "LockHeldError",
    "CreatorLimitError",
    "ExecutionNotFoundError",
    "OutcomeUnknownError",
    "ScheduleConflictError",
    "ScheduleNotFoundError",
    "SchedulerError",
    "StorageError",
]


class SchedulerError(Exception):
    """Base of every error the scheduler raises on purpose."""

    exit_code = 1
    http_status = 500
    code = "scheduler_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        """The JSON body the HTTP API answers with."""
        return {"error": self.code, "message": self.message}


class JobValidationError(SchedulerError):
    """A job field broke a rule: ``field`` names it, ``rule`` says what is allowed."""

    exit_code = 2
    http_status = 422
    code = "invalid_job"

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "field": self.field}


class JobNotFoundError(SchedulerError):
    """No job has this id."""

    http_status = 404
    code = "not_found"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job not found: {job_id}")
        self.job_id = job_id


class JobConflictError(SchedulerError):
    """The job exists but its state forbids the requested change."""

    http_status = 409
    code = "conflict"


class StorageError(SchedulerError):
    """Reading or writing the job files failed.

    ``disk_changed`` is False when the failed write replaced no file (the disk is as it
    was before), True when it may have (or when it is not known).
    """

    code = "storage_error"

    def __init__(self, message: str, *, disk_changed: bool = True) -> None:
        super().__init__(message)
        self.disk_changed = disk_changed

    def with_note(self, note: str) -> StorageError:
        """The same error with ``note`` (what became of the change) after its message."""
        noted = copy.copy(self)
        noted.message = f"{self.message}; {note}"
        noted.args = (noted.message,)
        return noted


class DiskFullError(StorageError):
    """The disk holding the data dir has no space left (ENOSPC, or a quota: EDQUOT)."""

    http_status = 507
    code = "disk_full"


class DataDirMissingError(SchedulerError):
    """A command that only reads was pointed at a data dir that does not exist."""

    http_status = 404
    code = "no_data_dir"

    def __init__(self, data_dir: str) -> None:
        super().__init__(
            f"data dir {data_dir} does not exist (nothing was added there yet; check --data-dir / DATA_DIR)"
        )


class OutcomeUnknownError(SchedulerError):
    """A change was sent to the daemon, which did not answer in time: it may have been made."""

    code = "outcome_unknown"


class LockHeldError(SchedulerError):
    """The data dir is locked by another process; ``holder`` says which, when known."""

    http_status = 503
    code = "locked"

    def __init__(self, data_dir: str, holder: dict | None) -> None:
        if holder:
            who = f"{holder.get('role', 'process')} pid {holder.get('pid', '?')}"
            if holder.get("host"):
                who += f" on {holder['host']}"
            if holder.get("started_at"):
                who += f" since {holder['started_at']}"
        else:
            who = "another process"
        super().__init__(f"data dir {data_dir} is locked by {who}")
        self.holder = holder or {}


class DaemonUnavailableError(SchedulerError):
    """The daemon owns the data dir but its local API could not be reached."""

    http_status = 503
    code = "daemon_unavailable"


class ScheduleNotFoundError(SchedulerError):
    """No schedule has this id."""

    http_status = 404
    code = "schedule_not_found"

    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"no such schedule: {schedule_id} (list them with: schedule list)")
        self.schedule_id = schedule_id


class ScheduleConflictError(SchedulerError):
    """The change conflicts with the schedule's state or another schedule (a taken name)."""

    http_status = 409
    code = "conflict"


class CreatorLimitError(SchedulerError):
    """A creator already holds as many schedules as MAX_SCHEDULES_PER_CREATOR allows."""

    http_status = 429
    code = "too_many_schedules"

    def __init__(self, creator: str, limit: int) -> None:
        super().__init__(
            f"{creator} already has {limit} schedules (MAX_SCHEDULES_PER_CREATOR); delete some first"
        )


class ExecutionNotFoundError(SchedulerError):
    """No execution has this id."""

    http_status = 404
    code = "execution_not_found"

    def __init__(self, execution_id: str) -> None:
        super().__init__(f"no such execution: {execution_id} (list them with: executions)")
