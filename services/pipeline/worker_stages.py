"""StartRenderer / WaitForRender and StartUploader / WaitForUpload on this host.

``start_stage("render")`` takes the seed's input ``{"job_id", "task_token"}`` (the machine
mints the token; one is minted here when it is missing) and starts ``python -m
services.pipeline.worker render --job JOB --token TOKEN`` as its own process (its own
session, so a signal to the daemon does not reach it), and returns the seed's start output
plus the token::

    {"job_id": ..., "instance_id": "pid-12345", "instance_type": "local",
     "spot_request_id": null, "task_token": ..., "started_at": ...}

``wait_stage(spec)`` is the matching WaitFor* state: it looks at the token's heartbeat and
result (``task_tokens.judge``) until the worker reports; on States.HeartbeatTimeout or
States.Timeout it kills the worker before raising, so the retry's new worker is alone. A
worker that exits without reporting (a crash, bad arguments) fails the wait at once with
States.TaskFailed, its exit status and the end of its ``worker.log``.
Whatever the outcome, the task's folder is removed when the wait ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from services.scheduler.clock import utc_now

from .definition import StateSpec
from .errors import TaskFailed
from .task_tokens import LocalTransport, Waiting, judge, mint_token
from .workspace import data_dir_from_env

__all__ = ["POLL_SECONDS", "start_stage", "wait_stage"]

POLL_SECONDS = 0.5
_REPO_ROOT = Path(__file__).resolve().parents[2]


def start_stage(task: str, heartbeat_seconds: float | None, *, clock: Callable[[], datetime] = utc_now):
    """The Start* stage of ``task`` (``render`` or ``upload``)."""
    every = (heartbeat_seconds or 300) / 5

    def start(event: dict[str, Any], context: Any) -> dict[str, Any]:
        job_id = str(event["job_id"])
        data_dir = data_dir_from_env()
        token = str(event.get("task_token") or mint_token())
        transport = LocalTransport(data_dir / "tasks")
        transport.open(token)
        env = {**os.environ, "DATA_DIR": str(data_dir)}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
        log_path = transport.task_dir(token) / "worker.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "services.pipeline.worker",
                    task,
                    f"--job={job_id}",  # the = form: a value starting with "-" stays a value
                    f"--token={token}",
                    f"--heartbeat-seconds={every:g}",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return {
            "job_id": job_id,
            "instance_id": f"pid-{process.pid}",
            "instance_type": "local",
            "spot_request_id": None,
            "task_token": token,
            "started_at": clock().isoformat(),
        }

    return start


def wait_stage(spec: StateSpec, *, clock: Callable[[], datetime] = utc_now, poll: float = POLL_SECONDS):
    """The WaitFor* stage for a state with ``spec``'s HeartbeatSeconds and TimeoutSeconds."""

    async def wait(event: dict[str, Any], context: Any) -> dict[str, Any]:
        token = str(event["task_token"])
        started = datetime.fromisoformat(str(event["started_at"]))
        transport = LocalTransport(data_dir_from_env() / "tasks")
        instance = event.get("instance_id")
        while True:
            try:
                seen = judge(
                    transport.report(token),
                    started=started,
                    now=clock(),
                    heartbeat_seconds=spec.heartbeat_seconds,
                    timeout_seconds=spec.timeout_seconds,
                )
            except Exception:
                _kill(instance)
                _end(transport, token, instance)
                raise
            if not isinstance(seen, Waiting):
                _end(transport, token, instance)
                return seen
            gone = _exit_status(instance)
            if gone is not None and transport.report(token).result is None:
                # the worker ended without a result (it crashed, or refused its arguments):
                # fail now rather than sit out HeartbeatSeconds
                cause = f"the worker exited ({gone}) without reporting; " + _log_tail(transport, token)
                _end(transport, token, instance)
                raise TaskFailed(cause)
            # cancelled here (daemon stopping): the task folder stays, so a resumed wait
            # finds the worker's heartbeat and result under the same token
            await asyncio.sleep(min(poll, seen.recheck_seconds) or poll)

    return wait


def _end(transport: LocalTransport, token: str, instance_id: Any) -> None:
    transport.close(token)
    if isinstance(instance_id, str) and instance_id.startswith("pid-"):
        with contextlib.suppress(ChildProcessError, ValueError):
            os.waitpid(int(instance_id.removeprefix("pid-")), os.WNOHANG)  # reap our child


def _exit_status(instance_id: Any) -> str | None:
    """How a local worker ended (e.g. ``exit code 2``), or None while it runs.

    Our own child is reaped here; a worker started before a daemon restart is not our
    child, so it counts as ended when its pid is gone.
    """
    if not isinstance(instance_id, str) or not instance_id.startswith("pid-"):
        return None  # not a local worker: its transport reports for it
    try:
        pid = int(instance_id.removeprefix("pid-"))
    except ValueError:
        return None
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "gone"
        except PermissionError:
            return None
        return None
    if done == 0:
        return None
    code = os.waitstatus_to_exitcode(status)
    return f"exit code {code}" if code >= 0 else f"killed by signal {-code}"


def _log_tail(transport: LocalTransport, token: str, lines: int = 3) -> str:
    try:
        text = (transport.task_dir(token) / "worker.log").read_text(errors="replace")
    except OSError:
        return "no worker.log"
    tail = " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())
    return f"worker.log: {tail[-500:]}" if tail else "worker.log is empty"


def _kill(instance_id: Any) -> None:
    """End a local worker (its whole process group) if it is still there."""
    if not isinstance(instance_id, str) or not instance_id.startswith("pid-"):
        return
    with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
        os.killpg(int(instance_id.removeprefix("pid-")), signal.SIGKILL)
