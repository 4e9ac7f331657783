"""The ``local`` TaskTransport: the worker is a process on this host.

``start`` writes the task's ``task.json`` and starts ``python -m
services.pipeline.tasks.worker render|upload --job JOB --token TOKEN --data-dir DIR`` in
its own session (so a signal to the daemon's terminal or process group does not reach it;
whether a service stop does is the systemd unit's KillMode, see
config/video-scheduler.service), with its output in the task's ``worker.log``. The
worker's pid is recorded in the task folder (``worker.json``); the seed's ``instance_id``
(``pid-12345``) is only for people reading the job, never parsed back.

How a worker that reports nothing is judged (``alive``):

- it *exited* with a code (a crash at import, bad arguments): ``Ended(lost=False)``, a
  States.TaskFailed for the wait, as a Lambda's unhandled error;
- it was *lost*: killed by a signal (``systemctl restart`` under KillMode=control-group,
  the OOM killer), or its pid is gone (the daemon restarted and the worker with it, the
  machine rebooted), or the pid now belongs to another program (on Linux,
  ``/proc/<pid>/cmdline`` must hold the worker's token; a zombie's is empty), or no pid
  was recorded for the task (started by a version that did not record one):
  ``Ended(lost=True)``, which the machine relaunches at the Start* state.

A worker started before a daemon restart is not the new daemon's child: it is judged
through its recorded pid and the cmdline check, and waited for as before.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from services.pipeline.tasks.task_tokens import LocalTransport
from services.pipeline.tasks.transport import Ended
from services.scheduler.atomic_file import write_atomic

__all__ = ["SubprocessTransport", "TRANSPORT"]

_REPO_ROOT = Path(__file__).resolve().parents[3]
_WORKER_FILE = "worker.json"
_WORKER_FILE_VERSION = 1


class SubprocessTransport:
    """Workers as processes of this host, their reports as files under ``DATA_DIR/tasks``."""

    name: ClassVar[str] = "local"

    def __init__(self, data_dir: Path | str, settings: Any = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.files = LocalTransport(self.data_dir / "tasks")

    # -- the machine's side --------------------------------------------------------------

    def start(self, token: str, task: dict[str, Any], *, heartbeat_seconds: float) -> dict[str, Any]:
        self.files.open(token)
        self.files.write_task(token, task)
        # everything the worker needs is in its task file and arguments; it inherits the
        # environment only for what any program does (PATH, locale, HOME)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
        with open(self.files.task_dir(token) / "worker.log", "ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "services.pipeline.tasks.worker",
                    str(task["task"]),
                    f"--job={task['job_id']}",  # the = form: a value starting with "-" stays a value
                    f"--token={token}",
                    f"--data-dir={self.data_dir}",
                    f"--heartbeat-seconds={heartbeat_seconds:g}",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.record_worker(token, process.pid)
        return {"instance_id": f"pid-{process.pid}", "instance_type": "local", "spot_request_id": None}

    def record_worker(self, token: str, pid: int) -> None:
        """Note that ``pid`` is the worker of ``token`` (``start`` does; a test may too)."""
        body = {"version": _WORKER_FILE_VERSION, "pid": pid}
        write_atomic(self.files.task_dir(token) / _WORKER_FILE, (json.dumps(body) + "\n").encode())

    def heartbeat(self, token: str) -> datetime | None:
        return self.files.report(token).last_heartbeat

    def result(self, token: str) -> dict[str, Any] | None:
        return self.files.report(token).result

    def alive(self, token: str) -> Ended | None:
        pid = self._pid(token)
        if pid is None:
            return Ended("is gone (no process was recorded for this task)", lost=True)
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return _not_our_child(pid, token)
        if done == 0:
            return None
        code = os.waitstatus_to_exitcode(status)
        if code >= 0:
            return Ended(f"exited (exit code {code})", lost=False, reaped=True)
        return Ended(f"was killed by signal {-code} ({_signal_name(-code)})", lost=True, reaped=True)

    def log_tail(self, token: str, lines: int = 3) -> str:
        try:
            text = (self.files.task_dir(token) / "worker.log").read_text(errors="replace")
        except OSError:
            return "no worker.log"
        tail = " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())
        return f"worker.log: {tail[-500:]}" if tail else "worker.log is empty"

    def end(self, token: str, *, kill: bool) -> None:
        pid = self._pid(token)
        if pid is not None and kill:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # the worker and what it started (ffmpeg)
        self.files.close(token)
        if pid is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap our child

    def _pid(self, token: str) -> int | None:
        try:
            record = json.loads((self.files.task_dir(token) / _WORKER_FILE).read_bytes())
        except (OSError, ValueError):
            return None
        pid = record.get("pid") if isinstance(record, dict) else None
        return pid if isinstance(pid, int) and pid > 0 else None


TRANSPORT = SubprocessTransport


def _not_our_child(pid: int, token: str) -> Ended | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return Ended(f"is gone (pid {pid} no longer exists)", lost=True)
    except PermissionError:  # a worker runs as the daemon's user: this is someone else's
        return Ended(f"is gone (pid {pid} is another user's process now)", lost=True)
    argv = _cmdline(pid)
    if argv is None:
        return None  # no /proc to ask (not Linux): the pid is taken as the worker's
    if not argv:  # a zombie (or it ended since kill 0): whatever it was, it is not running
        return Ended(f"is gone (pid {pid} has died: it has no command line)", lost=True)
    if f"--token={token}" not in argv and token not in argv:  # either form of the option
        return Ended(f"is gone (pid {pid} is another program now)", lost=True)
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
