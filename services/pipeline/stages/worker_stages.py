"""StartRenderer / WaitForRender and StartUploader / WaitForUpload on this host.

``start_stage("render")`` takes the seed's input ``{"job_id", "task_token"}`` (the machine
mints the token; one is minted here when it is missing) and starts ``python -m
services.pipeline.tasks.worker render --job JOB --token TOKEN`` as its own process (its own
session, so a signal to the daemon's terminal or process group does not reach it; whether
a service stop does is the systemd unit's KillMode, see config/video-scheduler.service),
and returns the seed's start output plus the token::

    {"job_id": ..., "instance_id": "pid-12345", "instance_type": "local",
     "spot_request_id": null, "task_token": ..., "started_at": ...}

``wait_stage(spec)`` is the matching WaitFor* state: it looks at the token's heartbeat and
result (``task_tokens.judge``) until the worker reports; on States.HeartbeatTimeout or
States.Timeout it kills the worker before raising, so the retry's new worker is alone. A
worker that ends without reporting ends the wait at once (not after HeartbeatSeconds), with
how it ended and the end of its ``worker.log`` in the cause:

- it *exited* with a code (a crash at import, bad arguments): States.TaskFailed, as a
  Lambda's unhandled error; running it again would fail the same way;
- it was *lost*: killed by a signal (``systemctl restart`` under KillMode=control-group,
  the OOM killer), or its pid is gone (the daemon restarted and the worker with it, the
  machine rebooted), or the pid now belongs to another program (on Linux,
  ``/proc/<pid>/cmdline`` must hold the worker's ``--token``; a zombie's is empty):
  ``WorkerLost``, which the machine relaunches at the Start* state (``machine.py``).

A worker started before a daemon restart is not the new daemon's child: it is re-attached
through its pid (and that cmdline check) and waited for as before.
Whatever the outcome, the task's folder is removed when the wait ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from services.pipeline.engine.definition import StateSpec
from services.pipeline.errors import TaskFailed, WorkerLost
from services.pipeline.tasks.task_tokens import LocalTransport, Waiting, judge, mint_token
from services.scheduler.clock import utc_now

__all__ = ["POLL_SECONDS", "start_stage", "wait_stage"]

POLL_SECONDS = 0.5
_REPO_ROOT = Path(__file__).resolve().parents[3]


def start_stage(task: str, heartbeat_seconds: float | None, *, clock: Callable[[], datetime] = utc_now):
    """The Start* stage of ``task`` (``render`` or ``upload``)."""
    every = (heartbeat_seconds or 300) / 5

    def start(event: dict[str, Any], context: Any) -> dict[str, Any]:
        job_id = str(event["job_id"])
        data_dir = Path(context.data_dir).resolve()
        token = str(event.get("task_token") or mint_token())
        transport = LocalTransport(data_dir / "tasks")
        transport.open(token)
        # everything the worker needs is in its task file and arguments; it inherits the
        # environment only for what any program does (PATH, locale, HOME)
        transport.write_task(
            token,
            {
                "task": task,
                "job_id": job_id,
                "data_dir": str(data_dir),
                "settings": context.settings.for_worker(),
                "log_level": logging.getLevelName(logging.getLogger().getEffectiveLevel()),
            },
        )
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
        log_path = transport.task_dir(token) / "worker.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "services.pipeline.tasks.worker",
                    task,
                    f"--job={job_id}",  # the = form: a value starting with "-" stays a value
                    f"--token={token}",
                    f"--data-dir={data_dir}",
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
        transport = LocalTransport(Path(context.data_dir).resolve() / "tasks")
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
                if _ended(instance, token) is None:  # still running, and still our worker
                    _kill(instance)
                _end(transport, token, instance)
                raise
            if not isinstance(seen, Waiting):
                _end(transport, token, instance)
                return seen
            ended = _ended(instance, token)
            if ended is not None and transport.report(token).result is None:
                # the worker ended without a result: say so now rather than sit out
                # HeartbeatSeconds; lost (killed, gone) is relaunched, exited is a failure
                cause = f"the worker {ended.how} without reporting; " + _log_tail(transport, token)
                if ended.reaped and ended.lost:
                    _kill(instance)  # what it started (ffmpeg) goes with it
                _end(transport, token, instance)
                raise WorkerLost(cause) if ended.lost else TaskFailed(cause)
            # cancelled here (daemon stopping): the task folder stays, so a resumed wait
            # finds the worker's heartbeat and result under the same token
            await asyncio.sleep(min(poll, seen.recheck_seconds) or poll)

    return wait


def _end(transport: LocalTransport, token: str, instance_id: Any) -> None:
    transport.close(token)
    if isinstance(instance_id, str) and instance_id.startswith("pid-"):
        with contextlib.suppress(ChildProcessError, ValueError):
            os.waitpid(int(instance_id.removeprefix("pid-")), os.WNOHANG)  # reap our child


@dataclass(frozen=True)
class _Ended:
    """How a local worker ended: ``how`` for the cause; ``lost`` unless it exited with a
    code; ``reaped`` when it was our child and we just collected its status (its process
    group is then known to be the worker's)."""

    how: str
    lost: bool
    reaped: bool = False


def _ended(instance_id: Any, token: str) -> _Ended | None:
    """How a local worker ended, or None while it runs (or when it is not a local worker).

    Our own child is reaped here. A worker started before a daemon restart is not our
    child: it has ended when its pid is gone, or when the pid is now another process's (a
    reboot or a long time reuses pids; on Linux ``/proc/<pid>/cmdline`` must carry the
    token, and a zombie's is empty).
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
        return _not_our_child(pid, token)
    if done == 0:
        return None
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return _Ended(f"exited (exit code {code})", lost=False, reaped=True)
    return _Ended(f"was killed by signal {-code} ({_signal_name(-code)})", lost=True, reaped=True)


def _not_our_child(pid: int, token: str) -> _Ended | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return _Ended(f"is gone (pid {pid} no longer exists)", lost=True)
    except PermissionError:  # a worker runs as the daemon's user: this is someone else's
        return _Ended(f"is gone (pid {pid} is another user's process now)", lost=True)
    argv = _cmdline(pid)
    if argv is None:
        return None  # no /proc to ask (not Linux): the pid is taken as the worker's
    if not argv:  # a zombie (or it ended since kill 0): whatever it was, it is not running
        return _Ended(f"is gone (pid {pid} has died: it has no command line)", lost=True)
    if f"--token={token}" not in argv and token not in argv:  # either form of the option
        return _Ended(f"is gone (pid {pid} is another program now)", lost=True)
    return None


def _cmdline(pid: int) -> list[str] | None:
    """A process's arguments from ``/proc`` (empty for a zombie), or None without ``/proc``."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return [] if Path("/proc/self").exists() else None  # it ended since kill(0)
    except OSError:
        return None
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


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
