"""Task tokens: the seed's waitForTaskToken handshake, kept between the machine and a worker.

The machine mints a token and starts a worker with it; the worker reports through a
*transport* and the machine's WaitFor* state reads the same transport:

- ``heartbeat(token)``: the worker is alive (the seed's SendTaskHeartbeat), every
  HeartbeatSeconds / 5;
- ``succeed(token, output)`` / ``fail(token, error, cause)``: the one result
  (SendTaskSuccess / SendTaskFailure); the first result written wins.

``LocalTransport`` keeps them under ``DATA_DIR/tasks/<token>/`` as ``heartbeat`` (its
mtime and content are the last beat) and ``result.json``, written atomically, beside
``task.json``: what the machine hands the worker (``write_task`` / ``read_task``: the job,
the data dir and the settings, secrets left out), so a worker reads no setting from the
environment it inherits. A later
transport (S3, for EC2 Spot workers) implements the same four methods.

``judge`` is the pure rule WaitFor* applies at each look: a result ends the wait; else
no heartbeat for HeartbeatSeconds is States.HeartbeatTimeout; else past TimeoutSeconds is
States.Timeout; else keep waiting.
"""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from services.pipeline.errors import HeartbeatTimeout, StateTimeout, TaskFailed
from services.pipeline.json_records import encode_record, parse_record
from services.scheduler.atomic_file import write_atomic

__all__ = [
    "LocalTransport",
    "TaskReport",
    "TaskTransport",
    "Waiting",
    "judge",
    "mint_token",
]

_TOKEN_BYTES = 24
TASK_FILE_VERSION = 1
# result.json: {"version": 1, "status", ...}; one written before versions (no field) reads as 1
RESULT_FILE_VERSION = 1


def mint_token() -> str:
    """A fresh, unguessable token (URL- and file-name-safe).

    It starts with a letter: a token starting with ``-`` (1 in 64 of ``token_urlsafe``)
    would read as an option on a command line.
    """
    return "t" + secrets.token_urlsafe(_TOKEN_BYTES)


@dataclass(frozen=True)
class TaskReport:
    """What a transport knows about a task: its last heartbeat and its result, if any."""

    last_heartbeat: datetime | None
    result: dict[str, Any] | None


@dataclass(frozen=True)
class Waiting:
    """The wait goes on; look again after ``recheck_seconds`` at the latest."""

    recheck_seconds: float


class TaskTransport(Protocol):
    """Where a worker's heartbeats and result go, and where WaitFor* reads them."""

    def heartbeat(self, token: str, now: datetime) -> None: ...

    def succeed(self, token: str, output: dict[str, Any], now: datetime) -> None: ...

    def fail(self, token: str, error: str, cause: str, now: datetime) -> None: ...

    def report(self, token: str) -> TaskReport: ...


def judge(
    report: TaskReport,
    *,
    started: datetime,
    now: datetime,
    heartbeat_seconds: float | None,
    timeout_seconds: float | None,
) -> dict[str, Any] | Waiting:
    """One look at a task: its output, or Waiting; raises the failure the state sees.

    Raises TaskFailed (with the worker's error name and cause), HeartbeatTimeout or
    StateTimeout. A result wins over a timeout noticed at the same look.
    """
    result = report.result
    if result is not None:
        if result.get("status") == "succeeded":
            output = result.get("output")
            return output if isinstance(output, dict) else {}
        cause = str(result.get("cause") or "the worker failed")
        raise TaskFailed(cause, name=str(result.get("error") or "States.TaskFailed"))
    deadlines = []
    if heartbeat_seconds is not None:
        beat = report.last_heartbeat or started
        silent_until = beat + timedelta(seconds=heartbeat_seconds)
        if now >= silent_until:
            raise HeartbeatTimeout(f"no heartbeat for {heartbeat_seconds:g} s (last at {beat.isoformat()})")
        deadlines.append(silent_until)
    if timeout_seconds is not None:
        timeout_at = started + timedelta(seconds=timeout_seconds)
        if now >= timeout_at:
            raise StateTimeout(f"the task ran longer than {timeout_seconds:g} s")
        deadlines.append(timeout_at)
    if not deadlines:
        return Waiting(recheck_seconds=60.0)
    return Waiting(recheck_seconds=max(0.0, (min(deadlines) - now).total_seconds()))


class LocalTransport:
    """Tasks as files under ``tasks_dir/<token>/`` (``DATA_DIR/tasks`` for local workers)."""

    def __init__(self, tasks_dir: Path | str) -> None:
        self.tasks_dir = Path(tasks_dir)

    def task_dir(self, token: str) -> Path:
        """The folder of one task; refuses a token that is not a plain name."""
        if not token or not all(c.isalnum() or c in "-_" for c in token):
            raise ValueError(f"not a task token: {token!r}")
        return self.tasks_dir / token

    def open(self, token: str) -> Path:
        """Create the task's folder (the machine does this before starting the worker)."""
        folder = self.task_dir(token)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def write_task(self, token: str, task: dict[str, Any]) -> Path:
        """Write what the worker of ``token`` needs (``task.json``, versioned) before it starts."""
        path = self.task_dir(token) / "task.json"
        body = {"version": TASK_FILE_VERSION, **task}
        write_atomic(path, (json.dumps(body, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
        return path

    def read_task(self, token: str) -> dict[str, Any]:
        """The worker's side of ``write_task``; ValueError for a missing or unknown file."""
        path = self.task_dir(token) / "task.json"
        try:
            task = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise ValueError(f"{path} is missing: a worker is started by its Start* state") from None
        if not isinstance(task, dict) or task.get("version") != TASK_FILE_VERSION:
            raise ValueError(f"{path}: not a task file of version {TASK_FILE_VERSION}")
        return task

    def heartbeat(self, token: str, now: datetime) -> None:
        write_atomic(self.task_dir(token) / "heartbeat", now.isoformat().encode(), sync_dir=False)

    def succeed(self, token: str, output: dict[str, Any], now: datetime) -> None:
        self._finish(token, {"status": "succeeded", "output": output, "at": now.isoformat()})

    def fail(self, token: str, error: str, cause: str, now: datetime) -> None:
        self._finish(token, {"status": "failed", "error": error, "cause": cause, "at": now.isoformat()})

    def report(self, token: str) -> TaskReport:
        folder = self.task_dir(token)
        try:
            beat: datetime | None = datetime.fromisoformat((folder / "heartbeat").read_text().strip())
        except (FileNotFoundError, ValueError):
            beat = None
        path = folder / "result.json"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return TaskReport(last_heartbeat=beat, result=None)
        # without its "version"; JsonRecordError (a ValueError) for another version or not an object
        return TaskReport(last_heartbeat=beat, result=parse_record(path, raw, version=RESULT_FILE_VERSION))

    def close(self, token: str) -> None:
        """Remove the task's folder (after the wait has ended, whatever the outcome)."""
        shutil.rmtree(self.task_dir(token), ignore_errors=True)

    def _finish(self, token: str, result: dict[str, Any]) -> None:
        path = self.task_dir(token) / "result.json"
        if path.exists():  # the first result wins, as with SendTaskSuccess/Failure
            return
        write_atomic(path, encode_record(result, version=RESULT_FILE_VERSION))
